//! The JavaScript runtime (issue 5, part 2): KEMI scripts in JavaScript built into wasm
//! components with `kemibox plugin build` (componentize-js and the KSR shim of
//! `plugins/js/`): a stateless forwarder under sipp, a stateful script with failure and
//! branch routes, `KSR.x.exit`/`KSR.x.drop` and app_jsdt's argument conversions, an
//! uncaught JS error answering 500 with its JS stack in the log, Kamailio's own
//! `kamailio-basic-kemi-jsdt.js` unmodified, and a hot swap from a Lua script to a JS
//! plugin under sipp load.
//!
//! The forwarder, the semantics and the uncaught error run on engine `js-wasm` too (the
//! same scripts on QuickJS inside the `plugins/quickjs` component, no build step).

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use e2e::*;
use serde_json::json;

const JSDT_SCRIPT: &str = "/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-jsdt.js";

/// How a JS script runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Js {
    /// Built into a component with `kemibox plugin build` (componentize-js).
    Component,
    /// Engine `js-wasm`: QuickJS inside the runtime component, the script read at start.
    QuickJs,
}

/// A wasm config running the JS plugin built from `script`, with the shared cache.
fn js_config(listen: u16, script: &Path, plugin_config: &str, extra_core: &str) -> String {
    js_config_on(Js::Component, listen, script, plugin_config, extra_core)
}

/// A config running `script` the `js` way (`plugin_config` goes to a built plugin).
fn js_config_on(
    js: Js,
    listen: u16,
    script: &Path,
    plugin_config: &str,
    extra_core: &str,
) -> String {
    let routing = match js {
        Js::Component => format!(
            "engine = \"wasm\"\nplugin = \"{}\"\nconfig = \"{plugin_config}\"\n",
            js_plugin(script).display()
        ),
        Js::QuickJs => format!("engine = \"js-wasm\"\nscript = \"{}\"\n", script.display()),
    };
    format!(
        "[core]\nlisten = [\"udp:127.0.0.1:{listen}\"]\negress_allow = [\"127.0.0.0/8\"]\nworkers = 2\n{extra_core}\n\
[modparam.tm]\nfr_timer = 5000\nfr_inv_timer = 10000\n\
[dns]\nhosts_only = true\n[routing]\n{routing}\
cache_dir = \"{}\"\n[routing.limits]\ndeadline_ms = 500\nmemory_mb = 64\n",
        js_cache_dir().display()
    )
}

fn start_js(cfg: &str) -> Kemibox {
    precompile(cfg);
    Kemibox::start(cfg, "")
}

#[test]
fn js_stateless_forwarder_under_sipp() {
    stateless_forwarder_under_sipp(Js::Component);
}

#[test]
fn js_stateless_forwarder_under_sipp_on_js_wasm() {
    stateless_forwarder_under_sipp(Js::QuickJs);
}

fn stateless_forwarder_under_sipp(js: Js) {
    const CALLS: u32 = 40;
    let (p, u) = (free_port(), free_port());
    let script = repo_root().join("examples/js/stateless.js");
    // One worker: stateless forwarding on two workers may pass a 200 before the 180 sent
    // just ahead of it when the 180's worker is still making its first instance of the
    // plugin, and sipp's built-in UAC fails a call on a 180 after the 200.
    let kb = start_js(&one_worker(js_config_on(js, p, &script, "", "")));
    let _uas = sipp::uas(&kb, u, None);
    let out = run_bounded(
        &mut sipp::uac(&kb, p, u, CALLS, 20),
        Duration::from_secs(60),
    );
    sipp::assert_clean(&out, CALLS, &kb);
    assert_eq!(
        kb.metric_settled("fwd_requests", 3 * CALLS as u64),
        3 * CALLS as u64
    );
    assert_eq!(kb.metric("script_errors"), 0);
    assert_eq!(kb.metric("wasm_traps"), 0);

    // The keepalive branch of the script.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = sock.local_addr().expect("local");
    let to: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let r = udp_exchange(
        &sock,
        to,
        &options_to(&format!("127.0.0.1:{p}"), local, "js-ka"),
        Duration::from_secs(5),
    )
    .expect("keepalive answer");
    assert_eq!(status_of(&r), Some(200));
    assert_eq!(reason_of(&r), "Keepalive");
}

