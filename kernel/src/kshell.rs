//! The kernel's side of the hardware-free `shell` crate: the console writer, the
//! machine operations (`Platform`) and the hardware under the shell's memory
//! API ([`Hardware`] as a `shell::MemHost`: locks, the direct map, fault-safe
//! accessors, `rdtsc`, the page tables with their TLB). The memory API itself is implemented once, in the shell
//! (`shell::Api`).
//!
//! Memory accesses that may fault (`trap pf` and `trap gp`, the raw memory
//! operations `peek`..`copy`, `read*`/`write*`, `bzero`, `bcopy` and `dump`, on
//! any kernel address: the direct map, mappings, vmalloc and ioremap areas) go
//! through the fault-safe
//! accessors of [`extable`]: a fault is resumed at the accessor's exception-table
//! fixup and becomes an ordinary error, and every Rust frame returns normally.
//!
//! What is left of the `longjmp` net ([`run_protected`]) is a last resort for an
//! oops, a fault in kernel code with no fixup: every input byte is fed to the
//! shell under it, so the report is printed and the shell comes back, but the
//! frames it abandons never run their destructors (undefined behaviour by Rust's
//! rules: a held lock stays held, heap memory is lost), so the kernel is marked
//! tainted, `version` says why, and `oops=panic` stops the machine instead.
//! `trap de` and `trap ud` raise such an oops on purpose, under a net of their
//! own whose abandoned frames hold nothing.

use crate::arch::extable::{self, Fault};
use crate::arch::port;
use crate::arch::recover::{self, run_protected};
use crate::boot::BootInfo;
use crate::drivers::input;
use crate::memory::paging::{self, HwTlb, KernelFrames};
use crate::memory::vmalloc::with_vmspace;
use crate::memory::{heap::with_slab, iomem::RESOURCES, physmem::DirectMap, with_buddy};
use crate::{kprint, platform};
use alloc::string::String;
use core::fmt;
use mm::buddy::Buddy;
use mm::paging::Mapper;
use mm::slab::Slab;
use mm::vmalloc::{VmBackend, VmSpace};
use shell::{
    Api, KernelLayout, MemHost, Platform, PoolTable, RawFault, Resources, Shell, Trap, VersionInfo,
    VmState, WalkStop, Width,
};
use spin::Mutex;

/// The mempools the shell created (Linux leaves `mempool_t` to its user).
/// Lock order: pools, then slab, then buddy.
static POOLS: Mutex<PoolTable> = Mutex::new(PoolTable::new());

/// The shell's page-table state (its address spaces, the table its commands
/// aim at). Lock order: this, then the page-table lock, then slab, then buddy
/// (never held together with the vm-space lock of `memory::vmalloc`).
static VM: Mutex<Option<VmState>> = Mutex::new(None);

/// The kernel's hardware as the shell's memory API needs it ([`MemHost`]: the
/// allocators' locks, the direct map, fault-safe accessors, `rdtsc`, the heap
/// self-test) and the machine ([`Platform`]). The shell runs on
/// `Api<Hardware>`, the memory API's one implementation.
pub struct Hardware {
    info: &'static BootInfo,
}

impl fmt::Write for Hardware {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        kprint!("{s}");
        Ok(())
    }
}

/// Raises one CPU exception on purpose, in code with no fixup (`Pf` and `Gp`
/// go through an accessor instead, in [`Platform::trap`]).
fn raise(t: Trap) {
    // SAFETY (all arms): each instruction raises the named exception; the handler
    // reports it and either returns (#BP) or aborts the protected call of
    // `Platform::trap`, whose abandoned frames (this one and its closure) hold
    // nothing with a destructor.
    unsafe {
        match t {
            Trap::De => {
                core::arch::asm!("xor edx, edx", "xor eax, eax", "xor ecx, ecx", "div ecx", out("eax") _, out("edx") _, out("ecx") _)
            }
            Trap::Ud => core::arch::asm!("ud2"),
            Trap::Bp => core::arch::asm!("int3"),
            Trap::Gp | Trap::Pf => {}
        }
    }
}

/// A raw access to `addr` that faulted, as the shell's memory API reports it:
/// the vector, the error code and the address (CR2 for a page fault), and for a
/// page fault the walk of that address in the kernel's tables (where it stops).
/// This is the one place that turns a CPU fault of the raw-access commands
/// (`peek`..`copy`, `read*`/`write*`, `dump`/`bzero`/`bcopy`) into their error.
/// Called after the accessor returned, with no lock held.
fn raw_fault(f: Fault, addr: u64) -> RawFault {
    let addr = if f.vector == 14 { f.cr2 } else { addr };
    let mut r = RawFault::new(f.vector, f.error_code, addr);
    if f.vector == 14 {
        if let Ok(v) = mm::paging::VirtAddr::try_new(addr) {
            r.walk = Some(WalkStop::of(&mm::paging::walk(
                &DirectMap,
                paging::kernel_root(),
                v,
            )));
        }
    }
    r
}

