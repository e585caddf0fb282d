//! What vmalloc and ioremap need from the kernel's page tables, and nothing more:
//! map one 4 KiB page at a kernel virtual address, unmap one, flush a range from
//! the TLB. [`KernelMapper`] is the trait the real page tables implement;
//! [`FakeMapper`] is a `BTreeMap` model of it for host tests and benchmarks.
//!
//! Also the mapping attributes: [`Prot`] (rights) and [`CacheMode`] (memory type
//! through the PAT), with their x86_64 PTE bits.
//!
//! # The PAT layout
//!
//! A 4 KiB PTE selects one of the eight entries of the IA32_PAT MSR (0x277) with
//! three bits: index = `PAT`(bit 7) << 2 | `PCD`(bit 4) << 1 | `PWT`(bit 3). The
//! kernel programs the MSR as Linux does ([`PAT_VALUE`]):
//!
//! | index | PAT PCD PWT | type |
//! |---|---|---|
//! | 0 | 0 0 0 | WB (write-back) |
//! | 1 | 0 0 1 | WC (write-combining; the power-on value is WT) |
//! | 2 | 0 1 0 | UC- (uncached, MTRR may override) |
//! | 3 | 0 1 1 | UC (uncached) |
//! | 4..7 | 1 x x | same as 0..3 |
//!
//! So [`CacheMode::WriteBack`] has no bits, [`CacheMode::WriteCombining`] is `PWT`
//! and [`CacheMode::Uncached`] is `PCD | PWT`. Entries 0, 2 and 3 equal their
//! power-on values, so without the MSR write WB and UC are still right and WC
//! silently becomes write-through.

use alloc::collections::BTreeMap;
use core::fmt;

use crate::PAGE_SIZE;

/// The IA32_PAT model-specific register.
pub const PAT_MSR: u32 = 0x277;

/// The PAT memory-type encodings (Intel SDM vol. 3, "PAT memory types").
pub mod pat_type {
    /// Uncacheable.
    pub const UC: u8 = 0x00;
    /// Write-combining.
    pub const WC: u8 = 0x01;
    /// Write-through.
    pub const WT: u8 = 0x04;
    /// Write-protected.
    pub const WP: u8 = 0x05;
    /// Write-back.
    pub const WB: u8 = 0x06;
    /// Uncached minus (UC unless an MTRR says WC).
    pub const UC_MINUS: u8 = 0x07;
}

/// The eight PAT entries Linux programs (index 0..7), see the module docs.
pub const PAT_ENTRIES: [u8; 8] = {
    use pat_type::*;
    [WB, WC, UC_MINUS, UC, WB, WC, UC_MINUS, UC]
};

/// The value for IA32_PAT: entry `i` in byte `i`.
pub const PAT_VALUE: u64 = u64::from_le_bytes(PAT_ENTRIES);

/// PTE bit: writable.
pub const PTE_WRITABLE: u64 = 1 << 1;
/// PTE bit: page-level write-through (PAT index bit 0).
pub const PTE_PWT: u64 = 1 << 3;
/// PTE bit: page-level cache disable (PAT index bit 1).
pub const PTE_PCD: u64 = 1 << 4;
/// PTE bit of a 4 KiB entry: PAT index bit 2 (bit 12 in 2 MiB entries).
pub const PTE_PAT: u64 = 1 << 7;
/// PTE bit: no-execute (needs EFER.NXE).
pub const PTE_NO_EXECUTE: u64 = 1 << 63;

/// How the CPU caches a mapping: the memory type chosen through the PAT.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum CacheMode {
    /// Normal RAM (vmalloc).
    WriteBack,
    /// Linux `ioremap_wc`: uncached, writes combined in buffers (framebuffers).
    WriteCombining,
    /// Linux `ioremap`: strongly uncached (device registers).
    Uncached,
}

impl CacheMode {
    /// The PTE bits (`PAT`, `PCD`, `PWT`) that select this mode's PAT entry.
    pub const fn pte_bits(self) -> u64 {
        match self {
            CacheMode::WriteBack => 0,
            CacheMode::WriteCombining => PTE_PWT,
            CacheMode::Uncached => PTE_PCD | PTE_PWT,
        }
    }

