//! The boot frame allocator for the kernel's page tables and boot arrays:
//! `mm::bootmem::BootAlloc` (hardware-free, host-tested); `paging` hands its frames
//! to `mm::paging` as boot `TableFrames`.
//! See `mm/src/bootmem.rs` for how it chooses frames.

use core::ops::{Deref, DerefMut};

/// `mm::bootmem::BootAlloc`, owned by the kernel's memory set-up.
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
