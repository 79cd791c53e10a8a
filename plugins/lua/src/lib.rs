//! Lua 5.4 inside a kemibox wasm plugin (`[routing] engine = "lua-wasm"`).
//!
//! The component embeds the real Lua 5.4 (mlua with vendored Lua, compiled to
//! wasm32-wasip2 by zig's clang with wasm exception handling for Lua's setjmp/longjmp).
//! It runs any KSR Lua script given as the plugin's config at `init` (not compiled in):
//!
//! - `KSR` is built from the generic indexed interface `kemi`: one Lua C function per
//!   export, calling it by index, made on first use; only loaded modules appear
//!   (`if KSR.nathelper then`).
//! - Arguments are converted as Kamailio's app_lua does (lua_tostring/lua_tointeger);
//!   a function without result gives `false` (no parameters) or `0`, as on the native
//!   engine.
//! - `KSR.x.exit()`/`KSR.x.drop()` (and a KEMI function answering exit or drop) raise a
//!   private sentinel value caught by an `xpcall` wrapper inside Lua: an exit never
//!   leaves the component.
//! - `request-route`, `reply-route` and `route(name)` call the script's global functions
//!   `ksr_request_route`, `ksr_reply_route` and `name`.
//! - A Lua runtime error is logged through `KSR.err` with its file:line and traceback,
//!   then the component traps: the server answers 500, counts it and gives the worker a
//!   fresh instance (the script is loaded again).
//!
//! The config string is the script's source. When it starts with `@`, its first line is
//! the chunk name (`@/etc/kemibox/routing.lua`, as kemibox passes it) and the script
//! starts on the next line, so error positions name the file and its lines.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{c_int, CStr};

use kemibox_guest::bindings;
use mlua::{ffi, Function, Lua, Table, Value};

use bindings::kemibox::kemi::core as kcore;
use bindings::kemibox::kemi::kemi::{self as k, ParamType, ReturnType};

/// `kemi.call` bound with borrowed arguments: a KSR call passes the Lua strings in place
/// (valid while they sit on the Lua stack) instead of copying each into a `String`.
mod borrowed {
    wit_bindgen::generate!({
        inline: "package kemibox:lua-runtime; world calls { import kemibox:kemi/kemi@0.1.0; }",
        path: "../../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
        generate_all,
    });
}

use borrowed::kemibox::kemi::kemi::call as kemi_call_import;
use borrowed::kemibox::kemi::types::{CallError, ValueParam, ValueResult};

/// Registry key of the exit sentinel: the private table `KSR.x.exit()` raises, and what a
/// KEMI function that ends the route raises too.
const EXIT_KEY: &CStr = c"kemibox.exit";

/// Run once after `KSR` is built, before the script, with the exit sentinel: a private
/// table, so an exit costs a comparison and a real error keeps its position and stack. A
/// script's own `pcall` still catches an exit, as in Kamailio.
const PRELUDE: &str = r#"
local exit = ...
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
    if ok or err == exit then return nil end
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

/// A KEMI argument read off the Lua stack: a string borrowed from Lua where it can be.
enum Arg<'a> {
    Int(i64),
    Str(Cow<'a, str>),
}

impl Arg<'_> {
    fn param(&self) -> ValueParam<'_> {
        match self {
            Arg::Int(i) => ValueParam::Int(*i),
            Arg::Str(s) => ValueParam::Str(s),
        }
    }
}

