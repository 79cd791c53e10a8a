//! Locally generated (stateless) replies: `sl_send_reply` and the core's own 4xx/5xx.

use std::fmt::Write;
use std::hash::{Hash, Hasher};

use bytes::Bytes;

use crate::kemi::Ctx;
use crate::net::{Dest, SendError};
use crate::sip::hdr::{parse_name_addr, split_list};
use crate::sip::{HdrName, Method};
use crate::stats::Stats;

use super::via::{top_via_fixup, FixupPlace};

/// Who generates a local reply. Their To-tags differ (as Kamailio's sl and tm tags do), so
/// sl can absorb the ACK to its own negative replies and leave tm's to the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replier {
    Sl,
    Tm,
}

/// The To-tag of a local reply: a per-process prefix, the replier's separator and a hash
/// of the top Via and Call-ID, so a retransmitted request gets the same tag (and its ACK,
/// which carries the same top Via, can be matched).
pub fn local_tag(ctx: &Ctx, by: Replier) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Some((_, v)) = ctx.msg.top_via() {
        v.host.hash(&mut h);
        v.port.hash(&mut h);
        v.branch().hash(&mut h);
    }
    ctx.msg.call_id().hash(&mut h);
    let sep = match by {
        Replier::Sl => '.',
        Replier::Tm => '-',
    };
    format!("{}{sep}{:08x}", ctx.env.sl_tag_prefix, h.finish() as u32)
}

/// An ACK to a stateless negative reply (its To-tag is the one sl gave): Kamailio's sl
/// absorbs it before the routing script runs.
pub fn is_ack_to_sl_reply(ctx: &Ctx) -> bool {
    if ctx.msg.method() != Some(Method::Ack) {
        return false;
    }
    let Some(tag) = ctx
        .msg
        .value(HdrName::To)
        .and_then(|v| parse_name_addr(v).ok()?.tag().map(str::to_string))
    else {
        return false;
    };
    tag.starts_with(&ctx.env.sl_tag_prefix) && tag == local_tag(ctx, Replier::Sl)
}

/// Builds a reply to the request in `ctx` (RFC 3261 §8.2.6): all Vias (the top one with
/// received/rport), From, To (with a tag from 180 on), Call-ID, CSeq, Record-Route for
/// 18x/2xx, the reply lumps, for 3xx the destination set as Contact (a redirect), Server
/// and Content-Length.
pub fn build_reply(ctx: &Ctx, code: u16, reason: &str, by: Replier) -> Vec<u8> {
    let msg = &ctx.msg;
    let mut out = String::with_capacity(512);
    let _ = write!(out, "SIP/2.0 {code} {reason}\r\n");
    let via_fix = top_via_fixup(ctx, FixupPlace::Reply);
    let mut first_via = true;
    for h in &msg.headers {
        match h.name {
            HdrName::Via => {
                out.push_str("Via: ");
                if first_via {
                    first_via = false;
                    match &via_fix {
                        Some((span, text)) => {
                            // Replace only the first value of this header line.
                            out.push_str(msg.text(crate::sip::Span {
                                start: h.value.start,
                                end: span.start,
                            }));
                            out.push_str(text);
                            out.push_str(msg.text(crate::sip::Span {
                                start: span.end,
                                end: h.value.end,
                            }));
                        }
                        None => out.push_str(msg.text(h.value)),
                    }
                } else {
                    out.push_str(msg.text(h.value));
                }
                out.push_str("\r\n");
            }
            HdrName::To => {
                out.push_str("To: ");
                out.push_str(msg.text(h.value));
                let has_tag = parse_name_addr(msg.text(h.value))
                    .ok()
                    .and_then(|n| n.tag())
                    .is_some();
                if code >= 180 && !has_tag {
                    out.push_str(";tag=");
                    out.push_str(&local_tag(ctx, by));
                }
                out.push_str("\r\n");
            }
            HdrName::From | HdrName::CallId | HdrName::CSeq => {
                out.push_str(msg.text(h.name_span));
                out.push_str(": ");
                out.push_str(msg.text(h.value));
                out.push_str("\r\n");
            }
            HdrName::RecordRoute if (180..300).contains(&code) => {
                out.push_str("Record-Route: ");
                out.push_str(msg.text(h.value));
                out.push_str("\r\n");
            }
            _ => {}
        }
    }
    for l in &ctx.reply_lumps {
        out.push_str(l);
        if !l.ends_with("\r\n") {
            out.push_str("\r\n");
        }
    }
    if (300..400).contains(&code) {
        if let Some(contact) = super::dset::redirect_contact(ctx) {
            out.push_str(&contact);
            out.push_str("\r\n");
        }
    }
    if !ctx.env.cfg.core.server_header.is_empty() {
        out.push_str("Server: ");
        out.push_str(&ctx.env.cfg.core.server_header);
        out.push_str("\r\n");
    }
    let mut bytes = out.into_bytes();
    match &ctx.reply_body {
        Some((ctype, body)) => {
            bytes.extend_from_slice(
                format!(
                    "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            bytes.extend_from_slice(body);
        }
        None => bytes.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
    bytes
}

/// Where a reply to the request in `ctx` goes: back the way the request came (RFC 3581:
/// the source address and port; the same connection for stream transports).
pub fn reply_dest(ctx: &Ctx) -> Dest {
    Dest {
        proto: ctx.rcv.proto,
        addr: ctx.rcv.src,
        conn: ctx.rcv.conn,
        no_connect: ctx.reply_no_connect,
        close: ctx.reply_close,
    }
}

/// Sends a stateless reply. ACKs are never answered.
pub fn send_reply(ctx: &mut Ctx, code: u16, reason: &str) -> Result<(), SendError> {
    if ctx.msg.method() == Some(Method::Ack) || !ctx.msg.is_request() {
        return Err(SendError::Io("no reply to an ACK or a reply".into()));
    }
    let data = build_reply(ctx, code, reason, Replier::Sl);
    let dest = reply_dest(ctx);
    let r = ctx.env.net.send(&dest, Bytes::from(data));
    match &r {
        Ok(()) => {
            Stats::inc(&ctx.env.stats.sent_replies);
            if code >= 200 {
                ctx.final_replied = true;
            }
        }
        Err(SendError::Denied(_)) => Stats::inc(&ctx.env.stats.egress_denied),
        Err(_) => Stats::inc(&ctx.env.stats.send_errors),
    }
    r
}

/// First value spans of a header, for callers that edit a list header.
pub fn first_value(ctx: &Ctx, name: HdrName) -> Option<crate::sip::Span> {
    let h = ctx.msg.header(name)?;
    split_list(&ctx.msg, h.value).into_iter().next()
}
