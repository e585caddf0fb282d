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
//! - `pages: &mut P` where `P: PageProvider`: where slabs come from and where the
//!   `struct Page` of every frame lives (`Buddy` in the kernel).
//!
//! Both are generic parameters, so their accessors inline into the fast paths.
//!
//! # Design (SLUB-like, with bitmaps and a reuse table)
//!
//! A slab is a naturally aligned block of 2^order pages cut into `objs` slots
//! (at most 128). Its *free bitmap* (bit i = slot i is free) is the one source of
//! truth about its objects, kept at a fixed place: in the head page's `Page::count`
//! when the slab has at most 32 slots (every kmalloc class from 128 bytes up), else
//! in slot 0, the *header slot*, which is never handed out (kmalloc-32: 127 objects
//! per page, kmalloc-64: 63). Nothing is ever stored inside a free object, so a
//! constructor's work survives and a use after free cannot corrupt the allocator.
//!
//! Each cache has an *active* slab whose bitmap it keeps in itself (`words`), a
//! FIFO doubly linked list of *partial* slabs (through `Page::next`/`prev` of the
//! head pages) and a 32-entry *reuse table* `q` of objects freed recently, which are
//! still marked in use in their slabs. An object can only sit in entry
//! `(phys / stride) % 32` (`phys >> log2(stride)` for other strides), so "is it in
//! the table?" is one comparison, and the objects of different slabs spread over
//! the whole table even when a slab has only 8 slots.
//!
//! - kmalloc (fast path): pop an object of the reuse table (lowest occupied entry:
//!   only its `qmask` bit is cleared),
//!   else take the lowest set bit of the active words: the object is
//!   `active_virt + i * stride`. No memory is touched, no counter updated.
//! - kfree (fast path): `virt -> phys` ([`PhysMem::phys_of`]) `-> pfn -> Page`:
//!   `Page::slab_cache` is the cache number (every page of a slab carries it, 0 =
//!   not a slab page); the slab head is the slab-aligned block start (tail pages also
//!   point to it through `Page::next`); the slot is `offset >> log2(stride)` and must
//!   be an object start. The object must be in use (its bit clear, not in the reuse
//!   table); it then goes into its reuse table entry if that is empty, else its bit
//!   is set in its slab's bitmap. One shortcut: freeing the object handed out by
//!   the last allocation (the LIFO `kmalloc`/`kfree` pair) needs no lookup at all:
//!   the allocator remembers it (`recent`) and forgets it on any free of it, so it
//!   always names a live object of a known cache.
//! - Free into another slab's bitmap: the first free into a full slab puts it at the
//!   tail of the partial list; a slab that becomes empty goes back to the page
//!   provider at once.
//! - When the active slab is exhausted, the first partial slab (its header bitmap
//!   sanity-checked against the in-use count kept in its head page) or a new slab
//!   becomes active; the old one simply stops being active (full slabs are on no
//!   list, except in debug caches).
//! - Statistics cost nothing on these paths: objects in use are computed from slab
//!   counts, the active words, the reuse table and a count of free objects in
//!   non-active slabs kept by the slower paths.
//!
//! Empty slabs kept: the active slab, and slabs kept alive by objects in the reuse
//! table; none for caches with slabs above 32 KiB (order > 3), which also have no
//! reuse table. [`Slab::kmem_cache_shrink`] / [`Slab::shrink_all`] empty the reuse
//! tables and give those slabs back, so freeing everything and shrinking returns
//! every page (the shell's `free all`).
//!
//! Head page fields of a slab: `slab_cache` = cache number; `count` = the free
//! bitmap (slabs of <= 32 slots; 0 while active) or the in-use count | quarantine
//! flag (header slabs); `next`/`prev` = list links. Tail pages: state `Tail`,
//! `next` = head PFN, `slab_cache` = cache number. Invariant relied upon by kfree:
//! `slab_cache != 0` exactly on the pages of live slabs (set on every page when a
//! slab is made, cleared before its block goes back; the buddy allocator's page
//! templates have 0).
//!
//! Slab sizes: the smallest order giving >= 8 objects (or >= 32 KiB) with <= 1/8
//! waste, at most 128 slots (kmalloc-32..512: order 0; 1k: 1; 2k: 2; 4k..32k: 3;
//! 64k: 4 ... 1M: 8).
//!
//! # Misuse
//!
//! Nothing panics. Freeing anything that is not a live object (foreign pointer,
//! interior pointer, freed object, object of another cache) returns an error and
//! changes nothing; OOM is `MmError::OutOfMemory` (and changes nothing either).
//! Detected corruption is counted and reported ([`Slab::reports`]): a header bitmap
//! that fails its check puts the slab in quarantine (never allocated from again;
//! frees into it are only counted, so double frees there go unnoticed; it is
//! released when its count reaches zero).
//!
//! # Debugging
//!
//! See [`debug`] for the slot layout of debug caches. Debug options are per cache
//! ([`Slab::set_debug`], [`SlabFlags`] at creation, [`Slab::slub_debug`] with the
//! Linux `slub_debug=` syntax). A cache's options can only change while it has no
//! live objects (the layout changes): otherwise `CacheBusy { live }`. Debug caches
//! take the out-of-line paths: they have no reuse table, check every object they
//! hand out or take back, and also keep their full slabs on a list for validation.

