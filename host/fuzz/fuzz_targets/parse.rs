//! Coverage-guided fuzzing of the SIP parser: arbitrary bytes go through the structural
//! parse, the strict validation, every typed header view that applies, URI parsing, stream
//! framing and lump application. Nothing in here may panic on any input.

#![no_main]

use bytes::Bytes;
use kemibox::sip::framing::{next_frame, Frame};
use kemibox::sip::hdr::{
    parse_auth, parse_cseq, parse_date, parse_delta_seconds, parse_max_forwards, parse_name_addr,
    parse_tokens, parse_via, split_list,
};
use kemibox::sip::lump::Lumps;
use kemibox::sip::uri::UriEdit;
use kemibox::sip::{HdrName, Message, Span, Uri};
use libfuzzer_sys::fuzz_target;
use std::hint::black_box;

fuzz_target!(|data: &[u8]| {
    // Stream framing sees the raw bytes, as a TCP read buffer would.
    if let Ok(Frame::Message { len }) = next_frame(data) {
        assert!(len <= data.len(), "frame longer than the buffer");
        if let Ok(m) = Message::parse(Bytes::copy_from_slice(&data[..len])) {
            exercise(&m, data);
        }
    }
    if let Ok(m) = Message::parse(Bytes::copy_from_slice(data)) {
        exercise(&m, data);
    }
});

fn uri(u: &str) {
    if let Ok(u) = Uri::parse(u) {
        black_box((u.is_sip(), u.host_bare(), u.transport(), u.param("lr")));
        black_box(u.params.iter().count());
        black_box(u.rebuild(UriEdit::default()));
        black_box(u.rebuild(UriEdit {
            user: Some(""),
            host: Some("[2001:db8::1]"),
            port: Some(None),
            params: Some(";lr"),
        }));
        black_box(u.rebuild(UriEdit {
            user: Some("alice"),
            port: Some(Some(5061)),
            ..UriEdit::default()
        }));
    }
}

fn name_addr(v: &str) {
    if let Ok(na) = parse_name_addr(v) {
        black_box((na.display, na.bracketed, na.tag()));
        black_box(na.params.iter().count());
        uri(na.uri);
    }
}

fn exercise(m: &Message, data: &[u8]) {
    let buf = m.buf().clone();
    let _ = black_box(m.validate());

    // Start line and the convenience accessors.
    black_box((
        m.is_request(),
        m.method(),
        m.method_text(),
        m.status(),
        m.reason(),
    ));
    black_box((m.call_id(), m.cseq(), m.top_via(), m.body_bytes().len()));
    black_box(m.vias().count());
    black_box(m.headers_by_text("X-Custom").count());
    black_box(m.headers_by_text("v").count());
    assert!(m.body.start <= m.body.end && m.body.end as usize <= buf.len());
    assert!(m.headers_end <= buf.len());
    if let Some(r) = m.ruri() {
        uri(r);
    }

    // Every header through the typed views that apply to it.
    for h in &m.headers {
        assert!(h.line.end as usize <= buf.len() && h.value.end as usize <= buf.len());
        let v = m.text(h.value);
        black_box(m.text(h.name_span));
        black_box(m.text(h.line));
        match h.name {
            HdrName::Via => {
                for s in split_list(m, h.value) {
                    if let Ok(via) = parse_via(m.text(s)) {
                        black_box((via.branch(), via.received(), via.rport(), via.host_bare()));
                        assert!(via.sent_by_end <= s.len(), "sent_by_end past the value");
                    }
                }
            }
            HdrName::From | HdrName::To => {
                name_addr(v);
                for s in split_list(m, h.value) {
                    name_addr(m.text(s));
                }
            }
            HdrName::Contact | HdrName::Route | HdrName::RecordRoute | HdrName::Path => {
                for s in split_list(m, h.value) {
                    name_addr(m.text(s));
                }
            }
            HdrName::CSeq => {
                let _ = black_box(parse_cseq(v));
            }
            HdrName::Authorization
            | HdrName::ProxyAuthorization
            | HdrName::WwwAuthenticate
            | HdrName::ProxyAuthenticate => {
                if let Ok(a) = parse_auth(v) {
                    black_box((a.get("nonce"), a.get("response"), a.get("username")));
                }
            }
            HdrName::MaxForwards => {
                let _ = black_box(parse_max_forwards(v));
            }
            HdrName::Expires => {
                let _ = black_box(parse_delta_seconds(v));
            }
            HdrName::Date => {
                let _ = black_box(parse_date(v));
            }
            HdrName::Require
            | HdrName::ProxyRequire
            | HdrName::Supported
            | HdrName::Unsupported
            | HdrName::Allow => {
                black_box(parse_tokens(v));
            }
            _ => {}
        }
    }

    // Lumps: no edit gives the buffer back unchanged.
    assert_eq!(
        Lumps::default().apply(&buf),
        &buf[..],
        "empty lumps changed the buffer"
    );

    // A proxy's usual edits: add a Via on top, drop Route, record-route, decrement
    // Max-Forwards, stamp `received` on the top Via, plus edits at fuzzer-chosen offsets.
    let mut l = Lumps::default();
    let first_hdr = m
        .headers
        .first()
        .map_or(buf.len(), |h| h.line.start as usize);
    l.insert(
        first_hdr,
        Bytes::from_static(b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfuzz\r\n"),
    );
    l.insert(
        first_hdr,
        Bytes::from_static(b"Record-Route: <sip:192.0.2.1;lr>\r\n"),
    );
    for h in m.headers_named(HdrName::Route) {
        l.delete(h.line);
    }
    if let Some(h) = m.header(HdrName::MaxForwards) {
        l.replace(h.value, Bytes::from_static(b"69"));
    }
    if let Some(h) = m.header(HdrName::Via) {
        if let Some(s) = split_list(m, h.value).into_iter().next() {
            if let Ok(via) = parse_via(m.text(s)) {
                l.insert(
                    s.start as usize + via.sent_by_end,
                    Bytes::from_static(b";received=192.0.2.9"),
                );
            }
        }
    }
    if data.len() >= 4 && !buf.is_empty() {
        let a = usize::from(u16::from_le_bytes([data[0], data[1]])) % (buf.len() + 1);
        let b = usize::from(u16::from_le_bytes([data[2], data[3]])) % (buf.len() + 1);
        let (s, e) = (a.min(b), a.max(b));
        l.delete(Span::new(s, e));
        l.insert(a, Bytes::from_static(b"X"));
        l.replace(
            Span::new(s, (s + 3).min(buf.len())),
            Bytes::from_static(b"yz"),
        );
    }
    black_box(l.deletes_within(m.body));
    let out = l.apply(&buf);
    // Re-parse the edited message as the next hop would.
    if let Ok(m2) = Message::parse(Bytes::from(out)) {
        let _ = black_box(m2.validate());
    }
}
