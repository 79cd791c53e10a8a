//! Stateless forwarding of requests (to `$du` or the Request-URI) and of replies (by
//! their Via), RFC 3261 §16.11.

use bytes::Bytes;
use thiserror::Error;

use crate::kemi::{Ctx, SendInfo};
use crate::net::{Dest, Listener, Proto, SendError};
use crate::sip::hdr::split_list;
use crate::sip::uri::Scheme;
use crate::sip::{HdrName, Message, Uri};
use crate::stats::Stats;

use super::via::{is_loop, stateless_branch, top_via_fixup, FixupPlace};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FwdError {
    #[error("no target URI")]
    NoTarget,
    #[error("bad target URI `{0}`")]
    BadUri(String),
    #[error("loop detected")]
    Loop,
    /// The onsend route dropped the send.
    #[error("dropped by the onsend route")]
    Dropped,
    #[error(transparent)]
    Send(#[from] SendError),
}

/// The transport, host and port a URI points at (RFC 3263 §4.1 for the protocol).
pub fn target_of(uri: &str) -> Result<(Option<Proto>, bool, String, Option<u16>), FwdError> {
    let u = Uri::parse(uri).map_err(|_| FwdError::BadUri(uri.to_string()))?;
    if !u.is_sip() {
        return Err(FwdError::BadUri(uri.to_string()));
    }
    let secure = u.scheme == Scheme::Sips;
    let proto = match u.transport() {
        Some(t) => Some(Proto::parse(t).ok_or_else(|| FwdError::BadUri(uri.to_string()))?),
        None if secure => Some(Proto::Tls),
        None => None,
    };
    let proto = match (proto, secure) {
        (Some(Proto::Tcp), true) => Some(Proto::Tls),
        (Some(Proto::Ws), true) => Some(Proto::Wss),
        (p, _) => p,
    };
    Ok((proto, secure, u.host_bare().to_string(), u.port))
}

/// Forwards the request in `ctx` statelessly to `uri`, or `$du`, or the Request-URI.
pub fn forward_request(ctx: &mut Ctx, uri: Option<&str>) -> Result<(), FwdError> {
    let target = match uri.filter(|u| !u.is_empty()) {
        Some(u) => u.to_string(),
        None => ctx.nh_uri().ok_or(FwdError::NoTarget)?.to_string(),
    };
    let (proto, secure, host, port) = target_of(&target)?;
    let (proto, addr) = ctx.env.net.resolve(&host, port, proto, secure)?;
    let listener = ctx
        .env
        .net
        .listener_for(proto, addr.is_ipv6())
        .ok_or(SendError::NoSocket(proto, "no listener for the protocol"))?
        .clone();
    let branch = stateless_branch(ctx, &target);
    if is_loop(ctx, &branch) {
        return Err(FwdError::Loop);
    }
    let data = Bytes::from(build_forwarded(ctx, &listener, &branch));
    let dest = Dest {
        proto,
        addr,
        conn: None,
        no_connect: ctx.fwd_no_connect,
        close: ctx.fwd_close,
    };
    let snd = SendInfo {
        proto,
        to: addr,
        from: listener.addr,
        buf: data.clone(),
    };
    if !crate::engine::onsend(ctx, snd) {
        // Kamailio's forward_request: E_ADM_PROHIBITED, no error reply of its own.
        tracing::info!(
            "request to {addr} ({}) dropped (onsend_route)",
            proto.lower()
        );
        return Err(FwdError::Dropped);
    }
    match ctx.env.net.send(&dest, data) {
        Ok(()) => {
            Stats::inc(&ctx.env.stats.fwd_requests);
            Ok(())
        }
        Err(e) => {
            if matches!(e, SendError::Denied(_)) {
                Stats::inc(&ctx.env.stats.egress_denied);
            } else {
                Stats::inc(&ctx.env.stats.send_errors);
            }
            Err(e.into())
        }
    }
}

/// The request as it leaves from listener `out`: script lumps, the Record-Route headers
/// `rr.record_route` asked for (first in the header block), received/rport on the old top
/// Via, our Via on top, the rewritten Request-URI.
pub fn build_forwarded(ctx: &Ctx, out: &Listener, branch: &str) -> Vec<u8> {
    let proto = out.proto;
    let host_port = out.host_port();
    let mut lumps = ctx.lumps.clone();
    if let Some(rr) = &ctx.rr {
        crate::modules::rr::insert_record_route(ctx, rr, out, &mut lumps);
    }
    if let Some((span, text)) = top_via_fixup(ctx, FixupPlace::Forward) {
        lumps.replace(span, Bytes::from(text));
    }
    let at = ctx
        .msg
        .header(HdrName::Via)
        .map(|h| h.line.start as usize)
        .or_else(|| ctx.msg.headers.first().map(|h| h.line.start as usize))
        .unwrap_or(ctx.msg.headers_end);
    let via = format!(
        "Via: SIP/2.0/{} {}:{};branch={}\r\n",
        proto.via_name(),
        host_port.0,
        host_port.1,
        branch
    );
    lumps.insert(at, Bytes::from(via));
    fix_content_length(ctx, &mut lumps);
    if let (Some(new), crate::sip::FirstLine::Request { uri, .. }) = (&ctx.new_uri, &ctx.msg.first)
    {
        lumps.replace(*uri, Bytes::from(new.clone()));
    }
    lumps.apply(ctx.msg.buf())
}

/// When the script changed the body, the Content-Length follows it.
pub fn fix_content_length(ctx: &Ctx, lumps: &mut crate::sip::lump::Lumps) {
    let delta = lumps.delta_from(ctx.msg.body.start as usize);
    if delta == 0 {
        return;
    }
    let len = (ctx.msg.body.len() as isize + delta).max(0);
    match ctx.msg.header(HdrName::ContentLength) {
        Some(h) => lumps.replace(h.value, Bytes::from(len.to_string())),
        None => lumps.insert(
            crate::modules::hdr::end_of_headers(ctx),
            Bytes::from(format!("Content-Length: {len}\r\n")),
        ),
    }
}

/// Why a reply cannot be forwarded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReplyFwdError {
    #[error("top Via is not ours")]
    NotOurs,
    #[error("no second Via")]
    NoNextVia,
    /// The onsend route dropped the send.
    #[error("dropped by the onsend route")]
    Dropped,
    #[error(transparent)]
    Send(#[from] SendError),
}

/// Removes our top Via and sends the reply to the next one (RFC 3261 §18.2.2, RFC 3581).
pub fn forward_reply(ctx: &mut Ctx) -> Result<(), ReplyFwdError> {
    let msg: &Message = &ctx.msg;
    let (_, top) = msg.top_via().ok_or(ReplyFwdError::NoNextVia)?;
    if !super::myself::is_myself_host(&ctx.env, top.host_bare(), top.port, None) {
        return Err(ReplyFwdError::NotOurs);
    }
    let first_hdr = msg.header(HdrName::Via).ok_or(ReplyFwdError::NoNextVia)?;
    let values = split_list(msg, first_hdr.value);
    let mut lumps = ctx.lumps.clone();
    if values.len() > 1 {
        lumps.delete(crate::sip::Span {
            start: values[0].start,
            end: values[1].start,
        });
    } else {
        lumps.delete(first_hdr.line);
    }
    let (_, next) = msg.vias().nth(1).ok_or(ReplyFwdError::NoNextVia)?;
    let proto = Proto::parse(next.transport).unwrap_or(Proto::Udp);
    let host = next.received().unwrap_or(next.host_bare());
    let host = crate::sip::hdr::strip_brackets(host);
    let port = match next.rport() {
        Some(Some(p)) => p,
        _ => next.port.unwrap_or(proto.default_port()),
    };
    let ip = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip,
        Err(_) => crate::sip::hdr::parse_ipv6_lenient(host)
            .map(std::net::IpAddr::V6)
            .map_or_else(
                || {
                    ctx.env
                        .net
                        .resolve(host, Some(port), Some(proto), false)
                        .map(|(_, a)| a.ip())
                },
                Ok,
            )?,
    };
    let dest = Dest {
        proto,
        addr: std::net::SocketAddr::new(ip, port),
        conn: None,
        no_connect: false,
        close: false,
    };
    fix_content_length(ctx, &mut lumps);
    let data = Bytes::from(lumps.apply(msg.buf()));
    // Kamailio runs the onsend route for forwarded replies too (with a KEMI engine,
    // whatever `onsend_route_reply` says: core/onsend.h onsend_route_enabled).
    if let Some(from) = ctx.env.net.listener_for(proto, dest.addr.is_ipv6()) {
        let snd = SendInfo {
            proto,
            to: dest.addr,
            from: from.addr,
            buf: data.clone(),
        };
        if !crate::engine::onsend(ctx, snd) {
            tracing::info!("reply to {} dropped (onsend_route)", dest.addr);
            return Err(ReplyFwdError::Dropped);
        }
    }
    match ctx.env.net.send(&dest, data) {
        Ok(()) => {
            Stats::inc(&ctx.env.stats.fwd_replies);
            Ok(())
        }
        Err(e) => {
            if matches!(e, SendError::Denied(_)) {
                Stats::inc(&ctx.env.stats.egress_denied);
            } else {
                Stats::inc(&ctx.env.stats.send_errors);
            }
            Err(e.into())
        }
    }
}
