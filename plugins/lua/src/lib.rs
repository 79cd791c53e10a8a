//! Lua 5.4 inside a kemibox wasm plugin (`[routing] engine = "lua-wasm"`).
//!
//! The component embeds the real Lua 5.4 (mlua with vendored Lua, compiled to
//! wasm32-wasip2 by zig's clang with wasm exception handling for Lua's setjmp/longjmp).
//! It runs any KSR Lua script given as the plugin's config at `init` (not compiled in):
//!
//! - `KSR` is built from the generic indexed interface `kemi`: one Lua function per
//!   export, calling it by index, made on first use; only loaded modules appear
//!   (`if KSR.nathelper then`).
//! - Arguments are converted as Kamailio's app_lua does (lua_tostring/lua_tointeger);
//!   a function without result gives `false` (no parameters) or `0`, as on the native
//!   engine.
//! - `KSR.x.exit()`/`KSR.x.drop()` raise a private sentinel value caught by an `xpcall`
//!   wrapper inside Lua: an exit never leaves the component.
//! - `request-route`, `reply-route` and `route(name)` call the script's global functions
//!   `ksr_request_route`, `ksr_reply_route` and `name`.
//! - A Lua runtime error is logged through `KSR.err` with its file:line and traceback,
//!   then the component traps: the server answers 500, counts it and gives the worker a
//!   fresh instance (the script is loaded again).
//!
//! The config string is the script's source. When it starts with `@`, its first line is
//! the chunk name (`@/etc/kemibox/routing.lua`, as kemibox passes it) and the script
//! starts on the next line, so error positions name the file and its lines.

use std::cell::RefCell;
use std::collections::HashMap;

use kemibox_guest::bindings;
use mlua::{Function, Lua, MultiValue, Value};

use bindings::kemibox::kemi::core as kcore;
use bindings::kemibox::kemi::kemi::{self as k, ParamType, ReturnType};
use bindings::kemibox::kemi::types::{CallError, Value as KVal};

/// The message Kamailio's app_lua uses for `KSR.x.exit`; the sentinel prints as this.
const EXIT_SENTINEL: &str = "~~ksr~exit~~";

/// Marks an exit or drop that a KEMI function returned (rather than `KSR.x.exit`).
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
        _ => false,
    }
}

/// Run once after `KSR` is built, before the script. The exit sentinel is a private
/// table: an exit costs a comparison, a real error keeps its position and stack. A
/// script's own `pcall` still catches an exit, as in Kamailio.
const PRELUDE: &str = r#"
local is_exit_error = ...
local exit = setmetatable({}, { __tostring = function() return "~~ksr~exit~~" end })
local traceback = debug.traceback
local xpcall, tostring, error, type = xpcall, tostring, error, type
if KSR.x then
    local set_drop = KSR.set_drop
    KSR.x.exit = function() error(exit, 0) end
    KSR.x.drop = function() if set_drop then set_drop() end; error(exit, 0) end
end
-- Kamailio runs the cfg route of that name; a KEMI-only config keeps routes in the script.
KSR.route = function(name)
    local f = _G[name]
    if type(f) ~= "function" then return -1 end
    f()
    return 1
end
-- No process to end: os.exit would stop the whole component.
os.exit = function() error("os.exit is not available in kemibox", 2) end
local function handler(e)
    if type(e) == "string" then return traceback(e, 2) end
    return e
end
return function(f)
    local ok, err = xpcall(f, handler)
    if ok or err == exit or is_exit_error(err) then return nil end
    return tostring(err)
end
"#;

/// The Lua state of this instance.
struct Runtime {
    lua: Lua,
    /// Calls a route function under `xpcall`: `nil`, or the error.
    runner: Function,
    /// `ksr_request_route` (always there) and `ksr_reply_route`, looked up once.
    request: Function,
    reply: Option<Function>,
    /// Other routes, by name, looked up on first use.
    routes: HashMap<String, Option<Function>>,
}

