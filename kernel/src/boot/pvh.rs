//! Xen PVH boot: how QEMU (`-kernel`) and Firecracker-style VMMs start memkern.
//!
//! The VMM loads the ELF by physical address and jumps to the address in the
//! `XEN_ELFNOTE_PHYS32_ENTRY` note in 32-bit protected mode, paging off, with
//! `ebx` = physical address of `hvm_start_info`. The stub below builds temporary
//! page tables (identity + direct map of the first 4 GiB at `DIRECT_MAP_BASE`, and
//! the first 1 GiB at `KERNEL_BASE` for the image), enters long mode and calls
//! [`pvh_main`] on the boot stack. `pvh_main` turns the start info into a
//! [`BootInfo`]. The addresses and table slots come from `mm::layout`, as `const`
//! operands of the assembly.

use super::{BootInfo, BootPath, MemKind, MemRegion, MemoryMap};
use core::arch::global_asm;
use mm::layout::{pdpt_index, pml4_index, DIRECT_MAP_BASE, KERNEL_BASE, KERNEL_LOAD_PHYS};

// What the stub's tables assume: the direct map starts a PML4 slot (its PDPT maps
// 0..4 GiB from entry 0), and the image lies in the first 1 GiB above a 1 GiB
// aligned KERNEL_BASE (one PD of 2 MiB pages).
const _: () = assert!(DIRECT_MAP_BASE.is_multiple_of(512 << 30));
const _: () = assert!(KERNEL_BASE.is_multiple_of(1 << 30) && KERNEL_LOAD_PHYS < 1 << 30);

