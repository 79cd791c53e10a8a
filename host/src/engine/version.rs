//! Loaded routing versions and the atomic swap between them (hot reload).
//!
//! Every message takes the current [`Version`] when it arrives and keeps it in its
//! context; a transaction's base context keeps it for the transaction's life, so its
//! failure, branch and reply routes run on the code that created it. A version is freed
//! when the last context holding it is gone (the previous one is kept for
//! `routing.rollback` until the next swap).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use serde::Serialize;
use sha2::Digest;

use super::lua::{LuaEngine, Script};
use super::wasm::Plugin;
use super::Routing;
use crate::kemi::Env;

/// Per-version counters: route calls and why they failed.
#[derive(Debug, Default)]
pub struct Counters {
    pub calls: AtomicU64,
    /// Lua runtime errors (the wasm engine's own reasons are counted apart).
    pub script_errors: AtomicU64,
    pub traps: AtomicU64,
    pub deadlines: AtomicU64,
    pub memory_limits: AtomicU64,
    pub host_call_limits: AtomicU64,
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What to load: an engine and its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `"lua"`, `"lua-wasm"`, `"js-wasm"`, `"python-wasm"` or `"wasm"`.
    pub engine: String,
    pub path: PathBuf,
    /// The plugin's config string (wasm; empty for Lua).
    pub config: String,
}

impl Source {
    /// The configured routing of `env`.
    pub fn configured(env: &Env) -> Source {
        let cfg = &env.cfg;
        match cfg.routing.engine.get_ref().as_str() {
            "wasm" => Source {
                engine: "wasm".into(),
                path: cfg.plugin_path(),
                config: cfg.routing.config.clone(),
            },
            engine => Source {
                engine: engine.to_string(),
                path: cfg.script_path(),
                config: String::new(),
            },
        }
    }

    /// A source named by path only: the engine follows the file's extension (a Lua
    /// script runs on `lua-wasm` when the config names that engine, else on `lua`; a
    /// JavaScript script on `js-wasm`, a Python one on `python-wasm`).
    pub fn from_path(path: &Path, config: Option<&str>, env: &Env) -> Result<Source, String> {
        let engine = match path.extension().and_then(|e| e.to_str()) {
            Some("wasm") => "wasm",
            Some("lua") if env.cfg.routing.engine.get_ref() == "lua-wasm" => "lua-wasm",
            Some("lua") => "lua",
            Some("js") => "js-wasm",
            Some("py") => "python-wasm",
            _ => {
                return Err(format!(
                "{}: cannot tell the engine from the file name (.lua, .js, .py or .wasm), give `engine`",
                path.display()
            ))
            }
        };
        Ok(Source {
            engine: engine.into(),
            path: path.to_path_buf(),
            config: config
                .map(str::to_string)
                .unwrap_or_else(|| env.cfg.routing.config.clone()),
        })
    }
}

/// One loaded script or plugin.
#[derive(Debug)]
pub struct Version {
    /// Numbered from 1 in load order.
    pub id: u64,
    pub routing: Routing,
    pub source: Source,
    /// SHA-256 of the script or component (hex).
    pub hash: String,
    pub loaded_at: SystemTime,
    pub counters: Arc<Counters>,
    /// The version may have an onsend route (`ksr_onsend_route`, the `onsend-route`
    /// export): a Lua script is checked when it loads, a plugin until its export first
    /// says it has none. While false, sends run no route at all.
    pub onsend: AtomicBool,
}

/// What `routing.status` reports of a version.
#[derive(Debug, Serialize)]
pub struct VersionStatus {
    pub id: u64,
    pub engine: String,
    pub path: String,
    pub hash: String,
    /// Seconds since the Unix epoch.
    pub loaded_at: u64,
    pub calls: u64,
    pub errors: ErrorCounts,
    /// Messages and transactions holding it now.
    pub in_use: usize,
}

#[derive(Debug, Serialize)]
pub struct ErrorCounts {
    pub script: u64,
    pub trap: u64,
    pub deadline: u64,
    pub memory: u64,
    pub host_calls: u64,
}

impl Version {
    /// `known_refs`: the references the caller knows of (not uses by messages).
    pub fn status(self: &Arc<Version>, known_refs: usize) -> VersionStatus {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        VersionStatus {
            id: self.id,
            engine: self.source.engine.clone(),
            path: self.source.path.display().to_string(),
            hash: self.hash.clone(),
            loaded_at: self
                .loaded_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            calls: get(&c.calls),
            errors: ErrorCounts {
                script: get(&c.script_errors),
                trap: get(&c.traps),
                deadline: get(&c.deadlines),
                memory: get(&c.memory_limits),
                host_calls: get(&c.host_call_limits),
            },
            in_use: Arc::strong_count(self).saturating_sub(known_refs),
        }
    }
}

