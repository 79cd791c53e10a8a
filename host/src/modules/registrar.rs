//! `KSR.registrar`: save, lookup, registered, unregister (RFC 3261 §10.3), on usrloc.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::export;
use crate::kemi::{n, s, Ctx, Export, KemiError, Val};
use crate::modules::usrloc::{now, Contact, Usrloc};
use crate::proxy::dset::q_text;
use crate::proxy::reply::send_reply;
use crate::sip::hdr::{self, parse_name_addr, split_list};
use crate::sip::{HdrName, Method, Uri};

type R = Result<Val, KemiError>;

/// `save` flags (Kamailio's registrar).
pub const SAVE_MEMORY_ONLY: i64 = 0x01;
pub const SAVE_NO_REPLY: i64 = 0x02;
pub const SAVE_SINGLE_CONTACT: i64 = 0x04;

pub fn exports() -> Vec<Export> {
    vec![
        export!("registrar", "save", [Str, Int], Int, |c, a| save(
            c,
            s(a, 0),
            n(a, 1),
            None
        )),
        export!("registrar", "save_uri", [Str, Int, Str], Int, |c, a| {
            let uri = s(a, 2).to_string();
            save(c, s(a, 0), n(a, 1), Some(uri))
        }),
        export!("registrar", "lookup", [Str], Int, |c, a| lookup(
            c,
            s(a, 0),
            None
        )),
        export!("registrar", "lookup_uri", [Str, Str], Int, |c, a| {
            let uri = s(a, 1).to_string();
            lookup(c, s(a, 0), Some(uri))
        }),
        export!("registrar", "registered", [Str], Int, |c, a| {
            let Some(aor) = ruri_aor(c, None) else {
                return Ok(Val::Int(-1));
            };
            Ok(Val::Int(if usrloc(c).get(s(a, 0), &aor).is_empty() {
                -1
            } else {
                1
            }))
        }),
        export!("registrar", "unregister", [Str, Str], Int, |c, a| {
            let uri = s(a, 1).to_string();
            let Some(aor) = aor_of(c, &uri) else {
                return Ok(Val::Int(-1));
            };
            match usrloc(c).set(s(a, 0), &aor, Vec::new(), false) {
                Ok(()) => Ok(Val::Int(1)),
                Err(e) => {
                    tracing::error!("unregister: {e}");
                    Ok(Val::Int(-1))
                }
            }
        }),
    ]
}

fn usrloc(c: &Ctx) -> &Usrloc {
    &c.env.usrloc
}

/// The AoR of a URI: `user` or, with `use_domain`, `user@host`.
fn aor_of(c: &Ctx, uri: &str) -> Option<String> {
    let u = Uri::parse(uri).ok()?;
    // case_sensitive = 0 (Kamailio's default): the whole AoR is lower-cased.
    let user = u.user.unwrap_or("").to_lowercase();
    if usrloc(c).use_domain {
        Some(format!("{user}@{}", u.host_bare().to_ascii_lowercase()))
    } else {
        Some(user)
    }
}

fn ruri_aor(c: &Ctx, uri: Option<String>) -> Option<String> {
    let u = uri.or_else(|| c.ruri().map(str::to_string))?;
    aor_of(c, &u)
}

/// Kamailio's method bits (parser/msg_parser.h), for method filtering.
fn method_bit(m: &str) -> u32 {
    match Method::from_bytes(m.trim().as_bytes()) {
        Method::Invite => 1,
        Method::Cancel => 2,
        Method::Ack => 4,
        Method::Bye => 8,
        Method::Info => 16,
        Method::Register => 32,
        Method::Subscribe => 64,
        Method::Notify => 128,
        Method::Message => 256,
        Method::Options => 512,
        Method::Prack => 1024,
        Method::Update => 2048,
        Method::Refer => 4096,
        Method::Publish => 8192,
        Method::Other => 0,
    }
}

static RUID: AtomicU64 = AtomicU64::new(0);

