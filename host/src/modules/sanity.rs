//! `KSR.sanity`: request sanity checks with Kamailio's bit values and reply phrases.

use crate::export;
use crate::kemi::{n, Ctx, Export, KemiError, Val};
use crate::proxy::reply::send_reply;
use crate::sip::hdr::{self, parse_auth, parse_name_addr_strict as parse_name_addr, split_list};
use crate::sip::uri::Scheme;
use crate::sip::{FirstLine, HdrName, Uri};

type R = Result<Val, KemiError>;

pub const RURI_SIP_VERSION: i64 = 1;
pub const RURI_SCHEME: i64 = 2;
pub const REQUIRED_HEADERS: i64 = 4;
pub const CSEQ_METHOD: i64 = 32;
pub const CSEQ_VALUE: i64 = 64;
pub const CL: i64 = 128;
pub const EXPIRES_VALUE: i64 = 256;
pub const PROXY_REQUIRE: i64 = 512;
pub const PARSE_URIS: i64 = 1024;
pub const CHECK_DIGEST: i64 = 2048;
pub const CHECK_DUPTAGS: i64 = 4096;
pub const CHECK_AUTHORIZATION: i64 = 8192;
pub const VIA1_HEADER: i64 = 16384;
pub const RFC3261_COMPLIANCE: i64 = 32768;

pub fn exports() -> Vec<Export> {
    vec![
        export!("sanity", "sanity_check", [Int, Int], Int, |c, a| check(
            c,
            n(a, 0),
            n(a, 1)
        )),
        export!("sanity", "sanity_check_defaults", [], Int, |c, _| {
            let m = c.env.cfg.modparam_int("sanity", "default_checks", 3047);
            let u = c.env.cfg.modparam_int("sanity", "uri_checks", 7);
            check(c, m, u)
        }),
        export!("sanity", "sanity_reply", [], Int, |_, _| Ok(Val::Int(1))),
    ]
}

