//! Connection synchronization (IPVS's `ip_vs_sync.c`, engine side): the master's export of
//! connection changes and whole-table snapshots as [`rvs_sync::SyncConn`] records, and the
//! backup's import, which installs them as IPVS's backup does (`ip_vs_proc_conn`).
//!
//! Export rule (`ip_vs_sync_conn_needed` with `sync_refresh_period` 0, the kernel default):
//! only incoming packets count; a TCP connection is synced only in ESTABLISHED, FIN_WAIT,
//! CLOSE, CLOSE_WAIT or TIME_WAIT, at once when it entered one of those other than
//! ESTABLISHED since its last sync, and otherwise when its incoming packet count modulo
//! `sync_period` (50) equals `sync_threshold` (3); UDP by the count rule alone. A connection's
//! persistence template is synced with it. The packet counter is 16 bits and wraps
//! (simplification: the kernel's is 32 bits).
//!
//! Import: the record's service must exist (by firewall mark, else protocol, address and
//! port) and so must its real server; otherwise the record is dropped and counted (the kernel
//! would keep a connection without a destination). Synced connections carry
//! IPVS's `IP_VS_CONN_F_SYNC`, take the record's state and timeout, and are bound to their
//! destination, so they count as its active or inactive connections. A FULLNAT connection
//! keeps its local address and port (the rvs option); it is installed only when that local
//! port's reply hash lands in the connection's own table shard here (counted otherwise);
//! directors with the same shard count agree on shards (the shard bits are unkeyed).

use core::sync::atomic::Ordering;
use std::sync::Arc;

use rvs_sync::SyncConn;
use rvs_wire::ip;

use crate::config::WireKey;
use crate::conn::{Conn, ConnExt, F_INACTIVE, F_LOCAL, F_NO_OUTPUT, F_SYNCED, F_TUNNEL};
use crate::engine::Engine;
use crate::flow::{flow_hash, mark_addr, to16, Direction, Tuple};
use crate::fullnat::{FnatConn, PortKey};
use crate::persist::TemplateKey;
use crate::spec::Millis;
use crate::sync_state::{
    conn_record, find_dest, template_record, SyncCounters, SyncImportError, C_EXPORTED, C_IMPORTED,
    C_NO_DEST, C_NO_SERVICE, C_OVERFLOW, C_REFUSED,
};
use crate::synproxy::SynProxied;
use crate::view::ConnState;

impl Engine {
    /// Turns the export of connection changes on (master) or off. While on, workers queue
    /// records that [`Engine::sync_drain`] hands out.
    pub fn set_sync_export(&self, on: bool) {
        self.sync.enabled.store(on, Ordering::Relaxed);
        if !on {
            self.sync.queue.lock().clear();
        }
    }

    /// Whether connection changes are exported (a sync master runs).
    pub fn sync_exporting(&self) -> bool {
        self.sync.exporting()
    }

    /// IPVS's `sync_threshold` and `sync_period` in force.
    pub fn sync_threshold(&self) -> (u32, u32) {
        (
            self.sync.threshold.load(Ordering::Relaxed),
            self.sync.period.load(Ordering::Relaxed),
        )
    }

    /// Sets IPVS's `sync_threshold` and `sync_period` (defaults 3 and 50).
    pub fn set_sync_threshold(&self, threshold: u32, period: u32) {
        self.sync.threshold.store(threshold, Ordering::Relaxed);
        self.sync.period.store(period, Ordering::Relaxed);
    }

    /// The records queued since the last call.
    pub fn sync_drain(&self) -> Vec<SyncConn> {
        core::mem::take(&mut *self.sync.queue.lock())
    }