fn new_ruid() -> String {
    let n = RUID.fetch_add(1, Ordering::Relaxed);
    format!("uloc-{:x}-{:x}-{n}", std::process::id(), now())
}

/// One Contact of a REGISTER.
struct Given {
    uri: String,
    expires: Option<u64>,
    q: f64,
    instance: Option<String>,
    reg_id: u32,
    methods: Option<u32>,
}

/// A registrar error: the reply and `save`'s return code.
struct RegError {
    code: u16,
    reason: &'static str,
    extra: Option<String>,
}

/// What `save` did: Kamailio's return codes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Done {
    Inserted = 1,
    Updated = 2,
    Deleted = 3,
    Query = 4,
}

/// An error reply: the status, its standard phrase, and the detail in
/// `P-Registrar-Error` (Kamailio's texts).
fn err(code: u16, detail: &'static str) -> RegError {
    RegError {
        code,
        reason: match code {
            400 => "Bad Request",
            423 => "Interval Too Brief",
            503 => "Service Unavailable",
            _ => "Server Internal Error",
        },
        extra: Some(format!("P-Registrar-Error: {detail}\r\n")),
    }
}

/// REGISTER processing. 1: bindings updated (and 200 sent); -1: error (reply sent unless
/// the no-reply flag is set).
fn save(c: &mut Ctx, table: &str, flags: i64, uri: Option<String>) -> R {
    if c.msg.method() != Some(Method::Register) {
        return Ok(Val::Int(-1));
    }
    let result = do_save(c, table, flags, uri);
    let no_reply = flags & SAVE_NO_REPLY != 0;
    match result {
        Ok((done, bindings)) => {
            if !no_reply {
                if !bindings.is_empty() {
                    let now = now();
                    let list: Vec<String> = bindings
                        .iter()
                        .map(|b| {
                            let mut v = format!("<{}>", b.uri);
                            if let Some(q) = q_text(b.q) {
                                v.push_str(&format!(";q={q}"));
                            }
                            v.push_str(&format!(";expires={}", b.expires.saturating_sub(now)));
                            if let Some(r) = &b.received {
                                v.push_str(&format!(";received=\"{r}\""));
                            }
                            v
                        })
                        .collect();
                    c.reply_lumps
                        .push(format!("Contact: {}\r\n", list.join(", ")));
                }
                let _ = send_reply(c, 200, "OK");
            }
            Ok(Val::Int(done as i64))
        }
        Err(e) => {
            c.last_error = Some((e.code, e.reason));
            if !no_reply {
                if let Some(x) = e.extra {
                    c.reply_lumps.push(x);
                }
                let _ = send_reply(c, e.code, e.reason);
            }
            Ok(Val::Int(if e.code == 503 { -2 } else { -1 }))
        }
    }
}

/// Same Call-ID with an equal CSeq within this many seconds is a retransmission.
const CSEQ_DELAY: u64 = 20;

