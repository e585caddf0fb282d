//! Tests of the area allocator (a proptest against a model) and of vmalloc and
//! ioremap over a real `Buddy`, `SimMem` and the `FakeMapper`.

use std::string::String;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::buddy::Buddy;
use crate::sim::SimMem;
use crate::{Page, PhysMem, Zone};

/// The backend over these borrowed parts (memory: `$mem`, or a throwaway one).
macro_rules! be {
    ($b:expr, $pt:expr) => {
        &mut Local {
            buddy: &mut $b,
            pt: &mut $pt,
            mem: &mut crate::sim::SparseMem::new(0, |_| 0xa5),
        }
    };
    ($b:expr, $pt:expr, $mem:expr) => {
        &mut Local {
            buddy: &mut $b,
            pt: &mut $pt,
            mem: &mut $mem,
        }
    };
}

const BASE: u64 = layout::VMALLOC.start;

fn region(start: u64, pages: u64) -> Region {
    Region {
        name: "test",
        start,
        size: pages * PAGE,
    }
}

// ----------------------------------------------------------------------
// The area allocator against a model
// ----------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Allocate this many pages.
    Alloc(u64),
    /// Free the live area with this index (modulo the number live).
    Free(usize),
    /// Free an arbitrary address: page index and byte offset in the region
    /// (the region is 64 pages; indexes past it are out of range).
    FreeAt(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..12).prop_map(Op::Alloc),
        3 => any::<usize>().prop_map(Op::Free),
        2 => (0u64..70, 0u64..PAGE).prop_map(|(p, o)| Op::FreeAt(p, o)),
    ]
}

/// What the model says `addr` is, as the allocator must report it.
fn model_error(live: &[(u64, u64)], start: u64, end: u64, addr: u64) -> Option<VmError> {
    let kind = AreaKind::Vmalloc;
    if addr < start || addr >= end {
        return Some(VmError::OutOfRange { addr, kind });
    }
    for &(s, size) in live {
        if addr == s {
            return None;
        }
        if addr > s && addr < s + size {
            return Some(VmError::NotAreaStart {
                addr,
                kind,
                area: s,
                offset: (addr - s) as i64,
            });
        }
        if addr >= s + size && addr < s + size + PAGE {
            return Some(VmError::GuardPage {
                addr,
                kind,
                area: s,
            });
        }
    }
    Some(VmError::NotAllocated { addr, kind })
}

const NPAGES: u64 = 64;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn area_allocator_matches_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut a: AreaAlloc<u32> = AreaAlloc::new(AreaKind::Vmalloc, region(BASE, NPAGES));
        let end = BASE + NPAGES * PAGE;
        // (start, size) of live areas, and the data given to each.
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut tag = 0u32;
        for op in ops {
            match op {
                Op::Alloc(pages) => {
                    tag += 1;
                    match a.alloc(pages, tag) {
                        Ok(s) => {
                            let size = pages * PAGE;
                            prop_assert!(s >= BASE && s + size + PAGE <= end);
                            prop_assert_eq!(s % PAGE, 0);
                            for &(t, tsize) in &live {
                                // Neither the area nor its guard page overlaps
                                // another area or its guard.
                                prop_assert!(s + size + PAGE <= t || t + tsize + PAGE <= s);
                            }
                            live.push((s, size));
                        }
                        Err(e) => {
                            prop_assert_eq!(e, VmError::NoSpace { kind: AreaKind::Vmalloc, size: pages * PAGE });
                            // Really no room: no free range holds the area and its guard.
                            prop_assert!(a.free_ranges().all(|(_, l)| l < (pages + 1) * PAGE));
                        }
                    }
                }
                Op::Free(i) => {
                    if live.is_empty() {
                        continue;
                    }
                    let (s, size) = live.swap_remove(i % live.len());
                    // A second free of the same start is NotAllocated unless a
                    // new area starts there, so check only the first.
                    let before = a.len();
                    prop_assert!(a.free(s).is_ok());
                    prop_assert_eq!(a.len(), before - 1);
                    prop_assert_eq!(a.find(s).err(), model_error(&live, BASE, end, s));
                    let _ = size;
                }
                Op::FreeAt(page, off) => {
                    let addr = BASE + page * PAGE + off;
                    let want = model_error(&live, BASE, end, addr);
                    let got = a.free(addr);
                    match want {
                        None => {
                            prop_assert!(got.is_ok());
                            live.retain(|&(s, _)| s != addr);
                        }
                        Some(e) => prop_assert_eq!(got.err(), Some(e)),
                    }
                }
            }
            prop_assert_eq!(a.check(), Ok(()));
            let mut got: Vec<(u64, u64)> = a.iter().map(|(s, l)| (s, l.size)).collect();
            let mut want = live.clone();
            got.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(got, want);
        }
        // Free everything: the region is one free range again.
        for (s, _) in live.drain(..) {
            prop_assert!(a.free(s).is_ok());
        }
        prop_assert_eq!(a.check(), Ok(()));
        prop_assert_eq!(a.free_ranges().collect::<Vec<_>>(), vec![(BASE, NPAGES * PAGE)]);
        prop_assert!(a.is_empty());
    }
}

