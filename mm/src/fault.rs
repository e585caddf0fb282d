//! Fault injection: allocations that fail on purpose, as Linux's `failslab` and
//! `fail_page_alloc`, so that every error path can be driven in tests.
//!
//! A [`FaultAttr`] is Linux's `struct fault_attr`: a [`FaultConfig`] (probability in
//! percent, interval, times, space, seed) and its running state. There are two
//! instances: the buddy allocator's ([`FaultSite::PageAlloc`], `fail_page_alloc`,
//! consulted by the page API: DragonOS `alloc_pages`, Linux `alloc_pages` and
//! everything built on it, MOS `page_alloc`) and the slab allocator's
//! ([`FaultSite::Slab`], `failslab`, consulted by every object allocation: kmalloc,
//! kmem_cache_alloc, mempools' backing allocations, whether or not a new slab is
//! needed; slab blocks themselves are not subject to `fail_page_alloc`).
//!
//! [`FaultAttr::should_fail`] decides one call exactly as Linux's `should_fail()`:
//!
//! 1. probability 0, or `times` used up: no failure;
//! 2. `space`: while more than `size` is left, `size` is subtracted and the call
//!    succeeds (a budget that must be used up before failures start);
//! 3. `interval` N > 1: only every N-th call that got here may fail;
//! 4. probability P: the call fails if a pseudo-random number below 100 is below P;
//! 5. a failure counts one of `times` (unless unlimited) and one `injected`.
//!
//! `size` is the request in pages (`2^order`) for the page allocator, in bytes (the
//! object size) for the slab, as in Linux. The pseudo-random numbers come from
//! SplitMix64 seeded with [`FaultConfig::seed`] when the attribute is armed: the same
//! configuration and the same sequence of calls fail the same calls, run after run.
//!
//! Requests with [`Gfp::MEMALLOC`] (the kernel's own heap) are never failed on
//! purpose, as Linux never fails `__GFP_NOFAIL`; [`FaultAttr::should_fail_gfp`]
//! checks that first.
//!
//! The allocators consult their attribute on their slow paths only, so that the
//! fast paths cost nothing while injection is off. Arming therefore empties and
//! bypasses their caches (the buddy allocator's per-zone block caches stop being
//! refilled, the slab's magazines are flushed and given capacity 0) until the
//! attribute is disarmed, which restores them; see `Buddy::set_fail_page_alloc`
//! and `Slab::set_failslab`.
//!
//! The kernel command line takes Linux's syntax,
//! `fail_page_alloc=<interval>,<probability>,<space>,<times>` and
//! `failslab=...` ([`FaultConfig::parse_boot`]), with an optional fifth field, the
//! seed (a memkern extension). `times` -1 is unlimited.

use core::fmt;

use crate::{Gfp, MmError};

/// Which allocator an attribute belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum FaultSite {
    /// `fail_page_alloc`: the buddy allocator's page API.
    PageAlloc,
    /// `failslab`: the slab allocator's object allocations.
    Slab,
}

impl FaultSite {
    /// Both sites.
    pub const ALL: [FaultSite; 2] = [FaultSite::PageAlloc, FaultSite::Slab];

    /// Linux's name of the attribute (also the kernel command-line option).
    pub const fn name(self) -> &'static str {
        match self {
            FaultSite::PageAlloc => "fail_page_alloc",
            FaultSite::Slab => "failslab",
        }
    }
}

/// How an armed attribute fails calls (Linux's `fault_attr` tunables).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct FaultConfig {
    /// Percent of the eligible calls that fail, 0..=100 (0: never).
    pub probability: u32,
    /// Only every `interval`-th eligible call may fail (0 and 1: every call).
    pub interval: u64,
    /// Failures left before injection stops; `None` = unlimited (Linux's -1;
    /// `Some(u64::MAX)` is the same).
    pub times: Option<u64>,
    /// Budget (pages or bytes) that calls use up before any may fail.
    pub space: u64,
    /// Seed of the pseudo-random numbers.
    pub seed: u64,
}

impl FaultConfig {
    /// The default seed.
    pub const DEFAULT_SEED: u64 = 1;

