//! Fault injection (`fail`) against the real allocators of the simulated machine:
//! every allocation-backed command answers an injected failure with exactly one
//! `error:` line and creates no handle, the injector's settings and counters are
//! shown, and after `fail off` and `free all` memory is back to the boot numbers.

mod common;

use common::{machine, mem_map, one, run, Machine};
use shell::Shell;

/// The output of `line`, which must be exactly one `error: ` line (`selftest`
/// reports each scenario first: then its last line is the only error).
fn err(sh: &mut Shell, k: &mut Machine<'_>, line: &str) -> String {
    let out = run(sh, k, line);
    if !line.starts_with("selftest") {
        assert_eq!(out.len(), 1, "{line}: {out:?}");
    }
    let errors = out.iter().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(errors, 1, "{line}: {out:?}");
    let last = out.last().unwrap();
    assert!(last.starts_with("error: "), "{line}: {out:?}");
    last.clone()
}

fn handles(sh: &mut Shell, k: &mut Machine<'_>) -> Vec<String> {
    run(sh, k, "handles")
}

/// Every command that allocates from the page allocator.
const PAGE_COMMANDS: &[&str] = &[
    "pages 1",
    "pages 4 DMA KERNEL",
    "pages 3 UNMAPPED",
    "pages 63 SHARED",
    "alloc_pages 0",
    "alloc_pages 3 GFP_DMA",
    "alloc_pages 2 __GFP_HIGHMEM",
    "alloc_pages 10 __GFP_ZERO",
    "alloc_page",
    "alloc_page GFP_ATOMIC",
    "get_free_pages 2",
    "get_free_pages 0 GFP_DMA __GFP_ZERO",
    "get_free_pages 1 __GFP_HIGHMEM",
    "get_free_page",
    "get_zeroed_page",
    "page_alloc",
];

/// Every command that allocates from the slab allocator (`fc` is a cache, `mp0`
/// a pool without reserve).
const SLAB_COMMANDS: &[&str] = &[
    "kmalloc 80",
    "kmalloc 8 GFP_DMA",
    "kmalloc 5000 __GFP_ZERO",
    "kmalloc 1M",
    "kzalloc 64",
    "cache alloc fc",
    "cache alloc fc __GFP_ZERO",
    "cache alloc fcd",
    "mempool create mp2 3 kmalloc 128",
    "mempool create mp3 1 cache fc",
    "mempool alloc mp0",
    "selftest slab",
    "bench kmalloc 10",
];

/// Objects in caches and magazines, pools, and a debug cache, made before arming.
fn warm_up(sh: &mut Shell, k: &mut Machine<'_>) {
    for line in [
        "cache create fc 100",
        "cache create fcd 48 0 SLAB_RED_ZONE",
        "mempool create mp0 0 kmalloc 64",
        "mempool create mp 2 kmalloc 64",
        "kmalloc 80",
        "kmalloc 8 GFP_DMA",
        "cache alloc fc",
        "alloc_page",
        "pages 4 DMA",
    ] {
        let l = one(sh, k, line);
        assert!(l.starts_with('#'), "{line}: {l}");
    }
    // Freed objects wait in magazines and freed pages in the page caches.
    for h in ["#5", "#6", "#7", "#8", "#9"] {
        run(sh, k, &format!("free {h}"));
    }
}

#[test]
fn every_allocation_command_fails_with_one_error_line_and_nothing_leaks() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");
    warm_up(&mut sh, &mut k);
    let live = handles(&mut sh, &mut k);
    let before = run(&mut sh, &mut k, "memstat");
    assert_eq!(
        run(&mut sh, &mut k, "fail all"),
        [
            "fail_page_alloc: probability=100 interval=1 times=-1 space=0 seed=1 times_left=-1 calls=0 injected=0",
            "failslab: probability=100 interval=1 times=-1 space=0 seed=1 times_left=-1 calls=0 injected=0",
        ]
    );
    for &line in PAGE_COMMANDS.iter().chain(SLAB_COMMANDS) {
        let e = err(&mut sh, &mut k, line);
        // (selftest names the scenarios that could not run in its error line.)
        assert!(
            e.contains("out of memory") || line == "selftest slab",
            "{line}: {e}"
        );
    }
    // Every command failed twice over: the caches are bypassed while armed.
    for &line in PAGE_COMMANDS.iter().chain(SLAB_COMMANDS) {
        err(&mut sh, &mut k, line);
    }
    assert_eq!(handles(&mut sh, &mut k), live, "no handle was created");
    // Nothing moved: the failures changed no count.
    assert_eq!(run(&mut sh, &mut k, "memstat"), before);
    let state = run(&mut sh, &mut k, "fail");
    let page_fails = 2 * PAGE_COMMANDS.len();
    assert!(
        state[0].ends_with(&format!("calls={page_fails} injected={page_fails}")),
        "{state:?}"
    );
    assert!(
        state[1].starts_with("failslab: probability=100"),
        "{state:?}"
    );
    // mempool_alloc falls back to the pool's reserve, as in Linux, then fails.
    for _ in 0..2 {
        let l = one(&mut sh, &mut k, "mempool alloc mp");
        assert!(l.contains("from=reserve"), "{l}");
    }
    err(&mut sh, &mut k, "mempool alloc mp");
    // Cache creation allocates nothing here (Linux exempts kmem_cache itself).
    assert!(one(&mut sh, &mut k, "cache create fc2 64").starts_with('#'));
    err(&mut sh, &mut k, "cache alloc fc2");
    assert_eq!(
        run(&mut sh, &mut k, "fail off"),
        [
            format!("fail_page_alloc: off injected={page_fails}"),
            run(&mut sh, &mut k, "fail")[1].clone(),
        ]
    );
    assert!(run(&mut sh, &mut k, "fail")[1].starts_with("failslab: off injected="));
    // Disarmed: everything works again.
    for line in ["kmalloc 80", "cache alloc fc2", "pages 1", "alloc_page"] {
        assert!(one(&mut sh, &mut k, line).starts_with('#'), "{line}");
    }
    let out = run(&mut sh, &mut k, "free all");
    assert!(!out.iter().any(|l| l.starts_with("error: ")), "{out:?}");
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
    k.b.check().unwrap();
}