fn do_save(
    c: &mut Ctx,
    table: &str,
    flags: i64,
    uri: Option<String>,
) -> Result<(Done, Vec<Contact>), RegError> {
    let cfg = &c.env.cfg;
    let default_expires = cfg
        .modparam_int("registrar", "default_expires", 3600)
        .max(0) as u64;
    let min_expires = cfg.modparam_int("registrar", "min_expires", 60).max(0) as u64;
    let min_expires_reject = cfg.modparam_int("registrar", "min_expires_mode", 0) == 1;
    let max_expires = cfg.modparam_int("registrar", "max_expires", 0).max(0) as u64;
    let max_contacts = cfg.modparam_int("registrar", "max_contacts", 0).max(0) as usize;
    let to_uri = match uri {
        Some(u) => u,
        None => c
            .hdr_uri(HdrName::To)
            .map(str::to_string)
            .ok_or(err(400, "To header not found"))?,
    };
    let aor = aor_of(c, &to_uri).ok_or(err(400, "Error while parsing AOR"))?;
    if aor.is_empty() || aor.starts_with('@') {
        return Err(err(400, "Error while parsing AOR"));
    }
    let callid = c.msg.call_id().unwrap_or("").to_string();
    let cseq = c.msg.cseq().map(|cs| cs.seq).unwrap_or(0);
    let hdr_expires = match c.msg.value(HdrName::Expires) {
        Some(v) => {
            Some(hdr::parse_delta_seconds(v).map_err(|_| err(400, "Expires parse error"))? as u64)
        }
        None => None,
    };
    let user_agent = c.msg.value(HdrName::UserAgent).unwrap_or("").to_string();
    let methods = c.msg.header(HdrName::Allow).map(|_| {
        c.msg
            .headers_named(HdrName::Allow)
            .flat_map(|h| hdr::parse_tokens(c.msg.text(h.value)))
            .map(method_bit)
            .fold(0u32, |a, b| a | b)
    });
    let path = {
        let p: Vec<&str> = c
            .msg
            .headers_named(HdrName::Path)
            .map(|h| c.msg.text(h.value))
            .collect();
        (!p.is_empty()).then(|| p.join(","))
    };
    let socket = Some(format!("{}:{}", c.rcv.proto.lower(), c.rcv.local));
    let memory_only = flags & SAVE_MEMORY_ONLY != 0;
    let now = now();
    let ul = usrloc(c);
    let mut current = ul.get(table, &aor);

    // Collect the Contact values.
    let mut star = false;
    let mut given: Vec<Given> = Vec::new();
    for h in c.msg.headers_named(HdrName::Contact) {
        if c.msg.text(h.value).trim() == "*" {
            star = true;
            continue;
        }
        for sp in split_list(&c.msg, h.value) {
            let na =
                parse_name_addr(c.msg.text(sp)).map_err(|_| err(400, "Contact parse error"))?;
            if na.uri.len() > 512 {
                return Err(err(400, "Contact/received too long"));
            }
            // A non-numeric expires param means default_expires (as Kamailio).
            let expires = match na.params.get("expires") {
                Some(Some(v)) if !v.is_empty() => Some(
                    hdr::parse_delta_seconds(v)
                        .map(u64::from)
                        .unwrap_or(default_expires),
                ),
                _ => None,
            };
            let methods_param = na.params.get("methods").flatten().map(|m| {
                m.trim_matches('"')
                    .split(',')
                    .map(method_bit)
                    .fold(0u32, |a, b| a | b)
            });
            let q = match na.params.get("q") {
                Some(Some(v)) => {
                    let q: f64 = v
                        .parse()
                        .map_err(|_| err(400, "Invalid q param in contact"))?;
                    if !(0.0..=1.0).contains(&q) {
                        return Err(err(400, "Invalid q param in contact"));
                    }
                    q
                }
                // Unspecified q (Kamailio's default_q -1) ranks below any explicit q.
                _ => -1.0,
            };
            let instance = na.params.get("+sip.instance").flatten().map(str::to_string);
            let reg_id = na
                .params
                .get("reg-id")
                .flatten()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            given.push(Given {
                uri: na.uri.to_string(),
                expires,
                q,
                instance,
                reg_id,
                methods: methods_param,
            });
        }
    }
    if star {
        // RFC 3261 §10.3 step 6: `*` only alone and with an `Expires: 0` header.
        if !given.is_empty() {
            return Err(err(400, "* used in contact and more than 1 contact"));
        }
        if hdr_expires != Some(0) {
            return Err(err(400, "* used in contact and expires is not zero"));
        }
        if current.iter().any(|b| b.callid == callid && b.cseq > cseq) {
            return Err(err(400, "Invalid CSeq number"));
        }
        ul.set(table, &aor, Vec::new(), memory_only).map_err(|e| {
            tracing::error!("usrloc: {e}");
            err(500, "usrloc_delete failed")
        })?;
        return Ok((Done::Deleted, Vec::new()));
    }
    if given.is_empty() {
        return Ok((Done::Query, current));
    }
    if flags & SAVE_SINGLE_CONTACT != 0 {
        current.retain(|b| given.iter().any(|g| g.uri == b.uri));
    }
    let mut done = Done::Inserted;
    for g in given {
        let mut exp = g.expires.or(hdr_expires).unwrap_or(default_expires);
        if exp != 0 {
            if exp < min_expires {
                if min_expires_reject {
                    let mut e = err(423, "Interval too brief");
                    e.extra = Some(format!(
                        "Min-Expires: {min_expires}\r\nP-Registrar-Error: Interval too brief\r\n"
                    ));
                    return Err(e);
                }
                exp = min_expires;
            }
            if max_expires != 0 && exp > max_expires {
                exp = max_expires;
            }
        }
        let existing = current.iter().position(|b| b.uri == g.uri);
        if let Some(i) = existing {
            let b = &current[i];
            if b.callid == callid && b.cseq > cseq {
                return Err(err(400, "Invalid CSeq number"));
            }
            if b.callid == callid && b.cseq == cseq {
                if now.saturating_sub(b.last_modified) <= CSEQ_DELAY {
                    // A retransmission: answer again, change nothing.
                    continue;
                }
                return Err(err(400, "Invalid CSeq number"));
            }
        }
        if exp == 0 {
            if let Some(i) = existing {
                current.remove(i);
                done = Done::Deleted;
            }
            continue;
        }
        done = if existing.is_some() {
            Done::Updated
        } else {
            Done::Inserted
        };
        let binding = Contact {
            ruid: existing
                .map(|i| current[i].ruid.clone())
                .unwrap_or_else(new_ruid),
            aor: aor.clone(),
            uri: g.uri,
            received: c.received.clone(),
            path: path.clone(),
            expires: now + exp,
            q: g.q,
            callid: callid.clone(),
            cseq,
            last_modified: now,
            flags: 0,
            cflags: c.bflags,
            user_agent: user_agent.clone(),
            socket: socket.clone(),
            methods: g.methods.or(methods),
            instance: g.instance,
            reg_id: g.reg_id,
        };
        match existing {
            Some(i) => current[i] = binding,
            None => current.push(binding),
        }
    }
    if max_contacts != 0 && current.len() > max_contacts {
        return Err(err(503, "Too many registered contacts"));
    }
    ul.set(table, &aor, current.clone(), memory_only)
        .map_err(|e| {
            tracing::error!("usrloc: {e}");
            err(500, "usrloc_update failed")
        })?;
    current.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
    Ok((done, current))
}

