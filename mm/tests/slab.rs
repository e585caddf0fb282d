//! Host tests of the slab allocator: a simulated physical memory (`Vec<u8>` behind a
//! direct map), a simple page provider (`MockPages`) and the real buddy allocator;
//! property tests against a model, unit tests of every debug check, mempool and
//! selftest scenario.

use std::collections::BTreeMap;

use mm::buddy::Buddy;
use mm::sim::SimMem;
use mm::slab::{
    cmdline_slub_debug, CacheId, CacheInfo, DebugFlags, PoolBacking, Slab, SlabFlags, SlabTotals,
    POISON_END, POISON_FREE, POISON_INUSE, SLUB_RED_ACTIVE, SLUB_RED_INACTIVE,
};
use mm::{
    Gfp, MmError, Page, PageProvider, PageState, Pfn, PhysMem, Zone, MAX_ORDER, NIL, PAGE_SIZE,
};
use proptest::prelude::*;

const DIRECT_MAP: u64 = mm::layout::DIRECT_MAP_BASE;
const DMA_PAGES: u32 = 4096;

// ----------------------------------------------------------------------------
// Simulated machine
// ----------------------------------------------------------------------------

/// A simple page provider: first-fit naturally aligned blocks, DMA below 16 MiB,
/// optional failure injection, and checks that the slab gives blocks back cleanly.
struct MockPages {
    map: Vec<Page>,
    used: Vec<bool>,
    blocks: BTreeMap<u32, u32>,
    /// Successful allocations still allowed (None = unlimited).
    budget: Option<usize>,
    /// The slab liveness bitmap over every frame (two words per frame).
    bits: Vec<u64>,
}

impl MockPages {
    fn new(npages: u32) -> MockPages {
        let map = (0..npages)
            .map(|i| {
                let mut p = Page::reserved(if i < DMA_PAGES {
                    Zone::Dma
                } else {
                    Zone::Normal
                });
                p.set_state(PageState::Free);
                p
            })
            .collect();
        let mut used = vec![false; npages as usize];
        used[0] = true; // keep PFN 0 out
        MockPages {
            map,
            used,
            blocks: BTreeMap::new(),
            budget: None,
            bits: vec![0; Buddy::slab_bits_words(npages)],
        }
    }

    fn try_range(&mut self, lo: u32, hi: u32, order: u32) -> Option<u32> {
        let n = 1u32 << order;
        let mut pfn = lo.next_multiple_of(n);
        while pfn + n <= hi {
            if !self.used[pfn as usize..(pfn + n) as usize]
                .iter()
                .any(|&u| u)
            {
                return Some(pfn);
            }
            pfn += n;
        }
        None
    }

    fn outstanding(&self) -> usize {
        self.blocks.len()
    }
}

impl PageProvider for MockPages {
    fn alloc_slab_block(&mut self, order: u32, gfp: Gfp) -> Result<Pfn, MmError> {
        let dma = gfp.contains(Gfp::DMA);
        if order > MAX_ORDER {
            return Err(MmError::BadOrder(order));
        }
        if let Some(b) = self.budget.as_mut() {
            if *b == 0 {
                return Err(MmError::OutOfMemory);
            }
            *b -= 1;
        }
        let len = self.map.len() as u32;
        let found = if dma {
            self.try_range(0, DMA_PAGES.min(len), order)
        } else {
            self.try_range(DMA_PAGES, len, order)
                .or_else(|| self.try_range(0, DMA_PAGES.min(len), order))
        };
        let head = found.ok_or(MmError::OutOfMemory)?;
        for i in head..head + (1 << order) {
            self.used[i as usize] = true;
            let p = &mut self.map[i as usize];
            p.set_state(if i == head {
                PageState::Slab
            } else {
                PageState::Tail
            });
            // Garbage the slab must overwrite.
            p.slab_cache = 0;
            p.count = 0xdead;
            p.next = 0xbeef;
            p.prev = 0xf00d;
        }
        self.map[head as usize].set_order(order);
        self.blocks.insert(head, order);
        Ok(Pfn(head))
    }

    fn free_slab_block(&mut self, head: Pfn, order: u32) -> Result<(), MmError> {
        assert_eq!(
            self.blocks.remove(&head.0),
            Some(order),
            "freeing unknown block"
        );
        assert_eq!(self.map[head.index()].state(), PageState::Slab);
        for i in head.0..head.0 + (1 << order) {
            let p = &mut self.map[i as usize];
            assert_eq!(p.slab_cache, 0, "slab page given back with its cache set");
            if i != head.0 {
                assert_eq!(p.state(), PageState::Tail);
                assert_eq!(p.next, head.0, "tail does not point to its head");
            }
            p.set_state(PageState::Free);
            self.used[i as usize] = false;
        }
        Ok(())
    }

    fn page(&self, pfn: Pfn) -> Option<&Page> {
        self.map.get(pfn.index())
    }

    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
        self.map.get_mut(pfn.index())
    }

    fn slab_bits(&self) -> &[u64] {
        &self.bits
    }

    fn slab_bits_mut(&mut self) -> &mut [u64] {
        &mut self.bits
    }
}

/// Slab + memory + provider.
struct Env {
    slab: Box<Slab>,
    mem: SimMem,
    pages: MockPages,
}

impl Env {
    fn new(npages: u32) -> Env {
        Env {
            slab: Box::new(Slab::new()),
            mem: SimMem::new(npages as usize * PAGE_SIZE, 0xee),
            pages: MockPages::new(npages),
        }
    }
    fn kmalloc(&mut self, size: usize, gfp: Gfp) -> Result<u64, MmError> {
        self.slab.kmalloc(&mut self.mem, &mut self.pages, size, gfp)
    }
    fn kfree(&mut self, v: u64) -> Result<(), MmError> {
        self.slab.kfree(&mut self.mem, &mut self.pages, v)
    }
    fn create(&mut self, name: &str, size: usize, align: usize, f: SlabFlags) -> CacheId {
        self.slab
            .kmem_cache_create(name, size, align, f, None)
            .unwrap()
    }
    fn calloc(&mut self, c: CacheId) -> Result<u64, MmError> {
        self.slab
            .kmem_cache_alloc(&mut self.mem, &mut self.pages, c, Gfp::KERNEL)
    }
    fn cfree(&mut self, c: CacheId, v: u64) -> Result<(), MmError> {
        self.slab
            .kmem_cache_free(&mut self.mem, &mut self.pages, c, v)
    }
    fn phys(&self, v: u64) -> u64 {
        self.mem.phys_of(v).unwrap()
    }
    fn read(&self, v: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.mem.read(self.phys(v), &mut b);
        b
    }
    fn write(&mut self, v: u64, bytes: &[u8]) {
        let p = self.phys(v);
        self.mem.write(p, bytes);
    }
    fn validate_all(&mut self) -> u64 {
        self.slab
            .validate_all(&mut self.mem, &mut self.pages)
            .unwrap()
    }
    fn shrink_all(&mut self) {
        self.slab
            .shrink_all(&mut self.mem, &mut self.pages)
            .unwrap();
    }
    /// Allocator state (error counters excluded: misuse of debug caches is reported).
    /// Caches, totals, blocks out and the `struct Page` of every page in use (a
    /// free page's fields beyond its state are the page provider's).
    #[allow(clippy::type_complexity)]
    fn snapshot(
        &self,
    ) -> (
        Vec<CacheInfo>,
        SlabTotals,
        BTreeMap<u32, u32>,
        Vec<Result<Page, PageState>>,
    ) {
        (
            self.slab
                .caches()
                .map(|mut i| {
                    i.errors = 0;
                    i
                })
                .collect(),
            self.slab.totals(),
            self.pages.blocks.clone(),
            self.pages
                .map
                .iter()
                .zip(&self.pages.used)
                .map(|(p, &u)| if u { Ok(*p) } else { Err(p.state()) })
                .collect(),
        )
    }
    fn info(&self, c: CacheId) -> CacheInfo {
        self.slab.cache_info(c).unwrap()
    }
}

fn class_of(size: usize) -> usize {
    size.max(32).next_power_of_two()
}

// ----------------------------------------------------------------------------
// kmalloc basics
// ----------------------------------------------------------------------------

