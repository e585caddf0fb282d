//! The mapper: map and unmap 4 KiB and 2 MiB pages, one at a time or as ranges,
//! with typed errors.
//!
//! Intermediate tables are created on demand (entries `PRESENT|WRITABLE`, plus
//! `USER_ACCESSIBLE` when a user page is mapped below them) and freed as soon as
//! their last entry goes, using the live-entry counts of [`super::entry`]. The
//! page-directory-pointer tables of the kernel half (PML4 entries 256..512) are
//! never freed: address spaces share them by copying those PML4 entries.
//!
//! Unmapping part of a 2 MiB page is refused ([`UnmapError::PartOfHugePage`]);
//! the page is not split. Unmapping a `page_insert` mapping (bit
//! [`PAGE_REF`](super::PAGE_REF)) drops the reference it held.
//!
//! A [`Mapper`] remembers the last page table and page directory it walked to
//! (in one root); the common map/unmap/translate of a page next to others then
//! reads only the leaf entry and its table's count, and a 4 KiB page in another
//! page table of the remembered directory costs one directory entry more.
//! Freeing any table, or [`Mapper::mem_mut`], forgets them.

use core::fmt;

use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

use super::entry::{
    index, Level, PageSize, ADDR_MASK, COUNT_MASK, COUNT_ONE, OWNED_FLAGS, P, PS, REF, U, W,
};
use super::frames::{PageRefs, TableFrames};
use super::tlb::{Flush, FlushRange, Tlb};
use super::walk::{translate, walk, Walk};
use crate::{MmError, Pfn, PhysMem};

/// Why a mapping was refused (nothing was changed).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MapError {
    /// A virtual address outside the canonical halves (or a range crossing the hole).
    NonCanonical(u64),
    /// A physical address beyond 52 bits.
    PhysTooLarge(u64),
    /// An address not aligned to the page size.
    Misaligned {
        /// The virtual address.
        virt: u64,
        /// The physical address.
        phys: u64,
        /// The page size asked for.
        size: PageSize,
    },
    /// A zero length.
    EmptyRange,
    /// A table address that is not a 4 KiB-aligned frame (or, given as a virtual
    /// address, not in the direct map).
    BadTable(u64),
    /// 1 GiB pages are walked but never made.
    UnsupportedSize(PageSize),
    /// Flags the mapper owns (`HUGE_PAGE`, bit 9, bits 52..=62).
    OwnedFlags(PageTableFlags),
    /// The page is mapped already.
    AlreadyMapped {
        /// The page.
        virt: VirtAddr,
        /// What it maps to.
        phys: PhysAddr,
        /// Its size.
        size: PageSize,
    },
    /// A larger page covers the address.
    HugePageInTheWay {
        /// The address.
        virt: VirtAddr,
        /// The level of the large leaf (PD: 2 MiB, PDPT: 1 GiB).
        level: Level,
    },
    /// A 2 MiB page was asked for where a page table (of 4 KiB mappings) is.
    TableInTheWay {
        /// The address.
        virt: VirtAddr,
    },
    /// A PML4 entry with the reserved `HUGE_PAGE` bit.
    BadEntry {
        /// The address.
        virt: VirtAddr,
        /// The level.
        level: Level,
    },
    /// No frame for a new page table.
    OutOfMemory,
    /// `page_insert`: the frame's reference could not be taken.
    PageRef(MmError),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapError::NonCanonical(v) => write!(f, "{v:#x} is not a canonical virtual address"),
            MapError::PhysTooLarge(p) => write!(f, "{p:#x} is beyond 52-bit physical addresses"),
            MapError::Misaligned { virt, phys, size } => write!(
                f,
                "virtual {virt:#x} / physical {phys:#x} not aligned to a {size} page"
            ),
            MapError::EmptyRange => f.write_str("length 0"),
            MapError::BadTable(t) => write!(f, "{t:#x} is not a page-table frame"),
            MapError::UnsupportedSize(s) => write!(f, "{s} pages cannot be mapped"),
            MapError::OwnedFlags(fl) => write!(
                f,
                "flags {:#x} are set by the mapper, not by callers",
                fl.bits()
            ),
            MapError::AlreadyMapped { virt, phys, size } => write!(
                f,
                "{:#x} is already mapped ({size} page to {:#x})",
                virt.as_u64(),
                phys.as_u64()
            ),
            MapError::HugePageInTheWay { virt, level } => write!(
                f,
                "{:#x} is inside a {} page",
                virt.as_u64(),
                PageSize::of_level(level as u8)
            ),
            MapError::TableInTheWay { virt } => write!(
                f,
                "{:#x}: 4 KiB pages are mapped in this 2 MiB range",
                virt.as_u64()
            ),
            MapError::BadEntry { virt, level } => write!(
                f,
                "{:#x}: {level} entry has the reserved HUGE_PAGE bit",
                virt.as_u64()
            ),
            MapError::OutOfMemory => f.write_str("out of memory for a page table"),
            MapError::PageRef(e) => write!(f, "cannot reference the page: {e}"),
        }
    }
}

