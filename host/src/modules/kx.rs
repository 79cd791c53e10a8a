//! `KSR.kx`: quick accessors for message attributes.

use crate::export;
use crate::kemi::{s, Ctx, Export, KemiError, Val};
use crate::sip::hdr::parse_auth;
use crate::sip::{HdrName, Uri};

type R = Result<Val, KemiError>;

fn opt(v: Option<String>) -> R {
    Ok(v.map(Val::Str).unwrap_or(Val::None))
}
fn e(v: Option<String>) -> R {
    Ok(Val::Str(v.unwrap_or_default()))
}
fn w(v: Option<String>) -> R {
    Ok(Val::Str(v.unwrap_or_else(|| "<null>".into())))
}

fn uri_part(u: Option<&str>, f: for<'a> fn(&Uri<'a>) -> Option<&'a str>) -> Option<String> {
    let u = Uri::parse(u?).ok()?;
    f(&u).filter(|s| !s.is_empty()).map(str::to_string)
}
fn user<'a>(u: &Uri<'a>) -> Option<&'a str> {
    u.user
}
fn host<'a>(u: &Uri<'a>) -> Option<&'a str> {
    Some(u.host)
}

fn ruser(c: &Ctx) -> Option<String> {
    uri_part(c.ruri(), user)
}
fn rhost(c: &Ctx) -> Option<String> {
    uri_part(c.ruri(), host)
}
fn fuser(c: &Ctx) -> Option<String> {
    uri_part(c.hdr_uri(HdrName::From), user)
}
fn fhost(c: &Ctx) -> Option<String> {
    uri_part(c.hdr_uri(HdrName::From), host)
}
fn tuser(c: &Ctx) -> Option<String> {
    uri_part(c.hdr_uri(HdrName::To), user)
}
fn thost(c: &Ctx) -> Option<String> {
    uri_part(c.hdr_uri(HdrName::To), host)
}
fn ua(c: &Ctx) -> Option<String> {
    c.msg.value(HdrName::UserAgent).map(str::to_string)
}
fn duri(c: &Ctx) -> Option<String> {
    c.dst_uri.clone()
}
fn body(c: &Ctx) -> Option<String> {
    Some(String::from_utf8_lossy(c.msg.body_bytes()).into_owned()).filter(|b| !b.is_empty())
}
fn cturi(c: &Ctx) -> Option<String> {
    let v = c.msg.value(HdrName::Contact)?;
    if v.trim() == "*" {
        return None;
    }
    c.hdr_uri(HdrName::Contact).map(str::to_string)
}
fn au(c: &Ctx) -> Option<String> {
    if matches!(
        c.msg.method(),
        Some(crate::sip::Method::Ack | crate::sip::Method::Cancel)
    ) {
        return None;
    }
    let v = c
        .msg
        .value(HdrName::ProxyAuthorization)
        .or_else(|| c.msg.value(HdrName::Authorization))?;
    let a = parse_auth(v).ok()?;
    let u = a.get("username")?;
    Some(u.split('@').next().unwrap_or(u).to_string())
}

macro_rules! triple {
    ($v:ident, $name:literal, $f:ident) => {
        $v.push(export!("kx", concat!("get_", $name), [], XVal, |c, _| opt(
            $f(c)
        )));
        $v.push(export!("kx", concat!("gete_", $name), [], XVal, |c, _| e(
            $f(c)
        )));
        $v.push(export!("kx", concat!("getw_", $name), [], XVal, |c, _| w(
            $f(c)
        )));
    };
}

