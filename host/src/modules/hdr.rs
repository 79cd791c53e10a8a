//! `KSR.hdr`: add, remove and read header fields. Changes are lumps; reads see the
//! message as received.

use bytes::Bytes;

use crate::export;
use crate::kemi::{n, s, Ctx, Export, KemiError, Val};
use crate::sip::Header;

type R = Result<Val, KemiError>;

pub fn exports() -> Vec<Export> {
    vec![
        export!("hdr", "append", [Str], Int, |c, a| append(c, s(a, 0))),
        export!("hdr", "append_after", [Str, Str], Int, |c, a| {
            let at = c
                .msg
                .headers_by_text(s(a, 1))
                .next()
                .map(|h| h.line.end as usize);
            let at = at.unwrap_or_else(|| end_of_headers(c));
            c.lumps.insert(at, Bytes::from(s(a, 0).to_string()));
            Ok(Val::Int(1))
        }),
        export!("hdr", "insert", [Str], Int, |c, a| insert(c, s(a, 0))),
        export!("hdr", "insert_before", [Str, Str], Int, |c, a| {
            let at = c
                .msg
                .headers_by_text(s(a, 1))
                .next()
                .map(|h| h.line.start as usize);
            let at = at.unwrap_or_else(|| start_of_headers(c));
            c.lumps.insert(at, Bytes::from(s(a, 0).to_string()));
            Ok(Val::Int(1))
        }),
        export!("hdr", "remove", [Str], Int, |c, a| remove(c, s(a, 0))),
        export!("hdr", "rmappend", [Str, Str], Int, |c, a| {
            remove(c, s(a, 0))?;
            append(c, s(a, 1))
        }),
        export!("hdr", "rminsert", [Str, Str], Int, |c, a| {
            remove(c, s(a, 0))?;
            insert(c, s(a, 1))
        }),
        export!("hdr", "is_present", [Str], Int, |c, a| {
            Ok(Val::Int(
                if c.msg.headers_by_text(s(a, 0)).next().is_some() {
                    1
                } else {
                    -1
                },
            ))
        }),
        export!("hdr", "append_to_reply", [Str], Int, |c, a| {
            c.reply_lumps.push(s(a, 0).to_string());
            Ok(Val::Int(1))
        }),
        export!("hdr", "get", [Str], XVal, |c, a| Ok(
            get_idx(c, s(a, 0), 0).unwrap_or(Val::None)
        )),
        export!("hdr", "gete", [Str], XVal, |c, a| Ok(get_idx(
            c,
            s(a, 0),
            0
        )
        .unwrap_or(Val::Str(String::new())))),
        export!("hdr", "getw", [Str], XVal, |c, a| Ok(get_idx(
            c,
            s(a, 0),
            0
        )
        .unwrap_or(Val::Str("<null>".into())))),
        export!("hdr", "get_idx", [Str, Int], XVal, |c, a| Ok(get_idx(
            c,
            s(a, 0),
            n(a, 1)
        )
        .unwrap_or(Val::None))),
        export!("hdr", "gete_idx", [Str, Int], XVal, |c, a| Ok(get_idx(
            c,
            s(a, 0),
            n(a, 1)
        )
        .unwrap_or(Val::Str(String::new())))),
        export!("hdr", "getw_idx", [Str, Int], XVal, |c, a| Ok(get_idx(
            c,
            s(a, 0),
            n(a, 1)
        )
        .unwrap_or(Val::Str("<null>".into())))),
    ]
}

/// Offset right after the last header line (before the empty line).
pub fn end_of_headers(c: &Ctx) -> usize {
    c.msg
        .headers
        .last()
        .map(|h| h.line.end as usize)
        .unwrap_or(c.msg.headers_end)
}

pub fn start_of_headers(c: &Ctx) -> usize {
    c.msg
        .headers
        .first()
        .map(|h| h.line.start as usize)
        .unwrap_or(c.msg.headers_end)
}

pub fn append(c: &mut Ctx, text: &str) -> R {
    if text.is_empty() {
        return Ok(Val::Int(-1));
    }
    let at = end_of_headers(c);
    c.lumps.insert(at, Bytes::from(text.to_string()));
    Ok(Val::Int(1))
}

fn insert(c: &mut Ctx, text: &str) -> R {
    if text.is_empty() {
        return Ok(Val::Int(-1));
    }
    let at = start_of_headers(c);
    c.lumps.insert(at, Bytes::from(text.to_string()));
    Ok(Val::Int(1))
}

/// Removes every header of that name; 1 even when none was found (as Kamailio).
pub fn remove(c: &mut Ctx, name: &str) -> R {
    let lines: Vec<_> = c.msg.headers_by_text(name).map(|h| h.line).collect();
    for l in lines {
        c.lumps.delete(l);
    }
    Ok(Val::Int(1))
}

fn get_idx(c: &Ctx, name: &str, idx: i64) -> Option<Val> {
    let all: Vec<&Header> = c.msg.headers_by_text(name).collect();
    let i = if idx >= 0 {
        idx as usize
    } else {
        all.len().checked_sub(idx.unsigned_abs() as usize)?
    };
    all.get(i)
        .map(|h| Val::Str(c.msg.text(h.value).to_string()))
}
