//! `KSR.rr`: Record-Route and loose routing (RFC 3261 §16.6, §16.12), with Kamailio's
//! names, parameters, return codes and header formats.
//!
//! `record_route` only records what was asked: the address in a Record-Route is the
//! socket the request leaves from, known when it is forwarded, where
//! [`insert_record_route`] renders the header(s). `loose_route` edits the Route set with
//! lumps and sets `$du` / the Request-URI.

use std::fmt::Write;

use bytes::Bytes;
use regex::RegexBuilder;

use crate::export;
use crate::kemi::{s, Ctx, Env, Export, KemiError, Val};
use crate::net::{Listener, Proto};
use crate::proxy::myself::is_myself_host;
use crate::sip::hdr::{parse_name_addr, split_list};
use crate::sip::lump::Lumps;
use crate::sip::uri::Scheme;
use crate::sip::{FirstLine, HdrName, Span, Uri};

type R = Result<Val, KemiError>;

fn i(v: i64) -> R {
    Ok(Val::Int(v))
}

/// Kamailio's `RR_PARAM_BUF_SIZE`: params buffered before `record_route`.
const PARAM_BUF_MAX: usize = 512;
/// Kamailio's `E_CFG`.
const E_CFG: i64 = -6;
/// `loose_route`: the Route set was a preloaded one, all ours.
pub const RR_PRELOADED: i64 = -3;

/// What `record_route*` and `add_rr_param` asked for in this request.
#[derive(Clone, Debug, Default)]
pub struct RecordRoute {
    /// Kamailio's `FL_RR_ADDED`: a second `record_route*` in this request fails. It stays
    /// set after `remove_record_route`, as in Kamailio.
    pub added: bool,
    /// `add_rr_param` params given before `record_route` (at most 512 bytes).
    pub pending: String,
    /// The header(s) to insert when the request is forwarded.
    pub hdr: Option<RrHeader>,
}

/// A requested Record-Route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RrHeader {
    /// `record_route` / `record_route_params`: the address comes from the sockets.
    Auto {
        /// `sip` or `sips` (from the Request-URI).
        scheme: &'static str,
        /// The R-URI user (`add_username`), or empty.
        user: String,
        /// `;lr[=on][;ftag=TAG][params]`.
        suffix: String,
        /// Params from `add_rr_param`, buffered ones first; inserted before `>`.
        params: String,
        /// Lump sequence point of the call, so the header keeps its place among the
        /// script's other inserts at the start of the header block.
        mark: u32,
    },
    /// `record_route_preset*`: each header up to its `;lr[=on]`, ready.
    Preset {
        heads: Vec<String>,
        /// Params from `add_rr_param` after the call; inserted before `>`.
        params: String,
        mark: u32,
    },
}

pub fn exports() -> Vec<Export> {
    vec![
        export!("rr", "record_route", [], Int, |c, _| record_route(c, "")),
        export!(
            "rr",
            "record_route_params",
            [Str],
            Int,
            |c, a| record_route(c, s(a, 0))
        ),
        export!("rr", "record_route_preset", [Str, Str], Int, |c, a| {
            preset(c, s(a, 0), Some(s(a, 1)))
        }),
        export!("rr", "record_route_preset_one", [Str], Int, |c, a| preset(
            c,
            s(a, 0),
            None
        )),
        export!("rr", "add_rr_param", [Str], Int, |c, a| add_rr_param(
            c,
            s(a, 0)
        )),
        export!("rr", "remove_record_route", [], Int, |c, _| {
            // Kamailio 5.6 leaves the `;lr..>` tail of its lumps behind (a broken line on
            // the wire); here the whole Record-Route goes. FL_RR_ADDED stays set.
            if let Some(rr) = c.rr.as_mut() {
                rr.hdr = None;
            }
            i(1)
        }),
        export!("rr", "loose_route", [], Int, |c, _| i(loose_route(c))),
        export!("rr", "loose_route_preloaded", [], Int, |c, _| i(
            if loose_route(c) == RR_PRELOADED {
                1
            } else {
                -1
            }
        )),
        export!("rr", "check_route_param", [Str], Int, |c, a| i(
            check_route_param(c, s(a, 0))
        )),
        export!("rr", "is_direction", [Str], Int, |c, a| i(is_direction(
            c,
            s(a, 0)
        ))),
    ]
}

fn modparam(c: &Ctx, key: &str, default: i64) -> i64 {
    c.env.cfg.modparam_int("rr", key, default)
}

fn full_lr(c: &Ctx) -> bool {
    modparam(c, "enable_full_lr", 0) != 0
}

fn append_fromtag(c: &Ctx) -> bool {
    modparam(c, "append_fromtag", 1) != 0
}

/// 0: never double RR; 1: when the sockets differ; 2: always.
fn double_rr(c: &Ctx) -> i64 {
    modparam(c, "enable_double_rr", 1)
}

fn lr(c: &Ctx) -> &'static str {
    if full_lr(c) {
        ";lr=on"
    } else {
        ";lr"
    }
}

/// The tag parameter of a name-addr header; `Err` when the header is missing or bad.
fn tag_of(c: &Ctx, name: HdrName) -> Result<String, ()> {
    let v = c.msg.value(name).ok_or(())?;
    let na = parse_name_addr(v).map_err(|_| ())?;
    Ok(na.tag().unwrap_or("").to_string())
}

