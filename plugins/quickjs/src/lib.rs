//! JavaScript inside a kemibox wasm plugin (`[routing] engine = "js-wasm"`).
//!
//! The component embeds QuickJS (quickjs-ng through rquickjs, its C compiled to
//! wasm32-wasip2 by zig's clang). It runs any KSR JavaScript script given as the plugin's
//! config at `init` — the script is not compiled in, so there is no build step — with the
//! conventions of Kamailio's app_jsdt:
//!
//! - The script is evaluated as a classic global script in sloppy mode; its functions are
//!   globals and routes are looked up by name (`ksr_request_route`, `ksr_reply_route`,
//!   `ksr_onsend_route`, and the names given to `t_on_failure` & co.).
//! - `KSR` is built from the generic indexed interface `kemi`: a native function per
//!   export (`KSR.name` for the core, `KSR.module.name`, and app_jsdt's `KSR_module`
//!   aliases), only for the loaded modules, so `if (KSR.nathelper)` behaves as on
//!   Kamailio. Arguments are converted as duktape does for app_jsdt (`duk_to_string`,
//!   `duk_to_int`), results as `sr_kemi_jsdt_return_xval`.
//! - `KSR.x.exit()`/`KSR.x.drop()` throw app_jsdt's sentinel string `'~~ksr~exit~~'`; a
//!   route that ends with it ran fine. An exit or drop returned by another KEMI function
//!   throws the same sentinel.
//! - An uncaught exception is logged through `KSR.err` with its JS stack (as app_jsdt
//!   does), then the component traps: the server answers 500, counts it and gives the
//!   worker a fresh instance.
//! - `console.log/info/debug/warn/error` write to the server's log.
//!
//! The config string is the script's source. When it starts with `@`, its first line is
//! the script's file name (as kemibox passes it) and the source starts on the next line,
//! so stack traces name the file and its lines.

use std::collections::HashMap;
use std::ffi::{c_int, CString};

use kemibox_guest::bindings;
use std::rc::Rc;

use rquickjs::function::This;
use rquickjs::object::{Accessor, Property};
use rquickjs::{
    qjs, Coerced, Context, Ctx, FromJs, Function, Object, Persistent, Runtime as Js, Value,
};

use bindings::kemibox::kemi::core as kcore;
use bindings::kemibox::kemi::kemi::{self as k, ParamType, ReturnType};

/// `kemi.call` bound with borrowed arguments: a KSR call passes QuickJS's UTF-8 copy of
/// each string argument instead of copying it again into a `String`.
mod borrowed {
    wit_bindgen::generate!({
        inline: "package kemibox:js-runtime; world calls { import kemibox:kemi/kemi@0.1.0; }",
        path: "../../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
        generate_all,
    });
}

use borrowed::kemibox::kemi::kemi::call as kemi_call_import;
use borrowed::kemibox::kemi::types::{CallError, ValueParam, ValueResult};

/// app_jsdt's exit sentinel: thrown by `KSR.x.exit()`; a route ending with it ran fine.
const EXIT_SENTINEL: &str = "~~ksr~exit~~";

/// SR_KEMI_PARAMS_MAX: app_jsdt refuses calls with more arguments.
const PARAMS_MAX: usize = 6;

/// Run once after `KSR` is built, before the script: app_jsdt's `KSR.x.exit/drop`, and a
/// `console` writing to the server's log (the component has no stdio).
const PRELUDE: &str = r#"(function () {
  const EXIT = '~~ksr~exit~~';
  let x = KSR.x;
  if (x === undefined) { x = {}; KSR.x = x; globalThis.KSR_x = x; }
  const drop = x.drop;
  x.exit = function () { throw EXIT; };
  x.drop = function () { if (drop !== undefined) drop(); throw EXIT; };
  // Kamailio runs the cfg route of that name; a KEMI-only config keeps routes in the script.
  KSR.route = function (name) {
    const f = globalThis[name];
    if (typeof f !== 'function') return -1;
    f();
    return 1;
  };
  const log = function (name) {
    const f = KSR[name];
    return function () {
      if (f === undefined) return;
      const parts = [];
      for (let i = 0; i < arguments.length; i++) parts.push(String(arguments[i]));
      try { f(parts.join(' ') + '\n'); } catch (e) { if (e !== EXIT) throw e; }
    };
  };
  globalThis.console = {
    log: log('info'), info: log('info'), debug: log('dbg'), warn: log('warn'), error: log('err'),
  };
})();"#;

