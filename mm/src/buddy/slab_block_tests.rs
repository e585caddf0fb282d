//! Tests of the buddy allocator as the slab's page provider
//! (`PageProvider::alloc_slab_block` / `free_slab_block`): the round trip through
//! the block caches (the fast paths), every misuse of `free_slab_block` (nothing
//! may change), `fail_page_alloc`, and a property test against a model with a slab
//! bitmap that covers only part of the memory (no slab block may lie beyond it).

use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::fault::FaultConfig;

/// 64 MiB: ZONE_DMA [0, 4096) with RAM from 1 and a kernel at [256, 600), ZONE_NORMAL
/// [4096, 10000), ZONE_UNMAPPED [10000, 16384).
const NPAGES: u32 = 16384;
const LOWMEM: u32 = 10000;
const KERNEL: (u32, u32) = (256, 600);

fn boot(map: &mut [Page]) -> Buddy<'_> {
    let b = Buddy::page_init(
        map,
        Pfn(LOWMEM),
        &[(Pfn(1), Pfn(NPAGES))],
        &[(Pfn(KERNEL.0), Pfn(KERNEL.1), PageFlags::KERNEL_INIT)],
    )
    .unwrap();
    b.check().unwrap();
    b
}

fn map() -> Vec<Page> {
    vec![Page::reserved(Zone::Dma); NPAGES as usize]
}

/// The slab scribbles over every field it owns (as `grow_taken` and its lists do).
fn scribble(b: &mut Buddy, s: Pfn, order: u32) {
    for i in 0..1u32 << order {
        let p = PageProvider::page_mut(b, Pfn(s.0 + i)).unwrap();
        p.slab_cache = 7;
        p.count = 99;
        p.next = s.0;
        p.prev = 1234;
    }
}

#[test]
fn slab_blocks_round_trip_through_the_cache_lists() {
    let mut m = map();
    let mut bits = vec![0u64; Buddy::slab_bits_words(NPAGES)];
    let mut b = boot(&mut m);
    b.attach_slab_bits(&mut bits);
    let free = b.nr_free_pages();
    for (order, gfp, zone) in [
        (0, Gfp::KERNEL, Zone::Normal),
        (1, Gfp::KERNEL, Zone::Normal),
        (2, Gfp::KERNEL | Gfp::HIGHMEM, Zone::Normal),
        (3, Gfp::KERNEL, Zone::Normal),
        (1, Gfp::DMA, Zone::Dma),
        (3, Gfp::DMA, Zone::Dma),
    ] {
        let (z, o) = (zone as usize, order as usize);
        // The first one refills the cache list (slow path), the second pops it.
        let s0 = b.alloc_slab_block(order, gfp).unwrap();
        let s = b.alloc_slab_block(order, gfp).unwrap();
        let len = b.zones[z].pcp_len[o];
        assert!(len > 0, "order {order}: refill left the list empty");
        for x in [s0, s] {
            assert_eq!(b.zone_of(x), zone);
            assert_eq!(x.0 % (1 << order), 0);
            let mut want = tmpl(zone, PageState::Slab);
            want.set_order(order);
            assert_eq!(*b.page(x).unwrap(), want);
        }
        scribble(&mut b, s, order);
        b.check().unwrap();
        // Free: onto the cache list (LIFO), head cached, tails back to the template.
        b.free_slab_block(s, order).unwrap();
        assert_eq!(b.zones[z].pcp_len[o], len + 1);
        assert_eq!(b.zones[z].pcp[o], s.0);
        let h = b.page(s).unwrap();
        assert_eq!(h.state(), PageState::Cached);
        assert_eq!(h.count, POOLED);
        assert_eq!(h.slab_cache, 0);
        for i in 1..1u32 << order {
            assert_eq!(*b.page(Pfn(s.0 + i)).unwrap(), tmpl(zone, PageState::Tail));
        }
        b.check().unwrap();
        // The next slab block of the order is the same block (the cache pop).
        assert_eq!(b.alloc_slab_block(order, gfp), Ok(s));
        assert_eq!(b.zones[z].pcp_len[o], len);
        scribble(&mut b, s, order);
        b.free_slab_block(s, order).unwrap();
        // The caches are shared with the page allocator (same zone and order).
        let g = if zone == Zone::Dma {
            Gfp::DMA
        } else {
            Gfp::KERNEL
        };
        let p = b.alloc_pages(g, order).unwrap();
        assert_eq!(p, s);
        b.__free_pages(p, order).unwrap();
        b.free_slab_block(s0, order).unwrap();
        b.check().unwrap();
        assert_eq!(b.nr_free_pages(), free);
    }
}

