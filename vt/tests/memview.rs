//! The memory view: a known allocator state drawn into pixels, repainting only
//! what changed, and the console resized beside it.

use vt::console::TextConsole;
use vt::memview::{Kind, MemView, Picture};
use vt::render::{Font, Palette, PixelFormat, Reader, Surface};

#[test]
fn a_square_shows_the_highest_kind_of_its_frames() {
    let mut p = Picture::new(4, 8);
    p.add(0, 32, Kind::FreeNormal);
    p.add(9, 1, Kind::Allocated);
    p.add(20, 8, Kind::Slab);
    assert_eq!(
        p.squares(),
        [Kind::FreeNormal, Kind::Allocated, Kind::Slab, Kind::Slab]
    );
}

#[test]
fn a_known_state_lands_in_its_squares_and_only_changes_are_repainted() {
    let f = PixelFormat::XRGB8888;
    let (w, h) = (200, 200);
    let mut s = Surface::new(vec![0; w * h * 4], w, h, w * 4, f).unwrap();
    let font = Font::DEFAULT;
    // 4096 frames (16 MiB) in 200 x (200 - legend) pixels.
    let mut v = MemView::new(0, 0, w, h, 4096, font);
    let (cols, rows, side) = v.grid();
    assert!(cols * rows * v.frames_per_square() as usize >= 4096);
    assert!(
        rows * side + font.cell().1 * 4 <= h,
        "the legend fits below"
    );
    let fps = v.frames_per_square();
    let mut p = v.picture();
    p.add(0, 16, Kind::Reserved);
    p.add(16, 4096 - 16, Kind::FreeDma);
    p.add(1024, 4, Kind::Allocated);
    let painted = v.draw(&mut s, &p, font, &Palette::DEFAULT);
    assert_eq!(painted, cols * rows);
    let colour_of = |s: &Surface<Vec<u8>>, v: &MemView, frame: u64| {
        let (x, y) = v.square_at((frame / fps) as usize);
        s.rgb(x, y)
    };
    assert_eq!(colour_of(&s, &v, 0), Kind::Reserved.colour());
    assert_eq!(colour_of(&s, &v, 1024), Kind::Allocated.colour());
    assert_eq!(colour_of(&s, &v, 2048), Kind::FreeDma.colour());
    // Free the block, allocate elsewhere: only the squares that change are painted.
    let mut q = v.picture();
    q.add(0, 16, Kind::Reserved);
    q.add(16, 4096 - 16, Kind::FreeDma);
    q.add(3000, 1, Kind::Slab);
    let changed = 4u64.div_ceil(fps) as usize + 1;
    assert_eq!(v.draw(&mut s, &q, font, &Palette::DEFAULT), changed);
    assert_eq!(colour_of(&s, &v, 1024), Kind::FreeDma.colour());
    assert_eq!(colour_of(&s, &v, 3000), Kind::Slab.colour());
    assert_eq!(v.draw(&mut s, &q, font, &Palette::DEFAULT), 0);
}

#[test]
fn two_gib_fit_beside_an_80_column_console_at_1024x768() {
    let font = Font::for_screen(1024, 768);
    let text_w = 80 * font.cell().0;
    let v = MemView::new(text_w + 8, 0, 1024 - text_w - 8, 768, 524_288, font);
    let (cols, rows, side) = v.grid();
    assert!(cols * side <= 1024 - text_w - 8 && rows * side <= 768);
    assert!(v.frames_per_square().is_power_of_two());
    assert!(cols * rows * v.frames_per_square() as usize >= 524_288);
}

#[test]
fn resizing_the_console_keeps_its_text_and_stays_in_its_part() {
    let f = PixelFormat::XRGB8888;
    let font = Font::DEFAULT;
    let (cw, ch) = font.cell();
    let (w, h) = (30 * cw, 4 * ch);
    let mut s = Surface::new(vec![0; w * h * 4], w, h, w * 4, f).unwrap();
    let p = Palette::DEFAULT;
    let mut t = TextConsole::new(w, h, f, font, p);
    t.write_str("one\r\nmm> two three four five six\r\nmm> x");
    t.flush(&mut s);
    // Paint the right half as a view would, then shrink the console to 10 columns.
    s.fill(10 * cw, 0, w - 10 * cw, h, 0x00ff_00ff);
    t.resize(10 * cw, h);
    t.flush(&mut s);
    let r = Reader::new(font, &p, &f);
    let row = |s: &Surface<Vec<u8>>, row| -> String {
        (0..10)
            .map(|c| r.cell(s, c, row).map_or('?', |x| x.0))
            .collect()
    };
    assert_eq!(row(&s, 0), "one       ");
    assert_eq!(row(&s, 1), "mm> two th");
    assert_eq!(row(&s, 2), "mm> x     ");
    assert_eq!(t.cursor(), (5, 2));
    assert_eq!(
        s.pixel(10 * cw, 0),
        0x00ff_00ff,
        "the view's part is untouched"
    );
    // Scrolling stays in the console's part too.
    t.write_str("\r\na\r\nb\r\nc");
    t.flush(&mut s);
    assert_eq!(s.pixel(w - 1, h - 1), 0x00ff_00ff);
    assert_eq!(t.cell(0, 3).0, 'c');
}
