//! The kernel's virtual address space: every fixed virtual address, defined once.
//!
//! x86_64 with 4-level paging: virtual addresses have 48 significant bits and are
//! sign-extended (canonical), so the space is two halves of 128 TiB with a hole
//! between them. One PML4 entry covers 512 GiB, one PDPT entry 1 GiB. After the
//! switch to its own page tables (`kernel/src/memory/paging.rs`) the kernel uses only
//! the upper half:
//!
//! ```text
//! 0x0000_0000_0000_0000 +-------------------------------------------+
//!                       | lower half (128 TiB): nothing once the     |
//!                       | kernel's tables are live (the PVH stub's   |
//!                       | identity map of 0..4 GiB is boot-only)     |
//! 0x0000_8000_0000_0000 +-------------------------------------------+
//!                       | non-canonical hole                         |
//! 0xffff_8000_0000_0000 +-------------------------------------------+ DIRECT_MAP_BASE
//!                       | direct map (64 TiB): physical p at         |
//!                       | DIRECT_MAP_BASE + p; RAM of ZONE_DMA and   |
//!                       | ZONE_NORMAL, the framebuffer, local APIC   |
//! 0xffff_c000_0000_0000 +-------------------------------------------+ VMALLOC
//!                       | vmalloc (32 TiB): areas of vmalloc/vzalloc,|
//!                       | each followed by an unmapped guard page    |
//! 0xffff_e000_0000_0000 +-------------------------------------------+ IOREMAP
//!                       | ioremap (1 TiB): device memory mappings,   |
//!                       | uncached or write-combining, guard pages   |
//! 0xffff_e100_0000_0000 +-------------------------------------------+
//!                       | unused                                     |
//! 0xffff_fe00_0000_0000 +-------------------------------------------+ TEMP_WINDOW
//!                       | temporary window: one 4 KiB page, remapped |
//!                       | on demand to reach an UNMAPPED frame       |
//! 0xffff_fe00_0000_1000 +-------------------------------------------+
//!                       | unused                                     |
//! 0xffff_ffff_8000_0000 +-------------------------------------------+ KERNEL_BASE
//!                       | kernel image (top 2 GiB): physical p at    |
//!                       | KERNEL_BASE + p, linked at KERNEL_LINK_ADDR|
//! 0xffff_ffff_ffff_ffff +-------------------------------------------+
//! ```
//!
//! [`VMALLOC`] and [`IOREMAP`] are handed out by [`crate::vmalloc`] (one area
//! allocator per range), which maps them through the kernel's page tables.
//!
//! Nothing else defines these addresses: the kernel's page tables and memory setup
//! (`kernel/src/memory/`), the PVH boot stub (`kernel/src/boot/pvh.rs`, as `const`
//! operands of its assembly), `kernel/linker.ld` (which places the image with
//! [`KERNEL_BASE`] and [`KERNEL_LOAD_PHYS`], exported to it as absolute symbols by
//! `kernel/src/boot/mod.rs`), [`crate::sim`] and the host and serial tests all
//! import them from here.

/// A fixed range of kernel virtual addresses: `[start, start + size)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Region {
    /// What the range holds.
    pub name: &'static str,
    /// First address.
    pub start: u64,
    /// Length in bytes (non-zero).
    pub size: u64,
}

impl Region {
    /// Last address of the range (inclusive: the kernel image ends at 2^64).
    pub const fn last(&self) -> u64 {
        self.start + (self.size - 1)
    }

    /// Whether `virt` lies in the range.
    pub const fn contains(&self, virt: u64) -> bool {
        virt >= self.start && virt <= self.last()
    }
}

const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Where physical memory is mapped: physical `p` is at `DIRECT_MAP_BASE + p`.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
/// The direct map: room for 64 TiB of physical addresses (the kernel maps RAM
/// below `lowmem` and the device pages it uses).
pub const DIRECT_MAP: Region = Region {
    name: "direct map",
    start: DIRECT_MAP_BASE,
    size: 64 * TIB,
};

/// vmalloc's range: virtually contiguous kernel allocations of frames from any
/// zone ([`crate::vmalloc::VmSpace::vmalloc`]).
pub const VMALLOC: Region = Region {
    name: "vmalloc",
    start: 0xffff_c000_0000_0000,
    size: 32 * TIB,
};

