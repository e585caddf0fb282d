//! The last-resort net for CPU exceptions in kernel code that has no fixup, and
//! the taint it leaves.
//!
//! Faults that are expected (a raw memory access to a bad address, `trap pf`)
//! never come here: they happen in the accessors of [`super::extable`], whose
//! exception-table fixups make them return an error, so every Rust frame
//! returns normally. This module is for the rest: a fault in kernel code that
//! nobody expected, a bug. Linux calls that an oops; here, as there, it gets a
//! full report (the handler in `idt.rs`), marks the kernel tainted ([`taint`],
//! shown by `version`), and the kernel command-line option `oops=panic` (like
//! Linux's `panic_on_oops`) stops the machine instead of going on.
//!
//! Going on uses [`run_protected`], a tiny setjmp-like assembly routine: it saves
//! the callee-saved registers and the stack pointer, then calls the closure. If
//! an exception handler finds a protected call active, it points the interrupted
//! context at `memkern_protected_abort`, which restores the saved registers and
//! makes `run_protected` return `Err`. The frames in between are deallocated
//! without running their destructors. For frames that hold values with
//! destructors, Rust's rules make that undefined behaviour, not a mere leak: a
//! held lock stays locked, a `Vec` is never freed, and the compiler was allowed
//! to assume neither happens. That is why the net is only a last resort, why
//! using it taints the kernel, and why nothing may be built on it: new code that
//! expects faults uses the exception table.

use alloc::format;
use alloc::string::String;
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Callee-saved registers and stack pointer of one protected call.
#[repr(C)]
#[derive(Default)]
struct JmpBuf {
    regs: [u64; 7], // rbx rbp r12 r13 r14 r15 rsp
}

/// The innermost active protected call (null: none).
static CURRENT: AtomicPtr<JmpBuf> = AtomicPtr::new(core::ptr::null_mut());

global_asm!(
    r#"
    .pushsection .text.memkern_recover, "ax"
    /* u32 memkern_run_protected(f: fn(ctx), ctx, buf: *mut JmpBuf) */
    .global memkern_run_protected
memkern_run_protected:
    mov [rdx + 0], rbx
    mov [rdx + 8], rbp
    mov [rdx + 16], r12
    mov [rdx + 24], r13
    mov [rdx + 32], r14
    mov [rdx + 40], r15
    mov [rdx + 48], rsp
    mov rax, rdi
    mov rdi, rsi
    sub rsp, 8
    call rax
    add rsp, 8
    xor eax, eax
    ret

    /* Entered from an exception handler's iretq with rdi = the JmpBuf. */
    .global memkern_protected_abort
memkern_protected_abort:
    mov rbx, [rdi + 0]
    mov rbp, [rdi + 8]
    mov r12, [rdi + 16]
    mov r13, [rdi + 24]
    mov r14, [rdi + 32]
    mov r15, [rdi + 40]
    mov rsp, [rdi + 48]
    mov eax, 1
    ret
    .popsection
    "#
);

extern "C" {
    fn memkern_run_protected(f: extern "C" fn(*mut u8), ctx: *mut u8, buf: *mut JmpBuf) -> u32;
    fn memkern_protected_abort();
}

/// A command was cut short by a CPU exception (already reported).
#[derive(Debug, Clone, Copy)]
pub struct Aborted;

/// Runs `f`; if it causes a recoverable CPU exception, returns `Err(Aborted)`.
/// Calls nest: the innermost one catches the exception.
pub fn run_protected<F: FnOnce()>(f: F) -> Result<(), Aborted> {
    extern "C" fn trampoline<F: FnOnce()>(ctx: *mut u8) {
        // SAFETY: ctx is the `Option<F>` below, alive for the whole call.
        let slot = unsafe { &mut *(ctx as *mut Option<F>) };
        if let Some(f) = slot.take() {
            f();
        }
    }
    let mut slot = Some(f);
    let mut buf = JmpBuf::default();
    let prev = CURRENT.swap(&mut buf, Ordering::SeqCst);
    // SAFETY: the routine saves the callee-saved registers and stack pointer in
    // `buf` (alive until we return) and calls `trampoline` with `ctx` = `slot`;
    // an abort restores exactly those registers, so to the compiler this is an
    // ordinary call that returns 0 or 1.
    let r = unsafe {
        memkern_run_protected(
            trampoline::<F>,
            &mut slot as *mut Option<F> as *mut u8,
            &mut buf,
        )
    };
    CURRENT.store(prev, Ordering::SeqCst);
    if r == 0 {
        Ok(())
    } else {
        Err(Aborted)
    }
}

/// Where an exception handler should resume if a protected call is active:
/// (rip, rsp, rdi) for the abort routine.
pub fn recovery_point() -> Option<(u64, u64, u64)> {
    let p = CURRENT.load(Ordering::SeqCst);
    if p.is_null() {
        return None;
    }
    // SAFETY: CURRENT points at the JmpBuf of the innermost active call, which
    // lives in that call's stack frame until it returns.
    let rsp = unsafe { (*p).regs[6] };
    Some((memkern_protected_abort as *const () as u64, rsp, p as u64))
}

/// How many oopses (faults with no fixup) the kernel has taken.
static OOPSES: AtomicU32 = AtomicU32::new(0);
/// The first oops's exception vector.
static FIRST_VECTOR: AtomicU32 = AtomicU32::new(0);
/// The first oops's RIP.
static FIRST_RIP: AtomicU64 = AtomicU64::new(0);
/// `oops=panic`: stop the machine at an oops instead of going on.
static PANIC_ON_OOPS: AtomicBool = AtomicBool::new(false);

/// Marks the kernel tainted by an oops: exception `vector` at `rip`.
pub fn taint(vector: u8, rip: u64) {
    if OOPSES.fetch_add(1, Ordering::SeqCst) == 0 {
        FIRST_VECTOR.store(vector as u32, Ordering::SeqCst);
        FIRST_RIP.store(rip, Ordering::SeqCst);
    }
}

/// Why the kernel is tainted, for `version`, or `None` if it is not.
pub fn taint_reason() -> Option<String> {
    let n = OOPSES.load(Ordering::SeqCst);
    (n > 0).then(|| {
        let name = super::idt::name_of(FIRST_VECTOR.load(Ordering::SeqCst) as u8);
        let rip = FIRST_RIP.load(Ordering::SeqCst);
        format!(
            "D (oops: {n} CPU exception{} in kernel code with no fixup, the first {name} at RIP {rip:#018x})",
            if n == 1 { "" } else { "s" }
        )
    })
}

/// Whether an oops stops the machine (`oops=panic`).
pub fn panic_on_oops() -> bool {
    PANIC_ON_OOPS.load(Ordering::SeqCst)
}

/// Applies the `oops=` command-line option: `panic` or `continue` (the default).
pub fn set_oops_option(value: &str) -> Result<(), &'static str> {
    let panic = match value {
        "panic" => true,
        "continue" => false,
        _ => return Err("expected oops=panic or oops=continue"),
    };
    PANIC_ON_OOPS.store(panic, Ordering::SeqCst);
    Ok(())
}
