//! Page-level commands: the DragonOS, Linux and MOS page APIs, reference counts,
//! `struct page` and zone reports, the physical memory map, and the memory of
//! live handles (`dump`, `bzero`, `bcopy`).
//!
//! Every allocation becomes a handle whose release function is the one that
//! matches the allocating function (see [`Object::release`]). Reference counts
//! can only be changed on page blocks of live handles, so the shell never frees
//! memory it did not allocate; when `put_page`/`page_decref` drops the last
//! reference, the handle is retired at once so that it cannot be freed twice.

use super::{Args, CmdError, Command, Ctx};
use crate::api::{PageInfo, PageSummary};
use crate::cmd_err;
use crate::handles::{Addr, HandleId, Object, OptAddr};
use crate::parse::{self, ParseError};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use mm::buddy::{BulkError, MAX_PAGES_PER_ALLOC, NR_ORDERS};
use mm::{PageState, Pfn, Zone, MAX_ORDER, PAGE_SIZE};

const PAGE: u64 = PAGE_SIZE as u64;

// ---------------------------------------------------------------------------
// Allocation
// ---------------------------------------------------------------------------

/// `pages N [DMA|NORMAL|UNMAPPED] [FLAG...]`: DragonOS `alloc_pages(zone, n, flags)`.
pub fn pages(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let n = args.number_in("N", 1, MAX_PAGES_PER_ALLOC)?;
    let zone = args.opt_zone()?.unwrap_or(Zone::Normal);
    let flags = args.page_flags()?;
    args.end()?;
    let n = u32::try_from(n).map_err(|_| CmdError::new("internal: N range"))?;
    let block = ctx.kernel.alloc_pages(zone, n, flags)?;
    ctx.add(block.into())?;
    Ok(())
}

/// `alloc_pages ORDER [GFP...]`: Linux `alloc_pages(gfp, order)`.
pub fn alloc_pages(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let order = order_arg(args)?;
    let gfp = args.gfp()?;
    args.end()?;
    let pfn = ctx.kernel.alloc_pages_order(gfp, order)?;
    add_struct_page(ctx, pfn, order)
}

/// `alloc_page [GFP...]`: Linux `alloc_page(gfp)`.
pub fn alloc_page(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let gfp = args.gfp()?;
    args.end()?;
    let pfn = ctx.kernel.alloc_page(gfp)?;
    add_struct_page(ctx, pfn, 0)
}

/// Largest N of `alloc_pages_bulk` (each page is one handle).
pub const MAX_BULK: u64 = 1024;

/// A list of `n` entries, all `zero`, for a bulk allocation to fill: running
/// out of memory for it is an error naming the list (`n` `what`).
pub(super) fn bulk_list<T: Clone>(n: u64, zero: T, what: &str) -> Result<Vec<T>, CmdError> {
    let n = usize::try_from(n).map_err(|_| CmdError::new("internal: N range"))?;
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| cmd_err!("out of memory for a list of {n} {what}"))?;
    v.resize(n, zero);
    Ok(v)
}

/// After a bulk free of the objects of handles `ids`, in order: retires (and
/// prints) the handles of the entries it freed, all of them or those before
/// the one it stopped at.
pub(super) fn retire_freed(
    ctx: &mut Ctx<'_>,
    ids: &[HandleId],
    res: &Result<(), BulkError>,
) -> Result<(), CmdError> {
    let done = match res {
        Ok(()) => ids.len(),
        Err(e) => e.done,
    };
    for &id in &ids[..done] {
        if let Ok(obj) = ctx.handles.remove(id) {
            writeln!(ctx, "freed {id} {obj}")?;
        }
    }
    Ok(())
}

/// The error of bulk free `call` that stopped at the entry for `ids[e.done]`.
pub(super) fn bulk_stopped(call: &str, ids: &[HandleId], e: BulkError) -> CmdError {
    cmd_err!(
        "{call} stopped at {} (entry {}) after freeing {}: {}",
        ids[e.done],
        e.done + 1,
        e.done,
        e.err
    )
}

/// `alloc_pages_bulk N [GFP...]`: Linux `alloc_pages_bulk(gfp, n, array)`; each
/// page it got becomes a `gfp_pages` handle (order 0), then one line says how
/// many it got.
pub fn alloc_pages_bulk(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let n = args.number_in("N", 1, MAX_BULK)?;
    let gfp = args.gfp()?;
    args.end()?;
    let mut v = bulk_list(n, Pfn(0), "pages")?;
    let got = ctx.kernel.alloc_pages_bulk(gfp, &mut v)?;
    for (i, &pfn) in v[..got].iter().enumerate() {
        if let Err(e) = add_struct_page(ctx, pfn, 0) {
            // Give back the pages that got no handle.
            for &p in &v[i + 1..got] {
                let _ = ctx.kernel.free_pages_order(p, 0);
            }
            return Err(e);
        }
    }
    writeln!(ctx, "alloc_pages_bulk: got {got} of {n} pages")?;
    Ok(())
}

/// `free_pages_bulk #N|#A-#B...`: Linux-style bulk free of order-0 page handles
/// (`alloc_page`, `alloc_pages 0`, `alloc_pages_bulk`) through one
/// `free_pages_bulk` call; the pages freed before a misuse are retired, the rest
/// stay live.
pub fn free_pages_bulk(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let ids = args.handle_list("#N...", MAX_BULK as usize)?;
    let mut pfns: Vec<Pfn> = Vec::new();
    pfns.try_reserve_exact(ids.len())
        .map_err(|_| cmd_err!("out of memory for the page list"))?;
    for &id in &ids {
        match ctx.handles.get(id)? {
            Object::LinuxPages { pfn, order: 0, .. } => {
                if let Ok(p) = ctx.kernel.page_info(*pfn) {
                    if p.state == PageState::Allocated && p.refcount > 1 {
                        return Err(cmd_err!(
                            "{id}: page has {} references; put_page first",
                            p.refcount
                        ));
                    }
                }
                pfns.push(*pfn)
            }
            o => {
                return Err(cmd_err!(
                    "{id} is a {} handle, not an order-0 gfp_pages handle",
                    o.kind()
                ))
            }
        }
    }
    let res = ctx.kernel.free_pages_bulk(&pfns);
    retire_freed(ctx, &ids, &res)?;
    res.map_err(|e| bulk_stopped("free_pages_bulk", &ids, e))
}

