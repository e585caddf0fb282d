//! The page-level commands against the real buddy allocator on a simulated
//! 64 MiB machine (see `common/machine.rs`): every command, every error, the
//! release function each handle calls, reference counts, memory contents, the
//! report formats, and that `free all` gives back exactly the boot numbers.

mod common;

use common::{
    error_lines, field, hex, last_call, machine, machine_with_lowmem, mem_map, one, poison, run,
    Machine, DIRECT_MAP, NPAGES,
};
use mm::{Gfp, PageProvider, Pfn, PhysMem};
use shell::{Object, PageSummary, Shell};

/// The PFN of a result line.
fn pfn(line: &str) -> u64 {
    hex(field(line, "pfn"))
}

/// The hex bytes of a `dump` body line (`OOOOOOOO  xx .. xx  |...|`).
fn dump_bytes(line: &str) -> Vec<u8> {
    line[10..58]
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// All bytes a `dump` printed.
fn dumped(sh: &mut Shell, k: &mut Machine<'_>, line: &str) -> Vec<u8> {
    let out = run(sh, k, line);
    assert!(!out[0].starts_with("error"), "{line}: {out:?}");
    out[1..].iter().flat_map(|l| dump_bytes(l)).collect()
}

fn poison_at(phys: u64, len: u64) -> Vec<u8> {
    (phys..phys + len).map(poison).collect()
}

#[test]
fn pages_takes_n_pages_from_the_zone_with_the_flags() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let l = one(&mut sh, &mut k, "pages 4 DMA KERNEL");
    assert!(l.starts_with("#1 pages n=4 zone=DMA pfn=0x"), "{l}");
    let p = pfn(&l);
    assert!(p < 0x1000 && p.is_multiple_of(4), "{l}");
    assert_eq!(field(&l, "phys"), format!("{:#018x}", p << 12));
    assert_eq!(
        field(&l, "virt"),
        format!("{:#018x}", DIRECT_MAP + (p << 12))
    );
    assert!(l.ends_with(" flags=KERNEL"), "{l}");

    let l = one(&mut sh, &mut k, "pages 3 PAGE_SHARED pgt_mapped");
    assert!(l.starts_with("#2 pages n=3 zone=NORMAL pfn=0x"), "{l}");
    assert!((0x1000..0x2000).contains(&pfn(&l)));
    assert_eq!(field(&l, "flags"), "PGT_MAPPED|SHARED");

    let l = one(&mut sh, &mut k, "pages 63 unmapped DEVICE KERNEL_INIT");
    assert!(l.starts_with("#3 pages n=63 zone=UNMAPPED pfn=0x"), "{l}");
    assert!(pfn(&l) >= 0x2000);
    assert_eq!(field(&l, "virt"), "none");
    assert_eq!(field(&l, "flags"), "KERNEL_INIT|DEVICE");
    let big = pfn(&l);

    let l = one(&mut sh, &mut k, "pages 1 ZONE_NORMAL");
    assert!(l.starts_with("#4 pages n=1 zone=NORMAL"), "{l}");
    assert_eq!(field(&l, "flags"), "-");

    assert_eq!(
        run(&mut sh, &mut k, "page #1")[1],
        "state=allocated order=2 n=4 refcount=1 flags=KERNEL ram=yes handle=#1"
    );
    assert_eq!(
        k.calls,
        [
            "alloc_pages(DMA, 4, KERNEL)",
            "alloc_pages(NORMAL, 3, PGT_MAPPED|SHARED)",
            "alloc_pages(UNMAPPED, 63, KERNEL_INIT|DEVICE)",
            "alloc_pages(NORMAL, 1, -)",
        ]
    );
    run(&mut sh, &mut k, "free #3");
    assert_eq!(last_call(&k), format!("free_pages({big:#x}, 63)"));
    assert_eq!(
        k.b.zone_stat(mm::Zone::Unmapped).free,
        k.b.zone_stat(mm::Zone::Unmapped).managed
    );
}

#[test]
fn every_error_is_one_line_and_changes_nothing() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");
    let buddy = run(&mut sh, &mut k, "buddyinfo");
    let flags = "(expected PGT_MAPPED, KERNEL_INIT, DEVICE, KERNEL or SHARED)";
    let gfps = "(expected GFP_KERNEL, GFP_ATOMIC, GFP_DMA, __GFP_HIGHMEM or __GFP_ZERO)";
    let cases: Vec<(&str, String)> = vec![
        (
            "pages",
            "missing N (usage: pages N [DMA|NORMAL|UNMAPPED] [FLAG...])".into(),
        ),
        ("pages 0", "N 0 out of range (expected 1..=63)".into()),
        ("pages 64", "N 64 out of range (expected 1..=63)".into()),
        (
            "pages 4 DMX",
            "unknown zone 'DMX' (expected DMA, NORMAL or UNMAPPED)".into(),
        ),
        (
            "pages 4 DMA BOGUS",
            format!("unknown page flag 'BOGUS' {flags}"),
        ),
        (
            "pages 4 KERNEL DMA",
            format!("unknown page flag 'DMA' {flags}"),
        ),
        (
            "pages x",
            "bad number 'x' (expected decimal, 0x hex, or a size like 4K, 2M, 1G)".into(),
        ),
        (
            "alloc_pages",
            "missing ORDER (usage: alloc_pages ORDER [GFP...])".into(),
        ),
        (
            "alloc_pages 11",
            "ORDER 11 out of range (expected 0..=10)".into(),
        ),
        (
            "alloc_pages 1 GFP_BOGUS",
            format!("unknown gfp flag 'GFP_BOGUS' {gfps}"),
        ),
        ("alloc_page 0", format!("unknown gfp flag '0' {gfps}")),
        (
            "get_free_pages 11 GFP_DMA",
            "ORDER 11 out of range (expected 0..=10)".into(),
        ),
        ("get_free_page x", format!("unknown gfp flag 'x' {gfps}")),
        (
            "get_zeroed_page NORMAL",
            format!("unknown gfp flag 'NORMAL' {gfps}"),
        ),
        (
            "page_alloc 1",
            "unexpected argument '1' (usage: page_alloc)".into(),
        ),
        (
            "page",
            "missing PFN|ADDR|#N (usage: page PFN|ADDR|#N)".into(),
        ),
        (
            "page zz",
            "bad PFN|ADDR|#N 'zz' (expected a PFN like 0x1e4c, an address like \
             0x0000000001e4c000, or #N)"
                .into(),
        ),
        (
            "page 0x4000",
            "pfn 0x4000 is beyond the last frame (max_pfn 0x4000); write an address as \
             0x + 16 hex digits or phys=ADDR"
                .into(),
        ),
        (
            "page 0x0000000004000000",
            "0x4000000 is not in managed RAM".into(),
        ),
        (
            "page virt=0xffff800003000000",
            "0xffff800003000000 is not in managed RAM".into(),
        ),
        ("page #1", "no handle #1 (see 'handles')".into()),
        (
            "page 1 2",
            "unexpected argument '2' (usage: page PFN|ADDR|#N)".into(),
        ),
        (
            "get_page 0x1000",
            "pfn 0x1000 is not the first page of a block the shell allocated (see 'handles')"
                .into(),
        ),
        (
            "put_page 0x0000000000300000",
            "pfn 0x300 is not the first page of a block the shell allocated (see 'handles')".into(),
        ),
        ("page_decref #1", "no handle #1 (see 'handles')".into()),
        (
            "get_page",
            "missing PFN|ADDR|#N (usage: get_page PFN|ADDR|#N)".into(),
        ),
        (
            "buddyinfo x",
            "unexpected argument 'x' (usage: buddyinfo)".into(),
        ),
        (
            "zoneinfo x",
            "unexpected argument 'x' (usage: zoneinfo)".into(),
        ),
        (
            "pagemap 5 5",
            "START_PFN 0x5 must be below END_PFN 0x5".into(),
        ),
        (
            "pagemap 0 0x4001",
            "END_PFN 0x4001 is beyond the last frame (max_pfn 0x4000)".into(),
        ),
        (
            "pagemap 1 2 3",
            "unexpected argument '3' (usage: pagemap [START_PFN [END_PFN]])".into(),
        ),
        ("dump", "missing #N (usage: dump #N [OFFSET [LEN]])".into()),
        (
            "dump 0x1000",
            "bad handle '0x1000' (expected #N with N from 1, like #1)".into(),
        ),
        ("bzero #1", "no handle #1 (see 'handles')".into()),
        (
            "bcopy #1",
            "missing #DST (usage: bcopy #SRC #DST [LEN])".into(),
        ),
    ];
    for (line, want) in &cases {
        let out = run(&mut sh, &mut k, line);
        assert_eq!(out, [format!("error: {want}")], "{line}");
    }
    assert!(k.calls.is_empty(), "no kernel call: {:?}", k.calls);
    assert!(sh.handles().is_empty());
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
    assert_eq!(run(&mut sh, &mut k, "buddyinfo"), buddy);
    k.b.check().unwrap();
}

