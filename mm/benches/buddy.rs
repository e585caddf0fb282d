//! memkern's buddy allocator against buddy_system_allocator (FrameAllocator and Heap),
//! talc and rlsf: order-0 and order-3 alloc+free pairs (and batches of 64) on the same
//! 64 MiB arena. Criterion measures each; then a summary prints ns per pair for every
//! allocator and the ratio of memkern to the best peer, and a second one the page
//! batches (B = 64, 1,024, 65,536 blocks of order 0 and 3, freed in allocation order,
//! in reverse and at random; memkern by single calls and by the bulk APIs) in ns per
//! object with the ratios to the best peer. A third table compares the slab's page
//! provider (`alloc_slab_block`/`free_slab_block`) with page pairs of the same order.
//!
//! `cargo bench -p mm --bench buddy` (full run), or `-- --quick` style criterion
//! arguments. Instruction counts: see `examples/buddy_work.rs`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion};

#[path = "../examples/buddy_work.rs"]
#[allow(dead_code)]
mod work;

use mm::buddy::Buddy;
use mm::{Page, PageFlags, Pfn, Zone};
use work::{BsaFrame, BsaHeap, Memkern, MemkernSlab, MemkernZone, Order, PageAlloc, Rlsf, Talc};

const PEERS: [&str; 4] = ["bsa-frame", "bsa-heap", "talc", "rlsf"];

/// Object-safe view of `PageAlloc` for the summary table (criterion uses the generic one).
trait Erased {
    fn pairs(&mut self, order: u32, n: u64);
}

impl<A: PageAlloc> Erased for A {
    fn pairs(&mut self, order: u32, n: u64) {
        work::pairs(self, order, n)
    }
}

fn bench_one<A: PageAlloc>(c: &mut Criterion, name: &str, mut a: A, orders: &[u32]) {
    for &order in orders {
        let mut g = c.benchmark_group(format!("pair-order{order}"));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let x = a.alloc(order);
                a.free(black_box(x), order);
            })
        });
        g.finish();
        let mut g = c.benchmark_group(format!("batch{}-order{order}", work::BATCH));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| work::batch(&mut a, order, 1))
        });
        g.finish();
    }
}

