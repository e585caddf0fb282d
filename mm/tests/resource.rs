//! The resource tree against a model: random `request`/`release` sequences on
//! the ioport tree (with a few kernel containers inserted first), checking the
//! tree's invariants after every step and that each answer matches the model's.

use mm::resource::{ResFlags, ResKind, ResourceError, ResourceTree};
use proptest::prelude::*;

/// A container like `System RAM`: requests descend into it.
const CONTAINERS: [(u64, u64); 2] = [(0x100, 0x200), (0x800, 0x100)];

#[derive(Clone, Debug)]
enum Op {
    Request(u64, u64),
    Release(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..0x1000, 1u64..0x80).prop_map(|(s, l)| Op::Request(s, l)),
        (0u64..0x1000, 1u64..0x80).prop_map(|(s, l)| Op::Release(s, l)),
    ]
}

/// The model: busy regions as `(start, end)` inclusive, plus the containers.
fn model_request(busy: &[(u64, u64)], s: u64, e: u64) -> bool {
    let overlaps = |a: u64, b: u64| a <= e && s <= b;
    if busy.iter().any(|&(a, b)| overlaps(a, b)) {
        return false;
    }
    // A container that overlaps must hold the whole range.
    CONTAINERS
        .iter()
        .all(|&(cs, cl)| !overlaps(cs, cs + cl - 1) || (cs <= s && e < cs + cl))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn request_release_match_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let mut t = ResourceTree::<48>::new();
        for (s, l) in CONTAINERS {
            t.insert(ResKind::Io, s, l, "container", ResFlags::SYSRAM).unwrap();
        }
        let base = t.rows(ResKind::Io).map(|r| r.to_string()).collect::<Vec<_>>();
        let mut busy: Vec<(u64, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Request(s, l) => {
                    let e = s + l - 1;
                    let got = t.request(ResKind::Io, s, l, "r", ResFlags::EMPTY);
                    let want = model_request(&busy, s, e);
                    match got {
                        Ok(id) => {
                            prop_assert!(want, "request {s:#x}+{l:#x} succeeded, model refuses");
                            let span = t.get(id).unwrap();
                            prop_assert_eq!((span.start, span.end), (s, e));
                            busy.push((s, e));
                        }
                        Err(ResourceError::Full) => prop_assert!(t.room() == 0),
                        Err(ResourceError::Conflict { with, .. }) => {
                            prop_assert!(!want, "request {s:#x}+{l:#x} refused, model accepts");
                            // The named conflict really overlaps.
                            prop_assert!(with.start <= e && s <= with.end);
                        }
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                Op::Release(s, l) => {
                    let e = s + l - 1;
                    let got = t.release(ResKind::Io, s, l);
                    let pos = busy.iter().position(|&r| r == (s, e));
                    prop_assert_eq!(got.is_ok(), pos.is_some(), "release {:#x}+{:#x}: {:?}", s, l, got);
                    if let Some(p) = pos {
                        busy.swap_remove(p);
                    }
                }
            }
            prop_assert_eq!(t.check(), Ok(()));
            prop_assert_eq!(t.len(), CONTAINERS.len() + busy.len());
        }
        // Releasing everything restores the boot tree exactly.
        for (s, e) in busy.drain(..) {
            t.release(ResKind::Io, s, e - s + 1).unwrap();
        }
        let after = t.rows(ResKind::Io).map(|r| r.to_string()).collect::<Vec<_>>();
        prop_assert_eq!(after, base);
        prop_assert_eq!(t.check(), Ok(()));
    }
}
