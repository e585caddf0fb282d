//! The MOS page-table functions over the [`Mapper`]: `pgdir_walk`,
//! `page_insert`, `page_lookup`, `page_remove`.
//!
//! Mappings made by `page_insert` are 4 KiB, carry [`PAGE_REF`](super::PAGE_REF)
//! and hold one reference on their frame's `struct Page` (`get_page`), dropped by
//! `page_remove`, by any unmap, or by [`AddressSpace::destroy`](super::AddressSpace::destroy);
//! the frame is freed when its last reference goes. Virtual addresses are rounded
//! down to their page, as in MOS.

use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

use super::entry::{decode, PageSize, OWNED_FLAGS, P, PS, REF};
use super::frames::{PageRefs, TableFrames};
use super::mapper::{count_up, leaf_pfn, MapError, Mapper, UnmapError};
use super::tlb::Flush;
use super::walk::walk;
use super::WalkEnd;
use crate::{Pfn, PhysMem};

/// A page-table entry: where it is and what it holds (MOS `Pte *`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Pte {
    /// The entry's physical address.
    pub addr: PhysAddr,
    /// Its raw value.
    pub raw: u64,
}

/// What `page_lookup` found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PageLookup {
    /// The frame `va` maps to (inside a 2 MiB page: the 4 KiB frame of `va`).
    pub pfn: Pfn,
    /// The leaf entry.
    pub pte: Pte,
    /// Its size.
    pub size: PageSize,
    /// Its flags.
    pub flags: PageTableFlags,
}

impl<M: PhysMem, F: TableFrames> Mapper<'_, M, F> {
    /// MOS `pgdir_walk(pgdir, va, create, &ppte)`: the 4 KiB entry (PT entry) for
    /// `va`, present or not. Without `create`, `Ok(None)` where a table is
    /// missing; with it, missing tables are made (an empty page table made so
    /// stays until something is mapped and unmapped under it, or the address
    /// space is destroyed).
    ///
    /// Errors: `HugePageInTheWay` (a 2 MiB or 1 GiB page covers `va`), `BadEntry`,
    /// `OutOfMemory`.
    pub fn pgdir_walk(
        &mut self,
        table: PhysFrame,
        va: VirtAddr,
        create: bool,
    ) -> Result<Option<Pte>, MapError> {
        let v = va.align_down(4096u64).as_u64();
        if create {
            let (ea, _) = self.ensure_tables::<1>(table, v, 0)?;
            let raw = self.mem.read_entry(ea);
            return Ok(Some(Pte {
                addr: PhysAddr::new_truncate(ea),
                raw,
            }));
        }
        let w = walk(self.mem, table, va);
        let last = w.steps()[w.steps().len() - 1];
        match w.end {
            WalkEnd::Page {
                size: PageSize::Size4KiB,
                ..
            } => Ok(Some(Pte {
                addr: last.entry_addr,
                raw: last.raw,
            })),
            WalkEnd::Page { .. } => Err(MapError::HugePageInTheWay {
                virt: va,
                level: last.level,
            }),
            WalkEnd::NotPresent {
                level: super::Level::Pt,
            } => Ok(Some(Pte {
                addr: last.entry_addr,
                raw: last.raw,
            })),
            WalkEnd::NotPresent { .. } => Ok(None),
            WalkEnd::Reserved { level } => Err(MapError::BadEntry { virt: va, level }),
        }
    }

    /// MOS `page_lookup(pgdir, va, &ppte)`: the frame `va` maps to and its
    /// entry, or `None` if unmapped.
    pub fn page_lookup(&self, table: PhysFrame, va: VirtAddr) -> Option<PageLookup> {
        let w = walk(self.mem, table, va);
        let last = w.steps()[w.steps().len() - 1];
        match w.end {
            WalkEnd::Page { phys, size } => Some(PageLookup {
                pfn: Pfn::containing(phys.as_u64()),
                pte: Pte {
                    addr: last.entry_addr,
                    raw: last.raw,
                },
                size,
                flags: decode(last.raw, true),
            }),
            _ => None,
        }
    }
}

impl<M: PhysMem, F: TableFrames + PageRefs> Mapper<'_, M, F> {
    /// MOS `page_insert(pgdir, pp, va, perm)`: maps frame `page` at `va` with
    /// `perm | PRESENT`, taking a reference on it. Whatever `va` mapped before is
    /// replaced (its reference dropped if it held one); re-inserting the same
    /// page updates `perm` and keeps the count as it was. The token flushes `va`.
    ///
    /// Errors (nothing changed): `OwnedFlags`, `PageRef` (the frame is not an
    /// allocated page), `HugePageInTheWay`, `BadEntry`, `OutOfMemory`.
    pub fn page_insert(
        &mut self,
        table: PhysFrame,
        page: Pfn,
        va: VirtAddr,
        perm: PageTableFlags,
    ) -> Result<Flush, MapError> {
        let virt = va.align_down(4096u64);
        let v = virt.as_u64();
        if perm.bits() & OWNED_FLAGS != 0 {
            return Err(MapError::OwnedFlags(PageTableFlags::from_bits_retain(
                perm.bits() & OWNED_FLAGS,
            )));
        }
        let new = page.phys() | perm.bits() | P | REF;
        self.frames.get_page(page).map_err(MapError::PageRef)?;
        let (ea, parent) = match self.ensure_tables::<1>(table, v, new & super::entry::U) {
            Ok(x) => x,
            Err(e) => {
                let _ = self.frames.put_page(page);
                return Err(e);
            }
        };
        let old = self.mem.read_entry(ea);
        self.mem.write_entry(ea, new);
        if old & P == 0 {
            count_up(self.mem, parent);
        } else if old & REF != 0 {
            // The old mapping's reference (the same page's, if re-inserted).
            let _ = self.frames.put_page(leaf_pfn(old));
        }
        debug_assert!(old & PS == 0);
        Ok(Flush::new(virt))
    }

    /// MOS `page_remove(pgdir, va)`: unmaps the 4 KiB page at `va`, dropping its
    /// reference if it held one (the frame is freed at 0).
    ///
    /// Errors (nothing changed): those of [`Mapper::unmap`] for a 4 KiB page.
    pub fn page_remove(&mut self, table: PhysFrame, va: VirtAddr) -> Result<Flush, UnmapError> {
        let (_, f) = self.unmap(table, va.align_down(4096u64), PageSize::Size4KiB)?;
        Ok(f)
    }
}
