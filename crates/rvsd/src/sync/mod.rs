//! The connection-synchronization daemons (`--start-daemon master|backup`): IPVS's sync
//! protocol version 1 over UDP multicast (group 224.0.0.81, port 8848, TTL 1 by default).
//!
//! The master sends the engine's queued connection changes every 100 ms and answers an rvs
//! resync request with its whole table (at most once a second, paced). The backup asks for
//! that table when it starts, then installs every record it receives. Each daemon is a thread
//! with its own socket, bound to the multicast interface.
//!
//! keepalived.conf's `lvs_sync_daemon IFACE [VRRP_INSTANCE] ...` starts a backup at load
//! ([`SyncDaemons::start_from_keepalived`]); the VRRP supervisor then calls
//! [`SyncDaemons::set_sync_role`] on the named instance's MASTER/BACKUP transitions (the name is
//! the `lvs_sync_daemon`'s own `vrrp_instance`). The control server's `Shared::sync` is that
//! handle.
//!
//! With the BPF plane, the program's connections take part too ([`ProgramSync`]): the master
//! sends what the program exports with the engine's records, and a backup's records go to the
//! plane, which installs those of the services the program schedules in its maps.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_api::{DaemonConfig, DaemonRole};
use rvs_engine::Engine;
use socket2::{Domain, Protocol, Socket, Type};

use crate::clock::Clock;
use crate::dataplane::bpf::ProgramSync;