/// The routing versions of a server: the current one, the previous one (for rollback)
/// and, weakly, every older one still finishing transactions.
#[derive(Default)]
pub struct Routings {
    current: ArcSwapOption<Version>,
    previous: Mutex<Option<Arc<Version>>>,
    retired: Mutex<Vec<Weak<Version>>>,
    next_id: AtomicU64,
    /// One load at a time: two reloads never race to the swap.
    loading: Mutex<()>,
}

/// What `routing.status` answers.
#[derive(Debug, Serialize)]
pub struct Status {
    pub current: Option<VersionStatus>,
    pub previous: Option<VersionStatus>,
    /// Older versions still in use by transactions.
    pub retired: Vec<VersionStatus>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Routings {
    /// The version new messages take (`None` before the first load).
    pub fn current(&self) -> Option<Arc<Version>> {
        self.current.load_full()
    }

    /// Reads, compiles and checks `source` on `env` (slow: call it off the hot path)
    /// and makes it current. On error the running version stays and the reason is
    /// returned.
    pub fn load(&self, env: &Arc<Env>, source: Source) -> Result<Arc<Version>, String> {
        let _one = lock(&self.loading);
        let (routing, hash, counters, onsend) = build(env, &source)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let v = Arc::new(Version {
            id,
            routing,
            source,
            hash,
            loaded_at: SystemTime::now(),
            counters,
            onsend: AtomicBool::new(onsend),
        });
        self.swap(v.clone());
        tracing::info!(
            version = v.id,
            engine = v.source.engine,
            path = %v.source.path.display(),
            hash = %&v.hash[..12],
            "routing loaded"
        );
        Ok(v)
    }

    /// Loads the current version's source again (`routing.reload`, SIGHUP), or the
    /// configured one before any load.
    pub fn reload(&self, env: &Arc<Env>) -> Result<Arc<Version>, String> {
        let source = match self.current() {
            Some(v) => v.source.clone(),
            None => Source::configured(env),
        };
        self.load(env, source)
    }

    /// Makes the previous version current again; the current one becomes previous.
    pub fn rollback(&self) -> Result<Arc<Version>, String> {
        let _one = lock(&self.loading);
        let prev = lock(&self.previous)
            .clone()
            .ok_or_else(|| "no previous version to roll back to".to_string())?;
        self.swap(prev.clone());
        tracing::info!(version = prev.id, "routing rolled back");
        Ok(prev)
    }

    fn swap(&self, v: Arc<Version>) {
        let old = self.current.swap(Some(v));
        let mut prev = lock(&self.previous);
        if let Some(p) = prev.take() {
            let mut retired = lock(&self.retired);
            retired.retain(|w| w.strong_count() > 0);
            retired.push(Arc::downgrade(&p));
        }
        *prev = old;
    }

    pub fn status(&self) -> Status {
        let current = self.current();
        let previous = lock(&self.previous).clone();
        let is = |a: &Option<Arc<Version>>, b: &Arc<Version>| {
            a.as_ref().is_some_and(|a| Arc::ptr_eq(a, b))
        };
        let mut retired = Vec::new();
        for w in lock(&self.retired).iter() {
            if let Some(v) = w.upgrade() {
                // Once rolled back to, a version is current or previous again.
                if !is(&current, &v) && !is(&previous, &v) {
                    retired.push(v.status(1));
                }
            }
        }
        // The table and this function each hold one reference to current and previous
        // (never the same version: every load makes a new one).
        Status {
            current: current.as_ref().map(|v| v.status(2)),
            previous: previous.as_ref().map(|v| v.status(2)),
            retired,
        }
    }
}

/// Builds and checks the routing of `source`: a Lua state is built and the script run
/// (its top level and the presence of `ksr_request_route`); a component is compiled (or
/// taken from the cache), its imports and exports checked against the world, and an
/// instance made with its `init` run on the config. Also whether the version may have an
/// onsend route (a plugin's export tells at its first call).
#[allow(clippy::type_complexity)]
fn build(
    env: &Arc<Env>,
    source: &Source,
) -> Result<(Routing, String, Arc<Counters>, bool), String> {
    let path = &source.path;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let hash: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let script = |bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|_| format!("{}: the script is not UTF-8", path.display()))
    };
    let plugin = match source.engine.as_str() {
        "wasm" => {
            let cfg = &env.cfg;
            let cache = cfg.routing.cache_dir.as_ref().map(|d| cfg.resolve(d));
            Plugin::from_bytes(
                path,
                &bytes,
                &source.config,
                cfg.wasm_limits(),
                cache.as_deref(),
            )
        }
        engine @ ("lua-wasm" | "js-wasm") => {
            let source = script(bytes)?;
            super::wasm::script_runtime::load_script(&env.cfg, engine, path, &source)
        }
        "python-wasm" => super::wasm::script_runtime::load_python(&env.cfg, path, &bytes),
        "lua" => {
            let script = Script {
                path: path.clone(),
                source: script(bytes)?.into(),
            };
            let mut engine = LuaEngine::new(&script, env).map_err(|e| e.to_string())?;
            let onsend = engine.has_route(super::ONSEND_ROUTE);
            return Ok((Routing::Lua(script), hash, Arc::default(), onsend));
        }
        other => return Err(format!("unknown routing engine `{other}`")),
    }
    .map_err(|e| e.to_string())?;
    // Every wasm engine: one instance now, so a plugin or script that does not start is
    // refused here.
    plugin
        .instantiate(env)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let counters = plugin.counters.clone();
    Ok((Routing::Wasm(Arc::new(plugin)), hash, counters, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kemi::{Ctx, RecvInfo, RouteKind};
    use crate::testutil::env;

    fn script(dir: &Path, name: &str, body: &str) -> Source {
        let path = dir.join(name);
        std::fs::write(&path, body).expect("write");
        Source {
            engine: "lua".into(),
            path,
            config: String::new(),
        }
    }

    fn holder(env: &Arc<Env>, v: Arc<Version>) -> Ctx {
        let msg = crate::sip::Message::parse(bytes::Bytes::from_static(
            b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: v\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parse");
        let rcv = RecvInfo {
            proto: crate::net::Proto::Udp,
            src: "127.0.0.1:5070".parse().expect("addr"),
            local: "127.0.0.1:5060".parse().expect("addr"),
            conn: None,
        };
        let mut c = Ctx::new(env.clone(), msg, rcv, RouteKind::Request);
        c.version = Some(v);
        c
    }

    #[test]
    fn swap_rollback_and_a_retired_version_freed_with_its_last_holder() {
        let (env, _) = env(&["udp:127.0.0.1:5060"], &["sl"], "");
        let dir = std::env::temp_dir().join(format!("kemibox-ver-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ok = "function ksr_request_route() end\n";
        let r = &env.routing;
        assert!(r.current().is_none());
        let v1 = r.load(&env, script(&dir, "a.lua", ok)).expect("v1");
        assert_eq!(v1.id, 1);
        // A message (a transaction's base) holds version 1 across two swaps.
        let held = holder(&env, v1.clone());
        let weak1 = Arc::downgrade(&v1);
        drop(v1);
        let v2 = r.load(&env, script(&dir, "b.lua", ok)).expect("v2");
        let v3 = r.load(&env, script(&dir, "c.lua", ok)).expect("v3");
        let st = r.status();
        assert_eq!(st.current.as_ref().map(|s| s.id), Some(3));
        assert_eq!(st.previous.as_ref().map(|s| s.id), Some(2));
        assert_eq!(st.retired.len(), 1);
        assert_eq!((st.retired[0].id, st.retired[0].in_use), (1, 1));
        drop(held);
        assert!(weak1.upgrade().is_none(), "freed with its last holder");
        assert!(r.status().retired.is_empty());

        // A script that does not load is refused; the current one stays.
        let e = r
            .load(
                &env,
                script(&dir, "bad.lua", "function ksr_request_route(\n"),
            )
            .expect_err("refused");
        assert!(e.contains("bad.lua"), "{e}");
        assert!(Arc::ptr_eq(&r.current().expect("current"), &v3));
        let e = r
            .load(&env, script(&dir, "noroute.lua", "x = 1\n"))
            .expect_err("refused");
        assert!(e.contains("ksr_request_route"), "{e}");

        // Rollback swaps current and previous.
        let back = r.rollback().expect("rollback");
        assert!(Arc::ptr_eq(&back, &v2));
        assert_eq!(r.status().previous.map(|s| s.id), Some(3));
        assert_eq!(
            r.status().current.map(|s| (s.id, s.hash.len())),
            Some((2, 64))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
