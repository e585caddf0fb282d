//! The serial test harness: boots the real memkern kernel in QEMU (TCG) and talks
//! to its shell over the serial line with `rexpect`.
//!
//! A check is a plain function of a booted [`Vm`] returning [`Check`]; a
//! [`Scenario`] names it and boots what it needs (here through [`with_vm`]), and
//! [`scenarios!`] registers it under its function's name:
//!
//! ```ignore
//! fn kmalloc_rounds_up(vm: &mut Vm) -> Check {
//!     let out = vm.ok("kmalloc 80")?;
//!     ensure(field(&out, "obj") == Some("128"), || {
//!         format!("kmalloc 80 gave:\n{out}")
//!     })
//! }
//!
//! pub fn scenarios() -> Vec<Scenario> {
//!     scenarios![kmalloc_rounds_up with |b| with_vm(Opts::default(), b)]
//! }
//! ```
//!
//! Every QEMU has a time limit (a watchdog thread kills it) and is killed when
//! its [`Vm`] is dropped, whatever happened.

use rexpect::session::StreamSession;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shell prompt (SHELL.md).
pub const PROMPT: &str = "mm> ";

/// Result of a check or scenario.
pub type Check = Result<(), String>;

/// How the kernel is started.
#[derive(Clone, Debug)]
pub enum Boot {
    /// QEMU `-kernel` through the PVH note, on `-M microvm`.
    Pvh,
    /// QEMU `-kernel` through the PVH note, on `-M q35` (SeaBIOS first).
    PvhQ35,
    /// The Limine ISO from SeaBIOS.
    IsoBios(PathBuf),
    /// The Limine ISO from OVMF (path of the ISO, path of OVMF code, vars copy).
    IsoUefi(PathBuf, PathBuf, PathBuf),
}

/// Options of one boot.
#[derive(Clone, Debug)]
pub struct Opts {
    pub boot: Boot,
    /// RAM size as QEMU takes it (`-m`).
    pub mem: String,
    /// Kernel command line (PVH boots only).
    pub cmdline: String,
    /// Whole-life limit of this QEMU.
    pub life: Duration,
    /// Limit of one expect.
    pub step: Duration,
    /// More QEMU arguments, after the usual ones (say `-gdb tcp::PORT -S`).
    pub qemu_extra: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            boot: Boot::Pvh,
            mem: "2G".into(),
            cmdline: String::new(),
            life: Duration::from_secs(120),
            step: Duration::from_secs(30),
            qemu_extra: Vec::new(),
        }
    }
}

impl Opts {
    /// Same options with another RAM size.
    pub fn mem(mut self, m: &str) -> Self {
        self.mem = m.into();
        self
    }
    /// Same options with a kernel command line.
    pub fn cmdline(mut self, c: &str) -> Self {
        self.cmdline = c.into();
        self
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The kernel ELF: `$MEMKERN_KERNEL`, else the release build in target/.
pub fn kernel_path() -> PathBuf {
    std::env::var_os("MEMKERN_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/x86_64-unknown-none/release/kernel"))
}

/// A running memkern under QEMU.
pub struct Vm {
    session: StreamSession<ChildStdin>,
    /// Limit of one expect (`Opts::step`).
    step: Duration,
    child: Child,
    done: Arc<AtomicBool>,
    stderr: Arc<std::sync::Mutex<String>>,
    /// Everything printed before the first prompt.
    pub banner: String,
    /// Time from spawning QEMU to the first prompt.
    pub boot_time: Duration,
}

fn qemu_args(o: &Opts, kernel: &Path) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-m".into(),
        o.mem.clone(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        "stdio".into(),
        "-monitor".into(),
        "none".into(),
        "-no-reboot".into(),
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=0x04".into(),
        "-accel".into(),
        "tcg".into(),
    ];
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    match &o.boot {
        Boot::Pvh | Boot::PvhQ35 => {
            let m = if matches!(o.boot, Boot::Pvh) {
                "microvm"
            } else {
                "q35"
            };
            push(&["-M", m, "-kernel", kernel.to_str().unwrap()]);
            if !o.cmdline.is_empty() {
                push(&["-append", &o.cmdline]);
            }
        }
        Boot::IsoBios(iso) => push(&["-M", "q35", "-cdrom", iso.to_str().unwrap(), "-boot", "d"]),
        Boot::IsoUefi(iso, code, vars) => push(&[
            "-M",
            "q35",
            "-drive",
            &format!("if=pflash,format=raw,readonly=on,file={}", code.display()),
            "-drive",
            &format!("if=pflash,format=raw,file={}", vars.display()),
            "-cdrom",
            iso.to_str().unwrap(),
        ]),
    }
    a.extend(o.qemu_extra.iter().cloned());
    a
}

