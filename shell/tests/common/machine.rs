//! A simulated machine for host tests: the shell's `Mm` over a real
//! `mm::buddy::Buddy` and a real `mm::slab::Slab` on 64 MiB of simulated RAM, the
//! way the kernel glue does it (the slab methods through the `shell::*_in`
//! helpers and a `shell::PoolTable`, as the kernel does).
//!
//! Layout (PFNs): RAM `[0x1, 0x9f)` and `[0x100, 0x3f00)`, so PFN 0, the
//! legacy hole `[0x9f, 0x100)` and the top `[0x3f00, 0x4000)` are not RAM; the
//! "kernel image" `[0x100, 0x300)` is reserved `KERNEL_INIT`. lowmem is 32 MiB:
//! DMA `[0, 0x1000)`, NORMAL `[0x1000, 0x2000)`, UNMAPPED `[0x2000, 0x4000)`. The
//! direct map puts physical address `p < 32 MiB` at `DIRECT_MAP + p`.
//!
//! Memory that nobody wrote reads as a pattern that depends on the address
//! ([`poison`]), so zeroing and copying are visible in `dump`.

use mm::buddy::Buddy;
use mm::fault::{FaultAttr, FaultConfig, FaultSite};
use mm::slab::{ObjectInfo, Slab, SlabFlags, SlabReport, SlubDebugOutcome};
use mm::{Gfp, MmError, MmStat, Page, PageFlags, Pfn, PhysMem, Zone, PAGE_SIZE};
use shell::{
    addr_to_pfn_in, CacheRow, KmallocBench, KmallocObj, MemLayout, Mm, PageBlock, PageInfo,
    PageSummary, Platform, PoolElem, PoolInfo, PoolSource, PoolTable, Shell, SlabObj, Trap,
    VersionInfo, ZoneStat,
};
use std::collections::HashMap;
use std::fmt;

/// Frames described by the mem_map: 64 MiB.
pub const NPAGES: u32 = 0x4000;
/// First PFN of ZONE_UNMAPPED: 32 MiB.
pub const LOWMEM: u32 = 0x2000;
/// RAM from the "boot memory map".
pub const RAM: [(u32, u32); 2] = [(0x1, 0x9f), (0x100, 0x3f00)];
/// The "kernel image": reserved RAM with `KERNEL_INIT`.
pub const KERNEL: (u32, u32) = (0x100, 0x300);
/// Where the direct map starts (the kernel's).
pub const DIRECT_MAP: u64 = mm::layout::DIRECT_MAP_BASE;

/// The byte at physical address `phys` before anybody writes it: never 0, and
/// different in neighbouring pages.
pub fn poison(phys: u64) -> u8 {
    let v = (phys as u8) ^ ((phys >> 12) as u8).wrapping_mul(0x3b) ^ 0xa5;
    if v == 0 {
        0x5a
    } else {
        v
    }
}

/// Sparse simulated physical memory: pages are materialised on first write.
/// Physical addresses below `lowmem` are in the direct map.
pub struct SimMem {
    pages: HashMap<u64, Box<[u8; PAGE_SIZE]>>,
    lowmem: Pfn,
}

impl SimMem {
    fn page_mut(&mut self, pfn: u64) -> &mut [u8; PAGE_SIZE] {
        self.pages.entry(pfn).or_insert_with(|| {
            let base = pfn * PAGE_SIZE as u64;
            let mut p = Box::new([0u8; PAGE_SIZE]);
            for (i, b) in p.iter_mut().enumerate() {
                *b = poison(base + i as u64);
            }
            p
        })
    }
}

