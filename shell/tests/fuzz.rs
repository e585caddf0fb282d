//! No input ever panics the shell, every line yields at most one error line, and
//! the shell still answers afterwards.

mod common;

use common::{boot, crlf_only, error_lines, Fake};
use proptest::prelude::*;
use shell::{Shell, PROMPT};

/// Feeds `input` byte by byte, checking after each byte that the output it caused
/// has at most one error line and, if it printed a prompt, ends with it.
fn feed_checked(sh: &mut Shell, k: &mut Fake, input: &[u8]) -> Result<(), TestCaseError> {
    for &b in input {
        let start = k.out.len();
        sh.feed(b, k);
        let chunk = &k.out[start..];
        prop_assert!(error_lines(chunk) <= 1, "byte {b:#04x} gave {chunk:?}");
        if chunk.contains(PROMPT) {
            prop_assert!(chunk.ends_with(PROMPT), "prompt not last: {chunk:?}");
        }
    }
    Ok(())
}

/// The shell is alive: a fresh `echo` line is answered.
fn still_works(sh: &mut Shell, k: &mut Fake) -> Result<(), TestCaseError> {
    let start = k.out.len();
    sh.feed_bytes(b"\x03echo alive\r", k);
    prop_assert!(
        k.out[start..].ends_with("echo alive\r\nalive\r\nmm> "),
        "{:?}",
        &k.out[start..]
    );
    Ok(())
}

/// Pieces that make interesting input when glued together.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let words: Vec<&'static [u8]> = vec![
        b"help",
        b"help free",
        b"echo",
        b"history",
        b"clear",
        b"version",
        b"reboot",
        b"poweroff",
        b"trap ",
        b"bp",
        b"pf",
        b"xx",
        b"memstat",
        b"handles",
        b"free ",
        b"all",
        b"#1",
        b"#0",
        b"0x",
        b"4K",
        b"1G",
        b"18446744073709551616",
        b"\"",
        b" ",
        b"\t",
        b"\r",
        b"\n",
        b"\r\n",
        b"\x08",
        b"\x7f",
        b"\x03",
        b"\x15",
        b"\x1b",
        b"\x1b[",
        b"\x1b[A",
        b"\x1b[B",
        b"\x1b[C",
        b"\x1b[D",
        b"\x1b[3~",
        b"\x1bOA",
        b"\x1b]0;",
        b"\x07",
        b"\x00",
        b"\xff",
        b"error: ",
    ];
    prop_oneof![
        3 => proptest::sample::select(words).prop_map(|w| w.to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
        1 => proptest::collection::vec(b'a'..=b'z', 250..300),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let (mut sh, mut k) = boot();
        feed_checked(&mut sh, &mut k, &input)?;
        still_works(&mut sh, &mut k)?;
        prop_assert!(crlf_only(&k.out));
    }

    #[test]
    fn command_soup_never_panics(pieces in proptest::collection::vec(piece(), 0..200)) {
        let (mut sh, mut k) = boot();
        let input: Vec<u8> = pieces.concat();
        feed_checked(&mut sh, &mut k, &input)?;
        still_works(&mut sh, &mut k)?;
        prop_assert!(crlf_only(&k.out));
    }

    #[test]
    fn any_line_via_run_line_gives_at_most_one_error(line in ".{0,300}") {
        let mut sh = Shell::new();
        let mut k = Fake::default();
        let r = sh.run_line(&line, &mut k);
        prop_assert!(error_lines(&k.out) <= 1);
        if r.is_err() {
            let last = k.out.trim_end_matches("\r\n").rsplit("\r\n").next().unwrap_or("");
            prop_assert!(last.starts_with("error: "), "{:?}", k.out);
        }
        prop_assert!(crlf_only(&k.out));
    }

    #[test]
    fn numbers_round_trip(v in any::<u64>(), shift in prop_oneof![Just(0u32), Just(10), Just(20), Just(30)]) {
        use shell::parse::parse_number;
        prop_assert_eq!(parse_number(&v.to_string()), Ok(v));
        prop_assert_eq!(parse_number(&format!("{v:#x}")), Ok(v));
        prop_assert_eq!(parse_number(&format!("{v:#X}").replacen("0X", "0x", 1)), Ok(v));
        let base = v >> shift;
        let suffix = match shift { 10 => "K", 20 => "m", 30 => "G", _ => "" };
        prop_assert_eq!(parse_number(&format!("{base}{suffix}")), Ok(base << shift));
        let junk = format!("{base}{suffix}x");
        prop_assert!(parse_number(&junk).is_err());
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}") {
        let _ = shell::parse::parse_number(&s);
        let _ = shell::parse::parse_handle(&s);
        let _ = shell::parse::tokenize(&s);
    }
}
