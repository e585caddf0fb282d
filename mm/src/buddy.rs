//! The zoned buddy allocator: orders 0..=[`MAX_ORDER`], three zones, every page-level API.
//!
//! # Layout
//!
//! One [`Page`] per 4 KiB frame lives in `mem_map`, indexed by PFN from PFN 0 up to
//! `mem_map.len()` (= max PFN). The zones are fixed PFN intervals:
//!
//! - ZONE_DMA: `[0, DMA_LIMIT/4096)`;
//! - ZONE_NORMAL: `[DMA_LIMIT/4096, lowmem)`, permanently mapped;
//! - ZONE_UNMAPPED: `[lowmem, max_pfn)`.
//!
//! `lowmem` is given at construction and clamped to at least 16 MiB. Every page carries
//! its zone in `Page::zone()` (stamped once at boot, always equal to the zone of its
//! PFN); merging only considers buddies inside the zone's PFN bounds, so it never
//! crosses a zone boundary even when `lowmem` is not 4 MiB aligned.
//!
//! Usable RAM comes from the boot memory map as PFN ranges ([`Buddy::add_free_range`],
//! [`Buddy::page_init`]); every other frame stays `Reserved`. Frames inside RAM that the
//! kernel uses (image, mem_map, page tables) are carved out again with
//! [`Buddy::reserve_range`] and carry the flags given there (normally `KERNEL_INIT`).
//!
//! # Invariants (what [`Buddy::check`] verifies)
//!
//! 1. Every managed frame belongs to exactly one *block*. A block is a run of
//!    frames starting at its *head*; all other frames of the block are `Tail`.
//!    - `Free` head: order `o`, 2^o frames, naturally aligned (`pfn % 2^o == 0`),
//!      `count == 0`, linked into `free_list[zone][o]` through `next`/`prev` (PFNs,
//!      [`NIL`] = none). Every free list is doubly linked, `head.prev == NIL`,
//!      `tail.next == NIL`, and its length is `nr_free[zone][o]`.
//!    - `Cached` head: order `o <= PCP_MAX_ORDER`, 2^o frames, naturally aligned,
//!      `count == POOLED`, on its zone's order-`o` cache list (the per-CPU-pageset
//!      analogue: a LIFO list through `next`, `NIL`-terminated, as long as
//!      `pcp_len[zone][o]`; `prev` unused; see `buddy/pool.rs`). Free, but on no
//!      free list.
//!    - `Allocated` head: `order` is the order of the naturally aligned block it was
//!      cut from, `next` = pages handed out `n` with `2^(o-1) < n <= 2^o`, the block
//!      is the `n` frames from the head, `count >= 1` is the reference count, the
//!      public flags are stored on the head only.
//!    - `Slab` head: 2^order frames, naturally aligned, owned by the slab allocator.
//! 2. Tail frames carry no information for the buddy allocator: their `next`,
//!    `prev`, `count` are unspecified (the slab allocator stores the head's PFN in
//!    *its* tails' `next`, as the `page` module says; buddy blocks do not, so that
//!    splitting and merging touch only the O(1) heads involved). The head of any
//!    frame is found in O(MAX_ORDER) by looking at the aligned candidates
//!    `pfn & !(2^k - 1)`, k = 0, 1, ...: the first one that is not `Tail` is the
//!    head ([`Buddy::head_of`]).
//! 3. Buddies are always merged: no two `Free` heads of the same order and zone are
//!    buddies (`a ^ b == 2^o`) while `o < MAX_ORDER`. Hence the set of free-list
//!    blocks is a function of the set of free frames alone, and freeing everything
//!    (plus [`Buddy::drain`]) gives back exactly the boot-time free lists.
//! 4. Blocks never cross a zone boundary or a non-RAM frame.
//! 5. Counters: per zone, `free` = frames in free-list blocks, `managed` = RAM frames
//!    not reserved, `present` = RAM frames; the shared-page counter equals the number of
//!    allocated frames whose head has `count > 1` or `PageFlags::SHARED`.
//! 6. Watermarks: per zone, `min <= low <= high <= managed` (see [`Wmark`]).
//!    Only requests with `Gfp::MEMALLOC` take a zone's free-list frames below `min`.
//!
//! # Allocation and freeing
//!
//! - Allocation of order `o` takes the *head* of the smallest non-empty free list of
//!   order >= `o` (a per-zone bitmap of non-empty orders finds it in O(1)), then splits
//!   (Linux `expand`): each upper half becomes a `Free` head put at the head of its list.
//! - Freeing looks at the buddy `pfn ^ 2^o`: if it is a `Free` head of the same order
//!   and zone it is unlinked, the upper of the two heads becomes `Tail`, and the walk
//!   continues one order up. The final block goes to the *head* of its list, except when
//!   a merge is likely soon (Linux `buddy_merge_likely`): our buddy is busy but the
//!   buddy of our parent is a free block of order `o+1`; then it goes to the *tail* so
//!   that it is allocated last and gets a chance to merge into an order `o+2` block.
//! - Orders 0..=[`PCP_MAX_ORDER`] (3, Linux's `PAGE_ALLOC_COSTLY_ORDER`, as on Linux's
//!   per-cpu lists since 5.13) go through per-zone, per-order caches, the analogue of
//!   Linux's per-cpu pagesets: a LIFO list through the heads (state `Cached`, tails
//!   `Tail`), unmerged (lazy buddy), up to half the zone's managed frames
//!   (`buddy/pool.rs`). Allocation pops, refilling a batch ([`PCP_BATCH`] `>> order`
//!   blocks) from the free lists when empty; freeing pushes, first returning half
//!   the list to the free lists (where it merges) when full. A request the free
//!   lists cannot satisfy drains the zone's caches (so cached blocks merge) and
//!   retries once. Cached pages count as free in every statistic except the free-list block
//!   counts (`buddyinfo`, as in Linux where pcp pages are not in /proc/buddyinfo).
//!   Set `PCP_MAX_ORDER = 0` for an order-0 cache only.
//! - Slab blocks ([`PageProvider`], `buddy/provider.rs`) share the block caches:
//!   `alloc_slab_block` pops the first zone's list when its first block lies under
//!   the slab bitmap (the bound is computed once, in
//!   [`Buddy::attach_slab_bits`]) and writes the zone's `Slab` head template;
//!   `free_slab_block` checks the head (state `Slab`, the order), writes the zone's
//!   tail template over the tails and pushes the head. Anything else (a larger
//!   order, an empty or uncovered list, a full list, an armed `fail_page_alloc`,
//!   every misuse) takes the checked path, which walks the zonelist at the
//!   watermarks like any gfp request.
//! - Watermarks ([`Buddy::setup_watermarks`], Linux's formula) are checked where
//!   frames leave the free lists: the cache refill and the slow path. A refill stops
//!   at the watermark, so the frames in the block caches are always above it and the
//!   fast path (a cache pop) needs no check. A gfp request walks its zones at `low`,
//!   then at `min`; `Gfp::MEMALLOC` (the kernel's heap) then once more with none.
//!   A failure caused by a watermark is `MmError::BelowWatermark`.
//! - Zones: the DragonOS API names one zone. The gfp API walks [`Gfp::zonelist`]:
//!   NORMAL then DMA for plain requests, DMA only for `GFP_DMA`, UNMAPPED then NORMAL
//!   then DMA for `__GFP_HIGHMEM`.
//! - Every allocation is reference counted (count 1 when handed out). All freeing
//!   functions drop one reference and release the pages when it reaches 0 (as Linux
//!   `__free_pages`); they return an error, and change nothing, on any misuse (double
//!   free, reserved or non-RAM frame, non-head frame, slab frame, wrong size, bad
//!   order/count/flags). Failed allocations (`OutOfMemory`, `NoVirtualAddress`) may
//!   have drained the caches, which moves free blocks but never changes a count.
//! - Fault injection (`fail_page_alloc`, [`crate::fault`]): the DragonOS and gfp
//!   allocation APIs consult the injector on their slow paths (after checking their
//!   arguments; gfp requests with [`Gfp::MEMALLOC`] are never failed) and answer an
//!   injected failure with `OutOfMemory`. Slab blocks are not failed here: the slab
//!   allocator's own injector (`failslab`) decides for its allocations. While armed
//!   the block caches are drained and bypassed (no refill; released blocks go to the
//!   free lists), so every allocation reaches the check; the one exception is a block
//!   that the `put` fast path pushes onto a cache, which serves the next allocation
//!   of its order and zone unchecked. Disarming restores the caches.
//! - Shared pages (for `mm_stat`): frames of allocated blocks whose head has a
//!   reference count > 1 or `PageFlags::SHARED`, each frame counted once; kept as a
//!   counter, so `mm_stat` is O(1).
//!
//! # Boot cost
//!
//! [`Buddy::page_init`] writes each `Page` once with `slice::fill` (a hole template or
//! a free-tail template, per zone), then one head per naturally aligned max-order block.
//! Nothing reads the garbage the memory contained before (any bit pattern is a valid
//! `Page`, so the kernel may build the slice over uninitialised memory).

