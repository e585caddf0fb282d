//! The line editor: turns the raw byte stream of a terminal into complete lines.
//!
//! [`LineEditor::feed`] takes one byte at a time and returns one [`Event`]: bytes to
//! echo, a finished line, a cancelled line, or nothing. It never panics and never
//! stores more than [`MAX_LINE`] bytes. Only printable ASCII (0x20..=0x7e) is stored;
//! a line that received anything else, or more than [`MAX_LINE`] bytes, is reported
//! as a [`LineError`] when it ends. Escape sequences are parsed to their end and either
//! acted on (arrows, Home, End, Delete) or swallowed, never inserted.
//! The editor owns the command [`History`] that Up/Down walk.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Longest line the editor stores, in bytes.
pub const MAX_LINE: usize = 256;
/// How many lines the history keeps.
pub const HISTORY_LEN: usize = 32;

/// Echo sequence that erases the character left of the cursor at the end of a line.
pub const ERASE_CHAR: &str = "\x08 \x08";

const BS: u8 = 0x08;
const DEL: u8 = 0x7f;
const CTRL_C: u8 = 0x03;
const CTRL_U: u8 = 0x15;
const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// What one fed byte produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing to do (byte stored silently, swallowed, or ignored).
    Nothing,
    /// Write these bytes back to the terminal (ASCII only).
    Echo(String),
    /// The line ended (CR or LF). The caller writes the newline.
    Line(Result<String, LineError>),
    /// Ctrl-C: the line is abandoned. The caller writes `^C` and a newline.
    Cancel,
}

/// Why a finished line cannot be run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// More than `max` bytes were typed; the excess was dropped.
    TooLong {
        /// The limit, [`MAX_LINE`].
        max: usize,
    },
    /// The line received this byte, which is neither printable ASCII nor an
    /// editing key (the first such byte is reported).
    NonPrintable(u8),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LineError::TooLong { max } => write!(f, "line too long (max {max} bytes)"),
            LineError::NonPrintable(b) => write!(f, "line contains non-printable byte {b:#04x}"),
        }
    }
}

/// The last [`HISTORY_LEN`] lines, oldest first, each with its number (counting
/// from 1 over the whole boot, like a shell's `history`).
///
/// Kept in fixed storage, not on the heap: the shell's own memory use must not
/// grow with the number of commands typed, so that `memstat` after `free all`
/// equals `memstat` right after boot.
#[derive(Clone)]
pub struct History {
    slots: [Slot; HISTORY_LEN],
    /// Index of the oldest entry.
    start: usize,
    /// Entries kept.
    len: usize,
    cap: usize,
    pushed: u64,
}

#[derive(Clone, Copy)]
struct Slot {
    n: u64,
    len: u16,
    text: [u8; MAX_LINE],
}

impl Slot {
    const EMPTY: Slot = Slot {
        n: 0,
        len: 0,
        text: [0; MAX_LINE],
    };
    fn as_str(&self) -> &str {
        // Only printable ASCII lines are recorded, so this never fails.
        core::str::from_utf8(&self.text[..self.len as usize]).unwrap_or("")
    }
}

impl core::fmt::Debug for History {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl History {
    /// An empty history keeping at most `cap` lines (at most [`HISTORY_LEN`]).
    pub fn new(cap: usize) -> History {
        History {
            slots: [Slot::EMPTY; HISTORY_LEN],
            start: 0,
            len: 0,
            cap: cap.min(HISTORY_LEN),
            pushed: 0,
        }
    }

    /// Records `line` unless it is blank or equal to the newest entry.
    /// Returns whether it was recorded. Lines longer than [`MAX_LINE`] bytes are
    /// cut (the editor never produces them).
    pub fn push(&mut self, line: &str) -> bool {
        if self.cap == 0 || line.trim().is_empty() || self.newest(0) == Some(line) {
            return false;
        }
        if self.len == self.cap {
            self.start = (self.start + 1) % self.cap;
            self.len -= 1;
        }
        self.pushed = self.pushed.saturating_add(1);
        let mut cut = line.len().min(MAX_LINE);
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        let slot = &mut self.slots[(self.start + self.len) % self.cap];
        slot.n = self.pushed;
        slot.len = cut as u16;
        slot.text[..cut].copy_from_slice(&line.as_bytes()[..cut]);
        self.len += 1;
        true
    }

