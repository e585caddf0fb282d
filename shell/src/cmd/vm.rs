//! Page-table commands: `map` (DragonOS `mm_map_phys_addr`, or with no
//! arguments the address-space dump), `unmap` (`mm_unmap`), `walk`, `aspace`,
//! the MOS `insert` / `lookup` / `remove`, `wx`, and `bench map` (reached from
//! `bench` in `diag.rs`).
//!
//! `map` and `insert` make handles (`mapping`, `insert`) whose release unmaps
//! what is left of them; `aspace new` makes an `aspace` handle whose release
//! destroys it. The commands work on the table chosen with `aspace use` (the
//! kernel's by default). The API refuses the kernel's own ranges; the shell adds
//! the rules that need its handles: a range may not overlap another handle's
//! mapping, and RAM that is not one of the shell's page blocks is mapped
//! read-only unless `force` is given.

use super::{Args, CmdError, Command, Ctx, Target};
use crate::api::{MapRequest, VmError, VmTarget, BENCH_FLUSH_N};
use crate::cmd_err;
use crate::handles::{Addr, HandleId, Object, VmFlags};
use crate::parse;
use alloc::vec::Vec;
use core::fmt::Write;
use mm::layout::{DIRECT_MAP, IOREMAP, KERNEL_IMAGE, TEMP, VMALLOC};
use mm::paging::{LeafRange, MapError, PageSize, PageTableFlags as F, WxFinding};
use mm::{PageState, Pfn};

/// Longest `map` / `unmap` range.
pub const MAP_MAX: u64 = 1 << 30;

impl From<VmError> for CmdError {
    fn from(e: VmError) -> CmdError {
        cmd_err!("{e}")
    }
}

/// Page size, rights and `force` words after the numbers of `map` / `insert`.
struct Opts {
    flags: F,
    use4k: bool,
    force: bool,
}

/// Reads `[r|ro|rw|rx|rwx] [user] [global] [wc|uc] [4k|2m] [force]` (any order).
fn opts(args: &mut Args, allow_size: bool) -> Result<Opts, CmdError> {
    let mut o = Opts {
        flags: F::WRITABLE | F::NO_EXECUTE,
        use4k: true,
        force: false,
    };
    while let Some(w) = args.opt_word() {
        match w.to_ascii_lowercase().as_str() {
            "r" | "ro" => o.flags = (o.flags - F::WRITABLE) | F::NO_EXECUTE,
            "rw" => o.flags = o.flags | F::WRITABLE | F::NO_EXECUTE,
            "rx" => o.flags -= F::WRITABLE | F::NO_EXECUTE,
            "rwx" => o.flags = (o.flags | F::WRITABLE) - F::NO_EXECUTE,
            "user" => o.flags |= F::USER_ACCESSIBLE,
            "global" => o.flags |= F::GLOBAL,
            "wc" => o.flags = (o.flags - F::NO_CACHE) | F::WRITE_THROUGH,
            "uc" => o.flags |= F::NO_CACHE | F::WRITE_THROUGH,
            "4k" if allow_size => o.use4k = true,
            "2m" if allow_size => o.use4k = false,
            "force" => o.force = true,
            _ => {
                return Err(cmd_err!(
                    "unknown option '{w}' (expected r, rw, rx, rwx, user, global, wc, uc{}, force)",
                    if allow_size { ", 4k, 2m" } else { "" }
                ))
            }
        }
    }
    Ok(o)
}

/// The table the commands are aimed at.
fn target(ctx: &Ctx<'_>) -> Result<VmTarget, CmdError> {
    Ok(ctx.kernel.vm_target()?)
}

/// The virtual range of a handle's mapping in `space`, if it is one.
fn mapped_range(o: &Object) -> Option<(VmTarget, u64, u64)> {
    match *o {
        Object::Mapping {
            space, virt, len, ..
        } => Some((space, virt, len.next_multiple_of(4096))),
        Object::Inserted { space, virt, .. } => Some((space, virt & !0xfff, 4096)),
        _ => None,
    }
}

