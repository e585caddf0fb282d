//! Glue between the hardware-free `shell` crate and the kernel: the console
//! writer, the machine operations (`Platform`) and the memory API (`Mm`).
//!
//! Memory accesses that may fault (`trap pf` and `trap gp`, the raw memory
//! operations `bzero`, `bcopy` and `read_bytes`) go through the fault-safe
//! accessors of [`extable`]: a fault is resumed at the accessor's exception-table
//! fixup and becomes an ordinary error, and every Rust frame returns normally.
//!
//! What is left of the `longjmp` net ([`run_protected`]) is a last resort for an
//! oops, a fault in kernel code with no fixup: every input byte is fed to the
//! shell under it, so the report is printed and the shell comes back, but the
//! frames it abandons never run their destructors (undefined behaviour by Rust's
//! rules: a held lock stays held, heap memory is lost), so the kernel is marked
//! tainted, `version` says why, and `oops=panic` stops the machine instead.
//! `trap de` and `trap ud` raise such an oops on purpose, under a net of their
//! own whose abandoned frames hold nothing.

use crate::arch::extable::{self, Fault};
use crate::arch::recover::{self, run_protected};
use crate::boot::BootInfo;
use crate::drivers::input;
use crate::mm::{heap::with_slab, physmem::DirectMap, with_buddy};
use crate::{kprint, platform};
use alloc::string::String;
use core::fmt;
use mm::fault::{FaultAttr, FaultConfig, FaultSite};
use mm::slab::{ObjectInfo, SlabFlags, SlabReport, SlubDebugOutcome};
use mm::PhysMem;
use mm::{Gfp, MmError, MmStat, PageFlags, Pfn, Zone};
use shell::{
    addr_to_pfn_in, CacheRow, KmallocBench, KmallocObj, MemLayout, Mm, PageBlock, PageInfo,
    PageSummary, Platform, PoolElem, PoolInfo, PoolSource, PoolTable, Shell, SlabObj, Trap,
    VersionInfo, ZoneStat,
};
use spin::Mutex;

/// The mempools the shell created (Linux leaves `mempool_t` to its user).
/// Lock order: pools, then slab, then buddy.
static POOLS: Mutex<PoolTable> = Mutex::new(PoolTable::new());

/// The kernel as the shell sees it.
pub struct Glue {
    info: &'static BootInfo,
}

impl fmt::Write for Glue {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        kprint!("{s}");
        Ok(())
    }
}

/// Raises one CPU exception on purpose, in code with no fixup (`Pf` and `Gp`
/// go through an accessor instead, in [`Platform::trap`]).
fn raise(t: Trap) {
    // SAFETY (all arms): each instruction raises the named exception; the handler
    // reports it and either returns (#BP) or aborts the protected call of
    // `Platform::trap`, whose abandoned frames (this one and its closure) hold
    // nothing with a destructor.
    unsafe {
        match t {
            Trap::De => {
                core::arch::asm!("xor edx, edx", "xor eax, eax", "xor ecx, ecx", "div ecx", out("eax") _, out("edx") _, out("ecx") _)
            }
            Trap::Ud => core::arch::asm!("ud2"),
            Trap::Bp => core::arch::asm!("int3"),
            Trap::Gp | Trap::Pf => {}
        }
    }
}

/// A raw memory access that faulted, as the memory API's error.
fn access_error(f: Fault) -> MmError {
    match f.vector {
        14 => MmError::NotRam(f.cr2),
        _ => MmError::Invalid("the access faulted (general protection)"),
    }
}

impl Platform for Glue {
    fn version_info(&self) -> VersionInfo {
        VersionInfo {
            version: env!("CARGO_PKG_VERSION"),
            boot: self.info.path.name(),
            cmdline: String::from(self.info.cmdline.as_str()),
            tainted: recover::taint_reason(),
        }
    }
    fn clear_screen(&mut self) {
        crate::drivers::framebuffer::clear();
    }
    fn reboot(&mut self) -> &'static str {
        platform::reboot()
    }
    fn poweroff(&mut self) -> &'static str {
        platform::poweroff();
        "no power-off method worked (no ACPI S5 support yet); it is safe to switch the machine off"
    }
    fn trap(&mut self, t: Trap) -> Result<(), &'static str> {
        const ABORTED: &str = "command aborted by the CPU exception (report above)";
        let addr = match t {
            Trap::Pf => 0xdead_b000,           // unmapped
            Trap::Gp => 0x8000_0000_0000_0000, // not canonical
            _ => return run_protected(|| raise(t)).map_err(|_| ABORTED),
        };
        // SAFETY: nothing is mapped at either address, so the load reads nothing;
        // it faults and is resumed at the accessor's fixup.
        match unsafe { extable::load(addr, 8) } {
            Ok(_) => Err("the access did not fault"),
            Err(f) => {
                crate::arch::idt::report_fault(&f);
                Err(ABORTED)
            }
        }
    }
}