impl PhysMem for SimMem {
    fn virt_of(&self, phys: u64) -> Option<u64> {
        (phys < self.lowmem.phys()).then_some(DIRECT_MAP + phys)
    }
    fn phys_of(&self, virt: u64) -> Option<u64> {
        let p = virt.checked_sub(DIRECT_MAP)?;
        (p < self.lowmem.phys()).then_some(p)
    }
    fn direct_offset(&self) -> u64 {
        DIRECT_MAP
    }
    fn fill(&mut self, phys: u64, len: usize, byte: u8) {
        for (a, n) in chunks(phys, len) {
            let off = (a % PAGE_SIZE as u64) as usize;
            self.page_mut(a / PAGE_SIZE as u64)[off..off + n].fill(byte);
        }
    }
    fn read(&self, phys: u64, buf: &mut [u8]) {
        let mut done = 0;
        for (a, n) in chunks(phys, buf.len()) {
            let off = (a % PAGE_SIZE as u64) as usize;
            let dst = &mut buf[done..done + n];
            match self.pages.get(&(a / PAGE_SIZE as u64)) {
                Some(p) => dst.copy_from_slice(&p[off..off + n]),
                None => {
                    for (i, b) in dst.iter_mut().enumerate() {
                        *b = poison(a + i as u64);
                    }
                }
            }
            done += n;
        }
    }
    fn write(&mut self, phys: u64, buf: &[u8]) {
        let mut done = 0;
        for (a, n) in chunks(phys, buf.len()) {
            let off = (a % PAGE_SIZE as u64) as usize;
            self.page_mut(a / PAGE_SIZE as u64)[off..off + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
    }
}

/// `[phys, phys + len)` cut at page boundaries: `(start, bytes)` pieces, so that
/// each page is looked up once.
fn chunks(phys: u64, len: usize) -> impl Iterator<Item = (u64, usize)> {
    let end = phys + len as u64;
    let mut a = phys;
    std::iter::from_fn(move || {
        (a < end).then(|| {
            let next = ((a / PAGE_SIZE as u64) + 1) * PAGE_SIZE as u64;
            let n = (next.min(end) - a) as usize;
            let piece = (a, n);
            a += n as u64;
            piece
        })
    })
}

/// A fresh mem_map for [`machine`] (garbage is fine: `page_init` overwrites it).
pub fn mem_map() -> Vec<Page> {
    vec![Page::reserved(Zone::Dma); NPAGES as usize]
}

/// The simulated kernel: output, a log of the mutating `Mm` calls, the buddy
/// allocator and the memory.
pub struct Machine<'a> {
    /// Everything the shell wrote.
    pub out: String,
    /// Every allocation and release call, named after the reference function,
    /// e.g. `__free_pages(0x1000, 2)`.
    pub calls: Vec<String>,
    /// The page allocator.
    pub b: Buddy<'a>,
    /// Physical memory.
    pub mem: SimMem,
    /// The slab allocator.
    pub slab: Box<Slab>,
    /// The shell's mempools.
    pub pools: Box<PoolTable>,
    /// The fake cycle counter: every read advances it by [`CLOCK_STEP`].
    pub clock: u64,
    /// A `selftest heap` case to report as failed.
    pub heap_fail: Option<&'static str>,
    /// Calls of `kmem_cache_shrink_all` (not logged in `calls`: it frees no
    /// object of a handle).
    pub shrinks: u32,
}

/// Cycles between two reads of the fake clock.
pub const CLOCK_STEP: u64 = 1_000_000;

/// A booted machine over `map` and a shell that printed its banner and prompt.
pub fn machine(map: &mut [Page]) -> (Shell, Machine<'_>) {
    machine_with_lowmem(map, LOWMEM)
}

/// [`machine`] with another lowmem limit (`NPAGES`: no ZONE_UNMAPPED memory).
pub fn machine_with_lowmem(map: &mut [Page], lowmem: u32) -> (Shell, Machine<'_>) {
    machine_with(map, lowmem, &RAM, KERNEL)
}

/// Frames of the mem_map of [`small_machine`]: 20 MiB.
pub const SMALL_NPAGES: u32 = 0x1400;

/// A machine with little RAM, for fuzzing (`Buddy::check` walks the whole
/// mem_map, so it is cheap here): a mem_map of [`SMALL_NPAGES`], RAM
/// `[0x0, 0x9f)` (from PFN 0, as in the kernel), `[0x100, 0x600)` (DMA; its
/// first 0x40 pages are the "kernel") and `[0x1000, 0x1400)`, lowmem at
/// 18 MiB: NORMAL `[0x1000, 0x1200)` and UNMAPPED `[0x1200, 0x1400)`, 2 MiB
/// each. `map` must have `SMALL_NPAGES` entries.
pub fn small_machine(map: &mut [Page]) -> (Shell, Machine<'_>) {
    machine_with(
        map,
        0x1200,
        &[(0x0, 0x9f), (0x100, 0x600), (0x1000, 0x1400)],
        (0x100, 0x140),
    )
}

/// A booted machine over `map` with these RAM ranges, lowmem limit and reserved
/// "kernel image" (PFNs).
pub fn machine_with<'a>(
    map: &'a mut [Page],
    lowmem: u32,
    ram: &[(u32, u32)],
    kernel: (u32, u32),
) -> (Shell, Machine<'a>) {
    let ram: Vec<(Pfn, Pfn)> = ram.iter().map(|&(s, e)| (Pfn(s), Pfn(e))).collect();
    let reserved = [(Pfn(kernel.0), Pfn(kernel.1), PageFlags::KERNEL_INIT)];
    let npages = map.len() as u32;
    let mut b = Buddy::page_init(map, Pfn(lowmem), &ram, &reserved).unwrap();
    // The slab liveness bitmap over every frame of the map (leaked: test code).
    let bits = vec![0u64; Buddy::slab_bits_words(npages)];
    b.attach_slab_bits(Box::leak(bits.into_boxed_slice()));
    let mut k = Machine {
        out: String::new(),
        calls: Vec::new(),
        mem: SimMem {
            pages: HashMap::new(),
            lowmem: b.lowmem(),
        },
        b,
        slab: Box::new(Slab::new()),
        pools: Box::new(PoolTable::new()),
        clock: 0,
        heap_fail: None,
        shrinks: 0,
    };
    let mut sh = Shell::new();
    sh.banner_and_prompt(&mut k);
    (sh, k)
}

