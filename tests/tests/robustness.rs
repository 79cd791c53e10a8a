//! Bad input is bounded and counted and never takes the server down: garbage datagrams,
//! script errors, unbounded and slow TCP streams, slow WebSocket handshakes, connection
//! floods, bad configs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::*;

fn ok_options(proxy: SocketAddr, tag: &str) -> bool {
    let s = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let local = s.local_addr().expect("addr");
    let r = udp_exchange(
        &s,
        proxy,
        &options_to(&proxy.to_string(), local, tag),
        Duration::from_secs(3),
    );
    r.as_deref().and_then(status_of) == Some(200)
}

/// Reads until the peer closes; returns how long that took.
fn time_until_closed(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 1024];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn garbage_datagrams_are_counted_and_the_server_goes_on() {
    let p = free_port();
    let kb = Kemibox::start(
        &config(&[format!("udp:127.0.0.1:{p}")], ""),
        &example_script(),
    );
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let s = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let junk: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        vec![0xff; 1000],
        b"INVITE\r\n\r\n".to_vec(),
        b"SIP/2.0 99999 Huge\r\n\r\n".to_vec(),
        b"OPTIONS sip:a SIP/2.0\r\nno colon here\r\n\r\n".to_vec(),
        vec![b'A'; 60_000],
    ];
    for j in &junk {
        s.send_to(j, proxy).expect("send");
    }
    assert!(ok_options(proxy, "after-junk"));
    assert_eq!(
        kb.metric_settled("parse_errors", junk.len() as u64),
        junk.len() as u64
    );
}

#[test]
fn a_lua_error_answers_500_and_the_server_goes_on() {
    let p = free_port();
    let script = "function ksr_request_route()\n\
      if KSR.hdr.is_present('X-Boom') > 0 then local t = nil; return t.field end\n\
      KSR.sl.sl_send_reply(200, 'Fine')\nend\n";
    let kb = Kemibox::start(&config(&[format!("udp:127.0.0.1:{p}")], ""), script);
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let s = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let local = s.local_addr().expect("addr");
    let boom = String::from_utf8(options_to(&proxy.to_string(), local, "boom"))
        .expect("utf8")
        .replacen("Content-Length: 0", "X-Boom: 1\r\nContent-Length: 0", 1);
    let r = udp_exchange(&s, proxy, boom.as_bytes(), Duration::from_secs(3)).expect("an answer");
    assert_eq!(status_of(&r), Some(500), "{}", String::from_utf8_lossy(&r));
    assert_eq!(reason_of(&r), "Server Internal Error");
    assert!(ok_options(proxy, "after-boom"));
    assert_eq!(kb.metric_settled("script_errors", 1), 1);
    assert!(
        kb.log_text().contains("script.lua:2:"),
        "the log names file:line:\n{}",
        kb.log_text()
    );
}

