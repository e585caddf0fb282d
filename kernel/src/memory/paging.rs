//! The kernel's own page tables.
//!
//! At boot memkern builds a fresh PML4 and switches to it; nothing of the
//! loader's tables stays in use. What it maps where (the addresses and a picture
//! of the whole space are in `mm::layout`):
//!
//! | virtual                          | what                                        |
//! |----------------------------------|---------------------------------------------|
//! | `DIRECT_MAP_BASE + phys`         | RAM of ZONE_DMA and ZONE_NORMAL (2 MiB pages, RW, NX), plus the framebuffer and local-APIC pages |
//! | `TEMP_WINDOW`                    | one page, remapped on demand to reach an UNMAPPED frame |
//! | `KERNEL_BASE + phys`             | the kernel image: text RX, rodata R, data+bss RW (4 KiB pages, NX where not text) |
//!
//! Page-table frames are always in the direct map, so tables are reached at
//! `DIRECT_MAP_BASE + frame` (the `x86_64` crate's `OffsetPageTable`).

use super::bootmem::BootAlloc;
use crate::boot::{self, BootInfo};
use core::sync::atomic::{AtomicU64, Ordering};
use mm::layout::{DIRECT_MAP_BASE, TEMP_WINDOW};
use spin::Mutex;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr3Flags, Efer, EferFlags};
// The x86_64 crate's `Page` is a *virtual* page; `mm::Page` is `struct page`.
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page as VirtPage, PageTable, PageTableFlags as F,
    PhysFrame, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// Where physical memory is mapped right now (the loader's HHDM until the switch).
static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);
/// End of the direct map (physical, exclusive): RAM below it is mapped.
static DIRECT_MAP_END: AtomicU64 = AtomicU64::new(0);

/// The kernel's page tables, once switched to.
pub static KERNEL_TABLES: Mutex<Option<OffsetPageTable<'static>>> = Mutex::new(None);

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

/// End of the direct map (physical).
pub fn direct_map_end() -> u64 {
    DIRECT_MAP_END.load(Ordering::Relaxed)
}

fn map_range_4k(
    pt: &mut OffsetPageTable,
    alloc: &mut BootAlloc,
    virt: u64,
    phys: u64,
    len: u64,
    flags: F,
) {
    let mut off = 0;
    while off < len {
        let page = VirtPage::<Size4KiB>::containing_address(VirtAddr::new(virt + off));
        let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(phys + off));
        // SAFETY: the new tables are not active yet; each page is mapped once to
        // the frame the layout above assigns it.
        unsafe {
            pt.map_to_with_table_flags(page, frame, flags, F::PRESENT | F::WRITABLE, alloc)
                .expect("boot paging: map 4K")
                .ignore();
        }
        off += 4096;
    }
}

