//! The TOML configuration. A bad config stops start-up with the file, line and key.
//!
//! `[modparam.<module>]` keys are Kamailio's modparam names, so a kamailio.cfg translates
//! line by line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use crate::net::Proto;

/// File name of the Lua runtime component (engine `"lua-wasm"`), built from `plugins/lua`.
pub const LUA_RUNTIME: &str = "kemibox_lua.wasm";
/// File name of the JavaScript runtime component (engine `"js-wasm"`), built from
/// `plugins/quickjs`.
pub const JS_RUNTIME: &str = "kemibox_quickjs.wasm";

/// The engines that run a script on a runtime component: name, the component's file
/// name, the script's language.
pub const SCRIPT_RUNTIMES: [(&str, &str, &str); 2] = [
    ("lua-wasm", LUA_RUNTIME, "Lua"),
    ("js-wasm", JS_RUNTIME, "JavaScript"),
];

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {err}")]
    Read { file: String, err: String },
    #[error("{file}:{line}: {msg}")]
    At {
        file: String,
        line: usize,
        msg: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub core: Core,
    #[serde(default)]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub control: Option<Control>,
    pub routing: Routing,
    #[serde(default)]
    pub modparam: BTreeMap<String, BTreeMap<String, Spanned<toml::Value>>>,
    /// Directory of the config file; relative paths in it are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    #[serde(skip)]
    pub listen: Vec<ListenSpec>,
    #[serde(skip)]
    pub egress: Option<Vec<IpNet>>,
    /// `kemibox check`: validate only; stores that would be written are not created.
    #[serde(skip)]
    pub check_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Core {
    #[serde(default = "default_listen")]
    pub listen: Vec<Spanned<String>>,
    /// Host names that are "myself" besides the listen addresses.
    #[serde(default)]
    pub alias: Vec<String>,
    /// CIDRs messages may be sent to; absent = anywhere.
    #[serde(default)]
    pub egress_allow: Option<Vec<Spanned<String>>>,
    /// Routing workers (threads); each has its own script state.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Modules to load (default: all built-in modules).
    #[serde(default)]
    pub modules: Option<Vec<Spanned<String>>>,
    #[serde(default = "default_server")]
    pub server_header: String,
    /// Seconds an idle TCP/TLS/WS connection is kept.
    #[serde(default = "default_idle")]
    pub tcp_idle_timeout: u64,
    /// Most simultaneous stream connections.
    #[serde(default = "default_max_conns")]
    pub tcp_max_connections: usize,
    /// Seconds a connection may take to deliver one complete message (slowloris bound).
    #[serde(default = "default_msg_timeout")]
    pub tcp_message_timeout: u64,
    /// Names for `KSR.kx.ifdef` (Kamailio's `#!define`), as `NAME` or `NAME=value`.
    #[serde(default)]
    pub define: Vec<String>,
}

impl Default for Core {
    fn default() -> Self {
        Core {
            listen: default_listen(),
            alias: Vec::new(),
            egress_allow: None,
            workers: default_workers(),
            modules: None,
            server_header: default_server(),
            tcp_idle_timeout: default_idle(),
            tcp_max_connections: default_max_conns(),
            tcp_message_timeout: default_msg_timeout(),
            define: Vec::new(),
        }
    }
}

fn default_listen() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "udp:127.0.0.1:5060".to_string())]
}
fn default_workers() -> usize {
    2
}
fn default_server() -> String {
    format!("kemibox {}", env!("CARGO_PKG_VERSION"))
}
fn default_idle() -> u64 {
    120
}
fn default_max_conns() -> usize {
    4096
}
fn default_msg_timeout() -> u64 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// CA certificates trusted for outbound TLS connections (none: no outbound TLS).
    #[serde(default)]
    pub ca_list: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Resolve names from /etc/hosts only; never ask a DNS server.
    #[serde(default)]
    pub hosts_only: bool,
    /// Name servers (`address:port`) to ask instead of the system's resolv.conf.
    #[serde(default)]
    pub servers: Vec<SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Address of the control listener (`GET /metrics`), e.g. `127.0.0.1:5080`.
    pub listen: Spanned<String>,
    #[serde(skip)]
    pub addr: Option<SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// `"lua"`, `"lua-wasm"`, `"js-wasm"`, `"python-wasm"` (with `script`) or `"wasm"`
    /// (with `plugin`).
    pub engine: Spanned<String>,
    /// The script (engines `"lua"`, `"lua-wasm"`: Lua; `"js-wasm"`: JavaScript;
    /// `"python-wasm"`: Python).
    #[serde(default)]
    pub script: Option<Spanned<PathBuf>>,
    /// The WebAssembly component (engine `"wasm"`).
    #[serde(default)]
    pub plugin: Option<Spanned<PathBuf>>,
    /// The string passed to the plugin's `init` (engine `"wasm"`).
    #[serde(default)]
    pub config: String,
    /// Directory keeping compiled plugins by content hash (engine `"wasm"`); none: compile
    /// at every start.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Limits of each route call of a plugin (every engine but `"lua"`).
    #[serde(default)]
    pub limits: RoutingLimits,
    /// The reply to a request whose route failed (a Lua error, a plugin's trap, deadline
    /// or limit hit): `"CODE Reason"`, 300..=699; default `"500 Server Internal Error"`.
    #[serde(default)]
    pub error_reply: Option<Spanned<String>>,
    /// Environment variables a wasm plugin may read (`KSR.kx.get_env`); none by default.
    #[serde(default)]
    pub guest_env: Vec<String>,
    /// The runtime component of engine `"lua-wasm"` or `"js-wasm"`; none: found by
    /// `Config::runtime_path`.
    #[serde(default)]
    pub runtime: Option<Spanned<PathBuf>>,
}

