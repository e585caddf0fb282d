//! The command tables and how a line becomes a command call.
//!
//! Each [`Command`] is a name, a one-line usage, a one-line summary, a longer help
//! text and a handler `fn(&mut Ctx, &mut Args) -> Result<(), CmdError>`. A handler
//! reads its arguments through [`Args`], calls [`Args::end`], then acts through
//! [`Ctx`] (the kernel, the handle table, the history) and prints with `writeln!`
//! on the `Ctx`. Returning `Err` makes the shell print the one `error: ` line.
//!
//! Commands are grouped by area, each area's `COMMANDS` table next to its
//! handlers and help texts: `base.rs` (the machine), `mem.rs` (handles and
//! `memstat`), `slab.rs`, `diag.rs` (self-tests, `check`, `bench`, and `fail` from
//! `fault.rs`), `pages.rs`, `io.rs` (resources, ports, MMIO, raw access) and `vm.rs`
//! (page tables). [`AREAS`] lists the tables in `help` order.
//! A command with subcommands (`cache create ...`) gives each subcommand its own
//! [`Command`] entry with a real handler and dispatches with [`subcommand`].

/// `cmd!(name, usage, summary, help, run)`: one [`Command`] entry, for the
/// areas whose tables are long (declared before the area modules so that
/// they can use it).
macro_rules! cmd {
    ($name:literal, $usage:literal, $summary:literal, $help:expr, $run:ident) => {
        Command {
            name: $name,
            usage: $usage,
            summary: $summary,
            help: $help,
            run: $run,
        }
    };
}

pub mod args;
mod base;
mod diag;
mod fault;
mod io;
mod mem;
pub mod pages;
pub mod slab;
pub mod vm;
mod vmalloc;

pub use args::{Args, Target};

use crate::api::Kernel;
use crate::handles::{HandleError, HandleId, Handles, Object};
use crate::line::History;
use crate::parse::{self, ParseError};
use crate::term;
use alloc::string::String;
use core::fmt;
use mm::MmError;

/// A command handler.
pub type Handler = fn(&mut Ctx<'_>, &mut Args) -> Result<(), CmdError>;

/// One shell command.
#[derive(Debug)]
pub struct Command {
    /// What the user types (matched case-insensitively).
    pub name: &'static str,
    /// Synopsis starting with the name, e.g. `kmalloc SIZE [GFP...]`.
    pub usage: &'static str,
    /// One line for the `help` listing.
    pub summary: &'static str,
    /// More lines for `help CMD` (may be empty; `\n` separates lines).
    pub help: &'static str,
    /// The handler.
    pub run: Handler,
}

/// Why a command failed: the text of its `error: ` line (without the prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdError(String);

impl CmdError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> CmdError {
        CmdError(msg.into())
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<MmError> for CmdError {
    fn from(e: MmError) -> CmdError {
        CmdError(alloc::format!("{e}"))
    }
}

impl From<crate::api::IoError> for CmdError {
    fn from(e: crate::api::IoError) -> CmdError {
        CmdError(alloc::format!("{e}"))
    }
}

impl From<ParseError> for CmdError {
    fn from(e: ParseError) -> CmdError {
        CmdError(alloc::format!("{e}"))
    }
}

impl From<HandleError> for CmdError {
    fn from(e: HandleError) -> CmdError {
        CmdError(alloc::format!("{e}"))
    }
}

impl From<fmt::Error> for CmdError {
    fn from(_: fmt::Error) -> CmdError {
        CmdError::new("console write failed")
    }
}

/// `cmd_err!("bad {x}")` is `CmdError::new(format!("bad {x}"))`.
#[macro_export]
macro_rules! cmd_err {
    ($($arg:tt)*) => { $crate::cmd::CmdError::new($crate::__format!($($arg)*)) };
}

/// What a handler works with. Write output with `writeln!(ctx, ...)`: `\n` becomes
/// `\r\n` on the way out.
pub struct Ctx<'a> {
    /// The kernel's capabilities.
    pub kernel: &'a mut dyn Kernel,
    /// Objects created by commands.
    pub handles: &'a mut Handles,
    /// Lines entered so far.
    pub history: &'a History,
    /// Set by `free all`: once the command line and every heap object of the
    /// command are gone, the shell has the caches give back their empty slabs
    /// (see [`Shell::feed`](crate::Shell::feed)).
    pub(crate) shrink_caches: bool,
    /// Check mode: the invariant check runs after every command (the shell
    /// copies its setting in before a command and back out after it).
    pub check: bool,
    last_cr: bool,
}

impl<'a> Ctx<'a> {
    /// A context over these parts.
    pub fn new(
        kernel: &'a mut dyn Kernel,
        handles: &'a mut Handles,
        history: &'a History,
    ) -> Ctx<'a> {
        Ctx {
            kernel,
            handles,
            history,
            shrink_caches: false,
            check: false,
            last_cr: false,
        }
    }

    /// Records a newly created object and prints its line `#N kind fields...`.
    /// If no handle can be given out the object is released again.
    pub fn add(&mut self, obj: Object) -> Result<HandleId, CmdError> {
        match self.handles.insert(obj.clone()) {
            Ok(id) => {
                writeln!(self, "{id} {obj}")?;
                Ok(id)
            }
            Err(e) => {
                let _ = obj.release(self.kernel);
                Err(e.into())
            }
        }
    }
}

