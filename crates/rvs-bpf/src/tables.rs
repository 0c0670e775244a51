//! Publishing rvsd's configuration into the program's maps: services, real servers, wrr
//! sequences and the state table, from one [`rvs_engine::SpecWalk`] version.
//!
//! A service the program cannot serve itself (a persistence engine, one-packet scheduling, the
//! PROXY protocol, more than [`MAX_LADDRS`] FULLNAT local addresses, a scheduler it does not
//! run, more than [`MAX_DESTS`] real servers, a wrr
//! sequence longer than [`WRR_SEQ`]) is published with `SVC_F_USER`: its new connections go
//! to rvsd. Firewall-mark and SCTP services are not published (the program does not see
//! marks or parse SCTP), so their packets reach rvsd's packet path.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rvs_engine::spec_walk::SpecWalk;
use rvs_engine::{ForwardMethod, Protocol, SchedulerKind, ServiceSpec};

use crate::error::Error;
use crate::maps::{
    Addr, Dest, Hop, Method, Sched, Settings, Svc, SvcDests, SvcKey, WrrStep, ADDR_NAT_DEST,
    ADDR_USER_DEST, ADDR_USER_VIP, ADDR_VIP, HASH_STRIDE, MAX_DESTS, MAX_LADDRS, SVC_F_FALLBACK,
    SVC_F_PERSIST, SVC_F_PORT, SVC_F_SYNPROXY, SVC_F_USER, WRR_SEQ,
};
use crate::program::Datapath;
use crate::written::Written;

/// Where each service and real server lives in the maps, kept across publications so that
/// connections keep pointing at the same real server.
#[derive(Debug, Default)]
pub struct Publisher {
    /// Service key -> (service id, the dest slots last published).
    services: HashMap<SvcKey, (u32, Vec<u32>)>,
    /// Service id -> the (slot, weight) list its scheduler cursor was last set for.
    cursor_for: HashMap<u32, Vec<(u32, u32)>>,
    /// (service key, address, port) -> dest slot.
    slots: HashMap<(SvcKey, IpAddr, u16), u32>,
    /// The other way: dest slot -> the (service key, address, port) that has it.
    owner: HashMap<u32, (SvcKey, IpAddr, u16)>,
    /// The `addrs` map as last published.
    addrs: HashMap<Addr, u32>,
    /// The `user_dests` map as last published.
    user_dests: HashSet<SvcKey>,
    /// Tunnel real servers: dest slot -> the server's address.
    tunnels: HashMap<u32, IpAddr>,
    /// The `tun_src` entries as last written: dest slot -> outer source.
    tun_sources: HashMap<u32, Option<IpAddr>>,
    /// Removed real servers (IPVS's dest trash): their slots are kept, so connections that
    /// point there forward again when the same server is added to the same service again.
    trash_slots: HashMap<(SvcKey, IpAddr, u16), u32>,
    /// Removed services' ids, given back to the same service when it is added again.
    trash_services: HashMap<SvcKey, u32>,
    /// The address services rvsd schedules itself (the program punts their packets), as last
    /// published: when deleted, their connections stay rvsd's.
    user_services: HashSet<SvcKey>,
    /// The configuration maps' entries as last written (only changes are written).
    written: Written,
    /// Slots taken back from removed servers, not handed out yet.
    free_slots: Vec<u32>,
    /// Service ids taken back from deleted services, not handed out yet.
    free_ids: Vec<u32>,
    /// Service id -> its scheduler table (wrr sequence or sh/dh/mh lookup table), for the
    /// services that have one.
    tables: HashMap<u32, u32>,
    /// Tables given up, not handed out again yet (a table is read only while scheduling, so
    /// one is free as soon as its service no longer names it).
    free_tables: Vec<u32>,
    next_table: u32,
    /// When the maps were last searched for slots and ids to take back and none was found: not
    /// searched again for [`RESCAN_AFTER`] (a publication retries every 100 ms meanwhile).
    slots_scanned_empty: Option<Instant>,
    ids_scanned_empty: Option<Instant>,
    next_service: u32,
    next_slot: u32,
}

/// How long a search of the maps for slots or ids to take back that found none holds.
const RESCAN_AFTER: Duration = Duration::from_secs(1);