#[test]
fn area_allocator_best_fit_and_coalescing() {
    let mut a: AreaAlloc<()> = AreaAlloc::new(AreaKind::Vmalloc, region(BASE, 32));
    let x = a.alloc(3, ()).unwrap();
    let y = a.alloc(1, ()).unwrap();
    let z = a.alloc(2, ()).unwrap();
    assert_eq!((x, y, z), (BASE, BASE + 4 * PAGE, BASE + 6 * PAGE));
    a.free(x).unwrap();
    // One page fits in the 4-page hole left by x (best fit: the smallest range).
    assert_eq!(a.alloc(1, ()).unwrap(), BASE);
    a.free(BASE).unwrap();
    a.free(z).unwrap();
    a.free(y).unwrap();
    assert_eq!(a.free_ranges().collect::<Vec<_>>(), vec![(BASE, 32 * PAGE)]);
    assert_eq!(a.largest_free(), 32 * PAGE);
    // The whole region but the guard page is one area; one more page is too much.
    assert!(a.alloc(31, ()).is_ok());
    assert_eq!(a.largest_free(), 0);
    let mut b: AreaAlloc<()> = AreaAlloc::new(AreaKind::Ioremap, region(BASE, 32));
    assert_eq!(
        b.alloc(32, ()),
        Err(VmError::NoSpace {
            kind: AreaKind::Ioremap,
            size: 32 * PAGE
        })
    );
    assert_eq!(b.alloc(0, ()), Err(VmError::BadSize { size: 0 }));
    assert!(matches!(
        b.alloc(u64::MAX, ()),
        Err(VmError::BadSize { .. })
    ));
}

// ----------------------------------------------------------------------
// vmalloc and ioremap over a real buddy allocator
// ----------------------------------------------------------------------

/// 48 MiB machine: DMA below 16 MiB, NORMAL to 32 MiB, UNMAPPED to 48 MiB; a
/// hole at 40..41 MiB (device memory for ioremap).
const MACHINE_PAGES: u32 = 12288;
const LOWMEM: u32 = 8192;
const HOLE: (u32, u32) = (10240, 10496);

fn mem_map() -> Vec<Page> {
    vec![Page::reserved(Zone::Dma); MACHINE_PAGES as usize]
}

fn boot(map: &mut [Page]) -> Buddy<'_> {
    let ram = [(Pfn(1), Pfn(HOLE.0)), (Pfn(HOLE.1), Pfn(MACHINE_PAGES))];
    Buddy::page_init(map, Pfn(LOWMEM), &ram, &[]).unwrap()
}

fn sim() -> SimMem {
    SimMem::new(MACHINE_PAGES as usize * PAGE_SIZE, 0xa5).direct_map_end(LOWMEM as u64 * PAGE)
}

fn free_counts(b: &Buddy) -> [u64; 3] {
    Zone::ALL.map(|z| b.zone_stat(z).free)
}