    /// Records of every connection and template, for a resync.
    pub fn sync_snapshot(&self, _now: Millis) -> Vec<SyncConn> {
        let snap = self.snapshot.load();
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let g = s.shard.lock();
            out.extend(g.iter_with_proxy().filter_map(|(c, ext, proxied)| {
                let st = ConnState::from_u8(c.state);
                let (timeout, fwmark) = (snap.timeouts.of(st), snap.fwmark_of(c.svc_id));
                conn_record(c, ext, proxied.as_ref(), timeout, fwmark)
            }));
        }
        for t in self.templates.all() {
            out.extend(template_record(&t, snap.fwmark_of(t.key.svc_id)));
        }
        out
    }

    /// Synchronization counters.
    pub fn sync_counters(&self) -> SyncCounters {
        let c = |i: usize| self.sync.c[i].load(Ordering::Relaxed);
        SyncCounters {
            exported: c(C_EXPORTED),
            queue_overflow: c(C_OVERFLOW),
            imported: c(C_IMPORTED),
            no_service: c(C_NO_SERVICE),
            no_destination: c(C_NO_DEST),
            refused: c(C_REFUSED),
        }
    }

    /// Installs (or refreshes) a synced connection or template, as IPVS's backup does.
    pub fn sync_import(&self, now: Millis, rec: &SyncConn) -> Result<(), SyncImportError> {
        let r = self.import(now, rec);
        self.sync.bump(match r {
            Ok(()) => C_IMPORTED,
            Err(SyncImportError::NoService) => C_NO_SERVICE,
            Err(SyncImportError::NoDestination) => C_NO_DEST,
            Err(_) => C_REFUSED,
        });
        r
    }

    fn import(&self, now: Millis, rec: &SyncConn) -> Result<(), SyncImportError> {
        let snap = self.snapshot.load();
        let v6 = rec.addrs.is_v6();
        let (caddr, vaddr, daddr) = rec.addrs.ips();
        let template = rec.flags & rvs_sync::F_TEMPLATE != 0;
        let svc = if rec.fwmark != 0 {
            snap.service_by_mark(rec.fwmark, v6)
        } else {
            snap.service_at(&WireKey {
                addr: &to16(vaddr),
                port: rec.vport,
                proto: rec.protocol,
            })
        }
        .ok_or(SyncImportError::NoService);
        // The service and its server are needed to make an entry, not to refresh one: as
        // IPVS's ip_vs_proc_conn, an existing connection is updated whatever became of its
        // service (a deleted one's connections live on, see crate::retired).
        let service_and_dest = || {
            let svc = svc?;
            let dest = find_dest(&svc.dests, daddr, rec.dport, template)
                .ok_or(SyncImportError::NoDestination)?;
            Ok::<_, SyncImportError>((svc, dest))
        };
        let timeout_ms = u64::from(rec.timeout).saturating_mul(1000);
        if template {
            let (svc, dest) = service_and_dest()?;
            // PE data needs the name of an engine this director has
            // (`ip_vs_conn_fill_param_sync`); a name alone is ignored.
            let pe_data = match (&rec.pe_data, &rec.pe_name) {
                (None, _) => None,
                (Some(d), Some(name))
                    if crate::spec::PersistenceEngine::by_name(&String::from_utf8_lossy(name))
                        .is_some() =>
                {
                    Some(Arc::from(d.as_slice()))
                }
                _ => return Err(SyncImportError::Unsupported),
            };
            let key = TemplateKey {
                svc_id: svc.id,
                proto: rec.protocol,
                v6,
                client: to16(caddr),
                vaddr: if rec.fwmark != 0 {
                    mark_addr(rec.fwmark, v6)
                } else {
                    to16(vaddr)
                },
                vport: rec.vport,
                pe_data,
            };
            self.templates
                .install(key, dest, rec.dport, now.0, timeout_ms);
            return Ok(());
        }
        let state = match rec.protocol {
            ip::TCP if rec.state <= ConnState::SynAck as u16 => ConnState::from_u8(rec.state as u8),
            ip::UDP => ConnState::Udp,
            ip::SCTP if usize::from(rec.state) < crate::sctp_state::SCTP_STATES => {
                ConnState::from_u8(crate::sctp_state::SCTP_BASE + rec.state as u8)
            }
            _ => return Err(SyncImportError::Unsupported),
        };
        let inactive = !state.is_active();
        let t = Tuple {
            proto: rec.protocol,
            v6,
            src: to16(caddr),
            dst: to16(vaddr),
            sport: rec.cport,
            dport: rec.vport,
        };
        let h = flow_hash(&self.hasher, t.proto, &t.src, t.sport);
        let mut shard = self.shard(h).lock();
        let proxied = rec.seq.as_ref().and_then(SynProxied::from_seq_option);
        if let Some(slot) = shard.find(h, Direction::Input, &t) {
            if let Some(c) = shard.get_mut(slot) {
                c.set_active(!inactive);
                c.state = state as u8;
                c.sync_state = state as u8;
                c.expires = now.0.saturating_add(timeout_ms);
            }
            if let Some(sp) = proxied {
                shard.set_synproxied(slot, sp);
            }
            return Ok(());
        }
        let (svc, dest) = service_and_dest()?;
        if shard.len() >= self.shard_cap {
            return Err(SyncImportError::TableFull);
        }
        let method = match rec.flags & rvs_sync::F_FWD_MASK {
            rvs_sync::F_MASQ | rvs_sync::F_FULLNAT => 0,
            rvs_sync::F_DROUTE => F_NO_OUTPUT,
            rvs_sync::F_TUNNEL => F_NO_OUTPUT | F_TUNNEL,
            rvs_sync::F_LOCALNODE => F_NO_OUTPUT | F_LOCAL,
            _ => return Err(SyncImportError::Unsupported),
        };
        let fnat = match (rec.flags & rvs_sync::F_FWD_MASK, rec.fnat_local) {
            (rvs_sync::F_FULLNAT, Some(local)) => {
                let laddr = to16(local.ip());
                if self.shard_index(flow_hash(&self.hasher, t.proto, &laddr, local.port()))
                    != self.shard_index(h)
                {
                    return Err(SyncImportError::LocalPort);
                }
                let key = PortKey {
                    proto: t.proto,
                    laddr,
                    raddr: to16(dest.addr),
                    rport: dest.port,
                };
                let lease = self
                    .local_ports
                    .reserve(key, local.port())
                    .ok_or(SyncImportError::LocalPort)?;
                Some(FnatConn {
                    local: lease,
                    proxy: None,
                })
            }
            (rvs_sync::F_FULLNAT, None) => return Err(SyncImportError::Unsupported),
            _ => None,
        };
        dest.bind(!inactive);
        let flags = method | F_SYNCED | if inactive { F_INACTIVE } else { 0 };
        let expires = now.0.saturating_add(timeout_ms);
        let conn = Conn {
            sync_state: state as u8,
            ..Conn::new(&t, svc.id, dest, rec.dport, state, flags, expires)
        };
        let slot = shard.insert(h, &self.hasher, conn, ConnExt::of(fnat, None));
        if let Some(sp) = proxied {
            shard.set_synproxied(slot, sp);
            if let Some(c) = shard.get(slot).filter(|_| sp.delta.is_some()) {
                self.handoff.offer(c);
            }
        }
        Ok(())
    }
}
