//! Host tests of the bulk APIs: `Buddy::alloc_pages_bulk` / `free_pages_bulk` and
//! `Slab::kmem_cache_alloc_bulk` / `kmem_cache_free_bulk`, with every misuse of
//! the single-object forms, and property tests against a model (the set of live
//! pages / objects) with the allocator's own invariant check after every step.

use std::collections::BTreeSet;

use mm::buddy::{Buddy, BulkError};
use mm::fault::FaultConfig;
use mm::sim::SimMem;
use mm::slab::{Slab, SlabFlags};
use mm::{Gfp, MmError, Page, PageFlags, PageProvider, Pfn, PhysMem, Zone, PAGE_SIZE};
use proptest::prelude::*;

const NPAGES: u32 = 8192;
const LOWMEM: u32 = 6000;

/// A 32 MiB machine: all three zones, a kernel range reserved, PFN 0 a hole.
fn boot(map: &mut [Page]) -> Buddy<'_> {
    Buddy::page_init(
        map,
        Pfn(LOWMEM),
        &[(Pfn(1), Pfn(NPAGES))],
        &[(Pfn(256), Pfn(512), PageFlags::KERNEL_INIT)],
    )
    .unwrap()
}

fn map() -> Vec<Page> {
    vec![Page::reserved(Zone::Dma); NPAGES as usize]
}

#[test]
fn alloc_pages_bulk_fills_and_free_pages_bulk_returns_everything() {
    let mut m = map();
    let mut b = boot(&mut m);
    let boot_free = b.nr_free_pages();
    b.drain();
    let boot_info = Zone::ALL.map(|z| b.buddyinfo(z));
    for n in [1usize, 64, 200, 1500] {
        let mut v = vec![Pfn(0); n];
        assert_eq!(b.alloc_pages_bulk(Gfp::KERNEL, &mut v), Ok(n));
        let set: BTreeSet<u32> = v.iter().map(|p| p.0).collect();
        assert_eq!(set.len(), n, "pages are distinct");
        for &p in &v {
            assert_eq!(b.page_count(p), Ok(1));
            assert_eq!(b.zone_of(p), Zone::Normal, "GFP_KERNEL: ZONE_NORMAL first");
        }
        b.check().unwrap();
        assert_eq!(b.nr_free_pages(), boot_free - n as u64);
        // Free half by the bulk call (reversed), half one by one.
        let (a, c) = v.split_at(n / 2);
        let mut a = a.to_vec();
        a.reverse();
        b.free_pages_bulk(&a).unwrap();
        for &p in c {
            b.__free_page(p).unwrap();
        }
        b.check().unwrap();
        assert_eq!(b.nr_free_pages(), boot_free);
    }
    b.drain();
    assert_eq!(Zone::ALL.map(|z| b.buddyinfo(z)), boot_info);
}

#[test]
fn alloc_pages_bulk_is_short_when_memory_runs_out_and_fails_when_empty() {
    let mut m = map();
    let mut b = boot(&mut m);
    let free = b.nr_free_pages() as usize;
    let mut v = vec![Pfn(0); free + 100];
    // Plain GFP_KERNEL stops at the min watermarks (none set here: all of it).
    let got = b.alloc_pages_bulk(Gfp::KERNEL, &mut v).unwrap();
    assert!(got > 0 && got <= free, "got {got} of {free}");
    assert!(
        v[got..].iter().all(|&p| p == Pfn(0)),
        "the rest is unchanged"
    );
    b.check().unwrap();
    let mut more = [Pfn(0); 4];
    if got == free {
        assert_eq!(
            b.alloc_pages_bulk(Gfp::KERNEL | Gfp::DMA, &mut more),
            Err(MmError::OutOfMemory)
        );
    }
    assert_eq!(b.alloc_pages_bulk(Gfp::KERNEL, &mut []), Ok(0));
    assert!(matches!(
        b.alloc_pages_bulk(Gfp::KERNEL | Gfp::ZERO, &mut more),
        Err(MmError::Invalid(_))
    ));
    b.free_pages_bulk(&v[..got]).unwrap();
    assert_eq!(b.nr_free_pages() as usize, free);
    b.check().unwrap();
}

