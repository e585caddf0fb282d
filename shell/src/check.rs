//! The invariant check: what the `check` command runs, and what check mode runs
//! after every command (`check on`, or `mm.check=1` on the kernel command line).
//!
//! Three parts, in this order; the first violation found is the result:
//! 1. the page allocator's own invariants ([`Diagnostics::buddy_check`](crate::api::Diagnostics::buddy_check), `Buddy::check`);
//! 2. slab validation of every cache ([`Diagnostics::slab_check`](crate::api::Diagnostics::slab_check)): any finding counts as
//!    a violation (the slab allocator also keeps it as a corruption report);
//! 3. the handle table against the allocators ([`check_handles`]): every live
//!    handle's object is still allocated the way the handle says.
//!
//! A violation is a bug in memkern (or a deliberate corruption such as writing
//! into a debug cache's red zone): check mode reports it at once as
//! `error: invariant violated after 'CMD': DETAIL`.

use crate::api::MemApi;
use crate::handles::{Handles, Object};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use mm::{MmError, PageState, Pfn};

/// What a successful check covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Slab caches validated.
    pub caches: u64,
    /// Live handles checked.
    pub handles: u64,
}

/// Runs every check; `Err(detail)` names the first violation in one line.
pub fn run<M: MemApi + ?Sized>(mm: &mut M, handles: &Handles) -> Result<Summary, String> {
    match mm.buddy_check() {
        Ok(None) => {}
        Ok(Some(e)) => return Err(format!("page allocator: {e}")),
        Err(e) => return Err(format!("page allocator check failed: {e}")),
    }
    let slab = mm
        .slab_check()
        .map_err(|e| format!("slab validation failed: {e}"))?;
    if let Some((name, n)) = slab.first_bad {
        return Err(format!(
            "slab cache {name}: validation found {n} error(s) ({} in all; see 'slub_debug reports')",
            slab.errors
        ));
    }
    let handles = check_handles(mm, handles)?;
    Ok(Summary {
        caches: slab.caches,
        handles,
    })
}

