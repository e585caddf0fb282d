//! The legacy 8259 PIC pair, remapped to vectors 32..48. memkern uses it for the
//! COM1 receive interrupt (IRQ 4) and the PS/2 keyboard (IRQ 1); everything else
//! stays masked. The PIC's output reaches the CPU through the local APIC's LINT0
//! pin, which firmware normally programs as ExtINT; under PVH no firmware ran, so
//! [`init`] programs it (LINT0 = ExtINT, LINT1 = NMI, APIC software-enabled).

use spin::Mutex;
use x86_64::instructions::port::Port;

/// First vector of the master PIC.
pub const PIC1_OFFSET: u8 = 32;
/// First vector of the slave PIC.
pub const PIC2_OFFSET: u8 = 40;

static LOCK: Mutex<()> = Mutex::new(());

fn out(port: u16, v: u8) {
    // SAFETY: 0x20/0x21/0xa0/0xa1 are the 8259 command/data ports; writing
    // them only affects interrupt routing, which this module owns.
    unsafe { Port::<u8>::new(port).write(v) }
    // SAFETY: port 0x80 is the POST diagnostic port; a write is a short delay.
    unsafe { Port::<u8>::new(0x80).write(0) }
}

/// Spurious-interrupt vector of the local APIC.
pub const APIC_SPURIOUS_VECTOR: u8 = 0xff;

/// Routes the PIC through the local APIC as ExtINT. `phys_offset` is where the
/// current page tables map physical memory (the APIC page must be mapped there).
fn route_through_lapic(phys_offset: u64) {
    let mut msr = x86_64::registers::model_specific::Msr::new(0x1b);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting EN (bit 11)
    // keeps the APIC at its current base.
    let base = unsafe {
        let v = msr.read();
        msr.write(v | (1 << 11));
        v & 0x000f_ffff_ffff_f000
    };
    let reg = |off: u64| (phys_offset + base + off) as *mut u32;
    // SAFETY: the local APIC registers are 32-bit MMIO in the page at `base`,
    // which the loader's (and later the kernel's) tables map at phys_offset.
    unsafe {
        reg(0x80).write_volatile(0); // TPR: accept every priority
        reg(0xf0).write_volatile(0x100 | APIC_SPURIOUS_VECTOR as u32); // SVR: enable
        reg(0x350).write_volatile(0x700); // LVT LINT0: ExtINT, unmasked
        reg(0x360).write_volatile(0x400); // LVT LINT1: NMI
    }
}

/// Remaps both PICs, masks every line and routes them to the CPU.
pub fn init(phys_offset: u64) {
    let _g = LOCK.lock();
    route_through_lapic(phys_offset);
    out(0x20, 0x11);
    out(0xa0, 0x11);
    out(0x21, PIC1_OFFSET);
    out(0xa1, PIC2_OFFSET);
    out(0x21, 4);
    out(0xa1, 2);
    out(0x21, 0x01);
    out(0xa1, 0x01);
    out(0x21, 0xfb); // all masked but the cascade (IRQ 2)
    out(0xa1, 0xff);
}

/// Unmasks IRQ line `irq` (0..16).
pub fn unmask(irq: u8) {
    let _g = LOCK.lock();
    let (port, bit) = if irq < 8 {
        (0x21u16, irq)
    } else {
        (0xa1u16, irq - 8)
    };
    // SAFETY: reading the PIC mask register has no side effect.
    let mask = unsafe { Port::<u8>::new(port).read() };
    out(port, mask & !(1 << bit));
}

/// Acknowledges IRQ `irq`.
pub fn eoi(irq: u8) {
    if irq >= 8 {
        out(0xa0, 0x20);
    }
    out(0x20, 0x20);
}
