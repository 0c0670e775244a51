//! TCP_CHECK: the connection must succeed.

use std::time::Duration;

use crate::net::tcp_connect;
use crate::result::CheckResult;
use crate::spec::ConnectOpts;

pub(super) async fn run(conn: &ConnectOpts) -> CheckResult {
    match tcp_connect(conn).await {
        Ok(_stream) => CheckResult::pass(format!("connected to {}", conn.target()), Duration::ZERO),
        Err(e) => CheckResult::fail(format!("TCP {}: {e}", conn.target()), Duration::ZERO),
    }
}