/// Why an unmapping was refused (nothing was changed).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnmapError {
    /// A virtual address outside the canonical halves (or a range crossing the hole).
    NonCanonical(u64),
    /// An address not aligned to the page size.
    Misaligned {
        /// The address.
        virt: u64,
        /// The page size asked for.
        size: PageSize,
    },
    /// A zero length.
    EmptyRange,
    /// A table address that is not a 4 KiB-aligned frame.
    BadTable(u64),
    /// Nothing is mapped there.
    NotMapped {
        /// The address.
        virt: VirtAddr,
        /// The level whose entry is not present.
        level: Level,
    },
    /// The address is part of a larger page, which is not split.
    PartOfHugePage {
        /// The address.
        virt: VirtAddr,
        /// Where the large page starts.
        page: VirtAddr,
        /// Its size.
        size: PageSize,
    },
    /// A 2 MiB unmap where 4 KiB pages are mapped.
    SizeMismatch {
        /// The address.
        virt: VirtAddr,
    },
    /// A PML4 entry with the reserved `HUGE_PAGE` bit.
    BadEntry {
        /// The address.
        virt: VirtAddr,
    },
    /// The reference held by a `page_insert` mapping could not be dropped.
    PageRef(MmError),
}

impl fmt::Display for UnmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            UnmapError::NonCanonical(v) => {
                write!(f, "{v:#x} is not a canonical virtual address")
            }
            UnmapError::Misaligned { virt, size } => {
                write!(f, "{virt:#x} is not aligned to a {size} page")
            }
            UnmapError::EmptyRange => f.write_str("length 0"),
            UnmapError::BadTable(t) => write!(f, "{t:#x} is not a page-table frame"),
            UnmapError::NotMapped { virt, level } => write!(
                f,
                "{:#x} is not mapped (not present at {level})",
                virt.as_u64()
            ),
            UnmapError::PartOfHugePage { virt, page, size } => write!(
                f,
                "{:#x} is part of the {size} page at {:#x}; unmap all of it",
                virt.as_u64(),
                page.as_u64()
            ),
            UnmapError::SizeMismatch { virt } => write!(
                f,
                "{:#x} is mapped with 4 KiB pages, not a 2 MiB page",
                virt.as_u64()
            ),
            UnmapError::BadEntry { virt } => write!(
                f,
                "{:#x}: PML4 entry has the reserved HUGE_PAGE bit",
                virt.as_u64()
            ),
            UnmapError::PageRef(e) => write!(f, "cannot drop the page's reference: {e}"),
        }
    }
}

/// What an unmap removed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Unmapped {
    /// The physical page it mapped.
    pub phys: PhysAddr,
    /// Its size.
    pub size: PageSize,
    /// Its leaf flags (with [`PAGE_REF`](super::PAGE_REF) if it held a reference,
    /// now dropped).
    pub flags: PageTableFlags,
}

impl Unmapped {
    /// What removing leaf `leaf` of `size` unmapped.
    #[inline(always)]
    fn of(leaf: u64, size: PageSize) -> Unmapped {
        Unmapped {
            phys: PhysAddr::new_truncate(leaf & ADDR_MASK & !(size.bytes() - 1)),
            size,
            flags: super::entry::decode(leaf, true),
        }
    }
}

/// Pages a range operation mapped.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MapStats {
    /// 4 KiB pages.
    pub pages_4k: u64,
    /// 2 MiB pages.
    pub pages_2m: u64,
}

/// Pages a range operation unmapped.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct UnmapStats {
    /// 4 KiB pages.
    pub pages_4k: u64,
    /// 2 MiB pages.
    pub pages_2m: u64,
    /// 1 GiB pages (made by someone else; removed whole).
    pub pages_1g: u64,
    /// References dropped (mappings made by `page_insert`).
    pub refs_dropped: u64,
    /// References that could not be dropped because the frame's count was
    /// already 0 (only possible if someone dropped a mapping's reference behind
    /// the mapper's back); the mappings are removed all the same.
    pub bad_refs: u64,
}

