//! The same KEMI script (`examples/stateless.lua`) on kemibox and on real Kamailio 5.6
//! (Debian `kamailio`, `kamailio-lua-modules`): the same requests get the same answers
//! (status, reason phrase, To-tag) and the same forwarded requests.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use e2e::*;

fn start_kamailio(port: u16, script: &std::path::Path) -> Kamailio {
    let dir = scratch_dir("kamcfg");
    let mut cfg = format!(
        "debug=2\nlog_stderror=yes\nchildren=2\nlisten=udp:127.0.0.1:{port}\nauto_aliases=no\n\
dns=no\nrev_dns=no\ndisable_tcp=yes\n"
    );
    for m in [
        "sl", "pv", "maxfwd", "sanity", "siputils", "corex", "kemix", "textops", "app_lua",
    ] {
        cfg.push_str(&format!("loadmodule \"{m}.so\"\n"));
    }
    cfg.push_str(&format!(
        "modparam(\"app_lua\", \"load\", \"{}\")\ncfgengine \"lua\"\n",
        script.display()
    ));
    std::fs::write(dir.join("k.cfg"), cfg).expect("cfg");
    Kamailio::start(
        &dir.join("k.cfg"),
        &[],
        format!("127.0.0.1:{port}").parse().expect("addr"),
    )
}

/// What a client and a next hop see for one request.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status_line: Option<String>,
    to_tagged: bool,
    reply_vias: usize,
    unsupported: Option<String>,
    forwarded_line: Option<String>,
    forwarded_vias: usize,
    forwarded_max_forwards: Option<String>,
    /// The 180 the next hop sent, as the client got it back.
    relayed_reply: Option<String>,
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim())
}

fn observe(proxy_port: u16, template: &str) -> Seen {
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    let uas = UdpSocket::bind("127.0.0.1:0").expect("uas");
    let c = client.local_addr().expect("addr");
    let u = uas.local_addr().expect("addr");
    let msg = template
        .replace("PROXY", &format!("127.0.0.1:{proxy_port}"))
        .replace("CLIENT", &c.to_string())
        .replace("UAS", &u.to_string());
    let proxy: SocketAddr = format!("127.0.0.1:{proxy_port}").parse().expect("addr");
    client.send_to(msg.as_bytes(), proxy).expect("send");
    let mut seen = Seen {
        status_line: None,
        to_tagged: false,
        reply_vias: 0,
        unsupported: None,
        forwarded_line: None,
        forwarded_vias: 0,
        forwarded_max_forwards: None,
        relayed_reply: None,
    };
    let mut buf = vec![0u8; 65536];
    let uas_text = u.to_string();
    let norm = |s: &str| s.replace(&uas_text, "UAS");
    uas.set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    if let Ok((n, from)) = uas.recv_from(&mut buf) {
        let fwd = String::from_utf8_lossy(&buf[..n]).to_string();
        seen.forwarded_line = fwd.lines().next().map(norm);
        seen.forwarded_vias = fwd
            .lines()
            .filter(|l| l.starts_with("Via:") || l.starts_with("v:"))
            .count();
        seen.forwarded_max_forwards = header(&fwd, "Max-Forwards").map(str::to_string);
        let mut reply = String::from("SIP/2.0 180 Ringing\r\n");
        for l in fwd.lines().filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        }) {
            reply.push_str(l);
            if l.starts_with("To:") {
                reply.push_str(";tag=uas1");
            }
            reply.push_str("\r\n");
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        uas.send_to(reply.as_bytes(), from).expect("reply");
    }
    client
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    if let Ok((n, _)) = client.recv_from(&mut buf) {
        let r = String::from_utf8_lossy(&buf[..n]).to_string();
        let first = r.lines().next().map(str::to_string);
        if seen.forwarded_line.is_some() {
            seen.relayed_reply = first;
        } else {
            seen.status_line = first;
        }
        seen.to_tagged = header(&r, "To").is_some_and(|t| t.contains(";tag="));
        seen.reply_vias = r.lines().filter(|l| l.starts_with("Via:")).count();
        seen.unsupported = header(&r, "Unsupported").map(str::to_string);
    }
    seen
}

