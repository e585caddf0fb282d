//! Deferred merging: each zone's block caches overflow into a *pool* per cached
//! order instead of the free lists (the lazy buddy system of Barkley and Lee, and
//! what Linux's large per-cpu lists do in effect). A pool is a doubly linked list of
//! `Cached` heads marked `count == POOLED`, threaded through `next`/`prev`, so
//! moving a block in or out is one 16-byte store and no buddy is looked at.
//!
//! - A full cache stack moves its oldest half into the pool; an empty one refills
//!   from the pool before it splits anything on the free lists.
//! - The pool holds at most half of the zone's managed frames ([`pool_high`]).
//!   When it would overflow, and when an allocation finds the free lists short (the
//!   caches are drained then, as before), the pool is merged at once: for each
//!   pooled block the map is scanned left and right for the run of pooled blocks
//!   around it, and the run goes back as the few aligned blocks that cover it. No
//!   sort: the mem_map itself orders the blocks, so a burst freed in any order
//!   merges in O(log n) per run.
//!
//! Pooled frames are free: they count in `free` and `cached` like the cache stacks,
//! and every misuse check sees them as free (`Cached`).

use super::*;

/// Blocks moved between a cache stack and its pool at a time: half the stack.
#[inline(always)]
pub(super) const fn pool_batch(order: u32) -> usize {
    let b = pcp_high(order) / 2;
    if b == 0 {
        1
    } else {
        b
    }
}

/// Capacity of a zone's order-`order` pool in blocks: half the zone's managed
/// frames. The bound only limits what one merge of the pool costs and how much
/// free memory `buddyinfo` does not show; correctness never depends on it (a
/// request the free lists cannot meet merges the pools first).
#[inline(always)]
pub(super) fn pool_high(zd: &ZoneData, order: u32) -> usize {
    ((zd.managed >> 1) >> order) as usize
}

/// Pushes `blocks` (heads of free blocks of `order` whose other frames are `Tail`,
/// on no list) onto the pool: one store per block.
#[inline]
pub(super) fn pool_push(map: &mut [Page], zd: &mut ZoneData, order: u32, blocks: &[u32]) {
    let o = order as usize;
    let (Some(&first), Some(&last)) = (blocks.first(), blocks.last()) else {
        return;
    };
    let old = zd.pool[o];
    let mut h = zd.pooled_tmpl[o];
    h.prev = NIL;
    for w in blocks.windows(2) {
        h.next = w[1];
        map[w[0] as usize] = h;
        h.prev = w[0];
    }
    h.next = old;
    map[last as usize] = h;
    if old != NIL {
        map[old as usize].prev = last;
    }
    zd.pool[o] = first;
    zd.pool_len[o] += blocks.len() as u32;
}

/// Pops blocks off a pool (`head`, `len`: the pool's fields) into `out` (as many
/// as both have), writes `t` over each head and stores `f(pfn)` in its slot.
/// Returns how many.
#[inline]
pub(super) fn pool_pop<T>(
    map: &mut [Page],
    head: &mut u32,
    len: &mut u32,
    out: &mut [T],
    t: Page,
    f: impl Fn(u32) -> T,
) -> usize {
    let n = out.len().min(*len as usize);
    let mut x = *head;
    for slot in &mut out[..n] {
        let p = &mut map[x as usize];
        let next = p.next;
        *p = t;
        *slot = f(x);
        x = next;
    }
    *head = x;
    if x != NIL {
        map[x as usize].prev = NIL;
    }
    *len -= n as u32;
    n
}

impl Buddy<'_> {
    /// Free frames of `zone` held in its pools (included in `ZoneStat::cached`).
    pub fn pooled_pages(&self, zone: Zone) -> u64 {
        let zd = &self.zones[zone as usize];
        (0..PCP_ORDERS).map(|o| (zd.pool_len[o] as u64) << o).sum()
    }

    /// Moves `blocks` (free heads of `order` in `zone`, on no list) into the zone's
    /// pool; merges the pool first if they would not fit, and frees them to the free
    /// lists directly if the pool cannot hold even them.
    pub(super) fn pool_spill(&mut self, zone: Zone, order: u32, blocks: &mut [u32]) {
        let z = zone as usize;
        let high = pool_high(&self.zones[z], order);
        if blocks.len() > high {
            self.free_blocks_sorted(zone, order, blocks);
            return;
        }
        if self.zones[z].pool_len[order as usize] as usize + blocks.len() > high {
            self.pool_drain(zone, order);
        }
        pool_push(self.map, &mut self.zones[z], order, blocks);
    }

    /// Merges the whole order-`order` pool of `zone` into the free lists, run by run.
    #[cold]
    #[inline(never)]
    pub(super) fn pool_drain(&mut self, zone: Zone, order: u32) {
        let (z, o) = (zone as usize, order as usize);
        let step = 1u32 << order;
        let (lo, hi) = (self.zones[z].lo, self.zones[z].hi);
        let pooled = |map: &[Page], b: u32| {
            let p = &map[b as usize];
            p.count == POOLED && p.state() == PageState::Cached && p.order() == order
        };
        loop {
            let x = self.zones[z].pool[o];
            if x == NIL {
                break;
            }
            let mut s = x;
            while s >= lo + step && pooled(self.map, s - step) {
                s -= step;
            }
            let mut e = x + step;
            while e < hi && pooled(self.map, e) {
                e += step;
            }
            let zd = &mut self.zones[z];
            let tail = zd.tail_tmpl;
            let mut b = s;
            while b < e {
                let (n, p) = (self.map[b as usize].next, self.map[b as usize].prev);
                if p == NIL {
                    zd.pool[o] = n;
                } else {
                    self.map[p as usize].next = n;
                }
                if n != NIL {
                    self.map[n as usize].prev = p;
                }
                self.map[b as usize] = tail;
                b += step;
            }
            zd.pool_len[o] -= (e - s) >> order;
            self.free_range(zone, s, e);
        }
    }
}