/// The entry addresses a walk passed, by level (`eas[level - 1]`), and the leaf.
struct Found {
    eas: [u64; 4],
    leaf: u64,
    level: u8,
}

/// No cached walk (no root and no region key is all ones).
const NONE: u64 = u64::MAX;

/// The last table a walk reached at one level (like a CPU's paging-structure
/// caches): while the mapper lives it is the only writer of the tables (it
/// holds `&mut M`), so the table of the same root and region stays valid until
/// the mapper frees a table, which empties every cache.
#[derive(Clone, Copy, Debug)]
struct WalkCache {
    /// `v >> (12 + 9 * level)`: the region the table covers, [`NONE`] if empty.
    key: u64,
    /// The leaf table's frame.
    table: u64,
    /// The entry that points to it (holds its live count).
    parent: u64,
    /// Every entry above it has `USER_ACCESSIBLE`.
    user: bool,
}

const EMPTY: WalkCache = WalkCache {
    key: NONE,
    table: 0,
    parent: 0,
    user: false,
};

/// Page-table operations over memory `mem`, with table frames from `frames`.
/// Cheap to make. While it lives it is the only writer of the tables (it holds
/// `&mut M`), which lets it remember the last page table and page directory it
/// walked to: repeated operations in the same 2 MiB (4 KiB pages) or 1 GiB
/// (2 MiB pages, and 4 KiB pages through the directory) region skip the upper
/// levels. Keep one mapper for a batch of operations to benefit.
pub struct Mapper<'a, M: PhysMem, F> {
    pub(crate) mem: &'a mut M,
    pub(crate) frames: &'a mut F,
    /// The root both cached walks are in, [`NONE`] if none.
    cache_root: u64,
    /// `cache[0]`: page table (4 KiB leaves); `cache[1]`: page directory.
    cache: [WalkCache; 2],
}

impl<'a, M: PhysMem, F: TableFrames> Mapper<'a, M, F> {
    /// A mapper over `mem` and `frames`.
    pub fn new(mem: &'a mut M, frames: &'a mut F) -> Self {
        Mapper {
            mem,
            frames,
            cache_root: NONE,
            cache: [EMPTY; 2],
        }
    }

    /// The memory the tables are in.
    pub fn mem(&self) -> &M {
        self.mem
    }

    /// The memory, for writing (forgets the cached walks: the caller may change
    /// tables behind the mapper's back).
    pub fn mem_mut(&mut self) -> &mut M {
        self.forget();
        self.mem
    }

    /// The frame source (and page references).
    pub fn frames(&mut self) -> &mut F {
        self.frames
    }

    /// The memory and the frame source together, for code that builds tables
    /// with both (forgets the cached walks, as [`Mapper::mem_mut`] does).
    pub fn parts(&mut self) -> (&mut M, &mut F) {
        self.forget();
        (self.mem, self.frames)
    }

    /// Empties the walk caches.
    #[inline(always)]
    fn forget(&mut self) {
        self.cache_root = NONE;
        self.cache = [EMPTY; 2];
    }

    /// The page table of `v` through the cached page directory (of the cached
    /// root, which the caller checked): one directory entry read.
    #[inline(always)]
    fn pt_via_pd(&self, v: u64) -> Option<WalkCache> {
        let d = &self.cache[1];
        if d.key != v >> 30 {
            return None;
        }
        let ea = d.table + index(v, 2) * 8;
        let e = self.mem.read_entry(ea);
        if e & (P | PS) != P {
            return None;
        }
        Some(WalkCache {
            key: v >> 21,
            table: e & ADDR_MASK,
            parent: ea,
            user: d.user && e & U != 0,
        })
    }

    /// Returns a table frame and forgets the cached walks.
    #[cold]
    pub(crate) fn free_table(&mut self, t: u64) {
        self.forget();
        self.frames
            .free_table(PhysFrame::containing_address(PhysAddr::new_truncate(t)));
    }

    /// [`walk`](super::walk::walk) of `virt` in `root`.
    pub fn walk(&self, root: PhysFrame, virt: VirtAddr) -> Walk {
        walk(self.mem, root, virt)
    }

