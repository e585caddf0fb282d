//! Pixels: the framebuffer's pixel format, a [`Surface`] of pixels in that
//! format (the kernel's framebuffer, or a `Vec<u8>` in tests), the console font
//! (`noto-sans-mono-bitmap`, its size chosen from the resolution) and the colours.
//!
//! A loader reports a linear framebuffer as a bit depth and, per colour, a mask
//! size and shift (Limine's `red_mask_size`/`red_mask_shift`, VBE's and UEFI GOP's
//! pixel masks). [`PixelFormat`] encodes an RGB colour into such a pixel, for 16,
//! 24 and 32 bits per pixel, stored little-endian as every PC framebuffer is.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use noto_sans_mono_bitmap::{get_raster, get_raster_width, FontWeight, RasterHeight};

/// An 8-bit-per-channel colour.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Rgb {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Rgb {
    pub const fn new(r: u8, g: u8, b: u8) -> Rgb {
        Rgb { r, g, b }
    }

    /// `self` blended toward `fg` by `alpha`/255 (a glyph's anti-aliased edge).
    pub fn blend(self, fg: Rgb, alpha: u8) -> Rgb {
        let mix = |b: u8, f: u8| {
            let (b, f, a) = (b as u32, f as u32, alpha as u32);
            ((b * (255 - a) + f * a + 127) / 255) as u8
        };
        Rgb::new(mix(self.r, fg.r), mix(self.g, fg.g), mix(self.b, fg.b))
    }
}

/// Where one colour lives in a pixel: `size` bits starting at bit `shift`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Channel {
    pub size: u8,
    pub shift: u8,
}

impl Channel {
    pub const fn new(size: u8, shift: u8) -> Channel {
        Channel { size, shift }
    }
    fn mask(self) -> u32 {
        (((1u64 << self.size) - 1) << self.shift) as u32
    }
    fn encode(self, v: u8) -> u32 {
        ((v as u32) >> (8 - self.size)) << self.shift
    }
    fn decode(self, px: u32) -> u8 {
        let v = (px >> self.shift) & ((1 << self.size) - 1);
        // Replicate the high bits into the low ones, so full scale stays 255.
        let mut out = v << (8 - self.size);
        let mut have = self.size as u32;
        while have < 8 {
            out |= out >> have;
            have *= 2;
        }
        out as u8
    }
}

/// A framebuffer's pixel layout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PixelFormat {
    /// Bits per pixel: 16, 24 or 32.
    pub bpp: u8,
    pub red: Channel,
    pub green: Channel,
    pub blue: Channel,
}

/// Why a reported pixel format cannot be drawn on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FormatError {
    /// Not 16, 24 or 32 bits per pixel.
    Bpp(u8),
    /// A channel is empty, wider than 8 bits, outside the pixel, or overlaps another.
    Channel(&'static str),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Bpp(b) => write!(f, "{b} bits per pixel (16, 24 or 32 supported)"),
            FormatError::Channel(c) => write!(
                f,
                "the {c} mask is not 1 to 8 bits inside the pixel, apart from the others"
            ),
        }
    }
}

impl PixelFormat {
    /// 32 bpp, `0x00RRGGBB` (QEMU's standard VGA, most UEFI GOPs).
    pub const XRGB8888: PixelFormat = PixelFormat {
        bpp: 32,
        red: Channel::new(8, 16),
        green: Channel::new(8, 8),
        blue: Channel::new(8, 0),
    };
    /// 32 bpp, `0x00BBGGRR`.
    pub const XBGR8888: PixelFormat = PixelFormat {
        bpp: 32,
        red: Channel::new(8, 0),
        green: Channel::new(8, 8),
        blue: Channel::new(8, 16),
    };
    /// 24 bpp, bytes B, G, R.
    pub const RGB888: PixelFormat = PixelFormat {
        bpp: 24,
        red: Channel::new(8, 16),
        green: Channel::new(8, 8),
        blue: Channel::new(8, 0),
    };
    /// 16 bpp, 5-6-5.
    pub const RGB565: PixelFormat = PixelFormat {
        bpp: 16,
        red: Channel::new(5, 11),
        green: Channel::new(6, 5),
        blue: Channel::new(5, 0),
    };

