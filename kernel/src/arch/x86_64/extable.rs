//! Fault-safe memory access through an exception table, as Linux's `__ex_table`
//! and Asterinas's `ex_table` do.
//!
//! Each accessor below is a small leaf routine in assembly: a load or a store of
//! 1, 2, 4 or 8 bytes, a copy with `memmove` semantics, a fill. Every instruction
//! of theirs that touches the caller's address has an entry in the `__ex_table`
//! section: the pair (address of that instruction, address of its fixup). When a
//! page fault or a general-protection fault hits, the handler in `idt.rs` looks
//! the faulting RIP up here first ([`fixup`]); if it is listed, the handler records
//! the fault ([`Fault`]), sets RAX to the exception's vector (13 or 14, never 0)
//! and resumes at the fixup, which returns from the accessor as from any call.
//! The caller gets `Err(Fault)`: no Rust frame is abandoned, nothing is reported
//! unless the caller chooses to ([`super::idt::report_fault`]).
//!
//! Only these accessors have fixups. A fault anywhere else in the kernel is an
//! oops, handled by the last-resort net of [`super::recover`].
//!
//! The table is linked between `__ex_table_start` and `__ex_table_end` by
//! `kernel/linker.ld` (`KEEP`, since nothing refers to it by name); it is small
//! (one entry per faulting instruction above), so [`search`] scans it.

use super::idt::TrapFrame;
use core::arch::global_asm;
use spin::Mutex;

pub use trap::{search, Entry};

extern "C" {
    static __ex_table_start: Entry;
    static __ex_table_end: Entry;
}

/// The kernel's exception table.
fn table() -> &'static [Entry] {
    let start = core::ptr::addr_of!(__ex_table_start);
    let end = core::ptr::addr_of!(__ex_table_end);
    let n = (end as usize - start as usize) / core::mem::size_of::<Entry>();
    // SAFETY: the linker script puts the `__ex_table` input sections, made of
    // whole 16-byte `Entry` records (8-aligned), between the two symbols, in
    // read-only memory that lives as long as the kernel.
    unsafe { core::slice::from_raw_parts(start, n) }
}

/// The fixup for a fault at `rip` in the kernel, if any.
pub fn fixup(rip: u64) -> Option<u64> {
    search(table(), rip)
}

/// A fault taken by an accessor and resumed at its fixup: what the CPU reported.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fault {
    /// The exception vector: 13 (#GP) or 14 (#PF).
    pub vector: u8,
    /// The error code the CPU pushed.
    pub error_code: u64,
    /// CR2 (the faulting address) for a page fault, else 0.
    pub cr2: u64,
    /// The interrupted context as the CPU pushed it (RIP is the accessor's
    /// instruction that faulted).
    pub rip: u64,
    /// Code segment selector.
    pub cs: u64,
    /// Flags.
    pub rflags: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Stack segment selector.
    pub ss: u64,
}

impl Fault {
    /// The fault the exception entry saved in `frame`, with `cr2`.
    pub fn new(frame: &TrapFrame, cr2: u64) -> Fault {
        Fault {
            vector: frame.vector as u8,
            error_code: frame.error_code,
            cr2,
            rip: frame.rip,
            cs: frame.cs,
            rflags: frame.rflags,
            rsp: frame.rsp,
            ss: frame.ss,
        }
    }
}

/// The last fault resumed at a fixup, until its accessor's caller takes it.
static LAST: Mutex<Option<Fault>> = Mutex::new(None);

/// Called by the #PF/#GP handler before resuming at a fixup.
pub(super) fn record(f: Fault) {
    // Only an accessor used from the code between the fault and `take` (an
    // interrupt handler, and none uses them) could hold the lock: then the
    // record is dropped, and `take` says so.
    if let Some(mut last) = LAST.try_lock() {
        *last = Some(f);
    }
}

/// The fault that made an accessor return `vector` (nonzero).
fn take(vector: u64) -> Fault {
    LAST.lock().take().unwrap_or(Fault {
        vector: vector as u8,
        ..Fault::default()
    })
}