    /// [`translate`](super::walk::translate) of `virt` in `root`, reading only
    /// the page-table entry when the page table of `virt` is the cached one, and
    /// the directory entry too when its page directory is (a 4 KiB leaf; any
    /// other case takes the full walk).
    #[inline(always)]
    pub fn translate(
        &self,
        root: PhysFrame,
        virt: VirtAddr,
    ) -> Option<(PhysAddr, PageSize, PageTableFlags)> {
        let v = virt.as_u64();
        if self.cache_root != root.start_address().as_u64() {
            return translate_uncached(self.mem, root, virt);
        }
        let table = if self.cache[0].key == v >> 21 {
            self.cache[0].table
        } else {
            match self.pt_via_pd(v) {
                Some(c) => c.table,
                None => return translate_uncached(self.mem, root, virt),
            }
        };
        let e = self.mem.read_entry(table + index(v, 1) * 8);
        if e & P == 0 {
            return None;
        }
        Some((
            PhysAddr::new_truncate((e & ADDR_MASK) | (v & 0xfff)),
            PageSize::Size4KiB,
            super::entry::decode(e, true),
        ))
    }

    /// Maps the page of `size` at `virt` to `phys` with `flags` (`PRESENT` is
    /// added; `HUGE_PAGE` too for 2 MiB). The token flushes `virt`; a new mapping
    /// replaces nothing, so `.ignore()` is right unless the caller's policy says
    /// otherwise.
    ///
    /// Errors: `UnsupportedSize` (1 GiB), `Misaligned`, `OwnedFlags`,
    /// `AlreadyMapped`, `HugePageInTheWay`, `TableInTheWay` (2 MiB over a page
    /// table), `BadEntry`, `OutOfMemory`.
    #[inline(always)]
    pub fn map(
        &mut self,
        root: PhysFrame,
        virt: VirtAddr,
        phys: PhysAddr,
        size: PageSize,
        flags: PageTableFlags,
    ) -> Result<Flush, MapError> {
        let (v, p) = (virt.as_u64(), phys.as_u64());
        let leaf_level = match size {
            PageSize::Size4KiB => 1,
            PageSize::Size2MiB => 2,
            PageSize::Size1GiB => return Err(MapError::UnsupportedSize(size)),
        };
        if (v | p) & (size.bytes() - 1) != 0 {
            return Err(MapError::Misaligned {
                virt: v,
                phys: p,
                size,
            });
        }
        if flags.bits() & OWNED_FLAGS != 0 {
            return Err(MapError::OwnedFlags(PageTableFlags::from_bits_retain(
                flags.bits() & OWNED_FLAGS,
            )));
        }
        if leaf_level == 1 {
            self.map_raw::<1>(root, v, p | flags.bits() | P)?;
        } else {
            self.map_raw::<2>(root, v, p | flags.bits() | P | PS)?;
        }
        Ok(Flush::new(virt))
    }

    /// Writes leaf `leaf` for `v` at level `L`, creating tables; counts it.
    #[inline(always)]
    pub(crate) fn map_raw<const L: u8>(
        &mut self,
        root: PhysFrame,
        v: u64,
        leaf: u64,
    ) -> Result<(), MapError> {
        let (ea, parent) = self.ensure_tables::<L>(root, v, leaf & U)?;
        let old = self.mem.read_entry(ea);
        if old & P != 0 {
            return Err(already(v, old, L));
        }
        self.mem.write_entry(ea, leaf);
        count_up(self.mem, parent);
        Ok(())
    }

    /// The address of the entry for `v` at level `L` and of the entry that
    /// points to its table, creating missing tables (with `USER_ACCESSIBLE` in
    /// their entries if `user` is `U`).
    #[inline(always)]
    pub(crate) fn ensure_tables<const L: u8>(
        &mut self,
        root: PhysFrame,
        v: u64,
        user: u64,
    ) -> Result<(u64, u64), MapError> {
        if let Some(c) = self.cached_leaf_table::<L>(root, v) {
            if user == 0 || c.user {
                return Ok((c.table + index(v, L) * 8, c.parent));
            }
        }
        self.ensure_slow(root, v, L, user)
    }

    /// The cached table of level `L` (1: page table, 2: page directory) for
    /// `v` in `root`; a page table found through the cached directory is
    /// cached from now on.
    #[inline(always)]
    fn cached_leaf_table<const L: u8>(&mut self, root: PhysFrame, v: u64) -> Option<WalkCache> {
        if self.cache_root != root.start_address().as_u64() {
            return None;
        }
        let c = &self.cache[L as usize - 1];
        if c.key == v >> (12 + 9 * L as u32) {
            return Some(*c);
        }
        if L != 1 {
            return None;
        }
        let c = self.pt_via_pd(v)?;
        self.cache[0] = c;
        Some(c)
    }

