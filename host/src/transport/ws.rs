//! SIP over WebSocket (RFC 7118): the `sip` subprotocol, one SIP message per frame.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::kemi::RecvInfo;
use crate::net::Proto;
use crate::sip::msg::MAX_MESSAGE;
use crate::stats::Stats;

use super::Transports;

/// Accepts the handshake only for the `sip` subprotocol and answers with it.
#[allow(clippy::result_large_err)]
fn check_subprotocol(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offers_sip = req
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"));
    if !offers_sip {
        let mut r = ErrorResponse::new(Some("SIP WebSocket needs the `sip` subprotocol".into()));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return Err(r);
    }
    resp.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    Ok(resp)
}

pub async fn serve<S>(t: Arc<Transports>, s: S, proto: Proto, peer: SocketAddr, local: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = match timeout(
        t.limits.message,
        tokio_tungstenite::accept_hdr_async_with_config(s, check_subprotocol, Some(cfg)),
    )
    .await
    {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!("WebSocket handshake from {peer}: {e}");
            return;
        }
        Err(_) => {
            Stats::inc(&t.stats.tcp_framing_errors);
            return;
        }
    };
    let (conn, mut rx) = t.conns.add(proto, peer);
    Stats::inc(&t.stats.tcp_conns_opened);
    let id = conn.id;
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let frame = match std::str::from_utf8(&out.data) {
                Ok(text) => WsMessage::text(text.to_string()),
                Err(_) => WsMessage::binary(out.data),
            };
            if sink.send(frame).await.is_err() || out.close_after {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let rcv = RecvInfo {
        proto,
        src: peer,
        local,
        conn: Some(id),
    };
    loop {
        let next = match timeout(t.limits.idle, stream.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(_) => break,
            Err(_) => {
                Stats::inc(&t.stats.tcp_conns_idle_closed);
                break;
            }
        };
        match next {
            WsMessage::Text(_) | WsMessage::Binary(_) => {
                let data = next.into_data();
                if data.iter().all(|&c| c == b'\r' || c == b'\n') {
                    Stats::inc(&t.stats.keepalives);
                    continue;
                }
                t.dispatch(data, rcv);
            }
            WsMessage::Close(_) => break,
            _ => {}
        }
    }
    t.conns.remove(id);
    writer.abort();
}