/// Everything a failed call must leave as it was.
fn snapshot(
    v: &VmSpace,
    b: &Buddy,
    pt: &FakeMapper,
) -> (Vec<AreaInfo>, [u64; 3], Vec<(u64, FakePte)>) {
    (
        v.areas().collect(),
        free_counts(b),
        pt.ptes.iter().map(|(&k, &p)| (k, p)).collect(),
    )
}

use mapper::FakePte;

#[test]
fn vmalloc_maps_unmapped_frames_first_with_a_guard_page() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    let before = free_counts(&b);
    let a = v.vmalloc(5 * PAGE - 100, "test", be!(b, pt)).unwrap();
    assert_eq!(a, layout::VMALLOC.start);
    assert_eq!(pt.ptes.len(), 5);
    for i in 0..5 {
        let pte = pt.ptes[&(a + i * PAGE)];
        assert_eq!((pte.prot, pte.cache), (Prot::RW, CacheMode::WriteBack));
        let pfn = v.vmalloc_to_page(a + i * PAGE + 17).unwrap();
        assert_eq!(pfn.phys(), pte.phys);
        assert_eq!(b.zone_of(pfn), Zone::Unmapped);
        assert_eq!(pt.translate(a + i * PAGE + 17), Some(pfn.phys() + 17));
    }
    // The guard page is not mapped and is reported as such.
    assert_eq!(pt.translate(a + 5 * PAGE), None);
    assert_eq!(
        v.vmalloc_to_page(a + 5 * PAGE),
        Err(VmError::GuardPage {
            addr: a + 5 * PAGE,
            kind: AreaKind::Vmalloc,
            area: a
        })
    );
    let after = free_counts(&b);
    assert_eq!(
        after[Zone::Unmapped as usize],
        before[Zone::Unmapped as usize] - 5
    );
    assert_eq!(after[..2], before[..2]);
    // The next area starts after the guard page.
    let c = v.vmalloc(1, "test", be!(b, pt)).unwrap();
    assert_eq!(c, a + 6 * PAGE);
    v.vfree(a, be!(b, pt)).unwrap();
    v.vfree(c, be!(b, pt)).unwrap();
    assert!(pt.ptes.is_empty() && pt.stale.is_empty());
    assert_eq!(free_counts(&b), before);
    b.check().unwrap();
}

#[test]
fn vmalloc_falls_back_to_normal_then_dma() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    let before = free_counts(&b);
    let unmapped = before[Zone::Unmapped as usize];
    let normal = before[Zone::Normal as usize];
    let n = unmapped + normal + 10;
    let a = v.vmalloc(n * PAGE, "big", be!(b, pt)).unwrap();
    let zones: Vec<Zone> = (0..n)
        .map(|i| b.zone_of(v.vmalloc_to_page(a + i * PAGE).unwrap()))
        .collect();
    assert!(zones[..unmapped as usize]
        .iter()
        .all(|&z| z == Zone::Unmapped));
    assert!(zones[unmapped as usize..(unmapped + normal) as usize]
        .iter()
        .all(|&z| z == Zone::Normal));
    assert!(zones[(unmapped + normal) as usize..]
        .iter()
        .all(|&z| z == Zone::Dma));
    v.vfree(a, be!(b, pt)).unwrap();
    assert_eq!(free_counts(&b), before);
}

#[test]
fn vzalloc_zeroes_frames_outside_the_direct_map() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut mem = sim();
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    let a = v.vzalloc(3 * PAGE, "z", be!(b, pt, mem)).unwrap();
    let mut buf = vec![0xffu8; PAGE_SIZE];
    for i in 0..3 {
        let phys = pt.translate(a + i * PAGE).unwrap();
        assert_eq!(mem.virt_of(phys), None, "an UNMAPPED frame");
        mem.read(phys, &mut buf);
        assert!(buf.iter().all(|&x| x == 0));
    }
    // vmalloc does not zero: the simulated RAM's fill shows through.
    let c = v.vmalloc(PAGE, "nz", be!(b, pt)).unwrap();
    mem.read(pt.translate(c).unwrap(), &mut buf);
    assert!(buf.iter().all(|&x| x == 0xa5));
}

