//! Serial tests of vmalloc and ioremap on the real kernel: a vmalloc larger
//! than ZONE_NORMAL built from ZONE_UNMAPPED frames, written and read at both
//! ends through its mapping; its guard page faults with one recovered error
//! that names where the walk stops; every vfree misuse is one error line; the
//! local APIC through ioremap (its version register, as the direct map reads
//! it); ioremap of RAM refused; `map` and `vmallocinfo` list the areas; `free
//! all` back to the boot `memstat`.

use systest::*;

/// The direct map's view of the local APIC.
const LAPIC_DIRECT: u64 = 0xffff_8000_fee0_0000;

/// 256 MiB with a 64 MiB direct map: NORMAL holds under 48 MiB, UNMAPPED 192.
fn small_lowmem(body: fn(&mut Vm) -> Check) -> Outcome {
    with_vm(Opts::default().mem("256M").cmdline("mm.lowmem=64M"), body)
}

/// The first line of `out` starting with `#`.
fn handle_line(out: &str) -> Result<String, String> {
    out.lines()
        .find(|l| l.starts_with('#'))
        .map(String::from)
        .ok_or_else(|| format!("no handle line in:\n{out}"))
}

fn hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("{s}: {e}"))
}

/// `total=` of the `zone ZONE:` line of `memstat`, in bytes.
fn zone_total(memstat: &str, zone: &str) -> Result<u64, String> {
    memstat
        .lines()
        .find(|l| l.starts_with(&format!("zone {zone}:")))
        .and_then(|l| field(l, "total"))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {zone} total in:\n{memstat}"))
}

fn vmalloc_beyond_normal_uses_unmapped_frames(vm: &mut Vm) -> Check {
    let boot = vm.ok("memstat")?;
    let normal = zone_total(&boot, "NORMAL")?;
    let size = normal + (16 << 20);
    let out = vm.ok(&format!("vmalloc {size}"))?;
    let h = handle_line(&out)?;
    ensure(h.starts_with("#1 vmalloc"), || out.clone())?;
    let virt = hex(field(&h, "virt").ok_or("no virt")?)?;
    let pages: u64 = field(&h, "pages")
        .ok_or("no pages")?
        .parse()
        .map_err(|_| "pages")?;
    ensure(pages == size.div_ceil(4096), || h.clone())?;
    ensure(out.contains(&format!("UNMAPPED={pages} ")), || {
        format!("not all frames from UNMAPPED:\n{out}")
    })?;
    let last = virt + pages * 4096 - 4096;
    for a in [virt, last] {
        let p = vm.ok(&format!("vmalloc_to_page {a:#x}"))?;
        ensure(p.contains("zone=UNMAPPED"), || p.clone())?;
        vm.ok(&format!("fill {a:#x} 4096 0x5a"))?;
        let d = vm.ok(&format!("peek {:#x} 16", a + 4080))?;
        ensure(d.matches(" 5a").count() == 16, || d.clone())?;
    }
    // The guard page: one recovered fault that says where the walk stops.
    let guard = last + 4096;
    let e = vm.err(&format!("peek {guard:#x} 8"), "page fault")?;
    ensure(
        e.contains(&format!("{guard:#018x}"))
            && e.contains("page not present, read, kernel mode")
            && e.contains("walk: PT entry not present"),
        || e.clone(),
    )?;
    vm.err(&format!("writel {guard:#x} 1"), "page not present, write")?;
    // The shell is still there, and the area is intact.
    let d = vm.ok(&format!("peek {virt:#x} 4"))?;
    ensure(d.contains("5a 5a 5a 5a"), || d.clone())?;
    let info = vm.ok("vmallocinfo")?;
    ensure(
        info.contains(&format!("pages={pages} vmalloc #1")) && info.contains("VmallocUsed"),
        || info.clone(),
    )?;
    let map = vm.ok("map")?;
    ensure(
        map.contains("  area ") && map.contains("vmalloc shell pages="),
        || map.clone(),
    )?;
    vm.ok("free all")?;
    let after = vm.ok("memstat")?;
    ensure(after == boot, || format!("boot:\n{boot}\nafter:\n{after}"))
}