use core::fmt;

use crate::fault::{FaultAttr, FaultConfig};
use crate::{
    Gfp, MmError, MmStat, Page, PageFlags, PageProvider, PageState, Pfn, PhysMem, Zone, DMA_LIMIT,
    MAX_ORDER, NIL, PAGE_SHIFT, PAGE_SIZE,
};

mod api;
mod bulk;
#[cfg(test)]
mod burst_tests;
mod check;
mod freelists;
mod pool;
mod provider;
#[cfg(test)]
mod slab_block_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wmark_tests;

pub use bulk::BulkError;
pub use check::CheckError;

/// Number of orders (0..=MAX_ORDER).
pub const NR_ORDERS: usize = MAX_ORDER as usize + 1;
/// Largest page count of the DragonOS `alloc_pages(zone, num, flags)` (num < 64).
pub const MAX_PAGES_PER_ALLOC: u64 = 63;
/// Largest order kept in the per-zone block caches (Linux keeps orders up to
/// `PAGE_ALLOC_COSTLY_ORDER` = 3 on its per-cpu lists). 0 = an order-0 cache only.
pub const PCP_MAX_ORDER: u32 = 3;
/// Number of cached orders.
pub const PCP_ORDERS: usize = PCP_MAX_ORDER as usize + 1;
/// Pages of a zone's order-`o` cache list (`PCP_HIGH >> o` blocks) beyond which
/// [`Buddy::pooled_pages`] counts them, and the least a list may hold in a small
/// zone (the bound is otherwise half the zone's managed frames, `buddy/pool.rs`).
pub const PCP_HIGH: usize = 128;
/// Order-0 blocks moved between a cache and the free lists at a time; order `o`
/// moves `PCP_BATCH >> o` blocks.
pub const PCP_BATCH: usize = 32;

