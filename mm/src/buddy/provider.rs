//! The buddy allocator as the slab allocator's page provider.

use super::*;

impl PageProvider for Buddy<'_> {
    fn alloc_slab_block(&mut self, order: u32, gfp: Gfp) -> Result<Pfn, MmError> {
        if order > MAX_ORDER {
            return Err(MmError::BadOrder(order));
        }
        // Mapped zones only: `__GFP_HIGHMEM` means nothing to the slab.
        let gfp = Gfp(gfp.0 & !Gfp::HIGHMEM.0);
        // Frames the liveness bitmap covers (slab blocks must lie below).
        let covered = (self.slab_bits.len() / Buddy::slab_bits_words(1)) as u64;
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

    /// Frees a slab block. The tails are rewritten (the slab may have used their
    /// `next`/`prev`/`count`/`slab_cache`); their state must still be `Tail`.
    fn free_slab_block(&mut self, head: Pfn, order: u32) -> Result<(), MmError> {
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
