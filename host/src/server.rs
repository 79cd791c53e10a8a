//! Start-up: config to running sockets.

use std::sync::Arc;

use thiserror::Error;

use crate::config::Config;
use crate::engine::lua::LuaError;
use crate::kemi::{Env, Registry, RegistryError};
use crate::modules::usrloc::Usrloc;
use crate::net::{Listener, Net, Offline};
use crate::proxy::pipeline::Router;
use crate::stats::Stats;
use crate::transport::{TransportError, Transports};

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Script(#[from] LuaError),
    #[error(transparent)]
    Wasm(#[from] crate::engine::wasm::WasmError),
    /// The script or plugin did not load (the reason names the file).
    #[error("{0}")]
    Routing(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Usrloc(#[from] crate::modules::usrloc::UsrlocError),
    #[error("{0}")]
    Module(String),
}

/// A running server.
pub struct Server {
    pub env: Arc<Env>,
    pub transports: Arc<Transports>,
    pub router: Arc<Router>,
}

impl Server {
    /// Writes what must survive a restart (usrloc write-back).
    pub fn shutdown(&self) {
        if let Err(e) = self.env.usrloc.flush() {
            tracing::error!("usrloc flush at shutdown: {e}");
        }
    }
}

fn sl_tag_prefix() -> String {
    use rand::Rng;
    let mut r = rand::rng();
    (0..32)
        .map(|_| format!("{:x}", r.random_range(0..16u8)))
        .collect()
}

pub fn make_env(
    cfg: Arc<Config>,
    net: Arc<dyn Net>,
    stats: Arc<Stats>,
) -> Result<Arc<Env>, StartError> {
    let registry = Registry::build(&cfg.modules())?;
    let usrloc = Arc::new(Usrloc::from_config(&cfg)?);
    let tm = Arc::new(crate::modules::tm::Tm::from_config(&cfg));
    let nonces = Arc::new(crate::modules::auth::Nonces::from_config(&cfg));
    let subscribers = Arc::new(
        crate::modules::auth_db::Subscribers::from_config(&cfg).map_err(StartError::Module)?,
    );
    let htables =
        Arc::new(crate::modules::htable::Htables::from_config(&cfg).map_err(StartError::Module)?);
    let pike = Arc::new(crate::modules::pike::Pike::from_config(&cfg));
    let acc = Arc::new(crate::modules::acc::Acc::from_config(&cfg).map_err(StartError::Module)?);
    let permissions = Arc::new(
        crate::modules::permissions::Permissions::from_config(&cfg).map_err(StartError::Module)?,
    );
    Ok(Arc::new(Env {
        permissions,
        acc,
        htables,
        pike,
        cfg,
        registry,
        net,
        stats,
        sl_tag_prefix: sl_tag_prefix(),
        usrloc,
        tm,
        nonces,
        subscribers,
        routing: Default::default(),
    }))
}

/// Loads the configured routing (script or plugin), checked on `env`, as version 1: a
/// Lua state is built, a plugin is compiled, instantiated and its `init` run.
fn load_routing(env: &Arc<Env>) -> Result<(), StartError> {
    env.routing
        .load(env, crate::engine::Source::configured(env))
        .map(|_| ())
        .map_err(StartError::Routing)
}

/// Validates a config fully without opening sockets: registry and script.
pub fn check(mut cfg: Config) -> Result<(), StartError> {
    cfg.check_only = true;
    let listeners: Vec<Listener> = cfg
        .listen
        .iter()
        .map(|l| Listener {
            proto: l.proto,
            addr: l.addr,
            advertise: l.advertise.clone(),
        })
        .collect();
    let env = make_env(
        Arc::new(cfg),
        Arc::new(Offline { listeners }),
        Arc::new(Stats::default()),
    )?;
    load_routing(&env)?;
    Ok(())
}

/// glibc's allocator grows each thread's heap by the request plus `M_TOP_PAD` (128 KiB by
/// default), an `mprotect` and page faults at a time, and gives memory back when the top
/// of a heap is free beyond `M_TRIM_THRESHOLD`. A proxy's heap grows by every
/// transaction it keeps (tm holds requests and replies for seconds), so it grows in
/// 16 MiB steps here and keeps up to 64 MiB of free top. (`perf` of the basic script at
/// 1000 calls/s: `sysmalloc`/`grow_heap` ~5 % of the proxy's CPU with the defaults.)
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before the server's
    // threads start and takes no pointers.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Binds the sockets, loads the script and starts receiving. Needs a multi-thread runtime.
pub async fn start(cfg: Config) -> Result<Server, StartError> {
    tune_allocator();
    let cfg = Arc::new(cfg);
    let stats = Arc::new(Stats::default());
    let transports = Transports::bind(&cfg, stats.clone()).await?;
    let env = make_env(cfg.clone(), transports.clone(), stats)?;
    // Load once here so a broken script or plugin stops start-up with its error.
    load_routing(&env)?;
    let router = Arc::new(Router::new(env.clone()));
    let r2 = router.clone();
    transports.start(
        Arc::new(move |data, rcv| r2.handle(data, rcv)),
        cfg.core.workers,
    )?;
    for l in transports.listeners() {
        tracing::info!("listening on {}:{}", l.proto.lower(), l.addr);
    }
    // usrloc: expire bindings and write back changes every timer_interval.
    let ul = env.usrloc.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(ul.timer_interval));
        tick.tick().await;
        loop {
            tick.tick().await;
            let ul2 = ul.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || ul2.timer()).await {
                tracing::error!("usrloc timer: {e}");
            }
        }
    });
    if let Some(addr) = cfg.control.as_ref().and_then(|c| c.addr) {
        let local = crate::control::serve(addr, env.clone(), transports.clone())
            .await
            .map_err(|e| TransportError::Bind {
                proto: crate::net::Proto::Tcp,
                addr,
                err: e.to_string(),
            })?;
        tracing::info!("control on http://{local}/ (GET /metrics, POST /RPC)");
    }
    reload_on_sighup(env.clone());
    Ok(Server {
        env,
        transports,
        router,
    })
}

/// SIGHUP reloads the routing (as `routing.reload` does); a refused load is logged and
/// the running version stays.
fn reload_on_sighup(env: Arc<Env>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGHUP (no reload by signal): {e}");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the routing");
            let e = env.clone();
            match tokio::task::spawn_blocking(move || e.routing.reload(&e)).await {
                Ok(Ok(v)) => tracing::info!(version = v.id, "SIGHUP: routing reloaded"),
                Ok(Err(m)) => tracing::error!("SIGHUP: reload refused, running version stays: {m}"),
                Err(e) => tracing::error!("SIGHUP: reload task failed: {e}"),
            }
        }
    });
}
