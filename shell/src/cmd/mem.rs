//! Memory commands: memstat, handles, free.
//!
//! The commands that create objects (kmalloc, ...) go here too: parse the
//! arguments, call the memory API function, then `ctx.add(object.into())?` to give the
//! result a handle and print its line. The page-level commands are in `pages.rs`,
//! the slab-level ones in `slab.rs`.

use super::{Args, CmdError, Command, Ctx, Target};
use crate::cmd_err;
use crate::handles::{HandleId, Object};
use alloc::string::String;
use core::fmt::Write;
use mm::{MmError, PageState, Zone, PAGE_SIZE};

/// `memstat`.
pub fn memstat(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let s = ctx.kernel.mm_stat();
    for (name, value) in [
        ("total", s.total),
        ("used", s.used),
        ("free", s.free),
        ("shared", s.shared),
        ("cache_used", s.cache_used),
        ("cache_free", s.cache_free),
        ("available", s.available),
    ] {
        writeln!(ctx, "{name}: {value}")?;
    }
    for zone in Zone::ALL {
        if let Some(z) = ctx.kernel.zone_stat(zone) {
            let page = PAGE_SIZE as u64;
            writeln!(
                ctx,
                "zone {zone}: total={} used={} free={} free_pages={} managed_pages={} \
                 min_pages={} low_pages={} high_pages={}",
                z.total,
                z.used,
                z.free,
                z.free / page,
                z.total / page,
                z.wmark[0] / page,
                z.wmark[1] / page,
                z.wmark[2] / page
            )?;
        }
    }
    Ok(())
}

/// `handles`.
pub fn handles(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    if ctx.handles.is_empty() {
        writeln!(ctx, "no live handles")?;
        return Ok(());
    }
    // One line at a time: a copy of a large table would live on the kernel's reserve.
    let mut after = 0;
    while let Some((id, o)) = ctx.handles.first_after(after) {
        let line = alloc::format!("{id} {o}");
        writeln!(ctx, "{line}")?;
        after = id.0;
    }
    Ok(())
}

/// `free #N|ADDR|all`.
pub fn free(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    if args.eat("all") {
        args.end()?;
        return free_all(ctx);
    }
    let target = args.handle_or_addr("#N|ADDR|all")?;
    args.end()?;
    let id = match target {
        Target::Handle(id) => id,
        Target::Addr(a) => ctx.handles.find_addr(a)?,
    };
    let obj = ctx.handles.get(id)?.clone();
    release(ctx, id, &obj).map_err(|e| cmd_err!("cannot free {id} {}: {e}", obj.kind()))
}

/// Releases `obj` (handle `id`), forgets the handle and prints `freed #N ...`.
fn release(ctx: &mut Ctx<'_>, id: HandleId, obj: &Object) -> Result<(), CmdError> {
    check_single_reference(ctx, obj)?;
    if let Object::Cache { name, .. } = obj {
        if let Some((pid, pool)) = super::slab::pool_on_cache(ctx, name) {
            return Err(cmd_err!(
                "cache '{name}' backs mempool '{pool}' ({pid}); free the pool first"
            ));
        }
    }
    if let Object::Aspace { root } = obj {
        if let Some(m) = super::vm::mapped_in(ctx, *root) {
            return Err(cmd_err!(
                "{m} is mapped in this address space; free it first"
            ));
        }
    }
    obj.release(ctx.kernel).map_err(|e| match (obj, e) {
        (Object::Cache { .. }, MmError::CacheBusy { live }) => {
            cmd_err!("cache still has {live} live object{}", plural_s(live))
        }
        (Object::Pool { .. }, MmError::CacheBusy { live }) => {
            cmd_err!(
                "mempool still has {live} element{} outstanding",
                plural_s(live)
            )
        }
        (_, e) => e.into(),
    })?;
    // The handle was live a moment ago; removing it cannot fail.
    let _ = ctx.handles.remove(id);
    let _ = writeln!(ctx, "freed {id} {obj}");
    Ok(())
}

fn plural_s(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Refuses to free a page block that holds more than one reference: the free
/// function would only drop one, the handle would go and the pages would stay
/// allocated with nobody to free them. (If the kernel cannot say, the free
/// function decides.)
fn check_single_reference(ctx: &Ctx<'_>, obj: &Object) -> Result<(), CmdError> {
    let Some((pfn, _)) = obj.page_block() else {
        return Ok(());
    };
    match ctx.kernel.page_info(pfn) {
        Ok(p) if p.state == PageState::Allocated && p.refcount > 1 => Err(cmd_err!(
            "page has {} references; put_page first",
            p.refcount
        )),
        _ => Ok(()),
    }
}

/// `free all`: every live handle, newest first (objects before the caches and
/// pools they came from, pools before their caches). Handles that fail stay live
/// and are named in the one error line. Then the slab caches give back the empty
/// slabs they keep for reuse (`kmem_cache_shrink` of every cache), so that memory
/// returns to the boot numbers: the shell does that after the command, once the
/// command line and the command's own heap objects are freed (the kernel heap is
/// the slab allocator: a slab holding one of them could not go back, and would be
/// kept empty afterwards).
fn free_all(ctx: &mut Ctx<'_>) -> Result<(), CmdError> {
    ctx.shrink_caches = true;
    release_all(ctx)
}

fn release_all(ctx: &mut Ctx<'_>) -> Result<(), CmdError> {
    if ctx.handles.is_empty() {
        writeln!(ctx, "no live handles")?;
        return Ok(());
    }
    let total = ctx.handles.len();
    let mut failed = String::new();
    let mut freed = 0usize;
    // Newest first, one handle at a time (no copy of the table: it may be large
    // and memory short).
    let mut before = u64::MAX;
    while let Some((id, obj)) = ctx.handles.last_before(before) {
        let obj = obj.clone();
        before = id.0;
        match release(ctx, id, &obj) {
            Ok(()) => freed += 1,
            Err(e) => {
                if !failed.is_empty() {
                    failed.push_str(", ");
                }
                failed.push_str(&alloc::format!("{id} ({e})"));
            }
        }
    }
    if failed.is_empty() {
        let s = if freed == 1 { "" } else { "s" };
        writeln!(ctx, "freed {freed} handle{s}")?;
        Ok(())
    } else {
        Err(cmd_err!(
            "freed {freed} of {total} handles; could not free {failed}"
        ))
    }
}

/// The handle and memory-statistics commands, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "memstat",
        usage: "memstat",
        summary: "print mm_stat() and per-zone numbers, in bytes",
        help: "One 'name: value' line for total, used, free, shared, cache_used, cache_free,\n\
               available (bytes), then one line per zone:\n\
               'zone NAME: total=.. used=.. free=.. free_pages=.. managed_pages=..\n\
               min_pages=.. low_pages=.. high_pages=..'. The last three are the zone's\n\
               watermarks (see 'help zoneinfo').",
        run: memstat,
    },
    Command {
        name: "handles",
        usage: "handles",
        summary: "list the live handles",
        help: "Each line is '#N kind key=value...', as printed when the object was made.",
        run: handles,
    },
    Command {
        name: "free",
        usage: "free #N|ADDR|all",
        summary: "release a handle's object with the matching free function",
        help: "free #N: by handle. free ADDR: the handle whose virt (or else phys) address\n\
               is ADDR. free all, the one bulk command: releases every live handle it can,\n\
               newest first, then has the caches give back their empty slabs; it ends with\n\
               a single error: line naming the handles it could not release (they stay live).",
        run: free,
    },
];
