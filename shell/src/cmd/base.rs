//! Platform commands: help, echo, history, clear, version, reboot, poweroff, trap.

use super::{find, Args, CmdError, Ctx, COMMANDS};
use crate::cmd_err;
use crate::kernel::Trap;
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
        let width = COMMANDS
            .iter()
            .map(|c| c.usage.len())
            .filter(|&w| w <= HELP_USAGE_WIDTH)
            .max()
            .unwrap_or(0);
        writeln!(ctx, "commands (type 'help CMD' for details):")?;
        for c in COMMANDS {
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
