//! No input ever panics the shell, every line yields at most one error line, and
//! the shell still answers afterwards.

mod common;

use common::{boot, crlf_only, error_lines, machine, mem_map, run, Fake};
use mm::layout::DIRECT_MAP_BASE;
use proptest::prelude::*;
use shell::{Shell, PROMPT};

/// Feeds `input` byte by byte, checking after each byte that the output it caused
/// has at most one error line and, if it printed a prompt, ends with it.
fn feed_checked(sh: &mut Shell, k: &mut Fake, input: &[u8]) -> Result<(), TestCaseError> {
    for &b in input {
        let start = k.out.len();
        sh.feed(b, k);
        let chunk = &k.out[start..];
        prop_assert!(error_lines(chunk) <= 1, "byte {b:#04x} gave {chunk:?}");
        if chunk.contains(PROMPT) {
            prop_assert!(chunk.ends_with(PROMPT), "prompt not last: {chunk:?}");
        }
    }
    Ok(())
}

/// The shell is alive: a fresh `echo` line is answered.
fn still_works(sh: &mut Shell, k: &mut Fake) -> Result<(), TestCaseError> {
    let start = k.out.len();
    sh.feed_bytes(b"\x03echo alive\r", k);
    prop_assert!(
        k.out[start..].ends_with("echo alive\r\nalive\r\nmm> "),
        "{:?}",
        &k.out[start..]
    );
    Ok(())
}

/// Pieces that make interesting input when glued together.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let words: Vec<&'static [u8]> = vec![
        b"help",
        b"help free",
        b"echo",
        b"history",
        b"clear",
        b"version",
        b"reboot",
        b"poweroff",
        b"trap ",
        b"bp",
        b"pf",
        b"xx",
        b"memstat",
        b"handles",
        b"free ",
        b"all",
        b"#1",
        b"#0",
        b"0x",
        b"4K",
        b"1G",
        b"18446744073709551616",
        b"\"",
        b" ",
        b"\t",
        b"\r",
        b"\n",
        b"\r\n",
        b"\x08",
        b"\x7f",
        b"\x03",
        b"\x15",
        b"\x1b",
        b"\x1b[",
        b"\x1b[A",
        b"\x1b[B",
        b"\x1b[C",
        b"\x1b[D",
        b"\x1b[3~",
        b"\x1bOA",
        b"\x1b]0;",
        b"\x07",
        b"\x00",
        b"\xff",
        b"error: ",
        b"pages ",
        b"alloc_pages ",
        b"get_free_pages ",
        b"page_alloc",
        b"get_page ",
        b"put_page ",
        b"page_decref ",
        b"page ",
        b"pfn=",
        b"buddyinfo",
        b"zoneinfo",
        b"pagemap ",
        b"dump ",
        b"bzero ",
        b"bcopy ",
        b"DMA",
        b"GFP_DMA",
        b"0x0000000001000000",
        b"kmalloc ",
        b"kzalloc ",
        b"kfree ",
        b"cache ",
        b"create ",
        b"alloc ",
        b"destroy ",
        b"caches",
        b"mempool ",
        b"info",
        b"slabinfo",
        b"slub_debug ",
        b"FZPU,kmalloc-64",
        b"selftest slab",
        b"bench kmalloc 5",
        b"SLAB_HWCACHE_ALIGN",
    ];
    prop_oneof![
        3 => proptest::sample::select(words).prop_map(|w| w.to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
        1 => proptest::collection::vec(b'a'..=b'z', 250..300),
    ]
}

/// Gfp flag sets for the page command soup.
const GFPS: [&str; 6] = [
    "",
    "GFP_DMA",
    "__GFP_HIGHMEM",
    "__GFP_ZERO",
    "GFP_ATOMIC",
    "GFP_DMA __GFP_ZERO",
];

