//! Unit tests of the buddy allocator: every API function and every error.

use std::collections::BTreeSet;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::sim::SimMem;

/// 64 MiB machine: holes, reserved kernel ranges, lowmem not 4 MiB aligned.
const NPAGES: u32 = 16384;
const LOWMEM: u32 = 10000;
const RAM: [(u32, u32); 4] = [(1, 159), (256, 3000), (3100, 12000), (12005, 16384)];
const KERNEL: (u32, u32) = (256, 600);
const MEMMAP: (u32, u32) = (3100, 3164);

fn ram() -> Vec<(Pfn, Pfn)> {
    RAM.iter().map(|&(s, e)| (Pfn(s), Pfn(e))).collect()
}

fn reserved() -> Vec<(Pfn, Pfn, PageFlags)> {
    vec![
        (Pfn(KERNEL.0), Pfn(KERNEL.1), PageFlags::KERNEL_INIT),
        (Pfn(MEMMAP.0), Pfn(MEMMAP.1), PageFlags::KERNEL_INIT),
    ]
}

fn map() -> Vec<Page> {
    // Garbage, as at boot.
    (0..NPAGES)
        .map(|i| {
            let mut p = Page::reserved(Zone::Unmapped);
            p.set_state(PageState::Allocated);
            p.count = i.wrapping_mul(2654435761);
            p.next = i ^ 0x5a5a;
            p.prev = 7;
            p.set_flags(PageFlags(i as u8));
            p
        })
        .collect()
}

/// A slab liveness bitmap over every frame (`Buddy::attach_slab_bits`).
fn slab_bits() -> Vec<u64> {
    vec![0; Buddy::slab_bits_words(NPAGES)]
}

fn boot(map: &mut [Page]) -> Buddy<'_> {
    let b = Buddy::page_init(map, Pfn(LOWMEM), &ram(), &reserved()).unwrap();
    b.check().unwrap();
    b
}

fn free_blocks(b: &Buddy) -> BTreeSet<(u32, u32)> {
    b.mem_map()
        .iter()
        .enumerate()
        .filter(|(_, p)| p.state() == PageState::Free)
        .map(|(i, p)| (i as u32, p.order()))
        .collect()
}

fn zone_free(b: &Buddy, z: Zone) -> u64 {
    b.zone_stat(z).free
}

#[test]
fn page_init_zones_and_counts() {
    let mut m = map();
    let b = boot(&mut m);
    let dma = b.zone_stat(Zone::Dma);
    let normal = b.zone_stat(Zone::Normal);
    let high = b.zone_stat(Zone::Unmapped);
    assert_eq!((dma.start_pfn, dma.end_pfn), (Pfn(1), Pfn(4096)));
    assert_eq!(dma.present, 158 + 2744 + 996);
    assert_eq!(dma.managed, dma.present - 344 - 64);
    assert_eq!(dma.free, dma.managed);
    assert_eq!((normal.start_pfn, normal.end_pfn), (Pfn(4096), Pfn(10000)));
    assert_eq!(normal.present, 10000 - 4096);
    assert_eq!(normal.free, normal.present);
    assert_eq!((high.start_pfn, high.end_pfn), (Pfn(10000), Pfn(16384)));
    assert_eq!(high.present, 2000 + 16384 - 12005);
    assert_eq!(
        b.present_pages(),
        dma.present + normal.present + high.present
    );
    assert_eq!(b.managed_pages(), b.nr_free_pages());
    // NORMAL starts at 16 MiB: five 4 MiB blocks then the unaligned rest.
    assert_eq!(normal.nr_free[10], 5);
    let s = b.mm_stat();
    assert_eq!(s.total, s.used + s.free);
    assert_eq!(s.used, (344 + 64) * 4096);
    assert_eq!(b.page(Pfn(300)).unwrap().flags(), PageFlags::KERNEL_INIT);
    assert_eq!(b.page(Pfn(300)).unwrap().state(), PageState::Reserved);
    assert_eq!(b.page(Pfn(200)).unwrap().state(), PageState::Reserved);
    assert!(b.is_ram(Pfn(300)) && !b.is_ram(Pfn(200)));
}

#[test]
fn incremental_construction_matches_page_init() {
    let mut m1 = map();
    let a = boot(&mut m1);
    let mut m2 = map();
    let mut b = Buddy::new(&mut m2, Pfn(LOWMEM)).unwrap();
    // Reserve before and after adding: both work.
    b.reserve_range(Pfn(KERNEL.0), Pfn(KERNEL.1), PageFlags::KERNEL_INIT)
        .unwrap();
    for &(s, e) in RAM.iter().rev() {
        b.add_free_range(Pfn(s), Pfn(e)).unwrap();
    }
    b.check().unwrap();
    // Adding the kernel range made it RAM again; reserve it and the mem_map now.
    for (s, e, f) in reserved() {
        b.reserve_range(s, e, f).unwrap();
    }
    b.check().unwrap();
    assert_eq!(free_blocks(&a), free_blocks(&b));
    for z in Zone::ALL {
        assert_eq!(a.zone_stat(z), b.zone_stat(z));
    }
}

