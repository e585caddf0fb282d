//! Glue between the hardware-free `shell` crate and the kernel.
use crate::boot::BootInfo;
use crate::drivers::input;
use crate::kprint;

pub fn run(info: &BootInfo) -> ! {
    kprint!("\r\nmemkern {} ({})\r\n", env!("CARGO_PKG_VERSION"), info.path.name());
    for r in info.memory_map.entries() {
        kprint!("  {:#018x}-{:#018x} {}\r\n", r.start, r.end, r.kind.name());
    }
    kprint!("mm> ");
    loop {
        let b = input::wait_byte();
        if b == b'\r' {
            kprint!("\r\nmm> ");
        } else if b == b'q' {
            crate::platform::poweroff();
        } else if b == b'p' {
            unsafe { core::ptr::read_volatile(0xdead_0000_0000 as *const u8) };
        } else {
            kprint!("{}", b as char);
        }
    }
}
