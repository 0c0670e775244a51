//! The BPF data plane under rvsd (`--dataplane tc|xdp`): rvs-bpf's program forwards in the
//! kernel, and this module is its control plane. One thread owns the loaded program (libbpf's
//! objects stay on the thread that made them) and
//! - loads it with its maps pinned, adopting the maps an earlier rvsd left (its connections
//!   kept forwarding meanwhile), and attaches it to every interface;
//! - publishes the engine's configuration into the maps whenever a new version appears;
//! - runs the expiry sweep when entries may have fallen due ([`expiry`]) and ages the lblc/lblcr
//!   tables ([`locality`]);
//! - exchanges connections with the sync daemons ([`ProgramSync`]);
//! - hands the frames the program passes up (ICMP errors, fragments, services it does not
//!   schedule) to the engine and sends what the engine says;
//! - takes the SYN proxy's connections over from the engine once their real servers have
//!   answered ([`handoff`]);
//! - on a clean stop detaches the program and removes the pins (a crash leaves both, so the
//!   kernel keeps forwarding until rvsd is back).

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_bpf::maps::{
    Settings, PUNT_FRAGMENT, PUNT_FRAG_NEEDED, PUNT_SYNPROXY_ACK, PUNT_TOO_BIG, PUNT_TUNNEL,
};
use rvs_bpf::{Datapath, Hook, Limits, Publisher};
use rvs_engine::Engine;

use crate::dataplane::worker::Injector;

mod expiry;
mod fragments;
mod handoff;
mod listing;
mod locality;
mod stray;
mod sync;

use listing::estimate;
pub use listing::{connection_views, service_key, BpfHandles};
pub use sync::ProgramSync;

/// How often the configuration is compared with what was published.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// How long one wait for punted frames lasts.
const POLL: Duration = Duration::from_millis(50);
/// How long it lasts while frames wait to be sent again (a neighbour, a SYN-proxied server).
const RETRY_POLL: Duration = Duration::from_millis(5);

/// Which data plane rvsd runs (`--dataplane`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The fastest that works here: the BPF program (XDP on drivers with native XDP and
    /// redirect, tc otherwise), else the AF_PACKET workers; the choice is logged.
    Auto,
    /// AF_PACKET workers running every packet through the engine (the portable path).
    Packet,
    /// The BPF program at tc ingress: any driver, veth with default offloads.
    Tc,
    /// The BPF program at XDP (native where the driver has it, else generic).
    Xdp,
}

/// Drivers with native XDP and XDP_REDIRECT to one another, where XDP beats tc: the frame is
/// handled before the kernel allocates an skb. On veth (and drivers not listed) XDP copies
/// each frame or runs in generic mode, and tc was as fast or faster in the lab.
const NATIVE_XDP_DRIVERS: [&str; 9] = [
    "i40e",
    "ice",
    "ixgbe",
    "igc",
    "mlx5_core",
    "bnxt_en",
    "virtio_net",
    "ena",
    "nfp",
];

