//! Screen cost benchmark: how long `help` takes over the serial line on q35
//! (PVH, TCG) with the framebuffer console (the machine's standard VGA) and
//! without it (`-vga none`), side by side in one run: median of N sequential
//! commands each (sent, then its whole output and the next prompt received),
//! and the ratio.
//!
//! Usage: `cargo run -p systest --bin screenbench --release -- [N]` (after `make kernel`).

use std::time::{Duration, Instant};
use systest::{Boot, Opts, Vm};

fn median_help(extra: &[&str], n: usize) -> Duration {
    let o = Opts {
        boot: Boot::PvhQ35,
        qemu_extra: extra.iter().map(|s| s.to_string()).collect(),
        ..Opts::default()
    };
    let mut vm = Vm::boot(o).expect("boot");
    vm.cmd("help").expect("warm-up help");
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            vm.cmd("help").expect("help");
            t0.elapsed()
        })
        .collect();
    t.sort();
    t[n / 2]
}

fn main() {
    let n = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(21);
    let without = median_help(&["-vga", "none"], n);
    let with = median_help(&[], n);
    println!("help on q35/TCG, median of {n}:");
    println!("  without a screen (-vga none): {:7.2} ms", without.as_secs_f64() * 1e3);
    println!("  with the screen (std VGA):    {:7.2} ms", with.as_secs_f64() * 1e3);
    println!("  ratio: {:.2}x", with.as_secs_f64() / without.as_secs_f64());
}
