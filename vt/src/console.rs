//! The framebuffer console's text and drawing state, free of hardware.
//!
//! [`TextConsole`] takes the kernel's output as it is printed and only records
//! it: characters and their colours go into a grid of cells (a ring of rows, so
//! a scroll costs one row), and what changed is marked. [`TextConsole::flush`]
//! then draws what changed on a [`Surface`]: scrolling since the last flush is
//! one copy of the pixel rows already drawn, then only the changed cells get
//! their glyphs, then the block cursor. The kernel flushes when the shell waits
//! for input, so a command's output costs the serial line almost nothing.
//!
//! Colours are chosen on the console side, from the text itself (the bytes sent
//! to the serial line never change): the `mm> ` prompt at the start of a line,
//! a line starting with `error:` (all of it, wrapped rows included), and
//! handles, a `#` followed by digits.
//!
//! [`Backlog`] keeps what was printed before the framebuffer was known, to be
//! replayed into the console once it is.

use crate::grid::{Grid, Screen};
use crate::render::{shades, Font, Ink, Palette, PixelFormat, Surface};
use alloc::vec;
use alloc::vec::Vec;

/// The cells: a ring of `rows` rows of `cols` cells, with what changed.
struct Cells {
    cols: usize,
    rows: usize,
    /// Index of screen row 0 in the ring.
    top: usize,
    ch: Vec<char>,
    ink: Vec<Ink>,
    dirty: Vec<bool>,
    row_dirty: Vec<bool>,
    /// Screen rows to paint with the background before their text is drawn.
    row_fill: Vec<bool>,
    /// Scrolls since the last flush.
    scrolled: usize,
    /// Scrolls ever: a cell's absolute row is its screen row plus this.
    scrolls: u64,
    /// The screen was cleared since the last flush.
    cleared: bool,
    /// Clears ever.
    clears: u64,
    /// The ink of the next character drawn.
    pen: Ink,
    /// Where the last character went: (column, absolute row).
    last: Option<(usize, u64)>,
}

impl Cells {
    fn index(&self, col: usize, row: usize) -> usize {
        ((self.top + row) % self.rows) * self.cols + col
    }

    fn set_ink(&mut self, col: usize, abs_row: u64, ink: Ink) {
        if abs_row < self.scrolls {
            return; // scrolled off
        }
        let row = (abs_row - self.scrolls) as usize;
        if row < self.rows && col < self.cols {
            let i = self.index(col, row);
            if self.ink[i] != ink {
                self.ink[i] = ink;
                self.dirty[i] = true;
                self.row_dirty[row] = true;
            }
        }
    }
}

impl Screen for Cells {
    fn clear(&mut self) {
        self.ch.fill(' ');
        self.ink.fill(Ink::Text);
        self.dirty.fill(false);
        self.row_dirty.fill(false);
        self.row_fill.fill(false);
        self.top = 0;
        self.scrolled = 0;
        self.cleared = true;
        self.clears += 1;
    }
    fn scroll_up(&mut self) {
        // The old top row becomes the new, blank, bottom row; the flush's pixel
        // copy and fill take care of the screen.
        let start = self.top * self.cols;
        self.ch[start..start + self.cols].fill(' ');
        self.ink[start..start + self.cols].fill(Ink::Text);
        self.dirty[start..start + self.cols].fill(false);
        self.row_dirty.remove(0);
        self.row_dirty.push(false);
        self.row_fill.remove(0);
        self.row_fill.push(false);
        self.top = (self.top + 1) % self.rows;
        self.scrolled += 1;
        self.scrolls += 1;
    }
    fn draw(&mut self, col: usize, row: usize, c: char) {
        let i = self.index(col, row);
        self.ch[i] = c;
        self.ink[i] = self.pen;
        self.dirty[i] = true;
        self.row_dirty[row] = true;
        self.last = Some((col, row as u64 + self.scrolls));
    }
}

/// What the colour rules know of the current line.
#[derive(Default)]
struct LineInk {
    /// Characters drawn on this line so far (up to 6 remembered).
    len: usize,
    prefix: [char; 6],
    at: [(usize, u64); 6],
    error: bool,
    /// A `#` just drawn, where.
    hash: Option<(usize, u64)>,
    /// Inside the digits of a handle.
    handle: bool,
}

/// A text console: cells, colours, cursor and what is left to draw.
pub struct TextConsole {
    /// The console's part of the surface: columns 0..width, all rows.
    width: usize,
    height: usize,
    grid: Grid,
    cells: Cells,
    line: LineInk,
    font: Font,
    palette: Palette,
    format: PixelFormat,
    /// Pixel values per coverage, per ink (in [`Ink::ALL`] order), then the cursor's.
    shades: Vec<[u32; 256]>,
    /// Where the cursor was drawn, if it is on the screen.
    drawn_cursor: Option<(usize, usize)>,
    /// Glyphs drawn so far (the cursor's included).
    glyphs: u64,
}

