//! SIP parser throughput: kemibox vs rsip on three realistic messages.
//!
//! Run with `cargo bench -p kemibox --bench parse`. Each message is measured with:
//!
//! * `kemibox/parse`: `Message::parse` alone, the structural parse the proxy does for every
//!   received message (start line, header name/value offsets, body).
//! * `kemibox/parse+accesses`: parse plus the header accesses a proxy makes per message
//!   (top Via and its branch, Call-ID, CSeq, From tag, To tag, Max-Forwards), because
//!   kemibox parses header values lazily.
//! * `kemibox/parse+validate+accesses`: the above plus `Message::validate`, the strict
//!   RFC 3261 check a proxy runs before routing a request.
//! * `rsip/try_from`: `rsip::SipMessage::try_from(&[u8])`, which tokenizes every header
//!   eagerly into owned strings (its header values stay untyped until asked for).
//! * `rsip/try_from+accesses`: the same header accesses through rsip's API (typed Via for
//!   the branch, untyped From/To tag, CSeq number, Max-Forwards number).

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kemibox::sip::hdr::{parse_max_forwards, parse_name_addr};
use kemibox::sip::{HdrName, Message};
use rsip::prelude::*;

/// An INVITE from a UA through one proxy, with an SDP offer.
const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;rport\r\n\
Via: SIP/2.0/UDP 192.0.2.101:5060;received=192.0.2.101;rport=5060;branch=z9hG4bK74bf9\r\n\
Record-Route: <sip:proxy.atlanta.example.com;lr>\r\n\
Max-Forwards: 69\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.101:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO, UPDATE\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: Acme-SoftPhone/5.2.1 (Linux)\r\n\
Session-Expires: 1800\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 240\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// A REGISTER answering a digest challenge.
const REGISTER: &[u8] = b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.201:5060;branch=z9hG4bKnashds7;rport\r\n\
Max-Forwards: 70\r\n\
From: Bob <sip:bob@biloxi.example.com>;tag=a73kszlfl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.201\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:bob@192.0.2.201:5060;transport=udp>;expires=3600\r\n\
Authorization: Digest username=\"bob\", realm=\"biloxi.example.com\", \
nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:registrar.biloxi.example.com\", \
response=\"245f23415f11432b3434341c022f2d2f\", algorithm=MD5, qop=auth, nc=00000001, \
cnonce=\"0a4f113b\"\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO\r\n\
User-Agent: Acme-SoftPhone/5.2.1 (Linux)\r\n\
Expires: 3600\r\n\
Content-Length: 0\r\n\
\r\n";

/// The 200 OK to the INVITE above, on its way back through the proxy, with an SDP answer.
const OK200: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.10\r\n\
Via: SIP/2.0/UDP 192.0.2.101:5060;received=192.0.2.101;rport=5060;branch=z9hG4bK74bf9\r\n\
Record-Route: <sip:proxy.atlanta.example.com;lr>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@192.0.2.4:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n\
Supported: replaces, timer\r\n\
Server: Acme-Phone/3.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 141\r\n\
\r\n\
v=0\r\n\
o=bob 2808844564 2808844564 IN IP4 192.0.2.4\r\n\
s=-\r\n\
c=IN IP4 192.0.2.4\r\n\
t=0 0\r\n\
m=audio 3456 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=sendrecv\r\n";

/// What a proxy reads from every message. Returns a value depending on all of it so that
/// nothing is optimised away.
#[derive(Debug, Default, PartialEq, Eq)]
struct Accessed<'a> {
    branch: Option<&'a str>,
    call_id: Option<&'a str>,
    cseq: Option<u32>,
    from_tag: Option<&'a str>,
    to_tag: Option<&'a str>,
    max_forwards: Option<u8>,
}

fn kemibox_accesses(m: &Message) -> Accessed<'_> {
    let tag = |name| {
        m.value(name)
            .and_then(|v| parse_name_addr(v).ok())
            .and_then(|na| na.tag())
    };
    Accessed {
        branch: m.top_via().and_then(|(_, v)| v.branch()),
        call_id: m.call_id(),
        cseq: m.cseq().map(|c| c.seq),
        from_tag: tag(HdrName::From),
        to_tag: tag(HdrName::To),
        max_forwards: m
            .value(HdrName::MaxForwards)
            .and_then(|v| parse_max_forwards(v).ok()),
    }
}

