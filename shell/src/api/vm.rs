//! The page-table half of the memory API ([`VmApi`](super::VmApi)), implemented
//! once over a [`MemHost`]: DragonOS `mm_map_phys_addr` / `mm_unmap`, MOS
//! `page_insert` / `page_lookup` / `page_remove`, walks, address spaces, the
//! address-space dump, the W^X check and the `bench map` microbenchmark, all on
//! `mm::paging`.
//!
//! The host provides the page-table state ([`MemHost::vm`], [`MemHost::vm_mut`]:
//! the kernel's root, the shell's [`VmState`], a mapper with table frames, a
//! `Tlb`) and the kernel's fixed layout ([`KernelLayout`]). What may be touched is
//! decided here ([`protected`]): the kernel image, the direct map (mem_map, the
//! slab bitmap and every page-table frame live there), the temporary window and
//! the vmalloc and ioremap ranges are refused; so is mapping a live page-table
//! frame writable anywhere.

use super::host::{Api, MemHost};
use core::fmt;
use mm::layout::{Region, DIRECT_MAP, IOREMAP, KERNEL_IMAGE, TEMP, VMALLOC};
use mm::paging::{
    check_wx, for_each_table, leaf_ranges, walk, AddressSpace, DestroyStats, LeafRange, MapError,
    MapStats, PageLookup, PageSize, PageTableFlags, PhysAddr, PhysFrame, Tlb, UnmapError,
    UnmapStats, VirtAddr, Walk, WxFinding, WxReport,
};
use mm::{MmError, Pfn, PhysMem};

/// Address spaces the shell may hold at once.
pub const MAX_ASPACES: usize = 8;

/// Which top-level table a page-table command works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmTarget {
    /// The kernel's running table.
    Kernel,
    /// An address space the shell made, by its root.
    Aspace(PhysFrame),
}

impl fmt::Display for VmTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmTarget::Kernel => f.write_str("kernel"),
            VmTarget::Aspace(r) => write!(f, "aspace@{:#x}", r.start_address().as_u64()),
        }
    }
}

/// The shell's page-table state, kept by the host under its page-table lock:
/// the kernel's root, the address spaces the shell made, and the table the
/// commands are aimed at. Allocates nothing.
#[derive(Debug)]
pub struct VmState {
    /// The kernel's running table.
    pub kernel_root: PhysFrame,
    aspaces: [Option<AddressSpace>; MAX_ASPACES],
    /// Where `map`, `unmap`, `walk` and the MOS commands go.
    pub target: VmTarget,
}

impl VmState {
    /// No address spaces yet; aimed at the kernel's table.
    pub fn new(kernel_root: PhysFrame) -> VmState {
        VmState {
            kernel_root,
            aspaces: [const { None }; MAX_ASPACES],
            target: VmTarget::Kernel,
        }
    }
    /// The root of `t`, if it exists.
    pub fn root(&self, t: VmTarget) -> Result<PhysFrame, VmError> {
        match t {
            VmTarget::Kernel => Ok(self.kernel_root),
            VmTarget::Aspace(r) if self.aspaces.iter().flatten().any(|a| a.root() == r) => Ok(r),
            VmTarget::Aspace(r) => Err(VmError::NoSuchSpace(r.start_address().as_u64())),
        }
    }
    /// The roots of the live address spaces.
    pub fn aspace_roots(&self) -> impl Iterator<Item = PhysFrame> + '_ {
        self.aspaces.iter().flatten().map(|a| a.root())
    }
}

/// The kernel's fixed layout, for the dump and the safety rules (virtual
/// addresses; `direct_map_end` is physical).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    /// Kernel text `[start, end)`: read + execute.
    pub text: (u64, u64),
    /// Read-only data.
    pub rodata: (u64, u64),
    /// Data and bss (stacks included): read + write.
    pub data: (u64, u64),
    /// Physical end of the direct map of RAM.
    pub direct_map_end: u64,
    /// `mem_map`: physical start and bytes (mapped in the direct map).
    pub mem_map: (u64, u64),
}

