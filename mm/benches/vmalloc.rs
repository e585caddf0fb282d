//! vmalloc+vfree of 64 KiB and the area allocator alone, with 10 and 10,000 live
//! areas (free space fragmented into holes too small for the request), against
//! linked_list_allocator doing the area allocator's job (first fit over a list)
//! and against the floor of the page allocation (16 x alloc_page + free).
//! Criterion measures each; then a summary prints ns per pair and the ratios.
//!
//! `cargo bench -p mm --bench vmalloc`. Instruction counts: see
//! `examples/vmalloc_work.rs`.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion};

#[path = "../examples/vmalloc_work.rs"]
#[allow(dead_code)]
mod work;

const LIVE: [usize; 2] = [10, 10_000];

fn bench(c: &mut Criterion) {
    for name in work::NAMES {
        let mut g = c.benchmark_group(format!("pair-{name}"));
        for live in LIVE {
            let mut w = work::make(name, live);
            g.bench_function(BenchmarkId::from_parameter(live), |b| b.iter(|| w.pair()));
        }
        g.finish();
    }
}

/// Best (minimum) ns per pair over 7 timed rounds of `n` pairs.
fn ns_per_pair(name: &str, live: usize, n: u64) -> f64 {
    let mut w = work::make(name, live);
    work::pairs(&mut *w, 100);
    (0..7)
        .map(|_| {
            let t = Instant::now();
            work::pairs(&mut *w, n);
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn summary(n: u64) {
    println!();
    println!("ns per pair (best of 7 rounds of {n} pairs):");
    println!(
        "{:>13} {:>12} {:>12} {:>14}",
        "workload", "10 live", "10000 live", "10000/10"
    );
    let mut at = std::collections::BTreeMap::new();
    for name in work::NAMES {
        // The O(n) peer is slow at 10,000 live areas: fewer rounds there.
        let (a, b) = (
            ns_per_pair(name, 10, n),
            ns_per_pair(
                name,
                10_000,
                if name == "list-area" { n / 50 + 1 } else { n },
            ),
        );
        println!("{name:>13} {a:>12.1} {b:>12.1} {:>14.2}", b / a);
        at.insert(name, (a, b));
    }
    let r = |x: &str, y: &str, i: usize| {
        let (a, b) = (at[x], at[y]);
        if i == 0 {
            a.0 / b.0
        } else {
            a.1 / b.1
        }
    };
    println!(
        "area allocator / linked_list_allocator: {:.2} at 10 live, {:.3} at 10000 live",
        r("area", "list-area", 0),
        r("area", "list-area", 1)
    );
    println!(
        "vmalloc+vfree / its page allocation (pages16): {:.2} at 10 live, {:.2} at 10000 live",
        r("vmalloc", "pages16", 0),
        r("vmalloc", "pages16", 1)
    );
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    // `cargo test --benches` runs this once without --bench: keep that short.
    summary(if bench_mode { 200_000 } else { 100 });
}