/// 1: the Request-URI is now the best contact (more contacts become branches);
/// -1: no contact; -2: contacts exist but none allows the method; -3: error.
fn lookup(c: &mut Ctx, table: &str, uri: Option<String>) -> R {
    let Some(aor) = ruri_aor(c, uri) else {
        return Ok(Val::Int(-3));
    };
    let all = usrloc(c).get(table, &aor);
    if all.is_empty() {
        return Ok(Val::Int(-1));
    }
    // In-dialog requests (with a To-tag) are never filtered by method.
    let has_to_tag = c
        .msg
        .value(HdrName::To)
        .and_then(|v| parse_name_addr(v).ok()?.tag())
        .is_some();
    let filtering = c.env.cfg.modparam_int("registrar", "method_filtering", 0) != 0 && !has_to_tag;
    let bit = method_bit(c.msg.method_text());
    let usable: Vec<&Contact> = all
        .iter()
        .filter(|b| !filtering || bit == 0 || b.methods.is_none_or(|m| m & bit != 0))
        .collect();
    let Some(first) = usable.first() else {
        return Ok(Val::Int(-2));
    };
    c.new_uri = Some(first.uri.clone());
    c.ruri_q = q_text(first.q);
    c.dst_uri = first.received.clone();
    c.branches.clear();
    for b in usable.iter().skip(1) {
        c.branches.push((b.uri.clone(), q_text(b.q)));
    }
    Ok(Val::Int(1))
}
