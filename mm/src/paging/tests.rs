//! Unit tests of the page-table core on simulated memory with a real buddy
//! allocator: every operation, every error, table freeing, the TLB tokens.

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::buddy::Buddy;
use crate::sim::SimMem;
use crate::{Gfp, MmError, Page, Pfn, PhysMem, Zone};

type F = PageTableFlags;

/// 32 MiB of RAM (PFN 256 up), all of it in the direct map.
const NPAGES: u32 = 8192;

struct Fx {
    mem: SimMem,
    buddy: Buddy<'static>,
    root: PhysFrame,
    tlb: SimTlb,
}

impl Fx {
    fn new() -> Fx {
        let map: &'static mut [Page] = vec![Page::reserved(Zone::Dma); NPAGES as usize].leak();
        let mut buddy =
            Buddy::page_init(map, Pfn(NPAGES), &[(Pfn(256), Pfn(NPAGES))], &[]).unwrap();
        let mut mem = SimMem::new(NPAGES as usize * 4096, 0xa5);
        let root = buddy.alloc_table(&mut mem).unwrap();
        Fx {
            mem,
            buddy,
            root,
            tlb: SimTlb::new(),
        }
    }
    fn m(&mut self) -> Mapper<'_, SimMem, Buddy<'static>> {
        Mapper::new(&mut self.mem, &mut self.buddy)
    }
    fn free(&self) -> u64 {
        self.buddy.nr_free_pages()
    }
    fn tr(&self, v: u64) -> Option<(u64, PageSize)> {
        translate(&self.mem, self.root, va(v)).map(|(p, s, _)| (p.as_u64(), s))
    }
}

fn va(v: u64) -> VirtAddr {
    VirtAddr::new(v)
}
fn pa(p: u64) -> PhysAddr {
    PhysAddr::new(p)
}

const RW: F = F::WRITABLE;
const V: u64 = 0x0000_4000_0000_0000;
const K: u64 = 0xffff_c000_0000_0000;

#[test]
fn map_translate_unmap_4k_frees_tables() {
    let mut fx = Fx::new();
    let before = fx.free();
    let root = fx.root;
    fx.m()
        .map(
            root,
            va(V + 0x3000),
            pa(0x4000_0000),
            PageSize::Size4KiB,
            RW,
        )
        .unwrap()
        .ignore();
    assert_eq!(fx.free(), before - 3, "PDPT, PD and PT");
    assert_eq!(fx.tr(V + 0x3123), Some((0x4000_0123, PageSize::Size4KiB)));
    assert_eq!(fx.tr(V + 0x4000), None);
    let (_, _, fl) = translate(&fx.mem, root, va(V + 0x3000)).unwrap();
    assert_eq!(fl, F::PRESENT | RW);
    let (u, f) = fx
        .m()
        .unmap(root, va(V + 0x3000), PageSize::Size4KiB)
        .unwrap();
    assert_eq!(f.addr(), va(V + 0x3000));
    f.flush(&mut fx.tlb);
    assert_eq!(fx.tlb.invlpgs, 1);
    assert_eq!(u.phys, pa(0x4000_0000));
    assert_eq!(fx.tr(V + 0x3000), None);
    assert_eq!(fx.free(), before, "every table freed");
    assert_eq!(fx.mem.read_u64(root.start_address().as_u64() + 128 * 8), 0);
}

#[test]
fn live_counts_keep_tables_until_the_last_entry() {
    let mut fx = Fx::new();
    let before = fx.free();
    let root = fx.root;
    for i in 0..3 {
        fx.m()
            .map(
                root,
                va(V + i * 0x1000),
                pa(0x10_0000 + i * 0x1000),
                PageSize::Size4KiB,
                RW,
            )
            .unwrap()
            .ignore();
    }
    let w = walk(&fx.mem, root, va(V));
    assert_eq!(w.steps().len(), 4);
    assert_eq!(
        w.steps()[2].live(),
        Some(3),
        "the PD entry counts the PT's 3 entries"
    );
    assert_eq!(w.steps()[0].live(), Some(1));
    assert_eq!(w.steps()[3].live(), None);
    for i in 0..2 {
        let _ = fx
            .m()
            .unmap(root, va(V + i * 0x1000), PageSize::Size4KiB)
            .unwrap();
        assert_eq!(fx.free(), before - 3, "PT still holds an entry");
    }
    let _ = fx
        .m()
        .unmap(root, va(V + 0x2000), PageSize::Size4KiB)
        .unwrap();
    assert_eq!(fx.free(), before);
}