#[test]
fn linux_struct_page_api_is_released_with_free_pages_order() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let a = one(&mut sh, &mut k, "alloc_pages 2");
    assert!(
        a.starts_with("#1 gfp_pages order=2 n=4 zone=NORMAL pfn=0x"),
        "{a}"
    );
    assert_eq!(pfn(&a) % 4, 0);
    assert_eq!(
        field(&a, "virt"),
        format!("{:#018x}", DIRECT_MAP + (pfn(&a) << 12))
    );
    let d = one(&mut sh, &mut k, "alloc_pages 0 GFP_DMA");
    assert!(
        d.starts_with("#2 gfp_pages order=0 n=1 zone=DMA pfn=0x"),
        "{d}"
    );
    let h = one(&mut sh, &mut k, "alloc_pages 1 __GFP_HIGHMEM");
    assert!(
        h.starts_with("#3 gfp_pages order=1 n=2 zone=UNMAPPED"),
        "{h}"
    );
    assert!(h.ends_with(" virt=none"), "{h}");
    let p = one(&mut sh, &mut k, "alloc_page");
    assert!(p.starts_with("#4 gfp_pages order=0 n=1 zone=NORMAL"), "{p}");
    let z = one(&mut sh, &mut k, "alloc_page GFP_ATOMIC __GFP_ZERO");
    assert!(z.starts_with("#5 gfp_pages order=0 n=1 zone=NORMAL"), "{z}");
    assert_eq!(dumped(&mut sh, &mut k, "dump #5 0 256"), [0u8; 256]);
    assert_eq!(
        &k.calls[..5],
        [
            "alloc_pages(0x0, 2)",
            "alloc_pages(0x2, 0)",
            "alloc_pages(0x4, 1)",
            "alloc_page(0x0)",
            "alloc_page(0x9)",
        ]
    );
    run(&mut sh, &mut k, "free #1");
    assert_eq!(last_call(&k), format!("__free_pages({:#x}, 2)", pfn(&a)));
    run(&mut sh, &mut k, "free #3");
    assert_eq!(last_call(&k), format!("__free_pages({:#x}, 1)", pfn(&h)));
    run(&mut sh, &mut k, &format!("free {}", field(&p, "phys")));
    assert_eq!(last_call(&k), format!("__free_pages({:#x}, 0)", pfn(&p)));
    run(&mut sh, &mut k, "free all");
    assert!(sh.handles().is_empty());
    k.b.check().unwrap();
}

#[test]
fn address_api_is_released_with_free_pages_and_free_page() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let a = one(&mut sh, &mut k, "get_free_pages 3");
    assert!(
        a.starts_with("#1 gfp_addr order=3 n=8 zone=NORMAL pfn=0x"),
        "{a}"
    );
    assert_eq!(hex(field(&a, "virt")), DIRECT_MAP + hex(field(&a, "phys")));
    let d = one(&mut sh, &mut k, "get_free_pages 0 GFP_DMA");
    assert!(d.starts_with("#2 gfp_addr order=0 n=1 zone=DMA"), "{d}");
    let h = one(&mut sh, &mut k, "get_free_pages 1 __GFP_HIGHMEM");
    assert!(
        h.starts_with("#3 gfp_addr order=1 n=2 zone=NORMAL"),
        "mapped memory only: {h}"
    );
    let p = one(&mut sh, &mut k, "get_free_page");
    assert!(p.starts_with("#4 gfp_addr order=0 n=1 zone=NORMAL"), "{p}");
    let z = one(&mut sh, &mut k, "get_zeroed_page GFP_DMA");
    assert!(z.starts_with("#5 gfp_addr order=0 n=1 zone=DMA"), "{z}");
    assert_eq!(
        &k.calls[..],
        [
            "__get_free_pages(0x0, 3)",
            "__get_free_pages(0x2, 0)",
            "__get_free_pages(0x4, 1)",
            "__get_free_page(0x0)",
            "get_zeroed_page(0x2)",
        ]
    );
    run(&mut sh, &mut k, "free #1");
    assert_eq!(
        last_call(&k),
        format!("free_pages({:#x}, 3)", hex(field(&a, "virt")))
    );
    run(&mut sh, &mut k, &format!("free {}", field(&p, "virt")));
    assert_eq!(
        last_call(&k),
        format!("free_page({:#x})", hex(field(&p, "virt")))
    );
    run(&mut sh, &mut k, "free #5");
    assert_eq!(
        last_call(&k),
        format!("free_page({:#x})", hex(field(&z, "virt")))
    );
    run(&mut sh, &mut k, "free #3");
    assert_eq!(
        last_call(&k),
        format!("free_pages({:#x}, 1)", hex(field(&h, "virt")))
    );

    // Mapped memory runs out: an error, nothing allocated.
    for i in 6..=8 {
        let l = one(&mut sh, &mut k, "get_free_pages 10 GFP_DMA");
        assert!(l.starts_with(&format!("#{i} gfp_addr order=10 n=1024 zone=DMA")));
    }
    let before = run(&mut sh, &mut k, "memstat");
    assert_eq!(
        run(&mut sh, &mut k, "get_free_pages 10 GFP_DMA"),
        ["error: out of memory"]
    );
    assert_eq!(run(&mut sh, &mut k, "memstat"), before);
    assert_eq!(sh.handles().len(), 4);
    run(&mut sh, &mut k, "free all");
    k.b.check().unwrap();
}

