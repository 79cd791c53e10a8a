//! Record-Route and loose routing on the wire (`KSR.rr`): an initial INVITE leaves with
//! our Record-Route on top, an in-dialog BYE with our Route reaches the callee's contact
//! without it, and a request that changes transport gets two Record-Routes with `r2=on`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use e2e::*;

const SCRIPT: &str = r#"
function ksr_request_route()
  if KSR.siputils.has_totag() > 0 then
    if KSR.rr.loose_route() > 0 then
      if KSR.forward() < 0 then KSR.sl.sl_reply_error() end
      return
    end
    KSR.sl.sl_send_reply(404, "Not here")
    return
  end
  if KSR.rr.record_route() < 0 then
    KSR.sl.sl_send_reply(500, "record_route failed")
    return
  end
  if KSR.forward() < 0 then KSR.sl.sl_reply_error() end
end
"#;

/// The same routing with transactions: `t_relay` instead of `forward`.
fn tm_script() -> String {
    SCRIPT
        .replace("KSR.forward() < 0", "KSR.tm.t_relay() < 0")
        .replace(
            "KSR.sl.sl_reply_error()",
            "KSR.tm.t_reply(500, \"relay failed\")",
        )
}

fn rr_config(listen: &[String], modparams: &str) -> String {
    config(listen, "") + "[modparam.rr]\n" + modparams + "\n"
}

fn recv_udp(s: &UdpSocket) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = vec![0u8; 65536];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).to_string())
}

/// The next datagram starting with `method` (retransmissions and replies are skipped).
fn recv_method(s: &UdpSocket, method: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match recv_udp(s) {
            Some(m) if m.starts_with(&format!("{method} ")) => return Some(m),
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

/// A provisional reply to a received request, sent back to where it came from.
fn ringing(req: &str) -> String {
    let mut r = String::from("SIP/2.0 180 Ringing\r\n");
    for l in req.split("\r\n").filter(|l| {
        ["Via:", "From:", "To:", "Call-ID:", "CSeq:", "Record-Route:"]
            .iter()
            .any(|h| l.starts_with(h))
    }) {
        r.push_str(l);
        if l.starts_with("To:") {
            r.push_str(";tag=callee1");
        }
        r.push_str("\r\n");
    }
    r + "Content-Length: 0\r\n\r\n"
}

/// Reads one SIP message without a body from a stream.
fn recv_stream(s: &mut TcpStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&got).to_string());
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
    }
    None
}

fn request(method: &str, ruri: &str, from: SocketAddr, to_tag: &str, extra: &str) -> String {
    let tt = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let cseq = if method == "INVITE" { 1 } else { 2 };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-{method}-{cseq}\r\n\
Max-Forwards: 70\r\n{extra}From: <sip:caller@{from}>;tag=caller1\r\nTo: <{ruri}>{tt}\r\n\
Call-ID: rr-e2e@{from}\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@{from}>\r\n\
Content-Length: 0\r\n\r\n"
    )
}

/// The header lines of a message (without the start line).
fn headers(msg: &str) -> Vec<&str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .split("\r\n")
        .skip(1)
        .collect()
}

