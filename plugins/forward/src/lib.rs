//! A minimal stateless forwarder: Max-Forwards, then forward to the `[routing] config`
//! destination (a SIP URI set as `$du`), or to the Request-URI when the config is empty.
//!
//! With the word `onsend` in the config (alone or after the URI) it also has a trivial
//! onsend route that reads `$snd(ip)` (the benchmarks measure what an onsend route costs;
//! without it the plugin has none and kemibox never calls it).

use std::sync::OnceLock;

use kemibox_guest::{ksr, Plugin, Route};

static DST: OnceLock<Option<String>> = OnceLock::new();
static ONSEND: OnceLock<bool> = OnceLock::new();

struct Forward;

impl Plugin for Forward {
    fn init(config: &str) -> Result<(), String> {
        let mut dst = None;
        let mut onsend = false;
        for item in config.split_whitespace() {
            if item == "onsend" {
                onsend = true;
            } else if dst.is_none() && (item.starts_with("sip:") || item.starts_with("sips:")) {
                dst = Some(item.to_string());
            } else {
                return Err(format!(
                    "config must be empty or a SIP URI (and/or `onsend`), not `{}`",
                    config.trim()
                ));
            }
        }
        let _ = DST.set(dst);
        let _ = ONSEND.set(onsend);
        Ok(())
    }

    fn request_route() -> Route {
        if ksr::maxfwd::process_maxfwd(10)? < 0 {
            ksr::sl::sl_send_reply(483, "Too Many Hops")?;
            return ksr::x::exit();
        }
        if let Some(Some(dst)) = DST.get() {
            ksr::setdsturi(dst)?;
        }
        if ksr::forward()? < 0 {
            ksr::sl::sl_reply_error()?;
        }
        Ok(())
    }

    fn onsend_route() -> Option<Route> {
        if !ONSEND.get().copied().unwrap_or(false) {
            return None;
        }
        std::hint::black_box(ksr::pv::get("$snd(ip)"));
        Some(Ok(()))
    }
}

kemibox_guest::plugin!(Forward);
