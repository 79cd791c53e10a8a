//! Kamailio's own `kamailio-basic-kemi-lua.lua`, unmodified (read from the Debian
//! package), on kemibox and on real Kamailio 5.6 with the same settings (WITH_AUTH,
//! WITH_ANTIFLOOD): the same scenario is played against both and every answer, every
//! forwarded request and every relayed reply must look the same (ports, tags and nonces
//! normalised; the Server header ignored).
//!
//! One suite, every engine: the script on mlua and on Lua-in-wasm, its Rust port
//! (`plugins/basic`) on wasm (a warm instance, and a fresh one per message), Kamailio's
//! `kamailio-basic-kemi-jsdt.js` on js-wasm (QuickJS) and built into a componentize-js
//! plugin (both compared with Kamailio running that same JS file in app_jsdt), and
//! `kamailio-basic-kemi-python.py` as a Python plugin (compared with app_python3).

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::basic_example::{create_db, digest};
use e2e::*;

const SCRIPT: &str = "/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-lua.lua";
const JSDT_SCRIPT: &str = "/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-jsdt.js";

fn script_path() -> PathBuf {
    let p = PathBuf::from(std::env::var("KEMI_BASIC_SCRIPT").unwrap_or_else(|_| SCRIPT.into()));
    assert!(
        p.is_file(),
        "{} is missing: apt-get install kamailio kamailio-lua-modules",
        p.display()
    );
    p
}

fn kemibox_config(port: u16, db: &Path) -> String {
    let example = std::fs::read_to_string(repo_root().join("examples/basic-kemi/kemibox.toml"))
        .expect("example config");
    // The example, on a test port, the DB made here, usrloc in memory like the Kamailio run.
    example
        .replace(
            "\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"",
            &format!("\"udp:127.0.0.1:{port}\""),
        )
        .replace(
            "sqlite://kamailio.sqlite",
            &format!("sqlite://{}", db.display()),
        )
        .replace("db_mode = 2", "db_mode = 0")
        .replace("preload = \"location\"\n", "")
        .replace(
            &format!("script = \"{SCRIPT}\""),
            &format!("script = \"{}\"", script_path().display()),
        )
        + "\n[control]\nlisten = \"CONTROL\"\n"
}

/// One side of the run: sockets for a local user (127.0.0.1), a foreign caller and a
/// callee UA (127.0.0.2).
struct Run {
    proxy: SocketAddr,
    local: UdpSocket,
    foreign: UdpSocket,
    uas: UdpSocket,
    log: Vec<(String, String)>,
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("addr")
}

impl Run {
    fn new(proxy: SocketAddr) -> Run {
        Run {
            proxy,
            local: UdpSocket::bind("127.0.0.1:0").expect("local"),
            foreign: UdpSocket::bind("127.0.0.2:0").expect("foreign"),
            uas: UdpSocket::bind("127.0.0.2:0").expect("uas"),
            log: Vec::new(),
        }
    }

    /// Replaces what differs between runs: ports, tags, nonces, branches.
    fn norm(&self, text: &str) -> String {
        let mut t = text
            .replace(&format!("127.0.0.1:{}", self.proxy.port()), "PROXY")
            .replace(&addr(&self.local).to_string(), "LOCAL")
            .replace(&addr(&self.foreign).to_string(), "FOREIGN")
            .replace(&addr(&self.uas).to_string(), "UAS");
        for key in [";tag=", "nonce=\"", ";branch=", ";received=", ";rport="] {
            let mut out = String::new();
            let mut rest = t.as_str();
            while let Some(i) = rest.find(key) {
                out.push_str(&rest[..i + key.len()]);
                rest = &rest[i + key.len()..];
                let end = rest
                    .find([';', '"', '>', ',', '\r', '\n', ' '])
                    .unwrap_or(rest.len());
                out.push('*');
                rest = &rest[end..];
            }
            out.push_str(rest);
            t = out;
        }
        t
    }

    /// What is compared of a message: the first line and the headers that carry routing
    /// decisions.
    fn summary(&self, msg: &str) -> String {
        let mut lines = vec![self.norm(msg.lines().next().unwrap_or(""))];
        for l in msg.lines().skip(1) {
            let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
            if [
                "via",
                "v",
                "record-route",
                "route",
                "contact",
                "m",
                "max-forwards",
                "www-authenticate",
                "proxy-authenticate",
                "to",
                "t",
                "cseq",
                "p-hint",
                "unsupported",
                "p-registrar-error",
            ]
            .contains(&name.as_str())
            {
                lines.push(self.norm(l));
            }
        }
        lines.join(" | ")
    }

    fn note(&mut self, step: &str, what: String) {
        self.log.push((step.to_string(), what));
    }

    fn recv(s: &UdpSocket, wait: Duration) -> Option<(String, SocketAddr)> {
        s.set_read_timeout(Some(wait)).expect("timeout");
        let mut buf = vec![0u8; 65536];
        s.recv_from(&mut buf)
            .ok()
            .map(|(n, a)| (String::from_utf8_lossy(&buf[..n]).to_string(), a))
    }