#[test]
fn vfree_misuse_is_reported_and_changes_nothing() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    let a = v.vmalloc(2 * PAGE, "t", be!(b, pt)).unwrap();
    let io = v
        .ioremap(HOLE.0 as u64 * PAGE, 16, "dev", be!(b, pt))
        .unwrap();
    let snap = snapshot(&v, &b, &pt);
    let k = AreaKind::Vmalloc;
    let cases = [
        (
            a + 8,
            VmError::NotAreaStart {
                addr: a + 8,
                kind: k,
                area: a,
                offset: 8,
            },
        ),
        (
            a + PAGE,
            VmError::NotAreaStart {
                addr: a + PAGE,
                kind: k,
                area: a,
                offset: PAGE as i64,
            },
        ),
        (
            a + 2 * PAGE,
            VmError::GuardPage {
                addr: a + 2 * PAGE,
                kind: k,
                area: a,
            },
        ),
        (
            a + 3 * PAGE,
            VmError::NotAllocated {
                addr: a + 3 * PAGE,
                kind: k,
            },
        ),
        (
            io,
            VmError::WrongKind {
                addr: io,
                is: AreaKind::Ioremap,
            },
        ),
        (
            io + PAGE,
            VmError::OutOfRange {
                addr: io + PAGE,
                kind: k,
            },
        ),
        (
            0x1000,
            VmError::OutOfRange {
                addr: 0x1000,
                kind: k,
            },
        ),
    ];
    for (addr, want) in cases {
        assert_eq!(v.vfree(addr, be!(b, pt)), Err(want), "{addr:#x}");
        assert!(!want.to_string().is_empty());
    }
    assert_eq!(snapshot(&v, &b, &pt), snap);
    assert_eq!(
        v.iounmap(a, be!(b, pt)),
        Err(VmError::WrongKind {
            addr: a,
            is: AreaKind::Vmalloc
        })
    );
    assert_eq!(
        v.vmalloc_to_page(io),
        Err(VmError::WrongKind {
            addr: io,
            is: AreaKind::Ioremap
        })
    );
    v.vfree(a, be!(b, pt)).unwrap();
    assert_eq!(
        v.vfree(a, be!(b, pt)),
        Err(VmError::NotAllocated { addr: a, kind: k })
    );
    assert_eq!(
        v.vmalloc_to_page(a),
        Err(VmError::NotAllocated { addr: a, kind: k })
    );
    assert_eq!(
        VmError::NotAreaStart {
            addr: a + 8,
            kind: k,
            area: a,
            offset: 8
        }
        .to_string(),
        "0xffffc00000000008 is not the start of a vmalloc area: it is inside the area \
         0xffffc00000000000 at offset +0x8"
    );
}

#[test]
fn vmalloc_out_of_memory_midway_rolls_back() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    let keep = v.vmalloc(3 * PAGE, "keep", be!(b, pt)).unwrap();
    let snap = snapshot(&v, &b, &pt);
    let total = b.nr_free_pages();
    let r = v.vmalloc((total + 1) * PAGE, "too big", be!(b, pt));
    assert!(matches!(r, Err(VmError::OutOfMemory(_))), "{r:?}");
    assert_eq!(snapshot(&v, &b, &pt), snap);
    assert_eq!(v.vmalloc_areas().check(), Ok(()));
    b.check().unwrap();
    // The page tables fail midway: the mapped pages are unmapped and flushed.
    pt.fail_after = Some(3);
    let r = v.vmalloc(8 * PAGE, "pt", be!(b, pt));
    assert_eq!(r, Err(VmError::Map(MapError::OutOfMemory)));
    assert_eq!(snapshot(&v, &b, &pt), snap);
    assert!(pt.stale.is_empty(), "rolled-back pages were flushed");
    pt.fail_after = None;
    // Virtual space exhausted.
    let mut small = VmSpace::with_ranges(
        region(BASE + (1 << 40), 4),
        region(layout::IOREMAP.start, 4),
    );
    assert_eq!(
        small.vmalloc(4 * PAGE, "x", be!(b, pt)),
        Err(VmError::BadSize { size: 4 * PAGE })
    );
    let x = small.vmalloc(2 * PAGE, "x", be!(b, pt)).unwrap();
    assert_eq!(
        small.vmalloc(PAGE, "y", be!(b, pt)),
        Err(VmError::NoSpace {
            kind: AreaKind::Vmalloc,
            size: PAGE
        })
    );
    small.vfree(x, be!(b, pt)).unwrap();
    v.vfree(keep, be!(b, pt)).unwrap();
    assert_eq!(
        v.vmalloc(0, "zero", be!(b, pt)),
        Err(VmError::BadSize { size: 0 })
    );
}

