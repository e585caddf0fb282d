//! vmalloc and ioremap commands: `vmalloc`, `vzalloc`, `vfree`,
//! `vmalloc_to_page`, `ioremap`, `iounmap`, `vmallocinfo`, all through
//! [`VmallocApi`](crate::api::VmallocApi). Every area is a handle (`#N vmalloc
//! ...`, `#N ioremap ...`) that `free` releases with `vfree` / `iounmap`; the
//! areas are reached with `peek`, `poke`, `fill`, `read*`, `dump`... like any
//! kernel address (a vmalloc guard page faults, and the fault is one error line).

use super::{Args, CmdError, Command, Ctx, Target};
use crate::api::VmallocError;
use crate::cmd_err;
use crate::handles::{Addr, HandleId, Object};
use alloc::vec::Vec;
use core::fmt::Write;
use mm::Zone;

impl From<VmallocError> for CmdError {
    fn from(e: VmallocError) -> CmdError {
        cmd_err!("{e}")
    }
}

/// `vmalloc SIZE` / `vzalloc SIZE`.
fn alloc(ctx: &mut Ctx<'_>, args: &mut Args, zero: bool) -> Result<(), CmdError> {
    let size = args.number("SIZE")?;
    args.end()?;
    let a = ctx.kernel.vmalloc(size, zero)?;
    let zones = ctx.kernel.vmalloc_zones(a.addr);
    ctx.add(Object::Vmalloc {
        virt: a.addr,
        size,
        pages: a.pages,
    })?;
    if let Ok(n) = zones {
        write!(ctx, "frames:")?;
        for z in Zone::ALL.into_iter().rev() {
            write!(ctx, " {z}={}", n[z as usize])?;
        }
        writeln!(ctx, "; guard page at {}", Addr(a.start + a.pages * 4096))?;
    }
    Ok(())
}

fn vmalloc(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    alloc(ctx, args, false)
}

fn vzalloc(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    alloc(ctx, args, true)
}

/// Which kind of area a free command wants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vmalloc,
    Ioremap,
}

/// The address `ADDR|#N` names for `vfree`/`iounmap`: a handle must be an
/// area of the right kind.
fn area_target(ctx: &Ctx<'_>, args: &mut Args, kind: Kind) -> Result<u64, CmdError> {
    let t = args.handle_or_addr("ADDR|#N")?;
    args.end()?;
    match t {
        Target::Addr(a) => Ok(a),
        Target::Handle(id) => match (ctx.handles.get(id)?, kind) {
            (Object::Vmalloc { virt, .. }, Kind::Vmalloc)
            | (Object::Ioremap { virt, .. }, Kind::Ioremap) => Ok(*virt),
            (o, _) => Err(cmd_err!(
                "{id} ({}) is not {} (free it with 'free {id}')",
                o.kind(),
                match kind {
                    Kind::Vmalloc => "a vmalloc area",
                    Kind::Ioremap => "an ioremap area",
                }
            )),
        },
    }
}

/// Retires the handles of the area at `addr` that was just freed.
fn retire(ctx: &mut Ctx<'_>, addr: u64, kind: Kind) -> Result<(), CmdError> {
    let done: Vec<HandleId> = ctx
        .handles
        .iter()
        .filter(|(_, o)| match (o, kind) {
            (Object::Vmalloc { virt, .. }, Kind::Vmalloc)
            | (Object::Ioremap { virt, .. }, Kind::Ioremap) => *virt == addr,
            _ => false,
        })
        .map(|(id, _)| id)
        .collect();
    for id in done {
        let _ = ctx.handles.remove(id);
        writeln!(ctx, "retired {id}")?;
    }
    Ok(())
}

/// `vfree ADDR|#N`.
fn vfree(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let addr = area_target(ctx, args, Kind::Vmalloc)?;
    ctx.kernel.vfree(addr)?;
    writeln!(ctx, "vfree {}: unmapped, frames freed", Addr(addr))?;
    retire(ctx, addr, Kind::Vmalloc)
}

/// `iounmap ADDR|#N`.
fn iounmap(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let addr = area_target(ctx, args, Kind::Ioremap)?;
    ctx.kernel.iounmap(addr)?;
    writeln!(ctx, "iounmap {}: unmapped", Addr(addr))?;
    retire(ctx, addr, Kind::Ioremap)
}

/// `vmalloc_to_page ADDR`.
fn to_page(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let addr = args.addr("ADDR")?;
    args.end()?;
    let pfn = ctx.kernel.vmalloc_to_page(addr)?;
    let zone = ctx.kernel.mem_layout()?.zone_of(pfn);
    writeln!(
        ctx,
        "{} -> pfn={pfn} phys={} zone={zone}",
        Addr(addr),
        Addr(pfn.phys() + (addr & 0xfff))
    )?;
    Ok(())
}

