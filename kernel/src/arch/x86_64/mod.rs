//! x86_64 platform: segmentation (GDT/TSS/IST), the IDT and its exception reports,
//! the exception table and its fault-safe accessors, the last-resort net for
//! faults with no fixup (and the taint it leaves), the legacy PIC, and CPU control.
pub mod cpu;
pub mod extable;
pub mod gdt;
pub mod idt;
pub mod pic;
pub mod port;
pub mod recover;
