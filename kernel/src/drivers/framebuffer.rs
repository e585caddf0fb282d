//! A text console on the loader's linear framebuffer, drawn with the
//! `noto-sans-mono-bitmap` font (16 px). Output mirrors the serial console; ANSI
//! escape sequences are skipped, `ESC [ 2 J` clears the screen.

use crate::boot::FramebufferInfo;
use noto_sans_mono_bitmap::{get_raster, get_raster_width, FontWeight, RasterHeight};
use spin::Mutex;

const HEIGHT: RasterHeight = RasterHeight::Size16;
const LINE: usize = 18;

struct Console {
    base: *mut u32,
    width: usize,
    height: usize,
    stride: usize,
    col: usize,
    row: usize,
    char_w: usize,
    esc: u8,
}

// SAFETY: the framebuffer pointer is only used under the mutex below.
unsafe impl Send for Console {}

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

/// Starts the console on `fb`, mapped at `virt`.
pub fn init(fb: &FramebufferInfo, virt: u64) {
    let char_w = get_raster_width(FontWeight::Regular, HEIGHT);
    let mut c = Console {
        base: virt as *mut u32,
        width: fb.width as usize,
        height: fb.height as usize,
        stride: fb.pitch as usize / 4,
        col: 0,
        row: 0,
        char_w,
        esc: 0,
    };
    c.clear();
    *CONSOLE.lock() = Some(c);
}

/// Writes text.
pub fn write_str(s: &str) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        for ch in s.chars() {
            c.put(ch);
        }
    }
}

/// Clears the screen.
pub fn clear() {
    if let Some(c) = CONSOLE.lock().as_mut() {
        c.clear();
    }
}

impl Console {
    fn cols(&self) -> usize {
        self.width / self.char_w
    }
    fn rows(&self) -> usize {
        self.height / LINE
    }
    fn pixel(&mut self, x: usize, y: usize, v: u32) {
        if x < self.width && y < self.height {
            // SAFETY: (x, y) is inside the framebuffer, whose mapping covers
            // stride * height pixels.
            unsafe { self.base.add(y * self.stride + x).write_volatile(v) }
        }
    }
    fn clear(&mut self) {
        for y in 0..self.height {
            for x in 0..self.width {
                self.pixel(x, y, 0);
            }
        }
        self.col = 0;
        self.row = 0;
    }
    fn scroll(&mut self) {
        let line_px = LINE * self.stride;
        let total = self.rows() * line_px;
        // SAFETY: both ranges lie inside the framebuffer mapping; copy handles
        // the overlap.
        unsafe {
            core::ptr::copy(self.base.add(line_px), self.base, total - line_px);
            core::ptr::write_bytes(self.base.add(total - line_px), 0, line_px);
        }
        self.row -= 1;
    }
    fn newline(&mut self) {
        self.col = 0;
        self.row += 1;
        if self.row >= self.rows() {
            self.scroll();
        }
    }
    fn put(&mut self, ch: char) {
        match (self.esc, ch) {
            (1, '[') => return self.esc = 2,
            (1, _) => return self.esc = 0,
            (2, 'J') => {
                self.esc = 0;
                return self.clear();
            }
            (2, c) if ('\x40'..='\x7e').contains(&c) => return self.esc = 0,
            (2, _) => return,
            _ => {}
        }
        match ch {
            '\x1b' => self.esc = 1,
            '\n' => self.newline(),
            '\r' => self.col = 0,
            '\x08' => self.col = self.col.saturating_sub(1),
            c if (c as u32) < 0x20 => {}
            c => {
                if self.col >= self.cols() {
                    self.newline();
                }
                let raster = get_raster(c, FontWeight::Regular, HEIGHT)
                    .or_else(|| get_raster('?', FontWeight::Regular, HEIGHT));
                let (x0, y0) = (self.col * self.char_w, self.row * LINE);
                if let Some(r) = raster {
                    for (dy, row) in r.raster().iter().enumerate() {
                        for (dx, &v) in row.iter().enumerate() {
                            let v = v as u32;
                            self.pixel(x0 + dx, y0 + dy, (v << 16) | (v << 8) | v);
                        }
                    }
                }
                self.col += 1;
            }
        }
    }
}
