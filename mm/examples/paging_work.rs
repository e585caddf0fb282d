//! Page-table workloads of memkern's mapper (`mm::paging`) and the `x86_64`
//! crate's `OffsetPageTable`, shared by `benches/paging.rs` (timing) and this
//! binary (instruction counts under callgrind).
//!
//! ```text
//! paging_work <memkern|x86_64> <workload> <iterations>
//!   map4k        map + unmap one 4 KiB page next to a mapped neighbour (no table
//!                is allocated or freed: both sides do only the mapping work;
//!                memkern's cached page table hits)
//!   map2m        the same with 2 MiB pages (memkern's cached page directory hits)
//!   translate    translate an address of a mapped 4 KiB page (cached page table)
//!   map4k-spread map + unmap in 64 different 2 MiB regions of one 1 GiB region
//!                in turn (each with a mapped neighbour): memkern's cached page
//!                table misses every time, its cached page directory hits
//!   translate-spread  translate in those 64 regions in turn (the same)
//!   map4k-scatter     map + unmap in 64 regions 1 GiB + 2 MiB apart: both of
//!                memkern's cached walks miss, every operation walks from the root
//!   translate-scatter translate in those 64 regions (full walks)
//!   map4k-fresh  map + unmap a 4 KiB page alone in its PML4 slot: memkern frees
//!                the 3 tables on unmap, the crate frees them with
//!                `clean_up_addr_range` (it never frees tables on its own)
//! ```
//!
//! Addresses are built with the unchecked `new_truncate` / `containing_address`
//! on both sides (the workloads' addresses are valid), so that the harness adds
//! as little as possible to either. Both sides run on the same kind of machine: 32 MiB of `SimMem` (4 KiB
//! aligned), a real `Buddy` for table frames (`Gfp::KERNEL`), and tables
//! reached through the simulated RAM; the crate's "physical offset" is the host
//! address of the RAM buffer. Instructions per operation = difference of two
//! callgrind runs divided by the difference of iterations:
//!
//! ```text
//! cargo build --release -p mm --example paging_work
//! for w in map4k map2m translate map4k-fresh map4k-spread translate-spread \
//!          map4k-scatter translate-scatter; do for s in memkern x86_64; do
//!   for n in 100000 1100000; do
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!       target/release/examples/paging_work $s $w $n 2>&1 | grep 'refs:'
//! done; done; done
//! ```

use std::alloc::Layout;
use std::hint::black_box;
use std::mem::ManuallyDrop;

use mm::buddy::Buddy;
use mm::paging::{
    Mapper, PageSize, PageTableFlags as F, PhysAddr, PhysFrame, TableFrames, VirtAddr,
};
use mm::sim::SimMem;
use mm::{Gfp, Page, Pfn, Zone};
use x86_64::structures::paging::mapper::CleanUp;
use x86_64::structures::paging::{
    FrameAllocator, FrameDeallocator, Mapper as _, OffsetPageTable, Page as VPage, PageTable,
    Size2MiB, Size4KiB, Translate,
};

/// Frames of simulated RAM.
pub const NPAGES: u32 = 8192;
/// The neighbour page both sides keep mapped (user half).
pub const BASE: u64 = 0x0000_1000_0000_0000;
/// An address alone in its PML4 slot (for `map4k-fresh`).
pub const LONELY: u64 = 0x0000_2000_0000_0000;
/// Physical frame mapped by the workloads (outside the table frames' RAM is fine:
/// nothing reads it).
pub const FRAME: u64 = 0x4000_0000;

/// One page-table implementation under test.
pub trait Pager {
    /// Maps a 4 KiB page, or a 2 MiB page if `huge`.
    fn map(&mut self, v: u64, p: u64, huge: bool);
    /// Unmaps it.
    fn unmap(&mut self, v: u64, huge: bool);
    fn translate(&self, v: u64) -> u64;
    /// Frees the tables left empty under `v` (a no-op where unmap does it).
    fn clean(&mut self, v: u64);
}

/// 32 MiB of simulated RAM at a 4 KiB-aligned host address, a buddy allocator
/// over it and a fresh root table. Leaked: the crate keeps pointers into it.
pub fn machine() -> (&'static mut SimMem, &'static mut Buddy<'static>, PhysFrame) {
    let len = NPAGES as usize * 4096;
    let layout = Layout::from_size_align(len, 4096).unwrap();
    // SAFETY: non-zero size. The Vec is never dropped (ManuallyDrop, leaked), so
    // the layout it would deallocate with does not matter.
    let bytes = unsafe {
        let p = std::alloc::alloc_zeroed(layout);
        assert!(!p.is_null());
        Vec::from_raw_parts(p, len, len)
    };
    let mut mem = SimMem::new(0, 0);
    mem.bytes = bytes;
    let mem = ManuallyDrop::new(mem.direct_map_end(len as u64));
    let mem: &'static mut SimMem = Box::leak(Box::new(ManuallyDrop::into_inner(mem)));
    let map: &'static mut [Page] = vec![Page::reserved(Zone::Dma); NPAGES as usize].leak();
    let buddy = Box::leak(Box::new(
        Buddy::page_init(map, Pfn(NPAGES), &[(Pfn(256), Pfn(NPAGES))], &[]).unwrap(),
    ));
    let root = buddy.alloc_table(mem).unwrap();
    (mem, buddy, root)
}

