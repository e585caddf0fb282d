//! Serial tests of the I/O commands on the real kernel: the resource trees
//! with the kernel's own entries, region conflicts, port I/O against QEMU's
//! fw_cfg, MMIO reads of the local APIC, recovered faults of `peek`, and writes
//! into what the kernel owns refused without `force`.

use systest::*;

const KERNEL_TEXT: u64 = 0xffff_ffff_8020_0000;
const LAPIC: u64 = 0xffff_8000_fee0_0000;

fn q35(body: fn(&mut Vm) -> Check) -> Outcome {
    let o = Opts {
        boot: Boot::PvhQ35,
        ..Opts::default()
    };
    with_vm(o, body)
}

fn io_regions_show_the_kernels_own_entries(vm: &mut Vm) -> Check {
    let out = vm.ok("regions")?;
    for want in [
        "iomem:",
        " : System RAM",
        "  00200000-",
        " : Kernel code",
        " : Kernel rodata",
        " : Kernel data",
        " : Kernel bss",
        " : mem_map",
        " : slab bitmap",
        " : page tables",
        "fec00000-fec003ff : IOAPIC 0",
        "fee00000-fee00fff : Local APIC",
        "ioports:",
        "0020-0021 : pic1",
        "0040-0043 : timer0",
        "0060-0060 : keyboard",
        "0064-0064 : keyboard",
        "00a0-00a1 : pic2",
        "03f8-03ff : serial",
    ] {
        ensure(out.contains(want), || {
            format!("regions lacks {want:?}:\n{out}")
        })?;
    }
    // `%08x-%08x : name`, two spaces per level.
    for l in out.lines().filter(|l| l.contains(" : ")) {
        let body = l.trim_start();
        let indent = l.len() - body.len();
        let (range, _) = body.split_once(" : ").unwrap_or(("", ""));
        let (a, b) = range.split_once('-').unwrap_or(("", ""));
        ensure(
            indent % 2 == 0 && a.len() == b.len() && (a.len() == 4 || a.len() >= 8),
            || format!("not in /proc format: {l:?}"),
        )?;
    }
    Ok(())
}

fn io_region_conflicts_and_free_all(vm: &mut Vm) -> Check {
    let before = vm.ok("memstat")?;
    let regions = vm.ok("regions")?;
    let out = vm.ok("request io 0x510 2 fw_cfg")?;
    ensure(
        out.contains("#1 region io port=0x0510 size=2 name=fw_cfg"),
        || out,
    )?;
    vm.err(
        "request io 0x511 1 again",
        "conflicts with 0510-0511 : fw_cfg",
    )?;
    vm.err(
        "request io 0x3f8 8 mine",
        "conflicts with 03f8-03ff : serial",
    )?;
    vm.err("request mem 0x1000000 4096 ram", ": System RAM")?;
    vm.err("release io 0x20 2", "pic1 is the kernel's own")?;
    vm.err("release io 0x600 1", "no requested io region")?;
    let out = vm.ok("request mem 0xfed00000 0x400 hpet")?;
    ensure(out.contains("#2 region mem"), || out)?;
    let out = vm.ok("regions mem")?;
    ensure(out.contains("fed00000-fed003ff : hpet"), || out)?;
    vm.ok("kmalloc 100")?;
    let out = vm.ok("free all")?;
    ensure(out.contains("freed 3 handles"), || out)?;
    let after = vm.ok("regions")?;
    ensure(after == regions, || {
        format!("regions after free all:\n{after}")
    })?;
    let after = vm.ok("memstat")?;
    ensure(after == before, || {
        format!("memstat changed:\nbefore\n{before}\nafter\n{after}")
    })
}

fn io_fw_cfg_signature_on_q35(vm: &mut Vm) -> Check {
    vm.ok("outw 0x510 0")?;
    let out = vm.ok("insb 0x511 4")?;
    ensure(
        out.contains("51 45 4d 55") && out.contains("|QEMU|"),
        || out,
    )
}

