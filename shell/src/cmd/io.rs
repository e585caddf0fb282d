//! I/O commands: the resource trees (`regions`, `request`, `release`), port I/O
//! (`inb`..`outsl`), MMIO (`readb`..`writeq`) and raw access to any kernel
//! virtual address (`peek`, `poke`, `fill`, `copy`), all through [`IoApi`].
//!
//! Raw access is fault-safe: a page fault or general-protection fault is one
//! `error:` line with the decoded cause. Writes into what the kernel owns are
//! refused unless the line ends with `force`; ranges inside the memory of a live
//! handle are the user's own and need no `force`.
//!
//! [`IoApi`]: crate::api::IoApi

use super::pages::{hex_line, DUMP_DEFAULT, DUMP_MAX};
use super::{Args, CmdError, Command, Ctx};
use crate::api::Width;
use crate::cmd_err;
use crate::handles::{Addr, Object};
use core::fmt::Write;
use mm::resource::{Name, ResKind};

/// Longest `fill` and `copy`.
pub const RAW_MAX: u64 = 1 << 20;
/// Most elements of one `ins*`/`outs*`.
pub const STR_MAX: u64 = 256;

fn kind(args: &mut Args) -> Result<ResKind, CmdError> {
    let w = args.word("io|mem")?;
    match w.to_ascii_lowercase().as_str() {
        "io" => Ok(ResKind::Io),
        "mem" => Ok(ResKind::Mem),
        _ => Err(cmd_err!("unknown region kind '{w}' (expected io or mem)")),
    }
}

/// Whether `[virt, virt + len)` lies inside the memory of one live handle: the
/// user's own memory, written without `force`.
fn own_memory(ctx: &Ctx<'_>, virt: u64, len: u64) -> bool {
    let Some(end) = virt.checked_add(len) else {
        return false;
    };
    ctx.handles.iter().any(|(_, o)| match o.memory() {
        Some((Some(v), n)) => v <= virt && v.checked_add(n).is_some_and(|e| end <= e),
        _ => false,
    })
}

/// `regions [mem|io]`.
fn regions(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let kinds: &[ResKind] = match args.peek() {
        None => &[ResKind::Mem, ResKind::Io],
        Some(_) => match kind(args)? {
            ResKind::Mem => &[ResKind::Mem],
            ResKind::Io => &[ResKind::Io],
        },
    };
    args.end()?;
    for &k in kinds {
        if kinds.len() > 1 {
            let title = match k {
                ResKind::Mem => "iomem:",
                ResKind::Io => "ioports:",
            };
            writeln!(ctx, "{title}")?;
        }
        let mut i = 0;
        while let Some(row) = ctx.kernel.resource_row(k, i)? {
            writeln!(ctx, "{row}")?;
            i += 1;
        }
    }
    Ok(())
}

/// `request io|mem START LEN NAME`.
fn request(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let kind = kind(args)?;
    let start = args.number("START")?;
    let len = args.number("LEN")?;
    let name = args.word("NAME")?;
    args.end()?;
    let name = Name::new(&name).map_err(|e| cmd_err!("bad NAME '{name}': {e}"))?;
    let span = ctx
        .kernel
        .request_resource(kind, start, len, name.as_str())?;
    ctx.add(Object::Region {
        kind,
        start: span.start,
        size: len,
        name,
    })?;
    Ok(())
}

/// `release io|mem START LEN`.
fn release(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let kind = kind(args)?;
    let start = args.number("START")?;
    let len = args.number("LEN")?;
    args.end()?;
    // A region the shell requested belongs to its handle: releasing it by
    // range releases the handle too, so no handle outlives its region.
    let held = ctx.handles.iter().find_map(|(id, o)| match o {
        Object::Region {
            kind: k,
            start: s,
            size,
            ..
        } if *k == kind && *s == start && *size == len => Some(id),
        _ => None,
    });
    ctx.kernel.release_resource(kind, start, len)?;
    let f = match kind {
        ResKind::Io => "release_region",
        ResKind::Mem => "release_mem_region",
    };
    match held {
        Some(id) => {
            let _ = ctx.handles.remove(id);
            writeln!(ctx, "{f}({start:#x}, {len}) done, {id} freed")?;
        }
        None => writeln!(ctx, "{f}({start:#x}, {len}) done")?,
    }
    Ok(())
}

