//! slub_debug for memkern: per-cache debug options, the debug slot layout, the checks,
//! the error reports and the `slub_debug=` parser.
//!
//! A cache with any debug option uses the *debug slot layout* (see
//! [`super::layout::Layout`]) and takes the out-of-line allocation and free paths:
//!
//! ```text
//!  0          obj_size      +16 (Z)         +8           +8          +32 (U)       stride
//!  | object    | red zone    | state word    | req. size  | tracks     | padding 0x5a |
//!  | 0x6b..a5  | 0xbb free   | FREE ^ phys   |            | alloc,free |              |
//!  | when free | 0xcc in use | ALLOC ^ phys  |            |            |              |
//! ```
//!
//! The object stays at offset 0 of its slot and the stride is a multiple of the
//! alignment, so objects keep their alignment (a kmalloc object of class `n` is still
//! `n`-aligned; the stride of a debug kmalloc-64 is 128). The bytes between the
//! requested size and the object size (kmalloc slack, or the rounding of a cache's
//! object size) are red zone too (0xcc while in use), as Linux does with `orig_size`.
//! Metadata never lives inside the object, so poisoning covers all of it and a write
//! to a freed object is caught instead of corrupting the allocator.

use core::fmt;
use core::panic::Location;

use super::{is_live, page_mut, CacheId, CacheName, Loc, Slab, MODE_DEBUG, TABLE};
use crate::{Gfp, MmError, PageProvider, Pfn, PhysMem, NIL};

/// Linux POISON_INUSE: uninitialised allocated memory and slot padding.
pub const POISON_INUSE: u8 = 0x5a;
/// Linux POISON_FREE: contents of a freed object.
pub const POISON_FREE: u8 = 0x6b;
/// Linux POISON_END: last byte of a freed object.
pub const POISON_END: u8 = 0xa5;
/// Linux SLUB_RED_INACTIVE: red zone of a free object.
pub const SLUB_RED_INACTIVE: u8 = 0xbb;
/// Linux SLUB_RED_ACTIVE: red zone of an allocated object.
pub const SLUB_RED_ACTIVE: u8 = 0xcc;

/// State word of a free slot is `phys ^ FREE_MAGIC`, of an allocated one
/// `phys ^ ALLOC_MAGIC`; anything else is a corrupted "free pointer".
pub(super) const FREE_MAGIC: u64 = 0xf4ee_0b1e_c7f4_ee00;
pub(super) const ALLOC_MAGIC: u64 = 0xa110_c47e_d0b1_ec00;

/// Capacity of the allocation-site table (`U` tracking).
pub const MAX_SITES: usize = 512;
/// How many error reports are kept (the oldest are dropped; counters keep counting).
pub const MAX_REPORTS: usize = 32;

/// slub_debug options of a cache (Linux letters F, Z, P, U).
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct DebugFlags(pub u8);

impl DebugFlags {
    /// No debugging: the lean fast paths.
    pub const NONE: DebugFlags = DebugFlags(0);
    /// `F`: sanity checks: the state word ("free pointer") of every object handled.
    pub const SANITY: DebugFlags = DebugFlags(1);
    /// `Z`: red zones after every object and over the slack after the requested size.
    pub const RED_ZONE: DebugFlags = DebugFlags(2);
    /// `P`: poison free objects (0x6b, last byte 0xa5) and check it on allocation;
    /// fill new allocations with 0x5a.
    pub const POISON: DebugFlags = DebugFlags(4);
    /// `U`: record the allocation and free site of every object.
    pub const STORE_USER: DebugFlags = DebugFlags(8);
    /// `FZPU`.
    pub const ALL: DebugFlags = DebugFlags(15);

