//! The I/O commands on the simulated machine (see `common/machine.rs`): the
//! resource trees and their /proc formats, request/release and their handles,
//! the port commands against the fake devices (fw_cfg, a latch), MMIO and raw
//! access with simulated faults, the write refusals and `force`, and every
//! misuse answered with exactly one `error:` line.

mod common;

use common::{field, hex, last_call, machine, mem_map, one, poison, run, Machine, DIRECT_MAP};
use shell::Shell;

const KERNEL_VIRT: u64 = mm::layout::KERNEL_BASE + 0x100000;

fn err(sh: &mut Shell, k: &mut Machine<'_>, line: &str) -> String {
    let l = one(sh, k, line);
    assert!(l.starts_with("error: "), "{line}: {l}");
    l
}

#[test]
fn regions_prints_iomem_then_ioports_in_proc_format() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let out = run(&mut sh, &mut k, "regions");
    assert_eq!(
        out,
        [
            "iomem:",
            "00001000-0009efff : System RAM",
            "00100000-03efffff : System RAM",
            "  00100000-002fffff : Kernel code",
            "ioports:",
            "0020-0021 : pic1",
            "0040-0043 : timer0",
            "0060-0060 : keyboard",
            "0064-0064 : keyboard",
            "00a0-00a1 : pic2",
            "03f8-03ff : serial",
        ]
    );
    assert_eq!(run(&mut sh, &mut k, "regions io").len(), 6);
    err(&mut sh, &mut k, "regions disk");
}

#[test]
fn request_gives_a_handle_that_free_releases() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let l = one(&mut sh, &mut k, "request io 0x510 2 fw_cfg");
    assert_eq!(l, "#1 region io port=0x0510 size=2 name=fw_cfg");
    assert_eq!(last_call(&k), "request_region(0x510, 2, fw_cfg)");
    let l = one(&mut sh, &mut k, "request mem 0xfed00000 0x1000 hpet");
    assert_eq!(
        l,
        "#2 region mem phys=0x00000000fed00000 size=4096 name=hpet"
    );
    let rows = run(&mut sh, &mut k, "regions mem");
    assert_eq!(rows.last().unwrap(), "fed00000-fed00fff : hpet");
    // System RAM is busy, as in Linux: drivers cannot claim RAM.
    let e = err(&mut sh, &mut k, "request mem 0x400000 0x1000 ram");
    assert_eq!(
        e,
        "error: mem range conflicts with 00100000-03efffff : System RAM"
    );
    // Conflicts name the resource in the way.
    let e = err(&mut sh, &mut k, "request io 0x511 4 other");
    assert_eq!(e, "error: io range conflicts with 0510-0511 : fw_cfg");
    let e = err(&mut sh, &mut k, "request io 0x3f8 1 mine");
    assert_eq!(e, "error: io range conflicts with 03f8-03ff : serial");
    err(&mut sh, &mut k, "request mem 0xfecff000 0x2000 straddles");
    assert!(one(&mut sh, &mut k, "check").starts_with("check: ok"));
    assert_eq!(
        one(&mut sh, &mut k, "free #1"),
        "freed #1 region io port=0x0510 size=2 name=fw_cfg"
    );
    assert_eq!(last_call(&k), "release_region(0x510, 2)");
    // Releasing a requested region by its range releases its handle with it
    // (no handle outlives its region: check mode would say so).
    assert_eq!(
        one(&mut sh, &mut k, "release mem 0xfed00000 0x1000"),
        "release_mem_region(0xfed00000, 4096) done, #2 freed"
    );
    assert!(one(&mut sh, &mut k, "check").starts_with("check: ok"));
    err(&mut sh, &mut k, "free #2");
    err(&mut sh, &mut k, "release mem 0xfed00000 0x1000");
    let e = err(&mut sh, &mut k, "release io 0x3f8 8");
    assert!(e.contains("serial is the kernel's own"), "{e}");
}

