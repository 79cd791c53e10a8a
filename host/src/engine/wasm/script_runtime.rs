//! Engines `"lua-wasm"` and `"js-wasm"`: a KSR script run by a runtime component
//! (`plugins/lua`: real Lua 5.4 inside wasm; `plugins/quickjs`: QuickJS) as an ordinary
//! wasm plugin whose config is the script. Engine `"python-wasm"`: a Python script built
//! into its own component when it loads.

use crate::config::Config;

use super::{Plugin, WasmError};

/// The config string the runtime's `init` gets: `@<path>` on the first line (the chunk
/// name, so errors read `file:line:`), then the script's source.
pub fn runtime_config(path: &std::path::Path, source: &str) -> String {
    format!("@{}\n{source}", path.display())
}

/// Finds the runtime component of `engine` and compiles it (with the engine's compile
/// cache when `cache_dir` is set) for the script `source` read from `script`.
pub fn load_script(
    cfg: &Config,
    engine: &str,
    script: &std::path::Path,
    source: &str,
) -> Result<Plugin, WasmError> {
    let runtime = cfg.runtime_path(engine).map_err(|err| WasmError::Load {
        path: script.display().to_string(),
        err,
    })?;
    tracing::info!(
        "{engine}: running {} on {}",
        script.display(),
        runtime.display()
    );
    let cache = cfg.routing.cache_dir.as_ref().map(|d| cfg.resolve(d));
    Plugin::load_cached(
        &runtime,
        &runtime_config(script, source),
        cfg.wasm_limits(),
        cache.as_deref(),
    )
}