struct Running {
    config: DaemonConfig,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The running daemons, at most one per role.
pub struct SyncDaemons {
    engine: Arc<Engine>,
    clock: Clock,
    running: Mutex<BTreeMap<u8, Running>>,
    /// Connection records the backups imported since rvsd started.
    imported: Arc<AtomicUsize>,
    /// The BPF plane's side, when it runs.
    program: Option<Arc<ProgramSync>>,
}

/// The daemon settings of keepalived's `lvs_sync_daemon` (always a backup: VRRP promotes it).
pub fn config_from_keepalived(d: &rvs_keepalived::model::LvsSyncDaemon) -> DaemonConfig {
    DaemonConfig {
        role: DaemonRole::Backup,
        mcast_interface: d.interface.clone(),
        syncid: d.sync_id.unwrap_or(0),
        maxlen: d.maxlen.unwrap_or(0),
        group: d.group,
        port: d.port.unwrap_or(0),
        ttl: d.ttl.unwrap_or(0),
    }
}

fn role_key(r: DaemonRole) -> u8 {
    match r {
        DaemonRole::Master => 0,
        DaemonRole::Backup => 1,
    }
}

/// Why a sync daemon did not start or stop; the texts are what ipvsadm prints for the
/// kernel's answers where there is one.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Settings no sync daemon can run with (checked as [`rvs_api::validate::daemon`] checks
    /// them, whichever client asked).
    #[error("{0}")]
    Invalid(#[from] rvs_api::validate::Invalid),
    /// Starting a daemon of a role that runs (the kernel's `EEXIST`).
    #[error("Daemon has already run")]
    AlreadyRunning,
    /// Stopping a daemon that does not run (the kernel's `ESRCH`).
    #[error("No daemon is running")]
    NotRunning,
    /// An unknown multicast interface (strerror(ENODEV), the kernel's answer).
    #[error("No such device")]
    NoSuchDevice,
    /// The multicast interface could not be looked up.
    #[error("{0}")]
    Interface(rvs_io::IoError),
    /// An IPv6 multicast group.
    #[error("only IPv4 multicast groups are supported")]
    Ipv6Group,
    /// Setting up the multicast socket failed at `step`.
    #[error("sync socket: {step}: {error}")]
    Socket {
        /// The call that failed (`bind`, `SO_BINDTODEVICE`, ...).
        step: &'static str,
        /// Its error.
        error: std::io::Error,
    },
    /// The daemon's thread could not be started.
    #[error("sync thread: {0}")]
    Thread(std::io::Error),
}

/// The settings a daemon runs with: defaults filled in as the kernel's `start_sync_thread`
/// fills them, for the multicast interface's MTU.
fn effective(cfg: &DaemonConfig) -> Result<DaemonConfig, SyncError> {
    let mtu = match rvs_io::iface::mtu(&cfg.mcast_interface) {
        Ok(mtu) => mtu,
        Err(rvs_io::IoError::NoSuchInterface(_)) => return Err(SyncError::NoSuchDevice),
        Err(e) => return Err(SyncError::Interface(e)),
    };
    Ok(with_defaults(cfg, mtu))
}

/// `start_sync_thread`'s defaults: group 224.0.0.81, port 8848, TTL 1; and the message size
/// (`sync_maxlen`): without `--sync-maxlen` 1500 less the IP and UDP headers for a master
/// (1472 for IPv4) and the interface's MTU, clamped to 1500..=65535, less the headers for a
/// backup; a given size is clamped to 1 (master) or 1024 (backup) ..= 65535 less the headers.
fn with_defaults(cfg: &DaemonConfig, mtu: u32) -> DaemonConfig {
    let mut c = cfg.clone();
    let group = *c
        .group
        .get_or_insert(IpAddr::V4(Ipv4Addr::from(rvs_sync::DEFAULT_GROUP)));
    if c.port == 0 {
        c.port = rvs_sync::DEFAULT_PORT;
    }
    if c.ttl == 0 {
        c.ttl = 1;
    }
    // struct iphdr or ipv6hdr, then struct udphdr.
    let hlen: u32 = if group.is_ipv6() { 40 + 8 } else { 20 + 8 };
    let (mtu, min_mtu) = match c.role {
        DaemonRole::Backup => (mtu.clamp(1500, 65_535), 1024),
        DaemonRole::Master => (1500, 1),
    };
    let maxlen = if c.maxlen != 0 {
        u32::from(c.maxlen).clamp(min_mtu, 65_535 - hlen)
    } else {
        mtu - hlen
    };
    c.maxlen = u16::try_from(maxlen).unwrap_or(u16::MAX);
    c
}

fn open_socket(c: &DaemonConfig) -> Result<(UdpSocket, SocketAddr), SyncError> {
    let Some(IpAddr::V4(group)) = c.group else {
        return Err(SyncError::Ipv6Group);
    };
    let ifindex = rvs_io::iface::ifindex(&c.mcast_interface).map_err(SyncError::Interface)?;
    let e = |step: &'static str, error: std::io::Error| SyncError::Socket { step, error };
    let s =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(|x| e("socket", x))?;
    s.set_reuse_address(true)
        .map_err(|x| e("SO_REUSEADDR", x))?;
    s.bind_device(Some(c.mcast_interface.as_bytes()))
        .map_err(|x| e("SO_BINDTODEVICE", x))?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(group, c.port)).into())
        .map_err(|x| e("bind", x))?;
    s.join_multicast_v4_n(&group, &socket2::InterfaceIndexOrAddress::Index(ifindex))
        .map_err(|x| e("join", x))?;
    // SO_BINDTODEVICE above also makes the multicast go out of that interface.
    s.set_multicast_ttl_v4(u32::from(c.ttl))
        .map_err(|x| e("IP_MULTICAST_TTL", x))?;
    s.set_multicast_loop_v4(false)
        .map_err(|x| e("IP_MULTICAST_LOOP", x))?;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|x| e("SO_RCVTIMEO", x))?;
    Ok((s.into(), SocketAddr::V4(SocketAddrV4::new(group, c.port))))
}

impl SyncDaemons {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u8, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// No daemon running yet; `program` is the BPF plane's side when that plane runs.
    pub fn new(engine: Arc<Engine>, clock: Clock, program: Option<Arc<ProgramSync>>) -> Self {
        SyncDaemons {
            engine,
            clock,
            running: Mutex::new(BTreeMap::new()),
            imported: Arc::new(AtomicUsize::new(0)),
            program,
        }
    }

