//! `kemibox plugin build script.js -o out.wasm`: a routing plugin (a component of the
//! world `plugin` of `wit/kemi.wit`) from a Kamailio KEMI JavaScript script.
//!
//! The script is wrapped in the KSR shim of `plugins/js/ksr.js` (compiled into this
//! binary, as is the WIT) and handed to the componentize-js pinned in
//! `plugins/js/package.json`, run with node from `plugins/js/node_modules` (installed by
//! `npm ci` in `scripts/setup.sh`; no network needed after that). Every WASI feature of
//! componentize-js is disabled except `random` (`Math.random` stays random): the
//! component imports only the world and `wasi:random`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

/// The KSR shim (`plugins/js/ksr.js`).
pub const JS_SHIM: &str = include_str!("../../plugins/js/ksr.js");
/// The WIT package the plugin is built against.
pub const WIT: &str = include_str!("../../wit/kemi.wit");

/// componentize-js features turned off (`--disable`): no console/stdio, clocks, HTTP.
pub const JS_DISABLED_FEATURES: &[&str] = &["stdio", "clocks", "http", "fetch-event"];

const COMPONENTIZE_CLI: &str = "node_modules/@bytecodealliance/componentize-js/src/cli.js";

/// Options of a JS plugin build.
#[derive(Debug, Default, Clone)]
pub struct JsBuild {
    /// `plugins/js` (its `node_modules`); found by [`js_runtime_dir`] when `None`.
    pub runtime: Option<PathBuf>,
    /// The node binary (`$NODE`, else `node` on `PATH`).
    pub node: Option<PathBuf>,
    /// componentize-js `--aot` (weval ahead-of-time compilation of the JS).
    pub aot: bool,
}

/// The JS runtime directory: `$KEMIBOX_JS_RUNTIME`, else `plugins/js` of the source tree
/// this binary was built from, else `../share/kemibox/js` beside the binary.
pub fn js_runtime_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KEMIBOX_JS_RUNTIME") {
        return Some(PathBuf::from(d));
    }
    let mut candidates = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/js")];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(bin) = exe.parent() {
            candidates.push(bin.join("../share/kemibox/js"));
        }
    }
    candidates
        .into_iter()
        .find(|d| d.join(COMPONENTIZE_CLI).is_file())
}

/// The JS module componentize-js compiles: the shim with the script's text and name.
pub fn js_module(script_source: &str, script_name: &str) -> String {
    let name: String = script_name
        .chars()
        .map(|c| if c.is_control() || c == '`' { '_' } else { c })
        .collect();
    let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    // The name first: the script's text, put in last, is never searched.
    JS_SHIM
        .replace("__KEMIBOX_SCRIPT_NAME__", &quote(&name))
        .replace("__KEMIBOX_SCRIPT_SOURCE__", &quote(script_source))
}

/// Builds `out` from the JS routing script `script`.
pub fn build_js(script: &Path, out: &Path, opts: &JsBuild) -> anyhow::Result<()> {
    let started = Instant::now();
    let source = std::fs::read_to_string(script)
        .with_context(|| format!("{}: cannot read the script", script.display()))?;
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "script.js".into());
    let runtime = match &opts.runtime {
        Some(d) => d.clone(),
        None => js_runtime_dir().context(
            "the JS runtime (plugins/js/node_modules) is not installed: run `npm ci` in \
             plugins/js (scripts/setup.sh does), or set KEMIBOX_JS_RUNTIME",
        )?,
    };
    let cli = runtime.join(COMPONENTIZE_CLI);
    if !cli.is_file() {
        bail!(
            "{} is missing: run `npm ci` in {}",
            cli.display(),
            runtime.display()
        );
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let work = std::env::temp_dir().join(format!("kemibox-jsbuild-{}-{nanos}", std::process::id()));
    let r = build_in(&work, &source, &name, &cli, out, opts);
    let _ = std::fs::remove_dir_all(&work);
    r?;
    tracing::info!(
        script = %script.display(),
        out = %out.display(),
        secs = started.elapsed().as_secs_f32(),
        "JS plugin built"
    );
    Ok(())
}

fn build_in(
    work: &Path,
    source: &str,
    name: &str,
    cli: &Path,
    out: &Path,
    opts: &JsBuild,
) -> anyhow::Result<()> {
    let wit_dir = work.join("wit");
    std::fs::create_dir_all(&wit_dir)
        .with_context(|| format!("{}: cannot create", wit_dir.display()))?;
    std::fs::write(wit_dir.join("kemi.wit"), WIT).context("writing the WIT")?;
    let module = work.join("kemibox-ksr.js");
    std::fs::write(&module, js_module(source, name)).context("writing the JS module")?;
    // componentize-js runs in `work`: every path it gets is absolute.
    let out = &std::path::absolute(out).with_context(|| format!("{}", out.display()))?;
    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("{}: cannot create", out_dir.display()))?;
    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin.wasm".into());
    let tmp = out_dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let node = opts
        .node
        .clone()
        .or_else(|| std::env::var_os("NODE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("node"));
    let mut cmd = Command::new(&node);
    cmd.arg(cli)
        .arg(&module)
        .arg("--wit")
        .arg(&wit_dir)
        .args(["--world-name", "plugin", "--disable"])
        .args(JS_DISABLED_FEATURES)
        .arg("-o")
        .arg(&tmp)
        .current_dir(work);
    if opts.aot {
        cmd.arg("--aot");
    }
    let output = cmd
        .output()
        .with_context(|| format!("running {} (node 18 or later is needed)", node.display()))?;
    if !output.status.success() || !tmp.is_file() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "componentize-js failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&tmp, out).with_context(|| format!("{}: cannot write", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_embeds_script_and_name_as_strings() {
        let m = js_module(
            "function ksr_request_route() { KSR.x.exit(); } // `${x}` \"q\" \n__KEMIBOX_SCRIPT_NAME__",
            "a`b\n.js",
        );
        assert!(!m.contains("__KEMIBOX_SCRIPT_SOURCE__ "));
        assert!(m.contains("const SCRIPT_NAME = \"a_b_.js\";"));
        assert!(m.contains(
            "const SCRIPT_SOURCE = \"function ksr_request_route() { KSR.x.exit(); } // `${x}` \\\"q\\\" \\n__KEMIBOX_SCRIPT_NAME__\";"
        ));
    }
}
