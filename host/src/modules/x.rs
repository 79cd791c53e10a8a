//! `KSR.x`: control flow out of the routing script.

use crate::export;
use crate::kemi::{Ctx, Export, KemiError, Val};

pub fn exports() -> Vec<Export> {
    vec![
        export!("x", "exit", [], None, |_, _| Err(KemiError::Exit)),
        export!("x", "drop", [], None, drop),
        export!("x", "probe", [], None, |_, _| Ok(Val::None)),
    ]
}

/// Marks the message dropped and stops the script.
fn drop(ctx: &mut Ctx, _: &[Val]) -> Result<Val, KemiError> {
    ctx.drop = true;
    Err(KemiError::Drop)
}
