//! Whole-table walks: the address-space dump (Linux's `ptdump`), the W^X check
//! (Linux's `CONFIG_DEBUG_WX`) and the set of live page-table frames.
//!
//! [`leaf_ranges`] visits every present leaf of a virtual range in address order
//! and merges neighbours with the same page size and the same *effective* rights
//! (what the CPU enforces: `WRITABLE` and `USER_ACCESSIBLE` only if every level
//! has them, `NO_EXECUTE` if any level has it) into [`LeafRange`]s. [`check_wx`]
//! runs over it and reports writable+executable pages and user pages in the
//! kernel half. [`for_each_table`] visits every table frame below a root, which is
//! how callers recognise live page-table frames.

use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::PhysAddr;

use super::entry::{decode, PageSize, ADDR_MASK, P, PS};
use crate::PhysMem;

/// The rights that distinguish ranges in a dump (accessed/dirty and the
/// mapper's bookkeeping bit are left out).
pub const RIGHTS: PageTableFlags = PageTableFlags::from_bits_truncate(
    PageTableFlags::PRESENT.bits()
        | PageTableFlags::WRITABLE.bits()
        | PageTableFlags::USER_ACCESSIBLE.bits()
        | PageTableFlags::WRITE_THROUGH.bits()
        | PageTableFlags::NO_CACHE.bits()
        | PageTableFlags::GLOBAL.bits()
        | PageTableFlags::NO_EXECUTE.bits(),
);

/// Consecutive leaves with one page size and the same effective rights.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LeafRange {
    /// First virtual address.
    pub start: u64,
    /// One past the last (may be 0: the range ends at 2^64).
    pub end: u64,
    /// Physical address of the first byte.
    pub phys: u64,
    /// Whether the physical addresses are contiguous across the range.
    pub phys_contiguous: bool,
    /// Page size of every leaf.
    pub size: PageSize,
    /// Effective rights (masked with [`RIGHTS`]).
    pub flags: PageTableFlags,
}

impl LeafRange {
    /// Bytes covered.
    pub fn len(&self) -> u64 {
        self.end.wrapping_sub(self.start)
    }
    /// Whether it covers nothing (never, for a range the walk made).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sign-extends a 48-bit address.
fn canon(v: u64) -> u64 {
    (((v << 16) as i64) >> 16) as u64
}

/// Calls `f` with every merged range of present leaves of `root` in
/// `[start, end)` (`end == 0` means up to 2^64), in address order. Leaves are
/// clipped to the range. Cost: one read per entry of every table reached.
pub fn leaf_ranges(
    mem: &impl PhysMem,
    root: PhysFrame,
    start: u64,
    end: u64,
    mut f: impl FnMut(&LeafRange),
) {
    let mut cur: Option<LeafRange> = None;
    let last = end.wrapping_sub(1);
    visit(
        mem,
        root.start_address().as_u64(),
        4,
        0,
        start,
        last,
        PageTableFlags::WRITABLE | PageTableFlags::USER_ACCESSIBLE,
        PageTableFlags::empty(),
        &mut |v, p, size, flags| {
            let s = v.max(start);
            let e = (v + (size.bytes() - 1)).min(last).wrapping_add(1);
            let phys = p + (s - v);
            if let Some(c) = cur.as_mut() {
                if c.end == s && c.size == size && c.flags == flags {
                    c.phys_contiguous &= c.phys + c.len() == phys;
                    c.end = e;
                    return;
                }
                f(c);
            }
            cur = Some(LeafRange {
                start: s,
                end: e,
                phys,
                phys_contiguous: true,
                size,
                flags,
            });
        },
    );
    if let Some(c) = cur {
        f(&c);
    }
}

/// Recursive part of [`leaf_ranges`]: `and` holds the rights every level above
/// grants, `or` the restrictions any level adds.
#[allow(clippy::too_many_arguments)]
fn visit(
    mem: &impl PhysMem,
    table: u64,
    level: u8,
    base: u64,
    first: u64,
    last: u64,
    and: PageTableFlags,
    or: PageTableFlags,
    f: &mut impl FnMut(u64, u64, PageSize, PageTableFlags),
) {
    let shift = 12 + 9 * (level as u32 - 1);
    let span = 1u64 << shift;
    for i in 0..512u64 {
        let v = canon(base + (i << shift));
        let v_last = v + (span - 1);
        if v_last < first || v > last {
            continue;
        }
        let raw = mem.read_entry(table + i * 8);
        if raw & P == 0 {
            continue;
        }
        let leaf = level == 1 || (raw & PS != 0 && level != 4);
        let fl = decode(raw, leaf);
        let and = and & fl;
        let or = or | (fl & PageTableFlags::NO_EXECUTE);
        if leaf {
            let size = PageSize::of_level(level);
            let rights = (fl
                & RIGHTS
                & !(PageTableFlags::WRITABLE
                    | PageTableFlags::USER_ACCESSIBLE
                    | PageTableFlags::NO_EXECUTE))
                | and
                | or;
            let phys = raw & ADDR_MASK & !(size.bytes() - 1);
            f(v, phys, size, rights);
        } else if level > 1 && raw & PS == 0 {
            visit(mem, raw & ADDR_MASK, level - 1, v, first, last, and, or, f);
        }
    }
}

/// What [`check_wx`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WxReport {
    /// Pages checked (4 KiB units).
    pub pages: u64,
    /// Ranges checked.
    pub ranges: u64,
    /// 4 KiB units both writable and executable.
    pub wx_pages: u64,
    /// 4 KiB units of the kernel half accessible from user mode.
    pub user_pages: u64,
}