/// The first handle with a mapping in the address space `root` (its root
/// frame could be reused by a later address space, so it goes first).
pub fn mapped_in(ctx: &Ctx<'_>, root: mm::paging::PhysFrame) -> Option<HandleId> {
    ctx.handles.iter().find_map(|(id, o)| {
        let (s, _, _) = mapped_range(o)?;
        (s == VmTarget::Aspace(root)).then_some(id)
    })
}

/// The first handle whose mapping in `space` overlaps `[virt, virt + len)`.
fn overlapping(ctx: &Ctx<'_>, space: VmTarget, virt: u64, len: u64) -> Option<HandleId> {
    let end = virt.saturating_add(len);
    ctx.handles.iter().find_map(|(id, o)| {
        let (s, v, l) = mapped_range(o)?;
        (s == space && v < end && virt < v + l).then_some(id)
    })
}

/// Refuses a writable mapping of RAM that is not in the shell's page blocks
/// (the buddy handed it to someone else, or keeps it free), unless forced.
fn check_frames(ctx: &Ctx<'_>, phys: u64, len: u64, o: &Opts) -> Result<(), CmdError> {
    if !o.flags.contains(F::WRITABLE) || o.force {
        return Ok(());
    }
    let mut blocks: Vec<(u64, u64)> = ctx
        .handles
        .iter()
        .filter_map(|(_, h)| h.page_block())
        .map(|(p, n)| (u64::from(p.0), u64::from(p.0) + n))
        .collect();
    blocks.sort_unstable();
    let (first, end) = (phys >> 12, phys.saturating_add(len).div_ceil(4096));
    let mut pfn = first;
    while pfn < end {
        if let Some(&(_, e)) = blocks.iter().find(|&&(s, e)| s <= pfn && pfn < e) {
            pfn = e;
            continue;
        }
        let Ok(p32) = u32::try_from(pfn) else { break };
        match ctx.kernel.page_info(Pfn(p32)) {
            Ok(info) if info.ram => {
                let what = match info.state {
                    PageState::Free | PageState::Cached => "free",
                    PageState::Reserved => "reserved by the kernel",
                    _ => "allocated by the kernel",
                };
                return Err(cmd_err!(
                    "pfn {:#x} is {what}, not one of the shell's pages; map it read-only \
                     (ro) or add 'force'",
                    pfn
                ));
            }
            // Not RAM (a hole or device memory): writable is allowed.
            _ => pfn += 1,
        }
    }
    Ok(())
}

/// `map VIRT PHYS|#N LEN [FLAGS...] [4k|2m] [force]`, or `map` alone: the dump.
pub fn map(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    if args.peek().is_none() {
        return dump(ctx);
    }
    let virt = args.addr("VIRT")?;
    let phys = match args.handle_or_addr("PHYS|#N")? {
        Target::Addr(a) => a,
        Target::Handle(id) => {
            let o = ctx.handles.get(id)?;
            match (o.page_block(), o.phys()) {
                (Some((pfn, _)), _) => pfn.phys(),
                _ => {
                    return Err(cmd_err!(
                        "{id} is a {} handle, not a page block (expected pages, gfp_pages, \
                         gfp_addr or mos_page)",
                        o.kind()
                    ))
                }
            }
        }
    };
    let len = args.number_in("LEN", 1, MAP_MAX)?;
    let o = opts(args, true)?;
    args.end()?;
    let space = target(ctx)?;
    if (virt | phys) & 0xfff != 0 {
        return Err(VmError::Map(MapError::Misaligned {
            virt,
            phys,
            size: PageSize::Size4KiB,
        })
        .into());
    }
    crate::api::protected(virt, len)?;
    if let Some(id) = overlapping(ctx, space, virt, len) {
        return Err(cmd_err!(
            "the range overlaps the mapping of {id}; free it first"
        ));
    }
    check_frames(ctx, phys, len, &o)?;
    let req = MapRequest {
        virt,
        phys,
        len,
        flags: o.flags,
        use4k: o.use4k,
        force: o.force,
    };
    let st = ctx.kernel.mm_map_phys_addr(space, &req)?;
    ctx.add(Object::Mapping {
        space,
        virt,
        phys,
        len,
        flags: o.flags,
        use4k: o.use4k,
    })?;
    writeln!(
        ctx,
        "mapped {} 4 KiB and {} 2 MiB pages",
        st.pages_4k, st.pages_2m
    )?;
    Ok(())
}