#[test]
fn free_by_address_after_free_by_handle_is_an_error() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let p = one(&mut sh, &mut k, "get_free_page");
    let virt = field(&p, "virt").to_string();
    assert!(one(&mut sh, &mut k, "free #1").starts_with("freed #1 gfp_addr order=0"));
    assert_eq!(
        run(&mut sh, &mut k, &format!("free {virt}")),
        [format!("error: no live handle at {virt} (see 'handles')")]
    );
    assert_eq!(
        run(&mut sh, &mut k, "free #1"),
        ["error: handle #1 was already freed"]
    );
    let q = one(&mut sh, &mut k, "pages 2 DMA");
    let phys = field(&q, "phys").to_string();
    assert!(one(&mut sh, &mut k, &format!("free {phys}")).starts_with("freed #2 pages n=2"));
    assert_eq!(
        run(&mut sh, &mut k, &format!("free {phys}")),
        [format!("error: no live handle at {phys} (see 'handles')")]
    );
    let frees = k.calls.iter().filter(|c| c.starts_with("free")).count();
    assert_eq!(frees, 2, "each block freed once: {:?}", k.calls);
    k.b.check().unwrap();
}

#[test]
fn zeroing_allocations_really_zero() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    // A page as it comes: whatever was in memory.
    let p = one(&mut sh, &mut k, "alloc_page");
    let phys = hex(field(&p, "phys"));
    assert_eq!(dumped(&mut sh, &mut k, "dump #1"), poison_at(phys, 64));
    run(&mut sh, &mut k, "free #1");
    // A page again (the same frame, from the LIFO order-0 cache), zeroed. Memory
    // nobody wrote is never 0, so every zero below was written.
    let z = one(&mut sh, &mut k, "get_zeroed_page");
    let phys = hex(field(&z, "phys"));
    let out = run(&mut sh, &mut k, "dump #2 0 256");
    assert_eq!(
        out[0],
        format!("#2 virt={} offset=0 len=256", field(&z, "virt"))
    );
    assert_eq!(out.len(), 17);
    for (i, line) in out[1..].iter().enumerate() {
        assert_eq!(
            *line,
            format!(
                "{:08x}  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|",
                16 * i
            )
        );
    }
    assert_eq!(dumped(&mut sh, &mut k, "dump #2 3840 256"), [0u8; 256]);
    let mut page = vec![0xffu8; 4096];
    k.mem.read(phys, &mut page);
    assert!(page.iter().all(|&b| b == 0), "the whole page");

    // Not zeroed: __get_free_page keeps the old contents.
    let f = one(&mut sh, &mut k, "get_free_page");
    let fphys = hex(field(&f, "phys"));
    assert_eq!(
        dumped(&mut sh, &mut k, "dump #3 64 32"),
        poison_at(fphys + 64, 32)
    );

    // MOS page_alloc and __GFP_ZERO zero too, all pages of the block.
    one(&mut sh, &mut k, "page_alloc");
    assert_eq!(dumped(&mut sh, &mut k, "dump #4 4032"), [0u8; 64]);
    one(&mut sh, &mut k, "alloc_pages 1 __GFP_ZERO");
    assert_eq!(dumped(&mut sh, &mut k, "dump #5 8000 192"), [0u8; 192]);
    one(&mut sh, &mut k, "get_free_pages 2 GFP_DMA __GFP_ZERO");
    assert_eq!(dumped(&mut sh, &mut k, "dump #6 16128 256"), [0u8; 256]);
}

#[test]
fn bzero_and_bcopy_change_exactly_their_range() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let a = one(&mut sh, &mut k, "get_free_page");
    let b = one(&mut sh, &mut k, "get_free_page");
    let (pa, pb) = (hex(field(&a, "phys")), hex(field(&b, "phys")));
    let (va, vb) = (field(&a, "virt"), field(&b, "virt"));
    assert_ne!(poison_at(pa, 64), poison_at(pb, 64));

    assert_eq!(
        run(&mut sh, &mut k, "bzero #1 16 32"),
        [format!(
            "zeroed 32 bytes of #1 at {:#018x} (offset 16)",
            hex(va) + 16
        )]
    );
    assert_eq!(last_call(&k), format!("bzero({:#x}, 32)", hex(va) + 16));
    let mut want = poison_at(pa, 64);
    want[16..48].fill(0);
    assert_eq!(dumped(&mut sh, &mut k, "dump #1"), want);

    assert_eq!(
        run(&mut sh, &mut k, "bcopy #2 #1"),
        [format!("copied 4096 bytes from #2 at {vb} to #1 at {va}")]
    );
    assert_eq!(
        last_call(&k),
        format!("bcopy({:#x}, {:#x}, 4096)", hex(vb), hex(va))
    );
    for off in [0, 1000, 4032] {
        assert_eq!(
            dumped(&mut sh, &mut k, &format!("dump #1 {off}")),
            poison_at(pb + off, 64)
        );
    }
    assert_eq!(dumped(&mut sh, &mut k, "dump #2"), poison_at(pb, 64));

    run(&mut sh, &mut k, "bzero #2 100");
    let mut want = poison_at(pb, 128);
    want[100..].fill(0);
    assert_eq!(dumped(&mut sh, &mut k, "dump #2 0 128"), want);
    assert_eq!(dumped(&mut sh, &mut k, "dump #2 4032"), [0u8; 64]);
    run(&mut sh, &mut k, "bcopy #2 #1 120");
    let mut want = poison_at(pb, 128);
    want[100..120].fill(0);
    want[120..].copy_from_slice(&poison_at(pb + 120, 8));
    assert_eq!(dumped(&mut sh, &mut k, "dump #1 0 128"), want);

    // A kmalloc-like handle and pages of several sizes.
    let big = one(&mut sh, &mut k, "pages 2 DMA");
    assert!(big.starts_with("#3 pages n=2"));
    one(&mut sh, &mut k, "pages 1 UNMAPPED");
    // A handle without memory of its own.
    assert!(one(&mut sh, &mut k, "cache create c5 64").starts_with("#5 cache"));

    let snapshot = |k: &Machine<'_>| {
        let mut buf = vec![0u8; 3 * 4096];
        k.mem.read(pa, &mut buf[..4096]);
        k.mem.read(pb, &mut buf[4096..8192]);
        buf
    };
    let before = snapshot(&k);
    let calls = k.calls.len();
    let errors = [
        (
            "bzero #1 4096",
            "OFFSET 4096 out of range (expected 0..=4095)",
        ),
        (
            "bzero #1 4000 200",
            "LEN 200 out of range (expected 1..=96)",
        ),
        ("bzero #1 0 0", "LEN 0 out of range (expected 1..=4096)"),
        (
            "bzero #1 0 4097",
            "LEN 4097 out of range (expected 1..=4096)",
        ),
        (
            "bzero #1 0 1 2",
            "unexpected argument '2' (usage: bzero #N [OFFSET [LEN]])",
        ),
        ("dump #1 0 300", "LEN 300 out of range (expected 1..=256)"),
        ("dump #1 4090 10", "LEN 10 out of range (expected 1..=6)"),
        (
            "bcopy #3 #1 8192",
            "LEN 8192 out of range (expected 1..=4096)",
        ),
        ("bcopy #1 #3 0", "LEN 0 out of range (expected 1..=4096)"),
        (
            "bzero #4",
            "#4 pages has no kernel virtual address (virt=none)",
        ),
        (
            "bcopy #1 #4",
            "#4 pages has no kernel virtual address (virt=none)",
        ),
        (
            "dump #4",
            "#4 pages has no kernel virtual address (virt=none)",
        ),
        (
            "bzero #5",
            "#5 cache has no memory of its own to read or write (expected kmalloc, cache_obj, \
             pool_obj, pages, gfp_pages, gfp_addr, mos_page, mapping, insert, vmalloc or ioremap)",
        ),
        ("bcopy #9 #1", "no handle #9 (see 'handles')"),
    ];
    for (line, want) in errors {
        assert_eq!(
            run(&mut sh, &mut k, line),
            [format!("error: {want}")],
            "{line}"
        );
    }
    assert_eq!(k.calls.len(), calls, "no kernel call");
    assert_eq!(snapshot(&k), before, "no byte changed");

    // Larger objects: the range is checked against all of their pages.
    run(&mut sh, &mut k, "bzero #3 8000 192");
    let phys3 = hex(field(&big, "phys"));
    let mut tail = vec![0xffu8; 192];
    k.mem.read(phys3 + 8000, &mut tail);
    assert_eq!(tail, [0u8; 192]);
    run(&mut sh, &mut k, "bcopy #3 #1");
    assert_eq!(
        last_call(&k),
        format!(
            "bcopy({:#x}, {:#x}, 4096)",
            hex(field(&big, "virt")),
            hex(va)
        )
    );

    // A freed handle's memory is out of bounds.
    run(&mut sh, &mut k, "free #2");
    assert_eq!(
        run(&mut sh, &mut k, "bzero #2"),
        ["error: handle #2 was already freed"]
    );
    run(&mut sh, &mut k, "free all");
    k.b.check().unwrap();
}

