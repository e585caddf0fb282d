//! What the methods of [`SlabApi`](super::SlabApi) exchange, and the helpers
//! that [`Api`](super::Api) implements them with over [`mm::slab::Slab`].
//!
//! In memkern the slab allocator also backs the kernel heap, so code that holds
//! the slab lock must not allocate from the heap (it would deadlock). Nothing in
//! this module allocates: cache rows (`mm::slab::CacheInfo`), objects and reports
//! are `Copy` with inline names,
//! lists are read one row per call ([`SlabApi::slab_cache_at`](super::SlabApi::slab_cache_at),
//! [`SlabApi::slab_report_at`](super::SlabApi::slab_report_at)), and [`PoolTable`] is a
//! fixed array. [`Api`](super::Api) runs every helper inside the host's lock:
//!
//! ```text
//! fn kmalloc(&mut self, size: u64, gfp: Gfp) -> Result<KmallocObj, MmError> {
//!     self.host.log(format_args!("kmalloc({size}, {:#x})", gfp.0));
//!     self.host.slab_mut(|s, b, m| kmalloc_in(s, m, b, size, gfp))
//! }
//! fn slab_cache_at(&self, index: usize) -> Result<Option<CacheInfo>, MmError> {
//!     Ok(self.host.slab(|s, _, _| s.caches().nth(index)))
//! }
//! ```

use super::KmallocObj;
use alloc::string::String;
pub use mm::slab::{check_name, BadName};
use mm::slab::{
    CacheInfo, CacheName, Mempool, PoolBacking, Slab, SlabFlags, MAX_NAME, MEMPOOL_MAX,
};
use mm::{Gfp, MmError, PageProvider, PhysMem};

/// The cache called `name` (its `mm::slab::CacheInfo`, one row of `caches` and
/// `slabinfo`), for [`SlabApi::kmem_cache_info`](super::SlabApi::kmem_cache_info).
/// `NotFound` if there is none.
pub fn cache_named(slab: &Slab, name: &str) -> Result<CacheInfo, MmError> {
    let id = slab.find(name).ok_or(MmError::NotFound)?;
    slab.cache_info(id)
}

/// An object from `kmem_cache_alloc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabObj {
    /// Kernel virtual address.
    pub virt: u64,
    /// Physical address.
    pub phys: u64,
}

/// An element from `mempool_alloc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolElem {
    /// Kernel virtual address.
    pub virt: u64,
    /// Physical address.
    pub phys: u64,
    /// It came from the pool's reserve because the backing allocator failed.
    pub reserve: bool,
}

/// The state of a mempool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolInfo {
    /// Elements the pool keeps in reserve.
    pub min_nr: u64,
    /// Elements in the reserve now.
    pub curr_nr: u64,
    /// Elements handed out and not freed yet.
    pub outstanding: u64,
}

/// Where a mempool's elements come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolSource {
    /// `mempool_create_kmalloc_pool(min_nr, size)`: `kmalloc(size)` / `kfree`.
    Kmalloc {
        /// Bytes of an element.
        size: u64,
    },
    /// `mempool_create_slab_pool(min_nr, cache)`: `kmem_cache_alloc` /
    /// `kmem_cache_free` of the named cache.
    Cache(String),
}

/// What `bench kmalloc` measured (cycles from the kernel's clock, `rdtsc`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmallocBench {
    /// `kmalloc(80, GFP_KERNEL)` + `kfree` pairs run.
    pub pairs: u64,
    /// Cycles for all the pairs.
    pub pair_cycles: u64,
    /// Operations (allocations and frees) of the mixed workload.
    pub mixed_ops: u64,
    /// Cycles for the mixed workload.
    pub mixed_cycles: u64,
}

/// Sizes the mixed workload of [`bench_kmalloc_in`] allocates, chosen at random.
pub const BENCH_SIZES: [usize; 8] = [16, 32, 80, 128, 200, 512, 1000, 4096];
/// Objects the mixed workload keeps live at most.
pub const BENCH_LIVE: usize = 64;

