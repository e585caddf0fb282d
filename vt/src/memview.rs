//! The live picture of physical memory: one small square per group of page
//! frames, coloured by what the frames are (hole, reserved, free by zone,
//! cached, allocated, slab), one labelled band per zone, and a legend that
//! names every colour and states the scale. Free of hardware: the kernel walks
//! its `mem_map` into a [`Picture`] and [`MemView::draw`] paints the squares
//! whose colour changed since the last time, on the right part of the screen.
//!
//! The layout: each zone starts a band of its own, under a text row with its
//! name and physical range (as `regions` prints ranges) and a line to the right edge (the zone boundary). Inside a
//! band, squares go left to right, top to bottom, from the zone's first frame.
//! Text (labels, legend) sits on the console's cell grid, so a test reads it
//! back with `render::Reader` like any other text on the screen.
//!
//! The scale: the fewest frames per square (a power of two) such that squares
//! of at least [`MIN_SIDE`] pixels (a 1-px gap between them, so single squares
//! can be told apart) fit; then squares as large as fit, up to 16 px.

use crate::render::{shades, Font, Palette, Rgb, Surface};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// The smallest square, in pixels (3 px of colour, 1 px of gap).
pub const MIN_SIDE: usize = 4;
/// The largest square, in pixels.
pub const MAX_SIDE: usize = 16;

/// What a square shows, least significant first: a square of several frames
/// shows the most significant kind among them, so one allocated page in a
/// square of free ones stays visible (slab > allocated > cached > free >
/// reserved > hole).
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub enum Kind {
    /// No RAM at these addresses (a gap in the firmware's memory map).
    Hole,
    /// RAM the allocator does not manage (firmware, kernel image, mem_map).
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
    pub const ALL: [Kind; 8] = [
        Kind::Hole,
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
            Kind::Hole => Rgb::new(0x24, 0x24, 0x24),
            Kind::Reserved => Rgb::new(0x70, 0x70, 0x70),
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
            Kind::Hole => "hole",
            Kind::Reserved => "reserved",
            Kind::FreeDma => "free DMA",
            Kind::FreeNormal => "free NORMAL",
            Kind::FreeUnmapped => "free UNMAPPED",
            Kind::Cached => "cached",
            Kind::Allocated => "allocated",
            Kind::Slab => "slab",
        }
    }

    /// Whether this is the free colour of a zone.
    pub fn is_free(self) -> bool {
        matches!(self, Kind::FreeDma | Kind::FreeNormal | Kind::FreeUnmapped)
    }
}

/// One zone's frames `[start, end)`, drawn as a band of its own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Band {
    /// The zone's name (`DMA`).
    pub name: &'static str,
    /// The zone's free colour.
    pub free: Kind,
    pub start: u64,
    pub end: u64,
}

/// Where a band's squares are: its frames, the index of its first square in
/// the picture, and the grid row its squares start on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Placed {
    band: Band,
    first: usize,
    squares: usize,
    label_y: usize,
    top: usize,
}

/// What every square shows: built from runs of frames.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Picture {
    frames_per_square: u64,
    /// (start frame, end frame, first square) of each band.
    bands: Vec<(u64, u64, usize)>,
    squares: Vec<Kind>,
}

impl Picture {
    /// Squares of `frames_per_square` frames over `bands` (each band starts a
    /// square of its own), all holes.
    pub fn new(bands: &[Band], frames_per_square: u64) -> Picture {
        let f = frames_per_square.max(1);
        let mut first = 0;
        let bands: Vec<(u64, u64, usize)> = bands
            .iter()
            .map(|b| {
                let at = first;
                first += (b.end.saturating_sub(b.start)).div_ceil(f) as usize;
                (b.start, b.end, at)
            })
            .collect();
        Picture {
            frames_per_square: f,
            bands,
            squares: vec![Kind::Hole; first],
        }
    }

    /// Frames `first .. first + n` are `kind` (frames outside every band are
    /// ignored).
    pub fn add(&mut self, first: u64, n: u64, kind: Kind) {
        let f = self.frames_per_square;
        let end = first + n.max(1);
        for &(s, e, at) in &self.bands {
            let (a, b) = (first.max(s), end.min(e));
            if a >= b {
                continue;
            }
            for i in (a - s) / f..=(b - 1 - s) / f {
                let q = &mut self.squares[at + i as usize];
                *q = (*q).max(kind);
            }
        }
    }

    /// The square holding `frame`, if a band has it.
    pub fn square_of(&self, frame: u64) -> Option<usize> {
        self.bands
            .iter()
            .find(|&&(s, e, _)| s <= frame && frame < e)
            .map(|&(s, _, at)| at + ((frame - s) / self.frames_per_square) as usize)
    }

    pub fn squares(&self) -> &[Kind] {
        &self.squares
    }
}