#[test]
fn huge_pages_and_their_errors() {
    let mut fx = Fx::new();
    let before = fx.free();
    let root = fx.root;
    let two = PageSize::Size2MiB;
    let four = PageSize::Size4KiB;
    fx.m()
        .map(root, va(V), pa(0x20_0000), two, RW)
        .unwrap()
        .ignore();
    assert_eq!(fx.free(), before - 2, "PDPT and PD");
    assert_eq!(fx.tr(V + 0x1f_fff8), Some((0x3f_fff8, two)));
    // A 4 KiB page inside it: neither mapped nor unmapped, the page is not split.
    assert_eq!(
        fx.m().map(root, va(V + 0x1000), pa(0), four, RW),
        Err(MapError::HugePageInTheWay {
            virt: va(V + 0x1000),
            level: Level::Pd
        })
    );
    assert_eq!(
        fx.m().unmap(root, va(V + 0x1000), four),
        Err(UnmapError::PartOfHugePage {
            virt: va(V + 0x1000),
            page: va(V),
            size: two
        })
    );
    assert!(matches!(
        fx.m().map(root, va(V), pa(0x40_0000), two, RW),
        Err(MapError::AlreadyMapped { phys, size: PageSize::Size2MiB, .. }) if phys == pa(0x20_0000)
    ));
    // 2 MiB over 4 KiB pages, and the reverse unmap.
    fx.m()
        .map(root, va(V + 0x20_0000), pa(0), four, RW)
        .unwrap()
        .ignore();
    assert_eq!(
        fx.m().map(root, va(V + 0x20_0000), pa(0), two, RW),
        Err(MapError::TableInTheWay {
            virt: va(V + 0x20_0000)
        })
    );
    assert_eq!(
        fx.m().unmap(root, va(V + 0x20_0000), two),
        Err(UnmapError::SizeMismatch {
            virt: va(V + 0x20_0000)
        })
    );
    let _ = fx.m().unmap(root, va(V + 0x20_0000), four).unwrap();
    let (u, _) = fx.m().unmap(root, va(V), two).unwrap();
    assert_eq!((u.phys, u.size), (pa(0x20_0000), two));
    assert!(u.flags.contains(F::HUGE_PAGE));
    assert_eq!(fx.free(), before);
}

#[test]
fn argument_errors() {
    let mut fx = Fx::new();
    let root = fx.root;
    let before = fx.free();
    let mut m = fx.m();
    assert_eq!(
        m.map(root, va(V + 0x800), pa(0), PageSize::Size4KiB, RW),
        Err(MapError::Misaligned {
            virt: V + 0x800,
            phys: 0,
            size: PageSize::Size4KiB
        })
    );
    assert!(matches!(
        m.map(root, va(V), pa(0x1000), PageSize::Size2MiB, RW),
        Err(MapError::Misaligned { .. })
    ));
    assert_eq!(
        m.map(root, va(0), pa(0), PageSize::Size1GiB, RW),
        Err(MapError::UnsupportedSize(PageSize::Size1GiB))
    );
    assert_eq!(
        m.map(root, va(V), pa(0), PageSize::Size4KiB, RW | F::HUGE_PAGE),
        Err(MapError::OwnedFlags(F::HUGE_PAGE))
    );
    assert_eq!(
        m.map(root, va(V), pa(0), PageSize::Size4KiB, PAGE_REF),
        Err(MapError::OwnedFlags(PAGE_REF))
    );
    assert_eq!(
        m.unmap(root, va(V), PageSize::Size4KiB),
        Err(UnmapError::NotMapped {
            virt: va(V),
            level: Level::Pml4
        })
    );
    assert_eq!(
        m.unmap(root, va(V + 1), PageSize::Size4KiB),
        Err(UnmapError::Misaligned {
            virt: V + 1,
            size: PageSize::Size4KiB
        })
    );
    m.map(root, va(V), pa(0), PageSize::Size4KiB, RW)
        .unwrap()
        .ignore();
    assert_eq!(
        m.unmap(root, va(V + 0x1000), PageSize::Size4KiB),
        Err(UnmapError::NotMapped {
            virt: va(V + 0x1000),
            level: Level::Pt
        })
    );
    let _ = m.unmap(root, va(V), PageSize::Size4KiB).unwrap();
    assert_eq!(fx.free(), before);
    // Messages are one line and say what is wrong.
    let e = MapError::AlreadyMapped {
        virt: va(V),
        phys: pa(0x1000),
        size: PageSize::Size4KiB,
    };
    assert_eq!(
        e.to_string(),
        "0x400000000000 is already mapped (4 KiB page to 0x1000)"
    );
}

