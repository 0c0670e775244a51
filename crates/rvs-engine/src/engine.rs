//! The engine: data-plane `handle` and the control-plane operations around it.

use core::hash::BuildHasher;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, MutexGuard};
use rvs_wire::ip;

use crate::config::{DestRt, ServiceRt, Snapshot};
use crate::conn_table::{Conn, Shard, Tuple, F_INACTIVE, F_V6};
use crate::datapath::{self, Parsed};
use crate::estimator::Estimator;
use crate::icmp::{self, ConnAddrs};
use crate::nat::{self, Side};
use crate::sched::SchedState;
use crate::tcp_state::{next_state, Direction, TimeoutTable};
use crate::types::*;

const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

/// A shard lock on its own cache lines.
#[derive(Debug)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// Control-plane state: serialises configuration changes.
#[derive(Debug)]
struct Control {
    next_id: u32,
    timeouts: Timeouts,
    estimators: HashMap<u32, Estimator>,
}

/// The director core. `Send + Sync`: share it between worker threads with `Arc<Engine>`.
#[derive(Debug)]
pub struct Engine {
    snapshot: ArcSwap<Snapshot>,
    control: Mutex<Control>,
    shards: Box<[Padded]>,
    shard_mask: u64,
    hasher: foldhash::fast::RandomState,
    drops: [AtomicU64; 7],
}

fn flow_hash(state: &foldhash::fast::RandomState, proto: u8, addr: &[u8; 16], port: u16) -> u64 {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&addr[..8]);
    b.copy_from_slice(&addr[8..]);
    state.hash_one((u64::from_ne_bytes(a), u64::from_ne_bytes(b), ((proto as u32) << 16) | port as u32))
}

fn to_ip(a: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*a))
    } else {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    }
}

fn to16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn protocol_of(n: u8) -> Option<Protocol> {
    match n {
        ip::TCP => Some(Protocol::Tcp),
        ip::UDP => Some(Protocol::Udp),
        _ => None,
    }
}