    /// [`ensure_tables`](Self::ensure_tables) by walking from the root; fills the cache.
    #[inline(never)]
    fn ensure_slow(
        &mut self,
        root: PhysFrame,
        v: u64,
        leaf_level: u8,
        user: u64,
    ) -> Result<(u64, u64), MapError> {
        let r = root.start_address().as_u64();
        let mut table = r;
        let mut parent = None;
        let mut level = 4u8;
        let mut all_user = true;
        while level > leaf_level {
            let ea = table + index(v, level) * 8;
            let e = self.mem.read_entry(ea);
            if e & P == 0 {
                let (t, p) = self.create_chain(ea, parent, v, level, leaf_level, user)?;
                all_user &= user != 0;
                self.remember(r, v, leaf_level, t, p, all_user);
                return Ok((t + index(v, leaf_level) * 8, p));
            }
            if e & PS != 0 {
                let virt = VirtAddr::new_truncate(v);
                let level = Level::from_u8(level);
                return Err(if level == Level::Pml4 {
                    MapError::BadEntry { virt, level }
                } else {
                    MapError::HugePageInTheWay { virt, level }
                });
            }
            if e & user != user {
                self.mem.write_entry(ea, e | user);
            }
            all_user &= (e | user) & U != 0;
            parent = Some(ea);
            table = e & ADDR_MASK;
            level -= 1;
            if level == 2 && leaf_level == 1 {
                // The page directory too, for the next miss in its 1 GiB.
                self.remember(r, v, 2, table, ea, all_user);
            }
        }
        // The leaf table is never the root (leaf_level < 4).
        let p = parent.unwrap_or(r);
        self.remember(r, v, leaf_level, table, p, all_user);
        Ok((table + index(v, leaf_level) * 8, p))
    }

    /// Caches the leaf table `table` (pointed to by entry `parent`) of `v`.
    #[inline(always)]
    fn remember(&mut self, root: u64, v: u64, leaf_level: u8, table: u64, parent: u64, user: bool) {
        if leaf_level <= 2 {
            if self.cache_root != root {
                self.forget();
                self.cache_root = root;
            }
            self.cache[leaf_level as usize - 1] = WalkCache {
                key: v >> (12 + 9 * leaf_level as u32),
                table,
                parent,
                user,
            };
        }
    }

    /// Creates the tables from the empty entry `ea` (at `level`, in the table
    /// whose own entry is `parent`) down to `leaf_level`; all frames are taken
    /// first, so running out changes nothing.
    #[cold]
    fn create_chain(
        &mut self,
        ea: u64,
        parent: Option<u64>,
        v: u64,
        level: u8,
        leaf_level: u8,
        user: u64,
    ) -> Result<(u64, u64), MapError> {
        let n = (level - leaf_level) as usize;
        let mut fr = [0u64; 3];
        for i in 0..n {
            match self.frames.alloc_table(self.mem) {
                Some(f) => fr[i] = f.start_address().as_u64(),
                None => {
                    for &f in &fr[..i] {
                        // Never linked: no cached walk can name them.
                        self.frames
                            .free_table(PhysFrame::containing_address(PhysAddr::new(f)));
                    }
                    return Err(MapError::OutOfMemory);
                }
            }
        }
        // Each new table but the last gets one entry (the next table); the last
        // gets its first entry from the caller, who counts it.
        let mut e = ea;
        for (i, &t) in fr[..n].iter().enumerate() {
            let count = if i + 1 < n { COUNT_ONE } else { 0 };
            self.mem.write_entry(e, t | P | W | user | count);
            if i + 1 < n {
                e = t + index(v, level - 1 - i as u8) * 8;
            }
        }
        if let Some(pa) = parent {
            count_up(self.mem, pa);
        }
        Ok((fr[n - 1], e))
    }

    /// Walks to the leaf covering `v`, expecting it at `leaf_level`.
    #[inline(always)]
    fn find_leaf(&self, root: PhysFrame, v: u64, leaf_level: u8) -> Result<Found, UnmapError> {
        let mut eas = [0u64; 4];
        let mut table = root.start_address().as_u64();
        let mut level = 4u8;
        loop {
            let ea = table + index(v, level) * 8;
            eas[level as usize - 1] = ea;
            let e = self.mem.read_entry(ea);
            let virt = VirtAddr::new_truncate(v);
            if e & P == 0 {
                return Err(UnmapError::NotMapped {
                    virt,
                    level: Level::from_u8(level),
                });
            }
            if level == leaf_level {
                if level == 2 && e & PS == 0 {
                    return Err(UnmapError::SizeMismatch { virt });
                }
                return Ok(Found {
                    eas,
                    leaf: e,
                    level,
                });
            }
            if e & PS != 0 {
                if level == 4 {
                    return Err(UnmapError::BadEntry { virt });
                }
                let size = PageSize::of_level(level);
                return Err(UnmapError::PartOfHugePage {
                    virt,
                    page: VirtAddr::new_truncate(v & !(size.bytes() - 1)),
                    size,
                });
            }
            table = e & ADDR_MASK;
            level -= 1;
        }
    }

