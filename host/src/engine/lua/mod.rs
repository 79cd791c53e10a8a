//! The native Lua engine (mlua, vendored Lua 5.4): one Lua state per worker thread, with a
//! `KSR` table built from the KEMI registry, running Kamailio's KEMI event callbacks.
//!
//! As in Kamailio's app_lua: only loaded modules appear under `KSR`, `KSR.x.exit()` stops
//! the script from any call depth (an error carrying a sentinel, caught after the call),
//! `KSR.x.drop()` marks the message dropped and exits.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use mlua::{Function, Lua, MultiValue, Value};
use thiserror::Error;

use crate::kemi::{full_name, Ctx, Env, KemiError, PType, RType, Val};

/// The message Kamailio's app_lua uses for `KSR.x.exit`; kept for scripts that look at
/// a caught error.
pub const EXIT_SENTINEL: &str = "~~ksr~exit~~";

#[derive(Debug, Error)]
pub enum LuaError {
    #[error("{path}: cannot read script: {err}")]
    Read { path: String, err: String },
    #[error("{0}")]
    Load(String),
}

/// The script as loaded from disk; every worker builds its own Lua state from it.
#[derive(Debug, Clone)]
pub struct Script {
    pub path: PathBuf,
    pub source: Arc<str>,
}

impl Script {
    pub fn read(path: &Path) -> Result<Script, LuaError> {
        let source = std::fs::read_to_string(path).map_err(|e| LuaError::Read {
            path: path.display().to_string(),
            err: e.to_string(),
        })?;
        Ok(Script {
            path: path.to_path_buf(),
            source: source.into(),
        })
    }
}

/// How a route call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function returned or called `KSR.x.exit()`/`KSR.x.drop()`.
    Done,
    /// The callback is not defined in the script.
    Missing,
    /// A Lua runtime error, with its message (file:line and traceback).
    Error(String),
}

#[derive(Debug)]
struct ExitSignal;

impl std::fmt::Display for ExitSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(EXIT_SENTINEL)
    }
}

impl std::error::Error for ExitSignal {}

fn is_exit(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::ExternalError(inner) => inner.downcast_ref::<ExitSignal>().is_some(),
        mlua::Error::CallbackError { cause, .. } => is_exit(cause),
        mlua::Error::WithContext { cause, .. } => is_exit(cause),
        mlua::Error::RuntimeError(m) => m == EXIT_SENTINEL,
        _ => false,
    }
}

type Slot = Rc<RefCell<Option<Ctx>>>;

/// One Lua state with `KSR` bound to the registry.
pub struct LuaEngine {
    lua: Lua,
    slot: Slot,
    /// `$var(..)` values live as long as the worker, as in Kamailio.
    vars: HashMap<String, Val>,
    routes: HashMap<String, Option<Function>>,
    /// `__kemibox_run`: calls a route under `xpcall`, telling exit from errors.
    runner: Function,
}

impl LuaEngine {
    pub fn new(script: &Script, env: &Arc<Env>) -> Result<LuaEngine, LuaError> {
        // The standard libraries app_lua gives Kamailio scripts, `debug` included (for
        // tracebacks; scripts use debug.sethook). This engine runs the operator's own
        // trusted script; tenants' code is sandboxed by the wasm engine instead.
        // SAFETY: the debug library can break Lua's invariants only through script
        // code, which is trusted here; no C modules are loaded.
        let lua = unsafe {
            Lua::unsafe_new_with(
                mlua::StdLib::ALL_SAFE | mlua::StdLib::DEBUG,
                mlua::LuaOptions::default(),
            )
        };
        let slot: Slot = Rc::new(RefCell::new(None));
        build_ksr(&lua, env, &slot).map_err(|e| LuaError::Load(e.to_string()))?;
        lua.load(EXIT_PRELUDE)
            .set_name("=kemibox")
            .exec()
            .map_err(|e| LuaError::Load(e.to_string()))?;
        let runner: Function = lua
            .globals()
            .get("__kemibox_run")
            .map_err(|e| LuaError::Load(e.to_string()))?;
        let name = format!("@{}", script.path.display());
        lua.load(&*script.source)
            .set_name(name)
            .exec()
            .map_err(|e| LuaError::Load(e.to_string()))?;
        if lua
            .globals()
            .get::<Option<Function>>("ksr_request_route")
            .ok()
            .flatten()
            .is_none()
        {
            return Err(LuaError::Load(format!(
                "{}: no function ksr_request_route",
                script.path.display()
            )));
        }
        Ok(LuaEngine {
            lua,
            slot,
            vars: HashMap::new(),
            routes: HashMap::new(),
            runner,
        })
    }

