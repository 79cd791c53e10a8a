//! `KSR.nathelper`: NAT detection and traversal helpers (Kamailio's nathelper):
//! nat_uac_test, fix_nated_contact, fix_nated_register, set_contact_alias,
//! handle_ruri_alias, add_rcv_param, is_rfc1918.

use std::net::IpAddr;

use bytes::Bytes;

use crate::export;
use crate::kemi::{n, s, Ctx, Export, KemiError, Val};
use crate::modules::kx::src_uri;
use crate::net::Proto;
use crate::sip::hdr::{first_in_list, parse_name_addr, strip_brackets};
use crate::sip::{HdrName, Span, Uri};

type R = Result<Val, KemiError>;

fn i(v: i64) -> R {
    Ok(Val::Int(v))
}

/// RFC 1918 private, RFC 6598 shared (CGN), link-local and unique-local addresses.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) || v4.is_link_local()
        }
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

fn host_ip(host: &str) -> Option<IpAddr> {
    strip_brackets(host).parse().ok()
}

/// The span and parsed view of the first Contact value.
fn first_contact(c: &Ctx) -> Option<(Span, String)> {
    let h = c.msg.header(HdrName::Contact)?;
    let sp = first_in_list(&c.msg, h.value);
    let text = c.msg.text(sp);
    if text.trim() == "*" {
        return None;
    }
    let na = parse_name_addr(text).ok()?;
    // The URI's span inside the buffer.
    let off = text.find(na.uri)?;
    Some((
        Span::new(
            sp.start as usize + off,
            sp.start as usize + off + na.uri.len(),
        ),
        na.uri.to_string(),
    ))
}

/// Kamailio's nat_uac_test flags: 1 private Contact, 2 Via sent-by is not the source IP,
/// 4 private top Via, 16 source port differs from the Via port, 32 Contact address is
/// not the source, 64 private Contact (RFC 6598 included).
fn nat_uac_test(c: &Ctx, flags: i64) -> bool {
    let src = c.rcv.src;
    let contact_ip =
        first_contact(c).and_then(|(_, u)| Uri::parse(&u).ok().and_then(|u| host_ip(u.host)));
    let contact_port =
        first_contact(c).and_then(|(_, u)| Uri::parse(&u).ok().map(|u| u.port.unwrap_or(5060)));
    let via = c.msg.top_via().map(|(_, v)| v);
    (flags & 1 != 0 && contact_ip.is_some_and(is_private))
        || (flags & 2 != 0 && via.is_some_and(|v| host_ip(v.host) != Some(src.ip())))
        || (flags & 4 != 0 && via.is_some_and(|v| host_ip(v.host).is_some_and(is_private)))
        || (flags & 16 != 0
            && via.is_some_and(|v| v.port.unwrap_or(c.rcv.proto.default_port()) != src.port()))
        || (flags & 32 != 0 && (contact_ip != Some(src.ip()) || contact_port != Some(src.port())))
        || (flags & 64 != 0 && contact_ip.is_some_and(is_private))
}

fn host_port_text(c: &Ctx) -> String {
    match c.rcv.src.ip() {
        IpAddr::V6(v6) => format!("[{v6}]:{}", c.rcv.src.port()),
        v4 => format!("{v4}:{}", c.rcv.src.port()),
    }
}

pub fn exports() -> Vec<Export> {
    vec![
        export!("nathelper", "nat_uac_test", [Int], Int, |c, a| i(
            if nat_uac_test(c, n(a, 0)) { 1 } else { -1 }
        )),
        export!("nathelper", "fix_nated_contact", [], Int, |c, _| {
            let Some((span, uri)) = first_contact(c) else {
                return i(-1);
            };
            let Ok(u) = Uri::parse(&uri) else {
                return i(-1);
            };
            let hp = host_port_text(c);
            let new = format!(
                "{}:{}{}{}",
                u.scheme_text,
                u.user.map(|x| format!("{x}@")).unwrap_or_default(),
                hp,
                u.params.0
            );
            c.lumps.replace(span, Bytes::from(new));
            i(1)
        }),
        export!("nathelper", "fix_nated_register", [], Int, |c, _| {
            // The registrar stores it as the contact's `received` (Kamailio: received_avp).
            c.received = Some(src_uri(c));
            i(1)
        }),
        export!("nathelper", "add_rcv_param", [Int], Int, |c, a| {
            let Some((span, _)) = first_contact(c) else {
                return i(-1);
            };
            let rcv = src_uri(c);
            if n(a, 0) != 0 {
                // Into the Contact URI.
                c.lumps
                    .insert(span.end as usize, Bytes::from(format!(";received={rcv}")));
            } else {
                let h = c
                    .msg
                    .header(HdrName::Contact)
                    .map(|h| first_in_list(&c.msg, h.value));
                let Some(v) = h else { return i(-1) };
                c.lumps
                    .insert(v.end as usize, Bytes::from(format!(";received=\"{rcv}\"")));
            }
            i(1)
        }),
        export!("nathelper", "set_contact_alias", [], Int, |c, _| {
            let Some((span, uri)) = first_contact(c) else {
                return i(-1);
            };
            let Ok(u) = Uri::parse(&uri) else {
                return i(-1);
            };
            let src = c.rcv.src;
            if host_ip(u.host) == Some(src.ip())
                && u.port.unwrap_or(5060) == src.port()
                && c.rcv.proto == Proto::Udp
            {
                return i(1); // nothing to record
            }
            let proto = match c.rcv.proto {
                Proto::Udp => 1,
                Proto::Tcp => 2,
                Proto::Tls => 3,
                Proto::Ws => 5,
                Proto::Wss => 6,
            };
            let ip = match src.ip() {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
            c.lumps.insert(
                span.end as usize,
                Bytes::from(format!(";alias={ip}~{}~{proto}", src.port())),
            );
            i(1)
        }),
        export!("nathelper", "handle_ruri_alias", [], Int, |c, _| {
            let Some(ruri) = c.ruri().map(str::to_string) else {
                return i(-1);
            };
            let Ok(u) = Uri::parse(&ruri) else {
                return i(-1);
            };
            let Some(Some(alias)) = u.param("alias") else {
                return i(2);
            };
            let parts: Vec<&str> = alias.split('~').collect();
            let [ip, port, proto] = parts.as_slice() else {
                return i(-1);
            };
            let transport = match *proto {
                "2" => ";transport=tcp",
                "3" => ";transport=tls",
                "5" => ";transport=ws",
                "6" => ";transport=wss",
                _ => "",
            };
            c.dst_uri = Some(format!("sip:{ip}:{port}{transport}"));
            let params: String = u
                .params
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("alias"))
                .map(|(k, v)| match v {
                    Some(v) => format!(";{k}={v}"),
                    None => format!(";{k}"),
                })
                .collect();
            c.new_uri = Some(u.rebuild(crate::sip::uri::UriEdit {
                params: Some(&params),
                ..Default::default()
            }));
            i(1)
        }),
        export!("nathelper", "is_rfc1918", [Str], Int, |_, a| {
            i(match strip_brackets(s(a, 0)).parse::<IpAddr>() {
                Ok(ip) if is_private(ip) => 1,
                _ => -1,
            })
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for p in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "fd00::1",
        ] {
            assert!(is_private(p.parse().unwrap()), "{p}");
        }
        for p in ["8.8.8.8", "100.128.0.1", "2001:db8::1", "127.0.0.1"] {
            assert!(!is_private(p.parse().unwrap()), "{p}");
        }
    }
}