/// The JavaScript engine of this instance.
struct Runtime {
    // Field order: the context goes before the runtime it lives in.
    ctx: Context,
    _js: Js,
    /// Route functions by name, looked up on first use (`None`: the script has none).
    routes: HashMap<String, Option<Persistent<Function<'static>>>>,
}

fn log_error(text: &str) {
    if kcore::err(text).is_err() {
        eprint!("{text}");
    }
}

/// `duk_to_int`: ToNumber, NaN → 0, truncated and clamped to a C int.
fn to_int(n: f64) -> i64 {
    if n.is_nan() {
        0
    } else {
        n.trunc().clamp(i32::MIN as f64, i32::MAX as f64) as i64
    }
}

/// A KEMI argument converted from a JS value; a string is QuickJS's UTF-8 copy, freed
/// when the argument is dropped (after the call).
enum Arg {
    Int(i64),
    Str {
        ctx: *mut qjs::JSContext,
        p: *const std::ffi::c_char,
        len: usize,
        /// The replacement-character copy when QuickJS's bytes are not UTF-8.
        lossy: Option<String>,
    },
}

impl Arg {
    fn param(&self) -> ValueParam<'_> {
        match self {
            Arg::Int(i) => ValueParam::Int(*i),
            Arg::Str { lossy: Some(s), .. } => ValueParam::Str(s),
            Arg::Str { p, len, .. } => {
                // SAFETY: QuickJS's buffer of `len` bytes, alive until the drop below;
                // checked to be UTF-8 when the argument was made.
                let b = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), *len) };
                ValueParam::Str(std::str::from_utf8(b).unwrap_or_default())
            }
        }
    }
}

impl Drop for Arg {
    fn drop(&mut self) {
        if let Arg::Str { ctx, p, .. } = self {
            // SAFETY: `p` came from JS_ToCStringLen2 on `ctx` and is freed once.
            unsafe { qjs::JS_FreeCString(*ctx, *p) };
        }
    }
}

/// The parameter an argument slot passes (a failed conversion has returned before).
fn param(a: &Option<Arg>) -> ValueParam<'_> {
    a.as_ref().map_or(ValueParam::None, Arg::param)
}

/// Converts argument `v` to a KEMI parameter as app_jsdt does (`duk_to_int`,
/// `duk_to_string`); `None` when the conversion threw (the exception is pending).
///
/// # Safety
/// `ctx` is the running context and `v` one of the arguments of the running call.
unsafe fn to_param(ctx: *mut qjs::JSContext, v: qjs::JSValue, t: ParamType) -> Option<Arg> {
    Some(match t {
        ParamType::Int => Arg::Int(if qjs::JS_VALUE_GET_TAG(v) == qjs::JS_TAG_INT {
            i64::from(qjs::JS_VALUE_GET_INT(v))
        } else {
            let mut d = 0f64;
            if qjs::JS_ToFloat64(ctx, &mut d, v) < 0 {
                return None;
            }
            to_int(d)
        }),
        ParamType::Str => {
            // ToString for any value (a string as it is), as UTF-8 owned by QuickJS.
            let mut len = 0;
            let p = qjs::JS_ToCStringLen2(ctx, &mut len, v, false);
            if p.is_null() {
                return None;
            }
            let len = len as usize;
            let bytes = std::slice::from_raw_parts(p.cast::<u8>(), len);
            let lossy = match std::str::from_utf8(bytes) {
                Ok(_) => None,
                Err(_) => Some(String::from_utf8_lossy(bytes).into_owned()),
            };
            Arg::Str { ctx, p, len, lossy }
        }
    })
}

/// A KEMI result as app_jsdt returns it (`sr_kemi_jsdt_return_xval`).
///
/// # Safety
/// `ctx` is the running context.
unsafe fn from_value(ctx: *mut qjs::JSContext, v: ValueResult, ret: ReturnType) -> qjs::JSValue {
    let bool_val = |b: bool| qjs::JS_MKVAL(qjs::JS_TAG_BOOL, i32::from(b));
    match v {
        ValueResult::None => match ret {
            ReturnType::Xval => qjs::JS_NULL,
            ReturnType::Bool => qjs::JS_FALSE,
            _ => qjs::JS_UNDEFINED,
        },
        ValueResult::Bool(b) => match ret {
            ReturnType::Int => qjs::JS_MKVAL(qjs::JS_TAG_INT, if b { 1 } else { -1 }),
            _ => bool_val(b),
        },
        ValueResult::Int(i) => match ret {
            ReturnType::Bool => bool_val(i > 0),
            _ => match i32::try_from(i) {
                Ok(i) => qjs::JS_MKVAL(qjs::JS_TAG_INT, i),
                Err(_) => qjs::JS_NewFloat64(i as f64),
            },
        },
        ValueResult::Str(s) => match ret {
            ReturnType::Bool => qjs::JS_TRUE,
            _ => qjs::JS_NewStringLen(ctx, s.as_ptr().cast(), s.len() as _),
        },
    }
}

