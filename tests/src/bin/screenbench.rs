//! Screen cost benchmark: how long `help` takes over the serial line on q35
//! (PVH, TCG) with the framebuffer console (the machine's standard VGA) and
//! without it (`-vga none`), side by side in one run: both machines run at once
//! and take turns, N commands each (sent, then its whole output and the next
//! prompt received); the medians and their ratio.
//!
//! Usage: `cargo run -p systest --bin screenbench --release -- [N]` (after `make kernel`).

use std::time::{Duration, Instant};
use systest::{Boot, Opts, Vm};

fn boot(extra: &[&str]) -> Vm {
    let o = Opts {
        boot: Boot::PvhQ35,
        qemu_extra: extra.iter().map(|s| s.to_string()).collect(),
        ..Opts::default()
    };
    let mut vm = Vm::boot(o).expect("boot");
    vm.cmd("help").expect("warm-up help");
    vm
}

fn timed_help(vm: &mut Vm) -> Duration {
    let t0 = Instant::now();
    vm.cmd("help").expect("help");
    t0.elapsed()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(31);
    // Both machines run at once and take turns, so the host's load weighs on
    // both alike.
    let mut without = boot(&["-vga", "none"]);
    let mut with = boot(&[]);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..n {
        a.push(timed_help(&mut without));
        b.push(timed_help(&mut with));
    }
    a.sort();
    b.sort();
    let (a, b) = (a[n / 2], b[n / 2]);
    println!("help on q35/TCG, median of {n}, taking turns:");
    println!(
        "  without a screen (-vga none): {:7.2} ms",
        a.as_secs_f64() * 1e3
    );
    println!(
        "  with the screen (std VGA):    {:7.2} ms",
        b.as_secs_f64() * 1e3
    );
    println!("  ratio: {:.2}x", b.as_secs_f64() / a.as_secs_f64());
}