/// Draws `t` in text cells from (`x`, `y`) on a background-filled strip.
pub(crate) fn text_at<B: AsRef<[u8]> + AsMut<[u8]>>(
    s: &mut Surface<B>,
    x: usize,
    y: usize,
    t: &str,
    font: Font,
    sh: &[u32; 256],
) {
    let (cw, ch) = font.cell();
    s.fill(x, y, t.chars().count() * cw, ch, sh[0]);
    for (i, c) in t.chars().enumerate() {
        s.blit(x + i * cw, y, font.glyph(c), sh);
    }
}

/// `bytes` as `16 MiB`, `2 GiB`, `640 KiB`.
pub fn size_text(bytes: u64) -> String {
    let (v, unit) = if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        (bytes >> 30, "GiB")
    } else if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        (bytes >> 20, "MiB")
    } else {
        (bytes >> 10, "KiB")
    };
    alloc::format!("{v} {unit}")
}

/// The legend's lines for `bands` at `frames_per_square`, each at most
/// `cols` characters: the entries are (colour, name) pairs.
fn legend_lines(bands: &[Band], fps: u64, cols: usize) -> (Vec<Vec<Kind>>, [String; 2]) {
    let mut lines: Vec<Vec<Kind>> = vec![Vec::new()];
    let mut used = 0;
    for k in Kind::ALL {
        if k.is_free() && !bands.iter().any(|b| b.free == k) {
            continue;
        }
        let w = k.name().len() + 4;
        if used + w > cols && used > 0 {
            lines.push(Vec::new());
            used = 0;
        }
        if let Some(l) = lines.last_mut() {
            l.push(k);
        }
        used += w;
    }
    let scale = alloc::format!(
        "1 square = {fps} frame{} = {}",
        if fps == 1 { "" } else { "s" },
        size_text(fps * 4096)
    );
    let rule = String::from("shows: slab>allocated>cached>free>reserved>hole");
    (lines, [scale, rule])
}

/// The view's place on the screen and what it last drew.
pub struct MemView {
    x: usize,
    y: usize,
    cols: usize,
    side: usize,
    frames_per_square: u64,
    placed: Vec<Placed>,
    legend_y: usize,
    width: usize,
    drawn: Vec<Option<Kind>>,
    frame_drawn: bool,
}

impl MemView {
    /// A view of the zones `bands` in the `w` x `h` rectangle at (`x`, `y`)
    /// (put `x` and `y` on the text cell grid of `font` so its text reads back
    /// as text), with a band label per zone and a legend below. See the
    /// module documentation for the scale.
    pub fn new(x: usize, y: usize, w: usize, h: usize, bands: &[Band], font: Font) -> MemView {
        let (cw, ch) = font.cell();
        let cols_text = (w / cw).max(1);
        let frames: u64 = bands.iter().map(|b| b.end.saturating_sub(b.start)).sum();
        // Legend: its colour lines plus the scale and the rule, and a gap row.
        let (lines, _) = legend_lines(bands, 1, cols_text);
        let legend_h = (lines.len() + 3) * ch;
        let labels_h = bands.len() * ch;
        let area_h = h.saturating_sub(legend_h + labels_h);
        // Rows a band needs at `cols` squares per row, rounded so the next
        // label stays on the cell grid.
        let rows_of = |b: &Band, fps: u64, cols: usize| -> usize {
            (b.end.saturating_sub(b.start))
                .div_ceil(fps)
                .div_ceil(cols as u64) as usize
        };
        let height = |fps: u64, side: usize| -> usize {
            let cols = (w / side).max(1);
            bands
                .iter()
                .map(|b| (rows_of(b, fps, cols) * side).next_multiple_of(ch))
                .sum()
        };
        let mut fps = 1u64;
        while height(fps, MIN_SIDE) > area_h && fps < frames.max(1) {
            fps *= 2;
        }
        let mut side = MIN_SIDE;
        while side < MAX_SIDE && height(fps, side + 1) <= area_h {
            side += 1;
        }
        let cols = (w / side).max(1);
        let mut placed = Vec::new();
        let (mut first, mut at) = (0usize, y);
        for b in bands {
            let squares = (b.end.saturating_sub(b.start)).div_ceil(fps) as usize;
            placed.push(Placed {
                band: *b,
                first,
                squares,
                label_y: at,
                top: at + ch,
            });
            first += squares;
            at += ch + (rows_of(b, fps, cols) * side).next_multiple_of(ch);
        }
        MemView {
            x,
            y,
            cols,
            side,
            frames_per_square: fps,
            placed,
            legend_y: at + ch,
            width: w,
            drawn: vec![None; first],
            frame_drawn: false,
        }
    }

    /// Frames per square (a power of two).
    pub fn frames_per_square(&self) -> u64 {
        self.frames_per_square
    }

    /// Squares per row, all squares, and the side of one in pixels.
    pub fn grid(&self) -> (usize, usize, usize) {
        (self.cols, self.drawn.len(), self.side)
    }

    /// The top of the legend (a multiple of the cell height from `y`).
    pub fn legend_y(&self) -> usize {
        self.legend_y
    }

