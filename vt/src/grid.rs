//! The character grid of the framebuffer console: where the next character goes.
//!
//! [`Grid`] keeps the cursor of a `cols` x `rows` grid and tells a [`Screen`]
//! what to draw:
//! - a printable character is drawn at the cursor, which moves right; the line
//!   wraps lazily, when a character arrives after the last column (so a `\n`
//!   right after a full line moves down only once);
//! - `\n` moves to the start of the next row, `\r` to the start of this one,
//!   backspace (0x08) one column left without erasing (never past column 0);
//!   every other control character, tab included, is ignored;
//! - moving down from the last row scrolls the screen up one row;
//! - escape sequences are skipped: `ESC [` parameters and a final byte in
//!   `@`..`~`, or `ESC` and any one character; `ESC [ ... J` (as in `ESC [ 2 J`)
//!   clears the screen and homes the cursor.

/// What a grid draws on: the kernel's framebuffer, or a test's character array.
pub trait Screen {
    /// Blanks the whole screen.
    fn clear(&mut self);
    /// Moves every row up by one; the last row becomes blank.
    fn scroll_up(&mut self);
    /// Draws `ch` in the cell at column `col`, row `row`.
    fn draw(&mut self, col: usize, row: usize, ch: char);
}

/// Where in an escape sequence the grid is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Esc {
    None,
    /// After `ESC`.
    Start,
    /// After `ESC [`.
    Csi,
}

/// The cursor and escape state of a character grid.
#[derive(Clone, Debug)]
pub struct Grid {
    cols: usize,
    rows: usize,
    col: usize,
    row: usize,
    esc: Esc,
}

impl Grid {
    /// A grid of `cols` x `rows` cells with the cursor at the top left.
    pub const fn new(cols: usize, rows: usize) -> Self {
        Grid {
            cols,
            rows,
            col: 0,
            row: 0,
            esc: Esc::None,
        }
    }

    /// The cursor: (column, row). The column is `cols` after a full line.
    pub fn cursor(&self) -> (usize, usize) {
        (self.col, self.row)
    }

    /// Moves the cursor to (`col`, `row`), kept inside the grid.
    pub fn set_cursor(&mut self, col: usize, row: usize) {
        self.col = col.min(self.cols);
        self.row = row.min(self.rows - 1);
    }

    /// Clears the screen and homes the cursor.
    pub fn clear(&mut self, screen: &mut impl Screen) {
        screen.clear();
        self.col = 0;
        self.row = 0;
    }

    fn newline(&mut self, screen: &mut impl Screen) {
        self.col = 0;
        self.row += 1;
        if self.row >= self.rows {
            screen.scroll_up();
            self.row -= 1;
        }
    }

    /// Writes one character.
    pub fn put(&mut self, ch: char, screen: &mut impl Screen) {
        match (self.esc, ch) {
            (Esc::Start, '[') => return self.esc = Esc::Csi,
            (Esc::Start, _) => return self.esc = Esc::None,
            (Esc::Csi, 'J') => {
                self.esc = Esc::None;
                return self.clear(screen);
            }
            (Esc::Csi, c) if ('\x40'..='\x7e').contains(&c) => return self.esc = Esc::None,
            (Esc::Csi, _) => return,
            (Esc::None, _) => {}
        }
        match ch {
            '\x1b' => self.esc = Esc::Start,
            '\n' => self.newline(screen),
            '\r' => self.col = 0,
            '\x08' => self.col = self.col.saturating_sub(1),
            c if (c as u32) < 0x20 => {}
            c => {
                if self.col >= self.cols {
                    self.newline(screen);
                }
                screen.draw(self.col, self.row, c);
                self.col += 1;
            }
        }
    }

