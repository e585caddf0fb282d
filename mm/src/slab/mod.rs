//! The slab allocator: `kmalloc`/`kzalloc`/`kfree`, `kmem_cache_*`, mempools and
//! slub_debug, on top of any [`PageProvider`] (the buddy allocator in the kernel).
//!
//! # Using it
//!
//! [`Slab`] holds all its state in fixed arrays (no heap anywhere on the allocation
//! paths: it can back the kernel's `#[global_allocator]`). [`Slab::new`] is `const`
//! and already contains the 32 kmalloc caches (`kmalloc-32` ... `kmalloc-1M`,
//! `dma-kmalloc-32` ... `dma-kmalloc-1M`). Every operation that may touch memory
//! takes the two halves of the machine per call:
//!
//! - `mem: &mut M` where `M: PhysMem`: the kernel's direct map. Object addresses
//!   handed out and taken back are *virtual* direct-map addresses;
//!   [`PhysMem::phys_of`] turns them into physical ones.
//! - `pages: &mut P` where `P: PageProvider`: where slabs come from, where the
//!   `struct Page` of every frame lives, and the *liveness bitmap* (below).
//!
//! Both are generic parameters, so their accessors inline into the fast paths.
//!
//! # Design: a liveness bitmap and per-cache magazines
//!
//! A slab is a naturally aligned block of 2^order pages cut into `objs` slots of
//! `stride` bytes (at most 128; the stride is a multiple of 32). Three facts describe
//! every object, each kept in exactly one place:
//!
//! - **Is it live?** The liveness bitmap ([`PageProvider::slab_bits`], 16 bytes per
//!   frame, like Linux's `page_ext`): bit `phys / 32` is set exactly while a live
//!   object starts at `phys`. It lies outside every slab, so no overflow or use
//!   after free can corrupt it, and "is this the start of a live object?" is one
//!   bit test: foreign, interior and double frees all fail it.
//! - **Whose is it?** `Page::slab_cache` of its frame (every page of a slab carries
//!   the cache number; 0 = not a slab page).
//! - **Where is it free?** A free object is either in its cache's *magazine* (a
//!   LIFO array of up to [`MAG`] free objects) or *available* in its slab. A slab's
//!   head page counts its available objects (`Page::count`); slabs with some are on
//!   the cache's FIFO partial list (`Page::next`/`prev`).
//!
//! The invariant that ties them together: **a magazine is only refilled when it is
//! empty** (and bulk allocation only takes from slabs once it has emptied the
//! magazine), so at that moment every clear bit of a slab's object slots is an
//! available object, and refilling scans the bitmap of a partial slab for them.
//!
//! - kmalloc (fast path): pop the magazine, set the object's bit.
//! - kfree (fast path): `virt - direct-map offset` = `phys`; it must be 32-aligned,
//!   its frame's `Page::slab_cache` must name a kmalloc cache whose magazine has
//!   room (`kmem_cache_free`: the given cache), and its bit must be set. Clear the
//!   bit, push the object. Nothing is changed unless every check passes.
//! - Magazine empty on allocation: refill it, written straight in its final order
//!   (lowest address on top): up to half its capacity of the available objects of
//!   the partial slabs, each slab's in one bitmap scan (bitmap words whose slots
//!   are all free are written from the stride), slab after slab; if there is no
//!   partial slab, whole new slabs, whose objects come from the stride without a
//!   scan: as many as half the magazine holds, up to 64 KiB of them (kmalloc-32
//!   ... 256: one slab of 128 objects; kmalloc-1k ... kmalloc-32k: two 32 KiB
//!   slabs), or one slab of more than half the magazine if all of it holds the
//!   slab. Magazine full on free: the oldest three quarters
//!   go back to their slabs in runs (consecutive objects of one slab: one count
//!   update, one partial-list and one give-back decision per run); a slab whose
//!   objects are all available is given back, except one spare per cache.
//! - Bulk calls ([`Slab::kmem_cache_alloc_bulk`], [`Slab::kmem_cache_free_bulk`])
//!   use the magazine, then the same batched paths straight between the caller's
//!   array and the slabs; every object freed passes the fast path's checks or
//!   goes through the complete single-object path.
//! - Statistics cost nothing on these paths: objects in use = slab objects -
//!   available objects - magazine objects.
//!
//! A magazine holds at most 256 KiB of objects; caches with slabs above 32 KiB
//! and debug caches have none: their objects go straight to and from their slabs. [`Slab::kmem_cache_shrink`] /
//! [`Slab::shrink_all`] empty the magazines and give back the spare slabs, so
//! freeing everything and shrinking returns every page (the shell's `free all`).
//!
//! Head page fields of a slab: `slab_cache` = cache number; `count` = available
//! objects; `next`/`prev` = list links. Tail pages: state `Tail`, `next` = head
//! PFN, `slab_cache` = cache number. Invariants relied upon by kfree: `slab_cache !=
//! 0` exactly on the pages of live slabs (set on every page when a slab is made,
//! cleared before its block goes back); a liveness bit is only set inside a slab.
//!
//! Slab sizes: the most objects per slab (at most 128 slots) with <= 1/8 waste
//! among orders 0..=3 (up to 32 KiB, like Linux's `slub_max_order`), the smallest
//! such order on a tie; bigger objects the smallest order with <= 1/8 waste. Every
//! per-slab cost (making and giving back a slab, the page allocator's round trip,
//! partial-list moves) is shared by that many objects. kmalloc-32: order 0, 128
//! objects; 64: order 1, 128; 128: order 2, 128; 256: order 3, 128; 512: 3, 64;
//! 1k: 3, 32; 2k: 3, 16; 4k: 3, 8; 8k..32k: 3, 4..1; 64k: 4 ... 1M: 8.
//!
//! # Misuse
//!
//! Nothing panics. Freeing anything that is not a live object (foreign pointer,
//! interior pointer, freed object, object of another cache) returns an error and
//! changes nothing; OOM is `MmError::OutOfMemory` (and changes nothing either).
//! Detected corruption in debug caches is counted and reported ([`Slab::reports`]).
//!
//! # Debugging
//!
//! See [`debug`] for the slot layout of debug caches. Debug options are per cache
//! ([`Slab::set_debug`], [`SlabFlags`] at creation, [`Slab::slub_debug`] with the
//! Linux `slub_debug=` syntax). A cache's options can only change while it has no
//! live objects (the layout changes): otherwise `CacheBusy { live }`. Debug caches
//! take the out-of-line paths: they have no magazine, check every object they hand
//! out or take back, and also keep their full slabs on a list for validation.
//!
//! # Fault injection
//!
//! `failslab` ([`Slab::set_failslab`], [`crate::fault`]) is consulted at the top of
//! the allocation slow path. While it is armed every magazine is empty with
//! capacity 0, so every allocation gets there.

