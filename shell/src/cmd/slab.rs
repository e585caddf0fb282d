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

use super::{Args, CmdError, Command, Ctx, Target};
use crate::cmd_err;
use crate::handles::{Addr, HandleId, Object, SLAB_FLAG_NAMES};
use crate::kernel::{CacheRow, PoolSource, UNSUPPORTED};
use crate::parse::{self, expected_list};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use mm::slab::{SlabFlags, KMALLOC_MAX, MAX_NAME, MEMPOOL_MAX};
use mm::{Gfp, MmError};

// ---------------------------------------------------------------------------
// Subcommands
// ---------------------------------------------------------------------------

fn not_a_command(_: &mut Ctx<'_>, _: &mut Args) -> Result<(), CmdError> {
    Err(CmdError::new("internal: subcommand table entry run"))
}

/// A subcommand: only its usage is used (for `Args` errors).
const fn sub(usage: &'static str) -> Command {
    Command {
        name: "",
        usage,
        summary: "",
        help: "",
        run: not_a_command,
    }
}

/// The subcommand word of a subcommand's usage (`cache create NAME` -> `create`).
fn sub_word(c: &Command) -> &'static str {
    c.usage.split(' ').nth(1).unwrap_or("")
}

/// Reads the subcommand word and returns the subcommand with the rest of the
/// arguments, which report errors with the subcommand's own usage.
fn subcommand(args: &mut Args, subs: &'static [Command]) -> Result<(usize, Args), CmdError> {
    let w = args.word("SUBCOMMAND")?;
    let names: Vec<&str> = subs.iter().map(sub_word).collect();
    let i = names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(&w))
        .ok_or_else(|| {
            cmd_err!(
                "unknown {} subcommand '{w}' (expected {})",
                args.command().name,
                expected_list(&names)
            )
        })?;
    Ok((i, Args::new(&subs[i], args.rest())))
}

/// Checks a cache or pool name: 1..=31 bytes, no whitespace or control bytes.
fn check_name(what: &str, name: &str) -> Result<(), CmdError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(cmd_err!(
            "{what} name '{name}' is {} bytes (expected 1..={MAX_NAME})",
            name.len()
        ));
    }
    if name
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(cmd_err!("{what} name '{name}' contains whitespace"));
    }
    Ok(())
}

/// A size argument for kmalloc and caches: 1..=1 MiB.
fn size_arg(args: &mut Args) -> Result<u64, CmdError> {
    args.number_in("SIZE", 1, KMALLOC_MAX as u64)
}