/// A failed check: `Some((code, reason))` is answered, `None` fails silently.
type Fail = Option<(u16, &'static str)>;

fn check(c: &mut Ctx, msg_checks: i64, uri_checks: i64) -> R {
    match run(c, msg_checks, uri_checks) {
        Ok(()) => Ok(Val::Int(1)),
        Err(fail) => {
            if let Some((code, reason)) = fail {
                let noreply = c.env.cfg.modparam_int("sanity", "noreply", 0) != 0;
                if c.msg.is_request() && !noreply {
                    let _ = send_reply(c, code, reason);
                }
            }
            Ok(Val::Int(-1))
        }
    }
}

fn run(c: &mut Ctx, m: i64, u: i64) -> Result<(), Fail> {
    let req = c.msg.is_request();
    let on = |bit: i64| m & bit != 0;
    if on(RURI_SIP_VERSION) && req {
        if let FirstLine::Request { version, .. } = c.msg.first {
            let v = c.msg.text(version);
            match v.split_once('/') {
                Some((_, "2.0")) => {}
                Some(_) => return Err(Some((505, "Version Not Supported (R-URI)"))),
                None => return Err(None),
            }
        }
    }
    if on(RURI_SCHEME) && req {
        // Kamailio's URI parser fails on schemes it does not know, so its sanity answers
        // 400 "Bad Request URI" (its 416 branch is unreachable in practice); RFC 4475
        // §3.3.2 suggests 416. kemibox matches Kamailio.
        match c.ruri().map(Uri::parse) {
            Some(Ok(uri))
                if matches!(uri.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel)
                    || uri.scheme_text.eq_ignore_ascii_case("urn") => {}
            _ => return Err(Some((400, "Bad Request URI"))),
        }
    }
    if on(REQUIRED_HEADERS) {
        for h in [HdrName::From, HdrName::To, HdrName::CallId, HdrName::CSeq] {
            if c.msg.headers_named(h).count() != 1 {
                return Err(None);
            }
        }
        if c.msg.top_via().is_none() {
            return Err(None);
        }
    }
    if on(VIA1_HEADER) {
        match c.msg.top_via() {
            Some((_, v)) if !v.host.is_empty() && v.branch().is_some_and(|b| !b.is_empty()) => {}
            _ => return Err(None),
        }
    }
    if on(RFC3261_COMPLIANCE) {
        let ok_branch = c
            .msg
            .top_via()
            .and_then(|(_, v)| v.branch())
            .is_some_and(|b| b.starts_with("z9hG4bK"));
        if !ok_branch {
            return Err(None);
        }
        for name in [HdrName::Route, HdrName::RecordRoute] {
            for h in c.msg.headers_named(name) {
                for s in split_list(&c.msg, h.value) {
                    let lr = parse_name_addr(c.msg.text(s))
                        .ok()
                        .and_then(|na| Uri::parse(na.uri).ok().map(|u| u.param("lr").is_some()));
                    if lr != Some(true) {
                        return Err(None);
                    }
                }
            }
        }
    }
    if on(CSEQ_METHOD) && req {
        let Some(v) = c.msg.value(HdrName::CSeq) else {
            return Err(None);
        };
        let method = crate::sip::trim_lws(v).split_ascii_whitespace().nth(1);
        match method {
            None => return Err(Some((400, "Missing method in CSeq header"))),
            Some(m) if m != c.msg.method_text() => {
                return Err(Some((400, "CSeq method does not match request method")))
            }
            _ => {}
        }
    }
    if on(CSEQ_VALUE) {
        let Some(v) = c.msg.value(HdrName::CSeq) else {
            return Err(None);
        };
        match v.split_ascii_whitespace().next() {
            None => return Err(Some((400, "Missing number in CSeq header"))),
            Some(num) => {
                let ok = num.len() <= 10
                    && num.bytes().all(|b| b.is_ascii_digit())
                    && num.parse::<u64>().is_ok_and(|n| n < 1 << 31);
                if !ok {
                    return Err(Some((400, "CSeq number is illegal")));
                }
            }
        }
    }
    if on(CL) {
        if let Some(h) = c.msg.header(HdrName::ContentLength) {
            match c.msg.declared_len {
                None => {
                    let _ = h;
                    return Err(Some((400, "Content-Length Failure")));
                }
                Some(n) if n as usize != c.msg.available_body && c.rcv.proto.is_stream() => {
                    return Err(Some((400, "Content-Length mis-match")))
                }
                Some(n) if n as usize > c.msg.available_body => {
                    return Err(Some((400, "Content-Length mis-match")))
                }
                _ => {}
            }
        }
    }
    if on(EXPIRES_VALUE) {
        if let Some(v) = c.msg.value(HdrName::Expires) {
            if v.trim().is_empty() {
                return Err(Some((400, "Missing number in Expires header")));
            }
            if hdr::parse_delta_seconds(v).is_err() {
                return Err(Some((400, "Expires value is illegal")));
            }
        }
    }
    if on(PROXY_REQUIRE) && req {
        let supported: Vec<String> = c
            .env
            .cfg
            .modparam_str("sanity", "proxy_require", "")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let mut unsupported = Vec::new();
        for h in c.msg.headers_named(HdrName::ProxyRequire) {
            for t in hdr::parse_tokens(c.msg.text(h.value)) {
                if !supported.iter().any(|s| s.eq_ignore_ascii_case(t)) {
                    unsupported.push(t.to_string());
                }
            }
        }
        if !unsupported.is_empty() {
            c.reply_lumps
                .push(format!("Unsupported: {}\r\n", unsupported.join(", ")));
            return Err(Some((420, "Bad Proxy Require Extension")));
        }
    }
    // What `Message::check` found on arrival need not be parsed again: a valid message's
    // Request-URI (unless the script rewrote it), From, To and Contacts parse strictly.
    let valid = c.msg.is_valid();
    if on(PARSE_URIS) {
        let ruri_checked = valid && c.new_uri.is_none();
        if u & 1 != 0 && req && !ruri_checked && c.ruri().map(Uri::parse).is_none_or(|r| r.is_err())
        {
            return Err(Some((400, "Bad Request URI")));
        }
        for (bit, name, reason) in [
            (2, HdrName::From, "Invalid From Header"),
            (4, HdrName::To, "Invalid To Header"),
        ] {
            if u & bit != 0 {
                let Some(v) = c.msg.value(name) else {
                    return Err(None);
                };
                if valid {
                    continue;
                }
                let ok = parse_name_addr(v)
                    .ok()
                    .is_some_and(|na| Uri::parse(na.uri).is_ok());
                if !ok {
                    return Err(Some((400, reason)));
                }
            }
        }
        if u & 8 != 0 && !valid {
            if let Some(h) = c.msg.header(HdrName::Contact) {
                let v = c.msg.text(h.value);
                if v.trim() != "*" {
                    let first = split_list(&c.msg, h.value).into_iter().next();
                    let na = first.and_then(|s| parse_name_addr(c.msg.text(s)).ok());
                    match na {
                        None => return Err(Some((400, "Bad Contact Header"))),
                        Some(na) if Uri::parse(na.uri).is_err() => {
                            return Err(Some((400, "Bad Contact URI")))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    for (bit, non_digest_fails) in [(CHECK_DIGEST, true), (CHECK_AUTHORIZATION, false)] {
        if !on(bit) {
            continue;
        }
        for name in [HdrName::Authorization, HdrName::ProxyAuthorization] {
            for h in c.msg.headers_named(name) {
                let Ok(a) = parse_auth(c.msg.text(h.value)) else {
                    return Err(Some((400, "Bad Auth Header")));
                };
                if !a.scheme.eq_ignore_ascii_case("digest") {
                    if non_digest_fails {
                        return Err(None);
                    }
                    continue;
                }
                if a.get("username").is_none_or(str::is_empty) {
                    return Err(Some((400, "Auth Empty User")));
                }
                if a.get("nonce").is_none_or(str::is_empty) {
                    return Err(Some((400, "Auth Empty Nonce")));
                }
                if a.get("response").is_none_or(str::is_empty) {
                    return Err(Some((400, "Auth Empty Response")));
                }
                if a.get("realm").is_none() || a.get("uri").is_none() {
                    return Err(Some((400, "Bad Auth Credentials")));
                }
            }
        }
    }
    if on(CHECK_DUPTAGS) {
        for (name, reason) in [
            (HdrName::From, "Many From Tag Params"),
            (HdrName::To, "Many To Tag Params"),
        ] {
            if let Some(v) = c.msg.value(name) {
                // A valid message's From and To parse strictly: the structure suffices.
                let na = if valid {
                    hdr::parse_name_addr(v)
                } else {
                    parse_name_addr(v)
                };
                let Ok(na) = na else {
                    return Err(None);
                };
                if na
                    .params
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("tag"))
                    .count()
                    > 1
                {
                    return Err(Some((400, reason)));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Proto;
    use crate::testutil;

    const REQ: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
        From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n\
        Contact: <sip:alice@127.0.0.1:5070>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
        Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    /// The basic script's `sanity_check(17895, 7)` plus the duplicate tag check, on a message as the pipeline hands it
    /// over (validated, so its URIs are not parsed again) and on the same message not
    /// validated (every check runs): the same answers.
    #[test]
    fn a_validated_message_gets_the_same_answers() {
        let (env, rec) = testutil::env(&["udp:127.0.0.1:5060"], &["sanity", "sl"], "");
        for (req, want) in [
            (REQ.to_string(), 1),
            (REQ.replace("tag=a", "tag=a;tag=b"), -1),
            (REQ.replace("CSeq: 1 INVITE", "CSeq: 1 BYE"), -1),
        ] {
            for validated in [false, true] {
                let mut c = testutil::ctx(&env, &req, Proto::Udp, "127.0.0.1:5060");
                if validated {
                    c.msg.check().expect("valid");
                    assert!(c.msg.is_valid());
                }
                let checks = 17895 | CHECK_DUPTAGS;
                assert_eq!(check(&mut c, checks, 7).ok(), Some(Val::Int(want)), "{req}");
            }
        }
        // A Request-URI rewritten by the script is parsed again even on a valid message.
        let mut c = testutil::ctx(&env, REQ, Proto::Udp, "127.0.0.1:5060");
        c.msg.check().expect("valid");
        c.new_uri = Some("sip:bob@[::1".into());
        assert_eq!(check(&mut c, 1024, 1).ok(), Some(Val::Int(-1)));
        assert!(rec
            .texts()
            .iter()
            .any(|t| t.starts_with("SIP/2.0 400 Bad Request URI")));
    }
}
