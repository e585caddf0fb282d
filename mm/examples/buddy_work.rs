//! Page-allocation workloads of memkern's buddy allocator and its peers, shared by
//! `benches/buddy.rs` (timing) and this binary (instruction counts under callgrind).
//!
//! ```text
//! buddy_work <allocator> <order> <iterations> [pairs | batch | batch B [seq|rev|rand] | bulk B [seq|rev|rand]]
//!   allocator: memkern | memkern-zone | memkern-slab | bsa-frame | bsa-heap | talc | rlsf
//!     (memkern-slab: the slab's page provider, `alloc_slab_block(order, GFP_KERNEL)` /
//!     `free_slab_block`, with a slab bitmap over the whole mem_map)
//!   pairs (default): <iterations> times alloc one block of 2^order pages, free it
//!   batch: <iterations> times alloc 64 blocks, free them in reverse order
//!   batch B o: <iterations> times alloc B blocks by single calls, free them one call
//!     each in allocation order (seq), reverse (rev) or a fixed random order (rand)
//!   bulk B o: the same with alloc_pages_bulk / free_pages_bulk (memkern, order 0)
//! ```
//!
//! Instructions per pair = difference of two callgrind runs divided by the difference
//! of iterations (this cancels set-up and process start):
//!
//! ```text
//! cargo build --release -p mm --example buddy_work
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/buddy_work memkern 0 1000000
//! # per block of a batch: (I(60) - I(30)) / (30 * B)
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/buddy_work bsa-heap 0 30 batch 1024 seq
//! ```
//!
//! Every allocator gets the same 64 MiB arena (4 MiB aligned) and 4 KiB-aligned,
//! naturally aligned blocks (`Layout(4096 << order, 4096 << order)` for the heaps).

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;

use mm::buddy::Buddy;
use mm::{Gfp, Page, PageFlags, PageProvider, Pfn, Zone};

/// Arena size shared by every allocator.
pub const ARENA: usize = 64 << 20;
/// Blocks kept live at once by the batch workload.
pub const BATCH: usize = 64;

/// One allocator under test: allocate / free a naturally aligned block of 2^order pages.
pub trait PageAlloc {
    fn alloc(&mut self, order: u32) -> usize;
    fn free(&mut self, block: usize, order: u32);
}

fn arena(bytes: usize) -> *mut u8 {
    let layout = Layout::from_size_align(bytes, 4 << 20).unwrap();
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
        Memkern::with_arena(ARENA)
    }
    /// RAM of `bytes` (a multiple of 4 MiB) above 16 MiB, all ZONE_NORMAL.
    pub fn with_arena(bytes: usize) -> Memkern {
        let pages = (bytes >> 12) as u32;
        let map: &'static mut [Page] =
            vec![Page::reserved(Zone::Dma); (4096 + pages) as usize].leak();
        let end = Pfn(4096 + pages);
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

/// memkern as the slab allocator's page provider (`PageProvider::alloc_slab_block` /
/// `free_slab_block`, what a slab grow / release costs in the buddy allocator), with
/// a slab liveness bitmap over the whole mem_map.
pub struct MemkernSlab(pub Memkern);

impl MemkernSlab {
    pub fn with_arena(bytes: usize) -> MemkernSlab {
        let mut m = Memkern::with_arena(bytes);
        let words = Buddy::slab_bits_words(m.0.max_pfn().0);
        m.0.attach_slab_bits(vec![0u64; words].leak());
        MemkernSlab(m)
    }
}

impl PageAlloc for MemkernSlab {
    #[inline(always)]
    fn alloc(&mut self, order: u32) -> usize {
        PageProvider::alloc_slab_block(&mut self.0 .0, order, Gfp::KERNEL)
            .unwrap()
            .index()
    }
    #[inline(always)]
    fn free(&mut self, block: usize, order: u32) {
        PageProvider::free_slab_block(&mut self.0 .0, Pfn(block as u32), order).unwrap()
    }
}

/// buddy_system_allocator::FrameAllocator over the arena's frame numbers.
pub struct BsaFrame(buddy_system_allocator::FrameAllocator<32>);

impl BsaFrame {
    pub fn new() -> BsaFrame {
        BsaFrame::with_arena(ARENA)
    }
    pub fn with_arena(bytes: usize) -> BsaFrame {
        let base = arena(bytes) as usize >> 12;
        let mut f = buddy_system_allocator::FrameAllocator::<32>::new();
        f.add_frame(base, base + (bytes >> 12));
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
        BsaHeap::with_arena(ARENA)
    }
    pub fn with_arena(bytes: usize) -> BsaHeap {
        let mut h = buddy_system_allocator::Heap::<32>::new();
        // SAFETY: the arena is valid, unused memory for the rest of the process.
        unsafe { h.init(arena(bytes) as usize, bytes) };
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
        Talc::with_arena(ARENA)
    }
    pub fn with_arena(bytes: usize) -> Talc {
        let mut t = talc::base::Talc::new(talc::source::Manual);
        // SAFETY: the arena is valid, unused memory for the rest of the process.
        unsafe { t.claim(arena(bytes), bytes).unwrap() };
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
        Rlsf::with_arena(ARENA)
    }
    pub fn with_arena(bytes: usize) -> Rlsf {
        let mut t = rlsf::Tlsf::new();
        let block = NonNull::slice_from_raw_parts(NonNull::new(arena(bytes)).unwrap(), bytes);
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

/// How a batch is freed: in allocation order, in reverse, or in a random order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Order {
    Seq,
    Rev,
    Rand,
}

/// The order in which [`batch_free`] frees `b` blocks (indices into the batch); a
/// fixed seed, so every allocator sees the same permutation.
pub fn permutation(b: usize, order: Order) -> Vec<u32> {
    let mut p: Vec<u32> = (0..b as u32).collect();
    match order {
        Order::Seq => {}
        Order::Rev => p.reverse(),
        Order::Rand => {
            let mut rng = mm::sim::Rng(0x5eed_ba7c);
            for i in (1..b).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                p.swap(i, j);
            }
        }
    }
    p
}

/// Arena bytes for batches of `b` blocks of `order`: 64 MiB, or three times the batch
/// (the heaps lose up to a block of padding and a header per block), 4 MiB aligned.
pub fn arena_for(order: u32, b: usize) -> usize {
    let need = (b << order) * 4096 * 3;
    need.max(ARENA).next_multiple_of(4 << 20)
}

/// `rounds` times: allocate `v.len()` blocks of `order` by single calls, then free
/// them one call each in the order `perm`.
#[inline(never)]
pub fn batch_free<A: PageAlloc>(a: &mut A, order: u32, rounds: u64, v: &mut [usize], perm: &[u32]) {
    for _ in 0..rounds {
        for x in v.iter_mut() {
            *x = a.alloc(order);
        }
        let v = black_box(&*v);
        for &i in perm {
            a.free(v[i as usize], order);
        }
    }
}

/// `rounds` times: `alloc_pages_bulk` of `v.len()` order-0 pages, then
/// `free_pages_bulk` of them in the order `perm` (applied to the array outside the
/// loop: the bulk free takes the array as it is).
#[inline(never)]
pub fn bulk(b: &mut Buddy<'static>, rounds: u64, v: &mut [Pfn], perm: &[u32]) {
    let mut w = v.to_vec();
    for _ in 0..rounds {
        let n = b.alloc_pages_bulk(Gfp::KERNEL, v).unwrap();
        assert_eq!(n, v.len());
        if perm.first() == Some(&0) && perm.len() > 1 && perm[1] == 1 {
            b.free_pages_bulk(black_box(&*v)).unwrap();
        } else {
            for (dst, &i) in w.iter_mut().zip(perm) {
                *dst = v[i as usize];
            }
            b.free_pages_bulk(black_box(&w)).unwrap();
        }
    }
}

/// The allocators by command-line name.
pub const NAMES: [&str; 7] = [
    "memkern",
    "memkern-zone",
    "memkern-slab",
    "bsa-frame",
    "bsa-heap",
    "talc",
    "rlsf",
];

/// A workload of the command line.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    Pairs,
    /// 64 blocks, freed in reverse (the old `batch`).
    Batch64,
    /// `B` blocks by single calls, freed in an [`Order`].
    Batch(usize, Order),
    /// `B` order-0 pages by the bulk APIs (memkern only), freed in an [`Order`].
    Bulk(usize, Order),
}

