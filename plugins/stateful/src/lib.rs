//! A transaction-stateful proxy: a Rust port of `examples/stateful.lua`. Retransmissions
//! absorbed, CANCEL matched to its INVITE, and serial forking in the failure route
//! `ksr_failure_manage` to the URI named in an `X-Fallback` header; the branch route
//! `ksr_branch_mark` adds `X-Branch: wasm` to every branch.
//!
//! Config, space-separated, all optional: `marker=NAME` names this deployment: relayed
//! requests carry `X-Routing-Version: NAME` and requests the failure route relays carry
//! `X-Failure-Version: NAME` (the hot-swap tests tell versions apart by it).
//! `onsend_block=IP:PORT` adds an onsend route that logs every send
//! (`onsend: PROTO IP:PORT proto=N`) and drops the sends to IP:PORT; without it the
//! plugin has no onsend route.

use std::sync::OnceLock;

use kemibox_guest::{ksr, Plugin, Route};

static MARKER: OnceLock<Option<String>> = OnceLock::new();
static ONSEND_BLOCK: OnceLock<Option<String>> = OnceLock::new();

const FAILURE: &str = "ksr_failure_manage";
const BRANCH: &str = "ksr_branch_mark";

struct Stateful;

impl Plugin for Stateful {
    fn init(config: &str) -> Result<(), String> {
        let mut marker = None;
        let mut block = None;
        for item in config.split_whitespace() {
            match item.split_once('=') {
                Some(("marker", m)) if !m.is_empty() => marker = Some(m.to_string()),
                Some(("onsend_block", b)) if !b.is_empty() => block = Some(b.to_string()),
                _ => {
                    return Err(format!(
                        "config items are `marker=NAME` and `onsend_block=IP:PORT`, not `{item}`"
                    ))
                }
            }
        }
        let _ = MARKER.set(marker);
        let _ = ONSEND_BLOCK.set(block);
        Ok(())
    }

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
        if let Some(Some(m)) = MARKER.get() {
            ksr::hdr::append(&format!("X-Routing-Version: {m}\r\n"))?;
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

    fn onsend_route() -> Option<Route> {
        let block = ONSEND_BLOCK.get()?.as_deref()?;
        Some(onsend(block))
    }
}

/// Logs where the message goes; drops it when that is `block` (`IP:PORT`).
fn onsend(block: &str) -> Route {
    let pv = |n: &str| ksr::pv::get(n).unwrap_or_default();
    let (ip, port) = (pv("$snd(ip)"), pv("$snd(port)"));
    ksr::info(&format!(
        "onsend: {} {ip}:{port} proto={}\n",
        pv("$snd(sproto)"),
        pv("$snd(proto)")
    ))?;
    if format!("{ip}:{port}") == block {
        return ksr::x::drop();
    }
    Ok(())
}

/// On a busy or unreachable first target, try the one named in X-Fallback, if any.
fn failure_manage() -> Route {
    if ksr::tm::t_is_canceled()? > 0 {
        return Ok(());
    }
    if let Some(fallback) = ksr::pv::get("$hdr(X-Fallback)") {
        if ksr::tm::t_check_status("486|408")? > 0 {
            if let Some(Some(m)) = MARKER.get() {
                ksr::hdr::append(&format!("X-Failure-Version: {m}\r\n"))?;
            }
            ksr::seturi(&fallback)?;
            ksr::tm::t_relay()?;
        }
    }
    Ok(())
}

kemibox_guest::plugin!(Stateful);
