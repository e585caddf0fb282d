//! The handle table: every object a shell command creates is kept here as `#N`.
//!
//! Numbers count up from 1 and are never reused in one boot, so `#3` always means
//! the same object or an error saying it was freed. [`Object`] lists every kind of
//! object the kernel creates; its `Display` (kind word, then `key=value` fields) is
//! the one place that decides how an object is shown, and [`Object::release`] the
//! one place that decides which memory API function frees it.

use crate::api::{
    IoApi, IoError, KmallocObj, PageApi, PageBlock, PoolSource, SlabApi, VmApi, VmError, VmTarget,
};
use crate::api::{VmallocApi, VmallocError};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use mm::paging::{PageTableFlags, PhysFrame};
use mm::resource::{Name, ResKind, ResourceError};
use mm::slab::{DebugFlags, SlabFlags};
use mm::vmalloc::CacheMode;
use mm::{MmError, PageFlags, Pfn, Zone};

/// A handle number, shown as `#N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HandleId(pub u64);

impl fmt::Display for HandleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// An address shown as `0x` and 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr(pub u64);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

/// An optional address: `0x...` or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptAddr(pub Option<u64>);

impl fmt::Display for OptAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => Addr(a).fmt(f),
            None => f.write_str("none"),
        }
    }
}

/// Something a shell command created and `free` must release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// `kmalloc`/`kzalloc`: released with `kfree`.
    Kmalloc {
        virt: u64,
        phys: u64,
        size: u64,
        obj: u64,
    },
    /// DragonOS `alloc_pages(zone, n, flags)`: released with `free_pages(pfn, n)`.
    Pages {
        pfn: Pfn,
        n: u32,
        zone: Zone,
        flags: PageFlags,
        virt: Option<u64>,
    },
    /// Linux `alloc_pages(gfp, order)`/`alloc_page(gfp)`: released with
    /// `__free_pages(pfn, order)`.
    LinuxPages {
        pfn: Pfn,
        order: u32,
        zone: Zone,
        virt: Option<u64>,
    },
    /// Linux `__get_free_pages(gfp, order)`: released with `free_pages(virt, order)`;
    /// with `single` (`__get_free_page`, `get_zeroed_page`) with `free_page(virt)`.
    GfpAddr {
        virt: u64,
        pfn: Pfn,
        order: u32,
        zone: Zone,
        single: bool,
    },
    /// MOS `page_alloc()`: one page, released with `page_decref(pfn)`.
    MosPage {
        pfn: Pfn,
        zone: Zone,
        virt: Option<u64>,
    },
    /// A `kmem_cache`: released with `kmem_cache_destroy`. `size` is the object
    /// size asked for, `obj` the stride (object, metadata and alignment), `flags`
    /// and `debug` as at creation.
    Cache {
        name: String,
        size: u64,
        obj: u64,
        align: u64,
        flags: SlabFlags,
        debug: DebugFlags,
    },
    /// `kmem_cache_alloc`: released with `kmem_cache_free`. `size`: the object size.
    CacheObj {
        cache: String,
        size: u64,
        virt: u64,
        phys: u64,
    },
    /// A `mempool`: released with `mempool_destroy`. `size`: bytes of an element.
    Pool {
        name: String,
        min_nr: u64,
        source: PoolSource,
        size: u64,
    },
    /// `mempool_alloc`: released with `mempool_free`. `reserve`: it came from the
    /// pool's reserve, not from the backing allocator.
    PoolObj {
        pool: String,
        virt: u64,
        phys: u64,
        size: u64,
        reserve: bool,
    },
    /// `request_region` (ports, `kind` Io) or `request_mem_region` (physical
    /// addresses, `kind` Mem): released with `release_region` /
    /// `release_mem_region`. `size`: ports or bytes.
    Region {
        kind: ResKind,
        start: u64,
        size: u64,
        name: Name,
    },
    /// `map`: DragonOS `mm_map_phys_addr` of `[virt, virt + len)` to `phys` in
    /// `space`; released with `mm_unmap` (of what is still mapped there).
    Mapping {
        space: VmTarget,
        virt: u64,
        phys: u64,
        len: u64,
        flags: PageTableFlags,
        use4k: bool,
    },
    /// `aspace new`: a top-level table sharing the kernel half; released by
    /// destroying it (tables freed, references dropped).
    Aspace { root: PhysFrame },
    /// `insert`: MOS `page_insert` of frame `pfn` at `virt` in `space`;
    /// released with `page_remove` (if still mapped there).
    Inserted {
        space: VmTarget,
        virt: u64,
        pfn: Pfn,
        flags: PageTableFlags,
    },
    /// `vmalloc`/`vzalloc`: `size` bytes asked for, `pages` frames mapped at
    /// `virt`; released with `vfree(virt)`.
    Vmalloc { virt: u64, size: u64, pages: u64 },
    /// `ioremap`/`ioremap_wc` of `[phys, phys + size)` at `virt` (the address
    /// the call returned); released with `iounmap(virt)`.
    Ioremap {
        virt: u64,
        phys: u64,
        size: u64,
        cache: CacheMode,
    },
}