impl Engine {
    /// Creates an engine with no services.
    pub fn new(config: EngineConfig) -> Engine {
        let n = config.shards.max(1).next_power_of_two();
        let per_shard = config.expected_connections.div_ceil(n);
        let shards = (0..n).map(|_| Padded(Mutex::new(Shard::new(per_shard, flow_hash)))).collect();
        let timeouts = Timeouts::default();
        Engine {
            snapshot: ArcSwap::from_pointee(Snapshot::new(Vec::new(), TimeoutTable::new(timeouts))),
            control: Mutex::new(Control { next_id: 0, timeouts, estimators: HashMap::new() }),
            shards,
            shard_mask: (n - 1) as u64,
            hasher: foldhash::fast::RandomState::default(),
            drops: Default::default(),
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        // Bits 32.. are used neither by the index's bucket mask nor by its tag byte.
        &self.shards[((hash >> 32) & self.shard_mask) as usize].0
    }

    fn drop_packet(&self, reason: DropReason) -> Verdict {
        self.drops[reason.index()].fetch_add(1, Ordering::Relaxed);
        Verdict::Drop(reason)
    }

    // ------------------------------------------------------------------ data plane

    /// Handles one Ethernet frame: parses it, finds or creates its connection, rewrites it in
    /// place and says what to do with it. Never panics.
    pub fn handle(&self, now: Millis, pkt: &mut PacketMeta, frame: &mut [u8]) -> Verdict {
        let p = match datapath::parse(frame) {
            Ok(Some(p)) => p,
            Ok(None) => return Verdict::PassToKernel,
            Err(r) => return self.drop_packet(r),
        };
        let snap = self.snapshot.load();
        if p.fragment {
            return if snap.is_vip(to_ip(&p.dst, p.lay.v6)) {
                self.drop_packet(DropReason::Fragmented)
            } else {
                Verdict::PassToKernel
            };
        }
        match p.lay.proto {
            ip::TCP | ip::UDP => self.handle_l4(now, pkt, frame, &p, &snap),
            ip::ICMP if !p.lay.v6 => self.handle_icmp(frame, &p, &snap),
            ip::ICMPV6 if p.lay.v6 => self.handle_icmp(frame, &p, &snap),
            _ => Verdict::PassToKernel,
        }
    }

    fn handle_l4(
        &self,
        now: Millis,
        pkt: &PacketMeta,
        frame: &mut [u8],
        p: &Parsed,
        snap: &Snapshot,
    ) -> Verdict {
        let ports = match datapath::ports(frame, p) {
            Ok(x) => x,
            Err(r) => return self.drop_packet(r),
        };
        let Some(proto) = protocol_of(p.lay.proto) else { return Verdict::PassToKernel };
        let t = Tuple {
            proto: p.lay.proto,
            v6: p.lay.v6,
            src: p.src,
            dst: p.dst,
            sport: ports.sport,
            dport: ports.dport,
        };
        let key = ServiceKey { proto, addr: to_ip(&p.dst, p.lay.v6), port: ports.dport };
        if let Some(svc) = snap.service(&key) {
            return self.handle_to_service(now, pkt, frame, p, &t, ports.tcp_flags, svc, snap);
        }
        // A reply from a real server?
        let h = flow_hash(&self.hasher, t.proto, &t.dst, t.dport);
        let mut shard = self.shard(h).lock();
        let Some(slot) = shard.find(h, Direction::Output, &t) else {
            return Verdict::PassToKernel;
        };
        if shard.get(slot).is_some_and(|c| c.expires <= now.0) {
            unlink(&mut shard, slot, &self.hasher);
            return Verdict::PassToKernel;
        }
        if p.ttl <= 1 {
            return self.drop_packet(DropReason::TtlExceeded);
        }
        self.deliver(shard, slot, Direction::Output, now, frame, p, ports.tcp_flags, snap, pkt)
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_to_service(
        &self,
        now: Millis,
        pkt: &PacketMeta,
        frame: &mut [u8],
        p: &Parsed,
        t: &Tuple,
        flags: u8,
        svc: &ServiceRt,
        snap: &Snapshot,
    ) -> Verdict {
        let tcp = t.proto == ip::TCP;
        let h = flow_hash(&self.hasher, t.proto, &t.src, t.sport);
        let mut shard = self.shard(h).lock();
        if let Some(slot) = shard.find(h, Direction::Input, t) {
            let (expired, reusable) = shard.get(slot).map_or((true, false), |c| {
                let st = ConnState::from_u8(c.state);
                (
                    c.expires <= now.0,
                    // conn_reuse_mode 1: a SYN on a TIME_WAIT/CLOSE connection starts afresh.
                    tcp && flags & TCP_SYN != 0
                        && matches!(st, ConnState::TimeWait | ConnState::Close),
                )
            });
            if !expired && !reusable {
                if p.ttl <= 1 {
                    return self.drop_packet(DropReason::TtlExceeded);
                }
                return self.deliver(shard, slot, Direction::Input, now, frame, p, flags, snap, pkt);
            }
            unlink(&mut shard, slot, &self.hasher);
        }
        if tcp && (flags & TCP_SYN == 0 || flags & TCP_RST != 0) {
            return self.drop_packet(DropReason::NoConnectionNonSyn);
        }
        if p.ttl <= 1 {
            return self.drop_packet(DropReason::TtlExceeded);
        }
        let Some(dest) = svc.schedule() else {
            return self.drop_packet(DropReason::NoDestination);
        };
        if dest.method != ForwardMethod::Masq {
            return self.drop_packet(DropReason::UnsupportedProtocol);
        }
        let state = if tcp { ConnState::None } else { ConnState::Udp };
        dest.bind(false);
        let dest_id = dest.id;
        let conn = Conn {
            client: t.src,
            vaddr: t.dst,
            daddr: to16(dest.addr),
            cport: t.sport,
            vport: t.dport,
            dport: dest.port,
            proto: t.proto,
            state: state as u8,
            flags: F_INACTIVE | if t.v6 { F_V6 } else { 0 },
            svc_id: svc.id,
            expires: now.0.saturating_add(snap.timeouts.of(state)),
            dest,
        };
        let slot = shard.insert(h, &self.hasher, conn);
        shard.stats_mut(svc.id).conns += 1;
        shard.stats_mut(dest_id).conns += 1;
        self.deliver(shard, slot, Direction::Input, now, frame, p, flags, snap, pkt)
    }

    /// Updates state, timer and counters of a connection, then rewrites the packet.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &self,
        mut shard: MutexGuard<'_, Shard>,
        slot: u32,
        dir: Direction,
        now: Millis,
        frame: &mut [u8],
        p: &Parsed,
        flags: u8,
        snap: &Snapshot,
        pkt: &PacketMeta,
    ) -> Verdict {
        let Some(c) = shard.get_mut(slot) else { return Verdict::PassToKernel };
        let mut state = ConnState::from_u8(c.state);
        if c.proto == ip::TCP {
            let new = next_state(state, dir, flags);
            if new != state {
                let inactive = c.flags & F_INACTIVE != 0;
                if !inactive && new != ConnState::Established {
                    c.dest.set_active(false);
                    c.flags |= F_INACTIVE;
                } else if inactive && new == ConnState::Established {
                    c.dest.set_active(true);
                    c.flags &= !F_INACTIVE;
                }
                c.state = new as u8;
                state = new;
            }
        }
        c.expires = now.0.saturating_add(snap.timeouts.of(state));
        let (svc_id, dest_id) = (c.svc_id, c.dest.id);
        let (addr, port, next_hop, side) = match dir {
            Direction::Input => (c.daddr, c.dport, c.daddr, Side::Dst),
            Direction::Output => (c.vaddr, c.vport, c.client, Side::Src),
        };
        let bytes = p.ip_len as u64;
        for id in [svc_id, dest_id] {
            let s = shard.stats_mut(id);
            match dir {
                Direction::Input => {
                    s.in_pkts += 1;
                    s.in_bytes += bytes;
                }
                Direction::Output => {
                    s.out_pkts += 1;
                    s.out_bytes += bytes;
                }
            }
        }
        drop(shard);
        if !nat::rewrite(frame, &p.lay, side, &addr, port, pkt.csum_partial) {
            return self.drop_packet(DropReason::Malformed);
        }
        Verdict::Forward { next_hop_ip: to_ip(&next_hop, p.lay.v6), l3_offset: p.lay.l3 }
    }

    fn handle_icmp(&self, frame: &mut [u8], p: &Parsed, snap: &Snapshot) -> Verdict {
        if !icmp::is_error(frame, &p.lay) {
            return Verdict::PassToKernel;
        }
        let Some(q) = icmp::parse_quoted(frame, &p.lay) else { return Verdict::PassToKernel };
        let Some(proto) = protocol_of(q.proto) else { return Verdict::PassToKernel };
        // The connection tuple is the quoted packet reversed.
        let inv = Tuple {
            proto: q.proto,
            v6: p.lay.v6,
            src: q.dst,
            dst: q.src,
            sport: q.dport,
            dport: q.sport,
        };
        let quoted_from_vip =
            ServiceKey { proto, addr: to_ip(&q.src, p.lay.v6), port: q.sport };
        let (dir, h) = if snap.service(&quoted_from_vip).is_some() {
            (Direction::Input, flow_hash(&self.hasher, inv.proto, &inv.src, inv.sport))
        } else {
            (Direction::Output, flow_hash(&self.hasher, inv.proto, &inv.dst, inv.dport))
        };
        let mut shard = self.shard(h).lock();
        let Some(slot) = shard.find(h, dir, &inv) else { return Verdict::PassToKernel };
        if p.ttl <= 1 {
            return self.drop_packet(DropReason::TtlExceeded);
        }
        let Some(c) = shard.get(slot) else { return Verdict::PassToKernel };
        let addrs = ConnAddrs { vaddr: c.vaddr, vport: c.vport, daddr: c.daddr, dport: c.dport };
        let (svc_id, dest_id) = (c.svc_id, c.dest.id);
        let bytes = p.ip_len as u64;
        for id in [svc_id, dest_id] {
            let s = shard.stats_mut(id);
            match dir {
                Direction::Input => {
                    s.in_pkts += 1;
                    s.in_bytes += bytes;
                }
                Direction::Output => {
                    s.out_pkts += 1;
                    s.out_bytes += bytes;
                }
            }
        }
        drop(shard);
        if !icmp::translate(frame, &p.lay, &q, dir, &addrs) {
            return self.drop_packet(DropReason::Malformed);
        }
        let next_hop = match dir {
            Direction::Input => addrs.daddr,
            Direction::Output => p.dst,
        };
        Verdict::Forward { next_hop_ip: to_ip(&next_hop, p.lay.v6), l3_offset: p.lay.l3 }
    }

    // ------------------------------------------------------------------ control plane

    fn publish(&self, services: Vec<Arc<ServiceRt>>, timeouts: Timeouts) {
        self.snapshot.store(Arc::new(Snapshot::new(services, TimeoutTable::new(timeouts))));
    }

    fn check_service_spec(spec: &ServiceSpec) -> Result<(), EngineError> {
        if spec.persistence.is_some() {
            return Err(EngineError::Unsupported("persistent services (-p) are not supported yet"));
        }
        if spec.one_packet {
            return Err(EngineError::Unsupported(
                "one-packet scheduling (-o) is not supported yet",
            ));
        }
        if spec.key.port == 0 {
            return Err(EngineError::InvalidArgument(
                "a service port of 0 needs persistence".to_string(),
            ));
        }
        Ok(())
    }

    /// Adds a virtual service (`ipvsadm -A`).
    pub fn add_service(&self, spec: ServiceSpec) -> Result<(), EngineError> {
        Self::check_service_spec(&spec)?;
        let mut ctl = self.control.lock();
        let snap = self.snapshot.load();
        if snap.service(&spec.key).is_some() {
            return Err(EngineError::ServiceExists);
        }
        let id = ctl.next_id;
        ctl.next_id += 1;
        let sched = Arc::new(Mutex::new(SchedState::new::<Arc<DestRt>>(spec.scheduler, &[])));
        let mut services = snap.services.clone();
        services.push(Arc::new(ServiceRt { id, spec, dests: Vec::new(), sched }));
        ctl.estimators.insert(id, Estimator::default());
        self.publish(services, ctl.timeouts);
        Ok(())
    }

    /// Edits a virtual service's scheduler and flags (`ipvsadm -E`).
    pub fn edit_service(&self, spec: ServiceSpec) -> Result<(), EngineError> {
        Self::check_service_spec(&spec)?;
        let ctl = self.control.lock();
        let snap = self.snapshot.load();
        let pos = *snap.index.get(&spec.key).ok_or(EngineError::NoService)?;
        let old = &snap.services[pos];
        let sched = if old.sched.lock().kind() == spec.scheduler {
            old.sched.clone()
        } else {
            Arc::new(Mutex::new(SchedState::new(spec.scheduler, &old.dests)))
        };
        let mut services = snap.services.clone();
        services[pos] = Arc::new(ServiceRt { id: old.id, spec, dests: old.dests.clone(), sched });
        self.publish(services, ctl.timeouts);
        Ok(())
    }

    /// Deletes a virtual service and its connections (`ipvsadm -D`).
    pub fn del_service(&self, key: &ServiceKey) -> Result<(), EngineError> {
        let mut ctl = self.control.lock();
        let snap = self.snapshot.load();
        let pos = *snap.index.get(key).ok_or(EngineError::NoService)?;
        let mut services = snap.services.clone();
        let gone = services.remove(pos);
        self.publish(services, ctl.timeouts);
        ctl.estimators.remove(&gone.id);
        for d in &gone.dests {
            ctl.estimators.remove(&d.id);
        }
        drop(ctl);
        let id = gone.id;
        self.purge(|c| c.svc_id == id);
        Ok(())
    }

    /// Removes every service and connection (`ipvsadm -C`).
    pub fn clear(&self) {
        let mut ctl = self.control.lock();
        self.publish(Vec::new(), ctl.timeouts);
        ctl.estimators.clear();
        drop(ctl);
        self.purge(|_| true);
    }

    fn purge(&self, mut pred: impl FnMut(&Conn) -> bool) {
        for s in self.shards.iter() {
            let gone = s.0.lock().remove_where(&self.hasher, &mut pred);
            for c in gone {
                c.dest.unbind(c.flags & F_INACTIVE == 0);
            }
        }
    }

    fn check_dest_spec(svc: &ServiceSpec, spec: &mut DestSpec) -> Result<(), EngineError> {
        match spec.method {
            ForwardMethod::Masq => {}
            ForwardMethod::Route => {
                return Err(EngineError::Unsupported("direct routing (-g) is not supported yet"))
            }
            ForwardMethod::Tunnel => {
                return Err(EngineError::Unsupported("tunneling (-i) is not supported yet"))
            }
            ForwardMethod::Local => {
                return Err(EngineError::Unsupported("local forwarding is not supported yet"))
            }
        }
        if spec.addr.is_ipv4() != svc.key.addr.is_ipv4() {
            return Err(EngineError::InvalidArgument(
                "the real server's address family differs from the service's".to_string(),
            ));
        }
        if spec.weight > i32::MAX as u32 {
            return Err(EngineError::InvalidArgument(format!("weight {} is too large", spec.weight)));
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
        let snap = self.snapshot.load();
        let pos = *snap.index.get(key).ok_or(EngineError::NoService)?;
        let old = &snap.services[pos];
        let dests = change(&mut ctl, old)?;
        old.sched.lock().dests_changed(&dests);
        let mut services = snap.services.clone();
        services[pos] = Arc::new(ServiceRt {
            id: old.id,
            spec: old.spec.clone(),
            dests,
            sched: old.sched.clone(),
        });
        self.publish(services, ctl.timeouts);
        Ok(())
    }

    /// Adds a real server to a service (`ipvsadm -a`).
    pub fn add_dest(&self, svc: &ServiceKey, mut spec: DestSpec) -> Result<(), EngineError> {
        self.with_service(svc, |ctl, s| {
            Self::check_dest_spec(&s.spec, &mut spec)?;
            if s.dests.iter().any(|d| d.addr == spec.addr && d.port == spec.port) {
                return Err(EngineError::DestExists);
            }
            let id = ctl.next_id;
            ctl.next_id += 1;
            ctl.estimators.insert(id, Estimator::default());
            let mut dests = s.dests.clone();
            dests.push(Arc::new(DestRt::new(id, &spec)));
            Ok(dests)
        })
    }

    /// Edits a real server's weight and thresholds (`ipvsadm -e`).
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
            let port = if port == 0 { s.spec.key.port } else { port };
            let pos = s
                .dests
                .iter()
                .position(|d| d.addr == addr && d.port == port)
                .ok_or(EngineError::NoDest)?;
            let mut dests = s.dests.clone();
            let gone = dests.remove(pos);
            ctl.estimators.remove(&gone.id);
            Ok(dests)
        })
    }

    /// Zeroes counters and rates of one service (and its destinations) or of all (`ipvsadm -Z`).
    pub fn zero(&self, svc: Option<&ServiceKey>) -> Result<(), EngineError> {
        let mut ctl = self.control.lock();
        let snap = self.snapshot.load();
        let services: Vec<&Arc<ServiceRt>> = match svc {
            Some(k) => vec![snap.service(k).ok_or(EngineError::NoService)?],
            None => snap.services.iter().collect(),
        };
        let ids: Vec<u32> = services
            .iter()
            .flat_map(|s| core::iter::once(s.id).chain(s.dests.iter().map(|d| d.id)))
            .collect();
        for s in self.shards.iter() {
            let mut g = s.0.lock();
            for &id in &ids {
                *g.stats_mut(id) = Stats::default();
            }
        }
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
        let services = self.snapshot.load().services.clone();
        self.publish(services, ctl.timeouts);
    }

    /// Current protocol timeouts in seconds.
    pub fn timeouts(&self) -> Timeouts {
        self.control.lock().timeouts
    }

    /// Counters per service/destination id, summed over the shards.
    fn gather_stats(&self) -> Vec<Stats> {
        let mut sum: Vec<Stats> = Vec::new();
        for s in self.shards.iter() {
            let g = s.0.lock();
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
        let stats = self.gather_stats();
        let ctl = self.control.lock();
        let snap = self.snapshot.load();
        let get = |id: u32| stats.get(id as usize).copied().unwrap_or_default();
        let rates = |id: u32| ctl.estimators.get(&id).map(Estimator::rates).unwrap_or_default();
        snap.services
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
                        persist_conns: 0,
                        stats: get(d.id),
                        rates: rates(d.id),
                    })
                    .collect(),
            })
            .collect()
    }

    /// All connections (`ipvsadm -Lnc`).
    pub fn connections(&self, now: Millis) -> Vec<ConnStatus> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let g = s.0.lock();
            out.extend(g.iter().filter_map(|c| {
                let v6 = c.flags & F_V6 != 0;
                Some(ConnStatus {
                    proto: protocol_of(c.proto)?,
                    client: SocketAddr::new(to_ip(&c.client, v6), c.cport),
                    virtual_addr: SocketAddr::new(to_ip(&c.vaddr, v6), c.vport),
                    dest: SocketAddr::new(to_ip(&c.daddr, v6), c.dport),
                    state: ConnState::from_u8(c.state),
                    expires_in: Millis(c.expires.saturating_sub(now.0)),
                })
            }));
        }
        out
    }

    /// Removes connections whose timer ran out, fixing ActiveConn/InActConn.
    pub fn expire(&self, now: Millis) {
        for s in self.shards.iter() {
            let gone = s.0.lock().remove_where(&self.hasher, |c| c.expires <= now.0);
            for c in gone {
                c.dest.unbind(c.flags & F_INACTIVE == 0);
            }
        }
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

    /// Number of connections in the table.
    pub fn connection_count(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().len()).sum()
    }

    /// Bytes held by the connection table (slabs, indexes, counters), from their capacities.
    pub fn table_memory_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().memory_bytes()).sum()
    }
}

fn unlink(shard: &mut Shard, slot: u32, hasher: &foldhash::fast::RandomState) {
    if let Some(c) = shard.remove(slot, hasher) {
        c.dest.unbind(c.flags & F_INACTIVE == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn engine_is_send_sync() {
        assert_send_sync::<Engine>();
    }
}
