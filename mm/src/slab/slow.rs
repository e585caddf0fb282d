//! The out-of-line paths: refilling and flushing magazines, taking objects from
//! and returning them to slabs, making and releasing slabs.

use core::panic::Location;

use super::{bit_of, is_live, page_mut, set_live, Loc, Slab, GRANULE_SHIFT, MODE_DEBUG};
use crate::{Gfp, MmError, PageProvider, PageState, Pfn, PhysMem, NIL, PAGE_SHIFT};

/// Most bytes of new slabs one magazine refill makes.
pub(super) const REFILL_GROW_BYTES: u64 = 64 << 10;

/// How many new slabs a refill of `target` objects of a cache with slabs of
/// `objs` objects and `slab_bytes` bytes may make: as many as the refill fills,
/// up to [`REFILL_GROW_BYTES`], at least one.
fn refill_slabs(target: usize, objs: u32, slab_bytes: u64) -> usize {
    (target / objs as usize)
        .min((REFILL_GROW_BYTES / slab_bytes) as usize)
        .max(1)
}

/// Writes `hi`, `hi - stride`, `hi - 2 * stride` ... to `dst` (four per step).
#[inline]
fn fill_down(dst: &mut [u64], hi: u64, stride: u64) {
    let mut v = hi;
    let mut quads = dst.chunks_exact_mut(4);
    for q in &mut quads {
        q[0] = v;
        q[1] = v - stride;
        q[2] = v - 2 * stride;
        q[3] = v - 3 * stride;
        v = v.wrapping_sub(4 * stride);
    }
    for x in quads.into_remainder() {
        *x = v;
        v = v.wrapping_sub(stride);
    }
}

/// Writes `lo`, `lo + stride`, `lo + 2 * stride` ... to `dst` (four per step).
#[inline]
fn fill_up(dst: &mut [u64], lo: u64, stride: u64) {
    let mut v = lo;
    let mut quads = dst.chunks_exact_mut(4);
    for q in &mut quads {
        q[0] = v;
        q[1] = v + stride;
        q[2] = v + 2 * stride;
        q[3] = v + 3 * stride;
        v += 4 * stride;
    }
    for x in quads.into_remainder() {
        *x = v;
        v += stride;
    }
}

/// Sets the liveness bits of the `n` objects at `phys`, `phys + stride` ...
/// (`phys` a multiple of `stride`): word by word for power-of-two strides up to
/// a word's 2 KiB (the bits repeat every `stride / 32`), else one by one.
#[inline]
fn mark_run_live(bits: &mut [u64], phys: u64, n: usize, stride: u64) {
    if n == 0 {
        return;
    }
    if !(stride.is_power_of_two() && stride <= 1 << super::WORD_SHIFT) {
        for i in 0..n as u64 {
            set_bit(bits, phys + i * stride);
        }
        return;
    }
    let step = stride >> GRANULE_SHIFT;
    let pattern = slot_pattern(step);
    let g0 = phys >> GRANULE_SHIFT;
    // The last object's granule.
    let g1 = g0 + (n as u64 - 1) * step;
    let lo = !0u64 << (g0 & 63);
    let hi = !0u64 >> (63 - (g1 & 63));
    if let Some(ws) = bits.get_mut((g0 >> 6) as usize..=(g1 >> 6) as usize) {
        match ws {
            [one] => *one |= pattern & lo & hi,
            [first, mid @ .., last] => {
                *first |= pattern & lo;
                for x in mid {
                    *x |= pattern;
                }
                *last |= pattern & hi;
            }
            [] => {}
        }
    }
}

/// The bits of a bitmap word that start slots `step` granules apart (a power of
/// two, 1..=64): bit 0, `step`, `2 * step`... (`!0 / (2^step - 1)` repeats a 1
/// every `step` bits).
#[inline(always)]
const fn slot_pattern(step: u64) -> u64 {
    if step >= 64 {
        1
    } else {
        u64::MAX / ((1u64 << step) - 1)
    }
}

/// Sets the liveness bit of the object at `phys`.
#[inline(always)]
fn set_bit(bits: &mut [u64], phys: u64) {
    let (w, b) = bit_of(phys);
    if let Some(x) = bits.get_mut(w) {
        *x |= b;
    }
}

