//! The Python runtime (issue 5, part 3): KEMI scripts in Python (Kamailio app_python3
//! style) built into wasm components with `kemibox plugin build` (componentize-py and the
//! runtime of `plugins/python/`): a stateless forwarder under sipp, a stateful script
//! with failure (serial forking) and branch routes, exits (`KSR.x.exit`, `sys.exit`, the
//! -255 convention) and drops, app_python3's argument checks, an uncaught exception
//! answering 500 with the Python traceback in the log, and Kamailio's own
//! `kamailio-basic-kemi-python.py` unmodified.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::*;

const PYTHON_SCRIPT: &str = "/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-python.py";

/// Compiled components shared by the tests (and runs): keyed by content hash.
fn cache_dir() -> PathBuf {
    repo_root().join("plugins/python/build/cache")
}

/// A wasm config running the Python plugin built from `script`, with the shared cache.
fn py_config(listen: u16, script: &Path, plugin_config: &str, extra_core: &str) -> String {
    let plugin = py_plugin(script);
    format!(
        "[core]\nlisten = [\"udp:127.0.0.1:{listen}\"]\negress_allow = [\"127.0.0.0/8\"]\nworkers = 2\n{extra_core}\n\
[modparam.tm]\nfr_timer = 5000\nfr_inv_timer = 10000\n\
[dns]\nhosts_only = true\n[routing]\nengine = \"wasm\"\nplugin = \"{}\"\nconfig = \"{plugin_config}\"\n\
cache_dir = \"{}\"\n[routing.limits]\ndeadline_ms = 500\nmemory_mb = 64\n",
        plugin.display(),
        cache_dir().display()
    )
}

fn start_py(cfg: &str) -> Kemibox {
    precompile(cfg);
    Kemibox::start(cfg, "")
}

#[test]
fn python_stateless_forwarder_under_sipp() {
    const CALLS: u32 = 40;
    let (p, u) = (free_port(), free_port());
    let script = repo_root().join("examples/python/stateless.py");
    // One worker: on two, a 200 may pass the 180 sent just ahead of it while the 180's
    // worker still makes its first instance, and sipp's UAC fails a call on that.
    let kb = start_py(&one_worker(py_config(p, &script, "", "")));
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

    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = sock.local_addr().expect("local");
    let to: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let r = udp_exchange(
        &sock,
        to,
        &options_to(&format!("127.0.0.1:{p}"), local, "py-ka"),
        Duration::from_secs(5),
    )
    .expect("keepalive answer");
    assert_eq!(status_of(&r), Some(200));
    assert_eq!(reason_of(&r), "Keepalive");
}