#[test]
fn page_and_slab_are_armed_separately() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    run(&mut sh, &mut k, "fail page");
    err(&mut sh, &mut k, "alloc_page");
    assert!(one(&mut sh, &mut k, "kmalloc 80").starts_with('#'));
    run(&mut sh, &mut k, "fail off page");
    run(&mut sh, &mut k, "fail slab");
    assert!(one(&mut sh, &mut k, "alloc_page").starts_with('#'));
    err(&mut sh, &mut k, "kmalloc 80");
    assert_eq!(
        run(&mut sh, &mut k, "fail off slab"),
        ["failslab: off injected=1"]
    );
}

#[test]
fn interval_times_space_and_probability_settings() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    // Every 2nd call fails, twice; frees in between must not dodge the check.
    run(&mut sh, &mut k, "fail slab interval=2 times=2");
    let mut got = Vec::new();
    for _ in 0..6 {
        let l = one(&mut sh, &mut k, "kmalloc 100");
        got.push(l.starts_with('#'));
        if l.starts_with('#') {
            run(
                &mut sh,
                &mut k,
                &format!("kfree {}", &l[..l.find(' ').unwrap()]),
            );
        }
    }
    assert_eq!(got, [true, false, true, false, true, true]);
    assert_eq!(
        run(&mut sh, &mut k, "fail")[1],
        "failslab: probability=100 interval=2 times=2 space=0 seed=1 times_left=0 calls=6 injected=2"
    );
    // space: a budget of 10 pages; a call fails once it is not above the request
    // (Linux: 10 > 4, 6 > 4, then 2 > 4 is false).
    run(&mut sh, &mut k, "fail page space=10");
    assert!(one(&mut sh, &mut k, "alloc_pages 2").starts_with('#'));
    assert!(one(&mut sh, &mut k, "pages 4").starts_with('#'));
    err(&mut sh, &mut k, "alloc_pages 2");
    // probability with a seed replays exactly.
    let mut runs = Vec::new();
    for _ in 0..2 {
        run(&mut sh, &mut k, "fail page probability=50 seed=7");
        let pattern: Vec<bool> = (0..20)
            .map(|_| {
                let l = one(&mut sh, &mut k, "alloc_page");
                l.starts_with('#')
            })
            .collect();
        assert!(pattern.iter().any(|&ok| ok) && pattern.iter().any(|&ok| !ok));
        runs.push(pattern);
    }
    assert_eq!(runs[0], runs[1]);
    run(&mut sh, &mut k, "fail off");
    run(&mut sh, &mut k, "free all");
}

#[test]
fn bad_settings_are_one_error_and_change_nothing() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    for (line, want) in [
        ("fail bogus", "unknown fault site 'bogus' (expected page, slab, all or off)"),
        ("fail off bogus", "unknown fault site 'bogus' (expected page, slab, all or off)"),
        ("fail page probability=101", "probability 101 out of range (expected 0..=100, percent)"),
        ("fail page x=1", "unknown setting 'x' (expected probability, interval, times, space or seed)"),
        ("fail slab interval", "unexpected argument 'interval' (usage: fail [page|slab|all [SETTING=N...]|off [page|slab|all]])"),
        ("fail off page slab", "unexpected argument 'slab' (usage: fail [page|slab|all [SETTING=N...]|off [page|slab|all]])"),
    ] {
        assert_eq!(err(&mut sh, &mut k, line), format!("error: {want}"), "{line}");
    }
    assert!(err(&mut sh, &mut k, "fail page times=x").starts_with("error: "));
    assert_eq!(
        run(&mut sh, &mut k, "fail"),
        [
            "fail_page_alloc: off injected=0",
            "failslab: off injected=0"
        ]
    );
    let help = run(&mut sh, &mut k, "help fail");
    assert!(help
        .iter()
        .any(|l| l.contains("fail_page_alloc=<interval>,<probability>,<space>,<times>")));
}
