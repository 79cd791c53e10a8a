//! The imports a plugin calls: the generic indexed `kemi` interface and the typed
//! per-module interfaces, all ending in `Registry::call` (the functions the Lua engine
//! calls). Typed functions find their registry index once per instance.

use wasmtime::Result as WResult;

use super::bindings::kemibox::kemi::{
    core, hdr, kemi, maxfwd, pv, registrar, sanity, sl, tm, types, x,
};
use super::State;
use crate::kemi::{KemiError, PType, RType, Registry, Val};

use types::{CallError, Value};

macro_rules! typed_idx {
    ($($field:ident = ($m:literal, $n:literal)),* $(,)?) => {
        /// Registry indexes of the functions of the typed interfaces (`None` when the
        /// module is not loaded).
        #[derive(Clone, Copy, Debug)]
        pub struct TypedIdx { $(pub $field: Option<usize>,)* }
        impl TypedIdx {
            pub fn new(reg: &Registry) -> TypedIdx {
                TypedIdx { $($field: reg.index_of($m, $n),)* }
            }
        }
    };
}

typed_idx!(
    is_method = ("", "is_method"),
    is_myself_ruri = ("", "is_myself_ruri"),
    is_myself_furi = ("", "is_myself_furi"),
    is_myself_turi = ("", "is_myself_turi"),
    is_myself_srcip = ("", "is_myself_srcip"),
    forward = ("", "forward"),
    forward_uri = ("", "forward_uri"),
    setdsturi = ("", "setdsturi"),
    resetdsturi = ("", "resetdsturi"),
    isdsturiset = ("", "isdsturiset"),
    seturi = ("", "seturi"),
    setflag = ("", "setflag"),
    isflagset = ("", "isflagset"),
    force_rport = ("", "force_rport"),
    dbg = ("", "dbg"),
    info = ("", "info"),
    notice = ("", "notice"),
    warn = ("", "warn"),
    err = ("", "err"),
    crit = ("", "crit"),
    pv_get = ("pv", "get"),
    pv_sets = ("pv", "sets"),
    pv_seti = ("pv", "seti"),
    pv_unset = ("pv", "unset"),
    pv_is_null = ("pv", "is_null"),
    hdr_append = ("hdr", "append"),
    hdr_remove = ("hdr", "remove"),
    hdr_is_present = ("hdr", "is_present"),
    hdr_get = ("hdr", "get"),
    hdr_append_to_reply = ("hdr", "append_to_reply"),
    sl_send_reply = ("sl", "sl_send_reply"),
    send_reply = ("sl", "send_reply"),
    sl_reply_error = ("sl", "sl_reply_error"),
    process_maxfwd = ("maxfwd", "process_maxfwd"),
    is_maxfwd_lt = ("maxfwd", "is_maxfwd_lt"),
    x_exit = ("x", "exit"),
    x_drop = ("x", "drop"),
    tm_t_relay = ("tm", "t_relay"),
    tm_t_relay_to_proxy = ("tm", "t_relay_to_proxy"),
    tm_t_newtran = ("tm", "t_newtran"),
    tm_t_check_trans = ("tm", "t_check_trans"),
    tm_t_reply = ("tm", "t_reply"),
    tm_t_send_reply = ("tm", "t_send_reply"),
    tm_t_on_failure = ("tm", "t_on_failure"),
    tm_t_on_branch = ("tm", "t_on_branch"),
    tm_t_on_reply = ("tm", "t_on_reply"),
    tm_t_set_fr = ("tm", "t_set_fr"),
    tm_t_is_canceled = ("tm", "t_is_canceled"),
    tm_t_branch_timeout = ("tm", "t_branch_timeout"),
    tm_t_branch_replied = ("tm", "t_branch_replied"),
    tm_t_check_status = ("tm", "t_check_status"),
    tm_t_get_status_code = ("tm", "t_get_status_code"),
    tm_t_release = ("tm", "t_release"),
    registrar_save = ("registrar", "save"),
    registrar_lookup = ("registrar", "lookup"),
    registrar_lookup_uri = ("registrar", "lookup_uri"),
    registrar_registered = ("registrar", "registered"),
    registrar_unregister = ("registrar", "unregister"),
    sanity_sanity_check = ("sanity", "sanity_check"),
    sanity_sanity_check_defaults = ("sanity", "sanity_check_defaults"),
);

