//! Engine `lua-wasm` end to end: the example scripts run unmodified by the Lua runtime
//! component (real Lua 5.4 inside wasm): sipp calls stateless and stateful, a failure
//! route named at run time, a Lua error answering 500 with the script's file:line in the
//! log, and Kamailio's own basic KEMI script answering a keepalive and a REGISTER.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use e2e::*;

const CALLS: u32 = 40;

/// The Lua runtime component, built with the plugins (fails when it cannot be built).
fn runtime() -> PathBuf {
    let p = wasm_plugin("kemibox_lua");
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// `config()` switched to lua-wasm, with the runtime named explicitly.
fn lua_wasm_config(p: u16, extra: &str) -> String {
    config(&[format!("udp:127.0.0.1:{p}")], "").replace(
        "engine = \"lua\"\n",
        &format!(
            "engine = \"lua-wasm\"\nruntime = \"{}\"\n",
            runtime().display()
        ),
    ) + extra
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(name)).expect("example script")
}

/// One sipp run at a time in this file: two call generators at once on the shared
/// 2-core machines delayed an ACK past the UAS's 500 ms retransmission now and then.
static SIPP: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sipp_calls(kb: &Kemibox, p: u16) {
    let _one = SIPP.lock().unwrap_or_else(|e| e.into_inner());
    let u = free_port();
    let _uas = sipp::uas(kb, u, None);
    let out = run_bounded(&mut sipp::uac(kb, p, u, CALLS, 20), Duration::from_secs(60));
    sipp::assert_clean(&out, CALLS, kb);
}

#[test]
fn sipp_calls_through_the_stateless_example_on_lua_wasm() {
    let p = free_port();
    // One worker: stateless forwarding on two workers may pass a 200 before the 180 sent
    // just ahead of it when the 180's worker is still making its first instance of the
    // runtime, and sipp's built-in UAC fails a call on a 180 after the 200.
    let kb = Kemibox::start(
        &lua_wasm_config(p, "").replacen("workers = 2", "workers = 1", 1),
        &example("stateless.lua"),
    );
    sipp_calls(&kb, p);
    assert_eq!(
        kb.metric_settled("fwd_requests", 3 * CALLS as u64),
        3 * CALLS as u64
    );
    assert_eq!(kb.metric("script_errors"), 0);
    assert_eq!(kb.metric("wasm_traps"), 0);
    assert!(
        kb.log_text().contains("lua-wasm: running"),
        "{}",
        kb.log_text()
    );
}

#[test]
fn sipp_calls_through_the_stateful_example_on_lua_wasm() {
    let p = free_port();
    let kb = Kemibox::start(
        &lua_wasm_config(p, "[modparam.tm]\nfr_timer = 30000\nfr_inv_timer = 30000\n"),
        &example("stateful.lua"),
    );
    sipp_calls(&kb, p);
    assert!(
        kb.metric("fwd_requests") >= 3 * CALLS as u64,
        "{}",
        kb.metric("fwd_requests")
    );
    assert_eq!(kb.metric("script_errors"), 0);
    assert_eq!(kb.metric("wasm_traps"), 0);
}

fn recv(s: &UdpSocket, wait: Duration) -> Option<(String, SocketAddr)> {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = vec![0u8; 65536];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, a)| (String::from_utf8_lossy(&buf[..n]).to_string(), a))
}

/// Receives until a message whose first line starts with `prefix` (skipping others).
fn expect(s: &UdpSocket, prefix: &str) -> (String, SocketAddr) {
    for _ in 0..20 {
        match recv(s, Duration::from_secs(5)) {
            Some((m, a)) if m.starts_with(prefix) => return (m, a),
            Some(_) => continue,
            None => break,
        }
    }
    panic!("no message starting with {prefix:?}");
}

