//! Builds the two small C archives Lua's wasm32-wasip2 build links (see README.md):
//! `libsetjmp.a` (the setjmp/longjmp runtime of LLVM's wasm sjlj lowering) and an empty
//! `libwasi-emulated-signal.a`. The C compiler is toolchain/zig-cc, set as
//! `CC_wasm32_wasip2` in .cargo/config.toml.

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.starts_with("wasm32") {
        return;
    }
    cc::Build::new()
        .file("csrc/setjmp_rt.c")
        .opt_level(2)
        .cargo_metadata(true)
        .compile("setjmp");
    cc::Build::new()
        .file("csrc/signal_stub.c")
        .cargo_metadata(false)
        .compile("wasi-emulated-signal");
}