/// The `count` of every `Cached` head (a block on its zone's cache list); no
/// allocated head is handed out with it.
pub(crate) const POOLED: u32 = u32::MAX;

/// [`PCP_HIGH`] in order-`o` blocks.
#[inline(always)]
const fn pcp_high(order: u32) -> usize {
    PCP_HIGH >> order
}

/// Refill/drain batch of the order-`o` cache in blocks.
#[inline(always)]
const fn pcp_batch(order: u32) -> usize {
    let b = PCP_BATCH >> order;
    if b == 0 {
        1
    } else {
        b
    }
}
/// How many disjoint RAM ranges are remembered (adjacent ranges are merged).
pub const MAX_RAM_RANGES: usize = 64;
/// First PFN above ZONE_DMA.
pub const DMA_END_PFN: u32 = (DMA_LIMIT >> PAGE_SHIFT) as u32;

/// A page template: `Page::reserved(zone)` with another state.
#[inline(always)]
fn tmpl(zone: Zone, state: PageState) -> Page {
    let mut p = Page::reserved(zone);
    p.set_state(state);
    p
}

/// Smallest order whose block holds `num` pages (`num >= 1`).
#[inline]
fn order_for(num: u64) -> u32 {
    num.next_power_of_two().trailing_zeros()
}

/// Per-zone allocator state.
#[derive(Clone)]
struct ZoneData {
    /// Zone bounds `[lo, hi)`, clipped to the mem_map.
    lo: u32,
    hi: u32,
    /// RAM frames in the zone.
    present: u64,
    /// RAM frames not reserved (under the allocator).
    managed: u64,
    /// Frames in free-list blocks (not counting the block caches).
    free: u64,
    /// Watermarks in frames, indexed by [`Wmark`]: ordinary requests leave at
    /// least `min` frames on the free lists; only `Gfp::MEMALLOC` goes below.
    wmark: [u64; 3],
    /// Bit `o` set iff `free_list[o]` is not empty.
    avail: u32,
    head: [u32; NR_ORDERS],
    tail: [u32; NR_ORDERS],
    nr_free: [u32; NR_ORDERS],
    /// Block caches per order (see `buddy/pool.rs`): LIFO lists of `Cached` heads
    /// threaded through `Page::next` (`NIL` = empty), and their lengths.
    pcp: [u32; PCP_ORDERS],
    pcp_len: [u32; PCP_ORDERS],
    /// Largest `pcp_len` per order (`pool::pcp_limit`, kept up to date with
    /// `managed` by [`ZoneData::update_pcp_max`]).
    pcp_max: [u32; PCP_ORDERS],
    /// Page templates of this zone: a free head per order, a tail.
    free_tmpl: [Page; NR_ORDERS],
    tail_tmpl: Page,
    /// Per cached order: a fresh allocated head (count 1, size 2^o) and a cached
    /// head (`count == POOLED`, `next == NIL`). The fast paths write them whole
    /// (with `next` set): no wait for the old contents.
    alloc_tmpl: [Page; PCP_ORDERS],
    cached_tmpl: [Page; PCP_ORDERS],
    /// Per cached order: a fresh slab block head (state `Slab`, `slab_cache` 0,
    /// `next`/`prev` NIL), written whole by the slab block fast path.
    slab_tmpl: [Page; PCP_ORDERS],
}

impl ZoneData {
    /// Free frames held in the block caches.
    fn cached_pages(&self) -> u64 {
        (0..PCP_ORDERS).map(|o| (self.pcp_len[o] as u64) << o).sum()
    }

    /// Recomputes the cache list bounds after `managed` changed.
    fn update_pcp_max(&mut self) {
        for o in 0..PCP_ORDERS {
            self.pcp_max[o] = pool::pcp_limit(self, o as u32).min(u32::MAX as u64) as u32;
        }
    }

