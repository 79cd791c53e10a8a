//! SIP over WebSocket (RFC 7118) with a real WebSocket client (tokio-tungstenite): the
//! `sip` subprotocol, requests answered by the script and requests forwarded to a UDP UAS
//! with the reply coming back over the same WebSocket.

use std::net::UdpSocket;
use std::time::Duration;

use e2e::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

fn request(method: &str, ruri: &str, tag: &str) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{tag}\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@example.invalid>;tag={tag}\r\nTo: <sip:bob@example.invalid>\r\n\
Call-ID: {tag}@ws\r\nCSeq: 1 {method}\r\nContact: <sip:alice@df7jal23ls0d.invalid;transport=ws>\r\n\
Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_client_gets_answers() {
    let (p, ws) = (free_port(), free_port());
    let kb = Kemibox::start(
        &config(
            &[format!("udp:127.0.0.1:{p}"), format!("ws:127.0.0.1:{ws}")],
            "",
        ),
        &example_script(),
    );
    // Without the `sip` subprotocol the handshake is refused (RFC 7118 §4).
    let plain = format!("ws://127.0.0.1:{ws}/")
        .into_client_request()
        .expect("request");
    assert!(tokio_tungstenite::connect_async(plain).await.is_err());

    let mut req = format!("ws://127.0.0.1:{ws}/")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    let (mut sock, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("ws connect");
    assert_eq!(
        resp.headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.as_bytes()),
        Some(&b"sip"[..])
    );

    // OPTIONS to the proxy itself: the script answers 200 Keepalive.
    sock.send(Message::text(request(
        "OPTIONS",
        &format!("sip:127.0.0.1:{ws};transport=ws"),
        "ka1",
    )))
    .await
    .expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(5), sock.next())
        .await
        .expect("answer in time")
        .expect("frame")
        .expect("ok frame");
    let text = answer.into_text().expect("text frame").to_string();
    assert!(text.starts_with("SIP/2.0 200 Keepalive\r\n"), "{text}");
    assert!(
        text.contains(";rport="),
        "received/rport on the top Via: {text}"
    );

    // REGISTER forwarded to a UDP "registrar" on loopback; its 200 comes back over WS.
    let uas = UdpSocket::bind("127.0.0.1:0").expect("uas socket");
    let uas_addr = uas.local_addr().expect("addr");
    sock.send(Message::text(request(
        "REGISTER",
        &format!("sip:{uas_addr}"),
        "reg1",
    )))
    .await
    .expect("send");
    uas.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = vec![0u8; 65536];
    let (n, from) = uas.recv_from(&mut buf).expect("forwarded REGISTER");
    let fwd = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        fwd.starts_with(&format!("REGISTER sip:{uas_addr} SIP/2.0\r\n")),
        "{fwd}"
    );
    let vias: Vec<&str> = fwd.lines().filter(|l| l.starts_with("Via:")).collect();
    assert_eq!(vias.len(), 2, "{fwd}");
    assert!(
        vias[0].starts_with(&format!("Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK")),
        "{fwd}"
    );
    assert!(
        fwd.contains("Max-Forwards: 69\r\n"),
        "decremented (max_limit 70): {fwd}"
    );
    // Answer as a registrar would: copy the Vias, From, To, Call-ID, CSeq.
    let mut reply = String::from("SIP/2.0 200 OK\r\n");
    for l in fwd.lines().filter(|l| {
        ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|h| l.starts_with(h))
    }) {
        reply.push_str(l);
        reply.push_str("\r\n");
    }
    reply.push_str("Content-Length: 0\r\n\r\n");
    uas.send_to(reply.as_bytes(), from).expect("reply");
    let answer = tokio::time::timeout(Duration::from_secs(5), sock.next())
        .await
        .expect("reply in time")
        .expect("frame")
        .expect("ok frame");
    let text = answer.into_text().expect("text").to_string();
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("Via:")).count(),
        1,
        "our Via removed: {text}"
    );
    assert_eq!(kb.metric_settled("fwd_replies", 1), 1);
}