    /// Number of lines kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no line is kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th newest line (0 = the last one entered).
    pub fn newest(&self, i: usize) -> Option<&str> {
        let back = i.checked_add(1)?;
        let idx = self.len.checked_sub(back)?;
        Some(self.slots[(self.start + idx) % self.cap.max(1)].as_str())
    }

    /// `(number, line)` pairs, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &str)> + '_ {
        (0..self.len).map(move |i| {
            let s = &self.slots[(self.start + i) % self.cap.max(1)];
            (s.n, s.as_str())
        })
    }
}

impl Default for History {
    fn default() -> History {
        History::new(HISTORY_LEN)
    }
}

/// The line being edited plus what went wrong with it so far.
#[derive(Clone, Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    cursor: usize,
    too_long: bool,
    bad: Option<u8>,
}

impl Buffer {
    fn from_history(s: &str) -> Buffer {
        let bytes: Vec<u8> = s.bytes().take(MAX_LINE).collect();
        Buffer {
            cursor: bytes.len(),
            bytes,
            too_long: false,
            bad: None,
        }
    }
}

/// Escape-sequence parser state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    /// Not in a sequence.
    Ground,
    /// After ESC.
    Start,
    /// After ESC [ : parameters until a final byte 0x40..=0x7e.
    Csi {
        /// First numeric parameter (saturating).
        param: u16,
        /// A `;` was seen: later digits belong to other parameters.
        more: bool,
        /// Private marker or intermediate byte seen: swallow without acting.
        odd: bool,
    },
    /// After ESC O: one final byte.
    Ss3,
    /// Inside a string sequence (OSC, DCS, ...) until BEL or ESC \.
    Str,
}

/// Keys the editor acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    Delete,
}

/// The line editor. Feed it every input byte; act on the returned [`Event`].
#[derive(Clone, Debug)]
pub struct LineEditor {
    line: Buffer,
    /// The line typed before Up was first pressed (restored by Down).
    draft: Option<Buffer>,
    /// Position in the history while browsing (0 = newest).
    browse: Option<usize>,
    esc: Esc,
    after_cr: bool,
    history: History,
}

impl Default for LineEditor {
    fn default() -> LineEditor {
        LineEditor::new()
    }
}

impl LineEditor {
    /// An empty editor with an empty history.
    pub fn new() -> LineEditor {
        LineEditor {
            line: Buffer::default(),
            draft: None,
            browse: None,
            esc: Esc::Ground,
            after_cr: false,
            history: History::default(),
        }
    }

    /// The lines entered so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The text of the line being edited (for tests and redraws).
    pub fn current(&self) -> String {
        self.line.bytes.iter().map(|&b| b as char).collect()
    }

    /// Processes one input byte.
    pub fn feed(&mut self, byte: u8) -> Event {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        if let Some(ev) = self.escape(byte) {
            return ev;
        }
        match byte {
            b'\r' => {
                self.after_cr = true;
                self.finish()
            }
            b'\n' if after_cr => Event::Nothing,
            b'\n' => self.finish(),
            BS | DEL => self.backspace(),
            CTRL_C => {
                self.reset();
                Event::Cancel
            }
            CTRL_U => self.kill_line(),
            ESC => {
                self.esc = Esc::Start;
                Event::Nothing
            }
            b'\t' => self.insert(b' '),
            0x20..=0x7e => self.insert(byte),
            _ => {
                self.line.bad.get_or_insert(byte);
                Event::Nothing
            }
        }
    }

