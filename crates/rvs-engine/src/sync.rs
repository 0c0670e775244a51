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

use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rvs_sync::{SyncAddrs, SyncConn};
use rvs_wire::ip;

use crate::config::{DestRt, Snapshot, WireKey};
use crate::conn_table::{Conn, Tuple, F_INACTIVE, F_LOCAL, F_NO_OUTPUT, F_SYNCED, F_TUNNEL, F_V6};
use crate::engine::Engine;
use crate::flow::{flow_hash, mark_addr, to16, to_ip, Direction};
use crate::fullnat::{FnatConn, PortKey};
use crate::persist::{Template, TemplateKey, Templates};
use crate::types::{ConnState, Millis};

/// `sync_state` of a connection never synced.
pub(crate) const NEVER_SYNCED: u8 = u8::MAX;

/// Records waiting for the sync daemon at most (further ones are counted and dropped).
const QUEUE_MAX: usize = 65_536;

/// Export state shared by the workers.
#[derive(Debug)]
pub(crate) struct SyncState {
    enabled: AtomicBool,
    threshold: AtomicU32,
    period: AtomicU32,
    queue: Mutex<Vec<SyncConn>>,
    c: [AtomicU64; 6],
}

impl Default for SyncState {
    fn default() -> Self {
        SyncState {
            enabled: AtomicBool::new(false),
            threshold: AtomicU32::new(rvs_sync::DEFAULT_SYNC_THRESHOLD),
            period: AtomicU32::new(rvs_sync::DEFAULT_SYNC_PERIOD),
            queue: Mutex::new(Vec::new()),
            c: Default::default(),
        }
    }
}

const C_EXPORTED: usize = 0;
const C_OVERFLOW: usize = 1;
const C_IMPORTED: usize = 2;
const C_NO_SERVICE: usize = 3;
const C_NO_DEST: usize = 4;
const C_REFUSED: usize = 5;

/// Synchronization counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounters {
    /// Records queued for sending.
    pub exported: u64,
    /// Records lost because the queue was full.
    pub queue_overflow: u64,
    /// Records installed or refreshed.
    pub imported: u64,
    /// Records dropped: no such service here.
    pub no_service: u64,
    /// Records dropped: no such real server in the service.
    pub no_destination: u64,
    /// Records dropped otherwise (protocol, state, FULLNAT local port).
    pub refused: u64,
}

/// Why a synced record was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncImportError {
    /// No service matches the record.
    #[error("no such service")]
    NoService,
    /// The service has no such real server.
    #[error("no such real server")]
    NoDestination,
    /// Protocol or state this engine does not track.
    #[error("unsupported protocol or state")]
    Unsupported,
    /// The FULLNAT local port is taken, or does not fit this table's sharding.
    #[error("FULLNAT local port unavailable")]
    LocalPort,
}

