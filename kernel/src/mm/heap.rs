//! The kernel heap: Rust's `alloc` (Box, Vec, String) served by memkern's own
//! allocators through `#[global_allocator]`.
//!
//! - up to 1 MiB: `kmalloc` (power-of-two size classes, objects aligned to their
//!   size, so any alignment up to the size is honoured by asking for
//!   `max(size, align)`);
//! - beyond: whole pages from the buddy allocator (`__get_free_pages`, ZONE_NORMAL
//!   then ZONE_DMA), freed with `free_pages(addr, order)`.
//!
//! Lock order: the slab lock, then the buddy lock. Code holding either must not
//! allocate from the heap (it would deadlock); the shell glue keeps heap work
//! outside those closures.

use super::physmem::DirectMap;
use super::with_buddy;
use core::alloc::{GlobalAlloc, Layout};
use mm::buddy::Buddy;
use mm::slab::{Slab, KMALLOC_MAX};
use mm::Gfp;
use spin::Mutex;

/// The slab allocator (kmalloc caches, kmem_cache, mempools).
static SLAB: Mutex<Slab> = Mutex::new(Slab::new());

/// Runs `f` with the slab and buddy allocators locked (in that order).
pub fn with_slab<R>(f: impl FnOnce(&mut Slab, &mut Buddy<'static>) -> R) -> R {
    let mut s = SLAB.lock();
    with_buddy(|b| f(&mut s, b))
}

/// Order of the smallest block of pages holding `bytes`.
fn order_for(bytes: usize) -> u32 {
    let pages = bytes.div_ceil(4096).max(1);
    pages.next_power_of_two().trailing_zeros()
}

struct KernelHeap;

// SAFETY: every block returned is at least `layout.size()` bytes, aligned to
// `layout.align()` (kmalloc objects are aligned to their power-of-two size, page
// blocks to 4 KiB and more), and owned by the caller until dealloc.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size().max(layout.align()).max(1);
        let r = if size <= KMALLOC_MAX {
            with_slab(|s, b| s.kmalloc(&mut DirectMap, b, size, Gfp::KERNEL))
        } else {
            with_buddy(|b| b.__get_free_pages(Gfp::KERNEL, order_for(size), &mut DirectMap))
        };
        r.map_or(core::ptr::null_mut(), |v| v as *mut u8)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = layout.size().max(layout.align()).max(1);
        let r = if size <= KMALLOC_MAX {
            with_slab(|s, b| s.kfree(&mut DirectMap, b, ptr as u64))
        } else {
            with_buddy(|b| b.free_pages(ptr as u64, order_for(size), &DirectMap))
        };
        if let Err(e) = r {
            crate::console::emergency_print(format_args!(
                "\r\nkernel heap: dealloc of {ptr:p} failed: {e}\r\n"
            ));
        }
    }
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap;
