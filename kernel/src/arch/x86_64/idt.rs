//! The IDT: a handler for every CPU exception vector, plus the PIC interrupts.
//!
//! A page fault or general-protection fault at an instruction listed in the
//! exception table ([`super::extable`]) is not reported here: the handler records
//! it and resumes at the fixup, so the accessor returns an error to its caller,
//! which may report it ([`report_fault`]). Every other exception is reported on
//! the serial line: vector and name, the error code decoded, RIP, RSP, RFLAGS
//! and, for page faults, CR2. Then:
//! - `#BP` and `#DB` are traps: execution continues after the report;
//! - a fault in kernel code with no fixup is an oops: the general registers are
//!   reported too, the kernel is marked tainted ([`super::recover::taint`]), and
//!   if a shell command is running under [`super::recover::run_protected`] (the
//!   last-resort net) it is abandoned and the shell comes back, unless the
//!   command line says `oops=panic`;
//! - otherwise the machine stops (QEMU exits with the failure status).

use super::{extable, gdt, pic, recover};
use crate::console::emergency_print as eprint;
use core::arch::global_asm;
use spin::Once;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

static IDT: Once<InterruptDescriptorTable> = Once::new();

/// How the handler ends after the report.
#[derive(PartialEq, Eq)]
enum After {
    Continue,
    RecoverOrStop,
    Stop,
    /// Resumed at an exception-table fixup; the caller aborts its command.
    Resumed,
}

/// Reports a fault that an accessor took and resumed at its fixup, as an
/// exception the command could not survive (for `trap`).
pub fn report_fault(f: &extable::Fault) {
    let frame = TrapFrame {
        vector: f.vector as u64,
        error_code: f.error_code,
        rip: f.rip,
        cs: f.cs,
        rflags: f.rflags,
        rsp: f.rsp,
        ss: f.ss,
        ..TrapFrame::default()
    };
    let code = trap::has_error_code(f.vector).then_some(f.error_code);
    report(&frame, f.cr2, name_of(f.vector), code, After::Resumed);
}

fn report(
    frame: &TrapFrame,
    cr2: u64,
    name: &str,
    code: Option<u64>,
    after: After,
) -> Option<(u64, u64, u64)> {
    let vector = frame.vector as u8;
    eprint(format_args!(
        "\r\n!!! CPU exception {name} (vector {vector})\r\n"
    ));
    if let Some(code) = code {
        eprint(format_args!(
            "    error code {code:#x}{}\r\n",
            trap::ErrorCode { vector, code }
        ));
    }
    if vector == 14 {
        eprint(format_args!("    CR2    {cr2:#018x}\r\n"));
    }
    eprint(format_args!(
        "    RIP    {:#018x}  CS {:#x}\r\n    RSP    {:#018x}  SS {:#x}\r\n    RFLAGS {:#018x}\r\n",
        frame.rip, frame.cs, frame.rsp, frame.ss, frame.rflags,
    ));
    let text_start = crate::boot::kernel_virt_base();
    let rip = frame.rip;
    if rip >= text_start && rip < crate::boot::text_end() {
        eprint(format_args!(
            "    RIP is kernel text +{:#x}\r\n",
            rip - text_start
        ));
    }
    match after {
        After::Continue => None,
        After::Resumed => {
            eprint(format_args!("    command aborted; the shell continues\r\n"));
            None
        }
        After::RecoverOrStop => match recover::recovery_point() {
            Some(p) => {
                oops(frame);
                eprint(format_args!("    command aborted; the shell continues\r\n"));
                Some(p)
            }
            None => stop(),
        },
        After::Stop => stop(),
    }
}

/// The rest of an oops report (a fault with no fixup that the last-resort net
/// will catch): the general registers, the taint, and `oops=panic`.
fn oops(f: &TrapFrame) {
    eprint(format_args!(
        "    RAX {:#018x} RBX {:#018x} RCX {:#018x}\r\n    RDX {:#018x} RSI {:#018x} RDI {:#018x}\r\n    \
         RBP {:#018x} R8  {:#018x} R9  {:#018x}\r\n    R10 {:#018x} R11 {:#018x} R12 {:#018x}\r\n    \
         R13 {:#018x} R14 {:#018x} R15 {:#018x}\r\n",
        f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.r8, f.r9, f.r10, f.r11, f.r12, f.r13,
        f.r14, f.r15,
    ));
    recover::taint(f.vector as u8, f.rip);
    eprint(format_args!(
        "    oops: kernel code faulted with no exception-table fixup; kernel tainted (see 'version')\r\n"
    ));
    if recover::panic_on_oops() {
        eprint(format_args!("    oops=panic: system halted\r\n"));
        crate::platform::qemu_exit_failure();
        super::cpu::halt_forever()
    }
}

fn stop() -> ! {
    eprint(format_args!("    not recoverable: system halted\r\n"));
    crate::platform::qemu_exit_failure();
    super::cpu::halt_forever()
}

/// The registers the entry stubs save, in stack order, then what the CPU pushed.
#[repr(C)]
#[derive(Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Vectors whose exceptions push an error code.
/// Number of vectors with an entry stub: all of them.
const STUBS: usize = 256;