    fn new(zone: Zone, lo: u32, hi: u32) -> ZoneData {
        let mut zd = ZoneData {
            free_tmpl: core::array::from_fn(|o| {
                let mut p = tmpl(zone, PageState::Free);
                p.set_order(o as u32);
                p
            }),
            tail_tmpl: tmpl(zone, PageState::Tail),
            alloc_tmpl: core::array::from_fn(|o| {
                let mut p = tmpl(zone, PageState::Allocated);
                p.set_order(o as u32);
                p.count = 1;
                p.next = 1 << o;
                p
            }),
            cached_tmpl: core::array::from_fn(|o| {
                let mut p = tmpl(zone, PageState::Cached);
                p.set_order(o as u32);
                p.count = POOLED;
                p
            }),
            slab_tmpl: core::array::from_fn(|o| {
                let mut p = tmpl(zone, PageState::Slab);
                p.set_order(o as u32);
                p
            }),
            lo,
            hi,
            present: 0,
            managed: 0,
            free: 0,
            wmark: [0; 3],
            avail: 0,
            head: [NIL; NR_ORDERS],
            tail: [NIL; NR_ORDERS],
            nr_free: [0; NR_ORDERS],
            pcp: [NIL; PCP_ORDERS],
            pcp_len: [0; PCP_ORDERS],
            pcp_max: [0; PCP_ORDERS],
        };
        zd.update_pcp_max();
        zd
    }
}

/// Writes a `Free` head of `order` at `pfn` (one 16-byte store) and links it into its
/// free list, at the head or at the tail.
#[inline(always)]
fn link_free_head(map: &mut [Page], zd: &mut ZoneData, pfn: u32, order: u32, at_tail: bool) {
    let o = order as usize;
    let mut h = zd.free_tmpl[o];
    if at_tail {
        let t = zd.tail[o];
        h.prev = t;
        map[pfn as usize] = h;
        if t == NIL {
            zd.head[o] = pfn;
        } else {
            map[t as usize].next = pfn;
        }
        zd.tail[o] = pfn;
    } else {
        let n = zd.head[o];
        h.next = n;
        map[pfn as usize] = h;
        if n == NIL {
            zd.tail[o] = pfn;
        } else {
            map[n as usize].prev = pfn;
        }
        zd.head[o] = pfn;
    }
    zd.nr_free[o] += 1;
    zd.avail |= 1 << order;
}

/// Unlinks the free block `pfn` of `order` from its free list.
#[inline(always)]
fn list_del(map: &mut [Page], zd: &mut ZoneData, pfn: u32, order: u32) {
    let o = order as usize;
    let (n, p) = {
        let pg = &map[pfn as usize];
        (pg.next, pg.prev)
    };
    if p == NIL {
        zd.head[o] = n;
    } else {
        map[p as usize].next = n;
    }
    if n == NIL {
        zd.tail[o] = p;
    } else {
        map[n as usize].prev = p;
    }
    zd.nr_free[o] -= 1;
    if zd.nr_free[o] == 0 {
        zd.avail &= !(1 << order);
    }
}

/// How a free call names the size of the block, for the size check.
#[derive(Clone, Copy)]
enum Want {
    /// Any size (`put_page`, `page_decref`).
    Any,
    /// Linux order.
    Order(u32),
    /// DragonOS page count (1..=63, checked before).
    Count(u32),
}

/// Statistics of one zone (for `/proc/zoneinfo` and `/proc/buddyinfo`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ZoneStat {
    pub zone: Zone,
    /// First RAM PFN in the zone (the zone's lower bound if it has no RAM).
    pub start_pfn: Pfn,
    /// One past the last RAM PFN in the zone (`== start_pfn` if it has no RAM).
    pub end_pfn: Pfn,
    /// RAM frames in the zone (from the memory map), reserved ones included.
    pub present: u64,
    /// RAM frames under the allocator (present minus reserved).
    pub managed: u64,
    /// Free frames: free-list blocks plus the block caches.
    pub free: u64,
    /// Free frames held in the block caches (included in `free`).
    pub cached: u64,
    /// Free-list blocks per order (`/proc/buddyinfo`; cached pages are not included).
    pub nr_free: [u64; NR_ORDERS],
    /// Watermarks in frames: `min`, `low`, `high` (see [`Wmark`]).
    pub wmark: [u64; 3],
}

/// The three per-zone watermarks (Linux `enum zone_watermarks`), in frames of the
/// zone's free lists (block-cache frames are above them: they left the free lists
/// through a checked refill).
///
/// - `Min`: the kernel's reserve. No request without `Gfp::MEMALLOC` takes the
///   zone's free lists below it; the kernel heap may use it all.
/// - `Low`: a gfp request walks its zone list once at `Low` first, so it falls back
///   to the next zone before it eats into a zone's last `Low - Min` frames; only
///   when every zone is below `Low` does it take them, down to `Min`.
/// - `High`: shown only. Linux's kswapd reclaims until a zone is back above it;
///   memkern reclaims nothing in the background (the shell's `free all` returns the
///   slab's free slabs and the block caches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wmark {
    Min = 0,
    Low = 1,
    High = 2,
}

