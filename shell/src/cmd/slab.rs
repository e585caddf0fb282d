//! Slab-level commands: `kmalloc`/`kzalloc`/`kfree`, object caches (`cache`,
//! `caches`), memory pools (`mempool`), `slabinfo`, `slub_debug`, `selftest slab`
//! and `bench kmalloc`.
//!
//! Every object gets a handle whose release function matches its allocator
//! (`kfree`, `kmem_cache_free`, `mempool_free`, `kmem_cache_destroy`,
//! `mempool_destroy`). The raw frees (`kfree ADDR`, `cache free NAME ADDR`,
//! `mempool free NAME ADDR`) hand an address that is no handle's object to the
//! allocator exactly as given, so that its own misuse checks answer (foreign,
//! interior or freed pointers, objects of another cache), but only after asking
//! the kernel whether it is a live object: live objects the shell does not own
//! (the kernel's own, the shell's own strings, elements in a pool's reserve) are
//! never freed.

use super::pages::{bulk_list, bulk_stopped, retire_freed};
use super::{sub, subcommand, Args, CmdError, Command, Ctx, Target};
use crate::api::{self, BadName, PoolSource};
use crate::cmd_err;
use crate::handles::{Addr, HandleId, Object, SLAB_FLAG_NAMES};
use crate::parse::{self, expected_list};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use mm::slab::{CacheInfo, SlabFlags, KMALLOC_MAX, MAX_NAME, MEMPOOL_MAX};
use mm::{Gfp, MmError};

// ---------------------------------------------------------------------------
// Subcommands
// ---------------------------------------------------------------------------

/// Checks a cache or pool name ([`api::check_name`]).
fn check_name(what: &str, name: &str) -> Result<(), CmdError> {
    match api::check_name(name) {
        Ok(()) => Ok(()),
        Err(BadName::Length) => Err(cmd_err!(
            "{what} name '{name}' is {} bytes (expected 1..={MAX_NAME})",
            name.len()
        )),
        Err(BadName::Whitespace) => Err(cmd_err!("{what} name '{name}' contains whitespace")),
    }
}

/// A size argument for kmalloc and caches: 1..=1 MiB.
fn size_arg(args: &mut Args) -> Result<u64, CmdError> {
    args.number_in("SIZE", 1, KMALLOC_MAX as u64)
}

/// `x.yz` of `num / den`, or `-` when `den` is 0.
pub(super) fn ratio(num: u64, den: u64) -> String {
    if den == 0 {
        return String::from("-");
    }
    let hundredths = u128::from(num) * 100 / u128::from(den);
    alloc::format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    alloc::format!("{n} {}", if n == 1 { one } else { many })
}

// ---------------------------------------------------------------------------
// kmalloc, kzalloc, kfree
// ---------------------------------------------------------------------------

/// `kmalloc SIZE [GFP...]`.
pub fn kmalloc(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let size = size_arg(args)?;
    let gfp = args.gfp()?;
    args.end()?;
    let obj = ctx.kernel.kmalloc(size, gfp)?;
    ctx.add(obj.into())?;
    Ok(())
}

/// `kzalloc SIZE [GFP...]`: `kmalloc` with `__GFP_ZERO`.
pub fn kzalloc(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let size = size_arg(args)?;
    let gfp = args.gfp()?;
    args.end()?;
    let obj = ctx.kernel.kmalloc(size, gfp | Gfp::ZERO)?;
    ctx.add(obj.into())?;
    Ok(())
}

/// `kfree ADDR|#N`.
pub fn kfree(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let target = args.handle_or_addr("ADDR|#N")?;
    args.end()?;
    free_slab_object(ctx, target, SlabFree::Kfree)
}

/// Which free function a slab object goes to.
#[derive(Clone, Copy)]
enum SlabFree<'a> {
    Kfree,
    Cache(&'a str),
    Pool(&'a str),
}

impl SlabFree<'_> {
    fn func(&self) -> &'static str {
        match self {
            SlabFree::Kfree => "kfree",
            SlabFree::Cache(_) => "kmem_cache_free",
            SlabFree::Pool(_) => "mempool_free",
        }
    }
}

/// The handle a free command names and the address to free: `#N`, or the slab
/// object handle at exactly `ADDR` (`None` if no handle has it). Handles of the
/// wrong kind are refused here: a pool element only goes back to its own pool
/// (the pool counts its elements), and nothing but slab objects is freed.
fn slab_target(
    ctx: &Ctx<'_>,
    target: Target,
    how: SlabFree<'_>,
) -> Result<(u64, Option<HandleId>), CmdError> {
    let (id, obj) = match target {
        Target::Handle(id) => (id, ctx.handles.get(id)?),
        Target::Addr(a) => {
            let slab_obj = |o: &Object| {
                matches!(
                    o,
                    Object::Kmalloc { .. } | Object::CacheObj { .. } | Object::PoolObj { .. }
                ) && o.primary_addr() == Some(a)
            };
            match ctx.handles.iter().find(|(_, o)| slab_obj(o)) {
                Some((id, o)) => (id, o),
                None => return Ok((a, None)),
            }
        }
    };
    match (obj, how) {
        (Object::PoolObj { pool, virt, .. }, SlabFree::Pool(p)) if pool == p => {
            Ok((*virt, Some(id)))
        }
        (Object::PoolObj { pool, .. }, SlabFree::Pool(p)) => Err(cmd_err!(
            "{id} is an element of mempool '{pool}', not of '{p}'"
        )),
        (Object::PoolObj { pool, .. }, _) => Err(cmd_err!(
            "{id} is an element of mempool '{pool}'; give it back with 'mempool free {pool} {id}'"
        )),
        (Object::Kmalloc { virt, .. } | Object::CacheObj { virt, .. }, SlabFree::Kfree)
        | (Object::Kmalloc { virt, .. } | Object::CacheObj { virt, .. }, SlabFree::Cache(_)) => {
            Ok((*virt, Some(id)))
        }
        (o, SlabFree::Pool(p)) => Err(cmd_err!(
            "{id} is a {} handle, not an element of mempool '{p}'",
            o.kind()
        )),
        (o, _) => Err(cmd_err!(
            "{id} is a {} handle, not a slab object (release it with 'free {id}')",
            o.kind()
        )),
    }
}

