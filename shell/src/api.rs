//! The API between the shell and the kernel: what the shell may do to the machine.
//!
//! The shell has no hardware in it: everything it does to the machine goes through
//! these traits, which the kernel implements (and host tests fake).
//! - [`Platform`]: the console writer, version data, clear, reboot, poweroff, traps.
//! - The memory API, one trait per area: [`PageApi`] (the page allocator),
//!   [`SlabApi`] (kmalloc, caches, mempools, slub_debug), [`MemAccess`] (raw
//!   memory contents) and [`Diagnostics`] (checks, self-tests, fault injection,
//!   the benchmark), [`IoApi`] (resources, ports, MMIO, raw access to any kernel
//!   address), [`VmApi`] (the page tables), [`VmallocApi`] (vmalloc and
//!   ioremap); [`MemApi`] is all of them. Every method but
//!   [`PageApi::mm_stat`] has a default that answers [`UNSUPPORTED`], so a fake
//!   kernel implements only what its test needs.
//! - [`Kernel`]: `Platform + MemApi`; what [`crate::Shell::feed`] takes.
//!   Implemented automatically.
//!
//! The memory API is implemented once, in [`host`](mod@host): [`Api<H>`](Api)
//! implements every area over a [`MemHost`], which provides only what differs
//! between machines (locks, the memory, raw access, a clock, the heap self-test,
//! a call log). The kernel runs the shell on `Api<Hardware>`, the host tests on
//! `Api<SimHost>`. The pieces it is built from are public too: the read-only page
//! queries [`PageInfo::from_buddy`], [`PageSummary::from_buddy`],
//! [`MemLayout::from_buddy`] and [`addr_to_pfn_in`], and the slab helpers of the
//! `slab` submodule ([`kmalloc_in`], [`cache_named`], [`PoolTable`],
//! ...), each of which is safe to run inside the slab lock (none allocates from
//! the heap).
//!
//! Adding a kernel capability: a method in its area's trait (with the
//! `UNSUPPORTED` default) and its body in [`Api`]; a new [`MemHost`] method only
//! when it needs hardware.

mod bench;
pub mod host;
pub mod io;
mod slab;
pub mod vm;
pub mod vmalloc;
pub use bench::{bench_batch_in, bench_batch_rounds, BatchBench, BATCH_MAX, BATCH_ROUNDS};

pub use host::{Api, MemHost};
pub use io::{IoApi, IoError, Owned, RawFault, Resources, WalkStop, Width};
pub use slab::{
    bench_kmalloc_in, cache_named, kmalloc_in, kmem_cache_alloc_in, kmem_cache_create_in,
    kmem_cache_destroy_in, kmem_cache_free_in, kmem_cache_shrink_in, slab_validate_in,
    KmallocBench, PoolElem, PoolInfo, PoolSource, PoolTable, SlabObj, BENCH_LIVE, BENCH_SIZES,
    MAX_POOLS,
};
pub use slab::{check_name, slab_check_in, BadName, SlabCheck};
pub use vm::{
    protected, KernelLayout, MapBench, MapRequest, VmError, VmState, VmTarget, BENCH_FLUSH_N,
    MAX_ASPACES,
};
pub use vmalloc::{VmallocApi, VmallocError, SHELL_CALLER};

use alloc::string::String;
use core::fmt;
use mm::buddy::{Buddy, BulkError, CheckError, DMA_END_PFN};
use mm::fault::{FaultAttr, FaultConfig, FaultSite};
use mm::paging::{
    DestroyStats, LeafRange, MapStats, PageLookup, PageTableFlags, PhysFrame, UnmapStats, Walk,
    WxFinding, WxReport,
};
use mm::slab::{CacheInfo, ObjectInfo, SlabFlags, SlabReport, SlubDebugOutcome};
use mm::{Gfp, MmError, MmStat, PageFlags, PageState, Pfn, PhysMem, Zone};

/// The error a default method of the memory API returns.
pub const UNSUPPORTED: MmError = MmError::Invalid("not supported by this kernel");

/// What `version` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// Kernel version, normally `env!("CARGO_PKG_VERSION")` of the kernel crate.
    pub version: &'static str,
    /// How the kernel was booted: `limine`, `pvh`, ...
    pub boot: &'static str,
    /// The kernel command line (may be empty).
    pub cmdline: String,
    /// Why the kernel is tainted (an oops: a CPU exception in kernel code with
    /// no fixup), or `None`; `version` prints a `tainted:` line only then.
    pub tainted: Option<String>,
}

/// What `fb` prints: the framebuffer console's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FbMode {
    pub width: u32,
    pub height: u32,
    /// Bytes per row.
    pub pitch: u32,
    pub bpp: u8,
    /// (size, shift) of the red, green and blue masks.
    pub masks: [(u8, u8); 3],
    /// Physical address of the first pixel.
    pub phys: u64,
    /// Who set the mode up: `limine`, `pci-vga`, `pci-bochs-display`.
    pub source: &'static str,
    /// A text cell in pixels (width, height).
    pub cell: (u32, u32),
    /// The text grid (columns, rows).
    pub text: (u32, u32),
}

