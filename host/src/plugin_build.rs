//! `kemibox plugin build script.js|script.py -o out.wasm`: a routing plugin (a component
//! of the world `plugin` of `wit/kemi.wit`) from a Kamailio KEMI JavaScript or Python
//! script (by the script's extension: [`build_js`], [`build_py`]).
//!
//! JavaScript: the script is wrapped in the KSR shim of `plugins/js/ksr.js` (compiled into this
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

/// Options of a JS plugin build (`runtime`, `aot`) or a Python one (`runtime`).
#[derive(Debug, Default, Clone)]
pub struct JsBuild {
    /// JS: `plugins/js` (its `node_modules`), found by [`js_runtime_dir`] when `None`.
    /// Python: the directory componentize-py is installed in, found by
    /// [`py_runtime_dir`] when `None`.
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
    let work = work_dir("jsbuild");
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
    let (out, tmp) = output_paths(out)?;
    let out = &out;
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

/// The Python runtime (`plugins/python/kemibox.py`): the app componentize-py wraps.
pub const PY_RUNTIME: &str = include_str!("../../plugins/python/kemibox.py");
/// The `KSR` module of Python scripts (`plugins/python/KSR.py`), filled at `init`.
pub const PY_KSR: &str = include_str!("../../plugins/python/KSR.py");
/// The componentize-py version `scripts/setup.sh` installs; a build with another one is
/// refused (the runtime is tested with this one).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// Builds `out` from `script`: JavaScript (`.js`, [`build_js`]) or Python (`.py`,
/// [`build_py`]), by the script's extension.
pub fn build(script: &Path, out: &Path, opts: &JsBuild) -> anyhow::Result<()> {
    match script.extension().and_then(|e| e.to_str()) {
        Some("py") => {
            if opts.aot {
                bail!("--aot is for JavaScript plugins only");
            }
            build_py(script, out, opts.runtime.as_deref())
        }
        Some("js") | Some("mjs") => build_js(script, out, opts),
        _ => bail!(
            "{}: a plugin is built from a .js (JavaScript) or .py (Python) script",
            script.display()
        ),
    }
}

/// The directory componentize-py is installed in (`pip install --target DIR`):
/// `$KEMIBOX_COMPONENTIZE_PY`, else `$KEMIBOX_TOOLS/componentize-py` (default
/// `/opt/kemibox-tools/componentize-py`, where `scripts/setup.sh` puts it).
pub fn py_runtime_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KEMIBOX_COMPONENTIZE_PY") {
        return Some(PathBuf::from(d));
    }
    let tools = std::env::var_os("KEMIBOX_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/kemibox-tools"));
    let d = tools.join("componentize-py");
    d.join("componentize_py").is_dir().then_some(d)
}

/// `kemibox_script.py`: the script's file name and text as Python string literals.
pub fn py_script_module(script_source: &str, script_name: &str) -> String {
    let name: String = script_name
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    // A JSON string is a valid Python string literal (\uXXXX, \", \\, \n, \/).
    let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!(
        "# Generated by `kemibox plugin build`: the routing script kemibox.py runs.\n\
         SCRIPT_NAME = {}\nSCRIPT_SOURCE = {}\n",
        quote(&name),
        quote(script_source)
    )
}

/// Builds `out` from the Python routing script `script` (Kamailio app_python3 style:
/// `mod_init()` returns the object whose methods are the routes) with componentize-py
/// from `runtime` (its install directory; [`py_runtime_dir`] when `None`, else
/// `componentize-py` on `PATH`).
pub fn build_py(script: &Path, out: &Path, runtime: Option<&Path>) -> anyhow::Result<()> {
    let started = Instant::now();
    let source = std::fs::read_to_string(script)
        .with_context(|| format!("{}: cannot read the script", script.display()))?;
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "script.py".into());
    let dir = match runtime {
        Some(d) => Some(d.to_path_buf()),
        None => py_runtime_dir(),
    };
    let work = work_dir("pybuild");
    let r = build_py_in(&work, &source, &name, dir.as_deref(), out);
    let _ = std::fs::remove_dir_all(&work);
    r?;
    tracing::info!(
        script = %script.display(),
        out = %out.display(),
        secs = started.elapsed().as_secs_f32(),
        "Python plugin built"
    );
    Ok(())
}

fn work_dir(what: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("kemibox-{what}-{}-{nanos}", std::process::id()))
}

