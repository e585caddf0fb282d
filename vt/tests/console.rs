//! The framebuffer console drawn into memory: glyph placement against the font's
//! own bitmaps, every pixel format, scrolling by copy, the cursor, the colour
//! rules, drawing in steps, and the backlog.

use proptest::prelude::*;
use vt::console::{Backlog, TextConsole};
use vt::render::{Channel, Font, FormatError, Ink, Palette, PixelFormat, Reader, Rgb, Surface};

const P: Palette = Palette::DEFAULT;

/// A console of `cols` x `rows` 16-px cells on a fresh surface in `f`.
fn screen(cols: usize, rows: usize, f: PixelFormat) -> (TextConsole, Surface<Vec<u8>>) {
    let (cw, ch) = Font::DEFAULT.cell();
    let (w, h) = (cols * cw, rows * ch);
    let pitch = w * f.bytes() + 12; // a pitch wider than the row, as real ones often are
    let s = Surface::new(vec![0xa5; pitch * h], w, h, pitch, f).unwrap();
    (TextConsole::new(w, h, f, Font::DEFAULT, P), s)
}

fn text(s: &Surface<Vec<u8>>) -> Vec<String> {
    Reader::new(Font::DEFAULT, &P, &s.format()).text(s)
}

/// Checks cell (`col`, `row`) pixel by pixel against the font's bitmap of `c` in `fg`.
fn assert_glyph(s: &Surface<Vec<u8>>, col: usize, row: usize, c: char, fg: Rgb) {
    let f = Font::DEFAULT;
    let (cw, ch) = f.cell();
    let fmt = s.format();
    let raster = f.glyph(c);
    assert_eq!(raster.len(), ch);
    for (dy, line) in raster.iter().enumerate() {
        assert_eq!(line.len(), cw);
        for (dx, &v) in line.iter().enumerate() {
            let want = fmt.encode(P.background.blend(fg, v));
            let got = s.pixel(col * cw + dx, row * ch + dy);
            assert_eq!(
                got, want,
                "{c:?} at cell ({col},{row}) pixel ({dx},{dy}) in {fmt}"
            );
        }
    }
}

const FORMATS: [PixelFormat; 4] = [
    PixelFormat::XRGB8888,
    PixelFormat::XBGR8888,
    PixelFormat::RGB888,
    PixelFormat::RGB565,
];

#[test]
fn glyphs_land_in_their_cells_in_every_pixel_format() {
    for f in FORMATS {
        let (mut t, mut s) = screen(12, 4, f);
        t.write_str("Ab~\r\n  q{");
        t.flush(&mut s);
        assert_glyph(&s, 0, 0, 'A', P.text);
        assert_glyph(&s, 1, 0, 'b', P.text);
        assert_glyph(&s, 2, 0, '~', P.text);
        assert_glyph(&s, 2, 1, 'q', P.text);
        assert_glyph(&s, 3, 1, '{', P.text);
        assert_glyph(&s, 7, 3, ' ', P.text);
        assert_eq!(text(&s), ["Ab~", "  q{", "", ""], "{f}");
    }
}

#[test]
fn pixel_formats_encode_by_mask_and_shift() {
    let c = Rgb::new(0x12, 0x34, 0x56);
    assert_eq!(PixelFormat::XRGB8888.encode(c), 0x12_34_56);
    assert_eq!(PixelFormat::XBGR8888.encode(c), 0x56_34_12);
    assert_eq!(PixelFormat::RGB565.encode(Rgb::new(0xff, 0, 0)), 0xf800);
    assert_eq!(PixelFormat::RGB565.encode(Rgb::new(0, 0xff, 0)), 0x07e0);
    // A 24-bit pixel is three bytes, B G R in memory.
    let mut s = Surface::new(vec![0; 9], 3, 1, 9, PixelFormat::RGB888).unwrap();
    s.put(1, 0, PixelFormat::RGB888.encode(c));
    assert_eq!(s.bytes(), [0, 0, 0, 0x56, 0x34, 0x12, 0, 0, 0]);
    // Odd depths and overlapping or oversized masks are refused.
    let c8 = Channel::new(8, 0);
    assert_eq!(PixelFormat::new(8, c8, c8, c8), Err(FormatError::Bpp(8)));
    assert_eq!(
        PixelFormat::new(32, Channel::new(8, 16), Channel::new(8, 12), c8),
        Err(FormatError::Channel("green"))
    );
    assert_eq!(
        PixelFormat::new(32, Channel::new(9, 16), Channel::new(8, 8), c8),
        Err(FormatError::Channel("red"))
    );
    assert_eq!(
        PixelFormat::new(
            16,
            Channel::new(5, 11),
            Channel::new(6, 5),
            Channel::new(5, 12)
        ),
        Err(FormatError::Channel("blue"))
    );
    assert_eq!(
        PixelFormat::new(
            16,
            Channel::new(5, 11),
            Channel::new(6, 5),
            Channel::new(5, 0)
        ),
        Ok(PixelFormat::RGB565)
    );
    // Decoding gives back what the format can hold, full scale included.
    for f in FORMATS {
        let white = Rgb::new(255, 255, 255);
        assert_eq!(f.decode(f.encode(white)), white);
        assert_eq!(f.decode(f.encode(Rgb::default())), Rgb::default());
    }
    assert_eq!(PixelFormat::RGB565.to_string(), "16bpp r5@11 g6@5 b5@0");
}