impl Vm {
    /// Boots the default kernel and waits for the first prompt.
    pub fn boot(o: Opts) -> Result<Vm, String> {
        let start = Instant::now();
        let mut vm = Vm::start(o)?;
        vm.banner = vm.expect(PROMPT)?;
        vm.boot_time = start.elapsed();
        Ok(vm)
    }

    /// Starts QEMU and returns at once, without waiting for anything (for a
    /// machine that waits for a debugger first); [`Vm::boot`] waits for the prompt.
    pub fn start(o: Opts) -> Result<Vm, String> {
        let kernel = kernel_path();
        if matches!(o.boot, Boot::Pvh | Boot::PvhQ35) && !kernel.exists() {
            return Err(format!(
                "no kernel at {} (run `make kernel`)",
                kernel.display()
            ));
        }
        let mut child = Command::new("qemu-system-x86_64")
            .args(qemu_args(&o, &kernel))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            sink.lock().unwrap().push_str(&s);
        });
        // Watchdog: kill the QEMU when its life is over.
        let done = Arc::new(AtomicBool::new(false));
        let (flag, pid, life) = (done.clone(), child.id(), o.life);
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while t0.elapsed() < life {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !flag.load(Ordering::SeqCst) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        });
        let session =
            rexpect::session::spawn_stream(stdout, stdin, Some(o.step.as_millis() as u64));
        Ok(Vm {
            session,
            step: o.step,
            child,
            done,
            stderr,
            banner: String::new(),
            boot_time: Duration::ZERO,
        })
    }

    /// Waits for `needle`; returns what came before it.
    pub fn expect(&mut self, needle: &str) -> Result<String, String> {
        self.session
            .exp_string(needle)
            .map_err(|e| self.fail(&format!("waiting for {needle:?}: {e}")))
    }

    /// [`Vm::expect`] polling every millisecond (rexpect polls every 100 ms),
    /// as [`Vm::cmd`] does; fails after `limit` or as soon as QEMU has exited.
    pub fn expect_quick(&mut self, needle: &str, limit: Duration) -> Result<String, String> {
        let t0 = Instant::now();
        let mut got = String::new();
        loop {
            while let Some(c) = self.session.try_read() {
                got.push(c);
                if got.ends_with(needle) {
                    got.truncate(got.len() - needle.len());
                    return Ok(got);
                }
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if exited || t0.elapsed() > limit {
                let why = if exited { "QEMU exited" } else { "timeout" };
                return Err(self.fail(&format!("waiting for {needle:?}: {why}; got:\n{got}")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn fail(&self, what: &str) -> String {
        let err = self.stderr.lock().unwrap().clone();
        if err.trim().is_empty() {
            what.to_string()
        } else {
            format!("{what}\n  qemu stderr: {}", err.trim())
        }
    }

    /// Sends bytes as they are (no line end).
    pub fn send(&mut self, s: &str) -> Check {
        self.session
            .send(s)
            .map(|_| ())
            .map_err(|e| format!("send: {e}"))?;
        self.session.flush().map_err(|e| format!("flush: {e}"))
    }

    /// Sends a large block of bytes in one go (all of it, however long). QEMU's
    /// output cannot back up meanwhile: rexpect reads it on its own thread into
    /// an unbounded buffer, so blocking here while the kernel works through the
    /// input (and echoes it) cannot deadlock.
    pub fn send_all(&mut self, bytes: &[u8]) -> Check {
        use std::io::Write;
        self.session
            .writer
            .write_all(bytes)
            .map_err(|e| format!("send: {e}"))?;
        self.session.flush().map_err(|e| format!("flush: {e}"))
    }

    /// Runs one command line and returns its output: the lines between the echo
    /// of the command and the next prompt, with CRs removed.
    pub fn cmd(&mut self, line: &str) -> Result<String, String> {
        self.send(&format!("{line}\r"))?;
        let echoed = format!("{line}\r\n");
        self.expect_quick(&echoed, self.step)?;
        let out = self.expect_quick(PROMPT, self.step)?;
        Ok(out.replace('\r', ""))
    }

    /// Runs a command that must succeed (no `error:` line).
    pub fn ok(&mut self, line: &str) -> Result<String, String> {
        let out = self.cmd(line)?;
        if out.lines().any(|l| l.starts_with("error: ")) {
            return Err(format!("`{line}` failed:\n{out}"));
        }
        Ok(out)
    }

    /// Runs a command that must fail with exactly one `error:` line containing
    /// `want`; returns that line.
    pub fn err(&mut self, line: &str, want: &str) -> Result<String, String> {
        let out = self.cmd(line)?;
        let errs: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
        match errs.as_slice() {
            [one] if one.contains(want) => Ok(one.to_string()),
            _ => Err(format!(
                "`{line}`: expected one `error:` line containing {want:?}, got:\n{out}"
            )),
        }
    }

    /// `poweroff`, then the QEMU exit status.
    pub fn poweroff(mut self) -> Result<i32, String> {
        self.send("poweroff\r")?;
        self.wait_exit()
    }

    /// Waits for QEMU to end (within the life limit) and returns its status.
    pub fn wait_exit(&mut self) -> Result<i32, String> {
        let t0 = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => return Ok(st.code().unwrap_or(-1)),
                Ok(None) if t0.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => return Err("QEMU did not exit".into()),
                Err(e) => return Err(format!("wait: {e}")),
            }
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Value of `key=` in a result line such as `#1 kmalloc size=80 obj=128 ...`.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Parses a decimal or 0x number.
pub fn num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Fails with a message unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Check {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Outcome of one scenario in the runner.
pub enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

/// Scenarios named after their functions, so that no name is written twice:
///
/// ```ignore
/// scenarios![
///     poweroff_exit_status,                       // fn() -> Outcome
///     trap_others with pvh,                       // fn(&mut Vm) -> Check, run by `pvh`
///     lowmem with |b| with_vm(Opts::default().mem("128M"), b),
/// ]
/// ```
///
/// `NAME with RUNNER` runs `RUNNER(NAME)`; the runner must capture nothing.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident $(with $run:expr)?),* $(,)?) => {
        vec![$($crate::Scenario {
            name: stringify!($name),
            run: $crate::scenarios!(@run $name $(, $run)?),
        }),*]
    };
    (@run $name:ident) => { $name };
    (@run $name:ident, $run:expr) => { || ($run)($name) };
}

/// A named scenario: boots what it needs itself.
pub struct Scenario {
    pub name: &'static str,
    pub run: fn() -> Outcome,
}

/// Runs scenarios `jobs` at a time (filtered by the command-line substrings),
/// prints one line each and the closing `N passed, N failed, N skipped` line;
/// exits non-zero if any failed.
pub fn run_all(scenarios: Vec<Scenario>, jobs: usize) -> ! {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let list: Vec<Scenario> = scenarios
        .into_iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    let total = list.len();
    println!("\nrunning {total} serial tests ({jobs} at a time)");
    let queue = Arc::new(std::sync::Mutex::new(
        list.into_iter().collect::<std::collections::VecDeque<_>>(),
    ));
    let results = Arc::new(std::sync::Mutex::new((
        0usize,
        0usize,
        0usize,
        Vec::<String>::new(),
    )));
    let mut handles = Vec::new();
    for _ in 0..jobs.max(1) {
        let (queue, results) = (queue.clone(), results.clone());
        handles.push(std::thread::spawn(move || loop {
            let Some(s) = queue.lock().unwrap().pop_front() else {
                return;
            };
            let t0 = Instant::now();
            let outcome = std::panic::catch_unwind(s.run).unwrap_or_else(|p| {
                Outcome::Failed(
                    p.downcast_ref::<String>()
                        .cloned()
                        .or(p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default(),
                )
            });
            let ms = t0.elapsed().as_millis();
            let mut r = results.lock().unwrap();
            match outcome {
                Outcome::Passed => {
                    r.0 += 1;
                    println!("test {} ... ok ({ms} ms)", s.name);
                }
                Outcome::Failed(why) => {
                    r.1 += 1;
                    println!("test {} ... FAILED ({ms} ms)", s.name);
                    r.3.push(format!("---- {} ----\n{why}\n", s.name));
                }
                Outcome::Skipped(why) => {
                    r.2 += 1;
                    println!("test {} ... skipped: {why}", s.name);
                }
            }
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    let r = results.lock().unwrap();
    if !r.3.is_empty() {
        println!("\nfailures:\n");
        for f in &r.3 {
            println!("{f}");
        }
    }
    println!("\nserial: {} passed, {} failed, {} skipped", r.0, r.1, r.2);
    std::process::exit(if r.1 == 0 { 0 } else { 1 })
}

/// Boots with `opts`, runs `body`, and turns errors into a failed outcome.
pub fn with_vm(opts: Opts, body: impl FnOnce(&mut Vm) -> Check) -> Outcome {
    match Vm::boot(opts) {
        Ok(mut vm) => match body(&mut vm) {
            Ok(()) => Outcome::Passed,
            Err(e) => Outcome::Failed(e),
        },
        Err(e) => Outcome::Failed(format!("boot: {e}")),
    }
}