/// memkern's `Mapper`, kept for the whole run (as the kernel keeps one per
/// batch of operations under its page-table lock).
pub struct Memkern {
    m: Mapper<'static, SimMem, Buddy<'static>>,
    root: PhysFrame,
}

impl Memkern {
    pub fn new() -> Memkern {
        let (mem, buddy, root) = machine();
        Memkern {
            m: Mapper::new(mem, buddy),
            root,
        }
    }
    #[inline(always)]
    fn m(&mut self) -> &mut Mapper<'static, SimMem, Buddy<'static>> {
        &mut self.m
    }
}

impl Default for Memkern {
    fn default() -> Self {
        Memkern::new()
    }
}

impl Pager for Memkern {
    #[inline(always)]
    fn map(&mut self, v: u64, p: u64, huge: bool) {
        let r = self.root;
        self.m()
            .map(
                r,
                VirtAddr::new_truncate(v),
                PhysAddr::new_truncate(p),
                size(huge),
                F::WRITABLE,
            )
            .unwrap()
            .ignore();
    }
    #[inline(always)]
    fn unmap(&mut self, v: u64, huge: bool) {
        let r = self.root;
        self.m()
            .unmap(r, VirtAddr::new_truncate(v), size(huge))
            .unwrap()
            .1
            .ignore();
    }
    #[inline(always)]
    fn translate(&self, v: u64) -> u64 {
        self.m
            .translate(self.root, VirtAddr::new_truncate(v))
            .unwrap()
            .0
            .as_u64()
    }
    #[inline(always)]
    fn clean(&mut self, _v: u64) {}
}

#[inline(always)]
fn size(huge: bool) -> PageSize {
    if huge {
        PageSize::Size2MiB
    } else {
        PageSize::Size4KiB
    }
}

/// The buddy as the crate's frame allocator.
pub struct Frames(&'static mut Buddy<'static>);

// SAFETY: every frame is a fresh order-0 allocation of the buddy, unused elsewhere.
unsafe impl FrameAllocator<Size4KiB> for Frames {
    #[inline(always)]
    fn allocate_frame(&mut self) -> Option<x86_64::structures::paging::PhysFrame<Size4KiB>> {
        let pfn = self.0.alloc_page(Gfp::KERNEL).ok()?;
        Some(x86_64::structures::paging::PhysFrame::containing_address(
            PhysAddr::new_truncate(pfn.phys()),
        ))
    }
}

impl FrameDeallocator<Size4KiB> for Frames {
    #[inline(always)]
    unsafe fn deallocate_frame(&mut self, f: x86_64::structures::paging::PhysFrame<Size4KiB>) {
        self.0
            .__free_page(Pfn((f.start_address().as_u64() >> 12) as u32))
            .unwrap();
    }
}

/// The `x86_64` crate's `OffsetPageTable` over the same kind of machine.
pub struct Crate {
    pt: OffsetPageTable<'static>,
    frames: Frames,
}

impl Crate {
    pub fn new() -> Crate {
        let (mem, buddy, root) = machine();
        let base = mem.bytes.as_mut_ptr();
        // SAFETY: `root` is a zeroed frame inside the leaked, 4 KiB-aligned RAM
        // buffer, so `base + root` is a valid, aligned, exclusive PageTable; every
        // table frame the buddy hands out is inside that buffer at `base + phys`.
        let pt = unsafe {
            let l4 = &mut *(base.add(root.start_address().as_u64() as usize) as *mut PageTable);
            OffsetPageTable::new(l4, VirtAddr::new_truncate(base as u64))
        };
        Crate {
            pt,
            frames: Frames(buddy),
        }
    }
}

impl Default for Crate {
    fn default() -> Self {
        Crate::new()
    }
}

impl Crate {
    #[inline(always)]
    fn map_to<S: x86_64::structures::paging::PageSize + std::fmt::Debug>(&mut self, v: u64, p: u64)
    where
        OffsetPageTable<'static>: x86_64::structures::paging::Mapper<S>,
    {
        let page = VPage::<S>::containing_address(VirtAddr::new_truncate(v));
        let frame = x86_64::structures::paging::PhysFrame::<S>::containing_address(
            PhysAddr::new_truncate(p),
        );
        // SAFETY: simulated tables; nothing runs on them.
        unsafe {
            self.pt
                .map_to(page, frame, F::PRESENT | F::WRITABLE, &mut self.frames)
                .unwrap()
                .ignore();
        }
    }
    #[inline(always)]
    fn unmap_s<S: x86_64::structures::paging::PageSize>(&mut self, v: u64)
    where
        OffsetPageTable<'static>: x86_64::structures::paging::Mapper<S>,
    {
        let page = VPage::<S>::containing_address(VirtAddr::new_truncate(v));
        self.pt.unmap(page).unwrap().1.ignore();
    }
}