/// ioremap's range: mappings of device memory
/// ([`crate::vmalloc::VmSpace::ioremap`]).
pub const IOREMAP: Region = Region {
    name: "ioremap",
    start: 0xffff_e000_0000_0000,
    size: TIB,
};

/// A one-page window for touching frames outside the direct map (ZONE_UNMAPPED).
pub const TEMP_WINDOW: u64 = 0xffff_fe00_0000_0000;
/// The temporary window as a range.
pub const TEMP: Region = Region {
    name: "temporary window",
    start: TEMP_WINDOW,
    size: crate::PAGE_SIZE as u64,
};

/// The higher-half base of the kernel image: physical `p` of the image is at
/// `KERNEL_BASE + p` (the top 2 GiB, as Limine and the kernel code model require).
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
/// The physical address the image is linked to load at (PVH loaders load by
/// physical address).
pub const KERNEL_LOAD_PHYS: u64 = 0x20_0000;
/// The image's link address: its first byte.
pub const KERNEL_LINK_ADDR: u64 = KERNEL_BASE + KERNEL_LOAD_PHYS;
/// The kernel image's range.
pub const KERNEL_IMAGE: Region = Region {
    name: "kernel image",
    start: KERNEL_BASE,
    size: 2 * GIB,
};

/// Every fixed range, in address order.
pub const REGIONS: [Region; 5] = [DIRECT_MAP, VMALLOC, IOREMAP, TEMP, KERNEL_IMAGE];

/// The PML4 (level-4) index of `virt`: which 512 GiB slot it lies in.
pub const fn pml4_index(virt: u64) -> u64 {
    (virt >> 39) & 511
}

/// The PDPT (level-3) index of `virt`: which 1 GiB slot of its 512 GiB.
pub const fn pdpt_index(virt: u64) -> u64 {
    (virt >> 30) & 511
}

/// Whether `virt` is canonical with 48-bit virtual addresses (bits 63..47 equal).
pub const fn is_canonical(virt: u64) -> bool {
    let top = virt >> 47;
    top == 0 || top == (1 << 17) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_in_order_and_do_not_overlap() {
        for w in REGIONS.windows(2) {
            assert!(
                w[0].last() < w[1].start,
                "{} overlaps {}",
                w[0].name,
                w[1].name
            );
        }
    }

    #[test]
    fn regions_are_canonical_upper_half() {
        for r in REGIONS {
            assert!(r.size > 0, "{}", r.name);
            assert!(
                is_canonical(r.start) && is_canonical(r.last()),
                "{}",
                r.name
            );
            assert!(r.start >= DIRECT_MAP_BASE, "{} in the lower half", r.name);
        }
        assert_eq!(KERNEL_IMAGE.last(), u64::MAX);
    }

    #[test]
    fn alignment() {
        // The large ranges own whole PML4 slots, so page tables can be shared.
        for r in [DIRECT_MAP, VMALLOC, IOREMAP] {
            assert_eq!(r.start % (512 * GIB), 0, "{}", r.name);
            assert_eq!(r.size % (512 * GIB), 0, "{}", r.name);
        }
        assert_eq!(TEMP_WINDOW % crate::PAGE_SIZE as u64, 0);
        // The PVH stub maps the image with one PD: the base must be 1 GiB aligned
        // and the load address 2 MiB aligned (its pages are 2 MiB).
        assert_eq!(KERNEL_BASE % GIB, 0);
        assert_eq!(KERNEL_LOAD_PHYS % (2 << 20), 0);
        assert!(KERNEL_IMAGE.contains(KERNEL_LINK_ADDR));
    }

    #[test]
    fn page_table_indices() {
        assert_eq!(pml4_index(DIRECT_MAP_BASE), 256);
        assert_eq!(pml4_index(KERNEL_BASE), 511);
        assert_eq!(pdpt_index(KERNEL_BASE), 510);
        assert_eq!(pml4_index(TEMP_WINDOW), 508);
    }

    #[test]
    fn canonical() {
        assert!(is_canonical(0));
        assert!(is_canonical(0x0000_7fff_ffff_ffff));
        assert!(!is_canonical(0x0000_8000_0000_0000));
        assert!(!is_canonical(0xffff_7fff_ffff_ffff));
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(is_canonical(u64::MAX));
    }
}