    /// True if every bit of `o` is set.
    pub const fn contains(self, o: DebugFlags) -> bool {
        self.0 & o.0 == o.0
    }
    /// True if any option is on.
    pub const fn any(self) -> bool {
        self.0 != 0
    }
    /// Both sets.
    pub const fn union(self, o: DebugFlags) -> DebugFlags {
        DebugFlags(self.0 | o.0)
    }
    /// Parses Linux option letters (`FZPU`, any case). `T` (trace), `A` (failslab) and
    /// `O` (skip high-order caches) are accepted and ignored; `-` means none. `None` if
    /// a letter is unknown.
    pub fn parse_letters(s: &str) -> Option<DebugFlags> {
        let mut f = DebugFlags::NONE;
        for ch in s.chars() {
            f = match ch.to_ascii_uppercase() {
                'F' => f.union(DebugFlags::SANITY),
                'Z' => f.union(DebugFlags::RED_ZONE),
                'P' => f.union(DebugFlags::POISON),
                'U' => f.union(DebugFlags::STORE_USER),
                'T' | 'A' | 'O' => f,
                '-' => DebugFlags::NONE,
                _ => return None,
            };
        }
        Some(f)
    }
}

impl fmt::Display for DebugFlags {
    /// `FZPU` letters, `-` for none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.any() {
            return f.write_str("-");
        }
        for (bit, ch) in [(1, "F"), (2, "Z"), (4, "P"), (8, "U")] {
            if self.0 & bit != 0 {
                f.write_str(ch)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for DebugFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a detected error is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlabErrorKind {
    /// A red zone byte (after the object, or the slack after the requested size) changed.
    RedzoneOverwritten,
    /// A poisoned free object was written to (use after free).
    PoisonOverwritten,
    /// The padding at the end of a debug slot changed.
    PaddingOverwritten,
    /// The free-list metadata of a slab (state word or free bitmap) is corrupt.
    FreePointerCorrupt,
    /// A slab's count of objects in use disagrees with its objects.
    InuseMismatch,
    /// An object was freed twice.
    DoubleFree,
    /// A pointer that is not a live object was freed.
    InvalidFree,
    /// An object was freed to another cache.
    WrongCache,
}

impl SlabErrorKind {
    /// Linux-style description.
    pub const fn describe(self) -> &'static str {
        match self {
            SlabErrorKind::RedzoneOverwritten => "Redzone overwritten",
            SlabErrorKind::PoisonOverwritten => "Poison overwritten",
            SlabErrorKind::PaddingOverwritten => "Object padding overwritten",
            SlabErrorKind::FreePointerCorrupt => "Freepointer corrupt",
            SlabErrorKind::InuseMismatch => "Objects in use mismatch",
            SlabErrorKind::DoubleFree => "Object already free",
            SlabErrorKind::InvalidFree => "Invalid object pointer",
            SlabErrorKind::WrongCache => "Object freed to the wrong cache",
        }
    }
}

/// One detected error: what, where, and (with `U`) who allocated / freed the object.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SlabReport {
    /// Running number of the error (1 = first since boot).
    pub seq: u64,
    /// What was detected.
    pub kind: SlabErrorKind,
    /// Name of the cache.
    pub cache: CacheName,
    /// Virtual address of the object (start of its slot).
    pub object: u64,
    /// Offset of the first bad byte from the object start (0 if not a byte check).
    pub offset: u32,
    /// Expected byte value (byte checks).
    pub expected: u8,
    /// Found byte value (byte checks).
    pub found: u8,
    /// Allocation site of the object (caches with `U`).
    pub alloc_site: Option<&'static Location<'static>>,
    /// Last free site of the object (caches with `U`).
    pub free_site: Option<&'static Location<'static>>,
}

impl fmt::Display for SlabReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BUG {} ({}): object {:#x}",
            self.cache,
            self.kind.describe(),
            self.object
        )?;
        if self.expected != self.found {
            write!(
                f,
                " +{}: found {:#04x} expected {:#04x}",
                self.offset, self.found, self.expected
            )?;
        }
        if let Some(l) = self.alloc_site {
            write!(f, ", allocated at {}:{}", l.file(), l.line())?;
        }
        if let Some(l) = self.free_site {
            write!(f, ", freed at {}:{}", l.file(), l.line())?;
        }
        Ok(())
    }
}