    /// A format from a loader's numbers, checked.
    pub fn new(bpp: u8, red: Channel, green: Channel, blue: Channel) -> Result<Self, FormatError> {
        if !matches!(bpp, 16 | 24 | 32) {
            return Err(FormatError::Bpp(bpp));
        }
        let mut used = 0u32;
        for (name, c) in [("red", red), ("green", green), ("blue", blue)] {
            if c.size == 0 || c.size > 8 || c.shift as u32 + c.size as u32 > bpp as u32 {
                return Err(FormatError::Channel(name));
            }
            if used & c.mask() != 0 {
                return Err(FormatError::Channel(name));
            }
            used |= c.mask();
        }
        Ok(PixelFormat {
            bpp,
            red,
            green,
            blue,
        })
    }

    /// Bytes per pixel.
    pub fn bytes(&self) -> usize {
        self.bpp as usize / 8
    }

    /// The pixel value of `c`.
    pub fn encode(&self, c: Rgb) -> u32 {
        self.red.encode(c.r) | self.green.encode(c.g) | self.blue.encode(c.b)
    }

    /// The colour of pixel value `px` (exact for colours this format can hold).
    pub fn decode(&self, px: u32) -> Rgb {
        Rgb::new(
            self.red.decode(px),
            self.green.decode(px),
            self.blue.decode(px),
        )
    }
}

impl fmt::Display for PixelFormat {
    /// `32bpp r8@16 g8@8 b8@0`: size and shift of each mask.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}bpp r{}@{} g{}@{} b{}@{}",
            self.bpp,
            self.red.size,
            self.red.shift,
            self.green.size,
            self.green.shift,
            self.blue.size,
            self.blue.shift
        )
    }
}

/// Why a buffer cannot be a surface.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SurfaceError {
    /// The pitch is shorter than a row of pixels.
    Pitch,
    /// The buffer is shorter than `pitch * height`.
    Short,
}

/// A rectangle of pixels in memory: `height` rows of `pitch` bytes.
pub struct Surface<B> {
    buf: B,
    width: usize,
    height: usize,
    pitch: usize,
    format: PixelFormat,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Surface<B> {
    /// A surface over `buf`.
    pub fn new(
        buf: B,
        width: usize,
        height: usize,
        pitch: usize,
        format: PixelFormat,
    ) -> Result<Self, SurfaceError> {
        if pitch < width * format.bytes() {
            return Err(SurfaceError::Pitch);
        }
        if buf.as_ref().len() < pitch * height {
            return Err(SurfaceError::Short);
        }
        Ok(Surface {
            buf,
            width,
            height,
            pitch,
            format,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }
    pub fn height(&self) -> usize {
        self.height
    }
    pub fn pitch(&self) -> usize {
        self.pitch
    }
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// The bytes, `pitch` per row.
    pub fn bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// The pixel value at (`x`, `y`); 0 outside.
    pub fn pixel(&self, x: usize, y: usize) -> u32 {
        if x >= self.width || y >= self.height {
            return 0;
        }
        let n = self.format.bytes();
        let o = y * self.pitch + x * n;
        let mut v = [0u8; 4];
        v[..n].copy_from_slice(&self.buf.as_ref()[o..o + n]);
        u32::from_le_bytes(v)
    }

    /// The colour at (`x`, `y`).
    pub fn rgb(&self, x: usize, y: usize) -> Rgb {
        self.format.decode(self.pixel(x, y))
    }

    /// Sets the pixel at (`x`, `y`) to value `px` (nothing outside).
    pub fn put(&mut self, x: usize, y: usize, px: u32) {
        if x < self.width && y < self.height {
            let n = self.format.bytes();
            let o = y * self.pitch + x * n;
            self.buf.as_mut()[o..o + n].copy_from_slice(&px.to_le_bytes()[..n]);
        }
    }

    /// Fills a rectangle (clipped) with pixel value `px`.
    pub fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, px: u32) {
        let (x1, y1) = ((x + w).min(self.width), (y + h).min(self.height));
        if x >= x1 || y >= y1 {
            return;
        }
        let n = self.format.bytes();
        let bytes = px.to_le_bytes();
        let (pitch, buf) = (self.pitch, self.buf.as_mut());
        // One line pixel by pixel, the others copied from it (a memcpy moves
        // many bytes per instruction).
        let (start, end) = (y * pitch + x * n, y * pitch + x1 * n);
        for p in buf[start..end].chunks_exact_mut(n) {
            p.copy_from_slice(&bytes[..n]);
        }
        for row in y + 1..y1 {
            buf.copy_within(start..end, row * pitch + x * n);
        }
    }

    /// Moves pixel rows `[by, end)` up to `[0, end - by)`, only the first `width`
    /// pixels of each: scrolling copies the pixels already drawn instead of
    /// drawing their glyphs again.
    pub fn copy_up(&mut self, by: usize, end: usize, width: usize) {
        let end = end.min(self.height);
        if by == 0 || by >= end {
            return;
        }
        let (pitch, n) = (self.pitch, self.format.bytes());
        let buf = self.buf.as_mut();
        if width >= self.width {
            buf.copy_within(by * pitch..end * pitch, 0);
        } else {
            for y in by..end {
                buf.copy_within(y * pitch..y * pitch + width * n, (y - by) * pitch);
            }
        }
    }

    /// Draws an 8-bit coverage `raster` with its top left at (`x`, `y`), each
    /// coverage value through `shades` (pixel values for 0..=255), clipped.
    pub fn blit(&mut self, x: usize, y: usize, raster: &[&[u8]], shades: &[u32; 256]) {
        let n = self.format.bytes();
        let (w, h, pitch) = (self.width, self.height, self.pitch);
        let buf = self.buf.as_mut();
        for (dy, row) in raster.iter().enumerate() {
            let py = y + dy;
            if py >= h || x >= w {
                break;
            }
            let cols = row.len().min(w - x);
            let line = &mut buf[py * pitch + x * n..py * pitch + (x + cols) * n];
            for (p, &v) in line.chunks_exact_mut(n).zip(row.iter()) {
                p.copy_from_slice(&shades[v as usize].to_le_bytes()[..n]);
            }
        }
    }
}

/// The console font: `noto-sans-mono-bitmap` regular at one of its sizes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Font {
    /// Pixels per line: one of [`Font::SIZES`].
    px: usize,
}

impl Font {
    /// Every size, smallest first (pixels per line).
    pub const SIZES: [usize; 4] = [16, 20, 24, 32];

