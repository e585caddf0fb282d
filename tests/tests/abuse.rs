//! The serial fuzzer: a seeded random mix of well-formed commands (on live and
//! dead handles, with random and hostile arguments) and garbage lines, over the
//! real serial line, against a kernel booted with `mm.check=1` on a small
//! machine (128 MiB, `mm.lowmem=64M`: all three zones), so that every command is
//! followed by the invariant check.
//!
//! After every line: the prompt comes back, at most one `error:` line, and no
//! internal error text (`invariant`, `available count`, `panic`, `!!!`, `CPU
//! exception`; the last two are expected after a `trap`). Every [`CHECKPOINT`]
//! lines and at the end: `free all` succeeds and `memstat` is exactly the boot
//! `memstat`.
//!
//! The seed is printed at the start (and in any failure);
//! `MEMKERN_FUZZ_SEED=<n>` replays it, `MEMKERN_FUZZ_LINES=<n>` runs longer
//! (default [`LINES`]), and `MEMKERN_FUZZ_TRACE=1` prints every line sent.
//!
//! [`OOM_PRESSURE`] adds runs of the largest requests until memory runs out:
//! the zones' watermarks keep the kernel heap's reserve, so the shell keeps
//! answering and every later line must still behave.
//!
//! A second scenario checks the `check` command on the default 2 GiB machine
//! and reports how long one check takes there.

use std::time::{Duration, Instant};
use systest::*;

/// Lines per run by default.
const LINES: u64 = 2000;
/// `free all` + `memstat` comparison every this many lines.
const CHECKPOINT: u64 = 200;
/// Bursts of the largest allocations until the zones are exhausted.
const OOM_PRESSURE: bool = true;

/// The seeded generator (`mm::sim::Rng`, xorshift64*).
use mm::sim::Rng;

const ZONES: &[&str] = &["DMA", "NORMAL", "UNMAPPED", "DMX", ""];
const GFPS: &[&str] = &[
    "",
    "GFP_KERNEL",
    "GFP_DMA",
    "__GFP_ZERO",
    "__GFP_HIGHMEM",
    "GFP_ATOMIC",
    "GFP_BOGUS",
];

/// What the fuzzer knows of the shell: the handles it saw created and not
/// freed, with their addresses.
#[derive(Default)]
struct Seen {
    live: Vec<(u64, Option<u64>, Option<u64>)>,
    issued: u64,
}

impl Seen {
    /// Learns from one command's output.
    fn learn(&mut self, out: &str) {
        for l in out.lines() {
            if let Some(rest) = l.strip_prefix('#') {
                let Some(n) = rest.split(' ').next().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let virt = field(l, "virt").and_then(num);
                let pfn = field(l, "pfn").and_then(num);
                self.live.push((n, virt, pfn));
                self.issued = self.issued.max(n);
            } else if let Some(rest) = l.strip_prefix("freed #") {
                if let Some(n) = rest.split(' ').next().and_then(|n| n.parse::<u64>().ok()) {
                    self.live.retain(|h| h.0 != n);
                }
            }
        }
    }

    fn handle(&self, r: &mut Rng) -> String {
        if !self.live.is_empty() && r.below(4) != 0 {
            format!("#{}", self.live[r.below(self.live.len() as u64) as usize].0)
        } else {
            format!("#{}", r.below(self.issued + 3))
        }
    }

    /// A live handle's address (maybe plus an interior offset), or a random one.
    fn addr(&self, r: &mut Rng) -> String {
        let v = (!self.live.is_empty())
            .then(|| self.live[r.below(self.live.len() as u64) as usize].1)
            .flatten();
        let a = match (r.below(4), v) {
            (0, Some(v)) => v,
            (1, Some(v)) => v + [8, 32, 64, 4096][r.below(4) as usize],
            (2, _) => mm::layout::DIRECT_MAP_BASE + (r.below(1 << 26) << 4),
            _ => r.below(1 << 27) & !0xfff,
        };
        format!("{a:#018x}")
    }

