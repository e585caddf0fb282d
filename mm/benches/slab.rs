//! memkern's slab allocator against talc, rlsf, linked_list_allocator,
//! buddy_system_allocator and slabmalloc (same 64 MiB arena), with the host's
//! `System` allocator and mimalloc as references.
//!
//! - W1: `kmalloc(80)` + `kfree` (LIFO pair); peers allocate `Layout(80, 8)`.
//! - W2: steady state of 10,000 live objects of random power-of-two sizes 32..=4096
//!   aligned to their size: free a random one, allocate a new one (one step).
//!
//! `cargo bench -p mm --bench slab` runs criterion on every pair, then prints a
//! summary table (median of 21 interleaved timed rounds) with the ratio of each
//! allocator to the best of the five peers the issue names: talc, rlsf,
//! linked_list, buddy_system and slabmalloc. `System` and mimalloc are references;
//! `SLAB_BENCH=summary` skips criterion and prints the table only.
//! Then the slab batches (kmalloc B = 10,000 and 100,000 objects of 64 B, 1 KiB or
//! the W2 mix, then free them all; memkern also through `kmem_cache_alloc_bulk`/
//! `kmem_cache_free_bulk`) in ns per object with the ratio to the best peer.
//! The workloads live in `examples/slab_work.rs` (also the callgrind driver).

use std::time::{Duration, Instant};

use criterion::Criterion;

#[path = "../examples/slab_work.rs"]
mod work;

use work::{
    Alloc, BuddySystemPeer, Global, LinkedListPeer, Memkern, RlsfPeer, SlabmallocPeer, TalcPeer, W2,
};

/// The peers the targets are measured against.
const PEERS: [&str; 5] = ["talc", "rlsf", "linked_list", "buddy_system", "slabmalloc"];

/// One allocator under one workload, ready to run `n` operations.
struct Runner {
    name: &'static str,
    run: Box<dyn FnMut(u64)>,
    /// Operations per timed round (calibrated to ~`ROUND`).
    n: u64,
    samples: Vec<f64>,
}

fn w1_runner<A: Alloc + 'static>(name: &'static str, mut a: A) -> Runner {
    Runner {
        name,
        run: Box::new(move |n| {
            for _ in 0..n {
                work::w1_step(&mut a);
            }
        }),
        n: 0,
        samples: Vec::new(),
    }
}

fn w2_runner<A: Alloc + 'static>(name: &'static str, mut a: A) -> Runner {
    let mut w = W2::new(&mut a);
    Runner {
        name,
        run: Box::new(move |n| {
            for _ in 0..n {
                w.step(&mut a);
            }
        }),
        n: 0,
        samples: Vec::new(),
    }
}

fn runners(w2: bool) -> Vec<Runner> {
    macro_rules! r {
        ($name:expr, $a:expr) => {
            if w2 {
                w2_runner($name, $a)
            } else {
                w1_runner($name, $a)
            }
        };
    }
    vec![
        r!("memkern", Memkern::new()),
        r!("talc", TalcPeer::new()),
        r!("rlsf", RlsfPeer::new()),
        r!("linked_list", LinkedListPeer::new()),
        r!("buddy_system", BuddySystemPeer::new()),
        r!("slabmalloc", SlabmallocPeer::new()),
        r!("system", Global(std::alloc::System)),
        r!("mimalloc", Global(mimalloc::MiMalloc)),
    ]
}

/// Median ns/op of every runner, measured in interleaved rounds (each round runs
/// every allocator once, so that noise from the machine hits all of them alike).
fn measure(rs: &mut [Runner], round: Duration, rounds: usize) {
    for r in rs.iter_mut() {
        let mut n = 256u64;
        loop {
            let t = Instant::now();
            (r.run)(n);
            let e = t.elapsed();
            if e >= round / 8 || n >= 1 << 30 {
                r.n = ((round.as_secs_f64() * n as f64 / e.as_secs_f64()) as u64).max(64);
                break;
            }
            n *= 4;
        }
    }
    for _ in 0..rounds {
        for r in rs.iter_mut() {
            let t = Instant::now();
            (r.run)(r.n);
            r.samples.push(t.elapsed().as_secs_f64() * 1e9 / r.n as f64);
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn criterion_benches(c: &mut Criterion) {
    for (w, label) in [(false, "W1"), (true, "W2")] {
        for mut r in runners(w) {
            c.bench_function(&format!("{label}/{}", r.name), |b| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    (r.run)(iters);
                    t.elapsed()
                })
            });
        }
    }
}

