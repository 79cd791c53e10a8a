//! The imports a plugin calls: the generic indexed `kemi` interface and the typed
//! per-module interfaces, all ending in `Registry::call` (the functions the Lua engine
//! calls). Typed functions find their registry index once per instance.

use wasmtime::Result as WResult;

use super::bindings::kemibox::kemi::{
    auth, auth_db, core, corex, hdr, htable, kemi, kx, maxfwd, nathelper, permissions, pike, pv,
    registrar, rr, sanity, siputils, sl, textops, tm, tmx, types, x, xlog,
};
use super::State;
use crate::kemi::{KemiError, PType, RType, Registry, Val};

use types::{CallError, Value};

/// Declares the typed interfaces: for each WIT interface, its KEMI module and, per
/// function, the Rust signature of the import, how its result is converted (`int`,
/// `boolean`, `unit`, `value`) and, when it differs from the function's name, the KEMI
/// export's name. Generates `TypedIdx` (the registry index of every function, found once
/// per `Env`) and the `Host` impls, which all end in `Registry::call`: a typed import is
/// a call by index into the same export table the Lua engine and the generic `kemi`
/// interface use, never a second implementation.
macro_rules! typed {
    ($($iface:ident = $module:literal {
        $($f:ident($($a:ident: $t:ty),*) -> $k:ident $(= $kn:literal)?;)*
    })*) => {
        /// Registry indexes of one typed interface (`None` when its module is not loaded).
        #[allow(non_camel_case_types)]
        pub mod idx {
            $(
                #[derive(Clone, Copy, Debug)]
                pub struct $iface { $(pub $f: Option<usize>,)* }
            )*
        }

        /// Every typed function: its KEMI module, export name and result kind (`int`,
        /// `boolean`, `unit`, `value`).
        #[cfg(test)]
        pub const TYPED_KINDS: &[(&str, &str, &str)] = &[
            $($(($module, typed!(@name $f $($kn)?), stringify!($k)),)*)*
        ];

        /// Registry indexes of the functions of the typed interfaces.
        #[derive(Clone, Copy, Debug)]
        pub struct TypedIdx { $(pub $iface: idx::$iface,)* }

        impl TypedIdx {
            pub fn new(reg: &Registry) -> TypedIdx {
                TypedIdx {
                    $($iface: idx::$iface {
                        $($f: reg.index_of($module, typed!(@name $f $($kn)?)),)*
                    },)*
                }
            }

            /// The typed functions with no registry export (`module.name`): those of
            /// modules not loaded.
            pub fn missing(&self) -> Vec<String> {
                let mut v = Vec::new();
                $($(if self.$iface.$f.is_none() {
                    v.push(format!("{}.{}", $module, typed!(@name $f $($kn)?)));
                })*)*
                v
            }

            /// How many typed functions have a registry export.
            pub fn resolved(&self) -> usize {
                0 $($(+ usize::from(self.$iface.$f.is_some()))*)*
            }
        }

        $(
            impl $iface::Host for State {
                $(
                    fn $f(&mut self, $($a: $t),*) -> typed!(@ret $k) {
                        self.$k(self.idx.$iface.$f, &[$(IntoVal::val($a)),*])
                    }
                )*
            }
        )*
    };
    (@name $f:ident) => { stringify!($f) };
    (@name $f:ident $n:literal) => { $n };
    (@ret int) => { R<i32> };
    (@ret boolean) => { R<bool> };
    (@ret unit) => { R<()> };
    (@ret value) => { R<Value> };
}

/// An argument of a typed import as a KEMI value.
trait IntoVal {
    fn val(self) -> Val;
}

impl IntoVal for String {
    fn val(self) -> Val {
        Val::Str(self)
    }
}

impl IntoVal for i32 {
    fn val(self) -> Val {
        Val::Int(self as i64)
    }
}

impl IntoVal for i64 {
    fn val(self) -> Val {
        Val::Int(self)
    }
}

