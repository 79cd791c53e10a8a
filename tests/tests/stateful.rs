//! The transaction-stateful proxy on the wire: sipp calls through t_relay, 100 Trying,
//! CANCEL → 487, fr_timer → 408, failure route serial forking, retransmissions absorbed,
//! hop-by-hop ACK for negative replies.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use e2e::*;

fn stateful_config(p: u16, fr_ms: u64) -> String {
    config(&[format!("udp:127.0.0.1:{p}")], "")
        + &format!("[modparam.tm]\nfr_timer = {fr_ms}\nfr_inv_timer = {fr_ms}\n")
}

fn script() -> String {
    std::fs::read_to_string(repo_root().join("examples/stateful.lua"))
        .expect("examples/stateful.lua")
}

struct Setup {
    kb: Kemibox,
    proxy: SocketAddr,
    client: UdpSocket,
    c: SocketAddr,
    uas: UdpSocket,
    u: SocketAddr,
}

fn setup(fr_ms: u64) -> Setup {
    let p = free_port();
    let kb = Kemibox::start(&stateful_config(p, fr_ms), &script());
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    let uas = UdpSocket::bind("127.0.0.1:0").expect("uas");
    let (c, u) = (
        client.local_addr().expect("a"),
        uas.local_addr().expect("a"),
    );
    Setup {
        kb,
        proxy: format!("127.0.0.1:{p}").parse().expect("addr"),
        client,
        c,
        uas,
        u,
    }
}

#[test]
fn cancel_gets_487_and_is_forwarded_hop_by_hop() {
    let s = setup(30_000);
    let inv = invite(s.proxy, s.c, s.u, "cx1", "");
    s.client.send_to(inv.as_bytes(), s.proxy).expect("send");
    let (trying, _) = expect(&s.client, "SIP/2.0 100");
    assert!(
        trying.starts_with("SIP/2.0 100 trying -- your call is important to us\r\n"),
        "{trying}"
    );
    let (fwd, from) = expect(&s.uas, "INVITE ");
    // A retransmitted INVITE is absorbed: the UAS does not get it twice.
    s.client.send_to(inv.as_bytes(), s.proxy).expect("send");
    s.uas
        .send_to(answer(&fwd, 180, "Ringing", "uas1").as_bytes(), from)
        .expect("180");
    expect(&s.client, "SIP/2.0 180 Ringing");

    let cancel = inv
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    s.client
        .send_to(cancel.as_bytes(), s.proxy)
        .expect("cancel");
    let (ok, _) = expect(&s.client, "SIP/2.0 200");
    assert!(ok.starts_with("SIP/2.0 200 canceling\r\n"), "{ok}");
    let (c2, from) = recv(&s.uas, Duration::from_secs(5)).expect("CANCEL downstream");
    assert!(
        c2.starts_with("CANCEL sip:bob@"),
        "the INVITE was not sent twice; then the CANCEL: {c2}"
    );
    // Same branch as the INVITE that went downstream (RFC 3261 §9.1).
    let via = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Via:"))
            .map(str::to_string)
    };
    assert_eq!(via(&c2), via(&fwd));
    s.uas
        .send_to(answer(&c2, 200, "OK", "uas1").as_bytes(), from)
        .expect("200 cancel");
    s.uas
        .send_to(
            answer(&fwd, 487, "Request Terminated", "uas1").as_bytes(),
            from,
        )
        .expect("487");
    let (ack, _) = expect(&s.uas, "ACK ");
    assert!(
        ack.contains("CSeq: 1 ACK") && ack.contains(";tag=uas1"),
        "hop-by-hop ACK: {ack}"
    );
    let (fin, _) = expect(&s.client, "SIP/2.0 487");
    assert!(
        fin.starts_with("SIP/2.0 487 Request Terminated\r\n"),
        "{fin}"
    );
    // The client's ACK for the 487 is absorbed by the proxy.
    let ack = inv
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
    s.client.send_to(ack.as_bytes(), s.proxy).expect("ack");
    assert!(
        recv(&s.uas, Duration::from_millis(700)).is_none(),
        "ACK for a negative reply must not go on"
    );
    assert_eq!(s.kb.metric("script_errors"), 0);
}