thread_local! {
    static RT: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// Converts a Lua argument to a KEMI parameter the way app_lua does (lua_tostring /
/// lua_tointeger), as the native engine does.
fn to_param(v: &Value, t: ParamType) -> KVal {
    match t {
        ParamType::Str => match v {
            Value::String(s) => KVal::Str(s.to_string_lossy()),
            Value::Integer(i) => KVal::Str(i.to_string()),
            Value::Number(n) => KVal::Str(n.to_string()),
            _ => KVal::Str(String::new()),
        },
        ParamType::Int => match v {
            Value::Integer(i) => KVal::Int(*i),
            Value::Number(n) => KVal::Int(*n as i64),
            Value::String(s) => KVal::Int(
                s.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .unwrap_or(0),
            ),
            _ => KVal::Int(0),
        },
    }
}

fn to_lua(lua: &Lua, v: KVal) -> mlua::Result<Value> {
    Ok(match v {
        KVal::None => Value::Nil,
        KVal::Bool(b) => Value::Boolean(b),
        KVal::Int(i) => Value::Integer(i),
        KVal::Str(s) => Value::String(lua.create_string(&s)?),
    })
}

fn log_error(text: &str) {
    if kcore::err(&format!("{text}\n")).is_err() {
        eprintln!("{text}");
    }
}

fn full_name(e: &k::ExportInfo) -> String {
    if e.module.is_empty() {
        format!("KSR.{}", e.name)
    } else {
        format!("KSR.{}.{}", e.module, e.name)
    }
}

/// One KSR function: calls export `index` with the arguments converted to `params`.
fn kemi_fn(lua: &Lua, index: u32, e: &k::ExportInfo) -> mlua::Result<Function> {
    let name = full_name(e);
    let params = e.params.clone();
    let ret = e.ret;
    lua.create_function(move |lua, args: MultiValue| {
        if args.len() < params.len() {
            log_error(&format!("not enough parameters for: {name}"));
            return Ok(Value::Boolean(false));
        }
        // Up to 4 parameters (nearly every export) live on the stack.
        let mut few: [KVal; 4] = [KVal::None, KVal::None, KVal::None, KVal::None];
        let many: Vec<KVal>;
        let vals: &[KVal] = if params.len() <= few.len() {
            for ((slot, t), v) in few.iter_mut().zip(params.iter()).zip(args.iter()) {
                *slot = to_param(v, *t);
            }
            &few[..params.len()]
        } else {
            many = params
                .iter()
                .zip(args.iter())
                .map(|(t, v)| to_param(v, *t))
                .collect();
            &many
        };
        match k::call(index, vals) {
            Ok(v) => match (ret, v) {
                (ReturnType::None, _) if params.is_empty() => Ok(Value::Boolean(false)),
                (ReturnType::None, _) => Ok(Value::Integer(0)),
                (_, v) => to_lua(lua, v),
            },
            Err(CallError::Exit) | Err(CallError::Drop) => Err(mlua::Error::external(ExitSignal)),
            Err(CallError::BadArgs(m)) => {
                log_error(&m);
                Ok(Value::Boolean(false))
            }
        }
    })
}

/// What `KSR.<key>` can be: a core function or a loaded module's table.
enum Entry {
    Core(u32),
    /// The module's exports (indexes).
    Module(Vec<u32>),
}

/// `KSR`: a core function per core export, a table per loaded module with a function per
/// export, each calling its export by index. They are made on first use (`__index` of
/// `KSR`'s metatable, then stored in `KSR`): an instance builds only what its script
/// touches, which keeps `init` short (tm branch routes run on a fresh instance). A name
/// that is neither gives `nil`, so `if KSR.nathelper then` tests whether the module is
/// loaded.
fn build_ksr(lua: &Lua) -> mlua::Result<()> {
    let exports = std::rc::Rc::new(k::exports());
    let mut names: HashMap<String, Entry> = HashMap::new();
    for (idx, e) in exports.iter().enumerate() {
        let Ok(index) = u32::try_from(idx) else {
            break;
        };
        if e.module.is_empty() {
            names.insert(e.name.clone(), Entry::Core(index));
        } else {
            match names
                .entry(e.module.clone())
                .or_insert_with(|| Entry::Module(Vec::new()))
            {
                Entry::Module(v) => v.push(index),
                Entry::Core(_) => {}
            }
        }
    }
    let ksr = lua.create_table()?;
    let meta = lua.create_table()?;
    let index = lua.create_function(move |lua, (ksr, key): (mlua::Table, Value)| {
        let Value::String(key) = key else {
            return Ok(Value::Nil);
        };
        let Ok(key) = key.to_str() else {
            return Ok(Value::Nil);
        };
        let v = match names.get(&*key) {
            None => return Ok(Value::Nil),
            Some(Entry::Core(i)) => Value::Function(kemi_fn(lua, *i, &exports[*i as usize])?),
            Some(Entry::Module(list)) => {
                let t = lua.create_table_with_capacity(0, list.len())?;
                for i in list {
                    let e = &exports[*i as usize];
                    t.raw_set(e.name.as_str(), kemi_fn(lua, *i, e)?)?;
                }
                Value::Table(t)
            }
        };
        ksr.raw_set(&*key, v.clone())?;
        Ok(v)
    })?;
    meta.raw_set("__index", index)?;
    ksr.set_metatable(Some(meta))?;
    lua.globals().set("KSR", ksr)
}

/// Splits the config into chunk name and source (see the crate docs).
fn chunk(config: &str) -> (String, &str) {
    match config.strip_prefix('@') {
        Some(rest) => match rest.split_once('\n') {
            Some((name, src)) => (format!("@{}", name.trim_end_matches('\r')), src),
            None => (format!("@{rest}"), ""),
        },
        None => ("=script".to_string(), config),
    }
}

impl Runtime {
    fn new(config: &str) -> Result<Runtime, String> {
        // Every standard library, `debug` included (tracebacks; scripts use
        // debug.sethook): the component is the sandbox. `io` and `os` reach only what
        // kemibox grants the instance through WASI, which is nothing.
        // SAFETY: the debug library can break Lua's invariants only through script code,
        // whose worst outcome is a trap of this instance; no C modules can be loaded.
        let lua = unsafe { Lua::unsafe_new_with(mlua::StdLib::ALL, mlua::LuaOptions::default()) };
        build_ksr(&lua).map_err(|e| format!("building KSR: {e}"))?;
        let is_exit_error = lua
            .create_function(|_, v: Value| Ok(matches!(v, Value::Error(ref e) if is_exit(e))))
            .map_err(|e| e.to_string())?;
        let runner: Function = lua
            .load(PRELUDE)
            .set_name("=kemibox")
            .call(is_exit_error)
            .map_err(|e| format!("prelude: {e}"))?;
        let (name, source) = chunk(config);
        lua.load(source)
            .set_name(name.as_str())
            .exec()
            .map_err(|e| e.to_string())?;
        let global = |n: &str| lua.globals().get::<Option<Function>>(n).ok().flatten();
        let Some(request) = global("ksr_request_route") else {
            let file = name.trim_start_matches(['@', '=']);
            return Err(format!("{file}: no function ksr_request_route"));
        };
        let reply = global("ksr_reply_route");
        Ok(Runtime {
            lua,
            runner,
            request,
            reply,
            routes: HashMap::new(),
        })
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

    /// Runs route `name`: `Ok(false)` when the script has no such function.
    fn run(&mut self, name: &str) -> Result<bool, String> {
        match name {
            "ksr_request_route" => call(&self.runner, &self.request),
            "ksr_reply_route" => match &self.reply {
                Some(f) => call(&self.runner, f),
                None => Ok(false),
            },
            _ => match self.route_fn(name) {
                Some(f) => call(&self.runner, &f),
                None => Ok(false),
            },
        }
    }
}

/// Calls route function `f` through the `xpcall` runner.
fn call(runner: &Function, f: &Function) -> Result<bool, String> {
    match runner.call::<Option<mlua::String>>(f) {
        Ok(None) => Ok(true),
        Ok(Some(e)) => Err(e.to_string_lossy()),
        Err(e) if is_exit(&e) => Ok(true),
        Err(e) => Err(e.to_string()),
    }
}

struct LuaPlugin;

impl kemibox_guest::script::ScriptRuntime for LuaPlugin {
    fn init(config: &str) -> Result<(), String> {
        let rt = Runtime::new(config)?;
        RT.with(|r| *r.borrow_mut() = Some(rt));
        Ok(())
    }

    /// A Lua error is logged and traps, so the server answers 500 and counts a script
    /// error.
    fn run(name: &str) -> Result<bool, String> {
        RT.with(|rt| match rt.borrow_mut().as_mut() {
            Some(rt) => rt.run(name),
            None => Err("the Lua runtime was not initialised".into()),
        })
        .map_err(|e| format!("lua-wasm: error in {name}: {e}\n"))
    }
}

kemibox_guest::script_runtime!(LuaPlugin);
