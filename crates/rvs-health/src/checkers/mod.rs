//! The checkers: one module per keepalived checker kind, and [`check`] to run any.

mod dns;
mod file;
mod http_get;
mod misc;
mod ping;
mod smtp;
mod tcp;
mod udp;

use std::time::Instant;

use crate::result::CheckResult;
use crate::spec::{CheckKind, CheckSpec};

pub use dns::{build_query, parse_response, DnsError};
pub use file::file_weight;
pub use misc::misc_outcome;

/// Run one check described by `spec` and report its outcome. Never panics on peer
/// input; every network step is bounded by `connect_timeout` (MISC_CHECK by
/// `misc_timeout`).
pub async fn check(spec: &CheckSpec) -> CheckResult {
    let start = Instant::now();
    let mut result = match &spec.kind {
        CheckKind::Tcp => match &spec.conn.via {
            Some(path) => tcp::run_client_path(&spec.conn, path).await,
            None => tcp::run(&spec.conn).await,
        },
        CheckKind::Http(h) => http_get::run(&spec.conn, h, false).await,
        CheckKind::Ssl(h) => http_get::run(&spec.conn, h, true).await,
        CheckKind::Misc(m) => misc::run(m).await,
        CheckKind::Dns(d) => dns::run(&spec.conn, d).await,
        CheckKind::Smtp(s) => smtp::run(&spec.conn, s).await,
        CheckKind::Udp(u) => udp::run(&spec.conn, u).await,
        CheckKind::Ping => ping::run(&spec.conn).await,
        CheckKind::File(f) => file::run(f).await,
    };
    result.elapsed = start.elapsed();
    result
}
