//! The WebAssembly engine end to end: sipp calls through kemibox running the `forward`
//! plugin, and the hostile plugins answering 500 while the server goes on.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::*;

const CALLS: u32 = 40;

#[test]
fn sipp_calls_through_the_forward_plugin() {
    let (p, u) = (free_port(), free_port());
    let kb = Kemibox::start(
        &wasm_config(
            &[format!("udp:127.0.0.1:{p}")],
            &wasm_plugin("forward"),
            "",
            "deadline_ms = 200\nmemory_mb = 16",
        ),
        "",
    );
    let _uas = sipp::uas(&kb, u, None);
    let out = run_bounded(
        &mut sipp::uac(&kb, p, u, CALLS, 20),
        Duration::from_secs(60),
    );
    sipp::assert_clean(&out, CALLS, &kb);
    assert_eq!(
        kb.metric_settled("fwd_requests", 3 * CALLS as u64),
        3 * CALLS as u64
    );
    assert_eq!(kb.metric("script_errors"), 0);
    assert_eq!(kb.metric("wasm_traps"), 0);
}

/// `routing.error_reply` replaces the 500 of a failed route, and the trap is counted on
/// the plugin version (`routing.status`, `/metrics`).
#[test]
fn trap_answers_the_configured_error_reply_and_counts_on_the_version() {
    let p = free_port();
    let cfg = wasm_config(
        &[format!("udp:127.0.0.1:{p}")],
        &wasm_plugin("hostile"),
        "trap",
        "deadline_ms = 100",
    )
    .replace(
        "[routing.limits]",
        "error_reply = \"503 Tenant Unavailable\"\n[routing.limits]",
    );
    let kb = Kemibox::start(&cfg, "");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = sock.local_addr().expect("local");
    let to: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    for i in 0..3 {
        let r = udp_exchange(
            &sock,
            to,
            &options_to(&format!("bad@127.0.0.1:{p}"), local, &format!("er{i}")),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("no answer\n{}", kb.log_text()));
        assert_eq!(status_of(&r), Some(503), "{}", reason_of(&r));
        assert_eq!(reason_of(&r), "Tenant Unavailable");
    }
    let st = kb.rpc("routing.status", serde_json::json!([]));
    assert_eq!(st["result"]["current"]["errors"]["trap"], 3, "{st}");
    assert_eq!(st["result"]["current"]["calls"], 3, "{st}");
    assert_eq!(kb.metric("wasm_traps"), 3);
    // A bad error_reply stops start-up with its line.
    let bad = wasm_config(
        &[format!("udp:127.0.0.1:{}", free_port())],
        &wasm_plugin("hostile"),
        "trap",
        "deadline_ms = 100",
    )
    .replace(
        "[routing.limits]",
        "error_reply = \"200 OK\"\n[routing.limits]",
    );
    let path = kb.dir.join("bad.toml");
    std::fs::write(&path, bad).expect("write");
    let out = Command::new(kemibox_bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("kemibox check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("routing.error_reply")
            && err.contains("300..=699")
            && err.contains("bad.toml:11:"),
        "{err}"
    );
}

/// kemibox with the hostile plugin in `mode`: a request gets 500 within its deadline,
/// the counter `metric` moves, and the next requests are answered 200.
fn hostile(mode: &str, metric: &str) {
    hostile_with(mode, metric, "");
}

fn hostile_with(mode: &str, metric: &str, extra_limits: &str) {
    let p = free_port();
    let mut kb = Kemibox::start(
        &wasm_config(
            &[format!("udp:127.0.0.1:{p}")],
            &wasm_plugin("hostile"),
            mode,
            &format!("deadline_ms = 100\nmemory_mb = 16\nhost_calls = 5000\n{extra_limits}"),
        ),
        "",
    );
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = sock.local_addr().expect("local");
    let to: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    for round in 0..2 {
        let t = Instant::now();
        let r = udp_exchange(
            &sock,
            to,
            &options_to(
                &format!("bad@127.0.0.1:{p}"),
                local,
                &format!("{mode}-bad{round}"),
            ),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("{mode}: no answer\n{}", kb.log_text()));
        assert_eq!(status_of(&r), Some(500), "{mode}: {}", reason_of(&r));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{mode}: {:?}",
            t.elapsed()
        );
        for i in 0..3 {
            let r = udp_exchange(
                &sock,
                to,
                &options_to(
                    &format!("ok@127.0.0.1:{p}"),
                    local,
                    &format!("{mode}-ok{round}{i}"),
                ),
                Duration::from_secs(5),
            )
            .unwrap_or_else(|| panic!("{mode}: no answer after the fault\n{}", kb.log_text()));
            assert_eq!(status_of(&r), Some(200), "{mode}: {}", reason_of(&r));
        }
    }
    // Typed tm and generic interface calls on the same instance.
    for (user, reason) in [("stateful", "Stateful"), ("generic", "Generic")] {
        let r = udp_exchange(
            &sock,
            to,
            &options_to(
                &format!("{user}@127.0.0.1:{p}"),
                local,
                &format!("{mode}-{user}"),
            ),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("{mode}: no answer to {user}\n{}", kb.log_text()));
        assert_eq!(status_of(&r), Some(200), "{mode}: {}", reason_of(&r));
        assert_eq!(reason_of(&r), reason);
    }
    assert_eq!(kb.metric_settled(metric, 2), 2, "{mode}");
    assert_eq!(kb.metric("script_errors"), 2);
    assert!(kb.is_running());
}

