//! The live picture of the slab allocator, the memory view's second page: one
//! text row per cache, its name, then one box per slab, filled from the left
//! in proportion to the slab's live objects (an empty box is a slab with no
//! object in use, a full one has none free). Free of hardware: the kernel
//! builds a [`SlabPicture`] from its caches and the slab liveness bitmap, and
//! [`SlabView::draw`] repaints only the rows that changed.
//!
//! Text sits on the console's cell grid, so a test reads the cache names back
//! with `render::Reader`.

use crate::memview::{text_at, Kind};
use crate::render::{shades, Font, Palette, Surface};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Characters of the name column (names are cut to one less).
pub const NAME_COLS: usize = 18;

/// One cache: its name, objects per slab, and the live objects of each slab.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SlabRow {
    pub name: String,
    pub objs_per_slab: u32,
    pub slabs: Vec<u32>,
}

/// Every cache the view shows, in order.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SlabPicture {
    pub rows: Vec<SlabRow>,
}

/// The view's place on the screen and what it last drew.
pub struct SlabView {
    x: usize,
    y: usize,
    w: usize,
    rows: usize,
    font: Font,
    drawn: Vec<Option<SlabRow>>,
    /// Caches left out last time (no room), drawn on the last row.
    more_drawn: Option<usize>,
    title_drawn: bool,
}

impl SlabView {
    /// A view in the `w` x `h` rectangle at (`x`, `y`) (on the cell grid of
    /// `font`): a title row, then one row per cache.
    pub fn new(x: usize, y: usize, w: usize, h: usize, font: Font) -> SlabView {
        let ch = font.cell().1;
        let rows = (h / ch).saturating_sub(2);
        SlabView {
            x,
            y,
            w,
            rows,
            font,
            drawn: vec![None; rows],
            more_drawn: None,
            title_drawn: false,
        }
    }

    /// The title row's text.
    pub const TITLE: &'static str = "slab: a box per slab, filled by live objects";

    /// Rows for caches (the last one says how many more there are when they
    /// do not all fit).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Boxes that fit in a row.
    pub fn boxes_per_row(&self) -> usize {
        let cw = self.font.cell().0;
        (self.w.saturating_sub(NAME_COLS * cw)) / (2 * cw + 2)
    }

    /// The y of cache row `i`.
    pub fn row_y(&self, i: usize) -> usize {
        self.y + (i + 1) * self.font.cell().1
    }

    /// Box `j` of row `i`: (x, y, width, height) of its outline.
    pub fn box_at(&self, i: usize, j: usize) -> (usize, usize, usize, usize) {
        let (cw, ch) = self.font.cell();
        (
            self.x + NAME_COLS * cw + j * (2 * cw + 2),
            self.row_y(i) + 2,
            2 * cw,
            ch - 4,
        )
    }

    /// Forgets what was drawn (the screen was cleared).
    pub fn invalidate(&mut self) {
        self.drawn.fill(None);
        self.more_drawn = None;
        self.title_drawn = false;
    }

    /// Paints the rows of `p` that changed (and the title the first time);
    /// returns how many rows were painted.
    pub fn draw<B: AsRef<[u8]> + AsMut<[u8]>>(
        &mut self,
        s: &mut Surface<B>,
        p: &SlabPicture,
        palette: &Palette,
    ) -> usize {
        let f = s.format();
        let font = self.font;
        let (cw, ch) = font.cell();
        let sh = shades(&f, palette.background, palette.text);
        if !self.title_drawn {
            text_at(s, self.x, self.y, Self::TITLE, font, &sh);
            self.title_drawn = true;
        }
        let fits = if p.rows.len() > self.rows {
            self.rows.saturating_sub(1)
        } else {
            self.rows
        };
        let more = (p.rows.len() > fits).then(|| p.rows.len() - fits);
        let mut painted = 0;
        let slab = f.encode(Kind::Slab.colour());
        let bg = f.encode(palette.background);
        let per_row = self.boxes_per_row();
        for i in 0..self.rows {
            let want = if i < fits { p.rows.get(i) } else { None };
            let is_more_row = i == fits && more.is_some();
            if self.drawn[i].as_ref() == want && !(is_more_row && self.more_drawn != more) {
                continue;
            }
            if !is_more_row && want.is_none() && self.drawn[i].is_none() {
                continue;
            }
            let y = self.row_y(i);
            s.fill(self.x, y, self.w, ch, bg);
            self.drawn[i] = want.cloned();
            painted += 1;
            if is_more_row {
                let t = alloc::format!("+{} more caches", more.unwrap_or(0));
                text_at(s, self.x, y, &t, font, &sh);
                continue;
            }
            let Some(row) = want else { continue };
            let name: String = row.name.chars().take(NAME_COLS - 1).collect();
            text_at(s, self.x, y, &name, font, &sh);
            let shown = if row.slabs.len() > per_row {
                per_row.saturating_sub(2)
            } else {
                row.slabs.len()
            };
            for (j, &live) in row.slabs.iter().take(shown).enumerate() {
                let (bx, by, bw, bh) = self.box_at(i, j);
                // The outline, then the inside filled from the left.
                s.fill(bx, by, bw, bh, slab);
                s.fill(bx + 1, by + 1, bw - 2, bh - 2, bg);
                let inner = (bw - 2) as u64;
                let objs = row.objs_per_slab.max(1) as u64;
                let filled = (live as u64 * inner).div_ceil(objs).min(inner) as usize;
                s.fill(bx + 1, by + 1, filled, bh - 2, slab);
            }
            if shown < row.slabs.len() {
                let (bx, _, _, _) = self.box_at(i, shown);
                let t = alloc::format!("+{}", row.slabs.len() - shown);
                let col = (bx - self.x).div_ceil(cw);
                text_at(s, self.x + col * cw, y, &t, font, &sh);
            }
        }
        self.more_drawn = more;
        painted
    }
}