#[test]
fn alloc_pages_bulk_keeps_the_watermark_and_memalloc_goes_below() {
    let mut m = map();
    let mut b = boot(&mut m);
    b.setup_watermarks(4096);
    let free = b.nr_free_pages() as usize;
    let mut v = vec![Pfn(0); free];
    let got = b.alloc_pages_bulk(Gfp::KERNEL, &mut v).unwrap();
    assert!(got < free, "the min watermarks are kept");
    let mut w = vec![Pfn(0); free - got];
    let more = b
        .alloc_pages_bulk(Gfp::KERNEL | Gfp::MEMALLOC, &mut w)
        .unwrap();
    assert!(more > 0, "MEMALLOC takes the reserve");
    b.check().unwrap();
    b.free_pages_bulk(&v[..got]).unwrap();
    b.free_pages_bulk(&w[..more]).unwrap();
    assert_eq!(b.nr_free_pages() as usize, free);
}

#[test]
fn free_pages_bulk_reports_every_misuse_and_stops_there() {
    let mut m = map();
    let mut bits = vec![0u64; Buddy::slab_bits_words(NPAGES)];
    let mut b = boot(&mut m);
    b.attach_slab_bits(&mut bits);
    let mut v = [Pfn(0); 8];
    assert_eq!(b.alloc_pages_bulk(Gfp::KERNEL, &mut v), Ok(8));
    let order1 = b.alloc_pages(Gfp::KERNEL, 1).unwrap();
    let slab = b.alloc_slab_block(0, Gfp::KERNEL).unwrap();
    let cases = [
        (Pfn(300), MmError::Reserved(Pfn(300))),
        (Pfn(NPAGES + 5), MmError::NotRam(Pfn(NPAGES + 5).phys())),
        (Pfn(order1.0 + 1), MmError::NotBlockHead(Pfn(order1.0 + 1))),
        (
            order1,
            MmError::WrongSize {
                pfn: order1,
                expected: 1,
                got: 0,
            },
        ),
        (slab, MmError::SlabPage(slab)),
        // Listed twice: the second is a double free.
        (v[1], MmError::DoubleFree(v[1])),
    ];
    for (bad, err) in cases {
        let before = b.nr_free_pages();
        let list = [v[0], v[1], bad, v[2]];
        assert_eq!(b.free_pages_bulk(&list), Err(BulkError { done: 2, err }));
        assert_eq!(b.nr_free_pages(), before + 2, "the two before it are freed");
        assert_eq!(b.page_count(v[2]), Ok(1), "the one after it is untouched");
        b.check().unwrap();
        // Allocate two again for the next case.
        let mut two = [Pfn(0); 2];
        assert_eq!(b.alloc_pages_bulk(Gfp::KERNEL, &mut two), Ok(2));
        v[0] = two[0];
        v[1] = two[1];
    }
    // A shared page (a second reference) only drops a reference.
    b.get_page(v[3]).unwrap();
    b.free_pages_bulk(&[v[3]]).unwrap();
    assert_eq!(b.page_count(v[3]), Ok(1));
    b.free_pages_bulk(&v).unwrap();
    b.__free_pages(order1, 1).unwrap();
    b.free_slab_block(slab, 0).unwrap();
    b.check().unwrap();
}