type R<T> = WResult<Result<T, CallError>>;

impl State {
    /// One KEMI call: charges the host-call budget (trapping when it is spent), then
    /// calls the registry on the routed message.
    fn kcall(&mut self, idx: Option<usize>, args: &[Val]) -> R<Val> {
        if self.calls_left == 0 {
            self.budget_hit = true;
            wasmtime::bail!("host-call budget exceeded");
        }
        self.calls_left -= 1;
        let Some(idx) = idx else {
            return Ok(Err(CallError::BadArgs("module not loaded".into())));
        };
        let Some(ctx) = self.ctx.as_mut() else {
            return Ok(Err(CallError::BadArgs("KEMI call outside a route".into())));
        };
        Ok(match self.env.registry.call(idx, ctx, args) {
            Ok(v) => Ok(v),
            Err(KemiError::Exit) => Err(CallError::Exit),
            Err(KemiError::Drop) => Err(CallError::Drop),
            Err(KemiError::Args(f, m)) => Err(CallError::BadArgs(format!("{f}: {m}"))),
        })
    }

    fn int(&mut self, idx: Option<usize>, args: &[Val]) -> R<i32> {
        Ok(self.kcall(idx, args)?.map(|v| match v {
            Val::Int(i) => i.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            Val::Bool(b) => {
                if b {
                    1
                } else {
                    -1
                }
            }
            Val::None | Val::Str(_) => 1,
        }))
    }

    fn boolean(&mut self, idx: Option<usize>, args: &[Val]) -> R<bool> {
        Ok(self.kcall(idx, args)?.map(|v| match v {
            Val::Int(i) => i > 0,
            Val::Bool(b) => b,
            Val::None => false,
            Val::Str(_) => true,
        }))
    }

    fn unit(&mut self, idx: Option<usize>, args: &[Val]) -> R<()> {
        Ok(self.kcall(idx, args)?.map(|_| ()))
    }

    fn value(&mut self, idx: Option<usize>, args: &[Val]) -> R<Value> {
        Ok(self.kcall(idx, args)?.map(to_value))
    }
}

fn to_value(v: Val) -> Value {
    match v {
        Val::None => Value::None,
        Val::Bool(b) => Value::Bool(b),
        Val::Int(i) => Value::Int(i),
        Val::Str(s) => Value::Str(s),
    }
}

fn from_value(v: Value) -> Val {
    match v {
        Value::None => Val::None,
        Value::Bool(b) => Val::Bool(b),
        Value::Int(i) => Val::Int(i),
        Value::Str(s) => Val::Str(s),
    }
}

fn st(s: String) -> Val {
    Val::Str(s)
}

fn it(i: i32) -> Val {
    Val::Int(i as i64)
}

impl types::Host for State {}

impl kemi::Host for State {
    fn exports(&mut self) -> WResult<Vec<kemi::ExportInfo>> {
        Ok(self
            .env
            .registry
            .exports()
            .iter()
            .map(|e| kemi::ExportInfo {
                module: e.module.to_string(),
                name: e.name.to_string(),
                params: e
                    .params
                    .iter()
                    .map(|p| match p {
                        PType::Int => kemi::ParamType::Int,
                        PType::Str => kemi::ParamType::Str,
                    })
                    .collect(),
                ret: match e.ret {
                    RType::None => kemi::ReturnType::None,
                    RType::Int => kemi::ReturnType::Int,
                    RType::Bool => kemi::ReturnType::Bool,
                    RType::XVal => kemi::ReturnType::Xval,
                },
            })
            .collect())
    }

    fn call(&mut self, index: u32, args: Vec<Value>) -> R<Value> {
        let args: Vec<Val> = args.into_iter().map(from_value).collect();
        let n = self.env.registry.exports().len();
        let idx = (index as usize) < n;
        if !idx {
            if self.calls_left == 0 {
                self.budget_hit = true;
                wasmtime::bail!("host-call budget exceeded");
            }
            self.calls_left -= 1;
            return Ok(Err(CallError::BadArgs(format!("no export #{index}"))));
        }
        self.value(Some(index as usize), &args)
    }
}

