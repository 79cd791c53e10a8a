//! `Ctx`: the per-message state a KEMI function works on, and `Env`, what it may reach.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::Config;
use crate::net::{Net, Proto};
use crate::sip::lump::Lumps;
use crate::sip::{HdrName, Message};
use crate::stats::Stats;

use super::{Registry, Val};

/// Where and how a message arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvInfo {
    pub proto: Proto,
    pub src: SocketAddr,
    pub local: SocketAddr,
    /// Connection id for stream transports.
    pub conn: Option<u64>,
}

/// Which event route is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    Request,
    /// The core reply route (`ksr_reply_route`).
    Reply,
    /// The onsend route (`ksr_onsend_route`): a message is about to be sent; `Ctx::snd`
    /// says where.
    Onsend,
    /// A transaction's failure route (`t_on_failure`).
    Failure,
    /// A transaction's reply route (`t_on_reply`).
    TmReply,
    /// A transaction's branch route (`t_on_branch`).
    Branch,
}

/// The send an onsend route runs for: what `$snd(..)`, `$sndto(..)` and `$sndfrom(..)`
/// read (Kamailio's `onsend_info_t`).
#[derive(Clone, Debug)]
pub struct SendInfo {
    /// Transport of the send.
    pub proto: Proto,
    /// Where the message goes.
    pub to: SocketAddr,
    /// The local socket it leaves from.
    pub from: SocketAddr,
    /// The message as it will be sent.
    pub buf: Bytes,
}

/// tm state a message carries before (and while) it has a transaction.
#[derive(Clone, Debug, Default)]
pub struct TmPending {
    pub on_failure: Option<String>,
    pub on_branch: Option<String>,
    pub on_reply: Option<String>,
    /// `t_set_fr(fr_inv_ms, fr_ms)`; 0 keeps the default.
    pub fr_inv_ms: u64,
    pub fr_ms: u64,
    /// In a failure route: the picked reply (code, branch timed out, branch replied).
    pub picked: Option<(u16, bool, bool)>,
    /// `tmx.t_precheck_trans` registered this request as being processed.
    pub precheck_key: Option<String>,
    /// `$T_branch_idx`: the branch a branch route runs for.
    pub branch_idx: usize,
    /// `t_set_disable_6xx`: a 6xx is a negative reply like any other (it does not cancel
    /// the other branches).
    pub disable_6xx: bool,
}

/// Everything shared by all messages: configuration, registry, network, counters.
pub struct Env {
    pub cfg: Arc<Config>,
    pub registry: Registry,
    pub net: Arc<dyn Net>,
    pub stats: Arc<Stats>,
    /// The fixed first part of the To-tag of stateless replies (per process start).
    pub sl_tag_prefix: String,
    /// The location service (registrar/usrloc); memory-only unless configured.
    pub usrloc: Arc<crate::modules::usrloc::Usrloc>,
    /// The transaction table (tm).
    pub tm: Arc<crate::modules::tm::Tm>,
    pub htables: Arc<crate::modules::htable::Htables>,
    pub acc: Arc<crate::modules::acc::Acc>,
    pub permissions: Arc<crate::modules::permissions::Permissions>,
    pub pike: Arc<crate::modules::pike::Pike>,
    /// Digest nonces (auth) and the subscriber database (auth_db).
    pub nonces: Arc<crate::modules::auth::Nonces>,
    pub subscribers: Arc<crate::modules::auth_db::Subscribers>,
    /// The loaded routing versions (the current one and those finishing transactions).
    pub routing: crate::engine::Routings,
}

