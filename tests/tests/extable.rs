//! Serial tests of fault recovery: a fault in a fault-safe accessor (`trap pf`,
//! `trap gp`) is resumed through the exception table, the shell goes on and the
//! kernel is not tainted; a fault in code with no fixup (`trap ud`, `trap de`)
//! is an oops that taints the kernel (`version` says why); `oops=panic` stops
//! the machine at an oops instead.

use systest::*;

/// `trap KIND`, then its whole output.
fn trap(vm: &mut Vm, kind: &str) -> Result<String, String> {
    vm.send(&format!("trap {kind}\r"))?;
    Ok(vm.expect(PROMPT)?.replace('\r', ""))
}

fn extable_fixup_leaves_no_taint(vm: &mut Vm) -> Check {
    let clean = vm.ok("version")?;
    ensure(!clean.contains("tainted"), || {
        format!("tainted at boot:\n{clean}")
    })?;
    for (kind, name) in [("pf", "#PF page fault"), ("gp", "#GP general protection")] {
        let out = trap(vm, kind)?;
        ensure(
            out.contains(&format!("!!! CPU exception {name}"))
                && out.contains("command aborted; the shell continues")
                && out.contains(&format!(
                    "error: trap {kind} failed: command aborted by the CPU exception"
                )),
            || format!("trap {kind}:\n{out}"),
        )?;
        // Resumed at the fixup: no oops, no register dump.
        ensure(!out.contains("oops") && !out.contains("RAX "), || {
            format!("trap {kind} went through the last-resort net:\n{out}")
        })?;
    }
    let out = vm.ok("echo alive")?;
    ensure(out.contains("alive"), || out)?;
    let after = vm.ok("version")?;
    ensure(after == clean, || {
        format!("version changed after resumed faults:\nbefore\n{clean}\nafter\n{after}")
    })
}

fn extable_no_fixup_taints(vm: &mut Vm) -> Check {
    ensure(
        vm.banner
            .contains("warning: oops=maybe ignored: expected oops=panic or oops=continue"),
        || format!("no warning for oops=maybe:\n{}", vm.banner),
    )?;
    let out = trap(vm, "ud")?;
    for want in [
        "!!! CPU exception #UD invalid opcode (vector 6)",
        "    RAX 0x",
        "    oops: kernel code faulted with no exception-table fixup; kernel tainted (see 'version')",
        "command aborted; the shell continues",
        "error: trap ud failed: command aborted by the CPU exception",
    ] {
        ensure(out.contains(want), || format!("trap ud lacks {want:?}:\n{out}"))?;
    }
    let v = vm.ok("version")?;
    ensure(
        v.contains(
            "tainted: D (oops: 1 CPU exception in kernel code with no fixup, \
             the first #UD invalid opcode at RIP 0xffffffff8",
        ),
        || format!("version after an oops:\n{v}"),
    )?;
    let out = trap(vm, "de")?;
    ensure(out.contains("kernel tainted"), || out.clone())?;
    let v = vm.ok("version")?;
    ensure(
        v.contains(
            "tainted: D (oops: 2 CPU exceptions in kernel code with no fixup, the first #UD",
        ),
        || format!("version after two oopses:\n{v}"),
    )?;
    let out = vm.ok("echo alive after oops")?;
    ensure(out.contains("alive after oops"), || out)
}

fn extable_oops_panic_stops_the_machine() -> Outcome {
    let mut vm = match Vm::boot(Opts::default().cmdline("oops=panic")) {
        Ok(vm) => vm,
        Err(e) => return Outcome::Failed(format!("boot: {e}")),
    };
    let body = |vm: &mut Vm| -> Check {
        // A resumed fault is no oops: the machine goes on.
        let out = trap(vm, "pf")?;
        ensure(out.contains("command aborted; the shell continues"), || {
            out.clone()
        })?;
        let v = vm.ok("version")?;
        ensure(!v.contains("tainted"), || v.clone())?;
        vm.send("trap ud\r")?;
        vm.expect("oops=panic: system halted")?;
        match vm.wait_exit()? {
            35 => Ok(()),
            st => Err(format!("QEMU exit status {st}, want 35 (failure)")),
        }
    };
    match body(&mut vm) {
        Ok(()) => Outcome::Passed,
        Err(e) => Outcome::Failed(e),
    }
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![
        extable_fixup_leaves_no_taint with |b| with_vm(Opts::default(), b),
        extable_no_fixup_taints with |b| with_vm(Opts::default().cmdline("oops=maybe"), b),
        extable_oops_panic_stops_the_machine,
    ]
}