/// A copy of `s` made with fallible allocation (`None`: out of memory).
fn try_string(s: &str) -> Option<String> {
    let mut t = String::new();
    t.try_reserve_exact(s.len()).ok()?;
    t.push_str(s);
    Some(t)
}

impl Object {
    /// A copy whose names (the only heap memory in an `Object`) are allocated
    /// fallibly; `None` if memory ran out. [`Handles::insert`] stores this copy.
    pub fn try_clone(&self) -> Option<Object> {
        let mut o = self.clone_without_names();
        match (&mut o, self) {
            (Object::Cache { name, .. }, Object::Cache { name: src, .. })
            | (Object::Pool { name, .. }, Object::Pool { name: src, .. })
            | (Object::CacheObj { cache: name, .. }, Object::CacheObj { cache: src, .. })
            | (Object::PoolObj { pool: name, .. }, Object::PoolObj { pool: src, .. }) => {
                *name = try_string(src)?;
            }
            _ => {}
        }
        if let (
            Object::Pool {
                source: PoolSource::Cache(c),
                ..
            },
            Object::Pool {
                source: PoolSource::Cache(src),
                ..
            },
        ) = (&mut o, self)
        {
            *c = try_string(src)?;
        }
        Some(o)
    }

    /// A clone with every name left empty (no heap allocation).
    fn clone_without_names(&self) -> Object {
        match self {
            Object::Cache {
                size,
                obj,
                align,
                flags,
                debug,
                ..
            } => Object::Cache {
                name: String::new(),
                size: *size,
                obj: *obj,
                align: *align,
                flags: *flags,
                debug: *debug,
            },
            Object::CacheObj {
                size, virt, phys, ..
            } => Object::CacheObj {
                cache: String::new(),
                size: *size,
                virt: *virt,
                phys: *phys,
            },
            Object::Pool {
                min_nr,
                source,
                size,
                ..
            } => Object::Pool {
                name: String::new(),
                min_nr: *min_nr,
                source: match source {
                    PoolSource::Kmalloc { size } => PoolSource::Kmalloc { size: *size },
                    PoolSource::Cache(_) => PoolSource::Cache(String::new()),
                },
                size: *size,
            },
            Object::PoolObj {
                virt,
                phys,
                size,
                reserve,
                ..
            } => Object::PoolObj {
                pool: String::new(),
                virt: *virt,
                phys: *phys,
                size: *size,
                reserve: *reserve,
            },
            // No names: a plain clone allocates nothing.
            other => other.clone(),
        }
    }

