//! The PS/2 keymap: scancode set 1 bytes, decoded by the `pc-keyboard` crate (US
//! layout), become the bytes a serial terminal sends for the same keys. Enter
//! is `\r`, Backspace 0x08, Ctrl-C 0x03 (Ctrl with a letter gives its control
//! code), the arrows `ESC [ A`..`ESC [ D`; other keys without a character send
//! nothing.

use pc_keyboard::{layouts, DecodedKey, HandleControl, KeyCode, Keyboard, ScancodeSet1};

/// The bytes one key sends: one UTF-8 character or one escape sequence.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KeyBytes {
    buf: [u8; 4],
    len: u8,
}

impl KeyBytes {
    fn from_slice(b: &[u8]) -> Self {
        let mut buf = [0u8; 4];
        buf[..b.len()].copy_from_slice(b);
        KeyBytes {
            buf,
            len: b.len() as u8,
        }
    }

    /// The bytes, in order.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// The decoder's state: modifiers held and the `0xE0` prefix of extended keys.
pub struct Keymap {
    kb: Keyboard<layouts::Us104Key, ScancodeSet1>,
}

impl Keymap {
    /// No key held.
    pub const fn new() -> Self {
        Keymap {
            kb: Keyboard::new(
                ScancodeSet1::new(),
                layouts::Us104Key,
                HandleControl::MapLettersToUnicode,
            ),
        }
    }

    /// Takes one scancode byte; returns what the key sends once a key press is
    /// complete.
    pub fn scancode(&mut self, byte: u8) -> Option<KeyBytes> {
        let event = self.kb.add_byte(byte).ok()??;
        match self.kb.process_keyevent(event)? {
            DecodedKey::Unicode(c) => {
                let c = if c == '\n' { '\r' } else { c };
                let mut buf = [0u8; 4];
                Some(KeyBytes::from_slice(c.encode_utf8(&mut buf).as_bytes()))
            }
            DecodedKey::RawKey(k) => match k {
                KeyCode::ArrowUp => Some(KeyBytes::from_slice(b"\x1b[A")),
                KeyCode::ArrowDown => Some(KeyBytes::from_slice(b"\x1b[B")),
                KeyCode::ArrowRight => Some(KeyBytes::from_slice(b"\x1b[C")),
                KeyCode::ArrowLeft => Some(KeyBytes::from_slice(b"\x1b[D")),
                _ => None,
            },
        }
    }
}

impl Default for Keymap {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything `codes` sends, concatenated.
    fn keys(codes: &[u8]) -> Vec<u8> {
        let mut k = Keymap::new();
        let mut out = Vec::new();
        for &c in codes {
            if let Some(b) = k.scancode(c) {
                out.extend_from_slice(b.as_bytes());
            }
        }
        out
    }

    // Scancode set 1: make codes; the break code is the make code | 0x80.
    const A: u8 = 0x1e;
    const C: u8 = 0x2e;
    const ONE: u8 = 0x02;
    const ENTER: u8 = 0x1c;
    const BACKSPACE: u8 = 0x0e;
    const TAB: u8 = 0x0f;
    const ESC: u8 = 0x01;
    const LSHIFT: u8 = 0x2a;
    const LCTRL: u8 = 0x1d;
    const F1: u8 = 0x3b;

    #[test]
    fn letters_digits_and_shift() {
        assert_eq!(keys(&[A, A | 0x80, ONE, ONE | 0x80]), b"a1");
        assert_eq!(keys(&[LSHIFT, A, A | 0x80, ONE, LSHIFT | 0x80, A]), b"A!a");
        assert_eq!(keys(&[A | 0x80]), b"", "a release sends nothing");
    }

    #[test]
    fn enter_is_carriage_return_and_controls_are_ascii() {
        assert_eq!(keys(&[ENTER]), b"\r");
        assert_eq!(keys(&[0xe0, ENTER]), b"\r", "keypad Enter too");
        assert_eq!(keys(&[BACKSPACE, TAB, ESC]), b"\x08\t\x1b");
        assert_eq!(keys(&[LCTRL, C, C | 0x80, LCTRL | 0x80, C]), b"\x03c");
    }

    #[test]
    fn shifted_symbols_caps_lock_and_ctrl_u() {
        const CAPS: u8 = 0x3a;
        const U: u8 = 0x16;
        const MINUS: u8 = 0x0c;
        const SLASH: u8 = 0x35;
        const THREE: u8 = 0x04;
        const SPACE: u8 = 0x39;
        // Shift gives the US symbols: '#' for handles, '_' for __free_pages.
        assert_eq!(
            keys(&[
                LSHIFT,
                THREE,
                MINUS,
                SLASH,
                LSHIFT | 0x80,
                THREE,
                MINUS,
                SLASH,
                SPACE
            ]),
            b"#_?3-/ "
        );
        // Caps lock turns letters to capitals (shift turns them back), not digits.
        assert_eq!(
            keys(&[CAPS, CAPS | 0x80, A, ONE, LSHIFT, A, LSHIFT | 0x80]),
            b"A1a"
        );
        assert_eq!(
            keys(&[CAPS, CAPS | 0x80, CAPS, CAPS | 0x80, A]),
            b"a",
            "off again"
        );
        // Ctrl-U (kill the line) and Backspace are the bytes a terminal sends.
        assert_eq!(
            keys(&[LCTRL, U, U | 0x80, LCTRL | 0x80, BACKSPACE]),
            b"\x15\x08"
        );
    }

    #[test]
    fn arrows_send_ansi_sequences_and_other_keys_nothing() {
        assert_eq!(keys(&[0xe0, 0x48]), b"\x1b[A");
        assert_eq!(keys(&[0xe0, 0x50]), b"\x1b[B");
        assert_eq!(keys(&[0xe0, 0x4d]), b"\x1b[C");
        assert_eq!(keys(&[0xe0, 0x4b]), b"\x1b[D");
        assert_eq!(keys(&[0xe0, 0x48 | 0x80]), b"", "release");
        assert_eq!(keys(&[F1, LSHIFT, LCTRL]), b"");
        assert_eq!(keys(&[0xe0]), b"", "a lone prefix waits for its key");
    }
}