/// Throws app_jsdt's exit sentinel.
///
/// # Safety
/// `ctx` is the running context.
unsafe fn throw_exit(ctx: *mut qjs::JSContext) -> qjs::JSValue {
    let s = qjs::JS_NewStringLen(ctx, EXIT_SENTINEL.as_ptr().cast(), EXIT_SENTINEL.len() as _);
    if qjs::JS_IsException(s) {
        return s;
    }
    qjs::JS_Throw(ctx, s)
}

/// Throws a RangeError with `msg` (what duktape throws for a missing argument).
///
/// # Safety
/// `ctx` is the running context.
unsafe fn throw_range(ctx: *mut qjs::JSContext, msg: &str) -> qjs::JSValue {
    let msg = CString::new(msg.replace('\0', "")).unwrap_or_default();
    qjs::JS_ThrowRangeError(ctx, c"%s".as_ptr(), msg.as_ptr())
}

/// A KSR function: a QuickJS C function whose `magic` is the export index. It reads its
/// arguments and makes its result as raw QuickJS values (no rquickjs conversion per
/// call: a KEMI call is the most frequent thing a script does).
///
/// # Safety
/// Called by QuickJS only, as a function made by `kemi_fn`.
unsafe extern "C" fn kemi_call(
    ctx: *mut qjs::JSContext,
    _this: qjs::JSValue,
    argc: c_int,
    argv: *mut qjs::JSValue,
    magic: c_int,
    _data: *mut qjs::JSValue,
) -> qjs::JSValue {
    let sig = kemibox_guest::script::signature(i64::from(magic));
    let Some((index, sig)) = sig else {
        return qjs::JS_FALSE;
    };
    let argc = usize::try_from(argc).unwrap_or(0);
    let n = sig.params.len();
    if argc == 0 && n > 0 {
        log_error(&format!("invalid number of parameters for: {}\n", sig.name));
        return qjs::JS_FALSE;
    }
    if argc > PARAMS_MAX {
        log_error(&format!("too many parameters for: {}\n", sig.name));
        return qjs::JS_FALSE;
    }
    if argc < n || argv.is_null() {
        // duk_to_string/duk_to_int on a missing argument
        let full = &sig.name;
        return throw_range(
            ctx,
            &format!("invalid stack index {argc} ({full} takes {n} parameters)"),
        );
    }
    let args = std::slice::from_raw_parts(argv, argc);
    // Up to 4 parameters (nearly every export) live on the stack.
    // Converted in order; the first conversion that throws ends the call (the later
    // arguments are not touched, as duktape would not).
    let mut threw = false;
    let few_args: [Option<Arg>; 4];
    let many_args: Vec<Option<Arg>>;
    let conv: &[Option<Arg>] = if n <= 4 {
        few_args = std::array::from_fn(|i| match (sig.params.get(i), args.get(i)) {
            (Some(t), Some(v)) if !threw => {
                let a = to_param(ctx, *v, *t);
                threw = a.is_none();
                a
            }
            _ => None,
        });
        &few_args[..n]
    } else {
        many_args = sig
            .params
            .iter()
            .zip(args)
            .map_while(|(t, v)| to_param(ctx, *v, *t).map(Some))
            .collect();
        threw = many_args.len() < n;
        &many_args
    };
    if threw {
        return qjs::JS_EXCEPTION;
    }
    let few: [ValueParam; 4] = std::array::from_fn(|i| conv.get(i).map_or(ValueParam::None, param));
    let many: Vec<ValueParam>;
    let vals: &[ValueParam] = if n <= 4 {
        &few[..n]
    } else {
        many = conv.iter().map(param).collect();
        &many
    };
    match kemi_call_import(index, vals) {
        Ok(v) => from_value(ctx, v, sig.ret),
        Err(CallError::Exit) | Err(CallError::Drop) => throw_exit(ctx),
        Err(CallError::BadArgs(m)) => {
            log_error(&format!("{}: {m}\n", sig.name));
            qjs::JS_FALSE
        }
    }
}

