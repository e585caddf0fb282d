//! Page-table entries as memkern uses them: the four levels, the page sizes, and
//! the ignored bits the mapper keeps its own bookkeeping in.
//!
//! - Table entries (PML4, PDPT and PD entries that point to a table) carry in bits
//!   52..=61, which the hardware ignores there, the number of present entries of
//!   the table they point to. Unmapping decrements it and frees the table when it
//!   reaches 0: emptiness is one read, not a 512-entry scan. Every table below a
//!   root must have been built by this mapper (or carry correct counts); a count of
//!   0 on a table that is reached is treated as "unknown" and never freed.
//! - Leaf entries with bit 9 ([`PAGE_REF`]) were made by `page_insert` and hold one
//!   reference on their frame's `struct Page`, dropped when they are removed.
//!   Leaves without it are plain physical mappings (devices, the direct map).

use core::fmt;

use x86_64::structures::paging::PageTableFlags;

/// Physical address bits of a 4 KiB leaf or of a table entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Physical address bits of a 2 MiB leaf (bit 12 is its PAT bit).
pub const ADDR_MASK_2M: u64 = 0x000f_ffff_ffe0_0000;
/// Physical address bits of a 1 GiB leaf.
pub const ADDR_MASK_1G: u64 = 0x000f_ffff_c000_0000;
pub(crate) const P: u64 = 1;
pub(crate) const W: u64 = 1 << 1;
pub(crate) const U: u64 = 1 << 2;
pub(crate) const PS: u64 = 1 << 7;
pub(crate) const REF: u64 = 1 << 9;
/// Leaf bit 9: the mapping holds a reference on its frame's `struct Page`
/// (made by `page_insert`).
pub const PAGE_REF: PageTableFlags = PageTableFlags::BIT_9;
/// First bit of the live-entry count in a table entry.
pub const COUNT_SHIFT: u32 = 52;
/// The live-entry count field of a table entry (bits 52..=61).
pub const COUNT_MASK: u64 = 0x3ff << COUNT_SHIFT;
pub(crate) const COUNT_ONE: u64 = 1 << COUNT_SHIFT;
/// Flags a caller may not pass to a map function: the page size decides
/// `HUGE_PAGE` (bit 7, which is also the PAT bit of a 4 KiB leaf), bit 9 is
/// [`PAGE_REF`], bits 52..=62 are the mapper's counts in table entries.
pub const OWNED_FLAGS: u64 = PS | REF | (0x7ff << 52);

/// The live-entry count stored in table entry `raw`.
#[inline]
pub fn live_count(raw: u64) -> u64 {
    (raw & COUNT_MASK) >> COUNT_SHIFT
}

/// Index of `virt` in its table at `level` (1 = PT .. 4 = PML4).
#[inline(always)]
pub(crate) fn index(virt: u64, level: u8) -> u64 {
    (virt >> (3 + 9 * level as u32)) & 511
}

/// A level of the four-level tables.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    /// Page table: 4 KiB leaves.
    Pt = 1,
    /// Page directory: page tables or 2 MiB leaves.
    Pd = 2,
    /// Page-directory-pointer table: page directories or 1 GiB leaves.
    Pdpt = 3,
    /// The top-level table.
    Pml4 = 4,
}

impl Level {
    /// The level numbered `n` (1..=4).
    pub(crate) fn from_u8(n: u8) -> Level {
        match n {
            1 => Level::Pt,
            2 => Level::Pd,
            3 => Level::Pdpt,
            _ => Level::Pml4,
        }
    }

    /// The short name: `PML4`, `PDPT`, `PD`, `PT`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Pml4 => "PML4",
            Level::Pdpt => "PDPT",
            Level::Pd => "PD",
            Level::Pt => "PT",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The size of a leaf. The mapper maps 4 KiB and 2 MiB pages; 1 GiB pages are
/// recognised by walks (a loader may make them) but never created.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum PageSize {
    /// 4 KiB, a PT entry.
    Size4KiB,
    /// 2 MiB, a PD entry with `HUGE_PAGE`.
    Size2MiB,
    /// 1 GiB, a PDPT entry with `HUGE_PAGE`.
    Size1GiB,
}

impl PageSize {
    /// Bytes covered.
    #[inline]
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4KiB => 1 << 12,
            PageSize::Size2MiB => 1 << 21,
            PageSize::Size1GiB => 1 << 30,
        }
    }

    /// The level of its leaf entry (1, 2 or 3).
    #[inline]
    pub const fn leaf_level(self) -> u8 {
        match self {
            PageSize::Size4KiB => 1,
            PageSize::Size2MiB => 2,
            PageSize::Size1GiB => 3,
        }
    }

    pub(crate) fn of_level(level: u8) -> PageSize {
        match level {
            1 => PageSize::Size4KiB,
            2 => PageSize::Size2MiB,
            _ => PageSize::Size1GiB,
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageSize::Size4KiB => "4 KiB",
            PageSize::Size2MiB => "2 MiB",
            PageSize::Size1GiB => "1 GiB",
        })
    }
}

/// The flags of `raw` as the hardware reads them at a leaf (`leaf`) or a table
/// entry: the mapper's count bits are left out of table entries.
pub fn decode(raw: u64, leaf: bool) -> PageTableFlags {
    let bits = if leaf { raw } else { raw & !COUNT_MASK };
    PageTableFlags::from_bits_truncate(bits & !ADDR_MASK)
}

/// Writes `flags` as `NAME|NAME`, with bit 9 of a leaf as `PAGE_REF`.
pub(crate) fn write_flags(f: &mut fmt::Formatter<'_>, flags: PageTableFlags) -> fmt::Result {
    let mut first = true;
    for (name, v) in flags.iter_names() {
        let name = if v == PAGE_REF { "PAGE_REF" } else { name };
        if !first {
            f.write_str("|")?;
        }
        f.write_str(name)?;
        first = false;
    }
    if first {
        f.write_str("-")?;
    }
    Ok(())
}