global_asm!(
    r#"
    .set KOFF, {kernel_base}

    /* The PVH entry note (type 18 = XEN_ELFNOTE_PHYS32_ENTRY). */
    .pushsection .note.Xen, "a"
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32 - KOFF
    .balign 4
    .popsection

    .pushsection .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov esi, ebx                      /* keep the start-info address */

    /* Zero the 7 page-table pages. */
    mov edi, offset pvh_pml4 - KOFF
    mov ecx, 7 * 1024
    xor eax, eax
    rep stosd

    /* PML4[0] (identity) and PML4[DIRECT_MAP_BASE] -> low PDPT;
       PML4[KERNEL_BASE] -> high PDPT. */
    mov eax, offset pvh_pdpt_low - KOFF
    or eax, 3
    mov [pvh_pml4 - KOFF], eax
    mov [pvh_pml4 - KOFF + {dm_pml4} * 8], eax
    mov eax, offset pvh_pdpt_high - KOFF
    or eax, 3
    mov [pvh_pml4 - KOFF + {k_pml4} * 8], eax

    /* Low PDPT[0..4] -> the four PDs; high PDPT[KERNEL_BASE] -> PD 0 (the image). */
    mov edi, offset pvh_pdpt_low - KOFF
    mov eax, offset pvh_pd - KOFF
    or eax, 3
    mov ecx, 4
1:
    mov [edi], eax
    add edi, 8
    add eax, 4096
    loop 1b
    mov eax, offset pvh_pd - KOFF
    or eax, 3
    mov [pvh_pdpt_high - KOFF + {k_pdpt} * 8], eax

    /* 2048 PD entries of 2 MiB: phys = i << 21, present|writable|huge. */
    mov edi, offset pvh_pd - KOFF
    xor ecx, ecx
2:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [edi + ecx * 8], eax
    mov eax, ecx
    shr eax, 11
    mov [edi + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jne 2b

    /* PAE, then CR3, then EFER.LME|NXE, then paging. */
    mov eax, cr4
    or eax, 1 << 5
    mov cr4, eax
    mov eax, offset pvh_pml4 - KOFF
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, (1 << 8) | (1 << 11)
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | 1
    mov cr0, eax

    lgdt [pvh_gdt_ptr - KOFF]
    push 0x08
    mov eax, offset pvh_long - KOFF
    push eax
    retf

    .code64
pvh_long:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    movabs rax, offset pvh_high
    jmp rax
pvh_high:
    lea rsp, [rip + {stack_top}]
    xor ebp, ebp
    mov edi, esi
    call {pvh_main}
3:
    hlt
    jmp 3b
    .popsection

    .pushsection .rodata.pvh_gdt, "a"
    .balign 16
pvh_gdt:
    .quad 0
    .quad 0x00af9a000000ffff          /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff          /* 0x10: data */
pvh_gdt_end:
pvh_gdt_ptr:
    .word pvh_gdt_end - pvh_gdt - 1
    .long pvh_gdt - KOFF
    .popsection

    .pushsection .bss.pvh_tables, "aw", @nobits
    .balign 4096
pvh_pml4:      .skip 4096
pvh_pdpt_low:  .skip 4096
pvh_pdpt_high: .skip 4096
pvh_pd:        .skip 4 * 4096
    .popsection
    "#,
    kernel_base = const KERNEL_BASE,
    dm_pml4 = const pml4_index(DIRECT_MAP_BASE),
    k_pml4 = const pml4_index(KERNEL_BASE),
    k_pdpt = const pdpt_index(KERNEL_BASE),
    stack_top = sym super::BOOT_STACK_TOP,
    pvh_main = sym pvh_main,
);

/// `struct hvm_start_info` (version 1) from Xen's `arch-x86/hvm/start_info.h`.
#[repr(C)]
#[derive(Clone, Copy)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `struct hvm_memmap_table_entry`: an E820-style entry.
#[repr(C)]
#[derive(Clone, Copy)]
struct HvmMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

const HVM_START_MAGIC: u32 = 0x336e_c578;

/// The 64-bit PVH entry, called by the stub on the boot stack.
extern "C" fn pvh_main(start_info_phys: u32) -> ! {
    crate::early_init();
    let boot = parse_start_info(start_info_phys as u64);
    crate::kmain(boot)
}

/// Reads `T` at physical address `phys` through the stub's direct map.
fn read_phys<T: Copy>(phys: u64) -> T {
    // SAFETY: the PVH stub maps 0..4 GiB at DIRECT_MAP_BASE and the VMM places the
    // start info, memory map and command line in low RAM; read_unaligned copes
    // with any alignment.
    unsafe { core::ptr::read_unaligned((DIRECT_MAP_BASE + phys) as *const T) }
}

fn parse_start_info(phys: u64) -> BootInfo {
    let si: HvmStartInfo = read_phys(phys);
    if si.magic != HVM_START_MAGIC {
        panic!(
            "PVH: bad hvm_start_info magic {:#x} at {:#x}",
            si.magic, phys
        );
    }
    let mut map = MemoryMap::new();
    if si.version >= 1 && si.memmap_paddr != 0 {
        for i in 0..si.memmap_entries as u64 {
            let e: HvmMemmapEntry =
                read_phys(si.memmap_paddr + i * core::mem::size_of::<HvmMemmapEntry>() as u64);
            let kind = match e.kind {
                1 => MemKind::Usable,
                3 => MemKind::AcpiReclaimable,
                4 => MemKind::AcpiNvs,
                5 => MemKind::Bad,
                _ => MemKind::Reserved,
            };
            map.push(MemRegion {
                start: e.addr,
                end: e.addr.saturating_add(e.size),
                kind,
            });
        }
    }
    // What the PVH map does not say: the start info itself, its memory map, the
    // command line. (The kernel image and the stub's tables are reserved by the
    // generic code from the image bounds.)
    let si_size = core::mem::size_of::<HvmStartInfo>() as u64;
    map.reserve(phys, phys + si_size, MemKind::BootReclaimable);
    if si.memmap_paddr != 0 {
        let len = si.memmap_entries as u64 * core::mem::size_of::<HvmMemmapEntry>() as u64;
        map.reserve(
            si.memmap_paddr,
            si.memmap_paddr + len,
            MemKind::BootReclaimable,
        );
    }
    let mut cmdline = heapless_cmdline();
    if si.cmdline_paddr != 0 {
        let mut len = 0u64;
        while len < super::CMDLINE_MAX as u64 {
            let b: u8 = read_phys(si.cmdline_paddr + len);
            if b == 0 {
                break;
            }
            cmdline.push(b);
            len += 1;
        }
        map.reserve(
            si.cmdline_paddr,
            si.cmdline_paddr + len + 1,
            MemKind::BootReclaimable,
        );
    }
    BootInfo {
        path: BootPath::Pvh,
        memory_map: map,
        direct_map_offset: DIRECT_MAP_BASE,
        framebuffer: crate::drivers::bochs_vga::probe(&cmdline),
        cmdline,
        kernel_phys_base: super::kernel_phys_base_linked(),
        kernel_virt_base: super::kernel_virt_base(),
        rsdp: if si.rsdp_paddr != 0 {
            Some(si.rsdp_paddr)
        } else {
            None
        },
    }
}

fn heapless_cmdline() -> super::Cmdline {
    super::Cmdline::new()
}