    /// Sends and records every answer that arrives within `wait` (100 Trying included).
    fn send(&mut self, step: &str, from: Who, msg: &str, wait: Duration) -> Vec<String> {
        let sock = self.sock(from);
        sock.send_to(msg.as_bytes(), self.proxy).expect("send");
        let mut got = Vec::new();
        let mut w = wait;
        while let Some((m, _)) = Run::recv(sock, w) {
            // A UAC acknowledges a negative final answer to its INVITE (RFC 3261 §17.1.1.3).
            if msg.starts_with("INVITE ")
                && m.starts_with("SIP/2.0 ")
                && !m.starts_with("SIP/2.0 1")
                && !m.starts_with("SIP/2.0 2")
            {
                let to = m
                    .lines()
                    .find(|l| l.starts_with("To:"))
                    .unwrap_or("To: <sip:x>");
                let mut ack = msg
                    .replacen("INVITE ", "ACK ", 1)
                    .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
                if let Some(old_to) = msg.lines().find(|l| l.starts_with("To:")) {
                    ack = ack.replace(old_to, to);
                }
                let _ = sock.send_to(ack.as_bytes(), self.proxy);
            }
            got.push(m);
            w = Duration::from_millis(300);
        }
        let summary: Vec<String> = got.iter().map(|m| self.summary(m)).collect();
        self.note(
            step,
            if summary.is_empty() {
                "(nothing)".into()
            } else {
                summary.join("  //  ")
            },
        );
        got
    }

    fn sock(&self, who: Who) -> &UdpSocket {
        match who {
            Who::Local => &self.local,
            Who::Foreign => &self.foreign,
            Who::Uas => &self.uas,
        }
    }

    fn uas_expect(&mut self, step: &str) -> Option<(String, SocketAddr)> {
        let r = Run::recv(&self.uas, Duration::from_secs(3));
        let what = r
            .as_ref()
            .map(|(m, _)| self.summary(m))
            .unwrap_or_else(|| "(nothing)".into());
        self.note(step, what);
        r
    }
}

#[derive(Clone, Copy)]
enum Who {
    Local,
    Foreign,
    Uas,
}

#[allow(clippy::too_many_arguments)]
fn req(
    method: &str,
    ruri: &str,
    from: &str,
    to: &str,
    via: SocketAddr,
    callid: &str,
    cseq: u32,
    extra: &str,
) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK-{callid}-{cseq}{method}\r\nMax-Forwards: 70\r\n\
From: {from}\r\nTo: {to}\r\nCall-ID: {callid}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn reply_to(req: &str, code: u16, reason: &str, to_tag: &str, extra: &str) -> String {
    let mut r = format!("SIP/2.0 {code} {reason}\r\n");
    for l in req.lines() {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("via:")
            || lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
            || lower.starts_with("record-route:")
        {
            r.push_str(l);
            r.push_str("\r\n");
        } else if lower.starts_with("to:") {
            r.push_str(l);
            if !l.contains(";tag=") {
                r.push_str(&format!(";tag={to_tag}"));
            }
            r.push_str("\r\n");
        }
    }
    r.push_str(extra);
    r.push_str("Content-Length: 0\r\n\r\n");
    r
}

fn nonce_of(msgs: &[String]) -> String {
    msgs.iter()
        .flat_map(|m| m.lines())
        .find_map(|l| {
            let i = l.find("nonce=\"")? + 7;
            Some(l[i..i + l[i..].find('"')?].to_string())
        })
        .expect("a challenge with a nonce")
}

/// Registers a user in two steps (challenge, then credentials).
fn register(
    r: &mut Run,
    step: &str,
    user: &str,
    pass: &str,
    contact: &str,
    extra: &str,
    cseq: u32,
) {
    let p = r.proxy;
    let l = addr(&r.local);
    let from = format!("<sip:{user}@127.0.0.1>;tag=r{user}");
    let to = format!("<sip:{user}@127.0.0.1>");
    let callid = format!("reg-{user}");
    let first = req(
        "REGISTER",
        &format!("sip:127.0.0.1:{}", p.port()),
        &from,
        &to,
        l,
        &callid,
        cseq,
        &format!("Contact: {contact}\r\n{extra}"),
    );
    let got = r.send(
        &format!("{step}: challenge"),
        Who::Local,
        &first,
        Duration::from_secs(2),
    );
    let nonce = nonce_of(&got);
    let uri = format!("sip:127.0.0.1:{}", p.port());
    let auth = digest(user, pass, "127.0.0.1", &nonce, "REGISTER", &uri);
    let second = req(
        "REGISTER",
        &uri,
        &from,
        &to,
        l,
        &callid,
        cseq + 1,
        &format!("Contact: {contact}\r\n{extra}Authorization: {auth}\r\n"),
    );
    r.send(
        &format!("{step}: credentials"),
        Who::Local,
        &second,
        Duration::from_secs(2),
    );
}