impl Platform for Hardware {
    fn version_info(&self) -> VersionInfo {
        VersionInfo {
            version: env!("CARGO_PKG_VERSION"),
            boot: self.info.path.name(),
            cmdline: String::from(self.info.cmdline.as_str()),
            tainted: recover::taint_reason(),
        }
    }
    fn clear_screen(&mut self) {
        crate::drivers::framebuffer::clear();
    }
    fn framebuffer(&self) -> Option<shell::FbMode> {
        crate::drivers::framebuffer::fb_mode()
    }
    fn memory_view(&mut self, what: shell::ViewCmd) -> Result<String, &'static str> {
        crate::drivers::framebuffer::set_view(what)
    }
    fn reboot(&mut self) -> &'static str {
        platform::reboot()
    }
    fn poweroff(&mut self) -> &'static str {
        platform::poweroff();
        "no power-off method worked (no ACPI S5 support yet); it is safe to switch the machine off"
    }
    fn trap(&mut self, t: Trap) -> Result<(), &'static str> {
        const ABORTED: &str = "command aborted by the CPU exception (report above)";
        let addr = match t {
            Trap::Pf => 0xdead_b000,           // unmapped
            Trap::Gp => 0x8000_0000_0000_0000, // not canonical
            _ => return run_protected(|| raise(t)).map_err(|_| ABORTED),
        };
        // SAFETY: nothing is mapped at either address, so the load reads nothing;
        // it faults and is resumed at the accessor's fixup.
        match unsafe { extable::load(addr, 8) } {
            Ok(_) => Err("the access did not fault"),
            Err(f) => {
                crate::arch::idt::report_fault(&f);
                Err(ABORTED)
            }
        }
    }
}

impl MemHost for Hardware {
    type Mem = DirectMap;
    type Clock = fn() -> u64;

