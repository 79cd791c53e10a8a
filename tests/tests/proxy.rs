//! Stateless proxy behaviour on the wire: loop detection, Via handling, sl To-tags.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use e2e::*;

/// A script that forwards every request back to kemibox itself: the second pass sees its
/// own Via with the same loop hash and answers 482 (RFC 3261 §16.3 step 4), and that
/// reply travels back through kemibox to the client.
#[test]
fn a_forwarding_loop_is_answered_482() {
    let p = free_port();
    let script = format!(
        "function ksr_request_route()\n  if KSR.forward_uri('sip:127.0.0.1:{p}') < 0 then KSR.sl.sl_reply_error() end\nend\n"
    );
    let kb = Kemibox::start(&config(&[format!("udp:127.0.0.1:{p}")], ""), &script);
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let s = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let local = s.local_addr().expect("addr");
    let r = udp_exchange(
        &s,
        proxy,
        &options_to("bob@example.invalid", local, "loop1"),
        Duration::from_secs(3),
    )
    .expect("an answer");
    let text = String::from_utf8_lossy(&r);
    assert!(text.starts_with("SIP/2.0 482 Loop Detected\r\n"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("Via:")).count(),
        1,
        "{text}"
    );
    assert_eq!(kb.metric_settled("fwd_requests", 1), 1);
    assert_eq!(kb.metric_settled("fwd_replies", 1), 1);
}

/// A retransmitted request gets the same To-tag in its stateless reply, and a different
/// transaction gets a different one (so the client can match its ACK).
#[test]
fn sl_reply_to_tag_is_stable_per_transaction() {
    let p = free_port();
    let script = "function ksr_request_route() KSR.sl.sl_send_reply(404, 'Not here') end";
    let _kb = Kemibox::start(&config(&[format!("udp:127.0.0.1:{p}")], ""), script);
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let s = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let local = s.local_addr().expect("addr");
    let to_tag = |tag: &str| {
        let r = udp_exchange(
            &s,
            proxy,
            &options_to("bob@127.0.0.1", local, tag),
            Duration::from_secs(3),
        )
        .expect("answer");
        let text = String::from_utf8_lossy(&r).to_string();
        assert!(text.starts_with("SIP/2.0 404 Not here\r\n"), "{text}");
        let to = text
            .lines()
            .find(|l| l.starts_with("To:"))
            .expect("To")
            .to_string();
        assert!(
            text.contains(&format!("Call-ID: {tag}@kemibox-e2e\r\n")),
            "{text}"
        );
        to.split(";tag=").nth(1).expect("to-tag").to_string()
    };
    let a = to_tag("tx1");
    assert_eq!(a, to_tag("tx1"));
    assert_ne!(a, to_tag("tx2"));
}
