//! Leaving the machine: QEMU's isa-debug-exit device, ACPI-less power-off ports of
//! QEMU/Bochs, and reset through the keyboard controller.
//!
//! Exit statuses under QEMU (`-device isa-debug-exit,iobase=0xf4,iosize=4`): the
//! process exits with `(value << 1) | 1`, so `poweroff` gives 33 and a fatal error
//! (exception outside a command, panic) gives 35.

use x86_64::instructions::port::Port;

/// QEMU exit status of a clean `poweroff`.
pub const QEMU_EXIT_SUCCESS: u32 = 0x10;
/// QEMU exit status after a fatal error.
pub const QEMU_EXIT_FAILURE: u32 = 0x11;

fn debug_exit(value: u32) {
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit when present (QEMU then exits);
    // on other machines nothing decodes it and the write is ignored.
    unsafe { Port::<u32>::new(0xf4).write(value) }
}

/// Ends QEMU with the failure status (returns if not under QEMU).
pub fn qemu_exit_failure() {
    debug_exit(QEMU_EXIT_FAILURE);
}

/// Powers the machine off. Returns only if no method worked.
pub fn poweroff() {
    debug_exit(QEMU_EXIT_SUCCESS);
    // SAFETY: the ACPI PM1a control ports of QEMU's q35/pc (0x604, 0xb004) and
    // Bochs; writing SLP_EN|SLP_TYP=S5 there powers off, elsewhere it is ignored.
    unsafe {
        Port::<u16>::new(0x604).write(0x2000);
        Port::<u16>::new(0xb004).write(0x2000);
        Port::<u16>::new(0x4004).write(0x3400);
    }
}

/// Resets the machine. Never returns.
pub fn reboot() -> ! {
    // SAFETY: 0xfe on the 8042 command port pulses the CPU reset line.
    unsafe { Port::<u8>::new(0x64).write(0xfe) };
    // Fall back to a triple fault: an empty IDT and a breakpoint.
    static EMPTY: [u64; 2] = [0; 2];
    let ptr = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: x86_64::VirtAddr::new(EMPTY.as_ptr() as u64),
    };
    // SAFETY: deliberately loading an empty IDT so the next exception triple
    // faults, which resets the CPU.
    unsafe {
        x86_64::instructions::tables::lidt(&ptr);
        core::arch::asm!("int3");
    }
    crate::arch::cpu::halt_forever()
}
