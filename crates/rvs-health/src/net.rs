//! Socket helpers shared by the network checkers: bind-then-connect and I/O timeouts.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use crate::spec::ConnectOpts;

/// Errors from the network layer of a check.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// An I/O step did not finish within `connect_timeout`.
    #[error("timed out after {0:?} while {1}")]
    Timeout(Duration, &'static str),
    /// An I/O error while doing a step.
    #[error("{1}: {0}")]
    Io(#[source] io::Error, &'static str),
}

/// Run `fut` (an I/O step named `what`) bounded by `limit`.
pub async fn within<T>(
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = io::Result<T>>,
) -> Result<T, NetError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(NetError::Io(e, what)),
        Err(_) => Err(NetError::Timeout(limit, what)),
    }
}

fn tcp_socket_for(addr: &SocketAddr) -> io::Result<TcpSocket> {
    match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
}

/// Open a TCP connection per `opts`: bind `bindto`/`bind_port` first when set, then
/// connect within `connect_timeout`.
pub async fn tcp_connect(opts: &ConnectOpts) -> Result<TcpStream, NetError> {
    let target = opts.target();
    let socket = tcp_socket_for(&target).map_err(|e| NetError::Io(e, "creating socket"))?;
    if let Some(local) = opts.local() {
        if local.port() != 0 {
            socket
                .set_reuseaddr(true)
                .map_err(|e| NetError::Io(e, "setting SO_REUSEADDR"))?;
        }
        socket
            .bind(local)
            .map_err(|e| NetError::Io(e, "binding source address"))?;
    }
    within(opts.connect_timeout, "connecting", socket.connect(target)).await
}

/// A UDP socket bound per `opts` (or to the wildcard) and connected to the target, so
/// ICMP errors come back as `ECONNREFUSED` on receive.
pub async fn udp_connect(opts: &ConnectOpts) -> Result<UdpSocket, NetError> {
    let target = opts.target();
    let local = opts.local().unwrap_or_else(|| match target {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    });
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|e| NetError::Io(e, "binding UDP socket"))?;
    sock.connect(target)
        .await
        .map_err(|e| NetError::Io(e, "connecting UDP socket"))?;
    Ok(sock)
}