fn bad_size(size: u64) -> MmError {
    MmError::BadSize {
        got: size,
        min: 1,
        max: mm::slab::KMALLOC_MAX as u64,
    }
}

/// `kmalloc(size, gfp)` with the object's `ksize` and physical address, for
/// [`SlabApi::kmalloc`](super::SlabApi::kmalloc).
#[track_caller]
pub fn kmalloc_in<M: PhysMem, P: PageProvider>(
    slab: &mut Slab,
    mem: &mut M,
    pages: &mut P,
    size: u64,
    gfp: Gfp,
) -> Result<KmallocObj, MmError> {
    let n = usize::try_from(size).map_err(|_| bad_size(size))?;
    let virt = slab.kmalloc(mem, pages, n, gfp)?;
    let found = slab.ksize(mem, pages, virt).ok().zip(mem.phys_of(virt));
    match found {
        Some((obj, phys)) => Ok(KmallocObj {
            virt,
            phys,
            size,
            obj: obj as u64,
        }),
        None => {
            let _ = slab.kfree(mem, pages, virt);
            Err(MmError::Invalid(
                "kmalloc returned an address it cannot describe",
            ))
        }
    }
}

/// `kmem_cache_create(name, size, align, flags, NULL)` and the new cache's row,
/// for [`SlabApi::kmem_cache_create`](super::SlabApi::kmem_cache_create). With `SLAB_PANIC`
/// a failure is returned like any other (memkern never panics).
pub fn kmem_cache_create_in(
    slab: &mut Slab,
    name: &str,
    size: u64,
    align: u64,
    flags: SlabFlags,
) -> Result<CacheInfo, MmError> {
    let n = usize::try_from(size).map_err(|_| bad_size(size))?;
    let a = usize::try_from(align).map_err(|_| MmError::BadAlign(align))?;
    let id = slab.kmem_cache_create(name, n, a, flags, None)?;
    slab.cache_info(id)
}

/// `kmem_cache_alloc(cache, gfp)` by cache name, for
/// [`SlabApi::kmem_cache_alloc`](super::SlabApi::kmem_cache_alloc).
#[track_caller]
pub fn kmem_cache_alloc_in<M: PhysMem, P: PageProvider>(
    slab: &mut Slab,
    mem: &mut M,
    pages: &mut P,
    cache: &str,
    gfp: Gfp,
) -> Result<SlabObj, MmError> {
    let id = slab.find(cache).ok_or(MmError::NotFound)?;
    let virt = slab.kmem_cache_alloc(mem, pages, id, gfp)?;
    match mem.phys_of(virt) {
        Some(phys) => Ok(SlabObj { virt, phys }),
        None => {
            let _ = slab.kmem_cache_free(mem, pages, id, virt);
            Err(MmError::Invalid(
                "kmem_cache_alloc returned an address outside the direct map",
            ))
        }
    }
}

/// `kmem_cache_free(cache, virt)` by cache name, for
/// [`SlabApi::kmem_cache_free`](super::SlabApi::kmem_cache_free).
#[track_caller]
pub fn kmem_cache_free_in<M: PhysMem, P: PageProvider>(
    slab: &mut Slab,
    mem: &mut M,
    pages: &mut P,
    cache: &str,
    virt: u64,
) -> Result<(), MmError> {
    let id = slab.find(cache).ok_or(MmError::NotFound)?;
    slab.kmem_cache_free(mem, pages, id, virt)
}

/// `kmem_cache_destroy(cache)` by cache name, for
/// [`SlabApi::kmem_cache_destroy`](super::SlabApi::kmem_cache_destroy).
pub fn kmem_cache_destroy_in<M: PhysMem, P: PageProvider>(
    slab: &mut Slab,
    mem: &mut M,
    pages: &mut P,
    cache: &str,
) -> Result<(), MmError> {
    let id = slab.find(cache).ok_or(MmError::NotFound)?;
    slab.kmem_cache_destroy(mem, pages, id)
}

