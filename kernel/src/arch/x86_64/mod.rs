//! x86_64 platform: segmentation (GDT/TSS/IST), the IDT and its exception reports,
//! the legacy PIC, recoverable faults for shell commands, and CPU control.
pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod pic;
pub mod recover;