/// Why a page-table request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmError {
    /// The mapper refused to map.
    Map(MapError),
    /// The mapper refused to unmap.
    Unmap(UnmapError),
    /// The range touches a range the kernel owns.
    Protected {
        /// The first address of the request inside it.
        virt: u64,
        /// What it is.
        what: &'static str,
        /// Which function releases it instead, if any.
        instead: Option<&'static str>,
    },
    /// Mapping a live page-table frame writable.
    TableFrame(u64),
    /// Writable and executable without `force`.
    WritableExecutable,
    /// No address space with this root.
    NoSuchSpace(u64),
    /// Every address-space slot is taken.
    TooManySpaces,
    /// The address space is the one commands are aimed at, or running.
    SpaceBusy,
    /// `pgdir_walk ... create` aimed at the kernel's own table.
    CreateInKernel,
    /// An error of the page allocator.
    Mm(MmError),
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VmError::Map(e) => e.fmt(f),
            VmError::Unmap(e) => e.fmt(f),
            VmError::Protected {
                virt,
                what,
                instead,
            } => {
                write!(f, "{virt:#x} is in the {what}, which the kernel owns")?;
                if let Some(i) = instead {
                    write!(f, " (release it with {i})")?;
                }
                Ok(())
            }
            VmError::TableFrame(p) => write!(
                f,
                "physical {p:#x} is a live page-table frame; it may only be mapped read-only"
            ),
            VmError::CreateInKernel => f.write_str(
                "pgdir_walk creates tables only in an address space ('aspace new', 'aspace use #N')",
            ),
            VmError::WritableExecutable => {
                f.write_str("writable and executable mapping refused (add 'force')")
            }
            VmError::NoSuchSpace(r) => write!(f, "no address space with root {r:#x}"),
            VmError::TooManySpaces => write!(f, "already {MAX_ASPACES} address spaces"),
            VmError::SpaceBusy => f.write_str("the address space is in use"),
            VmError::Mm(e) => e.fmt(f),
        }
    }
}

impl From<MmError> for VmError {
    fn from(e: MmError) -> VmError {
        VmError::Mm(e)
    }
}

/// The fixed ranges a page-table command may not touch, with the function that
/// releases what is in them (if any).
pub const PROTECTED: [(Region, &str, Option<&str>); 5] = [
    (DIRECT_MAP, "direct map", None),
    (VMALLOC, "vmalloc range", Some("vfree")),
    (IOREMAP, "ioremap range", Some("iounmap")),
    (TEMP, "temporary window", None),
    (KERNEL_IMAGE, "kernel image", None),
];

/// The first protected range `[virt, virt + len)` meets, as the error.
pub fn protected(virt: u64, len: u64) -> Result<(), VmError> {
    let last = virt.saturating_add(len.max(1) - 1);
    for (r, what, instead) in PROTECTED {
        if virt <= r.last() && last >= r.start {
            return Err(VmError::Protected {
                virt: virt.max(r.start),
                what,
                instead,
            });
        }
    }
    Ok(())
}

/// What [`VmApi::bench_map`](super::VmApi::bench_map) measured, in cycles of the
/// host's clock per operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapBench {
    /// Iterations of each loop.
    pub iters: u64,
    /// One 4 KiB `map` + `unmap` pair with its `invlpg` (tables kept alive by a
    /// neighbour page, as in steady use).
    pub map_unmap_4k: u64,
    /// One `translate` of a 4 KiB mapping.
    pub translate: u64,
    /// One `invlpg`.
    pub invlpg: u64,
    /// One full flush.
    pub flush_all: u64,
    /// For n in [`BENCH_FLUSH_N`]: flushing n pages one by one then reading
    /// one word of each, and the same after a full flush.
    pub flush_then_touch: [(u64, u64); 4],
}

/// Page counts of [`MapBench::flush_then_touch`].
pub const BENCH_FLUSH_N: [u64; 4] = [1, 8, 32, 128];

/// Where `bench map` reads the pages it flushes (ZONE_NORMAL's first frame).
pub const BENCH_TOUCH_PHYS: u64 = 16 << 20;

/// Where `bench map` maps its scratch pages: unused kernel space after the
/// ioremap range.
pub const BENCH_VIRT: u64 = IOREMAP.start + IOREMAP.size + (1 << 30);

