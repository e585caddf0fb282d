//! Serial tests of fault injection over the real kernel: `fail` drives the
//! allocation commands to one `error:` line each while the kernel keeps running
//! (its own heap is never failed), nothing leaks, and the `failslab=` /
//! `fail_page_alloc=` boot options arm the injectors.

use crate::pages::memstat;
use systest::*;

/// Allocation commands of the page allocator and the slab, one of each kind.
const COMMANDS: &[&str] = &[
    "pages 2 DMA",
    "pages 1 UNMAPPED",
    "alloc_pages 3",
    "alloc_page __GFP_HIGHMEM",
    "get_free_pages 1",
    "get_free_page",
    "get_zeroed_page",
    "page_alloc",
    "kmalloc 80",
    "kmalloc 300 GFP_DMA",
    "kzalloc 4096",
    "cache alloc fc",
    "mempool create mp2 2 kmalloc 64",
    "mempool alloc mp0",
    "bench kmalloc 10",
];

fn fault_every_command_fails_once_and_nothing_leaks(vm: &mut Vm) -> Check {
    let boot = memstat(vm)?;
    vm.ok("cache create fc 100")?;
    vm.ok("mempool create mp0 0 kmalloc 64")?;
    // Warm caches: freed objects and pages wait in magazines and page caches.
    vm.ok("kmalloc 80")?;
    vm.ok("alloc_page")?;
    vm.ok("free #3")?;
    vm.ok("free #4")?;
    let armed = vm.ok("fail all")?;
    ensure(
        armed.contains("fail_page_alloc: probability=100")
            && armed.contains("failslab: probability=100"),
        || format!("fail all:\n{armed}"),
    )?;
    for _ in 0..2 {
        for &line in COMMANDS {
            vm.err(line, "out of memory")?;
        }
    }
    // The kernel's own heap still works: the shell keeps running and answering.
    let out = vm.ok("selftest heap")?;
    ensure(out.contains("all 5 cases passed"), || out.clone())?;
    let handles = vm.ok("handles")?;
    ensure(
        handles.lines().filter(|l| l.starts_with('#')).count() == 2,
        || format!("a failed command left a handle:\n{handles}"),
    )?;
    let state = vm.ok("fail")?;
    ensure(
        state.contains("injected=16\n") && state.contains("injected=14\n"),
        || format!("counters:\n{state}"),
    )?;
    vm.ok("fail off")?;
    vm.ok("kmalloc 80")?;
    vm.ok("pages 2 DMA")?;
    vm.ok("free all")?;
    let after = memstat(vm)?;
    ensure(boot == after, || {
        format!("fault injection leaked:\nboot  {boot:?}\nafter {after:?}")
    })
}

fn fault_boot_options_arm_the_injectors() -> Outcome {
    with_vm(
        Opts::default().cmdline("failslab=2,100,0,-1 fail_page_alloc=1,100,0,1"),
        |vm| {
            ensure(
                vm.banner.contains(
                    "failslab: fault injection armed (probability=100 interval=2 times=-1 space=0 seed=1)",
                ) && vm.banner.contains(
                    "fail_page_alloc: fault injection armed (probability=100 interval=1 times=1 space=0 seed=1)",
                ),
                || vm.banner.clone(),
            )?;
            // Every 2nd slab allocation fails; the page allocator fails once.
            vm.ok("kmalloc 80")?;
            vm.err("kmalloc 80", "out of memory")?;
            vm.ok("kmalloc 80")?;
            vm.err("alloc_page", "out of memory")?;
            vm.ok("alloc_page")?;
            let state = vm.ok("fail")?;
            ensure(
                state.contains("fail_page_alloc: probability=100 interval=1 times=1 space=0 seed=1 times_left=0"),
                || state.clone(),
            )?;
            vm.ok("fail off")?;
            vm.ok("free all")?;
            Ok(())
        },
    )
}

fn fault_bad_boot_option_is_ignored_with_a_warning() -> Outcome {
    with_vm(Opts::default().cmdline("failslab=1,200,0,-1"), |vm| {
        ensure(
            vm.banner.contains("warning: failslab=1,200,0,-1 ignored"),
            || vm.banner.clone(),
        )?;
        let state = vm.ok("fail")?;
        ensure(state.contains("failslab: off"), || state.clone())?;
        vm.ok("kmalloc 80").map(|_| ())
    })
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![
        fault_every_command_fails_once_and_nothing_leaks with |b| with_vm(Opts::default(), b),
        fault_boot_options_arm_the_injectors,
        fault_bad_boot_option_is_ignored_with_a_warning,
    ]
}