impl core::Host for State {
    fn is_method(&mut self, methods: String) -> R<bool> {
        self.boolean(self.idx.is_method, &[st(methods)])
    }
    fn is_myself_ruri(&mut self) -> R<bool> {
        self.boolean(self.idx.is_myself_ruri, &[])
    }
    fn is_myself_furi(&mut self) -> R<bool> {
        self.boolean(self.idx.is_myself_furi, &[])
    }
    fn is_myself_turi(&mut self) -> R<bool> {
        self.boolean(self.idx.is_myself_turi, &[])
    }
    fn is_myself_srcip(&mut self) -> R<bool> {
        self.boolean(self.idx.is_myself_srcip, &[])
    }
    fn forward(&mut self) -> R<i32> {
        self.int(self.idx.forward, &[])
    }
    fn forward_uri(&mut self, uri: String) -> R<i32> {
        self.int(self.idx.forward_uri, &[st(uri)])
    }
    fn setdsturi(&mut self, uri: String) -> R<i32> {
        self.int(self.idx.setdsturi, &[st(uri)])
    }
    fn resetdsturi(&mut self) -> R<i32> {
        self.int(self.idx.resetdsturi, &[])
    }
    fn isdsturiset(&mut self) -> R<bool> {
        self.boolean(self.idx.isdsturiset, &[])
    }
    fn seturi(&mut self, uri: String) -> R<i32> {
        self.int(self.idx.seturi, &[st(uri)])
    }
    fn setflag(&mut self, flag: i32) -> R<i32> {
        self.int(self.idx.setflag, &[it(flag)])
    }
    fn isflagset(&mut self, flag: i32) -> R<bool> {
        self.boolean(self.idx.isflagset, &[it(flag)])
    }
    fn force_rport(&mut self) -> R<i32> {
        self.int(self.idx.force_rport, &[])
    }
    fn dbg(&mut self, text: String) -> R<()> {
        self.unit(self.idx.dbg, &[st(text)])
    }
    fn info(&mut self, text: String) -> R<()> {
        self.unit(self.idx.info, &[st(text)])
    }
    fn notice(&mut self, text: String) -> R<()> {
        self.unit(self.idx.notice, &[st(text)])
    }
    fn warn(&mut self, text: String) -> R<()> {
        self.unit(self.idx.warn, &[st(text)])
    }
    fn err(&mut self, text: String) -> R<()> {
        self.unit(self.idx.err, &[st(text)])
    }
    fn crit(&mut self, text: String) -> R<()> {
        self.unit(self.idx.crit, &[st(text)])
    }
}

impl pv::Host for State {
    fn get(&mut self, name: String) -> R<Value> {
        self.value(self.idx.pv_get, &[st(name)])
    }
    fn sets(&mut self, name: String, value: String) -> R<i32> {
        self.int(self.idx.pv_sets, &[st(name), st(value)])
    }
    fn seti(&mut self, name: String, value: i64) -> R<i32> {
        self.int(self.idx.pv_seti, &[st(name), Val::Int(value)])
    }
    fn unset(&mut self, name: String) -> R<i32> {
        self.int(self.idx.pv_unset, &[st(name)])
    }
    fn is_null(&mut self, name: String) -> R<bool> {
        self.boolean(self.idx.pv_is_null, &[st(name)])
    }
}

impl hdr::Host for State {
    fn append(&mut self, text: String) -> R<i32> {
        self.int(self.idx.hdr_append, &[st(text)])
    }
    fn remove(&mut self, name: String) -> R<i32> {
        self.int(self.idx.hdr_remove, &[st(name)])
    }
    fn is_present(&mut self, name: String) -> R<bool> {
        self.boolean(self.idx.hdr_is_present, &[st(name)])
    }
    fn get(&mut self, name: String) -> R<Value> {
        self.value(self.idx.hdr_get, &[st(name)])
    }
    fn append_to_reply(&mut self, text: String) -> R<i32> {
        self.int(self.idx.hdr_append_to_reply, &[st(text)])
    }
}

impl sl::Host for State {
    fn sl_send_reply(&mut self, code: i32, reason: String) -> R<i32> {
        self.int(self.idx.sl_send_reply, &[it(code), st(reason)])
    }
    fn send_reply(&mut self, code: i32, reason: String) -> R<i32> {
        self.int(self.idx.send_reply, &[it(code), st(reason)])
    }
    fn sl_reply_error(&mut self) -> R<i32> {
        self.int(self.idx.sl_reply_error, &[])
    }
}