#[test]
fn construction_errors() {
    let mut m = map();
    let mut b = Buddy::new(&mut m, Pfn(LOWMEM)).unwrap();
    b.add_free_range(Pfn(100), Pfn(200)).unwrap();
    assert_eq!(
        b.add_free_range(Pfn(150), Pfn(300)),
        Err(MmError::Busy(Pfn(150).phys()))
    );
    assert_eq!(
        b.add_free_range(Pfn(16000), Pfn(17000)),
        Err(MmError::NotRam(Pfn(16384).phys()))
    );
    assert!(matches!(
        b.add_free_range(Pfn(5), Pfn(4)),
        Err(MmError::Invalid(_))
    ));
    b.add_free_range(Pfn(200), Pfn(250)).unwrap(); // adjacent: merged
    assert_eq!(b.ram_ranges().count(), 1);
    for i in 0..MAX_RAM_RANGES as u32 - 1 {
        b.add_free_range(Pfn(1000 + 2 * i), Pfn(1001 + 2 * i))
            .unwrap();
    }
    assert_eq!(
        b.add_free_range(Pfn(5000), Pfn(5001)),
        Err(MmError::TooMany)
    );
    b.check().unwrap();
    let p = b.alloc_pages_zone(Zone::Dma, 1, PageFlags::EMPTY).unwrap();
    assert_eq!(
        b.reserve_range(p, Pfn(p.0 + 1), PageFlags::KERNEL_INIT),
        Err(MmError::Busy(p.phys()))
    );
    assert!(matches!(
        b.reserve_range(Pfn(0), Pfn(1), PageFlags(0x80)),
        Err(MmError::Invalid(_))
    ));
    b.check().unwrap();
}

#[test]
fn reserve_range_carves_and_keeps_merging() {
    let mut m = map();
    let mut b = boot(&mut m);
    let before = b.zone_stat(Zone::Normal);
    b.reserve_range(Pfn(5000), Pfn(5003), PageFlags::DEVICE)
        .unwrap();
    b.check().unwrap();
    let after = b.zone_stat(Zone::Normal);
    assert_eq!(after.managed, before.managed - 3);
    assert_eq!(after.free, before.free - 3);
    assert_eq!(after.present, before.present);
    assert_eq!(
        b.free_pages_count(Pfn(5001), 1),
        Err(MmError::Reserved(Pfn(5001)))
    );
    // A range spanning a cached page drains the cache first.
    let p = b.alloc_page(Gfp::KERNEL).unwrap();
    b.__free_page(p).unwrap();
    assert_eq!(b.page(p).unwrap().state(), PageState::Cached);
    b.reserve_range(p, Pfn(p.0 + 1), PageFlags::KERNEL).unwrap();
    b.check().unwrap();
    assert_eq!(b.zone_stat(Zone::Normal).cached, 0);
}

#[test]
fn alloc_pages_zone_exact_counts_and_zones() {
    let mut m = map();
    let mut b = boot(&mut m);
    for z in Zone::ALL {
        for num in 1..=63u64 {
            let before = zone_free(&b, z);
            let p = b.alloc_pages_zone(z, num, PageFlags::KERNEL).unwrap();
            assert_eq!(zone_free(&b, z), before - num, "zone {z} num {num}");
            assert_eq!(b.zone_of(p), z);
            assert_eq!(b.zone_of(Pfn(p.0 + num as u32 - 1)), z);
            assert_eq!(p.0 % (num.next_power_of_two() as u32), 0);
            let head = b.page(p).unwrap();
            assert_eq!(head.state(), PageState::Allocated);
            assert_eq!(head.flags(), PageFlags::KERNEL);
            assert_eq!(head.next as u64, num);
            assert_eq!(b.page_count(p), Ok(1));
            b.check().unwrap();
            b.free_pages_count(p, num).unwrap();
            assert_eq!(zone_free(&b, z), before);
        }
    }
    b.drain();
    let mut m2 = map();
    let fresh = boot(&mut m2);
    assert_eq!(free_blocks(&b), free_blocks(&fresh));
}