/// `examples/js/stateful.js`: the first target is busy, the failure route (named at run
/// time with `t_on_failure`) relays to the X-Fallback target, which declines; every
/// branch went through the branch route.
#[test]
fn js_stateful_failure_and_branch_routes() {
    let p = free_port();
    let script = repo_root().join("examples/js/stateful.js");
    let kb = start_js(&js_config(
        p,
        &script,
        "marker=t1",
        "modules = [\"sl\", \"tm\", \"tmx\", \"maxfwd\", \"corex\", \"kx\"]",
    ));
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let sock = || UdpSocket::bind("127.0.0.1:0").expect("socket");
    let (client, busy, fallback) = (sock(), sock(), sock());
    let addr = |s: &UdpSocket| s.local_addr().expect("addr");

    let extra = format!("X-Fallback: sip:carol@{}\r\n", addr(&fallback));
    let inv = invite(proxy, addr(&client), addr(&busy), "js-fail", &extra);
    client.send_to(inv.as_bytes(), proxy).expect("send");
    expect(&client, "SIP/2.0 100");
    let (first, from) = expect(&busy, "INVITE ");
    assert_eq!(header(&first, "X-Routing-Version"), Some("t1"), "{first}");
    assert_eq!(header(&first, "X-Branch"), Some("js"), "{first}");
    busy.send_to(answer(&first, 486, "Busy Here", "b").as_bytes(), from)
        .expect("486");
    expect(&busy, "ACK ");
    let (second, from) = expect(&fallback, "INVITE ");
    assert!(
        second.starts_with(&format!("INVITE sip:carol@{} ", addr(&fallback))),
        "{second}"
    );
    assert_eq!(header(&second, "X-Failure-Version"), Some("t1"), "{second}");
    assert_eq!(header(&second, "X-Branch"), Some("js"), "{second}");
    fallback
        .send_to(answer(&second, 603, "Decline", "f").as_bytes(), from)
        .expect("603");
    expect(&fallback, "ACK ");
    let (fin, _) = expect(&client, "SIP/2.0 603");
    assert!(fin.starts_with("SIP/2.0 603 Decline\r\n"), "{fin}");
    assert_eq!(kb.metric("script_errors"), 0, "{}", kb.log_text());
    assert_eq!(kb.metric("wasm_traps"), 0);
}

/// `KSR.x.exit()` from any depth, `KSR.x.drop()` for a request and a reply,
/// `KSR.set_drop()`, a script's own `catch` seeing app_jsdt's exit sentinel, argument
/// conversions, only loaded modules under `KSR`, state kept by the warm instance.
#[test]
fn js_exit_drop_and_conversions() {
    exit_drop_and_conversions(Js::Component);
}

#[test]
fn js_exit_drop_and_conversions_on_js_wasm() {
    exit_drop_and_conversions(Js::QuickJs);
}

