//! Abuse over the real serial line: a seeded random mix of well-formed commands
//! with random arguments and garbage lines. After every line the prompt must come
//! back; at the end `free all` must bring `memstat` back to its boot value.

use crate::pages::memstat;
use systest::*;

/// A small deterministic generator (xorshift64*), so failures can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

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

fn number(r: &mut Rng) -> String {
    match r.below(6) {
        0 => r.below(70).to_string(),
        1 => format!("{:#x}", r.below(1 << 20)),
        2 => format!("{}K", r.below(2048)),
        3 => format!("{}M", r.below(3)),
        4 => format!(
            "{:#018x}",
            0xffff_8000_0000_0000u64 + (r.below(1 << 24) << 4)
        ),
        _ => ["-1", "0x", "99999999999999999999999", "1G", "#1", "#7"][r.below(6) as usize]
            .to_string(),
    }
}

fn line(r: &mut Rng, handles: u64) -> String {
    let h = format!("#{}", 1 + r.below(handles.max(1) + 2));
    match r.below(22) {
        0 => format!("pages {} {}", number(r), r.pick(ZONES)),
        1 => format!("alloc_pages {} {}", r.below(12), r.pick(GFPS)),
        2 => format!("get_free_pages {} {}", r.below(12), r.pick(GFPS)),
        3 => "get_zeroed_page".into(),
        4 => "page_alloc".into(),
        5 => format!("kmalloc {} {}", number(r), r.pick(GFPS)),
        6 => format!("kzalloc {}", number(r)),
        7 => format!("kfree {}", if r.below(2) == 0 { h } else { number(r) }),
        8 => format!("free {h}"),
        9 => format!("free_pages {} {}", number(r), r.below(70)),
        10 => format!("__free_pages {} {}", number(r), r.below(12)),
        11 => format!("page {}", number(r)),
        12 => format!("dump {h} {} {}", r.below(300), r.below(300)),
        13 => format!("bzero {h} {} {}", r.below(5000), r.below(5000)),
        14 => format!(
            "cache create c{} {} {}",
            r.below(4),
            number(r),
            ["", "0", "64", "3"][r.below(4) as usize]
        ),
        15 => format!("cache alloc c{}", r.below(4)),
        16 => format!("cache destroy c{}", r.below(4)),
        17 => format!(
            "mempool create p{} {} kmalloc {}",
            r.below(3),
            r.below(80),
            number(r)
        ),
        18 => format!("mempool alloc p{}", r.below(3)),
        19 => [
            "buddyinfo",
            "zoneinfo",
            "memstat",
            "handles",
            "slabinfo",
            "history",
            "pagemap",
        ][r.below(7) as usize]
            .into(),
        20 => [
            "trap pf", "trap gp", "trap ud", "trap de", "trap bp", "trap zz",
        ][r.below(6) as usize]
            .into(),
        _ => {
            // Garbage: printable, a few control bytes, high bytes; never CR, LF,
            // ESC or Ctrl-C, which have meanings of their own.
            let n = 1 + r.below(300);
            (0..n)
                .map(|_| match r.below(10) {
                    0 => char::from([0x01u8, 0x02, 0x08, 0x7f, 0x15][r.below(5) as usize]),
                    1 => char::from_u32(0x80 + r.below(0x80) as u32).unwrap(),
                    _ => char::from(0x20 + r.below(0x5f) as u8),
                })
                .collect()
        }
    }
}

fn random_lines_never_break_the_shell(vm: &mut Vm) -> Check {
    let boot = memstat(vm)?;
    let seed = std::env::var("MEMKERN_ABUSE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6d65_6d6b_6572_6e21u64);
    let mut r = Rng(seed);
    let (mut handles, mut errors, mut faults) = (0, 0, 0);
    for i in 0..250 {
        let l = line(&mut r, handles);
        vm.send(&format!("{l}\r"))
            .map_err(|e| format!("line {i}: {e}"))?;
        let out = vm
            .expect(PROMPT)
            .map_err(|e| format!("seed {seed:#x}, line {i} {l:?}: no prompt: {e}"))?;
        if out.contains("!!! kernel panic") || out.contains("not recoverable") {
            return Err(format!(
                "seed {seed:#x}, line {i} {l:?} killed the kernel:\n{out}"
            ));
        }
        if out.lines().filter(|x| x.starts_with("error: ")).count() > 1 {
            return Err(format!(
                "seed {seed:#x}, line {i} {l:?}: more than one error line:\n{out}"
            ));
        }
        handles += out.lines().filter(|x| x.starts_with('#')).count() as u64;
        errors += out.lines().filter(|x| x.starts_with("error: ")).count();
        faults += out.matches("!!! CPU exception").count();
    }
    // The mix must really have exercised allocation, misuse and faults.
    ensure(handles >= 20 && errors >= 40 && faults >= 3, || {
        format!("seed {seed:#x}: too tame: {handles} handles, {errors} errors, {faults} faults")
    })?;
    vm.ok("slub_debug -")?;
    vm.ok("free all")?;
    let after = memstat(vm)?;
    ensure(after == boot, || {
        format!("seed {seed:#x}: after free all\nboot  {boot:?}\nafter {after:?}")
    })?;
    let out = vm.ok("echo still alive")?;
    ensure(out.contains("still alive"), || out)
}

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "random_lines_never_break_the_shell",
        run: || with_vm(Opts::default(), random_lines_never_break_the_shell),
    }]
}
