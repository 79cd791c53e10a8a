//! Rust SDK for kemibox routing plugins (see also `README.md`).
//!
//! A plugin is a WebAssembly component (built with `cargo build --release --target
//! wasm32-wasip2`) of the world `kemibox:kemi/plugin` (`wit/kemi.wit`). It calls
//! Kamailio's KEMI functions through [`ksr`] and exports its routes by implementing
//! [`Plugin`] and naming the type in [`plugin!`]:
//!
//! ```no_run
//! use kemibox_guest::{ksr, Plugin, Route};
//!
//! struct Forward;
//!
//! impl Plugin for Forward {
//!     fn request_route() -> Route {
//!         if ksr::maxfwd::process_maxfwd(10)? < 0 {
//!             ksr::sl::sl_send_reply(483, "Too Many Hops")?;
//!             return ksr::x::exit();
//!         }
//!         if ksr::forward()? < 0 {
//!             ksr::sl::sl_reply_error()?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! kemibox_guest::plugin!(Forward);
//! ```
//!
//! Every KEMI call returns a `Result`: `Err(Stop::Exit)` / `Err(Stop::Drop)` when the
//! route must end (`KSR.x.exit()` / `KSR.x.drop()`), so `?` ends the route from any
//! depth without a trap.

/// The bindings generated from `wit/kemi.wit` by wit-bindgen (the raw interface).
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "kemibox_guest::bindings",
    });
}

use bindings::kemibox::kemi::types::{CallError, Value};

/// Why a route ends early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `KSR.x.exit()`: end the route; not an error.
    Exit,
    /// `KSR.x.drop()`: the message is dropped; end the route.
    Drop,
    /// A KEMI call was refused (bad arguments, module not loaded), with the reason.
    Error(String),
}

impl From<CallError> for Stop {
    fn from(e: CallError) -> Stop {
        match e {
            CallError::Exit => Stop::Exit,
            CallError::Drop => Stop::Drop,
            CallError::BadArgs(m) => Stop::Error(m),
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Exit => f.write_str("exit"),
            Stop::Drop => f.write_str("drop"),
            Stop::Error(m) => f.write_str(m),
        }
    }
}

/// What a route returns: `Ok(())`, or the reason it ended early.
pub type Route = Result<(), Stop>;

pub mod script;

/// A KEMI result: the value, or why the route must end.
pub type KResult<T> = Result<T, Stop>;

/// A routing plugin: the routes kemibox calls. Implement it and export the type with
/// [`plugin!`].
pub trait Plugin {
    /// Called once per instance with the `[routing] config` string; an `Err` refuses
    /// the plugin (start-up stops with the reason).
    fn init(config: &str) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// The request route (`ksr_request_route`).
    fn request_route() -> Route;

    /// The core reply route (`ksr_reply_route`); does nothing by default.
    fn reply_route() -> Route {
        Ok(())
    }

    /// A route named at run time (failure, branch and reply routes of tm, `KSR.route`).
    /// `None` when the plugin has no route of that name (the default).
    fn route(name: &str) -> Option<Route> {
        let _ = name;
        None
    }

    /// The onsend route (`ksr_onsend_route`), run just before a message leaves: a
    /// stateless forward, the first send of each tm branch, a relayed reply. The send is
    /// described by `$snd(ip)`, `$snd(port)`, `$snd(proto)`, `$snd(sproto)`, `$snd(af)`,
    /// `$snd(buf)`, `$snd(len)` (and `$sndfrom(..)` for the local socket), read with
    /// [`ksr::pv::get`]; [`ksr::set_drop`] or [`ksr::x::drop`] stops this send (a tm
    /// branch dropped is not sent; with no branch sent the caller gets a 477). Changes
    /// to the message are not sent.
    ///
    /// `None` (the default) means the plugin has no onsend route: kemibox then stops
    /// calling it for this plugin version, so a plugin without one pays nothing per send.
    /// Return `Some` on every call when you have one:
    ///
    /// ```no_run
    /// # use kemibox_guest::{ksr, Plugin, Route};
    /// # struct P;
    /// # impl Plugin for P { fn request_route() -> Route { Ok(()) }
    /// fn onsend_route() -> Option<Route> {
    ///     Some((|| {
    ///         if ksr::pv::get("$snd(ip)").as_deref() == Some("192.0.2.9") {
    ///             return ksr::x::drop();
    ///         }
    ///         Ok(())
    ///     })())
    /// }
    /// # }
    /// ```
    fn onsend_route() -> Option<Route> {
        None
    }
}

/// Exports a type implementing [`Plugin`] as the component's routes (it only builds for
/// a wasm32 target, hence a text example; `plugins/forward` is a complete one):
///
/// ```text
/// kemibox_guest::plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! plugin {
    ($t:ty) => {
        const _: () = {
            struct KemiboxExport;
            impl $crate::bindings::Guest for KemiboxExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    <$t as $crate::Plugin>::init(&config)
                }
                fn request_route() {
                    $crate::finish(<$t as $crate::Plugin>::request_route());
                }
                fn reply_route() {
                    $crate::finish(<$t as $crate::Plugin>::reply_route());
                }
                fn route(name: ::std::string::String) -> bool {
                    match <$t as $crate::Plugin>::route(&name) {
                        Some(r) => {
                            $crate::finish(r);
                            true
                        }
                        None => false,
                    }
                }
                fn onsend_route() -> bool {
                    match <$t as $crate::Plugin>::onsend_route() {
                        Some(r) => {
                            $crate::finish(r);
                            true
                        }
                        None => false,
                    }
                }
            }
    $crate::bindings::export!(KemiboxExport with_types_in $crate::bindings);
        };
    };
}

/// Ends a route: an early `Stop::Error` is logged at error level.
#[doc(hidden)]
pub fn finish(r: Route) {
    if let Err(Stop::Error(m)) = r {
        let _ = ksr::err(&format!("plugin route failed: {m}\n"));
    }
}

