//! Typed views of header values, parsed on access and borrowing the message buffer.

use thiserror::Error;

use super::msg::Message;
use super::uri::Uri;
use super::{is_token_char, trim_lws, Span};

#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
#[error("malformed {0}")]
pub struct HdrError(pub &'static str);

/// Splits a list-valued header value at top-level commas (not inside quotes or `<>`),
/// returning trimmed spans. Empty elements are kept so that validation can refuse them.
pub fn split_list(msg: &Message, value: Span) -> Vec<Span> {
    list_spans(msg, value).collect()
}

/// [`split_list`] without the vector: the elements one by one.
pub fn list_spans(msg: &Message, value: Span) -> ListSpans<'_> {
    ListSpans {
        b: &msg.buf()[value.range()],
        base: value.start as usize,
        start: 0,
        done: false,
    }
}

/// The elements of a list-valued header value; see [`list_spans`].
pub struct ListSpans<'m> {
    b: &'m [u8],
    base: usize,
    /// Where the next element starts.
    start: usize,
    done: bool,
}

impl Iterator for ListSpans<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        if self.done {
            return None;
        }
        let b = self.b;
        let (mut in_q, mut in_a, mut esc) = (false, false, false);
        for (i, &c) in b.iter().enumerate().skip(self.start) {
            if esc {
                esc = false;
                continue;
            }
            match c {
                b'\\' if in_q => esc = true,
                b'"' if !in_a => in_q = !in_q,
                b'<' if !in_q => in_a = true,
                b'>' if !in_q => in_a = false,
                b',' if !in_q && !in_a => {
                    let s = trim_span(b, self.base, self.start, i);
                    self.start = i + 1;
                    return Some(s);
                }
                _ => {}
            }
        }
        self.done = true;
        Some(trim_span(b, self.base, self.start, b.len()))
    }
}

fn trim_span(b: &[u8], base: usize, mut s: usize, mut e: usize) -> Span {
    while s < e && matches!(b[s], b' ' | b'\t' | b'\r' | b'\n') {
        s += 1;
    }
    while e > s && matches!(b[e - 1], b' ' | b'\t' | b'\r' | b'\n') {
        e -= 1;
    }
    Span::new(base + s, base + e)
}

/// The first element of a list-valued header value (no allocation).
pub fn first_in_list(msg: &Message, value: Span) -> Span {
    // The scanner yields at least one (possibly empty) element.
    list_spans(msg, value)
        .next()
        .unwrap_or(Span::new(value.start as usize, value.start as usize))
}

/// Splits a string list (already a `&str`) at top-level commas.
pub fn split_list_str(v: &str) -> Vec<&str> {
    let spans = ListSpans {
        b: v.as_bytes(),
        base: 0,
        start: 0,
        done: false,
    };
    // The spans are trimmed at ASCII bytes, so they fall on character boundaries.
    spans.map(|s| v.get(s.range()).unwrap_or("")).collect()
}

/// `;name=value` parameters as written (value without quotes is kept as is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params<'a>(pub &'a str);

impl<'a> Params<'a> {
    /// Iterates (name, value) pairs; value is `None` for a flag parameter.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        self.0
            .split(';')
            .map(trim_lws)
            .filter(|p| !p.is_empty())
            .map(|p| match p.find('=') {
                Some(i) => (trim_lws(&p[..i]), Some(unquote(trim_lws(&p[i + 1..])))),
                None => (p, None),
            })
    }

    /// `Some(value)` when the parameter is present (`Some(None)` without a value).
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Checks that every parameter is `token [= token / quoted-string / host]`.
    pub fn validate(&self) -> Result<(), HdrError> {
        let s = self.0;
        if s.is_empty() {
            return Ok(());
        }
        let s = trim_lws(s);
        let Some(rest) = s.strip_prefix(';') else {
            return Err(HdrError("parameters"));
        };
        for p in rest.split(';') {
            let p = trim_lws(p);
            let (n, v) = match p.find('=') {
                Some(i) => (trim_lws(&p[..i]), Some(trim_lws(&p[i + 1..]))),
                None => (p, None),
            };
            if n.is_empty() || !n.bytes().all(is_token_char) {
                return Err(HdrError("parameter name"));
            }
            if let Some(v) = v {
                let ok = if v.starts_with('"') {
                    v.len() >= 2 && v.ends_with('"')
                } else {
                    !v.is_empty()
                        && v.bytes().all(|c| {
                            is_token_char(c) || matches!(c, b':' | b'[' | b']' | b'/' | b'@')
                        })
                };
                if !ok {
                    return Err(HdrError("parameter value"));
                }
            }
        }
        Ok(())
    }
}

