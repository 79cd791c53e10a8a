//! The core `KSR.*` functions (Kamailio's `_sr_kemi_core` table).

use crate::export;
use crate::kemi::{n, s, Ctx, Export, KemiError, Val};
use crate::net::Proto;
use crate::proxy::forward::{forward_request, target_of};
use crate::proxy::myself::{is_myself, is_myself_host};
use crate::sip::uri::UriEdit;
use crate::sip::{HdrName, Method, Uri};

type R = Result<Val, KemiError>;

fn b(v: bool) -> R {
    Ok(Val::Bool(v))
}

pub fn exports() -> Vec<Export> {
    let mut v = vec![
        export!("", "dbg", [Str], None, |c, a| log(c, "dbg", s(a, 0))),
        export!("", "info", [Str], None, |c, a| log(c, "info", s(a, 0))),
        export!("", "notice", [Str], None, |c, a| log(c, "notice", s(a, 0))),
        export!("", "warn", [Str], None, |c, a| log(c, "warn", s(a, 0))),
        export!("", "err", [Str], None, |c, a| log(c, "err", s(a, 0))),
        export!("", "crit", [Str], None, |c, a| log(c, "crit", s(a, 0))),
        export!("", "log", [Str, Str], None, |c, a| log(c, s(a, 0), s(a, 1))),
        export!("", "set_drop", [], None, |c, _| {
            c.drop = true;
            Ok(Val::None)
        }),
        export!("", "is_myself", [Str], Bool, |c, a| b(is_myself(
            &c.env,
            s(a, 0)
        ))),
        export!("", "is_myself_ruri", [], Bool, |c, _| {
            b(c.ruri().is_some_and(|u| is_myself(&c.env, u)))
        }),
        export!("", "is_myself_duri", [], Bool, |c, _| {
            b(c.dst_uri.as_deref().is_some_and(|u| is_myself(&c.env, u)))
        }),
        export!("", "is_myself_nhuri", [], Bool, |c, _| {
            b(c.nh_uri().is_some_and(|u| is_myself(&c.env, u)))
        }),
        export!("", "is_myself_furi", [], Bool, |c, _| {
            b(c.hdr_uri(HdrName::From)
                .is_some_and(|u| is_myself(&c.env, u)))
        }),
        export!("", "is_myself_turi", [], Bool, |c, _| {
            b(c.hdr_uri(HdrName::To).is_some_and(|u| is_myself(&c.env, u)))
        }),
        export!("", "is_myself_suri", [], Bool, |c, _| {
            b(is_myself_host(
                &c.env,
                &c.rcv.src.ip().to_string(),
                Some(c.rcv.src.port()),
                Some(c.rcv.proto),
            ))
        }),
        export!("", "is_myself_srcip", [], Bool, |c, _| {
            b(is_myself_host(
                &c.env,
                &c.rcv.src.ip().to_string(),
                None,
                None,
            ))
        }),
        export!("", "setflag", [Int], Bool, |c, a| flag(
            &mut c.flags,
            n(a, 0),
            Op::Set
        )),
        export!("", "resetflag", [Int], Bool, |c, a| flag(
            &mut c.flags,
            n(a, 0),
            Op::Reset
        )),
        export!("", "isflagset", [Int], Bool, |c, a| flag(
            &mut c.flags,
            n(a, 0),
            Op::Test
        )),
        export!("", "setbflag", [Int], Bool, |c, a| flag(
            &mut c.bflags,
            n(a, 0),
            Op::Set
        )),
        export!("", "resetbflag", [Int], Bool, |c, a| flag(
            &mut c.bflags,
            n(a, 0),
            Op::Reset
        )),
        export!("", "isbflagset", [Int], Bool, |c, a| flag(
            &mut c.bflags,
            n(a, 0),
            Op::Test
        )),
        export!("", "setbiflag", [Int, Int], Bool, |c, a| bi(c, a, Op::Set)),
        export!("", "resetbiflag", [Int, Int], Bool, |c, a| bi(
            c,
            a,
            Op::Reset
        )),
        export!("", "isbiflagset", [Int, Int], Bool, |c, a| bi(
            c,
            a,
            Op::Test
        )),
        export!("", "setsflag", [Int], Bool, |c, a| flag(
            &mut c.sflags,
            n(a, 0),
            Op::Set
        )),
        export!("", "resetsflag", [Int], Bool, |c, a| flag(
            &mut c.sflags,
            n(a, 0),
            Op::Reset
        )),
        export!("", "issflagset", [Int], Bool, |c, a| flag(
            &mut c.sflags,
            n(a, 0),
            Op::Test
        )),
        export!("", "seturi", [Str], Bool, |c, a| seturi(c, s(a, 0))),
        export!("", "setuser", [Str], Bool, |c, a| {
            rewrite_ruri(
                c,
                UriEdit {
                    user: Some(s(a, 0)),
                    ..Default::default()
                },
            )
        }),
        export!("", "sethost", [Str], Bool, |c, a| {
            rewrite_ruri(
                c,
                UriEdit {
                    host: Some(s(a, 0)),
                    ..Default::default()
                },
            )
        }),
        export!("", "setdsturi", [Str], Bool, |c, a| {
            let u = s(a, 0);
            if Uri::parse(u).is_ok() {
                c.dst_uri = Some(u.to_string());
            } else {
                tracing::error!(target: "script", "setdsturi: bad URI `{u}`");
            }
            b(true)
        }),
        export!("", "resetdsturi", [], Bool, |c, _| {
            c.dst_uri = None;
            b(true)
        }),
        export!("", "isdsturiset", [], Bool, |c, _| b(c
            .dst_uri
            .as_deref()
            .is_some_and(|d| !d.is_empty()))),
        export!("", "force_rport", [], Bool, |c, _| {
            c.force_rport = true;
            b(true)
        }),
        export!("", "add_local_rport", [], Bool, |_, _| b(true)),
        export!("", "set_forward_close", [], Bool, |c, _| {
            c.fwd_close = true;
            b(true)
        }),
        export!("", "set_forward_no_connect", [], Bool, |c, _| {
            c.fwd_no_connect = true;
            b(true)
        }),
        export!("", "set_reply_close", [], Bool, |c, _| {
            c.reply_close = true;
            b(true)
        }),
        export!("", "set_reply_no_connect", [], Bool, |c, _| {
            c.reply_no_connect = true;
            b(true)
        }),
        export!("", "is_method", [Str], Bool, |c, a| b(is_method(
            c,
            s(a, 0)
        ))),
        export!("", "is_method_in", [Str], Bool, |c, a| b(is_method_in(
            c,
            s(a, 0)
        ))),
        export!("", "is_UDP", [], Bool, |c, _| b(c.rcv.proto == Proto::Udp)),
        export!("", "is_TCP", [], Bool, |c, _| b(c.rcv.proto == Proto::Tcp)),
        export!("", "is_TLS", [], Bool, |c, _| b(c.rcv.proto == Proto::Tls)),
        export!("", "is_WS", [], Bool, |c, _| b(c.rcv.proto == Proto::Ws)),
        export!("", "is_WSS", [], Bool, |c, _| b(c.rcv.proto == Proto::Wss)),
        export!("", "is_SCTP", [], Bool, |_, _| b(false)),
        export!("", "is_TCPX", [], Bool, |c, _| b(c.rcv.proto.is_stream())),
        export!("", "is_WSX", [], Bool, |c, _| b(matches!(
            c.rcv.proto,
            Proto::Ws | Proto::Wss
        ))),
        export!("", "is_proto", [Str], Bool, |c, a| {
            let want = s(a, 0).to_ascii_lowercase();
            let letter = match c.rcv.proto {
                Proto::Tls => 'e',
                Proto::Tcp => 't',
                Proto::Udp => 'u',
                Proto::Ws => 'v',
                Proto::Wss => 'w',
            };
            b(want.contains(letter))
        }),
        export!("", "is_IPv4", [], Bool, |c, _| b(c.rcv.local.is_ipv4())),
        export!("", "is_IPv6", [], Bool, |c, _| b(c.rcv.local.is_ipv6())),
        export!("", "to_UDP", [], Bool, |c, _| b(
            to_proto(c) == Some(Proto::Udp)
        )),
        export!("", "to_TCP", [], Bool, |c, _| b(
            to_proto(c) == Some(Proto::Tcp)
        )),
        export!("", "to_TLS", [], Bool, |c, _| b(
            to_proto(c) == Some(Proto::Tls)
        )),
        export!("", "to_WS", [], Bool, |c, _| b(
            to_proto(c) == Some(Proto::Ws)
        )),
        export!("", "to_WSS", [], Bool, |c, _| b(
            to_proto(c) == Some(Proto::Wss)
        )),
        export!("", "to_WSX", [], Bool, |c, _| b(matches!(
            to_proto(c),
            Some(Proto::Ws | Proto::Wss)
        ))),
        export!("", "to_SCTP", [], Bool, |_, _| b(false)),
        export!("", "to_IPv4", [], Bool, |c, _| b(
            to_family(c) == Some(false)
        )),
        export!(
            "",
            "to_IPv6",
            [],
            Bool,
            |c, _| b(to_family(c) == Some(true))
        ),
        export!("", "is_src_port", [Int], Bool, |c, a| b(c.rcv.src.port()
            as i64
            == n(a, 0))),
        export!("", "is_dst_port", [Int], Bool, |c, a| b(c.rcv.local.port()
            as i64
            == n(a, 0))),
        export!("", "forward", [], Int, |c, _| fwd(c, None)),
        export!("", "forward_uri", [Str], Int, |c, a| {
            let u = s(a, 0).to_string();
            fwd(c, Some(&u))
        }),
    ];
    for (name, m) in [
        ("is_INVITE", Method::Invite),
        ("is_ACK", Method::Ack),
        ("is_BYE", Method::Bye),
        ("is_CANCEL", Method::Cancel),
        ("is_REGISTER", Method::Register),
        ("is_OPTIONS", Method::Options),
        ("is_SUBSCRIBE", Method::Subscribe),
        ("is_PUBLISH", Method::Publish),
        ("is_NOTIFY", Method::Notify),
        ("is_REFER", Method::Refer),
        ("is_INFO", Method::Info),
        ("is_UPDATE", Method::Update),
        ("is_PRACK", Method::Prack),
        ("is_MESSAGE", Method::Message),
    ] {
        v.push(Export {
            module: "",
            name,
            params: &[],
            ret: crate::kemi::RType::Bool,
            func: method_fn(m),
        });
    }
    v
}

