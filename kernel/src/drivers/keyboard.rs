//! PS/2 keyboard (IRQ 1): reads scancodes from the controller's data port and
//! queues what `vt::keymap` makes of them (US layout, scancode set 1): the same
//! bytes a serial terminal sends, so the shell's line editor serves both.

use spin::Mutex;
use vt::keymap::Keymap;
use x86_64::instructions::port::Port;

static KEYMAP: Mutex<Option<Keymap>> = Mutex::new(None);

/// The keyboard's interrupt line on the PIC.
pub const IRQ: u8 = 1;

/// Prepares the decoder (the controller itself is left as the firmware set it) and
/// takes the keyboard's interrupt.
pub fn init() {
    *KEYMAP.lock() = Some(Keymap::new());
    crate::arch::idt::set_irq_handler(IRQ, on_interrupt);
}

/// The keyboard interrupt: decode one scancode into input bytes.
fn on_interrupt() {
    // SAFETY: port 0x60 is the PS/2 data port; reading it takes the pending byte.
    let scancode: u8 = unsafe { Port::new(0x60).read() };
    let mut g = KEYMAP.lock();
    let Some(km) = g.as_mut() else { return };
    if let Some(keys) = km.scancode(scancode) {
        super::input::push_keys(keys.as_bytes());
    }
}
