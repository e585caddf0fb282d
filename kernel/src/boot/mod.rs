//! Boot protocols and the one `BootInfo` they all produce.
//!
//! memkern boots two ways: from Limine (ISO, BIOS or UEFI; see [`limine`]) and from a
//! Xen PVH entry (QEMU `-kernel`, microVMs; see [`pvh`]). Each turns what its loader
//! says into a [`BootInfo`]; nothing after that knows which loader ran. The memory
//! map is sanitized here: sorted, zero-length entries dropped, overlaps resolved in
//! favour of the more restrictive kind, neighbours of one kind merged (see
//! `mm::memmap`, tested on the host), the kernel image reserved, and the first
//! 64 KiB of physical memory reserved as Linux does on x86 (`mm::memmap::LOW_RESERVED`).
//! The command line is kept as an `mm::cmdline::Cmdline` (also tested on the host).
//!
//! No heap exists yet at this point, so everything here is fixed-capacity.

pub mod limine;
pub mod pvh;

pub use mm::cmdline::{Cmdline, CMDLINE_MAX};
use mm::layout::KERNEL_BASE;
pub use mm::memmap::{MemKind, MemRegion, MemoryMap, MEMMAP_MAX};

/// Bytes of the boot stack both entry paths switch to.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([u8; BOOT_STACK_SIZE]);

#[no_mangle]
static mut BOOT_STACK: Stack = Stack([0; BOOT_STACK_SIZE]);

core::arch::global_asm!(
    ".pushsection .bss.boot_stack_top, \"aw\", @nobits",
    ".global BOOT_STACK_TOP",
    "BOOT_STACK_TOP = BOOT_STACK + {size}",
    ".popsection",
    size = const BOOT_STACK_SIZE,
);

extern "C" {
    /// One past the top of [`BOOT_STACK`] (defined in assembly above).
    pub static BOOT_STACK_TOP: u8;
    static __kernel_start: u8;
    static __kernel_end: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __bss_start: u8;
}

// `linker.ld` places the image at `KERNEL_BASE + KERNEL_LOAD_PHYS` with load
// addresses `VMA - KERNEL_BASE`; a linker script cannot import Rust, so these
// absolute symbols hand it the `mm::layout` values.
core::arch::global_asm!(
    ".global __layout_kernel_base",
    ".set __layout_kernel_base, {base}",
    ".global __layout_kernel_load_phys",
    ".set __layout_kernel_load_phys, {load}",
    base = const KERNEL_BASE,
    load = const mm::layout::KERNEL_LOAD_PHYS,
);

/// Virtual address of the first byte of the kernel image.
pub fn kernel_virt_base() -> u64 {
    // SAFETY: only the address of a linker-defined symbol is taken.
    unsafe { &__kernel_start as *const u8 as u64 }
}

/// Virtual address of the start of `.bss` (the end of `.data`).
pub fn bss_start() -> u64 {
    // SAFETY: only the address of a linker-defined symbol is taken.
    unsafe { &__bss_start as *const u8 as u64 }
}

/// Virtual address one past the kernel image (including bss).
pub fn kernel_virt_end() -> u64 {
    // SAFETY: only the address of a linker-defined symbol is taken.
    unsafe { &__kernel_end as *const u8 as u64 }
}

/// End of the text section (page aligned).
pub fn text_end() -> u64 {
    // SAFETY: only the address of a linker-defined symbol is taken.
    unsafe { &__text_end as *const u8 as u64 }
}

/// End of the rodata section (page aligned).
pub fn rodata_end() -> u64 {
    // SAFETY: only the address of a linker-defined symbol is taken.
    unsafe { &__rodata_end as *const u8 as u64 }
}

/// Physical base of the image when loaded at its link-time physical address (PVH).
pub fn kernel_phys_base_linked() -> u64 {
    kernel_virt_base() - KERNEL_BASE
}

/// Which loader started the kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BootPath {
    /// Limine, from firmware that was BIOS.
    LimineBios,
    /// Limine, from UEFI firmware.
    LimineUefi,
    /// Xen PVH entry (QEMU -kernel, microVMs).
    Pvh,
}

impl BootPath {
    /// Short name for `version`.
    pub fn name(self) -> &'static str {
        match self {
            BootPath::LimineBios => "limine-bios",
            BootPath::LimineUefi => "limine-uefi",
            BootPath::Pvh => "pvh",
        }
    }
}

/// A linear framebuffer as the loader (or, on the PVH path, `drivers::bochs_vga`)
/// set it up.
#[derive(Clone, Copy, Debug)]
pub struct FramebufferInfo {
    pub phys: u64,
    pub width: u32,
    pub height: u32,
    /// Bytes per row.
    pub pitch: u32,
    /// Bits per pixel and the colour masks.
    pub format: vt::render::PixelFormat,
    /// Who set the mode up (`limine`, `bochs-vga`), for `fb`.
    pub source: &'static str,
}

/// Everything the kernel needs from its loader, in one loader-independent form.
#[derive(Clone)]
pub struct BootInfo {
    pub path: BootPath,
    pub memory_map: MemoryMap,
    /// Virtual address at which the loader's tables map physical address 0.
    pub direct_map_offset: u64,
    pub framebuffer: Option<FramebufferInfo>,
    pub cmdline: Cmdline,
    pub kernel_phys_base: u64,
    pub kernel_virt_base: u64,
    pub rsdp: Option<u64>,
}

impl BootInfo {
    /// Physical address range of the kernel image.
    pub fn kernel_phys_range(&self) -> (u64, u64) {
        let len = kernel_virt_end() - self.kernel_virt_base;
        (self.kernel_phys_base, self.kernel_phys_base + len)
    }

    /// Reserves the kernel image, sanitizes the map and reserves the first 64 KiB
    /// of physical memory (`MemoryMap::reserve_low`). Both paths call it.
    pub fn finish(&mut self) {
        let (s, e) = self.kernel_phys_range();
        self.memory_map.reserve(s, e, MemKind::Kernel);
        self.memory_map.sanitize();
        self.memory_map.reserve_low();
    }
}
