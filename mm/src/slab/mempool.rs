//! Memory pools (Linux `mempool_t`): a reserve of pre-allocated elements that
//! allocation falls back to when the backing allocator fails.
//!
//! The reserve is a fixed array of [`MEMPOOL_MAX`] element addresses inside the
//! [`Mempool`] value (no heap), so `min_nr` is at most 64. The pool is owned by its
//! user; every operation goes through the [`Slab`] it was created with.

use core::panic::Location;

use super::{bad_size, kmalloc_ix, CacheId, Slab, KMALLOC_MAX};
use crate::{Gfp, MmError, PageProvider, PhysMem};

/// Largest `min_nr` of a pool.
pub const MEMPOOL_MAX: usize = 64;

/// Where a pool's elements come from (`alloc_fn`/`free_fn`/`pool_data` of Linux).
#[derive(Clone, Copy, Debug)]
pub enum PoolBacking {
    /// `mempool_create_kmalloc_pool(min_nr, size)`: `kmalloc(size)` / `kfree`.
    Kmalloc { size: usize },
    /// `mempool_create_slab_pool(min_nr, cache)`: `kmem_cache_alloc` / `kmem_cache_free`.
    Cache(CacheId),
    /// Any allocator: `alloc(gfp, data)` returns an element address or `None`,
    /// `free(element, data)` takes it back.
    Custom {
        alloc: fn(Gfp, u64) -> Option<u64>,
        free: fn(u64, u64),
        data: u64,
    },
}

/// A memory pool. Create it with [`Slab::mempool_create`].
#[derive(Clone, Debug)]
pub struct Mempool {
    backing: PoolBacking,
    min_nr: usize,
    reserve: [u64; MEMPOOL_MAX],
    curr_nr: usize,
    outstanding: u64,
    destroyed: bool,
}

impl Mempool {
    /// Elements the pool keeps in reserve.
    pub fn min_nr(&self) -> usize {
        self.min_nr
    }
    /// Elements in the reserve right now.
    pub fn curr_nr(&self) -> usize {
        self.curr_nr
    }
    /// Elements handed out and not yet freed.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }
    /// The backing allocator.
    pub fn backing(&self) -> PoolBacking {
        self.backing
    }
    /// True after a successful [`Slab::mempool_destroy`].
    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }
}

