//! The boot frame allocator: hands out physical frames before the buddy
//! allocator exists (for the kernel's page tables and the `mem_map` array).
//!
//! It bumps upwards through the usable regions of the memory map inside the
//! direct-map limit, preferring memory above ZONE_DMA so that DMA memory stays
//! free for those who need it. Every frame it hands out stays allocated for the
//! life of the kernel; [`BootAlloc::used`] lists them so the buddy allocator can
//! mark them `KERNEL_INIT`.

use crate::boot::{MemKind, MemoryMap};
use mm::{DMA_LIMIT, PAGE_SIZE};
use x86_64::structures::paging::{FrameAllocator, PhysFrame, Size4KiB};
use x86_64::PhysAddr;

const MAX_USED: usize = 16;

/// A bump allocator over the usable RAM below `limit`.
pub struct BootAlloc {
    map: MemoryMap,
    limit: u64,
    /// Current bump range [cur, end) and its region index.
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
                    r.start.max(0x10_0000)
                };
                let mut s = (lo + PAGE_SIZE as u64 - 1) & !(PAGE_SIZE as u64 - 1);
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
        let bytes = (bytes + PAGE_SIZE as u64 - 1) & !(PAGE_SIZE as u64 - 1);
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
            let run = 64 * PAGE_SIZE as u64;
            let s = self.find(run).or_else(|| self.find(PAGE_SIZE as u64))?;
            let e = if self.find(run) == Some(s) {
                s + run
            } else {
                s + PAGE_SIZE as u64
            };
            self.cur = s;
            self.end = e;
            self.record(s, e);
        }
        let f = self.cur;
        self.cur += PAGE_SIZE as u64;
        Some(f)
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
