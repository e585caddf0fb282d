//! A simulated machine for host tests: the shell's memory API (`shell::Api`,
//! the implementation the kernel runs too) over a real `mm::buddy::Buddy`, a real
//! `mm::slab::Slab` and a `shell::PoolTable` on 64 MiB of simulated RAM. What is
//! simulated is only the [`SimHost`]: the memory, the output and the call log.
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
use mm::layout::{DIRECT_MAP_BASE, TEMP_WINDOW};
use mm::paging::{Mapper, PageTableFlags as F, PhysAddr, PhysFrame, SimTlb, TableFrames, VirtAddr};
use mm::resource::{ResFlags, ResKind};
use mm::slab::Slab;
use mm::vmalloc::{PagingBackend, VmBackend, VmSpace};
use mm::{Page, PageFlags, Pfn, PhysMem, Zone};
use shell::{
    Api, KernelLayout, MemHost, Platform, PoolTable, RawFault, Resources, Shell, Trap, VersionInfo,
    VmState, WalkStop, Width,
};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

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

/// The machine's memory: sparse, reading [`poison`] where nothing was written,
/// with the direct map below `lowmem`.
pub type SimMem = mm::sim::SparseMem;

/// A fresh mem_map for [`machine`] (garbage is fine: `page_init` overwrites it).
pub fn mem_map() -> Vec<Page> {
    vec![Page::reserved(Zone::Dma); NPAGES as usize]
}

/// The simulated kernel: the shell's memory API ([`shell::Api`]) over a
/// [`SimHost`]. Dereferences to the host, so tests read `k.out`, `k.calls`,
/// `k.b`, ...
pub type Machine<'a> = Api<SimHost<'a>>;

/// What is simulated: output, a log of the mutating memory API calls, the
/// allocators and the memory.
pub struct SimHost<'a> {
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
    pub clock: Rc<Cell<u64>>,
    /// A `selftest heap` case to report as failed.
    pub heap_fail: Option<&'static str>,
    /// Calls of `kmem_cache_shrink_all` (not logged in `calls`: it frees no
    /// object of a handle).
    pub shrinks: u32,
    /// The resource trees, registered at "boot" like the kernel's ([`boot_resources`]).
    pub resources: Box<Resources>,
    /// The fake devices behind the I/O ports ([`Ports`]).
    pub ports: Ports,
    /// The "kernel image" PFNs, also mapped at `KERNEL_BASE + phys`.
    pub kernel: (u32, u32),
    /// The page-table state: the simulated kernel's boot tables (built in its
    /// reserved "image" frames, see [`boot_tables`]) and the shell's address spaces.
    pub vm: VmState,
    /// The simulated TLB: caches translations until flushed.
    pub tlb: RefCell<SimTlb>,
    /// The simulated kernel's layout.
    pub layout: KernelLayout,
    /// The vmalloc and ioremap areas (over the simulated page tables).
    pub vmspace: VmSpace,
}

/// The kernel "image" seen through its own mapping: physical `p` of
/// [`KERNEL`] is at `KERNEL_BASE + p`, as in the kernel.
pub const KERNEL_BASE: u64 = mm::layout::KERNEL_BASE;

/// The resource trees of the simulated machine, as the kernel registers its
/// own: `System RAM` per RAM range with `Kernel code` (protected) inside, and
/// the ports `pic1`, `timer0`, `keyboard`, `pic2`, `serial`.
pub fn boot_resources(ram: &[(u32, u32)], kernel: (u32, u32)) -> Box<Resources> {
    let mut r = Box::new(Resources::new());
    let own = ResFlags::BUSY | ResFlags::KERNEL;
    for &(s, e) in ram {
        let (s, e) = (u64::from(s) << 12, u64::from(e) << 12);
        r.insert(ResKind::Mem, s, e - s, "System RAM", own | ResFlags::SYSRAM)
            .unwrap();
    }
    let (ks, ke) = (u64::from(kernel.0) << 12, u64::from(kernel.1) << 12);
    r.insert(
        ResKind::Mem,
        ks,
        ke - ks,
        "Kernel code",
        own | ResFlags::PROTECTED,
    )
    .unwrap();
    for (s, n, name, prot) in [
        (0x20, 2, "pic1", true),
        (0x40, 4, "timer0", false),
        (0x60, 1, "keyboard", false),
        (0x64, 1, "keyboard", false),
        (0xa0, 2, "pic2", true),
        (0x3f8, 8, "serial", true),
    ] {
        let p = if prot {
            ResFlags::PROTECTED
        } else {
            ResFlags::EMPTY
        };
        r.insert(ResKind::Io, s, n, name, own | p).unwrap();
    }
    r
}