#[test]
fn alloc_pages_bulk_with_fault_injection_goes_through_the_checked_path() {
    let mut m = map();
    let mut b = boot(&mut m);
    let free = b.nr_free_pages();
    b.set_fail_page_alloc(Some(FaultConfig::ALWAYS));
    let mut v = [Pfn(0); 16];
    assert_eq!(
        b.alloc_pages_bulk(Gfp::KERNEL, &mut v),
        Err(MmError::OutOfMemory)
    );
    b.set_fail_page_alloc(Some(FaultConfig {
        probability: 100,
        interval: 1,
        times: None,
        space: 5,
        seed: 1,
    }));
    let got = b.alloc_pages_bulk(Gfp::KERNEL, &mut v).unwrap();
    assert!(
        (1..16).contains(&got),
        "the injected failure ends the batch: {got}"
    );
    b.free_pages_bulk(&v[..got]).unwrap();
    b.set_fail_page_alloc(None);
    assert_eq!(b.nr_free_pages(), free);
    b.check().unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    Bulk(usize, u64),
    FreeBulk(usize, u64),
    One,
    FreeOne(usize),
    Drain,
    /// A block of order 1..=5 (orders up to 3 use the block caches and pools;
    /// 5 needs merged memory, so it merges the pools when the lists fall short).
    High(u32),
    FreeHigh(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..600, any::<u64>()).prop_map(|(n, z)| Op::Bulk(n, z)),
        4 => (0usize..700, any::<u64>()).prop_map(|(n, s)| Op::FreeBulk(n, s)),
        2 => Just(Op::One),
        2 => (0usize..10_000).prop_map(Op::FreeOne),
        1 => Just(Op::Drain),
        2 => (1u32..=5).prop_map(Op::High),
        2 => (0usize..10_000).prop_map(Op::FreeHigh),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Bulk and single calls mixed, against the set of live pages: the right
    /// number of distinct allocated pages from the allowed zones, exact free counts,
    /// the allocator's invariants after every step, and the boot free lists at the
    /// end.
    #[test]
    fn bulk_page_calls_match_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut m = map();
        let mut b = boot(&mut m);
        let free0 = b.nr_free_pages();
        b.drain();
        let info0 = Zone::ALL.map(|z| b.buddyinfo(z));
        let mut live: Vec<Pfn> = Vec::new();
        let mut high: Vec<(Pfn, u32)> = Vec::new();
        for op in ops {
            match op {
                Op::Bulk(n, z) => {
                    let gfp = [Gfp::KERNEL, Gfp::DMA, Gfp::HIGHMEM][(z % 3) as usize];
                    let mut v = vec![Pfn(0); n];
                    match b.alloc_pages_bulk(gfp, &mut v) {
                        Ok(got) => {
                            prop_assert!(got >= 1 && got <= n);
                            for &p in &v[..got] {
                                prop_assert!(gfp.zonelist().contains(&b.zone_of(p)));
                                prop_assert_eq!(b.page_count(p), Ok(1));
                            }
                            live.extend_from_slice(&v[..got]);
                        }
                        Err(e) => prop_assert_eq!(e, MmError::OutOfMemory),
                    }
                }
                Op::FreeBulk(n, seed) => {
                    let n = n.min(live.len());
                    let mut rng = mm::sim::Rng(seed | 1);
                    let mut list = Vec::new();
                    for _ in 0..n {
                        let i = rng.below(live.len() as u64) as usize;
                        list.push(live.swap_remove(i));
                    }
                    b.free_pages_bulk(&list).unwrap();
                }
                Op::One => {
                    if let Ok(p) = b.alloc_page(Gfp::KERNEL) {
                        live.push(p);
                    }
                }
                Op::FreeOne(i) => {
                    if !live.is_empty() {
                        let p = live.swap_remove(i % live.len());
                        b.__free_page(p).unwrap();
                    }
                }
                Op::Drain => b.drain(),
                Op::High(o) => {
                    if let Ok(p) = b.alloc_pages(Gfp::KERNEL, o) {
                        high.push((p, o));
                    }
                }
                Op::FreeHigh(i) => {
                    if !high.is_empty() {
                        let (p, o) = high.swap_remove(i % high.len());
                        b.__free_pages(p, o).unwrap();
                    }
                }
            }
            let set: BTreeSet<u32> = live.iter().map(|p| p.0).collect();
            prop_assert_eq!(set.len(), live.len(), "no page handed out twice");
            let in_high: u64 = high.iter().map(|&(_, o)| 1u64 << o).sum();
            prop_assert_eq!(b.nr_free_pages(), free0 - live.len() as u64 - in_high);
            prop_assert!(b.check().is_ok(), "{:?}", b.check());
        }
        b.free_pages_bulk(&live).unwrap();
        for (p, o) in high {
            b.__free_pages(p, o).unwrap();
        }
        b.drain();
        prop_assert_eq!(Zone::ALL.map(|z| b.buddyinfo(z)), info0);
    }
}