#[test]
fn free_slab_block_misuse_changes_nothing() {
    let mut m = map();
    let mut bits = vec![0u64; Buddy::slab_bits_words(NPAGES)];
    let mut b = boot(&mut m);
    b.attach_slab_bits(&mut bits);
    for order in [0, 1, 2, 3, 5] {
        let s = b.alloc_slab_block(order, Gfp::KERNEL).unwrap();
        let a = b.alloc_pages(Gfp::KERNEL, order).unwrap();
        scribble(&mut b, s, order);
        let before = b.mem_map().to_vec();
        let free = b.nr_free_pages();
        let mut tries: Vec<(Pfn, u32, MmError)> = vec![
            (
                s,
                order + 1,
                MmError::WrongSize {
                    pfn: s,
                    expected: order as u64,
                    got: order as u64 + 1,
                },
            ),
            (a, order, MmError::Invalid("not a slab block")),
            (Pfn(KERNEL.0), 0, MmError::Reserved(Pfn(KERNEL.0))),
            (Pfn(0), 0, MmError::NotRam(0)),
            (Pfn(NPAGES), 0, MmError::NotRam(Pfn(NPAGES).phys())),
            (s, MAX_ORDER + 1, MmError::BadOrder(MAX_ORDER + 1)),
        ];
        if order > 0 {
            tries.push((
                s,
                order - 1,
                MmError::WrongSize {
                    pfn: s,
                    expected: order as u64,
                    got: order as u64 - 1,
                },
            ));
            let t = Pfn(s.0 + (1 << order) - 1);
            tries.push((t, order, MmError::SlabPage(t)));
            tries.push((t, 0, MmError::SlabPage(t)));
        }
        for (pfn, o, err) in tries {
            assert_eq!(b.free_slab_block(pfn, o), Err(err), "{pfn} order {o}");
            assert!(
                b.mem_map() == &before[..],
                "{pfn} order {o} changed mem_map"
            );
            assert_eq!(b.nr_free_pages(), free);
            b.check().unwrap();
        }
        b.free_slab_block(s, order).unwrap();
        // Double free, of the head and of a tail (the block is cached or free now).
        assert_eq!(b.free_slab_block(s, order), Err(MmError::DoubleFree(s)));
        if order > 0 {
            let t = Pfn(s.0 + 1);
            assert_eq!(b.free_slab_block(t, order), Err(MmError::DoubleFree(t)));
        }
        // The block handed out again as pages: not a slab block.
        if order <= PCP_MAX_ORDER {
            let p = b.alloc_pages(Gfp::KERNEL, order).unwrap();
            assert_eq!(p, s);
            assert_eq!(
                b.free_slab_block(p, order),
                Err(MmError::Invalid("not a slab block"))
            );
            b.__free_pages(p, order).unwrap();
        }
        b.__free_pages(a, order).unwrap();
        b.check().unwrap();
    }
}

#[test]
fn slab_frees_overflow_the_cache_list() {
    // More order-0 slab blocks of ZONE_DMA than its cache list holds: the frees
    // past the bound take the slow path, which returns half of the list first.
    let mut m = map();
    let mut bits = vec![0u64; Buddy::slab_bits_words(NPAGES)];
    let mut b = boot(&mut m);
    b.attach_slab_bits(&mut bits);
    let free = b.nr_free_pages();
    let max = b.zones[Zone::Dma as usize].pcp_max[0] as usize;
    let mut v = Vec::new();
    while let Ok(s) = b.alloc_slab_block(0, Gfp::DMA) {
        v.push(s);
    }
    assert!(v.len() > max + 10, "{} blocks, bound {max}", v.len());
    for (i, &s) in v.iter().enumerate() {
        b.free_slab_block(s, 0).unwrap();
        assert!(b.zones[Zone::Dma as usize].pcp_len[0] as usize <= max);
        if i % 256 == 0 {
            b.check().unwrap();
        }
    }
    b.check().unwrap();
    assert_eq!(b.nr_free_pages(), free);
    b.drain();
    assert_eq!(b.buddyinfo(Zone::Dma), {
        let mut m2 = map();
        let b2 = boot(&mut m2);
        b2.buddyinfo(Zone::Dma)
    });
}

