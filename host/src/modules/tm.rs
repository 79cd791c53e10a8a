//! `KSR.tm` and `KSR.tmx`: the transaction-stateful proxy. The transaction table, the
//! I/O around the sans-I/O state machines of [`crate::tm`] (timers sit in one queue and
//! report back with a generation number), forking, best-response selection, CANCEL,
//! failure and reply routes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

use crate::config::Config;
use crate::engine::Outcome;
use crate::export;
use crate::kemi::{n, s, Ctx, Env, Export, KemiError, RecvInfo, RouteKind, SendInfo, Val};
use crate::net::{Dest, SendError};
use crate::proxy::forward::{build_forwarded, target_of, FwdError};
use crate::proxy::reply::{build_reply, reply_dest, Replier};
use crate::sip::hdr::{first_in_list, parse_name_addr};
use crate::sip::lump::Lumps;
use crate::sip::{HdrName, Message, Method, Span};
use crate::stats::Stats;
use crate::tm::client::{self, ClientTxn};
use crate::tm::server::{self, ServerTxn};
use crate::tm::timer::{TimerHandle, TimerQueue};
use crate::tm::{select, Timers};

type R = Result<Val, KemiError>;

fn i(v: i64) -> R {
    Ok(Val::Int(v))
}

/// The reply tm sends when relaying failed (Kamailio's err2reason_phrase for "TM").
fn relay_error_reply(code: i64) -> (u16, &'static str) {
    match code {
        -477 => (
            477,
            "Unfortunately error on sending to next hop occurred (477/TM)",
        ),
        -478 => (478, "Unresolvable destination (478/TM)"),
        -479 => (
            479,
            "Regretfully, we were not able to process the URI (479/TM)",
        ),
        -487 => (487, "Transaction canceled (487/TM)"),
        _ => (500, "I'm terribly sorry, server error occurred (1/TM)"),
    }
}

/// One outgoing branch of a transaction.
struct Branch {
    id: String,
    dest: Dest,
    /// The request as sent (retransmissions, CANCEL and ACK are built from it).
    request: Bytes,
    client: ClientTxn,
    gens: HashMap<client::Timer, Armed>,
    last_code: u16,
    /// Final response: code and the message (None for a local 408/503).
    final_reply: Option<(u16, Option<Message>)>,
    timed_out: bool,
    cancel_pending: bool,
    cancel_sent: bool,
    /// A provisional response came on this branch.
    provisional: bool,
}

/// A proxy transaction: the server side and its branches.
struct Txn {
    id: u64,
    key: String,
    invite: bool,
    /// The request as received and the script's state when it was relayed.
    base: Ctx,
    server: ServerTxn,
    server_gens: HashMap<server::Timer, Armed>,
    last_reply: Option<(u16, Bytes)>,
    /// The onsend route dropped `last_reply`: its retransmissions are not sent either
    /// (Kamailio clears the reply buffer's send socket).
    last_reply_dropped: bool,
    branches: Vec<Branch>,
    /// Branches added since the last failure route (earlier ones no longer compete).
    first_live_branch: usize,
    canceled: bool,
    /// A final response went upstream.
    finished: bool,
    timers: Timers,
    /// The safety net that forgets a transaction nobody finished; aborted when it ends.
    life: Armed,
}

#[derive(Default)]
struct Tables {
    txns: HashMap<u64, Arc<Mutex<Txn>>>,
    by_key: HashMap<String, u64>,
    by_branch: HashMap<String, (u64, usize)>,
}

/// The transaction table.
pub struct Tm {
    tables: Mutex<Tables>,
    next: AtomicU64,
    pub timers: Timers,
    auto_inv_100: bool,
    /// Requests being processed right now (`tmx.t_precheck_trans`).
    in_flight: Mutex<std::collections::HashSet<String>>,
    /// Every armed transaction timer.
    queue: Arc<TimerQueue<Fire>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update of the guarded data is complete before anything can panic, so a
    // poisoned lock holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The transaction key of a request (RFC 3261 §17.2.3, with the RFC 2543 fallback).
/// ACK matches its INVITE; CANCEL has its own transaction.
pub fn request_key(msg: &Message, rcv: &RecvInfo, as_method: Option<&str>) -> Option<String> {
    let (_, via) = msg.top_via()?;
    let m = as_method.unwrap_or_else(|| match msg.method() {
        Some(Method::Ack) => "INVITE",
        _ => msg.method_text(),
    });
    match via.branch() {
        Some(b) if b.starts_with("z9hG4bK") => Some(format!(
            "{b}|{}:{}|{m}",
            via.host.to_ascii_lowercase(),
            via.port.unwrap_or(0)
        )),
        _ => {
            let ftag = msg
                .value(HdrName::From)
                .and_then(|v| parse_name_addr(v).ok()?.tag())
                .unwrap_or("");
            Some(format!(
                "2543|{}|{}|{ftag}|{}|{}|{m}",
                msg.call_id().unwrap_or(""),
                msg.cseq().map(|c| c.seq).unwrap_or(0),
                rcv.src,
                msg.ruri().unwrap_or("")
            ))
        }
    }
}

impl Tm {
    pub fn from_config(cfg: &Config) -> Tm {
        let ms =
            |k: &str, d: i64| Duration::from_millis(cfg.modparam_int("tm", k, d).max(1) as u64);
        Tm {
            tables: Mutex::new(Tables::default()),
            next: AtomicU64::new(1),
            timers: Timers {
                t1: ms("retr_timer1", 500),
                t2: ms("retr_timer2", 4000),
                fr: ms("fr_timer", 30_000),
                fr_inv: ms("fr_inv_timer", 120_000),
                wait: ms("wt_timer", 5000),
            },
            auto_inv_100: cfg.modparam_int("tm", "auto_inv_100", 1) != 0,
            in_flight: Mutex::new(Default::default()),
            queue: Arc::default(),
        }
    }

    fn get(&self, id: u64) -> Option<Arc<Mutex<Txn>>> {
        lock(&self.tables).txns.get(&id).cloned()
    }

    fn find(&self, key: &str) -> Option<(u64, Arc<Mutex<Txn>>)> {
        let t = lock(&self.tables);
        let id = *t.by_key.get(key)?;
        t.txns.get(&id).map(|x| (id, x.clone()))
    }