/// Allocation and free site of an object (caches with `U`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Track {
    /// Where it was last allocated.
    pub alloc_site: Option<&'static Location<'static>>,
    /// Sequence number of that allocation (a global counter, as a timestamp).
    pub alloc_seq: u64,
    /// Where it was last freed.
    pub free_site: Option<&'static Location<'static>>,
    /// Sequence number of that free.
    pub free_seq: u64,
}

/// Interned allocation sites: a fixed open-addressed table (no heap), so a track
/// record in memory is a 32-bit site number.
pub(super) struct Sites {
    table: [Option<&'static Location<'static>>; MAX_SITES],
}

impl Sites {
    pub(super) const fn new() -> Sites {
        Sites {
            table: [None; MAX_SITES],
        }
    }

    /// Site number of `loc` (1-based), 0 if the table is full.
    pub(super) fn intern(&mut self, loc: &'static Location<'static>) -> u32 {
        let addr = core::ptr::from_ref(loc).addr() as u64;
        let mut i = (addr.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 55) as usize % MAX_SITES;
        for _ in 0..MAX_SITES {
            match self.table[i] {
                Some(l) if core::ptr::eq(l, loc) => return i as u32 + 1,
                None => {
                    self.table[i] = Some(loc);
                    return i as u32 + 1;
                }
                Some(_) => i = (i + 1) % MAX_SITES,
            }
        }
        0
    }

    pub(super) fn get(&self, id: u32) -> Option<&'static Location<'static>> {
        let i = (id as usize).checked_sub(1)?;
        *self.table.get(i)?
    }
}

/// The last [`MAX_REPORTS`] error reports (fixed ring) and the total count.
pub(super) struct Reports {
    ring: [Option<SlabReport>; MAX_REPORTS],
    pub(super) total: u64,
}

impl Reports {
    pub(super) const fn new() -> Reports {
        Reports {
            ring: [None; MAX_REPORTS],
            total: 0,
        }
    }

    fn push(&mut self, mut r: SlabReport) {
        self.total += 1;
        r.seq = self.total;
        self.ring[(self.total as usize - 1) % MAX_REPORTS] = Some(r);
    }

    /// Reports oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &SlabReport> + '_ {
        let n = self.total as usize;
        let start = n.saturating_sub(MAX_REPORTS);
        (start..n).filter_map(move |i| self.ring[i % MAX_REPORTS].as_ref())
    }

    pub(super) fn clear(&mut self) {
        self.ring = [None; MAX_REPORTS];
    }
}

/// First byte of `[phys, phys + len)` that is not `byte`: `(offset, found)`.
pub(super) fn find_mismatch<M: PhysMem>(
    mem: &M,
    phys: u64,
    len: usize,
    byte: u8,
) -> Option<(usize, u8)> {
    let mut buf = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len());
        mem.read(phys + done as u64, &mut buf[..n]);
        if let Some(p) = buf[..n].iter().position(|&b| b != byte) {
            return Some((done + p, buf[p]));
        }
        done += n;
    }
    None
}

/// Where in a slot something is: the inputs of one report.
#[derive(Clone, Copy)]
pub(super) struct Finding {
    pub kind: SlabErrorKind,
    pub slot_phys: u64,
    pub offset: u32,
    pub expected: u8,
    pub found: u8,
}