fn rr_then_bye(modparams: &str, script: &str, want_rr: &dyn Fn(u16) -> String) {
    let p = free_port();
    let _kb = Kemibox::start(
        &rr_config(&[format!("udp:127.0.0.1:{p}")], modparams),
        script,
    );
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let caller = UdpSocket::bind("127.0.0.1:0").expect("caller");
    let ca = caller.local_addr().expect("addr");
    let callee = UdpSocket::bind("127.0.0.1:0").expect("callee");
    let contact = format!("sip:callee@{}", callee.local_addr().expect("addr"));

    caller
        .send_to(request("INVITE", &contact, ca, "", "").as_bytes(), proxy)
        .expect("send INVITE");
    let (inv, from) = {
        callee
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut buf = vec![0u8; 65536];
        let (n, from) = callee
            .recv_from(&mut buf)
            .expect("INVITE forwarded to the callee");
        (String::from_utf8_lossy(&buf[..n]).to_string(), from)
    };
    assert!(inv.starts_with("INVITE "), "{inv}");
    // A provisional answer stops retransmissions when the proxy is stateful.
    callee
        .send_to(ringing(&inv).as_bytes(), from)
        .expect("send 180");
    let h = headers(&inv);
    assert_eq!(h[0], want_rr(p), "{inv}");
    assert!(
        h[1].starts_with(&format!("Via: SIP/2.0/UDP 127.0.0.1:{p};branch=")),
        "{inv}"
    );
    assert_eq!(
        h.iter().filter(|l| l.starts_with("Record-Route:")).count(),
        1
    );

    // In-dialog: our Route goes, the BYE reaches the contact in the R-URI.
    let route = format!("Route: <sip:127.0.0.1:{p};lr>\r\n");
    caller
        .send_to(
            request("BYE", &contact, ca, "callee1", &route).as_bytes(),
            proxy,
        )
        .expect("send BYE");
    let bye = recv_method(&callee, "BYE").expect("BYE forwarded to the callee");
    assert!(
        bye.starts_with(&format!("BYE {contact} SIP/2.0\r\n")),
        "{bye}"
    );
    assert!(!bye.contains("Route:"), "{bye}");
    assert!(
        bye.contains(&format!("Via: SIP/2.0/UDP 127.0.0.1:{p};branch=")),
        "{bye}"
    );
}

#[test]
fn record_route_then_loose_route() {
    rr_then_bye("append_fromtag = 0", SCRIPT, &|p| {
        format!("Record-Route: <sip:127.0.0.1:{p};lr>")
    });
}

/// The same through transactions: `t_relay` branches carry the Record-Route too.
#[test]
fn record_route_then_loose_route_with_t_relay() {
    rr_then_bye("append_fromtag = 0", &tm_script(), &|p| {
        format!("Record-Route: <sip:127.0.0.1:{p};lr>")
    });
}

#[test]
fn record_route_full_lr_with_ftag() {
    rr_then_bye("enable_full_lr = 1", SCRIPT, &|p| {
        format!("Record-Route: <sip:127.0.0.1:{p};lr=on;ftag=caller1>")
    });
}

/// Received over UDP, sent over TCP: two Record-Routes (outgoing socket first), both
/// with r2=on; the callee's BYE back over TCP loses both Routes and reaches the caller.
#[test]
fn double_record_route_across_transports() {
    let p = free_port();
    let _kb = Kemibox::start(
        &rr_config(
            &[format!("udp:127.0.0.1:{p}"), format!("tcp:127.0.0.1:{p}")],
            "append_fromtag = 0",
        ),
        SCRIPT,
    );
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let caller = UdpSocket::bind("127.0.0.1:0").expect("caller");
    let ca = caller.local_addr().expect("addr");
    let callee = TcpListener::bind("127.0.0.1:0").expect("callee");
    let cp = callee.local_addr().expect("addr").port();
    let contact = format!("sip:callee@127.0.0.1:{cp};transport=tcp");

    caller
        .send_to(request("INVITE", &contact, ca, "", "").as_bytes(), proxy)
        .expect("send INVITE");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(callee.accept().map(|(s, _)| s));
    });
    let mut conn = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("kemibox connects to the callee")
        .expect("accept");
    let inv = recv_stream(&mut conn).expect("INVITE over TCP");
    let h = headers(&inv);
    assert_eq!(
        h[0],
        format!("Record-Route: <sip:127.0.0.1:{p};transport=tcp;r2=on;lr>"),
        "{inv}"
    );
    assert_eq!(
        h[1],
        format!("Record-Route: <sip:127.0.0.1:{p};r2=on;lr>"),
        "{inv}"
    );
    assert!(
        h[2].starts_with(&format!("Via: SIP/2.0/TCP 127.0.0.1:{p};branch=")),
        "{inv}"
    );

    // The callee's BYE: its route set is the Record-Route list in order.
    let la = conn.local_addr().expect("addr");
    let caller_contact = format!("sip:caller@{ca}");
    let bye = format!(
        "BYE {caller_contact} SIP/2.0\r\nVia: SIP/2.0/TCP {la};branch=z9hG4bK-bye-tcp\r\n\
Max-Forwards: 70\r\nRoute: <sip:127.0.0.1:{p};transport=tcp;r2=on;lr>, <sip:127.0.0.1:{p};r2=on;lr>\r\n\
From: <{contact}>;tag=callee1\r\nTo: <sip:caller@{ca}>;tag=caller1\r\nCall-ID: rr-e2e@{ca}\r\n\
CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    conn.write_all(bye.as_bytes()).expect("send BYE");
    let got = recv_udp(&caller).expect("BYE forwarded to the caller");
    assert!(
        got.starts_with(&format!("BYE {caller_contact} SIP/2.0\r\n")),
        "{got}"
    );
    assert!(!got.contains("Route:"), "{got}");
    assert!(
        got.contains(&format!("Via: SIP/2.0/UDP 127.0.0.1:{p};branch=")),
        "{got}"
    );
}

