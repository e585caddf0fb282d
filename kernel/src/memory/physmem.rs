//! `mm::PhysMem` over the kernel's direct map: how the hardware-free allocators
//! touch memory contents (zeroing, poisoning, free pointers). Frames outside the
//! direct map (ZONE_UNMAPPED) are reached one page at a time through the
//! temporary window.

use super::paging;

/// Physical memory as the running kernel sees it.
#[derive(Clone, Copy, Default)]
pub struct DirectMap;

/// Calls `f(virt, chunk_len, offset_in_request)` for each piece of
/// `[phys, phys+len)`, each piece reachable at `virt` (direct map or window).
fn for_each_piece(phys: u64, len: usize, mut f: impl FnMut(*mut u8, usize, usize)) {
    let mut done = 0usize;
    while done < len {
        let p = phys + done as u64;
        match paging::phys_to_virt(p) {
            Some(v) => {
                // Stay inside the direct map for this piece (before the switch
                // the loader's map covers everything: end 0).
                let end = paging::direct_map_end();
                let room = if end == 0 {
                    len - done
                } else {
                    (end - p) as usize
                };
                let n = (len - done).min(room);
                f(v as *mut u8, n, done);
                done += n;
            }
            None => {
                let n = (len - done).min(4096 - (p & 0xfff) as usize);
                paging::with_temp_mapping(p, |v| f(v, n, done));
                done += n;
            }
        }
    }
}

impl mm::PhysMem for DirectMap {
    #[inline]
    fn virt_of(&self, phys: u64) -> Option<u64> {
        paging::phys_to_virt(phys)
    }
    #[inline]
    fn phys_of(&self, virt: u64) -> Option<u64> {
        paging::virt_to_phys(virt)
    }
    #[inline]
    fn direct_offset(&self) -> u64 {
        paging::phys_offset()
    }
    fn fill(&mut self, phys: u64, len: usize, byte: u8) {
        // SAFETY: the allocators only name RAM they own; each piece is mapped
        // (direct map or window) for its length.
        for_each_piece(phys, len, |v, n, _| unsafe {
            core::ptr::write_bytes(v, byte, n)
        });
    }
    fn read(&self, phys: u64, buf: &mut [u8]) {
        let dst = buf.as_mut_ptr();
        // SAFETY: as in fill; `dst + off` stays inside `buf`.
        for_each_piece(phys, buf.len(), |v, n, off| unsafe {
            core::ptr::copy_nonoverlapping(v, dst.add(off), n)
        });
    }
    fn write(&mut self, phys: u64, buf: &[u8]) {
        let src = buf.as_ptr();
        // SAFETY: as in fill; `src + off` stays inside `buf`.
        for_each_piece(phys, buf.len(), |v, n, off| unsafe {
            core::ptr::copy_nonoverlapping(src.add(off), v, n)
        });
    }
    #[inline]
    fn read_u64(&self, phys: u64) -> u64 {
        match paging::phys_to_virt(phys) {
            // SAFETY: an 8-aligned word of owned RAM in the direct map.
            Some(v) => unsafe { (v as *const u64).read() },
            None => {
                let mut b = [0u8; 8];
                self.read(phys, &mut b);
                u64::from_le_bytes(b)
            }
        }
    }
    #[inline]
    fn write_u64(&mut self, phys: u64, val: u64) {
        match paging::phys_to_virt(phys) {
            // SAFETY: an 8-aligned word of owned RAM in the direct map.
            Some(v) => unsafe { (v as *mut u64).write(val) },
            None => self.write(phys, &val.to_le_bytes()),
        }
    }
}
