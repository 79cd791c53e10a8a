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

/// The KEMI functions, named as in Kamailio's `KSR` (`ksr::sl::sl_send_reply`).
/// Core functions (`KSR.<name>`) are at the top of this module.
pub mod ksr {
    use super::bindings::kemibox::kemi as k;
    use super::{xval, KResult, Stop};

    /// True when the method is one of `methods` (`"INVITE|BYE"`).
    pub fn is_method(methods: &str) -> KResult<bool> {
        Ok(k::core::is_method(methods)?)
    }
    /// True when the Request-URI points to this server.
    pub fn is_myself_ruri() -> KResult<bool> {
        Ok(k::core::is_myself_ruri()?)
    }
    /// True when the From URI points to this server.
    pub fn is_myself_furi() -> KResult<bool> {
        Ok(k::core::is_myself_furi()?)
    }
    /// True when the To URI points to this server.
    pub fn is_myself_turi() -> KResult<bool> {
        Ok(k::core::is_myself_turi()?)
    }
    /// True when the source IP is one of this server's.
    pub fn is_myself_srcip() -> KResult<bool> {
        Ok(k::core::is_myself_srcip()?)
    }
    /// Forwards the request statelessly to `$du` or the Request-URI (>0 on success).
    pub fn forward() -> KResult<i32> {
        Ok(k::core::forward()?)
    }
    /// Forwards the request statelessly to `uri` (>0 on success).
    pub fn forward_uri(uri: &str) -> KResult<i32> {
        Ok(k::core::forward_uri(uri)?)
    }
    /// Sets the destination URI `$du`.
    pub fn setdsturi(uri: &str) -> KResult<i32> {
        Ok(k::core::setdsturi(uri)?)
    }
    /// Clears `$du`.
    pub fn resetdsturi() -> KResult<i32> {
        Ok(k::core::resetdsturi()?)
    }
    /// True when `$du` is set.
    pub fn isdsturiset() -> KResult<bool> {
        Ok(k::core::isdsturiset()?)
    }
    /// Rewrites the Request-URI.
    pub fn seturi(uri: &str) -> KResult<i32> {
        Ok(k::core::seturi(uri)?)
    }
    /// Sets message flag `flag`.
    pub fn setflag(flag: i32) -> KResult<i32> {
        Ok(k::core::setflag(flag)?)
    }
    /// True when message flag `flag` is set.
    pub fn isflagset(flag: i32) -> KResult<bool> {
        Ok(k::core::isflagset(flag)?)
    }
    /// Adds `rport` to the received Via for replies.
    pub fn force_rport() -> KResult<i32> {
        Ok(k::core::force_rport()?)
    }
    /// Logs at debug level.
    pub fn dbg(text: &str) -> KResult<()> {
        Ok(k::core::dbg(text)?)
    }
    /// Logs at info level.
    pub fn info(text: &str) -> KResult<()> {
        Ok(k::core::info(text)?)
    }
    /// Logs at notice level.
    pub fn notice(text: &str) -> KResult<()> {
        Ok(k::core::notice(text)?)
    }
    /// Logs at warning level.
    pub fn warn(text: &str) -> KResult<()> {
        Ok(k::core::warn(text)?)
    }
    /// Logs at error level.
    pub fn err(text: &str) -> KResult<()> {
        Ok(k::core::err(text)?)
    }
    /// Logs at critical level.
    pub fn crit(text: &str) -> KResult<()> {
        Ok(k::core::crit(text)?)
    }

    /// Pseudo-variables (`KSR.pv`).
    pub mod pv {
        use super::{k, xval, KResult};

        /// The value of `name` (`"$rU"`) as a string; `None` when null.
        pub fn get(name: &str) -> Option<String> {
            k::pv::get(name).ok().and_then(xval)
        }
        /// Assigns a string.
        pub fn sets(name: &str, value: &str) -> KResult<i32> {
            Ok(k::pv::sets(name, value)?)
        }
        /// Assigns an integer.
        pub fn seti(name: &str, value: i64) -> KResult<i32> {
            Ok(k::pv::seti(name, value)?)
        }
        /// Sets `name` to null.
        pub fn unset(name: &str) -> KResult<i32> {
            Ok(k::pv::unset(name)?)
        }
        /// True when `name` is null.
        pub fn is_null(name: &str) -> KResult<bool> {
            Ok(k::pv::is_null(name)?)
        }
    }

    /// Headers (`KSR.hdr`).
    pub mod hdr {
        use super::{k, xval, KResult};

        /// Appends a header line (`"X-A: b\r\n"`).
        pub fn append(text: &str) -> KResult<i32> {
            Ok(k::hdr::append(text)?)
        }
        /// Removes every header named `name`.
        pub fn remove(name: &str) -> KResult<i32> {
            Ok(k::hdr::remove(name)?)
        }
        /// True when a header named `name` is present.
        pub fn is_present(name: &str) -> KResult<bool> {
            Ok(k::hdr::is_present(name)?)
        }
        /// The body of the first header named `name`.
        pub fn get(name: &str) -> Option<String> {
            k::hdr::get(name).ok().and_then(xval)
        }
        /// Adds a header line to locally generated replies.
        pub fn append_to_reply(text: &str) -> KResult<i32> {
            Ok(k::hdr::append_to_reply(text)?)
        }
    }

    /// Stateless replies (`KSR.sl`).
    pub mod sl {
        use super::{k, KResult};

        /// Sends a stateless reply.
        pub fn sl_send_reply(code: i32, reason: &str) -> KResult<i32> {
            Ok(k::sl::sl_send_reply(code, reason)?)
        }
        /// Sends a reply, statefully when there is a transaction.
        pub fn send_reply(code: i32, reason: &str) -> KResult<i32> {
            Ok(k::sl::send_reply(code, reason)?)
        }
        /// Replies with the last error's code.
        pub fn sl_reply_error() -> KResult<i32> {
            Ok(k::sl::sl_reply_error()?)
        }
    }