fn vfree_misuse_is_one_error_each(vm: &mut Vm) -> Check {
    let boot = vm.ok("memstat")?;
    let h = handle_line(&vm.ok("vzalloc 12K")?)?;
    let virt = hex(field(&h, "virt").ok_or("no virt")?)?;
    let d = vm.ok(&format!("peek {:#x} 16", virt + 8192))?;
    ensure(d.matches(" 00").count() == 16, || d.clone())?;
    vm.err(&format!("vfree {:#x}", virt + 4096), "inside the area")?;
    vm.err(&format!("vfree {:#x}", virt + 3 * 4096), "guard page")?;
    vm.err("vfree 0xffffc0000ff00000", "not a live vmalloc area")?;
    vm.err("vfree 0xffff800000100000", "not in the vmalloc range")?;
    vm.err("vfree #1 extra", "")?;
    vm.err("vmalloc 0", "size 0 out of range")?;
    vm.err("vmalloc 0x400000000000", "out of range")?; // 64 TiB: more than the range
    vm.err("vmalloc 4G", "out of memory")?;
    // 16 TiB fits the range, but its page array (16 GiB) does not fit the heap.
    vm.err("vmalloc 0x100000000000", "no heap for a page array")?;
    let mid = vm.ok("memstat")?;
    ensure(mid != boot, || "the area takes memory".into())?;
    let f = vm.ok("vfree #1")?;
    ensure(f.contains("retired #1"), || f.clone())?;
    vm.err(
        &format!("vfree {virt:#x}"),
        "never allocated or freed already",
    )?;
    vm.err("free #1", "freed")?;
    vm.ok("free all")?; // gives the caches' empty slabs back too
    let after = vm.ok("memstat")?;
    ensure(after == boot, || format!("boot:\n{boot}\nafter:\n{after}"))
}

fn ioremap_local_apic_and_refusals(vm: &mut Vm) -> Check {
    let boot = vm.ok("memstat")?;
    let h = handle_line(&vm.ok("ioremap 0xfee00000 4096")?)?;
    ensure(h.contains("cache=UC"), || h.clone())?;
    let virt = hex(field(&h, "virt").ok_or("no virt")?)?;
    ensure(virt >> 40 == 0x00ff_ffe0, || h.clone())?;
    let through = vm.ok(&format!("readl {:#x}", virt + 0x30))?;
    let direct = vm.ok(&format!("readl {:#x}", LAPIC_DIRECT + 0x30))?;
    let value = |s: &str| s.rsplit(" = ").next().map(|v| v.trim().to_string());
    ensure(
        value(&through) == value(&direct) && value(&through) != Some("0x00000000".into()),
        || format!("ioremap {through} direct {direct}"),
    )?;
    // The version register's low byte: 0x1X for an integrated APIC.
    let v = hex(&value(&through).unwrap_or_default())?;
    ensure(v & 0xf0 == 0x10, || format!("APIC version {v:#x}"))?;
    // The kernel maps the local APIC uncached: a write-combining request of
    // its page gets uncached (one memory type per page, as Linux's PAT).
    let w = handle_line(&vm.ok("ioremap 0xfee00030 4 wc")?)?;
    let wv = hex(field(&w, "virt").ok_or("no virt")?)?;
    ensure(wv & 0xfff == 0x30 && w.contains("cache=UC"), || w.clone())?;
    let info = vm.ok("vmallocinfo")?;
    ensure(
        info.contains("phys=0x00000000fee00000 ioremap #1")
            && info.contains("phys=0x00000000fee00000 ioremap #2"),
        || info.clone(),
    )?;
    vm.err("ioremap 0x100000 4096", "is RAM")?;
    vm.err("ioremap 0xfee00000 0", "size 0")?;
    vm.err("ioremap 0xfee00000 16 xx", "expected wc")?;
    vm.err(&format!("iounmap {:#x}", wv & !0xfff), "not the start")?;
    vm.err(&format!("vfree {wv:#x}"), "free it with iounmap")?;
    vm.ok(&format!("iounmap {wv:#x}"))?;
    vm.err(&format!("peek {wv:#x} 4"), "walk: PT entry not present")?;
    vm.ok("free all")?;
    let after = vm.ok("memstat")?;
    ensure(after == boot, || format!("boot:\n{boot}\nafter:\n{after}"))
}

fn fault_messages_name_the_walk_stop(vm: &mut Vm) -> Check {
    // Past the direct map of 2 GiB: no PDPT there.
    vm.err(
        "peek 0xffff900000000000 8",
        "page not present, read, kernel mode; walk: PML4 entry not present",
    )?;
    // The vmalloc range has its PDPT from boot (shared by every address
    // space), nothing below it yet.
    vm.err(
        "fill 0xffffc00000000000 16 1 force",
        "page not present, write, kernel mode; walk: PDPT entry not present",
    )?;
    // dump/bzero through a mapping handle whose page was unmapped behind it.
    vm.ok("pages 1")?;
    vm.ok("map 0xffffe20000000000 #1 4096")?;
    vm.ok("unmap 0xffffe20000000000 4096")?;
    vm.err("dump #2", "page fault at 0xffffe20000000000")?;
    vm.err("bzero #2", "page not present, write, kernel mode; walk: ")?;
    // A write to kernel text: a present page, read-only.
    vm.err(
        "poke 0xffffffff80200000 0x90 force",
        "protection violation, write, kernel mode; walk: mapped by a present 4 KiB page",
    )?;
    vm.ok("free all")?;
    Ok(())
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![
        vmalloc_beyond_normal_uses_unmapped_frames with small_lowmem,
        vfree_misuse_is_one_error_each with small_lowmem,
        ioremap_local_apic_and_refusals with |b| with_vm(Opts::default(), b),
        fault_messages_name_the_walk_stop with |b| with_vm(Opts::default(), b),
    ]
}
