//! `KSR.maxfwd`: Max-Forwards processing (RFC 3261 §16.6 step 3).

use bytes::Bytes;

use crate::export;
use crate::kemi::{n, Ctx, Export, KemiError, Val};
use crate::sip::hdr::parse_max_forwards;
use crate::sip::HdrName;

type R = Result<Val, KemiError>;

pub fn exports() -> Vec<Export> {
    vec![
        export!("maxfwd", "process_maxfwd", [Int], Int, process),
        export!("maxfwd", "is_maxfwd_lt", [Int], Int, |c, a| {
            let limit = n(a, 0);
            if !(0..=255).contains(&limit) {
                return Ok(Val::Int(-1));
            }
            Ok(Val::Int(match c.msg.value(HdrName::MaxForwards) {
                None => -2,
                Some(v) => match parse_max_forwards(v) {
                    Err(_) => -3,
                    Ok(mf) if (mf as i64) < limit => 1,
                    Ok(_) => -1,
                },
            }))
        }),
    ]
}

/// 2: header added with `limit`; 1: decremented; -1: reached 0 (or bad limit); -2: bad header.
fn process(c: &mut Ctx, a: &[Val]) -> R {
    let limit = n(a, 0);
    if !(0..=255).contains(&limit) {
        return Ok(Val::Int(-1));
    }
    let max_limit = c
        .env
        .cfg
        .modparam_int("maxfwd", "max_limit", 70)
        .clamp(0, 255);
    let Some(h) = c.msg.header(HdrName::MaxForwards).copied() else {
        let at = super::hdr::start_of_headers(c);
        c.lumps
            .insert(at, Bytes::from(format!("Max-Forwards: {limit}\r\n")));
        return Ok(Val::Int(2));
    };
    let Ok(mut mf) = parse_max_forwards(c.msg.text(h.value)) else {
        return Ok(Val::Int(-2));
    };
    if mf == 0 {
        return Ok(Val::Int(-1));
    }
    if mf as i64 > max_limit {
        mf = max_limit as u8 + 1;
    }
    c.lumps.replace(h.value, Bytes::from((mf - 1).to_string()));
    Ok(Val::Int(1))
}