impl Slab {
    /// Records an error of cache `ix`: counted in the cache and, unless the cache is a
    /// quiet selftest cache, in the global report ring.
    pub(super) fn report<M: PhysMem>(&mut self, mem: &M, ix: u8, f: Finding) {
        let c = &mut self.caches[ix as usize];
        c.errors += 1;
        if c.quiet {
            return;
        }
        let name = c.name;
        let track = self.track_at(mem, ix, f.slot_phys);
        let object = mem.virt_of(f.slot_phys).unwrap_or(f.slot_phys);
        self.reports.push(SlabReport {
            seq: 0,
            kind: f.kind,
            cache: name,
            object,
            offset: f.offset,
            expected: f.expected,
            found: f.found,
            alloc_site: track.alloc_site,
            free_site: track.free_site,
        });
    }

    /// Records a misuse (double free, invalid or wrong-cache free) of a debug cache.
    pub(super) fn report_misuse<M: PhysMem>(
        &mut self,
        mem: &M,
        ix: u8,
        kind: SlabErrorKind,
        slot_phys: u64,
    ) {
        if self.caches[ix as usize].debug.any() {
            let f = Finding {
                kind,
                slot_phys,
                offset: 0,
                expected: 0,
                found: 0,
            };
            self.report(mem, ix, f);
        }
    }

    /// The track records of the slot at `slot_phys` (empty without `U`).
    pub(super) fn track_at<M: PhysMem>(&self, mem: &M, ix: u8, slot_phys: u64) -> Track {
        let c = &self.caches[ix as usize];
        if !c.debug.contains(DebugFlags::STORE_USER) {
            return Track::default();
        }
        let t = slot_phys + c.lay.track_off as u64;
        Track {
            alloc_site: self.sites.get(mem.read_u64(t) as u32),
            alloc_seq: mem.read_u64(t + 8),
            free_site: self.sites.get(mem.read_u64(t + 16) as u32),
            free_seq: mem.read_u64(t + 24),
        }
    }

    /// Checks `[off, off + len)` of a slot for `byte`; on a mismatch reports `kind`,
    /// restores the bytes and returns true.
    pub(super) fn check_bytes<M: PhysMem>(
        &mut self,
        mem: &mut M,
        ix: u8,
        slot_phys: u64,
        (off, len): (u32, u32),
        byte: u8,
        kind: SlabErrorKind,
    ) -> bool {
        if len == 0 {
            return false;
        }
        match find_mismatch(mem, slot_phys + off as u64, len as usize, byte) {
            None => false,
            Some((at, found)) => {
                let f = Finding {
                    kind,
                    slot_phys,
                    offset: off + at as u32,
                    expected: byte,
                    found,
                };
                self.report(mem, ix, f);
                mem.fill(slot_phys + off as u64, len as usize, byte);
                true
            }
        }
    }

    /// Checks the poison of a free object (0x6b..., last byte 0xa5); reports and
    /// restores it.
    pub(super) fn check_poison<M: PhysMem>(&mut self, mem: &mut M, ix: u8, slot_phys: u64) {
        let o = self.caches[ix as usize].lay.obj_size;
        let k = SlabErrorKind::PoisonOverwritten;
        if !self.check_bytes(mem, ix, slot_phys, (0, o - 1), POISON_FREE, k) {
            self.check_bytes(mem, ix, slot_phys, (o - 1, 1), POISON_END, k);
        } else {
            mem.fill(slot_phys + o as u64 - 1, 1, POISON_END);
        }
    }

    /// Writes the free-object image of a debug slot: state FREE, poison (P without a
    /// constructor), inactive red zone (Z), padding.
    pub(super) fn debug_make_free<M: PhysMem>(&self, mem: &mut M, ix: u8, slot_phys: u64) {
        let c = &self.caches[ix as usize];
        let l = c.lay;
        mem.write_u64(slot_phys + l.state_off as u64, slot_phys ^ FREE_MAGIC);
        if c.debug.contains(DebugFlags::POISON) && c.ctor.is_none() {
            mem.fill(slot_phys, l.obj_size as usize - 1, POISON_FREE);
            mem.fill(slot_phys + l.obj_size as u64 - 1, 1, POISON_END);
        }
        if l.rz_len != 0 {
            mem.fill(
                slot_phys + l.obj_size as u64,
                l.rz_len as usize,
                SLUB_RED_INACTIVE,
            );
        }
        let pad = l.stride - l.pad_off;
        if pad != 0 {
            mem.fill(slot_phys + l.pad_off as u64, pad as usize, POISON_INUSE);
        }
    }

