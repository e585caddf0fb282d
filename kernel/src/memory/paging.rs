//! The kernel's own page tables, built and changed by the hardware-free
//! `mm::paging` (the one page-table implementation in the tree); this module
//! supplies only what needs the CPU: CR3, `invlpg`, CR4.PGE, the PAT MSR.
//!
//! At boot memkern builds a fresh PML4 and switches to it; nothing of the
//! loader's tables stays in use. What it maps where (the addresses and a picture
//! of the whole space are in `mm::layout`):
//!
//! | virtual                          | what                                        |
//! |----------------------------------|---------------------------------------------|
//! | `DIRECT_MAP_BASE + phys`         | RAM of ZONE_DMA and ZONE_NORMAL (2 MiB pages, RW, NX), plus the framebuffer (write-combining) and local-APIC (uncached) pages |
//! | `VMALLOC`, `IOREMAP`             | vmalloc and ioremap areas, made at run time ([`super::vmalloc`]) |
//! | `TEMP_WINDOW`                    | one page, remapped on demand to reach an UNMAPPED frame |
//! | `KERNEL_BASE + phys`             | the kernel image: text RX, rodata R, data+bss RW (4 KiB pages, NX where not text) |
//!
//! Page-table frames are always in the direct map, so tables are reached at
//! `DIRECT_MAP_BASE + frame` (`mm::PhysMem` over [`DirectMap`]). At boot they come
//! from the boot frame allocator (and stay reserved), later from the buddy
//! allocator ([`KernelFrames`]: ZONE_NORMAL, then ZONE_DMA), which takes the buddy
//! lock once per frame. Lock order: the vm-space lock of [`super::vmalloc`],
//! then the page-table lock ([`with_page_tables`]), then slab, then buddy.
//!
//! The PAT is programmed as Linux does: entry 1 is write-combining, so a leaf
//! with `WRITE_THROUGH` alone is WC and `NO_CACHE|WRITE_THROUGH` is UC.
//!
//! The temporary window does not take the page-table lock (the direct map calls
//! it for ZONE_UNMAPPED frames, possibly with the buddy lock held): its PTE's
//! address is fixed at boot and [`with_temp_mapping`] writes it directly with
//! interrupts off.

use super::bootmem::BootAlloc;
use super::physmem::DirectMap;
use crate::boot::{self, BootInfo};
use core::sync::atomic::{AtomicU64, Ordering};
use mm::layout::{DIRECT_MAP_BASE, TEMP_WINDOW};
use mm::paging::{
    Mapper, PageRefs, PageTableFlags as F, PhysAddr, PhysFrame, TableFrames, Tlb, VirtAddr, WalkEnd,
};
use mm::{MmError, Pfn, PhysMem};
use spin::Mutex;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr3Flags, Cr4, Cr4Flags, Efer, EferFlags};
use x86_64::registers::model_specific::Msr;

/// Where physical memory is mapped right now (the loader's HHDM until the switch).
static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);
/// End of the direct map (physical, exclusive): RAM below it is mapped.
static DIRECT_MAP_END: AtomicU64 = AtomicU64::new(0);
/// Virtual address (in the direct map) of the temporary window's PTE; 0 before
/// the switch.
static TEMP_PTE: AtomicU64 = AtomicU64::new(0);

/// The page-table lock: the kernel's top-level table, once switched to.
static PAGE_TABLES: Mutex<Option<PhysFrame>> = Mutex::new(None);

/// `IA32_PAT`.
const IA32_PAT: u32 = 0x277;
/// Linux's PAT layout: WB, WC, UC-, UC, twice (entry = PAT<<2 | PCD<<1 | PWT).
pub const PAT_LINUX: u64 = 0x0007_0106_0007_0106;

/// Sets the offset of the loader's direct map (before our tables exist).
pub fn set_loader_offset(off: u64) {
    PHYS_OFFSET.store(off, Ordering::SeqCst);
}

/// The virtual address of physical `phys` in the current direct map, if mapped.
pub fn phys_to_virt(phys: u64) -> Option<u64> {
    let end = DIRECT_MAP_END.load(Ordering::Relaxed);
    (end == 0 || phys < end).then(|| PHYS_OFFSET.load(Ordering::Relaxed) + phys)
}

/// The physical address of a direct-map virtual address.
pub fn virt_to_phys(virt: u64) -> Option<u64> {
    let off = PHYS_OFFSET.load(Ordering::Relaxed);
    let end = DIRECT_MAP_END.load(Ordering::Relaxed);
    (virt >= off && virt - off < end).then(|| virt - off)
}

/// Where physical address 0 is mapped right now (`virt = phys + offset` in the
/// direct map).
#[inline]
pub fn phys_offset() -> u64 {
    PHYS_OFFSET.load(Ordering::Relaxed)
}

/// End of the direct map (physical); 0 before the switch (the loader's map
/// covers everything).
pub fn direct_map_end() -> u64 {
    DIRECT_MAP_END.load(Ordering::Relaxed)
}

/// The CPU's TLB: `invlpg` for one page, a full flush otherwise.
pub struct HwTlb;