    /// True when the script defines a global function of that name.
    pub fn has_route(&mut self, name: &str) -> bool {
        self.route_fn(name).is_some()
    }

    fn route_fn(&mut self, name: &str) -> Option<Function> {
        if let Some(f) = self.routes.get(name) {
            return f.clone();
        }
        let f = self
            .lua
            .globals()
            .get::<Option<Function>>(name)
            .ok()
            .flatten();
        self.routes.insert(name.to_string(), f.clone());
        f
    }

    /// Runs the route function `name` on the message in `ctx`, returning the context
    /// (`None` only if the context was lost, which the engine never does).
    pub fn run(&mut self, mut ctx: Ctx, name: &str) -> Option<(Ctx, Outcome)> {
        let Some(f) = self.route_fn(name) else {
            return Some((ctx, Outcome::Missing));
        };
        std::mem::swap(&mut ctx.vars, &mut self.vars);
        *self.slot.borrow_mut() = Some(ctx);
        ACTIVE.with(|a| a.borrow_mut().push((self.lua.clone(), self.slot.clone())));
        let r = self.runner.call::<(bool, Option<String>)>(f);
        ACTIVE.with(|a| a.borrow_mut().pop());
        let mut ctx = self.slot.borrow_mut().take()?;
        std::mem::swap(&mut ctx.vars, &mut self.vars);
        Some((ctx, outcome_of(r)))
    }
}

/// `KSR.x.exit`/`KSR.x.drop` raise a private table as the error value, with no position
/// and no traceback, and routes run under `xpcall` with `debug.traceback` as handler: an
/// exit costs a table comparison, while a real error keeps its file:line and stack. (An
/// exit that crossed into Rust would make mlua build a traceback on every request.) A
/// script's own `pcall` still catches an exit, as in Kamailio.
const EXIT_PRELUDE: &str = r#"
local exit = setmetatable({}, { __tostring = function() return "~~ksr~exit~~" end })
local set_drop = KSR.set_drop
local traceback = debug.traceback
local xpcall, tostring, error = xpcall, tostring, error
KSR.x.exit = function() error(exit, 0) end
KSR.x.drop = function() set_drop(); error(exit, 0) end
__kemibox_run = function(f)
    local ok, err = xpcall(f, traceback)
    if ok or err == exit then return true end
    return false, tostring(err)
end
"#;

fn outcome_of(r: mlua::Result<(bool, Option<String>)>) -> Outcome {
    match r {
        Ok((true, _)) => Outcome::Done,
        Ok((false, e)) => Outcome::Error(e.unwrap_or_else(|| "unknown error".into())),
        Err(e) if is_exit(&e) => Outcome::Done,
        Err(e) => Outcome::Error(e.to_string()),
    }
}

/// Converts a Lua argument to a KEMI parameter the way app_lua does
/// (lua_tostring / lua_tointeger).
fn to_param(v: &Value, t: PType) -> Val {
    match t {
        PType::Str => match v {
            Value::String(s) => Val::Str(s.to_string_lossy()),
            Value::Integer(i) => Val::Str(i.to_string()),
            Value::Number(n) => Val::Str(n.to_string()),
            _ => Val::Str(String::new()),
        },
        PType::Int => match v {
            Value::Integer(i) => Val::Int(*i),
            Value::Number(n) => Val::Int(*n as i64),
            Value::String(s) => Val::Int(
                s.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .unwrap_or(0),
            ),
            _ => Val::Int(0),
        },
    }
}