    /// Runs the escape-sequence parser. `Some(event)` if the byte was consumed by
    /// it; `None` if the byte is ordinary input (possibly after aborting a sequence
    /// it could not belong to).
    fn escape(&mut self, byte: u8) -> Option<Event> {
        match self.esc {
            Esc::Ground => None,
            Esc::Start => match byte {
                b'[' => {
                    self.esc = Esc::Csi {
                        param: 0,
                        more: false,
                        odd: false,
                    };
                    Some(Event::Nothing)
                }
                b'O' => {
                    self.esc = Esc::Ss3;
                    Some(Event::Nothing)
                }
                b']' | b'P' | b'X' | b'^' | b'_' => {
                    self.esc = Esc::Str;
                    Some(Event::Nothing)
                }
                ESC => Some(Event::Nothing),
                0x20..=0x7e => {
                    // Alt-key or a two-byte sequence: swallow.
                    self.esc = Esc::Ground;
                    Some(Event::Nothing)
                }
                _ => {
                    self.esc = Esc::Ground;
                    None
                }
            },
            Esc::Csi { param, more, odd } => match byte {
                b'0'..=b'9' => {
                    let param = if more {
                        param
                    } else {
                        param
                            .saturating_mul(10)
                            .saturating_add(u16::from(byte - b'0'))
                    };
                    self.esc = Esc::Csi { param, more, odd };
                    Some(Event::Nothing)
                }
                b';' | b':' => {
                    self.esc = Esc::Csi {
                        param,
                        more: true,
                        odd,
                    };
                    Some(Event::Nothing)
                }
                0x20..=0x2f | 0x3c..=0x3f => {
                    self.esc = Esc::Csi {
                        param,
                        more,
                        odd: true,
                    };
                    Some(Event::Nothing)
                }
                0x40..=0x7e => {
                    self.esc = Esc::Ground;
                    let key = if odd { None } else { csi_key(byte, param) };
                    Some(key.map_or(Event::Nothing, |k| self.key(k)))
                }
                _ => {
                    self.esc = Esc::Ground;
                    None
                }
            },
            Esc::Ss3 => match byte {
                0x20..=0x7e => {
                    self.esc = Esc::Ground;
                    Some(ss3_key(byte).map_or(Event::Nothing, |k| self.key(k)))
                }
                _ => {
                    self.esc = Esc::Ground;
                    None
                }
            },
            Esc::Str => match byte {
                BEL => {
                    self.esc = Esc::Ground;
                    Some(Event::Nothing)
                }
                ESC => {
                    self.esc = Esc::Start;
                    Some(Event::Nothing)
                }
                b'\r' | b'\n' | CTRL_C => {
                    self.esc = Esc::Ground;
                    None
                }
                _ => Some(Event::Nothing),
            },
        }
    }

    fn key(&mut self, key: Key) -> Event {
        match key {
            Key::Up => self.history_prev(),
            Key::Down => self.history_next(),
            Key::Left => {
                if self.line.cursor == 0 {
                    return Event::Nothing;
                }
                self.line.cursor -= 1;
                echo_bytes(&[BS])
            }
            Key::Right => match self.line.bytes.get(self.line.cursor) {
                Some(&b) => {
                    self.line.cursor += 1;
                    echo_bytes(&[b])
                }
                None => Event::Nothing,
            },
            Key::Home => {
                let mut s = String::new();
                push_n(&mut s, '\x08', self.line.cursor);
                self.line.cursor = 0;
                echo(s)
            }
            Key::End => {
                let tail = self.line.bytes.get(self.line.cursor..).unwrap_or(&[]);
                let ev = echo_bytes(tail);
                self.line.cursor = self.line.bytes.len();
                ev
            }
            Key::Delete => {
                if self.line.cursor >= self.line.bytes.len() {
                    return Event::Nothing;
                }
                self.line.bytes.remove(self.line.cursor);
                echo(self.redraw_tail(1))
            }
        }
    }

    /// Echo that rewrites the text right of the cursor, blanks `erased` cells
    /// after it, and moves the cursor back.
    fn redraw_tail(&self, erased: usize) -> String {
        let tail = self.line.bytes.get(self.line.cursor..).unwrap_or(&[]);
        let mut s: String = tail.iter().map(|&b| b as char).collect();
        push_n(&mut s, ' ', erased);
        push_n(&mut s, '\x08', tail.len() + erased);
        s
    }

