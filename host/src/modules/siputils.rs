//! `KSR.siputils`: tests on the message and small helpers.

use crate::export;
use crate::kemi::{s, Ctx, Export, KemiError, Val};
use crate::proxy::reply::send_reply;
use crate::sip::hdr::{parse_name_addr, split_list};
use crate::sip::uri::UriEdit;
use crate::sip::{HdrName, Method, Uri};

type R = Result<Val, KemiError>;

fn i(v: i64) -> R {
    Ok(Val::Int(v))
}

fn yes(b: bool) -> R {
    i(if b { 1 } else { -1 })
}

pub fn exports() -> Vec<Export> {
    vec![
        export!("siputils", "has_totag", [], Int, |c, _| {
            let tag = c
                .msg
                .value(HdrName::To)
                .and_then(|v| parse_name_addr(v).ok()?.tag());
            yes(tag.is_some_and(|t| !t.is_empty()))
        }),
        export!("siputils", "is_request", [], Int, |c, _| yes(c
            .msg
            .is_request())),
        export!("siputils", "is_reply", [], Int, |c, _| yes(!c
            .msg
            .is_request())),
        export!("siputils", "is_first_hop", [], Int, |c, _| yes(first_hop(
            c
        ))),
        export!("siputils", "is_uri", [Str], Int, |_, a| yes(Uri::parse(s(
            a, 0
        ))
        .is_ok())),
        export!("siputils", "uri_param", [Str], Int, |c, a| {
            yes(ruri_params(c).is_some_and(|p| p.iter().any(|(n, v)| n == s(a, 0) && v.is_none())))
        }),
        export!("siputils", "uri_param_value", [Str, Str], Int, |c, a| {
            yes(ruri_params(c).is_some_and(|p| {
                p.iter()
                    .any(|(n, v)| n == s(a, 0) && v.as_deref() == Some(s(a, 1)))
            }))
        }),
        export!("siputils", "uri_param_any", [Str], Int, |c, a| {
            yes(ruri_params(c)
                .is_some_and(|p| p.iter().any(|(n, _)| n.eq_ignore_ascii_case(s(a, 0)))))
        }),
        export!("siputils", "add_uri_param", [Str], Int, |c, a| {
            let p = s(a, 0);
            if p.is_empty() {
                return i(1);
            }
            let Some(cur) = c.ruri().map(str::to_string) else {
                return i(-1);
            };
            let Ok(u) = Uri::parse(&cur) else {
                return i(-1);
            };
            let params = format!("{};{p}", u.params.0);
            c.new_uri = Some(u.rebuild(UriEdit {
                params: Some(&params),
                ..Default::default()
            }));
            i(1)
        }),
        export!("siputils", "uri_param_rm", [Str], Int, |c, a| {
            let Some(cur) = c.ruri().map(str::to_string) else {
                return i(-1);
            };
            let Ok(u) = Uri::parse(&cur) else {
                return i(-1);
            };
            let mut params = String::new();
            for (n, v) in u.params.iter() {
                if n.eq_ignore_ascii_case(s(a, 0)) {
                    continue;
                }
                params.push(';');
                params.push_str(n);
                if let Some(v) = v {
                    params.push('=');
                    params.push_str(v);
                }
            }
            c.new_uri = Some(u.rebuild(UriEdit {
                params: Some(&params),
                ..Default::default()
            }));
            i(1)
        }),
        export!("siputils", "is_tel_number", [Str], Int, |_, a| {
            let t = s(a, 0);
            let digits = t.strip_prefix('+').unwrap_or(t);
            let ok = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (!t.starts_with('+') || !digits.starts_with('0'));
            i(if ok { 1 } else { -2 })
        }),
        export!("siputils", "is_numeric", [Str], Int, |_, a| {
            let t = s(a, 0);
            i(if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                1
            } else {
                -2
            })
        }),
        export!("siputils", "is_alphanum", [Str], Int, |_, a| {
            let t = s(a, 0);
            i(if t.is_empty() {
                -2
            } else if t.bytes().all(|b| b.is_ascii_alphanumeric()) {
                1
            } else {
                -3
            })
        }),
        export!("siputils", "options_reply", [], Int, options_reply),
        export!("siputils", "cmp_uri", [Str, Str], Int, |_, a| cmp(
            s(a, 0),
            s(a, 1),
            false
        )),
        export!("siputils", "cmp_aor", [Str, Str], Int, |_, a| cmp(
            s(a, 0),
            s(a, 1),
            true
        )),
        export!("siputils", "is_gruu", [], Int, |c, _| {
            match ruri_params(c).and_then(|p| p.into_iter().find(|(n, _)| n == "gr")) {
                Some((_, Some(_))) => i(1),
                Some((_, None)) => i(2),
                None => i(-1),
            }
        }),
    ]
}

fn ruri_params(c: &Ctx) -> Option<Vec<(String, Option<String>)>> {
    let u = Uri::parse(c.ruri()?).ok()?;
    Some(
        u.params
            .iter()
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect(),
    )
}

/// Request: no second Via. Reply: no Record-Route, or the top one is ours.
fn first_hop(c: &Ctx) -> bool {
    if c.msg.is_request() {
        return c.msg.vias().nth(1).is_none();
    }
    let Some(h) = c.msg.header(HdrName::RecordRoute) else {
        return true;
    };
    let Some(first) = split_list(&c.msg, h.value).into_iter().next() else {
        return true;
    };
    parse_name_addr(c.msg.text(first))
        .ok()
        .and_then(|na| {
            Uri::parse(na.uri)
                .ok()
                .map(|u| crate::proxy::myself::is_myself_host(&c.env, u.host_bare(), u.port, None))
        })
        .unwrap_or(false)
}

fn options_reply(c: &mut Ctx, _: &[Val]) -> R {
    let for_me = c.msg.method() == Some(Method::Options)
        && c.ruri()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| u.user.is_none_or(str::is_empty));
    if !for_me {
        return i(-1);
    }
    let cfg = &c.env.cfg;
    let lump = format!(
        "Accept: {}\r\nAccept-Encoding: {}\r\nAccept-Language: {}\r\nSupported: {}\r\n",
        cfg.modparam_str("siputils", "options_accept", "*/*"),
        cfg.modparam_str("siputils", "options_accept_encoding", ""),
        cfg.modparam_str("siputils", "options_accept_language", "en"),
        cfg.modparam_str("siputils", "options_support", ""),
    );
    c.reply_lumps.push(lump);
    yes(send_reply(c, 200, "OK").is_ok())
}

/// RFC 3261 §19.1.4 in its common subset: scheme, user and password case-sensitive,
/// host case-insensitive, ports equal; for an AoR only scheme/user/host.
fn cmp(a: &str, b: &str, aor: bool) -> R {
    let (Ok(x), Ok(y)) = (Uri::parse(a), Uri::parse(b)) else {
        return i(-1);
    };
    let eq = x.scheme == y.scheme
        && x.user == y.user
        && x.host.eq_ignore_ascii_case(y.host)
        && (aor || (x.password == y.password && x.port == y.port));
    if eq {
        i(1)
    } else {
        i(if a > b { -1 } else { -2 })
    }
}
