//! Shared helpers for the end-to-end tests: start kemibox as a real process on free
//! loopback ports, run sipp, talk SIP over UDP, read the metrics.

pub mod basic_example;
pub mod sipp;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The kemibox binary built by `cargo build -p kemibox` (or `$KEMIBOX_BIN`).
pub fn kemibox_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KEMIBOX_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    let bin = target.join("debug").join("kemibox");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p kemibox` first (the README's test command does)",
        bin.display()
    );
    bin
}

/// The shared corpus directory beside the repository.
pub fn shared_dir() -> PathBuf {
    let d = repo_root().join("..").join("shared");
    assert!(
        d.is_dir(),
        "{} is missing: the torture corpora live there",
        d.display()
    );
    d
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh scratch directory under the system temp dir.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("kemibox-e2e-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// A port free for both UDP and TCP on 127.0.0.1 and ::1.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let Ok(probe) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = probe.local_addr() else {
            continue;
        };
        let p = addr.port();
        drop(probe);
        let ok = UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("::1", p)).is_ok()
            && TcpListener::bind(("::1", p)).is_ok();
        if ok {
            return p;
        }
    }
    panic!("no free port found");
}

/// A running kemibox process; killed (by its PID) when dropped.
pub struct Kemibox {
    child: Child,
    pub dir: PathBuf,
    pub control: SocketAddr,
    pub log: PathBuf,
}

impl Kemibox {
    /// Starts kemibox with `config` (TOML; `CONTROL` is replaced by a free control
    /// address and `SCRIPT` by the path of `script`), waiting until it serves metrics.
    pub fn start(config: &str, script: &str) -> Kemibox {
        let dir = scratch_dir("kb");
        Self::start_in(dir, config, script)
    }

    pub fn start_in(dir: PathBuf, config: &str, script: &str) -> Kemibox {
        let control: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let script_path = dir.join("script.lua");
        std::fs::write(&script_path, script).expect("write script");
        let cfg = config
            .replace("CONTROL", &control.to_string())
            .replace("SCRIPT", &script_path.display().to_string());
        let cfg = if cfg.contains("[control]") {
            cfg
        } else {
            format!("{cfg}\n[control]\nlisten = \"{control}\"\n")
        };
        let cfg_path = dir.join("kemibox.toml");
        std::fs::write(&cfg_path, cfg).expect("write config");
        let log = dir.join("kemibox.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(kemibox_bin())
            .args(["run", "-c"])
            .arg(&cfg_path)
            .env(
                "RUST_LOG",
                std::env::var("KEMIBOX_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn kemibox");
        let mut kb = Kemibox {
            child,
            dir,
            control,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if kb.try_metrics().is_some() {
                return kb;
            }
            if let Ok(Some(status)) = kb.child.try_wait() {
                panic!("kemibox exited at start ({status}):\n{}", kb.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("kemibox did not come up:\n{}", kb.log_text());
    }

    /// Stops kemibox with SIGTERM (a clean shutdown) and waits for it.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends signal `sig` (e.g. `"HUP"`) to the kemibox process.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn try_metrics(&self) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.control, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        (out.starts_with("HTTP/1.") && out.get(8..13) == Some(" 200 ")).then_some(out)
    }

    /// Calls JSON-RPC `method` with `params` on the control listener (`POST /RPC`) and
    /// returns the whole answer (`result` or `error`).
    pub fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
                .to_string();
        let mut s = TcpStream::connect_timeout(&self.control, Duration::from_secs(2))
            .expect("control listener");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let req = format!(
            "POST /RPC HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("send rpc");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("rpc answer");
        let json = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(json).unwrap_or_else(|e| panic!("rpc {method}: {e}: {out}"))
    }

    /// Waits (up to 2 s) for a counter to reach `want`, and returns its value then:
    /// counters are bumped right after a send, so a client may see the message first.
    pub fn metric_settled(&self, name: &str, want: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let v = self.metric(name);
            if v >= want || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A counter from `/metrics` (`name` without the `kemibox_` prefix and `_total`).
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.try_metrics().expect("metrics endpoint answers");
        let key = format!("kemibox_{name}_total ");
        let gauge = format!("kemibox_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key).or_else(|| l.strip_prefix(&gauge)))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found in:\n{text}"))
    }
}

impl Drop for Kemibox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var("KEEP_E2E").is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A background process (sipp UAS, stunnel) killed by PID when dropped.
pub struct Bg(pub Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command to completion, killing it after `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    child.wait_with_output().expect("collect output")
}

