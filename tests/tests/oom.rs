//! Out of memory over the real serial line (issue #9): on `-m 64M`, fill memory
//! with one allocator until it answers `error:`, then run what a user would run
//! next. The kernel must stay up (its heap has the reserve below the zones' `min`
//! watermarks), every answer has at most one `error:` line and no report of a
//! panic or exception, and `free all` brings `memstat` back to its boot text,
//! per-zone lines included.

use systest::*;

/// What must never appear in an answer.
const FORBIDDEN: &[&str] = &[
    "panic",
    "!!!",
    "CPU exception",
    "invariant",
    "available count",
];

/// Runs `line` and checks the answer: at most one `error:` line, nothing forbidden.
fn step(vm: &mut Vm, line: &str) -> Result<String, String> {
    let out = vm.cmd(line)?;
    let errors = out.lines().filter(|l| l.starts_with("error: ")).count();
    ensure(errors <= 1, || {
        format!("`{line}`: {errors} error lines:\n{out}")
    })?;
    if let Some(bad) = FORBIDDEN.iter().find(|f| out.contains(**f)) {
        return Err(format!("`{line}` printed `{bad}`:\n{out}"));
    }
    Ok(out)
}

/// Repeats `line` until it fails (at most `max` times); the failure must be an
/// out-of-memory error. Returns how many succeeded.
fn fill(vm: &mut Vm, line: &str, max: usize) -> Result<usize, String> {
    for n in 0..max {
        let out = step(vm, line)?;
        if let Some(e) = out.lines().find(|l| l.starts_with("error: ")) {
            ensure(e.contains("out of memory"), || {
                format!("`{line}` #{n} failed, but not for lack of memory: {e}")
            })?;
            return Ok(n);
        }
    }
    Err(format!("`{line}` never ran out of memory in {max} tries"))
}

/// The memory picture to compare: `memstat` whole.
fn picture(vm: &mut Vm) -> Result<String, String> {
    vm.ok("memstat")
}

/// What a user runs once memory is gone; then `free all` must restore boot.
fn after_oom(vm: &mut Vm, boot: &str, filled: usize) -> Check {
    ensure(filled > 0, || {
        "nothing was allocated before the error".into()
    })?;
    let zi = step(vm, "zoneinfo")?;
    ensure(zi.contains("  min: "), || {
        format!("zoneinfo without watermarks:\n{zi}")
    })?;
    step(vm, "memstat")?;
    let out = step(vm, "echo still alive")?;
    ensure(out.contains("still alive"), || {
        format!("echo answered:\n{out}")
    })?;
    let out = step(vm, "handles")?;
    let listed = out.lines().filter(|l| l.starts_with('#')).count();
    ensure(listed >= filled, || {
        format!("handles lists {listed} of at least {filled} handles")
    })?;
    // A 3 MiB heap request: cases may fail (memory is gone), each for lack of
    // memory, and nothing may leak.
    let out = step(vm, "selftest heap")?;
    for l in out.lines().filter(|l| l.contains("FAILED")) {
        ensure(l.contains("out of memory"), || {
            format!("selftest heap: {l}")
        })?;
    }
    ensure(!out.contains("not given back"), || {
        format!("selftest heap leaked:\n{out}")
    })?;
    for line in [
        "pages 1 UNMAPPED",
        "pages 1",
        "kmalloc 32",
        "kmalloc 4K",
        "cache create oomcache 100",
        "mempool create oompool 2 kmalloc 64",
        "help free",
        "history",
    ] {
        step(vm, line)?;
    }
    let out = step(vm, "free all")?;
    ensure(!out.contains("error: "), || {
        format!("free all failed:\n{out}")
    })?;
    let after = picture(vm)?;
    ensure(after == boot, || {
        format!("after out of memory and free all:\nboot:\n{boot}\nafter:\n{after}")
    })?;
    // And memory is usable again.
    let out = step(vm, "pages 63")?;
    ensure(out.starts_with('#'), || out)
}

/// Fills with each line in turn (largest first), then checks the aftermath.
fn campaign(ladder: &'static [(&'static str, usize)]) -> Outcome {
    with_vm(Opts::default().mem("64M"), |vm| {
        let boot = picture(vm)?;
        let mut filled = 0;
        for &(line, max) in ladder {
            filled += fill(vm, line, max)?;
        }
        after_oom(vm, &boot, filled)
    })
}

fn oom_dragonos_pages() -> Outcome {
    campaign(&[
        ("pages 63", 400),
        ("pages 63 DMA", 100),
        ("pages 4", 400),
        ("pages 4 DMA", 400),
        ("pages 1", 400),
        ("pages 1 DMA", 400),
    ])
}

fn oom_linux_alloc_pages() -> Outcome {
    campaign(&[
        ("alloc_pages 10", 40),
        ("alloc_pages 6", 100),
        ("alloc_pages 2", 400),
        ("alloc_page", 400),
    ])
}

fn oom_get_free_pages() -> Outcome {
    campaign(&[
        ("get_free_pages 10", 40),
        ("get_free_pages 5", 200),
        ("get_free_page", 800),
    ])
}

fn oom_mos_page_alloc() -> Outcome {
    campaign(&[("alloc_pages 8", 100), ("page_alloc", 1500)])
}

fn oom_kmalloc() -> Outcome {
    campaign(&[
        ("kmalloc 1M", 100),
        ("kmalloc 64K", 100),
        ("kmalloc 4K", 400),
        ("kmalloc 512", 400),
        ("kmalloc 32", 2000),
    ])
}

fn oom_vmalloc() -> Outcome {
    campaign(&[
        ("vmalloc 1M", 100),
        ("vzalloc 64K", 400),
        ("vmalloc 4K", 3000),
    ])
}

fn oom_alloc_pages_bulk() -> Outcome {
    campaign(&[("alloc_pages_bulk 512", 100), ("alloc_pages_bulk 1", 2000)])
}

fn oom_kmem_cache() -> Outcome {
    with_vm(Opts::default().mem("64M"), |vm| {
        let boot = picture(vm)?;
        step(vm, "cache create big 256K")?;
        step(vm, "cache create small 200")?;
        let mut filled = 2;
        filled += fill(vm, "cache alloc big", 400)?;
        filled += fill(vm, "cache alloc small", 3000)?;
        after_oom(vm, &boot, filled)
    })
}

fn oom_mempool() -> Outcome {
    with_vm(Opts::default().mem("64M"), |vm| {
        let boot = picture(vm)?;
        step(vm, "mempool create pool 8 kmalloc 1M")?;
        // The reserve's 8 elements come out after the backing allocator
        // fails; then the pool is empty and says so.
        let filled = 1 + fill(vm, "mempool alloc pool", 200)?;
        after_oom(vm, &boot, filled)
    })
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![
        oom_dragonos_pages,
        oom_linux_alloc_pages,
        oom_get_free_pages,
        oom_mos_page_alloc,
        oom_kmalloc,
        oom_kmem_cache,
        oom_mempool,
        oom_vmalloc,
        oom_alloc_pages_bulk,
    ]
}
