//! What the routing core needs from the network, as a trait: sending, listen addresses,
//! name resolution. `transport::Transports` implements it over real sockets; unit tests of
//! modules use a recording double.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use ipnet::IpNet;
use thiserror::Error;

/// SIP transport protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Proto {
    /// Lower-case name as in `$pr` and `transport=` URI parameters.
    pub fn lower(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
            Proto::Ws => "ws",
            Proto::Wss => "wss",
        }
    }
    /// Name in a Via header (RFC 7118 uses WS/WSS).
    pub fn via_name(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
            Proto::Tls => "TLS",
            Proto::Ws => "WS",
            Proto::Wss => "WSS",
        }
    }
    pub fn parse(s: &str) -> Option<Proto> {
        Some(match s.to_ascii_lowercase().as_str() {
            "udp" => Proto::Udp,
            "tcp" => Proto::Tcp,
            "tls" => Proto::Tls,
            "ws" => Proto::Ws,
            "wss" => Proto::Wss,
            _ => return None,
        })
    }
    pub fn is_stream(self) -> bool {
        self != Proto::Udp
    }
    pub fn is_secure(self) -> bool {
        matches!(self, Proto::Tls | Proto::Wss)
    }
    /// Kamailio's protocol ids (`kx.get_protoid`).
    pub fn id(self) -> i64 {
        match self {
            Proto::Udp => 1,
            Proto::Tcp => 2,
            Proto::Tls => 3,
            Proto::Ws => 5,
            Proto::Wss => 6,
        }
    }
    pub fn default_port(self) -> u16 {
        match self {
            Proto::Tls | Proto::Wss => 5061,
            _ => 5060,
        }
    }
}

/// Where to send a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dest {
    pub proto: Proto,
    pub addr: SocketAddr,
    /// Send over this connection when it is still open.
    pub conn: Option<u64>,
    /// Only reuse an open connection; never connect.
    pub no_connect: bool,
    /// Close the connection after sending.
    pub close: bool,
}

impl Dest {
    pub fn new(proto: Proto, addr: SocketAddr) -> Dest {
        Dest {
            proto,
            addr,
            conn: None,
            no_connect: false,
            close: false,
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SendError {
    #[error("destination {0} is outside the egress allow-list")]
    Denied(IpAddr),
    #[error("no listen socket for {0:?} / {1}")]
    NoSocket(Proto, &'static str),
    #[error("no open connection to {0} and connecting is not allowed")]
    NoConnection(SocketAddr),
    #[error("cannot resolve `{0}`")]
    Resolve(String),
    #[error("send failed: {0}")]
    Io(String),
}

/// One listen socket as the core sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub proto: Proto,
    pub addr: SocketAddr,
    /// Address and port to put in Via/Record-Route, when not the socket's own.
    pub advertise: Option<(String, u16)>,
}

impl Listener {
    /// host:port for Via and Record-Route (IPv6 in brackets).
    pub fn host_port(&self) -> (String, u16) {
        match &self.advertise {
            Some((h, p)) => (h.clone(), *p),
            None => (
                match self.addr.ip() {
                    IpAddr::V6(v6) => format!("[{v6}]"),
                    IpAddr::V4(v4) => v4.to_string(),
                },
                self.addr.port(),
            ),
        }
    }
}

pub trait Net: Send + Sync {
    /// Sends without blocking; stream connects happen in the background.
    fn send(&self, dest: &Dest, data: Bytes) -> Result<(), SendError>;
    fn listeners(&self) -> &[Listener];
    /// Resolves a host (name or literal) for a target URI (RFC 3263 order for names).
    fn resolve(
        &self,
        host: &str,
        port: Option<u16>,
        proto: Option<Proto>,
        secure: bool,
    ) -> Result<(Proto, SocketAddr), SendError>;

    /// True when the egress allow-list lets a message go to `ip`.
    fn egress_allows(&self, _ip: IpAddr) -> bool {
        true
    }

    /// The listener to send from for a protocol and address family.
    fn listener_for(&self, proto: Proto, v6: bool) -> Option<&Listener> {
        self.listeners()
            .iter()
            .find(|l| l.proto == proto && l.addr.is_ipv6() == v6)
            .or_else(|| self.listeners().iter().find(|l| l.proto == proto))
    }
}

/// The egress allow-list (`[core] egress_allow`): `None` allows every address.
#[derive(Clone, Debug, Default)]
pub struct Egress {
    pub allow: Option<Vec<IpNet>>,
}

impl Egress {
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        // Broadcast and multicast destinations are never a SIP next hop (RFC 4475 bcast).
        let special = match ip {
            IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast() || v4.octets()[3] == 255,
            IpAddr::V6(v6) => v6.is_multicast(),
        };
        if special || ip.is_unspecified() {
            return false;
        }
        match &self.allow {
            None => true,
            Some(nets) => nets.iter().any(|n| n.contains(&ip)),
        }
    }
}

/// A network that sends nothing: used to validate a config and script (`kemibox check`).
pub struct Offline {
    pub listeners: Vec<Listener>,
}

impl Net for Offline {
    fn send(&self, dest: &Dest, _data: Bytes) -> Result<(), SendError> {
        Err(SendError::NoConnection(dest.addr))
    }
    fn listeners(&self) -> &[Listener] {
        &self.listeners
    }
    fn resolve(
        &self,
        host: &str,
        _port: Option<u16>,
        _proto: Option<Proto>,
        _secure: bool,
    ) -> Result<(Proto, SocketAddr), SendError> {
        Err(SendError::Resolve(host.to_string()))
    }
}