    /// Max-Forwards (`KSR.maxfwd`).
    pub mod maxfwd {
        use super::{k, KResult};

        /// Decrements Max-Forwards; <0 when exhausted (answer 483).
        pub fn process_maxfwd(limit: i32) -> KResult<i32> {
            Ok(k::maxfwd::process_maxfwd(limit)?)
        }
        /// True when Max-Forwards is lower than `limit`.
        pub fn is_maxfwd_lt(limit: i32) -> KResult<bool> {
            Ok(k::maxfwd::is_maxfwd_lt(limit)?)
        }
    }

    /// Script control (`KSR.x`).
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
    }

    /// Transactions (`KSR.tm.*`): stateful processing, Kamailio's tm module.
    pub mod tm {
        use super::{k, KResult};

        /// Relays the request statefully (creates the transaction). >0 on success.
        pub fn t_relay() -> KResult<i32> {
            Ok(k::tm::t_relay()?)
        }
        /// Relays statefully to `proxy` (`udp:host:port`).
        pub fn t_relay_to_proxy(proxy: &str) -> KResult<i32> {
            Ok(k::tm::t_relay_to_proxy(proxy)?)
        }
        /// Creates the transaction for the request without relaying it.
        pub fn t_newtran() -> KResult<i32> {
            Ok(k::tm::t_newtran()?)
        }
        /// For a CANCEL or ACK: >0 when it matches a transaction (and was handled).
        pub fn t_check_trans() -> KResult<i32> {
            Ok(k::tm::t_check_trans()?)
        }
        /// Replies statefully (the transaction must exist).
        pub fn t_reply(code: i32, reason: &str) -> KResult<i32> {
            Ok(k::tm::t_reply(code, reason)?)
        }
        /// Replies statefully, creating the transaction if needed.
        pub fn t_send_reply(code: i32, reason: &str) -> KResult<i32> {
            Ok(k::tm::t_send_reply(code, reason)?)
        }
        /// Runs the plugin's route `route` when the transaction fails (>=300).
        pub fn t_on_failure(route: &str) -> KResult<i32> {
            Ok(k::tm::t_on_failure(route)?)
        }
        /// Runs route `route` for each new branch.
        pub fn t_on_branch(route: &str) -> KResult<i32> {
            Ok(k::tm::t_on_branch(route)?)
        }
        /// Runs route `route` for each reply of the transaction.
        pub fn t_on_reply(route: &str) -> KResult<i32> {
            Ok(k::tm::t_on_reply(route)?)
        }
        /// Sets the final-response timers (ms; 0 keeps the default).
        pub fn t_set_fr(fr_inv_ms: i32, fr_ms: i32) -> KResult<i32> {
            Ok(k::tm::t_set_fr(fr_inv_ms, fr_ms)?)
        }
        /// >0 when the transaction was canceled (failure route).
        pub fn t_is_canceled() -> KResult<i32> {
            Ok(k::tm::t_is_canceled()?)
        }
        /// >0 when the failed branch timed out (failure route).
        pub fn t_branch_timeout() -> KResult<i32> {
            Ok(k::tm::t_branch_timeout()?)
        }
        /// >0 when the failed branch received a reply (failure route).
        pub fn t_branch_replied() -> KResult<i32> {
            Ok(k::tm::t_branch_replied()?)
        }
        /// >0 when the reply status matches regular expression `re`.
        pub fn t_check_status(re: &str) -> KResult<i32> {
            Ok(k::tm::t_check_status(re)?)
        }
        /// The status code of the transaction's reply (-1 when none).
        pub fn t_get_status_code() -> KResult<i32> {
            Ok(k::tm::t_get_status_code()?)
        }
        /// Releases the transaction.
        pub fn t_release() -> KResult<i32> {
            Ok(k::tm::t_release()?)
        }
    }

    /// Location service (`KSR.registrar.*`).
    pub mod registrar {
        use super::{k, KResult};

        /// Saves the REGISTER's contacts in `table` and replies. >0 on success.
        pub fn save(table: &str, flags: i32) -> KResult<i32> {
            Ok(k::registrar::save(table, flags)?)
        }
        /// Rewrites the Request-URI to the contacts of its AOR in `table`. >0 when found.
        pub fn lookup(table: &str) -> KResult<i32> {
            Ok(k::registrar::lookup(table)?)
        }
        /// Like `lookup` for the AOR `uri`.
        pub fn lookup_uri(table: &str, uri: &str) -> KResult<i32> {
            Ok(k::registrar::lookup_uri(table, uri)?)
        }
        /// >0 when the Request-URI's AOR has contacts in `table`.
        pub fn registered(table: &str) -> KResult<i32> {
            Ok(k::registrar::registered(table)?)
        }
        /// Removes every contact of AOR `uri`.
        pub fn unregister(table: &str, uri: &str) -> KResult<i32> {
            Ok(k::registrar::unregister(table, uri)?)
        }
    }

    /// Message checks (`KSR.sanity.*`).
    pub mod sanity {
        use super::{k, KResult};

        /// Runs the checks selected by the bit masks; <0 (and a reply sent) when one fails.
        pub fn sanity_check(msg_checks: i32, uri_checks: i32) -> KResult<i32> {
            Ok(k::sanity::sanity_check(msg_checks, uri_checks)?)
        }
        /// Runs the default checks (modparam default_checks/uri_checks).
        pub fn sanity_check_defaults() -> KResult<i32> {
            Ok(k::sanity::sanity_check_defaults()?)
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
    }

    #[allow(unused_imports)]
    use Stop as _;
}
