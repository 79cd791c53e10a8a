//! Registrar and location service on the wire: REGISTER saves bindings (200 with the
//! Contact list), requests to a registered AoR reach its contact, method filtering gives
//! 405, de-registration removes bindings, and bindings survive a restart in SQLite.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use e2e::*;

struct Ua {
    sock: UdpSocket,
    local: SocketAddr,
    proxy: SocketAddr,
}

impl Ua {
    fn new(proxy: SocketAddr) -> Ua {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("socket");
        let local = sock.local_addr().expect("addr");
        Ua { sock, local, proxy }
    }

    fn send(&self, text: &str) -> Option<String> {
        udp_exchange(
            &self.sock,
            self.proxy,
            text.as_bytes(),
            Duration::from_secs(3),
        )
        .map(|r| String::from_utf8_lossy(&r).to_string())
    }

    fn register(&self, user: &str, contact: &str, extra: &str, cseq: u32) -> String {
        let p = self.proxy;
        let l = self.local;
        self.send(&format!(
            "REGISTER sip:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK-reg{cseq}\r\nMax-Forwards: 70\r\n\
From: <sip:{user}@{p}>;tag=r{cseq}\r\nTo: <sip:{user}@{p}>\r\nCall-ID: reg-{user}@{l}\r\nCSeq: {cseq} REGISTER\r\n\
{contact}{extra}Content-Length: 0\r\n\r\n"
        ))
        .expect("an answer to REGISTER")
    }

    fn request(&self, method: &str, user: &str, tag: &str) -> Option<String> {
        let p = self.proxy;
        let l = self.local;
        self.send(&format!(
            "{method} sip:{user}@{p} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK-{tag}\r\nMax-Forwards: 70\r\n\
From: <sip:caller@{l}>;tag={tag}\r\nTo: <sip:{user}@{p}>\r\nCall-ID: {tag}@{l}\r\nCSeq: 1 {method}\r\n\
Contact: <sip:caller@{l}>\r\nContent-Length: 0\r\n\r\n"
        ))
    }
}

fn recv(s: &UdpSocket) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = vec![0u8; 65536];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).to_string())
}

fn registrar_config(p: u16, extra: &str) -> String {
    config(&[format!("udp:127.0.0.1:{p}")], "")
        + &format!("[modparam.registrar]\nmax_expires = 3600\nmin_expires = 60\nmethod_filtering = 1\n{extra}")
}

fn script() -> String {
    std::fs::read_to_string(repo_root().join("examples/registrar.lua"))
        .expect("examples/registrar.lua")
}

