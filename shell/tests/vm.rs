//! The page-table commands (`map`, `unmap`, `walk`, `aspace`, `insert`,
//! `lookup`, `remove`, `wx`, `bench map`) on the simulated machine, whose kernel
//! tables are built by `mm::paging` as the real kernel's are and whose TLB
//! (`SimTlb`) caches translations until flushed: every command, every misuse
//! (one `error:` line, nothing changed), reference counts, and `free all`
//! back to the boot numbers.

mod common;

use common::{dumped, error_lines, field, hex, machine, mem_map, one, run, Machine, KERNEL};
use mm::layout::{DIRECT_MAP_BASE, IOREMAP, KERNEL_BASE, TEMP_WINDOW, VMALLOC};
use shell::Shell;

/// Unused kernel space (after the ioremap range) where the tests map.
const V: u64 = 0xffff_e200_0000_0000;

fn memstat(sh: &mut Shell, k: &mut Machine<'_>) -> Vec<String> {
    run(sh, k, "memstat")
}

/// `line` fails with exactly one `error:` line containing `want`, and the
/// handles and memory are unchanged.
fn refused(sh: &mut Shell, k: &mut Machine<'_>, line: &str, want: &str) {
    let before = (run(sh, k, "handles"), k.b.nr_free_pages());
    let out = run(sh, k, line);
    assert_eq!(out.len(), 1, "{line}: {out:?}");
    assert!(
        out[0].starts_with("error: ") && out[0].contains(want),
        "{line}: {out:?} (want {want:?})"
    );
    assert_eq!(error_lines(&out.join("\r\n")), 1);
    assert_eq!(
        (run(sh, k, "handles"), k.b.nr_free_pages()),
        before,
        "{line} changed something"
    );
}

#[test]
fn map_reads_and_writes_through_the_second_address_and_remaps_at_once() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = memstat(&mut sh, &mut k);
    let p1 = one(&mut sh, &mut k, "pages 1");
    let p2 = one(&mut sh, &mut k, "pages 1");
    let (a, b) = (hex(field(&p1, "phys")), hex(field(&p2, "phys")));
    let out = run(&mut sh, &mut k, &format!("map {V:#x} #1 4096"));
    assert!(
        out[0].starts_with(&format!(
            "#3 mapping virt={V:#018x} phys={a:#018x} len=0x1000 flags=rw pages=4k space=kernel"
        )),
        "{out:?}"
    );
    assert_eq!(out[1], "mapped 1 4 KiB and 0 2 MiB pages");
    // Reading through the mapping reads the frame (the unwritten pattern).
    let direct = dumped(&mut sh, &mut k, "dump #1 0 32");
    assert_eq!(dumped(&mut sh, &mut k, "dump #3 0 32"), direct);
    // Writing through the mapping shows in the direct map.
    run(&mut sh, &mut k, "bzero #3 0 16");
    assert_eq!(dumped(&mut sh, &mut k, "dump #1 0 16"), vec![0; 16]);
    // Remap the address to the other frame: its bytes, at once (a missing
    // flush would leave SimTlb's cached translation of frame 1).
    run(&mut sh, &mut k, "free #3");
    let out = run(&mut sh, &mut k, &format!("map {V:#x} {b:#x} 4096"));
    assert!(out[0].starts_with("#4 mapping"), "{out:?}");
    assert_eq!(
        dumped(&mut sh, &mut k, "dump #4 0 32"),
        dumped(&mut sh, &mut k, "dump #2 0 32")
    );
    assert_ne!(dumped(&mut sh, &mut k, "dump #4 0 16"), vec![0; 16]);
    assert!(k.tlb.borrow().invlpgs >= 1);
    run(&mut sh, &mut k, "free all");
    assert_eq!(memstat(&mut sh, &mut k), boot);
    assert!(k.b.check().is_ok());
}

#[test]
fn unmap_part_of_a_mapping_then_reading_there_is_one_error() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = memstat(&mut sh, &mut k);
    run(&mut sh, &mut k, "pages 2");
    run(&mut sh, &mut k, &format!("map {V:#x} #1 8192"));
    let out = run(&mut sh, &mut k, &format!("unmap {:#x} 4096", V + 4096));
    assert_eq!(
        out,
        ["unmapped 1 4 KiB and 0 2 MiB pages in kernel (0 page references dropped)"]
    );
    let out = run(&mut sh, &mut k, "dump #2 4096 16");
    assert_eq!(out.len(), 1);
    assert!(out[0].starts_with("error: "), "{out:?}");
    dumped(&mut sh, &mut k, "dump #2 0 16");
    // `free` unmaps what is left; a second unmap finds nothing.
    run(&mut sh, &mut k, "free #2");
    refused(
        &mut sh,
        &mut k,
        &format!("unmap {V:#x} 8192"),
        "is not mapped",
    );
    run(&mut sh, &mut k, "free all");
    assert_eq!(memstat(&mut sh, &mut k), boot);
}

