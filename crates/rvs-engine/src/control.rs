//! The control plane: services, destinations, timeouts, counters and listings. Every change
//! builds a new configuration snapshot and publishes it; the data plane never waits for more
//! than a shard lock while connections are swept.

use core::hash::BuildHasher;
use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::Ordering;
use std::sync::Arc;

use crate::bounds::Counts;
use crate::config::{DestRt, ServiceRt, Snapshot, Staged};
use crate::conn::{Conn, F_V6};
use crate::defense::DefenseStatus;
use crate::engine::{Control, Engine};
use crate::error::*;
use crate::estimator::Estimator;
use crate::flow::to_ip;
use crate::persist::Template;
use crate::policy::Policy;
use crate::reasm::{ReasmHeld, ReasmStats};
use crate::sched::SchedState;
use crate::spec::protocol_of;
use crate::spec::*;
use crate::tcp_state::TimeoutTable;
use crate::verdict::*;
use crate::view::*;

/// Why a direct-routing destination cannot have its own port.
const PORT_MAPPING_WITH_DR: &str = "port mapping is not possible with direct routing (-g): the \
     real server receives the packet unchanged, so it must listen on the virtual service's port";
const PORT_MAPPING_WITH_LOCAL: &str = "port mapping is not possible with a local real server: the \
     director's own stack receives the client's packet unchanged, so it must listen on the virtual service's port";
const PORT_MAPPING_WITH_TUN: &str = "port mapping is not possible with tunnelling (-i): the \
     real server receives the client's packet unchanged, so it must listen on the virtual service's port";

/// Why a real server of the other address family cannot be added (ipvsadm: "Different address
/// family is allowed only for tunneling servers").
const MIXED_FAMILY: &str = "different address family is allowed only for tunnelling (-i) servers: \
     masquerading, direct routing and FULLNAT need the real server in the service's family";

/// Why a FULLNAT destination cannot be added.
const NO_LOCAL_POOL: &str = "FULLNAT needs a local address pool: set --laddr on the service";

