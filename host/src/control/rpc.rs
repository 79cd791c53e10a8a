//! JSON-RPC 2.0 methods of the control listener, in Kamailio's jsonrpcs style
//! (`{"jsonrpc":"2.0","method":"routing.status","id":1}`; params by position or name).
//!
//! - `routing.status`: the current, previous and retired routing versions with their
//!   counters.
//! - `routing.reload`: loads the current version's file again (or the configured one).
//! - `routing.load`: loads `path` (`.lua`, `.js` or `.wasm`, or `engine` given) with an
//!   optional plugin `config`; relative paths are taken from the config file's folder.
//! - `routing.rollback`: makes the previous version current again.
//! - `app_lua.reload` / `app_lua.list`: Kamailio's names, for the Lua engines.
//! - `app_jsdt.reload`: Kamailio's name, for engine `js-wasm`.
//!
//! A load compiles and checks off the hot path; a refused one leaves the running version
//! in place and answers an error with the reason.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::engine::Source;
use crate::kemi::Env;

/// JSON-RPC error codes: the standard ones, and Kamailio's 500 for a failed command.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const FAILED: i64 = 500;

type RpcResult = Result<Value, (i64, String)>;

/// Answers one JSON-RPC request body (a single call or a batch).
pub async fn handle(env: &Arc<Env>, body: &[u8]) -> Value {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(Value::Null, PARSE_ERROR, format!("parse error: {e}")),
    };
    match req {
        Value::Array(calls) if !calls.is_empty() => {
            let mut out = Vec::with_capacity(calls.len());
            for c in calls {
                out.push(call(env, c).await);
            }
            Value::Array(out)
        }
        other => call(env, other).await,
    }
}

fn error(id: Value, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id})
}

async fn call(env: &Arc<Env>, req: Value) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return error(id, INVALID_REQUEST, "no method".into());
    };
    let params = req.get("params").cloned().unwrap_or(Value::Null);
    tracing::info!(method, "control rpc");
    match dispatch(env, method, &params).await {
        Ok(result) => json!({"jsonrpc": "2.0", "result": result, "id": id}),
        Err((code, message)) => {
            tracing::warn!(method, "control rpc failed: {message}");
            error(id, code, message)
        }
    }
}

/// Parameter `name` (or position `pos`) as a string.
fn param<'a>(params: &'a Value, pos: usize, name: &str) -> Option<&'a str> {
    match params {
        Value::Object(m) => m.get(name).and_then(Value::as_str),
        Value::Array(a) => a.get(pos).and_then(Value::as_str),
        _ => None,
    }
}

async fn dispatch(env: &Arc<Env>, method: &str, params: &Value) -> RpcResult {
    match method {
        "routing.status" => status(env),
        "routing.reload" => {
            let e = env.clone();
            blocking(move || e.routing.reload(&e)).await?;
            status(env)
        }
        "routing.load" => {
            let Some(path) = param(params, 0, "path") else {
                return Err((INVALID_PARAMS, "routing.load needs a `path`".into()));
            };
            let path = env.cfg.resolve(std::path::Path::new(path));
            let config = param(params, 1, "config");
            let mut source = match param(params, 2, "engine") {
                Some(engine) => Source {
                    engine: engine.to_string(),
                    path,
                    config: String::new(),
                },
                None => Source::from_path(&path, None, env).map_err(|m| (FAILED, m))?,
            };
            source.config = config
                .map(str::to_string)
                .unwrap_or_else(|| env.cfg.routing.config.clone());
            if source.engine != "wasm" {
                // A script engine: the script is the whole config.
                source.config.clear();
            }
            let e = env.clone();
            blocking(move || e.routing.load(&e, source)).await?;
            status(env)
        }
        "routing.rollback" => {
            env.routing.rollback().map_err(|m| (FAILED, m))?;
            status(env)
        }
        "app_lua.reload" => {
            let engine = env.routing.current().map(|v| v.source.engine.clone());
            if !engine.as_deref().is_some_and(|e| e.starts_with("lua")) {
                return Err((
                    FAILED,
                    "Reload Failed: the routing engine is not lua".into(),
                ));
            }
            let e = env.clone();
            blocking(move || e.routing.reload(&e))
                .await
                .map_err(|(c, m)| (c, format!("Reload Failed: {m}")))?;
            Ok(Value::Null)
        }
        "app_jsdt.reload" => {
            // Kamailio's app_jsdt answers {old, new} reload versions; here the versions
            // are kemibox's routing versions and the new one is already running.
            let current = env.routing.current();
            let old = match &current {
                Some(v) if v.source.engine == "js-wasm" => v.id,
                _ => {
                    return Err((
                        FAILED,
                        "Reload Failed: the routing engine is not js-wasm".into(),
                    ))
                }
            };
            let e = env.clone();
            let new = blocking(move || e.routing.reload(&e))
                .await
                .map_err(|(c, m)| (c, format!("Reload Failed: {m}")))?;
            Ok(json!({"old": old, "new": new.id}))
        }
        "app_lua.list" => match env.routing.current() {
            Some(v) if v.source.engine.starts_with("lua") => {
                Ok(json!([format!("0: [{}]", v.source.path.display())]))
            }
            _ => Ok(json!(["No scripts loaded"])),
        },
        _ => Err((METHOD_NOT_FOUND, format!("method not found: {method}"))),
    }
}

fn status(env: &Arc<Env>) -> RpcResult {
    serde_json::to_value(env.routing.status()).map_err(|e| (FAILED, e.to_string()))
}

/// Runs a load on a blocking thread: compiling a plugin or building a Lua state must
/// not hold up a worker.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, (i64, String)> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|m| (FAILED, m)),
        Err(e) => Err((FAILED, format!("load task failed: {e}"))),
    }
}
