//! The slab benchmark workloads, runnable on their own (for `valgrind --tool=callgrind`)
//! and included by `benches/slab.rs`.
//!
//! ```text
//! cargo build --release -p mm --example slab_work
//! slab_work <allocator> <workload> <iterations>
//!   allocator: memkern talc rlsf linked_list buddy_system slabmalloc system mimalloc
//!              null (no allocator: the harness alone)
//!   workload:  w1 (kmalloc(80)/kfree LIFO pair)
//!              w2 (10,000 live objects, sizes 2^5..2^12 aligned to size:
//!                  free a random one, allocate a new one)
//!              batch:B:SIZE (allocate B objects of SIZE bytes, SIZE 0 = the W2
//!                  mix, then free them all in allocation order; per round)
//!              bulk:B:SIZE (memkern only: the same through
//!                  kmem_cache_alloc_bulk/kmem_cache_free_bulk on kmalloc-SIZE)
//! ```
//!
//! Instructions per operation = (Ir(2N) - Ir(N)) / N: setup cancels out.
//!
//! Every allocator gets the same 64 MiB arena (memkern: a 64 MiB simulated machine
//! under the real buddy allocator; the peers: a 64 MiB, 2 MiB-aligned host buffer).
//! Peers are driven through their own raw APIs (no locks).
#![allow(dead_code, clippy::new_without_default)]

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::ptr::NonNull;

use mm::buddy::Buddy;
use mm::sim::SimMem;
use mm::slab::Slab;
use mm::{Gfp, Page, Pfn, Zone, PAGE_SIZE};

/// Arena of every allocator.
pub const ARENA: usize = 64 << 20;
/// The arena size in use: [`ARENA`], or larger for the big batches (set once by
/// `main` before any allocator is made).
static ARENA_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(ARENA);

