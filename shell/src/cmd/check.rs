//! The `check` command: the invariant check now, or check mode on and off.

use super::{Args, CmdError, Ctx};
use crate::check;
use crate::cmd_err;
use core::fmt::Write;

/// `check [on|off]`.
pub fn check(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let mode = args.opt_word();
    args.end()?;
    match mode.as_deref() {
        None => {
            let s = check::run(ctx.kernel, ctx.handles).map_err(|e| cmd_err!("check: {e}"))?;
            let mode = if ctx.check { "on" } else { "off" };
            writeln!(
                ctx,
                "check: ok: page allocator, {} slab caches, {} handles (check mode {mode})",
                s.caches, s.handles
            )?;
        }
        Some(w) if w.eq_ignore_ascii_case("on") => {
            ctx.check = true;
            writeln!(
                ctx,
                "check mode on: invariants are checked after every command"
            )?;
        }
        Some(w) if w.eq_ignore_ascii_case("off") => {
            ctx.check = false;
            writeln!(ctx, "check mode off")?;
        }
        Some(w) => return Err(cmd_err!("check: unknown mode '{w}' (expected on or off)")),
    }
    Ok(())
}
