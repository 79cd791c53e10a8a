//! Digest authentication on the wire against a SQLite subscriber table in Kamailio's
//! schema: challenges (401/407), MD5 and SHA-256 responses, qop=auth with nonce counts
//! (a replay is refused), wrong password, unknown user, stale nonce.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use e2e::*;
use md5::{Digest, Md5};
use sha2::Sha256;

const SCRIPT: &str = r#"
function ksr_request_route()
	local realm = KSR.kx.gete_fhost()
	local rc = KSR.auth_db.auth_check(realm, "subscriber", 1)
	if rc < 0 then
		KSR.hdr.append_to_reply("X-Auth-Result: " .. rc .. "\r\n")
		KSR.auth.auth_challenge(realm, 1)
		KSR.x.exit()
	end
	if KSR.is_REGISTER() then
		KSR.registrar.save("location", 0)
		KSR.x.exit()
	end
	KSR.auth.consume_credentials()
	KSR.sl.sl_send_reply(200, "Authenticated")
end
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn h(alg: &str, s: &str) -> String {
    if alg == "SHA-256" {
        hex(&Sha256::digest(s.as_bytes()))
    } else {
        hex(&Md5::digest(s.as_bytes()))
    }
}

fn param<'a>(hdr: &'a str, name: &str) -> Option<&'a str> {
    let i = hdr.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &hdr[i..];
    Some(&rest[..rest.find('"')?])
}

struct Client {
    s: UdpSocket,
    l: SocketAddr,
    proxy: SocketAddr,
}

impl Client {
    fn req(&self, method: &str, user: &str, cseq: u32, auth: Option<String>) -> String {
        let (p, l) = (self.proxy, self.l);
        let hname = if method == "REGISTER" {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        let auth = auth
            .map(|a| format!("{hname}: {a}\r\n"))
            .unwrap_or_default();
        let msg = format!(
            "{method} sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK-a{cseq}{method}\r\nMax-Forwards: 70\r\n\
From: <sip:{user}@127.0.0.1>;tag=t{cseq}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: auth-{user}@{l}\r\n\
CSeq: {cseq} {method}\r\nContact: <sip:{user}@{l}>\r\n{auth}Content-Length: 0\r\n\r\n"
        );
        let r = udp_exchange(&self.s, p, msg.as_bytes(), Duration::from_secs(3)).expect("answer");
        String::from_utf8_lossy(&r).to_string()
    }
}

#[allow(clippy::too_many_arguments)]
fn credentials(
    alg: &str,
    user: &str,
    pass: &str,
    realm: &str,
    nonce: &str,
    method: &str,
    nc: Option<&str>,
) -> String {
    let uri = "sip:127.0.0.1";
    let ha1 = h(alg, &format!("{user}:{realm}:{pass}"));
    let ha2 = h(alg, &format!("{method}:{uri}"));
    let algp = if alg == "MD5" {
        String::new()
    } else {
        format!(", algorithm={alg}")
    };
    match nc {
        Some(nc) => {
            let resp = h(alg, &format!("{ha1}:{nonce}:{nc}:0a4f113b:auth:{ha2}"));
            format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", qop=auth, nc={nc}, cnonce=\"0a4f113b\"{algp}")
        }
        None => {
            let resp = h(alg, &format!("{ha1}:{nonce}:{ha2}"));
            format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\"{algp}")
        }
    }
}

