//! A minimal stateless forwarder: Max-Forwards, then forward to the `[routing] config`
//! destination (a SIP URI set as `$du`), or to the Request-URI when the config is empty.

use std::sync::OnceLock;

use kemibox_guest::{ksr, Plugin, Route};

static DST: OnceLock<Option<String>> = OnceLock::new();

struct Forward;

impl Plugin for Forward {
    fn init(config: &str) -> Result<(), String> {
        let c = config.trim();
        if !c.is_empty() && !c.starts_with("sip:") && !c.starts_with("sips:") {
            return Err(format!("config must be empty or a SIP URI, not `{c}`"));
        }
        let _ = DST.set((!c.is_empty()).then(|| c.to_string()));
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
}

kemibox_guest::plugin!(Forward);
