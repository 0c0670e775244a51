//! The control server: newline-delimited JSON requests (`rvs_api::Command`) on a Unix socket,
//! one reply line each, framed by `rvs_api`'s [`FrameBuffer`]. A garbled or oversized line gets an
//! error reply and the connection stays usable; a client that vanishes mid-line only ends its own
//! connection.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::socket::sockopt::PeerCredentials;
use rvs_api::{decode_command, encode_reply, ApiError, Command, ErrorKind, FrameBuffer, Reply};
use rvs_engine::Engine;
use rvs_io::NetState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};

use super::executor;
use crate::clock::Clock;
use crate::dataplane::bypass::Bypass;
use crate::dataplane::EgressCounters;
use crate::keepalived::dump::SignalFunc;
use crate::keepalived::health::Health;
use crate::keepalived::reload;
use crate::vrrp::VrrpRuntime;

/// Why the control socket cannot be bound or served.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A live rvsd answers on the socket path.
    #[error("{who} is already serving {}; stop it first, or give this one another --socket", .path.display())]
    Busy {
        /// The running daemon, by pid when the kernel tells it.
        who: String,
        /// The socket path.
        path: PathBuf,
    },
    /// A step of binding or serving failed.
    #[error("{what}")]
    Io {
        /// The step, with the path it concerns.
        what: String,
        /// Its error.
        #[source]
        error: std::io::Error,
    },
}

impl ControlError {
    /// A failed step `what`, as a closure for `map_err`.
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ControlError {
        let what = what.into();
        move |error| ControlError::Io { what, error }
    }
}

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
    pub sync: Arc<crate::sync::SyncDaemons>,
    /// The VRRP instances (none yet, maybe), when rvsd runs with `-f`.
    pub vrrp: Option<Arc<VrrpRuntime>>,
    /// The BPF data plane (`--dataplane tc|xdp`): listings add its connections, counts,
    /// counters and rates to the engine's.
    pub bpf: Option<Arc<crate::dataplane::bpf::BpfHandles>>,
    /// Where a successor takes this rvsd's state over (`Handover`).
    pub handover: Arc<crate::handover::Point>,
    /// The data plane running: `packet`, `tc` or `xdp`.
    pub dataplane: &'static str,
}

