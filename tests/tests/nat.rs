//! NAT traversal (nathelper) and source address checks (permissions) on the wire.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use e2e::*;

const SCRIPT: &str = r#"
function ksr_request_route()
	KSR.force_rport()
	if KSR.permissions.allow_source_address(1) < 0 then
		KSR.sl.sl_send_reply(403, "Source Not Allowed")
		KSR.x.exit()
	end
	local nated = KSR.nathelper.nat_uac_test(19) > 0
	if KSR.is_REGISTER() then
		if nated then KSR.nathelper.fix_nated_register() end
		KSR.registrar.save("location", 0)
		KSR.x.exit()
	end
	if nated then KSR.nathelper.set_contact_alias() end
	if KSR.nathelper.handle_ruri_alias() == 1 then
		KSR.forward()
		KSR.x.exit()
	end
	if KSR.registrar.lookup("location") < 0 then
		KSR.sl.sl_send_reply(404, "Not Found")
		KSR.x.exit()
	end
	KSR.forward()
end
"#;

fn recv(s: &UdpSocket) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = vec![0u8; 65536];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).to_string())
}

fn msg(method: &str, ruri: &str, via: SocketAddr, contact: &str, tag: &str) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK-{tag}\r\nMax-Forwards: 70\r\n\
From: <sip:alice@127.0.0.1>;tag={tag}\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: {tag}@nat\r\nCSeq: 1 {method}\r\n\
Contact: <{contact}>\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn nated_registration_alias_and_source_permissions() {
    let p = free_port();
    let dir = scratch_dir("nat");
    let db = dir.join("perm.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("db");
    conn.execute_batch(
        "CREATE TABLE address (id INTEGER PRIMARY KEY, grp INTEGER DEFAULT 1 NOT NULL, ip_addr VARCHAR(50) NOT NULL, \
         mask INTEGER DEFAULT 32 NOT NULL, port SMALLINT DEFAULT 0 NOT NULL, tag VARCHAR(64));\
         INSERT INTO address (grp, ip_addr, mask, port) VALUES (1, '127.0.0.1', 32, 0);",
    )
    .expect("schema");
    drop(conn);
    let cfg = config(&[format!("udp:127.0.0.1:{p}")], "")
        + &format!(
            "[modparam.permissions]\ndb_url = \"sqlite://{}\"\n",
            db.display()
        );
    let _kb = Kemibox::start_in(dir, &cfg, SCRIPT);
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");

    // A phone behind NAT: its Via and Contact name a private address.
    let phone = UdpSocket::bind("127.0.0.1:0").expect("phone");
    let public = phone.local_addr().expect("addr");
    let private: SocketAddr = "192.168.1.5:5060".parse().expect("addr");
    let r = udp_exchange(
        &phone,
        proxy,
        msg(
            "REGISTER",
            &format!("sip:{proxy}"),
            private,
            "sip:alice@192.168.1.5:5060",
            "nreg",
        )
        .as_bytes(),
        Duration::from_secs(3),
    )
    .expect("answer");
    let r = String::from_utf8_lossy(&r).to_string();
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    assert!(
        r.contains(&format!(";received=\"sip:{public}\"")),
        "the binding keeps where it came from: {r}"
    );

    // A call to alice goes to the NAT's public address, R-URI still her contact.
    let caller = UdpSocket::bind("127.0.0.1:0").expect("caller");
    let c = caller.local_addr().expect("addr");
    caller
        .send_to(
            msg(
                "INVITE",
                &format!("sip:alice@{proxy}"),
                c,
                &format!("sip:carol@{c}"),
                "ninv",
            )
            .as_bytes(),
            proxy,
        )
        .expect("send");
    let fwd = recv(&phone).expect("INVITE reaches the NAT address");
    assert!(
        fwd.starts_with("INVITE sip:alice@192.168.1.5:5060 SIP/2.0\r\n"),
        "{fwd}"
    );

    // A NATed caller's Contact gets an alias; a request to that aliased Contact is sent
    // to the alias address.
    let natcaller = UdpSocket::bind("127.0.0.1:0").expect("natcaller");
    let nc = natcaller.local_addr().expect("addr");
    let callee = UdpSocket::bind("127.0.0.1:0").expect("callee");
    let ce = callee.local_addr().expect("addr");
    let _ = udp_exchange(
        &callee,
        proxy,
        msg(
            "REGISTER",
            &format!("sip:{proxy}"),
            ce,
            &format!("sip:bob@{ce}"),
            "breg",
        )
        .replace("alice", "bob")
        .as_bytes(),
        Duration::from_secs(3),
    );
    natcaller
        .send_to(
            msg(
                "INVITE",
                &format!("sip:bob@{proxy}"),
                "10.0.0.7:5060".parse().expect("a"),
                "sip:dave@10.0.0.7:5060",
                "alias1",
            )
            .replace("To: <sip:alice", "To: <sip:bob")
            .as_bytes(),
            proxy,
        )
        .expect("send");
    let fwd = recv(&callee).expect("INVITE to bob");
    let contact = fwd
        .lines()
        .find(|l| l.starts_with("Contact:"))
        .expect("contact")
        .to_string();
    let alias = format!(";alias={}~{}~1", nc.ip(), nc.port());
    assert!(
        contact.contains(&format!("<sip:dave@10.0.0.7:5060{alias}>")),
        "{contact}"
    );
    let back = format!("sip:dave@10.0.0.7:5060{alias}");
    callee
        .send_to(
            msg("BYE", &back, ce, &format!("sip:bob@{ce}"), "alias2").as_bytes(),
            proxy,
        )
        .expect("send");
    let bye = recv(&natcaller).expect("request follows the alias");
    assert!(
        bye.starts_with("BYE sip:dave@10.0.0.7:5060 SIP/2.0\r\n"),
        "alias removed from the R-URI: {bye}"
    );

    // permissions: 127.0.0.2 is not in group 1.
    let outsider = UdpSocket::bind("127.0.0.2:0").expect("outsider");
    let o = outsider.local_addr().expect("addr");
    let r = udp_exchange(
        &outsider,
        proxy,
        msg(
            "OPTIONS",
            &format!("sip:alice@{proxy}"),
            o,
            &format!("sip:x@{o}"),
            "perm",
        )
        .as_bytes(),
        Duration::from_secs(3),
    )
    .expect("answer");
    assert!(String::from_utf8_lossy(&r).starts_with("SIP/2.0 403 Source Not Allowed\r\n"));
}
