//! The VRRP runtime: drives the `vrrp_instance` / `vrrp_sync_group` blocks of keepalived.conf
//! with rvs-vrrp's sans-I/O state machines, one thread per sync group or lone instance.
//!
//! Each thread feeds received adverts and timeouts in, sends the adverts that come out, and
//! acts on the events: VIPs on and off the interfaces, gratuitous ARP / NA bursts, notify
//! scripts, smtp alerts and the connection-sync role of `lvs_sync_daemon`'s instance. On
//! shutdown a master sends a priority-0 advert and every VIP rvsd added is removed.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use rvs_api::{DaemonRole, VrrpView};
use rvs_keepalived::vrrp::{Tracked, VrrpInstance, VrrpScript, VrrpSyncGroup};
use rvs_keepalived::Lowered;
use rvs_vrrp::{
    Advert, AhSession, Auth, Event, GroupEvent, Instance, InstanceConfig, State, SyncGroup,
    Transmit, Version,
};

use crate::smtp::MailSettings;
use crate::sync_daemon::SyncDaemons;
use crate::vrrp_io::MemberIo;
use crate::vrrp_notify::{self, NotifyState, Scope};
use crate::vrrp_track::{Tracking, POLL};

/// The running VRRP instances.
pub struct VrrpRuntime {
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    status: Arc<Mutex<Vec<VrrpView>>>,
}

/// Settings every unit shares.
struct Shared {
    scripts: Vec<VrrpScript>,
    mail: Option<MailSettings>,
    router_id: String,
    sync_instance: Option<String>,
    sync: Arc<SyncDaemons>,
    status: Arc<Mutex<Vec<VrrpView>>>,
    stop: Arc<AtomicBool>,
}

impl VrrpRuntime {
    /// Starts every VRRP instance of `lowered`; `None` when there are none.
    pub fn start(lowered: &Lowered, sync: Arc<SyncDaemons>) -> anyhow::Result<Option<VrrpRuntime>> {
        let specs = &lowered.vrrp;
        if specs.instances.is_empty() {
            return Ok(None);
        }
        let g = &lowered.global;
        let router_id = g.router_id.clone().unwrap_or_else(hostname);
        let mail = match (&g.smtp_server, g.notification_email.is_empty()) {
            (Some(server), false) => Some(MailSettings {
                host: server.host.clone(),
                port: server.port,
                helo: g
                    .smtp_helo_name
                    .clone()
                    .unwrap_or_else(|| router_id.clone()),
                from: g
                    .notification_email_from
                    .clone()
                    .unwrap_or_else(|| format!("keepalived@{router_id}")),
                to: g.notification_email.clone(),
                timeout: g.smtp_connect_timeout.unwrap_or(Duration::from_secs(30)),
            }),
            _ => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            scripts: specs.scripts.clone(),
            mail,
            router_id,
            sync_instance: g
                .lvs_sync_daemon
                .as_ref()
                .and_then(|d| d.vrrp_instance.clone()),
            sync,
            status: status.clone(),
            stop: stop.clone(),
        });
        let mut units = Vec::new();
        let mut grouped: Vec<&str> = Vec::new();
        for sg in &specs.sync_groups {
            let members: Vec<VrrpInstance> = sg
                .group
                .iter()
                .filter_map(|n| specs.instances.iter().find(|i| &i.name == n).cloned())
                .collect();
            grouped.extend(sg.group.iter().map(String::as_str));
            units.push(Unit::build(Some(sg.clone()), members, &shared)?);
        }
        for vi in specs
            .instances
            .iter()
            .filter(|i| !grouped.contains(&i.name.as_str()))
        {
            units.push(Unit::build(None, vec![vi.clone()], &shared)?);
        }
        let mut threads = Vec::new();
        for mut unit in units {
            let name = format!("rvsd-vrrp-{}", unit.label());
            let t = std::thread::Builder::new()
                .name(name.chars().take(15).collect())
                .spawn(move || unit.run())
                .context("starting a VRRP thread")?;
            threads.push(t);
        }
        tracing::info!(instances = specs.instances.len(), "VRRP running");
        Ok(Some(VrrpRuntime {
            stop,
            threads: Mutex::new(threads),
            status,
        }))
    }

    /// Every instance's state, in start order.
    pub fn status(&self) -> Vec<VrrpView> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops every instance (masters send priority 0, VIPs are removed) and waits for them.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "rvsd".into())
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
}

