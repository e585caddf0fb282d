//! `fail`: fault injection, Linux's `fail_page_alloc` and `failslab`
//! ([`mm::fault`]): arm, disarm and show the two injectors.

use super::{Args, CmdError, Ctx};
use crate::cmd_err;
use crate::parse;
use core::fmt::Write;
use mm::fault::{FaultConfig, FaultSite};

/// The sites a word names: `page`, `slab` or `all`.
fn sites(w: &str) -> Result<&'static [FaultSite], CmdError> {
    match w.to_ascii_lowercase().as_str() {
        "page" | "fail_page_alloc" => Ok(&FaultSite::ALL[..1]),
        "slab" | "failslab" => Ok(&FaultSite::ALL[1..]),
        "all" => Ok(&FaultSite::ALL),
        _ => Err(cmd_err!(
            "unknown fault site '{w}' (expected page, slab, all or off)"
        )),
    }
}

/// One state line: `NAME: off injected=N` or `NAME: CONFIG times_left=.. calls=.. injected=..`.
fn show(ctx: &mut Ctx<'_>, site: FaultSite) -> Result<(), CmdError> {
    let a = ctx.kernel.fault_attr(site)?;
    let name = site.name();
    match a.config() {
        None => writeln!(ctx, "{name}: off injected={}", a.injected())?,
        Some(cfg) => {
            write!(ctx, "{name}: {cfg} times_left=")?;
            match a.times_left() {
                Some(t) => write!(ctx, "{t}")?,
                None => write!(ctx, "-1")?,
            }
            writeln!(ctx, " calls={} injected={}", a.calls(), a.injected())?;
        }
    }
    Ok(())
}

/// Parses `key=value` settings over the defaults ([`FaultConfig::ALWAYS`]).
fn config(args: &mut Args) -> Result<FaultConfig, CmdError> {
    let mut cfg = FaultConfig::ALWAYS;
    for w in args.rest() {
        let Some((key, value)) = w.split_once('=') else {
            return Err(args.usage_error(&alloc::format!("unexpected argument '{w}'")));
        };
        let key = key.to_ascii_lowercase();
        if key == "times" && value == "-1" {
            cfg.times = None;
            continue;
        }
        let n = parse::parse_number(value)?;
        match key.as_str() {
            "probability" if n <= 100 => cfg.probability = n as u32,
            "probability" => {
                return Err(cmd_err!(
                    "probability {n} out of range (expected 0..=100, percent)"
                ))
            }
            "interval" => cfg.interval = n,
            "times" => cfg.times = Some(n),
            "space" => cfg.space = n,
            "seed" => cfg.seed = n,
            _ => {
                return Err(cmd_err!(
                    "unknown setting '{key}' (expected probability, interval, times, space or seed)"
                ))
            }
        }
    }
    Ok(cfg)
}

/// `fail [page|slab|all [SETTING=N...]] | fail off [page|slab|all]`.
pub fn fail(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
    let Some(w) = args.opt_word() else {
        for site in FaultSite::ALL {
            show(ctx, site)?;
        }
        return Ok(());
    };
    if w.eq_ignore_ascii_case("off") {
        let which = match args.opt_word() {
            Some(s) => sites(&s)?,
            None => &FaultSite::ALL,
        };
        args.end()?;
        for &site in which {
            ctx.kernel.set_fault(site, None)?;
        }
        for &site in which {
            show(ctx, site)?;
        }
        return Ok(());
    }
    let which = sites(&w)?;
    let cfg = config(args)?;
    for (i, &site) in which.iter().enumerate() {
        if let Err(e) = ctx.kernel.set_fault(site, Some(cfg)) {
            // Nothing changes on error: the sites armed already go back.
            for &done in &which[..i] {
                let _ = ctx.kernel.set_fault(done, None);
            }
            return Err(e.into());
        }
    }
    for &site in which {
        show(ctx, site)?;
    }
    Ok(())
}