#[test]
fn two_megabyte_pages_where_aligned() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = memstat(&mut sh, &mut k);
    // 0x1000000 (16 MiB) is device-free RAM of NORMAL; read-only needs no handle.
    let out = run(
        &mut sh,
        &mut k,
        &format!("map {:#x} 0x1000000 0x401000 ro 2m", V),
    );
    assert_eq!(out[1], "mapped 1 4 KiB and 2 2 MiB pages", "{out:?}");
    let w = run(&mut sh, &mut k, &format!("walk {:#x}", V + 0x20_0123));
    assert_eq!(w[0], format!("walk {:#018x} in kernel:", V + 0x20_0123));
    assert_eq!(w.len(), 5, "PML4, PDPT, PD then the answer: {w:?}");
    assert!(
        w[4].ends_with("2 MiB page, physical 0x0000000001200123"),
        "{w:?}"
    );
    run(&mut sh, &mut k, "free all");
    assert_eq!(memstat(&mut sh, &mut k), boot);
}

#[test]
fn walk_shows_the_four_levels_or_where_it_stops() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let w = run(
        &mut sh,
        &mut k,
        &format!("walk {:#x}", DIRECT_MAP_BASE + 0x20_0040),
    );
    assert!(w[1].starts_with("PML4[256] @0x"), "{w:?}");
    assert!(
        w[3].starts_with("PD  [  1]") && w[3].contains("HUGE_PAGE") && w[3].contains("NO_EXECUTE"),
        "{w:?}"
    );
    assert!(
        w[4].ends_with("2 MiB page, physical 0x0000000000200040"),
        "{w:?}"
    );
    let text = KERNEL_BASE + (u64::from(KERNEL.0) << 12);
    let w = run(&mut sh, &mut k, &format!("walk {text:#x}"));
    assert_eq!(w.len(), 6, "{w:?}");
    assert!(
        w[4].starts_with("PT  [")
            && w[4].contains("GLOBAL")
            && !w[4].contains("WRITABLE")
            && !w[4].contains("NO_EXECUTE"),
        "{w:?}"
    );
    assert!(w[5].contains("4 KiB page"), "{w:?}");
    let w = run(&mut sh, &mut k, "walk 0x1000");
    assert_eq!(w.len(), 3);
    assert!(w[2].ends_with("not present at PML4"), "{w:?}");
    let w = run(&mut sh, &mut k, &format!("walk {TEMP_WINDOW:#x}"));
    assert!(w.last().unwrap().ends_with("not present at PT"), "{w:?}");
    refused(
        &mut sh,
        &mut k,
        "walk 0x0000800000000000",
        "not a canonical",
    );
}

#[test]
fn wx_finds_nothing_on_the_kernel_and_reports_a_forced_rwx_mapping() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let out = run(&mut sh, &mut k, "wx");
    assert_eq!(out.len(), 1);
    assert!(
        out[0].starts_with("wx: checked ")
            && out[0].ends_with("no W+X pages, no user pages in the kernel half"),
        "{out:?}"
    );
    run(&mut sh, &mut k, "pages 1");
    refused(
        &mut sh,
        &mut k,
        &format!("map {V:#x} #1 4096 rwx"),
        "writable and executable",
    );
    run(&mut sh, &mut k, &format!("map {V:#x} #1 4096 rwx force"));
    run(
        &mut sh,
        &mut k,
        &format!("map {:#x} #1 4096 ro user", V + 0x10000),
    );
    let out = run(&mut sh, &mut k, "wx");
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out[0].ends_with("rwx: writable and executable"), "{out:?}");
    assert!(
        out[1].ends_with("r,user: user-accessible in the kernel half"),
        "{out:?}"
    );
    assert_eq!(
        out[2],
        "error: wx: 1 writable+executable pages, 1 user pages in the kernel half"
    );
}

