//! Device drivers: the COM1 serial port, the PS/2 keyboard and the framebuffer text
//! console. Input from serial and keyboard meets in one queue the shell reads.
pub mod bochs_vga;
pub mod framebuffer;
pub mod input;
pub mod keyboard;
pub mod serial;