#[test]
fn out_of_memory_changes_nothing() {
    let mut fx = Fx::new();
    let root = fx.root;
    // Leave exactly two free frames: a 4 KiB mapping in an empty region needs three.
    let mut held = Vec::new();
    while fx.free() > 2 {
        held.push(fx.buddy.alloc_page(Gfp::KERNEL).unwrap());
    }
    assert_eq!(
        fx.m().map(root, va(V), pa(0), PageSize::Size4KiB, RW),
        Err(MapError::OutOfMemory)
    );
    assert_eq!(fx.free(), 2);
    assert_eq!(fx.mem.read_u64(root.start_address().as_u64() + 128 * 8), 0);
    // A 2 MiB mapping needs two: it fits.
    fx.m()
        .map(root, va(V), pa(0), PageSize::Size2MiB, RW)
        .unwrap()
        .ignore();
    assert_eq!(fx.free(), 0);
    let _ = fx.m().unmap(root, va(V), PageSize::Size2MiB).unwrap();
    for p in held {
        fx.buddy.__free_page(p).unwrap();
    }
}

#[test]
fn walk_prints_every_level() {
    let mut fx = Fx::new();
    let root = fx.root;
    let r = root.start_address().as_u64();
    fx.m()
        .map(
            root,
            va(K + 0x5000),
            pa(0x1234_5000),
            PageSize::Size4KiB,
            RW | F::NO_EXECUTE,
        )
        .unwrap()
        .ignore();
    let w = walk(&fx.mem, root, va(K + 0x5008));
    assert_eq!(w.phys(), Some(pa(0x1234_5008)));
    let s = w.to_string();
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 5, "{s}");
    assert!(
        lines[0].starts_with(&std::format!("PML4[384] @{:#018x} = ", r + 384 * 8)),
        "{s}"
    );
    assert!(lines[0].ends_with("PRESENT|WRITABLE (1 live)"), "{s}");
    assert!(lines[3].starts_with("PT  [  5] @"), "{s}");
    assert!(
        lines[3].ends_with(" = 0x8000000012345003 PRESENT|WRITABLE|NO_EXECUTE"),
        "{s}"
    );
    assert_eq!(
        lines[4],
        "-> 0xffffc00000005008: 4 KiB page, physical 0x0000000012345008"
    );
    let w = walk(&fx.mem, root, va(K + 0x20_0000));
    assert_eq!(w.end, WalkEnd::NotPresent { level: Level::Pd });
    assert!(w
        .to_string()
        .ends_with("-> 0xffffc00000200000: not present at PD"));
    let w = walk(&fx.mem, root, va(0));
    assert_eq!(w.steps().len(), 1);
    assert_eq!(w.end, WalkEnd::NotPresent { level: Level::Pml4 });
}

#[test]
fn kernel_half_pdpt_is_kept() {
    let mut fx = Fx::new();
    let root = fx.root;
    let before = fx.free();
    fx.m()
        .map(root, va(K), pa(0), PageSize::Size4KiB, RW)
        .unwrap()
        .ignore();
    let _ = fx.m().unmap(root, va(K), PageSize::Size4KiB).unwrap();
    assert_eq!(
        fx.free(),
        before - 1,
        "the PDPT stays: address spaces share it"
    );
    let w = walk(&fx.mem, root, va(K));
    assert_eq!(w.end, WalkEnd::NotPresent { level: Level::Pdpt });
}

