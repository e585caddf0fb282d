//! `selftest slab`: Linux's SLUB KUnit tests (lib/slub_kunit.c) on temporary quiet
//! debug caches, plus memkern's misuse checks. Each scenario corrupts memory the way
//! the Linux test does, runs the validation (or the free) and counts the errors the
//! cache detected; then it frees its object and destroys its cache, so nothing leaks
//! and no other cache (nor the global report list) is disturbed.
//!
//! [`Slab::selftest_results`] uses no heap (the slab allocator backs the kernel heap,
//! so the kernel runs it under the slab lock); [`Slab::selftest`] returns the same as
//! a `Vec`.

use alloc::vec::Vec;
use core::panic::Location;

use super::{DebugFlags, Slab, SlabFlags, KIND_CACHE};
use crate::{MmError, PageProvider, PhysMem};

/// Names of the scenarios, in the order [`Slab::selftest`] runs them.
pub const SCENARIOS: [&str; 9] = [
    "clobber_redzone",
    "next_pointer",
    "first_word",
    "clobber_50th_byte",
    "clobber_redzone_free",
    "kmalloc_redzone_access",
    "double_free",
    "interior_free",
    "wrong_cache_free",
];

impl Slab {
    /// Runs every scenario of [`SCENARIOS`]; returns `(name, errors detected)`. A
    /// scenario whose setup fails (out of memory, name taken) reports 0 errors.
    pub fn selftest<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
    ) -> Vec<(&'static str, u64)> {
        self.selftest_results(mem, pages).to_vec()
    }

    /// [`selftest`](Self::selftest) without the heap: a fixed array.
    pub fn selftest_results<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
    ) -> [(&'static str, u64); SCENARIOS.len()] {
        SCENARIOS.map(|name| (name, self.scenario(mem, pages, name).unwrap_or(0)))
    }

    /// Runs one scenario by name; `NotFound` for an unknown name.
    pub fn selftest_one<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        name: &str,
    ) -> Result<u64, MmError> {
        self.scenario(mem, pages, name)
    }

    fn scenario<M: PhysMem, P: PageProvider>(
        &mut self,
        mem: &mut M,
        pages: &mut P,
        name: &str,
    ) -> Result<u64, MmError> {
        let (size, debug) = match name {
            "clobber_redzone" | "clobber_redzone_free" => (64, DebugFlags::RED_ZONE),
            "next_pointer" | "first_word" | "clobber_50th_byte" => (64, DebugFlags::POISON),
            "kmalloc_redzone_access" => (32, DebugFlags::RED_ZONE.union(DebugFlags::STORE_USER)),
            "double_free" | "interior_free" => (64, DebugFlags::SANITY),
            "wrong_cache_free" => (64, DebugFlags::SANITY),
            _ => return Err(MmError::NotFound),
        };
        let cname = match name {
            "clobber_redzone" => "slub_kunit_RZ_alloc",
            "clobber_redzone_free" => "slub_kunit_RZ_free",
            "next_pointer" => "slub_kunit_next_ptr_free",
            "first_word" => "slub_kunit_1th_word_free",
            "clobber_50th_byte" => "slub_kunit_50th_word_free",
            "kmalloc_redzone_access" => "slub_kunit_RZ_kmalloc",
            "double_free" => "slub_kunit_double_free",
            "interior_free" => "slub_kunit_interior_free",
            _ => "slub_kunit_wrong_cache",
        };
        let id = self.create_cache(cname, size, 0, SlabFlags::NONE, debug, None, KIND_CACHE)?;
        let ix = id.index;
        self.caches[ix as usize].quiet = true;
        let site = Location::caller();
        let mut misuse = 0;
        let mut live = Live::new();
        let res = (|| -> Result<(), MmError> {
            let req = if name == "kmalloc_redzone_access" {
                18
            } else {
                size as u32
            };
            let p = self.alloc_ix(mem, pages, ix, req, site)?;
            let phys = mem.phys_of(p).ok_or(MmError::NotFound)?;
            let state_off = self.caches[ix as usize].lay.state_off as u64;
            match name {
                "clobber_redzone" => {
                    mem.write(phys + 64, &[0x12]);
                    self.validate_ix(mem, pages, ix)?;
                    live.push(p);
                }
                "clobber_redzone_free" => {
                    self.kmem_cache_free(mem, pages, id, p)?;
                    mem.write(phys + 64, &[0xab]);
                    self.validate_ix(mem, pages, ix)?;
                }
                "next_pointer" => {
                    self.kmem_cache_free(mem, pages, id, p)?;
                    let mut b = [0u8; 1];
                    mem.read(phys + state_off, &mut b);
                    mem.write(phys + state_off, &[!b[0]]);
                    self.validate_ix(mem, pages, ix)?;
                    // Linux then restores the pointer: the repaired cache stays clean.
                    mem.write(phys + state_off, &b);
                    self.validate_ix(mem, pages, ix)?;
                }
                "first_word" => {
                    self.kmem_cache_free(mem, pages, id, p)?;
                    mem.write(phys, &[0x78]);
                    self.validate_ix(mem, pages, ix)?;
                }
                "clobber_50th_byte" => {
                    self.kmem_cache_free(mem, pages, id, p)?;
                    mem.write(phys + 50, &[0x9a]);
                    self.validate_ix(mem, pages, ix)?;
                }
                "kmalloc_redzone_access" => {
                    mem.write(phys + 18, &[0xab, 0xab]);
                    self.validate_ix(mem, pages, ix)?;
                    live.push(p);
                }
                "double_free" => {
                    self.kmem_cache_free(mem, pages, id, p)?;
                    if self.kmem_cache_free(mem, pages, id, p).is_err() {
                        misuse += 1;
                    }
                }
                "interior_free" => {
                    if self.kmem_cache_free(mem, pages, id, p + 8).is_err() {
                        misuse += 1;
                    }
                    live.push(p);
                }
                _ => {
                    // kfree of a cache object, then kmem_cache_free to a
                    // kmalloc cache: both refused (and reported by the cache).
                    if self.free_obj(mem, pages, p, 0, site).is_err() {
                        misuse += 1;
                    }
                    let km = self.kmalloc_cache(size, false)?;
                    if self.kmem_cache_free(mem, pages, km, p).is_err() {
                        misuse += 1;
                    }
                    live.push(p);
                }
            }
            Ok(())
        })();
        for &p in live.as_slice() {
            // Errors found while freeing count too (they are in the cache counter).
            let _ = self.kmem_cache_free(mem, pages, id, p);
        }
        let errors = self.caches[ix as usize].errors + misuse;
        let destroyed = self.kmem_cache_destroy(mem, pages, id);
        res?;
        destroyed?;
        Ok(errors)
    }
}

/// The objects a scenario still holds (at most one): a fixed array.
struct Live {
    a: [u64; 2],
    n: usize,
}

impl Live {
    fn new() -> Live {
        Live { a: [0; 2], n: 0 }
    }
    fn push(&mut self, v: u64) {
        if self.n < self.a.len() {
            self.a[self.n] = v;
            self.n += 1;
        }
    }
    fn as_slice(&self) -> &[u64] {
        &self.a[..self.n]
    }
}
