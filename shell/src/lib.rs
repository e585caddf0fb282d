//! memkern's shell: the command language, free of hardware.
//!
//! The kernel owns one [`Shell`], shows the banner with
//! [`Shell::banner_and_prompt`], then hands it every input byte with
//! [`Shell::feed`]. Everything the shell does to the machine goes through the
//! [`Kernel`] trait ([`Platform`] and the memory API by area: [`PageApi`],
//! [`SlabApi`], [`MemAccess`], [`Diagnostics`]); output goes to the kernel's
//! `core::fmt::Write` with `\r\n` line ends. The memory API is implemented once,
//! by [`Api`] over a [`MemHost`]: the kernel provides only its hardware (locks,
//! the direct map, fault-safe accessors, `rdtsc`), host tests fake the traits or
//! simulate the memory.
//!
//! - [`line`](mod@line): the line editor and history (bytes in, lines out).
//! - [`parse`]: tokenizer, numbers, addresses, `#N` handle references.
//! - [`handles`]: the handle table and [`Object`], every kind of object commands create.
//! - [`cmd`]: the command table, [`cmd::Args`] helpers and the commands themselves.
//! - [`check`]: the invariant check of the `check` command and of check mode.
//! - [`api`]: the traits, the data they exchange, and their one implementation.
//! - [`term`]: output conventions (prompt, `\r\n`, one-line errors).
//!
//! The kernel side, in short (the kernel's allocators sit behind locks and its
//! memory is the direct map; here they are plain fields over simulated RAM):
//!
//! ```
//! use core::fmt;
//! use mm::{buddy::Buddy, sim::SimMem, slab::Slab, Page, Pfn, PhysMem, Zone};
//! use mm::paging::{Mapper, SimTlb, TableFrames};
//! use mm::vmalloc::{PagingBackend, VmBackend, VmSpace};
//! use shell::{Api, KernelLayout, MemHost, Platform, PoolTable, RawFault, Resources, Shell};
//! use shell::{Trap, VersionInfo, VmState, Width};
//!
//! struct Hardware {
//!     buddy: Buddy<'static>, slab: Box<Slab>, pools: PoolTable, mem: SimMem, res: Resources,
//!     vm: VmState, tlb: SimTlb, layout: KernelLayout, vmspace: VmSpace,
//! }
//! impl fmt::Write for Hardware {
//!     fn write_str(&mut self, s: &str) -> fmt::Result {
//!         Ok(()) // serial + framebuffer
//!     }
//! }
//! impl Platform for Hardware {
//!     fn version_info(&self) -> VersionInfo {
//!         VersionInfo { version: "0.1.0", boot: "limine", cmdline: String::new(), tainted: None }
//!     }
//!     fn clear_screen(&mut self) {}
//!     fn reboot(&mut self) -> &'static str { "reset failed" }
//!     fn poweroff(&mut self) -> &'static str { "still running" }
//!     fn trap(&mut self, _t: Trap) -> Result<(), &'static str> { Ok(()) }
//! }
//! impl MemHost for Hardware {
//!     type Mem = SimMem;
//!     type Clock = fn() -> u64;
//!     fn buddy<R>(&self, f: impl FnOnce(&Buddy<'_>, &SimMem) -> R) -> R {
//!         f(&self.buddy, &self.mem) // the kernel: with the buddy lock held
//!     }
//!     fn buddy_mut<R>(&mut self, f: impl FnOnce(&mut Buddy<'_>, &mut SimMem) -> R) -> R {
//!         f(&mut self.buddy, &mut self.mem)
//!     }
//!     fn slab<R>(&self, f: impl FnOnce(&Slab, &Buddy<'_>, &SimMem) -> R) -> R {
//!         f(&self.slab, &self.buddy, &self.mem)
//!     }
//!     fn slab_mut<R>(&mut self, f: impl FnOnce(&mut Slab, &mut Buddy<'_>, &mut SimMem) -> R) -> R {
//!         f(&mut self.slab, &mut self.buddy, &mut self.mem)
//!     }
//!     fn pools<R>(&self, f: impl FnOnce(&PoolTable) -> R) -> R {
//!         f(&self.pools)
//!     }
//!     fn pools_mut<R>(
//!         &mut self,
//!         f: impl FnOnce(&mut PoolTable, &mut Slab, &mut Buddy<'_>, &mut SimMem) -> R,
//!     ) -> R {
//!         f(&mut self.pools, &mut self.slab, &mut self.buddy, &mut self.mem)
//!     }
//!     fn mem(&self) -> &SimMem { &self.mem }
//!     type Frames = Buddy<'static>; // the kernel: the buddy, locked per frame
//!     type Tlb = SimTlb; // the kernel: invlpg and a full flush
//!     fn vm<R>(&self, f: impl FnOnce(&VmState, &SimMem) -> R) -> R {
//!         f(&self.vm, &self.mem) // the kernel: with the page-table lock held
//!     }
//!     fn vm_mut<R>(
//!         &mut self,
//!         f: impl FnOnce(&mut VmState, &mut Mapper<'_, SimMem, Buddy<'static>>, &mut SimTlb) -> R,
//!     ) -> R {
//!         f(&mut self.vm, &mut Mapper::new(&mut self.mem, &mut self.buddy), &mut self.tlb)
//!     }
//!     fn vm_layout(&self) -> KernelLayout { self.layout }
//!     fn vmspace<R>(&self, f: impl FnOnce(&VmSpace) -> R) -> R {
//!         f(&self.vmspace) // the kernel: with the vm-space lock held
//!     }
//!     fn vmspace_mut<R>(&mut self, f: impl FnOnce(&mut VmSpace, &mut dyn VmBackend) -> R) -> R {
//!         let root = self.vm.kernel_root; // the kernel: locks taken per backend call
//!         let mut be = PagingBackend::new(&mut self.mem, &mut self.buddy, &mut self.tlb, root);
//!         f(&mut self.vmspace, &mut be)
//!     }
//!     fn clock(&self) -> fn() -> u64 { || 0 } // the kernel: rdtsc
//!     fn heap_selftest(&mut self, _case: &str) -> Result<(), &'static str> { Ok(()) }
//!     // The I/O hooks (the kernel: a lock, `in`/`out`, the page tables and the
//!     // fault-safe accessors); this machine has no ports and maps nothing else.
//!     fn resources<R>(&self, f: impl FnOnce(&Resources) -> R) -> R { f(&self.res) }
//!     fn resources_mut<R>(&mut self, f: impl FnOnce(&mut Resources) -> R) -> R { f(&mut self.res) }
//!     fn port_in(&mut self, _port: u16, w: Width) -> u32 { w.max() as u32 }
//!     fn port_out(&mut self, _port: u16, _w: Width, _value: u32) {}
//!     fn port_in_str(&mut self, _port: u16, _w: Width, buf: &mut [u8]) { buf.fill(0xff) }
//!     fn port_out_str(&mut self, _port: u16, _w: Width, _buf: &[u8]) {}
//!     fn translate(&self, virt: u64) -> Option<u64> { self.mem.phys_of(virt) }
//!     fn raw_load(&self, virt: u64, _w: Width) -> Result<u64, RawFault> { Err(fault(virt)) }
//!     fn raw_store(&mut self, virt: u64, _w: Width, _v: u64) -> Result<(), RawFault> { Err(fault(virt)) }
//!     fn raw_read(&self, virt: u64, _buf: &mut [u8]) -> Result<(), RawFault> { Err(fault(virt)) }
//!     fn raw_fill(&mut self, virt: u64, _len: u64, _b: u8) -> Result<(), RawFault> { Err(fault(virt)) }
//!     fn raw_copy(&mut self, dst: u64, _src: u64, _len: u64) -> Result<(), RawFault> { Err(fault(dst)) }
//! }
//! fn fault(addr: u64) -> RawFault { RawFault::new(14, 0, addr) }
//!
//! let map = Box::leak(vec![Page::reserved(Zone::Dma); 1024].into_boxed_slice());
//! let mut buddy = Buddy::page_init(map, Pfn(1024), &[(Pfn(1), Pfn(1024))], &[]).unwrap();
//! let mut mem = SimMem::new(4 << 20, 0);
//! let root = buddy.alloc_table(&mut mem).unwrap(); // the kernel: its boot tables
//! let layout = KernelLayout { text: (0, 0), rodata: (0, 0), data: (0, 0), direct_map_end: 4 << 20, mem_map: (0, 0) };
//! let hw = Hardware {
//!     buddy, slab: Box::new(Slab::new()), pools: PoolTable::new(), mem, res: Resources::new(),
//!     vm: VmState::new(root), tlb: SimTlb::new(), layout, vmspace: VmSpace::new(),
//! };
//! let (mut sh, mut k) = (Shell::new(), Api::new(hw));
//! sh.banner_and_prompt(&mut k);
//! for &byte in b"alloc_page\r" {
//!     sh.feed(byte, &mut k); // from the serial / keyboard input loop
//! }
//! assert!(k.buddy.mm_stat().used > 0);
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod api;
pub mod check;
pub mod cmd;
pub mod handles;
pub mod line;
pub mod parse;
pub mod term;

