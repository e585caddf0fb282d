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
    s.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| *v)
        .unwrap_or(u64::MAX)
}

fn memstat_adds_up_and_zones_exist(vm: &mut Vm) -> Check {
    let s = memstat(vm)?;
    for k in [
        "total",
        "used",
        "free",
        "shared",
        "cache_used",
        "cache_free",
        "available",
    ] {
        ensure(stat(&s, k) != u64::MAX, || {
            format!("memstat lacks {k}: {s:?}")
        })?;
    }
    ensure(
        stat(&s, "total") == stat(&s, "used") + stat(&s, "free"),
        || format!("total != used + free: {s:?}"),
    )?;
    ensure(stat(&s, "total") > 2_000_000_000, || {
        format!("2 GiB VM reports total {}", stat(&s, "total"))
    })?;
    let out = vm.ok("memstat")?;
    for z in ["DMA", "NORMAL", "UNMAPPED"] {
        ensure(out.contains(&format!("zone {z}")), || {
            format!("zone {z} missing with 2 GiB:\n{out}")
        })?;
    }
    Ok(())
}

/// The first line of `out` that starts with a handle (`#N ...`).
fn result_line(out: &str) -> Result<String, String> {
    out.lines()
        .find(|l| l.starts_with('#'))
        .map(String::from)
        .ok_or_else(|| format!("no result line in:\n{out}"))
}

fn hexfield(line: &str, key: &str) -> Result<u64, String> {
    field(line, key)
        .and_then(num)
        .ok_or_else(|| format!("no numeric {key}= in {line:?}"))
}

const MIB: u64 = 1 << 20;
const LOWMEM: u64 = 1 << 30;

fn zones_give_memory_where_they_should(vm: &mut Vm) -> Check {
    let dma = result_line(&vm.ok("pages 4 DMA KERNEL")?)?;
    let phys = hexfield(&dma, "phys")?;
    ensure(phys + 4 * 4096 <= 16 * MIB, || {
        format!("DMA block not below 16 MiB: {dma}")
    })?;
    ensure(
        field(&dma, "virt") != Some("none") && field(&dma, "flags") == Some("KERNEL"),
        || dma.clone(),
    )?;
    let normal = result_line(&vm.ok("pages 8 NORMAL")?)?;
    let phys = hexfield(&normal, "phys")?;
    ensure((16 * MIB..LOWMEM).contains(&phys), || {
        format!("NORMAL block outside 16 MiB..1 GiB: {normal}")
    })?;
    let un = result_line(&vm.ok("pages 2 UNMAPPED")?)?;
    ensure(hexfield(&un, "phys")? >= LOWMEM, || {
        format!("UNMAPPED block below the limit: {un}")
    })?;
    ensure(field(&un, "virt") == Some("none"), || {
        format!("UNMAPPED page has a virtual address: {un}")
    })?;
    let high = result_line(&vm.ok("alloc_pages 3 __GFP_HIGHMEM")?)?;
    ensure(
        field(&high, "zone") == Some("UNMAPPED") && field(&high, "virt") == Some("none"),
        || high.clone(),
    )?;
    let dma2 = result_line(&vm.ok("get_free_pages 1 GFP_DMA")?)?;
    ensure(hexfield(&dma2, "phys")? < 16 * MIB, || dma2.clone())?;
    // A page of the kernel image is reserved and marked KERNEL_INIT.
    let img = vm.ok("page 0x200")?;
    ensure(
        img.contains("state=reserved") && img.contains("KERNEL_INIT"),
        || format!("kernel image page:\n{img}"),
    )?;
    Ok(())
}

fn reference_counts(vm: &mut Vm) -> Check {
    let line = result_line(&vm.ok("page_alloc")?)?;
    ensure(line.starts_with("#1 "), || line.clone())?;
    let dump = vm.ok("dump #1 0 64")?;
    ensure(
        dump.lines()
            .skip(1)
            .all(|l| l.contains(" 00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00 ")),
        || format!("page_alloc page not zero:\n{dump}"),
    )?;
    ensure(vm.ok("get_page #1")?.contains("refcount=2"), || {
        "get_page".into()
    })?;
    vm.err("free #1", "2 references")?;
    ensure(vm.ok("put_page #1")?.contains("refcount=1"), || {
        "put_page".into()
    })?;
    let out = vm.ok("page_decref #1")?;
    ensure(
        out.contains("refcount=0") && out.contains("retired #1"),
        || format!("page_decref:\n{out}"),
    )?;
    vm.err("free #1", "already freed")?;
    Ok(())
}

