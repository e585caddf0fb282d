//! Size classes, slab orders and the placement of objects and metadata in a slab.
//!
//! Everything here is `const fn` so that [`super::Slab::new`] can build the kmalloc
//! caches at compile time (no heap, no init call).

use super::debug::DebugFlags;
use crate::{MAX_ORDER, PAGE_SIZE};

/// Smallest kmalloc object (requests of 1..=32 bytes get 32).
pub const KMALLOC_MIN: usize = 32;
/// Largest kmalloc request: 1 MiB.
pub const KMALLOC_MAX: usize = 1 << 20;
/// Number of kmalloc size classes: 32 B, 64 B, ... 1 MiB.
pub const KMALLOC_CLASSES: usize = 16;
/// Most objects in one slab (a page of 32-byte objects; bigger objects get
/// bigger slabs, not more of them).
pub const MAX_OBJS_PER_SLAB: u32 = 128;
/// Smallest slot (stride) of any cache, and the unit of every stride.
pub const MIN_STRIDE: u32 = 32;
/// Bytes of red zone after each object in debug caches with `Z`.
pub const REDZONE_LEN: u32 = 16;
/// Bytes of the per-slot state word ("free pointer") and requested size in debug caches.
pub const STATE_LEN: u32 = 16;
/// Bytes of the allocation + free tracking records in debug caches with `U`.
pub const TRACK_LEN: u32 = 32;

/// kmalloc class index (0 = 32 B ... 15 = 1 MiB) of a request of `size` bytes,
/// `1 <= size <= KMALLOC_MAX`.
#[inline(always)]
pub const fn kmalloc_class(size: usize) -> usize {
    (usize::BITS - ((size - 1) | (KMALLOC_MIN - 1)).leading_zeros()) as usize - 5
}

/// Object size of kmalloc class `k`.
pub const fn class_size(k: usize) -> u32 {
    (KMALLOC_MIN << k) as u32
}

/// Where things are in one slot of a cache, and how big its slabs are.
///
/// A slab is `objs` slots of `stride` bytes from the start of a naturally aligned
/// block of 2^order pages. The stride is a multiple of 32 bytes (the liveness
/// bitmap's granule), so every slot starts on its own bit.
///
/// Non-debug slot: just the object (`obj_size` rounded up to the alignment and to
/// 32). Debug slot (see the `debug` module): `[object][red zone 16 B if Z][state
/// word 8 B][requested size 8 B][alloc track 16 B, free track 16 B if U][padding
/// 0x5a up to stride]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Usable bytes of an object (the kmalloc class size for kmalloc caches).
    pub obj_size: u32,
    /// Distance between two objects (a multiple of the alignment).
    pub stride: u32,
    /// Slab order: a slab is 2^order pages.
    pub order: u32,
    /// Objects per slab (1..=128).
    pub objs: u32,
    /// `ceil(2^32 / stride)`: `offset * recip >> 32` is the slot of an offset.
    pub recip: u64,
    /// Debug caches: red zone length after the object (16 with Z, else 0).
    pub rz_len: u32,
    /// Debug caches: offset of the state word; the requested size follows it.
    pub state_off: u32,
    /// Debug caches with U: offset of the allocation track (free track at +16).
    pub track_off: u32,
    /// Debug caches: first padding byte (padding runs to `stride`).
    pub pad_off: u32,
}

impl Layout {
    /// Objects per slab.
    pub const fn usable(&self) -> u32 {
        self.objs
    }
    /// Bytes of a slab.
    pub const fn slab_bytes(&self) -> u64 {
        (PAGE_SIZE as u64) << self.order
    }
}

const fn align_up(x: u32, a: u32) -> u32 {
    (x + a - 1) & !(a - 1)
}

/// Largest order [`choose_order`] prefers (32 KiB slabs, Linux's `slub_max_order`).
pub const PREFERRED_MAX_ORDER: u32 = 3;

/// Objects in a slab of 2^`order` pages with slots of `stride` bytes (at most
/// [`MAX_OBJS_PER_SLAB`]), and whether at most 1/8 of the slab is wasted.
const fn fit(stride: u32, order: u32) -> (u32, bool) {
    let bytes = (PAGE_SIZE as u64) << order;
    let mut n = bytes / stride as u64;
    if n > MAX_OBJS_PER_SLAB as u64 {
        n = MAX_OBJS_PER_SLAB as u64;
    }
    let waste = bytes - n * stride as u64;
    (n as u32, n > 0 && waste * 8 <= bytes)
}