pub mod debug;
pub mod layout;
pub mod mempool;
pub mod selftest;
mod slabs;

use core::fmt;
use core::panic::Location;

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
/// Cache numbers 1..=32 are the kmalloc caches (normal, then DMA).
const LAST_KMALLOC: u8 = 2 * KMALLOC_CLASSES as u8;

const KIND_NONE: u8 = 0;
const KIND_KMALLOC: u8 = 1;
const KIND_CACHE: u8 = 2;

const MODE_FAST: u8 = 0;
const MODE_DEBUG: u8 = 1;

/// `active_phys` when there is no active slab (never a slab address).
const NO_SLAB: u64 = u64::MAX;
/// Entries of a cache's reuse table.
const QN: usize = 32;
const _: () = assert!(QN <= 32); // `qmask` is a u32

/// The only entry of the reuse table the object at physical address `phys` can
/// occupy, in a cache with `log2(stride)` = `shift`: `phys / stride` (for
/// power-of-two strides) modulo the table size, so that the objects of different
/// slabs spread over the whole table even when a slab has fewer slots than the
/// table has entries (8 objects for kmalloc-512 ... kmalloc-32k).
#[inline(always)]
const fn qslot(phys: u64, shift: u32) -> usize {
    (phys >> shift) as usize % QN
}
/// Header slabs: `Page::count` flag of a quarantined slab.
const QUARANTINE: u32 = 1 << 24;

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
    /// Occupied entries of `q`.
    qmask: u32,
    /// The reuse table: objects freed recently, still marked in use in their slabs.
    /// An entry holds an object only while its `qmask` bit is set (taking an object
    /// out clears the bit and leaves the stale value). An object can only sit in
    /// entry [`qslot`], so a double free of one of them is found with one comparison.
    q: [u64; QN],
    /// Free bitmap of the active slab (bit i of word i/64 = slot i free).
    words: [u64; 2],
    active_virt: u64,
    /// Slab bytes - 1.
    mask: u64,
    /// `stride - 1` for a power-of-two stride (an object start has these bits clear),
    /// all ones otherwise (the fast path then leaves everything to the checked one).
    align_mask: u64,
    /// log2(stride) for a power-of-two stride.
    shift: u32,
    /// Free bitmap of an empty slab whose bitmap is in its head page.
    full32: u32,
    /// Offset of the first object slot, and bytes of object slots from it in a
    /// non-debug cache that uses the reuse table (0 otherwise: no fast path).
    first_off: u64,
    fast_span: u64,
    recip: u64,
    stride: u32,
    first: u32,
    /// Object slots per slab (`objs - first`).
    span: u32,
    objs: u32,
    mode: u8,
    kind: u8,
    /// Give the active slab back as soon as it is empty (slabs above 32 KiB).
    release_empty: bool,
    dma: bool,
    /// Physical address of the active slab, [`NO_SLAB`] if none.
    active_phys: u64,
    partial: SlabList,
    /// Full slabs (debug caches only).
    full: SlabList,
    nr_slabs: u64,
    /// Free objects in the stored bitmaps of non-active slabs.
    nonactive_free: u64,
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
        qmask: 0,
        q: [0; QN],
        words: [0; 2],
        active_virt: 0,
        mask: 0,
        align_mask: u64::MAX,
        shift: 0,
        full32: 0,
        first_off: 0,
        fast_span: 0,
        recip: 0,
        stride: 0,
        first: 0,
        span: 0,
        objs: 0,
        mode: MODE_FAST,
        kind: KIND_NONE,
        release_empty: false,
        dma: false,
        active_phys: NO_SLAB,
        partial: SlabList::EMPTY,
        full: SlabList::EMPTY,
        nr_slabs: 0,
        nonactive_free: 0,
        lay: Layout {
            obj_size: 0,
            stride: 0,
            order: 0,
            objs: 0,
            first: 0,
            recip: 0,
            rz_len: 0,
            state_off: 0,
            track_off: 0,
            pad_off: 0,
            full_mask: 0,
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

    /// Installs a layout and debug options (the cache has no slab).
    const fn set_layout(&mut self, lay: Layout, debug: DebugFlags) {
        self.lay = lay;
        self.debug = debug;
        self.mode = if debug.any() { MODE_DEBUG } else { MODE_FAST };
        self.release_empty = lay.order > 3;
        self.mask = lay.slab_bytes() - 1;
        let pow2 = lay.stride.is_power_of_two();
        self.align_mask = if pow2 {
            lay.stride as u64 - 1
        } else {
            u64::MAX
        };
        self.shift = 31 - lay.stride.leading_zeros();
        self.full32 = lay.full_mask as u32;
        self.first_off = lay.first as u64 * lay.stride as u64;
        self.recip = lay.recip;
        self.stride = lay.stride;
        self.first = lay.first;
        self.span = lay.objs - lay.first;
        self.objs = lay.objs;
        self.active_phys = NO_SLAB;
        self.words = [0; 2];
        self.q = [0; QN];
        self.qmask = 0;
        self.fast_span = if self.uses_q() {
            (lay.objs - lay.first) as u64 * lay.stride as u64
        } else {
            0
        };
    }

    /// Non-debug caches with slabs up to 32 KiB use the reuse table.
    const fn uses_q(&self) -> bool {
        self.mode == MODE_FAST && !self.release_empty
    }

    /// Takes an object out of the reuse table.
    #[inline(always)]
    fn qpop(&mut self) -> Option<u64> {
        let m = self.qmask;
        if m == 0 {
            return None;
        }
        let s = m.trailing_zeros() as usize % QN;
        self.qmask = m & (m - 1);
        Some(self.q[s])
    }

    /// The object in reuse-table entry `slot`, 0 if the entry is empty (an entry
    /// is only meaningful while its `qmask` bit is set).
    #[inline(always)]
    fn q_get(&self, slot: usize) -> u64 {
        if self.qmask >> (slot % QN) & 1 != 0 {
            self.q[slot % QN]
        } else {
            0
        }
    }

    /// Puts `virt` into reuse-table entry `slot` (which must be empty).
    #[inline(always)]
    fn q_put(&mut self, slot: usize, virt: u64) {
        // Mask read before the entry is written: measurably faster W1 pairs
        // than a read-modify-write of `qmask` after it.
        let m = self.qmask;
        self.q[slot % QN] = virt;
        self.qmask = m | 1 << (slot % QN);
    }

    const fn kmalloc(k: usize, dma: bool) -> Cache {
        let size = layout::class_size(k);
        // Always `Some` for the class sizes (see the layout tests).
        let Some(lay) = layout::compute(size, size, DebugFlags::NONE) else {
            return Cache::EMPTY;
        };
        let (bytes, len) = layout::kmalloc_name(k, dma);
        let mut c = Cache::EMPTY;
        c.set_layout(lay, DebugFlags::NONE);
        c.kind = KIND_KMALLOC;
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

    /// Makes `phys` (or nothing) the active slab with free bitmap `bits`.
    fn set_active(&mut self, phys: u64, virt: u64, bits: u128) {
        self.active_phys = phys;
        self.active_virt = virt;
        self.words = [bits as u64, (bits >> 64) as u64];
    }

    fn active_bits(&self) -> u128 {
        self.words[0] as u128 | (self.words[1] as u128) << 64
    }

    /// Objects in use.
    fn live(&self) -> u64 {
        let total = self.nr_slabs * self.lay.usable() as u64;
        let free = self.active_bits().count_ones() as u64
            + self.nonactive_free
            + self.qmask.count_ones() as u64;
        total - free
    }
}

/// Where a freed pointer is: cache number, slot, physical address, offset in slab.
#[derive(Clone, Copy, Debug)]
struct Loc {
    ix: u8,
    idx: u32,
    phys: u64,
    off: u64,
}

impl Loc {
    fn head_phys(&self) -> u64 {
        self.phys - self.off
    }
    fn head(&self) -> u32 {
        (self.head_phys() >> 12) as u32
    }
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
    /// The object most recently handed out by an allocation fast path (0 = none),
    /// its cache number (0 = none) and reuse-table entry: freeing it right away
    /// (the LIFO `kmalloc`/`kfree` pair) needs no lookup at all. Cleared by any free
    /// of that object, so it always names a live object.
    recent: u64,
    recent_ix: u8,
    recent_slot: u8,
    caches: [Cache; TABLE],
    sites: Sites,
    reports: Reports,
    /// Debug options given to caches created from now on (`slub_debug` without list).
    default_debug: DebugFlags,
    /// Allocation/free sequence number for track records.
    seq: u64,
    next_generation: u32,
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
            recent: 0,
            recent_ix: 0,
            recent_slot: 0,
            caches,
            sites: Sites::new(),
            reports: Reports::new(),
            default_debug: DebugFlags::NONE,
            seq: 0,
            next_generation: 2,
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
        let ix = kmalloc_ix(size, gfp.0 & Gfp::DMA.0 != 0);
        if let Some(v) = self.alloc_fast(ix, gfp) {
            return Ok(v);
        }
        let packed = ix as u64 | (size as u64) << 8 | (gfp.0 as u64 & 0xffff) << 40;
        self.alloc_slow_packed(mem, pages, packed, Location::caller())
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
        if name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(MmError::Invalid("cache name contains whitespace"));
        }
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
        c.set_layout(lay, debug);
        c.kind = kind;
        c.dma = flags.contains(SlabFlags::CACHE_DMA);
        c.generation = generation;
        c.name = cname;
        c.size = size as u32;
        c.align = a;
        c.flags = flags;
        c.ctor = ctor;
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
        if let Some(v) = self.alloc_fast(ix, gfp) {
            return Ok(v);
        }
        let req = self.caches[ix as usize].size;
        let packed = ix as u64 | (req as u64) << 8 | (gfp.0 as u64 & 0xffff) << 40;
        self.alloc_slow_packed(mem, pages, packed, Location::caller())
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

    /// `kmem_cache_shrink`: gives back the slabs kept for reuse (the empty active
    /// slab, the object held for reuse). Returns the number of slabs released.
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
        let empty_active = c.active_phys != NO_SLAB && c.active_bits() == c.lay.full_mask;
        CacheInfo {
            id: self.id_of(ix),
            name: c.name,
            active_objs: c.live(),
            num_objs: c.nr_slabs * c.lay.usable() as u64,
            obj_size: c.lay.obj_size,
            stride: c.lay.stride,
            align: c.align,
            objs_per_slab: c.lay.usable(),
            pages_per_slab: 1 << c.lay.order,
            active_slabs: c.nr_slabs - empty_active as u64,
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
        if idx < c.first as u64 || idx >= c.objs as u64 {
            return Err(bad);
        }
        let slot = phys - off + idx * c.stride as u64;
        let object = virt - (phys - slot);
        let loc = Loc {
            ix,
            idx: idx as u32,
            phys: slot,
            off: slot & c.mask,
        };
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
        if idx.wrapping_sub(c.first as u64) >= (c.objs - c.first) as u64
            || idx * c.stride as u64 != off
        {
            return Err(bad);
        }
        Ok(Loc {
            ix,
            idx: idx as u32,
            phys,
            off,
        })
    }

    /// True if the located object is free (no side effects).
    fn is_free<M: PhysMem, P: PageProvider>(
        &self,
        mem: &M,
        pages: &P,
        loc: Loc,
        virt: u64,
    ) -> Result<bool, MmError> {
        let c = &self.caches[loc.ix as usize];
        if c.q_get(qslot(loc.phys, c.shift)) == virt {
            return Ok(true);
        }
        if loc.head_phys() == c.active_phys {
            return Ok(c.words[(loc.idx >> 6) as usize & 1] >> (loc.idx & 63) & 1 == 1);
        }
        let meta = pages
            .page(Pfn(loc.head()))
            .ok_or(MmError::Invalid("slab: page metadata missing"))?
            .count;
        if c.lay.in_page() {
            return Ok(meta >> loc.idx & 1 == 1);
        }
        if meta & QUARANTINE != 0 {
            return Ok(false);
        }
        let w = mem.read_u64(loc.head_phys() + (loc.idx as u64 / 64) * 8);
        Ok(w >> (loc.idx % 64) & 1 == 1)
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
        match self.alloc_fast(ix, Gfp::KERNEL) {
            Some(v) => Ok(v),
            None => {
                let packed = ix as u64 | (req as u64) << 8;
                self.alloc_slow_packed(mem, pages, packed, site)
            }
        }
    }

    /// Allocation fast path: an object of the reuse table, else a bit of the active
    /// slab. `None`: take the slow path.
    #[inline(always)]
    fn alloc_fast(&mut self, ix: u8, gfp: Gfp) -> Option<u64> {
        if gfp.0 & Gfp::ZERO.0 != 0 {
            return None;
        }
        let c = &mut self.caches[ix as usize];
        let m = c.qmask;
        let (v, slot) = if m != 0 {
            let s = m.trailing_zeros() as usize % QN;
            c.qmask = m & (m - 1);
            (c.q[s], s)
        } else {
            if c.mode != MODE_FAST {
                return None;
            }
            let w0 = c.words[0];
            let i = if w0 != 0 {
                c.words[0] = w0 & (w0 - 1);
                w0.trailing_zeros() as u64
            } else {
                let w1 = c.words[1];
                if w1 == 0 {
                    return None;
                }
                c.words[1] = w1 & (w1 - 1);
                64 + w1.trailing_zeros() as u64
            };
            let off = i * c.stride as u64;
            let v = c.active_virt + off;
            if c.fast_span == 0 {
                return Some(v);
            }
            (v, qslot(c.active_phys + off, c.shift))
        };
        self.recent = v;
        self.recent_ix = ix;
        self.recent_slot = slot as u8;
        Some(v)
    }

    /// Free: the fast path of non-debug caches with power-of-two strides (the
    /// pointer is an object start of a slab of the right cache, the object is in use
    /// and its reuse table entry is empty: it goes there), else
    /// [`free_other`](Self::free_other). `want`: the cache number, 0 for any kmalloc
    /// cache. The fast path changes nothing unless it succeeds; the other paths check
    /// everything again.
    #[inline(always)]
    fn free_obj<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        virt: u64,
        want: u8,
        site: &'static Location<'static>,
    ) -> Result<(), MmError> {
        if virt == self.recent {
            // The object just handed out, if the tag is still valid: live, of cache
            // `tag as u8` (0 = forgotten), reuse-table entry `tag >> 8`.
            let ix = self.recent_ix;
            self.recent_ix = 0;
            self.recent = 0;
            let ok = if want == 0 {
                ix.wrapping_sub(1) < LAST_KMALLOC
            } else {
                ix == want
            };
            let slot = self.recent_slot as usize % QN;
            let c = &mut self.caches[ix as usize];
            let m = c.qmask;
            if ok && m >> slot & 1 == 0 {
                c.q_put(slot, virt);
                return Ok(());
            }
        }
        if want == 0 {
            return self.kfree_full(mem, pages, virt, site);
        }
        self.free_full(mem, pages, virt, want, site)
    }

    /// [`free_full`](Self::free_full) for `kfree` (every argument in a register, so
    /// that the recent-object check can jump here).
    #[inline(never)]
    fn kfree_full<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        virt: u64,
        site: &'static Location<'static>,
    ) -> Result<(), MmError> {
        self.free_full(mem, pages, virt, 0, site)
    }

    /// Free in one pass for non-debug caches with a reuse table and power-of-two
    /// strides: the pointer must be an object start of a slab of the right cache and
    /// in use; it goes into its reuse table entry if that is empty, else into its
    /// slab's bitmap (list changes, release). Everything else (debug caches, other
    /// strides, errors) takes the checked path, which checks everything again;
    /// nothing is changed before the checks pass.
    #[inline(always)]
    fn free_full<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        virt: u64,
        want: u8,
        site: &'static Location<'static>,
    ) -> Result<(), MmError> {
        if let Some(phys) = mem.phys_of(virt).filter(|p| p >> 44 == 0) {
            if let Some(pg) = pages.page(Pfn::containing(phys)) {
                let ix = pg.slab_cache;
                let ok = if want == 0 {
                    ix.wrapping_sub(1) < LAST_KMALLOC
                } else {
                    ix == want
                };
                let c = &self.caches[ix as usize];
                if ok && phys & c.align_mask == 0 {
                    let off = phys & c.mask;
                    if off.wrapping_sub(c.first_off) < c.fast_span {
                        // `x >> log2(stride)` for power-of-two strides (the
                        // product's bits above 64 do not matter for the slot).
                        let idx = off.wrapping_mul(c.recip) >> 32;
                        let slot = (phys.wrapping_mul(c.recip) >> 32) as usize % QN;
                        debug_assert_eq!(slot, qslot(phys, c.shift));
                        let m = c.qmask;
                        if m >> slot & 1 == 0 {
                            let head_phys = phys - off;
                            let in_use = if head_phys == c.active_phys {
                                c.words[(idx >> 6) as usize & 1] >> (idx & 63) & 1 == 0
                            } else {
                                Self::in_use_other(mem, pages, c, head_phys, idx)
                            };
                            if in_use {
                                let c = &mut self.caches[ix as usize];
                                c.q_put(slot, virt);
                                return Ok(());
                            }
                        } else if c.q[slot] != virt {
                            // Entry taken: into the slab's bitmap, which checks that
                            // the object is in use before changing anything.
                            return self.free_to_bitmap(mem, pages, virt, phys | (ix as u64) << 56);
                        }
                    }
                }
            }
        }
        self.free_checked(mem, pages, virt, want, site)
    }

    /// Free of an object of a fast cache (`packed` = its physical address | cache
    /// number << 56; located and checked by [`free_full`](Self::free_full) up to its
    /// state) whose reuse table entry is taken: into its slab's bitmap (which checks
    /// the object's state first). Out of line, off the reuse-table path.
    #[inline(never)]
    fn free_to_bitmap<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        virt: u64,
        packed: u64,
    ) -> Result<(), MmError> {
        let ix = (packed >> 56) as u8;
        let phys = packed & ((1 << 56) - 1);
        let c = &self.caches[ix as usize];
        let off = phys & c.mask;
        let loc = Loc {
            ix,
            idx: (off >> c.shift) as u32,
            phys,
            off,
        };
        self.free_to_slab(mem, pages, loc, virt, false)
    }

    /// True if object slot `idx` of the non-active slab at `head_phys` of a fast
    /// cache is in use according to its bitmap (false for a quarantined slab).
    #[inline(always)]
    fn in_use_other<M: PhysMem, P: PageProvider>(
        mem: &M,
        pages: &P,
        c: &Cache,
        head_phys: u64,
        idx: u64,
    ) -> bool {
        let Some(hp) = pages.page(Pfn((head_phys >> PAGE_SHIFT) as u32)) else {
            return false;
        };
        if c.objs <= 32 {
            return hp.count >> idx & 1 == 0;
        }
        hp.count & QUARANTINE == 0
            && mem.read_u64(head_phys + (idx >> 6) * 8) >> (idx & 63) & 1 == 0
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
        self.caches[ix as usize].set_layout(lay, debug);
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
