//! The out-of-line paths: refilling and flushing magazines, taking objects from
//! and returning them to slabs, making and releasing slabs.

use core::panic::Location;

use super::{bit_of, is_live, page_mut, set_live, Loc, Slab, MODE_DEBUG};
use crate::{Gfp, MmError, PageProvider, PageState, Pfn, PhysMem, NIL};

impl Slab {
    /// [`alloc_slow`](Self::alloc_slow) with cache number, requested size and gfp
    /// packed into one word (`ix | req << 8 | gfp << 40`) so that every argument is
    /// passed in a register and the fast paths can jump here.
    #[inline(never)]
    #[cold]
    pub(super) fn alloc_slow_packed<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        packed: u64,
        site: &'static Location<'static>,
    ) -> Result<u64, MmError> {
        let gfp = Gfp((packed >> 40) as u32);
        self.alloc_slow(mem, pages, packed as u8, (packed >> 8) as u32, gfp, site)
    }

    /// Allocation when the fast path cannot serve: `__GFP_ZERO`, an empty
    /// magazine (refilled here), a cache without magazine (debug caches: one
    /// object straight from a slab, checked). On error nothing has changed.
    #[inline(always)]
    pub(super) fn alloc_slow<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        req: u32,
        gfp: Gfp,
        site: &'static Location<'static>,
    ) -> Result<u64, MmError> {
        let zero = gfp.contains(Gfp::ZERO);
        let c = &self.caches[ix as usize];
        if zero && c.ctor.is_some() {
            return Err(MmError::Invalid("__GFP_ZERO on a cache with a constructor"));
        }
        let size = c.lay.obj_size as u64;
        if self.fail.should_fail_gfp(gfp, size) {
            return Err(MmError::OutOfMemory);
        }
        let c = &self.caches[ix as usize];
        let phys = if c.cap == 0 {
            self.take_one(mem, pages, ix, gfp)?
        } else {
            if c.n == 0 {
                self.refill(mem, pages, ix, gfp)?;
            }
            let c = &mut self.caches[ix as usize];
            c.n -= 1;
            let v = c.mag[c.n % super::MAG];
            mem.phys_of(v)
                .ok_or(MmError::Invalid("slab: object outside the direct map"))?
        };
        set_live(pages, phys, true);
        let c = &self.caches[ix as usize];
        if c.mode == MODE_DEBUG {
            self.debug_alloc_slot(mem, ix, phys, req, gfp, site);
        } else if zero {
            mem.fill(phys, c.lay.obj_size as usize, 0);
        }
        mem.virt_of(phys)
            .ok_or(MmError::Invalid("slab: object outside the direct map"))
    }

    /// The first partial slab of cache `ix`, or a new one (on the partial list).
    fn partial_head<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        gfp: Gfp,
    ) -> Result<u32, MmError> {
        match self.caches[ix as usize].partial.head {
            NIL => self.grow(mem, pages, ix, gfp),
            head => Ok(head),
        }
    }

    /// One available object (physical address) out of a slab of cache `ix` (caches
    /// without magazine), its bit still clear.
    fn take_one<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        gfp: Gfp,
    ) -> Result<u64, MmError> {
        let head = self.partial_head(mem, pages, ix, gfp)?;
        // `None` for "no free slot": 0 is a slot's address in a slab at PFN 0.
        let mut found = None;
        self.scan_free(pages, ix, head, 1, |p| found = Some(p));
        let Some(phys) = found else {
            return Err(MmError::Invalid(
                "slab: available count without a free slot",
            ));
        };
        self.took(pages, ix, head, 1)?;
        Ok(phys)
    }

    /// Refills the empty magazine of cache `ix` with up to half its capacity from
    /// the partial slabs, growing one slab only if there are none. Every clear bit
    /// of a slab's slots is then an available object (the magazine is empty).
    fn refill<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        gfp: Gfp,
    ) -> Result<(), MmError> {
        let c = &self.caches[ix as usize];
        debug_assert_eq!(c.n, 0);
        let target = (c.cap / 2).max(1);
        let off = mem.direct_offset();
        let mut head = self.partial_head(mem, pages, ix, gfp)?;
        loop {
            let c = &mut self.caches[ix as usize];
            let before = c.n;
            let (stride, objs) = (c.stride as u64, c.objs);
            scan_slab(
                pages.slab_bits(),
                head,
                stride,
                objs,
                (target - before) as u32,
                |p| {
                    c.mag[c.n % super::MAG] = p + off;
                    c.n += 1;
                },
            );
            let k = c.n - before;
            if k == 0 {
                // A partial slab without a free slot: its count is wrong.
                break;
            }
            self.took(pages, ix, head, k as u32)?;
            head = self.caches[ix as usize].partial.head;
            if self.caches[ix as usize].n >= target || head == NIL {
                break;
            }
        }
        let c = &mut self.caches[ix as usize];
        if c.n == 0 {
            return Err(MmError::Invalid("slab: partial slabs without free slots"));
        }
        // Lowest address on top: a run of allocations goes up through a slab.
        c.mag[..c.n].reverse();
        Ok(())
    }

    /// Calls `f(phys)` for up to `max` free slots (clear liveness bit) of slab
    /// `head` of cache `ix`, lowest first.
    pub(super) fn scan_free<P: PageProvider>(
        &self,
        pages: &P,
        ix: u8,
        head: u32,
        max: u32,
        f: impl FnMut(u64),
    ) {
        let c = &self.caches[ix as usize];
        scan_slab(pages.slab_bits(), head, c.stride as u64, c.objs, max, f);
    }

    /// Bookkeeping after `k` available objects of slab `head` were taken: its count
    /// drops; at 0 it leaves the partial list (debug caches: onto the full list).
    fn took<P: PageProvider>(
        &mut self,
        pages: &mut P,
        ix: u8,
        head: u32,
        k: u32,
    ) -> Result<(), MmError> {
        let c = &mut self.caches[ix as usize];
        let p = page_mut(pages, head)?;
        if p.count < k {
            return Err(MmError::Invalid(
                "slab: available count below the free slots",
            ));
        }
        p.count -= k;
        let left = p.count;
        c.avail -= k as u64;
        if k != 0 && c.spare == head {
            c.spare = NIL;
        }
        if left == 0 {
            c.partial.unlink(pages, head)?;
            if c.mode == MODE_DEBUG {
                c.full.push(pages, head)?;
            }
        }
        Ok(())
    }

    /// Makes object `phys` (its bit already clear, not in the magazine) available
    /// in its slab: the slab joins the partial list on its first available object;
    /// a slab whose objects are all available becomes the cache's spare, or goes
    /// back to the page provider if there is one already.
    pub(super) fn put_back<P: PageProvider>(
        &mut self,
        pages: &mut P,
        ix: u8,
        phys: u64,
    ) -> Result<(), MmError> {
        let c = &mut self.caches[ix as usize];
        let head = ((phys & !c.mask) >> 12) as u32;
        let p = page_mut(pages, head)?;
        let before = p.count;
        p.count = before + 1;
        c.avail += 1;
        if before == 0 {
            if c.mode == MODE_DEBUG {
                c.full.unlink(pages, head)?;
            }
            c.partial.push(pages, head)?;
        }
        if before + 1 == c.objs {
            if c.spare == NIL && c.lay.order <= 3 {
                c.spare = head;
                return Ok(());
            }
            c.partial.unlink(pages, head)?;
            c.avail -= c.objs as u64;
            return self.release_slab(pages, ix, head);
        }
        Ok(())
    }

    /// Moves the `k` oldest objects of the magazine of cache `ix` back to their
    /// slabs.
    pub(super) fn flush<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        k: usize,
    ) -> Result<(), MmError> {
        let off = mem.direct_offset();
        let k = k.min(self.caches[ix as usize].n);
        for i in 0..k {
            let v = self.caches[ix as usize].mag[i];
            self.put_back(pages, ix, v.wrapping_sub(off))?;
        }
        let c = &mut self.caches[ix as usize];
        c.mag.copy_within(k..c.n, 0);
        c.n -= k;
        Ok(())
    }

    /// A new slab for cache `ix` (on the partial list, every object available):
    /// pages set up, debug slots and constructors run. Only `Gfp::MEMALLOC` of
    /// `gfp` matters: the zones are the cache's.
    fn grow<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        gfp: Gfp,
    ) -> Result<u32, MmError> {
        let c = &self.caches[ix as usize];
        let (l, dma, mode, ctor) = (c.lay, c.dma, c.mode, c.ctor);
        let zones = if dma { Gfp::DMA } else { Gfp::KERNEL };
        let head = pages.alloc_slab_block(l.order, zones | Gfp(gfp.0 & Gfp::MEMALLOC.0))?;
        let phys = head.phys();
        let Some(virt) = mem.virt_of(phys) else {
            pages.free_slab_block(head, l.order)?;
            return Err(MmError::OutOfMemory);
        };
        for i in 0..1u32 << l.order {
            let p = page_mut(pages, head.0 + i)?;
            p.slab_cache = ix;
            p.prev = NIL;
            p.count = 0;
            if i == 0 {
                p.next = NIL;
                p.count = l.objs;
            } else {
                p.set_state(PageState::Tail);
                p.next = head.0;
            }
        }
        let c = &mut self.caches[ix as usize];
        c.nr_slabs += 1;
        c.avail += l.objs as u64;
        c.partial.push(pages, head.0)?;
        for i in 0..l.objs as u64 {
            let off = i * l.stride as u64;
            if mode == MODE_DEBUG {
                self.debug_make_free(mem, ix, phys + off);
                if l.track_off != 0 {
                    mem.fill(phys + off + l.track_off as u64, 32, 0);
                }
            }
            if let Some(f) = ctor {
                f(mem, virt + off, phys + off, l.obj_size as usize);
            }
        }
        Ok(head.0)
    }

    /// Free of a located live-or-free object (kind checked) that the fast path did
    /// not take: refuses a double free, runs the debug checks, clears its bit, then
    /// into the magazine (flushing half of a full one first) or, without magazine,
    /// back to its slab.
    #[inline(never)]
    pub(super) fn free_slow<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        loc: Loc,
        virt: u64,
        site: &'static Location<'static>,
    ) -> Result<(), MmError> {
        let ix = loc.ix;
        if !is_live(pages, loc.phys) {
            self.report_misuse(mem, ix, super::SlabErrorKind::DoubleFree, loc.phys);
            return Err(MmError::ObjectDoubleFree(virt));
        }
        if self.caches[ix as usize].mode == MODE_DEBUG {
            self.debug_free_slot(mem, loc, site);
        }
        let c = &self.caches[ix as usize];
        if c.cap == 0 {
            set_live(pages, loc.phys, false);
            return self.put_back(pages, ix, loc.phys);
        }
        if c.n >= c.cap {
            let half = (c.cap / 2).max(1);
            self.flush(mem, pages, ix, half)?;
        }
        set_live(pages, loc.phys, false);
        let c = &mut self.caches[ix as usize];
        c.mag[c.n % super::MAG] = virt;
        c.n += 1;
        Ok(())
    }

    /// Gives a slab (off every list, every object available) back to the page
    /// provider.
    pub(super) fn release_slab<P: PageProvider>(
        &mut self,
        pages: &mut P,
        ix: u8,
        head: u32,
    ) -> Result<(), MmError> {
        let c = &mut self.caches[ix as usize];
        let order = c.lay.order;
        if c.spare == head {
            c.spare = NIL;
        }
        for i in 0..1u32 << order {
            let p = page_mut(pages, head + i)?;
            p.slab_cache = 0;
            p.count = 0;
            p.prev = NIL;
            if i == 0 {
                p.next = NIL;
            }
        }
        c.nr_slabs -= 1;
        pages.free_slab_block(Pfn(head), order)
    }

    /// Gives back every slab of a cache without live objects (destroy, layout
    /// change).
    pub(super) fn release_all<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
    ) -> Result<(), MmError> {
        let n = self.caches[ix as usize].n;
        self.flush(mem, pages, ix, n)?;
        loop {
            let c = &mut self.caches[ix as usize];
            let head = if c.partial.head != NIL {
                let h = c.partial.head;
                c.partial.unlink(pages, h)?;
                h
            } else if c.full.head != NIL {
                let h = c.full.head;
                c.full.unlink(pages, h)?;
                h
            } else {
                c.avail = 0;
                return Ok(());
            };
            self.release_slab(pages, ix, head)?;
        }
    }

    /// Empties the magazine of cache `ix` into the slabs and gives back the spare
    /// slab. Returns the number of slabs released.
    pub(super) fn shrink_ix<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
    ) -> Result<u64, MmError> {
        let before = self.caches[ix as usize].nr_slabs;
        let n = self.caches[ix as usize].n;
        self.flush(mem, pages, ix, n)?;
        let c = &mut self.caches[ix as usize];
        let spare = c.spare;
        if spare != NIL {
            c.partial.unlink(pages, spare)?;
            c.avail -= c.objs as u64;
            self.release_slab(pages, ix, spare)?;
        }
        Ok(before - self.caches[ix as usize].nr_slabs)
    }
}