fn scenario(r: &mut Run) {
    let p = r.proxy;
    let (l, f, u) = (addr(&r.local), addr(&r.foreign), addr(&r.uas));
    let me = format!("127.0.0.1:{}", p.port());
    let foreign_from = "<sip:carol@example.org>;tag=fc1";
    let w = Duration::from_secs(2);

    r.send(
        "keepalive",
        Who::Foreign,
        &req(
            "OPTIONS",
            &format!("sip:{me}"),
            foreign_from,
            &format!("<sip:{me}>"),
            f,
            "ka",
            1,
            "",
        ),
        w,
    );
    r.send(
        "max-forwards 0",
        Who::Foreign,
        &req(
            "OPTIONS",
            &format!("sip:x@{me}"),
            foreign_from,
            "<sip:x@127.0.0.1>",
            f,
            "mf0",
            1,
            "",
        )
        .replace("Max-Forwards: 70", "Max-Forwards: 0"),
        w,
    );
    r.send(
        "scanner",
        Who::Foreign,
        &req(
            "OPTIONS",
            &format!("sip:x@{me}"),
            foreign_from,
            "<sip:x@127.0.0.1>",
            f,
            "scan",
            1,
            "User-Agent: friendly-scanner\r\n",
        ),
        w,
    );
    r.send(
        "sanity: cseq method",
        Who::Foreign,
        &req(
            "OPTIONS",
            &format!("sip:x@{me}"),
            foreign_from,
            "<sip:x@127.0.0.1>",
            f,
            "san1",
            1,
            "",
        )
        .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
        w,
    );
    r.send(
        "sanity: expires",
        Who::Foreign,
        &req(
            "OPTIONS",
            &format!("sip:x@{me}"),
            foreign_from,
            "<sip:x@127.0.0.1>",
            f,
            "san2",
            1,
            "Expires: soon\r\n",
        ),
        w,
    );
    r.send(
        "sanity: ruri scheme",
        Who::Foreign,
        &req(
            "OPTIONS",
            "urn:service:sos",
            foreign_from,
            "<sip:x@127.0.0.1>",
            f,
            "san3",
            1,
            "",
        ),
        w,
    );

    // Registrations.
    let alice_contact = format!("<sip:alice@{u}>;expires=7200");
    let got = r.send(
        "register: no credentials",
        Who::Local,
        &req(
            "REGISTER",
            &format!("sip:{me}"),
            "<sip:alice@127.0.0.1>;tag=x1",
            "<sip:alice@127.0.0.1>",
            l,
            "reg-x",
            1,
            &format!("Contact: {alice_contact}\r\n"),
        ),
        w,
    );
    let nonce = nonce_of(&got);
    let bad = digest(
        "alice",
        "wrong",
        "127.0.0.1",
        &nonce,
        "REGISTER",
        &format!("sip:{me}"),
    );
    r.send(
        "register: wrong password",
        Who::Local,
        &req(
            "REGISTER",
            &format!("sip:{me}"),
            "<sip:alice@127.0.0.1>;tag=x1",
            "<sip:alice@127.0.0.1>",
            l,
            "reg-x",
            2,
            &format!("Contact: {alice_contact}\r\nAuthorization: {bad}\r\n"),
        ),
        w,
    );
    let who = digest(
        "mallory",
        "x",
        "127.0.0.1",
        &nonce,
        "REGISTER",
        &format!("sip:{me}"),
    );
    r.send(
        "register: unknown user",
        Who::Local,
        &req(
            "REGISTER",
            &format!("sip:{me}"),
            "<sip:mallory@127.0.0.1>;tag=x2",
            "<sip:mallory@127.0.0.1>",
            l,
            "reg-m",
            1,
            &format!("Contact: <sip:mallory@{l}>\r\nAuthorization: {who}\r\n"),
        ),
        w,
    );
    register(
        r,
        "register alice",
        "alice",
        "alice123",
        &alice_contact,
        "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n",
        1,
    );
    register(
        r,
        "register bob",
        "bob",
        "bob123",
        &format!("<sip:bob@{l}>"),
        "",
        1,
    );

    // Requests from local users need credentials; open relaying is refused.
    r.send(
        "local caller without credentials",
        Who::Local,
        &req(
            "INVITE",
            &format!("sip:bob@{me}"),
            "<sip:alice@127.0.0.1>;tag=i1",
            "<sip:bob@127.0.0.1>",
            l,
            "inv-noauth",
            1,
            &format!("Contact: <sip:alice@{l}>\r\n"),
        ),
        w,
    );
    r.send(
        "not relaying",
        Who::Foreign,
        &req(
            "INVITE",
            "sip:dave@example.net",
            foreign_from,
            "<sip:dave@example.net>",
            f,
            "relay",
            1,
            &format!("Contact: <sip:carol@{f}>\r\n"),
        ),
        w,
    );
    r.send(
        "address incomplete",
        Who::Foreign,
        &req(
            "INVITE",
            &format!("sip:{me}"),
            foreign_from,
            "<sip:127.0.0.1>",
            f,
            "noruser",
            1,
            &format!("Contact: <sip:carol@{f}>\r\n"),
        ),
        w,
    );
    r.send(
        "unknown user",
        Who::Foreign,
        &req(
            "INVITE",
            &format!("sip:nobody@{me}"),
            foreign_from,
            "<sip:nobody@127.0.0.1>",
            f,
            "nobody",
            1,
            &format!("Contact: <sip:carol@{f}>\r\n"),
        ),
        w,
    );
    r.send(
        "method not allowed",
        Who::Foreign,
        &req(
            "MESSAGE",
            &format!("sip:alice@{me}"),
            foreign_from,
            "<sip:alice@127.0.0.1>",
            f,
            "msg",
            1,
            "",
        ),
        w,
    );
    r.send(
        "in-dialog without route",
        Who::Foreign,
        &req(
            "BYE",
            &format!("sip:alice@{me}"),
            foreign_from,
            "<sip:alice@127.0.0.1>;tag=zz",
            f,
            "nodlg",
            2,
            "",
        ),
        w,
    );
    r.send(
        "stray ACK",
        Who::Foreign,
        &req(
            "ACK",
            &format!("sip:alice@{me}"),
            foreign_from,
            "<sip:alice@127.0.0.1>;tag=zz",
            f,
            "stray",
            1,
            "",
        ),
        Duration::from_millis(700),
    );

    // A call from a foreign caller to alice: routed to her contact with Record-Route,
    // answered, acknowledged, and hung up by the callee.
    let invite = req(
        "INVITE",
        &format!("sip:alice@{me}"),
        foreign_from,
        "<sip:alice@127.0.0.1>",
        f,
        "call1",
        1,
        &format!("Contact: <sip:carol@{f}>\r\n"),
    );
    r.send(
        "call: INVITE",
        Who::Foreign,
        &invite,
        Duration::from_millis(500),
    );
    let Some((fwd, from)) = r.uas_expect("call: INVITE at callee") else {
        return;
    };
    r.uas
        .send_to(reply_to(&fwd, 180, "Ringing", "al1", "").as_bytes(), from)
        .expect("180");
    r.send_wait("call: 180 at caller");
    r.uas
        .send_to(
            reply_to(
                &fwd,
                200,
                "OK",
                "al1",
                &format!("Contact: <sip:alice@{u}>\r\n"),
            )
            .as_bytes(),
            from,
        )
        .expect("200");
    let ok = r.send_wait("call: 200 at caller");
    let rr: Vec<String> = ok
        .iter()
        .flat_map(|m| {
            m.lines()
                .filter(|l| l.starts_with("Record-Route:"))
                .map(|l| l["Record-Route:".len()..].trim().to_string())
        })
        .collect();
    let route = if rr.is_empty() {
        String::new()
    } else {
        format!("Route: {}\r\n", rr.join(", "))
    };
    let ack = req(
        "ACK",
        &format!("sip:alice@{u}"),
        foreign_from,
        "<sip:alice@127.0.0.1>;tag=al1",
        f,
        "call1",
        1,
        &route,
    );
    r.send("call: ACK", Who::Foreign, &ack, Duration::from_millis(300));
    r.uas_expect("call: ACK at callee");
    let bye = req(
        "BYE",
        &format!("sip:carol@{f}"),
        "<sip:alice@127.0.0.1>;tag=al1",
        foreign_from,
        u,
        "call1",
        2,
        &route,
    );
    r.send(
        "call: BYE from callee",
        Who::Uas,
        &bye,
        Duration::from_millis(300),
    );
    if let Some((b, from)) = Run::recv(&r.foreign, Duration::from_secs(3)) {
        let s = r.summary(&b);
        r.note("call: BYE at caller", s);
        r.foreign
            .send_to(reply_to(&b, 200, "OK", "x", "").as_bytes(), from)
            .expect("200 bye");
        let got = Run::recv(&r.uas, Duration::from_secs(3))
            .map(|(m, _)| r.summary(&m))
            .unwrap_or_else(|| "(nothing)".into());
        r.note("call: 200 for BYE at callee", got);
    } else {
        r.note("call: BYE at caller", "(nothing)".into());
    }

    // CANCEL of a ringing call.
    let invite = req(
        "INVITE",
        &format!("sip:alice@{me}"),
        foreign_from,
        "<sip:alice@127.0.0.1>",
        f,
        "call2",
        1,
        &format!("Contact: <sip:carol@{f}>\r\n"),
    );
    r.send(
        "cancel: INVITE",
        Who::Foreign,
        &invite,
        Duration::from_millis(500),
    );
    let Some((fwd, from)) = r.uas_expect("cancel: INVITE at callee") else {
        return;
    };
    r.uas
        .send_to(reply_to(&fwd, 180, "Ringing", "al2", "").as_bytes(), from)
        .expect("180");
    r.send_wait("cancel: 180 at caller");
    let cancel = invite
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace(&format!("Contact: <sip:carol@{f}>\r\n"), "");
    r.send(
        "cancel: CANCEL",
        Who::Foreign,
        &cancel,
        Duration::from_millis(500),
    );
    if let Some((c, from)) = r.uas_expect("cancel: CANCEL at callee") {
        r.uas
            .send_to(reply_to(&c, 200, "OK", "al2", "").as_bytes(), from)
            .expect("200");
        r.uas
            .send_to(
                reply_to(&fwd, 487, "Request Terminated", "al2", "").as_bytes(),
                from,
            )
            .expect("487");
        r.uas_expect("cancel: ACK for 487 at callee");
        r.send_wait("cancel: 487 at caller");
    }

    // De-registration: Expires 0 removes bob's binding (200 without a Contact).
    register(
        r,
        "de-register bob",
        "bob",
        "bob123",
        &format!("<sip:bob@{l}>"),
        "Expires: 0\r\n",
        3,
    );

    // Pike: a flooding source (not ourselves) is blocked after 16 requests in 2 s.
    let flood = UdpSocket::bind("127.0.0.3:0").expect("flood");
    let mut answered = 0;
    for i in 0..30 {
        let m = req(
            "OPTIONS",
            &format!("sip:{me}"),
            "<sip:x@example.org>;tag=fl",
            &format!("<sip:{me}>"),
            addr(&flood),
            &format!("flood{i}"),
            1,
            "",
        );
        if udp_exchange(&flood, p, m.as_bytes(), Duration::from_millis(300)).is_some() {
            answered += 1;
        }
    }
    r.note(
        "pike: flood answered",
        if answered < 30 {
            "blocked before 30".into()
        } else {
            "never blocked".into()
        },
    );
}

