//! memkern's virtual terminal, free of hardware: what the PS/2 keyboard and the
//! framebuffer console do with bytes, as Linux's `drivers/tty/vt` (`keyboard.c`,
//! `vt.c`) does, split from the port I/O and pixel writes the kernel keeps
//! (`kernel/src/drivers/{keyboard,framebuffer}.rs`).
//!
//! - [`keymap`]: scancodes in, the bytes a serial terminal would send out, so the
//!   shell's line editor serves both.
//! - [`grid`]: the character grid of the framebuffer console (cursor, wrapping,
//!   scrolling, carriage return and backspace, escape sequences) over a
//!   [`grid::Screen`] that draws.
//! - [`render`]: pixel formats, pixel surfaces, the font and the colours.
//! - [`console`]: the framebuffer console's cells, colour rules and deferred
//!   drawing, and the backlog of what was printed before the screen was known.
//! - [`memview`] and [`slabview`]: the live pictures of physical memory and of
//!   the slab allocator beside the console.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod console;
pub mod grid;
pub mod keymap;
pub mod memview;
pub mod render;
pub mod slabview;
