//! The boot frame allocator for the kernel's page tables: `mm::bootmem::BootAlloc`
//! (hardware-free, host-tested) behind the `x86_64` crate's `FrameAllocator`.
//! See `mm/src/bootmem.rs` for how it chooses frames.

use core::ops::{Deref, DerefMut};
use x86_64::structures::paging::{FrameAllocator, PhysFrame, Size4KiB};
use x86_64::PhysAddr;

/// `mm::bootmem::BootAlloc`, usable where the `x86_64` crate wants frames.
pub struct BootAlloc(pub mm::bootmem::BootAlloc);

impl Deref for BootAlloc {
    type Target = mm::bootmem::BootAlloc;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for BootAlloc {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

// SAFETY: every frame returned is usable RAM that no one else owns: it is handed
// out once and never freed.
unsafe impl FrameAllocator<Size4KiB> for BootAlloc {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        self.alloc_frame()
            .map(|p| PhysFrame::containing_address(PhysAddr::new(p)))
    }
}