/// The KSR function of export `index`, named as the export.
fn kemi_fn<'js>(ctx: &Ctx<'js>, index: u32, e: &k::ExportInfo) -> rquickjs::Result<Function<'js>> {
    let magic = c_int::try_from(index).map_err(|_| rquickjs::Error::Unknown)?;
    // SAFETY: a C function with no data values; `from_raw` takes the new reference.
    let v = unsafe {
        let raw = qjs::JS_NewCFunctionData(
            ctx.as_raw().as_ptr(),
            Some(kemi_call),
            0,
            magic,
            0,
            std::ptr::null_mut(),
        );
        if qjs::JS_IsException(raw) {
            return Err(rquickjs::Error::Exception);
        }
        Value::from_raw(ctx.clone(), raw)
    };
    let f = v.into_function().ok_or(rquickjs::Error::Unknown)?;
    f.set_name(&e.name)?;
    Ok(f)
}

/// Defines `obj[name]` as a plain data property (what a lazy property becomes).
fn settle<'js>(obj: &Object<'js>, name: &str, v: Value<'js>) -> rquickjs::Result<()> {
    obj.prop(
        name,
        Property::from(v).writable().configurable().enumerable(),
    )
}

/// Builds `KSR` (and the `KSR_<module>` aliases) from the export list: only loaded
/// modules appear. A core function is made at once; a module's table (and its
/// functions) on first use, through a getter that then replaces itself with the table:
/// an instance makes only the modules its script touches, which keeps `init` short.
fn build_ksr<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<()> {
    let exports = Rc::new(k::exports());
    kemibox_guest::script::set_signatures(&exports);
    let globals = ctx.globals();
    let ksr = Object::new(ctx.clone())?;
    let mut modules: Vec<(String, Vec<u32>)> = Vec::new();
    for (idx, e) in exports.iter().enumerate() {
        let Ok(index) = u32::try_from(idx) else {
            break;
        };
        if e.module.is_empty() {
            ksr.set(e.name.as_str(), kemi_fn(ctx, index, e)?)?;
            continue;
        }
        match modules.iter_mut().find(|(m, _)| *m == e.module) {
            Some((_, list)) => list.push(index),
            None => modules.push((e.module.clone(), vec![index])),
        }
    }
    for (module, list) in modules {
        let exports = exports.clone();
        let name = module.clone();
        let build =
            move |ctx: Ctx<'js>, This(obj): This<Object<'js>>| -> rquickjs::Result<Value<'js>> {
                let table = Object::new(ctx.clone())?;
                for &i in &list {
                    let e = &exports[i as usize];
                    table.set(e.name.as_str(), kemi_fn(&ctx, i, e)?)?;
                }
                let v = table.into_value();
                settle(&obj, &name, v.clone())?;
                Ok(v)
            };
        let name = module.clone();
        let replace = move |This(obj): This<Object<'js>>, v: Value<'js>| settle(&obj, &name, v);
        ksr.prop(
            module.as_str(),
            Accessor::new(build, replace).configurable().enumerable(),
        )?;
        // app_jsdt's alias: the same table, from KSR.
        let alias = format!("KSR_{module}");
        let (name, key) = (module.clone(), alias.clone());
        let get =
            move |ctx: Ctx<'js>, This(obj): This<Object<'js>>| -> rquickjs::Result<Value<'js>> {
                let v: Value = ctx.globals().get::<_, Object>("KSR")?.get(name.as_str())?;
                settle(&obj, &key, v.clone())?;
                Ok(v)
            };
        let key = alias.clone();
        let replace = move |This(obj): This<Object<'js>>, v: Value<'js>| settle(&obj, &key, v);
        globals.prop(
            alias.as_str(),
            Accessor::new(get, replace).configurable().enumerable(),
        )?;
    }
    globals.set("KSR", ksr)
}

/// Splits the config into file name and source (see the crate docs).
fn script(config: &str) -> (&str, &str) {
    match config.strip_prefix('@') {
        Some(rest) => match rest.split_once('\n') {
            Some((name, src)) => (name.trim_end_matches('\r'), src),
            None => (rest, ""),
        },
        None => ("script", config),
    }
}

