//! The per-zone, per-order block caches (Linux's per-cpu page lists) as intrusive
//! LIFO lists through `struct Page`, with deferred merging (the lazy buddy system
//! of Barkley and Lee, and what Linux's large per-cpu lists do in effect).
//!
//! - A cache list holds `Cached` heads of one order and zone, `count == POOLED`,
//!   linked through `next` (the last one has `next == NIL`; `prev` is unused).
//!   Freeing pushes (one 16-byte store of the cached template with `next` set, and
//!   the list head), allocating pops (read `next` while the allocated template is
//!   written over the head). No block is ever copied between an array and a list,
//!   whatever the length of a burst, and no buddy is looked at.
//! - A list holds at most half of the zone's managed frames, or [`PCP_HIGH`] pages
//!   in a small zone ([`pcp_limit`]). A push
//!   that finds it full first returns half of it to the free lists; an allocation
//!   that finds it empty refills a batch ([`PCP_BATCH`] `>> order` blocks) from
//!   the free lists; an allocation the free lists cannot meet (and `drain`) returns
//!   all of them. Returning pops the list in chunks, sorts each chunk and frees its
//!   runs of contiguous blocks as ranges (`free_blocks_sorted`); buddies of
//!   different chunks still merge, since every freed block merges with its free
//!   buddies.
//! - The bound only limits what a merge costs and how much free memory `buddyinfo`
//!   does not show; correctness never depends on it.
//!
//! Cached frames are free: they count in `free` and `cached`, and every misuse
//! check sees them as free (`Cached`). [`Buddy::pooled_pages`] reports the part of
//! the lists beyond [`PCP_HIGH`] pages per order (what a Linux per-cpu list of that
//! size would have handed back already).

use super::*;

/// Largest length of a zone's order-`order` cache list in blocks: half the zone's
/// managed frames, and at least [`PCP_HIGH`] pages.
#[inline(always)]
pub(super) fn pcp_limit(zd: &ZoneData, order: u32) -> u64 {
    (zd.managed >> 1).max(PCP_HIGH as u64) >> order
}

/// Blocks popped and freed at a time when a list is returned to the free lists.
const CHUNK: usize = 256;

/// Pushes the block `pfn` (a free head of `order` whose other frames are `Tail`,
/// on no list) onto the zone's cache list: one store of the cached template.
#[inline(always)]
pub(super) fn pcp_push(map: &mut [Page], zd: &mut ZoneData, order: u32, pfn: u32) {
    let o = order as usize % PCP_ORDERS;
    let mut c = zd.cached_tmpl[o];
    c.next = zd.pcp[o];
    map[pfn as usize] = c;
    zd.pcp[o] = pfn;
    zd.pcp_len[o] += 1;
}

/// Pops up to `out.len()` blocks off the zone's order-`order` cache list, writes
/// `t` over each head and stores `f(pfn)` in its slot. Returns how many.
#[inline]
pub(super) fn pcp_pop_into<T>(
    map: &mut [Page],
    zd: &mut ZoneData,
    order: u32,
    out: &mut [T],
    t: Page,
    f: impl Fn(u32) -> T,
) -> usize {
    let o = order as usize % PCP_ORDERS;
    let n = out.len().min(zd.pcp_len[o] as usize);
    let mut x = zd.pcp[o];
    for slot in &mut out[..n] {
        let p = &mut map[x as usize];
        let next = p.next;
        *p = t;
        *slot = f(x);
        x = next;
    }
    zd.pcp[o] = x;
    zd.pcp_len[o] -= n as u32;
    n
}

impl Buddy<'_> {
    /// Free frames of `zone` on its cache lists beyond [`PCP_HIGH`] frames per
    /// order (included in `ZoneStat::cached`; 0 after [`drain`](Self::drain)).
    pub fn pooled_pages(&self, zone: Zone) -> u64 {
        let zd = &self.zones[zone as usize];
        (0..PCP_ORDERS)
            .map(|o| (zd.pcp_len[o] as u64).saturating_sub(pcp_high(o as u32) as u64) << o)
            .sum()
    }

    /// Returns `n` blocks of the order-`order` cache list of `zone` (the most
    /// recently pushed first) to the free lists, where they merge.
    #[cold]
    #[inline(never)]
    pub(super) fn pcp_return(&mut self, zone: Zone, order: u32, mut n: usize) {
        let z = zone as usize;
        let tail = self.zones[z].tail_tmpl;
        let mut buf = [0u32; CHUNK];
        while n > 0 {
            let k = pcp_pop_into(
                self.map,
                &mut self.zones[z],
                order,
                &mut buf[..n.min(CHUNK)],
                tail,
                |pfn| pfn,
            );
            if k == 0 {
                break;
            }
            n -= k;
            self.free_blocks_sorted(zone, order, &mut buf[..k]);
        }
    }
}
