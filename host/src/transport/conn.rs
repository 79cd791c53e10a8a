//! The connection table: open stream connections by id and by peer address, so replies
//! and later requests toward a peer reuse its connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::net::{Proto, SendError};

/// What a connection's writer task is given.
pub struct Outgoing {
    pub data: Bytes,
    pub close_after: bool,
}

/// A live connection's handle.
pub struct Conn {
    pub id: u64,
    pub proto: Proto,
    pub peer: SocketAddr,
    tx: mpsc::Sender<Outgoing>,
}

/// Messages queued per connection before a send fails (back-pressure from a slow peer).
pub const QUEUE: usize = 256;

impl Conn {
    pub fn send(&self, data: Bytes, close_after: bool) -> Result<(), SendError> {
        self.tx
            .try_send(Outgoing { data, close_after })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SendError::Io("connection queue full".into()),
                mpsc::error::TrySendError::Closed(_) => SendError::NoConnection(self.peer),
            })
    }
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<u64, Arc<Conn>>,
    by_peer: HashMap<(Proto, SocketAddr), u64>,
}

#[derive(Default)]
pub struct ConnTable {
    inner: Mutex<Inner>,
    next: AtomicU64,
}

impl ConnTable {
    /// Registers a new connection; returns its handle and the receiver for its writer.
    pub fn add(&self, proto: Proto, peer: SocketAddr) -> (Arc<Conn>, mpsc::Receiver<Outgoing>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(QUEUE);
        let c = Arc::new(Conn {
            id,
            proto,
            peer,
            tx,
        });
        if let Ok(mut g) = self.inner.lock() {
            g.by_id.insert(id, c.clone());
            g.by_peer.insert((proto, peer), id);
        }
        (c, rx)
    }

    pub fn remove(&self, id: u64) {
        if let Ok(mut g) = self.inner.lock() {
            if let Some(c) = g.by_id.remove(&id) {
                if g.by_peer.get(&(c.proto, c.peer)) == Some(&id) {
                    g.by_peer.remove(&(c.proto, c.peer));
                }
            }
        }
    }

    pub fn get(&self, id: u64) -> Option<Arc<Conn>> {
        self.inner.lock().ok()?.by_id.get(&id).cloned()
    }

    pub fn by_peer(&self, proto: Proto, peer: SocketAddr) -> Option<Arc<Conn>> {
        let g = self.inner.lock().ok()?;
        let id = g.by_peer.get(&(proto, peer))?;
        g.by_id.get(id).cloned()
    }

    /// A connection to `peer` over any stream protocol: a reply's Via may name another
    /// transport than the one the request came on (a TLS-terminating client, a WS client).
    pub fn by_peer_any(&self, peer: SocketAddr) -> Option<Arc<Conn>> {
        let g = self.inner.lock().ok()?;
        [Proto::Tcp, Proto::Tls, Proto::Ws, Proto::Wss]
            .iter()
            .find_map(|p| g.by_peer.get(&(*p, peer)))
            .and_then(|id| g.by_id.get(id).cloned())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.by_id.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