impl TextConsole {
    /// A console filling a `width` x `height` screen in `format`, with `font`.
    pub fn new(
        width: usize,
        height: usize,
        format: PixelFormat,
        font: Font,
        palette: Palette,
    ) -> Self {
        let (cw, ch) = font.cell();
        let (cols, rows) = ((width / cw).max(1), (height / ch).max(1));
        let mut shades_v: Vec<[u32; 256]> = Ink::ALL
            .iter()
            .map(|&i| shades(&format, palette.background, palette.ink(i)))
            .collect();
        shades_v.push(shades(&format, palette.text, palette.background));
        TextConsole {
            width,
            height,
            grid: Grid::new(cols, rows),
            cells: Cells {
                cols,
                rows,
                top: 0,
                ch: vec![' '; cols * rows],
                ink: vec![Ink::Text; cols * rows],
                dirty: vec![false; cols * rows],
                row_dirty: vec![false; rows],
                row_fill: vec![false; rows],
                scrolled: 0,
                scrolls: 0,
                cleared: true, // the first flush paints the background
                clears: 0,
                pen: Ink::Text,
                last: None,
            },
            line: LineInk::default(),
            font,
            palette,
            format,
            shades: shades_v,
            drawn_cursor: None,
            glyphs: 0,
        }
    }

    /// The same console on `width` x `height` pixels: the visible text is kept
    /// (rows cut to the new width, the bottom rows kept if there are fewer), and
    /// the next flush repaints the console's part of the surface.
    pub fn resize(&mut self, width: usize, height: usize) {
        let mut n = TextConsole::new(width, height, self.format, self.font, self.palette);
        let (cols, rows) = self.size();
        let (ncols, nrows) = n.size();
        let (_, crow) = self.cursor();
        let skip = (crow + 1).saturating_sub(nrows);
        for r in skip..rows.min(skip + nrows) {
            for c in 0..cols.min(ncols) {
                let (ch, ink) = self.cell(c, r);
                let i = n.cells.index(c, r - skip);
                n.cells.ch[i] = ch;
                n.cells.ink[i] = ink;
            }
        }
        let (ccol, _) = self.grid.cursor();
        n.grid.set_cursor(ccol.min(ncols), crow - skip);
        n.glyphs = self.glyphs;
        *self = n;
    }

    /// (columns, rows).
    pub fn size(&self) -> (usize, usize) {
        (self.cells.cols, self.cells.rows)
    }

    pub fn font(&self) -> Font {
        self.font
    }

    /// The cursor cell: (column, row), the column kept on the screen.
    pub fn cursor(&self) -> (usize, usize) {
        let (c, r) = self.grid.cursor();
        (c.min(self.cells.cols - 1), r)
    }

    /// The character and ink of cell (`col`, `row`).
    pub fn cell(&self, col: usize, row: usize) -> (char, Ink) {
        let i = self.cells.index(col, row);
        (self.cells.ch[i], self.cells.ink[i])
    }

    /// Whether a flush would draw anything.
    pub fn dirty(&self) -> bool {
        self.cells.cleared
            || self.cells.scrolled > 0
            || self.cells.row_dirty.iter().any(|&d| d)
            || self.drawn_cursor != Some(self.cursor())
    }

    /// Clears the screen (drawn at the next flush).
    pub fn clear(&mut self) {
        self.grid.clear(&mut self.cells);
        self.line = LineInk::default();
    }

    /// Records text.
    pub fn write_str(&mut self, s: &str) {
        for c in s.chars() {
            self.put(c);
        }
    }

    /// Records one character, with its colour.
    pub fn put(&mut self, c: char) {
        let l = &mut self.line;
        self.cells.pen = if l.error {
            Ink::Error
        } else if c.is_ascii_digit() && (l.hash.is_some() || l.handle) {
            Ink::Handle
        } else {
            Ink::Text
        };
        let clears = self.cells.clears;
        self.cells.last = None;
        self.grid.put(c, &mut self.cells);
        if c == '\n' || self.cells.clears != clears {
            self.line = LineInk::default();
            return;
        }
        let Some(at) = self.cells.last else { return };
        let l = &mut self.line;
        if l.len < 6 {
            l.prefix[l.len] = c;
            l.at[l.len] = at;
        }
        l.len += 1;
        let recolour = match l.len {
            4 if l.prefix[..4] == ['m', 'm', '>', ' '] => Some((4, Ink::Prompt)),
            6 if l.prefix == ['e', 'r', 'r', 'o', 'r', ':'] => {
                l.error = true;
                Some((6, Ink::Error))
            }
            _ => None,
        };
        if let Some((n, ink)) = recolour {
            let at = l.at;
            for &(col, row) in &at[..n] {
                self.cells.set_ink(col, row, ink);
            }
        }
        let l = &mut self.line;
        if c == '#' && !l.error {
            l.hash = Some(at);
            l.handle = false;
        } else if c.is_ascii_digit() && (l.hash.is_some() || l.handle) {
            l.handle = true;
            if let Some((col, row)) = l.hash.take() {
                self.cells.set_ink(col, row, Ink::Handle);
            }
        } else {
            l.hash = None;
            l.handle = false;
        }
    }