impl Engine {
    /// Runs `f` with the configuration changes it makes published once, when it returns:
    /// additions of services and real servers (`-A`, `-a`, `-e`, `-d`) are staged and cost
    /// O(1) each instead of a snapshot each; any other change publishes what is staged first.
    /// The data plane sees the whole batch at once. Batches may nest and run concurrently;
    /// the last one to finish publishes.
    pub fn batch<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Ends the batch even if `f` panics.
        struct End<'a>(&'a Engine);
        impl Drop for End<'_> {
            fn drop(&mut self) {
                let mut ctl = self.0.control.lock();
                ctl.batch_depth = ctl.batch_depth.saturating_sub(1);
                if ctl.batch_depth == 0 {
                    self.0.flush_staged(&mut ctl);
                }
            }
        }
        {
            let mut ctl = self.control.lock();
            ctl.batch_depth += 1;
            ctl.bound_counts = None;
        }
        let _end = End(self);
        f()
    }

    /// Publishes the services a batch staged, if any.
    fn flush_staged(&self, ctl: &mut Control) {
        ctl.bound_counts = None;
        if let Some(staged) = ctl.staged.take() {
            let services = staged.into_services(&self.snapshot.load());
            self.publish(services, ctl);
        }
    }

    /// Publishes the current services (the staged ones, if a batch staged any) with the
    /// current timeouts, policy and mark rules.
    fn republish(&self, ctl: &mut Control) {
        ctl.bound_counts = None;
        let services = match ctl.staged.take() {
            Some(staged) => staged.into_services(&self.snapshot.load()),
            None => self.snapshot.load().services.clone(),
        };
        self.publish(services, ctl);
    }

    /// Sets the data plane's bounds on the configuration (`None`: unbounded): later additions
    /// beyond them are refused with [`EngineError::Capacity`]. What is configured already
    /// stays.
    pub fn set_config_bounds(&self, bounds: Option<crate::ConfigBounds>) {
        self.control.lock().bounds = bounds;
    }

    /// Runs `check` with the bounds, if any, and what the services as they stand (staged by
    /// a batch, or published) hold of what they count.
    fn check_bounds(
        &self,
        ctl: &mut Control,
        check: impl FnOnce(&crate::ConfigBounds, &Counts) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        if ctl.bounds.is_none() {
            return Ok(());
        }
        let held = if ctl.batch_depth > 0 {
            match ctl.bound_counts {
                Some(c) => c,
                None => {
                    let c = Counts::of(&self.staged(ctl).services);
                    ctl.bound_counts = Some(c);
                    c
                }
            }
        } else {
            Counts::of(&self.snapshot.load().services)
        };
        ctl.bounds
            .as_ref()
            .map_or(Ok(()), |bounds| check(bounds, &held))
    }

    /// The staged services of the open batch, started from the published ones.
    fn staged<'c>(&self, ctl: &'c mut Control) -> &'c mut Staged {
        ctl.staged.get_or_insert_with(|| {
            let snap = self.snapshot.load();
            Staged {
                services: snap.services.clone(),
                index: snap.index.clone(),
                dests_changed: Vec::new(),
            }
        })
    }

    fn publish(&self, services: Vec<Arc<ServiceRt>>, ctl: &Control) {
        self.snapshot.store(Arc::new(Snapshot::new(
            services,
            ctl.retired.values().cloned().collect(),
            TimeoutTable::new(ctl.timeouts),
            ctl.policy,
            ctl.mark_rules.clone(),
        )));
    }

    fn check_service_spec(spec: &ServiceSpec) -> Result<(), EngineError> {
        // ipvsadm: "Zero port specified for non-persistent service".
        if spec.key.port == 0 && spec.key.fwmark == 0 && spec.persistence.is_none() {
            return Err(EngineError::InvalidArgument(
                "Zero port specified for non-persistent service".to_string(),
            ));
        }
        if let Some(p) = &spec.persistence {
            if p.netmask.is_ipv4() != spec.key.addr.is_ipv4() {
                return Err(EngineError::InvalidArgument(
                    "the persistence netmask is not of the service's address family".to_string(),
                ));
            }
        }
        if let Some(a) = spec
            .local_addrs
            .iter()
            .find(|a| a.is_ipv4() != spec.key.addr.is_ipv4())
        {
            return Err(EngineError::InvalidArgument(format!(
                "local address {a} is not of the service's address family"
            )));
        }
        if let Some(a) = spec.local_addrs.iter().find(|a| a.is_unspecified()) {
            return Err(EngineError::InvalidArgument(format!(
                "local address {a} is not usable"
            )));
        }
        if spec.proxy_protocol.is_some() && spec.key.proto != Protocol::Tcp {
            return Err(EngineError::InvalidArgument(
                "the PROXY protocol (--proxy-protocol) needs a TCP service".to_string(),
            ));
        }
        Ok(())
    }

    /// Adds a virtual service (`ipvsadm -A`).
    pub fn add_service(&self, spec: ServiceSpec) -> Result<(), EngineError> {
        Self::check_service_spec(&spec)?;
        let mut ctl = self.control.lock();
        let exists = if ctl.batch_depth > 0 {
            self.staged(&mut ctl).index.contains_key(&spec.key)
        } else {
            self.snapshot.load().service(&spec.key).is_some()
        };
        if exists {
            return Err(EngineError::ServiceExists);
        }
        self.check_bounds(&mut ctl, |b, held| {
            b.check_service(held, &spec.key, spec.scheduler)
        })?;
        if let Some(c) = &mut ctl.bound_counts {
            c.add_service(&spec.key, spec.scheduler);
        }
        let id = match ctl.retired.remove(&spec.key) {
            // IPVS finds the connections of a service added again through their real servers;
            // here they name it by id. Its counters start from zero, as a new service's.
            Some(old) => {
                self.zero_ids(&[old.service.id]);
                old.service.id
            }
            None => {
                ctl.next_id += 1;
                ctl.next_id - 1
            }
        };
        let sched = SchedState::new::<Arc<DestRt>>(
            spec.scheduler,
            spec.sched_flags,
            self.mh_table_size,
            self.hasher.hash_one(id),
            &[],
        );
        let service = Arc::new(ServiceRt {
            id,
            spec,
            dests: Vec::new(),
            sched,
            stray_replies: Arc::default(),
        });
        ctl.estimators.insert(id, Estimator::default());
        if ctl.batch_depth > 0 {
            let staged = self.staged(&mut ctl);
            staged.index.insert(service.spec.key, staged.services.len());
            staged.services.push(service);
        } else {
            let mut services = self.snapshot.load().services.clone();
            services.push(service);
            self.publish(services, &ctl);
        }
        Ok(())
    }

    /// Edits a virtual service's scheduler and flags (`ipvsadm -E`).
    pub fn edit_service(&self, spec: ServiceSpec) -> Result<(), EngineError> {
        Self::check_service_spec(&spec)?;
        let mut ctl = self.control.lock();
        self.flush_staged(&mut ctl);
        let snap = self.snapshot.load();
        let pos = *snap.index.get(&spec.key).ok_or(EngineError::NoService)?;
        let old = &snap.services[pos];
        if !crate::ConfigBounds::has_table(old.spec.scheduler) {
            self.check_bounds(&mut ctl, |b, held| {
                b.check_table(held, &spec.key, spec.scheduler)
            })?;
        }
        if spec.local_addrs.is_empty()
            && old
                .dests
                .iter()
                .any(|d| d.method() == ForwardMethod::FullNat)
        {
            return Err(EngineError::InvalidArgument(NO_LOCAL_POOL.to_string()));
        }
        let sched = if old.sched.kind() == spec.scheduler {
            old.sched.with_flags(spec.sched_flags)
        } else {
            SchedState::new(
                spec.scheduler,
                spec.sched_flags,
                self.mh_table_size,
                self.hasher.hash_one(old.id),
                &old.dests,
            )
        };
        let mut services = snap.services.clone();
        services[pos] = Arc::new(ServiceRt {
            id: old.id,
            spec,
            dests: old.dests.clone(),
            sched,
            stray_replies: old.stray_replies.clone(),
        });
        self.publish(services, &ctl);
        Ok(())
    }

    /// Deletes a virtual service (`ipvsadm -D`). As IPVS, its connections stay until they
    /// time out, their real servers unavailable ([`crate::retired`]).
    pub fn del_service(&self, key: &ServiceKey) -> Result<(), EngineError> {
        let mut ctl = self.control.lock();
        self.flush_staged(&mut ctl);
        let snap = self.snapshot.load();
        let pos = *snap.index.get(key).ok_or(EngineError::NoService)?;
        let mut services = snap.services.clone();
        let gone = services.remove(pos);
        Self::retire(&mut ctl, gone);
        self.publish(services, &ctl);
        Ok(())
    }

    /// Removes every service and mark rule (`ipvsadm -C`). As IPVS, connections stay until
    /// they time out, their real servers unavailable ([`crate::retired`]).
    pub fn clear(&self) {
        let mut ctl = self.control.lock();
        // An open batch's services too: one added again may hold a retired one's id.
        let services = match ctl.staged.take() {
            Some(staged) => staged.services,
            None => self.snapshot.load().services.clone(),
        };
        for gone in services {
            Self::retire(&mut ctl, gone);
        }
        ctl.mark_rules.clear();
        self.publish(Vec::new(), &ctl);
    }

    /// Takes a deleted service's real servers out of service (into the trash, for those that
    /// connections hold) and keeps the service among the retired, with the mark rules that
    /// classify its traffic now, while any of its servers is held.
    fn retire(ctl: &mut Control, gone: Arc<ServiceRt>) {
        let key = gone.spec.key;
        ctl.estimators.remove(&gone.id);
        for d in &gone.dests {
            d.available.store(false, Ordering::Relaxed);
            ctl.estimators.remove(&d.id);
            ctl.trash.insert((key, d.addr, d.port), Arc::downgrade(d));
        }
        let marks = if key.fwmark == 0 {
            Vec::new()
        } else {
            ctl.mark_rules
                .iter()
                .filter(|r| r.marks_for(&key))
                .copied()
                .collect()
        };
        ctl.retired.insert(
            key,
            crate::config::RetiredService {
                service: gone,
                marks,
            },
        );
        Self::prune_retired(ctl);
    }

    /// Forgets the removed real servers no connection or template holds any more, and the
    /// retired services left without one: neither among their servers when they went nor
    /// removed from them earlier (`-d`, still in the trash). Whether a retired service went.
    fn prune_retired(ctl: &mut Control) -> bool {
        ctl.trash
            .retain(|_, w| w.upgrade().is_some_and(|d| d.held()));
        let before = ctl.retired.len();
        let in_trash: std::collections::HashSet<ServiceKey> =
            ctl.trash.keys().map(|(k, _, _)| *k).collect();
        ctl.retired
            .retain(|key, r| r.service.dests.iter().any(|d| d.held()) || in_trash.contains(key));
        ctl.retired.len() != before
    }

    /// Zeroes the traffic counters of `ids` in every shard.
    fn zero_ids(&self, ids: &[u32]) {
        for s in self.shards.iter() {
            let mut g = s.shard.lock();
            for &id in ids {
                *g.stats_mut(id) = Stats::default();
            }
        }
    }

    fn check_dest_spec(svc: &ServiceSpec, spec: &mut DestSpec) -> Result<(), EngineError> {
        match spec.method {
            ForwardMethod::Masq
            | ForwardMethod::Route
            | ForwardMethod::Tunnel
            | ForwardMethod::Local => {}
            ForwardMethod::FullNat => {
                if svc.local_addrs.is_empty() {
                    return Err(EngineError::InvalidArgument(NO_LOCAL_POOL.to_string()));
                }
            }
        }
        // `ip_vs_add_dest` / `ip_vs_edit_dest`: only a tunnel can carry one family inside the
        // other (IPv4-in-IPv6, IPv6-in-IPv4); every other method rewrites or reuses the packet.
        if spec.addr.is_ipv4() != svc.key.addr.is_ipv4() && spec.method != ForwardMethod::Tunnel {
            return Err(EngineError::InvalidArgument(MIXED_FAMILY.to_string()));
        }
        // The methods that hand the real server the client's packet unchanged cannot map ports.
        let no_port_mapping = match spec.method {
            ForwardMethod::Route => Some(PORT_MAPPING_WITH_DR),
            ForwardMethod::Local => Some(PORT_MAPPING_WITH_LOCAL),
            ForwardMethod::Tunnel => Some(PORT_MAPPING_WITH_TUN),
            ForwardMethod::Masq | ForwardMethod::FullNat => None,
        };
        if let Some(why) = no_port_mapping {
            if svc.key.port != 0 && spec.port != 0 && spec.port != svc.key.port {
                return Err(EngineError::InvalidArgument(why.to_string()));
            }
        }
        if spec.method == ForwardMethod::Tunnel
            && spec.tunnel.kind == TunnelKind::Gue
            && spec.tunnel.port == 0
        {
            return Err(EngineError::InvalidArgument(
                "the gue tunnel type needs a destination port (--tun-port)".to_string(),
            ));
        }
        if spec.weight > i32::MAX as u32 {
            return Err(EngineError::InvalidArgument(format!(
                "weight {} is too large",
                spec.weight
            )));
        }
        if spec.u_threshold != 0 && spec.l_threshold > spec.u_threshold {
            return Err(EngineError::InvalidArgument(
                "lower threshold is higher than upper threshold".to_string(),
            ));
        }
        if spec.port == 0 {
            spec.port = svc.key.port;
        }
        Ok(())
    }

    fn with_service(
        &self,
        key: &ServiceKey,
        change: impl FnOnce(&mut Control, &ServiceRt) -> Result<Vec<Arc<DestRt>>, EngineError>,
    ) -> Result<(), EngineError> {
        let mut ctl = self.control.lock();
        if ctl.batch_depth > 0 {
            let (pos, old) = {
                let staged = self.staged(&mut ctl);
                let pos = *staged.index.get(key).ok_or(EngineError::NoService)?;
                (pos, staged.services[pos].clone())
            };
            let dests = change(&mut ctl, &old)?;
            let staged = self.staged(&mut ctl);
            staged.dests_changed.push(pos);
            staged.services[pos] = Arc::new(old.staged(dests));
            return Ok(());
        }
        let snap = self.snapshot.load();
        let pos = *snap.index.get(key).ok_or(EngineError::NoService)?;
        let old = &snap.services[pos];
        let dests = change(&mut ctl, old)?;
        let mut services = snap.services.clone();
        services[pos] = Arc::new(old.with_dests(&old.sched, dests));
        self.publish(services, &ctl);
        Ok(())
    }

    /// Adds a real server to a service (`ipvsadm -a`).
    pub fn add_dest(&self, svc: &ServiceKey, mut spec: DestSpec) -> Result<(), EngineError> {
        self.with_service(svc, |ctl, s| {
            Self::check_dest_spec(&s.spec, &mut spec)?;
            if s.dests
                .iter()
                .any(|d| d.addr == spec.addr && d.port == spec.port)
            {
                return Err(EngineError::DestExists);
            }
            self.check_bounds(ctl, |b, held| b.check_dest(held, svc))?;
            if let Some(c) = &mut ctl.bound_counts {
                c.add_dest(svc);
            }
            let mut dests = s.dests.clone();
            // IPVS's ip_vs_trash_get_dest: the same server removed earlier and still held by
            // connections comes back as it was, so those connections forward again.
            let revived = ctl
                .trash
                .remove(&(s.spec.key, spec.addr, spec.port))
                .and_then(|w| w.upgrade())
                .filter(|d| d.held());
            let dest = match revived {
                Some(d) => {
                    d.update(&spec);
                    d.available.store(true, Ordering::Relaxed);
                    d
                }
                None => {
                    let id = ctl.next_id;
                    ctl.next_id += 1;
                    Arc::new(DestRt::new(id, &spec))
                }
            };
            ctl.estimators.insert(dest.id, Estimator::default());
            dests.push(dest);
            Ok(dests)
        })
    }

    /// Edits a real server's forwarding method, weight and thresholds (`ipvsadm -e`). Existing
    /// connections keep the forwarding method they were created with.
    pub fn edit_dest(&self, svc: &ServiceKey, mut spec: DestSpec) -> Result<(), EngineError> {
        self.with_service(svc, |_, s| {
            Self::check_dest_spec(&s.spec, &mut spec)?;
            let d = s
                .dests
                .iter()
                .find(|d| d.addr == spec.addr && d.port == spec.port)
                .ok_or(EngineError::NoDest)?;
            d.update(&spec);
            Ok(s.dests.clone())
        })
    }

    /// Removes a real server (`ipvsadm -d`). Its connections keep forwarding until they expire.
    pub fn del_dest(&self, svc: &ServiceKey, addr: IpAddr, port: u16) -> Result<(), EngineError> {
        self.with_service(svc, |ctl, s| {
            ctl.bound_counts = None;
            let port = if port == 0 { s.spec.key.port } else { port };
            let pos = s
                .dests
                .iter()
                .position(|d| d.addr == addr && d.port == port)
                .ok_or(EngineError::NoDest)?;
            let mut dests = s.dests.clone();
            let gone = dests.remove(pos);
            gone.available.store(false, Ordering::Relaxed);
            ctl.estimators.remove(&gone.id);
            ctl.trash
                .retain(|_, w| w.upgrade().is_some_and(|d| d.held()));
            ctl.trash
                .insert((s.spec.key, addr, port), Arc::downgrade(&gone));
            Ok(dests)
        })
    }

    /// Zeroes counters and rates of one service (and its destinations) or of all (`ipvsadm -Z`).
    pub fn zero(&self, svc: Option<&ServiceKey>) -> Result<(), EngineError> {
        let mut ctl = self.control.lock();
        self.flush_staged(&mut ctl);
        let snap = self.snapshot.load();
        let services: Vec<&Arc<ServiceRt>> = match svc {
            Some(k) => vec![snap.service(k).ok_or(EngineError::NoService)?],
            None => snap.services.iter().collect(),
        };
        let ids: Vec<u32> = services
            .iter()
            .flat_map(|s| core::iter::once(s.id).chain(s.dests.iter().map(|d| d.id)))
            .collect();
        self.zero_ids(&ids);
        for id in ids {
            if let Some(e) = ctl.estimators.get_mut(&id) {
                e.reset(&Stats::default());
            }
        }
        Ok(())
    }

    /// Sets protocol timeouts (`ipvsadm --set tcp tcpfin udp`); 0 leaves a value unchanged.
    /// Connections pick the new values up at their next packet.
    pub fn set_timeouts(&self, t: TimeoutUpdate) {
        let mut ctl = self.control.lock();
        if t.tcp != 0 {
            ctl.timeouts.tcp = t.tcp;
        }
        if t.tcpfin != 0 {
            ctl.timeouts.tcpfin = t.tcpfin;
        }
        if t.udp != 0 {
            ctl.timeouts.udp = t.udp;
        }
        self.republish(&mut ctl);
    }

    /// Current protocol timeouts in seconds.
    pub fn timeouts(&self) -> Timeouts {
        self.control.lock().timeouts
    }

    /// Counters per service/destination id, summed over the shards.
    fn gather_stats(&self) -> Vec<Stats> {
        let mut sum: Vec<Stats> = Vec::new();
        for s in self.shards.iter() {
            let g = s.shard.lock();
            if g.stats.len() > sum.len() {
                sum.resize(g.stats.len(), Stats::default());
            }
            for (acc, st) in sum.iter_mut().zip(g.stats.iter()) {
                acc.add(st);
            }
        }
        sum
    }

    /// Services with configuration, connection counts, counters and rates.
    pub fn services(&self, _now: Millis) -> Vec<ServiceStatus> {
        let mut walk = self.service_walk();
        self.services_page(&mut walk, usize::MAX)
    }

    /// Starts a listing of the current services in bounded pages ([`Engine::services_page`]):
    /// every page comes from the configuration published now, and the counters are those of
    /// now, so a listing is consistent whatever changes while it is written out.
    pub fn service_walk(&self) -> ServiceWalk {
        ServiceWalk {
            snap: self.snapshot.load_full(),
            stats: self.gather_stats(),
            next: 0,
        }
    }

    /// The next at most `max` services of `walk` (empty once every service was listed).
    pub fn services_page(&self, walk: &mut ServiceWalk, max: usize) -> Vec<ServiceStatus> {
        let ctl = self.control.lock();
        let get = |id: u32| walk.stats.get(id as usize).copied().unwrap_or_default();
        let rates = |id: u32| {
            ctl.estimators
                .get(&id)
                .map(Estimator::rates)
                .unwrap_or_default()
        };
        let start = walk.next.min(walk.snap.services.len());
        let end = start.saturating_add(max).min(walk.snap.services.len());
        walk.next = end;
        walk.snap.services[start..end]
            .iter()
            .map(|s| ServiceStatus {
                spec: s.spec.clone(),
                stats: get(s.id),
                rates: rates(s.id),
                dests: s
                    .dests
                    .iter()
                    .map(|d| DestStatus {
                        spec: d.spec(),
                        active_conns: d.active.load(Ordering::Relaxed),
                        inactive_conns: d.inactive.load(Ordering::Relaxed),
                        persist_conns: d.persist.load(Ordering::Relaxed),
                        stats: get(d.id),
                        rates: rates(d.id),
                    })
                    .collect(),
            })
            .collect()
    }

    /// FULLNAT local ports currently held by connections.
    pub fn local_ports_in_use(&self) -> u64 {
        self.local_ports.total_in_use()
    }

    /// All connections (`ipvsadm -Lnc`), then the persistence templates.
    pub fn connections(&self, now: Millis) -> Vec<ConnStatus> {
        let mut out = Vec::new();
        let mut walk = Some(ConnWalk::default());
        while let Some(at) = walk {
            let (page, next) = self.connections_page(now, at, usize::MAX);
            out.extend(page);
            walk = next;
        }
        out
    }

    /// One bounded step of a walk over the connection table (`ipvsadm -Lnc` of any size):
    /// the connections in at most `max_slots` slots of one shard from `at`, or the templates of
    /// one template shard once the connections are done. Each step holds one shard lock for at
    /// most `max_slots` slots, so forwarding is never held off longer than that. Returns the
    /// page and where the next step starts (`None`: the walk is complete). Connections added or
    /// removed during a walk may or may not be listed, as with `/proc/net/ip_vs_conn`.
    pub fn connections_page(
        &self,
        now: Millis,
        at: ConnWalk,
        max_slots: usize,
    ) -> (Vec<ConnStatus>, Option<ConnWalk>) {
        let shards = self.shards.len();
        if at.shard < shards {
            let g = self.shards[at.shard].shard.lock();
            let end = at.slot.saturating_add(max_slots.max(1));
            let page: Vec<ConnStatus> = g
                .iter_slots(at.slot..end)
                .filter_map(|c| conn_status(c, now))
                .collect();
            let next = if end < g.slots() {
                ConnWalk {
                    shard: at.shard,
                    slot: end,
                }
            } else {
                ConnWalk {
                    shard: at.shard + 1,
                    slot: 0,
                }
            };
            return (page, Some(next));
        }
        let index = at.shard - shards;
        if index >= self.templates.shard_count() {
            return (Vec::new(), None);
        }
        let page = self
            .templates
            .in_shard(index)
            .iter()
            .filter_map(|t| template_status(t, now))
            .collect();
        let next = ConnWalk {
            shard: at.shard + 1,
            slot: 0,
        };
        (page, Some(next))
    }

    /// Adds a classifier rule (after the existing ones).
    pub fn add_mark_rule(&self, rule: MarkRule) -> Result<(), EngineError> {
        let max = if rule.addr.is_ipv4() { 32 } else { 128 };
        if rule.prefix_len > max || rule.ports.0 > rule.ports.1 || rule.mark == 0 {
            return Err(EngineError::InvalidArgument(
                "a mark rule needs a prefix of its family, first port <= last port and a mark \
                 other than 0"
                    .to_string(),
            ));
        }
        let mut ctl = self.control.lock();
        if ctl.mark_rules.contains(&rule) {
            return Err(EngineError::InvalidArgument(
                "mark rule already exists".to_string(),
            ));
        }
        ctl.mark_rules.push(rule);
        self.republish(&mut ctl);
        Ok(())
    }

    /// Removes a classifier rule.
    pub fn del_mark_rule(&self, rule: &MarkRule) -> Result<(), EngineError> {
        let mut ctl = self.control.lock();
        let pos = ctl
            .mark_rules
            .iter()
            .position(|r| r == rule)
            .ok_or_else(|| EngineError::InvalidArgument("no such mark rule".to_string()))?;
        ctl.mark_rules.remove(pos);
        self.republish(&mut ctl);
        Ok(())
    }

    /// The classifier rules in evaluation order.
    pub fn mark_rules(&self) -> Vec<MarkRule> {
        self.control.lock().mark_rules.clone()
    }

    /// Number of persistence templates.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// The policy switches in force; the defence switches as they now read (an automatic one
    /// reads 2 while memory is short, as its sysctl does).
    pub fn policy(&self) -> Policy {
        let mut p = self.control.lock().policy;
        let modes = self.defense.modes();
        p.drop_entry = modes.drop_entry;
        p.drop_packet = modes.drop_packet;
        p.secure_tcp = modes.secure_tcp;
        p
    }

    /// Replaces the policy switches; packets see the new values at once.
    pub fn set_policy(&self, policy: Policy) {
        let mut ctl = self.control.lock();
        ctl.policy = policy;
        self.republish(&mut ctl);
        self.defense.set_modes(&policy);
    }

    /// One step of IPVS's defence (its once-a-second `defense_work_handler`):
    /// `available_pages` is the memory left in 4 KiB pages, compared with `amemthresh`. Turns
    /// the automatic switches on or off, and while `drop_entry` is on removes part of 1/32 of
    /// the connection table (see `crate::defense`).
    pub fn update_defense(&self, now: Millis, available_pages: u64) -> DefenseStatus {
        let policy = self.control.lock().policy;
        if self.defense.update(&policy, available_pages) {
            self.drop_entries(now);
        }
        self.defense.status()
    }

    /// Whether `src` is a NAT real server of a service of protocol number `proto` (a
    /// firewall-mark service's: of its mark rules' protocols), whose fragments the director
    /// reassembles. rvsd's kernel bypass withholds them all from the kernel, so a datagram of
    /// theirs the engine leaves to the kernel must be handed to it.
    pub fn is_nat_source(&self, src: IpAddr, proto: u8) -> bool {
        self.snapshot
            .load()
            .is_nat_source(&crate::flow::to16(src), proto)
    }

    /// Services that packets came *from*: their address and port as a source, which a real
    /// server only uses when it replies through the director (a direct-routing or tunnel one
    /// whose default gateway is the director), with how many such packets were seen.
    pub fn stray_replies(&self) -> Vec<(ServiceKey, u64)> {
        self.snapshot
            .load()
            .services
            .iter()
            .map(|s| (s.spec.key, s.stray_replies.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Adds `packets` another plane saw from service `service`'s own address and port
    /// (virtual address, port, protocol number) to its [`Engine::stray_replies`].
    pub fn add_stray_replies(&self, service: (IpAddr, u16, u8), packets: u64) {
        let key = crate::config::WireKey {
            addr: &crate::flow::to16(service.0),
            port: service.1,
            proto: service.2,
        };
        if let Some(svc) = self.snapshot.load().service_at(&key) {
            svc.stray_replies.fetch_add(packets, Ordering::Relaxed);
        }
    }

    /// NAT real servers that were scheduled connections from their own address (they answer
    /// such a client, themselves, without the director: seed 002's loop), with the count.
    pub fn self_scheduled(&self) -> Vec<(ServiceKey, IpAddr, u16, u64)> {
        let snap = self.snapshot.load();
        let mut out = Vec::new();
        for s in snap.services.iter() {
            for d in &s.dests {
                let n = d.self_scheduled.load(Ordering::Relaxed);
                if n > 0 {
                    out.push((s.spec.key, d.addr, d.port, n));
                }
            }
        }
        out
    }

    /// What the defence decided last and has done so far.
    pub fn defense_status(&self) -> DefenseStatus {
        self.defense.status()
    }

    /// How many more connections the table takes before `max_connections` (`None`: no bound).
    pub fn table_room(&self) -> Option<usize> {
        if self.shard_cap == usize::MAX {
            return None;
        }
        let used: usize = self.shards.iter().map(|s| s.shard.lock().len()).sum();
        Some((self.shard_cap * self.shards.len()).saturating_sub(used))
    }

    /// `ip_vs_random_dropentry`: visits 1/32 of each shard's slots from a random place and
    /// removes the connections `drop_entry` may take: half-open TCP (SYN_RECV, SYNACK) and
    /// SCTP (INIT1, INIT) ones, and established or connectionless ones that `todrop_entry`
    /// picks; with each, its template if that controls nothing else.
    fn drop_entries(&self, now: Millis) {
        let timeouts = self.snapshot.load().timeouts;
        let start = self.defense.visit_start();
        let mut dropped = 0;
        for s in self.shards.iter() {
            let mut shard = s.shard.lock();
            let slots = shard.slots();
            if slots == 0 {
                continue;
            }
            let span = slots.div_ceil(crate::defense::DROP_ENTRY_FRACTION);
            let first = ((start * slots as f64) as usize).min(slots - 1);
            let mut doomed = Vec::new();
            for i in 0..span {
                let slot = (first + i) % slots;
                let Some(c) = shard.get(slot as u32) else {
                    continue;
                };
                let state = ConnState::from_u8(c.state);
                let idle = now
                    .0
                    .saturating_sub(c.expires.saturating_sub(timeouts.of(state)));
                let goes = match state {
                    ConnState::SynRecv
                    | ConnState::SynAck
                    | ConnState::SctpInit1
                    | ConnState::SctpInit => true,
                    ConnState::Established | ConnState::SctpEstablished | ConnState::Udp => {
                        self.defense.takes_entry(idle, c.sync_pkts)
                    }
                    _ => false,
                };
                if goes {
                    doomed.push(slot as u32);
                }
            }
            for slot in doomed {
                if let Some(gone) = shard.remove(slot, &self.hasher) {
                    gone.release();
                    if let Some(t) = gone.ext.as_ref().and_then(|x| x.control.as_ref()) {
                        self.templates.remove_if_idle(t, now.0);
                    }
                    dropped += 1;
                }
            }
        }
        self.defense.count_entries(dropped);
    }

    /// Removes connections whose timer ran out, fixing ActiveConn/InActConn (and templates,
    /// lblc/lblcr entries and incomplete datagrams whose time ran out). True when that let a
    /// deleted service go for good ([`crate::retired`]): the configuration snapshot changed, and
    /// what follows it (rvsd's kernel bypass) should be brought up to date.
    pub fn expire(&self, now: Millis) -> bool {
        for s in self.shards.iter() {
            let gone = s
                .shard
                .lock()
                .remove_where(&self.hasher, |c| c.expires <= now.0);
            for c in gone {
                c.release();
            }
        }
        self.templates.expire(now.0);
        self.reasm.lock().expire(now.0);
        let retired_gone = {
            let mut ctl = self.control.lock();
            // Inside a batch, publishing would show its staged changes early: the next pass.
            let gone =
                ctl.batch_depth == 0 && !ctl.retired.is_empty() && Self::prune_retired(&mut ctl);
            if gone {
                self.republish(&mut ctl);
            }
            gone
        };
        // lblc/lblcr tables age on the same clock.
        for s in self.snapshot.load().services.iter() {
            if matches!(s.spec.scheduler, SchedulerKind::Lblc | SchedulerKind::Lblcr) {
                s.sched.expire(now.0);
            }
        }
        retired_gone
    }

    /// One step of IPVS's rate estimator; call every 2 seconds.
    pub fn estimate_rates(&self, _now: Millis) {
        let stats = self.gather_stats();
        let mut ctl = self.control.lock();
        for (&id, e) in ctl.estimators.iter_mut() {
            e.update(&stats.get(id as usize).copied().unwrap_or_default());
        }
    }

    /// Dropped-frame counters.
    pub fn drop_counters(&self) -> DropCounters {
        let mut d = DropCounters::default();
        for (c, a) in d.counts.iter_mut().zip(self.drops.iter()) {
            *c = a.load(Ordering::Relaxed);
        }
        d
    }

    /// IP reassembly: what it has done, and what it holds now (datagrams whose time ran out
    /// are dropped by [`Engine::expire`] and by the next fragment).
    pub fn reassembly(&self) -> (ReasmStats, ReasmHeld) {
        let r = self.reasm.lock();
        (r.stats(), r.held())
    }

    /// The first fragments of the datagrams whose reassembly timed out since the last call, for
    /// the data plane to answer each with an ICMP "fragment reassembly time exceeded"
    /// ([`crate::tunnel::reassembly_timeout_from`]), as the kernel's defragmentation does.
    pub fn reassembly_timeouts(&self) -> Vec<crate::reasm::TimedOut> {
        let firsts = self.reasm.lock().take_timed_out();
        if firsts.is_empty() {
            return Vec::new();
        }
        let snap = self.snapshot.load();
        firsts
            .into_iter()
            .map(|packet| {
                let dst = match packet.first().map(|b| b >> 4) {
                    Some(6) => packet
                        .get(24..40)
                        .and_then(|a| <[u8; 16]>::try_from(a).ok())
                        .map(IpAddr::from),
                    _ => packet
                        .get(16..20)
                        .and_then(|a| <[u8; 4]>::try_from(a).ok())
                        .map(IpAddr::from),
                };
                let to_virtual = dst.is_some_and(|d| {
                    snap.services
                        .iter()
                        .any(|s| s.spec.key.fwmark == 0 && s.spec.key.addr == d)
                });
                crate::reasm::TimedOut { packet, to_virtual }
            })
            .collect()
    }

    /// What the SYN proxy did.
    pub fn syn_proxy_counters(&self) -> crate::synproxy::SynProxyCounters {
        self.synproxy.read()
    }

    /// Number of connections in the table.
    pub fn connection_count(&self) -> usize {
        self.shards.iter().map(|s| s.shard.lock().len()).sum()
    }

    /// Bytes held by the connection table (slabs, indexes, side records, counters), from their
    /// capacities.
    pub fn table_memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.shard.lock().memory_bytes())
            .sum()
    }
}

