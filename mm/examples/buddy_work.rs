//! Page-allocation workloads of memkern's buddy allocator and its peers, shared by
//! `benches/buddy.rs` (timing) and this binary (instruction counts under callgrind).
//!
//! ```text
//! buddy_work <allocator> <order> <iterations> [pairs|batch]
//!   allocator: memkern | memkern-zone | bsa-frame | bsa-heap | talc | rlsf
//!   pairs (default): <iterations> times alloc one block of 2^order pages, free it
//!   batch: <iterations> times alloc 64 blocks, free them in reverse order
//! ```
//!
//! Instructions per pair = difference of two callgrind runs divided by the difference
//! of iterations (this cancels set-up and process start):
//!
//! ```text
//! cargo build --release -p mm --example buddy_work
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     /tmp/target-buddy/release/examples/buddy_work memkern 0 1000000
//! ```
//!
//! Every allocator gets the same 64 MiB arena (4 MiB aligned) and 4 KiB-aligned,
//! naturally aligned blocks (`Layout(4096 << order, 4096 << order)` for the heaps).

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;

use mm::buddy::Buddy;
use mm::{Gfp, Page, PageFlags, Pfn, Zone};

/// Arena size shared by every allocator.
pub const ARENA: usize = 64 << 20;
const ARENA_PAGES: u32 = (ARENA >> 12) as u32;
/// Blocks kept live at once by the batch workload.
pub const BATCH: usize = 64;

/// One allocator under test: allocate / free a naturally aligned block of 2^order pages.
pub trait PageAlloc {
    fn alloc(&mut self, order: u32) -> usize;
    fn free(&mut self, block: usize, order: u32);
}

fn arena() -> *mut u8 {
    let layout = Layout::from_size_align(ARENA, 4 << 20).unwrap();
    // SAFETY: non-zero size; leaked on purpose (the allocators keep using it).
    let p = unsafe { std::alloc::alloc(layout) };
    assert!(!p.is_null());
    p
}

fn layout(order: u32) -> Layout {
    Layout::from_size_align(4096 << order, 4096 << order).unwrap()
}