/// Linux's `CONFIG_DEBUG_WX` over the kernel half of `root`: counts pages that
/// are writable and executable, and user-accessible pages, calling `bad` with
/// each offending range. A clean kernel reports none.
pub fn check_wx(
    mem: &impl PhysMem,
    root: PhysFrame,
    mut bad: impl FnMut(&LeafRange, WxFinding),
) -> WxReport {
    let mut r = WxReport::default();
    leaf_ranges(mem, root, 0xffff_8000_0000_0000, 0, |lr| {
        let pages = lr.len() / 4096;
        r.ranges += 1;
        r.pages += pages;
        if lr.flags.contains(PageTableFlags::WRITABLE)
            && !lr.flags.contains(PageTableFlags::NO_EXECUTE)
        {
            r.wx_pages += pages;
            bad(lr, WxFinding::WritableExecutable);
        }
        if lr.flags.contains(PageTableFlags::USER_ACCESSIBLE) {
            r.user_pages += pages;
            bad(lr, WxFinding::UserInKernelHalf);
        }
    });
    r
}

/// What is wrong with a range [`check_wx`] reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WxFinding {
    /// Writable and executable.
    WritableExecutable,
    /// Accessible from user mode, in the kernel half.
    UserInKernelHalf,
}

/// Calls `f` with every table frame of `root`, the root included (PML4, PDPTs,
/// page directories, page tables), each once per entry that points to it.
pub fn for_each_table(mem: &impl PhysMem, root: PhysFrame, mut f: impl FnMut(PhysFrame)) {
    f(root);
    tables_below(mem, root.start_address().as_u64(), 4, &mut f);
}

fn tables_below(mem: &impl PhysMem, table: u64, level: u8, f: &mut impl FnMut(PhysFrame)) {
    for i in 0..512u64 {
        let raw = mem.read_entry(table + i * 8);
        if raw & P == 0 || (raw & PS != 0 && level != 4) || level == 1 {
            continue;
        }
        let t = raw & ADDR_MASK;
        f(PhysFrame::containing_address(PhysAddr::new_truncate(t)));
        if level > 2 {
            tables_below(mem, t, level - 1, f);
        }
    }
}

/// Whether `frame` is a table frame of `root` (see [`for_each_table`]).
pub fn is_table_frame(mem: &impl PhysMem, root: PhysFrame, frame: PhysFrame) -> bool {
    let mut found = false;
    for_each_table(mem, root, |t| found |= t == frame);
    found
}

#[cfg(test)]
mod tests {
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::buddy::Buddy;
    use crate::paging::{Mapper, SimTlb, TableFrames};
    use crate::sim::SimMem;
    use crate::{Page, Pfn, Zone};
    use x86_64::{PhysAddr, VirtAddr};

    type F = PageTableFlags;
    const NPAGES: u32 = 4096;

    fn setup() -> (SimMem, Buddy<'static>, PhysFrame) {
        let map: &'static mut [Page] = vec![Page::reserved(Zone::Dma); NPAGES as usize].leak();
        let mut b = Buddy::page_init(map, Pfn(NPAGES), &[(Pfn(256), Pfn(NPAGES))], &[]).unwrap();
        let mut mem = SimMem::new(NPAGES as usize * 4096, 0xa5);
        let root = b.alloc_table(&mut mem).unwrap();
        (mem, b, root)
    }

    fn ranges(mem: &SimMem, root: PhysFrame, s: u64, e: u64) -> Vec<LeafRange> {
        let mut v = Vec::new();
        leaf_ranges(mem, root, s, e, |r| v.push(*r));
        v
    }

    const K: u64 = 0xffff_c000_0000_0000;

