//! Pipelined input over the real serial line: many command lines sent in ONE
//! write must all run, in order, each with its answer. The kernel's input queue
//! is far smaller than these bursts, so they pass only if the serial driver
//! leaves what does not fit in the UART (flow control) instead of dropping it.

use std::time::{Duration, Instant};
use systest::*;

/// Reads `lines.len()` answers: the text before each following prompt must be
/// the echo of the line, then an answer that `check` accepts.
fn expect_answers(vm: &mut Vm, lines: &[String], check: impl Fn(usize, &str) -> Check) -> Check {
    for (i, line) in lines.iter().enumerate() {
        let out = vm
            .expect(PROMPT)
            .map_err(|e| format!("answer {i} of {} (`{line}`): {e}", lines.len()))?
            .replace('\r', "");
        let answer = out.strip_prefix(&format!("{line}\n")).ok_or_else(|| {
            format!(
                "answer {i}: expected the echo of `{line}`, got (merged or lost input?):\n{out}"
            )
        })?;
        ensure(!answer.contains("error:"), || {
            format!("answer {i} to `{line}` is an error:\n{answer}")
        })?;
        check(i, answer).map_err(|e| format!("answer {i} to `{line}`: {e}"))?;
    }
    Ok(())
}

fn burst(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\r").into_bytes())
        .collect()
}

/// (a) 200 × `memstat` in one write (1,600 bytes): exactly 200 answers.
fn pipelined_memstat_200(vm: &mut Vm) -> Check {
    let lines = vec!["memstat".to_string(); 200];
    vm.send_all(&burst(&lines))?;
    expect_answers(vm, &lines, |_, a| {
        ensure(
            a.starts_with("total: ") && a.contains("zone NORMAL"),
            || format!("not a memstat answer:\n{a}"),
        )
    })?;
    // Nothing more: the next command's echo follows the 200th prompt directly.
    let out = vm.ok("echo after-burst")?;
    ensure(out == "after-burst\n", || {
        format!("extra output after 200 answers:\n{out}")
    })
}

/// (b) A mixed burst of distinct commands (echo, kmalloc, free, memstat), every
/// answer in order, none merged.
fn pipelined_mixed_burst(vm: &mut Vm) -> Check {
    let mut lines = Vec::new();
    // What each answer must start with.
    let mut want = Vec::new();
    let mut handle = 0u64;
    for i in 0..1000u64 {
        match i % 10 {
            3 => {
                handle += 1;
                let size = 100 + i;
                lines.push(format!("kmalloc {size}"));
                want.push(format!("#{handle} kmalloc size={size} "));
            }
            1 | 5 => {
                // A long answer: the shell falls behind the sender here.
                lines.push("memstat".to_string());
                want.push("total: ".to_string());
            }
            7 => {
                lines.push(format!("free #{handle}"));
                want.push(format!("freed #{handle} kmalloc size={} ", 100 + i - 4));
            }
            _ => {
                lines.push(format!("echo line-{i}"));
                want.push(format!("line-{i}\n"));
            }
        }
    }
    let bytes = burst(&lines);
    ensure(bytes.len() > 4096, || {
        format!("burst only {} bytes", bytes.len())
    })?;
    vm.send_all(&bytes)?;
    expect_answers(vm, &lines, |i, a| {
        let one_line = a.lines().count() == 1 || lines[i] == "memstat";
        ensure(a.starts_with(&want[i]) && one_line, || {
            format!("expected an answer starting {:?}, got:\n{a}", want[i])
        })
    })?;
    let out = vm.ok("handles")?;
    ensure(!out.contains("kmalloc"), || {
        format!("every kmalloc was freed, yet:\n{out}")
    })
}

/// (c) 10,000 lines in one write (about 100 KB), all answered in order.
fn pipelined_10000_lines(vm: &mut Vm) -> Check {
    let lines: Vec<String> = (0..10_000).map(|i| format!("echo {i}")).collect();
    let t0 = Instant::now();
    vm.send_all(&burst(&lines))?;
    expect_answers(vm, &lines, |i, a| {
        ensure(a == format!("{i}\n"), || format!("expected {i}, got:\n{a}"))
    })?;
    let took = t0.elapsed();
    println!("pipelined_10000_lines: 10,000 lines answered in {took:.1?}");
    ensure(took < Duration::from_secs(60), || {
        format!("10,000 lines took {took:.1?} (limit 60 s)")
    })
}

/// Each answer comes within milliseconds; a lost one fails after 10 s, not 30.
fn quick() -> Opts {
    Opts {
        step: Duration::from_secs(10),
        ..Opts::default()
    }
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![
        pipelined_memstat_200 with |b| with_vm(quick(), b),
        pipelined_mixed_burst with |b| with_vm(quick(), b),
        pipelined_10000_lines with |b| with_vm(Opts { life: Duration::from_secs(90), ..Opts::default() }, b),
    ]
}