    /// Full check of one debug slot whose state is known (`free`): red zone(s),
    /// poison, padding. Reports and repairs every finding.
    pub(super) fn debug_check_slot<M: PhysMem>(
        &mut self,
        mem: &mut M,
        ix: u8,
        slot_phys: u64,
        free: bool,
    ) {
        let c = &self.caches[ix as usize];
        let l = c.lay;
        let poison = c.debug.contains(DebugFlags::POISON) && c.ctor.is_none();
        let rz = SlabErrorKind::RedzoneOverwritten;
        if free {
            if poison {
                self.check_poison(mem, ix, slot_phys);
            }
            let r = (l.obj_size, l.rz_len);
            self.check_bytes(mem, ix, slot_phys, r, SLUB_RED_INACTIVE, rz);
        } else if l.rz_len != 0 {
            let req = self.requested_size(mem, ix, slot_phys);
            let r = (l.obj_size, l.rz_len);
            self.check_bytes(mem, ix, slot_phys, r, SLUB_RED_ACTIVE, rz);
            let slack = (req, l.obj_size - req);
            self.check_bytes(mem, ix, slot_phys, slack, SLUB_RED_ACTIVE, rz);
        }
        let pad = (l.pad_off, l.stride - l.pad_off);
        let k = SlabErrorKind::PaddingOverwritten;
        self.check_bytes(mem, ix, slot_phys, pad, POISON_INUSE, k);
    }

    /// The requested size recorded in a debug slot; a corrupt value is reported as a
    /// red zone error and replaced by the object size.
    pub(super) fn requested_size<M: PhysMem>(
        &mut self,
        mem: &mut M,
        ix: u8,
        slot_phys: u64,
    ) -> u32 {
        let l = self.caches[ix as usize].lay;
        let at = slot_phys + l.state_off as u64 + 8;
        let req = mem.read_u64(at);
        if req == 0 || req > l.obj_size as u64 {
            let f = Finding {
                kind: SlabErrorKind::RedzoneOverwritten,
                slot_phys,
                offset: l.state_off + 8,
                expected: 0,
                found: 1,
            };
            self.report(mem, ix, f);
            mem.write_u64(at, l.obj_size as u64);
            return l.obj_size;
        }
        req as u32
    }
}

impl Slab {
    /// Allocation of slot `phys` of a debug cache (its bit already taken): checks the
    /// free image (state word, poison, red zone, padding), then writes the allocated
    /// image (state, requested size, active red zone over the slack, track, content).
    pub(super) fn debug_alloc_slot<M: PhysMem>(
        &mut self,
        mem: &mut M,
        ix: u8,
        phys: u64,
        req: u32,
        gfp: Gfp,
        site: &'static Location<'static>,
    ) {
        let c = &self.caches[ix as usize];
        let (l, dbg, ctor) = (c.lay, c.debug, c.ctor.is_some());
        let sw_at = phys + l.state_off as u64;
        if mem.read_u64(sw_at) != phys ^ FREE_MAGIC {
            let f = Finding {
                kind: SlabErrorKind::FreePointerCorrupt,
                slot_phys: phys,
                offset: l.state_off,
                expected: 0,
                found: 0,
            };
            self.report(mem, ix, f);
        }
        self.debug_check_slot(mem, ix, phys, true);
        let req = req.clamp(1, l.obj_size);
        mem.write_u64(sw_at, phys ^ ALLOC_MAGIC);
        mem.write_u64(sw_at + 8, req as u64);
        if l.rz_len != 0 {
            mem.fill(phys + l.obj_size as u64, l.rz_len as usize, SLUB_RED_ACTIVE);
            mem.fill(
                phys + req as u64,
                (l.obj_size - req) as usize,
                SLUB_RED_ACTIVE,
            );
        }
        if dbg.contains(DebugFlags::STORE_USER) {
            self.seq += 1;
            let id = self.sites.intern(site);
            let t = phys + l.track_off as u64;
            mem.write_u64(t, id as u64);
            mem.write_u64(t + 8, self.seq);
        }
        let content = if l.rz_len != 0 { req } else { l.obj_size } as usize;
        if gfp.contains(Gfp::ZERO) {
            mem.fill(phys, content, 0);
        } else if dbg.contains(DebugFlags::POISON) && !ctor {
            mem.fill(phys, content, POISON_INUSE);
        }
    }

