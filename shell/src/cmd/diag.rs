//! Diagnostics: `selftest slab|heap` (the slab allocator's kunit scenarios, the
//! kernel heap through Rust's `alloc`), `check` (the invariant check now, or
//! check mode), `bench kmalloc` (rdtsc cycles) and `fail` (fault injection, in
//! `fault.rs`).

use super::slab::ratio;
use super::{Args, CmdError, Command, Ctx};
use crate::api::UNSUPPORTED;
use crate::check;
use crate::cmd_err;
use alloc::vec::Vec;
use core::fmt::Write;

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

/// `selftest heap`: every case of [`crate::api::HEAP_SELFTESTS`], then checks
/// that the heap gave everything back (`mm_stat` equal before and after, once
/// empty slabs are released).
fn selftest_heap(ctx: &mut Ctx<'_>) -> Result<(), CmdError> {
    let cases = crate::api::HEAP_SELFTESTS;
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
    let what = args.word("kmalloc|batch|map")?;
    if what.eq_ignore_ascii_case("map") {
        return super::vm::bench_map(ctx, args);
    }
    if what.eq_ignore_ascii_case("batch") {
        return bench_batch(ctx, args);
    }
    if !what.eq_ignore_ascii_case("kmalloc") {
        return Err(cmd_err!(
            "unknown benchmark '{what}' (expected kmalloc, batch or map)"
        ));
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

/// `bench batch [N]`: the batch workloads, N objects per batch.
fn bench_batch(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let n = match args.peek() {
        Some(_) => args.number_in("N", 1, crate::api::BATCH_MAX)?,
        None => 1024,
    };
    args.end()?;
    let r = ctx.kernel.bench_batch(n)?;
    writeln!(
        ctx,
        "batches of {n}: cycles per object (alloc + free), best of {} rounds after a warm-up round",
        crate::api::BATCH_ROUNDS
    )?;
    for (what, c) in [
        ("order-0 pages, single calls", r.page0),
        (
            "order-0 pages, alloc_pages_bulk/free_pages_bulk",
            r.page0_bulk,
        ),
        ("order-3 blocks, single calls", r.page3),
        ("kmalloc(64)/kfree", r.kmalloc),
        ("kmem_cache_alloc/free (kmalloc-64)", r.cache_loop),
        ("kmem_cache_alloc_bulk/free_bulk (kmalloc-64)", r.cache_bulk),
    ] {
        writeln!(ctx, "{what}: {}", ratio(c, r.n))?;
    }
    Ok(())
}

/// `check [on|off]`.
pub fn check(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let mode = args.opt_word();
    args.end()?;
    match mode.as_deref() {
        None => {
            let s = check::run(ctx.kernel, ctx.handles).map_err(|e| cmd_err!("check: {e}"))?;
            let mode = if ctx.check { "on" } else { "off" };
            writeln!(
                ctx,
                "check: ok: page allocator, {} slab caches, {} handles (check mode {mode})",
                s.caches, s.handles
            )?;
        }
        Some(w) if w.eq_ignore_ascii_case("on") => {
            ctx.check = true;
            writeln!(
                ctx,
                "check mode on: invariants are checked after every command"
            )?;
        }
        Some(w) if w.eq_ignore_ascii_case("off") => {
            ctx.check = false;
            writeln!(ctx, "check mode off")?;
        }
        Some(w) => return Err(cmd_err!("check: unknown mode '{w}' (expected on or off)")),
    }
    Ok(())
}

/// The self-test, checking, benchmark and fault-injection commands, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "selftest",
        usage: "selftest slab|heap",
        summary: "run the slab or kernel-heap selftest",
        help: "selftest slab: each scenario makes a temporary debug cache, corrupts it the\n\
               way Linux's slub_kunit does (red zone, poison, free pointer, double and\n\
               interior free, bitmap), and counts the errors detected; then destroys the\n\
               cache. Prints 'NAME: N errors detected' per scenario, then a summary.\n\
               selftest heap: exercises Rust's alloc on the kernel heap (every kmalloc\n\
               class, 1 MiB, 3 MiB of whole pages, 4 KiB alignment, growth past 1 MiB),\n\
               checks contents and alignment, and that memstat is unchanged afterwards.\n\
               Both leave nothing allocated.",
        run: selftest,
    },
    Command {
        name: "check",
        usage: "check [on|off]",
        summary: "check allocators and handles now, or after each command",
        help: CHECK_HELP,
        run: check,
    },
    Command {
        name: "bench",
        usage: "bench kmalloc [ITER] | bench batch [N] | bench map [ITER]",
        summary: "time kmalloc, page batches and page tables, in cycles",
        help: "bench kmalloc: ITER is 1..=10000000 (default 100000). Runs ITER\n\
               kmalloc(80)+kfree pairs, then ITER steps of a mixed workload (sizes\n\
               16..4096, up to 64 objects live), timed with rdtsc, and prints cycles per\n\
               pair and per operation.\n\
               bench batch: N is 1..=8192 (default 1024). Allocates N objects, then frees\n\
               them all: order-0 pages and order-3 blocks by single calls, order-0 pages\n\
               by alloc_pages_bulk/free_pages_bulk, kmalloc(64), and the kmalloc-64 cache\n\
               by single calls and by kmem_cache_alloc_bulk/free_bulk; prints cycles per\n\
               object. A warm-up round runs first and is not counted (QEMU translates\n\
               code the first time it runs); then each workload's best of 3 rounds.\n\
               Everything is freed again (the page caches are drained).\n\
               bench map: ITER (default 10000) 4 KiB map+unmap pairs, translation, invlpg\n\
               against a full flush, and flushing n pages one by one against a full flush\n\
               followed by touching them.",
        run: bench,
    },
    Command {
        name: "fail",
        usage: "fail [page|slab|all [SETTING=N...]|off [page|slab|all]]",
        summary: "fault injection: page or slab allocations fail on purpose",
        help: FAIL_HELP,
        run: super::fault::fail,
    },
];

const FAIL_HELP: &str = "fail                  both injectors: settings, calls, failures injected
fail page|slab|all [SETTING=N...]  arm Linux's fail_page_alloc (page API: pages,
    alloc_pages, get_free_pages, page_alloc...), failslab (kmalloc, cache and
    mempool allocations), or both. SETTINGs (defaults in brackets):
    probability=P  percent of eligible calls that fail [100]
    interval=N     only every N-th eligible call may fail [1]
    times=N        stop after N failures; -1: unlimited [-1]
    space=N        budget (pages, or bytes for the slab) used up before any call
                   fails [0]
    seed=S         pseudo-random seed: the same seed fails the same calls [1]
fail off [page|slab|all]  disarm (default: both); the caches work again
A failed call is 'out of memory' and changes nothing. The kernel's own heap is
never failed. Boot options (Linux syntax, times -1: unlimited):
fail_page_alloc=<interval>,<probability>,<space>,<times>, failslab= likewise.";

const CHECK_HELP: &str = "check       run every consistency check now: the page allocator's own
            (Buddy::check), slab validation of every cache, and every live
            handle against the allocators (its pages or object still allocated
            as it says; its cache or pool still there). Prints one 'check: ok'
            line, or one error line naming the first violation.
check on    check mode: run the checks after every command (also: mm.check=1
            on the kernel command line); check off stops it.
In check mode a violation is reported at once as
    error: invariant violated after 'CMD': DETAIL
right after the output of the command CMD that caused it. This is the one
case where a command that succeeded is followed by an error line (and where a
failed command may print a second one). Slab findings are also kept in
'slub_debug reports'. Deliberate corruption, such as writing into the red zone
of a debug cache with bzero, is a violation too.";
