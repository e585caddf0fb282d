//! `Buddy::check`: walks the mem_map, the free lists and the block caches and
//! verifies every invariant listed at the top of `buddy.rs`.

use core::fmt;

use super::{Buddy, NR_ORDERS, PCP_MAX_ORDER, PCP_ORDERS, POOLED};
use crate::{PageFlags, PageState, Pfn, Zone, MAX_ORDER, NIL};

/// A broken invariant found by [`Buddy::check`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CheckError {
    /// What is wrong.
    pub what: &'static str,
    /// The frame concerned, if any.
    pub pfn: Option<Pfn>,
    /// The zone concerned, if any.
    pub zone: Option<Zone>,
    /// Value found and value expected, when the check compares numbers.
    pub got: u64,
    pub want: u64,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)?;
        if let Some(z) = self.zone {
            write!(f, " in zone {z}")?;
        }
        if let Some(p) = self.pfn {
            write!(f, " at pfn={p}")?;
        }
        if self.got != self.want {
            write!(f, " (found {}, expected {})", self.got, self.want)?;
        }
        Ok(())
    }
}

fn err(what: &'static str, zone: Zone, pfn: u32) -> CheckError {
    CheckError {
        what,
        pfn: if pfn == NIL { None } else { Some(Pfn(pfn)) },
        zone: Some(zone),
        got: 0,
        want: 0,
    }
}

fn mismatch(what: &'static str, zone: Option<Zone>, got: u64, want: u64) -> Result<(), CheckError> {
    if got == want {
        Ok(())
    } else {
        Err(CheckError {
            what,
            pfn: None,
            zone,
            got,
            want,
        })
    }
}

/// Walks the sorted RAM ranges alongside an increasing PFN.
struct RamCursor<'r> {
    ram: &'r [(u32, u32)],
    i: usize,
}

impl RamCursor<'_> {
    /// True if all of `[pfn, pfn + n)` is RAM. Calls must have non-decreasing `pfn`.
    fn covers(&mut self, pfn: u32, n: u32) -> bool {
        while self.i < self.ram.len() && self.ram[self.i].1 <= pfn {
            self.i += 1;
        }
        self.i < self.ram.len() && self.ram[self.i].0 <= pfn && pfn + n <= self.ram[self.i].1
    }
}

