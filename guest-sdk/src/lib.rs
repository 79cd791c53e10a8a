//! Rust guest SDK for kemibox plugins. The WIT bindings arrive with the wasm engine issue.
