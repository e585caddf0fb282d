//! Simulated physical memory for host tests, benchmarks and examples: a byte
//! vector standing for RAM from physical address 0, with a direct map at
//! [`DIRECT_MAP_BASE`] covering the first `mapped` bytes (like the kernel's map of
//! ZONE_DMA and ZONE_NORMAL). The kernel itself uses its real direct map instead.
//! [`SparseMem`] is the same for a large machine of which tests touch little:
//! pages exist once written, and unwritten bytes read as a pattern of the
//! caller's, so that zeroing and copying show. Also [`Rng`], the seeded
//! generator of the fuzzers.

use crate::layout::DIRECT_MAP_BASE;
use crate::PhysMem;
use crate::PAGE_SIZE;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
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
    /// One bounds check and one load: the RAM seen as 8-byte words (entries are
    /// 8-aligned; the low 3 bits of `phys` are ignored).
    #[inline(always)]
    fn read_entry(&self, phys: u64) -> u64 {
        u64::from_le_bytes(self.bytes.as_chunks::<8>().0[(phys >> 3) as usize])
    }
    #[inline(always)]
    fn write_entry(&mut self, phys: u64, v: u64) {
        self.bytes.as_chunks_mut::<8>().0[(phys >> 3) as usize] = v.to_le_bytes();
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

/// Sparse simulated RAM: a page is materialised on its first write, and bytes
/// nobody wrote read as `unwritten(phys)`. Physical addresses below `mapped` are
/// in the direct map.
#[derive(Clone, Debug)]
pub struct SparseMem {
    pages: BTreeMap<u64, Box<[u8; PAGE_SIZE]>>,
    mapped: u64,
    unwritten: fn(u64) -> u8,
}

impl SparseMem {
    /// Empty memory whose first `mapped` bytes are in the direct map.
    pub fn new(mapped: u64, unwritten: fn(u64) -> u8) -> SparseMem {
        SparseMem {
            pages: BTreeMap::new(),
            mapped,
            unwritten,
        }
    }

    fn page_mut(&mut self, pfn: u64) -> &mut [u8; PAGE_SIZE] {
        let unwritten = self.unwritten;
        self.pages.entry(pfn).or_insert_with(|| {
            let base = pfn * PAGE_SIZE as u64;
            let mut p = Box::new([0u8; PAGE_SIZE]);
            for (i, b) in p.iter_mut().enumerate() {
                *b = unwritten(base + i as u64);
            }
            p
        })
    }
}

/// `[phys, phys + len)` cut at page boundaries: `(start, bytes)` pieces, so that
/// each page is looked up once.
fn chunks(phys: u64, len: usize) -> impl Iterator<Item = (u64, usize)> {
    let end = phys + len as u64;
    let mut a = phys;
    core::iter::from_fn(move || {
        (a < end).then(|| {
            let next = ((a / PAGE_SIZE as u64) + 1) * PAGE_SIZE as u64;
            let n = (next.min(end) - a) as usize;
            let piece = (a, n);
            a += n as u64;
            piece
        })
    })
}

impl PhysMem for SparseMem {
    fn virt_of(&self, phys: u64) -> Option<u64> {
        (phys < self.mapped).then_some(DIRECT_MAP_BASE + phys)
    }
    fn phys_of(&self, virt: u64) -> Option<u64> {
        let p = virt.checked_sub(DIRECT_MAP_BASE)?;
        (p < self.mapped).then_some(p)
    }
    fn direct_offset(&self) -> u64 {
        DIRECT_MAP_BASE
    }
    fn fill(&mut self, phys: u64, len: usize, byte: u8) {
        for (a, n) in chunks(phys, len) {
            let off = (a % PAGE_SIZE as u64) as usize;
            self.page_mut(a / PAGE_SIZE as u64)[off..off + n].fill(byte);
        }
    }
    fn read(&self, phys: u64, buf: &mut [u8]) {
        let mut done = 0;
        for (a, n) in chunks(phys, buf.len()) {
            let off = (a % PAGE_SIZE as u64) as usize;
            let dst = &mut buf[done..done + n];
            match self.pages.get(&(a / PAGE_SIZE as u64)) {
                Some(p) => dst.copy_from_slice(&p[off..off + n]),
                None => {
                    for (i, b) in dst.iter_mut().enumerate() {
                        *b = (self.unwritten)(a + i as u64);
                    }
                }
            }
            done += n;
        }
    }
    fn write(&mut self, phys: u64, buf: &[u8]) {
        let mut done = 0;
        for (a, n) in chunks(phys, buf.len()) {
            let off = (a % PAGE_SIZE as u64) as usize;
            self.page_mut(a / PAGE_SIZE as u64)[off..off + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
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

    #[test]
    fn sparse_memory_reads_the_pattern_until_written() {
        fn pattern(phys: u64) -> u8 {
            phys as u8 | 1
        }
        let mut m = SparseMem::new(1 << 20, pattern);
        let mut buf = [0u8; 8];
        m.read(4094, &mut buf);
        assert_eq!(
            buf,
            core::array::from_fn::<u8, 8, _>(|i| pattern(4094 + i as u64))
        );
        // A write across a page boundary, then a fill inside one page.
        m.write(4094, &[7; 4]);
        m.fill(8190, 4, 9);
        m.read(4092, &mut buf);
        assert_eq!(
            buf,
            [
                pattern(4092),
                pattern(4093),
                7,
                7,
                7,
                7,
                pattern(4098),
                pattern(4099)
            ]
        );
        m.read(8188, &mut buf[..6]);
        assert_eq!(buf[..6], [pattern(8188), pattern(8189), 9, 9, 9, 9]);
        assert_eq!(m.virt_of(4096), Some(DIRECT_MAP_BASE + 4096));
        assert_eq!(m.virt_of(1 << 20), None);
        assert_eq!(m.phys_of(DIRECT_MAP_BASE + 5), Some(5));
    }
}
