//! memkern: a unikernel-style x86_64 kernel that owns its memory subsystem and
//! lets a person poke at it live from a shell.
//!
//! Boot order: a loader entry (`boot::limine` or `boot::pvh`) calls [`early_init`]
//! (serial console, GDT, IDT), builds a `BootInfo` and calls [`kmain`], which
//! sets up memory, interrupts and then runs the shell forever.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod console;
mod drivers;
mod kshell;
mod memory;
mod platform;

use boot::BootInfo;
use mm::layout::DIRECT_MAP_BASE;
use spin::Once;

/// The boot information, kept for `version` and the memory code.
pub static BOOT: Once<BootInfo> = Once::new();

/// First things on any boot path: a console for reports, then the CPU tables so
/// every exception is caught.
pub fn early_init() {
    drivers::serial::init();
    arch::gdt::init();
    arch::idt::init();
}

/// The loader-independent kernel entry.
pub fn kmain(mut info: BootInfo) -> ! {
    info.finish();
    let info = BOOT.call_once(|| info);
    memory::init(info);
    if let Some(s) = memory::SETUP.get() {
        kprintln!(
            "mm: RAM up to {} MiB, direct map {} MiB, mem_map {} KiB at {:#x}, \
             slab bitmap {} KiB at {:#x}, set up in {} cycles",
            s.ram_end >> 20,
            s.lowmem.min(s.ram_end) >> 20,
            s.mem_map_bytes >> 10,
            s.mem_map_phys,
            s.slab_bits_bytes >> 10,
            s.slab_bits_phys,
            s.init_cycles
        );
    }
    if let Some(v) = info.cmdline.get("oops") {
        if let Err(e) = arch::recover::set_oops_option(v) {
            kprintln!("warning: oops={v} ignored: {e}");
        }
    }
    match info.framebuffer {
        Some(fb) => drivers::framebuffer::init(&fb, DIRECT_MAP_BASE + fb.phys),
        None => drivers::framebuffer::off(),
    }
    drivers::input::init();
    drivers::keyboard::init();
    arch::pic::init(DIRECT_MAP_BASE);
    arch::pic::unmask(drivers::serial::IRQ);
    arch::pic::unmask(drivers::keyboard::IRQ);
    x86_64::instructions::interrupts::enable();
    kshell::run(info)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    console::emergency_print(format_args!("\r\n!!! kernel panic: {}\r\n", info.message()));
    if let Some(loc) = info.location() {
        console::emergency_print(format_args!(
            "    at {}:{}:{}\r\n",
            loc.file(),
            loc.line(),
            loc.column()
        ));
    }
    drivers::framebuffer::try_flush_all();
    platform::qemu_exit_failure();
    arch::cpu::halt_forever()
}
