//! Linux's `vmalloc`/`vzalloc`/`vfree`/`vmalloc_to_page` and
//! `ioremap`/`ioremap_wc`/`iounmap`: kernel virtual ranges in
//! [`layout::VMALLOC`] and
//! [`layout::IOREMAP`], hardware-free.
//!
//! - vmalloc maps order-0 frames from any zone, ZONE_UNMAPPED first (it spares
//!   the direct-mapped zones, and it is how unmapped memory becomes usable by the
//!   kernel), then NORMAL, then DMA, at consecutive virtual pages. ioremap maps a
//!   physical device range uncached or write-combining ([`CacheMode`]).
//! - Each area is followed by an unmapped guard page; areas come from an
//!   [`AreaAlloc`] per range, O(log n) in the number of live areas.
//! - Frees are checked: anything but the address an allocation returned is an
//!   error that says what the address is (inside an area at some offset, a guard
//!   page, never allocated or freed already, an area of the other kind).
//! - Failures change nothing: out of memory (frames, the per-area page array,
//!   virtual space) or a page-table refusal midway unmaps, frees and releases
//!   what was taken.
//! - Memory types are tracked per physical range, as Linux's PAT code does
//!   (`memtype_reserve`): two mappings of one device page never disagree. The
//!   kernel's own device mappings are [reserved](VmSpace::reserve_memtype)
//!   (the framebuffer write-combining, the local APIC uncached); an `ioremap` of
//!   a range mapped already takes the type it has there when Linux allows that
//!   (`is_new_memtype_allowed`: an uncached or write-combining request never
//!   becomes write-back), and is refused otherwise, or when the range is mapped
//!   with two types already.
//!
//! Everything machine-side goes through one trait, [`VmBackend`]: frames in
//! bulk (`alloc_pages_bulk`), freeing them, the page tables ([`KernelMapper`]:
//! map one page, unmap one, flush a range), zeroing a frame (in the kernel,
//! UNMAPPED frames through the temporary window) and the RAM map. The kernel
//! implements it over its locks, taking each lock for one call; `VmSpace`
//! touches the heap (page arrays, tree nodes) only between backend calls, never
//! inside one, so no allocator lock is ever held while the heap is used (see
//! [`backend`]). Host tests use [`Local`] over the [`FakeMapper`], the shell's
//! test machine [`PagingBackend`] over real `mm::paging` tables.

pub mod area;
pub mod backend;
pub mod mapper;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use core::fmt;

pub use area::{AreaAlloc, Live};
pub use backend::{Local, PagingBackend, VmBackend};
pub use mapper::{CacheMode, FakeMapper, KernelMapper, MapError, Prot};

use crate::layout::{self, Region};
use crate::{Gfp, MmError, Pfn, PAGE_SIZE};

const PAGE: u64 = PAGE_SIZE as u64;

/// The highest physical address width x86_64 page tables can express (52 bits).
pub const MAX_PHYS: u64 = 1 << 52;

/// The gfp of vmalloc's frames: `__GFP_HIGHMEM` walks UNMAPPED, NORMAL, DMA.
pub const VMALLOC_GFP: Gfp = Gfp::HIGHMEM;

/// Which range an area lives in, and so which function frees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum AreaKind {
    /// `vmalloc`/`vzalloc`, freed by `vfree`.
    Vmalloc,
    /// `ioremap`/`ioremap_wc`, freed by `iounmap`.
    Ioremap,
}

impl AreaKind {
    /// `vmalloc` or `ioremap`.
    pub const fn name(self) -> &'static str {
        match self {
            AreaKind::Vmalloc => "vmalloc",
            AreaKind::Ioremap => "ioremap",
        }
    }
    /// `a vmalloc` or `an ioremap`.
    pub const fn with_article(self) -> &'static str {
        match self {
            AreaKind::Vmalloc => "a vmalloc",
            AreaKind::Ioremap => "an ioremap",
        }
    }
    /// The function that frees this kind.
    pub const fn free_fn(self) -> &'static str {
        match self {
            AreaKind::Vmalloc => "vfree",
            AreaKind::Ioremap => "iounmap",
        }
    }
}