    fn pfn(&self, r: &mut Rng) -> String {
        let p = (!self.live.is_empty())
            .then(|| self.live[r.below(self.live.len() as u64) as usize].2)
            .flatten();
        match p {
            Some(p) if r.below(3) != 0 => format!("{:#x}", p + r.below(2)),
            _ => format!("{:#x}", r.below(0x8000)),
        }
    }
}

fn size(r: &mut Rng) -> String {
    match r.below(8) {
        0..=3 => (1 + r.below(300)).to_string(),
        4 | 5 => (1 + r.below(8192)).to_string(),
        6 => format!("{}K", 1 + r.below(256)),
        _ => ["0", "2M", "-1", "0x", "1G", "99999999999999999999"][r.below(6) as usize].to_string(),
    }
}

fn line(r: &mut Rng, s: &Seen) -> String {
    let c = format!("c{}", r.below(3));
    let p = format!("p{}", r.below(3));
    match r.below(54) {
        0 | 1 => format!(
            "pages {} {} {}",
            [1, 2, 3, 4, 16, 63, 0, 64][r.below(8) as usize],
            r.pick(ZONES),
            r.pick(&["", "KERNEL", "SHARED", "BOGUS"])
        ),
        2 => format!("alloc_pages {} {}", r.below(11), r.pick(GFPS)),
        3 => format!("get_free_pages {} {}", r.below(12), r.pick(GFPS)),
        4 => r
            .pick(&[
                "alloc_page",
                "get_free_page",
                "get_zeroed_page",
                "page_alloc",
            ])
            .into(),
        5..=7 => format!("kmalloc {} {}", size(r), r.pick(GFPS)),
        8 => format!("kzalloc {}", size(r)),
        9 | 10 => format!("free {}", s.handle(r)),
        11 => format!("kfree {}", s.handle(r)),
        12 => format!("kfree {}", s.addr(r)),
        13 => format!("free {}", s.addr(r)),
        14 => format!("free_pages {} {}", s.pfn(r), r.below(9)),
        15 => format!("__free_pages {} {}", s.pfn(r), r.below(4)),
        16 => format!(
            "{} {}",
            r.pick(&["page", "page_decref", "put_page"]),
            s.handle(r)
        ),
        17 => format!("page {}", s.pfn(r)),
        18 => format!("dump {} {} {}", s.handle(r), r.below(300), r.below(300)),
        19 => format!("bzero {} {} {}", s.handle(r), r.below(300), r.below(300)),
        20 => format!("bcopy {} {} {}", s.handle(r), s.handle(r), r.below(300)),
        21 => format!(
            "cache create {c} {} {} {}",
            size(r),
            ["", "0", "64", "3"][r.below(4) as usize],
            r.pick(&["", "SLAB_HWCACHE_ALIGN", "SLAB_CACHE_DMA"])
        ),
        22 | 23 => format!("cache alloc {c}"),
        24 => format!("cache free {c} {}", s.handle(r)),
        25 => format!("cache {} {c}", r.pick(&["destroy", "shrink"])),
        26 => format!("mempool create {p} {} kmalloc {}", r.below(8), size(r)),
        27 => format!("mempool create {p} {} cache {c}", r.below(8)),
        28 => format!("mempool alloc {p}"),
        29 => format!("mempool {} {p}", r.pick(&["free", "destroy", "info"])),
        30 => r
            .pick(&[
                "buddyinfo",
                "zoneinfo",
                "memstat",
                "handles",
                "slabinfo",
                "caches",
                "history",
                "pagemap",
                "check",
                "slub_debug validate",
            ])
            .into(),
        31 => r
            .pick(&[
                "trap pf", "trap gp", "trap ud", "trap de", "trap bp", "trap zz",
            ])
            .into(),
        32 => "free all".into(),
        // Raw access and I/O (never `force`: a forced write may hit the kernel).
        33 => match r.below(4) {
            0 => format!("peek {} {}", s.addr(r), r.below(300)),
            1 => format!(
                "poke {} {:#x} {}",
                s.addr(r),
                r.below(256),
                r.pick(&["", "1", "8", "3"])
            ),
            2 => format!("fill {} {} {:#x}", s.addr(r), r.below(8192), r.below(256)),
            _ => format!("copy {} {} {}", s.addr(r), s.addr(r), r.below(8192)),
        },
        34 => format!(
            "{} {}",
            r.pick(&["readb", "readw", "readl", "readq", "walk"]),
            s.addr(r)
        ),
        35 => match r.below(3) {
            0 => format!(
                "request {} {:#x} {} r{}",
                r.pick(&["io", "mem", "irq"]),
                [0x80u64, 0x510, 0x3f8, 0x600, 0xfed0_0000, 0x1000][r.below(6) as usize],
                r.below(4096),
                r.below(3)
            ),
            1 => format!(
                "release {} {:#x} {}",
                r.pick(&["io", "mem"]),
                [0x80u64, 0x510, 0x3f8, 0x600, 0xfed0_0000, 0x20][r.below(6) as usize],
                r.below(9)
            ),
            // Ports whose reads change nothing (never COM1's data register).
            _ => format!(
                "{} {:#x}",
                r.pick(&["inb", "inw", "regions"]),
                [0x80, 0x61, 0x511][r.below(3) as usize]
            ),
        },
        36 => {
            // The user half and the unused kernel gap; the shell refuses the rest.
            let virt = [
                0x40_0000 + (r.below(64) << 12),
                0xffff_e100_0000_0000 + (r.below(1024) << 12),
                0xffff_c000_0000_0000,
            ][r.below(3) as usize];
            match r.below(4) {
                0 => format!(
                    "map {virt:#x} {} {} {} {}",
                    s.handle(r),
                    [4096, 8192, 0x20_0000, 0][r.below(4) as usize],
                    r.pick(&["", "rw", "ro", "rwx", "bogus"]),
                    r.pick(&["", "4k", "2m"])
                ),
                1 => format!(
                    "unmap {virt:#x} {}",
                    [4096, 8192, 0x20_0000, 0][r.below(4) as usize]
                ),
                2 => format!("{} {virt:#x}", r.pick(&["lookup", "remove", "walk"])),
                _ => format!(
                    "insert {} {virt:#x} {}",
                    s.pfn(r),
                    r.pick(&["", "rw", "ro"])
                ),
            }
        }
        37 => match r.below(3) {
            0 => "aspace new".into(),
            1 => format!("aspace use {}", s.handle(r)),
            _ => r.pick(&["aspace use kernel", "aspace", "map", "wx"]).into(),
        },
        38 => format!("alloc_pages_bulk {} {}", r.below(80), r.pick(GFPS)),
        39 => format!("cache alloc_bulk {c} {}", r.below(40)),
        40 => format!(
            "{} {}-{}",
            r.pick(&["free_pages_bulk", "cache free_bulk c0"]),
            s.handle(r),
            s.handle(r)
        ),
        41 => format!(
            "{} {}",
            r.pick(&["vmalloc", "vzalloc"]),
            r.pick(&["1", "4096", "64K", "1M", "0", "64G"])
        ),
        42 => {
            let v = mm::layout::VMALLOC.start + (r.below(64) << 12);
            match r.below(4) {
                0 => format!("vfree {}", s.handle(r)),
                1 => format!("vfree {v:#x}"),
                2 => format!("vmalloc_to_page {v:#x}"),
                _ => format!("iounmap {}", s.handle(r)),
            }
        }
        43 => format!(
            "ioremap {:#x} {} {}",
            [0xfee0_0000u64, 0xfed0_0000, 0x1000][r.below(3) as usize],
            r.pick(&["4096", "1", "0", "8K"]),
            r.pick(&["", "wc"])
        ),
        44 => format!(
            "pgdir_walk {:#x} {}",
            [0x40_0000u64, 0xffff_e100_0000_0000, 0xffff_8000_0010_0000][r.below(3) as usize],
            r.pick(&["", "create"])
        ),
        45 => r.pick(&["vmallocinfo", "map", "handles"]).into(),
        _ => {
            // Garbage: printable, a few control bytes, high bytes; never CR, LF,
            // ESC or Ctrl-C, which have meanings of their own, nor '!' (an
            // error line quoting the garbage must not look like a report).
            let n = 1 + r.below(200);
            (0..n)
                .map(|_| match r.below(10) {
                    0 => char::from([0x01u8, 0x02, 0x08, 0x7f, 0x15][r.below(5) as usize]),
                    1 => char::from_u32(0x80 + r.below(0x80) as u32).unwrap(),
                    _ => match char::from(0x20 + r.below(0x5f) as u8) {
                        '!' => '?',
                        c => c,
                    },
                })
                .collect()
        }
    }
}