/// What `view` asks of the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewCmd {
    /// Physical memory beside the shell (`view`, `view on`, `view pages`).
    Pages,
    /// The slab caches beside the shell (`view slab`).
    Slab,
    /// The whole screen back to the shell (`view off`).
    Off,
    /// What the last redraw after a command cost (`view stats`).
    Stats,
}

impl ViewCmd {
    /// The word that asks for it.
    pub fn parse(w: &str) -> Option<ViewCmd> {
        Some(match w {
            "on" | "pages" => ViewCmd::Pages,
            "slab" => ViewCmd::Slab,
            "off" => ViewCmd::Off,
            "stats" => ViewCmd::Stats,
            _ => return None,
        })
    }
}

/// A CPU exception that `trap` raises on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// #DE, vector 0: divide error.
    De,
    /// #UD, vector 6: invalid opcode (`ud2`).
    Ud,
    /// #GP, vector 13: general protection (e.g. non-canonical address).
    Gp,
    /// #PF, vector 14: page fault (access to an unmapped address).
    Pf,
    /// #BP, vector 3: breakpoint (`int3`); its handler normally returns.
    Bp,
}

impl Trap {
    /// Every kind, in the order the shell lists them.
    pub const ALL: [Trap; 5] = [Trap::De, Trap::Ud, Trap::Gp, Trap::Pf, Trap::Bp];
    /// The names the shell accepts, in [`Trap::ALL`] order.
    pub const NAMES: [&'static str; 5] = ["de", "ud", "gp", "pf", "bp"];

    /// Shell name: `de`, `ud`, `gp`, `pf`, `bp`.
    pub const fn name(self) -> &'static str {
        match self {
            Trap::De => "de",
            Trap::Ud => "ud",
            Trap::Gp => "gp",
            Trap::Pf => "pf",
            Trap::Bp => "bp",
        }
    }
    /// Intel mnemonic: `#DE`, ...
    pub const fn mnemonic(self) -> &'static str {
        match self {
            Trap::De => "#DE",
            Trap::Ud => "#UD",
            Trap::Gp => "#GP",
            Trap::Pf => "#PF",
            Trap::Bp => "#BP",
        }
    }
    /// Interrupt vector number.
    pub const fn vector(self) -> u8 {
        match self {
            Trap::De => 0,
            Trap::Ud => 6,
            Trap::Gp => 13,
            Trap::Pf => 14,
            Trap::Bp => 3,
        }
    }
    /// Human description.
    pub const fn description(self) -> &'static str {
        match self {
            Trap::De => "divide error",
            Trap::Ud => "invalid opcode",
            Trap::Gp => "general protection fault",
            Trap::Pf => "page fault",
            Trap::Bp => "breakpoint",
        }
    }
    /// Parses a shell name, any case (`pf`, `PF`, `#PF`).
    pub fn parse(s: &str) -> Option<Trap> {
        let s = s.strip_prefix('#').unwrap_or(s);
        Trap::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }
}

/// The machine: console output and whole-machine operations.
///
/// Output: the shell writes everything through `core::fmt::Write`, with `\r\n`
/// line ends and plain ASCII (plus `\x08` for erasing and the ANSI clear sequence
/// for `clear`). The writer should send it to the serial line and the framebuffer
/// console; write errors are ignored.
pub trait Platform: fmt::Write {
    /// Data for `version` and the banner.
    fn version_info(&self) -> VersionInfo;
    /// Clears the framebuffer console (the shell has already written the ANSI
    /// clear sequence `\x1b[2J\x1b[H` for the serial terminal).
    fn clear_screen(&mut self);
    /// Resets the machine. Returns only on failure, with the reason.
    fn reboot(&mut self) -> &'static str;
    /// Powers the machine off (under QEMU through isa-debug-exit with a success
    /// status). Returns only on failure, with the reason.
    fn poweroff(&mut self) -> &'static str;
    /// Raises `trap` on purpose. `Ok(())` if the exception was taken and its
    /// handler returned (normal for `Bp`); `Err(reason)` if it could not be raised.
    /// For fatal exceptions it is fine never to return.
    fn trap(&mut self, trap: Trap) -> Result<(), &'static str>;
    /// The framebuffer console's mode, for `fb`; `None` on a serial-only machine.
    fn framebuffer(&self) -> Option<FbMode> {
        None
    }
    /// Shows the live picture of physical memory or of the slab beside the
    /// shell, or gives the screen back, and describes what it did (scale and
    /// place); or describes what the last redraw cost. `Err(reason)` without a
    /// screen (or with one too small).
    fn memory_view(&mut self, _what: ViewCmd) -> Result<String, &'static str> {
        Err("no framebuffer: this machine has a serial console only")
    }
}

