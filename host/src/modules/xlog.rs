//! `KSR.xlog`: log lines with their pseudo-variables expanded (Kamailio's xlog module):
//! `xdbg`, `xinfo`, `xnotice`, `xwarn`, `xerr`, `xalert`, `xcrit`, `xlog(level, text)`
//! and `xlog_facility(facility, level, text)`. They log to the `script` target like
//! `KSR.info` & co. and answer 1, or -1 (with an error logged) for an invalid format.

use tracing::Level;

use crate::export;
use crate::kemi::{s, Ctx, Export, KemiError, Val};

use super::pv;

pub fn exports() -> Vec<Export> {
    vec![
        export!("xlog", "xdbg", [Str], Int, |c, a| xlog(
            c,
            Level::DEBUG,
            s(a, 0)
        )),
        export!("xlog", "xinfo", [Str], Int, |c, a| xlog(
            c,
            Level::INFO,
            s(a, 0)
        )),
        export!("xlog", "xnotice", [Str], Int, |c, a| xlog(
            c,
            Level::INFO,
            s(a, 0)
        )),
        export!("xlog", "xwarn", [Str], Int, |c, a| xlog(
            c,
            Level::WARN,
            s(a, 0)
        )),
        export!("xlog", "xerr", [Str], Int, |c, a| xlog(
            c,
            Level::ERROR,
            s(a, 0)
        )),
        export!("xlog", "xalert", [Str], Int, |c, a| xlog(
            c,
            Level::ERROR,
            s(a, 0)
        )),
        export!("xlog", "xcrit", [Str], Int, |c, a| xlog(
            c,
            Level::ERROR,
            s(a, 0)
        )),
        export!("xlog", "xlog", [Str, Str], Int, |c, a| xlog(
            c,
            level(s(a, 0)),
            s(a, 1)
        )),
        // The syslog facility has no meaning for kemibox's log: accepted, not used.
        export!("xlog", "xlog_facility", [Str, Str, Str], Int, |c, a| xlog(
            c,
            level(s(a, 1)),
            s(a, 2)
        )),
    ]
}

/// Kamailio's level names (`ki_xlog_get_level`, case-insensitive); anything else is
/// `L_ERR`.
fn level(name: &str) -> Level {
    match name.to_ascii_lowercase().as_str() {
        "l_dbg" => Level::DEBUG,
        "l_info" | "l_notice" => Level::INFO,
        "l_warn" => Level::WARN,
        _ => Level::ERROR,
    }
}

fn xlog(c: &mut Ctx, level: Level, fmt: &str) -> Result<Val, KemiError> {
    // A level the log does not show costs no expansion (Kamailio's `is_printable`).
    let shown = match level {
        Level::DEBUG => tracing::enabled!(target: "script", Level::DEBUG),
        Level::INFO => tracing::enabled!(target: "script", Level::INFO),
        Level::WARN => tracing::enabled!(target: "script", Level::WARN),
        _ => tracing::enabled!(target: "script", Level::ERROR),
    };
    if !shown {
        return Ok(Val::Int(1));
    }
    Ok(Val::Int(emit(c, level, fmt)))
}

/// Expands `fmt` and logs it at `level`: 1, or -1 (and an error logged) when the format
/// is invalid.
fn emit(c: &Ctx, level: Level, fmt: &str) -> i64 {
    let text = match pv::format(c, fmt) {
        Ok(t) => t,
        Err(e) => {
            let fmt = fmt.trim_end_matches('\n');
            tracing::error!(target: "script", "xlog: invalid format [{fmt}]: {e}");
            return -1;
        }
    };
    let text = text.trim_end_matches('\n');
    let ci = c.msg.call_id().unwrap_or("");
    match level {
        Level::DEBUG => tracing::debug!(target: "script", callid = ci, "{text}"),
        Level::INFO => tracing::info!(target: "script", callid = ci, "{text}"),
        Level::WARN => tracing::warn!(target: "script", callid = ci, "{text}"),
        _ => tracing::error!(target: "script", callid = ci, "{text}"),
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Proto;
    use crate::testutil::{ctx, env};

    const MSG: &str = "OPTIONS sip:bob@example.net:5070;transport=udp SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-1\r\n\
        From: \"Al\" <sip:alice@example.com>;tag=f1\r\n\
        To: <sip:bob@example.net>\r\nCall-ID: call-1\r\nCSeq: 7 OPTIONS\r\n\
        User-Agent: phone (1.0)\r\nContent-Length: 0\r\n\r\n";

    fn expand(fmt: &str) -> Result<String, String> {
        let (env, _) = env(&["udp:127.0.0.1:5060"], &[], "");
        let mut c = ctx(&env, MSG, Proto::Udp, "127.0.0.1:5090");
        c.vars.insert("n".into(), Val::Int(5));
        pv::format(&c, fmt)
    }

    #[test]
    fn pseudo_variables_expand_as_kamailio_prints_them() {
        assert_eq!(
            expand("$rm $ru $rU@$rd:$rp $fu $fU $fn $ft $tU $ci $cs $si $hdr(User-Agent)\n")
                .as_deref(),
            Ok(
                "OPTIONS sip:bob@example.net:5070;transport=udp bob@example.net:5070 \
                sip:alice@example.com alice \"Al\" f1 bob call-1 7 127.0.0.1 phone (1.0)\n"
            )
        );
        // An unset $var is 0, an unset $avp and a missing header are $null.
        assert_eq!(
            expand("n=$var(n) m=$var(m) a=$avp(x) h=$hdr(X-None) t=$tt").as_deref(),
            Ok("n=5 m=0 a=<null> h=<null> t=<null>")
        );
        // `$$` is a dollar, `$(name)` the same as `$name`, text around untouched.
        assert_eq!(
            expand("cost: $$5, $(rm)/$(hdr(CSeq)), 100%").as_deref(),
            Ok("cost: $5, OPTIONS/7 OPTIONS, 100%")
        );
        assert_eq!(expand("").as_deref(), Ok(""));
    }

    #[test]
    fn an_invalid_format_is_an_error() {
        for bad in [
            "a lone $ sign",
            "trailing $",
            "$nosuch here",
            "$rm(x)",
            "$hdr",
            "$hdr(Via",
            "$hdr()",
            "$(hdr(Via)[1])",
            "$(rm{s.len})",
            "$(rm",
        ] {
            assert!(expand(bad).is_err(), "{bad:?} accepted: {:?}", expand(bad));
        }
    }

    #[test]
    fn xlog_answers_1_or_minus_1_for_a_bad_format() {
        let (env, _) = env(&["udp:127.0.0.1:5060"], &[], "");
        let c = ctx(&env, MSG, Proto::Udp, "127.0.0.1:5090");
        assert_eq!(emit(&c, Level::INFO, "$rm from $si\n"), 1);
        assert_eq!(emit(&c, Level::INFO, "$rm from $nosuch\n"), -1);
        assert_eq!(level("L_WARN"), Level::WARN);
        assert_eq!(level("l_crit"), Level::ERROR);
        assert_eq!(level("nonsense"), Level::ERROR);
        assert_eq!(level("L_NOTICE"), Level::INFO);
        assert_eq!(level("l_dbg"), Level::DEBUG);
    }
}
