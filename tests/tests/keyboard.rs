//! The PS/2 keyboard (IRQ 1): keys pressed through QEMU's monitor (`sendkey`, on
//! q35, which has the i8042 controller microvm lacks) reach the shell as a
//! serial terminal's bytes would.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;
use systest::*;

/// QEMU `sendkey` names of the keys that type `text`, then Enter.
fn keys(text: &str) -> Vec<String> {
    let mut k: Vec<String> = text
        .chars()
        .map(|c| match c {
            ' ' => "spc".to_string(),
            c => c.to_string(),
        })
        .collect();
    k.push("ret".into());
    k
}

fn keyboard_types_a_command() -> Outcome {
    let sock = std::env::temp_dir().join(format!("memkern-kbd-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let o = Opts {
        boot: Boot::PvhQ35,
        qemu_extra: vec![
            "-monitor".into(),
            format!("unix:{},server=on,wait=off", sock.display()),
        ],
        ..Opts::default()
    };
    let r = with_vm(o, |vm| {
        let mut mon = UnixStream::connect(&sock).map_err(|e| format!("monitor socket: {e}"))?;
        for k in keys("echo typed on the keyboard") {
            mon.write_all(format!("sendkey {k}\n").as_bytes())
                .map_err(|e| format!("monitor: {e}"))?;
            // One key at a time: the i8042 holds one scancode.
            std::thread::sleep(Duration::from_millis(30));
        }
        vm.expect("echo typed on the keyboard\r\n")?;
        let out = vm.expect(PROMPT)?;
        ensure(out.contains("typed on the keyboard"), || {
            format!("keyboard line gave:\n{out}")
        })
    });
    let _ = std::fs::remove_file(&sock);
    r
}

pub fn scenarios() -> Vec<Scenario> {
    scenarios![keyboard_types_a_command]
}
