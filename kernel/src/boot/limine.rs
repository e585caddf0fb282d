//! Limine boot protocol (base revision 2, Limine 8.x): the requests the kernel
//! places in its image, and the 64-bit entry `_start` Limine jumps to.
//!
//! Limine enters in long mode on its own page tables with the kernel mapped at its
//! link address and all RAM mapped at the HHDM offset. `_start` switches to the
//! kernel's boot stack and calls [`limine_main`], which copies the responses into a
//! [`BootInfo`] (they live in bootloader-reclaimable memory).

use super::{BootInfo, BootPath, Cmdline, FramebufferInfo, MemKind, MemRegion, MemoryMap};
use limine::memory_map::EntryType;
use limine::request::{
    ExecutableAddressRequest, ExecutableCmdlineRequest, FirmwareTypeRequest, FramebufferRequest,
    HhdmRequest, MemoryMapRequest, RequestsEndMarker, RequestsStartMarker, RsdpRequest,
};
use limine::BaseRevision;
use vt::render::{Channel, PixelFormat};

#[used]
#[link_section = ".requests_start_marker"]
static START_MARKER: RequestsStartMarker = RequestsStartMarker::new();

#[used]
#[link_section = ".requests"]
static BASE_REVISION: BaseRevision = BaseRevision::with_revision(2);

#[used]
#[link_section = ".requests"]
static MEMMAP: MemoryMapRequest = MemoryMapRequest::new();

#[used]
#[link_section = ".requests"]
static HHDM: HhdmRequest = HhdmRequest::new();

#[used]
#[link_section = ".requests"]
static FRAMEBUFFER: FramebufferRequest = FramebufferRequest::new();

#[used]
#[link_section = ".requests"]
static KERNEL_ADDRESS: ExecutableAddressRequest = ExecutableAddressRequest::new();

#[used]
#[link_section = ".requests"]
static CMDLINE: ExecutableCmdlineRequest = ExecutableCmdlineRequest::new();

#[used]
#[link_section = ".requests"]
static RSDP: RsdpRequest = RsdpRequest::new();

#[used]
#[link_section = ".requests"]
static FIRMWARE: FirmwareTypeRequest = FirmwareTypeRequest::new();

#[used]
#[link_section = ".requests_end_marker"]
static END_MARKER: RequestsEndMarker = RequestsEndMarker::new();

core::arch::global_asm!(
    ".pushsection .text.boot, \"ax\"",
    ".global _start",
    "_start:",
    "    lea rsp, [rip + {stack_top}]",
    "    xor ebp, ebp",
    "    call {main}",
    "2:  hlt",
    "    jmp 2b",
    ".popsection",
    stack_top = sym super::BOOT_STACK_TOP,
    main = sym limine_main,
);

/// The 64-bit Limine entry, called by `_start` on the boot stack.
extern "C" fn limine_main() -> ! {
    crate::early_init();
    if !BASE_REVISION.is_supported() {
        panic!("Limine: base revision 2 is not supported by this bootloader");
    }
    let hhdm = HHDM
        .get_response()
        .expect("Limine: no HHDM response")
        .offset();
    let mut map = MemoryMap::new();
    if let Some(resp) = MEMMAP.get_response() {
        for e in resp.entries() {
            let kind = match e.entry_type {
                EntryType::USABLE => MemKind::Usable,
                EntryType::BOOTLOADER_RECLAIMABLE => MemKind::BootReclaimable,
                EntryType::ACPI_RECLAIMABLE => MemKind::AcpiReclaimable,
                EntryType::ACPI_NVS => MemKind::AcpiNvs,
                EntryType::BAD_MEMORY => MemKind::Bad,
                EntryType::EXECUTABLE_AND_MODULES => MemKind::Kernel,
                EntryType::FRAMEBUFFER => MemKind::Framebuffer,
                _ => MemKind::Reserved,
            };
            map.push(MemRegion {
                start: e.base,
                end: e.base.saturating_add(e.length),
                kind,
            });
        }
    } else {
        panic!("Limine: no memory map response");
    }
    let framebuffer = FRAMEBUFFER
        .get_response()
        .and_then(|r| r.framebuffers().next())
        .and_then(|fb| {
            let virt = fb.addr() as u64;
            // A format memkern cannot draw (not 16/24/32 bpp, odd masks) means
            // no screen: the shell stays on the serial line.
            let format = PixelFormat::new(
                u8::try_from(fb.bpp()).ok()?,
                Channel::new(fb.red_mask_size(), fb.red_mask_shift()),
                Channel::new(fb.green_mask_size(), fb.green_mask_shift()),
                Channel::new(fb.blue_mask_size(), fb.blue_mask_shift()),
            )
            .ok()?;
            (virt >= hhdm).then(|| FramebufferInfo {
                phys: virt - hhdm,
                width: fb.width() as u32,
                height: fb.height() as u32,
                pitch: fb.pitch() as u32,
                format,
                source: "limine",
            })
        });
    let mut cmdline = Cmdline::new();
    if let Some(c) = CMDLINE.get_response() {
        for &b in c.cmdline().to_bytes() {
            cmdline.push(b);
        }
    }
    let (kphys, kvirt) = match KERNEL_ADDRESS.get_response() {
        Some(k) => (k.physical_base(), k.virtual_base()),
        None => (super::kernel_phys_base_linked(), super::kernel_virt_base()),
    };
    let uefi = FIRMWARE
        .get_response()
        .map(|f| f.firmware_type() != limine::firmware_type::FirmwareType::X86_BIOS)
        .unwrap_or(false);
    let rsdp =
        RSDP.get_response()
            .map(|r| r.address() as u64)
            .map(|a| if a >= hhdm { a - hhdm } else { a });
    let boot = BootInfo {
        path: if uefi {
            BootPath::LimineUefi
        } else {
            BootPath::LimineBios
        },
        memory_map: map,
        direct_map_offset: hhdm,
        framebuffer,
        cmdline,
        kernel_phys_base: kphys,
        kernel_virt_base: kvirt,
        rsdp,
    };
    crate::kmain(boot)
}