/// `get_free_pages ORDER [GFP...]`: Linux `__get_free_pages(gfp, order)`.
pub fn get_free_pages(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let order = order_arg(args)?;
    let gfp = args.gfp()?;
    args.end()?;
    let virt = ctx.kernel.get_free_pages(gfp, order)?;
    add_page_addr(ctx, virt, order, false)
}

/// `get_free_page [GFP...]`: Linux `__get_free_page(gfp)`.
pub fn get_free_page(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let gfp = args.gfp()?;
    args.end()?;
    let virt = ctx.kernel.get_free_page(gfp)?;
    add_page_addr(ctx, virt, 0, true)
}

/// `get_zeroed_page [GFP...]`: Linux `get_zeroed_page(gfp)`.
pub fn get_zeroed_page(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let gfp = args.gfp()?;
    args.end()?;
    let virt = ctx.kernel.get_zeroed_page(gfp)?;
    add_page_addr(ctx, virt, 0, true)
}

/// `page_alloc`: MOS `page_alloc(&pp)`.
pub fn page_alloc(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let pfn = ctx.kernel.page_alloc()?;
    match ctx.kernel.page_info(pfn) {
        Ok(info) => {
            ctx.add(Object::MosPage {
                pfn,
                zone: info.zone,
                virt: info.virt,
            })?;
            Ok(())
        }
        Err(e) => {
            let _ = ctx.kernel.page_decref(pfn);
            Err(cmd_err!(
                "page_alloc gave pfn {pfn} but its struct page is unreadable ({e}); freed it again"
            ))
        }
    }
}

fn order_arg(args: &mut Args) -> Result<u32, CmdError> {
    let order = args.number_in("ORDER", 0, u64::from(MAX_ORDER))?;
    u32::try_from(order).map_err(|_| CmdError::new("internal: ORDER range"))
}

/// Gives the `struct page` block `pfn` of `order` a `gfp_pages` handle; if its
/// page cannot be read, frees it again with `__free_pages`.
fn add_struct_page(ctx: &mut Ctx<'_>, pfn: Pfn, order: u32) -> Result<(), CmdError> {
    match ctx.kernel.page_info(pfn) {
        Ok(info) => {
            ctx.add(Object::LinuxPages {
                pfn,
                order,
                zone: info.zone,
                virt: info.virt,
            })?;
            Ok(())
        }
        Err(e) => {
            let _ = ctx.kernel.free_pages_order(pfn, order);
            Err(cmd_err!(
                "got pfn {pfn} but its struct page is unreadable ({e}); freed it again"
            ))
        }
    }
}

