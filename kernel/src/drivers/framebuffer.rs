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
//! `view` puts a live picture beside the console (`vt::memview` for physical
//! memory, `vt::slabview` for the slab): after every command that printed a
//! line, the allocator's state is read into a picture (one walk of the
//! mem_map by block heads) without the screen's lock, then only what changed
//! is painted; `view stats` prints what the last redraw cost.
//!
//! The framebuffer is registered in the iomem tree (`memory::iomem`, inside
//! the display's PCI BAR on the PVH path). Left for the page-attribute work
//! (issue #11): it is mapped with the direct map's default caching, not
//! write-combining.

use crate::boot::FramebufferInfo;
use shell::ViewCmd;
use spin::Mutex;
use vt::console::{Backlog, TextConsole};
use vt::memview::{Band, Kind, MemView, Picture};
use vt::render::{Font, Palette, Surface};
use vt::slabview::{SlabPicture, SlabRow, SlabView};

struct Screen {
    text: TextConsole,
    surface: Surface<&'static mut [u8]>,
    info: FramebufferInfo,
    /// The memory or slab view on the right, when on.
    view: Option<View>,
    /// A line was printed since the view was last drawn.
    view_stale: bool,
    /// What the view's last redraw cost.
    cost: Cost,
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
            cost: Cost::default(),
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

/// Walks the mem_map into `p`: RAM block by block (each head with its
/// order, reserved frames one by one), the gaps between RAM ranges as holes;
/// runs of one kind go to the picture at once. Returns the steps taken.
fn walk_memory(p: &mut Picture) -> u64 {
    use mm::page::PageState as S;
    use mm::Zone;
    crate::memory::with_buddy(|b| {
        let map = b.mem_map();
        let mut steps = 0u64;
        let mut run = (0u64, 0u64, Kind::Hole);
        let mut put = |p: &mut Picture, first: u64, n: u64, kind: Kind| {
            if run.2 == kind && run.0 + run.1 == first {
                run.1 += n;
            } else {
                if run.1 > 0 {
                    p.add(run.0, run.1, run.2);
                }
                run = (first, n, kind);
            }
        };
        let mut pfn = 0usize;
        for (start, end) in b.ram_ranges() {
            let (start, end) = (start.index().min(map.len()), end.index().min(map.len()));
            if pfn < start {
                put(p, pfn as u64, (start - pfn) as u64, Kind::Hole);
            }
            pfn = pfn.max(start);
            while pfn < end {
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
                let n = n.min(end - pfn);
                put(p, pfn as u64, n as u64, kind);
                pfn += n;
                steps += 1;
            }
        }
        if pfn < map.len() {
            put(p, pfn as u64, (map.len() - pfn) as u64, Kind::Hole);
        }
        if run.1 > 0 {
            p.add(run.0, run.1, run.2);
        }
        steps
    })
}

/// The zones as bands of the memory view: DMA below 16 MiB, NORMAL up to
/// lowmem, UNMAPPED above, each cut at the end of the mem_map.
fn zone_bands() -> alloc::vec::Vec<Band> {
    let (max, lowmem) = crate::memory::with_buddy(|b| (b.max_pfn().0 as u64, b.lowmem().0 as u64));
    let dma_end = mm::buddy::DMA_END_PFN as u64;
    [
        ("DMA", Kind::FreeDma, 0, dma_end),
        ("NORMAL", Kind::FreeNormal, dma_end, lowmem),
        ("UNMAPPED", Kind::FreeUnmapped, lowmem, u64::MAX),
    ]
    .into_iter()
    .map(|(name, free, start, end)| Band {
        name,
        free,
        start: start.min(max),
        end: end.min(max),
    })
    .filter(|b| b.start < b.end)
    .collect()
}

/// One cache of the slab view, as read under the allocator's locks (no heap
/// allocation there: the heap needs those locks).
#[derive(Clone, Copy)]
struct CacheRow {
    index: u8,
    name: mm::slab::CacheName,
    objs: u32,
}

/// The slab's caches (those with slabs, and every cache that is not a
/// kmalloc cache) and the live objects of each slab, from one walk of the
/// mem_map by block heads counting liveness bits. Returns the steps taken.
fn walk_slab(p: &mut SlabPicture) -> u64 {
    use mm::page::PageState as S;
    use mm::PageProvider;
    let slabs = crate::memory::heap::with_slab(|s, _| s.totals().slabs) as usize;
    // Room for what there is now and a little more; never grown under the locks.
    let mut caches: alloc::vec::Vec<CacheRow> = alloc::vec::Vec::with_capacity(256);
    let mut live: alloc::vec::Vec<(u8, u32)> = alloc::vec::Vec::with_capacity(slabs + 64);
    let steps = crate::memory::heap::with_slab(|s, b| {
        for c in s.caches() {
            if (c.num_slabs > 0 || !c.kmalloc) && caches.len() < caches.capacity() {
                caches.push(CacheRow {
                    index: c.id.index(),
                    name: c.name,
                    objs: c.objs_per_slab,
                });
            }
        }
        let (map, bits) = (b.mem_map(), b.slab_bits());
        let mut steps = 0u64;
        let mut pfn = 0usize;
        while pfn < map.len() {
            let page = &map[pfn];
            let n = match page.state() {
                S::Slab => {
                    let pages = 1usize << page.order().min(mm::page::MAX_ORDER);
                    let words = bits.get(pfn * 2..(pfn + pages) * 2).unwrap_or(&[]);
                    let objs = words.iter().map(|w| w.count_ones()).sum();
                    if live.len() < live.capacity() {
                        live.push((page.slab_cache, objs));
                    }
                    pages
                }
                S::Free | S::Cached | S::Allocated => {
                    1usize << page.order().min(mm::page::MAX_ORDER)
                }
                S::Reserved | S::Tail => 1,
            };
            pfn += n;
            steps += 1;
        }
        steps
    });
    p.rows = caches
        .iter()
        .map(|c| SlabRow {
            name: c.name.as_str().into(),
            objs_per_slab: c.objs,
            slabs: live
                .iter()
                .filter(|l| l.0 == c.index)
                .map(|l| l.1)
                .collect(),
        })
        .collect();
    steps
}

/// What the last redraw after a command cost (`view stats`).
#[derive(Clone, Copy, Default)]
struct Cost {
    /// Redraws since the view was turned on.
    redraws: u64,
    /// rdtsc cycles spent reading the allocator's state (the walk).
    walk: u64,
    /// Blocks (mem_map steps) walked.
    steps: u64,
    /// rdtsc cycles spent comparing and painting.
    paint: u64,
    /// Squares (page view) or rows (slab view) painted, and how many there are.
    painted: usize,
    of: usize,
}

fn draw_view() {
    // The picture is taken without the screen's lock (lock order: never the
    // allocator's lock inside the screen's).
    let Some(mut pic) = crate::arch::cpu::without_interrupts(|| match &mut *STATE.lock() {
        State::On(scr) if scr.view_stale => {
            scr.view_stale = false;
            match &scr.view {
                Some(View::Pages(v)) => Some(Pic::Pages(v.picture())),
                Some(View::Slab(_)) => Some(Pic::Slab(SlabPicture::default())),
                None => None,
            }
        }
        _ => None,
    }) else {
        return;
    };
    let t0 = crate::arch::cpu::rdtsc();
    let steps = match &mut pic {
        Pic::Pages(p) => walk_memory(p),
        Pic::Slab(p) => walk_slab(p),
    };
    let t1 = crate::arch::cpu::rdtsc();
    crate::arch::cpu::without_interrupts(|| {
        if let State::On(scr) = &mut *STATE.lock() {
            let font = scr.text.font();
            let (painted, of) = match (scr.view.as_mut(), &pic) {
                (Some(View::Pages(v)), Pic::Pages(p)) => (
                    v.draw(&mut scr.surface, p, font, &Palette::DEFAULT),
                    v.grid().1,
                ),
                (Some(View::Slab(v)), Pic::Slab(p)) => {
                    (v.draw(&mut scr.surface, p, &Palette::DEFAULT), v.rows())
                }
                // The view changed meanwhile: draw next time.
                _ => return,
            };
            scr.cost = Cost {
                redraws: scr.cost.redraws + 1,
                walk: t1 - t0,
                steps,
                paint: crate::arch::cpu::rdtsc() - t1,
                painted,
                of,
            };
        }
    });
}

/// A picture taken for the view that is on.
enum Pic {
    Pages(Picture),
    Slab(SlabPicture),
}

/// What `view` shows beside the console.
enum View {
    Pages(MemView),
    Slab(SlabView),
}

/// Splits the screen: the console on the left (80 columns), physical memory
/// or the slab on the right, redrawn after every command; or back to the
/// console alone; or what the last redraw cost.
pub fn set_view(what: ViewCmd) -> Result<alloc::string::String, &'static str> {
    let bands = zone_bands();
    let frames: u64 = bands.iter().map(|b| b.end - b.start).sum();
    crate::arch::cpu::without_interrupts(|| {
        let State::On(scr) = &mut *STATE.lock() else {
            return Err("no framebuffer: this machine has a serial console only");
        };
        let (w, h) = (scr.info.width as usize, scr.info.height as usize);
        let font = scr.text.font();
        let c = scr.cost;
        match what {
            ViewCmd::Off => {
                scr.view = None;
                scr.text.resize(w, h);
                return Ok("view off".into());
            }
            ViewCmd::Stats => {
                let name = match scr.view {
                    Some(View::Pages(_)) => "pages",
                    Some(View::Slab(_)) => "slab",
                    None => return Err("the view is off ('view' or 'view slab' turns it on)"),
                };
                let unit = if name == "pages" { "squares" } else { "rows" };
                return Ok(alloc::format!(
                    "view {name}: {} redraws; the last: walk {} blocks in {} cycles, paint {} of {} {unit} in {} cycles",
                    c.redraws, c.steps, c.walk, c.painted, c.of, c.paint
                ));
            }
            ViewCmd::Pages | ViewCmd::Slab => {}
        }
        let (cw, _) = font.cell();
        let text_w = 80 * cw;
        if w < text_w + 200 {
            return Err("the screen is too narrow for 80 columns and the view");
        }
        let bg = scr.info.format.encode(Palette::DEFAULT.background);
        scr.surface.fill(text_w, 0, w - text_w, h, bg);
        scr.text.resize(text_w, h);
        // One cell of margin; the view's text on the console's cell grid.
        let x = text_w + cw;
        let what = if what == ViewCmd::Slab {
            let v = SlabView::new(x, 0, w - x, h, font);
            let what = alloc::format!(
                "view slab: {} caches fit, {} slab boxes per row, at x={x}",
                v.rows(),
                v.boxes_per_row()
            );
            scr.view = Some(View::Slab(v));
            what
        } else {
            let v = MemView::new(x, 0, w - x, h, &bands, font);
            let (cols, squares, side) = v.grid();
            let fps = v.frames_per_square();
            let mut what = alloc::format!(
                "view on: {frames} frames, 1 square = {fps} frames ({} KiB), {squares} squares of {side} px, {cols} per row, at x={x}; zones",
                fps * 4,
            );
            for b in &bands {
                let _ = core::fmt::write(
                    &mut what,
                    format_args!(" {}={:#x}-{:#x}", b.name, b.start, b.end),
                );
            }
            scr.view = Some(View::Pages(v));
            what
        };
        scr.cost = Cost::default();
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