/// `unmap VIRT LEN`: DragonOS `mm_unmap` on the current table.
pub fn unmap(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let virt = args.addr("VIRT")?;
    let len = args.number_in("LEN", 1, MAP_MAX)?;
    args.end()?;
    let space = target(ctx)?;
    let st = ctx.kernel.mm_unmap(space, virt, len)?;
    writeln!(
        ctx,
        "unmapped {} 4 KiB and {} 2 MiB pages in {space} ({} page references dropped)",
        st.pages_4k, st.pages_2m, st.refs_dropped
    )?;
    Ok(())
}

/// `walk VIRT`: the four levels in the current table.
pub fn walk(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let virt = args.addr("VIRT")?;
    args.end()?;
    let space = target(ctx)?;
    let w = ctx.kernel.vm_walk(space, virt)?;
    writeln!(ctx, "walk {} in {space}:", Addr(virt))?;
    let text = alloc::format!("{w}");
    writeln!(ctx, "{text}")?;
    Ok(())
}

/// `aspace [new|use #N|use kernel]`.
pub fn aspace(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    if args.peek().is_none() {
        let t = target(ctx)?;
        writeln!(ctx, "commands aim at: {t}")?;
        let list: Vec<(HandleId, Object)> = ctx
            .handles
            .iter()
            .filter(|(_, o)| matches!(o, Object::Aspace { .. }))
            .map(|(id, o)| (id, o.clone()))
            .collect();
        for (id, o) in list {
            writeln!(ctx, "{id} {o}")?;
        }
        return Ok(());
    }
    super::subcommand(ctx, args, ASPACE_SUBS)
}

fn aspace_new(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let root = ctx.kernel.aspace_new()?;
    ctx.add(Object::Aspace { root })?;
    Ok(())
}

fn aspace_use(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let t = if args.eat("kernel") {
        VmTarget::Kernel
    } else {
        let id = args.handle("#N|kernel")?;
        match ctx.handles.get(id)? {
            Object::Aspace { root } => VmTarget::Aspace(*root),
            o => return Err(cmd_err!("{id} is a {} handle, not an aspace", o.kind())),
        }
    };
    args.end()?;
    ctx.kernel.vm_set_target(t)?;
    writeln!(ctx, "commands aim at: {t}")?;
    Ok(())
}

static ASPACE_SUBS: &[Command] = &[
    super::sub("new", "aspace new", aspace_new),
    super::sub("use", "aspace use #N|kernel", aspace_use),
];

/// `insert PFN|#N VIRT [PERM...] [force]`: MOS `page_insert`.
pub fn insert(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let w = args.word("PFN|#N")?;
    let pfn = if parse::is_handle_ref(&w) {
        let id = parse::parse_handle(&w)?;
        match ctx.handles.get(id)?.page_block() {
            Some((pfn, _)) => pfn,
            None => return Err(cmd_err!("{id} is not a page block")),
        }
    } else {
        let v = parse::parse_number(&w)?;
        let max = ctx
            .kernel
            .mem_layout()
            .map_or(u64::from(u32::MAX), |l| u64::from(l.max_pfn.0));
        match u32::try_from(v) {
            Ok(p) if v < max => Pfn(p),
            _ => return Err(cmd_err!("pfn {v:#x} is beyond the last frame ({max:#x})")),
        }
    };
    let virt = args.addr("VIRT")? & !0xfff;
    let o = opts(args, false)?;
    args.end()?;
    let space = target(ctx)?;
    // Re-inserting at an address of an earlier `insert` replaces it (MOS);
    // any other mapping there must be freed first.
    let old = match overlapping(ctx, space, virt, 4096) {
        Some(id) if matches!(ctx.handles.get(id)?, Object::Inserted { .. }) => Some(id),
        Some(id) => {
            return Err(cmd_err!(
                "{} overlaps the mapping of {id}; free it first",
                Addr(virt)
            ))
        }
        None => None,
    };
    crate::api::protected(virt, 4096)?;
    check_frames(ctx, pfn.phys(), 4096, &o)?;
    ctx.kernel.page_insert(space, pfn, virt, o.flags, o.force)?;
    if let Some(id) = old {
        let _ = ctx.handles.remove(id);
        writeln!(ctx, "replaces {id}")?;
    }
    ctx.add(Object::Inserted {
        space,
        virt,
        pfn,
        flags: o.flags,
    })?;
    refcount_line(ctx, pfn)
}

