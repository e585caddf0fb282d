//! The PS/2 keyboard (IRQ 1): keys pressed through QEMU's monitor (`sendkey`, on
//! q35, which has the i8042 controller microvm lacks) reach the shell as a
//! serial terminal's bytes would. And the screen: q35's standard VGA, set up by
//! the kernel itself on the PVH path, read back from a `screendump` by comparing
//! every text cell with the font's glyphs (`vt::render::Reader`).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use systest::*;
use vt::render::{Font, Palette, PixelFormat, Reader, Surface};

/// QEMU `sendkey` names of the keys that type `text`, then Enter.
fn keys(text: &str) -> Vec<String> {
    let mut k: Vec<String> = text
        .chars()
        .map(|c| match c {
            ' ' => "spc".to_string(),
            c => c.to_string(),
        })
        .collect();
    k.push("ret".into());
    k
}

/// QEMU's monitor, on a unix socket: one command a line.
struct Monitor(UnixStream);

impl Monitor {
    fn send(&mut self, cmd: &str) -> Check {
        self.0
            .write_all(format!("{cmd}\n").as_bytes())
            .map_err(|e| format!("monitor: {e}"))
    }

    /// Presses `keys` (`sendkey` names) one at a time: the i8042 holds one
    /// scancode.
    fn press(&mut self, keys: Vec<String>) -> Check {
        for k in keys {
            self.send(&format!("sendkey {k}"))?;
            std::thread::sleep(Duration::from_millis(30));
        }
        Ok(())
    }

