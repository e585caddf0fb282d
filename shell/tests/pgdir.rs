//! MOS `pgdir_walk` and DragonOS `mm_unmap_proc_table` from the shell, on the
//! simulated machine (its kernel tables are built by `mm::paging` as the real
//! kernel's are): the entry of a mapped, an unmapped and a tableless address,
//! `create` only in an address space, and `free all` back to the boot numbers.

mod common;

use common::{error_lines, field, hex, machine, mem_map, one, run, KERNEL};
use mm::layout::KERNEL_BASE;

fn pfn_phys(line: &str) -> u64 {
    hex(field(line, "phys"))
}

#[test]
fn pgdir_walk_finds_entries_and_creates_tables_only_in_an_address_space() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");

    // Kernel text has 4 KiB entries; the direct map is 2 MiB pages, which have
    // no 4 KiB entry (one error line that says so).
    let text = KERNEL_BASE + (u64::from(KERNEL.0) << 12);
    let d = one(&mut sh, &mut k, &format!("pgdir_walk {text:#x}"));
    assert!(
        d.starts_with(&format!("{text:#018x}: pte @0x")) && d.ends_with(" rx,global"),
        "{d}"
    );
    let h = run(&mut sh, &mut k, "pgdir_walk 0xffff800000200000");
    assert_eq!(h, ["error: 0xffff800000200000 is inside a 2 MiB page"]);
    // No table under the user half of the kernel's table.
    let u = one(&mut sh, &mut k, "pgdir_walk 0x400000");
    assert_eq!(
        u,
        "0x0000000000400000: no page table in kernel (a table above it is missing or a huge page)"
    );

    // `create` is refused on the kernel's own table, and changes nothing.
    let free = k.b.nr_free_pages();
    let out = run(&mut sh, &mut k, "pgdir_walk 0x400000 create");
    assert_eq!(error_lines(&out.join("\r\n")), 1, "{out:?}");
    assert!(out[0].contains("only in an address space"), "{out:?}");
    assert_eq!(k.b.nr_free_pages(), free);
    for bad in [
        "pgdir_walk",
        "pgdir_walk 0x8000000000000000",
        "pgdir_walk 0x1000 make",
    ] {
        let out = run(&mut sh, &mut k, bad);
        assert_eq!(error_lines(&out.join("\r\n")), 1, "{bad}: {out:?}");
        assert_eq!(out.len(), 1, "{bad}: {out:?}");
    }

    // In an address space it makes the missing tables: an empty entry appears.
    let a = one(&mut sh, &mut k, "aspace new");
    let root = hex(field(&a, "root"));
    run(&mut sh, &mut k, "aspace use #1");
    let before = k.b.nr_free_pages();
    let c = one(&mut sh, &mut k, "pgdir_walk 0x400000 create");
    assert!(c.ends_with("= 0x0000000000000000 (not present)"), "{c}");
    assert_eq!(before - k.b.nr_free_pages(), 3, "PDPT, PD and PT made");
    let again = one(&mut sh, &mut k, "pgdir_walk 0x400000");
    assert_eq!(again, c, "the same entry, now found without create");

    // A page inserted there shows in the entry; `unmap` in an address space is
    // DragonOS's mm_unmap_proc_table.
    let p = one(&mut sh, &mut k, "pages 1");
    assert!(p.starts_with("#2 pages"), "{p}");
    let ins = run(&mut sh, &mut k, "insert #2 0x400000 ro");
    assert!(ins[0].starts_with("#3 insert"), "{ins:?}");
    let e = one(&mut sh, &mut k, "pgdir_walk 0x400000");
    // Present, read-only, no-execute, and bit 9: the mapping holds a reference.
    assert!(
        e.ends_with(&format!(
            "= {:#018x} r",
            0x8000_0000_0000_0201u64 | pfn_phys(&p)
        )),
        "{e}"
    );
    let out = run(&mut sh, &mut k, "unmap 0x400000 4096");
    assert!(!out[0].starts_with("error"), "{out:?}");
    assert!(
        k.calls
            .iter()
            .any(|c| c.starts_with("mm_unmap(0x400000, 0x1000) in aspace@")),
        "{:?} (root {root:#x})",
        k.calls
    );

    run(&mut sh, &mut k, "aspace use kernel");
    run(&mut sh, &mut k, "free all");
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
}

/// A page's reference held by an `insert` mapping stays the mapping's: dropping
/// the block handle's own reference retires the handle (the page lives on while
/// mapped), and a put that would take the mapping's reference is refused. Found
/// by `fuzz_lines`: `put_page` on the handle, then `free all` freed the page
/// through the mapping and again through the handle.
#[test]
fn put_page_never_takes_a_mappings_reference() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");
    one(&mut sh, &mut k, "pages 1");
    let ins = run(&mut sh, &mut k, "insert #1 0x400000");
    assert!(ins[0].starts_with("#2 insert"), "{ins:?}");
    let out = run(&mut sh, &mut k, "put_page #1");
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out[0].ends_with("refcount=1"), "{out:?}");
    assert_eq!(out[1], "the remaining references belong to insert mappings");
    assert!(out[2].starts_with("retired #1 pages"), "{out:?}");
    assert!(one(&mut sh, &mut k, "check").starts_with("check: ok"));
    // The page is still mapped and allocated; removing the mapping frees it.
    let l = run(&mut sh, &mut k, "lookup 0x400000");
    assert!(
        l[0].contains("-> pfn") && l[1].ends_with("refcount=1"),
        "{l:?}"
    );
    run(&mut sh, &mut k, "free all");
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);

    // A mapping unmapped behind its handle's back still counts (conservative):
    // the put is refused with one error line and nothing changes.
    one(&mut sh, &mut k, "pages 1");
    run(&mut sh, &mut k, "insert #3 0x400000");
    run(&mut sh, &mut k, "unmap 0x400000 4096");
    let out = run(&mut sh, &mut k, "put_page #3");
    assert_eq!(error_lines(&out.join("\r\n")), 1, "{out:?}");
    assert!(out[0].contains("held by 1 insert mapping"), "{out:?}");
    run(&mut sh, &mut k, "free all");
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
}

/// The raw frees follow the same rule as `put_page` (found by `fuzz_lines`:
/// `__free_pages` on the block, then `free all` freed the page twice).
#[test]
fn raw_frees_never_take_a_mappings_reference() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");
    let p = one(&mut sh, &mut k, "pages 1");
    let pfn = field(&p, "pfn").to_string();
    run(&mut sh, &mut k, "insert #1 0x400000");
    let out = run(&mut sh, &mut k, &format!("__free_pages {pfn} 0"));
    assert_eq!(
        out[0],
        format!("__free_pages: pfn={pfn} reference dropped; the rest belong to insert mappings")
    );
    assert!(out[1].starts_with("retired #1 pages"), "{out:?}");
    assert!(one(&mut sh, &mut k, "check").starts_with("check: ok"));
    // Only the mapping's reference is left: a raw free may not take it.
    let out = run(&mut sh, &mut k, &format!("free_pages {pfn} 1"));
    assert_eq!(error_lines(&out.join("\r\n")), 1, "{out:?}");
    run(&mut sh, &mut k, "free all");
    assert!(one(&mut sh, &mut k, "check").starts_with("check: ok"));
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
}