    fn insert(&mut self, byte: u8) -> Event {
        if self.line.too_long {
            return Event::Nothing;
        }
        if self.line.bytes.len() >= MAX_LINE {
            self.line.too_long = true;
            return Event::Nothing;
        }
        let at = self.line.cursor.min(self.line.bytes.len());
        self.line.bytes.insert(at, byte);
        self.line.cursor = at + 1;
        let mut s = String::new();
        s.push(byte as char);
        s.push_str(&self.redraw_tail(0));
        echo(s)
    }

    fn backspace(&mut self) -> Event {
        if self.line.cursor == 0 || self.line.bytes.is_empty() {
            return Event::Nothing;
        }
        self.line.cursor = self.line.cursor.min(self.line.bytes.len()) - 1;
        self.line.bytes.remove(self.line.cursor);
        let mut s = String::from("\x08");
        s.push_str(&self.redraw_tail(1));
        echo(s)
    }

    /// Echo that blanks the whole line on screen and leaves the cursor at its start.
    fn erase_echo(&self) -> String {
        let mut s = String::new();
        push_n(&mut s, '\x08', self.line.cursor);
        push_n(&mut s, ' ', self.line.bytes.len());
        push_n(&mut s, '\x08', self.line.bytes.len());
        s
    }

    fn kill_line(&mut self) -> Event {
        let s = self.erase_echo();
        self.reset();
        if s.is_empty() {
            Event::Nothing
        } else {
            echo(s)
        }
    }

    /// Replaces the line with `new` (cursor at its end) and redraws it.
    fn replace_line(&mut self, mut new: Buffer) -> Event {
        let mut s = self.erase_echo();
        new.cursor = new.bytes.len();
        s.extend(new.bytes.iter().map(|&b| b as char));
        self.line = new;
        echo(s)
    }

    fn history_prev(&mut self) -> Event {
        let next = match self.browse {
            None => 0,
            Some(i) => i + 1,
        };
        let Some(text) = self.history.newest(next) else {
            return Event::Nothing;
        };
        let new = Buffer::from_history(text);
        if self.browse.is_none() {
            self.draft = Some(self.line.clone());
        }
        self.browse = Some(next);
        self.replace_line(new)
    }

    fn history_next(&mut self) -> Event {
        match self.browse {
            None => Event::Nothing,
            Some(0) => {
                self.browse = None;
                let draft = self.draft.take().unwrap_or_default();
                self.replace_line(draft)
            }
            Some(i) => {
                self.browse = Some(i - 1);
                let new = Buffer::from_history(self.history.newest(i - 1).unwrap_or(""));
                self.replace_line(new)
            }
        }
    }

    /// Forgets the current line and any history browsing.
    fn reset(&mut self) {
        self.line = Buffer::default();
        self.draft = None;
        self.browse = None;
        self.esc = Esc::Ground;
    }

    fn finish(&mut self) -> Event {
        let line = core::mem::take(&mut self.line);
        self.reset();
        if line.too_long {
            return Event::Line(Err(LineError::TooLong { max: MAX_LINE }));
        }
        if let Some(b) = line.bad {
            return Event::Line(Err(LineError::NonPrintable(b)));
        }
        let text: String = line.bytes.iter().map(|&b| b as char).collect();
        self.history.push(&text);
        Event::Line(Ok(text))
    }
}

fn csi_key(fin: u8, param: u16) -> Option<Key> {
    match (fin, param) {
        (b'~', 1 | 7) => Some(Key::Home),
        (b'~', 4 | 8) => Some(Key::End),
        (b'~', 3) => Some(Key::Delete),
        (b'~', _) => None,
        _ => ss3_key(fin),
    }
}

fn ss3_key(fin: u8) -> Option<Key> {
    match fin {
        b'A' => Some(Key::Up),
        b'B' => Some(Key::Down),
        b'C' => Some(Key::Right),
        b'D' => Some(Key::Left),
        b'H' => Some(Key::Home),
        b'F' => Some(Key::End),
        _ => None,
    }
}

fn push_n(s: &mut String, c: char, n: usize) {
    s.extend(core::iter::repeat_n(c, n));
}

fn echo(s: String) -> Event {
    if s.is_empty() {
        Event::Nothing
    } else {
        Event::Echo(s)
    }
}

