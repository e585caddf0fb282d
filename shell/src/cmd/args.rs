//! Argument access for command handlers.
//!
//! [`Args`] hands out a command's words one at a time, already parsed, with error
//! messages that name the missing or wrong argument. A handler reads everything
//! first and calls [`Args::end`] before acting, so a command with a bad argument
//! changes nothing:
//!
//! ```
//! use shell::{Args, CmdError, Ctx};
//!
//! /// `kmalloc SIZE [GFP...]`
//! fn kmalloc(ctx: &mut Ctx<'_>, args: &mut Args) -> Result<(), CmdError> {
//!     let size = args.number("SIZE")?; // missing SIZE (usage: kmalloc SIZE [GFP...])
//!     let gfp = args.gfp()?; // unknown gfp flag 'X' (expected GFP_KERNEL, ...)
//!     args.end()?; // unexpected argument 'y' (usage: ...)
//!     let obj = ctx.kernel.kmalloc(size, gfp)?; // MmError -> its message
//!     ctx.add(obj.into())?; // prints `#1 kmalloc size=80 obj=128 virt=... phys=...`
//!     Ok(())
//! }
//! ```

use super::{CmdError, Command};
use crate::handles::HandleId;
use crate::parse::{self, expected_list, ParseError};
use alloc::string::String;
use alloc::vec::Vec;
use mm::{Gfp, PageFlags, Zone};

/// What a `#N|ADDR` argument names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `#N`.
    Handle(HandleId),
    /// An address.
    Addr(u64),
}

/// The words after the command name.
#[derive(Debug)]
pub struct Args {
    cmd: &'static Command,
    words: Vec<String>,
    pos: usize,
}

impl Args {
    /// The arguments `words` of command `cmd`.
    pub fn new(cmd: &'static Command, words: Vec<String>) -> Args {
        Args { cmd, words, pos: 0 }
    }

