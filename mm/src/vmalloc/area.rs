//! The area allocator behind vmalloc and ioremap: hands out page-aligned ranges
//! of one fixed virtual region, each followed by an unmapped guard page, in
//! O(log n) of the number of live areas and free ranges.
//!
//! Three ordered indexes:
//! - `free`: free ranges by end (`end -> start`), so a freed area finds its
//!   neighbours with one exact and one successor lookup and merges with them, and
//!   an allocation that cuts the front off a range updates its entry in place;
//! - `by_size`: the same ranges as `(len, start)`, so allocation takes the
//!   smallest range that fits (best fit, lowest address among equals) with one
//!   range query;
//! - `live`: live areas by start, so any address finds the area at or below it
//!   with one predecessor query (that is how misuse is diagnosed).
//!
//! Invariants ([`AreaAlloc::check`]): live areas (each with its guard page) and
//! free ranges tile the region exactly; free ranges are never adjacent (they are
//! always coalesced); `by_size` holds exactly the ranges of `free`.
//!
//! The indexes are `BTreeMap`s, whose node allocations cannot fail gracefully on
//! stable Rust: heap exhaustion there is the kernel heap's to handle (it draws on
//! the reserves), the callers allocate their own per-area data fallibly.

use alloc::collections::{BTreeMap, BTreeSet};

use super::{AreaKind, VmError};
use crate::layout::Region;
use crate::PAGE_SIZE;

const PAGE: u64 = PAGE_SIZE as u64;

/// A live area: its usable size (the guard page not included) and its owner's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live<T> {
    /// Usable bytes, a multiple of the page size (the guard page follows).
    pub size: u64,
    /// What the owner keeps with the area.
    pub data: T,
}

/// The allocator of one region (vmalloc or ioremap).
#[derive(Clone, Debug)]
pub struct AreaAlloc<T> {
    kind: AreaKind,
    start: u64,
    end: u64,
    /// Free ranges: end -> start.
    free: BTreeMap<u64, u64>,
    /// Free ranges: (len, start).
    by_size: BTreeSet<(u64, u64)>,
    live: BTreeMap<u64, Live<T>>,
}

impl<T> AreaAlloc<T> {
    /// An allocator over `region`, all of it free. Panics unless the region is
    /// page aligned, at least two pages and below 2^64 (a fixed layout constant).
    /// `kind` names the areas in errors.
    pub fn new(kind: AreaKind, region: Region) -> AreaAlloc<T> {
        assert!(
            region.start.is_multiple_of(PAGE)
                && region.size.is_multiple_of(PAGE)
                && region.size >= 2 * PAGE
        );
        let end = region
            .start
            .checked_add(region.size)
            .expect("region below 2^64");
        let mut a = AreaAlloc {
            kind,
            start: region.start,
            end,
            free: BTreeMap::new(),
            by_size: BTreeSet::new(),
            live: BTreeMap::new(),
        };
        a.insert_free(region.start, region.size);
        a
    }

    /// The kind of areas this allocator hands out.
    pub fn kind(&self) -> AreaKind {
        self.kind
    }