#[test]
fn reference_counts_keep_handles_and_pages_in_step() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");

    // Linux: get_page / put_page.
    let a = one(&mut sh, &mut k, "alloc_page");
    let (p, virt) = (pfn(&a), field(&a, "virt").to_string());
    let allocated = run(&mut sh, &mut k, "memstat");
    assert_eq!(
        run(&mut sh, &mut k, "get_page #1"),
        [format!("pfn={p:#x} refcount=2")]
    );
    assert_eq!(
        run(&mut sh, &mut k, &format!("get_page pfn={p:#x}")),
        [format!("pfn={p:#x} refcount=3")]
    );
    let calls = k.calls.len();
    assert_eq!(
        run(&mut sh, &mut k, "free #1"),
        ["error: cannot free #1 gfp_pages: page has 3 references; put_page first"]
    );
    assert_eq!(
        run(&mut sh, &mut k, "free all"),
        ["error: freed 0 of 1 handles; could not free #1 (page has 3 references; put_page first)"]
    );
    assert_eq!(k.calls.len(), calls, "no free function called");
    assert_eq!(sh.handles().len(), 1);
    let shared = run(&mut sh, &mut k, "memstat");
    assert_eq!(
        shared[3], "shared: 4096",
        "a page with 3 references is shared"
    );
    assert_eq!(
        run(&mut sh, &mut k, "put_page #1"),
        [format!("pfn={p:#x} refcount=2")]
    );
    assert_eq!(
        run(&mut sh, &mut k, &format!("put_page {p:#x}")),
        [format!("pfn={p:#x} refcount=1")]
    );
    assert_eq!(
        run(&mut sh, &mut k, "page #1")[1],
        "state=allocated order=0 n=1 refcount=1 flags=- ram=yes handle=#1"
    );
    assert_eq!(run(&mut sh, &mut k, "memstat"), allocated);
    assert_eq!(
        run(&mut sh, &mut k, &format!("put_page {virt}")),
        [
            format!("pfn={p:#x} refcount=0: pages freed by put_page"),
            format!("retired {a}"),
        ]
    );
    assert_eq!(run(&mut sh, &mut k, "handles"), ["no live handles"]);
    assert_eq!(
        run(&mut sh, &mut k, "free #1"),
        ["error: handle #1 was already freed"]
    );
    assert_eq!(
        run(&mut sh, &mut k, &format!("free {virt}")),
        [format!("error: no live handle at {virt} (see 'handles')")]
    );
    assert_eq!(
        run(&mut sh, &mut k, "put_page #1"),
        ["error: handle #1 was already freed"]
    );
    assert_eq!(
        run(&mut sh, &mut k, &format!("put_page {p:#x}")),
        [format!(
            "error: pfn {p:#x} is not the first page of a block the shell allocated (see \
             'handles')"
        )]
    );
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);

    // MOS: page_decref frees at 0 and retires the handle.
    let m = one(&mut sh, &mut k, "page_alloc");
    assert!(m.starts_with("#2 mos_page n=1 zone=NORMAL pfn=0x"), "{m}");
    let mp = pfn(&m);
    assert_eq!(
        run(&mut sh, &mut k, "get_page #2"),
        [format!("pfn={mp:#x} refcount=2")]
    );
    assert_eq!(
        run(&mut sh, &mut k, "page_decref #2"),
        [format!("pfn={mp:#x} refcount=1")]
    );
    assert_eq!(
        run(&mut sh, &mut k, "page_decref #2"),
        [
            format!("pfn={mp:#x} refcount=0: pages freed by page_decref"),
            format!("retired {m}"),
        ]
    );
    assert_eq!(
        run(&mut sh, &mut k, "free #2"),
        ["error: handle #2 was already freed"]
    );
    // free #N of a MOS page calls page_decref.
    one(&mut sh, &mut k, "page_alloc");
    run(&mut sh, &mut k, "free #3");
    assert!(last_call(&k).starts_with("page_decref(0x"), "{:?}", k.calls);

    // DragonOS blocks and misuses.
    let d = one(&mut sh, &mut k, "pages 3 DMA");
    let dp = pfn(&d);
    run(&mut sh, &mut k, "get_page #4");
    assert_eq!(
        run(&mut sh, &mut k, "free #4"),
        ["error: cannot free #4 pages: page has 2 references; put_page first"]
    );
    assert_eq!(
        run(&mut sh, &mut k, &format!("get_page {:#x}", dp + 2)),
        [format!(
            "error: pfn {:#x} is inside the block of #4; its first page is pfn {dp:#x}",
            dp + 2
        )]
    );
    assert_eq!(
        run(&mut sh, &mut k, &format!("get_page {:#x}", dp + 3)),
        [format!(
            "error: pfn {:#x} is not the first page of a block the shell allocated (see \
             'handles')",
            dp + 3
        )]
    );
    assert_eq!(
        run(&mut sh, &mut k, "get_page 0x100"),
        ["error: pfn 0x100 is not the first page of a block the shell allocated (see 'handles')"]
    );
    let km = sh
        .handles_mut()
        .insert(Object::Kmalloc {
            virt: DIRECT_MAP + 0x40_0000,
            phys: 0x40_0000,
            size: 80,
            obj: 128,
        })
        .unwrap();
    assert_eq!(
        run(&mut sh, &mut k, "get_page #5"),
        ["error: #5 is a kmalloc handle, not a page block (expected pages, gfp_pages, gfp_addr or mos_page)"]
    );
    sh.handles_mut().remove(km).unwrap();
    assert_eq!(
        run(&mut sh, &mut k, "put_page #4"),
        [format!("pfn={dp:#x} refcount=1")]
    );
    assert!(one(&mut sh, &mut k, "free #4").starts_with("freed #4 pages n=3"));
    assert_eq!(last_call(&k), format!("free_pages({dp:#x}, 3)"));

    // A gfp_addr handle: put_page by its virtual address retires it.
    let g = one(&mut sh, &mut k, "get_free_pages 1");
    let gv = field(&g, "virt").to_string();
    let out = run(&mut sh, &mut k, &format!("put_page {gv}"));
    assert_eq!(out[1], format!("retired {g}"));
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
    k.b.check().unwrap();
}

