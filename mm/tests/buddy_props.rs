//! Property tests of the buddy allocator against a model.
//!
//! A simulated 64 MiB machine (holes, reserved kernel ranges, a lowmem limit that is
//! not 4 MiB aligned so all three zones exist and a zone boundary cuts a max-order
//! block) runs random sequences of every page API, correct uses and misuses mixed.
//! The model is the set of live blocks; after every step we check: no overlap,
//! natural alignment, the zone the request allows (and the Gfp fallback rules: a
//! later zone is used only when the earlier ones have no block of that order), exact
//! free counts per zone, reference counts and shared pages, every misuse reported with
//! the exact error and without any change to the mem_map or the statistics. At the end
//! everything is freed and, after `drain`, the free lists are exactly the boot ones.

use std::collections::{BTreeMap, BTreeSet};

use mm::buddy::{Buddy, ZoneStat, NR_ORDERS};
use mm::sim::SimMem;
use mm::{
    Gfp, MmError, Page, PageFlags, PageProvider, PageState, Pfn, PhysMem, Zone, MAX_ORDER,
    PAGE_SIZE,
};
use proptest::prelude::*;

const NPAGES: u32 = 16384;
const LOWMEM: u32 = 10000;
const DMA_END: u32 = 4096;
const RAM: [(u32, u32); 4] = [(1, 159), (256, 3000), (3100, 12000), (12005, 16384)];
const RESERVED: [(u32, u32); 2] = [(256, 600), (3100, 3164)];

fn is_ram(pfn: u32) -> bool {
    RAM.iter().any(|&(s, e)| s <= pfn && pfn < e)
}

fn is_reserved(pfn: u32) -> bool {
    RESERVED.iter().any(|&(s, e)| s <= pfn && pfn < e)
}

fn zone_of(pfn: u32) -> Zone {
    if pfn < DMA_END {
        Zone::Dma
    } else if pfn < LOWMEM {
        Zone::Normal
    } else {
        Zone::Unmapped
    }
}

/// Boots over `map` with the slab liveness bitmap `bits` (which should cover
/// `LOWMEM` frames, like the kernel's: all of ZONE_DMA and ZONE_NORMAL).
fn boot<'a>(map: &'a mut [Page], bits: &'a mut [u64]) -> Buddy<'a> {
    let ram: Vec<(Pfn, Pfn)> = RAM.iter().map(|&(s, e)| (Pfn(s), Pfn(e))).collect();
    let res: Vec<(Pfn, Pfn, PageFlags)> = RESERVED
        .iter()
        .map(|&(s, e)| (Pfn(s), Pfn(e), PageFlags::KERNEL_INIT))
        .collect();
    let mut b = Buddy::page_init(map, Pfn(LOWMEM), &ram, &res).unwrap();
    b.attach_slab_bits(bits);
    b
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Allocated by page count (DragonOS).
    Count,
    /// Allocated by order (Linux, MOS, virtual).
    Order,
    /// Slab block through PageProvider.
    Slab,
}

#[derive(Clone, Copy, Debug)]
struct Block {
    num: u32,
    order: u32,
    refs: u32,
    zone: Zone,
    shared_flag: bool,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Op {
    AllocZone { zone: u8, num: u64, flags: u8 },
    AllocGfp { gfp: u8, order: u32 },
    AllocVirt { gfp: u8, order: u32 },
    PageAlloc,
    AllocSlab { order: u32, dma: bool },
    Free { idx: usize, api: u8, delta: i8 },
    Get { idx: usize },
    Bogus { pfn: u32, api: u8 },
    Drain,
}

const GFPS: [Gfp; 6] = [
    Gfp::KERNEL,
    Gfp::ATOMIC,
    Gfp::DMA,
    Gfp::HIGHMEM,
    Gfp(Gfp::DMA.0 | Gfp::HIGHMEM.0),
    Gfp(Gfp::KERNEL.0 | Gfp::ZERO.0),
];

fn op() -> impl Strategy<Value = Op> {
    let order = prop_oneof![8 => 0u32..=3, 3 => 4u32..=MAX_ORDER, 1 => Just(MAX_ORDER + 1)];
    let num = prop_oneof![10 => 1u64..=63, 1 => Just(0u64), 1 => 64u64..=70];
    prop_oneof![
        6 => (0u8..3, num, 0u8..=0x1f).prop_map(|(zone, num, flags)| Op::AllocZone { zone, num, flags }),
        8 => (0u8..6, order.clone()).prop_map(|(gfp, order)| Op::AllocGfp { gfp, order }),
        2 => (0u8..6, order).prop_map(|(gfp, order)| Op::AllocVirt { gfp, order }),
        1 => Just(Op::PageAlloc),
        2 => (0u32..=3, any::<bool>()).prop_map(|(order, dma)| Op::AllocSlab { order, dma }),
        14 => (any::<usize>(), 0u8..5, prop_oneof![6 => Just(0i8), 1 => -3i8..=3]).prop_map(|(idx, api, delta)| Op::Free { idx, api, delta }),
        2 => any::<usize>().prop_map(|idx| Op::Get { idx }),
        3 => (0u32..NPAGES + 200, 0u8..3).prop_map(|(pfn, api)| Op::Bogus { pfn, api }),
        1 => Just(Op::Drain),
    ]
}

struct Harness<'a> {
    b: Buddy<'a>,
    mem: SimMem,
    live: BTreeMap<u32, Block>,
    managed: [u64; 3],
}