/// Parses `"CODE Reason phrase"` with a final code 300..=699.
pub fn parse_error_reply(s: &str) -> Result<(u16, String), String> {
    let (code, reason) = s.trim().split_once(' ').unwrap_or((s.trim(), ""));
    let code: u16 = code
        .parse()
        .ok()
        .filter(|c| (300..=699).contains(c))
        .ok_or_else(|| format!("`{s}`: must start with a status code 300..=699"))?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().any(|c| c.is_control()) {
        return Err(format!("`{s}`: needs a reason phrase on one line"));
    }
    Ok((code, reason.to_string()))
}

/// `[routing.limits]`: what one route call of a wasm plugin may use.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RoutingLimits {
    /// Wall-clock deadline of a route call, in milliseconds (1..=60000; default 100).
    pub deadline_ms: Option<Spanned<i64>>,
    /// Linear memory cap of an instance, in MiB (1..=4095; default 64).
    pub memory_mb: Option<Spanned<i64>>,
    /// Most KEMI calls in one route call (1..=10000000; default 10000).
    pub host_calls: Option<Spanned<i64>>,
    /// `"warm"` (default: an instance per worker, reused) or `"per-message"` (a fresh
    /// instance for every message).
    pub isolation: Option<Spanned<String>>,
}

/// One parsed `listen` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    pub proto: Proto,
    pub addr: SocketAddr,
    pub advertise: Option<(String, u16)>,
}

