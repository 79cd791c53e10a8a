//! UDP sockets: several reader tasks per socket, one datagram one message.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::kemi::RecvInfo;
use crate::net::Proto;
use crate::sip::msg::MAX_MESSAGE;
use crate::stats::Stats;

use super::Transports;

pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    // Bursts of datagrams must not be lost while the workers are busy.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

pub fn spawn_reader(t: Arc<Transports>, sock: Arc<UdpSocket>, local: SocketAddr) {
    tokio::spawn(async move {
        // One byte more than the largest accepted message tells an oversize datagram.
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        loop {
            let (n, src) = match sock.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors surface here on some systems; they are not fatal.
                    tracing::debug!("udp recv on {local}: {e}");
                    continue;
                }
            };
            if n > MAX_MESSAGE {
                Stats::inc(&t.stats.oversize_dropped);
                continue;
            }
            if n == 0 || buf[..n].iter().all(|&c| c == b'\r' || c == b'\n' || c == 0) {
                Stats::inc(&t.stats.keepalives);
                continue;
            }
            let rcv = RecvInfo {
                proto: Proto::Udp,
                src,
                local,
                conn: None,
            };
            t.dispatch(Bytes::copy_from_slice(&buf[..n]), rcv);
        }
    });
}
