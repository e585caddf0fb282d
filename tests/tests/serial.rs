//! Serial expect tests: each scenario boots the real kernel in QEMU (TCG) and
//! drives the shell over the serial line. Run with `make test` (which builds the
//! kernel first) or `cargo test -p systest --test serial [FILTER...]`.

use std::time::Duration;
use systest::*;

mod abuse;
mod debug;
mod extable;
mod fault;
mod input;
mod io;
mod keyboard;
mod oom;
mod pages;
mod slab;
mod vm;
mod vmalloc;

fn pvh(body: fn(&mut Vm) -> Check) -> Outcome {
    with_vm(Opts::default(), body)
}

// ---- boot and basics -------------------------------------------------------------

fn boot_banner_and_version(vm: &mut Vm) -> Check {
    ensure(vm.banner.contains("memkern"), || {
        format!("no banner before the prompt:\n{}", vm.banner)
    })?;
    let out = vm.ok("version")?;
    ensure(out.contains("memkern") && out.contains("pvh"), || {
        format!("version output:\n{out}")
    })
}

fn boot_cmdline_reaches_kernel() -> Outcome {
    with_vm(
        Opts::default().cmdline("mm.lowmem=512M hello=world"),
        |vm| {
            let out = vm.ok("version")?;
            ensure(out.contains("mm.lowmem=512M hello=world"), || {
                format!("command line not shown:\n{out}")
            })
        },
    )
}

fn boot_q35_seabios_pvh() -> Outcome {
    let o = Opts {
        boot: Boot::PvhQ35,
        ..Opts::default()
    };
    with_vm(o, |vm| {
        let out = vm.ok("echo q35 ok")?;
        ensure(out.contains("q35 ok"), || out.clone())
    })
}

fn help_lists_every_command(vm: &mut Vm) -> Check {
    let out = vm.ok("help")?;
    for c in [
        "help", "echo", "history", "clear", "version", "reboot", "poweroff", "trap", "memstat",
        "handles", "free",
    ] {
        ensure(out.lines().any(|l| l.trim_start().starts_with(c)), || {
            format!("help does not list {c}:\n{out}")
        })?;
    }
    let one = vm.ok("help trap")?;
    ensure(one.contains("pf"), || format!("help trap:\n{one}"))
}

fn unknown_command_is_one_error(vm: &mut Vm) -> Check {
    vm.err("frobnicate 1 2", "unknown command 'frobnicate'")?;
    vm.err("trap xx", "xx")?;
    let out = vm.ok("echo still here")?;
    ensure(out.contains("still here"), || out)
}

fn too_long_line_is_an_error(vm: &mut Vm) -> Check {
    let long = "x".repeat(10_000);
    vm.send(&format!("{long}\r"))?;
    let out = vm.expect(PROMPT)?;
    let errs = out.lines().filter(|l| l.contains("error: ")).count();
    ensure(errs == 1 && out.contains("line too long"), || {
        format!("expected one too-long error, got:\n{out}")
    })?;
    let out = vm.ok("echo after long line")?;
    ensure(out.contains("after long line"), || out)
}

fn binary_and_escape_input(vm: &mut Vm) -> Check {
    vm.send("ab\x01\x02cd\r")?;
    let out = vm.expect(PROMPT)?;
    ensure(
        out.contains("error: line contains non-printable byte 0x01"),
        || format!("binary line:\n{out}"),
    )?;
    // An unknown escape sequence is swallowed whole.
    vm.send("\x1b[5~\x1b[1;5Pecho esc ok\r")?;
    let out = vm.expect(PROMPT)?;
    ensure(out.contains("esc ok") && !out.contains("error"), || {
        format!("escape sequences:\n{out}")
    })
}