#[test]
fn kmalloc_size_classes_and_alignment() {
    let mut e = Env::new(16384);
    for size in [
        1usize,
        17,
        31,
        32,
        33,
        80,
        100,
        128,
        500,
        1000,
        4096,
        4097,
        65536,
        300_000,
        1 << 20,
    ] {
        for _ in 0..3 {
            let v = e.kmalloc(size, Gfp::KERNEL).unwrap();
            let class = class_of(size);
            assert_eq!(v % class as u64, 0, "size {size} not {class}-aligned");
            assert_eq!(e.phys(v) % class as u64, 0);
            assert_eq!(e.slab.ksize(&e.mem, &e.pages, v).unwrap(), class);
            assert!(
                e.phys(v) >= (DMA_PAGES as u64) << 12,
                "normal kmalloc from DMA"
            );
            e.kfree(v).unwrap();
        }
    }
    // 80 B -> a 128 B object aligned to 128 (the DragonOS example).
    let a = e.kmalloc(80, Gfp::KERNEL).unwrap();
    let b = e.kmalloc(80, Gfp::KERNEL).unwrap();
    assert_eq!(a % 128, 0);
    assert_eq!(a.abs_diff(b), 128);
    e.kfree(a).unwrap();
    e.kfree(b).unwrap();
    for bad in [0usize, (1 << 20) + 1, usize::MAX] {
        assert!(matches!(
            e.kmalloc(bad, Gfp::KERNEL),
            Err(MmError::BadSize { .. })
        ));
    }
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

#[test]
fn kmalloc_dma_comes_from_zone_dma() {
    let mut e = Env::new(16384);
    let mut v = Vec::new();
    for size in [32usize, 80, 4096, 1 << 20] {
        let x = e.kmalloc(size, Gfp::DMA).unwrap();
        assert!(e.phys(x) < 16 << 20, "GFP_DMA object above 16 MiB");
        assert_eq!(x % class_of(size) as u64, 0);
        let id = e.slab.kmalloc_cache(size, true).unwrap();
        assert!(e.info(id).name.as_str().starts_with("dma-kmalloc-"));
        assert_eq!(e.info(id).active_objs, 1);
        v.push(x);
    }
    for x in v {
        e.kfree(x).unwrap();
    }
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

#[test]
fn kzalloc_and_gfp_zero_zero_the_object() {
    let mut e = Env::new(8192);
    for size in [32usize, 80, 4000, 70000] {
        let class = class_of(size);
        let a = e.kmalloc(size, Gfp::KERNEL).unwrap();
        e.write(a, &vec![0x77; class]);
        e.kfree(a).unwrap();
        let b = e
            .slab
            .kzalloc(&mut e.mem, &mut e.pages, size, Gfp::KERNEL)
            .unwrap();
        assert!(
            e.read(b, class).iter().all(|&x| x == 0),
            "kzalloc({size}) not zeroed"
        );
        e.write(b, &vec![0x55; class]);
        e.kfree(b).unwrap();
        let c = e.kmalloc(size, Gfp::KERNEL | Gfp::ZERO).unwrap();
        assert!(e.read(c, class).iter().all(|&x| x == 0));
        e.kfree(c).unwrap();
    }
}

#[test]
fn kfree_null_is_noop_and_misuse_changes_nothing() {
    let mut e = Env::new(8192);
    assert_eq!(e.kfree(0), Ok(()));
    // Fill two slabs of kmalloc-64, start a third, free some to get a partial slab.
    let objs: Vec<u64> = (0..140)
        .map(|_| e.kmalloc(64, Gfp::KERNEL).unwrap())
        .collect();
    let freed_active = objs[139];
    let freed_partial = objs[3];
    e.kfree(freed_active).unwrap();
    e.kfree(freed_partial).unwrap();
    e.kfree(objs[5]).unwrap();
    let c = e.create("thing", 100, 0, SlabFlags::NONE);
    let cobj = e.calloc(c).unwrap();
    e.pages.map[5000].set_state(PageState::Allocated);
    let mem_before = e.mem.bytes.clone();
    let snap = e.snapshot();
    let cases: Vec<(u64, MmError)> = vec![
        (12345, MmError::InvalidFree(12345)),
        (
            DIRECT_MAP + (5000 << 12),
            MmError::InvalidFree(DIRECT_MAP + (5000 << 12)),
        ),
        (
            DIRECT_MAP + (6000 << 12),
            MmError::InvalidFree(DIRECT_MAP + (6000 << 12)),
        ),
        (
            DIRECT_MAP + (1 << 40),
            MmError::InvalidFree(DIRECT_MAP + (1 << 40)),
        ),
        (objs[0] + 8, MmError::InvalidFree(objs[0] + 8)),
        (objs[0] + 63, MmError::InvalidFree(objs[0] + 63)),
        (freed_active, MmError::ObjectDoubleFree(freed_active)),
        (freed_partial, MmError::ObjectDoubleFree(freed_partial)),
        (objs[5], MmError::ObjectDoubleFree(objs[5])),
        (cobj, MmError::WrongCache(cobj)),
    ];
    for (v, want) in cases {
        assert_eq!(e.kfree(v), Err(want), "kfree({v:#x})");
        assert_eq!(e.mem.bytes, mem_before, "kfree({v:#x}) changed memory");
        assert!(
            e.snapshot() == snap,
            "kfree({v:#x}) changed allocator state"
        );
    }
    // kmem_cache_free misuse.
    let k = e.slab.kmalloc_cache(64, false).unwrap();
    assert_eq!(e.cfree(c, objs[0]), Err(MmError::WrongCache(objs[0])));
    assert_eq!(e.cfree(k, cobj), Err(MmError::WrongCache(cobj)));
    assert_eq!(e.cfree(c, cobj + 4), Err(MmError::InvalidFree(cobj + 4)));
    assert_eq!(e.cfree(c, 0), Ok(()));
    assert_eq!(e.mem.bytes, mem_before);
    assert!(e.snapshot() == snap);
    assert_eq!(e.validate_all(), 0);
}

#[test]
fn double_free_detected_in_magazine_and_in_slabs() {
    let mut e = Env::new(8192);
    // kmalloc-4k: 8 objects per slab: objs[0..8] slab A, [8..16] B, [16..20] C.
    let objs: Vec<u64> = (0..20)
        .map(|_| e.kmalloc(4096, Gfp::KERNEL).unwrap())
        .collect();
    let k4 = e.slab.kmalloc_cache(4096, false).unwrap();
    // Freed objects sit in the magazine: a second free is refused there...
    for &i in &[0usize, 9, 17] {
        e.kfree(objs[i]).unwrap();
        assert_eq!(e.kfree(objs[i]), Err(MmError::ObjectDoubleFree(objs[i])));
    }
    // ... and after shrinking has put them back into their slabs.
    e.slab
        .kmem_cache_shrink(&mut e.mem, &mut e.pages, k4)
        .unwrap();
    assert_eq!(e.info(k4).partial_slabs, 3);
    for &i in &[0usize, 9, 17] {
        assert_eq!(e.kfree(objs[i]), Err(MmError::ObjectDoubleFree(objs[i])));
    }
    // Free the rest of slab B: it goes back to the provider once its objects have
    // left the magazine (shrinking empties it, and gives back the spare slab).
    let before = e.pages.outstanding();
    for (i, &v) in objs.iter().enumerate().take(16).skip(8) {
        if i != 9 {
            e.kfree(v).unwrap();
        }
    }
    assert_eq!(e.pages.outstanding(), before, "held by the magazine");
    e.slab
        .kmem_cache_shrink(&mut e.mem, &mut e.pages, k4)
        .unwrap();
    assert_eq!(e.pages.outstanding(), before - 1);
    // Its objects are no longer slab objects at all.
    assert_eq!(e.kfree(objs[8]), Err(MmError::InvalidFree(objs[8])));
    for (i, &v) in objs.iter().enumerate() {
        if i < 8 && i != 0 || i >= 16 && i != 17 {
            e.kfree(v).unwrap();
        }
    }
    assert_eq!(e.slab.totals().objects, 0);
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
    // kmalloc-64: 128 objects per 2-page slab, no slot reserved for metadata.
    let objs: Vec<u64> = (0..130)
        .map(|_| e.kmalloc(64, Gfp::KERNEL).unwrap())
        .collect();
    assert_eq!(
        e.info(e.slab.kmalloc_cache(64, false).unwrap())
            .objs_per_slab,
        128
    );
    for &i in &[0usize, 1, 70, 129] {
        e.kfree(objs[i]).unwrap();
        assert_eq!(e.kfree(objs[i]), Err(MmError::ObjectDoubleFree(objs[i])));
    }
    // A 32-aligned pointer into the middle of an object is not an object.
    let mid = objs[5] + 32;
    assert_eq!(e.kfree(mid), Err(MmError::InvalidFree(mid)));
    for (i, &v) in objs.iter().enumerate() {
        if ![0usize, 1, 70, 129].contains(&i) {
            e.kfree(v).unwrap();
        }
    }
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

#[test]
fn magazine_objects_are_exact() {
    let mut e = Env::new(8192);
    // The object just allocated, freed twice.
    let p = e.kmalloc(100, Gfp::KERNEL).unwrap();
    e.kfree(p).unwrap();
    assert_eq!(e.kfree(p), Err(MmError::ObjectDoubleFree(p)));
    assert!(e.slab.ksize(&e.mem, &e.pages, p).is_err());
    // An object freed to the wrong cache: refused, then freed properly.
    let c = e.create("other", 128, 0, SlabFlags::NONE);
    let q = e.kmalloc(128, Gfp::KERNEL).unwrap();
    assert_eq!(e.cfree(c, q), Err(MmError::WrongCache(q)));
    let k = e.slab.kmalloc_cache(128, false).unwrap();
    e.cfree(k, q).unwrap();
    assert_eq!(e.kfree(q), Err(MmError::ObjectDoubleFree(q)));
    // A cache object that was just allocated is not a kmalloc object.
    let r = e.calloc(c).unwrap();
    assert_eq!(e.kfree(r), Err(MmError::WrongCache(r)));
    assert_eq!(e.slab.ksize(&e.mem, &e.pages, r), Ok(128));
    e.cfree(c, r).unwrap();
    // Two objects of one slab (slots 0 and 16 of a kmalloc-128 slab) in the
    // magazine: both known to be free.
    let objs: Vec<u64> = (0..32)
        .map(|_| e.kmalloc(128, Gfp::KERNEL).unwrap())
        .collect();
    let base = objs.iter().copied().min().unwrap();
    let (a, b) = (base, base + 16 * 128);
    assert!(objs.contains(&b));
    e.kfree(a).unwrap();
    e.kfree(b).unwrap();
    for v in [a, b] {
        assert_eq!(e.kfree(v), Err(MmError::ObjectDoubleFree(v)));
        assert!(!e.slab.object_info(&e.mem, &e.pages, v).unwrap().allocated);
    }
    let info = e.info(k);
    assert_eq!(info.active_objs, 30);
    for &v in objs.iter().filter(|&&v| v != a && v != b) {
        e.kfree(v).unwrap();
    }
    assert_eq!(e.validate_all(), 0);
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

#[test]
fn out_of_memory_is_an_error_and_changes_nothing() {
    let mut e = Env::new(8192);
    e.pages.budget = Some(1);
    let a = e.kmalloc(4096, Gfp::KERNEL).unwrap();
    let objs: Vec<u64> = (0..7)
        .map(|_| e.kmalloc(4096, Gfp::KERNEL).unwrap())
        .collect();
    let snap = e.snapshot();
    assert_eq!(e.kmalloc(4096, Gfp::KERNEL), Err(MmError::OutOfMemory));
    assert_eq!(e.kmalloc(32, Gfp::KERNEL), Err(MmError::OutOfMemory));
    assert!(e.snapshot() == snap);
    e.pages.budget = None;
    let b = e.kmalloc(4096, Gfp::KERNEL).unwrap();
    for v in objs.into_iter().chain([a, b]) {
        e.kfree(v).unwrap();
    }
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
    // A machine too small for a 1 MiB slab.
    let mut small = Env::new(200);
    assert_eq!(
        small.kmalloc(1 << 20, Gfp::KERNEL),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(small.slab.totals(), SlabTotals::default());
}

/// Issue #9: a slab at physical address 0 (a provider that hands out PFN 0) works
/// like any other: the free-slot search must not take address 0 for "none", in
/// caches without magazine (big classes, debug caches) as in the others.
#[test]
fn a_slab_at_physical_address_zero_works_and_goes_back() {
    for debug in [false, true] {
        let mut e = if debug { debug_env() } else { Env::new(8192) };
        e.pages.used[0] = false; // this provider hands out PFN 0 first
        let (boot, ..) = e.snapshot();
        let sizes: &[usize] = if debug {
            &[32, 4096, 92260, 256 << 10, 512 << 10]
        } else {
            &[32, 128 << 10, 256 << 10, 512 << 10]
        };
        for &size in sizes {
            for _ in 0..2 {
                let v = e
                    .kmalloc(size, Gfp::DMA)
                    .unwrap_or_else(|err| panic!("kmalloc({size}, GFP_DMA): {err}"));
                assert_eq!(e.phys(v), 0, "kmalloc({size}): the first slab is at PFN 0");
                e.kfree(v).unwrap();
                e.shrink_all();
                assert_eq!(e.pages.outstanding(), 0, "kmalloc({size}) leaked its slab");
            }
        }
        assert_eq!(e.validate_all(), 0);
        assert!(
            e.snapshot().0 == boot,
            "debug={debug}: caches differ from boot"
        );
    }
}

#[test]
fn kfree_finds_owner_through_tail_pages() {
    let mut e = Env::new(16384);
    // kmalloc-8k: order 3 slab holding 4 objects; objects 1..3 are in tail pages.
    let objs: Vec<u64> = (0..4)
        .map(|_| e.kmalloc(8000, Gfp::KERNEL).unwrap())
        .collect();
    let head = Pfn::containing(e.phys(objs[0]));
    assert_eq!(e.pages.page(head).unwrap().state(), PageState::Slab);
    for &v in &objs[1..] {
        let pg = e.pages.page(Pfn::containing(e.phys(v))).unwrap();
        assert_eq!(pg.state(), PageState::Tail);
        assert_eq!(pg.next, head.0);
        assert_ne!(pg.slab_cache, 0);
    }
    // An interior pointer in a tail page is refused.
    assert_eq!(
        e.kfree(objs[1] + 4096),
        Err(MmError::InvalidFree(objs[1] + 4096))
    );
    for v in objs {
        e.kfree(v).unwrap();
    }
    // The refill made two slabs (64 KiB): the other one's objects are still in
    // the magazine; this one is empty and kept as the spare.
    assert_eq!(e.pages.outstanding(), 2, "one empty slab kept as reserve");
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
    // Big classes (slabs above 32 KiB) have no magazine and keep no empty slab.
    for size in [40_000usize, 65536, 300_000, 1 << 20] {
        let v = e.kmalloc(size, Gfp::KERNEL).unwrap();
        assert_eq!(e.pages.outstanding(), 1);
        e.kfree(v).unwrap();
        assert_eq!(e.pages.outstanding(), 0, "kmalloc({size}) kept its slab");
    }
}

#[test]
fn empty_slabs_go_back_and_stats_follow() {
    let mut e = Env::new(16384);
    let k = e.slab.kmalloc_cache(128, false).unwrap();
    let objs: Vec<u64> = (0..1000)
        .map(|_| e.kmalloc(100, Gfp::KERNEL).unwrap())
        .collect();
    let i = e.info(k);
    assert_eq!(i.active_objs, 1000);
    assert_eq!(i.objs_per_slab, 128);
    assert_eq!(i.pages_per_slab, 4);
    assert_eq!(i.num_slabs, 8); // ceil(1000 / 128)
    assert_eq!(i.num_objs, 8 * 128);
    let t = e.slab.totals();
    assert_eq!(t.cache_used, 1000 * 128);
    assert_eq!(t.cache_free, 24 * 128);
    assert_eq!(t.slab_bytes, 8 * 4 * 4096);
    for v in objs.iter().step_by(2) {
        e.kfree(*v).unwrap();
    }
    assert_eq!(e.info(k).active_objs, 500);
    assert_eq!(e.slab.totals().cache_used, 500 * 128);
    for v in objs.iter().skip(1).step_by(2) {
        e.kfree(*v).unwrap();
    }
    let i = e.info(k);
    assert_eq!(i.active_objs, 0);
    // The magazine (256) keeps the last freed: it started with slab 7's 24
    // objects never handed out, and four flushes of the oldest 192 leave it
    // holding the odd objects from 489 on (slabs 3..=7), plus one spare slab;
    // the rest went back.
    assert_eq!(mm::slab::MAG, 256);
    assert_eq!(i.num_slabs, 6, "{} slabs kept", i.num_slabs);
    e.shrink_all();
    assert_eq!(e.slab.totals(), SlabTotals::default());
    assert_eq!(e.pages.outstanding(), 0);
    let mut s = String::new();
    e.slab.write_slabinfo(&mut s).unwrap();
    assert!(s.starts_with("slabinfo - version: 2.1\n# name"));
    assert!(s.contains("\nkmalloc-128            0      0    128  128    4 : tunables    0    0    0 : slabdata      0      0      0\n"), "{s}");
    assert!(s.contains("\ndma-kmalloc-1M "));
}

// ----------------------------------------------------------------------------
// kmem_cache
// ----------------------------------------------------------------------------

fn ctor_fill(mem: &mut dyn PhysMem, virt: u64, phys: u64, size: usize) {
    mem.fill(phys, size, 0xc7);
    mem.write_u64(phys, virt); // e.g. a list head pointing to itself
}

#[test]
fn kmem_cache_lifecycle() {
    let mut e = Env::new(8192);
    let c = e.create("inode_cache", 200, 0, SlabFlags::HWCACHE_ALIGN);
    assert_eq!(e.slab.find("inode_cache"), Some(c));
    assert_eq!(e.slab.find("nope"), None);
    let i = e.info(c);
    assert_eq!((i.obj_size, i.align, i.stride), (200, 64, 256));
    let a = e.calloc(c).unwrap();
    let b = e.calloc(c).unwrap();
    assert_eq!(a % 64, 0);
    assert_eq!(b % 64, 0);
    assert_eq!(
        e.slab.kmem_cache_destroy(&mut e.mem, &mut e.pages, c),
        Err(MmError::CacheBusy { live: 2 })
    );
    e.cfree(c, a).unwrap();
    assert_eq!(e.cfree(c, a), Err(MmError::ObjectDoubleFree(a)));
    e.cfree(c, b).unwrap();
    e.slab
        .kmem_cache_destroy(&mut e.mem, &mut e.pages, c)
        .unwrap();
    assert_eq!(e.pages.outstanding(), 0);
    // The stale handle is refused even after the number is reused.
    let c2 = e.create("other", 64, 0, SlabFlags::NONE);
    assert_eq!(c2.index(), c.index());
    assert_eq!(e.calloc(c), Err(MmError::NotFound));
    assert_eq!(e.cfree(c, 0), Err(MmError::NotFound));
    assert!(e.slab.cache_info(c).is_err());
    // Alignment and DMA.
    let d = e.create("dma_bufs", 500, 512, SlabFlags::CACHE_DMA);
    let x = e.calloc(d).unwrap();
    assert_eq!(x % 512, 0);
    assert!(e.phys(x) < 16 << 20);
    e.cfree(d, x).unwrap();
    // kmalloc caches cannot be destroyed.
    let k = e.slab.kmalloc_cache(32, false).unwrap();
    assert!(matches!(
        e.slab.kmem_cache_destroy(&mut e.mem, &mut e.pages, k),
        Err(MmError::Invalid(_))
    ));
}

#[test]
fn kmem_cache_create_errors_and_slab_panic() {
    let mut e = Env::new(1024);
    let mk =
        |s: &mut Slab, name: &str, size, align, f| s.kmem_cache_create(name, size, align, f, None);
    e.create("dup", 32, 0, SlabFlags::NONE);
    let err = mk(&mut e.slab, "dup", 32, 0, SlabFlags::NONE).unwrap_err();
    assert_eq!((err.error, err.would_panic), (MmError::Exists, false));
    let err = mk(&mut e.slab, "dup", 32, 0, SlabFlags::PANIC).unwrap_err();
    assert_eq!((err.error, err.would_panic), (MmError::Exists, true));
    assert!(err.to_string().contains("would panic"));
    let e2: MmError = err.into();
    assert_eq!(e2, MmError::Exists);
    assert!(matches!(
        mk(&mut e.slab, "z", 0, 0, SlabFlags::NONE)
            .unwrap_err()
            .error,
        MmError::BadSize { .. }
    ));
    assert!(matches!(
        mk(&mut e.slab, "z", (1 << 20) + 1, 0, SlabFlags::NONE)
            .unwrap_err()
            .error,
        MmError::BadSize { .. }
    ));
    assert_eq!(
        mk(&mut e.slab, "z", 10, 3, SlabFlags::NONE)
            .unwrap_err()
            .error,
        MmError::BadAlign(3)
    );
    assert_eq!(
        mk(&mut e.slab, "z", 10, 2 << 20, SlabFlags::NONE)
            .unwrap_err()
            .error,
        MmError::BadAlign(2 << 20)
    );
    assert!(matches!(
        mk(&mut e.slab, "", 10, 0, SlabFlags::NONE)
            .unwrap_err()
            .error,
        MmError::Invalid(_)
    ));
    assert!(matches!(
        mk(&mut e.slab, "a b", 10, 0, SlabFlags::NONE)
            .unwrap_err()
            .error,
        MmError::Invalid(_)
    ));
    assert!(matches!(
        mk(&mut e.slab, &"x".repeat(32), 10, 0, SlabFlags::NONE)
            .unwrap_err()
            .error,
        MmError::Invalid(_)
    ));
    assert!(matches!(
        mk(&mut e.slab, "z", 10, 0, SlabFlags(1)).unwrap_err().error,
        MmError::Invalid(_)
    ));
    // Fill the table.
    let mut n = 0;
    loop {
        match mk(&mut e.slab, &format!("c{n}"), 40, 0, SlabFlags::PANIC) {
            Ok(_) => n += 1,
            Err(err) => {
                assert_eq!(err.error, MmError::TooMany);
                assert!(err.would_panic);
                break;
            }
        }
    }
    assert_eq!(n + 1 + 32, mm::slab::MAX_CACHES); // "dup" + 32 kmalloc caches
}

#[test]
fn constructor_runs_once_per_object_and_state_survives_free() {
    let mut e = Env::new(8192);
    let c = e
        .slab
        .kmem_cache_create("ctor_cache", 48, 0, SlabFlags::NONE, Some(ctor_fill))
        .unwrap();
    let objs: Vec<u64> = (0..100).map(|_| e.calloc(c).unwrap()).collect();
    for &v in &objs {
        let b = e.read(v, 48);
        assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), v);
        assert!(b[8..].iter().all(|&x| x == 0xc7));
    }
    for &v in &objs {
        e.cfree(c, v).unwrap();
    }
    // Freed objects keep their constructed state (the free bitmap is out of line).
    let again: Vec<u64> = (0..100).map(|_| e.calloc(c).unwrap()).collect();
    for &v in &again {
        let b = e.read(v, 48);
        assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), v);
        assert!(b[8..].iter().all(|&x| x == 0xc7));
    }
    assert!(matches!(
        e.slab
            .kmem_cache_alloc(&mut e.mem, &mut e.pages, c, Gfp::ZERO),
        Err(MmError::Invalid(_))
    ));
    for v in again {
        e.cfree(c, v).unwrap();
    }
    e.slab
        .kmem_cache_destroy(&mut e.mem, &mut e.pages, c)
        .unwrap();
    assert_eq!(e.pages.outstanding(), 0);
}

// ----------------------------------------------------------------------------
// Property test against a model
// ----------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        dma: bool,
        zero: bool,
    },
    CacheAlloc {
        which: usize,
    },
    Free {
        pick: usize,
    },
    FreeInterior {
        pick: usize,
        off: u64,
    },
    FreeStale {
        pick: usize,
    },
    FreeForeign {
        addr: u64,
    },
    Burst {
        size: usize,
        n: usize,
    },
    FreeMany {
        pick: usize,
        n: usize,
    },
    /// `kmem_cache_alloc_bulk` of `n` objects of target cache `which`
    /// (`BATCH_TARGETS`); `budget`: page allocations allowed (out of memory).
    BulkAlloc {
        which: usize,
        n: usize,
        zero: bool,
        budget: Option<usize>,
    },
    /// `kmem_cache_free_bulk` of up to `n` live objects of target cache `which`,
    /// in order `order`, with misuse `bad` (kind, position) put in.
    BulkFree {
        which: usize,
        n: usize,
        order: u8,
        pick: usize,
        bad: Option<(u8, usize)>,
    },
    /// Frees up to `n` live objects, one call each, in order `order`.
    FreeOrdered {
        n: usize,
        order: u8,
        pick: usize,
    },
    Validate,
    Shrink,
}

