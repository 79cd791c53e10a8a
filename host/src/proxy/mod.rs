//! The stateless proxy core (RFC 3261 §16.11): Via handling, locally generated replies,
//! request and reply forwarding, and the receive pipeline that runs the routing script.

pub mod dset;
pub mod forward;
pub mod myself;
pub mod pipeline;
pub mod reply;
pub mod via;
