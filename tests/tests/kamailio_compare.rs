//! The same KEMI script (`examples/stateless.lua`) on kemibox and on real Kamailio 5.6
//! (Debian `kamailio`, `kamailio-lua-modules`): the same requests get the same answers
//! (status, reason phrase, To-tag) and the same forwarded requests; and `KSR.xlog` logs
//! the same lines.

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
        "sl", "pv", "maxfwd", "sanity", "siputils", "corex", "kemix", "textops", "xlog", "app_lua",
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

/// A script logging through `KSR.xlog` with the pseudo-variables a script commonly
/// prints, a format with a bare `$` and one with an unknown pseudo-variable (both
/// invalid for Kamailio: -1, nothing logged) and `xlog(level, ..)`; the reply's reason
/// phrase carries the four return codes.
const XLOG_SCRIPT: &str = r#"
function ksr_request_route()
    KSR.pv.sets("$var(who)", "world")
    local a = KSR.xlog.xinfo("XL1 rm=$rm ru=$ru rU=$rU rd=$rd fu=$fu fU=$fU ft=$ft tu=$tu tU=$tU ci=$ci cs=$cs ua=$hdr(User-Agent) hc=$hdrc(Via) who=$var(who) unset=$var(nope) avp=$avp(nope) nohdr=$hdr(X-None) tt=$tt dollar=$$ paren=$(rm) si=$si END\n")
    local b = KSR.xlog.xinfo("XL2 a bare $ sign\n")
    local c = KSR.xlog.xlog("L_WARN", "XL3 $rm for $tU ci=$ci END\n")
    local d = KSR.xlog.xinfo("XL4 $nosuchpv\n")
    KSR.sl.sl_send_reply(200, "codes " .. a .. " " .. b .. " " .. c .. " " .. d)
end
"#;

/// The text of the first log line holding `mark` and `ci`, from `mark` up to " END".
fn xlog_line(log: &str, mark: &str, ci: &str) -> Option<String> {
    let l = log.lines().find(|l| l.contains(mark) && l.contains(ci))?;
    let from = l.find(mark)?;
    let to = l[from..].find(" END")? + from;
    Some(l[from..to].to_string())
}

#[test]
fn xlog_logs_like_kamailio() {
    let dir = scratch_dir("xlog-script");
    let script = dir.join("xlog.lua");
    std::fs::write(&script, XLOG_SCRIPT).expect("script");
    let (kp, bp) = (free_port(), free_port());
    let kam = start_kamailio(kp, &script);
    let kb = Kemibox::start(
        &config(
            &[format!("udp:127.0.0.1:{bp}")],
            "modules = [\"sl\", \"xlog\"]",
        ),
        XLOG_SCRIPT,
    );
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    let c = client.local_addr().expect("addr");
    let mut answers = Vec::new();
    for (name, port) in [("kamailio", kp), ("kemibox", bp)] {
        let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let msg = format!(
            "INVITE sip:bob@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {c};branch=z9hG4bK-xl-{name}\r\n\
             Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-up\r\n\
             From: \"Alice\" <sip:alice@example.com>;tag=xl-{name}\r\nTo: <sip:bob@127.0.0.1>\r\n\
             Call-ID: xlog-cmp-{name}\r\nCSeq: 3 INVITE\r\nMax-Forwards: 70\r\n\
             User-Agent: phone/1.0 (test)\r\nContent-Length: 0\r\n\r\n"
        );
        let r = udp_exchange(&client, proxy, msg.as_bytes(), Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{name} did not answer"));
        answers.push(
            String::from_utf8_lossy(&r)
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert_eq!(answers[0], "SIP/2.0 200 codes 1 -1 1 -1", "kamailio");
    assert_eq!(answers[1], answers[0], "kemibox's return codes");

    std::thread::sleep(Duration::from_millis(300));
    let (klog, blog) = (kam.log_text(), kb.log_text());
    for mark in ["XL1 ", "XL3 "] {
        let k = xlog_line(&klog, mark, "xlog-cmp-kamailio")
            .unwrap_or_else(|| panic!("kamailio logged no {mark}line:\n{klog}"));
        let b = xlog_line(&blog, mark, "xlog-cmp-kemibox")
            .unwrap_or_else(|| panic!("kemibox logged no {mark}line:\n{blog}"));
        // The same line but for what names the server and the request.
        let b = b
            .replace(&bp.to_string(), &kp.to_string())
            .replace("xlog-cmp-kemibox", "xlog-cmp-kamailio")
            .replace("xl-kemibox", "xl-kamailio");
        assert_eq!(b, k, "{mark}line");
    }
    // The invalid formats were not logged as lines of the script (only as errors).
    for log in [&klog, &blog] {
        assert!(
            !log.contains("script: XL2") && !log.contains("script: XL4"),
            "{log}"
        );
    }
}