/// One page-level command line, right or wrong, naming handles #1..#11.
fn page_cmd() -> impl Strategy<Value = String> {
    let h = 1u64..12;
    let zones = ["DMA", "NORMAL", "UNMAPPED", "DMX", ""];
    let flags = [
        "",
        "KERNEL",
        "SHARED",
        "PGT_MAPPED",
        "DEVICE KERNEL_INIT",
        "BOGUS",
    ];
    prop_oneof![
        (1u64..=64, 0usize..5, 0usize..6)
            .prop_map(move |(n, z, f)| format!("pages {n} {} {}", zones[z], flags[f])),
        (0u32..=11, 0usize..6).prop_map(|(o, g)| format!("alloc_pages {o} {}", GFPS[g])),
        (0usize..6).prop_map(|g| format!("alloc_page {}", GFPS[g])),
        (0u32..=11, 0usize..6).prop_map(|(o, g)| format!("get_free_pages {o} {}", GFPS[g])),
        Just("get_free_page".to_string()),
        Just("get_zeroed_page GFP_DMA".to_string()),
        Just("page_alloc".to_string()),
        h.clone().prop_map(|n| format!("get_page #{n}")),
        h.clone().prop_map(|n| format!("put_page #{n}")),
        h.clone().prop_map(|n| format!("page_decref #{n}")),
        h.clone().prop_map(|n| format!("free #{n}")),
        Just("free all".to_string()),
        (0u64..0x4100).prop_map(|p| format!("page {p:#x}")),
        (0u64..0x4100).prop_map(|p| format!("put_page {p:#x}")),
        h.clone().prop_map(|n| format!("page #{n}")),
        (h.clone(), 0u64..9000, 0u64..300).prop_map(|(n, o, l)| format!("dump #{n} {o} {l}")),
        (h.clone(), 0u64..9000, 0u64..9000).prop_map(|(n, o, l)| format!("bzero #{n} {o} {l}")),
        (h.clone(), h.clone()).prop_map(|(a, b)| format!("bcopy #{a} #{b}")),
        Just("pagemap".to_string()),
        (0u64..0x4000, 1u64..0x400).prop_map(|(a, n)| format!("pagemap {a:#x} {:#x}", a + n)),
        Just("buddyinfo".to_string()),
        Just("zoneinfo".to_string()),
    ]
}

