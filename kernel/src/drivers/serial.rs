//! COM1 (I/O port 0x3f8), 115200 8N1, through the `uart_16550` crate: the kernel's
//! console output from the first line, and received bytes for whoever reads them
//! (the input queue, `input.rs`, which handles the receive interrupt, IRQ 4, and
//! calls [`poll`]). This driver does not know the queue: [`poll`] hands bytes to
//! a [`Receiver`].
//!
//! Input has flow control, so no received byte is ever dropped: a byte leaves the
//! UART only when the receiver has room for it. When it has none the driver
//! turns the receive interrupt off (IER bit 0) and drops RTS (MCR bit 1), and
//! the rest waits in the UART: QEMU's 16550 takes bytes from its chardev only
//! while its FIFO has room, so they stay in the host pipe, and a real line with
//! RTS/CTS flow control stops sending. Once the receiver says it may resume (the
//! shell has drained the queue to half), [`poll`] turns both back on and reads
//! the UART at once (the edge-triggered PIC gives no new interrupt for data that
//! was already waiting).
//!
//! Output waits for the transmitter, so the kernel writes only as fast as the
//! other side reads. Neither direction waits for the other inside the kernel;
//! whoever drives the line (a test harness on QEMU's stdio pipes) must keep
//! reading while it writes, or both pipes fill and both sides wait forever.

use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550};

static COM1: Mutex<Option<Uart16550<PioBackend>>> = Mutex::new(None);

/// COM1's base port.
const BASE: u16 = 0x3f8;

/// COM1's interrupt line on the PIC.
pub const IRQ: u8 = 4;

/// The input queue was full: the receive interrupt is off, RTS is dropped, and
/// received bytes wait in the UART.
static HELD: AtomicBool = AtomicBool::new(false);

/// Initialises COM1. Safe to call more than once.
pub fn init() {
    let mut g = COM1.lock();
    if g.is_some() {
        return;
    }
    // SAFETY: 0x3f8..0x400 are the COM1 registers on every PC and microVM memkern
    // supports; this module is their only user.
    let Ok(mut port) = (unsafe { Uart16550::new_port(BASE) }) else {
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

/// Whether received bytes are being held in the UART (the input queue was full).
pub fn held() -> bool {
    HELD.load(Ordering::Relaxed)
}

/// Where [`poll`] puts received bytes: the input queue. The flow control asks it
/// for room before taking each byte out of the UART.
pub trait Receiver {
    /// Whether bytes held in the UART may be taken again (the reader has caught up).
    fn may_resume(&self) -> bool;
    /// How many more bytes it takes now (0: leave them in the UART).
    fn room(&self) -> usize;
    /// Takes one byte; [`poll`] pushes no more than the room it was told.
    fn push(&mut self, b: u8);
}

/// Moves received bytes to `rx` while it has room; when it has none, holds the
/// rest in the UART. While held, does nothing until `rx` says it may resume,
/// then resumes. Called with interrupts disabled (from the receive interrupt and
/// from `input::wait_byte`).
pub fn poll(rx: &mut impl Receiver) {
    let Some(mut g) = COM1.try_lock() else {
        return;
    };
    let Some(p) = g.as_mut() else {
        return;
    };
    if held() {
        if !rx.may_resume() {
            return;
        }
        set_receiving(p, true);
    }
    let room = rx.room();
    for _ in 0..room {
        match p.try_receive_byte() {
            Ok(b) => rx.push(b),
            Err(_) => return,
        }
    }
    set_receiving(p, false);
}

/// Turns the receive-data interrupt and RTS on (taking input) or off (holding it
/// in the UART).
fn set_receiving(p: &mut Uart16550<PioBackend>, on: bool) {
    const IER_DATA_READY: u8 = 1 << 0;
    const MCR_RTS: u8 = 1 << 1;
    let (ier, mcr) = (p.ier().bits(), p.mcr().bits());
    let (ier, mcr) = if on {
        (ier | IER_DATA_READY, mcr | MCR_RTS)
    } else {
        (ier & !IER_DATA_READY, mcr & !MCR_RTS)
    };
    // SAFETY: IER (base+1) and MCR (base+4) of COM1, written with the caller
    // holding the COM1 lock; the divisor latch is off (the driver never leaves
    // LCR.DLAB set), so base+1 is IER. Only the receive interrupt and RTS bits
    // change; the `uart_16550` crate has no setter for either.
    unsafe {
        x86_64::instructions::port::Port::<u8>::new(BASE + 1).write(ier);
        x86_64::instructions::port::Port::<u8>::new(BASE + 4).write(mcr);
    }
    HELD.store(!on, Ordering::Relaxed);
}