impl maxfwd::Host for State {
    fn process_maxfwd(&mut self, limit: i32) -> R<i32> {
        self.int(self.idx.process_maxfwd, &[it(limit)])
    }
    fn is_maxfwd_lt(&mut self, limit: i32) -> R<bool> {
        self.boolean(self.idx.is_maxfwd_lt, &[it(limit)])
    }
}

impl x::Host for State {
    fn exit(&mut self) -> R<()> {
        self.unit(self.idx.x_exit, &[])
    }
    fn drop(&mut self) -> R<()> {
        self.unit(self.idx.x_drop, &[])
    }
}

impl tm::Host for State {
    fn t_relay(&mut self) -> R<i32> {
        self.int(self.idx.tm_t_relay, &[])
    }
    fn t_relay_to_proxy(&mut self, proxy: String) -> R<i32> {
        self.int(self.idx.tm_t_relay_to_proxy, &[st(proxy)])
    }
    fn t_newtran(&mut self) -> R<i32> {
        self.int(self.idx.tm_t_newtran, &[])
    }
    fn t_check_trans(&mut self) -> R<i32> {
        self.int(self.idx.tm_t_check_trans, &[])
    }
    fn t_reply(&mut self, code: i32, reason: String) -> R<i32> {
        self.int(self.idx.tm_t_reply, &[it(code), st(reason)])
    }
    fn t_send_reply(&mut self, code: i32, reason: String) -> R<i32> {
        self.int(self.idx.tm_t_send_reply, &[it(code), st(reason)])
    }
    fn t_on_failure(&mut self, route: String) -> R<i32> {
        self.int(self.idx.tm_t_on_failure, &[st(route)])
    }
    fn t_on_branch(&mut self, route: String) -> R<i32> {
        self.int(self.idx.tm_t_on_branch, &[st(route)])
    }
    fn t_on_reply(&mut self, route: String) -> R<i32> {
        self.int(self.idx.tm_t_on_reply, &[st(route)])
    }
    fn t_set_fr(&mut self, fr_inv_ms: i32, fr_ms: i32) -> R<i32> {
        self.int(self.idx.tm_t_set_fr, &[it(fr_inv_ms), it(fr_ms)])
    }
    fn t_is_canceled(&mut self) -> R<i32> {
        self.int(self.idx.tm_t_is_canceled, &[])
    }
    fn t_branch_timeout(&mut self) -> R<i32> {
        self.int(self.idx.tm_t_branch_timeout, &[])
    }
    fn t_branch_replied(&mut self) -> R<i32> {
        self.int(self.idx.tm_t_branch_replied, &[])
    }
    fn t_check_status(&mut self, re: String) -> R<i32> {
        self.int(self.idx.tm_t_check_status, &[st(re)])
    }
    fn t_get_status_code(&mut self) -> R<i32> {
        self.int(self.idx.tm_t_get_status_code, &[])
    }
    fn t_release(&mut self) -> R<i32> {
        self.int(self.idx.tm_t_release, &[])
    }
}

impl registrar::Host for State {
    fn save(&mut self, table: String, flags: i32) -> R<i32> {
        self.int(self.idx.registrar_save, &[st(table), it(flags)])
    }
    fn lookup(&mut self, table: String) -> R<i32> {
        self.int(self.idx.registrar_lookup, &[st(table)])
    }
    fn lookup_uri(&mut self, table: String, uri: String) -> R<i32> {
        self.int(self.idx.registrar_lookup_uri, &[st(table), st(uri)])
    }
    fn registered(&mut self, table: String) -> R<i32> {
        self.int(self.idx.registrar_registered, &[st(table)])
    }
    fn unregister(&mut self, table: String, uri: String) -> R<i32> {
        self.int(self.idx.registrar_unregister, &[st(table), st(uri)])
    }
}

impl sanity::Host for State {
    fn sanity_check(&mut self, msg_checks: i32, uri_checks: i32) -> R<i32> {
        self.int(
            self.idx.sanity_sanity_check,
            &[it(msg_checks), it(uri_checks)],
        )
    }
    fn sanity_check_defaults(&mut self) -> R<i32> {
        self.int(self.idx.sanity_sanity_check_defaults, &[])
    }
}
