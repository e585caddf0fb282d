//! COM1 (I/O port 0x3f8), 115200 8N1, through the `uart_16550` crate: the kernel's
//! console output from the first line, and shell input through its receive
//! interrupt (IRQ 4).

use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550};

static COM1: Mutex<Option<Uart16550<PioBackend>>> = Mutex::new(None);

/// Initialises COM1. Safe to call more than once.
pub fn init() {
    let mut g = COM1.lock();
    if g.is_some() {
        return;
    }
    // SAFETY: 0x3f8..0x400 are the COM1 registers on every PC and microVM memkern
    // supports; this module is their only user.
    let Ok(mut port) = (unsafe { Uart16550::new_port(0x3f8) }) else {
        return;
    };
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    if port.init(config).is_ok() {
        *g = Some(port);
    }
}

/// Writes bytes, translating nothing.
pub fn write_bytes(bytes: &[u8]) {
    if let Some(p) = COM1.lock().as_mut() {
        p.send_bytes_exact(bytes);
    }
}

/// Writes bytes without taking the lock: for exception and panic reports, which
/// may interrupt a writer that holds it.
pub fn write_bytes_force(bytes: &[u8]) {
    // SAFETY: port I/O on COM1's data (0x3f8) and line-status (0x3fd) registers;
    // at worst this interleaves with an interrupted writer's output.
    unsafe {
        let mut data = x86_64::instructions::port::Port::<u8>::new(0x3f8);
        let mut lsr = x86_64::instructions::port::Port::<u8>::new(0x3fd);
        for &b in bytes {
            let mut spins = 0u32;
            while lsr.read() & 0x20 == 0 && spins < 100_000 {
                spins += 1;
            }
            data.write(b);
        }
    }
}

/// Moves every received byte to the input queue.
pub fn poll() {
    if let Some(mut g) = COM1.try_lock() {
        if let Some(p) = g.as_mut() {
            while let Ok(b) = p.try_receive_byte() {
                super::input::push(b);
            }
        }
    }
}

/// The receive interrupt.
pub fn on_interrupt() {
    poll();
}