fn unquote(v: &str) -> &str {
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// One Via value: `SIP/2.0/UDP host:port;params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    pub transport: &'a str,
    /// Host as written; IPv6 references keep their brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    /// Everything from the first `;` on.
    pub params: Params<'a>,
    /// Length of the text up to the end of sent-by (where `received` etc. may be added).
    pub sent_by_end: usize,
}

impl<'a> Via<'a> {
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }
    /// `Some(None)` for a bare `;rport` (RFC 3581 request), `Some(Some(p))` when filled.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }
    /// Host without IPv6 brackets.
    pub fn host_bare(&self) -> &'a str {
        strip_brackets(self.host)
    }
}

pub fn strip_brackets(h: &str) -> &str {
    h.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h)
}

/// Parses one Via value, and checks every parameter (what `Message::validate` uses).
pub fn parse_via_strict(v: &str) -> Result<Via<'_>, HdrError> {
    let via = parse_via(v)?;
    via.params.validate().map_err(|_| HdrError("Via"))?;
    Ok(via)
}

/// Parses one Via value. LWS is allowed around `/` (RFC 4475 wsinv). Parameters are split
/// on access, not checked (the message was validated once on arrival).
pub fn parse_via(v: &str) -> Result<Via<'_>, HdrError> {
    let err = HdrError("Via");
    let mut rest = v;
    let mut parts = [""; 3];
    for (i, part) in parts.iter_mut().enumerate() {
        rest = trim_lws_start(rest);
        let end = if i < 2 {
            rest.find(|c: char| c == '/' || c.is_ascii_whitespace())
                .ok_or(err)?
        } else {
            rest.find(|c: char| c.is_ascii_whitespace()).ok_or(err)?
        };
        *part = &rest[..end];
        rest = trim_lws_start(&rest[end..]);
        if i < 2 {
            rest = rest.strip_prefix('/').ok_or(err)?;
        }
    }
    if !parts[0].eq_ignore_ascii_case("SIP")
        || parts[1].is_empty()
        || parts[2].is_empty()
        || !parts[1].bytes().all(is_token_char)
        || !parts[2].bytes().all(is_token_char)
    {
        return Err(err);
    }
    let sent_by_start = v.len() - rest.len();
    let sb_len = rest.find(';').unwrap_or(rest.len());
    let sent_by = trim_lws(&rest[..sb_len]);
    let (host, port) = split_host_port(sent_by).ok_or(err)?;
    let params = Params(&rest[sb_len..]);
    let sent_by_end = sent_by_start
        + rest[..sb_len]
            .trim_end_matches([' ', '\t', '\r', '\n'])
            .len();
    Ok(Via {
        transport: parts[2],
        host,
        port,
        params,
        sent_by_end,
    })
}

fn trim_lws_start(s: &str) -> &str {
    s.trim_start_matches([' ', '\t', '\r', '\n'])
}

/// Splits `host[:port]`, validating the host (name, IPv4, or `[IPv6]`).
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = trim_lws(s);
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']')?;
        let host = &s[..=close];
        let rest = &s[close + 1..];
        let port = if rest.is_empty() {
            None
        } else {
            Some(rest.strip_prefix(':')?)
        };
        (host, port)
    } else {
        match s.find(':') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    };
    if !valid_host(host) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            Some(p.parse::<u16>().ok()?)
        }
    };
    Some((host, port))
}

/// hostname / IPv4address / IPv6reference (RFC 3261 §25.1, RFC 5118).
pub fn valid_host(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return false;
        };
        return parse_ipv6_lenient(inner).is_some();
    }
    if h.is_empty() || h.len() > 255 {
        return false;
    }
    h.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

/// Parses an IPv6 address. The three-colon form that RFC 3261's ABNF allowed by mistake
/// (RFC 5118 §4.3) is accepted as its two-colon equivalent, as that RFC recommends.
pub fn parse_ipv6_lenient(s: &str) -> Option<std::net::Ipv6Addr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    if s.contains(":::") {
        return s.replacen(":::", "::", 1).parse().ok();
    }
    None
}

/// A name-addr or addr-spec with header parameters (From, To, Contact, Route, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    pub display: Option<&'a str>,
    pub uri: &'a str,
    /// True when the URI was enclosed in `<>`.
    pub bracketed: bool,
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

/// Parses `[display-name] <uri> *(;param)` or `addr-spec *(;param)` and checks the
/// display name, the URI and every parameter (what `Message::validate` uses).
pub fn parse_name_addr_strict(v: &str) -> Result<NameAddr<'_>, HdrError> {
    name_addr(v, true)
}

/// Parses the structure of a name-addr or addr-spec; the URI and parameters are not
/// checked (the message was validated once on arrival).
pub fn parse_name_addr(v: &str) -> Result<NameAddr<'_>, HdrError> {
    name_addr(v, false)
}

