//! SIP message model and parser. No I/O happens here.
//!
//! A received message is one [`bytes::Bytes`] buffer plus the offsets of its start line and
//! header fields ([`Message`]). Header values are parsed lazily, on access, into borrowed
//! typed views ([`hdr`]). Edits are [`lump::Lumps`] applied once when the message is sent.

pub mod framing;
pub mod hdr;
pub mod lump;
pub mod msg;
pub mod name;
pub mod uri;

pub use msg::{FirstLine, Header, Message, ParseError};
pub use name::HdrName;
pub use uri::Uri;

/// A byte range inside a message buffer. `u32` keeps the header table small; a SIP message
/// is far below 4 GiB (the transports cap it at 64 KiB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// The SIP methods a proxy needs to recognise. Unknown methods keep their text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Subscribe,
    Notify,
    Message,
    Refer,
    Prack,
    Publish,
    Other,
}

impl Method {
    /// Method names are case-sensitive (RFC 3261 §7.1).
    pub fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"MESSAGE" => Method::Message,
            b"REFER" => Method::Refer,
            b"PRACK" => Method::Prack,
            b"PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }
}

const fn token_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
}

static TOKEN: [bool; 256] = token_table();

/// `token` characters of RFC 3261 §25.1.
#[inline]
pub fn is_token_char(c: u8) -> bool {
    TOKEN[c as usize]
}

/// Trims SIP linear whitespace (SP, HT, CR, LF) from both ends.
pub fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}
