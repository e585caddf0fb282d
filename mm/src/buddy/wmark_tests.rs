//! Unit tests of the watermarks: ordinary requests stop at `min`, `Gfp::MEMALLOC`
//! goes below, zone fallback prefers zones above `low`, and every allocation API
//! obeys them.

use std::vec;
use std::vec::Vec;

use super::*;

/// 64 MiB: DMA 16 MiB, NORMAL 16..40 MiB, UNMAPPED above; no holes.
const NPAGES: u32 = 16384;
const LOWMEM: u32 = 10240;

fn boot(map: &mut Vec<Page>) -> Buddy<'_> {
    map.resize(NPAGES as usize, Page::reserved(Zone::Dma));
    let mut b = Buddy::page_init(map, Pfn(LOWMEM), &[(Pfn(16), Pfn(NPAGES))], &[]).unwrap();
    let kb = b.default_min_free_kbytes();
    b.setup_watermarks(kb);
    b.check().unwrap();
    b
}

/// Frames on the free lists of `zone` (the watermarks' measure).
fn listed(b: &Buddy, zone: Zone) -> u64 {
    let z = b.zone_stat(zone);
    z.free - z.cached
}

#[test]
fn linux_formula_and_shares() {
    let mut map = Vec::new();
    let b = boot(&mut map);
    // DMA 4080 + NORMAL 6144 managed = 40896 KiB; sqrt(16 * 40896) = 808 KiB.
    assert_eq!(b.default_min_free_kbytes(), 808);
    let (dma, normal, un) = (
        b.watermarks(Zone::Dma),
        b.watermarks(Zone::Normal),
        b.watermarks(Zone::Unmapped),
    );
    // 202 pages shared by managed frames: 202 * 4080 / 10224 = 80, 202 * 6144 / 10224 = 121.
    assert_eq!(dma[0], 80);
    assert_eq!(normal[0], 121);
    // gap = max(share / 4, managed / 1000).
    assert_eq!(dma, [80, 100, 120]);
    assert_eq!(normal, [121, 151, 181]);
    // Highmem-like: managed / 1024 clamped to 32..=128; gap from its share.
    assert_eq!(un[0], 32);
    assert!(un[0] < un[1] && un[1] < un[2]);
    // The clamp: a tiny machine still keeps 128 KiB.
    let mut small = vec![Page::reserved(Zone::Dma); 200];
    let b2 = Buddy::page_init(&mut small, Pfn(200), &[(Pfn(16), Pfn(200))], &[]).unwrap();
    assert_eq!(b2.default_min_free_kbytes(), 128);
}

#[test]
fn zero_clears_every_watermark() {
    let mut map = Vec::new();
    let mut b = boot(&mut map);
    b.setup_watermarks(0);
    for z in Zone::ALL {
        assert_eq!(b.watermarks(z), [0; 3]);
    }
    // Without watermarks a plain request takes the last page.
    while b.alloc_pages(Gfp::KERNEL, 0).is_ok() {}
    assert_eq!(listed(&b, Zone::Normal) + listed(&b, Zone::Dma), 0);
}

