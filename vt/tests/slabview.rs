//! The slab view: a known slab state drawn into pixels (names read back as
//! text, each box's outline and fill checked), repainting only changed rows.

use vt::memview::Kind;
use vt::render::{Font, Palette, PixelFormat, Reader, Rgb, Surface};
use vt::slabview::{SlabPicture, SlabRow, SlabView, NAME_COLS};

fn row(name: &str, objs: u32, slabs: &[u32]) -> SlabRow {
    SlabRow {
        name: name.into(),
        objs_per_slab: objs,
        slabs: slabs.to_vec(),
    }
}

#[test]
fn a_known_slab_state_draws_names_and_boxes_filled_by_live_objects() {
    let f = PixelFormat::XRGB8888;
    let font = Font::DEFAULT;
    let (cw, ch) = font.cell();
    let (w, h) = (80 * cw, 10 * ch);
    let mut s = Surface::new(vec![0; w * h * 4], w, h, w * 4, f).unwrap();
    let x = 10 * cw;
    let mut v = SlabView::new(x, 0, w - x, h, font);
    let pal = Palette::DEFAULT;
    let p = SlabPicture {
        rows: vec![
            row("kmalloc-128", 32, &[32, 0]),
            row("inode", 16, &[8]),
            row("empty-cache", 16, &[]),
        ],
    };
    assert_eq!(v.draw(&mut s, &p, &pal), 3);
    let r = Reader::new(font, &pal, &f);
    let text = |s: &Surface<Vec<u8>>, y: usize, n: usize| -> String {
        (0..n)
            .map(|c| r.cell(s, 10 + c, y / ch).map_or('?', |x| x.0))
            .collect()
    };
    assert_eq!(text(&s, 0, SlabView::TITLE.len()), SlabView::TITLE);
    for (i, name) in ["kmalloc-128", "inode", "empty-cache"].iter().enumerate() {
        assert_eq!(text(&s, v.row_y(i), NAME_COLS), format!("{name:<18}"));
    }
    let slab = Kind::Slab.colour();
    let bg = pal.background;
    // (row, box) -> how much of its inside is filled, read from its pixels.
    let fill_of = |s: &Surface<Vec<u8>>, v: &SlabView, i: usize, j: usize| -> (Rgb, usize, usize) {
        let (bx, by, bw, bh) = v.box_at(i, j);
        let filled = (bx + 1..bx + bw - 1)
            .filter(|&px| s.rgb(px, by + bh / 2) == slab)
            .count();
        (s.rgb(bx, by), filled, bw - 2)
    };
    assert_eq!(
        fill_of(&s, &v, 0, 0),
        (slab, 2 * cw - 2, 2 * cw - 2),
        "full slab"
    );
    assert_eq!(fill_of(&s, &v, 0, 1), (slab, 0, 2 * cw - 2), "empty slab");
    assert_eq!(
        fill_of(&s, &v, 1, 0),
        (slab, (2 * cw - 2) / 2, 2 * cw - 2),
        "half full"
    );
    // No box after the last slab.
    let (bx, by, _, _) = v.box_at(0, 2);
    assert_eq!(s.rgb(bx, by), bg);
    let (bx, by, _, _) = v.box_at(2, 0);
    assert_eq!(s.rgb(bx, by), bg);
    // One object more in inode, and empty-cache gone: two rows repainted.
    let q = SlabPicture {
        rows: vec![row("kmalloc-128", 32, &[32, 0]), row("inode", 16, &[9])],
    };
    assert_eq!(v.draw(&mut s, &q, &pal), 2);
    assert_eq!(fill_of(&s, &v, 1, 0).1, (9 * (2 * cw - 2)).div_ceil(16));
    assert_eq!(text(&s, v.row_y(2), NAME_COLS), " ".repeat(NAME_COLS));
    assert_eq!(v.draw(&mut s, &q, &pal), 0);
}

#[test]
fn too_many_slabs_or_caches_are_counted_not_lost() {
    let f = PixelFormat::XRGB8888;
    let font = Font::DEFAULT;
    let (cw, ch) = font.cell();
    let (w, h) = (60 * cw, 5 * ch);
    let mut s = Surface::new(vec![0; w * h * 4], w, h, w * 4, f).unwrap();
    let mut v = SlabView::new(0, 0, w, h, font);
    assert_eq!(v.rows(), 3);
    let per_row = v.boxes_per_row();
    let many = vec![1; per_row + 5];
    let p = SlabPicture {
        rows: (0..5).map(|i| row(&format!("c{i}"), 4, &many)).collect(),
    };
    v.draw(&mut s, &p, &Palette::DEFAULT);
    let r = Reader::new(font, &Palette::DEFAULT, &f);
    let line = r.text(&s);
    assert_eq!(line[3], "+3 more caches");
    let shown = per_row - 2;
    assert!(
        line[1].ends_with(&format!("+{}", per_row + 5 - shown)),
        "{:?}",
        line[1]
    );
}