// ---------------------------------------------------------------------------------------
// The same rr calls on kemibox and on real Kamailio 5.6: the forwarded requests match.

/// Each `X-Mode` exercises rr functions and reports their return values, `$du` and `$ru`
/// in added headers; the request then goes to the capture socket (`X-Cap`) or its R-URI.
const COMPARE_SCRIPT: &str = r#"
function ksr_request_route()
  local mode = KSR.hdr.get("X-Mode") or ""
  if mode == "rr" then
    KSR.rr.add_rr_param(";a=1")
    KSR.rr.record_route()
    KSR.rr.add_rr_param(";b=2")
    KSR.hdr.append("X-RR2: " .. KSR.rr.record_route() .. "\r\n")
    KSR.forward()
  elseif mode == "rrp" then
    KSR.rr.record_route_params(";p=x")
    KSR.forward()
  elseif mode == "preset" then
    KSR.rr.add_rr_param(";a=1")
    KSR.rr.record_route_preset("10.1.1.1:5090", "10.2.2.2")
    KSR.hdr.append("X-ARP: " .. KSR.rr.add_rr_param(";b=1") .. "\r\n")
    KSR.forward()
  elseif mode == "preset1" then
    KSR.rr.add_rr_param(";a=1")
    KSR.rr.record_route_preset_one("10.1.1.1:5090")
    KSR.hdr.append("X-ARP: " .. KSR.rr.add_rr_param(";b=1") .. "\r\n")
    KSR.forward()
  elseif mode == "lr" or mode == "lrrr" then
    local r = KSR.rr.loose_route()
    KSR.hdr.append("X-LR: " .. r .. "\r\n")
    KSR.hdr.append("X-DU: " .. (KSR.pv.get("$du") or "null") .. "\r\n")
    KSR.hdr.append("X-RU: " .. KSR.pv.get("$ru") .. "\r\n")
    KSR.hdr.append("X-CRP: " .. KSR.rr.check_route_param("ftag=") .. "\r\n")
    KSR.hdr.append("X-CRP2: " .. KSR.rr.check_route_param("^;LR") .. "\r\n")
    KSR.hdr.append("X-UP: " .. KSR.rr.is_direction("upstream") .. "\r\n")
    KSR.hdr.append("X-DOWN: " .. KSR.rr.is_direction("downstream") .. "\r\n")
    if mode == "lrrr" then KSR.rr.record_route() end
    KSR.forward_uri("sip:" .. KSR.hdr.get("X-Cap"))
  elseif mode == "lrp" then
    KSR.hdr.append("X-LRP: " .. KSR.rr.loose_route_preloaded() .. "\r\n")
    KSR.forward_uri("sip:" .. KSR.hdr.get("X-Cap"))
  else
    KSR.sl.sl_send_reply(200, "OK")
  end
