//! Fake kernels for host tests: [`Fake`] records every call and collects the
//! output; [`Machine`] runs the real buddy allocator on simulated memory.
#![allow(dead_code)]

mod machine;

pub use machine::*;

use mm::{MmError, MmStat, Pfn, Zone};
use shell::{
    Diagnostics, Kernel, MemAccess, PageApi, Platform, Shell, SlabApi, Trap, VersionInfo, ZoneStat,
};
use std::fmt;

/// A test kernel that collects what the shell prints.
pub trait Output: Kernel {
    /// Everything the shell wrote so far.
    fn out(&self) -> &str;
}

impl Output for Fake {
    fn out(&self) -> &str {
        &self.out
    }
}

impl Output for Machine<'_> {
    fn out(&self) -> &str {
        &self.out
    }
}

/// Records calls, collects output, fails on request.
#[derive(Default)]
pub struct Fake {
    /// Everything the shell wrote.
    pub out: String,
    /// Every kernel call, e.g. `kfree 0xffff800000001000`.
    pub calls: Vec<String>,
    /// Release calls on this address fail with `InvalidFree`.
    pub fail_addr: Option<u64>,
    /// What `version_info` reports as the taint.
    pub tainted: Option<String>,
    /// The framebuffer mode `fb` reports (`None`: serial only).
    pub fb: Option<shell::FbMode>,
}

impl fmt::Write for Fake {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.push_str(s);
        Ok(())
    }
}

impl Platform for Fake {
    fn version_info(&self) -> VersionInfo {
        VersionInfo {
            version: "0.1.0",
            boot: "pvh",
            cmdline: "console=ttyS0 quiet".into(),
            tainted: self.tainted.clone(),
        }
    }
    fn clear_screen(&mut self) {
        self.calls.push("clear_screen".into());
    }
    fn framebuffer(&self) -> Option<shell::FbMode> {
        self.fb
    }
    fn memory_view(&mut self, what: shell::ViewCmd) -> Result<String, &'static str> {
        if self.fb.is_none() {
            return Err("no framebuffer: this machine has a serial console only");
        }
        self.calls.push(format!("view {what:?}"));
        Ok(format!("view {what:?}"))
    }
    fn reboot(&mut self) -> &'static str {
        self.calls.push("reboot".into());
        "no reset method worked"
    }
    fn poweroff(&mut self) -> &'static str {
        self.calls.push("poweroff".into());
        "isa-debug-exit not present"
    }
    fn trap(&mut self, trap: Trap) -> Result<(), &'static str> {
        self.calls.push(format!("trap {}", trap.name()));
        if trap == Trap::Bp {
            Ok(())
        } else {
            Err("fake kernel cannot fault")
        }
    }
}

impl Fake {
    fn record(&mut self, call: String, addr: u64) -> Result<(), MmError> {
        self.calls.push(call);
        if self.fail_addr == Some(addr) {
            Err(MmError::InvalidFree(addr))
        } else {
            Ok(())
        }
    }
}

impl PageApi for Fake {
    fn mm_stat(&self) -> MmStat {
        MmStat {
            total: 134_217_728,
            used: 8_388_608,
            free: 125_829_120,
            shared: 0,
            cache_used: 4096,
            cache_free: 12_288,
            available: 125_841_408,
        }
    }
    fn zone_stat(&self, zone: Zone) -> Option<ZoneStat> {
        match zone {
            Zone::Dma => Some(ZoneStat {
                total: 16 << 20,
                used: 1 << 20,
                free: 15 << 20,
                wmark: [64 << 10, 80 << 10, 96 << 10],
            }),
            Zone::Normal => Some(ZoneStat {
                total: 112 << 20,
                used: 7 << 20,
                free: 105 << 20,
                wmark: [448 << 10, 560 << 10, 672 << 10],
            }),
            Zone::Unmapped => None,
        }
    }
    fn free_pages(&mut self, pfn: Pfn, n: u32) -> Result<(), MmError> {
        self.record(format!("free_pages {pfn} {n}"), pfn.phys())
    }
    fn free_pages_order(&mut self, pfn: Pfn, order: u32) -> Result<(), MmError> {
        self.record(format!("free_pages_order {pfn} {order}"), pfn.phys())
    }
}