fn run<A: PageAlloc>(mut a: A, order: u32, n: u64, mode: Mode) {
    // Warm up (first splits, cache fill) before the counted part.
    pairs(&mut a, order, 16);
    match mode {
        Mode::Pairs => pairs(&mut a, order, n),
        Mode::Batch64 => batch(&mut a, order, n),
        Mode::Batch(b, o) => {
            let mut v = vec![0usize; b];
            let perm = permutation(b, o);
            batch_free(&mut a, order, 1, &mut v, &perm);
            batch_free(&mut a, order, n, &mut v, &perm);
        }
        Mode::Bulk(..) => panic!("bulk is memkern's API (allocator memkern)"),
    }
}

fn parse_order(s: Option<&String>) -> Order {
    match s.map(String::as_str) {
        None | Some("seq") => Order::Seq,
        Some("rev") => Order::Rev,
        Some("rand") => Order::Rand,
        Some(o) => panic!("unknown free order {o} (seq, rev, rand)"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!(
            "usage: {} <{}> <order> <iterations> [pairs | batch | batch B [seq|rev|rand] | bulk B [seq|rev|rand]]",
            args[0],
            NAMES.join("|")
        );
        std::process::exit(2);
    }
    let order: u32 = args[2].parse().expect("order");
    let n: u64 = args[3].parse().expect("iterations");
    let size = |i: usize| -> usize { args[i].parse().expect("batch size B") };
    let mode = match args.get(4).map(String::as_str) {
        None | Some("pairs") => Mode::Pairs,
        Some("batch") if args.len() == 5 => Mode::Batch64,
        Some("batch") => Mode::Batch(size(5), parse_order(args.get(6))),
        Some("bulk") => Mode::Bulk(size(5), parse_order(args.get(6))),
        Some(m) => panic!("unknown mode {m}"),
    };
    let bytes = match mode {
        Mode::Batch(b, _) | Mode::Bulk(b, _) => arena_for(order, b),
        _ => ARENA,
    };
    match args[1].as_str() {
        "memkern" => match mode {
            Mode::Bulk(b, o) => {
                assert_eq!(order, 0, "alloc_pages_bulk hands out order-0 pages");
                let mut m = Memkern::with_arena(bytes);
                let mut v = vec![Pfn(0); b];
                let perm = permutation(b, o);
                bulk(&mut m.0, 1, &mut v, &perm);
                bulk(&mut m.0, n, &mut v, &perm);
            }
            _ => run(Memkern::with_arena(bytes), order, n, mode),
        },
        "memkern-zone" => run(MemkernZone(Memkern::with_arena(bytes)), order, n, mode),
        "memkern-slab" => run(MemkernSlab::with_arena(bytes), order, n, mode),
        "bsa-frame" => run(BsaFrame::with_arena(bytes), order, n, mode),
        "bsa-heap" => run(BsaHeap::with_arena(bytes), order, n, mode),
        "talc" => run(Talc::with_arena(bytes), order, n, mode),
        "rlsf" => run(Rlsf::with_arena(bytes), order, n, mode),
        other => panic!("unknown allocator {other}"),
    }
}