/// Best ns per object (alloc + free) of `rounds` slab batches of `b` objects of
/// `size` (0 = the W2 mix), over 5 timed repetitions. An allocator whose first
/// (untimed) round takes more than half a second is timed by one more round
/// alone: talc's first fit over 100,000 mixed objects takes minutes a round.
fn batch_ns<A: Alloc>(mut a: A, size: usize, b: usize, rounds: u64) -> f64 {
    let mut objs = vec![(0usize, 0usize); b];
    let t = Instant::now();
    work::batch(&mut a, size, 1, &mut objs);
    if t.elapsed().as_secs_f64() > 0.5 {
        let t = Instant::now();
        work::batch(&mut a, size, 1, &mut objs);
        return t.elapsed().as_nanos() as f64 / b as f64;
    }
    (0..5)
        .map(|_| {
            let t = Instant::now();
            work::batch(&mut a, size, rounds, &mut objs);
            t.elapsed().as_nanos() as f64 / (rounds as f64 * b as f64)
        })
        .fold(f64::INFINITY, f64::min)
}

/// memkern's `kmem_cache_alloc_bulk` + `kmem_cache_free_bulk`, as [`batch_ns`].
fn bulk_ns(size: usize, b: usize, rounds: u64) -> f64 {
    let mut m = Memkern::new();
    let mut objs = vec![0u64; b];
    work::bulk(&mut m, size, 1, &mut objs);
    (0..5)
        .map(|_| {
            let t = Instant::now();
            work::bulk(&mut m, size, rounds, &mut objs);
            t.elapsed().as_nanos() as f64 / (rounds as f64 * b as f64)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The slab batches: kmalloc B objects of one size (64 B, 1 KiB) or of the W2
/// mix, then free them all; every peer in this run; memkern also by the bulk
/// APIs (one size). `objects` bounds the work per measurement.
fn batch_summary(sizes: &[usize], objects: u64) {
    // Room for the largest batch of the mix (4 KiB objects at most), twice.
    let most = sizes.iter().copied().max().unwrap_or(0);
    work::set_arena_bytes((most * 4096 * 2).max(work::ARENA).next_multiple_of(4 << 20));
    println!();
    println!("slab batches: ns per object (alloc + free), best of 5; ratio = memkern / best peer");
    println!(
        "  {:>7} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "B", "size", "memkern", "bulk", "talc", "rlsf", "ll", "buddy", "slabm", "ours", "bulk"
    );
    for &b in sizes {
        for size in [64usize, 1024, 0] {
            let rounds = (objects / b as u64).max(1);
            let ours = batch_ns(Memkern::new(), size, b, rounds);
            let bulk = if size == 0 {
                f64::NAN
            } else {
                bulk_ns(size, b, rounds)
            };
            let peers = [
                batch_ns(TalcPeer::new(), size, b, rounds),
                batch_ns(RlsfPeer::new(), size, b, rounds),
                batch_ns(LinkedListPeer::new(), size, b, rounds),
                batch_ns(BuddySystemPeer::new(), size, b, rounds),
                batch_ns(SlabmallocPeer::new(), size, b, rounds),
            ];
            let best = peers.iter().copied().fold(f64::INFINITY, f64::min);
            let label = if size == 0 {
                "mix".to_string()
            } else {
                size.to_string()
            };
            println!(
                "  {b:>7} {label:>5} {ours:>8.2} {bulk:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7.2} {:>7.2}",
                peers[0], peers[1], peers[2], peers[3], peers[4], ours / best, bulk / best
            );
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let summary_only = std::env::var("SLAB_BENCH").is_ok_and(|v| v == "summary");
    if !summary_only && !quick {
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20)
            .configure_from_args();
        criterion_benches(&mut c);
        c.final_summary();
    }
    let (round, rounds) = if quick {
        (Duration::from_millis(2), 1)
    } else {
        (Duration::from_millis(25), 21)
    };
    let mut w1 = runners(false);
    measure(&mut w1, round, rounds);
    let mut w2 = runners(true);
    measure(&mut w2, round, rounds);
    let best = |rs: &[Runner]| {
        rs.iter()
            .filter(|r| PEERS.contains(&r.name))
            .map(|r| (median(&r.samples), r.name))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap()
    };
    let (b1, n1) = best(&w1);
    let (b2, n2) = best(&w2);
    println!();
    println!(
        "slab summary: median ns/op of {rounds} interleaved rounds; ratio = ns / best peer's ns"
    );
    println!("  best peer W1: {n1} {b1:.2} ns   W2: {n2} {b2:.2} ns");
    println!(
        "  {:<14} {:>10} {:>8} {:>10} {:>8}",
        "allocator", "W1 ns", "ratio", "W2 ns", "ratio"
    );
    for (r1, r2) in w1.iter().zip(&w2) {
        let (m1, m2) = (median(&r1.samples), median(&r2.samples));
        println!(
            "  {:<14} {:>10.2} {:>8.3} {:>10.2} {:>8.3}",
            r1.name,
            m1,
            m1 / b1,
            m2,
            m2 / b2
        );
    }
    if quick {
        batch_summary(&[1000], 2000);
    } else {
        batch_summary(&[10_000, 100_000], 400_000);
    }
}