#[test]
fn page_shows_every_state() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let page = |sh: &mut Shell, k: &mut Machine<'_>, arg: &str| run(sh, k, &format!("page {arg}"));
    assert_eq!(
        page(&mut sh, &mut k, "0"),
        [
            "pfn=0x0 phys=0x0000000000000000 virt=0xffff800000000000 zone=DMA",
            "state=reserved flags=- ram=no",
        ]
    );
    assert_eq!(
        page(&mut sh, &mut k, "0xa0")[1],
        "state=reserved flags=- ram=no"
    );
    assert_eq!(
        page(&mut sh, &mut k, "0x100")[1],
        "state=reserved flags=KERNEL_INIT ram=yes"
    );
    let free = page(&mut sh, &mut k, "0x1000");
    assert_eq!(
        free,
        [
            "pfn=0x1000 phys=0x0000000001000000 virt=0xffff800001000000 zone=NORMAL",
            "state=free order=10 n=1024 flags=- ram=yes",
        ]
    );
    for same in [
        "pfn=0x1000",
        "pfn=4096",
        "0x0000000001000000",
        "0x0000_0000_0100_0000",
        "0x0000000001000fff",
        "phys=16M",
        "phys=0x1000abc",
        "0xffff800001000000",
        "virt=0xffff_8000_0100_0800",
    ] {
        assert_eq!(page(&mut sh, &mut k, same), free, "page {same}");
    }
    assert_eq!(
        page(&mut sh, &mut k, "0x1001")[1],
        "state=tail head=0x1000 flags=- ram=yes"
    );
    assert_eq!(
        page(&mut sh, &mut k, "0x2000"),
        [
            "pfn=0x2000 phys=0x0000000002000000 virt=none zone=UNMAPPED",
            "state=free order=10 n=1024 flags=- ram=yes",
        ]
    );
    assert_eq!(
        page(&mut sh, &mut k, "0x3f00")[1],
        "state=reserved flags=- ram=no"
    );

    // An allocated DragonOS block of 3 pages: head, tail, and the rest, free.
    let d = one(&mut sh, &mut k, "pages 3 DMA KERNEL SHARED");
    let p = pfn(&d);
    assert_eq!(
        page(&mut sh, &mut k, "#1"),
        [
            format!(
                "pfn={p:#x} phys={:#018x} virt={:#018x} zone=DMA",
                p << 12,
                DIRECT_MAP + (p << 12)
            ),
            "state=allocated order=2 n=3 refcount=1 flags=KERNEL|SHARED ram=yes handle=#1"
                .to_string(),
        ]
    );
    assert_eq!(
        page(&mut sh, &mut k, &format!("{:#x}", p + 2))[1],
        format!("state=tail head={p:#x} flags=- ram=yes handle=#1")
    );
    assert_eq!(
        page(&mut sh, &mut k, &format!("{:#x}", p + 3))[1],
        "state=free order=0 n=1 flags=- ram=yes"
    );

    // A page in the order-0 cache.
    let c = one(&mut sh, &mut k, "alloc_page");
    run(&mut sh, &mut k, "free #2");
    assert_eq!(
        page(&mut sh, &mut k, &format!("{:#x}", pfn(&c)))[1],
        "state=cached order=0 n=1 flags=- ram=yes"
    );

    // A slab block (taken straight from the allocator, as the slab layer does).
    let s = k.b.alloc_slab_block(1, Gfp::KERNEL).unwrap();
    assert_eq!(
        page(&mut sh, &mut k, &format!("{s}"))[1],
        "state=slab order=1 n=2 flags=- ram=yes"
    );
    assert_eq!(
        page(&mut sh, &mut k, &format!("{:#x}", s.0 + 1))[1],
        format!("state=tail head={s} flags=- ram=yes")
    );
    k.b.free_slab_block(s, 1).unwrap();

    // A handle without a page block: its physical address.
    let km = sh
        .handles_mut()
        .insert(Object::Kmalloc {
            virt: DIRECT_MAP + 0x100_0080,
            phys: 0x100_0080,
            size: 80,
            obj: 128,
        })
        .unwrap();
    assert_eq!(page(&mut sh, &mut k, &format!("{km}")), free);
    sh.handles_mut().remove(km).unwrap();
    assert_eq!(
        page(&mut sh, &mut k, &format!("{:#x}", NPAGES - 1))[1],
        "state=reserved flags=- ram=no"
    );
    assert!(
        k.calls.iter().all(|c| !c.starts_with("page")),
        "queries only"
    );
}

const BUDDYINFO_BOOT: [&str; 3] = [
    "Node 0, zone      DMA      2      2      2      2      2      1      1      0      1      0      3 ",
    "Node 0, zone   NORMAL      0      0      0      0      0      0      0      0      0      0      4 ",
    "Node 0, zone UNMAPPED      0      0      0      0      0      0      0      0      1      1      7 ",
];

/// Linux `seq_printf(m, "Node %d, zone %8s ", ...)` then `"%6lu "` per order.
fn linux_buddyinfo_line(zone: &str, counts: &[u64]) -> String {
    let mut s = format!("Node {}, zone {:>8} ", 0, zone);
    for c in counts {
        s += &format!("{c:>6} ");
    }
    s
}

