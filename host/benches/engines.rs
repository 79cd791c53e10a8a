//! Cost of one request route with the same stateless logic on each engine: the `forward`
//! plugin on a warm wasm instance vs the equivalent Lua script on mlua, over a sink
//! network (3 KEMI calls: maxfwd.process_maxfwd, forward, and the send). Also a fresh
//! wasm instance with `init`, and the parse + context baseline every route pays.
//!
//! The same Lua script also runs on engine `lua-wasm` (Lua 5.4 inside the `plugins/lua`
//! runtime component), plus a variant ending every route with `KSR.x.exit()` on both
//! Lua engines; the lua-wasm load (compile), instantiation + `init` and first call are
//! printed once.
//!
//! The same logic in JavaScript (`JS`) runs on engine `js-wasm` (QuickJS inside the
//! `plugins/quickjs` runtime component, the script given at `init`), and built into a
//! component with `kemibox plugin build` (componentize-js and the KSR shim of `plugins/js`).
//!
//! And in Python (`PY`, Kamailio app_python3 style, built with `kemibox plugin build`:
//! componentize-py and the runtime of `plugins/python`).
//!
//! The `onsend` group measures the onsend route (issue 4) on each engine: the message
//! carries its routing version, as in the server, which has no onsend route (one flag read
//! per send) or a trivial one reading `$snd(ip)`.
//!
//! Run with `cargo bench -p kemibox --bench engines` (builds `plugins/` for wasm32-wasip2,
//! the JS plugin with plugins/js/node_modules: `npm ci` there first, and the Python
//! plugin with componentize-py: `scripts/setup.sh` installs it).

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use kemibox::config::Config;
use kemibox::engine::lua::{LuaEngine, Script};
use kemibox::engine::wasm::Plugin;
use kemibox::engine::{Outcome, Routing, Source, Version, ONSEND_ROUTE};
use kemibox::kemi::{Ctx, Env, RecvInfo, RouteKind};
use kemibox::net::{Dest, Listener, Net, Proto, SendError};
use kemibox::sip::Message;
use kemibox::stats::Stats;

struct Sink(Vec<Listener>);

impl Net for Sink {
    fn send(&self, _: &Dest, data: Bytes) -> Result<(), SendError> {
        black_box(data);
        Ok(())
    }
    fn listeners(&self) -> &[Listener] {
        &self.0
    }
    fn resolve(
        &self,
        host: &str,
        port: Option<u16>,
        proto: Option<Proto>,
        _: bool,
    ) -> Result<(Proto, SocketAddr), SendError> {
        let ip = host.parse().map_err(|_| SendError::Resolve(host.into()))?;
        Ok((
            proto.unwrap_or(Proto::Udp),
            SocketAddr::new(ip, port.unwrap_or(5060)),
        ))
    }
}

const LUA: &str = "function ksr_request_route()\n\
  if KSR.maxfwd.process_maxfwd(10) < 0 then KSR.sl.sl_send_reply(483, 'Too Many Hops') KSR.x.exit() end\n\
  if KSR.forward() < 0 then KSR.sl.sl_reply_error() end\n\
end\n";

const JS: &str = "function ksr_request_route() {\n\
  if (KSR.maxfwd.process_maxfwd(10) < 0) { KSR.sl.sl_send_reply(483, 'Too Many Hops'); KSR.x.exit(); }\n\
  if (KSR.forward() < 0) { KSR.sl.sl_reply_error(); }\n\
}\n";

const PY: &str = r#"import KSR

def mod_init():
    return R()

class R:
    def ksr_request_route(self, msg):
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, 'Too Many Hops')
            KSR.x.exit()
        if KSR.forward() < 0:
            KSR.sl.sl_reply_error()
"#;

const MSG: &str = "OPTIONS sip:bob@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

fn plugins() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("plugins/target");
    let st = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(root.join("plugins/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo");
    assert!(st.success());
    target.join("wasm32-wasip2/release")
}

fn ctx(env: &Arc<Env>) -> Ctx {
    let msg = Message::parse(Bytes::from_static(MSG.as_bytes())).expect("parse");
    let rcv = RecvInfo {
        proto: Proto::Udp,
        src: "127.0.0.1:5070".parse().expect("a"),
        local: "127.0.0.1:5060".parse().expect("a"),
        conn: None,
    };
    Ctx::new(env.clone(), msg, rcv, RouteKind::Request)
}

