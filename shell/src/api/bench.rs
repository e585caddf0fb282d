//! `bench batch`: the batch workloads of issue 13 in the kernel, timed with the
//! kernel's clock (`rdtsc`): bursts larger than the page caches and the slab
//! magazines, through single calls and through the bulk APIs.

use mm::buddy::Buddy;
use mm::slab::Slab;
use mm::{Gfp, MmError, Pfn, PhysMem};

/// Largest batch of `bench batch` (order-3 batches take 8 times as many pages).
pub const BATCH_MAX: u64 = 8192;

/// What `bench batch N` measured, in cycles for the whole batch (allocation and
/// freeing of `n` objects).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchBench {
    /// Objects per batch.
    pub n: u64,
    /// `alloc_page` n times, then `__free_page` in allocation order.
    pub page0: u64,
    /// The same pages through `alloc_pages_bulk` + `free_pages_bulk`.
    pub page0_bulk: u64,
    /// `alloc_pages(GFP_KERNEL, 3)` n times, then `__free_pages` in allocation order.
    pub page3: u64,
    /// `kmalloc(64)` n times, then `kfree` of them all.
    pub kmalloc: u64,
    /// `kmem_cache_alloc` n times on the kmalloc-64 cache, then `kmem_cache_free`.
    pub cache_loop: u64,
    /// The same through `kmem_cache_alloc_bulk` + `kmem_cache_free_bulk`.
    pub cache_bulk: u64,
}

/// Rounds of `bench batch` that are measured, after one warm-up round.
pub const BATCH_ROUNDS: usize = 3;

/// `bench batch`: one warm-up round, whose numbers are dropped (the first run of
/// a path after boot times QEMU translating its code, and the first burst splits
/// the blocks that the caches then hold), then the best of [`BATCH_ROUNDS`]
/// rounds, per workload.
pub fn bench_batch_rounds<M: PhysMem>(
    slab: &mut Slab,
    mem: &mut M,
    buddy: &mut Buddy<'_>,
    pfns: &mut [Pfn],
    objs: &mut [u64],
    clock: &mut dyn FnMut() -> u64,
) -> Result<BatchBench, MmError> {
    bench_batch_in(slab, mem, buddy, pfns, objs, clock)?;
    let mut best = bench_batch_in(slab, mem, buddy, pfns, objs, clock)?;
    for _ in 1..BATCH_ROUNDS {
        let r = bench_batch_in(slab, mem, buddy, pfns, objs, clock)?;
        for (b, x) in best.fields_mut().into_iter().zip(r.fields()) {
            *b = (*b).min(x);
        }
    }
    Ok(best)
}

impl BatchBench {
    /// The measured workloads, in declaration order.
    fn fields(&self) -> [u64; 6] {
        [
            self.page0,
            self.page0_bulk,
            self.page3,
            self.kmalloc,
            self.cache_loop,
            self.cache_bulk,
        ]
    }

    fn fields_mut(&mut self) -> [&mut u64; 6] {
        [
            &mut self.page0,
            &mut self.page0_bulk,
            &mut self.page3,
            &mut self.kmalloc,
            &mut self.cache_loop,
            &mut self.cache_bulk,
        ]
    }
}

/// One round of the batches, with `pfns` and `objs` (each at least `n` long, the caller's
/// buffers: no allocation here) as scratch. Leaves nothing allocated; on an error
/// everything taken so far is freed and the error returned.
pub fn bench_batch_in<M: PhysMem>(
    slab: &mut Slab,
    mem: &mut M,
    buddy: &mut Buddy<'_>,
    pfns: &mut [Pfn],
    objs: &mut [u64],
    clock: &mut dyn FnMut() -> u64,
) -> Result<BatchBench, MmError> {
    let n = pfns.len().min(objs.len());
    let (pfns, objs) = (&mut pfns[..n], &mut objs[..n]);
    let mut r = BatchBench {
        n: n as u64,
        ..BatchBench::default()
    };
    for order in [0u32, 3] {
        let t0 = clock();
        for i in 0..n {
            match buddy.alloc_pages(Gfp::KERNEL, order) {
                Ok(p) => pfns[i] = p,
                Err(e) => {
                    for &p in &pfns[..i] {
                        let _ = buddy.__free_pages(p, order);
                    }
                    return Err(e);
                }
            }
        }
        let mut res = Ok(());
        for &p in pfns.iter() {
            let f = buddy.__free_pages(p, order);
            res = res.and(f);
        }
        let t1 = clock();
        res?;
        if order == 0 {
            r.page0 = t1.wrapping_sub(t0);
        } else {
            r.page3 = t1.wrapping_sub(t0);
        }
    }
    let t0 = clock();
    let got = buddy.alloc_pages_bulk(Gfp::KERNEL, pfns)?;
    let freed = buddy.free_pages_bulk(&pfns[..got]);
    let t1 = clock();
    freed.map_err(|e| e.err)?;
    if got < n {
        return Err(MmError::OutOfMemory);
    }
    r.page0_bulk = t1.wrapping_sub(t0);

    let t0 = clock();
    for i in 0..n {
        match slab.kmalloc(mem, buddy, 64, Gfp::KERNEL) {
            Ok(v) => objs[i] = v,
            Err(e) => {
                for &v in &objs[..i] {
                    let _ = slab.kfree(mem, buddy, v);
                }
                return Err(e);
            }
        }
    }
    let mut res = Ok(());
    for &v in objs.iter() {
        let f = slab.kfree(mem, buddy, v);
        res = res.and(f);
    }
    let t1 = clock();
    res?;
    r.kmalloc = t1.wrapping_sub(t0);

    let cache = slab.kmalloc_cache(64, false)?;
    let t0 = clock();
    for i in 0..n {
        match slab.kmem_cache_alloc(mem, buddy, cache, Gfp::KERNEL) {
            Ok(v) => objs[i] = v,
            Err(e) => {
                for &v in &objs[..i] {
                    let _ = slab.kmem_cache_free(mem, buddy, cache, v);
                }
                return Err(e);
            }
        }
    }
    let mut res = Ok(());
    for &v in objs.iter() {
        let f = slab.kmem_cache_free(mem, buddy, cache, v);
        res = res.and(f);
    }
    let t1 = clock();
    res?;
    r.cache_loop = t1.wrapping_sub(t0);

    let t0 = clock();
    slab.kmem_cache_alloc_bulk(mem, buddy, cache, Gfp::KERNEL, objs)?;
    let freed = slab.kmem_cache_free_bulk(mem, buddy, cache, objs);
    let t1 = clock();
    freed.map_err(|e| e.err)?;
    r.cache_bulk = t1.wrapping_sub(t0);
    Ok(r)
}