typed! {
    core = "" {
        is_method(methods: String) -> boolean;
        is_method_in(methods: String) -> boolean;
        is_invite() -> boolean = "is_INVITE";
        is_ack() -> boolean = "is_ACK";
        is_bye() -> boolean = "is_BYE";
        is_cancel() -> boolean = "is_CANCEL";
        is_register() -> boolean = "is_REGISTER";
        is_options() -> boolean = "is_OPTIONS";
        is_subscribe() -> boolean = "is_SUBSCRIBE";
        is_publish() -> boolean = "is_PUBLISH";
        is_notify() -> boolean = "is_NOTIFY";
        is_refer() -> boolean = "is_REFER";
        is_info() -> boolean = "is_INFO";
        is_update() -> boolean = "is_UPDATE";
        is_prack() -> boolean = "is_PRACK";
        is_message() -> boolean = "is_MESSAGE";
        is_myself(uri: String) -> boolean;
        is_myself_ruri() -> boolean;
        is_myself_duri() -> boolean;
        is_myself_nhuri() -> boolean;
        is_myself_furi() -> boolean;
        is_myself_turi() -> boolean;
        is_myself_suri() -> boolean;
        is_myself_srcip() -> boolean;
        forward() -> int;
        forward_uri(uri: String) -> int;
        setdsturi(uri: String) -> int;
        resetdsturi() -> int;
        isdsturiset() -> boolean;
        seturi(uri: String) -> int;
        setuser(user: String) -> boolean;
        sethost(host: String) -> boolean;
        setflag(flag: i32) -> int;
        resetflag(flag: i32) -> boolean;
        isflagset(flag: i32) -> boolean;
        setbflag(flag: i32) -> boolean;
        resetbflag(flag: i32) -> boolean;
        isbflagset(flag: i32) -> boolean;
        setbiflag(flag: i32, branch: i32) -> boolean;
        resetbiflag(flag: i32, branch: i32) -> boolean;
        isbiflagset(flag: i32, branch: i32) -> boolean;
        setsflag(flag: i32) -> boolean;
        resetsflag(flag: i32) -> boolean;
        issflagset(flag: i32) -> boolean;
        force_rport() -> int;
        add_local_rport() -> boolean;
        set_forward_close() -> boolean;
        set_forward_no_connect() -> boolean;
        set_reply_close() -> boolean;
        set_reply_no_connect() -> boolean;
        is_udp() -> boolean = "is_UDP";
        is_tcp() -> boolean = "is_TCP";
        is_tls() -> boolean = "is_TLS";
        is_ws() -> boolean = "is_WS";
        is_wss() -> boolean = "is_WSS";
        is_sctp() -> boolean = "is_SCTP";
        is_tcpx() -> boolean = "is_TCPX";
        is_wsx() -> boolean = "is_WSX";
        is_proto(protos: String) -> boolean;
        is_ipv4() -> boolean = "is_IPv4";
        is_ipv6() -> boolean = "is_IPv6";
        to_udp() -> boolean = "to_UDP";
        to_tcp() -> boolean = "to_TCP";
        to_tls() -> boolean = "to_TLS";
        to_ws() -> boolean = "to_WS";
        to_wss() -> boolean = "to_WSS";
        to_sctp() -> boolean = "to_SCTP";
        to_wsx() -> boolean = "to_WSX";
        to_ipv4() -> boolean = "to_IPv4";
        to_ipv6() -> boolean = "to_IPv6";
        is_src_port(port: i32) -> boolean;
        is_dst_port(port: i32) -> boolean;
        set_drop() -> unit;
        log(level: String, text: String) -> unit;
        dbg(text: String) -> unit;
        info(text: String) -> unit;
        notice(text: String) -> unit;
        warn(text: String) -> unit;
        err(text: String) -> unit;
        crit(text: String) -> unit;
    }
    pv = "pv" {
        get(name: String) -> value;
        gete(name: String) -> value;
        getw(name: String) -> value;
        geti(name: String) -> int;
        getvs(name: String, default: String) -> value;
        getvn(name: String, default: i32) -> value;
        sets(name: String, value: String) -> int;
        seti(name: String, value: i64) -> int;
        unset(name: String) -> int;
        is_null(name: String) -> boolean;
    }
    hdr = "hdr" {
        append(text: String) -> int;
        append_after(text: String, name: String) -> int;
        insert(text: String) -> int;
        insert_before(text: String, name: String) -> int;
        remove(name: String) -> int;
        rmappend(name: String, text: String) -> int;
        rminsert(name: String, text: String) -> int;
        is_present(name: String) -> boolean;
        get(name: String) -> value;
        gete(name: String) -> value;
        getw(name: String) -> value;
        get_idx(name: String, index: i32) -> value;
        gete_idx(name: String, index: i32) -> value;
        getw_idx(name: String, index: i32) -> value;
        append_to_reply(text: String) -> int;
    }
    sl = "sl" {
        sl_send_reply(code: i32, reason: String) -> int;
        send_reply(code: i32, reason: String) -> int;
        sl_reply_error() -> int;
        send_reply_error() -> int;
    }
    maxfwd = "maxfwd" {
        process_maxfwd(limit: i32) -> int;
        is_maxfwd_lt(limit: i32) -> boolean;
    }
    x = "x" {
        exit() -> unit;
        drop() -> unit;
        probe() -> unit;
    }
    tm = "tm" {
        t_relay() -> int;
        t_relay_to_proxy(proxy: String) -> int;
        t_relay_to_proto_addr(proto: String, host: String, port: i32) -> int;
        t_newtran() -> int;
        t_check_trans() -> int;
        t_reply(code: i32, reason: String) -> int;
        t_send_reply(code: i32, reason: String) -> int;
        t_on_failure(route: String) -> int;
        t_on_branch(route: String) -> int;
        t_on_reply(route: String) -> int;
        t_is_set(target: String) -> int;
        t_set_fr(fr_inv_ms: i32, fr_ms: i32) -> int;
        t_set_fr_inv(fr_inv_ms: i32) -> int;
        t_reset_fr() -> int;
        t_is_canceled() -> int;
        t_branch_timeout() -> int;
        t_branch_replied() -> int;
        t_check_status(re: String) -> int;
        t_get_status_code() -> int;
        t_get_branch_index() -> int;
        t_set_disable_6xx(state: i32) -> int;
        t_release() -> int;
        t_lookup_cancel() -> int;
        t_load_contacts() -> int;
        t_next_contacts() -> int;
        t_drop_replies(mode: String) -> int;
    }
    tmx = "tmx" {
        t_precheck_trans() -> int;
        t_is_request_route() -> int;
        t_is_failure_route() -> int;
        t_is_branch_route() -> int;
        t_is_reply_route() -> int;
    }
    rr = "rr" {
        record_route() -> int;
        record_route_params(params: String) -> int;
        record_route_preset(addr1: String, addr2: String) -> int;
        record_route_preset_one(addr: String) -> int;
        add_rr_param(param: String) -> int;
        remove_record_route() -> int;
        loose_route() -> int;
        loose_route_preloaded() -> int;
        check_route_param(re: String) -> int;
        is_direction(dir: String) -> int;
    }
    registrar = "registrar" {
        save(table: String, flags: i32) -> int;
        save_uri(table: String, flags: i32, uri: String) -> int;
        lookup(table: String) -> int;
        lookup_uri(table: String, uri: String) -> int;
        registered(table: String) -> int;
        unregister(table: String, uri: String) -> int;
    }
    sanity = "sanity" {
        sanity_check(msg_checks: i32, uri_checks: i32) -> int;
        sanity_check_defaults() -> int;
        sanity_reply() -> int;
    }
    auth = "auth" {
        auth_challenge(realm: String, flags: i32) -> int;
        www_challenge(realm: String, flags: i32) -> int;
        proxy_challenge(realm: String, flags: i32) -> int;
        consume_credentials() -> int;
        has_credentials(realm: String) -> int;
    }
    auth_db = "auth_db" {
        auth_check(realm: String, table: String, flags: i32) -> int;
        www_authenticate(realm: String, table: String) -> int;
        proxy_authenticate(realm: String, table: String) -> int;
        is_subscriber(uri: String, table: String, flags: i32) -> int;
    }
    siputils = "siputils" {
        has_totag() -> int;
        is_request() -> int;
        is_reply() -> int;
        is_first_hop() -> int;
        is_uri(uri: String) -> int;
        uri_param(name: String) -> int;
        uri_param_value(name: String, value: String) -> int;
        uri_param_any(name: String) -> int;
        add_uri_param(param: String) -> int;
        uri_param_rm(name: String) -> int;
        is_tel_number(text: String) -> int;
        is_numeric(text: String) -> int;
        is_alphanum(text: String) -> int;
        options_reply() -> int;
        cmp_uri(uri1: String, uri2: String) -> int;
        cmp_aor(uri1: String, uri2: String) -> int;
        is_gruu() -> int;
    }
    nathelper = "nathelper" {
        nat_uac_test(flags: i32) -> int;
        fix_nated_contact() -> int;
        fix_nated_register() -> int;
        add_rcv_param(flags: i32) -> int;
        set_contact_alias() -> int;
        handle_ruri_alias() -> int;
        is_rfc1918(addr: String) -> int;
    }
    pike = "pike" {
        pike_check_req() -> int;
    }
    htable = "htable" {
        sht_get(table: String, key: String) -> value;
        sht_gete(table: String, key: String) -> value;
        sht_getw(table: String, key: String) -> value;
        sht_sets(table: String, key: String, value: String) -> int;
        sht_seti(table: String, key: String, value: i32) -> int;
        sht_rm(table: String, key: String) -> int;
        sht_reset(table: String) -> int;
        sht_inc(table: String, key: String) -> int;
        sht_dec(table: String, key: String) -> int;
        sht_match_name(table: String, op: String, value: String) -> int;
        sht_has_name(table: String, op: String, value: String) -> int;
    }
    permissions = "permissions" {
        allow_source_address(group: i32) -> int;
        allow_address(group: i32, addr: String, port: i32) -> int;
        allow_source_address_group() -> int;
    }
    kx = "kx" {
        get_ruri() -> value;
        get_ouri() -> value;
        get_furi() -> value;
        get_turi() -> value;
        get_nhuri() -> value;
        get_srcip() -> value;
        get_srcport() -> value;
        get_srcuri() -> value;
        get_rcvip() -> value;
        get_rcvport() -> value;
        get_proto() -> value;
        get_protoid() -> int;
        get_method() -> value;
        get_status() -> int;
        gets_status() -> value;
        get_bodylen() -> int;
        get_msglen() -> int;
        get_msgbuf() -> value;
        get_msgtype() -> int;
        get_callid() -> value;
        get_conid() -> int;
        get_timestamp() -> int;
        get_ruser() -> value;
        gete_ruser() -> value;
        getw_ruser() -> value;
        get_rhost() -> value;
        gete_rhost() -> value;
        getw_rhost() -> value;
        get_fuser() -> value;
        gete_fuser() -> value;
        getw_fuser() -> value;
        get_fhost() -> value;
        gete_fhost() -> value;
        getw_fhost() -> value;
        get_tuser() -> value;
        gete_tuser() -> value;
        getw_tuser() -> value;
        get_thost() -> value;
        gete_thost() -> value;
        getw_thost() -> value;
        get_ua() -> value;
        gete_ua() -> value;
        getw_ua() -> value;
        get_duri() -> value;
        gete_duri() -> value;
        getw_duri() -> value;
        get_body() -> value;
        gete_body() -> value;
        getw_body() -> value;
        get_cturi() -> value;
        gete_cturi() -> value;
        getw_cturi() -> value;
        get_au() -> value;
        gete_au() -> value;
        getw_au() -> value;
        get_def(name: String) -> value;
        get_defn(name: String) -> int;
        ifdef(name: String) -> boolean;
        ifndef(name: String) -> boolean;
        get_env(name: String) -> value;
        get_envn(name: String) -> int;
    }
    corex = "corex" {
        has_ruri_user() -> int;
        has_user_agent() -> int;
        append_branch() -> int;
        append_branch_uri(uri: String) -> int;
        append_branch_uri_q(uri: String, q: String) -> int;
        set_source_address(addr: String) -> int;
        via_add_srvid(flags: i32) -> int;
        is_faked_msg() -> int;
    }
    textops = "textops" {
        search(re: String) -> int;
        search_body(re: String) -> int;
        search_hf(name: String, re: String, flags: String) -> int;
        is_present_hf(name: String) -> int;
        is_present_hf_re(re: String) -> int;
        remove_hf(name: String) -> int;
        remove_hf_re(re: String) -> int;
        replace(re: String, text: String) -> int;
        replace_all(re: String, text: String) -> int;
        has_body() -> int;
        has_body_type(content_type: String) -> int;
        set_reply_body(body: String, content_type: String) -> int;
        in_list(subject: String, items: String, sep: String) -> int;
        in_list_prefix(subject: String, items: String, sep: String) -> int;
        cmp_str(a: String, b: String) -> int;
        cmp_istr(a: String, b: String) -> int;
        starts_with(text: String, prefix: String) -> int;
        ends_with(text: String, suffix: String) -> int;
        str_find(text: String, needle: String) -> int;
        str_ifind(text: String, needle: String) -> int;
    }
    xlog = "xlog" {
        xdbg(text: String) -> int;
        xinfo(text: String) -> int;
        xnotice(text: String) -> int;
        xwarn(text: String) -> int;
        xerr(text: String) -> int;
        xalert(text: String) -> int;
        xcrit(text: String) -> int;
        xlog(level: String, text: String) -> int;
        xlog_facility(facility: String, level: String, text: String) -> int;
    }
}