#[test]
fn sim_tlb_shows_a_forgotten_flush() {
    let mut fx = Fx::new();
    let root = fx.root;
    fx.m()
        .map(root, va(V), pa(0x1000), PageSize::Size4KiB, RW)
        .unwrap()
        .ignore();
    fx.m()
        .map(root, va(V + 0x1000), pa(0x2000), PageSize::Size4KiB, RW)
        .unwrap()
        .ignore();
    assert_eq!(
        fx.tlb.translate(&fx.mem, root, va(V)).unwrap().0,
        pa(0x1000)
    );
    assert_eq!(
        fx.tlb.translate(&fx.mem, root, va(V + 0x1000)).unwrap().0,
        pa(0x2000)
    );
    let (_, f) = fx.m().unmap(root, va(V), PageSize::Size4KiB).unwrap();
    f.ignore(); // forgotten on purpose
    assert_eq!(
        fx.tlb.translate(&fx.mem, root, va(V)).unwrap().0,
        pa(0x1000),
        "stale without the flush"
    );
    let (_, f) = fx
        .m()
        .unmap(root, va(V + 0x1000), PageSize::Size4KiB)
        .unwrap();
    f.flush(&mut fx.tlb);
    assert_eq!(fx.tlb.translate(&fx.mem, root, va(V + 0x1000)), None);
    fx.tlb.flush_all();
    assert_eq!(fx.tlb.translate(&fx.mem, root, va(V)), None);
}

#[test]
fn flush_range_is_precise_up_to_the_threshold() {
    let mut fx = Fx::new();
    let root = fx.root;
    let mut m = fx.m();
    let (f, st) = m
        .map_range(root, va(V), pa(0), 3 * 4096, RW, true, &mut SimTlb::new())
        .unwrap();
    assert_eq!(st.pages_4k, 3);
    f.ignore();
    let (f, st) = m.unmap_range(root, va(V), 3 * 4096).unwrap();
    assert_eq!(st.pages_4k, 3);
    assert!(!f.is_full());
    let mut tlb = SimTlb::new();
    f.flush(&mut tlb);
    assert_eq!((tlb.invlpgs, tlb.flush_alls), (3, 0));
    let n = INVLPG_MAX as u64 + 1;
    m.map_range(root, va(V), pa(0), n * 4096, RW, true, &mut tlb)
        .unwrap()
        .0
        .ignore();
    let (f, _) = m.unmap_range(root, va(V), n * 4096).unwrap();
    assert!(f.is_full());
    f.flush(&mut tlb);
    assert_eq!((tlb.invlpgs, tlb.flush_alls), (3, 1));
    // One invlpg covers a whole 2 MiB page.
    m.map_range(root, va(V), pa(0), 4 << 20, RW, false, &mut tlb)
        .unwrap()
        .0
        .ignore();
    let (f, st) = m.unmap_range(root, va(V), 4 << 20).unwrap();
    assert_eq!(st.pages_2m, 2);
    f.flush(&mut tlb);
    assert_eq!((tlb.invlpgs, tlb.flush_alls), (5, 1));
}

