//! kemibox as a redirect server: `examples/redirect/redirect.lua` on kemibox and on real
//! Kamailio 5.6 (same script, same requests). A request to a registered user is answered
//! 302 with the destination set `lookup` built (and a voicemail branch) as Contact, in
//! Kamailio's format (`<uri>;q=0.5, <uri2>`), statelessly and statefully; retransmissions
//! and ACKs behave the same; nothing is forwarded.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use e2e::*;

fn script() -> PathBuf {
    repo_root().join("examples/redirect/redirect.lua")
}

fn start_kamailio(port: u16) -> Kamailio {
    let dir = scratch_dir("kam-redirect");
    let mut cfg = format!(
        "debug=2\nlog_stderror=yes\nchildren=2\nlisten=udp:127.0.0.1:{port}\nauto_aliases=no\n\
alias=\"localhost\"\ndns=no\nrev_dns=no\ndisable_tcp=yes\n"
    );
    for m in [
        "tm",
        "sl",
        "pv",
        "maxfwd",
        "corex",
        "kemix",
        "usrloc",
        "registrar",
        "app_lua",
    ] {
        cfg.push_str(&format!("loadmodule \"{m}.so\"\n"));
    }
    cfg.push_str(&format!(
        // With a KEMI script Kamailio knows a usrloc table only when it is preloaded
        // (no cfg fixup registers it); kemibox needs no such line.
        "modparam(\"registrar\", \"max_expires\", 3600)\n\
modparam(\"usrloc\", \"preload\", \"location\")\n\
modparam(\"app_lua\", \"load\", \"{}\")\ncfgengine \"lua\"\n",
        script().display()
    ));
    std::fs::write(dir.join("k.cfg"), &cfg).expect("cfg");
    Kamailio::start(
        &dir.join("k.cfg"),
        &[],
        format!("127.0.0.1:{port}").parse().expect("addr"),
    )
}

fn start_kemibox(port: u16) -> Kemibox {
    let example = std::fs::read_to_string(repo_root().join("examples/redirect/kemibox.toml"))
        .expect("example config");
    let cfg = example
        .replace(
            "listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]",
            &format!("listen = [\"udp:127.0.0.1:{port}\"]"),
        )
        .replace(
            "script = \"redirect.lua\"",
            &format!("script = \"{}\"", script().display()),
        );
    assert!(cfg.contains(&format!("udp:127.0.0.1:{port}")) && cfg.contains("/redirect.lua"));
    Kemibox::start(&cfg, "")
}

/// One side of the comparison: a client socket talking to the server on `port`.
struct Client {
    sock: UdpSocket,
    port: u16,
}

impl Client {
    fn new(port: u16) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("client");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Client { sock, port }
    }

    fn me(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    /// Sends `msg` and returns the replies that arrive within `wait`, normalised; copies
    /// of one reply count once (tm retransmits a final reply to an INVITE until the ACK
    /// comes, on timer G: how many copies arrive depends on timing).
    fn send(&self, msg: &str, wait: Duration) -> Vec<String> {
        let server: SocketAddr = format!("127.0.0.1:{}", self.port).parse().expect("addr");
        self.sock.send_to(msg.as_bytes(), server).expect("send");
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let reply = self.norm(&String::from_utf8_lossy(&buf[..n]));
                if !out.contains(&reply) {
                    out.push(reply);
                }
            }
        }
        out
    }

    /// Sends `msg` and returns the first reply as it came (real tags: for an ACK).
    fn first_raw(&self, msg: &str, what: &str) -> String {
        let server: SocketAddr = format!("127.0.0.1:{}", self.port).parse().expect("addr");
        self.sock.send_to(msg.as_bytes(), server).expect("send");
        recv_text(&self.sock, Duration::from_secs(1)).unwrap_or_else(|| panic!("no {what}"))
    }

    /// The reply without what differs between servers and runs: ports, To-tags, the
    /// Server header, the remaining expiry of bindings.
    fn norm(&self, text: &str) -> String {
        let t = text
            .replace(&format!("127.0.0.1:{}", self.port), "SERVER")
            .replace(&self.me().to_string(), "CLIENT");
        let mut lines = Vec::new();
        for l in t.lines() {
            let lower = l.to_ascii_lowercase();
            if lower.starts_with("server:") || l.is_empty() {
                continue;
            }
            let mut l = l.to_string();
            if lower.starts_with("to:") {
                if let Some(i) = l.find(";tag=") {
                    l.truncate(i + 5);
                    l.push('*');
                }
            }
            // A binding's remaining seconds may differ by one between the two runs.
            while let Some(i) = l.find("expires=") {
                let rest = &l[i + 8..];
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                if end == 0 {
                    break;
                }
                l = format!("{}EXPIRES={}", &l[..i], &rest[end..]);
            }
            lines.push(l);
        }
        lines.join("\n")
    }
}