fn xval(v: Value) -> Option<String> {
    match v {
        Value::None => None,
        Value::Bool(b) => Some(if b { "1" } else { "0" }.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Str(s) => Some(s),
    }
}

/// Declares KEMI wrappers: `fn name(args) -> kind;` becomes `pub fn name(args) ->
/// KResult<T>` calling the typed import of the same name in interface `$m`; `kind` is
/// `int` (`i32`, Kamailio's >0 true / <0 false), `bool`, `unit` or `xval`
/// (`Option<String>`: `None` for a null value; an integer comes as its decimal text).
macro_rules! kemi_fns {
    ($m:ident; $($(#[$doc:meta])* fn $f:ident($($a:ident: $t:ty),*) -> $k:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $f($($a: $t),*) -> kemi_fns!(@ret $k) {
                kemi_fns!(@conv $k, $crate::bindings::kemibox::kemi::$m::$f($($a),*))
            }
        )*
    };
    (@ret int) => { $crate::KResult<i32> };
    (@ret bool) => { $crate::KResult<bool> };
    (@ret unit) => { $crate::KResult<()> };
    (@ret xval) => { $crate::KResult<Option<String>> };
    (@conv xval, $e:expr) => { Ok($crate::xval($e?)) };
    (@conv $k:ident, $e:expr) => { Ok($e?) };
}

/// The KEMI functions, named as in Kamailio's `KSR` (`ksr::sl::sl_send_reply`), one
/// module per KEMI module. Core functions (`KSR.<name>`) are at the top of this module;
/// Kamailio's upper-case names are lower-cased (`KSR.is_INVITE` is [`ksr::is_invite`]).
///
/// Calling a function of a module that is not loaded returns `Err(Stop::Error(..))`;
/// test with [`ksr::has_module`] first where the module is optional.
pub mod ksr {
    use super::bindings::kemibox::kemi as k;
    use super::{xval, KResult, Stop};

    /// True when KEMI module `name` is loaded (`"nathelper"`): what a Kamailio script
    /// tests with `if KSR.nathelper then`. `""` (the core) is always loaded.
    pub fn has_module(name: &str) -> bool {
        k::kemi::has_module(name)
    }

    kemi_fns! { core;
        /// True when the request's method is one of `methods` (names separated by `|`, e.g.
        /// "INVITE|BYE"); for a reply, the CSeq method is used.
        fn is_method(methods: &str) -> bool;
        /// True when the method is one of those named by letters in `methods`: I INVITE, A
        /// ACK, B BYE, C CANCEL, M MESSAGE, R REGISTER, E PRACK, P PUBLISH, S SUBSCRIBE, N
        /// NOTIFY, O OPTIONS, F REFER, U UPDATE (Kamailio's letters).
        fn is_method_in(methods: &str) -> bool;
        /// True when the method is INVITE.
        fn is_invite() -> bool;
        /// True when the method is ACK.
        fn is_ack() -> bool;
        /// True when the method is BYE.
        fn is_bye() -> bool;
        /// True when the method is CANCEL.
        fn is_cancel() -> bool;
        /// True when the method is REGISTER.
        fn is_register() -> bool;
        /// True when the method is OPTIONS.
        fn is_options() -> bool;
        /// True when the method is SUBSCRIBE.
        fn is_subscribe() -> bool;
        /// True when the method is PUBLISH.
        fn is_publish() -> bool;
        /// True when the method is NOTIFY.
        fn is_notify() -> bool;
        /// True when the method is REFER.
        fn is_refer() -> bool;
        /// True when the method is INFO.
        fn is_info() -> bool;
        /// True when the method is UPDATE.
        fn is_update() -> bool;
        /// True when the method is PRACK.
        fn is_prack() -> bool;
        /// True when the method is MESSAGE.
        fn is_message() -> bool;
        /// True when `uri` points to this server (a listen address or alias).
        fn is_myself(uri: &str) -> bool;
        /// True when the Request-URI points to this server (a listen address or alias).
        fn is_myself_ruri() -> bool;
        /// True when the destination URI (`$du`) points to this server.
        fn is_myself_duri() -> bool;
        /// True when the next hop (`$du`, else the Request-URI) points to this server.
        fn is_myself_nhuri() -> bool;
        /// True when the From URI points to this server.
        fn is_myself_furi() -> bool;
        /// True when the To URI points to this server.
        fn is_myself_turi() -> bool;
        /// True when the source address, port and transport are one of this server's
        /// sockets.
        fn is_myself_suri() -> bool;
        /// True when the source address is one of this server's addresses.
        fn is_myself_srcip() -> bool;
        /// Forwards the request statelessly to `$du` or the Request-URI. >0 on success.
        fn forward() -> int;
        /// Forwards the request statelessly to `uri`. >0 on success.
        fn forward_uri(uri: &str) -> int;
        /// Sets the destination URI (`$du`, the next hop).
        fn setdsturi(uri: &str) -> int;
        /// Clears the destination URI.
        fn resetdsturi() -> int;
        /// True when a destination URI is set.
        fn isdsturiset() -> bool;
        /// Rewrites the Request-URI.
        fn seturi(uri: &str) -> int;
        /// Rewrites the user part of the Request-URI.
        fn setuser(user: &str) -> bool;
        /// Rewrites the host part of the Request-URI.
        fn sethost(host: &str) -> bool;
        /// Sets message flag `flag` (0..31).
        fn setflag(flag: i32) -> int;
        /// Clears message flag `flag`.
        fn resetflag(flag: i32) -> bool;
        /// True when message flag `flag` is set.
        fn isflagset(flag: i32) -> bool;
        /// Sets flag `flag` of branch 0 (the Request-URI branch).
        fn setbflag(flag: i32) -> bool;
        /// Clears flag `flag` of branch 0.
        fn resetbflag(flag: i32) -> bool;
        /// True when flag `flag` of branch 0 is set.
        fn isbflagset(flag: i32) -> bool;
        /// Sets flag `flag` of branch `branch`.
        fn setbiflag(flag: i32, branch: i32) -> bool;
        /// Clears flag `flag` of branch `branch`.
        fn resetbiflag(flag: i32, branch: i32) -> bool;
        /// True when flag `flag` of branch `branch` is set.
        fn isbiflagset(flag: i32, branch: i32) -> bool;
        /// Sets script flag `flag` (kept for the whole processing of the message).
        fn setsflag(flag: i32) -> bool;
        /// Clears script flag `flag`.
        fn resetsflag(flag: i32) -> bool;
        /// True when script flag `flag` is set.
        fn issflagset(flag: i32) -> bool;
        /// Adds `rport` to the received Via (RFC 3581) for replies.
        fn force_rport() -> int;
        /// Adds `rport` to the Via this server inserts (accepted; kemibox always does).
        fn add_local_rport() -> bool;
        /// Closes the stream connection after forwarding the request.
        fn set_forward_close() -> bool;
        /// Forwards the request only over an existing stream connection.
        fn set_forward_no_connect() -> bool;
        /// Closes the stream connection after sending the reply.
        fn set_reply_close() -> bool;
        /// Sends replies only over an existing stream connection (never opens one).
        fn set_reply_no_connect() -> bool;
        /// True when the message was received over UDP.
        fn is_udp() -> bool;
        /// True when the message was received over TCP.
        fn is_tcp() -> bool;
        /// True when the message was received over TLS.
        fn is_tls() -> bool;
        /// True when the message was received over WS.
        fn is_ws() -> bool;
        /// True when the message was received over WSS.
        fn is_wss() -> bool;
        /// True when the message was received over SCTP (never: kemibox has no SCTP).
        fn is_sctp() -> bool;
        /// True when the message was received over a stream transport (TCP, TLS, WS, WSS).
        fn is_tcpx() -> bool;
        /// True when the message was received over WebSocket (WS or WSS).
        fn is_wsx() -> bool;
        /// True when the receiving transport is one of those named by letters in `protos`
        /// (Kamailio's: u UDP, t TCP, e TLS, v WS, w WSS).
        fn is_proto(protos: &str) -> bool;
        /// True when the message was received over IPv4.
        fn is_ipv4() -> bool;
        /// True when the message was received over IPv6.
        fn is_ipv6() -> bool;
        /// True when the request is to be sent over UDP.
        fn to_udp() -> bool;
        /// True when the request is to be sent over TCP.
        fn to_tcp() -> bool;
        /// True when the request is to be sent over TLS.
        fn to_tls() -> bool;
        /// True when the request is to be sent over WS.
        fn to_ws() -> bool;
        /// True when the request is to be sent over WSS.
        fn to_wss() -> bool;
        /// True when the request is to be sent over SCTP (never: kemibox has no SCTP).
        fn to_sctp() -> bool;
        /// True when the request is to be sent over WebSocket (WS or WSS).
        fn to_wsx() -> bool;
        /// True when the request is to be sent over IPv4.
        fn to_ipv4() -> bool;
        /// True when the request is to be sent over IPv6.
        fn to_ipv6() -> bool;
        /// True when the source port is `port`.
        fn is_src_port(port: i32) -> bool;
        /// True when the local port the message arrived on is `port`.
        fn is_dst_port(port: i32) -> bool;
        /// Marks the message to be dropped (Kamailio's `KSR.drop()`): the route goes on;
        /// nothing is sent for it.
        fn set_drop() -> unit;
        /// Logs `text` at `level` (`dbg`, `info`, `notice`, `warn`, `err`, `crit`).
        fn log(level: &str, text: &str) -> unit;
        /// Logs `text` at debug level.
        fn dbg(text: &str) -> unit;
        /// Logs `text` at info level.
        fn info(text: &str) -> unit;
        /// Logs `text` at notice level.
        fn notice(text: &str) -> unit;
        /// Logs `text` at warning level.
        fn warn(text: &str) -> unit;
        /// Logs `text` at error level.
        fn err(text: &str) -> unit;
        /// Logs `text` at critical level.
        fn crit(text: &str) -> unit;
    }

    /// Pseudo-variables (`KSR.pv.*`): `$ru`, `$rU`, `$fu`, `$si`, `$var(x)`, `$avp(x)`...
    pub mod pv {
        use super::{k, xval};

        /// The value of `name` (`"$rU"`) as a string; `None` when null (or on an error).
        pub fn get(name: &str) -> Option<String> {
            k::pv::get(name).ok().and_then(xval)
        }

        kemi_fns! { pv;
        /// Like `get`, an empty string when it is null.
        fn gete(name: &str) -> xval;
        /// Like `get`, `"<null>"` when it is null.
        fn getw(name: &str) -> xval;
        /// The value of `name` as an integer (0 when null or not a number).
        fn geti(name: &str) -> int;
        /// Like `get`, `default` when it is null.
        fn getvs(name: &str, default: &str) -> xval;
        /// Like `get`, the integer `default` when it is null.
        fn getvn(name: &str, default: i32) -> xval;
        /// Assigns string `value` to the writable pseudo-variable `name`.
        fn sets(name: &str, value: &str) -> int;
        /// Assigns integer `value` to the writable pseudo-variable `name`.
        fn seti(name: &str, value: i64) -> int;
        /// Sets `name` to null.
        fn unset(name: &str) -> int;
        /// True when `name` is null.
        fn is_null(name: &str) -> bool;
        }
    }

    /// Header operations (`KSR.hdr.*`).
    pub mod hdr {
        use super::{k, xval};

        /// The body of the first header named `name`; `None` when absent (or on an error).
        pub fn get(name: &str) -> Option<String> {
            k::hdr::get(name).ok().and_then(xval)
        }

        kemi_fns! { hdr;
        /// Appends a header line (`"X-Foo: bar\r\n"`) to the message.
        fn append(text: &str) -> int;
        /// Adds header line `text` after the first header named `name`.
        fn append_after(text: &str, name: &str) -> int;
        /// Inserts a header line before the first header.
        fn insert(text: &str) -> int;
        /// Adds header line `text` before the first header named `name`.
        fn insert_before(text: &str, name: &str) -> int;
        /// Removes every header named `name`.
        fn remove(name: &str) -> int;
        /// Removes every header named `name`, then appends header line `text`.
        fn rmappend(name: &str, text: &str) -> int;
        /// Removes every header named `name`, then inserts header line `text` first.
        fn rminsert(name: &str, text: &str) -> int;
        /// True when a header named `name` is present.
        fn is_present(name: &str) -> bool;
        /// Like `get`, an empty string when absent.
        fn gete(name: &str) -> xval;
        /// Like `get`, `"<null>"` when absent.
        fn getw(name: &str) -> xval;
        /// The body of header `name` number `index` (0 the first, -1 the last), `None` when
        /// absent.
        fn get_idx(name: &str, index: i32) -> xval;
        /// Like `get-idx`, an empty string when absent.
        fn gete_idx(name: &str, index: i32) -> xval;
        /// Like `get-idx`, `"<null>"` when absent.
        fn getw_idx(name: &str, index: i32) -> xval;
        /// Adds a header line to the replies this server generates for the message.
        fn append_to_reply(text: &str) -> int;
        }
    }

    /// Stateless replies (`KSR.sl.*`).
    pub mod sl {

        kemi_fns! { sl;
        /// Sends a stateless reply `code reason` to the request.
        fn sl_send_reply(code: i32, reason: &str) -> int;
        /// Sends a reply, statefully when the request has a transaction, else stateless.
        fn send_reply(code: i32, reason: &str) -> int;
        /// Replies with the error code of the last failed function (500 by default).
        fn sl_reply_error() -> int;
        /// Like `sl-reply-error`, statefully when the request has a transaction.
        fn send_reply_error() -> int;
        }
    }

    /// Max-Forwards handling (`KSR.maxfwd.*`).
    pub mod maxfwd {

        kemi_fns! { maxfwd;
        /// Decrements Max-Forwards (adds it with `limit` when absent). <0 when it was
        /// already 0 (answer 483), >0 otherwise.
        fn process_maxfwd(limit: i32) -> int;
        /// True when Max-Forwards is lower than `limit`.
        fn is_maxfwd_lt(limit: i32) -> bool;
        }
    }

    /// Script control (`KSR.x.*`).
    pub mod x {
        use super::{k, KResult, Stop};

        /// Ends the route: always `Err(Stop::Exit)`; use as `return ksr::x::exit();`.
        pub fn exit() -> KResult<()> {
            k::x::exit()?;
            Err(Stop::Exit)
        }
        /// Drops the message and ends the route: always `Err(Stop::Drop)`.
        pub fn drop() -> KResult<()> {
            k::x::drop()?;
            Err(Stop::Drop)
        }

        kemi_fns! { x;
        /// Does nothing (a probe for benchmarks and tests).
        fn probe() -> unit;
        }
    }

    /// Transactions (`KSR.tm.*`): stateful processing, Kamailio's tm module.
    pub mod tm {

        kemi_fns! { tm;
        /// Relays the request statefully (creates the transaction). >0 on success.
        fn t_relay() -> int;
        /// Relays statefully to `proxy` (`udp:host:port`).
        fn t_relay_to_proxy(proxy: &str) -> int;
        /// Relays statefully to `host`:`port` over `proto` (`udp`, `tcp`, `tls`).
        fn t_relay_to_proto_addr(proto: &str, host: &str, port: i32) -> int;
        /// Creates the transaction for the request without relaying it.
        fn t_newtran() -> int;
        /// For a CANCEL or ACK: >0 when it matches a transaction (and was handled). For
        /// another request: 0 when it is a retransmission (absorbed: end the route), <0
        /// when no transaction matches.
        fn t_check_trans() -> int;
        /// Replies statefully (the transaction must exist).
        fn t_reply(code: i32, reason: &str) -> int;
        /// Replies statefully, creating the transaction if needed.
        fn t_send_reply(code: i32, reason: &str) -> int;
        /// Runs the plugin's route `route` when the transaction fails (>=300).
        fn t_on_failure(route: &str) -> int;
        /// Runs route `route` for each new branch.
        fn t_on_branch(route: &str) -> int;
        /// Runs route `route` for each reply of the transaction.
        fn t_on_reply(route: &str) -> int;
        /// >0 when the handler named by `target` is set: `branch_route`, `failure_route` or
        /// `onreply_route`.
        fn t_is_set(target: &str) -> int;
        /// Sets the final-response timers (ms; 0 keeps the default).
        fn t_set_fr(fr_inv_ms: i32, fr_ms: i32) -> int;
        /// Sets the INVITE final-response timer (ms).
        fn t_set_fr_inv(fr_inv_ms: i32) -> int;
        /// Restores the final-response timers of the configuration.
        fn t_reset_fr() -> int;
        /// >0 when the transaction was canceled (failure route).
        fn t_is_canceled() -> int;
        /// >0 when the failed branch timed out (failure route).
        fn t_branch_timeout() -> int;
        /// >0 when the failed branch received a reply (failure route).
        fn t_branch_replied() -> int;
        /// >0 when the reply status matches regular expression `re`.
        fn t_check_status(re: &str) -> int;
        /// The status code of the transaction's reply (-1 when none).
        fn t_get_status_code() -> int;
        /// The index of the branch a branch, onreply or failure route runs for
        /// (`$T_branch_idx`).
        fn t_get_branch_index() -> int;
        /// With a non-zero `state`, a 6xx reply does not cancel the other branches of
        /// this transaction.
        fn t_set_disable_6xx(state: i32) -> int;
        /// Releases the transaction.
        fn t_release() -> int;
        /// For a CANCEL: >0 when the INVITE transaction it cancels exists.
        fn t_lookup_cancel() -> int;
        /// Loads the Request-URI and the added branches as contacts ordered by q value, for
        /// serial forking.
        fn t_load_contacts() -> int;
        /// Moves the next group of loaded contacts into the Request-URI and branches; <0
        /// when none is left.
        fn t_next_contacts() -> int;
        /// Forgets the replies received so far on the transaction's branches (failure
        /// route).
        fn t_drop_replies(mode: &str) -> int;
        }
    }

    /// Transaction extras (`KSR.tmx.*`).
    pub mod tmx {

        kemi_fns! { tmx;
        /// >0 when the request is a retransmission of a transaction still being created (a
        /// parallel copy): the route should end.
        fn t_precheck_trans() -> int;
        /// >0 when running in the request route.
        fn t_is_request_route() -> int;
        /// >0 when running in a failure route.
        fn t_is_failure_route() -> int;
        /// >0 when running in a branch route.
        fn t_is_branch_route() -> int;
        /// >0 when running in a reply route.
        fn t_is_reply_route() -> int;
        }
    }

    /// Record-Route and loose routing (`KSR.rr.*`, RFC 3261 §16.6, §16.12).
    pub mod rr {

        kemi_fns! { rr;
        /// Adds a Record-Route header for this server to the request (two with
        /// `enable_double_rr` when the transport changes).
        fn record_route() -> int;
        /// Like `record-route`, with `params` (`;a=b`) appended to the URI.
        fn record_route_params(params: &str) -> int;
        /// Adds a Record-Route with the given address `addr1` (and a second with `addr2`
        /// when not empty).
        fn record_route_preset(addr1: &str, addr2: &str) -> int;
        /// Adds one Record-Route with the given address.
        fn record_route_preset_one(addr: &str) -> int;
        /// Adds `param` (`;nat=yes`) to the Record-Route this server inserts.
        fn add_rr_param(param: &str) -> int;
        /// Removes the Record-Route added by this server for the request.
        fn remove_record_route() -> int;
        /// Routes by the Route set (in-dialog requests): >0 when a Route header was
        /// processed, <0 when there is none or it does not point here.
        fn loose_route() -> int;
        /// >0 when `loose-route` found a preloaded Route set (an initial request).
        fn loose_route_preloaded() -> int;
        /// >0 when the parameters of the Route this server is routing on match regular
        /// expression `re`.
        fn check_route_param(re: &str) -> int;
        /// >0 when the in-dialog request goes in direction `dir` (`downstream` from caller
        /// to callee or `upstream`), by the ftag parameter.
        fn is_direction(dir: &str) -> int;
        }
    }

    /// Location service (`KSR.registrar.*`).
    pub mod registrar {

        kemi_fns! { registrar;
        /// Saves the REGISTER's contacts in `table` and replies. >0 on success.
        fn save(table: &str, flags: i32) -> int;
        /// Like `save`, for the AOR `uri` instead of the To URI.
        fn save_uri(table: &str, flags: i32, uri: &str) -> int;
        /// Rewrites the Request-URI to the contacts of its AOR in `table`. >0 when found;
        /// -1 not found, -2 the method is not allowed by the contacts (method filtering),
        /// -3 internal error.
        fn lookup(table: &str) -> int;
        /// Like `lookup` for the AOR `uri`.
        fn lookup_uri(table: &str, uri: &str) -> int;
        /// >0 when the Request-URI's AOR has contacts in `table`.
        fn registered(table: &str) -> int;
        /// Removes every contact of AOR `uri`.
        fn unregister(table: &str, uri: &str) -> int;
        }
    }

    /// Message checks (`KSR.sanity.*`).
    pub mod sanity {

        kemi_fns! { sanity;
        /// Runs the checks selected by the bit masks; <0 (and a reply sent) when one fails.
        fn sanity_check(msg_checks: i32, uri_checks: i32) -> int;
        /// Runs the default checks (modparam default_checks/uri_checks).
        fn sanity_check_defaults() -> int;
        /// Sends the reply of the last failed check (accepted; `sanity-check` already
        /// replies).
        fn sanity_reply() -> int;
        }
    }

    /// Digest challenges (`KSR.auth.*`, RFC 7616); the checks are in `auth-db`.
    pub mod auth {

        kemi_fns! { auth;
        /// Challenges the request: 401 WWW-Authenticate for a REGISTER, 407
        /// Proxy-Authenticate otherwise. `flags` 1 adds `qop=auth`, 16 sends `stale=true`.
        fn auth_challenge(realm: &str, flags: i32) -> int;
        /// Sends a 401 with a WWW-Authenticate challenge for `realm`.
        fn www_challenge(realm: &str, flags: i32) -> int;
        /// Sends a 407 with a Proxy-Authenticate challenge for `realm`.
        fn proxy_challenge(realm: &str, flags: i32) -> int;
        /// Removes the credentials header that authorized the request, so it is not
        /// forwarded. <0 when none (or an ACK, CANCEL or PRACK).
        fn consume_credentials() -> int;
        /// >0 when the request carries credentials for `realm`.
        fn has_credentials(realm: &str) -> int;
        }
    }

    /// Digest authentication against the subscriber table (`KSR.auth_db.*`).
    pub mod auth_db {

        kemi_fns! { auth_db;
        /// Checks the credentials of the request (Authorization for a REGISTER, else
        /// Proxy-Authorization) against `table`; `flags` 1 also checks that the From/To
        /// user is the authenticated one. >0 authenticated; <0 Kamailio's codes (-1
        /// generic, -2 bad password, -3 stale nonce, -4 no credentials, -5 invalid user, -8
        /// user mismatch).
        fn auth_check(realm: &str, table: &str, flags: i32) -> int;
        /// Checks the Authorization header against `table`. >0 authenticated.
        fn www_authenticate(realm: &str, table: &str) -> int;
        /// Checks the Proxy-Authorization header against `table`. >0 authenticated.
        fn proxy_authenticate(realm: &str, table: &str) -> int;
        /// >0 when the user of `uri` is in `table`.
        fn is_subscriber(uri: &str, table: &str, flags: i32) -> int;
        }
    }

    /// SIP helpers (`KSR.siputils.*`).
    pub mod siputils {

        kemi_fns! { siputils;
        /// >0 when the To header has a tag (an in-dialog request).
        fn has_totag() -> int;
        /// >0 when the message is a request.
        fn is_request() -> int;
        /// >0 when the message is a reply.
        fn is_reply() -> int;
        /// >0 when this server is the first hop of the request (one Via) or the last hop of
        /// a reply.
        fn is_first_hop() -> int;
        /// >0 when `uri` parses as a SIP URI.
        fn is_uri(uri: &str) -> int;
        /// >0 when the Request-URI has parameter `name`.
        fn uri_param(name: &str) -> int;
        /// >0 when the Request-URI has parameter `name` with value `value`.
        fn uri_param_value(name: &str, value: &str) -> int;
        /// >0 when the Request-URI has parameter `name`, with or without value.
        fn uri_param_any(name: &str) -> int;
        /// Adds parameter `param` (`name=value`) to the Request-URI.
        fn add_uri_param(param: &str) -> int;
        /// Removes parameter `name` from the Request-URI.
        fn uri_param_rm(name: &str) -> int;
        /// >0 when `text` is a telephone number (an optional + and digits).
        fn is_tel_number(text: &str) -> int;
        /// >0 when `text` is made of digits only.
        fn is_numeric(text: &str) -> int;
        /// >0 when `text` is made of letters and digits only.
        fn is_alphanum(text: &str) -> int;
        /// Answers an OPTIONS to this server with 200 and the configured Accept,
        /// Accept-Encoding, Accept-Language and Supported headers.
        fn options_reply() -> int;
        /// >0 when the two URIs are equal by RFC 3261 §19.1.4.
        fn cmp_uri(uri1: &str, uri2: &str) -> int;
        /// >0 when the two URIs have the same address of record (user and host).
        fn cmp_aor(uri1: &str, uri2: &str) -> int;
        /// >0 when the Request-URI is a GRUU (`gr` parameter).
        fn is_gruu() -> int;
        }
    }

    /// NAT traversal helpers (`KSR.nathelper.*`).
    pub mod nathelper {

        kemi_fns! { nathelper;
        /// >0 when one of the tests selected by `flags` detects a NAT: 1 Contact in RFC
        /// 1918 space, 2 the source differs from the top Via, 4 top Via in RFC 1918 space,
        /// 8 SDP in RFC 1918 space, 16 the source port differs from the Via port.
        fn nat_uac_test(flags: i32) -> int;
        /// Rewrites the Contact URI to the source address and port.
        fn fix_nated_contact() -> int;
        /// Records the source address of a REGISTER as its `received` value (the
        /// received_avp), so the registrar saves it.
        fn fix_nated_register() -> int;
        /// Adds a `received` parameter with the source address to the Contact (`flags` 1:
        /// to the URI, else to the header).
        fn add_rcv_param(flags: i32) -> int;
        /// Adds an `alias` parameter with the source address to the Contact URI (for
        /// routing back through the NAT).
        fn set_contact_alias() -> int;
        /// Sets `$du` from an `alias` parameter of the Request-URI and removes it.
        fn handle_ruri_alias() -> int;
        /// >0 when `addr` is a private address (RFC 1918, RFC 6598, or an IPv6 unique local
        /// address).
        fn is_rfc1918(addr: &str) -> int;
        }
    }

    /// Flood detection (`KSR.pike.*`).
    pub mod pike {

        kemi_fns! { pike;
        /// Counts the request against its source IP: <0 when the source sends more than the
        /// configured density (it is blocked), >0 otherwise.
        fn pike_check_req() -> int;
        }
    }

    /// Shared hash tables (`KSR.htable.*`), named by the modparam `htable`.
    pub mod htable {

        kemi_fns! { htable;
        /// The value of `key` in `table`, `None` when absent.
        fn sht_get(table: &str, key: &str) -> xval;
        /// Like `sht-get`, an empty string when absent.
        fn sht_gete(table: &str, key: &str) -> xval;
        /// Like `sht-get`, `"<null>"` when absent.
        fn sht_getw(table: &str, key: &str) -> xval;
        /// Sets `key` in `table` to string `value`.
        fn sht_sets(table: &str, key: &str, value: &str) -> int;
        /// Sets `key` in `table` to integer `value`.
        fn sht_seti(table: &str, key: &str, value: i32) -> int;
        /// Removes `key` from `table`.
        fn sht_rm(table: &str, key: &str) -> int;
        /// Empties `table`.
        fn sht_reset(table: &str) -> int;
        /// Adds 1 to the integer at `key` (absent counts as 0) and returns the new value.
        fn sht_inc(table: &str, key: &str) -> int;
        /// Subtracts 1 from the integer at `key` (absent counts as 0) and returns the new
        /// value.
        fn sht_dec(table: &str, key: &str) -> int;
        /// >0 when a key of `table` matches `value` by `op`: `eq` equal, `ne` different,
        /// `sw` starts with, `re` regular expression.
        fn sht_match_name(table: &str, op: &str, value: &str) -> int;
        /// >0 when a key of `table` matches `value` by `op` (`eq` or `sw`).
        fn sht_has_name(table: &str, op: &str, value: &str) -> int;
        }
    }

    /// Address permissions (`KSR.permissions.*`), from the address table.
    pub mod permissions {

        kemi_fns! { permissions;
        /// >0 when the source address and port are in address group `group`.
        fn allow_source_address(group: i32) -> int;
        /// >0 when `addr`:`port` is in address group `group` (port 0 matches any).
        fn allow_address(group: i32, addr: &str, port: i32) -> int;
        /// The address group the source address and port belong to, -1 when none.
        fn allow_source_address_group() -> int;
        }
    }

    /// Quick accessors for message attributes (`KSR.kx.*`).
    pub mod kx {

        kemi_fns! { kx;
        /// The Request-URI.
        fn get_ruri() -> xval;
        /// The original Request-URI (as received).
        fn get_ouri() -> xval;
        /// The From URI.
        fn get_furi() -> xval;
        /// The To URI.
        fn get_turi() -> xval;
        /// The next-hop URI (`$du`, else the Request-URI).
        fn get_nhuri() -> xval;
        /// The source IP address.
        fn get_srcip() -> xval;
        /// The source port (an integer).
        fn get_srcport() -> xval;
        /// The source as a SIP URI (`sip:ip:port;transport=...`).
        fn get_srcuri() -> xval;
        /// The local IP address the message arrived on.
        fn get_rcvip() -> xval;
        /// The local port the message arrived on (an integer).
        fn get_rcvport() -> xval;
        /// The receiving transport (`udp`, `tcp`, `tls`, `ws`, `wss`).
        fn get_proto() -> xval;
        /// The receiving transport as Kamailio's protocol number (`PROTO_UDP`...).
        fn get_protoid() -> int;
        /// The request method (of the CSeq for a reply).
        fn get_method() -> xval;
        /// The status code of a reply (-1 for a request).
        fn get_status() -> int;
        /// The status code of a reply as a string.
        fn gets_status() -> xval;
        /// The length of the message body.
        fn get_bodylen() -> int;
        /// The length of the whole message.
        fn get_msglen() -> int;
        /// The whole message as received.
        fn get_msgbuf() -> xval;
        /// 1 for a request, 2 for a reply.
        fn get_msgtype() -> int;
        /// The Call-ID (an empty string when absent).
        fn get_callid() -> xval;
        /// The id of the stream connection the message came on (-1 for UDP).
        fn get_conid() -> int;
        /// The current time in seconds since the Unix epoch.
        fn get_timestamp() -> int;
        /// The Request-URI user, `None` when absent.
        fn get_ruser() -> xval;
        /// The Request-URI user, an empty string when absent.
        fn gete_ruser() -> xval;
        /// The Request-URI user, `"<null>"` when absent.
        fn getw_ruser() -> xval;
        /// The Request-URI host, `None` when absent.
        fn get_rhost() -> xval;
        /// The Request-URI host, an empty string when absent.
        fn gete_rhost() -> xval;
        /// The Request-URI host, `"<null>"` when absent.
        fn getw_rhost() -> xval;
        /// The From URI user, `None` when absent.
        fn get_fuser() -> xval;
        /// The From URI user, an empty string when absent.
        fn gete_fuser() -> xval;
        /// The From URI user, `"<null>"` when absent.
        fn getw_fuser() -> xval;
        /// The From URI host, `None` when absent.
        fn get_fhost() -> xval;
        /// The From URI host, an empty string when absent.
        fn gete_fhost() -> xval;
        /// The From URI host, `"<null>"` when absent.
        fn getw_fhost() -> xval;
        /// The To URI user, `None` when absent.
        fn get_tuser() -> xval;
        /// The To URI user, an empty string when absent.
        fn gete_tuser() -> xval;
        /// The To URI user, `"<null>"` when absent.
        fn getw_tuser() -> xval;
        /// The To URI host, `None` when absent.
        fn get_thost() -> xval;
        /// The To URI host, an empty string when absent.
        fn gete_thost() -> xval;
        /// The To URI host, `"<null>"` when absent.
        fn getw_thost() -> xval;
        /// The User-Agent header body, `None` when absent.
        fn get_ua() -> xval;
        /// The User-Agent header body, an empty string when absent.
        fn gete_ua() -> xval;
        /// The User-Agent header body, `"<null>"` when absent.
        fn getw_ua() -> xval;
        /// The destination URI (`$du`), `None` when absent.
        fn get_duri() -> xval;
        /// The destination URI (`$du`), an empty string when absent.
        fn gete_duri() -> xval;
        /// The destination URI (`$du`), `"<null>"` when absent.
        fn getw_duri() -> xval;
        /// The message body, `None` when absent.
        fn get_body() -> xval;
        /// The message body, an empty string when absent.
        fn gete_body() -> xval;
        /// The message body, `"<null>"` when absent.
        fn getw_body() -> xval;
        /// The first Contact URI, `None` when absent.
        fn get_cturi() -> xval;
        /// The first Contact URI, an empty string when absent.
        fn gete_cturi() -> xval;
        /// The first Contact URI, `"<null>"` when absent.
        fn getw_cturi() -> xval;
        /// The user name of the credentials (Authorization or Proxy-Authorization), `None`
        /// when absent.
        fn get_au() -> xval;
        /// The user name of the credentials (Authorization or Proxy-Authorization), an
        /// empty string when absent.
        fn gete_au() -> xval;
        /// The user name of the credentials (Authorization or Proxy-Authorization),
        /// `"<null>"` when absent.
        fn getw_au() -> xval;
        /// The value of `[core] define` entry `name` (Kamailio's `#!define`), empty when
        /// undefined.
        fn get_def(name: &str) -> xval;
        /// The value of define `name` as an integer (0 when undefined or not a number).
        fn get_defn(name: &str) -> int;
        /// True when `name` is defined (`[core] define`).
        fn ifdef(name: &str) -> bool;
        /// True when `name` is not defined.
        fn ifndef(name: &str) -> bool;
        /// The server process's environment variable `name`, empty when unset.
        fn get_env(name: &str) -> xval;
        /// The environment variable `name` as an integer (0 when unset or not a number).
        fn get_envn(name: &str) -> int;
        }
    }

    /// Core extensions (`KSR.corex.*`).
    pub mod corex {

        kemi_fns! { corex;
        /// >0 when the Request-URI has a non-empty user part.
        fn has_ruri_user() -> int;
        /// >0 when the message has a non-empty User-Agent header.
        fn has_user_agent() -> int;
        /// Adds the current Request-URI as a new branch.
        fn append_branch() -> int;
        /// Adds `uri` as a new branch.
        fn append_branch_uri(uri: &str) -> int;
        /// Adds `uri` as a new branch with q value `q` (`"0.5"`).
        fn append_branch_uri_q(uri: &str, q: &str) -> int;
        /// Replaces the source address of the message (`ip:port`).
        fn set_source_address(addr: &str) -> int;
        /// Accepted for compatibility; does nothing.
        fn via_add_srvid(flags: i32) -> int;
        /// >0 for a message made up by the server (never in kemibox).
        fn is_faked_msg() -> int;
        }
    }

    /// Text operations on the message (`KSR.textops.*`).
    pub mod textops {

        kemi_fns! { textops;
        /// >0 when regular expression `re` matches the message.
        fn search(re: &str) -> int;
        /// >0 when regular expression `re` matches the body.
        fn search_body(re: &str) -> int;
        /// >0 when `re` matches a header named `name`: `f` the first, `l` the last, `a` or
        /// empty any.
        fn search_hf(name: &str, re: &str, flags: &str) -> int;
        /// >0 when a header named `name` is present.
        fn is_present_hf(name: &str) -> int;
        /// >0 when the name of a header matches `re`.
        fn is_present_hf_re(re: &str) -> int;
        /// Removes the headers named `name`; returns how many (<0 when none).
        fn remove_hf(name: &str) -> int;
        /// Removes the headers whose name matches `re`.
        fn remove_hf_re(re: &str) -> int;
        /// Replaces the first match of `re` in the message with `text`.
        fn replace(re: &str, text: &str) -> int;
        /// Replaces every match of `re` in the message with `text`.
        fn replace_all(re: &str, text: &str) -> int;
        /// >0 when the message has a body.
        fn has_body() -> int;
        /// >0 when the message has a body of Content-Type `content-type`.
        fn has_body_type(content_type: &str) -> int;
        /// Sets the body (and its Content-Type) of the next locally generated reply.
        fn set_reply_body(body: &str, content_type: &str) -> int;
        /// >0 when `subject` is one of the items of `items` separated by `sep`.
        fn in_list(subject: &str, items: &str, sep: &str) -> int;
        /// >0 when an item of `items` (separated by `sep`) is a prefix of `subject`.
        fn in_list_prefix(subject: &str, items: &str, sep: &str) -> int;
        /// >0 when the strings are equal.
        fn cmp_str(a: &str, b: &str) -> int;
        /// >0 when the strings are equal ignoring ASCII case.
        fn cmp_istr(a: &str, b: &str) -> int;
        /// >0 when `text` starts with `prefix`.
        fn starts_with(text: &str, prefix: &str) -> int;
        /// >0 when `text` ends with `suffix`.
        fn ends_with(text: &str, suffix: &str) -> int;
        /// The position of `needle` in `text`, <0 when absent.
        fn str_find(text: &str, needle: &str) -> int;
        /// Like `str-find`, ignoring ASCII case.
        fn str_ifind(text: &str, needle: &str) -> int;
        }
    }

    /// Log lines with pseudo-variables expanded (`KSR.xlog.*`): 1, or -1 for an invalid
    /// format.
    pub mod xlog {

        kemi_fns! { xlog;
        /// Logs `text` at debug level.
        fn xdbg(text: &str) -> int;
        /// Logs `text` at info level.
        fn xinfo(text: &str) -> int;
        /// Logs `text` at notice level.
        fn xnotice(text: &str) -> int;
        /// Logs `text` at warning level.
        fn xwarn(text: &str) -> int;
        /// Logs `text` at error level.
        fn xerr(text: &str) -> int;
        /// Logs `text` at alert level.
        fn xalert(text: &str) -> int;
        /// Logs `text` at critical level.
        fn xcrit(text: &str) -> int;
        /// Logs `text` at `level` (`L_DBG`, `L_INFO`, `L_NOTICE`, `L_WARN`, `L_ERR`, ...).
        fn xlog(level: &str, text: &str) -> int;
        /// Logs `text` at `level`; the syslog `facility` is accepted and not used.
        fn xlog_facility(facility: &str, level: &str, text: &str) -> int;
        }
    }

    /// The generic indexed entry: every export of the loaded modules.
    pub mod kemi {
        pub use crate::bindings::kemibox::kemi::kemi::{ExportInfo, ParamType, ReturnType};
        pub use crate::bindings::kemibox::kemi::types::Value;

        use super::{k, KResult};

        /// Every export; an export's position is its index for [`call`].
        pub fn exports() -> Vec<ExportInfo> {
            k::kemi::exports()
        }
        /// Calls export `index` with `args`.
        pub fn call(index: u32, args: &[Value]) -> KResult<Value> {
            Ok(k::kemi::call(index, args)?)
        }
        /// True when KEMI module `name` is loaded.
        pub fn has_module(name: &str) -> bool {
            k::kemi::has_module(name)
        }
    }

    #[allow(unused_imports)]
    use Stop as _;
    #[allow(unused_imports)]
    use {xval as _, KResult as _};
}