/// Successful and failed call counts from a sipp run's final statistics.
pub fn sipp_counts(stdout: &str) -> (u64, u64) {
    let last_num = |label: &str| {
        stdout
            .lines()
            .rfind(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split('|').next_back())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (last_num("Successful call"), last_num("Failed call"))
}

/// Sends one datagram and waits for one answer (`None` on timeout).
pub fn udp_exchange(
    sock: &UdpSocket,
    to: SocketAddr,
    msg: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    sock.send_to(msg, to).expect("send datagram");
    sock.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = vec![0u8; 65536];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// The status code of a SIP response.
pub fn status_of(resp: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(resp).ok()?;
    let line = s.lines().next()?;
    line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// The reason phrase of a SIP response.
pub fn reason_of(resp: &[u8]) -> String {
    let s = String::from_utf8_lossy(resp);
    s.lines()
        .next()
        .and_then(|l| l.get(12..))
        .unwrap_or("")
        .to_string()
}

/// An OPTIONS request to `target` (a host:port of the proxy) from `local`.
pub fn options_to(target: &str, local: SocketAddr, tag: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK-{tag}\r\n\
Max-Forwards: 70\r\n\
From: <sip:probe@{local}>;tag={tag}\r\n\
To: <sip:{target}>\r\n\
Call-ID: {tag}@kemibox-e2e\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Minimal kemibox config for tests: `LISTEN` entries given, loopback egress only.
pub fn config(listen: &[String], extra: &str) -> String {
    let l: Vec<String> = listen.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[core]\nlisten = [{}]\negress_allow = [\"127.0.0.0/8\", \"::1/128\"]\nworkers = 2\n{extra}\n\
[dns]\nhosts_only = true\n[routing]\nengine = \"lua\"\nscript = \"SCRIPT\"\n",
        l.join(", ")
    )
}

/// The example stateless script shipped in `examples/`.
pub fn example_script() -> String {
    std::fs::read_to_string(repo_root().join("examples/stateless.lua"))
        .expect("examples/stateless.lua")
}

/// Looks a program up on PATH.
pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Network-namespace isolation for tests whose messages name addresses off this machine.
/// Outside a namespace, re-runs the named test of the current test binary under
/// `unshare -n` (loopback up) and asserts it passed, then returns `false`; inside, returns
/// `true` and the test body runs.
pub fn in_private_netns(test_name: &str) -> bool {
    if std::env::var("KEMIBOX_IN_NETNS").is_ok() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = run_bounded(
        Command::new("unshare")
            .args([
                "-n",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec \"$@\"",
                "sh",
            ])
            .arg(&exe)
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env("KEMIBOX_IN_NETNS", "1"),
        Duration::from_secs(300),
    );
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{test_name} inside `unshare -n` failed (needs root and iproute2):\n{text}"
    );
    println!("{test_name}: passed inside a private network namespace");
    false
}

/// A real Kamailio in the foreground; stopped with SIGTERM (its main process stops its
/// children).
pub struct Kamailio {
    child: Child,
    pub dir: PathBuf,
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Kamailio {
    /// Starts `kamailio -f cfg` with extra arguments (`-A NAME=value`, `-l ...`) and waits
    /// until it answers an OPTIONS on `probe`.
    pub fn start(cfg: &Path, args: &[String], probe: SocketAddr) -> Kamailio {
        assert!(
            have("kamailio"),
            "kamailio is needed (apt-get install kamailio kamailio-lua-modules)"
        );
        let dir = scratch_dir("kamailio");
        let run = dir.join("run");
        std::fs::create_dir_all(&run).expect("run dir");
        let log = std::fs::File::create(dir.join("kamailio.log")).expect("log");
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(cfg)
            .args(args)
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
            .arg(&run)
            .arg("-w")
            .arg(&run)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kamailio");
        let k = Kamailio { child, dir };
        let s = UdpSocket::bind("127.0.0.1:0").expect("socket");
        let local = s.local_addr().expect("addr");
        for i in 0..60 {
            let m = options_to(&probe.to_string(), local, &format!("kready{i}"));
            if udp_exchange(&s, probe, &m, Duration::from_millis(200)).is_some() {
                return k;
            }
        }
        panic!("kamailio did not start:\n{}", k.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }
}

/// Builds the plugins workspace (`plugins/`, release, wasm32-wasip2) once per test binary
/// and returns the path of the component of plugin `name`.
pub fn wasm_plugin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = repo_root();
        let target = root.join("plugins/target");
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join("plugins/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("run cargo for the plugins");
        assert!(
            st.success(),
            "building the plugins failed (rustup target add wasm32-wasip2?)"
        );
        target.join("wasm32-wasip2/release")
    });
    dir.join(format!("{name}.wasm"))
}

/// A kemibox config running the wasm plugin `plugin` with its `config` string and
/// `limits` (lines of `[routing.limits]`).
pub fn wasm_config(listen: &[String], plugin: &Path, plugin_config: &str, limits: &str) -> String {
    let l: Vec<String> = listen.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[core]\nlisten = [{}]\negress_allow = [\"127.0.0.0/8\", \"::1/128\"]\nworkers = 2\n\
[dns]\nhosts_only = true\n[routing]\nengine = \"wasm\"\nplugin = \"{}\"\nconfig = \"{}\"\n\
[routing.limits]\n{limits}\n",
        l.join(", "),
        plugin.display(),
        plugin_config
    )
}

/// Receives one UDP datagram as text, waiting up to `wait`.
pub fn recv(s: &UdpSocket, wait: Duration) -> Option<(String, SocketAddr)> {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = vec![0u8; 65536];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, a)| (String::from_utf8_lossy(&buf[..n]).to_string(), a))
}

/// Receives until a message whose first line starts with `prefix` (skipping others).
pub fn expect(s: &UdpSocket, prefix: &str) -> (String, SocketAddr) {
    for _ in 0..20 {
        match recv(s, Duration::from_secs(5)) {
            Some((m, a)) if m.starts_with(prefix) => return (m, a),
            Some(_) => continue,
            None => break,
        }
    }
    panic!("no message starting with {prefix:?}");
}

/// An INVITE from `client` to `bob@uas` sent through `proxy`; `tag` names the call
/// (From-tag, branch and Call-ID), `extra` adds header lines (each ending in CRLF).
pub fn invite(
    proxy: SocketAddr,
    client: SocketAddr,
    uas: SocketAddr,
    tag: &str,
    extra: &str,
) -> String {
    format!(
        "INVITE sip:bob@{uas} SIP/2.0\r\nVia: SIP/2.0/UDP {client};branch=z9hG4bK-{tag}\r\nMax-Forwards: 70\r\n\
From: <sip:alice@{client}>;tag={tag}\r\nTo: <sip:bob@{proxy}>\r\nCall-ID: {tag}@e2e\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:alice@{client}>\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// A reply built from a received request, as a UAS sends it.
pub fn answer(req: &str, code: u16, reason: &str, to_tag: &str) -> String {
    let mut r = format!("SIP/2.0 {code} {reason}\r\n");
    for l in req.lines() {
        if ["Via:", "From:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|h| l.starts_with(h))
        {
            r.push_str(l);
            r.push_str("\r\n");
        } else if l.starts_with("To:") {
            r.push_str(l);
            r.push_str(&format!(";tag={to_tag}\r\n"));
        }
    }
    r.push_str("Content-Length: 0\r\n\r\n");
    r
}

/// The value of header `name` in a message's text.
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}:");
    msg.lines()
        .find(|l| l.len() > prefix.len() && l[..prefix.len()].eq_ignore_ascii_case(&prefix))
        .map(|l| l[prefix.len()..].trim())
}

/// Compiled JS components shared by the tests (and runs), keyed by content hash: a
/// `[routing] cache_dir`.
pub fn js_cache_dir() -> PathBuf {
    repo_root().join("plugins/js/build/cache")
}

/// Builds the JS routing script `script` into a wasm plugin with `kemibox plugin build`
/// (componentize-js from `plugins/js/node_modules`), as `plugins/js/build/<stem>.wasm`;
/// an output newer than the script, the shim, the WIT and the npm lock file is reused
/// (`scripts/test.sh` builds them once per run). Panics when the JS runtime is missing.
pub fn js_plugin(script: &Path) -> PathBuf {
    let root = repo_root();
    assert!(
        root.join("plugins/js/node_modules/@bytecodealliance/componentize-js")
            .is_dir(),
        "plugins/js/node_modules is missing: run `npm ci` in plugins/js (scripts/setup.sh does)"
    );
    built_plugin(
        script,
        &root.join("plugins/js/build"),
        &[
            root.join("plugins/js/ksr.js"),
            root.join("wit/kemi.wit"),
            root.join("plugins/js/package-lock.json"),
        ],
        "",
    )
}

/// Builds the Python plugin of `script` with `kemibox plugin build` (componentize-py from
/// `/opt/kemibox-tools/componentize-py`), as `plugins/python/build/<stem>.wasm`; an output
/// newer than the script, the runtime (`plugins/python/*.py`) and the WIT is reused
/// (`scripts/test.sh` builds them once per run). Panics when the build fails.
pub fn py_plugin(script: &Path) -> PathBuf {
    let root = repo_root();
    built_plugin(
        script,
        &root.join("plugins/python/build"),
        &[
            root.join("plugins/python/kemibox.py"),
            root.join("plugins/python/KSR.py"),
            root.join("wit/kemi.wit"),
        ],
        " (scripts/setup.sh installs componentize-py)",
    )
}

/// `<dir>/<script stem>.wasm`, built with `kemibox plugin build` unless it is newer than
/// the script and the runtime files `inputs` (one build at a time). Panics when the build
/// fails, with `hint` after the message.
fn built_plugin(script: &Path, dir: &Path, inputs: &[PathBuf], hint: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let stem = script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .expect("script file name");
    let out = dir.join(format!("{stem}.wasm"));
    let mtime = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let newest = inputs
        .iter()
        .chain(std::iter::once(&script.to_path_buf()))
        .map(|p| mtime(p))
        .max()
        .expect("inputs");
    if out.is_file() && mtime(&out) >= newest {
        return out;
    }
    let o = run_bounded(
        Command::new(kemibox_bin())
            .args(["plugin", "build"])
            .arg(script)
            .arg("-o")
            .arg(&out),
        Duration::from_secs(300),
    );
    assert!(
        o.status.success() && out.is_file(),
        "kemibox plugin build {} failed{hint}:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Compiles the wasm plugin of `cfg` into its `cache_dir` with `kemibox check` (a
/// JavaScript or Python component takes longer to compile than `Kemibox::start` waits),
/// checking that its `init` runs. `CONTROL` in `cfg` is replaced by an unused address.
pub fn precompile(cfg: &str) {
    let dir = scratch_dir("wasm-check");
    let path = dir.join("check.toml");
    std::fs::write(&path, cfg.replace("CONTROL", "127.0.0.1:1")).expect("write config");
    let out = run_bounded(
        Command::new(kemibox_bin()).args(["check", "-c"]).arg(&path),
        Duration::from_secs(600),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "kemibox check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A config with one routing worker: one warm instance, whose state a test looks at.
pub fn one_worker(cfg: String) -> String {
    cfg.replacen("workers = 2", "workers = 1", 1)
}

/// Sends an OPTIONS to `user@proxy` and returns the answer, if one comes within `wait`.
pub fn ask_user(
    sock: &UdpSocket,
    proxy: SocketAddr,
    user: &str,
    wait: Duration,
) -> Option<Vec<u8>> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let local = sock.local_addr().expect("local");
    udp_exchange(
        sock,
        proxy,
        &options_to(
            &format!("{user}@{proxy}"),
            local,
            &format!("ask-{user}-{n}"),
        ),
        wait,
    )
}

/// The status code and reason of the answer to an OPTIONS to `user@proxy`.
pub fn answer_to(sock: &UdpSocket, proxy: SocketAddr, user: &str) -> (u16, String) {
    let r = ask_user(sock, proxy, user, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no answer for {user}"));
    (status_of(&r).unwrap_or(0), reason_of(&r))
}