/// Checks every live handle against the allocators: page blocks are allocated
/// block heads with the handle's zone and page count (or order) and at least one
/// reference, and no two handles' blocks overlap; kmalloc, cache and mempool
/// objects are live objects that start at the handle's address, in the right
/// kind of cache; caches and mempools exist. Returns the handles checked.
pub fn check_handles<M: MemApi + ?Sized>(mm: &M, handles: &Handles) -> Result<u64, String> {
    let mut blocks: Vec<(Pfn, u64, u64)> = Vec::new();
    let mut n = 0;
    for (id, obj) in handles.iter() {
        n += 1;
        let bad = |what: String| format!("handle {id} ({}): {what}", obj.kind());
        let mm_err = |what: &str, e: MmError| bad(format!("{what}: {e}"));
        match obj {
            Object::Pages { .. }
            | Object::LinuxPages { .. }
            | Object::GfpAddr { .. }
            | Object::MosPage { .. } => {
                let (pfn, pages) = obj.page_block().unwrap_or((Pfn(0), 0));
                let info = mm.page_info(pfn).map_err(|e| mm_err("page_info", e))?;
                if info.state != PageState::Allocated {
                    return Err(bad(format!(
                        "pfn={pfn} is {:?}, not an allocated block head",
                        info.state
                    )));
                }
                if u64::from(info.n) != pages {
                    return Err(bad(format!(
                        "block at pfn={pfn} has {} pages, the handle says {pages}",
                        info.n
                    )));
                }
                let zone = match *obj {
                    Object::Pages { zone, .. }
                    | Object::LinuxPages { zone, .. }
                    | Object::GfpAddr { zone, .. }
                    | Object::MosPage { zone, .. } => zone,
                    _ => info.zone,
                };
                if info.zone != zone {
                    return Err(bad(format!(
                        "pfn={pfn} is in zone {}, the handle says {zone}",
                        info.zone
                    )));
                }
                if info.refcount == 0 {
                    return Err(bad(format!("block at pfn={pfn} has no reference")));
                }
                blocks.push((pfn, pages, id.0));
            }
            Object::Kmalloc {
                virt, obj: size, ..
            } => {
                let info = mm
                    .slab_object_info(*virt)
                    .map_err(|e| mm_err("slab_object_info", e))?;
                let name = info.name.as_str();
                if !(name.starts_with("kmalloc-") || name.starts_with("dma-kmalloc-")) {
                    return Err(bad(format!(
                        "object is in cache {name}, not a kmalloc cache"
                    )));
                }
                live_object(&info, *virt).map_err(&bad)?;
                if u64::from(info.obj_size) != *size {
                    return Err(bad(format!(
                        "object size is {}, the handle says obj={size}",
                        info.obj_size
                    )));
                }
            }
            Object::CacheObj { cache, virt, .. } => {
                let info = mm
                    .slab_object_info(*virt)
                    .map_err(|e| mm_err("slab_object_info", e))?;
                if info.name.as_str() != cache {
                    return Err(bad(format!("object is in cache {}", info.name)));
                }
                live_object(&info, *virt).map_err(&bad)?;
            }
            Object::PoolObj { pool, virt, .. } => {
                mm.mempool_info(pool)
                    .map_err(|e| mm_err("its mempool", e))?;
                let info = mm
                    .slab_object_info(*virt)
                    .map_err(|e| mm_err("slab_object_info", e))?;
                live_object(&info, *virt).map_err(&bad)?;
            }
            Object::Region {
                kind,
                start,
                size,
                name,
            } => {
                let end = start.saturating_add(size.saturating_sub(1));
                let mut i = 0;
                loop {
                    match mm.resource_row(*kind, i) {
                        Ok(Some(r)) if r.span.start == *start && r.span.end == end => {
                            if r.span.name != *name {
                                return Err(bad(format!("the region is named {}", r.span.name)));
                            }
                            break;
                        }
                        Ok(Some(_)) => i += 1,
                        Ok(None) => return Err(bad("the region is not in the tree".into())),
                        Err(e) => return Err(bad(format!("resource_row: {e}"))),
                    }
                }
            }
            Object::Cache { name, .. } => {
                mm.kmem_cache_info(name)
                    .map_err(|e| mm_err("kmem_cache_info", e))?;
            }
            Object::Pool { name, .. } => {
                mm.mempool_info(name)
                    .map_err(|e| mm_err("mempool_info", e))?;
            }
            Object::Aspace { root } => {
                mm.vm_walk(crate::api::VmTarget::Aspace(*root), 0)
                    .map_err(|e| bad(format!("its address space: {e}")))?;
            }
            // Mappings may have been unmapped in part or whole by `unmap` or
            // `remove` (the handle then releases what is left).
            Object::Mapping { .. } | Object::Inserted { .. } => {}
            // A live area that starts at the handle's address.
            Object::Vmalloc { virt, .. } | Object::Ioremap { virt, .. } => {
                let mut i = 0;
                loop {
                    match mm.vm_area_at(i) {
                        Ok(Some(a)) if a.addr == *virt => {
                            if let Object::Vmalloc { pages, .. } = obj {
                                if a.pages != *pages {
                                    return Err(bad(format!("the area has {} pages", a.pages)));
                                }
                            }
                            break;
                        }
                        Ok(Some(_)) => i += 1,
                        Ok(None) => return Err(bad("no live area starts there".into())),
                        Err(e) => return Err(bad(format!("vm_area_at: {e}"))),
                    }
                }
            }
        }
    }
    blocks.sort_unstable();
    for w in blocks.windows(2) {
        let ((a, an, aid), (b, _, bid)) = (w[0], w[1]);
        if u64::from(a.0) + an > u64::from(b.0) {
            return Err(format!(
                "handles #{aid} and #{bid}: page blocks at pfn={a} and pfn={b} overlap"
            ));
        }
    }
    Ok(n)
}

/// The object `info` describes starts at `virt` and is allocated.
fn live_object(info: &mm::slab::ObjectInfo, virt: u64) -> Result<(), String> {
    if info.object != virt {
        return Err(format!(
            "{virt:#x} is inside the object at {:#x} of cache {}",
            info.object, info.name
        ));
    }
    if !info.allocated {
        return Err(format!("object {virt:#x} of cache {} is free", info.name));
    }
    Ok(())
}

/// The check-mode setting of a kernel command line: `mm.check=1` (or `on`)
/// turns it on, `mm.check=0` (or `off`) off; `None` if the option is absent or
/// has another value. The last occurrence wins.
pub fn cmdline_check(cmdline: &str) -> Option<bool> {
    cmdline
        .split_ascii_whitespace()
        .rev()
        .filter_map(|w| w.strip_prefix("mm.check="))
        .filter_map(|v| match v {
            "1" | "on" => Some(true),
            "0" | "off" => Some(false),
            _ => None,
        })
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_option() {
        assert_eq!(cmdline_check("mm.check=1"), Some(true));
        assert_eq!(cmdline_check("a=b mm.check=on x"), Some(true));
        assert_eq!(cmdline_check("mm.check=1 mm.check=0"), Some(false));
        assert_eq!(cmdline_check("mm.check=yes"), None);
        assert_eq!(cmdline_check("mm.checks=1 xmm.check=1"), None);
        assert_eq!(cmdline_check(""), None);
    }
}