impl SlabApi for Fake {
    fn kfree(&mut self, virt: u64) -> Result<(), MmError> {
        self.record(format!("kfree {virt:#x}"), virt)
    }
    fn kmem_cache_free(&mut self, cache: &str, virt: u64) -> Result<(), MmError> {
        self.record(format!("kmem_cache_free {cache} {virt:#x}"), virt)
    }
    fn kmem_cache_destroy(&mut self, cache: &str) -> Result<(), MmError> {
        self.record(format!("kmem_cache_destroy {cache}"), 0)
    }
}

impl MemAccess for Fake {}

impl Diagnostics for Fake {}

impl shell::IoApi for Fake {}
impl shell::VmApi for Fake {}
impl shell::VmallocApi for Fake {}

/// A shell that has printed its banner and first prompt, and its fake kernel.
pub fn boot() -> (Shell, Fake) {
    let mut sh = Shell::new();
    let mut k = Fake::default();
    sh.banner_and_prompt(&mut k);
    (sh, k)
}

/// Feeds `input` and returns only the output it produced.
pub fn type_in<K: Output>(sh: &mut Shell, k: &mut K, input: &[u8]) -> String {
    let start = k.out().len();
    sh.feed_bytes(input, k);
    k.out()[start..].to_string()
}

/// Types `line` + CR; returns the output lines after the echo line, without the
/// final prompt (which is asserted to be there).
pub fn run<K: Output>(sh: &mut Shell, k: &mut K, line: &str) -> Vec<String> {
    let out = type_in(sh, k, format!("{line}\r").as_bytes());
    let body = out
        .strip_suffix(shell::PROMPT)
        .unwrap_or_else(|| panic!("no prompt after {line:?}: {out:?}"));
    let mut lines: Vec<String> = body.split("\r\n").map(String::from).collect();
    assert_eq!(
        lines.pop().as_deref(),
        Some(""),
        "output must end with CRLF: {out:?}"
    );
    assert_eq!(lines.remove(0), line, "echo of the typed line");
    lines
}

/// Number of lines in `out` that start with `error: `.
pub fn error_lines(out: &str) -> usize {
    out.split("\r\n")
        .filter(|l| l.starts_with("error: "))
        .count()
}

/// Every `\n` in `out` comes right after `\r`.
pub fn crlf_only(out: &str) -> bool {
    let b = out.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, &c)| c != b'\n' || (i > 0 && b[i - 1] == b'\r'))
}

// ---- helpers shared by the page and slab command tests ----

/// The value of `key=` in a result line.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// A `0x` hex number.
pub fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("hex {s:?}"))
}

/// The only output line of `line`.
pub fn one(sh: &mut Shell, k: &mut Machine<'_>, line: &str) -> String {
    let mut out = run(sh, k, line);
    assert_eq!(out.len(), 1, "{line}: {out:?}");
    out.remove(0)
}

/// The last kernel call.
pub fn last_call<'a>(k: &'a Machine<'_>) -> &'a str {
    k.calls.last().map(String::as_str).unwrap_or("")
}

/// The hex bytes of a `dump` body line (`OOOOOOOO  xx .. xx  |...|`).
pub fn dump_bytes(line: &str) -> Vec<u8> {
    line[10..58]
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// All bytes a `dump` printed (the lines after its header).
pub fn dumped(sh: &mut Shell, k: &mut Machine<'_>, line: &str) -> Vec<u8> {
    let out = run(sh, k, line);
    assert!(!out[0].starts_with("error"), "{line}: {out:?}");
    out[1..].iter().flat_map(|l| dump_bytes(l)).collect()
}