fn editing_keys(vm: &mut Vm) -> Check {
    // Backspace (both codes), Ctrl-U, Ctrl-C.
    vm.send("echo abx\x7f\x08bc\r")?;
    let out = vm.expect(PROMPT)?;
    ensure(out.lines().any(|l| l.trim() == "abc"), || {
        format!("backspace:\n{out}")
    })?;
    vm.send("garbage\x15echo cleared\r")?;
    let out = vm.expect(PROMPT)?;
    ensure(
        out.contains("cleared") && !out.contains("unknown command"),
        || format!("ctrl-u:\n{out}"),
    )?;
    vm.send("echo never\x03")?;
    vm.expect(PROMPT)?;
    vm.send("echo after ctrl-c\r")?;
    let out = vm.expect(PROMPT)?;
    ensure(
        out.contains("after ctrl-c") && !out.contains("never\r\nnever"),
        || format!("ctrl-c:\n{out}"),
    )?;
    // History: up arrow recalls the previous line.
    vm.ok("echo first")?;
    vm.ok("echo second")?;
    vm.send("\x1b[A\x1b[A\r")?;
    let out = vm.expect(PROMPT)?;
    ensure(out.lines().any(|l| l.trim() == "first"), || {
        format!("history recall:\n{out}")
    })?;
    // CRLF counts as one line end: no empty extra command in between.
    vm.send("echo crlf\r\n")?;
    vm.expect(PROMPT)?;
    let hist = vm.ok("history")?;
    ensure(hist.contains("echo crlf"), || hist.clone())
}

fn poweroff_exit_status() -> Outcome {
    match Vm::boot(Opts::default()) {
        Ok(vm) => match vm.poweroff() {
            Ok(33) => Outcome::Passed,
            Ok(st) => Outcome::Failed(format!("poweroff: QEMU exit status {st}, want 33")),
            Err(e) => Outcome::Failed(e),
        },
        Err(e) => Outcome::Failed(e),
    }
}

fn reboot_resets_the_machine() -> Outcome {
    // QEMU runs with -no-reboot, so a reset ends it with status 0.
    match Vm::boot(Opts::default()) {
        Ok(mut vm) => match vm.send("reboot\r").and_then(|_| vm.wait_exit()) {
            Ok(0) => Outcome::Passed,
            Ok(st) => Outcome::Failed(format!("reboot: QEMU exit status {st}, want 0 (reset)")),
            Err(e) => Outcome::Failed(e),
        },
        Err(e) => Outcome::Failed(e),
    }
}

fn clear_sends_the_ansi_clear(vm: &mut Vm) -> Check {
    let out = vm.ok("clear")?;
    ensure(out.contains("\x1b[2J"), || format!("clear printed {out:?}"))
}

// ---- CPU exceptions ----------------------------------------------------------------

fn trap_case(vm: &mut Vm, kind: &str, name: &str, details: &[&str]) -> Check {
    vm.send(&format!("trap {kind}\r"))?;
    let out = vm.expect(PROMPT)?.replace('\r', "");
    ensure(out.contains(&format!("!!! CPU exception {name}")), || {
        format!("trap {kind}: no report:\n{out}")
    })?;
    for d in details {
        ensure(out.contains(d), || {
            format!("trap {kind}: report lacks {d:?}:\n{out}")
        })?;
    }
    let rip = out
        .split("RIP")
        .nth(1)
        .and_then(|r| num(r.split_whitespace().next()?));
    ensure(
        rip.is_some_and(|r| mm::layout::KERNEL_IMAGE.contains(r)),
        || format!("trap {kind}: no RIP in the kernel image:\n{out}"),
    )?;
    let out = vm.ok("echo alive after trap")?;
    ensure(out.contains("alive after trap"), || out)
}

fn trap_page_fault(vm: &mut Vm) -> Check {
    trap_case(
        vm,
        "pf",
        "#PF page fault (vector 14)",
        &[
            "error code 0x0: page not present, read, kernel mode",
            "CR2    0x00000000deadb000",
            "command aborted",
            "error: trap pf failed: command aborted by the CPU exception",
        ],
    )
}