/// The caches batch operations work on: the model's three `kmem_cache`s (0..=2),
/// then kmalloc-32, kmalloc-64, kmalloc-1k, kmalloc-4k (by request size).
const BATCH_TARGETS: usize = 7;
const BATCH_KMALLOC: [usize; 4] = [32, 64, 1024, 4096];

fn op_batch() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..BATCH_TARGETS, 1usize..700, any::<bool>(), prop::option::weighted(0.1, 0usize..6))
            .prop_map(|(which, n, zero, budget)| Op::BulkAlloc { which, n, zero: zero && n % 5 == 0, budget }),
        3 => (0..BATCH_TARGETS, 1usize..700, 0u8..4, any::<usize>(),
              prop::option::weighted(0.3, (0u8..5, any::<usize>())))
            .prop_map(|(which, n, order, pick, bad)| Op::BulkFree { which, n, order, pick, bad }),
        2 => (1usize..600, 0u8..4, any::<usize>()).prop_map(|(n, order, pick)| Op::FreeOrdered { n, order, pick }),
        2 => (0usize..8, 100usize..600).prop_map(|(lg, n)| Op::Burst { size: 32 << lg, n }),
        2 => (0usize..14, any::<bool>(), any::<bool>(), 0usize..100).prop_map(|(lg, dma, zero, jitter)| {
            let hi = 32usize << lg.min(13);
            let size = (hi / 2 + jitter * hi / 200).clamp(1, hi);
            Op::Alloc { size, dma: dma && lg < 5, zero }
        }),
        1 => (0usize..3).prop_map(|which| Op::CacheAlloc { which }),
        2 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => any::<usize>().prop_map(|pick| Op::FreeStale { pick }),
        1 => Just(Op::Validate),
        1 => Just(Op::Shrink),
    ]
}

/// `n` of `keys` in one of four orders: ascending, descending, a stride through
/// them, a pseudo-random shuffle (`pick` seeds the last two).
fn ordered(mut keys: Vec<u64>, n: usize, order: u8, pick: usize) -> Vec<u64> {
    let len = keys.len();
    if len == 0 {
        return keys;
    }
    match order {
        0 => {}
        1 => keys.reverse(),
        2 => {
            let step = [7919usize, 257, 31, 3][pick % 4];
            let mut seen = vec![false; len];
            let mut out = Vec::with_capacity(len);
            let mut i = pick % len;
            for _ in 0..len {
                while seen[i] {
                    i = (i + 1) % len;
                }
                seen[i] = true;
                out.push(keys[i]);
                i = (i + step) % len;
            }
            keys = out;
        }
        _ => {
            let mut r = pick as u64 | 1;
            for i in (1..len).rev() {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                keys.swap(i, (r % (i as u64 + 1)) as usize);
            }
        }
    }
    keys.truncate(n);
    keys
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..14, any::<bool>(), any::<bool>(), 0usize..100).prop_map(|(lg, dma, zero, jitter)| {
            let hi = 32usize << lg.min(13);
            let size = (hi / 2 + jitter * hi / 200).clamp(1, hi);
            Op::Alloc { size, dma: dma && lg < 5, zero }
        }),
        2 => (0usize..3).prop_map(|which| Op::CacheAlloc { which }),
        1 => (0usize..4, 20usize..140).prop_map(|(lg, n)| Op::Burst { size: 32 << lg, n }),
        1 => (any::<usize>(), 10usize..100).prop_map(|(pick, n)| Op::FreeMany { pick, n }),
        6 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => (any::<usize>(), 1u64..32).prop_map(|(pick, off)| Op::FreeInterior { pick, off }),
        1 => any::<usize>().prop_map(|pick| Op::FreeStale { pick }),
        2 => any::<u64>().prop_map(|r| {
            // Half inside the direct map (sometimes 32-aligned, like an object start).
            let addr = if r & 1 == 0 {
                r
            } else {
                let a = DIRECT_MAP + (r >> 2) % (8192 * 4096);
                if r & 2 == 0 { a & !31 } else { a }
            };
            Op::FreeForeign { addr }
        }),
        1 => Just(Op::Validate),
        1 => Just(Op::Shrink),
    ]
}