#[test]
fn plain_requests_stop_at_min_and_memalloc_goes_below() {
    let mut map = Vec::new();
    let mut b = boot(&mut map);
    let mut got = 0u64;
    let err = loop {
        match b.alloc_pages(Gfp::KERNEL, 0) {
            Ok(_) => got += 1,
            Err(e) => break e,
        }
    };
    let [nmin, ..] = b.watermarks(Zone::Normal);
    let [dmin, ..] = b.watermarks(Zone::Dma);
    assert_eq!(listed(&b, Zone::Normal), nmin);
    assert_eq!(listed(&b, Zone::Dma), dmin);
    assert_eq!(
        err,
        MmError::BelowWatermark {
            zone: Zone::Normal,
            free: nmin,
            min: nmin
        }
    );
    assert!(err
        .to_string()
        .starts_with("out of memory: zone NORMAL has"));
    assert_eq!(got, 4080 + 6144 - nmin - dmin);
    b.check().unwrap();
    // Every other page API stops there too.
    assert!(b
        .alloc_pages_zone(Zone::Normal, 1, PageFlags::EMPTY)
        .is_err());
    assert!(b.alloc_pages_zone(Zone::Dma, 1, PageFlags::EMPTY).is_err());
    assert!(b.alloc_slab_block(0, Gfp::KERNEL).is_err());
    assert!(b.alloc_slab_block(0, Gfp::DMA).is_err());
    assert!(b.alloc_pages(Gfp::ATOMIC, 0).is_err());
    // The reserve is the kernel heap's.
    let mut reserve = 0;
    while b.alloc_pages(Gfp::KERNEL | Gfp::MEMALLOC, 0).is_ok() {
        reserve += 1;
    }
    assert_eq!(reserve, nmin + dmin);
    assert_eq!(
        b.alloc_pages(Gfp::KERNEL | Gfp::MEMALLOC, 0),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(b.alloc_pages(Gfp::KERNEL, 0), Err(MmError::OutOfMemory));
    b.check().unwrap();
}

#[test]
fn memalloc_prefers_memory_above_the_watermarks() {
    let mut map = Vec::new();
    let mut b = boot(&mut map);
    // NORMAL down to its min; DMA untouched.
    let [nmin, ..] = b.watermarks(Zone::Normal);
    while listed(&b, Zone::Normal) > nmin {
        b.alloc_pages_zone(Zone::Normal, 1, PageFlags::EMPTY)
            .unwrap();
    }
    b.drain();
    let before = listed(&b, Zone::Normal);
    // The kernel heap takes DMA's free memory before NORMAL's reserve.
    let pfn = b.alloc_pages(Gfp::KERNEL | Gfp::MEMALLOC, 0).unwrap();
    assert_eq!(b.zone_of(pfn), Zone::Dma);
    assert_eq!(listed(&b, Zone::Normal), before);
}

#[test]
fn fallback_prefers_zones_above_low() {
    let mut map = Vec::new();
    let mut b = boot(&mut map);
    let [nmin, nlow, _] = b.watermarks(Zone::Normal);
    // NORMAL between min and low.
    while listed(&b, Zone::Normal) > nlow - 1 {
        b.alloc_pages_zone(Zone::Normal, 1, PageFlags::EMPTY)
            .unwrap();
    }
    b.drain();
    assert!(listed(&b, Zone::Normal) > nmin);
    // A plain request goes to DMA (above low) rather than into NORMAL's last pages.
    let pfn = b.alloc_pages(Gfp::KERNEL, 0).unwrap();
    assert_eq!(b.zone_of(pfn), Zone::Dma);
    // With DMA below low too, NORMAL is used down to min.
    let [dmin, dlow, _] = b.watermarks(Zone::Dma);
    while listed(&b, Zone::Dma) > dlow - 1 {
        b.alloc_pages_zone(Zone::Dma, 1, PageFlags::EMPTY).unwrap();
    }
    b.drain();
    assert!(listed(&b, Zone::Dma) > dmin);
    let pfn = b.alloc_pages(Gfp::KERNEL, 0).unwrap();
    assert_eq!(b.zone_of(pfn), Zone::Normal);
    b.check().unwrap();
}

#[test]
fn higher_orders_respect_min_with_their_size() {
    let mut map = Vec::new();
    let mut b = boot(&mut map);
    let [nmin, ..] = b.watermarks(Zone::Normal);
    // Order 5 (32 frames) blocks until the next one would cross min.
    while b
        .alloc_pages_zone(Zone::Normal, 32, PageFlags::EMPTY)
        .is_ok()
    {}
    let left = listed(&b, Zone::Normal);
    assert!(left >= nmin && left < nmin + 32, "{left} vs min {nmin}");
    b.check().unwrap();
}

#[test]
fn freeing_restores_and_watermarks_stay() {
    let mut map = Vec::new();
    let mut b = boot(&mut map);
    let boot_stat = b.mm_stat();
    let marks = Zone::ALL.map(|z| b.watermarks(z));
    let mut held = Vec::new();
    while let Ok(p) = b.alloc_pages(Gfp::KERNEL, 3) {
        held.push(p);
    }
    while let Ok(p) = b.alloc_pages(Gfp::KERNEL | Gfp::MEMALLOC, 0) {
        held.push(p);
    }
    for p in held {
        let order = b.page(p).unwrap().order();
        b.__free_pages(p, order).unwrap();
    }
    b.drain();
    assert_eq!(b.mm_stat(), boot_stat);
    assert_eq!(Zone::ALL.map(|z| b.watermarks(z)), marks);
    b.check().unwrap();
}