const BASE: &str =
    "Via: SIP/2.0/UDP CLIENT;branch=z9hG4bK-cmp-{ID}\r\nFrom: <sip:alice@127.0.0.1>;tag={ID}\r\n\
To: <sip:bob@127.0.0.1>\r\nCall-ID: {ID}@compare\r\n";

fn cases() -> Vec<(&'static str, String)> {
    let req = |first: &str, extra: &str, cseq: &str, id: &str| {
        format!(
            "{first}\r\n{}Max-Forwards: 70\r\n{extra}CSeq: {cseq}\r\nContent-Length: 0\r\n\r\n",
            BASE.replace("{ID}", id)
        )
    };
    vec![
        (
            "keepalive",
            req("OPTIONS sip:PROXY SIP/2.0", "", "1 OPTIONS", "c1"),
        ),
        (
            "for myself",
            req(
                "INVITE sip:bob@PROXY SIP/2.0",
                "Contact: <sip:alice@CLIENT>\r\n",
                "1 INVITE",
                "c2",
            ),
        ),
        (
            "forwarded INVITE",
            req(
                "INVITE sip:bob@UAS SIP/2.0",
                "Contact: <sip:alice@CLIENT>\r\n",
                "1 INVITE",
                "c3",
            ),
        ),
        (
            "forwarded MESSAGE",
            req("MESSAGE sip:bob@UAS SIP/2.0", "", "7 MESSAGE", "c4"),
        ),
        (
            "unknown scheme",
            req("OPTIONS nobody:opaque SIP/2.0", "", "1 OPTIONS", "c5"),
        ),
        (
            "proxy-require",
            req(
                "OPTIONS sip:bob@UAS SIP/2.0",
                "Proxy-Require: foo\r\n",
                "1 OPTIONS",
                "c6",
            ),
        ),
        (
            "cseq mismatch",
            req("OPTIONS sip:bob@UAS SIP/2.0", "", "1 INVITE", "c7"),
        ),
        (
            "max-forwards 0",
            req("OPTIONS sip:bob@UAS SIP/2.0", "", "1 OPTIONS", "c8")
                .replace("Max-Forwards: 70", "Max-Forwards: 0"),
        ),
        (
            "max-forwards 1",
            req("OPTIONS sip:bob@UAS SIP/2.0", "", "1 OPTIONS", "c9")
                .replace("Max-Forwards: 70", "Max-Forwards: 1"),
        ),
        (
            "no max-forwards",
            req("OPTIONS sip:bob@UAS SIP/2.0", "", "1 OPTIONS", "c10")
                .replace("Max-Forwards: 70\r\n", ""),
        ),
        (
            "max-forwards over max_limit",
            req("OPTIONS sip:bob@UAS SIP/2.0", "", "1 OPTIONS", "c11")
                .replace("Max-Forwards: 70", "Max-Forwards: 200"),
        ),
    ]
}

#[test]
fn same_answers_as_kamailio_for_the_same_script() {
    let script = repo_root().join("examples/stateless.lua");
    let (kp, bp) = (free_port(), free_port());
    let _kam = start_kamailio(kp, &script);
    let _kb = Kemibox::start(
        &config(&[format!("udp:127.0.0.1:{bp}")], ""),
        &std::fs::read_to_string(&script).expect("script"),
    );
    let mut diffs = Vec::new();
    for (name, template) in cases() {
        let k = observe(kp, &template);
        let b = observe(bp, &template);
        println!("{name}: kamailio {k:?}");
        if k != b {
            diffs.push(format!("{name}:\n  kamailio {k:?}\n  kemibox  {b:?}"));
        }
        assert!(
            k.status_line.is_some() || k.forwarded_line.is_some(),
            "{name}: kamailio did nothing"
        );
    }
    assert!(
        diffs.is_empty(),
        "kemibox differs from Kamailio:\n{}",
        diffs.join("\n")
    );
}