impl Run {
    /// Records what `who` receives next.
    fn wait_at(&mut self, step: &str, who: Who) -> Vec<String> {
        let mut got = Vec::new();
        let mut w = Duration::from_secs(3);
        while let Some((m, _)) = Run::recv(self.sock(who), w) {
            got.push(m);
            w = Duration::from_millis(300);
        }
        let s: Vec<String> = got.iter().map(|m| self.summary(m)).collect();
        self.note(
            step,
            if s.is_empty() {
                "(nothing)".into()
            } else {
                s.join("  //  ")
            },
        );
        got
    }

    /// Records what the foreign caller receives next.
    fn send_wait(&mut self, step: &str) -> Vec<String> {
        self.wait_at(step, Who::Foreign)
    }
}

/// Which kemibox engine runs the basic routing logic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    /// Kamailio's Lua script, unmodified, on mlua.
    Lua,
    /// The same script on engine `lua-wasm` (Lua 5.4 inside the `plugins/lua` component).
    LuaWasm,
    /// `plugins/basic` (the Rust port) on the wasm engine, a warm instance per worker.
    Wasm,
    /// The same with `isolation = "per-message"`: a fresh instance for every message.
    WasmPerMessage,
    /// Kamailio's `kamailio-basic-kemi-jsdt.js`, unmodified, built into a JS plugin
    /// (componentize-js).
    Js,
    /// The same script on engine `js-wasm` (QuickJS inside the `plugins/quickjs`
    /// component, the script loaded at start).
    JsWasm,
    /// Kamailio's `kamailio-basic-kemi-python.py`, unmodified, as a wasm plugin
    /// (`plugins/python`).
    Python,
}