fn value_in(args: &mut Args, width: Width) -> Result<u64, CmdError> {
    args.number_in("VALUE", 0, width.max())
}

fn port_in(ctx: &mut Ctx<'_>, args: &mut Args, w: Width) -> Result<(), CmdError> {
    let port = args.number("PORT")?;
    args.end()?;
    let v = ctx.kernel.port_in(port, w)?;
    writeln!(
        ctx,
        "in{}({port:#06x}) = {v:#0d$x}",
        w.letter(),
        d = 2 + 2 * w.bytes() as usize
    )?;
    Ok(())
}

fn port_out(ctx: &mut Ctx<'_>, args: &mut Args, w: Width) -> Result<(), CmdError> {
    let port = args.number("PORT")?;
    let v = value_in(args, w)?;
    let force = args.eat("force");
    args.end()?;
    ctx.kernel.port_out(port, w, v as u32, force)?;
    writeln!(ctx, "out{}({v:#x}, {port:#06x}) done", w.letter())?;
    Ok(())
}

fn port_ins(ctx: &mut Ctx<'_>, args: &mut Args, w: Width) -> Result<(), CmdError> {
    let port = args.number("PORT")?;
    let count = args.number_in("COUNT", 1, STR_MAX)?;
    args.end()?;
    let mut buf = alloc::vec![0u8; (count * w.bytes()) as usize];
    ctx.kernel.port_in_str(port, w, &mut buf)?;
    writeln!(
        ctx,
        "ins{}({port:#06x}, {count}): {} bytes",
        w.letter(),
        buf.len()
    )?;
    for (i, chunk) in buf.chunks(16).enumerate() {
        let line = hex_line(16 * i as u64, chunk);
        writeln!(ctx, "{line}")?;
    }
    Ok(())
}

fn port_outs(ctx: &mut Ctx<'_>, args: &mut Args, w: Width) -> Result<(), CmdError> {
    let port = args.number("PORT")?;
    let mut buf = alloc::vec::Vec::new();
    while args
        .peek()
        .is_some_and(|x| !x.eq_ignore_ascii_case("force"))
    {
        if buf.len() as u64 >= STR_MAX * w.bytes() {
            return Err(cmd_err!("at most {STR_MAX} values"));
        }
        let v = value_in(args, w)?;
        buf.extend_from_slice(&v.to_le_bytes()[..w.bytes() as usize]);
    }
    if buf.is_empty() {
        return Err(args.usage_error("missing VALUE"));
    }
    let force = args.eat("force");
    args.end()?;
    ctx.kernel.port_out_str(port, w, &buf, force)?;
    let n = buf.len() as u64 / w.bytes();
    writeln!(ctx, "outs{}({port:#06x}, {n}) done", w.letter())?;
    Ok(())
}

fn mmio_read(ctx: &mut Ctx<'_>, args: &mut Args, w: Width) -> Result<(), CmdError> {
    let addr = args.addr("ADDR")?;
    args.end()?;
    let v = ctx.kernel.mmio_read(addr, w)?;
    writeln!(
        ctx,
        "read{}({}) = {v:#0d$x}",
        w.letter(),
        Addr(addr),
        d = 2 + 2 * w.bytes() as usize
    )?;
    Ok(())
}

fn mmio_write(ctx: &mut Ctx<'_>, args: &mut Args, w: Width) -> Result<(), CmdError> {
    let addr = args.addr("ADDR")?;
    let v = value_in(args, w)?;
    let force = args.eat("force");
    args.end()?;
    let force = force || own_memory(ctx, addr, w.bytes());
    ctx.kernel.mmio_write(addr, w, v, force)?;
    writeln!(ctx, "write{}({v:#x}, {}) done", w.letter(), Addr(addr))?;
    Ok(())
}

macro_rules! by_width {
    ($($name:ident => $f:ident($w:expr);)*) => {
        $(fn $name(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
            $f(ctx, args, $w)
        })*
    };
}

by_width! {
    inb => port_in(Width::B); inw => port_in(Width::W); inl => port_in(Width::L);
    outb => port_out(Width::B); outw => port_out(Width::W); outl => port_out(Width::L);
    insb => port_ins(Width::B); insw => port_ins(Width::W); insl => port_ins(Width::L);
    outsb => port_outs(Width::B); outsw => port_outs(Width::W); outsl => port_outs(Width::L);
    readb => mmio_read(Width::B); readw => mmio_read(Width::W);
    readl => mmio_read(Width::L); readq => mmio_read(Width::Q);
    writeb => mmio_write(Width::B); writew => mmio_write(Width::W);
    writel => mmio_write(Width::L); writeq => mmio_write(Width::Q);
}