    /// Glyphs drawn since the console started (the cursor's included): what
    /// tests use to see that scrolling copies pixels instead of drawing again.
    pub fn glyphs_drawn(&self) -> u64 {
        self.glyphs
    }

    fn draw_cell<B: AsRef<[u8]> + AsMut<[u8]>>(
        &mut self,
        s: &mut Surface<B>,
        col: usize,
        row: usize,
        cursor: bool,
    ) {
        let (cw, chh) = self.font.cell();
        let (c, ink) = self.cell(col, row);
        let shade = if cursor {
            &self.shades[Ink::ALL.len()]
        } else {
            &self.shades[ink as usize]
        };
        s.blit(col * cw, row * chh, self.font.glyph(c), shade);
        self.glyphs += 1;
    }

    /// Draws on `s` what changed since the last flush.
    pub fn flush<B: AsRef<[u8]> + AsMut<[u8]>>(&mut self, s: &mut Surface<B>) {
        while !self.flush_step(s) {}
    }

    /// Draws one part of what changed: the scroll (one copy of the pixel rows)
    /// and one row of text, or at last the cursor. `true` once all is drawn.
    /// Text recorded between steps is fine: the next step takes it into account,
    /// so a caller can stop between steps to serve input and go on later.
    pub fn flush_step<B: AsRef<[u8]> + AsMut<[u8]>>(&mut self, s: &mut Surface<B>) -> bool {
        let (_, chh) = self.font.cell();
        let bg = self.format.encode(self.palette.background);
        let rows = self.cells.rows;
        if self.cells.cleared {
            // The area below the last text row never holds text: paint it once.
            let (w, h) = (self.width, self.height);
            s.fill(0, rows * chh, w, h.saturating_sub(rows * chh), bg);
            self.cells.cleared = false;
            self.cells.scrolled = 0;
            self.cells.row_fill.fill(true);
            self.cells.row_dirty.fill(true);
            self.drawn_cursor = None;
        } else if self.cells.scrolled > 0 {
            let n = self.cells.scrolled.min(rows);
            // The cursor block moves up with its row: redraw that cell.
            if let Some((c, r)) = self.drawn_cursor.take() {
                if r >= n {
                    self.mark(c, r - n);
                }
            }
            s.copy_up(n * chh, rows * chh, self.width);
            for r in rows - n..rows {
                self.cells.row_fill[r] = true;
                self.cells.row_dirty[r] = true;
            }
            self.cells.scrolled = 0;
        } else if let Some((c, r)) = self.drawn_cursor.take() {
            self.mark(c, r);
        }
        if let Some(row) = self.cells.row_dirty.iter().position(|&d| d) {
            let cols = self.cells.cols;
            let fill = self.cells.row_fill[row];
            if fill {
                s.fill(0, row * chh, self.width, chh, bg);
            }
            for col in 0..cols {
                let i = self.cells.index(col, row);
                if self.cells.dirty[i] || (fill && self.cells.ch[i] != ' ') {
                    self.draw_cell(s, col, row, false);
                }
                self.cells.dirty[i] = false;
            }
            self.cells.row_dirty[row] = false;
            self.cells.row_fill[row] = false;
            if self.cells.row_dirty.iter().any(|&d| d) {
                return false;
            }
        }
        let (c, r) = self.cursor();
        self.draw_cell(s, c, r, true);
        self.drawn_cursor = Some((c, r));
        true
    }

    fn mark(&mut self, col: usize, row: usize) {
        let i = self.cells.index(col, row);
        self.cells.dirty[i] = true;
        self.cells.row_dirty[row] = true;
    }
}

/// Text printed before the console exists: the first `N` bytes, then a count of
/// what did not fit.
pub struct Backlog<const N: usize> {
    buf: [u8; N],
    len: usize,
    lost: usize,
}

impl<const N: usize> Backlog<N> {
    pub const fn new() -> Self {
        Backlog {
            buf: [0; N],
            len: 0,
            lost: 0,
        }
    }

    /// Keeps `s`, or as much of it as fits (whole characters).
    pub fn push(&mut self, s: &str) {
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        self.lost += s.len() - take;
    }

    /// What was kept (whole characters, so always UTF-8).
    pub fn text(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Bytes that did not fit.
    pub fn lost(&self) -> usize {
        self.lost
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.len = 0;
        self.lost = 0;
    }
}

impl<const N: usize> Default for Backlog<N> {
    fn default() -> Self {
        Self::new()
    }
}