#[test]
fn register_lookup_filter_and_deregister() {
    let p = free_port();
    let kb = Kemibox::start(&registrar_config(p, ""), &script());
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let ua = Ua::new(proxy);
    let phone = UdpSocket::bind("127.0.0.1:0").expect("phone");
    let ph = phone.local_addr().expect("addr");
    let allow = "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n";

    // A long expiry is capped to max_expires; Allow limits the methods.
    let contact = format!("Contact: <sip:alice@{ph}>;expires=7200;q=1.0\r\n");
    let r = ua.register("alice", &contact, allow, 1);
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    let want = format!("Contact: <sip:alice@{ph}>;q=1;expires=3600\r\n");
    assert!(r.contains(&want), "{r}");

    // A second registration adds a contact; the reply lists both, best q first.
    let second = "Contact: <sip:alice@127.0.0.1:9>;q=0.5\r\n";
    let r = ua.register(
        "alice",
        second,
        "Expires: 600\r\nAllow: INVITE, ACK, BYE\r\n",
        2,
    );
    let want = format!(
        "Contact: <sip:alice@{ph}>;q=1;expires=3600, <sip:alice@127.0.0.1:9>;q=0.5;expires=600\r\n"
    );
    assert!(r.contains(&want), "{r}");

    // An INVITE to alice goes to the best contact, with the R-URI rewritten.
    let _ = ua.request("INVITE", "alice", "inv1");
    let fwd = recv(&phone).expect("INVITE delivered to the contact");
    assert!(
        fwd.starts_with(&format!("INVITE sip:alice@{ph} SIP/2.0\r\n")),
        "{fwd}"
    );

    // MESSAGE is in neither contact's Allow: 405. Unknown user: 404.
    let r = ua.request("MESSAGE", "alice", "msg1").expect("answer");
    assert!(r.starts_with("SIP/2.0 405 Method Not Allowed\r\n"), "{r}");
    let r = ua.request("INVITE", "nobody", "inv2").expect("answer");
    assert!(r.starts_with("SIP/2.0 404 Not Found\r\n"), "{r}");

    // A too short Expires is raised to min_expires.
    let r = ua.register(
        "bob",
        "Contact: <sip:bob@127.0.0.1:9>\r\n",
        "Expires: 5\r\n",
        1,
    );
    assert!(r.contains("<sip:bob@127.0.0.1:9>;expires=60"), "{r}");

    // The same CSeq again within 20 s is a retransmission: answered, nothing changes.
    let r = ua.register("alice", &contact, allow, 1);
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    // An older CSeq on the same Call-ID is refused.
    let r = ua.register("alice", &contact, allow, 0);
    assert!(r.starts_with("SIP/2.0 400 Bad Request\r\n"), "{r}");
    assert!(
        r.contains("P-Registrar-Error: Invalid CSeq number\r\n"),
        "{r}"
    );

    // De-register everything with `*` and Expires: 0.
    let r = ua.register("alice", "Contact: *\r\n", "Expires: 0\r\n", 3);
    assert!(
        r.starts_with("SIP/2.0 200 OK\r\n") && !r.contains("Contact:"),
        "{r}"
    );
    let r = ua.request("INVITE", "alice", "inv3").expect("answer");
    assert!(r.starts_with("SIP/2.0 404 Not Found\r\n"), "{r}");
    // `*` with a non-zero Expires is invalid.
    let r = ua.register("bob", "Contact: *\r\n", "Expires: 60\r\n", 2);
    assert!(
        r.contains("P-Registrar-Error: * used in contact and expires is not zero\r\n"),
        "{r}"
    );
    // A REGISTER without Contact is a query: the bindings are listed.
    let r = ua.register("bob", "", "", 3);
    assert!(
        r.starts_with("SIP/2.0 200 OK\r\n") && r.contains("<sip:bob@127.0.0.1:9>;expires="),
        "{r}"
    );
    drop(kb);
}

#[test]
fn registrations_survive_a_restart_in_sqlite() {
    let p = free_port();
    let dir = scratch_dir("sqlite");
    let db = dir.join("location.sqlite");
    let extra = format!(
        "[modparam.usrloc]\ndb_url = \"sqlite://{}\"\ndb_mode = 2\npreload = \"location\"\ntimer_interval = 60\n",
        db.display()
    );
    let kb = Kemibox::start(&registrar_config(p, &extra), &script());
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let ua = Ua::new(proxy);
    let phone = UdpSocket::bind("127.0.0.1:0").expect("phone");
    let ph = phone.local_addr().expect("addr");
    let r = ua.register(
        "carol",
        &format!("Contact: <sip:carol@{ph}>\r\n"),
        "User-Agent: e2e-phone\r\n",
        1,
    );
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    // Write-back: flushed at shutdown (SIGTERM).
    assert!(kb.stop().success());

    // Kamailio's location schema, readable by an operator's own tools.
    let conn = rusqlite::Connection::open(&db).expect("open db");
    let (user, contact, ua_text, cseq): (String, String, String, i64) = conn
        .query_row(
            "SELECT username, contact, user_agent, cseq FROM location",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("one row");
    assert_eq!(
        (user.as_str(), contact.as_str(), ua_text.as_str(), cseq),
        ("carol", format!("sip:carol@{ph}").as_str(), "e2e-phone", 1)
    );
    drop(conn);

    // A new process preloads the binding: requests to carol reach her phone.
    let _kb2 = Kemibox::start(&registrar_config(p, &extra), &script());
    let _ = ua.request("OPTIONS", "carol", "opt1");
    let fwd = recv(&phone).expect("routed after restart");
    assert!(
        fwd.starts_with(&format!("OPTIONS sip:carol@{ph} SIP/2.0\r\n")),
        "{fwd}"
    );
}
