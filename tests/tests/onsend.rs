//! The onsend route on the wire, on every engine: mlua, a Rust wasm plugin
//! (`plugins/stateful` with `onsend_block=`), Lua inside wasm and JavaScript. The route
//! logs every send (`$snd(sproto)`, `$snd(ip)`, `$snd(port)`, `$snd(proto)`) and drops
//! the sends to one destination: a request relayed by tm there gets Kamailio's
//! `477 Unfortunately error on sending to next hop occurred (477/TM)` and nothing reaches
//! it; a stateless forward there makes `KSR.forward()` return -1; everything else
//! (requests, relayed replies) goes through, seen by the route. And the `$snd(..)` values
//! read the same as on real Kamailio 5.6 with the same script.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use e2e::*;

/// Stateful relay (stateless for user `sl`) with an onsend route that logs each send and
/// drops those to BLOCK. The JS twin is `tests/js/onsend.js`.
const SCRIPT: &str = r#"
function ksr_request_route()
  if KSR.tm.t_check_trans() == 0 then KSR.x.exit() end
  if KSR.pv.get("$rU") == "sl" then
    if KSR.forward() < 0 then KSR.sl.sl_send_reply(500, "forward failed") end
    KSR.x.exit()
  end
  if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
end

function ksr_onsend_route()
  local ip, port = KSR.pv.get("$snd(ip)"), KSR.pv.get("$snd(port)")
  KSR.info("onsend: " .. KSR.pv.get("$snd(sproto)") .. " " .. ip .. ":" .. port
    .. " proto=" .. KSR.pv.get("$snd(proto)") .. "\n")
  if ip .. ":" .. port == "BLOCK" then KSR.x.drop() end
end
"#;

const TM: &str = "[modparam.tm]\nfr_timer = 3000\nfr_inv_timer = 3000\n";

struct Wire {
    proxy: SocketAddr,
    port: u16,
    client: UdpSocket,
    c: SocketAddr,
    uas: UdpSocket,
    u: SocketAddr,
    blocked: UdpSocket,
    b: SocketAddr,
}

fn wire() -> Wire {
    let port = free_port();
    let bind = || UdpSocket::bind("127.0.0.1:0").expect("socket");
    let (client, uas, blocked) = (bind(), bind(), bind());
    let addr = |s: &UdpSocket| s.local_addr().expect("addr");
    Wire {
        proxy: format!("127.0.0.1:{port}").parse().expect("addr"),
        port,
        c: addr(&client),
        u: addr(&uas),
        b: addr(&blocked),
        client,
        uas,
        blocked,
    }
}