#[test]
fn unbounded_and_slow_tcp_streams_are_cut() {
    let p = free_port();
    let kb = Kemibox::start(
        &config(
            &[format!("udp:127.0.0.1:{p}"), format!("tcp:127.0.0.1:{p}")],
            "tcp_message_timeout = 1\ntcp_idle_timeout = 3",
        ),
        &example_script(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    // A header block that never ends: closed once it passes 64 KiB.
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut sent = 0;
    let line =
        b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    s.write_all(b"OPTIONS sip:x SIP/2.0\r\n").expect("write");
    while sent < 200_000 {
        if s.write_all(line).is_err() {
            break;
        }
        sent += line.len();
    }
    assert!(
        time_until_closed(&mut s, Duration::from_secs(5)).is_some(),
        "oversize stream not closed"
    );
    // A Content-Length beyond the limit: closed at once.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 10000000\r\n\r\n")
        .expect("write");
    assert!(
        time_until_closed(&mut s, Duration::from_secs(3)).is_some(),
        "huge Content-Length not refused"
    );
    // Slowloris: half a message, then nothing: closed after tcp_message_timeout (1 s).
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1")
        .expect("write");
    let t = time_until_closed(&mut s, Duration::from_secs(6)).expect("slow sender not cut");
    assert!(t < Duration::from_secs(4), "cut after {t:?}");
    // An idle connection is closed after tcp_idle_timeout (3 s).
    let mut s = TcpStream::connect(addr).expect("connect");
    let t = time_until_closed(&mut s, Duration::from_secs(8)).expect("idle not closed");
    assert!(t >= Duration::from_secs(2), "idle closed too early: {t:?}");
    assert!(kb.metric("tcp_framing_errors") >= 3);
    assert!(kb.metric("tcp_conns_idle_closed") >= 1);
    assert!(ok_options(
        format!("127.0.0.1:{p}").parse().expect("addr"),
        "after-tcp"
    ));
}

#[test]
fn slow_websocket_handshake_is_cut() {
    let (p, ws) = (free_port(), free_port());
    let _kb = Kemibox::start(
        &config(
            &[format!("udp:127.0.0.1:{p}"), format!("ws:127.0.0.1:{ws}")],
            "tcp_message_timeout = 1",
        ),
        &example_script(),
    );
    let mut s = TcpStream::connect(("127.0.0.1", ws)).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let t = time_until_closed(&mut s, Duration::from_secs(6)).expect("handshake not cut");
    assert!(t < Duration::from_secs(4), "cut after {t:?}");
}

#[test]
fn connection_flood_is_capped() {
    let p = free_port();
    let kb = Kemibox::start(
        &config(
            &[format!("udp:127.0.0.1:{p}"), format!("tcp:127.0.0.1:{p}")],
            "tcp_max_connections = 20",
        ),
        &example_script(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let mut conns = Vec::new();
    for _ in 0..60 {
        if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            conns.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(kb.metric("tcp_connections") <= 20, "cap exceeded");
    assert!(kb.metric("tcp_conns_refused") >= 40);
    assert!(ok_options(addr, "during-flood"));
    drop(conns);
}

#[test]
fn a_bad_config_names_file_line_and_key() {
    let dir = scratch_dir("badcfg");
    std::fs::write(dir.join("s.lua"), "function ksr_request_route() end").expect("script");
    let cfg = "[core]\nlisten = [\"udp:127.0.0.1:5060\"]\n\n[routing]\nengine = \"lua\"\nscript = \"s.lua\"\n\n[modparam.maxfwd]\nmax_limt = 70\n";
    std::fs::write(dir.join("k.toml"), cfg).expect("config");
    let out = Command::new(kemibox_bin())
        .args(["check", "-c"])
        .arg(dir.join("k.toml"))
        .output()
        .expect("run check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("k.toml:9:") && err.contains("modparam.maxfwd.max_limt"),
        "{err}"
    );
    // A script with a syntax error stops start-up with its line.
    std::fs::write(
        dir.join("s.lua"),
        "function ksr_request_route()\n  if then\nend",
    )
    .expect("script");
    let cfg = cfg.replace("max_limt", "max_limit");
    std::fs::write(dir.join("k.toml"), cfg).expect("config");
    let out = Command::new(kemibox_bin())
        .args(["check", "-c"])
        .arg(dir.join("k.toml"))
        .output()
        .expect("run check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("s.lua:2:"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `kemibox check` validates a config with write-back usrloc and accounting into SQLite
/// without creating either database (the server creates them when it runs).
#[test]
fn check_does_not_create_the_databases() {
    let dir = scratch_dir("checkdb");
    std::fs::write(dir.join("s.lua"), "function ksr_request_route() end").expect("script");
    let cfg = "[core]\nlisten = [\"udp:127.0.0.1:5060\"]\nmodules = [\"usrloc\", \"registrar\", \"acc\"]\n\
[routing]\nengine = \"lua\"\nscript = \"s.lua\"\n\
[modparam.usrloc]\ndb_url = \"sqlite://ul.sqlite\"\ndb_mode = 2\npreload = \"location\"\n\
[modparam.acc]\ndb_url = \"sqlite://acc.sqlite\"\ndb_flag = 1\n";
    std::fs::write(dir.join("k.toml"), cfg).expect("config");
    let out = Command::new(kemibox_bin())
        .args(["check", "-c"])
        .arg(dir.join("k.toml"))
        .output()
        .expect("run check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.join("ul.sqlite").exists(), "usrloc database created");
    assert!(!dir.join("acc.sqlite").exists(), "acc database created");
    // A bad db_url still fails the check, naming the module.
    std::fs::write(
        dir.join("k.toml"),
        cfg.replace("sqlite://ul.sqlite", "mysql://db/kamailio"),
    )
    .expect("config");
    let out = Command::new(kemibox_bin())
        .args(["check", "-c"])
        .arg(dir.join("k.toml"))
        .output()
        .expect("run check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("usrloc: bad db_url `mysql://db/kamailio`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
