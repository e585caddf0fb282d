//! The shell end to end against a fake kernel: bytes in, terminal output out.

mod common;

use common::{boot, crlf_only, error_lines, run, type_in, Fake};
use mm::{PageFlags, Pfn, Zone};
use shell::{commands, Ctx, Handles, History, Object, Shell, PROMPT};

const KVIRT: u64 = mm::layout::DIRECT_MAP_BASE;

fn kmalloc_obj(i: u64) -> Object {
    Object::Kmalloc {
        virt: KVIRT + 0x1000 * i,
        phys: 0x1000 * i,
        size: 80,
        obj: 128,
    }
}

#[test]
fn banner_then_prompt() {
    let (_, k) = boot();
    assert_eq!(
        k.out,
        "memkern 0.1.0 shell (pvh boot). Type 'help' for commands.\r\nmm> "
    );
}

#[test]
fn typed_characters_are_echoed_and_line_runs() {
    let (mut sh, mut k) = boot();
    let out = type_in(&mut sh, &mut k, b"echo hi  there\r");
    assert_eq!(out, "echo hi  there\r\nhi there\r\nmm> ");
}

#[test]
fn empty_and_blank_lines_just_prompt() {
    let (mut sh, mut k) = boot();
    assert_eq!(type_in(&mut sh, &mut k, b"\r"), "\r\nmm> ");
    assert_eq!(type_in(&mut sh, &mut k, b"   \r"), "   \r\nmm> ");
    assert!(sh.history().is_empty());
}

#[test]
fn backspace_erases() {
    let (mut sh, mut k) = boot();
    let out = type_in(&mut sh, &mut k, b"echx\x7fo a\x08b\r");
    assert_eq!(out, "echx\x08 \x08o a\x08 \x08b\r\nb\r\nmm> ");
}

#[test]
fn ctrl_u_clears_the_line() {
    let (mut sh, mut k) = boot();
    let out = type_in(&mut sh, &mut k, b"rebo\x15echo ok\r");
    assert_eq!(
        out,
        "rebo\x08\x08\x08\x08    \x08\x08\x08\x08echo ok\r\nok\r\nmm> "
    );
    assert!(k.calls.is_empty());
}

#[test]
fn ctrl_c_abandons_the_line() {
    let (mut sh, mut k) = boot();
    let out = type_in(&mut sh, &mut k, b"reboot\x03");
    assert_eq!(out, "reboot^C\r\nmm> ");
    assert!(k.calls.is_empty(), "nothing ran");
    assert_eq!(run(&mut sh, &mut k, "echo after"), ["after"]);
}

#[test]
fn crlf_counts_once() {
    let (mut sh, mut k) = boot();
    let out = type_in(&mut sh, &mut k, b"echo a\r\necho b\r\n\n");
    assert_eq!(out, "echo a\r\na\r\nmm> echo b\r\nb\r\nmm> \r\nmm> ");
}

#[test]
fn history_arrows_rerun_lines() {
    let (mut sh, mut k) = boot();
    run(&mut sh, &mut k, "echo one");
    run(&mut sh, &mut k, "echo two");
    let out = type_in(&mut sh, &mut k, b"\x1b[A\x1b[A\r");
    assert!(out.ends_with("echo one\r\none\r\nmm> "), "{out:?}");
    let out = type_in(&mut sh, &mut k, b"\x1bOA\x1b[A\x1b[B!\r");
    assert!(
        out.ends_with("echo one!\r\none!\r\nmm> "),
        "Up, Up, Down: {out:?}"
    );
    let lines = run(&mut sh, &mut k, "history");
    assert_eq!(
        lines,
        [
            "   1  echo one",
            "   2  echo two",
            "   3  echo one",
            "   4  echo one!",
            "   5  history"
        ]
    );
}

