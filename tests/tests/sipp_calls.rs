//! sipp (Debian `sip-tester`) calls INVITE-180-200-ACK-BYE-200 through kemibox running
//! the stateless example script, over UDP, TCP, TLS and IPv6: zero failed calls.

use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::*;

const CALLS: u32 = 40;

fn uas(ip: &str, port: u16, dir: &std::path::Path) -> Bg {
    let child = Command::new("sipp")
        .args(["-sn", "uas", "-i", ip, "-p", &port.to_string(), "-nostdin"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp UAS (install sip-tester)");
    std::thread::sleep(Duration::from_millis(300));
    Bg(child)
}

/// Runs the UAC for CALLS calls and asserts every one succeeded.
fn uac(dir: &std::path::Path, args: &[&str]) {
    let calls = CALLS.to_string();
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(sipp::uac_scenario())
        .args([
            "-nostdin",
            "-m",
            &calls,
            "-r",
            "20",
            "-timeout",
            "40",
            "-timeout_error",
        ])
        .args(args)
        .current_dir(dir);
    let out = run_bounded(&mut cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (ok, failed) = sipp_counts(&stdout);
    assert!(
        out.status.success() && ok == CALLS as u64 && failed == 0,
        "sipp {args:?}: {ok} successful, {failed} failed, status {:?}\n{}\n{}",
        out.status,
        stdout.lines().rev().take(40).collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn calls_over_udp() {
    let (p, u, c) = (free_port(), free_port(), free_port());
    let kb = Kemibox::start(
        &config(&[format!("udp:127.0.0.1:{p}")], ""),
        &example_script(),
    );
    let _uas = uas("127.0.0.1", u, &kb.dir);
    uac(
        &kb.dir,
        &[
            &format!("127.0.0.1:{u}"),
            "-rsa",
            &format!("127.0.0.1:{p}"),
            "-i",
            "127.0.0.1",
            "-p",
            &c.to_string(),
        ],
    );
    // Every request and reply went through the proxy, none was lost or refused.
    assert_eq!(
        kb.metric_settled("fwd_requests", 3 * CALLS as u64),
        3 * CALLS as u64
    );
    assert!(kb.metric("fwd_replies") >= 3 * CALLS as u64);
    assert_eq!(kb.metric("script_errors"), 0);
}

#[test]
fn calls_over_tcp() {
    let (p, u, c) = (free_port(), free_port(), free_port());
    let kb = Kemibox::start(
        &config(
            &[format!("udp:127.0.0.1:{p}"), format!("tcp:127.0.0.1:{p}")],
            "",
        ),
        &example_script(),
    );
    let _uas = uas("127.0.0.1", u, &kb.dir);
    uac(
        &kb.dir,
        &[
            &format!("127.0.0.1:{u}"),
            "-rsa",
            &format!("127.0.0.1:{p}"),
            "-t",
            "t1",
            "-i",
            "127.0.0.1",
            "-p",
            &c.to_string(),
        ],
    );
    assert_eq!(
        kb.metric_settled("fwd_requests", 3 * CALLS as u64),
        3 * CALLS as u64
    );
    // One connection from the UAC carried all its calls.
    assert_eq!(kb.metric_settled("tcp_conns_opened", 1), 1);
}

/// Debian's sipp is built without OpenSSL, so the UAC speaks TCP to stunnel (a real TLS
/// client, OpenSSL) which carries it over TLS to kemibox; the certificate is made now.
#[test]
fn calls_over_tls() {
    assert!(
        have("stunnel"),
        "stunnel is needed for the TLS test (apt-get install stunnel4)"
    );
    let (p, tls, u, c, tunnel) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let dir = scratch_dir("tls");
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("generate certificate");
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).expect("write key");
    let cfg = config(
        &[format!("udp:127.0.0.1:{p}"), format!("tls:127.0.0.1:{tls}")],
        &format!(
            "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
    );
    let kb = Kemibox::start_in(dir.clone(), &cfg, &example_script());
    let st_conf = format!(
        "foreground = yes\npid =\n[sip]\nclient = yes\naccept = 127.0.0.1:{tunnel}\nconnect = 127.0.0.1:{tls}\nverify = 0\n"
    );
    std::fs::write(dir.join("stunnel.conf"), st_conf).expect("stunnel conf");
    let _tunnel = Bg(Command::new("stunnel")
        .arg(dir.join("stunnel.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stunnel"));
    std::thread::sleep(Duration::from_millis(500));
    let _uas = uas("127.0.0.1", u, &dir);
    uac(
        &dir,
        &[
            &format!("127.0.0.1:{u}"),
            "-rsa",
            &format!("127.0.0.1:{tunnel}"),
            "-t",
            "t1",
            "-i",
            "127.0.0.1",
            "-p",
            &c.to_string(),
        ],
    );
    assert_eq!(
        kb.metric_settled("fwd_requests", 3 * CALLS as u64),
        3 * CALLS as u64
    );
    assert_eq!(
        kb.metric("tcp_conns_opened"),
        1,
        "the calls came over one TLS connection"
    );
}

#[test]
fn calls_over_ipv6() {
    let (p, u, c) = (free_port(), free_port(), free_port());
    let kb = Kemibox::start(&config(&[format!("udp:[::1]:{p}")], ""), &example_script());
    let _uas = uas("::1", u, &kb.dir);
    uac(
        &kb.dir,
        &[
            &format!("[::1]:{u}"),
            "-rsa",
            &format!("[::1]:{p}"),
            "-i",
            "::1",
            "-p",
            &c.to_string(),
        ],
    );
    assert_eq!(
        kb.metric_settled("fwd_requests", 3 * CALLS as u64),
        3 * CALLS as u64
    );
}