/// Fake devices on the I/O ports: QEMU's fw_cfg (selector 0x510, 16 bits; data
/// 0x511, one byte per read of the selected item: item 0 is the signature
/// "QEMU"), a latch at 0x80 (reads return the last byte written), and a
/// floating bus elsewhere (reads all ones). Every write is recorded.
#[derive(Debug, Default)]
pub struct Ports {
    /// fw_cfg's selected item.
    pub fw_cfg_sel: u16,
    /// Read position in the selected item.
    pub fw_cfg_pos: usize,
    /// The latch at 0x80.
    pub latch: u8,
    /// Every write: (port, width in bytes, value).
    pub written: Vec<(u16, u8, u32)>,
}

impl Ports {
    fn read(&mut self, port: u16, width: Width) -> u32 {
        match port {
            0x511 => {
                let item: &[u8] = if self.fw_cfg_sel == 0 { b"QEMU" } else { b"" };
                let b = item.get(self.fw_cfg_pos).copied().unwrap_or(0);
                self.fw_cfg_pos += 1;
                u32::from(b)
            }
            0x80 => u32::from(self.latch),
            _ => (Width::L.max() & width.max()) as u32,
        }
    }
    fn write(&mut self, port: u16, width: Width, value: u32) {
        self.written.push((port, width.bytes() as u8, value));
        match port {
            0x510 => {
                self.fw_cfg_sel = value as u16;
                self.fw_cfg_pos = 0;
            }
            0x80 => self.latch = value as u8,
            _ => {}
        }
    }
}

/// Frames past the end of the mem_map that hold the simulated kernel's boot
/// page tables (outside every allocator, as the real kernel's are reserved).
pub const BOOT_TABLE_FRAMES: u32 = 160;

/// Boot table frames: `[next, end)`.
struct BootFrames(u32, u32);

impl TableFrames for BootFrames {
    fn alloc_table(&mut self, mem: &mut impl PhysMem) -> Option<PhysFrame> {
        (self.0 < self.1).then(|| {
            let p = u64::from(self.0) << 12;
            self.0 += 1;
            mem.fill(p, 4096, 0);
            PhysFrame::containing_address(PhysAddr::new(p))
        })
    }
    fn free_table(&mut self, _frame: PhysFrame) {}
}

/// The simulated kernel's tables, as the kernel builds its own: the image with
/// per-section rights (text RX, rodata R, data RW over the reserved PFNs
/// `kernel`), the direct map of `[0, lowmem)` with 2 MiB pages, the temporary
/// window's page table, the preallocated kernel-half PDPTs. Table frames come
/// from the [`BOOT_TABLE_FRAMES`] frames after the mem_map (`npages`), so the
/// buddy allocator is untouched.
pub fn boot_tables(
    mem: &mut SimMem,
    lowmem: u64,
    kernel: (u32, u32),
    npages: u32,
) -> (PhysFrame, KernelLayout) {
    let mut frames = BootFrames(npages, npages + BOOT_TABLE_FRAMES);
    let root = frames.alloc_table(mem).unwrap();
    mm::paging::kernel::preallocate_pdpts(
        mem,
        &mut frames,
        root,
        mm::paging::kernel::RUNTIME_SLOTS,
    )
    .unwrap();
    let mut m = Mapper::new(mem, &mut frames);
    let mut tlb = SimTlb::new();
    let (k0, k1) = (u64::from(kernel.0) << 12, u64::from(kernel.1) << 12);
    let pages = (k1 - k0) >> 12;
    let text = (KERNEL_BASE + k0, KERNEL_BASE + k0 + ((pages / 2) << 12));
    let rodata = (text.1, text.1 + ((pages / 4) << 12));
    let data = (rodata.1, KERNEL_BASE + k1);
    for ((s, e), fl) in [
        (text, F::GLOBAL),
        (rodata, F::GLOBAL | F::NO_EXECUTE),
        (data, F::GLOBAL | F::WRITABLE | F::NO_EXECUTE),
    ] {
        m.mm_map_phys_addr(root, s, s - KERNEL_BASE, e - s, fl, true, &mut tlb)
            .unwrap();
    }
    m.mm_map_phys_addr(
        root,
        DIRECT_MAP_BASE,
        0,
        lowmem,
        F::GLOBAL | F::WRITABLE | F::NO_EXECUTE,
        false,
        &mut tlb,
    )
    .unwrap();
    m.pgdir_walk(root, VirtAddr::new(TEMP_WINDOW), true)
        .unwrap()
        .unwrap();
    let w = m.walk(root, VirtAddr::new(TEMP_WINDOW));
    let pd_entry = w.steps()[2].entry_addr.as_u64();
    let e = m.mem().read_u64(pd_entry);
    m.mem_mut()
        .write_u64(pd_entry, e + (1 << mm::paging::entry::COUNT_SHIFT));
    (
        root,
        KernelLayout {
            text,
            rodata,
            data,
            direct_map_end: lowmem,
            mem_map: (k0, u64::from(NPAGES) * 16),
        },
    )
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
    let mut mem = SimMem::new(b.lowmem().phys(), poison);
    let (root, layout) = boot_tables(&mut mem, b.lowmem().phys(), kernel, npages);
    let mut k = Api::new(SimHost {
        out: String::new(),
        calls: Vec::new(),
        vm: VmState::new(root),
        vmspace: VmSpace::new(),
        tlb: RefCell::new(SimTlb::new()),
        layout,
        mem,
        b,
        slab: Box::new(Slab::new()),
        pools: Box::new(PoolTable::new()),
        clock: Rc::new(Cell::new(0)),
        heap_fail: None,
        shrinks: 0,
        resources: boot_resources(
            &ram.iter().map(|&(s, e)| (s.0, e.0)).collect::<Vec<_>>(),
            kernel,
        ),
        ports: Ports::default(),
        kernel,
    });
    let mut sh = Shell::new();
    sh.banner_and_prompt(&mut k);
    (sh, k)
}

