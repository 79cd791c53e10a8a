//! Hot swap of the routing over the control listener's JSON-RPC (`POST /RPC`) and SIGHUP:
//! a transaction finishes on the version that started it, a refused load leaves traffic
//! untouched, Lua scripts reload with Kamailio's `app_lua.reload` (JavaScript ones on
//! engine js-wasm with `app_jsdt.reload`), and sipp calls under
//! load while versions alternate every second lose nothing.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::*;
use serde_json::{json, Value};

/// A wasm config with the `stateful` plugin, a compile cache and tm timers.
fn stateful_wasm_config(p: u16, marker: &str, cache: &Path) -> String {
    format!(
        "[core]\nlisten = [\"udp:127.0.0.1:{p}\"]\negress_allow = [\"127.0.0.0/8\"]\nworkers = 2\n\
modules = [\"sl\", \"tm\", \"tmx\", \"maxfwd\", \"corex\"]\n\
[modparam.tm]\nfr_timer = 5000\nfr_inv_timer = 10000\n\
[dns]\nhosts_only = true\n[routing]\nengine = \"wasm\"\nplugin = \"{}\"\nconfig = \"marker={marker}\"\n\
cache_dir = \"{}\"\n[routing.limits]\ndeadline_ms = 500\n",
        wasm_plugin("stateful").display(),
        cache.display()
    )
}

fn result(answer: &Value) -> &Value {
    match answer.get("result") {
        Some(r) => r,
        None => panic!("rpc failed: {answer}"),
    }
}

fn load(kb: &Kemibox, path: &Path, config: &str) -> Value {
    kb.rpc(
        "routing.load",
        json!({"path": path.display().to_string(), "config": config}),
    )
}

