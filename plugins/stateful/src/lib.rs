//! A transaction-stateful proxy: a Rust port of `examples/stateful.lua`. Retransmissions
//! absorbed, CANCEL matched to its INVITE, and serial forking in the failure route
//! `ksr_failure_manage` to the URI named in an `X-Fallback` header; the branch route
//! `ksr_branch_mark` adds `X-Branch: wasm` to every branch.

use kemibox_guest::{ksr, Plugin, Route};

const FAILURE: &str = "ksr_failure_manage";
const BRANCH: &str = "ksr_branch_mark";

struct Stateful;

impl Plugin for Stateful {
    fn request_route() -> Route {
        if ksr::maxfwd::process_maxfwd(10)? < 0 {
            ksr::sl::sl_send_reply(483, "Too Many Hops")?;
            return ksr::x::exit();
        }
        if ksr::is_method("CANCEL")? {
            if ksr::tm::t_check_trans()? > 0 {
                ksr::tm::t_relay()?;
            }
            return ksr::x::exit();
        }
        // Retransmissions and ACKs to negative replies are absorbed here.
        if ksr::tm::t_check_trans()? == 0 {
            return ksr::x::exit();
        }
        if ksr::is_method("INVITE")? {
            ksr::tm::t_on_failure(FAILURE)?;
            ksr::tm::t_on_branch(BRANCH)?;
        }
        if ksr::tm::t_relay()? < 0 {
            ksr::sl::sl_reply_error()?;
        }
        Ok(())
    }

    fn route(name: &str) -> Option<Route> {
        match name {
            FAILURE => Some(failure_manage()),
            // Branch routes run nested in t_relay (on a fresh instance of the plugin).
            BRANCH => Some(ksr::hdr::append("X-Branch: wasm\r\n").map(|_| ())),
            _ => None,
        }
    }
}

/// On a busy or unreachable first target, try the one named in X-Fallback, if any.
fn failure_manage() -> Route {
    if ksr::tm::t_is_canceled()? > 0 {
        return Ok(());
    }
    if let Some(fallback) = ksr::pv::get("$hdr(X-Fallback)") {
        if ksr::tm::t_check_status("486|408")? > 0 {
            ksr::seturi(&fallback)?;
            ksr::tm::t_relay()?;
        }
    }
    Ok(())
}

kemibox_guest::plugin!(Stateful);
