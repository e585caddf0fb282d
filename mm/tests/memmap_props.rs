//! Property test of the memory-map sanitizer against a model: after `sanitize`,
//! regions are sorted, disjoint, non-empty and maximally merged, and every address
//! has the most restrictive kind of the raw entries that covered it.

use mm::memmap::{MemKind, MemRegion, MemoryMap, MEMMAP_MAX};
use proptest::prelude::*;

const KINDS: [MemKind; 8] = [
    MemKind::Usable,
    MemKind::BootReclaimable,
    MemKind::AcpiReclaimable,
    MemKind::Kernel,
    MemKind::Framebuffer,
    MemKind::AcpiNvs,
    MemKind::Bad,
    MemKind::Reserved,
];

fn entry() -> impl Strategy<Value = (u64, u64, usize)> {
    // Small page-granular coordinates so that overlaps are frequent.
    (0u64..64, 0u64..16, 0usize..KINDS.len())
        .prop_map(|(s, len, k)| (s * 0x1000, (s + len) * 0x1000, k))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn sanitize_matches_the_model(raw in proptest::collection::vec(entry(), 0..40)) {
        let mut m = MemoryMap::new();
        for &(start, end, k) in &raw {
            m.push(MemRegion { start, end, kind: KINDS[k] });
        }
        m.sanitize();
        let e = m.entries();
        for r in e {
            prop_assert!(r.start < r.end, "empty region {r:?}");
        }
        for w in e.windows(2) {
            prop_assert!(w[0].end <= w[1].start, "unsorted or overlapping: {w:?}");
            prop_assert!(!(w[0].end == w[1].start && w[0].kind == w[1].kind), "not merged: {w:?}");
        }
        // Every page: the sanitized kind equals the model's.
        for page in 0..80u64 {
            let a = page * 0x1000;
            let want = raw.iter().filter(|&&(s, en, _)| s <= a && a < en).map(|&(_, _, k)| KINDS[k]).max();
            let got = e.iter().find(|r| r.start <= a && a < r.end).map(|r| r.kind);
            prop_assert_eq!(got, want, "page {:#x}", a);
        }
        prop_assert!(e.len() <= MEMMAP_MAX);
    }
}
