//! Output conventions for the serial terminal: every line ends with `\r\n`, and an
//! error is exactly one line.
//!
//! Command code writes `\n` (with `writeln!`); [`write_crlf`] turns each `\n` that
//! is not already preceded by `\r` into `\r\n`. [`one_line`] makes any text safe to
//! print as a single line.

use alloc::string::String;
use core::fmt;

/// The prompt, printed whenever the shell is ready for a line.
pub const PROMPT: &str = "mm> ";

/// ANSI "clear screen, cursor home".
pub const CLEAR: &str = "\x1b[2J\x1b[H";

/// Writes `s` to `w`, turning lone `\n` into `\r\n`. `last_cr` carries whether the
/// previous write ended with `\r` (so `\r` + `\n` split over two writes stays one).
pub fn write_crlf<W: fmt::Write + ?Sized>(w: &mut W, s: &str, last_cr: &mut bool) -> fmt::Result {
    let mut rest = s;
    while let Some(i) = rest.find('\n') {
        let head = &rest[..i];
        w.write_str(head)?;
        let cr_before = if head.is_empty() {
            *last_cr
        } else {
            head.ends_with('\r')
        };
        w.write_str(if cr_before { "\n" } else { "\r\n" })?;
        *last_cr = false;
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        w.write_str(rest)?;
        *last_cr = rest.ends_with('\r');
    }
    Ok(())
}

/// `text` with every control character (including CR and LF) replaced by a space
/// and every non-ASCII character by `?`, so that it prints as one line.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_ascii_control() => ' ',
            c if !c.is_ascii() => '?',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf(parts: &[&str]) -> String {
        let mut out = String::new();
        let mut cr = false;
        for p in parts {
            write_crlf(&mut out, p, &mut cr).unwrap();
        }
        out
    }

    #[test]
    fn lf_becomes_crlf_once() {
        assert_eq!(crlf(&["a\nb\n"]), "a\r\nb\r\n");
        assert_eq!(crlf(&["a\r\n", "\n"]), "a\r\n\r\n");
        assert_eq!(crlf(&["a\r", "\nb"]), "a\r\nb");
        assert_eq!(crlf(&["\n\n"]), "\r\n\r\n");
        assert_eq!(crlf(&[""]), "");
    }

    #[test]
    fn one_line_strips_controls() {
        assert_eq!(one_line("a\r\nb\x1b\tc\u{e9}"), "a  b  c?");
    }
}