fn refcount_line(ctx: &mut Ctx<'_>, pfn: Pfn) -> Result<(), CmdError> {
    match ctx.kernel.page_info(pfn) {
        Ok(p) if p.state == PageState::Allocated => {
            writeln!(ctx, "pfn {pfn} refcount={}", p.refcount)?
        }
        Ok(p) => writeln!(ctx, "pfn {pfn} is {:?}", p.state)?,
        Err(_) => {}
    }
    Ok(())
}

/// `lookup VIRT`: MOS `page_lookup`.
pub fn lookup(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let virt = args.addr("VIRT")?;
    args.end()?;
    let space = target(ctx)?;
    match ctx.kernel.page_lookup(space, virt)? {
        None => writeln!(ctx, "{} is not mapped in {space}", Addr(virt))?,
        Some(l) => {
            writeln!(
                ctx,
                "{} -> pfn {} ({} page) pte @{} = {:#018x} {}",
                Addr(virt),
                l.pfn,
                l.size,
                Addr(l.pte.addr.as_u64()),
                l.pte.raw,
                VmFlags(l.flags)
            )?;
            refcount_line(ctx, l.pfn)?;
        }
    }
    Ok(())
}

/// `pgdir_walk VIRT [create]`: MOS `pgdir_walk`, the 4 KiB entry of VIRT.
pub fn pgdir_walk(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let virt = args.addr("VIRT")?;
    let create = args.eat("create");
    args.end()?;
    let space = target(ctx)?;
    match ctx.kernel.pgdir_walk(space, virt, create)? {
        None => writeln!(
            ctx,
            "{}: no page table in {space} (a table above it is missing or a huge page)",
            Addr(virt)
        )?,
        Some(pte) => {
            let flags = F::from_bits_truncate(pte.raw);
            write!(
                ctx,
                "{}: pte @{} = {:#018x} ",
                Addr(virt),
                Addr(pte.addr.as_u64()),
                pte.raw
            )?;
            if flags.contains(F::PRESENT) {
                writeln!(ctx, "{}", VmFlags(flags))?;
            } else {
                writeln!(ctx, "(not present)")?;
            }
        }
    }
    Ok(())
}

/// `remove VIRT`: MOS `page_remove`.
pub fn remove(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let virt = args.addr("VIRT")? & !0xfff;
    args.end()?;
    let space = target(ctx)?;
    let before = ctx.kernel.page_lookup(space, virt)?;
    ctx.kernel.page_remove(space, virt)?;
    writeln!(ctx, "removed {} from {space}", Addr(virt))?;
    let done: Vec<HandleId> = ctx
        .handles
        .iter()
        .filter(|(_, o)| matches!(**o, Object::Inserted { space: s, virt: v, .. } if s == space && v == virt))
        .map(|(id, _)| id)
        .collect();
    for id in done {
        let _ = ctx.handles.remove(id);
        writeln!(ctx, "retired {id}")?;
    }
    if let Some(l) = before {
        refcount_line(ctx, l.pfn)?;
    }
    Ok(())
}

