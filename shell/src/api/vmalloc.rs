//! The vmalloc and ioremap area of the memory API ([`VmallocApi`]): Linux
//! `vmalloc`/`vzalloc`/`vfree`/`vmalloc_to_page` and
//! `ioremap`/`ioremap_wc`/`iounmap`, `/proc/vmallocinfo`, implemented once over
//! a [`MemHost`] on `mm::vmalloc::VmSpace`.
//!
//! The host keeps the [`VmSpace`] behind its own lock ([`MemHost::vmspace_mut`])
//! and hands it a `VmBackend` whose calls take the page-table and buddy locks
//! one call at a time, so the heap (page arrays, tree nodes) is never used
//! while an allocator lock is held.

use super::host::{Api, MemHost};
use super::MemLayout;
use super::UNSUPPORTED;
use core::fmt;
use mm::vmalloc::{AreaInfo, AreaKind, CacheMode, VmError as AreaError, VmSpace, VmStat};
use mm::{MmError, Pfn};

/// Why a vmalloc or ioremap call failed (nothing was changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmallocError {
    /// `mm::vmalloc` said no (bad size, misuse of a free, RAM, out of memory...).
    Area(AreaError),
    /// Anything else from the memory API (e.g. [`UNSUPPORTED`]).
    Mm(MmError),
}

impl From<AreaError> for VmallocError {
    fn from(e: AreaError) -> VmallocError {
        VmallocError::Area(e)
    }
}

impl fmt::Display for VmallocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmallocError::Area(e) => write!(f, "{e}"),
            VmallocError::Mm(e) => write!(f, "{e}"),
        }
    }
}

/// Who the shell's areas belong to in `/proc/vmallocinfo`.
pub const SHELL_CALLER: &str = "shell";

/// Virtually contiguous kernel memory and device mappings.
#[allow(unused_variables)]
pub trait VmallocApi {
    /// Linux `vmalloc(size)` (`vzalloc` with `zero`): the new area.
    fn vmalloc(&mut self, size: u64, zero: bool) -> Result<AreaInfo, VmallocError> {
        Err(VmallocError::Mm(UNSUPPORTED))
    }
    /// Linux `vfree(addr)`.
    fn vfree(&mut self, addr: u64) -> Result<(), VmallocError> {
        Err(VmallocError::Mm(UNSUPPORTED))
    }
    /// Linux `vmalloc_to_page(addr)`: the frame behind `addr`.
    fn vmalloc_to_page(&self, addr: u64) -> Result<Pfn, VmallocError> {
        Err(VmallocError::Mm(UNSUPPORTED))
    }
    /// Linux `ioremap(phys, size)` (uncached) or `ioremap_wc` (with `wc`): the
    /// new area (its `addr` is what the caller uses and frees).
    fn ioremap(&mut self, phys: u64, size: u64, wc: bool) -> Result<AreaInfo, VmallocError> {
        Err(VmallocError::Mm(UNSUPPORTED))
    }
    /// Linux `iounmap(addr)`.
    fn iounmap(&mut self, addr: u64) -> Result<(), VmallocError> {
        Err(VmallocError::Mm(UNSUPPORTED))
    }
    /// The `index`-th live area (vmalloc ones first, each in address order),
    /// `None` past the last: one line of `/proc/vmallocinfo` per call.
    fn vm_area_at(&self, index: usize) -> Result<Option<AreaInfo>, VmallocError> {
        Err(VmallocError::Mm(UNSUPPORTED))
    }
    /// `/proc/meminfo`'s `Vmalloc*` totals.
    fn vm_stat(&self) -> Result<VmStat, VmallocError> {
        Err(VmallocError::Mm(UNSUPPORTED))
    }
    /// How many frames of the vmalloc area starting at `addr` come from each
    /// zone, in `Zone::ALL` order (DMA, NORMAL, UNMAPPED).
    fn vmalloc_zones(&self, addr: u64) -> Result<[u64; 3], VmallocError> {
        Err(VmallocError::Mm(UNSUPPORTED))
    }
}

impl<H: MemHost> VmallocApi for Api<H> {
    fn vmalloc(&mut self, size: u64, zero: bool) -> Result<AreaInfo, VmallocError> {
        let f = if zero { "vzalloc" } else { "vmalloc" };
        self.host.log(format_args!("{f}({size})"));
        self.host.vmspace_mut(|v, be| {
            let a = if zero {
                v.vzalloc(size, SHELL_CALLER, be)?
            } else {
                v.vmalloc(size, SHELL_CALLER, be)?
            };
            v.area_info(a)
                .ok_or(VmallocError::Mm(MmError::Invalid("the new area vanished")))
        })
    }
    fn vfree(&mut self, addr: u64) -> Result<(), VmallocError> {
        self.host.log(format_args!("vfree({addr:#x})"));
        Ok(self.host.vmspace_mut(|v, be| v.vfree(addr, be))?)
    }
    fn vmalloc_to_page(&self, addr: u64) -> Result<Pfn, VmallocError> {
        Ok(self.host.vmspace(|v| v.vmalloc_to_page(addr))?)
    }
    fn ioremap(&mut self, phys: u64, size: u64, wc: bool) -> Result<AreaInfo, VmallocError> {
        let f = if wc { "ioremap_wc" } else { "ioremap" };
        self.host.log(format_args!("{f}({phys:#x}, {size})"));
        let cache = if wc {
            CacheMode::WriteCombining
        } else {
            CacheMode::Uncached
        };
        self.host.vmspace_mut(|v, be| {
            let a = v.ioremap_cache(phys, size, cache, SHELL_CALLER, be)?;
            v.area_info(a)
                .ok_or(VmallocError::Mm(MmError::Invalid("the new area vanished")))
        })
    }
    fn iounmap(&mut self, addr: u64) -> Result<(), VmallocError> {
        self.host.log(format_args!("iounmap({addr:#x})"));
        Ok(self.host.vmspace_mut(|v, be| v.iounmap(addr, be))?)
    }
    fn vm_area_at(&self, index: usize) -> Result<Option<AreaInfo>, VmallocError> {
        Ok(self.host.vmspace(|v| v.areas().nth(index)))
    }
    fn vm_stat(&self) -> Result<VmStat, VmallocError> {
        Ok(self.host.vmspace(VmSpace::stat))
    }
    fn vmalloc_zones(&self, addr: u64) -> Result<[u64; 3], VmallocError> {
        let layout = self.host.buddy(|b, _| MemLayout::from_buddy(b));
        self.host.vmspace(|v| {
            let live = v.vmalloc_areas().get(addr).ok_or(AreaError::NotAllocated {
                addr,
                kind: AreaKind::Vmalloc,
            })?;
            let mut n = [0u64; 3];
            for &p in &live.data.pages {
                n[layout.zone_of(p) as usize] += 1;
            }
            Ok(n)
        })
    }
}