impl<H: MemHost> Api<H> {
    fn vm_map_in(
        st: &mut VmState,
        m: &mut mm::paging::Mapper<'_, H::Mem, H::Frames>,
        tlb: &mut H::Tlb,
        t: VmTarget,
        req: &MapRequest,
    ) -> Result<MapStats, VmError> {
        let root = st.root(t)?;
        protected(req.virt, req.len)?;
        if req.flags.contains(PageTableFlags::WRITABLE) {
            // One pass over each tree's table frames (not one per page).
            let (first, end) = (req.phys & !0xfff, req.phys.saturating_add(req.len));
            let mut hit = None;
            let mut look = |t: PhysFrame| {
                let a = t.start_address().as_u64();
                if a >= first && a < end && hit.is_none_or(|h| a < h) {
                    hit = Some(a);
                }
            };
            for_each_table(m.mem(), st.kernel_root, &mut look);
            for r in st.aspace_roots() {
                for_each_table(m.mem(), r, &mut look);
            }
            if let Some(p) = hit {
                return Err(VmError::TableFrame(p));
            }
        }
        if req.flags.contains(PageTableFlags::WRITABLE)
            && !req.flags.contains(PageTableFlags::NO_EXECUTE)
            && !req.force
        {
            return Err(VmError::WritableExecutable);
        }
        let user = req.flags.contains(PageTableFlags::USER_ACCESSIBLE);
        let flags = req.flags - PageTableFlags::USER_ACCESSIBLE;
        m.mm_map_proc_page_table(
            root.start_address().as_u64(),
            true,
            req.virt,
            req.phys,
            req.len,
            flags,
            user,
            true,
            req.use4k,
            tlb,
        )
        .map_err(VmError::Map)
    }
}

/// A `map` request (DragonOS `mm_map_phys_addr` arguments plus `force`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    /// First virtual address (4 KiB aligned).
    pub virt: u64,
    /// First physical address (4 KiB aligned).
    pub phys: u64,
    /// Bytes (rounded up to 4 KiB).
    pub len: u64,
    /// Leaf flags (`PRESENT` is added).
    pub flags: PageTableFlags,
    /// 4 KiB pages only; else 2 MiB pages where alignment allows.
    pub use4k: bool,
    /// Allow writable + executable.
    pub force: bool,
}