impl Pager for Crate {
    #[inline(always)]
    fn map(&mut self, v: u64, p: u64, huge: bool) {
        if huge {
            self.map_to::<Size2MiB>(v, p)
        } else {
            self.map_to::<Size4KiB>(v, p)
        }
    }
    #[inline(always)]
    fn unmap(&mut self, v: u64, huge: bool) {
        if huge {
            self.unmap_s::<Size2MiB>(v)
        } else {
            self.unmap_s::<Size4KiB>(v)
        }
    }
    #[inline(always)]
    fn translate(&self, v: u64) -> u64 {
        self.pt
            .translate_addr(VirtAddr::new_truncate(v))
            .unwrap()
            .as_u64()
    }
    #[inline(always)]
    fn clean(&mut self, v: u64) {
        let page = VPage::<Size4KiB>::containing_address(VirtAddr::new_truncate(v));
        // SAFETY: nothing is mapped under `page` any more.
        unsafe {
            self.pt
                .clean_up_addr_range(VPage::range_inclusive(page, page), &mut self.frames)
        };
    }
}

/// The workloads by command-line name.
pub const WORKLOADS: [&str; 8] = [
    "map4k",
    "map2m",
    "translate",
    "map4k-fresh",
    "map4k-spread",
    "translate-spread",
    "map4k-scatter",
    "translate-scatter",
];
/// Regions of the spread and scatter workloads.
pub const SPREAD: u64 = 64;
/// Distance between the spread workloads' regions: 2 MiB, so each has its own
/// page table, all in one page directory.
const SPREAD_STRIDE: u64 = 1 << 21;
/// Distance between the scatter workloads' regions: 1 GiB + 2 MiB, so each
/// has its own page directory and page table.
const SCATTER_STRIDE: u64 = (1 << 30) + (1 << 21);

/// The region stride of a spread or scatter workload.
fn stride(workload: &str) -> u64 {
    if workload.ends_with("-scatter") {
        SCATTER_STRIDE
    } else {
        SPREAD_STRIDE
    }
}

/// Maps what a workload keeps mapped (the neighbour).
pub fn prepare<P: Pager>(p: &mut P, workload: &str) {
    match workload {
        "map4k" | "translate" => p.map(BASE, FRAME, false),
        "map2m" => p.map(BASE, FRAME, true),
        "map4k-fresh" => {}
        "map4k-spread" | "translate-spread" | "map4k-scatter" | "translate-scatter" => {
            for k in 0..SPREAD {
                p.map(BASE + k * stride(workload), FRAME, false);
            }
        }
        w => panic!("unknown workload {w}"),
    }
}

/// `n` map+unmap pairs at `v(i)` (4 KiB pages, or 2 MiB if `huge`), then the
/// tables left empty cleaned up if `clean`.
#[inline(always)]
fn pairs<P: Pager>(p: &mut P, n: u64, huge: bool, clean: bool, v: impl Fn(u64) -> u64) {
    for i in 0..n {
        let v = v(i);
        p.map(black_box(v), FRAME, huge);
        p.unmap(black_box(v), huge);
        if clean {
            p.clean(v);
        }
    }
}

/// `n` translations of `v(i)`.
#[inline(always)]
fn translations<P: Pager>(p: &P, n: u64, v: impl Fn(u64) -> u64) {
    let mut x = 0;
    for i in 0..n {
        x ^= p.translate(black_box(v(i)));
    }
    black_box(x);
}

/// `n` rounds of `workload` (after [`prepare`]).
#[inline(never)]
pub fn run<P: Pager>(p: &mut P, workload: &str, n: u64) {
    let step = stride(workload);
    match workload {
        "map4k" => pairs(p, n, false, false, |_| BASE + 0x1000),
        "map2m" => pairs(p, n, true, false, |_| BASE + 0x20_0000),
        "translate" => translations(p, n, |i| BASE + (i & 0xff8)),
        "map4k-spread" | "map4k-scatter" => {
            pairs(p, n, false, false, |i| BASE + (i % SPREAD) * step + 0x1000)
        }
        "translate-spread" | "translate-scatter" => {
            translations(p, n, |i| BASE + (i % SPREAD) * step + (i & 0xff8))
        }
        "map4k-fresh" => pairs(p, n, false, true, |_| LONELY),
        w => panic!("unknown workload {w}"),
    }
}

fn go<P: Pager>(mut p: P, w: &str, n: u64) {
    prepare(&mut p, w);
    run(&mut p, w, 16);
    run(&mut p, w, n);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!(
            "usage: {} <memkern|x86_64> <{}> <iterations>",
            args[0],
            WORKLOADS.join("|")
        );
        std::process::exit(2);
    }
    let n: u64 = args[3].parse().expect("iterations");
    match args[1].as_str() {
        "memkern" => go(Memkern::new(), &args[2], n),
        "x86_64" => go(Crate::new(), &args[2], n),
        other => panic!("unknown implementation {other}"),
    }
}
