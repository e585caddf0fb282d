//! Who may use the zones' reserves: Linux's `PF_MEMALLOC` task flag and its
//! `memalloc_*_save()`/`restore()` scopes, for memkern's single task.
//!
//! The kernel's own heap (Rust's `alloc` in the kernel) allocates with
//! `Gfp::MEMALLOC` and may go below the zones' `min` watermarks, so that printing
//! an answer, parsing a line or keeping the shell's tables never fails when a user
//! has taken every page the watermarks allow. Heap memory whose size the *user*
//! drives (a table that grows by one entry per command, a buffer as large as asked)
//! must not live on that reserve: such code runs inside [`charged_to_user`], where
//! the heap allocates like any user request (watermarks obeyed), and uses fallible
//! allocation (`try_reserve`), so running out is an `error:` line, not a panic.
//!
//! The flag is global: memkern has one task and the heap is never used from an
//! interrupt handler. Host tests never read it (their heap is the host's).

use crate::Gfp;
use core::sync::atomic::{AtomicBool, Ordering};

static CHARGED_TO_USER: AtomicBool = AtomicBool::new(false);

/// Runs `f` with the kernel heap's allocations charged to the user: they obey the
/// watermarks like any shell command's, so `try_reserve` inside fails instead of
/// eating the kernel's reserve. Nests; the previous state is restored on return.
pub fn charged_to_user<R>(f: impl FnOnce() -> R) -> R {
    let old = CHARGED_TO_USER.swap(true, Ordering::Relaxed);
    let r = f();
    CHARGED_TO_USER.store(old, Ordering::Relaxed);
    r
}

/// The gfp flags of a kernel-heap allocation now: `GFP_KERNEL | MEMALLOC`, or
/// `GFP_KERNEL` inside [`charged_to_user`]; always with `NOFAULT` (fault injection
/// fails what commands ask the allocators for, never the kernel's own heap).
pub fn heap_gfp() -> Gfp {
    if CHARGED_TO_USER.load(Ordering::Relaxed) {
        Gfp::KERNEL | Gfp::NOFAULT
    } else {
        Gfp::KERNEL | Gfp::MEMALLOC | Gfp::NOFAULT
    }
}

/// True inside [`charged_to_user`].
pub fn is_charged_to_user() -> bool {
    CHARGED_TO_USER.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        assert_eq!(heap_gfp(), Gfp::KERNEL | Gfp::MEMALLOC | Gfp::NOFAULT);
        charged_to_user(|| {
            assert_eq!(heap_gfp(), Gfp::KERNEL | Gfp::NOFAULT);
            charged_to_user(|| assert!(is_charged_to_user()));
            assert!(is_charged_to_user());
        });
        assert!(!is_charged_to_user());
    }
}