/// One function per method, since exports are plain `fn` pointers.
fn method_fn(m: Method) -> crate::kemi::KemiFn {
    macro_rules! f {
        ($m:expr) => {
            |c: &mut Ctx, _: &[Val]| b(msg_method(c) == Some($m))
        };
    }
    match m {
        Method::Invite => f!(Method::Invite),
        Method::Ack => f!(Method::Ack),
        Method::Bye => f!(Method::Bye),
        Method::Cancel => f!(Method::Cancel),
        Method::Register => f!(Method::Register),
        Method::Options => f!(Method::Options),
        Method::Subscribe => f!(Method::Subscribe),
        Method::Publish => f!(Method::Publish),
        Method::Notify => f!(Method::Notify),
        Method::Refer => f!(Method::Refer),
        Method::Info => f!(Method::Info),
        Method::Update => f!(Method::Update),
        Method::Prack => f!(Method::Prack),
        Method::Message => f!(Method::Message),
        Method::Other => f!(Method::Other),
    }
}

/// The request's method, or the CSeq method of a reply.
pub fn msg_method(c: &Ctx) -> Option<Method> {
    match c.msg.method() {
        Some(m) => Some(m),
        None => c
            .msg
            .cseq()
            .map(|cs| Method::from_bytes(cs.method.as_bytes())),
    }
}