mod bulk;
pub mod debug;
pub mod layout;
pub mod mempool;
pub mod selftest;
mod slow;

use core::fmt;
use core::panic::Location;

use crate::fault::{FaultAttr, FaultConfig};
use crate::{Gfp, MmError, MmStat, Page, PageProvider, Pfn, PhysMem, NIL, PAGE_SHIFT};
pub use debug::{
    cmdline_slub_debug, DebugFlags, SlabReport, SlubDebugOutcome, Track, POISON_END, POISON_FREE,
    POISON_INUSE, SLUB_RED_ACTIVE, SLUB_RED_INACTIVE,
};
use debug::{Reports, Sites, SlabErrorKind};
use layout::Layout;
pub use layout::{KMALLOC_CLASSES, KMALLOC_MAX, KMALLOC_MIN, MAX_OBJS_PER_SLAB};
pub use mempool::{Mempool, PoolBacking, MEMPOOL_MAX};

/// Size of the cache table; cache numbers are 1..=255 (`Page::slab_cache` is a u8).
const TABLE: usize = 256;
/// Most caches (kmalloc caches included).
pub const MAX_CACHES: usize = TABLE - 1;
/// Longest cache name in bytes.
pub const MAX_NAME: usize = 31;

/// What is wrong with a cache or mempool name ([`check_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadName {
    /// Empty, or longer than [`MAX_NAME`] bytes.
    Length,
    /// Contains whitespace or a control byte.
    Whitespace,
}

/// The one rule for cache and mempool names: 1..=[`MAX_NAME`] bytes, no
/// whitespace or control bytes (a name is one shell word and one `slabinfo`
/// column).
pub fn check_name(name: &str) -> Result<(), BadName> {
    if name.is_empty() || name.len() > MAX_NAME {
        Err(BadName::Length)
    } else if name
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        Err(BadName::Whitespace)
    } else {
        Ok(())
    }
}
/// Cache numbers 1..=32 are the kmalloc caches (normal, then DMA).
const LAST_KMALLOC: u8 = 2 * KMALLOC_CLASSES as u8;

const KIND_NONE: u8 = 0;
const KIND_KMALLOC: u8 = 1;
const KIND_CACHE: u8 = 2;

const MODE_FAST: u8 = 0;
const MODE_DEBUG: u8 = 1;

/// Entries of a cache's magazine. 256 rather than 128: a batch far beyond the
/// magazine then pays its refill and flush calls half as often (kmalloc of
/// 10,000 64 B objects: 84.6 -> 81.3 instructions per object, W1 59 -> 58), for
/// 1 KiB more per cache in `Slab` (255 KiB in all); flushing three quarters instead of half
/// moves less of the magazine down (80.3).
pub const MAG: usize = 256;
const _: () = assert!(MAG.is_power_of_two());
/// Most bytes of objects one magazine holds.
const MAG_BYTES: u64 = 256 << 10;
/// log2 of the liveness granule: one bit per 32 bytes (the smallest stride).
const GRANULE_SHIFT: u32 = 5;
const _: () = assert!(1 << GRANULE_SHIFT == layout::MIN_STRIDE);
/// log2 of the bytes one bitmap word covers.
const WORD_SHIFT: u32 = GRANULE_SHIFT + 6;

/// The bitmap word and bit of the object at physical address `phys`.
#[inline(always)]
const fn bit_of(phys: u64) -> (usize, u64) {
    (
        (phys >> WORD_SHIFT) as usize,
        1 << ((phys >> GRANULE_SHIFT) & 63),
    )
}

/// True if a live object starts at `phys` (its liveness bit).
#[inline(always)]
fn is_live<P: PageProvider>(pages: &P, phys: u64) -> bool {
    let (w, b) = bit_of(phys);
    pages.slab_bits().get(w).is_some_and(|&x| x & b != 0)
}

/// Sets (`live`) or clears the liveness bit of `phys`.
#[inline(always)]
fn set_live<P: PageProvider>(pages: &mut P, phys: u64, live: bool) {
    let (w, b) = bit_of(phys);
    if let Some(x) = pages.slab_bits_mut().get_mut(w) {
        if live {
            *x |= b;
        } else {
            *x &= !b;
        }
    }
}

/// Handle of a cache: its number and a generation, so a handle of a destroyed cache
/// is refused (`NotFound`) even when the number is reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CacheId {
    index: u8,
    generation: u32,
}

impl CacheId {
    /// The cache number (the value stored in `Page::slab_cache`).
    pub const fn index(self) -> u8 {
        self.index
    }
}

/// `kmem_cache_create` flags (Linux values).
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash, Debug)]
pub struct SlabFlags(pub u32);

impl SlabFlags {
    /// No flag.
    pub const NONE: SlabFlags = SlabFlags(0);
    /// slub_debug `F`.
    pub const CONSISTENCY_CHECKS: SlabFlags = SlabFlags(0x100);
    /// slub_debug `Z`.
    pub const RED_ZONE: SlabFlags = SlabFlags(0x400);
    /// slub_debug `P`.
    pub const POISON: SlabFlags = SlabFlags(0x800);
    /// Align objects to a cache line (64 bytes).
    pub const HWCACHE_ALIGN: SlabFlags = SlabFlags(0x2000);
    /// Take slabs from ZONE_DMA.
    pub const CACHE_DMA: SlabFlags = SlabFlags(0x4000);
    /// slub_debug `U`.
    pub const STORE_USER: SlabFlags = SlabFlags(0x10000);
    /// Linux panics if creation fails; memkern returns the error with
    /// [`CreateError::would_panic`] set instead.
    pub const PANIC: SlabFlags = SlabFlags(0x40000);
    const ALL: u32 = 0x100 | 0x400 | 0x800 | 0x2000 | 0x4000 | 0x10000 | 0x40000;

    /// True if every bit of `o` is set.
    pub const fn contains(self, o: SlabFlags) -> bool {
        self.0 & o.0 == o.0
    }