impl fmt::Write for Ctx<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        term::write_crlf(self.kernel, s, &mut self.last_cr)
    }
}

use core::fmt::Write as _;

/// The command tables of the areas, in the order `help` lists them. Each
/// area's table sits next to its handlers.
pub static AREAS: [&[Command]; 8] = [
    base::COMMANDS,
    mem::COMMANDS,
    slab::COMMANDS,
    diag::COMMANDS,
    pages::COMMANDS,
    io::COMMANDS,
    vm::COMMANDS,
    vmalloc::COMMANDS,
];

/// Every command, in the order `help` lists them.
pub fn commands() -> impl Iterator<Item = &'static Command> {
    AREAS.iter().flat_map(|area| area.iter())
}

/// Runs the subcommand named by the next word of `args`, with the rest of the
/// words as its arguments (so that its errors show its own usage). An unknown
/// word is the error `unknown CMD subcommand 'W' (expected a, b or c)`.
pub fn subcommand(
    ctx: &mut Ctx<'_>,
    args: &mut Args,
    subs: &'static [Command],
) -> Result<(), CmdError> {
    let w = args.word("SUBCOMMAND")?;
    let sub = subs
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(&w))
        .ok_or_else(|| {
            let names: alloc::vec::Vec<&str> = subs.iter().map(|s| s.name).collect();
            cmd_err!(
                "unknown {} subcommand '{w}' (expected {})",
                args.command().name,
                parse::expected_list(&names)
            )
        })?;
    let mut rest = Args::new(sub, args.rest());
    (sub.run)(ctx, &mut rest)
}

/// A subcommand entry: its word, its usage (shown in its argument errors) and
/// its handler; no summary or help of its own (the parent's help covers it).
pub const fn sub(name: &'static str, usage: &'static str, run: Handler) -> Command {
    Command {
        name,
        usage,
        summary: "",
        help: "",
        run,
    }
}

/// The command called `name` (any case).
pub fn find(name: &str) -> Option<&'static Command> {
    commands().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// Runs one line: tokenizes it, finds the command, calls its handler.
/// A blank line does nothing.
pub fn run_line(ctx: &mut Ctx<'_>, line: &str) -> Result<(), CmdError> {
    let mut words = parse::tokenize(line)?.into_iter();
    let Some(name) = words.next() else {
        return Ok(());
    };
    let cmd = find(&name).ok_or_else(|| cmd_err!("unknown command '{name}' (try 'help')"))?;
    let mut args = Args::new(cmd, words.collect());
    (cmd.run)(ctx, &mut args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let all: alloc::vec::Vec<&Command> = commands().collect();
        for (i, c) in all.iter().enumerate() {
            assert!(
                !c.name.is_empty() && c.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert!(
                c.usage == c.name || c.usage.starts_with(&alloc::format!("{} ", c.name)),
                "{}",
                c.usage
            );
            assert!(!c.summary.is_empty() && !c.summary.contains('\n'));
            assert!(
                all[..i].iter().all(|d| d.name != c.name),
                "duplicate {}",
                c.name
            );
            assert!(core::ptr::eq(
                find(&c.name.to_ascii_uppercase()).unwrap(),
                *c
            ));
        }
        assert!(find("nope").is_none());
    }
}