impl Engine {
    /// A name for scratch directories and messages.
    fn tag(self) -> &'static str {
        match self {
            Engine::Lua => "lua",
            Engine::LuaWasm => "lua-wasm",
            Engine::Wasm => "wasm",
            Engine::WasmPerMessage => "wasm-pm",
            Engine::Js => "js",
            Engine::JsWasm => "js-wasm",
            Engine::Python => "python",
        }
    }

    /// The script Kamailio runs for the comparison, and its `-A` defines.
    fn kamailio_script(self) -> (PathBuf, Vec<String>) {
        match self {
            Engine::Js | Engine::JsWasm => (jsdt_path(), vec!["-A".into(), "WITH_JSDT".into()]),
            Engine::Python => (python_path(), vec!["-A".into(), "WITH_PYTHON".into()]),
            _ => (script_path(), Vec::new()),
        }
    }
}

fn jsdt_path() -> PathBuf {
    let p = PathBuf::from(JSDT_SCRIPT);
    assert!(
        p.is_file(),
        "{JSDT_SCRIPT} is missing: apt-get install kamailio"
    );
    p
}

/// `cfg` with its `[routing]` engine and script lines replaced by `routing`.
fn with_routing(cfg: &str, routing: &str) -> String {
    let mut out = String::new();
    let mut replaced = false;
    for line in cfg.lines() {
        if line.starts_with("engine = ") {
            out.push_str(routing);
            replaced = true;
        } else if !line.starts_with("script = ") {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(replaced, "no engine line in the config");
    out
}

/// The kemibox config of the scenario for `engine`: the example as it is, or with
/// `[routing]` switched to the `basic` plugin (the rest, modules and modparams, the same).
fn engine_config(engine: Engine, port: u16, db: &Path) -> String {
    let cfg = kemibox_config(port, db);
    match engine {
        Engine::Lua => cfg,
        Engine::LuaWasm => {
            let runtime = wasm_plugin("kemibox_lua");
            assert!(runtime.is_file(), "{} was not built", runtime.display());
            with_routing(
                &cfg,
                &format!(
                    "engine = \"lua-wasm\"\nscript = \"{}\"\nruntime = \"{}\"",
                    script_path().display(),
                    runtime.display()
                ),
            )
        }
        Engine::Python => python_config(&cfg, db),
        Engine::Wasm | Engine::WasmPerMessage => {
            let plugin = wasm_plugin("basic");
            assert!(
                plugin.is_file(),
                "{} was not built (plugins/basic)",
                plugin.display()
            );
            let out = with_routing(
                &cfg,
                &format!("engine = \"wasm\"\nplugin = \"{}\"", plugin.display()),
            );
            if engine == Engine::WasmPerMessage {
                return out + "\n[routing.limits]\nisolation = \"per-message\"\n";
            }
            out
        }
        Engine::Js | Engine::JsWasm => {
            // The JS script calls nathelper and permissions without checking for them
            // (Kamailio's cfg loads them by default): loaded here as in the Kamailio run.
            let routing = if engine == Engine::Js {
                format!(
                    "engine = \"wasm\"\nplugin = \"{}\"\ncache_dir = \"{}\"",
                    js_plugin(&jsdt_path()).display(),
                    js_cache_dir().display()
                )
            } else {
                let runtime = wasm_plugin("kemibox_quickjs");
                assert!(runtime.is_file(), "{} was not built", runtime.display());
                format!(
                    "engine = \"js-wasm\"\nscript = \"{}\"\nruntime = \"{}\"",
                    jsdt_path().display(),
                    runtime.display()
                )
            };
            let cfg = with_routing(&cfg, &routing).replace(
                "\"pike\", \"acc\"]",
                "\"pike\", \"acc\", \"nathelper\", \"permissions\"]",
            );
            assert!(
                cfg.contains("\"permissions\"]"),
                "the example's modules changed"
            );
            let cfg = format!(
                "{cfg}\n[modparam.permissions]\ndb_url = \"sqlite://{}\"\n",
                db.display()
            );
            // A JS component compiles longer than start-up waits: into the cache first.
            precompile(&cfg);
            cfg
        }
    }
}

/// Checks the wasm run had no trap, limit hit or refused KEMI call: an error in the
/// plugin would otherwise only show as a missing answer.
fn assert_plugin_clean(engine: Engine, kb: &Kemibox) {
    if engine == Engine::Lua {
        return;
    }
    let log = kb.log_text();
    for m in [
        "wasm_traps",
        "wasm_deadlines",
        "wasm_memory_limits",
        "wasm_host_call_limits",
    ] {
        assert_eq!(kb.metric(m), 0, "{m}\n{log}");
    }
    assert!(!log.contains("plugin route failed"), "{log}");
}

/// Plays the scenario against Kamailio with the script, then against kemibox on
/// `engine`, and asserts every step looks the same (and acc logged what Kamailio's
/// would).
fn answers_like_kamailio(engine: Engine) {
    let (script, defines) = engine.kamailio_script();
    let dir = scratch_dir(&format!("basic-{}", engine.tag()));
    let db = create_db(&dir);

    let kport = free_port();
    let kproxy: SocketAddr = format!("127.0.0.1:{kport}").parse().expect("addr");
    let kam = Kamailio::start(
        &repo_root().join("tests/kamailio/basic-kemi.cfg"),
        &[
            "-A".into(),
            // Kamailio drops the first slash of the path.
            format!("DBURL=\"sqlite:///{}\"", db.display()),
            "-A".into(),
            format!("KEMI_SCRIPT=\"{}\"", script.display()),
            "-l".into(),
            format!("udp:127.0.0.1:{kport}"),
        ]
        .into_iter()
        .chain(defines)
        .collect::<Vec<_>>(),
        kproxy,
    );
    let mut k = Run::new(kproxy);
    scenario(&mut k);
    drop(kam);

    let bport = free_port();
    std::fs::create_dir_all(dir.join("kemibox")).expect("dir");
    let kb = Kemibox::start_in(dir.join("kemibox"), &engine_config(engine, bport, &db), "");
    let mut b = Run::new(format!("127.0.0.1:{bport}").parse().expect("addr"));
    scenario(&mut b);

    let mut diffs = Vec::new();
    for (i, (step, kw)) in k.log.iter().enumerate() {
        let bw = b
            .log
            .get(i)
            .map(|(s, w)| (s.as_str(), w.as_str()))
            .unwrap_or(("(missing)", ""));
        println!("{step}:\n  kamailio: {kw}");
        if bw.0 != step || bw.1 != kw {
            diffs.push(format!(
                "{step}:\n  kamailio: {kw}\n  kemibox ({engine:?}):  {}",
                bw.1
            ));
        }
    }
    assert_eq!(k.log.len(), b.log.len(), "different number of steps");
    // acc, on the script's flags: the answered call and the canceled (missed) one.
    let log = kb.log_text();
    let answered = log
        .lines()
        .find(|l| l.contains("ACC: transaction answered") && l.contains("method=INVITE"));
    assert!(
        answered.is_some_and(|l| l.contains("code=200") && l.contains("src_user=carol")),
        "{log}"
    );
    let missed = log.lines().find(|l| l.contains("ACC: call missed"));
    assert!(missed.is_some_and(|l| l.contains("code=487")), "{log}");
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert_plugin_clean(engine, &kb);
}

#[test]
fn the_basic_script_answers_like_kamailio() {
    answers_like_kamailio(Engine::Lua);
}

/// The same scenario, compared with the same Kamailio run, on `plugins/basic` (the Rust
/// port of the script) on the wasm engine.
#[test]
fn the_basic_plugin_answers_like_kamailio() {
    answers_like_kamailio(Engine::Wasm);
}

/// The unmodified Lua script on Lua-in-wasm.
#[test]
fn the_basic_script_on_lua_wasm_answers_like_kamailio() {
    answers_like_kamailio(Engine::LuaWasm);
}

/// Kamailio's JavaScript version of the script, unmodified, as a JS plugin, against
/// Kamailio running the same file in app_jsdt.
#[test]
fn the_basic_jsdt_script_answers_like_kamailio() {
    answers_like_kamailio(Engine::Js);
}

/// The same on engine `js-wasm` (QuickJS in wasm, no build step).
#[test]
fn the_basic_jsdt_script_on_js_wasm_answers_like_kamailio() {
    answers_like_kamailio(Engine::JsWasm);
}

/// sipp, a real SIP client, registers through the unmodified basic script: challenged
/// (401), then authenticated with its own digest code; the bindings are written through
/// to SQLite in Kamailio's `location` schema, with max_expires applied.
#[test]
fn sipp_registers_with_digest_auth_through_the_basic_script() {
    let dir = scratch_dir("basic-sipp");
    let db = create_db(&dir);
    let p = free_port();
    let cfg = kemibox_config(p, &db).replace("db_mode = 0", "db_mode = 1");
    std::fs::create_dir_all(dir.join("kemibox")).expect("dir");
    let kb = Kemibox::start_in(dir.join("kemibox"), &cfg, "");
    let c = free_port();
    let out = run_bounded(
        std::process::Command::new("sipp")
            .args(["-sf"])
            .arg(repo_root().join("tests/sipp/register-auth.xml"))
            .args([
                "-s", "alice", "-au", "alice", "-ap", "alice123", "-m", "5", "-r", "5", "-nostdin",
            ])
            .args([
                "-timeout",
                "20",
                "-timeout_error",
                "-i",
                "127.0.0.1",
                "-p",
                &c.to_string(),
            ])
            .arg(format!("127.0.0.1:{p}"))
            .current_dir(&dir),
        Duration::from_secs(40),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (ok, failed) = sipp_counts(&stdout);
    assert!(
        out.status.success() && ok == 5 && failed == 0,
        "{ok} ok, {failed} failed\n{stdout}\n{}",
        kb.log_text()
    );
    let conn = rusqlite::Connection::open(&db).expect("db");
    let (n, contact, ua): (i64, String, String) = conn
        .query_row(
            "SELECT count(*), max(contact), max(user_agent) FROM location WHERE username = 'alice'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("location rows");
    assert_eq!(n, 1, "one contact, updated by each registration");
    assert_eq!(
        (contact.as_str(), ua.as_str()),
        (
            format!("sip:alice@127.0.0.1:{c}").as_str(),
            "sipp-register-auth"
        )
    );
    let left: i64 = conn
        .query_row(
            "SELECT CAST(strftime('%s', expires) AS INTEGER) - CAST(strftime('%s', 'now') AS INTEGER) FROM location WHERE username = 'alice'",
            [],
            |r| r.get(0),
        )
        .expect("expires");
    assert!(
        (3500..=3600).contains(&left),
        "Expires 7200 capped at max_expires 3600: {left}"
    );
}

/// sipp calls through the basic routing logic on `engine`: the callee (a sipp UAS)
/// registers as alice with digest auth, then a foreign caller makes CALLS calls to
/// alice at the proxy: lookup, Record-Route, and ACK and BYE loose-routed to the UAS.
fn sipp_calls_a_registered_user(engine: Engine) {
    const CALLS: u64 = 10;
    let dir = scratch_dir(&format!("basic-calls-{}", engine.tag()));
    let db = create_db(&dir);
    let p = free_port();
    std::fs::create_dir_all(dir.join("kemibox")).expect("dir");
    let kb = Kemibox::start_in(dir.join("kemibox"), &engine_config(engine, p, &db), "");
    let proxy = format!("127.0.0.1:{p}");
    let sipp_out = |out: &std::process::Output| {
        format!(
            "{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            kb.log_text()
        )
    };

    // The UAS's address becomes alice's contact.
    let u = free_port();
    let out = run_bounded(
        std::process::Command::new("sipp")
            .arg("-sf")
            .arg(repo_root().join("tests/sipp/register-auth.xml"))
            .args(["-s", "alice", "-au", "alice", "-ap", "alice123", "-m", "1"])
            .args(["-nostdin", "-timeout", "10", "-timeout_error"])
            .args(["-i", "127.0.0.1", "-p", &u.to_string(), &proxy])
            .current_dir(&dir),
        Duration::from_secs(20),
    );
    assert_eq!(
        sipp_counts(&String::from_utf8_lossy(&out.stdout)),
        (1, 0),
        "registration: {}",
        sipp_out(&out)
    );

    let _uas = Bg(std::process::Command::new("sipp")
        .arg("-sf")
        .arg(repo_root().join("tests/sipp/uas-rr.xml"))
        .args(["-nostdin", "-i", "127.0.0.1", "-p", &u.to_string()])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sipp UAS (install sip-tester)"));
    std::thread::sleep(Duration::from_millis(300));

    let c = free_port();
    let out = run_bounded(
        std::process::Command::new("sipp")
            .arg("-sf")
            .arg(repo_root().join("tests/sipp/uac-routed.xml"))
            .args(["-s", "alice", "-m", &CALLS.to_string(), "-r", "10"])
            .args(["-nostdin", "-timeout", "30", "-timeout_error"])
            .args(["-i", "127.0.0.1", "-p", &c.to_string(), &proxy])
            .current_dir(&dir),
        Duration::from_secs(45),
    );
    let (ok, failed) = sipp_counts(&String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success() && ok == CALLS && failed == 0,
        "{ok} ok, {failed} failed\n{}",
        sipp_out(&out)
    );
    // acc on the script's flags: every INVITE and every BYE answered.
    let log = kb.log_text();
    for method in ["INVITE", "BYE"] {
        let n = log
            .lines()
            .filter(|l| {
                l.contains("ACC: transaction answered")
                    && l.contains(&format!("method={method}"))
                    && l.contains("code=200")
            })
            .count() as u64;
        assert_eq!(n, CALLS, "{method} accounted\n{log}");
    }
    assert_plugin_clean(engine, &kb);
}

#[test]
fn sipp_calls_a_registered_user_through_the_basic_script() {
    sipp_calls_a_registered_user(Engine::Lua);
}

#[test]
fn sipp_calls_a_registered_user_through_the_basic_plugin() {
    sipp_calls_a_registered_user(Engine::Wasm);
}

/// The plugin keeps no state between messages that matters: with a fresh instance for
/// every message the same calls succeed.
#[test]
fn sipp_calls_a_registered_user_through_the_basic_plugin_per_message() {
    sipp_calls_a_registered_user(Engine::WasmPerMessage);
}

#[test]
fn sipp_calls_a_registered_user_through_the_basic_script_on_lua_wasm() {
    sipp_calls_a_registered_user(Engine::LuaWasm);
}

#[test]
fn sipp_calls_a_registered_user_through_the_basic_jsdt_script() {
    sipp_calls_a_registered_user(Engine::Js);
}

#[test]
fn sipp_calls_a_registered_user_through_the_basic_jsdt_script_on_js_wasm() {
    sipp_calls_a_registered_user(Engine::JsWasm);
}

/// The config of the Python engine: `[routing]` switched to the plugin built from
/// Kamailio's `kamailio-basic-kemi-python.py` (compiled ahead into its cache), with
/// `nathelper` and `permissions` loaded as in the Kamailio run: that script calls them
/// without testing for them (on loopback they change no answer: no NAT is detected, the
/// address table is empty).
fn python_config(cfg: &str, db: &Path) -> String {
    let plugin = py_plugin(&python_path());
    let cache = repo_root().join("plugins/python/build/cache");
    let out = with_routing(
        cfg,
        &format!(
            "engine = \"wasm\"\nplugin = \"{}\"\ncache_dir = \"{}\"",
            plugin.display(),
            cache.display()
        ),
    )
    .replacen(
        "\"pike\", \"acc\"]",
        "\"pike\", \"acc\", \"nathelper\", \"permissions\"]",
        1,
    );
    assert!(
        out.contains("\"nathelper\", \"permissions\"]"),
        "the example's modules changed"
    );
    let out = format!(
        "{out}\n[modparam.permissions]\ndb_url = \"sqlite://{}\"\n",
        db.display()
    );
    precompile(&out);
    out
}

fn python_path() -> PathBuf {
    let p = PathBuf::from(PYTHON_SCRIPT);
    assert!(
        p.is_file(),
        "{PYTHON_SCRIPT} is missing: apt-get install kamailio"
    );
    p
}

const PYTHON_SCRIPT: &str = "/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-python.py";

/// The scenario with Kamailio's Python script: on Kamailio's app_python3 and as a wasm
/// plugin on kemibox (the script differs from the Lua one in places: `force_rport` after
/// the initial checks, "200 Processed" to scanners).
#[test]
fn the_basic_python_script_answers_like_kamailio() {
    answers_like_kamailio(Engine::Python);
}

/// sipp registers and calls through Kamailio's Python script as a wasm plugin.
#[test]
fn sipp_calls_a_registered_user_through_the_basic_python_script() {
    sipp_calls_a_registered_user(Engine::Python);
}