/// The same accesses through rsip. Returns owned-ish results (rsip allocates on access).
fn rsip_accesses(m: &rsip::SipMessage) -> (Option<String>, usize, u32, bool, bool, u32) {
    let branch = m
        .via_header()
        .ok()
        .and_then(|v| v.typed().ok())
        .and_then(|v| v.branch().map(|b| b.to_string()));
    let call_id = m.call_id_header().map(|c| c.value().len()).unwrap_or(0);
    let cseq = m.cseq_header().ok().and_then(|c| c.seq().ok()).unwrap_or(0);
    let from_tag = m
        .from_header()
        .ok()
        .and_then(|f| f.tag().ok().flatten())
        .is_some();
    let to_tag = m
        .to_header()
        .ok()
        .and_then(|t| t.tag().ok().flatten())
        .is_some();
    let mf = m
        .max_forwards_header()
        .ok()
        .and_then(|h| h.num().ok())
        .unwrap_or(0);
    (branch, call_id, cseq, from_tag, to_tag, mf)
}

/// Checks that the test messages are what they claim to be before timing anything.
fn sanity(name: &str, msg: &'static [u8], expect: Accessed<'static>) {
    let m = Message::parse(Bytes::from_static(msg)).expect("kemibox parses");
    assert_eq!(m.validate(), Ok(()), "{name} validates");
    assert_eq!(
        m.declared_len,
        Some(m.body_bytes().len() as u64),
        "{name}: Content-Length matches the body"
    );
    assert_eq!(kemibox_accesses(&m), expect, "{name} accesses");
    let r = rsip::SipMessage::try_from(msg).expect("rsip parses");
    // rsip really saw the whole message (all header lines and the body).
    assert_eq!(
        r.headers().iter().count(),
        m.headers.len(),
        "{name} rsip headers"
    );
    assert_eq!(r.body().len(), m.body_bytes().len(), "{name} rsip body");
    let (branch, _, cseq, from_tag, to_tag, _) = rsip_accesses(&r);
    assert_eq!(branch.as_deref(), expect.branch, "{name} rsip branch");
    assert_eq!(Some(cseq), expect.cseq, "{name} rsip cseq");
    assert_eq!(from_tag, expect.from_tag.is_some(), "{name} rsip from tag");
    assert_eq!(to_tag, expect.to_tag.is_some(), "{name} rsip to tag");
}

fn bench_message(c: &mut Criterion, name: &str, msg: &'static [u8]) {
    let mut g = c.benchmark_group(format!("{name} ({} B)", msg.len()));
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("kemibox/parse", |b| {
        b.iter(|| Message::parse(black_box(Bytes::from_static(msg))).unwrap())
    });
    g.bench_function("kemibox/parse+accesses", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(Bytes::from_static(msg))).unwrap();
            let a = kemibox_accesses(&m);
            black_box(&a);
        })
    });
    g.bench_function("kemibox/parse+validate+accesses", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(Bytes::from_static(msg))).unwrap();
            m.validate().unwrap();
            let a = kemibox_accesses(&m);
            black_box(&a);
        })
    });
    g.bench_function("rsip/try_from", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(msg)).unwrap())
    });
    g.bench_function("rsip/try_from+accesses", |b| {
        b.iter(|| {
            let m = rsip::SipMessage::try_from(black_box(msg)).unwrap();
            black_box(rsip_accesses(&m));
        })
    });
    g.finish();
}

fn parse(c: &mut Criterion) {
    sanity(
        "INVITE",
        INVITE,
        Accessed {
            branch: Some("z9hG4bK2d4790.1"),
            call_id: Some("3848276298220188511@atlanta.example.com"),
            cseq: Some(314159),
            from_tag: Some("9fxced76sl"),
            to_tag: None,
            max_forwards: Some(69),
        },
    );
    sanity(
        "REGISTER",
        REGISTER,
        Accessed {
            branch: Some("z9hG4bKnashds7"),
            call_id: Some("1j9FpLxk3uxtm8tn@192.0.2.201"),
            cseq: Some(2),
            from_tag: Some("a73kszlfl"),
            to_tag: None,
            max_forwards: Some(70),
        },
    );
    sanity(
        "200 OK",
        OK200,
        Accessed {
            branch: Some("z9hG4bK2d4790.1"),
            call_id: Some("3848276298220188511@atlanta.example.com"),
            cseq: Some(314159),
            from_tag: Some("9fxced76sl"),
            to_tag: Some("8321234356"),
            max_forwards: None,
        },
    );
    bench_message(c, "INVITE", INVITE);
    bench_message(c, "REGISTER", REGISTER);
    bench_message(c, "200 OK", OK200);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = parse
}
criterion_main!(benches);