#[test]
fn free_all_restores_the_trees_and_memstat() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let regions = run(&mut sh, &mut k, "regions");
    let stat = run(&mut sh, &mut k, "memstat");
    for i in 0..20u64 {
        one(
            &mut sh,
            &mut k,
            &format!("request io {} 1 r{i}", 0x1000 + i),
        );
        one(
            &mut sh,
            &mut k,
            &format!("request mem {} 4096 m{i}", 0xfed00000u64 + i * 4096),
        );
    }
    one(&mut sh, &mut k, "kmalloc 80");
    let out = run(&mut sh, &mut k, "free all");
    assert_eq!(out.last().unwrap(), "freed 41 handles");
    assert_eq!(run(&mut sh, &mut k, "regions"), regions);
    assert_eq!(run(&mut sh, &mut k, "memstat"), stat);
}

#[test]
fn port_commands_reach_the_fake_devices() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    assert_eq!(
        one(&mut sh, &mut k, "outw 0x510 0"),
        "outw(0x0, 0x0510) done"
    );
    let out = run(&mut sh, &mut k, "insb 0x511 4");
    assert_eq!(out[0], "insb(0x0511, 4): 4 bytes");
    assert!(out[1].ends_with("|QEMU|"), "{out:?}");
    assert_eq!(
        one(&mut sh, &mut k, "outb 0x80 0x5a"),
        "outb(0x5a, 0x0080) done"
    );
    assert_eq!(one(&mut sh, &mut k, "inb 0x80"), "inb(0x0080) = 0x5a");
    assert_eq!(one(&mut sh, &mut k, "inw 0x1234"), "inw(0x1234) = 0xffff");
    assert_eq!(
        one(&mut sh, &mut k, "inl 0x1234"),
        "inl(0x1234) = 0xffffffff"
    );
    one(&mut sh, &mut k, "outsb 0x80 1 2 3");
    assert_eq!(k.ports.latch, 3);
    one(&mut sh, &mut k, "outsl 0x1000 0x11223344 5");
    assert_eq!(
        &k.ports.written[k.ports.written.len() - 2..],
        &[(0x1000, 4, 0x11223344), (0x1000, 4, 5)]
    );
    let out = run(&mut sh, &mut k, "insw 0x80 2");
    assert_eq!(out[1].split_whitespace().nth(1), Some("03"));
}

#[test]
fn port_writes_to_the_kernels_ports_need_force() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let n = k.ports.written.len();
    let e = err(&mut sh, &mut k, "outb 0x3f8 0x41");
    assert_eq!(
        e,
        "error: refusing to write port 0x3f8: it is 'serial' (io 03f8-03ff), the kernel's own; \
         add 'force' to write anyway"
    );
    let e = err(&mut sh, &mut k, "outw 0x1f 0");
    assert!(e.contains("'pic1'"), "{e}");
    err(&mut sh, &mut k, "outsb 0xa1 1 2");
    assert_eq!(k.ports.written.len(), n, "nothing was written");
    one(&mut sh, &mut k, "outb 0x3f8 0x41 force");
    assert_eq!(k.ports.written.last(), Some(&(0x3f8, 1, 0x41)));
    // The timer and keyboard are registered but not protected.
    one(&mut sh, &mut k, "outb 0x43 0x34");
}

#[test]
fn port_misuse_is_one_error_line() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    for line in [
        "inb",
        "inb 0x10000",
        "inw 0xffff",
        "inl 0xfffd",
        "inb zz",
        "outb 0x80",
        "outb 0x80 0x100",
        "outw 0x80 0x10000",
        "outb 0x80 1 2",
        "outb 0x80 1 forced",
        "insb 0x80",
        "insb 0x80 0",
        "insb 0x80 257",
        "insl 0xfffe 1",
        "outsb 0x80",
        "outsb 0x80 force",
        "outsw 0x80 0x10000",
        "request",
        "request io",
        "request disk 0 1 x",
        "request io 0 0 x",
        "request io 0xffff 2 x",
        "request io 0x100 1",
        "request io 0x100 1 this-name-is-much-too-long-for-a-region",
        "request mem 0x10000000000000 1 x",
        "release io 0x100 1",
        "release io 0x100",
        "release io 0x100 1 extra",
    ] {
        err(&mut sh, &mut k, line);
    }
    assert!(k.ports.written.is_empty());
    assert_eq!(run(&mut sh, &mut k, "handles"), ["no live handles"]);
}