#[test]
fn escape_sequences_are_swallowed() {
    let (mut sh, mut k) = boot();
    let out = type_in(
        &mut sh,
        &mut k,
        b"ec\x1b[15~ho\x1b[5~ \x1b]0;t\x07x\x1bOP\x1b[?1h\r",
    );
    assert_eq!(out, "echo x\r\nx\r\nmm> ");
}

#[test]
fn ten_thousand_byte_line_is_one_error_and_shell_survives() {
    let (mut sh, mut k) = boot();
    let mut input = vec![b'a'; 10_000];
    input.push(b'\r');
    let out = type_in(&mut sh, &mut k, &input);
    let tail = out
        .rsplit_once("\r\n")
        .map(|(a, b)| (a.rsplit_once("\r\n").map(|x| x.1), b));
    assert_eq!(
        tail,
        Some((Some("error: line too long (max 256 bytes)"), PROMPT))
    );
    assert_eq!(error_lines(&out), 1);
    assert_eq!(run(&mut sh, &mut k, "echo ok"), ["ok"]);
}

#[test]
fn binary_bytes_give_one_error_line() {
    let (mut sh, mut k) = boot();
    let out = type_in(&mut sh, &mut k, b"echo \x01\xff\x00hi\r");
    assert_eq!(
        out,
        "echo hi\r\nerror: line contains non-printable byte 0x01\r\nmm> "
    );
    let out = type_in(&mut sh, &mut k, b"\xc3\xa9\r");
    assert_eq!(
        out,
        "\r\nerror: line contains non-printable byte 0xc3\r\nmm> "
    );
    assert!(sh.history().is_empty(), "bad lines are not remembered");
}

#[test]
fn help_lists_every_command_in_aligned_columns() {
    let (mut sh, mut k) = boot();
    let lines = run(&mut sh, &mut k, "help");
    assert_eq!(lines[0], "commands (type 'help CMD' for details):");
    let mut rest = lines[1..].iter();
    let mut column = None;
    for c in commands() {
        let first = rest.next().expect("a line per command");
        assert!(first.starts_with(&format!("  {}", c.usage)), "{first}");
        // A long usage gets a line of its own; the summary follows, aligned.
        let line = if first.ends_with(c.summary) {
            first
        } else {
            assert_eq!(first.trim_end(), format!("  {}", c.usage));
            rest.next().expect("the summary line")
        };
        assert!(line.ends_with(c.summary), "{line}");
        let col = line.len() - c.summary.len();
        assert_eq!(*column.get_or_insert(col), col, "summaries aligned: {line}");
    }
    assert_eq!(rest.next(), None);
    for line in &lines {
        assert!(line.len() <= 80, "fits 80 columns: {line:?}");
    }
}

#[test]
fn help_texts_fit_80_columns() {
    let (mut sh, mut k) = boot();
    for c in commands() {
        for line in run(&mut sh, &mut k, &format!("help {}", c.name)) {
            assert!(line.len() <= 80, "help {}: {line:?}", c.name);
        }
    }
}

#[test]
fn help_cmd_explains_each_command() {
    let (mut sh, mut k) = boot();
    for c in commands() {
        let lines = run(&mut sh, &mut k, &format!("help {}", c.name));
        assert_eq!(lines[0], format!("usage: {}", c.usage));
        assert_eq!(lines[1], c.summary);
        assert_eq!(
            lines.len(),
            2 + c.help.lines().filter(|_| !c.help.is_empty()).count()
        );
    }
    assert_eq!(run(&mut sh, &mut k, "HELP Echo")[0], "usage: echo [ARG...]");
}

#[test]
fn unknown_command() {
    let (mut sh, mut k) = boot();
    assert_eq!(
        run(&mut sh, &mut k, "foo bar"),
        ["error: unknown command 'foo' (try 'help')"]
    );
    assert_eq!(
        run(&mut sh, &mut k, "help foo"),
        ["error: unknown command 'foo' (try 'help')"]
    );
    assert_eq!(
        run(&mut sh, &mut k, "\"\""),
        ["error: unknown command '' (try 'help')"]
    );
}

