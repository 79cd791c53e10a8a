//! Counters an operator reads (control API and logs).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Server-wide counters; every field is a monotonically increasing count.
        #[derive(Debug, Default)]
        pub struct Stats { $(pub $name: AtomicU64,)* }
        impl Stats {
            /// (name, value) pairs for reporting.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters!(
    rcv_requests,
    rcv_replies,
    parse_errors,
    invalid_requests,
    invalid_replies,
    oversize_dropped,
    fwd_requests,
    fwd_replies,
    sent_replies,
    drops,
    // ACKs to stateless negative replies, absorbed before the script (sl).
    sl_acks_absorbed,
    onsend_drops,
    egress_denied,
    send_errors,
    script_errors,
    tcp_conns_opened,
    tcp_conns_refused,
    tcp_conns_idle_closed,
    tcp_framing_errors,
    keepalives,
    wasm_traps,
    wasm_deadlines,
    wasm_memory_limits,
    wasm_host_call_limits,
);

impl Stats {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self, name: &str) -> Option<u64> {
        self.snapshot()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}
