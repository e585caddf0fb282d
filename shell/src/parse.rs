//! Words and numbers: the tokenizer and the parsers for numbers, addresses and
//! handle references.
//!
//! - Tokens are separated by spaces/tabs; `"..."` groups words (with `\"` and `\\`
//!   escapes inside) and may be glued to unquoted text (`a"b c"` is `ab c`).
//! - Numbers: decimal (`4096`), hex (`0x1000`), `_` separators (`0xffff_8000`),
//!   and a size suffix `K`, `M` or `G` (powers of 1024, any case) on either form
//!   (`4K`, `2m`, `0x10K` = 16 KiB). Anything that does not fit in 64 bits is an error.
//! - Handle references are `#N` with N a decimal number from 1.
//!
//! Every error is a [`ParseError`] whose `Display` is the text after `error: `.
//! [`parse_u64`] is the number parser without allocation, for the kernel's boot
//! code (sizes on its command line).

use crate::handles::HandleId;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// What the user wrote wrong, with the offending text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not a number at all.
    BadNumber(String),
    /// A well-formed number that does not fit in 64 bits.
    TooLarge(String),
    /// Not a `#N` handle reference.
    BadHandle(String),
    /// A `"` without its closing partner.
    UnterminatedQuote,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::BadNumber(s) => {
                write!(
                    f,
                    "bad number '{s}' (expected decimal, 0x hex, or a size like 4K, 2M, 1G)"
                )
            }
            ParseError::TooLarge(s) => {
                write!(f, "number '{s}' is too large (max 0xffffffffffffffff)")
            }
            ParseError::BadHandle(s) => {
                write!(f, "bad handle '{s}' (expected #N with N from 1, like #1)")
            }
            ParseError::UnterminatedQuote => f.write_str("unterminated quote (missing closing \")"),
        }
    }
}

/// Splits a line into words (see the module docs for quoting).
pub fn tokenize(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_ascii_whitespace() => {
                if in_word {
                    words.push(core::mem::take(&mut word));
                    in_word = false;
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(ParseError::UnterminatedQuote),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err(ParseError::UnterminatedQuote),
                        },
                        Some(other) => word.push(other),
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Why [`parse_u64`] refused a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// Not a number at all ([`ParseError::BadNumber`]).
    Bad,
    /// A well-formed number that does not fit in 64 bits ([`ParseError::TooLarge`]).
    TooLarge,
}

/// [`parse_number`] without allocating, for code that runs before any heap
/// exists: the kernel reads sizes on its command line (`mm.lowmem=512M`) with it.
pub fn parse_u64(tok: &str) -> Result<u64, NumberError> {
    if !tok.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return Err(NumberError::Bad);
    }
    let (body, shift) = match tok.as_bytes().last() {
        Some(b'k' | b'K') => (&tok[..tok.len() - 1], 10),
        Some(b'm' | b'M') => (&tok[..tok.len() - 1], 20),
        Some(b'g' | b'G') => (&tok[..tok.len() - 1], 30),
        _ => (tok, 0),
    };
    let (digits, radix) = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => (hex, 16u32),
        None => (body, 10u32),
    };
    let mut value: u64 = 0;
    let mut any = false;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(radix).ok_or(NumberError::Bad)?;
        any = true;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(NumberError::TooLarge)?;
    }
    if !any {
        return Err(NumberError::Bad);
    }
    if value > u64::MAX >> shift {
        return Err(NumberError::TooLarge);
    }
    Ok(value << shift)
}

/// Parses a number: decimal, `0x` hex, `_` separators, optional `K`/`M`/`G` suffix.
pub fn parse_number(tok: &str) -> Result<u64, ParseError> {
    parse_u64(tok).map_err(|e| match e {
        NumberError::Bad => ParseError::BadNumber(String::from(tok)),
        NumberError::TooLarge => ParseError::TooLarge(String::from(tok)),
    })
}

/// Parses an address. Addresses are numbers (usually hex); the same forms are accepted.
pub fn parse_addr(tok: &str) -> Result<u64, ParseError> {
    parse_number(tok)
}

/// True if `tok` is meant as a handle reference (starts with `#`).
pub fn is_handle_ref(tok: &str) -> bool {
    tok.starts_with('#')
}

/// Parses a handle reference `#N` (N decimal, from 1).
pub fn parse_handle(tok: &str) -> Result<HandleId, ParseError> {
    let bad = || ParseError::BadHandle(String::from(tok));
    let digits = tok.strip_prefix('#').ok_or_else(bad)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match digits.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(HandleId(n)),
        _ => Err(bad()),
    }
}

