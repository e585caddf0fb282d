//! Property tests of the watermarks: random allocation pressure through every
//! allocation API, with and without `Gfp::MEMALLOC`, mixed with frees and drains.
//!
//! After every step: a request without `MEMALLOC` never took a zone's free-list
//! frames below its `min` watermark (it may only take them while they stay at or
//! above it, or take cached frames, which are above it); a `BelowWatermark` error
//! names a zone that really is at its watermark; a `MEMALLOC` request fails only
//! when no zone of its list has a free block of that order; `Buddy::check` holds.
//! At the end everything is freed and the statistics are the boot ones.

use mm::buddy::Buddy;
use mm::{Gfp, MmError, Page, PageFlags, PageProvider, Pfn, Zone, MAX_ORDER};
use proptest::prelude::*;

const NPAGES: u32 = 8192;
const LOWMEM: u32 = 6144;

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Linux `alloc_pages(gfp, order)`; `memalloc` adds `Gfp::MEMALLOC`.
    Gfp {
        dma: bool,
        memalloc: bool,
        order: u32,
    },
    /// DragonOS `alloc_pages(zone, n)`.
    Zone {
        dma: bool,
        n: u64,
    },
    /// A slab block.
    Slab {
        dma: bool,
        memalloc: bool,
        order: u32,
    },
    /// Frees the `idx`-th live block (modulo).
    Free {
        idx: usize,
    },
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (any::<bool>(), prop::bool::weighted(0.2), 0u32..=5)
            .prop_map(|(dma, memalloc, order)| Op::Gfp { dma, memalloc, order }),
        4 => (any::<bool>(), 1u64..=63).prop_map(|(dma, n)| Op::Zone { dma, n }),
        2 => (any::<bool>(), prop::bool::weighted(0.3), 0u32..=3)
            .prop_map(|(dma, memalloc, order)| Op::Slab { dma, memalloc, order }),
        4 => any::<usize>().prop_map(|idx| Op::Free { idx }),
        1 => Just(Op::Drain),
    ]
}

/// `GFP_DMA` or `GFP_KERNEL`, with `MEMALLOC` if asked.
fn gfp_of(dma: bool, memalloc: bool) -> Gfp {
    let zones = if dma { Gfp::DMA } else { Gfp::KERNEL };
    if memalloc {
        zones | Gfp::MEMALLOC
    } else {
        zones
    }
}

/// Free-list frames per zone (the watermarks' measure).
fn listed(b: &Buddy) -> [u64; 3] {
    Zone::ALL.map(|z| {
        let s = b.zone_stat(z);
        s.free - s.cached
    })
}

#[derive(Clone, Copy)]
enum Live {
    Order(Pfn),
    Count(Pfn, u64),
    Slab(Pfn, u32),
}

fn run(min_free_kb: u64, ops: &[Op]) {
    let mut map = vec![Page::reserved(Zone::Dma); NPAGES as usize];
    let mut bits = vec![0; Buddy::slab_bits_words(LOWMEM)];
    let mut b = Buddy::page_init(&mut map, Pfn(LOWMEM), &[(Pfn(16), Pfn(NPAGES))], &[]).unwrap();
    b.attach_slab_bits(&mut bits);
    b.setup_watermarks(min_free_kb);
    b.check().unwrap();
    let boot = b.mm_stat();
    let marks = Zone::ALL.map(|z| b.watermarks(z));
    let mut live: Vec<Live> = Vec::new();
    for op in ops {
        let before = listed(&b);
        let (memalloc, order, zones, r) = match *op {
            Op::Gfp {
                dma,
                memalloc,
                order,
            } => {
                let gfp = gfp_of(dma, memalloc);
                let r = b.alloc_pages(gfp, order);
                if let Ok(p) = r {
                    live.push(Live::Order(p));
                }
                (memalloc, order, gfp.zonelist(), r)
            }
            Op::Zone { dma, n } => {
                let zone = if dma { Zone::Dma } else { Zone::Normal };
                let r = b.alloc_pages_zone(zone, n, PageFlags::EMPTY);
                if let Ok(p) = r {
                    live.push(Live::Count(p, n));
                }
                let zl: &[Zone] = if dma { &[Zone::Dma] } else { &[Zone::Normal] };
                (false, n.next_power_of_two().trailing_zeros(), zl, r)
            }
            Op::Slab {
                dma,
                memalloc,
                order,
            } => {
                let gfp = gfp_of(dma, memalloc);
                let r = b.alloc_slab_block(order, gfp);
                if let Ok(p) = r {
                    live.push(Live::Slab(p, order));
                }
                (memalloc, order, gfp.zonelist(), r)
            }
            Op::Free { idx } => {
                if !live.is_empty() {
                    match live.swap_remove(idx % live.len()) {
                        Live::Order(p) => b.__free_pages(p, b.page(p).unwrap().order()).unwrap(),
                        Live::Count(p, n) => b.free_pages_count(p, n).unwrap(),
                        Live::Slab(p, o) => b.free_slab_block(p, o).unwrap(),
                    }
                }
                b.check().unwrap();
                continue;
            }
            Op::Drain => {
                b.drain();
                b.check().unwrap();
                continue;
            }
        };
        let after = listed(&b);
        if !memalloc {
            for (i, z) in Zone::ALL.into_iter().enumerate() {
                let min = marks[i][0];
                assert!(
                    after[i] >= before[i] || after[i] >= min,
                    "{op:?} took zone {z} from {} to {} below min {min}",
                    before[i],
                    after[i]
                );
            }
        }
        match r {
            Ok(_) => {}
            Err(MmError::BelowWatermark { zone, free, min }) => {
                assert!(!memalloc, "MEMALLOC stopped by a watermark");
                assert!(zones.contains(&zone));
                assert_eq!(min, marks[zone as usize][0]);
                assert_eq!(free, after[zone as usize]);
                assert!(
                    free < min + (1 << order),
                    "{free} free, min {min}, order {order}"
                );
            }
            Err(MmError::OutOfMemory) if memalloc => {
                // No zone of the list has a block of that order (caches drained).
                for &z in zones {
                    let big: u64 = b.zone_stat(z).nr_free[order as usize..=MAX_ORDER as usize]
                        .iter()
                        .sum();
                    assert_eq!(big, 0, "{op:?} failed with a block in zone {z}");
                }
            }
            Err(MmError::OutOfMemory) => {}
            Err(e) => panic!("{op:?}: unexpected {e:?}"),
        }
        b.check().unwrap();
    }
    for l in live {
        match l {
            Live::Order(p) => b.__free_pages(p, b.page(p).unwrap().order()).unwrap(),
            Live::Count(p, n) => b.free_pages_count(p, n).unwrap(),
            Live::Slab(p, o) => b.free_slab_block(p, o).unwrap(),
        }
    }
    b.drain();
    b.check().unwrap();
    assert_eq!(b.mm_stat(), boot);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// A large reserve (so the watermarks are hit often), then random steps.
    #[test]
    fn watermarks_hold_under_pressure(
        kb in prop_oneof![Just(0u64), 512u64..8192],
        fill in 0usize..200,
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let mut all = vec![Op::Gfp { dma: false, memalloc: false, order: 3 }; fill];
        all.extend(ops);
        run(kb, &all);
    }
}
