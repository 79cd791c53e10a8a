//! URIs: `sip:`, `sips:`, `tel:` with parameters and headers, IPv6 references (RFC 5118);
//! any other scheme is kept opaque.

use std::fmt::Write;

use thiserror::Error;

use super::hdr::{split_host_port, Params};

#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
pub enum UriError {
    #[error("URI has no scheme")]
    NoScheme,
    #[error("URI has a bad host or port")]
    BadHostPort,
    #[error("URI contains a forbidden character")]
    BadChar,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other,
}

/// A parsed URI borrowing its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    pub scheme_text: &'a str,
    /// sip/sips user part; for tel: the number.
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// Host as written (IPv6 keeps brackets); empty for tel and opaque URIs.
    pub host: &'a str,
    pub port: Option<u16>,
    /// From the first `;` after the host (or number) up to `?`.
    pub params: Params<'a>,
    /// After `?`, without it.
    pub headers: Option<&'a str>,
    /// The scheme-specific part of a URI of another scheme.
    pub opaque: &'a str,
}

impl<'a> Uri<'a> {
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        let colon = s.find(':').ok_or(UriError::NoScheme)?;
        let scheme_text = &s[..colon];
        let first_ok = scheme_text
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
        if !first_ok
            || !scheme_text
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(UriError::NoScheme);
        }
        let rest = &s[colon + 1..];
        if rest
            .bytes()
            .any(|c| c <= b' ' || matches!(c, b'<' | b'>' | b'"'))
        {
            return Err(UriError::BadChar);
        }
        let scheme = if scheme_text.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_text.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_text.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        let empty = Uri {
            scheme,
            scheme_text,
            user: None,
            password: None,
            host: "",
            port: None,
            params: Params(""),
            headers: None,
            opaque: rest,
        };
        match scheme {
            Scheme::Other => Ok(empty),
            Scheme::Tel => {
                let end = rest.find(';').unwrap_or(rest.len());
                if end == 0 {
                    return Err(UriError::BadChar);
                }
                Ok(Uri {
                    user: Some(&rest[..end]),
                    params: Params(&rest[end..]),
                    ..empty
                })
            }
            Scheme::Sip | Scheme::Sips => {
                let (userinfo, hostpart) = match rest.find('@') {
                    Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
                    None => (None, rest),
                };
                let (user, password) = match userinfo {
                    None => (None, None),
                    Some(ui) => match ui.find(':') {
                        Some(i) => (Some(&ui[..i]), Some(&ui[i + 1..])),
                        None => (Some(ui), None),
                    },
                };
                let (before_q, headers) = match hostpart.find('?') {
                    Some(q) => (&hostpart[..q], Some(&hostpart[q + 1..])),
                    None => (hostpart, None),
                };
                let hp_end = before_q.find(';').unwrap_or(before_q.len());
                let (host, port) =
                    split_host_port(&before_q[..hp_end]).ok_or(UriError::BadHostPort)?;
                if host.is_empty() {
                    return Err(UriError::BadHostPort);
                }
                Ok(Uri {
                    user,
                    password,
                    host,
                    port,
                    params: Params(&before_q[hp_end..]),
                    headers,
                    ..empty
                })
            }
        }
    }

    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// Host without IPv6 brackets.
    pub fn host_bare(&self) -> &'a str {
        super::hdr::strip_brackets(self.host)
    }

    /// `transport` URI parameter, lower-cased by the caller as needed.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params.get(name)
    }

    /// Rebuilds the URI text with parts replaced (used by seturi/setuser/sethost/...).
    pub fn rebuild(&self, edit: UriEdit<'_>) -> String {
        let mut out = String::with_capacity(64);
        out.push_str(self.scheme_text);
        out.push(':');
        if self.scheme == Scheme::Other {
            out.push_str(self.opaque);
            return out;
        }
        let user = match edit.user {
            Some(u) => (!u.is_empty()).then_some(u),
            None => self.user,
        };
        if let Some(u) = user {
            out.push_str(u);
            if self.scheme == Scheme::Tel {
                out.push_str(self.params.0);
                return out;
            }
            if let Some(p) = self.password {
                out.push(':');
                out.push_str(p);
            }
            out.push('@');
        }
        out.push_str(edit.host.unwrap_or(self.host));
        match edit.port {
            Some(Some(p)) => {
                let _ = write!(out, ":{p}");
            }
            Some(None) => {}
            None => {
                if let Some(p) = self.port {
                    let _ = write!(out, ":{p}");
                }
            }
        }
        out.push_str(edit.params.unwrap_or(self.params.0));
        if let Some(h) = self.headers {
            out.push('?');
            out.push_str(h);
        }
        out
    }
}

/// Replacements for [`Uri::rebuild`]; `None` keeps the part.
#[derive(Default, Clone, Copy)]
pub struct UriEdit<'b> {
    /// `Some("")` removes the user part.
    pub user: Option<&'b str>,
    pub host: Option<&'b str>,
    /// `Some(None)` removes the port.
    pub port: Option<Option<u16>>,
    pub params: Option<&'b str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri() {
        let u = Uri::parse("sip:alice:secret@atlanta.com:5070;transport=tcp;lr?subject=x").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, "atlanta.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport(), Some("tcp"));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers, Some("subject=x"));
    }

    #[test]
    fn ipv6_references() {
        let u = Uri::parse("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(u.host_bare(), "2001:db8::10");
        assert_eq!(u.port, Some(5070));
        // Port ambiguity (RFC 5118 §4.4): inside the brackets it is part of the address.
        let u = Uri::parse("sip:user@[2001:db8::10:5070]").unwrap();
        assert_eq!(u.port, None);
        assert!(Uri::parse("sip:2001:db8::10").is_err());
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert!(Uri::parse("sip:user@[2001:db8:::192.0.2.1]").is_ok());
    }

    #[test]
    fn user_with_semicolon_and_tel() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=x").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, Some("+1-201-555-0123"));
        let o = Uri::parse("isbn:2983792873").unwrap();
        assert_eq!(o.scheme, Scheme::Other);
    }

    #[test]
    fn rebuild() {
        let u = Uri::parse("sip:alice@atlanta.com:5070;lr").unwrap();
        assert_eq!(
            u.rebuild(UriEdit {
                user: Some("bob"),
                ..Default::default()
            }),
            "sip:bob@atlanta.com:5070;lr"
        );
        assert_eq!(
            u.rebuild(UriEdit {
                host: Some("10.0.0.1"),
                port: Some(None),
                ..Default::default()
            }),
            "sip:alice@10.0.0.1;lr"
        );
    }
}
