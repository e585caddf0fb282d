//! Property tests of long bursts against a model: hundreds to thousands of blocks
//! of orders 0..=3 allocated by single calls and by `alloc_pages_bulk`, freed in
//! random orders by every free function and by `free_pages_bulk`, mixed with
//! large requests (memory pressure that makes the cache lists go back to the free
//! lists and merge), `drain` and misuse. The model is the set of live blocks; after
//! every step the counters must match it and `check` must pass, and at the end
//! freeing everything gives back the boot-time free lists.

use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::sim::Rng;

/// 32 MiB: ZONE_DMA [0, 4096), a small ZONE_NORMAL [4096, 6000) (its cache lists
/// hold at most 952 pages, so bursts overflow them), ZONE_UNMAPPED [6000, 8192).
const NPAGES: u32 = 8192;
const LOWMEM: u32 = 6000;

fn boot(map: &mut [Page]) -> Buddy<'_> {
    Buddy::page_init(
        map,
        Pfn(LOWMEM),
        &[(Pfn(1), Pfn(NPAGES))],
        &[(Pfn(300), Pfn(700), PageFlags::KERNEL_INIT)],
    )
    .unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    /// Allocate `n` blocks of `order` one call each (gfp by selector).
    Burst {
        order: u32,
        n: usize,
        gfp: u8,
    },
    /// Free about `pct`% of the live blocks, in a random order, by a random free
    /// function each.
    FreeSome {
        pct: u8,
        seed: u64,
    },
    /// `alloc_pages_bulk` of `n` pages.
    Bulk {
        n: usize,
        gfp: u8,
    },
    /// `free_pages_bulk` of about `pct`% of the live order-0 blocks, shuffled.
    FreeBulk {
        pct: u8,
        seed: u64,
    },
    /// A large block (orders 5..=9): drains and merges when the free lists are short.
    Big {
        order: u32,
    },
    /// A free that must fail and change nothing.
    Misuse {
        seed: u64,
    },
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u32..=3, 1usize..1500, 0u8..3).prop_map(|(order, n, gfp)| Op::Burst { order, n, gfp }),
        4 => (10u8..=100, any::<u64>()).prop_map(|(pct, seed)| Op::FreeSome { pct, seed }),
        2 => (1usize..1500, 0u8..3).prop_map(|(n, gfp)| Op::Bulk { n, gfp }),
        2 => (10u8..=100, any::<u64>()).prop_map(|(pct, seed)| Op::FreeBulk { pct, seed }),
        1 => (5u32..=9).prop_map(|order| Op::Big { order }),
        2 => any::<u64>().prop_map(|seed| Op::Misuse { seed }),
        1 => Just(Op::Drain),
    ]
}

fn gfp_of(sel: u8) -> Gfp {
    match sel {
        0 => Gfp::KERNEL,
        1 => Gfp::DMA,
        _ => Gfp::HIGHMEM,
    }
}

/// The model: live blocks by head PFN (their order), and pages handed out.
struct Model {
    live: BTreeMap<u32, u32>,
    pages: u64,
}

impl Model {
    fn add(&mut self, b: &Buddy, pfn: Pfn, order: u32, gfp: Gfp) {
        assert!(
            pfn.0.is_multiple_of(1 << order),
            "{pfn} not aligned to {order}"
        );
        assert!(
            gfp.zonelist().contains(&b.zone_of(pfn)),
            "{pfn} from a wrong zone"
        );
        // No overlap with a live block (the neighbours in PFN order).
        let end = pfn.0 + (1 << order);
        if let Some((&s, &o)) = self.live.range(..=pfn.0).next_back() {
            assert!(s + (1 << o) <= pfn.0, "{pfn} overlaps live block {s:#x}");
        }
        if let Some((&s, _)) = self.live.range(pfn.0..).next() {
            assert!(end <= s, "{pfn} overlaps live block {s:#x}");
        }
        self.live.insert(pfn.0, order);
        self.pages += 1 << order;
    }

