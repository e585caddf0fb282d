//! The kernel heap: Rust's `alloc` (Box, Vec, String) served by memkern's own
//! allocators through `#[global_allocator]`.
//!
//! - up to 1 MiB: `kmalloc` (power-of-two size classes, objects aligned to their
//!   size, so any alignment up to the size is honoured by asking for
//!   `max(size, align)`);
//! - beyond: whole pages from the buddy allocator (`__get_free_pages`, ZONE_NORMAL
//!   then ZONE_DMA), freed with `free_pages(addr, order)`.
//!
//! Requests carry `Gfp::MEMALLOC`: fault injection (`fail`, `failslab=`,
//! `fail_page_alloc=`) never fails the kernel's own allocations.
//!
//! Lock order: the slab lock, then the buddy lock. Code holding either must not
//! allocate from the heap (it would deadlock); the shell's memory API
//! (`shell::Api` over `kshell::Hardware`) keeps heap work outside those closures.

use super::physmem::DirectMap;
use super::with_buddy;
use core::alloc::{GlobalAlloc, Layout};
use mm::buddy::Buddy;
use mm::memalloc::{charged_to_user, heap_gfp};
use mm::slab::{Slab, KMALLOC_MAX};
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
        let gfp = heap_gfp();
        let r = if size <= KMALLOC_MAX {
            with_slab(|s, b| s.kmalloc(&mut DirectMap, b, size, gfp))
        } else {
            with_buddy(|b| b.__get_free_pages(gfp, order_for(size), &mut DirectMap))
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

/// One case of `selftest heap` (see `shell::HEAP_SELFTESTS`): exercises the
/// global allocator through ordinary `alloc` types and checks alignment,
/// placement in the direct map and contents. Everything is freed on return.
///
/// The user asked for these megabytes, so they are charged to the user (the
/// watermarks hold, see `mm::memalloc`) and allocated fallibly: when memory is
/// short the case fails with "out of memory" and the kernel's reserve stays whole.
pub fn selftest(case: &str) -> Result<(), &'static str> {
    charged_to_user(|| selftest_case(case))
}

fn selftest_case(case: &str) -> Result<(), &'static str> {
    use alloc::vec::Vec;
    const OOM: &str = "out of memory";
    fn try_vec(cap: usize) -> Result<Vec<u8>, &'static str> {
        let mut v = Vec::new();
        v.try_reserve_exact(cap).map_err(|_| OOM)?;
        Ok(v)
    }
    // Fills `v` to `len` with a pattern derived from `seed` and checks it back.
    fn fill_check(v: &mut Vec<u8>, len: usize, seed: u8) -> Result<(), &'static str> {
        v.clear();
        v.extend((0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed));
        let ok = v
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i as u8).wrapping_mul(31) ^ seed);
        ok.then_some(())
            .ok_or("contents changed under the allocation")
    }
    fn placed(ptr: *const u8, align: usize) -> Result<(), &'static str> {
        if super::paging::virt_to_phys(ptr as u64).is_none() {
            return Err("block is not in the direct map");
        }
        (ptr as usize)
            .is_multiple_of(align)
            .then_some(())
            .ok_or("block is not aligned as promised")
    }
    match case {
        "box-every-class" => {
            for size in [
                1usize,
                8,
                32,
                33,
                100,
                128,
                1000,
                4096,
                5000,
                65_536,
                300_000,
                1 << 20,
            ] {
                let mut v = try_vec(size)?;
                placed(v.as_ptr(), size.max(32).next_power_of_two())?;
                fill_check(&mut v, size, size as u8)?;
            }
            Ok(())
        }
        "vec-1M" => {
            let mut v = try_vec(KMALLOC_MAX)?;
            placed(v.as_ptr(), KMALLOC_MAX)?;
            fill_check(&mut v, KMALLOC_MAX, 0x5a)
        }
        "vec-3M" => {
            let len = 3 << 20;
            let mut v = try_vec(len)?;
            placed(v.as_ptr(), 4 << 20)?;
            fill_check(&mut v, len, 0xa5)
        }
        "align-4096" => {
            let layout = Layout::from_size_align(16, 4096).map_err(|_| "bad layout")?;
            // SAFETY: a non-zero-size layout; the block is freed below with the
            // same layout and not used after.
            let p = unsafe { alloc::alloc::alloc(layout) };
            if p.is_null() {
                return Err(OOM);
            }
            let r = placed(p, 4096);
            // SAFETY: `p` came from `alloc` with `layout` just above.
            unsafe { alloc::alloc::dealloc(p, layout) };
            r
        }
        "grow-past-1M" => {
            let len = 1_500_000;
            let mut v: Vec<u8> = Vec::new();
            for i in 0..len {
                v.try_reserve(1).map_err(|_| OOM)?;
                v.push((i as u8).wrapping_mul(31) ^ 0x3c);
            }
            let ok = v
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i as u8).wrapping_mul(31) ^ 0x3c);
            placed(v.as_ptr(), 4096)?;
            ok.then_some(()).ok_or("contents lost while growing")
        }
        _ => Err("unknown heap selftest case"),
    }
}