/// A burst of the largest requests, until memory runs out ([`OOM_PRESSURE`]).
fn oom_burst(r: &mut Rng) -> Vec<String> {
    let big = [
        "kmalloc 1M",
        "kmalloc 512K",
        "pages 63 NORMAL",
        "pages 63 DMA",
        "alloc_pages 10",
        "get_free_pages 9",
        "page_alloc",
        "kmalloc 64",
    ];
    (0..40 + r.below(60))
        .map(|_| r.pick(&big).to_string())
        .collect()
}

fn env_u64(name: &str) -> Option<u64> {
    let s = std::env::var(name).ok()?;
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn lines() -> u64 {
    env_u64("MEMKERN_FUZZ_LINES").unwrap_or(LINES)
}

fn random_lines(vm: &mut Vm, seed: u64) -> Check {
    let n = lines();
    let t0 = Instant::now();
    let c = vm.ok("check")?;
    ensure(c.contains("(check mode on)"), || {
        format!("mm.check=1 did not turn check mode on:\n{c}")
    })?;
    let boot = vm.ok("memstat")?;
    let mut r = Rng(seed);
    let mut s = Seen::default();
    let (mut handles, mut errors, mut faults) = (0u64, 0u64, 0u64);
    let mut pending: Vec<String> = Vec::new();
    let trace = std::env::var_os("MEMKERN_FUZZ_TRACE").is_some();
    let ctx = |i: u64, l: &str| {
        format!(
            "seed {seed:#x}, line {i} {l:?} (replay: MEMKERN_FUZZ_SEED={seed:#x} \
             MEMKERN_FUZZ_LINES={})",
            i + 1
        )
    };
    for i in 0..n {
        if pending.is_empty() && OOM_PRESSURE && r.below(100) == 0 {
            pending = oom_burst(&mut r);
        }
        let l = pending.pop().unwrap_or_else(|| line(&mut r, &s));
        if trace {
            eprintln!("fuzz_serial: {i}: {l}");
        }
        vm.send(&format!("{l}\r"))
            .map_err(|e| format!("{}: {e}", ctx(i, &l)))?;
        let raw = vm
            .expect_quick(PROMPT, Duration::from_secs(30))
            .map_err(|e| format!("{}: no prompt: {e}", ctx(i, &l)))?
            .replace('\r', "");
        // What the command printed: everything after the echo of the line.
        let out = raw.split_once('\n').map_or("", |(_, o)| o);
        let trap = l.starts_with("trap ");
        let bad = ["invariant", "available count", "panic", "not recoverable"]
            .into_iter()
            .chain((!trap).then_some("!!!"))
            .chain((!trap).then_some("CPU exception"))
            .find(|b| out.contains(b));
        if let Some(b) = bad {
            return Err(format!("{}: internal error text {b:?}:\n{out}", ctx(i, &l)));
        }
        let errs = out.lines().filter(|x| x.starts_with("error: ")).count();
        if errs > 1 {
            return Err(format!("{}: {errs} error lines:\n{out}", ctx(i, &l)));
        }
        s.learn(out);
        handles += out.lines().filter(|x| x.starts_with('#')).count() as u64;
        errors += errs as u64;
        faults += out.matches("!!! CPU exception").count() as u64;
        if (i + 1) % CHECKPOINT == 0 || i + 1 == n {
            vm.ok("free all")
                .map_err(|e| format!("{}: checkpoint: {e}", ctx(i, &l)))?;
            s.live.clear();
            let now = vm.ok("memstat")?;
            ensure(now == boot, || {
                format!(
                    "{}: memstat after free all differs from boot:\nboot:\n{boot}\nnow:\n{now}",
                    ctx(i, &l)
                )
            })?;
        }
    }
    ensure(
        n < 1000 || (handles * 10 >= n && errors * 10 >= n && faults >= 3),
        || format!("seed {seed:#x}: too tame: {handles} handles, {errors} errors, {faults} faults"),
    )?;
    let out = vm.ok("echo still alive")?;
    ensure(out.contains("still alive"), || out)?;
    eprintln!(
        "fuzz_serial: seed {seed:#x}: {n} lines in {:.1} s ({handles} handles, {errors} error \
         lines, {faults} CPU exceptions), no violation",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn fuzz_serial_random_lines() -> Outcome {
    let seed = env_u64("MEMKERN_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1
    });
    let n = lines();
    eprintln!(
        "fuzz_serial: seed {seed:#x}, {n} lines (replay: MEMKERN_FUZZ_SEED={seed:#x}, longer: \
         MEMKERN_FUZZ_LINES=N)"
    );
    let o = Opts {
        life: Duration::from_secs(120 + n / 10),
        ..Opts::default()
            .mem("128M")
            .cmdline("mm.check=1 mm.lowmem=64M")
    };
    with_vm(o, |vm| random_lines(vm, seed))
}

/// `mm.check=1` turns check mode on at boot; `check` passes on the default
/// 2 GiB machine, with handles of every allocator; its cost is reported.
fn check_command_on_2g(vm: &mut Vm) -> Check {
    let out = vm.ok("check")?;
    ensure(
        out.starts_with("check: ok: page allocator, ") && out.contains("(check mode on)"),
        || format!("check at boot:\n{out}"),
    )?;
    for l in [
        "kmalloc 80",
        "pages 3 DMA",
        "alloc_pages 2 __GFP_HIGHMEM",
        "cache create c 100",
        "cache alloc c",
        "mempool create p 2 kmalloc 64",
        "mempool alloc p",
    ] {
        vm.ok(l)?;
    }
    // Timed with expect_quick (rexpect itself polls every 100 ms).
    let time = |vm: &mut Vm, line: &str, want: &str| -> Result<Duration, String> {
        let n = 10;
        let t = Instant::now();
        for _ in 0..n {
            vm.send(&format!("{line}\r"))?;
            let out = vm.expect_quick(PROMPT, Duration::from_secs(30))?;
            ensure(out.contains(want), || out.clone())?;
        }
        Ok(t.elapsed() / n)
    };
    let check = time(vm, "check", " 7 handles (check mode on)")?;
    let echo_on = time(vm, "echo x", "x")?;
    vm.ok("check off")?;
    let echo_off = time(vm, "echo x", "x")?;
    eprintln!(
        "check_command: under TCG on 2 GiB (524288 frames), a 'check' line takes {:.1} ms, \
         'echo' {:.1} ms with check mode on and {:.1} ms without",
        check.as_secs_f64() * 1e3,
        echo_on.as_secs_f64() * 1e3,
        echo_off.as_secs_f64() * 1e3
    );
    vm.ok("free all")?;
    let out = vm.ok("check")?;
    ensure(out.contains(" 0 handles (check mode off)"), || out)
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![
        fuzz_serial_random_lines,
        check_command_on_2g with |b| with_vm(Opts::default().cmdline("mm.check=1"), b),
    ]
}