struct Live {
    size: usize,
    cache: Option<CacheId>,
    fill: u8,
    /// The cache the object belongs to (for kmalloc objects: their kmalloc cache).
    kc: CacheId,
}

/// The cache and object size of batch target `which` (`BATCH_TARGETS`).
fn batch_target(
    e: &Env,
    caches: &[CacheId; 3],
    sizes: &[usize; 3],
    which: usize,
) -> (CacheId, usize) {
    if which < 3 {
        (caches[which], sizes[which])
    } else {
        let size = BATCH_KMALLOC[which - 3];
        (e.slab.kmalloc_cache(size, false).unwrap(), size)
    }
}

/// Statistics agree with the model and with the page provider: objects in use
/// per cache, slabs (every page the provider lent is in a slab), bytes.
fn check_stats(e: &Env, live: &BTreeMap<u64, Live>) {
    let mut per: BTreeMap<u8, u64> = BTreeMap::new();
    for l in live.values() {
        *per.entry(l.kc.index()).or_default() += 1;
    }
    let mut slab_pages = 0u64;
    let mut slabs = 0u64;
    for i in e.slab.caches() {
        let want = per.get(&i.id.index()).copied().unwrap_or(0);
        assert_eq!(i.active_objs, want, "objects in use of {:?}", i.name);
        assert_eq!(i.num_objs, i.num_slabs * i.objs_per_slab as u64);
        assert!(i.active_slabs <= i.num_slabs && i.partial_slabs <= i.num_slabs);
        slab_pages += i.num_slabs * i.pages_per_slab as u64;
        slabs += i.num_slabs;
    }
    let lent: u64 = e.pages.blocks.values().map(|&o| 1u64 << o).sum();
    assert_eq!(slab_pages, lent, "pages in slabs vs pages lent");
    let t = e.slab.totals();
    assert_eq!(t.slabs, slabs);
    assert_eq!(t.slab_bytes, lent * PAGE_SIZE as u64);
    assert_eq!(t.cache_free, t.slab_bytes - t.cache_used);
}

