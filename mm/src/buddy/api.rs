//! The page APIs of the three documents over the core: DragonOS
//! (`alloc_pages(zone, n, flags)`), Linux (`alloc_pages(gfp, order)` and
//! friends), MOS (`page_alloc`, `page_decref`), and fault injection's controls.

use super::*;

impl Buddy<'_> {
    // ------------------------------------------------------------------
    // DragonOS API
    // ------------------------------------------------------------------

    /// DragonOS `alloc_pages(zone_select, num, flags)`: exactly `num` (1..=63)
    /// contiguous frames from `zone`, with the public `flags` stored on the head
    /// (reference count 1). The rest of the rounded-up power-of-two block goes back
    /// to the free lists at once.
    ///
    /// Errors (nothing changed): `BadCount` for `num` outside 1..=63, `Invalid` for
    /// unknown flag bits, `BadZone` if the zone has no memory, `OutOfMemory`.
    #[inline]
    pub fn alloc_pages_zone(
        &mut self,
        zone: Zone,
        num: u64,
        flags: PageFlags,
    ) -> Result<Pfn, MmError> {
        // Fast path: a valid power-of-two count of a cached order, unshared, from the
        // cache.
        if num.wrapping_sub(1) < MAX_PAGES_PER_ALLOC
            && num.is_power_of_two()
            && flags.0 & !PageFlags::ALL_BITS == 0
            && !flags.contains(PageFlags::SHARED)
        {
            let order = num.trailing_zeros();
            if order == 0 {
                if let Some(pfn) = self.take_cached(zone, 0, flags) {
                    return Ok(Pfn(pfn));
                }
            } else if order <= PCP_MAX_ORDER {
                if let Some(pfn) = self.take_cached(zone, order, flags) {
                    return Ok(Pfn(pfn));
                }
            }
        }
        self.alloc_pages_zone_slow(zone, num, flags)
    }

    #[inline(never)]
    pub(super) fn alloc_pages_zone_slow(
        &mut self,
        zone: Zone,
        num: u64,
        flags: PageFlags,
    ) -> Result<Pfn, MmError> {
        if num == 0 || num > MAX_PAGES_PER_ALLOC {
            return Err(MmError::BadCount {
                got: num,
                max: MAX_PAGES_PER_ALLOC,
            });
        }
        check_flags(flags)?;
        if self.zones[zone as usize].managed == 0 {
            return Err(MmError::BadZone);
        }
        let order = order_for(num);
        if self.fail.should_fail(1 << order) {
            return Err(MmError::OutOfMemory);
        }
        let (pfn, _) = self.alloc_zonelist(&[zone], Gfp::KERNEL, order)?;
        self.prep_alloc(pfn, zone, order, num as u32, flags);
        if num < 1 << order {
            self.free_range(zone, pfn + num as u32, pfn + (1 << order));
        }
        if flags.contains(PageFlags::SHARED) {
            self.shared += num;
        }
        Ok(Pfn(pfn))
    }

    /// DragonOS `free_pages(page, number)`: frees the block at `pfn` allocated with
    /// `num` pages (drops one reference; the frames are released when it was the last).
    ///
    /// Errors (nothing changed): `BadCount`; `NotRam` for a PFN outside RAM;
    /// `Reserved` for reserved RAM (kernel image...); `DoubleFree` for a free frame;
    /// `NotBlockHead` for a frame inside an allocated block; `SlabPage` for a slab
    /// frame; `WrongSize { expected: allocated count, got: num }`.
    #[inline]
    pub fn free_pages_count(&mut self, pfn: Pfn, num: u64) -> Result<(), MmError> {
        if num == 0 || num > MAX_PAGES_PER_ALLOC {
            return Err(MmError::BadCount {
                got: num,
                max: MAX_PAGES_PER_ALLOC,
            });
        }
        self.put(pfn, Want::Count(num as u32)).map(|_| ())
    }

    // ------------------------------------------------------------------
    // Linux API
    // ------------------------------------------------------------------

    /// Linux `alloc_pages(gfp_mask, order)`: 2^`order` frames, naturally aligned, from
    /// the first zone of `gfp.zonelist()` that has a block (reference count 1).
    ///
    /// Errors: `BadOrder`, `OutOfMemory`, `Invalid` with `__GFP_ZERO` (zeroing needs
    /// memory access: use [`alloc_pages_mem`](Self::alloc_pages_mem)).
    #[inline]
    pub fn alloc_pages(&mut self, gfp: Gfp, order: u32) -> Result<Pfn, MmError> {
        if order > MAX_ORDER {
            return Err(MmError::BadOrder(order));
        }
        if gfp.contains(Gfp::ZERO) {
            return Err(MmError::Invalid(
                "__GFP_ZERO needs memory access: use alloc_pages_mem",
            ));
        }
        self.alloc_gfp(gfp, order)
    }

    /// Linux `alloc_page(gfp_mask)` = `alloc_pages(gfp_mask, 0)`.
    #[inline]
    pub fn alloc_page(&mut self, gfp: Gfp) -> Result<Pfn, MmError> {
        self.alloc_pages(gfp, 0)
    }

    /// `alloc_pages` that honours `__GFP_ZERO` (zeroes through `mem.fill`, for any zone).
    pub fn alloc_pages_mem(
        &mut self,
        gfp: Gfp,
        order: u32,
        mem: &mut impl PhysMem,
    ) -> Result<Pfn, MmError> {
        if order > MAX_ORDER {
            return Err(MmError::BadOrder(order));
        }
        let pfn = self.alloc_gfp(gfp, order)?;
        if gfp.contains(Gfp::ZERO) {
            mem.fill(pfn.phys(), PAGE_SIZE << order, 0);
        }
        Ok(pfn)
    }

    /// Linux `__free_pages(page, order)`: drops one reference of the block at `pfn`
    /// and frees it when it was the last.
    ///
    /// Errors (nothing changed): `BadOrder`, `NotRam`, `Reserved`, `DoubleFree`,
    /// `NotBlockHead`, `SlabPage`, and `WrongSize` if the block was allocated with
    /// another size: `expected`/`got` are orders, or page counts if the block was
    /// allocated by the DragonOS API with a count that is not a power of two.
    #[inline]
    pub fn __free_pages(&mut self, pfn: Pfn, order: u32) -> Result<(), MmError> {
        if order > MAX_ORDER {
            return Err(MmError::BadOrder(order));
        }
        self.put(pfn, Want::Order(order)).map(|_| ())
    }

    /// Linux `__free_page(page)` = `__free_pages(page, 0)`.
    #[inline]
    pub fn __free_page(&mut self, pfn: Pfn) -> Result<(), MmError> {
        self.__free_pages(pfn, 0)
    }

    /// Linux `get_page(page)`: takes one more reference on the allocated block at
    /// `pfn`; returns the new count. Errors: `Invalid` for a free page, and the page
    /// classification errors of [`__free_pages`](Self::__free_pages).
    pub fn get_page(&mut self, pfn: Pfn) -> Result<u32, MmError> {
        let p = match self.map.get(pfn.index()) {
            Some(p) if p.state() == PageState::Allocated => *p,
            _ => return Err(self.not_allocated(pfn, MmError::Invalid("get_page on a free page"))),
        };
        if p.count == u32::MAX {
            return Err(MmError::Invalid("page reference count overflow"));
        }
        self.shared -= Self::shared_of(&p);
        let q = &mut self.map[pfn.index()];
        q.count += 1;
        let c = q.count;
        self.shared += Self::shared_of(q);
        Ok(c)
    }

    /// Linux `put_page(page)`: drops one reference; `Ok(true)` if that freed the block.
    #[inline]
    pub fn put_page(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        self.put(pfn, Want::Any)
    }

    /// Linux `page_count(page)`: the reference count of an allocated head, 0 for a
    /// free page. Errors: `NotRam`, `Reserved`, `NotBlockHead`, `SlabPage`.
    pub fn page_count(&self, pfn: Pfn) -> Result<u32, MmError> {
        match self.map.get(pfn.index()) {
            Some(p) if p.state() == PageState::Allocated => Ok(p.count),
            _ => match self.not_allocated(pfn, MmError::DoubleFree(pfn)) {
                MmError::DoubleFree(_) => Ok(0),
                e => Err(e),
            },
        }
    }

    /// Linux `page_address(page)`: the kernel virtual address of `pfn` in the direct
    /// map, `None` for ZONE_UNMAPPED, frames outside the mem_map, or addresses the
    /// direct map does not cover.
    pub fn page_address(&self, pfn: Pfn, mem: &impl PhysMem) -> Option<u64> {
        if pfn.index() >= self.map.len() || pfn.0 >= self.lowmem {
            return None;
        }
        mem.virt_of(pfn.phys())
    }

    /// Linux `__get_free_pages(gfp_mask, order)`: allocates 2^`order` frames from
    /// mapped memory (NORMAL, then DMA; only DMA with `GFP_DMA`; `__GFP_HIGHMEM` is
    /// ignored) and returns their virtual address; `__GFP_ZERO` zeroes them.
    ///
    /// Errors: `BadOrder`; `NoVirtualAddress(pfn)` if `__GFP_HIGHMEM` (without `GFP_DMA`)
    /// was asked and only ZONE_UNMAPPED has such a block (`pfn` is that block), or if the direct map does
    /// not cover the frames (then they are freed again); `OutOfMemory`.
    pub fn __get_free_pages(
        &mut self,
        gfp: Gfp,
        order: u32,
        mem: &mut impl PhysMem,
    ) -> Result<u64, MmError> {
        if order > MAX_ORDER {
            return Err(MmError::BadOrder(order));
        }
        let mapped = Gfp(gfp.0 & !Gfp::HIGHMEM.0);
        let pfn = match self.alloc_gfp(mapped, order) {
            Ok(p) => p,
            // (While fault injection is armed, out of memory stays out of memory.)
            Err(MmError::OutOfMemory)
                if gfp.zonelist().contains(&Zone::Unmapped) && !self.fail.is_armed() =>
            {
                return Err(match self.find_free(Zone::Unmapped, order) {
                    Some(p) => MmError::NoVirtualAddress(p),
                    None => MmError::OutOfMemory,
                });
            }
            Err(e) => return Err(e),
        };
        let Some(virt) = self.page_address(pfn, mem) else {
            let _ = self.put(pfn, Want::Any);
            return Err(MmError::NoVirtualAddress(pfn));
        };
        if gfp.contains(Gfp::ZERO) {
            mem.fill(pfn.phys(), PAGE_SIZE << order, 0);
        }
        Ok(virt)
    }

    /// Linux `__get_free_page(gfp_mask)` = `__get_free_pages(gfp_mask, 0)`.
    pub fn __get_free_page(&mut self, gfp: Gfp, mem: &mut impl PhysMem) -> Result<u64, MmError> {
        self.__get_free_pages(gfp, 0, mem)
    }

    /// Linux `get_zeroed_page(gfp_mask)`: one zeroed page, by virtual address.
    pub fn get_zeroed_page(&mut self, gfp: Gfp, mem: &mut impl PhysMem) -> Result<u64, MmError> {
        self.__get_free_pages(gfp | Gfp::ZERO, 0, mem)
    }

    /// Linux `free_pages(addr, order)`: `__free_pages` by direct-map virtual address.
    /// `addr == 0` does nothing (as in Linux). Errors: `BadOrder`, `NotRam(addr)` if
    /// `addr` is not in the direct map, `Misaligned(addr)` if it is not page aligned,
    /// then those of [`__free_pages`](Self::__free_pages).
    pub fn free_pages(&mut self, addr: u64, order: u32, mem: &impl PhysMem) -> Result<(), MmError> {
        if order > MAX_ORDER {
            return Err(MmError::BadOrder(order));
        }
        if addr == 0 {
            return Ok(());
        }
        let phys = mem.phys_of(addr).ok_or(MmError::NotRam(addr))?;
        if phys % PAGE_SIZE as u64 != 0 {
            return Err(MmError::Misaligned(addr));
        }
        self.__free_pages(Pfn::containing(phys), order)
    }

    /// Linux `free_page(addr)` = `free_pages(addr, 0)`.
    pub fn free_page(&mut self, addr: u64, mem: &impl PhysMem) -> Result<(), MmError> {
        self.free_pages(addr, 0, mem)
    }

    // ------------------------------------------------------------------
    // MOS API
    // ------------------------------------------------------------------

    /// MOS `page_alloc(&pp)`: one zeroed page from mapped memory (NORMAL, then DMA),
    /// reference count 1 (MOS starts at 0 and `page_insert` increments: the kernel's
    /// `page_insert` takes over this first reference). `OutOfMemory` is `-E_NO_MEM`.
    pub fn page_alloc(&mut self, mem: &mut impl PhysMem) -> Result<Pfn, MmError> {
        self.alloc_pages_mem(Gfp::KERNEL | Gfp::ZERO, 0, mem)
    }

    /// MOS `page_decref(pp)`: drops one reference, freeing at 0; `Ok(true)` if freed.
    #[inline]
    pub fn page_decref(&mut self, pfn: Pfn) -> Result<bool, MmError> {
        self.put(pfn, Want::Any)
    }

    // ------------------------------------------------------------------
    // Fault injection
    // ------------------------------------------------------------------

    /// Arms (`Some`) or disarms (`None`) `fail_page_alloc`. Arming drains the block
    /// caches, which then stay bypassed until disarmed (see the module
    /// documentation); re-arming restarts the running state.
    pub fn set_fail_page_alloc(&mut self, cfg: Option<FaultConfig>) {
        match cfg {
            Some(c) => {
                self.fail.arm(c);
                self.drain();
            }
            None => self.fail.disarm(),
        }
    }

    /// The `fail_page_alloc` attribute: configuration and counters.
    pub fn fail_page_alloc(&self) -> &FaultAttr {
        &self.fail
    }
}
