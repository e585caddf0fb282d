//! A screen for the PVH path: QEMU's (and Bochs') standard VGA, `-device VGA`
//! (the q35 machine's default display) or `-device bochs-display`.
//!
//! PVH hands over no framebuffer, so the kernel sets a mode itself: it finds the
//! device on PCI bus 0 through configuration mechanism #1 (ports 0xCF8/0xCFC),
//! programs the Bochs "DISPI" registers (resolution, 32 bpp, linear
//! framebuffer on), and BAR0 is the framebuffer. The standard VGA decodes the
//! DISPI registers at ports 0x1CE/0x1CF; `bochs-display` has no I/O ports and
//! keeps them in BAR2 at offset 0x500, reached here through the PVH stub's map
//! of the first 4 GiB. Runs before the kernel's own page tables exist.
//!
//! The mode is 1024x768 unless the command line says `video=WxH`; `video=off`
//! keeps the screen off. microvm has no PCI: nothing answers and there is no screen.

use crate::boot::{Cmdline, FramebufferInfo};
use crate::kprintln;
use mm::layout::DIRECT_MAP_BASE;
use vt::render::PixelFormat;
use x86_64::instructions::port::Port;

/// The display's PCI function and its BAR0 (the video memory), for the
/// resource tree: Linux lists a BAR as `fd000000-fdffffff : 0000:00:02.0`.
#[derive(Clone, Copy, Debug)]
pub struct PciBar {
    /// Device number on bus 0 (function 0).
    pub dev: u8,
    pub base: u64,
    /// Bytes, from the BAR's size probe (a power of two).
    pub size: u64,
}

static BAR0: spin::Mutex<Option<PciBar>> = spin::Mutex::new(None);

/// The display's BAR0, if [`probe`] found a display.
pub fn bar0() -> Option<PciBar> {
    *BAR0.lock()
}

/// The size of the memory BAR at config offset `off` (and `off + 4` when it
/// is 64-bit): write all ones, read back the writable bits, put the address
/// back; decoding must be off meanwhile (PCI spec 6.2.5.1, Linux `__pci_read_base`).
fn bar_size(dev: u8, off: u8) -> u64 {
    let lo = pci_read(dev, off);
    pci_write(dev, off, 0xffff_ffff);
    let mask_lo = pci_read(dev, off) & !0xf;
    pci_write(dev, off, lo);
    let mut mask = 0xffff_ffff_0000_0000u64 | mask_lo as u64;
    if lo & 0x6 == 0x4 {
        let hi = pci_read(dev, off + 4);
        pci_write(dev, off + 4, 0xffff_ffff);
        mask = (pci_read(dev, off + 4) as u64) << 32 | mask_lo as u64;
        pci_write(dev, off + 4, hi);
    }
    if mask_lo == 0 && mask >> 32 == 0 {
        return 0;
    }
    (!mask).wrapping_add(1)
}

const VENDOR_QEMU: u16 = 0x1234;
const DEVICE_STDVGA: u16 = 0x1111;

// DISPI register indices and ENABLE bits (Bochs vbe.h).
const ID: u16 = 0;
const XRES: u16 = 1;
const YRES: u16 = 2;
const BPP: u16 = 3;
const ENABLE: u16 = 4;
const VIRT_WIDTH: u16 = 6;
const X_OFFSET: u16 = 8;
const Y_OFFSET: u16 = 9;
const VIDEO_MEMORY_64K: u16 = 0xa;
const ENABLED: u16 = 0x01;
const LFB_ENABLED: u16 = 0x40;

fn pci_read(dev: u8, offset: u8) -> u32 {
    let addr = 0x8000_0000u32 | (dev as u32) << 11 | (offset as u32 & 0xfc);
    // SAFETY: configuration mechanism #1: write the address to 0xCF8, read the
    // dword at 0xCFC. Where no PCI host bridge decodes the ports (microvm), the
    // read gives all ones, which is "no device".
    unsafe {
        Port::<u32>::new(0xcf8).write(addr);
        Port::<u32>::new(0xcfc).read()
    }
}

fn pci_write(dev: u8, offset: u8, v: u32) {
    let addr = 0x8000_0000u32 | (dev as u32) << 11 | (offset as u32 & 0xfc);
    // SAFETY: as in `pci_read`; only the command register of the display is written.
    unsafe {
        Port::<u32>::new(0xcf8).write(addr);
        Port::<u32>::new(0xcfc).write(v);
    }
}

/// Where the DISPI registers are.
enum Dispi {
    Ports,
    Mmio(u64),
}