/// Joins choices for an error message: `a`, `a or b`, `a, b or c`.
pub fn expected_list(items: &[&str]) -> String {
    let mut s = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push_str(if i + 1 == items.len() { " or " } else { ", " });
        }
        s.push_str(item);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn words(line: &str) -> Vec<String> {
        tokenize(line).unwrap()
    }

    #[test]
    fn tokenizer_splits_and_quotes() {
        assert_eq!(
            words("  kmalloc\t80  GFP_DMA "),
            ["kmalloc", "80", "GFP_DMA"]
        );
        assert!(words("   ").is_empty());
        assert_eq!(words(r#"echo "a  b" c"#), ["echo", "a  b", "c"]);
        assert_eq!(words(r#"x"y z"w "" "q\"\\\n""#), ["xy zw", "", "q\"\\\\n"]);
        assert_eq!(tokenize("echo \"abc"), Err(ParseError::UnterminatedQuote));
        assert_eq!(tokenize("echo \"abc\\"), Err(ParseError::UnterminatedQuote));
        assert_eq!(
            ParseError::UnterminatedQuote.to_string(),
            "unterminated quote (missing closing \")"
        );
    }

    #[test]
    fn numbers_in_every_form() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("007", 7),
            ("0x1000", 0x1000),
            ("0XfF", 255),
            ("0xffff_8000_0000_0000", 0xffff_8000_0000_0000),
            ("0x_10", 16),
            ("1_000_000", 1_000_000),
            ("4K", 4096),
            ("4k", 4096),
            ("2M", 2 << 20),
            ("1g", 1 << 30),
            ("0x10K", 16 << 10),
            ("17179869183G", 17_179_869_183 << 30),
            ("18446744073709551615", u64::MAX),
            ("0xffffffffffffffff", u64::MAX),
        ];
        for &(s, v) in cases {
            assert_eq!(parse_number(s), Ok(v), "{s}");
        }
    }

    #[test]
    fn bad_numbers() {
        for s in [
            "", "x12", "-1", "+1", "12x", "0x", "0xK", "K", "1KK", "1.5", "0x1g2", "_1", "1 2",
            "１",
        ] {
            assert_eq!(
                parse_number(s),
                Err(ParseError::BadNumber(s.to_string())),
                "{s:?}"
            );
        }
        assert_eq!(
            parse_number("x12").unwrap_err().to_string(),
            "bad number 'x12' (expected decimal, 0x hex, or a size like 4K, 2M, 1G)"
        );
    }

    #[test]
    fn overflow_is_an_error() {
        for s in [
            "18446744073709551616",
            "0x1_0000_0000_0000_0000",
            "17179869184G",
            "17592186044416M",
            "99999999999999999999999",
        ] {
            assert_eq!(
                parse_number(s),
                Err(ParseError::TooLarge(s.to_string())),
                "{s}"
            );
        }
        assert_eq!(
            parse_number("17179869184G").unwrap_err().to_string(),
            "number '17179869184G' is too large (max 0xffffffffffffffff)"
        );
    }

    #[test]
    fn command_line_sizes_without_allocation() {
        for (s, v) in [
            ("1G", 1u64 << 30),
            ("512M", 512 << 20),
            ("64m", 64 << 20),
            ("0x40000000", 1 << 30),
            ("0x10k", 16 << 10),
            ("33554432", 32 << 20),
        ] {
            assert_eq!(parse_u64(s), Ok(v), "{s}");
        }
        assert_eq!(parse_u64("17179869184G"), Err(NumberError::TooLarge));
        assert_eq!(parse_u64("16777216T"), Err(NumberError::Bad));
        for s in ["", "G", "1GB", "-1G", "+1G", "1.5G"] {
            assert_eq!(parse_u64(s), Err(NumberError::Bad), "{s:?}");
        }
        // The same language as parse_number, error kinds included.
        for s in [
            "0",
            "0XfF",
            "0x_10",
            "1_000",
            "4K",
            "x12",
            "0x",
            "1KK",
            "_1",
            "1 2",
            "18446744073709551616",
            "17592186044416M",
            "17179869183G",
        ] {
            let kind = parse_number(s).map_err(|e| match e {
                ParseError::BadNumber(_) => NumberError::Bad,
                ParseError::TooLarge(_) => NumberError::TooLarge,
                e => panic!("{e:?}"),
            });
            assert_eq!(parse_u64(s), kind, "{s:?}");
        }
    }

    #[test]
    fn handles_parse() {
        assert_eq!(parse_handle("#1"), Ok(HandleId(1)));
        assert_eq!(parse_handle("#0042"), Ok(HandleId(42)));
        for s in [
            "#",
            "#0",
            "#x",
            "#-1",
            "1",
            "#1K",
            "#99999999999999999999999",
        ] {
            assert_eq!(
                parse_handle(s),
                Err(ParseError::BadHandle(s.to_string())),
                "{s}"
            );
        }
        assert_eq!(
            parse_handle("#0").unwrap_err().to_string(),
            "bad handle '#0' (expected #N with N from 1, like #1)"
        );
        assert!(is_handle_ref("#3") && !is_handle_ref("3"));
        assert_eq!(parse_addr("0xffff800000000000"), Ok(0xffff_8000_0000_0000));
    }

    #[test]
    fn expected_lists_read_naturally() {
        assert_eq!(expected_list(&[]), "");
        assert_eq!(expected_list(&["a"]), "a");
        assert_eq!(expected_list(&["a", "b"]), "a or b");
        assert_eq!(
            expected_list(&["DMA", "NORMAL", "UNMAPPED"]),
            "DMA, NORMAL or UNMAPPED"
        );
    }
}
