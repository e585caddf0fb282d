//! The framebuffer console: the kernel's side of `vt::console::TextConsole`.
//!
//! Everything here that is logic (cells, colours, scrolling, the cursor, what
//! to draw, pixel formats, the font) is in `vt`, tested on the host. This module
//! holds the framebuffer's memory as a byte slice, the backlog of what was
//! printed before the framebuffer was known (replayed by [`init`], so the
//! screen starts with the first line the serial line saw), and the lock.
//!
//! Printing only records text ([`write_str`]); [`flush`] draws what changed.
//! The input loop flushes when the shell waits for input (`input::wait_byte`),
//! so output reaches the serial line at its own speed and the screen catches up
//! once per command.
//!
//! Left for the page-attribute work (issue #11): the framebuffer is mapped with
//! the direct map's default caching, not write-combining, and is not yet a
//! registered I/O region.

use crate::boot::FramebufferInfo;
use spin::Mutex;
use vt::console::{Backlog, TextConsole};
use vt::memview::{Kind, MemView, Picture};
use vt::render::{Font, Palette, Surface};

struct Screen {
    text: TextConsole,
    surface: Surface<&'static mut [u8]>,
    info: FramebufferInfo,
    /// The memory view on the right, when on.
    view: Option<MemView>,
    /// A line was printed since the view was last drawn.
    view_stale: bool,
}

// The backlog must be in the static itself (it fills before the heap exists);
// its 8 KiB are bss, whatever the variant.
#[allow(clippy::large_enum_variant)]
enum State {
    /// No framebuffer known yet: keep what is printed.
    Early(Backlog<8192>),
    On(Screen),
    /// No framebuffer on this machine.
    Off,
}

static STATE: Mutex<State> = Mutex::new(State::Early(Backlog::new()));

/// Starts the console on `fb`, mapped at `virt`, and replays the backlog.
pub fn init(fb: &FramebufferInfo, virt: u64) {
    let len = fb.pitch as usize * fb.height as usize;
    // SAFETY: the framebuffer's `pitch * height` bytes are mapped at `virt`
    // (memory::paging maps them at boot) and nothing else in the kernel
    // touches them; the slice lives in STATE, behind its lock, forever.
    let bytes: &'static mut [u8] = unsafe { core::slice::from_raw_parts_mut(virt as *mut u8, len) };
    let (w, h) = (fb.width as usize, fb.height as usize);
    let Ok(surface) = Surface::new(bytes, w, h, fb.pitch as usize, fb.format) else {
        return off();
    };
    let mut text = TextConsole::new(w, h, fb.format, Font::for_screen(w, h), Palette::DEFAULT);
    crate::arch::cpu::without_interrupts(|| {
        let mut st = STATE.lock();
        if let State::Early(log) = &*st {
            text.write_str(log.text());
            if log.lost() > 0 {
                let mut note = alloc::string::String::new();
                let _ = core::fmt::write(
                    &mut note,
                    format_args!("[{} early bytes not shown]\r\n", log.lost()),
                );
                text.write_str(&note);
            }
        }
        *st = State::On(Screen {
            text,
            surface,
            info: *fb,
            view: None,
            view_stale: false,
        });
    });
    flush();
}

/// There is no framebuffer: stop keeping the backlog.
pub fn off() {
    crate::arch::cpu::without_interrupts(|| *STATE.lock() = State::Off);
}

/// Records text (drawn at the next [`flush`]).
pub fn write_str(s: &str) {
    match &mut *STATE.lock() {
        State::Early(log) => log.push(s),
        State::On(scr) => {
            scr.text.write_str(s);
            scr.view_stale |= s.contains('\n');
        }
        State::Off => {}
    }
}

/// Records text without waiting for the lock (exception and panic reports:
/// the interrupted code may hold it; then the screen misses the text).
pub fn try_write_str(s: &str) {
    if let Some(mut st) = STATE.try_lock() {
        match &mut *st {
            State::Early(log) => log.push(s),
            State::On(scr) => scr.text.write_str(s),
            State::Off => {}
        }
    }
}

/// Draws everything now, if the lock is free (the panic handler's last words).
pub fn try_flush_all() {
    if let Some(mut st) = STATE.try_lock() {
        if let State::On(scr) = &mut *st {
            scr.text.flush(&mut scr.surface);
        }
    }
}

/// Clears the screen.
pub fn clear() {
    crate::arch::cpu::without_interrupts(|| {
        if let State::On(scr) = &mut *STATE.lock() {
            scr.text.clear();
        }
    });
}

/// Whether there is something to draw.
pub fn dirty() -> bool {
    crate::arch::cpu::without_interrupts(|| match &*STATE.lock() {
        State::On(scr) => scr.text.dirty() || (scr.view.is_some() && scr.view_stale),
        _ => false,
    })
}

