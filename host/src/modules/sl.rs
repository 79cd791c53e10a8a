//! `KSR.sl`: stateless replies.

use crate::export;
use crate::kemi::{n, s, Ctx, Export, KemiError, Val};
use crate::proxy::reply::send_reply;

type R = Result<Val, KemiError>;

pub fn exports() -> Vec<Export> {
    vec![
        export!("sl", "sl_send_reply", [Int, Str], Int, |c, a| reply(
            c,
            n(a, 0),
            s(a, 1)
        )),
        // Without a transaction (tm comes with its issue) send_reply is sl_send_reply.
        export!("sl", "send_reply", [Int, Str], Int, |c, a| reply(
            c,
            n(a, 0),
            s(a, 1)
        )),
        export!("sl", "sl_reply_error", [], Int, reply_error),
        export!("sl", "send_reply_error", [], Int, reply_error),
    ]
}

fn reply(c: &mut Ctx, code: i64, reason: &str) -> R {
    if !(100..=699).contains(&code) || reason.is_empty() {
        return Ok(Val::Int(-1));
    }
    Ok(Val::Int(match send_reply(c, code as u16, reason) {
        Ok(()) => 1,
        Err(e) => {
            tracing::debug!("sl reply not sent: {e}");
            -1
        }
    }))
}

fn reply_error(c: &mut Ctx, _: &[Val]) -> R {
    if c.final_replied {
        return Ok(Val::Int(-2));
    }
    let (code, reason) = c.last_error.unwrap_or((500, "Server Internal Error"));
    if c.txn.is_some() {
        return Ok(Val::Int(super::tm::t_reply(c, code, reason)));
    }
    reply(c, code as i64, reason)
}
