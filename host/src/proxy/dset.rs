//! The destination set: the Request-URI (when the script rewrote it) and the appended
//! branches, each with its q value. A locally generated 3xx reply lists it as Contact
//! (a redirect server: `lookup` then `sl_send_reply(302, ...)`), the way Kamailio's
//! `print_dset` does: `Contact: <uri1>;q=1, <uri2>;q=0.5, <uri3>`.

use crate::kemi::Ctx;

/// A q value as Kamailio prints it: "1" for 1 and above, "0" for 0 and below, else up to
/// three decimals without trailing zeros ("0.5", "0.25"). Negative means unspecified
/// (no q parameter): `None`.
pub fn q_text(q: f64) -> Option<String> {
    if q < 0.0 {
        return None;
    }
    if q >= 1.0 {
        return Some("1".into());
    }
    let milli = (q * 1000.0).round() as u32;
    if milli == 0 {
        return Some("0".into());
    }
    let t = format!("0.{milli:03}");
    Some(t.trim_end_matches('0').to_string())
}

/// Parses a q value given by a script ("0.5", "1", "1.0", ".25"); `None` if it is not a
/// number between 0 and 1. Returns it normalised by [`q_text`].
pub fn parse_q(text: &str) -> Option<String> {
    let q: f64 = text.trim().parse().ok()?;
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    q_text(q)
}

/// The Contact header line (without CRLF) of a locally generated 3xx reply, or `None`
/// when the destination set is empty (the Request-URI was not rewritten and there are
/// no branches): then the reply has no Contact, as in Kamailio.
pub fn redirect_contact(ctx: &Ctx) -> Option<String> {
    let mut out = String::from("Contact: ");
    let mut n = 0;
    let ruri = ctx.new_uri.as_deref().map(|u| (u, ctx.ruri_q.as_deref()));
    let branches = ctx.branches.iter().map(|(u, q)| (u.as_str(), q.as_deref()));
    for (uri, q) in ruri.into_iter().chain(branches) {
        if n > 0 {
            out.push_str(", ");
        }
        out.push('<');
        out.push_str(uri);
        out.push('>');
        if let Some(q) = q {
            out.push_str(";q=");
            out.push_str(q);
        }
        n += 1;
    }
    (n > 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Proto;
    use crate::proxy::reply::send_reply;
    use crate::testutil;

    #[test]
    fn q_prints_like_kamailio() {
        assert_eq!(q_text(-1.0), None);
        assert_eq!(q_text(1.0).as_deref(), Some("1"));
        assert_eq!(q_text(0.0).as_deref(), Some("0"));
        assert_eq!(q_text(0.5).as_deref(), Some("0.5"));
        assert_eq!(q_text(0.25).as_deref(), Some("0.25"));
        assert_eq!(q_text(0.125).as_deref(), Some("0.125"));
        assert_eq!(q_text(0.1).as_deref(), Some("0.1"));
        assert_eq!(parse_q("1.0").as_deref(), Some("1"));
        assert_eq!(parse_q("0.50").as_deref(), Some("0.5"));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("high"), None);
    }

    const INVITE: &str = "INVITE sip:alice@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:b@example.com>;tag=1\r\n\
To: <sip:alice@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn contact_lists_the_new_uri_then_the_branches() {
        let (env, _) = testutil::env(&["udp:127.0.0.1:5060"], &["sl"], "");
        let mut c = testutil::ctx(&env, INVITE, Proto::Udp, "127.0.0.1:5060");
        // Nothing rewritten, no branches: no Contact.
        assert_eq!(redirect_contact(&c), None);
        c.branches.push(("sip:alice@10.0.0.7".into(), None));
        assert_eq!(
            redirect_contact(&c).as_deref(),
            Some("Contact: <sip:alice@10.0.0.7>")
        );
        c.new_uri = Some("sip:alice@10.0.0.5:5070".into());
        c.ruri_q = Some("1".into());
        c.branches.push((
            "sip:alice@10.0.0.6;transport=tcp".into(),
            Some("0.5".into()),
        ));
        assert_eq!(
            redirect_contact(&c).as_deref(),
            Some(
                "Contact: <sip:alice@10.0.0.5:5070>;q=1, <sip:alice@10.0.0.7>, \
<sip:alice@10.0.0.6;transport=tcp>;q=0.5"
            )
        );
    }

    #[test]
    fn only_a_3xx_reply_carries_the_destination_set() {
        let (env, rec) = testutil::env(&["udp:127.0.0.1:5060"], &["sl"], "");
        let mut c = testutil::ctx(&env, INVITE, Proto::Udp, "127.0.0.1:5060");
        c.new_uri = Some("sip:alice@10.0.0.5".into());
        send_reply(&mut c, 404, "Not Found").expect("sent");
        send_reply(&mut c, 302, "Moved Temporarily").expect("sent");
        let sent = rec.texts();
        assert!(sent[0].starts_with("SIP/2.0 404") && !sent[0].contains("Contact:"));
        assert!(sent[1].starts_with("SIP/2.0 302 Moved Temporarily\r\n"));
        assert!(sent[1].contains("\r\nContact: <sip:alice@10.0.0.5>\r\n"));
    }
}
