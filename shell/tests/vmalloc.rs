//! The vmalloc and ioremap commands (`vmalloc`, `vzalloc`, `vfree`,
//! `vmalloc_to_page`, `ioremap`, `iounmap`, `vmallocinfo`, the areas in `map`)
//! on the simulated machine, whose kernel tables are real `mm::paging` tables
//! (the areas are mapped there, through `mm::vmalloc::PagingBackend`) and whose
//! TLB caches translations until flushed: the memory is reached through the
//! mapping with `fill`/`peek`/`dump`/`bzero`/`bcopy`; every misuse is one
//! `error:` line that changes nothing; `free all` is back to the boot numbers.

mod common;

use common::{error_lines, field, hex, machine, mem_map, one, poison, run, Machine};
use mm::layout::{IOREMAP, VMALLOC};
use shell::Shell;

/// `line` fails with exactly one `error:` line containing `want`, and the
/// handles, the areas and the memory are unchanged.
fn refused(sh: &mut Shell, k: &mut Machine<'_>, line: &str, want: &str) {
    let before = (
        run(sh, k, "handles"),
        run(sh, k, "vmallocinfo"),
        k.b.nr_free_pages(),
    );
    let out = run(sh, k, line);
    assert_eq!(out.len(), 1, "{line}: {out:?}");
    assert!(
        out[0].starts_with("error: ") && out[0].contains(want),
        "{line}: {out:?} (want {want:?})"
    );
    assert_eq!(error_lines(&out.join("\r\n")), 1);
    let after = (
        run(sh, k, "handles"),
        run(sh, k, "vmallocinfo"),
        k.b.nr_free_pages(),
    );
    assert_eq!(after, before, "{line} changed something");
}

fn hex_bytes(line: &str) -> Vec<u8> {
    line.split("  ")
        .skip(1)
        .take(2)
        .flat_map(|g| {
            g.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap())
        })
        .collect()
}

