//! The WebAssembly engine (wasmtime): routing plugins are components of the world
//! `plugin` of `wit/kemi.wit`, calling the KEMI registry through the generic indexed
//! interface or the typed per-module interfaces.
//!
//! - The component is compiled once at load time (off the hot path) into an
//!   `InstancePre`; each worker thread keeps a warm instance (its own `Store`) reused
//!   across messages and replaced after any trap (a trap poisons the store).
//! - Each route call runs under an epoch deadline (a ticker thread bumps the epoch every
//!   5 ms while a call runs: `ticker`), a memory cap (a `ResourceLimiter` in the store data) and a budget of
//!   host calls. A trap, a deadline or a limit hit returns `Outcome::Error`, so the
//!   pipeline answers 500, and is counted (`wasm_traps`, `wasm_deadlines`,
//!   `wasm_memory_limits`, `wasm_host_call_limits`); the server goes on.
//! - WASI: only what a Rust std guest imports, with no capability: no preopened
//!   directory, no network, no environment, no arguments, stdin empty; stdout and stderr
//!   go to the log (size-capped per instance).

mod host;
mod output;
pub mod script_runtime;
mod ticker;

use std::cell::RefCell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::kemi::{Ctx, Env, Val};
use crate::stats::Stats;

use super::Outcome;
use ticker::Ticker;

/// The bindings generated from `wit/kemi.wit`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { default: trappable },
        exports: { default: async },
    });
}

use bindings::{Plugin as PluginWorld, PluginPre};

pub use host::TypedIdx;

/// Limits applied to every route call of a plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline of one route call.
    pub deadline: Duration,
    /// Most linear memory an instance may have, in bytes.
    pub memory: usize,
    /// Most KEMI calls in one route call.
    pub host_calls: u64,
    /// Instances the pooling allocator holds (at least one per routing thread).
    pub instances: u32,
    /// A fresh instance for every message instead of a warm one per worker.
    pub per_message: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(100),
            memory: 64 << 20,
            host_calls: 10_000,
            instances: POOL_INSTANCES,
            per_message: false,
        }
    }
}

#[derive(Debug, Error)]
pub enum WasmError {
    #[error("{path}: cannot read plugin: {err}")]
    Read { path: String, err: String },
    #[error("{path}: {err}")]
    Load { path: String, err: String },
}

/// Least instances of the pool: one per thread that routes (workers, tm timers, the
/// runtime's blocking threads) plus the start-up check; `Limits::instances` raises it.
const POOL_INSTANCES: u32 = 64;

/// Bytes of a released linear memory kept mapped and reset in place (the dirty pages
/// only, with pagemap_scan): a Rust guest's stack, data and the heap of a route fit.
const KEEP_RESIDENT: usize = 4 << 20;
/// Bytes of a released table kept mapped and reset in place.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// A compiled plugin, shared by every worker.
pub struct Plugin {
    pub path: PathBuf,
    pub config: Arc<str>,
    pub limits: Limits,
    engine: Engine,
    pre: PluginPre<State>,
    /// Advances the engine's epoch (stopped when the plugin is dropped).
    ticker: Arc<Ticker>,
    /// The compiled code came from the disk cache (no compilation).
    pub from_cache: bool,
    /// Registry indexes of the typed imports, found once per `Env`.
    typed: std::sync::Mutex<Option<(usize, TypedIdx)>>,
    /// Route calls of this plugin version and why they failed.
    pub counters: Arc<super::version::Counters>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Least time instantiation and `init` get, whatever the route deadline.
const INIT_DEADLINE: Duration = Duration::from_secs(1);

impl Plugin {
    /// Reads and compiles the component at `path` (slow: call it off the hot path).
    pub fn load(path: &Path, config: &str, limits: Limits) -> Result<Plugin, WasmError> {
        Self::load_cached(path, config, limits, None)
    }

