//! The message: one buffer, a start line and a table of header offsets.
//!
//! [`Message::parse`] is structural and cheap: it finds lines, header names and the body,
//! and nothing more. [`Message::validate`] is the strict check a proxy runs before routing
//! (RFC 3261 syntax of the fields it relies on; the RFC 4475 torture cases).

use std::sync::OnceLock;

use bytes::Bytes;
use memchr::memchr;
use thiserror::Error;

use super::hdr::{self, CSeq};
use super::name::HdrName;
use super::{is_token_char, Method, Span};

/// Why a buffer is not a SIP message at all (it is dropped and counted).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("start line is neither a request nor a status line")]
    BadStartLine,
    #[error("header line without a colon at byte {0}")]
    BadHeaderLine(usize),
    #[error("header field name is not a token at byte {0}")]
    BadHeaderName(usize),
    #[error("message too large ({0} bytes)")]
    TooLarge(usize),
}

/// Why a parsed message is not acceptable: the status a request is answered with.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{code} {reason}")]
pub struct Invalid {
    pub code: u16,
    pub reason: &'static str,
}

fn bad(reason: &'static str) -> Invalid {
    Invalid { code: 400, reason }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirstLine {
    Request {
        method: Method,
        method_span: Span,
        uri: Span,
        version: Span,
    },
    Response {
        code: u16,
        version: Span,
        reason: Span,
    },
}

/// One header field line (with any folded continuation lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: HdrName,
    pub name_span: Span,
    /// The value, without leading and trailing whitespace; may contain folded line breaks.
    pub value: Span,
    /// The whole field including its line end, for removal.
    pub line: Span,
}

/// A parsed SIP message over its receive buffer.
#[derive(Clone, Debug)]
pub struct Message {
    buf: Bytes,
    pub first: FirstLine,
    /// The start line without its line end.
    pub first_line: Span,
    pub headers: Vec<Header>,
    /// Offset of the first byte after the header block's empty line (or end of buffer).
    pub headers_end: usize,
    pub body: Span,
    /// The Content-Length value as written, when present and numeric.
    pub declared_len: Option<u64>,
    /// Bytes available after the header block.
    pub available_body: usize,
    /// Length of the longest prefix of `buf`, within the header block, that is valid
    /// UTF-8: checked once here, so that [`text`](Message::text) need not check every
    /// span it returns again.
    utf8_head: usize,
    /// [`validate`](Message::validate) passed (recorded by [`check`](Message::check)).
    valid: bool,
    /// The top Via, parsed on first use: every layer asks for it (transaction key,
    /// sanity, rport, reply routing), and it is the same each time.
    top_via: OnceLock<TopVia>,
}

#[derive(Clone, Copy, Debug)]
enum TopVia {
    /// No Via, or the top one does not parse.
    None,
    At(ViaAt),
    /// A part is not a slice of the buffer: parsed on every call.
    Uncached,
}

/// Where the parts of a parsed Via value sit in the message buffer.
#[derive(Clone, Copy, Debug)]
struct ViaAt {
    elem: Span,
    transport: Span,
    host: Span,
    port: Option<u16>,
    params: Span,
    sent_by_end: usize,
}

/// Largest message kemibox accepts on any transport.
pub const MAX_MESSAGE: usize = 65_535;