/// Parses `proto:addr:port[ advertise host:port]`, e.g. `udp:[::1]:5060`.
pub fn parse_listen(s: &str) -> Result<ListenSpec, String> {
    let (main, adv) = match s.split_once(" advertise ") {
        Some((m, a)) => (m.trim(), Some(a.trim())),
        None => (s.trim(), None),
    };
    let (proto, rest) = main
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected proto:address:port"))?;
    let proto = Proto::parse(proto).ok_or_else(|| format!("`{s}`: unknown protocol `{proto}`"))?;
    let addr: SocketAddr = rest
        .parse()
        .map_err(|_| format!("`{s}`: `{rest}` is not address:port (IPv6 in brackets)"))?;
    let advertise = match adv {
        None => None,
        Some(a) => {
            let (h, p) = a
                .rsplit_once(':')
                .ok_or_else(|| format!("`{s}`: advertise needs host:port"))?;
            Some((
                h.to_string(),
                p.parse()
                    .map_err(|_| format!("`{s}`: bad advertised port `{p}`"))?,
            ))
        }
    };
    Ok(ListenSpec {
        proto,
        addr,
        advertise,
    })
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())]
        .bytes()
        .filter(|&c| c == b'\n')
        .count()
        + 1
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: file.clone(),
            err: e.to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::from_str(&src, &file, base)
    }

    pub fn from_str(src: &str, file: &str, base_dir: PathBuf) -> Result<Config, ConfigError> {
        let at = |offset: usize, msg: String| ConfigError::At {
            file: file.to_string(),
            line: line_of(src, offset),
            msg,
        };
        let mut cfg: Config = toml::from_str(src).map_err(|e| {
            let off = e.span().map(|s| s.start).unwrap_or(0);
            at(off, e.message().to_string())
        })?;
        cfg.base_dir = base_dir;
        for l in &cfg.core.listen {
            let spec = parse_listen(l.get_ref())
                .map_err(|m| at(l.span().start, format!("core.listen: {m}")))?;
            if spec.proto.is_secure() && cfg.tls.is_none() {
                return Err(at(
                    l.span().start,
                    format!("core.listen: `{}` needs a [tls] section", l.get_ref()),
                ));
            }
            cfg.listen.push(spec);
        }
        if cfg.listen.is_empty() {
            return Err(at(0, "core.listen: no listen socket".into()));
        }
        if let Some(list) = &cfg.core.egress_allow {
            let mut nets = Vec::new();
            for n in list {
                let text = n.get_ref();
                let net = text
                    .parse::<IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        at(
                            n.span().start,
                            format!("core.egress_allow: `{text}` is not a CIDR"),
                        )
                    })?;
                nets.push(net);
            }
            cfg.egress = Some(nets);
        }
        if let Some(c) = &mut cfg.control {
            let addr = c.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
                at(
                    c.listen.span().start,
                    format!(
                        "control.listen: `{}` is not address:port",
                        c.listen.get_ref()
                    ),
                )
            })?;
            c.addr = Some(addr);
        }
        if cfg.core.workers == 0 || cfg.core.workers > 256 {
            return Err(at(0, "core.workers: must be 1..=256".into()));
        }
        if let Some(mods) = &cfg.core.modules {
            for m in mods {
                if !crate::modules::AVAILABLE.contains(&m.get_ref().as_str()) {
                    return Err(at(
                        m.span().start,
                        format!("core.modules: unknown module `{}`", m.get_ref()),
                    ));
                }
            }
        }
        let engine = &cfg.routing.engine;
        match engine.get_ref().as_str() {
            name @ ("lua" | "lua-wasm" | "js-wasm" | "python-wasm") => {
                let Some(script) = &cfg.routing.script else {
                    return Err(at(
                        engine.span().start,
                        format!("routing.script: engine \"{name}\" needs a script"),
                    ));
                };
                let path = cfg.resolve(script.get_ref());
                if !path.is_file() {
                    return Err(at(
                        script.span().start,
                        format!(
                            "routing.script: `{}` is not a readable file",
                            path.display()
                        ),
                    ));
                }
            }
            "wasm" => {
                let Some(plugin) = &cfg.routing.plugin else {
                    return Err(at(
                        engine.span().start,
                        "routing.plugin: engine \"wasm\" needs a plugin".into(),
                    ));
                };
                let path = cfg.resolve(plugin.get_ref());
                if !path.is_file() {
                    return Err(at(
                        plugin.span().start,
                        format!(
                            "routing.plugin: `{}` is not a readable file",
                            path.display()
                        ),
                    ));
                }
            }
            other => {
                return Err(at(
                    engine.span().start,
                    format!(
                        "routing.engine: `{other}` is not available (this build has \"lua\", \"lua-wasm\", \"js-wasm\", \"python-wasm\" and \"wasm\")"
                    ),
                ))
            }
        }
        if let Some(r) = &cfg.routing.error_reply {
            parse_error_reply(r.get_ref())
                .map_err(|m| at(r.span().start, format!("routing.error_reply: {m}")))?;
        }
        if let Some(rt) = &cfg.routing.runtime {
            let path = cfg.resolve(rt.get_ref());
            if !path.is_file() {
                return Err(at(
                    rt.span().start,
                    format!(
                        "routing.runtime: `{}` is not a readable file",
                        path.display()
                    ),
                ));
            }
        }
        if engine.get_ref() != "lua" {
            let l = &cfg.routing.limits;
            if let Some(i) = &l.isolation {
                if !matches!(i.get_ref().as_str(), "warm" | "per-message") {
                    return Err(at(
                        i.span().start,
                        format!(
                            "routing.limits.isolation: `{}` is not \"warm\" or \"per-message\"",
                            i.get_ref()
                        ),
                    ));
                }
            }
            for (key, v, max) in [
                ("deadline_ms", &l.deadline_ms, 60_000),
                ("memory_mb", &l.memory_mb, 4095),
                ("host_calls", &l.host_calls, 10_000_000),
            ] {
                if let Some(v) = v {
                    if !(1..=max).contains(v.get_ref()) {
                        return Err(at(
                            v.span().start,
                            format!("routing.limits.{key}: must be 1..={max}"),
                        ));
                    }
                }
            }
        }
        for (module, params) in &cfg.modparam {
            let known = crate::modules::modparams_of(module).ok_or_else(|| {
                let off = params.values().next().map(|v| v.span().start).unwrap_or(0);
                at(off, format!("modparam.{module}: unknown module"))
            })?;
            for (key, val) in params {
                let Some((_, kind)) = known.iter().find(|(k, _)| k == key) else {
                    return Err(at(
                        val.span().start,
                        format!("modparam.{module}.{key}: unknown parameter"),
                    ));
                };
                let ok = match kind {
                    ParamKind::Int => val.get_ref().is_integer(),
                    ParamKind::Str => val.get_ref().is_str(),
                    ParamKind::StrList => {
                        val.get_ref().is_str()
                            || val
                                .get_ref()
                                .as_array()
                                .is_some_and(|a| a.iter().all(|v| v.is_str()))
                    }
                };
                if !ok {
                    return Err(at(
                        val.span().start,
                        format!("modparam.{module}.{key}: expected {kind:?}"),
                    ));
                }
            }
        }
        Ok(cfg)
    }

    /// Replaces the routing script (command line `--script`).
    pub fn set_script(&mut self, path: PathBuf) {
        self.routing.script = Some(Spanned::new(0..0, path));
    }

    pub fn script_path(&self) -> PathBuf {
        match &self.routing.script {
            Some(s) => self.resolve(s.get_ref()),
            None => PathBuf::new(),
        }
    }

    /// The wasm plugin's path (engine `"wasm"`).
    pub fn plugin_path(&self) -> PathBuf {
        match &self.routing.plugin {
            Some(s) => self.resolve(s.get_ref()),
            None => PathBuf::new(),
        }
    }

    /// The runtime component of script engine `engine` (`"lua-wasm"`, `"js-wasm"`):
    /// `routing.runtime` when set and `engine` is the configured one, else the first of
    /// the component's file (`kemibox_lua.wasm`, `kemibox_quickjs.wasm`) beside the
    /// kemibox binary, in `<prefix>/lib/kemibox/` for a binary in `<prefix>/bin`, and in
    /// the source tree's `plugins/target/wasm32-wasip2/release/`. `Err` lists the places
    /// looked at.
    pub fn runtime_path(&self, engine: &str) -> Result<PathBuf, String> {
        let Some(&(_, file, language)) = SCRIPT_RUNTIMES.iter().find(|r| r.0 == engine) else {
            return Err(format!("engine \"{engine}\" runs no script runtime"));
        };
        if let Some(rt) = &self.routing.runtime {
            if self.routing.engine.get_ref() == engine {
                return Ok(self.resolve(rt.get_ref()));
            }
        }
        let mut places = Vec::new();
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            places.push(dir.join(file));
            if let Some(prefix) = dir.parent() {
                places.push(prefix.join("lib/kemibox").join(file));
            }
        }
        places.push(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../plugins/target/wasm32-wasip2/release")
                .join(file),
        );
        if let Some(p) = places.iter().find(|p| p.is_file()) {
            return Ok(p.clone());
        }
        let list: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
        Err(format!(
            "engine \"{engine}\": the {language} runtime component is not in any of {}; build it \
             (cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml) \
             or set routing.runtime",
            list.join(", ")
        ))
    }

    /// The limits of `[routing.limits]`, with their defaults.
    /// The SQLite file of `[modparam.<module>] db_url` (`sqlite://PATH`, relative to the
    /// config file's folder); `None` when no db_url is set.
    pub fn sqlite_path(&self, module: &str) -> Result<Option<PathBuf>, String> {
        let url = self.modparam_str(module, "db_url", "");
        if url.is_empty() {
            return Ok(None);
        }
        let p = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| format!("{module}: bad db_url `{url}` (sqlite://PATH)"))?;
        Ok(Some(if p.starts_with('/') {
            p.into()
        } else {
            self.base_dir.join(p)
        }))
    }

    /// The reply to a request whose route failed (`routing.error_reply`).
    pub fn error_reply(&self) -> (u16, String) {
        self.routing
            .error_reply
            .as_ref()
            .and_then(|r| parse_error_reply(r.get_ref()).ok())
            .unwrap_or((500, "Server Internal Error".into()))
    }

    pub fn wasm_limits(&self) -> crate::engine::wasm::Limits {
        let l = &self.routing.limits;
        let d = crate::engine::wasm::Limits::default();
        let get = |v: &Option<Spanned<i64>>| v.as_ref().map(|v| *v.get_ref() as u64);
        crate::engine::wasm::Limits {
            deadline: get(&l.deadline_ms)
                .map(std::time::Duration::from_millis)
                .unwrap_or(d.deadline),
            memory: get(&l.memory_mb)
                .map(|m| (m as usize) << 20)
                .unwrap_or(d.memory),
            host_calls: get(&l.host_calls).unwrap_or(d.host_calls),
            // Who may route, each with a warm instance and one for nested routes: the
            // UDP reader threads (`workers` per UDP socket), the runtime's workers (stream
            // transports, tm timers) and its blocking threads.
            instances: {
                let udp = self.listen.iter().filter(|l| l.proto == Proto::Udp).count() as u32;
                (self.core.workers as u32 * (udp + 1) * 2 + 32).max(d.instances)
            },
            per_message: l
                .isolation
                .as_ref()
                .is_some_and(|i| i.get_ref() == "per-message"),
        }
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn modules(&self) -> Vec<String> {
        match &self.core.modules {
            Some(m) => m.iter().map(|s| s.get_ref().clone()).collect(),
            None => crate::modules::AVAILABLE
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    /// The value of a define (`Some("")` for a define without value).
    pub fn define(&self, name: &str) -> Option<&str> {
        self.core
            .define
            .iter()
            .find_map(|d| match d.split_once('=') {
                Some((n, v)) if n.trim() == name => Some(v.trim()),
                None if d.trim() == name => Some(""),
                _ => None,
            })
    }

    pub fn modparam_int(&self, module: &str, key: &str, default: i64) -> i64 {
        self.modparam
            .get(module)
            .and_then(|m| m.get(key))
            .and_then(|v| v.get_ref().as_integer())
            .unwrap_or(default)
    }

    /// A repeatable modparam: a string or an array of strings.
    pub fn modparam_strs(&self, module: &str, key: &str) -> Vec<String> {
        match self
            .modparam
            .get(module)
            .and_then(|m| m.get(key))
            .map(|v| v.get_ref())
        {
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn modparam_str<'a>(&'a self, module: &str, key: &str, default: &'a str) -> &'a str {
        self.modparam
            .get(module)
            .and_then(|m| m.get(key))
            .and_then(|v| v.get_ref().as_str())
            .unwrap_or(default)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Int,
    Str,
    /// A string, or an array of strings (a modparam Kamailio lets you repeat).
    StrList,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir();
        std::fs::write(dir.join("kemibox-cfg-test.lua"), "").ok();
        Config::from_str(src, "test.toml", dir)
    }

    const OK: &str = "[core]\nlisten = [\"udp:127.0.0.1:5060\", \"udp:[::1]:5060\"]\n\
        egress_allow = [\"127.0.0.0/8\", \"::1/128\"]\n\
        [routing]\nengine = \"lua\"\nscript = \"kemibox-cfg-test.lua\"\n\
        [modparam.maxfwd]\nmax_limit = 70\n";

    #[test]
    fn good_config() {
        let c = load(OK).expect("valid");
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.listen[1].addr, "[::1]:5060".parse().unwrap());
        assert_eq!(c.modparam_int("maxfwd", "max_limit", 1), 70);
    }

    #[test]
    fn errors_name_line_and_key() {
        let bad = OK.replace("udp:[::1]:5060", "udp:::1:5060");
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("test.toml:2:") && e.contains("core.listen"),
            "{e}"
        );
        let bad = OK.replace("max_limit", "max_limt");
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("test.toml:8:") && e.contains("max_limt"),
            "{e}"
        );
        let bad = OK.replace("engine = \"lua\"", "engine = \"cobol\"");
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.starts_with("test.toml:5:"), "{e}");
        let bad = OK.replace(
            "engine = \"lua\"\nscript = \"kemibox-cfg-test.lua\"",
            "engine = \"wasm\"\nplugin = \"kemibox-cfg-test.lua\"\n[routing.limits]\ndeadline_ms = 0",
        );
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("test.toml:8:") && e.contains("deadline_ms"),
            "{e}"
        );
        let good = OK.replace(
            "engine = \"lua\"\nscript = \"kemibox-cfg-test.lua\"",
            "engine = \"wasm\"\nplugin = \"kemibox-cfg-test.lua\"\nconfig = \"x\"\n[routing.limits]\nmemory_mb = 8",
        );
        let c = load(&good).expect("wasm config");
        assert_eq!(c.wasm_limits().memory, 8 << 20);
        assert!(!c.wasm_limits().per_message);
        let bad = good.replace("memory_mb = 8", "isolation = \"sometimes\"");
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("test.toml:9:") && e.contains("isolation"),
            "{e}"
        );
        let bad = OK.replace("engine = \"lua\"", "engine = \"wasm\"");
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.starts_with("test.toml:5:") && e.contains("plugin"), "{e}");
        let bad = OK.replace("[core]", "[core]\nlistne = []");
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.starts_with("test.toml:2:") && e.contains("listne"), "{e}");
    }

    #[test]
    fn js_wasm_engine() {
        let good = OK.replace(
            "engine = \"lua\"\nscript = \"kemibox-cfg-test.lua\"",
            "engine = \"js-wasm\"\nscript = \"kemibox-cfg-test.lua\"",
        );
        let c = load(&good).expect("js-wasm config");
        // Found in the build tree, or a clear error naming the runtime and where it looked.
        match c.runtime_path("js-wasm") {
            Ok(p) => assert!(p.ends_with(JS_RUNTIME), "{}", p.display()),
            Err(e) => assert!(
                e.contains("JavaScript runtime component") && e.contains(JS_RUNTIME),
                "{e}"
            ),
        }
        assert!(c.runtime_path("lua").is_err());
        let bad = good.replace("\nscript = \"kemibox-cfg-test.lua\"", "");
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("engine \"js-wasm\" needs a script"), "{e}");
    }

    #[test]
    fn lua_wasm_engine() {
        let good = OK.replace(
            "engine = \"lua\"\nscript = \"kemibox-cfg-test.lua\"",
            "engine = \"lua-wasm\"\nruntime = \"kemibox-cfg-test.lua\"\nscript = \"kemibox-cfg-test.lua\"\n\
             [routing.limits]\ndeadline_ms = 50",
        );
        let c = load(&good).expect("lua-wasm config");
        assert_eq!(c.wasm_limits().deadline.as_millis(), 50);
        assert_eq!(
            c.runtime_path("lua-wasm").expect("runtime"),
            std::env::temp_dir().join("kemibox-cfg-test.lua")
        );
        let bad = good.replace(
            "runtime = \"kemibox-cfg-test.lua\"",
            "runtime = \"nope.wasm\"",
        );
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("test.toml:6:") && e.contains("routing.runtime"),
            "{e}"
        );
        let bad = good.replace("\nscript = \"kemibox-cfg-test.lua\"", "");
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("engine \"lua-wasm\" needs a script"), "{e}");
        let bad = good.replace("deadline_ms = 50", "deadline_ms = 0");
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("deadline_ms"), "{e}");
    }
}
