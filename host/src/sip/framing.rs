//! Message framing on stream transports (TCP, TLS): by Content-Length (RFC 3261 §18.3),
//! with RFC 5626 CRLF keep-alives. No I/O: the transport feeds its read buffer in.

use memchr::memmem;
use thiserror::Error;

use super::msg::MAX_MESSAGE;
use super::name::HdrName;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("header block exceeds {0} bytes")]
    HeadersTooLong(usize),
    #[error("stream message without a valid Content-Length")]
    NoContentLength,
    #[error("message of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// More bytes are needed.
    Incomplete,
    /// `n` bytes of CRLF keep-alive to consume; `ping` is the double-CRLF ping that is
    /// answered with a single CRLF pong.
    KeepAlive { n: usize, ping: bool },
    /// One message occupies `buf[..len]`.
    Message { len: usize },
}

/// Looks for one complete message at the start of `buf`.
pub fn next_frame(buf: &[u8]) -> Result<Frame, FrameError> {
    let lead = buf
        .iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count();
    if lead > 0 {
        if lead == buf.len() && lead < 4 && buf.starts_with(b"\r\n\r") {
            return Ok(Frame::Incomplete);
        }
        return Ok(Frame::KeepAlive {
            n: lead,
            ping: buf[..lead].windows(4).any(|w| w == b"\r\n\r\n"),
        });
    }
    let Some(hdr_end) = memmem::find(buf, b"\r\n\r\n").map(|i| i + 4) else {
        if buf.len() > MAX_MESSAGE {
            return Err(FrameError::HeadersTooLong(MAX_MESSAGE));
        }
        return Ok(Frame::Incomplete);
    };
    let body_len = content_length(&buf[..hdr_end]).ok_or(FrameError::NoContentLength)?;
    let total = hdr_end + body_len;
    if total > MAX_MESSAGE {
        return Err(FrameError::TooLarge(total));
    }
    if buf.len() < total {
        return Ok(Frame::Incomplete);
    }
    Ok(Frame::Message { len: total })
}

fn content_length(head: &[u8]) -> Option<usize> {
    let mut found = None;
    for line in head.split(|&c| c == b'\n').skip(1) {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if HdrName::parse(name) == HdrName::ContentLength {
            let v = std::str::from_utf8(line[colon + 1..].trim_ascii()).ok()?;
            if v.is_empty() || v.len() > 9 || !v.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            if found.is_some() {
                return None; // two Content-Length headers: no safe framing
            }
            found = Some(v.parse().ok()?);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_by_content_length() {
        let m = b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nabcNEXT";
        assert_eq!(next_frame(m), Ok(Frame::Message { len: m.len() - 4 }));
        assert_eq!(next_frame(&m[..20]), Ok(Frame::Incomplete));
        assert_eq!(next_frame(&m[..30]), Ok(Frame::Incomplete));
    }

    #[test]
    fn keepalives_and_errors() {
        assert_eq!(
            next_frame(b"\r\n\r\n"),
            Ok(Frame::KeepAlive { n: 4, ping: true })
        );
        assert_eq!(
            next_frame(b"\r\nINV"),
            Ok(Frame::KeepAlive { n: 2, ping: false })
        );
        assert_eq!(
            next_frame(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n"),
            Err(FrameError::NoContentLength)
        );
        let head = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(
            next_frame(head),
            Err(FrameError::TooLarge(99999999 + head.len()))
        );
        let big = vec![b'a'; MAX_MESSAGE + 1];
        assert!(next_frame(&big).is_err());
    }
}
