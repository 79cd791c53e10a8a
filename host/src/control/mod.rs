//! The control listener. Today it serves Prometheus metrics at `GET /metrics`; the
//! JSON-RPC methods (hot swap, usrloc, htable) join it with their issues.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::stats::Stats;
use crate::transport::Transports;

/// Renders the counters in the Prometheus text format.
pub fn render_metrics(stats: &Stats, transports: &Transports) -> String {
    let mut out = String::with_capacity(2048);
    for (name, v) in stats.snapshot() {
        out.push_str(&format!(
            "# TYPE kemibox_{name}_total counter\nkemibox_{name}_total {v}\n"
        ));
    }
    out.push_str(&format!(
        "# TYPE kemibox_tcp_connections gauge\nkemibox_tcp_connections {}\n",
        transports.connection_count()
    ));
    out
}

/// Serves `GET /metrics` on `addr` (HTTP/1.0, one request per connection).
pub async fn serve(
    addr: SocketAddr,
    stats: Arc<Stats>,
    transports: Arc<Transports>,
) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind(addr).await?;
    let local = l.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let stats = stats.clone();
            let transports = transports.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let mut n = 0;
                // Read the request head, bounded in size and time.
                while n < buf.len() {
                    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf[n..])).await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                        Ok(Ok(k)) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if head.starts_with("GET /metrics ") {
                    ("200 OK", render_metrics(&stats, &transports))
                } else {
                    ("404 Not Found", "not found\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(local)
}