    /// keepalived's `lvs_sync_daemon`: starts the daemon as a backup (the VRRP supervisor
    /// switches its role on the transitions of the instance it names).
    pub fn start_from_keepalived(
        &self,
        d: &rvs_keepalived::model::LvsSyncDaemon,
    ) -> Result<DaemonConfig, SyncError> {
        self.start(&config_from_keepalived(d))
    }

    /// Starts a daemon; returns the settings it runs with.
    pub fn start(&self, cfg: &DaemonConfig) -> Result<DaemonConfig, SyncError> {
        rvs_api::validate::daemon(cfg)?;
        let mut running = self.lock();
        // The kernel looks the interface up first (ENODEV), then for a running daemon (EEXIST).
        let c = effective(cfg)?;
        if running.contains_key(&role_key(cfg.role)) {
            return Err(SyncError::AlreadyRunning);
        }
        let (sock, to) = open_socket(&c)?;
        let stop = Arc::new(AtomicBool::new(false));
        let tables = Tables {
            engine: self.engine.clone(),
            program: self.program.clone(),
            clock: self.clock,
        };
        let (flag, conf, imported) = (stop.clone(), c.clone(), self.imported.clone());
        if c.role == DaemonRole::Master {
            self.engine.set_sync_export(true);
        }
        let thread = std::thread::Builder::new()
            .name(format!("rvs-sync-{:?}", c.role).to_lowercase())
            .spawn(move || match conf.role {
                DaemonRole::Master => master_loop(&tables, &sock, to, &conf, &flag),
                DaemonRole::Backup => backup_loop(&tables, &sock, to, &conf, &flag, &imported),
            })
            .map_err(SyncError::Thread)?;
        running.insert(
            role_key(c.role),
            Running {
                config: c.clone(),
                stop,
                thread: Some(thread),
            },
        );
        Ok(c)
    }

    /// Stops the daemon of `role`.
    pub fn stop(&self, role: DaemonRole) -> Result<(), SyncError> {
        let gone = self.lock().remove(&role_key(role));
        match gone {
            Some(r) => {
                if role == DaemonRole::Master {
                    self.engine.set_sync_export(false);
                }
                drop(r);
                Ok(())
            }
            None => Err(SyncError::NotRunning),
        }
    }

