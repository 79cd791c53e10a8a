//! Real softphones through Kamailio's basic KEMI script: two baresip user agents (Debian
//! `baresip-core`) register with digest auth at kemibox running the script from
//! `examples/basic-kemi/kemibox.toml` (alice and bob in its SQLite database), alice calls
//! bob, bob answers by himself, audio flows between them, alice hangs up. On every
//! engine of the suite: the Lua script on mlua and on lua-wasm, its Rust port on wasm,
//! the jsdt script on js-wasm and the Python script as a plugin; and over TCP, TLS and IPv6.
//!
//! baresip takes its media address from the machine's interfaces, so each test runs in a
//! private network namespace where loopback is the only one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::basic_example::{config, create_db};
use e2e::*;

const UDP: Net = Net {
    transport: "udp",
    v6: false,
};

const KEMI: &str = "/usr/share/doc/kamailio/examples/kemi";

fn kamailio_script(name: &str) -> PathBuf {
    let p = Path::new(KEMI).join(name);
    assert!(
        p.is_file(),
        "{} is missing: apt-get install kamailio",
        p.display()
    );
    p
}

/// The `[routing]` lines of each engine.
fn routing(engine: &str) -> String {
    match engine {
        "lua" => format!(
            "engine = \"lua\"\nscript = \"{}\"",
            kamailio_script("kamailio-basic-kemi-lua.lua").display()
        ),
        "lua-wasm" => format!(
            "engine = \"lua-wasm\"\nscript = \"{}\"\nruntime = \"{}\"",
            kamailio_script("kamailio-basic-kemi-lua.lua").display(),
            wasm_plugin("kemibox_lua").display()
        ),
        "wasm" => format!(
            "engine = \"wasm\"\nplugin = \"{}\"",
            wasm_plugin("basic").display()
        ),
        "js-wasm" => format!(
            "engine = \"js-wasm\"\nscript = \"{}\"\nruntime = \"{}\"",
            kamailio_script("kamailio-basic-kemi-jsdt.js").display(),
            wasm_plugin("kemibox_quickjs").display()
        ),
        "python" => format!(
            "engine = \"wasm\"\nplugin = \"{}\"\ncache_dir = \"{}\"",
            py_plugin(&kamailio_script("kamailio-basic-kemi-python.py")).display(),
            repo_root().join("plugins/python/build/cache").display()
        ),
        _ => panic!("unknown engine {engine}"),
    }
}

/// A UDP port whose next port is free for TCP too: baresip listens for SIP on UDP and
/// TCP at its port and for TLS at the next one.
fn port_pair() -> u16 {
    for _ in 0..50 {
        let p = free_port();
        if std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && std::net::TcpListener::bind(("::1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no free port pair");
}

/// How the phones reach kemibox: `transport` (udp, tcp or tls) over IPv4 or IPv6.
#[derive(Clone, Copy)]
struct Net {
    transport: &'static str,
    v6: bool,
}

impl Net {
    /// The loopback address, as baresip prints an account's host.
    fn host(self) -> &'static str {
        if self.v6 {
            "::1"
        } else {
            "127.0.0.1"
        }
    }

    /// The loopback address in a URI.
    fn uri_host(self) -> &'static str {
        if self.v6 {
            "[::1]"
        } else {
            "127.0.0.1"
        }
    }
}

/// A baresip configuration directory for `user` (password `<user>123`) at the proxy on
/// `proxy` over `net` (trusting the certificate `ca` for TLS): SIP and media on loopback only, G.711, a sine tone as the microphone, no
/// sound card, calls answered automatically.
fn baresip_dir(dir: &Path, user: &str, proxy: u16, net: Net, ca: &Path) -> PathBuf {
    let d = dir.join(user);
    std::fs::create_dir_all(&d).expect("baresip dir");
    let config = format!(
        "poll_method epoll\n\
         sip_listen {uri_host}:{port}\n\
         net_interface {host}\n\
         module_path /usr/lib/baresip/modules\n\
         module g711.so\n\
         module ausine.so\n\
         module aufile.so\n\
         module_app account.so\n\
         module_app menu.so\n\
         audio_source ausine,440\n\
         audio_player aufile,/dev/null\n\
         audio_alert aufile,/dev/null\n\
         ausrc_srate 48000\n\
         auplay_srate 48000\n\
         ausrc_channels 2\n\
         auplay_channels 2\n\
         sip_cafile {ca}\n",
        port = port_pair(),
        uri_host = net.uri_host(),
        host = net.host(),
        ca = ca.display()
    );
    std::fs::write(d.join("config"), config).expect("baresip config");
    std::fs::write(
        d.join("accounts"),
        format!(
            "<sip:{user}@{}:{proxy};transport={}>;auth_pass={user}123;regint=600;answermode=auto\n",
            net.uri_host(),
            net.transport
        ),
    )
    .expect("baresip accounts");
    d
}