type Snapshot = (Vec<Page>, Vec<ZoneStat>, u64);

impl Harness<'_> {
    fn snapshot(&self) -> Snapshot {
        (
            self.b.mem_map().to_vec(),
            Zone::ALL.iter().map(|&z| self.b.zone_stat(z)).collect(),
            self.b.shared_pages(),
        )
    }

    fn assert_unchanged(&self, before: &Snapshot, what: &str) {
        let after = self.snapshot();
        assert!(before.0 == after.0, "{what}: mem_map changed");
        assert_eq!(before.1, after.1, "{what}: statistics changed");
        assert_eq!(before.2, after.2, "{what}: shared changed");
    }

    /// The live block containing `pfn`, if any.
    fn owner(&self, pfn: u32) -> Option<(u32, Block)> {
        let (&h, &blk) = self.live.range(..=pfn).next_back()?;
        (pfn < h + blk.num).then_some((h, blk))
    }

    fn nth(&self, idx: usize) -> Option<(u32, Block)> {
        if self.live.is_empty() {
            return None;
        }
        self.live
            .iter()
            .nth(idx % self.live.len())
            .map(|(&p, &b)| (p, b))
    }

    /// Checks a fresh allocation and records it.
    fn record(&mut self, pfn: Pfn, num: u32, order: u32, zone: Zone, kind: Kind, shared: bool) {
        let p = pfn.0;
        assert_eq!(p % (1 << order), 0, "{pfn} not aligned to order {order}");
        assert!(num <= 1 << order);
        assert_eq!(zone_of(p), zone, "block {pfn} in wrong zone");
        assert_eq!(
            zone_of(p + num - 1),
            zone,
            "block {pfn}+{num} leaves its zone"
        );
        for q in p..p + num {
            assert!(
                is_ram(q) && !is_reserved(q),
                "pfn {q} handed out is not free RAM"
            );
        }
        if let Some((h, blk)) = self.live.range(..p + num).next_back() {
            assert!(
                h + blk.num <= p,
                "{pfn}+{num} overlaps live block {h:#x}+{}",
                blk.num
            );
        }
        let head = *self.b.page(pfn).unwrap();
        let want = if kind == Kind::Slab {
            PageState::Slab
        } else {
            PageState::Allocated
        };
        assert_eq!(head.state(), want);
        self.live.insert(
            p,
            Block {
                num,
                order,
                refs: 1,
                zone,
                shared_flag: shared,
                kind,
            },
        );
    }

    /// After a failed or fallen-back request of `order`: `zone` had no block.
    fn assert_no_block(&self, zone: Zone, order: u32) {
        let s = self.b.zone_stat(zone);
        if order == 0 {
            assert_eq!(s.free, 0, "zone {zone} skipped with free pages");
        } else {
            let big: u64 = s.nr_free[order as usize..].iter().sum();
            assert_eq!(
                big, 0,
                "zone {zone} skipped with a block of order >= {order}"
            );
        }
    }

    /// A gfp allocation returned `r`: check zone order rules and record.
    fn gfp_result(&mut self, gfp: Gfp, order: u32, r: Result<Pfn, MmError>, kind: Kind) {
        let list = gfp.zonelist();
        match r {
            Ok(p) => {
                let z = zone_of(p.0);
                let pos = list.iter().position(|&x| x == z);
                let pos = pos.unwrap_or_else(|| panic!("{gfp:?} got zone {z}"));
                for &earlier in &list[..pos] {
                    self.assert_no_block(earlier, order);
                }
                self.record(p, 1 << order, order, z, kind, false);
            }
            Err(MmError::OutOfMemory) => {
                for &z in list {
                    self.assert_no_block(z, order);
                }
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    fn invariants(&self, full: bool) {
        for (i, z) in Zone::ALL.into_iter().enumerate() {
            let used: u64 = self
                .live
                .values()
                .filter(|b| b.zone == z)
                .map(|b| b.num as u64)
                .sum();
            let s = self.b.zone_stat(z);
            assert_eq!(s.managed, self.managed[i]);
            assert_eq!(s.free, self.managed[i] - used, "free pages of zone {z}");
        }
        let shared: u64 = self
            .live
            .values()
            .filter(|b| b.kind != Kind::Slab && (b.refs > 1 || b.shared_flag))
            .map(|b| b.num as u64)
            .sum();
        assert_eq!(self.b.shared_pages(), shared);
        let st = self.b.mm_stat();
        assert_eq!(st.total, st.used + st.free);
        if full {
            if let Err(e) = self.b.check() {
                panic!("check: {e}");
            }
            for (&p, blk) in &self.live {
                if blk.kind != Kind::Slab {
                    assert_eq!(self.b.page_count(Pfn(p)), Ok(blk.refs));
                }
            }
        }
    }

    /// Expected error when freeing `pfn` which is not the head of a live block.
    fn bogus_error(&self, pfn: u32) -> MmError {
        if pfn >= NPAGES || !is_ram(pfn) {
            return MmError::NotRam(Pfn(pfn).phys());
        }
        if is_reserved(pfn) {
            return MmError::Reserved(Pfn(pfn));
        }
        match self.owner(pfn) {
            Some((_, b)) if b.kind == Kind::Slab => MmError::SlabPage(Pfn(pfn)),
            Some(_) => MmError::NotBlockHead(Pfn(pfn)),
            None => MmError::DoubleFree(Pfn(pfn)),
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::AllocZone { zone, num, flags } => {
                let zone = Zone::from_index(zone).unwrap();
                let flags = PageFlags(flags);
                let before = self.snapshot();
                let r = self.b.alloc_pages_zone(zone, num, flags);
                if !(1..=63).contains(&num) {
                    assert_eq!(r, Err(MmError::BadCount { got: num, max: 63 }));
                    self.assert_unchanged(&before, "bad count");
                    return;
                }
                let order = num.next_power_of_two().trailing_zeros();
                match r {
                    Ok(p) => {
                        let shared = flags.contains(PageFlags::SHARED);
                        self.record(p, num as u32, order, zone, Kind::Count, shared);
                        assert_eq!(self.b.page(p).unwrap().flags(), flags);
                    }
                    Err(MmError::OutOfMemory) => self.assert_no_block(zone, order),
                    Err(e) => panic!("alloc_pages_zone: {e:?}"),
                }
            }
            Op::AllocGfp { gfp, order } => {
                let gfp = GFPS[gfp as usize];
                let before = self.snapshot();
                let r = self.b.alloc_pages(gfp, order);
                if order > MAX_ORDER {
                    assert_eq!(r, Err(MmError::BadOrder(order)));
                    self.assert_unchanged(&before, "bad order");
                } else if gfp.contains(Gfp::ZERO) {
                    assert!(matches!(r, Err(MmError::Invalid(_))));
                    self.assert_unchanged(&before, "gfp zero");
                } else {
                    self.gfp_result(gfp, order, r, Kind::Order);
                }
            }
            Op::AllocVirt { gfp, order } => {
                let gfp = GFPS[gfp as usize];
                let before = self.snapshot();
                let r = self.b.__get_free_pages(gfp, order, &mut self.mem);
                if order > MAX_ORDER {
                    assert_eq!(r, Err(MmError::BadOrder(order)));
                    self.assert_unchanged(&before, "bad order");
                    return;
                }
                let mapped = Gfp(gfp.0 & !Gfp::HIGHMEM.0 & !Gfp::ZERO.0);
                match r {
                    Ok(v) => {
                        let phys = self.mem.phys_of(v).expect("virtual address in direct map");
                        assert_eq!(phys % PAGE_SIZE as u64, 0);
                        if gfp.contains(Gfp::ZERO) {
                            let len = PAGE_SIZE << order;
                            let bytes = &self.mem.bytes[phys as usize..phys as usize + len];
                            assert!(bytes.iter().all(|&x| x == 0), "not zeroed");
                        }
                        let pfn = Pfn::containing(phys);
                        self.gfp_result(mapped, order, Ok(pfn), Kind::Order);
                        // Dirty it so that later zeroing is observable.
                        self.mem.fill(phys, PAGE_SIZE << order, 0x5a);
                    }
                    Err(MmError::NoVirtualAddress(p)) => {
                        assert!(gfp.contains(Gfp::HIGHMEM) && !gfp.contains(Gfp::DMA));
                        assert_eq!(zone_of(p.0), Zone::Unmapped);
                        self.gfp_result(mapped, order, Err(MmError::OutOfMemory), Kind::Order);
                        // Not a misuse: the failed attempt may have drained order-0
                        // caches, but no page was taken.
                        assert_eq!(
                            before.1.iter().map(|z| z.free).sum::<u64>(),
                            self.b.nr_free_pages()
                        );
                    }
                    Err(e) => self.gfp_result(mapped, order, Err(e), Kind::Order),
                }
            }
            Op::PageAlloc => {
                let r = self.b.page_alloc(&mut self.mem);
                if let Ok(p) = r {
                    let bytes = &self.mem.bytes[p.phys() as usize..p.phys() as usize + PAGE_SIZE];
                    assert!(bytes.iter().all(|&x| x == 0), "page_alloc not zeroed");
                    self.mem.fill(p.phys(), PAGE_SIZE, 0x5a);
                }
                self.gfp_result(Gfp::KERNEL, 0, r, Kind::Order);
            }
            Op::AllocSlab { order, dma } => {
                let r = self
                    .b
                    .alloc_slab_block(order, if dma { Gfp::DMA } else { Gfp::KERNEL });
                let gfp = if dma { Gfp::DMA } else { Gfp::KERNEL };
                self.gfp_result(gfp, order, r, Kind::Slab);
            }
            Op::Drain => {
                let free = self.b.nr_free_pages();
                self.b.drain();
                assert_eq!(self.b.nr_free_pages(), free);
                for z in Zone::ALL {
                    assert_eq!(self.b.zone_stat(z).cached, 0);
                }
            }
            Op::Get { idx } => {
                let Some((p, blk)) = self.nth(idx) else {
                    return;
                };
                let r = self.b.get_page(Pfn(p));
                if blk.kind == Kind::Slab {
                    assert_eq!(r, Err(MmError::SlabPage(Pfn(p))));
                } else {
                    assert_eq!(r, Ok(blk.refs + 1));
                    self.live.get_mut(&p).unwrap().refs += 1;
                }
            }
            Op::Bogus { pfn, api } => {
                if self.live.contains_key(&pfn) {
                    return;
                }
                let want = self.bogus_error(pfn);
                let before = self.snapshot();
                let r = match api {
                    0 => self.b.free_pages_count(Pfn(pfn), 1).map(|_| false),
                    1 => self.b.__free_pages(Pfn(pfn), 0).map(|_| false),
                    _ => self.b.put_page(Pfn(pfn)),
                };
                assert_eq!(r, Err(want), "bogus free of {pfn:#x}");
                self.assert_unchanged(&before, "bogus free");
            }
            Op::Free { idx, api, delta } => {
                let Some((p, blk)) = self.nth(idx) else {
                    return;
                };
                self.free(p, blk, api, delta);
            }
        }
    }

    fn free(&mut self, p: u32, blk: Block, api: u8, delta: i8) {
        let pfn = Pfn(p);
        let before = self.snapshot();
        if blk.kind == Kind::Slab {
            if delta != 0 {
                assert_eq!(
                    self.b.__free_pages(pfn, blk.order),
                    Err(MmError::SlabPage(pfn))
                );
                self.assert_unchanged(&before, "page free of slab");
                return;
            }
            let got = (blk.order as i64 + delta as i64).clamp(0, 10) as u32;
            self.b.free_slab_block(pfn, got).unwrap();
            self.live.remove(&p);
            return;
        }
        let r = match api {
            // DragonOS by count.
            0 => {
                let n = blk.num as i64 + delta as i64;
                let r = self.b.free_pages_count(pfn, n.max(0) as u64);
                if !(1..=63).contains(&n) {
                    assert_eq!(
                        r,
                        Err(MmError::BadCount {
                            got: n.max(0) as u64,
                            max: 63
                        })
                    );
                    self.assert_unchanged(&before, "bad count");
                    return;
                }
                if n != blk.num as i64 {
                    assert_eq!(
                        r,
                        Err(MmError::WrongSize {
                            pfn,
                            expected: blk.num as u64,
                            got: n as u64
                        })
                    );
                    self.assert_unchanged(&before, "wrong count");
                    return;
                }
                r.map(|_| blk.refs == 1)
            }
            // Linux by order, directly or through the virtual address.
            1 | 4 => {
                let o = blk.order as i64 + delta as i64;
                if o < 0 {
                    return;
                }
                let o = o as u32;
                let virt = self.b.page_address(pfn, &self.mem);
                let r = match (api, virt) {
                    (4, Some(v)) => self.b.free_pages(v, o, &self.mem),
                    _ => self.b.__free_pages(pfn, o),
                };
                if o > MAX_ORDER {
                    assert_eq!(r, Err(MmError::BadOrder(o)));
                    self.assert_unchanged(&before, "bad order");
                    return;
                }
                if blk.num != 1 << o {
                    let want = if blk.num.is_power_of_two() {
                        MmError::WrongSize {
                            pfn,
                            expected: blk.order as u64,
                            got: o as u64,
                        }
                    } else {
                        MmError::WrongSize {
                            pfn,
                            expected: blk.num as u64,
                            got: 1 << o,
                        }
                    };
                    assert_eq!(r, Err(want));
                    self.assert_unchanged(&before, "wrong order");
                    return;
                }
                r.map(|_| blk.refs == 1)
            }
            2 => self.b.put_page(pfn),
            _ => self.b.page_decref(pfn),
        };
        assert_eq!(r, Ok(blk.refs == 1), "free of {pfn}");
        if blk.refs == 1 {
            self.live.remove(&p);
            assert!(matches!(
                self.b.page(pfn).unwrap().state(),
                PageState::Free | PageState::Cached | PageState::Tail
            ));
        } else {
            self.live.get_mut(&p).unwrap().refs -= 1;
        }
    }
}

fn free_blocks(b: &Buddy) -> BTreeSet<(u32, u32)> {
    b.mem_map()
        .iter()
        .enumerate()
        .filter(|(_, p)| p.state() == PageState::Free)
        .map(|(i, p)| (i as u32, p.order()))
        .collect()
}

fn run(ops: &[Op]) {
    let mut map = vec![Page::reserved(Zone::Dma); NPAGES as usize];
    let mut bits = vec![0; Buddy::slab_bits_words(LOWMEM)];
    let b = boot(&mut map, &mut bits);
    b.check().unwrap();
    let initial = free_blocks(&b);
    let initial_info: Vec<[u64; NR_ORDERS]> = Zone::ALL.iter().map(|&z| b.buddyinfo(z)).collect();
    let managed = Zone::ALL.map(|z| b.zone_stat(z).managed);
    let mut h = Harness {
        b,
        mem: SimMem::new(NPAGES as usize * PAGE_SIZE, 0xee).direct_map_end(Pfn(LOWMEM).phys()),
        live: BTreeMap::new(),
        managed,
    };
    for (i, op) in ops.iter().enumerate() {
        h.step(op);
        h.invariants(i % 16 == 15);
    }
    h.invariants(true);
    // Free everything.
    let live: Vec<(u32, Block)> = h.live.iter().map(|(&p, &b)| (p, b)).collect();
    for (p, blk) in live {
        if blk.kind == Kind::Slab {
            h.b.free_slab_block(Pfn(p), blk.order).unwrap();
        } else {
            for r in (0..blk.refs).rev() {
                assert_eq!(h.b.put_page(Pfn(p)), Ok(r == 0));
            }
        }
        h.live.remove(&p);
    }
    h.invariants(true);
    h.b.drain();
    h.b.check().unwrap();
    assert_eq!(
        free_blocks(&h.b),
        initial,
        "free lists not back to boot shape"
    );
    let info: Vec<[u64; NR_ORDERS]> = Zone::ALL.iter().map(|&z| h.b.buddyinfo(z)).collect();
    assert_eq!(info, initial_info);
    assert_eq!(h.b.nr_free_pages(), h.b.managed_pages());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_sequences_match_model(ops in prop::collection::vec(op(), 1..300)) {
        run(&ops);
    }

    /// Heavy allocation first (memory pressure, fallbacks, OOM), then a random mix.
    #[test]
    fn pressure_then_mix(
        n in 200usize..2000,
        order in 0u32..=4,
        gfp in 0u8..5,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut all = vec![Op::AllocGfp { gfp, order }; n];
        all.extend(ops);
        run(&all);
    }
}

#[test]
fn exhaust_everything_then_free_in_every_order() {
    for gfp in [Gfp::KERNEL, Gfp::HIGHMEM, Gfp::DMA] {
        let mut ops: Vec<Op> = Vec::new();
        for order in (0..=MAX_ORDER).rev() {
            let g = GFPS.iter().position(|&x| x == gfp).unwrap() as u8;
            ops.extend(std::iter::repeat_n(Op::AllocGfp { gfp: g, order }, 40));
        }
        ops.extend((0..2000).map(|i| Op::Free {
            idx: i * 7919,
            api: (i % 4) as u8,
            delta: 0,
        }));
        run(&ops);
    }
}