impl Buddy<'_> {
    /// Verifies every invariant of the allocator (see the module documentation):
    /// block structure of the whole mem_map, zones, free lists, merge completeness,
    /// block caches and all counters. O(max_pfn); meant for tests and debugging.
    pub fn check(&self) -> Result<(), CheckError> {
        let len = self.map.len() as u32;
        let ram = &self.ram[..self.nr_ram];
        for (i, &(s, e)) in ram.iter().enumerate() {
            if s >= e || e > len || (i > 0 && ram[i - 1].1 >= s) {
                return Err(CheckError {
                    what: "RAM ranges not sorted, disjoint and non-adjacent",
                    pfn: Some(Pfn(s)),
                    zone: None,
                    got: 0,
                    want: 0,
                });
            }
        }
        let mut cur = RamCursor { ram, i: 0 };
        let mut shared = 0u64;
        for (zi, zone) in Zone::ALL.into_iter().enumerate() {
            let zd = &self.zones[zi];
            let (mut free, mut managed, mut present) = (0u64, 0u64, 0u64);
            let mut cached = [0u64; PCP_ORDERS];
            let mut heads = [0u64; NR_ORDERS];
            let mut pfn = zd.lo;
            while pfn < zd.hi {
                let p = &self.map[pfn as usize];
                if p.zone() != zone {
                    return Err(err("page stamped with another zone", zone, pfn));
                }
                let (n, tails) = match p.state() {
                    PageState::Reserved => {
                        if cur.covers(pfn, 1) {
                            present += 1;
                        }
                        pfn += 1;
                        continue;
                    }
                    PageState::Tail => return Err(err("tail page without a head", zone, pfn)),
                    PageState::Free => {
                        let o = p.order();
                        if p.count != 0 {
                            return Err(err("free head with a reference count", zone, pfn));
                        }
                        if o < MAX_ORDER {
                            let b = pfn ^ (1 << o);
                            if let Some(bp) = self.map.get(b as usize) {
                                if bp.state() == PageState::Free
                                    && bp.order() == o
                                    && bp.zone() == zone
                                {
                                    return Err(err("free buddies not merged", zone, pfn));
                                }
                            }
                        }
                        heads[o as usize] += 1;
                        free += 1 << o;
                        (1u32 << o, 1u32 << o)
                    }
                    PageState::Cached => {
                        let o = p.order();
                        if o > PCP_MAX_ORDER {
                            return Err(err("cached block of an uncached order", zone, pfn));
                        }
                        if p.count != POOLED {
                            return Err(err("cached head with a reference count", zone, pfn));
                        }
                        cached[o as usize] += 1;
                        (1u32 << o, 1u32 << o)
                    }
                    PageState::Allocated => {
                        let o = p.order();
                        let num = p.next;
                        if num == 0 || num > 1 << o || (o > 0 && num <= 1 << (o - 1)) {
                            return Err(err("allocated head: count does not fit order", zone, pfn));
                        }
                        if p.count == 0 {
                            return Err(err("allocated head with reference count 0", zone, pfn));
                        }
                        if p.flags().0 & !PageFlags::ALL_BITS != 0 {
                            return Err(err("allocated head with unknown flags", zone, pfn));
                        }
                        if p.count > 1 || p.flags().contains(PageFlags::SHARED) {
                            shared += num as u64;
                        }
                        (1u32 << o, num)
                    }
                    PageState::Slab => {
                        let o = p.order();
                        (1u32 << o, 1u32 << o)
                    }
                };
                // `n`: alignment of the block; `tails`: frames it spans.
                if !pfn.is_multiple_of(n) {
                    return Err(err("block not naturally aligned", zone, pfn));
                }
                if pfn + tails > zd.hi {
                    return Err(err("block crosses the zone end", zone, pfn));
                }
                if !cur.covers(pfn, tails) {
                    return Err(err("managed block not inside one RAM range", zone, pfn));
                }
                for t in pfn + 1..pfn + tails {
                    let tp = &self.map[t as usize];
                    if tp.state() != PageState::Tail {
                        return Err(err("block frame is not a tail", zone, t));
                    }
                    if tp.zone() != zone {
                        return Err(err("page stamped with another zone", zone, t));
                    }
                }
                managed += tails as u64;
                present += tails as u64;
                pfn += tails;
            }
            let z = Some(zone);
            mismatch("free-list frames", z, free, zd.free)?;
            mismatch("managed frames", z, managed, zd.managed)?;
            mismatch("present frames", z, present, zd.present)?;
            let [min, low, high] = zd.wmark;
            if min > low || low > high || high > zd.managed {
                return Err(err(
                    "watermarks not min <= low <= high <= managed",
                    zone,
                    NIL,
                ));
            }
            for (&c, &len) in cached.iter().zip(&zd.pcp_len) {
                mismatch("cached blocks of one order", z, c, len as u64)?;
            }
            // Free lists.
            for (o, &h) in heads.iter().enumerate() {
                mismatch("free blocks of one order", z, h, zd.nr_free[o] as u64)?;
                let bit = zd.avail >> o & 1 == 1;
                if bit != (zd.nr_free[o] > 0) {
                    return Err(err("non-empty-order bitmap wrong", zone, NIL));
                }
                let (mut prev, mut x, mut steps) = (NIL, zd.head[o], 0u32);
                while x != NIL {
                    if steps >= zd.nr_free[o] {
                        return Err(err("free list longer than its count (cycle?)", zone, x));
                    }
                    if x < zd.lo || x >= zd.hi {
                        return Err(err("free list entry outside the zone", zone, x));
                    }
                    let p = &self.map[x as usize];
                    if p.state() != PageState::Free || p.order() as usize != o {
                        return Err(err(
                            "free list entry is not a free head of that order",
                            zone,
                            x,
                        ));
                    }
                    if p.prev != prev {
                        return Err(err("free list back link wrong", zone, x));
                    }
                    prev = x;
                    x = p.next;
                    steps += 1;
                }
                if prev != zd.tail[o] {
                    return Err(err("free list tail pointer wrong", zone, prev));
                }
                mismatch("free list length", z, steps as u64, zd.nr_free[o] as u64)?;
            }
            // Block caches: each a list through `next` of cached heads of this zone
            // and order, as long as its count (no cycle: a walk that revisits a head
            // never ends); with the map counts above, every cached head is on its
            // list exactly once.
            for o in 0..PCP_ORDERS {
                if zd.pcp_max[o] as u64 != super::pool::pcp_limit(zd, o as u32) {
                    return Err(err("cache list bound not updated with managed", zone, NIL));
                }
                let (mut x, mut steps) = (zd.pcp[o], 0u32);
                while x != NIL {
                    if steps >= zd.pcp_len[o] {
                        return Err(err("cache list longer than its count (cycle?)", zone, x));
                    }
                    let ok = x >= zd.lo && x < zd.hi && {
                        let p = &self.map[x as usize];
                        p.state() == PageState::Cached && p.order() as usize == o
                    };
                    if !ok {
                        return Err(err(
                            "cache list entry is not a cached block of its order",
                            zone,
                            x,
                        ));
                    }
                    x = self.map[x as usize].next;
                    steps += 1;
                }
                mismatch("cache list length", z, steps as u64, zd.pcp_len[o] as u64)?;
            }
        }
        mismatch("shared frames", None, shared, self.shared)
    }
}