/// `sips` when the current Request-URI is a sips URI.
fn scheme_of(c: &Ctx) -> &'static str {
    match c.ruri().and_then(|u| Uri::parse(u).ok()) {
        Some(u) if u.scheme == Scheme::Sips => "sips",
        _ => "sip",
    }
}

/// The user of the received Request-URI, else of the rewritten one (`add_username`).
fn username(c: &Ctx) -> String {
    let user = |u: Option<&str>| {
        u.and_then(|u| Uri::parse(u).ok())
            .and_then(|u| u.user)
            .unwrap_or("")
            .to_string()
    };
    let first = user(c.msg.ruri());
    if first.is_empty() && c.new_uri.is_some() {
        return user(c.new_uri.as_deref());
    }
    first
}

fn record_route(c: &mut Ctx, params: &str) -> R {
    let rr = c.rr.get_or_insert_with(RecordRoute::default);
    if rr.added {
        tracing::error!(target: "script", "Double attempt to record-route");
        return i(-1);
    }
    let user = if modparam(c, "add_username", 0) != 0 {
        username(c)
    } else {
        String::new()
    };
    let tag = if append_fromtag(c) {
        let which = if upstream(c) {
            HdrName::To
        } else {
            HdrName::From
        };
        match tag_of(c, which) {
            Ok(t) => t,
            Err(()) => return i(-1),
        }
    } else {
        String::new()
    };
    let mut suffix = lr(c).to_string();
    if !tag.is_empty() {
        let _ = write!(suffix, ";ftag={tag}");
    }
    suffix.push_str(params);
    let scheme = scheme_of(c);
    let mark = c.lumps.mark();
    let rr = c.rr.get_or_insert_with(RecordRoute::default);
    rr.hdr = Some(RrHeader::Auto {
        scheme,
        user,
        suffix,
        params: std::mem::take(&mut rr.pending),
        mark,
    });
    rr.added = true;
    i(1)
}

/// `record_route_preset(addr1, addr2)` (`addr2` `Some("")` = none) and
/// `record_route_preset_one(addr1)` (`addr2` `None`).
fn preset(c: &mut Ctx, addr1: &str, addr2: Option<&str>) -> R {
    if c.rr.as_ref().is_some_and(|r| r.added) {
        tracing::error!(target: "script", "Double attempt to record-route");
        return i(-1);
    }
    let second = addr2.filter(|a| !a.is_empty());
    if second.is_some() && double_rr(c) == 0 {
        tracing::error!(
            target: "script",
            "Attempt to double record-route while 'enable_double_rr' param is disabled"
        );
        return i(-1);
    }
    let user = if modparam(c, "add_username", 0) != 0 {
        username(c)
    } else {
        String::new()
    };
    let tag = if append_fromtag(c) {
        match tag_of(c, HdrName::From) {
            Ok(t) => t,
            Err(()) => return i(-1),
        }
    } else {
        String::new()
    };
    let scheme = scheme_of(c);
    let lr = lr(c);
    let mark = c.lumps.mark();
    let rr = c.rr.get_or_insert_with(RecordRoute::default);
    let pending = std::mem::take(&mut rr.pending);
    let head = |addr: &str| {
        let mut l = format!("Record-Route: <{scheme}:");
        if !user.is_empty() {
            l.push_str(&user);
            l.push('@');
        }
        l.push_str(addr);
        if !tag.is_empty() {
            let _ = write!(l, ";ftag={tag}");
        }
        l.push_str(&pending);
        l.push_str(lr);
        l
    };
    let mut heads = vec![head(addr1)];
    if let Some(a2) = second {
        heads.push(head(a2));
    }
    rr.hdr = Some(RrHeader::Preset {
        heads,
        params: String::new(),
        mark,
    });
    rr.added = true;
    i(1)
}

/// Appends to the Record-Route already requested (both headers when double), or buffers
/// the param for the next `record_route`.
fn add_rr_param(c: &mut Ctx, param: &str) -> R {
    let double = double_rr(c) != 0;
    let rr = c.rr.get_or_insert_with(RecordRoute::default);
    match rr.hdr.as_mut() {
        Some(RrHeader::Auto { params, .. }) => {
            params.push_str(param);
            return i(1);
        }
        Some(RrHeader::Preset { heads, params, .. }) => {
            params.push_str(param);
            // As Kamailio: with double RR enabled it also looks for a second header and
            // fails when the preset made only one (the first one keeps the param).
            return i(if double && heads.len() < 2 { -1 } else { 1 });
        }
        None => {}
    }
    if rr.pending.len() + param.len() > PARAM_BUF_MAX {
        tracing::error!(target: "script", "maximum size of rr_param_buf exceeded");
        return i(-1);
    }
    rr.pending.push_str(param);
    i(1)
}

/// The listener the request in `ctx` arrived on.
pub fn incoming_listener(ctx: &Ctx) -> Listener {
    let ls = ctx.env.net.listeners();
    let (proto, local) = (ctx.rcv.proto, ctx.rcv.local);
    ls.iter()
        .find(|l| l.proto == proto && l.addr == local)
        .or_else(|| {
            ls.iter().find(|l| {
                l.proto == proto && l.addr.port() == local.port() && l.addr.ip().is_unspecified()
            })
        })
        .cloned()
        .unwrap_or(Listener {
            proto,
            addr: local,
            advertise: None,
        })
}