    /// Free of a located live object of a debug cache: checks the state word, red
    /// zones and padding, then writes the free image (state, poison, inactive red
    /// zone) and the free track.
    pub(super) fn debug_free_slot<M: PhysMem>(
        &mut self,
        mem: &mut M,
        loc: Loc,
        site: &'static Location<'static>,
    ) {
        let ix = loc.ix;
        let l = self.caches[ix as usize].lay;
        let phys = loc.phys;
        if mem.read_u64(phys + l.state_off as u64) != phys ^ ALLOC_MAGIC {
            let f = Finding {
                kind: SlabErrorKind::FreePointerCorrupt,
                slot_phys: phys,
                offset: l.state_off,
                expected: 0,
                found: 0,
            };
            self.report(mem, ix, f);
        }
        self.debug_check_slot(mem, ix, phys, false);
        self.debug_make_free(mem, ix, phys);
        if self.caches[ix as usize]
            .debug
            .contains(DebugFlags::STORE_USER)
        {
            self.seq += 1;
            let id = self.sites.intern(site);
            let t = phys + l.track_off as u64 + 16;
            mem.write_u64(t, id as u64);
            mem.write_u64(t + 8, self.seq);
        }
    }

    /// Checks every object slot of the debug slab at `base` against the liveness
    /// bitmap: state word ("free pointer"), red zones, poison, padding. Reports and
    /// repairs every finding (the bitmap wins).
    pub(super) fn debug_scan_slab<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &P,
        ix: u8,
        base: u64,
    ) {
        let l = self.caches[ix as usize].lay;
        for i in 0..l.objs {
            let p = base + i as u64 * l.stride as u64;
            let free = !is_live(pages, p);
            let want = p ^ if free { FREE_MAGIC } else { ALLOC_MAGIC };
            if mem.read_u64(p + l.state_off as u64) != want {
                let f = Finding {
                    kind: SlabErrorKind::FreePointerCorrupt,
                    slot_phys: p,
                    offset: l.state_off,
                    expected: 0,
                    found: 0,
                };
                self.report(mem, ix, f);
                mem.write_u64(p + l.state_off as u64, want);
            }
            self.debug_check_slot(mem, ix, p, free);
        }
    }

    /// Checks every object of a cache like Linux `validate_slab_cache`: the state
    /// words, red zones, poison and padding of every object (debug caches), and the
    /// available count of every partial slab against its free slots (all caches;
    /// a mismatch is reported as a corrupt free pointer at the slab start). Every
    /// finding is reported and repaired. Returns the number of errors found.
    pub fn validate<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        cache: CacheId,
    ) -> Result<u64, MmError> {
        let ix = self.check_id(cache)?;
        self.validate_ix(mem, pages, ix)
    }

    /// [`validate`](Self::validate) for every cache; returns the total found.
    pub fn validate_all<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
    ) -> Result<u64, MmError> {
        let mut n = 0;
        for ix in 1..TABLE {
            if self.caches[ix].kind != super::KIND_NONE {
                n += self.validate_ix(mem, pages, ix as u8)?;
            }
        }
        Ok(n)
    }

    pub(super) fn validate_ix<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        ix: u8,
    ) -> Result<u64, MmError> {
        let c = &self.caches[ix as usize];
        let before = c.errors;
        let debug = c.mode == MODE_DEBUG;
        let off = mem.direct_offset();
        // The available count is rebuilt from the partial slabs' counts.
        let mut avail = 0u64;
        for full in [false, true] {
            let c = &self.caches[ix as usize];
            let mut head = if full { c.full.head } else { c.partial.head };
            while head != NIL {
                let p = page_mut(pages, head)?;
                let (next, count) = (p.next, p.count);
                let base = Pfn(head).phys();
                if debug {
                    self.debug_scan_slab(mem, pages, ix, base);
                }
                // Free slots not in the magazine must be the available ones.
                let c = &self.caches[ix as usize];
                let end = base + c.mask + 1;
                let in_mag = c.mag[..c.n]
                    .iter()
                    .filter(|&&v| (base..end).contains(&v.wrapping_sub(off)))
                    .count() as u32;
                let mut free = 0u32;
                self.scan_free(pages, ix, head, u32::MAX, |_| free += 1);
                let want = free.saturating_sub(in_mag);
                if !full && want != count && want != 0 {
                    let f = Finding {
                        kind: SlabErrorKind::FreePointerCorrupt,
                        slot_phys: base,
                        offset: 0,
                        expected: 0,
                        found: 0,
                    };
                    self.report(mem, ix, f);
                    page_mut(pages, head)?.count = want;
                }
                if !full {
                    avail += page_mut(pages, head)?.count as u64;
                }
                head = next;
            }
        }
        self.caches[ix as usize].avail = avail;
        Ok(self.caches[ix as usize].errors - before)
    }
}

