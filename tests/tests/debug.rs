//! `make debug` as a new user follows it: QEMU waits for gdb, and the gdb command
//! that `make debug` prints (read from `make -n debug`, so the test runs exactly
//! what the user is told) attaches, stops at the kernel's entry, and lets it boot
//! on to the shell when gdb detaches.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use systest::*;

/// The gdb command line `make debug` prints, split into arguments.
fn printed_gdb_command() -> Result<Vec<String>, String> {
    let out = Command::new("make")
        .args(["-n", "-s", "--no-print-directory", "-C"])
        .arg(workspace())
        .arg("debug")
        .output()
        .map_err(|e| format!("cannot run make: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("gdb ") && l.contains("-ex"))
        .ok_or_else(|| format!("`make -n debug` prints no gdb command:\n{text}"))?;
    // The recipe is `echo "  gdb KERNEL -ex '...' ..."`: take what echo prints.
    let said = line
        .trim()
        .strip_prefix("echo \"")
        .and_then(|l| l.strip_suffix('"'))
        .ok_or_else(|| format!("unexpected recipe line: {line}"))?;
    split_shell_words(said)
}

/// Splits on blanks, honouring single quotes (all the printed command uses).
fn split_shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                cur.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => words.extend(cur.take()),
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if quoted {
        return Err(format!("unbalanced quote in {s:?}"));
    }
    words.extend(cur);
    Ok(words)
}

/// Runs `gdb -batch` with `args`; kills it after `limit`. Returns its output.
fn run_gdb(args: &[String], limit: Duration) -> Result<String, String> {
    let mut child = Command::new("gdb")
        .args(["-batch", "-nx"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start gdb ({e}); `make deps` installs it"))?;
    let (mut o, mut e) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = o.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = e.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let timed_out = loop {
        match child.try_wait() {
            Ok(Some(_)) => break false,
            Ok(None) if t0.elapsed() < limit => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
        }
    };
    let text = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    if timed_out {
        return Err(format!("gdb did not finish within {limit:?}:\n{text}"));
    }
    Ok(text)
}

fn gdb_stops_at_kmain() -> Outcome {
    let printed = match printed_gdb_command() {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e),
    };
    // `gdb KERNEL -ex ... -ex ...`: keep the commands, use this test's kernel,
    // and point `target remote :1234` at a free port.
    if printed.len() < 3 || printed[0] != "gdb" {
        return Outcome::Failed(format!("not a gdb command: {printed:?}"));
    }
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => return Outcome::Failed(format!("no free port: {e}")),
    };
    let mut args = vec![kernel_path().display().to_string()];
    args.extend(
        printed[2..]
            .iter()
            .map(|a| a.replace("remote :1234", &format!("remote :{port}"))),
    );
    let o = Opts {
        qemu_extra: vec!["-gdb".into(), format!("tcp:127.0.0.1:{port}"), "-S".into()],
        ..Opts::default()
    };
    let mut vm = match Vm::start(o) {
        Ok(vm) => vm,
        Err(e) => return Outcome::Failed(e),
    };
    let check = (|| {
        let out = run_gdb(&args, Duration::from_secs(30))?;
        ensure(out.contains("Breakpoint 1, kernel::kmain"), || {
            format!("gdb {args:?} did not stop at kernel::kmain:\n{out}")
        })?;
        // gdb -batch detaches at the end: the kernel boots on to the shell.
        vm.expect(PROMPT)?;
        let out = vm.ok("echo booted after gdb")?;
        ensure(out.contains("booted after gdb"), || out)
    })();
    match check {
        Ok(()) => Outcome::Passed,
        Err(e) => Outcome::Failed(e),
    }
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![gdb_stops_at_kmain]
}