pub fn exports() -> Vec<Export> {
    let mut v = vec![
        export!("kx", "get_ruri", [], XVal, |c, _| opt(c
            .ruri()
            .map(str::to_string))),
        export!("kx", "get_ouri", [], XVal, |c, _| opt(c
            .msg
            .ruri()
            .map(str::to_string))),
        export!("kx", "get_furi", [], XVal, |c, _| opt(c
            .hdr_uri(HdrName::From)
            .map(str::to_string))),
        export!("kx", "get_turi", [], XVal, |c, _| opt(c
            .hdr_uri(HdrName::To)
            .map(str::to_string))),
        export!("kx", "get_nhuri", [], XVal, |c, _| opt(c
            .nh_uri()
            .map(str::to_string))),
        export!("kx", "get_srcip", [], XVal, |c, _| Ok(Val::Str(
            c.rcv.src.ip().to_string()
        ))),
        export!("kx", "get_srcport", [], XVal, |c, _| Ok(Val::Int(
            c.rcv.src.port() as i64
        ))),
        export!("kx", "get_srcuri", [], XVal, |c, _| Ok(Val::Str(src_uri(
            c
        )))),
        export!("kx", "get_rcvip", [], XVal, |c, _| Ok(Val::Str(
            c.rcv.local.ip().to_string()
        ))),
        export!("kx", "get_rcvport", [], XVal, |c, _| Ok(Val::Int(
            c.rcv.local.port() as i64
        ))),
        export!("kx", "get_proto", [], XVal, |c, _| Ok(Val::Str(
            c.rcv.proto.lower().to_string()
        ))),
        export!("kx", "get_protoid", [], Int, |c, _| Ok(Val::Int(
            c.rcv.proto.id()
        ))),
        export!("kx", "get_method", [], XVal, |c, _| {
            let m = c.msg.method_text();
            opt((!m.is_empty()).then(|| m.to_string()))
        }),
        export!("kx", "get_status", [], Int, |c, _| Ok(Val::Int(
            c.msg.status().map(i64::from).unwrap_or(-1)
        ))),
        export!("kx", "gets_status", [], XVal, |c, _| opt(c
            .msg
            .status()
            .map(|s| s.to_string()))),
        export!("kx", "get_bodylen", [], Int, |c, _| Ok(Val::Int(
            c.msg.body_bytes().len() as i64
        ))),
        export!("kx", "get_msglen", [], Int, |c, _| Ok(Val::Int(
            c.msg.buf().len() as i64
        ))),
        export!("kx", "get_msgbuf", [], XVal, |c, _| Ok(Val::Str(
            String::from_utf8_lossy(c.msg.buf()).into_owned()
        ))),
        export!("kx", "get_msgtype", [], Int, |c, _| Ok(Val::Int(
            if c.msg.is_request() { 1 } else { 2 }
        ))),
        export!("kx", "get_callid", [], XVal, |c, _| e(c
            .msg
            .call_id()
            .map(str::to_string))),
        export!("kx", "get_conid", [], Int, |c, _| Ok(Val::Int(
            c.rcv.conn.map(|i| i as i64).unwrap_or(-1)
        ))),
        export!("kx", "get_timestamp", [], Int, |_, _| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            Ok(Val::Int(t as i64))
        }),
        // Defines come from `[core] define` (Kamailio's `#!define`).
        export!("kx", "get_def", [Str], XVal, |c, a| Ok(Val::Str(
            c.env.cfg.define(s(a, 0)).unwrap_or("").to_string()
        ))),
        export!("kx", "get_defn", [Str], Int, |c, a| {
            Ok(Val::Int(
                c.env
                    .cfg
                    .define(s(a, 0))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ))
        }),
        export!("kx", "ifdef", [Str], Bool, |c, a| Ok(Val::Bool(
            c.env.cfg.define(s(a, 0)).is_some()
        ))),
        export!("kx", "ifndef", [Str], Bool, |c, a| Ok(Val::Bool(
            c.env.cfg.define(s(a, 0)).is_none()
        ))),
        export!("kx", "get_env", [Str], XVal, |c, a| Ok(Val::Str(
            env_var(c, s(a, 0)).unwrap_or_default()
        ))),
        export!("kx", "get_envn", [Str], Int, |c, a| {
            Ok(Val::Int(
                env_var(c, s(a, 0))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0),
            ))
        }),
    ];
    triple!(v, "ruser", ruser);
    triple!(v, "rhost", rhost);
    triple!(v, "fuser", fuser);
    triple!(v, "fhost", fhost);
    triple!(v, "tuser", tuser);
    triple!(v, "thost", thost);
    triple!(v, "ua", ua);
    triple!(v, "duri", duri);
    triple!(v, "body", body);
    triple!(v, "cturi", cturi);
    triple!(v, "au", au);
    v
}

pub fn src_uri(c: &Ctx) -> String {
    let ip = c.rcv.src.ip();
    let host = if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    let mut u = format!("sip:{host}:{}", c.rcv.src.port());
    if c.rcv.proto != crate::net::Proto::Udp {
        u.push_str(";transport=");
        u.push_str(c.rcv.proto.lower());
    }
    u
}

/// An environment variable for the script: any for the operator's own Lua script on
/// mlua; for a sandboxed wasm plugin only those `[routing] guest_env` names (a guest gets
/// no environment unless the config grants it).
fn env_var(c: &Ctx, name: &str) -> Option<String> {
    let sandboxed = c
        .version
        .as_ref()
        .is_some_and(|v| matches!(v.routing, crate::engine::Routing::Wasm(_)));
    if sandboxed && !c.env.cfg.routing.guest_env.iter().any(|n| n == name) {
        return None;
    }
    std::env::var(name).ok()
}
