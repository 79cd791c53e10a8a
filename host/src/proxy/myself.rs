//! "Is this address me?": listen addresses and configured aliases.

use std::net::IpAddr;

use crate::kemi::Env;
use crate::net::Proto;
use crate::sip::hdr::strip_brackets;
use crate::sip::Uri;

/// `host` (no brackets) with an optional port and protocol; port `None` matches any port.
pub fn is_myself_host(env: &Env, host: &str, port: Option<u16>, proto: Option<Proto>) -> bool {
    let host = strip_brackets(host);
    let ip = host.parse::<IpAddr>().ok();
    let port_ok = |p: u16| port.is_none_or(|want| want == p);
    let proto_ok = |p: Proto| proto.is_none_or(|want| want == p);
    for l in env.net.listeners() {
        if !proto_ok(l.proto) || !port_ok(l.addr.port()) {
            continue;
        }
        if ip == Some(l.addr.ip()) {
            return true;
        }
        if let Some((adv, _)) = &l.advertise {
            if strip_brackets(adv).eq_ignore_ascii_case(host) {
                return true;
            }
        }
    }
    let any_port_ok = env.net.listeners().iter().any(|l| port_ok(l.addr.port()));
    any_port_ok
        && env
            .cfg
            .core
            .alias
            .iter()
            .any(|a| strip_brackets(a).eq_ignore_ascii_case(host))
}

/// Kamailio's `is_myself(value)`: a `sip:`/`sips:` URI or a bare host.
pub fn is_myself(env: &Env, value: &str) -> bool {
    let lower = value.get(..5).unwrap_or("").to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        match Uri::parse(value) {
            Ok(u) => is_myself_host(
                env,
                u.host_bare(),
                u.port,
                u.transport().and_then(Proto::parse),
            ),
            Err(_) => false,
        }
    } else {
        is_myself_host(env, value, None, None)
    }
}
