//! The kernel side of memory management: it owns the address space (see
//! [`paging`]), sizes the zones, places `mem_map`, and runs the hardware-free
//! allocators of the `mm` crate over real memory.
//!
//! Boot sequence ([`init`]):
//! 1. the zone limit: ZONE_DMA below 16 MiB, ZONE_NORMAL up to `mm.lowmem=`
//!    (default [`DEFAULT_LOWMEM`]), ZONE_UNMAPPED_IN_PGT above;
//! 2. a boot frame allocator (`mm::bootmem`) places `mem_map` (16 bytes per
//!    frame), the slab liveness bitmap (16 bytes per direct-mapped frame, Linux's
//!    `page_ext` for the slab) and the page tables in ZONE_NORMAL;
//! 3. the kernel switches to its own page tables;
//! 4. the buddy allocator takes every usable and boot-reclaimable frame; the image,
//!    `mem_map`, slab bitmap and page tables are reserved as `PAGE_KERNEL_INIT`,
//!    and the slab bitmap is attached (slab blocks come only from the frames it
//!    covers, the direct map);
//! 5. the zones' watermarks are set from `min_free_kbytes=` (default Linux's
//!    `sqrt(16 * lowmem KiB)`): below `min` only the kernel heap allocates
//!    (`Gfp::MEMALLOC`), so the shell keeps working when a user took every page;
//! 6. `slub_debug=` from the command line is applied to the slab caches, before
//!    the first heap allocation (Linux syntax, e.g. `slub_debug=FZPU,kmalloc-64`);
//! 7. `fail_page_alloc=` and `failslab=` (Linux syntax
//!    `<interval>,<probability>,<space>,<times>`) arm fault injection; the heap's
//!    own requests carry `Gfp::MEMALLOC` and are never failed.

//!
//! # Lock order
//!
//! Every lock of the memory subsystem, outermost first: the vm space
//! ([`vmalloc::with_vmspace`]; the shell's own page-table state and mempools are
//! at this level too, never held together with it), the page tables
//! ([`paging::with_page_tables`]), slab ([`heap::with_slab`], which is also the
//! kernel heap), buddy ([`with_buddy`]); the resource trees ([`iomem`]) are
//! taken last, alone. Code holding the buddy lock never allocates from the heap;
//! `mm::vmalloc` uses the heap only between backend calls, each of which takes
//! the page-table or buddy lock for its own length.

pub mod bootmem;
pub mod heap;
pub mod iomem;
pub mod paging;
pub mod physmem;
pub mod vmalloc;

use crate::boot::{BootInfo, MemKind};
use bootmem::BootAlloc;
use mm::buddy::Buddy;
use mm::fault::{FaultConfig, FaultSite};
use mm::layout::DIRECT_MAP_BASE;
use mm::{PageFlags, Pfn};
use spin::Mutex;

/// The buddy allocator over all of RAM.
static BUDDY: Mutex<Option<Buddy<'static>>> = Mutex::new(None);