impl fmt::Display for AreaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a vmalloc or ioremap operation failed. Nothing was changed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VmError {
    /// A size of 0 or larger than the range.
    BadSize { size: u64 },
    /// No free virtual range of `size` bytes plus a guard page.
    NoSpace { kind: AreaKind, size: u64 },
    /// The buddy allocator has no frame left (after taking some: they were returned).
    OutOfMemory(MmError),
    /// The kernel heap could not hold the area's page array of `bytes`.
    HeapOutOfMemory { bytes: u64 },
    /// The page tables refused a mapping (everything taken was released).
    Map(MapError),
    /// `addr` is not in the range of `kind` at all.
    OutOfRange { addr: u64, kind: AreaKind },
    /// `addr` is inside a live area that starts (as its allocation returned it)
    /// at `area`; `offset` = `addr - area`.
    NotAreaStart {
        addr: u64,
        kind: AreaKind,
        area: u64,
        offset: i64,
    },
    /// `addr` is in the guard page after the live area `area`.
    GuardPage {
        addr: u64,
        kind: AreaKind,
        area: u64,
    },
    /// `addr` is in the range but in no live area: never allocated, or freed already.
    NotAllocated { addr: u64, kind: AreaKind },
    /// `addr` is a live area of another kind (`is`), freed by another function.
    WrongKind { addr: u64, is: AreaKind },
    /// ioremap of RAM from the memory map (Linux refuses it too): `phys` is RAM.
    Ram { phys: u64 },
    /// A physical range that wraps or lies above 2^52.
    BadPhys { phys: u64, size: u64 },
    /// ioremap with memory type `requested` of a range that `owner` maps as
    /// `existing` at `phys` (two types for one page would alias), and Linux's
    /// rule does not let the new mapping take `existing`.
    MemTypeConflict {
        phys: u64,
        requested: CacheMode,
        existing: CacheMode,
        owner: &'static str,
    },
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VmError::BadSize { size } => write!(f, "size {size} out of range"),
            VmError::NoSpace { kind, size } => {
                write!(f, "no free {kind} range of {size} bytes plus a guard page")
            }
            VmError::OutOfMemory(e) => write!(f, "{e}"),
            VmError::HeapOutOfMemory { bytes } => {
                write!(
                    f,
                    "out of memory: no heap for a page array of {bytes} bytes"
                )
            }
            VmError::Map(e) => write!(f, "page tables: {e}"),
            VmError::OutOfRange { addr, kind } => {
                write!(f, "{addr:#018x} is not in the {kind} range")
            }
            VmError::NotAreaStart {
                addr,
                kind,
                area,
                offset,
            } => {
                let sign = if offset < 0 { "-" } else { "+" };
                write!(
                    f,
                    "{addr:#018x} is not the start of {} area: it is inside the \
                     area {area:#018x} at offset {sign}{:#x}",
                    kind.with_article(),
                    offset.unsigned_abs()
                )
            }
            VmError::GuardPage { addr, kind, area } => write!(
                f,
                "{addr:#018x} is the guard page of the {kind} area {area:#018x}"
            ),
            VmError::NotAllocated { addr, kind } => write!(
                f,
                "{addr:#018x} is not a live {kind} area (never allocated or freed already)"
            ),
            VmError::WrongKind { addr, is } => write!(
                f,
                "{addr:#018x} is {} area: free it with {}",
                is.with_article(),
                is.free_fn()
            ),
            VmError::Ram { phys } => write!(
                f,
                "{phys:#x} is RAM, not device memory: ioremap refuses it (use the page allocator)"
            ),
            VmError::BadPhys { phys, size } => write!(
                f,
                "physical range {phys:#x}+{size:#x} is beyond the 52-bit physical address space"
            ),
            VmError::MemTypeConflict {
                phys,
                requested,
                existing,
                owner,
            } => write!(
                f,
                "{phys:#x} is mapped {existing} by {owner}: a {requested} mapping of it would alias it with another memory type"
            ),
        }
    }
}