/// Best (minimum) ns per pair over several timed rounds.
fn ns_per_pair(a: &mut dyn Erased, order: u32, n: u64) -> f64 {
    a.pairs(order, 1000);
    (0..7)
        .map(|_| {
            let t = Instant::now();
            a.pairs(order, n);
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn summary(n: u64) {
    println!();
    println!("ns per alloc+free pair (best of 7 rounds of {n} pairs, 64 MiB arena):");
    println!(
        "{:>6} {:>10} {:>13} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "order", "memkern", "memkern-zone", "bsa-frame", "bsa-heap", "talc", "rlsf", "ours/best"
    );
    for order in [0u32, 3] {
        let ours = ns_per_pair(&mut Memkern::new(), order, n);
        let zone = ns_per_pair(&mut MemkernZone(Memkern::new()), order, n);
        let peers = [
            ns_per_pair(&mut BsaFrame::new(), order, n),
            ns_per_pair(&mut BsaHeap::new(), order, n),
            ns_per_pair(&mut Talc::new(), order, n),
            ns_per_pair(&mut Rlsf::new(), order, n),
        ];
        let (bi, best) = peers
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |m, (i, x)| if x < m.1 { (i, x) } else { m },
            );
        println!(
            "{order:>6} {ours:>10.2} {zone:>13.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>8.2} vs {}",
            peers[0],
            peers[1],
            peers[2],
            peers[3],
            ours / best,
            PEERS[bi]
        );
    }
}

/// The slab's page provider against the page API: ns per
/// `alloc_slab_block`+`free_slab_block` pair and per `alloc_pages`+`__free_pages`
/// pair of the same order, and their ratio (1.0: a slab grow/release costs the
/// buddy allocator what a page pair does).
fn slab_summary(n: u64) {
    println!();
    println!("slab blocks: ns per pair (best of 7 rounds of {n} pairs):");
    println!(
        "{:>6} {:>12} {:>12} {:>12}",
        "order", "slab block", "pages", "slab/pages"
    );
    for order in 0u32..=3 {
        let slab = ns_per_pair(&mut MemkernSlab::with_arena(work::ARENA), order, n);
        let pages = ns_per_pair(&mut Memkern::new(), order, n);
        println!(
            "{order:>6} {slab:>12.2} {pages:>12.2} {:>12.2}",
            slab / pages
        );
    }
}

/// Best ns per object (alloc + free) of `rounds` batches of `b` blocks of `order`
/// freed in `o`, over 5 timed repetitions.
fn ns_per_obj<A: PageAlloc>(mut a: A, order: u32, b: usize, o: Order, rounds: u64) -> f64 {
    let mut v = vec![0usize; b];
    let perm = work::permutation(b, o);
    work::batch_free(&mut a, order, 1, &mut v, &perm);
    (0..5)
        .map(|_| {
            let t = Instant::now();
            work::batch_free(&mut a, order, rounds, &mut v, &perm);
            t.elapsed().as_nanos() as f64 / (rounds as f64 * b as f64)
        })
        .fold(f64::INFINITY, f64::min)
}

/// memkern's `alloc_pages_bulk` + `free_pages_bulk`, as [`ns_per_obj`].
fn ns_per_obj_bulk(b: usize, o: Order, rounds: u64) -> f64 {
    let mut m = Memkern::with_arena(work::arena_for(0, b));
    let mut v = vec![Pfn(0); b];
    let perm = work::permutation(b, o);
    work::bulk(&mut m.0, 1, &mut v, &perm);
    (0..5)
        .map(|_| {
            let t = Instant::now();
            work::bulk(&mut m.0, rounds, &mut v, &perm);
            t.elapsed().as_nanos() as f64 / (rounds as f64 * b as f64)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The page batches: B blocks of order 0 and 3 by single calls, freed in
/// allocation order, in reverse and at random, every allocator in this run; and
/// memkern's bulk APIs for order 0. `objects` bounds the work per measurement.
fn batch_summary(sizes: &[usize], objects: u64) {
    println!();
    println!("ns per object (alloc + free) of page batches, best of 5:");
    println!(
        "{:>6} {:>6} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "B",
        "order",
        "free",
        "memkern",
        "bulk",
        "bsa-frame",
        "bsa-heap",
        "talc",
        "rlsf",
        "ours/best",
        "bulk/best"
    );
    for &b in sizes {
        for order in [0u32, 3] {
            for (o, name) in [
                (Order::Seq, "seq"),
                (Order::Rev, "rev"),
                (Order::Rand, "rand"),
            ] {
                let rounds = (objects / b as u64).max(1);
                let bytes = work::arena_for(order, b);
                let ours = ns_per_obj(Memkern::with_arena(bytes), order, b, o, rounds);
                let bulk = if order == 0 {
                    ns_per_obj_bulk(b, o, rounds)
                } else {
                    f64::NAN
                };
                // buddy_system_allocator's Heap frees in O(free blocks) per call: a
                // random-order batch of 65,536 takes minutes; left out (NaN).
                let slow_heap = b > 4096 && o == Order::Rand;
                let peers = [
                    ns_per_obj(BsaFrame::with_arena(bytes), order, b, o, rounds),
                    if slow_heap {
                        f64::NAN
                    } else {
                        ns_per_obj(BsaHeap::with_arena(bytes), order, b, o, rounds)
                    },
                    ns_per_obj(Talc::with_arena(bytes), order, b, o, rounds),
                    ns_per_obj(Rlsf::with_arena(bytes), order, b, o, rounds),
                ];
                let (bi, best) =
                    peers
                        .iter()
                        .copied()
                        .enumerate()
                        .fold(
                            (0, f64::INFINITY),
                            |m, (i, x)| if x < m.1 { (i, x) } else { m },
                        );
                println!(
                    "{b:>6} {order:>6} {name:>5} {ours:>9.2} {bulk:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>10.2} vs {}",
                    peers[0], peers[1], peers[2], peers[3], ours / best, bulk / best, PEERS[bi]
                );
            }
        }
    }
}

/// Host time of `Buddy::page_init` over a garbage mem_map for `ram_mib` of RAM laid
/// out like a PC (hole below 1 MiB, PCI hole at 3..4 GiB, lowmem at 896 MiB), best of 5.
fn boot_ms(ram_mib: u64) -> f64 {
    let ram_pages = (ram_mib << 20 >> 12) as u32;
    let gib3 = 3 << 18;
    let (ranges, max) = if ram_pages <= gib3 {
        (
            vec![(Pfn(1), Pfn(159)), (Pfn(256), Pfn(ram_pages))],
            ram_pages,
        )
    } else {
        let top = (1 << 20) + (ram_pages - gib3);
        (
            vec![
                (Pfn(1), Pfn(159)),
                (Pfn(256), Pfn(gib3)),
                (Pfn(1 << 20), Pfn(top)),
            ],
            top,
        )
    };
    let mut garbage = Page::reserved(Zone::Unmapped);
    garbage.count = 0xdead_beef;
    garbage.next = 0x1234_5678;
    let mut map = vec![garbage; max as usize];
    let kernel = [(Pfn(256), Pfn(2048), PageFlags::KERNEL_INIT)];
    (0..5)
        .map(|_| {
            let t = Instant::now();
            let b = Buddy::page_init(&mut map, Pfn(896 << 8), &ranges, &kernel).unwrap();
            black_box(b.nr_free_pages());
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    bench_one(&mut c, "memkern", Memkern::new(), &[0, 3]);
    bench_one(&mut c, "memkern-zone", MemkernZone(Memkern::new()), &[0, 3]);
    bench_one(&mut c, "bsa-frame", BsaFrame::new(), &[0, 3]);
    bench_one(&mut c, "bsa-heap", BsaHeap::new(), &[0, 3]);
    bench_one(&mut c, "talc", Talc::new(), &[0, 3]);
    bench_one(&mut c, "rlsf", Rlsf::new(), &[0, 3]);
    c.final_summary();
    // `cargo test --benches` runs this once without --bench: keep that short.
    summary(if bench_mode { 2_000_000 } else { 1000 });
    slab_summary(if bench_mode { 2_000_000 } else { 1000 });
    if bench_mode {
        batch_summary(&[64, 1024, 65_536], 1 << 20);
    } else {
        batch_summary(&[64], 256);
    }
    let (small, big) = (boot_ms(128), boot_ms(4096));
    println!(
        "page_init (host): 128 MiB {small:.3} ms, 4 GiB {big:.3} ms ({:.1} us per MiB)",
        big * 1e3 / 4096.0
    );
}
