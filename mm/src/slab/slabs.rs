//! The out-of-line paths: refilling the active slab, making and releasing slabs,
//! freeing into non-active slabs, the header bitmaps and their checks.

use core::panic::Location;

use super::debug::{Finding, SlabErrorKind};
use super::{page_mut, qslot, Loc, Slab, MODE_DEBUG, NO_SLAB, QUARANTINE};
use crate::{Gfp, MmError, PageProvider, PageState, Pfn, PhysMem, NIL};

/// What the stored bitmap of a header slab turned out to be.
pub(super) enum Header {
    /// Consistent: the free bitmap.
    Ok(u128),
    /// Failed its check (reported).
    Corrupt,
}

impl Slab {
    /// [`alloc_slow`](Self::alloc_slow) with cache number, requested size and gfp
    /// packed into one word (`ix | req << 8 | gfp << 40`) so that every argument is
    /// passed in a register and the fast paths can jump here.
    #[inline(never)]
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
        let c = &mut self.caches[ix as usize];
        if zero && c.ctor.is_some() {
            return Err(MmError::Invalid("__GFP_ZERO on a cache with a constructor"));
        }
        if let Some(v) = c.qpop() {
            if let Some(p) = mem.phys_of(v).filter(|_| zero) {
                mem.fill(p, c.lay.obj_size as usize, 0);
            }
            return Ok(v);
        }
        if c.words == [0, 0] {
            self.refill(mem, pages, ix)?;
        }
        let c = &mut self.caches[ix as usize];
        let i = if c.words[0] != 0 {
            let w = c.words[0];
            c.words[0] = w & (w - 1);
            w.trailing_zeros() as u64
        } else {
            let w = c.words[1];
            c.words[1] = w & (w - 1);
            64 + w.trailing_zeros() as u64
        };
        let off = i * c.stride as u64;
        let (phys, virt) = (c.active_phys + off, c.active_virt + off);
        if c.mode == MODE_DEBUG {
            self.debug_alloc_slot(mem, ix, phys, req, gfp, site);
        } else if zero {
            mem.fill(phys, c.lay.obj_size as usize, 0);
        }
        Ok(virt)
    }

    /// Makes sure the active slab has a free object: activates the first partial
    /// slab or a new one; the exhausted active slab stops being active. On
    /// `OutOfMemory` nothing has changed.
    fn refill<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
    ) -> Result<(), MmError> {
        let (head, bits) = loop {
            let c = &mut self.caches[ix as usize];
            let head = c.partial.head;
            if head == NIL {
                let head = self.grow(mem, pages, ix)?;
                break (head, self.caches[ix as usize].lay.full_mask);
            }
            c.partial.unlink(pages, head)?;
            if let Some(bits) = self.take_bitmap(mem, pages, ix, head)? {
                break (head, bits);
            }
        };
        let phys = Pfn(head).phys();
        let virt = mem
            .virt_of(phys)
            .ok_or(MmError::NoVirtualAddress(Pfn(head)))?;
        let c = &mut self.caches[ix as usize];
        if c.active_phys != NO_SLAB {
            // Exhausted: a full slab (in-page bitmaps are 0 already).
            let old = (c.active_phys >> 12) as u32;
            if !c.lay.in_page() {
                page_mut(pages, old)?.count = c.lay.usable();
            }
            if c.mode == MODE_DEBUG {
                c.full.push(pages, old)?;
            }
        }
        c.set_active(phys, virt, bits);
        if c.mode == MODE_DEBUG && c.debug.contains(super::DebugFlags::SANITY) {
            self.debug_scan_slab(mem, ix, phys, bits);
        }
        Ok(())
    }

    /// The free bitmap of partial slab `head` (just unlinked) for activation, `None`
    /// if it cannot be used (quarantined, or full after a debug rebuild).
    fn take_bitmap<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        head: u32,
    ) -> Result<Option<u128>, MmError> {
        let c = &mut self.caches[ix as usize];
        if c.lay.in_page() {
            let p = page_mut(pages, head)?;
            let bits = p.count;
            p.count = 0;
            c.nonactive_free -= bits.count_ones() as u64;
            return Ok(Some(bits as u128));
        }
        let bits = match self.check_header(mem, pages, ix, head)? {
            Header::Ok(bits) => bits,
            Header::Corrupt if self.caches[ix as usize].mode == MODE_DEBUG => {
                self.rebuild_header(mem, pages, ix, head)?
            }
            Header::Corrupt => {
                self.quarantine(pages, head)?;
                return Ok(None);
            }
        };
        let c = &mut self.caches[ix as usize];
        if bits == 0 {
            c.full.push(pages, head)?;
            return Ok(None);
        }
        c.nonactive_free -= bits.count_ones() as u64;
        // While active the bitmap lives in the cache; the header says "all in use"
        // so that it is right again when the slab is retired exhausted.
        write_header(mem, Pfn(head).phys(), 0, c.lay.objs);
        Ok(Some(bits))
    }

    /// Reads and checks the header bitmap of slab `head`: no bit outside the object
    /// slots, and as many free bits as the in-use count in its head page says.
    /// Reports a failure.
    pub(super) fn check_header<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        head: u32,
    ) -> Result<Header, MmError> {
        let l = self.caches[ix as usize].lay;
        let inuse = page_mut(pages, head)?.count & 0xffff;
        let base = Pfn(head).phys();
        let bits = read_header(mem, base, l.objs);
        if bits & !l.full_mask == 0 && bits.count_ones() + inuse == l.usable() {
            return Ok(Header::Ok(bits));
        }
        let f = Finding {
            kind: SlabErrorKind::FreePointerCorrupt,
            slot_phys: base,
            offset: 0,
            expected: 0,
            found: 0,
        };
        self.report(mem, ix, f);
        Ok(Header::Corrupt)
    }

    /// Quarantines header slab `head` (off every list): never allocated from again;
    /// frees into it are only counted; released when its count reaches 0.
    pub(super) fn quarantine<P: PageProvider>(
        &mut self,
        pages: &mut P,
        head: u32,
    ) -> Result<(), MmError> {
        let p = page_mut(pages, head)?;
        p.count = (p.count & 0xffff) | QUARANTINE;
        Ok(())
    }

    /// A new slab for cache `ix`: pages set up, debug slots and constructors run.
    fn grow<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
    ) -> Result<u32, MmError> {
        let c = &self.caches[ix as usize];
        let (l, dma, mode, ctor) = (c.lay, c.dma, c.mode, c.ctor);
        let head = pages.alloc_slab_block(l.order, dma)?;
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
            } else {
                p.set_state(PageState::Tail);
                p.next = head.0;
            }
        }
        if !l.in_page() {
            write_header(mem, phys, 0, l.objs);
        }
        self.caches[ix as usize].nr_slabs += 1;
        for i in l.first as u64..l.objs as u64 {
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

    #[inline(never)]
    pub(super) fn free_slow<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        loc: Loc,
        virt: u64,
        site: &'static Location<'static>,
    ) -> Result<(), MmError> {
        if self.caches[loc.ix as usize].mode == MODE_DEBUG {
            self.debug_free_slot(mem, pages, loc, virt, site)?;
        }
        self.free_to_slab(mem, pages, loc, virt, true)
    }

    /// Marks a located object free: into the reuse table if `use_q` and its entry is
    /// empty, else in its slab's bitmap. Checks for a double free before changing
    /// anything.
    #[inline(always)]
    pub(super) fn free_to_slab<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        loc: Loc,
        virt: u64,
        use_q: bool,
    ) -> Result<(), MmError> {
        let c = &mut self.caches[loc.ix as usize];
        let slot = qslot(loc.phys, c.shift);
        let e = c.q_get(slot);
        if e == virt {
            return Err(MmError::ObjectDoubleFree(virt));
        }
        let use_q = use_q && c.uses_q() && e == 0;
        if loc.head_phys() != c.active_phys {
            if use_q && !self.is_free(mem, pages, loc, virt)? {
                let c = &mut self.caches[loc.ix as usize];
                c.q_put(slot, virt);
                return Ok(());
            }
            return self.free_inactive(mem, pages, loc, virt);
        }
        let w = (loc.idx >> 6) as usize & 1;
        let bit = 1u64 << (loc.idx & 63);
        if c.words[w] & bit != 0 {
            return Err(MmError::ObjectDoubleFree(virt));
        }
        if use_q {
            c.q_put(slot, virt);
            return Ok(());
        }
        c.words[w] |= bit;
        if c.release_empty && c.active_bits() == c.lay.full_mask {
            c.set_active(NO_SLAB, 0, 0);
            return self.release_slab(pages, loc.ix, loc.head());
        }
        Ok(())
    }

    /// Free into the bitmap of a slab that is not the active one. The caller has
    /// checked that the object is not in the reuse table.
    #[inline(always)]
    pub(super) fn free_inactive<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        loc: Loc,
        virt: u64,
    ) -> Result<(), MmError> {
        let ix = loc.ix;
        let head = loc.head();
        let c = &mut self.caches[ix as usize];
        let l = c.lay;
        let debug = c.mode == MODE_DEBUG;
        let p = page_mut(pages, head)?;
        if l.in_page() {
            let b = p.count;
            let bit = 1u32 << loc.idx;
            if b & bit != 0 {
                return Err(MmError::ObjectDoubleFree(virt));
            }
            let nb = b | bit;
            if nb as u128 == l.full_mask {
                // Empty now: back to the page provider.
                if b != 0 {
                    c.partial.unlink(pages, head)?;
                } else if debug {
                    c.full.unlink(pages, head)?;
                }
                c.nonactive_free -= b.count_ones() as u64;
                return self.release_slab(pages, ix, head);
            }
            p.count = nb;
            c.nonactive_free += 1;
            if b == 0 {
                if debug {
                    c.full.unlink(pages, head)?;
                }
                c.partial.push(pages, head)?;
            }
            return Ok(());
        }
        // Header slab.
        let meta = p.count;
        let inuse = meta & 0xffff;
        if meta & QUARANTINE != 0 {
            c.nonactive_free += 1;
            if inuse <= 1 {
                c.nonactive_free -= l.usable() as u64;
                return self.release_slab(pages, ix, head);
            }
            p.count = meta - 1;
            return Ok(());
        }
        let at = loc.head_phys() + (loc.idx as u64 / 64) * 8;
        let word = mem.read_u64(at);
        let bit = 1u64 << (loc.idx % 64);
        if word & bit != 0 {
            return Err(MmError::ObjectDoubleFree(virt));
        }
        if inuse <= 1 {
            if inuse < l.usable() {
                c.partial.unlink(pages, head)?;
            } else if debug {
                c.full.unlink(pages, head)?;
            }
            c.nonactive_free -= (l.usable() - inuse) as u64;
            return self.release_slab(pages, ix, head);
        }
        mem.write_u64(at, word | bit);
        p.count = meta - 1;
        c.nonactive_free += 1;
        if inuse == l.usable() {
            if debug {
                c.full.unlink(pages, head)?;
            }
            c.partial.push(pages, head)?;
        }
        Ok(())
    }

    /// Gives a slab (off every list, not active) back to the page provider.
    pub(super) fn release_slab<P: PageProvider>(
        &mut self,
        pages: &mut P,
        ix: u8,
        head: u32,
    ) -> Result<(), MmError> {
        let c = &mut self.caches[ix as usize];
        let order = c.lay.order;
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

    /// Gives back every slab of a cache without live objects (destroy, layout change).
    pub(super) fn release_all<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
    ) -> Result<(), MmError> {
        // Objects of the reuse table may keep full slabs (on no list) alive.
        self.flush_q(mem, pages, ix)?;
        let c = &mut self.caches[ix as usize];
        if c.active_phys != NO_SLAB {
            let head = (c.active_phys >> 12) as u32;
            c.set_active(NO_SLAB, 0, 0);
            self.release_slab(pages, ix, head)?;
        }
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
                c.nonactive_free = 0;
                return Ok(());
            };
            self.release_slab(pages, ix, head)?;
        }
    }

    /// Puts the objects of the reuse table back into their slabs (slabs that become
    /// empty go back), then gives back the active slab if it is empty. Returns the
    /// number of slabs released.
    pub(super) fn shrink_ix<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
    ) -> Result<u64, MmError> {
        let before = self.caches[ix as usize].nr_slabs;
        self.flush_q(mem, pages, ix)?;
        let c = &mut self.caches[ix as usize];
        if c.active_phys != NO_SLAB && c.active_bits() == c.lay.full_mask {
            let head = (c.active_phys >> 12) as u32;
            c.set_active(NO_SLAB, 0, 0);
            self.release_slab(pages, ix, head)?;
        }
        Ok(before - self.caches[ix as usize].nr_slabs)
    }

    /// Puts the objects of the reuse table back into their slabs' bitmaps.
    pub(super) fn flush_q<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
    ) -> Result<(), MmError> {
        while let Some(v) = self.caches[ix as usize].qpop() {
            let loc = self.locate(mem, pages, v)?;
            self.free_to_slab(mem, pages, loc, v, false)?;
        }
        Ok(())
    }
}

/// Reads the free bitmap in the header slot of the slab at `base`.
pub(super) fn read_header<M: PhysMem>(mem: &M, base: u64, objs: u32) -> u128 {
    let lo = mem.read_u64(base) as u128;
    if objs > 64 {
        lo | (mem.read_u64(base + 8) as u128) << 64
    } else {
        lo
    }
}

/// Writes the free bitmap in the header slot of the slab at `base`.
pub(super) fn write_header<M: PhysMem>(mem: &mut M, base: u64, bits: u128, objs: u32) {
    mem.write_u64(base, bits as u64);
    if objs > 64 {
        mem.write_u64(base + 8, (bits >> 64) as u64);
    }
}
