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

fn keyboard_types_a_command() -> Outcome {
    let sock = std::env::temp_dir().join(format!("memkern-kbd-{}.sock", std::process::id()));
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
        let mut mon = UnixStream::connect(&sock).map_err(|e| format!("monitor socket: {e}"))?;
        for k in keys("echo typed on the keyboard") {
            mon.write_all(format!("sendkey {k}\n").as_bytes())
                .map_err(|e| format!("monitor: {e}"))?;
            // One key at a time: the i8042 holds one scancode.
            std::thread::sleep(Duration::from_millis(30));
        }
        vm.expect("echo typed on the keyboard\r\n")?;
        let out = vm.expect(PROMPT)?;
        ensure(out.contains("typed on the keyboard"), || {
            format!("keyboard line gave:\n{out}")
        })
    });
    let _ = std::fs::remove_file(&sock);
    r
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
    let tag = format!("memkern-screen-{}", std::process::id());
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
        let mut mon = UnixStream::connect(&sock).map_err(|e| format!("monitor socket: {e}"))?;
        let mut monitor = |cmd: &str| {
            mon.write_all(format!("{cmd}\n").as_bytes())
                .map_err(|e| format!("monitor: {e}"))
        };
        for k in keys("kmalloc 80") {
            monitor(&format!("sendkey {k}"))?;
            std::thread::sleep(Duration::from_millis(30));
        }
        vm.expect("kmalloc 80\r\n")?;
        let out = vm.expect(PROMPT)?;
        let result = out.trim_end().to_string();
        ensure(result.starts_with("#1 kmalloc size=80 obj=128"), || {
            format!("serial saw:\n{out}")
        })?;
        // The screen is drawn once the shell waits: dump until it shows up.
        let t0 = Instant::now();
        let mut last = Vec::new();
        while t0.elapsed() < Duration::from_secs(20) {
            let _ = std::fs::remove_file(&dump);
            monitor(&format!("screendump {}", dump.display()))?;
            std::thread::sleep(Duration::from_millis(400));
            let Some(s) = read_ppm(&dump) else { continue };
            let font = Font::for_screen(s.width(), s.height());
            let reader = Reader::new(font, &Palette::DEFAULT, &s.format());
            let text = reader.text(&s);
            let at = text.iter().position(|l| l == "mm> kmalloc 80");
            if let Some(i) = at {
                if text.get(i + 1) == Some(&result)
                    && text.get(i + 2).map(|l| l.as_str()) == Some("mm>")
                {
                    ensure(text[0].starts_with("mm: RAM up to "), || {
                        format!("the boot line is not the first line:\n{}", text.join("\n"))
                    })?;
                    ensure(text.iter().any(|l| l.starts_with("memkern ")), || {
                        "no banner on the screen".into()
                    })?;
                    let (cw, _) = font.cell();
                    let cursor = reader.cell(&s, 4, i + 2);
                    ensure(cursor == Some((' ', true)), || {
                        format!("no cursor after the prompt: {cursor:?} ({}-px cells)", cw)
                    })?;
                    let fb = vm.ok("fb")?;
                    return ensure(
                        fb.contains(&format!("fb: {}x{} ", s.width(), s.height()))
                            && fb.contains("bpp=32 format=r8@16,g8@8,b8@0")
                            && fb.contains("source=pci-vga"),
                        || format!("fb says:\n{fb}"),
                    );
                }
            }
            last = text;
        }
        Err(format!(
            "the screen never showed the command and its result; last read:\n{}",
            last.join("\n")
        ))
    });
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&dump);
    r
}

/// One shell behind both consoles: a line started on the keyboard and
/// finished on the serial line is one line.
fn a_line_typed_half_on_each_console() -> Outcome {
    let sock = std::env::temp_dir().join(format!("memkern-half-{}.sock", std::process::id()));
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
        let mut mon = UnixStream::connect(&sock).map_err(|e| format!("monitor socket: {e}"))?;
        let mut typed = keys("echo key");
        typed.pop(); // no Enter: the serial line finishes the line
        for k in typed {
            mon.write_all(format!("sendkey {k}\n").as_bytes())
                .map_err(|e| format!("monitor: {e}"))?;
            std::thread::sleep(Duration::from_millis(30));
        }
        vm.expect("echo key")?;
        vm.send("board\r")?;
        vm.expect("\r\n")?;
        let out = vm.expect(PROMPT)?;
        ensure(out.trim_end() == "keyboard", || {
            format!("echo gave:\n{out}")
        })
    });
    let _ = std::fs::remove_file(&sock);
    r
}