/// Gives the pages at kernel address `virt` a `gfp_addr` handle; if the address
/// does not resolve to a readable page, frees it again with the matching free.
fn add_page_addr(ctx: &mut Ctx<'_>, virt: u64, order: u32, single: bool) -> Result<(), CmdError> {
    let info = ctx
        .kernel
        .addr_to_pfn(virt)
        .and_then(|pfn| ctx.kernel.page_info(pfn));
    match info {
        Ok(info) => {
            ctx.add(Object::GfpAddr {
                virt,
                pfn: info.pfn,
                order,
                zone: info.zone,
                single,
            })?;
            Ok(())
        }
        Err(e) => {
            let _ = if single {
                ctx.kernel.free_page(virt)
            } else {
                ctx.kernel.free_pages_addr(virt, order)
            };
            Err(cmd_err!(
                "got {} but its struct page is unreadable ({e}); freed it again",
                Addr(virt)
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// PFN|ADDR|#N arguments
// ---------------------------------------------------------------------------

/// What a `PFN|ADDR|#N` argument names.
enum PageRef {
    Handle(HandleId),
    Pfn(u64),
    Addr(u64),
}

/// Reads a `PFN|ADDR|#N` argument: `#N`; `pfn=X` or a bare number is a PFN;
/// `phys=X`, `virt=X`, `addr=X` or a number written as `0x` + 16 hex digits (the
/// way the shell prints addresses) is an address.
fn page_ref(args: &mut Args) -> Result<PageRef, CmdError> {
    let w = args.word("PFN|ADDR|#N")?;
    if parse::is_handle_ref(&w) {
        return Ok(PageRef::Handle(parse::parse_handle(&w)?));
    }
    let lower = w.to_ascii_lowercase();
    if let Some(v) = lower.strip_prefix("pfn=") {
        return Ok(PageRef::Pfn(parse::parse_number(v)?));
    }
    for key in ["phys=", "virt=", "addr="] {
        if let Some(v) = lower.strip_prefix(key) {
            return Ok(PageRef::Addr(parse::parse_addr(v)?));
        }
    }
    let v = parse::parse_number(&w).map_err(|e| match e {
        ParseError::BadNumber(_) => cmd_err!(
            "bad PFN|ADDR|#N '{w}' (expected a PFN like 0x1e4c, an address like \
             0x0000000001e4c000, or #N)"
        ),
        e => e.into(),
    })?;
    let hex = lower.strip_prefix("0x").unwrap_or("");
    let digits = hex.bytes().filter(|&b| b != b'_').count();
    if digits == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit() || b == b'_') {
        Ok(PageRef::Addr(v))
    } else {
        Ok(PageRef::Pfn(v))
    }
}

/// A PFN the user typed, checked against the mem_map when the kernel says how
/// large it is.
fn checked_pfn(ctx: &Ctx<'_>, v: u64) -> Result<Pfn, CmdError> {
    let beyond = |max: u64| {
        cmd_err!(
            "pfn {v:#x} is beyond the last frame (max_pfn {max:#x}); write an address as \
             0x + 16 hex digits or phys=ADDR"
        )
    };
    let max = match ctx.kernel.mem_layout() {
        Ok(layout) => u64::from(layout.max_pfn.0),
        Err(_) => u64::from(u32::MAX),
    };
    match u32::try_from(v) {
        Ok(pfn) if v < max => Ok(Pfn(pfn)),
        _ => Err(beyond(max)),
    }
}

/// The frame a `PFN|ADDR|#N` names, for `page`: any handle with a physical
/// address works (its first page).
fn any_pfn(ctx: &Ctx<'_>, r: PageRef) -> Result<Pfn, CmdError> {
    match r {
        PageRef::Pfn(v) => checked_pfn(ctx, v),
        PageRef::Addr(a) => Ok(ctx.kernel.addr_to_pfn(a)?),
        PageRef::Handle(id) => {
            let obj = ctx.handles.get(id)?;
            match (obj.page_block(), obj.phys()) {
                (Some((pfn, _)), _) => Ok(pfn),
                (None, Some(phys)) => Ok(Pfn::containing(phys)),
                (None, None) => Err(cmd_err!(
                    "{id} {} has no physical address; give a PFN or an address",
                    obj.kind()
                )),
            }
        }
    }
}

/// The live handle whose page block contains `pfn`, with the block's first frame.
fn block_of(ctx: &Ctx<'_>, pfn: Pfn) -> Option<(HandleId, Pfn)> {
    ctx.handles.iter().find_map(|(id, o)| {
        let (head, n) = o.page_block()?;
        let off = u64::from(pfn.0).checked_sub(u64::from(head.0))?;
        (off < n).then_some((id, head))
    })
}

/// The first frame of a page block owned by a live handle, for the reference
/// count commands, and that handle. Anything else is refused: the shell never
/// changes reference counts of memory it did not allocate.
fn owned_block(ctx: &Ctx<'_>, r: PageRef) -> Result<(Pfn, HandleId), CmdError> {
    let pfn = match r {
        PageRef::Handle(id) => {
            let obj = ctx.handles.get(id)?;
            return match obj.page_block() {
                Some((pfn, _)) => Ok((pfn, id)),
                None => Err(cmd_err!(
                    "{id} is a {} handle, not a page block (expected pages, gfp_pages, \
                     gfp_addr or mos_page)",
                    obj.kind()
                )),
            };
        }
        PageRef::Pfn(v) => checked_pfn(ctx, v)?,
        PageRef::Addr(a) => ctx.kernel.addr_to_pfn(a)?,
    };
    match block_of(ctx, pfn) {
        Some((id, head)) if head == pfn => Ok((pfn, id)),
        Some((id, head)) => Err(cmd_err!(
            "pfn {pfn} is inside the block of {id}; its first page is pfn {head}"
        )),
        None => Err(cmd_err!(
            "pfn {pfn} is not the first page of a block the shell allocated (see 'handles')"
        )),
    }
}

// ---------------------------------------------------------------------------
// Reference counts
// ---------------------------------------------------------------------------

/// `get_page PFN|ADDR|#N`: Linux `get_page(page)`.
pub fn get_page(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let r = page_ref(args)?;
    args.end()?;
    let (pfn, _) = owned_block(ctx, r)?;
    let count = ctx.kernel.get_page(pfn)?;
    writeln!(ctx, "pfn={pfn} refcount={count}")?;
    Ok(())
}

/// References of `pfn` that `insert` mappings hold stay theirs: the mapping's
/// reference keeps the page alive until `remove` (MOS semantics). Refuses a
/// put that would take one of them; `Ok(true)` when the put drops the handle's
/// own reference and only the mappings' remain, so the handle is retired
/// (else a later `free` of it would free a page that is still mapped).
fn keep_mapping_refs(ctx: &Ctx<'_>, pfn: Pfn) -> Result<bool, CmdError> {
    let mapped = ctx
        .handles
        .iter()
        .filter(|(_, o)| matches!(o, Object::Inserted { pfn: p, .. } if *p == pfn))
        .count() as u32;
    if mapped == 0 {
        return Ok(false);
    }
    let count = ctx.kernel.page_info(pfn)?.refcount;
    if count <= mapped {
        return Err(cmd_err!(
            "pfn {pfn}: its {count} reference(s) are held by {mapped} insert mapping(s); \
             'remove' or free those handles first"
        ));
    }
    Ok(count == mapped + 1)
}

/// `put_page PFN|ADDR|#N`: Linux `put_page(page)`.
pub fn put_page(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let r = page_ref(args)?;
    args.end()?;
    let (pfn, id) = owned_block(ctx, r)?;
    let last_own = keep_mapping_refs(ctx, pfn)?;
    let freed = ctx.kernel.put_page(pfn)?;
    after_put(ctx, pfn, id, freed || last_own, "put_page")
}

/// `page_decref PFN|ADDR|#N`: MOS `page_decref(pp)`.
pub fn page_decref(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let r = page_ref(args)?;
    args.end()?;
    let (pfn, id) = owned_block(ctx, r)?;
    let last_own = keep_mapping_refs(ctx, pfn)?;
    let freed = ctx.kernel.page_decref(pfn)?;
    after_put(ctx, pfn, id, freed || last_own, "page_decref")
}

/// Prints the new count, or retires handle `id` whose reference is gone: its
/// pages were just freed, or (`retire`) only `insert` mappings hold them now.
fn after_put(
    ctx: &mut Ctx<'_>,
    pfn: Pfn,
    id: HandleId,
    retire: bool,
    func: &str,
) -> Result<(), CmdError> {
    let info = ctx.kernel.page_info(pfn);
    match info {
        Ok(info) if info.state == PageState::Allocated && info.refcount > 0 => {
            writeln!(ctx, "pfn={pfn} refcount={}", info.refcount)?;
            if !retire {
                return Ok(());
            }
            writeln!(ctx, "the remaining references belong to insert mappings")?;
        }
        _ if !retire => {
            writeln!(ctx, "pfn={pfn} reference dropped")?;
            return Ok(());
        }
        _ => writeln!(ctx, "pfn={pfn} refcount=0: pages freed by {func}")?,
    }
    let obj = ctx.handles.remove(id)?;
    writeln!(ctx, "retired {id} {obj}")?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Raw frees: the kernel's own misuse detection, exercised directly
// ---------------------------------------------------------------------------

/// Checks that a raw free of `pfn` cannot hurt the kernel: the frame is the head
/// of a block a live handle owns (returned, so the handle can be retired), or it
/// is not an allocated block head at all (free, reserved, slab, tail, a hole...),
/// in which case the kernel must refuse the call and report the misuse. A block
/// the kernel allocated for itself is never handed to a raw free.
///
/// With the owner comes whether this free drops the handle's own reference
/// while `insert` mappings keep the page ([`keep_mapping_refs`], which also
/// refuses a free that would take a mapping's reference).
fn raw_free_guard(ctx: &Ctx<'_>, pfn: Pfn) -> Result<Option<(HandleId, bool)>, CmdError> {
    if let Some((id, head)) = block_of(ctx, pfn) {
        if head != pfn {
            return Ok(None);
        }
        return Ok(Some((id, keep_mapping_refs(ctx, pfn)?)));
    }
    match ctx.kernel.page_info(pfn) {
        Ok(p) if p.state == PageState::Allocated => Err(cmd_err!(
            "pfn {pfn} is a block the kernel allocated for itself, not one of the shell's \
             handles; refusing to free it"
        )),
        _ => Ok(None),
    }
}

/// After a raw free succeeded: retire the owning handle if the pages are gone,
/// or print the reference count that remains.
fn after_raw_free(
    ctx: &mut Ctx<'_>,
    pfn: Pfn,
    owner: Option<(HandleId, bool)>,
    func: &str,
) -> Result<(), CmdError> {
    let still = matches!(ctx.kernel.page_info(pfn), Ok(p) if p.state == PageState::Allocated);
    match owner {
        Some((id, _)) if !still => {
            writeln!(ctx, "{func}: pfn={pfn} freed")?;
            let obj = ctx.handles.remove(id)?;
            writeln!(ctx, "retired {id} {obj}")?;
        }
        Some((id, true)) => {
            writeln!(
                ctx,
                "{func}: pfn={pfn} reference dropped; the rest belong to insert mappings"
            )?;
            let obj = ctx.handles.remove(id)?;
            writeln!(ctx, "retired {id} {obj}")?;
        }
        _ => writeln!(ctx, "{func}: pfn={pfn} reference dropped")?,
    }
    Ok(())
}

/// `free_pages PFN|ADDR|#N N`: DragonOS `free_pages(page, n)` called with exactly
/// these arguments, so that its checks (double free, reserved page, wrong count,
/// not a block head, PFN outside RAM) answer for themselves.
pub fn raw_free_pages(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let r = page_ref(args)?;
    let n = args.u32("N")?;
    args.end()?;
    let pfn = any_pfn(ctx, r)?;
    let owner = raw_free_guard(ctx, pfn)?;
    ctx.kernel.free_pages(pfn, n)?;
    after_raw_free(ctx, pfn, owner, "free_pages")
}

/// `__free_pages PFN|ADDR|#N ORDER`: Linux `__free_pages(page, order)` called with
/// exactly these arguments.
pub fn raw_free_pages_order(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let r = page_ref(args)?;
    let order = args.u32("ORDER")?;
    args.end()?;
    let pfn = any_pfn(ctx, r)?;
    let owner = raw_free_guard(ctx, pfn)?;
    ctx.kernel.free_pages_order(pfn, order)?;
    after_raw_free(ctx, pfn, owner, "__free_pages")
}

// ---------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------

/// `page PFN|ADDR|#N`: one `struct page`.
pub fn page(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let r = page_ref(args)?;
    args.end()?;
    let pfn = any_pfn(ctx, r)?;
    let info = ctx.kernel.page_info(pfn)?;
    let owner = block_of(ctx, pfn).map(|(id, _)| id);
    print_page(ctx, &info, owner)
}

fn print_page(ctx: &mut Ctx<'_>, p: &PageInfo, owner: Option<HandleId>) -> Result<(), CmdError> {
    writeln!(
        ctx,
        "pfn={} phys={} virt={} zone={}",
        p.pfn,
        Addr(p.pfn.phys()),
        OptAddr(p.virt),
        p.zone
    )?;
    let mut line = alloc::format!("state={}", p.state.name());
    match p.state {
        PageState::Free | PageState::Cached | PageState::Slab => {
            let _ = write!(line, " order={} n={}", p.order, p.n);
        }
        PageState::Allocated => {
            let _ = write!(line, " order={} n={} refcount={}", p.order, p.n, p.refcount);
        }
        PageState::Tail => {
            if let Some(h) = p.head {
                let _ = write!(line, " head={h}");
            }
        }
        PageState::Reserved => {}
    }
    let _ = write!(
        line,
        " flags={} ram={}",
        p.flags,
        if p.ram { "yes" } else { "no" }
    );
    if let Some(id) = owner {
        let _ = write!(line, " handle={id}");
    }
    writeln!(ctx, "{line}")?;
    Ok(())
}

/// `buddyinfo`: `/proc/buddyinfo`, exactly.
pub fn buddyinfo(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let mut lines = Vec::new();
    for zone in Zone::ALL {
        let z = ctx.kernel.zone_info(zone)?;
        if z.present == 0 {
            continue;
        }
        // seq_printf(m, "Node %d, zone %8s ", ...) then "%6lu " per order.
        let mut line = alloc::format!("Node 0, zone {:>8} ", zone.name());
        for n in z.nr_free.iter().take(NR_ORDERS) {
            let _ = write!(line, "{n:>6} ");
        }
        lines.push(line);
    }
    for line in lines {
        writeln!(ctx, "{line}")?;
    }
    Ok(())
}

/// `zoneinfo`: every zone's span and page counts, and the lowmem limit.
pub fn zoneinfo(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let layout = ctx.kernel.mem_layout()?;
    let mut zones = Vec::new();
    for zone in Zone::ALL {
        zones.push((zone, ctx.kernel.zone_info(zone)?));
    }
    for (zone, z) in zones {
        writeln!(ctx, "zone {zone}")?;
        if z.present == 0 {
            writeln!(ctx, "  empty (no RAM in this zone)")?;
            continue;
        }
        writeln!(ctx, "  pfn: {}..{}", z.start_pfn, z.end_pfn)?;
        writeln!(
            ctx,
            "  phys: {}..{}",
            Addr(z.start_pfn.phys()),
            Addr(z.end_pfn.phys())
        )?;
        for (name, pages) in [
            ("present", z.present),
            ("managed", z.managed),
            ("free", z.free),
            ("cached", z.cached),
            ("min", z.wmark[0]),
            ("low", z.wmark[1]),
            ("high", z.wmark[2]),
        ] {
            writeln!(
                ctx,
                "  {name}: {pages} pages, {} bytes",
                pages.saturating_mul(PAGE)
            )?;
        }
    }
    writeln!(
        ctx,
        "lowmem: pfn {} phys {} (ZONE_UNMAPPED starts here)",
        layout.lowmem,
        Addr(layout.lowmem.phys())
    )?;
    writeln!(
        ctx,
        "max_pfn: {} (the mem_map describes {})",
        layout.max_pfn,
        Size(u64::from(layout.max_pfn.0) * PAGE)
    )?;
    Ok(())
}

/// Cells per `pagemap` row.
pub const PAGEMAP_CELLS: u32 = 48;
/// Rows `pagemap` aims for (at most; zone boundaries may add two).
pub const PAGEMAP_ROWS: u64 = 32;

/// `pagemap [START_PFN [END_PFN]]`: a picture of physical memory.
pub fn pagemap(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let start = args.opt_number("START_PFN")?;
    let end = args.opt_number("END_PFN")?;
    args.end()?;
    let layout = ctx.kernel.mem_layout()?;
    let max = u64::from(layout.max_pfn.0);
    let start = start.unwrap_or(0);
    let end = end.unwrap_or(max);
    if end > max {
        return Err(cmd_err!(
            "END_PFN {end:#x} is beyond the last frame (max_pfn {max:#x})"
        ));
    }
    if start >= end {
        return Err(cmd_err!(
            "START_PFN {start:#x} must be below END_PFN {end:#x}"
        ));
    }
    // Both fit in u32: end <= max_pfn, a u32.
    let (start, end) = (start as u32, end as u32);
    let span = u64::from(end - start);
    let per_row = u64::from(PAGEMAP_CELLS);
    let cell = span
        .div_ceil(PAGEMAP_ROWS * per_row)
        .max(1)
        .next_power_of_two();
    let cell = u32::try_from(cell).unwrap_or(1 << 31);
    writeln!(
        ctx,
        "pfn {:#x}..{:#x}: 1 cell = {} page{} ({}), 1 row = {} cells ({})",
        start,
        end,
        cell,
        if cell == 1 { "" } else { "s" },
        Size(u64::from(cell) * PAGE),
        PAGEMAP_CELLS,
        Size(u64::from(cell) * u64::from(PAGEMAP_CELLS) * PAGE)
    )?;
    writeln!(
        ctx,
        "legend: . free  c cached  # allocated  S slab  K reserved RAM  ' ' not RAM"
    )?;
    writeln!(
        ctx,
        "a mixed cell shows the state of most of its pages; zones D, N, U"
    )?;
    let mut pfn = start;
    while pfn < end {
        let zone = layout.zone_of(Pfn(pfn));
        let row_end = end
            .min(layout.zone_end(Pfn(pfn)).0)
            .min(pfn.saturating_add(cell.saturating_mul(PAGEMAP_CELLS)))
            .max(pfn + 1);
        let mut cells = String::with_capacity(PAGEMAP_CELLS as usize);
        let mut c = pfn;
        while c < row_end {
            let c_end = row_end.min(c.saturating_add(cell));
            let s = ctx.kernel.page_summary(Pfn(c), Pfn(c_end))?;
            cells.push(cell_char(&s));
            c = c_end;
        }
        writeln!(
            ctx,
            "{} {} |{cells}|",
            Addr(Pfn(pfn).phys()),
            zone_letter(zone)
        )?;
        pfn = row_end;
    }
    Ok(())
}

/// `D`, `N`, `U`.
fn zone_letter(z: Zone) -> char {
    match z {
        Zone::Dma => 'D',
        Zone::Normal => 'N',
        Zone::Unmapped => 'U',
    }
}

/// The character of a `pagemap` cell: the state with the most pages; on a tie
/// the busier state (allocated, slab, reserved, cached, free, hole) wins. An
/// empty range is a hole.
pub fn cell_char(s: &PageSummary) -> char {
    if s.total() == 0 {
        return ' ';
    }
    let states = [
        (s.allocated, '#'),
        (s.slab, 'S'),
        (s.reserved, 'K'),
        (s.cached, 'c'),
        (s.free, '.'),
        (s.hole, ' '),
    ];
    let mut best = states[0];
    for st in &states[1..] {
        if st.0 > best.0 {
            best = *st;
        }
    }
    best.1
}

/// A byte count as `N MiB`, `N KiB` or `N bytes` (exact).
struct Size(u64);

impl core::fmt::Display for Size {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.0;
        if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
            write!(f, "{} GiB", b >> 30)
        } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
            write!(f, "{} MiB", b >> 20)
        } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
            write!(f, "{} KiB", b >> 10)
        } else {
            write!(f, "{b} bytes")
        }
    }
}

// ---------------------------------------------------------------------------
// Memory of live handles
// ---------------------------------------------------------------------------

/// Longest `dump`.
pub const DUMP_MAX: u64 = 256;
/// `dump` length when none is given.
pub const DUMP_DEFAULT: u64 = 64;

/// The kernel virtual address and byte size of the memory of handle `id`.
fn handle_memory(ctx: &Ctx<'_>, id: HandleId) -> Result<(u64, u64), CmdError> {
    let obj = ctx.handles.get(id)?;
    match obj.memory() {
        Some((Some(virt), len)) if len > 0 && virt.checked_add(len).is_some() => Ok((virt, len)),
        Some(_) => Err(cmd_err!(
            "{id} {} has no kernel virtual address (virt=none)",
            obj.kind()
        )),
        None => Err(cmd_err!(
            "{id} {} has no memory of its own to read or write (expected kmalloc, \
             cache_obj, pool_obj, pages, gfp_pages, gfp_addr, mos_page, mapping, insert, \
             vmalloc or ioremap)",
            obj.kind()
        )),
    }
}

/// `[OFFSET [LEN]]` inside an object of `size` bytes; LEN defaults to the rest,
/// at most `max_len`.
fn range_args(
    args: &mut Args,
    size: u64,
    max_len: u64,
    default_len: u64,
) -> Result<(u64, u64), CmdError> {
    let offset = if args.peek().is_some() {
        args.number_in("OFFSET", 0, size - 1)?
    } else {
        0
    };
    let room = (size - offset).min(max_len);
    let len = if args.peek().is_some() {
        args.number_in("LEN", 1, room)?
    } else {
        room.min(default_len)
    };
    Ok((offset, len))
}

/// `bzero #N [OFFSET [LEN]]`: MOS `bzero`.
pub fn bzero(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let id = args.handle("#N")?;
    let (virt, size) = handle_memory(ctx, id)?;
    let (offset, len) = range_args(args, size, size, size)?;
    args.end()?;
    ctx.kernel.bzero(virt + offset, len)?;
    writeln!(
        ctx,
        "zeroed {len} bytes of {id} at {} (offset {offset})",
        Addr(virt + offset)
    )?;
    Ok(())
}

/// `bcopy #SRC #DST [LEN]`: MOS `bcopy`.
pub fn bcopy(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let src = args.handle("#SRC")?;
    let dst = args.handle("#DST")?;
    let (src_virt, src_size) = handle_memory(ctx, src)?;
    let (dst_virt, dst_size) = handle_memory(ctx, dst)?;
    let room = src_size.min(dst_size);
    let len = if args.peek().is_some() {
        args.number_in("LEN", 1, room)?
    } else {
        room
    };
    args.end()?;
    ctx.kernel.bcopy(src_virt, dst_virt, len)?;
    writeln!(
        ctx,
        "copied {len} bytes from {src} at {} to {dst} at {}",
        Addr(src_virt),
        Addr(dst_virt)
    )?;
    Ok(())
}

/// `dump #N [OFFSET [LEN]]`: hex dump, 16 bytes per line.
pub fn dump(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let id = args.handle("#N")?;
    let (virt, size) = handle_memory(ctx, id)?;
    let (offset, len) = range_args(args, size, DUMP_MAX, DUMP_DEFAULT)?;
    args.end()?;
    let mut buf = alloc::vec![0u8; len as usize];
    ctx.kernel.read_bytes(virt + offset, &mut buf)?;
    writeln!(
        ctx,
        "{id} virt={} offset={offset} len={len}",
        Addr(virt + offset)
    )?;
    for (i, chunk) in buf.chunks(16).enumerate() {
        let line = hex_line(offset + 16 * i as u64, chunk);
        writeln!(ctx, "{line}")?;
    }
    Ok(())
}

/// `OOOOOOOO  xx xx xx xx xx xx xx xx  xx xx xx xx xx xx xx xx  |ascii...|`
/// (`OOOOOOOO` is the offset in the object, hex).
pub fn hex_line(offset: u64, bytes: &[u8]) -> String {
    let mut s = alloc::format!("{offset:08x} ");
    for i in 0..16 {
        if i % 8 == 0 {
            s.push(' ');
        }
        match bytes.get(i) {
            Some(b) => {
                let _ = write!(s, "{b:02x} ");
            }
            None => s.push_str("   "),
        }
    }
    s.push_str(" |");
    for &b in bytes {
        s.push(if b.is_ascii_graphic() || b == b' ' {
            b as char
        } else {
            '.'
        });
    }
    s.push('|');
    s
}

/// The page-level commands, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "pages",
        usage: "pages N [DMA|NORMAL|UNMAPPED] [FLAG...]",
        summary: "DragonOS alloc_pages: N contiguous pages from a zone",
        help: "N is 1..=63; the zone defaults to NORMAL (DMA: below 16 MiB; UNMAPPED: above\n\
               the direct map, virt=none). FLAGs: PGT_MAPPED, KERNEL_INIT, DEVICE, KERNEL,\n\
               SHARED (PAGE_ prefix allowed). free #N calls free_pages(page, N).",
        run: pages,
    },
    Command {
        name: "alloc_pages",
        usage: "alloc_pages ORDER [GFP...]",
        summary: "Linux alloc_pages: 2^ORDER pages as a struct page",
        help: GFP_HELP_STRUCT_PAGE,
        run: alloc_pages,
    },
    Command {
        name: "alloc_page",
        usage: "alloc_page [GFP...]",
        summary: "Linux alloc_page: one page as a struct page",
        help: "alloc_pages(gfp, 0); see 'help alloc_pages'.\n\
               free #N calls __free_pages(page, 0).",
        run: alloc_page,
    },
    Command {
        name: "alloc_pages_bulk",
        usage: "alloc_pages_bulk N [GFP...]",
        summary: "Linux alloc_pages_bulk: N order-0 pages in one call",
        help: "alloc_pages_bulk(gfp, n, array), N 1..=1024. Each page it got is its own\n\
               gfp_pages handle (order 0): free #N releases one page with __free_pages,\n\
               free_pages_bulk releases several in one call. The last line says how\n\
               many pages it got: fewer than N when memory runs out.",
        run: alloc_pages_bulk,
    },
    Command {
        name: "free_pages_bulk",
        usage: "free_pages_bulk #N|#A-#B...",
        summary: "free order-0 page handles in one free_pages_bulk call",
        help: "Handles one by one or as ranges #A-#B (at most 1024 in all). They must\n\
               be order-0 gfp_pages handles (alloc_page, alloc_pages 0,\n\
               alloc_pages_bulk). They are freed in the order given; the first page the\n\
               allocator refuses (a handle listed twice is a double free) stops the batch:\n\
               the ones before it are freed and retired, it and the rest stay live.",
        run: free_pages_bulk,
    },
    Command {
        name: "get_free_pages",
        usage: "get_free_pages ORDER [GFP...]",
        summary: "Linux __get_free_pages: 2^ORDER pages by address",
        help: "ORDER is 0..=10. Mapped memory only: NORMAL then DMA (GFP_DMA: DMA only;\n\
               __GFP_HIGHMEM is ignored); an error if none is free. __GFP_ZERO zeroes.\n\
               free #N calls free_pages(addr, ORDER).",
        run: get_free_pages,
    },
    Command {
        name: "get_free_page",
        usage: "get_free_page [GFP...]",
        summary: "Linux __get_free_page: one page by address",
        help: "__get_free_pages(gfp, 0). free #N calls free_page(addr).",
        run: get_free_page,
    },
    Command {
        name: "get_zeroed_page",
        usage: "get_zeroed_page [GFP...]",
        summary: "Linux get_zeroed_page: one zeroed page by address",
        help: "See the zeroes with 'dump #N'. free #N calls free_page(addr).",
        run: get_zeroed_page,
    },
    Command {
        name: "page_alloc",
        usage: "page_alloc",
        summary: "MOS page_alloc: one zeroed page, refcount 1",
        help: "Out of memory is MOS -E_NO_MEM. free #N (or page_decref #N) calls\n\
               page_decref(page).",
        run: page_alloc,
    },
    Command {
        name: "page_decref",
        usage: "page_decref PFN|ADDR|#N",
        summary: "MOS page_decref: drop a reference, free at 0",
        help: REFCOUNT_HELP,
        run: page_decref,
    },
    Command {
        name: "free_pages",
        usage: "free_pages PFN|ADDR|#N N",
        summary: "DragonOS free_pages(page, n), args as given",
        help: RAW_FREE_HELP,
        run: raw_free_pages,
    },
    Command {
        name: "__free_pages",
        usage: "__free_pages PFN|ADDR|#N ORDER",
        summary: "Linux __free_pages(page, order), args as given",
        help: RAW_FREE_HELP,
        run: raw_free_pages_order,
    },
    Command {
        name: "get_page",
        usage: "get_page PFN|ADDR|#N",
        summary: "Linux get_page: take a reference, print the new count",
        help: REFCOUNT_HELP,
        run: get_page,
    },
    Command {
        name: "put_page",
        usage: "put_page PFN|ADDR|#N",
        summary: "Linux put_page: drop a reference, free at 0",
        help: REFCOUNT_HELP,
        run: put_page,
    },
    Command {
        name: "page",
        usage: "page PFN|ADDR|#N",
        summary: "show one struct page: state, order, refcount, flags",
        help: "Line 1: pfn, phys, virt (page_address, or none), zone. Line 2: state (free,\n\
               allocated, tail, slab, reserved, cached), order and n (pages) of a block head,\n\
               refcount, head (of a tail), flags, ram (no: a hole), handle (the owner).\n\
               PFN: a number (0x1e4c) or pfn=N. ADDR: a physical or direct-map virtual\n\
               address written as 0x + 16 hex digits, or phys=A, virt=A.\n\
               #N: the first page of the handle's object.",
        run: page,
    },
    Command {
        name: "buddyinfo",
        usage: "buddyinfo",
        summary: "free blocks per zone and order, as /proc/buddyinfo",
        help: "Columns: orders 0..10 (blocks of 4 KiB .. 4 MiB). As in Linux, blocks held\n\
               in the per-zone caches are not counted (zoneinfo shows them as cached).",
        run: buddyinfo,
    },
    Command {
        name: "zoneinfo",
        usage: "zoneinfo",
        summary: "per zone: pfn range, page counts and watermarks",
        help: "Ranges are half-open (end excluded). present: RAM in the zone; managed: RAM\n\
               under the allocator; free: free pages, the cached ones (per-zone caches)\n\
               included. Then the lowmem limit (end of the direct map) and max_pfn.\n\
               Watermarks (Linux's, set at boot from min_free_kbytes=N, default\n\
               sqrt(16 x lowmem KiB)): no command takes a zone's free lists below min;\n\
               those pages are the kernel's reserve, for the shell's own memory when a\n\
               user has taken the rest. A request walks its zones at low first, then\n\
               at min. high is shown only (memkern reclaims nothing in the background).",
        run: zoneinfo,
    },
    Command {
        name: "pagemap",
        usage: "pagemap [START_PFN [END_PFN]]",
        summary: "picture of physical memory by page state and zone",
        help: "Default: all of the mem_map. One character per cell of 2^k pages, 48 cells\n\
               per row, k chosen so that the range fits in about 32 rows. Each row starts\n\
               with its physical address and zone (D DMA, N NORMAL, U UNMAPPED) and stays\n\
               in one zone. Legend: . free  c cached  # allocated  S slab\n\
               K reserved RAM (kernel image, mem_map...)  ' ' not RAM. A mixed cell shows\n\
               the state of most of its pages (on a tie, the busier state).",
        run: pagemap,
    },
    Command {
        name: "dump",
        usage: "dump #N [OFFSET [LEN]]",
        summary: "hex dump of a handle's memory (at most 256 bytes)",
        help: "LEN defaults to 64 (at most 256; 16 bytes per line); offsets count from the\n\
               start of the object. Works on kmalloc, cache_obj, pool_obj, pages, gfp_pages,\n\
               gfp_addr and mos_page handles with a virtual address.",
        run: dump,
    },
    Command {
        name: "bzero",
        usage: "bzero #N [OFFSET [LEN]]",
        summary: "MOS bzero: zero a handle's memory, or part of it",
        help: "Default: from OFFSET (0) to the end of the object; the range must lie\n\
               inside it. Same handles as 'dump'.",
        run: bzero,
    },
    Command {
        name: "bcopy",
        usage: "bcopy #SRC #DST [LEN]",
        summary: "MOS bcopy: copy one handle's memory to another's",
        help: "LEN defaults to the size of the smaller object and must fit in both.\n\
               Same handles as 'dump'.",
        run: bcopy,
    },
];

