//! `free all` has the slab caches give back their empty slabs only once the
//! command has freed every heap object of its own (issue #9 break 4).
//!
//! In the kernel, the shell's heap (the command line, its parsed words, error
//! texts) is the slab allocator itself. A cache shrink while one of those objects
//! is live cannot give back the slab holding it; freed a moment later, that object
//! leaves the slab empty and kept, and `memstat` after `free all` no longer equals
//! boot. This test counts the heap blocks live on the test's thread (a counting
//! global allocator) when the kernel's `kmem_cache_shrink_all` is called: there
//! must be no more than when the line was typed.

use core::fmt;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mm::layout::DIRECT_MAP_BASE;
use mm::{MmError, MmStat};
use shell::{Diagnostics, MemAccess, Object, PageApi, Platform, Shell, SlabApi, Trap, VersionInfo};

thread_local! {
    /// Heap blocks allocated minus blocks freed on this thread.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: every call is forwarded to `System` unchanged; the counter is a
// constant-initialised thread local without destructor (never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = LIVE.try_with(|n| n.set(n.get() - 1));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static HEAP: Counting = Counting;

fn live() -> i64 {
    LIVE.with(|n| n.get())
}

/// Discards output; frees anything; records the heap count at each shrink
/// (without allocating).
#[derive(Default)]
struct K {
    shrinks: usize,
    live_at_shrink: i64,
    refuse: Option<u64>,
}

impl fmt::Write for K {
    fn write_str(&mut self, _: &str) -> fmt::Result {
        Ok(())
    }
}

impl Platform for K {
    fn version_info(&self) -> VersionInfo {
        VersionInfo {
            version: "0.1.0",
            boot: "test",
            cmdline: String::new(),
            tainted: None,
        }
    }
    fn clear_screen(&mut self) {}
    fn reboot(&mut self) -> &'static str {
        "no"
    }
    fn poweroff(&mut self) -> &'static str {
        "no"
    }
    fn trap(&mut self, _: Trap) -> Result<(), &'static str> {
        Err("no")
    }
}

impl PageApi for K {
    fn mm_stat(&self) -> MmStat {
        MmStat::default()
    }
}

impl MemAccess for K {}

impl Diagnostics for K {}
impl shell::IoApi for K {}

impl shell::VmApi for K {}
impl shell::VmallocApi for K {}

impl SlabApi for K {
    fn kfree(&mut self, virt: u64) -> Result<(), MmError> {
        if self.refuse == Some(virt) {
            return Err(MmError::InvalidFree(virt));
        }
        Ok(())
    }
    fn kmem_cache_shrink_all(&mut self) -> Result<u64, MmError> {
        self.shrinks += 1;
        self.live_at_shrink = live();
        Ok(0)
    }
}

fn kmalloc(i: u64) -> Object {
    Object::Kmalloc {
        virt: DIRECT_MAP_BASE + 0x1000 * i,
        phys: 0x1000 * i,
        size: 32,
        obj: 32,
    }
}

#[test]
fn free_all_shrinks_the_caches_once_the_command_is_off_the_heap() {
    let mut sh = Shell::new();
    let mut k = K::default();
    sh.banner_and_prompt(&mut k);
    // A typed `free all` with nothing to free, with handles, with a handle the
    // kernel refuses (the error line's text is on the heap too).
    for (handles, refuse) in [(0, None), (3, None), (3, Some(2))] {
        for i in 1..=handles {
            sh.handles_mut().insert(kmalloc(i)).unwrap();
        }
        k.refuse = refuse.map(|i| DIRECT_MAP_BASE + 0x1000 * i);
        let shrinks = k.shrinks;
        sh.feed_bytes(b"free all\r", &mut k);
        assert_eq!(k.shrinks, shrinks + 1, "free all shrinks the caches once");
        // After the command only the handles it could not free are on the heap.
        let after = live();
        assert!(
            k.live_at_shrink <= after,
            "{handles} handles, refusing {refuse:?}: {} heap blocks live at the shrink, \
             {after} once the command is over",
            k.live_at_shrink
        );
        assert_eq!(sh.handles().len(), refuse.iter().count());
        k.refuse = None;
        sh.feed_bytes(b"free all\r", &mut k);
        assert!(sh.handles().is_empty());
    }
}