fn every_misuse_is_an_error(vm: &mut Vm) -> Check {
    let boot = memstat(vm)?;
    vm.err("pages 0", "out of range")?;
    vm.err("pages 64", "out of range")?;
    vm.err(
        "pages 1 DMX",
        "unknown zone 'DMX' (expected DMA, NORMAL or UNMAPPED)",
    )?;
    vm.err("pages 1 NORMAL BOGUS", "BOGUS")?;
    vm.err("alloc_pages 11", "11")?;
    vm.ok("free all")?;
    let line = result_line(&vm.ok("pages 5")?)?;
    let pfn = hexfield(&line, "pfn")?;
    vm.err(&format!("free_pages {pfn:#x} 4"), "allocated with 5")?;
    vm.err(&format!("__free_pages {pfn:#x} 3"), "")?;
    vm.err(
        &format!("free_pages {:#x} 1", pfn + 1),
        "not the first page",
    )?;
    ensure(
        vm.ok(&format!("free_pages {pfn:#x} 5"))?
            .contains("retired #"),
        || "right count did not free".into(),
    )?;
    vm.err(&format!("free_pages {pfn:#x} 5"), "double free")?;
    vm.err("free_pages 0x200 1", "reserved")?;
    vm.err("free_pages 0x7fffffff 1", "beyond the last frame")?;
    vm.err("free #99", "no handle #99")?;
    vm.err("free 0x0000000000200000", "")?;
    vm.ok("free all")?;
    let after = memstat(vm)?;
    ensure(after == boot, || {
        format!("misuse changed memory:\nboot  {boot:?}\nafter {after:?}")
    })
}

fn free_all_restores_boot_memstat(vm: &mut Vm) -> Check {
    let boot = memstat(vm)?;
    for cmd in [
        "pages 7 DMA",
        "pages 63 NORMAL SHARED",
        "pages 1 UNMAPPED",
        "alloc_pages 10",
        "alloc_page __GFP_ZERO",
        "get_free_pages 4",
        "get_free_page GFP_DMA",
        "get_zeroed_page",
        "page_alloc",
        "alloc_pages 2 __GFP_HIGHMEM",
    ] {
        vm.ok(cmd)?;
    }
    vm.ok("get_page #9")?;
    let mid = memstat(vm)?;
    ensure(mid != boot, || "allocations did not show in memstat".into())?;
    // #9 has two references: free all must refuse it, then succeed after put_page.
    vm.err("free all", "#9")?;
    vm.ok("put_page #9")?;
    vm.ok("free all")?;
    let after = memstat(vm)?;
    ensure(after == boot, || {
        format!("free all leaked:\nboot  {boot:?}\nafter {after:?}")
    })
}

/// `alloc_pages_bulk` gives one handle per page; `free_pages_bulk` frees them in
/// one call and reports a misuse (a page listed twice) with one error line,
/// freeing the pages before it; `free all` restores the boot numbers.
fn bulk_pages_and_their_misuse(vm: &mut Vm) -> Check {
    let boot = memstat(vm)?;
    let out = vm.ok("alloc_pages_bulk 500")?;
    ensure(
        out.contains("alloc_pages_bulk: got 500 of 500 pages"),
        || out.clone(),
    )?;
    let handles = out.lines().filter(|l| l.starts_with('#')).count();
    ensure(handles == 500, || format!("{handles} handles:\n{out}"))?;
    let first = result_line(&out)?;
    let id: u64 = first[1..first.find(' ').unwrap_or(1)]
        .parse()
        .map_err(|_| first.clone())?;
    let out = vm.ok(&format!("free_pages_bulk #{id}-#{}", id + 299))?;
    let freed = out.lines().filter(|l| l.starts_with("freed #")).count();
    ensure(freed == 300, || format!("freed {freed}:\n{out}"))?;
    let (a, b) = (id + 300, id + 301);
    let err = vm.err(
        &format!("free_pages_bulk #{a} #{b} #{b}"),
        &format!("stopped at #{b} (entry 3) after freeing 2: double free"),
    )?;
    vm.err(&format!("free #{a}"), "")?;
    vm.err("alloc_pages_bulk 1025", "out of range")?;
    vm.err("free_pages_bulk #1", "")?;
    vm.ok("free all")?;
    let after = memstat(vm)?;
    ensure(after == boot, || {
        format!("bulk pages leaked ({err}):\nboot  {boot:?}\nafter {after:?}")
    })
}

