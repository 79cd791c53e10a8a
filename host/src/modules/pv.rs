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
    read(c, name, inner)
}

/// Reads `$name` (`$name(inner)`); `None` is `$null`, and so is a name it does not know.
fn read(c: &Ctx, name: &str, inner: Option<&str>) -> Option<Val> {
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

/// The pseudo-variables `read` knows: (name, takes an inner name in parentheses). A
/// format (`format`) may name only these; keep it in step with `read`'s arms.
const READABLE: &[(&str, bool)] = &[
    ("rm", false),
    ("ru", false),
    ("ou", false),
    ("rU", false),
    ("rd", false),
    ("rp", false),
    ("fu", false),
    ("fU", false),
    ("fd", false),
    ("ft", false),
    ("fn", false),
    ("tu", false),
    ("tU", false),
    ("td", false),
    ("tt", false),
    ("si", false),
    ("sp", false),
    ("Ri", false),
    ("Rp", false),
    ("pr", false),
    ("proto", false),
    ("ua", false),
    ("ci", false),
    ("cs", false),
    ("ct", false),
    ("du", false),
    ("rs", false),
    ("rr", false),
    ("mb", false),
    ("ml", false),
    ("rb", false),
    ("T_branch_idx", false),
    ("var", true),
    ("vn", true),
    ("avp", true),
    ("xavp", true),
    ("hdr", true),
    ("hdrc", true),
    ("sht", true),
    ("snd", true),
    ("sndto", true),
    ("sndfrom", true),
];

/// Kamailio's characters of a pseudo-variable's name (`is_pv_valid_char`).
fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'?'
}

/// One element of a format: the text it stands for is `Text`, or the value of `$name`
/// (`$name(inner)`) for `Pv`.
enum Elem<'a> {
    Text(&'a str),
    Pv(&'a str, Option<&'a str>),
}

/// Reads the pseudo-variable at the start of `f` (which starts with `$`): the element and
/// its length. The forms of Kamailio's `pv_parse_spec`: `$$` (a `$`), `$name`,
/// `$name(inner)`, `$(name)`, `$(name(inner))`; indexes (`[n]`) and transformations
/// (`{..}`) are not supported and, like a name that is not a pseudo-variable, make the
/// format invalid.
fn parse_pv(f: &str) -> Result<(Elem<'_>, usize), String> {
    let b = f.as_bytes();
    let mut p = 1;
    let enclosed = b.get(p) == Some(&b'(');
    if enclosed {
        p += 1;
    }
    if b.get(p) == Some(&b'$') {
        p += 1;
        if enclosed {
            if b.get(p) != Some(&b')') {
                return Err("unclosed `$(`".into());
            }
            p += 1;
        }
        return Ok((Elem::Text("$"), p));
    }
    let start = p;
    while b.get(p).is_some_and(|&c| is_name_char(c)) {
        p += 1;
    }
    let name = &f[start..p];
    let mut inner = None;
    if b.get(p) == Some(&b'(') {
        let from = p + 1;
        let mut depth = 0usize;
        let mut q = from;
        loop {
            match b.get(q) {
                None => return Err(format!("unclosed inner name of `${name}`")),
                Some(b')') if depth == 0 => break,
                Some(b')') => depth -= 1,
                Some(b'(') => depth += 1,
                Some(_) => {}
            }
            q += 1;
        }
        if q == from {
            return Err(format!("empty inner name of `${name}`"));
        }
        inner = Some(&f[from..q]);
        p = q + 1;
    }
    if enclosed {
        match b.get(p) {
            Some(b')') => p += 1,
            Some(b'[') | Some(b'{') => {
                return Err(format!(
                    "indexes and transformations (`${name}` in `$(..)`) are not supported"
                ))
            }
            _ => return Err("unclosed `$(`".into()),
        }
    }
    match READABLE.iter().find(|(n, _)| *n == name) {
        None if name.is_empty() => Err("`$` without a pseudo-variable name".into()),
        None => Err(format!("unknown pseudo-variable `${name}`")),
        Some((_, true)) if inner.is_none() => Err(format!("`${name}` needs an inner name")),
        Some((_, false)) if inner.is_some() => {
            Err(format!("`${name}` does not take an inner name"))
        }
        Some(_) => Ok((Elem::Pv(name, inner), p)),
    }
}

/// Expands the pseudo-variables in `fmt` as Kamailio's `pv_printf` does (xlog, and other
/// "format" parameters): a `$null` value prints `<null>`. An invalid format (a bad or
/// unknown pseudo-variable) is an error, as it is for Kamailio's `pv_parse_format`.
pub fn format(c: &Ctx, fmt: &str) -> Result<String, String> {
    let mut elems = Vec::new();
    let mut rest = fmt;
    while let Some(i) = rest.find('$') {
        if i > 0 {
            elems.push(Elem::Text(&rest[..i]));
        }
        let (e, len) = parse_pv(&rest[i..])?;
        elems.push(e);
        rest = &rest[i + len..];
    }
    if !rest.is_empty() {
        elems.push(Elem::Text(rest));
    }
    let mut out = String::with_capacity(fmt.len() + 32);
    for e in elems {
        match e {
            Elem::Text(t) => out.push_str(t),
            Elem::Pv(name, inner) => match read(c, name, inner) {
                Some(Val::Str(v)) => out.push_str(&v),
                Some(Val::Int(v)) => out.push_str(&v.to_string()),
                Some(Val::Bool(v)) => out.push_str(if v { "1" } else { "0" }),
                Some(Val::None) | None => out.push_str("<null>"),
            },
        }
    }
    Ok(out)
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