/// What was handed out, `None` when the maps had no room for it (the error kept in `no_room`
/// if it is the first), or another error.
fn fits<T>(handed: Result<T, Error>, no_room: &mut Option<Error>) -> Result<Option<T>, Error> {
    match handed {
        Ok(v) => Ok(Some(v)),
        Err(e @ Error::Capacity(_)) => {
            no_room.get_or_insert(e);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether a search for slots or ids to take back may run again, the last having found none
/// at `empty` (if it did).
fn due(empty: Option<Instant>) -> bool {
    empty.is_none_or(|at| at.elapsed() >= RESCAN_AFTER)
}

/// The `services` key of an address service (the key's fwmark is not part of it).
fn svc_key(key: &rvs_engine::ServiceKey) -> SvcKey {
    SvcKey {
        addr: Addr::from(key.addr),
        port_be: key.port.to_be(),
        proto: key.proto.number(),
        pad: 0,
    }
}

/// The program's scheduler for an engine scheduler, if it runs it.
fn sched_of(kind: SchedulerKind) -> Sched {
    match kind {
        SchedulerKind::Rr => Sched::Rr,
        SchedulerKind::Wrr => Sched::Wrr,
        SchedulerKind::Lc => Sched::Lc,
        SchedulerKind::Wlc => Sched::Wlc,
        SchedulerKind::Sed => Sched::Sed,
        SchedulerKind::Nq => Sched::Nq,
        SchedulerKind::Fo => Sched::Fo,
        SchedulerKind::Ovf => Sched::Ovf,
        SchedulerKind::Sh => Sched::Sh,
        SchedulerKind::Dh => Sched::Dh,
        SchedulerKind::Mh => Sched::Mh,
        SchedulerKind::Twos => Sched::Twos,
        SchedulerKind::Lblc => Sched::Lblc,
        SchedulerKind::Lblcr => Sched::Lblcr,
        SchedulerKind::None => Sched::User,
    }
}

fn method_of(m: ForwardMethod) -> Method {
    match m {
        ForwardMethod::Masq => Method::Masq,
        ForwardMethod::Tunnel => Method::Tunnel,
        ForwardMethod::Route => Method::Route,
        ForwardMethod::FullNat => Method::FullNat,
        ForwardMethod::Local => Method::Local,
    }
}

/// Whether the program can schedule this service's new connections itself.
fn program_schedules(spec: &ServiceSpec) -> bool {
    spec.persistence.as_ref().is_none_or(|p| p.pe.is_none())
        && !spec.one_packet
        && spec.local_addrs.len() <= MAX_LADDRS
        && spec.proxy_protocol.is_none()
        && sched_of(spec.scheduler) != Sched::User
}

/// Addresses in a mark rule's prefix the program is told about, at most (a wider rule is left
/// to the kernel, with a warning in rvsd's log).
const MARK_RULE_MAX_ADDRS: u32 = 256;
/// Ports of a mark rule a real server without a port is registered for, at most.
const MARK_RULE_MAX_PORTS: u16 = 64;

/// Registers a service rvsd serves whole (firewall-mark, SCTP): its virtual addresses (for a
/// firewall-mark service, those of the classifier rules in `marks` that give its mark) as
/// `ADDR_USER_VIP`, its NAT real servers as `ADDR_USER_DEST` and their endpoints in
/// `user_dests`.
fn served_by_rvsd(
    service: &rvs_engine::spec_walk::ServiceRef<'_>,
    marks: &[rvs_engine::MarkRule],
    addrs: &mut HashMap<Addr, u32>,
    user_dests: &mut HashSet<SvcKey>,
) {
    let spec = service.spec();
    let mut protos = Vec::new();
    if spec.key.fwmark == 0 {
        *addrs.entry(Addr::from(spec.key.addr)).or_default() |= ADDR_USER_VIP;
        protos.push((spec.key.proto.number(), spec.key.port, spec.key.port));
    } else {
        let v6 = spec.key.addr.is_ipv6();
        for rule in marks.iter().filter(|r| r.marks_for(&spec.key)) {
            let host_bits = u32::from(if v6 { 128u8 } else { 32 }.saturating_sub(rule.prefix_len));
            if host_bits > MARK_RULE_MAX_ADDRS.trailing_zeros() {
                continue;
            }
            let base = Addr::from(rule.addr);
            for i in 0..(1u32 << host_bits) {
                let mut a = base;
                let last = u32::from_be_bytes([a.bytes[12], a.bytes[13], a.bytes[14], a.bytes[15]]);
                a.bytes[12..].copy_from_slice(&(last | i).to_be_bytes());
                *addrs.entry(a).or_default() |= ADDR_USER_VIP;
            }
            protos.push((rule.proto.number(), rule.ports.0, rule.ports.1));
        }
    }
    for d in service.dests() {
        if !matches!(d.method(), ForwardMethod::Masq | ForwardMethod::FullNat) {
            continue;
        }
        *addrs.entry(Addr::from(d.addr())).or_default() |= ADDR_USER_DEST;
        for &(proto, lo, hi) in &protos {
            // A server without a port answers from the port the client asked for.
            let ports = if d.port() != 0 {
                d.port()..=d.port()
            } else if hi.saturating_sub(lo) < MARK_RULE_MAX_PORTS {
                lo..=hi
            } else {
                continue;
            };
            for port in ports {
                user_dests.insert(SvcKey {
                    addr: Addr::from(d.addr()),
                    port_be: port.to_be(),
                    proto,
                    pad: 0,
                });
            }
        }
    }
}

impl Publisher {
    /// A publisher for an empty program.
    pub fn new() -> Publisher {
        Publisher::default()
    }

    /// A publisher for maps adopted from an earlier rvsd ([`Datapath::adopted`]): the service
    /// ids and server slots already in the maps are taken over, so connections keep pointing
    /// at their servers once the configuration is published again.
    pub fn adopt(dp: &Datapath) -> Result<Publisher, Error> {
        let mut p = Publisher::default();
        for key in dp.keys::<SvcKey>("services")? {
            let Some(svc) = dp.get::<SvcKey, Svc>("services", &key)? else {
                continue;
            };
            let dests: SvcDests = dp.get("svc_dests", &svc.id)?.unwrap_or_default();
            let slots: Vec<u32> = dests.slot[..(dests.count as usize).min(MAX_DESTS)].to_vec();
            let mut shape = Vec::new();
            for &slot in &slots {
                if let Some(d) = dp.get::<u32, Dest>("dests", &slot)? {
                    let slot_key = (key, d.addr.ip(), u16::from_be(d.port_be));
                    p.slots.insert(slot_key, slot);
                    p.owner.insert(slot, slot_key);
                    shape.push((slot, d.weight));
                    p.next_slot = p.next_slot.max(slot + 1);
                }
            }
            p.next_service = p.next_service.max(svc.id + 1);
            // A table another service named first (maps of a build without table indexes
            // name table 0 for all) is not this one's: it gets another when published.
            let named = p.tables.values().any(|&t| t == dests.table);
            if (dests.hash_len > 0 || dests.wrr_len > 0) && !named {
                p.tables.insert(svc.id, dests.table);
                p.next_table = p.next_table.max(dests.table + 1);
            }
            p.cursor_for.insert(svc.id, shape);
            p.services.insert(key, (svc.id, slots));
        }
        // Tables below the highest one named that no service names are free.
        let named: HashSet<u32> = p.tables.values().copied().collect();
        p.free_tables = (0..p.next_table).filter(|t| !named.contains(t)).collect();
        // Slots are handed out in order (those taken back lie below the highest handed out):
        // every written one is below the first blank entry. Slots of servers the earlier rvsd
        // had removed are not live here: they are taken back only once nothing names them.
        while p.next_slot < dp.limits().dests {
            match dp.get::<u32, Dest>("dests", &p.next_slot)? {
                Some(d) if d != Dest::default() => p.next_slot += 1,
                _ => break,
            }
        }
        for k in dp.keys::<SvcKey>("user_dests")? {
            p.user_dests.insert(k);
        }
        for addr in dp.keys::<Addr>("addrs")? {
            if let Some(flags) = dp.get::<Addr, u32>("addrs", &addr)? {
                p.addrs.insert(addr, flags);
            }
        }
        Ok(p)
    }

    /// One past the highest real-server slot handed out: every slot a connection can point at
    /// is below it.
    pub fn slot_bound(&self) -> u32 {
        self.next_slot
    }

    /// The real servers published, each as its dest slot, its service (virtual address, port,
    /// protocol number) and its address and port.
    pub fn servers(&self) -> impl Iterator<Item = (u32, (IpAddr, u16, u8), (IpAddr, u16))> + '_ {
        self.slots.iter().map(|((svc, addr, port), slot)| {
            (
                *slot,
                (svc.addr.ip(), u16::from_be(svc.port_be), svc.proto),
                (*addr, *port),
            )
        })
    }

    /// The services published, each as (virtual address, port, protocol number) with its id.
    pub fn service_ids(&self) -> impl Iterator<Item = ((IpAddr, u16, u8), u32)> + '_ {
        self.services
            .iter()
            .map(|(k, (id, _))| ((k.addr.ip(), u16::from_be(k.port_be), k.proto), *id))
    }

    /// The program's id of the service `key`, once published.
    pub fn service_id(&self, key: &rvs_engine::ServiceKey) -> Option<u32> {
        self.services.get(&svc_key(key)).map(|(id, _)| *id)
    }

    /// Writes the services and real servers of `walk` and the `settings` into the program's
    /// maps, and removes the services `walk` no longer has.
    pub fn publish(
        &mut self,
        dp: &Datapath,
        walk: &SpecWalk,
        settings: &Settings,
    ) -> Result<(), Error> {
        self.written.settings(dp, settings)?;
        // Servers and services gone since the last publication go to the trash first, and
        // tables no longer needed are given back, so that what this publication adds can take
        // their slots, ids and tables.
        let mut seen = HashSet::new();
        for service in walk.services() {
            let spec = service.spec();
            if !spec.key.is_tcp_udp_address() {
                continue;
            }
            let key = svc_key(&spec.key);
            seen.insert(key);
            let Some((id, old)) = self.services.get(&key).cloned() else {
                continue;
            };
            let kept: HashSet<u32> = service
                .dests()
                .filter_map(|d| {
                    self.slots
                        .get(&(key, d.spec().addr, d.spec().port))
                        .copied()
                })
                .collect();
            for &slot in old.iter().filter(|s| !kept.contains(s)) {
                self.mark_removed(dp, key, slot)?;
            }
            if let Some((_, slots)) = self.services.get_mut(&key) {
                slots.retain(|s| kept.contains(s));
            }
            if service.hash_table().is_none() && spec.scheduler != SchedulerKind::Wrr {
                self.release_table(id);
            }
        }
        let gone: Vec<SvcKey> = self
            .services
            .keys()
            .filter(|k| !seen.contains(*k))
            .copied()
            .collect();
        for key in gone {
            dp.remove("services", &key)?;
            if let Some((id, slots)) = self.services.remove(&key) {
                self.written.forget_service(&key, id);
                self.release_table(id);
                self.cursor_for.remove(&id);
                self.trash_services.insert(key, id);
                for slot in slots {
                    self.mark_removed(dp, key, slot)?;
                }
            }
        }
        // What does not fit is left out (a service, a server, a table: the service goes to
        // rvsd), the rest published, and the first such error returned at the end.
        let mut no_room: Option<Error> = None;
        let mut addrs: HashMap<Addr, u32> = HashMap::new();
        let mut user_dests: HashSet<SvcKey> = HashSet::new();
        let mut tunnels: HashMap<u32, IpAddr> = HashMap::new();
        let mut user_services: HashSet<SvcKey> = HashSet::new();
        for service in walk.services() {
            let spec = service.spec();
            let syn_proxied = settings.syn_proxy != 0
                && spec.key.proto == Protocol::Tcp
                && service.dests().len() > 0
                && service
                    .dests()
                    .all(|d| matches!(d.method(), ForwardMethod::Masq | ForwardMethod::FullNat));
            if !spec.key.is_tcp_udp_address() {
                // Served whole by rvsd: its addresses and its real servers' endpoints send
                // their packets up.
                served_by_rvsd(&service, walk.mark_rules(), &mut addrs, &mut user_dests);
                continue;
            }
            let key = svc_key(&spec.key);
            *addrs.entry(key.addr).or_default() |= ADDR_VIP;
            let known = self
                .services
                .get(&key)
                .map(|(id, _)| *id)
                .or_else(|| self.trash_services.remove(&key));
            let Some(id) = fits(
                known.map_or_else(|| self.new_service_id(dp, walk), Ok),
                &mut no_room,
            )?
            else {
                continue;
            };
            let mut dests = SvcDests::default();
            let mut weights = Vec::new();
            let mut slots = Vec::new();
            for d in service.dests() {
                let ds = d.spec();
                let slot_key = (key, ds.addr, ds.port);
                let known = self
                    .slots
                    .get(&slot_key)
                    .copied()
                    .or_else(|| self.trash_slots.remove(&slot_key));
                let Some(slot) = fits(known.map_or_else(|| self.new_slot(dp), Ok), &mut no_room)?
                else {
                    continue;
                };
                self.slots.insert(slot_key, slot);
                self.owner.insert(slot, slot_key);
                let (tun_kind, tun_csum, tun_port_be) = Dest::tunnel_fields(&ds.tunnel);
                self.written.dest(
                    dp,
                    slot,
                    Dest {
                        addr: Addr::from(ds.addr),
                        port_be: ds.port.to_be(),
                        method: method_of(ds.method) as u8,
                        available: 1,
                        weight: ds.weight,
                        u_threshold: ds.u_threshold,
                        l_threshold: ds.l_threshold,
                        id: d.id(),
                        tun_kind,
                        tun_csum,
                        tun_port_be,
                    },
                )?;
                if slots.len() < MAX_DESTS {
                    dests.slot[slots.len()] = slot;
                }
                slots.push(slot);
                weights.push(ds.weight);
                if matches!(ds.method, ForwardMethod::Masq | ForwardMethod::FullNat) {
                    *addrs.entry(Addr::from(ds.addr)).or_default() |= ADDR_NAT_DEST;
                }
                if ds.method == ForwardMethod::Tunnel {
                    tunnels.insert(slot, ds.addr);
                }
            }
            // The SYN proxy's services are rvsd's (their connections, deferred segments and
            // shifted numbers are the engine's); the program answers their SYNs.
            let mut user = !program_schedules(spec) || slots.len() > MAX_DESTS || syn_proxied;
            dests.count = slots.len().min(MAX_DESTS) as u32;
            let mut has_table = false;
            // A service with no table left is scheduled by rvsd.
            let mut table_for = |p: &mut Publisher, user: &mut bool| {
                let t = fits(p.table_for(dp, id), &mut no_room)?;
                *user |= t.is_none();
                Ok::<_, Error>(t)
            };
            if let (Some(table), false) = (service.hash_table(), user) {
                if table.entries.len() > HASH_STRIDE {
                    user = true;
                } else if let Some(t) = table_for(self, &mut user)? {
                    dests.table = t;
                    has_table = true;
                    self.written.hash_tab(dp, dests.table, &table.entries)?;
                    dests.hash_len = table.entries.len() as u32;
                }
            }
            if spec.scheduler == SchedulerKind::Wrr && !user {
                match service.wrr_sequence() {
                    Some(seq) if seq.steps.len() <= WRR_SEQ => {
                        if let Some(t) = table_for(self, &mut user)? {
                            let steps: Vec<WrrStep> = seq
                                .steps
                                .iter()
                                .map(|&(level, pos)| WrrStep { level, pos })
                                .collect();
                            dests.table = t;
                            has_table = true;
                            self.written.wrr_seq(dp, dests.table, &steps)?;
                            dests.wrr_len = seq.steps.len() as u32;
                            dests.wrr_mw = seq.mw;
                            dests.wrr_di = seq.di;
                        }
                    }
                    _ => user = true,
                }
            }
            if !has_table {
                self.release_table(id);
            }
            if user {
                // Replies of rvsd's connections to this service come from these endpoints.
                for d in service.dests() {
                    if matches!(d.method(), ForwardMethod::Masq | ForwardMethod::FullNat) {
                        let port = if d.port() == 0 {
                            spec.key.port
                        } else {
                            d.port()
                        };
                        user_dests.insert(SvcKey {
                            addr: Addr::from(d.addr()),
                            port_be: port.to_be(),
                            proto: key.proto,
                            pad: 0,
                        });
                    }
                }
            }
            self.services.insert(key, (id, slots.clone()));
            if let Some(p) = &spec.persistence {
                dests.persist_ms = p.timeout_s.saturating_mul(1000);
                dests.persist_mask = Addr::from(p.netmask);
            }
            dests.laddr_count = spec.local_addrs.len().min(MAX_LADDRS) as u32;
            for (slot, &a) in dests.laddr.iter_mut().zip(&spec.local_addrs) {
                *slot = Addr::from(a);
            }
            self.written.svc_dests(dp, id, dests)?;
            // The scheduler's cursor, in the engine's layout: the engine's own for a service
            // new to the program; the program's, carried over by the engine's rules, when the
            // servers or weights changed; else left where the program moved it.
            let shape: Vec<(u32, u32)> =
                slots.iter().copied().zip(weights.iter().copied()).collect();
            match self.cursor_for.get(&id) {
                None => dp.put("sched_cursor", &id, &service.sched_cursor())?,
                Some(old) if *old != shape => {
                    let now: u64 = dp.get("sched_cursor", &id)?.unwrap_or_default();
                    dp.put("sched_cursor", &id, &service.carry_sched_cursor(now))?;
                }
                Some(_) => {}
            }
            self.cursor_for.insert(id, shape);
            self.written.service(
                dp,
                key,
                Svc {
                    id,
                    sched: sched_of(spec.scheduler) as u8,
                    flags: if user { SVC_F_USER } else { 0 }
                        | if syn_proxied { SVC_F_SYNPROXY } else { 0 }
                        | if spec.sched_flags.fallback() {
                            SVC_F_FALLBACK
                        } else {
                            0
                        }
                        | if spec.sched_flags.port() {
                            SVC_F_PORT
                        } else {
                            0
                        }
                        | if spec.persistence.is_some() {
                            SVC_F_PERSIST
                        } else {
                            0
                        },
                    pad: 0,
                },
            )?;
            if user {
                user_services.insert(key);
            }
        }
        // A deleted service's connections stay until they time out (IPVS's). The program keeps
        // its own; those of a service rvsd served stay rvsd's, so their packets still go up.
        for service in walk.retired_services() {
            let spec = service.spec();
            let key = svc_key(&spec.key);
            let rvsds = !spec.key.is_tcp_udp_address() || self.user_services.contains(&key);
            if rvsds {
                served_by_rvsd(
                    &service,
                    walk.retired_mark_rules(),
                    &mut addrs,
                    &mut user_dests,
                );
                user_services.insert(key);
            }
        }
        self.user_services = user_services;
        for (addr, flags) in &addrs {
            if self.addrs.get(addr) != Some(flags) {
                dp.put("addrs", addr, flags)?;
            }
        }
        for addr in self.addrs.keys().filter(|a| !addrs.contains_key(*a)) {
            dp.remove("addrs", addr)?;
        }
        self.addrs = addrs;
        for k in user_dests.difference(&self.user_dests) {
            dp.put("user_dests", k, &1u32)?;
        }
        for k in self.user_dests.difference(&user_dests) {
            dp.remove("user_dests", k)?;
        }
        self.user_dests = user_dests;
        self.tunnels = tunnels;
        no_room.map_or(Ok(()), Err)
    }

    /// Service `id`'s scheduler table: the one it has, else a free one.
    fn table_for(&mut self, dp: &Datapath, id: u32) -> Result<u32, Error> {
        if let Some(&t) = self.tables.get(&id) {
            return Ok(t);
        }
        let bound = dp.limits().tables;
        let t = match self.free_tables.pop() {
            Some(t) => t,
            None if self.next_table < bound => {
                self.next_table += 1;
                self.next_table - 1
            }
            None => {
                return Err(Error::Capacity(format!(
                    "more than {bound} wrr, sh, dh and mh services for the BPF data plane: \
                     raise --bpf-max-tables"
                )))
            }
        };
        self.tables.insert(id, t);
        Ok(t)
    }

    /// Service `id` no longer needs its scheduler table, if it had one.
    fn release_table(&mut self, id: u32) {
        if let Some(t) = self.tables.remove(&id) {
            self.free_tables.push(t);
        }
    }

    /// A slot for a real server new to its service: the next never used, else one a removed
    /// server held that nothing refers to any more ([`crate::reclaim`]), cleared.
    fn new_slot(&mut self, dp: &Datapath) -> Result<u32, Error> {
        let bound = dp.limits().dests;
        if self.next_slot < bound {
            let s = self.next_slot;
            self.next_slot += 1;
            // A next hop cached for the slot's earlier holder (maps adopted with slots beyond
            // those in use) is not this server's.
            dp.put("dest_hops", &s, &Hop::default())?;
            return Ok(s);
        }
        if self.free_slots.is_empty() && due(self.slots_scanned_empty) {
            let live: HashSet<u32> = self.slots.values().copied().collect();
            self.free_slots =
                crate::reclaim::free_slots(dp, (0..self.next_slot).filter(|s| !live.contains(s)))?;
            // A server taken out of the trash would find its slot another's.
            let free: HashSet<u32> = self.free_slots.iter().copied().collect();
            self.trash_slots.retain(|_, s| !free.contains(s));
            self.slots_scanned_empty = free.is_empty().then(Instant::now);
        }
        let s = self.free_slots.pop().ok_or_else(|| {
            Error::Capacity(format!(
                "more than {bound} real servers for the BPF data plane (removed ones count while \
                 connections or templates name them): raise --bpf-max-dests"
            ))
        })?;
        crate::reclaim::reset_slot(dp, s)?;
        self.tun_sources.remove(&s);
        Ok(s)
    }

    /// An id for a service new to the program: the next never used, else one a removed
    /// service held that nothing refers to any more ([`crate::reclaim`]), its counters zeroed.
    /// The ids of deleted services the engine still keeps (their connections) stay theirs.
    fn new_service_id(&mut self, dp: &Datapath, walk: &SpecWalk) -> Result<u32, Error> {
        let bound = dp.limits().services;
        if self.next_service < bound {
            let id = self.next_service;
            self.next_service += 1;
            return Ok(id);
        }
        if self.free_ids.is_empty() && due(self.ids_scanned_empty) {
            let mut held: HashSet<u32> = self.services.values().map(|(id, _)| *id).collect();
            held.extend(
                walk.retired_services()
                    .filter_map(|s| self.trash_services.get(&svc_key(&s.spec().key)).copied()),
            );
            self.free_ids = crate::reclaim::free_service_ids(
                dp,
                (0..self.next_service).filter(|id| !held.contains(id)),
            )?;
            let free: HashSet<u32> = self.free_ids.iter().copied().collect();
            self.trash_services.retain(|_, id| !free.contains(id));
            self.ids_scanned_empty = free.is_empty().then(Instant::now);
        }
        let id = self.free_ids.pop().ok_or_else(|| {
            Error::Capacity(format!(
                "more than {bound} services for the BPF data plane (deleted ones count while \
                 connections or templates name them): raise --bpf-max-services"
            ))
        })?;
        crate::reclaim::reset_service(dp, id)?;
        Ok(id)
    }

    /// Writes the outer source address toward each tunnel real server of the last publication
    /// (`source_for`, rvsd's choice: the one its engine tunnels from), where it changed. Call
    /// it after [`Publisher::publish`] and when the host's addresses or routes change. A
    /// server without a source is left to the kernel's choice.
    pub fn publish_tunnel_sources(
        &mut self,
        dp: &Datapath,
        source_for: impl Fn(IpAddr) -> Option<IpAddr>,
    ) -> Result<(), Error> {
        for (&slot, &rip) in &self.tunnels {
            let src = source_for(rip).filter(|s| s.is_ipv6() == rip.is_ipv6());
            if self.tun_sources.get(&slot) != Some(&src) {
                let value = src.map(Addr::from).unwrap_or_default();
                dp.put("tun_src", &slot, &value)?;
                self.tun_sources.insert(slot, src);
            }
        }
        self.tun_sources
            .retain(|slot, _| self.tunnels.contains_key(slot));
        Ok(())
    }

    /// Real server slot `slot` of service `key` removed: connections to it see it unavailable,
    /// and the slot goes to the trash. A slot the service no longer has (another's since) is
    /// left alone.
    fn mark_removed(&mut self, dp: &Datapath, key: SvcKey, slot: u32) -> Result<(), Error> {
        let Some(&slot_key) = self.owner.get(&slot).filter(|k| k.0 == key) else {
            return Ok(());
        };
        let last = match self.written.dest_at(slot) {
            Some(d) => Some(d),
            None => dp.get::<u32, Dest>("dests", &slot)?,
        };
        if let Some(d) = last {
            self.written.dest(dp, slot, Dest { available: 0, ..d })?;
        }
        self.slots.remove(&slot_key);
        self.owner.remove(&slot);
        self.trash_slots.insert(slot_key, slot);
        Ok(())
    }
}
