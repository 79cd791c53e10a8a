//! Kamailio's example routing logic `kamailio-basic-kemi-lua.lua` (the KEMI twin of
//! `kamailio-basic-kemi.cfg`), written in Rust against the typed KEMI interfaces.
//!
//! The routes keep the Lua script's names and order so the two read side by side:
//! request route → reqinit (scanner UAs, ipban table, pike, Max-Forwards, keepalive
//! OPTIONS, sanity) → natdetect → CANCEL and retransmissions → withindlg → auth →
//! record-route → sipout → registrar → location → relay; plus the tm routes
//! `ksr_branch_manage`, `ksr_onreply_manage`, `ksr_failure_manage` and the core reply
//! route. Every `KSR.x.exit()` of the script is an `Err(Stop::Exit)` carried up by `?`.
//!
//! Optional modules (auth, permissions, nathelper, rtpproxy) are looked up at run time,
//! as the script does with `if KSR.nathelper then`, so the same build serves every
//! `[core] modules` set. Nothing to configure: `[routing] config` is ignored.

use std::cell::OnceCell;

use kemibox_guest::{ksr, Plugin, Route, Stop};

// Message flags (setflag/isflagset), as numbered by the script.
/// Account this transaction.
const FLT_ACC: i32 = 1;
/// Account a missed call.
const FLT_ACCMISSED: i32 = 2;
/// Account a failed transaction.
const FLT_ACCFAILED: i32 = 3;
/// The caller is behind a NAT.
const FLT_NATS: i32 = 5;

// Branch flags (setbflag/isbflagset).
/// The branch's UA is behind a NAT.
const FLB_NATB: i32 = 6;
/// Send NAT keepalives (SIP pings) to the registered contact.
const FLB_NATSIPPING: i32 = 7;

/// The tm routes, by the names the relay arms them with.
const BRANCH_ROUTE: &str = "ksr_branch_manage";
const ONREPLY_ROUTE: &str = "ksr_onreply_manage";
const FAILURE_ROUTE: &str = "ksr_failure_manage";

/// Substrings of a User-Agent that mark a scanner; such requests get a fake 200.
const SCANNERS: [&str; 4] = ["friendly", "scanner", "sipcli", "sipvicious"];

/// The optional modules the script tests for (`if KSR.<module> then`).
#[derive(Clone, Copy)]
enum Optional {
    Auth,
    Permissions,
    Nathelper,
    Rtpproxy,
}

impl Optional {
    fn name(self) -> &'static str {
        match self {
            Optional::Auth => "auth",
            Optional::Permissions => "permissions",
            Optional::Nathelper => "nathelper",
            Optional::Rtpproxy => "rtpproxy",
        }
    }
}

thread_local! {
    /// Whether each optional module is loaded, asked once per instance (the loaded set
    /// is fixed for the life of an instance) and only when a route needs it.
    static LOADED: [OnceCell<bool>; 4] = const {
        [OnceCell::new(), OnceCell::new(), OnceCell::new(), OnceCell::new()]
    };
}

/// True when the optional module `m` is loaded.
fn loaded(m: Optional) -> bool {
    LOADED.with(|c| *c[m as usize].get_or_init(|| ksr::has_module(m.name())))
}

struct Basic;

impl Plugin for Basic {
    fn request_route() -> Route {
        reqinit()?;
        natdetect()?;

        // A CANCEL goes where its INVITE went, if that transaction is known here.
        if ksr::is_cancel()? {
            if ksr::tm::t_check_trans()? > 0 {
                relay()?;
            }
            return Ok(());
        }

        // Retransmissions: absorbed by the transaction they belong to.
        if !ksr::is_ack()? {
            if ksr::tmx::t_precheck_trans()? > 0 {
                ksr::tm::t_check_trans()?;
                return Ok(());
            }
            if ksr::tm::t_check_trans()? == 0 {
                return Ok(());
            }
        }

        withindlg()?;

        // From here on, only initial requests (no To tag).
        auth()?;

        // Preloaded Route headers are not honoured; dialog-forming requests are
        // record-routed in case they end up routed elsewhere.
        ksr::hdr::remove("Route")?;
        if ksr::is_method_in("IS")? {
            ksr::rr::record_route()?;
        }
        if ksr::is_invite()? {
            ksr::setflag(FLT_ACC)?;
        }

        sipout()?;
        registrar()?;

        if ksr::corex::has_ruri_user()? < 0 {
            ksr::sl::sl_send_reply(484, "Address Incomplete")?;
            return Ok(());
        }

        location()
    }

