//! The input queue: bytes from the serial receive interrupt and the keyboard
//! interrupt, read by the shell loop. Filled in interrupt context, drained with
//! interrupts disabled, so the lock is never contended across contexts.

use spin::Mutex;

const CAP: usize = 1024;

struct Ring {
    buf: [u8; CAP],
    head: usize,
    len: usize,
    dropped: u64,
}

static QUEUE: Mutex<Ring> = Mutex::new(Ring {
    buf: [0; CAP],
    head: 0,
    len: 0,
    dropped: 0,
});

/// Adds one byte (called from interrupt handlers). Bytes beyond the capacity are
/// dropped and counted.
pub fn push(b: u8) {
    let mut q = QUEUE.lock();
    if q.len == CAP {
        q.dropped += 1;
        return;
    }
    let i = (q.head + q.len) % CAP;
    q.buf[i] = b;
    q.len += 1;
}

/// Adds several bytes (an escape sequence from a key press).
pub fn push_all(bytes: &[u8]) {
    for &b in bytes {
        push(b);
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
/// memkern costs the host nearly nothing.
pub fn wait_byte() -> u8 {
    use x86_64::instructions::interrupts;
    loop {
        interrupts::disable();
        if let Some(b) = pop() {
            interrupts::enable();
            return b;
        }
        // Poll once too: covers a UART whose interrupt cannot reach us.
        crate::drivers::serial::poll();
        if let Some(b) = pop() {
            interrupts::enable();
            return b;
        }
        // sti; hlt is atomic: an interrupt arriving in between still wakes us.
        interrupts::enable_and_hlt();
    }
}