fn log(c: &mut Ctx, level: &str, text: &str) -> R {
    let text = text.trim_end_matches('\n');
    let ci = c.msg.call_id().unwrap_or("");
    match level.to_ascii_lowercase().as_str() {
        "dbg" | "debug" => tracing::debug!(target: "script", callid = ci, "{text}"),
        "info" | "notice" => tracing::info!(target: "script", callid = ci, "{text}"),
        "warn" => tracing::warn!(target: "script", callid = ci, "{text}"),
        _ => tracing::error!(target: "script", callid = ci, "{text}"),
    }
    Ok(Val::None)
}

enum Op {
    Set,
    Reset,
    Test,
}

fn flag(flags: &mut u32, f: i64, op: Op) -> R {
    if !(0..32).contains(&f) {
        return b(false);
    }
    let bit = 1u32 << f;
    b(match op {
        Op::Set => {
            *flags |= bit;
            true
        }
        Op::Reset => {
            *flags &= !bit;
            true
        }
        Op::Test => *flags & bit != 0,
    })
}

/// Branch flags by index; only branch 0 (the Request-URI branch) exists statelessly.
fn bi(c: &mut Ctx, a: &[Val], op: Op) -> R {
    if n(a, 1) != 0 {
        return b(false);
    }
    flag(&mut c.bflags, n(a, 0), op)
}