/// What [`Slab::slub_debug`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SlubDebugOutcome {
    /// Caches whose options changed.
    pub changed: u32,
    /// Caches left unchanged because they have live objects.
    pub busy: u32,
}

/// Splits a `slub_debug` parameter into its blocks: `(flags, cache list)`. Accepts
/// `slub_debug`, `slub_debug=...` or the bare value. Errors on unknown letters.
pub(super) fn parse_blocks(
    param: &str,
) -> Result<impl Iterator<Item = (DebugFlags, &str)> + '_, MmError> {
    let p = param.trim();
    let value = match p.strip_prefix("slub_debug") {
        Some("") => "",
        Some(rest) => match rest.strip_prefix('=') {
            Some(v) => v,
            None => return Err(MmError::Invalid("expected slub_debug=<options>")),
        },
        None => p,
    };
    fn parse(block: &str) -> Option<(DebugFlags, &str)> {
        let (letters, list) = match block.find(',') {
            Some(i) => (&block[..i], &block[i + 1..]),
            None => (block, ""),
        };
        // Linux: no letters (`slub_debug` or `slub_debug=,cache`) means all options.
        let f = if letters.is_empty() {
            DebugFlags::ALL
        } else {
            DebugFlags::parse_letters(letters)?
        };
        Some((f, list))
    }
    // Validate everything first so that applying is all or nothing.
    let blocks = || {
        value
            .split(';')
            .filter(|b| !b.is_empty() || value.is_empty())
    };
    if blocks().any(|b| parse(b).is_none()) {
        return Err(MmError::Invalid("unknown slub_debug option letter"));
    }
    Ok(blocks().filter_map(parse))
}

/// True if cache `name` matches a `slub_debug` cache-list entry (exact, or a prefix
/// ending in `*`).
pub(super) fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The `slub_debug` parameter of a kernel command line, if any (`slub_debug` alone
/// gives `""`-valued `"slub_debug"`).
pub fn cmdline_slub_debug(cmdline: &str) -> Option<&str> {
    cmdline
        .split_ascii_whitespace()
        .find(|w| *w == "slub_debug" || w.starts_with("slub_debug="))
}

impl fmt::Display for CacheName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
