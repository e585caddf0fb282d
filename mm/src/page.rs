//! Physical frames and their metadata: `Pfn`, `Zone`, page flags and `struct Page`.
//!
//! One [`Page`] describes one 4 KiB physical frame. They live in a single array
//! indexed by PFN (the kernel's `mem_map`), so `pfn -> &Page` and back are O(1)
//! index arithmetic, never a search.
//!
//! Invariants:
//! - `size_of::<Page>() == 16` (checked at compile time below).
//! - Links between pages are PFNs (`u32`, [`NIL`] for none), never pointers, so the
//!   allocator logic stays safe Rust over indices.
//! - The meaning of `count`, `next` and `prev` depends on [`PageState`]:
//!   * `Free` head of a free buddy block: `next`/`prev` link the per-order free list,
//!     `order` is the block order, `count == 0`.
//!   * `Allocated` head of a block handed out: `count` is the reference count
//!     (>= 1), `order` the block order; `next` holds the page count the DragonOS
//!     API asked for (so `free_pages(page, n)` can check `n`), `prev` is unused.
//!   * `Cached` head of a free block kept in its zone's per-order cache (see
//!     `buddy`): `order` is the block order, `count == u32::MAX`, `next` links the
//!     cache list (`NIL` at its end), `prev` is unused.
//!   * `Tail` page inside a block (free, cached, allocated or slab): to the buddy
//!     allocator it carries nothing; its `next`, `prev` and `count` are unspecified
//!     and the head is found from the block's alignment (`buddy`, invariant 2). In
//!     a slab's block the slab allocator sets `next` to the head's PFN and
//!     `slab_cache` to its cache (see `slab`).
//!   * `Slab` head of a slab: owned by the slab allocator (`slab_cache`, `count`,
//!     `next`, `prev` are its to use; see `slab`). `order` is still the block order.
//!   * `Reserved`: not managed by the allocator (firmware, kernel image, holes).

use core::fmt;

/// Size of a base page in bytes.
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// Largest buddy order: blocks of 2^10 pages = 4 MiB.
pub const MAX_ORDER: u32 = 10;
/// "No page" in a PFN link.
pub const NIL: u32 = u32::MAX;
/// ZONE_DMA ends here (exclusive): the first 16 MiB of physical memory.
pub const DMA_LIMIT: u64 = 16 << 20;

/// A physical frame number: physical address / 4096.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(pub u32);

impl Pfn {
    /// The frame containing physical address `phys`.
    pub const fn containing(phys: u64) -> Pfn {
        Pfn((phys >> PAGE_SHIFT) as u32)
    }
    /// Physical address of the first byte of this frame.
    pub const fn phys(self) -> u64 {
        (self.0 as u64) << PAGE_SHIFT
    }
    /// Index into the `mem_map` array.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfn({:#x})", self.0)
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// The three memory zones of the DragonOS API.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Zone {
    /// ZONE_DMA: physical memory below 16 MiB.
    Dma = 0,
    /// ZONE_NORMAL: from 16 MiB up to the direct-map limit, permanently mapped.
    Normal = 1,
    /// ZONE_UNMAPPED_IN_PGT: usable memory above the direct-map limit, not mapped.
    Unmapped = 2,
}

impl Zone {
    /// Every zone, in address order.
    pub const ALL: [Zone; 3] = [Zone::Dma, Zone::Normal, Zone::Unmapped];

