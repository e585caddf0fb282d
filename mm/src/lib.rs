//! memkern's memory-management logic, free of hardware.
//!
//! Everything here is plain safe Rust over indices so that it runs both inside the
//! kernel and on the host, where `cargo test` checks it against models and
//! `cargo bench` races it against other allocators. The kernel supplies the few
//! things that need hardware (access to physical memory, page tables) through traits.
//!
//! - [`page`]: physical frame numbers, zones, flags and the 16-byte `struct Page`.
//! - [`buddy`]: the zoned buddy allocator (orders 0..=10) with every page-level API.
//! - [`slab`]: kmalloc, kmem_cache and mempool on top of the buddy allocator.
//! - [`memalloc`]: who may use the reserves below the zones' `min` watermarks.
//! - [`fault`]: fault injection (`fail_page_alloc`, `failslab`) for both.
//! - [`memmap`]: the physical memory map as loaders report it, and its sanitizing.
//! - [`bootmem`]: the boot frame allocator over that map, and range merging.
//! - [`cmdline`]: the kernel command line and its `key=value` options.
//! - [`layout`]: every fixed kernel virtual address, with a picture of the space.
//! - [`sim`]: simulated physical memory for host tests and benchmarks.
//! - [`resource`]: the iomem and ioport resource trees (`request_region`, `/proc/iomem`).
//! - [`vmalloc`]: vmalloc and ioremap areas over the buddy allocator and the
//!   page tables (through a small mapper trait).
//! - [`paging`]: four-level page tables: walk, map, unmap, the DragonOS and MOS
//!   page-table functions, address spaces.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bootmem;
pub mod buddy;
pub mod cmdline;
pub mod fault;
pub mod layout;
pub mod memalloc;
pub mod memmap;
pub mod page;
pub mod paging;
pub mod resource;
pub mod sim;
pub mod slab;
pub mod vmalloc;
pub use page::*;

/// Access to physical memory for the parts of the logic that touch contents
/// (zeroing, poisoning, free pointers). The kernel implements it over its direct
/// map (with a temporary mapping for UNMAPPED frames); host tests over a `Vec<u8>`.
pub trait PhysMem {
    /// Kernel virtual address of physical address `phys` if it is in the direct map.
    fn virt_of(&self, phys: u64) -> Option<u64>;
    /// Physical address of direct-map virtual address `virt`, if it is one.
    fn phys_of(&self, virt: u64) -> Option<u64>;
    /// The direct map's offset: `phys_of(v) == Some(v - direct_offset())` for every
    /// direct-map address `v`. The slab fast paths subtract it without the range
    /// check and let their bounds-checked metadata reads refuse anything else, so it
    /// must be exact.
    fn direct_offset(&self) -> u64;
    /// Sets `len` bytes at `phys` to `byte`.
    fn fill(&mut self, phys: u64, len: usize, byte: u8);
    /// Reads `buf.len()` bytes at `phys`.
    fn read(&self, phys: u64, buf: &mut [u8]);
    /// Writes `buf` at `phys`.
    fn write(&mut self, phys: u64, buf: &[u8]);
    /// Reads a little-endian u64 at `phys` (8-aligned).
    fn read_u64(&self, phys: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(phys, &mut b);
        u64::from_le_bytes(b)
    }
    /// Writes a little-endian u64 at `phys` (8-aligned).
    fn write_u64(&mut self, phys: u64, v: u64) {
        self.write(phys, &v.to_le_bytes());
    }
    /// Reads the page-table entry at `phys`: an 8-aligned word of a table frame
    /// (4 KiB aligned, in the direct map). The page-table code reads every entry
    /// through it, so an implementation may make it cheaper than `read_u64` by
    /// relying on the alignment (the low 3 bits may be ignored).
    #[inline(always)]
    fn read_entry(&self, phys: u64) -> u64 {
        self.read_u64(phys)
    }
    /// Writes the page-table entry at `phys` (as [`read_entry`](Self::read_entry)).
    #[inline(always)]
    fn write_entry(&mut self, phys: u64, v: u64) {
        self.write_u64(phys, v)
    }
}

/// `mm_stat()`: the memory picture in bytes (DragonOS `struct mm_stat_t`).
///
/// `total = used + free`; `cache_used + cache_free` is the memory held in slabs
/// (counted in `used`); `available = free + cache_free`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MmStat {
    pub total: u64,
    pub used: u64,
    pub free: u64,
    pub shared: u64,
    pub cache_used: u64,
    pub cache_free: u64,
    pub available: u64,
}

/// What the slab allocator needs from the page allocator. The buddy allocator
/// implements it; slab unit tests may use a simpler one.
pub trait PageProvider {
    /// Allocates a naturally aligned block of 2^`order` pages from ZONE_DMA if `gfp`
    /// has `GFP_DMA`, else ZONE_NORMAL (falling back to DMA), above the zones'
    /// watermarks unless `gfp` has `Gfp::MEMALLOC`. The head page's state is
    /// `PageState::Slab`; the slab allocator owns `slab_cache`, `count`, `next`,
    /// `prev` of every page of the block from now on.
    fn alloc_slab_block(&mut self, order: u32, gfp: Gfp) -> Result<Pfn, MmError>;
    /// Returns a block taken with `alloc_slab_block` (same order).
    fn free_slab_block(&mut self, head: Pfn, order: u32) -> Result<(), MmError>;
    /// The metadata of a frame, or `None` outside the managed range.
    fn page(&self, pfn: Pfn) -> Option<&Page>;
    /// Mutable metadata of a frame, or `None` outside the managed range.
    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page>;
    /// `Page::slab_cache` of frame `pfn`, `None` outside the managed range (the
    /// kfree fast path: a byte, not a reference, so that it compiles to one bounds
    /// check and one load).
    #[inline(always)]
    fn slab_cache_at(&self, pfn: usize) -> Option<u8> {
        let pfn = u32::try_from(pfn).ok()?;
        self.page(Pfn(pfn)).map(|p| p.slab_cache)
    }
    /// The slab allocator's liveness bitmap, Linux's `page_ext` for the slab: 16
    /// bytes per frame from PFN 0, bit `a / 32` (word `a / 2048`, bit `a / 32 % 64`)
    /// set exactly when a live slab object starts at physical address `a`. The slab
    /// allocator alone writes it; it is all clear while no object is allocated.
    /// Slab blocks must lie where it reaches.
    fn slab_bits(&self) -> &[u64];
    /// Mutable [`slab_bits`](Self::slab_bits).
    fn slab_bits_mut(&mut self) -> &mut [u64];
}
