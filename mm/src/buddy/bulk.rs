//! Batches in the buddy allocator: taking runs of pages from the free lists at once
//! (the cache refill and Linux's `alloc_pages_bulk`), returning sorted runs of
//! blocks at once (returning the cache lists), and [`Buddy::free_pages_bulk`],
//! which pushes onto the cache lists (`pool.rs`). A run of
//! contiguous blocks is freed as the few naturally aligned blocks that cover it, so
//! merging costs O(log n) per run instead of a buddy lookup and a list unlink per page.

use super::*;

/// A bulk free that stopped at a misuse: `done` entries were freed (in order),
/// entry `done` was rejected with `err`, later entries were not looked at.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BulkError {
    pub done: usize,
    pub err: MmError,
}

impl fmt::Display for BulkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {} (after {} freed): {}",
            self.done, self.done, self.err
        )
    }
}

impl Buddy<'_> {
    /// Takes up to `max` blocks of `order` as one contiguous run from the free lists of
    /// `zone` (the smallest free block that holds one; the part of it not taken goes
    /// back as free blocks, which cannot merge). Keeps `floor` frames on the free
    /// lists. Returns the run's first PFN and its block count; the frames are
    /// unchanged (a `Free` head then `Tail`s): the caller writes the heads.
    #[inline]
    pub(super) fn take_run(
        &mut self,
        zone: Zone,
        order: u32,
        max: usize,
        floor: u64,
    ) -> Option<(u32, usize)> {
        let zd = &mut self.zones[zone as usize];
        let room = (zd.free.saturating_sub(floor) >> order) as usize;
        let max = max.min(room);
        let avail = zd.avail >> order;
        if avail == 0 || max == 0 {
            return None;
        }
        let k = order + avail.trailing_zeros();
        let pfn = zd.head[k as usize];
        list_del(self.map, zd, pfn, k);
        let n = (1usize << (k - order)).min(max);
        let taken = (n as u32) << order;
        zd.free -= taken as u64;
        // Give back [pfn + taken, pfn + 2^k) as aligned blocks, smallest first.
        let end = pfn + (1 << k);
        let mut s = pfn + taken;
        while s < end {
            let o = s.trailing_zeros().min((end - s).ilog2());
            link_free_head(self.map, zd, s, o, false);
            s += 1 << o;
        }
        Some((pfn, n))
    }

    /// Returns the blocks `pfns` (heads of `order`, all in `zone`, their other frames
    /// `Tail`) to the free lists: sorts them, and frees each run of contiguous blocks
    /// as a range. `pfns` is reordered.
    pub(super) fn free_blocks_sorted(&mut self, zone: Zone, order: u32, pfns: &mut [u32]) {
        pfns.sort_unstable();
        let step = 1u32 << order;
        let tail = self.zones[zone as usize].tail_tmpl;
        let mut i = 0;
        while i < pfns.len() {
            let s = pfns[i];
            let mut e = s + step;
            self.map[s as usize] = tail;
            i += 1;
            while i < pfns.len() && pfns[i] == e {
                self.map[e as usize] = tail;
                e += step;
                i += 1;
            }
            self.free_range(zone, s, e);
        }
    }

    /// Linux `alloc_pages_bulk` (the array form): fills `out` with order-0 pages
    /// (each an allocated block of one page, reference count 1, freed by
    /// `__free_page` or [`free_pages_bulk`](Self::free_pages_bulk)) and returns how
    /// many it got, from the front of `out`; the rest of `out` is unchanged. Fewer
    /// than `out.len()` means memory ran out (or a watermark stood in the way).
    /// Pages come from the first zone's page cache list (`pool.rs`), then as runs from the free lists of the zones of `gfp.zonelist()`, with the
    /// watermark passes of `alloc_pages`.
    ///
    /// Errors (nothing allocated): `Invalid` with `__GFP_ZERO` (zeroing needs memory
    /// access); `OutOfMemory`/`BelowWatermark` when not even one page could be had
    /// (an empty `out` is `Ok(0)`). With `fail_page_alloc` armed, every page goes
    /// through the checked single-page path, so an injected failure ends the batch.
    pub fn alloc_pages_bulk(&mut self, gfp: Gfp, out: &mut [Pfn]) -> Result<usize, MmError> {
        if gfp.contains(Gfp::ZERO) {
            return Err(MmError::Invalid(
                "__GFP_ZERO needs memory access: use alloc_pages_mem",
            ));
        }
        if out.is_empty() {
            return Ok(0);
        }
        if self.fail.is_armed() {
            let mut got = 0;
            for slot in out.iter_mut() {
                match self.alloc_gfp(gfp, 0) {
                    Ok(p) => *slot = p,
                    Err(e) if got == 0 => return Err(e),
                    Err(_) => break,
                }
                got += 1;
            }
            return Ok(got);
        }
        let zonelist = gfp.zonelist();
        let mut got;
        // The first zone's cache list: its frames are above every watermark.
        {
            let zd = &mut self.zones[zonelist[0] as usize];
            let head = zd.alloc_tmpl[0];
            got = pool::pcp_pop_into(self.map, zd, 0, out, head, Pfn);
        }
        let passes = if gfp.contains(Gfp::MEMALLOC) { 3 } else { 2 };
        'passes: for pass in 0..passes {
            for &zone in zonelist {
                let floor = match pass {
                    0 => self.zones[zone as usize].wmark[Wmark::Low as usize],
                    1 => self.zones[zone as usize].wmark[Wmark::Min as usize],
                    _ => 0,
                };
                while got < out.len() {
                    let Some((pfn, n)) = self.take_run(zone, 0, out.len() - got, floor) else {
                        break;
                    };
                    let head = self.zones[zone as usize].alloc_tmpl[0];
                    self.map[pfn as usize..pfn as usize + n].fill(head);
                    for (slot, p) in out[got..got + n].iter_mut().zip(pfn..) {
                        *slot = Pfn(p);
                    }
                    got += n;
                }
                if got == out.len() {
                    break 'passes;
                }
            }
        }
        // The other zones' caches and the first zone's bigger cached blocks are left
        // alone: a short batch is a valid answer, as in Linux.
        if got == 0 {
            return Err(self.oom_error(zonelist, gfp, 0));
        }
        Ok(got)
    }

    /// Frees a batch of order-0 pages, as `__free_page` on each entry in order (one
    /// reference dropped; released when it was the last). A page that is exactly a
    /// fresh order-0 allocation (count 1, no flags) is pushed onto its zone's page
    /// cache list (`pool.rs`) while it has room; every other entry, and every entry while fault injection is
    /// armed, goes through `__free_page`'s own path. Every misuse `__free_page`
    /// reports is reported here: the first bad entry stops the batch with
    /// [`BulkError`] (the entries before it are freed, it and the ones after are
    /// untouched); a page listed twice is a double free.
    pub fn free_pages_bulk(&mut self, pages: &[Pfn]) -> Result<(), BulkError> {
        let armed = self.fail.is_armed();
        let mut i = 0;
        while i < pages.len() {
            if !armed {
                i = self.free_plain_run(pages, i);
                if i == pages.len() {
                    break;
                }
            }
            // Anything else, and a full list (returned to the free lists there).
            if let Err(err) = self.put(pages[i], Want::Order(0)) {
                return Err(BulkError { done: i, err });
            }
            i += 1;
        }
        Ok(())
    }

    /// Frees `pages[i..]` onto the cache list of the zone of `pages[i]` while each
    /// page is exactly that zone's fresh order-0 allocation (count 1, no flags: the
    /// template comparison also proves the page is in the zone) and the list has
    /// room. Returns the index of the first page it did not free.
    #[inline(always)]
    fn free_plain_run(&mut self, pages: &[Pfn], mut i: usize) -> usize {
        let first = pages[i].0;
        let z = (first >= DMA_END_PFN) as usize + (first >= self.lowmem) as usize;
        let map = &mut *self.map;
        let zd = &mut self.zones[z.min(2)];
        let t = zd.alloc_tmpl[0];
        let limit = zd.pcp_max[0];
        let (mut head, mut n) = (zd.pcp[0], zd.pcp_len[0]);
        let mut c = zd.cached_tmpl[0];
        while i < pages.len() && n < limit {
            let pfn = pages[i];
            match map.get_mut(pfn.index()) {
                Some(p) if p.same_as(&t) => {
                    c.next = head;
                    *p = c;
                }
                _ => break,
            }
            head = pfn.0;
            n += 1;
            i += 1;
        }
        zd.pcp[0] = head;
        zd.pcp_len[0] = n;
        i
    }
}