#[test]
fn every_error_text() {
    let (mut sh, mut k) = boot();
    let cases: &[(&str, &str)] = &[
        (
            "echo \"open",
            "error: unterminated quote (missing closing \")",
        ),
        (
            "help a b",
            "error: unexpected argument 'b' (usage: help [CMD])",
        ),
        (
            "history 1",
            "error: unexpected argument '1' (usage: history)",
        ),
        ("clear x", "error: unexpected argument 'x' (usage: clear)"),
        (
            "version now",
            "error: unexpected argument 'now' (usage: version)",
        ),
        (
            "reboot -f",
            "error: unexpected argument '-f' (usage: reboot)",
        ),
        (
            "poweroff 0",
            "error: unexpected argument '0' (usage: poweroff)",
        ),
        (
            "memstat x",
            "error: unexpected argument 'x' (usage: memstat)",
        ),
        (
            "handles x",
            "error: unexpected argument 'x' (usage: handles)",
        ),
        ("trap", "error: missing KIND (usage: trap de|ud|gp|pf|bp)"),
        (
            "trap xx",
            "error: unknown trap kind 'xx' (expected de, ud, gp, pf or bp)",
        ),
        (
            "trap pf pf",
            "error: unexpected argument 'pf' (usage: trap de|ud|gp|pf|bp)",
        ),
        (
            "free",
            "error: missing #N|ADDR|all (usage: free #N|ADDR|all)",
        ),
        (
            "free all now",
            "error: unexpected argument 'now' (usage: free #N|ADDR|all)",
        ),
        (
            "free #1 #2",
            "error: unexpected argument '#2' (usage: free #N|ADDR|all)",
        ),
        (
            "free #0",
            "error: bad handle '#0' (expected #N with N from 1, like #1)",
        ),
        (
            "free #x",
            "error: bad handle '#x' (expected #N with N from 1, like #1)",
        ),
        (
            "free x12",
            "error: bad #N|ADDR|all 'x12' (expected #N or an address like 0x1000)",
        ),
        (
            "free 0x1_0000_0000_0000_0000",
            "error: number '0x1_0000_0000_0000_0000' is too large (max 0xffffffffffffffff)",
        ),
        ("free #1", "error: no handle #1 (see 'handles')"),
        (
            "free 0x1000",
            "error: no live handle at 0x0000000000001000 (see 'handles')",
        ),
        ("reboot", "error: reboot failed: no reset method worked"),
        (
            "poweroff",
            "error: poweroff failed: isa-debug-exit not present",
        ),
        ("trap gp", "error: trap gp failed: fake kernel cannot fault"),
    ];
    for &(line, want) in cases {
        let lines = run(&mut sh, &mut k, line);
        assert_eq!(lines.last().map(String::as_str), Some(want), "{line}");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("error: ")).count(),
            1,
            "{line}"
        );
    }
    assert_eq!(
        k.calls,
        ["reboot", "poweroff", "trap gp"],
        "failing argument checks call nothing"
    );
}

#[test]
fn reboot_poweroff_trap_call_the_platform() {
    let (mut sh, mut k) = boot();
    assert_eq!(
        run(&mut sh, &mut k, "reboot"),
        ["rebooting", "error: reboot failed: no reset method worked"]
    );
    assert_eq!(run(&mut sh, &mut k, "poweroff")[0], "powering off");
    assert_eq!(
        run(&mut sh, &mut k, "trap BP"),
        [
            "raising #BP (breakpoint, vector 3)",
            "returned from the #BP handler"
        ]
    );
    assert_eq!(
        run(&mut sh, &mut k, "trap #pf")[0],
        "raising #PF (page fault, vector 14)"
    );
    assert_eq!(k.calls, ["reboot", "poweroff", "trap bp", "trap pf"]);
}

