//! The kernel command line: a fixed-capacity copy of what the loader passed
//! (it is read before any heap exists, like the memory map in [`memmap`]) and
//! `key=value` lookup.
//!
//! It lives here because most of its options configure memory (`mm.lowmem=`,
//! `min_free_kbytes=`, `slub_debug=`, `fail_page_alloc=`, `failslab=`). The copy
//! keeps the first [`CMDLINE_MAX`] bytes and makes every byte printable ASCII
//! (anything else, tabs and newlines included, becomes `?`), so `version` can
//! print it as one line; options are therefore separated by spaces only.
//!
//! [`memmap`]: crate::memmap

use core::fmt;

/// Longest kernel command line kept.
pub const CMDLINE_MAX: usize = 512;

/// A copy of the kernel command line.
#[derive(Clone)]
pub struct Cmdline {
    buf: [u8; CMDLINE_MAX],
    len: usize,
}

impl Cmdline {
    /// Empty.
    pub const fn new() -> Self {
        Cmdline {
            buf: [0; CMDLINE_MAX],
            len: 0,
        }
    }
    /// Appends one byte (silently truncates at CMDLINE_MAX; non-ASCII becomes '?').
    pub fn push(&mut self, b: u8) {
        if self.len < CMDLINE_MAX {
            self.buf[self.len] = if b.is_ascii() && !b.is_ascii_control() {
                b
            } else {
                b'?'
            };
            self.len += 1;
        }
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
    /// Value of `key=value`, if present (the first occurrence wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.as_str()
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }
}

impl Default for Cmdline {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Cmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &[u8]) -> Cmdline {
        let mut c = Cmdline::new();
        for &b in s {
            c.push(b);
        }
        c
    }

    #[test]
    fn options_are_found_by_exact_key() {
        let c = line(b"  mm.lowmem=512M  hello=world slub_debug mm.lowmemx=1 x=");
        assert_eq!(c.get("mm.lowmem"), Some("512M"));
        assert_eq!(c.get("hello"), Some("world"));
        assert_eq!(c.get("x"), Some(""));
        assert_eq!(c.get("slub_debug"), None, "a bare word has no value");
        assert_eq!(c.get("lowmem"), None, "keys match from the word's start");
        assert_eq!(c.get("mm.low"), None, "and to its '='");
        assert_eq!(c.to_string(), c.as_str());
        let c = line(b"a=1 a=2");
        assert_eq!(c.get("a"), Some("1"), "the first occurrence wins");
        assert_eq!(Cmdline::default().get("a"), None);
        assert_eq!(Cmdline::default().as_str(), "");
    }

    #[test]
    fn control_and_non_ascii_bytes_become_question_marks() {
        let c = line(b"a=\x01b\xc3\xa9 \x7f\nc=d");
        assert_eq!(c.as_str(), "a=?b?? ??c=d");
        assert_eq!(c.get("a"), Some("?b??"));
        assert_eq!(c.get("c"), None, "a newline is no separator any more");
        // Nor is a tab: only spaces separate options.
        let c = line(b"a=1\tb=2");
        assert_eq!((c.get("a"), c.get("b")), (Some("1?b=2"), None));
    }

    #[test]
    fn long_lines_are_truncated() {
        let mut long = b"k=".to_vec();
        long.resize(CMDLINE_MAX + 100, b'v');
        let c = line(&long);
        assert_eq!(c.as_str().len(), CMDLINE_MAX);
        assert_eq!(c.get("k").unwrap().len(), CMDLINE_MAX - 2);
    }
}
