//! The boot frame allocator, which hands out physical frames before the buddy
//! allocator exists (for the kernel's page tables, `mem_map` and the slab bitmap),
//! and [`merge_ranges`], which turns the RAM ranges of the memory map into the
//! disjoint list `Buddy::page_init` takes.
//!
//! [`BootAlloc`] bumps upwards through the [`MemKind::Usable`] regions of a
//! sanitized [`MemoryMap`] below a limit (the end of the direct map), preferring
//! memory at or above [`DMA_LIMIT`] so that ZONE_DMA stays free for those who need
//! it, and never below [`LOW_FLOOR`] (1 MiB). Every range starts page aligned;
//! nothing is ever freed. [`BootAlloc::used`] lists what was handed out, so the
//! buddy allocator can mark those frames `KERNEL_INIT`. Fixed capacity: it runs
//! before any heap exists. The kernel wraps it for the `x86_64` crate's
//! `FrameAllocator` (`kernel/src/memory/bootmem.rs`).

use crate::memmap::{MemKind, MemoryMap};
use crate::{DMA_LIMIT, PAGE_SIZE};

/// Most separate ranges [`BootAlloc::used`] holds (touching ones are merged).
pub const MAX_USED: usize = 16;

/// Lowest physical address the boot allocator hands out: the first MiB holds
/// firmware and loader structures on PCs.
pub const LOW_FLOOR: u64 = 0x10_0000;

/// Frames in the run [`BootAlloc::alloc_frame`] takes at a time.
pub const FRAME_RUN: u64 = 64;

const PAGE: u64 = PAGE_SIZE as u64;

/// A bump allocator over the usable RAM below `limit`.
#[derive(Clone)]
pub struct BootAlloc {
    map: MemoryMap,
    limit: u64,
    /// Current frame run [cur, end) of [`BootAlloc::alloc_frame`].
    cur: u64,
    end: u64,
    used: [(u64, u64); MAX_USED],
    nused: usize,
}

impl BootAlloc {
    /// An allocator over `map`'s usable RAM below `limit`.
    pub fn new(map: &MemoryMap, limit: u64) -> Self {
        BootAlloc {
            map: map.clone(),
            limit,
            cur: 0,
            end: 0,
            used: [(0, 0); MAX_USED],
            nused: 0,
        }
    }

    /// Physical ranges handed out so far.
    pub fn used(&self) -> &[(u64, u64)] {
        &self.used[..self.nused]
    }

    fn record(&mut self, start: u64, end: u64) {
        if let Some(last) = self.used[..self.nused].last_mut() {
            if last.1 == start {
                last.1 = end;
                return;
            }
        }
        assert!(self.nused < MAX_USED, "boot allocator: too many ranges");
        self.used[self.nused] = (start, end);
        self.nused += 1;
    }

    /// Finds a usable range of `bytes` (page aligned) not overlapping what was
    /// handed out, preferring addresses at or above 16 MiB.
    fn find(&self, bytes: u64) -> Option<u64> {
        let overlaps = |s: u64, e: u64| self.used().iter().any(|&(a, b)| s < b && a < e);
        for above_dma in [true, false] {
            for r in self
                .map
                .entries()
                .iter()
                .filter(|r| r.kind == MemKind::Usable)
            {
                let lo = if above_dma {
                    r.start.max(DMA_LIMIT)
                } else {
                    r.start.max(LOW_FLOOR)
                };
                let mut s = (lo + PAGE - 1) & !(PAGE - 1);
                let hi = r.end.min(self.limit);
                while s + bytes <= hi {
                    if !overlaps(s, s + bytes) {
                        return Some(s);
                    }
                    // Skip past the range we collide with.
                    let next = self
                        .used()
                        .iter()
                        .filter(|&&(a, b)| s < b && a < s + bytes)
                        .map(|&(_, b)| b)
                        .max();
                    s = next.unwrap_or(hi);
                }
            }
        }
        None
    }

    /// Allocates `bytes` of physically contiguous, page-aligned memory.
    pub fn alloc_contiguous(&mut self, bytes: u64) -> Option<u64> {
        let bytes = (bytes + PAGE - 1) & !(PAGE - 1);
        let s = self.find(bytes)?;
        self.record(s, s + bytes);
        Some(s)
    }

    /// Gives back the unused rest of the current frame run, so that [`used`]
    /// lists exactly what was handed out. Further frames start a new run.
    ///
    /// [`used`]: BootAlloc::used
    pub fn trim(&mut self) {
        if self.cur < self.end {
            if let Some(last) = self.used[..self.nused].last_mut() {
                if last.1 == self.end {
                    last.1 = self.cur;
                }
            }
            self.end = self.cur;
        }
    }

    /// Allocates one frame.
    pub fn alloc_frame(&mut self) -> Option<u64> {
        if self.cur >= self.end {
            // Take a fresh run of 64 frames (or fewer, at the end of RAM).
            let run = FRAME_RUN * PAGE;
            let s = self.find(run).or_else(|| self.find(PAGE))?;
            let e = if self.find(run) == Some(s) {
                s + run
            } else {
                s + PAGE
            };
            self.cur = s;
            self.end = e;
            self.record(s, e);
        }
        let f = self.cur;
        self.cur += PAGE;
        Some(f)
    }
}