#[test]
fn buddyinfo_is_exactly_proc_buddyinfo() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    assert_eq!(run(&mut sh, &mut k, "buddyinfo"), BUDDYINFO_BOOT);
    assert_eq!(
        BUDDYINFO_BOOT[0],
        linux_buddyinfo_line("DMA", &[2, 2, 2, 2, 2, 1, 1, 0, 1, 0, 3])
    );
    // DMA free RAM: [0x1, 0x9f) and [0x300, 0x1000) in maximal aligned blocks.
    one(&mut sh, &mut k, "alloc_pages 3");
    one(&mut sh, &mut k, "pages 5 UNMAPPED");
    one(&mut sh, &mut k, "alloc_pages 9 GFP_DMA");
    let out = run(&mut sh, &mut k, "buddyinfo");
    for (line, (zone, name)) in out.iter().zip([
        (mm::Zone::Dma, "DMA"),
        (mm::Zone::Normal, "NORMAL"),
        (mm::Zone::Unmapped, "UNMAPPED"),
    ]) {
        assert_eq!(*line, linux_buddyinfo_line(name, &k.b.buddyinfo(zone)));
        assert_eq!(line.len(), 13 + 8 + 1 + 7 * 11);
    }
    assert_ne!(out[0], BUDDYINFO_BOOT[0]);
    assert_ne!(out[1], BUDDYINFO_BOOT[1]);
    run(&mut sh, &mut k, "free all");
    k.b.drain();
    assert_eq!(
        run(&mut sh, &mut k, "buddyinfo"),
        BUDDYINFO_BOOT,
        "merged back"
    );

    // Zones without memory are left out, as in Linux.
    let mut map = mem_map();
    let (mut sh, mut k) = machine_with_lowmem(&mut map, NPAGES);
    let out = run(&mut sh, &mut k, "buddyinfo");
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], BUDDYINFO_BOOT[0]);
    assert_eq!(
        out[1],
        linux_buddyinfo_line("NORMAL", &[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 11])
    );
}

#[test]
fn zoneinfo_reports_every_zone_and_the_lowmem_limit() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    assert_eq!(
        run(&mut sh, &mut k, "zoneinfo"),
        [
            "zone DMA",
            "  pfn: 0x1..0x1000",
            "  phys: 0x0000000000001000..0x0000000001000000",
            "  present: 3998 pages, 16375808 bytes",
            "  managed: 3486 pages, 14278656 bytes",
            "  free: 3486 pages, 14278656 bytes",
            "  cached: 0 pages, 0 bytes",
            "  min: 0 pages, 0 bytes",
            "  low: 0 pages, 0 bytes",
            "  high: 0 pages, 0 bytes",
            "zone NORMAL",
            "  pfn: 0x1000..0x2000",
            "  phys: 0x0000000001000000..0x0000000002000000",
            "  present: 4096 pages, 16777216 bytes",
            "  managed: 4096 pages, 16777216 bytes",
            "  free: 4096 pages, 16777216 bytes",
            "  cached: 0 pages, 0 bytes",
            "  min: 0 pages, 0 bytes",
            "  low: 0 pages, 0 bytes",
            "  high: 0 pages, 0 bytes",
            "zone UNMAPPED",
            "  pfn: 0x2000..0x3f00",
            "  phys: 0x0000000002000000..0x0000000003f00000",
            "  present: 7936 pages, 32505856 bytes",
            "  managed: 7936 pages, 32505856 bytes",
            "  free: 7936 pages, 32505856 bytes",
            "  cached: 0 pages, 0 bytes",
            "  min: 0 pages, 0 bytes",
            "  low: 0 pages, 0 bytes",
            "  high: 0 pages, 0 bytes",
            "lowmem: pfn 0x2000 phys 0x0000000002000000 (ZONE_UNMAPPED starts here)",
            "max_pfn: 0x4000 (the mem_map describes 64 MiB)",
        ]
    );
    one(&mut sh, &mut k, "pages 4 DMA");
    one(&mut sh, &mut k, "alloc_page");
    run(&mut sh, &mut k, "free #2");
    let out = run(&mut sh, &mut k, "zoneinfo");
    assert_eq!(out[5], "  free: 3482 pages, 14262272 bytes");
    assert_eq!(out[15], "  free: 4096 pages, 16777216 bytes");
    let cached = k.b.zone_stat(mm::Zone::Normal).cached;
    assert!(cached > 0, "the freed page is cached");
    assert_eq!(
        out[16],
        format!("  cached: {cached} pages, {} bytes", cached * 4096)
    );

    let mut map = mem_map();
    let (mut sh, mut k) = machine_with_lowmem(&mut map, NPAGES);
    let out = run(&mut sh, &mut k, "zoneinfo");
    assert_eq!(
        &out[20..22],
        ["zone UNMAPPED", "  empty (no RAM in this zone)"]
    );
    assert_eq!(
        out[22],
        "lowmem: pfn 0x4000 phys 0x0000000004000000 (ZONE_UNMAPPED starts here)"
    );
}

#[test]
fn memstat_zone_lines_show_free_and_managed_pages() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    // As the kernel does at boot: sqrt(16 * 30328 KiB of lowmem) = 696 KiB = 174
    // pages, shared 80 / 93 by DMA and NORMAL; UNMAPPED gets 32 (its floor).
    let kb = k.b.default_min_free_kbytes();
    assert_eq!(kb, 696);
    k.b.setup_watermarks(kb);
    let out = run(&mut sh, &mut k, "memstat");
    assert_eq!(
        out,
        [
            "total: 65658880",
            "used: 2097152",
            "free: 63561728",
            "shared: 0",
            "cache_used: 0",
            "cache_free: 0",
            "available: 63561728",
            "zone DMA: total=14278656 used=0 free=14278656 free_pages=3486 managed_pages=3486 \
             min_pages=80 low_pages=100 high_pages=120",
            "zone NORMAL: total=16777216 used=0 free=16777216 free_pages=4096 managed_pages=4096 \
             min_pages=93 low_pages=116 high_pages=139",
            "zone UNMAPPED: total=32505856 used=0 free=32505856 free_pages=7936 managed_pages=7936 \
             min_pages=32 low_pages=77 high_pages=122",
        ]
    );
    one(&mut sh, &mut k, "pages 5 UNMAPPED");
    assert_eq!(
        run(&mut sh, &mut k, "memstat")[9],
        "zone UNMAPPED: total=32505856 used=20480 free=32485376 free_pages=7931 managed_pages=7936 \
         min_pages=32 low_pages=77 high_pages=122"
    );
}