/// The zoned buddy allocator over a `mem_map` of `Page`s indexed by PFN.
pub struct Buddy<'a> {
    map: &'a mut [Page],
    zones: [ZoneData; 3],
    lowmem: u32,
    /// Sorted, disjoint, non-adjacent RAM ranges `[start, end)`.
    ram: [(u32, u32); MAX_RAM_RANGES],
    nr_ram: usize,
    /// Allocated frames that are shared (head count > 1 or `PageFlags::SHARED`).
    shared: u64,
    /// The slab liveness bitmap (see [`PageProvider::slab_bits`]); slab blocks are
    /// only handed out where it covers them.
    slab_bits: &'a mut [u64],
    /// Frames `[0, slab_covered)` the slab bitmap covers (at most the mem_map),
    /// computed when it is attached: a slab block lies below it.
    slab_covered: u32,
    /// `fail_page_alloc` (see [`set_fail_page_alloc`](Self::set_fail_page_alloc)).
    fail: FaultAttr,
}

impl fmt::Debug for Buddy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buddy")
            .field("max_pfn", &self.map.len())
            .field("lowmem", &Pfn(self.lowmem))
            .field("ram", &&self.ram[..self.nr_ram])
            .field("free_pages", &self.nr_free_pages())
            .finish()
    }
}

impl<'a> Buddy<'a> {
    // ------------------------------------------------------------------
    // Construction
    // ------------------------------------------------------------------

    /// Takes over `mem_map` (one `Page` per PFN from 0; its contents may be garbage)
    /// and marks every frame `Reserved` (a bulk fill per zone). ZONE_NORMAL ends and
    /// ZONE_UNMAPPED begins at `lowmem` (clamped to at least 16 MiB). Add RAM with
    /// [`add_free_range`](Self::add_free_range) afterwards.
    pub fn new(mem_map: &'a mut [Page], lowmem: Pfn) -> Result<Buddy<'a>, MmError> {
        let mut b = Buddy::new_unfilled(mem_map, lowmem)?;
        let len = b.map.len() as u32;
        b.fill_zoned(0, len, PageState::Reserved);
        Ok(b)
    }

    /// MOS `page_init`: builds the allocator in one pass from the boot memory map.
    /// `ram` lists usable RAM ranges `[start, end)` (any order, disjoint);
    /// `reserved` lists ranges used by the kernel (image, mem_map, page tables...)
    /// with the flags to give them (normally `PageFlags::KERNEL_INIT`). Every `Page`
    /// is written once by a bulk fill, then one head per max-order block.
    pub fn page_init(
        mem_map: &'a mut [Page],
        lowmem: Pfn,
        ram: &[(Pfn, Pfn)],
        reserved: &[(Pfn, Pfn, PageFlags)],
    ) -> Result<Buddy<'a>, MmError> {
        let mut b = Buddy::new_unfilled(mem_map, lowmem)?;
        for &(s, e) in ram {
            b.record_ram(s.0, e.0)?;
        }
        // One fill per hole and per RAM range (split at zone boundaries).
        let mut cursor = 0;
        for i in 0..b.nr_ram {
            let (s, e) = b.ram[i];
            b.fill_zoned(cursor, s, PageState::Reserved);
            b.fill_zoned(s, e, PageState::Tail);
            cursor = e;
        }
        let len = b.map.len() as u32;
        b.fill_zoned(cursor, len, PageState::Reserved);
        for i in 0..b.nr_ram {
            let (s, e) = b.ram[i];
            b.insert_ram(s, e);
        }
        for &(s, e, f) in reserved {
            b.reserve_range(s, e, f)?;
        }
        Ok(b)
    }