/// Runs `f` with the buddy allocator locked. `f` must not allocate from the
/// kernel heap (the heap may need this lock).
pub fn with_buddy<R>(f: impl FnOnce(&mut Buddy<'static>) -> R) -> R {
    let mut g = BUDDY.lock();
    f(g.as_mut().expect("mm not initialised"))
}

/// Facts about the boot-time memory set-up, for `zoneinfo` and the README numbers.
#[derive(Clone, Copy, Debug, Default)]
pub struct MmSetup {
    pub lowmem: u64,
    pub ram_end: u64,
    pub mem_map_phys: u64,
    pub mem_map_bytes: u64,
    /// The slab liveness bitmap (`Buddy::attach_slab_bits`), covering every frame
    /// below `min(lowmem, ram_end)`.
    pub slab_bits_phys: u64,
    pub slab_bits_bytes: u64,
    /// rdtsc cycles spent in [`init`].
    pub init_cycles: u64,
}

/// Boot-time facts, set once by [`init`].
pub static SETUP: spin::Once<MmSetup> = spin::Once::new();

/// Default end of the direct map (and of ZONE_NORMAL): 1 GiB, so that `make run`'s
/// 2 GiB has all three zones.
pub const DEFAULT_LOWMEM: u64 = 1 << 30;

/// The direct-map limit asked for on the command line (a size such as `1G`,
/// `512M` or `0x40000000`, in the shell's number syntax), else the default; at
/// least 32 MiB and a multiple of 2 MiB.
pub fn lowmem_limit(info: &BootInfo) -> u64 {
    let asked = info
        .cmdline
        .get("mm.lowmem")
        .and_then(|v| shell::parse::parse_u64(v).ok());
    let v = asked.unwrap_or(DEFAULT_LOWMEM).max(32 << 20);
    v & !((2 << 20) - 1)
}

/// Sets up the kernel's address space and physical-memory management.
pub fn init(info: &BootInfo) {
    let t0 = crate::arch::cpu::rdtsc();
    paging::set_loader_offset(info.direct_map_offset);
    let lowmem = lowmem_limit(info);
    let ram_end = info.memory_map.ram_end();
    let mut alloc = BootAlloc(mm::bootmem::BootAlloc::new(&info.memory_map, lowmem));
    let max_pfn = ram_end.div_ceil(4096);
    let mem_map_bytes = max_pfn * core::mem::size_of::<mm::Page>() as u64;
    let mem_map_phys = alloc
        .alloc_contiguous(mem_map_bytes)
        .expect("no room for mem_map");
    // The slab liveness bitmap covers the direct-mapped RAM (ZONE_DMA and
    // ZONE_NORMAL), where every slab block lies.
    let lowmem_pfns = (lowmem / 4096).min(max_pfn) as u32;
    let slab_bits_words = Buddy::slab_bits_words(lowmem_pfns);
    let slab_bits_bytes = (slab_bits_words * 8) as u64;
    let slab_bits_phys = alloc
        .alloc_contiguous(slab_bits_bytes)
        .expect("no room for the slab bitmap");
    paging::build_and_switch(
        info,
        lowmem.min(ram_end.next_multiple_of(2 << 20)),
        &mut alloc,
    );
    alloc.trim();
    iomem::register_boot(
        info,
        (
            mem_map_phys,
            (mem_map_phys + mem_map_bytes).next_multiple_of(4096),
        ),
        (
            slab_bits_phys,
            (slab_bits_phys + slab_bits_bytes).next_multiple_of(4096),
        ),
        alloc.used(),
    );

    // RAM the allocator manages: usable and boot-reclaimable memory (everything
    // the loader left has been copied into BootInfo by now), plus the image.
    let mut ram = [(Pfn(0), Pfn(0)); crate::boot::MEMMAP_MAX];
    let mut nram = 0;
    let mut reserved = [(Pfn(0), Pfn(0), PageFlags::EMPTY); crate::boot::MEMMAP_MAX + 8];
    let mut nres = 0;
    for r in info.memory_map.entries() {
        let (s, e) = (r.start.div_ceil(4096) as u32, (r.end / 4096) as u32);
        match r.kind {
            MemKind::Usable | MemKind::BootReclaimable if s < e => {
                ram[nram] = (Pfn(s), Pfn(e));
                nram += 1;
            }
            MemKind::Kernel => {
                let (s, e) = ((r.start / 4096) as u32, r.end.div_ceil(4096) as u32);
                ram[nram] = (Pfn(s), Pfn(e));
                nram += 1;
                reserved[nres] = (
                    Pfn(s),
                    Pfn(e),
                    PageFlags::KERNEL_INIT | PageFlags::KERNEL | PageFlags::PGT_MAPPED,
                );
                nres += 1;
            }
            _ => {}
        }
    }
    // Merge touching RAM ranges (e.g. usable next to the image).
    let ram = mm::bootmem::merge_ranges(&mut ram[..nram]);
    for &(s, e) in alloc.used() {
        reserved[nres] = (
            Pfn::containing(s),
            Pfn::containing(e + 4095),
            PageFlags::KERNEL_INIT | PageFlags::KERNEL | PageFlags::PGT_MAPPED,
        );
        nres += 1;
    }
    // SAFETY: [mem_map_phys, +mem_map_bytes) was taken from the boot allocator for
    // this array alone, lies in the direct map, is suitably aligned (a page), and
    // every bit pattern is a valid `Page`; it lives for the rest of the run.
    let mem_map = unsafe {
        core::slice::from_raw_parts_mut(
            (DIRECT_MAP_BASE + mem_map_phys) as *mut mm::Page,
            max_pfn as usize,
        )
    };
    // SAFETY: [slab_bits_phys, +slab_bits_bytes) was taken from the boot allocator
    // for this bitmap alone, lies in the direct map (the boot allocator stays below
    // `lowmem`), is page aligned, and every bit pattern is a valid `u64`; it lives
    // for the rest of the run.
    let slab_bits = unsafe {
        core::slice::from_raw_parts_mut(
            (DIRECT_MAP_BASE + slab_bits_phys) as *mut u64,
            slab_bits_words,
        )
    };
    let mut buddy = Buddy::page_init(mem_map, Pfn::containing(lowmem), ram, &reserved[..nres])
        .expect("page_init");
    buddy.attach_slab_bits(slab_bits);
    // The kernel heap's reserve (Linux `min_free_kbytes`, overridable at boot).
    let min_free_kb = info
        .cmdline
        .get("min_free_kbytes")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| buddy.default_min_free_kbytes());
    buddy.setup_watermarks(min_free_kb);
    *BUDDY.lock() = Some(buddy);
    if let Some(param) = mm::slab::cmdline_slub_debug(info.cmdline.as_str()) {
        match heap::with_slab(|s, b| s.slub_debug(&mut physmem::DirectMap, b, param)) {
            Ok(o) => crate::kprintln!("{param}: debugging changed on {} caches", o.changed),
            Err(e) => crate::kprintln!("warning: {param} ignored: {e}"),
        }
    }
    for site in FaultSite::ALL {
        let Some(param) = mm::fault::cmdline_option(info.cmdline.as_str(), site) else {
            continue;
        };
        let name = site.name();
        let armed = FaultConfig::parse_boot(param).and_then(|cfg| {
            match site {
                FaultSite::PageAlloc => with_buddy(|b| b.set_fail_page_alloc(Some(cfg))),
                FaultSite::Slab => {
                    heap::with_slab(|s, b| s.set_failslab(&mut physmem::DirectMap, b, Some(cfg)))?
                }
            }
            Ok(cfg)
        });
        match armed {
            Ok(cfg) => crate::kprintln!("{name}: fault injection armed ({cfg})"),
            Err(e) => crate::kprintln!("warning: {name}={param} ignored: {e}"),
        }
    }
    // The vmalloc/ioremap area trees, made now so that the boot numbers of
    // `memstat` include their heap nodes.
    vmalloc::init(info.framebuffer.as_ref());
    SETUP.call_once(|| MmSetup {
        lowmem,
        ram_end,
        mem_map_phys,
        mem_map_bytes,
        slab_bits_phys,
        slab_bits_bytes,
        init_cycles: crate::arch::cpu::rdtsc() - t0,
    });
}