fn name_addr(v: &str, strict: bool) -> Result<NameAddr<'_>, HdrError> {
    let err = HdrError("name-addr");
    let s = trim_lws(v);
    if s.is_empty() {
        return Err(err);
    }
    let (display, after_display) = if let Some(q) = s.strip_prefix('"') {
        // quoted-string display name
        let mut esc = false;
        let mut close = None;
        for (i, c) in q.char_indices() {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                close = Some(i);
                break;
            }
        }
        let close = close.ok_or(err)?;
        (Some(&s[..close + 2]), trim_lws_start(&q[close + 1..]))
    } else if let Some(lt) = s.find('<') {
        let dn = trim_lws(&s[..lt]);
        if strict
            && !dn
                .bytes()
                .all(|c| is_token_char(c) || matches!(c, b' ' | b'\t'))
        {
            return Err(err);
        }
        ((!dn.is_empty()).then_some(dn), &s[lt..])
    } else {
        // addr-spec: the URI runs up to the first ';' and may not hold '?', ',' or LWS.
        let end = s.find(';').unwrap_or(s.len());
        let uri = trim_lws(&s[..end]);
        if uri.contains(['?', ',', ' ', '\t', '<', '>', '"']) {
            return Err(err);
        }
        let params = Params(&s[end..]);
        if strict {
            Uri::parse(uri).map_err(|_| err)?;
            params.validate().map_err(|_| err)?;
        }
        return Ok(NameAddr {
            display: None,
            uri,
            bracketed: false,
            params,
        });
    };
    let inner = after_display.strip_prefix('<').ok_or(err)?;
    let gt = inner.find('>').ok_or(err)?;
    let uri = &inner[..gt];
    if uri.is_empty() || uri.contains([' ', '\t', '\r', '\n', '<']) {
        return Err(err);
    }
    let params = Params(&inner[gt + 1..]);
    if strict {
        Uri::parse(uri).map_err(|_| err)?;
        params.validate().map_err(|_| err)?;
    }
    Ok(NameAddr {
        display,
        uri,
        bracketed: true,
        params,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: &'a str,
}

/// `CSeq: 1*DIGIT LWS Method`, the number below 2^31 (RFC 3261 §8.1.1.5).
pub fn parse_cseq(v: &str) -> Result<CSeq<'_>, HdrError> {
    let err = HdrError("CSeq");
    let v = trim_lws(v);
    let sp = v.find([' ', '\t', '\r', '\n']).ok_or(err)?;
    let num = &v[..sp];
    let method = trim_lws(&v[sp..]);
    if num.is_empty() || num.len() > 10 || !num.bytes().all(|c| c.is_ascii_digit()) {
        return Err(err);
    }
    let seq: u64 = num.parse().map_err(|_| err)?;
    if seq >= 1 << 31 || method.is_empty() || !method.bytes().all(is_token_char) {
        return Err(err);
    }
    Ok(CSeq {
        seq: seq as u32,
        method,
    })
}

/// Max-Forwards: 0..=255 (leading zeros allowed, RFC 4475 wsinv).
pub fn parse_max_forwards(v: &str) -> Result<u8, HdrError> {
    let v = trim_lws(v);
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(HdrError("Max-Forwards"));
    }
    v.parse::<u8>().map_err(|_| HdrError("Max-Forwards"))
}

/// delta-seconds (Expires): up to 2^32-1.
pub fn parse_delta_seconds(v: &str) -> Result<u32, HdrError> {
    let v = trim_lws(v);
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(HdrError("delta-seconds"));
    }
    v.parse::<u32>().map_err(|_| HdrError("delta-seconds"))
}

/// SIP-date (RFC 3261 §25.1: rfc1123-date, always GMT), e.g. `Sat, 13 Nov 2010 23:29:00 GMT`.
pub fn parse_date(v: &str) -> Result<(), HdrError> {
    let err = HdrError("Date");
    let v = trim_lws(v);
    let parts: Vec<&str> = v.split_ascii_whitespace().collect();
    let [wkday, day, month, year, time, zone] = parts.as_slice() else {
        return Err(err);
    };
    let wk_ok = wkday
        .strip_suffix(',')
        .is_some_and(|d| ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&d));
    let month_ok = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .contains(month);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_digit());
    let t: Vec<&str> = time.split(':').collect();
    let time_ok = t.len() == 3 && t.iter().all(|p| digits(p, 2));
    if wk_ok && digits(day, 2) && month_ok && digits(year, 4) && time_ok && *zone == "GMT" {
        Ok(())
    } else {
        Err(err)
    }
}

/// Comma-separated tokens (Require, Proxy-Require, Supported, Allow).
pub fn parse_tokens(v: &str) -> Vec<&str> {
    split_list_str(v)
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect()
}

/// Digest credentials or challenge: scheme and its comma-separated `name=value` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthParams<'a> {
    pub scheme: &'a str,
    pub params: Vec<(&'a str, &'a str)>,
}