fn io_peek_unmapped_is_one_recovered_fault(vm: &mut Vm) -> Check {
    let clean = vm.ok("version")?;
    vm.err(
        "peek 0xffff900000000000",
        "page fault at 0xffff900000000000: page not present, read, kernel mode",
    )?;
    vm.err(
        "writeq 0xffff900000000000 1 force",
        "page fault at 0xffff900000000000: page not present, write, kernel mode",
    )?;
    vm.err(
        "readl 0x8000000000000000",
        "general protection fault at 0x8000000000000000",
    )?;
    // The temporary window is mapped only on demand.
    vm.err(
        "peek 0xfffffe0000000000 16",
        "page fault at 0xfffffe0000000000",
    )?;
    let out = vm.ok("echo alive")?;
    ensure(out.contains("alive"), || out)?;
    // No report, no oops, no taint.
    let after = vm.ok("version")?;
    ensure(after == clean, || format!("version changed:\n{after}"))
}

fn io_lapic_version_and_kernel_reads(vm: &mut Vm) -> Check {
    // The local APIC is mapped at its direct-map address (uncached).
    let out = vm.ok(&format!("readl {:#x}", LAPIC + 0x30))?;
    let v = out
        .split("= ")
        .nth(1)
        .and_then(|s| num(s.trim()))
        .ok_or_else(|| out.clone())?;
    // Version register: version in bits 0-7 (0x1x for an integrated APIC),
    // max LVT entry in bits 16-23.
    ensure(v & 0xf0 == 0x10 && (v >> 16) & 0xff >= 2, || {
        format!("LAPIC version {v:#x}:\n{out}")
    })?;
    let out = vm.ok(&format!("peek {KERNEL_TEXT:#x} 16"))?;
    ensure(out.contains("peek virt=0xffffffff80200000 len=16"), || out)
}

fn io_writes_into_the_kernel_refused_without_force(vm: &mut Vm) -> Check {
    let before = vm.ok(&format!("peek {KERNEL_TEXT:#x} 16"))?;
    vm.err(
        &format!("poke {KERNEL_TEXT:#x} 0xcc"),
        "it is 'Kernel code' (mem 00200000-",
    )?;
    vm.err(
        &format!("fill {KERNEL_TEXT:#x} 16 0"),
        "add 'force' to write anyway",
    )?;
    let after = vm.ok(&format!("peek {KERNEL_TEXT:#x} 16"))?;
    ensure(before == after, || "the kernel text changed".into())?;
    vm.err(
        "outb 0x3f8 0x41",
        "refusing to write port 0x3f8: it is 'serial'",
    )?;
    vm.err("outb 0x21 0xff", "it is 'pic1'")?;
    // Our own kmalloc object needs no force; its neighbour does.
    let out = vm.ok("kmalloc 64")?;
    let virt = out
        .lines()
        .find_map(|l| field(l, "virt"))
        .and_then(num)
        .ok_or_else(|| out.clone())?;
    vm.ok(&format!("fill {virt:#x} 64 0x5a"))?;
    let out = vm.ok(&format!("peek {virt:#x} 16"))?;
    ensure(out.contains("5a 5a 5a 5a"), || out)?;
    vm.err(
        &format!("fill {virt:#x} 65 0x5a"),
        "a slab page of the kernel heap",
    )?;
    // The port writes to COM1 with force: the scratch register (0x3ff).
    vm.ok("outb 0x3ff 0x42 force")?;
    let out = vm.ok("inb 0x3ff")?;
    ensure(out.contains("inb(0x03ff) = 0x42"), || out)?;
    vm.ok("free all")?;
    Ok(())
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![
        io_regions_show_the_kernels_own_entries with |b| with_vm(Opts::default(), b),
        io_region_conflicts_and_free_all with |b| with_vm(Opts::default(), b),
        io_fw_cfg_signature_on_q35 with q35,
        io_peek_unmapped_is_one_recovered_fault with |b| with_vm(Opts::default(), b),
        io_lapic_version_and_kernel_reads with |b| with_vm(Opts::default(), b),
        io_writes_into_the_kernel_refused_without_force with |b| with_vm(Opts::default(), b),
    ]
}
