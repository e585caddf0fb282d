//! Recoverable faults: run a shell command so that a CPU exception it causes
//! (a `peek` of an unmapped address, a deliberate `trap`) is reported and the
//! shell comes back, instead of the machine stopping.
//!
//! [`run_protected`] is a tiny setjmp-like assembly routine: it saves the
//! callee-saved registers and the stack pointer, then calls the closure. If an
//! exception handler finds a protected call active, it points the interrupted
//! context at `memkern_protected_abort`, which restores the saved registers and
//! makes `run_protected` return `Err`. Frames between are abandoned without running
//! their destructors (leaking, never undefined), so code run this way must not
//! hold locks when it may fault.

use core::arch::global_asm;
use core::sync::atomic::{AtomicPtr, Ordering};

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