/// Pages past the cache go to the pool unmerged; they are free for every count
/// and every misuse check, a large request merges them, and so does `drain`.
#[test]
fn pooled_pages_are_free_checked_and_merge_on_demand() {
    let mut m = map();
    let mut b = boot(&mut m);
    let free0 = b.nr_free_pages();
    b.drain();
    let info0 = Zone::ALL.map(|z| b.buddyinfo(z));
    let mut v = vec![Pfn(0); 400];
    assert_eq!(b.alloc_pages_bulk(Gfp::KERNEL, &mut v), Ok(400));
    // Free in a scattered order: single calls for half, the bulk call for the rest.
    let mut order: Vec<Pfn> = v
        .iter()
        .step_by(2)
        .chain(v.iter().skip(1).step_by(2))
        .copied()
        .collect();
    order.reverse();
    for &p in &order[..200] {
        b.__free_page(p).unwrap();
    }
    b.free_pages_bulk(&order[200..]).unwrap();
    assert!(
        b.pooled_pages(Zone::Normal) > 0,
        "the cache overflowed into the pool"
    );
    assert_eq!(b.nr_free_pages(), free0);
    b.check().unwrap();
    // A pooled page freed again is a double free, by either call; nothing changes.
    let pooled = order[250];
    assert_eq!(b.page(pooled).unwrap().state(), mm::PageState::Cached);
    assert_eq!(b.__free_page(pooled), Err(MmError::DoubleFree(pooled)));
    assert_eq!(
        b.free_pages_bulk(&[pooled]),
        Err(BulkError {
            done: 0,
            err: MmError::DoubleFree(pooled)
        })
    );
    assert_eq!(b.page_count(pooled), Ok(0));
    b.check().unwrap();
    // A big block still comes (from merged memory), and `drain` merges the pool.
    let big = b.alloc_pages(Gfp::KERNEL, 9).unwrap();
    b.check().unwrap();
    b.__free_pages(big, 9).unwrap();
    b.drain();
    assert_eq!(b.pooled_pages(Zone::Normal), 0);
    assert_eq!(Zone::ALL.map(|z| b.buddyinfo(z)), info0);
    assert_eq!(b.nr_free_pages(), free0);
    // Reserving a range over a pooled page takes it out of the pool first.
    assert_eq!(b.alloc_pages_bulk(Gfp::KERNEL, &mut v), Ok(400));
    b.free_pages_bulk(&v).unwrap();
    let pooled = Pfn(b
        .mem_map()
        .iter()
        .position(|p| p.state() == mm::PageState::Cached && p.count == u32::MAX)
        .unwrap() as u32);
    b.reserve_range(pooled, Pfn(pooled.0 + 1), PageFlags::KERNEL_INIT)
        .unwrap();
    assert_eq!(b.pooled_pages(Zone::Normal), 0);
    assert_eq!(b.nr_free_pages(), free0 - 1);
    b.check().unwrap();
}

// ----------------------------------------------------------------------------
// Slab
// ----------------------------------------------------------------------------

/// The slab over the real buddy allocator on a 32 MiB machine.
struct Env {
    slab: Box<Slab>,
    mem: SimMem,
    buddy: Buddy<'static>,
}

impl Env {
    fn new() -> Env {
        let map: &'static mut [Page] = Box::leak(map().into_boxed_slice());
        let mut buddy = Buddy::page_init(map, Pfn(NPAGES), &[(Pfn(1), Pfn(NPAGES))], &[]).unwrap();
        let bits = vec![0u64; Buddy::slab_bits_words(NPAGES)];
        buddy.attach_slab_bits(Box::leak(bits.into_boxed_slice()));
        Env {
            slab: Box::new(Slab::new()),
            mem: SimMem::new(NPAGES as usize * PAGE_SIZE, 0xee),
            buddy,
        }
    }
}

