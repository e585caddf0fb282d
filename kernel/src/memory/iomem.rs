//! The kernel's resource trees (`/proc/iomem`, `/proc/ioports`): one
//! `mm::resource` tree pair behind a lock, filled at boot with what the kernel
//! uses itself, as Linux's `e820__reserve_resources` and friends do.
//!
//! - iomem: each run of RAM as `System RAM` (busy, so drivers cannot claim
//!   RAM), with the kernel's sections (`Kernel code`, `Kernel rodata`,
//!   `Kernel data`, `Kernel bss`, which holds the stacks), `mem_map`, the
//!   `slab bitmap` and the boot `page tables` inside; the other memory-map
//!   entries by kind (`Reserved`, `ACPI Tables`, ...); the framebuffer (on the
//!   PVH path inside the display's PCI BAR0, `0000:00:02.0`), the local APIC and the I/O APIC (at its architectural default address: the
//!   MADT is not parsed).
//! - ioports: `pic1`, `timer0`, `keyboard` (0x60 and 0x64), `pic2`, `serial`.
//!
//! Entries the kernel depends on are marked `PROTECTED`: the shell's raw
//! writes into them are refused unless forced. Everything is `KERNEL`: the
//! shell cannot release it.

use crate::boot::{self, BootInfo, MemKind};
use crate::kprintln;
use mm::resource::{ResFlags, ResKind};
use shell::Resources;
use spin::Mutex;

/// The resource trees. Lock order: taken last, after every allocator lock;
/// nothing inside allocates.
pub static RESOURCES: Mutex<Resources> = Mutex::new(Resources::new());

const OWN: ResFlags = ResFlags(ResFlags::BUSY.0 | ResFlags::KERNEL.0);
const PROT: ResFlags = ResFlags(OWN.0 | ResFlags::PROTECTED.0);

/// Registers one entry; a conflict (a loader map that disagrees with itself)
/// is reported and skipped, never fatal.
fn add(r: &mut Resources, kind: ResKind, start: u64, end: u64, name: &str, flags: ResFlags) {
    if end <= start {
        return;
    }
    if let Err(e) = r.insert(kind, start, end - start, name, flags) {
        kprintln!(
            "warning: resource {name} {start:#x}-{:#x} not registered: {e}",
            end - 1
        );
    }
}

/// The name Linux's e820 code gives a memory-map entry that is not RAM.
fn e820_name(kind: MemKind) -> &'static str {
    match kind {
        MemKind::AcpiReclaimable => "ACPI Tables",
        MemKind::AcpiNvs => "ACPI Non-volatile Storage",
        MemKind::Bad => "Unusable memory",
        MemKind::Framebuffer => "framebuffer",
        _ => "Reserved",
    }
}

/// Fills the trees at boot. `mem_map` and `slab_bits` are physical
/// `(start, end)`; `boot_used` are the boot allocator's ranges (those two and
/// the page tables).
pub fn register_boot(
    info: &BootInfo,
    mem_map: (u64, u64),
    slab_bits: (u64, u64),
    boot_used: &[(u64, u64)],
) {
    let mut r = RESOURCES.lock();
    let r = &mut *r;
    // RAM, merged into runs, and the rest of the memory map by kind.
    let mut run: Option<(u64, u64)> = None;
    let ram = OWN | ResFlags::SYSRAM;
    for e in info.memory_map.entries() {
        let is_ram = matches!(
            e.kind,
            MemKind::Usable | MemKind::BootReclaimable | MemKind::Kernel
        );
        match run {
            Some((s, end)) if is_ram && e.start == end => run = Some((s, e.end)),
            _ => {
                if let Some((s, end)) = run.take() {
                    add(r, ResKind::Mem, s, end, "System RAM", ram);
                }
                if is_ram {
                    run = Some((e.start, e.end));
                } else if e.kind != MemKind::Framebuffer || info.framebuffer.is_none() {
                    add(r, ResKind::Mem, e.start, e.end, e820_name(e.kind), OWN);
                }
            }
        }
    }
    if let Some((s, end)) = run {
        add(r, ResKind::Mem, s, end, "System RAM", ram);
    }
    // The kernel's sections, at their physical addresses.
    let (kphys, _) = info.kernel_phys_range();
    let phys = |v: u64| kphys + (v - info.kernel_virt_base);
    let sections = [
        (info.kernel_virt_base, boot::text_end(), "Kernel code"),
        (boot::text_end(), boot::rodata_end(), "Kernel rodata"),
        (boot::rodata_end(), boot::bss_start(), "Kernel data"),
        (boot::bss_start(), boot::kernel_virt_end(), "Kernel bss"),
    ];
    for (s, e, name) in sections {
        add(r, ResKind::Mem, phys(s), phys(e), name, PROT);
    }
    add(r, ResKind::Mem, mem_map.0, mem_map.1, "mem_map", PROT);
    add(
        r,
        ResKind::Mem,
        slab_bits.0,
        slab_bits.1,
        "slab bitmap",
        PROT,
    );
    // The boot allocator's other frames are the kernel's page tables.
    for &(s, e) in boot_used {
        let mut cuts = [(s, e); 3];
        let mut n = 1;
        for hole in [mem_map, slab_bits] {
            let mut next = [(0, 0); 3];
            let mut m = 0;
            for &(a, b) in &cuts[..n] {
                for piece in [(a, b.min(hole.0)), (a.max(hole.1), b)] {
                    if piece.0 < piece.1 && m < next.len() {
                        next[m] = piece;
                        m += 1;
                    }
                }
            }
            cuts = next;
            n = m;
        }
        for &(a, b) in &cuts[..n] {
            add(r, ResKind::Mem, a, b, "page tables", PROT);
        }
    }
    if let Some(fb) = info.framebuffer {
        // On the PVH path the display's BAR0 first, named by its PCI address
        // as Linux names a BAR, and not busy (as in Linux, a driver requests
        // what it uses inside); the console's part of it inside, busy.
        if let Some(bar) = crate::drivers::bochs_vga::bar0().filter(|b| b.base == fb.phys) {
            let hex = |d: u8| b"0123456789abcdef"[(d & 0xf) as usize];
            let mut name = *b"0000:00:00.0";
            (name[8], name[9]) = (hex(bar.dev >> 4), hex(bar.dev));
            let name = core::str::from_utf8(&name).unwrap_or("pci");
            add(
                r,
                ResKind::Mem,
                bar.base,
                bar.base + bar.size,
                name,
                ResFlags::KERNEL,
            );
        }
        // Not PROTECTED: a write there changes pixels, never the kernel's
        // state (the console only writes it), so `poke`/`fill` may draw.
        let len = (fb.pitch as u64 * fb.height as u64).next_multiple_of(4096);
        add(r, ResKind::Mem, fb.phys, fb.phys + len, "framebuffer", OWN);
    }
    add(r, ResKind::Mem, 0xfec0_0000, 0xfec0_0400, "IOAPIC 0", OWN);
    add(r, ResKind::Mem, 0xfee0_0000, 0xfee0_1000, "Local APIC", OWN);
    for (s, n, name, flags) in [
        (0x20, 2, "pic1", PROT),
        (0x40, 4, "timer0", OWN),
        (0x60, 1, "keyboard", OWN),
        (0x64, 1, "keyboard", OWN),
        (0xa0, 2, "pic2", PROT),
        (0x3f8, 8, "serial", PROT),
    ] {
        add(r, ResKind::Io, s, s + n, name, flags);
    }
}
