//! Where page-table frames come from, and how mappings hold page references.
//!
//! [`TableFrames`] hands out zeroed 4 KiB frames that are in the direct map (the
//! mapper reaches tables through it) and takes them back when a table empties.
//! The buddy allocator implements it from ZONE_NORMAL then ZONE_DMA (never
//! ZONE_UNMAPPED); the kernel's boot frame allocator implements it while the boot
//! tables are built. [`PageRefs`] is the `struct Page` reference count that
//! `page_insert` mappings hold (`get_page` / `put_page`), implemented by the buddy.

use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

use crate::buddy::Buddy;
use crate::{Gfp, MmError, Pfn, PhysMem, PAGE_SIZE};

/// A source of page-table frames.
pub trait TableFrames {
    /// A zeroed 4 KiB frame reachable through `mem` (in the direct map), or `None`
    /// when there is none.
    fn alloc_table(&mut self, mem: &mut impl PhysMem) -> Option<PhysFrame>;
    /// Returns a frame that `alloc_table` gave and that no entry points to any more.
    fn free_table(&mut self, frame: PhysFrame);
}

/// Reference counts of frames (`struct Page`), for mappings that hold one.
pub trait PageRefs {
    /// Takes one more reference on the allocated frame `pfn` (Linux `get_page`).
    fn get_page(&mut self, pfn: Pfn) -> Result<u32, MmError>;
    /// Drops one reference, freeing the frame at 0; `Ok(true)` if it was freed.
    fn put_page(&mut self, pfn: Pfn) -> Result<bool, MmError>;
}

impl TableFrames for Buddy<'_> {
    #[inline]
    fn alloc_table(&mut self, mem: &mut impl PhysMem) -> Option<PhysFrame> {
        // Gfp::KERNEL: ZONE_NORMAL then ZONE_DMA, both in the direct map.
        let pfn = self.alloc_page(Gfp::KERNEL).ok()?;
        mem.fill(pfn.phys(), PAGE_SIZE, 0);
        Some(PhysFrame::containing_address(PhysAddr::new(pfn.phys())))
    }

    #[inline]
    fn free_table(&mut self, frame: PhysFrame) {
        let pfn = Pfn((frame.start_address().as_u64() >> 12) as u32);
        // A table frame is an order-0 allocation of ours with one reference;
        // failure would mean the frame was freed behind the mapper's back.
        let r = self.__free_page(pfn);
        debug_assert!(r.is_ok(), "page-table frame {pfn:?} was not ours: {r:?}");
    }
}

impl PageRefs for Buddy<'_> {
    #[inline]
    fn get_page(&mut self, pfn: Pfn) -> Result<u32, MmError> {
        Buddy::get_page(self, pfn)
    }
    #[inline]
    fn put_page(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        Buddy::put_page(self, pfn)
    }
}
