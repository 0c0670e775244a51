//! The configuration snapshot the data plane reads: services, their destinations and scheduler
//! tables. A new snapshot is built for every change and published atomically; a service's
//! scheduler tables are built with it, for exactly its destination list.

use core::net::IpAddr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::flow::to16;
use crate::policy::Policy;
use crate::retired::{wire_key_of, RetiredIndex};
use crate::sched::SchedState;
use crate::sched_core::{SchedKey, SchedTarget};
use crate::spec::{DestSpec, ForwardMethod, MarkRule, ServiceKey, ServiceSpec, TunnelConfig};
use crate::tcp_state::TimeoutTable;
use crate::wire_index::WireIndex;
pub(crate) use crate::wire_index::WireKey;

/// A real server as the data plane sees it. Connections hold an `Arc` to it, so it outlives its
/// removal from the configuration (IPVS's "trash") until its last connection expires.
#[derive(Debug)]
pub(crate) struct DestRt {
    pub(crate) id: u32,
    pub(crate) addr: IpAddr,
    /// `addr` in the 16-byte form connections compare (IPv4-mapped for IPv4).
    pub(crate) addr16: [u8; 16],
    pub(crate) port: u16,
    /// Forwarding method for new connections (`ForwardMethod` as u8; `-e` may change it,
    /// existing connections keep theirs).
    method: AtomicU8,
    /// Tunnel parameters ([`TunnelConfig::pack`]); read at transmit time, as IPVS reads
    /// `dest->tun_type`.
    tunnel: AtomicU32,
    pub(crate) weight: AtomicU32,
    /// The latest non-zero weight (IPVS's `last_weight`).
    pub(crate) last_weight: AtomicU32,
    pub(crate) u_threshold: AtomicU32,
    pub(crate) l_threshold: AtomicU32,
    pub(crate) active: AtomicU32,
    pub(crate) inactive: AtomicU32,
    /// Connections another data plane forwards for this server (rvsd's BPF program, once
    /// handed over): active in the high 32 bits, inactive in the low. Schedulers and
    /// thresholds count them with the engine's own; listings add the plane's counts themselves.
    pub(crate) handed_over: AtomicU64,
    pub(crate) overloaded: AtomicBool,
    /// Persistence templates pointing here (PersistConn).
    pub(crate) persist: AtomicU32,
    /// Still part of its service (IPVS's `IP_VS_DEST_F_AVAILABLE`); cleared by `-d`.
    pub(crate) available: AtomicBool,
    /// NAT connections from this real server's own address scheduled to it (seed 002's loop:
    /// its replies to itself never pass the director), for `rvsadm --doctor`.
    pub(crate) self_scheduled: std::sync::atomic::AtomicU64,
}

fn method_code(m: ForwardMethod) -> u8 {
    match m {
        ForwardMethod::Masq => 0,
        ForwardMethod::Route => 1,
        ForwardMethod::Tunnel => 2,
        ForwardMethod::Local => 3,
        ForwardMethod::FullNat => 4,
    }
}