/// `peek ADDR [LEN]`: hex dump of any kernel virtual address.
fn peek(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let addr = args.addr("ADDR")?;
    let len = match args.peek() {
        Some(_) => args.number_in("LEN", 1, DUMP_MAX)?,
        None => DUMP_DEFAULT,
    };
    args.end()?;
    let mut buf = alloc::vec![0u8; len as usize];
    ctx.kernel.peek(addr, &mut buf)?;
    writeln!(ctx, "peek virt={} len={len}", Addr(addr))?;
    for (i, chunk) in buf.chunks(16).enumerate() {
        let line = hex_line(16 * i as u64, chunk);
        writeln!(ctx, "{line}")?;
    }
    Ok(())
}

/// `poke ADDR VALUE [WIDTH] [force]`.
fn poke(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let addr = args.addr("ADDR")?;
    let value = args.number("VALUE")?;
    let width = match args.peek() {
        Some(w) if !w.eq_ignore_ascii_case("force") => {
            let n = args.number("WIDTH")?;
            Width::from_bytes(n).ok_or_else(|| cmd_err!("WIDTH {n} (expected 1, 2, 4 or 8)"))?
        }
        _ => Width::ALL
            .into_iter()
            .find(|w| value <= w.max())
            .unwrap_or(Width::Q),
    };
    if value > width.max() {
        return Err(cmd_err!(
            "VALUE {value:#x} does not fit in {} bytes",
            width.bytes()
        ));
    }
    let force = args.eat("force");
    args.end()?;
    let force = force || own_memory(ctx, addr, width.bytes());
    ctx.kernel.mmio_write(addr, width, value, force)?;
    writeln!(
        ctx,
        "poked {value:#x} ({} bytes) at {}",
        width.bytes(),
        Addr(addr)
    )?;
    Ok(())
}

/// `fill ADDR LEN BYTE [force]`.
fn fill(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let addr = args.addr("ADDR")?;
    let len = args.number_in("LEN", 1, RAW_MAX)?;
    let byte = args.number_in("BYTE", 0, 0xff)?;
    let force = args.eat("force");
    args.end()?;
    let force = force || own_memory(ctx, addr, len);
    ctx.kernel.raw_fill(addr, len, byte as u8, force)?;
    writeln!(ctx, "filled {len} bytes at {} with {byte:#04x}", Addr(addr))?;
    Ok(())
}

/// `copy DST SRC LEN [force]`.
fn copy(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let dst = args.addr("DST")?;
    let src = args.addr("SRC")?;
    let len = args.number_in("LEN", 1, RAW_MAX)?;
    let force = args.eat("force");
    args.end()?;
    let force = force || own_memory(ctx, dst, len);
    ctx.kernel.raw_copy(dst, src, len, force)?;
    writeln!(
        ctx,
        "copied {len} bytes from {} to {}",
        Addr(src),
        Addr(dst)
    )?;
    Ok(())
}

const PORT_HELP: &str =
    "PORT is 0..=0xffff. Writes to ports the kernel uses (COM1, the PICs) are\n\
     refused unless the line ends with 'force'. 'regions io' lists the ports.";
const MMIO_HELP: &str =
    "ADDR is any kernel virtual address (the direct map, the kernel image, an\n\
     ioremap). A fault is one error: line with the decoded cause. Writes into what\n\
     the kernel owns (its image, mem_map, page tables, slab pages, blocks without a\n\
     shell handle) are refused unless the line ends with 'force'.";