impl Mm for Glue {
    fn mm_stat(&self) -> MmStat {
        with_slab(|s, b| s.mm_stat(b.mm_stat()))
    }
    fn zone_stat(&self, zone: Zone) -> Option<ZoneStat> {
        with_buddy(|b| {
            let z = b.zone_stat(zone);
            (z.present > 0).then(|| ZoneStat {
                total: z.managed * 4096,
                used: (z.managed - z.free) * 4096,
                free: z.free * 4096,
                wmark: z.wmark.map(|w| w * 4096),
            })
        })
    }
    fn alloc_pages(&mut self, zone: Zone, n: u32, flags: PageFlags) -> Result<PageBlock, MmError> {
        let pfn = with_buddy(|b| b.alloc_pages_zone(zone, n as u64, flags))?;
        Ok(PageBlock {
            pfn,
            n,
            zone,
            flags,
            virt: with_buddy(|b| b.page_address(pfn, &DirectMap)),
        })
    }
    fn free_pages(&mut self, pfn: Pfn, n: u32) -> Result<(), MmError> {
        with_buddy(|b| b.free_pages_count(pfn, n as u64))
    }
    fn free_pages_order(&mut self, pfn: Pfn, order: u32) -> Result<(), MmError> {
        with_buddy(|b| b.__free_pages(pfn, order))
    }
    fn zone_info(&self, zone: Zone) -> Result<mm::buddy::ZoneStat, MmError> {
        Ok(with_buddy(|b| b.zone_stat(zone)))
    }
    fn mem_layout(&self) -> Result<MemLayout, MmError> {
        Ok(with_buddy(|b| MemLayout::from_buddy(b)))
    }
    fn page_info(&self, pfn: Pfn) -> Result<PageInfo, MmError> {
        with_buddy(|b| PageInfo::from_buddy(b, pfn, &DirectMap))
    }
    fn addr_to_pfn(&self, addr: u64) -> Result<Pfn, MmError> {
        with_buddy(|b| addr_to_pfn_in(b, &DirectMap, addr))
    }
    fn page_summary(&self, start: Pfn, end: Pfn) -> Result<PageSummary, MmError> {
        Ok(with_buddy(|b| PageSummary::from_buddy(b, start, end)))
    }
    fn alloc_pages_order(&mut self, gfp: Gfp, order: u32) -> Result<Pfn, MmError> {
        with_buddy(|b| b.alloc_pages_mem(gfp, order, &mut DirectMap))
    }
    fn alloc_page(&mut self, gfp: Gfp) -> Result<Pfn, MmError> {
        with_buddy(|b| b.alloc_pages_mem(gfp, 0, &mut DirectMap))
    }
    fn get_free_pages(&mut self, gfp: Gfp, order: u32) -> Result<u64, MmError> {
        with_buddy(|b| b.__get_free_pages(gfp, order, &mut DirectMap))
    }
    fn get_free_page(&mut self, gfp: Gfp) -> Result<u64, MmError> {
        with_buddy(|b| b.__get_free_page(gfp, &mut DirectMap))
    }
    fn get_zeroed_page(&mut self, gfp: Gfp) -> Result<u64, MmError> {
        with_buddy(|b| b.get_zeroed_page(gfp, &mut DirectMap))
    }
    fn free_pages_addr(&mut self, virt: u64, order: u32) -> Result<(), MmError> {
        with_buddy(|b| b.free_pages(virt, order, &DirectMap))
    }
    fn free_page(&mut self, virt: u64) -> Result<(), MmError> {
        with_buddy(|b| b.free_page(virt, &DirectMap))
    }
    fn get_page(&mut self, pfn: Pfn) -> Result<u32, MmError> {
        with_buddy(|b| b.get_page(pfn))
    }
    fn put_page(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        with_buddy(|b| b.put_page(pfn))
    }
    fn page_alloc(&mut self) -> Result<Pfn, MmError> {
        with_buddy(|b| b.page_alloc(&mut DirectMap))
    }
    fn page_decref(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        with_buddy(|b| b.page_decref(pfn))
    }
    fn kmalloc(&mut self, size: u64, gfp: Gfp) -> Result<KmallocObj, MmError> {
        with_slab(|s, b| shell::kmalloc_in(s, &mut DirectMap, b, size, gfp))
    }
    fn kfree(&mut self, virt: u64) -> Result<(), MmError> {
        with_slab(|s, b| s.kfree(&mut DirectMap, b, virt))
    }
    fn kmem_cache_create(
        &mut self,
        name: &str,
        size: u64,
        align: u64,
        flags: SlabFlags,
    ) -> Result<CacheRow, MmError> {
        with_slab(|s, _| shell::kmem_cache_create_in(s, name, size, align, flags))
    }
    fn kmem_cache_alloc(&mut self, cache: &str, gfp: Gfp) -> Result<SlabObj, MmError> {
        with_slab(|s, b| shell::kmem_cache_alloc_in(s, &mut DirectMap, b, cache, gfp))
    }
    fn kmem_cache_free(&mut self, cache: &str, virt: u64) -> Result<(), MmError> {
        with_slab(|s, b| shell::kmem_cache_free_in(s, &mut DirectMap, b, cache, virt))
    }
    fn kmem_cache_destroy(&mut self, cache: &str) -> Result<(), MmError> {
        with_slab(|s, b| shell::kmem_cache_destroy_in(s, &mut DirectMap, b, cache))
    }
    fn kmem_cache_shrink(&mut self, cache: &str) -> Result<u64, MmError> {
        with_slab(|s, b| shell::kmem_cache_shrink_in(s, &mut DirectMap, b, cache))
    }
    fn kmem_cache_shrink_all(&mut self) -> Result<u64, MmError> {
        with_slab(|s, b| {
            let n = s.shrink_all(&mut DirectMap, b);
            // Pages parked in the buddy's per-zone caches go back to the free
            // lists too, so that buddyinfo after `free all` equals boot.
            b.drain();
            n
        })
    }
    fn kmem_cache_info(&self, cache: &str) -> Result<CacheRow, MmError> {
        with_slab(|s, _| CacheRow::named(s, cache))
    }
    fn slab_cache_at(&self, index: usize) -> Result<Option<CacheRow>, MmError> {
        Ok(with_slab(|s, _| CacheRow::at(s, index)))
    }
    fn slab_object_info(&self, virt: u64) -> Result<ObjectInfo, MmError> {
        with_slab(|s, b| s.object_info(&DirectMap, b, virt))
    }
    fn mempool_create(
        &mut self,
        name: &str,
        min_nr: u64,
        source: &PoolSource,
    ) -> Result<PoolInfo, MmError> {
        let mut pools = POOLS.lock();
        with_slab(|s, b| pools.create(s, &mut DirectMap, b, name, min_nr, source))
    }
    fn mempool_alloc(&mut self, pool: &str, gfp: Gfp) -> Result<PoolElem, MmError> {
        let mut pools = POOLS.lock();
        with_slab(|s, b| pools.alloc(s, &mut DirectMap, b, pool, gfp))
    }
    fn mempool_free(&mut self, pool: &str, virt: u64) -> Result<(), MmError> {
        let mut pools = POOLS.lock();
        with_slab(|s, b| pools.free(s, &mut DirectMap, b, pool, virt))
    }
    fn mempool_destroy(&mut self, pool: &str) -> Result<(), MmError> {
        let mut pools = POOLS.lock();
        with_slab(|s, b| pools.destroy(s, &mut DirectMap, b, pool))
    }
    fn mempool_info(&self, pool: &str) -> Result<PoolInfo, MmError> {
        POOLS.lock().info(pool)
    }
    fn slub_debug(&mut self, spec: &str) -> Result<SlubDebugOutcome, MmError> {
        with_slab(|s, b| s.slub_debug(&mut DirectMap, b, spec))
    }
    fn slab_report_at(&self, index: usize) -> Result<Option<SlabReport>, MmError> {
        Ok(with_slab(|s, _| s.reports().nth(index).copied()))
    }
    fn slab_errors_total(&self) -> Result<u64, MmError> {
        Ok(with_slab(|s, _| s.errors_total()))
    }
    fn slab_clear_reports(&mut self) -> Result<(), MmError> {
        with_slab(|s, _| s.clear_reports());
        Ok(())
    }
    fn slab_validate(&mut self, cache: Option<&str>) -> Result<u64, MmError> {
        with_slab(|s, b| shell::slab_validate_in(s, &mut DirectMap, b, cache))
    }
    fn buddy_check(&self) -> Result<Option<mm::buddy::CheckError>, MmError> {
        Ok(with_buddy(|b| b.check().err()))
    }
    fn slab_check(&mut self) -> Result<shell::SlabCheck, MmError> {
        with_slab(|s, b| shell::slab_check_in(s, &mut DirectMap, b))
    }
    fn slab_selftest(&mut self, scenario: &str) -> Result<u64, MmError> {
        with_slab(|s, b| s.selftest_one(&mut DirectMap, b, scenario))
    }
    fn heap_selftest(&mut self, case: &str) -> Result<(), MmError> {
        crate::mm::heap::selftest(case).map_err(MmError::Invalid)
    }
    fn fault_attr(&self, site: FaultSite) -> Result<FaultAttr, MmError> {
        Ok(match site {
            FaultSite::PageAlloc => with_buddy(|b| *b.fail_page_alloc()),
            FaultSite::Slab => with_slab(|s, _| *s.failslab()),
        })
    }
    fn set_fault(&mut self, site: FaultSite, cfg: Option<FaultConfig>) -> Result<(), MmError> {
        match site {
            FaultSite::PageAlloc => {
                with_buddy(|b| b.set_fail_page_alloc(cfg));
                Ok(())
            }
            FaultSite::Slab => with_slab(|s, b| s.set_failslab(&mut DirectMap, b, cfg)),
        }
    }
    fn bench_kmalloc(&mut self, iters: u64) -> Result<KmallocBench, MmError> {
        let mut clock = crate::arch::cpu::rdtsc;
        with_slab(|s, b| shell::bench_kmalloc_in(s, &mut DirectMap, b, iters, &mut clock))
    }
    fn bzero(&mut self, virt: u64, len: u64) -> Result<(), MmError> {
        direct_range(virt, len)?;
        // SAFETY: the range lies in the direct map (checked above) and inside a
        // live object the shell allocated; a fault would be returned, not taken.
        unsafe { extable::fill(virt, 0, len) }.map_err(access_error)
    }
    fn bcopy(&mut self, src: u64, dst: u64, len: u64) -> Result<(), MmError> {
        direct_range(src, len)?;
        direct_range(dst, len)?;
        // SAFETY: both ranges lie in the direct map (checked above); the shell
        // only passes ranges inside live objects it allocated; `copy` handles
        // overlap like MOS bcopy.
        unsafe { extable::copy(dst, src, len) }.map_err(access_error)
    }
    fn read_bytes(&self, virt: u64, buf: &mut [u8]) -> Result<(), MmError> {
        direct_range(virt, buf.len() as u64)?;
        let dst = buf.as_mut_ptr() as u64;
        // SAFETY: the source lies in the direct map (checked above) and is only
        // read; the destination is `buf`, which we borrow mutably.
        unsafe { extable::copy(dst, virt, buf.len() as u64) }.map_err(access_error)
    }
}

/// The physical start of `[virt, virt+len)` if all of it is in the direct map.
fn direct_range(virt: u64, len: u64) -> Result<u64, MmError> {
    let phys = DirectMap.phys_of(virt).ok_or(MmError::NotRam(virt))?;
    let last = virt
        .checked_add(len.saturating_sub(1))
        .ok_or(MmError::NotRam(virt))?;
    DirectMap.phys_of(last).ok_or(MmError::NotRam(last))?;
    Ok(phys)
}

/// Runs the shell on the console forever.
pub fn run(info: &'static BootInfo) -> ! {
    let mut glue = Glue { info };
    let mut sh = Shell::new();
    if let Some(on) = shell::cmdline_check(info.cmdline.as_str()) {
        sh.set_check(on);
    }
    sh.banner_and_prompt(&mut glue);
    loop {
        let b = input::wait_byte();
        if run_protected(|| sh.feed(b, &mut glue)).is_err() {
            kprint!(
                "error: command aborted by an unexpected CPU exception (report above)\r\n{}",
                shell::PROMPT
            );
        }
    }
}