#[test]
fn digest_authentication_against_sqlite_subscribers() {
    let p = free_port();
    let dir = scratch_dir("auth");
    let db = dir.join("kamailio.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("db");
    conn.execute_batch(
        "CREATE TABLE subscriber (id INTEGER PRIMARY KEY, username VARCHAR(64) DEFAULT '' NOT NULL, \
         domain VARCHAR(64) DEFAULT '' NOT NULL, password VARCHAR(64) DEFAULT '' NOT NULL, \
         ha1 VARCHAR(128) DEFAULT '' NOT NULL, ha1b VARCHAR(128) DEFAULT '' NOT NULL, UNIQUE(username, domain));\
         INSERT INTO subscriber (username, domain, password) VALUES ('alice', '127.0.0.1', 'secret');",
    )
    .expect("schema");
    drop(conn);
    let cfg = config(&[format!("udp:127.0.0.1:{p}")], "")
        + &format!(
            "[modparam.auth_db]\ndb_url = \"sqlite://{}\"\ncalculate_ha1 = 1\npassword_column = \"password\"\n\
[modparam.auth]\nnonce_expire = 2\n",
            db.display()
        );
    let _kb = Kemibox::start_in(dir, &cfg, SCRIPT);
    let s = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let c = Client {
        l: s.local_addr().expect("a"),
        s,
        proxy: format!("127.0.0.1:{p}").parse().expect("a"),
    };

    // No credentials: 401 with a challenge (-5).
    let r = c.req("REGISTER", "alice", 1, None);
    assert!(
        r.starts_with("SIP/2.0 401 Unauthorized\r\n") && r.contains("X-Auth-Result: -5"),
        "{r}"
    );
    let wa = r
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate: Digest "))
        .expect("challenge")
        .to_string();
    assert!(
        wa.contains("realm=\"127.0.0.1\"") && wa.contains("qop=\"auth\""),
        "{wa}"
    );
    let nonce = param(&wa, "nonce").expect("nonce").to_string();

    // Right password, qop=auth, nc 1: registered.
    let ok = credentials(
        "MD5",
        "alice",
        "secret",
        "127.0.0.1",
        &nonce,
        "REGISTER",
        Some("00000001"),
    );
    let r = c.req("REGISTER", "alice", 2, Some(ok.clone()));
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    // The same nonce count again is a replay (-6).
    let r = c.req("REGISTER", "alice", 3, Some(ok));
    assert!(r.contains("X-Auth-Result: -6"), "{r}");
    // Wrong password (-2), unknown user (-3).
    let bad = credentials(
        "MD5",
        "alice",
        "guess",
        "127.0.0.1",
        &nonce,
        "REGISTER",
        Some("00000002"),
    );
    assert!(c
        .req("REGISTER", "alice", 4, Some(bad))
        .contains("X-Auth-Result: -2"));
    let who = credentials(
        "MD5",
        "mallory",
        "x",
        "127.0.0.1",
        &nonce,
        "REGISTER",
        Some("00000003"),
    );
    assert!(c
        .req("REGISTER", "mallory", 5, Some(who))
        .contains("X-Auth-Result: -3"));
    // A nonce we never issued (-1).
    let forged = credentials(
        "MD5",
        "alice",
        "secret",
        "127.0.0.1",
        &"0".repeat(64),
        "REGISTER",
        None,
    );
    assert!(c
        .req("REGISTER", "alice", 6, Some(forged))
        .contains("X-Auth-Result: -1"));

    // Other methods get 407 and authenticate with Proxy-Authorization, SHA-256 too.
    let r = c.req("MESSAGE", "alice", 7, None);
    assert!(
        r.starts_with("SIP/2.0 407 Proxy Authentication Required\r\n"),
        "{r}"
    );
    let pa = r
        .lines()
        .find(|l| l.starts_with("Proxy-Authenticate: Digest "))
        .expect("challenge")
        .to_string();
    let nonce2 = param(&pa, "nonce").expect("nonce").to_string();
    let sha = credentials(
        "SHA-256",
        "alice",
        "secret",
        "127.0.0.1",
        &nonce2,
        "MESSAGE",
        Some("00000001"),
    );
    let r = c.req("MESSAGE", "alice", 8, Some(sha));
    assert!(r.starts_with("SIP/2.0 200 Authenticated\r\n"), "{r}");

    // After nonce_expire (2 s) the nonce is stale (-4).
    std::thread::sleep(Duration::from_millis(3100));
    let late = credentials(
        "MD5",
        "alice",
        "secret",
        "127.0.0.1",
        &nonce,
        "REGISTER",
        Some("00000009"),
    );
    assert!(c
        .req("REGISTER", "alice", 9, Some(late))
        .contains("X-Auth-Result: -4"));
}