    /// The name the shell and the reports use (`DMA`, `NORMAL`, `UNMAPPED`).
    pub const fn name(self) -> &'static str {
        match self {
            Zone::Dma => "DMA",
            Zone::Normal => "NORMAL",
            Zone::Unmapped => "UNMAPPED",
        }
    }

    /// Parses a zone name, case-insensitively; the `ZONE_` forms are accepted too.
    pub fn parse(s: &str) -> Option<Zone> {
        let s = s
            .strip_prefix("ZONE_")
            .or_else(|| s.strip_prefix("zone_"))
            .unwrap_or(s);
        Zone::ALL.into_iter().find(|z| {
            z.name().eq_ignore_ascii_case(s)
                || (*z == Zone::Unmapped && s.eq_ignore_ascii_case("UNMAPPED_IN_PGT"))
        })
    }

    /// The zone from its `repr(u8)` value.
    pub const fn from_index(i: u8) -> Option<Zone> {
        match i {
            0 => Some(Zone::Dma),
            1 => Some(Zone::Normal),
            2 => Some(Zone::Unmapped),
            _ => None,
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The public page attributes of the DragonOS API (`alloc_pages(zone, num, flags)`).
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PageFlags(pub u8);

impl PageFlags {
    /// The page is mapped in the page tables.
    pub const PGT_MAPPED: PageFlags = PageFlags(1 << 0);
    /// Used by kernel initialisation (image, boot structures, mem_map, page tables).
    pub const KERNEL_INIT: PageFlags = PageFlags(1 << 1);
    /// Device MMIO memory.
    pub const DEVICE: PageFlags = PageFlags(1 << 2);
    /// A kernel page.
    pub const KERNEL: PageFlags = PageFlags(1 << 3);
    /// A shared page.
    pub const SHARED: PageFlags = PageFlags(1 << 4);
    /// Every public flag with its name.
    pub const NAMED: [(PageFlags, &'static str); 5] = [
        (PageFlags::PGT_MAPPED, "PGT_MAPPED"),
        (PageFlags::KERNEL_INIT, "KERNEL_INIT"),
        (PageFlags::DEVICE, "DEVICE"),
        (PageFlags::KERNEL, "KERNEL"),
        (PageFlags::SHARED, "SHARED"),
    ];
    /// No flag.
    pub const EMPTY: PageFlags = PageFlags(0);
    /// All valid bits.
    pub const ALL_BITS: u8 = 0x1f;

    /// Parses one flag name (`PGT_MAPPED` or `PAGE_PGT_MAPPED`, any case).
    pub fn parse(s: &str) -> Option<PageFlags> {
        let s = s
            .strip_prefix("PAGE_")
            .or_else(|| s.strip_prefix("page_"))
            .unwrap_or(s);
        PageFlags::NAMED
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(s))
            .map(|(f, _)| *f)
    }
    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: PageFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Both sets of bits.
    pub const fn union(self, other: PageFlags) -> PageFlags {
        PageFlags(self.0 | other.0)
    }
    /// True if no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::ops::BitOr for PageFlags {
    type Output = PageFlags;
    fn bitor(self, rhs: PageFlags) -> PageFlags {
        self.union(rhs)
    }
}

impl core::ops::BitOrAssign for PageFlags {
    fn bitor_assign(&mut self, rhs: PageFlags) {
        *self = self.union(rhs);
    }
}

impl fmt::Display for PageFlags {
    /// `PGT_MAPPED|KERNEL`, or `-` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, name) in PageFlags::NAMED {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PageFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a frame is being used for right now.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum PageState {
    /// Not managed by the allocator: firmware, holes, kernel image, mem_map...
    Reserved = 0,
    /// Head of a free buddy block (on a free list).
    Free = 1,
    /// Head of an allocated block.
    Allocated = 2,
    /// A non-head page of a free or allocated block.
    Tail = 3,
    /// Head of a block owned by the slab allocator.
    Slab = 4,
    /// Head of a free block (orders 0..=3) held in a per-CPU-style cache of the buddy
    /// allocator (free, but on no free list).
    Cached = 5,
}

impl PageState {
    const fn from_bits(b: u8) -> PageState {
        match b {
            1 => PageState::Free,
            2 => PageState::Allocated,
            3 => PageState::Tail,
            4 => PageState::Slab,
            5 => PageState::Cached,
            _ => PageState::Reserved,
        }
    }
    /// Lower-case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            PageState::Reserved => "reserved",
            PageState::Free => "free",
            PageState::Allocated => "allocated",
            PageState::Tail => "tail",
            PageState::Slab => "slab",
            PageState::Cached => "cached",
        }
    }
}