/// memkern: the Linux API (`alloc_pages(GFP_KERNEL, order)` / `__free_pages`) over a
/// mem_map whose RAM is the 64 MiB of ZONE_NORMAL right above 16 MiB.
pub struct Memkern(pub Buddy<'static>);

impl Memkern {
    pub fn new() -> Memkern {
        let map: &'static mut [Page] =
            vec![Page::reserved(Zone::Dma); (4096 + ARENA_PAGES) as usize].leak();
        let end = Pfn(4096 + ARENA_PAGES);
        Memkern(Buddy::page_init(map, end, &[(Pfn(4096), end)], &[]).unwrap())
    }
}

impl Default for Memkern {
    fn default() -> Self {
        Memkern::new()
    }
}

impl PageAlloc for Memkern {
    #[inline(always)]
    fn alloc(&mut self, order: u32) -> usize {
        self.0.alloc_pages(Gfp::KERNEL, order).unwrap().index()
    }
    #[inline(always)]
    fn free(&mut self, block: usize, order: u32) {
        self.0.__free_pages(Pfn(block as u32), order).unwrap()
    }
}

/// memkern through the DragonOS API (`alloc_pages(ZONE_NORMAL, 2^order, 0)` /
/// `free_pages(page, 2^order)`); orders 0..=5.
pub struct MemkernZone(pub Memkern);

impl PageAlloc for MemkernZone {
    #[inline(always)]
    fn alloc(&mut self, order: u32) -> usize {
        let b = &mut self.0 .0;
        b.alloc_pages_zone(Zone::Normal, 1 << order, PageFlags::EMPTY)
            .unwrap()
            .index()
    }
    #[inline(always)]
    fn free(&mut self, block: usize, order: u32) {
        self.0
             .0
            .free_pages_count(Pfn(block as u32), 1 << order)
            .unwrap()
    }
}

/// buddy_system_allocator::FrameAllocator over the arena's frame numbers.
pub struct BsaFrame(buddy_system_allocator::FrameAllocator<32>);

impl BsaFrame {
    pub fn new() -> BsaFrame {
        let base = arena() as usize >> 12;
        let mut f = buddy_system_allocator::FrameAllocator::<32>::new();
        f.add_frame(base, base + ARENA_PAGES as usize);
        BsaFrame(f)
    }
}

impl Default for BsaFrame {
    fn default() -> Self {
        BsaFrame::new()
    }
}

impl PageAlloc for BsaFrame {
    #[inline(always)]
    fn alloc(&mut self, order: u32) -> usize {
        self.0.alloc(1 << order).unwrap()
    }
    #[inline(always)]
    fn free(&mut self, block: usize, order: u32) {
        self.0.dealloc(block, 1 << order)
    }
}

/// buddy_system_allocator::Heap over the arena.
pub struct BsaHeap(buddy_system_allocator::Heap<32>);

impl BsaHeap {
    pub fn new() -> BsaHeap {
        let mut h = buddy_system_allocator::Heap::<32>::new();
        // SAFETY: the arena is valid, unused memory for the rest of the process.
        unsafe { h.init(arena() as usize, ARENA) };
        BsaHeap(h)
    }
}

impl Default for BsaHeap {
    fn default() -> Self {
        BsaHeap::new()
    }
}

impl PageAlloc for BsaHeap {
    #[inline(always)]
    fn alloc(&mut self, order: u32) -> usize {
        self.0.alloc(layout(order)).unwrap().as_ptr() as usize
    }
    #[inline(always)]
    fn free(&mut self, block: usize, order: u32) {
        self.0
            .dealloc(NonNull::new(block as *mut u8).unwrap(), layout(order))
    }
}

/// talc 5 with a manually claimed arena.
pub struct Talc(talc::base::Talc<talc::source::Manual, talc::DefaultBinning>);

impl Talc {
    pub fn new() -> Talc {
        let mut t = talc::base::Talc::new(talc::source::Manual);
        // SAFETY: the arena is valid, unused memory for the rest of the process.
        unsafe { t.claim(arena(), ARENA).unwrap() };
        Talc(t)
    }
}

impl Default for Talc {
    fn default() -> Self {
        Talc::new()
    }
}

impl PageAlloc for Talc {
    #[inline(always)]
    fn alloc(&mut self, order: u32) -> usize {
        // SAFETY: non-zero size.
        unsafe { self.0.allocate(layout(order)).unwrap().as_ptr() as usize }
    }
    #[inline(always)]
    fn free(&mut self, block: usize, order: u32) {
        // SAFETY: `block` was allocated by this allocator with this layout.
        unsafe { self.0.deallocate(block as *mut u8, layout(order)) }
    }
}

/// rlsf::Tlsf over the arena.
pub struct Rlsf(rlsf::Tlsf<'static, u32, u32, 28, 32>);

impl Rlsf {
    pub fn new() -> Rlsf {
        let mut t = rlsf::Tlsf::new();
        let block = NonNull::slice_from_raw_parts(NonNull::new(arena()).unwrap(), ARENA);
        // SAFETY: the arena is valid, unused memory for the rest of the process.
        unsafe { t.insert_free_block_ptr(block).unwrap() };
        Rlsf(t)
    }
}

impl Default for Rlsf {
    fn default() -> Self {
        Rlsf::new()
    }
}

impl PageAlloc for Rlsf {
    #[inline(always)]
    fn alloc(&mut self, order: u32) -> usize {
        self.0.allocate(layout(order)).unwrap().as_ptr() as usize
    }
    #[inline(always)]
    fn free(&mut self, block: usize, order: u32) {
        // SAFETY: `block` was allocated by this allocator with this alignment.
        unsafe {
            self.0
                .deallocate(NonNull::new(block as *mut u8).unwrap(), 4096 << order)
        }
    }
}

/// `n` alloc+free pairs of one block of `order`.
#[inline(never)]
pub fn pairs<A: PageAlloc>(a: &mut A, order: u32, n: u64) {
    for _ in 0..n {
        let x = a.alloc(order);
        a.free(black_box(x), order);
    }
}

/// `n` rounds of: allocate [`BATCH`] blocks of `order`, free them in reverse.
#[inline(never)]
pub fn batch<A: PageAlloc>(a: &mut A, order: u32, n: u64) {
    let mut v = [0usize; BATCH];
    for _ in 0..n {
        for x in v.iter_mut() {
            *x = a.alloc(order);
        }
        for &x in black_box(&v).iter().rev() {
            a.free(x, order);
        }
    }
}

/// The allocators by command-line name.
pub const NAMES: [&str; 6] = [
    "memkern",
    "memkern-zone",
    "bsa-frame",
    "bsa-heap",
    "talc",
    "rlsf",
];

fn run<A: PageAlloc>(mut a: A, order: u32, n: u64, batched: bool) {
    // Warm up (first splits, cache fill) before the counted part.
    pairs(&mut a, order, 16);
    if batched {
        batch(&mut a, order, n);
    } else {
        pairs(&mut a, order, n);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!(
            "usage: {} <{}> <order> <iterations> [pairs|batch]",
            args[0],
            NAMES.join("|")
        );
        std::process::exit(2);
    }
    let order: u32 = args[2].parse().expect("order");
    let n: u64 = args[3].parse().expect("iterations");
    let batched = match args.get(4).map(String::as_str) {
        None | Some("pairs") => false,
        Some("batch") => true,
        Some(m) => panic!("unknown mode {m}"),
    };
    match args[1].as_str() {
        "memkern" => run(Memkern::new(), order, n, batched),
        "memkern-zone" => run(MemkernZone(Memkern::new()), order, n, batched),
        "bsa-frame" => run(BsaFrame::new(), order, n, batched),
        "bsa-heap" => run(BsaHeap::new(), order, n, batched),
        "talc" => run(Talc::new(), order, n, batched),
        "rlsf" => run(Rlsf::new(), order, n, batched),
        other => panic!("unknown allocator {other}"),
    }
}