/// The message and JS stack of the pending exception, as app_jsdt logs them; `None` for
/// the exit sentinel.
fn caught(ctx: &Ctx<'_>) -> Option<String> {
    let e = ctx.catch();
    if let Some(s) = e.as_string() {
        let s = s.to_string().unwrap_or_default();
        if s == EXIT_SENTINEL {
            return None;
        }
        return Some(format!("error from js: {s}\n"));
    }
    if let Some(ex) = e.as_exception() {
        let msg = ex.message().unwrap_or_default();
        let name = ex
            .get::<_, Option<String>>("name")
            .ok()
            .flatten()
            .unwrap_or_else(|| "Error".into());
        return Some(match ex.stack() {
            Some(stack) => format!("error stack from js: {name}: {msg}\n{stack}"),
            None => format!("error from js: {name}: {msg}\n"),
        });
    }
    let text = Coerced::<String>::from_js(ctx, e)
        .map(|c| c.0)
        .unwrap_or_else(|_| "(an exception that has no string form)".into());
    Some(format!("error from js: {text}\n"))
}

/// Evaluates `source` as a global sloppy-mode script named `file` (rquickjs's own eval
/// names every script `eval_script`).
fn eval_named(ctx: &Ctx<'_>, file: &str, source: &str) -> Result<(), String> {
    let src =
        CString::new(source).map_err(|_| format!("{file}: the script contains a NUL byte"))?;
    let name = CString::new(file).map_err(|_| format!("{file}: bad file name"))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; the returned value is
    // owned by us and freed (or, for an exception, the exception is taken by `caught`).
    let failed = unsafe {
        let v = qjs::JS_Eval(
            ctx.as_raw().as_ptr(),
            src.as_ptr(),
            source.len() as _,
            name.as_ptr(),
            qjs::JS_EVAL_TYPE_GLOBAL as i32,
        );
        let failed = qjs::JS_IsException(v);
        qjs::JS_FreeValue(ctx.as_raw().as_ptr(), v);
        failed
    };
    if failed {
        return Err(caught(ctx).unwrap_or_else(|| format!("{file}: exit at the top level")));
    }
    Ok(())
}

impl kemibox_guest::script::ScriptRuntime for Runtime {
    fn new(config: &str) -> Result<Runtime, String> {
        let js = Js::new().map_err(|e| format!("QuickJS: {e}"))?;
        let ctx = Context::full(&js).map_err(|e| format!("QuickJS: {e}"))?;
        let (file, source) = script(config);
        ctx.with(|ctx| -> Result<(), String> {
            build_ksr(&ctx).map_err(|e| format!("building KSR: {e}"))?;
            eval_named(&ctx, "kemibox-prelude.js", PRELUDE)?;
            eval_named(&ctx, file, source)?;
            let f: Option<Function> = ctx.globals().get("ksr_request_route").ok();
            if f.is_none() {
                return Err(format!("{file}: no function ksr_request_route"));
            }
            Ok(())
        })?;
        Ok(Runtime {
            ctx,
            _js: js,
            routes: HashMap::new(),
        })
    }

    /// Runs route function `name`: `Ok(false)` when the script has none.
    fn run(&mut self, name: &str) -> Result<bool, String> {
        let routes = &mut self.routes;
        self.ctx.with(|ctx| {
            let f = match routes.get(name) {
                Some(Some(f)) => f.clone().restore(&ctx).map_err(|e| e.to_string())?,
                Some(None) => return Ok(false),
                None => {
                    let f: Option<Function> = ctx.globals().get(name).ok();
                    routes.insert(
                        name.to_string(),
                        f.clone().map(|f| Persistent::save(&ctx, f)),
                    );
                    match f {
                        Some(f) => f,
                        None => return Ok(false),
                    }
                }
            };
            match f.call::<_, Value>(()) {
                Ok(_) => Ok(true),
                Err(rquickjs::Error::Exception) => match caught(&ctx) {
                    None => Ok(true),
                    Some(text) => Err(text),
                },
                Err(e) => Err(format!("error from js: {e}\n")),
            }
        })
    }

    /// An uncaught exception is logged with its stack, as app_jsdt does, and the
    /// instance traps: the server answers 500 and counts a script error.
    fn failure_text(name: &str, err: &str) -> String {
        let nl = if err.ends_with('\n') { "" } else { "\n" };
        format!("{err}{nl}error executing: {name}\n")
    }
}

kemibox_guest::script_runtime!(Runtime);