/// Metadata of one 4 KiB physical frame: 16 bytes.
///
/// Byte layout: `flags` (public [`PageFlags`]), `meta` (state in bits 0..=2, zone in
/// bits 3..=4), `order`, `slab_cache` (slab owner, 0 = none), then the three `u32`
/// words `count`, `next`, `prev` whose meaning depends on the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Page {
    flags: u8,
    /// bits 0..=2 state, bits 3..=4 zone.
    meta: u8,
    /// Block order (0..=MAX_ORDER).
    order: u8,
    /// Slab allocator's owner-cache index (0 = none). Free for the slab to use.
    pub slab_cache: u8,
    /// Reference count (allocated heads); slab-owned otherwise.
    pub count: u32,
    /// Free-list / partial-list link or head PFN (see module docs).
    pub next: u32,
    /// Free-list / partial-list back link.
    pub prev: u32,
}

static_assertions::const_assert_eq!(core::mem::size_of::<Page>(), 16);

impl Page {
    /// A reserved page of `zone` with no flags and no links.
    pub const fn reserved(zone: Zone) -> Page {
        Page {
            flags: 0,
            meta: (zone as u8) << 3,
            order: 0,
            slab_cache: 0,
            count: 0,
            next: NIL,
            prev: NIL,
        }
    }
    /// `self == other` without a branch per field (the buddy's bulk free compares
    /// each page with a template).
    #[inline(always)]
    pub fn same_as(&self, other: &Page) -> bool {
        let bytes = |p: &Page| u32::from_le_bytes([p.flags, p.meta, p.order, p.slab_cache]);
        ((bytes(self) ^ bytes(other))
            | (self.count ^ other.count)
            | (self.next ^ other.next)
            | (self.prev ^ other.prev))
            == 0
    }
    /// Current state.
    pub const fn state(&self) -> PageState {
        PageState::from_bits(self.meta & 0b111)
    }
    /// Sets the state.
    pub fn set_state(&mut self, s: PageState) {
        self.meta = (self.meta & !0b111) | s as u8;
    }
    /// Zone this frame belongs to.
    pub const fn zone(&self) -> Zone {
        match Zone::from_index((self.meta >> 3) & 0b11) {
            Some(z) => z,
            None => Zone::Dma,
        }
    }
    /// Sets the zone.
    pub fn set_zone(&mut self, z: Zone) {
        self.meta = (self.meta & !(0b11 << 3)) | ((z as u8) << 3);
    }
    /// Block order (meaningful on block heads).
    pub const fn order(&self) -> u32 {
        self.order as u32
    }
    /// Sets the block order.
    pub fn set_order(&mut self, order: u32) {
        debug_assert!(order <= MAX_ORDER);
        self.order = order as u8;
    }
    /// Public flags.
    pub const fn flags(&self) -> PageFlags {
        PageFlags(self.flags)
    }
    /// Replaces the public flags.
    pub fn set_flags(&mut self, f: PageFlags) {
        self.flags = f.0 & PageFlags::ALL_BITS;
    }
}

/// Linux-style allocation flags (`gfp_t`): which zones a request may use, and modifiers.
///
/// Zone rules (as in Linux): `GFP_DMA` takes ZONE_DMA only; a plain request
/// (`GFP_KERNEL`, `GFP_ATOMIC`) takes ZONE_NORMAL and falls back to ZONE_DMA only when
/// NORMAL has no block of that order; `__GFP_HIGHMEM` prefers ZONE_UNMAPPED, then
/// NORMAL, then DMA. Never the other way round: a DMA request never gets NORMAL memory.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash, Debug)]
pub struct Gfp(pub u32);

