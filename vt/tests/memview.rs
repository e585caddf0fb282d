//! The memory view: a known allocator state drawn into pixels, repainting only
//! what changed, and the console resized beside it.

use vt::console::TextConsole;
use vt::memview::{Band, Kind, MemView, Picture};
use vt::render::{Font, Palette, PixelFormat, Reader, Surface};

/// The zones of a machine with `frames` frames and lowmem at `lowmem`.
fn zones(frames: u64, lowmem: u64) -> Vec<Band> {
    let mut b = vec![Band {
        name: "DMA",
        free: Kind::FreeDma,
        start: 0,
        end: frames.min(4096),
    }];
    if frames > 4096 {
        b.push(Band {
            name: "NORMAL",
            free: Kind::FreeNormal,
            start: 4096,
            end: frames.min(lowmem),
        });
    }
    if frames > lowmem {
        b.push(Band {
            name: "UNMAPPED",
            free: Kind::FreeUnmapped,
            start: lowmem,
            end: frames,
        });
    }
    b
}

#[test]
fn a_square_shows_the_most_significant_kind_of_its_frames() {
    let bands = [Band {
        name: "DMA",
        free: Kind::FreeDma,
        start: 0,
        end: 32,
    }];
    let mut p = Picture::new(&bands, 8);
    p.add(0, 32, Kind::FreeNormal);
    p.add(9, 1, Kind::Allocated);
    p.add(20, 8, Kind::Slab);
    p.add(0, 2, Kind::Hole);
    assert_eq!(
        p.squares(),
        [Kind::FreeNormal, Kind::Allocated, Kind::Slab, Kind::Slab]
    );
    // Least significant first: a square that is part hole, part reserved is reserved.
    let mut q = Picture::new(&bands, 8);
    q.add(0, 4, Kind::Reserved);
    assert_eq!(q.squares()[0], Kind::Reserved);
    assert_eq!(q.squares()[1], Kind::Hole);
    assert!(Kind::Hole < Kind::Reserved && Kind::Reserved < Kind::FreeDma);
}

#[test]
fn each_band_starts_its_own_squares() {
    // A zone boundary at frame 12 with 8 frames per square: frame 12 starts a
    // new square, it does not share one with frame 8.
    let bands = [
        Band {
            name: "DMA",
            free: Kind::FreeDma,
            start: 0,
            end: 12,
        },
        Band {
            name: "NORMAL",
            free: Kind::FreeNormal,
            start: 12,
            end: 30,
        },
    ];
    let mut p = Picture::new(&bands, 8);
    assert_eq!(p.squares().len(), 2 + 3);
    p.add(8, 8, Kind::Allocated);
    assert_eq!(p.square_of(11), Some(1));
    assert_eq!(p.square_of(12), Some(2));
    assert_eq!(p.square_of(30), None);
    assert_eq!(
        p.squares(),
        [
            Kind::Hole,
            Kind::Allocated,
            Kind::Allocated,
            Kind::Hole,
            Kind::Hole
        ]
    );
}

#[test]
fn a_known_state_lands_in_its_squares_and_only_changes_are_repainted() {
    let f = PixelFormat::XRGB8888;
    let (w, h) = (300, 400);
    let mut s = Surface::new(vec![0; w * h * 4], w, h, w * 4, f).unwrap();
    let font = Font::DEFAULT;
    // 8192 frames (32 MiB): a DMA band and a NORMAL band.
    let bands = zones(8192, 8192);
    let mut v = MemView::new(0, 0, w, h, &bands, font);
    let (_, squares, side) = v.grid();
    assert!(side >= vt::memview::MIN_SIDE);
    let fps = v.frames_per_square();
    assert_eq!(squares as u64, 8192 / fps);
    assert!(fps <= 32, "the runs below are whole squares");
    let empty = v.picture();
    let state = |extra: &[(u64, u64, Kind)]| {
        let mut p = empty.clone();
        p.add(0, 32, Kind::Reserved);
        p.add(160, 96, Kind::Hole);
        p.add(32, 128, Kind::FreeDma);
        p.add(256, 4096 - 256, Kind::FreeDma);
        p.add(4096, 4096, Kind::FreeNormal);
        for &(a, n, k) in extra {
            p.add(a, n, k);
        }
        p
    };
    let p = state(&[(5000, 4, Kind::Allocated)]);
    let painted = v.draw(&mut s, &p, font, &Palette::DEFAULT);
    assert_eq!(painted, squares);
    let colour_of = |s: &Surface<Vec<u8>>, v: &MemView, frame: u64| {
        let (x, y) = v.frame_at(frame).unwrap();
        s.rgb(x, y)
    };
    assert_eq!(colour_of(&s, &v, 0), Kind::Reserved.colour());
    assert_eq!(colour_of(&s, &v, 192), Kind::Hole.colour());
    assert_eq!(colour_of(&s, &v, 5000), Kind::Allocated.colour());
    assert_eq!(colour_of(&s, &v, 2048), Kind::FreeDma.colour());
    assert_eq!(colour_of(&s, &v, 7000), Kind::FreeNormal.colour());
    // The gap between squares is background.
    let (x, y) = v.frame_at(5000).unwrap();
    assert_eq!(s.pixel(x + side - 1, y), 0);
    // Free the block, allocate elsewhere: only the squares that change are painted.
    let q = state(&[(3000, 1, Kind::Slab)]);
    let changed = 4u64.div_ceil(fps) as usize + 1;
    assert_eq!(v.draw(&mut s, &q, font, &Palette::DEFAULT), changed);
    assert_eq!(colour_of(&s, &v, 5000), Kind::FreeNormal.colour());
    assert_eq!(colour_of(&s, &v, 3000), Kind::Slab.colour());
    assert_eq!(v.draw(&mut s, &q, font, &Palette::DEFAULT), 0);
}