#[test]
fn alloc_pages_zone_errors() {
    let mut m = map();
    let mut b = boot(&mut m);
    for num in [0, 64, 1000] {
        assert_eq!(
            b.alloc_pages_zone(Zone::Dma, num, PageFlags::EMPTY),
            Err(MmError::BadCount { got: num, max: 63 })
        );
    }
    assert!(matches!(
        b.alloc_pages_zone(Zone::Dma, 1, PageFlags(0x40)),
        Err(MmError::Invalid(_))
    ));
    // A machine without highmem: UNMAPPED is empty.
    let mut m2 = map();
    let mut small = Buddy::page_init(&mut m2, Pfn(NPAGES), &ram(), &[]).unwrap();
    assert_eq!(
        small.alloc_pages_zone(Zone::Unmapped, 1, PageFlags::EMPTY),
        Err(MmError::BadZone)
    );
    // Exhaust DMA with 32-page blocks, then OOM.
    let mut got = Vec::new();
    while let Ok(p) = b.alloc_pages_zone(Zone::Dma, 32, PageFlags::EMPTY) {
        got.push(p);
    }
    assert!(zone_free(&b, Zone::Dma) < 1024 * 32);
    let n = zone_free(&b, Zone::Dma);
    assert_eq!(
        b.alloc_pages_zone(Zone::Dma, 63, PageFlags::EMPTY),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(zone_free(&b, Zone::Dma), n);
    b.check().unwrap();
    for p in got {
        b.free_pages_count(p, 32).unwrap();
    }
    b.check().unwrap();
}

#[test]
fn free_errors_change_nothing() {
    let mut m = map();
    let mut bits = slab_bits();
    let mut b = boot(&mut m);
    b.attach_slab_bits(&mut bits);
    let slab = b.alloc_slab_block(1, Gfp::KERNEL).unwrap();
    let p = b
        .alloc_pages_zone(Zone::Normal, 5, PageFlags::EMPTY)
        .unwrap();
    let snapshot: Vec<Page> = b.mem_map().to_vec();
    let stats: Vec<ZoneStat> = Zone::ALL.iter().map(|&z| b.zone_stat(z)).collect();
    let cases: Vec<(Pfn, u64, MmError)> = vec![
        (
            p,
            4,
            MmError::WrongSize {
                pfn: p,
                expected: 5,
                got: 4,
            },
        ),
        (p, 0, MmError::BadCount { got: 0, max: 63 }),
        (p, 64, MmError::BadCount { got: 64, max: 63 }),
        (Pfn(p.0 + 1), 1, MmError::NotBlockHead(Pfn(p.0 + 1))),
        (Pfn(p.0 + 5), 1, MmError::DoubleFree(Pfn(p.0 + 5))),
        (Pfn(p.0 + 7), 1, MmError::DoubleFree(Pfn(p.0 + 7))),
        (Pfn(300), 1, MmError::Reserved(Pfn(300))),
        (Pfn(200), 1, MmError::NotRam(Pfn(200).phys())),
        (Pfn(0), 1, MmError::NotRam(0)),
        (Pfn(NPAGES), 1, MmError::NotRam(Pfn(NPAGES).phys())),
        (Pfn(u32::MAX), 1, MmError::NotRam(Pfn(u32::MAX).phys())),
        (slab, 2, MmError::SlabPage(slab)),
        (Pfn(slab.0 + 1), 1, MmError::SlabPage(Pfn(slab.0 + 1))),
        (Pfn(6000), 1, MmError::DoubleFree(Pfn(6000))),
    ];
    for (pfn, num, e) in cases {
        assert_eq!(b.free_pages_count(pfn, num), Err(e), "pfn {pfn} num {num}");
    }
    assert_eq!(
        b.__free_pages(p, 3),
        Err(MmError::WrongSize {
            pfn: p,
            expected: 5,
            got: 8
        })
    );
    assert_eq!(b.__free_pages(p, 11), Err(MmError::BadOrder(11)));
    assert_eq!(
        b.__free_pages(Pfn(300), 0),
        Err(MmError::Reserved(Pfn(300)))
    );
    assert_eq!(b.put_page(Pfn(6000)), Err(MmError::DoubleFree(Pfn(6000))));
    assert_eq!(b.page_decref(Pfn(300)), Err(MmError::Reserved(Pfn(300))));
    assert!(matches!(b.get_page(Pfn(6000)), Err(MmError::Invalid(_))));
    assert_eq!(b.get_page(slab), Err(MmError::SlabPage(slab)));
    assert_eq!(b.page_count(Pfn(6000)), Ok(0));
    assert_eq!(
        b.page_count(Pfn(p.0 + 2)),
        Err(MmError::NotBlockHead(Pfn(p.0 + 2)))
    );
    assert_eq!(b.mem_map(), &snapshot[..]);
    let stats2: Vec<ZoneStat> = Zone::ALL.iter().map(|&z| b.zone_stat(z)).collect();
    assert_eq!(stats, stats2);
    b.check().unwrap();
    // Real double free after the block went back (and merged).
    b.free_pages_count(p, 5).unwrap();
    assert_eq!(b.free_pages_count(p, 5), Err(MmError::DoubleFree(p)));
    let q = b.alloc_pages(Gfp::KERNEL, 2).unwrap();
    b.__free_pages(q, 2).unwrap();
    assert_eq!(b.__free_pages(q, 2), Err(MmError::DoubleFree(q)));
    let r = b.alloc_page(Gfp::KERNEL).unwrap();
    b.__free_page(r).unwrap();
    assert_eq!(b.__free_page(r), Err(MmError::DoubleFree(r)));
    b.check().unwrap();
}

#[test]
fn linux_orders_and_zonelists() {
    let mut m = map();
    let mut b = boot(&mut m);
    assert_eq!(b.alloc_pages(Gfp::KERNEL, 11), Err(MmError::BadOrder(11)));
    assert!(matches!(
        b.alloc_pages(Gfp::KERNEL | Gfp::ZERO, 0),
        Err(MmError::Invalid(_))
    ));
    for order in 0..=MAX_ORDER {
        let p = b.alloc_pages(Gfp::KERNEL, order).unwrap();
        assert_eq!(b.zone_of(p), Zone::Normal);
        assert_eq!(p.0 % (1 << order), 0);
        let h = b.alloc_pages(Gfp::HIGHMEM, order).unwrap();
        assert_eq!(b.zone_of(h), Zone::Unmapped);
        let d = b.alloc_pages(Gfp::DMA | Gfp::HIGHMEM, order).unwrap();
        assert_eq!(b.zone_of(d), Zone::Dma);
        b.check().unwrap();
        for x in [p, h, d] {
            b.__free_pages(x, order).unwrap();
        }
    }
    // Fill NORMAL: GFP_KERNEL falls back to DMA, never to UNMAPPED.
    let mut normal = Vec::new();
    while let Ok(p) = b.alloc_pages_zone(Zone::Normal, 1, PageFlags::EMPTY) {
        normal.push(p);
    }
    let p = b.alloc_pages(Gfp::ATOMIC, 3).unwrap();
    assert_eq!(b.zone_of(p), Zone::Dma);
    b.__free_pages(p, 3).unwrap();
    // Fill DMA too: OOM although UNMAPPED has memory.
    let mut dma = Vec::new();
    while let Ok(p) = b.alloc_page(Gfp::DMA) {
        dma.push(p);
    }
    assert_eq!(b.alloc_page(Gfp::KERNEL), Err(MmError::OutOfMemory));
    assert!(zone_free(&b, Zone::Unmapped) > 0);
    // HIGHMEM falls back the other way: exhaust UNMAPPED, then it takes NORMAL.
    b.free_pages_count(normal.pop().unwrap(), 1).unwrap();
    let mut high = Vec::new();
    while let Ok(p) = b.alloc_pages_zone(Zone::Unmapped, 1, PageFlags::EMPTY) {
        high.push(p);
    }
    let p = b.alloc_page(Gfp::HIGHMEM).unwrap();
    assert_eq!(b.zone_of(p), Zone::Normal);
    normal.push(p);
    b.check().unwrap();
    for p in normal.into_iter().chain(dma).chain(high) {
        b.put_page(p).unwrap();
    }
    b.drain();
    b.check().unwrap();
    let mut m2 = map();
    assert_eq!(free_blocks(&b), free_blocks(&boot(&mut m2)));
}

#[test]
fn higher_order_failure_drains_the_cache() {
    let mut m = map();
    let mut b = Buddy::new(&mut m, Pfn(LOWMEM)).unwrap();
    b.add_free_range(Pfn(1024), Pfn(1088)).unwrap();
    // All 64 pages as single pages, then back: they all sit in the order-0 cache.
    let v: Vec<Pfn> = (0..64).map(|_| b.alloc_page(Gfp::DMA).unwrap()).collect();
    assert_eq!(b.alloc_page(Gfp::DMA), Err(MmError::OutOfMemory));
    for p in v {
        b.__free_page(p).unwrap();
    }
    assert_eq!(b.zone_stat(Zone::Dma).cached, 64);
    assert_eq!(b.buddyinfo(Zone::Dma), [0; NR_ORDERS]);
    // An order-6 request finds no block, drains the cache (which merges) and retries.
    let big = b.alloc_pages(Gfp::DMA, 6).unwrap();
    assert_eq!(big, Pfn(1024));
    assert_eq!(b.zone_stat(Zone::Dma).cached, 0);
    b.__free_pages(big, 6).unwrap();
    assert_eq!(b.buddyinfo(Zone::Dma)[6], 1);
    b.check().unwrap();
}

#[test]
fn order0_cache_counts_as_free_and_drains() {
    let mut m = map();
    let mut b = boot(&mut m);
    let total = b.nr_free_pages();
    let info = b.buddyinfo(Zone::Normal);
    let p = b.alloc_page(Gfp::KERNEL).unwrap();
    let s = b.zone_stat(Zone::Normal);
    assert_eq!(s.cached as usize, PCP_BATCH - 1);
    assert_eq!(b.nr_free_pages(), total - 1);
    b.__free_page(p).unwrap();
    assert_eq!(b.nr_free_pages(), total);
    assert_ne!(b.buddyinfo(Zone::Normal), info);
    b.drain();
    assert_eq!(b.buddyinfo(Zone::Normal), info);
    // Past PCP_HIGH pages the cache list counts as pooled; it stays bounded.
    let v: Vec<Pfn> = (0..PCP_HIGH + 10)
        .map(|_| b.alloc_page(Gfp::KERNEL).unwrap())
        .collect();
    for p in &v {
        b.__free_page(*p).unwrap();
        let s = b.zone_stat(Zone::Normal);
        let pooled = b.pooled_pages(Zone::Normal);
        assert!((s.cached - pooled) as usize <= PCP_HIGH);
        assert!(pooled <= s.managed / 2);
    }
    assert!(b.pooled_pages(Zone::Normal) > 0);
    b.check().unwrap();
    assert_eq!(b.nr_free_pages(), total);
    b.drain();
    assert_eq!(b.buddyinfo(Zone::Normal), info);
}

#[test]
fn refcounts_shared_and_mm_stat() {
    let mut m = map();
    let mut b = boot(&mut m);
    let p = b.alloc_pages(Gfp::KERNEL, 2).unwrap();
    assert_eq!(b.page_count(p), Ok(1));
    assert_eq!(b.shared_pages(), 0);
    assert_eq!(b.get_page(p), Ok(2));
    assert_eq!(b.shared_pages(), 4);
    assert_eq!(b.mm_stat().shared, 4 * 4096);
    assert_eq!(
        b.get_page(Pfn(p.0 + 1)),
        Err(MmError::NotBlockHead(Pfn(p.0 + 1)))
    );
    // __free_pages drops one reference.
    b.__free_pages(p, 2).unwrap();
    assert_eq!(b.page_count(p), Ok(1));
    assert_eq!(b.shared_pages(), 0);
    assert_eq!(b.put_page(p), Ok(true));
    assert_eq!(b.page_count(p), Ok(0));
    // SHARED flag counts as shared, once even with count 2.
    let q = b
        .alloc_pages_zone(Zone::Normal, 3, PageFlags::SHARED)
        .unwrap();
    assert_eq!(b.shared_pages(), 3);
    b.get_page(q).unwrap();
    assert_eq!(b.shared_pages(), 3);
    assert_eq!(b.page_decref(q), Ok(false));
    assert_eq!(b.page_decref(q), Ok(true));
    assert_eq!(b.shared_pages(), 0);
    let s = b.mm_stat();
    assert_eq!(s.total, s.used + s.free);
    assert_eq!(s.available, s.free);
    b.check().unwrap();
}

#[test]
fn virtual_address_functions() {
    let mut m = map();
    let mut b = boot(&mut m);
    let mut mem = SimMem::new(NPAGES as usize * PAGE_SIZE, 0xee).direct_map_end(Pfn(LOWMEM).phys());
    let v = b
        .__get_free_pages(Gfp::KERNEL | Gfp::ZERO, 2, &mut mem)
        .unwrap();
    let phys = mem.phys_of(v).unwrap();
    let pfn = Pfn::containing(phys);
    assert_eq!(b.zone_of(pfn), Zone::Normal);
    assert_eq!(b.page_address(pfn, &mem), Some(v));
    assert!(mem.bytes[phys as usize..phys as usize + 4 * PAGE_SIZE]
        .iter()
        .all(|&x| x == 0));
    mem.fill(phys, 4 * PAGE_SIZE, 0xaa);
    assert_eq!(
        b.free_pages(v + 8, 2, &mem),
        Err(MmError::Misaligned(v + 8))
    );
    assert_eq!(
        b.free_pages(v, 1, &mem).unwrap_err(),
        MmError::WrongSize {
            pfn,
            expected: 2,
            got: 1
        }
    );
    assert_eq!(b.free_pages(12345, 0, &mem), Err(MmError::NotRam(12345)));
    assert_eq!(b.free_pages(v, 12, &mem), Err(MmError::BadOrder(12)));
    b.free_pages(v, 2, &mem).unwrap();
    assert_eq!(b.free_pages(0, 0, &mem), Ok(()));
    let z = b.get_zeroed_page(Gfp::KERNEL, &mut mem).unwrap();
    let zp = mem.phys_of(z).unwrap() as usize;
    assert!(mem.bytes[zp..zp + PAGE_SIZE].iter().all(|&x| x == 0));
    b.free_page(z, &mem).unwrap();
    let d = b.__get_free_page(Gfp::DMA, &mut mem).unwrap();
    assert_eq!(
        b.zone_of(Pfn::containing(mem.phys_of(d).unwrap())),
        Zone::Dma
    );
    b.free_page(d, &mem).unwrap();
    // Highmem has no virtual address.
    let h = b.alloc_page(Gfp::HIGHMEM).unwrap();
    assert_eq!(b.page_address(h, &mem), None);
    assert_eq!(b.page_address(Pfn(NPAGES + 5), &mem), None);
    // __GFP_HIGHMEM is ignored by __get_free_pages.
    let v = b.__get_free_pages(Gfp::HIGHMEM, 0, &mut mem).unwrap();
    assert!(mem.phys_of(v).unwrap() < Pfn(LOWMEM).phys());
    b.free_page(v, &mem).unwrap();
    // alloc_pages_mem zeroes any zone.
    mem.fill(0, mem.bytes.len(), 0xcc);
    let hz = b
        .alloc_pages_mem(Gfp::HIGHMEM | Gfp::ZERO, 1, &mut mem)
        .unwrap();
    let hp = hz.phys() as usize;
    assert!(mem.bytes[hp..hp + 2 * PAGE_SIZE].iter().all(|&x| x == 0));
    b.__free_pages(hz, 1).unwrap();
    b.__free_page(h).unwrap();
    b.check().unwrap();
}

#[test]
fn get_free_pages_only_unmapped_left() {
    let mut m = map();
    let mut b = boot(&mut m);
    let mut mem = SimMem::new(NPAGES as usize * PAGE_SIZE, 0xee).direct_map_end(Pfn(LOWMEM).phys());
    let mut v = Vec::new();
    while let Ok(p) = b.alloc_page(Gfp::KERNEL) {
        v.push(p);
    }
    let free = b.nr_free_pages();
    assert!(matches!(
        b.__get_free_pages(Gfp::HIGHMEM, 0, &mut mem),
        Err(MmError::NoVirtualAddress(p)) if b.zone_of(p) == Zone::Unmapped
    ));
    assert_eq!(
        b.__get_free_pages(Gfp::KERNEL, 0, &mut mem),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(b.nr_free_pages(), free);
    for p in v {
        b.__free_page(p).unwrap();
    }
    b.check().unwrap();
}

#[test]
fn mos_page_alloc_and_decref() {
    let mut m = map();
    let mut b = boot(&mut m);
    let mut mem = SimMem::new(NPAGES as usize * PAGE_SIZE, 0xee).direct_map_end(Pfn(LOWMEM).phys());
    let p = b.page_alloc(&mut mem).unwrap();
    assert!(mem.bytes[p.phys() as usize..p.phys() as usize + PAGE_SIZE]
        .iter()
        .all(|&x| x == 0));
    assert_eq!(b.zone_of(p), Zone::Normal);
    b.get_page(p).unwrap();
    assert_eq!(b.page_decref(p), Ok(false));
    assert_eq!(b.page_decref(p), Ok(true));
    assert_eq!(b.page_decref(p), Err(MmError::DoubleFree(p)));
    // -E_NO_MEM
    let mut v = Vec::new();
    while let Ok(p) = b.page_alloc(&mut mem) {
        v.push(p);
    }
    assert_eq!(b.page_alloc(&mut mem), Err(MmError::OutOfMemory));
    for p in v {
        b.page_decref(p).unwrap();
    }
    b.check().unwrap();
}

#[test]
fn page_provider_slab_blocks() {
    let mut m = map();
    let mut bits = slab_bits();
    let mut b = boot(&mut m);
    b.attach_slab_bits(&mut bits);
    let free = b.nr_free_pages();
    let s = b.alloc_slab_block(2, Gfp::KERNEL).unwrap();
    let d = b.alloc_slab_block(0, Gfp::DMA).unwrap();
    assert_eq!(b.zone_of(s), Zone::Normal);
    assert_eq!(b.zone_of(d), Zone::Dma);
    assert_eq!(s.0 % 4, 0);
    assert_eq!(b.page(s).unwrap().state(), PageState::Slab);
    assert_eq!(b.page(s).unwrap().order(), 2);
    assert_eq!(b.nr_free_pages(), free - 5);
    // The slab scribbles over its pages' fields.
    for i in 0..4 {
        let p = PageProvider::page_mut(&mut b, Pfn(s.0 + i)).unwrap();
        p.slab_cache = 7;
        p.count = 99;
        p.next = s.0;
        p.prev = 1234;
    }
    b.check().unwrap();
    assert_eq!(b.__free_pages(s, 2), Err(MmError::SlabPage(s)));
    assert_eq!(
        b.put_page(Pfn(s.0 + 3)),
        Err(MmError::SlabPage(Pfn(s.0 + 3)))
    );
    assert_eq!(
        b.free_slab_block(s, 1),
        Err(MmError::WrongSize {
            pfn: s,
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        b.alloc_slab_block(11, Gfp::KERNEL),
        Err(MmError::BadOrder(11))
    );
    let a = b.alloc_page(Gfp::KERNEL).unwrap();
    assert!(matches!(b.free_slab_block(a, 0), Err(MmError::Invalid(_))));
    b.free_slab_block(s, 2).unwrap();
    b.free_slab_block(d, 0).unwrap();
    assert_eq!(b.free_slab_block(s, 2), Err(MmError::DoubleFree(s)));
    b.__free_page(a).unwrap();
    assert_eq!(b.nr_free_pages(), free);
    assert!(PageProvider::page(&b, Pfn(NPAGES)).is_none());
    b.check().unwrap();
}

#[test]
fn slab_blocks_only_where_the_bitmap_reaches() {
    // No bitmap: no slabs, and nothing is taken from the free lists.
    let mut m = map();
    let mut b = boot(&mut m);
    let free = b.nr_free_pages();
    assert!(b.slab_bits().is_empty());
    for (order, dma) in [(0, false), (0, true), (3, false), (MAX_ORDER, false)] {
        assert_eq!(
            b.alloc_slab_block(order, if dma { Gfp::DMA } else { Gfp::KERNEL }),
            Err(MmError::OutOfMemory)
        );
    }
    assert_eq!(b.nr_free_pages(), free);
    b.check().unwrap();

    // A bitmap (garbage, cleared on attach) over the first `N` frames: all of
    // ZONE_DMA and part of ZONE_NORMAL.
    const N: u32 = 6000;
    let mut m = map();
    let mut bits = vec![!0u64; Buddy::slab_bits_words(N)];
    assert_eq!(bits.len(), 2 * N as usize);
    let mut b = boot(&mut m);
    b.attach_slab_bits(&mut bits);
    assert_eq!(b.slab_bits().len(), 2 * N as usize);
    assert!(b.slab_bits().iter().all(|&w| w == 0));
    b.slab_bits_mut()[0] = 1;
    b.slab_bits_mut()[0] = 0;
    let free = b.nr_free_pages();
    let mut got = Vec::new();
    for (order, dma) in [(2, false), (0, true), (0, false), (5, false)] {
        while let Ok(s) = b.alloc_slab_block(order, if dma { Gfp::DMA } else { Gfp::KERNEL }) {
            assert!(
                s.0 + (1 << order) <= N,
                "slab block {s} order {order} past {N}"
            );
            assert_eq!(b.page(s).unwrap().state(), PageState::Slab);
            if dma {
                assert_eq!(b.zone_of(s), Zone::Dma);
            }
            got.push((s, order));
        }
        b.check().unwrap();
    }
    assert!(got.iter().any(|&(s, _)| b.zone_of(s) == Zone::Dma));
    // Frames outside the bitmap are still there for page allocations.
    let p = b.alloc_pages(Gfp::KERNEL, 0).unwrap();
    assert!(p.0 >= N);
    b.__free_pages(p, 0).unwrap();
    for (s, order) in got {
        b.free_slab_block(s, order).unwrap();
    }
    assert_eq!(b.nr_free_pages(), free);
    b.check().unwrap();
}

#[test]
fn merge_likely_blocks_go_to_the_tail() {
    // Drives the free lists directly (the block caches would hide the placement).
    let mut m = map();
    let mut b = Buddy::new(&mut m, Pfn(LOWMEM)).unwrap();
    let z = Zone::Normal;
    // One 8-page RAM range at 4096: blocks A=[4096,4098) B=[4098,4100) C=[4100,4104).
    b.add_free_range(Pfn(4096), Pfn(4104)).unwrap();
    let a = b.rmqueue(z, 1).unwrap();
    let b2 = b.rmqueue(z, 1).unwrap();
    let c = b.rmqueue(z, 2).unwrap();
    assert_eq!([a, b2, c], [4096, 4098, 4100]);
    for (p, o) in [(a, 1), (b2, 1), (c, 2)] {
        b.prep_alloc(p, z, o, 1 << o, PageFlags::EMPTY);
    }
    // An unrelated free order-1 block elsewhere.
    b.add_free_range(Pfn(5000), Pfn(5002)).unwrap();
    // Free C: its buddy A-B is busy and so is the parent's buddy: head.
    b.free_block(z, c, 2);
    assert_eq!(b.zones[z as usize].head[2], c);
    // Free B: its buddy A is busy but the parent's buddy C is free: merge likely,
    // so B goes to the tail, behind the block at 5000.
    b.free_block(z, b2, 1);
    let zd = &b.zones[z as usize];
    assert_eq!((zd.head[1], zd.tail[1]), (5000, 4098));
    assert_eq!(b.rmqueue(z, 1), Some(5000));
    b.prep_alloc(5000, z, 1, 2, PageFlags::EMPTY);
    // Free A: merges with B, then with C.
    b.free_block(z, a, 1);
    assert_eq!(b.zone_stat(z).nr_free[3], 1);
    b.check().unwrap();
}

#[test]
fn check_detects_corruption() {
    let mut m = map();
    let mut b = boot(&mut m);
    let p = b.alloc_pages(Gfp::KERNEL, 1).unwrap();
    b.check().unwrap();
    PageProvider::page_mut(&mut b, Pfn(p.0 + 1))
        .unwrap()
        .set_state(PageState::Free);
    let e = b.check().unwrap_err();
    assert_eq!(e.what, "block frame is not a tail");
    assert!(e.to_string().contains("pfn="));
    PageProvider::page_mut(&mut b, Pfn(p.0 + 1))
        .unwrap()
        .set_state(PageState::Tail);
    PageProvider::page_mut(&mut b, p).unwrap().count = 0;
    assert!(b.check().is_err());
    PageProvider::page_mut(&mut b, p).unwrap().count = 1;
    b.check().unwrap();
}

#[test]
fn boot_fill_scales_linearly() {
    // 4 GiB of RAM with a hole below 1 MiB and the PCI hole at 3..4 GiB.
    let n = (5u64 << 30 >> PAGE_SHIFT) as usize;
    let mut m = vec![Page::reserved(Zone::Dma); n];
    let ram = [
        (Pfn(1), Pfn(159)),
        (Pfn(256), Pfn::containing(3 << 30)),
        (Pfn::containing(4 << 30), Pfn(n as u32)),
    ];
    let b = Buddy::page_init(
        &mut m,
        Pfn::containing(2 << 30),
        &ram,
        &[(Pfn(256), Pfn(1024), PageFlags::KERNEL_INIT)],
    )
    .unwrap();
    b.check().unwrap();
    assert_eq!(b.present_pages(), 158 + (3 << 18) - 256 + (1 << 18));
    assert_eq!(b.nr_free_pages(), b.present_pages() - 768);
}

#[test]
fn higher_order_block_caches() {
    let mut m = map();
    let mut b = Buddy::new(&mut m, Pfn(LOWMEM)).unwrap();
    b.add_free_range(Pfn(1024), Pfn(1056)).unwrap(); // 32 pages of DMA
    let p = b.alloc_pages(Gfp::DMA, PCP_MAX_ORDER).unwrap();
    let blk = 1u64 << PCP_MAX_ORDER;
    let s = b.zone_stat(Zone::Dma);
    assert_eq!(s.free, 32 - blk);
    b.check().unwrap();
    // The lists may be empty now; an order-0 request drains the caches and succeeds.
    let q = b.alloc_page(Gfp::DMA).unwrap();
    assert_eq!(b.nr_free_pages(), 32 - blk - 1);
    b.check().unwrap();
    b.__free_pages(p, PCP_MAX_ORDER).unwrap();
    if PCP_MAX_ORDER > 0 {
        assert_eq!(b.page(p).unwrap().state(), PageState::Cached);
        assert_eq!(b.page(Pfn(p.0 + 1)).unwrap().state(), PageState::Tail);
        assert_eq!(
            b.put_page(Pfn(p.0 + 1)),
            Err(MmError::DoubleFree(Pfn(p.0 + 1)))
        );
        assert_eq!(b.page_count(Pfn(p.0 + 1)), Ok(0));
    }
    // Reserving a frame inside a cached block drains it first.
    let last = Pfn(p.0 + blk as u32 - 1);
    b.reserve_range(last, Pfn(last.0 + 1), PageFlags::KERNEL_INIT)
        .unwrap();
    b.check().unwrap();
    assert_eq!(b.zone_stat(Zone::Dma).managed, 31);
    b.__free_page(q).unwrap();
    b.drain();
    assert_eq!(b.nr_free_pages(), 31);
    b.check().unwrap();
}

#[test]
fn fail_page_alloc_fails_the_page_api_and_bypasses_the_caches() {
    use crate::fault::FaultConfig;
    let mut m = map();
    let mut bits = slab_bits();
    let mut b = boot(&mut m);
    b.attach_slab_bits(&mut bits);
    let mut mem = SimMem::new(NPAGES as usize * PAGE_SIZE, 0xee).direct_map_end(Pfn(LOWMEM).phys());
    // Fill the caches.
    let warm: Vec<Pfn> = (0..8).map(|_| b.alloc_page(Gfp::KERNEL).unwrap()).collect();
    for p in warm {
        b.__free_page(p).unwrap();
    }
    assert!(b.zone_stat(Zone::Normal).cached > 0);
    b.set_fail_page_alloc(Some(FaultConfig::ALWAYS));
    assert_eq!(
        b.zone_stat(Zone::Normal).cached,
        0,
        "arming drains the caches"
    );
    let before = (b.nr_free_pages(), free_blocks(&b));
    let oom = Err(MmError::OutOfMemory);
    assert_eq!(b.alloc_page(Gfp::KERNEL), oom);
    assert_eq!(b.alloc_pages(Gfp::DMA, 3), oom);
    assert_eq!(b.alloc_pages(Gfp::HIGHMEM, 10), oom);
    assert_eq!(b.alloc_pages_zone(Zone::Normal, 1, PageFlags::EMPTY), oom);
    assert_eq!(b.alloc_pages_zone(Zone::Dma, 5, PageFlags::KERNEL), oom);
    assert_eq!(b.page_alloc(&mut mem), oom);
    assert_eq!(
        b.__get_free_pages(Gfp::KERNEL, 0, &mut mem),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(
        b.get_zeroed_page(Gfp::KERNEL, &mut mem),
        Err(MmError::OutOfMemory)
    );
    // Argument errors keep their own answer and are not counted.
    assert_eq!(b.alloc_pages(Gfp::KERNEL, 11), Err(MmError::BadOrder(11)));
    assert!(matches!(
        b.alloc_pages_zone(Zone::Normal, 0, PageFlags::EMPTY),
        Err(MmError::BadCount { .. })
    ));
    assert_eq!(b.fail_page_alloc().injected(), 8);
    assert_eq!((b.nr_free_pages(), free_blocks(&b)), before);
    // The kernel's reserve requests and slab blocks are not failed here; a block
    // released while armed goes to the free lists, not to a cache.
    let k = b.alloc_page(Gfp::MEMALLOC).unwrap();
    let s = b.alloc_slab_block(0, Gfp::KERNEL).unwrap();
    b.free_slab_block(s, 0).unwrap();
    assert_eq!(b.zone_stat(Zone::Normal).cached, 0);
    assert_eq!(b.alloc_page(Gfp::KERNEL), oom);
    // The documented exception: the `put` fast path still pushes onto a cache, and
    // the next allocation of that order and zone takes that block unchecked.
    b.__free_page(k).unwrap();
    assert_eq!(b.zone_stat(Zone::Normal).cached, 1);
    assert_eq!(b.alloc_page(Gfp::KERNEL), Ok(k));
    assert_eq!(b.alloc_page(Gfp::KERNEL), oom);
    b.__free_page(k).unwrap();
    b.check().unwrap();
    // Disarmed: everything works again, with the caches.
    b.set_fail_page_alloc(None);
    let p = b.alloc_page(Gfp::KERNEL).unwrap();
    let q = b.alloc_page(Gfp::KERNEL).unwrap();
    assert!(b.zone_stat(Zone::Normal).cached > 0, "refills again");
    b.__free_page(p).unwrap();
    b.__free_page(q).unwrap();
    assert_eq!(b.fail_page_alloc().injected(), 10);
    b.check().unwrap();
}

#[test]
fn fail_page_alloc_interval() {
    use crate::fault::FaultConfig;
    let mut m = map();
    let mut b = boot(&mut m);
    b.set_fail_page_alloc(Some(FaultConfig {
        interval: 3,
        ..FaultConfig::ALWAYS
    }));
    let got: Vec<bool> = (0..6).map(|_| b.alloc_page(Gfp::KERNEL).is_ok()).collect();
    assert_eq!(got, [true, true, false, true, true, false]);
    b.check().unwrap();
}

#[test]
fn check_catches_a_broken_cache_list() {
    let mut m = map();
    let mut b = boot(&mut m);
    let v: Vec<Pfn> = (0..PCP_HIGH + 70)
        .map(|_| b.alloc_page(Gfp::KERNEL).unwrap())
        .collect();
    for &p in &v {
        b.__free_page(p).unwrap();
    }
    let n = b.zones[Zone::Normal as usize].pcp_len[0];
    assert!(n > 0);
    b.check().unwrap();
    let head = b.zones[Zone::Normal as usize].pcp[0];
    let second = b.map[head as usize].next;
    // A cached head that lost its mark, a list cut short, a wrong count, a cycle.
    let saved = b.map[second as usize];
    b.map[second as usize].count = 0;
    assert!(b.check().is_err());
    b.map[second as usize] = saved;
    b.map[second as usize].next = NIL;
    assert!(b.check().is_err());
    b.map[second as usize] = saved;
    b.zones[Zone::Normal as usize].pcp_len[0] = n - 1;
    assert!(b.check().is_err());
    b.zones[Zone::Normal as usize].pcp_len[0] = n + 1;
    assert!(b.check().is_err());
    b.zones[Zone::Normal as usize].pcp_len[0] = n;
    b.map[second as usize].next = head;
    assert!(b.check().is_err());
    b.map[second as usize] = saved;
    b.check().unwrap();
    b.drain();
    b.check().unwrap();
}