impl Machine<'_> {
    fn log(&mut self, call: String) {
        self.calls.push(call);
    }

    /// The physical range of `[virt, virt + len)` if all of it is in the direct map.
    fn direct(&self, virt: u64, len: u64) -> Result<u64, MmError> {
        let phys = self.mem.phys_of(virt).ok_or(MmError::NotRam(virt))?;
        let last = virt
            .checked_add(len.saturating_sub(1))
            .ok_or(MmError::NotRam(virt))?;
        self.mem.phys_of(last).ok_or(MmError::NotRam(last))?;
        Ok(phys)
    }
}

impl fmt::Write for Machine<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.push_str(s);
        Ok(())
    }
}

impl Platform for Machine<'_> {
    fn version_info(&self) -> VersionInfo {
        VersionInfo {
            version: "0.1.0",
            boot: "sim",
            cmdline: String::new(),
            tainted: None,
        }
    }
    fn clear_screen(&mut self) {}
    fn reboot(&mut self) -> &'static str {
        "simulated"
    }
    fn poweroff(&mut self) -> &'static str {
        "simulated"
    }
    fn trap(&mut self, _t: Trap) -> Result<(), &'static str> {
        Err("simulated")
    }
}

impl Mm for Machine<'_> {
    fn mm_stat(&self) -> MmStat {
        self.slab.mm_stat(self.b.mm_stat())
    }
    fn zone_stat(&self, zone: Zone) -> Option<ZoneStat> {
        let z = self.b.zone_stat(zone);
        (z.present > 0).then(|| ZoneStat {
            total: z.managed * 4096,
            used: (z.managed - z.free) * 4096,
            free: z.free * 4096,
            wmark: z.wmark.map(|w| w * 4096),
        })
    }
    fn alloc_pages(&mut self, zone: Zone, n: u32, flags: PageFlags) -> Result<PageBlock, MmError> {
        self.log(format!("alloc_pages({zone}, {n}, {flags})"));
        let pfn = self.b.alloc_pages_zone(zone, u64::from(n), flags)?;
        Ok(PageBlock {
            pfn,
            n,
            zone,
            flags,
            virt: self.b.page_address(pfn, &self.mem),
        })
    }
    fn free_pages(&mut self, pfn: Pfn, n: u32) -> Result<(), MmError> {
        self.log(format!("free_pages({pfn}, {n})"));
        self.b.free_pages_count(pfn, u64::from(n))
    }
    fn free_pages_order(&mut self, pfn: Pfn, order: u32) -> Result<(), MmError> {
        self.log(format!("__free_pages({pfn}, {order})"));
        self.b.__free_pages(pfn, order)
    }

    fn zone_info(&self, zone: Zone) -> Result<mm::buddy::ZoneStat, MmError> {
        Ok(self.b.zone_stat(zone))
    }
    fn mem_layout(&self) -> Result<MemLayout, MmError> {
        Ok(MemLayout::from_buddy(&self.b))
    }
    fn page_info(&self, pfn: Pfn) -> Result<PageInfo, MmError> {
        PageInfo::from_buddy(&self.b, pfn, &self.mem)
    }
    fn addr_to_pfn(&self, addr: u64) -> Result<Pfn, MmError> {
        addr_to_pfn_in(&self.b, &self.mem, addr)
    }
    fn page_summary(&self, start: Pfn, end: Pfn) -> Result<PageSummary, MmError> {
        Ok(PageSummary::from_buddy(&self.b, start, end))
    }

    fn alloc_pages_order(&mut self, gfp: Gfp, order: u32) -> Result<Pfn, MmError> {
        self.log(format!("alloc_pages({:#x}, {order})", gfp.0));
        self.b.alloc_pages_mem(gfp, order, &mut self.mem)
    }
    fn alloc_page(&mut self, gfp: Gfp) -> Result<Pfn, MmError> {
        self.log(format!("alloc_page({:#x})", gfp.0));
        self.b.alloc_pages_mem(gfp, 0, &mut self.mem)
    }
    fn get_free_pages(&mut self, gfp: Gfp, order: u32) -> Result<u64, MmError> {
        self.log(format!("__get_free_pages({:#x}, {order})", gfp.0));
        self.b.__get_free_pages(gfp, order, &mut self.mem)
    }
    fn get_free_page(&mut self, gfp: Gfp) -> Result<u64, MmError> {
        self.log(format!("__get_free_page({:#x})", gfp.0));
        self.b.__get_free_page(gfp, &mut self.mem)
    }
    fn get_zeroed_page(&mut self, gfp: Gfp) -> Result<u64, MmError> {
        self.log(format!("get_zeroed_page({:#x})", gfp.0));
        self.b.get_zeroed_page(gfp, &mut self.mem)
    }
    fn free_pages_addr(&mut self, virt: u64, order: u32) -> Result<(), MmError> {
        self.log(format!("free_pages({virt:#x}, {order})"));
        self.b.free_pages(virt, order, &self.mem)
    }
    fn free_page(&mut self, virt: u64) -> Result<(), MmError> {
        self.log(format!("free_page({virt:#x})"));
        self.b.free_page(virt, &self.mem)
    }
    fn get_page(&mut self, pfn: Pfn) -> Result<u32, MmError> {
        self.log(format!("get_page({pfn})"));
        self.b.get_page(pfn)
    }
    fn put_page(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        self.log(format!("put_page({pfn})"));
        self.b.put_page(pfn)
    }

    fn page_alloc(&mut self) -> Result<Pfn, MmError> {
        self.log("page_alloc()".into());
        self.b.page_alloc(&mut self.mem)
    }
    fn page_decref(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        self.log(format!("page_decref({pfn})"));
        self.b.page_decref(pfn)
    }

    fn bzero(&mut self, virt: u64, len: u64) -> Result<(), MmError> {
        self.log(format!("bzero({virt:#x}, {len})"));
        let phys = self.direct(virt, len)?;
        self.mem.fill(phys, len as usize, 0);
        Ok(())
    }
    fn bcopy(&mut self, src: u64, dst: u64, len: u64) -> Result<(), MmError> {
        self.log(format!("bcopy({src:#x}, {dst:#x}, {len})"));
        let s = self.direct(src, len)?;
        let d = self.direct(dst, len)?;
        let mut buf = vec![0u8; len as usize];
        self.mem.read(s, &mut buf);
        self.mem.write(d, &buf);
        Ok(())
    }
    fn read_bytes(&self, virt: u64, buf: &mut [u8]) -> Result<(), MmError> {
        let phys = self.direct(virt, buf.len() as u64)?;
        self.mem.read(phys, buf);
        Ok(())
    }

    fn kmalloc(&mut self, size: u64, gfp: Gfp) -> Result<KmallocObj, MmError> {
        self.log(format!("kmalloc({size}, {:#x})", gfp.0));
        shell::kmalloc_in(&mut self.slab, &mut self.mem, &mut self.b, size, gfp)
    }
    fn kfree(&mut self, virt: u64) -> Result<(), MmError> {
        self.log(format!("kfree({virt:#x})"));
        self.slab.kfree(&mut self.mem, &mut self.b, virt)
    }
    fn kmem_cache_create(
        &mut self,
        name: &str,
        size: u64,
        align: u64,
        flags: SlabFlags,
    ) -> Result<CacheRow, MmError> {
        self.log(format!(
            "kmem_cache_create({name}, {size}, {align}, {:#x})",
            flags.0
        ));
        shell::kmem_cache_create_in(&mut self.slab, name, size, align, flags)
    }
    fn kmem_cache_alloc(&mut self, cache: &str, gfp: Gfp) -> Result<SlabObj, MmError> {
        self.log(format!("kmem_cache_alloc({cache}, {:#x})", gfp.0));
        shell::kmem_cache_alloc_in(&mut self.slab, &mut self.mem, &mut self.b, cache, gfp)
    }
    fn kmem_cache_free(&mut self, cache: &str, virt: u64) -> Result<(), MmError> {
        self.log(format!("kmem_cache_free({cache}, {virt:#x})"));
        shell::kmem_cache_free_in(&mut self.slab, &mut self.mem, &mut self.b, cache, virt)
    }
    fn kmem_cache_destroy(&mut self, cache: &str) -> Result<(), MmError> {
        self.log(format!("kmem_cache_destroy({cache})"));
        shell::kmem_cache_destroy_in(&mut self.slab, &mut self.mem, &mut self.b, cache)
    }
    fn kmem_cache_shrink(&mut self, cache: &str) -> Result<u64, MmError> {
        self.log(format!("kmem_cache_shrink({cache})"));
        shell::kmem_cache_shrink_in(&mut self.slab, &mut self.mem, &mut self.b, cache)
    }
    fn kmem_cache_shrink_all(&mut self) -> Result<u64, MmError> {
        self.shrinks += 1;
        self.slab.shrink_all(&mut self.mem, &mut self.b)
    }
    fn kmem_cache_info(&self, cache: &str) -> Result<CacheRow, MmError> {
        CacheRow::named(&self.slab, cache)
    }
    fn slab_cache_at(&self, index: usize) -> Result<Option<CacheRow>, MmError> {
        Ok(CacheRow::at(&self.slab, index))
    }
    fn slab_object_info(&self, virt: u64) -> Result<ObjectInfo, MmError> {
        self.slab.object_info(&self.mem, &self.b, virt)
    }
    fn mempool_create(
        &mut self,
        name: &str,
        min_nr: u64,
        source: &PoolSource,
    ) -> Result<PoolInfo, MmError> {
        self.log(format!("mempool_create({name}, {min_nr}, {source:?})"));
        self.pools.create(
            &mut self.slab,
            &mut self.mem,
            &mut self.b,
            name,
            min_nr,
            source,
        )
    }
    fn mempool_alloc(&mut self, pool: &str, gfp: Gfp) -> Result<PoolElem, MmError> {
        self.log(format!("mempool_alloc({pool}, {:#x})", gfp.0));
        self.pools
            .alloc(&mut self.slab, &mut self.mem, &mut self.b, pool, gfp)
    }
    fn mempool_free(&mut self, pool: &str, virt: u64) -> Result<(), MmError> {
        self.log(format!("mempool_free({pool}, {virt:#x})"));
        self.pools
            .free(&mut self.slab, &mut self.mem, &mut self.b, pool, virt)
    }
    fn mempool_destroy(&mut self, pool: &str) -> Result<(), MmError> {
        self.log(format!("mempool_destroy({pool})"));
        self.pools
            .destroy(&mut self.slab, &mut self.mem, &mut self.b, pool)
    }
    fn mempool_info(&self, pool: &str) -> Result<PoolInfo, MmError> {
        self.pools.info(pool)
    }
    fn slub_debug(&mut self, spec: &str) -> Result<SlubDebugOutcome, MmError> {
        self.log(format!("slub_debug({spec})"));
        self.slab.slub_debug(&mut self.mem, &mut self.b, spec)
    }
    fn slab_report_at(&self, index: usize) -> Result<Option<SlabReport>, MmError> {
        Ok(self.slab.reports().nth(index).copied())
    }
    fn slab_errors_total(&self) -> Result<u64, MmError> {
        Ok(self.slab.errors_total())
    }
    fn slab_clear_reports(&mut self) -> Result<(), MmError> {
        self.slab.clear_reports();
        Ok(())
    }
    fn slab_validate(&mut self, cache: Option<&str>) -> Result<u64, MmError> {
        self.log(format!("validate({cache:?})"));
        shell::slab_validate_in(&mut self.slab, &mut self.mem, &mut self.b, cache)
    }
    fn buddy_check(&self) -> Result<Option<mm::buddy::CheckError>, MmError> {
        Ok(self.b.check().err())
    }
    fn slab_check(&mut self) -> Result<shell::SlabCheck, MmError> {
        shell::slab_check_in(&mut self.slab, &mut self.mem, &mut self.b)
    }
    fn slab_selftest(&mut self, scenario: &str) -> Result<u64, MmError> {
        self.log(format!("selftest({scenario})"));
        self.slab.selftest_one(&mut self.mem, &mut self.b, scenario)
    }
    fn heap_selftest(&mut self, case: &str) -> Result<(), MmError> {
        self.log(format!("heap_selftest({case})"));
        match self.heap_fail {
            Some(bad) if bad == case => Err(MmError::Invalid("simulated failure")),
            _ => Ok(()),
        }
    }
    fn fault_attr(&self, site: FaultSite) -> Result<FaultAttr, MmError> {
        Ok(match site {
            FaultSite::PageAlloc => *self.b.fail_page_alloc(),
            FaultSite::Slab => *self.slab.failslab(),
        })
    }
    fn set_fault(&mut self, site: FaultSite, cfg: Option<FaultConfig>) -> Result<(), MmError> {
        self.log(format!("set_fault({}, {cfg:?})", site.name()));
        match site {
            FaultSite::PageAlloc => {
                self.b.set_fail_page_alloc(cfg);
                Ok(())
            }
            FaultSite::Slab => self.slab.set_failslab(&mut self.mem, &mut self.b, cfg),
        }
    }
    fn bench_kmalloc(&mut self, iters: u64) -> Result<KmallocBench, MmError> {
        self.log(format!("bench_kmalloc({iters})"));
        let clock = &mut self.clock;
        let mut tick = || {
            *clock += CLOCK_STEP;
            *clock
        };
        shell::bench_kmalloc_in(&mut self.slab, &mut self.mem, &mut self.b, iters, &mut tick)
    }
}
