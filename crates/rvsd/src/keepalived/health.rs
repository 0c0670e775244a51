//! The keepalived side of rvsd: applies the services of a keepalived.conf, runs their health
//! checkers (one [`Supervisor`] per real server, all sharing one concurrency bound, on the control
//! runtime) and turns checker events into table changes through the same engine calls the
//! control socket uses, then refreshes the kernel-bypass rules. Also reloads (only differences
//! are applied) and reports the status view.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rvs_api::{CheckerView, Command, DestView, HealthView, Reply, ServiceId};
use rvs_engine::Engine;
use rvs_health::{CheckId, HealthEvent, Supervisor, SupervisorEvent};
use rvs_io::NetState;
use rvs_keepalived::pool::{self, Member, Sorry};
use rvs_keepalived::reload;
use rvs_keepalived::{Lowered, LoweredService, RealServerChecks};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, Semaphore};

use super::alerts::{CheckerAlerts, Transition};
use super::checkers::{self, PlannedCheck};
use super::load;
use super::notify;
use crate::clock::Clock;
use crate::control::executor;
use crate::dataplane::bypass::Bypass;

/// Most checks running at the same time, over every real server.
pub const MAX_CONCURRENT_CHECKS: usize = 64;
/// How often drained real servers are looked at.
const DRAIN_TICK: Duration = Duration::from_secs(1);

/// What the health side needs from the daemon.
#[derive(Clone)]
pub struct Plumbing {
    /// The director core.
    pub engine: Arc<Engine>,
    /// The kernel-bypass rules that follow the services.
    pub bypass: Bypass,
    /// The kernel's addresses.
    pub net: Arc<NetState>,
    /// The daemon clock.
    pub clock: Clock,
}

struct Server {
    config: rvs_api::DestConfig,
    checks: RealServerChecks,
    planned: Vec<PlannedCheck>,
    supervisor: Option<Supervisor>,
    ids: Vec<CheckId>,
    up: Vec<bool>,
    weights: Vec<Option<u32>>,
    alive: bool,
}

impl Server {
    fn weight(&self) -> u32 {
        self.weights
            .iter()
            .rev()
            .find_map(|w| *w)
            .unwrap_or(self.checks.weight)
    }
}

struct Service {
    lowered: LoweredService,
    quorum_up: bool,
    servers: Vec<Server>,
    draining: Vec<SocketAddr>,
}

impl Service {
    fn id(&self) -> ServiceId {
        self.lowered.config.id
    }
}

struct State {
    services: Vec<Service>,
    next_id: u64,
    alerts: CheckerAlerts,
}

/// The running keepalived configuration.
pub struct Health {
    path: PathBuf,
    plumbing: Plumbing,
    handle: Handle,
    semaphore: Arc<Semaphore>,
    events: mpsc::UnboundedSender<SupervisorEvent>,
    state: Mutex<State>,
}

