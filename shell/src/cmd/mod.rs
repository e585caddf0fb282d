//! The command table and how a line becomes a command call.
//!
//! Each [`Command`] is a name, a one-line usage, a one-line summary, a longer help
//! text and a handler `fn(&mut Ctx, &mut Args) -> Result<(), CmdError>`. A handler
//! reads its arguments through [`Args`], calls [`Args::end`], then acts through
//! [`Ctx`] (the kernel, the handle table, the history) and prints with `writeln!`
//! on the `Ctx`. Returning `Err` makes the shell print the one `error: ` line.
//!
//! Adding a command is one entry in [`COMMANDS`] plus one handler function
//! (platform commands live in `cmd/base.rs`, memory commands in `cmd/mem.rs`,
//! page-level commands in `cmd/pages.rs`, slab-level commands in `cmd/slab.rs`,
//! fault injection in `cmd/fault.rs`).

pub mod args;
mod base;
mod check;
mod fault;
mod mem;
pub mod pages;
pub mod slab;

pub use args::{Args, Target};

use crate::handles::{HandleError, HandleId, Handles, Object};
use crate::kernel::Kernel;
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

/// Every command, in the order `help` lists them.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "help",
        usage: "help [CMD]",
        summary: "list the commands, or explain one",
        help: "Numbers: 4096, 0x1000, 1_000, and sizes 4K, 2M, 1G (powers of 1024).\n\
               Handles: objects you create are #1, #2, ...; 'handles' lists them.",
        run: base::help,
    },
    Command {
        name: "echo",
        usage: "echo [ARG...]",
        summary: "print the arguments joined by one space",
        help: "Double quotes keep spaces: echo \"a  b\" prints 'a  b'.",
        run: base::echo,
    },
    Command {
        name: "history",
        usage: "history",
        summary: "list the last lines entered, numbered",
        help: "Up and Down walk the same list while editing a line.",
        run: base::history,
    },
    Command {
        name: "clear",
        usage: "clear",
        summary: "clear the screen",
        help: "Sends ESC[2J ESC[H to the serial terminal and clears the framebuffer console.",
        run: base::clear,
    },
    Command {
        name: "version",
        usage: "version",
        summary: "print the kernel version, boot path and command line",
        help: "",
        run: base::version,
    },
    Command {
        name: "reboot",
        usage: "reboot",
        summary: "reset the machine",
        help: "Prints an error if the reset did not happen.",
        run: base::reboot,
    },
    Command {
        name: "poweroff",
        usage: "poweroff",
        summary: "power the machine off (QEMU: exit with success status)",
        help: "Prints an error if the machine is still running afterwards.",
        run: base::poweroff,
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
        run: base::trap,
    },
    Command {
        name: "memstat",
        usage: "memstat",
        summary: "print mm_stat() and per-zone numbers, in bytes",
        help: "One 'name: value' line for total, used, free, shared, cache_used, cache_free,\n\
               available (bytes), then one line per zone:\n\
               'zone NAME: total=.. used=.. free=.. free_pages=.. managed_pages=..\n\
               min_pages=.. low_pages=.. high_pages=..'. The last three are the zone's\n\
               watermarks (see 'help zoneinfo').",
        run: mem::memstat,
    },
    Command {
        name: "handles",
        usage: "handles",
        summary: "list the live handles",
        help: "Each line is '#N kind key=value...', as printed when the object was made.",
        run: mem::handles,
    },
    Command {
        name: "free",
        usage: "free #N|ADDR|all",
        summary: "release a handle's object with the matching free function",
        help: "free #N: by handle. free ADDR: the handle whose virt (or else phys) address\n\
               is ADDR. free all, the one bulk command: releases every live handle it can,\n\
               newest first, then has the caches give back their empty slabs; it ends with\n\
               a single error: line naming the handles it could not release (they stay live).",
        run: mem::free,
    },
    Command {
        name: "kmalloc",
        usage: "kmalloc SIZE [GFP...]",
        summary: "kmalloc: a physically contiguous object of SIZE bytes",
        help: "SIZE is 1..=1M; the object is the next power of two (at least 32 bytes),\n\
               aligned to its size: obj=128 for 80. GFP: GFP_KERNEL (default), GFP_ATOMIC,\n\
               GFP_DMA (from the dma-kmalloc caches, below 16 MiB), __GFP_HIGHMEM (ignored),\n\
               __GFP_ZERO. free #N (or kfree #N) calls kfree.",
        run: slab::kmalloc,
    },
    Command {
        name: "kzalloc",
        usage: "kzalloc SIZE [GFP...]",
        summary: "kzalloc: kmalloc with __GFP_ZERO (see it with 'dump #N')",
        help: "See 'help kmalloc'. free #N (or kfree #N) calls kfree.",
        run: slab::kzalloc,
    },
    Command {
        name: "kfree",
        usage: "kfree ADDR|#N",
        summary: "kfree: free a kmalloc object, or any address as given",
        help: KFREE_HELP,
        run: slab::kfree,
    },
    Command {
        name: "cache",
        usage: "cache create|alloc|free|destroy|shrink|list ...",
        summary: "object caches: kmem_cache_create/alloc/free/destroy",
        help: CACHE_HELP,
        run: slab::cache,
    },
    Command {
        name: "caches",
        usage: "caches",
        summary: "list the slab caches with their sizes and object counts",
        help: "Columns: name, size (usable bytes of an object), obj (stride: object,\n\
               debug metadata and alignment), align, active (objects in use), total\n\
               (objects in all slabs), slabs, pg (pages per slab), dbg (slub_debug letters)\n\
               and flags (kmalloc, dma, hw: SLAB_HWCACHE_ALIGN, panic: SLAB_PANIC).",
        run: slab::caches,
    },
    Command {
        name: "mempool",
        usage: "mempool create|alloc|free|destroy|info ...",
        summary: "mempool_create/alloc/free/destroy: pools with a reserve",
        help: MEMPOOL_HELP,
        run: slab::mempool,
    },
    Command {
        name: "slabinfo",
        usage: "slabinfo",
        summary: "every slab cache, as /proc/slabinfo (version 2.1)",
        help: "Exactly the Linux format (lines are wider than 80 columns). objsize is the\n\
               stride; tunables and sharedavail are 0 as in SLUB; active_slabs are slabs\n\
               with an object in use.",
        run: slab::slabinfo,
    },
    Command {
        name: "slub_debug",
        usage: "slub_debug [SPEC|reports|clear|validate [NAME]]",
        summary: "slab debugging: red zones, poison, corruption reports",
        help: SLUB_DEBUG_HELP,
        run: slab::slub_debug,
    },
    Command {
        name: "selftest",
        usage: "selftest slab|heap",
        summary: "run the slab or kernel-heap selftest",
        help: "selftest slab: each scenario makes a temporary debug cache, corrupts it the\n\
               way Linux's slub_kunit does (red zone, poison, free pointer, double and\n\
               interior free, bitmap), and counts the errors detected; then destroys the\n\
               cache. Prints 'NAME: N errors detected' per scenario, then a summary.\n\
               selftest heap: exercises Rust's alloc on the kernel heap (every kmalloc\n\
               class, 1 MiB, 3 MiB of whole pages, 4 KiB alignment, growth past 1 MiB),\n\
               checks contents and alignment, and that memstat is unchanged afterwards.\n\
               Both leave nothing allocated.",
        run: slab::selftest,
    },
    Command {
        name: "check",
        usage: "check [on|off]",
        summary: "check allocators and handles now, or after each command",
        help: CHECK_HELP,
        run: check::check,
    },
    Command {
        name: "bench",
        usage: "bench kmalloc [ITER]",
        summary: "time kmalloc/kfree in the kernel, in CPU cycles",
        help: "ITER is 1..=10000000 (default 100000). Runs ITER kmalloc(80)+kfree pairs,\n\
               then ITER steps of a mixed workload (sizes 16..4096, up to 64 objects\n\
               live), timed with rdtsc, and prints cycles per pair and per operation.\n\
               Everything is freed again.",
        run: slab::bench,
    },
    Command {
        name: "fail",
        usage: "fail [page|slab|all [SETTING=N...]|off [page|slab|all]]",
        summary: "fault injection: page or slab allocations fail on purpose",
        help: FAIL_HELP,
        run: fault::fail,
    },
    Command {
        name: "pages",
        usage: "pages N [DMA|NORMAL|UNMAPPED] [FLAG...]",
        summary: "DragonOS alloc_pages: N contiguous pages from a zone",
        help: "N is 1..=63; the zone defaults to NORMAL (DMA: below 16 MiB; UNMAPPED: above\n\
               the direct map, virt=none). FLAGs: PGT_MAPPED, KERNEL_INIT, DEVICE, KERNEL,\n\
               SHARED (PAGE_ prefix allowed). free #N calls free_pages(page, N).",
        run: pages::pages,
    },
    Command {
        name: "alloc_pages",
        usage: "alloc_pages ORDER [GFP...]",
        summary: "Linux alloc_pages: 2^ORDER pages as a struct page",
        help: GFP_HELP_STRUCT_PAGE,
        run: pages::alloc_pages,
    },
    Command {
        name: "alloc_page",
        usage: "alloc_page [GFP...]",
        summary: "Linux alloc_page: one page as a struct page",
        help: "alloc_pages(gfp, 0); see 'help alloc_pages'.\n\
               free #N calls __free_pages(page, 0).",
        run: pages::alloc_page,
    },
    Command {
        name: "get_free_pages",
        usage: "get_free_pages ORDER [GFP...]",
        summary: "Linux __get_free_pages: 2^ORDER pages by address",
        help: "ORDER is 0..=10. Mapped memory only: NORMAL then DMA (GFP_DMA: DMA only;\n\
               __GFP_HIGHMEM is ignored); an error if none is free. __GFP_ZERO zeroes.\n\
               free #N calls free_pages(addr, ORDER).",
        run: pages::get_free_pages,
    },
    Command {
        name: "get_free_page",
        usage: "get_free_page [GFP...]",
        summary: "Linux __get_free_page: one page by address",
        help: "__get_free_pages(gfp, 0). free #N calls free_page(addr).",
        run: pages::get_free_page,
    },
    Command {
        name: "get_zeroed_page",
        usage: "get_zeroed_page [GFP...]",
        summary: "Linux get_zeroed_page: one zeroed page by address",
        help: "See the zeroes with 'dump #N'. free #N calls free_page(addr).",
        run: pages::get_zeroed_page,
    },
    Command {
        name: "page_alloc",
        usage: "page_alloc",
        summary: "MOS page_alloc: one zeroed page, refcount 1",
        help: "Out of memory is MOS -E_NO_MEM. free #N (or page_decref #N) calls\n\
               page_decref(page).",
        run: pages::page_alloc,
    },
    Command {
        name: "page_decref",
        usage: "page_decref PFN|ADDR|#N",
        summary: "MOS page_decref: drop a reference, free at 0",
        help: REFCOUNT_HELP,
        run: pages::page_decref,
    },
    Command {
        name: "free_pages",
        usage: "free_pages PFN|ADDR|#N N",
        summary: "DragonOS free_pages(page, n), args as given",
        help: RAW_FREE_HELP,
        run: pages::raw_free_pages,
    },
    Command {
        name: "__free_pages",
        usage: "__free_pages PFN|ADDR|#N ORDER",
        summary: "Linux __free_pages(page, order), args as given",
        help: RAW_FREE_HELP,
        run: pages::raw_free_pages_order,
    },
    Command {
        name: "get_page",
        usage: "get_page PFN|ADDR|#N",
        summary: "Linux get_page: take a reference, print the new count",
        help: REFCOUNT_HELP,
        run: pages::get_page,
    },
    Command {
        name: "put_page",
        usage: "put_page PFN|ADDR|#N",
        summary: "Linux put_page: drop a reference, free at 0",
        help: REFCOUNT_HELP,
        run: pages::put_page,
    },
    Command {
        name: "page",
        usage: "page PFN|ADDR|#N",
        summary: "show one struct page: state, order, refcount, flags",
        help: "Line 1: pfn, phys, virt (page_address, or none), zone. Line 2: state (free,\n\
               allocated, tail, slab, reserved, cached), order and n (pages) of a block head,\n\
               refcount, head (of a tail), flags, ram (no: a hole), handle (the owner).\n\
               PFN: a number (0x1e4c) or pfn=N. ADDR: a physical or direct-map virtual\n\
               address written as 0x + 16 hex digits, or phys=A, virt=A.\n\
               #N: the first page of the handle's object.",
        run: pages::page,
    },
    Command {
        name: "buddyinfo",
        usage: "buddyinfo",
        summary: "free blocks per zone and order, as /proc/buddyinfo",
        help: "Columns: orders 0..10 (blocks of 4 KiB .. 4 MiB). As in Linux, blocks held\n\
               in the per-zone caches are not counted (zoneinfo shows them as cached).",
        run: pages::buddyinfo,
    },
    Command {
        name: "zoneinfo",
        usage: "zoneinfo",
        summary: "per zone: pfn range, page counts and watermarks",
        help: "Ranges are half-open (end excluded). present: RAM in the zone; managed: RAM\n\
               under the allocator; free: free pages, the cached ones (per-zone caches)\n\
               included. Then the lowmem limit (end of the direct map) and max_pfn.\n\
               Watermarks (Linux's, set at boot from min_free_kbytes=N, default\n\
               sqrt(16 x lowmem KiB)): no command takes a zone's free lists below min;\n\
               those pages are the kernel's reserve, for the shell's own memory when a\n\
               user has taken the rest. A request walks its zones at low first, then\n\
               at min. high is shown only (memkern reclaims nothing in the background).",
        run: pages::zoneinfo,
    },
    Command {
        name: "pagemap",
        usage: "pagemap [START_PFN [END_PFN]]",
        summary: "picture of physical memory by page state and zone",
        help: "Default: all of the mem_map. One character per cell of 2^k pages, 48 cells\n\
               per row, k chosen so that the range fits in about 32 rows. Each row starts\n\
               with its physical address and zone (D DMA, N NORMAL, U UNMAPPED) and stays\n\
               in one zone. Legend: . free  c cached  # allocated  S slab\n\
               K reserved RAM (kernel image, mem_map...)  ' ' not RAM. A mixed cell shows\n\
               the state of most of its pages (on a tie, the busier state).",
        run: pages::pagemap,
    },
    Command {
        name: "dump",
        usage: "dump #N [OFFSET [LEN]]",
        summary: "hex dump of a handle's memory (at most 256 bytes)",
        help: "LEN defaults to 64 (at most 256; 16 bytes per line); offsets count from the\n\
               start of the object. Works on kmalloc, cache_obj, pool_obj, pages, gfp_pages,\n\
               gfp_addr, mos_page and vmalloc handles with a virtual address.",
        run: pages::dump,
    },
    Command {
        name: "bzero",
        usage: "bzero #N [OFFSET [LEN]]",
        summary: "MOS bzero: zero a handle's memory, or part of it",
        help: "Default: from OFFSET (0) to the end of the object; the range must lie\n\
               inside it. Same handles as 'dump'.",
        run: pages::bzero,
    },
    Command {
        name: "bcopy",
        usage: "bcopy #SRC #DST [LEN]",
        summary: "MOS bcopy: copy one handle's memory to another's",
        help: "LEN defaults to the size of the smaller object and must fit in both.\n\
               Same handles as 'dump'.",
        run: pages::bcopy,
    },
];