    /// The kind word shown after the handle.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Kmalloc { .. } => "kmalloc",
            Object::Pages { .. } => "pages",
            Object::LinuxPages { .. } => "gfp_pages",
            Object::GfpAddr { .. } => "gfp_addr",
            Object::MosPage { .. } => "mos_page",
            Object::Cache { .. } => "cache",
            Object::CacheObj { .. } => "cache_obj",
            Object::Pool { .. } => "mempool",
            Object::PoolObj { .. } => "pool_obj",
            Object::Region { .. } => "region",
            Object::Mapping { .. } => "mapping",
            Object::Aspace { .. } => "aspace",
            Object::Inserted { .. } => "insert",
            Object::Vmalloc { .. } => "vmalloc",
            Object::Ioremap { .. } => "ioremap",
        }
    }

    /// The address `free ADDR` matches first: the virtual address. `None` for
    /// caches and pools.
    pub fn primary_addr(&self) -> Option<u64> {
        match *self {
            Object::Kmalloc { virt, .. }
            | Object::CacheObj { virt, .. }
            | Object::PoolObj { virt, .. }
            | Object::GfpAddr { virt, .. }
            | Object::Mapping { virt, .. }
            | Object::Inserted { virt, .. }
            | Object::Vmalloc { virt, .. }
            | Object::Ioremap { virt, .. } => Some(virt),
            Object::Aspace { .. } => None,
            Object::Pages { virt, .. }
            | Object::LinuxPages { virt, .. }
            | Object::MosPage { virt, .. } => virt,
            Object::Cache { .. } | Object::Pool { .. } | Object::Region { .. } => None,
        }
    }

    /// The physical address, where the object has one.
    pub fn phys(&self) -> Option<u64> {
        match *self {
            Object::Kmalloc { phys, .. }
            | Object::CacheObj { phys, .. }
            | Object::PoolObj { phys, .. } => Some(phys),
            Object::Pages { pfn, .. }
            | Object::LinuxPages { pfn, .. }
            | Object::GfpAddr { pfn, .. }
            | Object::MosPage { pfn, .. }
            | Object::Inserted { pfn, .. } => Some(pfn.phys()),
            Object::Mapping { phys, .. } | Object::Ioremap { phys, .. } => Some(phys),
            Object::Aspace { root } => Some(root.start_address().as_u64()),
            Object::Region {
                kind: ResKind::Mem,
                start,
                ..
            } => Some(start),
            _ => None,
        }
    }

    /// For a block from a page allocation API: its first frame and its number of
    /// pages. `None` for every other kind.
    pub fn page_block(&self) -> Option<(Pfn, u64)> {
        match *self {
            Object::Pages { pfn, n, .. } => Some((pfn, u64::from(n))),
            Object::LinuxPages { pfn, order, .. } | Object::GfpAddr { pfn, order, .. } => {
                Some((pfn, 1u64.checked_shl(order).unwrap_or(0)))
            }
            Object::MosPage { pfn, .. } => Some((pfn, 1)),
            _ => None,
        }
    }

    /// The memory the object owns that `dump`, `bzero` and `bcopy` may touch:
    /// `Some((virt, bytes))`, with `virt == None` when it has no kernel virtual
    /// address. `None` for kinds without memory of their own (caches, pools) or
    /// of unknown size.
    pub fn memory(&self) -> Option<(Option<u64>, u64)> {
        let page = mm::PAGE_SIZE as u64;
        match *self {
            Object::Kmalloc { virt, obj, .. } => Some((Some(virt), obj)),
            Object::CacheObj { virt, size, .. } | Object::PoolObj { virt, size, .. } => {
                Some((Some(virt), size))
            }
            Object::Pages { virt, .. }
            | Object::LinuxPages { virt, .. }
            | Object::MosPage { virt, .. } => {
                let (_, n) = self.page_block()?;
                Some((virt, n.checked_mul(page)?))
            }
            Object::GfpAddr { virt, .. } => {
                let (_, n) = self.page_block()?;
                Some((Some(virt), n.checked_mul(page)?))
            }
            // Reached through the mapping itself (the kernel's table only).
            Object::Mapping {
                space: VmTarget::Kernel,
                virt,
                len,
                ..
            } => Some((Some(virt), len.next_multiple_of(page))),
            Object::Inserted {
                space: VmTarget::Kernel,
                virt,
                ..
            } => Some((Some(virt), page)),
            Object::Vmalloc { virt, pages, .. } => Some((Some(virt), pages.checked_mul(page)?)),
            Object::Ioremap { virt, size, .. } => Some((Some(virt), size)),
            _ => None,
        }
    }

    /// Frees the object with the matching memory API function. Page blocks drop one
    /// reference; the `free` command refuses blocks with more than one (see
    /// [`Object::page_block`]) so that no handle disappears while its pages stay
    /// allocated.
    pub fn release<M: PageApi + SlabApi + IoApi + VmApi + VmallocApi + ?Sized>(
        &self,
        mm: &mut M,
    ) -> Result<(), MmError> {
        // A mapping whose range was unmapped already, or whose address space
        // was destroyed, has nothing left to release.
        let gone = |r: Result<(), VmError>| match r {
            Ok(())
            | Err(VmError::NoSuchSpace(_))
            | Err(VmError::Unmap(mm::paging::UnmapError::NotMapped { .. })) => Ok(()),
            Err(VmError::Mm(e)) => Err(e),
            Err(_) => Err(MmError::Invalid("the mapping could not be removed")),
        };
        let area = |r: Result<(), VmallocError>| match r {
            Ok(()) => Ok(()),
            Err(VmallocError::Mm(e)) => Err(e),
            Err(VmallocError::Area(_)) => Err(MmError::Invalid("the area could not be freed")),
        };
        match self {
            Object::Vmalloc { virt, .. } => area(mm.vfree(*virt)),
            Object::Ioremap { virt, .. } => area(mm.iounmap(*virt)),
            Object::Mapping {
                space, virt, len, ..
            } => gone(mm.mm_unmap(*space, *virt, *len).map(|_| ())),
            Object::Inserted { space, virt, .. } => gone(mm.page_remove(*space, *virt)),
            Object::Aspace { root } => match mm.aspace_destroy(*root) {
                Ok(_) => Ok(()),
                Err(VmError::Mm(e)) => Err(e),
                Err(_) => Err(MmError::Invalid("the address space could not be destroyed")),
            },
            Object::Kmalloc { virt, .. } => mm.kfree(*virt),
            Object::Pages { pfn, n, .. } => mm.free_pages(*pfn, *n),
            Object::LinuxPages { pfn, order, .. } => mm.free_pages_order(*pfn, *order),
            Object::GfpAddr {
                virt, single: true, ..
            } => mm.free_page(*virt),
            Object::GfpAddr {
                virt,
                order,
                single: false,
                ..
            } => mm.free_pages_addr(*virt, *order),
            Object::MosPage { pfn, .. } => mm.page_decref(*pfn).map(|_| ()),
            Object::Cache { name, .. } => mm.kmem_cache_destroy(name),
            Object::CacheObj { cache, virt, .. } => mm.kmem_cache_free(cache, *virt),
            Object::Pool { name, .. } => mm.mempool_destroy(name),
            Object::PoolObj { pool, virt, .. } => mm.mempool_free(pool, *virt),
            Object::Region {
                kind, start, size, ..
            } => mm
                .release_resource(*kind, *start, *size)
                .map_err(|e| match e {
                    IoError::Resource(ResourceError::NotFound { .. }) => {
                        MmError::Invalid("the region is no longer requested (see 'regions')")
                    }
                    IoError::Mm(e) => e,
                    _ => MmError::Invalid("the resource tree refused the release"),
                }),
        }
    }
}