/// Converts Lua argument `i` to a KEMI parameter the way app_lua does (lua_tostring /
/// lua_tointeger), as the native engine does.
///
/// # Safety
/// `l` is a live Lua state inside a C function call and `i` one of its arguments; the
/// result borrows from the stack slot, which stays put until the call returns.
unsafe fn to_param<'a>(l: *mut ffi::lua_State, i: c_int, t: ParamType) -> Arg<'a> {
    let ty = ffi::lua_type(l, i);
    let is_int = ty == ffi::LUA_TNUMBER && ffi::lua_isinteger(l, i) != 0;
    match t {
        ParamType::Str => Arg::Str(match ty {
            ffi::LUA_TSTRING => String::from_utf8_lossy(lua_bytes(l, i)),
            ffi::LUA_TNUMBER if is_int => {
                Cow::Owned(ffi::lua_tointegerx(l, i, std::ptr::null_mut()).to_string())
            }
            ffi::LUA_TNUMBER => {
                Cow::Owned(ffi::lua_tonumberx(l, i, std::ptr::null_mut()).to_string())
            }
            _ => Cow::Borrowed(""),
        }),
        ParamType::Int => Arg::Int(match ty {
            ffi::LUA_TNUMBER if is_int => ffi::lua_tointegerx(l, i, std::ptr::null_mut()),
            ffi::LUA_TNUMBER => ffi::lua_tonumberx(l, i, std::ptr::null_mut()) as i64,
            ffi::LUA_TSTRING => std::str::from_utf8(lua_bytes(l, i))
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(0),
            _ => 0,
        }),
    }
}

/// The bytes of string `i` on the stack (valid while it stays there).
///
/// # Safety
/// Value `i` of `l` is a string.
unsafe fn lua_bytes<'a>(l: *mut ffi::lua_State, i: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, i, &mut len);
    if p.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(p.cast::<u8>(), len)
}

/// Pushes a KEMI result onto the Lua stack.
///
/// # Safety
/// `l` is a live Lua state with room for one more value.
unsafe fn push_value(l: *mut ffi::lua_State, v: &ValueResult) {
    match v {
        ValueResult::None => ffi::lua_pushnil(l),
        ValueResult::Bool(b) => ffi::lua_pushboolean(l, c_int::from(*b)),
        ValueResult::Int(i) => ffi::lua_pushinteger(l, *i),
        ValueResult::Str(s) => {
            ffi::lua_pushlstring(l, s.as_ptr().cast(), s.len());
        }
    }
}

fn log_error(text: &str) {
    if kcore::err(&format!("{text}\n")).is_err() {
        eprintln!("{text}");
    }
}

/// A KSR function: a Lua C function whose upvalue is the export index. It reads its
/// arguments straight off the Lua stack and pushes the result, with no conversion
/// through mlua's values (a KEMI call is the most frequent thing a script does).
///
/// # Safety
/// Called by Lua only, as a C closure made by `kemi_fn`.
unsafe extern "C-unwind" fn kemi_call(l: *mut ffi::lua_State) -> c_int {
    let index = ffi::lua_tointegerx(l, ffi::lua_upvalueindex(1), std::ptr::null_mut());
    if call_export(l, index) {
        return 1;
    }
    // Exit or drop: raise the sentinel. Nothing Rust owns is alive in this frame.
    ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, EXIT_KEY.as_ptr());
    ffi::lua_error(l)
}

/// Calls export `index` with the arguments on `l`'s stack and pushes its result; false
/// when the route must end (exit or drop), with nothing pushed.
///
/// # Safety
/// `l` is the state of a running `kemi_call`.
unsafe fn call_export(l: *mut ffi::lua_State, index: ffi::lua_Integer) -> bool {
    let sig = kemibox_guest::script::signature(index);
    let Some((index, sig)) = sig else {
        ffi::lua_pushboolean(l, 0);
        return true;
    };
    let params = &sig.params;
    if (ffi::lua_gettop(l).max(0) as usize) < params.len() {
        log_error(&format!("not enough parameters for: {}", sig.name));
        ffi::lua_pushboolean(l, 0);
        return true;
    }
    // Up to 4 parameters (nearly every export) live on the stack.
    let n = params.len();
    let few_args: [Arg; 4];
    let many_args: Vec<Arg>;
    let args: &[Arg] = if n <= 4 {
        few_args = std::array::from_fn(|i| match params.get(i) {
            Some(t) => to_param(l, i as c_int + 1, *t),
            None => Arg::Int(0),
        });
        &few_args[..n]
    } else {
        many_args = params
            .iter()
            .enumerate()
            .map(|(i, t)| to_param(l, i as c_int + 1, *t))
            .collect();
        &many_args
    };
    let few: [ValueParam; 4] =
        std::array::from_fn(|i| args.get(i).map_or(ValueParam::None, Arg::param));
    let many: Vec<ValueParam>;
    let vals: &[ValueParam] = if n <= 4 {
        &few[..n]
    } else {
        many = args.iter().map(Arg::param).collect();
        &many
    };
    match kemi_call_import(index, vals) {
        Ok(v) => {
            match (sig.ret, v) {
                (ReturnType::None, _) if params.is_empty() => ffi::lua_pushboolean(l, 0),
                (ReturnType::None, _) => ffi::lua_pushinteger(l, 0),
                // A failed allocation here raises Lua's memory error over this frame:
                // the instance traps and is replaced, the string leaks with it.
                (_, v) => push_value(l, &v),
            }
            true
        }
        Err(CallError::Exit) | Err(CallError::Drop) => false,
        Err(CallError::BadArgs(m)) => {
            log_error(&m);
            ffi::lua_pushboolean(l, 0);
            true
        }
    }
}