    /// Clears the leaf found for `v` and frees the tables it leaves empty.
    #[inline(always)]
    fn remove_leaf(&mut self, f: &Found, v: u64) {
        self.mem.write_entry(f.eas[f.level as usize - 1], 0);
        let mut l = f.level as usize + 1;
        while l <= 4 {
            let pa = f.eas[l - 1];
            let pe = self.mem.read_entry(pa);
            if pe & COUNT_MASK == 0 {
                // A table not built by this mapper: its count is unknown.
                return;
            }
            let pe = pe - COUNT_ONE;
            if pe & COUNT_MASK != 0 || (l == 4 && index(v, 4) >= 256) {
                self.mem.write_entry(pa, pe);
                return;
            }
            self.mem.write_entry(pa, 0);
            self.free_table(pe & ADDR_MASK);
            l += 1;
        }
    }

    /// Maps `[virt, virt + len)` to `[phys, phys + len)` with `flags`: 4 KiB
    /// pages if `use4k`, else 2 MiB pages wherever both addresses are 2 MiB
    /// aligned and 2 MiB remain, and 4 KiB pages at the unaligned head and tail
    /// (all 4 KiB if `virt` and `phys` differ modulo 2 MiB). `len` is rounded up
    /// to 4 KiB. On an error everything this call mapped is unmapped again and
    /// flushed through `tlb`, so a failure changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn map_range(
        &mut self,
        root: PhysFrame,
        virt: VirtAddr,
        phys: PhysAddr,
        len: u64,
        flags: PageTableFlags,
        use4k: bool,
        tlb: &mut impl Tlb,
    ) -> Result<(FlushRange, MapStats), MapError> {
        let (v0, p0) = (virt.as_u64(), phys.as_u64());
        if len == 0 {
            return Err(MapError::EmptyRange);
        }
        if (v0 | p0) & 0xfff != 0 {
            return Err(MapError::Misaligned {
                virt: v0,
                phys: p0,
                size: PageSize::Size4KiB,
            });
        }
        let len = rounded_in_half(v0, len).map_err(MapError::NonCanonical)?;
        match p0.checked_add(len - 1) {
            Some(pl) if PhysAddr::try_new(pl).is_ok() => {}
            _ => return Err(MapError::PhysTooLarge(p0.saturating_add(len - 1))),
        }
        let mut flush = FlushRange::new();
        let mut stats = MapStats::default();
        let mut off = 0;
        while off < len {
            let (v, p) = (v0 + off, p0 + off);
            let size = if !use4k && (v | p) & 0x1f_ffff == 0 && len - off >= 1 << 21 {
                PageSize::Size2MiB
            } else {
                PageSize::Size4KiB
            };
            match self.map(
                root,
                VirtAddr::new_truncate(v),
                PhysAddr::new_truncate(p),
                size,
                flags,
            ) {
                Ok(f) => flush.push(f),
                Err(e) => {
                    self.rollback(root, v0, off, tlb);
                    flush.ignore();
                    return Err(e);
                }
            }
            match size {
                PageSize::Size2MiB => stats.pages_2m += 1,
                _ => stats.pages_4k += 1,
            }
            off += size.bytes();
        }
        Ok((flush, stats))
    }

    /// Unmaps what `map_range` mapped in `[v0, v0 + len)` before failing.
    #[cold]
    fn rollback(&mut self, root: PhysFrame, v0: u64, len: u64, tlb: &mut impl Tlb) {
        let mut flush = FlushRange::new();
        let mut off = 0;
        while off < len {
            let v = v0 + off;
            let size = translate(self.mem, root, VirtAddr::new_truncate(v))
                .map_or(PageSize::Size4KiB, |(_, s, _)| s);
            if let Ok(f) = self.find_leaf(root, v, size.leaf_level()) {
                self.remove_leaf(&f, v);
            }
            flush.push(Flush::new(VirtAddr::new_truncate(v)));
            off += size.bytes();
        }
        flush.flush(tlb);
    }
}