#[test]
fn vmalloc_beyond_normal_uses_unmapped_frames_end_to_end() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");
    // NORMAL holds 16 MiB here; UNMAPPED 31.
    let out = run(&mut sh, &mut k, "vmalloc 20M");
    assert_eq!(
        out[0],
        format!(
            "#1 vmalloc size=20971520 virt={:#018x} pages=5120",
            VMALLOC.start
        )
    );
    assert_eq!(
        out[1],
        format!(
            "frames: UNMAPPED=5120 NORMAL=0 DMA=0; guard page at {:#018x}",
            VMALLOC.start + (20 << 20)
        )
    );
    assert_eq!(k.calls.last().unwrap(), "vmalloc(20971520)");
    let (first, last) = (VMALLOC.start, VMALLOC.start + (20 << 20) - 4096);
    for a in [first, last] {
        let p = one(&mut sh, &mut k, &format!("vmalloc_to_page {:#x}", a + 5));
        assert!(p.contains("zone=UNMAPPED"), "{p}");
        let phys = hex(field(&p, "phys"));
        assert_eq!(phys & 0xfff, 5);
        // Through the mapping: the simulated RAM behind it changes.
        one(&mut sh, &mut k, &format!("fill {a:#x} 4096 0x5a"));
        let d = run(&mut sh, &mut k, &format!("peek {:#x} 16", a + 4080));
        assert_eq!(hex_bytes(&d[1]), vec![0x5a; 16], "{d:?}");
        let mut b = [0u8; 1];
        mm::PhysMem::read(&k.mem, phys, &mut b);
        assert_eq!(b[0], 0x5a);
    }
    // Page by page: a range across two scattered frames.
    one(
        &mut sh,
        &mut k,
        &format!("fill {:#x} 32 0x11", first + 4080),
    );
    let d = run(&mut sh, &mut k, &format!("peek {:#x} 32", first + 4080));
    assert_eq!(d.len(), 3, "{d:?}");
    // The guard page faults; the message says where the walk stops (20 MiB
    // end on a 2 MiB boundary: the guard page is in the next page table,
    // which does not exist).
    let guard = last + 4096;
    let e = run(&mut sh, &mut k, &format!("peek {guard:#x} 8"));
    assert_eq!(
        e,
        vec![format!(
            "error: page fault at {guard:#018x}: page not present, read, kernel mode; \
             walk: PD entry not present"
        )]
    );
    let e = run(&mut sh, &mut k, &format!("fill {:#x} 8 0 force", guard - 4));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].contains(&format!("at {guard:#018x}")) && e[0].contains("write"),
        "{e:?}"
    );
    // vzalloc: zeroed; dump/bzero/bcopy on the handles.
    let z = one_handle(&mut sh, &mut k, "vzalloc 8K");
    assert!(z.starts_with("#2 vmalloc size=8192 "), "{z}");
    let d = run(&mut sh, &mut k, "dump #2 4096 16");
    assert_eq!(hex_bytes(&d[1]), vec![0; 16], "{d:?}");
    one(&mut sh, &mut k, "bcopy #1 #2 8192");
    let d = run(&mut sh, &mut k, "dump #2 4080 32");
    assert_eq!(hex_bytes(&d[1]), vec![0x11; 16], "{d:?}");
    assert_eq!(hex_bytes(&d[2]), vec![0x11; 16], "{d:?}");
    one(&mut sh, &mut k, "bzero #2");
    let d = run(&mut sh, &mut k, "dump #2 4090 16");
    assert_eq!(hex_bytes(&d[1]), vec![0; 16], "{d:?}");
    // Listings.
    let info = run(&mut sh, &mut k, "vmallocinfo");
    assert_eq!(
        info[0],
        format!(
            "{:#018x}-{:#018x}   20975616 shell pages=5120 vmalloc #1",
            VMALLOC.start,
            VMALLOC.start + (20 << 20) + 4096
        )
    );
    assert!(info[1].ends_with("shell pages=2 vmalloc #2"), "{info:?}");
    assert!(
        info[2].starts_with("VmallocTotal: 34359738368 kB  VmallocUsed: 20488 kB"),
        "{info:?}"
    );
    let m = run(&mut sh, &mut k, "map").join("\n");
    assert!(
        m.contains(&format!(
            "  area {:#018x}-{:#018x}    20M vmalloc shell pages=5120 #1",
            VMALLOC.start,
            VMALLOC.start + (20 << 20)
        )),
        "{m}"
    );
    // free: the area, its frames and its page tables go back.
    let f = run(&mut sh, &mut k, "free #1");
    assert!(f[0].starts_with("freed #1 vmalloc"), "{f:?}");
    assert_eq!(
        k.calls.last().unwrap(),
        &format!("vfree({:#x})", VMALLOC.start)
    );
    let e = run(&mut sh, &mut k, &format!("peek {first:#x} 4"));
    assert!(
        e[0].starts_with("error: page fault"),
        "stale TLB entry? {e:?}"
    );
    run(&mut sh, &mut k, "free all");
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
    assert_eq!(run(&mut sh, &mut k, "vmallocinfo").len(), 1);
}

