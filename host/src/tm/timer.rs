//! One timer queue for all transactions, served by a single tokio task: arming a timer
//! is an insert into an ordered map, stopping it a removal. It replaces a tokio task
//! per armed timer (a spawn and an abort for every transaction timer, each a task
//! allocation and a trip through the scheduler, from whatever thread armed it).
//!
//! Deadlines are [`tokio::time::Instant`]s, so tokio's paused clock drives the queue in
//! tests as it drove the per-timer tasks.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Where an entry sits in the queue: its deadline and an insertion number.
type Key = (Instant, u64);

struct State<T> {
    entries: BTreeMap<Key, T>,
    seq: u64,
    /// A driver task is running (cleared by the task itself when it is dropped, e.g.
    /// with its runtime, so that the next insert starts a new one).
    driver: bool,
    /// The deadline the driver sleeps until (None: until notified).
    sleeping_until: Option<Instant>,
}

/// Timers with a payload `T`, handed to a callback when they expire.
pub struct TimerQueue<T> {
    state: Mutex<State<T>>,
    wake: Notify,
}

/// An armed timer: dropping or [`stop`](TimerHandle::stop)ping it takes it out of the
/// queue.
pub struct TimerHandle<T> {
    q: Arc<TimerQueue<T>>,
    key: Key,
}

impl<T> TimerHandle<T> {
    /// Takes the timer out of the queue; its payload if it had not fired yet.
    pub fn stop(self) -> Option<T> {
        let v = self.q.lock().entries.remove(&self.key);
        v
    }
}

impl<T> Drop for TimerHandle<T> {
    fn drop(&mut self) {
        // The payload is dropped after the lock is released.
        let v = self.q.lock().entries.remove(&self.key);
        drop(v);
    }
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            state: Mutex::new(State {
                entries: BTreeMap::new(),
                seq: 0,
                driver: false,
                sleeping_until: None,
            }),
            wake: Notify::new(),
        }
    }
}

impl<T> TimerQueue<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code panics while holding the lock with the map half updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Send + 'static> TimerQueue<T> {
    /// Arms a timer firing `after` from now. The second value is true when no driver
    /// runs: the caller must spawn [`run`](Self::run) (inside a tokio runtime).
    pub fn insert(self: &Arc<Self>, after: Duration, v: T) -> (TimerHandle<T>, bool) {
        let at = Instant::now() + after;
        let mut st = self.lock();
        st.seq += 1;
        let key = (at, st.seq);
        st.entries.insert(key, v);
        let start = !st.driver;
        st.driver = true;
        let earlier = st.sleeping_until.is_none_or(|s| at < s);
        drop(st);
        if earlier && !start {
            self.wake.notify_one();
        }
        (
            TimerHandle {
                q: self.clone(),
                key,
            },
            start,
        )
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every entry due at `now` (in deadline order) and sets the driver's next
    /// wake-up.
    fn due(&self, now: Instant, out: &mut Vec<T>) -> Option<Instant> {
        let mut st = self.lock();
        while let Some(e) = st.entries.first_entry() {
            if e.key().0 > now {
                break;
            }
            out.push(e.remove());
        }
        let next = st.entries.first_key_value().map(|(k, _)| k.0);
        st.sleeping_until = next;
        next
    }

    /// The driver: fires due timers through `fire` (outside the queue's lock), forever.
    pub fn run(
        self: Arc<Self>,
        mut fire: impl FnMut(T) + Send + 'static,
    ) -> impl Future<Output = ()> + Send {
        struct Running<T: Send + 'static>(Arc<TimerQueue<T>>);
        impl<T: Send + 'static> Drop for Running<T> {
            fn drop(&mut self) {
                let mut st = self.0.lock();
                st.driver = false;
                st.sleeping_until = None;
            }
        }
        async move {
            let running = Running(self);
            let q = &running.0;
            let mut batch = Vec::new();
            loop {
                let next = q.due(Instant::now(), &mut batch);
                for v in batch.drain(..) {
                    fire(v);
                }
                match next {
                    Some(at) => {
                        tokio::select! {
                            _ = tokio::time::sleep_until(at) => {}
                            _ = q.wake.notified() => {}
                        }
                    }
                    None => q.wake.notified().await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// What fired: (payload, milliseconds after the start).
    type Log = Arc<StdMutex<Vec<(u32, u64)>>>;

    fn queue() -> (Arc<TimerQueue<u32>>, Log) {
        (
            Arc::new(TimerQueue::default()),
            Arc::new(StdMutex::new(Vec::new())),
        )
    }

    fn arm(q: &Arc<TimerQueue<u32>>, log: &Log, ms: u64, v: u32, t0: Instant) -> TimerHandle<u32> {
        let (h, start) = q.insert(Duration::from_millis(ms), v);
        if start {
            let log = log.clone();
            tokio::spawn(q.clone().run(move |v| {
                let ms = (Instant::now() - t0).as_millis() as u64;
                log.lock().unwrap().push((v, ms));
            }));
        }
        h
    }

    #[tokio::test(start_paused = true)]
    async fn fires_in_deadline_order_at_the_deadline() {
        let (q, log) = queue();
        let t0 = Instant::now();
        let _a = arm(&q, &log, 300, 3, t0);
        let _b = arm(&q, &log, 100, 1, t0);
        let _c = arm(&q, &log, 200, 2, t0);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(*log.lock().unwrap(), vec![(1, 100), (2, 200), (3, 300)]);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_timer_wakes_a_sleeping_driver() {
        let (q, log) = queue();
        let t0 = Instant::now();
        let _a = arm(&q, &log, 5000, 5, t0);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let _b = arm(&q, &log, 50, 1, t0);
        tokio::time::sleep(Duration::from_millis(6000)).await;
        assert_eq!(*log.lock().unwrap(), vec![(1, 60), (5, 5000)]);
    }

    #[tokio::test(start_paused = true)]
    async fn stopped_or_dropped_timers_do_not_fire() {
        let (q, log) = queue();
        let t0 = Instant::now();
        let a = arm(&q, &log, 100, 1, t0);
        let b = arm(&q, &log, 100, 2, t0);
        let _c = arm(&q, &log, 100, 3, t0);
        assert_eq!(a.stop(), Some(1));
        drop(b);
        assert_eq!(q.len(), 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(*log.lock().unwrap(), vec![(3, 100)]);
    }

    #[test]
    fn a_new_runtime_gets_a_new_driver() {
        let (q, log) = queue();
        for round in 0..2u32 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let q = q.clone();
            let log = log.clone();
            rt.block_on(async move {
                let t0 = Instant::now();
                let h = arm(&q, &log, 10, round, t0);
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(h);
            });
        }
        let fired: Vec<u32> = log.lock().unwrap().iter().map(|x| x.0).collect();
        assert_eq!(fired, vec![0, 1]);
    }
}