    fn reply_route() -> Route {
        ksr::dbg("response - from kemibox basic plugin\n")?;
        if ksr::sanity::sanity_check(17604, 6)? < 0 {
            ksr::err(&format!("malformed SIP response from {}\n", source()?))?;
            return ksr::x::drop();
        }
        Ok(())
    }

    fn route(name: &str) -> Option<Route> {
        match name {
            BRANCH_ROUTE => Some(branch_manage()),
            ONREPLY_ROUTE => Some(onreply_manage()),
            FAILURE_ROUTE => Some(failure_manage()),
            _ => None,
        }
    }
}

/// `ip:port` of the sender, for log lines.
fn source() -> Result<String, Stop> {
    Ok(format!(
        "{}:{}",
        ksr::kx::get_srcip()?.unwrap_or_default(),
        ksr::kx::get_srcport()?.unwrap_or_default()
    ))
}

/// "METHOD from FROM-URI (IP:ip:port)", for the flood log lines.
fn who(srcip: &str) -> Result<String, Stop> {
    Ok(format!(
        "{} from {} (IP:{}:{})",
        ksr::kx::get_method()?.unwrap_or_default(),
        ksr::kx::get_furi()?.unwrap_or_default(),
        srcip,
        ksr::kx::get_srcport()?.unwrap_or_default()
    ))
}

/// Sends the request on statefully, arming the tm routes the method needs, and ends
/// the request route whatever happens.
fn relay() -> Route {
    if ksr::is_method_in("IBSU")? && ksr::tm::t_is_set("branch_route")? < 0 {
        ksr::tm::t_on_branch(BRANCH_ROUTE)?;
    }
    if ksr::is_method_in("ISU")? && ksr::tm::t_is_set("onreply_route")? < 0 {
        ksr::tm::t_on_reply(ONREPLY_ROUTE)?;
    }
    if ksr::is_invite()? && ksr::tm::t_is_set("failure_route")? < 0 {
        ksr::tm::t_on_failure(FAILURE_ROUTE)?;
    }
    if ksr::tm::t_relay()? < 0 {
        ksr::sl::sl_reply_error()?;
    }
    ksr::x::exit()
}

/// Checks every request gets first: banned or flooding sources, scanners,
/// Max-Forwards, keepalive OPTIONS and malformed messages.
fn reqinit() -> Route {
    // Replies go back where the request came from, over the connection it came on.
    ksr::set_reply_no_connect()?;
    ksr::force_rport()?;

    if !ksr::is_myself_srcip()? {
        let srcip = ksr::kx::get_srcip()?.unwrap_or_default();
        if ksr::htable::sht_match_name("ipban", "eq", &srcip)? > 0 {
            ksr::dbg(&format!("request from blocked IP - {}\n", who(&srcip)?))?;
            return ksr::x::exit();
        }
        if ksr::pike::pike_check_req()? < 0 {
            ksr::err(&format!("ALERT: pike blocking {}\n", who(&srcip)?))?;
            ksr::htable::sht_seti("ipban", &srcip, 1)?;
            return ksr::x::exit();
        }
    }

    let ua = ksr::kx::gete_ua()?.unwrap_or_default();
    if SCANNERS.iter().any(|s| ua.contains(s)) {
        ksr::sl::sl_send_reply(200, "OK")?;
        return ksr::x::exit();
    }

    if ksr::maxfwd::process_maxfwd(10)? < 0 {
        ksr::sl::sl_send_reply(483, "Too Many Hops")?;
        return ksr::x::exit();
    }

    if ksr::is_options()? && ksr::is_myself_ruri()? && ksr::corex::has_ruri_user()? < 0 {
        ksr::sl::sl_send_reply(200, "Keepalive")?;
        return ksr::x::exit();
    }

    if ksr::sanity::sanity_check(17895, 7)? < 0 {
        ksr::err(&format!("malformed SIP message from {}\n", source()?))?;
        return ksr::x::exit();
    }
    Ok(())
}