/// `wx`: W^X and user pages in the kernel half.
pub fn wx(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let mut bad: Vec<(LeafRange, WxFinding)> = Vec::new();
    let r = ctx.kernel.vm_wx(&mut |lr, w| bad.push((*lr, w)))?;
    for (lr, w) in &bad {
        let what = match w {
            WxFinding::WritableExecutable => "writable and executable",
            WxFinding::UserInKernelHalf => "user-accessible in the kernel half",
        };
        writeln!(
            ctx,
            "{}-{} {}: {what}",
            Addr(lr.start),
            Addr(lr.end),
            VmFlags(lr.flags)
        )?;
    }
    if bad.is_empty() {
        writeln!(
            ctx,
            "wx: checked {} pages in {} ranges: no W+X pages, no user pages in the kernel half",
            r.pages, r.ranges
        )?;
        Ok(())
    } else {
        Err(cmd_err!(
            "wx: {} writable+executable pages, {} user pages in the kernel half",
            r.wx_pages,
            r.user_pages
        ))
    }
}

/// One line per merged range of `[start, end)`.
struct Section {
    name: &'static str,
    start: u64,
    end: u64,
}

/// `map` with no arguments: the address-space layout, Linux `ptdump` style.
fn dump(ctx: &mut Ctx<'_>) -> Result<(), CmdError> {
    let space = target(ctx)?;
    let layout = ctx.kernel.vm_layout()?;
    let sections = [
        Section {
            name: "user half",
            start: 0,
            end: 0x0000_8000_0000_0000,
        },
        Section {
            name: DIRECT_MAP.name,
            start: DIRECT_MAP.start,
            end: DIRECT_MAP.last() + 1,
        },
        Section {
            name: "vmalloc",
            start: VMALLOC.start,
            end: VMALLOC.last() + 1,
        },
        Section {
            name: "ioremap",
            start: IOREMAP.start,
            end: IOREMAP.last() + 1,
        },
        Section {
            name: "unused",
            start: IOREMAP.last() + 1,
            end: TEMP.start,
        },
        Section {
            name: TEMP.name,
            start: TEMP.start,
            end: TEMP.last() + 1,
        },
        Section {
            name: "unused",
            start: TEMP.last() + 1,
            end: KERNEL_IMAGE.start,
        },
        Section {
            name: KERNEL_IMAGE.name,
            start: KERNEL_IMAGE.start,
            end: 0,
        },
    ];
    writeln!(ctx, "address space of {space}:")?;
    for s in sections {
        let mut ranges: Vec<LeafRange> = Vec::new();
        ctx.kernel
            .vm_ranges(space, s.start, s.end, &mut |r| ranges.push(*r))?;
        writeln!(
            ctx,
            "---[ {} {}-{} ]---",
            s.name,
            Addr(s.start),
            Addr(s.end.wrapping_sub(1))
        )?;
        if s.start == DIRECT_MAP.start {
            writeln!(
                ctx,
                "  (RAM below {:#x}; mem_map at {}, {} bytes)",
                layout.direct_map_end,
                Addr(DIRECT_MAP.start + layout.mem_map.0),
                layout.mem_map.1
            )?;
        }
        if s.start == TEMP.start && ranges.is_empty() {
            writeln!(ctx, "  (empty: mapped only while the kernel uses it)")?;
        }
        for r in ranges {
            let label = label(ctx, space, &layout, &r);
            writeln!(
                ctx,
                "{}-{} {:>6} {:>3} {:<12} {label}",
                Addr(r.start),
                Addr(r.end),
                Size(r.len()),
                match r.size {
                    PageSize::Size4KiB => "4K",
                    PageSize::Size2MiB => "2M",
                    PageSize::Size1GiB => "1G",
                },
                alloc::format!("{}", VmFlags(r.flags)),
            )?;
        }
        if s.start == VMALLOC.start || s.start == IOREMAP.start {
            areas(ctx, s.start, s.end)?;
        }
    }
    Ok(())
}