/// A transaction started on version 1 runs its failure route on version 1 after a swap
/// to version 2, while new calls take version 2; corrupt and mismatched components are
/// refused with a reason and the running version stays.
#[test]
fn failure_route_runs_on_the_version_that_started_the_transaction() {
    let p = free_port();
    let dir = scratch_dir("swap-cache");
    let kb = Kemibox::start(&stateful_wasm_config(p, "v1", &dir), "");
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let sock = || UdpSocket::bind("127.0.0.1:0").expect("socket");
    let (client, busy, fallback) = (sock(), sock(), sock());
    let addr = |s: &UdpSocket| s.local_addr().expect("addr");

    let st = kb.rpc("routing.status", json!([]));
    assert_eq!(result(&st)["current"]["id"], 1, "{st}");
    assert_eq!(result(&st)["current"]["engine"], "wasm", "{st}");
    assert_eq!(
        result(&st)["current"]["hash"].as_str().map(str::len),
        Some(64)
    );

    let call = |tag: &str| {
        let extra = format!("X-Fallback: sip:carol@{}\r\n", addr(&fallback));
        let inv = invite(proxy, addr(&client), addr(&busy), tag, &extra);
        client.send_to(inv.as_bytes(), proxy).expect("send");
        expect(&client, "SIP/2.0 100");
        expect(&busy, "INVITE ")
    };
    // Finishes a call: the first target is busy, the failure route relays to the
    // fallback, which declines; returns the INVITE the fallback got.
    let finish = |first: &(String, SocketAddr)| {
        busy.send_to(answer(&first.0, 486, "Busy Here", "b").as_bytes(), first.1)
            .expect("486");
        expect(&busy, "ACK ");
        let (f2, from) = expect(&fallback, "INVITE ");
        fallback
            .send_to(answer(&f2, 603, "Decline", "f").as_bytes(), from)
            .expect("603");
        expect(&fallback, "ACK ");
        let (fin, _) = expect(&client, "SIP/2.0 603");
        assert!(fin.starts_with("SIP/2.0 603 Decline\r\n"), "{fin}");
        f2
    };

    let old = call("swap-old");
    assert_eq!(header(&old.0, "X-Routing-Version"), Some("v1"), "{}", old.0);

    // Swap while that transaction waits for its answer.
    let plugin = wasm_plugin("stateful");
    let st = load(&kb, &plugin, "marker=v2");
    assert_eq!(result(&st)["current"]["id"], 2, "{st}");
    assert_eq!(result(&st)["previous"]["id"], 1, "{st}");
    assert!(
        result(&st)["previous"]["in_use"].as_u64() >= Some(1),
        "the open transaction holds version 1: {st}"
    );

    // A new call takes version 2 from the first request on.
    let new = call("swap-new");
    assert_eq!(header(&new.0, "X-Routing-Version"), Some("v2"), "{}", new.0);

    let f_old = finish(&old);
    assert_eq!(
        header(&f_old, "X-Failure-Version"),
        Some("v1"),
        "the failure route of a transaction started on v1 runs on v1: {f_old}"
    );
    let f_new = finish(&new);
    assert_eq!(header(&f_new, "X-Failure-Version"), Some("v2"), "{f_new}");

    // A corrupt file and a component of another world are refused; v2 stays.
    let junk = kb.dir.join("junk.wasm");
    std::fs::write(&junk, b"\0asm this is not a component").expect("write");
    let e = load(&kb, &junk, "marker=bad");
    let msg = e["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("junk.wasm"),
        "refused with the file named: {e}"
    );
    // An empty component (preamble of the component binary format, no exports).
    let empty = kb.dir.join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").expect("write");
    let e = load(&kb, &empty, "marker=bad");
    let msg = e["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("empty.wasm") && msg.contains("no export"),
        "refused for the missing export: {e}"
    );
    // A good component whose init refuses the config.
    let e = load(&kb, &plugin, "colour=blue");
    let msg = e["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("init refused the config"), "{e}");
    let st = kb.rpc("routing.status", json!({}));
    assert_eq!(result(&st)["current"]["id"], 2, "{st}");
    let again = call("swap-after-refusals");
    assert_eq!(header(&again.0, "X-Routing-Version"), Some("v2"));
    let f = finish(&again);
    assert_eq!(header(&f, "X-Failure-Version"), Some("v2"));

    // Rollback makes v1 current again.
    let st = kb.rpc("routing.rollback", json!([]));
    assert_eq!(result(&st)["current"]["id"], 1, "{st}");
    let back = call("swap-rolled-back");
    assert_eq!(header(&back.0, "X-Routing-Version"), Some("v1"));
    finish(&back);

    let unknown = kb.rpc("routing.nonesuch", json!([]));
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    assert_eq!(kb.metric("script_errors"), 0);
    assert_eq!(kb.metric("wasm_traps"), 0);
}

/// Sends an INVITE through the proxy on port `p` to a target socket each time it is
/// called, and gives the `X-Routing-Version` the routing put on the forwarded request.
fn marker_probe(p: u16, tag: &'static str) -> impl FnMut() -> Option<String> {
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    let target = UdpSocket::bind("127.0.0.1:0").expect("target");
    let (c, t) = (
        client.local_addr().expect("a"),
        target.local_addr().expect("a"),
    );
    let mut n = 0;
    move || {
        n += 1;
        let inv = invite(proxy, c, t, &format!("{tag}-{n}"), "");
        client.send_to(inv.as_bytes(), proxy).expect("send");
        let (fwd, _) = expect(&target, "INVITE ");
        header(&fwd, "X-Routing-Version").map(str::to_string)
    }
}

/// Engine js-wasm: `app_jsdt.reload` (Kamailio's command) loads the edited script and
/// answers the old and new versions; a script that does not compile is refused with its
/// file and line and the running one stays; on another engine the command is refused.
#[test]
fn js_script_reloads_with_app_jsdt_reload() {
    let p = free_port();
    let script = |marker: &str| {
        format!(
            "function ksr_request_route() {{\n  KSR.hdr.append(\"X-Routing-Version: {marker}\\r\\n\");\n  \
KSR.forward();\n}}\n"
        )
    };
    let dir = scratch_dir("jsdt-reload");
    let path = dir.join("routing.js");
    std::fs::write(&path, script("one")).expect("script");
    let cfg = config(&[format!("udp:127.0.0.1:{p}")], "").replace(
        "engine = \"lua\"\nscript = \"SCRIPT\"",
        &format!("engine = \"js-wasm\"\nscript = \"{}\"", path.display()),
    );
    assert!(cfg.contains("js-wasm"), "{cfg}");
    let kb = Kemibox::start_in(dir, &cfg, "");
    let mut marker = marker_probe(p, "js");
    assert_eq!(marker().as_deref(), Some("one"));

    std::fs::write(&path, script("two")).expect("edit");
    let r = kb.rpc("app_jsdt.reload", json!([]));
    assert_eq!(r["result"], json!({"old": 1, "new": 2}), "{r}");
    assert_eq!(marker().as_deref(), Some("two"));

    std::fs::write(&path, "function ksr_request_route() {\n  if (\n}\n").expect("edit");
    let r = kb.rpc("app_jsdt.reload", json!([]));
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("Reload Failed")
            && msg.contains("SyntaxError")
            && msg.contains("routing.js:3"),
        "{r}"
    );
    assert_eq!(marker().as_deref(), Some("two"));
    // app_lua.reload is for the Lua engines.
    let r = kb.rpc("app_lua.reload", json!([]));
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not lua")),
        "{r}"
    );
    assert_eq!(kb.metric("wasm_traps"), 0);
}