fn invite(
    proxy: SocketAddr,
    client: SocketAddr,
    uas: SocketAddr,
    tag: &str,
    extra: &str,
) -> String {
    format!(
        "INVITE sip:bob@{uas} SIP/2.0\r\nVia: SIP/2.0/UDP {client};branch=z9hG4bK-{tag}\r\nMax-Forwards: 70\r\n\
From: <sip:alice@{client}>;tag={tag}\r\nTo: <sip:bob@{proxy}>\r\nCall-ID: {tag}@luawasm\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:alice@{client}>\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn answer(req: &str, code: u16, reason: &str, to_tag: &str) -> String {
    let mut r = format!("SIP/2.0 {code} {reason}\r\n");
    for l in req.lines() {
        if ["Via:", "From:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|h| l.starts_with(h))
        {
            r.push_str(l);
            r.push_str("\r\n");
        } else if l.starts_with("To:") {
            r.push_str(l);
            r.push_str(&format!(";tag={to_tag}\r\n"));
        }
    }
    r.push_str("Content-Length: 0\r\n\r\n");
    r
}

/// The stateful example's failure route (named at run time by t_on_failure) runs in the
/// Lua runtime and relays to the X-Fallback target.
#[test]
fn failure_route_forks_serially_on_lua_wasm() {
    let p = free_port();
    let kb = Kemibox::start(
        &lua_wasm_config(p, "[modparam.tm]\nfr_timer = 2000\nfr_inv_timer = 2000\n"),
        &example("stateful.lua"),
    );
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    let uas = UdpSocket::bind("127.0.0.1:0").expect("uas");
    let busy = UdpSocket::bind("127.0.0.1:0").expect("busy");
    let (c, u) = (
        client.local_addr().expect("a"),
        uas.local_addr().expect("a"),
    );
    let extra = format!("X-Fallback: sip:bob@{u}\r\n");
    let inv = invite(proxy, c, busy.local_addr().expect("a"), "fo1", &extra);
    client.send_to(inv.as_bytes(), proxy).expect("send");
    let (f1, from) = expect(&busy, "INVITE ");
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
    assert!(ok.contains(";tag=u2"), "{ok}\n{}", kb.log_text());
    assert_eq!(kb.metric("script_errors"), 0);
}

/// A Lua runtime error answers 500, names the script's file and line in the log, and
/// the next request is served.
#[test]
fn lua_error_answers_500_with_file_and_line() {
    let p = free_port();
    let kb = Kemibox::start(
        &lua_wasm_config(p, ""),
        "function ksr_request_route()\n\
           if KSR.pv.get('$rU') == 'boom' then\n\
             local t = nil\n\
             return t.field\n\
           end\n\
           KSR.sl.sl_send_reply(200, 'fine')\n\
         end\n",
    );
    let s = UdpSocket::bind("127.0.0.1:0").expect("sock");
    let local = s.local_addr().expect("a");
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let resp = ask(
        &s,
        proxy,
        &options_to(&format!("boom@{proxy}"), local, "e1"),
    );
    assert_eq!(status_of(&resp), Some(500), "{}", kb.log_text());
    let resp = ask(&s, proxy, &options_to(&format!("ok@{proxy}"), local, "e2"));
    assert_eq!(status_of(&resp), Some(200), "{}", kb.log_text());
    assert_eq!(kb.metric("script_errors"), 1);
    let log = kb.log_text();
    assert!(
        log.contains("script.lua:4: attempt to index a nil value"),
        "{log}"
    );
}

/// Sends `msg` and returns the first final response (provisional ones skipped).
fn ask(s: &UdpSocket, to: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut r = udp_exchange(s, to, msg, Duration::from_secs(5)).expect("a response");
    while status_of(&r).is_some_and(|c| c < 200) {
        let mut buf = vec![0u8; 65536];
        let (n, _) = s.recv_from(&mut buf).expect("a final response");
        r = buf[..n].to_vec();
    }
    r
}

const BASIC: &str = "/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-lua.lua";

/// Kamailio's own basic KEMI script (read from the Debian package, unmodified) with the
/// example config switched to lua-wasm: an OPTIONS keepalive gets 200, a REGISTER the
/// digest challenge.
#[test]
fn kamailio_basic_script_on_lua_wasm() {
    let script = PathBuf::from(std::env::var("KEMI_BASIC_SCRIPT").unwrap_or_else(|_| BASIC.into()));
    assert!(
        script.is_file(),
        "{} is missing: apt-get install kamailio kamailio-lua-modules",
        script.display()
    );
    let dir = scratch_dir("basic-luawasm");
    let db = basic_example::create_db(&dir);
    let p = free_port();
    let example = std::fs::read_to_string(repo_root().join("examples/basic-kemi/kemibox.toml"))
        .expect("example config");
    let cfg = example
        .replace(
            "\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"",
            &format!("\"udp:127.0.0.1:{p}\""),
        )
        .replace(
            "sqlite://kamailio.sqlite",
            &format!("sqlite://{}", db.display()),
        )
        .replace("db_mode = 2", "db_mode = 0")
        .replace("preload = \"location\"\n", "")
        .replace("engine = \"lua\"\n", "engine = \"lua-wasm\"\n")
        .replace(
            &format!("script = \"{BASIC}\""),
            &format!(
                "script = \"{}\"\nruntime = \"{}\"",
                script.display(),
                runtime().display()
            ),
        )
        + "\n[control]\nlisten = \"CONTROL\"\n";
    assert!(cfg.contains("engine = \"lua-wasm\""), "{cfg}");
    let kb = Kemibox::start_in(dir, &cfg, "");
    let s = UdpSocket::bind("127.0.0.1:0").expect("sock");
    let local = s.local_addr().expect("a");
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let resp = ask(&s, proxy, &options_to(&proxy.to_string(), local, "ka"));
    assert_eq!(status_of(&resp), Some(200), "{}", kb.log_text());
    assert_eq!(reason_of(&resp), "Keepalive");
    let reg = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-reg1;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=r1\r\nTo: <sip:alice@127.0.0.1>\r\n\
Call-ID: reg1@luawasm\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@{local}>\r\nExpires: 600\r\n\
Content-Length: 0\r\n\r\n"
    );
    let resp = ask(&s, proxy, reg.as_bytes());
    assert_eq!(status_of(&resp), Some(401), "{}", kb.log_text());
    let text = String::from_utf8_lossy(&resp);
    assert!(
        text.contains("WWW-Authenticate: Digest realm=\"127.0.0.1\""),
        "{text}"
    );
    assert_eq!(kb.metric("script_errors"), 0, "{}", kb.log_text());
    assert_eq!(kb.metric("wasm_traps"), 0);
}
