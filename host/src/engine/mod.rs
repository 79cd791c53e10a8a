//! Routing engines: every engine runs the KEMI event routes of one script or plugin over
//! the same registry. The native Lua engine and the WebAssembly engine, and the loaded
//! versions of their scripts and plugins (hot reload).

pub mod lua;
pub mod version;
pub mod wasm;

use std::sync::Arc;

pub use lua::Outcome;
pub use version::{Routings, Source, Version};

use crate::kemi::{Ctx, Env, RouteKind, SendInfo};
use crate::stats::Stats;

/// The onsend route's name (Kamailio's default `onsend_route_callback`).
pub const ONSEND_ROUTE: &str = "ksr_onsend_route";

/// What routes messages: the loaded script or plugin.
#[derive(Clone, Debug)]
pub enum Routing {
    Lua(lua::Script),
    /// A compiled WebAssembly component.
    Wasm(Arc<wasm::Plugin>),
}

/// Runs the route `name` on `ctx` with the routing version the message carries (a
/// transaction's routes run on the version that created it), or the current one for a
/// new message. `None` when no routing is loaded yet or the engine lost the context
/// (both logged).
pub fn run_route(env: &Arc<Env>, mut ctx: Ctx, name: &str) -> Option<(Ctx, Outcome)> {
    let version = match &ctx.version {
        Some(v) => v.clone(),
        None => {
            let v = env.routing.current()?;
            ctx.version = Some(v.clone());
            v
        }
    };
    version::Counters::inc(&version.counters.calls);
    match &version.routing {
        Routing::Lua(script) => {
            match lua::with_worker_engine(&version, script, env, |eng| eng.run(ctx, name)) {
                Ok(Some(r)) => {
                    if matches!(r.1, Outcome::Error(_)) {
                        version::Counters::inc(&version.counters.script_errors);
                    }
                    Some(r)
                }
                Ok(None) => {
                    tracing::error!("routing context lost in {name}");
                    None
                }
                Err(e) => {
                    Stats::inc(&env.stats.script_errors);
                    version::Counters::inc(&version.counters.script_errors);
                    tracing::error!("script engine: {e}");
                    None
                }
            }
        }
        Routing::Wasm(plugin) => Some(plugin.run(env, ctx, name)),
    }
}

/// Runs route `name` from inside a KEMI function of the running route (tm branch routes),
/// in the same engine instance. `None` when no route is running on this thread.
pub fn run_nested(env: &Arc<Env>, ctx: Ctx, name: &str) -> Option<(Ctx, Outcome)> {
    let version = ctx.version.clone().or_else(|| env.routing.current())?;
    match &version.routing {
        Routing::Lua(_) => lua::run_nested(ctx, name),
        // A component instance cannot be re-entered while it is running a route: the
        // nested route runs on another instance of the same plugin.
        Routing::Wasm(plugin) => Some(plugin.run_nested(env, ctx, name)),
    }
}

/// The routing version whose onsend route a send from a message of `version` (or, for a
/// message that has none, of the current version) runs; `None`, at the cost of a flag
/// read, when that version has no onsend route.
pub fn onsend_version(env: &Env, version: Option<&Arc<Version>>) -> Option<Arc<Version>> {
    let v = match version {
        Some(v) => v.clone(),
        None => env.routing.current()?,
    };
    v.onsend
        .load(std::sync::atomic::Ordering::Relaxed)
        .then_some(v)
}

/// Kamailio's `run_onsend`: runs the onsend route for a send of the message in `base`
/// about to happen, on a copy of `base` where `$snd(..)` reads `snd`. False when the
/// route dropped the send (`KSR.set_drop()`, `KSR.x.drop()`); an error in the route does
/// not stop it. Changes the route makes to the message are not sent (the buffer is
/// built). A send made from an onsend route itself runs no onsend route.
pub fn onsend(base: &Ctx, snd: SendInfo) -> bool {
    if base.route == RouteKind::Onsend {
        return true;
    }
    let Some(version) = onsend_version(&base.env, base.version.as_ref()) else {
        return true;
    };
    let mut ctx = base.fork(RouteKind::Onsend);
    ctx.version = Some(version);
    ctx.snd = Some(Box::new(snd));
    run_onsend(ctx)
}

/// Runs the onsend route on `ctx` (its `version` and `snd` set, see [`onsend`]): inside
/// the route that is sending (a Lua state runs it nested; a plugin on its instance for
/// nested routes), or on the worker's engine for sends made outside any route (replies
/// relayed). False when the route dropped the send.
pub fn run_onsend(ctx: Ctx) -> bool {
    let env = ctx.env.clone();
    let Some(version) = ctx.version.clone() else {
        return true;
    };
    version::Counters::inc(&version.counters.calls);
    let r = match &version.routing {
        Routing::Lua(script) => {
            if lua::in_route() {
                lua::run_nested(ctx, ONSEND_ROUTE)
            } else {
                match lua::with_worker_engine(&version, script, &env, |eng| {
                    eng.run(ctx, ONSEND_ROUTE)
                }) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("script engine: {e}");
                        None
                    }
                }
            }
        }
        Routing::Wasm(plugin) => Some(plugin.run_nested(&env, ctx, ONSEND_ROUTE)),
    };
    match r {
        Some((c, Outcome::Done)) => {
            if c.drop {
                Stats::inc(&env.stats.onsend_drops);
            }
            !c.drop
        }
        Some((_, Outcome::Missing)) => {
            // No onsend route in this version: later sends skip it.
            version
                .onsend
                .store(false, std::sync::atomic::Ordering::Relaxed);
            true
        }
        Some((c, Outcome::Error(e))) => {
            Stats::inc(&env.stats.script_errors);
            if matches!(version.routing, Routing::Lua(_)) {
                version::Counters::inc(&version.counters.script_errors);
            }
            tracing::error!(
                callid = c.msg.call_id().unwrap_or(""),
                "error from the routing script or plugin in {ONSEND_ROUTE}: {e}"
            );
            true
        }
        None => true,
    }
}