#[test]
fn vfree_and_vmalloc_misuse_is_one_error_and_changes_nothing() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");
    let a = hex(field(&one_handle(&mut sh, &mut k, "vmalloc 3K"), "virt"));
    let io = hex(field(
        &one(&mut sh, &mut k, "ioremap 0xfee00000 64"),
        "virt",
    ));
    refused(
        &mut sh,
        &mut k,
        &format!("vfree {:#x}", a + 8),
        "inside the area",
    );
    refused(
        &mut sh,
        &mut k,
        &format!("vfree {:#x}", a + 4096),
        "guard page",
    );
    refused(
        &mut sh,
        &mut k,
        &format!("vfree {:#x}", a + 0x10000),
        "not a live vmalloc area",
    );
    refused(&mut sh, &mut k, "vfree 0x1000", "not in the vmalloc range");
    refused(
        &mut sh,
        &mut k,
        &format!("vfree {io:#x}"),
        "free it with iounmap",
    );
    refused(
        &mut sh,
        &mut k,
        "vfree #2",
        "#2 (ioremap) is not a vmalloc area",
    );
    refused(
        &mut sh,
        &mut k,
        &format!("iounmap {a:#x}"),
        "free it with vfree",
    );
    refused(
        &mut sh,
        &mut k,
        "iounmap #1",
        "#1 (vmalloc) is not an ioremap area",
    );
    refused(&mut sh, &mut k, "vfree #9", "#9");
    refused(&mut sh, &mut k, "vfree", "ADDR|#N");
    refused(&mut sh, &mut k, "vfree #1 x", "");
    refused(&mut sh, &mut k, "vmalloc 0", "size 0 out of range");
    refused(&mut sh, &mut k, "vmalloc 0x400000000000", "out of range");
    refused(&mut sh, &mut k, "vmalloc 100M", "out of memory");
    refused(&mut sh, &mut k, "vzalloc 100M", "out of memory");
    refused(&mut sh, &mut k, "vmalloc lots", "bad number");
    refused(
        &mut sh,
        &mut k,
        &format!("vmalloc_to_page {:#x}", a + 4096),
        "guard page",
    );
    refused(
        &mut sh,
        &mut k,
        &format!("vmalloc_to_page {io:#x}"),
        "ioremap area",
    );
    refused(
        &mut sh,
        &mut k,
        "vmalloc_to_page 0x1000",
        "not in the vmalloc range",
    );
    // vfree by address retires the handle; a second vfree is an error.
    let out = run(&mut sh, &mut k, &format!("vfree {a:#x}"));
    assert_eq!(
        out,
        vec![
            format!("vfree {a:#018x}: unmapped, frames freed"),
            "retired #1".into()
        ]
    );
    refused(
        &mut sh,
        &mut k,
        &format!("vfree {a:#x}"),
        "never allocated or freed already",
    );
    refused(&mut sh, &mut k, "free #1", "#1");
    run(&mut sh, &mut k, "free all");
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
}

/// The handle line of a command that prints one and a `frames:` line.
fn one_handle(sh: &mut Shell, k: &mut Machine<'_>, line: &str) -> String {
    let out = run(sh, k, line);
    assert_eq!(out.len(), 2, "{line}: {out:?}");
    out[0].clone()
}

#[test]
fn ioremap_maps_device_memory_uncached_or_wc() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");
    let h = one(&mut sh, &mut k, "ioremap 0xfee00000 4096");
    assert_eq!(
        h,
        format!(
            "#1 ioremap size=4096 phys=0x00000000fee00000 virt={:#018x} cache=UC",
            IOREMAP.start
        )
    );
    assert_eq!(k.calls.last().unwrap(), "ioremap(0xfee00000, 4096)");
    let v = IOREMAP.start;
    // readl of the "version register": the device memory behind it.
    let r = one(&mut sh, &mut k, &format!("readl {:#x}", v + 0x30));
    let want = u32::from_le_bytes([0x30, 0x31, 0x32, 0x33].map(|o| poison(0xfee0_0000 + o)));
    assert_eq!(r, format!("readl({:#018x}) = {want:#010x}", v + 0x30));
    one(
        &mut sh,
        &mut k,
        &format!("writel {:#x} 0x12345678", v + 0x80),
    );
    assert_eq!(
        one(&mut sh, &mut k, &format!("readl {:#x}", v + 0x80)),
        format!("readl({:#018x}) = 0x12345678", v + 0x80)
    );
    let w = run(&mut sh, &mut k, &format!("walk {v:#x}")).join("\n");
    assert!(
        w.contains("PRESENT|WRITABLE|WRITE_THROUGH|NO_CACHE|GLOBAL|NO_EXECUTE"),
        "{w}"
    );
    // Write-combining, unaligned: the returned address keeps the offset.
    let h = one(&mut sh, &mut k, "ioremap 0xfd000010 0x2000 wc");
    let wv = hex(field(&h, "virt"));
    assert_eq!(wv & 0xfff, 0x10, "{h}");
    assert!(h.ends_with("cache=WC"), "{h}");
    let w = run(&mut sh, &mut k, &format!("walk {:#x}", wv + 0x1000)).join("\n");
    assert!(
        w.contains("PRESENT|WRITABLE|WRITE_THROUGH|GLOBAL|NO_EXECUTE"),
        "{w}"
    );
    let info = run(&mut sh, &mut k, "vmallocinfo");
    assert!(
        info[0].ends_with("phys=0x00000000fee00000 ioremap #1"),
        "{info:?}"
    );
    assert!(
        info[1].ends_with("phys=0x00000000fd000000 ioremap_wc #2"),
        "{info:?}"
    );
    let m = run(&mut sh, &mut k, "map").join("\n");
    assert!(
        m.contains("ioremap shell phys=0x00000000fd000010 WC #2"),
        "{m}"
    );
    // Refusals.
    refused(&mut sh, &mut k, "ioremap 0x100000 4096", "is RAM");
    refused(&mut sh, &mut k, "ioremap 0xff000 0x2000", "0x100000 is RAM");
    refused(&mut sh, &mut k, "ioremap 0xfee00000 0", "size 0");
    refused(
        &mut sh,
        &mut k,
        "ioremap 0xffffffffffffff00 0x1000",
        "beyond the 52-bit",
    );
    refused(
        &mut sh,
        &mut k,
        "ioremap 0xfee00000 16 wb",
        "expected wc or uc",
    );
    refused(
        &mut sh,
        &mut k,
        &format!("iounmap {:#x}", wv - 0x10),
        "not the start",
    );
    refused(
        &mut sh,
        &mut k,
        &format!("iounmap {:#x}", wv - 0x10 + 0x3000),
        "guard page",
    );
    let out = run(&mut sh, &mut k, "iounmap #2");
    assert_eq!(out[1], "retired #2");
    let e = run(&mut sh, &mut k, &format!("peek {wv:#x} 4"));
    assert_eq!(e.len(), 1);
    assert!(e[0].ends_with("walk: PT entry not present"), "{e:?}");
    run(&mut sh, &mut k, "free all");
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
}

