//! Platform commands: help, echo, history, clear, version, reboot, poweroff, trap.

use super::{commands, find, Args, CmdError, Command, Ctx};
use crate::api::{Trap, ViewCmd};
use crate::cmd_err;
use crate::parse::expected_list;
use crate::term::{self, one_line};
use core::fmt::Write;

/// Widest usage that shares its line with the summary in the `help` listing;
/// longer ones get a line of their own, so the listing fits 80 columns.
pub const HELP_USAGE_WIDTH: usize = 19;

/// `help [CMD]`.
pub fn help(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let Some(name) = args.opt_word() else {
        args.end()?;
        let width = commands()
            .map(|c| c.usage.len())
            .filter(|&w| w <= HELP_USAGE_WIDTH)
            .max()
            .unwrap_or(0);
        writeln!(ctx, "commands (type 'help CMD' for details):")?;
        for c in commands() {
            if c.usage.len() <= width {
                writeln!(ctx, "  {:width$}  {}", c.usage, c.summary)?;
            } else {
                writeln!(ctx, "  {}", c.usage)?;
                writeln!(ctx, "  {:width$}  {}", "", c.summary)?;
            }
        }
        return Ok(());
    };
    args.end()?;
    let cmd = find(&name).ok_or_else(|| cmd_err!("unknown command '{name}' (try 'help')"))?;
    writeln!(ctx, "usage: {}", cmd.usage)?;
    writeln!(ctx, "{}", cmd.summary)?;
    if !cmd.help.is_empty() {
        writeln!(ctx, "{}", cmd.help)?;
    }
    Ok(())
}

/// `echo [ARG...]`.
pub fn echo(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let words = args.rest();
    writeln!(ctx, "{}", one_line(&words.join(" ")))?;
    Ok(())
}

/// `history`.
pub fn history(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let history = ctx.history;
    for (n, line) in history.iter() {
        writeln!(ctx, "{n:>4}  {line}")?;
    }
    Ok(())
}

/// `clear`.
pub fn clear(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    ctx.write_str(term::CLEAR)?;
    ctx.kernel.clear_screen();
    Ok(())
}

/// `fb`.
pub fn fb(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let m = ctx
        .kernel
        .framebuffer()
        .ok_or_else(|| cmd_err!("no framebuffer: this machine has a serial console only"))?;
    let [r, g, b] = m.masks;
    writeln!(
        ctx,
        "fb: {}x{} pitch={} bpp={} format=r{}@{},g{}@{},b{}@{} phys={:#018x} source={}",
        m.width, m.height, m.pitch, m.bpp, r.0, r.1, g.0, g.1, b.0, b.1, m.phys, m.source
    )?;
    writeln!(
        ctx,
        "text: {}x{} cells of {}x{} px",
        m.text.0, m.text.1, m.cell.0, m.cell.1
    )?;
    Ok(())
}

/// `view [pages|slab|off|stats]`.
pub fn view(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let cmd = match args.opt_word().as_deref() {
        None => ViewCmd::Pages,
        Some(w) => ViewCmd::parse(w).ok_or_else(|| {
            cmd_err!("view: expected pages, slab, off or stats (or on), got '{w}'")
        })?,
    };
    args.end()?;
    let what = ctx
        .kernel
        .memory_view(cmd)
        .map_err(|why| cmd_err!("view: {why}"))?;
    writeln!(ctx, "{}", one_line(&what))?;
    Ok(())
}

/// `version`.
pub fn version(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    let v = ctx.kernel.version_info();
    writeln!(ctx, "memkern {}", one_line(v.version))?;
    writeln!(ctx, "boot: {}", one_line(v.boot))?;
    writeln!(ctx, "cmdline: {}", one_line(&v.cmdline))?;
    if let Some(why) = &v.tainted {
        writeln!(ctx, "tainted: {}", one_line(why))?;
    }
    Ok(())
}

/// `reboot`.
pub fn reboot(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    writeln!(ctx, "rebooting")?;
    let why = ctx.kernel.reboot();
    Err(cmd_err!("reboot failed: {why}"))
}

