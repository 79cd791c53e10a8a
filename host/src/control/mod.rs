//! The control listener (`[control] listen`): Prometheus metrics at `GET /metrics` and
//! JSON-RPC 2.0 at `POST /RPC` (hot reload of the routing; see `rpc`).

pub mod rpc;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Json;
use tokio::net::TcpListener;

use crate::kemi::Env;
use crate::stats::Stats;
use crate::transport::Transports;

/// Renders the counters in the Prometheus text format.
pub fn render_metrics(stats: &Stats, transports: &Transports) -> String {
    let mut out = String::with_capacity(2048);
    for (name, v) in stats.snapshot() {
        out.push_str(&format!(
            "# TYPE kemibox_{name}_total counter\nkemibox_{name}_total {v}\n"
        ));
    }
    out.push_str(&format!(
        "# TYPE kemibox_tcp_connections gauge\nkemibox_tcp_connections {}\n",
        transports.connection_count()
    ));
    out
}

#[derive(Clone)]
struct Control {
    env: Arc<Env>,
    transports: Arc<Transports>,
}

/// Most bytes of a JSON-RPC request.
const MAX_BODY: usize = 64 << 10;

/// Serves the control listener on `addr`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    env: Arc<Env>,
    transports: Arc<Transports>,
) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind(addr).await?;
    let local = l.local_addr()?;
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/RPC", post(rpc))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(Control { env, transports });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(l, app).await {
            tracing::error!("control listener stopped: {e}");
        }
    });
    Ok(local)
}

async fn metrics(State(c): State<Control>) -> impl IntoResponse {
    let mut body = render_metrics(&c.env.stats, &c.transports);
    body.push_str(&routing_metrics(&c.env));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Per-version counters of the loaded routing versions.
fn routing_metrics(env: &Env) -> String {
    let st = env.routing.status();
    let mut out = String::new();
    out.push_str("# TYPE kemibox_routing_version gauge\n");
    if let Some(c) = &st.current {
        out.push_str(&format!("kemibox_routing_version {}\n", c.id));
    }
    out.push_str("# TYPE kemibox_routing_calls_total counter\n");
    out.push_str("# TYPE kemibox_routing_errors_total counter\n");
    let all = st
        .current
        .iter()
        .chain(st.previous.iter())
        .chain(st.retired.iter());
    for v in all {
        let l = format!("version=\"{}\",engine=\"{}\"", v.id, v.engine);
        out.push_str(&format!("kemibox_routing_calls_total{{{l}}} {}\n", v.calls));
        let e = &v.errors;
        for (reason, n) in [
            ("script", e.script),
            ("trap", e.trap),
            ("deadline", e.deadline),
            ("memory", e.memory),
            ("host_calls", e.host_calls),
        ] {
            out.push_str(&format!(
                "kemibox_routing_errors_total{{{l},reason=\"{reason}\"}} {n}\n"
            ));
        }
    }
    out
}

async fn rpc(State(c): State<Control>, body: Bytes) -> Json<serde_json::Value> {
    Json(rpc::handle(&c.env, &body).await)
}