/// Different "realms" (Kamailio's `COND_IF_DIFF_REALMS`): protocol, address or port.
fn differ(a: &Listener, b: &Listener) -> bool {
    a.proto != b.proto || a.addr != b.addr || a.host_port() != b.host_port()
}

/// `ADDR[:PORT][;transport=T]` of a listener as a Record-Route shows it.
fn rr_address(l: &Listener, out: &mut String) {
    let (host, port) = l.host_port();
    out.push_str(&host);
    if port != 5060 {
        let _ = write!(out, ":{port}");
    }
    match l.proto {
        Proto::Udp => {}
        Proto::Tcp => out.push_str(";transport=tcp"),
        Proto::Tls => out.push_str(";transport=tls"),
        Proto::Ws | Proto::Wss => out.push_str(";transport=ws"),
    }
}

/// The Record-Route header line(s) for a request leaving from `out`: one for the
/// incoming socket, or two (outgoing first, both with `;r2=on`) when double RR applies.
pub fn render(ctx: &Ctx, rr: &RecordRoute, out: &Listener) -> String {
    match &rr.hdr {
        None => String::new(),
        Some(RrHeader::Preset { heads, params, .. }) => {
            heads.iter().map(|h| format!("{h}{params}>\r\n")).collect()
        }
        Some(RrHeader::Auto {
            scheme,
            user,
            suffix,
            params,
            ..
        }) => {
            let inc = incoming_listener(ctx);
            let r2 = match double_rr(ctx) {
                0 => false,
                1 => differ(&inc, out),
                _ => true,
            };
            let line = |l: &Listener, text: &mut String| {
                let _ = write!(text, "Record-Route: <{scheme}:");
                if !user.is_empty() {
                    text.push_str(user);
                    text.push('@');
                }
                rr_address(l, text);
                if r2 {
                    text.push_str(";r2=on");
                }
                text.push_str(suffix);
                text.push_str(params);
                text.push_str(">\r\n");
            };
            let mut text = String::with_capacity(160);
            if r2 {
                line(out, &mut text);
            }
            line(&inc, &mut text);
            text
        }
    }
}

/// Adds the rendered Record-Route to `lumps` at the start of the header block.
pub fn insert_record_route(ctx: &Ctx, rr: &RecordRoute, out: &Listener, lumps: &mut Lumps) {
    let mark = match &rr.hdr {
        None => return,
        Some(RrHeader::Auto { mark, .. } | RrHeader::Preset { mark, .. }) => *mark,
    };
    let text = render(ctx, rr, out);
    let at = super::hdr::start_of_headers(ctx);
    lumps.insert_at_mark(at, mark, Bytes::from(text));
}

// ---------------------------------------------------------------------------------------
// loose routing

/// The Route header fields of the request, each with its entries (span, URI).
struct RouteSet {
    hdrs: Vec<RouteHdr>,
}

struct RouteHdr {
    line: Span,
    value: Span,
    entries: Vec<(Span, String)>,
}

/// Position of a Route entry: (header, entry).
type Pos = (usize, usize);

impl RouteSet {
    /// `None` when a Route header does not parse.
    fn of(c: &Ctx) -> Option<RouteSet> {
        let mut hdrs = Vec::new();
        for h in c.msg.headers_named(HdrName::Route) {
            let mut entries = Vec::new();
            for sp in split_list(&c.msg, h.value) {
                let na = parse_name_addr(c.msg.text(sp)).ok()?;
                entries.push((sp, na.uri.to_string()));
            }
            hdrs.push(RouteHdr {
                line: h.line,
                value: h.value,
                entries,
            });
        }
        Some(RouteSet { hdrs })
    }

    fn uri(&self, p: Pos) -> &str {
        &self.hdrs[p.0].entries[p.1].1
    }

    fn is_last_in_hdr(&self, p: Pos) -> bool {
        p.1 + 1 >= self.hdrs[p.0].entries.len()
    }

    /// The entry after `p`; leaving a header past its last entry deletes that header.
    fn advance(&self, c: &mut Ctx, p: Pos) -> Option<Pos> {
        if !self.is_last_in_hdr(p) {
            return Some((p.0, p.1 + 1));
        }
        c.lumps.delete(self.hdrs[p.0].line);
        (p.0 + 1 < self.hdrs.len()).then_some((p.0 + 1, 0))
    }

    /// Deletes the entries of `p`'s header before `p` (they were ours).
    fn delete_before(&self, c: &mut Ctx, p: Pos) {
        if p.1 > 0 {
            let h = &self.hdrs[p.0];
            c.lumps.delete(Span {
                start: h.value.start,
                end: h.entries[p.1].0.start,
            });
        }
    }

    /// Deletes `p` and the entries before it in its header (the whole header when `p` is
    /// its last entry).
    fn delete_through(&self, c: &mut Ctx, p: Pos) {
        let h = &self.hdrs[p.0];
        if self.is_last_in_hdr(p) {
            c.lumps.delete(h.line);
        } else {
            c.lumps.delete(Span {
                start: h.value.start,
                end: h.entries[p.1 + 1].0.start,
            });
        }
    }
}

