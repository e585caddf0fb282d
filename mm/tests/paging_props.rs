//! Property tests of the page-table core against a model of the mappings.
//!
//! A 32 MiB simulated machine with a real buddy allocator runs random sequences
//! of 4 KiB / 2 MiB map and unmap, range unmap, `page_insert`, `page_remove`, and
//! address-space creation and destruction, on the kernel root (kernel half) and
//! on up to three address spaces (user half). The model is, per root, the set of
//! mappings (base, size, physical base, page reference or not). After every step:
//! every address of interest translates as the model says, both by a fresh walk
//! and through a per-root `SimTlb` that caches translations (so a missing flush
//! fails), the kernel half is the same through every root, each page's reference
//! count is 1 + its `page_insert` mappings, and the buddy passes its check. At
//! the end everything is torn down and the buddy's free count is back at its
//! start: no table frame and no page leaked.

use std::collections::BTreeMap;

use mm::buddy::Buddy;
use mm::paging::{
    translate, AddressSpace, MapError, Mapper, PageSize, PageTableFlags, PhysAddr, PhysFrame,
    SimTlb, TableFrames, UnmapError, VirtAddr,
};
use mm::sim::SimMem;
use mm::{Page, Pfn, Zone};
use proptest::prelude::*;

const NPAGES: u32 = 8192;
/// User-half region of the address spaces: 2 regions of 2 MiB in each of two
/// PML4 slots, so tables are shared, created and freed at every level.
const USER: [u64; 4] = [
    0x0000_0000_0040_0000,
    0x0000_0000_0060_0000,
    0x0000_0080_0040_0000,
    0x0000_4000_0000_0000,
];
/// Kernel-half regions (mapped through the kernel root only).
const KERN: [u64; 2] = [0xffff_c000_0000_0000, 0xffff_c000_4000_0000];
const SLOTS: u64 = 6; // 4 KiB pages used per 2 MiB region: 0..SLOTS
const POOL: usize = 4;