impl DestRt {
    pub(crate) fn new(id: u32, spec: &DestSpec) -> Self {
        DestRt {
            id,
            addr: spec.addr,
            addr16: crate::flow::to16(spec.addr),
            port: spec.port,
            method: AtomicU8::new(method_code(spec.method)),
            tunnel: AtomicU32::new(spec.tunnel.pack()),
            weight: AtomicU32::new(spec.weight),
            last_weight: AtomicU32::new(spec.weight),
            u_threshold: AtomicU32::new(spec.u_threshold),
            l_threshold: AtomicU32::new(spec.l_threshold),
            active: AtomicU32::new(0),
            inactive: AtomicU32::new(0),
            handed_over: AtomicU64::new(0),
            overloaded: AtomicBool::new(false),
            persist: AtomicU32::new(0),
            available: AtomicBool::new(true),
            self_scheduled: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn spec(&self) -> DestSpec {
        DestSpec {
            addr: self.addr,
            port: self.port,
            weight: self.weight.load(Ordering::Relaxed),
            method: self.method(),
            u_threshold: self.u_threshold.load(Ordering::Relaxed),
            l_threshold: self.l_threshold.load(Ordering::Relaxed),
            tunnel: self.tunnel(),
        }
    }

    /// The tunnel parameters.
    pub(crate) fn tunnel(&self) -> TunnelConfig {
        TunnelConfig::unpack(self.tunnel.load(Ordering::Relaxed))
    }

    /// The forwarding method new connections get.
    pub(crate) fn method(&self) -> ForwardMethod {
        match self.method.load(Ordering::Relaxed) {
            0 => ForwardMethod::Masq,
            1 => ForwardMethod::Route,
            2 => ForwardMethod::Tunnel,
            4 => ForwardMethod::FullNat,
            _ => ForwardMethod::Local,
        }
    }

    /// Applies an edit of forwarding method, weight and thresholds, re-evaluating the overload
    /// flag like `__ip_vs_update_dest`.
    pub(crate) fn update(&self, spec: &DestSpec) {
        self.method
            .store(method_code(spec.method), Ordering::Relaxed);
        self.tunnel.store(spec.tunnel.pack(), Ordering::Relaxed);
        self.weight.store(spec.weight, Ordering::Relaxed);
        if spec.weight != 0 {
            self.last_weight.store(spec.weight, Ordering::Relaxed);
        }
        self.u_threshold.store(spec.u_threshold, Ordering::Relaxed);
        self.l_threshold.store(spec.l_threshold, Ordering::Relaxed);
        if spec.u_threshold == 0 || spec.u_threshold > self.total_conns() {
            self.overloaded.store(false, Ordering::Relaxed);
        }
    }

    fn total_conns(&self) -> u32 {
        let (a, i) = self.handed_over_counts();
        (self.active.load(Ordering::Relaxed) + self.inactive.load(Ordering::Relaxed))
            .saturating_add(a)
            .saturating_add(i)
    }

    /// The handed-over connections' counts: active, inactive.
    fn handed_over_counts(&self) -> (u32, u32) {
        let v = self.handed_over.load(Ordering::Relaxed);
        ((v >> 32) as u32, v as u32)
    }

    /// Sets the counts of this server's connections another data plane forwards, and sets or
    /// clears the overload flag as the total now says.
    pub(crate) fn set_handed_over(&self, active: u32, inactive: u32) {
        self.handed_over.store(
            (u64::from(active) << 32) | u64::from(inactive),
            Ordering::Relaxed,
        );
        let u = self.u_threshold.load(Ordering::Relaxed);
        if u != 0 && self.total_conns() >= u {
            self.overloaded.store(true, Ordering::Relaxed);
        } else {
            self.clear_overload_if_below();
        }
    }

    /// One connection of this server was handed over to another data plane: counted there
    /// at once (the plane's next report replaces the figure).
    pub(crate) fn add_handed_over(&self, active: bool) {
        let one = if active { 1u64 << 32 } else { 1 };
        self.handed_over.fetch_add(one, Ordering::Relaxed);
    }

    /// A connection was bound to this destination (`ip_vs_bind_dest`).
    pub(crate) fn bind(&self, active: bool) {
        if active {
            self.active.fetch_add(1, Ordering::Relaxed);
        } else {
            self.inactive.fetch_add(1, Ordering::Relaxed);
        }
        let u = self.u_threshold.load(Ordering::Relaxed);
        if u != 0 && self.total_conns() >= u {
            self.overloaded.store(true, Ordering::Relaxed);
        }
    }

    /// A connection went away (`ip_vs_unbind_dest`).
    pub(crate) fn unbind(&self, active: bool) {
        let counter = if active { &self.active } else { &self.inactive };
        // Saturating: never wrap even if accounting were ever off.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        self.clear_overload_if_below();
    }

    /// Clears the overload flag once the total is below the lower threshold (3/4 of the upper
    /// one without it), as `ip_vs_unbind_dest` does.
    fn clear_overload_if_below(&self) {
        let l = self.l_threshold.load(Ordering::Relaxed);
        let u = self.u_threshold.load(Ordering::Relaxed);
        let total = self.total_conns() as u64;
        let clear = if l != 0 {
            total < l as u64
        } else if u != 0 {
            total * 4 < u as u64 * 3
        } else {
            true
        };
        if clear {
            self.overloaded.store(false, Ordering::Relaxed);
        }
    }

    /// Whether the engine's connections or persistence templates still point here: what
    /// brings a removed server back from the trash (IPVS's dest refcnt beyond its service's).
    /// Not whether anything holds it: a worker's cached configuration snapshot does too.
    pub(crate) fn held(&self) -> bool {
        self.active.load(Ordering::Relaxed) != 0
            || self.inactive.load(Ordering::Relaxed) != 0
            || self.persist.load(Ordering::Relaxed) != 0
    }

    /// A persistence template now points here.
    pub(crate) fn bind_template(&self) {
        self.persist.fetch_add(1, Ordering::Relaxed);
    }

    /// A persistence template pointing here went away.
    pub(crate) fn unbind_template(&self) {
        let _ = self
            .persist
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    /// A connection moved between ESTABLISHED and the other states.
    pub(crate) fn set_active(&self, active: bool) {
        let (from, to) = if active {
            (&self.inactive, &self.active)
        } else {
            (&self.active, &self.inactive)
        };
        let _ = from.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        to.fetch_add(1, Ordering::Relaxed);
    }
}

impl SchedTarget for Arc<DestRt> {
    fn id(&self) -> u32 {
        self.id
    }
    fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }
    fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }
    fn active(&self) -> u32 {
        self.active
            .load(Ordering::Relaxed)
            .saturating_add(self.handed_over_counts().0)
    }
    fn inactive(&self) -> u32 {
        self.inactive
            .load(Ordering::Relaxed)
            .saturating_add(self.handed_over_counts().1)
    }
    fn last_weight(&self) -> u32 {
        self.last_weight.load(Ordering::Relaxed)
    }
    fn addr_fold(&self) -> u32 {
        match self.addr {
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(a) => crate::sched_hash::fold(&a.octets(), true),
        }
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn canonical_key(&self) -> ([u8; 16], u16) {
        (self.addr16, self.port)
    }
}

/// A virtual service as the data plane sees it.
#[derive(Debug)]
pub(crate) struct ServiceRt {
    pub(crate) id: u32,
    pub(crate) spec: ServiceSpec,
    pub(crate) dests: Vec<Arc<DestRt>>,
    /// The scheduler over `dests`: its tables built for them, its cursor moved without a lock.
    pub(crate) sched: SchedState,
    /// Packets seen coming from the service's own address and port (a direct-routing or tunnel
    /// real server replying through the director); kept across the service's versions.
    pub(crate) stray_replies: Arc<std::sync::atomic::AtomicU64>,
}

/// A deleted service whose real servers connections still hold ([`crate::retired`]), with
/// the mark rules that classified its traffic when it went (a firewall-mark service's packets
/// are found by them; `-C` clears the live rules).
#[derive(Debug, Clone)]
pub(crate) struct RetiredService {
    pub(crate) service: Arc<ServiceRt>,
    pub(crate) marks: Vec<MarkRule>,
}

impl ServiceRt {
    /// Picks a destination for a new connection.
    pub(crate) fn schedule(&self, key: &SchedKey) -> Option<Arc<DestRt>> {
        let i = self.sched.schedule(&self.dests, key)?;
        self.dests.get(i).cloned()
    }

    /// This service over the destination list `dests`, its scheduler rebuilt for them from
    /// `prev` (the scheduler whose cursor carries on: the published one's).
    pub(crate) fn with_dests(&self, prev: &SchedState, dests: Vec<Arc<DestRt>>) -> ServiceRt {
        ServiceRt {
            id: self.id,
            spec: self.spec.clone(),
            sched: prev.rebuilt(&dests),
            dests,
            stray_replies: self.stray_replies.clone(),
        }
    }

    /// This service over `dests` with its scheduler as it is, to be rebuilt later
    /// ([`Staged::into_services`]).
    pub(crate) fn staged(&self, dests: Vec<Arc<DestRt>>) -> ServiceRt {
        ServiceRt {
            id: self.id,
            spec: self.spec.clone(),
            sched: self.sched.with_flags(self.spec.sched_flags),
            dests,
            stray_replies: self.stray_replies.clone(),
        }
    }
}

/// One immutable configuration version.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Services in creation order.
    pub(crate) services: Vec<Arc<ServiceRt>>,
    pub(crate) index: HashMap<ServiceKey, usize, foldhash::fast::RandomState>,
    /// Services of (protocol, address, port). Without a port-0 service among them, a miss
    /// needs no second probe for the catch-all (a reply from a real server costs one lookup).
    wire_index: WireIndex,
    /// Firewall-mark services by (mark, IPv6).
    mark_index: HashMap<(u32, bool), usize, foldhash::fast::RandomState>,
    /// Services by id.
    id_index: HashMap<u32, usize, foldhash::fast::RandomState>,
    /// The classifier, in evaluation order (the first match gives the mark).
    pub(crate) mark_rules: Vec<MarkRule>,
    pub(crate) timeouts: TimeoutTable,
    pub(crate) policy: Policy,
    /// The addresses whose fragments the engine reassembles ([`Snapshot::takes_fragment`]):
    /// virtual and FULLNAT local addresses (as destinations), real servers' (as sources).
    fragment_ends: HashSet<[u8; 16], foldhash::fast::RandomState>,
    /// NAT real servers with the protocols of their services ([`Snapshot::is_nat_source`]).
    nat_sources: HashSet<([u8; 16], u8), foldhash::fast::RandomState>,
    /// Services deleted while connections still hold their real servers
    /// ([`crate::retired`]), and their keys as the data plane looks them up.
    pub(crate) retired: Vec<Arc<ServiceRt>>,
    pub(crate) retired_index: RetiredIndex,
    /// The classifier of the retired services' traffic: the live mark rules, then those the
    /// retired firewall-mark services had when they went (`-C` clears the live ones).
    pub(crate) retired_marks: Vec<MarkRule>,
    /// Retired services by id.
    retired_ids: HashMap<u32, usize, foldhash::fast::RandomState>,
}

/// Services changed inside an [`crate::Engine::batch`] and not yet published: the list and
/// its key index, kept up to date one change at a time (a published snapshot rebuilds every
/// index, which made a restore of N services cost O(N^2)).
#[derive(Debug)]
pub(crate) struct Staged {
    /// The services, in list order.
    pub(crate) services: Vec<Arc<ServiceRt>>,
    /// Position of each service in `services`.
    pub(crate) index: HashMap<ServiceKey, usize, foldhash::fast::RandomState>,
    /// Positions whose real servers changed: their scheduler tables are rebuilt once, when the
    /// batch is published, with the cursors the data plane moved meanwhile.
    pub(crate) dests_changed: Vec<usize>,
}

impl Staged {
    /// The services to publish, the changed ones with their scheduler tables rebuilt and
    /// their cursors carried on from `live`, the snapshot published now.
    pub(crate) fn into_services(mut self, live: &Snapshot) -> Vec<Arc<ServiceRt>> {
        self.dests_changed.sort_unstable();
        self.dests_changed.dedup();
        for &pos in &self.dests_changed {
            if let Some(s) = self.services.get_mut(pos) {
                let prev = live
                    .service_by_id(s.id)
                    .filter(|l| l.sched.kind() == s.sched.kind())
                    .map_or(&s.sched, |l| &l.sched);
                *s = Arc::new(s.with_dests(prev, s.dests.clone()));
            }
        }
        self.services
    }
}

impl Snapshot {
    pub(crate) fn new(
        services: Vec<Arc<ServiceRt>>,
        retirees: Vec<RetiredService>,
        timeouts: TimeoutTable,
        policy: Policy,
        mark_rules: Vec<MarkRule>,
    ) -> Self {
        let mut retired = Vec::with_capacity(retirees.len());
        let mut retired_marks = if retirees.is_empty() {
            Vec::new()
        } else {
            mark_rules.clone()
        };
        let mut retired_ids = HashMap::with_hasher(foldhash::fast::RandomState::default());
        for (i, r) in retirees.into_iter().enumerate() {
            retired_ids.insert(r.service.id, i);
            retired.push(r.service);
            retired_marks.extend(r.marks);
        }
        let mut index = HashMap::with_hasher(foldhash::fast::RandomState::default());
        let mut wire_keys = Vec::with_capacity(services.len());
        let mut mark_index = HashMap::with_hasher(foldhash::fast::RandomState::default());
        let mut id_index = HashMap::with_hasher(foldhash::fast::RandomState::default());
        for (i, s) in services.iter().enumerate() {
            index.insert(s.spec.key, i);
            id_index.insert(s.id, i);
            match wire_key_of(&s.spec.key) {
                Some(k) => wire_keys.push((k, i)),
                None => {
                    mark_index.insert((s.spec.key.fwmark, s.spec.key.addr.is_ipv6()), i);
                }
            }
        }
        let wire_index = WireIndex::new(&wire_keys);
        // A retired service's connections still send their fragments and replies this way.
        let mut fragment_ends = HashSet::with_hasher(foldhash::fast::RandomState::default());
        for s in services.iter().chain(&retired) {
            if s.spec.key.fwmark == 0 {
                fragment_ends.insert(to16(s.spec.key.addr));
            }
            fragment_ends.extend(s.spec.local_addrs.iter().map(|a| to16(*a)));
            fragment_ends.extend(s.dests.iter().map(|d| d.addr16));
        }
        let mut nat_sources = HashSet::with_hasher(foldhash::fast::RandomState::default());
        for s in services.iter().chain(&retired) {
            let key = s.spec.key;
            // A firewall-mark service carries the protocols of its mark's rules.
            let protos: Vec<u8> = if key.fwmark == 0 {
                vec![key.proto.number()]
            } else {
                mark_rules
                    .iter()
                    .filter(|r| r.marks_for(&key))
                    .map(|r| r.proto.number())
                    .collect()
            };
            for d in s.dests.iter().filter(|d| d.method() == ForwardMethod::Masq) {
                nat_sources.extend(protos.iter().map(|&p| (d.addr16, p)));
            }
        }
        Snapshot {
            services,
            index,
            wire_index,
            mark_index,
            id_index,
            mark_rules,
            timeouts,
            policy,
            fragment_ends,
            nat_sources,
            retired_index: RetiredIndex::new(retired.iter().map(|s| &s.spec.key)),
            retired,
            retired_marks,
            retired_ids,
        }
    }