/// Requests inside a dialog (with a To tag) follow their Route set; anything else with
/// a To tag is answered here and ends the route.
fn withindlg() -> Route {
    if ksr::siputils::has_totag()? < 0 {
        return Ok(());
    }

    if ksr::rr::loose_route()? > 0 {
        dlguri()?;
        if ksr::is_bye()? {
            // Account the BYE, also when its transaction fails.
            ksr::setflag(FLT_ACC)?;
            ksr::setflag(FLT_ACCFAILED)?;
        } else if ksr::is_ack()? {
            natmanage()?;
        } else if ksr::is_notify()? {
            // RFC 6665: an in-dialog NOTIFY is record-routed too.
            ksr::rr::record_route()?;
        }
        relay()?;
        return ksr::x::exit();
    }

    if ksr::is_ack()? {
        // An ACK that matches a transaction (after a negative reply) goes on
        // statefully; one without a transaction is dropped silently.
        if ksr::tm::t_check_trans()? > 0 {
            relay()?;
        }
        return ksr::x::exit();
    }

    ksr::sl::sl_send_reply(404, "Not here")?;
    ksr::x::exit()
}

/// REGISTER: stores the bindings (with the NAT branch flags when the caller is behind
/// a NAT) and ends the route.
fn registrar() -> Route {
    if !ksr::is_register()? {
        return Ok(());
    }
    if ksr::isflagset(FLT_NATS)? {
        ksr::setbflag(FLB_NATB)?;
        ksr::setbflag(FLB_NATSIPPING)?;
    }
    if ksr::registrar::save("location", 0)? < 0 {
        ksr::sl::sl_reply_error()?;
    }
    ksr::x::exit()
}

/// Requests to a local user: the Request-URI becomes the user's registered contacts.
fn location() -> Route {
    let rc = ksr::registrar::lookup("location")?;
    if rc < 0 {
        ksr::tm::t_newtran()?;
        match rc {
            -1 | -3 => {
                ksr::sl::send_reply(404, "Not Found")?;
                return ksr::x::exit();
            }
            -2 => {
                ksr::sl::send_reply(405, "Method Not Allowed")?;
                return ksr::x::exit();
            }
            _ => {}
        }
    }

    // A call routed to a user counts as missed when it is not answered.
    if ksr::is_invite()? {
        ksr::setflag(FLT_ACCMISSED)?;
    }

    relay()?;
    ksr::x::exit()
}

/// Trusted source addresses pass; REGISTERs and requests from local users must
/// authenticate; nobody may use this server as an open relay.
fn auth() -> Route {
    if !loaded(Optional::Auth) {
        return Ok(());
    }

    if loaded(Optional::Permissions)
        && !ksr::is_register()?
        && ksr::permissions::allow_source_address(1)? > 0
    {
        return Ok(());
    }

    if ksr::is_register()? || ksr::is_myself_furi()? {
        let realm = ksr::kx::gete_fhost()?.unwrap_or_default();
        if ksr::auth_db::auth_check(&realm, "subscriber", 1)? < 0 {
            ksr::auth::auth_challenge(&realm, 0)?;
            return ksr::x::exit();
        }
        // Credentials are not forwarded, except on REGISTER and PUBLISH.
        if !ksr::is_method_in("RP")? {
            ksr::auth::consume_credentials()?;
        }
    }

    if !ksr::is_myself_furi()? && !ksr::is_myself_ruri()? {
        ksr::sl::sl_send_reply(403, "Not relaying")?;
        return ksr::x::exit();
    }
    Ok(())
}

