//! The memory API implemented once: [`Api`] implements every area trait
//! ([`PageApi`], [`SlabApi`], [`MemAccess`], [`Diagnostics`]) over a [`MemHost`],
//! which provides only what differs between machines.
//!
//! | | the kernel (`kernel/src/kshell.rs`) | the host test machine |
//! |---|---|---|
//! | allocators | behind spin locks | plain fields |
//! | [`MemHost::Mem`] | the direct map | simulated RAM |
//! | raw access | fault-safe accessors (exception table) | reads and writes of the simulated RAM |
//! | [`MemHost::clock`] | `rdtsc` | a counter |
//! | [`MemHost::heap_selftest`] | the kernel heap | a canned answer |
//! | [`MemHost::log`] | nothing | the call log the tests assert on |
//!
//! The platform side ([`Platform`]: console, reboot, traps) is the host's own;
//! `Api<H>` forwards it, so `Api<H>` is a whole [`Kernel`](super::Kernel) when
//! `H: MemHost + Platform`.

use super::io::RawFault;
use super::io::{IoApi, IoError, Owned, Resources, Width};
use super::slab::{
    bench_kmalloc_in, cache_named, kmalloc_in, kmem_cache_alloc_in, kmem_cache_create_in,
    kmem_cache_destroy_in, kmem_cache_free_in, kmem_cache_shrink_in, slab_check_in,
    slab_validate_in,
};
use super::{
    addr_to_pfn_in, Diagnostics, KmallocBench, KmallocObj, MemAccess, MemLayout, PageApi,
    PageBlock, PageInfo, PageSummary, Platform, PoolElem, PoolInfo, PoolSource, PoolTable, SlabApi,
    SlabCheck, SlabObj, Trap, VersionInfo, ZoneStat,
};
use super::{bench_batch_rounds, BatchBench, BATCH_MAX};
use super::{KernelLayout, VmState};
use alloc::vec::Vec;
use core::fmt;
use core::ops::{Deref, DerefMut};
use mm::buddy::{Buddy, BulkError, CheckError};
use mm::fault::{FaultAttr, FaultConfig, FaultSite};
use mm::paging::{Mapper, PageRefs, TableFrames, Tlb};
use mm::resource::{ResFlags, ResKind, Row, Span};
use mm::slab::{CacheInfo, ObjectInfo, Slab, SlabFlags, SlabReport, SlubDebugOutcome};
use mm::vmalloc::{VmBackend, VmSpace};
use mm::{Gfp, MmError, MmStat, PageFlags, PageState, Pfn, PhysMem, Zone};

/// What a machine provides so that [`Api`] can implement the memory API over it:
/// locked access to the allocators and the memory, a clock, raw memory access,
/// the heap self-test and a call log.
///
/// Locks: the `*_mut` methods (and the read ones) may take locks, always in the
/// order pools, then slab, then buddy. Code running inside them must not
/// allocate from the kernel heap: in the kernel the heap is the slab allocator,
/// so it would deadlock. Everything [`Api`] runs inside them (the helpers of
/// `api::slab`, [`PageInfo::from_buddy`], ...) allocates nothing;
/// [`MemHost::log`] is always called outside them.
pub trait MemHost {
    /// Physical memory as the allocators see it (the direct map).
    type Mem: PhysMem;
    /// What [`MemHost::clock`] returns: a cycle counter to read.
    type Clock: FnMut() -> u64;