fn to_lua(lua: &Lua, v: Val) -> mlua::Result<Value> {
    Ok(match v {
        Val::None => Value::Nil,
        Val::Bool(b) => Value::Boolean(b),
        Val::Int(i) => Value::Integer(i),
        Val::Str(s) => Value::String(lua.create_string(&s)?),
    })
}

fn build_ksr(lua: &Lua, env: &Arc<Env>, slot: &Slot) -> mlua::Result<()> {
    let ksr = lua.create_table()?;
    let mut tables: HashMap<&'static str, mlua::Table> = HashMap::new();
    for (idx, e) in env.registry.exports().iter().enumerate() {
        let env2 = env.clone();
        let slot2 = slot.clone();
        let params = e.params;
        let ret = e.ret;
        let f = lua.create_function(move |lua, args: MultiValue| {
            let export = &env2.registry.exports()[idx];
            if args.len() < params.len() {
                tracing::error!(target: "script", "not enough parameters for: {}", full_name(export));
                return Ok(Value::Boolean(false));
            }
            let vals: Vec<Val> = params
                .iter()
                .zip(args.iter())
                .map(|(t, v)| to_param(v, *t))
                .collect();
            // The context leaves the slot during the call, so a function that runs a route
            // of its own (t_relay running a branch route) can put another context there.
            let taken = slot2.borrow_mut().take();
            let Some(mut ctx) = taken else {
                return Err(mlua::Error::RuntimeError(format!(
                    "{} called outside a route",
                    full_name(export)
                )));
            };
            let result = env2.registry.call(idx, &mut ctx, &vals);
            *slot2.borrow_mut() = Some(ctx);
            match result {
                Ok(v) => match (ret, v) {
                    (RType::None, _) if params.is_empty() => Ok(Value::Boolean(false)),
                    (RType::None, _) => Ok(Value::Integer(0)),
                    (_, v) => to_lua(lua, v),
                },
                Err(KemiError::Exit) | Err(KemiError::Drop) => {
                    Err(mlua::Error::external(ExitSignal))
                }
                Err(KemiError::Args(f, m)) => {
                    tracing::error!(target: "script", "{f}: {m}");
                    Ok(Value::Boolean(false))
                }
            }
        })?;
        if e.module.is_empty() {
            ksr.set(e.name, f)?;
        } else {
            let t = match tables.get(e.module) {
                Some(t) => t.clone(),
                None => {
                    let t = lua.create_table()?;
                    ksr.set(e.module, t.clone())?;
                    tables.insert(e.module, t.clone());
                    t
                }
            };
            t.set(e.name, f)?;
        }
    }
    // KSR.route("name") runs the script function of that name (Kamailio runs a cfg
    // route of that name; with a KEMI-only config the script is where routes live).
    let route = lua.create_function(|lua, name: String| {
        match lua.globals().get::<Option<Function>>(name.as_str())? {
            Some(f) => {
                f.call::<()>(())?;
                Ok(1)
            }
            None => Ok(-1),
        }
    })?;
    ksr.set("route", route)?;
    lua.globals().set("KSR", ksr)?;
    Ok(())
}

thread_local! {
    static WORKER: RefCell<Vec<(std::sync::Weak<super::Version>, LuaEngine)>> =
        const { RefCell::new(Vec::new()) };
    /// The Lua states running a route on this thread (innermost last), for routes that a
    /// KEMI function runs while the script is still inside it (tm branch routes).
    static ACTIVE: RefCell<Vec<(Lua, Slot)>> = const { RefCell::new(Vec::new()) };
}

/// True when a Lua route is running on this thread (a KEMI function of it is executing).
pub fn in_route() -> bool {
    ACTIVE.with(|a| !a.borrow().is_empty())
}