    #[test]
    fn merges_by_size_and_rights_and_clips() {
        let (mut mem, mut b, root) = setup();
        let mut tlb = SimTlb::new();
        let mut m = Mapper::new(&mut mem, &mut b);
        // 3 pages RW NX, then 1 page R, then a 2 MiB page RW NX.
        m.mm_map_phys_addr(
            root,
            K,
            0x10_0000,
            0x3000,
            F::WRITABLE | F::NO_EXECUTE,
            true,
            &mut tlb,
        )
        .unwrap();
        m.mm_map_phys_addr(
            root,
            K + 0x3000,
            0x50_0000,
            0x1000,
            F::empty(),
            true,
            &mut tlb,
        )
        .unwrap();
        m.mm_map_phys_addr(
            root,
            K + 0x20_0000,
            0x20_0000,
            0x20_0000,
            F::WRITABLE | F::NO_EXECUTE,
            false,
            &mut tlb,
        )
        .unwrap();
        let r = ranges(&mem, root, K, 0);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(
            (r[0].start, r[0].end, r[0].phys),
            (K, K + 0x3000, 0x10_0000)
        );
        assert!(r[0].phys_contiguous);
        assert_eq!(r[0].flags, F::PRESENT | F::WRITABLE | F::NO_EXECUTE);
        assert_eq!(
            (r[1].start, r[1].end, r[1].flags),
            (K + 0x3000, K + 0x4000, F::PRESENT)
        );
        assert_eq!((r[2].start, r[2].size), (K + 0x20_0000, PageSize::Size2MiB));
        // Clipped to the asked range.
        let r = ranges(&mem, root, K + 0x1000, K + 0x2000);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].start, r[0].end, r[0].phys),
            (K + 0x1000, K + 0x2000, 0x10_1000)
        );
        // Empty range: nothing.
        assert!(ranges(&mem, root, 0x1000, 0x2000).is_empty());
    }

    #[test]
    fn wx_finds_writable_executable_and_user_pages_only() {
        let (mut mem, mut b, root) = setup();
        let mut tlb = SimTlb::new();
        let mut m = Mapper::new(&mut mem, &mut b);
        m.mm_map_phys_addr(
            root,
            K,
            0x10_0000,
            0x2000,
            F::WRITABLE | F::NO_EXECUTE,
            true,
            &mut tlb,
        )
        .unwrap();
        m.mm_map_phys_addr(
            root,
            K + 0x10000,
            0x11_0000,
            0x1000,
            F::empty(),
            true,
            &mut tlb,
        )
        .unwrap();
        let clean = check_wx(&mem, root, |_, _| panic!("nothing to report"));
        assert_eq!((clean.pages, clean.wx_pages, clean.user_pages), (3, 0, 0));
        let mut m = Mapper::new(&mut mem, &mut b);
        m.mm_map_phys_addr(
            root,
            K + 0x20000,
            0x12_0000,
            0x2000,
            F::WRITABLE,
            true,
            &mut tlb,
        )
        .unwrap();
        m.mm_map_proc_page_table(
            root.start_address().as_u64(),
            true,
            K + 0x30000,
            0x13_0000,
            0x1000,
            F::NO_EXECUTE,
            true,
            true,
            true,
            &mut tlb,
        )
        .unwrap();
        // A user mapping in the lower half is not the kernel's business.
        m.mm_map_proc_page_table(
            root.start_address().as_u64(),
            true,
            0x40_0000,
            0x14_0000,
            0x1000,
            F::WRITABLE,
            true,
            true,
            true,
            &mut tlb,
        )
        .unwrap();
        let mut found = Vec::new();
        let r = check_wx(&mem, root, |lr, w| found.push((lr.start, w)));
        assert_eq!((r.wx_pages, r.user_pages), (2, 1));
        assert_eq!(
            found,
            [
                (K + 0x20000, WxFinding::WritableExecutable),
                (K + 0x30000, WxFinding::UserInKernelHalf)
            ]
        );
    }

    #[test]
    fn effective_rights_combine_levels() {
        let (mut mem, mut b, root) = setup();
        let mut tlb = SimTlb::new();
        let mut m = Mapper::new(&mut mem, &mut b);
        m.mm_map_phys_addr(root, K, 0x10_0000, 0x1000, F::WRITABLE, true, &mut tlb)
            .unwrap();
        // Clear WRITABLE and set NO_EXECUTE on the PML4 entry: the leaf is
        // effectively read-only and not executable.
        let ea = root.start_address().as_u64() + crate::layout::pml4_index(K) * 8;
        let e = mem.read_entry(ea);
        mem.write_entry(ea, (e & !F::WRITABLE.bits()) | F::NO_EXECUTE.bits());
        let r = ranges(&mem, root, K, 0);
        assert_eq!(r[0].flags, F::PRESENT | F::NO_EXECUTE);
        assert_eq!(check_wx(&mem, root, |_, _| {}).wx_pages, 0);
    }

    #[test]
    fn table_frames_are_found() {
        let (mut mem, mut b, root) = setup();
        let mut tlb = SimTlb::new();
        let before = b.nr_free_pages();
        let mut m = Mapper::new(&mut mem, &mut b);
        // A reserved frame below the buddy's range, so no table can be it.
        m.mm_map_phys_addr(root, K, 0x1000, 0x1000, F::WRITABLE, true, &mut tlb)
            .unwrap();
        let mut t = Vec::new();
        for_each_table(&mem, root, |f| t.push(f.start_address().as_u64()));
        assert_eq!(
            t.len() as u64,
            1 + before - b.nr_free_pages(),
            "root + PDPT, PD, PT"
        );
        for &f in &t {
            assert!(is_table_frame(
                &mem,
                root,
                PhysFrame::containing_address(PhysAddr::new(f))
            ));
        }
        let leaf = crate::paging::translate(&mem, root, VirtAddr::new(K))
            .unwrap()
            .0;
        assert!(!is_table_frame(
            &mem,
            root,
            PhysFrame::containing_address(leaf)
        ));
    }
}
