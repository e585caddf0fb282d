//! The capabilities the kernel plugs into the shell.
//!
//! The shell has no hardware in it: everything it does to the machine goes through
//! these traits, which the kernel implements (and host tests fake).
//! - [`Platform`]: the console writer, version data, clear, reboot, poweroff, traps.
//! - [`Mm`]: the memory-management API that the memory commands exercise. Every
//!   method but [`Mm::mm_stat`] has a default that answers [`UNSUPPORTED`], so the
//!   kernel can grow its implementation one function at a time.
//! - [`Kernel`]: both together; what [`crate::Shell::feed`] takes. Implemented
//!   automatically for every type that implements `Platform + Mm`.

use alloc::string::String;
use core::fmt;
use mm::{Gfp, MmError, MmStat, PageFlags, Pfn, Zone};

/// The error a default [`Mm`] method returns.
pub const UNSUPPORTED: MmError = MmError::Invalid("not supported by this kernel");

/// What `version` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// Kernel version, normally `env!("CARGO_PKG_VERSION")` of the kernel crate.
    pub version: &'static str,
    /// How the kernel was booted: `limine`, `pvh`, ...
    pub boot: &'static str,
    /// The kernel command line (may be empty).
    pub cmdline: String,
}

/// A CPU exception that `trap` raises on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// #DE, vector 0: divide error.
    De,
    /// #UD, vector 6: invalid opcode (`ud2`).
    Ud,
    /// #GP, vector 13: general protection (e.g. non-canonical address).
    Gp,
    /// #PF, vector 14: page fault (access to an unmapped address).
    Pf,
    /// #BP, vector 3: breakpoint (`int3`); its handler normally returns.
    Bp,
}

impl Trap {
    /// Every kind, in the order the shell lists them.
    pub const ALL: [Trap; 5] = [Trap::De, Trap::Ud, Trap::Gp, Trap::Pf, Trap::Bp];
    /// The names the shell accepts, in [`Trap::ALL`] order.
    pub const NAMES: [&'static str; 5] = ["de", "ud", "gp", "pf", "bp"];

    /// Shell name: `de`, `ud`, `gp`, `pf`, `bp`.
    pub const fn name(self) -> &'static str {
        match self {
            Trap::De => "de",
            Trap::Ud => "ud",
            Trap::Gp => "gp",
            Trap::Pf => "pf",
            Trap::Bp => "bp",
        }
    }
    /// Intel mnemonic: `#DE`, ...
    pub const fn mnemonic(self) -> &'static str {
        match self {
            Trap::De => "#DE",
            Trap::Ud => "#UD",
            Trap::Gp => "#GP",
            Trap::Pf => "#PF",
            Trap::Bp => "#BP",
        }
    }
    /// Interrupt vector number.
    pub const fn vector(self) -> u8 {
        match self {
            Trap::De => 0,
            Trap::Ud => 6,
            Trap::Gp => 13,
            Trap::Pf => 14,
            Trap::Bp => 3,
        }
    }
    /// Human description.
    pub const fn description(self) -> &'static str {
        match self {
            Trap::De => "divide error",
            Trap::Ud => "invalid opcode",
            Trap::Gp => "general protection fault",
            Trap::Pf => "page fault",
            Trap::Bp => "breakpoint",
        }
    }
    /// Parses a shell name, any case (`pf`, `PF`, `#PF`).
    pub fn parse(s: &str) -> Option<Trap> {
        let s = s.strip_prefix('#').unwrap_or(s);
        Trap::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }
}

/// The machine: console output and whole-machine operations.
///
/// Output: the shell writes everything through `core::fmt::Write`, with `\r\n`
/// line ends and plain ASCII (plus `\x08` for erasing and the ANSI clear sequence
/// for `clear`). The writer should send it to the serial line and the framebuffer
/// console; write errors are ignored.
pub trait Platform: fmt::Write {
    /// Data for `version` and the banner.
    fn version_info(&self) -> VersionInfo;
    /// Clears the framebuffer console (the shell has already written the ANSI
    /// clear sequence `\x1b[2J\x1b[H` for the serial terminal).
    fn clear_screen(&mut self);
    /// Resets the machine. Returns only on failure, with the reason.
    fn reboot(&mut self) -> &'static str;
    /// Powers the machine off (under QEMU through isa-debug-exit with a success
    /// status). Returns only on failure, with the reason.
    fn poweroff(&mut self) -> &'static str;
    /// Raises `trap` on purpose. `Ok(())` if the exception was taken and its
    /// handler returned (normal for `Bp`); `Err(reason)` if it could not be raised.
    /// For fatal exceptions it is fine never to return.
    fn trap(&mut self, trap: Trap) -> Result<(), &'static str>;
}

