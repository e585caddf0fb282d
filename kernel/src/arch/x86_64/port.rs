//! x86 port I/O with the Linux names: `inb/outb/inw/outw/inl/outl` over the
//! `x86_64` crate's `Port`, and the string forms `insb/outsb/insw/outsw/insl/
//! outsl` as `rep ins`/`rep outs`.
//!
//! Every function is `unsafe`: a port write (and on some devices a read) can do
//! anything to the machine. The shell reaches them through its memory API,
//! which refuses writes to the ports the kernel registered as its own (COM1,
//! the PICs) unless forced.

use core::arch::asm;
use x86_64::instructions::port::Port;

/// Reads a byte from `port`.
///
/// # Safety
/// The read must have no effect on a device that the kernel relies on.
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: the caller's contract; `in al, dx` touches nothing else.
    unsafe { Port::<u8>::new(port).read() }
}

/// Reads 2 bytes from `port`. # Safety: as [`inb`].
pub unsafe fn inw(port: u16) -> u16 {
    // SAFETY: as in `inb`.
    unsafe { Port::<u16>::new(port).read() }
}

/// Reads 4 bytes from `port`. # Safety: as [`inb`].
pub unsafe fn inl(port: u16) -> u32 {
    // SAFETY: as in `inb`.
    unsafe { Port::<u32>::new(port).read() }
}

/// Writes a byte to `port`.
///
/// # Safety
/// The write must not break a device that the kernel relies on.
pub unsafe fn outb(value: u8, port: u16) {
    // SAFETY: the caller's contract; `out dx, al` touches nothing else.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Writes 2 bytes to `port`. # Safety: as [`outb`].
pub unsafe fn outw(value: u16, port: u16) {
    // SAFETY: as in `outb`.
    unsafe { Port::<u16>::new(port).write(value) }
}

/// Writes 4 bytes to `port`. # Safety: as [`outb`].
pub unsafe fn outl(value: u32, port: u16) {
    // SAFETY: as in `outb`.
    unsafe { Port::<u32>::new(port).write(value) }
}

/// `rep insb`: fills `buf` with byte reads of `port`. # Safety: as [`inb`].
pub unsafe fn insb(port: u16, buf: &mut [u8]) {
    // SAFETY: `rep insb` stores exactly `rcx = buf.len()` bytes at `rdi`, inside
    // `buf`, which we borrow mutably; the direction flag is clear (ABI).
    unsafe {
        asm!("rep insb", in("dx") port, inout("rdi") buf.as_mut_ptr() => _,
             inout("rcx") buf.len() => _, options(nostack, preserves_flags))
    }
}

/// `rep insw`: `buf.len() / 2` reads of `port`, little-endian. # Safety: as [`inb`].
pub unsafe fn insw(port: u16, buf: &mut [u8]) {
    // SAFETY: as in `insb`, `rcx` 2-byte stores, all inside `buf`.
    unsafe {
        asm!("rep insw", in("dx") port, inout("rdi") buf.as_mut_ptr() => _,
             inout("rcx") buf.len() / 2 => _, options(nostack, preserves_flags))
    }
}

/// `rep insl`: `buf.len() / 4` reads of `port`. # Safety: as [`inb`].
pub unsafe fn insl(port: u16, buf: &mut [u8]) {
    // SAFETY: as in `insb`, `rcx` 4-byte stores, all inside `buf`.
    unsafe {
        asm!("rep insd", in("dx") port, inout("rdi") buf.as_mut_ptr() => _,
             inout("rcx") buf.len() / 4 => _, options(nostack, preserves_flags))
    }
}

/// `rep outsb`: writes every byte of `buf` to `port`. # Safety: as [`outb`].
pub unsafe fn outsb(port: u16, buf: &[u8]) {
    // SAFETY: `rep outsb` reads exactly `rcx = buf.len()` bytes at `rsi`, inside
    // `buf`; the direction flag is clear (ABI).
    unsafe {
        asm!("rep outsb", in("dx") port, inout("rsi") buf.as_ptr() => _,
             inout("rcx") buf.len() => _, options(nostack, preserves_flags, readonly))
    }
}

/// `rep outsw`: `buf.len() / 2` writes to `port`. # Safety: as [`outb`].
pub unsafe fn outsw(port: u16, buf: &[u8]) {
    // SAFETY: as in `outsb`, `rcx` 2-byte loads, all inside `buf`.
    unsafe {
        asm!("rep outsw", in("dx") port, inout("rsi") buf.as_ptr() => _,
             inout("rcx") buf.len() / 2 => _, options(nostack, preserves_flags, readonly))
    }
}

/// `rep outsl`: `buf.len() / 4` writes to `port`. # Safety: as [`outb`].
pub unsafe fn outsl(port: u16, buf: &[u8]) {
    // SAFETY: as in `outsb`, `rcx` 4-byte loads, all inside `buf`.
    unsafe {
        asm!("rep outsd", in("dx") port, inout("rsi") buf.as_ptr() => _,
             inout("rcx") buf.len() / 4 => _, options(nostack, preserves_flags, readonly))
    }
}
