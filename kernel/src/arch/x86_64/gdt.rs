//! The kernel's GDT: a 64-bit code segment, a data segment and a TSS whose
//! interrupt-stack table gives the double-fault, NMI, machine-check and page-fault
//! handlers stacks of their own, so a kernel stack overflow is still reported.

use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slot of the double-fault handler.
pub const IST_DOUBLE_FAULT: u16 = 0;
/// IST slot of the NMI handler.
pub const IST_NMI: u16 = 1;
/// IST slot of the machine-check handler.
pub const IST_MACHINE_CHECK: u16 = 2;
/// IST slot of the page-fault handler.
pub const IST_PAGE_FAULT: u16 = 3;

const IST_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_SIZE]);

static mut IST_STACKS: [IstStack; 4] = [const { IstStack([0; IST_SIZE]) }; 4];

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(
    GlobalDescriptorTable,
    SegmentSelector,
    SegmentSelector,
    SegmentSelector,
)> = Once::new();

/// Loads the GDT and TSS and reloads every segment register.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let mut ist = tss.interrupt_stack_table;
        for (i, slot) in ist.iter_mut().take(4).enumerate() {
            // SAFETY: only the address of the static is taken; each IST stack is
            // used by exactly one vector.
            let base = unsafe { core::ptr::addr_of!(IST_STACKS[i]) } as u64;
            *slot = VirtAddr::new(base + IST_SIZE as u64);
        }
        tss.interrupt_stack_table = ist;
        tss
    });
    let (gdt, code, data, tss_sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment(tss));
        (gdt, code, data, tss_sel)
    });
    gdt.load();
    // SAFETY: the selectors come from the GDT just loaded and describe valid
    // 64-bit kernel segments and the TSS.
    unsafe {
        CS::set_reg(*code);
        DS::set_reg(*data);
        ES::set_reg(*data);
        SS::set_reg(*data);
        load_tss(*tss_sel);
    }
}