impl Tlb for HwTlb {
    #[inline]
    fn invlpg(&mut self, virt: VirtAddr) {
        x86_64::instructions::tlb::flush(virt);
    }
    /// A CR3 reload; when global pages are enabled (CR4.PGE) it would keep
    /// global translations, so PGE is toggled instead, which drops them all.
    fn flush_all(&mut self) {
        let cr4 = Cr4::read();
        if cr4.contains(Cr4Flags::PAGE_GLOBAL) {
            // SAFETY: clearing and restoring PGE changes no mapping; it only
            // invalidates every TLB entry, global ones included.
            unsafe {
                Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
                Cr4::write(cr4);
            }
        } else {
            x86_64::instructions::tlb::flush_all();
        }
    }
}

/// Table frames at run time: one buddy page each (ZONE_NORMAL then ZONE_DMA,
/// both direct-mapped), taking the buddy lock per frame, so it may be used with
/// the page-table lock held and never with the buddy lock held. Also the page
/// references of `page_insert` mappings.
pub struct KernelFrames;

impl TableFrames for KernelFrames {
    fn alloc_table(&mut self, mem: &mut impl PhysMem) -> Option<PhysFrame> {
        super::with_buddy(|b| b.alloc_table(mem))
    }
    fn free_table(&mut self, frame: PhysFrame) {
        super::with_buddy(|b| b.free_table(frame))
    }
}

impl PageRefs for KernelFrames {
    fn get_page(&mut self, pfn: Pfn) -> Result<u32, MmError> {
        super::with_buddy(|b| b.get_page(pfn))
    }
    fn put_page(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        super::with_buddy(|b| b.put_page(pfn))
    }
}

/// Table frames at boot: from the boot frame allocator, zeroed; they stay
/// reserved for good (boot never unmaps, so nothing is given back).
struct BootFrames<'a>(&'a mut BootAlloc);

impl TableFrames for BootFrames<'_> {
    fn alloc_table(&mut self, mem: &mut impl PhysMem) -> Option<PhysFrame> {
        let p = self.0.alloc_frame()?;
        mem.fill(p, 4096, 0);
        Some(PhysFrame::containing_address(PhysAddr::new(p)))
    }
    fn free_table(&mut self, _frame: PhysFrame) {}
}

/// The boot tables are not loaded while they are built: nothing to flush.
struct NotLoaded;

impl Tlb for NotLoaded {
    fn invlpg(&mut self, _virt: VirtAddr) {}
    fn flush_all(&mut self) {}
}

