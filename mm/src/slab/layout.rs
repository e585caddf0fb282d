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

/// Picks the slab order for `stride`: the smallest order giving at least 8 objects
/// (or any order >= 3, i.e. 32 KiB, for big objects) with at most 1/8 of the slab
/// wasted; if none qualifies, the smallest order that holds one object.
const fn choose_order(stride: u32) -> Option<(u32, u32)> {
    let mut order = 0;
    let mut fallback: Option<(u32, u32)> = None;
    while order <= MAX_ORDER {
        let bytes = (PAGE_SIZE as u64) << order;
        let mut n = bytes / stride as u64;
        if n > MAX_OBJS_PER_SLAB as u64 {
            n = MAX_OBJS_PER_SLAB as u64;
        }
        if n > 0 {
            let waste = bytes - n * stride as u64;
            if (n >= 8 || order >= 3) && waste * 8 <= bytes {
                return Some((order, n as u32));
            }
            if fallback.is_none() {
                fallback = Some((order, n as u32));
            }
        }
        order += 1;
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
        assert_eq!((l.order, l.objs), (0, 64));
        let l = compute(128, 128, none).unwrap();
        assert_eq!((l.order, l.objs), (0, 32));
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
    fn names() {
        let (b, n) = kmalloc_name(0, false);
        assert_eq!(&b[..n as usize], b"kmalloc-32");
        let (b, n) = kmalloc_name(5, true);
        assert_eq!(&b[..n as usize], b"dma-kmalloc-1k");
        let (b, n) = kmalloc_name(15, false);
        assert_eq!(&b[..n as usize], b"kmalloc-1M");
    }
}
