//! The buddy allocator as the slab allocator's page provider.

use super::*;

impl PageProvider for Buddy<'_> {
    /// Fast path (orders up to [`PCP_MAX_ORDER`]): pops the first zone's cache list
    /// when its first block lies under the slab bitmap, and writes the zone's slab
    /// head template over it. A cached block is above every watermark (it left
    /// the free lists through a checked refill, see the module documentation of
    /// `buddy.rs`), so no watermark is looked at; `fail_page_alloc` never fails a
    /// slab block. Everything else takes [`Buddy::alloc_slab_block_slow`].
    #[inline]
    fn alloc_slab_block(&mut self, order: u32, gfp: Gfp) -> Result<Pfn, MmError> {
        if order <= PCP_MAX_ORDER {
            let o = order as usize % PCP_ORDERS;
            // `__GFP_HIGHMEM` means nothing to the slab: the first zone of the
            // zonelist without it.
            let zone = if gfp.contains(Gfp::DMA) {
                Zone::Dma
            } else {
                Zone::Normal
            };
            let zd = &mut self.zones[zone as usize];
            let x = zd.pcp[o];
            // An empty list's head is NIL, above every `slab_covered`: one
            // comparison checks both.
            if x as u64 + (1u64 << o) <= self.slab_covered as u64 {
                if let Some(p) = self.map.get_mut(x as usize) {
                    zd.pcp[o] = p.next;
                    zd.pcp_len[o] -= 1;
                    *p = zd.slab_tmpl[o];
                    return Ok(Pfn(x));
                }
            }
        }
        self.alloc_slab_block_slow(order, gfp)
    }

    /// Frees a slab block. The tails are rewritten (the slab may have used their
    /// `next`/`prev`/`count`/`slab_cache`); their state must still be `Tail`.
    ///
    /// Fast path ([`Buddy::free_slab_fast`]) for the orders up to
    /// [`PCP_MAX_ORDER`]; everything else, every misuse included, takes
    /// [`Buddy::free_slab_block_slow`].
    // Out of line: inlined into the slab's `put_back_n` it costs that function
    // registers on every call (W2 pays for it).
    #[inline(never)]
    fn free_slab_block(&mut self, head: Pfn, order: u32) -> Result<(), MmError> {
        if self.free_slab_fast(head, order) {
            Ok(())
        } else {
            self.free_slab_block_slow(head, order)
        }
    }

    fn page(&self, pfn: Pfn) -> Option<&Page> {
        self.map.get(pfn.index())
    }

    fn page_mut(&mut self, pfn: Pfn) -> Option<&mut Page> {
        self.map.get_mut(pfn.index())
    }

    #[inline(always)]
    fn slab_cache_at(&self, pfn: usize) -> Option<u8> {
        if pfn < self.map.len() {
            Some(self.map[pfn].slab_cache)
        } else {
            None
        }
    }

    #[inline(always)]
    fn slab_bits(&self) -> &[u64] {
        self.slab_bits
    }

    #[inline(always)]
    fn slab_bits_mut(&mut self) -> &mut [u64] {
        self.slab_bits
    }
}

impl Buddy<'_> {
    /// The fast path of [`PageProvider::free_slab_block`]: if `head` is a `Slab`
    /// head of `order` (at most [`PCP_MAX_ORDER`]), the zone's cache list of that
    /// order has room and `fail_page_alloc` is not armed, writes the zone's tail
    /// template over the tails, pushes the head onto the cache list and returns
    /// true. Otherwise changes nothing and returns false.
    #[inline(always)]
    pub(super) fn free_slab_fast(&mut self, head: Pfn, order: u32) -> bool {
        if order > PCP_MAX_ORDER {
            return false;
        }
        let o = order as usize % PCP_ORDERS;
        let s = head.index();
        // No panic path (no stack frame): the block through `get_mut`.
        let Some((h, tails)) = self
            .map
            .get_mut(s..s + (1 << o))
            .and_then(|b| b.split_first_mut())
        else {
            return false;
        };
        if h.state() != PageState::Slab || h.order() != order {
            return false;
        }
        // The zone from the PFN (every page is stamped with the zone of its PFN).
        let zd = if head.0 >= self.lowmem {
            &mut self.zones[2]
        } else if head.0 >= DMA_END_PFN {
            &mut self.zones[1]
        } else {
            &mut self.zones[0]
        };
        let len = zd.pcp_len[o];
        if len >= zd.pcp_max[o] || self.fail.is_armed() {
            return false;
        }
        let t = zd.tail_tmpl;
        if let [t1] = tails {
            // Order 1 (kmalloc-512 up to -2k) without a loop.
            *t1 = t;
        } else {
            tails.fill(t);
        }
        // `pool::pcp_push` on the head we hold.
        let mut c = zd.cached_tmpl[o];
        c.next = zd.pcp[o];
        *h = c;
        zd.pcp[o] = head.0;
        zd.pcp_len[o] = len + 1;
        true
    }

    /// [`PageProvider::alloc_slab_block`] when the fast path cannot serve: any
    /// order, the zonelist (zones the bitmap reaches) at the watermarks.
    #[inline(never)]
    pub(super) fn alloc_slab_block_slow(&mut self, order: u32, gfp: Gfp) -> Result<Pfn, MmError> {
        if order > MAX_ORDER {
            return Err(MmError::BadOrder(order));
        }
        // Mapped zones only: `__GFP_HIGHMEM` means nothing to the slab.
        let gfp = Gfp(gfp.0 & !Gfp::HIGHMEM.0);
        // Slab blocks must lie below the frames the liveness bitmap covers.
        let covered = self.slab_covered as u64;
        let mut zones = [Zone::Dma; 2];
        let mut n = 0;
        for &zone in gfp.zonelist() {
            if self.zones[zone as usize].lo as u64 + (1 << order) <= covered {
                zones[n] = zone;
                n += 1;
            }
        }
        let (pfn, zone) = self.alloc_zonelist(&zones[..n], gfp, order)?;
        if pfn as u64 + (1 << order) > covered {
            self.release(pfn, zone, 1 << order);
            return Err(MmError::OutOfMemory);
        }
        let mut h = tmpl(zone, PageState::Slab);
        h.set_order(order);
        self.map[pfn as usize] = h;
        Ok(Pfn(pfn))
    }

    /// [`PageProvider::free_slab_block`] with every check: not a slab head
    /// (double free, allocated block, tail, reserved), wrong order.
    #[inline(never)]
    pub(super) fn free_slab_block_slow(&mut self, head: Pfn, order: u32) -> Result<(), MmError> {
        if order > MAX_ORDER {
            return Err(MmError::BadOrder(order));
        }
        let p = match self.map.get(head.index()) {
            Some(p) if p.state() == PageState::Slab => *p,
            Some(p) if p.state() == PageState::Allocated => {
                return Err(MmError::Invalid("not a slab block"))
            }
            _ => return Err(self.not_allocated(head, MmError::DoubleFree(head))),
        };
        if p.order() != order {
            return Err(MmError::WrongSize {
                pfn: head,
                expected: p.order() as u64,
                got: order as u64,
            });
        }
        let zone = p.zone();
        let (s, e) = (head.index(), head.index() + (1 << order));
        self.map[s + 1..e].fill(tmpl(zone, PageState::Tail));
        self.release(head.0, zone, 1 << order);
        Ok(())
    }
}
