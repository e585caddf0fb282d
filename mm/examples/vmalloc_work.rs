//! vmalloc workloads, shared by `benches/vmalloc.rs` (timing) and this binary
//! (instruction counts under callgrind).
//!
//! ```text
//! vmalloc_work <workload> <live> <iterations>
//!   vmalloc       vmalloc(64 KiB) + vfree, page tables a no-op (vmalloc + buddy only)
//!   vmalloc-fake  the same over the BTreeMap FakeMapper (one B-tree insert/remove per page)
//!   pages16       the floor: 16 x alloc_page(__GFP_HIGHMEM), then 16 x __free_page
//!   area          the area allocator alone: alloc 16 pages (+ guard) + free
//!   list-area     peer: linked_list_allocator (first fit, O(n)) doing the area
//!                 allocator's job, one 16-byte unit per page
//! ```
//!
//! Before the counted pairs each workload makes `live` live areas: it allocates
//! 2 x `live` areas of 1..=8 pages (seeded sizes) and frees every other one, so
//! the free space is fragmented into `live` holes, each too small for 64 KiB (the
//! counted area goes past them all, to the free space after the last area). Instructions per pair = the
//! difference of two callgrind runs divided by the difference of iterations:
//!
//! ```text
//! cargo build --release -p mm --example vmalloc_work
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/vmalloc_work vmalloc 10000 100000
//! ```

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;

use mm::buddy::Buddy;
use mm::sim::Rng;
use mm::vmalloc::area::AreaAlloc;
use mm::vmalloc::{
    AreaKind, CacheMode, FakeMapper, KernelMapper, Local, MapError, Prot, VmSpace, VMALLOC_GFP,
};
use mm::{layout, Page, Pfn, Zone};

/// The backend of a [`Vmalloc`]: its buddy and mapper (zeroing is not used).
macro_rules! be {
    ($s:expr) => {
        &mut Local {
            buddy: &mut $s.b,
            pt: &mut $s.pt,
            mem: &mut mm::sim::SparseMem::new(0, |_| 0),
        }
    };
}

/// Bytes of one counted vmalloc.
pub const SIZE: u64 = 64 << 10;
/// Its pages.
pub const PAGES: u64 = SIZE >> 12;
/// The simulated machine: 1 GiB, ZONE_UNMAPPED above 512 MiB.
const MACHINE_PAGES: u32 = 1 << 18;
const LOWMEM: u32 = 1 << 17;

/// One workload: a counted pair, after [`Work::populate`].
pub trait Work {
    /// Makes `live` live areas with fragmented free space between them.
    fn populate(&mut self, live: usize);
    /// One counted pair.
    fn pair(&mut self);
}

/// Sizes of the set-up areas (1..=8 pages), the same for every workload.
fn setup_sizes(live: usize) -> Vec<u64> {
    let mut r = Rng(0x7a11_0c47);
    (0..2 * live).map(|_| 1 + r.below(8)).collect()
}

/// Page tables that do nothing: measures vmalloc and the buddy alone.
pub struct NullMapper;

impl KernelMapper for NullMapper {
    #[inline]
    fn map_page(&mut self, _: u64, _: u64, _: Prot, _: CacheMode) -> Result<(), MapError> {
        Ok(())
    }
    #[inline]
    fn unmap_page(&mut self, _: u64) -> Result<u64, MapError> {
        Ok(0)
    }
    #[inline]
    fn flush(&mut self, _: u64, _: u64) {}
}

/// vmalloc over a real buddy allocator (1 GiB) and a mapper.
pub struct Vmalloc<M: KernelMapper> {
    pub v: VmSpace,
    pub b: Buddy<'static>,
    pub pt: M,
    /// `true`: the pair is [`pages16`](Self::pages16) instead of vmalloc+vfree.
    pub pages_only: bool,
}

impl<M: KernelMapper> Vmalloc<M> {
    pub fn new(pt: M) -> Vmalloc<M> {
        let map: &'static mut [Page] =
            vec![Page::reserved(Zone::Dma); MACHINE_PAGES as usize].leak();
        let b = Buddy::page_init(map, Pfn(LOWMEM), &[(Pfn(256), Pfn(MACHINE_PAGES))], &[]).unwrap();
        Vmalloc {
            v: VmSpace::new(),
            b,
            pt,
            pages_only: false,
        }
    }

    /// 16 order-0 frames of vmalloc's gfp, then freed: the page-allocation part
    /// of a 64 KiB vmalloc+vfree.
    #[inline]
    pub fn pages16(&mut self) {
        let mut p = [Pfn(0); PAGES as usize];
        for x in p.iter_mut() {
            *x = self.b.alloc_page(VMALLOC_GFP).unwrap();
        }
        for &x in black_box(&p).iter() {
            self.b.__free_page(x).unwrap();
        }
    }
}