impl SyncState {
    pub(crate) fn exporting(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    fn bump(&self, i: usize) {
        self.c[i].fetch_add(1, Ordering::Relaxed);
    }

    /// An incoming packet of `c` was handled: when IPVS would sync it, its records (made
    /// while the caller holds the shard lock), to hand to [`SyncState::queue`] once the lock
    /// is released.
    pub(crate) fn on_input(&self, c: &mut Conn, snap: &Snapshot) -> Option<SyncRecords> {
        c.sync_pkts = c.sync_pkts.wrapping_add(1);
        let st = ConnState::from_u8(c.state);
        let thr = self.threshold.load(Ordering::Relaxed);
        let period = self.period.load(Ordering::Relaxed);
        if !sync_needed(c.proto, st, c.sync_state, c.sync_pkts, thr, period) {
            return None;
        }
        c.sync_state = c.state;
        let fwmark = snap.fwmark_of(c.svc_id);
        Some(SyncRecords {
            conn: conn_record(c, snap.timeouts.of(st), fwmark),
            template: c.control.as_ref().and_then(|t| template_record(t, fwmark)),
        })
    }

    /// Queues the records of one connection for the sync daemon (all of them, or none when
    /// the queue is full).
    pub(crate) fn queue(&self, records: SyncRecords) {
        let mut q = self.queue.lock();
        if q.len() >= QUEUE_MAX {
            self.bump(C_OVERFLOW);
            return;
        }
        for r in [records.conn, records.template].into_iter().flatten() {
            q.push(r);
            self.bump(C_EXPORTED);
        }
    }
}

/// The records of one connection to export: its own and its persistence template's.
#[derive(Debug)]
#[must_use = "the records are exported only once queued"]
pub(crate) struct SyncRecords {
    conn: Option<SyncConn>,
    template: Option<SyncConn>,
}

/// IPVS's `ip_vs_sync_conn_needed` (see the module documentation).
fn sync_needed(proto: u8, st: ConnState, synced: u8, pkts: u16, thr: u32, period: u32) -> bool {
    if proto == ip::TCP {
        use ConnState::*;
        if !matches!(st, Established | FinWait | Close | CloseWait | TimeWait) {
            return false;
        }
        if st as u8 != synced && st != Established {
            return true;
        }
    } else if proto == ip::SCTP {
        use ConnState::*;
        if !matches!(
            st,
            SctpEstablished
                | SctpShutdownSent
                | SctpShutdownReceived
                | SctpShutdownAckSent
                | SctpClosed
        ) {
            return false;
        }
        if st as u8 != synced && st != SctpEstablished {
            return true;
        }
    }
    let pkts = u32::from(pkts);
    if period > 0 {
        pkts % period == thr
    } else {
        pkts == thr
    }
}

fn conn_record(c: &Conn, timeout_ms: u64, fwmark: u32) -> Option<SyncConn> {
    let v6 = c.flags & F_V6 != 0;
    let fwd = if c.flags & F_TUNNEL != 0 {
        rvs_sync::F_TUNNEL
    } else if c.flags & F_LOCAL != 0 {
        rvs_sync::F_LOCALNODE
    } else if c.flags & F_NO_OUTPUT != 0 {
        rvs_sync::F_DROUTE
    } else if c.fnat.is_some() {
        rvs_sync::F_FULLNAT
    } else {
        rvs_sync::F_MASQ
    };
    let mut flags = fwd;
    if c.flags & F_NO_OUTPUT != 0 {
        flags |= rvs_sync::F_NOOUTPUT;
    }
    if c.flags & F_INACTIVE != 0 {
        flags |= rvs_sync::F_INACTIVE;
    }
    // IPVS's state numbers: TCP's are ours, SCTP's are counted from SctpNone, UDP has none.
    let state = match c.proto {
        ip::TCP => u16::from(c.state),
        ip::SCTP => ConnState::from_u8(c.state)
            .sctp_index()
            .map_or(0, u16::from),
        _ => 0,
    };
    Some(SyncConn {
        protocol: c.proto,
        flags,
        state,
        cport: c.cport,
        vport: c.vport,
        dport: c.dport,
        fwmark,
        timeout: (timeout_ms / 1000) as u32,
        // `None` for a real server of the other family (tunnels), which IPVS v1 cannot carry.
        addrs: SyncAddrs::new(to_ip(&c.client, v6), to_ip(&c.vaddr, v6), c.dest.addr)?,
        seq: None,
        pe_data: None,
        pe_name: None,
        fnat_local: c
            .fnat
            .as_ref()
            .map(|f| SocketAddr::new(to_ip(f.local.addr(), v6), f.local.port())),
    })
}

fn template_record(t: &Template, fwmark: u32) -> Option<SyncConn> {
    let k = &t.key;
    let fwd = match t.dest.method() {
        crate::types::ForwardMethod::Masq => rvs_sync::F_MASQ,
        crate::types::ForwardMethod::FullNat => rvs_sync::F_FULLNAT,
        crate::types::ForwardMethod::Route => rvs_sync::F_DROUTE,
        crate::types::ForwardMethod::Tunnel => rvs_sync::F_TUNNEL,
        crate::types::ForwardMethod::Local => rvs_sync::F_LOCALNODE,
    };
    Some(SyncConn {
        protocol: k.proto,
        flags: rvs_sync::F_TEMPLATE | fwd,
        state: 0,
        cport: 0,
        vport: k.vport,
        dport: t.dport,
        fwmark,
        timeout: (Templates::timeout_of(t) / 1000) as u32,
        addrs: SyncAddrs::new(to_ip(&k.client, k.v6), to_ip(&k.vaddr, k.v6), t.dest.addr)?,
        seq: None,
        // A persistence engine's template carries its data and the engine's name (only the
        // SIP engine makes templates with data).
        pe_data: k.pe_data.as_ref().map(|d| d.to_vec()),
        pe_name: k.pe_data.as_ref().map(|_| {
            crate::types::PersistenceEngine::Sip
                .name()
                .as_bytes()
                .to_vec()
        }),
        fnat_local: None,
    })
}

fn find_dest(
    dests: &[Arc<DestRt>],
    addr: IpAddr,
    port: u16,
    template: bool,
) -> Option<Arc<DestRt>> {
    dests
        .iter()
        .find(|d| d.addr == addr && (d.port == port || d.port == 0 || (template && port == 0)))
        .cloned()
}

impl Engine {
    /// Turns the export of connection changes on (master) or off. While on, workers queue
    /// records that [`Engine::sync_drain`] hands out.
    pub fn set_sync_export(&self, on: bool) {
        self.sync.enabled.store(on, Ordering::Relaxed);
        if !on {
            self.sync.queue.lock().clear();
        }
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
            let g = s.0.lock();
            out.extend(g.iter().filter_map(|c| {
                let st = ConnState::from_u8(c.state);
                conn_record(c, snap.timeouts.of(st), snap.fwmark_of(c.svc_id))
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
                addr: to16(vaddr),
                port: rec.vport,
                proto: rec.protocol,
            })
        }
        .ok_or(SyncImportError::NoService)?;
        let dest = find_dest(&svc.dests, daddr, rec.dport, template)
            .ok_or(SyncImportError::NoDestination)?;
        let timeout_ms = u64::from(rec.timeout).saturating_mul(1000);
        if template {
            // PE data needs the name of an engine this director has
            // (`ip_vs_conn_fill_param_sync`); a name alone is ignored.
            let pe_data = match (&rec.pe_data, &rec.pe_name) {
                (None, _) => None,
                (Some(d), Some(name))
                    if crate::types::PersistenceEngine::by_name(&String::from_utf8_lossy(name))
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
        let inactive = !state.is_established();
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
        if let Some(slot) = shard.find(h, Direction::Input, &t) {
            if let Some(c) = shard.get_mut(slot) {
                c.set_active(!inactive);
                c.state = state as u8;
                c.sync_state = state as u8;
                c.expires = now.0.saturating_add(timeout_ms);
            }
            return Ok(());
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
                Some(Box::new(FnatConn {
                    local: lease,
                    proxy: None,
                }))
            }
            (rvs_sync::F_FULLNAT, None) => return Err(SyncImportError::Unsupported),
            _ => None,
        };
        dest.bind(!inactive);
        let flags = method | F_SYNCED | if inactive { F_INACTIVE } else { 0 };
        let expires = now.0.saturating_add(timeout_ms);
        let conn = Conn {
            fnat,
            sync_state: state as u8,
            ..Conn::new(&t, svc.id, dest, rec.dport, state, flags, expires)
        };
        shard.insert(h, &self.hasher, conn);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_sync_rule() {
        use ConnState::*;
        let tcp = ip::TCP;
        // Not in a synced state.
        assert!(!sync_needed(tcp, SynRecv, NEVER_SYNCED, 3, 3, 50));
        // ESTABLISHED: by the packet count only.
        assert!(!sync_needed(tcp, Established, NEVER_SYNCED, 2, 3, 50));
        assert!(sync_needed(tcp, Established, NEVER_SYNCED, 3, 3, 50));
        assert!(!sync_needed(tcp, Established, Established as u8, 4, 3, 50));
        assert!(sync_needed(tcp, Established, Established as u8, 53, 3, 50));
        // Entering FIN_WAIT / CLOSE: at once, once.
        assert!(sync_needed(tcp, FinWait, Established as u8, 7, 3, 50));
        assert!(!sync_needed(tcp, FinWait, FinWait as u8, 8, 3, 50));
        assert!(sync_needed(tcp, TimeWait, FinWait as u8, 9, 3, 50));
        // UDP.
        assert!(sync_needed(ip::UDP, Udp, NEVER_SYNCED, 3, 3, 50));
        assert!(!sync_needed(ip::UDP, Udp, NEVER_SYNCED, 4, 3, 50));
        // SCTP: ESTABLISHED by the packet count, shutdown states and CLOSED at once.
        let sctp = ip::SCTP;
        assert!(!sync_needed(sctp, SctpCookieSent, NEVER_SYNCED, 3, 3, 50));
        assert!(sync_needed(sctp, SctpEstablished, NEVER_SYNCED, 3, 3, 50));
        assert!(!sync_needed(sctp, SctpEstablished, NEVER_SYNCED, 4, 3, 50));
        assert!(sync_needed(
            sctp,
            SctpShutdownReceived,
            SctpEstablished as u8,
            9,
            3,
            50
        ));
        assert!(!sync_needed(sctp, SctpClosed, SctpClosed as u8, 9, 3, 50));
        // sync_period 0: only at the threshold.
        assert!(sync_needed(ip::UDP, Udp, NEVER_SYNCED, 3, 3, 0));
        assert!(!sync_needed(ip::UDP, Udp, NEVER_SYNCED, 53, 3, 0));
    }
}
