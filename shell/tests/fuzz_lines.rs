//! Host fuzzer: the shell over the real buddy and slab allocators of a small
//! simulated machine (`common::small_machine`, 20 MiB of mem_map), with check
//! mode on, fed seeded random command lines: well-formed commands on live and
//! dead handles, raw frees of random and interior addresses, memory pressure
//! (big requests, many allocations) and garbage.
//!
//! After every line: the prompt comes back, at most one `error:` line, no
//! invariant violation (check mode runs `Buddy::check`, slab validation and the
//! handle-table check after each command). Every [`CHECKPOINT`] lines, and at the
//! end: `free all` without error, then `memstat` equals the boot `memstat`.
//!
//! A plain binary (`harness = false`) so that `cargo test` shows its report:
//! the seed, the lines run and the throughput in lines per second.
//! `MEMKERN_FUZZ_SEED=<n>` replays a seed (decimal or 0x hex),
//! `MEMKERN_FUZZ_LINES=<n>` changes the number of lines (default [`LINES`]).

mod common;

use common::{error_lines, small_machine, Machine, DIRECT_MAP, SMALL_NPAGES};
use mm::{Page, PageState, Zone};
use shell::{Object, Shell, PROMPT};
use std::time::Instant;

/// Lines per run by default.
const LINES: u64 = 1_000_000;
/// `free all` + `memstat` comparison every this many lines.
const CHECKPOINT: u64 = 200;

/// The seeded generator (`mm::sim::Rng`, xorshift64*).
use mm::sim::Rng;

const ZONES: &[&str] = &["DMA", "NORMAL", "UNMAPPED", "", "DMX"];
const PAGE_FLAGS: &[&str] = &["", "", "KERNEL", "SHARED", "DEVICE", "PGT_MAPPED", "BOGUS"];
const GFPS: &[&str] = &[
    "",
    "",
    "GFP_KERNEL",
    "GFP_ATOMIC",
    "GFP_DMA",
    "__GFP_ZERO",
    "__GFP_HIGHMEM",
    "GFP_DMA __GFP_ZERO",
    "GFP_BOGUS",
];

/// A size: mostly small, some large (memory pressure), some invalid.
fn size(r: &mut Rng) -> String {
    match r.below(10) {
        0..=4 => (1 + r.below(300)).to_string(),
        5 | 6 => (1 + r.below(8192)).to_string(),
        7 => format!("{}K", 1 + r.below(1024)),
        8 => ["1M", "512K", "256K", "768K"][r.below(4) as usize].to_string(),
        _ => ["0", "2M", "-1", "0x", "1G", "99999999999999999999"][r.below(6) as usize].to_string(),
    }
}

/// A reference to a handle: usually a live one, sometimes a dead or unknown one.
fn handle(r: &mut Rng, sh: &Shell) -> String {
    let live = sh.handles().len() as u64;
    if live > 0 && r.below(8) != 0 {
        let (id, _) = sh.handles().iter().nth(r.below(live) as usize).unwrap();
        id.to_string()
    } else {
        format!("#{}", r.below(sh.handles().issued() + 3))
    }
}

/// A live handle's object, if any.
fn live_obj<'a>(r: &mut Rng, sh: &'a Shell) -> Option<&'a Object> {
    let live = sh.handles().len() as u64;
    (live > 0).then(|| sh.handles().iter().nth(r.below(live) as usize).unwrap().1)
}

/// An address: a live object's (maybe plus an interior offset), or a random
/// direct-map or physical address.
fn addr(r: &mut Rng, sh: &Shell) -> String {
    let a = match (r.below(4), live_obj(r, sh).and_then(|o| o.primary_addr())) {
        (0, Some(v)) => v,
        (1, Some(v)) => v + [8, 16, 32, 64, 4096][r.below(5) as usize],
        (2, _) => DIRECT_MAP + (r.below(u64::from(SMALL_NPAGES) << 12) & !0xf),
        _ => r.below(u64::from(SMALL_NPAGES) << 12) & !0xfff,
    };
    format!("{a:#018x}")
}

/// A PFN: a live block's first frame, or a random one.
fn pfn(r: &mut Rng, sh: &Shell) -> String {
    match live_obj(r, sh).and_then(|o| o.page_block()) {
        Some((p, _)) if r.below(3) != 0 => format!("{:#x}", p.0 + r.below(2) as u32),
        _ => format!("{:#x}", r.below(u64::from(SMALL_NPAGES) + 16)),
    }
}