pub use api::FbMode;
pub use api::ViewCmd;
pub use api::{
    addr_to_pfn_in, bench_kmalloc_in, cache_named, kmalloc_in, kmem_cache_alloc_in,
    kmem_cache_create_in, kmem_cache_destroy_in, kmem_cache_free_in, kmem_cache_shrink_in,
    slab_validate_in, Diagnostics, Kernel, KmallocBench, KmallocObj, MemAccess, MemApi, MemLayout,
    PageApi, PageBlock, PageInfo, PageSummary, Platform, PoolElem, PoolInfo, PoolSource, PoolTable,
    SlabApi, SlabObj, Trap, VersionInfo, ZoneStat, BENCH_LIVE, BENCH_SIZES, HEAP_SELFTESTS,
    MAX_POOLS, UNSUPPORTED,
};
pub use api::{slab_check_in, Api, MemHost, SlabCheck};
pub use api::{IoApi, IoError, Owned, RawFault, Resources, WalkStop, Width};
pub use api::{KernelLayout, MapBench, MapRequest, VmApi, VmError, VmState, VmTarget};
pub use api::{VmallocApi, VmallocError};
pub use check::{cmdline_check, Summary as CheckSummary};
pub use cmd::{commands, Args, CmdError, Command, Ctx, Target};
pub use handles::{Addr, HandleId, Handles, Object};
pub use line::{Event, History, LineEditor, LineError, MAX_LINE};
pub use term::PROMPT;