    /// Screendumps to `dump` until `ready` accepts one (the screen is drawn
    /// when the shell waits, so the test dumps until it shows what it waits
    /// for); returns the last error `ready` gave if none did within 20 s.
    fn dump_until<T>(
        &mut self,
        dump: &Path,
        ready: impl Fn(&Surface<Vec<u8>>) -> Result<T, String>,
    ) -> Result<T, String> {
        let t0 = Instant::now();
        let mut last = String::from("no screendump");
        while t0.elapsed() < Duration::from_secs(20) {
            let _ = std::fs::remove_file(dump);
            self.send(&format!("screendump {}", dump.display()))?;
            std::thread::sleep(Duration::from_millis(400));
            let Some(s) = read_ppm(dump) else { continue };
            match ready(&s) {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(format!("the screen never showed what was expected: {last}"))
    }
}

/// Boots on q35 (which has a keyboard and a display) with QEMU's monitor on a
/// unix socket, and runs `body` with the monitor and a path to screendump to;
/// both files, named after `tag` and this process, are removed after.
fn with_monitor(tag: &str, body: impl FnOnce(&mut Vm, &mut Monitor, &Path) -> Check) -> Outcome {
    let tag = format!("memkern-{tag}-{}", std::process::id());
    let sock = std::env::temp_dir().join(format!("{tag}.sock"));
    let dump = std::env::temp_dir().join(format!("{tag}.ppm"));
    let _ = std::fs::remove_file(&sock);
    let o = Opts {
        boot: Boot::PvhQ35,
        qemu_extra: vec![
            "-monitor".into(),
            format!("unix:{},server=on,wait=off", sock.display()),
        ],
        ..Opts::default()
    };
    let r = with_vm(o, |vm| {
        let mon = UnixStream::connect(&sock).map_err(|e| format!("monitor socket: {e}"))?;
        body(vm, &mut Monitor(mon), &dump)
    });
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&dump);
    r
}

fn keyboard_types_a_command() -> Outcome {
    with_monitor("kbd", |vm, mon, _| {
        mon.press(keys("echo typed on the keyboard"))?;
        vm.expect("echo typed on the keyboard\r\n")?;
        let out = vm.expect(PROMPT)?;
        ensure(out.contains("typed on the keyboard"), || {
            format!("keyboard line gave:\n{out}")
        })
    })
}

/// A binary PPM (what `screendump` writes) as a 32-bpp surface; `None` while
/// the file is missing or still being written.
fn read_ppm(path: &Path) -> Option<Surface<Vec<u8>>> {
    let data = std::fs::read(path).ok()?;
    let mut fields = Vec::new();
    let mut pos = 0;
    while fields.len() < 4 {
        while data.get(pos)?.is_ascii_whitespace() {
            pos += 1;
        }
        let start = pos;
        while !data.get(pos)?.is_ascii_whitespace() {
            pos += 1;
        }
        fields.push(std::str::from_utf8(&data[start..pos]).ok()?.to_string());
    }
    let (w, h): (usize, usize) = (fields[1].parse().ok()?, fields[2].parse().ok()?);
    let rgb = data.get(pos + 1..pos + 1 + w * h * 3)?;
    if fields[0] != "P6" || fields[3] != "255" {
        return None;
    }
    let f = PixelFormat::XRGB8888;
    let mut s = Surface::new(vec![0; w * h * 4], w, h, w * 4, f).ok()?;
    for (i, p) in rgb.chunks_exact(3).enumerate() {
        s.put(
            i % w,
            i / w,
            f.encode(vt::render::Rgb::new(p[0], p[1], p[2])),
        );
    }
    Some(s)
}

/// Types `kmalloc 80` on the keyboard, then reads the screen back from a
/// screendump, cell by cell against the font's glyphs: the boot line replayed
/// from before the screen existed, the prompt, the typed command and its
/// output exactly as the serial line saw them, and the cursor after the new
/// prompt. `fb` names the mode the kernel set.
fn screen_shows_what_serial_saw() -> Outcome {
    with_monitor("screen", |vm, mon, dump| {
        mon.press(keys("kmalloc 80"))?;
        vm.expect("kmalloc 80\r\n")?;
        let out = vm.expect(PROMPT)?;
        let result = out.trim_end().to_string();
        ensure(result.starts_with("#1 kmalloc size=80 obj=128"), || {
            format!("serial saw:\n{out}")
        })?;
        // Dump until the command and its result show up; then check the rest
        // of that screen once.
        let (w, h) = mon.dump_until(dump, |s| {
            let font = Font::for_screen(s.width(), s.height());
            let reader = Reader::new(font, &Palette::DEFAULT, &s.format());
            let text = reader.text(s);
            let at = text.iter().position(|l| l == "mm> kmalloc 80");
            let Some(i) = at.filter(|&i| {
                text.get(i + 1) == Some(&result)
                    && text.get(i + 2).map(|l| l.as_str()) == Some("mm>")
            }) else {
                return Err(format!(
                    "the command and its result; last read:\n{}",
                    text.join("\n")
                ));
            };
            let shown = ensure(text[0].starts_with("mm: RAM up to "), || {
                format!("the boot line is not the first line:\n{}", text.join("\n"))
            })
            .and_then(|()| {
                ensure(text.iter().any(|l| l.starts_with("memkern ")), || {
                    "no banner on the screen".into()
                })
            })
            .and_then(|()| {
                let (cw, _) = font.cell();
                let cursor = reader.cell(s, 4, i + 2);
                ensure(cursor == Some((' ', true)), || {
                    format!("no cursor after the prompt: {cursor:?} ({}-px cells)", cw)
                })
            });
            Ok(shown.map(|()| (s.width(), s.height())))
        })??;
        let fb = vm.ok("fb")?;
        ensure(
            fb.contains(&format!("fb: {w}x{h} "))
                && fb.contains("bpp=32 format=r8@16,g8@8,b8@0")
                && fb.contains("source=pci-vga"),
            || format!("fb says:\n{fb}"),
        )
    })
}

/// One shell behind both consoles: a line started on the keyboard and
/// finished on the serial line is one line.
fn a_line_typed_half_on_each_console() -> Outcome {
    with_monitor("half", |vm, mon, _| {
        let mut typed = keys("echo key");
        typed.pop(); // no Enter: the serial line finishes the line
        mon.press(typed)?;
        vm.expect("echo key")?;
        vm.send("board\r")?;
        vm.expect("\r\n")?;
        let out = vm.expect(PROMPT)?;
        ensure(out.trim_end() == "keyboard", || {
            format!("echo gave:\n{out}")
        })
    })
}

/// The colours of the memory view's squares holding `frames`, and how many
/// squares have each.
fn square_colours(
    s: &Surface<Vec<u8>>,
    view: &vt::memview::MemView,
    frames: std::ops::Range<u64>,
) -> Vec<vt::render::Rgb> {
    let fps = view.frames_per_square();
    let mut out: Vec<vt::render::Rgb> = Vec::new();
    let mut f = frames.start;
    while f < frames.end {
        if let Some((x, y)) = view.frame_at(f) {
            out.push(s.rgb(x, y));
        }
        f = (f / fps + 1) * fps;
    }
    out
}

/// The zones in `view`'s answer: ` zones DMA=0x0-0x1000 NORMAL=...`.
fn bands_of(on: &str) -> Option<Vec<vt::memview::Band>> {
    use vt::memview::{Band, Kind};
    let (_, zones) = on.trim().split_once("; zones ")?;
    zones
        .split(' ')
        .map(|z| {
            let (name, range) = z.split_once('=')?;
            let (a, b) = range.split_once('-')?;
            let (name, free) = match name {
                "DMA" => ("DMA", Kind::FreeDma),
                "NORMAL" => ("NORMAL", Kind::FreeNormal),
                "UNMAPPED" => ("UNMAPPED", Kind::FreeUnmapped),
                _ => return None,
            };
            Some(Band {
                name,
                free,
                start: num(a)?,
                end: num(b)?,
            })
        })
        .collect()
}

/// `view` splits the screen. Read back from screendumps, by pixels: every
/// zone's label and boundary line, the legend's colours and names and the
/// scale; `pages 63 NORMAL` turns the squares of its frames to the allocated
/// colour and `free all` turns them back. `view slab`: `cache create inode`
/// adds a row named inode with no slab, `cache alloc inode` puts a box in it
/// filled by its one live object, `free all` removes the row. `view stats`
/// reports a redraw that painted nothing after a command that changed nothing.
fn view_shows_an_allocation_land() -> Outcome {
    use vt::memview::{Kind, MemView};
    use vt::slabview::SlabView;
    with_monitor("view", |vm, mon, dump| {
        let fb = vm.ok("fb")?;
        let size = fb.split_whitespace().nth(1).ok_or_else(|| fb.clone())?;
        let (w, h) = size.split_once('x').ok_or_else(|| fb.clone())?;
        let (w, h): (usize, usize) = (w.parse().unwrap_or(0), h.parse().unwrap_or(0));
        let on = vm.ok("view")?;
        let bands = bands_of(&on).ok_or_else(|| format!("view said:\n{on}"))?;
        ensure(bands.len() == 3, || format!("view said:\n{on}"))?;
        let font = Font::for_screen(w, h);
        let (cw, ch) = font.cell();
        let x = 81 * cw;
        let view = MemView::new(x, 0, w - x, h, &bands, font);
        ensure(
            on.contains(&format!("1 square = {} frames", view.frames_per_square())),
            || format!("view said:\n{on}"),
        )?;
        let pal = Palette::DEFAULT;
        let reader = Reader::new(font, &pal, &PixelFormat::XRGB8888);
        let read = |s: &Surface<Vec<u8>>, px: usize, y: usize, n: usize| -> String {
            (0..n)
                .map(|c| reader.cell(s, px / cw + c, y / ch).map_or('?', |x| x.0))
                .collect()
        };
        // The zone labels, their boundary lines, the legend.
        mon.dump_until(dump, |s| {
            for (y, t) in view.labels() {
                ensure(read(s, x, y, t.len()) == t, || {
                    format!("label {t:?} reads {:?}", read(s, x, y, t.len()))
                })?;
                let lx = x + (t.len() + 2) * cw;
                ensure(s.rgb(lx, y + ch / 2) == pal.text, || {
                    format!("no boundary line after {t:?}")
                })?;
            }
            let swatches = view.legend_swatches(font);
            ensure(swatches.len() == Kind::ALL.len(), || {
                "legend entries".into()
            })?;
            for (k, (sx, sy)) in swatches {
                ensure(s.rgb(sx, sy) == k.colour(), || format!("swatch of {k:?}"))?;
                let name = read(s, sx - cw / 2 + 2 * cw, sy - ch / 2, k.name().len());
                ensure(name == k.name(), || format!("legend {k:?} reads {name:?}"))?;
            }
            let note = &view.legend_notes()[0];
            let rows = (0..8)
                .map(|r| read(s, x, view.legend_y() + r * ch, note.len()))
                .collect::<Vec<_>>();
            ensure(rows.contains(note), || format!("no {note:?} in {rows:?}"))
        })?;
        // Nothing changed: the redraw after `echo` paints no square.
        vm.ok("echo still")?;
        std::thread::sleep(Duration::from_millis(1500));
        let stats = vm.ok("view stats")?;
        ensure(
            stats.contains("the last: walk") && stats.contains(" paint 0 of "),
            || format!("view stats after echo:\n{stats}"),
        )?;
        let out = vm.ok("pages 63 NORMAL")?;
        let pfn = field(&out, "pfn")
            .and_then(num)
            .ok_or_else(|| out.clone())?;
        let range = pfn..pfn + 63;
        let alloc = Kind::Allocated.colour();
        mon.dump_until(dump, |s| {
            let sq = square_colours(s, &view, range.clone());
            ensure(!sq.is_empty() && sq.iter().all(|&c| c == alloc), || {
                format!("squares of the allocation: {sq:?}")
            })
        })?;
        vm.ok("free all")?;
        mon.dump_until(dump, |s| {
            let sq = square_colours(s, &view, range.clone());
            ensure(sq.iter().all(|&c| c != alloc), || {
                format!("squares after free all: {sq:?}")
            })
        })?;
        // The slab view.
        let on = vm.ok("view slab")?;
        ensure(on.starts_with("view slab: "), || on.clone())?;
        let sv = SlabView::new(x, 0, w - x, h, font);
        let row_of = |s: &Surface<Vec<u8>>, name: &str| -> Option<usize> {
            (0..sv.rows()).find(|&i| read(s, x, sv.row_y(i), name.len() + 1) == format!("{name} "))
        };
        let slab = Kind::Slab.colour();
        // (outline colour, filled pixels across the middle) of box `j` of row `i`.
        let fill = |s: &Surface<Vec<u8>>, i: usize, j: usize| {
            let (bx, by, bw, bh) = sv.box_at(i, j);
            let n = (bx + 1..bx + bw - 1)
                .filter(|&px| s.rgb(px, by + bh / 2) == slab)
                .count();
            (s.rgb(bx, by), n)
        };
        vm.ok("cache create inode 200 0 SLAB_HWCACHE_ALIGN")?;
        mon.dump_until(dump, |s| {
            let i = row_of(s, "inode").ok_or("no inode row")?;
            ensure(fill(s, i, 0).0 == pal.background, || {
                "a new cache has no slab box".into()
            })
        })?;
        vm.ok("cache alloc inode")?;
        mon.dump_until(dump, |s| {
            let i = row_of(s, "inode").ok_or("no inode row")?;
            let (outline, n) = fill(s, i, 0);
            // One live object of 16 fills 1/16 of the inside, at least a pixel.
            ensure(outline == slab && n >= 1 && n < 2 * cw - 2, || {
                format!("inode's first box: outline {outline:?}, {n} pixels filled")
            })
        })?;
        vm.ok("free all")?;
        mon.dump_until(dump, |s| {
            ensure(row_of(s, "inode").is_none(), || "inode's row stays".into())
        })?;
        let off = vm.ok("view off")?;
        ensure(off.trim() == "view off", || off)
    })
}

/// The framebuffer is a region inside the display's PCI BAR, busy (the shell
/// cannot request it) but not protected: `fill` may draw on it unforced; an
/// `ioremap` of it takes its write-combining type.
fn framebuffer_is_a_region(vm: &mut Vm) -> Check {
    let fb = vm.ok("fb")?;
    let phys = field(&fb, "phys").and_then(num).ok_or_else(|| fb.clone())?;
    let regions = vm.ok("regions")?;
    let lines: Vec<&str> = regions.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("  {phys:08x}-")) && l.ends_with(" : framebuffer"))
        .ok_or_else(|| format!("no framebuffer region:\n{regions}"))?;
    ensure(
        at > 0
            && lines[at - 1].starts_with(&format!("{phys:08x}-"))
            && lines[at - 1].contains(" : 0000:00:"),
        || format!("the framebuffer is not inside its PCI BAR:\n{regions}"),
    )?;
    vm.err(&format!("request mem {phys:#x} 4096 mine"), "framebuffer")?;
    let virt = 0xffff_8000_0000_0000u64 + phys;
    let out = vm.ok(&format!("fill {virt:#x} 4096 0x80"))?;
    ensure(out.starts_with("filled 4096 bytes"), || out.clone())?;
    // The kernel maps it write-combining: an uncached ioremap of it gets WC
    // too (one memory type per page), and vmallocinfo says ioremap_wc.
    let h = vm.ok(&format!("ioremap {phys:#x} 4096"))?;
    ensure(h.contains("cache=WC"), || {
        format!("ioremap of the framebuffer: {h}")
    })?;
    let info = vm.ok("vmallocinfo")?;
    ensure(
        info.contains(&format!("phys={phys:#018x} ioremap_wc")),
        || info,
    )?;
    vm.ok("free all").map(|_| ())
}

/// microvm has no display: `fb` says so in one `error:` line.
fn fb_without_a_display(vm: &mut Vm) -> Check {
    vm.err("fb", "no framebuffer").map(|_| ())
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![
        keyboard_types_a_command,
        screen_shows_what_serial_saw,
        a_line_typed_half_on_each_console,
        view_shows_an_allocation_land,
        framebuffer_is_a_region with |b| with_vm(Opts { boot: Boot::PvhQ35, ..Opts::default() }, b),
        fb_without_a_display with |b| with_vm(Opts::default(), b),
    ]
}
