//! TCP_CHECK: the connection must succeed.

use crate::net::tcp_connect;
use crate::result::CheckResult;
use crate::spec::ConnectOpts;

pub(super) async fn run(conn: &ConnectOpts) -> CheckResult {
    match tcp_connect(conn).await {
        Ok(_stream) => CheckResult::pass(format!("connected to {}", conn.target())),
        Err(e) => CheckResult::fail(format!("TCP {}: {e}", conn.target())),
    }
}