    /// The label row of each band: (y of its text row, its text).
    pub fn labels(&self) -> Vec<(usize, String)> {
        self.placed
            .iter()
            .map(|p| (p.label_y, Self::label(&p.band)))
            .collect()
    }

    fn label(b: &Band) -> String {
        alloc::format!(
            "{} {:08x}-{:08x}",
            b.name,
            b.start * 4096,
            (b.end * 4096).saturating_sub(1)
        )
    }

    /// Each legend entry: its kind and a pixel inside its colour swatch.
    pub fn legend_swatches(&self, font: Font) -> Vec<(Kind, (usize, usize))> {
        let (cw, ch) = font.cell();
        let bands: Vec<Band> = self.placed.iter().map(|p| p.band).collect();
        let (lines, _) = legend_lines(&bands, self.frames_per_square, self.width / cw);
        let mut out = Vec::new();
        for (row, l) in lines.iter().enumerate() {
            let mut col = 0;
            for (i, k) in l.iter().enumerate() {
                if i > 0 {
                    col += 2;
                }
                out.push((
                    *k,
                    (
                        self.x + col * cw + cw / 2,
                        self.legend_y + row * ch + ch / 2,
                    ),
                ));
                col += 2 + k.name().len();
            }
        }
        out
    }

    /// The legend's text lines below the colours: the scale and the rule.
    pub fn legend_notes(&self) -> [String; 2] {
        let bands: Vec<Band> = self.placed.iter().map(|p| p.band).collect();
        legend_lines(&bands, self.frames_per_square, usize::MAX).1
    }

    /// An empty picture for this view.
    pub fn picture(&self) -> Picture {
        let bands: Vec<Band> = self.placed.iter().map(|p| p.band).collect();
        Picture::new(&bands, self.frames_per_square)
    }

    /// The top-left pixel of square `i`.
    pub fn square_at(&self, i: usize) -> (usize, usize) {
        let p = self
            .placed
            .iter()
            .rev()
            .find(|p| p.first <= i)
            .copied()
            .unwrap_or(Placed {
                band: Band {
                    name: "",
                    free: Kind::Hole,
                    start: 0,
                    end: 0,
                },
                first: 0,
                squares: 0,
                label_y: self.y,
                top: self.y,
            });
        let j = i - p.first;
        (
            self.x + (j % self.cols) * self.side,
            p.top + (j / self.cols) * self.side,
        )
    }

    /// The top-left pixel of the square holding `frame`, if a band has it.
    pub fn frame_at(&self, frame: u64) -> Option<(usize, usize)> {
        let p = self
            .placed
            .iter()
            .find(|p| p.band.start <= frame && frame < p.band.end)?;
        Some(self.square_at(p.first + ((frame - p.band.start) / self.frames_per_square) as usize))
    }

    /// Forgets what was drawn (the screen was cleared).
    pub fn invalidate(&mut self) {
        self.drawn.fill(None);
        self.frame_drawn = false;
    }

    /// Paints the squares of `p` that changed, and the labels and legend the
    /// first time; returns how many squares were painted.
    pub fn draw<B: AsRef<[u8]> + AsMut<[u8]>>(
        &mut self,
        s: &mut Surface<B>,
        p: &Picture,
        font: Font,
        palette: &Palette,
    ) -> usize {
        let f = s.format();
        if !self.frame_drawn {
            self.labels_and_legend(s, font, palette);
            self.frame_drawn = true;
        }
        // A 1-px gap between squares shows the grid.
        let fill = self.side - 1;
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

    fn labels_and_legend<B: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        s: &mut Surface<B>,
        font: Font,
        palette: &Palette,
    ) {
        let f = s.format();
        let (cw, ch) = font.cell();
        let sh = shades(&f, palette.background, palette.text);
        let line = f.encode(palette.text);
        let right = self.x + (self.width / cw) * cw;
        // Zone boundaries: the band's label, then a line to the right edge.
        for p in &self.placed {
            let t = Self::label(&p.band);
            text_at(s, self.x, p.label_y, &t, font, &sh);
            let lx = self.x + (t.len() + 1) * cw;
            if lx < right {
                s.fill(lx, p.label_y + ch / 2, right - lx, 1, line);
            }
        }
        let bands: Vec<Band> = self.placed.iter().map(|p| p.band).collect();
        let (lines, extra) = legend_lines(&bands, self.frames_per_square, self.width / cw);
        let mut y = self.legend_y;
        for l in &lines {
            let mut col = 0;
            for (i, k) in l.iter().enumerate() {
                if i > 0 {
                    col += 2;
                }
                let x = self.x + col * cw;
                s.fill(x, y, 2 * cw, ch, sh[0]);
                s.fill(x + 1, y + ch / 4, cw, ch / 2, f.encode(k.colour()));
                text_at(s, x + 2 * cw, y, k.name(), font, &sh);
                col += 2 + k.name().len();
            }
            y += ch;
        }
        for t in extra {
            text_at(s, self.x, y, &t, font, &sh);
            y += ch;
        }
    }
}
