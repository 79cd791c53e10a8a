//! kemibox: a SIP proxy, registrar and redirect server whose routing logic is a KEMI
//! script (native Lua today; WebAssembly plugins build on the same registry).

pub mod config;
pub mod control;
pub mod engine;
pub mod kemi;
pub mod modules;
pub mod net;
pub mod plugin_build;
pub mod proxy;
pub mod server;
pub mod sip;
pub mod stats;
pub mod store;
pub mod tm;
pub mod transport;

#[cfg(test)]
pub(crate) mod testutil;