    /// Like `load`, keeping the compiled code in `cache_dir` under the hash of the
    /// component and of the engine's settings, so an unchanged plugin is not compiled
    /// again at the next start.
    pub fn load_cached(
        path: &Path,
        config: &str,
        limits: Limits,
        cache_dir: Option<&Path>,
    ) -> Result<Plugin, WasmError> {
        let bytes = std::fs::read(path).map_err(|e| WasmError::Read {
            path: path.display().to_string(),
            err: e.to_string(),
        })?;
        Self::from_bytes(path, &bytes, config, limits, cache_dir)
    }

    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        config: &str,
        limits: Limits,
        cache_dir: Option<&Path>,
    ) -> Result<Plugin, WasmError> {
        let err = |e: wasmtime::Error| WasmError::Load {
            path: path.display().to_string(),
            err: format!("{e:#}"),
        };
        let n = limits.instances.max(POOL_INSTANCES);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(limits.memory.max(1 << 16))
            // A slot is reused for every fresh instance (per-message isolation, nested
            // tm routes): reset only the pages the last instance dirtied, found with
            // the PAGEMAP_SCAN ioctl (Linux >= 6.7; `Auto` falls back to madvise), and
            // keep them resident, instead of madvise-ing the whole memory and taking a
            // page fault per page again at the next use. Without pagemap_scan the
            // resident part would be memset whole on every release, so the two go
            // together.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT.min(limits.memory))
            .table_keep_resident(TABLE_KEEP_RESIDENT);
        let mut cfg = wasmtime::Config::new();
        cfg.epoch_interruption(true)
            // Exception handling: Lua's errors (setjmp/longjmp) in the lua-wasm runtime.
            // An exception object lives in the GC heap: the reference-counting collector
            // frees it when caught.
            .wasm_exceptions(true)
            .collector(wasmtime::Collector::DeferredReferenceCounting)
            .memory_init_cow(true)
            .concurrency_support(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if std::env::var_os("KEMIBOX_WASM_PERFMAP").is_some() {
            // Profiling: names the guest's functions for `perf` in /tmp/perf-<pid>.map.
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&cfg).map_err(err)?;
        let (component, from_cache) = match cache_dir {
            Some(dir) => compile_cached(&engine, bytes, dir).map_err(err)?,
            None => (Component::new(&engine, bytes).map_err(err)?, false),
        };
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
        PluginWorld::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(err)?;
        let pre = linker.instantiate_pre(&component).map_err(err)?;
        let pre = PluginPre::new(pre).map_err(|e| {
            let mut m = format!("{e:#}");
            if m.contains("no export `onsend-route`") {
                // The one export added to the world since 0.1.0 plugins were first built.
                m.push_str(" (built against an older wit/kemi.wit: rebuild the plugin)");
            }
            WasmError::Load {
                path: path.display().to_string(),
                err: m,
            }
        })?;
        let ticker =
            Ticker::spawn(engine.clone(), limits.deadline).map_err(|e| WasmError::Load {
                path: path.display().to_string(),
                err: format!("epoch ticker: {e}"),
            })?;
        Ok(Plugin {
            path: path.to_path_buf(),
            config: config.into(),
            limits,
            engine,
            pre,
            ticker,
            from_cache,
            typed: std::sync::Mutex::new(None),
            counters: Arc::default(),
        })
    }

    fn typed_idx(&self, env: &Arc<Env>) -> TypedIdx {
        let key = Arc::as_ptr(env) as usize;
        let mut g = match self.typed.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match &*g {
            Some((k, idx)) if *k == key => *idx,
            _ => {
                let idx = TypedIdx::new(&env.registry);
                *g = Some((key, idx));
                idx
            }
        }
    }

    /// A fresh instance with its `init` run: what a worker keeps warm. Also the start-up
    /// check of a plugin.
    pub fn instantiate(&self, env: &Arc<Env>) -> Result<Warm, String> {
        let idx = self.typed_idx(env);
        let state = State {
            ctx: None,
            env: env.clone(),
            wasi: wasi_ctx(),
            table: ResourceTable::new(),
            limiter: Limiter {
                max: self.limits.memory,
                hit: false,
                size: 0,
            },
            calls_left: self.limits.host_calls,
            budget_hit: false,
            idx,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        self.arm(&mut store);
        // Instantiation and `init` (a script runtime compiles its script there) get at
        // least INIT_DEADLINE: a worker's first message must not fail on a busy machine.
        // A plugin whose init never ends is refused when it is loaded.
        let init_deadline = self.limits.deadline.max(INIT_DEADLINE);
        let running = self.ticker.running();
        store.set_epoch_deadline(self.ticker.deadline_ticks(init_deadline));
        let pre = self.pre.clone();
        let config = self.config.clone();
        let (store, r) = drive(init_deadline, async move {
            let r = match pre.instantiate_async(&mut store).await {
                Ok(bindings) => match bindings.call_init(&mut store, &config).await {
                    Ok(Ok(())) => Ok(bindings),
                    Ok(Err(m)) => Err(format!("init refused the config: {m}")),
                    Err(e) => Err(format!("init trapped: {e:?}")),
                },
                Err(e) => Err(format!("instantiation failed: {e:?}")),
            };
            (store, r)
        })
        .ok_or_else(|| "instantiation or init did not finish in the deadline".to_string())?;
        drop(running);
        let bindings = r?;
        Ok(Warm {
            store,
            bindings,
            vars: Default::default(),
        })
    }

    fn arm(&self, store: &mut Store<State>) {
        store.set_epoch_deadline(self.ticker.deadline_ticks(self.limits.deadline));
        let s = store.data_mut();
        s.calls_left = self.limits.host_calls;
        s.budget_hit = false;
        s.limiter.hit = false;
    }

    /// Runs route `name` on `ctx` with this thread's warm instance of the plugin.
    pub fn run(self: &Arc<Plugin>, env: &Arc<Env>, ctx: Ctx, name: &str) -> (Ctx, Outcome) {
        if self.limits.per_message {
            return self.run_isolated(env, ctx, name);
        }
        let key = Arc::downgrade(self);
        WORKER.with(|w| {
            let mut w = w.borrow_mut();
            let pos = match w.iter().position(|(k, _)| k.ptr_eq(&key)) {
                Some(p) => p,
                None => {
                    // Instances of versions no longer loaded anywhere go first.
                    w.retain(|(k, _)| k.strong_count() > 0);
                    if w.len() >= INSTANCES_PER_WORKER {
                        w.remove(0);
                    }
                    match self.instantiate(env) {
                        Ok(warm) => w.push((key, warm)),
                        Err(e) => {
                            Stats::inc(&env.stats.wasm_traps);
                            super::version::Counters::inc(&self.counters.traps);
                            return (ctx, Outcome::Error(format!("wasm plugin: {e}")));
                        }
                    }
                    w.len() - 1
                }
            };
            if pos + 1 != w.len() {
                let e = w.remove(pos);
                w.push(e);
            }
            let Some((_, warm)) = w.last_mut() else {
                return (ctx, Outcome::Error("wasm plugin: no instance".into()));
            };
            let (ctx, r) = self.call(warm, ctx, name);
            if r.is_ok() && warm.store.data().limiter.nearly_full() {
                // Replaced before the next message rather than failing one at the limit.
                tracing::debug!(plugin = %self.path.display(), "wasm instance near its memory limit: replaced");
                w.pop();
            }
            match r {
                Ok(true) => (ctx, Outcome::Done),
                Ok(false) => (ctx, Outcome::Missing),
                Err(reason) => {
                    // A trap poisons the store: the next message gets a fresh instance.
                    w.pop();
                    (ctx, Outcome::Error(format!("wasm plugin {name}: {reason}")))
                }
            }
        })
    }

    /// A route run from inside a running route of this plugin (tm branch routes run from
    /// inside `t_relay`). A component instance cannot be re-entered and the worker's warm
    /// instance is busy, so it runs on a second warm instance the worker keeps for nested
    /// routes (its guest globals are its own, not the outer route's; the message state is
    /// all in `ctx`). With `isolation = "per-message"`, on a fresh instance.
    pub fn run_nested(self: &Arc<Plugin>, env: &Arc<Env>, ctx: Ctx, name: &str) -> (Ctx, Outcome) {
        if self.limits.per_message {
            return self.run_isolated(env, ctx, name);
        }
        let key = Arc::downgrade(self);
        // Out of the thread-local while it runs: a nested route may nest again.
        let spare = NESTED.with(|n| {
            let mut n = n.borrow_mut();
            let pos = n.iter().position(|(k, _)| k.ptr_eq(&key))?;
            Some(n.remove(pos).1)
        });
        let mut warm = match spare {
            Some(w) => w,
            None => match self.instantiate(env) {
                Ok(w) => w,
                Err(e) => {
                    Stats::inc(&env.stats.wasm_traps);
                    super::version::Counters::inc(&self.counters.traps);
                    return (ctx, Outcome::Error(format!("wasm plugin: {e}")));
                }
            },
        };
        let (ctx, r) = self.call(&mut warm, ctx, name);
        let out = match r {
            Ok(true) => Outcome::Done,
            Ok(false) => Outcome::Missing,
            // A trap poisons the store: the instance is dropped.
            Err(reason) => return (ctx, Outcome::Error(format!("wasm plugin {name}: {reason}"))),
        };
        if warm.store.data().limiter.nearly_full() {
            return (ctx, out);
        }
        NESTED.with(|n| {
            let mut n = n.borrow_mut();
            n.retain(|(k, _)| k.strong_count() > 0);
            if n.len() >= INSTANCES_PER_WORKER {
                n.remove(0);
            }
            n.push((key, warm));
        });
        (ctx, out)
    }

    /// `isolation = "per-message"`: a fresh store and instance (with `init`) for this
    /// call only; nothing survives it, `$var(..)` included.
    pub fn run_isolated(&self, env: &Arc<Env>, ctx: Ctx, name: &str) -> (Ctx, Outcome) {
        let mut warm = match self.instantiate(env) {
            Ok(w) => w,
            Err(e) => {
                Stats::inc(&env.stats.wasm_traps);
                super::version::Counters::inc(&self.counters.traps);
                return (ctx, Outcome::Error(format!("wasm plugin: {e}")));
            }
        };
        match self.call(&mut warm, ctx, name) {
            (ctx, Ok(true)) => (ctx, Outcome::Done),
            (ctx, Ok(false)) => (ctx, Outcome::Missing),
            (ctx, Err(reason)) => (ctx, Outcome::Error(format!("wasm plugin {name}: {reason}"))),
        }
    }

    fn call(&self, warm: &mut Warm, mut ctx: Ctx, name: &str) -> (Ctx, Result<bool, String>) {
        std::mem::swap(&mut ctx.vars, &mut warm.vars);
        let env = ctx.env.clone();
        let _running = self.ticker.running();
        self.arm(&mut warm.store);
        warm.store.data_mut().ctx = Some(ctx);
        let bindings = &warm.bindings;
        let store = &mut warm.store;
        let name2 = name.to_string();
        let r = drive(self.limits.deadline + Duration::from_millis(50), async {
            match name2.as_str() {
                crate::proxy::pipeline::REQUEST_ROUTE => bindings
                    .call_request_route(&mut *store)
                    .await
                    .map(|()| true),
                crate::proxy::pipeline::REPLY_ROUTE => {
                    bindings.call_reply_route(&mut *store).await.map(|()| true)
                }
                super::ONSEND_ROUTE => bindings.call_onsend_route(&mut *store).await,
                other => bindings.call_route(&mut *store, other).await,
            }
        });
        let s = warm.store.data_mut();
        let mut ctx = s.ctx.take().unwrap_or_else(|| unreachable_ctx(&env));
        std::mem::swap(&mut ctx.vars, &mut warm.vars);
        let r = match r {
            Some(Ok(found)) => Ok(found),
            Some(Err(e)) => {
                let c = &self.counters;
                let (counter, mine, reason) = if s.budget_hit {
                    (
                        &env.stats.wasm_host_call_limits,
                        &c.host_call_limits,
                        "host-call budget exceeded".to_string(),
                    )
                } else if s.limiter.hit {
                    (
                        &env.stats.wasm_memory_limits,
                        &c.memory_limits,
                        "memory limit exceeded".to_string(),
                    )
                } else if matches!(
                    e.downcast_ref::<wasmtime::Trap>(),
                    Some(wasmtime::Trap::Interrupt)
                ) {
                    (
                        &env.stats.wasm_deadlines,
                        &c.deadlines,
                        "deadline exceeded".to_string(),
                    )
                } else {
                    (&env.stats.wasm_traps, &c.traps, format!("trap: {e:?}"))
                };
                Stats::inc(counter);
                super::version::Counters::inc(mine);
                Err(reason)
            }
            None => {
                Stats::inc(&env.stats.wasm_deadlines);
                super::version::Counters::inc(&self.counters.deadlines);
                Err("deadline exceeded (waiting on the host)".to_string())
            }
        };
        (ctx, r)
    }
}

/// Never happens: the context is only taken out of the store by `call`. Kept total so a
/// bug costs one message, not the worker.
fn unreachable_ctx(_env: &Arc<Env>) -> Ctx {
    panic!("wasm engine lost the routing context")
}

/// A warm instance: its store and bindings, and the worker's `$var(..)` values.
pub struct Warm {
    store: Store<State>,
    bindings: PluginWorld,
    vars: std::collections::HashMap<String, Val>,
}

/// Warm instances a worker keeps: one per plugin version it ran lately (the current one
/// and those still finishing transactions), least recently used first.
const INSTANCES_PER_WORKER: usize = 4;

thread_local! {
    static WORKER: RefCell<Vec<(std::sync::Weak<Plugin>, Warm)>> =
        const { RefCell::new(Vec::new()) };
    /// Idle instances for nested routes, per plugin version (see `run_nested`).
    static NESTED: RefCell<Vec<(std::sync::Weak<Plugin>, Warm)>> =
        const { RefCell::new(Vec::new()) };
}

/// Compiles `bytes`, or loads the code compiled earlier from `dir/<hash>.cwasm`; the
/// hash covers the component and the engine's compatibility settings (version, target,
/// tunables), so a file made by another build is never loaded.
fn compile_cached(
    engine: &Engine,
    bytes: &[u8],
    dir: &Path,
) -> wasmtime::Result<(Component, bool)> {
    use sha2::Digest;
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let mut d = sha2::Sha256::new();
    d.update(bytes);
    d.update(h.finish().to_le_bytes());
    let hex: String = d.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let file = dir.join(format!("{hex}.cwasm"));
    if file.is_file() {
        // SAFETY: the file was written by `Component::serialize` of this same engine
        // configuration (its name is the hash of the component and of the engine's
        // compatibility settings) into a directory the operator configured for it.
        match unsafe { Component::deserialize_file(engine, &file) } {
            Ok(c) => return Ok((c, true)),
            Err(e) => tracing::warn!("wasm cache {}: {e}; compiling again", file.display()),
        }
    }
    let component = Component::new(engine, bytes)?;
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{hex}.tmp{}", std::process::id()));
        let code = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::write(&tmp, code)?;
        std::fs::rename(&tmp, &file)
    };
    if let Err(e) = write() {
        tracing::warn!("wasm cache {}: cannot write: {e}", file.display());
    }
    Ok((component, false))
}

/// Polls `fut` to completion on this thread. Host functions never wait on I/O here
/// (stdout/stderr are always ready), so the first poll normally finishes; a guest that
/// blocks on a pollable is given up `limit` after it first waits (`None`).
fn drive<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // The clock is read only once the future waits (a route call almost never does).
    let mut deadline = None;
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let d = *deadline.get_or_insert_with(|| Instant::now() + limit);
        if Instant::now() > d {
            return None;
        }
        std::thread::yield_now();
    }
}

fn wasi_ctx() -> WasiCtx {
    let mut b = wasmtime_wasi::WasiCtxBuilder::new();
    b.stdout(output::LogOutput::new("stdout"))
        .stderr(output::LogOutput::new("stderr"))
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false);
    b.build()
}

/// Caps linear memory growth; a denied growth traps and is reported as a memory limit.
pub struct Limiter {
    max: usize,
    hit: bool,
    /// The largest linear memory the instance has grown to, in bytes.
    size: usize,
}

impl Limiter {
    /// The instance's memory is past 3/4 of its limit: a garbage-collected guest
    /// (JavaScript's SpiderMonkey lets its heap grow far before collecting, and cannot
    /// recover from a failed `memory.grow`) is better replaced before it hits the limit.
    fn nearly_full(&self) -> bool {
        self.size > self.max / 4 * 3
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            wasmtime::bail!("memory limit of {} bytes exceeded", self.max);
        }
        self.size = self.size.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The store data of an instance.
pub struct State {
    /// The message being routed, lent by `run` for the call.
    ctx: Option<Ctx>,
    env: Arc<Env>,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    calls_left: u64,
    budget_hit: bool,
    idx: TypedIdx,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[cfg(test)]
mod tests;