#[test]
fn kmem_cache_bulk_round_trip_and_misuse() {
    let mut e = Env::new();
    let free0 = e.buddy.nr_free_pages();
    let c = e
        .slab
        .kmem_cache_create("bulk", 100, 8, SlabFlags::NONE, None)
        .unwrap();
    let d = e
        .slab
        .kmem_cache_create("other", 100, 8, SlabFlags::NONE, None)
        .unwrap();
    let mut v = vec![0u64; 1000];
    assert_eq!(
        e.slab
            .kmem_cache_alloc_bulk(&mut e.mem, &mut e.buddy, c, Gfp::KERNEL, &mut v),
        Ok(1000)
    );
    let set: BTreeSet<u64> = v.iter().copied().collect();
    assert_eq!(set.len(), 1000);
    assert_eq!(e.slab.cache_info(c).unwrap().active_objs, 1000);
    let other = e
        .slab
        .kmem_cache_alloc(&mut e.mem, &mut e.buddy, d, Gfp::KERNEL)
        .unwrap();
    let km = e
        .slab
        .kmalloc(&mut e.mem, &mut e.buddy, 100, Gfp::KERNEL)
        .unwrap();
    let cases = [
        (other, MmError::WrongCache(other)),
        (km, MmError::WrongCache(km)),
        (v[0] + 8, MmError::InvalidFree(v[0] + 8)),
        (v[1], MmError::ObjectDoubleFree(v[1])),
    ];
    let mut next = 0;
    for (bad, err) in cases {
        let list = [v[next], v[next + 1], bad, v[next + 2]];
        let live = e.slab.cache_info(c).unwrap().active_objs;
        assert_eq!(
            e.slab
                .kmem_cache_free_bulk(&mut e.mem, &mut e.buddy, c, &list),
            Err(BulkError { done: 2, err })
        );
        assert_eq!(e.slab.cache_info(c).unwrap().active_objs, live - 2);
        next += 2;
    }
    // Zero entries are skipped, as kmem_cache_free(0).
    let mut rest: Vec<u64> = v[next..].to_vec();
    rest.insert(3, 0);
    e.slab
        .kmem_cache_free_bulk(&mut e.mem, &mut e.buddy, c, &rest)
        .unwrap();
    assert_eq!(e.slab.cache_info(c).unwrap().active_objs, 0);
    // A destroyed cache is NotFound.
    e.slab
        .kmem_cache_free(&mut e.mem, &mut e.buddy, d, other)
        .unwrap();
    e.slab
        .kmem_cache_destroy(&mut e.mem, &mut e.buddy, d)
        .unwrap();
    let mut one = [0u64; 1];
    assert_eq!(
        e.slab
            .kmem_cache_alloc_bulk(&mut e.mem, &mut e.buddy, d, Gfp::KERNEL, &mut one),
        Err(MmError::NotFound)
    );
    assert_eq!(
        e.slab
            .kmem_cache_free_bulk(&mut e.mem, &mut e.buddy, d, &[v[0]]),
        Err(BulkError {
            done: 0,
            err: MmError::NotFound
        })
    );
    e.slab.kfree(&mut e.mem, &mut e.buddy, km).unwrap();
    e.slab
        .kmem_cache_destroy(&mut e.mem, &mut e.buddy, c)
        .unwrap();
    e.slab.shrink_all(&mut e.mem, &mut e.buddy).unwrap();
    assert_eq!(e.buddy.nr_free_pages(), free0, "nothing leaks");
}