const GFP_HELP_STRUCT_PAGE: &str =
    "ORDER is 0..=10. GFP: GFP_KERNEL (default), GFP_ATOMIC, GFP_DMA, __GFP_HIGHMEM,\n\
     __GFP_ZERO. Zones: NORMAL then DMA; GFP_DMA: DMA only; __GFP_HIGHMEM: UNMAPPED\n\
     first (then virt=none). free #N calls __free_pages(page, ORDER).";

const RAW_FREE_HELP: &str =
    "Calls the page allocator's free function with the PFN and count or order
exactly as given, so that its own misuse checks answer: freeing a free page
(double free), a reserved or kernel page, a slab page, with the wrong count or
order, a page that is not the first of its block, or a PFN outside RAM is
reported as an error and changes nothing. On success the handle that owned the
block is retired. Blocks the kernel allocated for itself are never freed this
way. Use 'free #N' for the ordinary release.";

const REFCOUNT_HELP: &str =
    "Works on the first page of a block of a live handle (pages, gfp_pages,\n\
     gfp_addr, mos_page): PFN (0x1e4c or pfn=N), ADDR (0x + 16 hex digits, phys=A,\n\
     virt=A) or #N. When the last reference goes the pages are freed and the handle\n\
     is retired. While a block holds more than one reference, free #N refuses it.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MemLayout;

    #[test]
    fn hex_lines_are_aligned() {
        let l = hex_line(0x10, b"Hello, world!\x00\x01\xff");
        assert_eq!(
            l,
            "00000010  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 00 01 ff  |Hello, world!...|"
        );
        assert!(l.len() <= 80);
        let short = hex_line(0, b"ab");
        assert_eq!(
            short,
            "00000000  61 62                                             |ab|"
        );
    }

    #[test]
    fn cells_take_the_most_common_state_and_ties_go_to_the_busier() {
        let s = |free, allocated, hole| PageSummary {
            free,
            allocated,
            hole,
            ..PageSummary::default()
        };
        assert_eq!(cell_char(&s(10, 6, 0)), '.');
        assert_eq!(cell_char(&s(8, 8, 0)), '#');
        assert_eq!(cell_char(&s(0, 0, 16)), ' ');
        assert_eq!(cell_char(&s(1, 0, 15)), ' ');
        assert_eq!(cell_char(&PageSummary::default()), ' ');
    }

    #[test]
    fn sizes_print_exactly() {
        assert_eq!(alloc::format!("{}", Size(64 << 10)), "64 KiB");
        assert_eq!(alloc::format!("{}", Size(3 << 20)), "3 MiB");
        assert_eq!(alloc::format!("{}", Size(1536 << 10)), "1536 KiB");
        assert_eq!(alloc::format!("{}", Size(4 << 30)), "4 GiB");
        assert_eq!(alloc::format!("{}", Size(100)), "100 bytes");
    }

    #[test]
    fn layout_zones() {
        let l = MemLayout {
            max_pfn: Pfn(0x4000),
            lowmem: Pfn(0x2000),
        };
        assert_eq!(l.zone_of(Pfn(0xfff)), Zone::Dma);
        assert_eq!(l.zone_end(Pfn(0)), Pfn(0x1000));
        assert_eq!(l.zone_of(Pfn(0x1000)), Zone::Normal);
        assert_eq!(l.zone_end(Pfn(0x1fff)), Pfn(0x2000));
        assert_eq!(l.zone_of(Pfn(0x2000)), Zone::Unmapped);
        assert_eq!(l.zone_end(Pfn(0x2000)), Pfn(0x4000));
    }
}