/// Marks callers behind a NAT (FLT_NATS) and fixes their Contact for the way back.
fn natdetect() -> Route {
    if !loaded(Optional::Nathelper) {
        return Ok(());
    }
    if ksr::nathelper::nat_uac_test(19)? > 0 {
        if ksr::is_register()? {
            ksr::nathelper::fix_nated_register()?;
        } else if ksr::siputils::is_first_hop()? > 0 {
            ksr::nathelper::set_contact_alias()?;
        }
        ksr::setflag(FLT_NATS)?;
    }
    Ok(())
}

/// Media relaying for NATed parties, through rtpproxy when that module is loaded
/// (kemibox has no typed interface for it: it is reached through the generic one).
fn natmanage() -> Route {
    if !loaded(Optional::Rtpproxy) {
        return Ok(());
    }
    if ksr::siputils::is_request()? > 0
        && ksr::siputils::has_totag()? > 0
        && ksr::rr::check_route_param("nat=yes")? > 0
    {
        ksr::setbflag(FLB_NATB)?;
    }
    if !(ksr::isflagset(FLT_NATS)? || ksr::isbflagset(FLB_NATB)?) {
        return Ok(());
    }

    call_by_name("rtpproxy", "rtpproxy_manage", "co")?;

    if ksr::siputils::is_request()? > 0
        && ksr::siputils::has_totag()? < 0
        && ksr::tmx::t_is_branch_route()? > 0
    {
        ksr::rr::add_rr_param(";nat=yes")?;
    }
    if ksr::siputils::is_reply()? > 0 && ksr::isbflagset(FLB_NATB)? {
        ksr::nathelper::set_contact_alias()?;
    }
    Ok(())
}

/// Calls a one-string-argument export that has no typed interface, by looking its
/// index up in the generic `kemi` interface.
fn call_by_name(module: &str, name: &str, arg: &str) -> Result<(), Stop> {
    use ksr::kemi::{exports, Value};
    let index = exports()
        .iter()
        .position(|e| e.module == module && e.name == name)
        .ok_or_else(|| Stop::Error(format!("no export {module}.{name}")))?;
    let index = u32::try_from(index).map_err(|e| Stop::Error(e.to_string()))?;
    ksr::kemi::call(index, &[Value::Str(arg.to_string())])?;
    Ok(())
}

/// In-dialog requests to a NATed UA: the `alias` in the Request-URI gives the next hop.
fn dlguri() -> Route {
    if !loaded(Optional::Nathelper) {
        return Ok(());
    }
    if !ksr::isdsturiset()? {
        ksr::nathelper::handle_ruri_alias()?;
    }
    Ok(())
}

/// Requests for foreign domains are relayed with a hint header.
fn sipout() -> Route {
    if ksr::is_myself_ruri()? {
        return Ok(());
    }
    ksr::hdr::append("P-Hint: outbound\r\n")?;
    relay()?;
    ksr::x::exit()
}

/// tm branch route: runs for each outgoing branch.
fn branch_manage() -> Route {
    ksr::dbg(&format!(
        "new branch [{}] to {}\n",
        ksr::pv::get("$T_branch_idx").unwrap_or_default(),
        ksr::kx::get_ruri()?.unwrap_or_default()
    ))?;
    natmanage()
}

/// tm reply route: runs for each reply to a relayed request.
fn onreply_manage() -> Route {
    ksr::dbg("incoming reply\n")?;
    let code = ksr::kx::get_status()?;
    if code > 100 && code < 299 {
        natmanage()?;
    }
    Ok(())
}

/// tm failure route: runs when the transaction ends with a negative answer.
fn failure_manage() -> Route {
    natmanage()?;
    // A canceled call needs nothing more; there is no rerouting here either way.
    let _canceled = ksr::tm::t_is_canceled()? > 0;
    Ok(())
}

kemibox_guest::plugin!(Basic);
