//! sipp, the real SIP client of the end-to-end tests: a UAS (sipp's built-in one or a
//! scenario), a UAC making calls through the proxy, and the check that every call passed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::{free_port, repo_root, sipp_counts, Bg, Kemibox};

/// A sipp UAS on `port` in the server's directory: the built-in `uas`, or `scenario`
/// (whose log goes to `markers.log` there).
pub fn uas(kb: &Kemibox, port: u16, scenario: Option<&Path>) -> Bg {
    let mut cmd = Command::new("sipp");
    match scenario {
        Some(sf) => cmd
            .arg("-sf")
            .arg(sf)
            .args(["-trace_logs", "-log_file", "markers.log"]),
        None => cmd.args(["-sn", "uas"]),
    };
    let uas = cmd
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-nostdin"])
        .current_dir(&kb.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp UAS (install sip-tester)");
    std::thread::sleep(Duration::from_millis(300));
    Bg(uas)
}

/// The call of sipp's built-in UAC with its messages tied to transactions
/// (`tests/sipp/uac.xml`): a late 180 or a retransmitted 200 over UDP does not fail a call.
pub fn uac_scenario() -> PathBuf {
    repo_root().join("tests/sipp/uac.xml")
}

/// sipp's UAC (`uac_scenario`): `calls` calls at `rate`/s to the UAS on `uas` through
/// the proxy on `proxy` (run it with `run_bounded`).
pub fn uac(kb: &Kemibox, proxy: u16, uas: u16, calls: u32, rate: u32) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(uac_scenario())
        .args([
            "-nostdin",
            "-trace_err",
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-timeout",
            "60",
            "-timeout_error",
            &format!("127.0.0.1:{uas}"),
            "-rsa",
            &format!("127.0.0.1:{proxy}"),
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
        ])
        .current_dir(&kb.dir);
    cmd
}

/// Every one of `calls` calls passed (else: sipp's summary, its errors, the server's log).
pub fn assert_clean(out: &Output, calls: u32, kb: &Kemibox) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (ok, failed) = sipp_counts(&stdout);
    let errors: String = std::fs::read_dir(&kb.dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        ok == calls as u64 && failed == 0,
        "{ok} successful, {failed} failed\n{}\nsipp errors:\n{errors}\n{}",
        stdout.lines().rev().take(30).collect::<Vec<_>>().join("\n"),
        kb.log_text()
    );
}