/// Before an address that is no handle's object goes to a free function: refuses
/// it if it is the start of a live slab object (someone else's), or if the kernel
/// cannot say. Free objects (double frees), interior pointers and addresses
/// outside every slab are let through: the allocator refuses them itself.
fn raw_slab_guard(ctx: &Ctx<'_>, virt: u64) -> Result<(), CmdError> {
    if virt == 0 {
        return Ok(());
    }
    match ctx.kernel.slab_object_info(virt) {
        Ok(info) if info.allocated && info.object == virt => Err(cmd_err!(
            "{} is a live {} object that no shell handle owns (the kernel's own, or a \
             mempool's reserve); refusing to free it",
            Addr(virt),
            info.name.as_str()
        )),
        Ok(_) | Err(MmError::InvalidFree(_)) | Err(MmError::NotRam(_)) => Ok(()),
        Err(e) => Err(cmd_err!(
            "cannot tell whether {} is a live object ({e}); refusing to free it",
            Addr(virt)
        )),
    }
}

/// The error of a failed slab free, prefixed with the function.
fn free_error(how: SlabFree<'_>, e: MmError) -> CmdError {
    match (how, e) {
        (SlabFree::Cache(c), MmError::NotFound) => cmd_err!("no cache '{c}' (see 'caches')"),
        (SlabFree::Pool(p), MmError::NotFound) => {
            cmd_err!("no mempool '{p}' (see 'mempool info')")
        }
        (_, e) => cmd_err!("{}: {e}", how.func()),
    }
}

