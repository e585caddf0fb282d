//! TLB invalidation that cannot be forgotten.
//!
//! Every operation that removes or changes a translation returns a `#[must_use]`
//! token: [`Flush`] for one page, [`FlushRange`] for a range. Dropping a token
//! unused is a compiler warning; `ignore()` says on purpose that no flush is
//! needed (e.g. the table is not loaded in CR3). A [`FlushRange`] is precise: it
//! remembers up to [`INVLPG_MAX`] leaf addresses and issues one `invlpg` each (one
//! per 2 MiB page, which covers it whole); past that it asks for a full flush (a
//! CR3 reload). `invlpg` also drops the CPU's paging-structure caches, so freed
//! page tables are covered by the same tokens.
//!
//! The CPU side is the [`Tlb`] trait: the kernel implements it with `invlpg` and
//! a CR3 reload; the host uses [`SimTlb`], which counts both and also caches
//! translations like a real TLB, so that a test that forgets a flush reads a
//! stale translation and fails.

use alloc::collections::BTreeMap;

use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

use super::entry::PageSize;
use super::walk::translate;
use crate::PhysMem;

/// Leaf pages a [`FlushRange`] invalidates one by one; past this it flushes all.
/// Linux's `tlb_single_page_flush_ceiling` is 33. Ours is 16: the kernel's
/// `bench map` (n `invlpg` against one full flush plus refilling the TLB) put
/// the crossover between 8 and 32 pages under QEMU/TCG.
pub const INVLPG_MAX: usize = 16;

/// What the CPU offers to invalidate translations.
pub trait Tlb {
    /// Invalidates the translation of the page containing `virt` (and the
    /// paging-structure caches).
    fn invlpg(&mut self, virt: VirtAddr);
    /// Invalidates every non-global translation (a CR3 reload).
    fn flush_all(&mut self);
}

/// The flush owed for one changed page.
#[must_use = "the TLB may still hold the old translation: call .flush(tlb) or .ignore()"]
#[derive(Debug, PartialEq, Eq)]
pub struct Flush(VirtAddr);

impl Flush {
    pub(crate) fn new(virt: VirtAddr) -> Flush {
        Flush(virt)
    }
    /// The page whose translation changed.
    pub fn addr(&self) -> VirtAddr {
        self.0
    }
    /// Invalidates it.
    #[inline]
    pub fn flush(self, tlb: &mut impl Tlb) {
        tlb.invlpg(self.0);
    }
    /// Drops the token without flushing (the table is not live, or the change was
    /// not-present to present, which x86 never caches).
    #[inline]
    pub fn ignore(self) {}
}

/// The flushes owed for a range of changes: exact addresses up to
/// [`INVLPG_MAX`], else a full flush.
#[must_use = "the TLB may still hold the old translations: call .flush(tlb) or .ignore()"]
#[derive(Debug, PartialEq, Eq)]
pub struct FlushRange {
    addrs: [u64; INVLPG_MAX],
    len: usize,
    all: bool,
}

impl Default for FlushRange {
    fn default() -> Self {
        FlushRange::new()
    }
}

impl FlushRange {
    /// Nothing to flush yet.
    pub const fn new() -> FlushRange {
        FlushRange {
            addrs: [0; INVLPG_MAX],
            len: 0,
            all: false,
        }
    }
    /// Adds the flush of one page.
    #[inline]
    pub fn push(&mut self, f: Flush) {
        if self.len < INVLPG_MAX {
            self.addrs[self.len] = f.0.as_u64();
            self.len += 1;
        } else {
            self.all = true;
        }
    }
    /// Adds every flush of `other`.
    pub fn merge(&mut self, other: FlushRange) {
        self.all |= other.all;
        for &a in &other.addrs[..other.len] {
            self.push(Flush(VirtAddr::new_truncate(a)));
        }
    }
    /// Whether nothing needs flushing.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && !self.all
    }
    /// Whether flushing will reload CR3 rather than `invlpg` page by page.
    pub fn is_full(&self) -> bool {
        self.all
    }
    /// Issues the flushes: one `invlpg` per changed page, or one full flush.
    pub fn flush(self, tlb: &mut impl Tlb) {
        if self.all {
            tlb.flush_all();
        } else {
            for &a in &self.addrs[..self.len] {
                tlb.invlpg(VirtAddr::new_truncate(a));
            }
        }
    }
    /// Drops the token without flushing (the table is not live).
    pub fn ignore(self) {}
}

/// A host TLB: counts `invlpg`s and full flushes, and caches the translations
/// [`SimTlb::translate`] looked up until they are invalidated, as a CPU does.
#[derive(Clone, Debug, Default)]
pub struct SimTlb {
    /// `invlpg`s issued.
    pub invlpgs: u64,
    /// Full flushes issued.
    pub flush_alls: u64,
    /// Cached translations by page base: (physical base, size, leaf flags).
    cache: BTreeMap<u64, (PhysAddr, PageSize, PageTableFlags)>,
}

impl SimTlb {
    /// An empty TLB.
    pub fn new() -> SimTlb {
        SimTlb::default()
    }

    /// Translates `virt` as the CPU would: from the cache if a translation of its
    /// page is there, else by walking `root` and caching the result.
    pub fn translate(
        &mut self,
        mem: &impl PhysMem,
        root: PhysFrame,
        virt: VirtAddr,
    ) -> Option<(PhysAddr, PageSize, PageTableFlags)> {
        let v = virt.as_u64();
        for size in [PageSize::Size4KiB, PageSize::Size2MiB, PageSize::Size1GiB] {
            let base = v & !(size.bytes() - 1);
            if let Some(&(p, s, f)) = self.cache.get(&base) {
                if s == size {
                    return Some((p + (v - base), s, f));
                }
            }
        }
        let (p, s, f) = translate(mem, root, virt)?;
        let off = v & (s.bytes() - 1);
        self.cache.insert(v - off, (p - off, s, f));
        Some((p, s, f))
    }

    /// Number of cached translations.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

impl Tlb for SimTlb {
    fn invlpg(&mut self, virt: VirtAddr) {
        self.invlpgs += 1;
        let v = virt.as_u64();
        for size in [PageSize::Size4KiB, PageSize::Size2MiB, PageSize::Size1GiB] {
            let base = v & !(size.bytes() - 1);
            if matches!(self.cache.get(&base), Some(&(_, s, _)) if s == size) {
                self.cache.remove(&base);
            }
        }
    }
    fn flush_all(&mut self) {
        self.flush_alls += 1;
        self.cache.clear();
    }
}
