//! Engine tests with the plugins of `plugins/` (built once per test run, in release mode,
//! for wasm32-wasip2).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::kemi::{Ctx, Env, RecvInfo, RouteKind};
use crate::net::Proto;
use crate::sip::Message;
use crate::stats::Stats;
use crate::testutil::Recorder;

/// Builds the plugins workspace once (`cargo build --release --target wasm32-wasip2`)
/// and returns the path of plugin `name`.
pub fn plugin_wasm(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
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
            .expect("run cargo for the plugins");
        assert!(st.success(), "building the plugins failed");
        target.join("wasm32-wasip2/release")
    });
    dir.join(format!("{name}.wasm"))
}

fn env() -> (Arc<Env>, Arc<Recorder>) {
    crate::testutil::env(&["udp:127.0.0.1:5060"], &["sl", "maxfwd"], "")
}

fn request(env: &Arc<Env>, user: &str) -> Ctx {
    let text = format!(
        "OPTIONS sip:{user}@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let msg = Message::parse(Bytes::from(text)).expect("parse");
    let rcv = RecvInfo {
        proto: Proto::Udp,
        src: "127.0.0.1:5070".parse().expect("a"),
        local: "127.0.0.1:5060".parse().expect("a"),
        conn: None,
    };
    Ctx::new(env.clone(), msg, rcv, RouteKind::Request)
}

fn sent(rec: &Recorder) -> Vec<(SocketAddr, String)> {
    rec.sent
        .lock()
        .expect("lock")
        .drain(..)
        .map(|(d, b)| {
            let first = String::from_utf8_lossy(&b)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            (d.addr, first)
        })
        .collect()
}

fn load(name: &str, config: &str, limits: Limits) -> Arc<Plugin> {
    Arc::new(Plugin::load(&plugin_wasm(name), config, limits).expect("plugin loads"))
}

const RQ: &str = crate::proxy::pipeline::REQUEST_ROUTE;

#[test]
fn forward_plugin_forwards_to_ruri_or_configured_destination() {
    let (env, rec) = env();
    let p = load("forward", "", Limits::default());
    let (c, out) = p.run(&env, request(&env, "bob"), RQ);
    assert_eq!(out, Outcome::Done);
    assert!(!c.final_replied);
    let s = sent(&rec);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].0, "127.0.0.1:5080".parse::<SocketAddr>().expect("a"));
    assert!(s[0].1.starts_with("OPTIONS sip:bob@"), "{s:?}");

    let p = load("forward", "sip:127.0.0.1:5099", Limits::default());
    let (_, out) = p.run(&env, request(&env, "bob"), RQ);
    assert_eq!(out, Outcome::Done);
    let s = sent(&rec);
    assert_eq!(s[0].0, "127.0.0.1:5099".parse::<SocketAddr>().expect("a"));
    // A route the plugin does not have.
    let (_, out) = p.run(&env, request(&env, "bob"), "failure_route_x");
    assert_eq!(out, Outcome::Missing);
}

#[test]
fn init_refuses_a_bad_config() {
    let (env, _) = env();
    let p = load("forward", "not a uri", Limits::default());
    let e = p.instantiate(&env).err().expect("refused");
    assert!(e.contains("config must be empty or a SIP URI"), "{e}");
    let h = load("hostile", "no-such-fault", Limits::default());
    assert!(h.instantiate(&env).is_err());
}

fn limits() -> Limits {
    Limits {
        deadline: Duration::from_millis(50),
        memory: 16 << 20,
        host_calls: 1000,
        ..Limits::default()
    }
}

/// Runs the hostile plugin `mode`: the request gets an error (the pipeline answers
/// 500), the counter moves, and the next request on the same worker is served.
fn hostile(mode: &str, counter: fn(&Stats) -> u64, reason: &str) {
    let (env, rec) = env();
    let p = load("hostile", mode, limits());
    let t = Instant::now();
    let (_, out) = p.run(&env, request(&env, "bad"), RQ);
    let took = t.elapsed();
    match &out {
        Outcome::Error(e) => assert!(e.contains(reason), "{mode}: {e}"),
        o => panic!("{mode}: {o:?}"),
    }
    assert_eq!(counter(&env.stats), 1, "{mode}");
    assert!(took < Duration::from_secs(2), "{mode} took {took:?}");
    sent(&rec);
    for _ in 0..3 {
        let (_, out) = p.run(&env, request(&env, "ok"), RQ);
        assert_eq!(out, Outcome::Done, "{mode}: next request");
        let s = sent(&rec);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].1, "SIP/2.0 200 OK");
    }
    assert_eq!(counter(&env.stats), 1, "{mode}");
}