impl fmt::Display for Object {
    /// `kind key=value ...`, e.g. `kmalloc size=80 obj=128 virt=0x... phys=0x...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())?;
        match self {
            Object::Kmalloc {
                virt,
                phys,
                size,
                obj,
            } => {
                write!(
                    f,
                    " size={size} obj={obj} virt={} phys={}",
                    Addr(*virt),
                    Addr(*phys)
                )
            }
            Object::Pages {
                pfn,
                n,
                zone,
                flags,
                virt,
            } => write!(
                f,
                " n={n} zone={zone} pfn={pfn} phys={} virt={} flags={flags}",
                Addr(pfn.phys()),
                OptAddr(*virt)
            ),
            Object::LinuxPages {
                pfn,
                order,
                zone,
                virt,
            } => write_order_block(f, *pfn, *order, *zone, *virt),
            Object::GfpAddr {
                virt,
                pfn,
                order,
                zone,
                ..
            } => write_order_block(f, *pfn, *order, *zone, Some(*virt)),
            Object::MosPage { pfn, zone, virt } => write!(
                f,
                " n=1 zone={zone} pfn={pfn} phys={} virt={}",
                Addr(pfn.phys()),
                OptAddr(*virt)
            ),
            Object::Cache {
                name,
                size,
                obj,
                align,
                flags,
                debug,
            } => write!(
                f,
                " cache={name} size={size} obj={obj} align={align} flags={} debug={debug}",
                SlabFlagNames(*flags)
            ),
            Object::CacheObj {
                cache,
                size,
                virt,
                phys,
            } => write!(
                f,
                " cache={cache} size={size} virt={} phys={}",
                Addr(*virt),
                Addr(*phys)
            ),
            Object::Pool {
                name,
                min_nr,
                source,
                size,
            } => {
                write!(f, " pool={name} min_nr={min_nr}")?;
                match source {
                    PoolSource::Kmalloc { .. } => write!(f, " backing=kmalloc size={size}"),
                    PoolSource::Cache(c) => write!(f, " backing=cache cache={c} size={size}"),
                }
            }
            Object::PoolObj {
                pool,
                virt,
                phys,
                size,
                reserve,
            } => write!(
                f,
                " pool={pool} virt={} phys={} size={size} from={}",
                Addr(*virt),
                Addr(*phys),
                if *reserve { "reserve" } else { "backing" }
            ),
            Object::Region {
                kind: ResKind::Io,
                start,
                size,
                name,
            } => write!(f, " io port={start:#06x} size={size} name={name}"),
            Object::Region {
                kind: ResKind::Mem,
                start,
                size,
                name,
            } => write!(f, " mem phys={} size={size} name={name}", Addr(*start)),
            Object::Mapping {
                space,
                virt,
                phys,
                len,
                flags,
                use4k,
            } => write!(
                f,
                " virt={} phys={} len={len:#x} flags={} pages={} space={space}",
                Addr(*virt),
                Addr(*phys),
                VmFlags(*flags),
                if *use4k { "4k" } else { "2m" }
            ),
            Object::Aspace { root } => {
                write!(f, " root={}", Addr(root.start_address().as_u64()))
            }
            Object::Vmalloc { virt, size, pages } => {
                write!(f, " size={size} virt={} pages={pages}", Addr(*virt))
            }
            Object::Ioremap {
                virt,
                phys,
                size,
                cache,
            } => write!(
                f,
                " size={size} phys={} virt={} cache={cache}",
                Addr(*phys),
                Addr(*virt)
            ),
            Object::Inserted {
                space,
                virt,
                pfn,
                flags,
            } => write!(
                f,
                " virt={} pfn={pfn} phys={} perm={} space={space}",
                Addr(*virt),
                Addr(pfn.phys()),
                VmFlags(*flags)
            ),
        }
    }
}

/// Page-table rights as the shell writes them: `r` or `rw`, then `x` unless
/// `NO_EXECUTE`, then ` user`, ` global`, ` wt`, ` uc` where set; the PAT
/// combinations `wt` alone (write-combining in memkern's PAT) and `wt uc`
/// (uncached) are shown as `wc` and `uc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmFlags(pub PageTableFlags);

impl fmt::Display for VmFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fl = self.0;
        f.write_str("r")?;
        if fl.contains(PageTableFlags::WRITABLE) {
            f.write_str("w")?;
        }
        if !fl.contains(PageTableFlags::NO_EXECUTE) {
            f.write_str("x")?;
        }
        if fl.contains(PageTableFlags::USER_ACCESSIBLE) {
            f.write_str(",user")?;
        }
        if fl.contains(PageTableFlags::GLOBAL) {
            f.write_str(",global")?;
        }
        match (
            fl.contains(PageTableFlags::WRITE_THROUGH),
            fl.contains(PageTableFlags::NO_CACHE),
        ) {
            (true, true) => f.write_str(",uc")?,
            (true, false) => f.write_str(",wc")?,
            (false, true) => f.write_str(",uc-")?,
            (false, false) => {}
        }
        Ok(())
    }
}

/// `kmem_cache_create` flags by their Linux names joined with `|` (debug flags
/// included), `-` for none, e.g. `SLAB_HWCACHE_ALIGN|SLAB_CACHE_DMA`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabFlagNames(pub SlabFlags);