    /// Every call fails: probability 100, interval 1, unlimited, no space.
    pub const ALWAYS: FaultConfig = FaultConfig {
        probability: 100,
        interval: 1,
        times: None,
        space: 0,
        seed: FaultConfig::DEFAULT_SEED,
    };

    /// Parses Linux's boot syntax `<interval>,<probability>,<space>,<times>`, with
    /// an optional fifth field `<seed>`. Numbers are decimal (or `0x` hex); `times`
    /// may be -1 (unlimited). Errors: `Invalid`.
    pub fn parse_boot(s: &str) -> Result<FaultConfig, MmError> {
        let bad = MmError::Invalid(
            "expected <interval>,<probability>,<space>,<times>[,<seed>] (times -1: unlimited)",
        );
        let mut f = s.split(',');
        let mut next = || f.next().map(str::trim);
        let interval = next().and_then(parse_u64).ok_or(bad)?;
        let probability = next().and_then(parse_u64).ok_or(bad)?;
        let space = next().and_then(parse_u64).ok_or(bad)?;
        let times = match next().ok_or(bad)? {
            "-1" => None,
            t => Some(parse_u64(t).ok_or(bad)?),
        };
        let seed = match next() {
            None => FaultConfig::DEFAULT_SEED,
            Some(t) => parse_u64(t).ok_or(bad)?,
        };
        if next().is_some() {
            return Err(bad);
        }
        if probability > 100 {
            return Err(MmError::Invalid("probability must be 0..=100 (percent)"));
        }
        Ok(FaultConfig {
            probability: probability as u32,
            interval,
            times,
            space,
            seed,
        })
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The value of `name=` on a kernel command line (`fail_page_alloc=...`), if given.
pub fn cmdline_option(cmdline: &str, site: FaultSite) -> Option<&str> {
    let name = site.name();
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

impl fmt::Display for FaultConfig {
    /// `probability=P interval=N times=N|-1 space=N seed=S`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "probability={} interval={} times=",
            self.probability, self.interval
        )?;
        match self.times {
            Some(t) => write!(f, "{t}")?,
            None => f.write_str("-1")?,
        }
        write!(f, " space={} seed={}", self.space, self.seed)
    }
}

/// Linux's `struct fault_attr`: a configuration (if armed) and its running state.
///
/// Every field is a `u64`: no padding and no enum tags. Both allocators embed one,
/// and a field with padding bytes in `Slab` was measured to change the compiler's
/// register allocation around the inlined fast paths of the callgrind harness
/// (W2: 72.75 to 75.77 instructions per step); plain words leave it unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FaultAttr {
    /// 1 while a configuration is armed, else 0 (and every setting 0).
    armed: u64,
    probability: u64,
    interval: u64,
    /// Configured `times`; [`UNLIMITED`] for none.
    times: u64,
    space: u64,
    seed: u64,
    /// Failures left; [`UNLIMITED`] for no limit.
    times_left: u64,
    /// Budget left.
    space_left: u64,
    /// Calls that reached the interval test.
    count: u64,
    /// SplitMix64 state.
    rng: u64,
    /// Calls decided while armed.
    calls: u64,
    /// Failures injected since boot (kept across arming and disarming).
    injected: u64,
}

/// `times` value meaning no limit (a limit of `u64::MAX` failures is the same).
const UNLIMITED: u64 = u64::MAX;

impl Default for FaultAttr {
    fn default() -> FaultAttr {
        FaultAttr::OFF
    }
}

impl FaultAttr {
    /// Disarmed, nothing injected.
    pub const OFF: FaultAttr = FaultAttr {
        armed: 0,
        probability: 0,
        interval: 0,
        times: 0,
        space: 0,
        seed: 0,
        times_left: 0,
        space_left: 0,
        count: 0,
        rng: 0,
        calls: 0,
        injected: 0,
    };

    /// Arms with `cfg`: the running state starts afresh (times, space, interval
    /// count, the generator seeded); the `injected` total is kept.
    pub fn arm(&mut self, cfg: FaultConfig) {
        let times = cfg.times.unwrap_or(UNLIMITED);
        *self = FaultAttr {
            armed: 1,
            probability: cfg.probability as u64,
            interval: cfg.interval,
            times,
            space: cfg.space,
            seed: cfg.seed,
            times_left: times,
            space_left: cfg.space,
            count: 0,
            rng: cfg.seed,
            calls: 0,
            injected: self.injected,
        };
    }