#[test]
fn every_misuse_is_one_error_and_changes_nothing() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    run(&mut sh, &mut k, "pages 1");
    run(&mut sh, &mut k, &format!("map {V:#x} #1 4096"));
    let kernel_text = KERNEL_BASE + (u64::from(KERNEL.0) << 12);
    let kphys = u64::from(KERNEL.0) << 12;
    for (line, want) in [
        (
            format!("map {:#x} #1 4096", DIRECT_MAP_BASE + 0x100_0000),
            "is in the direct map, which the kernel owns",
        ),
        (format!("map {kernel_text:#x} #1 4096"), "kernel image"),
        (
            format!("map {:#x} #1 4096", VMALLOC.start),
            "(release it with vfree)",
        ),
        (
            format!("map {:#x} #1 4096", IOREMAP.start + 0x1000),
            "(release it with iounmap)",
        ),
        (format!("map {TEMP_WINDOW:#x} #1 4096"), "temporary window"),
        (
            format!("map {:#x} #1 8192", V - 4096),
            "overlaps the mapping of #2",
        ),
        (format!("map {:#x} #1 4096", V + 0x1234), "not aligned"),
        (format!("map {:#x} 0x1234 4096", V + 0x10000), "not aligned"),
        (
            "map 0x0000800000000000 #1 4096".to_string(),
            "not a canonical",
        ),
        (format!("map {:#x} #1 0", V + 0x10000), "LEN"),
        (format!("map {:#x} #1 0x40001000", V + 0x10000), "LEN"),
        (
            format!("map {:#x} #1 4096 sideways", V + 0x10000),
            "unknown option 'sideways'",
        ),
        (
            format!("map {:#x} {kphys:#x} 4096", V + 0x10000),
            "is reserved by the kernel, not one of the shell's pages",
        ),
        (
            format!("map {:#x} 0x1800000 4096", V + 0x10000),
            "is free, not one of the shell's pages",
        ),
        (
            format!("map {:#x} #1 4096 rwx", V + 0x10000),
            "writable and executable",
        ),
        (format!("unmap {:#x} 4096", DIRECT_MAP_BASE), "direct map"),
        (format!("unmap {kernel_text:#x} 4096"), "kernel image"),
        (format!("unmap {:#x} 4096", V + 0x10000), "is not mapped"),
        (format!("unmap {:#x} 4096", V + 1), "not aligned"),
        (
            "insert 0x1800 0x400000".to_string(),
            "is free, not one of the shell's pages",
        ),
        (
            "insert 0x1800 0x400000 ro".to_string(),
            "cannot reference the page",
        ),
        (
            "insert 0xffffff 0x400000".to_string(),
            "beyond the last frame",
        ),
        (format!("insert #1 {V:#x}"), "overlaps the mapping of #2"),
        (format!("insert #1 {:#x}", DIRECT_MAP_BASE), "direct map"),
        ("remove 0x400000".to_string(), "is not mapped"),
        ("aspace use #1".to_string(), "not an aspace"),
        ("aspace use #99".to_string(), "#99"),
        (
            "aspace frob".to_string(),
            "unknown aspace subcommand 'frob'",
        ),
    ] {
        refused(&mut sh, &mut k, &line, want);
    }
    // A live page-table frame may be mapped read-only, never writable.
    let w = run(&mut sh, &mut k, &format!("walk {V:#x}"));
    let pt = hex(w[4].split(" @").nth(1).unwrap().split(' ').next().unwrap()) & !0xfff;
    refused(
        &mut sh,
        &mut k,
        &format!("map {:#x} {pt:#x} 4096 force", V + 0x10000),
        "live page-table frame",
    );
    let out = run(
        &mut sh,
        &mut k,
        &format!("map {:#x} {pt:#x} 4096 ro", V + 0x10000),
    );
    assert!(out[0].starts_with("#3 mapping"), "{out:?}");
    // Kernel frames read-only, or writable with force.
    let out = run(
        &mut sh,
        &mut k,
        &format!("map {:#x} {kphys:#x} 4096 force", V + 0x20000),
    );
    assert!(out[0].starts_with("#4 mapping"), "{out:?}");
}