    /// Runs `f` with the buddy allocator and the memory, for reading.
    fn buddy<R>(&self, f: impl FnOnce(&Buddy<'_>, &Self::Mem) -> R) -> R;
    /// Runs `f` with the buddy allocator and the memory.
    fn buddy_mut<R>(&mut self, f: impl FnOnce(&mut Buddy<'_>, &mut Self::Mem) -> R) -> R;
    /// Runs `f` with the slab allocator, the buddy allocator (its page provider)
    /// and the memory, for reading (locks: slab, then buddy).
    fn slab<R>(&self, f: impl FnOnce(&Slab, &Buddy<'_>, &Self::Mem) -> R) -> R;
    /// Runs `f` with the slab allocator, the buddy allocator and the memory
    /// (locks: slab, then buddy).
    fn slab_mut<R>(&mut self, f: impl FnOnce(&mut Slab, &mut Buddy<'_>, &mut Self::Mem) -> R) -> R;
    /// Runs `f` with the shell's mempools, for reading.
    fn pools<R>(&self, f: impl FnOnce(&PoolTable) -> R) -> R;
    /// Runs `f` with the shell's mempools, the slab and buddy allocators and the
    /// memory (locks: pools, then slab, then buddy).
    fn pools_mut<R>(
        &mut self,
        f: impl FnOnce(&mut PoolTable, &mut Slab, &mut Buddy<'_>, &mut Self::Mem) -> R,
    ) -> R;
    /// The memory, for translating addresses outside the locks.
    fn mem(&self) -> &Self::Mem;

    /// Runs `f` with the resource trees, for reading (a lock of its own,
    /// taken after every other one; nothing inside allocates).
    fn resources<R>(&self, f: impl FnOnce(&Resources) -> R) -> R;
    /// Runs `f` with the resource trees.
    fn resources_mut<R>(&mut self, f: impl FnOnce(&mut Resources) -> R) -> R;
    /// Reads an I/O port (`width` is 1, 2 or 4 bytes; the port range is valid).
    fn port_in(&mut self, port: u16, width: Width) -> u32;
    /// Writes an I/O port.
    fn port_out(&mut self, port: u16, width: Width, value: u32);
    /// `rep ins`: fills `buf` with `buf.len() / width` reads of `port`.
    fn port_in_str(&mut self, port: u16, width: Width, buf: &mut [u8]);
    /// `rep outs`: writes `buf` as `buf.len() / width` writes to `port`.
    fn port_out_str(&mut self, port: u16, width: Width, buf: &[u8]);
    /// The physical address behind kernel virtual address `virt` in the running
    /// page tables (as the CPU would translate it), `None` if it is not mapped.
    /// The one translation hook: the write checks ask it page by page.
    fn translate(&self, virt: u64) -> Option<u64>;
    /// Loads `width` bytes at any kernel virtual address; a fault is returned
    /// (for a page fault with the walk of the faulting address in the
    /// kernel's tables, [`RawFault::walk`]). The raw hooks are the only
    /// memory accessors: `peek`/`poke`/`fill`/`copy`/`read*`/`write*` and
    /// `dump`/`bzero`/`bcopy` all use them.
    fn raw_load(&self, virt: u64, width: Width) -> Result<u64, RawFault>;
    /// Stores the low `width` bytes of `value` at any kernel virtual address.
    fn raw_store(&mut self, virt: u64, width: Width, value: u64) -> Result<(), RawFault>;
    /// Reads `buf.len()` bytes at any kernel virtual address.
    fn raw_read(&self, virt: u64, buf: &mut [u8]) -> Result<(), RawFault>;
    /// Sets `len` bytes at any kernel virtual address to `byte`.
    fn raw_fill(&mut self, virt: u64, len: u64, byte: u8) -> Result<(), RawFault>;
    /// Copies `len` bytes between kernel virtual addresses (`memmove`).
    fn raw_copy(&mut self, dst: u64, src: u64, len: u64) -> Result<(), RawFault>;
    /// Where run-time page-table frames come from (and the page references of
    /// `page_insert` mappings): in the kernel, the buddy allocator taking its
    /// lock per frame.
    type Frames: TableFrames + PageRefs;
    /// The CPU's TLB (the kernel: `invlpg` and a full flush; the test machine:
    /// `SimTlb`).
    type Tlb: Tlb;
    /// Runs `f` with the page-table state, for reading (the page-table lock).
    fn vm<R>(&self, f: impl FnOnce(&VmState, &Self::Mem) -> R) -> R;
    /// Runs `f` with the page-table state, a mapper over the memory with
    /// table frames, and the TLB (locks: page tables, then slab, then buddy;
    /// `f` may allocate from the heap, the table frames take the buddy lock
    /// per frame).
    fn vm_mut<R>(
        &mut self,
        f: impl FnOnce(&mut VmState, &mut Mapper<'_, Self::Mem, Self::Frames>, &mut Self::Tlb) -> R,
    ) -> R;
    /// The kernel's fixed layout.
    fn vm_layout(&self) -> KernelLayout;
    /// Runs `f` with the vmalloc and ioremap areas, for reading (the kernel:
    /// the vm-space lock, taken before the page-table lock).
    fn vmspace<R>(&self, f: impl FnOnce(&VmSpace) -> R) -> R;
    /// Runs `f` with the vmalloc and ioremap areas and their backend (frames,
    /// page tables, zeroing). `f` may allocate from the heap; the backend takes
    /// the page-table and buddy locks inside each of its calls only
    /// (`mm::vmalloc::backend`).
    fn vmspace_mut<R>(&mut self, f: impl FnOnce(&mut VmSpace, &mut dyn VmBackend) -> R) -> R;
    /// The cycle counter for `bench kmalloc` (read inside the slab lock).
    fn clock(&self) -> Self::Clock;
    /// Runs one case of [`HEAP_SELFTESTS`](super::HEAP_SELFTESTS) against the
    /// kernel heap; `Err(why)` when a check fails.
    fn heap_selftest(&mut self, case: &str) -> Result<(), &'static str>;
    /// Records a call of the memory API that allocates, frees or changes a
    /// setting, named after the reference function (e.g. `__free_pages(0x1000,
    /// 2)`). Called before the call runs, outside every lock. Default: nothing.
    fn log(&mut self, call: fmt::Arguments<'_>) {
        let _ = call;
    }
}

/// The memory API over a [`MemHost`]: the one implementation of the area traits.
/// Dereferences to the host.
#[derive(Debug, Default)]
pub struct Api<H> {
    /// The machine.
    pub host: H,
}

impl<H> Api<H> {
    /// The API over `host`.
    pub const fn new(host: H) -> Api<H> {
        Api { host }
    }
}

impl<H> Deref for Api<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.host
    }
}

impl<H> DerefMut for Api<H> {
    fn deref_mut(&mut self) -> &mut H {
        &mut self.host
    }
}

impl<H: fmt::Write> fmt::Write for Api<H> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.host.write_str(s)
    }
}

impl<H: Platform> Platform for Api<H> {
    fn version_info(&self) -> VersionInfo {
        self.host.version_info()
    }
    fn clear_screen(&mut self) {
        self.host.clear_screen()
    }
    fn framebuffer(&self) -> Option<crate::api::FbMode> {
        self.host.framebuffer()
    }
    fn memory_view(
        &mut self,
        what: crate::api::ViewCmd,
    ) -> Result<alloc::string::String, &'static str> {
        self.host.memory_view(what)
    }
    fn reboot(&mut self) -> &'static str {
        self.host.reboot()
    }
    fn poweroff(&mut self) -> &'static str {
        self.host.poweroff()
    }
    fn trap(&mut self, trap: Trap) -> Result<(), &'static str> {
        self.host.trap(trap)
    }
}

impl<H: MemHost> PageApi for Api<H> {
    fn mm_stat(&self) -> MmStat {
        self.host.slab(|s, b, _| s.mm_stat(b.mm_stat()))
    }
    fn zone_stat(&self, zone: Zone) -> Option<ZoneStat> {
        let z = self.host.buddy(|b, _| b.zone_stat(zone));
        (z.present > 0).then(|| ZoneStat {
            total: z.managed * 4096,
            used: (z.managed - z.free) * 4096,
            free: z.free * 4096,
            wmark: z.wmark.map(|w| w * 4096),
        })
    }
    fn alloc_pages(&mut self, zone: Zone, n: u32, flags: PageFlags) -> Result<PageBlock, MmError> {
        self.host
            .log(format_args!("alloc_pages({zone}, {n}, {flags})"));
        self.host.buddy_mut(|b, m| {
            let pfn = b.alloc_pages_zone(zone, u64::from(n), flags)?;
            Ok(PageBlock {
                pfn,
                n,
                zone,
                flags,
                virt: b.page_address(pfn, m),
            })
        })
    }
    fn free_pages(&mut self, pfn: Pfn, n: u32) -> Result<(), MmError> {
        self.host.log(format_args!("free_pages({pfn}, {n})"));
        self.host
            .buddy_mut(|b, _| b.free_pages_count(pfn, u64::from(n)))
    }
    fn zone_info(&self, zone: Zone) -> Result<mm::buddy::ZoneStat, MmError> {
        Ok(self.host.buddy(|b, _| b.zone_stat(zone)))
    }
    fn mem_layout(&self) -> Result<MemLayout, MmError> {
        Ok(self.host.buddy(|b, _| MemLayout::from_buddy(b)))
    }
    fn page_info(&self, pfn: Pfn) -> Result<PageInfo, MmError> {
        self.host.buddy(|b, m| PageInfo::from_buddy(b, pfn, m))
    }
    fn addr_to_pfn(&self, addr: u64) -> Result<Pfn, MmError> {
        self.host.buddy(|b, m| addr_to_pfn_in(b, m, addr))
    }
    fn page_summary(&self, start: Pfn, end: Pfn) -> Result<PageSummary, MmError> {
        Ok(self
            .host
            .buddy(|b, _| PageSummary::from_buddy(b, start, end)))
    }
    fn alloc_pages_order(&mut self, gfp: Gfp, order: u32) -> Result<Pfn, MmError> {
        self.host
            .log(format_args!("alloc_pages({:#x}, {order})", gfp.0));
        self.host.buddy_mut(|b, m| b.alloc_pages_mem(gfp, order, m))
    }
    fn alloc_page(&mut self, gfp: Gfp) -> Result<Pfn, MmError> {
        self.host.log(format_args!("alloc_page({:#x})", gfp.0));
        self.host.buddy_mut(|b, m| b.alloc_pages_mem(gfp, 0, m))
    }
    fn get_free_pages(&mut self, gfp: Gfp, order: u32) -> Result<u64, MmError> {
        self.host
            .log(format_args!("__get_free_pages({:#x}, {order})", gfp.0));
        self.host
            .buddy_mut(|b, m| b.__get_free_pages(gfp, order, m))
    }
    fn get_free_page(&mut self, gfp: Gfp) -> Result<u64, MmError> {
        self.host.log(format_args!("__get_free_page({:#x})", gfp.0));
        self.host.buddy_mut(|b, m| b.__get_free_page(gfp, m))
    }
    fn get_zeroed_page(&mut self, gfp: Gfp) -> Result<u64, MmError> {
        self.host.log(format_args!("get_zeroed_page({:#x})", gfp.0));
        self.host.buddy_mut(|b, m| b.get_zeroed_page(gfp, m))
    }
    fn free_pages_order(&mut self, pfn: Pfn, order: u32) -> Result<(), MmError> {
        self.host.log(format_args!("__free_pages({pfn}, {order})"));
        self.host.buddy_mut(|b, _| b.__free_pages(pfn, order))
    }
    fn alloc_pages_bulk(&mut self, gfp: Gfp, out: &mut [Pfn]) -> Result<usize, MmError> {
        self.host.log(format_args!(
            "alloc_pages_bulk({:#x}, {})",
            gfp.0,
            out.len()
        ));
        self.host.buddy_mut(|b, _| b.alloc_pages_bulk(gfp, out))
    }
    fn free_pages_bulk(&mut self, pages: &[Pfn]) -> Result<(), BulkError> {
        self.host
            .log(format_args!("free_pages_bulk({})", pages.len()));
        self.host.buddy_mut(|b, _| b.free_pages_bulk(pages))
    }
    fn free_pages_addr(&mut self, virt: u64, order: u32) -> Result<(), MmError> {
        self.host
            .log(format_args!("free_pages({virt:#x}, {order})"));
        self.host.buddy_mut(|b, m| b.free_pages(virt, order, m))
    }
    fn free_page(&mut self, virt: u64) -> Result<(), MmError> {
        self.host.log(format_args!("free_page({virt:#x})"));
        self.host.buddy_mut(|b, m| b.free_page(virt, m))
    }
    fn get_page(&mut self, pfn: Pfn) -> Result<u32, MmError> {
        self.host.log(format_args!("get_page({pfn})"));
        self.host.buddy_mut(|b, _| b.get_page(pfn))
    }
    fn put_page(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        self.host.log(format_args!("put_page({pfn})"));
        self.host.buddy_mut(|b, _| b.put_page(pfn))
    }
    fn page_alloc(&mut self) -> Result<Pfn, MmError> {
        self.host.log(format_args!("page_alloc()"));
        self.host.buddy_mut(|b, m| b.page_alloc(m))
    }
    fn page_decref(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        self.host.log(format_args!("page_decref({pfn})"));
        self.host.buddy_mut(|b, _| b.page_decref(pfn))
    }
}

impl<H: MemHost> SlabApi for Api<H> {
    fn kmalloc(&mut self, size: u64, gfp: Gfp) -> Result<KmallocObj, MmError> {
        self.host.log(format_args!("kmalloc({size}, {:#x})", gfp.0));
        self.host.slab_mut(|s, b, m| kmalloc_in(s, m, b, size, gfp))
    }
    fn kfree(&mut self, virt: u64) -> Result<(), MmError> {
        self.host.log(format_args!("kfree({virt:#x})"));
        self.host.slab_mut(|s, b, m| s.kfree(m, b, virt))
    }
    fn kmem_cache_create(
        &mut self,
        name: &str,
        size: u64,
        align: u64,
        flags: SlabFlags,
    ) -> Result<CacheInfo, MmError> {
        self.host.log(format_args!(
            "kmem_cache_create({name}, {size}, {align}, {:#x})",
            flags.0
        ));
        self.host
            .slab_mut(|s, _, _| kmem_cache_create_in(s, name, size, align, flags))
    }
    fn kmem_cache_alloc(&mut self, cache: &str, gfp: Gfp) -> Result<SlabObj, MmError> {
        self.host
            .log(format_args!("kmem_cache_alloc({cache}, {:#x})", gfp.0));
        self.host
            .slab_mut(|s, b, m| kmem_cache_alloc_in(s, m, b, cache, gfp))
    }
    fn kmem_cache_free(&mut self, cache: &str, virt: u64) -> Result<(), MmError> {
        self.host
            .log(format_args!("kmem_cache_free({cache}, {virt:#x})"));
        self.host
            .slab_mut(|s, b, m| kmem_cache_free_in(s, m, b, cache, virt))
    }
    fn kmem_cache_alloc_bulk(
        &mut self,
        cache: &str,
        gfp: Gfp,
        out: &mut [u64],
    ) -> Result<usize, MmError> {
        self.host.log(format_args!(
            "kmem_cache_alloc_bulk({cache}, {:#x}, {})",
            gfp.0,
            out.len()
        ));
        self.host.slab_mut(|s, b, m| {
            let id = s.find(cache).ok_or(MmError::NotFound)?;
            s.kmem_cache_alloc_bulk(m, b, id, gfp, out)
        })
    }
    fn kmem_cache_free_bulk(&mut self, cache: &str, objs: &[u64]) -> Result<(), BulkError> {
        self.host.log(format_args!(
            "kmem_cache_free_bulk({cache}, {})",
            objs.len()
        ));
        self.host.slab_mut(|s, b, m| {
            let id = s.find(cache).ok_or(BulkError {
                done: 0,
                err: MmError::NotFound,
            })?;
            s.kmem_cache_free_bulk(m, b, id, objs)
        })
    }
    fn kmem_cache_destroy(&mut self, cache: &str) -> Result<(), MmError> {
        self.host.log(format_args!("kmem_cache_destroy({cache})"));
        self.host
            .slab_mut(|s, b, m| kmem_cache_destroy_in(s, m, b, cache))
    }
    fn kmem_cache_shrink(&mut self, cache: &str) -> Result<u64, MmError> {
        self.host.log(format_args!("kmem_cache_shrink({cache})"));
        self.host
            .slab_mut(|s, b, m| kmem_cache_shrink_in(s, m, b, cache))
    }
    fn kmem_cache_shrink_all(&mut self) -> Result<u64, MmError> {
        self.host.log(format_args!("kmem_cache_shrink_all()"));
        self.host.slab_mut(|s, b, m| {
            let n = s.shrink_all(m, b);
            // Pages parked in the buddy's per-zone caches go back to the free
            // lists too, so that buddyinfo after `free all` equals boot.
            b.drain();
            n
        })
    }
    fn kmem_cache_info(&self, cache: &str) -> Result<CacheInfo, MmError> {
        self.host.slab(|s, _, _| cache_named(s, cache))
    }
    fn slab_cache_at(&self, index: usize) -> Result<Option<CacheInfo>, MmError> {
        Ok(self.host.slab(|s, _, _| s.caches().nth(index)))
    }
    fn slab_object_info(&self, virt: u64) -> Result<ObjectInfo, MmError> {
        self.host.slab(|s, b, m| s.object_info(m, b, virt))
    }
    fn mempool_create(
        &mut self,
        name: &str,
        min_nr: u64,
        source: &PoolSource,
    ) -> Result<PoolInfo, MmError> {
        self.host
            .log(format_args!("mempool_create({name}, {min_nr}, {source:?})"));
        self.host
            .pools_mut(|p, s, b, m| p.create(s, m, b, name, min_nr, source))
    }
    fn mempool_alloc(&mut self, pool: &str, gfp: Gfp) -> Result<PoolElem, MmError> {
        self.host
            .log(format_args!("mempool_alloc({pool}, {:#x})", gfp.0));
        self.host
            .pools_mut(|p, s, b, m| p.alloc(s, m, b, pool, gfp))
    }
    fn mempool_free(&mut self, pool: &str, virt: u64) -> Result<(), MmError> {
        self.host
            .log(format_args!("mempool_free({pool}, {virt:#x})"));
        self.host
            .pools_mut(|p, s, b, m| p.free(s, m, b, pool, virt))
    }
    fn mempool_destroy(&mut self, pool: &str) -> Result<(), MmError> {
        self.host.log(format_args!("mempool_destroy({pool})"));
        self.host.pools_mut(|p, s, b, m| p.destroy(s, m, b, pool))
    }
    fn mempool_info(&self, pool: &str) -> Result<PoolInfo, MmError> {
        self.host.pools(|p| p.info(pool))
    }
    fn slub_debug(&mut self, spec: &str) -> Result<SlubDebugOutcome, MmError> {
        self.host.log(format_args!("slub_debug({spec})"));
        self.host.slab_mut(|s, b, m| s.slub_debug(m, b, spec))
    }
    fn slab_report_at(&self, index: usize) -> Result<Option<SlabReport>, MmError> {
        Ok(self.host.slab(|s, _, _| s.reports().nth(index).copied()))
    }
    fn slab_errors_total(&self) -> Result<u64, MmError> {
        Ok(self.host.slab(|s, _, _| s.errors_total()))
    }
    fn slab_clear_reports(&mut self) -> Result<(), MmError> {
        self.host.slab_mut(|s, _, _| s.clear_reports());
        Ok(())
    }
    fn slab_validate(&mut self, cache: Option<&str>) -> Result<u64, MmError> {
        self.host.log(format_args!("validate({cache:?})"));
        self.host
            .slab_mut(|s, b, m| slab_validate_in(s, m, b, cache))
    }
}

impl<H: MemHost> MemAccess for Api<H> {
    fn bzero(&mut self, virt: u64, len: u64) -> Result<(), IoError> {
        self.host.log(format_args!("bzero({virt:#x}, {len})"));
        last_of(virt, len)?;
        Ok(self.host.raw_fill(virt, len, 0)?)
    }
    fn bcopy(&mut self, src: u64, dst: u64, len: u64) -> Result<(), IoError> {
        self.host
            .log(format_args!("bcopy({src:#x}, {dst:#x}, {len})"));
        last_of(src, len)?;
        last_of(dst, len)?;
        Ok(self.host.raw_copy(dst, src, len)?)
    }
    fn read_bytes(&self, virt: u64, buf: &mut [u8]) -> Result<(), IoError> {
        last_of(virt, buf.len() as u64)?;
        Ok(self.host.raw_read(virt, buf)?)
    }
}

impl<H: MemHost> Diagnostics for Api<H> {
    fn buddy_check(&self) -> Result<Option<CheckError>, MmError> {
        Ok(self.host.buddy(|b, _| b.check().err()))
    }
    fn slab_check(&mut self) -> Result<SlabCheck, MmError> {
        self.host.slab_mut(|s, b, m| slab_check_in(s, m, b))
    }
    fn slab_selftest(&mut self, scenario: &str) -> Result<u64, MmError> {
        self.host.log(format_args!("selftest({scenario})"));
        self.host.slab_mut(|s, b, m| s.selftest_one(m, b, scenario))
    }
    fn heap_selftest(&mut self, case: &str) -> Result<(), MmError> {
        self.host.log(format_args!("heap_selftest({case})"));
        self.host.heap_selftest(case).map_err(MmError::Invalid)
    }
    fn fault_attr(&self, site: FaultSite) -> Result<FaultAttr, MmError> {
        Ok(match site {
            FaultSite::PageAlloc => self.host.buddy(|b, _| *b.fail_page_alloc()),
            FaultSite::Slab => self.host.slab(|s, _, _| *s.failslab()),
        })
    }
    fn set_fault(&mut self, site: FaultSite, cfg: Option<FaultConfig>) -> Result<(), MmError> {
        self.host
            .log(format_args!("set_fault({}, {cfg:?})", site.name()));
        match site {
            FaultSite::PageAlloc => {
                self.host.buddy_mut(|b, _| b.set_fail_page_alloc(cfg));
                Ok(())
            }
            FaultSite::Slab => self.host.slab_mut(|s, b, m| s.set_failslab(m, b, cfg)),
        }
    }
    fn bench_batch(&mut self, n: u64) -> Result<BatchBench, MmError> {
        self.host.log(format_args!("bench_batch({n})"));
        if n == 0 || n > BATCH_MAX {
            return Err(MmError::BadCount {
                got: n,
                max: BATCH_MAX,
            });
        }
        // The scratch lists come from the heap before the allocators are locked.
        let n = n as usize;
        let mut pfns: Vec<Pfn> = Vec::new();
        let mut objs: Vec<u64> = Vec::new();
        pfns.try_reserve_exact(n)
            .map_err(|_| MmError::OutOfMemory)?;
        objs.try_reserve_exact(n)
            .map_err(|_| MmError::OutOfMemory)?;
        pfns.resize(n, Pfn(0));
        objs.resize(n, 0);
        let mut clock = self.host.clock();
        self.host.slab_mut(|s, b, m| {
            let r = bench_batch_rounds(s, m, b, &mut pfns, &mut objs, &mut clock);
            // The page caches hold what the batches gave back: back to the free
            // lists, so that memstat and buddyinfo show the boot numbers.
            b.drain();
            r
        })
    }
    fn bench_kmalloc(&mut self, iters: u64) -> Result<KmallocBench, MmError> {
        self.host.log(format_args!("bench_kmalloc({iters})"));
        let mut clock = self.host.clock();
        self.host
            .slab_mut(|s, b, m| bench_kmalloc_in(s, m, b, iters, &mut clock))
    }
}

/// The last address of `[start, start + len)`, `len > 0`.
fn last_of(start: u64, len: u64) -> Result<u64, IoError> {
    start
        .checked_add(len.saturating_sub(1))
        .ok_or(IoError::BadRange { addr: start, len })
}

impl<H: MemHost> Api<H> {
    /// The port range `[port, port + width)` as a `u16` start, or `BadPort`.
    fn port_range(port: u64, width: Width, count: u64) -> Result<u16, IoError> {
        let bad = IoError::BadPort { port, width };
        if width == Width::Q || port + width.bytes() - 1 > 0xffff || count == 0 {
            return Err(bad);
        }
        u16::try_from(port).map_err(|_| bad)
    }

    /// Refuses a write to ports `[port, port + width)` that the kernel
    /// registered as protected (COM1, the PICs).
    fn check_port_write(&self, port: u64, width: Width) -> Result<(), IoError> {
        let end = port + width.bytes() - 1;
        match self
            .host
            .resources(|r| r.find_overlap(ResKind::Io, port, end, ResFlags::PROTECTED))
        {
            Some(s) => Err(IoError::Refused {
                addr: port,
                port: true,
                owner: Owned::Resource(ResKind::Io, s),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a write to `[virt, virt + len)` where any page of it is
    /// something the kernel owns: a protected resource (image, mem_map, page
    /// tables...), a slab page, a block allocated to someone else, reserved RAM.
    /// Pages that are not mapped pass (the write faults). The shell passes
    /// `force` for ranges inside its own handles' memory.
    fn check_mem_write(&self, virt: u64, len: u64) -> Result<(), IoError> {
        let end = last_of(virt, len)?;
        let mut lo = virt;
        loop {
            let hi = (lo | 0xfff).min(end);
            if let Some(phys) = self.host.translate(lo) {
                let pend = phys + (hi - lo);
                let refused = |owner| IoError::Refused {
                    addr: lo,
                    port: false,
                    owner,
                };
                if let Some(s) = self
                    .host
                    .resources(|r| r.find_overlap(ResKind::Mem, phys, pend, ResFlags::PROTECTED))
                {
                    return Err(refused(Owned::Resource(ResKind::Mem, s)));
                }
                if let Some(o) = self.host.buddy(|b, _| ram_owner(b, phys)) {
                    return Err(refused(o));
                }
            }
            if hi == end {
                return Ok(());
            }
            lo = hi + 1;
        }
    }
}

/// Who owns the RAM frame holding `phys`, if it is not free to write: a slab
/// page, an allocated block or reserved RAM. `None` for free frames and for
/// addresses that are not RAM (device memory).
fn ram_owner(b: &Buddy<'_>, phys: u64) -> Option<Owned> {
    let pfn = Pfn::containing(phys);
    if !b.is_ram(pfn) {
        return None;
    }
    let head = match b.page(pfn)?.state() {
        PageState::Tail => b.head_of(pfn).unwrap_or(pfn),
        _ => pfn,
    };
    match b.page(head)?.state() {
        PageState::Slab => Some(Owned::SlabPage(phys)),
        PageState::Allocated => Some(Owned::Allocated(phys)),
        PageState::Reserved => Some(Owned::ReservedRam(phys)),
        PageState::Free | PageState::Cached | PageState::Tail => None,
    }
}

impl<H: MemHost> IoApi for Api<H> {
    fn request_resource(
        &mut self,
        kind: ResKind,
        start: u64,
        n: u64,
        name: &str,
    ) -> Result<Span, IoError> {
        let f = match kind {
            ResKind::Io => "request_region",
            ResKind::Mem => "request_mem_region",
        };
        self.host.log(format_args!("{f}({start:#x}, {n}, {name})"));
        self.host.resources_mut(|r| {
            let id = r.request(kind, start, n, name, ResFlags::EMPTY)?;
            r.get(id).ok_or(IoError::Mm(MmError::NotFound))
        })
    }
    fn release_resource(&mut self, kind: ResKind, start: u64, n: u64) -> Result<(), IoError> {
        let f = match kind {
            ResKind::Io => "release_region",
            ResKind::Mem => "release_mem_region",
        };
        self.host.log(format_args!("{f}({start:#x}, {n})"));
        Ok(self.host.resources_mut(|r| r.release(kind, start, n))?)
    }
    fn resource_row(&self, kind: ResKind, index: usize) -> Result<Option<Row>, IoError> {
        Ok(self.host.resources(|r| r.rows(kind).nth(index)))
    }
    fn port_in(&mut self, port: u64, width: Width) -> Result<u32, IoError> {
        let p = Self::port_range(port, width, 1)?;
        Ok(self.host.port_in(p, width))
    }
    fn port_out(
        &mut self,
        port: u64,
        width: Width,
        value: u32,
        force: bool,
    ) -> Result<(), IoError> {
        let p = Self::port_range(port, width, 1)?;
        if !force {
            self.check_port_write(port, width)?;
        }
        self.host
            .log(format_args!("out{}({value:#x}, {port:#x})", width.letter()));
        self.host.port_out(p, width, value);
        Ok(())
    }
    fn port_in_str(&mut self, port: u64, width: Width, buf: &mut [u8]) -> Result<(), IoError> {
        let count = buf.len() as u64 / width.bytes();
        let p = Self::port_range(port, width, count)?;
        let n = (count * width.bytes()) as usize;
        self.host.port_in_str(p, width, &mut buf[..n]);
        Ok(())
    }
    fn port_out_str(
        &mut self,
        port: u64,
        width: Width,
        buf: &[u8],
        force: bool,
    ) -> Result<(), IoError> {
        let count = buf.len() as u64 / width.bytes();
        let p = Self::port_range(port, width, count)?;
        if !force {
            self.check_port_write(port, width)?;
        }
        self.host
            .log(format_args!("outs{}({port:#x}, {count})", width.letter()));
        let n = (count * width.bytes()) as usize;
        self.host.port_out_str(p, width, &buf[..n]);
        Ok(())
    }
    fn mmio_read(&self, virt: u64, width: Width) -> Result<u64, IoError> {
        last_of(virt, width.bytes())?;
        Ok(self.host.raw_load(virt, width)?)
    }
    fn mmio_write(
        &mut self,
        virt: u64,
        width: Width,
        value: u64,
        force: bool,
    ) -> Result<(), IoError> {
        if !force {
            self.check_mem_write(virt, width.bytes())?;
        } else {
            last_of(virt, width.bytes())?;
        }
        self.host.log(format_args!(
            "write{}({value:#x}, {virt:#x})",
            width.letter()
        ));
        Ok(self.host.raw_store(virt, width, value)?)
    }
    fn peek(&self, virt: u64, buf: &mut [u8]) -> Result<(), IoError> {
        last_of(virt, buf.len() as u64)?;
        Ok(self.host.raw_read(virt, buf)?)
    }
    fn raw_fill(&mut self, virt: u64, len: u64, byte: u8, force: bool) -> Result<(), IoError> {
        if !force {
            self.check_mem_write(virt, len)?;
        } else {
            last_of(virt, len)?;
        }
        self.host
            .log(format_args!("fill({virt:#x}, {len}, {byte:#x})"));
        Ok(self.host.raw_fill(virt, len, byte)?)
    }
    fn raw_copy(&mut self, dst: u64, src: u64, len: u64, force: bool) -> Result<(), IoError> {
        last_of(src, len)?;
        if !force {
            self.check_mem_write(dst, len)?;
        } else {
            last_of(dst, len)?;
        }
        self.host
            .log(format_args!("copy({dst:#x}, {src:#x}, {len})"));
        Ok(self.host.raw_copy(dst, src, len)?)
    }
}