impl<H: MemHost> super::VmApi for Api<H> {
    fn vm_layout(&self) -> Result<KernelLayout, VmError> {
        Ok(self.host.vm_layout())
    }
    fn vm_target(&self) -> Result<VmTarget, VmError> {
        Ok(self.host.vm(|st, _| st.target))
    }
    fn vm_set_target(&mut self, t: VmTarget) -> Result<(), VmError> {
        self.host.vm_mut(|st, _, _| {
            st.root(t)?;
            st.target = t;
            Ok(())
        })
    }
    fn mm_map_phys_addr(&mut self, t: VmTarget, req: &MapRequest) -> Result<MapStats, VmError> {
        self.host.log(format_args!(
            "mm_map_phys_addr({:#x}, {:#x}, {:#x}, {:#x}, {}) in {t}",
            req.virt,
            req.phys,
            req.len,
            req.flags.bits(),
            req.use4k
        ));
        self.host
            .vm_mut(|st, m, tlb| Self::vm_map_in(st, m, tlb, t, req))
    }
    fn mm_unmap(&mut self, t: VmTarget, virt: u64, len: u64) -> Result<UnmapStats, VmError> {
        self.host
            .log(format_args!("mm_unmap({virt:#x}, {len:#x}) in {t}"));
        self.host.vm_mut(|st, m, tlb| {
            let root = st.root(t)?;
            protected(virt, len)?;
            match t {
                VmTarget::Kernel => m.mm_unmap(root, virt, len, tlb),
                // DragonOS's form for a table that is not the running one.
                VmTarget::Aspace(_) => {
                    m.mm_unmap_proc_table(root.start_address().as_u64(), true, virt, len, tlb)
                }
            }
            .map_err(VmError::Unmap)
        })
    }
    fn vm_walk(&self, t: VmTarget, virt: u64) -> Result<Walk, VmError> {
        let v = VirtAddr::try_new(virt).map_err(|_| VmError::Map(MapError::NonCanonical(virt)))?;
        self.host.vm(|st, mem| Ok(walk(mem, st.root(t)?, v)))
    }
    fn aspace_new(&mut self) -> Result<PhysFrame, VmError> {
        self.host.log(format_args!("aspace_new()"));
        self.host.vm_mut(|st, m, _| {
            let slot = st
                .aspaces
                .iter()
                .position(Option::is_none)
                .ok_or(VmError::TooManySpaces)?;
            let a = AddressSpace::new(m, st.kernel_root).map_err(VmError::Map)?;
            let root = a.root();
            st.aspaces[slot] = Some(a);
            Ok(root)
        })
    }
    fn aspace_destroy(&mut self, root: PhysFrame) -> Result<DestroyStats, VmError> {
        self.host.log(format_args!(
            "aspace_destroy({:#x})",
            root.start_address().as_u64()
        ));
        self.host.vm_mut(|st, m, _| {
            let i = st
                .aspaces
                .iter()
                .position(|a| a.as_ref().is_some_and(|a| a.root() == root))
                .ok_or(VmError::NoSuchSpace(root.start_address().as_u64()))?;
            let a = st.aspaces[i].take().ok_or(VmError::SpaceBusy)?;
            match a.destroy(m, st.kernel_root) {
                Ok(s) => {
                    if st.target == VmTarget::Aspace(root) {
                        st.target = VmTarget::Kernel;
                    }
                    Ok(s)
                }
                Err((a, _)) => {
                    st.aspaces[i] = Some(a);
                    Err(VmError::SpaceBusy)
                }
            }
        })
    }
    fn page_insert(
        &mut self,
        t: VmTarget,
        pfn: Pfn,
        virt: u64,
        perm: PageTableFlags,
        force: bool,
    ) -> Result<(), VmError> {
        self.host.log(format_args!(
            "page_insert({pfn}, {virt:#x}, {:#x}) in {t}",
            perm.bits()
        ));
        self.host.vm_mut(|st, m, tlb| {
            let root = st.root(t)?;
            let va =
                VirtAddr::try_new(virt).map_err(|_| VmError::Map(MapError::NonCanonical(virt)))?;
            protected(virt & !0xfff, 4096)?;
            if perm.contains(PageTableFlags::WRITABLE)
                && !perm.contains(PageTableFlags::NO_EXECUTE)
                && !force
            {
                return Err(VmError::WritableExecutable);
            }
            m.page_insert(root, pfn, va, perm)
                .map_err(VmError::Map)?
                .flush(tlb);
            Ok(())
        })
    }
    fn pgdir_walk(
        &mut self,
        t: VmTarget,
        virt: u64,
        create: bool,
    ) -> Result<Option<mm::paging::Pte>, VmError> {
        let va = VirtAddr::try_new(virt).map_err(|_| VmError::Map(MapError::NonCanonical(virt)))?;
        if create {
            if t == VmTarget::Kernel {
                return Err(VmError::CreateInKernel);
            }
            protected(virt & !0xfff, 4096)?;
            self.host
                .log(format_args!("pgdir_walk({virt:#x}, create) in {t}"));
        }
        self.host.vm_mut(|st, m, _| {
            let root = st.root(t)?;
            m.pgdir_walk(root, va, create).map_err(VmError::Map)
        })
    }
    fn page_lookup(&self, t: VmTarget, virt: u64) -> Result<Option<PageLookup>, VmError> {
        let v = VirtAddr::try_new(virt).map_err(|_| VmError::Map(MapError::NonCanonical(virt)))?;
        self.host.vm(|st, mem| {
            let root = st.root(t)?;
            let w = walk(mem, root, v);
            let last = w.steps()[w.steps().len() - 1];
            Ok(match w.end {
                mm::paging::WalkEnd::Page { phys, size } => Some(PageLookup {
                    pfn: Pfn::containing(phys.as_u64()),
                    pte: mm::paging::Pte {
                        addr: last.entry_addr,
                        raw: last.raw,
                    },
                    size,
                    flags: last.flags(),
                }),
                _ => None,
            })
        })
    }
    fn page_remove(&mut self, t: VmTarget, virt: u64) -> Result<(), VmError> {
        self.host.log(format_args!("page_remove({virt:#x}) in {t}"));
        self.host.vm_mut(|st, m, tlb| {
            let root = st.root(t)?;
            let va = VirtAddr::try_new(virt)
                .map_err(|_| VmError::Unmap(UnmapError::NonCanonical(virt)))?;
            protected(virt & !0xfff, 4096)?;
            m.page_remove(root, va).map_err(VmError::Unmap)?.flush(tlb);
            Ok(())
        })
    }
    fn vm_ranges(
        &self,
        t: VmTarget,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(&LeafRange),
    ) -> Result<(), VmError> {
        self.host.vm(|st, mem| {
            leaf_ranges(mem, st.root(t)?, start, end, f);
            Ok(())
        })
    }
    fn vm_wx(&self, f: &mut dyn FnMut(&LeafRange, WxFinding)) -> Result<WxReport, VmError> {
        Ok(self.host.vm(|st, mem| check_wx(mem, st.kernel_root, f)))
    }
    fn bench_map(&mut self, iters: u64) -> Result<MapBench, VmError> {
        self.host.log(format_args!("bench_map({iters})"));
        let mut clock = self.host.clock();
        let mut r = MapBench {
            iters,
            ..MapBench::default()
        };
        let n = iters.max(1);
        self.host.vm_mut(|st, m, tlb| {
            let root = st.kernel_root;
            let flags = PageTableFlags::NO_EXECUTE;
            // A resident neighbour keeps the tables, so every pair maps and
            // unmaps one leaf, as in steady use. Scratch pages map physical 0
            // read-only and are never accessed.
            let keep = VirtAddr::new(BENCH_VIRT);
            let v = VirtAddr::new(BENCH_VIRT + 4096);
            let p0 = PhysAddr::new(0);
            m.map(root, keep, p0, PageSize::Size4KiB, flags)
                .map_err(VmError::Map)?
                .ignore();
            let t0 = clock();
            for _ in 0..n {
                m.map(root, v, p0, PageSize::Size4KiB, flags)
                    .map_err(VmError::Map)?
                    .ignore();
                let (_, f) = m
                    .unmap(root, v, PageSize::Size4KiB)
                    .map_err(VmError::Unmap)?;
                f.flush(tlb);
            }
            let t1 = clock();
            let mut sink = 0u64;
            for _ in 0..n {
                sink ^= m.translate(root, keep).map_or(1, |(p, _, _)| p.as_u64());
            }
            let t2 = clock();
            r.map_unmap_4k = (t1 - t0) / n;
            r.translate = (t2 - t1) / n;
            core::hint::black_box(sink);
            let (_, f) = m
                .unmap(root, keep, PageSize::Size4KiB)
                .map_err(VmError::Unmap)?;
            f.flush(tlb);
            let t0 = clock();
            for _ in 0..n {
                tlb.invlpg(keep);
            }
            let t1 = clock();
            for _ in 0..n {
                tlb.flush_all();
            }
            let t2 = clock();
            r.invlpg = (t1 - t0) / n;
            r.flush_all = (t2 - t1) / n;
            // Flush-then-touch: one word per 4 KiB of direct-mapped RAM from
            // 16 MiB (the start of ZONE_NORMAL), read only.
            let base = BENCH_TOUCH_PHYS;
            let direct = m.mem().direct_offset();
            for (i, &pages) in BENCH_FLUSH_N.iter().enumerate() {
                let rounds = (n / pages).max(1);
                let t0 = clock();
                for _ in 0..rounds {
                    for k in 0..pages {
                        tlb.invlpg(VirtAddr::new_truncate(direct + base + k * 4096));
                    }
                    for k in 0..pages {
                        sink = sink.wrapping_add(m.mem().read_u64(base + k * 4096));
                    }
                }
                let t1 = clock();
                for _ in 0..rounds {
                    tlb.flush_all();
                    for k in 0..pages {
                        sink = sink.wrapping_add(m.mem().read_u64(base + k * 4096));
                    }
                }
                let t2 = clock();
                r.flush_then_touch[i] = ((t1 - t0) / rounds, (t2 - t1) / rounds);
                core::hint::black_box(sink);
            }
            Ok(r)
        })
    }
}