#[test]
fn scrolling_copies_rows_instead_of_drawing_them_again() {
    let (mut t, mut s) = screen(10, 3, PixelFormat::XRGB8888);
    t.write_str("one\r\ntwo\r\nsix");
    t.flush(&mut s);
    let before = t.glyphs_drawn();
    t.write_str("\r\nten");
    t.flush(&mut s);
    assert_eq!(text(&s), ["two", "six", "ten"]);
    // "ten", the cell the old cursor block moved onto, and the cursor;
    // "two" and "six" moved as pixels.
    assert_eq!(t.glyphs_drawn() - before, 3 + 1 + 1);
    // Many scrolls between flushes: still one copy, and only the visible rows.
    for i in 0..50 {
        t.write_str(&format!("\r\nline {i}"));
    }
    let before = t.glyphs_drawn();
    t.flush(&mut s);
    assert_eq!(text(&s), ["line 47", "line 48", "line 49"]);
    assert!(t.glyphs_drawn() - before <= 3 * 7 + 1);
}

#[test]
fn the_cursor_is_a_block_that_follows_the_text() {
    let (mut t, mut s) = screen(10, 3, PixelFormat::XRGB8888);
    let r = Reader::new(Font::DEFAULT, &P, &s.format());
    t.write_str("mm> ab");
    t.flush(&mut s);
    assert_eq!(t.cursor(), (6, 0));
    assert_eq!(r.cell(&s, 6, 0), Some((' ', true)));
    // The block is the text colour, the whole cell.
    let (cw, ch) = Font::DEFAULT.cell();
    assert_eq!(s.rgb(6 * cw, 0), P.text);
    assert_eq!(s.rgb(7 * cw - 1, ch - 1), P.text);
    // Backspace moves it back onto a character, which shows inverted.
    t.write_str("\x08");
    t.flush(&mut s);
    assert_eq!(r.cell(&s, 5, 0), Some(('b', true)));
    assert_eq!(
        r.cell(&s, 6, 0),
        Some((' ', false)),
        "the old block is gone"
    );
    assert!(!t.dirty());
}

#[test]
fn colours_for_the_prompt_errors_and_handles() {
    let (mut t, mut s) = screen(20, 6, PixelFormat::XRGB8888);
    t.write_str("mm> free #12\r\nfreed #12 x#y #\r\nerror: a long error line #3 wraps\r\nmm> ");
    t.flush(&mut s);
    let ink = |t: &TextConsole, c, r| t.cell(c, r).1;
    assert!((0..4).all(|c| ink(&t, c, 0) == Ink::Prompt));
    assert!((4..9).all(|c| ink(&t, c, 0) == Ink::Text));
    assert!((9..12).all(|c| ink(&t, c, 0) == Ink::Handle), "#12");
    assert_eq!(t.cell(6, 1), ('#', Ink::Handle));
    assert_eq!(t.cell(11, 1), ('#', Ink::Text), "# without digits");
    assert_eq!(t.cell(14, 1), ('#', Ink::Text));
    assert!((0..20).all(|c| ink(&t, c, 2) == Ink::Error));
    assert!(
        (0..13).all(|c| ink(&t, c, 3) == Ink::Error),
        "the wrapped part too"
    );
    assert!((0..4).all(|c| ink(&t, c, 4) == Ink::Prompt));
    assert_eq!(t.cell(0, 1), ('f', Ink::Text), "not every line is a prompt");
    // And in pixels.
    assert_glyph(&s, 0, 0, 'm', P.prompt);
    assert_glyph(&s, 10, 0, '1', P.handle);
    assert_glyph(&s, 0, 2, 'e', P.error);
    assert_glyph(&s, 4, 1, 'd', P.text);
    // "error:" and "mm> " count only at the start of a line.
    let (mut t, _) = screen(30, 3, PixelFormat::XRGB8888);
    t.write_str("no error: here mm> \r\n");
    assert!((0..19).all(|c| ink(&t, c, 0) == Ink::Text));
}

