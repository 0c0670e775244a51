//! The running director: [`Daemon::start`] brings rvsd's subsystems up in their order,
//! [`Daemon::serve`] answers the control socket until SIGTERM or SIGINT, and [`Daemon::stop`]
//! (or dropping the daemon) takes them down in the reverse order.
//!
//! Start order, and why:
//! 1. the engine, with the command line's settings;
//! 2. keepalived.conf (`-f`): a broken file stops rvsd before it touches anything;
//! 3. the control socket: a second rvsd on the same socket stops here, naming the running one,
//!    before it touches that one's TUN device and nftables table;
//! 4. the kernel's links, routes and neighbours, then the ipvsadm-save file (`--restore`),
//!    which needs the director's addresses;
//! 5. the local-delivery TUN device and the kernel-bypass rules;
//! 6. the data-plane workers and the engine's timer thread;
//! 7. the control runtime, the keepalived services and their checkers on it;
//! 8. the connection-sync daemons (`lvs_sync_daemon`), which get the peer's table before
//! 9. BFD sessions (`bfd_instance`), then VRRP may take the VIPs.
//!
//! 10. BIRD's VIP announcements (`--bird-include`), once the control socket is served.
//!
//! Stop order: BIRD's announcements are withdrawn, VRRP (masters send priority 0, VIPs go), the sync daemons, the checkers (with
//! keepalived's omega scripts), the timer thread and the workers, the kernel-bypass rules, the
//! socket file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_engine::{Engine, EngineConfig, Policy};
use rvs_io::{IoError, NetState};

use crate::clock::Clock;
use crate::control;
use crate::control::restore::RestoreError;
use crate::control::server::ControlError;
use crate::dataplane::bypass::{self, Bypass};
use crate::dataplane::{self, DataPlane};
use crate::handover;
use crate::keepalived::health::{self, Health};
use crate::keepalived::load::{self, LoadError};
use crate::sync::SyncDaemons;
use crate::vrrp::{VrrpError, VrrpRuntime};

/// How long rvsd waits at start for a peer's connection table before it starts VRRP (the
/// backup asks at once and again after 500 ms).
const RESYNC_BEFORE_VRRP: Duration = Duration::from_millis(1200);

