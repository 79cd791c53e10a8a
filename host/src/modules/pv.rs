//! `KSR.pv`: pseudo-variables by name (`$ru`, `$var(x)`, `$hdr(Name)`, ...).

use crate::export;
use crate::kemi::{n, s, Ctx, Export, Val};
use crate::net::Proto;
use crate::sip::hdr::parse_name_addr;
use crate::sip::uri::UriEdit;
use crate::sip::{HdrName, Uri};

use super::core::rewrite_ruri;

pub fn exports() -> Vec<Export> {
    vec![
        export!("pv", "get", [Str], XVal, |c, a| Ok(
            get(c, s(a, 0)).unwrap_or(Val::None)
        )),
        export!("pv", "gete", [Str], XVal, |c, a| Ok(
            get(c, s(a, 0)).unwrap_or(Val::Str(String::new()))
        )),
        export!("pv", "getw", [Str], XVal, |c, a| Ok(
            get(c, s(a, 0)).unwrap_or(Val::Str("<null>".into()))
        )),
        export!("pv", "geti", [Str], Int, |c, a| Ok(Val::Int(
            match get(c, s(a, 0)) {
                Some(Val::Int(i)) => i,
                Some(Val::Str(t)) => t.trim().parse().unwrap_or(0),
                _ => 0,
            }
        ))),
        export!("pv", "getvs", [Str, Str], XVal, |c, a| Ok(
            get(c, s(a, 0)).unwrap_or(Val::Str(s(a, 1).to_string()))
        )),
        export!("pv", "getvn", [Str, Int], XVal, |c, a| Ok(
            get(c, s(a, 0)).unwrap_or(Val::Int(n(a, 1)))
        )),
        export!("pv", "sets", [Str, Str], Bool, |c, a| {
            let v = Val::Str(s(a, 1).to_string());
            Ok(Val::Bool(set(c, s(a, 0), v)))
        }),
        export!("pv", "seti", [Str, Int], Bool, |c, a| {
            let v = Val::Int(n(a, 1));
            Ok(Val::Bool(set(c, s(a, 0), v)))
        }),
        export!("pv", "unset", [Str], Bool, |c, a| Ok(Val::Bool(set(
            c,
            s(a, 0),
            Val::None
        )))),
        export!("pv", "is_null", [Str], Bool, |c, a| Ok(Val::Bool(
            get(c, s(a, 0)).is_none()
        ))),
    ]
}

/// Splits `$name(inner)` into ("name", Some("inner")).
fn split(pv: &str) -> Option<(&str, Option<&str>)> {
    let body = pv.strip_prefix('$')?;
    match body.find('(') {
        Some(i) => {
            let inner = body[i + 1..].strip_suffix(')')?;
            Some((&body[..i], Some(inner)))
        }
        None => Some((body, None)),
    }
}

fn str_val(s: Option<&str>) -> Option<Val> {
    s.map(|s| Val::Str(s.to_string()))
}