/// Every `kmem_cache_create` flag the shell knows, with its Linux name.
pub const SLAB_FLAG_NAMES: [(SlabFlags, &str); 7] = [
    (SlabFlags::HWCACHE_ALIGN, "SLAB_HWCACHE_ALIGN"),
    (SlabFlags::CACHE_DMA, "SLAB_CACHE_DMA"),
    (SlabFlags::PANIC, "SLAB_PANIC"),
    (SlabFlags::CONSISTENCY_CHECKS, "SLAB_CONSISTENCY_CHECKS"),
    (SlabFlags::RED_ZONE, "SLAB_RED_ZONE"),
    (SlabFlags::POISON, "SLAB_POISON"),
    (SlabFlags::STORE_USER, "SLAB_STORE_USER"),
];

impl fmt::Display for SlabFlagNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut known = 0;
        for (flag, name) in SLAB_FLAG_NAMES {
            known |= flag.0;
            if self.0.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let rest = self.0 .0 & !known;
        if rest != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
            first = false;
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// ` order=O n=N zone=Z pfn=P phys=A virt=V` of a block of 2^order pages.
fn write_order_block(
    f: &mut fmt::Formatter<'_>,
    pfn: Pfn,
    order: u32,
    zone: Zone,
    virt: Option<u64>,
) -> fmt::Result {
    write!(f, " order={order}")?;
    if let Some(n) = 1u64.checked_shl(order) {
        write!(f, " n={n}")?;
    }
    write!(
        f,
        " zone={zone} pfn={pfn} phys={} virt={}",
        Addr(pfn.phys()),
        OptAddr(virt)
    )
}

impl From<KmallocObj> for Object {
    fn from(k: KmallocObj) -> Object {
        Object::Kmalloc {
            virt: k.virt,
            phys: k.phys,
            size: k.size,
            obj: k.obj,
        }
    }
}

impl From<PageBlock> for Object {
    fn from(p: PageBlock) -> Object {
        Object::Pages {
            pfn: p.pfn,
            n: p.n,
            zone: p.zone,
            flags: p.flags,
            virt: p.virt,
        }
    }
}

/// Why a handle or address does not name a live object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandleError {
    /// No handle with this number was ever given out.
    NoSuch(HandleId),
    /// The handle existed and was freed.
    Freed(HandleId),
    /// No live handle has this address.
    NoAddr(u64),
    /// Several live handles have this address.
    Ambiguous(u64, Vec<HandleId>),
    /// All 2^64 - 1 numbers have been used.
    Exhausted,
    /// The table could not grow above the watermarks (see [`Handles::insert`]).
    NoMemory,
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::NoSuch(id) => write!(f, "no handle {id} (see 'handles')"),
            HandleError::Freed(id) => write!(f, "handle {id} was already freed"),
            HandleError::NoAddr(a) => write!(f, "no live handle at {} (see 'handles')", Addr(*a)),
            HandleError::Ambiguous(a, ids) => {
                write!(f, "{} matches several handles (", Addr(*a))?;
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{id}")?;
                }
                f.write_str("); free by handle")
            }
            HandleError::Exhausted => f.write_str("out of handle numbers"),
            HandleError::NoMemory => {
                f.write_str("out of memory: no room for another handle (free some first)")
            }
        }
    }
}

/// Entries per chunk of the handle table: a chunk is one small heap block
/// (a few KiB), so the table never needs a large contiguous allocation.
const CHUNK: usize = 32;

/// The live handles and the next number to give out.
///
/// Handles live in chunks of up to [`CHUNK`] entries, sorted by number (numbers
/// only grow, so a new handle always goes at the end). The table grows by the
/// user's commands, so every byte of it is charged to the user (`mm::memalloc`):
/// chunks and the names inside objects are allocated fallibly above the
/// watermarks, and when the user has taken every page the watermarks allow,
/// [`insert`](Self::insert) fails with `NoMemory` instead of eating the kernel's
/// reserve. Emptied chunks are freed at once, so an empty table holds no memory.
#[derive(Clone, Debug)]
pub struct Handles {
    chunks: Vec<Vec<(u64, Object)>>,
    len: usize,
    next: u64,
}

impl Default for Handles {
    fn default() -> Handles {
        Handles::new()
    }
}

impl Handles {
    /// An empty table; the first handle will be `#1`.
    pub fn new() -> Handles {
        Handles {
            chunks: Vec::new(),
            len: 0,
            next: 1,
        }
    }

    /// Stores `obj` under a new number. The entry (and a copy of any name in it)
    /// is allocated charged to the user; on `NoMemory` nothing changed.
    pub fn insert(&mut self, obj: Object) -> Result<HandleId, HandleError> {
        let n = self.next;
        let next = n.checked_add(1).ok_or(HandleError::Exhausted)?;
        mm::memalloc::charged_to_user(|| self.push(n, &obj)).ok_or(HandleError::NoMemory)?;
        self.next = next;
        self.len += 1;
        Ok(HandleId(n))
    }

    /// Appends `(n, obj)` with fallible allocations only.
    fn push(&mut self, n: u64, obj: &Object) -> Option<()> {
        let obj = obj.try_clone()?;
        let room = self.chunks.last().is_some_and(|c| c.len() < c.capacity());
        if !room {
            let mut chunk = Vec::new();
            chunk.try_reserve_exact(CHUNK).ok()?;
            self.chunks.try_reserve(1).ok()?;
            self.chunks.push(chunk);
        }
        self.chunks.last_mut()?.push((n, obj));
        Some(())
    }

