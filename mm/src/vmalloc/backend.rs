//! What vmalloc and ioremap need from the machine, as one trait: [`VmBackend`]
//! (frames in bulk, freeing them, the page tables of [`KernelMapper`], zeroing a
//! frame, the RAM map). [`VmSpace`](super::VmSpace) calls it and nothing else
//! of the machine.
//!
//! # Locks
//!
//! In the kernel the heap is the slab allocator, which takes the slab lock and
//! then the buddy lock; the page tables take their own lock and draw table
//! frames from the buddy allocator (its lock per frame). So a backend call must
//! never run while the caller holds an allocator lock, and `VmSpace` never
//! touches the heap (its page array, its tree nodes) inside a backend call:
//! every backend method takes the locks it needs for the length of that one
//! call (the buddy lock for a batch of frames, the page-table lock for one page)
//! and returns. The kernel's order is: vm space, page tables, slab, buddy.
//!
//! Two implementations here: [`Local`] (a [`Buddy`], any [`KernelMapper`] and a
//! [`PhysMem`], all borrowed: host tests over the `FakeMapper`) and
//! [`PagingBackend`] (a [`Buddy`] and real `mm::paging` tables in a
//! [`PhysMem`] with a [`Tlb`]: the shell's host test machine). The kernel's
//! own, over its locks, lives in `kernel/src/memory/vmalloc.rs` and uses
//! [`map_kernel_page`] and [`unmap_kernel_page`] as `PagingBackend` does.

use super::mapper::{CacheMode, KernelMapper, MapError, Prot};
use crate::buddy::Buddy;
use crate::paging::{
    self, FlushRange, Mapper, PageRefs, PageSize, PageTableFlags, PhysAddr, PhysFrame, TableFrames,
    Tlb, UnmapError, VirtAddr,
};
use crate::{Gfp, MmError, Pfn, PhysMem, PAGE_SIZE};

/// Frames, page tables and zeroing for [`VmSpace`](super::VmSpace). See the
/// module docs for the locking rule every implementation keeps.
pub trait VmBackend: KernelMapper {
    /// Linux `alloc_pages_bulk`: fills the front of `out` with order-0 frames of
    /// `gfp` and returns how many ([`Buddy::alloc_pages_bulk`]).
    fn alloc_pages_bulk(&mut self, gfp: Gfp, out: &mut [Pfn]) -> Result<usize, MmError>;
    /// Frees frames that [`alloc_pages_bulk`](Self::alloc_pages_bulk) gave.
    fn free_pages_bulk(&mut self, pages: &[Pfn]);
    /// Zeroes one frame (in the kernel, an UNMAPPED frame through the
    /// temporary window).
    fn zero_page(&mut self, pfn: Pfn);
    /// The first byte of RAM from the boot memory map (reserved RAM included)
    /// in `[start, end)`, if any.
    fn ram_overlap(&mut self, start: u64, end: u64) -> Option<u64>;
}

/// [`Buddy::ram_ranges`] overlap with `[start, end)`: the first RAM address.
pub fn buddy_ram_overlap(b: &Buddy<'_>, start: u64, end: u64) -> Option<u64> {
    b.ram_ranges().find_map(|(s, e)| {
        let (lo, hi) = (start.max(s.phys()), end.min(e.phys()));
        (lo < hi).then_some(lo)
    })
}

/// Frees vmalloc frames into `b` (they were allocated by vmalloc: a refusal is
/// an internal invariant broken, asserted in debug builds).
pub fn buddy_free_pages(b: &mut Buddy<'_>, pages: &[Pfn]) {
    let r = b.free_pages_bulk(pages);
    debug_assert!(r.is_ok(), "vmalloc frames not freeable: {r:?}");
}

/// A [`VmBackend`] over borrowed parts: the buddy allocator, any
/// [`KernelMapper`] and the memory (for zeroing).
pub struct Local<'x, 'b, M, P> {
    /// Frames.
    pub buddy: &'x mut Buddy<'b>,
    /// Page tables.
    pub pt: &'x mut M,
    /// Memory, for `zero_page`.
    pub mem: &'x mut P,
}

impl<M: KernelMapper, P> KernelMapper for Local<'_, '_, M, P> {
    fn map_page(
        &mut self,
        virt: u64,
        phys: u64,
        prot: Prot,
        cache: CacheMode,
    ) -> Result<(), MapError> {
        self.pt.map_page(virt, phys, prot, cache)
    }
    fn unmap_page(&mut self, virt: u64) -> Result<u64, MapError> {
        self.pt.unmap_page(virt)
    }
    fn flush(&mut self, virt: u64, len: u64) {
        self.pt.flush(virt, len)
    }
}

impl<M: KernelMapper, P: PhysMem> VmBackend for Local<'_, '_, M, P> {
    fn alloc_pages_bulk(&mut self, gfp: Gfp, out: &mut [Pfn]) -> Result<usize, MmError> {
        self.buddy.alloc_pages_bulk(gfp, out)
    }
    fn free_pages_bulk(&mut self, pages: &[Pfn]) {
        buddy_free_pages(self.buddy, pages)
    }
    fn zero_page(&mut self, pfn: Pfn) {
        self.mem.fill(pfn.phys(), PAGE_SIZE, 0)
    }
    fn ram_overlap(&mut self, start: u64, end: u64) -> Option<u64> {
        buddy_ram_overlap(self.buddy, start, end)
    }
}