fn echo_bytes(b: &[u8]) -> Event {
    echo(b.iter().map(|&b| b as char).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input`; returns the concatenated echo and the list of line events.
    fn run(ed: &mut LineEditor, input: &[u8]) -> (String, Vec<Event>) {
        let mut echoed = String::new();
        let mut events = Vec::new();
        for &b in input {
            match ed.feed(b) {
                Event::Nothing => {}
                Event::Echo(s) => echoed.push_str(&s),
                ev => events.push(ev),
            }
        }
        (echoed, events)
    }

    fn ok(s: &str) -> Event {
        Event::Line(Ok(String::from(s)))
    }

    #[test]
    fn echoes_printable_and_ends_on_cr() {
        let mut ed = LineEditor::new();
        let (echo, ev) = run(&mut ed, b"help\r");
        assert_eq!(echo, "help");
        assert_eq!(ev, [ok("help")]);
    }

    #[test]
    fn crlf_counts_once_but_lf_lf_twice() {
        let mut ed = LineEditor::new();
        let (_, ev) = run(&mut ed, b"a\r\nb\n\nc\r\rd\n\r");
        assert_eq!(
            ev,
            [ok("a"), ok("b"), ok(""), ok("c"), ok(""), ok("d"), ok("")]
        );
    }

    #[test]
    fn backspace_and_delete_erase_one_char() {
        let mut ed = LineEditor::new();
        let (echo, ev) = run(&mut ed, b"abc\x08\x7fd\r");
        assert_eq!(echo, "abc\x08 \x08\x08 \x08d");
        assert_eq!(ev, [ok("ad")]);
        let (echo, ev) = run(&mut ed, b"\x08\x7fx\r");
        assert_eq!(echo, "x", "backspace on an empty line does nothing");
        assert_eq!(ev, [ok("x")]);
    }

    #[test]
    fn ctrl_u_clears_and_ctrl_c_cancels() {
        let mut ed = LineEditor::new();
        let (echo, ev) = run(&mut ed, b"abc\x15x\r");
        assert_eq!(echo, "abc\x08\x08\x08   \x08\x08\x08x");
        assert_eq!(ev, [ok("x")]);
        let (_, ev) = run(&mut ed, b"junk\x03ok\r");
        assert_eq!(ev, [Event::Cancel, ok("ok")]);
    }

    #[test]
    fn too_long_line_is_reported_once_and_editor_recovers() {
        let mut ed = LineEditor::new();
        let mut input = alloc::vec![b'x'; 10_000];
        input.push(b'\r');
        let (echo, ev) = run(&mut ed, &input);
        assert_eq!(echo.len(), MAX_LINE, "only stored bytes are echoed");
        assert_eq!(ev, [Event::Line(Err(LineError::TooLong { max: MAX_LINE }))]);
        let (_, ev) = run(&mut ed, b"ok\r");
        assert_eq!(ev, [ok("ok")]);
        assert_eq!(
            LineError::TooLong { max: MAX_LINE }.to_string(),
            "line too long (max 256 bytes)"
        );
    }

    #[test]
    fn exactly_max_line_is_fine() {
        let mut ed = LineEditor::new();
        let mut input = alloc::vec![b'y'; MAX_LINE];
        input.push(b'\n');
        let (_, ev) = run(&mut ed, &input);
        assert_eq!(
            ev,
            [Event::Line(Ok(
                core::iter::repeat_n('y', MAX_LINE).collect()
            ))]
        );
    }

    #[test]
    fn non_printable_bytes_flag_the_line() {
        let mut ed = LineEditor::new();
        let (echo, ev) = run(&mut ed, b"ab\x01c\xffd\r");
        assert_eq!(echo, "abcd");
        assert_eq!(ev, [Event::Line(Err(LineError::NonPrintable(0x01)))]);
        assert_eq!(
            LineError::NonPrintable(0xff).to_string(),
            "line contains non-printable byte 0xff"
        );
        assert_eq!(
            LineError::NonPrintable(0).to_string(),
            "line contains non-printable byte 0x00"
        );
        let (_, ev) = run(&mut ed, b"\x80\x15fine\r");
        assert_eq!(ev, [ok("fine")], "Ctrl-U forgets the bad byte");
    }

    #[test]
    fn tab_becomes_space() {
        let mut ed = LineEditor::new();
        let (_, ev) = run(&mut ed, b"a\tb\r");
        assert_eq!(ev, [ok("a b")]);
    }

    #[test]
    fn escape_sequences_are_swallowed() {
        let mut ed = LineEditor::new();
        // F5, PgUp, Ctrl-Left, mouse report, OSC title, Alt-x, SS3 P (F1), private CSI.
        let input = b"a\x1b[15~\x1b[5~\x1b[1;5D\x1b[<0;3;4M\x1b]0;title\x07\x1bx\x1bOP\x1b[?25hb\r";
        let (echo, ev) = run(&mut ed, input);
        assert_eq!(ev, [ok("ba")], "Ctrl-Left moved the cursor before 'a'");
        assert_eq!(echo, "a\x08ba\x08", "nothing else echoes");
        let (_, ev) = run(&mut ed, b"x\x1b]2;t\x1b\\y\r");
        assert_eq!(ev, [ok("xy")], "OSC ended by ESC \\");
    }

    #[test]
    fn control_byte_aborts_escape_and_is_processed() {
        let mut ed = LineEditor::new();
        let (_, ev) = run(&mut ed, b"a\x1b[12\rb\x1b\rc\x1bO\r");
        assert_eq!(ev, [ok("a"), ok("b"), ok("c")]);
        let (_, ev) = run(&mut ed, b"q\x1b[1\x03");
        assert_eq!(ev, [Event::Cancel]);
    }

    #[test]
    fn history_arrows_walk_and_restore_draft() {
        let mut ed = LineEditor::new();
        run(&mut ed, b"one\rtwo\rtwo\r\r");
        assert_eq!(
            ed.history().len(),
            2,
            "no duplicate of the last, no blank lines"
        );
        let (echo, _) = run(&mut ed, b"dr\x1b[A");
        assert_eq!(echo, "dr\x08\x08  \x08\x08two");
        assert_eq!(ed.current(), "two");
        run(&mut ed, b"\x1bOA");
        assert_eq!(ed.current(), "one");
        run(&mut ed, b"\x1b[A");
        assert_eq!(ed.current(), "one", "stops at the oldest");
        run(&mut ed, b"\x1b[B");
        assert_eq!(ed.current(), "two");
        run(&mut ed, b"\x1b[B");
        assert_eq!(ed.current(), "dr", "draft restored");
        run(&mut ed, b"\x1b[B");
        assert_eq!(ed.current(), "dr");
        let (_, ev) = run(&mut ed, b"\x1b[A\x1b[A!\r");
        assert_eq!(ev, [ok("one!")]);
    }

    #[test]
    fn history_is_bounded_and_numbered() {
        let mut h = History::new(3);
        for i in 0..5 {
            h.push(&alloc::format!("c{i}"));
        }
        let got: Vec<(u64, &str)> = h.iter().collect();
        assert_eq!(got, [(3, "c2"), (4, "c3"), (5, "c4")]);
        assert_eq!(h.newest(0), Some("c4"));
        assert_eq!(h.newest(3), None);
        assert_eq!(h.newest(usize::MAX), None);
        let mut zero = History::new(0);
        assert!(!zero.push("x"));
    }

    #[test]
    fn cursor_movement_inserts_and_deletes_mid_line() {
        let mut ed = LineEditor::new();
        let (echo, _) = run(&mut ed, b"ac\x1b[Db");
        assert_eq!(echo, "ac\x08bc\x08");
        assert_eq!(ed.current(), "abc");
        run(&mut ed, b"\x1b[H\x1b[3~");
        assert_eq!(ed.current(), "bc");
        run(&mut ed, b"\x1b[F\x7f");
        assert_eq!(ed.current(), "b");
        run(&mut ed, b"\x1b[1~X\x1b[4~Y\x1b[C\x1b[C");
        assert_eq!(ed.current(), "XbY");
        let (_, ev) = run(&mut ed, b"\x1b[D\x1b[D\x08\r");
        assert_eq!(ev, [ok("bY")]);
    }
}