end
"#;

/// Kamailio in the foreground; stopped with SIGTERM (its main process stops its children).
struct Kamailio(std::process::Child);

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

fn start_kamailio(port: u16, script: &std::path::Path, modparams: &[(&str, i64)]) -> Kamailio {
    assert!(
        have("kamailio"),
        "kamailio is needed (apt-get install kamailio kamailio-lua-modules)"
    );
    let dir = scratch_dir("kamailio-rr");
    std::fs::create_dir_all(dir.join("run")).expect("run dir");
    let mut cfg = format!(
        "debug=2\nlog_stderror=yes\nchildren=1\nlisten=udp:127.0.0.1:{port}\n\
listen=tcp:127.0.0.1:{port}\nauto_aliases=no\ndns=no\nrev_dns=no\n"
    );
    for m in [
        "sl", "pv", "maxfwd", "siputils", "corex", "kemix", "textops", "rr", "app_lua",
    ] {
        cfg.push_str(&format!("loadmodule \"{m}.so\"\n"));
    }
    for (k, v) in modparams {
        cfg.push_str(&format!("modparam(\"rr\", \"{k}\", {v})\n"));
    }
    cfg.push_str(&format!(
        "modparam(\"app_lua\", \"load\", \"{}\")\ncfgengine \"lua\"\n",
        script.display()
    ));
    std::fs::write(dir.join("k.cfg"), cfg).expect("cfg");
    let log = std::fs::File::create(dir.join("k.log")).expect("log");
    let run = dir.join("run");
    let child = std::process::Command::new("kamailio")
        .arg("-f")
        .arg(dir.join("k.cfg"))
        .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
        .arg(&run)
        .arg("-w")
        .arg(&run)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start kamailio");
    let k = Kamailio(child);
    wait_ready(port);
    k
}

/// Waits until the proxy answers an OPTIONS (the script's default branch).
fn wait_ready(port: u16) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let local = s.local_addr().expect("addr");
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    for i in 0..50 {
        let ping = options_to(&proxy.to_string(), local, &format!("ready{i}"));
        if udp_exchange(&s, proxy, &ping, Duration::from_millis(200)).is_some() {
            return;
        }
    }
    panic!("the proxy on port {port} did not start");
}