#[test]
fn random_vmalloc_vfree_leaks_nothing() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    let boot_free = free_counts(&b);
    let mut rng = crate::sim::Rng(0x5eed_1234);
    let mut live: Vec<u64> = Vec::new();
    for _ in 0..2000 {
        if live.is_empty() || rng.below(3) != 0 {
            let size = 1 + rng.below(20 * PAGE);
            if let Ok(a) = v.vmalloc(size, "fuzz", be!(b, pt)) {
                live.push(a);
            }
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let a = live.swap_remove(i);
            v.vfree(a, be!(b, pt)).unwrap();
        }
        let mapped: u64 = v.areas().map(|a| a.pages).sum();
        assert_eq!(mapped, pt.ptes.len() as u64);
    }
    for a in live {
        v.vfree(a, be!(b, pt)).unwrap();
    }
    assert_eq!(free_counts(&b), boot_free);
    assert!(pt.ptes.is_empty() && pt.stale.is_empty());
    assert_eq!(
        v.vmalloc_areas().free_ranges().collect::<Vec<_>>(),
        vec![(layout::VMALLOC.start, layout::VMALLOC.size)]
    );
    b.check().unwrap();
}

#[test]
fn ioremap_maps_covering_pages_uncached_or_wc() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    let dev = HOLE.0 as u64 * PAGE;
    // Unaligned: 0x30 bytes before a page boundary, 0x40 bytes long: two pages.
    let phys = dev + PAGE - 0x30;
    let a = v.ioremap(phys, 0x40, "apic", be!(b, pt)).unwrap();
    assert_eq!(a, layout::IOREMAP.start + PAGE - 0x30);
    assert_eq!(pt.translate(a), Some(phys));
    assert_eq!(pt.translate(a + 0x3f), Some(phys + 0x3f));
    assert_eq!(pt.ptes.len(), 2);
    for pte in pt.ptes.values() {
        assert_eq!((pte.prot, pte.cache), (Prot::RW, CacheMode::Uncached));
    }
    // Pages of their own: the first area's pages are uncached now.
    let w = v
        .ioremap_wc(dev + 4 * PAGE, 3 * PAGE, "fb", be!(b, pt))
        .unwrap();
    assert_eq!(w, layout::IOREMAP.start + 3 * PAGE);
    assert_eq!(pt.ptes[&w].cache, CacheMode::WriteCombining);
    assert_eq!(pt.ptes[&w].cache.pte_bits(), mapper::PTE_PWT);
    let info: Vec<AreaInfo> = v.areas().collect();
    assert_eq!(info.len(), 2);
    assert_eq!(
        (info[0].addr, info[0].pages, info[0].phys),
        (a, 2, Some(phys))
    );
    assert_eq!(
        v.area_info(w).map(|i| i.cache),
        Some(CacheMode::WriteCombining)
    );
    assert_eq!(v.area_info(w + 1), None);
    // iounmap wants the exact address ioremap returned.
    let base = a - a % PAGE;
    assert_eq!(
        v.iounmap(base, be!(b, pt)),
        Err(VmError::NotAreaStart {
            addr: base,
            kind: AreaKind::Ioremap,
            area: a,
            offset: -0xfd0
        })
    );
    assert_eq!(
        v.iounmap(base + 2 * PAGE, be!(b, pt)),
        Err(VmError::GuardPage {
            addr: base + 2 * PAGE,
            kind: AreaKind::Ioremap,
            area: base
        })
    );
    v.iounmap(a, be!(b, pt)).unwrap();
    assert_eq!(
        v.iounmap(a, be!(b, pt)),
        Err(VmError::NotAllocated {
            addr: a,
            kind: AreaKind::Ioremap
        })
    );
    v.iounmap(w, be!(b, pt)).unwrap();
    assert!(pt.ptes.is_empty() && pt.stale.is_empty());
    assert_eq!(
        v.ioremap_areas().free_ranges().collect::<Vec<_>>(),
        vec![(layout::IOREMAP.start, layout::IOREMAP.size)]
    );
}

