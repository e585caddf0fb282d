//! Boot-time benchmark: serial-visible time from starting QEMU to the first
//! `mm> ` prompt, for several RAM sizes, median of N runs each, and the ratio to
//! the smallest. The memory set-up must scale gently: 4 GiB should stay under
//! 1.5x of 128 MiB.
//!
//! Usage: `cargo run -p systest --bin boottime --release -- [RUNS]` (after `make kernel`).
//! With `MEMKERN_BASELINE=/path/to/old/kernel` it compares side by side instead:
//! for each size, runs alternate between the old and the current kernel, and the
//! ratio is current / old (the median of each).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts QEMU and returns the time until the first prompt appears on serial.
fn boot_once(mem: &str, kernel: &std::path::Path) -> Duration {
    let t0 = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-M", "microvm", "-m", mem, "-display", "none", "-serial", "stdio", "-monitor", "none",
        ])
        .args([
            "-no-reboot",
            "-accel",
            "tcg",
            "-kernel",
            kernel.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64");
    let mut out = child.stdout.take().unwrap();
    let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
    let t = loop {
        let n = out.read(&mut buf).expect("read serial");
        assert!(n > 0, "QEMU ended before the prompt");
        seen.extend_from_slice(&buf[..n]);
        if seen.windows(4).any(|w| w == b"mm> ") {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no prompt within 60 s"
        );
    };
    let _ = child.kill();
    let _ = child.wait();
    t
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let sizes = ["128M", "1G", "2G", "4G", "8G"];
    let kernel = systest::kernel_path();
    if let Some(old) = std::env::var_os("MEMKERN_BASELINE") {
        let old = std::path::PathBuf::from(old);
        println!(
            "{:>6}  {:>10}  {:>10}  {:>6}",
            "RAM", "old ms", "new ms", "ratio"
        );
        for size in sizes {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                a.push(boot_once(size, &old));
                b.push(boot_once(size, &kernel));
            }
            a.sort();
            b.sort();
            let (ma, mb) = (
                a[runs / 2].as_secs_f64() * 1e3,
                b[runs / 2].as_secs_f64() * 1e3,
            );
            println!("{size:>6}  {ma:>10.1}  {mb:>10.1}  {:>6.3}", mb / ma);
        }
        return;
    }
    let mut base = None;
    println!("{:>6}  {:>10}  {:>6}", "RAM", "median ms", "ratio");
    for size in sizes {
        let mut times: Vec<Duration> = (0..runs).map(|_| boot_once(size, &kernel)).collect();
        times.sort();
        let med = times[runs / 2].as_secs_f64() * 1e3;
        let b = *base.get_or_insert(med);
        println!("{size:>6}  {med:>10.1}  {:>6.2}", med / b);
    }
}
