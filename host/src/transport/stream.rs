//! Stream transports (TCP and TLS, and the socket under WS/WSS): accept, connect, framing
//! by Content-Length, idle and slow-message timeouts, connection limits.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

use crate::kemi::RecvInfo;
use crate::net::Proto;
use crate::sip::framing::{next_frame, Frame};
use crate::stats::Stats;

use super::Transports;

pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// One unit of the connection cap, released when dropped.
struct Slot(Arc<Transports>);

impl Slot {
    fn take(t: &Arc<Transports>) -> Option<Slot> {
        let n = t.active.fetch_add(1, Ordering::AcqRel);
        if n >= t.limits.max_conns {
            t.active.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(t.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

pub fn spawn_accept(t: Arc<Transports>, proto: Proto, l: TcpListener) {
    tokio::spawn(async move {
        let local = match l.local_addr() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("listener without address: {e}");
                return;
            }
        };
        loop {
            let (sock, peer) = match l.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept on {proto:?} {local}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(slot) = Slot::take(&t) else {
                Stats::inc(&t.stats.tcp_conns_refused);
                drop(sock);
                continue;
            };
            let _ = sock.set_nodelay(true);
            let t2 = t.clone();
            tokio::spawn(async move {
                accept_one(t2, proto, sock, peer, local).await;
                drop(slot);
            });
        }
    });
}

async fn accept_one(
    t: Arc<Transports>,
    proto: Proto,
    sock: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let hs = t.limits.message;
    match proto {
        Proto::Tcp => serve_stream(t, sock, proto, peer, local, None).await,
        Proto::Ws => super::ws::serve(t, sock, proto, peer, local).await,
        Proto::Tls | Proto::Wss => {
            let Some(acceptor) = t.tls().map(|c| c.acceptor.clone()) else {
                return;
            };
            match timeout(hs, acceptor.accept(sock)).await {
                Ok(Ok(s)) if proto == Proto::Tls => {
                    serve_stream(t, s, proto, peer, local, None).await
                }
                Ok(Ok(s)) => super::ws::serve(t, s, proto, peer, local).await,
                Ok(Err(e)) => tracing::debug!("TLS handshake from {peer}: {e}"),
                Err(_) => tracing::debug!("TLS handshake from {peer} timed out"),
            }
        }
        Proto::Udp => {}
    }
}

/// Serves one SIP-over-stream connection until it closes, idles out or misbehaves.
pub async fn serve_stream<S>(
    t: Arc<Transports>,
    s: S,
    proto: Proto,
    peer: SocketAddr,
    local: SocketAddr,
    initial: Option<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (conn, mut rx) = t.conns.add(proto, peer);
    Stats::inc(&t.stats.tcp_conns_opened);
    let id = conn.id;
    if let Some(d) = initial {
        let _ = conn.send(d, false);
    }
    let (mut rd, mut wr) = tokio::io::split(s);
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            if wr.write_all(&out.data).await.is_err() || out.close_after {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let rcv = RecvInfo {
        proto,
        src: peer,
        local,
        conn: Some(id),
    };
    let mut buf = BytesMut::with_capacity(4096);
    let mut partial_since: Option<Instant> = None;
    'conn: loop {
        loop {
            match next_frame(&buf) {
                Ok(Frame::Message { len }) => {
                    let msg = buf.split_to(len).freeze();
                    partial_since = None;
                    t.dispatch(msg, rcv);
                }
                Ok(Frame::KeepAlive { n, ping }) => {
                    let _ = buf.split_to(n);
                    Stats::inc(&t.stats.keepalives);
                    if ping {
                        let _ = conn.send(Bytes::from_static(b"\r\n"), false);
                    }
                }
                Ok(Frame::Incomplete) => break,
                Err(e) => {
                    tracing::debug!("{proto:?} {peer}: {e}; closing");
                    Stats::inc(&t.stats.tcp_framing_errors);
                    break 'conn;
                }
            }
        }
        let wait = if buf.is_empty() {
            partial_since = None;
            t.limits.idle
        } else {
            let since = *partial_since.get_or_insert_with(Instant::now);
            match t.limits.message.checked_sub(since.elapsed()) {
                Some(w) => w,
                None => break,
            }
        };
        buf.reserve(4096);
        match timeout(wait, rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => {
                if buf.is_empty() {
                    Stats::inc(&t.stats.tcp_conns_idle_closed);
                } else {
                    Stats::inc(&t.stats.tcp_framing_errors);
                }
                break;
            }
        }
    }
    t.conns.remove(id);
    writer.abort();
}

/// Opens a connection toward `addr` in the background and sends `data` on it.
pub fn connect_and_send(t: Arc<Transports>, proto: Proto, addr: SocketAddr, data: Bytes) {
    let Some(slot) = Slot::take(&t) else {
        Stats::inc(&t.stats.tcp_conns_refused);
        return;
    };
    tokio::spawn(async move {
        let _slot = slot;
        let sock = match timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            _ => {
                Stats::inc(&t.stats.send_errors);
                tracing::debug!("connect to {proto:?} {addr} failed");
                return;
            }
        };
        let _ = sock.set_nodelay(true);
        let local = sock.local_addr().unwrap_or(addr);
        match proto {
            Proto::Tcp => serve_stream(t, sock, proto, addr, local, Some(data)).await,
            Proto::Tls => {
                let Some(connector) = t.tls().and_then(|c| c.connector.clone()) else {
                    tracing::warn!("outbound TLS to {addr} needs [tls] ca_list");
                    Stats::inc(&t.stats.send_errors);
                    return;
                };
                let name = tokio_rustls::rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                match timeout(Duration::from_secs(5), connector.connect(name, sock)).await {
                    Ok(Ok(s)) => serve_stream(t, s, proto, addr, local, Some(data)).await,
                    _ => {
                        Stats::inc(&t.stats.send_errors);
                        tracing::debug!("TLS connect to {addr} failed");
                    }
                }
            }
            _ => {}
        }
    });
}
