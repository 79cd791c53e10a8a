//! Header field names: case-insensitive, with the compact forms of RFC 3261 §7.3.3.

/// Header fields a proxy looks at. Everything else is `Other` and keeps its name text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HdrName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    Route,
    RecordRoute,
    MaxForwards,
    ContentLength,
    ContentType,
    Expires,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Require,
    ProxyRequire,
    Supported,
    Unsupported,
    Allow,
    UserAgent,
    Server,
    Date,
    Event,
    Subject,
    Path,
    Accept,
    Other,
}

impl HdrName {
    /// Identifies a header name (full or compact form), ignoring case.
    pub fn parse(name: &[u8]) -> HdrName {
        if name.is_empty() {
            return HdrName::Other;
        }
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
                b'v' => HdrName::Via,
                b'f' => HdrName::From,
                b't' => HdrName::To,
                b'i' => HdrName::CallId,
                b'm' => HdrName::Contact,
                b'l' => HdrName::ContentLength,
                b'c' => HdrName::ContentType,
                b'k' => HdrName::Supported,
                b'o' => HdrName::Event,
                b's' => HdrName::Subject,
                _ => HdrName::Other,
            };
        }
        const TABLE: &[(&[u8], HdrName)] = &[
            (b"via", HdrName::Via),
            (b"from", HdrName::From),
            (b"to", HdrName::To),
            (b"call-id", HdrName::CallId),
            (b"cseq", HdrName::CSeq),
            (b"contact", HdrName::Contact),
            (b"route", HdrName::Route),
            (b"record-route", HdrName::RecordRoute),
            (b"max-forwards", HdrName::MaxForwards),
            (b"content-length", HdrName::ContentLength),
            (b"content-type", HdrName::ContentType),
            (b"expires", HdrName::Expires),
            (b"authorization", HdrName::Authorization),
            (b"proxy-authorization", HdrName::ProxyAuthorization),
            (b"www-authenticate", HdrName::WwwAuthenticate),
            (b"proxy-authenticate", HdrName::ProxyAuthenticate),
            (b"require", HdrName::Require),
            (b"proxy-require", HdrName::ProxyRequire),
            (b"supported", HdrName::Supported),
            (b"unsupported", HdrName::Unsupported),
            (b"allow", HdrName::Allow),
            (b"user-agent", HdrName::UserAgent),
            (b"server", HdrName::Server),
            (b"date", HdrName::Date),
            (b"event", HdrName::Event),
            (b"subject", HdrName::Subject),
            (b"path", HdrName::Path),
            (b"accept", HdrName::Accept),
        ];
        let first = name[0].to_ascii_lowercase();
        for (n, h) in TABLE {
            if n.len() == name.len() && n[0] == first && n.eq_ignore_ascii_case(name) {
                return *h;
            }
        }
        HdrName::Other
    }

    /// True when a header of this kind may carry several comma-separated values.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            HdrName::Via
                | HdrName::Contact
                | HdrName::Route
                | HdrName::RecordRoute
                | HdrName::Require
                | HdrName::ProxyRequire
                | HdrName::Supported
                | HdrName::Unsupported
                | HdrName::Allow
                | HdrName::Path
                | HdrName::Accept
        )
    }

    /// Header fields that may appear only once (RFC 3261 §20; multi01 torture test).
    pub fn is_single(self) -> bool {
        matches!(
            self,
            HdrName::From
                | HdrName::To
                | HdrName::CallId
                | HdrName::CSeq
                | HdrName::MaxForwards
                | HdrName::ContentLength
                | HdrName::ContentType
                | HdrName::Expires
        )
    }

    /// True when `text` names this header (full or compact form).
    pub fn matches(self, text: &str) -> bool {
        self != HdrName::Other && HdrName::parse(text.as_bytes()) == self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case() {
        assert_eq!(HdrName::parse(b"v"), HdrName::Via);
        assert_eq!(HdrName::parse(b"VIA"), HdrName::Via);
        assert_eq!(HdrName::parse(b"cAlL-iD"), HdrName::CallId);
        assert_eq!(HdrName::parse(b"i"), HdrName::CallId);
        assert_eq!(HdrName::parse(b"l"), HdrName::ContentLength);
        assert_eq!(HdrName::parse(b"X-Foo"), HdrName::Other);
    }
}
