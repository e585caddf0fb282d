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
use core::sync::atomic::{AtomicBool, Ordering};

#[repr(C)]
struct JmpBuf {
    regs: [u64; 7], // rbx rbp r12 r13 r14 r15 rsp
}

#[no_mangle]
static mut MEMKERN_JMPBUF: JmpBuf = JmpBuf { regs: [0; 7] };

static ACTIVE: AtomicBool = AtomicBool::new(false);

global_asm!(
    r#"
    .pushsection .text.memkern_recover, "ax"
    .global memkern_run_protected
memkern_run_protected:
    lea rax, [rip + MEMKERN_JMPBUF]
    mov [rax + 0], rbx
    mov [rax + 8], rbp
    mov [rax + 16], r12
    mov [rax + 24], r13
    mov [rax + 32], r14
    mov [rax + 40], r15
    mov [rax + 48], rsp
    mov rax, rdi
    mov rdi, rsi
    sub rsp, 8
    call rax
    add rsp, 8
    xor eax, eax
    ret

    .global memkern_protected_abort
memkern_protected_abort:
    lea rax, [rip + MEMKERN_JMPBUF]
    mov rbx, [rax + 0]
    mov rbp, [rax + 8]
    mov r12, [rax + 16]
    mov r13, [rax + 24]
    mov r14, [rax + 32]
    mov r15, [rax + 40]
    mov rsp, [rax + 48]
    mov eax, 1
    ret
    .popsection
    "#
);

extern "C" {
    fn memkern_run_protected(f: extern "C" fn(*mut u8), ctx: *mut u8) -> u32;
    fn memkern_protected_abort();
}

/// A command was cut short by a CPU exception (already reported).
#[derive(Debug, Clone, Copy)]
pub struct Aborted;

/// Runs `f`; if it causes a recoverable CPU exception, returns `Err(Aborted)`.
/// Not reentrant: a nested call runs unprotected.
pub fn run_protected<F: FnOnce()>(f: F) -> Result<(), Aborted> {
    if ACTIVE.swap(true, Ordering::SeqCst) {
        f();
        return Ok(());
    }
    extern "C" fn trampoline<F: FnOnce()>(ctx: *mut u8) {
        // SAFETY: ctx is the `Option<F>` below, alive for the whole call.
        let slot = unsafe { &mut *(ctx as *mut Option<F>) };
        if let Some(f) = slot.take() {
            f();
        }
    }
    let mut slot = Some(f);
    // SAFETY: the routine saves/restores the callee-saved registers per the C ABI
    // and calls `trampoline` with `ctx` pointing at `slot`, which outlives it.
    let r = unsafe { memkern_run_protected(trampoline::<F>, &mut slot as *mut Option<F> as *mut u8) };
    ACTIVE.store(false, Ordering::SeqCst);
    if r == 0 {
        Ok(())
    } else {
        Err(Aborted)
    }
}

/// If a protected call is active, the address to resume at and the stack to use.
pub fn recovery_point() -> Option<(u64, u64)> {
    if !ACTIVE.load(Ordering::SeqCst) {
        return None;
    }
    // SAFETY: MEMKERN_JMPBUF is written only by memkern_run_protected before the
    // closure runs; reading the saved stack pointer is a plain load.
    let rsp = unsafe { (*core::ptr::addr_of!(MEMKERN_JMPBUF)).regs[6] };
    Some((memkern_protected_abort as *const () as u64, rsp))
}