    /// The PAT entry index this mode uses (0..8).
    pub const fn pat_index(self) -> usize {
        let b = self.pte_bits();
        ((b & PTE_PAT != 0) as usize) << 2
            | ((b & PTE_PCD != 0) as usize) << 1
            | (b & PTE_PWT != 0) as usize
    }

    /// The name used in listings: `WB`, `WC`, `UC`.
    pub const fn name(self) -> &'static str {
        match self {
            CacheMode::WriteBack => "WB",
            CacheMode::WriteCombining => "WC",
            CacheMode::Uncached => "UC",
        }
    }
}

impl fmt::Display for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Access rights of a kernel mapping (always supervisor-only and present).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Prot {
    /// Writes allowed.
    pub writable: bool,
    /// Instruction fetches allowed.
    pub executable: bool,
}

impl Prot {
    /// Read and write, no execute: what vmalloc and ioremap map.
    pub const RW: Prot = Prot {
        writable: true,
        executable: false,
    };
    /// Read only, no execute.
    pub const RO: Prot = Prot {
        writable: false,
        executable: false,
    };

    /// The PTE bits (`WRITABLE`, `NO_EXECUTE`) of these rights (`PRESENT` not included).
    pub const fn pte_bits(self) -> u64 {
        (if self.writable { PTE_WRITABLE } else { 0 })
            | (if self.executable { 0 } else { PTE_NO_EXECUTE })
    }
}

/// Why the page tables refused a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MapError {
    /// `map_page` on an address that is mapped already.
    AlreadyMapped(u64),
    /// `unmap_page` on an address that is not mapped.
    NotMapped(u64),
    /// No frame for an intermediate page table.
    OutOfMemory,
    /// Any other refusal (misaligned, non-canonical, protected range...).
    Refused(&'static str),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapError::AlreadyMapped(v) => write!(f, "{v:#018x} is mapped already"),
            MapError::NotMapped(v) => write!(f, "{v:#018x} is not mapped"),
            MapError::OutOfMemory => f.write_str("out of memory for a page table"),
            MapError::Refused(why) => f.write_str(why),
        }
    }
}

/// The page-table operations vmalloc and ioremap use, on the kernel half of the
/// address space (shared by every address space). Addresses are page aligned.
///
/// Contract:
/// - `map_page` maps exactly one 4 KiB page, present, supervisor-only, with the
///   given rights and `cache.pte_bits()`. It refuses an address that is mapped
///   already (`AlreadyMapped`) and changes nothing when it fails. Mapping a page
///   that was not present needs no TLB flush on x86_64.
/// - `unmap_page` clears the entry and returns the physical address it held
///   (`NotMapped` if none). It need not flush: the caller calls `flush` for the
///   whole range before it reuses the frames or the addresses. It may free
///   intermediate tables that become empty.
/// - `flush` removes `[virt, virt + len)` from the TLB (`invlpg` per page or a full
///   flush past a threshold, the implementation's choice).
pub trait KernelMapper {
    /// Maps the page at `virt` to the frame at `phys`.
    fn map_page(
        &mut self,
        virt: u64,
        phys: u64,
        prot: Prot,
        cache: CacheMode,
    ) -> Result<(), MapError>;
    /// Unmaps the page at `virt`; returns the frame's physical address.
    fn unmap_page(&mut self, virt: u64) -> Result<u64, MapError>;
    /// Flushes `[virt, virt + len)` from the TLB.
    fn flush(&mut self, virt: u64, len: u64);
}

/// One entry of the [`FakeMapper`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FakePte {
    /// The frame's physical address.
    pub phys: u64,
    /// Rights.
    pub prot: Prot,
    /// Memory type.
    pub cache: CacheMode,
}

/// A model of the kernel's page tables for host tests and benchmarks: one
/// `BTreeMap` entry per mapped 4 KiB page. It checks the [`KernelMapper`]
/// contract (alignment, no double map, no unmap of a hole) and records which
/// pages were unmapped but not yet flushed. `fail_after` makes the n-th next
/// `map_page` fail with `OutOfMemory`, to test rollbacks.
#[derive(Clone, Debug, Default)]
pub struct FakeMapper {
    /// Mapped pages by virtual address.
    pub ptes: BTreeMap<u64, FakePte>,
    /// Number of `flush` calls.
    pub flushes: u64,
    /// Pages unmapped since the last flush that covered them.
    pub stale: BTreeMap<u64, ()>,
    /// `Some(n)`: `n` more `map_page` calls succeed, then they fail.
    pub fail_after: Option<u64>,
}