/// A sync group or a lone instance, driven by one thread.
struct Unit {
    group: Option<VrrpSyncGroup>,
    members: Vec<Member>,
    machine: Machine,
    shared: Arc<Shared>,
    slot: usize,
}

impl Unit {
    fn build(
        group: Option<VrrpSyncGroup>,
        specs: Vec<VrrpInstance>,
        shared: &Arc<Shared>,
    ) -> anyhow::Result<Unit> {
        let now = Instant::now();
        let mut members = Vec::new();
        let mut instances = Vec::new();
        for spec in specs {
            let (mut io, primary) = MemberIo::open(&spec)?;
            let cfg = InstanceConfig::from_keepalived(&spec, primary)
                .with_context(|| format!("vrrp_instance {}", spec.name))?;
            if cfg.auth == Auth::Ah {
                let password = spec
                    .authentication
                    .as_ref()
                    .map(|a| a.auth_pass.as_str())
                    .unwrap_or_default();
                io.use_ah(AhSession::new(password))?;
            }
            instances.push(
                Instance::new(cfg, now).with_context(|| format!("vrrp_instance {}", spec.name))?,
            );
            let mut if_tracked: Vec<&Tracked> = spec.track_interface.iter().collect();
            let mut scripts: Vec<&Tracked> = spec.track_script.iter().collect();
            if let Some(g) = &group {
                if_tracked.extend(&g.track_interface);
                scripts.extend(&g.track_script);
            }
            let tracking =
                Tracking::new(&spec.interface, &if_tracked, &scripts, &shared.scripts, now);
            members.push(Member {
                spec,
                io,
                tracking,
                applied_delta: 0,
                applied_fault: false,
            });
        }
        let machine = match &group {
            Some(g) => Machine::Group(SyncGroup::new(&g.name, instances, now)),
            None => match instances.pop() {
                Some(i) => Machine::Single(Box::new(i)),
                None => anyhow::bail!("a vrrp unit without instances"),
            },
        };
        let slot = {
            let mut status = shared.status.lock().unwrap_or_else(|e| e.into_inner());
            let slot = status.len();
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
                });
            }
            slot
        };
        Ok(Unit {
            group,
            members,
            machine,
            shared: shared.clone(),
            slot,
        })
    }

    fn label(&self) -> String {
        match &self.group {
            Some(g) => g.name.clone(),
            None => self
                .members
                .first()
                .map(|m| m.spec.name.clone())
                .unwrap_or_default(),
        }
    }

    fn run(&mut self) {
        let mut buf = vec![0u8; 65536];
        loop {
            self.flush();
            self.publish();
            if self.shared.stop.load(Ordering::SeqCst) {
                self.machine.shutdown(Instant::now());
                self.flush();
                self.publish();
                for m in &mut self.members {
                    m.io.release_all();
                }
                return;
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
                let mut fds: Vec<PollFd> = self
                    .members
                    .iter()
                    .map(|m| PollFd::new(m.io.socket().as_fd(), PollFlags::POLLIN))
                    .collect();
                let _ = nix::poll::poll(&mut fds, PollTimeout::from(ms));
                fds.iter()
                    .map(|f| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
                    .collect()
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
                vrrp_notify::run_scripts(&g.notify, Scope::Group, &g.name, state, 0);
                if g.smtp_alert && state != NotifyState::Stop {
                    vrrp_notify::alert(
                        sh.mail.as_ref(),
                        &sh.router_id,
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
                vrrp_notify::run_scripts(&m.spec.notify, Scope::Instance, name, state, prio);
                if m.spec.smtp_alert && state != NotifyState::Stop {
                    vrrp_notify::alert(
                        sh.mail.as_ref(),
                        &sh.router_id,
                        Scope::Instance,
                        name,
                        state,
                    );
                }
                if sh.sync_instance.as_deref() == Some(name.as_str()) {
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
        for (i, _) in self.members.iter().enumerate() {
            let (Some(inst), Some(view)) =
                (self.machine.instance(i), status.get_mut(self.slot + i))
            else {
                continue;
            };
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
