//! The kernel's vmalloc and ioremap: the hardware-free `mm::vmalloc::VmSpace`
//! behind its own lock ([`with_vmspace`]), over a backend ([`KernelVm`]) that
//! reaches the real page tables and the buddy allocator.
//!
//! Lock order (the whole kernel's): **vm space, then page tables, then slab,
//! then buddy**. `VmSpace` uses the heap (slab, then buddy) for its page arrays
//! and tree nodes only between backend calls, and each backend call takes the
//! one lock it needs for that call: the page-table lock to map or unmap one page
//! (table frames then come from the buddy allocator, its lock per frame), the
//! buddy lock for one batch of frames. So the heap is never used while an
//! allocator lock is held, and no lock is ever taken out of order.

use super::paging::{self, HwTlb};
use super::physmem::DirectMap;
use super::with_buddy;
use mm::paging::FlushRange;
use mm::vmalloc::backend::{
    buddy_free_pages, buddy_ram_overlap, map_kernel_page, unmap_kernel_page,
};
use mm::vmalloc::{CacheMode, KernelMapper, MapError, Prot, VmBackend, VmSpace};
use mm::{Gfp, MmError, Pfn, PhysMem};
use spin::Mutex;

/// Frames taken or freed under one hold of the buddy lock.
const BATCH: usize = 256;

/// The vmalloc and ioremap areas (made on first use: the tree needs the heap).
static VMSPACE: Mutex<Option<VmSpace>> = Mutex::new(None);

/// Makes the (empty) area trees and records the memory types of the kernel's
/// own device mappings (`paging::build` maps the framebuffer write-combining and
/// the local APIC uncached), so that an `ioremap` of them gets the same type;
/// called once the heap works.
pub fn init(fb: Option<&crate::boot::FramebufferInfo>) {
    let mut g = VMSPACE.lock();
    let v = g.get_or_insert_with(VmSpace::new);
    let fb = fb.map(|f| (f.phys, f.pitch as u64 * f.height as u64));
    for (phys, size, cache, owner) in [
        fb.map(|(p, n)| (p, n, CacheMode::WriteCombining, "framebuffer")),
        Some((0xfee0_0000, 4096, CacheMode::Uncached, "Local APIC")),
    ]
    .into_iter()
    .flatten()
    {
        if let Err(e) = v.reserve_memtype(phys, size, cache, owner) {
            crate::kprintln!("warning: memory type of {owner} not recorded: {e}");
        }
    }
}

/// Runs `f` with the vm-space lock held, on the areas and the kernel backend.
/// `f` may allocate from the heap; the caller must hold no other memory lock.
pub fn with_vmspace<R>(f: impl FnOnce(&mut VmSpace, &mut KernelVm) -> R) -> R {
    let mut g = VMSPACE.lock();
    let v = g.get_or_insert_with(VmSpace::new);
    let mut be = KernelVm {
        pending: FlushRange::new(),
    };
    let r = f(v, &mut be);
    // Every unmap is followed by a flush inside VmSpace; nothing is left owed.
    core::mem::take(&mut be.pending).flush(&mut HwTlb);
    r
}

/// The backend over the kernel's locks: each call takes the page-table lock or
/// the buddy lock for its own length only. Unmaps gather their flush tokens;
/// [`KernelMapper::flush`] issues them (`invlpg` per page, or a full flush past
/// `mm::paging::INVLPG_MAX`).
pub struct KernelVm {
    pending: FlushRange,
}

impl KernelMapper for KernelVm {
    fn map_page(
        &mut self,
        virt: u64,
        phys: u64,
        prot: Prot,
        cache: CacheMode,
    ) -> Result<(), MapError> {
        paging::with_page_tables(|root, m, _| map_kernel_page(m, root, virt, phys, prot, cache))
    }
    fn unmap_page(&mut self, virt: u64) -> Result<u64, MapError> {
        let pending = &mut self.pending;
        paging::with_page_tables(|root, m, _| unmap_kernel_page(m, root, virt, pending))
    }
    fn flush(&mut self, _virt: u64, _len: u64) {
        core::mem::take(&mut self.pending).flush(&mut HwTlb);
    }
}

impl VmBackend for KernelVm {
    fn alloc_pages_bulk(&mut self, gfp: Gfp, out: &mut [Pfn]) -> Result<usize, MmError> {
        let n = out.len().min(BATCH);
        with_buddy(|b| b.alloc_pages_bulk(gfp, &mut out[..n]))
    }
    fn free_pages_bulk(&mut self, pages: &[Pfn]) {
        for chunk in pages.chunks(BATCH) {
            with_buddy(|b| buddy_free_pages(b, chunk));
        }
    }
    fn zero_page(&mut self, pfn: Pfn) {
        // Through the direct map, or the temporary window for UNMAPPED frames
        // (which takes no lock).
        DirectMap.fill(pfn.phys(), 4096, 0);
    }
    fn ram_overlap(&mut self, start: u64, end: u64) -> Option<u64> {
        with_buddy(|b| buddy_ram_overlap(b, start, end))
    }
}