#[test]
fn armed_fail_page_alloc_slab_frees_bypass_the_caches() {
    let mut m = map();
    let mut bits = vec![0u64; Buddy::slab_bits_words(NPAGES)];
    let mut b = boot(&mut m);
    b.attach_slab_bits(&mut bits);
    let free = b.nr_free_pages();
    let s = b.alloc_slab_block(1, Gfp::KERNEL).unwrap();
    b.set_fail_page_alloc(Some(FaultConfig::ALWAYS));
    assert_eq!(b.zone_stat(Zone::Normal).cached, 0);
    // Slab blocks are not failed by fail_page_alloc (failslab decides)...
    let t = b.alloc_slab_block(1, Gfp::KERNEL).unwrap();
    scribble(&mut b, s, 1);
    // ... and their frees go to the free lists while it is armed.
    b.free_slab_block(s, 1).unwrap();
    b.free_slab_block(t, 1).unwrap();
    assert_eq!(b.zone_stat(Zone::Normal).cached, 0);
    assert_ne!(b.page(s).unwrap().state(), PageState::Cached);
    assert_eq!(b.alloc_pages(Gfp::KERNEL, 1), Err(MmError::OutOfMemory));
    b.check().unwrap();
    b.set_fail_page_alloc(None);
    assert_eq!(b.nr_free_pages(), free);
}

/// The largest PFN a slab block may reach in the property test's bitmap cut.
fn cut_of(sel: u8) -> u32 {
    // In ZONE_DMA, at the DMA/NORMAL boundary, inside ZONE_NORMAL (not aligned to
    // any order), at lowmem, everything.
    [2000, 4096, 5003, 7777, LOWMEM, NPAGES][sel as usize % 6]
}

#[derive(Clone, Debug)]
enum Op {
    Slab { order: u32, dma: bool, n: usize },
    Pages { order: u32, n: usize, gfp: u8 },
    FreeSlabs { pct: u8, seed: u64 },
    FreePages { pct: u8, seed: u64 },
    Misuse { seed: u64 },
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..=4, any::<bool>(), 1usize..300).prop_map(|(order, dma, n)| Op::Slab { order, dma, n }),
        3 => (0u32..=3, 1usize..400, 0u8..4).prop_map(|(order, n, gfp)| Op::Pages { order, n, gfp }),
        3 => (10u8..=100, any::<u64>()).prop_map(|(pct, seed)| Op::FreeSlabs { pct, seed }),
        3 => (10u8..=100, any::<u64>()).prop_map(|(pct, seed)| Op::FreePages { pct, seed }),
        2 => any::<u64>().prop_map(|seed| Op::Misuse { seed }),
        1 => Just(Op::Drain),
    ]
}