#[doc(hidden)]
pub use alloc::format as __format;

use core::fmt::Write;

/// The shell: line editor (with history) and handle table.
#[derive(Debug, Default)]
pub struct Shell {
    editor: LineEditor,
    handles: Handles,
    /// `free all` ran: shrink the caches once the command's memory is freed.
    shrink_pending: bool,
    /// Check mode: [`check::run`] after every command.
    check: bool,
}

impl Shell {
    /// A shell with empty history and no handles.
    pub fn new() -> Shell {
        Shell::default()
    }

    /// Prints the one-line banner and the first prompt.
    pub fn banner_and_prompt<K: Kernel>(&mut self, k: &mut K) {
        let v = k.version_info();
        let _ = write!(
            k,
            "memkern {} shell ({} boot). Type 'help' for commands.\r\n",
            term::one_line(v.version),
            term::one_line(v.boot)
        );
        let _ = k.write_str(PROMPT);
    }

    /// Handles one input byte: echoes it, and when a line ends runs it and prints
    /// the prompt again.
    pub fn feed<K: Kernel>(&mut self, byte: u8, k: &mut K) {
        match self.editor.feed(byte) {
            Event::Nothing => {}
            Event::Echo(s) => {
                let _ = k.write_str(&s);
            }
            Event::Cancel => {
                let _ = k.write_str("^C\r\n");
                let _ = k.write_str(PROMPT);
            }
            Event::Line(line) => {
                let _ = k.write_str("\r\n");
                match line {
                    Ok(text) => {
                        let _ = self.run(&text, k);
                    }
                    Err(e) => print_error(k, &CmdError::new(alloc::format!("{e}"))),
                }
                // The line is freed now: nothing of the command is left on the heap.
                self.shrink_if_asked(k);
                let _ = k.write_str(PROMPT);
            }
        }
    }