    /// Data-plane lookup of the service a packet goes to: the firewall-mark service of the
    /// first matching mark rule (if that mark has a service of the packet's family), else the
    /// service at its (protocol, address, port), else a port-0 service of its address.
    #[inline]
    pub(crate) fn lookup(&self, key: &WireKey, v6: bool) -> Option<&Arc<ServiceRt>> {
        if !self.mark_rules.is_empty() {
            let addr = crate::flow::to_ip(key.addr, v6);
            if let Some(r) = self
                .mark_rules
                .iter()
                .find(|r| r.matches(key.proto, addr, key.port))
            {
                if let Some(s) = self.service_by_mark(r.mark, v6) {
                    return Some(s);
                }
            }
        }
        self.service_at(key)
    }

    /// Whether a packet to `key` went to a retired service ([`crate::retired`]); one test of
    /// a flag while there is none.
    #[inline]
    pub(crate) fn retires(&self, key: &WireKey, v6: bool) -> bool {
        !self.retired_index.is_empty() && self.retired_index.takes(key, v6, &self.retired_marks)
    }

    /// Lookup by (protocol, address, port), with the port-0 catch-all.
    #[inline]
    pub(crate) fn service_at(&self, key: &WireKey) -> Option<&Arc<ServiceRt>> {
        let i = match self.wire_index.get(key) {
            Some(i) => i,
            // IPVS's catch-all: a port-0 (persistent) service takes every port of its VIP.
            None if key.port != 0 && self.wire_index.has_port0() => {
                self.wire_index.get(&WireKey { port: 0, ..*key })?
            }
            None => return None,
        };
        self.services.get(i)
    }