impl Dispi {
    fn write(&self, index: u16, v: u16) {
        match self {
            // SAFETY: 0x1CE/0x1CF are the standard VGA's DISPI index/data ports.
            Dispi::Ports => unsafe {
                Port::<u16>::new(0x1ce).write(index);
                Port::<u16>::new(0x1cf).write(v);
            },
            // SAFETY: the register block lies in BAR2, below 4 GiB, which the
            // PVH stub maps at DIRECT_MAP_BASE; registers are 16 bits wide.
            Dispi::Mmio(base) => unsafe {
                ((DIRECT_MAP_BASE + base + 0x500 + index as u64 * 2) as *mut u16).write_volatile(v)
            },
        }
    }
    fn read(&self, index: u16) -> u16 {
        match self {
            // SAFETY: as in `write`.
            Dispi::Ports => unsafe {
                Port::<u16>::new(0x1ce).write(index);
                Port::<u16>::new(0x1cf).read()
            },
            // SAFETY: as in `write`.
            Dispi::Mmio(base) => unsafe {
                ((DIRECT_MAP_BASE + base + 0x500 + index as u64 * 2) as *const u16).read_volatile()
            },
        }
    }
}

/// The resolution the command line asks for: `Ok(None)` for `video=off`.
fn wanted(cmdline: &Cmdline) -> Result<Option<(u16, u16)>, ()> {
    let Some(v) = cmdline.get("video") else {
        return Ok(Some((1024, 768)));
    };
    if v == "off" {
        return Ok(None);
    }
    let (w, h) = v.split_once('x').ok_or(())?;
    let (w, h) = (
        w.parse::<u16>().map_err(|_| ())?,
        h.parse::<u16>().map_err(|_| ())?,
    );
    if !(320..=8192).contains(&w) || !(200..=8192).contains(&h) {
        return Err(());
    }
    Ok(Some((w, h)))
}

/// Finds a Bochs/QEMU display on PCI bus 0, sets its mode, and describes the
/// framebuffer; `None` if there is none (or `video=off`).
pub fn probe(cmdline: &Cmdline) -> Option<FramebufferInfo> {
    let (w, h) = match wanted(cmdline) {
        Ok(m) => m?,
        Err(()) => {
            kprintln!("warning: video= wants WxH (e.g. video=1280x800) or off; using 1024x768");
            (1024, 768)
        }
    };
    let dev = (0..32u8).find(|&d| {
        let id = pci_read(d, 0);
        id as u16 == VENDOR_QEMU && (id >> 16) as u16 == DEVICE_STDVGA
    })?;
    let class = pci_read(dev, 8) >> 16; // class << 8 | subclass
    let bar0 = pci_read(dev, 0x10);
    let bar2 = pci_read(dev, 0x18);
    if bar0 & 1 != 0 || bar0 & !0xf == 0 {
        return None; // not a memory BAR, or not assigned
    }
    let fb_phys = if bar0 & 0x6 == 0x4 {
        (bar0 & !0xf) as u64 | (pci_read(dev, 0x14) as u64) << 32
    } else {
        (bar0 & !0xf) as u64
    };
    // Size BAR0 with decoding off, then memory (and, for the VGA ports, I/O)
    // decoding on.
    let cmd = pci_read(dev, 4);
    pci_write(dev, 4, cmd & 0xfffc);
    let size = bar_size(dev, 0x10);
    pci_write(dev, 4, (cmd & 0xffff) | 0x3);
    let dispi = if class == 0x0300 {
        Dispi::Ports
    } else if bar2 & 1 == 0 && bar2 & !0xf != 0 && (bar2 as u64) < (4 << 30) {
        Dispi::Mmio((bar2 & !0xf) as u64)
    } else {
        return None;
    };
    if !(0xb0c0..=0xb0cf).contains(&dispi.read(ID)) {
        return None;
    }
    let vram = dispi.read(VIDEO_MEMORY_64K) as u64 * 65536;
    let (w, h) = if (w as u64) * (h as u64) * 4 > vram {
        kprintln!(
            "warning: video={w}x{h} needs {} KiB, the display has {} KiB; using 1024x768",
            w as u64 * h as u64 * 4 / 1024,
            vram / 1024
        );
        (1024, 768)
    } else {
        (w, h)
    };
    dispi.write(ENABLE, 0);
    dispi.write(XRES, w);
    dispi.write(YRES, h);
    dispi.write(BPP, 32);
    dispi.write(VIRT_WIDTH, w);
    dispi.write(X_OFFSET, 0);
    dispi.write(Y_OFFSET, 0);
    dispi.write(ENABLE, ENABLED | LFB_ENABLED);
    if matches!(dispi, Dispi::Ports) {
        // SAFETY: reading 0x3DA resets the attribute controller's flip-flop;
        // writing 0x20 to 0x3C0 sets "palette address source", which unblanks
        // the VGA's output (Linux's bochs driver does the same).
        unsafe {
            let _: u8 = Port::<u8>::new(0x3da).read();
            Port::<u8>::new(0x3c0).write(0x20);
        }
    }
    let (w, h) = (dispi.read(XRES), dispi.read(YRES));
    *BAR0.lock() = Some(PciBar {
        dev,
        base: fb_phys,
        size,
    });
    let pitch = dispi.read(VIRT_WIDTH) as u32 * 4;
    Some(FramebufferInfo {
        phys: fb_phys,
        width: w as u32,
        height: h as u32,
        pitch,
        format: PixelFormat::XRGB8888,
        source: if class == 0x0300 {
            "pci-vga"
        } else {
            "pci-bochs-display"
        },
    })
}