/// Sorts ranges `[start, end)` and merges touching or overlapping ones, in place;
/// returns the merged prefix.
pub fn merge_ranges<T: Ord + Copy>(r: &mut [(T, T)]) -> &[(T, T)] {
    r.sort_unstable();
    let mut n = 0;
    for i in 0..r.len() {
        if n > 0 && r[i].0 <= r[n - 1].1 {
            r[n - 1].1 = r[n - 1].1.max(r[i].1);
        } else {
            r[n] = r[i];
            n += 1;
        }
    }
    &r[..n]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memmap::MemRegion;

    const MIB: u64 = 1 << 20;

    fn map(entries: &[(u64, u64, MemKind)]) -> MemoryMap {
        let mut m = MemoryMap::new();
        for &(start, end, kind) in entries {
            m.push(MemRegion { start, end, kind });
        }
        m.sanitize();
        m
    }

    /// QEMU's PVH map for 64 MiB with the kernel image at 1 MiB..3 MiB and a
    /// reserved hole at 40..41 MiB.
    fn pc_map() -> MemoryMap {
        map(&[
            (0, 0x9_fc00, MemKind::Usable),
            (0x9_fc00, 0x10_0000, MemKind::Reserved),
            (0x10_0000, 64 * MIB, MemKind::Usable),
            (MIB, 3 * MIB, MemKind::Kernel),
            (40 * MIB, 41 * MIB, MemKind::Reserved),
        ])
    }

    fn usable(m: &MemoryMap, s: u64, e: u64) -> bool {
        m.entries()
            .iter()
            .any(|r| r.kind == MemKind::Usable && r.start <= s && e <= r.end)
    }

    #[test]
    fn ranges_are_page_aligned_and_above_dma_first() {
        let m = map(&[(0x10_0000, 0x200_0000, MemKind::Usable)]);
        let mut a = BootAlloc::new(&m, u64::MAX);
        let p = a.alloc_contiguous(100).unwrap();
        assert_eq!(p, DMA_LIMIT);
        let q = a.alloc_contiguous(PAGE + 1).unwrap();
        assert_eq!(q, DMA_LIMIT + PAGE, "100 bytes take a whole page");
        assert_eq!(a.used(), [(DMA_LIMIT, DMA_LIMIT + 3 * PAGE)]);

        let m = map(&[(20 * MIB + 0x123, 30 * MIB, MemKind::Usable)]);
        let mut a = BootAlloc::new(&m, u64::MAX);
        assert_eq!(a.alloc_contiguous(1), Some(20 * MIB + PAGE));
        for _ in 0..100 {
            assert_eq!(a.alloc_frame().unwrap() % PAGE, 0);
        }
    }

    #[test]
    fn never_hands_out_what_is_not_usable_ram() {
        let m = pc_map();
        let mut a = BootAlloc::new(&m, 64 * MIB);
        let mut got = Vec::new();
        while let Some(p) = a.alloc_contiguous(3 * MIB) {
            got.push((p, p + 3 * MIB));
        }
        while let Some(f) = a.alloc_frame() {
            got.push((f, f + PAGE));
        }
        assert!(got.len() > 100);
        for &(s, e) in &got {
            assert!(usable(&m, s, e), "{s:#x}..{e:#x} is not usable RAM");
            assert!(s >= LOW_FLOOR, "{s:#x} is below 1 MiB");
            assert!(e <= 64 * MIB);
        }
        // No two allocations overlap.
        got.sort_unstable();
        for w in got.windows(2) {
            assert!(w[0].1 <= w[1].0, "{:x?} overlaps {:x?}", w[0], w[1]);
        }
        // The used list covers every allocation.
        for &(s, e) in &got {
            assert!(a.used().iter().any(|&(us, ue)| us <= s && e <= ue));
        }
    }

    #[test]
    fn above_dma_is_taken_before_dma() {
        let m = pc_map();
        let mut a = BootAlloc::new(&m, 20 * MIB);
        // 4 MiB fit above 16 MiB and below the limit, so they go there.
        assert_eq!(a.alloc_contiguous(4 * MIB), Some(16 * MIB));
        // The rest must come from below 16 MiB, after the kernel image.
        assert_eq!(a.alloc_contiguous(MIB), Some(3 * MIB));
        assert_eq!(a.alloc_frame(), Some(4 * MIB));
    }

    #[test]
    fn exhaustion_returns_none_and_keeps_working() {
        // 64 KiB of usable RAM above 1 MiB: 16 frames, less than a 64-frame run.
        let m = map(&[(0x10_0000, 0x11_0000, MemKind::Usable)]);
        let mut a = BootAlloc::new(&m, u64::MAX);
        assert_eq!(a.alloc_contiguous(0x2_0000), None, "larger than RAM");
        let frames: Vec<u64> = core::iter::from_fn(|| a.alloc_frame()).collect();
        assert_eq!(frames.len(), 16);
        assert_eq!(frames[0], 0x10_0000);
        assert_eq!(a.alloc_frame(), None);
        assert_eq!(a.alloc_contiguous(1), None);
        assert_eq!(a.used(), [(0x10_0000, 0x11_0000)]);
        // The limit cuts RAM: nothing at or above it.
        let mut a = BootAlloc::new(&pc_map(), 2 * MIB);
        assert_eq!(a.alloc_frame(), None, "1..3 MiB is the kernel image");
    }

    #[test]
    fn skips_past_ranges_already_handed_out_and_holes() {
        let m = pc_map();
        let mut a = BootAlloc::new(&m, 64 * MIB);
        // After 16..36 MiB are taken, 5 MiB no longer fit before the hole at
        // 40 MiB, so they go after it; 4 MiB still fit before it.
        assert_eq!(a.alloc_contiguous(20 * MIB), Some(16 * MIB));
        assert_eq!(a.alloc_contiguous(5 * MIB), Some(41 * MIB));
        assert_eq!(a.alloc_contiguous(4 * MIB), Some(36 * MIB));
    }

    #[test]
    fn frame_runs_and_trim() {
        let m = pc_map();
        let mut a = BootAlloc::new(&m, 64 * MIB);
        let f0 = a.alloc_frame().unwrap();
        assert_eq!(f0, 16 * MIB);
        assert_eq!(a.alloc_frame(), Some(f0 + PAGE));
        // A whole run is reserved while it is being used...
        assert_eq!(a.used(), [(f0, f0 + FRAME_RUN * PAGE)]);
        // ...so a contiguous allocation goes after it, merged in the used list;
        // trim can then no longer give the run's tail back (the kernel takes
        // its contiguous blocks before any frame).
        assert_eq!(a.alloc_contiguous(PAGE), Some(f0 + FRAME_RUN * PAGE));
        a.trim();
        assert_eq!(a.used(), [(f0, f0 + (FRAME_RUN + 1) * PAGE)]);
        // Without that, trim gives back exactly the frames not handed out.
        let mut a = BootAlloc::new(&m, 64 * MIB);
        a.alloc_frame().unwrap();
        a.alloc_frame().unwrap();
        a.trim();
        assert_eq!(a.used(), [(f0, f0 + 2 * PAGE)]);
        // The next frame starts a new run right after, merged in the used list.
        assert_eq!(a.alloc_frame(), Some(f0 + 2 * PAGE));
        assert_eq!(a.used(), [(f0, f0 + (2 + FRAME_RUN) * PAGE)]);
    }

    #[test]
    fn a_run_shrinks_to_one_frame_where_64_do_not_fit() {
        // 8 frames above 16 MiB, then plenty below.
        let m = map(&[
            (2 * MIB, 8 * MIB, MemKind::Usable),
            (16 * MIB, 16 * MIB + 8 * PAGE, MemKind::Usable),
        ]);
        let mut a = BootAlloc::new(&m, u64::MAX);
        // The first run does not fit above 16 MiB, so it is taken below.
        assert_eq!(a.alloc_frame(), Some(2 * MIB));
        assert_eq!(a.used(), [(2 * MIB, 2 * MIB + FRAME_RUN * PAGE)]);
        let m = map(&[(16 * MIB, 16 * MIB + 8 * PAGE, MemKind::Usable)]);
        let mut a = BootAlloc::new(&m, u64::MAX);
        for i in 0..8 {
            assert_eq!(a.alloc_frame(), Some(16 * MIB + i * PAGE));
        }
        assert_eq!(a.used(), [(16 * MIB, 16 * MIB + 8 * PAGE)]);
        assert_eq!(a.alloc_frame(), None);
    }

    #[test]
    #[should_panic(expected = "too many ranges")]
    fn too_many_separate_ranges_is_an_invariant_failure() {
        // One-page islands of RAM with holes between: every page is its own range.
        let islands: Vec<_> = (0..=MAX_USED as u64)
            .map(|i| {
                (
                    16 * MIB + 2 * i * PAGE,
                    16 * MIB + (2 * i + 1) * PAGE,
                    MemKind::Usable,
                )
            })
            .collect();
        let mut a = BootAlloc::new(&map(&islands), u64::MAX);
        for i in 0..MAX_USED {
            assert!(a.alloc_contiguous(PAGE).is_some());
            assert_eq!(a.used().len(), i + 1);
        }
        a.alloc_contiguous(PAGE);
    }

    #[test]
    fn merge_touching_and_overlapping_ranges() {
        let mut r = [
            (10, 20),
            (0, 5),
            (5, 7),
            (15, 30),
            (40, 50),
            (30, 31),
            (45, 46),
        ];
        assert_eq!(merge_ranges(&mut r), [(0, 7), (10, 31), (40, 50)]);
        let mut r: [(u32, u32); 0] = [];
        assert_eq!(merge_ranges(&mut r), []);
        let mut r = [(3, 4), (1, 2)];
        assert_eq!(merge_ranges(&mut r), [(1, 2), (3, 4)], "a gap of one stays");
        let mut r = [(0, 100), (10, 20), (20, 30)];
        assert_eq!(merge_ranges(&mut r), [(0, 100)], "contained ranges vanish");
    }
}
