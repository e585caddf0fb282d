//! The kernel half of the address space (PML4 entries 256..512) is shared by
//! every address space, which copies those entries when it is made
//! ([`AddressSpace::new`](super::AddressSpace::new)). A PML4 entry added later
//! would not be seen by address spaces made before, and the mapper never frees
//! a kernel-half PDPT (it could be shared). So, as Linux preallocates the upper
//! levels of its vmalloc area, the kernel creates the PDPTs of the ranges it
//! maps at run time once, at boot: [`preallocate_pdpts`]. Mapping and unmapping
//! there then never allocates or leaks a PDPT, and `free all` gives every
//! run-time table frame back.

use x86_64::structures::paging::PhysFrame;

use super::entry::{P, W};
use super::frames::TableFrames;
use crate::PhysMem;

/// Gives every empty PML4 entry in `slots` (kernel-half indices) of `root` a
/// fresh, empty PDPT from `frames`. Returns how many were made, or `None` if
/// the frames ran out (the entries made so far stay).
pub fn preallocate_pdpts(
    mem: &mut impl PhysMem,
    frames: &mut impl TableFrames,
    root: PhysFrame,
    slots: core::ops::Range<u64>,
) -> Option<u64> {
    let r = root.start_address().as_u64();
    let mut n = 0;
    for i in slots.start.max(256)..slots.end.min(512) {
        let ea = r + i * 8;
        if mem.read_entry(ea) & P != 0 {
            continue;
        }
        let f = frames.alloc_table(mem)?;
        // A count of 0 in a kernel-half PML4 entry is never used to free.
        mem.write_entry(ea, f.start_address().as_u64() | P | W);
        n += 1;
    }
    Some(n)
}

/// The PML4 slots whose PDPTs the kernel preallocates: from the vmalloc range
/// up to (not including) the kernel image's slot, which boot maps anyway.
pub const RUNTIME_SLOTS: core::ops::Range<u64> =
    crate::layout::pml4_index(crate::layout::VMALLOC.start)..511;

#[cfg(test)]
mod tests {
    use std::vec;

    use super::*;
    use crate::buddy::Buddy;
    use crate::paging::{AddressSpace, Mapper, SimTlb};
    use crate::sim::SimMem;
    use crate::{Page, Pfn, Zone};
    use x86_64::structures::paging::PageTableFlags as F;

    #[test]
    fn preallocated_pdpts_are_shared_and_nothing_leaks() {
        let map: &'static mut [Page] = vec![Page::reserved(Zone::Dma); 2048].leak();
        let mut b = Buddy::page_init(map, Pfn(2048), &[(Pfn(256), Pfn(2048))], &[]).unwrap();
        let mut mem = SimMem::new(2048 * 4096, 0xa5);
        let root = b.alloc_table(&mut mem).unwrap();
        assert_eq!(
            preallocate_pdpts(&mut mem, &mut b, root, RUNTIME_SLOTS),
            Some(127)
        );
        assert_eq!(
            preallocate_pdpts(&mut mem, &mut b, root, RUNTIME_SLOTS),
            Some(0)
        );
        let free = b.nr_free_pages();
        let mut tlb = SimTlb::new();
        let mut m = Mapper::new(&mut mem, &mut b);
        let a = AddressSpace::new(&mut m, root).unwrap();
        let v = 0xffff_e200_0000_0000;
        m.mm_map_phys_addr(root, v, 0x10_0000, 0x1000, F::WRITABLE, true, &mut tlb)
            .unwrap();
        // Seen through the address space made before the mapping.
        assert!(crate::paging::translate(m.mem, a.root(), x86_64::VirtAddr::new(v)).is_some());
        m.mm_unmap(root, v, 0x1000, &mut tlb).unwrap();
        a.destroy(&mut m, root).unwrap();
        assert_eq!(b.nr_free_pages(), free, "PD and PT freed, PDPT kept");
    }
}