/// baresip with config directory `conf`, quitting after `secs`, its output in `out`.
fn baresip(conf: &Path, secs: u32, out: &Path, net: Net, commands: &[&str]) -> Bg {
    let log = std::fs::File::create(out).expect("baresip log");
    let mut cmd = Command::new("baresip");
    cmd.arg("-f").arg(conf).args(["-t", &secs.to_string()]);
    if net.v6 {
        cmd.arg("-6");
    }
    for c in commands {
        cmd.args(["-e", c]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("baresip (apt-get install baresip-core)");
    Bg(child)
}

fn text(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

/// Waits until `what` shows in the file `p` (at most `limit`).
fn wait_for(p: &Path, what: &str, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if text(p).contains(what) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn softphones_call_through_the_basic_script(engine: &str, net: Net, test_name: &str) {
    assert!(
        have("baresip"),
        "baresip is missing: apt-get install baresip-core"
    );
    // Outside the namespace: build what the engine needs (plugins, the compile cache).
    let routing = routing(engine);
    if !in_private_netns(test_name) {
        return;
    }
    let dir = scratch_dir(&format!("softphones-{engine}"));
    let db = create_db(&dir);
    let (p, tls) = (free_port(), free_port());
    // UDP (127.0.0.1 and [::1]) and TCP on one port, TLS (a self-signed certificate the
    // phones trust) on another: `sip_port` is the port the phones use.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("generate certificate");
    let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).expect("write key");
    let listen = format!("\"udp:127.0.0.1:{p}\"");
    let cfg = config(p, &db, &routing);
    assert!(cfg.contains(&listen), "the example's listen line changed");
    let cfg = cfg.replace(
        &listen,
        &format!("{listen}, \"tcp:127.0.0.1:{p}\", \"tls:127.0.0.1:{tls}\", \"udp:[::1]:{p}\""),
    ) + &format!(
        "\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        cert_pem.display(),
        key_pem.display()
    );
    let sip_port = if net.transport == "tls" { tls } else { p };
    let (host, uri_host, transport) = (net.host(), net.uri_host(), net.transport);
    let ip = if net.v6 { "v6" } else { "v4" };
    if engine == "js-wasm" || engine == "python" {
        precompile(&cfg);
    }
    let kb = Kemibox::start(&cfg, "");
    let tp = transport.to_uppercase();
    let (alice, bob) = (
        baresip_dir(&dir, "alice", sip_port, net, &cert_pem),
        baresip_dir(&dir, "bob", sip_port, net, &cert_pem),
    );
    let (alice_out, bob_out) = (dir.join("alice.out"), dir.join("bob.out"));
    let logs = || {
        format!(
            "--- alice\n{}\n--- bob\n{}\n--- kemibox\n{}",
            text(&alice_out),
            text(&bob_out),
            kb.log_text()
        )
    };

    // bob registers (challenged, then accepted) and waits for calls.
    let _bob = baresip(&bob, 20, &bob_out, net, &[]);
    assert!(
        wait_for(
            &bob_out,
            &format!("bob@{host}: {{0/{tp}/{ip}}} 200 OK"),
            Duration::from_secs(10)
        ),
        "bob did not register\n{}",
        logs()
    );
    // alice registers, calls bob (her INVITE challenged for credentials, then looked
    // up and relayed to bob's contact), talks for a while and hangs up as she quits.
    let mut alice_proc = baresip(
        &alice,
        3,
        &alice_out,
        net,
        &[&format!(
            "/dial sip:bob@{uri_host}:{sip_port};transport={transport}"
        )],
    );
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) && alice_proc.0.try_wait().ok().flatten().is_none()
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        wait_for(&bob_out, "terminated", Duration::from_secs(5)),
        "bob's call did not end\n{}",
        logs()
    );

    let (a, b) = (text(&alice_out), text(&bob_out));
    assert!(
        a.contains(&format!("alice@{host}: {{0/{tp}/{ip}}} 200 OK")),
        "alice registered\n{}",
        logs()
    );
    assert!(
        a.contains(&format!("Call established: sip:bob@{uri_host}:{sip_port}")),
        "alice's call\n{}",
        logs()
    );
    assert!(
        b.contains(&format!(
            "Call established: sip:alice@{uri_host}:{sip_port}"
        )),
        "bob's call\n{}",
        logs()
    );
    // The SDP passed the proxy intact: each side hears the other's RTP.
    assert!(
        a.contains("incoming rtp for 'audio' established")
            && b.contains("incoming rtp for 'audio' established"),
        "media\n{}",
        logs()
    );
    // What the operator sees: acc records of the answered INVITE and BYE.
    let log = kb.log_text();
    for method in ["INVITE", "BYE"] {
        assert!(
            log.lines().any(|l| l.contains("ACC: transaction answered")
                && l.contains(&format!("method={method}"))
                && l.contains("code=200")
                && l.contains("src_user=alice")
                && l.contains("dst_ouser=bob")),
            "{method} accounted\n{}",
            logs()
        );
    }
    for m in [
        "script_errors",
        "wasm_traps",
        "wasm_deadlines",
        "send_errors",
    ] {
        assert_eq!(kb.metric(m), 0, "{m}\n{}", logs());
    }
    // Over TCP and TLS the phones' own connections carry everything, bob's INVITE too
    // (sent to the address his REGISTER came from): none opened toward them.
    let conns = if transport == "udp" { 0 } else { 2 };
    assert_eq!(kb.metric("tcp_conns_opened"), conns, "{}", logs());
    drop(kb);
    if std::env::var("KEEP_E2E").is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn softphones_call_through_the_basic_script_on_mlua() {
    softphones_call_through_the_basic_script(
        "lua",
        UDP,
        "softphones_call_through_the_basic_script_on_mlua",
    );
}

#[test]
fn softphones_call_through_the_basic_script_on_lua_wasm() {
    softphones_call_through_the_basic_script(
        "lua-wasm",
        UDP,
        "softphones_call_through_the_basic_script_on_lua_wasm",
    );
}

#[test]
fn softphones_call_through_the_basic_plugin() {
    softphones_call_through_the_basic_script(
        "wasm",
        UDP,
        "softphones_call_through_the_basic_plugin",
    );
}

#[test]
fn softphones_call_through_the_basic_jsdt_script_on_js_wasm() {
    softphones_call_through_the_basic_script(
        "js-wasm",
        UDP,
        "softphones_call_through_the_basic_jsdt_script_on_js_wasm",
    );
}

#[test]
fn softphones_call_through_the_basic_python_script() {
    softphones_call_through_the_basic_script(
        "python",
        UDP,
        "softphones_call_through_the_basic_python_script",
    );
}

/// Over TCP: the phones register over their connections and bob's INVITE reaches him
/// over TCP too.
#[test]
fn softphones_call_over_tcp_through_the_basic_script_on_mlua() {
    softphones_call_through_the_basic_script(
        "lua",
        Net {
            transport: "tcp",
            v6: false,
        },
        "softphones_call_over_tcp_through_the_basic_script_on_mlua",
    );
}

/// Over TLS: the phones trust kemibox's certificate; kemibox reaches bob over the
/// connection he registered on, not at his contact's port (his own TLS listener, which
/// has no certificate): the script's NAT detection sees the connection's source port
/// differ from bob's Via and `fix_nated_register` keeps the address it came from.
#[test]
fn softphones_call_over_tls_through_the_basic_script_on_mlua() {
    softphones_call_through_the_basic_script(
        "lua",
        Net {
            transport: "tls",
            v6: false,
        },
        "softphones_call_over_tls_through_the_basic_script_on_mlua",
    );
}

/// Over IPv6 (UDP on [::1]).
#[test]
fn softphones_call_over_ipv6_through_the_basic_script_on_mlua() {
    softphones_call_through_the_basic_script(
        "lua",
        Net {
            transport: "udp",
            v6: true,
        },
        "softphones_call_over_ipv6_through_the_basic_script_on_mlua",
    );
}