impl<M: KernelMapper> Work for Vmalloc<M> {
    fn populate(&mut self, live: usize) {
        let areas: Vec<u64> = setup_sizes(live)
            .into_iter()
            .map(|n| self.v.vmalloc(n << 12, "setup", be!(self)).unwrap())
            .collect();
        for a in areas.into_iter().step_by(2) {
            self.v.vfree(a, be!(self)).unwrap();
        }
    }
    #[inline]
    fn pair(&mut self) {
        if self.pages_only {
            return self.pages16();
        }
        let a = self.v.vmalloc(SIZE, "bench", be!(self)).unwrap();
        self.v.vfree(black_box(a), be!(self)).unwrap();
    }
}

/// The area allocator alone, over the vmalloc range.
pub struct Area(pub AreaAlloc<()>);

impl Area {
    pub fn new() -> Area {
        Area(AreaAlloc::new(AreaKind::Vmalloc, layout::VMALLOC))
    }
}

impl Default for Area {
    fn default() -> Self {
        Area::new()
    }
}

impl Work for Area {
    fn populate(&mut self, live: usize) {
        let areas: Vec<u64> = setup_sizes(live)
            .into_iter()
            .map(|n| self.0.alloc(n, ()).unwrap())
            .collect();
        for a in areas.into_iter().step_by(2) {
            self.0.free(a).unwrap();
        }
    }
    #[inline]
    fn pair(&mut self) {
        let a = self.0.alloc(PAGES, ()).unwrap();
        self.0.free(black_box(a)).unwrap();
    }
}

/// Bytes standing for one page in the linked-list peer.
const UNIT: usize = 16;
/// The peer's arena: 1 Mi pages.
const LIST_ARENA: usize = UNIT << 20;

/// linked_list_allocator doing the area allocator's job: an area of n pages plus
/// a guard page is n + 1 units of 16 bytes (first fit over a list of holes).
pub struct ListArea(linked_list_allocator::Heap);

fn units(pages: u64) -> Layout {
    Layout::from_size_align((pages as usize + 1) * UNIT, UNIT).unwrap()
}

impl ListArea {
    pub fn new() -> ListArea {
        let layout = Layout::from_size_align(LIST_ARENA, 4096).unwrap();
        // SAFETY: non-zero size; leaked on purpose (the heap keeps using it).
        let arena = unsafe { std::alloc::alloc(layout) };
        assert!(!arena.is_null());
        let mut h = linked_list_allocator::Heap::empty();
        // SAFETY: the arena is valid, unused memory for the rest of the process.
        unsafe { h.init(arena, LIST_ARENA) };
        ListArea(h)
    }
    fn alloc(&mut self, pages: u64) -> NonNull<u8> {
        self.0.allocate_first_fit(units(pages)).unwrap()
    }
    fn free(&mut self, p: NonNull<u8>, pages: u64) {
        // SAFETY: allocated by this heap with this layout.
        unsafe { self.0.deallocate(p, units(pages)) }
    }
}

impl Default for ListArea {
    fn default() -> Self {
        ListArea::new()
    }
}

impl Work for ListArea {
    fn populate(&mut self, live: usize) {
        let areas: Vec<(NonNull<u8>, u64)> = setup_sizes(live)
            .into_iter()
            .map(|n| (self.alloc(n), n))
            .collect();
        for (p, n) in areas.into_iter().step_by(2) {
            self.free(p, n);
        }
    }
    #[inline]
    fn pair(&mut self) {
        let p = self.alloc(PAGES);
        self.free(black_box(p), PAGES);
    }
}

/// The workloads by command-line name.
pub const NAMES: [&str; 5] = ["vmalloc", "vmalloc-fake", "pages16", "area", "list-area"];

/// A populated workload by name.
pub fn make(name: &str, live: usize) -> Box<dyn Work> {
    let mut w: Box<dyn Work> = match name {
        "vmalloc" => Box::new(Vmalloc::new(NullMapper)),
        "vmalloc-fake" => Box::new(Vmalloc::new(FakeMapper::new())),
        "pages16" => {
            let mut v = Vmalloc::new(NullMapper);
            v.pages_only = true;
            Box::new(v)
        }
        "area" => Box::new(Area::new()),
        "list-area" => Box::new(ListArea::new()),
        other => panic!("unknown workload {other}"),
    };
    // `pages16` sets up the same vmalloc areas (its pair does not use them).
    w.populate(live);
    w
}

#[inline(never)]
pub fn pairs(w: &mut dyn Work, n: u64) {
    for _ in 0..n {
        w.pair();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!(
            "usage: {} <{}> <live> <iterations>",
            args[0],
            NAMES.join("|")
        );
        std::process::exit(2);
    }
    let live: usize = args[2].parse().expect("live");
    let n: u64 = args[3].parse().expect("iterations");
    let mut w = make(&args[1], live);
    pairs(&mut *w, 16);
    pairs(&mut *w, n);
}