impl Health {
    /// Applies the configuration `loaded` (read from `path`) and starts its checkers on `handle`.
    pub fn start(
        path: PathBuf,
        loaded: Lowered,
        plumbing: Plumbing,
        handle: Handle,
    ) -> Arc<Health> {
        let (events, mut rx) = mpsc::unbounded_channel();
        let health = Arc::new(Health {
            path,
            plumbing,
            handle: handle.clone(),
            semaphore: Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS)),
            events,
            state: Mutex::new(State {
                services: Vec::new(),
                next_id: 1,
                alerts: CheckerAlerts::default(),
            }),
        });
        health.apply(loaded, true);
        let h = health.clone();
        handle.spawn(async move {
            let mut tick = tokio::time::interval(DRAIN_TICK);
            loop {
                tokio::select! {
                    ev = rx.recv() => {
                        let Some(ev) = ev else { return };
                        let h = h.clone();
                        let _ = tokio::task::spawn_blocking(move || h.on_event(ev)).await;
                    }
                    _ = tick.tick() => {
                        let h = h.clone();
                        let _ = tokio::task::spawn_blocking(move || h.drain_tick()).await;
                    }
                }
            }
        });
        health
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Re-reads the file and applies its virtual servers; on an error nothing changes and the
    /// report is returned. Returns the whole configuration for the VRRP runtime.
    pub fn reload(&self) -> Result<Lowered, load::LoadError> {
        let loaded = load::load(&self.path)?;
        self.apply(loaded.clone(), false);
        tracing::info!(file = %self.path.display(), "configuration reloaded");
        Ok(loaded)
    }

    /// Stops the checkers; with `omega`, runs the notify_down scripts of live servers and the
    /// quorum_down script of services with quorum, as keepalived does at shutdown.
    pub fn shutdown(&self) {
        let mut state = self.lock();
        for svc in &mut state.services {
            for s in &mut svc.servers {
                if let Some(sup) = s.supervisor.take() {
                    sup.stop();
                }
                if svc.lowered.policy.omega && s.alive {
                    if let Some(script) = &s.checks.policy.notify_down {
                        notify::run(&script.argv, "shutdown (omega): notify_down");
                    }
                }
            }
            if svc.lowered.policy.omega && svc.quorum_up {
                if let Some(script) = &svc.lowered.policy.quorum_down {
                    notify::run(&script.argv, "shutdown (omega): quorum_down");
                }
            }
        }
    }

    fn run(&self, cmd: Command) -> Reply {
        let p = &self.plumbing;
        executor::execute(&p.engine, &p.net.local_addrs(), p.clock.now(), cmd)
    }

    fn current_dests(&self, id: ServiceId) -> Option<Vec<DestView>> {
        match self.run(Command::ListServices { service: Some(id) }) {
            Reply::Services(mut v) if !v.is_empty() => Some(v.swap_remove(0).dests),
            _ => None,
        }
    }

    fn exec_logged(&self, cmd: Command) {
        let what = format!("{cmd:?}");
        if let Reply::Error(e) = self.run(cmd) {
            tracing::warn!("{what}: {}", e.message);
        } else {
            tracing::debug!("applied {what}");
        }
    }

    fn start_checks(&self, state: &mut State, server: &mut Server) {
        if let Some(sup) = server.supervisor.take() {
            sup.stop();
        }
        let jobs: Vec<rvs_health::CheckJob> = server
            .planned
            .iter()
            .map(|p| {
                let id = CheckId(state.next_id);
                state.next_id += 1;
                rvs_health::CheckJob {
                    id,
                    spec: p.spec.clone(),
                    schedule: p.schedule,
                }
            })
            .collect();
        server.ids = jobs.iter().map(|j| j.id).collect();
        server.up = jobs.iter().map(|j| !j.schedule.alpha).collect();
        server.weights = vec![None; jobs.len()];
        server.alive = server.up.iter().all(|u| *u);
        if jobs.is_empty() {
            server.supervisor = None;
            return;
        }
        let (sup, mut rx) = Supervisor::start_shared(&self.handle, self.semaphore.clone(), jobs);
        let tx = self.events.clone();
        self.handle.spawn(async move {
            while let Some(ev) = rx.recv().await {
                if tx.send(ev).is_err() {
                    return;
                }
            }
        });
        server.supervisor = Some(sup);
    }

    fn new_server(
        &self,
        state: &mut State,
        lowered: &Lowered,
        config: rvs_api::DestConfig,
        checks: RealServerChecks,
    ) -> Server {
        let planned = checkers::plan(lowered, &checks, &self.plumbing.net);
        let mut server = Server {
            config,
            checks,
            planned,
            supervisor: None,
            ids: Vec::new(),
            up: Vec::new(),
            weights: Vec::new(),
            alive: true,
        };
        self.start_checks(state, &mut server);
        server
    }

    /// Applies a configuration: the first one, or a reload (only the differences).
    fn apply(&self, lowered: Lowered, first: bool) {
        let mut state = self.lock();
        state.alerts = CheckerAlerts::of(&lowered.global);
        let mut old: Vec<Service> = std::mem::take(&mut state.services);
        let mut services = Vec::new();
        for ls in &lowered.services {
            let id = ls.config.id;
            let previous = old
                .iter()
                .position(|s| s.id() == id)
                .map(|i| old.swap_remove(i));
            let exists = self.current_dests(id).is_some();
            match &previous {
                Some(p) if p.lowered.config == ls.config && exists => {}
                _ if exists => self.exec_logged(Command::EditService(ls.config.clone())),
                _ => self.exec_logged(Command::AddService(ls.config.clone())),
            }
            let (mut old_servers, mut draining, old_quorum) = match previous {
                Some(p) => (p.servers, p.draining, Some(p.quorum_up)),
                None => (Vec::new(), Vec::new(), None),
            };
            let mut servers = Vec::new();
            for rc in lowered.checkers.iter().filter(|c| c.service == id) {
                let Some(config) = ls.dests.iter().find(|d| d.socket_addr() == rc.dest) else {
                    continue;
                };
                let kept = old_servers
                    .iter()
                    .position(|s| s.checks.dest == rc.dest)
                    .map(|i| old_servers.swap_remove(i));
                draining.retain(|a| *a != rc.dest);
                let server = match kept {
                    Some(mut s) => {
                        let planned = checkers::plan(&lowered, rc, &self.plumbing.net);
                        let restart = planned != s.planned;
                        s.checks = rc.clone();
                        s.config = config.clone();
                        s.planned = planned;
                        if restart {
                            tracing::info!(dest = %rc.dest, "checkers changed, restarting them");
                            self.start_checks(&mut state, &mut s);
                        }
                        s
                    }
                    None => self.new_server(&mut state, &lowered, config.clone(), rc.clone()),
                };
                servers.push(server);
            }
            for gone in old_servers {
                if let Some(sup) = gone.supervisor {
                    sup.stop();
                }
                draining.push(gone.checks.dest);
            }
            let live = pool::live_weight(&members(&servers));
            let quorum_up = old_quorum.unwrap_or_else(|| {
                pool::initial_quorum(live, ls.policy.quorum, ls.policy.hysteresis)
            });
            services.push(Service {
                lowered: ls.clone(),
                quorum_up,
                servers,
                draining,
            });
        }
        for gone in old {
            let id = gone.id();
            for s in gone.servers {
                if let Some(sup) = s.supervisor {
                    sup.stop();
                }
            }
            tracing::info!(service = ?id, "service removed by the new configuration");
            self.exec_logged(Command::DelService(id));
        }
        for svc in &mut services {
            self.reconcile(svc, !first);
        }
        state.services = services;
        drop(state);
        self.plumbing.bypass.sync(&self.plumbing.engine);
    }

    /// Brings the table of one service in line with its pool; with `scripts`, runs the
    /// quorum scripts when the quorum state changes.
    fn reconcile(&self, svc: &mut Service, scripts: bool) {
        let members = members(&svc.servers);
        let live = pool::live_weight(&members);
        let policy = &svc.lowered.policy;
        let up = pool::next_quorum(svc.quorum_up, live, policy.quorum, policy.hysteresis);
        if up != svc.quorum_up {
            tracing::info!(service = ?svc.id(), live, quorum = policy.quorum,
                "{} quorum", if up { "gained" } else { "lost" });
            let script = if up {
                &policy.quorum_up
            } else {
                &policy.quorum_down
            };
            if let (true, Some(s)) = (scripts, script) {
                notify::run(&s.argv, if up { "quorum_up" } else { "quorum_down" });
            }
            svc.quorum_up = up;
        }
        let sorry = policy.sorry_server.as_ref().map(|d| Sorry {
            dest: d.clone(),
            inhibit: policy.sorry_server_inhibit,
        });
        let wanted = pool::desired(&members, sorry.as_ref(), svc.quorum_up);
        let mut managed: Vec<SocketAddr> = svc.servers.iter().map(|s| s.checks.dest).collect();
        if let Some(s) = &sorry {
            managed.push(s.dest.socket_addr());
        }
        let current = self.current_dests(svc.id()).unwrap_or_default();
        let (commands, drained) =
            reload::dest_commands(svc.id(), &current, &wanted, &managed, &svc.draining);
        for cmd in commands {
            self.exec_logged(cmd);
        }
        svc.draining.retain(|a| !drained.contains(a));
    }

    fn on_event(&self, ev: SupervisorEvent) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut changed = false;
        for svc in &mut state.services {
            let Some((si, ci)) =
                svc.servers.iter().enumerate().find_map(|(si, s)| {
                    s.ids.iter().position(|id| *id == ev.id).map(|ci| (si, ci))
                })
            else {
                continue;
            };
            let server = &mut svc.servers[si];
            let was_up = server.up[ci];
            match ev.event {
                HealthEvent::Up => server.up[ci] = true,
                HealthEvent::Down => server.up[ci] = false,
                HealthEvent::WeightChanged(w) => server.weights[ci] = Some(w),
            }
            let alive = server.up.iter().all(|u| *u);
            if server.up[ci] != was_up {
                let kind = server.planned.get(ci).map_or("CHECK", |p| p.kind);
                let transition = Transition {
                    service: svc.lowered.config.id,
                    dest: server.checks.dest,
                    kind,
                    checker_up: server.up[ci],
                    alive_before: server.alive,
                    alive_after: alive,
                    detail: &ev.detail,
                };
                state
                    .alerts
                    .send(server.checks.policy.smtp_alert, &transition);
            }
            if alive != server.alive {
                server.alive = alive;
                tracing::info!(service = ?svc.lowered.config.id, dest = %server.checks.dest,
                    detail = %ev.detail, "real server {}", if alive { "up" } else { "down" });
                let script = if alive {
                    &server.checks.policy.notify_up
                } else {
                    &server.checks.policy.notify_down
                };
                if let Some(s) = script {
                    notify::run(&s.argv, if alive { "notify_up" } else { "notify_down" });
                }
            }
            self.reconcile(svc, true);
            changed = true;
            break;
        }
        drop(guard);
        if changed {
            self.plumbing.bypass.sync(&self.plumbing.engine);
        }
    }

    fn drain_tick(&self) {
        let mut state = self.lock();
        let mut changed = false;
        for svc in &mut state.services {
            if !svc.draining.is_empty() {
                self.reconcile(svc, true);
                changed = true;
            }
        }
        drop(state);
        if changed {
            self.plumbing.bypass.sync(&self.plumbing.engine);
        }
    }

    /// Whether each keepalived.conf service has quorum (what rvsd's BIRD announcements follow).
    pub fn quorums(&self) -> std::collections::HashMap<ServiceId, bool> {
        let state = self.lock();
        state
            .services
            .iter()
            .map(|svc| (svc.id(), svc.quorum_up))
            .collect()
    }

    /// The status view (`rvsadm --health`).
    pub fn status(&self) -> Vec<HealthView> {
        let state = self.lock();
        let now = SystemTime::now();
        let mut out = Vec::new();
        for svc in &state.services {
            let current = self.current_dests(svc.id()).unwrap_or_default();
            let sorry_active = !svc.quorum_up && svc.lowered.policy.sorry_server.is_some();
            for s in &svc.servers {
                let applied = current
                    .iter()
                    .find(|d| d.config.socket_addr() == s.checks.dest)
                    .map(|d| d.config.weight);
                let status = s
                    .supervisor
                    .as_ref()
                    .map(Supervisor::status)
                    .unwrap_or_default();
                let state = match applied {
                    None => "removed",
                    Some(0) => "inhibited",
                    Some(_) => "active",
                };
                out.push(HealthView {
                    service: svc.id(),
                    dest: s.checks.dest,
                    alive: s.alive,
                    configured_weight: s.checks.weight,
                    applied_weight: applied,
                    state: state.to_owned(),
                    checkers: s
                        .planned
                        .iter()
                        .zip(&s.ids)
                        .map(|(p, id)| {
                            let st = status.iter().find(|c| c.id == *id);
                            CheckerView {
                                kind: p.kind.to_owned(),
                                target: p.spec.conn.target().to_string(),
                                up: st.is_some_and(|c| c.up),
                                last_ok: st.and_then(|c| c.last_result.as_ref().map(|r| r.ok)),
                                detail: st
                                    .and_then(|c| c.last_result.as_ref().map(|r| r.detail.clone()))
                                    .unwrap_or_default(),
                                since_ms: st.and_then(|c| c.last_time).and_then(|t| {
                                    now.duration_since(t)
                                        .ok()
                                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                                }),
                                consecutive_failures: st.map_or(0, |c| c.consecutive_failures),
                                runs: st.map_or(0, |c| c.runs),
                                latency_us: st.and_then(|c| c.last_result.as_ref()).map(|r| {
                                    u64::try_from(r.elapsed.as_micros()).unwrap_or(u64::MAX)
                                }),
                            }
                        })
                        .collect(),
                });
            }
            let extra = svc.draining.iter().map(|a| (*a, "draining")).chain(
                svc.lowered.policy.sorry_server.as_ref().map(|d| {
                    (
                        d.socket_addr(),
                        if sorry_active {
                            "sorry"
                        } else {
                            "sorry-inhibited"
                        },
                    )
                }),
            );
            for (addr, what) in extra {
                let applied = current
                    .iter()
                    .find(|d| d.config.socket_addr() == addr)
                    .map(|d| d.config.weight);
                if what == "sorry-inhibited" && applied.is_none() {
                    continue;
                }
                out.push(HealthView {
                    service: svc.id(),
                    dest: addr,
                    alive: what == "sorry",
                    configured_weight: if what == "draining" { 0 } else { 1 },
                    applied_weight: applied,
                    state: what.to_owned(),
                    checkers: Vec::new(),
                });
            }
        }
        out
    }
}

fn members(servers: &[Server]) -> Vec<Member> {
    servers
        .iter()
        .map(|s| Member {
            dest: s.config.clone(),
            alive: s.alive,
            weight: s.weight(),
            inhibit: s.checks.policy.inhibit_on_failure,
        })
        .collect()
}
