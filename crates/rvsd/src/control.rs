//! The control server: newline-delimited JSON requests (`rvs_api::Command`) on a Unix socket,
//! one reply line each. A garbled line gets an error reply; an oversized line or a vanished client
//! only ends that client's connection.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rvs_api::{Command, ErrorKind, Reply};
use rvs_engine::Engine;
use rvs_io::NetState;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};

use crate::bypass::Bypass;
use crate::clock::Clock;
use crate::convert;
use crate::dataplane::EgressCounters;
use crate::health::Health;
use crate::vrrp::VrrpRuntime;

/// What every control connection needs.
#[derive(Clone)]
pub struct Shared {
    /// The director core.
    pub engine: Arc<Engine>,
    /// The nftables rules that follow the services.
    pub bypass: Bypass,
    /// The daemon clock (for listings with expiry times and rates).
    pub clock: Clock,
    /// The data plane's egress counters (for `GetCounters`).
    pub egress: Arc<EgressCounters>,
    /// The kernel's addresses (a real server at a director address is forwarded `Local`).
    pub net: Arc<NetState>,
    /// The keepalived configuration and its checkers, when rvsd runs with `-f`.
    pub health: Option<Arc<Health>>,
    /// The connection-synchronization daemons.
    pub sync: Arc<crate::sync_daemon::SyncDaemons>,
    /// The VRRP instances (none yet, maybe), when rvsd runs with `-f`.
    pub vrrp: Option<Arc<VrrpRuntime>>,
}

/// Serves the control socket until SIGTERM or SIGINT.
pub async fn serve(path: PathBuf, shared: Shared) -> anyhow::Result<()> {
    let listener = bind(&path)?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = client(stream, shared).await {
                            tracing::debug!("control client ended: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("accept on the control socket failed: {e}"),
            },
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); return Ok(()); }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); return Ok(()); }
            _ = hup.recv() => {
                match shared.health.clone() {
                    Some(h) => {
                        let vrrp = shared.vrrp.clone();
                        tokio::spawn(async move {
                            let done =
                                tokio::task::spawn_blocking(move || reload(&h, vrrp.as_deref()))
                                    .await;
                            match done {
                                Ok(Ok(())) => tracing::info!("SIGHUP: configuration reloaded"),
                                Ok(Err(e)) => tracing::error!("SIGHUP: reload refused: {e}"),
                                Err(e) => tracing::error!("SIGHUP: reload failed: {e}"),
                            }
                        });
                    }
                    None => tracing::warn!("SIGHUP ignored: rvsd runs without -f"),
                }
            }
        }
    }
}

/// Re-reads keepalived.conf: virtual servers and checkers first, then the VRRP instances.
/// A file that does not load changes nothing; a VRRP instance that cannot start is reported
/// while the rest of the new configuration is in force.
fn reload(health: &Health, vrrp: Option<&VrrpRuntime>) -> Result<(), String> {
    let lowered = health.reload()?;
    match vrrp {
        Some(v) => v.reload(&lowered).map_err(|e| format!("{e:#}")),
        None => Ok(()),
    }
}

/// Binds the socket with mode 0600, replacing a stale socket file but refusing to steal the path
/// from a live rvsd.
fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another rvsd is already serving {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

async fn client(stream: UnixStream, shared: Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = rvs_api::MAX_LINE as u64 + 1;
        let n = (&mut reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            let reply = error(
                ErrorKind::InvalidArgument,
                "request line too long or truncated",
            );
            write_reply(&mut write, &reply).await?;
            return Ok(());
        }
        let reply = match serde_json::from_slice::<Command>(&line) {
            Ok(cmd) => execute(&shared, cmd).await,
            Err(e) => error(
                ErrorKind::InvalidArgument,
                &format!("malformed request: {e}"),
            ),
        };
        write_reply(&mut write, &reply).await?;
    }
}

/// Runs one command; configuration changes also refresh the kernel-bypass rules.
async fn execute(shared: &Shared, cmd: Command) -> Reply {
    match &cmd {
        Command::StartDaemon(cfg) => {
            return match shared.sync.start(cfg) {
                Ok(_) => Reply::Ok,
                Err(e) => error(ErrorKind::InvalidArgument, &e),
            }
        }
        Command::StopDaemon(role) => {
            return match shared.sync.stop(*role) {
                Ok(()) => Reply::Ok,
                Err(e) => error(ErrorKind::InvalidArgument, &e),
            }
        }
        Command::ListDaemons => return Reply::Daemons(shared.sync.list()),
        Command::GetVrrp => {
            return Reply::Vrrp(shared.vrrp.as_ref().map(|v| v.status()).unwrap_or_default())
        }
        _ => {}
    }
    if matches!(cmd, Command::Reload | Command::GetHealth) {
        if let Some(h) = shared.health.clone() {
            let vrrp = shared.vrrp.clone();
            let joined = tokio::task::spawn_blocking(move || match cmd {
                Command::Reload => match reload(&h, vrrp.as_deref()) {
                    Ok(()) => Reply::Ok,
                    Err(e) => error(ErrorKind::InvalidArgument, &e),
                },
                _ => Reply::Health(h.status()),
            })
            .await;
            return joined
                .unwrap_or_else(|e| error(ErrorKind::Internal, &format!("command failed: {e}")));
        }
    }
    let changes_config = convert::changes_config(&cmd);
    let engine = shared.engine.clone();
    let clock = shared.clock;
    let bypass = shared.bypass.clone();
    let egress = shared.egress.clone();
    let net = shared.net.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let local_addrs = net.local_addrs();
        let reply = convert::execute_with(&engine, Some(&egress), &local_addrs, clock.now(), cmd);
        if changes_config {
            bypass.sync(&engine);
        }
        reply
    })
    .await;
    joined.unwrap_or_else(|e| error(ErrorKind::Internal, &format!("command failed: {e}")))
}

fn error(kind: ErrorKind, message: &str) -> Reply {
    Reply::Error(rvs_api::ErrorReply {
        kind,
        message: message.to_owned(),
    })
}

async fn write_reply(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    reply: &Reply,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await
}