/// Sets the liveness bits of the objects at virtual addresses `objs` (direct map
/// at `off`).
#[inline]
pub(super) fn mark_live(bits: &mut [u64], objs: &[u64], off: u64) {
    for &v in objs {
        let g = v.wrapping_sub(off) >> GRANULE_SHIFT;
        if let Some(w) = bits.get_mut((g >> 6) as usize) {
            *w |= 1 << (g & 63);
        }
    }
}

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

    /// Refills the empty magazine of cache `ix` with up to half its capacity,
    /// written in its final order (lowest address on top: a run of allocations
    /// goes up through a slab): the available objects of the partial slabs, or, if
    /// there are none, whole new slabs (as many as half the magazine holds, up to
    /// 64 KiB: [`refill_slabs`]; or one slab holding more than half the magazine
    /// if the whole magazine holds it, so that the refill never leaves a new slab
    /// partial to be scanned later). Every clear bit of a slab's slots is then an
    /// available object (the magazine is empty).
    pub(super) fn refill<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        gfp: Gfp,
    ) -> Result<(), MmError> {
        let c = &self.caches[ix as usize];
        debug_assert_eq!(c.n, 0);
        let mut target = (c.cap / 2).clamp(1, super::MAG);
        if c.partial.head == NIL {
            // New slabs only: no more than they hold (no moving down after).
            let slabs = refill_slabs(target, c.objs, c.lay.slab_bytes());
            target = target.min(slabs * c.objs as usize);
            // A slab of more than half the magazine: the whole slab, if it fits.
            if c.objs as usize > target && c.objs as usize <= c.cap {
                target = c.objs as usize;
            }
        }
        let got = self.take_objects(mem, pages, ix, gfp, None, target)?;
        let c = &mut self.caches[ix as usize];
        if got < target {
            c.mag.copy_within(target - got..target, 0);
        }
        c.n = got;
        Ok(())
    }

    /// Takes up to `want` available objects of cache `ix` (its magazine empty)
    /// and writes their virtual addresses, lowest first, to `out[..]` (bits set:
    /// the objects are live) or, with `out = None`, downwards from `mag[want - 1]`
    /// (bits left clear). Partial slabs first, then new slabs: for a refill only
    /// if there was no partial slab (`refill` then sizes `want` to the slabs it
    /// may make, [`refill_slabs`]); for `out`, as many as needed. A new slab is never scanned: its slots are written from
    /// the stride, and it joins the partial list only if some remain. Returns how
    /// many were taken (>= 1), or the error of the first source when none was.
    pub(super) fn take_objects<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        gfp: Gfp,
        mut out: Option<&mut [u64]>,
        want: usize,
    ) -> Result<usize, MmError> {
        let off = mem.direct_offset();
        let live = out.is_some();
        let mut got = 0usize;
        let had_partial = self.caches[ix as usize].partial.head != NIL;
        // Partial slabs: every available object of each, in one scan.
        while got < want {
            let c = &mut self.caches[ix as usize];
            let head = c.partial.head;
            if head == NIL {
                break;
            }
            let avail = page_mut(pages, head)?.count;
            let max = avail.min((want - got) as u32);
            let (stride, objs) = (c.stride as u64, c.objs);
            let bits = pages.slab_bits();
            // Into `out[got..]` upwards, or `mag[..want - got]` from its top down.
            let k = match out {
                Some(ref mut o) => {
                    let d = &mut o[got..got + max as usize];
                    scan_into(bits, head, stride, objs, d, off, false)
                }
                None => {
                    let top = want - got;
                    let d = &mut c.mag[top - max as usize..top];
                    scan_into(bits, head, stride, objs, d, off, true)
                }
            };
            if k == 0 {
                // A partial slab without a free slot: its count is wrong.
                break;
            }
            if let Some(ref o) = out {
                mark_live(pages.slab_bits_mut(), &o[got..got + k], off);
            }
            self.took(pages, ix, head, k as u32)?;
            got += k;
        }
        if got != 0 && (!live || got == want) {
            return Ok(got);
        }
        if had_partial && !live {
            return Err(MmError::Invalid("slab: partial slabs without free slots"));
        }
        // New slabs.
        // New slabs until `want` (a refill's is sized to the slabs it may make).
        while got < want {
            let head = match self.grow_taken(mem, pages, ix, gfp) {
                Ok(h) => h,
                Err(e) if got == 0 => return Err(e),
                Err(_) => break,
            };
            let c = &mut self.caches[ix as usize];
            let (stride, objs) = (c.stride as u64, c.objs as usize);
            let t = objs.min(want - got);
            let base = Pfn(head).phys() + off;
            match out {
                Some(ref mut o) => {
                    let d = &mut o[got..got + t];
                    fill_up(d, base, stride);
                    mark_run_live(pages.slab_bits_mut(), base - off, t, stride);
                }
                None => {
                    // mag[want - got - 1] is the slab's first slot, downwards.
                    let top = want - got;
                    fill_down(
                        &mut c.mag[top - t..top],
                        base + (t as u64 - 1) * stride,
                        stride,
                    );
                }
            }
            got += t;
            if t < objs {
                let left = (objs - t) as u32;
                page_mut(pages, head)?.count = left;
                let c = &mut self.caches[ix as usize];
                c.avail += left as u64;
                c.partial.push(pages, head)?;
            }
        }
        Ok(got)
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
    /// in its slab ([`put_back_n`](Self::put_back_n)).
    pub(super) fn put_back<P: PageProvider>(
        &mut self,
        pages: &mut P,
        ix: u8,
        phys: u64,
    ) -> Result<(), MmError> {
        let head = ((phys & !self.caches[ix as usize].mask) >> PAGE_SHIFT) as u32;
        self.put_back_n(pages, ix, head, 1)
    }

    /// Makes `k` objects of slab `head` (their bits already clear, not in the
    /// magazine) available in it: one count update; the slab joins the partial
    /// list on its first available objects; a slab whose objects are all available
    /// becomes the cache's spare, or goes back to the page provider if there is
    /// one already.
    pub(super) fn put_back_n<P: PageProvider>(
        &mut self,
        pages: &mut P,
        ix: u8,
        head: u32,
        k: u32,
    ) -> Result<(), MmError> {
        let c = &mut self.caches[ix as usize];
        let p = page_mut(pages, head)?;
        let before = p.count;
        let after = before + k;
        if after > c.objs {
            return Err(MmError::Invalid("slab: more available objects than slots"));
        }
        if after == c.objs && (c.spare != NIL || c.lay.order > 3) {
            // Every object available and a spare already kept: straight back to
            // the provider (never onto the partial list).
            if before != 0 {
                c.partial.unlink(pages, head)?;
                c.avail -= before as u64;
            } else if c.mode == MODE_DEBUG {
                c.full.unlink(pages, head)?;
            }
            return self.release_slab(pages, ix, head);
        }
        p.count = after;
        c.avail += k as u64;
        if before == 0 {
            if c.mode == MODE_DEBUG {
                c.full.unlink(pages, head)?;
            }
            c.partial.push(pages, head)?;
        }
        if after == c.objs {
            c.spare = head;
        }
        Ok(())
    }

    /// Moves the `k` oldest objects of the magazine of cache `ix` back to their
    /// slabs: each run of consecutive objects of one slab is one
    /// [`put_back_n`](Self::put_back_n).
    pub(super) fn flush<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        k: usize,
    ) -> Result<(), MmError> {
        let off = mem.direct_offset();
        let c = &self.caches[ix as usize];
        let k = k.min(c.n);
        let order = c.lay.order;
        // With a slab-aligned direct-map offset, two objects are in one slab
        // exactly when their virtual addresses agree above the slab mask.
        let chunks = off & c.mask == 0;
        let mut i = 0;
        while i < k {
            let c = &self.caches[ix as usize];
            let (mag, mask) = (&c.mag[..k], c.mask);
            let first = mag[i];
            let mut j = i + 1;
            if chunks {
                while let Some(m) = mag.get(j..j + 4) {
                    if ((m[0] ^ first) | (m[1] ^ first) | (m[2] ^ first) | (m[3] ^ first)) & !mask
                        != 0
                    {
                        break;
                    }
                    j += 4;
                }
            }
            let key = first.wrapping_sub(off) & !mask;
            while j < k && mag[j].wrapping_sub(off) & !mask == key {
                j += 1;
            }
            let head = (key >> PAGE_SHIFT) as u32;
            debug_assert_eq!(head & ((1 << order) - 1), 0);
            self.put_back_n(pages, ix, head, (j - i) as u32)?;
            i = j;
        }
        let c = &mut self.caches[ix as usize];
        c.mag.copy_within(k..c.n, 0);
        c.n -= k;
        Ok(())
    }

    /// A new slab for cache `ix` (on the partial list, every object available).
    fn grow<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        gfp: Gfp,
    ) -> Result<u32, MmError> {
        let head = self.grow_taken(mem, pages, ix, gfp)?;
        let c = &mut self.caches[ix as usize];
        let objs = c.objs;
        c.avail += objs as u64;
        page_mut(pages, head)?.count = objs;
        c.partial.push(pages, head)?;
        Ok(head)
    }

    /// A new slab for cache `ix` whose objects are all taken (count 0, on no
    /// list; their bits clear): pages set up, debug slots and constructors run.
    /// Only `Gfp::MEMALLOC` of `gfp` matters: the zones are the cache's.
    fn grow_taken<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        gfp: Gfp,
    ) -> Result<u32, MmError> {
        let c = &self.caches[ix as usize];
        let (order, dma, mode, ctor) = (c.lay.order, c.dma, c.mode, c.ctor);
        let zones = if dma { Gfp::DMA } else { Gfp::KERNEL };
        let head = pages.alloc_slab_block(order, zones | Gfp(gfp.0 & Gfp::MEMALLOC.0))?;
        let phys = head.phys();
        let Some(virt) = mem.virt_of(phys) else {
            pages.free_slab_block(head, order)?;
            return Err(MmError::OutOfMemory);
        };
        // Head: cache, no available object, no links. Tails: state, head, cache
        // (their other fields are not read).
        let p = page_mut(pages, head.0)?;
        p.slab_cache = ix;
        p.count = 0;
        p.next = NIL;
        p.prev = NIL;
        for i in 1..1u32 << order {
            let p = page_mut(pages, head.0 + i)?;
            p.slab_cache = ix;
            p.set_state(PageState::Tail);
            p.next = head.0;
        }
        self.caches[ix as usize].nr_slabs += 1;
        if mode == MODE_DEBUG || ctor.is_some() {
            let l = self.caches[ix as usize].lay;
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
            let half = (c.cap - c.cap / 4).max(1);
            self.flush(mem, pages, ix, half)?;
        }
        set_live(pages, loc.phys, false);
        let c = &mut self.caches[ix as usize];
        c.mag[c.n % super::MAG] = virt;
        c.n += 1;
        Ok(())
    }

    /// Gives a slab (off every list, every object available) back to the page
    /// provider. Only what must change is written: the head's fields and every
    /// page's cache number (0 before the block goes back).
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
        let p = page_mut(pages, head)?;
        p.slab_cache = 0;
        p.count = 0;
        p.next = NIL;
        p.prev = NIL;
        for i in 1..1u32 << order {
            page_mut(pages, head + i)?.slab_cache = 0;
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

/// Writes the virtual addresses (direct map at `off`) of up to `dst.len()` free
/// slots (clear liveness bit) of the slab at PFN `head` with `objs` slots of
/// `stride` bytes, lowest first, to `dst` upwards from `dst[0]` or, with `down`,
/// downwards from its last entry. Returns how many were written. A bitmap word
/// whose slots are all free is written from the stride, without a bit scan (the
/// free tail of a new slab, a slab given back in one run).
#[inline]
fn scan_into(
    bits: &[u64],
    head: u32,
    stride: u64,
    objs: u32,
    dst: &mut [u64],
    off: u64,
    down: bool,
) -> usize {
    let max = dst.len();
    if max == 0 {
        return 0;
    }
    let base = Pfn(head).phys();
    let end = base + objs as u64 * stride;
    let mut k = 0usize;
    let put = |dst: &mut [u64], k: usize, v: u64| {
        let i = if down { max - 1 - k } else { k };
        if let Some(d) = dst.get_mut(i) {
            *d = v;
        }
    };
    if !(stride.is_power_of_two() && stride <= 1 << super::WORD_SHIFT) {
        let mut p = base;
        while p < end && k < max {
            let (w, b) = bit_of(p);
            if bits.get(w).is_some_and(|&x| x & b == 0) {
                put(dst, k, p + off);
                k += 1;
            }
            p += stride;
        }
        return k;
    }
    // Word by word: the slots' bits repeat every stride / 32 bits. Words
    // `..full` hold `per_word` slots each, a last partial word `last_n`.
    let step = stride >> GRANULE_SHIFT;
    let pattern = slot_pattern(step);
    let per_word = (64 / step) as usize;
    let (w0, _) = bit_of(base);
    let full = objs as usize / per_word;
    let last_n = objs as usize % per_word;
    let words = full + (last_n != 0) as usize;
    let Some(ws) = bits.get(w0..w0 + words) else {
        return 0;
    };
    for (w, &word) in ws.iter().enumerate() {
        let (slots, n) = if w < full {
            (pattern, per_word)
        } else {
            (pattern & !(!0u64 << (last_n as u64 * step)), last_n)
        };
        let mut free = !word & slots;
        if free == 0 {
            continue;
        }
        let wbase = base + ((w as u64) << super::WORD_SHIFT) + off;
        if free == slots {
            let n = n.min(max - k);
            if down {
                fill_down(
                    &mut dst[max - k - n..max - k],
                    wbase + (n as u64 - 1) * stride,
                    stride,
                );
            } else {
                fill_up(&mut dst[k..k + n], wbase, stride);
            }
            k += n;
        } else {
            while free != 0 && k < max {
                let p = wbase + ((free.trailing_zeros() as u64) << GRANULE_SHIFT);
                free &= free - 1;
                put(dst, k, p);
                k += 1;
            }
        }
        if k == max {
            break;
        }
    }
    k
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
        let pattern = slot_pattern(step);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_pattern_repeats_every_step() {
        for step in [1u64, 2, 4, 8, 16, 32, 64] {
            let mut want = 0u64;
            let mut b = 0;
            while b < 64 {
                want |= 1 << b;
                b += step;
            }
            assert_eq!(slot_pattern(step), want, "step {step}");
        }
    }

    #[test]
    fn mark_run_live_sets_exactly_the_run() {
        // Power-of-two strides (word by word) and others (one by one), runs
        // starting at any slot of an 8-page block and crossing words.
        for stride in [32u64, 64, 128, 256, 1024, 2048, 4096, 96, 3008] {
            let slots = (8 * 4096 / stride) as usize;
            for first in [0usize, 1, 3, slots / 2, slots - 1] {
                for n in [1usize, 2, 5, slots - first] {
                    if first + n > slots {
                        continue;
                    }
                    let base = 0x10_0000 + first as u64 * stride;
                    let mut bits = vec![0u64; 1024];
                    mark_run_live(&mut bits, base, n, stride);
                    let mut want = vec![0u64; 1024];
                    for i in 0..n as u64 {
                        set_bit(&mut want, base + i * stride);
                    }
                    assert_eq!(bits, want, "stride {stride} first {first} n {n}");
                }
            }
        }
    }

    #[test]
    fn scan_into_matches_scan_slab() {
        // Free slots written upwards or downwards, whole free words from the
        // stride, partial words bit by bit, capped at the destination's length;
        // the same slots as the closure scan, lowest first.
        let off = 0xffff_8000_0000_0000u64;
        for (stride, objs) in [
            (32u64, 128u32),
            (64, 128),
            (128, 128),
            (256, 128),
            (1024, 32),
            (2048, 16),
            (4096, 8),
            (96, 42),
            (64, 100),
            (3008, 10),
        ] {
            for seed in 0u64..12 {
                let mut bits = vec![0u64; 1024];
                let head = 0x100u32;
                let base = Pfn(head).phys();
                // Live objects: none, all, or a pattern from the seed.
                for i in 0..objs as u64 {
                    let live = match seed {
                        0 => false,
                        1 => true,
                        2 => i < objs as u64 / 2,
                        _ => (i * 7 + seed).wrapping_mul(0x9e37_79b9) >> 7 & 3 == 0,
                    };
                    if live {
                        set_bit(&mut bits, base + i * stride);
                    }
                }
                for max in [0usize, 1, 5, 31, 33, 64, 200] {
                    let mut want = Vec::new();
                    scan_slab(&bits, head, stride, objs, max as u32, |p| {
                        want.push(p + off)
                    });
                    for down in [false, true] {
                        let mut dst = vec![0u64; max];
                        let k = scan_into(&bits, head, stride, objs, &mut dst, off, down);
                        let got: Vec<u64> = if down {
                            dst[max - k..].iter().rev().copied().collect()
                        } else {
                            dst[..k].to_vec()
                        };
                        assert_eq!(
                            got, want,
                            "stride {stride} seed {seed} max {max} down {down}"
                        );
                        if down {
                            assert!(dst[..max - k].iter().all(|&x| x == 0));
                        } else {
                            assert!(dst[k..].iter().all(|&x| x == 0));
                        }
                    }
                }
            }
        }
    }
}
