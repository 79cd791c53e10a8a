//! Test doubles shared by unit tests: a recording `Net`, an `Env` from a TOML snippet,
//! and a `Ctx` for a message text.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::config::Config;
use crate::kemi::{Ctx, Env, RecvInfo, Registry, RouteKind};
use crate::net::{Dest, Listener, Net, Proto, SendError};
use crate::sip::Message;
use crate::stats::Stats;

/// Records what would be sent; resolves IP literals only.
pub struct Recorder {
    pub listeners: Vec<Listener>,
    pub sent: Mutex<Vec<(Dest, Bytes)>>,
}

impl Recorder {
    /// The texts sent so far.
    pub fn texts(&self) -> Vec<String> {
        self.sent
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(_, d)| String::from_utf8_lossy(d).to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Net for Recorder {
    fn send(&self, dest: &Dest, data: Bytes) -> Result<(), SendError> {
        self.sent
            .lock()
            .map_err(|_| SendError::Io("lock".into()))?
            .push((*dest, data));
        Ok(())
    }
    fn listeners(&self) -> &[Listener] {
        &self.listeners
    }
    fn resolve(
        &self,
        host: &str,
        port: Option<u16>,
        proto: Option<Proto>,
        _: bool,
    ) -> Result<(Proto, SocketAddr), SendError> {
        let ip = host.parse().map_err(|_| SendError::Resolve(host.into()))?;
        Ok((
            proto.unwrap_or(Proto::Udp),
            SocketAddr::new(ip, port.unwrap_or(5060)),
        ))
    }
}

/// A listener from `"udp:127.0.0.1:5060"`.
pub fn listener(spec: &str) -> Listener {
    let (proto, addr) = spec.split_once(':').expect("proto:addr");
    Listener {
        proto: Proto::parse(proto).expect("proto"),
        addr: addr.parse().expect("addr"),
        advertise: None,
    }
}

/// An `Env` whose config is `[core]` with these listeners plus `extra` TOML (modparams),
/// and a recording network.
pub fn env(listen: &[&str], modules: &[&str], extra: &str) -> (Arc<Env>, Arc<Recorder>) {
    let dir = std::env::temp_dir().join(format!(
        "kemibox-unit-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let script = dir.join("s.lua");
    std::fs::write(&script, "").expect("script");
    let l: Vec<String> = listen.iter().map(|s| format!("\"{s}\"")).collect();
    let m: Vec<String> = modules.iter().map(|s| format!("\"{s}\"")).collect();
    let cfg = Config::from_str(
        &format!(
            "[core]\nlisten=[{}]\nmodules=[{}]\n[routing]\nengine=\"lua\"\nscript=\"{}\"\n{extra}\n",
            l.join(","),
            m.join(","),
            script.display()
        ),
        "t.toml",
        dir,
    )
    .expect("config");
    use crate::modules::{acc, auth, auth_db, htable, pike, tm, usrloc};
    let rec = Arc::new(Recorder {
        listeners: listen.iter().map(|s| listener(s)).collect(),
        sent: Mutex::new(Vec::new()),
    });
    let env = Arc::new(Env {
        registry: Registry::build(&cfg.modules()).expect("registry"),
        net: rec.clone(),
        stats: Arc::new(Stats::default()),
        sl_tag_prefix: "0123456789abcdef0123456789abcdef".into(),
        usrloc: Arc::new(usrloc::Usrloc::in_memory()),
        tm: Arc::new(tm::Tm::from_config(&cfg)),
        nonces: Arc::new(auth::Nonces::from_config(&cfg)),
        htables: Arc::new(htable::Htables::from_config(&cfg).expect("htable")),
        pike: Arc::new(pike::Pike::from_config(&cfg)),
        acc: Arc::new(acc::Acc::from_config(&cfg).expect("acc")),
        permissions: Arc::new(crate::modules::permissions::Permissions::default()),
        subscribers: Arc::new(auth_db::Subscribers::from_config(&cfg).expect("no db")),
        routing: Default::default(),
        cfg: Arc::new(cfg),
    });
    (env, rec)
}

/// A request context for `text` received over `proto` on `local` from 127.0.0.1:5070.
pub fn ctx(env: &Arc<Env>, text: &str, proto: Proto, local: &str) -> Ctx {
    let msg = Message::parse(Bytes::copy_from_slice(text.as_bytes())).expect("parse");
    let rcv = RecvInfo {
        proto,
        src: "127.0.0.1:5070".parse().expect("addr"),
        local: local.parse().expect("addr"),
        conn: None,
    };
    Ctx::new(env.clone(), msg, rcv, RouteKind::Request)
}