#[test]
fn hostile_loop_answers_500_and_server_goes_on() {
    hostile("loop", "wasm_deadlines");
}

#[test]
fn hostile_memory_bomb_answers_500_and_server_goes_on() {
    hostile("memory", "wasm_memory_limits");
}

#[test]
fn hostile_trap_answers_500_and_server_goes_on() {
    hostile("trap", "wasm_traps");
}

#[test]
fn hostile_host_call_flood_answers_500_and_server_goes_on() {
    hostile("flood", "wasm_host_call_limits");
}

#[test]
fn bad_plugin_config_stops_start_up() {
    let dir = scratch_dir("wasm-bad");
    let cfg = wasm_config(
        &[format!("udp:127.0.0.1:{}", free_port())],
        &wasm_plugin("forward"),
        "not a uri",
        "deadline_ms = 100",
    );
    let path = dir.join("kemibox.toml");
    std::fs::write(&path, &cfg).expect("write");
    let out = run_bounded(
        Command::new(kemibox_bin()).args(["check", "-c"]).arg(&path),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("config must be empty or a SIP URI"), "{err}");
    // A file that is not a component is refused with the reason.
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").expect("write");
    let bad_plugin = wasm_config(
        &[format!("udp:127.0.0.1:{}", free_port())],
        &junk,
        "",
        "deadline_ms = 100",
    );
    std::fs::write(&path, bad_plugin).expect("write");
    let out = run_bounded(
        Command::new(kemibox_bin()).args(["check", "-c"]).arg(&path),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("junk.wasm"), "{err}");
    let bad_limit = cfg.replace("deadline_ms = 100", "deadline_ms = -5");
    std::fs::write(&path, bad_limit).expect("write");
    let out = run_bounded(
        Command::new(kemibox_bin()).args(["check", "-c"]).arg(&path),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("kemibox.toml:12:") && err.contains("deadline_ms"),
        "{err}"
    );
}

#[test]
fn per_message_isolation_trap_answers_500_and_server_goes_on() {
    hostile_with("trap", "wasm_traps", "isolation = \"per-message\"");
}

#[test]
fn hostile_stack_overflow_answers_500_and_server_goes_on() {
    hostile("stack", "wasm_traps");
}

/// The `stateful` plugin (a Rust port of examples/stateful.lua): t_relay, then tm runs
/// the plugin's named failure route, which forks serially to the X-Fallback target.
#[test]
fn stateful_plugin_failure_route_forks_serially() {
    let p = free_port();
    let kb = Kemibox::start(
        &(wasm_config(
            &[format!("udp:127.0.0.1:{p}")],
            &wasm_plugin("stateful"),
            "",
            "deadline_ms = 200",
        ) + "[modparam.tm]\nfr_timer = 30000\nfr_inv_timer = 30000\n"),
        "",
    );
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    let uas = UdpSocket::bind("127.0.0.1:0").expect("uas");
    let busy = UdpSocket::bind("127.0.0.1:0").expect("busy");
    let (c, u, b) = (
        client.local_addr().expect("a"),
        uas.local_addr().expect("a"),
        busy.local_addr().expect("a"),
    );
    let inv = format!(
        "INVITE sip:bob@{b} SIP/2.0\r\nVia: SIP/2.0/UDP {c};branch=z9hG4bK-wfo1\r\nMax-Forwards: 70\r\n\
From: <sip:alice@{c}>;tag=wfo1\r\nTo: <sip:bob@{proxy}>\r\nCall-ID: wfo1@wasm\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:alice@{c}>\r\nX-Fallback: sip:bob@{u}\r\nContent-Length: 0\r\n\r\n"
    );
    client.send_to(inv.as_bytes(), proxy).expect("send");
    expect(&client, "SIP/2.0 100");
    let (f1, from) = expect(&busy, "INVITE ");
    assert!(
        f1.contains("\r\nX-Branch: wasm\r\n"),
        "the branch route ran: {f1}"
    );
    busy.send_to(answer(&f1, 486, "Busy Here", "b1").as_bytes(), from)
        .expect("486");
    expect(&busy, "ACK ");
    let (f2, from) = expect(&uas, "INVITE ");
    assert!(
        f2.starts_with(&format!("INVITE sip:bob@{u} SIP/2.0\r\n")),
        "{f2}"
    );
    uas.send_to(answer(&f2, 200, "OK", "u2").as_bytes(), from)
        .expect("200");
    let (ok, _) = expect(&client, "SIP/2.0 200");
    assert!(ok.contains(";tag=u2"), "the 200 of the second branch: {ok}");
    assert_eq!(kb.metric("script_errors"), 0, "{}", kb.log_text());
    assert_eq!(kb.metric("wasm_traps"), 0);
}
