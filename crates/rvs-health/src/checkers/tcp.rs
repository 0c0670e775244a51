//! TCP_CHECK: the connection must succeed.

use crate::net::tcp_connect;
use crate::result::CheckResult;
use crate::spec::{ClientPath, ConnectOpts};

pub(super) async fn run(conn: &ConnectOpts) -> CheckResult {
    match tcp_connect(conn).await {
        Ok(_stream) => CheckResult::pass(format!("connected to {}", conn.target())),
        Err(e) => CheckResult::fail(format!("TCP {}: {e}", conn.target())),
    }
}

/// TCP_CHECK along the client's path: the prober's SYN to the VIP must be answered with a
/// SYN-ACK within `connect_timeout`.
pub(super) async fn run_client_path(conn: &ConnectOpts, path: &ClientPath) -> CheckResult {
    let (rip, vip, port, timeout) = (path.rip, path.vip, conn.connect_port, conn.connect_timeout);
    let probed = path
        .run_blocking(move |prober, rip, vip| prober.syn_probe(rip, vip, port, timeout))
        .await;
    let target = std::net::SocketAddr::new(vip, port);
    match probed {
        Ok(Ok(Ok(()))) => CheckResult::pass(format!("{target} answered through {rip}")),
        Ok(Ok(Err(why))) => CheckResult::fail(format!("TCP {target} through {rip}: {why}")),
        Ok(Err(e)) => CheckResult::fail(format!("TCP {target} through {rip}: no path: {e}")),
        Err(e) => CheckResult::fail(format!("TCP {target} through {rip}: probe failed: {e}")),
    }
}