impl Gfp {
    /// Ordinary kernel allocation (may sleep in Linux; memkern never sleeps).
    pub const KERNEL: Gfp = Gfp(0);
    /// Atomic context: same zones as KERNEL.
    pub const ATOMIC: Gfp = Gfp(1 << 0);
    /// Take memory from ZONE_DMA only.
    pub const DMA: Gfp = Gfp(1 << 1);
    /// Prefer ZONE_UNMAPPED_IN_PGT (Linux's highmem).
    pub const HIGHMEM: Gfp = Gfp(1 << 2);
    /// Zero the memory before returning it.
    pub const ZERO: Gfp = Gfp(1 << 3);
    /// Linux `__GFP_MEMALLOC`: may use the zones' reserves below their `min`
    /// watermark. Kernel-internal: only the kernel's own heap passes it; the shell
    /// never parses it (it is not in [`Gfp::NAMED`]) and fault injection never fails
    /// such a request.
    pub const MEMALLOC: Gfp = Gfp(1 << 4);
    /// Kernel-internal, like `MEMALLOC`: fault injection never fails the request.
    /// The kernel heap passes it with or without `MEMALLOC` (see `mm::memalloc`):
    /// injection fails what commands ask the allocators for, not the kernel's
    /// bookkeeping.
    pub const NOFAULT: Gfp = Gfp(1 << 5);
    /// Every flag with its shell name.
    pub const NAMED: [(Gfp, &'static str); 5] = [
        (Gfp::KERNEL, "GFP_KERNEL"),
        (Gfp::ATOMIC, "GFP_ATOMIC"),
        (Gfp::DMA, "GFP_DMA"),
        (Gfp::HIGHMEM, "__GFP_HIGHMEM"),
        (Gfp::ZERO, "__GFP_ZERO"),
    ];

    /// Parses one flag name, any case, with or without the `GFP_`/`__GFP_` prefix.
    pub fn parse(s: &str) -> Option<Gfp> {
        let bare = |n: &str| {
            n.trim_start_matches('_')
                .trim_start_matches("GFP_")
                .to_ascii_uppercase()
        };
        let want = bare(&s.to_ascii_uppercase());
        Gfp::NAMED
            .iter()
            .find(|(_, n)| bare(n) == want)
            .map(|(g, _)| *g)
    }
    /// True if every bit of `other` is set.
    pub const fn contains(self, other: Gfp) -> bool {
        self.0 & other.0 == other.0
    }
    /// The zones to try, in order.
    pub fn zonelist(self) -> &'static [Zone] {
        if self.contains(Gfp::DMA) {
            &[Zone::Dma]
        } else if self.contains(Gfp::HIGHMEM) {
            &[Zone::Unmapped, Zone::Normal, Zone::Dma]
        } else {
            &[Zone::Normal, Zone::Dma]
        }
    }
}

impl core::ops::BitOr for Gfp {
    type Output = Gfp;
    fn bitor(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 | rhs.0)
    }
}