impl<'a, M: PhysMem, F: TableFrames + PageRefs> Mapper<'a, M, F> {
    /// Unmaps the page of `size` at `virt`, frees the tables it leaves empty and
    /// drops the page reference of a `page_insert` mapping.
    ///
    /// Errors (nothing changed): `Misaligned`, `NotMapped`, `PartOfHugePage`
    /// (4 KiB inside a 2 MiB page: not split), `SizeMismatch` (2 MiB over 4 KiB
    /// pages), `BadEntry`, `PageRef`.
    #[inline(always)]
    pub fn unmap(
        &mut self,
        root: PhysFrame,
        virt: VirtAddr,
        size: PageSize,
    ) -> Result<(Unmapped, Flush), UnmapError> {
        let v = virt.as_u64();
        if v & (size.bytes() - 1) != 0 {
            return Err(UnmapError::Misaligned { virt: v, size });
        }
        let fast = match size {
            PageSize::Size4KiB => self.unmap_cached::<1>(root, v),
            PageSize::Size2MiB => self.unmap_cached::<2>(root, v),
            PageSize::Size1GiB => None,
        };
        if let Some(leaf) = fast {
            return Ok((Unmapped::of(leaf, size), Flush::new(virt)));
        }
        self.unmap_slow(root, virt, size)
    }

    /// The common unmap through the cached leaf table: a plain present leaf
    /// whose table keeps other entries. `None`: take the full path.
    #[inline(always)]
    fn unmap_cached<const L: u8>(&mut self, root: PhysFrame, v: u64) -> Option<u64> {
        let WalkCache { table, parent, .. } = self.cached_leaf_table::<L>(root, v)?;
        let ea = table + index(v, L) * 8;
        let e = self.mem.read_entry(ea);
        let want = if L == 1 { P } else { P | PS };
        if e & (P | PS | REF) != want {
            return None;
        }
        let pe = self.mem.read_entry(parent);
        if pe & COUNT_MASK <= COUNT_ONE {
            return None;
        }
        self.mem.write_entry(ea, 0);
        self.mem.write_entry(parent, pe - COUNT_ONE);
        Some(e)
    }

    #[inline(never)]
    fn unmap_slow(
        &mut self,
        root: PhysFrame,
        virt: VirtAddr,
        size: PageSize,
    ) -> Result<(Unmapped, Flush), UnmapError> {
        let v = virt.as_u64();
        let found = self.find_leaf(root, v, size.leaf_level())?;
        let l = size.leaf_level() as usize;
        if l <= 2 {
            // The leaf's table (and for a 4 KiB page its directory): each is the
            // frame of an entry address the walk passed.
            let r = root.start_address().as_u64();
            if l == 1 {
                self.remember(r, v, 2, found.eas[1] & !0xfff, found.eas[2], false);
            }
            self.remember(
                r,
                v,
                l as u8,
                found.eas[l - 1] & !0xfff,
                found.eas[l],
                false,
            );
        }
        if found.leaf & REF != 0 {
            self.frames
                .put_page(leaf_pfn(found.leaf))
                .map_err(UnmapError::PageRef)?;
        }
        self.remove_leaf(&found, v);
        Ok((Unmapped::of(found.leaf, size), Flush::new(virt)))
    }

