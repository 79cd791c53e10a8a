//! Hostile plugins for the sandbox tests; the `[routing] config` picks the fault:
//! `loop` (spins forever), `memory` (allocates without end), `trap` (hits `unreachable`),
//! `panic` (a Rust panic), `flood` (KEMI calls without end), `stack` (unbounded
//! recursion). Requests whose Request-URI user is `ok` are answered 200 normally, so a
//! test can check the server goes on; user `generic` is answered 200 "Generic" through
//! the generic indexed `kemi` interface, user `stateful` 200 "Stateful" through tm.

use std::sync::OnceLock;

use kemibox_guest::{ksr, Plugin, Route};

static MODE: OnceLock<String> = OnceLock::new();

struct Hostile;

impl Plugin for Hostile {
    fn init(config: &str) -> Result<(), String> {
        match config {
            "loop" | "memory" | "trap" | "panic" | "flood" | "stack" => {
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
        match ksr::pv::get("$rU").as_deref() {
            Some("generic") => return generic_reply(),
            // A typed function of a module that may not be loaded: a refused call ends
            // the route with Stop::Error (logged), not a trap.
            Some("stateful") => {
                ksr::tm::t_send_reply(200, "Stateful")?;
                return ksr::x::exit();
            }
            _ => {}
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
            Some("stack") => {
                recurse(std::hint::black_box(1));
                Ok(())
            }
            Some("flood") => loop {
                ksr::is_myself_ruri()?;
            },
            _ => Ok(()),
        }
    }
}

/// Recursion the optimizer cannot turn into a loop (unbounded on purpose).
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(n: u64) -> u64 {
    let buf = std::hint::black_box([n; 64]);
    recurse(buf[(n % 64) as usize].wrapping_add(1)).wrapping_add(buf[0])
}

/// Replies 200 "Generic" through `kemi.exports` / `kemi.call`, as a dynamic language
/// runtime would build `KSR`.
fn generic_reply() -> Route {
    use ksr::kemi::{call, exports, Value};
    let idx = exports()
        .iter()
        .position(|e| e.module == "sl" && e.name == "sl_send_reply")
        .ok_or_else(|| kemibox_guest::Stop::Error("no sl.sl_send_reply".into()))?;
    call(idx as u32, &[Value::Int(200), Value::Str("Generic".into())])?;
    let exit = exports()
        .iter()
        .position(|e| e.module == "x" && e.name == "exit")
        .ok_or_else(|| kemibox_guest::Stop::Error("no x.exit".into()))?;
    call(exit as u32, &[])?;
    ksr::sl::sl_send_reply(500, "after exit")?;
    Ok(())
}

kemibox_guest::plugin!(Hostile);