/// Engine `"python-wasm"`: the script built into a component by componentize-py with
/// kemibox's Python runtime (as `kemibox plugin build` does, ~7 s) when it loads, then
/// compiled like any plugin. With `cache_dir` the component is kept there by the hash of
/// the script and the runtime, so a restart or a reload of the same script builds nothing.
pub fn load_python(
    cfg: &Config,
    script: &std::path::Path,
    source: &[u8],
) -> Result<Plugin, WasmError> {
    use crate::plugin_build as pb;
    use sha2::Digest;
    let fail = |err: String| WasmError::Load {
        path: script.display().to_string(),
        err,
    };
    let mut h = sha2::Sha256::new();
    for part in [
        source,
        pb::PY_RUNTIME.as_bytes(),
        pb::PY_KSR.as_bytes(),
        pb::WIT.as_bytes(),
        pb::COMPONENTIZE_PY_VERSION.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let key: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let cache = cfg.routing.cache_dir.as_ref().map(|d| cfg.resolve(d));
    let (out, keep) = match &cache {
        Some(d) => (d.join(format!("python-{key}.wasm")), true),
        None => (
            std::env::temp_dir().join(format!("kemibox-python-{}-{key}.wasm", std::process::id())),
            false,
        ),
    };
    if !out.is_file() {
        if let Some(d) = &cache {
            std::fs::create_dir_all(d).map_err(|e| fail(format!("{}: {e}", d.display())))?;
        }
        tracing::info!(
            "python-wasm: building {} (componentize-py)",
            script.display()
        );
        pb::build_py(script, &out, None).map_err(|e| fail(format!("{e:#}")))?;
    }
    let bytes = std::fs::read(&out).map_err(|e| fail(format!("{}: {e}", out.display())));
    if !keep {
        let _ = std::fs::remove_file(&out);
    }
    Plugin::from_bytes(script, &bytes?, "", cfg.wasm_limits(), cache.as_deref())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;

    use super::super::tests::plugin_wasm;
    use super::*;
    use crate::engine::Outcome;
    use crate::kemi::{Ctx, Env, RecvInfo, RouteKind};
    use crate::net::Proto;
    use crate::sip::Message;
    use crate::testutil::Recorder;

    /// The lua-wasm runtime running `script` (written to `s.lua`) and an environment
    /// recording what is sent.
    fn setup(script: &str) -> (Arc<Env>, Arc<Recorder>, Arc<Plugin>) {
        setup_on("lua-wasm", "s.lua", script)
    }

    /// Runtime `engine` running `script` (written to `file`; the runtime component is
    /// found in the source tree's build) and an environment recording what is sent.
    fn setup_on(engine: &str, file: &str, script: &str) -> (Arc<Env>, Arc<Recorder>, Arc<Plugin>) {
        let (env, rec) = crate::testutil::env(
            &["udp:127.0.0.1:5060"],
            &["sl", "maxfwd", "kx", "textops", "tm"],
            "",
        );
        let path = env.cfg.base_dir.join(file);
        std::fs::write(&path, script).expect("write");
        // Builds the plugins workspace (both runtimes) once per test run.
        plugin_wasm("kemibox_lua");
        let plugin = Arc::new(load_script(&env.cfg, engine, &path, script).expect("runtime loads"));
        (env, rec, plugin)
    }

    fn request(env: &Arc<Env>) -> Ctx {
        request_to(env, "bob")
    }

    fn request_to(env: &Arc<Env>, user: &str) -> Ctx {
        let text = format!("OPTIONS sip:{user}@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
        let msg = Message::parse(Bytes::from(text)).expect("parse");
        let rcv = RecvInfo {
            proto: Proto::Udp,
            src: "127.0.0.1:5070".parse().expect("a"),
            local: "127.0.0.1:5060".parse().expect("a"),
            conn: None,
        };
        Ctx::new(env.clone(), msg, rcv, RouteKind::Request)
    }

    /// First lines of what was sent since the last call.
    fn replies(rec: &Recorder) -> Vec<String> {
        rec.sent
            .lock()
            .expect("lock")
            .drain(..)
            .map(|(_, d)| {
                String::from_utf8_lossy(&d)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    const RQ: &str = crate::proxy::pipeline::REQUEST_ROUTE;

    /// Runs the request route, returning the context, the outcome and the replies sent.
    fn run(script: &str) -> (Ctx, Outcome, Vec<String>) {
        let (env, rec, p) = setup(script);
        let (c, out) = p.run(&env, request(&env), RQ);
        (c, out, replies(&rec))
    }

    #[test]
    fn exit_from_nested_calls_pcall_error_and_loaded_modules_only() {
        let (_, out, sent) = run(r#"
local function deep(n)
    if n == 0 then
        KSR.sl.sl_send_reply(200, "first")
        KSR.x.exit()
        KSR.sl.sl_send_reply(500, "after exit")
    end
    deep(n - 1)
end
function ksr_request_route()
    if KSR.sanity ~= nil or KSR.nathelper then KSR.sl.sl_send_reply(500, "not loaded but visible") end
    if not KSR.maxfwd or not KSR.tm then KSR.sl.sl_send_reply(500, "loaded but missing") end
    local ok, e = pcall(error, { code = 42 })
    if ok or e.code ~= 42 then KSR.sl.sl_send_reply(500, "pcall table error") end
    local ok2, e2 = pcall(function() local t = nil; return t.x end)
    if ok2 or not tostring(e2):find("s.lua:15:", 1, true) then KSR.sl.sl_send_reply(500, "pcall runtime error " .. tostring(e2)) end
    -- an exit caught by the script's own pcall, as in Kamailio
    local ok3, e3 = pcall(KSR.x.exit)
    if ok3 or tostring(e3) ~= "~~ksr~exit~~" then KSR.sl.sl_send_reply(500, "pcall exit") end
    deep(20)
    KSR.sl.sl_send_reply(500, "after deep")
end
"#);
        assert_eq!(out, Outcome::Done);
        assert_eq!(sent, vec!["SIP/2.0 200 first"]);
    }

    #[test]
    fn string_library_coroutines_and_return_conventions() {
        let (_, out, sent) = run(r#"
function ksr_request_route()
    local parts = {}
    for w in string.gmatch("alice@example.com;tag=1", "[^@;]+") do parts[#parts + 1] = w end
    local s = string.format("%s|%d|%s|%s", parts[2], #parts, ("x"):rep(3), string.upper(KSR.kx.get_method()))
    s = s .. "|" .. select(1, string.gsub("a.b.c", "%.", "-")) .. "|" .. string.byte("A")
    local co = coroutine.wrap(function(a)
        local b = coroutine.yield(a + 1)
        local ok, e = pcall(function() error("in coroutine") end)
        coroutine.yield(ok and "no" or "caught")
        return b * 2
    end)
    s = s .. "|" .. co(1) .. "|" .. co(5) .. "|" .. co()
    -- a function without result: false without parameters, 0 with
    if KSR.set_drop and KSR.info("x") ~= 0 then s = "info not 0" end
    if KSR.pv.get("$avp(none)") ~= nil then s = "null not nil" end
    if KSR.pv.get("$sp") ~= 5070 or KSR.pv.get("$rU") ~= "bob" then s = "pv" end
    -- app_lua's conversions: a number string for an int, an int for a string
    KSR.sl.sl_send_reply("200", s)
end
"#);
        assert_eq!(out, Outcome::Done);
        assert_eq!(
            sent,
            vec!["SIP/2.0 200 example.com|3|xxx|OPTIONS|a-b-c|65|2|caught|10"]
        );
    }

    #[test]
    fn drop_marks_the_message_and_ends_the_route() {
        let (c, out, sent) = run(
            "function ksr_request_route()\n  KSR.x.drop()\n  KSR.sl.sl_send_reply(500, 'after drop')\nend\n",
        );
        assert_eq!(out, Outcome::Done);
        assert!(c.drop);
        assert!(sent.is_empty(), "{sent:?}");
    }

    #[test]
    fn io_and_os_reach_nothing_outside_the_sandbox() {
        let (_, out, sent) = run(r#"
function ksr_request_route()
    local r = {}
    r[#r + 1] = tostring(io.open("/etc/passwd", "r"))
    r[#r + 1] = tostring(io.open("s.lua", "r"))
    r[#r + 1] = tostring(os.getenv("HOME"))
    r[#r + 1] = tostring(os.remove("/tmp"))
    r[#r + 1] = tostring((pcall(os.exit, 1)))
    local ok, p = pcall(io.popen, "id")
    r[#r + 1] = tostring(ok and p ~= nil)
    r[#r + 1] = tostring((os.execute("id")))
    r[#r + 1] = tostring((pcall(require, "socket")))
    KSR.sl.sl_send_reply(200, table.concat(r, ","))
end
"#);
        assert_eq!(out, Outcome::Done);
        assert_eq!(
            sent,
            vec!["SIP/2.0 200 nil,nil,nil,nil,false,false,nil,false"]
        );
    }

    /// A runtime error: the route ends with an error (the pipeline answers 500), the log
    /// names the script's file and line, and the next message gets a working instance.
    #[test]
    fn runtime_error_names_file_and_line_and_the_worker_recovers() {
        let (env, rec, p) = setup(
            "local n = 0\nfunction ksr_request_route()\n  n = n + 1\n  if KSR.pv.get('$rU') == 'bob' then\n    local t = nil\n    return t.x\n  end\n  KSR.sl.sl_send_reply(200, 'n=' .. n)\nend\n",
        );
        let ((_, out), text) = logged(|| p.run(&env, request(&env), RQ));
        assert!(matches!(out, Outcome::Error(_)), "{out:?}");
        assert!(text.contains("s.lua:6: attempt to index"), "{text}");
        assert!(text.contains("stack traceback"), "{text}");
        assert!(replies(&rec).is_empty());
        // A fresh instance: the Lua state is built again, so n starts over.
        for _ in 0..2 {
            let (_, out) = p.run(&env, request_to(&env, "alice"), RQ);
            assert_eq!(out, Outcome::Done);
        }
        assert_eq!(replies(&rec), vec!["SIP/2.0 200 n=1", "SIP/2.0 200 n=2"]);
    }

    /// Runs `f` with the log captured: its result and what it logged.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        let log = Arc::new(Mutex::new(Vec::<u8>::new()));
        let log2 = log.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || LogBuf(log2.clone()))
            .with_ansi(false)
            .finish();
        let r = tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8_lossy(&log.lock().expect("lock")).to_string();
        (r, text)
    }

    struct LogBuf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut g) = self.0.lock() {
                g.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn named_routes_and_load_errors() {
        let (env, rec, p) = setup(
            "function ksr_request_route() KSR.route('helper') end\n\
             function helper() KSR.sl.sl_send_reply(404, 'helper') end\n\
             function failure_route_x() KSR.sl.sl_send_reply(302, 'failure') end\n",
        );
        let (_, out) = p.run(&env, request(&env), RQ);
        assert_eq!(out, Outcome::Done);
        assert_eq!(replies(&rec), vec!["SIP/2.0 404 helper"]);
        let (_, out) = p.run(&env, request(&env), "failure_route_x");
        assert_eq!(out, Outcome::Done);
        assert_eq!(replies(&rec), vec!["SIP/2.0 302 failure"]);
        let (_, out) = p.run(&env, request(&env), "no_such_route");
        assert_eq!(out, Outcome::Missing);
        // A syntax error or no request route refuses the script at init.
        let (env, _, p) = setup("function ksr_request_route()\n  if then\nend\n");
        let e = p.instantiate(&env).err().expect("refused");
        assert!(e.contains("s.lua:2:"), "{e}");
        let (env, _, p) = setup("function other() end\n");
        let e = p.instantiate(&env).err().expect("refused");
        assert!(e.contains("no function ksr_request_route"), "{e}");
    }

    // Engine js-wasm: the same conventions, app_jsdt's way.

    fn run_js(script: &str) -> (Ctx, Outcome, Vec<String>) {
        let (env, rec, p) = setup_on("js-wasm", "s.js", script);
        let (c, out) = p.run(&env, request(&env), RQ);
        (c, out, replies(&rec))
    }

    #[test]
    fn js_exit_from_nested_calls_try_catch_and_loaded_modules_only() {
        let (_, out, sent) = run_js(
            r#"
function deep(n) {
    if (n === 0) {
        KSR.sl.sl_send_reply(200, "first");
        KSR.x.exit();
        KSR.sl.sl_send_reply(500, "after exit");
    }
    deep(n - 1);
}
function ksr_request_route() {
    if (KSR.sanity !== undefined || KSR.nathelper) KSR.sl.sl_send_reply(500, "not loaded but visible");
    if (!KSR.maxfwd || !KSR.tm || KSR_tm !== KSR.tm) KSR.sl.sl_send_reply(500, "loaded but missing");
    try { throw { code: 42 }; } catch (e) { if (e.code !== 42) KSR.sl.sl_send_reply(500, "thrown object"); }
    try { null.x; KSR.sl.sl_send_reply(500, "no TypeError"); } catch (e) {
        if (!(e instanceof TypeError)) KSR.sl.sl_send_reply(500, "not a TypeError " + e);
    }
    // an exit caught by the script's own try, as in Kamailio
    try { KSR.x.exit(); } catch (e) { if (e !== "~~ksr~exit~~") KSR.sl.sl_send_reply(500, "caught exit " + e); }
    deep(20);
    KSR.sl.sl_send_reply(500, "after deep");
}
"#,
        );
        assert_eq!(out, Outcome::Done);
        assert_eq!(sent, vec!["SIP/2.0 200 first"]);
    }

    /// Arguments and results converted as app_jsdt (duktape) does, and the language
    /// itself (closures, regular expressions, JSON, modern syntax).
    #[test]
    fn js_conversions_and_the_language() {
        let (_, out, sent) = run_js(
            r#"
function ksr_request_route() {
    const r = [];
    r.push(KSR.pv.get("$avp(none)") === null);          // xval none: null
    r.push(KSR.pv.get("$sp") === 5070);                  // int
    r.push(KSR.pv.get("$rU"));                           // str
    r.push(KSR.info("x\n") === undefined);               // no result
    r.push(KSR.pv.is_null("$avp(none)"));                // a boolean
    r.push(KSR.maxfwd.process_maxfwd("10"));             // a number string for an int
    r.push(KSR.hdr.is_present() === false);              // no arguments for a parameter: false
    let e = "";
    try { KSR.textops.replace("a"); } catch (x) { e = x.name; }
    r.push(e);                                           // too few: a RangeError
    const m = /^sip:([^@]+)@(.*)$/.exec(KSR.pv.get("$ru"));
    const { user, host } = { user: m[1], host: m[2].split(":")[0] };
    r.push(`${user}@${host}`, JSON.stringify({ a: [1, 2] }), [3, 1, 2].sort().join(""));
    console.log("console", "works");
    KSR.sl.sl_send_reply("200", r.join("|"));
}
"#,
        );
        assert_eq!(out, Outcome::Done);
        assert_eq!(
            sent,
            vec![
                r#"SIP/2.0 200 true|true|bob|true|true|1|true|RangeError|bob@127.0.0.1|{"a":[1,2]}|123"#
            ]
        );
    }

    /// Runaway recursion: QuickJS has no stack limit of its own on WASI, so the engine's
    /// stack limit traps the instance: that message gets the error reply (500), the
    /// worker's next message a fresh instance.
    /// Runs `script` on js-wasm: the request to each user of `bad` fails with an error
    /// containing its text and gets no reply; then the request to alice is answered
    /// "200 fine" by the same plugin (the failure cost its message only).
    fn js_costs_its_message_only(script: &str, bad: &[(&str, &str)]) {
        let (env, rec, p) = setup_on("js-wasm", "s.js", script);
        for (user, why) in bad {
            let (_, out) = p.run(&env, request_to(&env, user), RQ);
            assert!(
                matches!(&out, Outcome::Error(e) if e.contains(why)),
                "{user}: {out:?}"
            );
        }
        assert!(replies(&rec).is_empty());
        let (_, out) = p.run(&env, request_to(&env, "alice"), RQ);
        assert_eq!(out, Outcome::Done);
        assert_eq!(replies(&rec), vec!["SIP/2.0 200 fine"]);
    }

    /// An argument whose conversion throws (a `toString` that throws) is a JS exception
    /// the script can catch; the arguments after it are not converted.
    #[test]
    fn js_argument_conversion_that_throws_is_catchable() {
        let (_, out, replies) = run_js(
            "function ksr_request_route() {\n\
               const bad = { toString() { throw new Error('boom'); } };\n\
               const spy = { toString() { KSR.sl.sl_send_reply(500, 'second converted'); return 'x'; } };\n\
               try { KSR.pv.sets(bad, spy); } catch (e) { KSR.sl.sl_send_reply(200, 'caught ' + e.message); }\n\
             }\n",
        );
        assert_eq!(out, Outcome::Done);
        assert_eq!(replies, vec!["SIP/2.0 200 caught boom"]);
    }

    #[test]
    fn js_runaway_recursion_costs_its_message_only() {
        js_costs_its_message_only(
            "function f(n) { return f(n + 1) + 1; }\n\
             function ksr_request_route() {\n\
               if (KSR.pv.get('$rU') == 'bob') { try { f(0); } catch (e) {} }\n\
               KSR.sl.sl_send_reply(200, 'fine');\n\
             }\n",
            &[("bob", "call stack exhausted")],
        );
    }

    /// A memory bomb: QuickJS's allocation fails at the instance's memory limit, the
    /// uncaught out-of-memory error costs that message the error reply, the next one gets
    /// a working instance.
    #[test]
    fn js_memory_bomb_costs_its_message_only() {
        js_costs_its_message_only(
            "function ksr_request_route() {\n\
               if (KSR.pv.get('$rU') == 'bob') { const a = []; for (;;) a.push(new Array(100000).fill(1)); }\n\
               KSR.sl.sl_send_reply(200, 'fine');\n\
             }\n",
            &[("bob", "")],
        );
    }

    /// An endless loop hits the route deadline; a flood of KEMI calls the host-call
    /// budget: each costs its message only.
    #[test]
    fn js_endless_loop_and_host_call_flood_cost_their_message_only() {
        js_costs_its_message_only(
            "function ksr_request_route() {\n\
               const u = KSR.pv.get('$rU');\n\
               if (u == 'loop') { for (;;) {} }\n\
               if (u == 'flood') { for (;;) KSR.is_OPTIONS(); }\n\
               KSR.sl.sl_send_reply(200, 'fine');\n\
             }\n",
            &[("loop", "deadline"), ("flood", "host-call budget")],
        );
    }

    #[test]
    fn js_drop_marks_the_message_and_ends_the_route() {
        let (c, out, sent) = run_js(
            "function ksr_request_route() {\n  KSR.x.drop();\n  KSR.sl.sl_send_reply(500, 'after drop');\n}\n",
        );
        assert_eq!(out, Outcome::Done);
        assert!(c.drop);
        assert!(sent.is_empty(), "{sent:?}");
    }

    /// No host access from JS: no `std`/`os` modules, no `require`, no network.
    #[test]
    fn js_reaches_nothing_outside_the_sandbox() {
        let (_, out, sent) = run_js(
            r#"
function ksr_request_route() {
    const names = ["std", "os", "require", "process", "fetch", "XMLHttpRequest", "WebAssembly"];
    KSR.sl.sl_send_reply(200, names.map(n => typeof globalThis[n]).join(","));
}
"#,
        );
        assert_eq!(out, Outcome::Done);
        assert_eq!(
            sent,
            vec![
                "SIP/2.0 200 undefined,undefined,undefined,undefined,undefined,undefined,undefined"
            ]
        );
    }

    /// An uncaught exception: the route ends with an error (the pipeline answers 500), the
    /// log has the JS stack naming the script's file and line, the next message gets a
    /// fresh instance.
    #[test]
    fn js_uncaught_exception_logs_its_stack_and_the_worker_recovers() {
        let (env, rec, p) = setup_on(
            "js-wasm",
            "s.js",
            "var n = 0;\nfunction ksr_request_route() {\n  n++;\n  if (KSR.pv.get('$rU') == 'bob') {\n    null.x;\n  }\n  KSR.sl.sl_send_reply(200, 'n=' + n);\n}\n",
        );
        let ((_, out), text) = logged(|| p.run(&env, request(&env), RQ));
        assert!(matches!(out, Outcome::Error(_)), "{out:?}");
        assert!(text.contains("error stack from js: TypeError"), "{text}");
        assert!(text.contains("s.js:5"), "{text}");
        assert!(
            text.contains("error executing: ksr_request_route"),
            "{text}"
        );
        assert!(replies(&rec).is_empty());
        for _ in 0..2 {
            let (_, out) = p.run(&env, request_to(&env, "alice"), RQ);
            assert_eq!(out, Outcome::Done);
        }
        assert_eq!(replies(&rec), vec!["SIP/2.0 200 n=1", "SIP/2.0 200 n=2"]);
    }

    #[test]
    fn js_named_routes_and_load_errors() {
        let (env, rec, p) = setup_on(
            "js-wasm",
            "s.js",
            "function ksr_request_route() { KSR.route('helper'); }\n\
             function helper() { KSR.sl.sl_send_reply(404, 'helper'); }\n\
             function failure_route_x() { KSR.sl.sl_send_reply(302, 'failure'); }\n",
        );
        let (_, out) = p.run(&env, request(&env), RQ);
        assert_eq!(out, Outcome::Done);
        assert_eq!(replies(&rec), vec!["SIP/2.0 404 helper"]);
        let (_, out) = p.run(&env, request(&env), "failure_route_x");
        assert_eq!(out, Outcome::Done);
        assert_eq!(replies(&rec), vec!["SIP/2.0 302 failure"]);
        let (_, out) = p.run(&env, request(&env), "no_such_route");
        assert_eq!(out, Outcome::Missing);
        // A syntax error or no request route refuses the script at init.
        let (env, _, p) = setup_on(
            "js-wasm",
            "s.js",
            "function ksr_request_route() {\n  if (\n}\n",
        );
        let e = p.instantiate(&env).err().expect("refused");
        assert!(e.contains("SyntaxError") && e.contains("s.js:3"), "{e}");
        let (env, _, p) = setup_on("js-wasm", "s.js", "function other() {}\n");
        let e = p.instantiate(&env).err().expect("refused");
        assert!(e.contains("no function ksr_request_route"), "{e}");
    }
}