    /// Transactions, request keys and branch ids indexed (what `remove` empties).
    #[cfg(test)]
    fn table_sizes(&self) -> (usize, usize, usize) {
        let t = lock(&self.tables);
        (t.txns.len(), t.by_key.len(), t.by_branch.len())
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        lock(&self.tables).txns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets a transaction. Locks are taken one at a time (tables, then the
    /// transaction, then tables), never nested, so this cannot deadlock with code that
    /// holds a transaction and looks up the tables.
    fn remove(&self, id: u64) {
        let Some(txn) = lock(&self.tables).txns.remove(&id) else {
            return;
        };
        // The transaction is finished for good (its wait timer or its lifetime ran out):
        // its key and branch ids are moved out rather than copied.
        let (key, branches): (String, Vec<String>) = {
            let mut t = lock(&txn);
            let branches = t
                .branches
                .iter_mut()
                .map(|b| std::mem::take(&mut b.id))
                .collect();
            (std::mem::take(&mut t.key), branches)
        };
        let mut tables = lock(&self.tables);
        if let std::collections::hash_map::Entry::Occupied(e) = tables.by_key.entry(key) {
            if *e.get() == id {
                e.remove();
            }
        }
        for b in branches {
            tables.by_branch.remove(&b);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Timers: one queue for all transactions (`crate::tm::timer`), served by one tokio task;
// a newer generation of a timer makes an older firing a no-op.

/// What an expiring timer does.
enum Fire {
    /// A server or client transaction timer, with the generation it was armed with.
    Txn(u64, TimerRef, u64),
    /// The safety net that forgets a transaction nobody finished.
    Life(u64),
}

/// An armed timer: its generation (a firing that finds a newer one does nothing) and its
/// entry in the queue, removed when the timer is stopped or the transaction dropped.
#[derive(Default)]
struct Armed {
    gen: u64,
    timer: Option<TimerHandle<Fire>>,
}

impl Armed {
    fn stop(&mut self) {
        self.gen += 1;
        self.timer = None;
    }
}

#[derive(Clone, Copy, Debug)]
enum TimerRef {
    Server(server::Timer),
    Client(usize, client::Timer),
}

/// Puts a timer in the queue, starting the queue's task if none runs.
fn start_timer(env: &Arc<Env>, d: Duration, f: Fire) -> TimerHandle<Fire> {
    let (h, start) = env.tm.queue.insert(d, f);
    if start {
        let w = Arc::downgrade(env);
        tokio::spawn(env.tm.queue.clone().run(move |f| {
            let Some(env) = w.upgrade() else { return };
            match f {
                Fire::Txn(id, which, gen) => on_timer(&env, id, which, gen),
                Fire::Life(id) => env.tm.remove(id),
            }
        }));
    }
    h
}

fn arm(env: &Arc<Env>, id: u64, which: TimerRef, slot: &mut Armed, d: Duration) {
    slot.stop();
    slot.timer = Some(start_timer(env, d, Fire::Txn(id, which, slot.gen)));
}

fn on_timer(env: &Arc<Env>, id: u64, which: TimerRef, gen: u64) {
    let Some(txn) = env.tm.get(id) else { return };
    let mut t = lock(&txn);
    match which {
        TimerRef::Server(st) => {
            if t.server_gens.get(&st).map(|a| a.gen) != Some(gen) {
                return;
            }
            let acts = t.server.on_timer(st);
            let done = server_actions(env, &mut t, acts);
            drop(t);
            if done {
                env.tm.remove(id);
            }
        }
        TimerRef::Client(bi, ct) => {
            let Some(b) = t.branches.get_mut(bi) else {
                return;
            };
            if b.gens.get(&ct).map(|a| a.gen) != Some(gen) {
                return;
            }
            let acts = b.client.on_timer(ct);
            let need_final = client_actions(env, &mut t, bi, acts, None);
            drop(t);
            if need_final {
                finalize(env, &txn);
            }
        }
    }
}

/// Carries out server transaction actions; true when the transaction is over.
fn server_actions(env: &Arc<Env>, t: &mut Txn, acts: Vec<server::Action>) -> bool {
    let mut done = false;
    for a in acts {
        match a {
            server::Action::ResendLast => {
                if t.last_reply_dropped {
                    continue;
                }
                if let Some((_, data)) = &t.last_reply {
                    let _ = env.net.send(&reply_dest(&t.base), data.clone());
                }
            }
            server::Action::Start(st, d) => {
                let id = t.id;
                let slot = t.server_gens.entry(st).or_default();
                arm(env, id, TimerRef::Server(st), slot, d);
            }
            server::Action::Stop(st) => {
                t.server_gens.entry(st).or_default().stop();
            }
            server::Action::Done => done = true,
        }
    }
    done
}

/// Carries out client transaction actions for branch `bi`; true when the branch got its
/// final answer (or timed out) and the transaction may now be decided.
fn client_actions(
    env: &Arc<Env>,
    t: &mut Txn,
    bi: usize,
    acts: Vec<client::Action>,
    reply: Option<&Message>,
) -> bool {
    let mut final_now = false;
    for a in acts {
        let id = t.id;
        let invite = t.invite;
        let b = &mut t.branches[bi];
        match a {
            client::Action::Send => {
                if env.net.send(&b.dest, b.request.clone()).is_err() {
                    Stats::inc(&env.stats.send_errors);
                }
            }
            client::Action::SendAck => {
                if let Some(r) = reply {
                    if let Some(ack) = build_hop_request(&b.request, "ACK", Some(r)) {
                        let _ = env.net.send(&b.dest, ack);
                    }
                }
            }
            client::Action::PassUp(_) => {}
            client::Action::TimedOut => {
                b.timed_out = true;
                if invite && b.last_code >= 100 && !b.cancel_sent {
                    send_cancel(env, b);
                }
                b.final_reply = Some((408, None));
                final_now = true;
            }
            client::Action::Start(ct, d) => {
                let slot = b.gens.entry(ct).or_default();
                arm(env, id, TimerRef::Client(bi, ct), slot, d);
            }
            client::Action::Stop(ct) => {
                b.gens.entry(ct).or_default().stop();
            }
            client::Action::Done => {}
        }
    }
    final_now
}

/// ACK (for a non-2xx) or CANCEL built from the request of a branch (RFC 3261 §17.1.1.3,
/// §9.1): same Request-URI, top Via, Route set, From, Call-ID and CSeq number.
fn build_hop_request(request: &Bytes, method: &str, reply: Option<&Message>) -> Option<Bytes> {
    let req = Message::parse(request.clone()).ok()?;
    let ruri = req.ruri()?;
    let mut out = format!("{method} {ruri} SIP/2.0\r\n");
    let via = req.header(HdrName::Via)?;
    out.push_str("Via: ");
    out.push_str(req.text(first_in_list(&req, via.value)));
    out.push_str("\r\n");
    // Max-Forwards as the INVITE carried it (Kamailio copies it, after the Via).
    let mf = req.value(HdrName::MaxForwards).unwrap_or("70");
    out.push_str(&format!("Max-Forwards: {mf}\r\n"));
    for h in req.headers_named(HdrName::Route) {
        out.push_str("Route: ");
        out.push_str(req.text(h.value));
        out.push_str("\r\n");
    }
    out.push_str(&format!("From: {}\r\n", req.value(HdrName::From)?));
    let to = match reply {
        Some(r) => r.value(HdrName::To)?,
        None => req.value(HdrName::To)?,
    };
    out.push_str(&format!("To: {to}\r\n"));
    out.push_str(&format!("Call-ID: {}\r\n", req.call_id()?));
    out.push_str(&format!("CSeq: {} {method}\r\n", req.cseq()?.seq));
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(Bytes::from(out))
}

fn send_cancel(env: &Arc<Env>, b: &mut Branch) {
    if let Some(cancel) = build_hop_request(&b.request, "CANCEL", None) {
        let _ = env.net.send(&b.dest, cancel);
    }
    b.cancel_sent = true;
    b.cancel_pending = false;
}

/// Sends a response upstream on the server transaction.
fn send_upstream(env: &Arc<Env>, t: &mut Txn, code: u16, data: Bytes) {
    t.last_reply_dropped = false;
    let r = env.net.send(&reply_dest(&t.base), data.clone());
    match r {
        Ok(()) => {
            if code >= 200 {
                Stats::inc(&env.stats.fwd_replies);
            }
        }
        Err(e) => {
            tracing::debug!("reply upstream not sent: {e}");
            Stats::inc(&env.stats.send_errors);
        }
    }
    update_upstream(env, t, code, data);
}

/// The transaction's state after a response went upstream (or was meant to).
fn update_upstream(env: &Arc<Env>, t: &mut Txn, code: u16, data: Bytes) {
    if code >= 200
        && !t.finished
        && t.base.msg.method() != Some(Method::Cancel)
        && env.acc.wants(t.base.flags)
    {
        if let Ok(m) = Message::parse(data.clone()) {
            let to_tag = m
                .value(HdrName::To)
                .and_then(|v| parse_name_addr(v).ok()?.tag().map(str::to_string))
                .unwrap_or_default();
            env.acc
                .on_final(&t.base, code, m.reason().unwrap_or(""), &to_tag);
        }
    }
    if code >= t.last_reply.as_ref().map(|(c, _)| *c).unwrap_or(0) || code >= 200 {
        t.last_reply = Some((code, data));
    }
    if code >= 200 {
        t.finished = true;
    }
    let acts = t.server.on_send(code);
    let _ = server_actions(env, t, acts);
}

/// A locally generated response on the transaction.
fn reply_local(env: &Arc<Env>, t: &mut Txn, code: u16, reason: &str) {
    let data = Bytes::from(build_reply(&t.base, code, reason, Replier::Tm));
    Stats::inc(&env.stats.sent_replies);
    send_upstream(env, t, code, data);
}

/// A downstream response relayed upstream: our Via removed.
fn relay_response(env: &Arc<Env>, t: &mut Txn, msg: &Message) {
    let Some(code) = msg.status() else { return };
    let mut lumps = Lumps::default();
    if let Some(h) = msg.header(HdrName::Via) {
        let vals = crate::sip::hdr::split_list(msg, h.value);
        if vals.len() > 1 {
            lumps.delete(Span {
                start: vals[0].start,
                end: vals[1].start,
            });
        } else {
            lumps.delete(h.line);
        }
    }
    let (code, data) = if code == 503 {
        // remap_503_500: a 503 from downstream goes upstream as 500 (RFC 3261 §16.7).
        let mut l = lumps.clone();
        if let crate::sip::FirstLine::Response {
            code: _,
            version,
            reason,
        } = msg.first
        {
            l.replace(
                Span {
                    start: version.end + 1,
                    end: reason.end,
                },
                Bytes::from_static(b"500 Service Unavailable"),
            );
        }
        (500, l.apply(msg.buf()))
    } else {
        (code, lumps.apply(msg.buf()))
    };
    let data = Bytes::from(data);
    // Kamailio's relay_reply runs the onsend route for a relayed reply (with a KEMI
    // engine whatever `onsend_route_reply` says), on the reply, with the transaction's
    // routing version; a drop skips the send, the transaction goes on as if sent.
    if let Some(version) = crate::engine::onsend_version(env, t.base.version.as_ref()) {
        let dest = reply_dest(&t.base);
        let mut ctx = Ctx::new(env.clone(), msg.clone(), t.base.rcv, RouteKind::Onsend);
        ctx.version = Some(version);
        ctx.snd = Some(Box::new(SendInfo {
            proto: dest.proto,
            to: dest.addr,
            from: t.base.rcv.local,
            buf: data.clone(),
        }));
        // (No transaction handle: this one is locked while the route runs.)
        if !crate::engine::run_onsend(ctx) {
            tracing::info!("reply to {} dropped (onsend_route)", dest.addr);
            update_upstream(env, t, code, data.clone());
            t.last_reply_dropped = t.last_reply.as_ref().is_some_and(|(_, d)| *d == data);
            return;
        }
    }
    send_upstream(env, t, code, data);
}

// ---------------------------------------------------------------------------------------
// Replies from downstream.

/// Handles a response that belongs to one of our client transactions. False when it
/// does not (the caller forwards it statelessly).
pub fn on_reply(env: &Arc<Env>, msg: Message) -> bool {
    let Some(branch) = msg
        .top_via()
        .and_then(|(_, v)| v.branch().map(str::to_string))
    else {
        return false;
    };
    let Some((id, bi)) = lock(&env.tm.tables).by_branch.get(&branch).copied() else {
        return false;
    };
    let Some(txn) = env.tm.get(id) else {
        return false;
    };
    let code = msg.status().unwrap_or(0);
    let is_cancel_reply = msg.cseq().is_some_and(|c| c.method == "CANCEL");
    if is_cancel_reply {
        // The answer to our own hop-by-hop CANCEL.
        return true;
    }
    // The transaction's reply route sees every response first.
    let on_reply = lock(&txn).base.tm.on_reply.clone();
    if let Some(route) = on_reply {
        let (base_rcv, version) = {
            let t = lock(&txn);
            (t.base.rcv, t.base.version.clone())
        };
        let mut ctx = Ctx::new(env.clone(), msg.clone(), base_rcv, RouteKind::TmReply);
        ctx.txn = Some(id);
        // The transaction's routes run on the routing version that created it.
        ctx.version = version;
        if let Some((ctx, _)) = run_route(env, ctx, &route) {
            if ctx.drop && code < 200 {
                return true;
            }
        }
    }
    let mut t = lock(&txn);
    if bi >= t.branches.len() {
        return true;
    }
    let acts = t.branches[bi].client.on_response(code);
    let passed = acts.contains(&client::Action::PassUp(code));
    let _ = client_actions(env, &mut t, bi, acts, Some(&msg));
    if !passed {
        return true;
    }
    t.branches[bi].last_code = code;
    match code {
        100..=199 => {
            if t.branches[bi].cancel_pending || (t.canceled && !t.branches[bi].cancel_sent) {
                let b = &mut t.branches[bi];
                send_cancel(env, b);
            }
            t.branches[bi].provisional = true;
            if code != 100 && !t.finished {
                relay_response(env, &mut t, &msg);
            }
            true
        }
        200..=299 => {
            t.branches[bi].final_reply = Some((code, Some(msg.clone())));
            // Every 2xx goes upstream; the other branches are canceled.
            relay_response(env, &mut t, &msg);
            cancel_pending_branches(env, &mut t, Some(bi));
            true
        }
        _ => {
            t.branches[bi].final_reply = Some((code, Some(msg)));
            if (600..700).contains(&code) && !t.base.tm.disable_6xx {
                cancel_pending_branches(env, &mut t, Some(bi));
            }
            drop(t);
            finalize(env, &txn);
            true
        }
    }
}

fn cancel_pending_branches(env: &Arc<Env>, t: &mut Txn, except: Option<usize>) {
    if !t.invite {
        return;
    }
    for (i, b) in t.branches.iter_mut().enumerate() {
        if Some(i) == except || b.final_reply.is_some() || b.cancel_sent {
            continue;
        }
        if b.last_code >= 100 {
            send_cancel(env, b);
        } else {
            b.cancel_pending = true;
        }
    }
}

/// When every live branch has its final answer: run the failure route, or send the best
/// answer upstream.
fn finalize(env: &Arc<Env>, txn: &Arc<Mutex<Txn>>) {
    let (picked_idx, picked_code, route) = {
        let mut t = lock(txn);
        if t.finished {
            return;
        }
        let live = t.first_live_branch;
        if t.branches[live..].iter().any(|b| b.final_reply.is_none()) {
            return;
        }
        let codes: Vec<u16> = t.branches[live..]
            .iter()
            .map(|b| b.final_reply.as_ref().map(|(c, _)| *c).unwrap_or(500))
            .collect();
        let Some(best) = select::best(&codes) else {
            return;
        };
        let bi = live + best;
        let code = codes[best];
        // The handler is consumed: a failure route must arm it again for new branches.
        let route = if code >= 300 {
            t.base.tm.on_failure.take()
        } else {
            None
        };
        (bi, code, route)
    };
    if let Some(route) = route {
        let (mut ctx, id) = {
            let t = lock(txn);
            let b = &t.branches[picked_idx];
            let mut c = t.base.fork(RouteKind::Failure);
            c.tm.picked = Some((picked_code, b.timed_out, b.provisional));
            (c, t.id)
        };
        ctx.txn = Some(id);
        let before = lock(txn).branches.len();
        let result = run_route(env, ctx, &route);
        let t = lock(txn);
        if t.finished {
            return; // the failure route replied
        }
        if t.branches.len() > before {
            return; // new branches are running
        }
        drop(t);
        if let Some((c, _)) = result {
            // Keep changes the failure route made to the base request (flags etc.).
            let mut t = lock(txn);
            t.base.flags = c.flags;
        }
    }
    let mut t = lock(txn);
    if t.finished {
        return;
    }
    let reply = t.branches[picked_idx].final_reply.clone();
    match reply {
        Some((_, Some(msg))) => relay_response(env, &mut t, &msg),
        Some((code, None)) => {
            if t.canceled {
                reply_local(env, &mut t, 487, "Request Terminated");
            } else if code == 408 {
                reply_local(env, &mut t, 408, "Request Timeout");
            } else {
                reply_local(env, &mut t, 500, "Service Unavailable");
            }
        }
        None => reply_local(env, &mut t, 500, "Server Internal Error"),
    }
}

/// Runs a script route for tm (failure / reply), outside any other route.
fn run_route(env: &Arc<Env>, ctx: Ctx, name: &str) -> Option<(Ctx, Outcome)> {
    let r = crate::engine::run_route(env, ctx, name)?;
    if let Outcome::Error(e) = &r.1 {
        Stats::inc(&env.stats.script_errors);
        tracing::error!("error from the routing script or plugin in {name}: {e}");
    }
    Some(r)
}

// ---------------------------------------------------------------------------------------
// Requests.

/// t_newtran: 1 created, 0 retransmission (answered again), -10 exists already.
fn newtran(c: &mut Ctx) -> i64 {
    if c.txn.is_some() {
        return -10;
    }
    if !c.msg.is_request() {
        return -1;
    }
    let Some(key) = request_key(&c.msg, &c.rcv, None) else {
        return -9;
    };
    let env = c.env.clone();
    if let Some((_, txn)) = env.tm.find(&key) {
        let mut t = lock(&txn);
        if c.msg.method() == Some(Method::Ack) {
            let acts = t.server.on_ack();
            let _ = server_actions(&env, &mut t, acts);
        } else {
            let acts = t.server.on_retransmission();
            let _ = server_actions(&env, &mut t, acts);
        }
        return 0;
    }
    if c.msg.method() == Some(Method::Ack) {
        return 1; // an ACK for a 2xx: no transaction
    }
    let id = env.tm.next.fetch_add(1, Ordering::Relaxed);
    let invite = c.msg.method() == Some(Method::Invite);
    let mut timers = env.tm.timers;
    if c.tm.fr_ms > 0 {
        timers.fr = Duration::from_millis(c.tm.fr_ms);
    }
    if c.tm.fr_inv_ms > 0 {
        timers.fr_inv = Duration::from_millis(c.tm.fr_inv_ms);
    }
    let mut base = c.fork(RouteKind::Request);
    base.txn = Some(id);
    let txn = Txn {
        id,
        key: key.clone(),
        invite,
        base,
        server: ServerTxn::new(invite, c.rcv.proto.is_stream(), timers),
        server_gens: HashMap::new(),
        last_reply: None,
        last_reply_dropped: false,
        branches: Vec::new(),
        first_live_branch: 0,
        canceled: false,
        finished: false,
        timers,
        life: Armed::default(),
    };
    let mut tables = lock(&env.tm.tables);
    tables.by_key.insert(key, id);
    tables.txns.insert(id, Arc::new(Mutex::new(txn)));
    drop(tables);
    c.txn = Some(id);
    // A transaction that never gets an answer must not live forever.
    let life = if invite {
        Duration::from_secs(180)
    } else {
        Duration::from_secs(32)
    } + timers.fr_inv.max(timers.fr);
    let timer = start_timer(&env, life, Fire::Life(id));
    if let Some(txn) = env.tm.get(id) {
        lock(&txn).life.timer = Some(timer);
    }
    1
}

/// Sends the script's pending reply on the transaction (t_reply).
pub fn t_reply(c: &mut Ctx, code: u16, reason: &str) -> i64 {
    let Some(txn) = c.txn.and_then(|id| c.env.tm.get(id)) else {
        return -1;
    };
    if c.msg.method() == Some(Method::Ack) && c.route == RouteKind::Request {
        return -1;
    }
    let env = c.env.clone();
    let mut t = lock(&txn);
    // Replies built from the route's own context (its reply lumps, body).
    let mut rctx = t.base.fork(RouteKind::Request);
    rctx.reply_lumps = std::mem::take(&mut c.reply_lumps);
    // A 3xx lists the route's destination set (a stateful redirect).
    rctx.new_uri = c.new_uri.clone();
    rctx.ruri_q = c.ruri_q.clone();
    rctx.branches = c.branches.clone();
    rctx.reply_body = c.reply_body.take();
    let data = Bytes::from(build_reply(&rctx, code, reason, Replier::Tm));
    Stats::inc(&env.stats.sent_replies);
    send_upstream(&env, &mut t, code, data);
    if code >= 200 {
        c.final_replied = true;
    }
    1
}

/// t_relay: statefully forwards the request to the Request-URI and appended branches.
fn relay(c: &mut Ctx, forced: Option<String>) -> i64 {
    let env = c.env.clone();
    match c.route {
        RouteKind::Request => {}
        RouteKind::Failure => {}
        _ => return 0,
    }
    if c.route == RouteKind::Request {
        match c.msg.method() {
            Some(Method::Cancel) => return relay_cancel(c),
            Some(Method::Ack) => {
                // An ACK for a 2xx (or with no transaction) goes on statelessly.
                let key = request_key(&c.msg, &c.rcv, None);
                if let Some((_, txn)) = key.and_then(|k| env.tm.find(&k)) {
                    let mut t = lock(&txn);
                    let acts = t.server.on_ack();
                    let _ = server_actions(&env, &mut t, acts);
                    return 1;
                }
                return match crate::proxy::forward::forward_request(c, forced.as_deref()) {
                    Ok(()) => 1,
                    Err(e) => fwd_code(&e),
                };
            }
            _ => {}
        }
        match newtran(c) {
            0 => return 1, // retransmission answered
            -10 | 1 => {}
            e => return e,
        }
    }
    let Some(txn) = c.txn.and_then(|id| env.tm.get(id)) else {
        return -1;
    };
    // Keep the script's changes and handlers for later routes of this transaction.
    {
        let mut t = lock(&txn);
        let handlers = c.tm.clone();
        t.base = c.fork(RouteKind::Request);
        t.base.txn = Some(t.id);
        t.base.tm.on_failure = handlers.on_failure;
        t.base.tm.on_reply = handlers.on_reply;
        t.base.tm.on_branch = handlers.on_branch;
        if c.tm.fr_ms > 0 {
            t.timers.fr = Duration::from_millis(c.tm.fr_ms);
        }
        if c.tm.fr_inv_ms > 0 {
            t.timers.fr_inv = Duration::from_millis(c.tm.fr_inv_ms);
        }
        if t.canceled {
            return -487;
        }
        if c.route == RouteKind::Failure {
            // failure_reply_mode 3: earlier legs no longer compete.
            t.first_live_branch = t.branches.len();
        }
        if t.invite
            && env.tm.auto_inv_100
            && t.last_reply.is_none()
            && c.route == RouteKind::Request
        {
            reply_local(&env, &mut t, 100, "trying -- your call is important to us");
        }
    }
    // Targets: the Request-URI (with $du) and every appended branch.
    let mut targets: Vec<(String, Option<String>)> = Vec::new();
    match forced {
        Some(f) => targets.push((c.ruri().unwrap_or_default().to_string(), Some(f))),
        None => targets.push((c.ruri().unwrap_or_default().to_string(), c.dst_uri.clone())),
    }
    for (uri, _) in std::mem::take(&mut c.branches) {
        targets.push((uri, None));
    }
    let mut sent = 0;
    let mut dropped = 0;
    let mut worst = -1i64;
    let branch_route = c.tm.on_branch.clone();
    for (uri, dst) in targets {
        let mut bctx = c.fork(RouteKind::Branch);
        bctx.new_uri = Some(uri.clone());
        bctx.dst_uri = dst.clone();
        bctx.tm.branch_idx = lock(&txn).branches.len();
        if let Some(name) = &branch_route {
            // The branch route may change this branch only, or drop it.
            match crate::engine::run_nested(&env, bctx, name) {
                Some((b, Outcome::Done | Outcome::Missing)) if !b.drop => bctx = b,
                Some((_, Outcome::Error(e))) => {
                    Stats::inc(&env.stats.script_errors);
                    tracing::error!("error from the routing script or plugin in {name}: {e}");
                    continue;
                }
                Some(_) => continue,
                None => {
                    tracing::error!("branch route {name} could not run");
                    continue;
                }
            }
        }
        match start_branch(&env, &txn, &bctx) {
            Ok(()) => sent += 1,
            Err(FwdError::Dropped) => dropped += 1,
            Err(e) => worst = worst.min(fwd_code(&e)),
        }
    }
    if sent > 0 {
        1
    } else if dropped > 0 {
        // Kamailio's t_forward_nonack: no branch sent -> -1 with E_SEND, and the
        // transaction answers 477 (after the script, tm's delayed_reply).
        c.last_error = Some(relay_error_reply(-477));
        -1
    } else {
        let code = if worst == -1 { -477 } else { worst };
        c.last_error = Some(relay_error_reply(code));
        code
    }
}

fn fwd_code(e: &FwdError) -> i64 {
    match e {
        FwdError::Send(SendError::Resolve(_)) => -478,
        FwdError::Send(SendError::Denied(_)) => -477,
        FwdError::BadUri(_) | FwdError::NoTarget => -479,
        FwdError::Loop | FwdError::Dropped => -1,
        FwdError::Send(_) => -477,
    }
}

/// Creates a branch for the target in `bctx` and sends it.
fn start_branch(env: &Arc<Env>, txn: &Arc<Mutex<Txn>>, bctx: &Ctx) -> Result<(), FwdError> {
    let target = bctx.nh_uri().ok_or(FwdError::NoTarget)?.to_string();
    let (proto, secure, host, port) = target_of(&target)?;
    let (proto, addr) = env.net.resolve(&host, port, proto, secure)?;
    let listener = env
        .net
        .listener_for(proto, addr.is_ipv6())
        .ok_or(SendError::NoSocket(proto, "no listener for the protocol"))?
        .clone();
    let (bi, branch_id) = {
        let t = lock(txn);
        let bi = t.branches.len();
        (bi, format!("z9hG4bKtm{:x}.{bi}", t.id))
    };
    let data = Bytes::from(build_forwarded(bctx, &listener, &branch_id));
    let dest = Dest::new(proto, addr);
    // The onsend route sees the branch's first send, not its retransmissions (Kamailio's
    // t_send_branch); it runs with the transaction unlocked (its KEMI calls may look
    // at it). A dropped branch is never sent and never competes.
    let snd = SendInfo {
        proto,
        to: addr,
        from: listener.addr,
        buf: data.clone(),
    };
    if !crate::engine::onsend(bctx, snd) {
        tracing::debug!(
            "onsend_route dropped the branch to {addr} ({})",
            proto.lower()
        );
        return Err(FwdError::Dropped);
    }
    let mut t = lock(txn);
    if t.branches.len() != bi {
        // Never happens: a transaction's branches are added by its one running route.
        return Err(FwdError::Send(SendError::Io(
            "branch added concurrently".into(),
        )));
    }
    if !env.net.egress_allows(addr.ip()) {
        Stats::inc(&env.stats.egress_denied);
        return Err(FwdError::Send(SendError::Denied(addr.ip())));
    }
    let client = ClientTxn::new(t.invite, proto.is_stream(), t.timers);
    t.branches.push(Branch {
        id: branch_id.clone(),
        dest,
        request: data,
        client,
        gens: HashMap::new(),
        last_code: 0,
        final_reply: None,
        timed_out: false,
        cancel_pending: false,
        cancel_sent: false,
        provisional: false,
    });
    lock(&env.tm.tables).by_branch.insert(branch_id, (t.id, bi));
    let acts = t.branches[bi].client.start();
    let _ = client_actions(env, &mut t, bi, acts, None);
    Stats::inc(&env.stats.fwd_requests);
    Ok(())
}

/// CANCEL for a transaction we have: answer it, cancel the branches (RFC 3261 §16.10).
fn relay_cancel(c: &mut Ctx) -> i64 {
    let env = c.env.clone();
    let key = request_key(&c.msg, &c.rcv, Some("INVITE"));
    let Some((_, txn)) = key.and_then(|k| env.tm.find(&k)) else {
        // No INVITE transaction: forward it statelessly.
        return match crate::proxy::forward::forward_request(c, None) {
            Ok(()) => 1,
            Err(e) => fwd_code(&e),
        };
    };
    let mut t = lock(&txn);
    t.canceled = true;
    let pending = t.branches.iter().any(|b| b.final_reply.is_none());
    let reason = if t.finished || (!pending && !t.branches.is_empty()) {
        "ok -- no more pending branches"
    } else {
        "canceling"
    };
    if t.branches.is_empty() && !t.finished {
        reply_local(&env, &mut t, 487, "Request canceled");
    } else {
        cancel_pending_branches(&env, &mut t, None);
    }
    drop(t);
    let _ = crate::proxy::reply::send_reply(c, 200, reason);
    1
}

/// After the request route: the delayed error reply of a failed t_relay, if the script
/// sent nothing itself; and the end of `t_precheck_trans`.
pub fn after_request_route(c: &mut Ctx) {
    if let Some(k) = c.tm.precheck_key.take() {
        lock(&c.env.tm.in_flight).remove(&k);
    }
    let Some(txn) = c.txn.and_then(|id| c.env.tm.get(id)) else {
        return;
    };
    let mut t = lock(&txn);
    if t.branches.is_empty() && !t.finished {
        if let Some((code, reason)) = c.last_error {
            reply_local(&c.env, &mut t, code, reason);
        }
    }
}

fn check_trans(c: &mut Ctx) -> i64 {
    match c.route {
        RouteKind::Failure | RouteKind::Branch | RouteKind::TmReply => return 1,
        _ => {}
    }
    let env = c.env.clone();
    if !c.msg.is_request() {
        let branch = c
            .msg
            .top_via()
            .and_then(|(_, v)| v.branch().map(str::to_string));
        return match branch {
            Some(b) if lock(&env.tm.tables).by_branch.contains_key(&b) => 1,
            _ => -1,
        };
    }
    match c.msg.method() {
        Some(Method::Cancel) => {
            let key = request_key(&c.msg, &c.rcv, Some("INVITE"));
            if key.and_then(|k| env.tm.find(&k)).is_some() {
                1
            } else {
                -1
            }
        }
        Some(Method::Ack) => {
            let key = request_key(&c.msg, &c.rcv, None);
            match key.and_then(|k| env.tm.find(&k)) {
                Some((_, txn)) => {
                    let mut t = lock(&txn);
                    let negative = t.last_reply.as_ref().is_some_and(|(code, _)| *code >= 300);
                    if negative {
                        let acts = t.server.on_ack();
                        let _ = server_actions(&env, &mut t, acts);
                        0
                    } else {
                        1
                    }
                }
                None => -1,
            }
        }
        _ => {
            let key = request_key(&c.msg, &c.rcv, None);
            match key.and_then(|k| env.tm.find(&k)) {
                Some((_, txn)) => {
                    let mut t = lock(&txn);
                    let acts = t.server.on_retransmission();
                    let _ = server_actions(&env, &mut t, acts);
                    0
                }
                None => -1,
            }
        }
    }
}

/// The xavp holding the contacts `t_load_contacts` ordered (Kamailio's contacts_avp).
const CONTACTS_XAVP: &str = "tm_contacts";

/// A q value as a number; unspecified (Kamailio's -1) ranks below every explicit q.
fn q_of(q: &Option<String>) -> f64 {
    q.as_deref().and_then(|q| q.parse().ok()).unwrap_or(-1.0)
}

/// t_load_contacts: the Request-URI and the appended branches, grouped by q for serial
/// forking (highest q first). With one target there is nothing to order: 1.
fn load_contacts(c: &mut Ctx) -> i64 {
    let Some(ruri) = c.ruri().map(str::to_string) else {
        return -1;
    };
    if c.branches.is_empty() {
        return 1;
    }
    let mut all: Vec<(String, f64)> = vec![(ruri, q_of(&c.ruri_q))];
    all.extend(c.branches.drain(..).map(|(u, q)| {
        let q = q_of(&q);
        (u, q)
    }));
    // Stable: equal q keeps the order of appending.
    all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    let items = all
        .into_iter()
        .map(|(u, q)| {
            vec![
                ("uri".to_string(), Val::Str(u)),
                ("q".to_string(), Val::Str(q.to_string())),
            ]
        })
        .collect();
    c.xavps.insert(CONTACTS_XAVP.to_string(), items);
    1
}

/// t_next_contacts: the highest-q group left becomes the Request-URI and branches;
/// -2 when none is left.
fn next_contacts(c: &mut Ctx) -> i64 {
    let Some(list) = c.xavps.get_mut(CONTACTS_XAVP) else {
        return -2;
    };
    if list.is_empty() {
        return -2;
    }
    let q = |item: &Vec<(String, Val)>| {
        item.iter()
            .find(|(k, _)| k == "q")
            .and_then(|(_, v)| v.as_str().and_then(|s| s.parse::<f64>().ok()))
            .unwrap_or(-1.0)
    };
    let uri = |item: &Vec<(String, Val)>| {
        item.iter()
            .find(|(k, _)| k == "uri")
            .and_then(|(_, v)| v.as_str().map(str::to_string))
    };
    let top = q(&list[0]);
    let n = list.iter().take_while(|it| q(it) == top).count();
    let group: Vec<Vec<(String, Val)>> = list.drain(..n).collect();
    let mut uris = group.iter().filter_map(uri);
    let Some(first) = uris.next() else { return -1 };
    let q = crate::proxy::dset::q_text(top);
    c.new_uri = Some(first);
    c.ruri_q = q.clone();
    c.dst_uri = None;
    c.branches = uris.map(|u| (u, q.clone())).collect();
    1
}

fn with_txn<T>(c: &Ctx, f: impl FnOnce(&Txn) -> T) -> Option<T> {
    let txn = c.txn.and_then(|id| c.env.tm.get(id))?;
    let t = lock(&txn);
    Some(f(&t))
}

/// The status `t_check_status`/`t_get_status_code` look at in the current route.
fn route_status(c: &Ctx) -> Option<u16> {
    match c.route {
        RouteKind::Failure => c.tm.picked.map(|p| p.0),
        RouteKind::TmReply | RouteKind::Reply => c.msg.status(),
        _ => with_txn(c, |t| t.last_reply.as_ref().map(|(code, _)| *code)).flatten(),
    }
}

fn set_handler(c: &mut Ctx, which: char, name: &str) -> R {
    let v = (!name.is_empty()).then(|| name.to_string());
    match which {
        'f' => c.tm.on_failure = v.clone(),
        'b' => c.tm.on_branch = v.clone(),
        _ => c.tm.on_reply = v.clone(),
    }
    if let Some(txn) = c.txn.and_then(|id| c.env.tm.get(id)) {
        let mut t = lock(&txn);
        match which {
            'f' => t.base.tm.on_failure = v,
            'b' => t.base.tm.on_branch = v,
            _ => t.base.tm.on_reply = v,
        }
    }
    i(1)
}

pub fn exports() -> Vec<Export> {
    vec![
        export!("tm", "t_relay", [], Int, |c, _| i(relay(c, None))),
        export!("tm", "t_relay_to_proxy", [Str], Int, |c, a| {
            let p = s(a, 0);
            let (proto, hostport) = match p.split_once(':') {
                Some((pr, rest)) if crate::net::Proto::parse(pr).is_some() => {
                    (Some(pr.to_ascii_lowercase()), rest)
                }
                _ => (None, p),
            };
            let mut u = format!("sip:{hostport}");
            if let Some(pr) = proto {
                u.push_str(";transport=");
                u.push_str(&pr);
            }
            i(relay(c, Some(u)))
        }),
        export!(
            "tm",
            "t_relay_to_proto_addr",
            [Str, Str, Int],
            Int,
            |c, a| {
                let u = format!(
                    "sip:{}:{};transport={}",
                    s(a, 1),
                    n(a, 2),
                    s(a, 0).to_ascii_lowercase()
                );
                i(relay(c, Some(u)))
            }
        ),
        export!("tm", "t_newtran", [], Int, |c, _| i(newtran(c))),
        export!("tm", "t_check_trans", [], Int, |c, _| i(check_trans(c))),
        export!("tm", "t_reply", [Int, Str], Int, |c, a| {
            let r = s(a, 1).to_string();
            i(t_reply(c, n(a, 0) as u16, &r))
        }),
        export!("tm", "t_send_reply", [Int, Str], Int, |c, a| {
            let r = s(a, 1).to_string();
            if newtran(c) < 0 && c.txn.is_none() {
                return i(-1);
            }
            i(t_reply(c, n(a, 0) as u16, &r))
        }),
        export!("tm", "t_on_failure", [Str], Int, |c, a| set_handler(
            c,
            'f',
            s(a, 0)
        )),
        export!("tm", "t_on_branch", [Str], Int, |c, a| set_handler(
            c,
            'b',
            s(a, 0)
        )),
        export!("tm", "t_on_reply", [Str], Int, |c, a| set_handler(
            c,
            'o',
            s(a, 0)
        )),
        export!("tm", "t_is_set", [Str], Int, |c, a| {
            let set = match s(a, 0).chars().next() {
                Some('b') => c.tm.on_branch.is_some(),
                Some('f') => c.tm.on_failure.is_some(),
                Some('o') => c.tm.on_reply.is_some(),
                _ => false,
            };
            i(if set { 1 } else { -1 })
        }),
        export!("tm", "t_is_canceled", [], Int, |c, _| {
            i(if with_txn(c, |t| t.canceled).unwrap_or(false) {
                1
            } else {
                -1
            })
        }),
        export!("tm", "t_branch_timeout", [], Int, |c, _| {
            i(
                if c.route == RouteKind::Failure && c.tm.picked.is_some_and(|p| p.1) {
                    1
                } else {
                    -1
                },
            )
        }),
        export!("tm", "t_branch_replied", [], Int, |c, _| {
            i(
                if c.route == RouteKind::Failure && c.tm.picked.is_some_and(|p| p.2) {
                    1
                } else {
                    -1
                },
            )
        }),
        export!("tm", "t_check_status", [Str], Int, |c, a| {
            let Some(code) = route_status(c) else {
                return i(-1);
            };
            let re = regex::RegexBuilder::new(&format!("^(?:{})$", s(a, 0)))
                .case_insensitive(true)
                .build();
            i(match re {
                Ok(r) if r.is_match(&code.to_string()) => 1,
                _ => -1,
            })
        }),
        // The branch a branch (or onreply/failure) route runs for: `$T_branch_idx`
        // (kamailio-basic-kemi-jsdt.js logs it in its branch route).
        export!("tm", "t_get_branch_index", [], Int, |c, _| {
            i(c.tm.branch_idx as i64)
        }),
        // Kamailio's T_DISABLE_6xx: a 6xx no longer cancels the other branches.
        export!("tm", "t_set_disable_6xx", [Int], Int, |c, a| {
            c.tm.disable_6xx = n(a, 0) != 0;
            i(1)
        }),
        export!("tm", "t_get_status_code", [], Int, |c, _| {
            i(route_status(c)
                .filter(|c| *c > 0)
                .map(i64::from)
                .unwrap_or(-1))
        }),
        export!("tm", "t_set_fr", [Int, Int], Int, |c, a| {
            c.tm.fr_inv_ms = n(a, 0).max(0) as u64;
            c.tm.fr_ms = n(a, 1).max(0) as u64;
            i(1)
        }),
        export!("tm", "t_set_fr_inv", [Int], Int, |c, a| {
            c.tm.fr_inv_ms = n(a, 0).max(0) as u64;
            i(1)
        }),
        export!("tm", "t_reset_fr", [], Int, |c, _| {
            c.tm.fr_ms = 0;
            c.tm.fr_inv_ms = 0;
            i(1)
        }),
        export!("tm", "t_release", [], Int, |c, _| {
            if let Some(id) = c.txn.take() {
                c.env.tm.remove(id);
            }
            i(1)
        }),
        export!("tm", "t_lookup_cancel", [], Int, |c, _| {
            let key = request_key(&c.msg, &c.rcv, Some("INVITE"));
            i(if key.and_then(|k| c.env.tm.find(&k)).is_some() {
                1
            } else {
                -1
            })
        }),
        export!("tm", "t_load_contacts", [], Int, |c, _| i(load_contacts(c))),
        export!("tm", "t_next_contacts", [], Int, |c, _| i(next_contacts(c))),
        export!("tm", "t_drop_replies", [Str], Int, |c, _| {
            if let Some(txn) = c.txn.and_then(|id| c.env.tm.get(id)) {
                let mut t = lock(&txn);
                t.first_live_branch = t.branches.len();
            }
            i(1)
        }),
    ]
}

pub fn tmx_exports() -> Vec<Export> {
    vec![
        export!("tmx", "t_precheck_trans", [], Int, |c, _| {
            if !matches!(c.msg.method(), Some(m) if m != Method::Ack && m != Method::Cancel) {
                return i(-2);
            }
            let Some(key) = request_key(&c.msg, &c.rcv, None) else {
                return i(-2);
            };
            let mut set = lock(&c.env.tm.in_flight);
            if set.contains(&key) {
                return i(1);
            }
            set.insert(key.clone());
            c.tm.precheck_key = Some(key);
            i(-1)
        }),
        export!("tmx", "t_is_request_route", [], Int, |c, _| i(
            if c.route == RouteKind::Request { 1 } else { -1 }
        )),
        export!("tmx", "t_is_failure_route", [], Int, |c, _| i(
            if c.route == RouteKind::Failure { 1 } else { -1 }
        )),
        export!("tmx", "t_is_branch_route", [], Int, |c, _| i(
            if c.route == RouteKind::Branch { 1 } else { -1 }
        )),
        export!("tmx", "t_is_reply_route", [], Int, |c, _| {
            i(
                if matches!(c.route, RouteKind::Reply | RouteKind::TmReply) {
                    1
                } else {
                    -1
                },
            )
        }),
    ]
}

/// The proxy transaction layer driven without sockets, on tokio's paused (virtual) clock:
/// messages go in through the pipeline, what would be sent is recorded.
#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use crate::kemi::{Env, RecvInfo};
    use crate::net::Proto;
    use crate::proxy::pipeline::Router;
    use crate::testutil::{env, Recorder};

    const CALLER: &str = "127.0.0.1:5070";

    fn setup(script: &str) -> (Arc<Env>, Arc<Recorder>, Router) {
        let (env, rec) = env(
            &["udp:127.0.0.1:5060"],
            &["sl", "tm", "tmx", "corex", "maxfwd"],
            "[modparam.tm]\nfr_timer = 2000\nfr_inv_timer = 4000\n",
        );
        let path = std::env::temp_dir().join(format!("kemibox-tm-{}.lua", rand::random::<u64>()));
        std::fs::write(&path, script).expect("script");
        env.routing
            .load(
                &env,
                crate::engine::Source {
                    engine: "lua".into(),
                    path,
                    config: String::new(),
                },
            )
            .expect("load");
        (env.clone(), rec, Router::new(env))
    }

    fn feed(router: &Router, from: &str, text: &str) {
        let rcv = RecvInfo {
            proto: Proto::Udp,
            src: from.parse().expect("addr"),
            local: "127.0.0.1:5060".parse().expect("addr"),
            conn: None,
        };
        router.handle(Bytes::copy_from_slice(text.as_bytes()), rcv);
    }

    /// Lets the timer tasks that are due run.
    async fn advance(ms: u64) {
        for _ in 0..ms / 50 {
            tokio::time::advance(Duration::from_millis(50)).await;
            tokio::task::yield_now().await;
        }
    }

    fn sent_to(rec: &Recorder, to: &str) -> Vec<String> {
        let to: SocketAddr = to.parse().expect("addr");
        rec.sent
            .lock()
            .expect("lock")
            .iter()
            .filter(|(d, _)| d.addr == to)
            .map(|(_, b)| String::from_utf8_lossy(b).to_string())
            .collect()
    }

    fn first_lines(v: &[String]) -> Vec<String> {
        v.iter()
            .map(|m| m.lines().next().unwrap_or("").to_string())
            .collect()
    }

    fn invite(ruri: &str, tag: &str, extra: &str) -> String {
        format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK{tag}\r\nMax-Forwards: 70\r\n\
From: <sip:a@127.0.0.1>;tag={tag}\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: {tag}@vc\r\nCSeq: 1 INVITE\r\n\
{extra}Content-Length: 0\r\n\r\n"
        )
    }

    /// A UAS answer to a request the proxy sent.
    fn answer(req: &str, code: u16, reason: &str) -> String {
        let mut r = format!("SIP/2.0 {code} {reason}\r\n");
        for l in req.lines() {
            if ["Via:", "From:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
            {
                r.push_str(l);
                r.push_str("\r\n");
            } else if l.starts_with("To:") {
                r.push_str(l);
                r.push_str(";tag=uas\r\n");
            }
        }
        r.push_str("Content-Length: 0\r\n\r\n");
        r
    }

    const RELAY: &str = "function ksr_request_route()\n\
        if KSR.tm.t_check_trans() == 0 then KSR.x.exit() end\n\
        local b = KSR.pv.get('$hdr(X-Branch)')\n\
        if b ~= nil then KSR.corex.append_branch_uri(b) end\n\
        KSR.tm.t_on_failure('failed')\n\
        if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end\n\
        end\n\
        function failed()\n\
        if KSR.tm.t_branch_timeout() > 0 then KSR.tm.t_reply(480, 'Nobody Home') end\n\
        end\n";

    #[tokio::test(start_paused = true)]
    async fn retransmits_then_times_out_into_the_failure_route() {
        let (_env, rec, router) = setup(RELAY);
        feed(&router, CALLER, &invite("sip:b@127.0.0.1:5080", "t1", ""));
        assert_eq!(
            first_lines(&sent_to(&rec, CALLER)),
            vec!["SIP/2.0 100 trying -- your call is important to us"]
        );
        assert_eq!(sent_to(&rec, "127.0.0.1:5080").len(), 1);
        advance(600).await; // T1 = 500 ms
        assert_eq!(sent_to(&rec, "127.0.0.1:5080").len(), 2);
        advance(1000).await; // then 1 s later
        assert_eq!(sent_to(&rec, "127.0.0.1:5080").len(), 3);
        // A retransmitted INVITE from the caller is absorbed and the 100 sent again.
        feed(&router, CALLER, &invite("sip:b@127.0.0.1:5080", "t1", ""));
        assert_eq!(sent_to(&rec, "127.0.0.1:5080").len(), 3);
        assert_eq!(sent_to(&rec, CALLER).len(), 2);
        advance(600).await; // fr_timer = 2 s: the failure route answers
        let up = first_lines(&sent_to(&rec, CALLER));
        assert_eq!(
            up.last().map(String::as_str),
            Some("SIP/2.0 480 Nobody Home"),
            "{up:?}"
        );
        // Over UDP the 480 is retransmitted until the caller's ACK.
        advance(600).await;
        assert_eq!(
            first_lines(&sent_to(&rec, CALLER))
                .iter()
                .filter(|l| l.contains("480"))
                .count(),
            2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_race_and_a_late_200() {
        let (_env, rec, router) = setup(RELAY);
        let inv = invite("sip:b@127.0.0.1:5080", "c1", "");
        feed(&router, CALLER, &inv);
        let fwd = sent_to(&rec, "127.0.0.1:5080")[0].clone();
        feed(&router, "127.0.0.1:5080", &answer(&fwd, 180, "Ringing"));
        let cancel = inv
            .replacen("INVITE sip:", "CANCEL sip:", 1)
            .replace("1 INVITE", "1 CANCEL");
        feed(&router, CALLER, &cancel);
        let down = first_lines(&sent_to(&rec, "127.0.0.1:5080"));
        assert_eq!(
            down.last().map(String::as_str),
            Some("CANCEL sip:b@127.0.0.1:5080 SIP/2.0")
        );
        // The callee answered before it saw the CANCEL: its 200 still goes to the caller.
        feed(&router, "127.0.0.1:5080", &answer(&fwd, 200, "OK"));
        let up = first_lines(&sent_to(&rec, CALLER));
        assert!(up.contains(&"SIP/2.0 200 canceling".to_string()), "{up:?}");
        assert_eq!(
            up.last().map(String::as_str),
            Some("SIP/2.0 200 OK"),
            "{up:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn forked_responses_pick_the_best_and_ack_each_branch() {
        let (env, rec, router) = setup(RELAY);
        feed(
            &router,
            CALLER,
            &invite(
                "sip:b@127.0.0.1:5080",
                "f1",
                "X-Branch: sip:b@127.0.0.1:5090\r\n",
            ),
        );
        let b1 = sent_to(&rec, "127.0.0.1:5080")[0].clone();
        let b2 = sent_to(&rec, "127.0.0.1:5090")[0].clone();
        feed(&router, "127.0.0.1:5080", &answer(&b1, 486, "Busy Here"));
        // Nothing goes upstream while a branch is pending.
        assert_eq!(sent_to(&rec, CALLER).len(), 1);
        feed(&router, "127.0.0.1:5090", &answer(&b2, 603, "Decline"));
        let up = first_lines(&sent_to(&rec, CALLER));
        assert_eq!(
            up.last().map(String::as_str),
            Some("SIP/2.0 603 Decline"),
            "6xx beats 4xx: {up:?}"
        );
        for uas in ["127.0.0.1:5080", "127.0.0.1:5090"] {
            let l = first_lines(&sent_to(&rec, uas));
            assert!(
                l.last().is_some_and(|x| x.starts_with("ACK ")),
                "{uas}: {l:?}"
            );
        }
        // Once its timers have run out, the transaction and every index to it are gone.
        assert_ne!(env.tm.table_sizes(), (0, 0, 0));
        advance(100_000).await;
        assert_eq!(env.tm.table_sizes(), (0, 0, 0));
    }

    /// A 6xx cancels the other branches, unless `t_set_disable_6xx(1)`.
    #[tokio::test(start_paused = true)]
    async fn a_6xx_cancels_the_other_branches_unless_disabled() {
        for (disable, cancels) in [(false, true), (true, false)] {
            let script = if disable {
                RELAY.replacen(
                    "KSR.tm.t_on_failure('failed')",
                    "KSR.tm.t_set_disable_6xx(1)\nKSR.tm.t_on_failure('failed')",
                    1,
                )
            } else {
                RELAY.to_string()
            };
            let (_env, rec, router) = setup(&script);
            let tag = format!("d6{disable}");
            feed(
                &router,
                CALLER,
                &invite(
                    "sip:b@127.0.0.1:5080",
                    &tag,
                    "X-Branch: sip:b@127.0.0.1:5090\r\n",
                ),
            );
            let b1 = sent_to(&rec, "127.0.0.1:5080")[0].clone();
            let b2 = sent_to(&rec, "127.0.0.1:5090")[0].clone();
            feed(&router, "127.0.0.1:5090", &answer(&b2, 180, "Ringing"));
            feed(&router, "127.0.0.1:5080", &answer(&b1, 603, "Decline"));
            let l = first_lines(&sent_to(&rec, "127.0.0.1:5090"));
            assert_eq!(
                l.iter().any(|x| x.starts_with("CANCEL ")),
                cancels,
                "disable_6xx {disable}: {l:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_2xx_on_one_branch_cancels_the_others() {
        let (_env, rec, router) = setup(RELAY);
        feed(
            &router,
            CALLER,
            &invite(
                "sip:b@127.0.0.1:5080",
                "w1",
                "X-Branch: sip:b@127.0.0.1:5090\r\n",
            ),
        );
        let b1 = sent_to(&rec, "127.0.0.1:5080")[0].clone();
        let b2 = sent_to(&rec, "127.0.0.1:5090")[0].clone();
        feed(&router, "127.0.0.1:5090", &answer(&b2, 180, "Ringing"));
        feed(&router, "127.0.0.1:5080", &answer(&b1, 200, "OK"));
        let up = first_lines(&sent_to(&rec, CALLER));
        assert_eq!(up.last().map(String::as_str), Some("SIP/2.0 200 OK"));
        let l = first_lines(&sent_to(&rec, "127.0.0.1:5090"));
        assert_eq!(
            l.last().map(String::as_str),
            Some("CANCEL sip:b@127.0.0.1:5090 SIP/2.0"),
            "{l:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn serial_forking_by_q_with_t_next_contacts() {
        let script = "function ksr_request_route()\n\
            if KSR.tm.t_check_trans() == 0 then KSR.x.exit() end\n\
            KSR.corex.append_branch_uri_q('sip:b@127.0.0.1:5090', '0.5')\n\
            KSR.tm.t_load_contacts()\n\
            KSR.tm.t_next_contacts()\n\
            KSR.tm.t_on_failure('next')\n\
            KSR.tm.t_relay()\n\
            end\n\
            function next()\n\
            if KSR.tm.t_next_contacts() > 0 then KSR.tm.t_on_failure('next'); KSR.tm.t_relay() end\n\
            end\n";
        let (_env, rec, router) = setup(script);
        feed(&router, CALLER, &invite("sip:b@127.0.0.1:5080", "q1", ""));
        // The Request-URI's q is unspecified (-1, as in Kamailio): it ranks below the
        // q=0.5 branch, which is tried first.
        assert_eq!(sent_to(&rec, "127.0.0.1:5090").len(), 1);
        assert!(sent_to(&rec, "127.0.0.1:5080").is_empty());
        let b1 = sent_to(&rec, "127.0.0.1:5090")[0].clone();
        feed(&router, "127.0.0.1:5090", &answer(&b1, 486, "Busy Here"));
        let b2 = sent_to(&rec, "127.0.0.1:5080");
        assert_eq!(
            first_lines(&b2),
            vec!["INVITE sip:b@127.0.0.1:5080 SIP/2.0"]
        );
        feed(&router, "127.0.0.1:5080", &answer(&b2[0], 200, "OK"));
        let up = first_lines(&sent_to(&rec, CALLER));
        assert_eq!(
            up.last().map(String::as_str),
            Some("SIP/2.0 200 OK"),
            "{up:?}"
        );
        assert!(
            !up.iter().any(|l| l.contains("486")),
            "the first leg's 486 never went upstream: {up:?}"
        );
    }

    const ONSEND: &str = "function ksr_request_route()\n\
        if KSR.tm.t_check_trans() == 0 then KSR.x.exit() end\n\
        local b = KSR.pv.get('$hdr(X-Branch)')\n\
        if b ~= nil then KSR.corex.append_branch_uri(b) end\n\
        local r = KSR.tm.t_relay()\n\
        KSR.htable.sht_seti('snd', 'relay', r)\n\
        if r < 0 then KSR.sl.sl_reply_error() end\n\
        end\n\
        function ksr_onsend_route()\n\
        local k = KSR.pv.get('$snd(ip)') .. ':' .. KSR.pv.get('$snd(port)')\n\
        KSR.htable.sht_sets('snd', k, KSR.pv.get('$snd(sproto)') .. '/' .. KSR.pv.get('$snd(proto)')\n\
          .. '/' .. KSR.pv.get('$snd(af)') .. '/' .. KSR.pv.get('$sndfrom(ip)') .. ':' .. KSR.pv.get('$sndfrom(port)')\n\
          .. '/' .. tostring(KSR.pv.get('$rs')) .. '/' .. tostring(KSR.pv.get('$snd(len)') == #KSR.pv.get('$snd(buf)')))\n\
        KSR.htable.sht_inc('snd', 'n')\n\
        if KSR.pv.get('$snd(port)') == 5090 then KSR.x.drop() end\n\
        end\n";

    fn setup_onsend(script: &str) -> (Arc<Env>, Arc<Recorder>, Router) {
        let (env, rec) = env(
            &["udp:127.0.0.1:5060"],
            &["sl", "tm", "tmx", "corex", "htable"],
            "[modparam.tm]\nfr_timer = 2000\nfr_inv_timer = 4000\n\
             [modparam.htable]\nhtable = \"snd=>size=8\"\n",
        );
        let path = std::env::temp_dir().join(format!("kemibox-tm-{}.lua", rand::random::<u64>()));
        std::fs::write(&path, script).expect("script");
        env.routing
            .load(
                &env,
                crate::engine::Source {
                    engine: "lua".into(),
                    path,
                    config: String::new(),
                },
            )
            .expect("load");
        (env.clone(), rec, Router::new(env))
    }

    fn sht(env: &Env, key: &str) -> Option<crate::kemi::Val> {
        env.htables.get("snd", key)
    }

    /// The onsend route sees the first send of each branch (not its retransmissions) and
    /// the relayed reply; a dropped branch is never sent and does not compete.
    #[tokio::test(start_paused = true)]
    async fn onsend_sees_each_branch_once_and_a_drop_stops_that_branch() {
        use crate::kemi::Val;
        let (env, rec, router) = setup_onsend(ONSEND);
        feed(
            &router,
            CALLER,
            &invite(
                "sip:b@127.0.0.1:5080",
                "o1",
                "X-Branch: sip:c@127.0.0.1:5090\r\n",
            ),
        );
        assert_eq!(sht(&env, "relay"), Some(Val::Int(1)));
        assert_eq!(sent_to(&rec, "127.0.0.1:5080").len(), 1);
        assert!(sent_to(&rec, "127.0.0.1:5090").is_empty(), "dropped");
        assert_eq!(
            sht(&env, "127.0.0.1:5080"),
            Some(Val::Str("udp/1/2/127.0.0.1:5060/nil/true".into()))
        );
        assert!(sht(&env, "127.0.0.1:5090").is_some());
        assert_eq!(sht(&env, "n"), Some(Val::Int(2)));
        assert_eq!(env.stats.get("onsend_drops"), Some(1));
        advance(600).await; // a retransmission: no onsend route
        assert_eq!(sent_to(&rec, "127.0.0.1:5080").len(), 2);
        assert_eq!(sht(&env, "n"), Some(Val::Int(2)));
        // The one sent branch answers: its 486 goes upstream (the dropped one never
        // competes), through the onsend route, on the reply.
        let fwd = sent_to(&rec, "127.0.0.1:5080")[0].clone();
        feed(&router, "127.0.0.1:5080", &answer(&fwd, 486, "Busy Here"));
        let up = first_lines(&sent_to(&rec, CALLER));
        assert_eq!(
            up.last().map(String::as_str),
            Some("SIP/2.0 486 Busy Here"),
            "{up:?}"
        );
        assert_eq!(
            sht(&env, "127.0.0.1:5070"),
            Some(Val::Str("udp/1/2/127.0.0.1:5060/486/true".into()))
        );
    }

    /// Every branch dropped: t_relay returns -1 and the caller gets tm's 477.
    #[tokio::test(start_paused = true)]
    async fn all_branches_dropped_answers_477() {
        use crate::kemi::Val;
        let (env, rec, router) = setup_onsend(ONSEND);
        feed(&router, CALLER, &invite("sip:b@127.0.0.1:5090", "o2", ""));
        assert!(sent_to(&rec, "127.0.0.1:5090").is_empty());
        assert_eq!(sht(&env, "relay"), Some(Val::Int(-1)));
        let up = first_lines(&sent_to(&rec, CALLER));
        assert_eq!(
            up.last().map(String::as_str),
            Some("SIP/2.0 477 Unfortunately error on sending to next hop occurred (477/TM)"),
            "{up:?}"
        );
    }

    /// Stateless: a dropped forward makes KSR.forward() return -1; nothing is sent.
    /// A script without an onsend route never runs one.
    #[tokio::test(start_paused = true)]
    async fn stateless_forward_drop_and_no_route_no_call() {
        use crate::kemi::Val;
        let script = "function ksr_request_route()\n\
            KSR.htable.sht_seti('snd', 'fwd', KSR.forward())\n\
            end\n\
            function ksr_onsend_route()\n\
            KSR.htable.sht_inc('snd', 'n')\n\
            if KSR.pv.get('$snd(port)') == 5090 then KSR.set_drop() end\n\
            end\n";
        let (env, rec, router) = setup_onsend(script);
        let opt = |port: u16, tag: &str| {
            invite(&format!("sip:b@127.0.0.1:{port}"), tag, "").replace("INVITE", "OPTIONS")
        };
        feed(&router, CALLER, &opt(5080, "s1"));
        assert_eq!(sht(&env, "fwd"), Some(Val::Int(1)));
        assert_eq!(sent_to(&rec, "127.0.0.1:5080").len(), 1);
        feed(&router, CALLER, &opt(5090, "s2"));
        assert_eq!(sht(&env, "fwd"), Some(Val::Int(-1)));
        assert!(sent_to(&rec, "127.0.0.1:5090").is_empty());
        assert_eq!(sht(&env, "n"), Some(Val::Int(2)));
        // Outside an onsend route, $snd(..) is $null.
        let (env2, _, router2) = setup_onsend(
            "function ksr_request_route()\n\
             KSR.htable.sht_sets('snd', 'ip', tostring(KSR.pv.get('$snd(ip)')))\n\
             KSR.forward()\n\
             end\n",
        );
        let v = env2.routing.current().expect("version");
        assert!(!v.onsend.load(std::sync::atomic::Ordering::Relaxed));
        feed(&router2, CALLER, &opt(5080, "s3"));
        assert_eq!(sht(&env2, "ip"), Some(Val::Str("nil".into())));
    }

    /// A relayed reply the onsend route drops is not sent, nor resent when the caller
    /// retransmits its request.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_relayed_reply_is_never_sent() {
        let script = "function ksr_request_route()\n\
            if KSR.tm.t_check_trans() == 0 then KSR.x.exit() end\n\
            KSR.tm.t_relay()\n\
            end\n\
            function ksr_onsend_route()\n\
            if KSR.pv.get('$rs') == 486 then KSR.set_drop() end\n\
            end\n";
        let (env, rec, router) = setup_onsend(script);
        let inv = invite("sip:b@127.0.0.1:5080", "o3", "");
        feed(&router, CALLER, &inv);
        let fwd = sent_to(&rec, "127.0.0.1:5080")[0].clone();
        feed(&router, "127.0.0.1:5080", &answer(&fwd, 180, "Ringing"));
        feed(&router, "127.0.0.1:5080", &answer(&fwd, 486, "Busy Here"));
        feed(&router, CALLER, &inv);
        advance(2000).await;
        let up = first_lines(&sent_to(&rec, CALLER));
        assert!(up.iter().any(|l| l.contains("180")), "{up:?}");
        assert!(!up.iter().any(|l| l.contains("486")), "{up:?}");
        assert_eq!(env.stats.get("onsend_drops"), Some(1));
    }
}