fn trap_others(vm: &mut Vm) -> Check {
    trap_case(
        vm,
        "de",
        "#DE divide error (vector 0)",
        &["command aborted"],
    )?;
    trap_case(
        vm,
        "ud",
        "#UD invalid opcode (vector 6)",
        &["command aborted"],
    )?;
    trap_case(
        vm,
        "gp",
        "#GP general protection fault (vector 13)",
        &["error code 0x0", "command aborted"],
    )?;
    trap_case(
        vm,
        "bp",
        "#BP breakpoint (vector 3)",
        &["execution continues"],
    )?;
    // Many faults in a row: the IST stacks and the recovery point are reused, and
    // an aborted command leaks nothing.
    let before = pages::memstat(vm)?;
    for _ in 0..20 {
        vm.send("trap pf\r")?;
        vm.expect("failed: command aborted by the CPU exception")?;
        vm.expect(PROMPT)?;
    }
    let after = pages::memstat(vm)?;
    ensure(before == after, || {
        format!("20 faults changed memory:\nbefore {before:?}\nafter  {after:?}")
    })?;
    let out = vm.ok("echo survived 20 faults")?;
    ensure(out.contains("survived"), || out)
}

// ---- Limine (only with an ISO) ---------------------------------------------------

fn iso() -> Option<std::path::PathBuf> {
    std::env::var_os("MEMKERN_ISO")
        .filter(|s| !s.is_empty())
        .map(Into::into)
}

fn limine_bios() -> Outcome {
    let Some(iso) = iso() else {
        return Outcome::Skipped("LIMINE_DIR not set, no ISO built".into());
    };
    let o = Opts {
        boot: Boot::IsoBios(iso),
        step: Duration::from_secs(60),
        ..Opts::default()
    };
    with_vm(o, |vm| {
        let out = vm.ok("version")?;
        ensure(out.contains("limine-bios"), || out.clone())?;
        let st = vm.ok("memstat")?;
        ensure(st.contains("zone UNMAPPED"), || st)
    })
}

fn limine_uefi() -> Outcome {
    let Some(iso) = iso() else {
        return Outcome::Skipped("LIMINE_DIR not set, no ISO built".into());
    };
    let code = std::env::var("OVMF_CODE").unwrap_or_default();
    let vars = std::env::var("OVMF_VARS").unwrap_or_default();
    if code.is_empty() || vars.is_empty() {
        return Outcome::Skipped("OVMF not installed".into());
    }
    let copy = std::env::temp_dir().join(format!("memkern-vars-{}.fd", std::process::id()));
    if let Err(e) = std::fs::copy(&vars, &copy) {
        return Outcome::Failed(format!("copy OVMF vars: {e}"));
    }
    let o = Opts {
        boot: Boot::IsoUefi(iso, code.into(), copy.clone()),
        step: Duration::from_secs(90),
        life: Duration::from_secs(180),
        ..Opts::default()
    };
    let r = with_vm(o, |vm| {
        let out = vm.ok("version")?;
        ensure(out.contains("limine-uefi"), || out.clone())?;
        let out = vm.cmd("trap pf")?;
        ensure(
            out.contains("#PF page fault") && out.contains("command aborted"),
            || out.clone(),
        )?;
        let out = vm.ok("echo uefi alive")?;
        ensure(out.contains("uefi alive"), || out)
    });
    let _ = std::fs::remove_file(copy);
    r
}

fn main() {
    let mut all = scenarios![
        boot_banner_and_version with pvh,
        boot_cmdline_reaches_kernel,
        boot_q35_seabios_pvh,
        help_lists_every_command with pvh,
        unknown_command_is_one_error with pvh,
        too_long_line_is_an_error with pvh,
        binary_and_escape_input with pvh,
        editing_keys with pvh,
        poweroff_exit_status,
        reboot_resets_the_machine,
        clear_sends_the_ansi_clear with pvh,
        trap_page_fault with pvh,
        trap_others with pvh,
        limine_bios,
        limine_uefi,
    ];
    all.extend(pages::scenarios());
    all.extend(slab::scenarios());
    all.extend(abuse::scenarios());
    all.extend(input::scenarios());
    all.extend(oom::scenarios());
    all.extend(fault::scenarios());
    all.extend(extable::scenarios());
    all.extend(debug::scenarios());
    all.extend(keyboard::scenarios());
    all.extend(io::scenarios());
    all.extend(vm::scenarios());
    all.extend(vmalloc::scenarios());
    run_all(all, 3)
}