    /// The font of `px` pixels per line, if there is one.
    pub fn with_size(px: usize) -> Option<Font> {
        Font::SIZES.contains(&px).then_some(Font { px })
    }

    fn size(&self) -> RasterHeight {
        match self.px {
            20 => RasterHeight::Size20,
            24 => RasterHeight::Size24,
            32 => RasterHeight::Size32,
            _ => RasterHeight::Size16,
        }
    }

    /// The size for a `width` x `height` screen: 16 px up to 1024x768-class
    /// screens (800x600 gives 37 lines of 100 columns), 20 px from 1080 lines,
    /// 24 px from 1440, 32 px from 2000 (4K: 67 lines of 240 columns). Every
    /// step keeps at least 80 columns and 33 lines.
    pub fn for_screen(width: usize, height: usize) -> Font {
        let mut px = match height {
            0..=1079 => 16,
            1080..=1439 => 20,
            1440..=1999 => 24,
            _ => 32,
        };
        // A narrow screen gets a smaller font rather than fewer than 80 columns.
        while px > 16 {
            let f = Font::with_size(px).unwrap_or(Font::DEFAULT);
            if width / f.cell().0 >= 80 {
                break;
            }
            px = Font::SIZES[Font::SIZES.iter().position(|&s| s == px).unwrap_or(1) - 1];
        }
        Font::with_size(px).unwrap_or(Font::DEFAULT)
    }

    /// The 16-pixel font.
    pub const DEFAULT: Font = Font { px: 16 };

    /// A text cell: (width, height) in pixels.
    pub fn cell(&self) -> (usize, usize) {
        (get_raster_width(FontWeight::Regular, self.size()), self.px)
    }

    /// The coverage rows of `c` (`?` for characters the font lacks).
    pub fn glyph(&self, c: char) -> &'static [&'static [u8]] {
        get_raster(c, FontWeight::Regular, self.size())
            .or_else(|| get_raster('?', FontWeight::Regular, self.size()))
            .map(|r| r.raster())
            .unwrap_or(&[])
    }
}