/// Builds the kernel's tables mapping RAM below `lowmem_end`, and switches to them.
pub fn build_and_switch(info: &BootInfo, lowmem_end: u64, alloc: &mut BootAlloc) {
    let loader_off = info.direct_map_offset;
    let pml4_phys = alloc
        .alloc_frame()
        .expect("boot paging: no frame for the PML4");
    let pml4_ptr = (loader_off + pml4_phys) as *mut PageTable;
    // SAFETY: the frame is fresh usable RAM reached through the loader's direct
    // map, and nothing else refers to it.
    let pml4 = unsafe {
        pml4_ptr.write(PageTable::new());
        &mut *pml4_ptr
    };
    // SAFETY: loader_off maps all RAM (the loader's promise); the boot allocator
    // only hands out RAM frames.
    let mut pt = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(loader_off)) };

    // Kernel image, per section.
    let (kphys, _) = info.kernel_phys_range();
    let kvirt = info.kernel_virt_base;
    let sections = [
        (kvirt, boot::text_end(), F::PRESENT | F::GLOBAL),
        (
            boot::text_end(),
            boot::rodata_end(),
            F::PRESENT | F::GLOBAL | F::NO_EXECUTE,
        ),
        (
            boot::rodata_end(),
            boot::kernel_virt_end(),
            F::PRESENT | F::GLOBAL | F::WRITABLE | F::NO_EXECUTE,
        ),
    ];
    for (s, e, flags) in sections {
        map_range_4k(&mut pt, alloc, s, kphys + (s - kvirt), e - s, flags);
    }

    // Direct map of RAM below lowmem_end with 2 MiB pages (4 KiB at the ragged
    // ends of regions); holes stay unmapped.
    let rw = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL;
    let mut mapped_until = 0u64;
    for r in info.memory_map.entries().iter().filter(|r| r.kind.is_ram()) {
        let (s, e) = (
            (r.start & !0xfff).max(mapped_until),
            r.end.min(lowmem_end).next_multiple_of(4096),
        );
        mapped_until = mapped_until.max(e);
        let mut p = s;
        while p < e {
            if p % (2 << 20) == 0 && p + (2 << 20) <= e {
                let page =
                    VirtPage::<Size2MiB>::containing_address(VirtAddr::new(DIRECT_MAP_BASE + p));
                let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(p));
                // SAFETY: as above; direct-map pages map RAM to its fixed offset.
                unsafe {
                    pt.map_to_with_table_flags(
                        page,
                        frame,
                        rw | F::HUGE_PAGE,
                        F::PRESENT | F::WRITABLE,
                        alloc,
                    )
                    .expect("boot paging: map 2M")
                    .ignore();
                }
                p += 2 << 20;
            } else {
                map_range_4k(&mut pt, alloc, DIRECT_MAP_BASE + p, p, 4096, rw);
                p += 4096;
            }
        }
    }
    // Device pages at their direct-map addresses: framebuffer and local APIC.
    let dev = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::NO_CACHE | F::WRITE_THROUGH;
    if let Some(fb) = info.framebuffer {
        let len = (fb.pitch as u64 * fb.height as u64).next_multiple_of(4096);
        map_range_4k(
            &mut pt,
            alloc,
            DIRECT_MAP_BASE + fb.phys,
            fb.phys & !0xfff,
            len,
            rw,
        );
    }
    map_range_4k(
        &mut pt,
        alloc,
        DIRECT_MAP_BASE + 0xfee0_0000,
        0xfee0_0000,
        4096,
        dev,
    );
    // The temporary window: create its page table now, leave the page unmapped.
    map_range_4k(&mut pt, alloc, TEMP_WINDOW, 0, 4096, F::PRESENT);
    let _ = pt
        .unmap(VirtPage::<Size4KiB>::containing_address(VirtAddr::new(
            TEMP_WINDOW,
        )))
        .map(|(_, f)| f.ignore());

    // Switch: NX and write protection on, then CR3.
    // SAFETY: the new tables map everything the kernel touches from here on (its
    // image incl. stacks, the direct map of RAM, devices); EFER.NXE and CR0.WP
    // only make the hardware enforce the rights written above.
    unsafe {
        Efer::update(|e| e.insert(EferFlags::NO_EXECUTE_ENABLE));
        Cr0::update(|c| c.insert(Cr0Flags::WRITE_PROTECT));
        Cr3::write(
            PhysFrame::containing_address(PhysAddr::new(pml4_phys)),
            Cr3Flags::empty(),
        );
    }
    PHYS_OFFSET.store(DIRECT_MAP_BASE, Ordering::SeqCst);
    DIRECT_MAP_END.store(lowmem_end, Ordering::SeqCst);
    // SAFETY: the PML4 is now active and reached through our own direct map.
    let pml4 = unsafe { &mut *((DIRECT_MAP_BASE + pml4_phys) as *mut PageTable) };
    // SAFETY: every page-table frame lies in the direct map (boot allocator
    // frames are below lowmem_end).
    let tables = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(DIRECT_MAP_BASE)) };
    *KERNEL_TABLES.lock() = Some(tables);
}

/// Runs `f` on the page at `phys` mapped through the temporary window.
/// Used for frames outside the direct map (ZONE_UNMAPPED).
pub fn with_temp_mapping<R>(phys: u64, f: impl FnOnce(*mut u8) -> R) -> R {
    crate::arch::cpu::without_interrupts(|| {
        let mut g = KERNEL_TABLES.lock();
        let pt = g.as_mut().expect("paging not initialised");
        let page = VirtPage::<Size4KiB>::containing_address(VirtAddr::new(TEMP_WINDOW));
        let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(phys & !0xfff));
        let mut none = NoFrames;
        // SAFETY: the window page is reserved for this function, its page table
        // exists (created at boot), and it is unmapped again before returning.
        unsafe {
            pt.map_to(
                page,
                frame,
                F::PRESENT | F::WRITABLE | F::NO_EXECUTE,
                &mut none,
            )
            .expect("temp window busy")
            .flush();
        }
        let r = f((TEMP_WINDOW + (phys & 0xfff)) as *mut u8);
        if let Ok((_, flush)) = pt.unmap(page) {
            flush.flush();
        }
        r
    })
}

/// A frame allocator that has none: for mappings whose tables already exist.
struct NoFrames;

// SAFETY: it never returns a frame.
unsafe impl FrameAllocator<Size4KiB> for NoFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        None
    }
}