#[test]
fn mmio_and_raw_access_on_the_direct_map() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    // A block of our own: writes need no force.
    let l = one(&mut sh, &mut k, "pages 1 NORMAL");
    let virt = hex(field(&l, "virt"));
    let phys = hex(field(&l, "phys"));
    one(&mut sh, &mut k, &format!("writel {virt:#x} 0x11223344"));
    assert_eq!(
        one(&mut sh, &mut k, &format!("readl {virt:#x}")),
        format!("readl({virt:#018x}) = 0x11223344")
    );
    assert_eq!(
        one(&mut sh, &mut k, &format!("readb {:#x}", virt + 3)),
        format!("readb({:#018x}) = 0x11", virt + 3)
    );
    one(
        &mut sh,
        &mut k,
        &format!("writeq {virt:#x} 0x0102030405060708"),
    );
    assert_eq!(
        one(&mut sh, &mut k, &format!("readq {virt:#x}")),
        format!("readq({virt:#018x}) = 0x0102030405060708")
    );
    one(&mut sh, &mut k, &format!("writew {virt:#x} 0xbeef"));
    assert!(one(&mut sh, &mut k, &format!("readw {virt:#x}")).ends_with("= 0xbeef"));
    assert_eq!(
        one(&mut sh, &mut k, &format!("poke {:#x} 0x4142", virt + 16)),
        format!("poked 0x4142 (2 bytes) at {:#018x}", virt + 16)
    );
    one(&mut sh, &mut k, &format!("poke {:#x} 0x43 1", virt + 18));
    let out = run(&mut sh, &mut k, &format!("peek {:#x} 32", virt));
    assert_eq!(out[0], format!("peek virt={virt:#018x} len=32"));
    assert!(out[2].starts_with("00000010  42 41 43 "), "{out:?}");
    one(&mut sh, &mut k, &format!("fill {:#x} 100 0x7e", virt + 100));
    let mut b = [0u8; 100];
    mm::PhysMem::read(&k.mem, phys + 100, &mut b);
    assert!(b.iter().all(|&x| x == 0x7e));
    one(
        &mut sh,
        &mut k,
        &format!("copy {:#x} {:#x} 100", virt + 1000, virt + 100),
    );
    mm::PhysMem::read(&k.mem, phys + 1000, &mut b);
    assert!(b.iter().all(|&x| x == 0x7e));
    assert_eq!(
        last_call(&k),
        format!("copy({:#x}, {:#x}, 100)", virt + 1000, virt + 100)
    );
    // Reading anything mapped needs nothing: free memory shows its poison.
    let out = run(
        &mut sh,
        &mut k,
        &format!("peek {:#x} 1", DIRECT_MAP + 0x1000000),
    );
    assert!(
        out[1].contains(&format!(" {:02x} ", poison(0x1000000))),
        "{out:?}"
    );
    // The kernel image through its own mapping.
    let out = run(&mut sh, &mut k, &format!("readb {KERNEL_VIRT:#x}"));
    assert_eq!(
        out[0],
        format!("readb({KERNEL_VIRT:#018x}) = {:#04x}", poison(0x100000))
    );
}

#[test]
fn faults_become_one_decoded_error_line_and_the_shell_goes_on() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let e = err(&mut sh, &mut k, "peek 0xffff900000000000");
    assert_eq!(
        e,
        "error: page fault at 0xffff900000000000: page not present, read, kernel mode; \
         walk: PML4 entry not present"
    );
    let e = err(&mut sh, &mut k, "writel 0xffff900000000000 1");
    assert_eq!(
        e,
        "error: page fault at 0xffff900000000000: page not present, write, kernel mode; \
         walk: PML4 entry not present"
    );
    let e = err(&mut sh, &mut k, "readq 0x8000000000000000");
    assert!(
        e.starts_with("error: general protection fault at 0x8000000000000000"),
        "{e}"
    );
    // A range running off the end of the direct map faults at its first
    // unmapped byte.
    let end = DIRECT_MAP + (32 << 20);
    let e = err(&mut sh, &mut k, &format!("peek {:#x} 32", end - 16));
    assert!(e.contains(&format!("at {end:#018x}")), "{e}");
    err(&mut sh, &mut k, "fill 0xffff900000000000 16 0 force");
    err(
        &mut sh,
        &mut k,
        &format!(
            "copy {:#x} 0xffff900000000000 16 force",
            DIRECT_MAP + 0x1000000
        ),
    );
    assert_eq!(one(&mut sh, &mut k, "echo alive"), "alive");
}

