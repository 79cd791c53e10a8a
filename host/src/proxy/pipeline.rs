//! The receive pipeline: parse, validate, run the routing script, forward replies.

use std::sync::Arc;

use bytes::Bytes;

use crate::engine::{run_route, Outcome};
use crate::kemi::{Ctx, Env, RecvInfo, RouteKind};
use crate::sip::{HdrName, Message, Method};
use crate::stats::Stats;

use super::forward::{forward_reply, ReplyFwdError};
use super::reply::{is_ack_to_sl_reply, send_reply};

pub const REQUEST_ROUTE: &str = "ksr_request_route";
pub const REPLY_ROUTE: &str = "ksr_reply_route";

/// Routes every received message through the script.
pub struct Router {
    env: Arc<Env>,
    /// The reply to a request whose route failed (`routing.error_reply`).
    error_reply: (u16, String),
    /// sl is loaded: it absorbs ACKs to its own negative replies (Kamailio's
    /// `sl_filter_ACK`).
    absorb_sl_acks: bool,
}

impl Router {
    pub fn new(env: Arc<Env>) -> Router {
        let error_reply = env.cfg.error_reply();
        let absorb_sl_acks = env.registry.has_module("sl");
        Router {
            env,
            error_reply,
            absorb_sl_acks,
        }
    }

    pub fn env(&self) -> &Arc<Env> {
        &self.env
    }

    pub fn handle(&self, data: Bytes, rcv: RecvInfo) {
        let stats = &self.env.stats;
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                Stats::inc(&stats.parse_errors);
                tracing::debug!(src = %rcv.src, "dropped unparsable message: {e}");
                return;
            }
        };
        if msg.is_request() {
            Stats::inc(&stats.rcv_requests);
            self.request(msg, rcv);
        } else {
            Stats::inc(&stats.rcv_replies);
            self.reply(msg, rcv);
        }
    }

    fn request(&self, mut msg: Message, rcv: RecvInfo) {
        let invalid = msg.check().err();
        let mut ctx = Ctx::new(self.env.clone(), msg, rcv, RouteKind::Request);
        if let Some(inv) = invalid {
            Stats::inc(&self.env.stats.invalid_requests);
            tracing::debug!(src = %rcv.src, "invalid request: {inv}");
            // A reply needs a Via to travel back on; ACKs are never answered.
            if ctx.msg.header(HdrName::Via).is_some() && ctx.msg.method() != Some(Method::Ack) {
                let _ = send_reply(&mut ctx, inv.code, inv.reason);
            }
            return;
        }
        if self.absorb_sl_acks && is_ack_to_sl_reply(&ctx) {
            Stats::inc(&self.env.stats.sl_acks_absorbed);
            return;
        }
        if rcv.proto.is_stream() {
            // Replies must find this connection again: record the source port (RFC 3581).
            ctx.force_rport = true;
        }
        if let Some((mut ctx, outcome)) = run_route(&self.env, ctx, REQUEST_ROUTE) {
            crate::modules::tm::after_request_route(&mut ctx);
            if let Outcome::Error(e) = outcome {
                Stats::inc(&self.env.stats.script_errors);
                tracing::error!(
                    callid = ctx.msg.call_id().unwrap_or(""),
                    "error from the routing script or plugin: {e}"
                );
                if !ctx.final_replied && ctx.msg.method() != Some(Method::Ack) {
                    let (code, reason) = &self.error_reply;
                    let _ = send_reply(&mut ctx, *code, reason);
                }
            }
        }
    }

    fn reply(&self, mut msg: Message, rcv: RecvInfo) {
        if let Err(inv) = msg.check() {
            Stats::inc(&self.env.stats.invalid_replies);
            tracing::debug!(src = %rcv.src, "invalid reply dropped: {inv}");
            return;
        }
        let ctx = Ctx::new(self.env.clone(), msg, rcv, RouteKind::Reply);
        let mut ctx = match run_route(&self.env, ctx, REPLY_ROUTE) {
            Some((ctx, Outcome::Done | Outcome::Missing)) => ctx,
            Some((ctx, Outcome::Error(e))) => {
                Stats::inc(&self.env.stats.script_errors);
                tracing::warn!(
                    callid = ctx.msg.call_id().unwrap_or(""),
                    "error while trying onreply script: {e}"
                );
                return;
            }
            None => return,
        };
        if ctx.drop {
            Stats::inc(&self.env.stats.drops);
            return;
        }
        if crate::modules::tm::on_reply(&self.env, ctx.msg.clone()) {
            return;
        }
        match forward_reply(&mut ctx) {
            Ok(()) => {}
            Err(ReplyFwdError::NotOurs) => {
                Stats::inc(&self.env.stats.drops);
                tracing::debug!("reply whose top Via is not ours dropped");
            }
            Err(e) => tracing::debug!("reply not forwarded: {e}"),
        }
    }
}