    /// Whether `addr` lies in this allocator's region.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end
    }

    /// The region `[start, end)`.
    pub fn bounds(&self) -> (u64, u64) {
        (self.start, self.end)
    }

    fn insert_free(&mut self, start: u64, len: u64) {
        self.free.insert(start + len, start);
        self.by_size.insert((len, start));
    }

    /// Allocates an area of `pages` usable pages plus a guard page; returns its start.
    /// Errors: `BadSize` for 0 pages, `NoSpace` when no free range is large enough.
    pub fn alloc(&mut self, pages: u64, data: T) -> Result<u64, VmError> {
        let size = pages.checked_mul(PAGE).filter(|&s| s > 0);
        let need = size.and_then(|s| s.checked_add(PAGE));
        let (Some(size), Some(need)) = (size, need) else {
            return Err(VmError::BadSize {
                size: pages.saturating_mul(PAGE),
            });
        };
        let Some(&(len, start)) = self.by_size.range((need, 0)..).next() else {
            return Err(VmError::NoSpace {
                kind: self.kind,
                size,
            });
        };
        self.by_size.remove(&(len, start));
        let end = start + len;
        if len == need {
            self.free.remove(&end);
        } else if let Some(s) = self.free.get_mut(&end) {
            // Cut the front off: the range keeps its end, so its key.
            *s = start + need;
            self.by_size.insert((len - need, start + need));
        }
        self.live.insert(start, Live { size, data });
        Ok(start)
    }

    /// The live area containing `addr` (or whose guard page does): `Ok(start)` if
    /// `addr` is the start of a live area, else the error that describes `addr`:
    /// `NotAreaStart` (inside an area), `GuardPage`, `NotAllocated` (in the region
    /// but in no area: never allocated or freed already), `OutOfRange`.
    pub fn find(&self, addr: u64) -> Result<(u64, &Live<T>), VmError> {
        if !self.contains(addr) {
            return Err(VmError::OutOfRange {
                addr,
                kind: self.kind,
            });
        }
        match self.live.range(..=addr).next_back() {
            Some((&start, live)) if addr - start < live.size => Ok((start, live)),
            Some((&start, live)) if addr - start < live.size + PAGE => Err(VmError::GuardPage {
                addr,
                kind: self.kind,
                area: start,
            }),
            _ => Err(VmError::NotAllocated {
                addr,
                kind: self.kind,
            }),
        }
    }

    /// `find`, and an error `NotAreaStart` unless `addr` is the area's first byte.
    pub fn find_start(&self, addr: u64) -> Result<&Live<T>, VmError> {
        let (start, live) = self.find(addr)?;
        if start != addr {
            return Err(VmError::NotAreaStart {
                addr,
                kind: self.kind,
                area: start,
                offset: (addr - start) as i64,
            });
        }
        Ok(live)
    }

    /// The live area starting at `start`, if any.
    pub fn get(&self, start: u64) -> Option<&Live<T>> {
        self.live.get(&start)
    }

    /// The data of the live area starting at `start`, mutable.
    pub fn data_mut(&mut self, start: u64) -> Option<&mut T> {
        self.live.get_mut(&start).map(|l| &mut l.data)
    }

    /// Frees the live area starting at `addr` (its guard page too) and returns its
    /// data; the errors of [`find_start`](Self::find_start) otherwise, with nothing changed.
    pub fn free(&mut self, addr: u64) -> Result<T, VmError> {
        let Some(live) = self.live.remove(&addr) else {
            let kind = self.kind;
            return Err(self
                .find_start(addr)
                .err()
                .unwrap_or(VmError::NotAllocated { addr, kind }));
        };
        let mut start = addr;
        let end = addr + live.size + PAGE;
        // A free range ending where the area starts.
        if let Some(ps) = self.free.remove(&start) {
            self.by_size.remove(&(start - ps, ps));
            start = ps;
        }
        // A free range starting where the area (its guard page) ends: extend it
        // downwards in place (its end, the key, stays).
        match self.free.range_mut(end + 1..).next() {
            Some((&ne, ns)) if *ns == end => {
                self.by_size.remove(&(ne - end, end));
                *ns = start;
                self.by_size.insert((ne - start, start));
            }
            _ => self.insert_free(start, end - start),
        }
        if self.live.is_empty() {
            // Nothing live: start over with fresh trees, so that the heap
            // holds exactly what it held before the first allocation (a
            // B-tree keeps an emptied root node; `free all` must give
            // everything back).
            let region = Region {
                name: "",
                start: self.start,
                size: self.end - self.start,
            };
            *self = AreaAlloc::new(self.kind, region);
        }
        Ok(live.data)
    }

    /// Live areas in address order: `(start, area)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Live<T>)> + '_ {
        self.live.iter().map(|(&s, l)| (s, l))
    }

    /// Free ranges in address order: `(start, len)`.
    pub fn free_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.free.iter().map(|(&e, &s)| (s, e - s))
    }

    /// Number of live areas.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no area is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The largest free range in bytes (Linux's `VmallocChunk`); an area can use
    /// all of it but the guard page.
    pub fn largest_free(&self) -> u64 {
        self.by_size.last().map_or(0, |&(l, _)| l)
    }

    /// Verifies the invariants (see the module docs); the first violation found.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.by_size.len() != self.free.len() {
            return Err("by_size and free differ in length");
        }
        for (&e, &s) in &self.free {
            if e <= s || !self.by_size.contains(&(e - s, s)) {
                return Err("free range missing from by_size");
            }
        }
        // Merge-walk the two maps in address order: they must tile the region.
        let mut cursor = self.start;
        let mut last_free = false;
        let mut f = self.free.iter().map(|(&e, &s)| (s, e - s)).peekable();
        let mut a = self.live.iter().peekable();
        loop {
            let take_free = match (f.peek(), a.peek()) {
                (Some(&(s, _)), Some((&ls, _))) => s < ls,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_free {
                let (s, l) = f.next().expect("peeked");
                if s != cursor {
                    return Err("gap or overlap before a free range");
                }
                if last_free {
                    return Err("two adjacent free ranges (not coalesced)");
                }
                if l == 0 || l % PAGE != 0 {
                    return Err("free range of bad length");
                }
                cursor = s + l;
                last_free = true;
            } else {
                let (&s, live) = a.next().expect("peeked");
                if s != cursor {
                    return Err("gap or overlap before a live area");
                }
                if live.size == 0 || live.size % PAGE != 0 {
                    return Err("live area of bad size");
                }
                cursor = s + live.size + PAGE;
                last_free = false;
            }
        }
        if cursor != self.end {
            return Err("areas and free ranges do not end at the region's end");
        }
        Ok(())
    }
}