    /// The firewall-mark service of `mark` and family.
    pub(crate) fn service_by_mark(&self, mark: u32, v6: bool) -> Option<&Arc<ServiceRt>> {
        self.mark_index
            .get(&(mark, v6))
            .and_then(|&i| self.services.get(i))
    }

    /// The firewall mark of service `id`, live or retired (0 for a service of an address, or
    /// one gone).
    pub(crate) fn fwmark_of(&self, id: u32) -> u32 {
        self.service_by_id(id)
            .or_else(|| self.retired_ids.get(&id).and_then(|&i| self.retired.get(i)))
            .map_or(0, |s| s.spec.key.fwmark)
    }

    /// The service of id `id`.
    pub(crate) fn service_by_id(&self, id: u32) -> Option<&Arc<ServiceRt>> {
        self.id_index.get(&id).and_then(|&i| self.services.get(i))
    }

    pub(crate) fn service(&self, key: &ServiceKey) -> Option<&Arc<ServiceRt>> {
        self.index.get(key).and_then(|&i| self.services.get(i))
    }

    /// Whether `src` is a NAT real server of a service of protocol number `proto` (of a
    /// firewall-mark service: of its mark rules' protocols). Fragments from it are the
    /// director's to reassemble; the kernel sees none of them when rvsd's kernel bypass runs.
    pub(crate) fn is_nat_source(&self, src: &[u8; 16], proto: u8) -> bool {
        self.nat_sources.contains(&(*src, proto))
    }

    /// Whether a fragment from `src` to `dst` belongs to traffic the engine handles, so it is
    /// reassembled: to a virtual address (of a service, or of a mark rule's network) or a
    /// FULLNAT local address, or from a real server (a reply, for NAT and FULLNAT).
    pub(crate) fn takes_fragment(&self, src: &[u8; 16], dst: &[u8; 16], v6: bool) -> bool {
        if self.fragment_ends.contains(dst) || self.fragment_ends.contains(src) {
            return true;
        }
        let dst = crate::flow::to_ip(dst, v6);
        self.mark_rules.iter().any(|r| r.covers(dst))
    }
}