/// Kamailio's `is_myself` for a Route URI or the R-URI: host and port (the scheme's default
/// when absent) of one of our sockets or aliases, any protocol; a GRUU is never us.
fn uri_is_myself(env: &Env, u: &Uri) -> bool {
    if !u.is_sip() || u.param("gr").is_some() {
        return false;
    }
    let secure = u.scheme == Scheme::Sips
        || u.transport()
            .and_then(Proto::parse)
            .is_some_and(Proto::is_secure);
    let port = u.port.unwrap_or(if secure { 5061 } else { 5060 });
    is_myself_host(env, u.host_bare(), Some(port), None)
}

fn is_loose(u: &Uri) -> bool {
    u.param("lr").is_some()
}

/// A URI with a `maddr` parameter stands for `sip:MADDR[:PORT]`.
fn maddr_uri(uri: &str) -> String {
    if let Ok(u) = Uri::parse(uri) {
        if let Some(Some(m)) = u.param("maddr") {
            if !m.is_empty() {
                return match u.port {
                    Some(p) => format!("sip:{m}:{p}"),
                    None => format!("sip:{m}"),
                };
            }
        }
    }
    uri.to_string()
}

/// Kamailio's `loose_route` (mode 0): 1 routed by the Route set, -1 no Route / error,
/// -3 preloaded Route set that was all ours.
pub fn loose_route(c: &mut Ctx) -> i64 {
    c.route_params = None;
    let Some(rs) = RouteSet::of(c) else {
        return -1;
    };
    if rs.hdrs.is_empty() {
        return -1;
    }
    let Some(ruri) = c.ruri().map(str::to_string) else {
        return -1;
    };
    let Ok(ru) = Uri::parse(&ruri) else {
        return -1;
    };
    let Ok(to_tag) = tag_of(c, HdrName::To) else {
        return -1;
    };
    if to_tag.is_empty() {
        after_loose(c, &rs, true)
    } else if uri_is_myself(&c.env, &ru) {
        // Kamailio's params of the R-URI here lack the leading `;`.
        let params = ru
            .params
            .0
            .strip_prefix(';')
            .unwrap_or(ru.params.0)
            .to_string();
        after_strict(c, &rs, params)
    } else {
        after_loose(c, &rs, false)
    }
}

fn after_loose(c: &mut Ctx, rs: &RouteSet, preloaded: bool) -> i64 {
    let mut p: Pos = (0, 0);
    let Ok(top) = Uri::parse(rs.uri(p)) else {
        return -1;
    };
    if uri_is_myself(&c.env, &top) {
        c.route_params = Some(top.params.0.to_string());
        let r2 = double_rr(c) != 0 && top.param("r2").is_some();
        let done = if preloaded { RR_PRELOADED } else { 1 };
        match rs.advance(c, p) {
            Some(n) => p = n,
            None => return done,
        }
        if r2 {
            if Uri::parse(rs.uri(p)).is_err() {
                return -1;
            }
            match rs.advance(c, p) {
                Some(n) => p = n,
                None => return done,
            }
        }
    }
    let next = rs.uri(p).to_string();
    let Ok(nu) = Uri::parse(&next) else {
        return -1;
    };
    if is_loose(&nu) {
        c.dst_uri = Some(maddr_uri(&next));
        rs.delete_before(c, p);
    } else {
        // The next hop is a strict router: the R-URI goes to the end of the Route set
        // and that Route URI becomes the R-URI.
        let orig = match c.msg.first {
            FirstLine::Request { uri, .. } => c.msg.text(uri).to_string(),
            _ => return -1,
        };
        let at = super::hdr::end_of_headers(c);
        c.lumps
            .insert(at, Bytes::from(format!("Route: <{orig}>\r\n")));
        c.new_uri = Some(maddr_uri(&next));
        rs.delete_through(c, p);
    }
    1
}

/// The previous hop was a strict router: the R-URI is ours (`ruri_params` its params).
fn after_strict(c: &mut Ctx, rs: &RouteSet, ruri_params: String) -> i64 {
    let mut p: Pos = (0, 0);
    let Ok(top) = Uri::parse(rs.uri(p)) else {
        return -1;
    };
    if double_rr(c) != 0 && top.param("r2").is_some() && uri_is_myself(&c.env, &top) {
        match rs.advance(c, p) {
            Some(n) => p = n,
            None => return -1,
        }
    }
    let next = rs.uri(p).to_string();
    let Ok(nu) = Uri::parse(&next) else {
        return -1;
    };
    c.route_params = Some(ruri_params);
    if !is_loose(&nu) {
        c.new_uri = Some(maddr_uri(&next));
        rs.delete_through(c, p);
        return 1;
    }
    c.dst_uri = Some(maddr_uri(&next));
    rs.delete_before(c, p);
    // The remote target is the last Route URI: it becomes the R-URI and leaves the set.
    let lh = rs.hdrs.len() - 1;
    let h = &rs.hdrs[lh];
    let le = h.entries.len() - 1;
    c.new_uri = Some(maddr_uri(rs.uri((lh, le))));
    if le > 0 {
        c.lumps.delete(Span {
            start: h.entries[le - 1].0.end,
            end: h.entries[le].0.end,
        });
    } else {
        c.lumps.delete(h.line);
    }
    1
}

