//! Routing engines: every engine runs the KEMI event routes of one script or plugin over
//! the same registry. The native Lua engine and the WebAssembly engine, and the loaded
//! versions of their scripts and plugins (hot reload).

pub mod lua;
pub mod version;
pub mod wasm;

use std::sync::Arc;

pub use lua::Outcome;
pub use version::{Routings, Source, Version};

use crate::kemi::{Ctx, Env};
use crate::stats::Stats;

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