fn exit_drop_and_conversions(js: Js) {
    let p = free_port();
    let script = repo_root().join("tests/js/semantics.js");
    let kb = start_js(&one_worker(js_config_on(
        js,
        p,
        &script,
        "",
        "modules = [\"sl\", \"tm\", \"maxfwd\", \"kx\", \"textops\"]",
    )));
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");

    // exit: the first reply only, nothing after the exit at any depth.
    assert_eq!(
        answer_to(&sock, proxy, "exit"),
        (200, "before exit".to_string())
    );
    assert!(
        recv(&sock, Duration::from_millis(500)).is_none(),
        "a reply after exit"
    );
    // drop: no reply at all (no 500 either).
    assert!(ask_user(&sock, proxy, "drop", Duration::from_secs(1)).is_none());
    // set_drop only marks: the route goes on and its reply is sent.
    assert_eq!(
        answer_to(&sock, proxy, "set-drop"),
        (200, "marked".to_string())
    );
    assert_eq!(
        answer_to(&sock, proxy, "catch"),
        (200, "caught ~~ksr~exit~~".to_string())
    );
    assert_eq!(answer_to(&sock, proxy, "args"), (202, "42".to_string()));
    assert_eq!(
        answer_to(&sock, proxy, "modules"),
        (
            200,
            "object,undefined,object,function,true,false,,false".to_string()
        )
    );
    let (code, reason) = answer_to(&sock, proxy, "counter");
    assert_eq!(code, 200);
    let count: u32 = reason
        .strip_prefix("count ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(count >= 4, "the warm instance keeps globals: {reason}");
    assert_eq!(answer_to(&sock, proxy, "console"), (200, "logged".into()));
    assert!(kb.log_text().contains("console.log from js 7"));

    // A reply dropped in the reply route is not relayed (and is counted); another one is.
    let drops = kb.metric("drops");
    let target = UdpSocket::bind("127.0.0.1:0").expect("target");
    let t = target.local_addr().expect("addr");
    for (tag, extra, relayed) in [("keep", "", true), ("gone", "X-Drop: 1\r\n", false)] {
        let req = options_to(&format!("fwd@{t}"), sock.local_addr().expect("a"), tag);
        sock.send_to(&req, proxy).expect("send");
        let (fwd, from) = expect(&target, "OPTIONS ");
        let ans = answer(&fwd, 200, "OK", "t").replace(
            "Content-Length: 0\r\n",
            &format!("{extra}Content-Length: 0\r\n"),
        );
        target.send_to(ans.as_bytes(), from).expect("answer");
        let got = recv(&sock, Duration::from_secs(1));
        assert_eq!(got.is_some(), relayed, "{tag}: {got:?}");
    }
    assert_eq!(kb.metric_settled("drops", drops + 1), drops + 1);
    assert_eq!(kb.metric("script_errors"), 0, "{}", kb.log_text());
    assert_eq!(kb.metric("wasm_traps"), 0);
}

/// An uncaught JS error: the request gets 500, the log has the error with its JS stack
/// (script file and line), the trap is counted, and the next request is answered by a
/// fresh instance.
#[test]
fn js_uncaught_error_answers_500_with_the_js_stack() {
    uncaught_error_answers_500_with_the_js_stack(Js::Component);
}

#[test]
fn js_uncaught_error_answers_500_with_the_js_stack_on_js_wasm() {
    uncaught_error_answers_500_with_the_js_stack(Js::QuickJs);
}

fn uncaught_error_answers_500_with_the_js_stack(js: Js) {
    let p = free_port();
    let script = repo_root().join("tests/js/semantics.js");
    // How the engine prints a stack frame of function `f` at `semantics.js:LINE`.
    let frame = |f: &str, line: &str| match js {
        Js::Component => format!("{f}@semantics.js:{line}"),
        Js::QuickJs => format!("at {f} ({}:{line}", script.display()),
    };
    let kb = start_js(&one_worker(js_config_on(
        js,
        p,
        &script,
        "",
        "modules = [\"sl\", \"tm\", \"maxfwd\", \"kx\", \"textops\"]",
    )));
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    assert_eq!(answer_to(&sock, proxy, "counter"), (200, "count 1".into()));
    let t = Instant::now();
    let (code, _) = answer_to(&sock, proxy, "throw");
    assert_eq!(code, 500, "{}", kb.log_text());
    assert!(t.elapsed() < Duration::from_secs(2));
    let log = kb.log_text();
    assert!(
        log.contains("error stack from js: Error: kaboom from js: throw"),
        "{log}"
    );
    assert!(log.contains(&frame("thrower", "15:")), "{log}");
    assert!(log.contains(&frame("ksr_request_route", "")), "{log}");
    assert!(log.contains("error executing: ksr_request_route"), "{log}");
    assert_eq!(kb.metric("wasm_traps"), 1);
    assert!(kb.metric("script_errors") >= 1);
    // A fresh instance (the trapped one is gone with its globals).
    assert_eq!(answer_to(&sock, proxy, "counter"), (200, "count 1".into()));

    // An error in the reply route is logged with its stack and counted too.
    let target = UdpSocket::bind("127.0.0.1:0").expect("target");
    let ta = target.local_addr().expect("addr");
    let req = options_to(
        &format!("fwd@{ta}"),
        sock.local_addr().expect("a"),
        "rthrow",
    );
    sock.send_to(&req, proxy).expect("send");
    let (fwd, from) = expect(&target, "OPTIONS ");
    let ans = answer(&fwd, 200, "OK", "t").replace(
        "Content-Length: 0\r\n",
        "X-Throw: 1\r\nContent-Length: 0\r\n",
    );
    target.send_to(ans.as_bytes(), from).expect("answer");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !kb.log_text().contains("kaboom from js: reply") {
        assert!(Instant::now() < deadline, "{}", kb.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(kb.log_text().contains(&frame("ksr_reply_route", "")));
    assert_eq!(kb.metric_settled("wasm_traps", 2), 2);
}

/// `examples/basic-kemi/kemibox.toml` switched to the wasm engine and the plugin built
/// from Kamailio's `kamailio-basic-kemi-jsdt.js`, unmodified. That script calls
/// `KSR.nathelper` and `KSR.permissions` without testing for them (Kamailio's cfg loads
/// them with its default WITH_NAT and WITH_IPAUTH), so those modules are added. Keepalive,
/// REGISTER challenge and credentials, and a call to the registered user through the
/// script's branch, onreply and failure routes.
#[test]
fn kamailio_basic_jsdt_script_unmodified() {
    let script = PathBuf::from(JSDT_SCRIPT);
    assert!(
        script.is_file(),
        "{JSDT_SCRIPT} is missing: apt-get install kamailio"
    );
    let p = free_port();
    let dir = scratch_dir("jsdt");
    let db = basic_example::create_db(&dir);
    let routing = format!(
        "engine = \"wasm\"\nplugin = \"{}\"\ncache_dir = \"{}\"",
        js_plugin(&script).display(),
        js_cache_dir().display()
    );
    let kb = start_js(&basic_example::config(p, &db, &routing));
    basic_example::play(&kb, p, "jsdt");
    assert_eq!(kb.metric("script_errors"), 0, "{}", kb.log_text());
    assert_eq!(kb.metric("wasm_traps"), 0);
    drop(kb);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hot swap between engines under load: `routing.load` from a Lua script (mlua) to a Rust
/// plugin (`plugins/stateful`) to a JS plugin to the same JS script on engine js-wasm
/// (a `.js` path) while sipp runs at 100 calls/s: no call fails, and the callee sees the
/// markers in that order.
#[test]
fn hot_swap_lua_to_rust_to_js_under_load() {
    const RATE: u32 = 100;
    const SECS: u32 = 12;
    let (p, u) = (free_port(), free_port());
    let js = js_plugin(&repo_root().join("examples/js/stateful.js"));
    let rust = wasm_plugin("stateful");
    let lua = std::fs::read_to_string(repo_root().join("examples/stateful.lua"))
        .expect("examples/stateful.lua")
        .replacen(
            "\tif KSR.tm.t_relay() < 0 then",
            "\tKSR.hdr.append(\"X-Routing-Version: lua\\r\\n\")\n\tif KSR.tm.t_relay() < 0 then",
            1,
        );
    assert!(lua.contains("X-Routing-Version: lua"));
    // The same JS script on engine js-wasm, marked by its own text (a script engine has
    // no plugin config).
    let jsw_src = std::fs::read_to_string(repo_root().join("examples/js/stateful.js"))
        .expect("examples/js/stateful.js")
        .replacen("var MARKER = null;", "var MARKER = \"js-wasm\";", 1);
    assert!(jsw_src.contains("\"js-wasm\""));
    let limits = "[routing.limits]\ndeadline_ms = 500\nmemory_mb = 64\n";
    // The components compiled ahead, as an operator would with `kemibox check`.
    for (plugin, marker) in [(&js, "js"), (&rust, "rust")] {
        precompile(&format!(
            "[core]\nlisten = [\"udp:127.0.0.1:{p}\"]\n[routing]\nengine = \"wasm\"\nplugin = \"{}\"\n\
config = \"marker={marker}\"\ncache_dir = \"{}\"\n{limits}",
            plugin.display(),
            js_cache_dir().display()
        ));
    }
    let cfg = format!(
        "[core]\nlisten = [\"udp:127.0.0.1:{p}\"]\negress_allow = [\"127.0.0.0/8\"]\nworkers = 2\n\
modules = [\"sl\", \"tm\", \"tmx\", \"maxfwd\", \"corex\", \"kx\"]\n\
[modparam.tm]\nfr_timer = 5000\nfr_inv_timer = 10000\n\
[dns]\nhosts_only = true\n[routing]\nengine = \"lua\"\nscript = \"SCRIPT\"\ncache_dir = \"{}\"\n{limits}",
        js_cache_dir().display()
    );
    let kb = Kemibox::start(&cfg, &lua);
    let _uas = sipp::uas(&kb, u, Some(&repo_root().join("tests/sipp/uas-marker.xml")));
    let mut cmd = sipp::uac(&kb, p, u, RATE * SECS, RATE);
    let uac = std::thread::spawn(move || run_bounded(&mut cmd, Duration::from_secs(90)));
    let jsw = kb.dir.join("stateful-js-wasm.js");
    std::fs::write(&jsw, jsw_src).expect("write");
    let mut swaps = Vec::new();
    for (plugin, marker) in [(&rust, "rust"), (&js, "js"), (&jsw, "js-wasm")] {
        std::thread::sleep(Duration::from_secs(SECS as u64 / 4));
        let t = Instant::now();
        let r = kb.rpc(
            "routing.load",
            json!({"path": plugin.display().to_string(), "config": format!("marker={marker}")}),
        );
        swaps.push(t.elapsed());
        assert!(r.get("result").is_some(), "swap to {marker} refused: {r}");
        let engine = if marker == "js-wasm" {
            "js-wasm"
        } else {
            "wasm"
        };
        assert_eq!(r["result"]["current"]["engine"], engine, "{r}");
    }
    let out = uac.join().expect("sipp UAC thread");
    sipp::assert_clean(&out, RATE * SECS, &kb);

    let log = std::fs::read_to_string(kb.dir.join("markers.log")).unwrap_or_default();
    let markers: Vec<&str> = log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("marker "))
        .collect();
    assert_eq!(markers.len(), (RATE * SECS) as usize, "every INVITE marked");
    let first = |m: &str| markers.iter().position(|x| *x == m);
    let last = |m: &str| markers.iter().rposition(|x| *x == m);
    let (Some(first_rust), Some(first_js), Some(first_jsw)) =
        (first("rust"), first("js"), first("js-wasm"))
    else {
        panic!("every swap took effect: {markers:?}");
    };
    assert!(first_rust > 0, "Lua routed first");
    // INVITEs routed just before a swap may arrive just after the first new one.
    assert!(
        last("lua").unwrap_or(0) < first_rust + 10
            && last("rust").unwrap_or(0) < first_js + 10
            && last("js").unwrap_or(0) < first_jsw + 10
            && first_rust < first_js
            && first_js < first_jsw
            && markers
                .iter()
                .all(|m| ["lua", "rust", "js", "js-wasm"].contains(m)),
        "lua, then rust, then js, then js-wasm: {markers:?}"
    );
    println!(
        "swaps took {swaps:?}; {first_rust} calls on lua, {} on rust, {} on js, the rest on js-wasm",
        first_js - first_rust,
        first_jsw - first_js
    );
    assert_eq!(kb.metric("script_errors"), 0);
    assert_eq!(kb.metric("wasm_traps"), 0);
}