#[test]
fn hostile_stack_overflow_is_contained() {
    hostile("stack", |s| get(&s.wasm_traps), "trap");
}

/// The generic indexed interface reaches the same registry functions, and an exit
/// returned by `kemi.call` ends the route without a trap.
#[test]
fn generic_interface_calls_by_index_and_exits() {
    let (env, rec) = env();
    let p = load("hostile", "trap", limits());
    let (_, out) = p.run(&env, request(&env, "generic"), RQ);
    assert_eq!(out, Outcome::Done);
    let s = sent(&rec);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].1, "SIP/2.0 200 Generic");
    assert_eq!(get(&env.stats.wasm_traps), 0);
}

/// `isolation = "per-message"`: every message gets a fresh instance; a fault costs that
/// message only.
#[test]
fn per_message_isolation() {
    let (env, rec) = env();
    let p = load(
        "hostile",
        "trap",
        Limits {
            per_message: true,
            ..limits()
        },
    );
    for _ in 0..3 {
        let (_, out) = p.run(&env, request(&env, "bad"), RQ);
        assert!(matches!(out, Outcome::Error(_)), "{out:?}");
        let (_, out) = p.run(&env, request(&env, "ok"), RQ);
        assert_eq!(out, Outcome::Done);
    }
    assert_eq!(get(&env.stats.wasm_traps), 3);
    assert_eq!(sent(&rec).len(), 3);
}