    /// Disarms (the `injected` total is kept).
    pub fn disarm(&mut self) {
        *self = FaultAttr {
            injected: self.injected,
            ..FaultAttr::OFF
        };
    }

    /// True while a configuration is armed (even if its `times` are used up: the
    /// allocators keep their caches bypassed until disarmed).
    #[inline(always)]
    pub const fn is_armed(&self) -> bool {
        self.armed != 0
    }

    /// The armed configuration.
    pub const fn config(&self) -> Option<FaultConfig> {
        if !self.is_armed() {
            return None;
        }
        Some(FaultConfig {
            probability: self.probability as u32,
            interval: self.interval,
            times: if self.times == UNLIMITED {
                None
            } else {
                Some(self.times)
            },
            space: self.space,
            seed: self.seed,
        })
    }

    /// Failures left (`None`: unlimited or disarmed).
    pub const fn times_left(&self) -> Option<u64> {
        if !self.is_armed() || self.times_left == UNLIMITED {
            None
        } else {
            Some(self.times_left)
        }
    }

    /// Budget left before failures may start.
    pub const fn space_left(&self) -> u64 {
        self.space_left
    }

    /// Calls decided since arming.
    pub const fn calls(&self) -> u64 {
        self.calls
    }

    /// Failures injected since boot.
    pub const fn injected(&self) -> u64 {
        self.injected
    }

    /// Linux `should_fail(attr, size)`: decides one call of `size` (pages or bytes).
    /// Always false while disarmed. See the module documentation for the rules.
    pub fn should_fail(&mut self, size: u64) -> bool {
        if !self.is_armed() {
            return false;
        }
        self.calls += 1;
        if self.probability == 0 || self.times_left == 0 {
            return false;
        }
        if self.space_left > size {
            self.space_left -= size;
            return false;
        }
        if self.interval > 1 {
            self.count += 1;
            if !self.count.is_multiple_of(self.interval) {
                return false;
            }
        }
        if self.probability <= self.random_below_100() {
            return false;
        }
        if self.times_left != UNLIMITED {
            self.times_left -= 1;
        }
        self.injected += 1;
        true
    }

    /// [`should_fail`](Self::should_fail) for an allocation with `gfp`: a request
    /// with [`Gfp::MEMALLOC`] or [`Gfp::NOFAULT`] (the kernel heap's) is never
    /// failed (and not counted).
    #[inline]
    pub fn should_fail_gfp(&mut self, gfp: Gfp, size: u64) -> bool {
        self.is_armed() && gfp.0 & (Gfp::MEMALLOC.0 | Gfp::NOFAULT.0) == 0 && self.should_fail(size)
    }