/// The colour classes of console text.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub enum Ink {
    /// Ordinary output and typed text.
    Text,
    /// The `mm> ` prompt.
    Prompt,
    /// An `error:` line.
    Error,
    /// A handle `#N`.
    Handle,
}

impl Ink {
    pub const ALL: [Ink; 4] = [Ink::Text, Ink::Prompt, Ink::Error, Ink::Handle];
}

/// The console's colours.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Palette {
    pub background: Rgb,
    pub text: Rgb,
    pub prompt: Rgb,
    pub error: Rgb,
    pub handle: Rgb,
}

impl Palette {
    /// Light grey on near-black; green prompt, red errors, blue handles.
    pub const DEFAULT: Palette = Palette {
        background: Rgb::new(0x12, 0x14, 0x18),
        text: Rgb::new(0xd0, 0xd0, 0xd0),
        prompt: Rgb::new(0x5f, 0xd7, 0x5f),
        error: Rgb::new(0xff, 0x60, 0x60),
        handle: Rgb::new(0x60, 0xb0, 0xff),
    };

    /// The foreground colour of `ink`.
    pub fn ink(&self, ink: Ink) -> Rgb {
        match ink {
            Ink::Text => self.text,
            Ink::Prompt => self.prompt,
            Ink::Error => self.error,
            Ink::Handle => self.handle,
        }
    }
}

/// Pixel values for each coverage 0..=255 of a glyph drawn in `fg` on `bg`.
pub fn shades(format: &PixelFormat, bg: Rgb, fg: Rgb) -> [u32; 256] {
    let mut s = [0u32; 256];
    for (a, px) in s.iter_mut().enumerate() {
        *px = format.encode(bg.blend(fg, a as u8));
    }
    s
}

/// Reads text back from pixels: every cell is compared, pixel for pixel, with
/// each printable ASCII glyph drawn in each ink, and in the cursor's inverted
/// colours. Tests use it on screendumps and on rendered surfaces.
pub struct Reader {
    font: Font,
    cells: BTreeMap<Vec<u32>, (char, bool)>,
    bg: u32,
}

impl Reader {
    pub fn new(font: Font, palette: &Palette, format: &PixelFormat) -> Reader {
        let (w, h) = font.cell();
        let mut cells = BTreeMap::new();
        let mut add = |c: char, shade: &[u32; 256], cursor: bool| {
            let mut px = alloc::vec![shade[0]; w * h];
            for (dy, row) in font.glyph(c).iter().enumerate().take(h) {
                for (dx, &v) in row.iter().enumerate().take(w) {
                    px[dy * w + dx] = shade[v as usize];
                }
            }
            cells.entry(px).or_insert((c, cursor));
        };
        for c in (' '..='~').rev() {
            for ink in Ink::ALL {
                add(
                    c,
                    &shades(format, palette.background, palette.ink(ink)),
                    false,
                );
            }
            add(c, &shades(format, palette.text, palette.background), true);
        }
        Reader {
            font,
            cells,
            bg: format.encode(palette.background),
        }
    }

    /// The character in cell (`col`, `row`) and whether the cursor is on it;
    /// `None` if the cell matches no glyph.
    pub fn cell<B: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        s: &Surface<B>,
        col: usize,
        row: usize,
    ) -> Option<(char, bool)> {
        let (w, h) = self.font.cell();
        let mut px = Vec::with_capacity(w * h);
        for y in row * h..(row + 1) * h {
            for x in col * w..(col + 1) * w {
                px.push(s.pixel(x, y));
            }
        }
        self.cells.get(&px).copied()
    }

    /// Every row of text on `s`, trailing blanks trimmed; `\u{fffd}` for a cell
    /// that is no glyph.
    pub fn text<B: AsRef<[u8]> + AsMut<[u8]>>(&self, s: &Surface<B>) -> Vec<alloc::string::String> {
        let (w, h) = self.font.cell();
        (0..s.height() / h)
            .map(|row| {
                let line: alloc::string::String = (0..s.width() / w)
                    .map(|col| self.cell(s, col, row).map_or('\u{fffd}', |c| c.0))
                    .collect();
                alloc::string::String::from(line.trim_end())
            })
            .collect()
    }

    /// The background pixel value.
    pub fn background(&self) -> u32 {
        self.bg
    }
}
