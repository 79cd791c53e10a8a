//! UDP sockets: one blocking reader thread per worker and socket, one datagram one
//! message (Kamailio's model: the kernel wakes one idle reader per datagram).
//!
//! The readers are plain threads, not tokio tasks: a tokio task per reader on a shared
//! socket meant that every datagram woke every waiting reader task (tokio wakes all
//! waiters of a readiness event) and, through the scheduler, a second worker thread,
//! for one message. The routing runs inline on the reader thread inside the runtime's
//! context (`Handle::enter`), so whatever it spawns (stream connects, timers) lands on
//! the tokio workers as before.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::kemi::RecvInfo;
use crate::net::Proto;
use crate::sip::msg::MAX_MESSAGE;
use crate::stats::Stats;

use super::Transports;

/// How often an idle reader wakes to see whether the server is gone.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// A blocking UDP socket: receives block (with a timeout, see [`IDLE_WAKE`]), sends do
/// not (`MSG_DONTWAIT`, see [`send_to`]).
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    // Bursts of datagrams must not be lost while the workers are busy.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_read_timeout(Some(IDLE_WAKE))?;
    // Only the fallback send (a full send buffer) blocks, and not for long.
    s.set_write_timeout(Some(Duration::from_secs(1)))?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Sends one datagram without blocking; a full send buffer returns `WouldBlock`.
pub fn send_to(sock: &UdpSocket, data: &[u8], dest: SocketAddr) -> std::io::Result<usize> {
    SockRef::from(sock).send_to_with_flags(data, &dest.into(), libc::MSG_DONTWAIT)
}

/// Cleared when the runtime that started the readers drops its tasks (shuts down).
pub struct Alive(Arc<AtomicBool>);

impl Alive {
    /// A flag tied to the current runtime: a task that never ends holds its guard.
    pub fn new() -> Alive {
        struct Guard(Arc<AtomicBool>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        let flag = Arc::new(AtomicBool::new(true));
        let g = Guard(flag.clone());
        tokio::spawn(async move {
            let _g = g;
            std::future::pending::<()>().await;
        });
        Alive(flag)
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Starts one reader thread on `sock`. It stops when the transports are dropped, or, at
/// its next idle wake-up ([`IDLE_WAKE`]), when the runtime behind `rt` has shut down
/// (`alive`).
pub fn spawn_reader(
    t: &Arc<Transports>,
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    rt: tokio::runtime::Handle,
    alive: Arc<Alive>,
    n: usize,
) -> std::io::Result<()> {
    let weak = Arc::downgrade(t);
    std::thread::Builder::new()
        .name(format!("kemibox-udp-{n}"))
        .spawn(move || {
            let _rt = rt.enter();
            // One byte more than the largest accepted message tells an oversize datagram.
            let mut buf = vec![0u8; MAX_MESSAGE + 1];
            loop {
                let (n, src) = match sock.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        if weak.strong_count() == 0 || !alive.get() {
                            return;
                        }
                        continue;
                    }
                    Err(e) => {
                        // ICMP errors surface here on some systems; they are not fatal.
                        tracing::debug!("udp recv on {local}: {e}");
                        continue;
                    }
                };
                let Some(t) = weak.upgrade() else { return };
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
                let data = Bytes::copy_from_slice(&buf[..n]);
                // A panic in the routing of one message must not take this reader (and
                // its share of the socket) with it.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    t.dispatch(data, rcv);
                }));
                if r.is_err() {
                    tracing::error!("udp reader on {local}: a message from {src} panicked");
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_receive_and_non_blocking_send() {
        let a = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = b.local_addr().unwrap();
        assert_eq!(send_to(&a, b"OPTIONS", to).unwrap(), 7);
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"OPTIONS");
        assert_eq!(from, a.local_addr().unwrap());
        // Nothing more: the receive gives up after the idle wake-up interval.
        let t0 = std::time::Instant::now();
        let e = b.recv_from(&mut buf).unwrap_err();
        assert!(matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ));
        assert!(t0.elapsed() >= IDLE_WAKE / 2);
    }
}