    fn new_unfilled(mem_map: &'a mut [Page], lowmem: Pfn) -> Result<Buddy<'a>, MmError> {
        if mem_map.len() >= NIL as usize {
            return Err(MmError::Invalid("mem_map larger than 2^32-1 frames"));
        }
        let len = mem_map.len() as u32;
        let low = lowmem.0.max(DMA_END_PFN);
        let dma_hi = DMA_END_PFN.min(len);
        let norm_hi = low.min(len);
        Ok(Buddy {
            map: mem_map,
            zones: [
                ZoneData::new(Zone::Dma, 0, dma_hi),
                ZoneData::new(Zone::Normal, dma_hi, norm_hi),
                ZoneData::new(Zone::Unmapped, norm_hi, len),
            ],
            lowmem: low,
            ram: [(0, 0); MAX_RAM_RANGES],
            nr_ram: 0,
            shared: 0,
            slab_bits: &mut [],
            slab_covered: 0,
            fail: FaultAttr::OFF,
        })
    }

    /// Gives the allocator the slab liveness bitmap, Linux's `page_ext` for the slab
    /// (two words, 16 bytes, per frame from PFN 0; see [`PageProvider::slab_bits`]).
    /// Its contents may be garbage: it is cleared here. Slab blocks are only taken
    /// from the frames it covers, so a buddy allocator without one has no slabs.
    pub fn attach_slab_bits(&mut self, bits: &'a mut [u64]) {
        bits.fill(0);
        let words = Buddy::slab_bits_words(1);
        self.slab_covered = (bits.len() / words).min(self.map.len()) as u32;
        self.slab_bits = bits;
    }

    /// Linux `calculate_min_free_kbytes`: `sqrt(16 * lowmem KiB)`, clamped to
    /// 128 KiB..=256 MiB, where lowmem is the managed memory of the mapped zones.
    pub fn default_min_free_kbytes(&self) -> u64 {
        let lowmem_kb = (self.zones[Zone::Dma as usize].managed
            + self.zones[Zone::Normal as usize].managed)
            * (PAGE_SIZE as u64 / 1024);
        (lowmem_kb * 16).isqrt().clamp(128, 256 << 10)
    }

    /// Linux `__setup_per_zone_wmarks`: sets every zone's watermarks from
    /// `min_free_kbytes` (the whole reserve of the mapped zones), shared among the
    /// mapped zones by their managed frames. ZONE_UNMAPPED (Linux's highmem, which the
    /// kernel heap cannot use) gets a small `min` of managed/1024 clamped to 32..=128.
    /// Then `low = min + gap` and `high = min + 2 * gap`, with `gap` the larger of a
    /// quarter of the zone's share and 0.1% of its managed frames
    /// (`watermark_scale_factor` 10). Call it after the memory map is in place and
    /// whenever the managed memory changes much; `min_free_kbytes` 0 clears every
    /// watermark.
    pub fn setup_watermarks(&mut self, min_free_kbytes: u64) {
        let pages_min = min_free_kbytes / (PAGE_SIZE as u64 / 1024);
        let lowmem =
            self.zones[Zone::Dma as usize].managed + self.zones[Zone::Normal as usize].managed;
        for zone in Zone::ALL {
            let zd = &mut self.zones[zone as usize];
            if pages_min == 0 || zd.managed == 0 {
                zd.wmark = [0; 3];
                continue;
            }
            let share = (pages_min as u128 * zd.managed as u128 / lowmem.max(1) as u128) as u64;
            let min = if zone == Zone::Unmapped {
                (zd.managed / 1024).clamp(32, 128)
            } else {
                share
            };
            let gap = (share / 4).max(zd.managed * 10 / 10_000);
            // Never more than the zone has: a tiny zone keeps a usable part.
            let cap = |w: u64| w.min(zd.managed / 2);
            zd.wmark = [cap(min), cap(min + gap), cap(min + 2 * gap)];
        }
    }

    /// The watermarks of `zone` in frames (`[min, low, high]`).
    pub fn watermarks(&self, zone: Zone) -> [u64; 3] {
        self.zones[zone as usize].wmark
    }

    /// Words of slab liveness bitmap needed to cover frames `[0, pfns)`.
    pub const fn slab_bits_words(pfns: u32) -> usize {
        pfns as usize * (PAGE_SIZE / 32 / 64)
    }

    /// Fills `[a, b)` with the `state` template of each zone it crosses.
    fn fill_zoned(&mut self, a: u32, b: u32, state: PageState) {
        for (zone, x, y) in self.zone_pieces(a, b) {
            self.map[x as usize..y as usize].fill(tmpl(zone, state));
        }
    }

    /// The parts of `[a, b)` in each zone (empty parts have `x == y`).
    fn zone_pieces(&self, a: u32, b: u32) -> [(Zone, u32, u32); 3] {
        let mut out = [(Zone::Dma, 0, 0); 3];
        for (i, z) in Zone::ALL.into_iter().enumerate() {
            let zd = &self.zones[i];
            let x = a.max(zd.lo);
            let y = b.min(zd.hi);
            out[i] = (z, x, y.max(x));
        }
        out
    }

    /// Remembers `[s, e)` as RAM (no page writes). Errors: beyond mem_map, overlap,
    /// too many ranges.
    fn record_ram(&mut self, s: u32, e: u32) -> Result<(), MmError> {
        if s > e {
            return Err(MmError::Invalid("RAM range with start > end"));
        }
        if e as usize > self.map.len() {
            return Err(MmError::NotRam(Pfn(s.max(self.map.len() as u32)).phys()));
        }
        if s == e {
            return Ok(());
        }
        let n = self.nr_ram;
        for &(rs, re) in &self.ram[..n] {
            if s < re && rs < e {
                return Err(MmError::Busy(Pfn(s.max(rs)).phys()));
            }
        }
        // Insertion point, then merge with adjacent neighbours.
        let i = self.ram[..n].iter().position(|r| r.0 > s).unwrap_or(n);
        let join_prev = i > 0 && self.ram[i - 1].1 == s;
        let join_next = i < n && self.ram[i].0 == e;
        match (join_prev, join_next) {
            (true, true) => {
                self.ram[i - 1].1 = self.ram[i].1;
                self.ram.copy_within(i + 1..n, i);
                self.nr_ram -= 1;
            }
            (true, false) => self.ram[i - 1].1 = e,
            (false, true) => self.ram[i].0 = s,
            (false, false) => {
                if n == MAX_RAM_RANGES {
                    return Err(MmError::TooMany);
                }
                self.ram.copy_within(i..n, i + 1);
                self.ram[i] = (s, e);
                self.nr_ram += 1;
            }
        }
        Ok(())
    }

    /// Accounts `[s, e)` (already filled with free tails) and frees it in blocks.
    fn insert_ram(&mut self, s: u32, e: u32) {
        for (zone, x, y) in self.zone_pieces(s, e) {
            if x < y {
                let zd = &mut self.zones[zone as usize];
                zd.present += (y - x) as u64;
                zd.managed += (y - x) as u64;
                zd.update_pcp_max();
                self.free_range(zone, x, y);
            }
        }
    }

    /// Adds usable RAM `[start, end)` from the boot memory map: the frames become free.
    /// Errors (nothing changed): `NotRam` beyond the mem_map, `Busy` if it overlaps RAM
    /// added before, `TooMany` if more than [`MAX_RAM_RANGES`] disjoint ranges.
    pub fn add_free_range(&mut self, start: Pfn, end: Pfn) -> Result<(), MmError> {
        self.record_ram(start.0, end.0)?;
        if start < end {
            self.fill_zoned(start.0, end.0, PageState::Tail);
            self.insert_ram(start.0, end.0);
        }
        Ok(())
    }

    /// Reserves `[start, end)`: free RAM frames in it leave the allocator (they become
    /// `Reserved` with `flags`, e.g. `KERNEL_INIT` for the kernel image, the mem_map
    /// itself, boot page tables); frames that are reserved already (holes, MMIO) get
    /// `flags` added. Errors (nothing changed): `NotRam` beyond the mem_map, `Busy` if a
    /// frame in the range is allocated or owned by the slab allocator.
    pub fn reserve_range(&mut self, start: Pfn, end: Pfn, flags: PageFlags) -> Result<(), MmError> {
        let (s, e) = (start.0, end.0);
        if s > e {
            return Err(MmError::Invalid("range with start > end"));
        }
        if e as usize > self.map.len() {
            return Err(MmError::NotRam(Pfn(s.max(self.map.len() as u32)).phys()));
        }
        check_flags(flags)?;
        // Pass 1: validate, and see whether the block caches hold pages of the range.
        let mut cached = false;
        let mut pfn = s;
        while pfn < e {
            let p = self.map[pfn as usize];
            match p.state() {
                PageState::Reserved => pfn += 1,
                PageState::Cached => {
                    cached = true;
                    pfn += 1 << p.order();
                }
                PageState::Free => pfn += 1 << p.order(),
                PageState::Allocated | PageState::Slab => {
                    return Err(MmError::Busy(Pfn(pfn).phys()))
                }
                PageState::Tail => {
                    let h = self.head_pfn(pfn);
                    let hp = self.map[h as usize];
                    match hp.state() {
                        PageState::Free => {}
                        PageState::Cached => cached = true,
                        _ => return Err(MmError::Busy(Pfn(pfn).phys())),
                    }
                    pfn = h + (1 << hp.order());
                }
            }
        }
        if cached {
            self.drain();
        }
        // Pass 2: carve.
        let mut pfn = s;
        while pfn < e {
            let p = self.map[pfn as usize];
            match p.state() {
                PageState::Reserved => {
                    self.map[pfn as usize].set_flags(p.flags() | flags);
                    pfn += 1;
                }
                PageState::Free | PageState::Tail => {
                    let h = if p.state() == PageState::Free {
                        pfn
                    } else {
                        self.head_pfn(pfn)
                    };
                    let hp = self.map[h as usize];
                    debug_assert_eq!(hp.state(), PageState::Free);
                    let zone = hp.zone();
                    let order = hp.order();
                    let end_blk = h + (1 << order);
                    let zd = &mut self.zones[zone as usize];
                    list_del(self.map, zd, h, order);
                    zd.free -= 1 << order;
                    let a = h.max(s);
                    let b = end_blk.min(e);
                    zd.managed -= (b - a) as u64;
                    zd.update_pcp_max();
                    let mut r = tmpl(zone, PageState::Reserved);
                    r.set_flags(flags);
                    self.map[a as usize..b as usize].fill(r);
                    self.free_range(zone, h, a);
                    self.free_range(zone, b, end_blk);
                    pfn = b;
                }
                // Pass 1 rejected these and drained the caches.
                PageState::Allocated | PageState::Slab | PageState::Cached => {
                    unreachable!("reserve_range: validated state changed")
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Queries and statistics
    // ------------------------------------------------------------------

    /// The metadata of a frame, `None` beyond the mem_map.
    #[inline]
    pub fn page(&self, pfn: Pfn) -> Option<&Page> {
        self.map.get(pfn.index())
    }

    /// The whole mem_map, read-only (index = PFN).
    pub fn mem_map(&self) -> &[Page] {
        self.map
    }

    /// One past the highest PFN described by the mem_map.
    pub fn max_pfn(&self) -> Pfn {
        Pfn(self.map.len() as u32)
    }

    /// First PFN of ZONE_UNMAPPED (the direct-map limit, clamped to >= 16 MiB).
    pub fn lowmem(&self) -> Pfn {
        Pfn(self.lowmem)
    }

    /// The zone a PFN belongs to by address.
    pub fn zone_of(&self, pfn: Pfn) -> Zone {
        if pfn.0 < DMA_END_PFN {
            Zone::Dma
        } else if pfn.0 < self.lowmem {
            Zone::Normal
        } else {
            Zone::Unmapped
        }
    }

    /// True if `pfn` is RAM from the memory map (reserved RAM included).
    pub fn is_ram(&self, pfn: Pfn) -> bool {
        self.ram[..self.nr_ram]
            .iter()
            .any(|&(s, e)| s <= pfn.0 && pfn.0 < e)
    }

    /// The RAM ranges `[start, end)` added so far, sorted, adjacent ones merged.
    pub fn ram_ranges(&self) -> impl Iterator<Item = (Pfn, Pfn)> + '_ {
        self.ram[..self.nr_ram]
            .iter()
            .map(|&(s, e)| (Pfn(s), Pfn(e)))
    }

    /// The head of the block containing `pfn` (itself if it is not a `Tail`), `None`
    /// beyond the mem_map.
    pub fn head_of(&self, pfn: Pfn) -> Option<Pfn> {
        let p = self.map.get(pfn.index())?;
        Some(if p.state() == PageState::Tail {
            Pfn(self.head_pfn(pfn.0))
        } else {
            pfn
        })
    }

    /// Head of the block containing the `Tail` frame `pfn`: the first aligned candidate
    /// that is not a tail.
    fn head_pfn(&self, pfn: u32) -> u32 {
        let mut o = 0;
        loop {
            let h = pfn & !((1u32 << o) - 1);
            if self.map[h as usize].state() != PageState::Tail || o >= 31 {
                return h;
            }
            o += 1;
        }
    }

    /// A free block of at least `order` in `zone` (free lists, or the block caches).
    fn find_free(&self, zone: Zone, order: u32) -> Option<Pfn> {
        let zd = &self.zones[zone as usize];
        for o in order as usize..PCP_ORDERS {
            if zd.pcp[o] != NIL {
                return Some(Pfn(zd.pcp[o]));
            }
        }
        let avail = zd.avail >> order;
        if avail == 0 {
            return None;
        }
        Some(Pfn(zd.head[(order + avail.trailing_zeros()) as usize]))
    }

    /// Statistics of one zone.
    pub fn zone_stat(&self, zone: Zone) -> ZoneStat {
        let zd = &self.zones[zone as usize];
        let mut start = NIL;
        let mut end = 0;
        for &(s, e) in &self.ram[..self.nr_ram] {
            let (x, y) = (s.max(zd.lo), e.min(zd.hi));
            if x < y {
                start = start.min(x);
                end = end.max(y);
            }
        }
        if start == NIL {
            start = zd.lo;
            end = zd.lo;
        }
        ZoneStat {
            zone,
            start_pfn: Pfn(start),
            end_pfn: Pfn(end),
            present: zd.present,
            managed: zd.managed,
            free: zd.free + zd.cached_pages(),
            cached: zd.cached_pages(),
            nr_free: zd.nr_free.map(|n| n as u64),
            wmark: zd.wmark,
        }
    }

    /// `/proc/buddyinfo` line of a zone: free-list blocks per order (blocks in the
    /// caches are not included; call [`drain`](Self::drain) first to see them merged).
    pub fn buddyinfo(&self, zone: Zone) -> [u64; NR_ORDERS] {
        self.zones[zone as usize].nr_free.map(|n| n as u64)
    }

    /// Free frames in all zones (free lists plus block caches).
    pub fn nr_free_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.free + z.cached_pages()).sum()
    }

    /// RAM frames from the memory map (reserved included).
    pub fn present_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.present).sum()
    }

