//! The live picture of physical memory: one small square per group of page
//! frames, coloured by what the frames are (free by zone, cached, allocated,
//! slab, reserved), with a legend. Free of hardware: the kernel walks its
//! `mem_map` into a [`Picture`] and [`MemView::draw`] paints the squares whose
//! colour changed since the last time, on the right part of the screen.

use crate::render::{shades, Font, Palette, Rgb, Surface};
use alloc::vec;
use alloc::vec::Vec;

/// What a square shows, lowest precedence first: a square of several frames
/// shows the highest kind among them, so one allocated page stays visible.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub enum Kind {
    /// Not RAM the allocator manages (firmware, holes, kernel image, mem_map).
    Reserved,
    FreeDma,
    FreeNormal,
    FreeUnmapped,
    /// Free, in a buddy per-zone cache.
    Cached,
    Allocated,
    Slab,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Reserved,
        Kind::FreeDma,
        Kind::FreeNormal,
        Kind::FreeUnmapped,
        Kind::Cached,
        Kind::Allocated,
        Kind::Slab,
    ];

    pub fn colour(self) -> Rgb {
        match self {
            Kind::Reserved => Rgb::new(0x50, 0x50, 0x50),
            Kind::FreeDma => Rgb::new(0x1d, 0x4d, 0x5a),
            Kind::FreeNormal => Rgb::new(0x1f, 0x5a, 0x2e),
            Kind::FreeUnmapped => Rgb::new(0x2a, 0x32, 0x6a),
            Kind::Cached => Rgb::new(0xd0, 0xc0, 0x40),
            Kind::Allocated => Rgb::new(0xff, 0x8c, 0x1a),
            Kind::Slab => Rgb::new(0xe0, 0x50, 0xe0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Reserved => "reserved",
            Kind::FreeDma => "free DMA",
            Kind::FreeNormal => "free NORMAL",
            Kind::FreeUnmapped => "free UNMAPPED",
            Kind::Cached => "cached",
            Kind::Allocated => "allocated",
            Kind::Slab => "slab",
        }
    }
}

/// What every square shows: built from runs of frames.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Picture {
    frames_per_square: u64,
    squares: Vec<Kind>,
}

impl Picture {
    /// `squares` squares of `frames_per_square` frames each, all reserved.
    pub fn new(squares: usize, frames_per_square: u64) -> Picture {
        Picture {
            frames_per_square: frames_per_square.max(1),
            squares: vec![Kind::Reserved; squares],
        }
    }

    /// Frames `first .. first + n` are `kind`.
    pub fn add(&mut self, first: u64, n: u64, kind: Kind) {
        let f = self.frames_per_square;
        let (a, b) = (first / f, (first + n.max(1) - 1) / f);
        for i in a..=b.min(self.squares.len() as u64 - 1) {
            let s = &mut self.squares[i as usize];
            *s = (*s).max(kind);
        }
    }

    pub fn squares(&self) -> &[Kind] {
        &self.squares
    }
}

/// The view's place on the screen and what it last drew.
pub struct MemView {
    x: usize,
    y: usize,
    cols: usize,
    rows: usize,
    side: usize,
    frames_per_square: u64,
    legend_y: usize,
    drawn: Vec<Option<Kind>>,
    legend_drawn: bool,
}

impl MemView {
    /// A view of `frames` page frames in the `w` x `h` rectangle at (`x`, `y`),
    /// leaving room for a legend of `font`: squares as large as fit (at least
    /// 1 px), a power of two frames per square.
    pub fn new(x: usize, y: usize, w: usize, h: usize, frames: u64, font: Font) -> MemView {
        let legend_h = font.cell().1 * 4 + 4;
        let area_h = h.saturating_sub(legend_h).max(1);
        let mut fps = 1u64;
        let (mut side, mut cols, mut rows);
        loop {
            let squares = frames.div_ceil(fps) as usize;
            // The largest side whose grid of that many squares fits.
            side = 1;
            while (w / (side + 1)) * (area_h / (side + 1)) >= squares && side < 16 {
                side += 1;
            }
            cols = (w / side).max(1);
            rows = squares.div_ceil(cols);
            if rows * side <= area_h {
                break;
            }
            fps *= 2;
        }
        MemView {
            x,
            y,
            cols,
            rows,
            side,
            frames_per_square: fps,
            legend_y: y + rows * side + 4,
            drawn: vec![None; cols * rows],
            legend_drawn: false,
        }
    }

    /// Frames per square (a power of two).
    pub fn frames_per_square(&self) -> u64 {
        self.frames_per_square
    }

    /// Squares: (columns, rows), and the side of one in pixels.
    pub fn grid(&self) -> (usize, usize, usize) {
        (self.cols, self.rows, self.side)
    }

    /// An empty picture for this view.
    pub fn picture(&self) -> Picture {
        Picture::new(self.cols * self.rows, self.frames_per_square)
    }

    /// The top-left pixel of square `i`.
    pub fn square_at(&self, i: usize) -> (usize, usize) {
        (
            self.x + (i % self.cols) * self.side,
            self.y + (i / self.cols) * self.side,
        )
    }

    /// Forgets what was drawn (the screen was cleared).
    pub fn invalidate(&mut self) {
        self.drawn.fill(None);
        self.legend_drawn = false;
    }

    /// Paints the squares of `p` that changed, and the legend the first time;
    /// returns how many squares were painted.
    pub fn draw<B: AsRef<[u8]> + AsMut<[u8]>>(
        &mut self,
        s: &mut Surface<B>,
        p: &Picture,
        font: Font,
        palette: &Palette,
    ) -> usize {
        let f = s.format();
        if !self.legend_drawn {
            self.legend(s, font, palette);
            self.legend_drawn = true;
        }
        // A 1-px gap between squares of 4 px or more shows the grid.
        let fill = if self.side >= 4 {
            self.side - 1
        } else {
            self.side
        };
        let mut painted = 0;
        for (i, &k) in p.squares().iter().enumerate().take(self.drawn.len()) {
            if self.drawn[i] != Some(k) {
                let (x, y) = self.square_at(i);
                s.fill(x, y, fill, fill, f.encode(k.colour()));
                self.drawn[i] = Some(k);
                painted += 1;
            }
        }
        painted
    }

    fn legend<B: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        s: &mut Surface<B>,
        font: Font,
        palette: &Palette,
    ) {
        let f = s.format();
        let (cw, ch) = font.cell();
        let sh = shades(&f, palette.background, palette.text);
        let mut x = self.x;
        let mut y = self.legend_y;
        let width = self.cols * self.side;
        let text = |s: &mut Surface<B>, x: usize, y: usize, t: &str| {
            for (i, c) in t.chars().enumerate() {
                s.blit(x + i * cw, y, font.glyph(c), &sh);
            }
        };
        for k in Kind::ALL {
            let w = (k.name().len() + 3) * cw;
            if x + w > self.x + width && x > self.x {
                x = self.x;
                y += ch;
            }
            s.fill(x, y + ch / 4, ch / 2, ch / 2, f.encode(k.colour()));
            text(s, x + cw * 2 - cw / 2, y, k.name());
            x += w;
        }
        let mut line = alloc::string::String::new();
        let _ = core::fmt::write(
            &mut line,
            format_args!("1 square = {} KiB", self.frames_per_square * 4),
        );
        text(s, self.x, y + ch, &line);
    }
}