/// Finds the end of the line starting at `from`: returns (end of content, start of next line).
fn line_end(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let nl = memchr(b'\n', &b[from..])? + from;
    let end = if nl > from && b[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    Some((end, nl + 1))
}

impl Message {
    /// Parses the structure of a message. Datagram semantics: bytes past Content-Length are
    /// ignored (RFC 3261 §18.3); a missing Content-Length means "the rest of the datagram".
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        if buf.len() > MAX_MESSAGE {
            return Err(ParseError::TooLarge(buf.len()));
        }
        let b = &buf[..];
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let mut pos = 0;
        while pos < b.len() && (b[pos] == b'\r' || b[pos] == b'\n') {
            pos += 1;
        }
        if pos >= b.len() {
            return Err(ParseError::Empty);
        }
        let (fl_end, mut next) = line_end(b, pos).unwrap_or((b.len(), b.len()));
        let first_line = Span::new(pos, fl_end);
        let first = parse_first_line(b, pos, fl_end)?;

        let mut headers: Vec<Header> = Vec::with_capacity(16);
        let mut headers_end = b.len();
        let mut body_start = b.len();
        while next < b.len() {
            let start = next;
            let (end, after) = line_end(b, start).unwrap_or((b.len(), b.len()));
            if end == start {
                // The empty line ending the header block.
                headers_end = after;
                body_start = after;
                break;
            }
            if b[start] == b' ' || b[start] == b'\t' {
                // Folded continuation of the previous header (RFC 3261 §7.3.1).
                match headers.last_mut() {
                    Some(h) => {
                        if h.value.is_empty() {
                            // The value was empty so far: it starts on this line.
                            let vs = skip_ws(b, start, end);
                            h.value = Span::new(vs, trim_end(b, vs, end).max(vs));
                        } else {
                            h.value.end = trim_end(b, h.value.start as usize, end) as u32;
                        }
                        h.line.end = after as u32;
                        next = after;
                        continue;
                    }
                    None => return Err(ParseError::BadHeaderLine(start)),
                }
            }
            let colon = memchr(b':', &b[start..end])
                .map(|i| i + start)
                .ok_or(ParseError::BadHeaderLine(start))?;
            let name_end = trim_end(b, start, colon);
            let name = &b[start..name_end];
            if name.is_empty() || !name.iter().all(|&c| is_token_char(c)) {
                return Err(ParseError::BadHeaderName(start));
            }
            let vs = skip_ws(b, colon + 1, end);
            let ve = trim_end(b, vs, end);
            headers.push(Header {
                name: HdrName::parse(name),
                name_span: Span::new(start, name_end),
                value: Span::new(vs, ve.max(vs)),
                line: Span::new(start, after),
            });
            next = after;
        }
        if next >= b.len() && headers_end == b.len() {
            body_start = b.len();
        }

        let available_body = b.len() - body_start;
        let mut declared_len = None;
        if let Some(h) = headers.iter().find(|h| h.name == HdrName::ContentLength) {
            let v = &b[h.value.range()];
            if !v.is_empty() && v.len() <= 19 && v.iter().all(u8::is_ascii_digit) {
                declared_len = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
            }
        }
        let body_len = match declared_len {
            Some(n) => (n as usize).min(available_body),
            None => available_body,
        };
        let utf8_head = match std::str::from_utf8(&b[..headers_end]) {
            Ok(_) => headers_end,
            Err(e) => e.valid_up_to(),
        };
        Ok(Message {
            utf8_head,
            valid: false,
            top_via: OnceLock::new(),
            first,
            first_line,
            headers,
            headers_end,
            body: Span::new(body_start, body_start + body_len),
            declared_len,
            available_body,
            buf,
        })
    }

    pub fn buf(&self) -> &Bytes {
        &self.buf
    }

    /// The text of a span. Non-UTF-8 bytes make it empty (SIP text is UTF-8), and so does
    /// a span that does not start and end on character boundaries.
    pub fn text(&self, s: Span) -> &str {
        if s.end as usize <= self.utf8_head {
            // SAFETY: `utf8_head` is the length of a prefix of `buf` that `parse` found
            // to be valid UTF-8, and `buf` is never modified.
            let head = unsafe { std::str::from_utf8_unchecked(&self.buf[..self.utf8_head]) };
            // `get` refuses a range that splits a character, as `from_utf8` would.
            return head.get(s.range()).unwrap_or("");
        }
        self.buf
            .get(s.range())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    pub fn is_request(&self) -> bool {
        matches!(self.first, FirstLine::Request { .. })
    }

    pub fn method(&self) -> Option<Method> {
        match self.first {
            FirstLine::Request { method, .. } => Some(method),
            _ => None,
        }
    }

    /// The method text of a request, or of the CSeq of a response.
    pub fn method_text(&self) -> &str {
        match self.first {
            FirstLine::Request { method_span, .. } => self.text(method_span),
            FirstLine::Response { .. } => self.cseq().map(|c| c.method).unwrap_or(""),
        }
    }

    pub fn ruri(&self) -> Option<&str> {
        match self.first {
            FirstLine::Request { uri, .. } => Some(self.text(uri)),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.first {
            FirstLine::Response { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self.first {
            FirstLine::Response { reason, .. } => Some(self.text(reason)),
            _ => None,
        }
    }

    /// The first header of a kind.
    pub fn header(&self, name: HdrName) -> Option<&Header> {
        self.headers.iter().find(|h| h.name == name)
    }

    /// Value text of the first header of a kind.
    pub fn value(&self, name: HdrName) -> Option<&str> {
        self.header(name).map(|h| self.text(h.value))
    }

    pub fn headers_named(&self, name: HdrName) -> impl Iterator<Item = &Header> {
        self.headers.iter().filter(move |h| h.name == name)
    }

    /// Headers matching a name given as text (any header, compact forms understood).
    pub fn headers_by_text<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Header> {
        let kind = HdrName::parse(name.as_bytes());
        self.headers.iter().filter(move |h| {
            if kind == HdrName::Other {
                h.name == HdrName::Other
                    && self.buf[h.name_span.range()].eq_ignore_ascii_case(name.as_bytes())
            } else {
                h.name == kind
            }
        })
    }

    pub fn body_bytes(&self) -> &[u8] {
        &self.buf[self.body.range()]
    }

    pub fn call_id(&self) -> Option<&str> {
        self.value(HdrName::CallId)
    }

    pub fn cseq(&self) -> Option<CSeq<'_>> {
        self.value(HdrName::CSeq)
            .and_then(|v| hdr::parse_cseq(v).ok())
    }

    /// All Via values in order, across header lines.
    pub fn vias(&self) -> impl Iterator<Item = (Span, hdr::Via<'_>)> {
        self.headers_named(HdrName::Via).flat_map(move |h| {
            hdr::list_spans(self, h.value)
                .filter_map(move |s| hdr::parse_via(self.text(s)).ok().map(|v| (s, v)))
        })
    }

    pub fn top_via(&self) -> Option<(Span, hdr::Via<'_>)> {
        let at = match self.top_via.get_or_init(|| self.parse_top_via()) {
            TopVia::None => return None,
            TopVia::At(at) => at,
            TopVia::Uncached => return self.top_via_uncached(),
        };
        // The spans are those of sub-slices of a text this buffer returned: they read
        // the same text again.
        Some((
            at.elem,
            hdr::Via {
                transport: self.text(at.transport),
                host: self.text(at.host),
                port: at.port,
                params: hdr::Params(self.text(at.params)),
                sent_by_end: at.sent_by_end,
            },
        ))
    }

    fn top_via_uncached(&self) -> Option<(Span, hdr::Via<'_>)> {
        let h = self.header(HdrName::Via)?;
        let first = hdr::first_in_list(self, h.value);
        hdr::parse_via(self.text(first)).ok().map(|v| (first, v))
    }

    fn parse_top_via(&self) -> TopVia {
        let Some((elem, v)) = self.top_via_uncached() else {
            return TopVia::None;
        };
        let at = (|| {
            Some(ViaAt {
                elem,
                transport: self.span_of(v.transport)?,
                host: self.span_of(v.host)?,
                port: v.port,
                params: self.span_of(v.params.0)?,
                sent_by_end: v.sent_by_end,
            })
        })();
        match at {
            Some(at) => TopVia::At(at),
            None => TopVia::Uncached,
        }
    }

    /// The span of `s`, a slice of this message's buffer.
    fn span_of(&self, s: &str) -> Option<Span> {
        let base = self.buf.as_ptr() as usize;
        let start = (s.as_ptr() as usize).checked_sub(base)?;
        let end = start + s.len();
        (end <= self.buf.len()).then(|| Span::new(start, end))
    }

    /// Strict checks a proxy makes before routing a message. The `Invalid` says how to
    /// answer a request; a response that fails is dropped.
    /// [`validate`](Message::validate), remembering a success: checks that only repeat
    /// what it checked (sanity's URI and header checks) can then be skipped.
    pub fn check(&mut self) -> Result<(), Invalid> {
        self.validate()?;
        self.valid = true;
        Ok(())
    }

    /// [`check`](Message::check) found this message valid: the start line, the Request-URI,
    /// From, To, every Contact, Via, Route and Record-Route value parse strictly, and the
    /// single-valued headers are not repeated.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let b = &self.buf[..];
        match self.first {
            FirstLine::Request {
                method_span,
                uri,
                version,
                ..
            } => {
                // Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP each.
                if method_span.end + 1 != uri.start
                    || uri.end + 1 != version.start
                    || version.end != self.first_line.end
                {
                    return Err(bad("Bad Request-Line"));
                }
                let ruri = self.text(uri);
                if ruri.is_empty() || ruri.starts_with('<') {
                    return Err(bad("Bad Request-URI"));
                }
                let u = super::uri::Uri::parse(ruri).map_err(|_| bad("Bad Request-URI"))?;
                if u.is_sip() && u.headers.is_some() {
                    // RFC 3261 §19.1.5: headers are not allowed in a Request-URI.
                    return Err(bad("Headers in Request-URI"));
                }
                if !b[version.range()].eq_ignore_ascii_case(b"SIP/2.0") {
                    if b[version.range()].len() >= 4
                        && b[version.range()][..4].eq_ignore_ascii_case(b"SIP/")
                    {
                        return Err(Invalid {
                            code: 505,
                            reason: "Version Not Supported",
                        });
                    }
                    return Err(bad("Bad SIP Version"));
                }
            }
            FirstLine::Response { version, .. } => {
                if !b[version.range()].eq_ignore_ascii_case(b"SIP/2.0") {
                    return Err(bad("Bad SIP Version"));
                }
            }
        }
        // Required header fields (RFC 3261 §8.1.1).
        for (name, reason) in [
            (HdrName::Via, "Missing Via"),
            (HdrName::From, "Missing From"),
            (HdrName::To, "Missing To"),
            (HdrName::CallId, "Missing Call-ID"),
            (HdrName::CSeq, "Missing CSeq"),
        ] {
            if self.header(name).is_none() {
                return Err(bad(reason));
            }
        }
        let mut seen = [false; 8];
        for h in &self.headers {
            if h.name.is_single() {
                let i = match h.name {
                    HdrName::From => 0,
                    HdrName::To => 1,
                    HdrName::CallId => 2,
                    HdrName::CSeq => 3,
                    HdrName::MaxForwards => 4,
                    HdrName::ContentLength => 5,
                    HdrName::ContentType => 6,
                    _ => 7,
                };
                if seen[i] {
                    return Err(bad("Duplicate header field"));
                }
                seen[i] = true;
            }
            self.validate_header(h)?;
        }
        // A CSeq method that differs from the request's is left to the script's sanity
        // check (Kamailio routes such a request; its sanity module answers it).
        self.cseq().ok_or(bad("Bad CSeq"))?;
        match self.declared_len {
            Some(n) if n as usize > self.available_body => {
                return Err(bad("Content-Length larger than the message"))
            }
            None if self.header(HdrName::ContentLength).is_some() => {
                return Err(bad("Bad Content-Length"))
            }
            _ => {}
        }
        Ok(())
    }

    fn validate_header(&self, h: &Header) -> Result<(), Invalid> {
        let v = self.text(h.value);
        if v.is_empty() && !h.value.is_empty() {
            return Err(bad("Header field is not UTF-8"));
        }
        match h.name {
            HdrName::Via => {
                for s in hdr::list_spans(self, h.value) {
                    hdr::parse_via_strict(self.text(s)).map_err(|_| bad("Bad Via"))?;
                }
            }
            HdrName::From | HdrName::To => {
                hdr::parse_name_addr_strict(v).map_err(|_| {
                    bad(if h.name == HdrName::From {
                        "Bad From"
                    } else {
                        "Bad To"
                    })
                })?;
            }
            HdrName::Contact if v.trim() != "*" => {
                for s in hdr::list_spans(self, h.value) {
                    hdr::parse_name_addr_strict(self.text(s)).map_err(|_| bad("Bad Contact"))?;
                }
            }
            HdrName::Route | HdrName::RecordRoute => {
                for s in hdr::list_spans(self, h.value) {
                    hdr::parse_name_addr_strict(self.text(s)).map_err(|_| bad("Bad Route"))?;
                }
            }
            HdrName::CSeq => {
                hdr::parse_cseq(v).map_err(|_| bad("Bad CSeq"))?;
            }
            HdrName::CallId if v.is_empty() || v.bytes().any(|c| c.is_ascii_whitespace()) => {
                return Err(bad("Bad Call-ID"));
            }
            HdrName::MaxForwards => {
                hdr::parse_max_forwards(v).map_err(|_| bad("Bad Max-Forwards"))?;
            }
            // Expires is left to the script's sanity check (Kamailio's reply phrases).
            HdrName::ContentLength
                if !v.bytes().all(|c| c.is_ascii_digit()) || v.is_empty() || v.len() > 9 =>
            {
                return Err(bad("Bad Content-Length"));
            }
            HdrName::Date => {
                hdr::parse_date(v).map_err(|_| bad("Bad Date"))?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn skip_ws(b: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

fn trim_end(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(b[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        end -= 1;
    }
    end
}

/// Splits the start line on single spaces; strictness is checked in `validate`.
fn parse_first_line(b: &[u8], start: usize, end: usize) -> Result<FirstLine, ParseError> {
    let line = &b[start..end];
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp1 = memchr(b' ', line).ok_or(ParseError::BadStartLine)?;
        let rest = &line[sp1 + 1..];
        if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
            return Err(ParseError::BadStartLine);
        }
        if rest.len() > 3 && rest[3] != b' ' {
            // bigcode: a status code longer than three digits.
            return Err(ParseError::BadStartLine);
        }
        let code =
            (rest[0] - b'0') as u16 * 100 + (rest[1] - b'0') as u16 * 10 + (rest[2] - b'0') as u16;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStartLine);
        }
        let reason_start = (start + sp1 + 1 + 4).min(end);
        return Ok(FirstLine::Response {
            code,
            version: Span::new(start, start + sp1),
            reason: Span::new(reason_start, end),
        });
    }
    let sp1 = memchr(b' ', line).ok_or(ParseError::BadStartLine)?;
    let method = &line[..sp1];
    if method.is_empty() || !method.iter().all(|&c| is_token_char(c)) {
        return Err(ParseError::BadStartLine);
    }
    // The version is the last space-separated word; what lies between is the URI (which
    // `validate` rejects when it contains spaces).
    let last_sp = line
        .iter()
        .rposition(|&c| c == b' ')
        .ok_or(ParseError::BadStartLine)?;
    if last_sp <= sp1 {
        return Err(ParseError::BadStartLine);
    }
    let mut uri_start = sp1 + 1;
    while uri_start < last_sp && line[uri_start] == b' ' {
        uri_start += 1;
    }
    let mut uri_end = last_sp;
    while uri_end > uri_start && line[uri_end - 1] == b' ' {
        uri_end -= 1;
    }
    let version = if last_sp + 1 == line.len() {
        // Trailing SP (trws): keep the version before it.
        let vs = line[..last_sp]
            .iter()
            .rposition(|&c| c == b' ')
            .ok_or(ParseError::BadStartLine)?;
        uri_end = vs;
        while uri_end > uri_start && line[uri_end - 1] == b' ' {
            uri_end -= 1;
        }
        Span::new(start + vs + 1, start + last_sp)
    } else {
        Span::new(start + last_sp + 1, end)
    };
    if !b[version.range()].starts_with(b"SIP/") && !b[version.range()].starts_with(b"sip/") {
        return Err(ParseError::BadStartLine);
    }
    if uri_end <= uri_start {
        // No Request-URI at all (e.g. `G SIP/ `, found by the fuzzer).
        return Err(ParseError::BadStartLine);
    }
    Ok(FirstLine::Request {
        method: Method::from_bytes(method),
        method_span: Span::new(start, start + sp1),
        uri: Span::new(start + uri_start, start + uri_end),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn p(s: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(s.as_bytes())).expect("parses")
    }

    #[test]
    fn parses_request() {
        let m = p(INVITE);
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.ruri(), Some("sip:bob@biloxi.com"));
        assert_eq!(m.call_id(), Some("a84b4c76e66710@pc33.atlanta.com"));
        assert_eq!(
            m.cseq().map(|c| (c.seq, c.method)),
            Some((314159, "INVITE"))
        );
        assert_eq!(m.body_bytes(), b"v=0\n");
        assert_eq!(m.validate(), Ok(()));
        let (_, via) = m.top_via().expect("via");
        assert_eq!(via.host, "pc33.atlanta.com");
        assert_eq!(via.branch(), Some("z9hG4bK776asdhds"));
    }

    #[test]
    fn folding_and_compact() {
        let m = p("OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject:\r\n  folded\r\n\tmore\r\nf: <sip:x@y>;tag=1\r\nt: sip:a@b\r\ni: c1\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n");
        assert_eq!(m.value(HdrName::Subject), Some("folded\r\n\tmore"));
        assert_eq!(m.value(HdrName::CallId), Some("c1"));
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn response_line() {
        let m = p("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n");
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.reason(), Some("Ringing"));
        assert!(Message::parse(Bytes::from_static(b"SIP/2.0 4294967301 X\r\n\r\n")).is_err());
    }

    #[test]
    fn strict_request_line() {
        let base = INVITE.replacen(
            "INVITE sip:bob@biloxi.com SIP/2.0",
            "INVITE  sip:bob@biloxi.com SIP/2.0",
            1,
        );
        assert_eq!(p(&base).validate().map_err(|e| e.code), Err(400));
        let trailing = INVITE.replacen("SIP/2.0\r\n", "SIP/2.0 \r\n", 1);
        assert_eq!(p(&trailing).validate().map_err(|e| e.code), Err(400));
        let v7 = INVITE.replacen("SIP/2.0\r\n", "SIP/7.0\r\n", 1);
        assert_eq!(p(&v7).validate().map_err(|e| e.code), Err(505));
    }

    #[test]
    fn request_line_without_uri_is_refused() {
        for bad in ["G SIP/ ", "G SIP/2.0", "INVITE  SIP/2.0 \r\n\r\n"] {
            assert!(
                Message::parse(Bytes::copy_from_slice(bad.as_bytes())).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn content_length_beyond_datagram() {
        let m = p(&INVITE.replace("Content-Length: 4", "Content-Length: 400"));
        assert_eq!(m.validate().map_err(|e| e.code), Err(400));
        // Extra octets past Content-Length are ignored.
        let m = p(&format!("{INVITE}garbage"));
        assert_eq!(m.body_bytes(), b"v=0\n");
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn text_is_utf8_checked_once_with_the_same_answers() {
        let raw = "MESSAGE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                   From: \"Jos\u{e9}\" <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\n\
                   CSeq: 1 MESSAGE\r\nSubject: \u{fc}ber\r\nContent-Length: 2\r\n\r\nhi";
        let m = p(raw);
        let from = m.header(HdrName::From).unwrap().value;
        assert_eq!(m.text(from), "\"Jos\u{e9}\" <sip:a@x>;tag=1");
        // A span that splits the two bytes of \u{e9} is refused, as from_utf8 would.
        let split = Span::new(from.start as usize + 5, from.end as usize);
        assert_eq!(m.text(split), "");
        assert_eq!(m.text(m.body), "hi");
        // Bytes that are not UTF-8 in one header: that header reads empty, the ones
        // before it still read.
        let mut bad = raw.as_bytes().to_vec();
        let at = raw.find("\u{fc}ber").unwrap();
        bad[at] = 0xff;
        bad[at + 1] = b'x';
        let m = Message::parse(Bytes::from(bad)).unwrap();
        assert_eq!(
            m.text(m.header(HdrName::From).unwrap().value),
            "\"Jos\u{e9}\" <sip:a@x>;tag=1"
        );
        assert_eq!(m.text(m.header(HdrName::Subject).unwrap().value), "");
        assert_eq!(m.value(HdrName::CallId), Some("c"));
        assert_eq!(m.value(HdrName::ContentLength), Some("2"));
    }

    #[test]
    fn cached_top_via_reads_as_a_fresh_parse() {
        let rest =
            "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        for via in [
            "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\nVia: SIP/2.0/TCP h\r\n",
            "v: SIP/2.0/TLS [2001:db8::1]:5061 , SIP/2.0/UDP other;branch=z9hG4bK2\r\n",
            "Via: SIP / 2.0 / UDP  host.example.com\r\n",
            "Via: garbage\r\n",
            "",
        ] {
            let m = p(&format!("OPTIONS sip:b@x SIP/2.0\r\n{via}{rest}"));
            let fresh = m.top_via_uncached();
            for _ in 0..2 {
                let cached = m.top_via();
                assert_eq!(cached.is_some(), fresh.is_some(), "{via}");
                if let (Some((s1, v1)), Some((s2, v2))) = (&cached, &fresh) {
                    assert_eq!(s1, s2);
                    assert_eq!(
                        (v1.transport, v1.host, v1.port, v1.params.0, v1.sent_by_end),
                        (v2.transport, v2.host, v2.port, v2.params.0, v2.sent_by_end),
                        "{via}"
                    );
                    assert_eq!(v1.host.as_ptr(), v2.host.as_ptr());
                    assert_eq!(v1.branch(), v2.branch());
                }
            }
            // A clone carries the cache and still reads its own buffer.
            let c = m.clone();
            assert_eq!(
                c.top_via().map(|(s, v)| (s, v.host)),
                fresh.map(|(s, v)| (s, v.host))
            );
        }
    }
}