fn line(r: &mut Rng, sh: &Shell) -> String {
    let c = format!("c{}", r.below(3));
    let p = format!("p{}", r.below(3));
    match r.below(58) {
        0..=2 => format!(
            "pages {} {} {}",
            [1, 1, 2, 3, 4, 7, 16, 63, 0, 64][r.below(10) as usize],
            r.pick(ZONES),
            r.pick(PAGE_FLAGS)
        ),
        3 | 4 => format!("alloc_pages {} {}", r.below(11), r.pick(GFPS)),
        5 => format!("alloc_page {}", r.pick(GFPS)),
        6 => format!("get_free_pages {} {}", r.below(12), r.pick(GFPS)),
        7 => r
            .pick(&["get_free_page", "get_zeroed_page", "page_alloc"])
            .into(),
        8..=11 => format!("kmalloc {} {}", size(r), r.pick(GFPS)),
        12 => format!("kzalloc {}", size(r)),
        13 | 14 => format!("free {}", handle(r, sh)),
        15 => format!("kfree {}", handle(r, sh)),
        16 => format!("kfree {}", addr(r, sh)),
        17 => format!("free {}", addr(r, sh)),
        18 => format!("free_pages {} {}", pfn(r, sh), r.below(9)),
        19 => format!("__free_pages {} {}", pfn(r, sh), r.below(4)),
        20 => format!(
            "{} {}",
            r.pick(&["get_page", "put_page", "page_decref", "page"]),
            handle(r, sh)
        ),
        21 => format!("page {}", pfn(r, sh)),
        22 => format!("dump {} {} {}", handle(r, sh), r.below(300), r.below(300)),
        23 => format!("bzero {} {} {}", handle(r, sh), r.below(200), r.below(200)),
        24 => format!("bcopy {} {} {}", handle(r, sh), handle(r, sh), r.below(300)),
        25 => format!(
            "cache create {c} {} {} {}",
            size(r),
            ["", "0", "8", "64", "3", "4096"][r.below(6) as usize],
            r.pick(&[
                "",
                "SLAB_HWCACHE_ALIGN",
                "SLAB_CACHE_DMA",
                "SLAB_STORE_USER"
            ])
        ),
        26 | 27 => format!("cache alloc {c} {}", r.pick(GFPS)),
        28 => format!("cache free {c} {}", handle(r, sh)),
        29 => format!("cache {} {c}", r.pick(&["destroy", "shrink"])),
        30 => format!("mempool create {p} {} kmalloc {}", r.below(6), size(r)),
        31 => format!("mempool create {p} {} cache {c}", r.below(6)),
        32 | 33 => format!("mempool alloc {p} {}", r.pick(GFPS)),
        34 => format!("mempool free {p} {}", handle(r, sh)),
        35 => format!("mempool {} {p}", r.pick(&["destroy", "info"])),
        36 => r
            .pick(&[
                // Debug options on small caches only: validating a debug slot
                // reads its poison and padding, which for the big classes
                // would dominate the run time.
                "slub_debug F,kmalloc-32,kmalloc-64,kmalloc-128,kmalloc-256",
                "slub_debug FU,kmalloc-512,dma-kmalloc-64,c0",
                "slub_debug FPU,kmalloc-64,c1",
                "slub_debug P,kmalloc-32,kmalloc-128",
                "slub_debug -",
                "slub_debug",
                "slub_debug validate",
                "slub_debug reports",
            ])
            .into(),
        37 => r
            .pick(&[
                "buddyinfo",
                "zoneinfo",
                "memstat",
                "handles",
                "slabinfo",
                "caches",
                "pagemap",
                "history",
                "check",
            ])
            .into(),
        38 => r
            .pick(&["help", "help cache", "echo a b", "version", "trap pf"])
            .into(),
        39 => "free all".into(),
        40 => {
            // Pressure: the largest requests the zones can have.
            r.pick(&[
                "kmalloc 1M",
                "kmalloc 1M GFP_DMA",
                "alloc_pages 10",
                "alloc_pages 9 GFP_DMA",
                "pages 63 NORMAL",
                "pages 63 UNMAPPED",
                "get_free_pages 10",
            ])
            .into()
        }
        41 => format!("peek {} {}", addr(r, sh), r.below(300)),
        42 => match r.below(3) {
            // Unforced writes: the user's own memory or free frames pass,
            // what the kernel owns is refused.
            0 => format!(
                "poke {} {} {}",
                addr(r, sh),
                r.below(300),
                [1, 2, 4, 8, 3][r.below(5) as usize]
            ),
            1 => format!("fill {} {} {}", addr(r, sh), r.below(5000), r.below(300)),
            _ => format!("copy {} {} {}", addr(r, sh), addr(r, sh), r.below(5000)),
        },
        43 => match r.below(3) {
            0 => format!(
                "request {} {:#x} {} r{}",
                r.pick(&["io", "mem", "disk"]),
                [0x80, 0x3f8, 0x510, 0xfed00000, 0x100000][r.below(5) as usize] + r.below(8),
                r.below(10),
                r.below(3)
            ),
            1 => format!(
                "release {} {:#x} {}",
                r.pick(&["io", "mem"]),
                [0x80, 0x3f8, 0x510, 0xfed00000][r.below(4) as usize] + r.below(8),
                r.below(10)
            ),
            _ => r.pick(&["regions", "regions io", "regions mem"]).into(),
        },
        44 => r
            .pick(&[
                "inb 0x80",
                "outb 0x80 7",
                "outb 0x3f8 1",
                "insb 0x511 4",
                "outw 0x510 0",
                "inl 0xfffe",
            ])
            .into(),
        45 => format!(
            "{} {}",
            r.pick(&["vmalloc", "vzalloc"]),
            r.pick(&["1", "4096", "5000", "64K", "1M", "0", "-1", "1G", "zz"])
        ),
        46 => {
            let v = mm::layout::VMALLOC.start + (r.below(64) << 12) + r.below(2) * 8;
            match r.below(3) {
                0 => format!("vfree {}", handle(r, sh)),
                1 => format!("vfree {v:#x}"),
                _ => format!("vmalloc_to_page {v:#x}"),
            }
        }
        47 => match r.below(3) {
            0 => format!(
                "ioremap {:#x} {} {}",
                [0xfee0_0000u64, 0xfed0_0000, 0x1000, 0xfee0_0010][r.below(4) as usize],
                r.pick(&["4096", "1", "0", "8K", "2M"]),
                r.pick(&["", "wc", "uc"])
            ),
            1 => format!("iounmap {}", handle(r, sh)),
            _ => format!(
                "iounmap {:#x}",
                mm::layout::IOREMAP.start + (r.below(4) << 12)
            ),
        },
        48 => {
            let virt = [
                0x40_0000 + (r.below(16) << 12),
                0xffff_e200_0000_0000 + (r.below(64) << 12),
                mm::layout::VMALLOC.start,
            ][r.below(3) as usize];
            match r.below(6) {
                0 => format!(
                    "map {virt:#x} {} {} {} {}",
                    handle(r, sh),
                    [4096, 8192, 0x20_0000, 0][r.below(4) as usize],
                    r.pick(&["", "rw", "ro", "rwx", "bogus"]),
                    r.pick(&["", "4k", "2m"])
                ),
                1 => format!(
                    "unmap {virt:#x} {}",
                    [4096, 0x20_0000, 0][r.below(3) as usize]
                ),
                2 => format!("{} {virt:#x}", r.pick(&["lookup", "remove", "walk"])),
                3 => format!("pgdir_walk {virt:#x} {}", r.pick(&["", "create"])),
                4 => format!(
                    "insert {} {virt:#x} {}",
                    pfn(r, sh),
                    r.pick(&["", "rw", "ro"])
                ),
                _ => format!(
                    "aspace {}",
                    r.pick(&["new", "use #1", "use #2", "use kernel", ""])
                ),
            }
        }
        49 => match r.below(3) {
            0 => format!("alloc_pages_bulk {} {}", r.below(40), r.pick(GFPS)),
            1 => format!("cache alloc_bulk {c} {}", r.below(20)),
            _ => format!(
                "{} {}-{}",
                r.pick(&["free_pages_bulk", "cache free_bulk c0"]),
                handle(r, sh),
                handle(r, sh)
            ),
        },
        // `wx` and `map` walk every kernel mapping (milliseconds here): rarely.
        50 => match r.below(16) {
            0 => r.pick(&["wx", "map"]).into(),
            _ => r.pick(&["vmallocinfo", "handles", "aspace"]).into(),
        },
        _ => {
            // Garbage: printable, a few editing bytes, high bytes; never CR,
            // LF, ESC or Ctrl-C, which have meanings of their own.
            let n = 1 + r.below(120);
            (0..n)
                .map(|_| match r.below(12) {
                    0 => char::from([0x01u8, 0x08, 0x7f, 0x15][r.below(4) as usize]),
                    1 => char::from_u32(0x80 + r.below(0x80) as u32).unwrap(),
                    2 => ' ',
                    _ => char::from(0x21 + r.below(0x5e) as u8),
                })
                .collect()
        }
    }
}

