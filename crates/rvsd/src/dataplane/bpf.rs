//! The BPF data plane under rvsd (`--dataplane tc|xdp`): rvs-bpf's program forwards in the
//! kernel, and this module is its control plane. One thread owns the loaded program (libbpf's
//! objects stay on the thread that made them) and
//! - loads it with its maps pinned, adopting the maps an earlier rvsd left (its connections
//!   kept forwarding meanwhile), and attaches it to every interface;
//! - publishes the engine's configuration into the maps whenever a new version appears;
//! - runs the expiry sweep once a second;
//! - hands the frames the program passes up (ICMP errors, fragments, services it does not
//!   schedule) to the engine and sends what the engine says;
//! - on a clean stop detaches the program and removes the pins (a crash leaves both, so the
//!   kernel keeps forwarding until rvsd is back).

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_bpf::maps::Settings;
use rvs_bpf::{Datapath, Hook, Limits, Publisher};
use rvs_engine::Engine;

use super::worker::Injector;

/// How often the configuration is compared with what was published.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// How often the expiry sweep runs.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// How long one wait for punted frames lasts.
const POLL: Duration = Duration::from_millis(50);

/// Which data plane rvsd runs (`--dataplane`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// AF_PACKET workers running every packet through the engine (the portable path).
    Packet,
    /// The BPF program at tc ingress: any driver, veth with default offloads.
    Tc,
    /// The BPF program at XDP (native where the driver has it, else generic).
    Xdp,
}

/// What the BPF plane needs to start.
pub struct Setup {
    /// tc or XDP.
    pub hook: Hook,
    /// Interfaces to attach to.
    pub interfaces: Vec<String>,
    /// bpffs directory for the pinned maps.
    pub pin_dir: PathBuf,
    /// Map sizes.
    pub limits: Limits,
}

/// Why the BPF plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum BpfPlaneError {
    /// The pin directory is not on a bpffs.
    #[error(
        "{0} is not on a bpf filesystem (mount one: mount -t bpf bpf DIR, or give --bpf-pin-dir)"
    )]
    NotBpffs(PathBuf),
    /// The program could not be loaded or attached.
    #[error(transparent)]
    Bpf(#[from] rvs_bpf::Error),
    /// An interface is unknown.
    #[error("interface {0}: {1}")]
    Interface(String, std::io::Error),
    /// Interface forwarding could not be switched on.
    #[error("enabling forwarding on {0}: {1}")]
    Forwarding(String, std::io::Error),
    /// The send sockets for punted frames could not be opened.
    #[error("opening the sockets for punted frames: {0}")]
    Sockets(String),
    /// The thread could not be started or died while starting.
    #[error("the BPF plane thread: {0}")]
    Thread(String),
}

/// The running BPF plane.
pub struct BpfPlane {
    halt: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Set by [`BpfPlane::stop_clean`]: detach and unpin when the thread ends.
    clean: Arc<AtomicBool>,
    /// What listings read, with the thread that runs the rate estimator.
    handles: Option<Arc<BpfHandles>>,
    rates: Option<JoinHandle<()>>,
}

/// A service as the program keys it: virtual address, port, protocol number.
pub type ServiceKey = (std::net::IpAddr, u16, u8);
/// A real server of a service: address, port.
pub type ServerKey = (std::net::IpAddr, u16);

/// The BPF plane's per-service state as [`rvs_bpf::MapsView::services`] reads it.
pub type Held = std::collections::HashMap<
    ServiceKey,
    (
        rvs_bpf::maps::Traffic,
        std::collections::HashMap<ServerKey, rvs_bpf::DestState>,
    ),
>;

/// The program's traffic counters as listings show them: less what `rvsadm -Z` zeroed, with
/// IPVS's rate estimator run over them every 2 seconds (the engine's own counters and rates
/// are added to them, as rates of two parts of the traffic add up).
#[derive(Debug, Default)]
pub struct BpfCounters {
    services: std::sync::Mutex<std::collections::HashMap<ServiceKey, Counted>>,
    dests: std::sync::Mutex<std::collections::HashMap<(ServiceKey, ServerKey), Counted>>,
}

/// One service's or real server's counters: the zero point and the estimator.
#[derive(Debug, Default, Clone, Copy)]
struct Counted {
    base: rvs_engine::Stats,
    estimator: rvs_engine::RateEstimator,
}

fn stats_of(t: &rvs_bpf::maps::Traffic) -> rvs_engine::Stats {
    rvs_engine::Stats {
        conns: t.conns,
        in_pkts: t.in_packets,
        out_pkts: t.out_packets,
        in_bytes: t.in_bytes,
        out_bytes: t.out_bytes,
    }
}

