//! Linux's bulk object APIs, `kmem_cache_alloc_bulk` and `kmem_cache_free_bulk`:
//! many objects of one cache in one call. Each object goes through the same fast
//! path (magazine pop / push) and the same checked slow path as the single-object
//! calls, so every misuse those detect is detected here too; the batch saves the
//! per-call cache lookup and keeps the loop over the magazine tight.

use core::panic::Location;

use super::{pack, CacheId, Slab};
use crate::buddy::BulkError;
use crate::{Gfp, MmError, PageProvider, PhysMem};

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
        let fast = gfp.0 & Gfp::ZERO.0 == 0;
        let req = self.caches[ix as usize].size as u64;
        for i in 0..out.len() {
            let got = match fast {
                true => self.alloc_fast(mem, pages, ix as usize),
                false => None,
            };
            out[i] = match got {
                Some(v) => v,
                None => match self.alloc_slow_packed(mem, pages, pack(ix, req, gfp), site) {
                    Ok(v) => v,
                    Err(e) => {
                        for &v in out[..i].iter().rev() {
                            let r = self.free_obj(mem, pages, v, ix, site);
                            debug_assert!(r.is_ok());
                        }
                        return Err(e);
                    }
                },
            };
        }
        Ok(out.len())
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
        for (i, &v) in objs.iter().enumerate() {
            if self.free_fast(mem, pages, v, ix) {
                continue;
            }
            if let Err(err) = self.free_checked(mem, pages, v, ix, site) {
                return Err(BulkError { done: i, err });
            }
        }
        Ok(())
    }
}
