//! The I/O area of the memory API ([`IoApi`]): the resource trees
//! (`request_region`, `request_mem_region` and their releases, `/proc/iomem`,
//! `/proc/ioports`), port I/O (`inb`..`outsl`), MMIO accessors (`readb`..
//! `writeq`) and fault-safe raw access to any kernel virtual address (`peek`,
//! `poke`, `fill`, `copy`).
//!
//! Raw access never crashes: the kernel does it through its exception-table
//! accessors, so a page fault or general-protection fault comes back as a
//! [`RawFault`], decoded. Writes into what the kernel owns (resources it marked
//! [`ResFlags::PROTECTED`]: its image, mem_map, page tables, COM1, the PICs...;
//! and RAM the shell holds no handle for: slab pages, other allocated blocks,
//! reserved RAM) are refused with [`IoError::Refused`] unless forced.

use super::UNSUPPORTED;
use crate::handles::VmFlags;
use core::fmt;
use mm::paging::{PageTableFlags, Walk, WalkEnd};
use mm::resource::{ResFlags, ResKind, ResourceError, Row, Span};
use mm::MmError;

/// The resource trees the kernel keeps (256 nodes, both trees together).
pub type Resources = mm::resource::ResourceTree<256>;

/// The width of one access: 1, 2, 4 or 8 bytes (`b`, `w`, `l`, `q` as in
/// `inb`, `readq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 1 byte.
    B = 1,
    /// 2 bytes.
    W = 2,
    /// 4 bytes.
    L = 4,
    /// 8 bytes (memory only).
    Q = 8,
}

impl Width {
    /// Every width, narrowest first.
    pub const ALL: [Width; 4] = [Width::B, Width::W, Width::L, Width::Q];
    /// Bytes.
    pub const fn bytes(self) -> u64 {
        self as u64
    }
    /// Its letter: `b`, `w`, `l`, `q`.
    pub const fn letter(self) -> char {
        match self {
            Width::B => 'b',
            Width::W => 'w',
            Width::L => 'l',
            Width::Q => 'q',
        }
    }
    /// The width of `bytes` (1, 2, 4, 8).
    pub fn from_bytes(bytes: u64) -> Option<Width> {
        Width::ALL.into_iter().find(|w| w.bytes() == bytes)
    }
    /// The largest value it holds.
    pub const fn max(self) -> u64 {
        match self {
            Width::Q => u64::MAX,
            w => (1u64 << (8 * w as u64)) - 1,
        }
    }
}

/// A CPU exception taken by a raw access and resumed at its fixup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFault {
    /// 14 (#PF) or 13 (#GP).
    pub vector: u8,
    /// The error code the CPU pushed.
    pub error_code: u64,
    /// For a page fault the faulting address (CR2); for a general-protection
    /// fault the address the access was aimed at.
    pub addr: u64,
    /// For a page fault: where the walk of `addr` in the kernel's tables
    /// stops (`None` when the host could not walk).
    pub walk: Option<WalkStop>,
}

impl RawFault {
    /// A fault without a walk.
    pub const fn new(vector: u8, error_code: u64, addr: u64) -> RawFault {
        RawFault {
            vector,
            error_code,
            addr,
            walk: None,
        }
    }
}

/// Where a page-table walk stops, as a fault message says it:
/// `PD entry not present`, `PML4 entry has the reserved PS bit`, or the
/// present leaf that maps the address with its rights. The outcome of a
/// [`Walk`] without its entries (small enough to travel in an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkStop {
    /// Where and why the walk ended.
    pub end: WalkEnd,
    /// For [`WalkEnd::Page`]: the leaf's flags.
    pub leaf: PageTableFlags,
}

impl WalkStop {
    /// The stop of walk `w`.
    pub fn of(w: &Walk) -> WalkStop {
        let leaf = match w.end {
            WalkEnd::Page { .. } => w
                .steps()
                .last()
                .map_or(PageTableFlags::empty(), |s| s.flags()),
            _ => PageTableFlags::empty(),
        };
        WalkStop { end: w.end, leaf }
    }
}

impl fmt::Display for WalkStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            WalkEnd::NotPresent { level } => write!(f, "{level} entry not present"),
            WalkEnd::Reserved { level } => write!(f, "{level} entry has the reserved PS bit"),
            WalkEnd::Page { phys, size } => write!(
                f,
                "mapped by a present {size} page (phys {:#x}, {})",
                phys.as_u64(),
                VmFlags(self.leaf)
            ),
        }
    }
}

impl fmt::Display for RawFault {
    /// `page fault at 0x...: page not present, read, kernel mode`, or
    /// `general protection fault at 0x... (non-canonical address?)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = trap::name_of(self.vector);
        let name = name.split_once(' ').map_or(name, |(_, n)| n);
        let code = trap::ErrorCode {
            vector: self.vector,
            code: self.error_code,
        };
        write!(f, "{name} at {:#018x}", self.addr)?;
        match self.vector {
            14 => {
                write!(f, "{code}")?;
                match &self.walk {
                    Some(w) => write!(f, "; walk: {w}"),
                    None => Ok(()),
                }
            }
            13 if self.error_code == 0 => {
                f.write_str(" (a non-canonical address, or an access the CPU refuses)")
            }
            _ => write!(f, " (error code {:#x}{code})", self.error_code),
        }
    }
}

/// What a refused write would have hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owned {
    /// A resource the kernel registered as its own.
    Resource(ResKind, Span),
    /// A frame of the slab allocator that is not the memory of a shell handle.
    SlabPage(u64),
    /// An allocated block the shell holds no handle for.
    Allocated(u64),
    /// RAM the kernel reserved for itself.
    ReservedRam(u64),
}