fn since(now: rvs_engine::Stats, base: rvs_engine::Stats) -> rvs_engine::Stats {
    rvs_engine::Stats {
        conns: now.conns.saturating_sub(base.conns),
        in_pkts: now.in_pkts.saturating_sub(base.in_pkts),
        out_pkts: now.out_pkts.saturating_sub(base.out_pkts),
        in_bytes: now.in_bytes.saturating_sub(base.in_bytes),
        out_bytes: now.out_bytes.saturating_sub(base.out_bytes),
    }
}

impl BpfCounters {
    /// One estimator period: folds the counters `held` now into the rates.
    pub fn tick(&self, held: &Held) {
        let (Ok(mut services), Ok(mut dests)) = (self.services.lock(), self.dests.lock()) else {
            return;
        };
        for (key, (traffic, servers)) in held {
            let c = services.entry(*key).or_default();
            let now = since(stats_of(traffic), c.base);
            c.estimator.update(&now);
            for (server, state) in servers {
                let c = dests.entry((*key, *server)).or_default();
                let now = since(stats_of(&state.traffic), c.base);
                c.estimator.update(&now);
            }
        }
    }

    /// `rvsadm -Z [service]`: the counters of `held` start from zero again, rates too.
    pub fn zero(&self, held: &Held, only: Option<ServiceKey>) {
        let (Ok(mut services), Ok(mut dests)) = (self.services.lock(), self.dests.lock()) else {
            return;
        };
        for (key, (traffic, servers)) in held {
            if only.is_some_and(|o| o != *key) {
                continue;
            }
            let base = stats_of(traffic);
            let c = services.entry(*key).or_default();
            c.base = base;
            c.estimator.reset(&rvs_engine::Stats::default());
            for (server, state) in servers {
                let c = dests.entry((*key, *server)).or_default();
                c.base = stats_of(&state.traffic);
                c.estimator.reset(&rvs_engine::Stats::default());
            }
        }
    }

    /// Adds the program's part of a service to its listing: connections per real server
    /// (ActiveConn/InActConn), traffic counters and rates.
    pub fn apply(&self, view: &mut rvs_api::ServiceView, held: &Held) {
        let Some(key) = service_key(&view.config.id) else {
            return;
        };
        let Some((traffic, servers)) = held.get(&key) else {
            return;
        };
        let (Ok(services), Ok(dests)) = (self.services.lock(), self.dests.lock()) else {
            return;
        };
        let c = services.get(&key).copied().unwrap_or_default();
        add_stats(&mut view.stats, &since(stats_of(traffic), c.base));
        add_rates(&mut view.rates, &c.estimator.rates());
        for d in &mut view.dests {
            let server = (d.config.addr, d.config.port);
            if let Some(state) = servers.get(&server) {
                d.active_conns += state.conns.active;
                d.inactive_conns += state.conns.inactive;
                let c = dests.get(&(key, server)).copied().unwrap_or_default();
                add_stats(&mut d.stats, &since(stats_of(&state.traffic), c.base));
                add_rates(&mut d.rates, &c.estimator.rates());
            }
        }
    }
}

/// The program's key of a service (virtual address, port, protocol number), for TCP and UDP
/// services (the ones it serves).
pub fn service_key(id: &rvs_api::ServiceId) -> Option<ServiceKey> {
    match *id {
        rvs_api::ServiceId::Tcp { addr, port } => Some((addr, port, 6)),
        rvs_api::ServiceId::Udp { addr, port } => Some((addr, port, 17)),
        _ => None,
    }
}

fn add_stats(stats: &mut rvs_api::StatsView, t: &rvs_engine::Stats) {
    stats.conns += t.conns;
    stats.in_pkts += t.in_pkts;
    stats.out_pkts += t.out_pkts;
    stats.in_bytes += t.in_bytes;
    stats.out_bytes += t.out_bytes;
}

fn add_rates(rates: &mut rvs_api::RatesView, r: &rvs_engine::Rates) {
    rates.cps += r.cps;
    rates.in_pps += r.in_pps;
    rates.out_pps += r.out_pps;
    rates.in_bps += r.in_bps;
    rates.out_bps += r.out_bps;
}

/// What the control server reads of the BPF plane.
#[derive(Debug)]
pub struct BpfHandles {
    /// The pinned maps.
    pub view: Arc<rvs_bpf::MapsView>,
    /// Counters as listings show them.
    pub counters: Arc<BpfCounters>,
}