/// Per-zone numbers for `memstat`, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ZoneStat {
    /// Bytes the allocator manages in the zone.
    pub total: u64,
    /// Bytes handed out.
    pub used: u64,
    /// Bytes free.
    pub free: u64,
    /// The zone's watermarks `[min, low, high]` in bytes (`mm::buddy::Wmark`).
    pub wmark: [u64; 3],
}

/// A block from DragonOS `alloc_pages(zone, num, flags)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageBlock {
    /// First frame.
    pub pfn: Pfn,
    /// Pages asked for.
    pub n: u32,
    /// Zone it came from.
    pub zone: Zone,
    /// Flags it carries.
    pub flags: PageFlags,
    /// Kernel virtual address, `None` for ZONE_UNMAPPED.
    pub virt: Option<u64>,
}

/// An object from `kmalloc(size, gfp)` ([`kmalloc_in`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KmallocObj {
    /// Kernel virtual address.
    pub virt: u64,
    /// Physical address.
    pub phys: u64,
    /// Bytes asked for.
    pub size: u64,
    /// Bytes of the object actually reserved.
    pub obj: u64,
}

/// The physical layout the page commands draw and check against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemLayout {
    /// One past the highest PFN the mem_map describes.
    pub max_pfn: Pfn,
    /// First PFN of ZONE_UNMAPPED: the end of the direct map (at least 16 MiB).
    pub lowmem: Pfn,
}

impl MemLayout {
    /// The layout of a buddy allocator.
    pub fn from_buddy(b: &Buddy<'_>) -> MemLayout {
        MemLayout {
            max_pfn: b.max_pfn(),
            lowmem: b.lowmem(),
        }
    }

    /// The zone `pfn` belongs to by address.
    pub fn zone_of(&self, pfn: Pfn) -> Zone {
        if pfn.0 < DMA_END_PFN {
            Zone::Dma
        } else if pfn.0 < self.lowmem.0 {
            Zone::Normal
        } else {
            Zone::Unmapped
        }
    }

    /// The first PFN after the zone of `pfn` (at most `max_pfn`).
    pub fn zone_end(&self, pfn: Pfn) -> Pfn {
        let end = match self.zone_of(pfn) {
            Zone::Dma => DMA_END_PFN,
            Zone::Normal => self.lowmem.0,
            Zone::Unmapped => self.max_pfn.0,
        };
        Pfn(end.min(self.max_pfn.0))
    }
}

/// One `struct page` as the `page` command shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// The frame.
    pub pfn: Pfn,
    /// Its zone.
    pub zone: Zone,
    /// What it is used for.
    pub state: PageState,
    /// RAM from the boot memory map (reserved RAM included); `false` for holes.
    pub ram: bool,
    /// Block order of a `Free`, `Cached`, `Allocated` or `Slab` head, else 0.
    pub order: u32,
    /// Pages in the block a head stands for: the pages handed out for an
    /// `Allocated` head (the DragonOS count, or 2^order), 2^order for `Free`,
    /// `Cached` and `Slab` heads; 0 for `Tail` and `Reserved`.
    pub n: u32,
    /// Reference count (`page_count`) of an `Allocated` head, else 0.
    pub refcount: u32,
    /// The public page flags.
    pub flags: PageFlags,
    /// For a `Tail` frame: the head of its block.
    pub head: Option<Pfn>,
    /// `page_address(page)`: the kernel virtual address, `None` when there is none
    /// (ZONE_UNMAPPED).
    pub virt: Option<u64>,
}

impl PageInfo {
    /// The `struct page` of `pfn` in a buddy allocator, with `page_address` from
    /// `mem`. Error: `NotRam` beyond the mem_map.
    pub fn from_buddy(b: &Buddy<'_>, pfn: Pfn, mem: &impl PhysMem) -> Result<PageInfo, MmError> {
        let p = *b.page(pfn).ok_or(MmError::NotRam(pfn.phys()))?;
        let state = p.state();
        let block = 1u32 << p.order();
        let (order, n, refcount) = match state {
            PageState::Allocated => (p.order(), p.next, p.count),
            PageState::Free | PageState::Cached | PageState::Slab => (p.order(), block, 0),
            PageState::Tail | PageState::Reserved => (0, 0, 0),
        };
        Ok(PageInfo {
            pfn,
            zone: p.zone(),
            state,
            ram: b.is_ram(pfn),
            order,
            n,
            refcount,
            flags: p.flags(),
            head: if state == PageState::Tail {
                b.head_of(pfn)
            } else {
                None
            },
            virt: b.page_address(pfn, mem),
        })
    }
}

/// How the frames of a PFN range are used, in pages (for `pagemap`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageSummary {
    /// In free-list blocks.
    pub free: u64,
    /// Free, held in a per-zone block cache (the per-CPU-pageset analogue).
    pub cached: u64,
    /// Handed out by a page allocation API (heads and their tails).
    pub allocated: u64,
    /// Owned by the slab allocator.
    pub slab: u64,
    /// RAM not under the allocator (kernel image, mem_map, page tables...).
    pub reserved: u64,
    /// Not RAM at all (holes, MMIO).
    pub hole: u64,
}