impl fmt::Display for Owned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Owned::Resource(kind, s) => {
                let w = kind.width();
                write!(
                    f,
                    "'{}' ({} {:0w$x}-{:0w$x}), the kernel's own",
                    s.name,
                    kind.word(),
                    s.start,
                    s.end
                )
            }
            Owned::SlabPage(p) => write!(
                f,
                "a slab page of the kernel heap (phys {p:#x}) outside every shell handle"
            ),
            Owned::Allocated(p) => write!(
                f,
                "a block allocated by someone else (phys {p:#x}; the shell has no handle on it)"
            ),
            Owned::ReservedRam(p) => write!(f, "RAM the kernel reserved (phys {p:#x})"),
        }
    }
}

/// Why an I/O or raw-access call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The access faulted (resumed at the accessor's fixup).
    Fault(RawFault),
    /// A write into something the kernel owns, without `force`. `port` is true
    /// for a port write.
    Refused { addr: u64, port: bool, owner: Owned },
    /// The resource trees said no.
    Resource(ResourceError),
    /// A port range past 0xffff, or an 8-byte port access.
    BadPort { port: u64, width: Width },
    /// A memory range that wraps around the address space.
    BadRange { addr: u64, len: u64 },
    /// Anything else from the memory API (e.g. [`UNSUPPORTED`]).
    Mm(MmError),
}

impl From<ResourceError> for IoError {
    fn from(e: ResourceError) -> IoError {
        IoError::Resource(e)
    }
}

impl From<RawFault> for IoError {
    fn from(f: RawFault) -> IoError {
        IoError::Fault(f)
    }
}

impl From<MmError> for IoError {
    fn from(e: MmError) -> IoError {
        IoError::Mm(e)
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IoError::Fault(x) => write!(f, "{x}"),
            IoError::Refused { addr, port, owner } => {
                if port {
                    write!(f, "refusing to write port {addr:#x}: it is {owner}")?;
                } else {
                    write!(f, "refusing to write {addr:#018x}: it is {owner}")?;
                }
                f.write_str("; add 'force' to write anyway")
            }
            IoError::Resource(e) => write!(f, "{e}"),
            IoError::BadPort { port, width } => write!(
                f,
                "port {port:#x} with width {}: ports are 0..=0xffff and 1, 2 or 4 bytes wide",
                width.bytes()
            ),
            IoError::BadRange { addr, len } => {
                write!(f, "range {addr:#x}+{len:#x} wraps around the address space")
            }
            IoError::Mm(e) => write!(f, "{e}"),
        }
    }
}

/// Ports, MMIO, raw memory and the resource trees. Writes take `force`: without
/// it a write into what the kernel owns is [`IoError::Refused`].
#[allow(unused_variables)]
pub trait IoApi {
    /// Linux `request_region(start, n, name)` (ports) or
    /// `request_mem_region(start, n, name)` (physical addresses): claims the range
    /// as busy.
    fn request_resource(
        &mut self,
        kind: ResKind,
        start: u64,
        n: u64,
        name: &str,
    ) -> Result<Span, IoError> {
        Err(UNSUPPORTED.into())
    }
    /// Linux `release_region(start, n)` / `release_mem_region(start, n)`.
    fn release_resource(&mut self, kind: ResKind, start: u64, n: u64) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
    /// Line `index` of `/proc/iomem` (`Mem`) or `/proc/ioports` (`Io`), `None`
    /// past the last.
    fn resource_row(&self, kind: ResKind, index: usize) -> Result<Option<Row>, IoError> {
        Err(UNSUPPORTED.into())
    }
    /// `inb`/`inw`/`inl`.
    fn port_in(&mut self, port: u64, width: Width) -> Result<u32, IoError> {
        Err(UNSUPPORTED.into())
    }
    /// `outb`/`outw`/`outl`.
    fn port_out(
        &mut self,
        port: u64,
        width: Width,
        value: u32,
        force: bool,
    ) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
    /// `insb`/`insw`/`insl`: `buf.len() / width` reads of the same port.
    fn port_in_str(&mut self, port: u64, width: Width, buf: &mut [u8]) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
    /// `outsb`/`outsw`/`outsl`: `buf.len() / width` writes to the same port.
    fn port_out_str(
        &mut self,
        port: u64,
        width: Width,
        buf: &[u8],
        force: bool,
    ) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
    /// `readb`/`readw`/`readl`/`readq` at any kernel virtual address.
    fn mmio_read(&self, virt: u64, width: Width) -> Result<u64, IoError> {
        Err(UNSUPPORTED.into())
    }
    /// `writeb`/`writew`/`writel`/`writeq` at any kernel virtual address.
    fn mmio_write(
        &mut self,
        virt: u64,
        width: Width,
        value: u64,
        force: bool,
    ) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
    /// Reads `buf.len()` bytes at any kernel virtual address (`peek`).
    fn peek(&self, virt: u64, buf: &mut [u8]) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
    /// Sets `len` bytes at `virt` to `byte` (`fill`).
    fn raw_fill(&mut self, virt: u64, len: u64, byte: u8, force: bool) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
    /// Copies `len` bytes from `src` to `dst` (`memmove`; `copy`).
    fn raw_copy(&mut self, dst: u64, src: u64, len: u64, force: bool) -> Result<(), IoError> {
        Err(UNSUPPORTED.into())
    }
}

/// Whether `flags` marks a resource whose writes are refused unless forced.
pub fn is_protected(flags: ResFlags) -> bool {
    flags.contains(ResFlags::PROTECTED)
}
