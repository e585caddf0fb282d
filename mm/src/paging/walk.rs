//! Walking the tables: [`walk`] records every level it reads (entry address, raw
//! value, decoded flags) and where and why it stopped, and prints as the shell
//! shows it; [`translate`] is the fast path that only wants the answer.

use core::fmt;

use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

use super::entry::{decode, index, live_count, write_flags, Level, PageSize, ADDR_MASK, P, PS};
use crate::PhysMem;

/// One entry read by a walk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WalkStep {
    /// The level of the table the entry is in.
    pub level: Level,
    /// Its index in that table (0..512).
    pub index: u16,
    /// Its physical address.
    pub entry_addr: PhysAddr,
    /// Its raw value.
    pub raw: u64,
}

impl WalkStep {
    /// Whether the entry is a leaf (a page, not a table).
    pub fn is_leaf(&self) -> bool {
        self.level == Level::Pt || (self.raw & PS != 0 && self.level != Level::Pml4)
    }
    /// Its flags as the hardware reads them (table entries without the mapper's count).
    pub fn flags(&self) -> PageTableFlags {
        decode(self.raw, self.is_leaf())
    }
    /// For a present table entry: the mapper's count of live entries below it.
    pub fn live(&self) -> Option<u64> {
        (self.raw & P != 0 && !self.is_leaf()).then(|| live_count(self.raw))
    }
}

/// Where and why a walk ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WalkEnd {
    /// A present leaf maps the address: `phys` is the translation of the walked
    /// address itself (not the page base).
    Page {
        /// The physical address.
        phys: PhysAddr,
        /// The leaf's size (4 KiB at PT, 2 MiB at PD, 1 GiB at PDPT).
        size: PageSize,
    },
    /// The entry at `level` is not present.
    NotPresent {
        /// Where.
        level: Level,
    },
    /// The PML4 entry has `HUGE_PAGE`, which is reserved there (a fault).
    Reserved {
        /// Where (always PML4).
        level: Level,
    },
}

/// A full walk of one virtual address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Walk {
    /// The walked address.
    pub virt: VirtAddr,
    steps: [WalkStep; 4],
    len: u8,
    /// The outcome.
    pub end: WalkEnd,
}

impl Walk {
    /// The entries read, PML4 first.
    pub fn steps(&self) -> &[WalkStep] {
        &self.steps[..self.len as usize]
    }
    /// The translation, if the address is mapped.
    pub fn phys(&self) -> Option<PhysAddr> {
        match self.end {
            WalkEnd::Page { phys, .. } => Some(phys),
            _ => None,
        }
    }
}

/// Walks `virt` in the tables of `root`.
pub fn walk(mem: &impl PhysMem, root: PhysFrame, virt: VirtAddr) -> Walk {
    let v = virt.as_u64();
    let blank = WalkStep {
        level: Level::Pml4,
        index: 0,
        entry_addr: PhysAddr::zero(),
        raw: 0,
    };
    let mut w = Walk {
        virt,
        steps: [blank; 4],
        len: 0,
        end: WalkEnd::NotPresent { level: Level::Pml4 },
    };
    let mut table = root.start_address().as_u64();
    for level in (1..=4u8).rev() {
        let i = index(v, level);
        let ea = table + i * 8;
        let raw = mem.read_entry(ea);
        w.steps[w.len as usize] = WalkStep {
            level: Level::from_u8(level),
            index: i as u16,
            entry_addr: PhysAddr::new_truncate(ea),
            raw,
        };
        w.len += 1;
        if raw & P == 0 {
            w.end = WalkEnd::NotPresent {
                level: Level::from_u8(level),
            };
            return w;
        }
        if level == 1 || raw & PS != 0 {
            if level == 4 {
                w.end = WalkEnd::Reserved { level: Level::Pml4 };
                return w;
            }
            let size = PageSize::of_level(level);
            let mask = size.bytes() - 1;
            w.end = WalkEnd::Page {
                phys: PhysAddr::new_truncate((raw & ADDR_MASK & !mask) | (v & mask)),
                size,
            };
            return w;
        }
        table = raw & ADDR_MASK;
    }
    w
}

/// The translation of `virt` in the tables of `root`: physical address, page size
/// and the leaf's flags (the rights of the leaf entry alone; the hardware also
/// ANDs `WRITABLE`/`USER_ACCESSIBLE` and ORs `NO_EXECUTE` of the table entries,
/// which [`walk`] shows).
#[inline]
pub fn translate(
    mem: &impl PhysMem,
    root: PhysFrame,
    virt: VirtAddr,
) -> Option<(PhysAddr, PageSize, PageTableFlags)> {
    let v = virt.as_u64();
    // Unrolled: each level's index shift is a constant.
    let e4 = mem.read_entry(root.start_address().as_u64() + index(v, 4) * 8);
    if e4 & (P | PS) != P {
        return None; // not present, or the reserved HUGE_PAGE bit
    }
    let e3 = mem.read_entry((e4 & ADDR_MASK) + index(v, 3) * 8);
    if e3 & (P | PS) != P {
        return leaf(e3, v, PageSize::Size1GiB);
    }
    let e2 = mem.read_entry((e3 & ADDR_MASK) + index(v, 2) * 8);
    if e2 & (P | PS) != P {
        return leaf(e2, v, PageSize::Size2MiB);
    }
    let e1 = mem.read_entry((e2 & ADDR_MASK) + index(v, 1) * 8);
    leaf(e1, v, PageSize::Size4KiB)
}

/// The translation through leaf entry `raw` of `size`, `None` if not present.
#[inline(always)]
fn leaf(raw: u64, v: u64, size: PageSize) -> Option<(PhysAddr, PageSize, PageTableFlags)> {
    if raw & P == 0 {
        return None;
    }
    let mask = size.bytes() - 1;
    Some((
        PhysAddr::new_truncate((raw & ADDR_MASK & !mask) | (v & mask)),
        size,
        decode(raw, true),
    ))
}

/// One line per entry read, then the outcome:
///
/// ```text
/// PML4[256] @0x0000000000101800 = 0x0010000000102003 PRESENT|WRITABLE (1 live)
/// PDPT[  0] @0x0000000000102000 = 0x0000000000000083 PRESENT|WRITABLE|HUGE_PAGE
/// -> 0xffff800000000000: 1 GiB page, physical 0x0000000000000000
/// ```
impl fmt::Display for Walk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in self.steps() {
            write!(
                f,
                "{:<4}[{:3}] @{:#018x} = {:#018x} ",
                s.level.name(),
                s.index,
                s.entry_addr.as_u64(),
                s.raw
            )?;
            write_flags(f, s.flags())?;
            if let Some(n) = s.live() {
                write!(f, " ({n} live)")?;
            }
            writeln!(f)?;
        }
        write!(f, "-> {:#018x}: ", self.virt.as_u64())?;
        match self.end {
            WalkEnd::Page { phys, size } => {
                write!(f, "{size} page, physical {:#018x}", phys.as_u64())
            }
            WalkEnd::NotPresent { level } => write!(f, "not present at {level}"),
            WalkEnd::Reserved { level } => write!(f, "reserved bit HUGE_PAGE set at {level}"),
        }
    }
}