impl<'a> AuthParams<'a> {
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

pub fn parse_auth(v: &str) -> Result<AuthParams<'_>, HdrError> {
    let err = HdrError("Authorization");
    let v = trim_lws(v);
    let sp = v.find([' ', '\t']).unwrap_or(v.len());
    let scheme = &v[..sp];
    if scheme.is_empty() || !scheme.bytes().all(is_token_char) {
        return Err(err);
    }
    let mut params = Vec::new();
    for p in split_list_str(&v[sp..]) {
        if p.is_empty() {
            continue;
        }
        let eq = p.find('=').ok_or(err)?;
        params.push((trim_lws(&p[..eq]), unquote(trim_lws(&p[eq + 1..]))));
    }
    Ok(AuthParams { scheme, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_forms() {
        let v = parse_via("SIP  /   2.0  /  UDP  192.0.2.2:5060 ; branch=z9hG4bK1;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert_eq!(v.rport(), Some(None));
        let v = parse_via("SIP/2.0/TCP [2001:db8::9:1]:5070;received=2001:db8::9:255").unwrap();
        assert_eq!(v.host_bare(), "2001:db8::9:1");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received(), Some("2001:db8::9:255"));
        assert!(parse_via_strict("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(parse_via("").is_err());
        assert!(parse_via("SIP/2.0/UDP [2001:db8::10").is_err());
    }

    #[test]
    fn via_sent_by_end() {
        let t = "SIP/2.0/UDP h.example:5060;branch=z9hG4bK1";
        let v = parse_via(t).unwrap();
        assert_eq!(&t[..v.sent_by_end], "SIP/2.0/UDP h.example:5060");
    }

    #[test]
    fn name_addr_forms() {
        let n = parse_name_addr("\"caller\"<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, Some("\"caller\""));
        assert_eq!(n.uri, "sip:caller@example.com");
        assert_eq!(n.tag(), Some("323"));
        let n =
            parse_name_addr("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.uri, "sip:vivekg@chair-dnrc.example.com");
        assert_eq!(n.tag(), Some("1918181833n"));
        let n = parse_name_addr("sip:caller@example.net;tag=1").unwrap();
        assert_eq!(n.uri, "sip:caller@example.net");
        assert_eq!(n.tag(), Some("1"));
        // torture: unterminated quote, spaces in addr-spec, non-token display, bare '?'
        assert!(parse_name_addr_strict("\"Mr J. User <sip:j.user@example.com>").is_err());
        assert!(parse_name_addr_strict("\"W\" < sip:t.watson@example.org >").is_err());
        assert!(
            parse_name_addr_strict("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err()
        );
        assert!(
            parse_name_addr_strict("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err()
        );
        assert!(parse_name_addr_strict("<sip:joe@example.org>;;;;").is_err());
    }

    #[test]
    fn scalars() {
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert_eq!(parse_cseq("8 INVITE").unwrap().seq, 8);
        assert!(parse_max_forwards("300").is_err());
        assert_eq!(parse_max_forwards("70"), Ok(70));
        assert_eq!(parse_max_forwards("0068"), Ok(68));
        assert!(parse_delta_seconds("100000000000000000000").is_err());
        assert!(parse_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(parse_date("Sat, 13 Nov 2010 23:29:00 GMT").is_ok());
    }

    #[test]
    fn auth() {
        let a = parse_auth("Digest username=\"bob\", realm=\"b.com\", nonce=\"x,y\", qop=auth")
            .unwrap();
        assert_eq!(a.scheme, "Digest");
        assert_eq!(a.get("nonce"), Some("x,y"));
        assert_eq!(a.get("qop"), Some("auth"));
    }

    #[test]
    fn list_spans_splits_as_split_list_str() {
        for v in [
            "a",
            "<sip:a@x>;q=1, \"B, \\\"quoted\\\" <\" <sip:b@x>, <sip:c@x;p=1,2>",
            " x , , y,",
            ",",
            "\"unterminated, a, b",
            "SIP/2.0/UDP h1;branch=z9hG4bK1 ,SIP/2.0/TCP [::1]:5060",
        ] {
            let raw = format!("OPTIONS sip:x SIP/2.0\r\nContact: {v}\r\n\r\n");
            let m = Message::parse(bytes::Bytes::from(raw)).expect("parses");
            let h = m.header(crate::sip::HdrName::Contact).expect("Contact");
            let got: Vec<&str> = list_spans(&m, h.value).map(|s| m.text(s)).collect();
            assert_eq!(got, split_list_str(m.text(h.value)), "{v}");
            assert_eq!(
                split_list(&m, h.value),
                list_spans(&m, h.value).collect::<Vec<_>>()
            );
            assert_eq!(
                Some(first_in_list(&m, h.value)),
                list_spans(&m, h.value).next()
            );
        }
    }
}
