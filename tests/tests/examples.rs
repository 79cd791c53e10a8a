//! The example configurations of `examples/` stay valid: `kemibox check` accepts each
//! (config, script or plugin loaded, plugin `init` run), as the README tells users to
//! run them.

use std::process::Command;
use std::time::Duration;

use e2e::*;

fn check(example: &str) {
    let path = repo_root().join("examples").join(example);
    let out = run_bounded(
        Command::new(kemibox_bin()).args(["check", "-c"]).arg(&path),
        Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "kemibox check -c examples/{example}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lua_examples_pass_kemibox_check() {
    for example in ["kemibox.toml", "registrar.toml", "redirect/kemibox.toml"] {
        check(example);
    }
}

/// `examples/wasm/kemibox.toml` names the `forward` plugin where the plugins build puts it.
#[test]
fn the_rust_plugin_example_passes_kemibox_check() {
    let forward = wasm_plugin("forward");
    assert!(forward.is_file(), "{} was not built", forward.display());
    check("wasm/kemibox.toml");
    let _ = std::fs::remove_dir_all(repo_root().join("examples/wasm/cache"));
}

/// `examples/lua-wasm/kemibox.toml`: the stateless example script on Lua-in-wasm, the
/// runtime found in the source tree's plugins build.
#[test]
fn the_lua_wasm_example_passes_kemibox_check() {
    let runtime = wasm_plugin("kemibox_lua");
    assert!(runtime.is_file(), "{} was not built", runtime.display());
    check("lua-wasm/kemibox.toml");
    let _ = std::fs::remove_dir_all(repo_root().join("examples/lua-wasm/cache"));
}

/// `examples/js-wasm/kemibox.toml`: the stateless JS example on engine js-wasm, the
/// runtime found in the source tree's plugins build.
#[test]
fn the_js_wasm_example_passes_kemibox_check() {
    let runtime = wasm_plugin("kemibox_quickjs");
    assert!(runtime.is_file(), "{} was not built", runtime.display());
    check("js-wasm/kemibox.toml");
    let _ = std::fs::remove_dir_all(repo_root().join("examples/js-wasm/cache"));
}

/// `examples/python-wasm/kemibox.toml`: the stateless Python example on engine
/// python-wasm; `kemibox check` builds the component from the script (componentize-py).
#[test]
fn the_python_wasm_example_passes_kemibox_check() {
    check("python-wasm/kemibox.toml");
    let _ = std::fs::remove_dir_all(repo_root().join("examples/python-wasm/cache"));
}