impl From<MapError> for VmError {
    fn from(e: MapError) -> VmError {
        VmError::Map(e)
    }
}

/// What a vmalloc area holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmallocArea {
    /// Who asked (Linux's `caller` in `/proc/vmallocinfo`).
    pub caller: &'static str,
    /// The size asked for in bytes.
    pub requested: u64,
    /// The frame behind each page, in order.
    pub pages: Vec<Pfn>,
}

/// What an ioremap area maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoArea {
    /// Who asked.
    pub caller: &'static str,
    /// The physical address asked for (not necessarily page aligned).
    pub phys: u64,
    /// The size asked for in bytes.
    pub requested: u64,
    /// Memory type of the mapping.
    pub cache: CacheMode,
}

impl IoArea {
    fn offset(&self) -> u64 {
        self.phys % PAGE
    }
}

/// A physical range that the kernel maps itself with a fixed memory type,
/// outside the ioremap range (Linux: a `memtype_reserve` that is never freed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemType {
    /// First byte (page aligned).
    pub start: u64,
    /// End, exclusive (page aligned).
    pub end: u64,
    /// Its memory type.
    pub cache: CacheMode,
    /// Who maps it (for errors).
    pub owner: &'static str,
}

/// Linux's `is_new_memtype_allowed`: may a mapping asked for as `requested`
/// take `existing` instead, because the range is mapped so already? Never
/// write-back for an uncached or write-combining request; otherwise yes (an
/// uncached request of a write-combining framebuffer gets write-combining, a
/// write-combining request of uncached registers gets uncached).
pub const fn memtype_allowed(requested: CacheMode, existing: CacheMode) -> bool {
    !matches!(
        (requested, existing),
        (
            CacheMode::Uncached | CacheMode::WriteCombining,
            CacheMode::WriteBack
        )
    )
}

/// One live area, as listings show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AreaInfo {
    /// vmalloc or ioremap.
    pub kind: AreaKind,
    /// The address the allocation returned (and that frees it).
    pub addr: u64,
    /// First mapped page.
    pub start: u64,
    /// The size asked for in bytes.
    pub requested: u64,
    /// Mapped pages (the guard page not included).
    pub pages: u64,
    /// Who asked.
    pub caller: &'static str,
    /// ioremap: the physical address asked for.
    pub phys: Option<u64>,
    /// Memory type.
    pub cache: CacheMode,
}

impl AreaInfo {
    /// One line of Linux's `/proc/vmallocinfo`: `start-end size caller` then
    /// `pages=N vmalloc` or `phys=P ioremap` (`ioremap_wc` here for write-combining).
    /// As in Linux, `end` and `size` include the guard page.
    pub fn vmallocinfo_line(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let span = (self.pages + 1) * PAGE;
        write!(
            f,
            "{:#018x}-{:#018x} {:>10} {}",
            self.start,
            self.start + span,
            span,
            self.caller
        )?;
        match self.phys {
            None => write!(f, " pages={} vmalloc", self.pages),
            Some(p) => {
                let what = match self.cache {
                    CacheMode::WriteCombining => "ioremap_wc",
                    _ => "ioremap",
                };
                write!(f, " phys={:#018x} {what}", p - p % PAGE)
            }
        }
    }
}

/// Totals for `/proc/meminfo`'s `Vmalloc*` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VmStat {
    /// Size of the vmalloc range in bytes (`VmallocTotal`).
    pub vmalloc_total: u64,
    /// Bytes mapped by live vmalloc areas (`VmallocUsed`).
    pub vmalloc_used: u64,
    /// Largest free vmalloc range (`VmallocChunk`).
    pub vmalloc_chunk: u64,
    /// Live vmalloc areas.
    pub vmalloc_areas: u64,
    /// Bytes mapped by live ioremap areas.
    pub ioremap_used: u64,
    /// Live ioremap areas.
    pub ioremap_areas: u64,
}

