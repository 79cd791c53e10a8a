//! `KSR.pike`: flood detection per source IP (Kamailio's pike): more than
//! `reqs_density_per_unit` requests in a `sampling_time_unit` marks the address hot; it
//! stays blocked until it has been quiet for `remove_latency` seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::export;
use crate::kemi::{Export, Val};

struct Entry {
    window_start: Instant,
    count: u64,
    last_seen: Instant,
    blocked: bool,
}

pub struct Pike {
    unit: Duration,
    density: u64,
    latency: Duration,
    ips: Mutex<HashMap<IpAddr, Entry>>,
}

impl Pike {
    pub fn from_config(cfg: &Config) -> Pike {
        Pike {
            unit: Duration::from_secs(
                cfg.modparam_int("pike", "sampling_time_unit", 2).max(1) as u64
            ),
            density: cfg.modparam_int("pike", "reqs_density_per_unit", 30).max(1) as u64,
            latency: Duration::from_secs(
                cfg.modparam_int("pike", "remove_latency", 120).max(1) as u64
            ),
            ips: Mutex::new(HashMap::new()),
        }
    }

    /// 1: fine; -1: the source is flooding.
    pub fn check(&self, ip: IpAddr, now: Instant) -> i64 {
        let mut ips = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        if ips.len() > 200_000 {
            let keep = self.unit + self.latency;
            ips.retain(|_, e| now.duration_since(e.last_seen) < keep);
        }
        let e = ips.entry(ip).or_insert(Entry {
            window_start: now,
            count: 0,
            last_seen: now,
            blocked: false,
        });
        if e.blocked && now.duration_since(e.last_seen) >= self.latency {
            e.blocked = false;
            e.count = 0;
            e.window_start = now;
        }
        if now.duration_since(e.window_start) >= self.unit {
            e.window_start = now;
            e.count = 0;
        }
        e.count += 1;
        e.last_seen = now;
        if e.count > self.density {
            e.blocked = true;
        }
        if e.blocked {
            -1
        } else {
            1
        }
    }
}

pub fn exports() -> Vec<Export> {
    vec![export!("pike", "pike_check_req", [], Int, |c, _| {
        Ok(Val::Int(c.env.pike.check(c.rcv.src.ip(), Instant::now())))
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_a_flood_and_forgives_after_quiet() {
        let p = Pike {
            unit: Duration::from_secs(2),
            density: 16,
            latency: Duration::from_secs(4),
            ips: Mutex::new(HashMap::new()),
        };
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..16 {
            assert_eq!(p.check(ip, t0 + Duration::from_millis(i)), 1);
        }
        assert_eq!(p.check(ip, t0 + Duration::from_millis(20)), -1);
        // Still flooding: stays blocked.
        assert_eq!(p.check(ip, t0 + Duration::from_secs(3)), -1);
        // Quiet for remove_latency: allowed again.
        assert_eq!(p.check(ip, t0 + Duration::from_secs(8)), 1);
        // Another address is not affected.
        assert_eq!(p.check("192.0.2.2".parse().unwrap(), t0), 1);
    }
}
