//! `kemibox run -c FILE` / `kemibox check -c FILE` / `kemibox plugin build script.js|.py -o out.wasm`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kemibox::config::Config;

#[derive(Parser)]
#[command(
    name = "kemibox",
    version,
    about = "SIP proxy with KEMI routing scripts"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server in the foreground, logging to stderr.
    Run {
        #[arg(short, long)]
        config: PathBuf,
        /// Routing script to use instead of the config's `routing.script`.
        #[arg(long)]
        script: Option<PathBuf>,
    },
    /// Validate the config and the routing script, then exit.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Build routing plugins.
    Plugin {
        #[command(subcommand)]
        cmd: PluginCmd,
    },
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Build a wasm routing plugin from a Kamailio KEMI script: JavaScript (`.js`,
    /// app_jsdt style: `ksr_request_route()` and the routes it names) with
    /// componentize-js, or Python (`.py`, app_python3 style: `mod_init()` returns the
    /// object whose methods are the routes) with componentize-py.
    Build {
        /// The routing script (`.js` or `.py`).
        script: PathBuf,
        /// The component to write.
        #[arg(short, long)]
        out: PathBuf,
        /// JS: the runtime directory (`plugins/js`, with its `node_modules`). Python:
        /// the directory componentize-py is installed in
        /// (default `/opt/kemibox-tools/componentize-py`).
        #[arg(long)]
        runtime: Option<PathBuf>,
        /// Compile the JS ahead of time (componentize-js `--aot`, weval).
        #[arg(long)]
        aot: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { config } => {
            let cfg = Config::load(&config)?;
            kemibox::server::check(cfg)?;
            println!("{}: OK", config.display());
            Ok(())
        }
        Cmd::Plugin {
            cmd:
                PluginCmd::Build {
                    script,
                    out,
                    runtime,
                    aot,
                },
        } => {
            let opts = kemibox::plugin_build::JsBuild {
                runtime,
                node: None,
                aot,
            };
            kemibox::plugin_build::build(&script, &out, &opts)?;
            println!("{}", out.display());
            Ok(())
        }
        Cmd::Run { config, script } => {
            let mut cfg = Config::load(&config)?;
            if let Some(s) = script {
                cfg.set_script(s);
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(cfg.core.workers)
                .enable_all()
                .build()
                .context("starting the runtime")?;
            rt.block_on(async move {
                let server = kemibox::server::start(cfg).await?;
                wait_for_shutdown().await;
                tracing::info!(stats = ?server.env.stats.snapshot(), "shutting down");
                server.shutdown();
                Ok(())
            })
        }
    }
}

async fn wait_for_shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
