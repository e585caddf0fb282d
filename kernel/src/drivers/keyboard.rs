//! PS/2 keyboard (IRQ 1), decoded by the `pc-keyboard` crate (US layout, scancode
//! set 1). Keys become the same bytes a serial terminal sends: Ctrl-C is 0x03,
//! arrows are `ESC [ A`..., so the shell's line editor serves both.

use pc_keyboard::{layouts, DecodedKey, HandleControl, KeyCode, Keyboard, ScancodeSet1};
use spin::Mutex;
use x86_64::instructions::port::Port;

static KEYBOARD: Mutex<Option<Keyboard<layouts::Us104Key, ScancodeSet1>>> = Mutex::new(None);

/// The keyboard's interrupt line on the PIC.
pub const IRQ: u8 = 1;

/// Prepares the decoder (the controller itself is left as the firmware set it) and
/// takes the keyboard's interrupt.
pub fn init() {
    *KEYBOARD.lock() = Some(Keyboard::new(
        ScancodeSet1::new(),
        layouts::Us104Key,
        HandleControl::MapLettersToUnicode,
    ));
    crate::arch::idt::set_irq_handler(IRQ, on_interrupt);
}

/// The keyboard interrupt: decode one scancode into input bytes.
fn on_interrupt() {
    // SAFETY: port 0x60 is the PS/2 data port; reading it takes the pending byte.
    let scancode: u8 = unsafe { Port::new(0x60).read() };
    let mut g = KEYBOARD.lock();
    let Some(kb) = g.as_mut() else { return };
    if let Ok(Some(event)) = kb.add_byte(scancode) {
        match kb.process_keyevent(event) {
            Some(DecodedKey::Unicode(c)) => {
                let c = if c == '\n' { '\r' } else { c };
                let mut buf = [0u8; 4];
                super::input::push_keys(c.encode_utf8(&mut buf).as_bytes());
            }
            Some(DecodedKey::RawKey(k)) => match k {
                KeyCode::ArrowUp => super::input::push_keys(b"\x1b[A"),
                KeyCode::ArrowDown => super::input::push_keys(b"\x1b[B"),
                KeyCode::ArrowRight => super::input::push_keys(b"\x1b[C"),
                KeyCode::ArrowLeft => super::input::push_keys(b"\x1b[D"),
                _ => {}
            },
            None => {}
        }
    }
}