#[test]
fn aspace_insert_lookup_remove_with_reference_counts() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = (memstat(&mut sh, &mut k), k.b.nr_free_pages());
    let p = one(&mut sh, &mut k, "page_alloc");
    let pfn = field(&p, "pfn").to_string();
    let a = one(&mut sh, &mut k, "aspace new");
    assert!(a.starts_with("#2 aspace root=0x"), "{a}");
    assert_eq!(
        one(&mut sh, &mut k, "aspace use #2"),
        format!("commands aim at: aspace@{:#x}", hex(field(&a, "root")))
    );
    let out = run(&mut sh, &mut k, "insert #1 0x400000");
    assert!(
        out[0].starts_with("#3 insert virt=0x0000000000400000 pfn="),
        "{out:?}"
    );
    assert_eq!(out[1], format!("pfn {pfn} refcount=2"));
    let l = run(&mut sh, &mut k, "lookup 0x400123");
    assert!(
        l[0].starts_with(&format!(
            "0x0000000000400123 -> pfn {pfn} (4 KiB page) pte @0x"
        )),
        "{l:?}"
    );
    assert!(l[0].ends_with(" rw"), "{l:?}");
    // Re-inserting the same page keeps the count right and replaces #3.
    let out = run(&mut sh, &mut k, "insert #1 0x400000 ro");
    assert_eq!(
        out,
        [
            "replaces #3".to_string(),
            format!(
                "#4 insert virt=0x0000000000400000 pfn={pfn} phys={} perm=r space=aspace@{:#x}",
                field(&out[1], "phys"),
                hex(field(&a, "root"))
            ),
            format!("pfn {pfn} refcount=2")
        ]
    );
    // The kernel's table does not see the user half of the address space.
    run(&mut sh, &mut k, "aspace use kernel");
    assert_eq!(
        run(&mut sh, &mut k, "lookup 0x400000"),
        ["0x0000000000400000 is not mapped in kernel"]
    );
    // The map dump of the address space labels the insert.
    run(&mut sh, &mut k, "aspace use #2");
    let d = run(&mut sh, &mut k, "map");
    assert!(
        d.iter()
            .any(|l| l.starts_with("0x0000000000400000-0x0000000000401000") && l.ends_with("#4")),
        "{d:?}"
    );
    let out = run(&mut sh, &mut k, "remove 0x400000");
    assert_eq!(
        out,
        [
            format!(
                "removed 0x0000000000400000 from aspace@{:#x}",
                hex(field(&a, "root"))
            ),
            "retired #4".to_string(),
            format!("pfn {pfn} refcount=1")
        ]
    );
    // Insert again: the address space cannot go while the insert handle lives.
    run(&mut sh, &mut k, "insert #1 0x7f0000000000");
    refused(
        &mut sh,
        &mut k,
        "free #2",
        "#5 is mapped in this address space; free it first",
    );
    // Remove the mapping behind the handle's back (unmap drops the reference);
    // the handle then has nothing left to release.
    run(&mut sh, &mut k, "insert #1 0x7f0000001000");
    let out = run(&mut sh, &mut k, "unmap 0x7f0000000000 0x2000");
    assert!(out[0].contains("(2 page references dropped)"), "{out:?}");
    assert!(run(&mut sh, &mut k, &format!("page {pfn}"))[1].contains("refcount=1"));
    run(&mut sh, &mut k, "free #5");
    run(&mut sh, &mut k, "free #6");
    run(&mut sh, &mut k, "insert #1 0x7f0000000000");
    run(&mut sh, &mut k, "aspace use kernel");
    run(&mut sh, &mut k, "free #7");
    let out = run(&mut sh, &mut k, "free #2");
    assert!(out[0].starts_with("freed #2 aspace"), "{out:?}");
    assert_eq!(
        one(&mut sh, &mut k, "aspace").as_str(),
        "commands aim at: kernel"
    );
    assert!(run(&mut sh, &mut k, &format!("page {pfn}"))[1].contains("refcount=1"));
    run(&mut sh, &mut k, "free all");
    assert_eq!((memstat(&mut sh, &mut k), k.b.nr_free_pages()), boot);
}

#[test]
fn map_alone_prints_the_layout() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    run(&mut sh, &mut k, "pages 1");
    run(&mut sh, &mut k, &format!("map {V:#x} #1 4096"));
    let d = run(&mut sh, &mut k, "map");
    assert_eq!(d[0], "address space of kernel:");
    let has = |p: &str| d.iter().any(|l| l.contains(p));
    for h in [
        "---[ direct map 0xffff800000000000",
        "---[ vmalloc ",
        "---[ ioremap ",
        "---[ temporary window ",
        "---[ kernel image ",
        "(empty: mapped only while the kernel uses it)",
    ] {
        assert!(has(h), "{h}: {d:?}");
    }
    assert!(
        d.iter()
            .any(|l| l.starts_with("0xffff800000000000-0xffff800002000000")
                && l.contains("32M  2M rw,global")
                && l.ends_with("RAM")),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|l| l.ends_with("kernel text") && l.contains(" rx,global")),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|l| l.ends_with("kernel rodata") && l.contains(" r,global")),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|l| l.ends_with("kernel data+bss") && l.contains(" rw,global")),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|l| l.starts_with(&format!("{V:#018x}-")) && l.ends_with("#2")),
        "{d:?}"
    );
}

#[test]
fn bench_map_runs_and_leaves_nothing() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = memstat(&mut sh, &mut k);
    let out = run(&mut sh, &mut k, "bench map 100");
    assert!(
        out[0].starts_with("map+unmap 4 KiB (with invlpg): "),
        "{out:?}"
    );
    assert_eq!(out.len(), 8, "{out:?}");
    assert_eq!(memstat(&mut sh, &mut k), boot);
    let w = run(
        &mut sh,
        &mut k,
        &format!("walk {:#x}", shell::api::vm::BENCH_VIRT),
    );
    assert!(w.last().unwrap().contains("not present"), "{w:?}");
}