/// The colour of the memory view's square holding `frame`, from a fresh
/// screendump, once `ready` accepts the picture (the screen is drawn when the
/// shell waits, so the test dumps until it shows what it waits for).
fn view_squares(
    monitor: &mut dyn FnMut(&str) -> Check,
    dump: &Path,
    view: &vt::memview::MemView,
    frames: std::ops::Range<u64>,
    ready: impl Fn(&[vt::render::Rgb]) -> bool,
) -> Result<Vec<vt::render::Rgb>, String> {
    let t0 = Instant::now();
    let fps = view.frames_per_square();
    let mut last = Vec::new();
    while t0.elapsed() < Duration::from_secs(20) {
        let _ = std::fs::remove_file(dump);
        monitor(&format!("screendump {}", dump.display()))?;
        std::thread::sleep(Duration::from_millis(400));
        let Some(s) = read_ppm(dump) else { continue };
        last = (frames.start / fps..frames.end.div_ceil(fps))
            .map(|i| {
                let (x, y) = view.square_at(i as usize);
                s.rgb(x, y)
            })
            .collect();
        if ready(&last) {
            return Ok(last);
        }
    }
    let mut colours: Vec<(vt::render::Rgb, usize)> = Vec::new();
    for c in last {
        match colours.iter_mut().find(|(k, _)| *k == c) {
            Some((_, n)) => *n += 1,
            None => colours.push((c, 1)),
        }
    }
    Err(format!(
        "the view never showed what was expected; its squares: {colours:?}"
    ))
}

/// `view` splits the screen; `pages 63 NORMAL` turns the squares of its frames
/// to the allocated colour in a screendump, and `free all` turns them back.
fn view_shows_an_allocation_land() -> Outcome {
    use vt::memview::{Kind, MemView};
    let tag = format!("memkern-view-{}", std::process::id());
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
        let mut mon = UnixStream::connect(&sock).map_err(|e| format!("monitor socket: {e}"))?;
        let mut monitor = |cmd: &str| -> Check {
            mon.write_all(format!("{cmd}\n").as_bytes())
                .map_err(|e| format!("monitor: {e}"))
        };
        let fb = vm.ok("fb")?;
        let size = fb.split_whitespace().nth(1).ok_or_else(|| fb.clone())?;
        let (w, h) = size.split_once('x').ok_or_else(|| fb.clone())?;
        let (w, h): (usize, usize) = (w.parse().unwrap_or(0), h.parse().unwrap_or(0));
        let on = vm.ok("view")?;
        let frames = on
            .split_whitespace()
            .nth(2)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| format!("view said:\n{on}"))?;
        let font = Font::for_screen(w, h);
        let text_w = 80 * font.cell().0;
        let view = MemView::new(text_w + 8, 0, w - text_w - 8, h, frames, font);
        ensure(
            on.contains(&format!("1 square = {} frames", view.frames_per_square())),
            || format!("view said:\n{on}"),
        )?;
        let out = vm.ok("pages 63 NORMAL")?;
        let pfn = field(&out, "pfn")
            .and_then(num)
            .ok_or_else(|| out.clone())?;
        let range = pfn..pfn + 63;
        let alloc = Kind::Allocated.colour();
        let now = view_squares(&mut monitor, &dump, &view, range.clone(), |sq| {
            sq.iter().all(|&c| c == alloc)
        })?;
        ensure(!now.is_empty(), || "no squares".into())?;
        vm.ok("free all")?;
        view_squares(&mut monitor, &dump, &view, range, |sq| {
            sq.iter().all(|&c| c != alloc)
        })?;
        let off = vm.ok("view off")?;
        ensure(off.trim() == "view off", || off)
    });
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&dump);
    r
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
        fb_without_a_display with |b| with_vm(Opts::default(), b),
    ]
}