    /// The debug options among these flags.
    pub const fn debug(self) -> DebugFlags {
        let mut d = 0;
        if self.contains(SlabFlags::CONSISTENCY_CHECKS) {
            d |= DebugFlags::SANITY.0;
        }
        if self.contains(SlabFlags::RED_ZONE) {
            d |= DebugFlags::RED_ZONE.0;
        }
        if self.contains(SlabFlags::POISON) {
            d |= DebugFlags::POISON.0;
        }
        if self.contains(SlabFlags::STORE_USER) {
            d |= DebugFlags::STORE_USER.0;
        }
        DebugFlags(d)
    }
}

impl core::ops::BitOr for SlabFlags {
    type Output = SlabFlags;
    fn bitor(self, rhs: SlabFlags) -> SlabFlags {
        SlabFlags(self.0 | rhs.0)
    }
}

/// Object constructor, called once for every object when its slab is created (Linux
/// semantics: objects must be freed back in their constructed state). It receives the
/// memory, the object's virtual and physical address and its size.
pub type Ctor = fn(mem: &mut dyn PhysMem, virt: u64, phys: u64, size: usize);

/// Why `kmem_cache_create` failed. With `SLAB_PANIC` Linux would have panicked;
/// memkern never does and sets `would_panic` instead.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CreateError {
    /// The reason.
    pub error: MmError,
    /// The cache was created with `SLAB_PANIC`.
    pub would_panic: bool,
}

impl From<CreateError> for MmError {
    fn from(e: CreateError) -> MmError {
        e.error
    }
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.would_panic {
            write!(
                f,
                "kmem_cache_create failed (SLAB_PANIC: would panic): {}",
                self.error
            )
        } else {
            write!(f, "kmem_cache_create failed: {}", self.error)
        }
    }
}

/// A cache name stored inline (at most [`MAX_NAME`] bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheName {
    bytes: [u8; 32],
    len: u8,
}

impl CacheName {
    /// The name.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?")
    }
    const EMPTY: CacheName = CacheName {
        bytes: [0; 32],
        len: 0,
    };
    fn new(s: &str) -> Option<CacheName> {
        if s.is_empty() || s.len() > MAX_NAME {
            return None;
        }
        let mut n = CacheName::EMPTY;
        n.bytes[..s.len()].copy_from_slice(s.as_bytes());
        n.len = s.len() as u8;
        Some(n)
    }
}

impl fmt::Debug for CacheName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A doubly linked list of slabs through their head pages (FIFO: pushed at the
/// tail, taken from the head, so a partial slab collects frees for as long as
/// possible before it is reused).
#[derive(Clone, Copy)]
struct SlabList {
    head: u32,
    tail: u32,
    len: u32,
}

impl SlabList {
    const EMPTY: SlabList = SlabList {
        head: NIL,
        tail: NIL,
        len: 0,
    };

    fn push<P: PageProvider>(&mut self, pp: &mut P, pfn: u32) -> Result<(), MmError> {
        let old = self.tail;
        let p = page_mut(pp, pfn)?;
        p.next = NIL;
        p.prev = old;
        if old != NIL {
            page_mut(pp, old)?.next = pfn;
        } else {
            self.head = pfn;
        }
        self.tail = pfn;
        self.len += 1;
        Ok(())
    }

    fn unlink<P: PageProvider>(&mut self, pp: &mut P, pfn: u32) -> Result<(), MmError> {
        let p = page_mut(pp, pfn)?;
        let (n, pr) = (p.next, p.prev);
        p.next = NIL;
        p.prev = NIL;
        if pr != NIL {
            page_mut(pp, pr)?.next = n;
        } else {
            self.head = n;
        }
        if n != NIL {
            page_mut(pp, n)?.prev = pr;
        } else {
            self.tail = pr;
        }
        self.len -= 1;
        Ok(())
    }
}

#[inline]
fn page_mut<P: PageProvider>(pp: &mut P, pfn: u32) -> Result<&mut Page, MmError> {
    pp.page_mut(Pfn(pfn))
        .ok_or(MmError::Invalid("slab: page metadata missing"))
}
/// One cache. Hot fields first.
#[derive(Clone, Copy)]
struct Cache {
    /// Objects in the magazine (`mag[..n]`, newest last).
    n: usize,
    /// Magazine capacity for `kfree` (`cap` for kmalloc caches, else 0, so that a
    /// `kfree` of another cache's object leaves the fast path).
    kcap: usize,
    /// Magazine capacity (0: no magazine).
    cap: usize,
    /// Free objects (virtual addresses), their liveness bits clear.
    mag: [u64; MAG],
    /// Slab bytes - 1.
    mask: u64,
    /// `ceil(2^32 / stride)`: `offset * recip >> 32` is the slot of an offset.
    recip: u64,
    stride: u32,
    objs: u32,
    mode: u8,
    kind: u8,
    dma: bool,
    /// Slabs with available objects (FIFO), the spare included.
    partial: SlabList,
    /// Slabs without available objects (debug caches only).
    full: SlabList,
    /// An empty slab kept for reuse (on the partial list), NIL if none.
    spare: u32,
    nr_slabs: u64,
    /// Available objects: the sum of the partial slabs' counts.
    avail: u64,
    lay: Layout,
    generation: u32,
    name: CacheName,
    /// Requested object size (class size for kmalloc caches).
    size: u32,
    align: u32,
    flags: SlabFlags,
    debug: DebugFlags,
    ctor: Option<Ctor>,
    /// Errors detected in this cache.
    errors: u64,
    /// Selftest cache: errors are counted here only, not in the global reports.
    quiet: bool,
}

impl Cache {
    const EMPTY: Cache = Cache {
        n: 0,
        kcap: 0,
        cap: 0,
        mag: [0; MAG],
        mask: 0,
        recip: 0,
        stride: 0,
        objs: 0,
        mode: MODE_FAST,
        kind: KIND_NONE,
        dma: false,
        partial: SlabList::EMPTY,
        full: SlabList::EMPTY,
        spare: NIL,
        nr_slabs: 0,
        avail: 0,
        lay: Layout {
            obj_size: 0,
            stride: 0,
            order: 0,
            objs: 0,
            recip: 0,
            rz_len: 0,
            state_off: 0,
            track_off: 0,
            pad_off: 0,
        },
        generation: 0,
        name: CacheName::EMPTY,
        size: 0,
        align: 0,
        flags: SlabFlags::NONE,
        debug: DebugFlags::NONE,
        ctor: None,
        errors: 0,
        quiet: false,
    };

    /// Installs a layout and debug options (the cache has no slab, its magazine is
    /// empty); `kind` must be set already.
    const fn set_layout(&mut self, lay: Layout, debug: DebugFlags) {
        self.lay = lay;
        self.debug = debug;
        self.mode = if debug.any() { MODE_DEBUG } else { MODE_FAST };
        self.mask = lay.slab_bytes() - 1;
        self.recip = lay.recip;
        self.stride = lay.stride;
        self.objs = lay.objs;
        self.n = 0;
        self.set_mag_cap();
    }

    /// Sets the magazine capacities from the layout, debug options and kind.
    const fn set_mag_cap(&mut self) {
        let fit = MAG_BYTES / self.lay.stride as u64;
        self.cap = if self.debug.any() || self.lay.order > 3 {
            0
        } else if fit < MAG as u64 {
            fit as usize
        } else {
            MAG
        };
        self.kcap = if self.kind == KIND_KMALLOC {
            self.cap
        } else {
            0
        };
    }

    const fn kmalloc(k: usize, dma: bool) -> Cache {
        let size = layout::class_size(k);
        // Always `Some` for the class sizes (see the layout tests).
        let Some(lay) = layout::compute(size, size, DebugFlags::NONE) else {
            return Cache::EMPTY;
        };
        let (bytes, len) = layout::kmalloc_name(k, dma);
        let mut c = Cache::EMPTY;
        c.kind = KIND_KMALLOC;
        c.set_layout(lay, DebugFlags::NONE);
        c.dma = dma;
        c.generation = 1;
        c.name = CacheName { bytes, len };
        c.size = size;
        c.align = size;
        c.flags = if dma {
            SlabFlags::CACHE_DMA
        } else {
            SlabFlags::NONE
        };
        c
    }

    /// Objects in use.
    const fn live(&self) -> u64 {
        self.nr_slabs * self.objs as u64 - self.avail - self.n as u64
    }
}

/// An object located by [`Slab::locate`]: its cache number and physical address.
#[derive(Clone, Copy, Debug)]
struct Loc {
    ix: u8,
    phys: u64,
}

/// Statistics of one cache (enough for `/proc/slabinfo` 2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    pub id: CacheId,
    pub name: CacheName,
    /// Objects in use.
    pub active_objs: u64,
    /// Objects in all slabs.
    pub num_objs: u64,
    /// Usable object size (the class size for kmalloc caches).
    pub obj_size: u32,
    /// Slot size: object plus metadata and alignment (slabinfo's `objsize`).
    pub stride: u32,
    pub align: u32,
    pub objs_per_slab: u32,
    pub pages_per_slab: u32,
    /// Slabs with at least one object in use.
    pub active_slabs: u64,
    pub num_slabs: u64,
    /// Slabs on the partial list.
    pub partial_slabs: u64,
    pub flags: SlabFlags,
    pub debug: DebugFlags,
    pub kmalloc: bool,
    pub dma: bool,
    /// Errors detected in this cache since it was created.
    pub errors: u64,
}