#[test]
fn clear_paints_the_background_everywhere() {
    let (mut t, mut s) = screen(8, 3, PixelFormat::RGB565);
    t.write_str("abc\r\ndef");
    t.flush(&mut s);
    t.write_str("\x1b[2J\x1b[Hx");
    t.flush(&mut s);
    assert_eq!(text(&s), ["x", "", ""]);
    // The whole surface, beside and below the text grid too, is background.
    let f = PixelFormat::XRGB8888;
    let mut s = Surface::new(vec![0xff; 100 * 4 * 40], 100, 40, 400, f).unwrap();
    let mut t = TextConsole::new(100, 40, f, Font::DEFAULT, P);
    t.flush(&mut s);
    let bg = f.encode(P.background);
    assert_eq!(s.pixel(99, 39), bg);
    assert_eq!(s.pixel(99, 10), bg);
    assert_eq!(s.pixel(50, 20), bg);
}

#[test]
fn font_size_follows_the_resolution() {
    let f = Font::for_screen(800, 600);
    assert_eq!(f.cell().1, 16);
    assert!(800 / f.cell().0 >= 80 && 600 / 16 >= 33);
    assert_eq!(Font::for_screen(1920, 1080).cell().1, 20);
    let f = Font::for_screen(3840, 2160);
    assert_eq!(f.cell().1, 32);
    assert!(3840 / f.cell().0 >= 200 && 2160 / 32 >= 60);
    // Narrow and tall: smaller rather than fewer than 80 columns.
    let f = Font::for_screen(800, 2160);
    assert!(800 / f.cell().0 >= 80);
    for px in Font::SIZES {
        let f = Font::with_size(px).unwrap();
        assert_eq!(f.glyph('W').len(), px);
        assert_eq!(
            f.glyph('\u{2603}'),
            f.glyph('?'),
            "missing glyphs draw as ?"
        );
    }
}

#[test]
fn backlog_keeps_the_first_bytes_and_counts_the_rest() {
    let mut b = Backlog::<9>::new();
    b.push("mm: ");
    b.push("RAM é");
    assert_eq!(b.text(), "mm: RAM ", "never half a character");
    assert_eq!(b.lost(), 2);
    b.push("x");
    assert_eq!((b.text(), b.lost()), ("mm: RAM x", 2));
    b.push("y");
    assert_eq!((b.text(), b.lost()), ("mm: RAM x", 3));
    b.reset();
    assert_eq!((b.text(), b.lost()), ("", 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Text written between flush steps ends as the same pixels as the same text
    /// flushed once (deferred drawing loses and mixes up nothing).
    #[test]
    fn drawing_in_steps_matches_drawing_at_once(
        chunks in prop::collection::vec(
            prop::collection::vec(prop::sample::select(vec![
                "a", "mm> ", "error: x", "#7", "\r\n", "\x08", "\x1b[2J\x1b[H", "long text here ", "q",
            ]), 0..6),
            1..12),
        steps in prop::collection::vec(0usize..4, 12),
    ) {
        let (mut a, mut sa) = screen(9, 4, PixelFormat::RGB565);
        let (mut b, mut sb) = screen(9, 4, PixelFormat::RGB565);
        for (chunk, &n) in chunks.iter().zip(steps.iter()) {
            for piece in chunk {
                a.write_str(piece);
                b.write_str(piece);
            }
            for _ in 0..n {
                a.flush_step(&mut sa);
            }
        }
        a.flush(&mut sa);
        b.flush(&mut sb);
        prop_assert!(sa.bytes() == sb.bytes());
    }
}