#[test]
fn pagemap_draws_memory_within_80_columns() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let out = run(&mut sh, &mut k, "pagemap");
    assert_eq!(
        &out[..3],
        [
            "pfn 0x0..0x4000: 1 cell = 16 pages (64 KiB), 1 row = 48 cells (3 MiB)",
            "legend: . free  c cached  # allocated  S slab  K reserved RAM  ' ' not RAM",
            "a mixed cell shows the state of most of its pages; zones D, N, U",
        ]
    );
    let rows = &out[3..];
    assert!(rows.len() <= 34, "about 32 rows: {}", rows.len());
    for line in &out {
        assert!(line.len() <= 80, "{line:?}");
    }
    let full = ".".repeat(48);
    assert_eq!(
        rows[0],
        format!(
            "0x0000000000000000 D |{}{}{}|",
            ".".repeat(10),
            " ".repeat(6),
            "K".repeat(32)
        )
    );
    assert_eq!(rows[1], format!("0x0000000000300000 D |{full}|"));
    assert_eq!(
        rows[5],
        format!("0x0000000000f00000 D |{}|", ".".repeat(16))
    );
    assert_eq!(rows[6], format!("0x0000000001000000 N |{full}|"));
    assert_eq!(
        rows[11],
        format!("0x0000000001f00000 N |{}|", ".".repeat(16))
    );
    assert_eq!(rows[12], format!("0x0000000002000000 U |{full}|"));
    assert_eq!(
        rows.last().unwrap(),
        &format!(
            "0x0000000003e00000 U |{}{}|",
            ".".repeat(16),
            " ".repeat(16)
        )
    );
    assert_eq!(rows.len(), 6 + 6 + 11);
    // Every row starts where the one before ended, with its zone letter.
    let mut next = 0u64;
    for row in rows {
        let addr = hex(&row[..18]);
        assert_eq!(addr, next, "{row}");
        let zone = if addr < 16 << 20 {
            'D'
        } else if addr < 32 << 20 {
            'N'
        } else {
            'U'
        };
        assert_eq!(row.as_bytes()[19] as char, zone, "{row}");
        let cells = row[22..row.len() - 1].len() as u64;
        next = addr + cells * 16 * 4096;
    }
    assert_eq!(next, 64 << 20);

    // Allocations show up: 1024 + 64 pages = 68 cells of 16.
    one(&mut sh, &mut k, "alloc_pages 10");
    one(&mut sh, &mut k, "pages 63 DMA");
    let out = run(&mut sh, &mut k, "pagemap");
    let hashes: usize = out[3..].iter().map(|r| r.matches('#').count()).sum();
    assert_eq!(hashes, 64 + 4);

    // Zoomed in: one page per cell.
    assert_eq!(
        run(&mut sh, &mut k, "pagemap 0x98 0x108"),
        [
            "pfn 0x98..0x108: 1 cell = 1 page (4 KiB), 1 row = 48 cells (192 KiB)",
            "legend: . free  c cached  # allocated  S slab  K reserved RAM  ' ' not RAM",
            "a mixed cell shows the state of most of its pages; zones D, N, U",
            &format!("0x0000000000098000 D |.......{}|", " ".repeat(41)),
            &format!("0x00000000000c8000 D |{}|", " ".repeat(48)),
            &format!("0x00000000000f8000 D |{}KKKKKKKK|", " ".repeat(8)),
        ]
    );
    // Rows never cross a zone.
    let out = run(&mut sh, &mut k, "pagemap 0xff0 0x1010");
    assert_eq!(
        &out[3..],
        [
            format!("0x0000000000ff0000 D |{}|", ".".repeat(16)),
            format!("0x0000000001000000 N |{}|", ".".repeat(16)),
        ]
    );

    // Cached and slab pages.
    run(&mut sh, &mut k, "free all");
    let c = one(&mut sh, &mut k, "alloc_page");
    let a = one(&mut sh, &mut k, "alloc_page");
    run(&mut sh, &mut k, "free #3");
    let s = k.b.alloc_slab_block(2, Gfp::KERNEL).unwrap();
    let cells = |sh: &mut Shell, k: &mut Machine<'_>, from: u64, to: u64| {
        let out = run(sh, k, &format!("pagemap {from:#x} {to:#x}"));
        out[3][22..out[3].len() - 1].to_string()
    };
    let (pc, pa) = (pfn(&c), pfn(&a));
    assert_eq!(cells(&mut sh, &mut k, pc, pc + 1), "c");
    assert_eq!(cells(&mut sh, &mut k, pa, pa + 1), "#");
    assert_eq!(
        cells(&mut sh, &mut k, u64::from(s.0), u64::from(s.0) + 4),
        "SSSS"
    );
    k.b.free_slab_block(s, 2).unwrap();
    run(&mut sh, &mut k, "free all");
    k.b.check().unwrap();
}

#[test]
fn free_all_restores_memstat_exactly() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");
    for line in [
        "pages 4 DMA KERNEL",
        "pages 63 UNMAPPED SHARED",
        "pages 7 NORMAL PGT_MAPPED",
        "alloc_pages 3",
        "alloc_page __GFP_HIGHMEM",
        "alloc_pages 0 GFP_DMA __GFP_ZERO",
        "get_free_pages 2",
        "get_free_page",
        "get_zeroed_page GFP_DMA",
        "page_alloc",
        "page_alloc",
        "get_page #2",
        "put_page #2",
        "get_page #10",
        "page_decref #11",
        "page_decref #10",
        "bzero #4",
        "bcopy #7 #4",
    ] {
        let out = run(&mut sh, &mut k, line);
        assert!(
            !out.iter().any(|l| l.starts_with("error")),
            "{line}: {out:?}"
        );
    }
    let busy = run(&mut sh, &mut k, "memstat");
    assert_ne!(busy, boot);
    assert_eq!(busy[3], "shared: 258048", "63 SHARED pages");
    let out = run(&mut sh, &mut k, "free all");
    assert_eq!(out.last().unwrap(), "freed 10 handles");
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
    assert_eq!(run(&mut sh, &mut k, "handles"), ["no live handles"]);
    k.b.check().unwrap();
}

#[test]
fn page_summary_counts_match_the_allocator() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    for line in [
        "pages 63 DMA",
        "alloc_pages 4 __GFP_HIGHMEM",
        "alloc_page",
        "page_alloc",
    ] {
        one(&mut sh, &mut k, line);
    }
    run(&mut sh, &mut k, "free #3");
    let slab = k.b.alloc_slab_block(3, Gfp::DMA).unwrap();
    let s = PageSummary::from_buddy(&k.b, Pfn(0), Pfn(NPAGES));
    assert_eq!(s.total(), u64::from(NPAGES));
    assert_eq!(s.free + s.cached, k.b.nr_free_pages());
    assert!(s.cached > 0);
    assert_eq!(s.allocated, 63 + 16 + 1);
    assert_eq!(s.slab, 8);
    assert_eq!(s.reserved, k.b.present_pages() - k.b.managed_pages());
    assert_eq!(s.hole, u64::from(NPAGES) - k.b.present_pages());
    // Any split of the range adds up to the same numbers.
    let mut sum = PageSummary::default();
    let mut pfn = 0;
    while pfn < NPAGES {
        let end = (pfn + 37).min(NPAGES);
        let p = PageSummary::from_buddy(&k.b, Pfn(pfn), Pfn(end));
        assert_eq!(p.total(), u64::from(end - pfn));
        sum.free += p.free;
        sum.cached += p.cached;
        sum.allocated += p.allocated;
        sum.slab += p.slab;
        sum.reserved += p.reserved;
        sum.hole += p.hole;
        pfn = end;
    }
    assert_eq!(sum, s);
    // Beyond the mem_map there is nothing.
    let past = PageSummary::from_buddy(&k.b, Pfn(NPAGES), Pfn(NPAGES + 10));
    assert_eq!(past, PageSummary::default());
    k.b.free_slab_block(slab, 3).unwrap();
}