impl PageSummary {
    /// All pages counted.
    pub fn total(&self) -> u64 {
        self.free + self.cached + self.allocated + self.slab + self.reserved + self.hole
    }

    /// Summarises `[start, end)` (clipped to the mem_map) of a buddy allocator,
    /// block by block: O(blocks + MAX_ORDER), not a lookup per page.
    pub fn from_buddy(b: &Buddy<'_>, start: Pfn, end: Pfn) -> PageSummary {
        let map = b.mem_map();
        let end = end.0.min(map.len() as u32);
        let mut s = PageSummary::default();
        // RAM ranges are sorted: walk them alongside.
        let mut ram = b.ram_ranges().peekable();
        let mut pfn = start.0;
        while pfn < end {
            let p = map[pfn as usize];
            let (head, hp) = match p.state() {
                PageState::Tail => {
                    let h = b.head_of(Pfn(pfn)).map_or(pfn, |h| h.0);
                    (h, map[h as usize])
                }
                _ => (pfn, p),
            };
            let block = 1u32 << hp.order();
            let (counter, run_end) = match hp.state() {
                PageState::Free => (&mut s.free, head + block),
                PageState::Allocated => (&mut s.allocated, head + hp.next.clamp(1, block)),
                PageState::Slab => (&mut s.slab, head + block),
                PageState::Cached => (&mut s.cached, head + block),
                PageState::Tail => (&mut s.allocated, pfn + 1), // not reached
                PageState::Reserved => {
                    while ram.peek().is_some_and(|r| r.1 .0 <= pfn) {
                        ram.next();
                    }
                    match ram.peek() {
                        Some(&(rs, _)) if rs.0 <= pfn => (&mut s.reserved, pfn + 1),
                        Some(&(rs, _)) => (&mut s.hole, rs.0),
                        None => (&mut s.hole, end),
                    }
                }
            };
            let run_end = run_end.clamp(pfn + 1, end);
            *counter += u64::from(run_end - pfn);
            pfn = run_end;
        }
        s
    }
}

/// The frame holding `addr` for [`PageApi::addr_to_pfn`]: a direct-map virtual address
/// (as `mem` translates it) or else a physical address below `b.max_pfn()`.
pub fn addr_to_pfn_in(b: &Buddy<'_>, mem: &impl PhysMem, addr: u64) -> Result<Pfn, MmError> {
    let phys = match mem.phys_of(addr) {
        Some(p) => p,
        None if addr < b.max_pfn().phys() => addr,
        None => return Err(MmError::NotRam(addr)),
    };
    Ok(Pfn::containing(phys))
}

/// The page allocator: DragonOS, Linux and MOS page functions and the queries
/// behind `memstat`, `buddyinfo`, `zoneinfo`, `page` and `pagemap`.
#[allow(unused_variables)]
pub trait PageApi {
    /// `mm_stat()`.
    fn mm_stat(&self) -> MmStat;
    /// Numbers for one zone, or `None` if the zone does not exist.
    fn zone_stat(&self, zone: Zone) -> Option<ZoneStat> {
        None
    }