    /// Chunk and slot of handle number `n`, if it is live.
    fn locate(&self, n: u64) -> Option<(usize, usize)> {
        // The first chunk whose last number is >= n.
        let ci = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|&(m, _)| m < n));
        let chunk = self.chunks.get(ci)?;
        let si = chunk.binary_search_by_key(&n, |&(m, _)| m).ok()?;
        Some((ci, si))
    }

    /// The live handle with the largest number below `before`, for walking the
    /// table while it changes (`free all`) or while printing (`handles`) without a
    /// copy of it.
    pub fn last_before(&self, before: u64) -> Option<(HandleId, &Object)> {
        // Chunks whose first number is below `before`; the last of them holds it.
        let ci = self
            .chunks
            .partition_point(|c| c.first().is_some_and(|&(m, _)| m < before));
        let chunk = self.chunks.get(ci.checked_sub(1)?)?;
        let si = chunk.partition_point(|&(m, _)| m < before);
        let (m, o) = chunk.get(si.checked_sub(1)?)?;
        Some((HandleId(*m), o))
    }

    /// The live handle with the smallest number above `after`.
    pub fn first_after(&self, after: u64) -> Option<(HandleId, &Object)> {
        let ci = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|&(m, _)| m <= after));
        let chunk = self.chunks.get(ci)?;
        let si = chunk.partition_point(|&(m, _)| m <= after);
        let (m, o) = chunk.get(si)?;
        Some((HandleId(*m), o))
    }

    fn missing(&self, id: HandleId) -> HandleError {
        if id.0 >= 1 && id.0 < self.next {
            HandleError::Freed(id)
        } else {
            HandleError::NoSuch(id)
        }
    }

    /// The live object behind `id`.
    pub fn get(&self, id: HandleId) -> Result<&Object, HandleError> {
        match self.locate(id.0) {
            Some((ci, si)) => Ok(&self.chunks[ci][si].1),
            None => Err(self.missing(id)),
        }
    }

    /// Forgets `id` (after its object was released) and returns its object.
    pub fn remove(&mut self, id: HandleId) -> Result<Object, HandleError> {
        let Some((ci, si)) = self.locate(id.0) else {
            return Err(self.missing(id));
        };
        let (_, obj) = self.chunks[ci].remove(si);
        if self.chunks[ci].is_empty() {
            self.chunks.remove(ci);
        }
        if self.chunks.is_empty() {
            // Give the outer array back too: an empty table holds no heap memory.
            self.chunks = Vec::new();
        }
        self.len -= 1;
        Ok(obj)
    }

    /// The live handle whose object is at `addr`: a unique match on the virtual
    /// address (or region start) wins, else a unique match on the physical address.
    pub fn find_addr(&self, addr: u64) -> Result<HandleId, HandleError> {
        let by = |f: fn(&Object) -> Option<u64>| -> Vec<HandleId> {
            self.iter()
                .filter(|(_, o)| f(o) == Some(addr))
                .map(|(id, _)| id)
                .collect()
        };
        for ids in [by(Object::primary_addr), by(Object::phys)] {
            match ids.len() {
                0 => continue,
                1 => return Ok(ids[0]),
                _ => return Err(HandleError::Ambiguous(addr, ids)),
            }
        }
        Err(HandleError::NoAddr(addr))
    }

    /// Live handles, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (HandleId, &Object)> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .map(|(n, o)| (HandleId(*n), o))
    }

    /// Number of live handles.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no handle is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many handles were ever given out.
    pub fn issued(&self) -> u64 {
        self.next - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn km(virt: u64) -> Object {
        Object::Kmalloc {
            virt,
            phys: virt - mm::layout::DIRECT_MAP_BASE,
            size: 80,
            obj: 128,
        }
    }

    /// The chunked table against a model (a sorted list of numbers): inserts,
    /// removals in a scrambled order, lookups and both walks, across many chunks.
    #[test]
    fn chunked_table_matches_a_sorted_model() {
        let mut h = Handles::new();
        let mut model: Vec<u64> = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..2000u64 {
            if rnd(3) > 0 || model.is_empty() {
                let id = h.insert(km(0xffff_8000_0000_0000 + round * 64)).unwrap();
                model.push(id.0);
            } else {
                let i = rnd(model.len() as u64) as usize;
                let n = model.remove(i);
                assert!(matches!(h.remove(HandleId(n)), Ok(Object::Kmalloc { .. })));
                assert_eq!(h.remove(HandleId(n)), Err(HandleError::Freed(HandleId(n))));
            }
            assert_eq!(h.len(), model.len());
            let probe = rnd(h.issued() + 2);
            assert_eq!(h.get(HandleId(probe)).is_ok(), model.contains(&probe));
            let before = model.iter().rev().find(|&&m| m < probe).copied();
            assert_eq!(h.last_before(probe).map(|(id, _)| id.0), before);
            let after = model.iter().find(|&&m| m > probe).copied();
            assert_eq!(h.first_after(probe).map(|(id, _)| id.0), after);
        }
        assert_eq!(h.iter().map(|(id, _)| id.0).collect::<Vec<_>>(), model);
        assert!(h.chunks.len() > 10, "the walk crossed many chunks");
        // Emptied, the table holds no memory at all.
        for n in model {
            h.remove(HandleId(n)).unwrap();
        }
        assert!(h.is_empty());
        assert_eq!(h.chunks.capacity(), 0);
        assert_eq!(h.last_before(u64::MAX), None);
        assert_eq!(h.first_after(0), None);
    }

    #[test]
    fn try_clone_copies_every_name() {
        let objs = [
            Object::Cache {
                name: "inode".into(),
                size: 200,
                obj: 256,
                align: 8,
                flags: SlabFlags::default(),
                debug: DebugFlags::default(),
            },
            Object::CacheObj {
                cache: "inode".into(),
                size: 200,
                virt: 1,
                phys: 2,
            },
            Object::Pool {
                name: "p".into(),
                min_nr: 4,
                source: PoolSource::Cache("inode".into()),
                size: 200,
            },
            Object::PoolObj {
                pool: "p".into(),
                virt: 1,
                phys: 2,
                size: 200,
                reserve: true,
            },
            km(0xffff_8000_0000_1000),
        ];
        for o in objs {
            assert_eq!(o.try_clone(), Some(o.clone()));
        }
    }

    #[test]
    fn numbers_count_from_one_and_are_never_reused() {
        let mut h = Handles::new();
        let a = h.insert(km(0xffff_8000_0000_1000)).unwrap();
        let b = h.insert(km(0xffff_8000_0000_2000)).unwrap();
        assert_eq!((a, b), (HandleId(1), HandleId(2)));
        h.remove(b).unwrap();
        let c = h.insert(km(0xffff_8000_0000_3000)).unwrap();
        assert_eq!(c, HandleId(3));
        assert_eq!(h.get(b), Err(HandleError::Freed(b)));
        assert_eq!(h.remove(b), Err(HandleError::Freed(b)));
        assert_eq!(h.get(HandleId(9)), Err(HandleError::NoSuch(HandleId(9))));
        assert_eq!(h.len(), 2);
        assert_eq!(h.issued(), 3);
        assert_eq!(h.iter().map(|(id, _)| id.0).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn display_has_kind_and_fields() {
        assert_eq!(
            km(0xffff_8000_01e4_c080).to_string(),
            "kmalloc size=80 obj=128 virt=0xffff800001e4c080 phys=0x0000000001e4c080"
        );
        let p = Object::Pages {
            pfn: Pfn(0x1234),
            n: 4,
            zone: Zone::Unmapped,
            flags: PageFlags::KERNEL | PageFlags::SHARED,
            virt: None,
        };
        assert_eq!(
            p.to_string(),
            "pages n=4 zone=UNMAPPED pfn=0x1234 phys=0x0000000001234000 virt=none flags=KERNEL|SHARED"
        );
        let l = Object::LinuxPages {
            pfn: Pfn(16),
            order: 2,
            zone: Zone::Dma,
            virt: Some(0xffff_8000_0001_0000),
        };
        assert_eq!(
            l.to_string(),
            "gfp_pages order=2 n=4 zone=DMA pfn=0x10 phys=0x0000000000010000 virt=0xffff800000010000"
        );
        let g = Object::GfpAddr {
            virt: 0xffff_8000_0001_0000,
            pfn: Pfn(16),
            order: 1,
            zone: Zone::Dma,
            single: false,
        };
        assert_eq!(
            g.to_string(),
            "gfp_addr order=1 n=2 zone=DMA pfn=0x10 phys=0x0000000000010000 virt=0xffff800000010000"
        );
        let m = Object::MosPage {
            pfn: Pfn(0x1000),
            zone: Zone::Normal,
            virt: Some(0xffff_8000_0100_0000),
        };
        assert_eq!(
            m.to_string(),
            "mos_page n=1 zone=NORMAL pfn=0x1000 phys=0x0000000001000000 virt=0xffff800001000000"
        );
        let huge = Object::LinuxPages {
            pfn: Pfn(0),
            order: 99,
            zone: Zone::Dma,
            virt: None,
        };
        assert!(huge.to_string().starts_with("gfp_pages order=99 zone=DMA"));
        let all = [
            Object::Cache {
                name: "c".to_string(),
                size: 24,
                obj: 32,
                align: 8,
                flags: SlabFlags::NONE,
                debug: DebugFlags::NONE,
            },
            Object::CacheObj {
                cache: "c".to_string(),
                size: 24,
                virt: 1,
                phys: 2,
            },
            Object::Pool {
                name: "p".to_string(),
                min_nr: 4,
                source: PoolSource::Kmalloc { size: 80 },
                size: 80,
            },
            Object::Pool {
                name: "p".to_string(),
                min_nr: 4,
                source: PoolSource::Cache("c".to_string()),
                size: 24,
            },
            Object::PoolObj {
                pool: "p".to_string(),
                virt: 1,
                phys: 2,
                size: 80,
                reserve: true,
            },
        ];
        for o in all {
            let s = o.to_string();
            assert!(s.starts_with(o.kind()), "{s}");
            assert!(s.split(' ').skip(1).all(|kv| kv.contains('=')), "{s}");
        }
    }

    #[test]
    fn slab_kinds_show_their_fields_and_memory() {
        let cache = Object::Cache {
            name: "dev".to_string(),
            size: 100,
            obj: 128,
            align: 64,
            flags: SlabFlags::HWCACHE_ALIGN | SlabFlags::CACHE_DMA,
            debug: DebugFlags::ALL,
        };
        assert_eq!(
            cache.to_string(),
            "cache cache=dev size=100 obj=128 align=64 \
             flags=SLAB_HWCACHE_ALIGN|SLAB_CACHE_DMA debug=FZPU"
        );
        assert_eq!((cache.primary_addr(), cache.memory()), (None, None));
        let o = Object::CacheObj {
            cache: "dev".to_string(),
            size: 100,
            virt: 0xffff_8000_0008_0000,
            phys: 0x8_0000,
        };
        assert_eq!(
            o.to_string(),
            "cache_obj cache=dev size=100 virt=0xffff800000080000 phys=0x0000000000080000"
        );
        assert_eq!(o.memory(), Some((Some(0xffff_8000_0008_0000), 100)));
        let p = Object::Pool {
            name: "p".to_string(),
            min_nr: 2,
            source: PoolSource::Cache("dev".to_string()),
            size: 100,
        };
        assert_eq!(
            p.to_string(),
            "mempool pool=p min_nr=2 backing=cache cache=dev size=100"
        );
        let e = Object::PoolObj {
            pool: "p".to_string(),
            virt: 0xffff_8000_0008_0080,
            phys: 0x8_0080,
            size: 100,
            reserve: false,
        };
        assert_eq!(
            e.to_string(),
            "pool_obj pool=p virt=0xffff800000080080 phys=0x0000000000080080 size=100 \
             from=backing"
        );
        assert_eq!(e.phys(), Some(0x8_0080));
        assert_eq!(SlabFlagNames(SlabFlags::NONE).to_string(), "-");
        assert_eq!(
            SlabFlagNames(SlabFlags(0x2_0000) | SlabFlags::PANIC).to_string(),
            "SLAB_PANIC|0x20000"
        );
    }

    #[test]
    fn page_blocks_and_memory() {
        let pages = Object::Pages {
            pfn: Pfn(0x20),
            n: 3,
            zone: Zone::Unmapped,
            flags: PageFlags::EMPTY,
            virt: None,
        };
        assert_eq!(pages.page_block(), Some((Pfn(0x20), 3)));
        assert_eq!(pages.memory(), Some((None, 3 * 4096)));
        let g = Object::GfpAddr {
            virt: 0xffff_8000_0002_0000,
            pfn: Pfn(0x20),
            order: 2,
            zone: Zone::Normal,
            single: false,
        };
        assert_eq!(g.page_block(), Some((Pfn(0x20), 4)));
        assert_eq!(g.memory(), Some((Some(0xffff_8000_0002_0000), 4 * 4096)));
        assert_eq!(g.primary_addr(), Some(0xffff_8000_0002_0000));
        assert_eq!(g.phys(), Some(0x2_0000));
        let m = Object::MosPage {
            pfn: Pfn(7),
            zone: Zone::Dma,
            virt: Some(1),
        };
        assert_eq!(m.page_block(), Some((Pfn(7), 1)));
        assert_eq!(km(0xffff_8000_0000_1000).page_block(), None);
        assert_eq!(
            km(0xffff_8000_0000_1000).memory(),
            Some((Some(0xffff_8000_0000_1000), 128))
        );
        let pool = Object::Pool {
            name: "p".into(),
            min_nr: 1,
            source: PoolSource::Kmalloc { size: 64 },
            size: 64,
        };
        assert_eq!((pool.page_block(), pool.memory()), (None, None));
        let huge = Object::LinuxPages {
            pfn: Pfn(0),
            order: 99,
            zone: Zone::Dma,
            virt: None,
        };
        assert_eq!(huge.page_block(), Some((Pfn(0), 0)));
        assert_eq!(huge.memory(), Some((None, 0)));
    }

    #[test]
    fn find_by_address_prefers_virtual_and_reports_ambiguity() {
        let mut h = Handles::new();
        let page = h
            .insert(Object::Pages {
                pfn: Pfn(0x100),
                n: 1,
                zone: Zone::Normal,
                flags: PageFlags::EMPTY,
                virt: Some(0xffff_8000_0010_0000),
            })
            .unwrap();
        assert_eq!(h.find_addr(0xffff_8000_0010_0000), Ok(page));
        assert_eq!(h.find_addr(0x10_0000), Ok(page), "by physical address");
        // The same frame without a virtual address (as an UNMAPPED block shows).
        let map = h
            .insert(Object::LinuxPages {
                pfn: Pfn(0x100),
                order: 0,
                zone: Zone::Normal,
                virt: None,
            })
            .unwrap();
        assert_eq!(h.find_addr(0xffff_8000_0010_0000), Ok(page));
        assert_eq!(
            h.find_addr(0x10_0000),
            Err(HandleError::Ambiguous(0x10_0000, vec![page, map]))
        );
        assert_eq!(h.find_addr(7), Err(HandleError::NoAddr(7)));
        assert_eq!(
            HandleError::Ambiguous(0x10_0000, vec![page, map]).to_string(),
            "0x0000000000100000 matches several handles (#1, #2); free by handle"
        );
    }
}
