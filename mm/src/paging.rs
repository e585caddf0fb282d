//! Four-level x86_64 page tables, free of hardware: walk, translate, map and unmap
//! 4 KiB and 2 MiB pages, the DragonOS and MOS page-table functions, and address
//! spaces that share the kernel half.
//!
//! Tables are 4 KiB frames reached through [`PhysMem`](crate::PhysMem) (in the
//! kernel: the direct map); new table frames come from a [`TableFrames`]
//! implementation (the buddy allocator at run time, the boot frame allocator while
//! the kernel builds its first tables), and mappings made by `page_insert` hold a
//! reference on their frame's `struct Page` through [`PageRefs`]. The only things
//! that need the CPU, `invlpg` and a CR3 reload, are behind the [`Tlb`] trait, and
//! every operation that changes a live translation hands back a `#[must_use]`
//! flush token ([`Flush`], [`FlushRange`]).
//!
//! - [`entry`]: levels, page sizes and the entry bits the mapper owns (live-entry
//!   counts in bits 52..=61 of table entries, the page-reference bit 9 of leaves).
//! - [`frames`]: where table frames come from and how page references are held.
//! - [`tlb`]: the flush tokens, the `Tlb` trait and the host's [`SimTlb`].
//! - [`walk`]: `walk` (every level, printable) and `translate`.
//! - [`mapper`]: [`Mapper`]: map / unmap of single pages and of ranges, typed errors.
//! - [`dragonos`]: `mm_map_phys_addr`, `mm_map_proc_page_table`, `mm_unmap_proc_table`,
//!   `mm_unmap`, `mm_unmap_addr`.
//! - [`mos`]: `pgdir_walk`, `page_insert`, `page_lookup`, `page_remove`.
//! - [`aspace`]: [`AddressSpace`]: a new top-level table sharing the kernel half.

pub mod aspace;
pub mod dragonos;
pub mod entry;
pub mod frames;
pub mod mapper;
pub mod mos;
#[cfg(test)]
mod tests;
pub mod tlb;
pub mod walk;

pub use aspace::{AddressSpace, DestroyError, DestroyStats};
pub use entry::{Level, PageSize, PAGE_REF};
pub use frames::{PageRefs, TableFrames};
pub use mapper::{MapError, MapStats, Mapper, UnmapError, UnmapStats, Unmapped};
pub use mos::{PageLookup, Pte};
pub use tlb::{Flush, FlushRange, SimTlb, Tlb, INVLPG_MAX};
pub use walk::{translate, walk, Walk, WalkEnd, WalkStep};
pub use x86_64::structures::paging::{PageTableFlags, PhysFrame};
pub use x86_64::{PhysAddr, VirtAddr};