    /// DragonOS `alloc_pages(zone, n, flags)`.
    fn alloc_pages(&mut self, zone: Zone, n: u32, flags: PageFlags) -> Result<PageBlock, MmError> {
        Err(UNSUPPORTED)
    }
    /// DragonOS `free_pages(page, n)`.
    fn free_pages(&mut self, pfn: Pfn, n: u32) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }

    // ---- Physical memory queries (buddyinfo, zoneinfo, page, pagemap) ----

    /// One zone of the page allocator (`Buddy::zone_stat`): PFN span, present,
    /// managed, free and cached pages, free-list blocks per order (`/proc/buddyinfo`,
    /// `/proc/zoneinfo`). Empty zones are returned too, with `present == 0`.
    fn zone_info(&self, zone: Zone) -> Result<mm::buddy::ZoneStat, MmError> {
        Err(UNSUPPORTED)
    }
    /// Size of the mem_map and the lowmem limit ([`MemLayout::from_buddy`]).
    fn mem_layout(&self) -> Result<MemLayout, MmError> {
        Err(UNSUPPORTED)
    }
    /// The `struct page` of `pfn` with its `page_address` ([`PageInfo::from_buddy`]).
    fn page_info(&self, pfn: Pfn) -> Result<PageInfo, MmError> {
        Err(UNSUPPORTED)
    }
    /// The frame holding `addr`: a direct-map virtual address is translated
    /// (`virt_to_page`), anything else is taken as a physical address; `NotRam(addr)`
    /// if it is neither ([`addr_to_pfn_in`]).
    fn addr_to_pfn(&self, addr: u64) -> Result<Pfn, MmError> {
        Err(UNSUPPORTED)
    }
    /// How the frames of `[start, end)` are used ([`PageSummary::from_buddy`]);
    /// called once per `pagemap` cell, so it must not cost a call per page.
    fn page_summary(&self, start: Pfn, end: Pfn) -> Result<PageSummary, MmError> {
        Err(UNSUPPORTED)
    }

    // ---- Linux page API ----

    /// Linux `alloc_pages(gfp_mask, order)`: 2^`order` pages, reference count 1;
    /// honours `__GFP_ZERO` (`Buddy::alloc_pages_mem`). Returns the `struct page`
    /// (its PFN). Released with `__free_pages` ([`PageApi::free_pages_order`]).
    fn alloc_pages_order(&mut self, gfp: Gfp, order: u32) -> Result<Pfn, MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `alloc_page(gfp_mask)` = `alloc_pages(gfp_mask, 0)`.
    fn alloc_page(&mut self, gfp: Gfp) -> Result<Pfn, MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `__get_free_pages(gfp_mask, order)`: 2^`order` pages of mapped memory;
    /// returns their kernel virtual address. Released with `free_pages(addr, order)`
    /// ([`PageApi::free_pages_addr`]).
    fn get_free_pages(&mut self, gfp: Gfp, order: u32) -> Result<u64, MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `__get_free_page(gfp_mask)`: one page, by virtual address. Released
    /// with `free_page(addr)` ([`PageApi::free_page`]).
    fn get_free_page(&mut self, gfp: Gfp) -> Result<u64, MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `get_zeroed_page(gfp_mask)`: one zeroed page, by virtual address.
    /// Released with `free_page(addr)` ([`PageApi::free_page`]).
    fn get_zeroed_page(&mut self, gfp: Gfp) -> Result<u64, MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `__free_pages(page, order)`: drops one reference of the block at `pfn`,
    /// freeing it at 0.
    fn free_pages_order(&mut self, pfn: Pfn, order: u32) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `alloc_pages_bulk(gfp, nr, page_array)`: fills `out` from the front
    /// with order-0 pages and returns how many it got (fewer when memory runs
    /// out); an error only when it got none. Each is freed by `__free_pages(p, 0)`
    /// or [`free_pages_bulk`](Self::free_pages_bulk).
    fn alloc_pages_bulk(&mut self, gfp: Gfp, out: &mut [Pfn]) -> Result<usize, MmError> {
        Err(UNSUPPORTED)
    }
    /// `__free_pages(p, 0)` of every entry in order, as one batch; the first misuse
    /// stops it ([`BulkError`]: how many were freed before it, and why).
    fn free_pages_bulk(&mut self, pages: &[Pfn]) -> Result<(), BulkError> {
        Err(BulkError {
            done: 0,
            err: UNSUPPORTED,
        })
    }
    /// Linux `free_pages(addr, order)`: `__free_pages` by kernel virtual address.
    fn free_pages_addr(&mut self, virt: u64, order: u32) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `free_page(addr)` = `free_pages(addr, 0)`.
    fn free_page(&mut self, virt: u64) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `get_page(page)`: one more reference on the allocated block at `pfn`;
    /// returns the new reference count.
    fn get_page(&mut self, pfn: Pfn) -> Result<u32, MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `put_page(page)`: drops one reference; `Ok(true)` if that was the last
    /// one and the block was freed.
    fn put_page(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        Err(UNSUPPORTED)
    }

    // ---- MOS page API ----

    /// MOS `page_alloc(&pp)`: one zeroed page of mapped memory, reference count 1
    /// (`-E_NO_MEM` is `MmError::OutOfMemory`). Released with [`PageApi::page_decref`].
    fn page_alloc(&mut self) -> Result<Pfn, MmError> {
        Err(UNSUPPORTED)
    }
    /// MOS `page_decref(pp)`: drops one reference, freeing the page at 0;
    /// `Ok(true)` if it was freed.
    fn page_decref(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        Err(UNSUPPORTED)
    }
}

