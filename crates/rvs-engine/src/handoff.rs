//! Handing SYN-proxied connections over to a data plane that forwards them itself (rvsd's BPF
//! program). Once its real server has answered, a proxied NAT connection needs no more than
//! IPVS's per-packet work plus one number shifted in each segment, which the program does; the
//! engine keeps only the handshake.
//!
//! While a plane asks for them ([`Engine::set_proxy_handoff`]), the engine queues each proxied
//! connection whose shift became known. The plane takes their records
//! ([`Engine::proxied_ready`]: IPVS sync records, the shift in the sequence option), installs
//! them, lets the frames already on their way to the engine through, and then has the engine
//! forget them ([`Engine::release_handed_over`]), which takes them out of their server's counts
//! as expiry does. The plane reports the counts of what it forwards per server
//! ([`Engine::set_handed_over_counts`]) so that schedulers and thresholds still see them.
//!
//! Only NAT connections without a persistence template go: a FULLNAT connection's local port
//! and a template's accounting stay with the engine.

use core::sync::atomic::Ordering;
use std::net::IpAddr;

use rvs_sync::SyncConn;

use crate::config::{Snapshot, WireKey};
use crate::conn::{Conn, ConnExt, F_INACTIVE, F_NO_OUTPUT};
use crate::engine::Engine;
use crate::flow::{flow_hash, to16, Direction, Tuple};
use crate::sync_state::{conn_record, find_dest};
use crate::synproxy::SynProxied;
use crate::view::ConnState;

/// The record another plane takes connection `c` over with, when it can: a proxied NAT
/// connection of an address service (not a firewall-mark one, whose packets the other plane
/// would look up under an address service), its shift known, no side record (FULLNAT, a
/// template), with its state's full timeout.
fn handover_record(
    snap: &Snapshot,
    c: &Conn,
    ext: Option<&ConnExt>,
    sp: Option<SynProxied>,
) -> Option<SyncConn> {
    let sp = sp.filter(|sp| sp.delta.is_some())?;
    if ext.is_some() || c.flags & F_NO_OUTPUT != 0 {
        return None;
    }
    if snap
        .service_by_id(c.svc_id)
        .is_none_or(|svc| svc.spec.key.fwmark != 0)
    {
        return None;
    }
    let timeout = snap.timeouts.of(ConnState::from_u8(c.state));
    conn_record(c, None, Some(&sp), timeout, 0)
}

/// The tuple of the client-side packets of the connection `rec` describes.
fn record_tuple(rec: &SyncConn) -> Tuple {
    let (caddr, vaddr, _) = rec.addrs.ips();
    Tuple {
        proto: rec.protocol,
        v6: rec.addrs.is_v6(),
        src: to16(caddr),
        dst: to16(vaddr),
        sport: rec.cport,
        dport: rec.vport,
    }
}

impl Engine {
    /// Whether proxied connections are queued for another plane once their real server has
    /// answered (rvsd's BPF plane sets it while it runs). Turning it on also queues those
    /// already in the table (a table taken over from an earlier rvsd); turning it off empties
    /// the queue.
    pub fn set_proxy_handoff(&self, on: bool) {
        self.handoff.wanted.store(on, Ordering::Relaxed);
        if !on {
            self.handoff.ready.lock().clear();
            return;
        }
        for s in self.shards.iter() {
            let shard = s.shard.lock();
            for (c, _, sp) in shard.iter_with_proxy() {
                if sp.is_some_and(|sp| sp.delta.is_some()) {
                    self.handoff.offer(c);
                }
            }
        }
    }

    /// The records of the proxied connections queued since the last call that are still in
    /// the table, each with its shift and its state's full timeout. They stay the engine's
    /// until [`Engine::release_handed_over`].
    pub fn proxied_ready(&self) -> Vec<SyncConn> {
        let queued = core::mem::take(&mut *self.handoff.ready.lock());
        if queued.is_empty() {
            return Vec::new();
        }
        let snap = self.snapshot.load();
        queued
            .iter()
            .filter_map(|t| {
                let h = flow_hash(&self.hasher, t.proto, &t.src, t.sport);
                let shard = self.shard(h).lock();
                let slot = shard.find(h, Direction::Input, t)?;
                let (c, ext) = shard.get_full(slot)?;
                handover_record(&snap, c, ext, shard.synproxied(slot))
            })
            .collect()
    }

    /// Forgets the connection `rec` describes, now forwarded by another plane: it leaves the
    /// table and its server's counts (not counted as expired), and counts as handed over on
    /// its server at once. Returns its record as it was last (its state may have moved since
    /// `rec` was taken: the other plane should take that), or `None` when it was not there.
    pub fn release_handed_over(&self, rec: &SyncConn) -> Option<SyncConn> {
        let t = record_tuple(rec);
        let h = flow_hash(&self.hasher, t.proto, &t.src, t.sport);
        let snap = self.snapshot.load();
        let mut shard = self.shard(h).lock();
        let slot = shard.find(h, Direction::Input, &t)?;
        let last = shard
            .get_full(slot)
            .and_then(|(c, ext)| handover_record(&snap, c, ext, shard.synproxied(slot)));
        let gone = shard.remove(slot, &self.hasher)?;
        gone.release();
        gone.conn
            .dest
            .add_handed_over(gone.conn.flags & F_INACTIVE == 0);
        self.synproxy.handed_over.fetch_add(1, Ordering::Relaxed);
        Some(last.unwrap_or_else(|| rec.clone()))
    }

    /// The connections another plane forwards for real server `server` (address, port) of
    /// service `service` (virtual address, port, protocol number): `active` and `inactive`, as
    /// the scheduler and the thresholds should count them besides the engine's own.
    pub fn set_handed_over_counts(
        &self,
        service: (IpAddr, u16, u8),
        server: (IpAddr, u16),
        active: u32,
        inactive: u32,
    ) {
        let snap = self.snapshot.load();
        let key = WireKey {
            addr: &to16(service.0),
            port: service.1,
            proto: service.2,
        };
        if let Some(dest) = snap
            .service_at(&key)
            .and_then(|svc| find_dest(&svc.dests, server.0, server.1, false))
        {
            dest.set_handed_over(active, inactive);
        }
    }
}