/// The driver of `interface` (`/sys/class/net/IF/device/driver`), if it has a device.
fn driver_of(interface: &str) -> Option<String> {
    let link = std::fs::read_link(format!("/sys/class/net/{interface}/device/driver")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// The faster BPF hook for `interfaces`, and why: XDP when every one has a driver with native
/// XDP and redirect, tc otherwise.
pub fn fastest_hook(interfaces: &[String]) -> (Hook, String) {
    let drivers: Vec<(String, Option<String>)> = interfaces
        .iter()
        .map(|i| (i.clone(), driver_of(i)))
        .collect();
    let not_native: Vec<String> = drivers
        .iter()
        .filter(|(_, d)| {
            !d.as_deref()
                .is_some_and(|d| NATIVE_XDP_DRIVERS.contains(&d))
        })
        .map(|(i, d)| format!("{i} ({})", d.as_deref().unwrap_or("virtual")))
        .collect();
    if not_native.is_empty() && !interfaces.is_empty() {
        (
            Hook::Xdp,
            "every interface's driver has native XDP with redirect".into(),
        )
    } else {
        (
            Hook::Tc,
            format!("no native XDP with redirect on {}", not_native.join(", ")),
        )
    }
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
    /// rvsd's clock (synced connections the engine takes are stamped with it).
    pub clock: crate::clock::Clock,
    /// Where the plane reports its connection table's room, for IPVS's defence.
    pub room: Arc<crate::dataplane::defense::TableRoom>,
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
    /// Where the program is attached.
    hook: Hook,
    halt: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Set by [`BpfPlane::stop_clean`]: detach and unpin when the thread ends.
    clean: Arc<AtomicBool>,
    /// What listings read, with the thread that runs the rate estimator.
    handles: Option<Arc<BpfHandles>>,
    rates: Option<JoinHandle<()>>,
    /// Connection sync with the program's table.
    sync: Arc<ProgramSync>,
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
    /// Where the program is attached (tc or XDP).
    pub fn hook(&self) -> Hook {
        self.hook
    }

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
        let room = setup.room.clone();
        let hook = setup.hook;
        let halt = Arc::new(AtomicBool::new(false));
        let clean = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), BpfPlaneError>>();
        let sync = Arc::new(ProgramSync::new());
        let thread = {
            let halt = halt.clone();
            let clean = clean.clone();
            let plumbing = Plumbing {
                engine,
                net,
                sync: sync.clone(),
                clock: setup.clock,
                room: setup.room.clone(),
            };
            std::thread::Builder::new()
                .name("rvsd-bpf".into())
                .spawn(move || run(setup, plumbing, injector, &halt, &clean, ready_tx))
                .map_err(|e| BpfPlaneError::Thread(e.to_string()))?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {
                let handles = match rvs_bpf::MapsView::open(&pin_dir) {
                    Ok(v) => {
                        let view = Arc::new(v);
                        sync.set_view(view.clone());
                        Some(Arc::new(BpfHandles {
                            view,
                            counters: Arc::default(),
                            room: room.clone(),
                        }))
                    }
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
                    hook,
                    halt,
                    thread: Some(thread),
                    clean,
                    handles,
                    rates,
                    sync,
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

    /// Connection sync with the program's table, for the sync daemons.
    pub fn sync(&self) -> Arc<ProgramSync> {
        self.sync.clone()
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

/// The plane's thread.
fn run(
    setup: Setup,
    plumbing: Plumbing,
    injector: impl FnOnce() -> anyhow::Result<Injector>,
    halt: &AtomicBool,
    clean: &AtomicBool,
    ready: mpsc::Sender<Result<(), BpfPlaneError>>,
) {
    // Interfaces attached so far: a failure part-way detaches them again, so a fall-back to
    // the packet path does not leave the program on some of them.
    let mut attached: Vec<u32> = Vec::new();
    let started = (|| {
        let dp = Datapath::load_pinned(setup.limits, &setup.pin_dir)?;
        let publisher = if dp.adopted() {
            tracing::info!(pins = %setup.pin_dir.display(),
                connections = dp.connections().map(|c| c.len()).unwrap_or(0),
                "adopted the BPF maps an earlier rvsd left");
            let (kept, asked) = (dp.limits(), setup.limits);
            if kept != asked {
                tracing::warn!(
                    connections = kept.connections,
                    services = kept.services,
                    dests = kept.dests,
                    "the adopted maps keep the sizes they were made with; \
                     --bpf-max-connections {}, --bpf-max-services {} and --bpf-max-dests {} \
                     apply after a clean stop removes the pins",
                    asked.connections,
                    asked.services,
                    asked.dests
                );
            }
            Publisher::adopt(&dp)?
        } else {
            Publisher::new()
        };
        let attach = |dp: &Datapath, attached: &mut Vec<u32>| {
            for name in &setup.interfaces {
                let index = ifindex(name)?;
                enable_forwarding(name)?;
                match setup.hook {
                    Hook::Tc => dp.attach_tc(index)?,
                    Hook::Xdp => dp.attach_xdp(index)?,
                }
                attached.push(index);
            }
            let injector = injector().map_err(|e| BpfPlaneError::Sockets(format!("{e:#}")))?;
            Ok::<_, BpfPlaneError>(injector)
        };
        match attach(&dp, &mut attached) {
            Ok(injector) => Ok((dp, publisher, injector)),
            Err(e) => {
                detach_all(&dp, setup.hook, &attached);
                if !dp.adopted() {
                    let mut dp = dp;
                    let _ = dp.remove_pins();
                }
                Err(e)
            }
        }
    })();
    let (mut dp, mut publisher, injector) = match started {
        Ok(parts) => parts,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let indexes = attached;
    tracing::info!(hook = ?setup.hook, interfaces = ?setup.interfaces,
        pins = %setup.pin_dir.display(), "BPF data plane attached");
    // Commands that would pass the maps' sizes are refused from now on.
    plumbing
        .engine
        .set_config_bounds(Some(config_bounds(dp.limits())));
    let _ = ready.send(Ok(()));

    serve(&dp, &mut publisher, &plumbing, injector, halt);
    plumbing.engine.set_config_bounds(None);
    if clean.load(Ordering::Relaxed) {
        detach_all(&dp, setup.hook, &indexes);
        if let Err(e) = dp.remove_pins() {
            tracing::warn!("removing the BPF pins: {e}");
        }
        tracing::info!("BPF data plane detached");
    }
}

/// The configuration the program's maps (of `limits`) hold, for the engine to refuse what
/// would pass it.
fn config_bounds(limits: Limits) -> rvs_engine::ConfigBounds {
    rvs_engine::ConfigBounds {
        holder: "the BPF data plane".into(),
        services: limits.services as usize,
        services_option: "--bpf-max-services".into(),
        dests: limits.dests as usize,
        dests_option: "--bpf-max-dests".into(),
        tables: limits.tables as usize,
        tables_option: "--bpf-max-tables".into(),
    }
}

/// Detaches the program from `indexes` (logged when one fails).
fn detach_all(dp: &Datapath, hook: Hook, indexes: &[u32]) {
    for &index in indexes {
        let detached = match hook {
            Hook::Tc => dp.detach_tc(index),
            Hook::Xdp => dp.detach_xdp(index),
        };
        if let Err(e) = detached {
            tracing::warn!("detaching the BPF program: {e}");
        }
    }
}

/// A frame the program passed up, as its header describes it.
struct Punted {
    frame: Vec<u8>,
    /// GSO segment size (0: not GSO).
    gso_size: u16,
    /// Why (`rvs_bpf::maps::PUNT_REASONS` index).
    reason: u16,
    /// The real server to tunnel to, for the tunnel reasons; the path's MTU for
    /// `PUNT_FRAG_NEEDED`.
    dest: u32,
}

/// What the plane's thread works with besides the program.
struct Plumbing {
    engine: Arc<Engine>,
    net: Arc<rvs_io::NetState>,
    sync: Arc<ProgramSync>,
    clock: crate::clock::Clock,
    room: Arc<crate::dataplane::defense::TableRoom>,
}

/// The settings to publish: the engine's tables, policy and defence, the next hops' version,
/// and whether (and how) a sync master exports.
fn settings_now(engine: &Engine, fib_gen: u32) -> Settings {
    let mut settings = Settings::from_engine(engine.timeouts(), &engine.policy())
        .with_defense(&engine.defense_status());
    settings.fib_gen = fib_gen;
    settings.sync_export = u8::from(engine.sync_exporting());
    (settings.sync_threshold, settings.sync_period) = engine.sync_threshold();
    settings
}

/// The plane's loop until `halt`: publishing, expiry, punted frames, synced connections.
fn serve(
    dp: &Datapath,
    publisher: &mut Publisher,
    plumbing: &Plumbing,
    mut injector: Injector,
    halt: &AtomicBool,
) {
    let (engine, net) = (&*plumbing.engine, &*plumbing.net);
    // Cached next hops are stamped with a version of the kernel's tables: a value of this
    // rvsd's own (never 0), so hops an earlier rvsd cached are looked up again.
    let base = (std::process::id() << 16) | 1;
    let mut seen_net = None;
    let queue: Rc<RefCell<Vec<Punted>>> = Rc::default();
    let ring = {
        let queue = queue.clone();
        dp.punt_reader(move |hdr, frame| {
            queue.borrow_mut().push(Punted {
                frame: frame.to_vec(),
                gso_size: hdr.gso_size,
                reason: hdr.reason,
                dest: hdr.dest,
            })
        })
    };
    let ring = match ring {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!("no punted frames will reach the engine: {e}");
            None
        }
    };
    let exported: Rc<RefCell<Vec<rvs_bpf::maps::SyncEvent>>> = Rc::default();
    let sync_ring = {
        let exported = exported.clone();
        dp.sync_reader(move |event| exported.borrow_mut().push(*event))
    };
    let sync_ring = match sync_ring {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!("a sync master will not send the BPF program's connections: {e}");
            None
        }
    };
    let mut published = None;
    // The configuration a publication last failed for: the next attempts (every
    // PUBLISH_EVERY) are not logged again until the configuration changes.
    let mut failed: Option<rvs_engine::spec_walk::SpecWalk> = None;
    let mut published_sync = None;
    let mut published_defense = None;
    let mut defense = DefenseVisits::new(Instant::now());
    let mut strays = stray::StrayReplies::new(Instant::now());
    let mut last_publish = Instant::now() - PUBLISH_EVERY;
    let mut sweeps = expiry::SweepSchedule::new(Instant::now());
    let mut aging = locality::LocalityAging::new(Instant::now());
    let mut locality_live = std::collections::HashSet::new();
    let mut handoff = handoff::Handoff::start(engine);
    while !halt.load(Ordering::Relaxed) {
        if last_publish.elapsed() >= PUBLISH_EVERY {
            last_publish = Instant::now();
            let walk = engine.spec_walk();
            let net_now = net.generation();
            let sync_now = (engine.sync_exporting(), engine.sync_threshold());
            let defense_now = {
                let d = engine.defense_status();
                (d.secure_tcp, d.drop_rate)
            };
            if published.as_ref().is_none_or(|p| !walk.same_version(p))
                || seen_net != Some(net_now)
                || published_sync != Some(sync_now)
                || published_defense != Some(defense_now)
            {
                seen_net = Some(net_now);
                let settings = settings_now(engine, base ^ ((net_now as u32) << 1));
                let result = publisher
                    .publish(dp, &walk, &settings)
                    .and_then(|()| publisher.publish_tunnel_sources(dp, |ip| net.source_for(ip)));
                match result {
                    Ok(()) => {
                        locality_live =
                            locality::locality_services(&walk, |k| publisher.service_id(k));
                        published = Some(walk);
                        published_sync = Some(sync_now);
                        published_defense = Some(defense_now);
                    }
                    Err(e) => {
                        if failed.as_ref().is_none_or(|f| !walk.same_version(f)) {
                            tracing::error!("publishing the configuration to BPF: {e}");
                            failed = Some(walk);
                        }
                    }
                }
            }
        }
        if published.is_some() {
            plumbing.sync.install(dp, engine, plumbing.clock.now());
        }
        if let Some(r) = &sync_ring {
            let _ = r.consume();
            let events = std::mem::take(&mut *exported.borrow_mut());
            if !events.is_empty() {
                plumbing.sync.exported(events);
            }
        }
        aging.run(dp, &locality_live, Instant::now());
        defense.run(dp, publisher, plumbing, Instant::now());
        strays.run(dp, publisher, engine);
        if sweeps.due(Instant::now(), expiry::program_floor(dp)) {
            let began = Instant::now();
            match dp.expire() {
                Ok(sweep) => sweeps.swept(began, sweep.next_due),
                Err(e) => {
                    tracing::warn!("BPF expiry sweep: {e}");
                    sweeps.swept(began, None);
                }
            }
        }
        // Frames waiting for a neighbour or a SYN-proxied server are offered again soon, and
        // connections just handed over are released soon.
        let wait = if injector.holding() || injector.deferring() || handoff.releasing() {
            RETRY_POLL
        } else {
            POLL
        };
        match &ring {
            Some(r) => {
                let _ = r.poll(wait);
            }
            None => std::thread::sleep(wait),
        }
        let frames = std::mem::take(&mut *queue.borrow_mut());
        for mut p in frames {
            if p.reason == PUNT_TOO_BIG || p.reason == PUNT_TUNNEL {
                // A packet of one of the program's tunnel connections: tunnelled (or refused
                // with ICMP) by the engine's transmitter; the program kept the state.
                match dp.dest(p.dest) {
                    Ok(Some(d)) => {
                        injector.tunnel(&mut p.frame, p.gso_size, d.addr.ip(), &d.tunnel())
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!("a punted frame's real server: {e}"),
                }
                continue;
            }
            if p.reason == PUNT_SYNPROXY_ACK {
                injector.inject_checked_ack(&mut p.frame);
                continue;
            }
            if p.reason == PUNT_FRAG_NEEDED {
                injector.refuse(&p.frame, p.dest);
                continue;
            }
            if p.reason == PUNT_FRAGMENT {
                let now = plumbing.clock.now();
                injector.inject_fragment(&mut p.frame, &mut |whole| {
                    fragments::adopt_connection(dp, engine, now, whole)
                });
                continue;
            }
            injector.inject(&mut p.frame, p.gso_size);
        }
        if injector.deferring() {
            injector.retry_deferred();
        }
        if injector.holding() {
            injector.retry_held();
        }
        injector.answer_reassembly_timeouts();
        injector.refresh_config();
        injector.flush();
        handoff.run(dp, engine);
    }
    handoff.stop(engine);
}

/// IPVS's defence in the program, once a second: the table's room reported to the timer
/// thread (which decides), and while `drop_entry` is on, a visit to the next 32nd of the table.
struct DefenseVisits {
    next: Instant,
    part: u32,
}

impl DefenseVisits {
    const EVERY: Duration = Duration::from_secs(1);

    fn new(now: Instant) -> DefenseVisits {
        DefenseVisits {
            next: now + Self::EVERY,
            part: 0,
        }
    }

    fn run(&mut self, dp: &Datapath, publisher: &Publisher, plumbing: &Plumbing, now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + Self::EVERY;
        // Every connection is counted on its server's slot (active or inactive; the two may
        // drift apart, a connection moved between them on two CPUs at once, their sum not).
        let counts: Vec<rvs_bpf::maps::DestConns> = (0..publisher.slot_bound())
            .map(|slot| dp.dest_conns(slot).unwrap_or_default())
            .collect();
        let used: u64 = counts
            .iter()
            .map(|c| u64::from(c.active.wrapping_add(c.inactive)))
            .sum();
        let capacity = u64::from(dp.limits().connections);
        plumbing.room.set(used, capacity.saturating_sub(used));
        handoff::report_counts(plumbing.engine.as_ref(), publisher, &counts);
        if plumbing.engine.defense_status().dropping_entries {
            match dp.drop_entries(self.part) {
                Ok(n) if n > 0 => tracing::debug!(removed = n, "drop_entry"),
                Ok(_) => {}
                Err(e) => tracing::warn!("drop_entry in the BPF tables: {e}"),
            }
            self.part = (self.part + 1) % 32;
        }
    }
}