type R<T> = WResult<Result<T, CallError>>;

impl State {
    /// Charges one host call to the budget of the route call; traps when it is spent.
    fn charge(&mut self) -> WResult<()> {
        if self.calls_left == 0 {
            self.budget_hit = true;
            wasmtime::bail!("host-call budget exceeded");
        }
        self.calls_left -= 1;
        Ok(())
    }

    /// One KEMI call: charges the host-call budget (trapping when it is spent), then
    /// calls the registry on the routed message.
    fn kcall(&mut self, idx: Option<usize>, args: &[Val]) -> R<Val> {
        self.charge()?;
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
        let n = self.env.registry.exports().len();
        if index as usize >= n {
            self.charge()?;
            return Ok(Err(CallError::BadArgs(format!("no export #{index}"))));
        }
        // Up to 4 arguments (nearly every call) are converted on the stack.
        let mut few: [Val; 4] = [Val::None, Val::None, Val::None, Val::None];
        let many: Vec<Val>;
        let vals: &[Val] = if args.len() <= few.len() {
            let k = args.len();
            for (slot, v) in few.iter_mut().zip(args) {
                *slot = from_value(v);
            }
            &few[..k]
        } else {
            many = args.into_iter().map(from_value).collect();
            &many
        };
        self.value(Some(index as usize), vals)
    }