#[test]
fn writes_into_what_the_kernel_owns_need_force() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    // The kernel image, through both of its mappings.
    let e = err(&mut sh, &mut k, &format!("poke {KERNEL_VIRT:#x} 1"));
    assert_eq!(
        e,
        format!(
            "error: refusing to write {KERNEL_VIRT:#018x}: it is 'Kernel code' (mem \
             00100000-002fffff), the kernel's own; add 'force' to write anyway"
        )
    );
    err(
        &mut sh,
        &mut k,
        &format!("fill {:#x} 16 0", DIRECT_MAP + 0x200000),
    );
    // A range that only ends in the image.
    err(
        &mut sh,
        &mut k,
        &format!("fill {:#x} 0x2000 0", DIRECT_MAP + 0xff000),
    );
    // Slab pages outside the user's objects, and blocks without a handle.
    let l = one(&mut sh, &mut k, "kmalloc 64");
    let obj = hex(field(&l, "virt"));
    one(&mut sh, &mut k, &format!("fill {obj:#x} 64 0xaa"));
    let e = err(&mut sh, &mut k, &format!("fill {obj:#x} 65 0xaa"));
    assert!(e.contains("a slab page of the kernel heap"), "{e}");
    let l = one(&mut sh, &mut k, "pages 2 NORMAL");
    let virt = hex(field(&l, "virt"));
    one(&mut sh, &mut k, "free #2");
    one(&mut sh, &mut k, &format!("writeb {virt:#x} 1"));
    // Free memory may be written; allocated memory without a handle may not.
    let pfn =
        k.b.alloc_pages_zone(mm::Zone::Normal, 1, mm::PageFlags::EMPTY)
            .unwrap();
    let e = err(
        &mut sh,
        &mut k,
        &format!("writeb {:#x} 1", DIRECT_MAP + pfn.phys()),
    );
    assert!(e.contains("allocated by someone else"), "{e}");
    // Reserved RAM that is not a registered resource: the low 4 KiB hole is not
    // RAM here, so take a reserved frame by hand.
    // Forced, a write reaches kernel data; kernel text is read-only in the
    // page tables (CR0.WP), so even a forced write faults there.
    let data = KERNEL_VIRT + 0x180000;
    let calls = k.calls.len();
    one(&mut sh, &mut k, &format!("poke {data:#x} 0x99 force"));
    assert_eq!(k.calls.len(), calls + 1);
    assert_eq!(
        one(&mut sh, &mut k, &format!("readb {data:#x}")),
        format!("readb({data:#018x}) = 0x99")
    );
    let e = err(
        &mut sh,
        &mut k,
        &format!("poke {KERNEL_VIRT:#x} 0x99 force"),
    );
    assert_eq!(
        e,
        format!(
            "error: page fault at {KERNEL_VIRT:#018x}: protection violation, write, kernel mode; \
             walk: mapped by a present 4 KiB page (phys 0x100000, rx,global)"
        )
    );
}

#[test]
fn raw_misuse_is_one_error_line() {
    let mut map = mem_map();
    let (mut sh, mut k) = machine(&mut map);
    let d = DIRECT_MAP + 0x1000000;
    for line in [
        "peek".to_string(),
        "peek zz".into(),
        format!("peek {d:#x} 0"),
        format!("peek {d:#x} 257"),
        "peek 0xfffffffffffffff0 32".into(),
        "poke".into(),
        format!("poke {d:#x}"),
        format!("poke {d:#x} 1 3"),
        format!("poke {d:#x} 0x100 1"),
        format!("poke {d:#x} 1 1 2"),
        "readb".into(),
        "readq 0xfffffffffffffffc".into(),
        format!("writeb {d:#x}"),
        format!("writeb {d:#x} 0x100"),
        format!("writew {d:#x} 1 strong"),
        format!("fill {d:#x}"),
        format!("fill {d:#x} 0 1"),
        format!("fill {d:#x} 0x100001 1"),
        format!("fill {d:#x} 1 0x100"),
        format!("copy {d:#x} {d:#x}"),
        format!("copy {d:#x} 0xfffffffffffffff0 32 force"),
    ] {
        err(&mut sh, &mut k, &line);
    }
    assert!(!k
        .calls
        .iter()
        .any(|c| c.starts_with("write") || c.starts_with("fill")));
}