#[test]
fn ioremap_refuses_ram_and_bad_ranges() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    let dev = HOLE.0 as u64 * PAGE;
    let hole_end = HOLE.1 as u64 * PAGE;
    assert_eq!(
        v.ioremap(0x10_0000, 8, "ram", be!(b, pt)),
        Err(VmError::Ram { phys: 0x10_0000 })
    );
    // The last byte touches RAM.
    assert_eq!(
        v.ioremap(hole_end - 8, 9, "edge", be!(b, pt)),
        Err(VmError::Ram { phys: hole_end })
    );
    assert_eq!(
        v.ioremap(dev - 1, 2, "edge", be!(b, pt)),
        Err(VmError::Ram { phys: dev - 1 })
    );
    assert_eq!(
        v.ioremap(dev, 0, "z", be!(b, pt)),
        Err(VmError::BadSize { size: 0 })
    );
    assert_eq!(
        v.ioremap(u64::MAX, 2, "wrap", be!(b, pt)),
        Err(VmError::BadPhys {
            phys: u64::MAX,
            size: 2
        })
    );
    assert_eq!(
        v.ioremap(MAX_PHYS - 4, 8, "wide", be!(b, pt)),
        Err(VmError::BadPhys {
            phys: MAX_PHYS - 4,
            size: 8
        })
    );
    // Above the machine's RAM: device memory (the local APIC, say).
    assert!(v.ioremap(0xfee0_0000, 0x400, "lapic", be!(b, pt)).is_ok());
    // A page-table refusal midway rolls back.
    let snap = snapshot(&v, &b, &pt);
    pt.fail_after = Some(1);
    assert_eq!(
        v.ioremap_wc(dev, 4 * PAGE, "fb", be!(b, pt)),
        Err(VmError::Map(MapError::OutOfMemory))
    );
    assert_eq!(snapshot(&v, &b, &pt), snap);
    assert!(pt.stale.is_empty());
}

