//! Transports over real sockets: UDP, TCP, TLS (rustls), WebSocket and secure WebSocket
//! (RFC 7118), IPv4 and IPv6, several listen sockets at once, and the connection table.

mod conn;
pub mod dns;
mod stream;
pub mod tls;
mod udp;
mod ws;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use std::net::UdpSocket;
use thiserror::Error;

use crate::config::Config;
use crate::kemi::RecvInfo;
use crate::net::{Dest, Egress, Listener, Net, Proto, SendError};
use crate::stats::Stats;

pub use conn::ConnTable;

/// Receives every message read off a socket.
pub type Dispatch = Arc<dyn Fn(Bytes, RecvInfo) + Send + Sync>;

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("cannot listen on {proto:?} {addr}: {err}")]
    Bind {
        proto: Proto,
        addr: SocketAddr,
        err: String,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("DNS resolver: {0}")]
    Dns(String),
    #[error("cannot start the UDP readers: {0}")]
    Readers(String),
}

/// Limits on stream connections.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    pub idle: Duration,
    pub message: Duration,
    pub max_conns: usize,
}

/// All sockets of the server.
pub struct Transports {
    listeners: Vec<Listener>,
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    pub(crate) conns: ConnTable,
    egress: Egress,
    resolver: dns::Resolver,
    tls: Option<tls::TlsContext>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) limits: StreamLimits,
    dispatch: OnceLock<Dispatch>,
    /// Stream connections accepted or being opened and not yet closed (the cap counts
    /// these, not only the registered ones, so a burst of accepts cannot overshoot).
    pub(crate) active: std::sync::atomic::AtomicUsize,
    /// Self-reference for tasks spawned from `&self` (outbound connects).
    me: OnceLock<Weak<Transports>>,
}

impl Transports {
    /// Binds every listen socket of the config (nothing is read until `start`).
    pub async fn bind(cfg: &Config, stats: Arc<Stats>) -> Result<Arc<Transports>, TransportError> {
        let tls = match &cfg.tls {
            Some(t) => Some(tls::TlsContext::load_with_ca(
                &cfg.resolve(&t.certificate),
                &cfg.resolve(&t.private_key),
                t.ca_list.as_ref().map(|p| cfg.resolve(p)).as_deref(),
            )?),
            None => None,
        };
        let mut listeners = Vec::new();
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for spec in &cfg.listen {
            let bind_err = |e: std::io::Error| TransportError::Bind {
                proto: spec.proto,
                addr: spec.addr,
                err: e.to_string(),
            };
            let local = match spec.proto {
                Proto::Udp => {
                    let s = udp::bind(spec.addr).map_err(bind_err)?;
                    let local = s.local_addr().map_err(bind_err)?;
                    udp.push((local, Arc::new(s)));
                    local
                }
                _ => {
                    let l = stream::bind(spec.addr).map_err(bind_err)?;
                    let local = l.local_addr().map_err(bind_err)?;
                    tcp.push((spec.proto, l));
                    local
                }
            };
            listeners.push(Listener {
                proto: spec.proto,
                addr: local,
                advertise: spec.advertise.clone(),
            });
        }
        let t = Arc::new(Transports {
            listeners,
            udp,
            conns: ConnTable::default(),
            egress: Egress {
                allow: cfg.egress.clone(),
            },
            resolver: dns::Resolver::new(cfg.dns.hosts_only, &cfg.dns.servers)?,
            tls,
            stats,
            limits: StreamLimits {
                idle: Duration::from_secs(cfg.core.tcp_idle_timeout.max(1)),
                message: Duration::from_secs(cfg.core.tcp_message_timeout.max(1)),
                max_conns: cfg.core.tcp_max_connections,
            },
            dispatch: OnceLock::new(),
            active: std::sync::atomic::AtomicUsize::new(0),
            me: OnceLock::new(),
        });
        let _ = t.me.set(Arc::downgrade(&t));
        for (proto, l) in tcp {
            stream::spawn_accept(t.clone(), proto, l);
        }
        Ok(t)
    }

    /// Starts reading: every message goes to `dispatch`. `readers` threads per UDP
    /// socket. Must be called inside the runtime that the routing spawns its tasks on.
    pub fn start(
        self: &Arc<Self>,
        dispatch: Dispatch,
        readers: usize,
    ) -> Result<(), TransportError> {
        let _ = self.dispatch.set(dispatch);
        let rt = tokio::runtime::Handle::current();
        let alive = Arc::new(udp::Alive::new());
        let mut n = 0;
        for (local, sock) in &self.udp {
            for _ in 0..readers.max(1) {
                udp::spawn_reader(self, sock.clone(), *local, rt.clone(), alive.clone(), n)
                    .map_err(|e| TransportError::Readers(e.to_string()))?;
                n += 1;
            }
        }
        Ok(())
    }

    pub(crate) fn dispatch(&self, data: Bytes, rcv: RecvInfo) {
        if let Some(d) = self.dispatch.get() {
            d(data, rcv);
        }
    }

    pub(crate) fn tls(&self) -> Option<&tls::TlsContext> {
        self.tls.as_ref()
    }

    fn udp_for(&self, dest: &SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.udp
            .iter()
            .find(|(l, _)| l.is_ipv6() == dest.is_ipv6())
            .map(|(_, s)| s)
    }

    /// Number of open stream connections.
    pub fn connection_count(&self) -> usize {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Net for Transports {
    fn send(&self, dest: &Dest, data: Bytes) -> Result<(), SendError> {
        if !self.egress.allows(dest.addr.ip()) {
            return Err(SendError::Denied(dest.addr.ip()));
        }
        match dest.proto {
            Proto::Udp => {
                let sock = self.udp_for(&dest.addr).ok_or(SendError::NoSocket(
                    Proto::Udp,
                    if dest.addr.is_ipv6() { "IPv6" } else { "IPv4" },
                ))?;
                match udp::send_to(sock, &data, dest.addr) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // The send buffer is full: wait for room off the caller's thread.
                        let sock = sock.clone();
                        let addr = dest.addr;
                        tokio::task::spawn_blocking(move || {
                            let _ = sock.send_to(&data, addr);
                        });
                        Ok(())
                    }
                    Err(e) => Err(SendError::Io(e.to_string())),
                }
            }
            proto => {
                let found = dest
                    .conn
                    .and_then(|id| self.conns.get(id))
                    .or_else(|| self.conns.by_peer(proto, dest.addr))
                    .or_else(|| self.conns.by_peer_any(dest.addr));
                if let Some(c) = found {
                    return c.send(data, dest.close);
                }
                if dest.no_connect || matches!(proto, Proto::Ws | Proto::Wss) {
                    return Err(SendError::NoConnection(dest.addr));
                }
                let me = self
                    .me
                    .get()
                    .and_then(Weak::upgrade)
                    .ok_or_else(|| SendError::Io("shutting down".into()))?;
                stream::connect_and_send(me, proto, dest.addr, data);
                Ok(())
            }
        }
    }

    fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    fn egress_allows(&self, ip: std::net::IpAddr) -> bool {
        self.egress.allows(ip)
    }

    fn resolve(
        &self,
        host: &str,
        port: Option<u16>,
        proto: Option<Proto>,
        secure: bool,
    ) -> Result<(Proto, SocketAddr), SendError> {
        self.resolver.resolve(host, port, proto, secure)
    }
}