/// The compiled code is kept on disk by content hash: the second load does not compile.
#[test]
fn compiled_component_cached_on_disk() {
    let (env, _) = env();
    let dir = std::env::temp_dir().join(format!(
        "kemibox-wasm-cache-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let path = plugin_wasm("forward");
    let t = Instant::now();
    let a = Plugin::load_cached(&path, "", Limits::default(), Some(&dir)).expect("compile");
    let compile = t.elapsed();
    assert!(!a.from_cache);
    let t = Instant::now();
    let b =
        Arc::new(Plugin::load_cached(&path, "", Limits::default(), Some(&dir)).expect("cached"));
    let cached = t.elapsed();
    assert!(b.from_cache);
    eprintln!("forward plugin: compile {compile:?}, from the disk cache {cached:?}");
    let (_, out) = b.run(&env, request(&env, "bob"), RQ);
    assert_eq!(out, Outcome::Done);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A typed function of a module that is not loaded (tm here) is refused: the route ends
/// without a reply and without a trap.
#[test]
fn typed_call_into_a_module_not_loaded_is_refused() {
    let (env, rec) = env();
    let p = load("hostile", "trap", limits());
    let (_, out) = p.run(&env, request(&env, "stateful"), RQ);
    assert_eq!(out, Outcome::Done);
    assert!(sent(&rec).is_empty());
    assert_eq!(get(&env.stats.wasm_traps), 0);
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn hostile_loop_hits_the_deadline() {
    hostile("loop", |s| get(&s.wasm_deadlines), "deadline");
}

/// The epoch ticker sleeps while no call runs (it owes the engine ticks then): a loop
/// that starts after a quiet spell still gets its whole deadline, and no more than a
/// tick or so beyond it.
#[test]
fn loop_after_an_idle_spell_gets_its_whole_deadline() {
    let (env, _rec) = env();
    let p = load("hostile", "loop", limits());
    for idle_ms in [0, 30, 130] {
        std::thread::sleep(Duration::from_millis(idle_ms));
        let t = Instant::now();
        let (_, out) = p.run(&env, request(&env, "bad"), RQ);
        let took = t.elapsed();
        assert!(
            matches!(&out, Outcome::Error(e) if e.contains("deadline")),
            "{out:?}"
        );
        assert!(
            took >= limits().deadline,
            "interrupted after {took:?}, before the 50 ms deadline (idle {idle_ms} ms)"
        );
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
}

#[test]
fn hostile_memory_bomb_hits_the_memory_cap() {
    hostile("memory", |s| get(&s.wasm_memory_limits), "memory limit");
}

#[test]
fn hostile_trap_is_contained() {
    hostile("trap", |s| get(&s.wasm_traps), "trap");
}

#[test]
fn hostile_panic_is_contained() {
    hostile("panic", |s| get(&s.wasm_traps), "trap");
}

#[test]
fn hostile_host_call_flood_hits_the_budget() {
    hostile(
        "flood",
        |s| get(&s.wasm_host_call_limits),
        "host-call budget",
    );
}

/// Per-message cost of the forward plugin on a warm instance (printed; bounded loosely
/// so a debug build on a busy machine passes).
#[test]
fn warm_instance_per_call_cost() {
    let (env, rec) = env();
    let p = load("forward", "", Limits::default());
    let _ = p.run(&env, request(&env, "bob"), RQ);
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        let (_, out) = p.run(&env, request(&env, "bob"), RQ);
        assert_eq!(out, Outcome::Done);
    }
    let per = t.elapsed() / n;
    sent(&rec);
    let t = Instant::now();
    for _ in 0..200 {
        p.instantiate(&env).expect("instance");
    }
    let inst = t.elapsed() / 200;
    eprintln!("forward plugin: {per:?} per request route (warm instance; includes parsing the request, 3 KEMI calls and the send), {inst:?} per fresh instance + init");
    assert!(per < Duration::from_millis(5), "{per:?}");
}

/// `KSR.kx.get_env` from a wasm plugin sees only the variables `[routing] guest_env`
/// grants; the operator's own script (not sandboxed) sees all.
#[test]
fn a_plugin_reads_only_the_granted_environment() {
    let (env, _) = crate::testutil::env(&["udp:127.0.0.1:5060"], &["kx"], "guest_env = [\"PATH\"]");
    let get = env.registry.index_of("kx", "get_env").expect("kx.get_env");
    let call = |ctx: &mut Ctx, name: &str| {
        env.registry
            .call(get, ctx, &[Val::Str(name.into())])
            .expect("call")
    };
    let path = std::env::var("PATH").expect("PATH is set");
    let home = std::env::var("HOME").expect("HOME is set");
    let mut ctx = request(&env, "env");
    assert_eq!(call(&mut ctx, "HOME"), Val::Str(home));
    ctx.version = Some(Arc::new(crate::engine::Version {
        id: 1,
        routing: crate::engine::Routing::Wasm(load("forward", "", Limits::default())),
        source: crate::engine::Source {
            engine: "wasm".into(),
            path: plugin_wasm("forward"),
            config: String::new(),
        },
        hash: String::new(),
        loaded_at: std::time::SystemTime::now(),
        counters: Arc::default(),
        onsend: std::sync::atomic::AtomicBool::new(true),
    }));
    assert_eq!(call(&mut ctx, "HOME"), Val::Str(String::new()));
    assert_eq!(call(&mut ctx, "PATH"), Val::Str(path));
}

/// The onsend-route export: a plugin without an onsend route answers false once and the
/// version stops calling it; one with a route runs it nested (on another instance) for
/// each send, in the per-message isolation too, with `$snd(..)` set.
#[test]
fn onsend_route_export_runs_per_send_or_is_switched_off() {
    use std::sync::atomic::Ordering;
    let (env, rec) = env();
    let version = |p: &Arc<Plugin>| {
        Arc::new(crate::engine::Version {
            id: 1,
            routing: crate::engine::Routing::Wasm(p.clone()),
            source: crate::engine::Source {
                engine: "wasm".into(),
                path: plugin_wasm("forward"),
                config: String::new(),
            },
            hash: String::new(),
            loaded_at: std::time::SystemTime::now(),
            counters: Arc::default(),
            onsend: std::sync::atomic::AtomicBool::new(true),
        })
    };
    let run = |p: &Arc<Plugin>, v: &Arc<crate::engine::Version>| {
        let mut c = request(&env, "bob");
        c.version = Some(v.clone());
        let (_, out) = p.run(&env, c, RQ);
        assert_eq!(out, Outcome::Done);
        assert_eq!(sent(&rec).len(), 1);
    };
    let none = load("forward", "", Limits::default());
    let v = version(&none);
    run(&none, &v);
    assert!(
        !v.onsend.load(Ordering::Relaxed),
        "switched off at the first send"
    );
    run(&none, &v);
    assert_eq!(v.counters.calls.load(Ordering::Relaxed), 1, "asked once");
    for limits in [
        Limits::default(),
        Limits {
            per_message: true,
            ..Default::default()
        },
    ] {
        let with = load("forward", "onsend", limits);
        let v = version(&with);
        for _ in 0..3 {
            run(&with, &v);
        }
        assert!(v.onsend.load(Ordering::Relaxed));
        assert_eq!(v.counters.calls.load(Ordering::Relaxed), 3);
    }
}
