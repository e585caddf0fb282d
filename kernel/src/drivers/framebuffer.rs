//! A text console on the loader's linear framebuffer, drawn with the
//! `noto-sans-mono-bitmap` font (16 px). Output mirrors the serial console.
//! Where characters go (cursor, wrapping, scrolling, escape sequences: ANSI
//! sequences are skipped, `ESC [ 2 J` clears the screen) is `vt::grid::Grid`,
//! tested on the host; this module only writes the pixels it asks for.

use crate::boot::FramebufferInfo;
use noto_sans_mono_bitmap::{get_raster, get_raster_width, FontWeight, RasterHeight};
use spin::Mutex;
use vt::grid::{Grid, Screen};

const HEIGHT: RasterHeight = RasterHeight::Size16;
const LINE: usize = 18;

/// The framebuffer's pixels, one text cell `char_w` x [`LINE`] pixels.
struct Pixels {
    base: *mut u32,
    width: usize,
    height: usize,
    stride: usize,
    char_w: usize,
}

struct Console {
    px: Pixels,
    grid: Grid,
}

// SAFETY: the framebuffer pointer is only used under the mutex below.
unsafe impl Send for Console {}

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

/// Starts the console on `fb`, mapped at `virt`.
pub fn init(fb: &FramebufferInfo, virt: u64) {
    let char_w = get_raster_width(FontWeight::Regular, HEIGHT);
    let px = Pixels {
        base: virt as *mut u32,
        width: fb.width as usize,
        height: fb.height as usize,
        stride: fb.pitch as usize / 4,
        char_w,
    };
    let mut c = Console {
        grid: Grid::new(px.width / char_w, px.height / LINE),
        px,
    };
    c.grid.clear(&mut c.px);
    *CONSOLE.lock() = Some(c);
}

/// Writes text.
pub fn write_str(s: &str) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        c.grid.write_str(s, &mut c.px);
    }
}

/// Clears the screen.
pub fn clear() {
    if let Some(c) = CONSOLE.lock().as_mut() {
        c.grid.clear(&mut c.px);
    }
}

impl Pixels {
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
}

impl Screen for Pixels {
    fn clear(&mut self) {
        for y in 0..self.height {
            for x in 0..self.width {
                self.pixel(x, y, 0);
            }
        }
    }
    fn scroll_up(&mut self) {
        let line_px = LINE * self.stride;
        let total = self.rows() * line_px;
        // SAFETY: both ranges lie inside the framebuffer mapping; copy handles
        // the overlap.
        unsafe {
            core::ptr::copy(self.base.add(line_px), self.base, total - line_px);
            core::ptr::write_bytes(self.base.add(total - line_px), 0, line_px);
        }
    }
    fn draw(&mut self, col: usize, row: usize, c: char) {
        let raster = get_raster(c, FontWeight::Regular, HEIGHT)
            .or_else(|| get_raster('?', FontWeight::Regular, HEIGHT));
        let (x0, y0) = (col * self.char_w, row * LINE);
        if let Some(r) = raster {
            for (dy, row) in r.raster().iter().enumerate() {
                for (dx, &v) in row.iter().enumerate() {
                    let v = v as u32;
                    self.pixel(x0 + dx, y0 + dy, (v << 16) | (v << 8) | v);
                }
            }
        }
    }
}
