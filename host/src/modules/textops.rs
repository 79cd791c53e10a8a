//! `KSR.textops`: regular-expression tests and edits on the message text, and small
//! string helpers. Kamailio uses POSIX ERE case-insensitive; kemibox uses the `regex`
//! crate with case-insensitive, multi-line matching.

use bytes::Bytes;
use regex::{Regex, RegexBuilder};

use crate::export;
use crate::kemi::{s, Ctx, Export, KemiError, Val};
use crate::sip::HdrName;

type R = Result<Val, KemiError>;

fn i(v: i64) -> R {
    Ok(Val::Int(v))
}
fn yes(b: bool) -> R {
    i(if b { 1 } else { -1 })
}

fn re(p: &str) -> Option<Regex> {
    match RegexBuilder::new(p)
        .case_insensitive(true)
        .multi_line(true)
        .size_limit(1 << 20)
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(target: "script", "bad regular expression `{p}`: {e}");
            None
        }
    }
}

pub fn exports() -> Vec<Export> {
    vec![
        export!("textops", "search", [Str], Int, |c, a| {
            if s(a, 0).is_empty() {
                return i(1);
            }
            let text = String::from_utf8_lossy(c.msg.buf());
            yes(re(s(a, 0)).is_some_and(|r| r.is_match(&text)))
        }),
        export!("textops", "search_body", [Str], Int, |c, a| {
            let body = String::from_utf8_lossy(c.msg.body_bytes());
            if body.is_empty() {
                return i(-1);
            }
            yes(s(a, 0).is_empty() || re(s(a, 0)).is_some_and(|r| r.is_match(&body)))
        }),
        export!("textops", "search_hf", [Str, Str, Str], Int, |c, a| {
            let Some(r) = re(s(a, 1)) else { return i(-1) };
            let vals: Vec<&str> = c
                .msg
                .headers_by_text(s(a, 0))
                .map(|h| c.msg.text(h.value))
                .collect();
            let pick: Vec<&str> = match s(a, 2) {
                "f" => vals.first().copied().into_iter().collect(),
                "l" => vals.last().copied().into_iter().collect(),
                _ => vals,
            };
            yes(pick.iter().any(|v| r.is_match(v)))
        }),
        export!("textops", "is_present_hf", [Str], Int, |c, a| yes(c
            .msg
            .headers_by_text(s(a, 0))
            .next()
            .is_some())),
        export!("textops", "is_present_hf_re", [Str], Int, |c, a| {
            let Some(r) = re(s(a, 0)) else { return i(-1) };
            yes(c
                .msg
                .headers
                .iter()
                .any(|h| r.is_match(c.msg.text(h.name_span))))
        }),
        export!("textops", "remove_hf", [Str], Int, |c, a| {
            super::hdr::remove(c, s(a, 0))
        }),
        export!("textops", "remove_hf_re", [Str], Int, |c, a| {
            let Some(r) = re(s(a, 0)) else { return i(-1) };
            let lines: Vec<_> = c
                .msg
                .headers
                .iter()
                .filter(|h| r.is_match(c.msg.text(h.name_span)))
                .map(|h| h.line)
                .collect();
            let found = !lines.is_empty();
            for l in lines {
                c.lumps.delete(l);
            }
            yes(found)
        }),
        export!("textops", "replace", [Str, Str], Int, |c, a| replace(
            c,
            s(a, 0),
            s(a, 1),
            false
        )),
        export!("textops", "replace_all", [Str, Str], Int, |c, a| replace(
            c,
            s(a, 0),
            s(a, 1),
            true
        )),
        export!("textops", "has_body", [], Int, |c, _| yes(c
            .msg
            .declared_len
            .is_some_and(|n| n > 0))),
        export!("textops", "has_body_type", [Str], Int, |c, a| {
            let ct = c
                .msg
                .value(HdrName::ContentType)
                .unwrap_or("application/sdp");
            let ct = ct.split(';').next().unwrap_or("").trim();
            yes(c.msg.declared_len.is_some_and(|n| n > 0) && ct.eq_ignore_ascii_case(s(a, 0)))
        }),
        export!("textops", "set_reply_body", [Str, Str], Int, |c, a| {
            if s(a, 0).is_empty() || s(a, 1).is_empty() {
                return i(-1);
            }
            c.reply_body = Some((s(a, 1).to_string(), Bytes::from(s(a, 0).to_string())));
            i(1)
        }),
        export!("textops", "in_list", [Str, Str, Str], Int, |_, a| {
            let (subj, list, sep) = (s(a, 0), s(a, 1), s(a, 2));
            let Some(sep) = sep.chars().next() else {
                return i(-1);
            };
            if subj.is_empty() || list.is_empty() {
                return i(-1);
            }
            yes(list.split(sep).any(|it| it.trim() == subj))
        }),
        export!("textops", "in_list_prefix", [Str, Str, Str], Int, |_, a| {
            let (subj, list, sep) = (s(a, 0), s(a, 1), s(a, 2));
            let Some(sep) = sep.chars().next() else {
                return i(-1);
            };
            yes(list
                .split(sep)
                .map(str::trim)
                .any(|it| !it.is_empty() && subj.starts_with(it)))
        }),
        export!("textops", "cmp_str", [Str, Str], Int, |_, a| cmp(
            s(a, 0),
            s(a, 1)
        )),
        export!("textops", "cmp_istr", [Str, Str], Int, |_, a| cmp(
            &s(a, 0).to_lowercase(),
            &s(a, 1).to_lowercase()
        )),
        export!("textops", "starts_with", [Str, Str], Int, |_, a| {
            let (t, p) = (s(a, 0), s(a, 1));
            if t.starts_with(p) {
                i(1)
            } else if t.len() < p.len() || t > p {
                i(-1)
            } else {
                i(-2)
            }
        }),
        export!("textops", "ends_with", [Str, Str], Int, |_, a| {
            let (t, p) = (s(a, 0), s(a, 1));
            if t.ends_with(p) {
                i(1)
            } else if t.len() < p.len() || t > p {
                i(-1)
            } else {
                i(-2)
            }
        }),
        export!("textops", "str_find", [Str, Str], Int, |_, a| {
            i(s(a, 0).find(s(a, 1)).map(|p| p as i64 + 1).unwrap_or(-1))
        }),
        export!("textops", "str_ifind", [Str, Str], Int, |_, a| {
            i(s(a, 0)
                .to_lowercase()
                .find(&s(a, 1).to_lowercase())
                .map(|p| p as i64 + 1)
                .unwrap_or(-1))
        }),
    ]
}

fn cmp(a: &str, b: &str) -> R {
    i(match a.cmp(b) {
        std::cmp::Ordering::Equal => 1,
        std::cmp::Ordering::Greater => -1,
        std::cmp::Ordering::Less => -2,
    })
}

/// Replaces the first (or every) match after the start line, as lumps.
fn replace(c: &mut Ctx, pattern: &str, with: &str, all: bool) -> R {
    let Some(r) = re(pattern) else { return i(-1) };
    let start = c.msg.first_line.end as usize;
    let Ok(text) = std::str::from_utf8(&c.msg.buf()[start..]) else {
        return i(-1);
    };
    let spans: Vec<(usize, usize)> = r
        .find_iter(text)
        .filter(|m| !m.is_empty())
        .take(if all { usize::MAX } else { 1 })
        .map(|m| (m.start() + start, m.end() + start))
        .collect();
    if spans.is_empty() {
        return i(-1);
    }
    for (s0, e0) in spans {
        c.lumps
            .replace(crate::sip::Span::new(s0, e0), Bytes::from(with.to_string()));
    }
    i(1)
}