/// One slab-level command line, right or wrong, naming handles #1..#15, caches
/// c0..c2 (and kmalloc ones) and pools p0..p2. Sizes stay small enough that the
/// 64 MiB machine never runs out of memory (an out-of-memory error may leave a
/// slab behind, which the "an error changes nothing" check would flag).
fn slab_cmd() -> impl Strategy<Value = String> {
    let h = 1u64..16;
    let sizes = [
        "1", "24", "80", "100", "512", "3000", "4K", "64K", "0", "2M",
    ];
    let gfps = ["", "GFP_DMA", "__GFP_ZERO", "GFP_ATOMIC", "GFP_BOGUS"];
    let cflags = [
        "",
        "SLAB_HWCACHE_ALIGN",
        "SLAB_CACHE_DMA",
        "SLAB_PANIC",
        "SLAB_RED_ZONE SLAB_POISON",
        "SLAB_STORE_USER CONSISTENCY_CHECKS",
        "BOGUS",
    ];
    let caches = ["c0", "c1", "c2", "kmalloc-128", "dma-kmalloc-32", "nope"];
    let pools = ["p0", "p1", "p2"];
    let specs = [
        "FZPU,c0",
        "FZPU,kmalloc-128",
        "Z,kmalloc-*",
        "P,c1;U,c2",
        "-",
        "F",
        "XYZ",
    ];
    prop_oneof![
        (0usize..10, 0usize..5).prop_map(move |(z, g)| format!("kmalloc {} {}", sizes[z], gfps[g])),
        (0usize..10, 0usize..5).prop_map(move |(z, g)| format!("kzalloc {} {}", sizes[z], gfps[g])),
        h.clone().prop_map(|n| format!("kfree #{n}")),
        (0u64..0x800).prop_map(|o| format!("kfree {:#x}", DIRECT_MAP_BASE + 0x1c0_0000 + o * 8)),
        (
            0usize..3,
            0usize..8,
            prop_oneof![Just(""), Just("64"), Just("3")],
            0usize..7
        )
            .prop_map(move |(c, z, a, f)| format!(
                "cache create c{c} {} {a} {}",
                sizes[z], cflags[f]
            )),
        (0usize..6, 0usize..5)
            .prop_map(move |(c, g)| format!("cache alloc {} {}", caches[c], gfps[g])),
        (0usize..6, h.clone()).prop_map(move |(c, n)| format!("cache free {} #{n}", caches[c])),
        (0usize..6).prop_map(move |c| format!("cache destroy {}", caches[c])),
        (0usize..6).prop_map(move |c| format!("cache shrink {}", caches[c])),
        Just("caches".to_string()),
        Just("slabinfo".to_string()),
        (0usize..3, 0u64..6, 0usize..8).prop_map(move |(p, n, z)| format!(
            "mempool create {} {n} kmalloc {}",
            pools[p], sizes[z]
        )),
        (0usize..3, 0u64..6, 0usize..6).prop_map(move |(p, n, c)| format!(
            "mempool create {} {n} cache {}",
            pools[p], caches[c]
        )),
        (0usize..3, 0usize..5)
            .prop_map(move |(p, g)| format!("mempool alloc {} {}", pools[p], gfps[g])),
        (0usize..3, h.clone()).prop_map(move |(p, n)| format!("mempool free {} #{n}", pools[p])),
        (0usize..3).prop_map(move |p| format!("mempool destroy {}", pools[p])),
        Just("mempool info".to_string()),
        (0usize..7).prop_map(move |i| format!("slub_debug {}", specs[i])),
        Just("slub_debug".to_string()),
        Just("slub_debug reports".to_string()),
        Just("slub_debug validate".to_string()),
        Just("slub_debug clear".to_string()),
        (h.clone(), 0u64..9000, 0u64..300).prop_map(|(n, o, l)| format!("bzero #{n} {o} {l}")),
        (h.clone(), 0u64..300).prop_map(|(n, o)| format!("dump #{n} {o}")),
        (h.clone(), h.clone()).prop_map(|(a, b)| format!("bcopy #{a} #{b}")),
        h.clone().prop_map(|n| format!("free #{n}")),
        Just("bench kmalloc 50".to_string()),
        Just("free all".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Slab and page commands together on the real allocators: an error changes
    /// nothing, both allocators stay consistent, no raw free ever frees a live
    /// object the shell does not own, and `free all` gives back exactly the boot
    /// numbers.
    #[test]
    fn slab_commands_never_leak_or_corrupt(
        cmds in proptest::collection::vec(prop_oneof![3 => slab_cmd(), 1 => page_cmd()], 0..60)
    ) {
        let mut map = mem_map();
        let (mut sh, mut k) = machine(&mut map);
        let boot = run(&mut sh, &mut k, "memstat");
        // An object the "kernel" owns, which no command may free.
        let theirs = k.host.slab.kmalloc(&mut k.host.mem, &mut k.host.b, 100, mm::Gfp::KERNEL).unwrap();
        for c in cmds.iter().map(String::as_str).chain([format!("kfree {theirs:#018x}").as_str()]) {
            let (stat, live) = (shell::PageApi::mm_stat(&k), sh.handles().len());
            let out = run(&mut sh, &mut k, c);
            let errors = out.iter().filter(|l| l.starts_with("error: ")).count();
            prop_assert!(errors <= 1, "{c}: {out:?}");
            if errors == 1 {
                prop_assert!(out.last().unwrap().starts_with("error: "), "{c}: {out:?}");
                if c != "free all" && !c.starts_with("selftest") {
                    prop_assert_eq!(shell::PageApi::mm_stat(&k), stat, "{} changed memory: {:?}", c, out);
                    prop_assert_eq!(sh.handles().len(), live, "{}", c);
                }
            }
            if let Err(e) = k.b.check() {
                prop_assert!(false, "{c}: {e}");
            }
            let o = k.slab.object_info(&k.mem, &k.b, theirs);
            prop_assert!(o.is_ok_and(|o| o.allocated && o.object == theirs), "{c} freed it");
        }
        run(&mut sh, &mut k, "slub_debug -");
        run(&mut sh, &mut k, "free all");
        let ids: Vec<_> = sh.handles().iter().map(|(id, _)| id).collect();
        for id in ids {
            for _ in 0..100 {
                if sh.handles().get(id).is_err() {
                    break;
                }
                run(&mut sh, &mut k, &format!("put_page {id}"));
            }
        }
        prop_assert!(sh.handles().is_empty(), "{:?}", run(&mut sh, &mut k, "handles"));
        prop_assert!(k.pools.is_empty());
        k.host.slab.kfree(&mut k.host.mem, &mut k.host.b, theirs).unwrap();
        run(&mut sh, &mut k, "free all");
        prop_assert_eq!(run(&mut sh, &mut k, "memstat"), boot.clone());
        prop_assert_eq!(k.slab.totals(), mm::slab::SlabTotals::default());
        prop_assert!(k.b.check().is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Page commands on the real allocator: an error changes nothing, the
    /// allocator stays consistent, and once every reference is dropped, memory
    /// is exactly as at boot.
    #[test]
    fn page_commands_never_leak_or_corrupt(cmds in proptest::collection::vec(page_cmd(), 0..60)) {
        let mut map = mem_map();
        let (mut sh, mut k) = machine(&mut map);
        let boot = run(&mut sh, &mut k, "memstat");
        for c in &cmds {
            let (stat, live) = (k.b.mm_stat(), sh.handles().len());
            let out = run(&mut sh, &mut k, c);
            let errors = out.iter().filter(|l| l.starts_with("error: ")).count();
            prop_assert!(errors <= 1, "{c}: {out:?}");
            if errors == 1 {
                prop_assert!(out.last().unwrap().starts_with("error: "), "{c}: {out:?}");
                if c != "free all" {
                    prop_assert_eq!(k.b.mm_stat(), stat, "{} changed memory: {:?}", c, out);
                    prop_assert_eq!(sh.handles().len(), live, "{}", c);
                }
            }
            if let Err(e) = k.b.check() {
                prop_assert!(false, "{c}: {e}");
            }
        }
        run(&mut sh, &mut k, "free all");
        let ids: Vec<_> = sh.handles().iter().map(|(id, _)| id).collect();
        for id in ids {
            for _ in 0..100 {
                if sh.handles().get(id).is_err() {
                    break;
                }
                run(&mut sh, &mut k, &format!("put_page {id}"));
            }
        }
        prop_assert!(sh.handles().is_empty());
        prop_assert_eq!(run(&mut sh, &mut k, "memstat"), boot);
        prop_assert!(k.b.check().is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let (mut sh, mut k) = boot();
        feed_checked(&mut sh, &mut k, &input)?;
        still_works(&mut sh, &mut k)?;
        prop_assert!(crlf_only(&k.out));
    }

    #[test]
    fn command_soup_never_panics(pieces in proptest::collection::vec(piece(), 0..200)) {
        let (mut sh, mut k) = boot();
        let input: Vec<u8> = pieces.concat();
        feed_checked(&mut sh, &mut k, &input)?;
        still_works(&mut sh, &mut k)?;
        prop_assert!(crlf_only(&k.out));
    }

    #[test]
    fn any_line_via_run_line_gives_at_most_one_error(line in ".{0,300}") {
        let mut sh = Shell::new();
        let mut k = Fake::default();
        let r = sh.run_line(&line, &mut k);
        prop_assert!(error_lines(&k.out) <= 1);
        if r.is_err() {
            let last = k.out.trim_end_matches("\r\n").rsplit("\r\n").next().unwrap_or("");
            prop_assert!(last.starts_with("error: "), "{:?}", k.out);
        }
        prop_assert!(crlf_only(&k.out));
    }

    #[test]
    fn numbers_round_trip(v in any::<u64>(), shift in prop_oneof![Just(0u32), Just(10), Just(20), Just(30)]) {
        use shell::parse::parse_number;
        prop_assert_eq!(parse_number(&v.to_string()), Ok(v));
        prop_assert_eq!(parse_number(&format!("{v:#x}")), Ok(v));
        prop_assert_eq!(parse_number(&format!("{v:#X}").replacen("0X", "0x", 1)), Ok(v));
        let base = v >> shift;
        let suffix = match shift { 10 => "K", 20 => "m", 30 => "G", _ => "" };
        prop_assert_eq!(parse_number(&format!("{base}{suffix}")), Ok(base << shift));
        let junk = format!("{base}{suffix}x");
        prop_assert!(parse_number(&junk).is_err());
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}") {
        let _ = shell::parse::parse_number(&s);
        let _ = shell::parse::parse_handle(&s);
        let _ = shell::parse::tokenize(&s);
    }
}