/// Why rvsd did not start: the step that failed, with its cause as the error's source.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// keepalived.conf cannot be used.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The control socket cannot be bound (another rvsd serves it, most often).
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The kernel's links, routes and neighbours cannot be read.
    #[error("reading the kernel's links, routes and neighbours")]
    Net(#[source] IoError),
    /// The ipvsadm-save file cannot be applied.
    #[error("restoring {}", .path.display())]
    Restore {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: RestoreError,
    },
    /// The local-delivery TUN device cannot be created.
    #[error("creating the local-delivery TUN device {name}")]
    Tun {
        /// The device.
        name: String,
        /// Why.
        #[source]
        error: IoError,
    },
    /// The kernel-bypass rules cannot be installed.
    #[error("installing nftables kernel-bypass rules")]
    Bypass(#[source] IoError),
    /// A worker's sockets or thread cannot be set up.
    #[error("starting the data plane")]
    DataPlane(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The timer thread cannot be started.
    #[error("starting the timer thread")]
    Timers(#[source] std::io::Error),
    /// The control runtime cannot be started.
    #[error("starting the control runtime")]
    Runtime(#[source] std::io::Error),
    /// `--web-listen`'s address cannot be bound.
    #[error("--web-listen {addr}: cannot listen there")]
    Web {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// A VRRP instance cannot start.
    #[error(transparent)]
    Vrrp(#[from] VrrpError),
    /// `--takeover`: the running rvsd's state could not be taken over.
    #[error("--takeover")]
    Handover(#[source] handover::HandoverError),
}

/// What the daemon runs with (the command line, checked).
#[derive(Debug, Clone)]
pub struct Options {
    /// Interfaces of the data plane.
    pub interfaces: Vec<String>,
    /// keepalived.conf to serve (`-f`).
    pub config_file: Option<PathBuf>,
    /// The control socket.
    pub socket: PathBuf,
    /// An ipvsadm-save file to apply before serving.
    pub restore: Option<PathBuf>,
    /// Number of data-plane workers (at least one).
    pub workers: usize,
    /// The engine's settings.
    pub engine: EngineConfig,
    /// IPVS's policy switches.
    pub policy: Policy,
    /// Which data plane forwards (`--dataplane`).
    pub dataplane: dataplane::bpf::Mode,
    /// Where the BPF plane pins its maps (a bpffs directory).
    pub bpf_pin_dir: PathBuf,
    /// The BPF plane's bounds: connections, services, real servers.
    pub bpf_limits: rvs_bpf::Limits,
    /// Take the state of the rvsd serving `socket` over (a graceful restart).
    pub takeover: bool,
    /// Where to serve metrics and the JSON API (`--web-listen`), if anywhere.
    pub web_listen: Option<std::net::SocketAddr>,
    /// keepalived's `-x`: serve every KEEPALIVED-MIB table over AgentX.
    pub snmp: bool,
    /// Where to announce the VIPs through BIRD (`--bird-include`), if anywhere.
    pub bird: Option<crate::bird::BirdSettings>,
}

/// The control socket's file while the start goes on: removed when dropped, unless
/// [`SocketFile::keep`] hands it to the running daemon (which removes it at stop).
struct SocketFile(Option<PathBuf>);

impl SocketFile {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The running data plane, shared with the handover point (which stops it first).
#[derive(Default)]
struct PlaneSlot {
    packet: Option<DataPlane>,
    bpf: Option<dataplane::bpf::BpfPlane>,
}

impl PlaneSlot {
    /// Stops whichever plane runs; `keep` leaves the BPF program attached with its pins (a
    /// handover or a crash-like stop), otherwise it is detached and unpinned.
    fn stop(&mut self, keep: bool) {
        if let Some(p) = self.packet.take() {
            p.join();
        }
        if let Some(b) = self.bpf.take() {
            if keep {
                drop(b);
            } else {
                b.stop_clean();
            }
        }
    }
}

/// rvsd's subsystems, started; each field is taken when it is stopped.
pub struct Daemon {
    socket: PathBuf,
    clock: Clock,
    engine: Arc<Engine>,
    net: Arc<NetState>,
    /// Bound at start, served by [`Daemon::serve`].
    listener: Option<std::os::unix::net::UnixListener>,
    /// Removed at stop; `None` once removed.
    bypass: Option<Bypass>,
    /// Tells the workers and the timer thread to end.
    halt: Arc<AtomicBool>,
    /// The packet workers or the BPF plane.
    planes: Arc<Mutex<PlaneSlot>>,
    /// What listings read of the BPF plane, when it runs.
    bpf_handles: Option<Arc<dataplane::bpf::BpfHandles>>,
    /// Where a successor takes over (`rvsd --takeover`).
    handover: Arc<handover::Point>,
    egress: Arc<dataplane::EgressCounters>,
    timers: Option<JoinHandle<()>>,
    runtime: tokio::runtime::Runtime,
    health: Option<Arc<Health>>,
    sync: Arc<SyncDaemons>,
    vrrp: Option<Arc<VrrpRuntime>>,
    /// The data plane running: `packet`, `tc` or `xdp`.
    dataplane: &'static str,
    /// `--web-listen`'s socket, bound at start, served by [`Daemon::serve`].
    web: Option<std::net::TcpListener>,
    /// The AgentX subagent's settings, when SNMP is on.
    snmp: Option<crate::snmp::SnmpConfig>,
    /// The BIRD announcer (`--bird-include`), started by [`Daemon::serve`].
    bird: Option<Arc<crate::bird::Announcer>>,
    stopped: bool,
}

/// The data plane a start produced: the AF_PACKET workers or the BPF plane, and the egress
/// counters either keeps.
type Started = (
    Option<DataPlane>,
    Option<dataplane::bpf::BpfPlane>,
    Arc<dataplane::EgressCounters>,
);

/// What starting either data plane needs.
struct Planes<'a> {
    engine: &'a Arc<Engine>,
    net: &'a Arc<NetState>,
    clock: Clock,
    options: &'a Options,
    local: Arc<rvs_io::TunDevice>,
    workers: usize,
    halt: &'a Arc<AtomicBool>,
    bypass: &'a Bypass,
    /// The BPF plane's table room, for IPVS's defence (read by the timer thread).
    bpf_room: Arc<dataplane::defense::TableRoom>,
}

impl Planes<'_> {
    /// The AF_PACKET workers.
    fn packet(&self) -> Result<Started, StartError> {
        let plane = DataPlane::start(
            self.engine.clone(),
            self.net.clone(),
            self.clock,
            &self.options.interfaces,
            self.local.clone(),
            self.workers,
            self.halt.clone(),
            {
                // A re-created interface may have lost its netdev chain: put the bypass rules
                // back, on a thread of its own (nft must not run on a data-plane worker),
                // retrying a failure.
                let bypass = self.bypass.clone();
                Arc::new(move |name: &str| dataplane::reattach_in_background(bypass.clone(), name))
            },
        )
        .map_err(|e| StartError::DataPlane(e.into()))?;
        let egress = plane.counters.clone();
        Ok((Some(plane), None, egress))
    }

    /// The BPF program at `hook`, with the engine behind it for what it passes up.
    fn bpf(&self, hook: rvs_bpf::Hook) -> Result<Started, dataplane::bpf::BpfPlaneError> {
        let egress = Arc::new(dataplane::EgressCounters::new(1));
        let setup = dataplane::bpf::Setup {
            hook,
            interfaces: self.options.interfaces.clone(),
            pin_dir: self.options.bpf_pin_dir.clone(),
            limits: self.options.bpf_limits,
            clock: self.clock,
            room: self.bpf_room.clone(),
        };
        let injector = {
            let (engine, net, interfaces, egress, local, clock) = (
                self.engine.clone(),
                self.net.clone(),
                self.options.interfaces.clone(),
                egress.clone(),
                self.local.clone(),
                self.clock,
            );
            move || dataplane::Injector::open(engine, net, clock, &interfaces, egress, local)
        };
        let plane = dataplane::bpf::BpfPlane::start(
            setup,
            self.engine.clone(),
            self.net.clone(),
            injector,
        )?;
        Ok((None, Some(plane), egress))
    }
}

impl Daemon {
    /// Starts every subsystem, in the order the module documentation gives. An error stops
    /// the start where it happens.
    pub fn start(options: Options) -> Result<Daemon, StartError> {
        let clock = Clock::new();
        let engine = Arc::new(Engine::new(options.engine.clone()));
        engine.set_policy(options.policy);
        // Read the keepalived.conf first: a broken file stops rvsd before it touches anything.
        let keepalived = match &options.config_file {
            Some(path) => Some((path.clone(), load::load(path)?)),
            None => None,
        };

        // The control socket next: a second rvsd on the same socket stops here, naming the
        // running one, before it touches that one's TUN device and nftables table.
        let handed = if options.takeover {
            handover::take(&options.socket).map_err(StartError::Handover)?
        } else {
            None
        };
        let listener = control::server::bind(&options.socket)?;
        // Removes the socket file again if a later step fails (rvsd does not start).
        let socket_file = SocketFile(Some(options.socket.clone()));
        let web = options
            .web_listen
            .map(|addr| {
                let bound = std::net::TcpListener::bind(addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l));
                bound.map_err(|error| StartError::Web { addr, error })
            })
            .transpose()?;
        let net = NetState::start().map_err(StartError::Net)?;
        if let Some(path) = &options.restore {
            let applied = control::restore::apply_file(&engine, &net.local_addrs(), path).map_err(
                |error| StartError::Restore {
                    path: path.clone(),
                    error,
                },
            )?;
            tracing::info!(rules = applied, file = %path.display(), "restored ipvsadm-save rules");
        }
        // A successor's configuration is the handed-over one unless -f or --restore gives one;
        // the connections go in before forwarding starts (with -f, once its services exist).
        let mut handed_conns = Vec::new();
        if let Some(h) = handed {
            if options.config_file.is_none() && options.restore.is_none() {
                handover::apply_config(&engine, &net.local_addrs(), h.commands);
            } else {
                tracing::info!("--takeover: the configuration comes from -f/--restore");
            }
            handed_conns = h.conns;
        }
        if options.config_file.is_none() && !handed_conns.is_empty() {
            handover::install_conns(&engine, clock.now(), &std::mem::take(&mut handed_conns));
        }
        // Local real servers: their packets go to the director's own stack through this device
        // (the kernel-bypass rules keep it from taking them off the wire). Gone when rvsd exits.
        let tun_name = bypass::tun_name(&options.socket);
        let local =
            Arc::new(
                rvs_io::TunDevice::create(&tun_name).map_err(|error| StartError::Tun {
                    name: tun_name.clone(),
                    error,
                })?,
            );
        let bypass = Bypass::install(&options.socket, &options.interfaces, &engine)
            .map_err(StartError::Bypass)?;
        bypass.sync(&engine);

        let halt = Arc::new(AtomicBool::new(false));
        let workers = options.workers.max(1);
        let bpf_room = Arc::new(dataplane::defense::TableRoom::default());
        let planes = Planes {
            bpf_room: bpf_room.clone(),
            engine: &engine,
            net: &net,
            clock,
            options: &options,
            local,
            workers,
            halt: &halt,
            bypass: &bypass,
        };
        let (plane, bpf, egress) = match options.dataplane {
            dataplane::bpf::Mode::Packet => planes.packet()?,
            dataplane::bpf::Mode::Tc => planes
                .bpf(rvs_bpf::Hook::Tc)
                .map_err(|e| StartError::DataPlane(e.into()))?,
            dataplane::bpf::Mode::Xdp => planes
                .bpf(rvs_bpf::Hook::Xdp)
                .map_err(|e| StartError::DataPlane(e.into()))?,
            dataplane::bpf::Mode::Auto => {
                let (hook, why) = dataplane::bpf::fastest_hook(&options.interfaces);
                match planes.bpf(hook) {
                    Ok(started) => {
                        tracing::info!("data plane: BPF at {hook:?} (--dataplane auto: {why})");
                        started
                    }
                    Err(e) => {
                        tracing::warn!(
                            "data plane: packet (--dataplane auto: the BPF plane did not start: {e})"
                        );
                        planes.packet()?
                    }
                }
            }
        };
        let dataplane_mode = match &bpf {
            Some(b) if b.hook() == rvs_bpf::Hook::Xdp => "xdp",
            Some(_) => "tc",
            None => "packet",
        };
        let timers = dataplane::timers::start(
            engine.clone(),
            clock,
            bpf_room,
            bypass.clone(),
            halt.clone(),
        )
        .map_err(StartError::Timers)?;
        tracing::info!(interfaces = ?options.interfaces, workers,
            socket = %options.socket.display(), "rvsd running");

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let lvs_sync = keepalived
            .as_ref()
            .and_then(|(_, l)| l.global.lvs_sync_daemon.clone());
        let vrrp_specs = keepalived.as_ref().map(|(_, l)| l.clone());
        let snmp = keepalived
            .as_ref()
            .and_then(|(_, l)| crate::snmp::SnmpConfig::from_globals(&l.global, options.snmp));
        let health = keepalived.map(|(path, loaded)| {
            tracing::info!(file = %path.display(), "serving keepalived configuration");
            Health::start(
                path,
                loaded,
                health::Plumbing {
                    engine: engine.clone(),
                    bypass: bypass.clone(),
                    net: net.clone(),
                    clock,
                },
                runtime.handle().clone(),
            )
        });
        if !handed_conns.is_empty() {
            handover::install_conns(&engine, clock.now(), &handed_conns);
        }
        let sync = Arc::new(SyncDaemons::new(
            engine.clone(),
            clock,
            bpf.as_ref().map(|b| b.sync()),
        ));
        let bpf_handles = bpf.as_ref().and_then(|b| b.handles());
        let planes = Arc::new(Mutex::new(PlaneSlot { packet: plane, bpf }));
        let handover = {
            let (planes, halt) = (planes.clone(), halt.clone());
            handover::Point::new(Box::new(move || {
                halt.store(true, Ordering::SeqCst);
                planes.lock().unwrap_or_else(|e| e.into_inner()).stop(true);
            }))
        };
        // Before VRRP starts, so its first transition finds the daemon to promote.
        if let Some(d) = &lvs_sync {
            match sync.start_from_keepalived(d) {
                Ok(c) => {
                    tracing::info!(interface = %c.mcast_interface, "lvs_sync_daemon: backup started")
                }
                Err(e) => tracing::warn!("lvs_sync_daemon: {e}"),
            }
            // Let a peer master answer the backup's resync request before VRRP may take the
            // VIPs (after the master-down interval, or at once for an address owner):
            // established connections must be known first.
            let has_vrrp = vrrp_specs
                .as_ref()
                .is_some_and(|l| !l.vrrp.instances.is_empty());
            if has_vrrp {
                let n = sync.wait_resync(RESYNC_BEFORE_VRRP);
                tracing::info!(
                    connections = n,
                    "lvs_sync_daemon: connection table received before VRRP start"
                );
            }
        }
        // VRRP starts the BFD sessions its instances track first.
        let vrrp = match &vrrp_specs {
            Some(l) => Some(Arc::new(VrrpRuntime::start(l, sync.clone())?)),
            None => None,
        };
        let bird = options
            .bird
            .clone()
            .map(|s| crate::bird::Announcer::new(s, engine.clone(), health.clone()));
        socket_file.keep();
        Ok(Daemon {
            socket: options.socket,
            clock,
            egress,
            engine,
            net,
            listener: Some(listener),
            bypass: Some(bypass),
            halt,
            planes,
            bpf_handles,
            handover,
            timers: Some(timers),
            runtime,
            health,
            sync,
            vrrp,
            dataplane: dataplane_mode,
            web,
            snmp,
            bird,
            stopped: false,
        })
    }

    /// Serves the control socket until SIGTERM or SIGINT (SIGHUP reloads keepalived.conf).
    pub fn serve(&mut self) -> Result<(), ControlError> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let Some(bypass) = self.bypass.clone() else {
            return Ok(());
        };
        let shared = control::server::Shared {
            engine: self.engine.clone(),
            bypass,
            clock: self.clock,
            egress: self.egress.clone(),
            net: self.net.clone(),
            health: self.health.clone(),
            sync: self.sync.clone(),
            vrrp: self.vrrp.clone(),
            bpf: self.bpf_handles.clone(),
            handover: self.handover.clone(),
            dataplane: self.dataplane,
        };
        // Announced once the director forwards and serves; withdrawn first at stop.
        if let Some(bird) = &self.bird {
            bird.spawn(self.runtime.handle());
        }
        if let Some(config) = self.snmp.take() {
            self.runtime.spawn(crate::snmp::run(config, shared.clone()));
        }
        if let Some(web) = self.web.take() {
            let shared = shared.clone();
            self.runtime.spawn(async move {
                if let Err(e) = crate::web::serve(web, shared).await {
                    tracing::error!("the web listener stopped: {e}");
                }
            });
        }
        self.runtime
            .block_on(control::server::serve(listener, shared))
    }

    /// Stops every subsystem in the reverse order of [`Daemon::start`].
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// The stop sequence; does nothing the second time.
    fn shutdown(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        // The routers stop sending here before anything stops forwarding; a successor
        // (`--takeover`) announces the same VIPs itself.
        if let Some(b) = self.bird.take() {
            if !self.handover.handed_over() {
                b.withdraw_all();
            }
        }
        if let Some(v) = self.vrrp.take() {
            v.shutdown();
        }
        self.sync.shutdown();
        if let Some(h) = self.health.take() {
            h.shutdown();
        }
        self.halt.store(true, Ordering::SeqCst);
        if let Some(t) = self.timers.take() {
            let _ = t.join();
        }
        // After a handover the successor takes the kernel state: the BPF program and pins,
        // and the kernel-bypass rules that keep the kernel from answering for the VIPs.
        let keep = self.handover.handed_over();
        self.planes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop(keep);
        if let Some(b) = self.bypass.take() {
            if keep {
                b.leave();
            } else {
                b.remove();
            }
        }
        let _ = std::fs::remove_file(&self.socket);
        tracing::info!("rvsd stopped");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}
