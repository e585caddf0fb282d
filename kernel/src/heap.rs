//! The kernel heap behind Rust's `alloc` (Box, Vec, String).
//!
//! Until the slab allocator serves it, a fixed arena inside the kernel image backs
//! it through `linked_list_allocator`.

use linked_list_allocator::LockedHeap;

const EARLY_HEAP_SIZE: usize = 4 << 20;

#[repr(C, align(4096))]
struct Arena([u8; EARLY_HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; EARLY_HEAP_SIZE]);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Hands the arena to the allocator. Call once, before any allocation.
pub fn init() {
    // SAFETY: ARENA is used by nothing else and lives for the whole run; init is
    // called once at boot.
    unsafe {
        let base = core::ptr::addr_of_mut!(ARENA) as *mut u8;
        HEAP.lock().init(base, EARLY_HEAP_SIZE);
    }
}