/// The live vmalloc/ioremap areas that start in `[start, end)`, one line each:
/// `  area START-END SIZE kind caller [phys=P cache] [#N]` (the guard page not
/// included). Nothing for a kernel without vmalloc.
fn areas(ctx: &mut Ctx<'_>, start: u64, end: u64) -> Result<(), CmdError> {
    let mut i = 0;
    while let Ok(Some(a)) = ctx.kernel.vm_area_at(i) {
        i += 1;
        if a.start < start || a.start >= end {
            continue;
        }
        let id = ctx.handles.iter().find_map(|(id, o)| {
            matches!(o, Object::Vmalloc { virt, .. } | Object::Ioremap { virt, .. } if *virt == a.addr)
                .then_some(id)
        });
        write!(
            ctx,
            "  area {}-{} {:>6} {} {}",
            Addr(a.start),
            Addr(a.start + a.pages * 4096),
            Size(a.pages * 4096),
            a.kind,
            a.caller
        )?;
        match a.phys {
            Some(p) => write!(ctx, " phys={} {}", Addr(p), a.cache)?,
            None => write!(ctx, " pages={}", a.pages)?,
        }
        match id {
            Some(id) => writeln!(ctx, " {id}")?,
            None => writeln!(ctx)?,
        }
    }
    Ok(())
}

/// What a dumped range is: a kernel section, RAM or device pages of the direct
/// map, or the shell handles that mapped it.
fn label(
    ctx: &Ctx<'_>,
    space: VmTarget,
    layout: &crate::api::KernelLayout,
    r: &LeafRange,
) -> alloc::string::String {
    let mut s = alloc::string::String::new();
    for (name, (a, b)) in [
        ("kernel text", layout.text),
        ("kernel rodata", layout.rodata),
        ("kernel data+bss", layout.data),
    ] {
        if r.start < b && a < r.end {
            s.push_str(name);
        }
    }
    if DIRECT_MAP.contains(r.start) {
        let p = r.start - DIRECT_MAP.start;
        s.push_str(if p < layout.direct_map_end {
            "RAM"
        } else {
            "device"
        });
    }
    for (id, o) in ctx.handles.iter() {
        if let Some((sp, v, l)) = mapped_range(o) {
            if sp == space && v < r.end && r.start < v + l {
                if !s.is_empty() {
                    s.push(' ');
                }
                let _ = write!(s, "{id}");
            }
        }
    }
    s
}

/// A byte count as `4K`, `2M`, `1G` (exact multiples) or bytes.
struct Size(u64);

impl core::fmt::Display for Size {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let v = self.0;
        let s = if v >= 1 << 40 && v.is_multiple_of(1 << 40) {
            alloc::format!("{}T", v >> 40)
        } else if v >= 1 << 30 && v.is_multiple_of(1 << 30) {
            alloc::format!("{}G", v >> 30)
        } else if v >= 1 << 20 && v.is_multiple_of(1 << 20) {
            alloc::format!("{}M", v >> 20)
        } else {
            alloc::format!("{}K", v >> 10)
        };
        f.pad(&s)
    }
}

/// Default `bench map` iterations.
pub const BENCH_MAP_DEFAULT: u64 = 10_000;

/// `bench map [ITER]` (dispatched from `bench`).
pub fn bench_map(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let iters = match args.peek() {
        Some(_) => args.number_in("ITER", 1, 1_000_000)?,
        None => BENCH_MAP_DEFAULT,
    };
    args.end()?;
    let r = ctx.kernel.bench_map(iters)?;
    writeln!(
        ctx,
        "map+unmap 4 KiB (with invlpg): {} cycles/pair",
        r.map_unmap_4k
    )?;
    writeln!(ctx, "translate: {} cycles", r.translate)?;
    writeln!(
        ctx,
        "invlpg: {} cycles, full flush: {} cycles (ratio {}.{:02})",
        r.invlpg,
        r.flush_all,
        r.flush_all / r.invlpg.max(1),
        r.flush_all * 100 / r.invlpg.max(1) % 100
    )?;
    for (n, (one_by_one, full)) in BENCH_FLUSH_N.iter().zip(r.flush_then_touch) {
        writeln!(
            ctx,
            "flush {n:>3} pages then touch them: invlpg each {one_by_one} cycles, full flush {full} cycles"
        )?;
    }
    writeln!(
        ctx,
        "INVLPG_MAX = {} (past it a flush range reloads CR3)",
        mm::paging::INVLPG_MAX
    )?;
    Ok(())
}

