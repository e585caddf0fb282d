//! The heart of the buddy allocator: free lists, splitting (`rmqueue`), merging
//! (`free_block`), the per-zone block caches, the watermark passes, and the
//! shared free path (`put`). See the invariants at the top of `buddy.rs`.

use super::*;

impl Buddy<'_> {
    // ------------------------------------------------------------------
    // Core: free lists, split, merge, block caches
    // ------------------------------------------------------------------

    /// Takes a block of `order` from the free lists of `zone`, splitting a larger one
    /// if needed. The returned head still looks `Free`; the caller rewrites it.
    #[inline]
    pub(super) fn rmqueue(&mut self, zone: Zone, order: u32) -> Option<u32> {
        let zd = &mut self.zones[zone as usize];
        let avail = zd.avail >> order;
        if avail == 0 {
            return None;
        }
        let mut k = order + avail.trailing_zeros();
        let pfn = zd.head[k as usize];
        list_del(self.map, zd, pfn, k);
        zd.free -= 1 << order;
        while k > order {
            k -= 1;
            link_free_head(self.map, zd, pfn + (1 << k), k, false);
        }
        Some(pfn)
    }

    /// Returns the block `pfn` of `order` to the free lists of `zone`, merging with
    /// free buddies. The frames other than `pfn` must already be `Tail`.
    pub(super) fn free_block(&mut self, zone: Zone, mut pfn: u32, mut order: u32) {
        let map = &mut *self.map;
        let zd = &mut self.zones[zone as usize];
        zd.free += 1 << order;
        let mut buddy_busy = false;
        while order < MAX_ORDER {
            let buddy = pfn ^ (1 << order);
            // In the zone (pages are zone-stamped by bounds), a free head of `order`.
            if buddy < zd.lo || buddy >= zd.hi || {
                let b = &map[buddy as usize];
                b.state() != PageState::Free || b.order() != order
            } {
                buddy_busy = true;
                break;
            }
            list_del(map, zd, buddy, order);
            map[pfn.max(buddy) as usize] = zd.tail_tmpl;
            pfn &= buddy;
            order += 1;
        }
        // buddy_merge_likely: our buddy is busy, but our parent's buddy is free; when
        // ours comes back we merge twice, so keep this block for last.
        let at_tail = buddy_busy && order + 1 < MAX_ORDER && {
            let parent = pfn & !(1 << order);
            let pbuddy = parent ^ (2 << order);
            pbuddy >= zd.lo && pbuddy < zd.hi && {
                let b = &map[pbuddy as usize];
                b.state() == PageState::Free && b.order() == order + 1
            }
        };
        link_free_head(map, zd, pfn, order, at_tail);
    }

    /// Frees `[s, e)` (frames already `Tail` or heads being released) as naturally
    /// aligned blocks, largest first, each merged with its buddies.
    pub(super) fn free_range(&mut self, zone: Zone, mut s: u32, e: u32) {
        while s < e {
            let o = s.trailing_zeros().min((e - s).ilog2()).min(MAX_ORDER);
            self.free_block(zone, s, o);
            s += 1 << o;
        }
    }

    /// Cache refill (the order-`order` cache list is empty): takes up to a batch of
    /// blocks from the free lists as runs, returns the first and pushes the rest.
    #[cold]
    #[inline(never)]
    pub(super) fn pcp_refill(&mut self, zone: Zone, order: u32, floor: u64) -> Option<u32> {
        if self.fail.is_armed() {
            // Fault injection: allocations must keep reaching the checked path.
            return None;
        }
        let want = pcp_batch(order);
        let mut first = None;
        let mut got = 0;
        // Runs of blocks at once (Linux `rmqueue_bulk`); pushed so that the lowest
        // PFN is popped first.
        while got < want {
            let Some((pfn, n)) = self.take_run(zone, order, want - got, floor) else {
                break;
            };
            let zd = &mut self.zones[zone as usize];
            let skip = first.is_none() as usize;
            for i in (skip..n).rev() {
                pool::pcp_push(self.map, zd, order, pfn + ((i as u32) << order));
            }
            first = first.or(Some(pfn));
            got += n;
        }
        first
    }

    /// Returns the blocks of one zone's caches to the free lists.
    pub(super) fn drain_zone(&mut self, zone: Zone) {
        for o in 0..PCP_ORDERS {
            let len = self.zones[zone as usize].pcp_len[o] as usize;
            if len != 0 {
                self.pcp_return(zone, o as u32, len);
            }
        }
    }

    /// Returns every block of the per-zone caches to the free lists (where they
    /// merge). After `drain`, `buddyinfo` shows all free memory.
    pub fn drain(&mut self) {
        for z in Zone::ALL {
            self.drain_zone(z);
        }
    }

    /// A free naturally aligned block of 2^`order` frames from `zone`, or `None`.
    /// The zone's free lists keep at least `floor` frames (a watermark, or 0 for
    /// `Gfp::MEMALLOC`); block-cache frames are above every watermark.
    #[inline]
    pub(super) fn zone_alloc(&mut self, zone: Zone, order: u32, floor: u64) -> Option<u32> {
        if order <= PCP_MAX_ORDER {
            let o = order as usize;
            let zd = &mut self.zones[zone as usize];
            let x = zd.pcp[o];
            if let Some(p) = self.map.get(x as usize) {
                zd.pcp[o] = p.next;
                zd.pcp_len[o] -= 1;
                return Some(x);
            }
            if let Some(p) = self.pcp_refill(zone, order, floor) {
                return Some(p);
            }
        }
        self.zone_alloc_slow(zone, order, floor)
    }

    /// Free lists; on failure drain the zone's caches (they may hold the pages that
    /// would merge into the block) and retry once.
    #[inline(never)]
    pub(super) fn zone_alloc_slow(&mut self, zone: Zone, order: u32, floor: u64) -> Option<u32> {
        let above = |b: &Self| b.zones[zone as usize].free >= floor + (1 << order);
        if above(self) {
            if let Some(p) = self.rmqueue(zone, order) {
                return Some(p);
            }
        }
        let zd = &self.zones[zone as usize];
        if zd.pcp_len.iter().all(|&n| n == 0) {
            return None;
        }
        self.drain_zone(zone);
        if !above(self) {
            return None;
        }
        self.rmqueue(zone, order)
    }

    /// Walks `zonelist` at the `low` watermark, then at `min` (Linux
    /// `get_page_from_freelist` before and after waking kswapd); `MEMALLOC` walks it
    /// a third time with no watermark (Linux `ALLOC_NO_WATERMARKS`), so the kernel
    /// heap uses a zone's reserve only when no zone has memory above it. The failure
    /// says whether a watermark stood in the way.
    pub(super) fn alloc_zonelist(
        &mut self,
        zonelist: &[Zone],
        gfp: Gfp,
        order: u32,
    ) -> Result<(u32, Zone), MmError> {
        let passes = if gfp.contains(Gfp::MEMALLOC) { 3 } else { 2 };
        for pass in 0..passes {
            for &zone in zonelist {
                let floor = match pass {
                    0 => self.zones[zone as usize].wmark[Wmark::Low as usize],
                    1 => self.zones[zone as usize].wmark[Wmark::Min as usize],
                    _ => 0,
                };
                if let Some(pfn) = self.zone_alloc(zone, order, floor) {
                    return Ok((pfn, zone));
                }
            }
        }
        Err(self.oom_error(zonelist, gfp, order))
    }

    /// Why an allocation of `order` from `zonelist` failed: `BelowWatermark` for the
    /// first zone that has the frames but would drop below its `min` watermark,
    /// else `OutOfMemory`.
    #[cold]
    pub(super) fn oom_error(&self, zonelist: &[Zone], gfp: Gfp, order: u32) -> MmError {
        if !gfp.contains(Gfp::MEMALLOC) {
            for &zone in zonelist {
                let zd = &self.zones[zone as usize];
                let min = zd.wmark[Wmark::Min as usize];
                if zd.free >= 1 << order && zd.free < min + (1 << order) {
                    return MmError::BelowWatermark {
                        zone,
                        free: zd.free,
                        min,
                    };
                }
            }
        }
        MmError::OutOfMemory
    }

    /// Writes the head of a fresh allocation.
    #[inline(always)]
    pub(super) fn prep_alloc(
        &mut self,
        pfn: u32,
        zone: Zone,
        order: u32,
        num: u32,
        flags: PageFlags,
    ) {
        let mut p = tmpl(zone, PageState::Allocated);
        p.set_order(order);
        p.set_flags(flags);
        p.count = 1;
        p.next = num;
        self.map[pfn as usize] = p;
    }

    /// Gfp allocation of 2^`order` pages (order already checked).
    #[inline(always)]
    pub(super) fn alloc_gfp(&mut self, gfp: Gfp, order: u32) -> Result<Pfn, MmError> {
        // Fast path: pop the first zone's cache (order 0 separately, so that its
        // indices are constants).
        let zone = gfp.zonelist()[0];
        let hit = if order == 0 {
            self.take_cached(zone, 0, PageFlags::EMPTY)
        } else if order <= PCP_MAX_ORDER {
            self.take_cached(zone, order, PageFlags::EMPTY)
        } else {
            None
        };
        match hit {
            Some(pfn) => Ok(Pfn(pfn)),
            None => self.alloc_gfp_slow(gfp, order),
        }
    }

    /// Pops a block of `order` (<= PCP_MAX_ORDER) from the cache of `zone` and makes
    /// it an allocated head with `flags`. A cached head is zone-stamped, has its order
    /// and no slab owner, so only state, flags, count and size change.
    #[inline(always)]
    pub(super) fn take_cached(&mut self, zone: Zone, order: u32, flags: PageFlags) -> Option<u32> {
        let o = order as usize % PCP_ORDERS;
        let zd = &mut self.zones[zone as usize];
        let pfn = zd.pcp[o];
        // An empty list's head is NIL, beyond every mem_map (`new_unfilled`): the
        // bounds check is the emptiness check.
        let p = self.map.get_mut(pfn as usize)?;
        zd.pcp[o] = p.next;
        zd.pcp_len[o] -= 1;
        *p = zd.alloc_tmpl[o];
        if !flags.is_empty() {
            p.set_flags(flags);
        }
        Some(pfn)
    }

    #[inline(never)]
    pub(super) fn alloc_gfp_slow(&mut self, gfp: Gfp, order: u32) -> Result<Pfn, MmError> {
        if self.fail.should_fail_gfp(gfp, 1 << order) {
            return Err(MmError::OutOfMemory);
        }
        let (pfn, zone) = self.alloc_zonelist(gfp.zonelist(), gfp, order)?;
        self.prep_alloc(pfn, zone, order, 1 << order, PageFlags::EMPTY);
        Ok(Pfn(pfn))
    }

    /// Releases the frames of an allocated block (head `pfn`, `num` frames) whose last
    /// reference went away: power-of-two blocks of a cached order go to the cache,
    /// the rest to the free lists.
    #[inline(never)]
    pub(super) fn release(&mut self, pfn: u32, zone: Zone, num: u32) {
        let order = num.trailing_zeros();
        if num.is_power_of_two() && order <= PCP_MAX_ORDER && !self.fail.is_armed() {
            let (z, o) = (zone as usize, order as usize);
            let limit = self.zones[z].pcp_max[o];
            let len = self.zones[z].pcp_len[o];
            if len >= limit {
                // Full: half of it goes back to the free lists first.
                self.pcp_return(zone, order, (len - limit / 2) as usize);
            }
            if self.zones[z].pcp_len[o] < limit {
                pool::pcp_push(self.map, &mut self.zones[z], order, pfn);
                return;
            }
            self.map[pfn as usize] = self.zones[z].tail_tmpl;
            self.free_range(zone, pfn, pfn + num);
        } else {
            self.map[pfn as usize] = self.zones[zone as usize].tail_tmpl;
            self.free_range(zone, pfn, pfn + num);
        }
    }

    /// Frames of the block headed by `p` that count as shared.
    #[inline(always)]
    pub(super) fn shared_of(p: &Page) -> u64 {
        if p.count > 1 || p.flags().contains(PageFlags::SHARED) {
            p.next as u64
        } else {
            0
        }
    }

    /// The error for a page that should have been an allocated head but is not.
    #[cold]
    pub(super) fn not_allocated(&self, pfn: Pfn, free_err: MmError) -> MmError {
        let Some(p) = self.map.get(pfn.index()) else {
            return MmError::NotRam(pfn.phys());
        };
        match p.state() {
            PageState::Allocated => MmError::Invalid("page is allocated"),
            PageState::Free | PageState::Cached => free_err,
            PageState::Slab => MmError::SlabPage(pfn),
            PageState::Reserved => {
                if self.is_ram(pfn) {
                    MmError::Reserved(pfn)
                } else {
                    MmError::NotRam(pfn.phys())
                }
            }
            PageState::Tail => match self.map[self.head_pfn(pfn.0) as usize].state() {
                PageState::Free | PageState::Cached => free_err,
                PageState::Slab => MmError::SlabPage(pfn),
                _ => MmError::NotBlockHead(pfn),
            },
        }
    }

    /// Drops one reference of the allocated block at `pfn` after checking `want`.
    #[inline(always)]
    pub(super) fn put(&mut self, pfn: Pfn, want: Want) -> Result<bool, MmError> {
        // Fast path: the head is exactly its zone's fresh allocation of a cached
        // order `o` (allocated, count 1, size 2^o, no flags, no slab owner: one
        // comparison with the template), `o` is the order `want` names, and the
        // cache list has room. Anything else, every misuse included, takes the
        // checked path.
        if let Some(p) = self.map.get_mut(pfn.index()) {
            // An order above the cached ones indexes the templates modulo
            // PCP_ORDERS and cannot match them (their order differs).
            let order = match want {
                Want::Order(o) => o,
                Want::Count(n) if n.is_power_of_two() => n.trailing_zeros(),
                Want::Count(_) => return self.put_slow(pfn, want),
                Want::Any => p.order(),
            };
            let o = order as usize % PCP_ORDERS;
            // The zone from the PFN, not from the page: no wait for the page load.
            let zd = if pfn.0 >= self.lowmem {
                &mut self.zones[2]
            } else if pfn.0 >= DMA_END_PFN {
                &mut self.zones[1]
            } else {
                &mut self.zones[0]
            };
            let len = zd.pcp_len[o];
            if p.same_as(&zd.alloc_tmpl[o]) && len < zd.pcp_max[o] {
                *p = zd.cached_tmpl[o];
                p.next = zd.pcp[o];
                zd.pcp[o] = pfn.0;
                zd.pcp_len[o] = len + 1;
                return Ok(true);
            }
        }
        self.put_slow(pfn, want)
    }

    #[inline(never)]
    pub(super) fn put_slow(&mut self, pfn: Pfn, want: Want) -> Result<bool, MmError> {
        let p = match self.map.get(pfn.index()) {
            Some(p) if p.state() == PageState::Allocated => *p,
            _ => return Err(self.not_allocated(pfn, MmError::DoubleFree(pfn))),
        };
        match want {
            Want::Any => {}
            Want::Order(o) if p.next != 1 << o => {
                return Err(if p.next.is_power_of_two() {
                    MmError::WrongSize {
                        pfn,
                        expected: p.next.trailing_zeros() as u64,
                        got: o as u64,
                    }
                } else {
                    MmError::WrongSize {
                        pfn,
                        expected: p.next as u64,
                        got: 1u64 << o,
                    }
                });
            }
            Want::Count(n) if p.next != n => {
                return Err(MmError::WrongSize {
                    pfn,
                    expected: p.next as u64,
                    got: n as u64,
                })
            }
            _ => {}
        }
        self.shared -= Self::shared_of(&p);
        if p.count > 1 {
            let q = &mut self.map[pfn.index()];
            q.count -= 1;
            self.shared += Self::shared_of(q);
            return Ok(false);
        }
        self.release(pfn.0, p.zone(), p.next);
        Ok(true)
    }
}
