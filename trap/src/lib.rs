//! The hardware-free part of memkern's CPU-exception handling, host-tested: what
//! each vector is called, which vectors push an error code and what the code
//! says, and the exception-table lookup. The kernel's `arch::x86_64::idt` and
//! `extable` keep only the entry stubs, the registers and the assembly accessors.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

/// The name of an exception vector, as reports print it (`#PF page fault`).
pub fn name_of(vector: u8) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI non-maskable interrupt",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range exceeded",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        9 => "coprocessor segment overrun",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection fault",
        14 => "#PF page fault",
        16 => "#MF x87 floating-point error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating-point error",
        20 => "#VE virtualization exception",
        21 => "#CP control protection",
        28 => "#HV hypervisor injection",
        29 => "#VC VMM communication",
        30 => "#SX security exception",
        _ => "reserved exception",
    }
}

/// The vectors for which the CPU pushes an error code.
pub const HAS_ERROR_CODE: [u8; 10] = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

/// True if the CPU pushes an error code for `vector`.
pub fn has_error_code(vector: u8) -> bool {
    HAS_ERROR_CODE.contains(&vector)
}

/// Page-fault error code bits (Intel SDM vol. 3, 4.7).
pub mod pf {
    pub const PROTECTION_VIOLATION: u64 = 1 << 0;
    pub const WRITE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const RESERVED_BIT: u64 = 1 << 3;
    pub const INSTRUCTION_FETCH: u64 = 1 << 4;
}

/// What an error code says, as the rest of the report's `error code 0x..` line:
/// `: page not present, read, kernel mode` for #PF, `: selector index 3 in GDT`
/// for the selector errors (#TS, #NP, #SS, #GP, #AC, #CP) with a non-zero code,
/// nothing otherwise. Display it right after the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode {
    pub vector: u8,
    pub code: u64,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.code;
        let pick =
            |bit: u64, yes: &'static str, no: &'static str| if c & bit != 0 { yes } else { no };
        match self.vector {
            14 => write!(
                f,
                ": {}, {}, {}{}{}",
                pick(
                    pf::PROTECTION_VIOLATION,
                    "protection violation",
                    "page not present"
                ),
                pick(pf::WRITE, "write", "read"),
                pick(pf::USER, "user mode", "kernel mode"),
                pick(pf::INSTRUCTION_FETCH, ", instruction fetch", ""),
                pick(pf::RESERVED_BIT, ", reserved bit set", ""),
            ),
            10 | 11 | 12 | 13 | 17 | 21 if c != 0 => {
                let table = match (c >> 1) & 3 {
                    0 => "GDT",
                    2 => "LDT",
                    _ => "IDT",
                };
                write!(
                    f,
                    ": selector index {} in {table}{}",
                    (c >> 3) & 0x1fff,
                    pick(1, ", external event", "")
                )
            }
            _ => Ok(()),
        }
    }
}

/// One exception-table entry (Linux's `__ex_table`): where a fault may happen,
/// where to resume.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Address of the instruction that may fault.
    pub insn: u64,
    /// Address to resume at.
    pub fixup: u64,
}

/// The fixup for a fault at `rip`, if `table` lists it. The table is small (one
/// entry per faulting instruction of the accessors) and unsorted: a linear scan.
pub fn search(table: &[Entry], rip: u64) -> Option<u64> {
    table.iter().find(|e| e.insn == rip).map(|e| e.fixup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(vector: u8, code: u64) -> String {
        ErrorCode { vector, code }.to_string()
    }

    #[test]
    fn page_fault_codes() {
        assert_eq!(text(14, 0), ": page not present, read, kernel mode");
        assert_eq!(text(14, 0b11), ": protection violation, write, kernel mode");
        assert_eq!(
            text(14, 0b11111),
            ": protection violation, write, user mode, instruction fetch, reserved bit set"
        );
        assert_eq!(
            text(14, 0b10100),
            ": page not present, read, user mode, instruction fetch"
        );
    }

    #[test]
    fn selector_codes() {
        assert_eq!(text(13, 0x18), ": selector index 3 in GDT");
        assert_eq!(text(13, 0x1b), ": selector index 3 in IDT, external event");
        assert_eq!(text(11, 0x2c), ": selector index 5 in LDT");
        assert_eq!(text(10, (0x1fff << 3) | 6), ": selector index 8191 in IDT");
        // A zero code says nothing, nor do vectors without a selector code.
        assert_eq!(text(13, 0), "");
        assert_eq!(text(8, 0x18), "");
    }

    #[test]
    fn names_and_error_code_vectors() {
        assert_eq!(name_of(14), "#PF page fault");
        assert_eq!(name_of(15), "reserved exception");
        assert_eq!(name_of(31), "reserved exception");
        for v in 0..32u8 {
            assert_eq!(
                has_error_code(v),
                [8, 10, 11, 12, 13, 14, 17, 21, 29, 30].contains(&v)
            );
        }
    }

    #[test]
    fn search_finds_only_listed_instructions() {
        let t = [
            Entry {
                insn: 0x1000,
                fixup: 0x2000,
            },
            Entry {
                insn: 0x1010,
                fixup: 0x2010,
            },
        ];
        assert_eq!(search(&t, 0x1010), Some(0x2010));
        assert_eq!(search(&t, 0x1000), Some(0x2000));
        assert_eq!(search(&t, 0x1008), None);
        assert_eq!(search(&[], 0x1000), None);
    }
}