/// Calls `f(phys)` for up to `max` free slots (clear liveness bit) of the slab at
/// PFN `head` with `objs` slots of `stride` bytes, lowest first.
fn scan_slab(bits: &[u64], head: u32, stride: u64, objs: u32, max: u32, mut f: impl FnMut(u64)) {
    let base = Pfn(head).phys();
    let end = base + objs as u64 * stride;
    let mut left = max;
    if stride.is_power_of_two() && stride <= 1 << super::WORD_SHIFT {
        // Word by word: the slots' bits repeat every stride / 32 bits.
        let step = stride >> super::GRANULE_SHIFT;
        let mut pattern = 0u64;
        let mut b = 0;
        while b < 64 {
            pattern |= 1 << b;
            b += step;
        }
        let (w0, _) = bit_of(base);
        let words = (end - base).div_ceil(1 << super::WORD_SHIFT) as usize;
        for (w, &word) in bits.iter().skip(w0).take(words).enumerate() {
            let mut free = !word & pattern;
            while free != 0 {
                if left == 0 {
                    return;
                }
                let p =
                    base + ((w as u64 * 64 + free.trailing_zeros() as u64) << super::GRANULE_SHIFT);
                if p >= end {
                    return;
                }
                free &= free - 1;
                f(p);
                left -= 1;
            }
        }
        return;
    }
    let mut p = base;
    while p < end && left != 0 {
        let (w, b) = bit_of(p);
        if bits.get(w).is_some_and(|&x| x & b == 0) {
            f(p);
            left -= 1;
        }
        p += stride;
    }
}