    /// SplitMix64, reduced to 0..100.
    fn random_below_100(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        z % 100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armed(cfg: FaultConfig) -> FaultAttr {
        let mut a = FaultAttr::OFF;
        a.arm(cfg);
        a
    }

    fn run(a: &mut FaultAttr, n: usize, size: u64) -> Vec<bool> {
        (0..n).map(|_| a.should_fail(size)).collect()
    }

    #[test]
    fn off_never_fails() {
        let mut a = FaultAttr::OFF;
        assert!(!a.is_armed());
        assert!(run(&mut a, 100, 1).iter().all(|&f| !f));
        assert_eq!((a.calls(), a.injected()), (0, 0));
    }

    #[test]
    fn always_fails_every_call_and_counts() {
        let mut a = armed(FaultConfig::ALWAYS);
        assert!(run(&mut a, 50, 1).iter().all(|&f| f));
        assert_eq!((a.calls(), a.injected()), (50, 50));
        a.disarm();
        assert!(!a.should_fail(1));
        assert_eq!(a.injected(), 50, "the total survives disarming");
    }

    #[test]
    fn probability_zero_never_fails() {
        let mut a = armed(FaultConfig {
            probability: 0,
            ..FaultConfig::ALWAYS
        });
        assert!(run(&mut a, 1000, 1).iter().all(|&f| !f));
        assert!(a.is_armed());
    }

    #[test]
    fn probability_is_roughly_the_fraction_failed() {
        for p in [1, 10, 50, 90] {
            let mut a = armed(FaultConfig {
                probability: p,
                ..FaultConfig::ALWAYS
            });
            let n = run(&mut a, 10_000, 1).iter().filter(|&&f| f).count() as i64;
            let want = 100 * p as i64;
            assert!((n - want).abs() < 300, "p={p}: {n} of 10000");
        }
    }

    #[test]
    fn interval_fails_every_nth_call() {
        let mut a = armed(FaultConfig {
            interval: 3,
            ..FaultConfig::ALWAYS
        });
        let got = run(&mut a, 9, 1);
        assert_eq!(
            got,
            [false, false, true, false, false, true, false, false, true]
        );
    }

    #[test]
    fn times_limits_the_failures() {
        let mut a = armed(FaultConfig {
            times: Some(2),
            ..FaultConfig::ALWAYS
        });
        assert_eq!(run(&mut a, 5, 1), [true, true, false, false, false]);
        assert_eq!(a.times_left(), Some(0));
        assert_eq!(a.injected(), 2);
        // Re-arming starts the count afresh.
        a.arm(FaultConfig {
            times: Some(1),
            ..FaultConfig::ALWAYS
        });
        assert_eq!(run(&mut a, 2, 1), [true, false]);
        assert_eq!(a.injected(), 3);
    }

    #[test]
    fn space_is_used_up_first() {
        let mut a = armed(FaultConfig {
            space: 10,
            ..FaultConfig::ALWAYS
        });
        // 10 > 4: 6 left; 6 > 4: 2 left; 2 > 4 is false: fail from now on.
        assert_eq!(run(&mut a, 4, 4), [false, false, true, true]);
        assert_eq!(a.space_left(), 2);
    }

    #[test]
    fn same_seed_same_failures_other_seed_others() {
        let cfg = FaultConfig {
            probability: 30,
            seed: 42,
            ..FaultConfig::ALWAYS
        };
        let first = run(&mut armed(cfg), 200, 1);
        assert_eq!(first, run(&mut armed(cfg), 200, 1));
        let other = run(&mut armed(FaultConfig { seed: 43, ..cfg }), 200, 1);
        assert_ne!(first, other);
    }

    #[test]
    fn memalloc_is_never_failed() {
        let mut a = armed(FaultConfig::ALWAYS);
        assert!(!a.should_fail_gfp(Gfp::MEMALLOC, 1));
        assert!(!a.should_fail_gfp(Gfp::DMA | Gfp::MEMALLOC, 1));
        assert_eq!(a.calls(), 0);
        assert!(a.should_fail_gfp(Gfp::KERNEL, 1));
        assert!(!Gfp::NAMED.iter().any(|(g, _)| g.contains(Gfp::MEMALLOC)));
    }

    #[test]
    fn boot_syntax() {
        assert_eq!(
            FaultConfig::parse_boot("1,100,0,-1"),
            Ok(FaultConfig::ALWAYS)
        );
        assert_eq!(
            FaultConfig::parse_boot("10,50,4096,5,7"),
            Ok(FaultConfig {
                probability: 50,
                interval: 10,
                times: Some(5),
                space: 4096,
                seed: 7,
            })
        );
        for bad in [
            "",
            "1",
            "1,2,3",
            "1,101,0,-1",
            "x,1,0,1",
            "1,1,0,-2",
            "1,1,0,1,1,1",
        ] {
            assert!(FaultConfig::parse_boot(bad).is_err(), "{bad}");
        }
        let line = "mm.lowmem=512M failslab=1,100,0,3 fail_page_alloc=2,50,0,-1";
        assert_eq!(cmdline_option(line, FaultSite::Slab), Some("1,100,0,3"));
        assert_eq!(
            cmdline_option(line, FaultSite::PageAlloc),
            Some("2,50,0,-1")
        );
        assert_eq!(cmdline_option("failslabx=1", FaultSite::Slab), None);
        assert_eq!(
            FaultConfig::ALWAYS.to_string(),
            "probability=100 interval=1 times=-1 space=0 seed=1"
        );
    }
}
