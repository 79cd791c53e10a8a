//! RFC 3263 next-hop resolution against a real DNS server on loopback (dnsmasq):
//! NAPTR → SRV → A for a bare name, A for a name with a port, and /etc/hosts-only mode.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::*;

fn dnsmasq(port: u16, uas_port: u16) -> Bg {
    assert!(
        have("dnsmasq"),
        "dnsmasq is needed for the DNS test (apt-get install dnsmasq-base)"
    );
    let child = Command::new("dnsmasq")
        .args([
            "--no-daemon",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            "--naptr-record=example.test,10,50,s,SIP+D2U,,_sip._udp.example.test",
            &format!("--srv-host=_sip._udp.example.test,uas.example.test,{uas_port},0,0"),
            "--address=/uas.example.test/127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    std::thread::sleep(Duration::from_millis(400));
    Bg(child)
}

fn forwarded_to(uas: &UdpSocket) -> Option<String> {
    uas.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = vec![0u8; 65536];
    uas.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).to_string())
}

fn send_options(proxy: SocketAddr, ruri: &str, tag: &str) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("client");
    let local = s.local_addr().expect("addr");
    let msg = String::from_utf8(options_to("x", local, tag))
        .expect("utf8")
        .replacen(
            "OPTIONS sip:x SIP/2.0",
            &format!("OPTIONS {ruri} SIP/2.0"),
            1,
        );
    s.send_to(msg.as_bytes(), proxy).expect("send");
    s
}

#[test]
fn naptr_srv_and_a_records_route_requests() {
    let uas = UdpSocket::bind("127.0.0.1:0").expect("uas");
    let uas_port = uas.local_addr().expect("addr").port();
    let (dp, p) = (free_port(), free_port());
    let _dns = dnsmasq(dp, uas_port);
    let cfg = config(&[format!("udp:127.0.0.1:{p}")], "").replace(
        "[dns]\nhosts_only = true",
        &format!("[dns]\nhosts_only = false\nservers = [\"127.0.0.1:{dp}\"]"),
    );
    let _kb = Kemibox::start(&cfg, &example_script());
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");

    let _c = send_options(proxy, "sip:bob@example.test", "naptr1");
    let fwd = forwarded_to(&uas).expect("request routed by NAPTR/SRV");
    assert!(
        fwd.starts_with("OPTIONS sip:bob@example.test SIP/2.0\r\n"),
        "{fwd}"
    );

    let _c = send_options(proxy, &format!("sip:bob@uas.example.test:{uas_port}"), "a1");
    let fwd = forwarded_to(&uas).expect("request routed by A record");
    assert!(
        fwd.starts_with(&format!(
            "OPTIONS sip:bob@uas.example.test:{uas_port} SIP/2.0\r\n"
        )),
        "{fwd}"
    );

    // A name nobody knows: the script's sl_reply_error answers 478.
    let c = send_options(proxy, "sip:bob@nowhere.test", "nx1");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = vec![0u8; 4096];
    let (n, _) = c.recv_from(&mut buf).expect("an answer");
    assert_eq!(
        status_of(&buf[..n]),
        Some(478),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn hosts_only_never_asks_dns() {
    let uas = UdpSocket::bind("127.0.0.1:0").expect("uas");
    let uas_port = uas.local_addr().expect("addr").port();
    let (dp, p) = (free_port(), free_port());
    let _dns = dnsmasq(dp, uas_port);
    // hosts_only wins over configured servers: example.test is not in /etc/hosts.
    let cfg = config(&[format!("udp:127.0.0.1:{p}")], "").replace(
        "[dns]\nhosts_only = true",
        &format!("[dns]\nhosts_only = true\nservers = [\"127.0.0.1:{dp}\"]"),
    );
    let _kb = Kemibox::start(&cfg, &example_script());
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let c = send_options(proxy, "sip:bob@example.test", "ho1");
    c.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = vec![0u8; 4096];
    let (n, _) = c.recv_from(&mut buf).expect("an answer");
    assert_eq!(status_of(&buf[..n]), Some(478));
    assert!(forwarded_to(&uas).is_none());
    // A name from /etc/hosts still resolves.
    let _c = send_options(proxy, &format!("sip:bob@localhost:{uas_port}"), "ho2");
    assert!(forwarded_to(&uas).is_some(), "localhost from /etc/hosts");
}