/// Why a memory operation failed. Every misuse the reference documents say would
/// crash the system is one of these instead.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MmError {
    /// No block of the requested size in the allowed zones.
    OutOfMemory,
    /// The zone is not one of DMA, NORMAL, UNMAPPED, or has no memory.
    BadZone,
    /// A page count outside the allowed range (DragonOS: 1..=63).
    BadCount { got: u64, max: u64 },
    /// An order above MAX_ORDER.
    BadOrder(u32),
    /// A size outside the allowed range.
    BadSize { got: u64, min: u64, max: u64 },
    /// An alignment that is not a power of two or is too large.
    BadAlign(u64),
    /// A PFN or address outside managed RAM.
    NotRam(u64),
    /// The page is free already (double free).
    DoubleFree(Pfn),
    /// The page is reserved / kernel-owned and may not be freed.
    Reserved(Pfn),
    /// The page is not the first page of an allocated block.
    NotBlockHead(Pfn),
    /// Freed with another count or order than it was allocated with.
    WrongSize { pfn: Pfn, expected: u64, got: u64 },
    /// The page belongs to the slab allocator and must be freed through it.
    SlabPage(Pfn),
    /// The address has no kernel virtual address (UNMAPPED zone).
    NoVirtualAddress(Pfn),
    /// A pointer that is not the start of a live object (foreign, interior, freed).
    InvalidFree(u64),
    /// Object freed twice.
    ObjectDoubleFree(u64),
    /// Object freed to another cache than the one that allocated it.
    WrongCache(u64),
    /// The cache still has live objects.
    CacheBusy { live: u64 },
    /// No such cache / pool / object.
    NotFound,
    /// A name is in use already.
    Exists,
    /// A table is full (caches, pools...).
    TooMany,
    /// An address that is not aligned as required.
    Misaligned(u64),
    /// An address range overlaps something that is in use.
    Busy(u64),
    /// The operation is not valid in the current state.
    Invalid(&'static str),
    /// The zone has the frames, but taking them would cross its `min` watermark:
    /// they are the kernel's reserve.
    BelowWatermark { zone: Zone, free: u64, min: u64 },
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MmError::OutOfMemory => f.write_str("out of memory"),
            MmError::BelowWatermark { zone, free, min } => write!(
                f,
                "out of memory: zone {zone} has {free} free pages and keeps {min} \
                 (its min watermark) for the kernel"
            ),
            MmError::BadZone => {
                f.write_str("unknown or empty zone (expected DMA, NORMAL or UNMAPPED)")
            }
            MmError::BadCount { got, max } => {
                write!(f, "page count {got} out of range (expected 1..={max})")
            }
            MmError::BadOrder(o) => write!(f, "order {o} out of range (expected 0..={MAX_ORDER})"),
            MmError::BadSize { got, min, max } => {
                write!(f, "size {got} out of range (expected {min}..={max} bytes)")
            }
            MmError::BadAlign(a) => write!(f, "alignment {a} is not a power of two in range"),
            MmError::NotRam(a) => write!(f, "{a:#x} is not in managed RAM"),
            MmError::DoubleFree(p) => write!(f, "double free of page pfn={p}"),
            MmError::Reserved(p) => write!(f, "page pfn={p} is reserved, not allocated"),
            MmError::NotBlockHead(p) => write!(
                f,
                "page pfn={p} is not the first page of an allocated block"
            ),
            MmError::WrongSize { pfn, expected, got } => {
                write!(
                    f,
                    "block at pfn={pfn} was allocated with {expected}, freed with {got}"
                )
            }
            MmError::SlabPage(p) => write!(f, "page pfn={p} belongs to the slab allocator"),
            MmError::NoVirtualAddress(p) => write!(f, "page pfn={p} has no kernel virtual address"),
            MmError::InvalidFree(a) => write!(f, "{a:#018x} is not a live object"),
            MmError::ObjectDoubleFree(a) => write!(f, "double free of object {a:#018x}"),
            MmError::WrongCache(a) => write!(f, "object {a:#018x} belongs to another cache"),
            MmError::CacheBusy { live } => write!(f, "cache still has {live} live objects"),
            MmError::NotFound => f.write_str("not found"),
            MmError::Exists => f.write_str("name already in use"),
            MmError::TooMany => f.write_str("table full"),
            MmError::Misaligned(a) => write!(f, "{a:#x} is not aligned as required"),
            MmError::Busy(a) => write!(f, "{a:#x} is in use"),
            MmError::Invalid(why) => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_accessors_round_trip() {
        let mut p = Page::reserved(Zone::Unmapped);
        assert_eq!(p.zone(), Zone::Unmapped);
        assert_eq!(p.state(), PageState::Reserved);
        p.set_state(PageState::Slab);
        p.set_order(MAX_ORDER);
        p.set_flags(PageFlags::KERNEL | PageFlags::SHARED);
        assert_eq!(p.state(), PageState::Slab);
        assert_eq!(p.zone(), Zone::Unmapped);
        assert_eq!(p.order(), MAX_ORDER);
        assert_eq!(p.flags().to_string(), "KERNEL|SHARED");
        p.set_zone(Zone::Dma);
        assert_eq!(p.zone(), Zone::Dma);
        assert_eq!(p.state(), PageState::Slab);
    }

    #[test]
    fn zone_and_flag_names_parse() {
        assert_eq!(Zone::parse("dma"), Some(Zone::Dma));
        assert_eq!(Zone::parse("ZONE_UNMAPPED_IN_PGT"), Some(Zone::Unmapped));
        assert_eq!(Zone::parse("DMX"), None);
        assert_eq!(PageFlags::parse("page_shared"), Some(PageFlags::SHARED));
        assert_eq!(PageFlags::parse("BOGUS"), None);
        assert_eq!(PageFlags::EMPTY.to_string(), "-");
    }
}