fn engines(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("kemibox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let script = dir.join("fwd.lua");
    std::fs::write(&script, LUA).expect("write");
    let wasm = plugins().join("forward.wasm");
    let js_script = dir.join("fwd.js");
    std::fs::write(&js_script, JS).expect("write");
    let js_wasm = dir.join("fwd-js.wasm");
    kemibox::plugin_build::build_js(&js_script, &js_wasm, &Default::default())
        .expect("JS plugin (npm ci in plugins/js)");
    let src = format!(
        "[core]\nlisten=[\"udp:127.0.0.1:5060\"]\nmodules=[\"sl\",\"maxfwd\"]\n\
         [routing]\nengine=\"lua\"\nscript=\"{}\"\n",
        script.display()
    );
    let cfg = Config::from_str(&src, "b.toml", dir.clone()).expect("config");
    let listeners = vec![Listener {
        proto: Proto::Udp,
        addr: "127.0.0.1:5060".parse().expect("addr"),
        advertise: None,
    }];
    let env = kemibox::server::make_env(
        Arc::new(cfg),
        Arc::new(Sink(listeners)),
        Arc::new(Stats::default()),
    )
    .expect("env");
    let rq = kemibox::proxy::pipeline::REQUEST_ROUTE;

    let mut g = c.benchmark_group("request_route");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("baseline parse+ctx", |b| b.iter(|| black_box(ctx(&env))));

    let mut lua = LuaEngine::new(&Script::read(&script).expect("read"), &env).expect("lua");
    g.bench_function("mlua", |b| {
        b.iter(|| {
            let (_, o) = lua.run(ctx(&env), rq).expect("ctx");
            assert_eq!(o, Outcome::Done);
        })
    });

    let plugin = Arc::new(Plugin::load(&wasm, "", Default::default()).expect("plugin"));
    g.bench_function("wasm warm", |b| {
        b.iter(|| {
            let (_, o) = plugin.run(&env, ctx(&env), rq);
            assert_eq!(o, Outcome::Done);
        })
    });
    let isolated = Arc::new(
        Plugin::load(
            &wasm,
            "",
            kemibox::engine::wasm::Limits {
                per_message: true,
                ..Default::default()
            },
        )
        .expect("plugin"),
    );
    g.bench_function("wasm per-message instance", |b| {
        b.iter(|| {
            let (_, o) = isolated.run(&env, ctx(&env), rq);
            assert_eq!(o, Outcome::Done);
        })
    });
    g.bench_function("wasm fresh instance+init", |b| {
        b.iter(|| black_box(plugin.instantiate(&env).expect("instance")))
    });

    // Engine lua-wasm: the same script inside the Lua runtime component.
    let runtime = plugins().join("kemibox_lua.wasm");
    let lua_wasm = |src: &str| {
        let config = kemibox::engine::wasm::script_runtime::runtime_config(&script, src);
        let t = std::time::Instant::now();
        let p = Arc::new(Plugin::load(&runtime, &config, Default::default()).expect("runtime"));
        (p, t.elapsed())
    };
    let (lw, compile) = lua_wasm(LUA);
    let t = std::time::Instant::now();
    let warm = lw.instantiate(&env).expect("instance");
    let inst = t.elapsed();
    drop(warm);
    let t = std::time::Instant::now();
    let (_, o) = lw.run(&env, ctx(&env), rq);
    let first = t.elapsed();
    assert_eq!(o, Outcome::Done);
    eprintln!(
        "lua-wasm: compile {compile:?}, instantiate + init {inst:?}, first call (with instantiate + init) {first:?}"
    );
    // Kamailio's basic KEMI script (when installed): what a fresh instance costs with a
    // real script (434 lines; tm branch routes run on a fresh instance).
    let basic =
        std::path::Path::new("/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-lua.lua");
    if let Ok(src) = std::fs::read_to_string(basic) {
        let (bp, _) = lua_wasm(&src);
        let mut best = Duration::MAX;
        for _ in 0..50 {
            let t = std::time::Instant::now();
            black_box(bp.instantiate(&env).expect("basic script instance"));
            best = best.min(t.elapsed());
        }
        eprintln!("lua-wasm: Kamailio's basic script, instantiate + init (best of 50) {best:?}");
    }
    g.bench_function("lua-wasm warm", |b| {
        b.iter(|| {
            let (_, o) = lw.run(&env, ctx(&env), rq);
            assert_eq!(o, Outcome::Done);
        })
    });
    g.bench_function("lua-wasm fresh instance+init", |b| {
        b.iter(|| black_box(lw.instantiate(&env).expect("instance")))
    });

    // Engine js-wasm: the JS version of the script inside the QuickJS runtime component.
    let qjs = plugins().join("kemibox_quickjs.wasm");
    let t = std::time::Instant::now();
    let jw = Arc::new(
        Plugin::load(
            &qjs,
            &kemibox::engine::wasm::script_runtime::runtime_config(&js_script, JS),
            Default::default(),
        )
        .expect("JS runtime"),
    );
    let compile = t.elapsed();
    let t = std::time::Instant::now();
    drop(jw.instantiate(&env).expect("instance"));
    let inst = t.elapsed();
    let t = std::time::Instant::now();
    let (_, o) = jw.run(&env, ctx(&env), rq);
    let first = t.elapsed();
    assert_eq!(o, Outcome::Done);
    eprintln!(
        "js-wasm: compile {compile:?}, instantiate + init {inst:?}, first call (with instantiate + init) {first:?}"
    );
    let basic =
        std::path::Path::new("/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-jsdt.js");
    if let Ok(src) = std::fs::read_to_string(basic) {
        let config = kemibox::engine::wasm::script_runtime::runtime_config(basic, &src);
        let bp = Plugin::load(&qjs, &config, Default::default()).expect("JS runtime");
        let mut best = Duration::MAX;
        for _ in 0..50 {
            let t = std::time::Instant::now();
            black_box(bp.instantiate(&env).expect("basic script instance"));
            best = best.min(t.elapsed());
        }
        eprintln!("js-wasm: Kamailio's basic script, instantiate + init (best of 50) {best:?}");
    }
    g.bench_function("js-wasm warm", |b| {
        b.iter(|| {
            let (_, o) = jw.run(&env, ctx(&env), rq);
            assert_eq!(o, Outcome::Done);
        })
    });
    g.bench_function("js-wasm fresh instance+init", |b| {
        b.iter(|| black_box(jw.instantiate(&env).expect("instance")))
    });

    // The same with `KSR.x.exit()` ending every route (the sentinel error path).
    let exit_src = LUA.replace(
        "KSR.sl.sl_reply_error() end\n",
        "KSR.sl.sl_reply_error() end\n  KSR.x.exit()\n",
    );
    assert!(exit_src.contains("KSR.x.exit()\nend"));
    let exit_script = dir.join("exit.lua");
    std::fs::write(&exit_script, &exit_src).expect("write");
    let mut lua_exit =
        LuaEngine::new(&Script::read(&exit_script).expect("read"), &env).expect("lua");
    g.bench_function("mlua exit", |b| {
        b.iter(|| {
            let (_, o) = lua_exit.run(ctx(&env), rq).expect("ctx");
            assert_eq!(o, Outcome::Done);
        })
    });
    let (lw_exit, _) = lua_wasm(&exit_src);
    g.bench_function("lua-wasm exit", |b| {
        b.iter(|| {
            let (_, o) = lw_exit.run(&env, ctx(&env), rq);
            assert_eq!(o, Outcome::Done);
        })
    });
    // The route call alone: an empty ksr_request_route on both Lua engines.
    let empty_src = "function ksr_request_route() end\n";
    let empty_script = dir.join("empty.lua");
    std::fs::write(&empty_script, empty_src).expect("write");
    let mut lua_empty =
        LuaEngine::new(&Script::read(&empty_script).expect("read"), &env).expect("lua");
    g.bench_function("mlua empty route", |b| {
        b.iter(|| {
            let (_, o) = lua_empty.run(ctx(&env), rq).expect("ctx");
            assert_eq!(o, Outcome::Done);
        })
    });
    let (lw_empty, _) = lua_wasm(empty_src);
    g.bench_function("lua-wasm empty route", |b| {
        b.iter(|| {
            let (_, o) = lw_empty.run(&env, ctx(&env), rq);
            assert_eq!(o, Outcome::Done);
        })
    });
    // The cost of a KEMI call itself: 100 per route (50 string-in/int-out
    // `KSR.is_method`, 50 string-in/string-out `KSR.pv.get`), minus the empty route,
    // over 100, is what one call costs on each engine.
    let calls_lua = "function ksr_request_route()\n\
      for i = 1, 50 do KSR.is_method('INVITE'); KSR.pv.get('$ru') end\n\
    end\n";
    let calls_script = dir.join("calls.lua");
    std::fs::write(&calls_script, calls_lua).expect("write");
    let mut lua_calls =
        LuaEngine::new(&Script::read(&calls_script).expect("read"), &env).expect("lua");
    g.bench_function("mlua 100 KEMI calls", |b| {
        b.iter(|| {
            let (_, o) = lua_calls.run(ctx(&env), rq).expect("ctx");
            assert_eq!(o, Outcome::Done);
        })
    });
    let (lw_calls, _) = lua_wasm(calls_lua);
    g.bench_function("lua-wasm 100 KEMI calls", |b| {
        b.iter(|| {
            let (_, o) = lw_calls.run(&env, ctx(&env), rq);
            assert_eq!(o, Outcome::Done);
        })
    });
    let calls_js = "function ksr_request_route() {\n\
      for (let i = 0; i < 50; i++) { KSR.is_method('INVITE'); KSR.pv.get('$ru'); }\n\
    }\n";
    let jw_calls = Arc::new(
        Plugin::load(
            &qjs,
            &kemibox::engine::wasm::script_runtime::runtime_config(&js_script, calls_js),
            Default::default(),
        )
        .expect("JS runtime"),
    );
    g.bench_function("js-wasm 100 KEMI calls", |b| {
        b.iter(|| {
            let (_, o) = jw_calls.run(&env, ctx(&env), rq);
            assert_eq!(o, Outcome::Done);
        })
    });
    let cache = dir.join("cache");
    let t = std::time::Instant::now();
    let js = Arc::new(
        Plugin::load_cached(&js_wasm, "", Default::default(), Some(&cache)).expect("JS plugin"),
    );
    let compile = t.elapsed();
    let t = std::time::Instant::now();
    drop(Plugin::load_cached(&js_wasm, "", Default::default(), Some(&cache)).expect("JS plugin"));
    let cached = t.elapsed();
    let t = std::time::Instant::now();
    let first = js.instantiate(&env).expect("JS instance");
    let instantiate = t.elapsed();
    drop(first);
    let t = std::time::Instant::now();
    let (_, o) = js.run(&env, ctx(&env), rq);
    assert_eq!(o, Outcome::Done);
    let first_call = t.elapsed();
    println!(
        "JS plugin: compile {compile:?}, load from the cache {cached:?}, first instance+init \
         {instantiate:?}, first route call (instance+init+route) {first_call:?}"
    );
    g.bench_function("wasm js warm", |b| {
        b.iter(|| {
            let (_, o) = js.run(&env, ctx(&env), rq);
            assert_eq!(o, Outcome::Done);
        })
    });
    g.bench_function("wasm js fresh instance+init", |b| {
        b.iter(|| black_box(js.instantiate(&env).expect("instance")))
    });

    // The same logic in Python (componentize-py), compiled with and without the cache.
    let py_script = dir.join("fwd.py");
    std::fs::write(&py_script, PY).expect("write");
    let py_wasm = dir.join("fwd-py.wasm");
    let t = std::time::Instant::now();
    kemibox::plugin_build::build_py(&py_script, &py_wasm, None)
        .expect("Python plugin (scripts/setup.sh installs componentize-py)");
    let build = t.elapsed();
    let size = std::fs::metadata(&py_wasm).map(|m| m.len()).unwrap_or(0);
    let t = std::time::Instant::now();
    let py = Arc::new(
        Plugin::load_cached(&py_wasm, "", Default::default(), Some(&cache)).expect("Python plugin"),
    );
    let compile = t.elapsed();
    let t = std::time::Instant::now();
    drop(
        Plugin::load_cached(&py_wasm, "", Default::default(), Some(&cache)).expect("Python plugin"),
    );
    let cached = t.elapsed();
    let t = std::time::Instant::now();
    let first = py.instantiate(&env).expect("Python instance");
    let instantiate = t.elapsed();
    drop(first);
    let t = std::time::Instant::now();
    let (_, o) = py.run(&env, ctx(&env), rq);
    assert_eq!(o, Outcome::Done);
    let first_call = t.elapsed();
    println!(
        "Python plugin: {size} bytes, build {build:?}, compile {compile:?}, load from the \
         cache {cached:?}, first instance+init {instantiate:?}, first route call \
         (instance+init+route) {first_call:?}"
    );
    g.bench_function("wasm python warm", |b| {
        b.iter(|| {
            let (_, o) = py.run(&env, ctx(&env), rq);
            assert_eq!(o, Outcome::Done);
        })
    });
    g.bench_function("wasm python fresh instance+init", |b| {
        b.iter(|| black_box(py.instantiate(&env).expect("instance")))
    });
    g.finish();

    // The onsend route: the same request routes with the message on a routing version
    // that has no onsend route, then one with a trivial route (reads `$snd(ip)`).
    let mut g = c.benchmark_group("onsend");
    g.measurement_time(Duration::from_secs(3));
    let version = |routing: Routing, onsend: bool| {
        Arc::new(Version {
            id: 1,
            routing,
            source: Source {
                engine: "bench".into(),
                path: PathBuf::new(),
                config: String::new(),
            },
            hash: String::new(),
            loaded_at: std::time::SystemTime::now(),
            counters: Arc::default(),
            onsend: std::sync::atomic::AtomicBool::new(onsend),
        })
    };
    let on = |v: &Arc<Version>| {
        let mut c = ctx(&env);
        c.version = Some(v.clone());
        c
    };
    let onsend_lua =
        format!("{LUA}function ksr_onsend_route() local ip = KSR.pv.get('$snd(ip)') end\n");
    let onsend_script = dir.join("onsend.lua");
    std::fs::write(&onsend_script, &onsend_lua).expect("write");
    for (label, path) in [("none", &script), ("trivial", &onsend_script)] {
        let script = Script::read(path).expect("read");
        let mut eng = LuaEngine::new(&script, &env).expect("lua");
        let has = eng.has_route(ONSEND_ROUTE);
        assert_eq!(has, label == "trivial");
        let v = version(Routing::Lua(script), has);
        g.bench_function(format!("mlua onsend {label}"), |b| {
            b.iter(|| {
                let (_, o) = eng.run(on(&v), rq).expect("ctx");
                assert_eq!(o, Outcome::Done);
            })
        });
    }
    for (label, config) in [("none", ""), ("trivial", "onsend")] {
        let p = Arc::new(Plugin::load(&wasm, config, Default::default()).expect("plugin"));
        let v = version(Routing::Wasm(p.clone()), true);
        g.bench_function(format!("wasm onsend {label}"), |b| {
            b.iter(|| {
                let (_, o) = p.run(&env, on(&v), rq);
                assert_eq!(o, Outcome::Done);
            })
        });
    }
    for (label, src) in [("none", LUA.to_string()), ("trivial", onsend_lua.clone())] {
        let (p, _) = lua_wasm(&src);
        let v = version(Routing::Wasm(p.clone()), true);
        g.bench_function(format!("lua-wasm onsend {label}"), |b| {
            b.iter(|| {
                let (_, o) = p.run(&env, on(&v), rq);
                assert_eq!(o, Outcome::Done);
            })
        });
    }
    let js_onsend = dir.join("fwd_onsend.js");
    std::fs::write(
        &js_onsend,
        format!("{JS}function ksr_onsend_route() {{ var ip = KSR.pv.get('$snd(ip)'); }}\n"),
    )
    .expect("write");
    let js_onsend_wasm = dir.join("fwd-js-onsend.wasm");
    kemibox::plugin_build::build_js(&js_onsend, &js_onsend_wasm, &Default::default())
        .expect("JS plugin");
    for (label, path) in [("none", &js_wasm), ("trivial", &js_onsend_wasm)] {
        let p = Arc::new(
            Plugin::load_cached(path, "", Default::default(), Some(&cache)).expect("JS plugin"),
        );
        let v = version(Routing::Wasm(p.clone()), true);
        g.bench_function(format!("wasm js onsend {label}"), |b| {
            b.iter(|| {
                let (_, o) = p.run(&env, on(&v), rq);
                assert_eq!(o, Outcome::Done);
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, engines);
criterion_main!(benches);