    /// Feeds every byte of `bytes`.
    pub fn feed_bytes<K: Kernel>(&mut self, bytes: &[u8], k: &mut K) {
        for &b in bytes {
            self.feed(b, k);
        }
    }

    /// Runs one command line (no echo, no prompt, not added to the history) and
    /// prints its output or its `error: ` line. Useful for boot-time scripts.
    ///
    /// In check mode (see [`Shell::set_check`]) the invariant check runs after
    /// every non-blank line except `check` itself, and a violation is printed as
    /// one more line, `error: invariant violated after 'LINE': DETAIL`.
    pub fn run_line<K: Kernel>(&mut self, line: &str, k: &mut K) -> Result<(), CmdError> {
        let result = self.run(line, k);
        self.shrink_if_asked(k);
        result
    }

    /// [`run_line`](Self::run_line) without the final cache shrink of `free all`
    /// (the caller does it once `line` is freed).
    fn run<K: Kernel>(&mut self, line: &str, k: &mut K) -> Result<(), CmdError> {
        let (result, shrink) = {
            let mut ctx = Ctx::new(k, &mut self.handles, self.editor.history());
            ctx.check = self.check;
            let r = cmd::run_line(&mut ctx, line);
            self.check = ctx.check;
            (r, ctx.shrink_caches)
        };
        self.shrink_pending |= shrink;
        if let Err(e) = &result {
            print_error(k, e);
        }
        let first = line.split_ascii_whitespace().next();
        if self.check && first.is_some_and(|w| !w.eq_ignore_ascii_case("check")) {
            if let Err(detail) = check::run(k, &self.handles) {
                let e = CmdError::new(alloc::format!(
                    "invariant violated after '{}': {detail}",
                    line.trim()
                ));
                print_error(k, &e);
                return Err(e);
            }
        }
        result
    }

    /// The cache shrink `free all` asked for (`kmem_cache_shrink_all`), run when
    /// the shell holds no heap memory of the command any more: the kernel heap is
    /// the slab allocator, and a slab holding the command line or a parsed word
    /// would stay (empty) afterwards.
    fn shrink_if_asked<K: Kernel>(&mut self, k: &mut K) {
        if core::mem::take(&mut self.shrink_pending) {
            // Kernels without a slab allocator answer UNSUPPORTED: nothing to give
            // back.
            let _ = k.kmem_cache_shrink_all();
        }
    }

    /// Turns check mode on or off (the `check on|off` command does the same;
    /// the kernel turns it on at boot for `mm.check=1`, see [`cmdline_check`]).
    pub fn set_check(&mut self, on: bool) {
        self.check = on;
    }

    /// True in check mode.
    pub fn check_mode(&self) -> bool {
        self.check
    }

    /// The live handles.
    pub fn handles(&self) -> &Handles {
        &self.handles
    }

    /// The handle table, for objects created outside a command.
    pub fn handles_mut(&mut self) -> &mut Handles {
        &mut self.handles
    }

    /// The lines entered so far.
    pub fn history(&self) -> &History {
        self.editor.history()
    }
}

/// Prints `error: MSG` as exactly one line.
fn print_error<W: Write + ?Sized>(w: &mut W, e: &CmdError) {
    let _ = write!(w, "error: {}\r\n", term::one_line(e.message()));
}