/// The slab allocator: kmalloc, `kmem_cache`, mempools, `slub_debug` and its
/// reports.
#[allow(unused_variables)]
pub trait SlabApi {
    /// `kmalloc(size, gfp)` (`kzalloc` is `gfp` with `Gfp::ZERO`): the object,
    /// its physical address and its `ksize` ([`kmalloc_in`]).
    fn kmalloc(&mut self, size: u64, gfp: Gfp) -> Result<KmallocObj, MmError> {
        Err(UNSUPPORTED)
    }
    /// `kfree(virt)` with the address exactly as given: the allocator's own checks
    /// answer for foreign, interior and freed pointers (`kfree(NULL)` is a no-op).
    fn kfree(&mut self, virt: u64) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }

    // ---- kmem_cache ----

    /// `kmem_cache_create(name, size, align, flags, NULL)`; returns the new cache's
    /// statistics ([`kmem_cache_create_in`]). With `SLAB_PANIC` a failure is returned like
    /// any other (Linux would panic; memkern never does).
    fn kmem_cache_create(
        &mut self,
        name: &str,
        size: u64,
        align: u64,
        flags: SlabFlags,
    ) -> Result<CacheInfo, MmError> {
        Err(UNSUPPORTED)
    }
    /// `kmem_cache_alloc(cache, gfp)` of the cache called `cache`
    /// ([`kmem_cache_alloc_in`]).
    fn kmem_cache_alloc(&mut self, cache: &str, gfp: Gfp) -> Result<SlabObj, MmError> {
        Err(UNSUPPORTED)
    }
    /// `kmem_cache_free(cache, virt)` of the cache called `cache`
    /// ([`kmem_cache_free_in`]); an object of another cache is `WrongCache`.
    fn kmem_cache_free(&mut self, cache: &str, virt: u64) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `kmem_cache_alloc_bulk(cache, gfp, n, p)` of the cache called `cache`: all of
    /// `out` (returns `out.len()`) or nothing.
    fn kmem_cache_alloc_bulk(
        &mut self,
        cache: &str,
        gfp: Gfp,
        out: &mut [u64],
    ) -> Result<usize, MmError> {
        Err(UNSUPPORTED)
    }
    /// `kmem_cache_free_bulk(cache, n, p)` of the cache called `cache`: the first
    /// misuse stops it ([`BulkError`]).
    fn kmem_cache_free_bulk(&mut self, cache: &str, objs: &[u64]) -> Result<(), BulkError> {
        Err(BulkError {
            done: 0,
            err: UNSUPPORTED,
        })
    }
    /// `kmem_cache_destroy(cache)` of the cache called `cache`
    /// ([`kmem_cache_destroy_in`]); refused with `CacheBusy { live }` while it has
    /// objects.
    fn kmem_cache_destroy(&mut self, cache: &str) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `kmem_cache_shrink(cache)`: gives back the empty slabs the cache keeps;
    /// returns how many ([`kmem_cache_shrink_in`]).
    fn kmem_cache_shrink(&mut self, cache: &str) -> Result<u64, MmError> {
        Err(UNSUPPORTED)
    }
    /// `kmem_cache_shrink` of every cache (`Slab::shrink_all`); `free all` calls it
    /// last so that memory returns to the boot numbers. Returns the slabs released.
    fn kmem_cache_shrink_all(&mut self) -> Result<u64, MmError> {
        Err(UNSUPPORTED)
    }
    /// Statistics of the cache called `cache`; `NotFound` if there is none
    /// ([`cache_named`]).
    fn kmem_cache_info(&self, cache: &str) -> Result<CacheInfo, MmError> {
        Err(UNSUPPORTED)
    }
    /// The `index`-th cache in table order (kmalloc caches first), `None` past the
    /// last: one row of `/proc/slabinfo` per call (`Slab::caches`).
    fn slab_cache_at(&self, index: usize) -> Result<Option<CacheInfo>, MmError> {
        Err(UNSUPPORTED)
    }
    /// `Slab::object_info(virt)`: the cache and object containing `virt` and
    /// whether that object is allocated; `InvalidFree(virt)` if `virt` is not in a
    /// slab. The raw `kfree ADDR` / `cache free` / `mempool free` commands ask it
    /// first so that they never free a live object the kernel owns.
    fn slab_object_info(&self, virt: u64) -> Result<ObjectInfo, MmError> {
        Err(UNSUPPORTED)
    }

    // ---- mempool ----

    /// `mempool_create_kmalloc_pool(min_nr, size)` or
    /// `mempool_create_slab_pool(min_nr, cache)` (Linux `mempool_create` with the
    /// kmalloc or slab alloc/free functions), kept under `name` ([`PoolTable::create`]).
    fn mempool_create(
        &mut self,
        name: &str,
        min_nr: u64,
        source: &PoolSource,
    ) -> Result<PoolInfo, MmError> {
        Err(UNSUPPORTED)
    }
    /// `mempool_alloc(pool, gfp)`: the backing allocator first, the reserve when
    /// it fails ([`PoolTable::alloc`]).
    fn mempool_alloc(&mut self, pool: &str, gfp: Gfp) -> Result<PoolElem, MmError> {
        Err(UNSUPPORTED)
    }
    /// `mempool_free(virt, pool)` ([`PoolTable::free`]).
    fn mempool_free(&mut self, pool: &str, virt: u64) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `mempool_destroy(pool)` ([`PoolTable::destroy`]); refused with
    /// `CacheBusy { live }` while elements are outstanding.
    fn mempool_destroy(&mut self, pool: &str) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `min_nr`, `curr_nr` and outstanding elements of a pool ([`PoolTable::info`]).
    fn mempool_info(&self, pool: &str) -> Result<PoolInfo, MmError> {
        Err(UNSUPPORTED)
    }

    // ---- slub_debug ----

    /// Linux `slub_debug=SPEC` applied now (`Slab::slub_debug`): `FZPU` letters,
    /// optionally `,cache,prefix*`, blocks separated by `;`, `-` for off. Caches
    /// with live objects are left unchanged and counted in `busy`.
    fn slub_debug(&mut self, spec: &str) -> Result<SlubDebugOutcome, MmError> {
        Err(UNSUPPORTED)
    }
    /// The `index`-th kept corruption report, oldest first (`Slab::reports`),
    /// `None` past the last.
    fn slab_report_at(&self, index: usize) -> Result<Option<SlabReport>, MmError> {
        Err(UNSUPPORTED)
    }
    /// Corruptions detected since boot (`Slab::errors_total`).
    fn slab_errors_total(&self) -> Result<u64, MmError> {
        Err(UNSUPPORTED)
    }
    /// Forgets the kept reports (`Slab::clear_reports`; the total keeps counting).
    fn slab_clear_reports(&mut self) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `validate_slab_cache` of the named cache, or of every cache
    /// (`Slab::validate` / `validate_all`, [`slab_validate_in`]): errors found.
    fn slab_validate(&mut self, cache: Option<&str>) -> Result<u64, MmError> {
        Err(UNSUPPORTED)
    }
}