/// Tests the regex (case-insensitive) on the consumed Route params, leading `;`
/// included: 1 on a match, -1 otherwise or without params.
fn check_route_param(c: &Ctx, re: &str) -> i64 {
    let Some(params) = c.route_params.as_deref().filter(|p| !p.is_empty()) else {
        return -1;
    };
    match RegexBuilder::new(re)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
    {
        Ok(r) if r.is_match(params) => 1,
        Ok(_) => -1,
        Err(e) => {
            tracing::error!(target: "script", "bad re {re}: {e}");
            -1
        }
    }
}

/// The `ftag` of the consumed Route differs from the From-tag: the request goes upstream
/// (callee to caller). No ftag, no From-tag or no consumed Route count as downstream.
fn upstream(c: &Ctx) -> bool {
    let Some(params) = c.route_params.as_deref() else {
        return false;
    };
    let ftag = crate::sip::hdr::Params(params)
        .iter()
        .find(|(n, _)| *n == "ftag")
        .and_then(|(_, v)| v)
        .filter(|v| !v.is_empty());
    let Some(ftag) = ftag else {
        return false;
    };
    match tag_of(c, HdrName::From) {
        Ok(t) if !t.is_empty() => t != ftag,
        _ => false,
    }
}

fn is_direction(c: &Ctx, dir: &str) -> i64 {
    if !append_fromtag(c) {
        tracing::error!(
            target: "script",
            "usage of \"is_direction\" function requires parameter \"append_fromtag\" enabled!!"
        );
        return E_CFG;
    }
    let want_up = if dir.eq_ignore_ascii_case("downstream") {
        false
    } else if dir.eq_ignore_ascii_case("upstream") {
        true
    } else {
        tracing::error!(target: "script", "unknown direction '{dir}' - use 'downstream' or 'upstream'");
        return E_CFG;
    };
    if upstream(c) == want_up {
        1
    } else {
        -1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{self, listener};

    const INVITE: &str = "INVITE sip:bob@10.0.0.9:5070 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\
From: <sip:alice@127.0.0.1>;tag=abc\r\nTo: <sip:bob@10.0.0.9>\r\nCall-ID: c1\r\n\
CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    fn rr_modparams(p: &str) -> String {
        format!("[modparam.rr]\n{p}")
    }

    fn call(c: &mut Ctx, name: &str, args: &[&str]) -> i64 {
        let e = exports()
            .into_iter()
            .find(|e| e.name == name)
            .expect("export");
        let args: Vec<Val> = args.iter().map(|a| Val::from(*a)).collect();
        match (e.func)(c, &args) {
            Ok(Val::Int(v)) => v,
            other => panic!("{name}: {other:?}"),
        }
    }

    /// One UDP listener on 127.0.0.1:5060; the request came in on it.
    fn udp_ctx(params: &str, text: &str) -> Ctx {
        let (env, _) = testutil::env(&["udp:127.0.0.1:5060"], &["rr"], &rr_modparams(params));
        testutil::ctx(&env, text, Proto::Udp, "127.0.0.1:5060")
    }

    fn rendered(c: &Ctx, out: &str) -> String {
        render(c, c.rr.as_ref().expect("rr"), &listener(out))
    }

    /// The message as it would leave with the lumps so far.
    fn edited(c: &Ctx) -> String {
        String::from_utf8_lossy(&c.lumps.apply(c.msg.buf())).to_string()
    }

    #[test]
    fn single_rr_formats() {
        let mut c = udp_ctx("append_fromtag = 0", INVITE);
        assert_eq!(call(&mut c, "record_route", &[]), 1);
        assert_eq!(
            rendered(&c, "udp:127.0.0.1:5060"),
            "Record-Route: <sip:127.0.0.1;lr>\r\n"
        );
        // A second attempt fails (FL_RR_ADDED).
        assert_eq!(call(&mut c, "record_route", &[]), -1);

        let mut c = udp_ctx("append_fromtag = 0\nenable_full_lr = 1", INVITE);
        assert_eq!(call(&mut c, "record_route", &[]), 1);
        assert_eq!(
            rendered(&c, "udp:127.0.0.1:5060"),
            "Record-Route: <sip:127.0.0.1;lr=on>\r\n"
        );

        // Defaults: append_fromtag = 1.
        let mut c = udp_ctx("", INVITE);
        assert_eq!(call(&mut c, "record_route_params", &[";p=x"]), 1);
        assert_eq!(
            rendered(&c, "udp:127.0.0.1:5060"),
            "Record-Route: <sip:127.0.0.1;lr;ftag=abc;p=x>\r\n"
        );
    }

    #[test]
    fn port_transport_sips_and_username() {
        let (env, _) = testutil::env(
            &["tcp:127.0.0.1:5070"],
            &["rr"],
            &rr_modparams("add_username = 1\nappend_fromtag = 0"),
        );
        let text = INVITE.replace(
            "INVITE sip:bob@10.0.0.9:5070",
            "INVITE sips:bob@10.0.0.9:5070",
        );
        let mut c = testutil::ctx(&env, &text, Proto::Tcp, "127.0.0.1:5070");
        assert_eq!(call(&mut c, "record_route", &[]), 1);
        assert_eq!(
            rendered(&c, "tcp:127.0.0.1:5070"),
            "Record-Route: <sips:bob@127.0.0.1:5070;transport=tcp;lr>\r\n"
        );
    }

    #[test]
    fn double_rr_when_sockets_differ() {
        let (env, _) = testutil::env(
            &["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"],
            &["rr"],
            &rr_modparams("enable_full_lr = 1"),
        );
        let mut c = testutil::ctx(&env, INVITE, Proto::Udp, "127.0.0.1:5060");
        assert_eq!(call(&mut c, "add_rr_param", &[";a=1"]), 1);
        assert_eq!(call(&mut c, "record_route", &[]), 1);
        assert_eq!(call(&mut c, "add_rr_param", &[";b=2"]), 1);
        assert_eq!(
            rendered(&c, "tcp:127.0.0.1:5060"),
            "Record-Route: <sip:127.0.0.1;transport=tcp;r2=on;lr=on;ftag=abc;a=1;b=2>\r\n\
Record-Route: <sip:127.0.0.1;r2=on;lr=on;ftag=abc;a=1;b=2>\r\n"
        );
        // Same socket out as in: one header, no r2.
        assert_eq!(
            rendered(&c, "udp:127.0.0.1:5060"),
            "Record-Route: <sip:127.0.0.1;lr=on;ftag=abc;a=1;b=2>\r\n"
        );
    }

    #[test]
    fn double_rr_modes() {
        let (env, _) = testutil::env(
            &["udp:127.0.0.1:5060", "udp:127.0.0.2:5080"],
            &["rr"],
            &rr_modparams("append_fromtag = 0\nenable_double_rr = 0"),
        );
        let mut c = testutil::ctx(&env, INVITE, Proto::Udp, "127.0.0.1:5060");
        call(&mut c, "record_route", &[]);
        assert_eq!(
            rendered(&c, "udp:127.0.0.2:5080"),
            "Record-Route: <sip:127.0.0.1;lr>\r\n"
        );
        let (env, _) = testutil::env(
            &["udp:127.0.0.1:5060"],
            &["rr"],
            &rr_modparams("append_fromtag = 0\nenable_double_rr = 2"),
        );
        let mut c = testutil::ctx(&env, INVITE, Proto::Udp, "127.0.0.1:5060");
        call(&mut c, "record_route", &[]);
        assert_eq!(
            rendered(&c, "udp:127.0.0.1:5060"),
            "Record-Route: <sip:127.0.0.1;r2=on;lr>\r\nRecord-Route: <sip:127.0.0.1;r2=on;lr>\r\n"
        );
    }

    #[test]
    fn preset_remove_and_param_buffer() {
        let mut c = udp_ctx("", INVITE);
        assert_eq!(call(&mut c, "add_rr_param", &[";a=1"]), 1);
        assert_eq!(
            call(
                &mut c,
                "record_route_preset",
                &["10.1.1.1:5090", "10.2.2.2"]
            ),
            1
        );
        assert_eq!(call(&mut c, "add_rr_param", &[";b=1"]), 1);
        assert_eq!(
            rendered(&c, "udp:127.0.0.1:5060"),
            "Record-Route: <sip:10.1.1.1:5090;ftag=abc;a=1;lr;b=1>\r\n\
Record-Route: <sip:10.2.2.2;ftag=abc;a=1;lr;b=1>\r\n"
        );
        assert_eq!(call(&mut c, "record_route_preset_one", &["10.1.1.1"]), -1);
        assert_eq!(call(&mut c, "remove_record_route", &[]), 1);
        assert_eq!(rendered(&c, "udp:127.0.0.1:5060"), "");
        // The flag stays after remove_record_route.
        assert_eq!(call(&mut c, "record_route", &[]), -1);

        // One preset header with double RR enabled: the param goes in, the call says -1.
        let mut c = udp_ctx("", INVITE);
        assert_eq!(call(&mut c, "record_route_preset_one", &["10.1.1.1"]), 1);
        assert_eq!(call(&mut c, "add_rr_param", &[";b=1"]), -1);
        assert_eq!(
            rendered(&c, "udp:127.0.0.1:5060"),
            "Record-Route: <sip:10.1.1.1;ftag=abc;lr;b=1>\r\n"
        );

        let mut c = udp_ctx("enable_double_rr = 0\nenable_full_lr = 1", INVITE);
        assert_eq!(
            call(&mut c, "record_route_preset", &["10.1.1.1", "10.2.2.2"]),
            -1
        );
        assert_eq!(call(&mut c, "record_route_preset", &["10.1.1.1", ""]), 1);
        assert_eq!(call(&mut c, "add_rr_param", &[";b=1"]), 1);
        assert_eq!(
            rendered(&c, "udp:127.0.0.1:5060"),
            "Record-Route: <sip:10.1.1.1;ftag=abc;lr=on;b=1>\r\n"
        );

        let mut c = udp_ctx("", INVITE);
        let big = format!(";x={}", "a".repeat(600));
        assert_eq!(call(&mut c, "add_rr_param", &[&big]), -1);
    }

    #[test]
    fn forwarded_request_carries_rr_on_top() {
        let (env, rec) = testutil::env(
            &["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"],
            &["rr"],
            &rr_modparams("append_fromtag = 0"),
        );
        let mut c = testutil::ctx(&env, INVITE, Proto::Udp, "127.0.0.1:5060");
        assert_eq!(call(&mut c, "record_route", &[]), 1);
        c.lumps.insert(
            super::super::hdr::start_of_headers(&c),
            Bytes::from_static(b"X-After: 1\r\n"),
        );
        crate::proxy::forward::forward_request(&mut c, None).expect("forwarded");
        crate::proxy::forward::forward_request(&mut c, Some("sip:10.0.0.9:5070;transport=tcp"))
            .expect("forwarded");
        let sent = rec.texts();
        assert!(
            sent[0].starts_with(
                "INVITE sip:bob@10.0.0.9:5070 SIP/2.0\r\nRecord-Route: <sip:127.0.0.1;lr>\r\nX-After: 1\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch="
            ),
            "{}",
            sent[0]
        );
        assert!(
            sent[1].contains(
                "SIP/2.0\r\nRecord-Route: <sip:127.0.0.1;transport=tcp;r2=on;lr>\r\nRecord-Route: <sip:127.0.0.1;r2=on;lr>\r\nX-After: 1\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch="
            ),
            "{}",
            sent[1]
        );
    }

    const BYE: &str = "BYE sip:bob@10.0.0.9:5070 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2\r\nMax-Forwards: 70\r\n\
ROUTES\
From: <sip:alice@127.0.0.1>;tag=abc\r\nTo: <sip:bob@10.0.0.9>;tag=xyz\r\nCall-ID: c1\r\n\
CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";

    fn bye(routes: &str) -> String {
        BYE.replace("ROUTES", routes)
    }

    #[test]
    fn loose_route_no_route() {
        let mut c = udp_ctx("", &bye(""));
        assert_eq!(call(&mut c, "loose_route", &[]), -1);
        assert_eq!(call(&mut c, "check_route_param", &["ftag"]), -1);
    }

    #[test]
    fn loose_route_removes_ours_and_sets_du() {
        let mut c = udp_ctx(
            "",
            &bye("Route: <sip:127.0.0.1;lr;ftag=abc;did=7>, <sip:10.0.0.2;lr>\r\n"),
        );
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.dst_uri.as_deref(), Some("sip:10.0.0.2;lr"));
        assert_eq!(c.new_uri, None);
        let text = edited(&c);
        assert!(
            text.contains("Max-Forwards: 70\r\nRoute: <sip:10.0.0.2;lr>\r\nFrom:"),
            "{text}"
        );
        assert_eq!(c.route_params.as_deref(), Some(";lr;ftag=abc;did=7"));
        assert_eq!(call(&mut c, "check_route_param", &["did=7"]), 1);
        assert_eq!(call(&mut c, "check_route_param", &["^;LR;ftag"]), 1);
        assert_eq!(call(&mut c, "check_route_param", &["did=8"]), -1);
        assert_eq!(call(&mut c, "is_direction", &["downstream"]), 1);
        assert_eq!(call(&mut c, "is_direction", &["upstream"]), -1);
        assert_eq!(call(&mut c, "is_direction", &["sideways"]), -6);

        // Ours in its own header line; the next one in another.
        let mut c = udp_ctx(
            "",
            &bye(
                "Route: <sip:127.0.0.1:5060;lr>\r\nRoute: <sip:10.0.0.2;lr>,<sip:10.0.0.3;lr>\r\n",
            ),
        );
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.dst_uri.as_deref(), Some("sip:10.0.0.2;lr"));
        let text = edited(&c);
        assert!(
            text.contains(
                "Max-Forwards: 70\r\nRoute: <sip:10.0.0.2;lr>,<sip:10.0.0.3;lr>\r\nFrom:"
            ),
            "{text}"
        );
    }

    #[test]
    fn loose_route_only_ours_in_dialog_and_upstream() {
        // The callee sends the BYE: From-tag is the callee's, ftag (= To-tag) the caller's.
        let text = bye("Route: <sip:127.0.0.1;lr;ftag=CALLER>\r\n")
            .replace(
                "From: <sip:alice@127.0.0.1>;tag=abc",
                "From: <sip:bob@10.0.0.9>;tag=CALLEE",
            )
            .replace(
                "To: <sip:bob@10.0.0.9>;tag=xyz",
                "To: <sip:alice@127.0.0.1>;tag=CALLER",
            );
        let mut c = udp_ctx("", &text);
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.dst_uri, None);
        assert!(!edited(&c).contains("Route:"));
        assert_eq!(call(&mut c, "is_direction", &["upstream"]), 1);
        assert_eq!(call(&mut c, "is_direction", &["downstream"]), -1);
        // An in-dialog record_route upstream uses the To-tag.
        assert_eq!(call(&mut c, "record_route", &[]), 1);
        assert_eq!(
            rendered(&c, "udp:127.0.0.1:5060"),
            "Record-Route: <sip:127.0.0.1;lr;ftag=CALLER>\r\n"
        );

        let mut c = udp_ctx("append_fromtag = 0", &text);
        assert_eq!(call(&mut c, "is_direction", &["upstream"]), -6);
    }

    #[test]
    fn loose_route_preloaded() {
        let text = INVITE.replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nRoute: <sip:127.0.0.1;lr>\r\n",
        );
        let mut c = udp_ctx("", &text);
        assert_eq!(call(&mut c, "loose_route", &[]), -3);
        assert!(!edited(&c).contains("Route:"));
        let mut c = udp_ctx("", &text);
        assert_eq!(call(&mut c, "loose_route_preloaded", &[]), 1);
        // A preloaded Route to elsewhere: routed, $du set.
        let text = text.replace("sip:127.0.0.1;lr", "sip:10.0.0.2;lr");
        let mut c = udp_ctx("", &text);
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.dst_uri.as_deref(), Some("sip:10.0.0.2;lr"));
        assert_eq!(c.route_params, None);
        assert_eq!(call(&mut c, "check_route_param", &["lr"]), -1);
        let mut c = udp_ctx("", &text);
        assert_eq!(call(&mut c, "loose_route_preloaded", &[]), -1);
    }

    #[test]
    fn loose_route_strict_next_hop() {
        let mut c = udp_ctx("", &bye("Route: <sip:127.0.0.1;lr>, <sip:10.0.0.2>\r\n"));
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.new_uri.as_deref(), Some("sip:10.0.0.2"));
        assert_eq!(c.dst_uri, None);
        let text = edited(&c);
        assert!(
            text.contains("Max-Forwards: 70\r\nFrom:")
                && text.contains(
                    "CSeq: 2 BYE\r\nContent-Length: 0\r\nRoute: <sip:bob@10.0.0.9:5070>\r\n\r\n"
                ),
            "{text}"
        );
    }

    #[test]
    fn loose_route_after_strict_router() {
        // The previous hop put our Record-Route URI in the R-URI.
        let text = bye(
            "Route: <sip:10.0.0.2;lr>, <sip:10.0.0.3;lr>\r\nRoute: <sip:bob@10.0.0.9:5070>\r\n",
        )
        .replace("BYE sip:bob@10.0.0.9:5070", "BYE sip:127.0.0.1;lr;ftag=abc");
        let mut c = udp_ctx("", &text);
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.dst_uri.as_deref(), Some("sip:10.0.0.2;lr"));
        assert_eq!(c.new_uri.as_deref(), Some("sip:bob@10.0.0.9:5070"));
        // Here (R-URI params) without the leading `;`, as in Kamailio.
        assert_eq!(c.route_params.as_deref(), Some("lr;ftag=abc"));
        assert_eq!(call(&mut c, "check_route_param", &["^;lr"]), -1);
        assert_eq!(call(&mut c, "check_route_param", &["^lr;ftag=abc$"]), 1);
        let out = edited(&c);
        assert!(
            out.contains(
                "Max-Forwards: 70\r\nRoute: <sip:10.0.0.2;lr>, <sip:10.0.0.3;lr>\r\nFrom:"
            ),
            "{out}"
        );
        // Last Route in a list: only it goes.
        let text = bye("Route: <sip:10.0.0.2;lr>, <sip:bob@10.0.0.9:5070>\r\n")
            .replace("BYE sip:bob@10.0.0.9:5070", "BYE sip:127.0.0.1");
        let mut c = udp_ctx("", &text);
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.new_uri.as_deref(), Some("sip:bob@10.0.0.9:5070"));
        assert!(edited(&c).contains("\r\nRoute: <sip:10.0.0.2;lr>\r\nFrom:"));
        // Strict next hop: it becomes the R-URI and leaves the Route set.
        let text = bye("Route: <sip:10.0.0.2>, <sip:bob@10.0.0.9:5070>\r\n")
            .replace("BYE sip:bob@10.0.0.9:5070", "BYE sip:127.0.0.1");
        let mut c = udp_ctx("", &text);
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.new_uri.as_deref(), Some("sip:10.0.0.2"));
        assert_eq!(c.dst_uri, None);
        assert!(edited(&c).contains("\r\nRoute: <sip:bob@10.0.0.9:5070>\r\nFrom:"));
    }

    #[test]
    fn loose_route_double_rr() {
        let (env, _) = testutil::env(&["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"], &["rr"], "");
        let text = bye(
            "Route: <sip:127.0.0.1;transport=tcp;r2=on;lr>, <sip:127.0.0.1;r2=on;lr>, <sip:10.0.0.2;lr>\r\n",
        );
        let mut c = testutil::ctx(&env, &text, Proto::Tcp, "127.0.0.1:5060");
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.dst_uri.as_deref(), Some("sip:10.0.0.2;lr"));
        assert!(edited(&c).contains("\r\nRoute: <sip:10.0.0.2;lr>\r\nFrom:"));
        assert_eq!(c.route_params.as_deref(), Some(";transport=tcp;r2=on;lr"));
        // Both ours in two header lines, nothing after.
        let text = bye(
            "Route: <sip:127.0.0.1;transport=tcp;r2=on;lr>\r\nRoute: <sip:127.0.0.1;r2=on;lr>\r\n",
        );
        let mut c = testutil::ctx(&env, &text, Proto::Tcp, "127.0.0.1:5060");
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.dst_uri, None);
        assert!(!edited(&c).contains("Route:"));
    }

    #[test]
    fn maddr_and_gruu() {
        assert_eq!(
            maddr_uri("sip:x@h:5070;maddr=10.9.9.9;lr"),
            "sip:10.9.9.9:5070"
        );
        assert_eq!(maddr_uri("sip:h;lr"), "sip:h;lr");
        // A GRUU with our address is not ours: it is the next hop.
        let mut c = udp_ctx("", &bye("Route: <sip:127.0.0.1;gr=x;lr>\r\n"));
        assert_eq!(call(&mut c, "loose_route", &[]), 1);
        assert_eq!(c.dst_uri.as_deref(), Some("sip:127.0.0.1;gr=x;lr"));
    }
}
