//! Routing engines: every engine runs the KEMI event routes of one script or plugin over
//! the same registry. The native Lua engine and the WebAssembly engine.

pub mod lua;
pub mod wasm;

use std::sync::Arc;

pub use lua::Outcome;

use crate::kemi::{Ctx, Env};
use crate::stats::Stats;

/// What routes messages: the loaded script or plugin.
#[derive(Clone, Debug)]
pub enum Routing {
    Lua(lua::Script),
    /// A compiled WebAssembly component.
    Wasm(Arc<wasm::Plugin>),
}

/// Runs the route `name` on `ctx` with the current routing of `env`. `None` when no
/// routing is loaded yet or the engine lost the context (both logged).
pub fn run_route(env: &Arc<Env>, ctx: Ctx, name: &str) -> Option<(Ctx, Outcome)> {
    let (generation, routing) = env.script.get()?;
    match routing {
        Routing::Lua(script) => {
            match lua::with_worker_engine(*generation, script, env, |eng| eng.run(ctx, name)) {
                Ok(Some(r)) => Some(r),
                Ok(None) => {
                    tracing::error!("routing context lost in {name}");
                    None
                }
                Err(e) => {
                    Stats::inc(&env.stats.script_errors);
                    tracing::error!("script engine: {e}");
                    None
                }
            }
        }
        Routing::Wasm(plugin) => Some(plugin.run(*generation, env, ctx, name)),
    }
}

/// Runs route `name` from inside a KEMI function of the running route (tm branch routes),
/// in the same engine instance. `None` when no route is running on this thread.
pub fn run_nested(env: &Arc<Env>, ctx: Ctx, name: &str) -> Option<(Ctx, Outcome)> {
    match env.script.get()? {
        (_, Routing::Lua(_)) => lua::run_nested(ctx, name),
        // A component instance cannot be re-entered while it is running a route: the
        // nested route runs on a fresh instance of the same plugin (the message state is
        // all in `ctx`; the guest's own globals are not shared with the outer route).
        (_, Routing::Wasm(plugin)) => Some(plugin.run_isolated(env, ctx, name)),
    }
}