/// Runs route `name` on `ctx` in the Lua state that is currently executing a KEMI call on
/// this thread (Kamailio runs a branch route from inside `t_relay`). `None` when no route
/// is running here.
pub fn run_nested(ctx: Ctx, name: &str) -> Option<(Ctx, Outcome)> {
    let (lua, slot) = ACTIVE.with(|a| a.borrow().last().cloned())?;
    let Some(f) = lua.globals().get::<Option<Function>>(name).ok().flatten() else {
        return Some((ctx, Outcome::Missing));
    };
    let runner: Function = lua.globals().get("__kemibox_run").ok()?;
    let outer = slot.borrow_mut().replace(ctx);
    let r = runner.call::<(bool, Option<String>)>(f);
    let ctx = std::mem::replace(&mut *slot.borrow_mut(), outer)?;
    Some((ctx, outcome_of(r)))
}

/// Lua states a worker keeps: one per routing version it ran lately (the current one and
/// those still finishing transactions), least recently used first.
const STATES_PER_WORKER: usize = 4;

/// Runs `f` with this worker thread's engine for routing `version`, building it on first
/// use (or after a reload). States of versions no longer loaded anywhere are dropped.
pub fn with_worker_engine<T>(
    version: &Arc<super::Version>,
    script: &Script,
    env: &Arc<Env>,
    f: impl FnOnce(&mut LuaEngine) -> T,
) -> Result<T, LuaError> {
    WORKER.with(|w| {
        let mut w = w.borrow_mut();
        let key = Arc::downgrade(version);
        let pos = match w.iter().position(|(k, _)| k.ptr_eq(&key)) {
            Some(p) => p,
            None => {
                w.retain(|(k, _)| k.strong_count() > 0);
                if w.len() >= STATES_PER_WORKER {
                    w.remove(0);
                }
                w.push((key, LuaEngine::new(script, env)?));
                w.len() - 1
            }
        };
        if pos + 1 != w.len() {
            let e = w.remove(pos);
            w.push(e);
        }
        match w.last_mut() {
            Some((_, engine)) => Ok(f(engine)),
            None => Err(LuaError::Load("engine missing".into())),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;

    use super::*;
    use crate::kemi::{RecvInfo, RouteKind};
    use crate::net::Proto;
    use crate::sip::Message;
    use crate::testutil::Recorder;

    const OPTIONS: &str = "OPTIONS sip:bob@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    fn setup(script: &str) -> (Arc<Env>, Arc<Recorder>, LuaEngine) {
        let (env, rec) = crate::testutil::env(
            &["udp:127.0.0.1:5060"],
            &["sl", "maxfwd", "kx", "textops"],
            "",
        );
        let path = env.cfg.base_dir.join("s.lua");
        std::fs::write(&path, script).expect("write");
        let eng = LuaEngine::new(&Script::read(&path).expect("read"), &env).expect("load");
        (env, rec, eng)
    }

    fn ctx(env: &Arc<Env>) -> Ctx {
        ctx_of(env, OPTIONS)
    }

    fn ctx_of(env: &Arc<Env>, text: &str) -> Ctx {
        let msg = Message::parse(Bytes::copy_from_slice(text.as_bytes())).expect("parse");
        let rcv = RecvInfo {
            proto: Proto::Udp,
            src: "127.0.0.1:5070".parse().expect("a"),
            local: "127.0.0.1:5060".parse().expect("a"),
            conn: None,
        };
        Ctx::new(env.clone(), msg, rcv, RouteKind::Request)
    }

    fn replies(rec: &Recorder) -> Vec<String> {
        rec.sent
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, d)| {
                String::from_utf8_lossy(d)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn exit_from_any_depth_and_loaded_modules_only() {
        let (env, rec, mut eng) = setup(
            "function deep() KSR.sl.sl_send_reply(200, 'first'); KSR.x.exit(); KSR.sl.sl_send_reply(500, 'after exit') end\n\
             function ksr_request_route()\n\
               if KSR.sanity ~= nil or KSR.siputils ~= nil then KSR.sl.sl_send_reply(500, 'module not loaded is visible') end\n\
               if KSR.maxfwd == nil then KSR.sl.sl_send_reply(500, 'maxfwd missing') end\n\
               deep()\n\
               KSR.sl.sl_send_reply(500, 'after deep')\n\
             end",
        );
        let (_, out) = eng.run(ctx(&env), "ksr_request_route").expect("ctx back");
        assert_eq!(out, Outcome::Done);
        assert_eq!(replies(&rec), vec!["SIP/2.0 200 first"]);
    }

    #[test]
    fn drop_marks_and_stops_and_return_conventions() {
        let (env, rec, mut eng) = setup(
            "function ksr_request_route()\n\
               -- none-type with no params is false, with params 0; int functions give -1/1\n\
               if KSR.set_drop() ~= false then error('set_drop should give false') end\n\
               if KSR.info('x') ~= 0 then error('info should give 0') end\n\
               if KSR.hdr.is_present('X-Nope') ~= -1 then error('is_present -1') end\n\
               if KSR.pv.get('$var(n)') ~= 0 then error('$var default 0') end\n\
               if KSR.pv.get('$avp(n)') ~= nil then error('$avp null is nil') end\n\
               if KSR.pv.getw('$avp(n)') ~= '<null>' then error('getw') end\n\
               if KSR.pv.get('$rp') ~= '5080' or KSR.pv.get('$sp') ~= 5070 then error('rp/sp') end\n\
               if KSR.kx.get_method() ~= 'OPTIONS' or KSR.pv.get('$pr') ~= 'udp' then error('method/proto') end\n\
               KSR.x.drop()\n\
               KSR.sl.sl_send_reply(500, 'after drop')\n\
             end",
        );
        let (c, out) = eng.run(ctx(&env), "ksr_request_route").expect("ctx back");
        assert_eq!(out, Outcome::Done);
        assert!(c.drop);
        assert!(replies(&rec).is_empty());
    }

    #[test]
    fn lua_error_names_file_and_line() {
        let (env, _, mut eng) =
            setup("function ksr_request_route()\n  local t = nil\n  return t.x\nend\n");
        let (_, out) = eng.run(ctx(&env), "ksr_request_route").expect("ctx back");
        match out {
            Outcome::Error(e) => assert!(e.contains("s.lua:3:"), "{e}"),
            o => panic!("expected an error, got {o:?}"),
        }
    }

    #[test]
    fn forward_adds_via_and_vars_persist() {
        let (env, rec, mut eng) = setup(
            "function ksr_request_route()\n\
               KSR.pv.seti('$var(n)', KSR.pv.geti('$var(n)') + 1)\n\
               KSR.hdr.append('X-Count: ' .. KSR.pv.get('$var(n)') .. '\\r\\n')\n\
               KSR.maxfwd.process_maxfwd(10)\n\
               if KSR.forward() ~= 1 then error('forward failed') end\n\
             end",
        );
        for _ in 0..2 {
            let _ = eng.run(ctx(&env), "ksr_request_route").expect("ctx back");
        }
        let sent = rec.sent.lock().expect("lock");
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent[1].0.addr,
            "127.0.0.1:5080".parse::<SocketAddr>().expect("a")
        );
        let text = String::from_utf8_lossy(&sent[1].1);
        assert!(text.starts_with("OPTIONS sip:bob@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsl"), "{text}");
        assert!(
            text.contains("Max-Forwards: 69\r\n") && text.contains("X-Count: 2\r\n"),
            "{text}"
        );
    }

    #[test]
    fn body_edits_fix_content_length() {
        let (env, rec, mut eng) = setup(
            "function ksr_request_route()\n\
               if KSR.textops.replace('a=sendrecv', 'a=sendonly-but-longer') ~= 1 then error('no match') end\n\
               KSR.forward()\n\
             end",
        );
        let body = "v=0\r\na=sendrecv\r\n";
        let msg = OPTIONS.replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        let (_, out) = eng
            .run(ctx_of(&env, &msg), "ksr_request_route")
            .expect("ctx back");
        assert_eq!(out, Outcome::Done);
        let sent = rec.sent.lock().expect("lock");
        let text = String::from_utf8_lossy(&sent[0].1).to_string();
        let (head, new_body) = text.split_once("\r\n\r\n").expect("blank line");
        assert_eq!(new_body, "v=0\r\na=sendonly-but-longer\r\n");
        assert!(
            head.contains(&format!("Content-Length: {}", new_body.len())),
            "{text}"
        );
    }
}