/// The compared requests: (name, text) for a proxy on `me` (host:port).
fn compare_cases(me: &str, cap: u16, tcap: u16, client: SocketAddr) -> Vec<(&'static str, String)> {
    let c = format!("sip:bob@127.0.0.1:{cap}");
    let req = |method: &str, ruri: &str, to_tag: &str, extra: &str| {
        let tt = if to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={to_tag}")
        };
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {client};branch=z9hG4bK-cmp\r\n\
Max-Forwards: 70\r\n{extra}From: <sip:alice@127.0.0.1>;tag=abc\r\nTo: <sip:bob@127.0.0.1>{tt}\r\n\
Call-ID: rr-compare\r\nCSeq: 1 {method}\r\nX-Cap: 127.0.0.1:{cap}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let lr = |routes: &str| format!("X-Mode: lr\r\n{routes}");
    vec![
        ("rr", req("INVITE", &c, "", "X-Mode: rr\r\n")),
        ("rr params", req("INVITE", &c, "", "X-Mode: rrp\r\n")),
        (
            "rr sips",
            req(
                "INVITE",
                &format!("sips:bob@127.0.0.1:{cap};transport=udp"),
                "",
                "X-Mode: rrp\r\n",
            ),
        ),
        ("preset", req("INVITE", &c, "", "X-Mode: preset\r\n")),
        ("preset one", req("INVITE", &c, "", "X-Mode: preset1\r\n")),
        (
            "rr udp to tcp",
            req(
                "INVITE",
                &format!("sip:bob@127.0.0.1:{tcap};transport=tcp"),
                "",
                "X-Mode: rr\r\n",
            ),
        ),
        ("lr no route", req("BYE", &c, "xyz", &lr(""))),
        (
            "lr ours then loose",
            req(
                "BYE",
                &c,
                "xyz",
                &lr(&format!(
                    "Route: <sip:{me};lr;ftag=abc;did=7>, <sip:10.0.0.2;lr>\r\n"
                )),
            ),
        ),
        (
            "lr ours in its own header",
            req(
                "BYE",
                &c,
                "xyz",
                &lr(&format!(
                    "Route: <sip:{me};lr>\r\nRoute: <sip:10.0.0.2;lr>,<sip:10.0.0.3;lr>\r\n"
                )),
            ),
        ),
        (
            "lr only ours",
            req(
                "BYE",
                &c,
                "xyz",
                &lr(&format!("Route: <sip:{me};lr;ftag=other>\r\n")),
            ),
        ),
        (
            "lr upstream then rr",
            req(
                "BYE",
                &c,
                "xyz",
                &format!("X-Mode: lrrr\r\nRoute: <sip:{me};lr;ftag=xyz>\r\n"),
            ),
        ),
        (
            "lr preloaded",
            req("INVITE", &c, "", &lr(&format!("Route: <sip:{me};lr>\r\n"))),
        ),
        (
            "lr_preloaded preloaded",
            req(
                "INVITE",
                &c,
                "",
                &format!("X-Mode: lrp\r\nRoute: <sip:{me};lr>\r\n"),
            ),
        ),
        (
            "lr_preloaded elsewhere",
            req(
                "INVITE",
                &c,
                "",
                "X-Mode: lrp\r\nRoute: <sip:10.0.0.2;lr>\r\n",
            ),
        ),
        (
            "lr preloaded elsewhere",
            req("INVITE", &c, "", &lr("Route: <sip:10.0.0.2;lr>\r\n")),
        ),
        (
            "lr strict next hop",
            req(
                "BYE",
                &c,
                "xyz",
                &lr(&format!("Route: <sip:{me};lr>, <sip:10.0.0.2>\r\n")),
            ),
        ),
        (
            "lr strict top not ours",
            req(
                "BYE",
                &c,
                "xyz",
                &lr("Route: <sip:10.0.0.2>, <sip:10.0.0.3;lr>\r\n"),
            ),
        ),
        (
            "after strict, loose next",
            req(
                "BYE",
                &format!("sip:{me};lr;ftag=abc"),
                "xyz",
                &lr("Route: <sip:10.0.0.2;lr>, <sip:10.0.0.3;lr>\r\nRoute: <sip:bob@10.0.0.9:5070>\r\n"),
            ),
        ),
        (
            "after strict, target last in a list",
            req(
                "BYE",
                &format!("sip:{me}"),
                "xyz",
                &lr("Route: <sip:10.0.0.2;lr>, <sip:bob@10.0.0.9:5070>\r\n"),
            ),
        ),
        (
            "after strict, strict next",
            req(
                "BYE",
                &format!("sip:{me}"),
                "xyz",
                &lr("Route: <sip:10.0.0.2>, <sip:bob@10.0.0.9:5070>\r\n"),
            ),
        ),
        (
            "lr double",
            req(
                "BYE",
                &c,
                "xyz",
                &lr(&format!(
                    "Route: <sip:{me};transport=tcp;r2=on;lr>, <sip:{me};r2=on;lr>, <sip:10.0.0.2;lr>\r\n"
                )),
            ),
        ),
        (
            "lr double in two headers",
            req(
                "BYE",
                &c,
                "xyz",
                &lr(&format!(
                    "Route: <sip:{me};transport=tcp;r2=on;lr>\r\nRoute: <sip:{me};r2=on;lr>\r\n"
                )),
            ),
        ),
        (
            "lr maddr",
            req(
                "BYE",
                &c,
                "xyz",
                &lr(&format!(
                    "Route: <sip:{me};lr>, <sip:x@h.invalid:5070;maddr=10.9.9.9;lr>\r\n"
                )),
            ),
        ),
        (
            "lr gruu",
            req(
                "BYE",
                &c,
                "xyz",
                &lr(&format!("Route: <sip:{me};gr=x;lr>\r\n")),
            ),
        ),
    ]
}

