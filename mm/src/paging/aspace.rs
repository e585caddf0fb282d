//! Address spaces: a new top-level table whose kernel half (PML4 entries
//! 256..512) is copied from the kernel's root, so the kernel stays mapped while
//! it is loaded, and whose user half is its own. Every function of the mapper, the
//! DragonOS and the MOS layers takes its [`root`](AddressSpace::root).
//!
//! The kernel half is shared, not owned: mappings made there through any root
//! land in the shared tables (its page-directory-pointer tables are never freed),
//! but a PML4 entry the kernel adds after an address space was made is not seen
//! by it. [`destroy`](AddressSpace::destroy) frees the user half's tables and
//! drops every reference its `page_insert` mappings held.

use core::fmt;

use x86_64::structures::paging::PhysFrame;

use super::entry::{ADDR_MASK, P, PS, REF};
use super::frames::{PageRefs, TableFrames};
use super::mapper::{MapError, Mapper};
use crate::{Pfn, PhysMem};

/// A top-level table owned by its creator. Not `Clone`: one owner destroys it.
#[derive(Debug, PartialEq, Eq)]
pub struct AddressSpace {
    root: PhysFrame,
}

/// What [`AddressSpace::destroy`] released.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DestroyStats {
    /// Table frames freed, the root included.
    pub tables: u64,
    /// Leaf mappings removed.
    pub mappings: u64,
    /// References dropped (`page_insert` mappings).
    pub refs_dropped: u64,
    /// References that could not be dropped (the frame's count was already 0).
    pub bad_refs: u64,
}

/// Why an address space was not destroyed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DestroyError {
    /// It is the running table.
    Running,
}

impl fmt::Display for DestroyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestroyError::Running => f.write_str("the address space is the running one"),
        }
    }
}

impl AddressSpace {
    /// A new top-level table sharing the kernel half of `kernel_root`.
    /// Errors: `OutOfMemory`.
    pub fn new<M: PhysMem, F: TableFrames>(
        m: &mut Mapper<'_, M, F>,
        kernel_root: PhysFrame,
    ) -> Result<AddressSpace, MapError> {
        let root = m.frames.alloc_table(m.mem).ok_or(MapError::OutOfMemory)?;
        let (k, r) = (
            kernel_root.start_address().as_u64(),
            root.start_address().as_u64(),
        );
        for i in 256..512 {
            let e = m.mem.read_entry(k + i * 8);
            m.mem.write_entry(r + i * 8, e);
        }
        Ok(AddressSpace { root })
    }

    /// Its top-level table.
    pub fn root(&self) -> PhysFrame {
        self.root
    }

    /// Frees every table of the user half and the root, dropping the reference
    /// of every `page_insert` mapping. Refused (and handed back) if it is
    /// `running`, the root loaded in CR3. No flush is owed: it is not loaded.
    pub fn destroy<M: PhysMem, F: TableFrames + PageRefs>(
        self,
        m: &mut Mapper<'_, M, F>,
        running: PhysFrame,
    ) -> Result<DestroyStats, (AddressSpace, DestroyError)> {
        if self.root == running {
            return Err((self, DestroyError::Running));
        }
        let mut st = DestroyStats::default();
        let r = self.root.start_address().as_u64();
        for i in 0..256 {
            let e = m.mem.read_entry(r + i * 8);
            if e & P != 0 && e & PS == 0 {
                free_tree(m, e & ADDR_MASK, 3, &mut st);
            }
        }
        m.free_table(self.root.start_address().as_u64());
        st.tables += 1;
        Ok(st)
    }
}

/// Frees the table at `t` (level `level`) and everything below it.
fn free_tree<M: PhysMem, F: TableFrames + PageRefs>(
    m: &mut Mapper<'_, M, F>,
    t: u64,
    level: u8,
    st: &mut DestroyStats,
) {
    for i in 0..512 {
        let e = m.mem.read_entry(t + i * 8);
        if e & P == 0 {
            continue;
        }
        if level > 1 && e & PS == 0 {
            free_tree(m, e & ADDR_MASK, level - 1, st);
            continue;
        }
        st.mappings += 1;
        if e & REF != 0 {
            match m.frames.put_page(Pfn(((e & ADDR_MASK) >> 12) as u32)) {
                Ok(_) => st.refs_dropped += 1,
                Err(_) => st.bad_refs += 1,
            }
        }
    }
    m.free_table(t);
    st.tables += 1;
}
