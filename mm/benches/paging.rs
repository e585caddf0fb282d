//! memkern's page-table mapper (`mm::paging::Mapper`) against the `x86_64`
//! crate's `OffsetPageTable` on the same kind of simulated machine: 4 KiB and
//! 2 MiB map+unmap pairs next to a mapped neighbour, translation, the same
//! spread over 64 regions of one page directory (memkern's cached page table
//! misses, its cached page directory hits) and scattered over 64 page
//! directories (full walks), and a 4 KiB pair that creates and frees its three
//! tables every time. Criterion measures each; then
//! a summary prints ns per operation and the ratio memkern / x86_64.
//!
//! `cargo bench -p mm --bench paging`. Instruction counts: see
//! `examples/paging_work.rs`.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion};

#[path = "../examples/paging_work.rs"]
#[allow(dead_code)]
mod work;

use work::{Crate, Memkern, Pager, WORKLOADS};

fn bench_one<P: Pager>(c: &mut Criterion, name: &str, make: fn() -> P) {
    for w in WORKLOADS {
        let mut p = make();
        work::prepare(&mut p, w);
        let mut g = c.benchmark_group(w);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| work::run(&mut p, w, 1))
        });
        g.finish();
    }
}

/// Best ns per operation over 7 rounds of `n`.
fn ns_per_op<P: Pager>(make: fn() -> P, w: &str, n: u64) -> f64 {
    let mut p = make();
    work::prepare(&mut p, w);
    work::run(&mut p, w, 1000);
    (0..7)
        .map(|_| {
            let t = Instant::now();
            work::run(&mut p, w, n);
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn summary(n: u64) {
    println!();
    println!("ns per operation (best of 7 rounds of {n}; a map+unmap pair is one operation):");
    println!(
        "{:>17} {:>10} {:>10} {:>16}",
        "workload", "memkern", "x86_64", "memkern/x86_64"
    );
    for w in WORKLOADS {
        // The table-freeing pair costs microseconds: fewer rounds.
        let n = if w == "map4k-fresh" { n / 100 } else { n };
        let ours = ns_per_op(Memkern::new, w, n);
        let theirs = ns_per_op(Crate::new, w, n);
        println!(
            "{w:>17} {ours:>10.2} {theirs:>10.2} {:>16.2}",
            ours / theirs
        );
    }
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    bench_one(&mut c, "memkern", Memkern::new);
    bench_one(&mut c, "x86_64", Crate::new);
    c.final_summary();
    summary(if bench_mode { 1_000_000 } else { 1000 });
}
