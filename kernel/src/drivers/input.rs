//! The input queue: bytes from the serial receive interrupt and the keyboard
//! interrupt, read by the shell loop. Filled in interrupt context, drained with
//! interrupts disabled, so the lock is never contended across contexts.
//!
//! No serial byte is ever dropped: the queue handles COM1's receive interrupt
//! (registered by [`init`]) and pulls bytes from the serial driver, which takes
//! a byte out of the UART only while the queue has room for it and otherwise
//! leaves the rest in the UART, holding the sender off (flow control, see
//! `serial.rs`). [`wait_byte`] lets the driver resume once the shell has drained
//! the queue to [`SERIAL_RESUME`]. The last [`KEYBOARD_RESERVE`] slots are kept
//! for the keyboard, whose scancodes cannot wait (see [`push_keys`]). The
//! dependency goes one way: this module calls `serial`, never the reverse.

use super::serial;
use spin::Mutex;

const CAP: usize = 4096;

/// Slots serial input never fills, so keys typed while a serial burst is queued
/// still fit.
pub const KEYBOARD_RESERVE: usize = 64;

/// Queue length at or below which held-back serial input is taken again.
pub const SERIAL_RESUME: usize = CAP / 2;

struct Ring {
    buf: [u8; CAP],
    head: usize,
    len: usize,
}

impl Ring {
    /// Appends `b`; the callers check the room first.
    fn push(&mut self, b: u8) {
        if self.len == CAP {
            return; // unreachable: every caller checked the room
        }
        let i = (self.head + self.len) % CAP;
        self.buf[i] = b;
        self.len += 1;
    }
}

static QUEUE: Mutex<Ring> = Mutex::new(Ring {
    buf: [0; CAP],
    head: 0,
    len: 0,
});

/// How many more serial bytes the queue takes now (0: leave them in the UART).
fn serial_room() -> usize {
    (CAP - KEYBOARD_RESERVE).saturating_sub(QUEUE.lock().len)
}

/// Bytes queued and not yet read by the shell.
pub fn len() -> usize {
    QUEUE.lock().len
}

/// Adds one serial byte. The serial driver asked [`serial_room`] before taking
/// it out of the UART (with interrupts disabled, so nothing else was queued in
/// between): it fits.
fn push_serial(b: u8) {
    QUEUE.lock().push(b);
}

/// The queue as the serial driver's [`serial::Receiver`].
struct SerialInput;

impl serial::Receiver for SerialInput {
    fn may_resume(&self) -> bool {
        len() <= SERIAL_RESUME
    }
    fn room(&self) -> usize {
        serial_room()
    }
    fn push(&mut self, b: u8) {
        push_serial(b)
    }
}

/// COM1's receive interrupt: takes what the UART holds, as far as there is room.
fn on_serial_interrupt() {
    serial::poll(&mut SerialInput);
}

/// Takes COM1's receive interrupt (line [`serial::IRQ`]).
pub fn init() {
    crate::arch::idt::set_irq_handler(serial::IRQ, on_serial_interrupt);
}

/// Adds the bytes of one key press (one character or an escape sequence), all or
/// nothing, from the keyboard interrupt. The interrupt must read the scancode
/// from port 0x60 to receive the next one, and the PS/2 controller has no deeper
/// buffer to leave it in, so a key that does not fit is discarded: that takes
/// more than [`KEYBOARD_RESERVE`] bytes typed while the shell is busy.
pub fn push_keys(bytes: &[u8]) {
    let mut q = QUEUE.lock();
    if CAP - q.len < bytes.len() {
        return;
    }
    for &b in bytes {
        q.push(b);
    }
}

/// Takes the oldest byte, if any. Must be called with interrupts disabled.
pub fn pop() -> Option<u8> {
    let mut q = QUEUE.lock();
    if q.len == 0 {
        return None;
    }
    let b = q.buf[q.head];
    q.head = (q.head + 1) % CAP;
    q.len -= 1;
    Some(b)
}

/// Waits for the next input byte, halting the CPU between interrupts so an idle
/// memkern costs the host nearly nothing. While nothing is queued, the
/// framebuffer console draws what changed first.
pub fn wait_byte() -> u8 {
    use x86_64::instructions::interrupts;
    loop {
        interrupts::disable();
        // Take held-back serial input again once the shell has caught up.
        if serial::held() && len() <= SERIAL_RESUME {
            serial::poll(&mut SerialInput);
        }
        if let Some(b) = pop() {
            interrupts::enable();
            return b;
        }
        // Poll once too: covers a UART whose interrupt cannot reach us, and a
        // receive interrupt whose handler found the port busy (its data is still
        // in the UART, and the edge-triggered PIC raises no new interrupt until
        // someone reads it).
        serial::poll(&mut SerialInput);
        if let Some(b) = pop() {
            interrupts::enable();
            return b;
        }
        // Nothing to read: the shell waits, so the screen catches up now (one
        // flush for a whole command's output), then look again.
        interrupts::enable();
        if super::framebuffer::dirty() {
            super::framebuffer::flush();
            continue;
        }
        interrupts::disable();
        if let Some(b) = pop() {
            interrupts::enable();
            return b;
        }
        // sti; hlt is atomic: an interrupt arriving in between still wakes us.
        interrupts::enable_and_hlt();
    }
}