impl fmt::Write for SimHost<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.push_str(s);
        Ok(())
    }
}

impl Platform for SimHost<'_> {
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

impl<'a> MemHost for SimHost<'a> {
    type Mem = SimMem;
    type Clock = Box<dyn FnMut() -> u64>;

    fn buddy<R>(&self, f: impl FnOnce(&Buddy<'_>, &SimMem) -> R) -> R {
        f(&self.b, &self.mem)
    }
    fn buddy_mut<R>(&mut self, f: impl FnOnce(&mut Buddy<'_>, &mut SimMem) -> R) -> R {
        f(&mut self.b, &mut self.mem)
    }
    fn slab<R>(&self, f: impl FnOnce(&Slab, &Buddy<'_>, &SimMem) -> R) -> R {
        f(&self.slab, &self.b, &self.mem)
    }
    fn slab_mut<R>(&mut self, f: impl FnOnce(&mut Slab, &mut Buddy<'_>, &mut SimMem) -> R) -> R {
        f(&mut self.slab, &mut self.b, &mut self.mem)
    }
    fn pools<R>(&self, f: impl FnOnce(&PoolTable) -> R) -> R {
        f(&self.pools)
    }
    fn pools_mut<R>(
        &mut self,
        f: impl FnOnce(&mut PoolTable, &mut Slab, &mut Buddy<'_>, &mut SimMem) -> R,
    ) -> R {
        f(&mut self.pools, &mut self.slab, &mut self.b, &mut self.mem)
    }
    fn mem(&self) -> &SimMem {
        &self.mem
    }
    fn resources<R>(&self, f: impl FnOnce(&Resources) -> R) -> R {
        f(&self.resources)
    }
    fn resources_mut<R>(&mut self, f: impl FnOnce(&mut Resources) -> R) -> R {
        f(&mut self.resources)
    }
    fn port_in(&mut self, port: u16, width: Width) -> u32 {
        self.ports.read(port, width)
    }
    fn port_out(&mut self, port: u16, width: Width, value: u32) {
        self.ports.write(port, width, value)
    }
    fn port_in_str(&mut self, port: u16, width: Width, buf: &mut [u8]) {
        let w = width.bytes() as usize;
        for chunk in buf.chunks_mut(w) {
            let v = self.ports.read(port, width);
            chunk.copy_from_slice(&v.to_le_bytes()[..w]);
        }
    }
    fn port_out_str(&mut self, port: u16, width: Width, buf: &[u8]) {
        let w = width.bytes() as usize;
        for chunk in buf.chunks(w) {
            let mut b = [0u8; 4];
            b[..w].copy_from_slice(chunk);
            self.ports.write(port, width, u32::from_le_bytes(b));
        }
    }
    fn translate(&self, virt: u64) -> Option<u64> {
        self.sim_translate(virt).map(|(p, _)| p)
    }
    fn raw_load(&self, virt: u64, width: Width) -> Result<u64, RawFault> {
        let mut b = [0u8; 8];
        self.raw_read(virt, &mut b[..width.bytes() as usize])?;
        Ok(u64::from_le_bytes(b))
    }
    fn raw_store(&mut self, virt: u64, width: Width, value: u64) -> Result<(), RawFault> {
        let w = width.bytes() as usize;
        for (phys, off, n) in self.sim_chunks(virt, w as u64, true)? {
            self.mem.write(phys, &value.to_le_bytes()[off..off + n]);
        }
        Ok(())
    }
    fn raw_read(&self, virt: u64, buf: &mut [u8]) -> Result<(), RawFault> {
        for (phys, off, n) in self.sim_chunks(virt, buf.len() as u64, false)? {
            self.mem.read(phys, &mut buf[off..off + n]);
        }
        Ok(())
    }
    fn raw_fill(&mut self, virt: u64, len: u64, byte: u8) -> Result<(), RawFault> {
        for (phys, _, n) in self.sim_chunks(virt, len, true)? {
            self.mem.fill(phys, n, byte);
        }
        Ok(())
    }
    fn raw_copy(&mut self, dst: u64, src: u64, len: u64) -> Result<(), RawFault> {
        let mut buf = vec![0u8; len as usize];
        self.raw_read(src, &mut buf)?;
        for (phys, off, n) in self.sim_chunks(dst, len, true)? {
            self.mem.write(phys, &buf[off..off + n]);
        }
        Ok(())
    }
    type Frames = Buddy<'a>;
    type Tlb = SimTlb;
    fn vm<R>(&self, f: impl FnOnce(&VmState, &SimMem) -> R) -> R {
        f(&self.vm, &self.mem)
    }
    fn vm_mut<R>(
        &mut self,
        f: impl FnOnce(&mut VmState, &mut Mapper<'_, SimMem, Buddy<'a>>, &mut SimTlb) -> R,
    ) -> R {
        let tlb = &mut *self.tlb.borrow_mut();
        f(
            &mut self.vm,
            &mut Mapper::new(&mut self.mem, &mut self.b),
            tlb,
        )
    }
    fn vm_layout(&self) -> KernelLayout {
        self.layout
    }
    fn vmspace<R>(&self, f: impl FnOnce(&VmSpace) -> R) -> R {
        f(&self.vmspace)
    }
    fn vmspace_mut<R>(&mut self, f: impl FnOnce(&mut VmSpace, &mut dyn VmBackend) -> R) -> R {
        let tlb = &mut *self.tlb.borrow_mut();
        let root = self.vm.kernel_root;
        let mut be = PagingBackend::new(&mut self.mem, &mut self.b, tlb, root);
        f(&mut self.vmspace, &mut be)
    }
    fn clock(&self) -> Self::Clock {
        let clock = Rc::clone(&self.clock);
        Box::new(move || {
            clock.set(clock.get() + CLOCK_STEP);
            clock.get()
        })
    }
    fn heap_selftest(&mut self, case: &str) -> Result<(), &'static str> {
        match self.heap_fail {
            Some(bad) if bad == case => Err("simulated failure"),
            _ => Ok(()),
        }
    }
    fn log(&mut self, call: fmt::Arguments<'_>) {
        let call = call.to_string();
        if call == "kmem_cache_shrink_all()" {
            self.shrinks += 1;
        } else {
            self.calls.push(call);
        }
    }
}

impl SimHost<'_> {
    /// The translation of `virt` as the CPU would make it (through the TLB),
    /// with the leaf's flags.
    fn sim_translate(&self, virt: u64) -> Option<(u64, F)> {
        let va = VirtAddr::try_new(virt).ok()?;
        self.tlb
            .borrow_mut()
            .translate(&self.mem, self.vm.kernel_root, va)
            .map(|(p, _, f)| (p.as_u64(), f))
    }

    /// `[virt, virt + len)` page by page as `(phys, offset, bytes)`, if every
    /// page is mapped (and writable for a write); else the fault the CPU would
    /// raise: #GP for a non-canonical address, #PF at the first page that
    /// faults (not present, or a protection violation for a write to a
    /// read-only page; the write bit for stores), with the walk of the kernel's
    /// tables as the kernel reports it.
    fn sim_chunks(
        &self,
        virt: u64,
        len: u64,
        write: bool,
    ) -> Result<Vec<(u64, usize, usize)>, RawFault> {
        let canonical = |a: u64| (a >> 47) == 0 || (a >> 47) == 0x1ffff;
        let last = virt.saturating_add(len.saturating_sub(1));
        if !canonical(virt) || !canonical(last) {
            return Err(RawFault::new(13, 0, virt));
        }
        let mut out = Vec::new();
        let mut a = virt;
        if len == 0 {
            return Ok(out);
        }
        loop {
            let n = ((a | 0xfff).min(last) - a + 1) as usize;
            let code = match self.sim_translate(a) {
                Some((p, f)) if !write || f.contains(F::WRITABLE) => {
                    out.push((p, (a - virt) as usize, n));
                    None
                }
                Some(_) => Some(3),
                None => Some(if write { 2 } else { 0 }),
            };
            if let Some(code) = code {
                let mut f = RawFault::new(14, code, a);
                f.walk = Some(WalkStop::of(&mm::paging::walk(
                    &self.mem,
                    self.vm.kernel_root,
                    VirtAddr::new(a),
                )));
                return Err(f);
            }
            if a | 0xfff >= last {
                break;
            }
            a = (a | 0xfff) + 1;
        }
        Ok(out)
    }
}
