//! Serial tests of physical memory: zones, the page APIs, misuse, out of memory.

use systest::*;

/// `memstat` as name -> value.
pub fn memstat(vm: &mut Vm) -> Result<Vec<(String, u64)>, String> {
    let out = vm.ok("memstat")?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.trim().to_string(), num(v.trim())?))
        })
        .collect())
}

fn stat(s: &[(String, u64)], k: &str) -> u64 {
    s.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap_or(u64::MAX)
}

fn memstat_adds_up_and_zones_exist(vm: &mut Vm) -> Check {
    let s = memstat(vm)?;
    for k in ["total", "used", "free", "shared", "cache_used", "cache_free", "available"] {
        ensure(stat(&s, k) != u64::MAX, || format!("memstat lacks {k}: {s:?}"))?;
    }
    ensure(stat(&s, "total") == stat(&s, "used") + stat(&s, "free"), || format!("total != used + free: {s:?}"))?;
    ensure(stat(&s, "total") > 2_000_000_000, || format!("2 GiB VM reports total {}", stat(&s, "total")))?;
    let out = vm.ok("memstat")?;
    for z in ["DMA", "NORMAL", "UNMAPPED"] {
        ensure(out.contains(&format!("zone {z}")), || format!("zone {z} missing with 2 GiB:\n{out}"))?;
    }
    Ok(())
}

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario { name: "memstat_adds_up_and_zones_exist", run: || with_vm(Opts::default(), memstat_adds_up_and_zones_exist) }]
}