global_asm!(
    r#"
    .macro memkern_ex_entry insn, fixup
    .pushsection __ex_table, "a"
    .balign 8
    .quad \insn, \fixup
    .popsection
    .endm

    .pushsection .text.memkern_extable, "ax"

    /* (u64 vector, u64 value) memkern_ex_loadN(addr: rdi) */
    .global memkern_ex_load1
memkern_ex_load1:
    xor eax, eax
.Lmemkern_ex_l1:
    movzx edx, byte ptr [rdi]
    ret
    memkern_ex_entry .Lmemkern_ex_l1, .Lmemkern_ex_load_fail

    .global memkern_ex_load2
memkern_ex_load2:
    xor eax, eax
.Lmemkern_ex_l2:
    movzx edx, word ptr [rdi]
    ret
    memkern_ex_entry .Lmemkern_ex_l2, .Lmemkern_ex_load_fail

    .global memkern_ex_load4
memkern_ex_load4:
    xor eax, eax
.Lmemkern_ex_l4:
    mov edx, dword ptr [rdi]
    ret
    memkern_ex_entry .Lmemkern_ex_l4, .Lmemkern_ex_load_fail

    .global memkern_ex_load8
memkern_ex_load8:
    xor eax, eax
.Lmemkern_ex_l8:
    mov rdx, qword ptr [rdi]
    ret
    memkern_ex_entry .Lmemkern_ex_l8, .Lmemkern_ex_load_fail

.Lmemkern_ex_load_fail:
    xor edx, edx
    ret

    /* u64 vector memkern_ex_storeN(addr: rdi, value: rsi) */
    .global memkern_ex_store1
memkern_ex_store1:
    xor eax, eax
.Lmemkern_ex_s1:
    mov byte ptr [rdi], sil
    ret
    memkern_ex_entry .Lmemkern_ex_s1, .Lmemkern_ex_store_fail

    .global memkern_ex_store2
memkern_ex_store2:
    xor eax, eax
.Lmemkern_ex_s2:
    mov word ptr [rdi], si
    ret
    memkern_ex_entry .Lmemkern_ex_s2, .Lmemkern_ex_store_fail

    .global memkern_ex_store4
memkern_ex_store4:
    xor eax, eax
.Lmemkern_ex_s4:
    mov dword ptr [rdi], esi
    ret
    memkern_ex_entry .Lmemkern_ex_s4, .Lmemkern_ex_store_fail

    .global memkern_ex_store8
memkern_ex_store8:
    xor eax, eax
.Lmemkern_ex_s8:
    mov qword ptr [rdi], rsi
    ret
    memkern_ex_entry .Lmemkern_ex_s8, .Lmemkern_ex_store_fail

.Lmemkern_ex_store_fail:
    ret

    /* (u64 vector, u64 bytes left) memkern_ex_copy(dst: rdi, src: rsi, len: rdx)
       Overlap as memmove: backwards when dst lies in (src, src + len). */
    .global memkern_ex_copy
memkern_ex_copy:
    xor eax, eax
    mov rcx, rdx
    mov r8, rdi
    sub r8, rsi
    cmp r8, rcx
    jb 1f
.Lmemkern_ex_cf:
    rep movsb
    xor edx, edx
    ret
1:
    lea rsi, [rsi + rcx - 1]
    lea rdi, [rdi + rcx - 1]
    std
.Lmemkern_ex_cb:
    rep movsb
    cld
    xor edx, edx
    ret
    memkern_ex_entry .Lmemkern_ex_cf, .Lmemkern_ex_rep_fail
    memkern_ex_entry .Lmemkern_ex_cb, .Lmemkern_ex_rep_fail

    /* (u64 vector, u64 bytes left) memkern_ex_fill(dst: rdi, byte: sil, len: rdx) */
    .global memkern_ex_fill
memkern_ex_fill:
    mov eax, esi
    mov rcx, rdx
.Lmemkern_ex_f:
    rep stosb
    xor eax, eax
    xor edx, edx
    ret
    memkern_ex_entry .Lmemkern_ex_f, .Lmemkern_ex_rep_fail

    /* The CPU left RCX = bytes not done (and DF set in a backward copy). */
.Lmemkern_ex_rep_fail:
    cld
    mov rdx, rcx
    ret

    .popsection
    "#
);