/// The Lua engine: `app_lua.reload` (Kamailio's command) and SIGHUP load the edited
/// script; a script that does not load is refused with its line and the old one stays.
#[test]
fn lua_script_reloads_with_app_lua_reload_and_sighup() {
    let p = free_port();
    let script = |marker: &str| {
        format!(
            "function ksr_request_route()\n  KSR.hdr.append(\"X-Routing-Version: {marker}\\r\\n\")\n  \
KSR.forward()\nend\n"
        )
    };
    let kb = Kemibox::start(&config(&[format!("udp:127.0.0.1:{p}")], ""), &script("one"));
    let path = kb.dir.join("script.lua");
    let mut marker = marker_probe(p, "lua");
    assert_eq!(marker().as_deref(), Some("one"));

    std::fs::write(&path, script("two")).expect("edit");
    let r = kb.rpc("app_lua.reload", json!([]));
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(marker().as_deref(), Some("two"));

    // A syntax error: refused with the script's line, "two" keeps routing.
    std::fs::write(&path, "function ksr_request_route()\n  if then\nend\n").expect("edit");
    let r = kb.rpc("app_lua.reload", json!([]));
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("Reload Failed") && msg.contains("script.lua:2"),
        "{r}"
    );
    assert_eq!(marker().as_deref(), Some("two"));
    let list = kb.rpc("app_lua.list", json!([]));
    assert!(list["result"][0]
        .as_str()
        .is_some_and(|s| s.starts_with("0: [") && s.contains("script.lua")));

    // SIGHUP reloads too.
    std::fs::write(&path, script("three")).expect("edit");
    kb.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = marker();
        if m.as_deref() == Some("three") {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload: {m:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = kb.rpc("routing.status", json!([]));
    assert_eq!(result(&st)["current"]["engine"], "lua");
    assert!(result(&st)["current"]["id"].as_u64() >= Some(3), "{st}");
    assert_eq!(kb.metric("script_errors"), 0);
}

/// The load test: sipp at 200 calls/s for 20 s through the stateful plugin while
/// `routing.load` alternates two plugin versions every second. No call fails; the
/// callee sees every INVITE marked, and the marker follows each swap.
#[test]
fn hot_swap_under_load_loses_no_call() {
    const RATE: u32 = 200;
    const SECS: u32 = 20;
    let (p, u) = (free_port(), free_port());
    let cache = scratch_dir("swap-load-cache");
    let kb = Kemibox::start(&stateful_wasm_config(p, "a", &cache), "");
    let _uas = sipp::uas(&kb, u, Some(&repo_root().join("tests/sipp/uas-marker.xml")));
    let mut cmd = sipp::uac(&kb, p, u, RATE * SECS, RATE);
    let uac = std::thread::spawn(move || run_bounded(&mut cmd, Duration::from_secs(90)));

    // Swap every second while sipp runs, alternating the markers.
    let plugin = wasm_plugin("stateful");
    let mut swaps = Vec::new();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(SECS as u64 - 1) {
        std::thread::sleep(Duration::from_secs(1));
        i += 1;
        let marker = if i % 2 == 1 { "b" } else { "a" };
        let r = load(&kb, &plugin, &format!("marker={marker}"));
        assert!(r.get("result").is_some(), "swap {i} refused: {r}");
        swaps.push(marker);
    }
    let out = uac.join().expect("sipp UAC thread");
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    let (ok, failed) = sipp_counts(&out);
    assert!(
        ok == (RATE * SECS) as u64 && failed == 0,
        "{ok} successful, {failed} failed with {} swaps\n{}\n{}",
        swaps.len(),
        out.lines().rev().take(30).collect::<Vec<_>>().join("\n"),
        kb.log_text()
    );

    // The markers in the order the callee got the INVITEs: one run per version, in the
    // order loaded (a few INVITEs routed just before a swap may arrive just after it).
    let log = std::fs::read_to_string(kb.dir.join("markers.log")).unwrap_or_default();
    let markers: Vec<&str> = log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("marker "))
        .collect();
    assert_eq!(markers.len(), (RATE * SECS) as usize, "every INVITE marked");
    let mut runs: Vec<(&str, usize)> = Vec::new();
    for m in &markers {
        match runs.last_mut() {
            Some((last, n)) if last == m => *n += 1,
            _ => runs.push((m, 1)),
        }
    }
    let mut settled: Vec<&str> = Vec::new();
    for (m, n) in &runs {
        if *n >= 20 && settled.last() != Some(m) {
            settled.push(m);
        }
    }
    let mut expected = vec!["a"];
    expected.extend(&swaps);
    assert_eq!(
        settled, expected,
        "runs of markers (version, INVITEs) in arrival order: {runs:?}"
    );
    assert_eq!(kb.metric("script_errors"), 0);
    assert_eq!(kb.metric("wasm_traps"), 0);
}