#[test]
fn dragonos_map_uses_2m_where_aligned_and_4k_at_the_edges() {
    let mut fx = Fx::new();
    let root = fx.root;
    let r = root.start_address().as_u64();
    let before = fx.free();
    let mut tlb = SimTlb::new();
    let (v, p, len) = (V + 0x1f_e000, 0x1f_e000, (2 << 20) + 0x4000);
    let st = fx
        .m()
        .mm_map_phys_addr(root, v, p, len, RW, false, &mut tlb)
        .unwrap();
    assert_eq!(
        st,
        MapStats {
            pages_4k: 4,
            pages_2m: 1
        }
    );
    assert_eq!(tlb.invlpgs, 5);
    assert_eq!(fx.tr(V + 0x30_0000), Some((0x30_0000, PageSize::Size2MiB)));
    assert_eq!(fx.tr(V + 0x1f_f000), Some((0x1f_f000, PageSize::Size4KiB)));
    assert_eq!(fx.tr(V + 0x40_1000), Some((0x40_1000, PageSize::Size4KiB)));
    assert_eq!(fx.tr(V + 0x40_2000), None);
    // Unmapping part of the 2 MiB page is refused, whole.
    assert!(matches!(
        fx.m().mm_unmap(root, V + 0x20_0000, 0x1000, &mut tlb),
        Err(UnmapError::PartOfHugePage { .. })
    ));
    let st = fx.m().mm_unmap_addr(root, v, len, &mut tlb).unwrap();
    assert_eq!((st.pages_4k, st.pages_2m), (4, 1));
    assert_eq!(fx.free(), before);
    // use4k, and virt/phys that differ modulo 2 MiB: all 4 KiB.
    let st = fx
        .m()
        .mm_map_proc_page_table(
            r,
            true,
            V,
            0x1000,
            2 << 20,
            RW,
            true,
            false,
            false,
            &mut tlb,
        )
        .unwrap();
    assert_eq!(
        st,
        MapStats {
            pages_4k: 512,
            pages_2m: 0
        }
    );
    let (_, _, fl) = translate(&fx.mem, root, va(V)).unwrap();
    assert!(fl.contains(F::USER_ACCESSIBLE));
    assert!(walk(&fx.mem, root, va(V)).steps()[0]
        .flags()
        .contains(F::USER_ACCESSIBLE));
    // The table given as a direct-map address.
    let dv = fx.mem.virt_of(r).unwrap();
    let st = fx
        .m()
        .mm_unmap_proc_table(dv, false, V, 2 << 20, &mut tlb)
        .unwrap();
    assert_eq!(st.pages_4k, 512);
    assert_eq!(fx.free(), before);
    // Errors.
    let mut m = fx.m();
    assert_eq!(
        m.mm_map_proc_page_table(r + 8, true, V, 0, 4096, RW, false, true, true, &mut tlb),
        Err(MapError::BadTable(r + 8))
    );
    assert_eq!(
        m.mm_map_phys_addr(root, 0x0000_8000_0000_0000, 0, 4096, RW, true, &mut tlb),
        Err(MapError::NonCanonical(0x0000_8000_0000_0000))
    );
    assert_eq!(
        m.mm_map_phys_addr(root, 0x0000_7fff_ffff_f000, 0, 0x2000, RW, true, &mut tlb),
        Err(MapError::NonCanonical(0x0000_8000_0000_0fff))
    );
    assert_eq!(
        m.mm_map_phys_addr(root, V, 0, 0, RW, true, &mut tlb),
        Err(MapError::EmptyRange)
    );
    assert_eq!(
        m.mm_unmap(root, V, 4096, &mut tlb),
        Err(UnmapError::NotMapped {
            virt: va(V),
            level: Level::Pml4
        })
    );
}

#[test]
fn dragonos_map_failure_rolls_back() {
    let mut fx = Fx::new();
    let root = fx.root;
    let mut tlb = SimTlb::new();
    fx.m()
        .map(
            root,
            va(V + 0x10_0000),
            pa(0x9000_0000),
            PageSize::Size4KiB,
            RW,
        )
        .unwrap()
        .ignore();
    let before = fx.free();
    let e = fx
        .m()
        .mm_map_phys_addr(root, V, 0, 4 << 20, RW, true, &mut tlb);
    assert!(matches!(e, Err(MapError::AlreadyMapped { virt, .. }) if virt == va(V + 0x10_0000)));
    assert_eq!(fx.free(), before);
    assert_eq!(fx.tr(V), None);
    assert_eq!(fx.tr(V + 0xf_f000), None);
    assert_eq!(
        fx.tr(V + 0x10_0000),
        Some((0x9000_0000, PageSize::Size4KiB))
    );
    assert_eq!(
        (tlb.invlpgs, tlb.flush_alls),
        (0, 1),
        "the 256 rolled-back pages were flushed (past INVLPG_MAX: all)"
    );
}