/// Serves the control socket bound by [`bind`] until SIGTERM or SIGINT.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    shared: Shared,
) -> Result<(), ControlError> {
    listener
        .set_nonblocking(true)
        .map_err(ControlError::io("making the control socket non-blocking"))?;
    let listener =
        UnixListener::from_std(listener).map_err(ControlError::io("serving the control socket"))?;
    let mut backoff = AcceptBackoff::default();
    let mut term = signal(SignalKind::terminate())
        .map_err(ControlError::io("installing the SIGTERM handler"))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(ControlError::io("installing the SIGINT handler"))?;
    let mut hup =
        signal(SignalKind::hangup()).map_err(ControlError::io("installing the SIGHUP handler"))?;
    let mut dumps = DumpSignals::install()?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.succeeded();
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = client(stream, shared).await {
                            tracing::debug!("control client ended: {e}");
                        }
                    });
                }
                Err(e) => tokio::time::sleep(backoff.failed(&e)).await,
            },
            _ = shared.handover.ended.notified() => { return Ok(()); }
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); return Ok(()); }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); return Ok(()); }
            func = dumps.recv() => dump(&shared, func),
            _ = hup.recv() => {
                match shared.health.clone() {
                    Some(h) => {
                        let vrrp = shared.vrrp.clone();
                        tokio::spawn(async move {
                            let done =
                                tokio::task::spawn_blocking(move || reload::reload(&h, vrrp.as_deref()))
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

/// How long `rvsadm --doctor` watches the counters move.
const DOCTOR_WATCH: std::time::Duration = std::time::Duration::from_secs(2);

/// `Doctor`: the services' counters (the BPF plane's counts included) now and after
/// [`DOCTOR_WATCH`], the data plane's counters, and the packets seen from services' addresses.
async fn doctor(shared: &Shared) -> Reply {
    let list = || Box::pin(query(shared, Command::ListServices { service: None }));
    let earlier = match list().await {
        Reply::Services(v) => v,
        other => return other,
    };
    tokio::time::sleep(DOCTOR_WATCH).await;
    let services = match list().await {
        Reply::Services(v) => v,
        other => return other,
    };
    let counters = match Box::pin(query(shared, Command::GetCounters)).await {
        Reply::Counters(v) => v,
        other => return other,
    };
    let stray = shared.engine.stray_replies();
    let self_scheduled = shared.engine.self_scheduled();
    let mut findings = super::doctor::diagnose(&super::doctor::Evidence {
        services: &services,
        earlier: Some(&earlier),
        counters: &counters,
        stray: &stray,
        self_scheduled: &self_scheduled,
    });
    let net = shared.net.clone();
    let probed =
        tokio::task::spawn_blocking(move || super::doctor::probe_direct_routing(&services, &net))
            .await
            .unwrap_or_default();
    findings.extend(probed);
    Reply::Doctor(findings)
}

/// keepalived's dump signals (see [`crate::keepalived::dump`]).
struct DumpSignals {
    data: tokio::signal::unix::Signal,
    stats: tokio::signal::unix::Signal,
    json: tokio::signal::unix::Signal,
    clear: tokio::signal::unix::Signal,
}

impl DumpSignals {
    fn install() -> Result<DumpSignals, ControlError> {
        let on = |f: SignalFunc| {
            signal(SignalKind::from_raw(f.signal())).map_err(ControlError::io(format!(
                "installing the {f:?} signal handler"
            )))
        };
        Ok(DumpSignals {
            data: on(SignalFunc::Data)?,
            stats: on(SignalFunc::Stats)?,
            json: on(SignalFunc::Json)?,
            clear: on(SignalFunc::StatsClear)?,
        })
    }

    /// The next dump signal's function.
    async fn recv(&mut self) -> SignalFunc {
        tokio::select! {
            _ = self.data.recv() => SignalFunc::Data,
            _ = self.stats.recv() => SignalFunc::Stats,
            _ = self.json.recv() => SignalFunc::Json,
            _ = self.clear.recv() => SignalFunc::StatsClear,
        }
    }
}

/// Writes the dump `func` asks for (or clears the statistics), as keepalived does.
fn dump(shared: &Shared, func: SignalFunc) {
    use crate::keepalived::dump::{self as d, SignalFunc as F};
    let (instances, router_id) = match &shared.vrrp {
        Some(v) => (v.status(), v.router_id()),
        None => (Vec::new(), String::new()),
    };
    let (path, text) = match func {
        F::Data => (d::DATA_FILE, d::data_text(&router_id, &instances)),
        F::Stats => (d::STATS_FILE, d::stats_text(&instances)),
        F::Json => (d::JSON_FILE, d::json_text(&instances)),
        F::StatsClear => {
            if let Some(v) = &shared.vrrp {
                v.clear_stats();
            }
            tracing::info!("statistics cleared on signal");
            return;
        }
        F::Stop | F::Reload => return,
    };
    match d::write_dump(Path::new(path), &text) {
        Ok(()) => tracing::info!(file = path, "dump written on signal"),
        Err(e) => tracing::warn!(file = path, "cannot write the dump: {e}"),
    }
}

/// Binds the control socket with mode 0600, replacing a stale socket file but refusing to steal
/// the path from a live rvsd (named by its pid). Called first thing at start, so a second rvsd
/// stops before it touches the running one's devices and rules.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, ControlError> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(ControlError::io(format!("creating {}", dir.display())))?;
        }
    }
    if path.exists() {
        if let Ok(live) = std::os::unix::net::UnixStream::connect(path) {
            let who = match nix::sys::socket::getsockopt(&live, PeerCredentials) {
                Ok(cred) => format!("another rvsd (pid {})", cred.pid()),
                Err(_) => "another rvsd".to_owned(),
            };
            return Err(ControlError::Busy {
                who,
                path: path.to_owned(),
            });
        }
        std::fs::remove_file(path).map_err(ControlError::io(format!(
            "removing the stale socket {}",
            path.display()
        )))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(ControlError::io(format!("binding {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
        ControlError::io(format!("setting the mode of {}", path.display())),
    )?;
    Ok(listener)
}

/// Pacing of the accept loop when accepting fails (out of descriptors, most often): the loop
/// sleeps, doubling from 10 ms to 1 s, and logs one line per [`AcceptBackoff::LOG_EVERY`]
/// with the number of failures since the last line. Clients already connected are served
/// meanwhile.
#[derive(Debug, Default)]
struct AcceptBackoff {
    delay: std::time::Duration,
    failures: u64,
    logged_at: Option<std::time::Instant>,
}

impl AcceptBackoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(10);
    const MAX: std::time::Duration = std::time::Duration::from_secs(1);
    const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// Records a failed accept; returns how long to wait before the next one.
    fn failed(&mut self, error: &std::io::Error) -> std::time::Duration {
        self.failures += 1;
        let due = self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Self::LOG_EVERY);
        if due {
            tracing::warn!(
                failures = self.failures,
                "accept on the control socket failed: {error}; backing off"
            );
            self.logged_at = Some(std::time::Instant::now());
            self.failures = 0;
        }
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::MAX);
        self.delay
    }

    /// Records a successful accept: the next failure starts from the shortest delay again.
    fn succeeded(&mut self) {
        self.delay = std::time::Duration::ZERO;
    }
}

async fn client(stream: UnixStream, shared: Shared) -> std::io::Result<()> {
    let (read, write) = stream.into_split();
    serve_lines(read, write, |cmd| answer(&shared, cmd)).await
}

/// Bytes read from a client per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// How a command is answered: one reply line, or a stream of encoded lines produced off the
/// runtime (see [`stream`]).
enum Answer {
    /// A single reply.
    One(Reply),
    /// Encoded reply lines, newline included, with `true` on the last one.
    Lines(tokio::sync::mpsc::Receiver<(Vec<u8>, bool)>),
    /// A reply after which rvsd exits (a handover): the point is woken once it is sent.
    Last(Reply, Arc<crate::handover::Point>),
}

/// Answers each request line read from `read` on `write` with `handle`'s answer, in order, until
/// the client closes its side. A line that is not a command or is longer than
/// [`rvs_api::MAX_LINE`] is answered with an `InvalidArgument` error and the connection goes on;
/// an unfinished line at the end of the stream is answered the same way.
async fn serve_lines<R, W, F, Fut>(mut read: R, mut write: W, mut handle: F) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    F: FnMut(Command) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let mut frames = FrameBuffer::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        while let Some(frame) = frames.next_frame() {
            let answer = match frame.and_then(|line| decode_command(&line)) {
                Ok(cmd) => handle(cmd).await,
                Err(e) => Answer::One(bad_request(&e)),
            };
            write_answer(&mut write, answer).await?;
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

/// Writes an answer; a stream that ends without its last line (its producer failed) is closed
/// with an error reply, so the client is never left waiting.
async fn write_answer<W: AsyncWrite + Unpin>(write: &mut W, answer: Answer) -> std::io::Result<()> {
    match answer {
        Answer::One(reply) => write_reply(write, &reply).await,
        Answer::Last(reply, point) => {
            let written = write_reply(write, &reply).await;
            let _ = write.flush().await;
            if point.handed_over() {
                point.ended.notify_one();
            }
            written
        }
        Answer::Lines(mut lines) => {
            while let Some((line, last)) = lines.recv().await {
                write.write_all(&line).await?;
                if last {
                    return Ok(());
                }
            }
            let broken = Reply::error(ErrorKind::Internal, "the listing ended early");
            write_reply(write, &broken).await
        }
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

/// Answers one command: listings of the whole table are streamed, everything else is one reply.
async fn answer(shared: &Shared, cmd: Command) -> Answer {
    match cmd {
        Command::ListServices { service: None } => {
            let engine = shared.engine.clone();
            let mut walk = engine.service_walk();
            let bpf = shared.bpf.clone();
            let held = bpf.as_ref().and_then(|b| b.held());
            stream(move || {
                let page = engine.services_page(&mut walk, SERVICES_PER_PART);
                let mut views: Vec<_> = page.into_iter().map(executor::service_view).collect();
                if let (Some(b), Some(held)) = (&bpf, &held) {
                    for v in &mut views {
                        b.counters.apply(v, held);
                    }
                }
                (!views.is_empty()).then_some(views)
            })
        }
        Command::ListConnections => {
            let engine = shared.engine.clone();
            let now = shared.clock.now();
            let mut at = Some(rvs_engine::ConnWalk::default());
            // The BPF plane's connections follow the engine's, in one part.
            let mut bpf = shared.bpf.clone();
            stream(move || {
                let Some(walk) = at else {
                    let handles = bpf.take()?;
                    return Some(crate::dataplane::bpf::connection_views(&handles.view));
                };
                // The slice holds a shard lock the workers take for every packet: walk it in
                // the ordinary class, so the idle-class thread is never parked holding it.
                let _ = rvs_io::priority::set_current_thread_normal();
                let (page, next) = engine.connections_page(now, walk, CONN_SLOTS_PER_PART);
                let _ = rvs_io::priority::set_current_thread_idle();
                at = next;
                Some(
                    page.into_iter()
                        .map(executor::conn_view)
                        .collect::<Vec<_>>(),
                )
            })
        }
        Command::Handover { path } => {
            let (point, engine, now) = (
                shared.handover.clone(),
                shared.engine.clone(),
                shared.clock.now(),
            );
            let p = point.clone();
            let reply = tokio::task::spawn_blocking(move || p.hand_over(&engine, now, &path))
                .await
                .unwrap_or_else(|e| {
                    Reply::error(ErrorKind::Internal, format!("handover failed: {e}"))
                });
            Answer::Last(reply, point)
        }
        other => Answer::One(execute(shared, other).await),
    }
}

/// Whether `cmd` only reads (what rvsd's web side may send).
fn is_query(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::ListServices { .. }
            | Command::ListConnections
            | Command::GetInfo
            | Command::GetCounters
            | Command::ListMarkRules
            | Command::GetPolicy
            | Command::GetTimeouts
            | Command::GetHealth
            | Command::ListDaemons
            | Command::GetVrrp
            | Command::GetBfd
    )
}

/// Answers a command that only reads as one reply, a streamed listing's parts gathered: what
/// rvsd's web side shows is what the control socket answers. Other commands are refused.
pub async fn query(shared: &Shared, cmd: Command) -> Reply {
    if !is_query(&cmd) {
        return Reply::error(
            ErrorKind::InvalidArgument,
            "only reading commands are queries",
        );
    }
    match answer(shared, cmd).await {
        Answer::One(reply) | Answer::Last(reply, _) => reply,
        Answer::Lines(mut parts) => {
            let mut whole: Option<Reply> = None;
            while let Some((line, last)) = parts.recv().await {
                let part = match rvs_api::decode_reply(&line) {
                    Ok(Reply::More(part)) => *part,
                    Ok(reply) => reply,
                    Err(e) => return Reply::error(ErrorKind::Internal, e.to_string()),
                };
                whole = Some(match (whole, part) {
                    (Some(Reply::Services(mut a)), Reply::Services(b)) => {
                        a.extend(b);
                        Reply::Services(a)
                    }
                    (Some(Reply::Connections(mut a)), Reply::Connections(b)) => {
                        a.extend(b);
                        Reply::Connections(a)
                    }
                    (_, part) => part,
                });
                if last {
                    break;
                }
            }
            whole.unwrap_or_else(|| Reply::error(ErrorKind::Internal, "the listing ended early"))
        }
    }
}

/// Connection-table slots visited per streamed part of `-Lnc` (a part stays far below the line
/// limit, and one shard lock is held for at most this many slots).
const CONN_SLOTS_PER_PART: usize = 2048;
/// Services per streamed part of `-L` (a part is halved while it does not fit in a line).
const SERVICES_PER_PART: usize = 64;

/// An item of a streamed listing, and the reply variant that carries a list of them.
trait Listed: Sized + Send + 'static {
    /// The reply carrying `items`.
    fn wrap(items: Vec<Self>) -> Reply;
    /// The items of a reply made by [`Listed::wrap`].
    fn unwrap(reply: Reply) -> Option<Vec<Self>>;
}

impl Listed for rvs_api::ServiceView {
    fn wrap(items: Vec<Self>) -> Reply {
        Reply::Services(items)
    }
    fn unwrap(reply: Reply) -> Option<Vec<Self>> {
        match reply {
            Reply::Services(items) => Some(items),
            _ => None,
        }
    }
}

impl Listed for rvs_api::ConnView {
    fn wrap(items: Vec<Self>) -> Reply {
        Reply::Connections(items)
    }
    fn unwrap(reply: Reply) -> Option<Vec<Self>> {
        match reply {
            Reply::Connections(items) => Some(items),
            _ => None,
        }
    }
}

/// Streams a listing: `next_page` is called on an idle-class thread of its own until it returns `None`, each
/// non-empty page is sent as a [`Reply::More`] line, and the last page as the ordinary reply
/// (so a listing that fits in one page is one ordinary line). At most two encoded parts wait in
/// the channel, so the listing advances as fast as the client reads it and rvsd's memory stays
/// bounded whatever the table size; a client that goes away stops the walk.
fn stream<T, P>(mut next_page: P) -> Answer
where
    T: Listed,
    P: FnMut() -> Option<Vec<T>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let walker = move || {
        // Background work: a listing runs only when forwarding and health checks leave the
        // CPU idle (SCHED_IDLE; a nice value is not enough for a thread that wakes this often).
        if let Err(e) = rvs_io::priority::set_current_thread_idle() {
            tracing::debug!("listing at normal priority: {e}");
        }
        let mut pending: Option<Vec<T>> = None;
        while let Some(page) = next_page() {
            if page.is_empty() {
                continue;
            }
            if let Some(ready) = pending.replace(page) {
                if !send_part(&tx, ready, false) {
                    return;
                }
            }
        }
        send_part(&tx, pending.unwrap_or_default(), true);
    };
    // A thread of its own (not the blocking pool), so its lowered priority dies with it.
    let spawned = std::thread::Builder::new()
        .name("rvsd-listing".into())
        .spawn(walker);
    if let Err(e) = spawned {
        tracing::warn!("cannot start a listing thread: {e}");
    }
    Answer::Lines(rx)
}

/// Sends `items` as one encoded line (a [`Reply::More`] part unless `last`), split in halves
/// while a line would exceed the protocol's limit. Returns `false` once the client is gone.
fn send_part<T: Listed>(
    tx: &tokio::sync::mpsc::Sender<(Vec<u8>, bool)>,
    items: Vec<T>,
    last: bool,
) -> bool {
    let count = items.len();
    let reply = if last {
        T::wrap(items)
    } else {
        Reply::More(Box::new(T::wrap(items)))
    };
    match encode_reply(&reply) {
        Ok(line) => tx.blocking_send((line, last)).is_ok(),
        Err(ApiError::LineTooLong { .. }) if count > 1 => {
            let inner = match reply {
                Reply::More(part) => *part,
                whole => whole,
            };
            let Some(mut first) = T::unwrap(inner) else {
                return false;
            };
            let second = first.split_off(count / 2);
            send_part(tx, first, false) && send_part(tx, second, last)
        }
        Err(e) => {
            let refusal =
                Reply::error(ErrorKind::Internal, format!("cannot send the listing: {e}"));
            encode_reply(&refusal).is_ok_and(|line| tx.blocking_send((line, true)).is_ok())
        }
    }
}

/// Runs one command; configuration changes also refresh the kernel-bypass rules.
async fn execute(shared: &Shared, cmd: Command) -> Reply {
    match &cmd {
        Command::StartDaemon(cfg) => {
            return match shared.sync.start(cfg) {
                Ok(_) => Reply::Ok,
                Err(e) => Reply::error(ErrorKind::InvalidArgument, e.to_string()),
            }
        }
        Command::StopDaemon(role) => {
            return match shared.sync.stop(*role) {
                Ok(()) => Reply::Ok,
                Err(e) => Reply::error(ErrorKind::InvalidArgument, e.to_string()),
            }
        }
        Command::ListDaemons => return Reply::Daemons(shared.sync.list()),
        Command::GetVrrp => {
            return Reply::Vrrp(shared.vrrp.as_ref().map(|v| v.status()).unwrap_or_default())
        }
        Command::GetBfd => {
            return Reply::Bfd(
                shared
                    .vrrp
                    .as_ref()
                    .map(|v| v.bfd_status())
                    .unwrap_or_default(),
            )
        }
        Command::Doctor => return doctor(shared).await,
        _ => {}
    }
    if matches!(cmd, Command::Reload | Command::GetHealth) {
        if let Some(h) = shared.health.clone() {
            let vrrp = shared.vrrp.clone();
            let joined = tokio::task::spawn_blocking(move || match cmd {
                Command::Reload => match reload::reload(&h, vrrp.as_deref()) {
                    Ok(()) => Reply::Ok,
                    Err(e) => Reply::error(ErrorKind::InvalidArgument, e.to_string()),
                },
                _ => Reply::Health(h.status()),
            })
            .await;
            return joined.unwrap_or_else(|e| {
                Reply::error(ErrorKind::Internal, format!("command failed: {e}"))
            });
        }
    }
    let changes_config = cmd.changes_services();
    let engine = shared.engine.clone();
    let clock = shared.clock;
    let bypass = shared.bypass.clone();
    let egress = shared.egress.clone();
    let net = shared.net.clone();
    let bpf = shared.bpf.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let local_addrs = net.local_addrs();
        // `-Z` zeroes the BPF plane's counters too (its zero point moves).
        let zeroed = match &cmd {
            Command::Zero { service: None } => Some(None),
            // A service the program does not serve has nothing of its to zero.
            Command::Zero { service: Some(s) } => crate::dataplane::bpf::service_key(s).map(Some),
            _ => None,
        };
        let mut reply =
            executor::execute_with(&engine, Some(&egress), &local_addrs, clock.now(), cmd);
        // The program's per-service state is read (every service's and server's counters)
        // only for the replies that show it and for -Z: not for every command.
        // --counters: the program's connections beside the engine's (`connections`), as
        // the plane measures them once a second.
        if let (Some(b), Reply::Counters(views)) = (&bpf, &mut reply) {
            views.push(rvs_api::CounterView::new("bpf_connections", b.room.held()));
        }
        let shows_counters = zeroed.is_some() || matches!(reply, Reply::Services(_));
        let held = bpf
            .as_ref()
            .filter(|_| shows_counters)
            .and_then(|b| b.held());
        if let (Some(b), Some(held)) = (&bpf, held) {
            match (&mut reply, zeroed) {
                (Reply::Ok, Some(only)) => b.counters.zero(&held, only),
                (Reply::Services(views), _) => {
                    for v in views.iter_mut() {
                        b.counters.apply(v, &held);
                    }
                }
                _ => {}
            }
        }
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
            Answer::One(Reply::Ok)
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

    fn conn(i: u32, state_len: usize) -> rvs_api::ConnView {
        let addr = |port: u16| std::net::SocketAddr::from(([10, 0, 0, 1], port));
        rvs_api::ConnView {
            proto: "TCP".into(),
            client: addr(u16::try_from(i % 60000).unwrap_or(0)),
            virtual_addr: addr(80),
            dest: addr(8080),
            state: "X".repeat(state_len),
            expires_ms: u64::from(i),
            pe: None,
        }
    }

    /// Runs one `list_connections` request against a server streaming `pages` and returns the
    /// reply lines as they were written.
    async fn streamed_lines(pages: Vec<Vec<rvs_api::ConnView>>) -> Vec<Vec<u8>> {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (server_read, server_write) = tokio::io::split(server);
        let pages = std::sync::Mutex::new(Some(pages));
        let served = tokio::spawn(async move {
            serve_lines(server_read, server_write, move |_| {
                let mut pages = pages.lock().unwrap().take().unwrap_or_default().into_iter();
                async move { stream(move || pages.next()) }
            })
            .await
        });
        let (mut client_read, mut client_write) = tokio::io::split(client);
        client_write
            .write_all(b"{\"cmd\":\"list_connections\"}\n")
            .await
            .unwrap();
        client_write.shutdown().await.unwrap();
        let mut bytes = Vec::new();
        client_read.read_to_end(&mut bytes).await.unwrap();
        served.await.unwrap().unwrap();
        bytes
            .split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[tokio::test]
    async fn listings_stream_as_parts_within_the_line_limit_and_end_with_the_last_part() {
        // Three pages, the middle one too big for one line (about 2.5 MiB), an empty one skipped.
        let big = 2_000;
        let pages = vec![
            (0..10).map(|i| conn(i, 8)).collect(),
            Vec::new(),
            (10..10 + big).map(|i| conn(i, 1_300)).collect(),
            (10 + big..20 + big).map(|i| conn(i, 8)).collect(),
        ];
        let lines = streamed_lines(pages).await;
        let replies: Vec<Reply> = lines
            .iter()
            .map(|l| {
                assert!(
                    l.len() <= rvs_api::MAX_LINE + 1,
                    "a line of {} bytes",
                    l.len()
                );
                rvs_api::decode_reply(l).unwrap()
            })
            .collect();
        assert!(
            replies.len() >= 5,
            "the big page was split: {} lines",
            replies.len()
        );
        let (last, parts) = replies.split_last().unwrap();
        assert!(parts.iter().all(|r| matches!(r, Reply::More(_))));
        assert!(matches!(last, Reply::Connections(_)));
        let mut seen = Vec::new();
        for r in replies {
            match r {
                Reply::More(part) => match *part {
                    Reply::Connections(c) => seen.extend(c),
                    other => panic!("unexpected part {other:?}"),
                },
                Reply::Connections(c) => seen.extend(c),
                other => panic!("unexpected reply {other:?}"),
            }
        }
        let order: Vec<u64> = seen.iter().map(|c| c.expires_ms).collect();
        assert_eq!(order, (0..u64::from(20 + big)).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_listing_that_fits_one_page_is_one_ordinary_line_and_an_empty_one_too() {
        let lines = streamed_lines(vec![(0..3).map(|i| conn(i, 4)).collect()]).await;
        assert_eq!(lines.len(), 1);
        assert!(
            matches!(rvs_api::decode_reply(&lines[0]).unwrap(), Reply::Connections(c) if c.len() == 3)
        );
        let lines = streamed_lines(Vec::new()).await;
        assert_eq!(lines.len(), 1);
        assert_eq!(
            rvs_api::decode_reply(&lines[0]).unwrap(),
            Reply::Connections(Vec::new())
        );
    }
}