/// What the accessors return in RAX:RDX.
#[repr(C)]
struct Ret {
    /// 0, or the vector of the fault resumed at the fixup.
    vector: u64,
    /// The value loaded, or the bytes left undone.
    value: u64,
}

extern "C" {
    fn memkern_ex_load1(addr: u64) -> Ret;
    fn memkern_ex_load2(addr: u64) -> Ret;
    fn memkern_ex_load4(addr: u64) -> Ret;
    fn memkern_ex_load8(addr: u64) -> Ret;
    fn memkern_ex_copy(dst: u64, src: u64, len: u64) -> Ret;
    fn memkern_ex_fill(dst: u64, byte: u64, len: u64) -> Ret;
}

extern "C" {
    fn memkern_ex_store1(addr: u64, value: u64) -> u64;
    fn memkern_ex_store2(addr: u64, value: u64) -> u64;
    fn memkern_ex_store4(addr: u64, value: u64) -> u64;
    fn memkern_ex_store8(addr: u64, value: u64) -> u64;
}

/// Loads `size` (1, 2, 4 or 8) bytes at `addr`, zero-extended.
///
/// # Safety
/// Reading `addr` must have no effect the caller does not want (device memory
/// may have side effects). A fault (unmapped, non-canonical) is safe: it is
/// resumed through the exception table and returned as `Err`.
pub unsafe fn load(addr: u64, size: u8) -> Result<u64, Fault> {
    // SAFETY: each routine is a leaf that reads `addr` only (the caller's
    // contract) and follows the C ABI; a fault returns through its fixup.
    let r = unsafe {
        match size {
            1 => memkern_ex_load1(addr),
            2 => memkern_ex_load2(addr),
            4 => memkern_ex_load4(addr),
            _ => memkern_ex_load8(addr),
        }
    };
    if r.vector == 0 {
        Ok(r.value)
    } else {
        Err(take(r.vector))
    }
}

/// Stores the low `size` (1, 2, 4 or 8) bytes of `value` at `addr` (the
/// shell's `poke` and `writeb`..`writeq`).
///
/// # Safety
/// Writing there must break no invariant of the kernel (no memory that Rust
/// code owns or borrows). A fault is returned as `Err`.
pub unsafe fn store(addr: u64, size: u8, value: u64) -> Result<(), Fault> {
    // SAFETY: as in `load`; the write is the caller's contract.
    let v = unsafe {
        match size {
            1 => memkern_ex_store1(addr, value),
            2 => memkern_ex_store2(addr, value),
            4 => memkern_ex_store4(addr, value),
            _ => memkern_ex_store8(addr, value),
        }
    };
    if v == 0 {
        Ok(())
    } else {
        Err(take(v))
    }
}

/// Copies `len` bytes from `src` to `dst`; the ranges may overlap (`memmove`).
/// On a fault the bytes before it are copied.
///
/// # Safety
/// As [`store`] for `[dst, dst + len)` and [`load`] for `[src, src + len)`.
pub unsafe fn copy(dst: u64, src: u64, len: u64) -> Result<(), Fault> {
    // SAFETY: the routine touches only the two ranges (the caller's contract)
    // and restores the direction flag on every way out.
    let r = unsafe { memkern_ex_copy(dst, src, len) };
    if r.vector == 0 {
        Ok(())
    } else {
        Err(take(r.vector))
    }
}

/// Sets `len` bytes at `dst` to `byte`.
///
/// # Safety
/// As [`store`] for `[dst, dst + len)`.
pub unsafe fn fill(dst: u64, byte: u8, len: u64) -> Result<(), Fault> {
    // SAFETY: the routine writes only `[dst, dst + len)` (the caller's contract).
    let r = unsafe { memkern_ex_fill(dst, byte as u64, len) };
    if r.vector == 0 {
        Ok(())
    } else {
        Err(take(r.vector))
    }
}