    /// Waits (at most `limit`, polling every 10 ms) until a running backup has imported
    /// connection records: the answer to the resync request it sends when it starts. Returns
    /// how many it imported (0 when no master answered in time, or it had no connections).
    ///
    /// rvsd calls this between starting `lvs_sync_daemon`'s backup and starting VRRP, so a
    /// restarted director that preempts (after its master-down interval, or at once as an
    /// address owner) does not take the VIPs before it knows the established connections.
    pub fn wait_resync(&self, limit: Duration) -> usize {
        let start = Instant::now();
        loop {
            let n = self.imported.load(Ordering::Relaxed);
            if n > 0
                || start.elapsed() >= limit
                || !self.lock().contains_key(&role_key(DaemonRole::Backup))
            {
                return n;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops every running daemon and waits for their threads (rvsd's shutdown).
    pub fn shutdown(&self) {
        let running = std::mem::take(&mut *self.lock());
        if running.contains_key(&role_key(DaemonRole::Master)) {
            self.engine.set_sync_export(false);
        }
        drop(running);
    }

    /// The running daemons, master first.
    pub fn list(&self) -> Vec<DaemonConfig> {
        self.lock().values().map(|r| r.config.clone()).collect()
    }

    /// The VRRP hook: makes the running daemon (of either role) run as `role`, with the same
    /// settings. A backup that becomes master keeps the synced connections as live ones (they
    /// are ordinary table entries); a master that becomes backup asks for the table.
    pub fn set_sync_role(&self, role: DaemonRole) -> Result<(), SyncError> {
        let other = match role {
            DaemonRole::Master => DaemonRole::Backup,
            DaemonRole::Backup => DaemonRole::Master,
        };
        let current = self.lock().get(&role_key(other)).map(|r| r.config.clone());
        let Some(mut cfg) = current else {
            return Ok(());
        };
        self.stop(other)?;
        cfg.role = role;
        self.start(&cfg).map(|_| ())
    }
}

fn send_all(sock: &UdpSocket, to: SocketAddr, msgs: &[Vec<u8>], paced: bool) {
    for (i, m) in msgs.iter().enumerate() {
        if let Err(e) = sock.send_to(m, to) {
            tracing::debug!("sync send: {e}");
        }
        if paced && i % 64 == 63 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The connection tables a daemon syncs: the engine's, and the BPF program's when it runs.
struct Tables {
    engine: Arc<Engine>,
    program: Option<Arc<ProgramSync>>,
    clock: Clock,
}

impl Tables {
    /// Every connection, for a resync.
    fn snapshot(&self) -> Vec<rvs_sync::SyncConn> {
        let mut all = self.engine.sync_snapshot(self.clock.now());
        if let Some(p) = &self.program {
            all.extend(p.snapshot(&self.engine));
        }
        all
    }

    /// The records to send since the last call.
    fn drain(&self) -> Vec<rvs_sync::SyncConn> {
        let mut recs = self.engine.sync_drain();
        if let Some(p) = &self.program {
            recs.extend(p.drain());
        }
        recs
    }

    /// Installs received records: the BPF plane sorts them between its program and the
    /// engine; without it the engine takes them all. Returns how many were taken.
    fn import(&self, conns: Vec<rvs_sync::SyncConn>) -> usize {
        if let Some(p) = &self.program {
            let n = conns.len();
            p.received(conns);
            return n;
        }
        let now = self.clock.now();
        let mut n = 0;
        for rec in &conns {
            match self.engine.sync_import(now, rec) {
                Ok(_) => n += 1,
                Err(e) => tracing::debug!("sync import: {e}"),
            }
        }
        n
    }
}

fn master_loop(
    tables: &Tables,
    sock: &UdpSocket,
    to: SocketAddr,
    c: &DaemonConfig,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 65_536];
    let mut last_flush = Instant::now();
    let mut last_resync: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if let Ok(rvs_sync::Message::ResyncRequest { .. }) =
                rvs_sync::parse(buf.get(..n).unwrap_or(&[]), c.syncid)
            {
                if last_resync.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_resync = Some(Instant::now());
                    let table = tables.snapshot();
                    let msgs = rvs_sync::pack(&table, c.syncid, usize::from(c.maxlen));
                    send_all(sock, to, &msgs, true);
                }
            }
        }
        if last_flush.elapsed() >= Duration::from_millis(100) {
            last_flush = Instant::now();
            let recs = tables.drain();
            if !recs.is_empty() {
                let msgs = rvs_sync::pack(&recs, c.syncid, usize::from(c.maxlen));
                send_all(sock, to, &msgs, false);
            }
        }
    }
}

fn backup_loop(
    tables: &Tables,
    sock: &UdpSocket,
    to: SocketAddr,
    c: &DaemonConfig,
    stop: &AtomicBool,
    imported: &AtomicUsize,
) {
    let mut buf = vec![0u8; 65_536];
    let request = rvs_sync::resync_request(c.syncid);
    // Ask a few times at start: the master may not have joined yet.
    let mut asks = 0;
    let mut last_ask: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if asks < 3 && last_ask.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            let _ = sock.send_to(&request, to);
            asks += 1;
            last_ask = Some(Instant::now());
        }
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        match rvs_sync::parse(buf.get(..n).unwrap_or(&[]), c.syncid) {
            Ok(rvs_sync::Message::Conns { conns, .. }) => {
                imported.fetch_add(tables.import(conns), Ordering::Relaxed);
            }
            Ok(rvs_sync::Message::ResyncRequest { .. }) => {}
            Err(e) => tracing::debug!("sync message dropped: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(role: DaemonRole, maxlen: u16) -> DaemonConfig {
        DaemonConfig {
            role,
            mcast_interface: "eth0".into(),
            syncid: 0,
            maxlen,
            group: None,
            port: 0,
            ttl: 0,
        }
    }

    /// `start_sync_thread`'s numbers: a master sends at most 1472 bytes whatever the MTU, a
    /// backup reads up to its MTU (at least 1500) less 28.
    #[test]
    fn maxlen_defaults_and_clamps_as_the_kernel() {
        let maxlen = |role, given, mtu| with_defaults(&cfg(role, given), mtu).maxlen;
        use DaemonRole::{Backup, Master};
        assert_eq!(maxlen(Master, 0, 1500), 1472);
        assert_eq!(maxlen(Master, 0, 9000), 1472);
        assert_eq!(maxlen(Master, 0, 1280), 1472);
        assert_eq!(maxlen(Backup, 0, 9000), 8972);
        assert_eq!(maxlen(Backup, 0, 1280), 1472);
        assert_eq!(maxlen(Backup, 0, 65_536), 65_507);
        assert_eq!(maxlen(Master, 100, 1500), 100);
        assert_eq!(maxlen(Backup, 100, 1500), 1024);
        assert_eq!(maxlen(Master, 65_535, 1500), 65_507);
        let mut v6 = cfg(Master, 0);
        v6.group = Some("ff02::81".parse().expect("group"));
        assert_eq!(with_defaults(&v6, 1500).maxlen, 1452);
        let c = with_defaults(&cfg(Backup, 0), 1500);
        assert_eq!(
            (c.group, c.port, c.ttl),
            (Some(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81))), 8848, 1)
        );
    }

