//! The physical memory map as the loaders report it, and its sanitizing.
//!
//! Loaders hand over maps with entries in any order, of zero length, overlapping
//! (QEMU's PVH map and firmware E820 maps both do), and missing what they placed
//! themselves. [`MemoryMap::sanitize`] turns any list into sorted, disjoint,
//! non-empty regions; where entries overlap the more restrictive kind wins
//! ([`MemKind`] is ordered from most to least usable); touching regions of one
//! kind are merged. Fixed capacity ([`MEMMAP_MAX`]): it runs before any heap exists.
//! [`MemoryMap::reserve_low`] then takes the first [`LOW_RESERVED`] bytes away from
//! RAM, as Linux does on x86.

/// Most memory-map entries kept.
pub const MEMMAP_MAX: usize = 128;

/// Physical memory below this address is never RAM for memkern: the first 64 KiB,
/// which Linux reserves on x86 (`CONFIG_X86_RESERVE_LOW`). The real-mode interrupt
/// vector table and the BIOS data area live there, and a null physical address
/// is a trap for every driver.
pub const LOW_RESERVED: u64 = 64 << 10;

/// Kind of a physical memory region, most permissive first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum MemKind {
    /// Free RAM.
    Usable,
    /// RAM holding loader structures; usable once the kernel no longer needs them.
    BootReclaimable,
    /// ACPI tables; reclaimable after they are parsed (memkern keeps them).
    AcpiReclaimable,
    /// The kernel image (and loader modules).
    Kernel,
    /// The framebuffer.
    Framebuffer,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Faulty RAM.
    Bad,
    /// Anything else.
    Reserved,
}

impl MemKind {
    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            MemKind::Usable => "usable",
            MemKind::BootReclaimable => "boot-reclaimable",
            MemKind::AcpiReclaimable => "acpi-reclaimable",
            MemKind::Kernel => "kernel",
            MemKind::Framebuffer => "framebuffer",
            MemKind::AcpiNvs => "acpi-nvs",
            MemKind::Bad => "bad",
            MemKind::Reserved => "reserved",
        }
    }
    /// True if the region is RAM the page allocator may eventually manage.
    pub fn is_ram(self) -> bool {
        matches!(
            self,
            MemKind::Usable | MemKind::BootReclaimable | MemKind::AcpiReclaimable | MemKind::Kernel
        )
    }
}

/// A physical range `[start, end)` of one kind.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MemRegion {
    pub start: u64,
    pub end: u64,
    pub kind: MemKind,
}

impl MemRegion {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    /// True if the region has no byte.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// A sanitized physical memory map with fixed capacity.
#[derive(Clone)]
pub struct MemoryMap {
    entries: [MemRegion; MEMMAP_MAX],
    len: usize,
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> Self {
        MemoryMap {
            entries: [MemRegion {
                start: 0,
                end: 0,
                kind: MemKind::Reserved,
            }; MEMMAP_MAX],
            len: 0,
        }
    }

    /// The entries, sorted and non-overlapping once [`MemoryMap::sanitize`] ran.
    pub fn entries(&self) -> &[MemRegion] {
        &self.entries[..self.len]
    }

    /// Adds a raw entry (dropped if empty or if the map is full).
    pub fn push(&mut self, r: MemRegion) {
        if r.end > r.start && self.len < MEMMAP_MAX {
            self.entries[self.len] = r;
            self.len += 1;
        }
    }

    /// Marks `[start, end)` as `kind`, overriding what was there (call sanitize after).
    pub fn reserve(&mut self, start: u64, end: u64, kind: MemKind) {
        self.push(MemRegion { start, end, kind });
    }

    /// Sorts, resolves overlaps (the more restrictive kind wins), drops empty
    /// entries and merges touching entries of the same kind.
    pub fn sanitize(&mut self) {
        // Collect every boundary, then give each elementary interval the most
        // restrictive kind of the entries covering it. O(n^2) on <= 128 entries.
        let mut points = [0u64; MEMMAP_MAX * 2];
        let mut np = 0;
        for r in self.entries() {
            points[np] = r.start;
            points[np + 1] = r.end;
            np += 2;
        }
        let points = &mut points[..np];
        points.sort_unstable();
        let mut out = MemoryMap::new();
        for w in 0..np.saturating_sub(1) {
            let (a, b) = (points[w], points[w + 1]);
            if a == b {
                continue;
            }
            let kind = self
                .entries()
                .iter()
                .filter(|r| r.start <= a && b <= r.end)
                .map(|r| r.kind)
                .max();
            if let Some(kind) = kind {
                match out.len.checked_sub(1).map(|i| &mut out.entries[i]) {
                    Some(last) if last.end == a && last.kind == kind => last.end = b,
                    _ => out.push(MemRegion {
                        start: a,
                        end: b,
                        kind,
                    }),
                }
            }
        }
        *self = out;
    }

    /// Marks `[0, LOW_RESERVED)` reserved, whatever the loader said (the map is
    /// sanitized before and after). RAM below [`LOW_RESERVED`] is cut off first,
    /// so even a full map, where the reserved entry might find no room, keeps no
    /// RAM there.
    pub fn reserve_low(&mut self) {
        for r in &mut self.entries[..self.len] {
            if r.kind.is_ram() && r.start < LOW_RESERVED {
                r.start = LOW_RESERVED.min(r.end);
            }
        }
        self.sanitize();
        self.reserve(0, LOW_RESERVED, MemKind::Reserved);
        self.sanitize();
    }