fn ruri_part(c: &Ctx, f: impl Fn(&Uri<'_>) -> Option<String>) -> Option<Val> {
    let u = c.ruri()?;
    let u = Uri::parse(u).ok()?;
    f(&u).map(Val::Str)
}

fn hdr_uri_part(c: &Ctx, name: HdrName, f: impl Fn(&Uri<'_>) -> Option<String>) -> Option<Val> {
    let u = c.hdr_uri(name)?;
    let u = Uri::parse(u).ok()?;
    f(&u).map(Val::Str)
}

fn tag_of(c: &Ctx, name: HdrName) -> Option<Val> {
    let v = c.msg.value(name)?;
    str_val(parse_name_addr(v).ok()?.tag())
}

fn nonempty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

/// Reads a pseudo-variable; `None` is Kamailio's `$null`.
pub fn get(c: &Ctx, pv: &str) -> Option<Val> {
    let (name, inner) = split(pv)?;
    match (name, inner) {
        ("rm", None) => str_val(Some(c.msg.method_text()).filter(|m| !m.is_empty())),
        ("ru", None) => str_val(c.ruri()),
        ("ou", None) => str_val(c.msg.ruri()),
        ("rU", None) => ruri_part(c, |u| nonempty(u.user)),
        ("rd", None) => ruri_part(c, |u| nonempty(Some(u.host))),
        ("rp", None) => ruri_part(c, |u| {
            Some(match u.port {
                Some(p) => p.to_string(),
                None if u.transport().is_some_and(|t| t.eq_ignore_ascii_case("tls")) => {
                    "5061".into()
                }
                None => "5060".into(),
            })
        }),
        ("fu", None) => str_val(c.hdr_uri(HdrName::From)),
        ("fU", None) => hdr_uri_part(c, HdrName::From, |u| nonempty(u.user)),
        ("fd", None) => hdr_uri_part(c, HdrName::From, |u| nonempty(Some(u.host))),
        ("ft", None) => tag_of(c, HdrName::From),
        ("fn", None) => str_val(
            c.msg
                .value(HdrName::From)
                .and_then(|v| parse_name_addr(v).ok()?.display),
        ),
        ("tu", None) => str_val(c.hdr_uri(HdrName::To)),
        ("tU", None) => hdr_uri_part(c, HdrName::To, |u| nonempty(u.user)),
        ("td", None) => hdr_uri_part(c, HdrName::To, |u| nonempty(Some(u.host))),
        ("tt", None) => tag_of(c, HdrName::To),
        ("si", None) => Some(Val::Str(c.rcv.src.ip().to_string())),
        ("sp", None) => Some(Val::Int(c.rcv.src.port() as i64)),
        ("Ri", None) => Some(Val::Str(c.rcv.local.ip().to_string())),
        ("Rp", None) => Some(Val::Int(c.rcv.local.port() as i64)),
        ("pr" | "proto", None) => Some(Val::Str(c.rcv.proto.lower().to_string())),
        ("ua", None) => str_val(c.msg.value(HdrName::UserAgent)),
        ("ci", None) => str_val(c.msg.call_id()),
        ("cs", None) => c.msg.cseq().map(|cs| Val::Str(cs.seq.to_string())),
        ("ct", None) => str_val(c.msg.value(HdrName::Contact)),
        ("du", None) => str_val(c.dst_uri.as_deref()),
        ("rs", None) => c.msg.status().map(|s| Val::Int(s as i64)),
        ("rr", None) => str_val(c.msg.reason()),
        ("mb", None) => Some(Val::Str(String::from_utf8_lossy(c.msg.buf()).into_owned())),
        ("ml", None) => Some(Val::Int(c.msg.buf().len() as i64)),
        ("rb", None) => str_val(std::str::from_utf8(c.msg.body_bytes()).ok()),
        ("T_branch_idx", None) => Some(Val::Int(c.tm.branch_idx as i64)),
        ("var", Some(v)) => Some(c.vars.get(v).cloned().unwrap_or(Val::Int(0))),
        ("vn", Some(v)) => c.vars.get(v).cloned(),
        ("avp", Some(a)) => c
            .avps
            .iter()
            .rev()
            .find(|(n, _)| n == a)
            .map(|(_, v)| v.clone()),
        ("xavp", Some(x)) => {
            let (root, field) = match x.split_once("=>") {
                Some((r, f)) => (r, Some(f)),
                None => (x, None),
            };
            let item = c.xavps.get(root)?.first()?;
            match field {
                Some(f) => item.iter().find(|(n, _)| n == f).map(|(_, v)| v.clone()),
                None => Some(Val::Str(format!("<<xavp:{root}>>"))),
            }
        }
        ("hdr", Some(h)) => c
            .msg
            .headers_by_text(h)
            .next()
            .map(|h| Val::Str(c.msg.text(h.value).to_string())),
        ("hdrc", Some(h)) => Some(Val::Int(c.msg.headers_by_text(h).count() as i64)),
        ("sht", Some(x)) => {
            let (t, k) = x.split_once("=>")?;
            c.env.htables.get(t, k)
        }
        ("snd" | "sndto", Some(f)) => snd(c, f, false),
        ("sndfrom", Some(f)) => snd(c, f, true),
        _ => None,
    }
}

/// `$snd(..)` (= `$sndto(..)`) and `$sndfrom(..)`: the send an onsend route runs for,
/// `$null` anywhere else (Kamailio's pv_get_sndto/pv_get_sndfrom). `proto`, `sproto` and
/// `af` are the local socket's: WebSocket sends leave from Kamailio's TCP/TLS socket.
fn snd(c: &Ctx, field: &str, from: bool) -> Option<Val> {
    let i = c.snd.as_deref()?;
    let sock = match i.proto {
        Proto::Ws => Proto::Tcp,
        Proto::Wss => Proto::Tls,
        p => p,
    };
    let addr = if from { i.from } else { i.to };
    Some(match field {
        "ip" => Val::Str(addr.ip().to_string()),
        "port" => Val::Int(addr.port() as i64),
        "proto" => Val::Int(sock.id()),
        "sproto" => Val::Str(sock.lower().to_string()),
        // AF_INET / AF_INET6 (Linux).
        "af" => Val::Int(if i.from.is_ipv6() { 10 } else { 2 }),
        "buf" => Val::Str(String::from_utf8_lossy(&i.buf).into_owned()),
        "len" => Val::Int(i.buf.len() as i64),
        _ => return None,
    })
}

/// Writes a pseudo-variable. Read-only variables ignore the write and report success,
/// as Kamailio does; an unknown name is an error.
pub fn set(c: &mut Ctx, pv: &str, v: Val) -> bool {
    let Some((name, inner)) = split(pv) else {
        tracing::error!(target: "script", "invalid pv [{pv}]");
        return false;
    };
    let text = match &v {
        Val::Str(s) => Some(s.clone()),
        Val::Int(i) => Some(i.to_string()),
        _ => None,
    };
    match (name, inner) {
        ("ru", None) => match text {
            Some(u) if Uri::parse(&u).is_ok() && c.msg.is_request() => {
                c.new_uri = Some(u);
                true
            }
            _ => false,
        },
        ("rU", None) => {
            let u = text.unwrap_or_default();
            rewrite_ruri(
                c,
                UriEdit {
                    user: Some(&u),
                    ..Default::default()
                },
            ) == Ok(Val::Bool(true))
        }
        ("rd", None) => match text {
            Some(h) => {
                rewrite_ruri(
                    c,
                    UriEdit {
                        host: Some(&h),
                        ..Default::default()
                    },
                ) == Ok(Val::Bool(true))
            }
            None => false,
        },
        ("rp", None) => {
            let port = text.and_then(|p| p.parse::<u16>().ok());
            rewrite_ruri(
                c,
                UriEdit {
                    port: Some(port),
                    ..Default::default()
                },
            ) == Ok(Val::Bool(true))
        }
        ("du", None) => {
            match text {
                Some(u) if Uri::parse(&u).is_ok() => c.dst_uri = Some(u),
                Some(_) => return false,
                None => c.dst_uri = None,
            }
            true
        }
        ("var" | "vn", Some(name)) => {
            if v == Val::None {
                c.vars.remove(name);
            } else {
                c.vars.insert(name.to_string(), v);
            }
            true
        }
        ("avp", Some(name)) => {
            if v == Val::None {
                c.avps.retain(|(n, _)| n != name);
            } else {
                c.avps.push((name.to_string(), v));
            }
            true
        }
        ("sht", Some(x)) => match x.split_once("=>") {
            Some((t, k)) => c.env.htables.set(t, k, v),
            None => false,
        },
        ("xavp", Some(x)) => {
            let Some((root, field)) = x.split_once("=>") else {
                if v == Val::None {
                    c.xavps.remove(x);
                    return true;
                }
                return false;
            };
            let list = c.xavps.entry(root.to_string()).or_default();
            if list.is_empty() {
                list.push(Vec::new());
            }
            let item = &mut list[0];
            item.retain(|(n, _)| n != field);
            if v != Val::None {
                item.push((field.to_string(), v));
            }
            true
        }
        _ => {
            if get(c, pv).is_some() || is_known(name) {
                true
            } else {
                tracing::error!(target: "script", "invalid pv [{pv}]");
                false
            }
        }
    }
}

fn is_known(name: &str) -> bool {
    matches!(
        name,
        "rm" | "ou"
            | "fu"
            | "fU"
            | "fd"
            | "ft"
            | "fn"
            | "tu"
            | "tU"
            | "td"
            | "tt"
            | "si"
            | "sp"
            | "Ri"
            | "Rp"
            | "pr"
            | "proto"
            | "ua"
            | "ci"
            | "cs"
            | "ct"
            | "rs"
            | "rr"
            | "mb"
            | "ml"
            | "rb"
            | "T_branch_idx"
            | "hdr"
            | "hdrc"
            | "snd"
            | "sndto"
            | "sndfrom"
    )
}