impl Slab {
    #[track_caller]
    fn backing_alloc<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        b: PoolBacking,
        gfp: Gfp,
    ) -> Result<u64, MmError> {
        match b {
            PoolBacking::Kmalloc { size } => self.kmalloc(mem, pages, size, gfp),
            PoolBacking::Cache(id) => self.kmem_cache_alloc(mem, pages, id, gfp),
            // The custom allocator gets the gfp flags (and so `__GFP_ZERO`) itself.
            PoolBacking::Custom { alloc, data, .. } => alloc(gfp, data).ok_or(MmError::OutOfMemory),
        }
    }

    #[track_caller]
    fn backing_free<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        b: PoolBacking,
        virt: u64,
    ) -> Result<(), MmError> {
        let site = Location::caller();
        match b {
            PoolBacking::Kmalloc { .. } => self.free_obj(mem, pages, virt, 0, site),
            PoolBacking::Cache(id) => self.kmem_cache_free(mem, pages, id, virt),
            PoolBacking::Custom { free, data, .. } => {
                free(virt, data);
                Ok(())
            }
        }
    }

    /// `mempool_create(min_nr, alloc_fn, free_fn, pool_data)`: a pool that keeps
    /// `min_nr` (0..=64) elements of `backing` in reserve, allocated now. Errors:
    /// `BadCount` (min_nr > 64), `BadSize` / `NotFound` (bad backing), `OutOfMemory`
    /// (then nothing stays allocated).
    #[track_caller]
    pub fn mempool_create<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        min_nr: usize,
        backing: PoolBacking,
    ) -> Result<Mempool, MmError> {
        if min_nr > MEMPOOL_MAX {
            return Err(MmError::BadCount {
                got: min_nr as u64,
                max: MEMPOOL_MAX as u64,
            });
        }
        match backing {
            PoolBacking::Kmalloc { size } if size == 0 || size > KMALLOC_MAX => {
                return Err(bad_size(size))
            }
            PoolBacking::Cache(id) => {
                self.check_id(id)?;
            }
            _ => {}
        }
        let mut pool = Mempool {
            backing,
            min_nr,
            reserve: [0; MEMPOOL_MAX],
            curr_nr: 0,
            outstanding: 0,
            destroyed: false,
        };
        while pool.curr_nr < min_nr {
            match self.backing_alloc(mem, pages, backing, Gfp::KERNEL) {
                Ok(v) => {
                    pool.reserve[pool.curr_nr] = v;
                    pool.curr_nr += 1;
                }
                Err(e) => {
                    for &v in &pool.reserve[..pool.curr_nr] {
                        self.backing_free(mem, pages, backing, v)?;
                    }
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// `mempool_alloc(pool, gfp)`: the backing allocator first; if it is out of
    /// memory, an element from the reserve (zeroed for `__GFP_ZERO` when it is a slab
    /// object; custom elements are not, their size is unknown). `OutOfMemory` when both are exhausted.
    #[track_caller]
    pub fn mempool_alloc<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        pool: &mut Mempool,
        gfp: Gfp,
    ) -> Result<u64, MmError> {
        if pool.destroyed {
            return Err(MmError::Invalid("mempool destroyed"));
        }
        let v = match self.backing_alloc(mem, pages, pool.backing, gfp) {
            Ok(v) => v,
            Err(MmError::OutOfMemory) if pool.curr_nr > 0 => {
                pool.curr_nr -= 1;
                let v = pool.reserve[pool.curr_nr];
                if gfp.contains(Gfp::ZERO) {
                    if let Ok(size) = self.ksize(mem, pages, v) {
                        if let Some(phys) = mem.phys_of(v) {
                            mem.fill(phys, size, 0);
                        }
                    }
                }
                v
            }
            Err(e) => return Err(e),
        };
        pool.outstanding += 1;
        Ok(v)
    }

    /// `mempool_free(element, pool)`: refills the reserve if it is below `min_nr`,
    /// else frees to the backing allocator. 0 is a no-op. Slab-backed elements are
    /// checked first (live object of the right cache, not already in the reserve):
    /// `InvalidFree`, `WrongCache`, `ObjectDoubleFree`; nothing changes on error.
    #[track_caller]
    pub fn mempool_free<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        pool: &mut Mempool,
        virt: u64,
    ) -> Result<(), MmError> {
        if virt == 0 {
            return Ok(());
        }
        if pool.destroyed {
            return Err(MmError::Invalid("mempool destroyed"));
        }
        if pool.reserve[..pool.curr_nr].contains(&virt) {
            return Err(MmError::ObjectDoubleFree(virt));
        }
        match pool.backing {
            PoolBacking::Kmalloc { size } => {
                let loc = self.locate(mem, pages, virt)?;
                if loc.ix != kmalloc_ix(size, false) && loc.ix != kmalloc_ix(size, true) {
                    return Err(MmError::WrongCache(virt));
                }
                if self.is_free(mem, pages, loc, virt)? {
                    return Err(MmError::ObjectDoubleFree(virt));
                }
            }
            PoolBacking::Cache(id) => {
                let ix = self.check_id(id)?;
                let loc = self.locate(mem, pages, virt)?;
                if loc.ix != ix {
                    return Err(MmError::WrongCache(virt));
                }
                if self.is_free(mem, pages, loc, virt)? {
                    return Err(MmError::ObjectDoubleFree(virt));
                }
            }
            PoolBacking::Custom { .. } => {}
        }
        if pool.outstanding == 0 {
            return Err(MmError::InvalidFree(virt));
        }
        if pool.curr_nr < pool.min_nr {
            pool.reserve[pool.curr_nr] = virt;
            pool.curr_nr += 1;
        } else {
            self.backing_free(mem, pages, pool.backing, virt)?;
        }
        pool.outstanding -= 1;
        Ok(())
    }

    /// `mempool_destroy(pool)`: refused with `CacheBusy { live }` while elements are
    /// outstanding (Linux requires all to be back); otherwise the reserve goes back to
    /// the backing allocator and the pool is marked destroyed (further use: `Invalid`).
    pub fn mempool_destroy<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        pool: &mut Mempool,
    ) -> Result<(), MmError> {
        if pool.destroyed {
            return Err(MmError::Invalid("mempool destroyed"));
        }
        if pool.outstanding != 0 {
            return Err(MmError::CacheBusy {
                live: pool.outstanding,
            });
        }
        while pool.curr_nr > 0 {
            let v = pool.reserve[pool.curr_nr - 1];
            self.backing_free(mem, pages, pool.backing, v)?;
            pool.curr_nr -= 1;
        }
        pool.destroyed = true;
        Ok(())
    }
}