    fn has_module(&mut self, name: String) -> WResult<bool> {
        self.charge()?;
        Ok(self.env.registry.has_module(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Python runtime (`plugins/python/kemibox.py`, `_typed_for`) calls a typed import
    /// only where it can give back exactly what `kemi.call` gives; two of its rules rest
    /// on facts about particular exports, checked here so that a change to the registry
    /// or the WIT that breaks them fails a test instead of a Python script.
    #[test]
    fn typed_results_the_python_runtime_relies_on() {
        let all: Vec<String> = crate::modules::AVAILABLE
            .iter()
            .map(|m| m.to_string())
            .collect();
        let reg = Registry::build(&all).expect("registry");
        let kind_of = |ret: RType, kind: &str| {
            let mut v: Vec<String> = TYPED_KINDS
                .iter()
                .filter(|(m, n, k)| {
                    *k == kind
                        && reg
                            .index_of(m, n)
                            .is_some_and(|i| reg.exports()[i].ret == ret)
                })
                .map(|(m, n, _)| format!("{m}.{n}"))
                .collect();
            v.sort();
            v
        };
        // INT exports typed bool: kemibox.py turns the bool of `hdr.is_present` into 1/-1
        // (`_PLUS_MINUS_ONE`), which is right only while it answers nothing else;
        // `maxfwd.is_maxfwd_lt` stays on `kemi.call`. A new one needs a look there.
        assert_eq!(
            kind_of(RType::Int, "boolean"),
            ["hdr.is_present", "maxfwd.is_maxfwd_lt"]
        );
        // ... and `hdr.is_present` answers 1 or -1 only.
        let (env, _) = crate::testutil::env(&["udp:127.0.0.1:5060"], &[], "");
        let mut ctx = crate::testutil::ctx(
            &env,
            "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\n\
             CSeq: 1 OPTIONS\r\nX-Here: 1\r\nContent-Length: 0\r\n\r\n",
            crate::net::Proto::Udp,
            "127.0.0.1:5060",
        );
        let i = reg.index_of("hdr", "is_present").expect("hdr.is_present");
        for (name, want) in [("X-Here", 1), ("X-Absent", -1), ("", -1)] {
            let got = reg.call(i, &mut ctx, &[Val::Str(name.into())]);
            assert!(
                matches!(got, Ok(Val::Int(v)) if v == want),
                "hdr.is_present({name:?}) = {got:?}, kemibox.py expects {want}"
            );
        }
    }

    /// Every typed import names a real export: with every module loaded, none is missing.
    #[test]
    fn every_typed_import_resolves_to_an_export() {
        let all: Vec<String> = crate::modules::AVAILABLE
            .iter()
            .map(|m| m.to_string())
            .collect();
        let reg = Registry::build(&all).expect("registry");
        let idx = TypedIdx::new(&reg);
        assert_eq!(idx.missing(), Vec::<String>::new());
        // ... and every export has its typed function.
        assert_eq!(idx.resolved(), reg.exports().len());
        let core_only = Registry::build(&[]).expect("registry");
        assert!(TypedIdx::new(&core_only)
            .missing()
            .contains(&"rr.record_route".to_string()));
    }
}