// One 16-byte stub per vector: push a zero error code where the CPU pushes none,
// push the vector number, then save every general register and call
// `trap_dispatch` with a pointer to the resulting `TrapFrame`. The CPU aligns the
// stack to 16 before pushing its frame, and 22 eight-byte words keep it aligned.
global_asm!(
    r#"
    .pushsection .text.trap_entry, "ax"
    .balign 16
    .global trap_stubs
trap_stubs:
    .set i, 0
    .rept 256
    .balign 16
    .if (i > 31) || (i != 8) && (i != 10) && (i != 11) && (i != 12) && (i != 13) && (i != 14) && (i != 17) && (i != 21) && (i != 29) && (i != 30)
    push 0
    .endif
    push i
    jmp trap_common
    .set i, i + 1
    .endr

trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call {dispatch}
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq

    .popsection
    "#,
    dispatch = sym trap_dispatch,
);

extern "C" {
    /// The first stub; stub `v` starts `16 * v` bytes after it.
    static trap_stubs: u8;
}

/// The name of an exception vector, as reports print it (`#PF page fault`).
pub use trap::name_of;

/// Called by the entry stubs for every vector.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    match vector {
        0..=31 => {
            if vector == 13 || vector == 14 {
                if let Some(fixup) = extable::fixup(frame.rip) {
                    let cr2 = if vector == 14 { Cr2::read_raw() } else { 0 };
                    extable::record(extable::Fault::new(frame, cr2));
                    frame.rip = fixup;
                    frame.rax = vector as u64;
                    return;
                }
            }
            let code = trap::has_error_code(vector).then_some(frame.error_code);
            let after = match vector {
                1..=3 => After::Continue,
                8 | 18 => After::Stop,
                _ => After::RecoverOrStop,
            };
            let cr2 = if vector == 14 { Cr2::read_raw() } else { 0 };
            if let Some((rip, rsp, rdi)) = report(frame, cr2, name_of(vector), code, after) {
                frame.rip = rip;
                frame.rsp = rsp;
                frame.rdi = rdi;
            }
            if vector == 3 {
                eprint(format_args!(
                    "    breakpoint is a trap: execution continues\r\n"
                ));
            }
        }
        v if (pic::PIC1_OFFSET..pic::PIC2_OFFSET + 8).contains(&v) => irq(v - pic::PIC1_OFFSET),
        _ => {} // the APIC's spurious vector and stray software interrupts
    }
}

// ---- interrupt lines ----------------------------------------------------------------

/// The handler of each PIC line (IRQ 0..16), set once by the driver that owns the
/// line, at its init ([`set_irq_handler`]). The IDT names no driver.
static IRQ_HANDLERS: [Once<fn()>; 16] = [const { Once::new() }; 16];

/// Makes `handler` the interrupt handler of PIC line `irq` (0..16). A driver calls
/// it once at init, before its line is unmasked; a line keeps its first handler.
pub fn set_irq_handler(irq: u8, handler: fn()) {
    if let Some(line) = IRQ_HANDLERS.get(irq as usize) {
        line.call_once(|| handler);
    }
}

/// An interrupt on PIC line `line`: its handler, then the end of interrupt. On a
/// line no driver registered, IRQ 7 and IRQ 15 are the PICs' spurious interrupts.
fn irq(line: u8) {
    match IRQ_HANDLERS[line as usize].get() {
        Some(handler) => {
            handler();
            pic::eoi(line);
        }
        None if line == 7 => {}            // spurious IRQ 7: no EOI
        None if line == 15 => pic::eoi(0), // spurious IRQ 15: EOI the cascade
        None => pic::eoi(line),
    }
}

/// Builds and loads the IDT.
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        let base = core::ptr::addr_of!(trap_stubs) as u64;
        let addr = |v: usize| VirtAddr::new(base + 16 * v as u64);
        // SAFETY: every stub is a valid interrupt entry that saves all registers
        // and returns with iretq; the IST indices name distinct stacks set up in
        // gdt::init, each used by one vector only.
        unsafe {
            idt.divide_error.set_handler_addr(addr(0));
            idt.debug.set_handler_addr(addr(1));
            idt.non_maskable_interrupt
                .set_handler_addr(addr(2))
                .set_stack_index(gdt::IST_NMI);
            idt.breakpoint.set_handler_addr(addr(3));
            idt.overflow.set_handler_addr(addr(4));
            idt.bound_range_exceeded.set_handler_addr(addr(5));
            idt.invalid_opcode.set_handler_addr(addr(6));
            idt.device_not_available.set_handler_addr(addr(7));
            idt.double_fault
                .set_handler_addr(addr(8))
                .set_stack_index(gdt::IST_DOUBLE_FAULT);
            idt.invalid_tss.set_handler_addr(addr(10));
            idt.segment_not_present.set_handler_addr(addr(11));
            idt.stack_segment_fault.set_handler_addr(addr(12));
            idt.general_protection_fault.set_handler_addr(addr(13));
            idt.page_fault
                .set_handler_addr(addr(14))
                .set_stack_index(gdt::IST_PAGE_FAULT);
            idt.x87_floating_point.set_handler_addr(addr(16));
            idt.alignment_check.set_handler_addr(addr(17));
            idt.machine_check
                .set_handler_addr(addr(18))
                .set_stack_index(gdt::IST_MACHINE_CHECK);
            idt.simd_floating_point.set_handler_addr(addr(19));
            idt.virtualization.set_handler_addr(addr(20));
            idt.cp_protection_exception.set_handler_addr(addr(21));
            idt.hv_injection_exception.set_handler_addr(addr(28));
            idt.vmm_communication_exception.set_handler_addr(addr(29));
            idt.security_exception.set_handler_addr(addr(30));
            for v in 32..STUBS {
                idt[v as u8].set_handler_addr(addr(v));
            }
        }
        idt
    });
    idt.load();
}