#[derive(Clone, Copy, Debug)]
enum Op {
    Map4k {
        root: u8,
        region: u8,
        slot: u8,
        phys: u8,
    },
    Map2m {
        root: u8,
        region: u8,
        phys: u8,
    },
    Unmap4k {
        root: u8,
        region: u8,
        slot: u8,
    },
    Unmap2m {
        root: u8,
        region: u8,
    },
    UnmapRange {
        root: u8,
        region: u8,
    },
    Insert {
        root: u8,
        region: u8,
        slot: u8,
        page: u8,
        user: bool,
    },
    Remove {
        root: u8,
        region: u8,
        slot: u8,
    },
    NewAspace,
    Destroy {
        which: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0u8..4;
    let reg = 0u8..4;
    let s = 0u8..SLOTS as u8;
    prop_oneof![
        4 => (r.clone(), reg.clone(), s.clone(), 0u8..8)
            .prop_map(|(root, region, slot, phys)| Op::Map4k { root, region, slot, phys }),
        2 => (r.clone(), reg.clone(), 0u8..8)
            .prop_map(|(root, region, phys)| Op::Map2m { root, region, phys }),
        3 => (r.clone(), reg.clone(), s.clone())
            .prop_map(|(root, region, slot)| Op::Unmap4k { root, region, slot }),
        1 => (r.clone(), reg.clone()).prop_map(|(root, region)| Op::Unmap2m { root, region }),
        1 => (r.clone(), reg.clone()).prop_map(|(root, region)| Op::UnmapRange { root, region }),
        4 => (r.clone(), reg.clone(), s.clone(), 0u8..POOL as u8, any::<bool>())
            .prop_map(|(root, region, slot, page, user)| Op::Insert { root, region, slot, page, user }),
        2 => (r, reg, s).prop_map(|(root, region, slot)| Op::Remove { root, region, slot }),
        1 => Just(Op::NewAspace),
        1 => (0u8..3).prop_map(|which| Op::Destroy { which }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct M {
    size: PageSize,
    phys: u64,
    page: Option<usize>,
}

/// One root: its frame, its model, its TLB.
struct RootState {
    root: PhysFrame,
    aspace: Option<AddressSpace>,
    maps: BTreeMap<u64, M>,
    tlb: SimTlb,
}

/// The machine: one mapper for the whole run, so its cached walks are
/// exercised across operations.
struct World<'a> {
    m: Mapper<'a, SimMem, Buddy<'static>>,
    kernel: RootState,
    spaces: Vec<RootState>,
    pool: [Pfn; POOL],
}

const RW: PageTableFlags = PageTableFlags::WRITABLE;

/// The model's mapping covering `v`.
fn covering(maps: &BTreeMap<u64, M>, v: u64) -> Option<(u64, M)> {
    let (&b, &m) = maps.range(..=v).next_back()?;
    (v < b + m.size.bytes()).then_some((b, m))
}

fn overlaps(maps: &BTreeMap<u64, M>, v: u64, len: u64) -> bool {
    covering(maps, v).is_some() || maps.range(v..v + len).next().is_some()
}

fn check(w: &mut World<'_>) {
    let pool = w.pool;
    let mut refs = [0u32; POOL];
    let m = &w.m;
    let mem = m.mem();
    let kernel = &mut w.kernel;
    let spaces = &mut w.spaces;
    for (st, regions) in
        std::iter::once((kernel, &KERN[..])).chain(spaces.iter_mut().map(|s| (s, &USER[..])))
    {
        for &base in regions {
            for slot in 0..SLOTS + 2 {
                let v = base + slot * 4096 + 8 * slot;
                let want = covering(&st.maps, v).map(|(b, m)| {
                    let phys = match m.page {
                        Some(i) => pool[i].phys(),
                        None => m.phys,
                    };
                    (phys + (v - b), m.size)
                });
                let got =
                    translate(mem, st.root, VirtAddr::new(v)).map(|(p, s, _)| (p.as_u64(), s));
                assert_eq!(got, want, "walk of {v:#x}");
                let fast = m
                    .translate(st.root, VirtAddr::new(v))
                    .map(|(p, s, _)| (p.as_u64(), s));
                assert_eq!(fast, want, "cached translation of {v:#x}");
                let cached = st
                    .tlb
                    .translate(mem, st.root, VirtAddr::new(v))
                    .map(|(p, s, _)| (p.as_u64(), s));
                assert_eq!(cached, want, "TLB view of {v:#x}: a flush is missing");
            }
        }
        for m in st.maps.values() {
            if let Some(i) = m.page {
                refs[i] += 1;
            }
        }
    }
    // The kernel half is the same through every root.
    for s in w.spaces.iter() {
        for &base in &KERN {
            assert_eq!(
                translate(w.m.mem(), s.root, VirtAddr::new(base)),
                translate(w.m.mem(), w.kernel.root, VirtAddr::new(base))
            );
        }
    }
    for (i, &p) in w.pool.iter().enumerate() {
        assert_eq!(
            w.m.frames().page_count(p),
            Ok(1 + refs[i]),
            "refcount of pool page {i}"
        );
    }
    w.m.frames().check().unwrap();
}

fn step(w: &mut World<'_>, op: Op) {
    let pool = w.pool;
    match op {
        Op::NewAspace => {
            if w.spaces.len() < 3 {
                let a = AddressSpace::new(&mut w.m, w.kernel.root).unwrap();
                w.spaces.push(RootState {
                    root: a.root(),
                    aspace: Some(a),
                    maps: BTreeMap::new(),
                    tlb: SimTlb::new(),
                });
            }
        }
        Op::Destroy { which } => {
            if !w.spaces.is_empty() {
                let i = which as usize % w.spaces.len();
                let mut s = w.spaces.remove(i);
                let refs = s.maps.values().filter(|m| m.page.is_some()).count() as u64;
                let st = s
                    .aspace
                    .take()
                    .unwrap()
                    .destroy(&mut w.m, w.kernel.root)
                    .unwrap();
                assert_eq!(st.refs_dropped, refs);
                assert_eq!(st.mappings, s.maps.len() as u64);
                assert_eq!(st.bad_refs, 0);
            }
        }
        _ => {
            let (root, region) = match op {
                Op::Map4k { root, region, .. }
                | Op::Map2m { root, region, .. }
                | Op::Unmap4k { root, region, .. }
                | Op::Unmap2m { root, region }
                | Op::UnmapRange { root, region }
                | Op::Insert { root, region, .. }
                | Op::Remove { root, region, .. } => (root, region),
                _ => unreachable!(),
            };
            let idx = if root == 0 || w.spaces.is_empty() {
                None
            } else {
                Some((root as usize - 1) % w.spaces.len())
            };
            let World {
                m, kernel, spaces, ..
            } = w;
            // 0 = the kernel root, in the kernel half; else an address space, in
            // the user half.
            let (st, base) = match idx {
                None => (kernel, KERN[region as usize % 2]),
                Some(i) => (&mut spaces[i], USER[region as usize]),
            };
            let r = st.root;
            match op {
                Op::Map4k { slot, phys, .. } => {
                    let v = base + slot as u64 * 4096;
                    let p = 0x4000_0000 + phys as u64 * 0x1000;
                    let res = m.map(
                        r,
                        VirtAddr::new(v),
                        PhysAddr::new(p),
                        PageSize::Size4KiB,
                        RW,
                    );
                    if overlaps(&st.maps, v, 4096) {
                        assert!(res.is_err(), "{res:?}");
                    } else {
                        res.unwrap().flush(&mut st.tlb);
                        st.maps.insert(
                            v,
                            M {
                                size: PageSize::Size4KiB,
                                phys: p,
                                page: None,
                            },
                        );
                    }
                }
                Op::Map2m { phys, .. } => {
                    let p = 0x8000_0000 + phys as u64 * 0x20_0000;
                    let res = m.map(
                        r,
                        VirtAddr::new(base),
                        PhysAddr::new(p),
                        PageSize::Size2MiB,
                        RW,
                    );
                    if overlaps(&st.maps, base, 1 << 21) {
                        assert!(
                            matches!(
                                res,
                                Err(MapError::AlreadyMapped { .. } | MapError::TableInTheWay { .. })
                            ),
                            "{res:?}"
                        );
                    } else {
                        res.unwrap().flush(&mut st.tlb);
                        st.maps.insert(
                            base,
                            M {
                                size: PageSize::Size2MiB,
                                phys: p,
                                page: None,
                            },
                        );
                    }
                }
                Op::Unmap4k { slot, .. } | Op::Remove { slot, .. } => {
                    let v = base + slot as u64 * 4096;
                    let res = if matches!(op, Op::Remove { .. }) {
                        m.page_remove(r, VirtAddr::new(v))
                    } else {
                        m.unmap(r, VirtAddr::new(v), PageSize::Size4KiB)
                            .map(|(_, f)| f)
                    };
                    match st.maps.get(&v) {
                        Some(x) if x.size == PageSize::Size4KiB => {
                            res.unwrap().flush(&mut st.tlb);
                            st.maps.remove(&v);
                        }
                        _ => {
                            let e = res.unwrap_err();
                            if covering(&st.maps, v).is_some() {
                                assert!(matches!(e, UnmapError::PartOfHugePage { .. }), "{e:?}");
                            } else {
                                assert!(matches!(e, UnmapError::NotMapped { .. }), "{e:?}");
                            }
                        }
                    }
                }
                Op::Unmap2m { .. } => {
                    let res = m.unmap(r, VirtAddr::new(base), PageSize::Size2MiB);
                    match st.maps.get(&base) {
                        Some(x) if x.size == PageSize::Size2MiB => {
                            res.unwrap().1.flush(&mut st.tlb);
                            st.maps.remove(&base);
                        }
                        _ => assert!(res.is_err()),
                    }
                }
                Op::UnmapRange { .. } => {
                    let res = m.unmap_range(r, VirtAddr::new(base), 1 << 21);
                    let inside: Vec<u64> = st
                        .maps
                        .range(base..base + (1 << 21))
                        .map(|(&b, _)| b)
                        .collect();
                    if inside.is_empty() {
                        assert!(matches!(res, Err(UnmapError::NotMapped { .. })), "{res:?}");
                    } else {
                        let (f, stats) = res.unwrap();
                        f.flush(&mut st.tlb);
                        let refs = inside.iter().filter(|b| st.maps[b].page.is_some()).count();
                        assert_eq!(stats.refs_dropped, refs as u64);
                        assert_eq!(stats.pages_4k + stats.pages_2m, inside.len() as u64);
                        for b in inside {
                            st.maps.remove(&b);
                        }
                    }
                }
                Op::Insert {
                    slot, page, user, ..
                } => {
                    let v = base + slot as u64 * 4096;
                    let perm = if user {
                        RW | PageTableFlags::USER_ACCESSIBLE
                    } else {
                        RW
                    };
                    let res = m.page_insert(r, pool[page as usize], VirtAddr::new(v), perm);
                    match covering(&st.maps, v) {
                        Some((_, x)) if x.size == PageSize::Size2MiB => {
                            assert!(
                                matches!(res, Err(MapError::HugePageInTheWay { .. })),
                                "{res:?}"
                            );
                        }
                        _ => {
                            res.unwrap().flush(&mut st.tlb);
                            st.maps.insert(
                                v,
                                M {
                                    size: PageSize::Size4KiB,
                                    phys: 0,
                                    page: Some(page as usize),
                                },
                            );
                        }
                    }
                }
                _ => unreachable!(),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn paging_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let map: &'static mut [Page] = vec![Page::reserved(Zone::Dma); NPAGES as usize].leak();
        let mut buddy = Buddy::page_init(map, Pfn(NPAGES), &[(Pfn(256), Pfn(NPAGES))], &[]).unwrap();
        let mut mem = SimMem::new(NPAGES as usize * 4096, 0xa5);
        let kroot = buddy.alloc_table(&mut mem).unwrap();
        // The kernel half's PDPTs exist before any address space copies them.
        {
            let mut m = Mapper::new(&mut mem, &mut buddy);
            for &k in &KERN {
                let v = VirtAddr::new(k);
                m.map(kroot, v, PhysAddr::new(0), PageSize::Size4KiB, RW).unwrap().ignore();
                m.unmap(kroot, v, PageSize::Size4KiB).unwrap().1.ignore();
            }
        }
        let start = buddy.nr_free_pages();
        let mut pool = [Pfn(0); POOL];
        for p in pool.iter_mut() {
            *p = buddy.page_alloc(&mut mem).unwrap();
        }
        let mut w = World {
            m: Mapper::new(&mut mem, &mut buddy),
            kernel: RootState { root: kroot, aspace: None, maps: BTreeMap::new(), tlb: SimTlb::new() },
            spaces: Vec::new(),
            pool,
        };
        for op in ops {
            step(&mut w, op);
            check(&mut w);
        }
        // Tear down: address spaces, the kernel root's mappings, the pool.
        while !w.spaces.is_empty() {
            step(&mut w, Op::Destroy { which: 0 });
        }
        let maps: Vec<(u64, M)> = w.kernel.maps.iter().map(|(&b, &m)| (b, m)).collect();
        {
            let m = &mut w.m;
            for (b, x) in maps {
                m.unmap_range(w.kernel.root, VirtAddr::new(b), x.size.bytes())
                    .unwrap()
                    .0
                    .flush(&mut w.kernel.tlb);
            }
        }
        w.kernel.maps.clear();
        check(&mut w);
        for p in w.pool {
            prop_assert_eq!(w.m.frames().page_decref(p), Ok(true));
        }
        drop(w);
        prop_assert_eq!(buddy.nr_free_pages(), start, "a frame leaked");
        buddy.check().unwrap();
    }
}