/// `examples/python/stateful.py`: the first target is busy, the failure route (a method
/// named at run time with `t_on_failure`) relays to the X-Fallback target (serial
/// forking), which declines; every branch went through the branch route; the plugin's
/// config reached the script (`kemibox.config`).
#[test]
fn python_stateful_failure_and_branch_routes() {
    let p = free_port();
    let script = repo_root().join("examples/python/stateful.py");
    let kb = start_py(&py_config(
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
    let inv = invite(proxy, addr(&client), addr(&busy), "py-fail", &extra);
    client.send_to(inv.as_bytes(), proxy).expect("send");
    expect(&client, "SIP/2.0 100");
    let (first, from) = expect(&busy, "INVITE ");
    assert_eq!(header(&first, "X-Routing-Version"), Some("t1"), "{first}");
    assert_eq!(header(&first, "X-Branch"), Some("python"), "{first}");
    busy.send_to(answer(&first, 486, "Busy Here", "b").as_bytes(), from)
        .expect("486");
    expect(&busy, "ACK ");
    let (second, from) = expect(&fallback, "INVITE ");
    assert!(
        second.starts_with(&format!("INVITE sip:carol@{} ", addr(&fallback))),
        "{second}"
    );
    assert_eq!(header(&second, "X-Failure-Version"), Some("t1"), "{second}");
    assert_eq!(header(&second, "X-Branch"), Some("python"), "{second}");
    fallback
        .send_to(answer(&second, 603, "Decline", "f").as_bytes(), from)
        .expect("603");
    expect(&fallback, "ACK ");
    let (fin, _) = expect(&client, "SIP/2.0 603");
    assert!(fin.starts_with("SIP/2.0 603 Decline\r\n"), "{fin}");
    assert_eq!(kb.metric("script_errors"), 0, "{}", kb.log_text());
    assert_eq!(kb.metric("wasm_traps"), 0);
}

fn semantics_config(p: u16) -> String {
    one_worker(py_config(
        p,
        &repo_root().join("tests/python/semantics.py"),
        "",
        "modules = [\"sl\", \"tm\", \"maxfwd\", \"kx\", \"textops\"]",
    ))
}

/// Route ends: `KSR.x.exit()` from any depth, `sys.exit()`, the -255 convention,
/// `KSR.x.drop()` for a request and a reply, `KSR.set_drop()`, an exit a script's
/// `except Exception` does not catch, `KSR.route`; app_python3's argument checks and
/// result types, only loaded modules under `KSR`, the `msg` object, state kept by the
/// warm instance, `print` and `mod_init`'s `KSR.info` in the log.
#[test]
fn python_exit_drop_and_conversions() {
    let p = free_port();
    let kb = start_py(&semantics_config(p));
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");

    for (user, reason) in [
        ("exit", "before exit"),
        ("sys-exit", "before sys.exit"),
        ("minus255", "minus 255"),
        ("catch", "not caught"),
        ("route", "named route"),
    ] {
        assert_eq!(answer_to(&sock, proxy, user), (200, reason.to_string()));
        assert!(
            recv(&sock, Duration::from_millis(300)).is_none(),
            "{user}: a reply after the route ended"
        );
    }
    // drop: no reply at all (no 500 either).
    assert!(ask_user(&sock, proxy, "drop", Duration::from_secs(1)).is_none());
    assert_eq!(
        answer_to(&sock, proxy, "set-drop"),
        (200, "marked".to_string())
    );
    // A str where an int is expected: logged, False; a bool is an int.
    assert_eq!(
        answer_to(&sock, proxy, "args"),
        (202, "bad=False True".to_string())
    );
    assert_eq!(
        answer_to(&sock, proxy, "modules"),
        (
            200,
            "True,False,True,False,None,False,OPTIONS,int,OPTIONS,True,False".to_string()
        )
    );
    let (code, reason) = answer_to(&sock, proxy, "counter");
    assert_eq!(code, 200);
    let count: u32 = reason
        .strip_prefix("count ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(count >= 8, "the warm instance keeps its state: {reason}");
    assert_eq!(answer_to(&sock, proxy, "print"), (200, "printed".into()));
    let log = kb.log_text();
    assert!(log.contains("print from python 7"), "{log}");
    assert!(log.contains("semantics: mod_init"), "{log}");
    assert!(log.contains("semantics: child_init(1)"), "{log}");
    assert!(
        log.contains("non-number parameter - func: KSR.sl.sl_send_reply idx: 0 argc: 2"),
        "{log}"
    );

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

/// An uncaught Python exception: the request gets 500, the log has app_python3's
/// "Unhandled exception" with the traceback (script file, line, source line), the trap
/// is counted, and the next request is answered by a fresh instance (state starts over).
#[test]
fn python_uncaught_exception_answers_500_with_the_traceback() {
    let p = free_port();
    let kb = start_py(&semantics_config(p));
    let proxy: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    assert_eq!(answer_to(&sock, proxy, "counter"), (200, "count 1".into()));
    let t = Instant::now();
    let (code, _) = answer_to(&sock, proxy, "throw");
    assert_eq!(code, 500, "{}", kb.log_text());
    assert!(t.elapsed() < Duration::from_secs(2));
    let log = kb.log_text();
    for want in [
        "apy_exec: ksr_request_route(None): Unhandled exception in the Python code:",
        "Traceback (most recent call last):",
        "File \"semantics.py\", line 76, in ksr_request_route",
        "File \"semantics.py\", line 19, in thrower",
        "raise ValueError(\"kaboom from python: \" + what)",
        "ValueError: kaboom from python: throw",
    ] {
        assert!(log.contains(want), "{want}\n{log}");
    }
    // The runtime's own frames are not in the traceback.
    assert!(!log.contains("kemibox.py"), "{log}");
    assert_eq!(kb.metric("wasm_traps"), 1);
    assert!(kb.metric("script_errors") >= 1);
    assert_eq!(answer_to(&sock, proxy, "counter"), (200, "count 1".into()));

    // An exception in the reply route is logged with its traceback and counted too.
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
    while !kb.log_text().contains("kaboom from python: reply") {
        assert!(Instant::now() < deadline, "{}", kb.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(kb
        .log_text()
        .contains("apy_exec: ksr_reply_route(None): Unhandled exception"));
    assert_eq!(kb.metric_settled("wasm_traps", 2), 2);
}

/// A script that does not load: `kemibox check` refuses it with the reason.
#[test]
fn python_script_without_mod_init_is_refused() {
    let dir = scratch_dir("py-bad");
    let script = dir.join("no_mod_init.py");
    std::fs::write(
        &script,
        "import KSR\n\nclass R:\n    def ksr_request_route(self, msg):\n        pass\n",
    )
    .expect("write script");
    let out = dir.join("no_mod_init.wasm");
    let o = run_bounded(
        Command::new(kemibox_bin())
            .args(["plugin", "build"])
            .arg(&script)
            .arg("-o")
            .arg(&out),
        Duration::from_secs(300),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = dir.join("check.toml");
    std::fs::write(
        &cfg,
        format!(
            "[core]\nlisten = [\"udp:127.0.0.1:{}\"]\n[routing]\nengine = \"wasm\"\nplugin = \"{}\"\n\
cache_dir = \"{}\"\n",
            free_port(),
            out.display(),
            cache_dir().display()
        ),
    )
    .expect("write config");
    let o = run_bounded(
        Command::new(kemibox_bin()).args(["check", "-c"]).arg(&cfg),
        Duration::from_secs(600),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("no_mod_init.py: no function mod_init"),
        "{err}"
    );

    // A script whose top level fails does not build, with the Python error.
    std::fs::write(&script, "import KSR\nKSR.info('at build time')\n").expect("write");
    let o = run_bounded(
        Command::new(kemibox_bin())
            .args(["plugin", "build"])
            .arg(&script)
            .arg("-o")
            .arg(&out),
        Duration::from_secs(300),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("AttributeError"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `examples/basic-kemi/kemibox.toml` switched to the wasm engine and the plugin built
/// from Kamailio's `kamailio-basic-kemi-python.py`, unmodified. That script calls
/// `KSR.nathelper` and `KSR.permissions` without testing for them, so those modules are
/// added. Keepalive, REGISTER challenge and credentials, and a call to the registered
/// user through the script's branch, onreply and failure routes.
#[test]
fn kamailio_basic_python_script_unmodified() {
    let script = PathBuf::from(PYTHON_SCRIPT);
    assert!(
        script.is_file(),
        "{PYTHON_SCRIPT} is missing: apt-get install kamailio"
    );
    let p = free_port();
    let dir = scratch_dir("basic-python");
    let db = basic_example::create_db(&dir);
    let routing = format!(
        "engine = \"wasm\"\nplugin = \"{}\"\ncache_dir = \"{}\"",
        py_plugin(&script).display(),
        cache_dir().display()
    );
    let kb = start_py(&basic_example::config(p, &db, &routing));
    basic_example::play(&kb, p, "py");
    let log = kb.log_text();
    assert!(log.contains("===== from Python mod init"), "{log}");
    assert_eq!(kb.metric("script_errors"), 0, "{log}");
    assert_eq!(kb.metric("wasm_traps"), 0);
    drop(kb);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Engine `python-wasm`: the config names a `.py` script, which kemibox builds into a
/// component itself (componentize-py with its Python runtime, as `kemibox plugin build`
/// does) and keeps in `cache_dir`; `routing.load` of another `.py` builds and swaps it.
#[test]
fn python_wasm_engine_builds_the_script_and_routing_load_swaps_a_py() {
    let script = |version: &str| {
        format!(
            "import KSR as KSR\n\n\ndef mod_init():\n    return Routes()\n\n\nclass Routes:\n    \
             def ksr_request_route(self, msg):\n        \
             KSR.sl.sl_send_reply(200, \"version {version} \" + KSR.pv.get(\"$rm\"))\n        \
             return 1\n"
        )
    };
    let p = free_port();
    let dir = scratch_dir("python-wasm");
    let (a, b) = (dir.join("a.py"), dir.join("b.py"));
    std::fs::write(&a, script("a")).expect("a.py");
    std::fs::write(&b, script("b")).expect("b.py");
    // A cache of this test's own: the build on load below must not find b's component.
    let cache = dir.join("cache");
    let cfg = format!(
        "[core]\nlisten = [\"udp:127.0.0.1:{p}\"]\negress_allow = [\"127.0.0.0/8\"]\nworkers = 1\n\
modules = [\"sl\", \"kx\"]\n[dns]\nhosts_only = true\n\
[routing]\nengine = \"python-wasm\"\nscript = \"{}\"\ncache_dir = \"{}\"\n\
[routing.limits]\ndeadline_ms = 500\nmemory_mb = 64\n",
        a.display(),
        cache.display()
    );
    // `kemibox check` builds and compiles a.py into the cache, as an operator would.
    precompile(&cfg);
    let built: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python-"))
        .collect();
    assert_eq!(built.len(), 1, "one component built into the cache");
    let kb = Kemibox::start_in(dir.clone(), &cfg, "");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = sock.local_addr().expect("local");
    let to: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
    let ask = |tag: &str| {
        let r = udp_exchange(
            &sock,
            to,
            &options_to(&format!("127.0.0.1:{p}"), local, tag),
            Duration::from_secs(5),
        )
        .expect("an answer");
        (status_of(&r), reason_of(&r))
    };
    assert_eq!(ask("py-a"), (Some(200), "version a OPTIONS".to_string()));

    let t = Instant::now();
    let r = kb.rpc(
        "routing.load",
        serde_json::json!({"path": b.display().to_string()}),
    );
    assert_eq!(r["result"]["current"]["engine"], "python-wasm", "{r}");
    println!("routing.load of b.py (build + compile): {:?}", t.elapsed());
    assert_eq!(ask("py-b"), (Some(200), "version b OPTIONS".to_string()));
    assert_eq!(kb.metric("wasm_traps"), 0);

    // A script that does not compile is refused with its line; b keeps routing.
    let bad = dir.join("bad.py");
    std::fs::write(&bad, "import KSR as KSR\n\ndef mod_init(:\n    pass\n").expect("bad.py");
    let r = kb.rpc(
        "routing.load",
        serde_json::json!({"path": bad.display().to_string()}),
    );
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("SyntaxError") || msg.contains("line 3"), "{r}");
    assert_eq!(ask("py-b2"), (Some(200), "version b OPTIONS".to_string()));
}
