//! The VRRP runtime: drives the `vrrp_instance` / `vrrp_sync_group` blocks of keepalived.conf
//! with rvs-vrrp's sans-I/O state machines, one thread per sync group or lone instance.
//!
//! Each thread feeds received adverts and timeouts in, sends the adverts that come out, and
//! acts on the events: VIPs on and off the interfaces, gratuitous ARP / NA bursts, notify
//! scripts, smtp alerts and the connection-sync role of `lvs_sync_daemon`'s instance. On
//! shutdown a master sends a priority-0 advert and every VIP rvsd added is removed.

mod config;
mod io;
mod notify;
mod track;

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use rvs_api::{DaemonRole, VrrpStatsView, VrrpView};
use rvs_io::InterfaceAddress;
use rvs_keepalived::vrrp::{Tracked, VrrpInstance, VrrpScript, VrrpSyncGroup};
use rvs_keepalived::Lowered;
use rvs_vrrp::{
    Advert, AhSession, Auth, Event, GroupEvent, Instance, State, SyncGroup, Transmit, Version,
};

use crate::keepalived::smtp::MailSettings;
use crate::sync::SyncDaemons;
use io::MemberIo;
use notify::{NotifyState, Scope};
use track::{ScriptRunner, Tracking, POLL};

/// Why a VRRP unit (sync group or lone instance) did not start.
#[derive(Debug, thiserror::Error)]
pub enum VrrpError {
    /// Opening a socket on, or reading the addresses of, an instance's interface failed.
    #[error("{what} {interface}")]
    Io {
        /// The step (`VRRP socket on`, `packet socket on`, `addresses of`, ...).
        what: &'static str,
        /// The interface.
        interface: String,
        /// Its error.
        #[source]
        error: rvs_io::IoError,
    },
    /// rvs-vrrp refuses an instance's settings.
    #[error("vrrp_instance {name}")]
    Config {
        /// The instance.
        name: String,
        /// Why.
        #[source]
        error: rvs_vrrp::ConfigError,
    },
    /// The unit's thread could not be started.
    #[error("starting a VRRP thread")]
    Thread(#[source] std::io::Error),
    /// A unit without instances (a sync group naming none that exists).
    #[error("a vrrp unit without instances")]
    Empty,
    /// The `bfd_instance` sessions that instances track cannot run.
    #[error(transparent)]
    Bfd(#[from] crate::bfd::BfdError),
    /// The first unit of a (re)load that did not start; the others run.
    #[error("VRRP {label}")]
    Unit {
        /// The sync group or instance.
        label: String,
        /// Why.
        #[source]
        error: Box<VrrpError>,
    },
}

impl VrrpError {
    /// A failed step `what` on `interface`, as a closure for `map_err`.
    fn io(what: &'static str, interface: &str) -> impl FnOnce(rvs_io::IoError) -> VrrpError {
        let interface = interface.to_owned();
        move |error| VrrpError::Io {
            what,
            interface,
            error,
        }
    }

    /// This error and its causes on one line, `: ` between them.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

/// The running VRRP instances.
pub struct VrrpRuntime {
    units: Mutex<Vec<RunningUnit>>,
    sync: Arc<SyncDaemons>,
    /// The states of the BFD sessions `track_bfd` follows (kept across reloads).
    bfd: Arc<crate::bfd::BfdStates>,
    /// The `bfd_instance` sessions running.
    bfd_sessions: Mutex<Option<crate::bfd::BfdRuntime>>,
}

/// What a unit's thread is told to do: keep running.
const RUN: u8 = 0;
/// Stop as at shutdown: a master sends priority 0, VIPs are removed, notify_stop runs.
const STOP: u8 = 1;
/// Stop for a reload that replaces the unit: nothing is sent or removed; the successor
/// takes over the VIPs and resumes the states.
const HANDOVER: u8 = 2;

/// A unit's thread and what it was built from.
struct RunningUnit {
    spec: UnitSpec,
    settings: Arc<Settings>,
    control: Arc<AtomicU8>,
    status: Arc<Mutex<Vec<VrrpView>>>,
    clear_stats: Arc<AtomicBool>,
    thread: Option<JoinHandle<Unit>>,
}

impl RunningUnit {
    /// Tells the thread to end with `how` and takes the unit back.
    fn finish(&mut self, how: u8) -> Option<Unit> {
        self.control.store(how, Ordering::SeqCst);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

/// A sync group with its member instances, or a lone instance: the configuration of a unit.
#[derive(Clone)]
struct UnitSpec {
    group: Option<VrrpSyncGroup>,
    members: Vec<VrrpInstance>,
    /// The group and members with their spans blanked: what the unit configures, wherever in
    /// the file it stands (for reload comparisons).
    placeless: (Option<VrrpSyncGroup>, Vec<VrrpInstance>),
}

impl PartialEq for UnitSpec {
    fn eq(&self, other: &UnitSpec) -> bool {
        self.placeless == other.placeless
    }
}

impl UnitSpec {
    fn new(group: Option<VrrpSyncGroup>, members: Vec<VrrpInstance>) -> UnitSpec {
        let placeless = (
            group.as_ref().map(VrrpSyncGroup::placeless),
            members.iter().map(VrrpInstance::placeless).collect(),
        );
        UnitSpec {
            group,
            members,
            placeless,
        }
    }

    /// The units of a configuration: its sync groups, then the instances in no group.
    fn all_of(lowered: &Lowered) -> Vec<UnitSpec> {
        let specs = &lowered.vrrp;
        let mut units = Vec::new();
        let mut grouped: Vec<&str> = Vec::new();
        for sg in &specs.sync_groups {
            let members = sg
                .group
                .iter()
                .filter_map(|n| specs.instances.iter().find(|i| &i.name == n).cloned())
                .collect();
            grouped.extend(sg.group.iter().map(String::as_str));
            units.push(UnitSpec::new(Some(sg.clone()), members));
        }
        for vi in specs
            .instances
            .iter()
            .filter(|i| !grouped.contains(&i.name.as_str()))
        {
            units.push(UnitSpec::new(None, vec![vi.clone()]));
        }
        units
    }

    fn label(&self) -> String {
        match &self.group {
            Some(g) => g.name.clone(),
            None => self
                .members
                .first()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
        }
    }

    fn has_member(&self, name: &str) -> bool {
        self.members.iter().any(|m| m.name == name)
    }
}

/// Settings every unit of one configuration shares (a change replaces every unit).
struct Settings {
    scripts: Vec<VrrpScript>,
    /// `bfd_instance`s (their default weights for `track_bfd`).
    bfd: Vec<rvs_keepalived::vrrp::BfdInstance>,
    mail: Option<MailSettings>,
    router_id: String,
    sync_instance: Option<String>,
    /// `global_defs`' `smtp_alert_vrrp` / `smtp_alert`: mail every instance's and group's
    /// transitions even without their own `smtp_alert`.
    alert_all: bool,
}

impl PartialEq for Settings {
    fn eq(&self, other: &Settings) -> bool {
        self.scripts.len() == other.scripts.len()
            && self
                .scripts
                .iter()
                .zip(&other.scripts)
                .all(|(a, b)| a.placeless() == b.placeless())
            && self.mail == other.mail
            && self.router_id == other.router_id
            && self.sync_instance == other.sync_instance
            && self.alert_all == other.alert_all
            && self.bfd.len() == other.bfd.len()
            && self
                .bfd
                .iter()
                .zip(&other.bfd)
                .all(|(a, b)| (&a.name, a.weight) == (&b.name, b.weight))
    }
}

impl Settings {
    fn of(lowered: &Lowered) -> Settings {
        let g = &lowered.global;
        let router_id = crate::keepalived::smtp::router_id(g);
        let mail = MailSettings::from_global(g, &router_id);
        Settings {
            alert_all: g.smtp_alert_vrrp.or(g.smtp_alert).unwrap_or(false),
            scripts: lowered.vrrp.scripts.clone(),
            bfd: lowered.vrrp.bfd.clone(),
            mail,
            router_id,
            sync_instance: g
                .lvs_sync_daemon
                .as_ref()
                .and_then(|d| d.vrrp_instance.clone()),
        }
    }
}

/// What one unit's thread shares with the runtime.
struct Shared {
    settings: Arc<Settings>,
    sync: Arc<SyncDaemons>,
    status: Arc<Mutex<Vec<VrrpView>>>,
    control: Arc<AtomicU8>,
    /// Set to have the unit zero its members' counts (keepalived's `STATS_CLEAR`).
    clear_stats: Arc<AtomicBool>,
    /// The BFD sessions' states.
    bfd: Arc<crate::bfd::BfdStates>,
}

/// What a replaced instance leaves to its successor.
struct Inherited {
    was_master: bool,
    vips: Vec<InterfaceAddress>,
}

impl VrrpRuntime {
    /// Starts the `bfd_instance` sessions and every VRRP instance of `lowered` (none is fine:
    /// a reload may add some).
    pub fn start(lowered: &Lowered, sync: Arc<SyncDaemons>) -> Result<VrrpRuntime, VrrpError> {
        let rt = VrrpRuntime {
            units: Mutex::new(Vec::new()),
            sync,
            bfd: Arc::new(crate::bfd::BfdStates::default()),
            bfd_sessions: Mutex::new(None),
        };
        if let Err(e) = rt.reload(lowered) {
            rt.shutdown();
            return Err(e);
        }
        Ok(rt)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RunningUnit>> {
        self.units.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a (re)loaded configuration as keepalived does: units whose configuration is
    /// unchanged keep running untouched; removed ones stop (priority 0, VIPs removed); changed
    /// ones are replaced, their instances resuming MASTER at once where they were master and
    /// keeping the VIPs they still list; new ones start. On an error naming the first unit
    /// that could not start, the others are running.
    pub fn reload(&self, lowered: &Lowered) -> Result<(), VrrpError> {
        self.reload_bfd(&lowered.vrrp.bfd)?;
        let settings = Arc::new(Settings::of(lowered));
        let wanted = UnitSpec::all_of(lowered);
        let mut units = self.lock();
        let mut kept: Vec<RunningUnit> = Vec::new();
        let mut inherited: HashMap<String, Inherited> = HashMap::new();
        for mut old in std::mem::take(&mut *units) {
            if *old.settings == *settings && wanted.contains(&old.spec) {
                kept.push(old);
                continue;
            }
            let continues = old
                .spec
                .members
                .iter()
                .any(|m| wanted.iter().any(|w| w.has_member(&m.name)));
            if let Some(unit) = old.finish(if continues { HANDOVER } else { STOP }) {
                inherited.extend(unit.bequeath());
            }
        }
        let mut first_error = None;
        for spec in wanted {
            if let Some(i) = kept.iter().position(|k| k.spec == spec) {
                units.push(kept.swap_remove(i));
                continue;
            }
            let label = spec.label();
            match self.spawn(spec, &settings, &mut inherited) {
                Ok(u) => units.push(u),
                Err(e) => {
                    tracing::error!(unit = label, "VRRP: cannot start: {}", e.chain());
                    first_error.get_or_insert(VrrpError::Unit {
                        label,
                        error: Box::new(e),
                    });
                }
            }
        }
        // VIPs of replaced instances that no successor took.
        for (name, left) in inherited {
            for a in left.vips {
                if let Err(e) = rvs_io::remove_address(&a) {
                    tracing::warn!(instance = name, vip = %a.addr, "VRRP: removing the VIP failed: {e}");
                }
            }
        }
        // Sessions the file dropped are forgotten only now: the instances that tracked them
        // were replaced without seeing them go down.
        self.bfd
            .retain(lowered.vrrp.bfd.iter().map(|b| b.name.as_str()));
        let n: usize = units.iter().map(|u| u.spec.members.len()).sum();
        tracing::info!(instances = n, "VRRP running");
        first_error.map_or(Ok(()), Err)
    }

    fn spawn(
        &self,
        spec: UnitSpec,
        settings: &Arc<Settings>,
        inherited: &mut HashMap<String, Inherited>,
    ) -> Result<RunningUnit, VrrpError> {
        let control = Arc::new(AtomicU8::new(RUN));
        let status = Arc::new(Mutex::new(Vec::new()));
        let clear_stats = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            settings: settings.clone(),
            sync: self.sync.clone(),
            status: status.clone(),
            control: control.clone(),
            clear_stats: clear_stats.clone(),
            bfd: self.bfd.clone(),
        });
        let mut unit = Unit::build(spec.group.clone(), spec.members.clone(), &shared, inherited)?;
        let name = format!("rvsd-vrrp-{}", spec.label());
        let thread = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || {
                unit.run();
                unit
            })
            .map_err(VrrpError::Thread)?;
        Ok(RunningUnit {
            spec,
            settings: settings.clone(),
            control,
            status,
            clear_stats,
            thread: Some(thread),
        })
    }

    /// Zeroes every instance's counts (keepalived's `STATS_CLEAR`), at each unit's next turn.
    pub fn clear_stats(&self) {
        for u in self.lock().iter() {
            u.clear_stats.store(true, Ordering::SeqCst);
        }
    }

    /// The `router_id` of `global_defs` (keepalived's data dump shows it).
    pub fn router_id(&self) -> String {
        self.lock()
            .first()
            .map(|u| u.settings.router_id.clone())
            .unwrap_or_default()
    }

    /// Every instance's state, in configuration order.
    pub fn status(&self) -> Vec<VrrpView> {
        self.lock()
            .iter()
            .flat_map(|u| u.status.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    /// Stops every instance (masters send priority 0, VIPs are removed) and waits for them.
    pub fn shutdown(&self) {
        let units = std::mem::take(&mut *self.lock());
        for mut u in units {
            u.finish(STOP);
        }
        // After VRRP: its instances never see the sessions go down on the way out.
        let running = self
            .bfd_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut b) = running {
            b.shutdown();
        }
    }

    /// The BFD sessions (`rvsadm --bfd`).
    pub fn bfd_status(&self) -> Vec<rvs_api::BfdView> {
        self.bfd.views()
    }

    /// Runs the sessions `specs` asks for (unchanged ones keep running as they are, see
    /// [`crate::bfd::BfdRuntime::reload`]) before the VRRP units that track them are
    /// (re)built.
    fn reload_bfd(&self, specs: &[rvs_keepalived::vrrp::BfdInstance]) -> Result<(), VrrpError> {
        let mut running = self.bfd_sessions.lock().unwrap_or_else(|e| e.into_inner());
        if specs.is_empty() {
            if let Some(mut rt) = running.take() {
                rt.shutdown();
            }
            return Ok(());
        }
        match running.as_mut() {
            Some(rt) => rt.reload(specs)?,
            None => *running = Some(crate::bfd::BfdRuntime::start(specs, self.bfd.clone())?),
        }
        Ok(())
    }
}

/// The state machine of one unit.
enum Machine {
    Single(Box<Instance>),
    Group(SyncGroup),
}

/// What a unit reports after a step.
enum UnitEvent {
    Member(usize, Event),
    Group(NotifyState),
}

impl Machine {
    fn instance(&self, i: usize) -> Option<&Instance> {
        match self {
            Machine::Single(m) => (i == 0).then_some(&**m),
            Machine::Group(g) => g.members().get(i),
        }
    }

    fn timeout(&self) -> Option<Instant> {
        match self {
            Machine::Single(m) => m.poll_timeout(),
            Machine::Group(g) => g.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Machine::Single(m) => m.handle_timeout(now),
            Machine::Group(g) => g.handle_timeout(now),
        }
    }

    fn advert(&mut self, now: Instant, i: usize, src: IpAddr, a: &Advert) {
        let _ = match self {
            Machine::Single(m) => m.handle_advert(now, src, a),
            Machine::Group(g) => g.handle_advert(now, i, src, a),
        };
    }

    fn track(&mut self, now: Instant, i: usize, delta_change: i32, fault: Option<bool>) {
        match self {
            Machine::Single(m) => {
                if delta_change != 0 {
                    m.adjust_priority(now, delta_change);
                }
                if let Some(f) = fault {
                    m.set_fault(now, f);
                }
            }
            Machine::Group(g) => {
                if delta_change != 0 {
                    g.adjust_priority(now, i, delta_change);
                }
                if let Some(f) = fault {
                    g.set_fault(now, i, f);
                }
            }
        }
    }

    fn shutdown(&mut self, now: Instant) {
        match self {
            Machine::Single(m) => m.shutdown(now),
            Machine::Group(g) => g.shutdown(now),
        }
    }

    fn transmit(&mut self) -> Option<(usize, Transmit)> {
        match self {
            Machine::Single(m) => m.poll_transmit().map(|t| (0, t)),
            Machine::Group(g) => g.poll_transmit(),
        }
    }

    fn event(&mut self) -> Option<UnitEvent> {
        match self {
            Machine::Single(m) => m.poll_event().map(|e| UnitEvent::Member(0, e)),
            Machine::Group(g) => g.poll_event().map(|e| match e {
                GroupEvent::Member { index, event } => UnitEvent::Member(index, event),
                GroupEvent::BecameMaster => UnitEvent::Group(NotifyState::Master),
                GroupEvent::BecameBackup => UnitEvent::Group(NotifyState::Backup),
                GroupEvent::BecameFault => UnitEvent::Group(NotifyState::Fault),
            }),
        }
    }
}

/// One member instance of a unit.
struct Member {
    spec: VrrpInstance,
    io: MemberIo,
    tracking: Tracking,
    applied_delta: i32,
    applied_fault: bool,
    /// What the instance counted (published with its state).
    stats: VrrpStatsView,
    /// The instance is MASTER (for counting `release_master`).
    master: bool,
}

/// A sync group or a lone instance, driven by one thread.
struct Unit {
    group: Option<VrrpSyncGroup>,
    members: Vec<Member>,
    machine: Machine,
    shared: Arc<Shared>,
}

impl Unit {
    fn build(
        group: Option<VrrpSyncGroup>,
        specs: Vec<VrrpInstance>,
        shared: &Arc<Shared>,
        inherited: &mut HashMap<String, Inherited>,
    ) -> Result<Unit, VrrpError> {
        let now = Instant::now();
        let mut members = Vec::new();
        let mut instances = Vec::new();
        for spec in specs {
            let (mut io, primary) = MemberIo::open(&spec)?;
            let refused = |name: &str| {
                let name = name.to_owned();
                move |error| VrrpError::Config { name, error }
            };
            let cfg = config::instance_config(&spec, primary).map_err(refused(&spec.name))?;
            if cfg.auth == Auth::Ah {
                let password = spec
                    .authentication
                    .as_ref()
                    .map(|a| a.auth_pass.as_str())
                    .unwrap_or_default();
                io.use_ah(AhSession::new(password))?;
            }
            let heir = inherited.remove(&spec.name);
            let was_master = heir.as_ref().is_some_and(|h| h.was_master);
            if let Some(h) = heir {
                io.adopt(h.vips);
            }
            let instance = if was_master {
                tracing::info!(instance = spec.name, "VRRP: reloaded master resumes MASTER");
                Instance::resume_master(cfg, now)
            } else {
                Instance::new(cfg, now)
            };
            instances.push(instance.map_err(refused(&spec.name))?);
            let mut if_tracked: Vec<&Tracked> = spec.track_interface.iter().collect();
            let mut scripts: Vec<&Tracked> = spec.track_script.iter().collect();
            let mut bfds: Vec<&Tracked> = spec.track_bfd.iter().collect();
            if let Some(g) = &group {
                if_tracked.extend(&g.track_interface);
                scripts.extend(&g.track_script);
                bfds.extend(&g.track_bfd);
            }
            let mut tracking = Tracking::new(
                &spec.interface,
                &if_tracked,
                &scripts,
                &shared.settings.scripts,
                now,
            );
            tracking.track_bfd(&bfds, &shared.settings.bfd, shared.bfd.clone());
            members.push(Member {
                spec,
                io,
                tracking,
                applied_delta: 0,
                applied_fault: false,
                stats: VrrpStatsView::default(),
                master: was_master,
            });
        }
        let machine = match &group {
            Some(g) => Machine::Group(SyncGroup::new(&g.name, instances, now)),
            None => match instances.pop() {
                Some(i) => Machine::Single(Box::new(i)),
                None => return Err(VrrpError::Empty),
            },
        };
        {
            let mut status = shared.status.lock().unwrap_or_else(|e| e.into_inner());
            status.clear();
            for m in &members {
                status.push(VrrpView {
                    name: m.spec.name.clone(),
                    group: group.as_ref().map(|g| g.name.clone()),
                    interface: m.spec.interface.clone(),
                    vrid: m.spec.virtual_router_id,
                    version: 2,
                    state: "INIT".into(),
                    priority: m.spec.priority,
                    base_priority: m.spec.priority,
                    master: None,
                    vips: m.spec.virtual_ipaddress.iter().map(|v| v.addr).collect(),
                    stats: VrrpStatsView::default(),
                    vip_lines: Vec::new(),
                    scripts: Vec::new(),
                });
            }
        }
        Ok(Unit {
            group,
            members,
            machine,
            shared: shared.clone(),
        })
    }

    /// For a reload that replaces this unit: per member, whether it (or its group) was
    /// MASTER, and the VIPs it added, which it gives up without removing them.
    fn bequeath(mut self) -> Vec<(String, Inherited)> {
        let state_of = |i: usize| self.machine.instance(i).map(Instance::state);
        let masters: Vec<bool> = (0..self.members.len())
            .map(|i| state_of(i) == Some(State::Master))
            .collect();
        let group_master = self.group.is_some() && masters.iter().any(|m| *m);
        self.members
            .iter_mut()
            .zip(masters)
            .map(|(m, master)| {
                let left = Inherited {
                    was_master: master || group_master,
                    vips: m.io.take_owned(),
                };
                (m.spec.name.clone(), left)
            })
            .collect()
    }

    fn run(&mut self) {
        let mut buf = vec![0u8; 65536];
        loop {
            if self.shared.clear_stats.swap(false, Ordering::SeqCst) {
                for m in &mut self.members {
                    m.stats = VrrpStatsView::default();
                }
            }
            self.flush();
            self.publish();
            match self.shared.control.load(Ordering::SeqCst) {
                RUN => {}
                HANDOVER => return,
                _ => {
                    self.machine.shutdown(Instant::now());
                    self.flush();
                    self.publish();
                    for m in &mut self.members {
                        m.io.release_all();
                    }
                    return;
                }
            }
            let now = Instant::now();
            let mut deadline = now + POLL;
            if let Some(t) = self.machine.timeout() {
                deadline = deadline.min(t);
            }
            for m in &self.members {
                if let Some(t) = m.tracking.next_due() {
                    deadline = deadline.min(t);
                }
            }
            let wait = deadline.saturating_duration_since(now);
            let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
            let readable: Vec<bool> = {
                // The members' sockets, then the wakers of those that track BFD sessions (a
                // change is read by the tracking below).
                let wakers: Vec<&crate::bfd::BfdWaker> = self
                    .members
                    .iter()
                    .filter_map(|m| m.tracking.bfd_waker())
                    .collect();
                let mut fds: Vec<PollFd> = self
                    .members
                    .iter()
                    .map(|m| PollFd::new(m.io.socket().as_fd(), PollFlags::POLLIN))
                    .chain(
                        wakers
                            .iter()
                            .map(|w| PollFd::new(w.as_fd(), PollFlags::POLLIN)),
                    )
                    .collect();
                let _ = nix::poll::poll(&mut fds, PollTimeout::from(ms));
                let ready: Vec<bool> = fds
                    .iter()
                    .map(|f| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
                    .collect();
                let (sockets, woken) = ready.split_at(self.members.len());
                for (w, _) in wakers.iter().zip(woken).filter(|(_, woken)| **woken) {
                    w.clear();
                }
                sockets.to_vec()
            };
            let now = Instant::now();
            for (i, ready) in readable.into_iter().enumerate() {
                if !ready {
                    continue;
                }
                let mut got = Vec::new();
                if let Some(m) = self.members.get_mut(i) {
                    m.io.drain(&mut buf, |src, a| got.push((src, a)));
                }
                for (src, a) in got {
                    if let Some(m) = self.members.get_mut(i) {
                        m.stats.advert_rcvd += 1;
                        m.stats.pri_zero_rcvd += u64::from(a.priority == 0);
                    }
                    self.machine.advert(now, i, src, &a);
                }
            }
            if self.machine.timeout().is_some_and(|t| t <= now) {
                self.machine.handle_timeout(now);
            }
            for i in 0..self.members.len() {
                let m = &mut self.members[i];
                m.tracking.poll(now);
                let (delta, fault) = m.tracking.verdict();
                let change = delta - m.applied_delta;
                let fault_change = (fault != m.applied_fault).then_some(fault);
                if change != 0 || fault_change.is_some() {
                    m.applied_delta = delta;
                    m.applied_fault = fault;
                    self.machine.track(now, i, change, fault_change);
                }
            }
        }
    }

    /// Sends queued adverts and acts on queued events.
    fn flush(&mut self) {
        while let Some((i, t)) = self.machine.transmit() {
            if let Some(m) = self.members.get_mut(i) {
                m.io.send(&t);
                m.stats.advert_sent += 1;
                // The priority is the advert's third byte (RFC 3768, RFC 5798).
                m.stats.pri_zero_sent += u64::from(t.payload.get(2) == Some(&0));
            }
        }
        let mut notes = Vec::new();
        while let Some(e) = self.machine.event() {
            match e {
                UnitEvent::Group(state) => notes.push((None, state)),
                UnitEvent::Member(i, e) => {
                    let Some(m) = self.members.get_mut(i) else {
                        continue;
                    };
                    match &e {
                        Event::BecameMaster => {
                            m.stats.become_master += 1;
                            m.master = true;
                        }
                        Event::BecameBackup | Event::BecameFault | Event::Stopped if m.master => {
                            m.stats.release_master += 1;
                            m.master = false;
                        }
                        _ => {}
                    }
                    match e {
                        Event::AddVips(ips) => m.io.add_vips(&ips),
                        Event::RemoveVips(ips) => m.io.remove_vips(&ips),
                        Event::SendGratuitous { count, delay } => m.io.gratuitous(count, delay),
                        Event::BecameMaster => notes.push((Some(i), NotifyState::Master)),
                        Event::BecameBackup => notes.push((Some(i), NotifyState::Backup)),
                        Event::BecameFault => notes.push((Some(i), NotifyState::Fault)),
                        Event::Stopped => notes.push((Some(i), NotifyState::Stop)),
                        Event::PriorityChanged { from, to } => {
                            tracing::info!(instance = m.spec.name, from, to, "VRRP priority");
                        }
                    }
                }
            }
        }
        // Scripts and alerts run after the VIPs changed, as keepalived does.
        for (who, state) in notes {
            self.notify(who, state);
        }
    }

    fn notify(&self, who: Option<usize>, state: NotifyState) {
        let sh = &self.shared;
        match who {
            None => {
                let Some(g) = &self.group else { return };
                tracing::info!(
                    group = g.name,
                    state = state.word(),
                    "VRRP group transition"
                );
                notify::run_scripts(&g.notify, Scope::Group, &g.name, state, 0);
                if (g.smtp_alert || sh.settings.alert_all) && state != NotifyState::Stop {
                    notify::alert(
                        sh.settings.mail.as_ref(),
                        &sh.settings.router_id,
                        Scope::Group,
                        &g.name,
                        state,
                    );
                }
            }
            Some(i) => {
                let Some(m) = self.members.get(i) else { return };
                let prio = self
                    .machine
                    .instance(i)
                    .map_or(m.spec.priority, Instance::effective_priority);
                let name = &m.spec.name;
                tracing::info!(instance = name, state = state.word(), "VRRP transition");
                notify::run_scripts(&m.spec.notify, Scope::Instance, name, state, prio);
                if (m.spec.smtp_alert || sh.settings.alert_all) && state != NotifyState::Stop {
                    notify::alert(
                        sh.settings.mail.as_ref(),
                        &sh.settings.router_id,
                        Scope::Instance,
                        name,
                        state,
                    );
                }
                if sh.settings.sync_instance.as_deref() == Some(name.as_str()) {
                    let role = match state {
                        NotifyState::Master => Some(DaemonRole::Master),
                        NotifyState::Backup => Some(DaemonRole::Backup),
                        _ => None,
                    };
                    if let Some(role) = role {
                        switch_sync_role(&sh.sync, name, role);
                    }
                }
            }
        }
    }

    /// Writes the members' current state into the shared status.
    fn publish(&self) {
        let mut status = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
        for (i, m) in self.members.iter().enumerate() {
            let (Some(inst), Some(view)) = (self.machine.instance(i), status.get_mut(i)) else {
                continue;
            };
            view.stats = m.stats;
            let set = if inst.state() == State::Master {
                " set"
            } else {
                ""
            };
            view.vip_lines = m
                .spec
                .virtual_ipaddress
                .iter()
                .map(|v| {
                    let dev = v.dev.as_deref().unwrap_or(&m.spec.interface);
                    let scope = v.scope.as_deref().unwrap_or("global");
                    format!("{}/{} dev {dev} scope {scope}{set}", v.addr, v.prefix)
                })
                .collect();
            view.scripts = m.tracking.scripts.iter().map(ScriptRunner::view).collect();
            view.state = match inst.state() {
                State::Init => "INIT",
                State::Backup => "BACKUP",
                State::Master => "MASTER",
                State::Fault => "FAULT",
                State::Stopped => "STOP",
            }
            .into();
            view.priority = inst.effective_priority();
            view.version = match inst.config().version {
                Version::V2 => 2,
                Version::V3 => 3,
            };
            view.master = match inst.state() {
                State::Master => Some(inst.config().src_ip),
                _ => inst.master_address(),
            };
        }
    }
}

/// The `lvs_sync_daemon` hook: the instance it names changed role, so the connection-sync
/// daemon follows (master sends, backup receives).
fn switch_sync_role(sync: &SyncDaemons, instance: &str, role: DaemonRole) {
    match sync.set_sync_role(role) {
        Ok(()) => tracing::info!(instance, ?role, "connection sync role switched"),
        Err(e) => tracing::warn!(instance, ?role, "connection sync role switch failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn units(text: &str) -> Vec<UnitSpec> {
        let loaded = rvs_keepalived::load_str(text, Path::new("k.conf")).expect("loads");
        UnitSpec::all_of(&rvs_keepalived::lower(&loaded.config))
    }

    const VI_1: &str = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  \
                        priority 150\n  notify_master \"/bin/true master\"\n  \
                        virtual_ipaddress {\n    10.0.0.100/24 dev eth0\n  }\n}\n";

    #[test]
    fn units_compare_by_what_they_configure_not_where_they_stand() {
        let before = units(VI_1);
        let moved = units(&format!("# a comment\n\n{VI_1}"));
        assert!(before[0] == moved[0], "moving an instance down the file");
        let changed = units(&VI_1.replace("priority 150", "priority 120"));
        assert!(before[0] != changed[0], "a new priority");
        let other_vip = units(&VI_1.replace("10.0.0.100/24", "10.0.0.101/24"));
        assert!(before[0] != other_vip[0], "another VIP");
    }

    /// A unit that cannot start is reported (log and `rvsadm --reload` reply) as the chain
    /// of its causes on one line, as it read before the errors were typed.
    #[test]
    fn a_unit_error_reads_as_its_chain() {
        let e = VrrpError::Unit {
            label: "G".into(),
            error: Box::new(VrrpError::Config {
                name: "VI_1".into(),
                error: rvs_vrrp::ConfigError::Vrid,
            }),
        };
        assert_eq!(
            e.chain(),
            "VRRP G: vrrp_instance VI_1: virtual_router_id must be 1-255"
        );
        assert_eq!(
            crate::keepalived::reload::ReloadError::Vrrp(e).to_string(),
            "VRRP G: vrrp_instance VI_1: virtual_router_id must be 1-255"
        );
    }

    #[test]
    fn sync_groups_are_one_unit_with_their_members() {
        let text = format!(
            "vrrp_sync_group G {{\n  group {{\n    VI_1\n    VI_2\n  }}\n}}\n{VI_1}{}",
            VI_1.replace("VI_1", "VI_2")
                .replace("router_id 51", "router_id 52")
                .replace("10.0.0.100", "10.0.0.102")
        );
        let u = units(&text);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].label(), "G");
        assert!(u[0].has_member("VI_1") && u[0].has_member("VI_2"));
    }
}