fn wait_log(kb: &Kemibox, needle: &str) {
    for _ in 0..50 {
        if kb.log_text().contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no `{needle}` in the log:\n{}", kb.log_text());
}

/// The stateful part: a relayed INVITE and its relayed 486 go through the route; an
/// INVITE to the blocked destination is never sent and the caller gets tm's 477.
fn relayed(kb: &Kemibox, w: &Wire) {
    let inv = invite(w.proxy, w.c, w.u, "os1", "");
    w.client.send_to(inv.as_bytes(), w.proxy).expect("send");
    let (fwd, from) = expect(&w.uas, "INVITE ");
    wait_log(kb, &format!("onsend: udp {} proto=1", w.u));
    w.uas
        .send_to(answer(&fwd, 486, "Busy Here", "u1").as_bytes(), from)
        .expect("486");
    let (busy, _) = expect(&w.client, "SIP/2.0 486");
    assert!(busy.starts_with("SIP/2.0 486 Busy Here\r\n"), "{busy}");
    // The relayed reply went through the onsend route too (Kamailio's KEMI does so
    // whatever onsend_route_reply says).
    wait_log(kb, &format!("onsend: udp {} proto=1", w.c));

    let inv = invite(w.proxy, w.c, w.b, "os2", "");
    w.client.send_to(inv.as_bytes(), w.proxy).expect("send");
    let (fin, _) = expect(&w.client, "SIP/2.0 477");
    assert!(
        fin.starts_with(
            "SIP/2.0 477 Unfortunately error on sending to next hop occurred (477/TM)\r\n"
        ),
        "{fin}"
    );
    wait_log(kb, &format!("onsend: udp {} proto=1", w.b));
    assert!(
        recv(&w.blocked, Duration::from_millis(700)).is_none(),
        "nothing reaches the blocked destination"
    );
    assert!(kb.metric("onsend_drops") >= 1);
    assert_eq!(kb.metric("script_errors"), 0);
}

/// The stateless part: a forward to the blocked destination fails (`KSR.forward()` is
/// -1) and sends nothing; one to the UAS goes out.
fn stateless(kb: &Kemibox, w: &Wire) {
    let opt = |to: SocketAddr, tag: &str| options_to(&format!("sl@{to}"), w.c, tag);
    w.client.send_to(&opt(w.u, "os3"), w.proxy).expect("send");
    expect(&w.uas, "OPTIONS sip:sl@");
    w.client.send_to(&opt(w.b, "os4"), w.proxy).expect("send");
    let (r, _) = expect(&w.client, "SIP/2.0 500");
    assert!(r.starts_with("SIP/2.0 500 forward failed\r\n"), "{r}");
    wait_log(
        kb,
        &format!("request to {} (udp) dropped (onsend_route)", w.b),
    );
    assert!(recv(&w.blocked, Duration::from_millis(500)).is_none());
}

fn lua_config(w: &Wire) -> String {
    config(&[format!("udp:127.0.0.1:{}", w.port)], "") + TM
}

#[test]
fn onsend_on_mlua() {
    let w = wire();
    let kb = Kemibox::start(&lua_config(&w), &SCRIPT.replace("BLOCK", &w.b.to_string()));
    relayed(&kb, &w);
    stateless(&kb, &w);
}

#[test]
fn onsend_on_lua_wasm() {
    let w = wire();
    let runtime = wasm_plugin("kemibox_lua");
    let cfg = lua_config(&w).replace(
        "engine = \"lua\"\n",
        &format!(
            "engine = \"lua-wasm\"\nruntime = \"{}\"\n",
            runtime.display()
        ),
    );
    let kb = Kemibox::start(&cfg, &SCRIPT.replace("BLOCK", &w.b.to_string()));
    relayed(&kb, &w);
    stateless(&kb, &w);
}

#[test]
fn onsend_on_a_rust_plugin() {
    let w = wire();
    let cfg = wasm_config(
        &[format!("udp:127.0.0.1:{}", w.port)],
        &wasm_plugin("stateful"),
        &format!("onsend_block={}", w.b),
        "",
    ) + TM;
    let kb = Kemibox::start(&cfg, "");
    relayed(&kb, &w);
}

#[test]
fn onsend_on_js() {
    let w = wire();
    let plugin = js_plugin(&repo_root().join("tests/js/onsend.js"));
    let cfg = wasm_config(
        &[format!("udp:127.0.0.1:{}", w.port)],
        &plugin,
        &w.b.to_string(),
        "deadline_ms = 500",
    )
    .replace(
        "[routing.limits]",
        &format!(
            "cache_dir = \"{}\"\n[routing.limits]",
            repo_root().join("plugins/js/build/cache").display()
        ),
    ) + TM;
    // A JS component compiles longer than `Kemibox::start` waits: into the cache first.
    let dir = scratch_dir("onsend-js");
    let path = dir.join("check.toml");
    std::fs::write(&path, cfg.replace("CONTROL", "127.0.0.1:1")).expect("config");
    let out = run_bounded(
        Command::new(kemibox_bin()).args(["check", "-c"]).arg(&path),
        Duration::from_secs(600),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kb = Kemibox::start(&cfg, "");
    relayed(&kb, &w);
    stateless(&kb, &w);
}

/// The JS test script on engine js-wasm (QuickJS): the blocked destination written into
/// the script (a script engine has no plugin config).
#[test]
fn onsend_on_js_wasm() {
    let w = wire();
    let src = std::fs::read_to_string(repo_root().join("tests/js/onsend.js"))
        .expect("tests/js/onsend.js")
        .replace("kemibox.config", &format!("\"{}\"", w.b));
    assert!(src.contains(&w.b.to_string()));
    let dir = scratch_dir("onsend-js-wasm");
    let script = dir.join("onsend.js");
    std::fs::write(&script, src).expect("script");
    let cfg = lua_config(&w).replace(
        "engine = \"lua\"\nscript = \"SCRIPT\"\n",
        &format!("engine = \"js-wasm\"\nscript = \"{}\"\n", script.display()),
    );
    assert!(cfg.contains("js-wasm"), "{cfg}");
    let kb = Kemibox::start_in(dir, &cfg, "");
    relayed(&kb, &w);
    stateless(&kb, &w);
}

/// A plugin without an onsend route is asked once per version, then never again: its
/// sends cost nothing (`routing.status` counts the route calls).
#[test]
fn a_plugin_without_onsend_route_is_asked_once() {
    let w = wire();
    let cfg = wasm_config(
        &[format!("udp:127.0.0.1:{}", w.port)],
        &wasm_plugin("stateful"),
        "",
        "",
    ) + TM;
    let kb = Kemibox::start(&cfg, "");
    for i in 0..3 {
        let inv = invite(w.proxy, w.c, w.u, &format!("nr{i}"), "");
        w.client.send_to(inv.as_bytes(), w.proxy).expect("send");
        let (fwd, from) = expect(&w.uas, "INVITE ");
        w.uas
            .send_to(answer(&fwd, 486, "Busy Here", "u1").as_bytes(), from)
            .expect("486");
        expect(&w.client, "SIP/2.0 486");
    }
    let st = kb.rpc("routing.status", serde_json::json!([]));
    let calls = st["result"]["current"]["calls"].as_u64().expect("calls");
    // Per call a request route, a reply route (the 486) and the failure route; and one
    // onsend-route call for the whole version (the first send).
    assert_eq!(calls, 3 * 3 + 1, "{st}");
}

/// The Lua script of the comparison with Kamailio: the onsend route logs what it sees.
const COMPARE: &str = r#"
function ksr_request_route()
  if KSR.pv.get("$rU") == nil then KSR.sl.sl_send_reply(200, "OK") return end
  if KSR.pv.get("$rU") == "sl" then KSR.forward() return end
  KSR.tm.t_relay()
end

function ksr_onsend_route()
  local pv = function(n) return tostring(KSR.pv.get(n)) end
  KSR.info("ONSEND|" .. pv("$rs") .. "|" .. pv("$rm") .. "|" .. pv("$snd(ip)") .. ":"
    .. pv("$snd(port)") .. "|" .. pv("$snd(proto)") .. "|" .. pv("$snd(sproto)") .. "|"
    .. pv("$snd(af)") .. "|" .. pv("$sndfrom(ip)") .. ":" .. pv("$sndfrom(port)") .. "|"
    .. pv("$sndfrom(proto)") .. "|" .. tostring(KSR.pv.get("$snd(len)") == #KSR.pv.get("$snd(buf)"))
    .. "|" .. tostring(pv("$sndto(ip)") == pv("$snd(ip)")) .. "\n")
end
"#;

/// A MESSAGE relayed by tm and one forwarded statelessly, each answered 200 by the UAS;
/// the onsend lines the proxy logged, with the addresses named.
fn compare_run(proxy: SocketAddr, log: &dyn Fn() -> String) -> Vec<String> {
    let bind = || UdpSocket::bind("127.0.0.1:0").expect("socket");
    let (client, uas) = (bind(), bind());
    let (c, u) = (
        client.local_addr().expect("addr"),
        uas.local_addr().expect("addr"),
    );
    for (user, tag) in [("tm", "cmp1"), ("sl", "cmp2")] {
        let msg = invite(proxy, c, u, tag, "")
            .replace("INVITE", "MESSAGE")
            .replace("sip:bob@", &format!("sip:{user}@"));
        client.send_to(msg.as_bytes(), proxy).expect("send");
        let (fwd, from) = expect(&uas, "MESSAGE ");
        uas.send_to(answer(&fwd, 200, "OK", "u1").as_bytes(), from)
            .expect("200");
        expect(&client, "SIP/2.0 200");
    }
    std::thread::sleep(Duration::from_millis(300));
    log()
        .lines()
        // The line up to the first blank (kemibox's log adds fields after the text).
        .filter_map(|l| {
            l.find("ONSEND|")
                .and_then(|i| l[i..].split_whitespace().next())
        })
        .map(|l| {
            l.replace(&proxy.to_string(), "PROXY")
                .replace(&c.to_string(), "CLIENT")
                .replace(&u.to_string(), "UAS")
        })
        .collect()
}

/// `$snd(..)`, `$sndto(..)` and `$sndfrom(..)` read the same on kemibox as on Kamailio
/// 5.6 with the same KEMI script, for a tm relay, a stateless forward and the replies
/// relayed back (which Kamailio's KEMI runs the onsend route for too).
#[test]
fn snd_reads_like_kamailio() {
    if !have("kamailio") {
        eprintln!("kamailio not installed: skipped");
        return;
    }
    let dir = scratch_dir("onsend-kam");
    let script = dir.join("onsend.lua");
    std::fs::write(&script, COMPARE).expect("script");
    let kport = free_port();
    let mut cfg = format!(
        "debug=2\nlog_stderror=yes\nchildren=2\nlisten=udp:127.0.0.1:{kport}\nauto_aliases=no\n\
dns=no\nrev_dns=no\ndisable_tcp=yes\n"
    );
    for m in ["sl", "pv", "tm", "tmx", "corex", "kemix", "app_lua"] {
        cfg.push_str(&format!("loadmodule \"{m}.so\"\n"));
    }
    cfg.push_str(&format!(
        "modparam(\"app_lua\", \"load\", \"{}\")\ncfgengine \"lua\"\n",
        script.display()
    ));
    std::fs::write(dir.join("k.cfg"), cfg).expect("cfg");
    let kproxy: SocketAddr = format!("127.0.0.1:{kport}").parse().expect("addr");
    let kam = Kamailio::start(&dir.join("k.cfg"), &[], kproxy);
    let theirs = compare_run(kproxy, &|| kam.log_text());

    let w = wire();
    let kb = Kemibox::start(&lua_config(&w), COMPARE);
    let ours = compare_run(w.proxy, &|| kb.log_text());
    assert_eq!(theirs.len(), 4, "{theirs:?}\n{}", kam.log_text());
    assert_eq!(ours, theirs);
}