/// Feeds `line` + CR; returns the output it caused.
fn feed(sh: &mut Shell, k: &mut Machine<'_>, line: &str) -> String {
    k.out.clear();
    k.calls.clear();
    sh.feed_bytes(line.as_bytes(), k);
    sh.feed(b'\r', k);
    std::mem::take(&mut k.out)
}

/// Drops the extra references `get_page` took, so that `free all` can free
/// every block.
fn drop_extra_refs(sh: &mut Shell, k: &mut Machine<'_>) -> Vec<String> {
    // References held by mappings (`insert`, and the address spaces that hold
    // them) are not extra: release those handles first, then count.
    let holders: Vec<_> = sh
        .handles()
        .iter()
        .filter(|(_, o)| matches!(o, Object::Inserted { .. } | Object::Aspace { .. }))
        .map(|(id, _)| id)
        .collect();
    let mut lines = Vec::new();
    for id in holders.into_iter().rev() {
        let out = feed(sh, k, &format!("free {id}"));
        assert_eq!(error_lines(&out), 0, "free {id}: {out}");
    }
    let blocks: Vec<_> = sh
        .handles()
        .iter()
        .filter_map(|(id, o)| o.page_block().map(|(p, _)| (id, p)))
        .collect();
    for (id, p) in blocks {
        let pg = *k.b.page(p).unwrap();
        if pg.state() == PageState::Allocated {
            for _ in 1..pg.count {
                lines.push(format!("put_page {id}"));
            }
        }
    }
    lines
}