/// Runs `f` with the page-table lock held: the kernel's root (the running
/// table), a mapper over the direct map with buddy table frames, and the TLB.
/// `f` may allocate from the heap (the lock comes before slab and buddy).
pub fn with_page_tables<R>(
    f: impl FnOnce(PhysFrame, &mut Mapper<'_, DirectMap, KernelFrames>, &mut HwTlb) -> R,
) -> R {
    let g = PAGE_TABLES.lock();
    let root = g.expect("paging not initialised");
    let (mut mem, mut frames) = (DirectMap, KernelFrames);
    f(root, &mut Mapper::new(&mut mem, &mut frames), &mut HwTlb)
}

/// The kernel's top-level table (what CR3 holds).
pub fn kernel_root() -> PhysFrame {
    PAGE_TABLES.lock().expect("paging not initialised")
}

/// Builds the kernel's tables mapping RAM below `lowmem_end`, and switches to them.
pub fn build_and_switch(info: &BootInfo, lowmem_end: u64, alloc: &mut BootAlloc) {
    let mut mem = DirectMap;
    let mut frames = BootFrames(alloc);
    let root = frames
        .alloc_table(&mut mem)
        .expect("boot paging: no frame for the PML4");
    // The PDPTs of the kernel half's run-time ranges (vmalloc, ioremap, the
    // shell's mappings), so that every address space shares them and no
    // run-time unmap leaves one behind.
    mm::paging::kernel::preallocate_pdpts(
        &mut mem,
        &mut frames,
        root,
        mm::paging::kernel::RUNTIME_SLOTS,
    )
    .expect("boot paging: no frames for the kernel half");
    let mut m = Mapper::new(&mut mem, &mut frames);
    let mut map = |virt: u64, phys: u64, len: u64, flags: F, use4k: bool| {
        // Fresh tables, each range mapped once: only running out of boot
        // frames could fail, and then there is no kernel to run.
        let (flush, _) = m
            .map_range(
                root,
                VirtAddr::new(virt),
                PhysAddr::new(phys),
                len,
                flags,
                use4k,
                &mut NotLoaded,
            )
            .expect("boot paging: map");
        flush.ignore(); // not loaded yet
    };

    // Kernel image, per section.
    let (kphys, _) = info.kernel_phys_range();
    let kvirt = info.kernel_virt_base;
    let sections = [
        (kvirt, boot::text_end(), F::GLOBAL),
        (
            boot::text_end(),
            boot::rodata_end(),
            F::GLOBAL | F::NO_EXECUTE,
        ),
        (
            boot::rodata_end(),
            boot::kernel_virt_end(),
            F::GLOBAL | F::WRITABLE | F::NO_EXECUTE,
        ),
    ];
    for (s, e, flags) in sections {
        map(s, kphys + (s - kvirt), e - s, flags, true);
    }

    // Direct map of RAM below lowmem_end with 2 MiB pages (4 KiB at the ragged
    // ends of regions); holes stay unmapped.
    let rw = F::WRITABLE | F::NO_EXECUTE | F::GLOBAL;
    let mut mapped_until = 0u64;
    for r in info.memory_map.entries().iter().filter(|r| r.kind.is_ram()) {
        let (s, e) = (
            (r.start & !0xfff).max(mapped_until),
            r.end.min(lowmem_end).next_multiple_of(4096),
        );
        mapped_until = mapped_until.max(e);
        if s < e {
            map(DIRECT_MAP_BASE + s, s, e - s, rw, false);
        }
    }
    // Device pages at their direct-map addresses: the framebuffer
    // write-combining (PWT alone: PAT entry 1, programmed below before CR3
    // switches to these tables), as Linux maps framebuffers with ioremap_wc;
    // the local APIC uncached (PCD|PWT, PAT entry 3).
    let dev = F::WRITABLE | F::NO_EXECUTE | F::NO_CACHE | F::WRITE_THROUGH;
    if let Some(fb) = info.framebuffer {
        let start = fb.phys & !0xfff;
        let len = (fb.phys + fb.pitch as u64 * fb.height as u64).next_multiple_of(4096) - start;
        map(
            DIRECT_MAP_BASE + start,
            start,
            len,
            rw | F::WRITE_THROUGH,
            true,
        );
    }
    map(DIRECT_MAP_BASE + 0xfee0_0000, 0xfee0_0000, 4096, dev, true);
    // The temporary window: its page table exists from now on, its entry stays
    // empty. Its page directory entry counts the window as live, so that no
    // unmap nearby can ever free that table.
    let pte = m
        .pgdir_walk(root, VirtAddr::new(TEMP_WINDOW), true)
        .expect("boot paging: temporary window")
        .expect("pgdir_walk with create gives an entry");
    let w = m.walk(root, VirtAddr::new(TEMP_WINDOW));
    debug_assert!(matches!(w.end, WalkEnd::NotPresent { .. }));
    let pd_entry = w.steps()[2].entry_addr.as_u64();
    let e = m.mem().read_u64(pd_entry);
    m.mem_mut()
        .write_u64(pd_entry, e + (1 << mm::paging::entry::COUNT_SHIFT));

    // Switch: PAT, NX and write protection on, then CR3.
    // SAFETY: the new tables map everything the kernel touches from here on (its
    // image incl. stacks, the direct map of RAM, devices); EFER.NXE and CR0.WP
    // only make the hardware enforce the rights written above. The PAT change
    // keeps entries 0 (WB) and 3 (UC) and makes entry 1 WC; the loader's tables
    // still in use map nothing through entry 1, the new ones (which do: the
    // framebuffer) are loaded after it, and the CR3 write flushes the TLB.
    unsafe {
        Msr::new(IA32_PAT).write(PAT_LINUX);
        Efer::update(|e| e.insert(EferFlags::NO_EXECUTE_ENABLE));
        Cr0::update(|c| c.insert(Cr0Flags::WRITE_PROTECT));
        Cr3::write(root, Cr3Flags::empty());
    }
    PHYS_OFFSET.store(DIRECT_MAP_BASE, Ordering::SeqCst);
    DIRECT_MAP_END.store(lowmem_end, Ordering::SeqCst);
    TEMP_PTE.store(DIRECT_MAP_BASE + pte.addr.as_u64(), Ordering::SeqCst);
    *PAGE_TABLES.lock() = Some(root);
}

/// Runs `f` on the page at `phys` mapped through the temporary window.
/// Used for frames outside the direct map (ZONE_UNMAPPED). Takes no lock: the
/// window's PTE is written directly, with interrupts off.
pub fn with_temp_mapping<R>(phys: u64, f: impl FnOnce(*mut u8) -> R) -> R {
    let pte = TEMP_PTE.load(Ordering::Relaxed) as *mut u64;
    assert!(!pte.is_null(), "paging not initialised");
    crate::arch::cpu::without_interrupts(|| {
        let leaf = (phys & mm::paging::entry::ADDR_MASK)
            | (F::PRESENT | F::WRITABLE | F::NO_EXECUTE).bits();
        // SAFETY: `pte` is the window's entry in a table of the kernel's (in the
        // direct map, fixed at boot); the window page is reserved for this
        // function and unused (checked), interrupts are off so nothing else runs
        // on this CPU, and the entry is cleared and invalidated before returning.
        // A not-present entry is never cached, so no flush is owed before use.
        unsafe {
            assert!(pte.read_volatile() == 0, "temporary window busy");
            pte.write_volatile(leaf);
        }
        let r = f((TEMP_WINDOW + (phys & 0xfff)) as *mut u8);
        // SAFETY: as above; the window goes back to not present.
        unsafe { pte.write_volatile(0) };
        HwTlb.invlpg(VirtAddr::new(TEMP_WINDOW));
        r
    })
}
