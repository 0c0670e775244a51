//! Connection synchronization's state below the engine (IPVS's `ip_vs_sync.c`): the export
//! state the workers share ([`SyncState`]: on/off, threshold, queue, counters), the export
//! rule, and the records of connections and templates. The engine's import and export
//! operations are in `sync.rs`; the rules are described there.

use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rvs_sync::{SyncAddrs, SyncConn};
use rvs_wire::ip;

use crate::config::{DestRt, Snapshot};
use crate::conn::{Conn, ConnExt, F_INACTIVE, F_LOCAL, F_NO_OUTPUT, F_TUNNEL, F_V6};
use crate::flow::to_ip;
use crate::persist::{Template, Templates};
use crate::synproxy::SynProxied;
use crate::view::ConnState;

/// Records waiting for the sync daemon at most (further ones are counted and dropped).
const QUEUE_MAX: usize = 65_536;

/// Export state shared by the workers.
#[derive(Debug)]
pub(crate) struct SyncState {
    pub(crate) enabled: AtomicBool,
    pub(crate) threshold: AtomicU32,
    pub(crate) period: AtomicU32,
    pub(crate) queue: Mutex<Vec<SyncConn>>,
    pub(crate) c: [AtomicU64; 6],
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

pub(crate) const C_EXPORTED: usize = 0;
pub(crate) const C_OVERFLOW: usize = 1;
pub(crate) const C_IMPORTED: usize = 2;
pub(crate) const C_NO_SERVICE: usize = 3;
pub(crate) const C_NO_DEST: usize = 4;
pub(crate) const C_REFUSED: usize = 5;

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
    /// The connection table holds its bound (`max_connections`).
    #[error("the connection table is full")]
    TableFull,
}

impl SyncState {
    pub(crate) fn exporting(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(&self, i: usize) {
        self.c[i].fetch_add(1, Ordering::Relaxed);
    }

    /// An incoming packet of `c` was handled: when IPVS would sync it, its records (made
    /// while the caller holds the shard lock), to hand to [`SyncState::queue`] once the lock
    /// is released.
    pub(crate) fn on_input(
        &self,
        c: &mut Conn,
        ext: Option<&ConnExt>,
        proxied: Option<&SynProxied>,
        snap: &Snapshot,
    ) -> Option<SyncRecords> {
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
            conn: conn_record(c, ext, proxied, snap.timeouts.of(st), fwmark),
            template: ext
                .and_then(|x| x.control.as_ref())
                .and_then(|t| template_record(t, fwmark)),
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

pub(crate) fn conn_record(
    c: &Conn,
    ext: Option<&ConnExt>,
    proxied: Option<&SynProxied>,
    timeout_ms: u64,
    fwmark: u32,
) -> Option<SyncConn> {
    let v6 = c.flags & F_V6 != 0;
    let fnat = ext.and_then(|x| x.fnat.as_ref());
    let fwd = if c.flags & F_TUNNEL != 0 {
        rvs_sync::F_TUNNEL
    } else if c.flags & F_LOCAL != 0 {
        rvs_sync::F_LOCALNODE
    } else if c.flags & F_NO_OUTPUT != 0 {
        rvs_sync::F_DROUTE
    } else if fnat.is_some() {
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
        // A SYN-proxied connection's shift, so that a backup shifts its numbers too.
        seq: proxied.and_then(SynProxied::seq_option),
        pe_data: None,
        pe_name: None,
        fnat_local: fnat.map(|f| SocketAddr::new(to_ip(f.local.addr(), v6), f.local.port())),
    })
}

pub(crate) fn template_record(t: &Template, fwmark: u32) -> Option<SyncConn> {
    let k = &t.key;
    let fwd = match t.dest.method() {
        crate::spec::ForwardMethod::Masq => rvs_sync::F_MASQ,
        crate::spec::ForwardMethod::FullNat => rvs_sync::F_FULLNAT,
        crate::spec::ForwardMethod::Route => rvs_sync::F_DROUTE,
        crate::spec::ForwardMethod::Tunnel => rvs_sync::F_TUNNEL,
        crate::spec::ForwardMethod::Local => rvs_sync::F_LOCALNODE,
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
            crate::spec::PersistenceEngine::Sip
                .name()
                .as_bytes()
                .to_vec()
        }),
        fnat_local: None,
    })
}

pub(crate) fn find_dest(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::NEVER_SYNCED;

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
