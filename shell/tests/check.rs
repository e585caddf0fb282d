//! The `check` command and check mode on the simulated machine (real buddy and
//! slab allocators, see `common/machine.rs`): a healthy machine passes, and each
//! kind of corruption done behind the shell's back (pages or objects freed under
//! a live handle, a cache destroyed, a broken `struct page`, a red zone
//! overwritten, overlapping handles) is reported, in check mode right after the
//! command that caused it.

mod common;

use common::{error_lines, field, hex, machine, mem_map, one, run, Machine};
use mm::{PageProvider, PageState, Pfn};
use shell::{Object, Shell};

/// The `check` output line, which must be an error; its text.
fn check_err(sh: &mut Shell, k: &mut Machine<'_>) -> String {
    let l = one(sh, k, "check");
    l.strip_prefix("error: check: ")
        .unwrap_or_else(|| panic!("check did not fail: {l:?}"))
        .to_string()
}

#[test]
fn check_passes_on_a_healthy_machine() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let l = one(&mut sh, &mut k, "check");
    assert!(l.starts_with("check: ok: page allocator, "), "{l}");
    assert!(
        l.ends_with(" slab caches, 0 handles (check mode off)"),
        "{l}"
    );
    for line in [
        "kmalloc 80",
        "kzalloc 5000 GFP_DMA",
        "pages 3 DMA",
        "pages 2 UNMAPPED",
        "alloc_pages 2 __GFP_HIGHMEM",
        "get_free_pages 1",
        "get_zeroed_page",
        "page_alloc",
        "cache create c 100 64",
        "cache alloc c",
        "mempool create p 2 kmalloc 200",
        "mempool alloc p",
        "mempool create q 1 cache c",
        "mempool alloc q",
    ] {
        let out = run(&mut sh, &mut k, line);
        assert!(out[0].starts_with('#'), "{line}: {out:?}");
    }
    run(&mut sh, &mut k, "get_page #5");
    let l = one(&mut sh, &mut k, "check");
    assert!(l.contains(" 14 handles (check mode off)"), "{l}");
    assert_eq!(
        one(&mut sh, &mut k, "check on"),
        "check mode on: invariants are checked after every command"
    );
    assert!(sh.check_mode());
    run(&mut sh, &mut k, "put_page #5");
    let out = run(&mut sh, &mut k, "free all");
    assert_eq!(error_lines(&out.join("\r\n")), 0, "{out:?}");
    let l = one(&mut sh, &mut k, "check");
    assert!(l.ends_with(" 0 handles (check mode on)"), "{l}");
    assert_eq!(one(&mut sh, &mut k, "CHECK OFF"), "check mode off");
    assert!(!sh.check_mode());
    assert_eq!(
        one(&mut sh, &mut k, "check sometimes"),
        "error: check: unknown mode 'sometimes' (expected on or off)"
    );
    assert!(one(&mut sh, &mut k, "check on off").starts_with("error: "));
}

#[test]
fn check_mode_reports_pages_freed_under_a_handle_after_the_command() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let l = one(&mut sh, &mut k, "pages 3 DMA");
    let pfn = Pfn(hex(field(&l, "pfn")) as u32);
    one(&mut sh, &mut k, "check on");
    // A failing command without a violation: still exactly one error line.
    assert_eq!(
        run(&mut sh, &mut k, "pages 0").len(),
        1,
        "one error, no violation"
    );
    k.b.free_pages_count(pfn, 3).unwrap();
    let out = run(&mut sh, &mut k, "echo hi");
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], "hi");
    assert!(
        out[1].starts_with("error: invariant violated after 'echo hi': handle #1 (pages): pfn=")
            && out[1].contains("not an allocated block head"),
        "{out:?}"
    );
    // `check` itself is not followed by a second report.
    let e = check_err(&mut sh, &mut k);
    assert!(e.starts_with("handle #1 (pages): "), "{e}");
    one(&mut sh, &mut k, "check off");
    assert_eq!(run(&mut sh, &mut k, "echo quiet"), ["quiet"]);
}

#[test]
fn check_reports_a_block_with_another_size_or_zone() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let l = one(&mut sh, &mut k, "pages 3");
    let pfn = Pfn(hex(field(&l, "pfn")) as u32);
    let Object::Pages {
        zone, flags, virt, ..
    } = sh.handles_mut().remove(shell::HandleId(1)).unwrap()
    else {
        panic!("not pages")
    };
    let lie = |n, zone| Object::Pages {
        pfn,
        n,
        zone,
        flags,
        virt,
    };
    sh.handles_mut().insert(lie(2, zone)).unwrap();
    let e = check_err(&mut sh, &mut k);
    assert_eq!(
        e,
        format!("handle #2 (pages): block at pfn={pfn} has 3 pages, the handle says 2")
    );
    sh.handles_mut().remove(shell::HandleId(2)).unwrap();
    sh.handles_mut().insert(lie(3, mm::Zone::Dma)).unwrap();
    let e = check_err(&mut sh, &mut k);
    assert_eq!(
        e,
        format!("handle #3 (pages): pfn={pfn} is in zone NORMAL, the handle says DMA")
    );
    sh.handles_mut().remove(shell::HandleId(3)).unwrap();
    sh.handles_mut().insert(lie(3, zone)).unwrap();
    assert!(one(&mut sh, &mut k, "check").starts_with("check: ok"));
}