/// The leaf flags of a vmalloc/ioremap page: rights, memory type, global
/// (the kernel half is shared by every address space).
pub fn kernel_page_flags(prot: Prot, cache: CacheMode) -> PageTableFlags {
    PageTableFlags::from_bits_truncate(prot.pte_bits() | cache.pte_bits()) | PageTableFlags::GLOBAL
}

/// [`KernelMapper::map_page`] on real tables: one 4 KiB page in `root`.
/// A new mapping replaces nothing, so its flush token is dropped on purpose.
pub fn map_kernel_page<M: PhysMem, F: TableFrames>(
    m: &mut Mapper<'_, M, F>,
    root: PhysFrame,
    virt: u64,
    phys: u64,
    prot: Prot,
    cache: CacheMode,
) -> Result<(), MapError> {
    let v = VirtAddr::try_new(virt).map_err(|_| MapError::Refused("non-canonical address"))?;
    let p = PhysAddr::try_new(phys).map_err(|_| MapError::Refused("physical address too large"))?;
    match m.map(
        root,
        v,
        p,
        PageSize::Size4KiB,
        kernel_page_flags(prot, cache),
    ) {
        Ok(flush) => {
            flush.ignore(); // not present before: nothing cached
            Ok(())
        }
        Err(paging::MapError::AlreadyMapped { .. }) => Err(MapError::AlreadyMapped(virt)),
        Err(paging::MapError::OutOfMemory) => Err(MapError::OutOfMemory),
        Err(paging::MapError::HugePageInTheWay { .. }) => {
            Err(MapError::Refused("a large page covers the address"))
        }
        Err(paging::MapError::Misaligned { .. }) => Err(MapError::Refused("misaligned address")),
        Err(_) => Err(MapError::Refused("the page tables refused the mapping")),
    }
}

/// [`KernelMapper::unmap_page`] on real tables: unmaps one 4 KiB page of
/// `root` (freeing tables it leaves empty) and adds its flush to `pending`.
pub fn unmap_kernel_page<M: PhysMem, F: TableFrames + PageRefs>(
    m: &mut Mapper<'_, M, F>,
    root: PhysFrame,
    virt: u64,
    pending: &mut FlushRange,
) -> Result<u64, MapError> {
    let v = VirtAddr::try_new(virt).map_err(|_| MapError::Refused("non-canonical address"))?;
    match m.unmap(root, v, PageSize::Size4KiB) {
        Ok((u, flush)) => {
            pending.push(flush);
            Ok(u.phys.as_u64())
        }
        Err(UnmapError::NotMapped { .. }) => Err(MapError::NotMapped(virt)),
        Err(_) => Err(MapError::Refused("the page tables refused the unmap")),
    }
}

/// A [`VmBackend`] over real `mm::paging` tables in `mem` (root `root`), with
/// frames and table frames from `buddy` and flushes through `tlb`. Unmaps
/// gather their flush tokens; [`flush`](KernelMapper::flush) issues them.
pub struct PagingBackend<'x, 'b, M, T> {
    /// The memory holding the tables (and the frames, for zeroing).
    pub mem: &'x mut M,
    /// Frames and table frames.
    pub buddy: &'x mut Buddy<'b>,
    /// The TLB.
    pub tlb: &'x mut T,
    /// The kernel's top-level table.
    pub root: PhysFrame,
    pending: FlushRange,
}

impl<'x, 'b, M, T> PagingBackend<'x, 'b, M, T> {
    /// A backend over these parts.
    pub fn new(mem: &'x mut M, buddy: &'x mut Buddy<'b>, tlb: &'x mut T, root: PhysFrame) -> Self {
        PagingBackend {
            mem,
            buddy,
            tlb,
            root,
            pending: FlushRange::new(),
        }
    }
}

impl<M: PhysMem, T: Tlb> KernelMapper for PagingBackend<'_, '_, M, T> {
    fn map_page(
        &mut self,
        virt: u64,
        phys: u64,
        prot: Prot,
        cache: CacheMode,
    ) -> Result<(), MapError> {
        let mut m = Mapper::new(&mut *self.mem, &mut *self.buddy);
        map_kernel_page(&mut m, self.root, virt, phys, prot, cache)
    }
    fn unmap_page(&mut self, virt: u64) -> Result<u64, MapError> {
        let mut m = Mapper::new(&mut *self.mem, &mut *self.buddy);
        unmap_kernel_page(&mut m, self.root, virt, &mut self.pending)
    }
    fn flush(&mut self, _virt: u64, _len: u64) {
        core::mem::take(&mut self.pending).flush(self.tlb);
    }
}

impl<M: PhysMem, T: Tlb> VmBackend for PagingBackend<'_, '_, M, T> {
    fn alloc_pages_bulk(&mut self, gfp: Gfp, out: &mut [Pfn]) -> Result<usize, MmError> {
        self.buddy.alloc_pages_bulk(gfp, out)
    }
    fn free_pages_bulk(&mut self, pages: &[Pfn]) {
        buddy_free_pages(self.buddy, pages)
    }
    fn zero_page(&mut self, pfn: Pfn) {
        self.mem.fill(pfn.phys(), PAGE_SIZE, 0)
    }
    fn ram_overlap(&mut self, start: u64, end: u64) -> Option<u64> {
        buddy_ram_overlap(self.buddy, start, end)
    }
}