/// Frees the slab object `target` with `how`, retiring its handle on success.
fn free_slab_object(ctx: &mut Ctx<'_>, target: Target, how: SlabFree<'_>) -> Result<(), CmdError> {
    let (virt, owner) = slab_target(ctx, target, how)?;
    let pool_before = match how {
        SlabFree::Pool(p) => ctx.kernel.mempool_info(p).ok(),
        _ => None,
    };
    if owner.is_none() {
        raw_slab_guard(ctx, virt)?;
    }
    // Nothing may allocate from here to the free: the guard's answer must still
    // hold (a heap allocation could reuse the very object it found free).
    let result = match how {
        SlabFree::Kfree => ctx.kernel.kfree(virt),
        SlabFree::Cache(c) => ctx.kernel.kmem_cache_free(c, virt),
        SlabFree::Pool(p) => ctx.kernel.mempool_free(p, virt),
    };
    result.map_err(|e| free_error(how, e))?;
    match owner {
        Some(id) => {
            let obj = ctx.handles.remove(id)?;
            writeln!(ctx, "freed {id} {obj}")?;
        }
        None if virt == 0 => writeln!(ctx, "{}(NULL): nothing to free", how.func())?,
        None => writeln!(ctx, "{}: {} freed", how.func(), Addr(virt))?,
    }
    // mempool_free(NULL) is a no-op (Linux): no element moved, nothing to report.
    if let (SlabFree::Pool(p), Some(before), true) = (how, pool_before, virt != 0) {
        if let Ok(after) = ctx.kernel.mempool_info(p) {
            let to = if after.curr_nr > before.curr_nr {
                "back into the reserve"
            } else {
                "back to the backing allocator"
            };
            writeln!(
                ctx,
                "mempool {p}: element went {to} (curr_nr={} min_nr={} outstanding={})",
                after.curr_nr, after.min_nr, after.outstanding
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Caches
// ---------------------------------------------------------------------------

/// `cache` subcommands, in `help cache` order.
static CACHE_SUBS: [Command; 8] = [
    sub(
        "create",
        "cache create NAME SIZE [ALIGN] [FLAG...]",
        cache_create,
    ),
    sub("alloc", "cache alloc NAME [GFP...]", cache_alloc),
    sub("free", "cache free NAME ADDR|#N", cache_free),
    sub(
        "alloc_bulk",
        "cache alloc_bulk NAME N [GFP...]",
        cache_alloc_bulk,
    ),
    sub(
        "free_bulk",
        "cache free_bulk NAME #N|#A-#B...",
        cache_free_bulk,
    ),
    sub("destroy", "cache destroy NAME", cache_destroy),
    sub("shrink", "cache shrink NAME", cache_shrink),
    sub("list", "cache list", cache_list),
];

/// `cache create|alloc|free|alloc_bulk|free_bulk|destroy|shrink|list ...`.
pub fn cache(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    subcommand(ctx, args, &CACHE_SUBS)
}

/// `cache free NAME ADDR|#N`.
fn cache_free(ctx: &mut Ctx<'_>, a: &mut Args) -> Result<(), CmdError> {
    let name = a.word("NAME")?;
    let target = a.handle_or_addr("ADDR|#N")?;
    a.end()?;
    free_slab_object(ctx, target, SlabFree::Cache(&name))
}

/// `cache shrink NAME`.
fn cache_shrink(ctx: &mut Ctx<'_>, a: &mut Args) -> Result<(), CmdError> {
    let name = a.word("NAME")?;
    a.end()?;
    let n = ctx
        .kernel
        .kmem_cache_shrink(&name)
        .map_err(|e| cache_error(&name, e))?;
    writeln!(ctx, "cache {name}: {} released", plural(n, "slab", "slabs"))?;
    Ok(())
}

/// `cache list`.
fn cache_list(ctx: &mut Ctx<'_>, a: &mut Args) -> Result<(), CmdError> {
    a.end()?;
    list_caches(ctx)
}

/// `caches`.
pub fn caches(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    list_caches(ctx)
}

/// Parses `kmem_cache_create` flags (the `SLAB_` prefix is optional).
fn slab_flags(args: &mut Args) -> Result<SlabFlags, CmdError> {
    let mut flags = SlabFlags::NONE;
    for w in args.rest() {
        let up = w.to_ascii_uppercase();
        let bare = up.strip_prefix("SLAB_").unwrap_or(&up);
        let (flag, _) = SLAB_FLAG_NAMES
            .iter()
            .find(|(_, n)| n.strip_prefix("SLAB_") == Some(bare))
            .ok_or_else(|| {
                let names: Vec<&str> = SLAB_FLAG_NAMES.iter().map(|(_, n)| *n).collect();
                cmd_err!(
                    "unknown slab flag '{w}' (expected {})",
                    expected_list(&names)
                )
            })?;
        flags = flags | *flag;
    }
    Ok(flags)
}

/// An error about the cache called `name`.
fn cache_error(name: &str, e: MmError) -> CmdError {
    match e {
        MmError::NotFound => cmd_err!("no cache '{name}' (see 'caches')"),
        MmError::Exists => cmd_err!("cache '{name}' already exists (see 'caches')"),
        MmError::CacheBusy { live } => cmd_err!(
            "cache '{name}' still has {}",
            plural(live, "live object", "live objects")
        ),
        e => e.into(),
    }
}

fn cache_create(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let name = args.word("NAME")?;
    let size = size_arg(args)?;
    let align = match args.peek() {
        Some(w) if parse::parse_number(w).is_ok() => args.number("ALIGN")?,
        _ => 0,
    };
    let flags = slab_flags(args)?;
    args.end()?;
    check_name("cache", &name)?;
    let row = ctx
        .kernel
        .kmem_cache_create(&name, size, align, flags)
        .map_err(|e| {
            let msg = cache_error(&name, e);
            if flags.contains(SlabFlags::PANIC) {
                cmd_err!("{} (SLAB_PANIC: Linux would panic here)", msg.message())
            } else {
                msg
            }
        })?;
    ctx.add(Object::Cache {
        name,
        size,
        obj: u64::from(row.stride),
        align: u64::from(row.align),
        flags: row.flags,
        debug: row.debug,
    })?;
    Ok(())
}

/// The live `cache` handle of the cache called `name`.
fn cache_handle(ctx: &Ctx<'_>, name: &str) -> Option<(HandleId, Object)> {
    ctx.handles
        .iter()
        .find(|(_, o)| matches!(o, Object::Cache { name: n, .. } if n == name))
        .map(|(id, o)| (id, o.clone()))
}

/// The live `mempool` handle whose pool takes its elements from cache `name`.
pub(super) fn pool_on_cache(ctx: &Ctx<'_>, name: &str) -> Option<(HandleId, String)> {
    ctx.handles.iter().find_map(|(id, o)| match o {
        Object::Pool {
            name: pool,
            source: PoolSource::Cache(c),
            ..
        } if c == name => Some((id, pool.clone())),
        _ => None,
    })
}

/// The size the `cache_obj` handles of cache `name` record: the size its
/// `cache` handle asked for, or (a cache the shell did not create) the
/// cache's object size. A cache the kernel does not have is the error.
fn cache_obj_size(ctx: &Ctx<'_>, name: &str) -> Result<u64, CmdError> {
    let row = ctx
        .kernel
        .kmem_cache_info(name)
        .map_err(|e| cache_error(name, e))?;
    Ok(match cache_handle(ctx, name) {
        Some((_, Object::Cache { size, .. })) => size,
        _ => u64::from(row.obj_size),
    })
}

fn cache_alloc(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let name = args.word("NAME")?;
    let gfp = args.gfp()?;
    args.end()?;
    let size = cache_obj_size(ctx, &name)?;
    let o = ctx
        .kernel
        .kmem_cache_alloc(&name, gfp)
        .map_err(|e| cache_error(&name, e))?;
    ctx.add(Object::CacheObj {
        cache: name,
        size,
        virt: o.virt,
        phys: o.phys,
    })?;
    Ok(())
}

/// Largest N of `cache alloc_bulk` (each object is one handle).
const MAX_BULK: u64 = 1024;

/// `cache alloc_bulk NAME N [GFP...]`: `kmem_cache_alloc_bulk`, all N objects or
/// none; each object is its own `cache_obj` handle.
fn cache_alloc_bulk(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let name = args.word("NAME")?;
    let n = args.number_in("N", 1, MAX_BULK)?;
    let gfp = args.gfp()?;
    args.end()?;
    let size = cache_obj_size(ctx, &name)?;
    let mut v = bulk_list(n, 0u64, "objects")?;
    ctx.kernel
        .kmem_cache_alloc_bulk(&name, gfp, &mut v)
        .map_err(|e| cache_error(&name, e))?;
    for (i, &virt) in v.iter().enumerate() {
        // Slab objects are in the direct map: the frame, plus the offset in it.
        let phys = match ctx.kernel.addr_to_pfn(virt) {
            Ok(pfn) => pfn.phys() + (virt & 0xfff),
            Err(e) => {
                let _ = ctx.kernel.kmem_cache_free_bulk(&name, &v[i..]);
                return Err(cmd_err!(
                    "object {virt:#x} has no physical address ({e}); freed the rest"
                ));
            }
        };
        if let Err(e) = ctx.add(Object::CacheObj {
            cache: name.clone(),
            size,
            virt,
            phys,
        }) {
            let _ = ctx.kernel.kmem_cache_free_bulk(&name, &v[i + 1..]);
            return Err(e);
        }
    }
    Ok(())
}

/// `cache free_bulk NAME #N|#A-#B...`: `kmem_cache_free_bulk` of the objects of
/// `cache_obj` handles, in order; the objects freed before a misuse are retired.
/// The handles may belong to any cache: the allocator's own checks decide (an
/// object of another cache is `WrongCache`, one listed twice a double free).
fn cache_free_bulk(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let name = args.word("NAME")?;
    let ids = args.handle_list("#N...", MAX_BULK as usize)?;
    let mut objs: Vec<u64> = Vec::new();
    objs.try_reserve_exact(ids.len())
        .map_err(|_| cmd_err!("out of memory for the object list"))?;
    for &id in &ids {
        match ctx.handles.get(id)? {
            Object::CacheObj { virt, .. } => objs.push(*virt),
            o => {
                return Err(cmd_err!(
                    "{id} is a {} handle, not a cache_obj handle",
                    o.kind()
                ))
            }
        }
    }
    let res = ctx.kernel.kmem_cache_free_bulk(&name, &objs);
    retire_freed(ctx, &ids, &res)?;
    res.map_err(|e| match e.err {
        MmError::NotFound => cache_error(&name, e.err),
        _ => bulk_stopped("kmem_cache_free_bulk", &ids, e),
    })
}

fn cache_destroy(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let name = args.word("NAME")?;
    args.end()?;
    let Some((id, obj)) = cache_handle(ctx, &name) else {
        return Err(match ctx.kernel.kmem_cache_info(&name) {
            Ok(_) => cmd_err!(
                "cache '{name}' was not created by the shell (see 'handles'); refusing to \
                 destroy it"
            ),
            Err(e) => cache_error(&name, e),
        });
    };
    if let Some((pid, pool)) = pool_on_cache(ctx, &name) {
        return Err(cmd_err!(
            "cache '{name}' backs mempool '{pool}' ({pid}); destroy the pool first"
        ));
    }
    ctx.kernel
        .kmem_cache_destroy(&name)
        .map_err(|e| cache_error(&name, e))?;
    let _ = ctx.handles.remove(id);
    writeln!(ctx, "destroyed {id} {obj}")?;
    Ok(())
}

/// Every row of the kernel's cache table, in table order.
fn cache_rows(ctx: &Ctx<'_>) -> Result<Vec<CacheInfo>, CmdError> {
    let mut rows = Vec::new();
    // A bound, so that a confused kernel cannot keep the shell here forever.
    for i in 0..4096 {
        match ctx.kernel.slab_cache_at(i)? {
            Some(r) => rows.push(r),
            None => break,
        }
    }
    Ok(rows)
}

/// Header of the `caches` table.
pub const CACHES_HEADER: &str =
    "name                size    obj align active  total slabs  pg dbg  flags";

/// A byte count for the `caches` table: exact, with `K`/`M` for whole KiB/MiB
/// from 1 KiB (`4K`, `1M`, `200`, `1032`).
fn short_size(n: u32) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        alloc::format!("{}M", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        alloc::format!("{}K", n >> 10)
    } else {
        alloc::format!("{n}")
    }
}

/// One line of the `caches` table (at most 80 columns for names up to 17 bytes).
pub fn caches_line(r: &CacheInfo) -> String {
    let mut flags = Vec::new();
    if r.kmalloc {
        flags.push("kmalloc");
    }
    if r.dma {
        flags.push("dma");
    }
    if r.flags.contains(SlabFlags::HWCACHE_ALIGN) {
        flags.push("hw");
    }
    if r.flags.contains(SlabFlags::PANIC) {
        flags.push("panic");
    }
    let flags = if flags.is_empty() {
        String::from("-")
    } else {
        flags.join(",")
    };
    let debug = alloc::format!("{}", r.debug);
    alloc::format!(
        "{:<17} {:>6} {:>6} {:>5} {:>6} {:>6} {:>5} {:>3} {:<4} {}",
        r.name.as_str(),
        short_size(r.obj_size),
        short_size(r.stride),
        short_size(r.align),
        r.active_objs,
        r.num_objs,
        r.num_slabs,
        r.pages_per_slab,
        debug,
        flags
    )
}

fn list_caches(ctx: &mut Ctx<'_>) -> Result<(), CmdError> {
    let rows = cache_rows(ctx)?;
    writeln!(ctx, "{CACHES_HEADER}")?;
    for r in &rows {
        let line = caches_line(r);
        writeln!(ctx, "{line}")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// slabinfo
// ---------------------------------------------------------------------------

/// The two header lines of `/proc/slabinfo` version 2.1.
pub const SLABINFO_HEADER: [&str; 2] = [
    "slabinfo - version: 2.1",
    "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> \
     : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> \
     <num_slabs> <sharedavail>",
];

/// One cache as Linux `cache_show` prints it: `"%-17s %6lu %6lu %6u %4u %4d :
/// tunables %4u %4u %4u : slabdata %6lu %6lu %6lu"` (SLUB: tunables and
/// sharedavail are 0, objsize is the stride).
pub fn slabinfo_line(r: &CacheInfo) -> String {
    alloc::format!(
        "{:<17} {:6} {:6} {:6} {:4} {:4} : tunables {:4} {:4} {:4} : slabdata {:6} {:6} {:6}",
        r.name.as_str(),
        r.active_objs,
        r.num_objs,
        r.stride,
        r.objs_per_slab,
        r.pages_per_slab,
        0,
        0,
        0,
        r.active_slabs,
        r.num_slabs,
        0
    )
}

/// `slabinfo`: `/proc/slabinfo`, exactly.
pub fn slabinfo(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let rows = cache_rows(ctx)?;
    for h in SLABINFO_HEADER {
        writeln!(ctx, "{h}")?;
    }
    for r in &rows {
        let line = slabinfo_line(r);
        writeln!(ctx, "{line}")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Mempools
// ---------------------------------------------------------------------------

/// `mempool` subcommands, in `help mempool` order.
static MEMPOOL_SUBS: [Command; 5] = [
    sub(
        "create",
        "mempool create NAME MIN_NR kmalloc SIZE|cache CACHE",
        pool_create,
    ),
    sub("alloc", "mempool alloc NAME [GFP...]", pool_alloc),
    sub("free", "mempool free NAME ADDR|#N", pool_free),
    sub("destroy", "mempool destroy NAME", pool_destroy),
    sub("info", "mempool info [NAME]", pool_info),
];

/// `mempool create|alloc|free|destroy|info ...`.
pub fn mempool(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    subcommand(ctx, args, &MEMPOOL_SUBS)
}

/// `mempool free NAME ADDR|#N`.
fn pool_free(ctx: &mut Ctx<'_>, a: &mut Args) -> Result<(), CmdError> {
    let name = a.word("NAME")?;
    let target = a.handle_or_addr("ADDR|#N")?;
    a.end()?;
    free_slab_object(ctx, target, SlabFree::Pool(&name))
}

/// An error about the pool called `name`.
fn pool_error(name: &str, e: MmError) -> CmdError {
    match e {
        MmError::NotFound => cmd_err!("no mempool '{name}' (see 'mempool info')"),
        MmError::Exists => cmd_err!("mempool '{name}' already exists (see 'mempool info')"),
        MmError::CacheBusy { live } => cmd_err!(
            "mempool '{name}' still has {} outstanding",
            plural(live, "element", "elements")
        ),
        e => e.into(),
    }
}

/// The live `mempool` handle of the pool called `name`.
fn pool_handle(ctx: &Ctx<'_>, name: &str) -> Result<(HandleId, Object), CmdError> {
    ctx.handles
        .iter()
        .find(|(_, o)| matches!(o, Object::Pool { name: n, .. } if n == name))
        .map(|(id, o)| (id, o.clone()))
        .ok_or_else(|| cmd_err!("no mempool '{name}' created by the shell (see 'mempool info')"))
}

fn pool_create(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let name = args.word("NAME")?;
    let min_nr = args.number_in("MIN_NR", 0, MEMPOOL_MAX as u64)?;
    let kind = args.word("kmalloc|cache")?;
    let source = if kind.eq_ignore_ascii_case("kmalloc") {
        PoolSource::Kmalloc {
            size: size_arg(args)?,
        }
    } else if kind.eq_ignore_ascii_case("cache") {
        PoolSource::Cache(args.word("CACHE")?)
    } else {
        return Err(cmd_err!(
            "unknown mempool backing '{kind}' (expected kmalloc or cache)"
        ));
    };
    args.end()?;
    check_name("mempool", &name)?;
    let size = match &source {
        PoolSource::Kmalloc { size } => *size,
        PoolSource::Cache(c) => match cache_handle(ctx, c) {
            Some((_, Object::Cache { size, .. })) => size,
            _ => u64::from(
                ctx.kernel
                    .kmem_cache_info(c)
                    .map_err(|e| cache_error(c, e))?
                    .obj_size,
            ),
        },
    };
    ctx.kernel
        .mempool_create(&name, min_nr, &source)
        .map_err(|e| match (&source, e) {
            (PoolSource::Cache(c), MmError::NotFound) => cache_error(c, e),
            _ => pool_error(&name, e),
        })?;
    ctx.add(Object::Pool {
        name,
        min_nr,
        source,
        size,
    })?;
    Ok(())
}

fn pool_alloc(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let name = args.word("NAME")?;
    let gfp = args.gfp()?;
    args.end()?;
    let (_, pool) = pool_handle(ctx, &name)?;
    let Object::Pool { size, .. } = pool else {
        return Err(CmdError::new("internal: pool handle"));
    };
    let e = ctx.kernel.mempool_alloc(&name, gfp).map_err(|e| match e {
        MmError::OutOfMemory => cmd_err!(
            "mempool_alloc: out of memory (the backing allocator failed and the reserve \
             of '{name}' is empty)"
        ),
        e => pool_error(&name, e),
    })?;
    ctx.add(Object::PoolObj {
        pool: name,
        virt: e.virt,
        phys: e.phys,
        size,
        reserve: e.reserve,
    })?;
    Ok(())
}

fn pool_destroy(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let name = args.word("NAME")?;
    args.end()?;
    let (id, obj) = pool_handle(ctx, &name)?;
    ctx.kernel
        .mempool_destroy(&name)
        .map_err(|e| pool_error(&name, e))?;
    let _ = ctx.handles.remove(id);
    writeln!(ctx, "destroyed {id} {obj}")?;
    Ok(())
}

fn pool_info(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let name = args.opt_word();
    args.end()?;
    let pools: Vec<(HandleId, Object)> = match &name {
        Some(n) => match pool_handle(ctx, n) {
            Ok(p) => alloc::vec![p],
            // A pool the shell did not create: the kernel may still know it.
            Err(_) => {
                let i = ctx.kernel.mempool_info(n).map_err(|e| pool_error(n, e))?;
                writeln!(
                    ctx,
                    "mempool {n}: min_nr={} curr_nr={} outstanding={}",
                    i.min_nr, i.curr_nr, i.outstanding
                )?;
                return Ok(());
            }
        },
        None => ctx
            .handles
            .iter()
            .filter(|(_, o)| matches!(o, Object::Pool { .. }))
            .map(|(id, o)| (id, o.clone()))
            .collect(),
    };
    if pools.is_empty() {
        writeln!(ctx, "no mempools (create one with 'mempool create')")?;
        return Ok(());
    }
    let mut lines = Vec::new();
    for (id, obj) in &pools {
        let Object::Pool {
            name, source, size, ..
        } = obj
        else {
            continue;
        };
        let i = ctx
            .kernel
            .mempool_info(name)
            .map_err(|e| pool_error(name, e))?;
        let backing = match source {
            PoolSource::Kmalloc { .. } => alloc::format!("backing=kmalloc size={size}"),
            PoolSource::Cache(c) => alloc::format!("backing=cache cache={c} size={size}"),
        };
        lines.push(alloc::format!(
            "mempool {name}: min_nr={} curr_nr={} outstanding={} {backing} handle={id}",
            i.min_nr,
            i.curr_nr,
            i.outstanding
        ));
    }
    for l in lines {
        writeln!(ctx, "{l}")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// slub_debug
// ---------------------------------------------------------------------------

/// `slub_debug [SPEC|reports|clear|validate [NAME]]`.
pub fn slub_debug(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let Some(w) = args.opt_word() else {
        return debug_show(ctx);
    };
    if w.eq_ignore_ascii_case("reports") {
        args.end()?;
        return debug_reports(ctx);
    }
    if w.eq_ignore_ascii_case("clear") {
        args.end()?;
        let kept = report_count(ctx)?;
        ctx.kernel.slab_clear_reports()?;
        let total = ctx.kernel.slab_errors_total()?;
        writeln!(
            ctx,
            "cleared {} (errors since boot: {total})",
            plural(kept, "report", "reports")
        )?;
        return Ok(());
    }
    if w.eq_ignore_ascii_case("validate") {
        let name = args.opt_word();
        args.end()?;
        let n = ctx
            .kernel
            .slab_validate(name.as_deref())
            .map_err(|e| match &name {
                Some(c) => cache_error(c, e),
                None => e.into(),
            })?;
        let what = name.as_deref().unwrap_or("all caches");
        let see = if n > 0 {
            " (see 'slub_debug reports')"
        } else {
            ""
        };
        writeln!(
            ctx,
            "validate {what}: {} found{see}",
            plural(n, "error", "errors")
        )?;
        return Ok(());
    }
    args.end()?;
    debug_apply(ctx, &w)
}

fn report_count(ctx: &Ctx<'_>) -> Result<u64, CmdError> {
    let mut n = 0;
    while n < 4096 && ctx.kernel.slab_report_at(n as usize)?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn debug_show(ctx: &mut Ctx<'_>) -> Result<(), CmdError> {
    let rows = cache_rows(ctx)?;
    let total = ctx.kernel.slab_errors_total()?;
    let debug: Vec<&CacheInfo> = rows.iter().filter(|r| r.debug.any()).collect();
    if debug.is_empty() {
        writeln!(
            ctx,
            "no cache has slub_debug options (e.g. 'slub_debug FZPU,kmalloc-64')"
        )?;
    } else {
        writeln!(ctx, "{:<17} debug errors", "cache")?;
        let lines: Vec<String> = debug
            .iter()
            .map(|r| {
                let d = alloc::format!("{}", r.debug);
                alloc::format!("{:<17} {:<5} {:>6}", r.name.as_str(), d, r.errors)
            })
            .collect();
        for l in lines {
            writeln!(ctx, "{l}")?;
        }
    }
    writeln!(ctx, "errors detected since boot: {total}")?;
    Ok(())
}

fn debug_reports(ctx: &mut Ctx<'_>) -> Result<(), CmdError> {
    let mut lines = Vec::new();
    for i in 0..4096 {
        let Some(r) = ctx.kernel.slab_report_at(i)? else {
            break;
        };
        let mut l = alloc::format!(
            "[{}] {}: cache={} object={}",
            r.seq,
            r.kind.describe(),
            r.cache.as_str(),
            Addr(r.object)
        );
        if r.expected != r.found {
            let _ = write!(
                l,
                " offset={} found={:#04x} expected={:#04x}",
                r.offset, r.found, r.expected
            );
        }
        match r.alloc_site {
            Some(s) => {
                let _ = write!(l, " alloc={}:{}", s.file(), s.line());
            }
            None => l.push_str(" alloc=-"),
        }
        if let Some(s) = r.free_site {
            let _ = write!(l, " free={}:{}", s.file(), s.line());
        }
        lines.push(l);
    }
    let total = ctx.kernel.slab_errors_total()?;
    if lines.is_empty() {
        writeln!(ctx, "no corruption reports (errors since boot: {total})")?;
        return Ok(());
    }
    for l in lines {
        writeln!(ctx, "{l}")?;
    }
    writeln!(ctx, "errors since boot: {total}")?;
    Ok(())
}

/// True if every block of a `slub_debug` spec names caches (then a spec that
/// changes no cache changed nothing at all; without a list it also sets the
/// default for caches created later).
fn spec_has_lists(spec: &str) -> bool {
    let value = spec
        .strip_prefix("slub_debug=")
        .or_else(|| spec.strip_prefix("slub_debug"))
        .unwrap_or(spec);
    value.split(';').all(|b| b.contains(','))
}

fn debug_apply(ctx: &mut Ctx<'_>, spec: &str) -> Result<(), CmdError> {
    let before = cache_rows(ctx)?;
    let out = ctx.kernel.slub_debug(spec).map_err(|e| match e {
        MmError::Invalid(why) => cmd_err!(
            "bad slub_debug spec '{spec}': {why} (expected option letters F Z P U, or - \
             for off, then optionally ,CACHE[,CACHE...] with * ending a prefix; blocks \
             separated by ;)"
        ),
        e => e.into(),
    })?;
    if out.changed == 0 && out.busy > 0 && spec_has_lists(spec) {
        return Err(cmd_err!(
            "slub_debug: {} live objects; nothing changed (free their objects first)",
            plural(
                u64::from(out.busy),
                "matching cache has",
                "matching caches have"
            )
        ));
    }
    let after = cache_rows(ctx)?;
    let mut lines = Vec::new();
    for a in &after {
        let old = before.iter().find(|b| b.name == a.name).map(|b| b.debug);
        if old.is_some_and(|d| d != a.debug) {
            lines.push(alloc::format!(
                "{}: {} -> {}",
                a.name.as_str(),
                old.unwrap_or_default(),
                a.debug
            ));
        }
    }
    for l in lines {
        writeln!(ctx, "{l}")?;
    }
    let mut summary = alloc::format!(
        "slub_debug: {} changed",
        plural(u64::from(out.changed), "cache", "caches")
    );
    if out.busy > 0 {
        let _ = write!(
            summary,
            ", {} with live objects left unchanged (free their objects first)",
            u64::from(out.busy)
        );
    }
    writeln!(ctx, "{summary}")?;
    Ok(())
}

/// The slab commands, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "kmalloc",
        usage: "kmalloc SIZE [GFP...]",
        summary: "kmalloc: a physically contiguous object of SIZE bytes",
        help: "SIZE is 1..=1M; the object is the next power of two (at least 32 bytes),\n\
               aligned to its size: obj=128 for 80. GFP: GFP_KERNEL (default), GFP_ATOMIC,\n\
               GFP_DMA (from the dma-kmalloc caches, below 16 MiB), __GFP_HIGHMEM (ignored),\n\
               __GFP_ZERO. free #N (or kfree #N) calls kfree.",
        run: kmalloc,
    },
    Command {
        name: "kzalloc",
        usage: "kzalloc SIZE [GFP...]",
        summary: "kzalloc: kmalloc with __GFP_ZERO (see it with 'dump #N')",
        help: "See 'help kmalloc'. free #N (or kfree #N) calls kfree.",
        run: kzalloc,
    },
    Command {
        name: "kfree",
        usage: "kfree ADDR|#N",
        summary: "kfree: free a kmalloc object, or any address as given",
        help: KFREE_HELP,
        run: kfree,
    },
    Command {
        name: "cache",
        usage: "cache create|alloc|free|alloc_bulk|free_bulk|destroy|shrink|list ...",
        summary: "object caches: kmem_cache_create/alloc/free/destroy",
        help: CACHE_HELP,
        run: cache,
    },
    Command {
        name: "caches",
        usage: "caches",
        summary: "list the slab caches with their sizes and object counts",
        help: "Columns: name, size (usable bytes of an object), obj (stride: object,\n\
               debug metadata and alignment), align, active (objects in use), total\n\
               (objects in all slabs), slabs, pg (pages per slab), dbg (slub_debug letters)\n\
               and flags (kmalloc, dma, hw: SLAB_HWCACHE_ALIGN, panic: SLAB_PANIC).",
        run: caches,
    },
    Command {
        name: "mempool",
        usage: "mempool create|alloc|free|destroy|info ...",
        summary: "mempool_create/alloc/free/destroy: pools with a reserve",
        help: MEMPOOL_HELP,
        run: mempool,
    },
    Command {
        name: "slabinfo",
        usage: "slabinfo",
        summary: "every slab cache, as /proc/slabinfo (version 2.1)",
        help: "Exactly the Linux format (lines are wider than 80 columns). objsize is the\n\
               stride; tunables and sharedavail are 0 as in SLUB; active_slabs are slabs\n\
               with an object in use.",
        run: slabinfo,
    },
    Command {
        name: "slub_debug",
        usage: "slub_debug [SPEC|reports|clear|validate [NAME]]",
        summary: "slab debugging: red zones, poison, corruption reports",
        help: SLUB_DEBUG_HELP,
        run: slub_debug,
    },
];

const KFREE_HELP: &str =
    "#N, or ADDR of a handle's object: frees the kmalloc object and retires the
handle. Any other ADDR is passed to kfree exactly as given, so that the slab
allocator's own checks answer: a pointer into the middle of an object, a freed
object (double free), an object of a kmem_cache, or memory outside every slab
is reported as an error and changes nothing; kfree 0 is kfree(NULL), a no-op.
A live object that no handle owns (the kernel's own, the shell's own strings,
a mempool's reserve) is never freed this way.";

const CACHE_HELP: &str = "cache create NAME SIZE [ALIGN] [FLAG...]
    kmem_cache_create: a 'cache' handle (obj= is the stride of its objects)
cache alloc NAME [GFP...]   kmem_cache_alloc: a 'cache_obj' handle
cache free NAME ADDR|#N     kmem_cache_free (checks as for kfree)
cache alloc_bulk NAME N [GFP...]
    kmem_cache_alloc_bulk, N 1..=1024: all N objects or none, each its own
    'cache_obj' handle (free #N releases one)
cache free_bulk NAME #N|#A-#B...
    kmem_cache_free_bulk of those handles' objects (ranges #A-#B, at most 1024)
    in order; the first misuse stops it, the objects before it are freed
cache destroy NAME          kmem_cache_destroy; refused while objects live
cache shrink NAME           kmem_cache_shrink: give back the empty slabs
cache list                  the same as 'caches'
NAME: 1..=31 bytes. SIZE: 1..=1M. ALIGN: 0 (= 8) or a power of two.
FLAGs (SLAB_ prefix optional): SLAB_HWCACHE_ALIGN (64-byte alignment),
SLAB_CACHE_DMA (slabs below 16 MiB), SLAB_PANIC (Linux panics if the creation
fails; memkern says so in the error), and the slub_debug flags
SLAB_CONSISTENCY_CHECKS (F), SLAB_RED_ZONE (Z), SLAB_POISON (P),
SLAB_STORE_USER (U). free #N of a cache handle destroys the cache.";

const MEMPOOL_HELP: &str = "mempool create NAME MIN_NR kmalloc SIZE
    mempool_create_kmalloc_pool: elements from kmalloc(SIZE)
mempool create NAME MIN_NR cache CACHE
    mempool_create_slab_pool: elements from kmem_cache_alloc(CACHE)
mempool alloc NAME [GFP...]  mempool_alloc: a 'pool_obj' handle; from=backing,
    or from=reserve when the backing allocator is out of memory
mempool free NAME ADDR|#N    mempool_free: refills the reserve up to MIN_NR
mempool destroy NAME         mempool_destroy; refused while elements are out
mempool info [NAME]          min_nr, curr_nr (in reserve), outstanding
MIN_NR is 0..=64 elements, allocated at creation. free #N of a mempool handle
destroys the pool.";

const SLUB_DEBUG_HELP: &str = "slub_debug            caches with debug options, and the error total
slub_debug SPEC       Linux slub_debug= syntax, applied now: letters F (sanity
    checks), Z (red zones), P (poison), U (alloc/free sites), or - for off;
    then optionally ,CACHE[,CACHE...] (a * ends a prefix: dma-kmalloc-*);
    blocks separated by ;. Without a cache list: every cache, and the default
    for caches created later. Caches with live objects cannot change.
slub_debug reports    the corruption reports kept (the last 32)
slub_debug clear      forget the reports (the total keeps counting)
slub_debug validate [NAME]  check every object of a cache, or of all caches
Example: 'slub_debug FZPU,kmalloc-8k', 'kmalloc 5000' (#N), 'bzero #N 5000 8'
(the slack after 5000 bytes is red zone), 'kfree #N': 'slub_debug reports'
shows the overwritten red zone and where the object was allocated.";

#[cfg(test)]
mod tests {
    use super::*;
    use mm::slab::Slab;

    #[test]
    fn slabinfo_lines_match_the_allocators_own() {
        let slab = Slab::new();
        let mut want = String::new();
        slab.write_slabinfo(&mut want).unwrap();
        let mut got = String::new();
        for h in SLABINFO_HEADER {
            got.push_str(h);
            got.push('\n');
        }
        for r in (0..).map_while(|i| slab.caches().nth(i)) {
            got.push_str(&slabinfo_line(&r));
            got.push('\n');
        }
        assert_eq!(got, want);
        assert!(got.contains(
            "\nkmalloc-128            0      0    128  128    4 : tunables    0    0    0 \
             : slabdata      0      0      0\n"
        ));
    }

    #[test]
    fn caches_lines_fit_80_columns() {
        let slab = Slab::new();
        assert!(CACHES_HEADER.len() <= 80);
        for r in (0..).map_while(|i| slab.caches().nth(i)) {
            let l = caches_line(&r);
            assert!(l.len() <= 80, "{l}");
        }
        let r = slab.caches().nth(23).unwrap();
        assert_eq!(r.name.as_str(), "dma-kmalloc-4k");
        assert_eq!(
            caches_line(&r),
            "dma-kmalloc-4k        4K     4K    4K      0      0     0   8 -    kmalloc,dma"
        );
        let widest = CacheInfo {
            active_objs: 999_999,
            num_objs: 999_999,
            num_slabs: 99_999,
            kmalloc: false,
            flags: SlabFlags::HWCACHE_ALIGN | SlabFlags::CACHE_DMA | SlabFlags::PANIC,
            debug: mm::slab::DebugFlags::ALL,
            ..r
        };
        let l = caches_line(&widest);
        assert_eq!(
            l,
            "dma-kmalloc-4k        4K     4K    4K 999999 999999 99999   8 FZPU dma,hw,panic"
        );
        assert!(l.len() <= 80, "names up to 17 bytes fit: {l}");
    }

    #[test]
    fn short_sizes_are_exact() {
        assert_eq!(short_size(1 << 20), "1M");
        assert_eq!(short_size(4096), "4K");
        assert_eq!(short_size(1032), "1032");
        assert_eq!(short_size(200), "200");
        assert_eq!(short_size(3 << 20), "3M");
        assert_eq!(short_size(1536 << 10), "1536K");
    }

    #[test]
    fn ratios_have_two_decimals() {
        assert_eq!(ratio(4300, 100), "43.00");
        assert_eq!(ratio(1, 3), "0.33");
        assert_eq!(ratio(5, 0), "-");
        assert_eq!(ratio(u64::MAX, 1), alloc::format!("{}.00", u64::MAX));
    }

    #[test]
    fn spec_lists() {
        assert!(spec_has_lists("FZ,kmalloc-64"));
        assert!(spec_has_lists("slub_debug=F,a;Z,b*"));
        assert!(!spec_has_lists("FZPU"));
        assert!(!spec_has_lists("F,a;Z"));
        assert!(!spec_has_lists("-"));
    }
}