#[test]
fn version_and_clear() {
    let (mut sh, mut k) = boot();
    assert_eq!(
        run(&mut sh, &mut k, "version"),
        ["memkern 0.1.0", "boot: pvh", "cmdline: console=ttyS0 quiet"]
    );
    let out = type_in(&mut sh, &mut k, b"clear\r");
    assert_eq!(out, "clear\r\n\x1b[2J\x1b[Hmm> ");
    assert_eq!(k.calls, ["clear_screen"]);
}

#[test]
fn fb_prints_the_mode_or_one_error() {
    let (mut sh, mut k) = boot();
    let out = run(&mut sh, &mut k, "fb");
    assert_eq!(
        out,
        ["error: no framebuffer: this machine has a serial console only"]
    );
    k.fb = Some(shell::FbMode {
        width: 800,
        height: 600,
        pitch: 1600,
        bpp: 16,
        masks: [(5, 11), (6, 5), (5, 0)],
        phys: 0xfd00_0000,
        source: "limine",
        cell: (7, 16),
        text: (114, 37),
    });
    assert_eq!(
        run(&mut sh, &mut k, "fb"),
        [
            "fb: 800x600 pitch=1600 bpp=16 format=r5@11,g6@5,b5@0 phys=0x00000000fd000000 source=limine",
            "text: 114x37 cells of 7x16 px"
        ]
    );
    assert_eq!(
        run(&mut sh, &mut k, "fb x")[0].split(':').next(),
        Some("error")
    );
}

#[test]
fn view_takes_pages_slab_off_stats_or_on() {
    let (mut sh, mut k) = boot();
    assert_eq!(
        run(&mut sh, &mut k, "view slab"),
        ["error: view: no framebuffer: this machine has a serial console only"]
    );
    k.fb = Some(shell::FbMode {
        width: 1024,
        height: 768,
        pitch: 4096,
        bpp: 32,
        masks: [(8, 16), (8, 8), (8, 0)],
        phys: 0xfd00_0000,
        source: "pci-vga",
        cell: (7, 16),
        text: (146, 48),
    });
    for (line, what) in [
        ("view", "Pages"),
        ("view on", "Pages"),
        ("view pages", "Pages"),
        ("view slab", "Slab"),
        ("view stats", "Stats"),
        ("view off", "Off"),
    ] {
        assert_eq!(run(&mut sh, &mut k, line), [format!("view {what}")]);
    }
    let bad = run(&mut sh, &mut k, "view sideways");
    assert_eq!(bad.len(), 1);
    assert!(bad[0].starts_with("error: view: expected pages, slab, off or stats"));
    assert_eq!(run(&mut sh, &mut k, "view slab x").len(), 1);
    assert_eq!(k.calls.iter().filter(|c| c.starts_with("view")).count(), 6);
}

#[test]
fn version_says_why_the_kernel_is_tainted() {
    let (mut sh, mut k) = boot();
    k.tainted = Some("D (oops: 1 CPU exception in kernel code with no fixup)".into());
    assert_eq!(
        run(&mut sh, &mut k, "version"),
        [
            "memkern 0.1.0",
            "boot: pvh",
            "cmdline: console=ttyS0 quiet",
            "tainted: D (oops: 1 CPU exception in kernel code with no fixup)"
        ]
    );
}

#[test]
fn memstat_prints_every_field() {
    let (mut sh, mut k) = boot();
    assert_eq!(
        run(&mut sh, &mut k, "memstat"),
        [
            "total: 134217728",
            "used: 8388608",
            "free: 125829120",
            "shared: 0",
            "cache_used: 4096",
            "cache_free: 12288",
            "available: 125841408",
            "zone DMA: total=16777216 used=1048576 free=15728640 free_pages=3840 managed_pages=4096 \
             min_pages=16 low_pages=20 high_pages=24",
            "zone NORMAL: total=117440512 used=7340032 free=110100480 free_pages=26880 \
             managed_pages=28672 min_pages=112 low_pages=140 high_pages=168",
        ]
    );
}