/// `kmem_cache_shrink(cache)` by cache name (slabs released), for
/// [`SlabApi::kmem_cache_shrink`](super::SlabApi::kmem_cache_shrink).
pub fn kmem_cache_shrink_in<M: PhysMem, P: PageProvider>(
    slab: &mut Slab,
    mem: &mut M,
    pages: &mut P,
    cache: &str,
) -> Result<u64, MmError> {
    let id = slab.find(cache).ok_or(MmError::NotFound)?;
    slab.kmem_cache_shrink(mem, pages, id)
}

/// `slub_debug` validation of one cache by name, or of every cache, for
/// [`SlabApi::slab_validate`](super::SlabApi::slab_validate): errors found.
pub fn slab_validate_in<M: PhysMem, P: PageProvider>(
    slab: &mut Slab,
    mem: &mut M,
    pages: &mut P,
    cache: Option<&str>,
) -> Result<u64, MmError> {
    match cache {
        Some(name) => {
            let id = slab.find(name).ok_or(MmError::NotFound)?;
            slab.validate(mem, pages, id)
        }
        None => slab.validate_all(mem, pages),
    }
}

/// What [`slab_check_in`] found: the caches validated, the errors found in all
/// of them, and the first cache with errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SlabCheck {
    /// Caches validated.
    pub caches: u64,
    /// Errors found (each one is also kept as a corruption report).
    pub errors: u64,
    /// The first cache (in table order) with errors, and how many.
    pub first_bad: Option<(CacheName, u64)>,
}

/// `Slab::validate` of every cache, one at a time so that the first cache with
/// errors can be named, for [`Diagnostics::slab_check`](super::Diagnostics::slab_check). Every
/// finding is reported (and repaired) by the slab allocator as in
/// `slub_debug validate`. No heap allocation.
pub fn slab_check_in<M: PhysMem, P: PageProvider>(
    slab: &mut Slab,
    mem: &mut M,
    pages: &mut P,
) -> Result<SlabCheck, MmError> {
    let mut r = SlabCheck::default();
    let mut i = 0;
    loop {
        let Some(info) = slab.caches().nth(i) else {
            break;
        };
        let n = slab.validate(mem, pages, info.id)?;
        r.caches += 1;
        r.errors += n;
        if n > 0 && r.first_bad.is_none() {
            r.first_bad = Some((info.name, n));
        }
        i += 1;
    }
    Ok(r)
}