/// Memory types are tracked per physical page (Linux's PAT `memtype_reserve`):
/// a second mapping takes the type the pages have when Linux allows it, and is
/// refused (changing nothing) when it does not, or when they have two types.
#[test]
fn ioremap_keeps_one_memory_type_per_page() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    let dev = HOLE.0 as u64 * PAGE;
    // The kernel's own framebuffer mapping: write-combining.
    v.reserve_memtype(
        dev + 0x10,
        2 * PAGE,
        CacheMode::WriteCombining,
        "framebuffer",
    )
    .unwrap();
    assert_eq!(
        v.fixed_memtypes(),
        &[MemType {
            start: dev,
            end: dev + 3 * PAGE,
            cache: CacheMode::WriteCombining,
            owner: "framebuffer"
        }]
    );
    // An uncached ioremap of its last page gets write-combining, in its PTEs too.
    let a = v.ioremap(dev + 2 * PAGE, 8, "fbdev", be!(b, pt)).unwrap();
    assert_eq!(
        v.area_info(a).map(|i| i.cache),
        Some(CacheMode::WriteCombining)
    );
    assert_eq!(pt.ptes[&(a - a % PAGE)].cache, CacheMode::WriteCombining);
    // Device registers mapped uncached; a write-combining request gets uncached.
    let regs = dev + 8 * PAGE;
    let r = v.ioremap(regs, PAGE, "regs", be!(b, pt)).unwrap();
    let r2 = v.ioremap_wc(regs, 2 * PAGE, "regs2", be!(b, pt));
    assert_eq!(
        r2.map(|x| v.area_info(x).unwrap().cache),
        Ok(CacheMode::Uncached)
    );
    // A range over pages of both types: refused, nothing changed.
    let snap = snapshot(&v, &b, &pt);
    assert_eq!(
        v.ioremap(dev + 2 * PAGE, 7 * PAGE, "both", be!(b, pt)),
        Err(VmError::MemTypeConflict {
            phys: dev + 2 * PAGE,
            requested: CacheMode::Uncached,
            existing: CacheMode::WriteCombining,
            owner: "framebuffer"
        })
    );
    assert_eq!(snapshot(&v, &b, &pt), snap);
    // The kernel cannot reserve a type that disagrees with a live area.
    assert_eq!(
        v.reserve_memtype(regs, 1, CacheMode::WriteCombining, "late"),
        Err(VmError::MemTypeConflict {
            phys: regs,
            requested: CacheMode::WriteCombining,
            existing: CacheMode::Uncached,
            owner: "regs"
        })
    );
    // Written-back pages never become a device mapping's type (Linux's
    // is_new_memtype_allowed); the error names the owner.
    v.reserve_memtype(dev + 16 * PAGE, PAGE, CacheMode::WriteBack, "wb")
        .unwrap();
    let e = v
        .ioremap_wc(dev + 16 * PAGE, 4, "x", be!(b, pt))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{:#x} is mapped WB by wb: a WC mapping of it would alias it with another memory type",
            dev + 16 * PAGE
        )
    );
    assert!(!memtype_allowed(CacheMode::Uncached, CacheMode::WriteBack));
    assert!(memtype_allowed(
        CacheMode::Uncached,
        CacheMode::WriteCombining
    ));
    assert!(memtype_allowed(
        CacheMode::WriteCombining,
        CacheMode::Uncached
    ));
    // Once the uncached areas are gone, their pages are free to take any type.
    v.iounmap(r, be!(b, pt)).unwrap();
    v.iounmap(r2.unwrap(), be!(b, pt)).unwrap();
    let w = v.ioremap_wc(regs, PAGE, "regs3", be!(b, pt)).unwrap();
    assert_eq!(
        v.area_info(w).map(|i| i.cache),
        Some(CacheMode::WriteCombining)
    );
    v.iounmap(w, be!(b, pt)).unwrap();
    v.iounmap(a, be!(b, pt)).unwrap();
    assert!(pt.ptes.is_empty());
}

#[test]
fn vmallocinfo_lists_every_area() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    v.vmalloc(4 * PAGE, "shell", be!(b, pt)).unwrap();
    v.ioremap_wc(0xfd00_0000, 2 * PAGE, "fb", be!(b, pt))
        .unwrap();
    v.ioremap(0xfee0_0010, 4, "lapic", be!(b, pt)).unwrap();
    let mut s = String::new();
    v.vmallocinfo(&mut s).unwrap();
    assert_eq!(
        s,
        "0xffffc00000000000-0xffffc00000005000      20480 shell pages=4 vmalloc\n\
         0xffffe00000000000-0xffffe00000003000      12288 fb phys=0x00000000fd000000 ioremap_wc\n\
         0xffffe00000003000-0xffffe00000005000       8192 lapic phys=0x00000000fee00000 ioremap\n"
    );
    let st = v.stat();
    assert_eq!(
        (
            st.vmalloc_used,
            st.vmalloc_areas,
            st.ioremap_used,
            st.ioremap_areas
        ),
        (4 * PAGE, 1, 3 * PAGE, 2)
    );
    assert_eq!(st.vmalloc_total, layout::VMALLOC.size);
    assert_eq!(st.vmalloc_chunk, layout::VMALLOC.size - 5 * PAGE);
}

#[test]
fn alloc_vm_pages_is_all_or_nothing() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let before = free_counts(&b);
    let mut out = vec![Pfn(0); 10];
    alloc_vm_pages(be!(b, pt), VMALLOC_GFP, &mut out).unwrap();
    assert!(out.iter().all(|&p| p != Pfn(0)));
    let n = b.nr_free_pages() as usize + 1;
    let mut big = vec![Pfn(0); n];
    assert!(alloc_vm_pages(be!(b, pt), VMALLOC_GFP, &mut big).is_err());
    assert_eq!(
        free_counts(&b)[..],
        {
            let mut f = before;
            f[Zone::Unmapped as usize] -= 10;
            f
        }[..]
    );
    be!(b, pt).free_pages_bulk(&out);
    assert_eq!(free_counts(&b), before);
}