#[test]
fn handle_numbers_are_never_reused() {
    let (mut sh, mut k) = boot();
    assert_eq!(run(&mut sh, &mut k, "handles"), ["no live handles"]);
    let a = sh.handles_mut().insert(kmalloc_obj(1)).unwrap();
    let b = sh.handles_mut().insert(kmalloc_obj(2)).unwrap();
    assert_eq!((a.0, b.0), (1, 2));
    assert_eq!(
        run(&mut sh, &mut k, "free #1"),
        ["freed #1 kmalloc size=80 obj=128 virt=0xffff800000001000 phys=0x0000000000001000"]
    );
    assert_eq!(k.calls, ["kfree 0xffff800000001000"]);
    assert_eq!(
        run(&mut sh, &mut k, "free #1"),
        ["error: handle #1 was already freed"]
    );
    let c = sh.handles_mut().insert(kmalloc_obj(3)).unwrap();
    assert_eq!(c.0, 3);
    assert_eq!(
        run(&mut sh, &mut k, "handles"),
        [
            "#2 kmalloc size=80 obj=128 virt=0xffff800000002000 phys=0x0000000000002000",
            "#3 kmalloc size=80 obj=128 virt=0xffff800000003000 phys=0x0000000000003000",
        ]
    );
    assert_eq!(
        run(&mut sh, &mut k, "free #9"),
        ["error: no handle #9 (see 'handles')"]
    );
}

#[test]
fn free_by_address_calls_the_matching_release() {
    let (mut sh, mut k) = boot();
    let h = sh.handles_mut();
    h.insert(kmalloc_obj(1)).unwrap();
    h.insert(Object::Pages {
        pfn: Pfn(0x200),
        n: 3,
        zone: Zone::Dma,
        flags: PageFlags::KERNEL,
        virt: None,
    })
    .unwrap();
    h.insert(Object::LinuxPages {
        pfn: Pfn(0x400),
        order: 1,
        zone: Zone::Normal,
        virt: Some(KVIRT + 0x40_0000),
    })
    .unwrap();
    run(&mut sh, &mut k, "free 0x200000");
    run(&mut sh, &mut k, "free 0xffff_8000_0000_1000");
    run(&mut sh, &mut k, "free 0x400000");
    assert_eq!(
        k.calls,
        [
            "free_pages 0x200 3",
            "kfree 0xffff800000001000",
            "free_pages_order 0x400 1",
        ]
    );
    assert!(sh.handles().is_empty());
}

#[test]
fn free_all_releases_newest_first_and_reports_failures_in_one_line() {
    let (mut sh, mut k) = boot();
    let h = sh.handles_mut();
    h.insert(Object::Cache {
        name: "c".into(),
        size: 24,
        obj: 32,
        align: 8,
        flags: mm::slab::SlabFlags::HWCACHE_ALIGN,
        debug: mm::slab::DebugFlags::NONE,
    })
    .unwrap();
    h.insert(Object::CacheObj {
        cache: "c".into(),
        size: 24,
        virt: KVIRT + 0x5000,
        phys: 0x5000,
    })
    .unwrap();
    h.insert(kmalloc_obj(6)).unwrap();
    k.fail_addr = Some(KVIRT + 0x6000);
    let lines = run(&mut sh, &mut k, "free all");
    assert_eq!(
        lines,
        [
            "freed #2 cache_obj cache=c size=24 virt=0xffff800000005000 phys=0x0000000000005000",
            "freed #1 cache cache=c size=24 obj=32 align=8 flags=SLAB_HWCACHE_ALIGN debug=-",
            "error: freed 2 of 3 handles; could not free #3 (0xffff800000006000 is not a live object)",
        ]
    );
    assert_eq!(sh.handles().len(), 1, "the failed handle stays");
    assert_eq!(
        run(&mut sh, &mut k, "free #3"),
        ["error: cannot free #3 kmalloc: 0xffff800000006000 is not a live object"]
    );
    k.fail_addr = None;
    assert_eq!(
        run(&mut sh, &mut k, "FREE ALL").last().unwrap(),
        "freed 1 handle"
    );
    assert_eq!(run(&mut sh, &mut k, "free all"), ["no live handles"]);
    assert_eq!(
        k.calls,
        [
            "kfree 0xffff800000006000",
            "kmem_cache_free c 0xffff800000005000",
            "kmem_cache_destroy c",
            "kfree 0xffff800000006000",
            "kfree 0xffff800000006000",
        ]
    );
}