/// Where a walk of the connection table stands: see [`Engine::connections_page`]. The default
/// value starts at the beginning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnWalk {
    /// Connection shards first, then template shards.
    shard: usize,
    /// The next slot of a connection shard.
    slot: usize,
}

/// A connection as listings show it (`None` for a protocol listings do not know).
fn conn_status(c: &Conn, now: Millis) -> Option<ConnStatus> {
    let v6 = c.flags & F_V6 != 0;
    Some(ConnStatus {
        proto: protocol_of(c.proto)?,
        client: SocketAddr::new(to_ip(&c.client, v6), c.cport),
        virtual_addr: SocketAddr::new(to_ip(&c.vaddr, v6), c.vport),
        dest: SocketAddr::new(c.dest.addr, c.dport),
        state: ConnState::from_u8(c.state),
        expires_in: Millis(c.expires.saturating_sub(now.0)),
        template: false,
        fwmark_template: false,
        pe: None,
    })
}

/// A template as `/proc/net/ip_vs_conn` shows it: the masked client with port 0.
fn template_status(t: &Template, now: Millis) -> Option<ConnStatus> {
    let k = &t.key;
    let fwmark_template = k.proto == 0;
    Some(ConnStatus {
        proto: if fwmark_template {
            Protocol::Tcp
        } else {
            protocol_of(k.proto)?
        },
        client: SocketAddr::new(to_ip(&k.client, k.v6), 0),
        virtual_addr: SocketAddr::new(to_ip(&k.vaddr, k.v6), k.vport),
        dest: SocketAddr::new(t.dest.addr, t.dport),
        state: ConnState::None,
        expires_in: Millis(t.expires().saturating_sub(now.0)),
        template: true,
        fwmark_template,
        // Only the SIP engine makes templates with data.
        pe: k
            .pe_data
            .as_ref()
            .map(|d| (crate::spec::PersistenceEngine::Sip, d.to_vec())),
    })
}

/// A listing of the services in bounded pages: see [`Engine::service_walk`].
pub struct ServiceWalk {
    /// The configuration being listed.
    snap: Arc<Snapshot>,
    /// Every service's and real server's counters, summed when the walk started.
    stats: Vec<Stats>,
    /// Index of the next service to list.
    next: usize,
}