fn reports_have_their_formats(vm: &mut Vm) -> Check {
    let bi = vm.ok("buddyinfo")?;
    let lines: Vec<&str> = bi.lines().collect();
    ensure(lines.len() == 3, || format!("buddyinfo lines:\n{bi}"))?;
    for (l, z) in lines.iter().zip(["DMA", "NORMAL", "UNMAPPED"]) {
        ensure(l.starts_with(&format!("Node 0, zone {z:>8} ")), || {
            format!("buddyinfo line {l:?}")
        })?;
        ensure(l.split_whitespace().count() == 4 + 11, || {
            format!("not 11 orders: {l:?}")
        })?;
    }
    let zi = vm.ok("zoneinfo")?;
    ensure(
        zi.contains("zone DMA") && zi.contains("lowmem: pfn 0x40000"),
        || format!("zoneinfo:\n{zi}"),
    )?;
    vm.ok("pages 40")?;
    let pm = vm.ok("pagemap")?;
    ensure(pm.lines().all(|l| l.len() <= 80), || {
        format!("pagemap wider than 80 columns:\n{pm}")
    })?;
    ensure(
        pm.contains('#') && pm.contains('K') && pm.contains('.'),
        || format!("pagemap lacks states:\n{pm}"),
    )?;
    Ok(())
}

fn bzero_and_bcopy(vm: &mut Vm) -> Check {
    vm.ok("get_free_page")?; // #1, not zeroed
    vm.ok("get_zeroed_page")?; // #2, zero
    vm.ok("bcopy #2 #1 4096")?;
    let d = vm.ok("dump #1 4000 96")?;
    ensure(
        d.lines()
            .skip(1)
            .all(|l| l.contains(" 00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00 ")),
        || d.clone(),
    )?;
    vm.err("bzero #1 4000 200", "")?;
    vm.err("dump #1 0 100000", "")?;
    Ok(())
}

fn out_of_memory_is_an_error_and_recovers() -> Outcome {
    with_vm(Opts::default().mem("64M"), |vm| {
        let boot = memstat(vm)?;
        // Exhaust memory: 4 MiB blocks first, then 252 KiB blocks.
        let mut got = 0;
        for cmd in ["alloc_pages 10", "pages 63"] {
            let mut oom = None;
            for _ in 0..100 {
                let out = vm.cmd(cmd)?;
                if out.contains("error: ") {
                    oom = Some(out);
                    break;
                }
                got += 1;
            }
            let oom = oom.ok_or_else(|| format!("64 MiB never ran out of memory with `{cmd}`"))?;
            ensure(oom.trim().starts_with("error: out of memory"), || {
                format!("`{cmd}`: not an out-of-memory error: {oom}")
            })?;
        }
        let free = stat(&memstat(vm)?, "free");
        // What is left is fragments and ZONE_DMA (DragonOS `pages` takes NORMAL only).
        ensure(free < 16 * MIB, || {
            format!("after OOM {free} bytes still free")
        })?;
        ensure(got > 12, || format!("only {got} blocks on 64 MiB"))?;
        // The machine is still fine: small allocations may still succeed or fail cleanly.
        let _ = vm.cmd("pages 1")?;
        vm.ok("free all")?;
        let after = memstat(vm)?;
        ensure(after == boot, || {
            format!("after OOM and free all:\nboot  {boot:?}\nafter {after:?}")
        })?;
        let again = result_line(&vm.ok("pages 63")?)?;
        ensure(again.starts_with('#'), || again)
    })
}

fn small_machine_has_no_unmapped_zone() -> Outcome {
    with_vm(Opts::default().mem("128M"), |vm| {
        vm.err("pages 1 UNMAPPED", "")?;
        let out = vm.ok("memstat")?;
        ensure(!out.contains("zone UNMAPPED"), || {
            format!("empty zone listed:\n{out}")
        })
    })
}

fn lowmem_from_the_command_line() -> Outcome {
    with_vm(Opts::default().cmdline("mm.lowmem=256M"), |vm| {
        let zi = vm.ok("zoneinfo")?;
        ensure(zi.contains("lowmem: pfn 0x10000"), || {
            format!("mm.lowmem=256M ignored:\n{zi}")
        })?;
        let un = result_line(&vm.ok("pages 1 UNMAPPED")?)?;
        ensure(hexfield(&un, "phys")? >= 256 * MIB, || un)
    })
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![
        memstat_adds_up_and_zones_exist with |b| with_vm(Opts::default(), b),
        zones_give_memory_where_they_should with |b| with_vm(Opts::default(), b),
        reference_counts with |b| with_vm(Opts::default(), b),
        every_misuse_is_an_error with |b| with_vm(Opts::default(), b),
        free_all_restores_boot_memstat with |b| with_vm(Opts::default(), b),
        reports_have_their_formats with |b| with_vm(Opts::default(), b),
        bzero_and_bcopy with |b| with_vm(Opts::default(), b),
        bulk_pages_and_their_misuse with |b| with_vm(Opts::default(), b),
        out_of_memory_is_an_error_and_recovers,
        small_machine_has_no_unmapped_zone,
        lowmem_from_the_command_line,
    ]
}
