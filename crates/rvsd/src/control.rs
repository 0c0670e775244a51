//! The control server: newline-delimited JSON requests (`rvs_api::Command`) on a Unix socket,
//! one reply line each, framed by `rvs_api`'s [`FrameBuffer`]. A garbled or oversized line gets an
//! error reply and the connection stays usable; a client that vanishes mid-line only ends its own
//! connection.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rvs_api::{decode_command, encode_reply, ApiError, Command, ErrorKind, FrameBuffer, Reply};
use rvs_engine::Engine;
use rvs_io::NetState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
    let (read, write) = stream.into_split();
    serve_lines(read, write, |cmd| execute(&shared, cmd)).await
}

/// Bytes read from a client per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// Answers each request line read from `read` on `write` with `handle`'s reply, in order, until
/// the client closes its side. A line that is not a command or is longer than
/// [`rvs_api::MAX_LINE`] is answered with an `InvalidArgument` error and the connection goes on;
/// an unfinished line at the end of the stream is answered the same way.
async fn serve_lines<R, W, F, Fut>(mut read: R, mut write: W, mut handle: F) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    F: FnMut(Command) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let mut frames = FrameBuffer::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        while let Some(frame) = frames.next_frame() {
            let reply = match frame.and_then(|line| decode_command(&line)) {
                Ok(cmd) => handle(cmd).await,
                Err(e) => bad_request(&e),
            };
            write_reply(&mut write, &reply).await?;
        }
        let n = read.read(&mut chunk).await?;
        if n == 0 {
            if frames.pending() > 0 {
                write_reply(&mut write, &bad_request(&ApiError::Closed)).await?;
            }
            return Ok(());
        }
        frames.push(&chunk[..n]);
    }
}

/// The error reply to a request line that could not be read as a command.
fn bad_request(e: &ApiError) -> Reply {
    let message = match e {
        ApiError::Decode(e) => format!("malformed request: {e}"),
        ApiError::LineTooLong { limit } => format!("request line longer than {limit} bytes"),
        ApiError::Closed => "request line truncated".to_owned(),
        other => format!("bad request: {other}"),
    };
    Reply::error(ErrorKind::InvalidArgument, message)
}

/// Runs one command; configuration changes also refresh the kernel-bypass rules.
async fn execute(shared: &Shared, cmd: Command) -> Reply {
    match &cmd {
        Command::StartDaemon(cfg) => {
            return match shared.sync.start(cfg) {
                Ok(_) => Reply::Ok,
                Err(e) => Reply::error(ErrorKind::InvalidArgument, e),
            }
        }
        Command::StopDaemon(role) => {
            return match shared.sync.stop(*role) {
                Ok(()) => Reply::Ok,
                Err(e) => Reply::error(ErrorKind::InvalidArgument, e),
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
                    Err(e) => Reply::error(ErrorKind::InvalidArgument, e),
                },
                _ => Reply::Health(h.status()),
            })
            .await;
            return joined.unwrap_or_else(|e| {
                Reply::error(ErrorKind::Internal, format!("command failed: {e}"))
            });
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
    joined.unwrap_or_else(|e| Reply::error(ErrorKind::Internal, format!("command failed: {e}")))
}

/// Writes one reply line; a reply too long for the protocol is replaced by an error reply.
async fn write_reply<W: AsyncWrite + Unpin>(write: &mut W, reply: &Reply) -> std::io::Result<()> {
    let bytes = match encode_reply(reply) {
        Ok(bytes) => bytes,
        Err(e) => {
            let refusal = Reply::error(ErrorKind::Internal, format!("cannot send the reply: {e}"));
            encode_reply(&refusal).map_err(std::io::Error::other)?
        }
    };
    write.write_all(&bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_message(reply: &Reply) -> &str {
        match reply {
            Reply::Error(e) if e.kind == ErrorKind::InvalidArgument => &e.message,
            other => panic!("expected an InvalidArgument error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_lines_are_answered_and_the_connection_goes_on() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (server_read, server_write) = tokio::io::split(server);
        let served = tokio::spawn(serve_lines(server_read, server_write, |cmd| async move {
            assert_eq!(cmd, Command::GetInfo);
            Reply::Ok
        }));
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            client_write.write_all(b"this is not json\n").await?;
            client_write
                .write_all(&vec![b'a'; rvs_api::MAX_LINE + 10])
                .await?;
            client_write
                .write_all(b"\n{\"cmd\":\"get_info\"}\n{\"cmd\":\"add_serv")
                .await?;
            client_write.shutdown().await
        });
        let mut replies = Vec::new();
        client_read.read_to_end(&mut replies).await.unwrap();
        writer.await.unwrap().unwrap();
        served.await.unwrap().unwrap();

        let replies: Vec<Reply> = replies
            .split_inclusive(|&b| b == b'\n')
            .map(|line| rvs_api::decode_reply(line).unwrap())
            .collect();
        assert_eq!(replies.len(), 4, "{replies:?}");
        assert!(error_message(&replies[0]).starts_with("malformed request: "));
        assert_eq!(
            error_message(&replies[1]),
            format!("request line longer than {} bytes", rvs_api::MAX_LINE)
        );
        assert_eq!(replies[2], Reply::Ok);
        assert_eq!(error_message(&replies[3]), "request line truncated");
    }
}