    #[test]
    fn refusals_in_ipvsadm_words() {
        let engine = Arc::new(Engine::new(rvs_engine::EngineConfig::default()));
        let daemons = SyncDaemons::new(engine, Clock::new(), None);
        let err = daemons.stop(DaemonRole::Master).expect_err("none runs");
        assert!(matches!(err, SyncError::NotRunning));
        assert_eq!(err.to_string(), "No daemon is running");
        let mut c = cfg(DaemonRole::Backup, 0);
        c.mcast_interface = "rvsnosuchif0".into();
        let err = daemons.start(&c).expect_err("no such interface");
        assert!(matches!(err, SyncError::NoSuchDevice));
        assert_eq!(err.to_string(), "No such device");
    }

    /// What rvsadm refuses in `--start-daemon`, the daemon refuses for any client (and for
    /// keepalived's `lvs_sync_daemon`) before it looks the interface up; nothing starts.
    #[test]
    fn settings_no_daemon_can_run_with_are_refused_first() {
        let engine = Arc::new(Engine::new(rvs_engine::EngineConfig::default()));
        let daemons = SyncDaemons::new(engine, Clock::new(), None);
        let refused = |change: fn(&mut DaemonConfig)| {
            let mut c = cfg(DaemonRole::Master, 0);
            change(&mut c);
            match daemons.start(&c) {
                Err(SyncError::Invalid(e)) => e.to_string(),
                other => panic!("{c:?}: {other:?}"),
            }
        };
        assert_eq!(
            refused(|c| c.mcast_interface = "a-very-long-interface".into()),
            "illegal mcast-interface `a-very-long-interface' specified (an interface name of 1 \
             to 15 bytes)"
        );
        assert!(refused(|c| c.mcast_interface.clear()).starts_with("illegal mcast-interface"));
        assert_eq!(
            refused(|c| c.group = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))),
            "invalid IPv4 mcast-group `10.0.0.1'"
        );
        assert_eq!(
            refused(|c| c.maxlen = 65_508),
            "illegal sync-maxlen 65508 specified (at most 65507)"
        );
        assert!(daemons.list().is_empty());
    }
}