#[test]
fn mos_insert_lookup_remove_keep_refcounts() {
    let mut fx = Fx::new();
    let root = fx.root;
    let before = fx.free();
    let a = fx.buddy.page_alloc(&mut fx.mem).unwrap();
    let b = fx.buddy.page_alloc(&mut fx.mem).unwrap();
    let mut m = fx.m();
    m.page_insert(root, a, va(V + 0x10), RW | F::USER_ACCESSIBLE)
        .unwrap()
        .ignore();
    assert_eq!(m.frames.page_count(a), Ok(2));
    // Same page again: the count stays, the rights change.
    m.page_insert(root, a, va(V), F::empty())
        .unwrap()
        .flush(&mut SimTlb::new());
    assert_eq!(m.frames.page_count(a), Ok(2));
    let l = m.page_lookup(root, va(V + 0x123)).unwrap();
    assert_eq!(l.pfn, a);
    assert_eq!(l.flags, F::PRESENT | PAGE_REF);
    assert_eq!(l.size, PageSize::Size4KiB);
    // Another page replaces it.
    m.page_insert(root, b, va(V), RW).unwrap().ignore();
    assert_eq!(m.frames.page_count(a), Ok(1));
    assert_eq!(m.frames.page_count(b), Ok(2));
    // A second mapping of b.
    m.page_insert(root, b, va(V + 0x1000), RW).unwrap().ignore();
    assert_eq!(m.frames.page_count(b), Ok(3));
    m.page_remove(root, va(V + 0x1fff)).unwrap().ignore();
    assert_eq!(m.frames.page_count(b), Ok(2));
    assert_eq!(
        m.page_remove(root, va(V + 0x1000)),
        Err(UnmapError::NotMapped {
            virt: va(V + 0x1000),
            level: Level::Pt
        })
    );
    // A plain mapping replaced by page_insert takes no reference from anyone.
    m.map(
        root,
        va(V + 0x2000),
        pa(0x7000_0000),
        PageSize::Size4KiB,
        RW,
    )
    .unwrap()
    .ignore();
    m.page_insert(root, a, va(V + 0x2000), RW).unwrap().ignore();
    assert_eq!(m.frames.page_count(a), Ok(2));
    // A free page cannot be inserted.
    let c = m.frames.page_alloc(m.mem).unwrap();
    m.frames.page_decref(c).unwrap();
    assert!(matches!(
        m.page_insert(root, c, va(V + 0x3000), RW),
        Err(MapError::PageRef(MmError::DoubleFree(_)) | MapError::PageRef(MmError::Invalid(_)))
    ));
    // page_remove drops the reference; the owner's decref frees the page.
    m.page_remove(root, va(V)).unwrap().ignore();
    m.page_remove(root, va(V + 0x2000)).unwrap().ignore();
    assert_eq!(m.frames.page_count(b), Ok(1));
    assert_eq!(m.frames.page_decref(a), Ok(true));
    assert_eq!(m.frames.page_decref(b), Ok(true));
    assert_eq!(m.page_lookup(root, va(V)), None);
    assert_eq!(fx.free(), before);
}

#[test]
fn mos_pgdir_walk() {
    let mut fx = Fx::new();
    let root = fx.root;
    let before = fx.free();
    let mut m = fx.m();
    assert_eq!(m.pgdir_walk(root, va(V), false), Ok(None));
    let pte = m.pgdir_walk(root, va(V + 0x5123), true).unwrap().unwrap();
    assert_eq!(pte.raw, 0);
    assert_eq!(m.pgdir_walk(root, va(V + 0x5000), false), Ok(Some(pte)));
    m.map(root, va(V + 0x5000), pa(0x8000), PageSize::Size4KiB, RW)
        .unwrap()
        .ignore();
    let pte2 = m.pgdir_walk(root, va(V + 0x5000), false).unwrap().unwrap();
    assert_eq!(pte2.addr, pte.addr);
    assert_eq!(pte2.raw, 0x8003);
    // The table made by pgdir_walk is freed with its last mapping.
    let _ = m.unmap(root, va(V + 0x5000), PageSize::Size4KiB).unwrap();
    m.map(root, va(V + 0x40_0000), pa(0), PageSize::Size2MiB, RW)
        .unwrap()
        .ignore();
    assert!(matches!(
        m.pgdir_walk(root, va(V + 0x40_1000), true),
        Err(MapError::HugePageInTheWay { .. })
    ));
    let _ = m
        .unmap(root, va(V + 0x40_0000), PageSize::Size2MiB)
        .unwrap();
    assert_eq!(fx.free(), before);
}