/// Picks the slab order for `stride`: the most objects per slab (at most 128)
/// with at most 1/8 of the slab wasted among orders 0..=3 (up to 32 KiB), the
/// smallest such order on a tie. Every per-slab cost (making and giving back a
/// slab, the page allocator's round trip, partial-list moves) is shared by that
/// many objects. Objects that do not fit an order-3 slab that way get the
/// smallest larger order with at most 1/8 waste; if none qualifies, the smallest
/// order that holds one object.
const fn choose_order(stride: u32) -> Option<(u32, u32)> {
    let mut best: Option<(u32, u32)> = None;
    // The smallest order that holds one object.
    let mut fallback: Option<(u32, u32)> = None;
    let mut order = 0;
    while order <= MAX_ORDER {
        let (n, ok) = fit(stride, order);
        if n > 0 && fallback.is_none() {
            fallback = Some((order, n));
        }
        if order <= PREFERRED_MAX_ORDER {
            let better = match best {
                None => true,
                Some((_, m)) => n > m,
            };
            if ok && better {
                best = Some((order, n));
            }
        } else if best.is_some() {
            return best;
        } else if ok {
            return Some((order, n));
        }
        order += 1;
    }
    if best.is_some() {
        return best;
    }
    fallback
}

/// Computes the layout of a cache with objects of `obj_size` bytes (a multiple of 8)
/// aligned to `align` (a power of two >= 8), with the given debug options. `None`
/// if no slab order up to MAX_ORDER fits.
pub const fn compute(obj_size: u32, align: u32, debug: DebugFlags) -> Option<Layout> {
    let mut rz_len = 0;
    let mut state_off = 0;
    let mut track_off = 0;
    let mut end = obj_size;
    if debug.any() {
        if debug.contains(DebugFlags::RED_ZONE) {
            rz_len = REDZONE_LEN;
            end += REDZONE_LEN;
        }
        state_off = end;
        end += STATE_LEN;
        if debug.contains(DebugFlags::STORE_USER) {
            track_off = end;
            end += TRACK_LEN;
        }
    }
    let stride = align_up(
        end,
        if align > MIN_STRIDE {
            align
        } else {
            MIN_STRIDE
        },
    );
    let (order, objs) = match choose_order(stride) {
        Some(x) => x,
        None => return None,
    };
    Some(Layout {
        obj_size,
        stride,
        order,
        objs,
        recip: (1u64 << 32).div_ceil(stride as u64),
        rz_len,
        state_off,
        track_off,
        pad_off: end,
    })
}