/// `poweroff`.
pub fn poweroff(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    args.end()?;
    writeln!(ctx, "powering off")?;
    let why = ctx.kernel.poweroff();
    Err(cmd_err!("poweroff failed: {why}"))
}

/// `trap KIND`.
pub fn trap(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let kind = args.word("KIND")?;
    args.end()?;
    let t = Trap::parse(&kind).ok_or_else(|| {
        cmd_err!(
            "unknown trap kind '{kind}' (expected {})",
            expected_list(&Trap::NAMES)
        )
    })?;
    writeln!(
        ctx,
        "raising {} ({}, vector {})",
        t.mnemonic(),
        t.description(),
        t.vector()
    )?;
    match ctx.kernel.trap(t) {
        Ok(()) => {
            writeln!(ctx, "returned from the {} handler", t.mnemonic())?;
            Ok(())
        }
        Err(why) => Err(cmd_err!("trap {} failed: {why}", t.name())),
    }
}

/// The machine commands, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "help",
        usage: "help [CMD]",
        summary: "list the commands, or explain one",
        help: "Numbers: 4096, 0x1000, 1_000, and sizes 4K, 2M, 1G (powers of 1024).\n\
               Handles: objects you create are #1, #2, ...; 'handles' lists them.",
        run: help,
    },
    Command {
        name: "echo",
        usage: "echo [ARG...]",
        summary: "print the arguments joined by one space",
        help: "Double quotes keep spaces: echo \"a  b\" prints 'a  b'.",
        run: echo,
    },
    Command {
        name: "history",
        usage: "history",
        summary: "list the last lines entered, numbered",
        help: "Up and Down walk the same list while editing a line.",
        run: history,
    },
    Command {
        name: "clear",
        usage: "clear",
        summary: "clear the screen",
        help: "Sends ESC[2J ESC[H to the serial terminal and clears the framebuffer console.",
        run: clear,
    },
    Command {
        name: "version",
        usage: "version",
        summary: "print the kernel version, boot path and command line",
        help: "",
        run: version,
    },
    Command {
        name: "fb",
        usage: "fb",
        summary: "print the framebuffer console's mode",
        help: "Resolution, pitch (bytes per row), bits per pixel, the pixel format as\n\
               size@shift of the red, green and blue masks, the physical address, who\n\
               set the mode (limine, pci-vga, pci-bochs-display) and the text grid.",
        run: fb,
    },
    Command {
        name: "view",
        usage: "view [pages|slab|off|stats]",
        summary: "the shell beside a live picture of memory or the slab",
        help: "'view' (or 'view pages', 'view on'): the right part of the screen shows\n\
               every page frame, a square per power of two of frames (the fewest that\n\
               fit with squares of at least 4 px), one labelled band per zone, coloured\n\
               by the most significant state of its frames: slab, allocated, cached,\n\
               free (a colour per zone), reserved, hole; a legend names the colours.\n\
               'view slab': one row per cache, a box per slab filled by its live\n\
               objects. Redrawn after every command, repainting only what changed.\n\
               'view stats': what the last redraw cost. 'view off': the screen back.",
        run: view,
    },
    Command {
        name: "reboot",
        usage: "reboot",
        summary: "reset the machine",
        help: "Prints an error if the reset did not happen.",
        run: reboot,
    },
    Command {
        name: "poweroff",
        usage: "poweroff",
        summary: "power the machine off (QEMU: exit with success status)",
        help: "Prints an error if the machine is still running afterwards.",
        run: poweroff,
    },
    Command {
        name: "trap",
        usage: "trap de|ud|gp|pf|bp",
        summary: "raise a CPU exception on purpose",
        help:
            "de: divide error (#DE)\nud: invalid opcode (#UD)\ngp: general protection fault (#GP)\n\
               pf: page fault (#PF)\nbp: breakpoint (#BP); its handler returns to the shell\n\
               pf and gp load from an unmapped and a non-canonical address through a\n\
               fault-safe accessor: the exception table resumes it, the command fails.\n\
               de and ud fault in code with no fixup: an oops. It is reported in full,\n\
               the kernel is marked tainted ('version' says why) and the command is\n\
               abandoned, or with 'oops=panic' on the kernel command line the machine stops.",
        run: trap,
    },
];
