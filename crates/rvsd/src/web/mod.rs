//! rvsd's HTTP side (`--web-listen ADDR`, off unless given): a live dashboard at `/` (one page,
//! `dashboard.html`, redrawn from the JSON API every second), Prometheus metrics at `/metrics`
//! ([`metrics`]) and a JSON API of rvsadm's views under `/api/v1/`. All show what the control
//! socket answers ([`query`]), so they agree with `rvsadm` to the packet.
//!
//! | path | what | rvsadm |
//! | --- | --- | --- |
//! | `/api/v1/services` | services, real servers, counters and rates | `-L -n --stats --rate` |
//! | `/api/v1/connections` | the connection table | `-L -n -c` |
//! | `/api/v1/counters` | drops, egress, reassembly, defence, SYN proxy | `--counters` |
//! | `/api/v1/health` | checkers and real servers' health | `--health` |
//! | `/api/v1/vrrp` | VRRP instances with their counts | `--vrrp` |
//! | `/api/v1/daemons` | connection-sync daemons | `--list-daemon` |
//! | `/api/v1/timeouts`, `/api/v1/policy`, `/api/v1/marks`, `/api/v1/info` | settings | `--list-timeout`, `--list-policy`, `--list-marks`, `-v` |

pub mod metrics;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rvs_api::{Command, Reply};

use crate::control::server::{query, Shared};

/// Serves `listener` until the runtime stops.
pub async fn serve(listener: std::net::TcpListener, shared: Shared) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!(addr = %listener.local_addr()?, "serving metrics and the JSON API");
    axum::serve(listener, router(shared)).await
}

/// The routes.
fn router(shared: Shared) -> Router {
    /// A route answering `cmd`'s reply as JSON.
    fn api(cmd: fn() -> Command) -> axum::routing::MethodRouter<Shared> {
        get(move |State(shared): State<Shared>| async move { json(&shared, cmd()).await })
    }
    Router::new()
        .route("/", get(dashboard))
        .route("/api/v1/", get(index))
        .route("/metrics", get(metrics_page))
        .route(
            "/api/v1/services",
            api(|| Command::ListServices { service: None }),
        )
        .route("/api/v1/connections", api(|| Command::ListConnections))
        .route("/api/v1/counters", api(|| Command::GetCounters))
        .route("/api/v1/health", api(|| Command::GetHealth))
        .route("/api/v1/vrrp", api(|| Command::GetVrrp))
        .route("/api/v1/bfd", api(|| Command::GetBfd))
        .route("/api/v1/daemons", api(|| Command::ListDaemons))
        .route("/api/v1/timeouts", api(|| Command::GetTimeouts))
        .route("/api/v1/policy", api(|| Command::GetPolicy))
        .route("/api/v1/marks", api(|| Command::ListMarkRules))
        .route("/api/v1/info", api(|| Command::GetInfo))
        .with_state(shared)
}

/// The dashboard page, with the data plane's name filled in.
async fn dashboard(State(shared): State<Shared>) -> axum::response::Html<String> {
    axum::response::Html(include_str!("dashboard.html").replace("DATAPLANE", shared.dataplane))
}

/// A plain list of what is served.
async fn index() -> &'static str {
    "rvsd\n\n/\n/metrics\n/api/v1/services\n/api/v1/connections\n/api/v1/counters\n/api/v1/health\n\
     /api/v1/vrrp\n/api/v1/daemons\n/api/v1/timeouts\n/api/v1/policy\n/api/v1/marks\n/api/v1/info\n"
}

/// `cmd`'s answer as JSON: the list or record it carries, or an error with status 500.
async fn json(shared: &Shared, cmd: Command) -> Response {
    let body = match query(shared, cmd).await {
        Reply::Services(v) => serde_json::to_value(v),
        Reply::Connections(v) => serde_json::to_value(v),
        Reply::Counters(v) => serde_json::to_value(v),
        Reply::Health(v) => serde_json::to_value(v),
        Reply::Vrrp(v) => serde_json::to_value(v),
        Reply::Bfd(v) => serde_json::to_value(v),
        Reply::Daemons(v) => serde_json::to_value(v),
        Reply::Timeouts(v) => serde_json::to_value(v),
        Reply::Policy(v) => serde_json::to_value(v),
        Reply::MarkRules(v) => serde_json::to_value(v),
        Reply::Info(v) => serde_json::to_value(v),
        Reply::Error(e) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(e)).into_response();
        }
        other => serde_json::to_value(other),
    };
    match body {
        Ok(v) => Json(v).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `/metrics`.
async fn metrics_page(State(shared): State<Shared>) -> Response {
    let mut scrape = metrics::Scrape {
        dataplane: shared.dataplane,
        keepalived: shared.health.is_some(),
        ..metrics::Scrape::default()
    };
    if let Reply::Services(v) = query(&shared, Command::ListServices { service: None }).await {
        scrape.services = v;
    }
    if let Reply::Counters(v) = query(&shared, Command::GetCounters).await {
        scrape.counters = v;
    }
    if let Reply::Vrrp(v) = query(&shared, Command::GetVrrp).await {
        scrape.vrrp = v;
    }
    if let Reply::Bfd(v) = query(&shared, Command::GetBfd).await {
        scrape.bfd = v;
    }
    if let Reply::Health(v) = query(&shared, Command::GetHealth).await {
        scrape.health = v;
    }
    if let Reply::Daemons(v) = query(&shared, Command::ListDaemons).await {
        scrape.daemons = v;
    }
    let text = tokio::task::spawn_blocking(move || metrics::render(scrape))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}