/// One memory type per physical page: a second ioremap of pages mapped already
/// takes their type (the handle and vmallocinfo say which), and a range over
/// pages of two types is refused with one error line, nothing mapped.
#[test]
fn ioremap_of_mapped_pages_takes_their_memory_type() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");
    let wc = one(&mut sh, &mut k, "ioremap 0xfd000000 0x2000 wc");
    assert!(wc.ends_with("cache=WC"), "{wc}");
    let uc = one(&mut sh, &mut k, "ioremap 0xfd001000 16");
    assert!(uc.ends_with("cache=WC"), "asked UC, pages are WC: {uc}");
    let w = run(
        &mut sh,
        &mut k,
        &format!("walk {:#x}", hex(field(&uc, "virt"))),
    )
    .join("\n");
    assert!(
        w.contains("PRESENT|WRITABLE|WRITE_THROUGH|GLOBAL|NO_EXECUTE"),
        "{w}"
    );
    let regs = one(&mut sh, &mut k, "ioremap 0xfd002000 16");
    assert!(regs.ends_with("cache=UC"), "{regs}");
    let areas = run(&mut sh, &mut k, "vmallocinfo").len();
    refused(
        &mut sh,
        &mut k,
        "ioremap 0xfd001000 0x2000",
        "0xfd001000 is mapped WC by shell: a UC mapping of it would alias it with another memory type",
    );
    assert_eq!(run(&mut sh, &mut k, "vmallocinfo").len(), areas);
    run(&mut sh, &mut k, "free all");
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
    // With the pages unmapped, any type again.
    let again = one(&mut sh, &mut k, "ioremap 0xfd001000 16");
    assert!(again.ends_with("cache=UC"), "{again}");
}

#[test]
fn dump_of_an_unmapped_mapping_names_the_walk_stop() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let v = 0xffff_e200_0000_0000u64;
    run(&mut sh, &mut k, "pages 1");
    run(&mut sh, &mut k, &format!("map {v:#x} #1 4096"));
    run(&mut sh, &mut k, &format!("unmap {v:#x} 4096"));
    let e = run(&mut sh, &mut k, "dump #2");
    assert_eq!(
        e,
        vec![format!(
            "error: page fault at {v:#018x}: page not present, read, kernel mode; \
             walk: PDPT entry not present"
        )]
    );
    let e = run(&mut sh, &mut k, "bzero #2 0 8");
    assert!(
        e[0].contains("write, kernel mode; walk: PDPT entry not present"),
        "{e:?}"
    );
    run(&mut sh, &mut k, "free all");
}