    /// The command these arguments belong to.
    pub fn command(&self) -> &'static Command {
        self.cmd
    }

    /// An error `what (usage: ...)`.
    pub fn usage_error(&self, what: &str) -> CmdError {
        CmdError::new(alloc::format!("{what} (usage: {})", self.cmd.usage))
    }

    fn missing(&self, name: &str) -> CmdError {
        self.usage_error(&alloc::format!("missing {name}"))
    }

    /// The next word without consuming it.
    pub fn peek(&self) -> Option<&str> {
        self.words.get(self.pos).map(String::as_str)
    }

    /// Number of words not consumed yet.
    pub fn remaining(&self) -> usize {
        self.words.len().saturating_sub(self.pos)
    }

    /// The next word, if any.
    pub fn opt_word(&mut self) -> Option<String> {
        let w = self.words.get_mut(self.pos).map(core::mem::take)?;
        self.pos += 1;
        Some(w)
    }

    /// The next word; `name` (e.g. `"NAME"`) is used in the error if it is missing.
    pub fn word(&mut self, name: &str) -> Result<String, CmdError> {
        self.opt_word().ok_or_else(|| self.missing(name))
    }

    /// Consumes the next word if it equals `keyword` (any case).
    pub fn eat(&mut self, keyword: &str) -> bool {
        let hit = self.peek().is_some_and(|w| w.eq_ignore_ascii_case(keyword));
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// All remaining words.
    pub fn rest(&mut self) -> Vec<String> {
        let rest = self.words.split_off(self.pos.min(self.words.len()));
        self.pos = self.words.len();
        rest
    }

    /// A number (decimal, 0x hex, K/M/G sizes).
    pub fn number(&mut self, name: &str) -> Result<u64, CmdError> {
        let w = self.word(name)?;
        Ok(parse::parse_number(&w)?)
    }

    /// A number if there is another word.
    pub fn opt_number(&mut self, name: &str) -> Result<Option<u64>, CmdError> {
        if self.peek().is_none() {
            return Ok(None);
        }
        self.number(name).map(Some)
    }

    /// A number in `min..=max`, else `NAME 99 out of range (expected 1..=63)`.
    pub fn number_in(&mut self, name: &str, min: u64, max: u64) -> Result<u64, CmdError> {
        let v = self.number(name)?;
        if v < min || v > max {
            return Err(CmdError::new(alloc::format!(
                "{name} {v} out of range (expected {min}..={max})"
            )));
        }
        Ok(v)
    }

    /// A number that fits in a `u32`.
    pub fn u32(&mut self, name: &str) -> Result<u32, CmdError> {
        let v = self.number_in(name, 0, u64::from(u32::MAX))?;
        u32::try_from(v).map_err(|_| CmdError::new("internal: u32 range"))
    }

    /// An address.
    pub fn addr(&mut self, name: &str) -> Result<u64, CmdError> {
        let w = self.word(name)?;
        Ok(parse::parse_addr(&w)?)
    }

    /// A handle reference `#N`.
    pub fn handle(&mut self, name: &str) -> Result<HandleId, CmdError> {
        let w = self.word(name)?;
        Ok(parse::parse_handle(&w)?)
    }

    /// The rest of the words as handles: each `#N`, or a range `#A-#B` (A <= B,
    /// both ends included); at least one and at most `max` handles in all.
    pub fn handle_list(&mut self, name: &str, max: usize) -> Result<Vec<HandleId>, CmdError> {
        let mut ids: Vec<HandleId> = Vec::new();
        while self.remaining() > 0 {
            let w = self.word(name)?;
            let (a, b) = match w.split_once('-') {
                Some((a, b)) => (parse::parse_handle(a)?, parse::parse_handle(b)?),
                None => {
                    let h = parse::parse_handle(&w)?;
                    (h, h)
                }
            };
            if a > b {
                return Err(crate::cmd_err!("empty handle range '{w}' ({a} > {b})"));
            }
            let n = usize::try_from(b.0 - a.0 + 1).unwrap_or(usize::MAX);
            if n > max.saturating_sub(ids.len()) {
                return Err(crate::cmd_err!("more than {max} handles"));
            }
            ids.try_reserve(n)
                .map_err(|_| crate::cmd_err!("out of memory for the handle list"))?;
            ids.extend((a.0..=b.0).map(HandleId));
        }
        if ids.is_empty() {
            return Err(self.usage_error(name));
        }
        Ok(ids)
    }

    /// A handle reference `#N` or an address.
    pub fn handle_or_addr(&mut self, name: &str) -> Result<Target, CmdError> {
        let w = self.word(name)?;
        if parse::is_handle_ref(&w) {
            Ok(Target::Handle(parse::parse_handle(&w)?))
        } else {
            match parse::parse_addr(&w) {
                Ok(a) => Ok(Target::Addr(a)),
                Err(ParseError::BadNumber(_)) => Err(CmdError::new(alloc::format!(
                    "bad {name} '{w}' (expected #N or an address like 0x1000)"
                ))),
                Err(e) => Err(e.into()),
            }
        }
    }

    /// A zone name: `unknown zone 'DMX' (expected DMA, NORMAL or UNMAPPED)`.
    pub fn zone(&mut self) -> Result<Zone, CmdError> {
        let w = self.word("ZONE")?;
        parse_zone(&w)
    }

    /// An optional zone: consumed if the next word is a zone (`DMA` is the zone,
    /// not `GFP_DMA`); left alone if there is none or it is a page or gfp flag
    /// (for `pages N [ZONE] [FLAG...]`); any other word is an unknown zone.
    pub fn opt_zone(&mut self) -> Result<Option<Zone>, CmdError> {
        let Some(w) = self.peek() else {
            return Ok(None);
        };
        let flag = PageFlags::parse(w).is_some() || Gfp::parse(w).is_some();
        if flag && Zone::parse(w).is_none() {
            return Ok(None);
        }
        let z = parse_zone(w)?;
        self.pos += 1;
        Ok(Some(z))
    }

    /// All remaining words as page flags, combined (empty if none).
    pub fn page_flags(&mut self) -> Result<PageFlags, CmdError> {
        let mut flags = PageFlags::EMPTY;
        for w in self.rest() {
            flags |= PageFlags::parse(&w).ok_or_else(|| {
                let names: Vec<&str> = PageFlags::NAMED.iter().map(|(_, n)| *n).collect();
                CmdError::new(alloc::format!(
                    "unknown page flag '{w}' (expected {})",
                    expected_list(&names)
                ))
            })?;
        }
        Ok(flags)
    }

    /// All remaining words as gfp flags, combined (`GFP_KERNEL` if none).
    pub fn gfp(&mut self) -> Result<Gfp, CmdError> {
        let mut gfp = Gfp::KERNEL;
        for w in self.rest() {
            gfp = gfp
                | Gfp::parse(&w).ok_or_else(|| {
                    let names: Vec<&str> = Gfp::NAMED.iter().map(|(_, n)| *n).collect();
                    CmdError::new(alloc::format!(
                        "unknown gfp flag '{w}' (expected {})",
                        expected_list(&names)
                    ))
                })?;
        }
        Ok(gfp)
    }

    /// Fails with `unexpected argument 'x' (usage: ...)` if words are left.
    pub fn end(&self) -> Result<(), CmdError> {
        match self.peek() {
            None => Ok(()),
            Some(w) => Err(self.usage_error(&alloc::format!("unexpected argument '{w}'"))),
        }
    }
}