#[test]
fn check_reports_objects_freed_and_caches_destroyed_behind_the_shell() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let l = one(&mut sh, &mut k, "kmalloc 80");
    let v = hex(field(&l, "virt"));
    one(&mut sh, &mut k, "check");
    k.host
        .slab
        .kfree(&mut k.host.mem, &mut k.host.b, v)
        .unwrap();
    let e = check_err(&mut sh, &mut k);
    assert_eq!(
        e,
        format!("handle #1 (kmalloc): object {v:#x} of cache kmalloc-128 is free")
    );
    // The handle is retired; a cache handle whose cache disappears.
    sh.handles_mut().remove(shell::HandleId(1)).unwrap();
    one(&mut sh, &mut k, "cache create c 64");
    let id = k.slab.find("c").unwrap();
    k.host
        .slab
        .kmem_cache_destroy(&mut k.host.mem, &mut k.host.b, id)
        .unwrap();
    let e = check_err(&mut sh, &mut k);
    assert!(e.starts_with("handle #2 (cache): kmem_cache_info: "), "{e}");
}

#[test]
fn check_reports_a_broken_struct_page() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let free = (0..common::NPAGES)
        .map(Pfn)
        .find(|&p| k.b.page(p).is_some_and(|pg| pg.state() == PageState::Free))
        .unwrap();
    PageProvider::page_mut(&mut k.b, free).unwrap().count = 1;
    let e = check_err(&mut sh, &mut k);
    assert!(
        e.starts_with("page allocator: free head with a reference count"),
        "{e}"
    );
}

#[test]
fn check_mode_reports_a_red_zone_overwrite_at_once() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    run(&mut sh, &mut k, "slub_debug FZPU,kmalloc-8k");
    one(&mut sh, &mut k, "kmalloc 5000");
    one(&mut sh, &mut k, "check on");
    let out = run(&mut sh, &mut k, "bzero #1 5000 8");
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].starts_with("zeroed 8 bytes of #1"), "{out:?}");
    assert!(
        out[1].starts_with(
            "error: invariant violated after 'bzero #1 5000 8': slab cache kmalloc-8k: \
             validation found 1 error(s)"
        ),
        "{out:?}"
    );
    // The finding was reported (and repaired): the next command is clean.
    assert_eq!(run(&mut sh, &mut k, "echo ok"), ["ok"]);
    let reports = run(&mut sh, &mut k, "slub_debug reports");
    assert!(
        reports.iter().any(|l| l.contains("kmalloc-8k")),
        "{reports:?}"
    );
}

#[test]
fn check_reports_overlapping_handles() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let l = one(&mut sh, &mut k, "pages 4");
    let pfn = Pfn(hex(field(&l, "pfn")) as u32);
    let dup = sh.handles().iter().next().unwrap().1.clone();
    assert!(matches!(dup, Object::Pages { .. }));
    sh.handles_mut().insert(dup).unwrap();
    let e = check_err(&mut sh, &mut k);
    assert_eq!(
        e,
        format!("handles #1 and #2: page blocks at pfn={pfn} and pfn={pfn} overlap")
    );
}

/// A slab block at PFN 0 has its first object at physical address 0: the
/// allocator must hand it out (it used 0 as "no free slot" and failed with the
/// internal text "available count without a free slot"; found by the serial
/// fuzzer, where the kernel's RAM starts at PFN 0).
#[test]
fn slab_objects_at_physical_address_zero() {
    let mut map = mem_map();
    let ram = [(0x0, 0x9f), (0x100, 0x3f00)];
    let (mut sh, mut k) = common::machine_with(&mut map, common::LOWMEM, &ram, common::KERNEL);
    sh.set_check(true);
    let boot = run(&mut sh, &mut k, "memstat");
    let l = one(&mut sh, &mut k, "kmalloc 100K GFP_DMA");
    assert_eq!(field(&l, "phys"), "0x0000000000000000", "{l}");
    let l = one(&mut sh, &mut k, "kmalloc 100K GFP_DMA");
    assert!(l.starts_with("#2 kmalloc"), "{l}");
    let out = run(&mut sh, &mut k, "free all");
    assert_eq!(error_lines(&out.join("\r\n")), 0, "{out:?}");
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
}