/// `x.yz` of `num / den`, or `-` when `den` is 0.
fn ratio(num: u64, den: u64) -> String {
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
static CACHE_SUBS: [Command; 6] = [
    sub("cache create NAME SIZE [ALIGN] [FLAG...]"),
    sub("cache alloc NAME [GFP...]"),
    sub("cache free NAME ADDR|#N"),
    sub("cache destroy NAME"),
    sub("cache shrink NAME"),
    sub("cache list"),
];

/// `cache create|alloc|free|destroy|shrink|list ...`.
pub fn cache(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let (i, mut a) = subcommand(args, &CACHE_SUBS)?;
    match sub_word(&CACHE_SUBS[i]) {
        "create" => cache_create(ctx, &mut a),
        "alloc" => cache_alloc(ctx, &mut a),
        "free" => {
            let name = a.word("NAME")?;
            let target = a.handle_or_addr("ADDR|#N")?;
            a.end()?;
            free_slab_object(ctx, target, SlabFree::Cache(&name))
        }
        "destroy" => cache_destroy(ctx, &mut a),
        "shrink" => {
            let name = a.word("NAME")?;
            a.end()?;
            let n = ctx
                .kernel
                .kmem_cache_shrink(&name)
                .map_err(|e| cache_error(&name, e))?;
            writeln!(ctx, "cache {name}: {} released", plural(n, "slab", "slabs"))?;
            Ok(())
        }
        _ => {
            a.end()?;
            list_caches(ctx)
        }
    }
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

fn cache_alloc(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let name = args.word("NAME")?;
    let gfp = args.gfp()?;
    args.end()?;
    let row = ctx
        .kernel
        .kmem_cache_info(&name)
        .map_err(|e| cache_error(&name, e))?;
    let size = match cache_handle(ctx, &name) {
        Some((_, Object::Cache { size, .. })) => size,
        _ => u64::from(row.obj_size),
    };
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
fn cache_rows(ctx: &Ctx<'_>) -> Result<Vec<CacheRow>, CmdError> {
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
pub fn caches_line(r: &CacheRow) -> String {
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
pub fn slabinfo_line(r: &CacheRow) -> String {
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
    sub("mempool create NAME MIN_NR kmalloc SIZE|cache CACHE"),
    sub("mempool alloc NAME [GFP...]"),
    sub("mempool free NAME ADDR|#N"),
    sub("mempool destroy NAME"),
    sub("mempool info [NAME]"),
];

/// `mempool create|alloc|free|destroy|info ...`.
pub fn mempool(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let (i, mut a) = subcommand(args, &MEMPOOL_SUBS)?;
    match sub_word(&MEMPOOL_SUBS[i]) {
        "create" => pool_create(ctx, &mut a),
        "alloc" => pool_alloc(ctx, &mut a),
        "free" => {
            let name = a.word("NAME")?;
            let target = a.handle_or_addr("ADDR|#N")?;
            a.end()?;
            free_slab_object(ctx, target, SlabFree::Pool(&name))
        }
        "destroy" => pool_destroy(ctx, &mut a),
        _ => pool_info(ctx, &mut a),
    }
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
    let debug: Vec<&CacheRow> = rows.iter().filter(|r| r.debug.any()).collect();
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

// ---------------------------------------------------------------------------
// selftest, bench
// ---------------------------------------------------------------------------

/// `selftest slab`: Linux slub_kunit scenarios.
pub fn selftest(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let what = args.word("slab|heap")?;
    args.end()?;
    if what.eq_ignore_ascii_case("heap") {
        return selftest_heap(ctx);
    }
    if !what.eq_ignore_ascii_case("slab") {
        return Err(cmd_err!(
            "unknown selftest '{what}' (expected slab or heap)"
        ));
    }
    let scenarios = mm::slab::selftest::SCENARIOS;
    let mut failed = Vec::new();
    for (i, name) in scenarios.iter().enumerate() {
        match ctx.kernel.slab_selftest(name) {
            Ok(n) => {
                writeln!(ctx, "{name}: {n} errors detected")?;
                if n == 0 {
                    failed.push(*name);
                }
            }
            Err(e) if i == 0 && e == UNSUPPORTED => return Err(e.into()),
            Err(e) => {
                writeln!(ctx, "{name}: could not run ({e})")?;
                failed.push(*name);
            }
        }
    }
    if failed.is_empty() {
        writeln!(
            ctx,
            "selftest slab: all {} scenarios detected their corruption",
            scenarios.len()
        )?;
        Ok(())
    } else {
        Err(cmd_err!(
            "selftest slab: {} of {} scenarios failed: {}",
            failed.len(),
            scenarios.len(),
            failed.join(", ")
        ))
    }
}

/// `selftest heap`: every case of [`crate::kernel::HEAP_SELFTESTS`], then checks
/// that the heap gave everything back (`mm_stat` equal before and after, once
/// empty slabs are released).
fn selftest_heap(ctx: &mut Ctx<'_>) -> Result<(), CmdError> {
    let cases = crate::kernel::HEAP_SELFTESTS;
    // Allocated before the first measurement: a push must not grow the heap
    // between the two.
    let mut failed = Vec::with_capacity(cases.len());
    ctx.kernel.kmem_cache_shrink_all()?;
    let before = ctx.kernel.mm_stat();
    for (i, name) in cases.iter().enumerate() {
        match ctx.kernel.heap_selftest(name) {
            Ok(()) => writeln!(ctx, "{name}: ok")?,
            Err(e) if i == 0 && e == UNSUPPORTED => return Err(e.into()),
            Err(e) => {
                writeln!(ctx, "{name}: FAILED ({e})")?;
                failed.push(*name);
            }
        }
    }
    ctx.kernel.kmem_cache_shrink_all()?;
    let after = ctx.kernel.mm_stat();
    if before != after {
        return Err(cmd_err!(
            "selftest heap: memory not given back (used {} -> {} bytes)",
            before.used,
            after.used
        ));
    }
    if failed.is_empty() {
        writeln!(
            ctx,
            "selftest heap: all {} cases passed, nothing leaked",
            cases.len()
        )?;
        Ok(())
    } else {
        Err(cmd_err!(
            "selftest heap: {} of {} cases failed: {}",
            failed.len(),
            cases.len(),
            failed.join(", ")
        ))
    }
}

/// Default `bench kmalloc` iterations.
pub const BENCH_DEFAULT: u64 = 100_000;
/// Most `bench kmalloc` iterations.
pub const BENCH_MAX: u64 = 10_000_000;

/// `bench kmalloc [ITER]`.
pub fn bench(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let what = args.word("kmalloc")?;
    if !what.eq_ignore_ascii_case("kmalloc") {
        return Err(cmd_err!("unknown benchmark '{what}' (expected kmalloc)"));
    }
    let iters = match args.peek() {
        Some(_) => args.number_in("ITER", 1, BENCH_MAX)?,
        None => BENCH_DEFAULT,
    };
    args.end()?;
    let r = ctx.kernel.bench_kmalloc(iters)?;
    writeln!(
        ctx,
        "kmalloc(80)+kfree: {} pairs, {} cycles, {} cycles/pair",
        r.pairs,
        r.pair_cycles,
        ratio(r.pair_cycles, r.pairs)
    )?;
    writeln!(
        ctx,
        "mixed 16..4096 bytes: {} ops, {} cycles, {} cycles/op",
        r.mixed_ops,
        r.mixed_cycles,
        ratio(r.mixed_cycles, r.mixed_ops)
    )?;
    Ok(())
}

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
        for r in (0..).map_while(|i| CacheRow::at(&slab, i)) {
            got.push_str(&slabinfo_line(&r));
            got.push('\n');
        }
        assert_eq!(got, want);
        assert!(got.contains(
            "\nkmalloc-128            0      0    128   32    1 : tunables    0    0    0 \
             : slabdata      0      0      0\n"
        ));
    }

    #[test]
    fn caches_lines_fit_80_columns() {
        let slab = Slab::new();
        assert!(CACHES_HEADER.len() <= 80);
        for r in (0..).map_while(|i| CacheRow::at(&slab, i)) {
            let l = caches_line(&r);
            assert!(l.len() <= 80, "{l}");
        }
        let r = CacheRow::at(&slab, 23).unwrap();
        assert_eq!(r.name.as_str(), "dma-kmalloc-4k");
        assert_eq!(
            caches_line(&r),
            "dma-kmalloc-4k        4K     4K    4K      0      0     0   8 -    kmalloc,dma"
        );
        let widest = CacheRow {
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