fn seturi(c: &mut Ctx, u: &str) -> R {
    if u.is_empty() || Uri::parse(u).is_err() || !c.msg.is_request() {
        return b(false);
    }
    c.new_uri = Some(u.to_string());
    b(true)
}

pub fn rewrite_ruri(c: &mut Ctx, edit: UriEdit<'_>) -> R {
    let Some(cur) = c.ruri().map(str::to_string) else {
        return b(false);
    };
    let Ok(u) = Uri::parse(&cur) else {
        return b(false);
    };
    if !u.is_sip() && u.scheme != crate::sip::uri::Scheme::Tel {
        return b(false);
    }
    let new = u.rebuild(edit);
    if Uri::parse(&new).is_err() {
        return b(false);
    }
    c.new_uri = Some(new);
    b(true)
}

fn is_method(c: &Ctx, want: &str) -> bool {
    let text = c.msg.method_text();
    if want.contains('|') {
        want.split('|').any(|m| m.trim().eq_ignore_ascii_case(text))
    } else {
        want.eq_ignore_ascii_case(text)
    }
}

fn is_method_in(c: &Ctx, letters: &str) -> bool {
    let Some(m) = msg_method(c) else {
        return false;
    };
    letters.chars().any(|l| {
        let lm = match l.to_ascii_uppercase() {
            'I' => Method::Invite,
            'A' => Method::Ack,
            'B' => Method::Bye,
            'C' => Method::Cancel,
            'M' => Method::Message,
            'R' => Method::Register,
            'E' => Method::Prack,
            'P' => Method::Publish,
            'S' => Method::Subscribe,
            'N' => Method::Notify,
            'O' => Method::Options,
            'F' => Method::Refer,
            'U' => Method::Update,
            _ => return false,
        };
        lm == m && m != Method::Other
    })
}

/// The `transport=` parameter of the next-hop URI (Kamailio: no parameter, no protocol).
fn to_proto(c: &Ctx) -> Option<Proto> {
    let u = c.nh_uri()?;
    Uri::parse(u).ok()?.transport().and_then(Proto::parse)
}

/// Some(true) for an IPv6 literal next hop, Some(false) for IPv4, None for a name.
fn to_family(c: &Ctx) -> Option<bool> {
    let u = c.nh_uri()?;
    let (_, _, host, _) = target_of(u).ok()?;
    host.parse::<std::net::IpAddr>().ok().map(|ip| ip.is_ipv6())
}

fn fwd(c: &mut Ctx, uri: Option<&str>) -> R {
    match forward_request(c, uri) {
        Ok(()) => Ok(Val::Int(1)),
        Err(e) => {
            tracing::warn!(
                callid = c.msg.call_id().unwrap_or(""),
                "forward failed: {e}"
            );
            c.last_error = Some(match e {
                crate::proxy::forward::FwdError::Loop => (482, "Loop Detected"),
                crate::proxy::forward::FwdError::Send(crate::net::SendError::Denied(_)) => {
                    (403, "Forbidden Destination")
                }
                crate::proxy::forward::FwdError::Send(crate::net::SendError::Resolve(_)) => {
                    (478, "Unresolvable destination")
                }
                crate::proxy::forward::FwdError::BadUri(_) => (416, "Unsupported URI Scheme"),
                _ => (500, "Forwarding Failed"),
            });
            Ok(Val::Int(-1))
        }
    }
}