/// The microbenchmark behind [`Diagnostics::bench_kmalloc`](super::Diagnostics::bench_kmalloc),
/// timed with `clock` (the kernel passes `rdtsc`):
///
/// 1. `iters` pairs of `kmalloc(80, GFP_KERNEL)` + `kfree`;
/// 2. a mixed workload of `iters` steps: step `i` frees the object in slot
///    `i % BENCH_LIVE` if there is one, then allocates one of [`BENCH_SIZES`]
///    (picked by a xorshift generator) into it; at the end every object left is
///    freed. `mixed_ops` counts allocations and frees.
///
/// Leaves nothing allocated (slabs the caches keep for reuse stay, as after any
/// free; `kmem_cache_shrink` gives them back). On an error everything taken so
/// far is freed and the error returned. No heap allocation.
pub fn bench_kmalloc_in<M: PhysMem, P: PageProvider>(
    slab: &mut Slab,
    mem: &mut M,
    pages: &mut P,
    iters: u64,
    clock: &mut dyn FnMut() -> u64,
) -> Result<KmallocBench, MmError> {
    let mut r = KmallocBench {
        pairs: iters,
        ..KmallocBench::default()
    };
    let t0 = clock();
    for _ in 0..iters {
        let v = slab.kmalloc(mem, pages, 80, Gfp::KERNEL)?;
        slab.kfree(mem, pages, v)?;
    }
    let t1 = clock();
    r.pair_cycles = t1.wrapping_sub(t0);

    let mut live = [0u64; BENCH_LIVE];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut ops = 0u64;
    let mut result = Ok(());
    let t2 = clock();
    for i in 0..iters {
        let slot = (i % BENCH_LIVE as u64) as usize;
        if live[slot] != 0 {
            if let Err(e) = slab.kfree(mem, pages, live[slot]) {
                result = Err(e);
                break;
            }
            live[slot] = 0;
            ops += 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = BENCH_SIZES[(x % BENCH_SIZES.len() as u64) as usize];
        match slab.kmalloc(mem, pages, size, Gfp::KERNEL) {
            Ok(v) => {
                live[slot] = v;
                ops += 1;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    for v in live.iter_mut().filter(|v| **v != 0) {
        let freed = slab.kfree(mem, pages, *v);
        if result.is_ok() {
            result = freed;
        }
        *v = 0;
        ops += 1;
    }
    let t3 = clock();
    result?;
    r.mixed_ops = ops;
    r.mixed_cycles = t3.wrapping_sub(t2);
    Ok(r)
}

/// Most mempools a [`PoolTable`] holds.
pub const MAX_POOLS: usize = 16;

/// A pool name stored inline ([`check_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PoolName {
    bytes: [u8; MAX_NAME],
    len: u8,
}

impl PoolName {
    fn new(s: &str) -> Result<PoolName, MmError> {
        check_name(s).map_err(|e| {
            MmError::Invalid(match e {
                BadName::Length => "mempool name must be 1..=31 bytes",
                BadName::Whitespace => "mempool name contains whitespace",
            })
        })?;
        let mut n = PoolName {
            bytes: [0; MAX_NAME],
            len: s.len() as u8,
        };
        n.bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(n)
    }

    fn is(&self, s: &str) -> bool {
        &self.bytes[..self.len as usize] == s.as_bytes()
    }
}

/// The mempools the shell creates, by name: Linux leaves a `mempool_t` to its
/// user, so the kernel keeps the shell's here. A fixed array (no heap), usable
/// inside the slab lock; every mempool method of [`SlabApi`](super::SlabApi) is
/// one call of it in [`Api`](super::Api).
#[derive(Debug)]
pub struct PoolTable {
    slots: [Option<(PoolName, Mempool)>; MAX_POOLS],
}

impl Default for PoolTable {
    fn default() -> PoolTable {
        PoolTable::new()
    }
}

impl PoolTable {
    /// An empty table (`const`: it can live in a `static`).
    pub const fn new() -> PoolTable {
        PoolTable {
            slots: [const { None }; MAX_POOLS],
        }
    }

    /// Pools in the table.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// True if the table holds no pool.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, name: &str) -> Result<&Mempool, MmError> {
        self.slots
            .iter()
            .flatten()
            .find(|(n, _)| n.is(name))
            .map(|(_, p)| p)
            .ok_or(MmError::NotFound)
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut Mempool, MmError> {
        self.slots
            .iter_mut()
            .flatten()
            .find(|(n, _)| n.is(name))
            .map(|(_, p)| p)
            .ok_or(MmError::NotFound)
    }

    fn info_of(p: &Mempool) -> PoolInfo {
        PoolInfo {
            min_nr: p.min_nr() as u64,
            curr_nr: p.curr_nr() as u64,
            outstanding: p.outstanding(),
        }
    }

    /// `mempool_create_kmalloc_pool` / `mempool_create_slab_pool` under `name`.
    /// Errors: `Invalid` (name), `Exists`, `TooMany` (table full), `BadCount`
    /// (`min_nr` above 64), `BadSize`, `NotFound` (no such cache), `OutOfMemory`.
    #[track_caller]
    pub fn create<M: PhysMem, P: PageProvider>(
        &mut self,
        slab: &mut Slab,
        mem: &mut M,
        pages: &mut P,
        name: &str,
        min_nr: u64,
        source: &PoolSource,
    ) -> Result<PoolInfo, MmError> {
        let pname = PoolName::new(name)?;
        if self.get(name).is_ok() {
            return Err(MmError::Exists);
        }
        let free = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(MmError::TooMany)?;
        let min = usize::try_from(min_nr)
            .ok()
            .filter(|&n| n <= MEMPOOL_MAX)
            .ok_or(MmError::BadCount {
                got: min_nr,
                max: MEMPOOL_MAX as u64,
            })?;
        let backing = match source {
            PoolSource::Kmalloc { size } => PoolBacking::Kmalloc {
                size: usize::try_from(*size).map_err(|_| bad_size(*size))?,
            },
            PoolSource::Cache(c) => PoolBacking::Cache(slab.find(c).ok_or(MmError::NotFound)?),
        };
        let pool = slab.mempool_create(mem, pages, min, backing)?;
        let info = PoolTable::info_of(&pool);
        self.slots[free] = Some((pname, pool));
        Ok(info)
    }

    /// `mempool_alloc(pool, gfp)`; says whether the element came from the reserve.
    #[track_caller]
    pub fn alloc<M: PhysMem, P: PageProvider>(
        &mut self,
        slab: &mut Slab,
        mem: &mut M,
        pages: &mut P,
        name: &str,
        gfp: Gfp,
    ) -> Result<PoolElem, MmError> {
        let pool = self.get_mut(name)?;
        let before = pool.curr_nr();
        let virt = slab.mempool_alloc(mem, pages, pool, gfp)?;
        let reserve = pool.curr_nr() < before;
        match mem.phys_of(virt) {
            Some(phys) => Ok(PoolElem {
                virt,
                phys,
                reserve,
            }),
            None => {
                let _ = slab.mempool_free(mem, pages, pool, virt);
                Err(MmError::Invalid(
                    "mempool_alloc returned an address outside the direct map",
                ))
            }
        }
    }

    /// `mempool_free(element, pool)`.
    #[track_caller]
    pub fn free<M: PhysMem, P: PageProvider>(
        &mut self,
        slab: &mut Slab,
        mem: &mut M,
        pages: &mut P,
        name: &str,
        virt: u64,
    ) -> Result<(), MmError> {
        let pool = self.get_mut(name)?;
        slab.mempool_free(mem, pages, pool, virt)
    }

    /// `mempool_destroy(pool)`; the name is free again afterwards. Refused with
    /// `CacheBusy { live }` while elements are outstanding.
    pub fn destroy<M: PhysMem, P: PageProvider>(
        &mut self,
        slab: &mut Slab,
        mem: &mut M,
        pages: &mut P,
        name: &str,
    ) -> Result<(), MmError> {
        let i = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|(n, _)| n.is(name)))
            .ok_or(MmError::NotFound)?;
        if let Some((_, pool)) = self.slots[i].as_mut() {
            slab.mempool_destroy(mem, pages, pool)?;
        }
        self.slots[i] = None;
        Ok(())
    }

    /// `min_nr`, `curr_nr` and outstanding elements of a pool.
    pub fn info(&self, name: &str) -> Result<PoolInfo, MmError> {
        self.get(name).map(PoolTable::info_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_rule() {
        assert_eq!(check_name("inode_cache-1"), Ok(()));
        assert_eq!(check_name(&"x".repeat(MAX_NAME)), Ok(()));
        assert_eq!(check_name(""), Err(BadName::Length));
        assert_eq!(check_name(&"x".repeat(MAX_NAME + 1)), Err(BadName::Length));
        assert_eq!(check_name("a b"), Err(BadName::Whitespace));
        assert_eq!(check_name("a\x01"), Err(BadName::Whitespace));
        assert!(PoolName::new("a\tb").is_err());
        assert!(PoolName::new("pool").is_ok_and(|n| n.is("pool")));
    }
}