/// Per-message state.
pub struct Ctx {
    pub env: Arc<Env>,
    pub msg: Message,
    pub lumps: Lumps,
    /// Header lines added to locally generated replies (`hdr.append_to_reply`).
    pub reply_lumps: Vec<String>,
    /// Body (and its Content-Type) for locally generated replies.
    pub reply_body: Option<(String, Bytes)>,
    pub rcv: RecvInfo,
    pub route: RouteKind,
    /// The Request-URI after seturi/setuser/... (Kamailio's `new_uri`).
    pub new_uri: Option<String>,
    /// The q value of the Request-URI (Kamailio's `ruri_q`, set by `lookup`), as printed
    /// in a redirect's Contact; `None`: unspecified.
    pub ruri_q: Option<String>,
    pub dst_uri: Option<String>,
    pub flags: u32,
    pub bflags: u32,
    pub sflags: u32,
    pub force_rport: bool,
    pub fwd_no_connect: bool,
    pub fwd_close: bool,
    pub reply_no_connect: bool,
    pub reply_close: bool,
    /// `set_drop`/`x.drop`: a reply in reply_route is not forwarded.
    pub drop: bool,
    /// A final reply was sent from the script.
    pub final_replied: bool,
    pub avps: Vec<(String, Val)>,
    pub xavps: HashMap<String, Vec<Vec<(String, Val)>>>,
    /// `$var(..)`: per-worker script variables, lent to the message while it runs.
    pub vars: HashMap<String, Val>,
    /// Extra branches from `corex.append_branch*` and `lookup` (uri, q as printed).
    pub branches: Vec<(String, Option<String>)>,
    /// Error to report by `sl_reply_error` (code, reason).
    pub last_error: Option<(u16, &'static str)>,
    /// The transaction this message belongs to (tm).
    pub txn: Option<u64>,
    pub tm: TmPending,
    /// Credentials `auth_check` accepted (the header line, and the user).
    pub auth_header: Option<crate::sip::Span>,
    pub auth_user: Option<String>,
    /// `nathelper.fix_nated_register`: the source to store as the contact's `received`.
    pub received: Option<String>,
    /// `rr`: the Record-Route requested for this request (rendered when it is forwarded,
    /// once the outgoing socket is known) and the buffered `add_rr_param` params.
    pub rr: Option<crate::modules::rr::RecordRoute>,
    /// `rr`: parameters (with the leading `;`) of our Route entry that `loose_route`
    /// consumed (after a strict router: the R-URI's, without it), for
    /// `check_route_param` and `is_direction`.
    pub route_params: Option<String>,
    /// The routing version this message runs on (taken when it arrived; kept by its
    /// transaction for the failure, branch and reply routes).
    pub version: Option<Arc<crate::engine::Version>>,
    /// In an onsend route: the send about to happen.
    pub snd: Option<Box<SendInfo>>,
}

impl Ctx {
    pub fn new(env: Arc<Env>, msg: Message, rcv: RecvInfo, route: RouteKind) -> Ctx {
        Ctx {
            env,
            msg,
            lumps: Lumps::default(),
            reply_lumps: Vec::new(),
            reply_body: None,
            rcv,
            route,
            new_uri: None,
            ruri_q: None,
            dst_uri: None,
            flags: 0,
            bflags: 0,
            sflags: 0,
            force_rport: false,
            fwd_no_connect: false,
            fwd_close: false,
            reply_no_connect: false,
            reply_close: false,
            drop: false,
            final_replied: false,
            avps: Vec::new(),
            xavps: HashMap::new(),
            vars: HashMap::new(),
            branches: Vec::new(),
            last_error: None,
            txn: None,
            tm: TmPending::default(),
            auth_header: None,
            auth_user: None,
            received: None,
            rr: None,
            route_params: None,
            version: None,
            snd: None,
        }
    }

    /// The current Request-URI: the rewritten one, else the request line's.
    pub fn ruri(&self) -> Option<&str> {
        match &self.new_uri {
            Some(u) => Some(u.as_str()),
            None => self.msg.ruri(),
        }
    }

    /// The next-hop URI: `$du` when set, else the Request-URI.
    pub fn nh_uri(&self) -> Option<&str> {
        match &self.dst_uri {
            Some(u) => Some(u.as_str()),
            None => self.ruri(),
        }
    }

    /// URI of a name-addr header (From/To/first Contact).
    pub fn hdr_uri(&self, name: HdrName) -> Option<&str> {
        let h = self.msg.header(name)?;
        let v = crate::sip::hdr::first_in_list(&self.msg, h.value);
        crate::sip::hdr::parse_name_addr(self.msg.text(v))
            .ok()
            .map(|n| n.uri)
    }

    /// A copy for another route on the same request (failure or branch route): the
    /// message and the script's changes, flags and variables.
    pub fn fork(&self, route: RouteKind) -> Ctx {
        let mut c = Ctx::new(self.env.clone(), self.msg.clone(), self.rcv, route);
        c.lumps = self.lumps.clone();
        c.new_uri = self.new_uri.clone();
        c.ruri_q = self.ruri_q.clone();
        c.dst_uri = self.dst_uri.clone();
        c.flags = self.flags;
        c.bflags = self.bflags;
        c.force_rport = self.force_rport;
        c.avps = self.avps.clone();
        c.xavps = self.xavps.clone();
        c.txn = self.txn;
        c.tm = self.tm.clone();
        c.rr = self.rr.clone();
        c.route_params = self.route_params.clone();
        c.version = self.version.clone();
        c
    }

    pub fn is_reply(&self) -> bool {
        !self.msg.is_request()
    }
}