/// Accepts one connection within `wait` and reads one message from it.
fn accept_and_read(l: &TcpListener, wait: Duration) -> Option<String> {
    l.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match l.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).expect("blocking");
                return recv_stream(&mut s);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    None
}

/// The test's side: a client, and next hops over UDP and TCP (shared by both runs, so
/// that only the proxy's address differs).
struct Peers {
    client: UdpSocket,
    cap: UdpSocket,
    tcap: TcpListener,
}

impl Peers {
    fn new() -> Peers {
        Peers {
            client: UdpSocket::bind("127.0.0.1:0").expect("client"),
            cap: UdpSocket::bind("127.0.0.1:0").expect("capture"),
            tcap: TcpListener::bind("127.0.0.1:0").expect("tcp capture"),
        }
    }

    /// What each case's request looked like at the next hop (proxy address and branches
    /// normalised).
    fn forwarded_by(&self, port: u16) -> Vec<(&'static str, Option<String>)> {
        let (ca, cp, tp) = (
            self.client.local_addr().expect("addr"),
            self.cap.local_addr().expect("addr").port(),
            self.tcap.local_addr().expect("addr").port(),
        );
        let me = format!("127.0.0.1:{port}");
        let proxy: SocketAddr = me.parse().expect("addr");
        compare_cases(&me, cp, tp, ca)
            .into_iter()
            .map(|(name, text)| {
                self.client.send_to(text.as_bytes(), proxy).expect("send");
                let got = if text.contains(";transport=tcp SIP/2.0") {
                    accept_and_read(&self.tcap, Duration::from_secs(3))
                } else {
                    recv_udp(&self.cap)
                };
                (name, got.map(|g| branch_norm(&g.replace(&me, "PROXY"))))
            })
            .collect()
    }
}

/// Replaces the value of every `branch=` parameter by `B`.
fn branch_norm(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("branch=") {
        out.push_str(&rest[..i + 7]);
        out.push('B');
        rest = &rest[i + 7..];
        let end = rest.find([';', '\r', '\n', ',']).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn compare_with_kamailio(modparams: &[(&str, i64)]) {
    let kp = free_port();
    let dir = scratch_dir("rr-compare");
    let script = dir.join("compare.lua");
    std::fs::write(&script, COMPARE_SCRIPT).expect("script");
    let peers = Peers::new();
    let want = {
        let _k = start_kamailio(kp, &script, modparams);
        peers.forwarded_by(kp)
    };
    let bp = free_port();
    let mp: String = modparams
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    let _kb = Kemibox::start(
        &rr_config(
            &[format!("udp:127.0.0.1:{bp}"), format!("tcp:127.0.0.1:{bp}")],
            &mp,
        ),
        COMPARE_SCRIPT,
    );
    let got = peers.forwarded_by(bp);
    let mut diffs = Vec::new();
    for ((name, k), (_, b)) in want.iter().zip(&got) {
        assert!(k.is_some(), "{name}: Kamailio forwarded nothing");
        if k != b {
            diffs.push(format!(
                "--- {name}\nKamailio:\n{}\nkemibox:\n{}",
                k.as_deref().unwrap_or("(nothing)"),
                b.as_deref().unwrap_or("(nothing)")
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} cases differ ({modparams:?}):\n{}",
        diffs.len(),
        want.len(),
        diffs.join("\n")
    );
}

#[test]
fn same_as_kamailio_default_modparams() {
    compare_with_kamailio(&[]);
}

#[test]
fn same_as_kamailio_full_lr_username_always_double() {
    compare_with_kamailio(&[
        ("enable_full_lr", 1),
        ("add_username", 1),
        ("enable_double_rr", 2),
        ("append_fromtag", 0),
    ]);
}