#[test]
fn kernels_without_the_page_api_answer_with_one_error() {
    let (mut sh, mut k) = common::boot();
    for line in [
        "pages 1",
        "alloc_pages 0",
        "alloc_page",
        "get_free_pages 0",
        "get_free_page",
        "get_zeroed_page",
        "page_alloc",
        "page 5",
        "page 0x0000000000005000",
        "buddyinfo",
        "zoneinfo",
        "pagemap",
    ] {
        let out = run(&mut sh, &mut k, line);
        assert_eq!(out, ["error: not supported by this kernel"], "{line}");
    }
    assert_eq!(
        run(&mut sh, &mut k, "get_page 5"),
        ["error: pfn 0x5 is not the first page of a block the shell allocated (see 'handles')"]
    );
    assert!(sh.handles().is_empty());
    assert_eq!(error_lines(&k.out), 13);
}

#[test]
fn raw_frees_hit_the_allocators_own_misuse_checks() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = k.b.mm_stat();
    let line = one(&mut sh, &mut k, "pages 3 DMA");
    let p = pfn(&line);
    let before = k.b.mm_stat();
    // Wrong count: the allocator refuses, the handle stays.
    let out = run(&mut sh, &mut k, &format!("free_pages {p:#x} 2"));
    assert!(
        out[0].starts_with("error: ") && out[0].contains("allocated with 3"),
        "{out:?}"
    );
    assert_eq!(last_call(&k), format!("free_pages({:#x}, 2)", p));
    // Not the first page of the block.
    let out = run(&mut sh, &mut k, &format!("free_pages {:#x} 1", p + 1));
    assert!(
        out[0].starts_with("error: ") && out[0].contains("not the first page"),
        "{out:?}"
    );
    // Wrong order for the Linux form.
    let out = run(&mut sh, &mut k, &format!("__free_pages {p:#x} 0"));
    assert!(out[0].starts_with("error: "), "{out:?}");
    assert_eq!(
        k.b.mm_stat(),
        before,
        "a refused free changed the allocator"
    );
    assert!(run(&mut sh, &mut k, "handles")[0].starts_with("#1 pages"));
    // The right count frees it and retires #1.
    let out = run(&mut sh, &mut k, &format!("free_pages {p:#x} 3"));
    assert_eq!(out[0], format!("free_pages: pfn={p:#x} freed"), "{out:?}");
    assert!(out[1].starts_with("retired #1 pages"), "{out:?}");
    // Now it is a double free, answered by the allocator.
    let out = run(&mut sh, &mut k, &format!("free_pages {p:#x} 3"));
    assert!(
        out[0].starts_with("error: ") && out[0].contains("double free"),
        "{out:?}"
    );
    // A reserved frame (the simulated kernel image) and a PFN beyond RAM.
    let reserved = (0..NPAGES)
        .find(|&f| {
            k.b.page(Pfn(f))
                .is_some_and(|pg| pg.state() == mm::PageState::Reserved && k.b.is_ram(Pfn(f)))
        })
        .expect("a reserved RAM frame");
    let out = run(&mut sh, &mut k, &format!("free_pages {reserved:#x} 1"));
    assert!(
        out[0].starts_with("error: ") && out[0].contains("reserved"),
        "{out:?}"
    );
    let out = run(&mut sh, &mut k, &format!("free_pages {:#x} 1", NPAGES + 5));
    assert!(
        out[0].starts_with("error: ") && out[0].contains("beyond the last frame"),
        "{out:?}"
    );
    k.b.drain();
    assert_eq!(k.b.mm_stat(), boot);
}

#[test]
fn raw_frees_never_touch_the_kernels_own_blocks() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    // A block the "kernel" allocated behind the shell's back.
    let theirs =
        k.b.alloc_pages_zone(mm::Zone::Normal, 2, mm::PageFlags::KERNEL)
            .unwrap();
    let out = run(&mut sh, &mut k, &format!("free_pages {:#x} 2", theirs.0));
    assert!(
        out[0].starts_with("error: ") && out[0].contains("kernel allocated for itself"),
        "{out:?}"
    );
    assert!(
        !last_call(&k).starts_with("free_pages"),
        "the kernel was called: {:?}",
        k.calls
    );
    assert_eq!(k.b.page(theirs).unwrap().state(), mm::PageState::Allocated);
}

#[test]
fn bulk_page_commands_make_one_handle_per_page_and_report_misuse() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let boot = run(&mut sh, &mut k, "memstat");
    let out = run(&mut sh, &mut k, "alloc_pages_bulk 40");
    assert_eq!(out.len(), 41, "{out:?}");
    assert!(
        out[0].starts_with("#1 gfp_pages order=0 n=1 zone=NORMAL"),
        "{out:?}"
    );
    assert_eq!(out[40], "alloc_pages_bulk: got 40 of 40 pages");
    assert_eq!(last_call(&k), "alloc_pages_bulk(0x0, 40)");
    // One page freed the ordinary way, a batch in one call.
    run(&mut sh, &mut k, "free #1");
    let out = run(&mut sh, &mut k, "free_pages_bulk #2 #3 #4");
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out[0].starts_with("freed #2 gfp_pages"), "{out:?}");
    assert_eq!(last_call(&k), "free_pages_bulk(3)");
    // A handle listed twice: the second entry is the allocator's double free;
    // the first is freed and retired, the one after stays live.
    let out = run(&mut sh, &mut k, "free_pages_bulk #5 #5 #6");
    assert_eq!(error_lines(&out.join("\r\n")), 1, "{out:?}");
    assert!(out[0].starts_with("freed #5 "), "{out:?}");
    assert!(
        out[1].starts_with("error: free_pages_bulk stopped at #5 (entry 2) after freeing 1: double free of page pfn="),
        "{out:?}"
    );
    assert!(sh.handles().get(shell::HandleId(6)).is_ok());
    // Not an order-0 gfp_pages handle: refused before anything is freed.
    run(&mut sh, &mut k, "alloc_pages 1");
    for (line, want) in [
        ("free_pages_bulk #6 #41", "error: #41 is a gfp_pages handle"),
        ("free_pages_bulk #6 #99", "error: "),
        (
            "free_pages_bulk #9-#7",
            "error: empty handle range '#9-#7' (#9 > #7)",
        ),
        ("free_pages_bulk #1-#2000", "error: more than 1024 handles"),
        ("free_pages_bulk", "error: "),
        ("alloc_pages_bulk 0", "error: "),
        ("alloc_pages_bulk 1025", "error: "),
    ] {
        let out = run(&mut sh, &mut k, line);
        assert_eq!(out.len(), 1, "{line}: {out:?}");
        assert!(out[0].starts_with(want), "{line}: {out:?}");
    }
    assert!(sh.handles().get(shell::HandleId(6)).is_ok());
    let out = run(&mut sh, &mut k, "free_pages_bulk #7-#9 #10");
    assert_eq!(out.len(), 4, "{out:?}");
    run(&mut sh, &mut k, "free all");
    assert!(sh.handles().is_empty());
    assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
}