#[test]
fn injected_page_failure_midway_rolls_back() {
    let mut map = mem_map();
    let mut b = boot(&mut map);
    let mut pt = FakeMapper::new();
    let mut v = VmSpace::new();
    let keep = v.vmalloc(2 * PAGE, "keep", be!(b, pt)).unwrap();
    let snap = snapshot(&v, &b, &pt);
    // fail_page_alloc: 5 pages of budget, then every call fails.
    b.set_fail_page_alloc(Some(crate::fault::FaultConfig {
        space: 5,
        ..crate::fault::FaultConfig::ALWAYS
    }));
    let r = v.vmalloc(12 * PAGE, "injected", be!(b, pt));
    assert_eq!(r, Err(VmError::OutOfMemory(MmError::OutOfMemory)));
    assert!(b.fail_page_alloc().injected() > 0);
    b.set_fail_page_alloc(None);
    assert_eq!(snapshot(&v, &b, &pt), snap);
    assert_eq!(v.vmalloc_areas().check(), Ok(()));
    b.check().unwrap();
    v.vfree(keep, be!(b, pt)).unwrap();
}

// ----------------------------------------------------------------------
// Over real page tables (`PagingBackend`) against the areas' own record
// ----------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random vzalloc/vfree over real `mm::paging` tables and a caching TLB:
    /// after each step every page of every live area translates (through the
    /// TLB) to the frame `vmalloc_to_page` names and reads as zero, guard pages
    /// and freed areas do not translate (the flush happened), and at the end
    /// every frame and every page-table frame is back.
    #[test]
    fn vmalloc_over_real_page_tables(
        ops in prop::collection::vec((any::<bool>(), 1u64..40, any::<u8>()), 1..40)
    ) {
        use crate::paging::{kernel, translate, SimTlb, TableFrames, VirtAddr};
        let mut map = mem_map();
        let mut b = boot(&mut map);
        let mut mem = sim();
        let mut tlb = SimTlb::new();
        let root = b.alloc_table(&mut mem).unwrap();
        kernel::preallocate_pdpts(&mut mem, &mut b, root, kernel::RUNTIME_SLOTS).unwrap();
        let before = free_counts(&b);
        let mut v = VmSpace::new();
        let mut live: Vec<u64> = Vec::new();
        let tr = |tlb: &mut SimTlb, mem: &SimMem, va: u64| {
            tlb.translate(mem, root, VirtAddr::new(va)).map(|(p, _, _)| p.as_u64())
        };
        for (alloc, pages, pick) in ops {
            if alloc || live.is_empty() {
                let mut be = PagingBackend::new(&mut mem, &mut b, &mut tlb, root);
                if let Ok(a) = v.vzalloc(pages * PAGE - 1, "p", &mut be) {
                    live.push(a);
                }
            } else {
                let a = live.swap_remove(pick as usize % live.len());
                let n = v.area_info(a).unwrap().pages;
                v.vfree(a, &mut PagingBackend::new(&mut mem, &mut b, &mut tlb, root)).unwrap();
                for i in 0..n {
                    prop_assert_eq!(tr(&mut tlb, &mem, a + i * PAGE), None);
                }
            }
            for &a in &live {
                let n = v.area_info(a).unwrap().pages;
                for i in 0..n {
                    let va = a + i * PAGE;
                    let pfn = v.vmalloc_to_page(va).unwrap();
                    prop_assert_eq!(tr(&mut tlb, &mem, va + 9), Some(pfn.phys() + 9));
                    prop_assert_eq!(mem.read_u64(pfn.phys() + 8), 0);
                }
                prop_assert_eq!(translate(&mem, root, VirtAddr::new(a + n * PAGE)), None);
            }
        }
        for a in live {
            v.vfree(a, &mut PagingBackend::new(&mut mem, &mut b, &mut tlb, root)).unwrap();
        }
        prop_assert_eq!(free_counts(&b), before);
        b.check().unwrap();
    }
}