/// Bytes of the kmalloc-style name `kmalloc-32` ... `kmalloc-512`, `kmalloc-1k` ...
/// `kmalloc-512k`, `kmalloc-1M` (with `dma-` in front for the DMA caches).
pub const fn kmalloc_name(k: usize, dma: bool) -> ([u8; 32], u8) {
    let mut buf = [0u8; 32];
    let mut n = 0;
    let prefix: &[u8] = if dma { b"dma-kmalloc-" } else { b"kmalloc-" };
    let mut i = 0;
    while i < prefix.len() {
        buf[n] = prefix[i];
        n += 1;
        i += 1;
    }
    let size = KMALLOC_MIN << k;
    let (mut v, unit) = if size >= 1 << 20 {
        (size >> 20, b'M')
    } else if size >= 1024 {
        (size >> 10, b'k')
    } else {
        (size, 0)
    };
    let mut digits = [0u8; 4];
    let mut d = 0;
    while v > 0 {
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        d += 1;
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    if unit != 0 {
        buf[n] = unit;
        n += 1;
    }
    (buf, n as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(kmalloc_class(1), 0);
        assert_eq!(kmalloc_class(32), 0);
        assert_eq!(kmalloc_class(33), 1);
        assert_eq!(kmalloc_class(80), 2);
        assert_eq!(kmalloc_class(4096), 7);
        assert_eq!(kmalloc_class(KMALLOC_MAX), 15);
        assert_eq!(class_size(15) as usize, KMALLOC_MAX);
    }

    #[test]
    fn orders() {
        let none = DebugFlags::NONE;
        let l = compute(32, 32, none).unwrap();
        assert_eq!((l.order, l.objs, l.usable()), (0, 128, 128));
        let l = compute(64, 64, none).unwrap();
        assert_eq!((l.order, l.objs), (1, 128));
        let l = compute(128, 128, none).unwrap();
        assert_eq!((l.order, l.objs), (2, 128));
        // Strides are multiples of 32 (one liveness bit per slot).
        for (size, align, stride) in [(8, 8, 32), (40, 8, 64), (100, 8, 128), (96, 32, 96)] {
            assert_eq!(compute(size, align, none).unwrap().stride, stride);
        }
        let l = compute(4096, 4096, none).unwrap();
        assert_eq!((l.order, l.objs), (3, 8));
        let l = compute(1 << 20, 1 << 20, none).unwrap();
        assert_eq!((l.order, l.objs), (8, 1));
        let l = compute(1 << 20, 1 << 20, DebugFlags::ALL).unwrap();
        assert_eq!((l.order, l.objs, l.stride), (9, 1, 2 << 20));
        for s in [32u32, 96, 3000, 4104, 65536] {
            assert_eq!(
                compute(s.next_multiple_of(8), 8, none).unwrap().stride % MIN_STRIDE,
                0
            );
            let l = compute(s.next_multiple_of(8), 8, DebugFlags::ALL).unwrap();
            for off in 0..l.objs as u64 * l.stride as u64 + 64 {
                let i = (off * l.recip) >> 32;
                let exact = off % l.stride as u64 == 0 && off / (l.stride as u64) < l.objs as u64;
                assert_eq!(exact, i < l.objs as u64 && i * l.stride as u64 == off);
            }
        }
    }

    #[test]
    fn kmalloc_geometry() {
        // (order, objects per slab) of kmalloc-32 ... kmalloc-1M: the most objects
        // (<= 128) up to order 3, then one object per slab.
        let want = [
            (0, 128),
            (1, 128),
            (2, 128),
            (3, 128),
            (3, 64),
            (3, 32),
            (3, 16),
            (3, 8),
            (3, 4),
            (3, 2),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 1),
            (7, 1),
            (8, 1),
        ];
        for (k, &w) in want.iter().enumerate() {
            let s = class_size(k);
            let l = compute(s, s, DebugFlags::NONE).unwrap();
            assert_eq!((l.order, l.objs), w, "kmalloc-{s}");
            assert_eq!(
                l.slab_bytes(),
                l.objs as u64 * l.stride as u64,
                "kmalloc-{s} waste"
            );
        }
    }

    #[test]
    fn orders_bound_waste() {
        // Odd strides: at most 1/8 wasted, and no order up to 3 with at most 1/8
        // waste holds more objects.
        for stride in (32..=20_000u32).step_by(32) {
            let l = compute(stride, 8, DebugFlags::NONE).unwrap();
            let bytes = l.slab_bytes();
            let waste = bytes - l.objs as u64 * stride as u64;
            assert!(waste * 8 <= bytes, "stride {stride}: {l:?}");
            assert!(l.objs <= MAX_OBJS_PER_SLAB);
            if l.order <= PREFERRED_MAX_ORDER {
                for o in 0..=PREFERRED_MAX_ORDER {
                    let (n, ok) = fit(stride, o);
                    assert!(
                        !ok || n < l.objs || (n == l.objs && o >= l.order),
                        "stride {stride} order {o}"
                    );
                }
            } else {
                assert!(
                    (0..=PREFERRED_MAX_ORDER).all(|o| !fit(stride, o).1),
                    "stride {stride}"
                );
            }
        }
        // 160 B: order 3 would hold 128 but waste 3/8; order 2 holds 102.
        let l = compute(160, 32, DebugFlags::NONE).unwrap();
        assert_eq!((l.order, l.objs), (2, 102));
        // 20,000 B: no order up to 3 within 1/8; order 4 holds 3.
        let l = compute(20_000, 8, DebugFlags::NONE).unwrap();
        assert_eq!((l.order, l.objs), (4, 3));
    }

    #[test]
    fn names() {
        let (b, n) = kmalloc_name(0, false);
        assert_eq!(&b[..n as usize], b"kmalloc-32");
        let (b, n) = kmalloc_name(5, true);
        assert_eq!(&b[..n as usize], b"dma-kmalloc-1k");
        let (b, n) = kmalloc_name(15, false);
        assert_eq!(&b[..n as usize], b"kmalloc-1M");
    }
}