    /// Highest physical address of RAM, exclusive.
    pub fn ram_end(&self) -> u64 {
        self.entries()
            .iter()
            .filter(|r| r.kind.is_ram())
            .map(|r| r.end)
            .max()
            .unwrap_or(0)
    }

    /// Total bytes of the given kind.
    pub fn bytes_of(&self, kind: MemKind) -> u64 {
        self.entries()
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.len())
            .sum()
    }
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(u64, u64, MemKind)]) -> MemoryMap {
        let mut m = MemoryMap::new();
        for &(start, end, kind) in entries {
            m.push(MemRegion { start, end, kind });
        }
        m.sanitize();
        m
    }

    fn triples(m: &MemoryMap) -> Vec<(u64, u64, MemKind)> {
        m.entries()
            .iter()
            .map(|r| (r.start, r.end, r.kind))
            .collect()
    }

    #[test]
    fn sorts_drops_empty_and_merges_neighbours() {
        let m = map(&[
            (0x10_0000, 0x20_0000, MemKind::Usable),
            (0, 0x9_fc00, MemKind::Usable),
            (0x5000, 0x5000, MemKind::Reserved),
            (0x20_0000, 0x80_0000, MemKind::Usable),
        ]);
        assert_eq!(
            triples(&m),
            [
                (0, 0x9_fc00, MemKind::Usable),
                (0x10_0000, 0x80_0000, MemKind::Usable)
            ]
        );
        assert_eq!(m.ram_end(), 0x80_0000);
        assert_eq!(m.bytes_of(MemKind::Usable), 0x9_fc00 + 0x70_0000);
    }

    #[test]
    fn the_more_restrictive_kind_wins_an_overlap() {
        // The kernel image reserved inside usable RAM splits it in three.
        let m = map(&[
            (0, 0x100_0000, MemKind::Usable),
            (0x20_0000, 0x64_4000, MemKind::Kernel),
        ]);
        assert_eq!(
            triples(&m),
            [
                (0, 0x20_0000, MemKind::Usable),
                (0x20_0000, 0x64_4000, MemKind::Kernel),
                (0x64_4000, 0x100_0000, MemKind::Usable)
            ]
        );
        // Reserved over boot-reclaimable over usable, partially overlapping.
        let m = map(&[
            (0x1000, 0x5000, MemKind::BootReclaimable),
            (0, 0x4000, MemKind::Usable),
            (0x3000, 0x6000, MemKind::Reserved),
        ]);
        assert_eq!(
            triples(&m),
            [
                (0, 0x1000, MemKind::Usable),
                (0x1000, 0x3000, MemKind::BootReclaimable),
                (0x3000, 0x6000, MemKind::Reserved)
            ]
        );
    }

    #[test]
    fn the_first_64_kib_are_reserved() {
        // QEMU's PVH map: RAM from address 0.
        let mut m = map(&[
            (0, 0x9_fc00, MemKind::Usable),
            (0x9_fc00, 0xa_0000, MemKind::Reserved),
            (0x10_0000, 0x8000_0000, MemKind::Usable),
        ]);
        m.reserve_low();
        assert_eq!(
            triples(&m),
            [
                (0, LOW_RESERVED, MemKind::Reserved),
                (LOW_RESERVED, 0x9_fc00, MemKind::Usable),
                (0x9_fc00, 0xa_0000, MemKind::Reserved),
                (0x10_0000, 0x8000_0000, MemKind::Usable)
            ]
        );
        // Loader data and small holes below 64 KiB; RAM straddling the limit.
        let mut m = map(&[
            (0x1000, 0x2000, MemKind::BootReclaimable),
            (0x3000, 0x2_0000, MemKind::Usable),
        ]);
        m.reserve_low();
        assert_eq!(
            triples(&m),
            [
                (0, LOW_RESERVED, MemKind::Reserved),
                (LOW_RESERVED, 0x2_0000, MemKind::Usable)
            ]
        );
        // A full map has no room for the reserved entry: the RAM below goes anyway.
        let mut m = MemoryMap::new();
        for i in 0..MEMMAP_MAX as u64 {
            let kind = if i % 2 == 0 {
                MemKind::Usable
            } else {
                MemKind::AcpiNvs
            };
            m.push(MemRegion {
                start: i * 0x1000,
                end: i * 0x1000 + 0x1000,
                kind,
            });
        }
        m.sanitize();
        assert_eq!(m.entries().len(), MEMMAP_MAX);
        m.reserve_low();
        // The 8 RAM entries below 64 KiB went, so the reserved one found room.
        assert_eq!(m.entries().len(), MEMMAP_MAX - 15);
        assert_eq!(
            triples(&m)[..2],
            [
                (0, LOW_RESERVED, MemKind::Reserved),
                (LOW_RESERVED, LOW_RESERVED + 0x1000, MemKind::Usable)
            ]
        );
    }

    #[test]
    fn capacity_is_bounded_and_extra_entries_are_dropped() {
        let mut m = MemoryMap::new();
        for i in 0..(MEMMAP_MAX as u64 + 10) {
            m.push(MemRegion {
                start: i * 0x2000,
                end: i * 0x2000 + 0x1000,
                kind: MemKind::Usable,
            });
        }
        assert_eq!(m.entries().len(), MEMMAP_MAX);
        m.sanitize();
        assert_eq!(m.entries().len(), MEMMAP_MAX);
        assert_eq!(MemoryMap::new().ram_end(), 0);
    }
}