    /// Unmaps every page in `[virt, virt + len)` (`len` rounded up to 4 KiB);
    /// holes are skipped. Checked first, so an error changes nothing.
    ///
    /// Errors: `Misaligned` (`virt`), `EmptyRange`, `NonCanonical`,
    /// `PartOfHugePage` (the range covers a 2 MiB or 1 GiB page only in part),
    /// `BadEntry`, `NotMapped` (nothing at all is mapped in the range).
    pub fn unmap_range(
        &mut self,
        root: PhysFrame,
        virt: VirtAddr,
        len: u64,
    ) -> Result<(FlushRange, UnmapStats), UnmapError> {
        let v0 = virt.as_u64();
        if len == 0 {
            return Err(UnmapError::EmptyRange);
        }
        if v0 & 0xfff != 0 {
            return Err(UnmapError::Misaligned {
                virt: v0,
                size: PageSize::Size4KiB,
            });
        }
        let len = rounded_in_half(v0, len).map_err(UnmapError::NonCanonical)?;
        let end = v0.checked_add(len).ok_or(UnmapError::NonCanonical(v0))?;
        // Pass 1: check.
        let mut any = false;
        let mut v = v0;
        while v < end {
            match self.leaf_at(root, v)? {
                (Some(size), _) => {
                    let base = v & !(size.bytes() - 1);
                    if base < v0 || base + size.bytes() > end {
                        return Err(UnmapError::PartOfHugePage {
                            virt: VirtAddr::new_truncate(v),
                            page: VirtAddr::new_truncate(base),
                            size,
                        });
                    }
                    any = true;
                    v = base + size.bytes();
                }
                (None, skip) => v = (v & !(skip - 1)).saturating_add(skip),
            }
        }
        if !any {
            return Err(UnmapError::NotMapped {
                virt,
                level: match self.leaf_at(root, v0)? {
                    (_, s) if s == 1 << 39 => Level::Pml4,
                    (_, s) if s == 1 << 30 => Level::Pdpt,
                    (_, s) if s == 1 << 21 => Level::Pd,
                    _ => Level::Pt,
                },
            });
        }
        // Pass 2: unmap.
        let mut flush = FlushRange::new();
        let mut stats = UnmapStats::default();
        let mut v = v0;
        while v < end {
            match self.leaf_at(root, v)? {
                (Some(size), _) => {
                    let found = self.find_leaf(root, v, size.leaf_level())?;
                    if found.leaf & REF != 0 {
                        match self.frames.put_page(leaf_pfn(found.leaf)) {
                            Ok(_) => stats.refs_dropped += 1,
                            Err(_) => stats.bad_refs += 1,
                        }
                    }
                    self.remove_leaf(&found, v);
                    flush.push(Flush::new(VirtAddr::new_truncate(v)));
                    match size {
                        PageSize::Size4KiB => stats.pages_4k += 1,
                        PageSize::Size2MiB => stats.pages_2m += 1,
                        PageSize::Size1GiB => stats.pages_1g += 1,
                    }
                    v += size.bytes();
                }
                (None, skip) => v = (v & !(skip - 1)).saturating_add(skip),
            }
        }
        Ok((flush, stats))
    }

    /// The leaf size at `v`, or the size of the hole it is in.
    fn leaf_at(&self, root: PhysFrame, v: u64) -> Result<(Option<PageSize>, u64), UnmapError> {
        let mut table = root.start_address().as_u64();
        let mut level = 4u8;
        loop {
            let e = self.mem.read_entry(table + index(v, level) * 8);
            let span = 1u64 << (3 + 9 * level as u32);
            if e & P == 0 {
                return Ok((None, span));
            }
            if level == 1 || e & PS != 0 {
                if level == 4 {
                    return Err(UnmapError::BadEntry {
                        virt: VirtAddr::new_truncate(v),
                    });
                }
                return Ok((Some(PageSize::of_level(level)), span));
            }
            table = e & ADDR_MASK;
            level -= 1;
        }
    }
}

/// [`translate`] kept out of line, for the miss path of [`Mapper::translate`].
#[inline(never)]
fn translate_uncached(
    mem: &impl PhysMem,
    root: PhysFrame,
    virt: VirtAddr,
) -> Option<(PhysAddr, PageSize, PageTableFlags)> {
    translate(mem, root, virt)
}

/// The error for mapping over the present entry `old` of `v` at `level`.
#[cold]
fn already(v: u64, old: u64, level: u8) -> MapError {
    let virt = VirtAddr::new_truncate(v);
    if level == 2 && old & PS == 0 {
        return MapError::TableInTheWay { virt };
    }
    let size = PageSize::of_level(level);
    MapError::AlreadyMapped {
        virt,
        phys: PhysAddr::new_truncate(old & ADDR_MASK & !(size.bytes() - 1)),
        size,
    }
}

/// `len` rounded up to 4 KiB if `[v0, v0 + len)` stays inside one canonical
/// half, else the address to report as non-canonical.
fn rounded_in_half(v0: u64, len: u64) -> Result<u64, u64> {
    let len = len.checked_next_multiple_of(4096).unwrap_or(!0xfff);
    let last = v0.checked_add(len - 1).ok_or(v0)?;
    if VirtAddr::try_new(last).is_err() || (last ^ v0) >> 47 != 0 {
        return Err(last);
    }
    Ok(len)
}

/// The frame a 4 KiB leaf maps (whose `struct Page` a `PAGE_REF` leaf holds).
#[inline(always)]
pub(crate) fn leaf_pfn(leaf: u64) -> Pfn {
    Pfn(((leaf & ADDR_MASK) >> 12) as u32)
}

/// Adds one to the live-entry count of table entry `pa` (saturating).
#[inline(always)]
pub(crate) fn count_up(mem: &mut impl PhysMem, pa: u64) {
    let pe = mem.read_entry(pa);
    if pe & COUNT_MASK != COUNT_MASK {
        mem.write_entry(pa, pe + COUNT_ONE);
    }
}