fn run_model(ops: Vec<Op>, debug: bool) {
    let mut e = Env::new(8192);
    if debug {
        e.slab
            .slub_debug(&mut e.mem, &mut e.pages, "slub_debug=FZPU")
            .unwrap();
    }
    let caches = [
        e.create("pt_a", 24, 0, SlabFlags::NONE),
        e.create("pt_b", 200, 64, SlabFlags::HWCACHE_ALIGN),
        e.create("pt_c", 3000, 8, SlabFlags::NONE),
    ];
    let sizes = [24usize, 200, 3000];
    let mut live: BTreeMap<u64, Live> = BTreeMap::new();
    let mut freed: Vec<u64> = Vec::new();
    let mut seq = 0u8;
    let check_no_overlap = |live: &BTreeMap<u64, Live>, v: u64, len: u64| {
        if let Some((&a, l)) = live.range(..v).next_back() {
            assert!(
                a + l.size as u64 <= v,
                "overlap {a:#x}+{} with {v:#x}",
                l.size
            );
        }
        if let Some((&b, _)) = live.range(v..).next() {
            assert!(v + len <= b, "overlap {v:#x}+{len} with {b:#x}");
        }
    };
    for op in ops {
        match op {
            Op::Alloc { size, dma, zero } => {
                let gfp = if dma { Gfp::DMA } else { Gfp::KERNEL }
                    | if zero { Gfp::ZERO } else { Gfp::KERNEL };
                let Ok(v) = e.kmalloc(size, gfp) else {
                    continue;
                };
                let class = class_of(size);
                assert_eq!(v % class as u64, 0);
                if dma {
                    assert!(e.phys(v) < 16 << 20);
                }
                if zero {
                    assert!(e.read(v, size).iter().all(|&b| b == 0));
                }
                check_no_overlap(&live, v, class as u64);
                seq = seq.wrapping_add(1);
                e.write(v, &vec![seq; size]);
                let kc = e.slab.kmalloc_cache(size, dma).unwrap();
                live.insert(
                    v,
                    Live {
                        size,
                        cache: None,
                        fill: seq,
                        kc,
                    },
                );
            }
            Op::CacheAlloc { which } => {
                let Ok(v) = e.calloc(caches[which]) else {
                    continue;
                };
                let size = sizes[which];
                check_no_overlap(&live, v, size as u64);
                seq = seq.wrapping_add(1);
                e.write(v, &vec![seq; size]);
                live.insert(
                    v,
                    Live {
                        size,
                        cache: Some(caches[which]),
                        fill: seq,
                        kc: caches[which],
                    },
                );
            }
            Op::Free { pick } => {
                if live.is_empty() {
                    continue;
                }
                let v = *live.keys().nth(pick % live.len()).unwrap();
                let l = live.remove(&v).unwrap();
                assert!(
                    e.read(v, l.size).iter().all(|&b| b == l.fill),
                    "object {v:#x} corrupted"
                );
                match l.cache {
                    None => e.kfree(v).unwrap(),
                    Some(c) => e.cfree(c, v).unwrap(),
                }
                freed.push(v);
            }
            Op::FreeInterior { pick, off } => {
                if live.is_empty() {
                    continue;
                }
                let v = *live.keys().nth(pick % live.len()).unwrap();
                let snap = e.snapshot();
                assert_eq!(e.kfree(v + off), Err(MmError::InvalidFree(v + off)));
                assert!(e.snapshot() == snap);
            }
            Op::FreeStale { pick } => {
                let cands: Vec<u64> = freed
                    .iter()
                    .copied()
                    .filter(|v| !live.contains_key(v))
                    .collect();
                if cands.is_empty() {
                    continue;
                }
                let v = cands[pick % cands.len()];
                let snap = e.snapshot();
                let r = e.kfree(v);
                assert!(
                    matches!(
                        r,
                        Err(MmError::ObjectDoubleFree(_)
                            | MmError::InvalidFree(_)
                            | MmError::WrongCache(_))
                    ),
                    "stale free of {v:#x}: {r:?}"
                );
                assert!(e.snapshot() == snap);
            }
            Op::FreeForeign { addr } => {
                // Anything that is not a live object start.
                let covered = live
                    .range(..=addr)
                    .next_back()
                    .is_some_and(|(&a, _)| a == addr);
                if covered || addr == 0 {
                    continue;
                }
                let snap = e.snapshot();
                assert!(e.kfree(addr).is_err());
                assert!(e.snapshot() == snap);
            }
            Op::Burst { size, n } => {
                for _ in 0..n {
                    let Ok(v) = e.kmalloc(size, Gfp::KERNEL) else {
                        break;
                    };
                    assert_eq!(v % size as u64, 0);
                    check_no_overlap(&live, v, size as u64);
                    seq = seq.wrapping_add(1);
                    e.write(v, &vec![seq; size]);
                    let kc = e.slab.kmalloc_cache(size, false).unwrap();
                    live.insert(
                        v,
                        Live {
                            size,
                            cache: None,
                            fill: seq,
                            kc,
                        },
                    );
                }
            }
            Op::FreeMany { pick, n } => {
                for k in 0..n {
                    if live.is_empty() {
                        break;
                    }
                    let v = *live.keys().nth((pick + k * 7919) % live.len()).unwrap();
                    let l = live.remove(&v).unwrap();
                    assert!(
                        e.read(v, l.size).iter().all(|&b| b == l.fill),
                        "object {v:#x} corrupted"
                    );
                    match l.cache {
                        None => e.kfree(v).unwrap(),
                        Some(c) => e.cfree(c, v).unwrap(),
                    }
                    freed.push(v);
                }
            }
            Op::BulkAlloc {
                which,
                n,
                zero,
                budget,
            } => {
                let (c, size) = batch_target(&e, &caches, &sizes, which);
                let gfp = if zero { Gfp::ZERO } else { Gfp::KERNEL };
                let mut out = vec![0u64; n];
                e.pages.budget = budget;
                let before = e.slab.totals().objects;
                let r = e
                    .slab
                    .kmem_cache_alloc_bulk(&mut e.mem, &mut e.pages, c, gfp, &mut out);
                e.pages.budget = None;
                match r {
                    Ok(got) => assert_eq!(got, n),
                    Err(err) => {
                        // All or nothing.
                        assert_eq!(err, MmError::OutOfMemory);
                        assert!(budget.is_some(), "bulk alloc failed without a budget");
                        assert_eq!(e.slab.totals().objects, before);
                        continue;
                    }
                }
                let class = if which < 3 { size } else { class_of(size) };
                let mut sorted = out.clone();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(sorted.len(), n, "bulk alloc handed out an object twice");
                for &v in &out {
                    if which >= 3 {
                        assert_eq!(v % class as u64, 0);
                    }
                    if zero {
                        assert!(e.read(v, size).iter().all(|&b| b == 0));
                    }
                    check_no_overlap(&live, v, size as u64);
                    assert_eq!(
                        e.slab.ksize(&e.mem, &e.pages, v),
                        Ok(e.info(c).obj_size as usize)
                    );
                    seq = seq.wrapping_add(1);
                    e.write(v, &vec![seq; size]);
                    let cache = if which < 3 { Some(c) } else { None };
                    live.insert(
                        v,
                        Live {
                            size,
                            cache,
                            fill: seq,
                            kc: c,
                        },
                    );
                }
            }
            Op::BulkFree {
                which,
                n,
                order,
                pick,
                bad,
            } => {
                let (c, _) = batch_target(&e, &caches, &sizes, which);
                let keys: Vec<u64> = live
                    .iter()
                    .filter(|(_, l)| l.kc == c)
                    .map(|(&v, _)| v)
                    .collect();
                let mut batch = ordered(keys, n, order, pick);
                // A misuse at position `at`: what it is, and the errors allowed.
                let mut bad_at = None;
                if let Some((kind, r)) = bad {
                    let at = r % (batch.len() + 1);
                    let other = live.iter().find(|(v, l)| l.kc != c && !batch.contains(v));
                    let outside = live.keys().find(|v| !batch.contains(v)).copied();
                    let stale = freed.iter().rev().find(|v| !live.contains_key(v)).copied();
                    let entry = match kind {
                        // An earlier entry again.
                        0 if at > 0 => Some(batch[r % at]),
                        // An interior pointer of a live object.
                        1 => outside.map(|v| v + 8),
                        // A live object of another cache.
                        2 => other.map(|(&v, _)| v),
                        // A freed object.
                        3 => stale,
                        // Not in the direct map.
                        _ => Some(0x1000 + ((r as u64 % 0x10_0000) & !31)),
                    };
                    if let Some(x) = entry {
                        batch.insert(at, x);
                        bad_at = Some((at, x));
                    }
                }
                for v in batch.iter().filter(|v| live.contains_key(v)) {
                    let l = &live[v];
                    assert!(e.read(*v, l.size).iter().all(|&b| b == l.fill));
                }
                let snap_objects = e.slab.totals().objects;
                let r = e
                    .slab
                    .kmem_cache_free_bulk(&mut e.mem, &mut e.pages, c, &batch);
                let done = match (r, bad_at) {
                    (Ok(()), None) => batch.len(),
                    (Err(err), Some((at, x))) => {
                        assert_eq!(err.done, at, "{err:?} for {x:#x} at {at}");
                        assert!(
                            matches!(
                                err.err,
                                MmError::ObjectDoubleFree(y) | MmError::InvalidFree(y) | MmError::WrongCache(y)
                                    if y == x
                            ),
                            "{err:?}"
                        );
                        at
                    }
                    (r, b) => panic!("bulk free {r:?} with misuse {b:?}"),
                };
                for &v in &batch[..done] {
                    live.remove(&v).unwrap();
                    freed.push(v);
                }
                assert_eq!(e.slab.totals().objects, snap_objects - done as u64);
                // The rest is untouched: still live, contents intact.
                for &v in batch[done..].iter().filter(|v| live.contains_key(v)) {
                    let l = &live[&v];
                    assert!(e.slab.ksize(&e.mem, &e.pages, v).is_ok());
                    assert!(e.read(v, l.size).iter().all(|&b| b == l.fill));
                }
            }
            Op::FreeOrdered { n, order, pick } => {
                let keys: Vec<u64> = live.keys().copied().collect();
                for v in ordered(keys, n, order, pick) {
                    let l = live.remove(&v).unwrap();
                    assert!(e.read(v, l.size).iter().all(|&b| b == l.fill));
                    match l.cache {
                        None => e.kfree(v).unwrap(),
                        Some(c) => e.cfree(c, v).unwrap(),
                    }
                    freed.push(v);
                }
            }
            Op::Validate => assert_eq!(e.validate_all(), 0),
            Op::Shrink => e.shrink_all(),
        }
        // Stats agree with the model.
        assert_eq!(e.slab.totals().objects, live.len() as u64);
        check_stats(&e, &live);
    }
    assert_eq!(e.validate_all(), 0);
    for (v, l) in std::mem::take(&mut live) {
        assert!(
            e.read(v, l.size).iter().all(|&b| b == l.fill),
            "object {v:#x} corrupted"
        );
        match l.cache {
            None => e.kfree(v).unwrap(),
            Some(c) => e.cfree(c, v).unwrap(),
        }
    }
    e.shrink_all();
    assert_eq!(e.slab.totals(), SlabTotals::default());
    assert_eq!(e.pages.outstanding(), 0, "slabs leaked");
    // Only the misuse the test did was reported (debug caches), no corruption.
    use mm::slab::debug::SlabErrorKind::*;
    assert!(e
        .slab
        .reports()
        .all(|r| matches!(r.kind, DoubleFree | WrongCache | InvalidFree)));
    if !debug {
        assert_eq!(e.slab.errors_total(), 0);
    }
    for c in caches {
        e.slab
            .kmem_cache_destroy(&mut e.mem, &mut e.pages, c)
            .unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn model_fast(ops in proptest::collection::vec(op(), 1..400)) {
        run_model(ops, false);
    }

    #[test]
    fn model_debug(ops in proptest::collection::vec(op(), 1..250)) {
        run_model(ops, true);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Batches of up to several hundred objects (single and bulk calls, freed in
    /// orders that span many slabs, misuse inside bulk frees) against the model.
    #[test]
    fn model_batches(ops in proptest::collection::vec(op_batch(), 1..60)) {
        run_model(ops, false);
    }

    #[test]
    fn model_batches_debug(ops in proptest::collection::vec(op_batch(), 1..30)) {
        run_model(ops, true);
    }
}

/// Long random run with many live objects, every size class, LIFO and random frees.
#[test]
fn random_stress_no_leak() {
    let mut e = Env::new(32768);
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<(u64, usize)> = Vec::new();
    for step in 0..200_000 {
        let r = next();
        if live.len() < 3000 && (r % 3 != 0 || live.is_empty()) {
            let size = (32usize << ((r >> 8) % 9)) - (r >> 20) as usize % 8;
            let v = e.kmalloc(size, Gfp::KERNEL).unwrap();
            assert_eq!(v % class_of(size) as u64, 0);
            e.write(v, &(step as u32).to_le_bytes());
            live.push((v, step));
        } else {
            let i = (r >> 32) as usize % live.len();
            let (v, s) = live.swap_remove(i);
            assert_eq!(e.read(v, 4), (s as u32).to_le_bytes());
            e.kfree(v).unwrap();
        }
    }
    assert_eq!(e.validate_all(), 0);
    for (v, _) in live {
        e.kfree(v).unwrap();
    }
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

// ----------------------------------------------------------------------------
// Debugging
// ----------------------------------------------------------------------------

fn debug_env() -> Env {
    let mut e = Env::new(16384);
    e.slab
        .slub_debug(&mut e.mem, &mut e.pages, "slub_debug=FZPU")
        .unwrap();
    e
}

#[test]
fn debug_kmalloc_keeps_size_alignment() {
    let mut e = debug_env();
    for k in 0..16 {
        let size = 32usize << k;
        let id = e.slab.kmalloc_cache(size, false).unwrap();
        let i = e.info(id);
        assert_eq!(i.debug, DebugFlags::ALL);
        assert_eq!(i.stride as usize % size, 0);
        let mut v = Vec::new();
        for _ in 0..3 {
            let x = e.kmalloc(size - 1, Gfp::KERNEL).unwrap();
            assert_eq!(x % size as u64, 0, "debug kmalloc-{size} misaligned");
            v.push(x);
        }
        for x in v {
            e.kfree(x).unwrap();
        }
    }
    assert_eq!(e.slab.errors_total(), 0);
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

#[test]
fn debug_poison_values_follow_linux() {
    let mut e = debug_env();
    let v = e.kmalloc(100, Gfp::KERNEL).unwrap();
    // Allocated: requested bytes 0x5a (POISON_INUSE), slack and red zone 0xcc.
    let b = e.read(v, 128 + 16);
    assert!(b[..100].iter().all(|&x| x == POISON_INUSE));
    assert!(b[100..144].iter().all(|&x| x == SLUB_RED_ACTIVE));
    e.kfree(v).unwrap();
    // Free: 0x6b ... 0xa5, red zone 0xbb.
    let b = e.read(v, 128 + 16);
    assert!(b[..127].iter().all(|&x| x == POISON_FREE));
    assert_eq!(b[127], POISON_END);
    assert!(b[128..144].iter().all(|&x| x == SLUB_RED_INACTIVE));
    assert_eq!(e.slab.errors_total(), 0);
}

#[test]
fn debug_detects_redzone_overwrite_on_free() {
    let mut e = debug_env();
    let v = e.kmalloc(64, Gfp::KERNEL).unwrap();
    e.write(v + 64, &[0x12]);
    assert_eq!(e.kfree(v), Ok(()));
    assert_eq!(e.slab.errors_total(), 1);
    let r = *e.slab.reports().last().unwrap();
    assert_eq!(r.kind, mm::slab::debug::SlabErrorKind::RedzoneOverwritten);
    assert_eq!(
        (r.object, r.offset, r.found, r.expected),
        (v, 64, 0x12, 0xcc)
    );
    assert_eq!(r.cache.as_str(), "kmalloc-64");
    assert!(r.to_string().contains("Redzone overwritten"), "{r}");
    // Repaired: nothing more to find.
    assert_eq!(e.validate_all(), 0);
}

#[test]
fn debug_detects_kmalloc_slack_overwrite() {
    let mut e = debug_env();
    let v = e.kmalloc(18, Gfp::KERNEL).unwrap();
    e.write(v + 18, &[0xab, 0xab]);
    assert_eq!(e.validate_all(), 1);
    let r = *e.slab.reports().last().unwrap();
    assert_eq!((r.offset, r.found), (18, 0xab));
    e.kfree(v).unwrap();
    assert_eq!(e.slab.errors_total(), 1);
}

#[test]
fn debug_detects_use_after_free_on_next_alloc() {
    let mut e = debug_env();
    let v = e.kmalloc(64, Gfp::KERNEL).unwrap();
    e.kfree(v).unwrap();
    e.write(v + 50, &[0x9a]);
    let w = e.kmalloc(64, Gfp::KERNEL).unwrap();
    assert_eq!(w, v, "LIFO reuse expected");
    assert_eq!(e.slab.errors_total(), 1);
    let r = *e.slab.reports().last().unwrap();
    assert_eq!(r.kind, mm::slab::debug::SlabErrorKind::PoisonOverwritten);
    assert_eq!((r.offset, r.found, r.expected), (50, 0x9a, POISON_FREE));
    // The last byte of the poison too.
    e.kfree(w).unwrap();
    e.write(v + 63, &[0]);
    assert_eq!(e.validate_all(), 1);
    assert_eq!(e.slab.reports().last().unwrap().expected, POISON_END);
}

#[test]
fn debug_detects_padding_and_free_pointer_corruption() {
    let mut e = debug_env();
    let id = e.slab.kmalloc_cache(64, false).unwrap();
    let i = e.info(id);
    // FZPU kmalloc-64: 64 + 16 red zone + 16 state + 32 track = 128, no padding.
    assert_eq!(i.stride, 128);
    let c = e.create("padded", 40, 8, SlabFlags::NONE);
    // 40 + 16 + 16 + 32 = 104 -> 104 (8-aligned); use a 64-aligned cache for padding.
    let p = e.create("padded64", 40, 64, SlabFlags::NONE);
    assert_eq!(e.info(p).stride, 128);
    let v = e.calloc(p).unwrap();
    e.write(v + 120, &[0x00]);
    assert_eq!(e.validate_all(), 1);
    assert_eq!(
        e.slab.reports().last().unwrap().kind,
        mm::slab::debug::SlabErrorKind::PaddingOverwritten
    );
    // Corrupt the state word ("free pointer") of a free object in a partial slab.
    let objs: Vec<u64> = (0..200).map(|_| e.calloc(c).unwrap()).collect();
    e.cfree(c, objs[1]).unwrap();
    e.cfree(c, objs[2]).unwrap();
    let state_off = 40 + 16;
    let mut b = e.read(objs[1] + state_off, 1);
    b[0] ^= 0xff;
    e.write(objs[1] + state_off, &b);
    let before = e.slab.errors_total();
    assert!(e.validate_all() >= 1);
    assert!(e
        .slab
        .reports()
        .any(|r| r.kind == mm::slab::debug::SlabErrorKind::FreePointerCorrupt));
    assert!(e.slab.errors_total() > before);
    // Resolved through the in-use count: the object is free again, nothing leaked.
    assert_eq!(e.validate_all(), 0);
    for (i, &v) in objs.iter().enumerate() {
        if i != 1 && i != 2 {
            e.cfree(c, v).unwrap();
        }
    }
    e.cfree(p, v).unwrap();
    e.shrink_all();
    assert_eq!(e.info(c).num_slabs, 0);
    assert_eq!(e.info(c).active_objs, 0);
}

#[test]
fn debug_double_and_wrong_cache_free_are_reported() {
    let mut e = debug_env();
    let c = e.create("dbl", 64, 0, SlabFlags::NONE);
    let objs: Vec<u64> = (0..100).map(|_| e.calloc(c).unwrap()).collect();
    e.cfree(c, objs[0]).unwrap(); // full slab -> partial
    e.cfree(c, objs[99]).unwrap(); // active slab
    let snap_mem = e.mem.bytes.clone();
    assert_eq!(e.cfree(c, objs[0]), Err(MmError::ObjectDoubleFree(objs[0])));
    assert_eq!(
        e.cfree(c, objs[99]),
        Err(MmError::ObjectDoubleFree(objs[99]))
    );
    assert_eq!(e.kfree(objs[5]), Err(MmError::WrongCache(objs[5])));
    assert_eq!(e.mem.bytes, snap_mem);
    let kinds: Vec<_> = e.slab.reports().map(|r| r.kind).collect();
    use mm::slab::debug::SlabErrorKind::*;
    assert_eq!(kinds, vec![DoubleFree, DoubleFree, WrongCache]);
    assert_eq!(e.info(c).errors, 3);
    for &v in &objs[1..99] {
        e.cfree(c, v).unwrap();
    }
    e.slab
        .kmem_cache_destroy(&mut e.mem, &mut e.pages, c)
        .unwrap();
}

#[test]
fn debug_store_user_tracks_sites() {
    let mut e = debug_env();
    // The site recorded is the caller's (kmalloc is #[track_caller]).
    #[track_caller]
    fn alloc_here(e: &mut Env) -> (u64, u32) {
        let v = e.slab.kmalloc(&mut e.mem, &mut e.pages, 200, Gfp::KERNEL);
        (v.unwrap(), std::panic::Location::caller().line())
    }
    #[track_caller]
    fn free_here(e: &mut Env, v: u64) -> u32 {
        e.slab.kfree(&mut e.mem, &mut e.pages, v).unwrap();
        std::panic::Location::caller().line()
    }
    let (v, line) = alloc_here(&mut e);
    let info = e.slab.object_info(&e.mem, &e.pages, v + 10).unwrap();
    assert_eq!(info.object, v);
    assert!(info.allocated);
    assert_eq!(info.name.as_str(), "kmalloc-256");
    let site = info.track.alloc_site.unwrap();
    assert_eq!((site.file(), site.line()), (file!(), line));
    assert!(info.track.free_site.is_none());
    let fline = free_here(&mut e, v);
    let info = e.slab.object_info(&e.mem, &e.pages, v).unwrap();
    assert!(!info.allocated);
    assert_eq!(info.track.free_site.unwrap().line(), fline);
    assert!(info.track.free_seq > info.track.alloc_seq);
    // Reports name the sites.
    let w = e
        .slab
        .kmalloc(&mut e.mem, &mut e.pages, 200, Gfp::KERNEL)
        .unwrap();
    e.write(w + 256, &[1]);
    e.kfree(w).unwrap();
    let r = e.slab.reports().last().unwrap().to_string();
    assert!(r.contains("allocated at") && r.contains(file!()), "{r}");
}

#[test]
fn set_debug_is_refused_with_live_objects() {
    let mut e = Env::new(8192);
    let c = e.create("switchy", 64, 0, SlabFlags::NONE);
    let v = e.calloc(c).unwrap();
    assert_eq!(
        e.slab
            .set_debug(&mut e.mem, &mut e.pages, c, DebugFlags::ALL),
        Err(MmError::CacheBusy { live: 1 })
    );
    let out = e
        .slab
        .slub_debug(&mut e.mem, &mut e.pages, "slub_debug=P,switchy,kmalloc-*")
        .unwrap();
    assert_eq!((out.changed, out.busy), (16, 1));
    assert_eq!(e.slab.debug_flags(c).unwrap(), DebugFlags::NONE);
    e.cfree(c, v).unwrap();
    // Empty slabs are given back and the layout switches.
    e.slab
        .set_debug(&mut e.mem, &mut e.pages, c, DebugFlags::ALL)
        .unwrap();
    assert_eq!(e.info(c).num_slabs, 0);
    assert_eq!(e.info(c).stride, 128);
    let v = e.calloc(c).unwrap();
    e.cfree(c, v).unwrap();
    e.slab
        .set_debug(&mut e.mem, &mut e.pages, c, DebugFlags::NONE)
        .unwrap();
    assert_eq!(e.info(c).stride, 64);
}

#[test]
fn slub_debug_parsing() {
    let mut e = Env::new(4096);
    let c = e.create("dentry", 192, 0, SlabFlags::NONE);
    let k64 = e.slab.find("kmalloc-64").unwrap();
    let d64 = e.slab.find("dma-kmalloc-64").unwrap();
    let run = |e: &mut Env, s: &str| e.slab.slub_debug(&mut e.mem, &mut e.pages, s);
    run(&mut e, "slub_debug=FZ,kmalloc-64").unwrap();
    assert_eq!(e.slab.debug_flags(k64).unwrap(), DebugFlags(3));
    assert_eq!(e.slab.debug_flags(d64).unwrap(), DebugFlags::NONE);
    assert_eq!(e.slab.debug_flags(c).unwrap(), DebugFlags::NONE);
    run(&mut e, "slub_debug=,dentry").unwrap();
    assert_eq!(e.slab.debug_flags(c).unwrap(), DebugFlags::ALL);
    run(&mut e, "slub_debug=u;pz,dma-kmalloc-*").unwrap();
    assert_eq!(e.slab.debug_flags(d64).unwrap(), DebugFlags(6));
    assert_eq!(e.slab.debug_flags(c).unwrap(), DebugFlags::STORE_USER);
    // The global block is the default for new caches.
    let n = e.create("newer", 32, 0, SlabFlags::NONE);
    assert_eq!(e.slab.debug_flags(n).unwrap(), DebugFlags::STORE_USER);
    run(&mut e, "slub_debug=-").unwrap();
    assert!(e.slab.caches().all(|i| i.debug == DebugFlags::NONE));
    run(&mut e, "slub_debug").unwrap();
    assert!(e.slab.caches().all(|i| i.debug == DebugFlags::ALL));
    run(&mut e, "FZPUTAO").unwrap();
    assert_eq!(DebugFlags::ALL.to_string(), "FZPU");
    let before: Vec<_> = e.slab.caches().map(|i| i.debug).collect();
    assert!(matches!(
        run(&mut e, "slub_debug=FX,kmalloc-64"),
        Err(MmError::Invalid(_))
    ));
    assert!(matches!(
        run(&mut e, "slub_debugx"),
        Err(MmError::Invalid(_))
    ));
    assert_eq!(e.slab.caches().map(|i| i.debug).collect::<Vec<_>>(), before);
    assert_eq!(
        cmdline_slub_debug("console=ttyS0 slub_debug=FZ,kmalloc-64 quiet"),
        Some("slub_debug=FZ,kmalloc-64")
    );
    assert_eq!(cmdline_slub_debug("quiet slub_debug"), Some("slub_debug"));
    assert_eq!(cmdline_slub_debug("slub_debugger=1"), None);
    // Creation flags.
    let f = e
        .slab
        .kmem_cache_create(
            "flagged",
            32,
            0,
            SlabFlags::RED_ZONE | SlabFlags::POISON,
            None,
        )
        .unwrap();
    assert!(e.slab.debug_flags(f).unwrap().contains(DebugFlags(6)));
}

#[test]
fn nondebug_metadata_is_out_of_reach_of_overflows() {
    let mut e = Env::new(8192);
    let c = e.create("victim", 64, 0, SlabFlags::NONE);
    // Two full slabs of 128 objects; then some free in their slab, one in the
    // magazine.
    let objs: Vec<u64> = (0..256).map(|_| e.calloc(c).unwrap()).collect();
    assert_eq!(e.info(c).objs_per_slab, 128);
    for &i in &[3usize, 4, 170] {
        e.cfree(c, objs[i]).unwrap();
    }
    e.slab
        .kmem_cache_shrink(&mut e.mem, &mut e.pages, c)
        .unwrap();
    e.cfree(c, objs[5]).unwrap();
    // Scribble over every byte of both slabs, free objects included.
    let lo = objs.iter().copied().min().unwrap() & !4095;
    let hi = (objs.iter().copied().max().unwrap() | 4095) + 1;
    for page in (lo..hi).step_by(4096) {
        if e.slab.object_info(&e.mem, &e.pages, page).is_ok() {
            e.write(page, &[0xff; 4096]);
        }
    }
    // Nothing the allocator relies on was there: no error, exact answers.
    assert_eq!(e.validate_all(), 0);
    for &i in &[3usize, 4, 5, 170] {
        assert_eq!(e.cfree(c, objs[i]), Err(MmError::ObjectDoubleFree(objs[i])));
    }
    let again: Vec<u64> = (0..4).map(|_| e.calloc(c).unwrap()).collect();
    let mut want = vec![objs[3], objs[4], objs[5], objs[170]];
    let mut got = again.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "the freed objects come back, nothing else");
    for (i, &v) in objs.iter().enumerate() {
        if ![3usize, 4, 5, 170].contains(&i) {
            e.cfree(c, v).unwrap();
        }
    }
    for v in again {
        e.cfree(c, v).unwrap();
    }
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
    assert_eq!(e.slab.errors_total(), 0);
}

#[test]
fn validate_checks_available_counts_against_the_bitmap() {
    let mut e = Env::new(8192);
    let c = e.create("counted", 128, 0, SlabFlags::NONE);
    // One full slab (128 objects, two refills).
    let objs: Vec<u64> = (0..128).map(|_| e.calloc(c).unwrap()).collect();
    assert_eq!(e.info(c).objs_per_slab, 128);
    for &v in &objs[..3] {
        e.cfree(c, v).unwrap();
    }
    // Out of the magazine: the slab has 3 available objects.
    e.slab
        .kmem_cache_shrink(&mut e.mem, &mut e.pages, c)
        .unwrap();
    assert_eq!(e.validate_all(), 0);
    let head = (e.phys(objs[0]) >> 12) as usize;
    assert_eq!(e.pages.map[head].count, 3);
    e.pages.map[head].count = 5;
    assert_eq!(e.validate_all(), 1, "a wrong count is reported");
    assert_eq!(e.pages.map[head].count, 3, "and repaired from the bitmap");
    assert_eq!(e.validate_all(), 0);
    let again: Vec<u64> = (0..3).map(|_| e.calloc(c).unwrap()).collect();
    for v in objs[3..].iter().chain(&again) {
        e.cfree(c, *v).unwrap();
    }
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

#[test]
fn selftest_detects_every_scenario_and_leaks_nothing() {
    let mut e = Env::new(8192);
    let keep = e.kmalloc(64, Gfp::KERNEL).unwrap();
    let snap = e.snapshot();
    let res = e.slab.selftest(&mut e.mem, &mut e.pages);
    assert_eq!(res.len(), mm::slab::selftest::SCENARIOS.len());
    for (name, errors) in &res {
        assert!(*errors > 0, "scenario {name} detected nothing");
    }
    assert_eq!(
        e.slab.errors_total(),
        0,
        "selftest disturbed the global reports"
    );
    let after = e.snapshot();
    assert!(after == snap, "selftest left state behind");
    // Twice in a row (names are free again), the heap-free form too.
    let res2 = e.slab.selftest_results(&mut e.mem, &mut e.pages);
    assert_eq!(res, res2.to_vec());
    assert_eq!(
        e.slab.selftest_one(&mut e.mem, &mut e.pages, "nope"),
        Err(MmError::NotFound)
    );
    e.kfree(keep).unwrap();
}

#[test]
fn selftest_scenarios_individually() {
    let mut e = Env::new(8192);
    for name in mm::slab::selftest::SCENARIOS {
        let n = e.slab.selftest_one(&mut e.mem, &mut e.pages, name).unwrap();
        assert!(n > 0, "{name}");
        assert_eq!(e.pages.outstanding(), 0, "{name} leaked");
    }
}

// ----------------------------------------------------------------------------
// mempool
// ----------------------------------------------------------------------------

#[test]
fn mempool_falls_back_to_reserve_and_refills_it() {
    let mut e = Env::new(8192);
    let mut pool = e
        .slab
        .mempool_create(
            &mut e.mem,
            &mut e.pages,
            4,
            PoolBacking::Kmalloc { size: 4096 },
        )
        .unwrap();
    assert_eq!((pool.min_nr(), pool.curr_nr()), (4, 4));
    // The 4 reserve elements came from the first refill (two slabs of 8 objects,
    // into the magazine); take the other 12, then forbid new slabs.
    let mut got = Vec::new();
    for _ in 0..12 {
        got.push(
            e.slab
                .mempool_alloc(&mut e.mem, &mut e.pages, &mut pool, Gfp::KERNEL)
                .unwrap(),
        );
    }
    assert_eq!(pool.curr_nr(), 4, "backing allocator used first");
    e.pages.budget = Some(0);
    for _ in 0..4 {
        let v = e
            .slab
            .mempool_alloc(&mut e.mem, &mut e.pages, &mut pool, Gfp::ZERO)
            .unwrap();
        assert!(e.read(v, 4096).iter().all(|&b| b == 0));
        got.push(v);
    }
    assert_eq!(pool.curr_nr(), 0);
    assert_eq!(
        e.slab
            .mempool_alloc(&mut e.mem, &mut e.pages, &mut pool, Gfp::KERNEL),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(pool.outstanding(), 16);
    assert_eq!(
        e.slab.mempool_destroy(&mut e.mem, &mut e.pages, &mut pool),
        Err(MmError::CacheBusy { live: 16 })
    );
    // Misuse.
    let other = e.slab.kmalloc_cache(64, false).unwrap();
    let _ = other;
    assert_eq!(
        e.slab
            .mempool_free(&mut e.mem, &mut e.pages, &mut pool, got[0] + 8),
        Err(MmError::InvalidFree(got[0] + 8))
    );
    // Frees refill the reserve first.
    for (i, &v) in got.iter().enumerate() {
        e.slab
            .mempool_free(&mut e.mem, &mut e.pages, &mut pool, v)
            .unwrap();
        assert_eq!(pool.curr_nr(), (i + 1).min(4));
    }
    assert_eq!(
        e.slab
            .mempool_free(&mut e.mem, &mut e.pages, &mut pool, got[0]),
        Err(MmError::ObjectDoubleFree(got[0]))
    );
    assert_eq!(
        e.slab
            .mempool_free(&mut e.mem, &mut e.pages, &mut pool, got[7]),
        Err(MmError::ObjectDoubleFree(got[7]))
    );
    e.pages.budget = None;
    e.slab
        .mempool_destroy(&mut e.mem, &mut e.pages, &mut pool)
        .unwrap();
    assert!(pool.is_destroyed());
    assert!(e
        .slab
        .mempool_alloc(&mut e.mem, &mut e.pages, &mut pool, Gfp::KERNEL)
        .is_err());
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

#[test]
fn mempool_cache_backed_and_errors() {
    let mut e = Env::new(8192);
    let c = e.create("bio", 96, 0, SlabFlags::NONE);
    let d = e.create("other_bio", 96, 0, SlabFlags::NONE);
    assert!(matches!(
        e.slab
            .mempool_create(&mut e.mem, &mut e.pages, 65, PoolBacking::Cache(c)),
        Err(MmError::BadCount { got: 65, max: 64 })
    ));
    assert!(matches!(
        e.slab.mempool_create(
            &mut e.mem,
            &mut e.pages,
            1,
            PoolBacking::Kmalloc { size: 0 }
        ),
        Err(MmError::BadSize { .. })
    ));
    e.pages.budget = Some(0);
    assert_eq!(
        e.slab
            .mempool_create(&mut e.mem, &mut e.pages, 2, PoolBacking::Cache(c))
            .unwrap_err(),
        MmError::OutOfMemory
    );
    assert_eq!(e.info(c).active_objs, 0);
    e.pages.budget = None;
    let mut pool = e
        .slab
        .mempool_create(&mut e.mem, &mut e.pages, 2, PoolBacking::Cache(c))
        .unwrap();
    assert_eq!(e.info(c).active_objs, 2);
    let x = e.calloc(d).unwrap();
    let v = e
        .slab
        .mempool_alloc(&mut e.mem, &mut e.pages, &mut pool, Gfp::KERNEL)
        .unwrap();
    assert_eq!(
        e.slab.mempool_free(&mut e.mem, &mut e.pages, &mut pool, x),
        Err(MmError::WrongCache(x))
    );
    e.slab
        .mempool_free(&mut e.mem, &mut e.pages, &mut pool, v)
        .unwrap();
    assert_eq!(pool.curr_nr(), 2);
    e.slab
        .mempool_destroy(&mut e.mem, &mut e.pages, &mut pool)
        .unwrap();
    assert_eq!(e.info(c).active_objs, 0);
    e.cfree(d, x).unwrap();
}

static CUSTOM_LIVE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn custom_alloc(_gfp: Gfp, data: u64) -> Option<u64> {
    let n = CUSTOM_LIVE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if n >= 3 {
        CUSTOM_LIVE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        return None;
    }
    Some(data + n as u64 * 16)
}

fn custom_free(_v: u64, _data: u64) {
    CUSTOM_LIVE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn mempool_custom_backing() {
    let mut e = Env::new(1024);
    let b = PoolBacking::Custom {
        alloc: custom_alloc,
        free: custom_free,
        data: 0x1000,
    };
    let mut pool = e
        .slab
        .mempool_create(&mut e.mem, &mut e.pages, 2, b)
        .unwrap();
    let v1 = e
        .slab
        .mempool_alloc(&mut e.mem, &mut e.pages, &mut pool, Gfp::KERNEL)
        .unwrap();
    assert_eq!(v1, 0x1000 + 32);
    // Backing exhausted (it refuses after 3): from the reserve.
    let v2 = e
        .slab
        .mempool_alloc(&mut e.mem, &mut e.pages, &mut pool, Gfp::KERNEL)
        .unwrap();
    assert!(v2 == 0x1000 || v2 == 0x1010);
    e.slab
        .mempool_free(&mut e.mem, &mut e.pages, &mut pool, v2)
        .unwrap();
    e.slab
        .mempool_free(&mut e.mem, &mut e.pages, &mut pool, v1)
        .unwrap();
    e.slab
        .mempool_destroy(&mut e.mem, &mut e.pages, &mut pool)
        .unwrap();
    assert_eq!(CUSTOM_LIVE.load(std::sync::atomic::Ordering::SeqCst), 0);
}

// ----------------------------------------------------------------------------
// With the real buddy allocator
// ----------------------------------------------------------------------------

const B_PAGES: u32 = 16384;

fn buddy_map() -> Vec<Page> {
    vec![Page::reserved(Zone::Dma); B_PAGES as usize]
}

/// A slab liveness bitmap over all `B_PAGES` frames (`Buddy::attach_slab_bits`).
fn buddy_bits() -> Vec<u64> {
    vec![0; Buddy::slab_bits_words(B_PAGES)]
}

#[test]
fn with_real_buddy_free_all_returns_to_boot_figures() {
    let mut map = buddy_map();
    let mut bits = buddy_bits();
    let mut buddy =
        Buddy::page_init(&mut map, Pfn(B_PAGES), &[(Pfn(1), Pfn(B_PAGES))], &[]).unwrap();
    buddy.attach_slab_bits(&mut bits);
    let mut mem = SimMem::new(B_PAGES as usize * PAGE_SIZE, 0xee);
    let mut slab = Box::new(Slab::new());
    let boot = buddy.mm_stat();
    let boot_full = slab.mm_stat(boot);
    assert_eq!((boot_full.cache_used, boot_full.cache_free), (0, 0));
    let c = slab
        .kmem_cache_create("task_struct", 1700, 64, SlabFlags::HWCACHE_ALIGN, None)
        .unwrap();
    let mut rng = 42u64;
    let mut live: Vec<(u64, bool)> = Vec::new();
    for step in 0..60_000u32 {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = rng >> 33;
        if live.len() < 1500 && (r % 5 < 3 || live.is_empty()) {
            if r.is_multiple_of(7) {
                let v = slab
                    .kmem_cache_alloc(&mut mem, &mut buddy, c, Gfp::KERNEL)
                    .unwrap();
                assert_eq!(v % 64, 0);
                live.push((v, true));
            } else {
                let size = 1usize << (5 + (r >> 3) % 12);
                let gfp = if r.is_multiple_of(11) {
                    Gfp::DMA
                } else {
                    Gfp::KERNEL
                };
                let v = slab.kmalloc(&mut mem, &mut buddy, size, gfp).unwrap();
                assert_eq!(v % size as u64, 0);
                if gfp == Gfp::DMA {
                    assert!(mem.phys_of(v).unwrap() < 16 << 20);
                }
                mem.write_u64(mem.phys_of(v).unwrap(), v ^ step as u64);
                live.push((v, false));
            }
        } else {
            let i = (r as usize / 7) % live.len();
            let (v, cache) = live.swap_remove(i);
            if cache {
                slab.kmem_cache_free(&mut mem, &mut buddy, c, v).unwrap();
            } else {
                slab.kfree(&mut mem, &mut buddy, v).unwrap();
                assert!(slab.kfree(&mut mem, &mut buddy, v).is_err());
            }
        }
        if step % 10_000 == 0 {
            let s = slab.mm_stat(buddy.mm_stat());
            let t = slab.totals();
            assert_eq!(s.cache_used + s.cache_free, t.slab_bytes);
            assert_eq!(s.available, s.free + s.cache_free);
            assert_eq!(
                boot.free - s.free,
                t.slab_bytes,
                "slab pages = pages taken from buddy"
            );
        }
    }
    assert_eq!(slab.validate_all(&mut mem, &mut buddy).unwrap(), 0);
    buddy.check().unwrap();
    for (v, cache) in live {
        if cache {
            slab.kmem_cache_free(&mut mem, &mut buddy, c, v).unwrap();
        } else {
            slab.kfree(&mut mem, &mut buddy, v).unwrap();
        }
    }
    slab.shrink_all(&mut mem, &mut buddy).unwrap();
    slab.kmem_cache_destroy(&mut mem, &mut buddy, c).unwrap();
    buddy.drain();
    buddy.check().unwrap();
    assert_eq!(slab.mm_stat(buddy.mm_stat()), boot_full);
    // The selftest on the real buddy too.
    let res = slab.selftest(&mut mem, &mut buddy);
    assert!(res.iter().all(|&(_, n)| n > 0), "{res:?}");
    buddy.drain();
    assert_eq!(slab.mm_stat(buddy.mm_stat()), boot_full);
    buddy.check().unwrap();
}

#[test]
fn buddy_refuses_slab_pages_and_slab_refuses_buddy_pages() {
    let mut map = buddy_map();
    let mut bits = buddy_bits();
    let mut buddy =
        Buddy::page_init(&mut map, Pfn(B_PAGES), &[(Pfn(1), Pfn(B_PAGES))], &[]).unwrap();
    buddy.attach_slab_bits(&mut bits);
    let mut mem = SimMem::new(B_PAGES as usize * PAGE_SIZE, 0xee);
    let mut slab = Box::new(Slab::new());
    let page = buddy.alloc_pages(Gfp::KERNEL, 2).unwrap();
    let pv = mem.virt_of(page.phys()).unwrap();
    assert_eq!(
        slab.kfree(&mut mem, &mut buddy, pv),
        Err(MmError::InvalidFree(pv))
    );
    assert_eq!(
        slab.kfree(&mut mem, &mut buddy, pv + 4096),
        Err(MmError::InvalidFree(pv + 4096))
    );
    let v = slab
        .kmalloc(&mut mem, &mut buddy, 8192, Gfp::KERNEL)
        .unwrap();
    let pfn = Pfn::containing(mem.phys_of(v).unwrap());
    assert!(
        buddy.__free_pages(pfn, 3).is_err(),
        "buddy freed a slab page"
    );
    slab.kfree(&mut mem, &mut buddy, v).unwrap();
    buddy.__free_pages(page, 2).unwrap();
    slab.shrink_all(&mut mem, &mut buddy).unwrap();
    buddy.drain();
    buddy.check().unwrap();
    let _ = NIL;
}

#[test]
fn failslab_fails_every_allocation_while_armed_and_skips_memalloc() {
    use mm::fault::FaultConfig;
    let mut e = Env::new(8192);
    let c = e.create("fi", 200, 0, SlabFlags::NONE);
    // Objects in the magazines before arming, and one live object.
    let warm: Vec<u64> = (0..4)
        .map(|_| e.kmalloc(80, Gfp::KERNEL).unwrap())
        .collect();
    let live = e.calloc(c).unwrap();
    for v in warm {
        e.kfree(v).unwrap();
    }
    e.slab
        .set_failslab(&mut e.mem, &mut e.pages, Some(FaultConfig::ALWAYS))
        .unwrap();
    let snap = e.snapshot();
    assert_eq!(e.kmalloc(80, Gfp::KERNEL), Err(MmError::OutOfMemory));
    assert_eq!(e.kmalloc(80, Gfp::ZERO), Err(MmError::OutOfMemory));
    assert_eq!(e.kmalloc(80, Gfp::DMA), Err(MmError::OutOfMemory));
    assert_eq!(e.calloc(c), Err(MmError::OutOfMemory));
    assert!(e.snapshot() == snap, "an injected failure changes nothing");
    // The kernel's own allocations are never failed; freeing one does not put it
    // where the next allocation would take it unchecked.
    let k = e.kmalloc(80, Gfp::MEMALLOC).unwrap();
    e.kfree(k).unwrap();
    assert_eq!(e.kmalloc(80, Gfp::KERNEL), Err(MmError::OutOfMemory));
    e.cfree(c, live).unwrap();
    assert_eq!(e.calloc(c), Err(MmError::OutOfMemory));
    assert_eq!(e.slab.failslab().injected(), 6);
    // A cache created while armed has no magazine either.
    let d = e.create("fi2", 64, 0, SlabFlags::NONE);
    assert_eq!(e.calloc(d), Err(MmError::OutOfMemory));
    // Disarmed: allocations work and magazines fill again.
    e.slab.set_failslab(&mut e.mem, &mut e.pages, None).unwrap();
    let a = e.kmalloc(80, Gfp::KERNEL).unwrap();
    let b = e.calloc(d).unwrap();
    e.kfree(a).unwrap();
    e.cfree(d, b).unwrap();
    assert_eq!(e.kmalloc(80, Gfp::KERNEL), Ok(a), "the magazine is back");
    e.kfree(a).unwrap();
    assert_eq!(e.slab.failslab().injected(), 7);
    assert_eq!(e.validate_all(), 0);
}

#[test]
fn failslab_interval_and_times_count_every_call() {
    use mm::fault::FaultConfig;
    let mut e = Env::new(8192);
    e.slab
        .set_failslab(
            &mut e.mem,
            &mut e.pages,
            Some(FaultConfig {
                interval: 2,
                times: Some(2),
                ..FaultConfig::ALWAYS
            }),
        )
        .unwrap();
    let mut got = Vec::new();
    let mut objs = Vec::new();
    for _ in 0..6 {
        // Free in between: an object freed while armed must not bypass the check.
        let r = e.kmalloc(64, Gfp::KERNEL);
        got.push(r.is_ok());
        if let Ok(v) = r {
            objs.push(v);
            let x = objs.remove(0);
            e.kfree(x).unwrap();
        }
    }
    assert_eq!(got, [true, false, true, false, true, true]);
    assert_eq!(e.slab.failslab().times_left(), Some(0));
    for v in objs {
        e.kfree(v).unwrap();
    }
    e.slab.set_failslab(&mut e.mem, &mut e.pages, None).unwrap();
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

// ----------------------------------------------------------------------------
// Batched slow paths: magazine flush and refill, bulk calls
// ----------------------------------------------------------------------------

/// Every page lent by the provider is in a slab, as the statistics say.
fn check_stats_pages(e: &Env) {
    let lent: u64 = e.pages.blocks.values().map(|&o| 1u64 << o).sum();
    assert_eq!(e.slab.totals().slab_bytes, lent * PAGE_SIZE as u64);
}

/// The slab (head PFN) of object `v` of a cache with 2^`order`-page slabs.
fn slab_of(e: &Env, v: u64, order: u32) -> u32 {
    (e.phys(v) >> 12) as u32 & !((1 << order) - 1)
}

#[test]
fn batched_flush_spans_slabs_and_releases_one_mid_run() {
    // kmalloc-1k: 32 objects per order-3 slab, magazine of 256, refills of two
    // new slabs (64 objects), flushes of the oldest 192 (three quarters).
    assert_eq!(mm::slab::MAG, 256);
    let mut e = Env::new(8192);
    let k = e.slab.kmalloc_cache(1024, false).unwrap();
    let objs: Vec<u64> = (0..512)
        .map(|_| e.kmalloc(1024, Gfp::KERNEL).unwrap())
        .collect();
    // Refills come from new slabs, each written lowest address first.
    let mut by_slab: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for &v in &objs {
        by_slab.entry(slab_of(&e, v, 3)).or_default().push(v);
    }
    assert_eq!(by_slab.len(), 16);
    assert!(by_slab.values().all(|s| s.len() == 32));
    assert!(
        objs.windows(2).filter(|w| w[1] < w[0]).count() <= 8,
        "not ascending"
    );
    assert_eq!(e.info(k).partial_slabs, 0);
    let slabs: Vec<Vec<u64>> = by_slab.into_values().collect();
    // Half of slab 2 goes back first (into the magazine, then flushed by shrink):
    // slab 2 is partial with 16 available objects.
    for &v in &slabs[2][..16] {
        e.kfree(v).unwrap();
    }
    e.slab
        .kmem_cache_shrink(&mut e.mem, &mut e.pages, k)
        .unwrap();
    assert_eq!((e.info(k).num_slabs, e.info(k).partial_slabs), (16, 1));
    // The magazine gets slabs 0 and 1 whole (64 objects), then slab 2's other half
    // and all of slab 3 (48): 112 objects, magazine not yet full.
    let order: Vec<u64> = slabs[0]
        .iter()
        .chain(&slabs[1])
        .chain(&slabs[2][16..])
        .chain(&slabs[3])
        .copied()
        .collect();
    for &v in &order {
        e.kfree(v).unwrap();
    }
    assert_eq!(e.info(k).num_slabs, 16);
    assert_eq!(e.info(k).active_objs, 512 - 16 - 112);
    // 144 more fill the magazine (256): slabs 4 to 7 and half of slab 8.
    let rest: Vec<u64> = slabs[4..].iter().flatten().copied().collect();
    for &v in &rest[..144] {
        e.kfree(v).unwrap();
    }
    assert_eq!(e.info(k).num_slabs, 16);
    // The next free flushes the oldest 192 in one pass: the run of slab 0 makes
    // it the spare; the runs of slab 1, of slab 2's other half, of slabs 3, 4
    // and 5 each free a slab entirely mid-flush, and it goes back; 16 of slab 6
    // leave it partial.
    e.kfree(rest[144]).unwrap();
    let i = e.info(k);
    assert_eq!((i.num_slabs, i.active_slabs, i.partial_slabs), (11, 10, 2));
    assert_eq!(e.pages.outstanding(), 11);
    assert_eq!(e.validate_all(), 0);
    // Shrinking flushes the other 65 in one pass: slab 6 completed (back), slab 7
    // (back), 17 of slab 8 (partial); then the spare goes too.
    assert_eq!(
        e.slab
            .kmem_cache_shrink(&mut e.mem, &mut e.pages, k)
            .unwrap(),
        3
    );
    let i = e.info(k);
    assert_eq!(
        (i.num_slabs, i.partial_slabs, i.active_objs),
        (8, 1, 384 - 145)
    );
    assert_eq!(e.validate_all(), 0);
    check_stats_pages(&e);
    // Freed objects are refused, with the error their slab's state gives.
    assert_eq!(e.kfree(slabs[1][5]), Err(MmError::InvalidFree(slabs[1][5])));
    assert_eq!(
        e.kfree(rest[130]),
        Err(MmError::ObjectDoubleFree(rest[130]))
    );
    for &v in &rest[145..] {
        e.kfree(v).unwrap();
    }
    assert_eq!(e.info(k).active_objs, 0);
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
    assert_eq!(e.slab.totals(), SlabTotals::default());
}

#[test]
fn refill_from_fresh_and_partial_slabs() {
    let mut e = Env::new(8192);
    // kmalloc-1k: 32 objects per order-3 slab; one refill (64 objects) makes 2
    // new slabs (64 KiB) and takes all their objects, so none is on the partial list.
    let k1 = e.slab.kmalloc_cache(1024, false).unwrap();
    let a = e.kmalloc(1024, Gfp::KERNEL).unwrap();
    let i = e.info(k1);
    assert_eq!((i.num_slabs, i.partial_slabs, i.active_objs), (2, 0, 1));
    assert_eq!(e.pages.outstanding(), 2);
    let mut got = vec![a];
    for _ in 0..63 {
        got.push(e.kmalloc(1024, Gfp::KERNEL).unwrap());
    }
    // Lowest address first through each slab, slab after slab.
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(got, sorted);
    assert_eq!(e.info(k1).num_slabs, 2);
    assert_eq!(e.validate_all(), 0);
    // kmalloc-32: 128 objects per slab, more than a refill's usual 64 but within
    // the magazine's 128: a refill from new slabs takes the new slab whole, so it
    // is not on the partial list and the next 127 allocations need no refill.
    let k32 = e.slab.kmalloc_cache(32, false).unwrap();
    let first: Vec<u64> = (0..64)
        .map(|_| e.kmalloc(32, Gfp::KERNEL).unwrap())
        .collect();
    let i = e.info(k32);
    assert_eq!((i.num_slabs, i.partial_slabs, i.active_objs), (1, 0, 64));
    assert_eq!(i.num_objs - i.active_objs, 64, "the rest in the magazine");
    let second: Vec<u64> = (0..64)
        .map(|_| e.kmalloc(32, Gfp::KERNEL).unwrap())
        .collect();
    let i = e.info(k32);
    assert_eq!((i.num_slabs, i.partial_slabs, i.active_objs), (1, 0, 128));
    assert!(first.windows(2).all(|w| w[1] == w[0] + 32));
    assert!(second.windows(2).all(|w| w[1] == w[0] + 32));
    assert_eq!(second[0], first[63] + 32);
    // Holes freed and flushed back are found again by the next refill's scan.
    for &v in first.iter().step_by(3) {
        e.kfree(v).unwrap();
    }
    e.slab
        .kmem_cache_shrink(&mut e.mem, &mut e.pages, k32)
        .unwrap();
    let holes: Vec<u64> = first.iter().step_by(3).copied().collect();
    let mut again: Vec<u64> = (0..holes.len())
        .map(|_| e.kmalloc(32, Gfp::KERNEL).unwrap())
        .collect();
    assert_eq!(
        again, holes,
        "refill takes the available objects, lowest first"
    );
    again.extend(
        first
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, &v)| v),
    );
    again.extend(&second);
    again.extend(&got);
    for v in again {
        e.kfree(v).unwrap();
    }
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

#[test]
fn bulk_free_stops_at_a_misuse_in_the_middle_of_runs() {
    let mut e = Env::new(8192);
    let k = e.slab.kmalloc_cache(64, false).unwrap();
    let other = e.create("bulk_other", 64, 0, SlabFlags::NONE);
    let mut objs = vec![0u64; 600];
    assert_eq!(
        e.slab
            .kmem_cache_alloc_bulk(&mut e.mem, &mut e.pages, k, Gfp::KERNEL, &mut objs),
        Ok(600)
    );
    let foreign = e.calloc(other).unwrap();
    assert_eq!(e.info(k).active_objs, 600);
    // 150 per batch: the first 128 fill the magazine, the others go to their
    // slabs in runs (pending when the misuse comes); then the misuse, then 50.
    for (bad, err) in [
        // Freed earlier in this batch, in a pending run.
        (objs[140], MmError::ObjectDoubleFree(objs[140])),
        // Interior pointer of a live object.
        (objs[450] + 40, MmError::InvalidFree(objs[450] + 40)),
        // Live object of another cache.
        (foreign, MmError::WrongCache(foreign)),
    ] {
        let start = 600 - e.info(k).active_objs as usize;
        let mut batch: Vec<u64> = objs[start..start + 150].to_vec();
        batch.push(bad);
        batch.extend_from_slice(&objs[start + 150..start + 200]);
        let r = e
            .slab
            .kmem_cache_free_bulk(&mut e.mem, &mut e.pages, k, &batch);
        assert_eq!(r, Err(mm::buddy::BulkError { done: 150, err }));
        // The 150 before it are freed, it and the ones after are untouched.
        assert_eq!(e.info(k).active_objs as usize, 600 - start - 150);
        for &v in &batch[151..] {
            assert_eq!(e.slab.ksize(&e.mem, &e.pages, v), Ok(64));
        }
        assert_eq!(e.slab.ksize(&e.mem, &e.pages, foreign), Ok(64));
        assert_eq!(e.validate_all(), 0);
        check_stats_pages(&e);
    }
    assert_eq!(e.slab.errors_total(), 0);
    // The rest in one call, in reverse order (runs of one slab downwards).
    let rest: Vec<u64> = objs[600 - e.info(k).active_objs as usize..]
        .iter()
        .rev()
        .copied()
        .collect();
    e.slab
        .kmem_cache_free_bulk(&mut e.mem, &mut e.pages, k, &rest)
        .unwrap();
    e.cfree(other, foreign).unwrap();
    assert_eq!(e.info(k).active_objs, 0);
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}

#[test]
fn bulk_alloc_takes_from_partial_slabs_and_is_all_or_nothing() {
    let mut e = Env::new(8192);
    let c = e.create("bulk_partial", 200, 0, SlabFlags::NONE);
    let mut objs = vec![0u64; 500];
    e.slab
        .kmem_cache_alloc_bulk(&mut e.mem, &mut e.pages, c, Gfp::KERNEL, &mut objs)
        .unwrap();
    let slabs = e.info(c).num_slabs;
    // Every other object back: the slabs are all partial.
    let (odd, even): (Vec<u64>, Vec<u64>) = objs.iter().partition(|&&v| (v / 224) % 2 == 1);
    e.slab
        .kmem_cache_free_bulk(&mut e.mem, &mut e.pages, c, &odd)
        .unwrap();
    e.slab
        .kmem_cache_shrink(&mut e.mem, &mut e.pages, c)
        .unwrap();
    assert_eq!(e.validate_all(), 0);
    // Taking as many again needs no new slab: they come from the partial slabs
    // (the freed ones and the never used end of the last slab).
    let mut again = vec![0u64; odd.len()];
    e.slab
        .kmem_cache_alloc_bulk(&mut e.mem, &mut e.pages, c, Gfp::KERNEL, &mut again)
        .unwrap();
    assert_eq!(e.info(c).num_slabs, slabs);
    let mut a = again.clone();
    a.sort_unstable();
    a.dedup();
    assert_eq!(a.len(), odd.len());
    assert!(again.iter().all(|v| !even.contains(v)));
    assert_eq!(e.info(c).active_objs as usize, even.len() + again.len());
    assert_eq!(e.validate_all(), 0);
    // Out of memory half way: nothing is allocated.
    let live = e.info(c).active_objs;
    e.pages.budget = Some(2);
    let mut big = vec![0u64; 400];
    assert_eq!(
        e.slab
            .kmem_cache_alloc_bulk(&mut e.mem, &mut e.pages, c, Gfp::KERNEL, &mut big),
        Err(MmError::OutOfMemory)
    );
    e.pages.budget = None;
    assert_eq!(e.info(c).active_objs, live);
    assert_eq!(e.validate_all(), 0);
    let all: Vec<u64> = even.into_iter().chain(again).collect();
    e.slab
        .kmem_cache_free_bulk(&mut e.mem, &mut e.pages, c, &all)
        .unwrap();
    e.slab
        .kmem_cache_destroy(&mut e.mem, &mut e.pages, c)
        .unwrap();
    e.shrink_all();
    assert_eq!(e.pages.outstanding(), 0);
}