/// Removes about `pct`% of `live` (a pseudo-random choice by `seed`).
fn take_some(live: &mut BTreeMap<u32, u32>, pct: u8, seed: u64) -> Vec<(u32, u32)> {
    let mut rng = crate::sim::Rng(seed | 1);
    let keys: Vec<(u32, u32)> = live.iter().map(|(&k, &v)| (k, v)).collect();
    let mut out = Vec::new();
    for (k, v) in keys {
        if rng.below(100) < pct as u64 {
            live.remove(&k);
            out.push((k, v));
        }
    }
    // Not in PFN order.
    for i in (1..out.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        out.swap(i, j);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Slab blocks and page blocks through the shared cache lists, with a slab
    /// bitmap that ends at `cut`: no slab block ever reaches past it (even when an
    /// uncovered block sits on top of a cache list), every misuse is refused with
    /// nothing changed, the counters match the model after every step, and freeing
    /// everything gives back every frame.
    #[test]
    fn slab_blocks_stay_under_the_bitmap(sel in any::<u8>(), ops in prop::collection::vec(op(), 1..40)) {
        let cut = cut_of(sel);
        let mut m = map();
        let mut bits = vec![!0u64; Buddy::slab_bits_words(cut)];
        let mut b = boot(&mut m);
        b.attach_slab_bits(&mut bits);
        let free = b.nr_free_pages();
        let mut slabs: BTreeMap<u32, u32> = BTreeMap::new();
        let mut pages: BTreeMap<u32, u32> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Slab { order, dma, n } => {
                    let gfp = if dma { Gfp::DMA } else { Gfp::KERNEL };
                    for _ in 0..n {
                        let Ok(s) = b.alloc_slab_block(order, gfp) else { break };
                        prop_assert!(s.0 + (1 << order) <= cut, "slab block {} order {} past {}", s, order, cut);
                        prop_assert!(b.zone_of(s) != Zone::Unmapped);
                        if dma {
                            prop_assert_eq!(b.zone_of(s), Zone::Dma);
                        }
                        prop_assert_eq!(b.page(s).unwrap().state(), PageState::Slab);
                        scribble(&mut b, s, order);
                        prop_assert!(slabs.insert(s.0, order).is_none());
                    }
                }
                Op::Pages { order, n, gfp } => {
                    let gfp = [Gfp::KERNEL, Gfp::KERNEL, Gfp::DMA, Gfp::KERNEL | Gfp::HIGHMEM][gfp as usize % 4];
                    for _ in 0..n {
                        let Ok(p) = b.alloc_pages(gfp, order) else { break };
                        prop_assert!(pages.insert(p.0, order).is_none());
                    }
                }
                Op::FreeSlabs { pct, seed } => {
                    for (s, o) in take_some(&mut slabs, pct, seed) {
                        prop_assert_eq!(b.free_slab_block(Pfn(s), o), Ok(()));
                    }
                }
                Op::FreePages { pct, seed } => {
                    for (p, o) in take_some(&mut pages, pct, seed) {
                        prop_assert_eq!(b.__free_pages(Pfn(p), o), Ok(()));
                    }
                }
                Op::Misuse { seed } => {
                    let mut rng = crate::sim::Rng(seed | 1);
                    let before = b.mem_map().to_vec();
                    let pfn = Pfn(rng.below(NPAGES as u64 + 2) as u32);
                    let order = rng.below(MAX_ORDER as u64 + 2) as u32;
                    let legal = slabs.get(&pfn.0) == Some(&order);
                    if !legal {
                        prop_assert!(b.free_slab_block(pfn, order).is_err());
                        prop_assert!(b.mem_map() == &before[..]);
                    }
                    // A page block freed as a slab block, a slab block with the
                    // wrong order.
                    if let Some((&p, &o)) = pages.iter().nth(rng.below(pages.len() as u64 + 1) as usize) {
                        prop_assert_eq!(b.free_slab_block(Pfn(p), o), Err(MmError::Invalid("not a slab block")));
                    }
                    if let Some((&s, &o)) = slabs.iter().nth(rng.below(slabs.len() as u64 + 1) as usize) {
                        let wrong = matches!(b.free_slab_block(Pfn(s), o + 1), Err(MmError::WrongSize { .. }));
                        prop_assert!(wrong, "slab block {} freed with order {}", s, o + 1);
                    }
                    prop_assert!(b.mem_map() == &before[..]);
                }
                Op::Drain => b.drain(),
            }
            let used: u64 = slabs.values().chain(pages.values()).map(|&o| 1u64 << o).sum();
            prop_assert_eq!(b.nr_free_pages(), free - used);
            b.check().map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        }
        for (s, o) in core::mem::take(&mut slabs) {
            prop_assert_eq!(b.free_slab_block(Pfn(s), o), Ok(()));
        }
        for (p, o) in core::mem::take(&mut pages) {
            prop_assert_eq!(b.__free_pages(Pfn(p), o), Ok(()));
        }
        prop_assert_eq!(b.nr_free_pages(), free);
        b.check().map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    }
}