fn request(c: &Client, method: &str, user: &str, call: &str, cseq: u32, extra: &str) -> String {
    let me = c.me();
    let ruri = if user.is_empty() {
        format!("sip:127.0.0.1:{}", c.port)
    } else {
        format!("sip:{user}@127.0.0.1:{}", c.port)
    };
    let to = if method == "REGISTER" {
        format!("<sip:{user}@127.0.0.1:{}>", c.port)
    } else {
        format!("<{ruri}>")
    };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call}-{cseq}\r\n\
Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=f-{call}\r\nTo: {to}\r\n\
Call-ID: {call}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// The ACK for a negative reply `reply` to `invite` (RFC 3261 §17.1.1.3: same branch,
/// the reply's To with its tag).
fn ack_for(invite: &str, reply: &str) -> String {
    let to = reply
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .expect("reply has To");
    let mut out = String::new();
    for l in invite.lines() {
        let lower = l.to_ascii_lowercase();
        if let Some(rest) = l.strip_prefix("INVITE ") {
            out.push_str(&format!("ACK {rest}\r\n"));
        } else if lower.starts_with("to:") {
            out.push_str(to);
            out.push_str("\r\n");
        } else if lower.starts_with("cseq:") {
            out.push_str(&l.replace("INVITE", "ACK"));
            out.push_str("\r\n");
        } else if !l.is_empty() {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out
}

/// Plays the scenario against the server on `port` and returns (step, replies) pairs.
fn scenario(port: u16) -> Vec<(&'static str, Vec<String>)> {
    let c = Client::new(port);
    let short = Duration::from_millis(400);
    let mut log = Vec::new();
    let contacts = "Contact: <sip:alice@127.0.0.1:5071>;q=0.5, \
<sip:alice@127.0.0.1:5072;transport=tcp>;q=1, <sip:alice@127.0.0.1:5073>\r\nExpires: 600\r\n";
    log.push((
        "register three contacts",
        c.send(
            &request(&c, "REGISTER", "alice", "reg1", 1, contacts),
            short,
        ),
    ));
    let invite = request(&c, "INVITE", "alice", "inv1", 1, "");
    log.push(("invite a registered user", c.send(&invite, short)));
    log.push(("the retransmitted invite", c.send(&invite, short)));
    // The ACK needs the real To-tag of the 302.
    let raw = c.first_raw(&invite, "302 again");
    log.push((
        "ack to the stateful 302",
        c.send(&ack_for(&invite, &raw), short),
    ));
    log.push((
        "message to a registered user",
        c.send(&request(&c, "MESSAGE", "alice", "msg1", 1, ""), short),
    ));
    let unknown = request(&c, "INVITE", "bob", "inv2", 1, "");
    let raw = c.first_raw(&unknown, "404");
    log.push(("invite an unknown user", vec![c.norm(&raw)]));
    log.push((
        "ack to the stateless 404",
        c.send(&ack_for(&unknown, &raw), short),
    ));
    log.push((
        "options without a user",
        c.send(&request(&c, "OPTIONS", "", "opt1", 1, ""), short),
    ));
    log.push((
        "unregister the best contact",
        c.send(
            &request(
                &c,
                "REGISTER",
                "alice",
                "reg1",
                2,
                "Contact: <sip:alice@127.0.0.1:5072;transport=tcp>;expires=0\r\n",
            ),
            short,
        ),
    ));
    log.push((
        "invite after the unregistration",
        c.send(&request(&c, "INVITE", "alice", "inv3", 1, ""), short),
    ));
    log
}

fn recv_text(s: &UdpSocket, wait: Duration) -> Option<String> {
    let mut buf = vec![0u8; 65536];
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    None
}

#[test]
fn redirects_like_kamailio() {
    let kport = free_port();
    let kam = start_kamailio(kport);
    let kamailio = scenario(kport);
    let kam_log = kam.log_text();
    drop(kam);

    let bport = free_port();
    let kb = start_kemibox(bport);
    let kemibox = scenario(bport);

    // What a caller must see, whoever answers.
    let step = |log: &[(&str, Vec<String>)], name: &str| -> Vec<String> {
        log.iter()
            .find(|(s, _)| *s == name)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    let redirect = step(&kemibox, "invite a registered user");
    assert_eq!(redirect.len(), 1, "one 302 (no 100 Trying): {redirect:?}");
    assert!(
        redirect[0].starts_with("SIP/2.0 302 Moved Temporarily\n"),
        "{redirect:?}"
    );
    assert!(
        redirect[0].contains(
            "\nContact: <sip:alice@127.0.0.1:5072;transport=tcp>;q=1, \
<sip:alice@127.0.0.1:5071>;q=0.5, <sip:alice@127.0.0.1:5073>, \
<sip:alice@voicemail.example.net>;q=0.1\n"
        ),
        "{redirect:?}"
    );
    assert_eq!(step(&kemibox, "the retransmitted invite"), redirect);
    assert!(step(&kemibox, "ack to the stateful 302").is_empty());
    assert!(step(&kemibox, "ack to the stateless 404").is_empty());
    assert_eq!(kb.metric_settled("sl_acks_absorbed", 1), 1);
    assert_eq!(
        kb.metric("fwd_requests"),
        0,
        "a redirect server forwards nothing"
    );

    // And the same as Kamailio, step by step.
    assert_eq!(kamailio.len(), kemibox.len());
    for ((step, k), (_, b)) in kamailio.iter().zip(&kemibox) {
        assert_eq!(
            k,
            b,
            "{step}:\n  kamailio: {k:#?}\n  kemibox:  {b:#?}\nkemibox log:\n{}\nkamailio log:\n{kam_log}",
            std::fs::read_to_string(&kb.log).unwrap_or_default()
        );
    }
}