#[test]
fn timeout_gives_408_and_failure_route_forks_serially() {
    let s = setup(1000);
    // No answer from the first target at all: fr_timer (1 s) → local 408.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("silent");
    let inv = invite(s.proxy, s.c, silent.local_addr().expect("a"), "to1", "");
    s.client.send_to(inv.as_bytes(), s.proxy).expect("send");
    expect(&s.client, "SIP/2.0 100");
    let (fin, _) = expect(&s.client, "SIP/2.0 408");
    assert!(fin.starts_with("SIP/2.0 408 Request Timeout\r\n"), "{fin}");
    // The first target got the INVITE and its UDP retransmissions (T1 = 500 ms).
    let mut n = 0;
    while recv(&silent, Duration::from_millis(100)).is_some() {
        n += 1;
    }
    assert!(n >= 2, "INVITE retransmitted over UDP ({n} copies)");

    // Busy first target, X-Fallback names a second: the failure route relays there.
    let busy = UdpSocket::bind("127.0.0.1:0").expect("busy");
    let extra = format!("X-Fallback: sip:bob@{}\r\n", s.u);
    let inv = invite(s.proxy, s.c, busy.local_addr().expect("a"), "fo1", &extra);
    s.client.send_to(inv.as_bytes(), s.proxy).expect("send");
    let (f1, from) = expect(&busy, "INVITE ");
    busy.send_to(answer(&f1, 486, "Busy Here", "b1").as_bytes(), from)
        .expect("486");
    expect(&busy, "ACK ");
    let (f2, from) = expect(&s.uas, "INVITE ");
    assert!(
        f2.starts_with(&format!("INVITE sip:bob@{} SIP/2.0\r\n", s.u)),
        "{f2}"
    );
    s.uas
        .send_to(answer(&f2, 200, "OK", "u2").as_bytes(), from)
        .expect("200");
    let (ok, _) = expect(&s.client, "SIP/2.0 200");
    assert!(ok.contains(";tag=u2"), "the 200 of the second branch: {ok}");
}

#[test]
fn sipp_calls_through_the_stateful_proxy() {
    let (p, u) = (free_port(), free_port());
    let kb = Kemibox::start(&stateful_config(p, 30_000), &script());
    let _uas = sipp::uas(&kb, u, None);
    let out = run_bounded(&mut sipp::uac(&kb, p, u, 40, 20), Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (ok, failed) = sipp_counts(&stdout);
    assert!(
        out.status.success() && ok == 40 && failed == 0,
        "{ok} ok, {failed} failed\n{stdout}"
    );
    // INVITE and BYE were relayed statefully, ACK for the 200 went on statelessly.
    assert!(
        kb.metric("fwd_requests") >= 120,
        "{}",
        kb.metric("fwd_requests")
    );
    assert_eq!(kb.metric("script_errors"), 0);
}

/// Branch routes run for every branch from inside t_relay: their changes go to that
/// branch only, and a branch route can drop its branch.
#[test]
fn branch_route_edits_and_drops_branches() {
    let p = free_port();
    let script = r#"
function ksr_request_route()
	if KSR.tm.t_check_trans() == 0 then KSR.x.exit() end
	KSR.corex.append_branch_uri(KSR.pv.get("$hdr(X-Second)"))
	KSR.corex.append_branch_uri(KSR.pv.get("$hdr(X-Third)"))
	KSR.tm.t_on_branch("per_branch")
	if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
end
function per_branch()
	if KSR.pv.get("$T_branch_idx") == 2 then KSR.x.drop() end
	KSR.hdr.append("X-Branch: " .. KSR.pv.get("$T_branch_idx") .. " " .. KSR.kx.get_ruri() .. "\r\n")
end
"#;
    let _kb = Kemibox::start(&stateful_config(p, 30_000), script);
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    let (a, b, c) = (
        UdpSocket::bind("127.0.0.1:0").expect("a"),
        UdpSocket::bind("127.0.0.1:0").expect("b"),
        UdpSocket::bind("127.0.0.1:0").expect("c"),
    );
    let (aa, ba, ca) = (addr_of(&a), addr_of(&b), addr_of(&c));
    let extra = format!("X-Second: sip:bob@{ba}\r\nX-Third: sip:bob@{ca}\r\n");
    let inv = invite(proxy, addr_of(&client), aa, "br1", &extra);
    client.send_to(inv.as_bytes(), proxy).expect("send");
    let (m1, _) = expect(&a, "INVITE ");
    let (m2, _) = expect(&b, "INVITE ");
    assert!(
        m1.contains(&format!("X-Branch: 0 sip:bob@{aa}\r\n")) && !m1.contains("X-Branch: 1"),
        "{m1}"
    );
    assert!(
        m2.contains(&format!("X-Branch: 1 sip:bob@{ba}\r\n")) && !m2.contains("X-Branch: 0"),
        "{m2}"
    );
    assert!(
        recv(&c, Duration::from_millis(800)).is_none(),
        "the third branch was dropped"
    );
}

fn addr_of(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("addr")
}