    fn buddy<R>(&self, f: impl FnOnce(&Buddy<'_>, &DirectMap) -> R) -> R {
        with_buddy(|b| f(b, &DirectMap))
    }
    fn buddy_mut<R>(&mut self, f: impl FnOnce(&mut Buddy<'_>, &mut DirectMap) -> R) -> R {
        with_buddy(|b| f(b, &mut DirectMap))
    }
    fn slab<R>(&self, f: impl FnOnce(&Slab, &Buddy<'_>, &DirectMap) -> R) -> R {
        with_slab(|s, b| f(s, b, &DirectMap))
    }
    fn slab_mut<R>(&mut self, f: impl FnOnce(&mut Slab, &mut Buddy<'_>, &mut DirectMap) -> R) -> R {
        with_slab(|s, b| f(s, b, &mut DirectMap))
    }
    fn pools<R>(&self, f: impl FnOnce(&PoolTable) -> R) -> R {
        f(&POOLS.lock())
    }
    fn pools_mut<R>(
        &mut self,
        f: impl FnOnce(&mut PoolTable, &mut Slab, &mut Buddy<'_>, &mut DirectMap) -> R,
    ) -> R {
        let mut pools = POOLS.lock();
        with_slab(|s, b| f(&mut pools, s, b, &mut DirectMap))
    }
    fn mem(&self) -> &DirectMap {
        &DirectMap
    }
    fn resources<R>(&self, f: impl FnOnce(&Resources) -> R) -> R {
        f(&RESOURCES.lock())
    }
    fn resources_mut<R>(&mut self, f: impl FnOnce(&mut Resources) -> R) -> R {
        f(&mut RESOURCES.lock())
    }
    // SAFETY (the port hooks): the shell's memory API refuses writes to the
    // ports the kernel registered as its own (COM1, the PICs) unless the user
    // forced them; what a port access does to a device is the user's request,
    // as with Linux's /dev/port. No memory is touched but `buf`, which we borrow.
    fn port_in(&mut self, p: u16, width: Width) -> u32 {
        // SAFETY: see above.
        unsafe {
            match width {
                Width::B => u32::from(port::inb(p)),
                Width::W => u32::from(port::inw(p)),
                _ => port::inl(p),
            }
        }
    }
    fn port_out(&mut self, p: u16, width: Width, value: u32) {
        // SAFETY: see above.
        unsafe {
            match width {
                Width::B => port::outb(value as u8, p),
                Width::W => port::outw(value as u16, p),
                _ => port::outl(value, p),
            }
        }
    }
    fn port_in_str(&mut self, p: u16, width: Width, buf: &mut [u8]) {
        // SAFETY: see above.
        unsafe {
            match width {
                Width::B => port::insb(p, buf),
                Width::W => port::insw(p, buf),
                _ => port::insl(p, buf),
            }
        }
    }
    fn port_out_str(&mut self, p: u16, width: Width, buf: &[u8]) {
        // SAFETY: see above.
        unsafe {
            match width {
                Width::B => port::outsb(p, buf),
                Width::W => port::outsw(p, buf),
                _ => port::outsl(p, buf),
            }
        }
    }
    fn translate(&self, virt: u64) -> Option<u64> {
        let v = mm::paging::VirtAddr::try_new(virt).ok()?;
        mm::paging::translate(&DirectMap, paging::kernel_root(), v).map(|(p, _, _)| p.as_u64())
    }
    // SAFETY (the raw hooks): every access goes through an exception-table
    // accessor, so a fault (unmapped, non-canonical) returns as `Err`. Writes
    // into what the kernel owns (its image, mem_map, page tables, slab pages,
    // blocks the shell holds no handle for) were refused by the shell's memory
    // API unless the user forced them, as Linux's /dev/mem lets root do.
    // Reads may have device side effects: MMIO reads are what the user asked.
    fn raw_load(&self, virt: u64, width: Width) -> Result<u64, RawFault> {
        // SAFETY: see above.
        unsafe { extable::load(virt, width.bytes() as u8) }.map_err(|f| raw_fault(f, virt))
    }
    fn raw_store(&mut self, virt: u64, width: Width, value: u64) -> Result<(), RawFault> {
        // SAFETY: see above.
        unsafe { extable::store(virt, width.bytes() as u8, value) }.map_err(|f| raw_fault(f, virt))
    }
    fn raw_read(&self, virt: u64, buf: &mut [u8]) -> Result<(), RawFault> {
        let dst = buf.as_mut_ptr() as u64;
        // SAFETY: see above; the destination is `buf`, which we borrow mutably.
        unsafe { extable::copy(dst, virt, buf.len() as u64) }.map_err(|f| raw_fault(f, virt))
    }
    fn raw_fill(&mut self, virt: u64, len: u64, byte: u8) -> Result<(), RawFault> {
        // SAFETY: see above.
        unsafe { extable::fill(virt, byte, len) }.map_err(|f| raw_fault(f, virt))
    }
    fn raw_copy(&mut self, dst: u64, src: u64, len: u64) -> Result<(), RawFault> {
        // SAFETY: see above.
        unsafe { extable::copy(dst, src, len) }.map_err(|f| raw_fault(f, dst))
    }
    type Frames = KernelFrames;
    type Tlb = HwTlb;
    fn vm<R>(&self, f: impl FnOnce(&VmState, &DirectMap) -> R) -> R {
        let mut g = VM.lock();
        let st = g.get_or_insert_with(|| VmState::new(paging::kernel_root()));
        paging::with_page_tables(|_, _, _| f(st, &DirectMap))
    }
    fn vm_mut<R>(
        &mut self,
        f: impl FnOnce(&mut VmState, &mut Mapper<'_, DirectMap, KernelFrames>, &mut HwTlb) -> R,
    ) -> R {
        let mut g = VM.lock();
        let st = g.get_or_insert_with(|| VmState::new(paging::kernel_root()));
        paging::with_page_tables(|_, m, tlb| f(st, m, tlb))
    }
    fn vm_layout(&self) -> KernelLayout {
        let kvirt = self.info.kernel_virt_base;
        let setup = crate::memory::SETUP.get().copied().unwrap_or_default();
        KernelLayout {
            text: (kvirt, crate::boot::text_end()),
            rodata: (crate::boot::text_end(), crate::boot::rodata_end()),
            data: (crate::boot::rodata_end(), crate::boot::kernel_virt_end()),
            direct_map_end: paging::direct_map_end(),
            mem_map: (setup.mem_map_phys, setup.mem_map_bytes),
        }
    }
    fn vmspace<R>(&self, f: impl FnOnce(&VmSpace) -> R) -> R {
        with_vmspace(|v, _| f(v))
    }
    fn vmspace_mut<R>(&mut self, f: impl FnOnce(&mut VmSpace, &mut dyn VmBackend) -> R) -> R {
        with_vmspace(|v, be| f(v, be))
    }
    fn clock(&self) -> fn() -> u64 {
        crate::arch::cpu::rdtsc
    }
    fn heap_selftest(&mut self, case: &str) -> Result<(), &'static str> {
        crate::memory::heap::selftest(case)
    }
}

/// Runs the shell on the console forever.
pub fn run(info: &'static BootInfo) -> ! {
    let mut k = Api::new(Hardware { info });
    let mut sh = Shell::new();
    if let Some(on) = shell::cmdline_check(info.cmdline.as_str()) {
        sh.set_check(on);
    }
    sh.banner_and_prompt(&mut k);
    loop {
        let b = input::wait_byte();
        if run_protected(|| sh.feed(b, &mut k)).is_err() {
            kprint!(
                "error: command aborted by an unexpected CPU exception (report above)\r\n{}",
                shell::PROMPT
            );
        }
    }
}
