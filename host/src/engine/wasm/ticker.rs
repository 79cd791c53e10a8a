//! The epoch ticker of a plugin's engine: what turns a route call's wall-clock deadline
//! into a wasm interruption.
//!
//! wasmtime interrupts a call when the engine's epoch reaches the store's deadline; a
//! thread has to advance the epoch. Advancing it every `TICK` costs a thread wake-up per
//! tick whether or not any wasm runs: ~17 µs of CPU each on a small VM, 3.4 ms per second,
//! which is 17 µs per registration at 200/s. So the ticker ticks at `TICK` only while a
//! call is running; otherwise it sleeps `idle` (no longer than the route deadline), and
//! whenever it wakes it brings the epoch up to the ticks elapsed since it started. A call
//! computes its deadline from the clock, not from the (possibly stale) epoch, so it is
//! interrupted between `deadline` and `deadline + TICK` after it starts: the ticker woke
//! at most `idle` ≤ `deadline` after the call began and ticks finely from then on.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// Period of the epoch while a call runs: the deadline is enforced to this granularity.
pub const TICK: Duration = Duration::from_millis(5);

/// Longest sleep of an idle ticker (a shorter route deadline shortens it).
const IDLE_MAX: Duration = Duration::from_millis(100);

pub struct Ticker {
    start: Instant,
    /// Epoch increments made so far (only the ticker thread adds, after the engine's).
    given: AtomicU64,
    /// Calls and instantiations in progress on this engine.
    active: AtomicUsize,
    stop: AtomicBool,
}

impl Ticker {
    /// Starts the ticker thread of `engine`; `deadline` is the shortest deadline its
    /// calls will have.
    pub fn spawn(engine: Engine, deadline: Duration) -> std::io::Result<Arc<Ticker>> {
        let t = Arc::new(Ticker {
            start: Instant::now(),
            given: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let idle = deadline.clamp(TICK, IDLE_MAX);
        let t2 = t.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !t2.stop.load(Ordering::Relaxed) {
                    let busy = t2.active.load(Ordering::Relaxed) > 0;
                    std::thread::sleep(if busy { TICK } else { idle });
                    let due = t2.elapsed_ticks();
                    let mut given = t2.given.load(Ordering::Relaxed);
                    while given < due {
                        engine.increment_epoch();
                        given += 1;
                        t2.given.store(given, Ordering::Release);
                    }
                }
            })?;
        Ok(t)
    }

    fn elapsed_ticks(&self) -> u64 {
        (self.start.elapsed().as_nanos() / TICK.as_nanos()) as u64
    }

    /// The epoch deadline (relative to the engine's current epoch, as
    /// `Store::set_epoch_deadline` takes it) for a call that starts now and may run
    /// `d`: the ticks the ticker owes, plus `d` in ticks, plus one because the call
    /// starts anywhere inside the current tick.
    pub fn deadline_ticks(&self, d: Duration) -> u64 {
        let owed = self
            .elapsed_ticks()
            .saturating_sub(self.given.load(Ordering::Acquire));
        let d = d.as_nanos().div_ceil(TICK.as_nanos()) as u64;
        owed + d + 1
    }

    /// Marks a call running until the guard is dropped: the ticker ticks finely.
    pub fn running(&self) -> Running<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        Running(self)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub struct Running<'a>(&'a Ticker);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_counts_the_ticks_an_idle_ticker_owes() {
        let engine = {
            let mut c = wasmtime::Config::new();
            c.epoch_interruption(true);
            Engine::new(&c).expect("engine")
        };
        let t = Ticker::spawn(engine, Duration::from_millis(100)).expect("ticker");
        // Idle: the ticker sleeps 100 ms; 30 ms in it owes ~6 ticks.
        std::thread::sleep(Duration::from_millis(30));
        let d = t.deadline_ticks(Duration::from_millis(20));
        let owed = d - 4 - 1;
        assert!(
            (1..=20).contains(&owed),
            "owed {owed} ticks after 30 ms idle (deadline {d})"
        );
        t.stop();
    }
}