/// `ioremap PHYS SIZE [wc]`.
fn ioremap(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let phys = args.number("PHYS")?;
    let size = args.number("SIZE")?;
    let wc = match args.opt_word() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("wc") => true,
        Some(w) if w.eq_ignore_ascii_case("uc") => false,
        Some(w) => return Err(cmd_err!("unknown option '{w}' (expected wc or uc)")),
    };
    args.end()?;
    let a = ctx.kernel.ioremap(phys, size, wc)?;
    // The type the pages have: what was asked, or the one they are mapped with
    // already (the framebuffer is WC), as Linux's PAT tracking decides.
    ctx.add(Object::Ioremap {
        virt: a.addr,
        phys,
        size,
        cache: a.cache,
    })?;
    Ok(())
}

/// `vmallocinfo`: Linux `/proc/vmallocinfo`, then the `/proc/meminfo` totals.
fn vmallocinfo(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let mut i = 0;
    while let Some(a) = ctx.kernel.vm_area_at(i)? {
        let mut line = alloc::string::String::new();
        a.vmallocinfo_line(&mut line)?;
        let id = ctx.handles.iter().find_map(|(id, o)| {
            matches!(o, Object::Vmalloc { virt, .. } | Object::Ioremap { virt, .. } if *virt == a.addr)
                .then_some(id)
        });
        match id {
            Some(id) => writeln!(ctx, "{line} {id}")?,
            None => writeln!(ctx, "{line}")?,
        }
        i += 1;
    }
    let st = ctx.kernel.vm_stat()?;
    writeln!(
        ctx,
        "VmallocTotal: {} kB  VmallocUsed: {} kB  VmallocChunk: {} kB  ({} vmalloc areas, {} ioremap areas, {} kB)",
        st.vmalloc_total >> 10,
        st.vmalloc_used >> 10,
        st.vmalloc_chunk >> 10,
        st.vmalloc_areas,
        st.ioremap_areas,
        st.ioremap_used >> 10
    )?;
    Ok(())
}

/// The vmalloc and ioremap commands, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    cmd!(
        "vmalloc",
        "vmalloc SIZE",
        "Linux vmalloc: contiguous virtual, scattered frames",
        "Maps SIZE bytes (rounded up to pages) of order-0 frames, taken in bulk\n\
         from ZONE_UNMAPPED, then NORMAL, then DMA, read-write and no-execute\n\
         in the vmalloc range, followed by an unmapped guard page. Prints the\n\
         handle and how many frames each zone gave. Free with 'vfree' or 'free'.",
        vmalloc
    ),
    cmd!(
        "vzalloc",
        "vzalloc SIZE",
        "Linux vzalloc: vmalloc with the pages zeroed",
        "As 'vmalloc'; the frames are zeroed (UNMAPPED ones through the temporary\n\
         window).",
        vzalloc
    ),
    cmd!(
        "vfree",
        "vfree ADDR|#N",
        "Linux vfree: unmap a vmalloc area, free its frames",
        "ADDR must be exactly what vmalloc returned: the middle of an area, its\n\
         guard page, an address freed already or an ioremap area is an error that\n\
         says which. The area's handle is retired.",
        vfree
    ),
    cmd!(
        "vmalloc_to_page",
        "vmalloc_to_page ADDR",
        "Linux vmalloc_to_page: the frame behind an address",
        "Any address inside a live vmalloc area (not its guard page).",
        to_page
    ),
    cmd!(
        "ioremap",
        "ioremap PHYS SIZE [wc]",
        "Linux ioremap (UC) / ioremap_wc (WC) of device memory",
        "Maps every page that [PHYS, PHYS+SIZE) touches in the ioremap range; the\n\
         handle's virt is the area's start plus PHYS % 4096 (what iounmap takes).\n\
         RAM of the memory map is refused (it is in the direct map, write-back).\n\
         A page is never mapped with two memory types: pages mapped already (the\n\
         framebuffer WC, the local APIC UC, earlier ioremaps) give the new mapping\n\
         their type, as Linux's PAT tracking does; pages of two types are refused.\n\
         Read and write it with readl/writel, peek/poke.",
        ioremap
    ),
    cmd!(
        "iounmap",
        "iounmap ADDR|#N",
        "Linux iounmap: unmap an ioremap area",
        "ADDR must be exactly what ioremap returned. The area's handle is retired.",
        iounmap
    ),
    cmd!(
        "vmallocinfo",
        "vmallocinfo",
        "live vmalloc/ioremap areas (/proc/vmallocinfo)",
        "One line per area: 'start-end size caller', then pages=N vmalloc or\n\
         phys=P ioremap / ioremap_wc (end and size include the guard page), then\n\
         the shell handle. Last, the VmallocTotal/Used/Chunk totals.",
        vmallocinfo
    ),
];