/// The KSR function of export `index`.
fn kemi_fn(lua: &Lua, index: u32) -> mlua::Result<Function> {
    // SAFETY: pushes one C closure with one integer upvalue, which is what `exec_raw`
    // returns; `kemi_call` only touches its own arguments and upvalue.
    unsafe {
        lua.exec_raw((), |l| {
            ffi::lua_pushinteger(l, ffi::lua_Integer::from(index));
            ffi::lua_pushcclosure(l, kemi_call, 1);
        })
    }
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
    kemibox_guest::script::set_signatures(&exports);
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
            Some(Entry::Core(i)) => Value::Function(kemi_fn(lua, *i)?),
            Some(Entry::Module(list)) => {
                let t = lua.create_table_with_capacity(0, list.len())?;
                for i in list {
                    if let Some(e) = exports.get(*i as usize) {
                        t.raw_set(e.name.as_str(), kemi_fn(lua, *i)?)?;
                    }
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

impl kemibox_guest::script::ScriptRuntime for Runtime {
    fn new(config: &str) -> Result<Runtime, String> {
        // Every standard library, `debug` included (tracebacks; scripts use
        // debug.sethook): the component is the sandbox. `io` and `os` reach only what
        // kemibox grants the instance through WASI, which is nothing.
        // SAFETY: the debug library can break Lua's invariants only through script code,
        // whose worst outcome is a trap of this instance; no C modules can be loaded.
        let lua = unsafe { Lua::unsafe_new_with(mlua::StdLib::ALL, mlua::LuaOptions::default()) };
        build_ksr(&lua).map_err(|e| format!("building KSR: {e}"))?;
        let exit: Table = lua
            .load(
                r#"return setmetatable({}, { __tostring = function() return "~~ksr~exit~~" end })"#,
            )
            .set_name("=kemibox")
            .eval()
            .map_err(|e| format!("exit sentinel: {e}"))?;
        let key = EXIT_KEY.to_str().map_err(|e| e.to_string())?;
        lua.set_named_registry_value(key, &exit)
            .map_err(|e| format!("exit sentinel: {e}"))?;
        let runner: Function = lua
            .load(PRELUDE)
            .set_name("=kemibox")
            .call(exit)
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

    /// A Lua error is logged, and the instance traps: the server answers 500 and counts
    /// a script error.
    fn failure_text(name: &str, err: &str) -> String {
        format!("lua-wasm: error in {name}: {err}\n")
    }
}

impl Runtime {
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
}

/// Calls route function `f` through the `xpcall` runner.
fn call(runner: &Function, f: &Function) -> Result<bool, String> {
    match runner.call::<Option<mlua::String>>(f) {
        Ok(None) => Ok(true),
        Ok(Some(e)) => Err(e.to_string_lossy()),
        Err(e) => Err(e.to_string()),
    }
}

kemibox_guest::script_runtime!(Runtime);
