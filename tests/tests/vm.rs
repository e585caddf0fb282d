//! Serial tests of the page tables on the real kernel: a second mapping of a
//! page (writes through one, reads through the other, with `bzero`, `bcopy`
//! and `dump` on the handles), a remap seen at once (the flush happened), a
//! read of an unmapped page recovered as one error, `walk`, `wx`, address
//! spaces with the MOS functions and reference counts, the protected ranges,
//! `bench map`, and `free all` back to the boot `memstat`.

use systest::*;

/// Unused kernel space (after the ioremap range) where the tests map.
const V: u64 = 0xffff_e200_0000_0000;

/// The first line of `out` starting with `#`.
fn handle_line(out: &str) -> Result<String, String> {
    out.lines()
        .find(|l| l.starts_with('#'))
        .map(String::from)
        .ok_or_else(|| format!("no handle line in:\n{out}"))
}

/// The bytes of a `dump` (all its hex lines).
fn bytes(out: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .flat_map(|l| {
            l.get(10..58)
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn second_mapping_and_remap(vm: &mut Vm) -> Check {
    let boot = vm.ok("memstat")?;
    vm.ok("pages 1")?; // #1
    vm.ok("pages 1")?; // #2
    let p2 = handle_line(vm.ok("handles")?.lines().nth(1).unwrap_or(""))?;
    let phys2 = field(&p2, "phys").ok_or("no phys")?.to_string();
    // Kernel text, mapped read-only at a second address: known non-zero bytes.
    let text = vm.ok(&format!("map {:#x} 0x200000 4096 ro", V + 0x10000))?; // #3
    ensure(
        text.starts_with("#3 mapping") && text.contains("flags=r "),
        || text.clone(),
    )?;
    vm.ok("bcopy #3 #1 64")?;
    vm.ok("bzero #2")?;
    let m = vm.ok(&format!("map {V:#x} #1 4096"))?; // #4
    ensure(m.starts_with("#4 mapping"), || m.clone())?;
    // Read through the second address: the bytes written through the first.
    let through = bytes(&vm.ok("dump #4 0 32")?);
    let direct = bytes(&vm.ok("dump #1 0 32")?);
    let kernel = bytes(&vm.ok("dump #3 0 32")?);
    ensure(
        through == direct && direct == kernel && through.iter().any(|b| b != "00"),
        || format!("mapping {through:?} direct {direct:?} text {kernel:?}"),
    )?;
    // Write through the second address, read through the first.
    vm.ok("bzero #4 0 16")?;
    let direct = bytes(&vm.ok("dump #1 0 16")?);
    ensure(direct.iter().all(|b| b == "00"), || format!("{direct:?}"))?;
    // Remap the address to frame #2 (zeroed): the new bytes at once.
    vm.ok("dump #4 16 16")?; // the old translation is in the TLB now
    vm.ok("free #4")?;
    vm.ok(&format!("map {V:#x} {phys2} 4096"))?; // #5
    let now = bytes(&vm.ok("dump #5 16 16")?);
    ensure(now.iter().all(|b| b == "00"), || {
        format!("stale translation after remap: {now:?}")
    })?;
    vm.ok("free all")?;
    let after = vm.ok("memstat")?;
    ensure(after == boot, || {
        format!("boot:\n{boot}\nafter free all:\n{after}")
    })
}

fn unmap_then_read_is_one_recovered_fault(vm: &mut Vm) -> Check {
    let boot = vm.ok("memstat")?;
    vm.ok("pages 2")?;
    vm.ok(&format!("map {V:#x} #1 8192"))?;
    vm.ok("dump #2 4096 16")?;
    vm.ok(&format!("unmap {:#x} 4096", V + 4096))?;
    vm.err("dump #2 4096 16", &format!("{:#x}", V + 4096))?;
    vm.ok("dump #2 0 16")?;
    let v = vm.ok("version")?;
    ensure(!v.contains("tainted"), || v)?;
    vm.ok("free all")?;
    let after = vm.ok("memstat")?;
    ensure(after == boot, || format!("boot:\n{boot}\nafter:\n{after}"))
}

fn walk_direct_map_text_and_nothing(vm: &mut Vm) -> Check {
    let w = vm.ok("walk 0xffff800000400000")?;
    ensure(
        w.contains("PD  [  2]")
            && w.contains("HUGE_PAGE")
            && w.contains("2 MiB page, physical 0x0000000000400000"),
        || w.clone(),
    )?;
    let w = vm.ok("walk 0xffffffff80200000")?;
    ensure(
        w.contains("PT  [  0]")
            && w.contains("4 KiB page, physical 0x0000000000200000")
            && !w.lines().nth(4).unwrap_or("").contains("NO_EXECUTE"),
        || w.clone(),
    )?;
    let w = vm.ok("walk 0x1000")?;
    ensure(w.contains("not present at PML4"), || w.clone())?;
    let w = vm.ok("walk 0xfffffe0000000000")?;
    ensure(w.contains("not present at PT"), || w)
}

fn wx_finds_nothing(vm: &mut Vm) -> Check {
    let out = vm.ok("wx")?;
    ensure(
        out.contains("no W+X pages, no user pages in the kernel half"),
        || out,
    )
}

fn aspace_insert_lookup_remove(vm: &mut Vm) -> Check {
    let boot = vm.ok("memstat")?;
    let p = vm.ok("page_alloc")?;
    let pfn = field(&p, "pfn").ok_or("no pfn")?.to_string();
    vm.ok("aspace new")?;
    vm.err("pgdir_walk 0x400000 create", "only in an address space")?;
    vm.ok("aspace use #2")?;
    let i = vm.ok("insert #1 0x400000")?;
    ensure(i.contains(&format!("pfn {pfn} refcount=2")), || i.clone())?;
    let l = vm.ok("lookup 0x400000")?;
    ensure(l.contains(&format!("-> pfn {pfn} (4 KiB page)")), || {
        l.clone()
    })?;
    let w = vm.ok("walk 0x400000")?;
    ensure(w.contains("PAGE_REF") && w.contains("4 KiB page"), || {
        w.clone()
    })?;
    let e = vm.ok("pgdir_walk 0x400000")?;
    ensure(
        e.contains(" = 0x8") && e.trim_end().ends_with(" rw"),
        || e.clone(),
    )?;
    let r = vm.ok("remove 0x400000")?;
    ensure(r.contains(&format!("pfn {pfn} refcount=1")), || r.clone())?;
    // The tables emptied by the remove were freed.
    let e = vm.ok("pgdir_walk 0x400000")?;
    ensure(e.contains("no page table in aspace"), || e.clone())?;
    let c = vm.ok("pgdir_walk 0x7f0000200000 create")?;
    ensure(c.trim_end().ends_with("(not present)"), || c.clone())?;
    vm.ok("insert #1 0x7f0000001000")?;
    let pg = vm.ok(&format!("page {pfn}"))?;
    ensure(pg.contains("refcount=2"), || pg.clone())?;
    vm.err("free #2", "#4 is mapped in this address space")?;
    vm.ok("free #4")?; // page_remove: drops the reference
    let pg = vm.ok(&format!("page {pfn}"))?;
    ensure(pg.contains("refcount=1"), || pg.clone())?;
    vm.ok("free all")?;
    let after = vm.ok("memstat")?;
    ensure(after == boot, || format!("boot:\n{boot}\nafter:\n{after}"))
}

fn protected_ranges_and_misuse(vm: &mut Vm) -> Check {
    vm.ok("pages 1")?;
    vm.err("map 0xffff800001000000 #1 4096", "direct map")?;
    vm.err("map 0xffffffff80200000 #1 4096", "kernel image")?;
    vm.err("map 0xffffc00000000000 #1 4096", "vfree")?;
    vm.err("map 0xffffe00000000000 #1 4096", "iounmap")?;
    vm.err("map 0xfffffe0000000000 #1 4096", "temporary window")?;
    vm.err("unmap 0xffffffff80200000 4096", "kernel image")?;
    vm.err("unmap 0xffff800000000000 0x200000", "direct map")?;
    vm.err(
        &format!("map {V:#x} 0x200000 4096"),
        "not one of the shell's pages",
    )?;
    vm.err(
        &format!("map {V:#x} #1 4096 rwx"),
        "writable and executable",
    )?;
    vm.err(&format!("map {:#x} #1 4096", V + 1), "not aligned")?;
    vm.err("map 0x0000800000000000 #1 4096", "canonical")?;
    vm.ok(&format!("map {V:#x} #1 4096"))?;
    vm.err(&format!("map {V:#x} #1 4096"), "overlaps")?;
    vm.ok("wx")?;
    vm.ok("free all")?;
    Ok(())
}

fn map_dump_and_bench(vm: &mut Vm) -> Check {
    let boot = vm.ok("memstat")?;
    vm.ok("pages 1")?;
    vm.ok(&format!("map {V:#x} #1 4096"))?;
    let d = vm.ok("map")?;
    for want in [
        "---[ direct map",
        "RAM",
        "kernel text",
        "kernel rodata",
        "kernel data+bss",
        "---[ temporary window",
        "#2",
    ] {
        ensure(d.contains(want), || format!("no {want:?} in:\n{d}"))?;
    }
    let b = vm.ok("bench map 2000")?;
    println!("{b}");
    ensure(
        b.contains("map+unmap 4 KiB") && b.contains("full flush"),
        || b.clone(),
    )?;
    vm.ok("free all")?;
    let after = vm.ok("memstat")?;
    ensure(after == boot, || format!("boot:\n{boot}\nafter:\n{after}"))
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![
        second_mapping_and_remap with |b| with_vm(Opts::default(), b),
        unmap_then_read_is_one_recovered_fault with |b| with_vm(Opts::default(), b),
        walk_direct_map_text_and_nothing with |b| with_vm(Opts::default(), b),
        wx_finds_nothing with |b| with_vm(Opts::default(), b),
        aspace_insert_lookup_remove with |b| with_vm(Opts::default(), b),
        protected_ranges_and_misuse with |b| with_vm(Opts::default(), b),
        map_dump_and_bench with |b| with_vm(Opts::default(), b),
    ]
}