/// Totals over all caches, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SlabTotals {
    /// Slots in use (objects in use; with debug layouts their metadata too).
    pub cache_used: u64,
    /// The rest of the slab memory: free objects (and slack at slab ends).
    pub cache_free: u64,
    /// All memory held in slabs (`cache_used + cache_free`).
    pub slab_bytes: u64,
    /// Objects in use.
    pub objects: u64,
    /// Slabs.
    pub slabs: u64,
}

/// What [`Slab::object_info`] knows about an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub cache: CacheId,
    pub name: CacheName,
    /// Start of the object containing the address.
    pub object: u64,
    pub obj_size: u32,
    /// Allocated right now.
    pub allocated: bool,
    /// Tracking records (caches with `U`).
    pub track: Track,
}

/// The slab allocator. See the module documentation.
pub struct Slab {
    caches: [Cache; TABLE],
    sites: Sites,
    reports: Reports,
    /// Debug options given to caches created from now on (`slub_debug` without list).
    default_debug: DebugFlags,
    /// Allocation/free sequence number for track records.
    seq: u64,
    next_generation: u32,
    /// `failslab` (see [`Slab::set_failslab`]).
    fail: FaultAttr,
}

impl Default for Slab {
    fn default() -> Slab {
        Slab::new()
    }
}

impl fmt::Debug for Slab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slab")
            .field("totals", &self.totals())
            .field("errors", &self.reports.total)
            .finish()
    }
}

#[inline(always)]
const fn kmalloc_ix(size: usize, dma: bool) -> u8 {
    (1 + layout::kmalloc_class(size) + if dma { KMALLOC_CLASSES } else { 0 }) as u8
}

/// Cache number, requested size and gfp in one word for
/// [`Slab::alloc_slow_packed`]: `ix | req << 8 | gfp << 40`.
#[inline(always)]
const fn pack(ix: u8, req: u64, gfp: Gfp) -> u64 {
    ix as u64 | req << 8 | (gfp.0 as u64 & 0xffff) << 40
}

#[inline(always)]
fn bad_size(size: usize) -> MmError {
    MmError::BadSize {
        got: size as u64,
        min: 1,
        max: KMALLOC_MAX as u64,
    }
}

impl Slab {
    /// An allocator with the 32 kmalloc caches and no slabs. `const`: the kernel can
    /// put it in a `static` without running anything.
    pub const fn new() -> Slab {
        let mut caches = [Cache::EMPTY; TABLE];
        let mut k = 0;
        while k < KMALLOC_CLASSES {
            caches[1 + k] = Cache::kmalloc(k, false);
            caches[1 + KMALLOC_CLASSES + k] = Cache::kmalloc(k, true);
            k += 1;
        }
        Slab {
            caches,
            sites: Sites::new(),
            reports: Reports::new(),
            default_debug: DebugFlags::NONE,
            seq: 0,
            next_generation: 2,
            fail: FaultAttr::OFF,
        }
    }

    // ------------------------------------------------------------------
    // kmalloc
    // ------------------------------------------------------------------