    /// Writes every character of `s`.
    pub fn write_str(&mut self, s: &str, screen: &mut impl Screen) {
        for ch in s.chars() {
            self.put(ch, screen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A screen of characters ('.' is blank) that counts scrolls and clears.
    struct Chars {
        cells: Vec<Vec<char>>,
        scrolls: usize,
        clears: usize,
    }

    impl Chars {
        fn new(cols: usize, rows: usize) -> Self {
            Chars {
                cells: vec![vec!['.'; cols]; rows],
                scrolls: 0,
                clears: 0,
            }
        }
        fn text(&self) -> Vec<String> {
            self.cells.iter().map(|r| r.iter().collect()).collect()
        }
    }

    impl Screen for Chars {
        fn clear(&mut self) {
            self.cells.iter_mut().for_each(|r| r.fill('.'));
            self.clears += 1;
        }
        fn scroll_up(&mut self) {
            self.cells.remove(0);
            let cols = self.cells[0].len();
            self.cells.push(vec!['.'; cols]);
            self.scrolls += 1;
        }
        fn draw(&mut self, col: usize, row: usize, ch: char) {
            self.cells[row][col] = ch;
        }
    }

    fn run(cols: usize, rows: usize, s: &str) -> (Grid, Chars) {
        let (mut g, mut c) = (Grid::new(cols, rows), Chars::new(cols, rows));
        g.write_str(s, &mut c);
        (g, c)
    }

    #[test]
    fn lines_wrap_lazily_at_the_last_column() {
        let (g, c) = run(4, 3, "abcdef");
        assert_eq!(c.text(), ["abcd", "ef..", "...."]);
        assert_eq!(g.cursor(), (2, 1));
        // A full line leaves the cursor past the end; '\n' then moves once.
        let (g, c) = run(4, 3, "abcd");
        assert_eq!(g.cursor(), (4, 0));
        let (g, c2) = run(4, 3, "abcd\nx");
        assert_eq!(c2.text(), ["abcd", "x...", "...."]);
        assert_eq!((g.cursor(), c.scrolls), ((1, 1), 0));
    }

    #[test]
    fn the_last_row_scrolls() {
        let (g, c) = run(3, 2, "one\ntwo\nsix");
        assert_eq!(c.text(), ["two", "six"]);
        assert_eq!((c.scrolls, g.cursor()), (1, (3, 1)));
        // Wrapping from the last row scrolls too.
        let (g, c) = run(2, 2, "abcdefg");
        assert_eq!(c.text(), ["ef", "g."]);
        assert_eq!((c.scrolls, g.cursor()), (2, (1, 1)));
        let (_, c) = run(2, 2, "\n\n\n\n");
        assert_eq!(c.scrolls, 3);
    }

    #[test]
    fn carriage_return_backspace_and_other_controls() {
        let (g, c) = run(6, 2, "hello\rj");
        assert_eq!(c.text()[0], "jello.");
        assert_eq!(g.cursor(), (1, 0));
        // Backspace moves left without erasing; the next character overwrites.
        let (g, c) = run(6, 2, "abc\x08\x08X");
        assert_eq!(c.text()[0], "aXc...");
        assert_eq!(g.cursor(), (2, 0));
        let (g, _) = run(6, 2, "a\x08\x08\x08");
        assert_eq!(g.cursor(), (0, 0), "never past column 0");
        // Tab, bell, NUL: the C0 controls are ignored; DEL is drawn.
        let (g, c) = run(6, 2, "a\tb\x07\x00c\x7f");
        assert_eq!(c.text()[0], "abc\x7f..");
        assert_eq!(g.cursor(), (4, 0));
    }

    #[test]
    fn escape_sequences_are_skipped_and_clear_clears() {
        let (g, c) = run(8, 2, "a\x1b[1;31mb\x1b[0mc\x1b[Hd");
        assert_eq!(c.text()[0], "abcd....");
        assert_eq!((g.cursor(), c.clears), ((4, 0), 0));
        let (g, c) = run(8, 2, "xy\nzz\x1b[2J\x1b[Hq");
        assert_eq!(c.text(), ["q.......", "........"]);
        assert_eq!((g.cursor(), c.clears), ((1, 0), 1));
        // ESC and one other character: both swallowed.
        let (_, c) = run(8, 2, "a\x1bXb");
        assert_eq!(c.text()[0], "ab......");
        // Non-final bytes inside `ESC [` are swallowed, even newlines.
        let (g, _) = run(8, 2, "\x1b[\n1\x1fZ");
        assert_eq!(g.cursor(), (0, 0));
    }

    #[test]
    fn clear_homes_the_cursor() {
        let (mut g, mut c) = run(3, 3, "abcd\nef");
        g.clear(&mut c);
        assert_eq!((g.cursor(), c.clears), ((0, 0), 1));
        assert!(c.text().iter().all(|r| r == "..."));
    }
}