impl BpfHandles {
    /// The program's per-service state now, or `None` (logged) when the maps cannot be read.
    pub fn held(&self) -> Option<Held> {
        match self.view.services() {
            Ok(held) => Some(held),
            Err(e) => {
                tracing::warn!("reading the BPF maps: {e}");
                None
            }
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds, the clock the program stamps expiry times with.
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// The program's connections as `-Lnc` lines.
pub fn connection_views(view: &rvs_bpf::MapsView) -> Vec<rvs_api::ConnView> {
    let conns = match view.connections() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("reading the BPF connection table: {e}");
            return Vec::new();
        }
    };
    let now = monotonic_ns();
    conns
        .into_iter()
        .map(|(key, conn)| rvs_api::ConnView {
            proto: if key.proto == 17 { "UDP" } else { "TCP" }.to_owned(),
            client: std::net::SocketAddr::new(key.src.ip(), u16::from_be(key.sport_be)),
            virtual_addr: std::net::SocketAddr::new(key.dst.ip(), u16::from_be(key.dport_be)),
            dest: std::net::SocketAddr::new(conn.daddr.ip(), u16::from_be(conn.dport_be)),
            state: rvs_engine::ConnState::from_u8(conn.state).name().to_owned(),
            expires_ms: conn.expires_ns.saturating_sub(now) / 1_000_000,
            pe: None,
        })
        .collect()
}

/// The magic number of a bpf filesystem (`BPF_FS_MAGIC`).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn on_bpffs(dir: &std::path::Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
}

/// Switches IPv4 and IPv6 forwarding on for `interface`: the program's FIB lookups need it,
/// and so does the kernel for the packets the program leaves it while a neighbour resolves.
fn enable_forwarding(interface: &str) -> Result<(), BpfPlaneError> {
    for path in [
        format!("/proc/sys/net/ipv4/conf/{interface}/forwarding"),
        format!("/proc/sys/net/ipv6/conf/{interface}/forwarding"),
    ] {
        std::fs::write(&path, "1").map_err(|e| BpfPlaneError::Forwarding(interface.into(), e))?;
    }
    Ok(())
}

fn ifindex(name: &str) -> Result<u32, BpfPlaneError> {
    nix::net::if_::if_nametoindex(name)
        .map_err(|e| BpfPlaneError::Interface(name.into(), std::io::Error::from(e)))
}

impl BpfPlane {
    /// Starts the plane's thread and waits until the program is attached everywhere (or
    /// failed to be).
    pub fn start(
        setup: Setup,
        engine: Arc<Engine>,
        net: Arc<rvs_io::NetState>,
        injector: impl FnOnce() -> anyhow::Result<Injector> + Send + 'static,
    ) -> Result<BpfPlane, BpfPlaneError> {
        let parent = setup
            .pin_dir
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| setup.pin_dir.clone());
        if !on_bpffs(&parent) && !on_bpffs(&setup.pin_dir) {
            return Err(BpfPlaneError::NotBpffs(parent));
        }
        std::fs::create_dir_all(&setup.pin_dir)
            .map_err(|e| BpfPlaneError::Thread(format!("{}: {e}", setup.pin_dir.display())))?;
        let pin_dir = setup.pin_dir.clone();
        let halt = Arc::new(AtomicBool::new(false));
        let clean = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), BpfPlaneError>>();
        let thread = {
            let halt = halt.clone();
            let clean = clean.clone();
            std::thread::Builder::new()
                .name("rvsd-bpf".into())
                .spawn(move || run(setup, engine, net, injector, &halt, &clean, ready_tx))
                .map_err(|e| BpfPlaneError::Thread(e.to_string()))?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {
                let handles = match rvs_bpf::MapsView::open(&pin_dir) {
                    Ok(v) => Some(Arc::new(BpfHandles {
                        view: Arc::new(v),
                        counters: Arc::default(),
                    })),
                    Err(e) => {
                        tracing::warn!("listings will not show the BPF plane's state: {e}");
                        None
                    }
                };
                let rates = handles.clone().and_then(|h| {
                    let halt = halt.clone();
                    std::thread::Builder::new()
                        .name("rvsd-bpf-rates".into())
                        .spawn(move || estimate(&h, &halt))
                        .ok()
                });
                Ok(BpfPlane {
                    halt,
                    thread: Some(thread),
                    clean,
                    handles,
                    rates,
                })
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(BpfPlaneError::Thread("ended while starting".into()))
            }
        }
    }

    /// What listings read of the plane.
    pub fn handles(&self) -> Option<Arc<BpfHandles>> {
        self.handles.clone()
    }

    /// Stops the plane: the program is detached and its pins removed (rvsd is going away on
    /// purpose, so nothing should keep forwarding).
    pub fn stop_clean(mut self) {
        self.clean.store(true, Ordering::Relaxed);
        self.halt.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.rates.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BpfPlane {
    fn drop(&mut self) {
        self.halt.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.rates.take() {
            let _ = t.join();
        }
    }
}

/// IPVS's estimator period.
const ESTIMATE_EVERY: Duration = Duration::from_secs(2);

/// The rate estimator's thread: every 2 seconds, the program's counters into the rates.
fn estimate(handles: &BpfHandles, halt: &AtomicBool) {
    let mut next = Instant::now() + ESTIMATE_EVERY;
    while !halt.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() < next {
            continue;
        }
        next += ESTIMATE_EVERY;
        if let Some(held) = handles.held() {
            handles.counters.tick(&held);
        }
    }
}