/// Raw access to memory contents (`bzero`, `bcopy`, `dump`). The shell only ever
/// passes ranges inside the memory of a live handle (the direct map, a mapping
/// the shell made, a vmalloc or ioremap area), reached through the MMU with the
/// fault-safe raw accessors of [`MemHost`]; an access that faults is
/// [`IoError::Fault`] with the decoded cause, never a crash.
#[allow(unused_variables)]
pub trait MemAccess {
    /// MOS `bzero(b, len)`: zeroes `len` bytes at kernel virtual address `virt`.
    fn bzero(&mut self, virt: u64, len: u64) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
    /// MOS `bcopy(src, dst, len)`: copies `len` bytes from `src` to `dst` (kernel
    /// virtual addresses; the ranges do not overlap unless `src == dst`).
    fn bcopy(&mut self, src: u64, dst: u64, len: u64) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
    /// Reads `buf.len()` bytes at kernel virtual address `virt` (for `dump`).
    fn read_bytes(&self, virt: u64, buf: &mut [u8]) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
}

/// Invariant checks (the `check` command and check mode), self-tests, fault
/// injection and the kmalloc benchmark.
#[allow(unused_variables)]
pub trait Diagnostics {
    /// `Buddy::check`: every invariant of the page allocator (block structure of
    /// the whole mem_map, free lists, merging, block caches, counters). `Ok(None)`
    /// when all hold, `Ok(Some(e))` for the first one broken.
    fn buddy_check(&self) -> Result<Option<CheckError>, MmError> {
        Err(UNSUPPORTED)
    }
    /// Slab validation of every cache ([`slab_check_in`]); findings are reported
    /// (and repaired) by the slab allocator and counted in the result.
    fn slab_check(&mut self) -> Result<SlabCheck, MmError> {
        Err(UNSUPPORTED)
    }
    /// Runs one scenario of `mm::slab::selftest::SCENARIOS` (Linux `slub_kunit`;
    /// `Slab::selftest_one`) and returns the errors it detected. Leaves nothing
    /// allocated.
    fn slab_selftest(&mut self, scenario: &str) -> Result<u64, MmError> {
        Err(UNSUPPORTED)
    }
    /// Runs one case of [`HEAP_SELFTESTS`] against the kernel heap (Rust's
    /// `alloc` through the global allocator: kmalloc up to 1 MiB, whole pages
    /// beyond). `Err(MmError::Invalid(why))` when a check fails. Leaves nothing
    /// allocated.
    fn heap_selftest(&mut self, case: &str) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// The fault-injection attribute of `site` (`Buddy::fail_page_alloc`,
    /// `Slab::failslab`): configuration and counters.
    fn fault_attr(&self, site: FaultSite) -> Result<FaultAttr, MmError> {
        Err(UNSUPPORTED)
    }
    /// Arms (`Some`) or disarms (`None`) fault injection at `site`
    /// (`Buddy::set_fail_page_alloc`, `Slab::set_failslab`).
    fn set_fault(&mut self, site: FaultSite, cfg: Option<FaultConfig>) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// Runs the kmalloc microbenchmark ([`bench_kmalloc_in`] timed by
    /// [`MemHost::clock`]): `iters` kmalloc(80)/kfree pairs and a mixed-size
    /// workload.
    fn bench_kmalloc(&mut self, iters: u64) -> Result<KmallocBench, MmError> {
        Err(UNSUPPORTED)
    }
    /// Runs the batch workloads ([`bench_batch_rounds`]: a warm-up round, then the
    /// best of [`BATCH_ROUNDS`], timed by [`MemHost::clock`]) with batches of `n`
    /// (1..=[`BATCH_MAX`]) objects.
    fn bench_batch(&mut self, n: u64) -> Result<BatchBench, MmError> {
        Err(UNSUPPORTED)
    }
}

