//! Kamailio's basic KEMI script in any language through `examples/basic-kemi/kemibox.toml`
//! with its `[routing]` replaced: the SQLite database of the example, the config, a
//! digest response, and a short session (keepalive, REGISTER challenged then accepted, a
//! call to the registered user through the script's relay routes, a wrong password
//! challenged again).

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use md5::{Digest, Md5};

use crate::*;

/// The example's database (`create-db.sh`) in `dir`, with alice and bob.
pub fn create_db(dir: &Path) -> PathBuf {
    let db = dir.join("kamailio.sqlite");
    let out = Command::new(repo_root().join("examples/basic-kemi/create-db.sh"))
        .arg(&db)
        .args(["alice:alice123", "bob:bob123"])
        .output()
        .expect("create-db.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db
}

/// An MD5 digest `Authorization` value.
pub fn digest(user: &str, pass: &str, realm: &str, nonce: &str, method: &str, uri: &str) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let ha1 = hex(&Md5::digest(format!("{user}:{realm}:{pass}").as_bytes()));
    let ha2 = hex(&Md5::digest(format!("{method}:{uri}").as_bytes()));
    let resp = hex(&Md5::digest(format!("{ha1}:{nonce}:{ha2}").as_bytes()));
    format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5")
}

/// The example config on UDP `port` with database `db` and `routing` (the lines that
/// replace its `engine`/`script`). The JS and Python versions of the script call
/// `KSR.nathelper` and `KSR.permissions` without testing for them (Kamailio's cfg loads
/// them with its default WITH_NAT and WITH_IPAUTH), so those modules are added.
pub fn config(port: u16, db: &Path, routing: &str) -> String {
    let example = std::fs::read_to_string(repo_root().join("examples/basic-kemi/kemibox.toml"))
        .expect("example config");
    let lua_line = "engine = \"lua\"\nscript = \"/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-lua.lua\"";
    assert!(
        example.contains(lua_line),
        "the example's [routing] changed"
    );
    let cfg = example
        .replace(
            "\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"",
            &format!("\"udp:127.0.0.1:{port}\""),
        )
        .replace(
            "\"pike\", \"acc\"]",
            "\"pike\", \"acc\", \"nathelper\", \"permissions\"]",
        )
        .replace(
            "sqlite://kamailio.sqlite",
            &format!("sqlite://{}", db.display()),
        )
        .replace(lua_line, routing)
        + "\n[control]\nlisten = \"CONTROL\"\n";
    assert!(cfg.contains("\"nathelper\", \"permissions\""));
    cfg
}

/// Plays the session against the server on UDP `port` (`tag` keeps its Call-IDs apart).
pub fn play(kb: &Kemibox, port: u16, tag: &str) {
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let l = sock.local_addr().expect("addr");

    // OPTIONS keepalive to the server itself.
    let r = udp_exchange(
        &sock,
        proxy,
        &options_to(&format!("127.0.0.1:{port}"), l, &format!("{tag}-ka")),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("no keepalive answer\n{}", kb.log_text()));
    assert_eq!(
        (status_of(&r), reason_of(&r).as_str()),
        (Some(200), "Keepalive")
    );

    // REGISTER: a challenge, then 200 with the binding.
    let uri = format!("sip:127.0.0.1:{port}");
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK-{tag}-{cseq}\r\nMax-Forwards: 70\r\n\
From: <sip:alice@127.0.0.1>;tag=ra\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: {tag}-reg\r\n\
CSeq: {cseq} REGISTER\r\nContact: <sip:alice@{l}>\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    sock.send_to(register(1, "").as_bytes(), proxy)
        .expect("send");
    let (ch, _) = expect(&sock, "SIP/2.0 401");
    let www = header(&ch, "WWW-Authenticate").expect("a challenge");
    assert!(www.contains("realm=\"127.0.0.1\""), "{ch}");
    let nonce = www
        .split("nonce=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("nonce")
        .to_string();
    let auth = digest("alice", "alice123", "127.0.0.1", &nonce, "REGISTER", &uri);
    sock.send_to(
        register(2, &format!("Authorization: {auth}\r\n")).as_bytes(),
        proxy,
    )
    .expect("send");
    let (ok, _) = expect(&sock, "SIP/2.0 ");
    assert!(
        ok.starts_with("SIP/2.0 200 OK\r\n"),
        "{ok}\n{}",
        kb.log_text()
    );
    assert_eq!(
        header(&ok, "Contact"),
        Some(format!("<sip:alice@{l}>;expires=3600").as_str()),
        "{ok}"
    );
    // A call from a foreign caller to alice: lookup, relay with the branch, onreply and
    // failure routes of the script (named at run time); alice is busy.
    let caller = UdpSocket::bind("127.0.0.1:0").expect("caller");
    let c = caller.local_addr().expect("addr");
    let inv = format!(
        "INVITE sip:alice@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {c};branch=z9hG4bK-{tag}-inv\r\n\
Max-Forwards: 70\r\nFrom: <sip:carol@example.org>;tag=c1\r\nTo: <sip:alice@127.0.0.1>\r\n\
Call-ID: {tag}-call\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@{c}>\r\nContent-Length: 0\r\n\r\n"
    );
    caller.send_to(inv.as_bytes(), proxy).expect("send");
    expect(&caller, "SIP/2.0 100");
    let (fwd, from) = expect(&sock, "INVITE ");
    assert!(
        fwd.starts_with(&format!("INVITE sip:alice@{l} SIP/2.0\r\n")),
        "{fwd}"
    );
    assert!(header(&fwd, "Record-Route").is_some(), "{fwd}");
    sock.send_to(answer(&fwd, 486, "Busy Here", "a").as_bytes(), from)
        .expect("486");
    expect(&sock, "ACK ");
    let (busy, _) = expect(&caller, "SIP/2.0 486");
    assert!(busy.starts_with("SIP/2.0 486 Busy Here\r\n"), "{busy}");

    // A wrong password is challenged again.
    let bad = digest("alice", "wrong", "127.0.0.1", &nonce, "REGISTER", &uri);
    sock.send_to(
        register(3, &format!("Authorization: {bad}\r\n")).as_bytes(),
        proxy,
    )
    .expect("send");
    expect(&sock, "SIP/2.0 401");
}