    /// Frames under the allocator (RAM minus reserved).
    pub fn managed_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.managed).sum()
    }

    /// Allocated frames that are shared: head reference count > 1 or
    /// `PageFlags::SHARED` (each frame counted once).
    pub fn shared_pages(&self) -> u64 {
        self.shared
    }

    /// The page-level part of DragonOS `mm_stat()` in bytes: `total` = all RAM from the
    /// memory map (reserved kernel memory included, counted as used), `free` = free
    /// frames (cached included), `used = total - free`, `shared` = shared frames (see
    /// [`shared_pages`](Self::shared_pages)), `available = free`. The slab allocator
    /// adds `cache_used`/`cache_free` (its pages are in `used`) and `available`.
    pub fn mm_stat(&self) -> MmStat {
        let page = PAGE_SIZE as u64;
        let total = self.present_pages() * page;
        let free = self.nr_free_pages() * page;
        MmStat {
            total,
            used: total - free,
            free,
            shared: self.shared * page,
            cache_used: 0,
            cache_free: 0,
            available: free,
        }
    }
}

/// Rejects flag bits outside the five DragonOS page flags.
fn check_flags(flags: PageFlags) -> Result<(), MmError> {
    if flags.0 & !PageFlags::ALL_BITS != 0 {
        return Err(MmError::Invalid("unknown page flag bits"));
    }
    Ok(())
}
