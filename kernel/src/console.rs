//! The kernel console: `kprint!`/`kprintln!` to the serial line and, when there is
//! one, the framebuffer. `emergency_print` is for exception and panic reports: it
//! bypasses the locks an interrupted writer may hold (the screen gets the text
//! only when its lock is free).

use core::fmt::{self, Write};
use spin::Mutex;

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        crate::drivers::serial::write_bytes(s.as_bytes());
        crate::drivers::framebuffer::write_str(s);
        Ok(())
    }
}

static LOCK: Mutex<()> = Mutex::new(());

/// Prints formatted text (interrupts off while the lock is held, so an input
/// interrupt never waits on it).
pub fn print(args: fmt::Arguments) {
    crate::arch::cpu::without_interrupts(|| {
        let _g = LOCK.lock();
        let _ = Console.write_fmt(args);
    });
}

struct Force;

impl Write for Force {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        crate::drivers::serial::write_bytes_force(s.as_bytes());
        crate::drivers::framebuffer::try_write_str(s);
        Ok(())
    }
}

/// Prints on the serial line without taking any lock, and on the screen if
/// its lock is free (drawn when the shell next waits, or by the panic handler).
pub fn emergency_print(args: fmt::Arguments) {
    let _ = Force.write_fmt(args);
}

/// Prints to the kernel console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// Prints a line (CRLF) to the kernel console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\r\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\r\n", format_args!($($arg)*))) };
}