#[test]
fn address_space_shares_the_kernel_half_and_destroy_releases_all() {
    let mut fx = Fx::new();
    let kroot = fx.root;
    fx.m()
        .map(kroot, va(K), pa(0x5000), PageSize::Size4KiB, RW)
        .unwrap()
        .ignore();
    let before = fx.free();
    let page = fx.buddy.page_alloc(&mut fx.mem).unwrap();
    let mut m = fx.m();
    let asp = AddressSpace::new(&mut m, kroot).unwrap();
    let r = asp.root();
    assert_eq!(translate(m.mem, r, va(K)).unwrap().0, pa(0x5000));
    assert_eq!(translate(m.mem, kroot, va(V)), None);
    m.page_insert(r, page, va(V), RW | F::USER_ACCESSIBLE)
        .unwrap()
        .ignore();
    m.page_insert(r, page, va(V + (1 << 39)), RW)
        .unwrap()
        .ignore();
    m.map(r, va(V + 0x20_0000), pa(0), PageSize::Size2MiB, RW)
        .unwrap()
        .ignore();
    assert_eq!(m.frames.page_count(page), Ok(3));
    assert_eq!(
        translate(m.mem, kroot, va(V)),
        None,
        "the user half is its own"
    );
    let asp = match asp.destroy(&mut m, r) {
        Err((a, DestroyError::Running)) => a,
        other => panic!("{other:?}"),
    };
    let st = asp.destroy(&mut m, kroot).unwrap();
    assert_eq!(
        st,
        DestroyStats {
            tables: 1 + 2 + 2 + 2,
            mappings: 3,
            refs_dropped: 2,
            bad_refs: 0
        }
    );
    assert_eq!(m.frames.page_count(page), Ok(1));
    assert_eq!(m.frames.page_decref(page), Ok(true));
    assert_eq!(fx.free(), before);
    assert_eq!(fx.tr(K), Some((0x5000, PageSize::Size4KiB)));
}

#[test]
fn table_frames_come_from_mapped_zones_zeroed() {
    let mut fx = Fx::new();
    let f = fx.buddy.alloc_table(&mut fx.mem).unwrap();
    let a = f.start_address().as_u64();
    assert!(a < (NPAGES as u64) << 12);
    assert!((0..512).all(|i| fx.mem.read_u64(a + i * 8) == 0));
    fx.buddy.free_table(f);
}

#[test]
fn cached_directory_serves_other_page_tables_and_user_rights() {
    let mut fx = Fx::new();
    let (root, free0) = (fx.root, fx.free());
    let u = RW | F::USER_ACCESSIBLE;
    let mut m = fx.m();
    // A kernel-rights page in region 0 caches its page table and directory.
    m.map(root, va(V), pa(0x10_0000), PageSize::Size4KiB, RW)
        .unwrap()
        .ignore();
    for (v, p) in [
        (V + (1 << 21), 0x20_0000),
        (V + (1 << 21) + 0x1000, 0x40_0000),
    ] {
        m.map(root, va(v), pa(p), PageSize::Size4KiB, RW)
            .unwrap()
            .ignore();
    }
    // Back in region 0 (page-table cache miss, directory hit), then region 1.
    let t = |m: &Mapper<'_, SimMem, Buddy<'static>>, v: u64| {
        m.translate(root, va(v)).map(|(p, s, _)| (p.as_u64(), s))
    };
    assert_eq!(t(&m, V + 8), Some((0x10_0008, PageSize::Size4KiB)));
    assert_eq!(t(&m, V + (1 << 21)), Some((0x20_0000, PageSize::Size4KiB)));
    assert_eq!(t(&m, V + 0x1000), None);
    // A user page below tables made for kernel pages: the cached walk must not
    // skip adding USER_ACCESSIBLE to the entries above it.
    m.map(root, va(V + 0x1000), pa(0x30_0000), PageSize::Size4KiB, u)
        .unwrap()
        .ignore();
    let w = m.walk(root, va(V + 0x1000));
    assert!(
        w.steps()
            .iter()
            .all(|s| s.flags().contains(F::USER_ACCESSIBLE)),
        "{w}"
    );
    // Unmapping through the directory cache keeps the counts right: the last
    // page of region 1 frees its page table (and the cache), region 0 stays.
    for v in [V + (1 << 21) + 0x1000, V + (1 << 21)] {
        m.unmap(root, va(v), PageSize::Size4KiB).unwrap().1.ignore();
    }
    assert_eq!(t(&m, V + (1 << 21)), None);
    assert_eq!(t(&m, V + 0x1008), Some((0x30_0008, PageSize::Size4KiB)));
    for v in [V, V + 0x1000] {
        m.unmap(root, va(v), PageSize::Size4KiB).unwrap().1.ignore();
    }
    assert_eq!(fx.tr(V), None);
    // Every table is gone again: only the root is left.
    let k = fx.root.start_address().as_u64() + super::entry::index(V, 4) * 8;
    assert_eq!(fx.mem.read_u64(k), 0);
    assert_eq!(fx.free(), free0);
}
