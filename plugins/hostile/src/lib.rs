//! Hostile plugins for the sandbox tests; the `[routing] config` picks the fault:
//! `loop` (spins forever), `memory` (allocates without end), `trap` (hits `unreachable`),
//! `panic` (a Rust panic), `flood` (KEMI calls without end). Requests whose Request-URI
//! user is `ok` are answered 200 normally, so a test can check the server goes on.

use std::sync::OnceLock;

use kemibox_guest::{ksr, Plugin, Route};

static MODE: OnceLock<String> = OnceLock::new();

struct Hostile;

impl Plugin for Hostile {
    fn init(config: &str) -> Result<(), String> {
        match config {
            "loop" | "memory" | "trap" | "panic" | "flood" => {
                let _ = MODE.set(config.to_string());
                Ok(())
            }
            _ => Err(format!("unknown fault `{config}`")),
        }
    }

    fn request_route() -> Route {
        if ksr::pv::get("$rU").as_deref() == Some("ok") {
            ksr::sl::sl_send_reply(200, "OK")?;
            return ksr::x::exit();
        }
        match MODE.get().map(String::as_str) {
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("memory") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("trap") => core::arch::wasm32::unreachable(),
            Some("panic") => panic!("hostile plugin panics"),
            Some("flood") => loop {
                ksr::is_myself_ruri()?;
            },
            _ => Ok(()),
        }
    }
}

kemibox_guest::plugin!(Hostile);