#[test]
fn kmem_cache_alloc_bulk_is_all_or_nothing() {
    let mut e = Env::new();
    let c = e
        .slab
        .kmem_cache_create("big", 2048, 8, SlabFlags::NONE, None)
        .unwrap();
    // More than the machine holds: fails, and nothing stays allocated.
    let mut v = vec![0u64; 20_000];
    assert_eq!(
        e.slab
            .kmem_cache_alloc_bulk(&mut e.mem, &mut e.buddy, c, Gfp::KERNEL, &mut v),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(e.slab.cache_info(c).unwrap().active_objs, 0);
    // failslab: the same.
    e.slab
        .set_failslab(&mut e.mem, &mut e.buddy, Some(FaultConfig::ALWAYS))
        .unwrap();
    let mut w = vec![0u64; 10];
    assert_eq!(
        e.slab
            .kmem_cache_alloc_bulk(&mut e.mem, &mut e.buddy, c, Gfp::KERNEL, &mut w),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(e.slab.cache_info(c).unwrap().active_objs, 0);
    e.slab.set_failslab(&mut e.mem, &mut e.buddy, None).unwrap();
    // __GFP_ZERO zeroes every object.
    assert_eq!(
        e.slab
            .kmem_cache_alloc_bulk(&mut e.mem, &mut e.buddy, c, Gfp::KERNEL | Gfp::ZERO, &mut w),
        Ok(10)
    );
    for &o in &w {
        let p = e.mem.phys_of(o).unwrap();
        let mut buf = vec![0xffu8; 2048];
        e.mem.read(p, &mut buf);
        assert!(buf.iter().all(|&x| x == 0));
    }
    e.slab
        .kmem_cache_free_bulk(&mut e.mem, &mut e.buddy, c, &w)
        .unwrap();
    e.slab
        .kmem_cache_destroy(&mut e.mem, &mut e.buddy, c)
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Bulk and single object calls mixed, against the set of live objects: each
    /// object distinct and inside no other, the cache's live count exact, and the
    /// slab's own validation clean after every step.
    #[test]
    fn kmem_cache_bulk_calls_match_the_model(
        size in 8usize..3000,
        ops in prop::collection::vec((0u8..4, 0usize..400, any::<u64>()), 1..30),
    ) {
        let mut e = Env::new();
        let free0 = e.buddy.nr_free_pages();
        let c = e.slab.kmem_cache_create("prop", size, 8, SlabFlags::NONE, None).unwrap();
        let mut live: Vec<u64> = Vec::new();
        for (kind, n, seed) in ops {
            match kind {
                0 => {
                    let mut v = vec![0u64; n];
                    match e.slab.kmem_cache_alloc_bulk(&mut e.mem, &mut e.buddy, c, Gfp::KERNEL, &mut v) {
                        Ok(got) => { prop_assert_eq!(got, n); live.extend_from_slice(&v); }
                        Err(err) => prop_assert_eq!(err, MmError::OutOfMemory),
                    }
                }
                1 => {
                    let n = n.min(live.len());
                    let mut rng = mm::sim::Rng(seed | 1);
                    let list: Vec<u64> = (0..n)
                        .map(|_| live.swap_remove(rng.below(live.len() as u64) as usize))
                        .collect();
                    prop_assert!(e.slab.kmem_cache_free_bulk(&mut e.mem, &mut e.buddy, c, &list).is_ok());
                }
                2 => {
                    if let Ok(o) = e.slab.kmem_cache_alloc(&mut e.mem, &mut e.buddy, c, Gfp::KERNEL) {
                        live.push(o);
                    }
                }
                _ => {
                    if !live.is_empty() {
                        let o = live.swap_remove(seed as usize % live.len());
                        prop_assert!(e.slab.kmem_cache_free(&mut e.mem, &mut e.buddy, c, o).is_ok());
                    }
                }
            }
            let mut sorted = live.clone();
            sorted.sort_unstable();
            for w in sorted.windows(2) {
                prop_assert!(w[0] + size as u64 <= w[1], "objects overlap");
            }
            prop_assert_eq!(e.slab.cache_info(c).unwrap().active_objs, live.len() as u64);
            prop_assert!(e.buddy.check().is_ok());
        }
        prop_assert!(e.slab.kmem_cache_free_bulk(&mut e.mem, &mut e.buddy, c, &live).is_ok());
        e.slab.kmem_cache_destroy(&mut e.mem, &mut e.buddy, c).unwrap();
        e.slab.shrink_all(&mut e.mem, &mut e.buddy).unwrap();
        prop_assert_eq!(e.buddy.nr_free_pages(), free0);
    }
}
