//! RFC 3261 §17 transactions as sans-I/O state machines: events in, actions out; the
//! caller owns the sockets and the clock. `modules::tm` drives them for the proxy.

pub mod client;
pub mod select;
pub mod server;
pub mod timer;

use std::time::Duration;

/// Timer values (Kamailio's tm modparams, RFC 3261 names in comments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// T1, first retransmission interval (`retr_timer1`, 500 ms).
    pub t1: Duration,
    /// T2, retransmission cap (`retr_timer2`, 4 s).
    pub t2: Duration,
    /// Final-response wait before any reply (`fr_timer`, 30 s; Timer B/F).
    pub fr: Duration,
    /// Final-response wait for INVITE once a provisional came (`fr_inv_timer`, 120 s).
    pub fr_inv: Duration,
    /// How long a finished transaction still absorbs retransmissions (`wt_timer`, 5 s).
    pub wait: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            fr: Duration::from_secs(30),
            fr_inv: Duration::from_secs(120),
            wait: Duration::from_secs(5),
        }
    }
}
