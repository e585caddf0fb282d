//! The DragonOS page-table functions, as thin typed wrappers over the
//! [`Mapper`]: same names and meanings, `Result`s with a reason where DragonOS
//! returns 0 / `-EFAULT`.
//!
//! "The running table" is the root the caller passes as `current` (the kernel
//! passes CR3). A table given by address is physical if `is_phys`, else a
//! direct-map virtual address. Lengths are rounded up to 4 KiB; addresses must be
//! 4 KiB aligned. A failed map changes nothing (what it had mapped is unmapped
//! and flushed); a failed unmap changes nothing (the range is checked first).
//! Which kernel ranges may be touched at all is the caller's policy.

use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

use super::frames::{PageRefs, TableFrames};
use super::mapper::{MapError, MapStats, Mapper, UnmapError, UnmapStats};
use super::tlb::Tlb;
use crate::PhysMem;

/// The root frame named by `table` / `is_phys`.
fn table_root(mem: &impl PhysMem, table: u64, is_phys: bool) -> Option<PhysFrame> {
    let phys = if is_phys { table } else { mem.phys_of(table)? };
    PhysFrame::from_start_address(PhysAddr::try_new(phys).ok()?).ok()
}

/// What is wrong with a `proc` function's table or start address.
enum BadProcArg {
    /// Not a page-table frame.
    Table(u64),
    /// Not canonical.
    Virt(u64),
}

impl From<BadProcArg> for MapError {
    fn from(b: BadProcArg) -> MapError {
        match b {
            BadProcArg::Table(t) => MapError::BadTable(t),
            BadProcArg::Virt(v) => MapError::NonCanonical(v),
        }
    }
}

impl From<BadProcArg> for UnmapError {
    fn from(b: BadProcArg) -> UnmapError {
        match b {
            BadProcArg::Table(t) => UnmapError::BadTable(t),
            BadProcArg::Virt(v) => UnmapError::NonCanonical(v),
        }
    }
}

/// The `proc` functions' root frame and start address.
fn root_and_virt(
    mem: &impl PhysMem,
    table: u64,
    is_phys: bool,
    virt: u64,
) -> Result<(PhysFrame, VirtAddr), BadProcArg> {
    let root = table_root(mem, table, is_phys).ok_or(BadProcArg::Table(table))?;
    let v = VirtAddr::try_new(virt).map_err(|_| BadProcArg::Virt(virt))?;
    Ok((root, v))
}

impl<M: PhysMem, F: TableFrames> Mapper<'_, M, F> {
    /// DragonOS `mm_map_phys_addr(virt_addr_start, phys_addr_start, length,
    /// flags, use4k)`: maps `[phys, phys + len)` at `virt` in the running table
    /// `current` and flushes. With `use4k` false, 2 MiB pages wherever `virt` and
    /// `phys` are both 2 MiB aligned and 2 MiB remain; the unaligned head and tail
    /// (or all of it, if `virt` and `phys` differ modulo 2 MiB) are 4 KiB pages.
    #[allow(clippy::too_many_arguments)]
    pub fn mm_map_phys_addr(
        &mut self,
        current: PhysFrame,
        virt: u64,
        phys: u64,
        len: u64,
        flags: PageTableFlags,
        use4k: bool,
        tlb: &mut impl Tlb,
    ) -> Result<MapStats, MapError> {
        self.mm_map_proc_page_table(
            current.start_address().as_u64(),
            true,
            virt,
            phys,
            len,
            flags,
            false,
            true,
            use4k,
            tlb,
        )
    }

    /// DragonOS `mm_map_proc_page_table(proc_page_table_addr, is_phys,
    /// virt_addr_start, phys_addr_start, length, flags, user, flush, use4k)`:
    /// maps into any top-level table. `user` adds `USER_ACCESSIBLE` (to the pages
    /// and the tables above them); `flush` invalidates the new pages through `tlb`
    /// (x86 does not cache not-present entries, so `false` is safe for a range
    /// that was unmapped). Page sizes as in
    /// [`mm_map_phys_addr`](Self::mm_map_phys_addr).
    ///
    /// Errors: `BadTable`, `EmptyRange`, `NonCanonical`, `PhysTooLarge`,
    /// `Misaligned`, and those of [`Mapper::map`] at the first page that failed.
    #[allow(clippy::too_many_arguments)]
    pub fn mm_map_proc_page_table(
        &mut self,
        table: u64,
        is_phys: bool,
        virt: u64,
        phys: u64,
        len: u64,
        flags: PageTableFlags,
        user: bool,
        flush: bool,
        use4k: bool,
        tlb: &mut impl Tlb,
    ) -> Result<MapStats, MapError> {
        let (root, virt) = root_and_virt(self.mem, table, is_phys, virt)?;
        let phys = PhysAddr::try_new(phys).map_err(|_| MapError::PhysTooLarge(phys))?;
        let flags = if user {
            flags | PageTableFlags::USER_ACCESSIBLE
        } else {
            flags
        };
        let (f, stats) = self.map_range(root, virt, phys, len, flags, use4k, tlb)?;
        if flush {
            f.flush(tlb);
        } else {
            f.ignore();
        }
        Ok(stats)
    }
}

impl<M: PhysMem, F: TableFrames + PageRefs> Mapper<'_, M, F> {
    /// DragonOS `mm_unmap_proc_table(proc_page_table_addr, is_phys,
    /// virt_addr_start, length)`: unmaps every page of the range in any top-level
    /// table (holes skipped, references of `page_insert` mappings dropped, empty
    /// tables freed) and flushes through `tlb` (harmless if the table is not live).
    ///
    /// Errors: `BadTable`, and those of [`Mapper::unmap_range`].
    pub fn mm_unmap_proc_table(
        &mut self,
        table: u64,
        is_phys: bool,
        virt: u64,
        len: u64,
        tlb: &mut impl Tlb,
    ) -> Result<UnmapStats, UnmapError> {
        let (root, virt) = root_and_virt(self.mem, table, is_phys, virt)?;
        let (f, stats) = self.unmap_range(root, virt, len)?;
        f.flush(tlb);
        Ok(stats)
    }

    /// DragonOS `mm_unmap(virt_addr, length)`: [`mm_unmap_proc_table`](Self::mm_unmap_proc_table)
    /// on the running table `current`.
    pub fn mm_unmap(
        &mut self,
        current: PhysFrame,
        virt: u64,
        len: u64,
        tlb: &mut impl Tlb,
    ) -> Result<UnmapStats, UnmapError> {
        self.mm_unmap_proc_table(current.start_address().as_u64(), true, virt, len, tlb)
    }

    /// DragonOS `mm_unmap_addr(virt_addr, length)`: the same as [`mm_unmap`](Self::mm_unmap)
    /// (DragonOS has both names).
    pub fn mm_unmap_addr(
        &mut self,
        current: PhysFrame,
        virt: u64,
        len: u64,
        tlb: &mut impl Tlb,
    ) -> Result<UnmapStats, UnmapError> {
        self.mm_unmap(current, virt, len, tlb)
    }
}