/// The page-table commands, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "map",
        usage: "map [VIRT PHYS|#N LEN [RIGHTS...] [4k|2m] [force]]",
        summary: "mm_map_phys_addr, or show the address space",
        help: "With no arguments: the layout of the current table (see 'aspace'), region by\n\
               region, its present pages merged into ranges with their size, page size and\n\
               effective rights, labelled (kernel sections, RAM, #N of the shell's mappings).\n\
               With arguments: maps LEN bytes (up to 1G) at VIRT to PHYS (or the first frame\n\
               of page handle #N). RIGHTS: r|rw|rx|rwx (default rw), user, global, wc, uc.\n\
               4 KiB pages (2m: 2 MiB pages where\n\
               both addresses are 2 MiB aligned, 4 KiB at the edges). Gives a 'mapping'\n\
               handle; 'free' unmaps what is left of it. Refused: the kernel image, the\n\
               direct map, the temporary window, the vmalloc and ioremap ranges, overlaps\n\
               with another handle's mapping, writable mappings of page-table frames,\n\
               writable RAM that is not one of the shell's pages and rwx (both: unless\n\
               'force'). Through a mapping handle of the kernel table, dump/bzero/bcopy\n\
               go through the mapping itself.",
        run: map,
    },
    Command {
        name: "unmap",
        usage: "unmap VIRT LEN",
        summary: "mm_unmap a range of the current table",
        help: "Unmaps every page in [VIRT, VIRT+LEN) (holes skipped, empty tables freed, the\n\
               references of 'insert' mappings dropped) and flushes the TLB. Handles\n\
               whose mapping was unmapped stay until freed (then nothing is left to do).\n\
               On the kernel's table this is DragonOS mm_unmap (mm_unmap_addr is the same\n\
               function under its later name); in an address space, mm_unmap_proc_table.",
        run: unmap,
    },
    Command {
        name: "walk",
        usage: "walk VIRT",
        summary: "the four levels of the walk of VIRT",
        help: "One line per level read: entry address, raw value, decoded flags (and the\n\
               mapper's count of live entries below a table entry), then the physical\n\
               address and page size, or the level where the walk stopped.",
        run: walk,
    },
    Command {
        name: "aspace",
        usage: "aspace [new|use #N|use kernel]",
        summary: "make an address space, aim the commands at it",
        help: "aspace new: a new top-level table sharing the kernel half (an 'aspace'\n\
               handle; freeing it frees its tables and drops its pages' references).\n\
               aspace use #N / aspace use kernel: where map, unmap, walk, insert, lookup\n\
               and remove go. aspace alone: the current choice and the live address spaces.",
        run: aspace,
    },
    Command {
        name: "insert",
        usage: "insert PFN|#N VIRT [RIGHTS...] [force]",
        summary: "MOS page_insert: map a frame, take a reference",
        help: "Maps the 4 KiB frame at VIRT in the current table, taking a reference on its\n\
               struct page (see 'page'); replaces an earlier insert at VIRT. Gives an\n\
               'insert' handle; 'free' or 'remove' drops the reference. RIGHTS as for map.",
        run: insert,
    },
    Command {
        name: "lookup",
        usage: "lookup VIRT",
        summary: "MOS page_lookup: the frame VIRT maps to",
        help: "",
        run: lookup,
    },
    Command {
        name: "pgdir_walk",
        usage: "pgdir_walk VIRT [create]",
        summary: "MOS pgdir_walk: the page-table entry of VIRT",
        help: "Prints the address and value of VIRT's 4 KiB page-table entry in the\n\
               address space commands are aimed at (see 'aspace'), present or not, or\n\
               says which table is missing. 'create' makes the missing tables, in an\n\
               address space only; they stay until the address space is freed.",
        run: pgdir_walk,
    },
    Command {
        name: "remove",
        usage: "remove VIRT",
        summary: "MOS page_remove: unmap, drop the reference",
        help: "",
        run: remove,
    },
    Command {
        name: "wx",
        usage: "wx",
        summary: "find W+X and user pages in the kernel half",
        help: "Walks every present page of the kernel half with its effective rights and\n\
               lists ranges that are writable and executable, or user-accessible; an\n\
               error if there is any.",
        run: wx,
    },
];