#[test]
fn unsupported_release_is_an_error_and_keeps_the_handle() {
    let (mut sh, mut k) = boot();
    // The fake kernel has no MOS page_decref.
    sh.handles_mut()
        .insert(Object::MosPage {
            pfn: Pfn(0x300),
            zone: Zone::Normal,
            virt: Some(KVIRT + 0x30_0000),
        })
        .unwrap();
    assert_eq!(
        run(&mut sh, &mut k, "free #1"),
        ["error: cannot free #1 mos_page: not supported by this kernel"]
    );
    assert_eq!(sh.handles().len(), 1);
}

#[test]
fn ambiguous_address_must_be_freed_by_handle() {
    let (mut sh, mut k) = boot();
    let h = sh.handles_mut();
    // Two handles on the frame at 1 MiB, neither with a virtual address.
    h.insert(Object::LinuxPages {
        pfn: Pfn(0x100),
        order: 0,
        zone: Zone::Unmapped,
        virt: None,
    })
    .unwrap();
    h.insert(Object::Pages {
        pfn: Pfn(0x100),
        n: 1,
        zone: Zone::Unmapped,
        flags: PageFlags::EMPTY,
        virt: None,
    })
    .unwrap();
    assert_eq!(
        run(&mut sh, &mut k, "free 1M"),
        ["error: 0x0000000000100000 matches several handles (#1, #2); free by handle"]
    );
    assert!(k.calls.is_empty());
}

/// `free all` is the one bulk command; its help says how it fails (issue #9).
#[test]
fn help_free_says_free_all_ends_with_one_error_line() {
    let (mut sh, mut k) = boot();
    let help = run(&mut sh, &mut k, "help free").join("\n");
    assert!(
        help.contains("the one bulk command")
            && help.contains("single error: line naming the handles it could not release"),
        "{help}"
    );
}

#[test]
fn ctx_add_gives_a_handle_and_prints_the_line() {
    let mut k = Fake::default();
    let mut handles = Handles::new();
    let history = History::default();
    let mut ctx = Ctx::new(&mut k, &mut handles, &history);
    let id = ctx.add(kmalloc_obj(0x1e4c).clone()).unwrap();
    assert_eq!(id.0, 1);
    assert_eq!(
        k.out,
        "#1 kmalloc size=80 obj=128 virt=0xffff800001e4c000 phys=0x0000000001e4c000\r\n"
    );
}

#[test]
fn run_line_prints_errors_and_skips_history() {
    let mut sh = Shell::new();
    let mut k = Fake::default();
    assert!(sh.run_line("echo hi", &mut k).is_ok());
    let e = sh.run_line("nope", &mut k).unwrap_err();
    assert_eq!(e.message(), "unknown command 'nope' (try 'help')");
    assert_eq!(
        k.out,
        "hi\r\nerror: unknown command 'nope' (try 'help')\r\n"
    );
    assert!(sh.history().is_empty());
}

#[test]
fn output_uses_crlf_everywhere() {
    let (mut sh, mut k) = boot();
    sh.handles_mut().insert(kmalloc_obj(1)).unwrap();
    for line in [
        "help",
        "help trap",
        "help free",
        "memstat",
        "handles",
        "version",
        "history",
        "bogus",
        "free all",
    ] {
        run(&mut sh, &mut k, line);
    }
    assert!(crlf_only(&k.out));
}