/// The command that runs componentize-py: the package in `dir` run by `$PYTHON` (else
/// `python3`), or `componentize-py` on `PATH` when there is no such directory.
fn componentize_py(dir: Option<&Path>) -> anyhow::Result<Command> {
    let Some(d) = dir else {
        return Ok(Command::new("componentize-py"));
    };
    if !d.join("componentize_py").is_dir() {
        bail!(
            "{}: componentize-py is not installed there (scripts/setup.sh installs \
             componentize-py=={COMPONENTIZE_PY_VERSION} in /opt/kemibox-tools/componentize-py)",
            d.display()
        );
    }
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let mut cmd = Command::new(python);
    cmd.env("PYTHONPATH", d).args([
        "-c",
        "import sys\nfrom componentize_py import script\n\
         sys.argv[0] = 'componentize-py'\nsys.exit(script())",
    ]);
    Ok(cmd)
}

fn build_py_in(
    work: &Path,
    source: &str,
    name: &str,
    dir: Option<&Path>,
    out: &Path,
) -> anyhow::Result<()> {
    let wit_dir = work.join("wit");
    let app_dir = work.join("app");
    for d in [&wit_dir, &app_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    std::fs::write(wit_dir.join("kemi.wit"), WIT).context("writing the WIT")?;
    std::fs::write(app_dir.join("kemibox.py"), PY_RUNTIME).context("writing kemibox.py")?;
    std::fs::write(app_dir.join("KSR.py"), PY_KSR).context("writing KSR.py")?;
    std::fs::write(
        app_dir.join("kemibox_script.py"),
        py_script_module(source, name),
    )
    .context("writing the script module")?;
    let version = componentize_py(dir)?
        .arg("--version")
        .output()
        .context("running componentize-py (scripts/setup.sh installs it)")?;
    let version = String::from_utf8_lossy(&version.stdout);
    if !version.contains(COMPONENTIZE_PY_VERSION) {
        bail!(
            "componentize-py {COMPONENTIZE_PY_VERSION} is needed, found {:?} (scripts/setup.sh \
             installs it; KEMIBOX_COMPONENTIZE_PY or --runtime names its directory)",
            version.trim()
        );
    }
    let (out, tmp) = output_paths(out)?;
    let out = &out;
    let output = componentize_py(dir)?
        .arg("-d")
        .arg(&wit_dir)
        .args(["-w", "plugin", "--quiet", "componentize", "kemibox", "-p"])
        .arg(&app_dir)
        .arg("-o")
        .arg(&tmp)
        // Only the app directory: no virtualenv's site-packages in the component.
        .env_remove("VIRTUAL_ENV")
        // A failing script shows its Python error, not componentize-py's Rust backtrace.
        .env("RUST_BACKTRACE", "0")
        .current_dir(work)
        .output()
        .context("running componentize-py")?;
    if !output.status.success() || !tmp.is_file() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "componentize-py failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&tmp, out).with_context(|| format!("{}: cannot write", out.display()))?;
    Ok(())
}

/// The absolute path of the component to write (its directory created) and the temporary
/// file beside it that the compiler writes first, renamed over it once complete, so a
/// failed build never leaves a truncated plugin behind.
fn output_paths(out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let out = std::path::absolute(out).with_context(|| format!("{}", out.display()))?;
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
    Ok((out, tmp))
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

    #[test]
    fn python_script_module_quotes_name_and_text() {
        let m = py_script_module("s = \"a\\b\"\n'''x'''\u{e9}\n", "my\nscript.py");
        assert!(m.contains("SCRIPT_NAME = \"my_script.py\"\n"));
        assert!(m.contains("SCRIPT_SOURCE = \"s = \\\"a\\\\b\\\"\\n'''x'''\u{e9}\\n\"\n"));
    }

    #[test]
    fn build_dispatches_on_the_extension() {
        let e = build(Path::new("x.lua"), Path::new("x.wasm"), &JsBuild::default())
            .expect_err("not a js or py script");
        assert!(e.to_string().contains(".js (JavaScript) or .py (Python)"));
        let opts = JsBuild {
            aot: true,
            ..JsBuild::default()
        };
        let e = build(Path::new("x.py"), Path::new("x.wasm"), &opts).expect_err("aot");
        assert!(e.to_string().contains("JavaScript plugins only"));
    }
}
