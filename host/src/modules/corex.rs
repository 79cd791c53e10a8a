//! `KSR.corex`: the common corex functions.

use crate::export;
use crate::kemi::{s, Ctx, Export, KemiError, Val};
use crate::net::Proto;
use crate::proxy::dset::parse_q;
use crate::sip::hdr::split_host_port;
use crate::sip::{HdrName, Uri};

type R = Result<Val, KemiError>;

fn yes(b: bool) -> R {
    Ok(Val::Int(if b { 1 } else { -1 }))
}

pub fn exports() -> Vec<Export> {
    vec![
        export!("corex", "has_ruri_user", [], Int, |c, _| {
            yes(c.msg.is_request()
                && c.ruri()
                    .and_then(|u| Uri::parse(u).ok())
                    .is_some_and(|u| u.user.is_some_and(|u| !u.is_empty())))
        }),
        export!("corex", "has_user_agent", [], Int, |c, _| {
            yes(c
                .msg
                .value(HdrName::UserAgent)
                .is_some_and(|v| !v.is_empty()))
        }),
        export!("corex", "append_branch", [], Int, |c, _| {
            match c.ruri().map(str::to_string) {
                Some(u) => {
                    let q = c.ruri_q.clone();
                    c.branches.push((u, q));
                    yes(true)
                }
                None => yes(false),
            }
        }),
        export!("corex", "append_branch_uri", [Str], Int, |c, a| branch(
            c,
            s(a, 0),
            None
        )),
        export!("corex", "append_branch_uri_q", [Str, Str], Int, |c, a| {
            match parse_q(s(a, 1)) {
                Some(q) => branch(c, s(a, 0), Some(q)),
                None => yes(false),
            }
        }),
        export!(
            "corex",
            "set_source_address",
            [Str],
            Int,
            set_source_address
        ),
        export!("corex", "via_add_srvid", [Int], Int, |_, _| Ok(Val::Int(1))),
        export!("corex", "is_faked_msg", [], Int, |_, _| yes(false)),
    ]
}

fn branch(c: &mut Ctx, uri: &str, q: Option<String>) -> R {
    if Uri::parse(uri).is_err() {
        return yes(false);
    }
    c.branches.push((uri.to_string(), q));
    yes(true)
}

/// `[proto:]host[:port]`: overwrites the source address seen by the script ($si/$sp).
fn set_source_address(c: &mut Ctx, a: &[Val]) -> R {
    let mut v = s(a, 0);
    if let Some((p, rest)) = v.split_once(':') {
        if let Some(proto) = Proto::parse(p) {
            let _ = proto;
            v = rest;
        }
    }
    let Some((host, port)) = split_host_port(v) else {
        return yes(false);
    };
    let Ok(ip) = crate::sip::hdr::strip_brackets(host).parse::<std::net::IpAddr>() else {
        return yes(false);
    };
    c.rcv.src = std::net::SocketAddr::new(ip, port.unwrap_or(5060));
    yes(true)
}