const KFREE_HELP: &str =
    "#N, or ADDR of a handle's object: frees the kmalloc object and retires the
handle. Any other ADDR is passed to kfree exactly as given, so that the slab
allocator's own checks answer: a pointer into the middle of an object, a freed
object (double free), an object of a kmem_cache, or memory outside every slab
is reported as an error and changes nothing; kfree 0 is kfree(NULL), a no-op.
A live object that no handle owns (the kernel's own, the shell's own strings,
a mempool's reserve) is never freed this way.";

const CACHE_HELP: &str = "cache create NAME SIZE [ALIGN] [FLAG...]
    kmem_cache_create: a 'cache' handle (obj= is the stride of its objects)
cache alloc NAME [GFP...]   kmem_cache_alloc: a 'cache_obj' handle
cache free NAME ADDR|#N     kmem_cache_free (checks as for kfree)
cache destroy NAME          kmem_cache_destroy; refused while objects live
cache shrink NAME           kmem_cache_shrink: give back the empty slabs
cache list                  the same as 'caches'
NAME: 1..=31 bytes. SIZE: 1..=1M. ALIGN: 0 (= 8) or a power of two.
FLAGs (SLAB_ prefix optional): SLAB_HWCACHE_ALIGN (64-byte alignment),
SLAB_CACHE_DMA (slabs below 16 MiB), SLAB_PANIC (Linux panics if the creation
fails; memkern says so in the error), and the slub_debug flags
SLAB_CONSISTENCY_CHECKS (F), SLAB_RED_ZONE (Z), SLAB_POISON (P),
SLAB_STORE_USER (U). free #N of a cache handle destroys the cache.";

const MEMPOOL_HELP: &str = "mempool create NAME MIN_NR kmalloc SIZE
    mempool_create_kmalloc_pool: elements from kmalloc(SIZE)
mempool create NAME MIN_NR cache CACHE
    mempool_create_slab_pool: elements from kmem_cache_alloc(CACHE)
mempool alloc NAME [GFP...]  mempool_alloc: a 'pool_obj' handle; from=backing,
    or from=reserve when the backing allocator is out of memory
mempool free NAME ADDR|#N    mempool_free: refills the reserve up to MIN_NR
mempool destroy NAME         mempool_destroy; refused while elements are out
mempool info [NAME]          min_nr, curr_nr (in reserve), outstanding
MIN_NR is 0..=64 elements, allocated at creation. free #N of a mempool handle
destroys the pool.";

const SLUB_DEBUG_HELP: &str = "slub_debug            caches with debug options, and the error total
slub_debug SPEC       Linux slub_debug= syntax, applied now: letters F (sanity
    checks), Z (red zones), P (poison), U (alloc/free sites), or - for off;
    then optionally ,CACHE[,CACHE...] (a * ends a prefix: dma-kmalloc-*);
    blocks separated by ;. Without a cache list: every cache, and the default
    for caches created later. Caches with live objects cannot change.
slub_debug reports    the corruption reports kept (the last 32)
slub_debug clear      forget the reports (the total keeps counting)
slub_debug validate [NAME]  check every object of a cache, or of all caches
Example: 'slub_debug FZPU,kmalloc-8k', 'kmalloc 5000' (#N), 'bzero #N 5000 8'
(the slack after 5000 bytes is red zone), 'kfree #N': 'slub_debug reports'
shows the overwritten red zone and where the object was allocated.";

const FAIL_HELP: &str = "fail                  both injectors: settings, calls, failures injected
fail page|slab|all [SETTING=N...]  arm Linux's fail_page_alloc (page API: pages,
    alloc_pages, get_free_pages, page_alloc...), failslab (kmalloc, cache and
    mempool allocations), or both. SETTINGs (defaults in brackets):
    probability=P  percent of eligible calls that fail [100]
    interval=N     only every N-th eligible call may fail [1]
    times=N        stop after N failures; -1: unlimited [-1]
    space=N        budget (pages, or bytes for the slab) used up before any call
                   fails [0]
    seed=S         pseudo-random seed: the same seed fails the same calls [1]
fail off [page|slab|all]  disarm (default: both); the caches work again
A failed call is 'out of memory' and changes nothing. The kernel's own heap is
never failed. Boot options (Linux syntax, times -1: unlimited):
fail_page_alloc=<interval>,<probability>,<space>,<times>, failslab= likewise.";

const CHECK_HELP: &str = "check       run every consistency check now: the page allocator's own
            (Buddy::check), slab validation of every cache, and every live
            handle against the allocators (its pages or object still allocated
            as it says; its cache or pool still there). Prints one 'check: ok'
            line, or one error line naming the first violation.
check on    check mode: run the checks after every command (also: mm.check=1
            on the kernel command line); check off stops it.
In check mode a violation is reported at once as
    error: invariant violated after 'CMD': DETAIL
right after the output of the command CMD that caused it. This is the one
case where a command that succeeded is followed by an error line (and where a
failed command may print a second one). Slab findings are also kept in
'slub_debug reports'. Deliberate corruption, such as writing into the red zone
of a debug cache with bzero, is a violation too.";

const GFP_HELP_STRUCT_PAGE: &str =
    "ORDER is 0..=10. GFP: GFP_KERNEL (default), GFP_ATOMIC, GFP_DMA, __GFP_HIGHMEM,\n\
     __GFP_ZERO. Zones: NORMAL then DMA; GFP_DMA: DMA only; __GFP_HIGHMEM: UNMAPPED\n\
     first (then virt=none). free #N calls __free_pages(page, ORDER).";

const RAW_FREE_HELP: &str =
    "Calls the page allocator's free function with the PFN and count or order
exactly as given, so that its own misuse checks answer: freeing a free page
(double free), a reserved or kernel page, a slab page, with the wrong count or
order, a page that is not the first of its block, or a PFN outside RAM is
reported as an error and changes nothing. On success the handle that owned the
block is retired. Blocks the kernel allocated for itself are never freed this
way. Use 'free #N' for the ordinary release.";

const REFCOUNT_HELP: &str =
    "Works on the first page of a block of a live handle (pages, gfp_pages,\n\
     gfp_addr, mos_page): PFN (0x1e4c or pfn=N), ADDR (0x + 16 hex digits, phys=A,\n\
     virt=A) or #N. When the last reference goes the pages are freed and the handle\n\
     is retired. While a block holds more than one reference, free #N refuses it.";

/// The command called `name` (any case).
pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name.eq_ignore_ascii_case(name))
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
        for (i, c) in COMMANDS.iter().enumerate() {
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
                COMMANDS[..i].iter().all(|d| d.name != c.name),
                "duplicate {}",
                c.name
            );
            assert!(core::ptr::eq(
                find(&c.name.to_ascii_uppercase()).unwrap(),
                c
            ));
        }
        assert!(find("nope").is_none());
    }
}