#[test]
fn the_zone_labels_and_the_legend_read_back_as_text_and_colours() {
    let f = PixelFormat::XRGB8888;
    let font = Font::for_screen(1024, 768);
    let (cw, ch) = font.cell();
    let (w, h) = (1024, 768);
    let mut s = Surface::new(vec![0; w * h * 4], w, h, w * 4, f).unwrap();
    let x = 81 * cw;
    let bands = zones(524_288, 262_144);
    let mut v = MemView::new(x, 0, w - x, h, &bands, font);
    let p = v.picture();
    v.draw(&mut s, &p, font, &Palette::DEFAULT);
    let r = Reader::new(font, &Palette::DEFAULT, &f);
    let read = |s: &Surface<Vec<u8>>, y: usize, n: usize| -> String {
        assert_eq!(y % ch, 0, "text on the cell grid");
        (0..n)
            .map(|c| r.cell(s, 81 + c, y / ch).map_or('?', |x| x.0))
            .collect()
    };
    let labels = v.labels();
    assert_eq!(
        labels.iter().map(|l| l.1.as_str()).collect::<Vec<_>>(),
        [
            "DMA 00000000-00ffffff",
            "NORMAL 01000000-3fffffff",
            "UNMAPPED 40000000-7fffffff"
        ]
    );
    for (y, t) in &labels {
        assert_eq!(&read(&s, *y, t.len()), t);
        // The boundary line runs from after the label to the right.
        let lx = x + (t.len() + 2) * cw;
        assert_eq!(s.rgb(lx, y + ch / 2), Palette::DEFAULT.text);
        assert_eq!(s.rgb(w - 10, y + ch / 2), Palette::DEFAULT.text);
    }
    // Every colour used is in the legend, with its name after its swatch.
    let sw = v.legend_swatches(font);
    let kinds: Vec<Kind> = sw.iter().map(|e| e.0).collect();
    assert_eq!(kinds, Kind::ALL);
    for (k, (sx, sy)) in sw {
        assert_eq!(s.rgb(sx, sy), k.colour(), "{k:?}");
        let col = (sx - x) / cw + 2;
        let y = sy - ch / 2;
        let name: String = (0..k.name().len())
            .map(|c| r.cell(&s, 81 + col + c, y / ch).map_or('?', |x| x.0))
            .collect();
        assert_eq!(name, k.name());
    }
    let notes = v.legend_notes();
    assert_eq!(notes[0], "1 square = 32 frames = 128 KiB");
    let rows = sw_rows(&v, font);
    for (i, t) in notes.iter().enumerate() {
        assert_eq!(&read(&s, v.legend_y() + (rows + i) * ch, t.len()), t);
    }
    assert!(v.legend_y() + (rows + 2) * ch <= h, "the legend fits");
}

fn sw_rows(v: &MemView, font: Font) -> usize {
    let ch = font.cell().1;
    let sw = v.legend_swatches(font);
    (sw.last().unwrap().1 .1 - v.legend_y()) / ch + 1
}

#[test]
fn the_scale_is_the_fewest_frames_per_square_of_at_least_4_px() {
    let font = Font::for_screen(1024, 768);
    let x = 81 * font.cell().0;
    for (frames, lowmem, fps) in [
        (524_288u64, 262_144u64, 32u64),
        (65_536, 65_536, 4),
        (1 << 20, 262_144, 64),
    ] {
        let bands = zones(frames, lowmem);
        let v = MemView::new(x, 0, 1024 - x, 768, &bands, font);
        let (cols, squares, side) = v.grid();
        assert_eq!(v.frames_per_square(), fps, "{frames} frames");
        assert!(side >= 4 && cols * side <= 1024 - x);
        assert_eq!(squares as u64, frames.div_ceil(fps));
        // The last square is above the legend.
        let (_, y) = v.square_at(squares - 1);
        assert!(y + side <= v.legend_y());
        // Half as many frames per square would not fit.
        let tighter = (frames / (fps / 2)) as usize;
        assert!(tighter * 16 > (1024 - x) * 768, "{frames}: {tighter}");
    }
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