/// The I/O commands, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    cmd!(
        "regions",
        "regions [mem|io]",
        "the resource trees, as /proc/iomem and /proc/ioports",
        "One line per resource, '%08x-%08x : name' (ports: 4 digits), two spaces\n\
         of indentation per level, as Linux prints them. Without an argument:\n\
         iomem, then ioports.",
        regions
    ),
    cmd!(
        "request",
        "request io|mem START LEN NAME",
        "request_region / request_mem_region",
        "Claims LEN ports or bytes at START under NAME (1 to 31 characters). Fails naming\n\
         the resource in the way. free #N calls release_region / release_mem_region.",
        request
    ),
    cmd!(
        "release",
        "release io|mem START LEN",
        "release_region / release_mem_region",
        "Releases the requested region with exactly this range. What the kernel\n\
         registered for itself stays.",
        release
    ),
    cmd!(
        "inb",
        "inb PORT",
        "read a byte from an I/O port",
        PORT_HELP,
        inb
    ),
    cmd!(
        "inw",
        "inw PORT",
        "read 2 bytes from an I/O port",
        PORT_HELP,
        inw
    ),
    cmd!(
        "inl",
        "inl PORT",
        "read 4 bytes from an I/O port",
        PORT_HELP,
        inl
    ),
    cmd!(
        "outb",
        "outb PORT VALUE [force]",
        "write a byte to an I/O port",
        PORT_HELP,
        outb
    ),
    cmd!(
        "outw",
        "outw PORT VALUE [force]",
        "write 2 bytes to an I/O port",
        PORT_HELP,
        outw
    ),
    cmd!(
        "outl",
        "outl PORT VALUE [force]",
        "write 4 bytes to an I/O port",
        PORT_HELP,
        outl
    ),
    cmd!(
        "insb",
        "insb PORT COUNT",
        "rep insb: COUNT byte reads of one port",
        PORT_HELP,
        insb
    ),
    cmd!(
        "insw",
        "insw PORT COUNT",
        "rep insw: COUNT 2-byte reads of one port",
        PORT_HELP,
        insw
    ),
    cmd!(
        "insl",
        "insl PORT COUNT",
        "rep insl: COUNT 4-byte reads of one port",
        PORT_HELP,
        insl
    ),
    cmd!(
        "outsb",
        "outsb PORT VALUE... [force]",
        "rep outsb: byte writes to one port",
        PORT_HELP,
        outsb
    ),
    cmd!(
        "outsw",
        "outsw PORT VALUE... [force]",
        "rep outsw: 2-byte writes to one port",
        PORT_HELP,
        outsw
    ),
    cmd!(
        "outsl",
        "outsl PORT VALUE... [force]",
        "rep outsl: 4-byte writes to one port",
        PORT_HELP,
        outsl
    ),
    cmd!(
        "readb",
        "readb ADDR",
        "readb: load 1 byte from any kernel address",
        MMIO_HELP,
        readb
    ),
    cmd!(
        "readw",
        "readw ADDR",
        "readw: load 2 bytes",
        MMIO_HELP,
        readw
    ),
    cmd!(
        "readl",
        "readl ADDR",
        "readl: load 4 bytes",
        MMIO_HELP,
        readl
    ),
    cmd!(
        "readq",
        "readq ADDR",
        "readq: load 8 bytes",
        MMIO_HELP,
        readq
    ),
    cmd!(
        "writeb",
        "writeb ADDR VALUE [force]",
        "writeb: store 1 byte at any kernel address",
        MMIO_HELP,
        writeb
    ),
    cmd!(
        "writew",
        "writew ADDR VALUE [force]",
        "writew: store 2 bytes",
        MMIO_HELP,
        writew
    ),
    cmd!(
        "writel",
        "writel ADDR VALUE [force]",
        "writel: store 4 bytes",
        MMIO_HELP,
        writel
    ),
    cmd!(
        "writeq",
        "writeq ADDR VALUE [force]",
        "writeq: store 8 bytes",
        MMIO_HELP,
        writeq
    ),
    cmd!(
        "peek",
        "peek ADDR [LEN]",
        "hex dump of any kernel address (at most 256 bytes)",
        MMIO_HELP,
        peek
    ),
    cmd!(
        "poke",
        "poke ADDR VALUE [WIDTH] [force]",
        "store 1, 2, 4 or 8 bytes at any kernel address",
        "WIDTH defaults to the fewest bytes that hold VALUE. See 'help writeb'.",
        poke
    ),
    cmd!(
        "fill",
        "fill ADDR LEN BYTE [force]",
        "set LEN bytes (at most 1 MiB) to BYTE",
        MMIO_HELP,
        fill
    ),
    cmd!(
        "copy",
        "copy DST SRC LEN [force]",
        "memmove LEN bytes (at most 1 MiB)",
        MMIO_HELP,
        copy
    ),
];