/// The plane's thread.
fn run(
    setup: Setup,
    engine: Arc<Engine>,
    net: Arc<rvs_io::NetState>,
    injector: impl FnOnce() -> anyhow::Result<Injector>,
    halt: &AtomicBool,
    clean: &AtomicBool,
    ready: mpsc::Sender<Result<(), BpfPlaneError>>,
) {
    let started = (|| {
        let dp = Datapath::load_pinned(setup.limits, &setup.pin_dir)?;
        let publisher = if dp.adopted() {
            tracing::info!(pins = %setup.pin_dir.display(),
                connections = dp.connections().map(|c| c.len()).unwrap_or(0),
                "adopted the BPF maps an earlier rvsd left");
            Publisher::adopt(&dp)?
        } else {
            Publisher::new()
        };
        let mut indexes = Vec::new();
        for name in &setup.interfaces {
            let index = ifindex(name)?;
            enable_forwarding(name)?;
            match setup.hook {
                Hook::Tc => dp.attach_tc(index)?,
                Hook::Xdp => dp.attach_xdp(index)?,
            }
            indexes.push(index);
        }
        let injector = injector().map_err(|e| BpfPlaneError::Sockets(format!("{e:#}")))?;
        Ok::<_, BpfPlaneError>((dp, publisher, indexes, injector))
    })();
    let (mut dp, mut publisher, indexes, injector) = match started {
        Ok(parts) => parts,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    tracing::info!(hook = ?setup.hook, interfaces = ?setup.interfaces,
        pins = %setup.pin_dir.display(), "BPF data plane attached");
    let _ = ready.send(Ok(()));

    serve(&dp, &mut publisher, &engine, &net, injector, halt);
    if clean.load(Ordering::Relaxed) {
        for &index in &indexes {
            let detached = match setup.hook {
                Hook::Tc => dp.detach_tc(index),
                Hook::Xdp => dp.detach_xdp(index),
            };
            if let Err(e) = detached {
                tracing::warn!("detaching the BPF program: {e}");
            }
        }
        if let Err(e) = dp.remove_pins() {
            tracing::warn!("removing the BPF pins: {e}");
        }
        tracing::info!("BPF data plane detached");
    }
}

/// A frame the program passed up and its GSO segment size (0: not GSO).
type Punted = (Vec<u8>, u16);

/// The plane's loop until `halt`: publishing, expiry, punted frames.
fn serve(
    dp: &Datapath,
    publisher: &mut Publisher,
    engine: &Engine,
    net: &rvs_io::NetState,
    mut injector: Injector,
    halt: &AtomicBool,
) {
    // Cached next hops are stamped with a version of the kernel's tables: a value of this
    // rvsd's own (never 0), so hops an earlier rvsd cached are looked up again.
    let base = (std::process::id() << 16) | 1;
    let mut seen_net = None;
    let queue: Rc<RefCell<Vec<Punted>>> = Rc::default();
    let ring = {
        let queue = queue.clone();
        dp.punt_reader(move |hdr, frame| queue.borrow_mut().push((frame.to_vec(), hdr.gso_size)))
    };
    let ring = match ring {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!("no punted frames will reach the engine: {e}");
            None
        }
    };
    let mut published = None;
    let mut last_publish = Instant::now() - PUBLISH_EVERY;
    let mut last_expire = Instant::now();
    while !halt.load(Ordering::Relaxed) {
        if last_publish.elapsed() >= PUBLISH_EVERY {
            last_publish = Instant::now();
            let walk = engine.spec_walk();
            let net_now = net.generation();
            if published.as_ref().is_none_or(|p| !walk.same_version(p)) || seen_net != Some(net_now)
            {
                seen_net = Some(net_now);
                let policy = engine.policy();
                let mut settings = Settings::from_engine(engine.timeouts(), &policy);
                settings.fib_gen = base ^ ((net_now as u32) << 1);
                match publisher.publish(dp, &walk, &settings) {
                    Ok(()) => published = Some(walk),
                    Err(e) => tracing::error!("publishing the configuration to BPF: {e}"),
                }
            }
        }
        if last_expire.elapsed() >= EXPIRE_EVERY {
            last_expire = Instant::now();
            if let Err(e) = dp.expire() {
                tracing::warn!("BPF expiry sweep: {e}");
            }
        }
        match &ring {
            Some(r) => {
                let _ = r.poll(POLL);
            }
            None => std::thread::sleep(POLL),
        }
        let frames = std::mem::take(&mut *queue.borrow_mut());
        for (mut frame, gso_size) in frames {
            injector.inject(&mut frame, gso_size);
        }
        if injector.holding() {
            injector.retry_held();
        }
    }
}