    /// `kmalloc(size, gfp)`: a physically contiguous object of the smallest power of
    /// two not below `size` (at least 32 bytes), aligned to that size. `GFP_DMA`
    /// takes it from the `dma-kmalloc-*` caches (ZONE_DMA), `__GFP_ZERO` zeroes it;
    /// other bits are ignored (slab memory is always directly mapped). Errors:
    /// `BadSize` for 0 or more than 1 MiB, `OutOfMemory`.
    #[inline]
    #[track_caller]
    pub fn kmalloc<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        size: usize,
        gfp: Gfp,
    ) -> Result<u64, MmError> {
        if size.wrapping_sub(1) >= KMALLOC_MAX {
            return Err(bad_size(size));
        }
        let dma = gfp.0 & Gfp::DMA.0 != 0;
        if gfp.0 & Gfp::ZERO.0 == 0 {
            // The cache number as a full-width index: the class arithmetic folds
            // into the address.
            let i = 1 + layout::kmalloc_class(size) + if dma { KMALLOC_CLASSES } else { 0 };
            if let Some(v) = self.alloc_fast(mem, pages, i) {
                return Ok(v);
            }
        }
        let ix = kmalloc_ix(size, dma);
        self.alloc_slow_packed(mem, pages, pack(ix, size as u64, gfp), Location::caller())
    }

    /// `kzalloc(size, gfp)`: `kmalloc` with `__GFP_ZERO`.
    #[inline]
    #[track_caller]
    pub fn kzalloc<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        size: usize,
        gfp: Gfp,
    ) -> Result<u64, MmError> {
        self.kmalloc(mem, pages, size, gfp | Gfp::ZERO)
    }

    /// `kfree(virt)`: frees a kmalloc object. 0 is a no-op. Anything else that is not
    /// the start of a live kmalloc object is refused with `InvalidFree` (foreign or
    /// interior pointer), `ObjectDoubleFree` (free object) or `WrongCache` (object of
    /// a `kmem_cache`), changing nothing. O(1): the owner is found through
    /// `struct Page`.
    #[inline]
    #[track_caller]
    pub fn kfree<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        virt: u64,
    ) -> Result<(), MmError> {
        self.free_obj(mem, pages, virt, 0, Location::caller())
    }

    /// The complete free: every check, every case. `want` is the cache number
    /// (`kmem_cache_free`) or 0 for any kmalloc cache (`kfree`).
    #[inline(never)]
    #[cold]
    fn free_checked<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        virt: u64,
        want: u8,
        site: &'static Location<'static>,
    ) -> Result<(), MmError> {
        if virt == 0 {
            return Ok(());
        }
        let loc = self.locate(mem, pages, virt)?;
        if (want == 0 && loc.ix > LAST_KMALLOC) || (want != 0 && loc.ix != want) {
            return Err(self.wrong_cache(mem, loc, virt));
        }
        self.free_slow(mem, pages, loc, virt, site)
    }

    #[cold]
    fn wrong_cache<M: PhysMem>(&mut self, mem: &M, loc: Loc, virt: u64) -> MmError {
        self.report_misuse(mem, loc.ix, SlabErrorKind::WrongCache, loc.phys);
        MmError::WrongCache(virt)
    }

    /// Usable size of the live kmalloc or cache object at `virt` (Linux `ksize`).
    pub fn ksize<M: PhysMem, P: PageProvider>(
        &self,
        mem: &M,
        pages: &P,
        virt: u64,
    ) -> Result<usize, MmError> {
        let loc = self.locate(mem, pages, virt)?;
        if self.is_free(mem, pages, loc, virt)? {
            return Err(MmError::InvalidFree(virt));
        }
        Ok(self.caches[loc.ix as usize].lay.obj_size as usize)
    }

    /// The kmalloc cache serving `size`-byte requests (`dma`: the DMA one).
    pub fn kmalloc_cache(&self, size: usize, dma: bool) -> Result<CacheId, MmError> {
        if size.wrapping_sub(1) >= KMALLOC_MAX {
            return Err(bad_size(size));
        }
        Ok(self.id_of(kmalloc_ix(size, dma)))
    }

    // ------------------------------------------------------------------
    // kmem_cache
    // ------------------------------------------------------------------

    /// `kmem_cache_create(name, size, align, flags, ctor)`.
    ///
    /// `size` 1..=1 MiB; `align` 0 (= 8) or a power of two up to 1 MiB; objects are
    /// rounded up to a multiple of 8 and aligned to `align` (64 with
    /// `SLAB_HWCACHE_ALIGN`). `SLAB_CACHE_DMA` takes slabs from ZONE_DMA. The debug
    /// flags (`SLAB_RED_ZONE`...) and the `slub_debug` default switch debugging on.
    /// Names are unique, 1..=31 bytes without whitespace.
    ///
    /// Errors (in `CreateError::error`): `Invalid` (name, unknown flag bits),
    /// `Exists`, `BadSize`, `BadAlign`, `TooMany` (255 caches). With `SLAB_PANIC` the
    /// error has `would_panic` set (Linux would panic; memkern never does).
    pub fn kmem_cache_create(
        &mut self,
        name: &str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        ctor: Option<Ctor>,
    ) -> Result<CacheId, CreateError> {
        let debug = flags.debug().union(self.default_debug);
        self.create_cache(name, size, align, flags, debug, ctor, KIND_CACHE)
            .map_err(|error| CreateError {
                error,
                would_panic: flags.contains(SlabFlags::PANIC),
            })
    }

    #[allow(clippy::too_many_arguments)]
    fn create_cache(
        &mut self,
        name: &str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        debug: DebugFlags,
        ctor: Option<Ctor>,
        kind: u8,
    ) -> Result<CacheId, MmError> {
        if flags.0 & !SlabFlags::ALL != 0 {
            return Err(MmError::Invalid("unknown SLAB_ flag bits"));
        }
        check_name(name).map_err(|e| {
            MmError::Invalid(match e {
                BadName::Length => "cache name must be 1..=31 bytes",
                BadName::Whitespace => "cache name contains whitespace",
            })
        })?;
        let cname =
            CacheName::new(name).ok_or(MmError::Invalid("cache name must be 1..=31 bytes"))?;
        if self.find(name).is_some() {
            return Err(MmError::Exists);
        }
        if size == 0 || size > KMALLOC_MAX {
            return Err(bad_size(size));
        }
        if align != 0 && (!align.is_power_of_two() || align > KMALLOC_MAX) {
            return Err(MmError::BadAlign(align as u64));
        }
        let mut a = align.max(8) as u32;
        if flags.contains(SlabFlags::HWCACHE_ALIGN) {
            a = a.max(64);
        }
        let obj = (size as u32).next_multiple_of(8).max(16);
        let lay = layout::compute(obj, a, debug).ok_or(bad_size(size))?;
        let ix = (1 + 2 * KMALLOC_CLASSES..TABLE)
            .find(|&i| self.caches[i].kind == KIND_NONE)
            .ok_or(MmError::TooMany)?;
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(2);
        let mut c = Cache::EMPTY;
        c.kind = kind;
        c.set_layout(lay, debug);
        c.dma = flags.contains(SlabFlags::CACHE_DMA);
        c.generation = generation;
        c.name = cname;
        c.size = size as u32;
        c.align = a;
        c.flags = flags;
        c.ctor = ctor;
        if self.fail.is_armed() {
            c.cap = 0;
            c.kcap = 0;
        }
        self.caches[ix] = c;
        Ok(CacheId {
            index: ix as u8,
            generation,
        })
    }

    /// `kmem_cache_alloc(cache, gfp)`: an object of the cache. `__GFP_ZERO` zeroes it
    /// (refused with `Invalid` on a cache with a constructor, as Linux warns); the
    /// zone bits are ignored (the cache decides, `SLAB_CACHE_DMA`).
    #[inline]
    #[track_caller]
    pub fn kmem_cache_alloc<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        cache: CacheId,
        gfp: Gfp,
    ) -> Result<u64, MmError> {
        let ix = self.check_id(cache)?;
        if gfp.0 & Gfp::ZERO.0 == 0 {
            if let Some(v) = self.alloc_fast(mem, pages, ix as usize) {
                return Ok(v);
            }
        }
        let req = self.caches[ix as usize].size;
        self.alloc_slow_packed(mem, pages, pack(ix, req as u64, gfp), Location::caller())
    }

    /// `kmem_cache_free(cache, virt)`: 0 is a no-op; an object of another cache is
    /// `WrongCache`, a free object `ObjectDoubleFree`, anything else `InvalidFree`.
    #[inline]
    #[track_caller]
    pub fn kmem_cache_free<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        cache: CacheId,
        virt: u64,
    ) -> Result<(), MmError> {
        let ix = self.check_id(cache)?;
        self.free_obj(mem, pages, virt, ix, Location::caller())
    }

    /// `kmem_cache_destroy(cache)`: refused with `CacheBusy { live }` while objects
    /// are allocated, `Invalid` for the kmalloc caches; otherwise every slab goes back.
    pub fn kmem_cache_destroy<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        cache: CacheId,
    ) -> Result<(), MmError> {
        let ix = self.check_id(cache)?;
        let c = &self.caches[ix as usize];
        if c.kind == KIND_KMALLOC {
            return Err(MmError::Invalid("the kmalloc caches cannot be destroyed"));
        }
        if c.live() != 0 {
            return Err(MmError::CacheBusy { live: c.live() });
        }
        self.release_all(mem, pages, ix)?;
        self.caches[ix as usize] = Cache::EMPTY;
        Ok(())
    }

    /// `kmem_cache_shrink`: empties the magazine into the slabs and gives back every
    /// empty slab (the spare included). Returns the number of slabs released.
    pub fn kmem_cache_shrink<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        cache: CacheId,
    ) -> Result<u64, MmError> {
        let ix = self.check_id(cache)?;
        self.shrink_ix(mem, pages, ix)
    }

    /// Shrinks every cache (after `free all`, memory is back to boot figures).
    pub fn shrink_all<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
    ) -> Result<u64, MmError> {
        let mut n = 0;
        for ix in 1..TABLE {
            if self.caches[ix].kind != KIND_NONE {
                n += self.shrink_ix(mem, pages, ix as u8)?;
            }
        }
        Ok(n)
    }

    /// The cache called `name`.
    pub fn find(&self, name: &str) -> Option<CacheId> {
        (1..TABLE)
            .find(|&i| self.caches[i].kind != KIND_NONE && self.caches[i].name.as_str() == name)
            .map(|i| self.id_of(i as u8))
    }

    fn id_of(&self, ix: u8) -> CacheId {
        CacheId {
            index: ix,
            generation: self.caches[ix as usize].generation,
        }
    }

    #[inline(always)]
    fn check_id(&self, id: CacheId) -> Result<u8, MmError> {
        let c = &self.caches[id.index as usize];
        if c.kind == KIND_NONE || c.generation != id.generation {
            return Err(MmError::NotFound);
        }
        Ok(id.index)
    }

    // ------------------------------------------------------------------
    // Statistics
    // ------------------------------------------------------------------

    /// Statistics of one cache.
    pub fn cache_info(&self, cache: CacheId) -> Result<CacheInfo, MmError> {
        let ix = self.check_id(cache)?;
        Ok(self.info_ix(ix))
    }

    fn info_ix(&self, ix: u8) -> CacheInfo {
        let c = &self.caches[ix as usize];
        let spare = (c.spare != NIL) as u64;
        CacheInfo {
            id: self.id_of(ix),
            name: c.name,
            active_objs: c.live(),
            num_objs: c.nr_slabs * c.objs as u64,
            obj_size: c.lay.obj_size,
            stride: c.lay.stride,
            align: c.align,
            objs_per_slab: c.objs,
            pages_per_slab: 1 << c.lay.order,
            active_slabs: c.nr_slabs - spare,
            num_slabs: c.nr_slabs,
            partial_slabs: c.partial.len as u64,
            flags: c.flags,
            debug: c.debug,
            kmalloc: c.kind == KIND_KMALLOC,
            dma: c.dma,
            errors: c.errors,
        }
    }

    /// Every cache, in table order (kmalloc caches first).
    pub fn caches(&self) -> impl Iterator<Item = CacheInfo> + '_ {
        (1..TABLE)
            .filter(|&i| self.caches[i].kind != KIND_NONE)
            .map(|i| self.info_ix(i as u8))
    }

    /// Totals over all caches (for `mm_stat`).
    pub fn totals(&self) -> SlabTotals {
        let mut t = SlabTotals::default();
        for c in self.caches.iter().filter(|c| c.kind != KIND_NONE) {
            let live = c.live();
            t.objects += live;
            t.slabs += c.nr_slabs;
            t.cache_used += live * c.lay.stride as u64;
            t.slab_bytes += c.nr_slabs * c.lay.slab_bytes();
        }
        t.cache_free = t.slab_bytes - t.cache_used;
        t
    }

    /// Completes the page allocator's `mm_stat` with `cache_used`, `cache_free` and
    /// `available = free + cache_free` (slab pages are already in `used`).
    pub fn mm_stat(&self, page_level: MmStat) -> MmStat {
        let t = self.totals();
        MmStat {
            cache_used: t.cache_used,
            cache_free: t.cache_free,
            available: page_level.free + t.cache_free,
            ..page_level
        }
    }

    /// Writes `/proc/slabinfo` (version 2.1; tunables are 0 as in SLUB).
    pub fn write_slabinfo(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        writeln!(w, "slabinfo - version: 2.1")?;
        writeln!(
            w,
            "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
        )?;
        for i in self.caches() {
            writeln!(
                w,
                "{:<17} {:6} {:6} {:6} {:4} {:4} : tunables {:4} {:4} {:4} : slabdata {:6} {:6} {:6}",
                i.name.as_str(),
                i.active_objs,
                i.num_objs,
                i.stride,
                i.objs_per_slab,
                i.pages_per_slab,
                0,
                0,
                0,
                i.active_slabs,
                i.num_slabs,
                0
            )?;
        }
        Ok(())
    }

    /// What the allocator knows about `virt`: its cache, the object containing it,
    /// whether that object is allocated, its tracking records.
    pub fn object_info<M: PhysMem, P: PageProvider>(
        &self,
        mem: &M,
        pages: &P,
        virt: u64,
    ) -> Result<ObjectInfo, MmError> {
        let bad = MmError::InvalidFree(virt);
        let (phys, ix) = self.slab_page_of(mem, pages, virt)?;
        let c = &self.caches[ix as usize];
        if c.kind == KIND_NONE {
            return Err(bad);
        }
        let off = phys & c.mask;
        let idx = off / c.stride as u64;
        if idx >= c.objs as u64 {
            return Err(bad);
        }
        let slot = phys - off + idx * c.stride as u64;
        let object = virt - (phys - slot);
        let loc = Loc { ix, phys: slot };
        Ok(ObjectInfo {
            cache: self.id_of(ix),
            name: c.name,
            object,
            obj_size: c.lay.obj_size,
            allocated: !self.is_free(mem, pages, loc, object)?,
            track: self.track_at(mem, ix, slot),
        })
    }

    // ------------------------------------------------------------------
    // ------------------------------------------------------------------
    // Locating objects
    // ------------------------------------------------------------------

    /// The physical address of `virt` and the number of the cache whose slab holds
    /// that frame (`Page::slab_cache`, never 0), or `InvalidFree`. O(1): one
    /// translation and one `struct Page` read.
    #[inline(always)]
    fn slab_page_of<M: PhysMem, P: PageProvider>(
        &self,
        mem: &M,
        pages: &P,
        virt: u64,
    ) -> Result<(u64, u8), MmError> {
        let bad = MmError::InvalidFree(virt);
        let phys = mem.phys_of(virt).ok_or(bad)?;
        if phys >> 44 != 0 {
            return Err(bad);
        }
        match pages.page(Pfn::containing(phys)).ok_or(bad)?.slab_cache {
            0 => Err(bad),
            ix => Ok((phys, ix)),
        }
    }

    /// The object slot that starts exactly at `virt`, or `InvalidFree`.
    #[inline(always)]
    fn locate<M: PhysMem, P: PageProvider>(
        &self,
        mem: &M,
        pages: &P,
        virt: u64,
    ) -> Result<Loc, MmError> {
        let bad = MmError::InvalidFree(virt);
        let (phys, ix) = self.slab_page_of(mem, pages, virt)?;
        let c = &self.caches[ix as usize];
        let off = phys & c.mask;
        let idx = off.wrapping_mul(c.recip) >> 32;
        if idx >= c.objs as u64 || idx * c.stride as u64 != off {
            return Err(bad);
        }
        Ok(Loc { ix, phys })
    }

    /// True if the located object is free (no side effects).
    fn is_free<M: PhysMem, P: PageProvider>(
        &self,
        _mem: &M,
        pages: &P,
        loc: Loc,
        _virt: u64,
    ) -> Result<bool, MmError> {
        Ok(!is_live(pages, loc.phys))
    }

    // ------------------------------------------------------------------
    // Fast paths
    // ------------------------------------------------------------------

    /// An object of cache `ix` for a request of `req` bytes (internal callers).
    fn alloc_ix<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        req: u32,
        site: &'static Location<'static>,
    ) -> Result<u64, MmError> {
        match self.alloc_fast(mem, pages, ix as usize) {
            Some(v) => Ok(v),
            None => self.alloc_slow_packed(mem, pages, pack(ix, req as u64, Gfp::KERNEL), site),
        }
    }

    /// Allocation fast path: pop the magazine and mark the object live. `None`: the
    /// magazine is empty (always, for caches without one): take the slow path.
    #[inline(always)]
    fn alloc_fast<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &M,
        pages: &mut P,
        ix: usize,
    ) -> Option<u64> {
        let c = &mut self.caches[ix % TABLE];
        let n = c.n.wrapping_sub(1);
        if n >= MAG {
            return None;
        }
        c.n = n;
        let v = c.mag[n];
        let g = v.wrapping_sub(mem.direct_offset()) >> GRANULE_SHIFT;
        if let Some(word) = pages.slab_bits_mut().get_mut((g >> 6) as usize) {
            *word |= 1u64.rotate_left((g & 63) as u32);
        }
        Some(v)
    }

    /// Free: the fast path (see the module documentation), else the checked path,
    /// which checks everything again. `want`: the cache number, 0 for any kmalloc
    /// cache.
    #[inline(always)]
    fn free_obj<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        virt: u64,
        want: u8,
        site: &'static Location<'static>,
    ) -> Result<(), MmError> {
        if self.free_fast(mem, pages, virt, want) {
            return Ok(());
        }
        self.free_checked(mem, pages, virt, want, site)
    }

    /// The free fast path: true if `virt` was the start of a live object of the
    /// right cache and went into that cache's magazine; false (nothing changed)
    /// otherwise. The offset need not be a direct-map address: the bounds-checked
    /// `struct Page` and bitmap reads refuse anything else, and a set bit in a
    /// slab page can only be a live object.
    #[inline(always)]
    fn free_fast<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &M,
        pages: &mut P,
        virt: u64,
        want: u8,
    ) -> bool {
        // The granule number with the offset inside the granule rotated into the
        // top bits: a pointer that is not 32-aligned fails both bounds checks.
        let g = virt
            .wrapping_sub(mem.direct_offset())
            .rotate_right(GRANULE_SHIFT);
        let Some(ix) = pages.slab_cache_at((g >> (PAGE_SHIFT - GRANULE_SHIFT)) as usize) else {
            return false;
        };
        let ix = ix as usize;
        let c = &self.caches[ix];
        let cap = if want == 0 {
            c.kcap
        } else if ix == want as usize {
            c.cap
        } else {
            0
        };
        let n = c.n;
        if n >= cap {
            return false;
        }
        let Some(word) = pages.slab_bits_mut().get_mut((g >> 6) as usize) else {
            return false;
        };
        let w = *word;
        let bit = (g & 63) as u32;
        if w >> bit & 1 == 0 {
            return false;
        }
        // `!(1 << bit)` as a rotation: one `btr`.
        *word = w & (!1u64).rotate_left(bit);
        let c = &mut self.caches[ix];
        c.mag[n % MAG] = virt;
        c.n = n + 1;
        true
    }

    // ------------------------------------------------------------------
    // Debug control
    // ------------------------------------------------------------------

    /// The debug options of a cache.
    pub fn debug_flags(&self, cache: CacheId) -> Result<DebugFlags, MmError> {
        let ix = self.check_id(cache)?;
        Ok(self.caches[ix as usize].debug)
    }

    /// Switches the debug options of a cache. Refused with `CacheBusy { live }` while
    /// it has live objects (the slot layout changes); its slabs are given back
    /// first. `BadSize` if the debug layout does not fit in a slab.
    pub fn set_debug<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        cache: CacheId,
        debug: DebugFlags,
    ) -> Result<(), MmError> {
        let ix = self.check_id(cache)?;
        self.set_debug_ix(mem, pages, ix, debug)
    }

    fn set_debug_ix<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        debug: DebugFlags,
    ) -> Result<(), MmError> {
        let c = &self.caches[ix as usize];
        if c.debug == debug {
            return Ok(());
        }
        if c.live() != 0 {
            return Err(MmError::CacheBusy { live: c.live() });
        }
        let lay =
            layout::compute(c.lay.obj_size, c.align, debug).ok_or(bad_size(c.size as usize))?;
        self.release_all(mem, pages, ix)?;
        let c = &mut self.caches[ix as usize];
        c.set_layout(lay, debug);
        if self.fail.is_armed() {
            c.cap = 0;
            c.kcap = 0;
        }
        Ok(())
    }

    /// Applies a Linux `slub_debug` parameter: `slub_debug` (all options, all caches),
    /// `slub_debug=FZPU` (all caches, and the default for caches created later),
    /// `slub_debug=FZ,kmalloc-64,dma-kmalloc-*` (listed caches; `*` ends a prefix),
    /// `slub_debug=-` (off), blocks separated by `;`. Letters: F Z P U (T A O are
    /// accepted and ignored). Caches with live objects are left unchanged and counted
    /// in `busy`. Errors: `Invalid` on a syntax error (then nothing changes).
    pub fn slub_debug<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        param: &str,
    ) -> Result<SlubDebugOutcome, MmError> {
        let mut want: [Option<DebugFlags>; TABLE] = [None; TABLE];
        let mut default = self.default_debug;
        for (flags, list) in debug::parse_blocks(param)? {
            if list.is_empty() {
                default = flags;
                for (i, w) in want.iter_mut().enumerate() {
                    if self.caches[i].kind != KIND_NONE {
                        *w = Some(flags);
                    }
                }
            } else {
                for pat in list.split(',').filter(|p| !p.is_empty()) {
                    for (i, w) in want.iter_mut().enumerate() {
                        let c = &self.caches[i];
                        if c.kind != KIND_NONE && debug::name_matches(pat, c.name.as_str()) {
                            *w = Some(flags);
                        }
                    }
                }
            }
        }
        self.default_debug = default;
        let mut out = SlubDebugOutcome::default();
        for (i, w) in want.iter().enumerate() {
            let Some(flags) = *w else { continue };
            if self.caches[i].debug == flags {
                continue;
            }
            match self.set_debug_ix(mem, pages, i as u8, flags) {
                Ok(()) => out.changed += 1,
                Err(MmError::CacheBusy { .. }) => out.busy += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Arms (`Some`) or disarms (`None`) `failslab` ([`crate::fault`]). While armed
    /// every object allocation takes the slow path, which consults the injector
    /// (requests with [`Gfp::MEMALLOC`] are never failed) and answers an injected
    /// failure with `OutOfMemory`: arming flushes every magazine into its slabs and
    /// gives it capacity 0 (objects go straight to and from their slabs, as in a
    /// debug cache); disarming restores the capacities. Re-arming restarts the
    /// running state. Errors only if slab metadata is corrupt (then the injector is
    /// unchanged; magazines flushed so far keep capacity 0 until the next disarm).
    pub fn set_failslab<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        cfg: Option<FaultConfig>,
    ) -> Result<(), MmError> {
        match cfg {
            Some(c) => {
                for ix in 1..TABLE {
                    if self.caches[ix].kind != KIND_NONE {
                        let n = self.caches[ix].n;
                        self.flush(mem, pages, ix as u8, n)?;
                        self.caches[ix].cap = 0;
                        self.caches[ix].kcap = 0;
                    }
                }
                self.fail.arm(c);
            }
            None => {
                for c in self.caches.iter_mut().filter(|c| c.kind != KIND_NONE) {
                    c.set_mag_cap();
                }
                self.fail.disarm();
            }
        }
        Ok(())
    }

    /// The `failslab` attribute: configuration and counters.
    pub fn failslab(&self) -> &FaultAttr {
        &self.fail
    }

    /// Error reports, oldest first (the last [`debug::MAX_REPORTS`]).
    pub fn reports(&self) -> impl Iterator<Item = &SlabReport> + '_ {
        self.reports.iter()
    }

    /// Errors detected since boot (all caches except selftest caches).
    pub fn errors_total(&self) -> u64 {
        self.reports.total
    }

    /// Forgets the kept reports (the total keeps counting).
    pub fn clear_reports(&mut self) {
        self.reports.clear();
    }
}