/// Draws what changed since the last flush, one text row at a time (each with
/// interrupts off, so an interrupt handler that prints never waits on the
/// lock), and stops early when input arrives: the shell comes first, the
/// screen goes on drawing the next time it waits. Then the memory view, if a
/// line was printed since it was last drawn.
pub fn flush() {
    loop {
        let done = crate::arch::cpu::without_interrupts(|| match &mut *STATE.lock() {
            State::On(scr) => scr.text.flush_step(&mut scr.surface),
            _ => true,
        });
        if super::input::len() > 0 {
            return;
        }
        if done {
            break;
        }
    }
    draw_view();
}

/// Walks the mem_map into `p`: each block head with its order, reserved
/// frames one by one.
fn walk_memory(p: &mut Picture) {
    use mm::page::PageState as S;
    use mm::Zone;
    crate::memory::with_buddy(|b| {
        let map = b.mem_map();
        let mut pfn = 0usize;
        while pfn < map.len() {
            let page = &map[pfn];
            let block = 1usize << page.order().min(mm::page::MAX_ORDER);
            let (n, kind) = match page.state() {
                S::Free => (
                    block,
                    match page.zone() {
                        Zone::Dma => Kind::FreeDma,
                        Zone::Normal => Kind::FreeNormal,
                        Zone::Unmapped => Kind::FreeUnmapped,
                    },
                ),
                S::Cached => (block, Kind::Cached),
                S::Allocated => (block, Kind::Allocated),
                S::Slab => (block, Kind::Slab),
                S::Reserved | S::Tail => (1, Kind::Reserved),
            };
            p.add(pfn as u64, n as u64, kind);
            pfn += n;
        }
    });
}

fn draw_view() {
    // The picture is taken without the screen's lock (lock order: never the
    // allocator's lock inside the screen's).
    let Some(mut p) = crate::arch::cpu::without_interrupts(|| match &mut *STATE.lock() {
        State::On(Screen {
            view: Some(v),
            view_stale: stale @ true,
            ..
        }) => {
            *stale = false;
            Some(v.picture())
        }
        _ => None,
    }) else {
        return;
    };
    walk_memory(&mut p);
    crate::arch::cpu::without_interrupts(|| {
        if let State::On(scr) = &mut *STATE.lock() {
            let font = scr.text.font();
            if let Some(v) = scr.view.as_mut() {
                v.draw(&mut scr.surface, &p, font, &Palette::DEFAULT);
            }
        }
    });
}

/// Splits the screen: the console on the left (80 columns), physical memory
/// on the right, redrawn after every command; or back to the console alone.
pub fn set_view(on: bool) -> Result<alloc::string::String, &'static str> {
    let frames = crate::memory::with_buddy(|b| b.mem_map().len() as u64);
    crate::arch::cpu::without_interrupts(|| {
        let State::On(scr) = &mut *STATE.lock() else {
            return Err("no framebuffer: this machine has a serial console only");
        };
        let (w, h) = (scr.info.width as usize, scr.info.height as usize);
        let font = scr.text.font();
        if !on {
            scr.view = None;
            scr.text.resize(w, h);
            return Ok("view off".into());
        }
        let text_w = 80 * font.cell().0;
        if w < text_w + 200 {
            return Err("the screen is too narrow for 80 columns and the view");
        }
        let bg = scr.info.format.encode(Palette::DEFAULT.background);
        scr.surface.fill(text_w, 0, w - text_w, h, bg);
        scr.text.resize(text_w, h);
        let v = MemView::new(text_w + 8, 0, w - text_w - 8, h, frames, font);
        let (cols, rows, side) = v.grid();
        let fps = v.frames_per_square();
        let what = alloc::format!(
            "view on: {frames} frames, 1 square = {fps} frames ({} KiB), {cols}x{rows} squares of {side} px at x={}",
            fps * 4,
            text_w + 8
        );
        scr.view = Some(v);
        scr.view_stale = true;
        Ok(what)
    })
}

/// The running mode as `fb` prints it, if there is a screen.
pub fn fb_mode() -> Option<shell::FbMode> {
    crate::arch::cpu::without_interrupts(|| match &*STATE.lock() {
        State::On(scr) => {
            let (i, f) = (&scr.info, scr.info.format);
            let (cell, text) = (scr.text.font().cell(), scr.text.size());
            Some(shell::FbMode {
                width: i.width,
                height: i.height,
                pitch: i.pitch,
                bpp: f.bpp,
                masks: [
                    (f.red.size, f.red.shift),
                    (f.green.size, f.green.shift),
                    (f.blue.size, f.blue.shift),
                ],
                phys: i.phys,
                source: i.source,
                cell: (cell.0 as u32, cell.1 as u32),
                text: (text.0 as u32, text.1 as u32),
            })
        }
        _ => None,
    })
}
