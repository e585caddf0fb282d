//! Simulated physical memory for host tests, benchmarks and examples: a byte
//! vector standing for RAM from physical address 0, with a direct map at
//! [`DIRECT_MAP_BASE`] covering the first `mapped` bytes (like the kernel's map of
//! ZONE_DMA and ZONE_NORMAL). The kernel itself uses its real direct map instead.
//! Also [`Rng`], the seeded generator of the fuzzers.

use crate::layout::DIRECT_MAP_BASE;
use crate::PhysMem;
use alloc::vec;
use alloc::vec::Vec;

/// `len` bytes of simulated RAM.
#[derive(Clone, Debug)]
pub struct SimMem {
    /// The contents, indexed by physical address.
    pub bytes: Vec<u8>,
    mapped: u64,
}

impl SimMem {
    /// `len` bytes, every one `fill` (a non-zero fill shows what was never
    /// written), all of it in the direct map.
    pub fn new(len: usize, fill: u8) -> SimMem {
        SimMem {
            bytes: vec![fill; len],
            mapped: len as u64,
        }
    }

    /// The same memory with only the first `end` bytes in the direct map (the rest
    /// is like ZONE_UNMAPPED: reachable by physical address only).
    pub fn direct_map_end(mut self, end: u64) -> SimMem {
        self.mapped = end.min(self.bytes.len() as u64);
        self
    }

    #[inline]
    fn range(&self, phys: u64, len: usize) -> core::ops::Range<usize> {
        phys as usize..phys as usize + len
    }
}

impl PhysMem for SimMem {
    #[inline]
    fn virt_of(&self, phys: u64) -> Option<u64> {
        (phys < self.mapped).then_some(phys + DIRECT_MAP_BASE)
    }
    #[inline]
    fn phys_of(&self, virt: u64) -> Option<u64> {
        let p = virt.checked_sub(DIRECT_MAP_BASE)?;
        (p < self.mapped).then_some(p)
    }
    #[inline(always)]
    fn direct_offset(&self) -> u64 {
        DIRECT_MAP_BASE
    }
    #[inline]
    fn fill(&mut self, phys: u64, len: usize, byte: u8) {
        let r = self.range(phys, len);
        self.bytes[r].fill(byte);
    }
    #[inline]
    fn read(&self, phys: u64, buf: &mut [u8]) {
        buf.copy_from_slice(&self.bytes[self.range(phys, buf.len())]);
    }
    #[inline]
    fn write(&mut self, phys: u64, buf: &[u8]) {
        let r = self.range(phys, buf.len());
        self.bytes[r].copy_from_slice(buf);
    }
    #[inline(always)]
    fn read_u64(&self, phys: u64) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes[self.range(phys, 8)]);
        u64::from_le_bytes(b)
    }
    #[inline(always)]
    fn write_u64(&mut self, phys: u64, v: u64) {
        let r = self.range(phys, 8);
        self.bytes[r].copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_map_covers_only_the_mapped_part() {
        let mut m = SimMem::new(8192, 0xee).direct_map_end(4096);
        assert_eq!(m.virt_of(4095), Some(DIRECT_MAP_BASE + 4095));
        assert_eq!(m.virt_of(4096), None);
        assert_eq!(m.phys_of(DIRECT_MAP_BASE + 8), Some(8));
        assert_eq!(m.phys_of(DIRECT_MAP_BASE + 4096), None);
        assert_eq!(m.phys_of(8), None);
        m.write_u64(4100, 0x1122_3344_5566_7788);
        assert_eq!(m.read_u64(4100), 0x1122_3344_5566_7788);
        m.fill(0, 4, 0);
        let mut b = [1u8; 5];
        m.read(0, &mut b);
        assert_eq!(b, [0, 0, 0, 0, 0xee]);
    }
}

/// A small deterministic generator (xorshift64*) for seeded fuzzers and tests, so
/// that a printed seed replays a run exactly.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// One of `xs` (which must not be empty).
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}
