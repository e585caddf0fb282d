//! Linux's bulk object APIs, `kmem_cache_alloc_bulk` and `kmem_cache_free_bulk`:
//! many objects of one cache in one call, through the batched slow paths.
//!
//! Allocation empties the magazine into the caller's array, then fills the rest
//! straight from slabs (every available object of a partial slab in one bitmap
//! scan, new slabs from their stride, as a magazine refill does). Freeing fills the
//! magazine, then gives each run of objects of one slab straight back to it (one
//! count update per run, as a magazine flush does). Every object freed passes the
//! checks of `kmem_cache_free`'s fast path (its frame belongs to the cache and
//! its liveness bit is set: a live object starts there); one that fails them
//! takes `kmem_cache_free`'s complete path, which reports the misuse, so
//! everything the single-object calls detect is detected here too. Caches
//! without magazine (debug caches, slabs above 32 KiB, `failslab` armed) and
//! `__GFP_ZERO` take the single-object paths for each object.

use core::panic::Location;

use super::slow::mark_live;
use super::{pack, CacheId, Slab, GRANULE_SHIFT};
use crate::buddy::BulkError;
use crate::{Gfp, MmError, PageProvider, PhysMem, PAGE_SHIFT};

impl Slab {
    /// Linux `kmem_cache_alloc_bulk(cache, gfp, size, p)`: fills all of `out` with
    /// objects of `cache` and returns `out.len()`, or fails having allocated
    /// nothing (as Linux, all or nothing: the objects taken before the failure are
    /// freed again). `__GFP_ZERO` zeroes each object (refused with `Invalid` on a
    /// cache with a constructor).
    ///
    /// Errors: `NotFound` for a stale or unknown cache; the errors of
    /// `kmem_cache_alloc` (`OutOfMemory`, also when `failslab` injects it).
    #[track_caller]
    pub fn kmem_cache_alloc_bulk<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        cache: CacheId,
        gfp: Gfp,
        out: &mut [u64],
    ) -> Result<usize, MmError> {
        let ix = self.check_id(cache)?;
        let site = Location::caller();
        let c = &mut self.caches[ix as usize];
        let batched = gfp.0 & Gfp::ZERO.0 == 0 && c.cap != 0;
        let mut i = 0;
        if batched {
            // The magazine, newest first (the order of single allocations).
            let off = mem.direct_offset();
            let k = c.n.min(out.len());
            for (d, &v) in out[..k].iter_mut().zip(c.mag[c.n - k..c.n].iter().rev()) {
                *d = v;
            }
            c.n -= k;
            mark_live(pages.slab_bits_mut(), &out[..k], off);
            i = k;
            // Then straight from the slabs (the magazine is empty).
            while i < out.len() {
                let want = out.len() - i;
                match self.take_objects(mem, pages, ix, gfp, Some(&mut out[i..]), want) {
                    Ok(k) => i += k,
                    Err(e) => return Err(self.unwind_bulk(mem, pages, ix, &out[..i], e, site)),
                }
            }
            return Ok(out.len());
        }
        let req = self.caches[ix as usize].size as u64;
        while i < out.len() {
            match self.alloc_slow_packed(mem, pages, pack(ix, req, gfp), site) {
                Ok(v) => out[i] = v,
                Err(e) => return Err(self.unwind_bulk(mem, pages, ix, &out[..i], e, site)),
            }
            i += 1;
        }
        Ok(out.len())
    }

    /// Frees the objects a failed `kmem_cache_alloc_bulk` took, newest first, and
    /// returns its error.
    #[cold]
    fn unwind_bulk<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
        taken: &[u64],
        e: MmError,
        site: &'static Location<'static>,
    ) -> MmError {
        for &v in taken.iter().rev() {
            let r = self.free_obj(mem, pages, v, ix, site);
            debug_assert!(r.is_ok());
        }
        e
    }

    /// Linux `kmem_cache_free_bulk(cache, size, p)`: `kmem_cache_free` of every
    /// entry of `objs`, in order (0 entries are skipped, as `kmem_cache_free(0)`).
    /// The first misuse stops the batch: [`BulkError`] says how many entries were
    /// freed before it and the error `kmem_cache_free` gives for it (`WrongCache`,
    /// `ObjectDoubleFree` — also for an object listed twice —, `InvalidFree`);
    /// that entry and the ones after it are untouched.
    ///
    /// Errors: `NotFound` (as `BulkError { done: 0 }`) for a stale or unknown cache.
    #[track_caller]
    pub fn kmem_cache_free_bulk<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        cache: CacheId,
        objs: &[u64],
    ) -> Result<(), BulkError> {
        let ix = self
            .check_id(cache)
            .map_err(|err| BulkError { done: 0, err })?;
        let site = Location::caller();
        let mut i = 0;
        // Into the magazine while it has room (and the objects pass its checks).
        while i < objs.len() && self.free_fast(mem, pages, objs[i], ix) {
            i += 1;
        }
        let c = &self.caches[ix as usize];
        let (off, mask, batched) = (mem.direct_offset(), c.mask, c.cap != 0);
        // The pending run: `run` objects of the slab at physical address `base`
        // (1: none), bits already clear.
        let (mut base, mut run) = (1u64, 0u32);
        while i < objs.len() {
            let v = objs[i];
            if batched {
                if let Some(phys) = clear_live(pages, v, ix, off, mask, base) {
                    let b = phys & !mask;
                    if b != base {
                        if run != 0 {
                            self.put_back_n(pages, ix, (base >> PAGE_SHIFT) as u32, run)
                                .map_err(|err| BulkError { done: i, err })?;
                        }
                        (base, run) = (b, 0);
                    }
                    run += 1;
                    i += 1;
                    continue;
                }
            }
            // Not a live object of this cache (or no magazine): the complete
            // path, after the pending run (so that it sees the slabs as they are).
            if run != 0 {
                self.put_back_n(pages, ix, (base >> PAGE_SHIFT) as u32, run)
                    .map_err(|err| BulkError { done: i, err })?;
                (base, run) = (1, 0);
            }
            self.free_checked(mem, pages, v, ix, site)
                .map_err(|err| BulkError { done: i, err })?;
            i += 1;
        }
        if run != 0 {
            self.put_back_n(pages, ix, (base >> PAGE_SHIFT) as u32, run)
                .map_err(|err| BulkError { done: i, err })?;
        }
        Ok(())
    }
}

/// The checks of the free fast path without the magazine: if `virt` (direct map
/// at `off`) is the start of a live object of cache `ix` (its frame belongs to
/// `ix` and its liveness bit is set), clears its bit and returns its physical
/// address; otherwise changes nothing. `known`: the physical address of a slab
/// of `ix` that cannot go away meanwhile (the pending run's); an object inside
/// it (`phys & !mask == known`) needs no `struct Page` read.
#[inline(always)]
fn clear_live<P: PageProvider>(
    pages: &mut P,
    virt: u64,
    ix: u8,
    off: u64,
    mask: u64,
    known: u64,
) -> Option<u64> {
    let phys = virt.wrapping_sub(off);
    // As in `free_fast`: a pointer that is not 32-aligned fails the bounds checks.
    let g = phys.rotate_right(GRANULE_SHIFT);
    if phys & !mask != known
        && pages.slab_cache_at((g >> (PAGE_SHIFT - GRANULE_SHIFT)) as usize)? != ix
    {
        return None;
    }
    let word = pages.slab_bits_mut().get_mut((g >> 6) as usize)?;
    let bit = (g & 63) as u32;
    if *word >> bit & 1 == 0 {
        return None;
    }
    *word &= (!1u64).rotate_left(bit);
    Some(phys)
}