/// The page tables (`mm::paging`): DragonOS `mm_map_phys_addr` / `mm_unmap`, MOS
/// `page_insert` / `page_lookup` / `page_remove`, walks, address spaces, the
/// address-space dump, the W^X check and `bench map` ([`vm`](mod@vm)). Every
/// change is checked against the kernel's protected ranges ([`protected`]).
#[allow(unused_variables)]
pub trait VmApi {
    /// The kernel's fixed layout (sections, direct map, mem_map).
    fn vm_layout(&self) -> Result<KernelLayout, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// The table the page-table commands are aimed at.
    fn vm_target(&self) -> Result<VmTarget, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// Aims the page-table commands at `t` (which must exist).
    fn vm_set_target(&mut self, t: VmTarget) -> Result<(), VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// DragonOS `mm_map_phys_addr` (on the kernel's running table) or
    /// `mm_map_proc_page_table` (on an address space), flushed. Refused in
    /// protected ranges, for live table frames mapped writable, and for
    /// writable+executable without `force`; a failure changes nothing.
    fn mm_map_phys_addr(&mut self, t: VmTarget, req: &MapRequest) -> Result<MapStats, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// DragonOS `mm_unmap(virt, len)` on `t` (holes skipped, empty tables freed,
    /// references of `page_insert` mappings dropped), flushed.
    fn mm_unmap(&mut self, t: VmTarget, virt: u64, len: u64) -> Result<UnmapStats, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// The four-level walk of `virt` in `t`.
    fn vm_walk(&self, t: VmTarget, virt: u64) -> Result<Walk, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// A new address space sharing the kernel half; returns its root.
    fn aspace_new(&mut self) -> Result<PhysFrame, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// Destroys an address space: every table frame freed, every reference its
    /// mappings held dropped. If commands were aimed at it, they go back to
    /// the kernel's table.
    fn aspace_destroy(&mut self, root: PhysFrame) -> Result<DestroyStats, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// MOS `page_insert(pgdir, pp, va, perm)` on `t`, flushed.
    fn page_insert(
        &mut self,
        t: VmTarget,
        pfn: Pfn,
        virt: u64,
        perm: PageTableFlags,
        force: bool,
    ) -> Result<(), VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// MOS `page_lookup(pgdir, va)` on `t`.
    fn page_lookup(&self, t: VmTarget, virt: u64) -> Result<Option<PageLookup>, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// MOS `pgdir_walk(pgdir, va, create, &ppte)` on `t`: the 4 KiB entry for
    /// `virt`, present or not; `None` where a table is missing. `create` makes
    /// the missing tables, in an address space only (they stay until it is
    /// destroyed; on the kernel's table they would outlive every handle).
    fn pgdir_walk(
        &mut self,
        t: VmTarget,
        virt: u64,
        create: bool,
    ) -> Result<Option<mm::paging::Pte>, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// MOS `page_remove(pgdir, va)` on `t`, flushed.
    fn page_remove(&mut self, t: VmTarget, virt: u64) -> Result<(), VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// Calls `f` with every merged range of present leaves of `t` in
    /// `[start, end)` (`end == 0`: to 2^64), in address order.
    fn vm_ranges(
        &self,
        t: VmTarget,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(&LeafRange),
    ) -> Result<(), VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// The W^X check of the kernel's table (`mm::paging::check_wx`).
    fn vm_wx(&self, f: &mut dyn FnMut(&LeafRange, WxFinding)) -> Result<WxReport, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
    /// The `bench map` microbenchmark, timed by [`MemHost::clock`].
    fn bench_map(&mut self, iters: u64) -> Result<MapBench, VmError> {
        Err(VmError::Mm(UNSUPPORTED))
    }
}

/// The whole memory API: every area. Implemented automatically; write the area
/// traits.
pub trait MemApi: PageApi + SlabApi + MemAccess + Diagnostics + IoApi + VmApi + VmallocApi {}

impl<T: PageApi + SlabApi + MemAccess + Diagnostics + IoApi + VmApi + VmallocApi> MemApi for T {}

/// The cases of `selftest heap`: small boxes in every kmalloc class, a 1 MiB
/// vector (the largest kmalloc class), a 3 MiB vector (whole pages), 4 KiB
/// alignment, and a vector grown by reallocation across the 1 MiB boundary.
pub const HEAP_SELFTESTS: [&str; 5] = [
    "box-every-class",
    "vec-1M",
    "vec-3M",
    "align-4096",
    "grow-past-1M",
];

/// Everything the shell needs from the kernel.
pub trait Kernel: Platform + MemApi {}

impl<T: Platform + MemApi> Kernel for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_names_round_trip() {
        for (t, n) in Trap::ALL.into_iter().zip(Trap::NAMES) {
            assert_eq!(t.name(), n);
            assert_eq!(Trap::parse(n), Some(t));
            assert_eq!(Trap::parse(t.mnemonic()), Some(t));
        }
        assert_eq!(Trap::parse("PF"), Some(Trap::Pf));
        assert_eq!(Trap::parse("xx"), None);
        assert_eq!(Trap::Gp.vector(), 13);
    }
}
