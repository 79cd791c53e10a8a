//! Via edits: `received`/`rport` on the top Via (RFC 3261 §18.2.1, RFC 3581) and the
//! branch of the Via a stateless proxy adds.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use crate::kemi::Ctx;
use crate::sip::hdr::{self, Via};
use crate::sip::Span;

/// Where `received`/`rport` go in the top Via, as Kamailio writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixupPlace {
    /// A locally generated reply: after the `branch` parameter (or at the end).
    Reply,
    /// A forwarded request: right after the sent-by.
    Forward,
}

/// The text that replaces the top Via value, when `received`/`rport` must be added:
/// `rport` when the client asked for it (RFC 3581) or `force_rport` is set; `received`
/// when the sent-by host is not the source address or the client asked for rport.
pub fn top_via_fixup(ctx: &Ctx, place: FixupPlace) -> Option<(Span, String)> {
    let (span, via) = ctx.msg.top_via()?;
    let src_ip = ctx.rcv.src.ip();
    let host_is_src = match via.host_bare().parse::<IpAddr>() {
        Ok(ip) => ip == src_ip,
        Err(_) => false,
    };
    let asked_rport = via.rport().is_some();
    let want_rport = asked_rport || ctx.force_rport;
    let want_received = asked_rport || via.received().is_some() || !host_is_src;
    if !want_rport && !want_received {
        return None;
    }
    Some((
        span,
        rebuild(
            ctx.msg.text(span),
            &via,
            want_rport.then_some(ctx.rcv.src.port()),
            want_received.then_some(src_ip),
            place,
        ),
    ))
}

fn rebuild(
    text: &str,
    via: &Via<'_>,
    rport: Option<u16>,
    received: Option<IpAddr>,
    place: FixupPlace,
) -> String {
    let ours = |out: &mut String| {
        if let Some(ip) = received {
            out.push_str(&format!(";received={ip}"));
        }
        if let Some(p) = rport {
            out.push_str(&format!(";rport={p}"));
        }
    };
    let mut out = String::with_capacity(text.len() + 40);
    out.push_str(&text[..via.sent_by_end]);
    let mut placed = false;
    if place == FixupPlace::Forward {
        ours(&mut out);
        placed = true;
    }
    for (name, value) in via.params.iter() {
        if name.eq_ignore_ascii_case("rport") || name.eq_ignore_ascii_case("received") {
            continue;
        }
        out.push(';');
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(v);
        }
        if !placed && name.eq_ignore_ascii_case("branch") {
            // Kamailio puts rport before received in replies.
            if let Some(p) = rport {
                out.push_str(&format!(";rport={p}"));
            }
            if let Some(ip) = received {
                out.push_str(&format!(";received={ip}"));
            }
            placed = true;
        }
    }
    if !placed {
        if let Some(p) = rport {
            out.push_str(&format!(";rport={p}"));
        }
        if let Some(ip) = received {
            out.push_str(&format!(";received={ip}"));
        }
    }
    out
}

/// Branch for a statelessly forwarded request: the same for retransmissions and for a
/// CANCEL of the same INVITE (hash of the incoming top branch or, for RFC 2543 peers, of
/// the transaction fields), followed by a loop-detection part (RFC 3261 §16.6 step 8).
pub fn stateless_branch(ctx: &Ctx, target: &str) -> String {
    let txn = txn_hash(ctx);
    format!("z9hG4bKsl{txn:016x}.{:08x}", loop_hash(ctx, target))
}

fn txn_hash(ctx: &Ctx) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match ctx.msg.top_via() {
        Some((_, v)) if v.branch().is_some_and(|b| b.starts_with("z9hG4bK")) => {
            v.branch().hash(&mut h);
            v.host.hash(&mut h);
            v.port.hash(&mut h);
        }
        _ => {
            ctx.msg.call_id().hash(&mut h);
            ctx.msg.cseq().map(|c| c.seq).hash(&mut h);
            from_tag(ctx).hash(&mut h);
            ctx.msg.ruri().hash(&mut h);
        }
    }
    h.finish()
}

/// Hash of the fields that change on a spiral but not on a loop (RFC 3261 §16.3 step 4).
fn loop_hash(ctx: &Ctx, target: &str) -> u32 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target.hash(&mut h);
    ctx.ruri().hash(&mut h);
    from_tag(ctx).hash(&mut h);
    ctx.msg.call_id().hash(&mut h);
    ctx.msg.cseq().map(|c| c.seq).hash(&mut h);
    (h.finish() & 0xffff_ffff) as u32
}

fn from_tag(ctx: &Ctx) -> Option<&str> {
    let v = ctx.msg.value(crate::sip::HdrName::From)?;
    hdr::parse_name_addr(v).ok().and_then(|n| n.tag())
}

/// True when one of the message's Vias is ours with the same loop part: the request has
/// been here before with the same routing state (a loop, not a spiral).
pub fn is_loop(ctx: &Ctx, branch: &str) -> bool {
    let Some(loop_part) = branch.rsplit_once('.').map(|(_, l)| l) else {
        return false;
    };
    ctx.msg.vias().any(|(_, v)| {
        v.branch().is_some_and(|b| {
            b.starts_with("z9hG4bKsl") && b.rsplit_once('.').is_some_and(|(_, l)| l == loop_part)
        }) && super::myself::is_myself_host(&ctx.env, v.host_bare(), v.port, None)
    })
}