fn main() {
    let seed = std::env::var("MEMKERN_FUZZ_SEED")
        .ok()
        .map(|s| match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).expect("MEMKERN_FUZZ_SEED"),
            None => s.parse().expect("MEMKERN_FUZZ_SEED"),
        })
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let lines: u64 = std::env::var("MEMKERN_FUZZ_LINES")
        .ok()
        .map(|s| s.parse().expect("MEMKERN_FUZZ_LINES"))
        .unwrap_or(LINES);
    println!(
        "fuzz_lines: seed {seed:#x}, {lines} lines, check mode on \
         (replay: MEMKERN_FUZZ_SEED={seed:#x} MEMKERN_FUZZ_LINES={lines})"
    );
    let mut map = vec![Page::reserved(Zone::Dma); SMALL_NPAGES as usize];
    let (mut sh, mut k) = small_machine(&mut map);
    // Watermarks as the kernel sets them at boot, so running out of memory
    // meets them (and `BelowWatermark` errors) as on the real machine.
    let kb = k.b.default_min_free_kbytes();
    k.b.setup_watermarks(kb);
    sh.set_check(true);
    let boot = feed(&mut sh, &mut k, "memstat");
    let mut r = Rng(seed);
    let fail = |i: u64, l: &str, why: &str, out: &str| -> ! {
        panic!(
            "fuzz_lines: seed {seed:#x}, line {i} {l:?}: {why}\n{out}\n\
             replay: MEMKERN_FUZZ_SEED={seed:#x} MEMKERN_FUZZ_LINES={}",
            i + 1
        )
    };
    let (mut handles, mut errors, mut checkpoints) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    for i in 0..lines {
        let l = line(&mut r, &sh);
        let out = feed(&mut sh, &mut k, &l);
        if !out.ends_with(PROMPT) {
            fail(i, &l, "no prompt", &out);
        }
        let errs = error_lines(&out);
        if errs > 1 {
            fail(i, &l, "more than one error line", &out);
        }
        if out.contains("invariant") || out.contains("available count") {
            fail(i, &l, "internal error text", &out);
        }
        errors += errs as u64;
        handles += out.split("\r\n").filter(|x| x.starts_with('#')).count() as u64;
        if (i + 1) % CHECKPOINT == 0 || i + 1 == lines {
            checkpoints += 1;
            let mut script = drop_extra_refs(&mut sh, &mut k);
            script.push("free all".into());
            for s in script {
                let out = feed(&mut sh, &mut k, &s);
                if error_lines(&out) > 0 {
                    fail(i, &s, "checkpoint command failed", &out);
                }
            }
            let now = feed(&mut sh, &mut k, "memstat");
            if now != boot {
                fail(
                    i,
                    "memstat",
                    "memstat after free all differs from boot",
                    &format!("boot:\n{boot}\nnow:\n{now}"),
                );
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // The mix must really have exercised allocation and misuse.
    assert!(
        lines < 1000 || (handles * 20 >= lines && errors * 10 >= lines),
        "seed {seed:#x}: too tame: {handles} handles, {errors} errors in {lines} lines"
    );
    println!(
        "fuzz_lines: {lines} lines in {secs:.1} s = {:.0} lines/s ({handles} handles made, \
         {errors} error lines, {checkpoints} free-all checkpoints), no violation",
        lines as f64 / secs
    );
}