/// Parses a zone name with the standard error.
pub fn parse_zone(w: &str) -> Result<Zone, CmdError> {
    Zone::parse(w).ok_or_else(|| {
        let names: Vec<&str> = Zone::ALL.iter().map(|z| z.name()).collect();
        CmdError::new(alloc::format!(
            "unknown zone '{w}' (expected {})",
            expected_list(&names)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Ctx;
    use alloc::string::ToString;
    use alloc::vec;

    fn nop(_: &mut Ctx<'_>, _: &mut Args) -> Result<(), CmdError> {
        Ok(())
    }

    static CMD: Command = Command {
        name: "t",
        usage: "t SIZE [ZONE] [FLAG...]",
        summary: "test",
        help: "",
        run: nop,
    };

    fn args(line: &str) -> Args {
        Args::new(&CMD, line.split_whitespace().map(String::from).collect())
    }

    fn err<T: core::fmt::Debug>(r: Result<T, CmdError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn numbers_and_missing_and_extra() {
        let mut a = args("4K 0x10 x");
        assert_eq!(a.number("SIZE"), Ok(4096));
        assert_eq!(a.opt_number("N"), Ok(Some(16)));
        assert_eq!(
            err(a.end()),
            "unexpected argument 'x' (usage: t SIZE [ZONE] [FLAG...])"
        );
        assert_eq!(
            err(a.number("SIZE")),
            "bad number 'x' (expected decimal, 0x hex, or a size like 4K, 2M, 1G)"
        );
        assert_eq!(
            err(a.number("SIZE")),
            "missing SIZE (usage: t SIZE [ZONE] [FLAG...])"
        );
        assert_eq!(a.opt_number("N"), Ok(None));
        assert_eq!(a.end(), Ok(()));
        let mut a = args("64 5000000000");
        assert_eq!(
            err(a.number_in("N", 1, 63)),
            "N 64 out of range (expected 1..=63)"
        );
        assert_eq!(
            err(a.u32("ORDER")),
            "ORDER 5000000000 out of range (expected 0..=4294967295)"
        );
    }

    #[test]
    fn zones_and_flags() {
        let mut a = args("dmx");
        assert_eq!(
            err(a.zone()),
            "unknown zone 'dmx' (expected DMA, NORMAL or UNMAPPED)"
        );
        let mut a = args("DMX KERNEL");
        assert_eq!(
            err(a.opt_zone()),
            "unknown zone 'DMX' (expected DMA, NORMAL or UNMAPPED)"
        );
        let mut a = args("KERNEL shared");
        assert_eq!(a.opt_zone(), Ok(None));
        assert_eq!(a.page_flags(), Ok(PageFlags::KERNEL | PageFlags::SHARED));
        let mut a = args("DMA KERNEL");
        assert_eq!(a.opt_zone(), Ok(Some(Zone::Dma)), "DMA is the zone");
        assert_eq!(a.page_flags(), Ok(PageFlags::KERNEL));
        let mut a = args("normal PGT_MAPPED BOGUS");
        assert_eq!(a.opt_zone(), Ok(Some(Zone::Normal)));
        assert_eq!(
            err(a.page_flags()),
            "unknown page flag 'BOGUS' (expected PGT_MAPPED, KERNEL_INIT, DEVICE, KERNEL or SHARED)"
        );
        let mut a = args("GFP_DMA __GFP_ZERO");
        assert_eq!(a.gfp(), Ok(Gfp::DMA | Gfp::ZERO));
        let mut a = args("GFP_NOPE");
        assert_eq!(
            err(a.gfp()),
            "unknown gfp flag 'GFP_NOPE' (expected GFP_KERNEL, GFP_ATOMIC, GFP_DMA, __GFP_HIGHMEM or __GFP_ZERO)"
        );
        assert_eq!(args("").gfp(), Ok(Gfp::KERNEL));
    }

    #[test]
    fn handles_addresses_words() {
        let mut a = args("#3 0x1000 #0 zz all rest of it");
        assert_eq!(a.handle_or_addr("#N|ADDR"), Ok(Target::Handle(HandleId(3))));
        assert_eq!(a.handle_or_addr("#N|ADDR"), Ok(Target::Addr(0x1000)));
        assert_eq!(
            err(a.handle_or_addr("#N|ADDR")),
            "bad handle '#0' (expected #N with N from 1, like #1)"
        );
        assert_eq!(
            err(a.handle_or_addr("#N|ADDR")),
            "bad #N|ADDR 'zz' (expected #N or an address like 0x1000)"
        );
        assert!(!a.eat("none"));
        assert!(a.eat("ALL"));
        assert_eq!(a.remaining(), 3);
        assert_eq!(a.rest(), vec!["rest", "of", "it"]);
        assert_eq!(a.rest(), Vec::<String>::new());
        assert_eq!(
            err(a.word("NAME")),
            "missing NAME (usage: t SIZE [ZONE] [FLAG...])"
        );
        assert_eq!(a.command().name, "t");
    }
}
