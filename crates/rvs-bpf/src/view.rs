//! Reading the program's state from its pinned maps, from any thread: the connection table for
//! listings, and the real servers' connection counts and the traffic counters for `-L`.
//! (The loaded [`crate::Datapath`] stays on the thread that loaded it; this opens the pins.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use libbpf_rs::{MapCore, MapFlags, MapHandle};
use zerocopy::FromBytes;

use crate::error::Error;
use crate::maps::{
    Conn, ConnKey, Dest, DestConns, Svc, SvcDests, SvcKey, Tpl, TplKey, Traffic, MAX_DESTS,
};

/// Handles on the pinned maps a listing reads.
#[derive(Debug)]
pub struct MapsView {
    conns: MapHandle,
    templates: MapHandle,
    services: MapHandle,
    svc_dests: MapHandle,
    dests: MapHandle,
    dest_conns: MapHandle,
    svc_stats: MapHandle,
    dest_stats: MapHandle,
}

/// A persistence template as a listing shows it (IPVS's `/proc/net/ip_vs_conn` line of a
/// template: the masked client with port 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateView {
    /// IP protocol number.
    pub proto: u8,
    /// The client's address, masked.
    pub client: IpAddr,
    /// The virtual address.
    pub vaddr: IpAddr,
    /// The virtual port (0 for a port-0 service).
    pub vport: u16,
    /// The real server.
    pub daddr: IpAddr,
    /// The real server's port (0 for a port-0 service).
    pub dport: u16,
    /// Expiry, CLOCK_MONOTONIC nanoseconds.
    pub expires_ns: u64,
    /// The persistence timeout, milliseconds.
    pub timeout_ms: u32,
    /// The real server's forwarding method ([`crate::maps::Method`] as a byte).
    pub method: u8,
}

/// What the program holds for one real server of one service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestState {
    /// Its connection counts.
    pub conns: DestConns,
    /// Its traffic counters, summed over CPUs.
    pub traffic: Traffic,
}

fn open(dir: &Path, name: &'static str) -> Result<MapHandle, Error> {
    MapHandle::from_pinned_path(dir.join(name)).map_err(|source| Error::Map { map: name, source })
}

fn get<V: FromBytes>(map: &MapHandle, name: &'static str, key: &[u8]) -> Result<Option<V>, Error> {
    Ok(map
        .lookup(key, MapFlags::ANY)
        .map_err(|source| Error::Map { map: name, source })?
        .and_then(|b| V::read_from_bytes(&b).ok()))
}

fn per_cpu_sum(map: &MapHandle, name: &'static str, index: u32) -> Result<Traffic, Error> {
    Ok(map
        .lookup_percpu(&index.to_ne_bytes(), MapFlags::ANY)
        .map_err(|source| Error::Map { map: name, source })?
        .unwrap_or_default()
        .iter()
        .filter_map(|v| Traffic::read_from_bytes(v).ok())
        .fold(Traffic::default(), |sum, t| sum.plus(&t)))
}

impl MapsView {
    /// Opens the maps pinned in `dir`.
    pub fn open(dir: &Path) -> Result<MapsView, Error> {
        Ok(MapsView {
            conns: open(dir, "conns")?,
            templates: open(dir, "templates")?,
            services: open(dir, "services")?,
            svc_dests: open(dir, "svc_dests")?,
            dests: open(dir, "dests")?,
            dest_conns: open(dir, "dest_conns")?,
            svc_stats: open(dir, "svc_stats")?,
            dest_stats: open(dir, "dest_stats")?,
        })
    }

    /// Every connection of the program's table with its key (the client's tuple).
    pub fn connections(&self) -> Result<Vec<(ConnKey, Conn)>, Error> {
        let mut out = Vec::new();
        for key in self.conns.keys() {
            if let Some(conn) = get::<Conn>(&self.conns, "conns", &key)? {
                if let Ok(k) = ConnKey::read_from_bytes(&key) {
                    out.push((k, conn));
                }
            }
        }
        Ok(out)
    }

    /// Every persistence template, resolved to its service's address and its real server.
    pub fn templates(&self) -> Result<Vec<TemplateView>, Error> {
        let mut vaddr_of = HashMap::new();
        for raw in self.services.keys() {
            if let (Ok(key), Some(svc)) = (
                SvcKey::read_from_bytes(&raw),
                get::<Svc>(&self.services, "services", &raw)?,
            ) {
                vaddr_of.insert(svc.id, key.addr.ip());
            }
        }
        let mut out = Vec::new();
        for raw in self.templates.keys() {
            let Ok(key) = TplKey::read_from_bytes(&raw) else {
                continue;
            };
            let Some(t) = get::<Tpl>(&self.templates, "templates", &raw)? else {
                continue;
            };
            let (Some(&vaddr), Some(dest)) = (
                vaddr_of.get(&key.svc),
                get::<Dest>(&self.dests, "dests", &t.dest.to_ne_bytes())?,
            ) else {
                continue;
            };
            out.push(TemplateView {
                proto: key.proto,
                client: key.client.ip(),
                vaddr,
                vport: u16::from_be(key.vport_be),
                daddr: dest.addr.ip(),
                dport: u16::from_be(t.dport_be),
                expires_ns: t.expires_ns,
                timeout_ms: t.timeout_ms,
                method: dest.method,
            });
        }
        Ok(out)
    }

    /// Per service (virtual address, port, protocol number): its traffic counters, and per
    /// real server (address, port) its connection counts and traffic.
    #[allow(clippy::type_complexity)]
    pub fn services(
        &self,
    ) -> Result<HashMap<(IpAddr, u16, u8), (Traffic, HashMap<(IpAddr, u16), DestState>)>, Error>
    {
        let mut out = HashMap::new();
        for raw in self.services.keys() {
            let Ok(key) = SvcKey::read_from_bytes(&raw) else {
                continue;
            };
            let Some(svc) = get::<Svc>(&self.services, "services", &raw)? else {
                continue;
            };
            let traffic = per_cpu_sum(&self.svc_stats, "svc_stats", svc.id)?;
            let list: SvcDests =
                get(&self.svc_dests, "svc_dests", &svc.id.to_ne_bytes())?.unwrap_or_default();
            let mut dests = HashMap::new();
            for &slot in &list.slot[..(list.count as usize).min(MAX_DESTS)] {
                let Some(d) = get::<Dest>(&self.dests, "dests", &slot.to_ne_bytes())? else {
                    continue;
                };
                let conns: DestConns =
                    get(&self.dest_conns, "dest_conns", &slot.to_ne_bytes())?.unwrap_or_default();
                let traffic = per_cpu_sum(&self.dest_stats, "dest_stats", slot)?;
                dests.insert(
                    (d.addr.ip(), u16::from_be(d.port_be)),
                    DestState { conns, traffic },
                );
            }
            out.insert(
                (key.addr.ip(), u16::from_be(key.port_be), key.proto),
                (traffic, dests),
            );
        }
        Ok(out)
    }
}