/// Sets the arena size of the allocators made from now on.
pub fn set_arena_bytes(bytes: usize) {
    ARENA_BYTES.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The arena size every allocator of this run gets.
pub fn arena_bytes() -> usize {
    ARENA_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}
/// Live objects in W2.
pub const W2_LIVE: usize = 10_000;

/// The minimal interface the workloads drive.
pub trait Alloc {
    fn alloc(&mut self, size: usize, align: usize) -> usize;
    fn free(&mut self, ptr: usize, size: usize, align: usize);
}

// ----------------------------------------------------------------------------
// memkern
// ----------------------------------------------------------------------------

/// memkern's slab over the real buddy allocator on a 64 MiB machine. The `Slab`
/// is held inline, not boxed, as the kernel holds it in a `static`.
pub struct Memkern {
    pub slab: Slab,
    pub mem: SimMem,
    pub buddy: Buddy<'static>,
}

impl Memkern {
    pub fn new() -> Memkern {
        let npages = (arena_bytes() / PAGE_SIZE) as u32;
        let map: &'static mut [Page] =
            Box::leak(vec![Page::reserved(Zone::Dma); npages as usize].into_boxed_slice());
        let mut buddy = Buddy::page_init(map, Pfn(npages), &[(Pfn(1), Pfn(npages))], &[]).unwrap();
        // The slab liveness bitmap over the whole arena.
        let bits = vec![0u64; Buddy::slab_bits_words(npages)];
        buddy.attach_slab_bits(Box::leak(bits.into_boxed_slice()));
        Memkern {
            slab: Slab::new(),
            mem: SimMem::new(arena_bytes(), 0),
            buddy,
        }
    }
}

impl Alloc for Memkern {
    #[inline]
    fn alloc(&mut self, size: usize, _align: usize) -> usize {
        // kmalloc objects are aligned to their power-of-two size. Out of memory
        // returns 0 (a caller's null check), like the peers' wrappers panic on it.
        self.slab
            .kmalloc(&mut self.mem, &mut self.buddy, size, Gfp::KERNEL)
            .unwrap_or(0) as usize
    }
    #[inline]
    fn free(&mut self, ptr: usize, _size: usize, _align: usize) {
        // Like `kfree` in C, the caller does not look at the result (the peers'
        // deallocation functions return nothing either); tests check it.
        let r = self.slab.kfree(&mut self.mem, &mut self.buddy, ptr as u64);
        debug_assert!(r.is_ok());
    }
}

// ----------------------------------------------------------------------------
// Peers
// ----------------------------------------------------------------------------

/// A 64 MiB, 2 MiB-aligned host buffer (leaked).
fn arena() -> *mut u8 {
    let l = Layout::from_size_align(arena_bytes(), 2 << 20).unwrap();
    // SAFETY: non-zero size.
    let p = unsafe { std::alloc::alloc(l) };
    assert!(!p.is_null());
    p
}

#[inline]
fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

pub struct TalcPeer(talc::base::Talc<talc::source::Manual, talc::DefaultBinning>);

impl TalcPeer {
    pub fn new() -> TalcPeer {
        let mut t = talc::base::Talc::new(talc::source::Manual);
        // SAFETY: the arena is ours for ever.
        unsafe { t.claim(arena(), arena_bytes()).unwrap() };
        TalcPeer(t)
    }
}

impl Alloc for TalcPeer {
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> usize {
        // SAFETY: non-zero size.
        unsafe { self.0.allocate(layout(size, align)) }
            .expect("talc: out of memory")
            .as_ptr() as usize
    }
    #[inline]
    fn free(&mut self, ptr: usize, size: usize, align: usize) {
        // SAFETY: allocated with this layout.
        unsafe { self.0.deallocate(ptr as *mut u8, layout(size, align)) }
    }
}

pub struct RlsfPeer(rlsf::Tlsf<'static, u32, u32, 24, 32>);

impl RlsfPeer {
    pub fn new() -> RlsfPeer {
        let mut t = rlsf::Tlsf::new();
        let block = std::ptr::slice_from_raw_parts_mut(arena(), arena_bytes());
        // SAFETY: the arena is ours for ever.
        unsafe { t.insert_free_block_ptr(NonNull::new(block).unwrap()) };
        RlsfPeer(t)
    }
}

impl Alloc for RlsfPeer {
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> usize {
        self.0
            .allocate(layout(size, align))
            .expect("rlsf: out of memory")
            .as_ptr() as usize
    }
    #[inline]
    fn free(&mut self, ptr: usize, _size: usize, align: usize) {
        // SAFETY: allocated by this Tlsf with this alignment.
        unsafe {
            self.0
                .deallocate(NonNull::new_unchecked(ptr as *mut u8), align)
        }
    }
}

pub struct LinkedListPeer(linked_list_allocator::Heap);

impl LinkedListPeer {
    pub fn new() -> LinkedListPeer {
        let mut h = linked_list_allocator::Heap::empty();
        // SAFETY: the arena is ours for ever.
        unsafe { h.init(arena(), arena_bytes()) };
        LinkedListPeer(h)
    }
}

impl Alloc for LinkedListPeer {
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> usize {
        self.0
            .allocate_first_fit(layout(size, align))
            .expect("linked_list_allocator: out of memory")
            .as_ptr() as usize
    }
    #[inline]
    fn free(&mut self, ptr: usize, size: usize, align: usize) {
        // SAFETY: allocated with this layout.
        unsafe {
            self.0
                .deallocate(NonNull::new_unchecked(ptr as *mut u8), layout(size, align))
        }
    }
}

pub struct BuddySystemPeer(buddy_system_allocator::Heap<32>);

impl BuddySystemPeer {
    pub fn new() -> BuddySystemPeer {
        let mut h = buddy_system_allocator::Heap::<32>::new();
        // SAFETY: the arena is ours for ever.
        unsafe { h.init(arena() as usize, arena_bytes()) };
        BuddySystemPeer(h)
    }
}

impl Alloc for BuddySystemPeer {
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> usize {
        self.0
            .alloc(layout(size, align))
            .expect("buddy_system_allocator: out of memory")
            .as_ptr() as usize
    }
    #[inline]
    fn free(&mut self, ptr: usize, size: usize, align: usize) {
        // SAFETY: non-null, allocated with this layout.
        self.0.dealloc(
            unsafe { NonNull::new_unchecked(ptr as *mut u8) },
            layout(size, align),
        )
    }
}

/// slabmalloc 0.11 (built with `default-features = false`: its `unstable` feature
/// needs nightly). Pages come from the arena: 2 MiB pages (objects above 256 bytes)
/// bumped from the bottom, 4 KiB pages (objects up to 256 bytes) from the top.
pub struct SlabmallocPeer {
    zone: slabmalloc::ZoneAllocator<'static>,
    lo: usize,
    hi: usize,
}

impl SlabmallocPeer {
    pub fn new() -> SlabmallocPeer {
        let a = arena() as usize;
        SlabmallocPeer {
            zone: slabmalloc::ZoneAllocator::new(),
            lo: a,
            hi: a + arena_bytes(),
        }
    }
    fn page(&mut self, size: usize) -> usize {
        assert!(self.lo + size <= self.hi, "slabmalloc: arena exhausted");
        if size == 4096 {
            self.hi -= size;
            self.hi
        } else {
            self.lo += size;
            self.lo - size
        }
    }
}

impl Alloc for SlabmallocPeer {
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> usize {
        use slabmalloc::{AllocationError, Allocator};
        let l = layout(size, align);
        match self.zone.allocate(l) {
            Ok(p) => p.as_ptr() as usize,
            Err(AllocationError::OutOfMemory) => {
                // Rebalance first (full -> partial lists; slabmalloc's free cannot),
                // and only then give it a new page.
                let base = size <= slabmalloc::ZoneAllocator::MAX_BASE_ALLOC_SIZE;
                if base {
                    self.zone.try_reclaim_base_pages(0, |_| {});
                } else {
                    self.zone.try_reclaim_large_pages(0, |_| {});
                }
                if let Ok(p) = self.zone.allocate(l) {
                    return p.as_ptr() as usize;
                }
                if base {
                    let p = self.page(4096);
                    // SAFETY: a fresh, 4 KiB-aligned page of the arena.
                    unsafe {
                        let page = &mut *(p as *mut slabmalloc::ObjectPage<'static>);
                        self.zone.refill(l, page).unwrap();
                    }
                } else {
                    let p = self.page(2 << 20);
                    // SAFETY: a fresh, 2 MiB-aligned region of the arena.
                    unsafe {
                        let page = &mut *(p as *mut slabmalloc::LargeObjectPage<'static>);
                        self.zone.refill_large(l, page).unwrap();
                    }
                }
                self.zone.allocate(l).unwrap().as_ptr() as usize
            }
            Err(e) => panic!("slabmalloc: {e:?}"),
        }
    }
    #[inline]
    fn free(&mut self, ptr: usize, size: usize, align: usize) {
        use slabmalloc::Allocator;
        // SAFETY: non-null.
        let p = unsafe { NonNull::new_unchecked(ptr as *mut u8) };
        self.zone.deallocate(p, layout(size, align)).unwrap();
    }
}

/// No allocator at all (returns a fixed address): the cost of the harness itself.
pub struct Null;

impl Alloc for Null {
    #[inline]
    fn alloc(&mut self, size: usize, _align: usize) -> usize {
        black_box(size)
    }
    #[inline]
    fn free(&mut self, ptr: usize, _size: usize, _align: usize) {
        black_box(ptr);
    }
}

/// A `GlobalAlloc` (the host's `System`, mimalloc) as a reference point.
pub struct Global<G: GlobalAlloc>(pub G);

impl<G: GlobalAlloc> Alloc for Global<G> {
    #[inline]
    fn alloc(&mut self, size: usize, align: usize) -> usize {
        // SAFETY: non-zero size.
        let p = unsafe { self.0.alloc(layout(size, align)) };
        assert!(!p.is_null());
        p as usize
    }
    #[inline]
    fn free(&mut self, ptr: usize, size: usize, align: usize) {
        // SAFETY: allocated with this layout.
        unsafe { self.0.dealloc(ptr as *mut u8, layout(size, align)) }
    }
}

// ----------------------------------------------------------------------------
// Workloads
// ----------------------------------------------------------------------------

/// W1: `kmalloc(80)` then `kfree` (LIFO pair). Peers get `Layout(80, 8)`.
#[inline]
pub fn w1_step<A: Alloc>(a: &mut A) {
    let p = a.alloc(black_box(80), 8);
    a.free(black_box(p), 80, 8);
}

/// W2 state: 10,000 live objects of random power-of-two sizes 32..=4096, each
/// aligned to its size.
pub struct W2 {
    /// A fixed-size array: the slot index is provably in range (no bounds check
    /// in the harness).
    slots: Box<[(usize, usize); W2_LIVE]>,
    rng: u64,
}

impl W2 {
    /// The next number of a 64-bit LCG (Knuth's MMIX constants). Its high bits
    /// are good; the step uses bits 32..64 for the slot and 29..32 for the size,
    /// which are independent. Two instructions: the harness stays small next to
    /// the allocators it measures.
    #[inline(always)]
    fn next(&mut self) -> u64 {
        self.rng = self
            .rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.rng
    }

    /// Fills the live set and runs 100,000 steps to reach the steady state.
    pub fn new<A: Alloc>(a: &mut A) -> W2 {
        let mut w = W2 {
            slots: Box::new([(0, 0); W2_LIVE]),
            rng: 0x9e37_79b9_7f4a_7c15,
        };
        for i in 0..W2_LIVE {
            let size = 32usize << (w.next() >> 29 & 7);
            w.slots[i] = (a.alloc(size, size), size);
        }
        for _ in 0..100_000 {
            w.step(a);
        }
        w
    }

    /// Frees a random live object and allocates a new one of a random size.
    #[inline(always)]
    pub fn step<A: Alloc>(&mut self, a: &mut A) {
        let r = self.next();
        let j = (((r >> 32) * W2_LIVE as u64) >> 32) as usize;
        let size = 32usize << (r >> 29 & 7);
        let (p, s) = self.slots[j];
        a.free(p, s, s);
        self.slots[j] = (a.alloc(size, size), size);
    }
}

/// Slab batch: `rounds` times, allocate `objs.len()` objects (all of `size`
/// bytes, or with `size == 0` the W2 mix: power-of-two sizes 32..=4096 aligned
/// to their size, from the same generator), then free them all in allocation
/// order.
#[inline(never)]
pub fn batch<A: Alloc>(a: &mut A, size: usize, rounds: u64, objs: &mut [(usize, usize)]) {
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..rounds {
        for o in objs.iter_mut() {
            let s = if size == 0 {
                rng = rng
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                32usize << (rng >> 29 & 7)
            } else {
                size
            };
            *o = (a.alloc(s, s.min(4096)), s);
        }
        for &(p, s) in black_box(&*objs).iter() {
            a.free(p, s, s.min(4096));
        }
    }
}

/// `batch` through memkern's `kmem_cache_alloc_bulk`/`kmem_cache_free_bulk` on
/// the kmalloc cache of `size`, against which the loop of single calls is
/// measured.
#[inline(never)]
pub fn bulk(m: &mut Memkern, size: usize, rounds: u64, objs: &mut [u64]) {
    let c = m.slab.kmalloc_cache(size, false).unwrap();
    for _ in 0..rounds {
        let n = m
            .slab
            .kmem_cache_alloc_bulk(&mut m.mem, &mut m.buddy, c, Gfp::KERNEL, objs)
            .unwrap();
        assert_eq!(n, objs.len());
        m.slab
            .kmem_cache_free_bulk(&mut m.mem, &mut m.buddy, c, black_box(&*objs))
            .unwrap();
    }
}

/// Runs `iters` steps of `workload` on a fresh `A` (setup included).
pub fn run<A: Alloc>(mut a: A, workload: &str, iters: u64) {
    match workload {
        "w1" => {
            for _ in 0..iters {
                w1_step(&mut a);
            }
        }
        "w2" => {
            let mut w = W2::new(&mut a);
            for _ in 0..iters {
                w.step(&mut a);
            }
            black_box(&w.slots);
        }
        w => {
            // batch:B:SIZE (SIZE 0 = the W2 mix)
            let mut parts = w.split(':');
            let (Some("batch"), Some(b), Some(size)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("unknown workload {workload} (w1, w2, batch:B:SIZE, bulk:B:SIZE)")
            };
            let b: usize = b.parse().expect("B");
            let size: usize = size.parse().expect("SIZE");
            let mut objs = vec![(0usize, 0usize); b];
            batch(&mut a, size, 1, &mut objs);
            batch(&mut a, size, iters, &mut objs);
        }
    }
    black_box(&a);
}

/// Every allocator name, in report order.
pub const ALLOCATORS: [&str; 8] = [
    "memkern",
    "talc",
    "rlsf",
    "linked_list",
    "buddy_system",
    "slabmalloc",
    "system",
    "mimalloc",
];

/// Runs a workload on an allocator chosen by name.
pub fn run_named(allocator: &str, workload: &str, iters: u64) {
    match allocator {
        "memkern" => run(Memkern::new(), workload, iters),
        "talc" => run(TalcPeer::new(), workload, iters),
        "rlsf" => run(RlsfPeer::new(), workload, iters),
        "linked_list" => run(LinkedListPeer::new(), workload, iters),
        "buddy_system" => run(BuddySystemPeer::new(), workload, iters),
        "slabmalloc" => run(SlabmallocPeer::new(), workload, iters),
        "system" => run(Global(std::alloc::System), workload, iters),
        "mimalloc" => run(Global(mimalloc::MiMalloc), workload, iters),
        "null" => run(Null, workload, iters),
        _ => panic!("unknown allocator {allocator} ({ALLOCATORS:?})"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!(
            "usage: slab_work <allocator> <w1|w2> <iterations>\n  allocators: {ALLOCATORS:?}"
        );
        std::process::exit(2);
    }
    let iters: u64 = args[3].parse().expect("iterations");
    let w = &args[2];
    if let Some(rest) = w.strip_prefix("batch:").or(w.strip_prefix("bulk:")) {
        // Room for B objects of up to 4 KiB (the mix) or SIZE, twice over.
        let mut parts = rest.split(':');
        let b: usize = parts.next().and_then(|x| x.parse().ok()).expect("B");
        let size: usize = parts.next().and_then(|x| x.parse().ok()).expect("SIZE");
        let each = if size == 0 {
            4096
        } else {
            size.next_power_of_two()
        };
        // slabmalloc takes a 2 MiB page for at most 512 objects above its base
        // sizes (a quarter of it for 1 KiB objects) and never gives pages back
        // to the arena: four times as much room.
        let over = if args[1] == "slabmalloc" { 4 } else { 1 };
        let bytes = (b * each * 2 * over).max(ARENA).next_multiple_of(4 << 20);
        set_arena_bytes(bytes);
    }
    if let Some(rest) = w.strip_prefix("bulk:") {
        assert_eq!(args[1], "memkern", "bulk is memkern's API");
        let mut parts = rest.split(':');
        let b: usize = parts.next().and_then(|x| x.parse().ok()).expect("B");
        let size: usize = parts.next().and_then(|x| x.parse().ok()).expect("SIZE");
        let mut m = Memkern::new();
        let mut objs = vec![0u64; b];
        bulk(&mut m, size, 1, &mut objs);
        bulk(&mut m, size, iters, &mut objs);
        return;
    }
    run_named(&args[1], w, iters);
}
