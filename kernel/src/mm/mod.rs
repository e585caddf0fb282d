//! The kernel side of memory management: it owns the address space (see
//! [`paging`]), sizes the zones, places `mem_map`, and runs the hardware-free
//! allocators of the `mm` crate over real memory.
//!
//! Boot sequence ([`init`]):
//! 1. the zone limit: ZONE_DMA below 16 MiB, ZONE_NORMAL up to `mm.lowmem=`
//!    (default [`DEFAULT_LOWMEM`]), ZONE_UNMAPPED_IN_PGT above;
//! 2. a boot frame allocator places `mem_map` (16 bytes per frame) and the page
//!    tables in ZONE_NORMAL;
//! 3. the kernel switches to its own page tables;
//! 4. the buddy allocator takes every usable and boot-reclaimable frame; the image,
//!    `mem_map` and page tables are reserved as `PAGE_KERNEL_INIT`.

pub mod bootmem;
pub mod paging;

use crate::boot::BootInfo;
use bootmem::BootAlloc;

/// Default end of the direct map (and of ZONE_NORMAL): 1 GiB, so that `make run`'s
/// 2 GiB has all three zones.
pub const DEFAULT_LOWMEM: u64 = 1 << 30;

/// Parses a size such as `1G`, `512M`, `0x40000000`.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mul) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n = match num.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => num.parse().ok()?,
    };
    n.checked_mul(mul)
}

/// The direct-map limit asked for on the command line, else the default; at least
/// 32 MiB and a multiple of 2 MiB.
pub fn lowmem_limit(info: &BootInfo) -> u64 {
    let asked = info.cmdline.get("mm.lowmem").and_then(parse_size);
    let v = asked.unwrap_or(DEFAULT_LOWMEM).max(32 << 20);
    v & !((2 << 20) - 1)
}

/// Sets up the kernel's address space and physical-memory management.
pub fn init(info: &BootInfo) {
    paging::set_loader_offset(info.direct_map_offset);
    let lowmem = lowmem_limit(info);
    let ram_end = info.memory_map.ram_end();
    let mut alloc = BootAlloc::new(&info.memory_map, lowmem);
    let max_pfn = ram_end.div_ceil(4096);
    let mem_map_bytes = max_pfn * core::mem::size_of::<mm::Page>() as u64;
    let mem_map_phys = alloc.alloc_contiguous(mem_map_bytes).expect("no room for mem_map");
    paging::build_and_switch(info, lowmem.min(ram_end.next_multiple_of(2 << 20)), &mut alloc);
    alloc.trim();
    let _ = mem_map_phys;
}