    fn remove(&mut self, pfn: u32) -> u32 {
        let o = self.live.remove(&pfn).unwrap();
        self.pages -= 1 << o;
        o
    }

    /// About `pct`% of the live blocks (of `order` only if given), shuffled.
    fn pick(&self, pct: u8, seed: u64, order: Option<u32>) -> Vec<u32> {
        let mut rng = Rng(seed | 1);
        let mut v: Vec<u32> = self
            .live
            .iter()
            .filter(|&(_, &o)| order.is_none_or(|x| x == o))
            .map(|(&p, _)| p)
            .filter(|_| rng.below(100) < pct as u64)
            .collect();
        for i in (1..v.len()).rev() {
            v.swap(i, rng.below(i as u64 + 1) as usize);
        }
        v
    }
}

fn verify(b: &Buddy, m: &Model, free0: u64) -> Result<(), TestCaseError> {
    prop_assert_eq!(b.nr_free_pages(), free0 - m.pages);
    if let Err(e) = b.check() {
        return Err(TestCaseError::fail(format!("check: {e:?}")));
    }
    for z in Zone::ALL {
        let s = b.zone_stat(z);
        prop_assert!(s.cached <= s.free);
        let zd = &b.zones[z as usize];
        for o in 0..PCP_ORDERS {
            prop_assert!(zd.pcp_len[o] <= zd.pcp_max[o], "cache list over its bound");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn long_bursts_match_the_model(ops in prop::collection::vec(op(), 1..30)) {
        let mut map = vec![Page::reserved(Zone::Dma); NPAGES as usize];
        let mut b = boot(&mut map);
        let free0 = b.nr_free_pages();
        b.drain();
        let info0 = Zone::ALL.map(|z| b.buddyinfo(z));
        let mut m = Model { live: BTreeMap::new(), pages: 0 };
        for op in ops {
            match op {
                Op::Burst { order, n, gfp } => {
                    let g = gfp_of(gfp);
                    for _ in 0..n {
                        match b.alloc_pages(g, order) {
                            Ok(p) => m.add(&b, p, order, g),
                            Err(MmError::OutOfMemory | MmError::BelowWatermark { .. }) => break,
                            Err(e) => prop_assert!(false, "alloc_pages: {e:?}"),
                        }
                    }
                }
                Op::FreeSome { pct, seed } => {
                    for (i, p) in m.pick(pct, seed, None).into_iter().enumerate() {
                        let o = m.remove(p);
                        let r = match (i % 4, o) {
                            (0, _) => b.__free_pages(Pfn(p), o),
                            (1, _) => b.put_page(Pfn(p)).map(|freed| assert!(freed)),
                            (2, 0..=5) => b.free_pages_count(Pfn(p), 1 << o),
                            (2, _) => b.__free_pages(Pfn(p), o),
                            _ => b.page_decref(Pfn(p)).map(|freed| assert!(freed)),
                        };
                        prop_assert_eq!(r, Ok(()));
                    }
                }
                Op::Bulk { n, gfp } => {
                    let g = gfp_of(gfp);
                    let mut v = vec![Pfn(0); n];
                    match b.alloc_pages_bulk(g, &mut v) {
                        Ok(k) => {
                            prop_assert!(k >= 1 && k <= n);
                            for &p in &v[..k] {
                                m.add(&b, p, 0, g);
                            }
                        }
                        Err(MmError::OutOfMemory | MmError::BelowWatermark { .. }) => {}
                        Err(e) => prop_assert!(false, "alloc_pages_bulk: {e:?}"),
                    }
                }
                Op::FreeBulk { pct, seed } => {
                    let v: Vec<Pfn> = m.pick(pct, seed, Some(0)).into_iter().map(Pfn).collect();
                    prop_assert_eq!(b.free_pages_bulk(&v), Ok(()));
                    for p in v {
                        m.remove(p.0);
                    }
                }
                Op::Big { order } => match b.alloc_pages(Gfp::KERNEL, order) {
                    Ok(p) => m.add(&b, p, order, Gfp::KERNEL),
                    Err(MmError::OutOfMemory | MmError::BelowWatermark { .. }) => {}
                    Err(e) => prop_assert!(false, "alloc_pages({order}): {e:?}"),
                },
                Op::Misuse { seed } => {
                    let before = b.nr_free_pages();
                    let mut rng = Rng(seed | 1);
                    let live: Vec<(u32, u32)> = m.live.iter().map(|(&p, &o)| (p, o)).collect();
                    if live.is_empty() {
                        continue;
                    }
                    let (p, o) = live[rng.below(live.len() as u64) as usize];
                    // A wrong order, a tail frame, and (after a real free) a double free.
                    prop_assert!(b.__free_pages(Pfn(p), (o + 1) % 4).is_err());
                    if o > 0 {
                        prop_assert!(b.__free_pages(Pfn(p + 1), 0).is_err());
                        prop_assert!(b.free_pages_bulk(&[Pfn(p + 1)]).is_err());
                    }
                    prop_assert_eq!(b.nr_free_pages(), before);
                    prop_assert_eq!(b.__free_pages(Pfn(p), o), Ok(()));
                    m.remove(p);
                    prop_assert!(b.__free_pages(Pfn(p), o).is_err());
                    prop_assert!(b.put_page(Pfn(p)).is_err());
                    if o == 0 {
                        prop_assert!(b.free_pages_bulk(&[Pfn(p)]).is_err());
                    }
                }
                Op::Drain => {
                    b.drain();
                    for z in Zone::ALL {
                        prop_assert_eq!(b.zone_stat(z).cached, 0);
                        prop_assert_eq!(b.pooled_pages(z), 0);
                    }
                }
            }
            verify(&b, &m, free0)?;
        }
        // Everything back, merged: the boot-time free lists.
        let all: Vec<(u32, u32)> = m.live.iter().map(|(&p, &o)| (p, o)).collect();
        for (p, o) in all {
            prop_assert_eq!(b.__free_pages(Pfn(p), o), Ok(()));
            m.remove(p);
        }
        verify(&b, &m, free0)?;
        b.drain();
        prop_assert_eq!(Zone::ALL.map(|z| b.buddyinfo(z)), info0);
        prop_assert_eq!(b.nr_free_pages(), free0);
    }
}

/// A burst larger than a cache list's bound returns half the list to the free
/// lists (where it merges) and keeps pushing: the list never passes its bound,
/// and the pages stay free and checked.
#[test]
fn overflowing_a_cache_list_returns_half_and_merges() {
    let mut map = vec![Page::reserved(Zone::Dma); NPAGES as usize];
    let mut b = boot(&mut map);
    let free0 = b.nr_free_pages();
    let max = b.zones[Zone::Normal as usize].pcp_max[0];
    assert_eq!(max as u64, b.zone_stat(Zone::Normal).managed / 2);
    let mut v = Vec::new();
    while let Ok(p) = b.alloc_pages(Gfp::KERNEL, 0) {
        if b.zone_of(p) != Zone::Normal {
            b.__free_pages(p, 0).unwrap();
            break;
        }
        v.push(p);
    }
    assert!(v.len() as u32 > max, "the burst is larger than the list");
    let info_full = b.buddyinfo(Zone::Normal);
    for (i, &p) in v.iter().enumerate() {
        b.__free_pages(p, 0).unwrap();
        let len = b.zones[Zone::Normal as usize].pcp_len[0];
        assert!(len <= max);
        if i as u32 == max {
            // The push that found the list full returned half of it first.
            assert_eq!(len, max / 2 + 1);
        }
    }
    assert_ne!(
        b.buddyinfo(Zone::Normal),
        info_full,
        "returned blocks merged"
    );
    assert!(b.pooled_pages(Zone::Normal) > 0);
    assert_eq!(b.nr_free_pages(), free0);
    b.check().unwrap();
}