impl FakeMapper {
    /// An empty page table.
    pub fn new() -> FakeMapper {
        FakeMapper::default()
    }

    /// The physical address `virt` translates to, if mapped.
    pub fn translate(&self, virt: u64) -> Option<u64> {
        let page = virt & !(PAGE_SIZE as u64 - 1);
        self.ptes.get(&page).map(|p| p.phys + (virt - page))
    }
}

impl KernelMapper for FakeMapper {
    fn map_page(
        &mut self,
        virt: u64,
        phys: u64,
        prot: Prot,
        cache: CacheMode,
    ) -> Result<(), MapError> {
        if !virt.is_multiple_of(PAGE_SIZE as u64) || !phys.is_multiple_of(PAGE_SIZE as u64) {
            return Err(MapError::Refused("misaligned address"));
        }
        if let Some(n) = self.fail_after.as_mut() {
            if *n == 0 {
                return Err(MapError::OutOfMemory);
            }
            *n -= 1;
        }
        if self.ptes.contains_key(&virt) {
            return Err(MapError::AlreadyMapped(virt));
        }
        self.ptes.insert(virt, FakePte { phys, prot, cache });
        Ok(())
    }

    fn unmap_page(&mut self, virt: u64) -> Result<u64, MapError> {
        let pte = self.ptes.remove(&virt).ok_or(MapError::NotMapped(virt))?;
        self.stale.insert(virt, ());
        Ok(pte.phys)
    }

    fn flush(&mut self, virt: u64, len: u64) {
        self.flushes += 1;
        let keys: alloc::vec::Vec<u64> = self
            .stale
            .range(virt..virt.saturating_add(len))
            .map(|(&k, _)| k)
            .collect();
        for k in keys {
            self.stale.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pat_value_is_linux() {
        // Linux arch/x86/mm/pat/memtype.c: WB, WC, UC-, UC, WB, WC, UC-, UC.
        assert_eq!(PAT_VALUE, 0x0007_0106_0007_0106);
        for m in [
            CacheMode::WriteBack,
            CacheMode::WriteCombining,
            CacheMode::Uncached,
        ] {
            let want = match m {
                CacheMode::WriteBack => pat_type::WB,
                CacheMode::WriteCombining => pat_type::WC,
                CacheMode::Uncached => pat_type::UC,
            };
            assert_eq!(PAT_ENTRIES[m.pat_index()], want, "{m}");
        }
        assert_eq!(CacheMode::WriteCombining.pte_bits(), PTE_PWT);
        assert_eq!(CacheMode::Uncached.pte_bits(), PTE_PCD | PTE_PWT);
    }

    #[test]
    fn prot_bits() {
        assert_eq!(Prot::RW.pte_bits(), PTE_WRITABLE | PTE_NO_EXECUTE);
        assert_eq!(Prot::RO.pte_bits(), PTE_NO_EXECUTE);
    }

    #[test]
    fn fake_mapper_checks_its_contract() {
        let mut m = FakeMapper::new();
        m.map_page(0x1000, 0x5000, Prot::RW, CacheMode::WriteBack)
            .unwrap();
        assert_eq!(
            m.map_page(0x1000, 0x6000, Prot::RW, CacheMode::WriteBack),
            Err(MapError::AlreadyMapped(0x1000))
        );
        assert!(m
            .map_page(0x1001, 0x6000, Prot::RW, CacheMode::WriteBack)
            .is_err());
        assert_eq!(m.translate(0x1234), Some(0x5234));
        assert_eq!(m.unmap_page(0x1000), Ok(0x5000));
        assert_eq!(m.unmap_page(0x1000), Err(MapError::NotMapped(0x1000)));
        assert_eq!(m.stale.len(), 1);
        m.flush(0x1000, 0x1000);
        assert!(m.stale.is_empty());
        m.fail_after = Some(1);
        m.map_page(0x2000, 0, Prot::RO, CacheMode::Uncached)
            .unwrap();
        assert_eq!(
            m.map_page(0x3000, 0, Prot::RO, CacheMode::Uncached),
            Err(MapError::OutOfMemory)
        );
        assert_eq!(m.ptes.len(), 1);
    }
}