/// vmalloc's page allocation, the one place that takes its frames: fills all
/// of `out` with order-0 frames of `gfp` through Linux's `alloc_pages_bulk`
/// (called again while it makes progress), or none (on failure the frames it
/// took are freed again).
pub fn alloc_vm_pages<B: VmBackend + ?Sized>(
    be: &mut B,
    gfp: Gfp,
    out: &mut [Pfn],
) -> Result<(), MmError> {
    let mut got = 0;
    while got < out.len() {
        match be.alloc_pages_bulk(gfp, &mut out[got..]) {
            Ok(n) if n > 0 => got += n,
            r => {
                be.free_pages_bulk(&out[..got]);
                return Err(match r {
                    Err(e) => e,
                    Ok(_) => MmError::OutOfMemory,
                });
            }
        }
    }
    Ok(())
}

/// Unmaps `pages` pages from `start` and flushes them; the first refusal, if any
/// (the walk goes on: a page that is not mapped is unmapped already).
fn unmap_range<B: KernelMapper + ?Sized>(
    pt: &mut B,
    start: u64,
    pages: u64,
) -> Result<(), MapError> {
    let mut first = Ok(());
    for i in 0..pages {
        if let Err(e) = pt.unmap_page(start + i * PAGE) {
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    if pages > 0 {
        pt.flush(start, pages * PAGE);
    }
    first
}

/// The vmalloc and ioremap ranges: every live area and its backing.
#[derive(Clone, Debug)]
pub struct VmSpace {
    vmalloc: AreaAlloc<VmallocArea>,
    ioremap: AreaAlloc<IoArea>,
    /// The kernel's own device mappings ([`reserve_memtype`](Self::reserve_memtype)).
    fixed: Vec<MemType>,
}

impl Default for VmSpace {
    fn default() -> Self {
        VmSpace::new()
    }
}

impl VmSpace {
    /// Empty areas over the kernel's ranges [`layout::VMALLOC`] and [`layout::IOREMAP`].
    pub fn new() -> VmSpace {
        VmSpace::with_ranges(layout::VMALLOC, layout::IOREMAP)
    }

    /// Empty areas over other ranges (page aligned, disjoint; for tests).
    pub fn with_ranges(vmalloc: Region, ioremap: Region) -> VmSpace {
        VmSpace {
            vmalloc: AreaAlloc::new(AreaKind::Vmalloc, vmalloc),
            ioremap: AreaAlloc::new(AreaKind::Ioremap, ioremap),
            fixed: Vec::new(),
        }
    }

    /// Records that the kernel maps `[phys, phys + size)` (widened to pages)
    /// itself with memory type `cache` (its framebuffer, the local APIC), so that
    /// an `ioremap` of it takes that type or is refused. Errors: `BadSize`,
    /// `BadPhys`, `MemTypeConflict` (the range is mapped with another type
    /// already), `HeapOutOfMemory`.
    pub fn reserve_memtype(
        &mut self,
        phys: u64,
        size: u64,
        cache: CacheMode,
        owner: &'static str,
    ) -> Result<(), VmError> {
        let (first, last) = Self::phys_pages(phys, size)?;
        if let Some((at, existing, by)) = self
            .memtypes_over(first, last)
            .find(|&(_, c, _)| c != cache)
        {
            return Err(VmError::MemTypeConflict {
                phys: at,
                requested: cache,
                existing,
                owner: by,
            });
        }
        self.fixed
            .try_reserve(1)
            .map_err(|_| VmError::HeapOutOfMemory {
                bytes: core::mem::size_of::<MemType>() as u64,
            })?;
        self.fixed.push(MemType {
            start: first,
            end: last,
            cache,
            owner,
        });
        Ok(())
    }

    /// The kernel's own device mappings, in the order they were reserved.
    pub fn fixed_memtypes(&self) -> &[MemType] {
        &self.fixed
    }

    /// `(first byte, type, owner)` of every reservation and live ioremap area
    /// that overlaps the page range `[first, last)`.
    fn memtypes_over(
        &self,
        first: u64,
        last: u64,
    ) -> impl Iterator<Item = (u64, CacheMode, &'static str)> + '_ {
        let fixed = self
            .fixed
            .iter()
            .filter(move |m| m.start < last && first < m.end)
            .map(move |m| (m.start.max(first), m.cache, m.owner));
        let areas = self.ioremap.iter().filter_map(move |(_, l)| {
            let a = l.data;
            let start = a.phys - a.offset();
            let end = start + l.size;
            (start < last && first < end).then_some((start.max(first), a.cache, a.caller))
        });
        fixed.chain(areas)
    }

    /// The memory type an ioremap of the pages `[first, last)` asked for as
    /// `requested` gets: `requested` where nothing maps them, else the one
    /// type they are mapped with if [`memtype_allowed`].
    fn memtype_for(
        &self,
        first: u64,
        last: u64,
        requested: CacheMode,
    ) -> Result<CacheMode, VmError> {
        let mut over = self.memtypes_over(first, last);
        let Some((at, existing, owner)) = over.next() else {
            return Ok(requested);
        };
        let conflict = |at, existing, owner| VmError::MemTypeConflict {
            phys: at,
            requested,
            existing,
            owner,
        };
        // Two types already (only possible through reservations made before
        // an area): nothing the new mapping could take agrees with both.
        if let Some((at2, other, owner2)) = over.find(|&(_, c, _)| c != existing) {
            let bad = if other != requested {
                (at2, other, owner2)
            } else {
                (at, existing, owner)
            };
            return Err(conflict(bad.0, bad.1, bad.2));
        }
        if existing == requested || memtype_allowed(requested, existing) {
            Ok(existing)
        } else {
            Err(conflict(at, existing, owner))
        }
    }

    /// The pages `[first, last)` that `[phys, phys + size)` touches, or
    /// `BadSize` / `BadPhys`.
    fn phys_pages(phys: u64, size: u64) -> Result<(u64, u64), VmError> {
        if size == 0 {
            return Err(VmError::BadSize { size });
        }
        let end = match phys.checked_add(size) {
            Some(e) if e <= MAX_PHYS => e,
            _ => return Err(VmError::BadPhys { phys, size }),
        };
        Ok((phys - phys % PAGE, end.div_ceil(PAGE) * PAGE))
    }

    /// The vmalloc area allocator (read-only).
    pub fn vmalloc_areas(&self) -> &AreaAlloc<VmallocArea> {
        &self.vmalloc
    }

    /// The ioremap area allocator (read-only).
    pub fn ioremap_areas(&self) -> &AreaAlloc<IoArea> {
        &self.ioremap
    }

    /// Pages for `size` bytes in `region`: `BadSize` for 0 or more than fits.
    fn pages_for(size: u64, alloc_bounds: (u64, u64)) -> Result<u64, VmError> {
        let max = alloc_bounds.1 - alloc_bounds.0 - PAGE;
        if size == 0 || size > max {
            return Err(VmError::BadSize { size });
        }
        Ok(size.div_ceil(PAGE))
    }

    /// Linux `vmalloc(size)`: `size` bytes (rounded up to pages) of virtually
    /// contiguous memory, each page a frame from UNMAPPED, NORMAL or DMA (in that
    /// order of preference), mapped read-write, no-execute, write-back, followed
    /// by an unmapped guard page. Returns the start address. `caller` names the
    /// owner in listings.
    ///
    /// Errors (nothing changed): `BadSize`, `HeapOutOfMemory` (page array),
    /// `NoSpace` (virtual range), `OutOfMemory` (frames), `Map` (page tables).
    pub fn vmalloc<B: VmBackend + ?Sized>(
        &mut self,
        size: u64,
        caller: &'static str,
        be: &mut B,
    ) -> Result<u64, VmError> {
        let n = Self::pages_for(size, self.vmalloc.bounds())?;
        // Heap first (the page array, the tree node), outside every backend call.
        // The array is as large as the caller asks: it is charged to the user
        // (watermarks obeyed, `crate::memalloc`), so a huge request fails here
        // instead of eating the kernel heap's reserve.
        let mut pages = Vec::new();
        crate::memalloc::charged_to_user(|| pages.try_reserve_exact(n as usize)).map_err(|_| {
            VmError::HeapOutOfMemory {
                bytes: n * core::mem::size_of::<Pfn>() as u64,
            }
        })?;
        pages.resize(n as usize, Pfn(0));
        let start = self.vmalloc.alloc(
            n,
            VmallocArea {
                caller,
                requested: size,
                pages: Vec::new(),
            },
        )?;
        if let Err(e) = alloc_vm_pages(be, VMALLOC_GFP, &mut pages) {
            self.release_vmalloc_area(start);
            return Err(VmError::OutOfMemory(e));
        }
        for (i, p) in pages.iter().enumerate() {
            let virt = start + i as u64 * PAGE;
            if let Err(e) = be.map_page(virt, p.phys(), Prot::RW, CacheMode::WriteBack) {
                // The unmap of pages this call mapped cannot be refused.
                let _ = unmap_range(be, start, i as u64);
                be.free_pages_bulk(&pages);
                self.release_vmalloc_area(start);
                return Err(VmError::Map(e));
            }
        }
        if let Some(data) = self.vmalloc.data_mut(start) {
            data.pages = pages;
        }
        Ok(start)
    }

    fn release_vmalloc_area(&mut self, start: u64) {
        let r = self.vmalloc.free(start);
        debug_assert!(r.is_ok(), "fresh vmalloc area {start:#x} not freeable");
    }

    /// Linux `vzalloc(size)`: [`vmalloc`](Self::vmalloc) with every page zeroed
    /// (through [`VmBackend::zero_page`], which reaches frames outside the
    /// direct map too).
    pub fn vzalloc<B: VmBackend + ?Sized>(
        &mut self,
        size: u64,
        caller: &'static str,
        be: &mut B,
    ) -> Result<u64, VmError> {
        let start = self.vmalloc(size, caller, be)?;
        if let Some(live) = self.vmalloc.get(start) {
            for &p in &live.data.pages {
                be.zero_page(p);
            }
        }
        Ok(start)
    }

    /// Linux `vfree(addr)`: unmaps the area that `vmalloc` returned at `addr`,
    /// flushes it from the TLB, then frees its frames and its virtual range.
    ///
    /// Errors (nothing changed): `NotAreaStart`, `GuardPage`, `NotAllocated`
    /// (never allocated or freed already), `WrongKind` (an ioremap area),
    /// `OutOfRange`. If the page tables refuse an unmap (a page of the area was
    /// unmapped behind vmalloc's back) the area is freed all the same and the
    /// refusal is returned as `Map`.
    pub fn vfree<B: VmBackend + ?Sized>(&mut self, addr: u64, be: &mut B) -> Result<(), VmError> {
        if !self.vmalloc.contains(addr) {
            return Err(self.other_kind(addr, AreaKind::Vmalloc));
        }
        let area = self.vmalloc.free(addr)?;
        let unmapped = unmap_range(be, addr, area.pages.len() as u64);
        be.free_pages_bulk(&area.pages);
        // `area.pages` goes back to the heap here, after the backend calls.
        drop(area);
        unmapped.map_err(VmError::Map)
    }

    /// The error for `addr` given to the free function of `want` while it is not
    /// in `want`'s range: `WrongKind` if it is a live area of the other kind.
    fn other_kind(&self, addr: u64, want: AreaKind) -> VmError {
        let live_other = match want {
            AreaKind::Vmalloc => self.ioremap.find(addr).is_ok(),
            AreaKind::Ioremap => self.vmalloc.find(addr).is_ok(),
        };
        if live_other {
            let is = match want {
                AreaKind::Vmalloc => AreaKind::Ioremap,
                AreaKind::Ioremap => AreaKind::Vmalloc,
            };
            VmError::WrongKind { addr, is }
        } else {
            VmError::OutOfRange { addr, kind: want }
        }
    }

    /// Linux `vmalloc_to_page(addr)`: the frame behind any address inside a live
    /// vmalloc area. Errors: `GuardPage`, `NotAllocated`, `WrongKind` (an ioremap
    /// area: device memory has no `struct page`), `OutOfRange`.
    pub fn vmalloc_to_page(&self, addr: u64) -> Result<Pfn, VmError> {
        if !self.vmalloc.contains(addr) {
            return Err(self.other_kind(addr, AreaKind::Vmalloc));
        }
        let (start, live) = self.vmalloc.find(addr)?;
        Ok(live.data.pages[((addr - start) / PAGE) as usize])
    }

    /// Linux `ioremap(phys, size)`: maps the device range `[phys, phys + size)`
    /// uncached (`UC`), read-write, no-execute. As in Linux an unaligned range
    /// maps every page it touches and the result is the area's start plus
    /// `phys % 4096`. A range mapped write-combining already (the framebuffer)
    /// is mapped write-combining, as Linux's PAT tracking does.
    ///
    /// Errors (nothing changed): `BadSize`, `BadPhys`, `Ram` (the range touches
    /// RAM of the memory map, reserved RAM included: a second, uncached mapping
    /// of RAM would alias the direct map's write-back one), `MemTypeConflict`
    /// (its pages are mapped with two types already), `NoSpace`, `Map`.
    pub fn ioremap<B: VmBackend + ?Sized>(
        &mut self,
        phys: u64,
        size: u64,
        caller: &'static str,
        be: &mut B,
    ) -> Result<u64, VmError> {
        self.ioremap_cache(phys, size, CacheMode::Uncached, caller, be)
    }

    /// Linux `ioremap_wc(phys, size)`: [`ioremap`](Self::ioremap) with
    /// write-combining (PAT entry 1, see [`mapper`]).
    pub fn ioremap_wc<B: VmBackend + ?Sized>(
        &mut self,
        phys: u64,
        size: u64,
        caller: &'static str,
        be: &mut B,
    ) -> Result<u64, VmError> {
        self.ioremap_cache(phys, size, CacheMode::WriteCombining, caller, be)
    }

    /// `ioremap` with any memory type (Linux's `ioremap_prot` family). The
    /// mapping's type is `cache`, or the type the range is mapped with already
    /// (see the module doc; [`area_info`](Self::area_info) tells which).
    /// Errors: those of [`ioremap`](Self::ioremap) and `MemTypeConflict`.
    pub fn ioremap_cache<B: VmBackend + ?Sized>(
        &mut self,
        phys: u64,
        size: u64,
        cache: CacheMode,
        caller: &'static str,
        be: &mut B,
    ) -> Result<u64, VmError> {
        let (first, last) = Self::phys_pages(phys, size)?;
        let n = Self::pages_for(last - first, self.ioremap.bounds())?;
        if let Some(lo) = be.ram_overlap(first, last) {
            return Err(VmError::Ram { phys: lo.max(phys) });
        }
        let cache = self.memtype_for(first, last, cache)?;
        let area = IoArea {
            caller,
            phys,
            requested: size,
            cache,
        };
        let start = self.ioremap.alloc(n, area)?;
        for i in 0..n {
            if let Err(e) = be.map_page(start + i * PAGE, first + i * PAGE, Prot::RW, cache) {
                // The unmap of pages this call mapped cannot be refused.
                let _ = unmap_range(be, start, i);
                let r = self.ioremap.free(start);
                debug_assert!(r.is_ok());
                return Err(VmError::Map(e));
            }
        }
        Ok(start + area.offset())
    }

    /// Linux `iounmap(addr)`: unmaps the area `ioremap` returned `addr` for (the
    /// exact address, offset included; Linux also accepts other addresses of the
    /// first page) and flushes it.
    ///
    /// Errors (nothing changed): `NotAreaStart`, `GuardPage`, `NotAllocated`,
    /// `WrongKind` (a vmalloc area), `OutOfRange`; a refused unmap as in
    /// [`vfree`](Self::vfree).
    pub fn iounmap<B: VmBackend + ?Sized>(&mut self, addr: u64, be: &mut B) -> Result<(), VmError> {
        if !self.ioremap.contains(addr) {
            return Err(self.other_kind(addr, AreaKind::Ioremap));
        }
        let (start, live) = self.ioremap.find(addr)?;
        let returned = start + live.data.offset();
        if addr != returned {
            return Err(VmError::NotAreaStart {
                addr,
                kind: AreaKind::Ioremap,
                area: returned,
                offset: addr.wrapping_sub(returned) as i64,
            });
        }
        let pages = live.size / PAGE;
        self.ioremap.free(start)?;
        unmap_range(be, start, pages).map_err(VmError::Map)
    }

    /// Every live area, vmalloc ones first, each in address order.
    pub fn areas(&self) -> impl Iterator<Item = AreaInfo> + '_ {
        let v = self.vmalloc.iter().map(|(start, l)| AreaInfo {
            kind: AreaKind::Vmalloc,
            addr: start,
            start,
            requested: l.data.requested,
            pages: l.size / PAGE,
            caller: l.data.caller,
            phys: None,
            cache: CacheMode::WriteBack,
        });
        let io = self.ioremap.iter().map(|(start, l)| AreaInfo {
            kind: AreaKind::Ioremap,
            addr: start + l.data.offset(),
            start,
            requested: l.data.requested,
            pages: l.size / PAGE,
            caller: l.data.caller,
            phys: Some(l.data.phys),
            cache: l.data.cache,
        });
        v.chain(io)
    }

    /// The live area `addr` was returned for, if any (either kind).
    pub fn area_info(&self, addr: u64) -> Option<AreaInfo> {
        let start = if self.ioremap.contains(addr) {
            addr - addr % PAGE
        } else {
            addr
        };
        self.areas_at(start).filter(|a| a.addr == addr)
    }

    fn areas_at(&self, start: u64) -> Option<AreaInfo> {
        if let Some(l) = self.vmalloc.get(start) {
            return Some(AreaInfo {
                kind: AreaKind::Vmalloc,
                addr: start,
                start,
                requested: l.data.requested,
                pages: l.size / PAGE,
                caller: l.data.caller,
                phys: None,
                cache: CacheMode::WriteBack,
            });
        }
        let l = self.ioremap.get(start)?;
        Some(AreaInfo {
            kind: AreaKind::Ioremap,
            addr: start + l.data.offset(),
            start,
            requested: l.data.requested,
            pages: l.size / PAGE,
            caller: l.data.caller,
            phys: Some(l.data.phys),
            cache: l.data.cache,
        })
    }

    /// Linux's `/proc/vmallocinfo`: one line per live area (see
    /// [`AreaInfo::vmallocinfo_line`]).
    pub fn vmallocinfo(&self, f: &mut impl fmt::Write) -> fmt::Result {
        for a in self.areas() {
            a.vmallocinfo_line(f)?;
            f.write_char('\n')?;
        }
        Ok(())
    }

    /// Totals (`/proc/meminfo`'s `VmallocTotal`, `VmallocUsed`, `VmallocChunk`).
    /// O(live areas).
    pub fn stat(&self) -> VmStat {
        let (vs, ve) = self.vmalloc.bounds();
        VmStat {
            vmalloc_total: ve - vs,
            vmalloc_used: self.vmalloc.iter().map(|(_, l)| l.size).sum(),
            vmalloc_chunk: self.vmalloc.largest_free(),
            vmalloc_areas: self.vmalloc.len() as u64,
            ioremap_used: self.ioremap.iter().map(|(_, l)| l.size).sum(),
            ioremap_areas: self.ioremap.len() as u64,
        }
    }
}