/// Per-zone numbers for `memstat`, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ZoneStat {
    /// Bytes the allocator manages in the zone.
    pub total: u64,
    /// Bytes handed out.
    pub used: u64,
    /// Bytes free.
    pub free: u64,
}

/// A block from DragonOS `alloc_pages(zone, num, flags)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageBlock {
    /// First frame.
    pub pfn: Pfn,
    /// Pages asked for.
    pub n: u32,
    /// Zone it came from.
    pub zone: Zone,
    /// Flags it carries.
    pub flags: PageFlags,
    /// Kernel virtual address, `None` for ZONE_UNMAPPED.
    pub virt: Option<u64>,
}

/// An object from `kmalloc(size, gfp)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KmallocObj {
    /// Kernel virtual address.
    pub virt: u64,
    /// Physical address.
    pub phys: u64,
    /// Bytes asked for.
    pub size: u64,
    /// Bytes of the object actually reserved.
    pub obj: u64,
}

/// The memory-management API. The shell calls the release function matching each
/// handle's kind (see [`crate::Object::release`]); allocation functions are called
/// by the memory commands.
#[allow(unused_variables)]
pub trait Mm {
    /// `mm_stat()`.
    fn mm_stat(&self) -> MmStat;
    /// Numbers for one zone, or `None` if the zone does not exist.
    fn zone_stat(&self, zone: Zone) -> Option<ZoneStat> {
        None
    }

    /// DragonOS `alloc_pages(zone, n, flags)`.
    fn alloc_pages(&mut self, zone: Zone, n: u32, flags: PageFlags) -> Result<PageBlock, MmError> {
        Err(UNSUPPORTED)
    }
    /// `kmalloc(size, gfp)` (`kzalloc` is `gfp` with `Gfp::ZERO`).
    fn kmalloc(&mut self, size: u64, gfp: Gfp) -> Result<KmallocObj, MmError> {
        Err(UNSUPPORTED)
    }

    /// DragonOS `free_pages(page, n)`.
    fn free_pages(&mut self, pfn: Pfn, n: u32) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// Linux `__free_pages(page, order)`.
    fn free_pages_order(&mut self, pfn: Pfn, order: u32) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `kfree(virt)`.
    fn kfree(&mut self, virt: u64) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `kmem_cache_free(cache, virt)`.
    fn kmem_cache_free(&mut self, cache: &str, virt: u64) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `kmem_cache_destroy(cache)`.
    fn kmem_cache_destroy(&mut self, cache: &str) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `mempool_free(virt, pool)`.
    fn mempool_free(&mut self, pool: &str, virt: u64) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `mempool_destroy(pool)`.
    fn mempool_destroy(&mut self, pool: &str) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `vfree(virt)`.
    fn vfree(&mut self, virt: u64) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `mm_unmap(virt, len)`: removes a mapping made by a `map` command.
    fn unmap(&mut self, virt: u64, len: u64) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `iounmap(virt)`.
    fn iounmap(&mut self, virt: u64, len: u64) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
    /// `release_region(start, len)` if `io`, else `release_mem_region(start, len)`.
    fn release_region(&mut self, start: u64, len: u64, io: bool) -> Result<(), MmError> {
        Err(UNSUPPORTED)
    }
}

/// Everything the shell needs from the kernel.
pub trait Kernel: Platform + Mm {}

impl<T: Platform + Mm> Kernel for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_names_round_trip() {
        for (t, n) in Trap::ALL.into_iter().zip(Trap::NAMES) {
            assert_eq!(t.name(), n);
            assert_eq!(Trap::parse(n), Some(t));
            assert_eq!(Trap::parse(t.mnemonic()), Some(t));
        }
        assert_eq!(Trap::parse("PF"), Some(Trap::Pf));
        assert_eq!(Trap::parse("xx"), None);
        assert_eq!(Trap::Gp.vector(), 13);
    }
}
