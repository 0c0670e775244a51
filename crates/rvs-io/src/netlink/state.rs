//! [`NetState`]: the mirror, its listener thread and next-hop resolution.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use super::socket::{NlSocket, GROUPS_ALL};
use super::tables::{Lookup, Tables};
use super::wire::{self, Update};
use crate::error::IoError;

/// How often the listener checks whether its [`NetState`] was dropped.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a dump may take before it counts as failed.
const DUMP_TIMEOUT: Duration = Duration::from_secs(3);
/// Minimum time between two resolution requests for the same next hop.
const REQUEST_INTERVAL: Duration = Duration::from_secs(1);
const RECV_BUF: usize = 128 * 1024;

/// The answer to "how do I send to this address?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Send on `ifindex` with these Ethernet addresses; frames may be at most `mtu` bytes of L3.
    Ready {
        /// Egress interface.
        ifindex: u32,
        /// The egress interface's MAC (Ethernet source).
        src_mac: [u8; 6],
        /// The next hop's MAC (Ethernet destination).
        dst_mac: [u8; 6],
        /// Route MTU if set, else the interface MTU.
        mtu: u32,
    },
    /// No neighbour entry yet: a resolution was requested from the kernel (RTM_NEWNEIGH with
    /// NTF_USE, which makes it send ARP / NS); the caller drops and counts, retries later.
    Pending,
    /// No usable route in the main table (none, blackhole/unreachable/prohibit, an address of
    /// this host, or an egress device without an Ethernet address).
    Unreachable,
}

/// This host's end of the link toward a neighbour, as a frame sent straight onto that link
/// needs it (see [`NetState::segment_to`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The egress interface's name.
    pub ifname: String,
    /// Its MAC address (the Ethernet source).
    pub src_mac: [u8; 6],
    /// The next hop's MAC address (the Ethernet destination).
    pub next_mac: [u8; 6],
    /// This host's address toward the neighbour (see [`NetState::source_for`]).
    pub source: IpAddr,
}

/// Why no [`Segment`] toward an address can be named now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// The next hop's MAC address is being resolved.
    #[error("{0}'s MAC address is not known yet")]
    Pending(IpAddr),
    /// No usable route (see [`Resolution::Unreachable`]).
    #[error("no route to {0}")]
    Unreachable(IpAddr),
    /// The route's interface went away.
    #[error("interface {ifindex} toward {addr} is gone")]
    InterfaceGone {
        /// The interface's index.
        ifindex: u32,
        /// The neighbour.
        addr: IpAddr,
    },
    /// This host has no address to send from toward the neighbour.
    #[error("no address of this director toward {0}")]
    NoSource(IpAddr),
}

struct Shared {
    tables: RwLock<Tables>,
    generation: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(|e| e.into_inner())
    }

    fn replace(&self, tables: Tables) {
        *self.tables.write().unwrap_or_else(|e| e.into_inner()) = tables;
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// Mirror of the kernel's links, addresses, IPv4/IPv6 main-table routes and neighbours, kept
/// current by an rtnetlink listener thread (links, IPv4/IPv6 addresses and routes, neighbours)
/// after an initial dump. Everything refers to the network namespace of the thread that called
/// [`NetState::start`]. The listener thread ends shortly after the last `Arc` is dropped.
pub struct NetState {
    shared: Arc<Shared>,
    request: Mutex<NlSocket>,
    recent_requests: Mutex<HashMap<(u32, IpAddr), Instant>>,
    seq: AtomicU32,
}

impl std::fmt::Debug for NetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetState")
            .field("generation", &self.generation())
            .finish()
    }
}

impl NetState {
    /// Subscribes to changes, dumps the current state and starts the listener thread.
    pub fn start() -> Result<Arc<NetState>, IoError> {
        let events = NlSocket::open(GROUPS_ALL)?;
        events.set_recv_timeout(POLL_INTERVAL)?;
        let dump = NlSocket::open(0)?;
        dump.set_recv_timeout(DUMP_TIMEOUT)?;
        let request = NlSocket::open(0)?;
        let tables = full_dump(&dump, 1)?;
        let shared = Arc::new(Shared {
            tables: RwLock::new(tables),
            generation: AtomicU64::new(1),
            stop: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("rvs-netlink".into())
            .spawn(move || listen(&events, &dump, &thread_shared))
            .map_err(|e| IoError::io("spawn(rvs-netlink)", e))?;
        Ok(Arc::new(NetState {
            shared,
            request: Mutex::new(request),
            recent_requests: Mutex::new(HashMap::new()),
            seq: AtomicU32::new(1),
        }))
    }

    /// Routes `dst` (longest prefix match in the main table, gateway or on-link) and finds the
    /// next hop's MAC. When the neighbour is unknown (or failed), asks the kernel to resolve it
    /// (at most once a second per next hop) and answers [`Resolution::Pending`].
    pub fn resolve(&self, dst: IpAddr) -> Resolution {
        let lookup = self.shared.read().lookup(dst);
        match lookup {
            Lookup::Known(answer) => answer,
            Lookup::NeedsResolution { ifindex, next_hop } => {
                self.request_resolution(ifindex, next_hop);
                Resolution::Pending
            }
        }
    }

    /// The address this host sends from toward `dst` (route's preferred source, else an
    /// address of the egress interface of the same family), as the outer source of tunnels.
    pub fn source_for(&self, dst: IpAddr) -> Option<IpAddr> {
        self.shared.read().source_for(dst)
    }

    /// The interface, MAC addresses and source address toward `addr` ([`NetState::resolve`]
    /// and [`NetState::source_for`] together), for probes sent straight onto the link.
    pub fn segment_to(&self, addr: IpAddr) -> Result<Segment, SegmentError> {
        let (ifindex, src_mac, next_mac) = match self.resolve(addr) {
            Resolution::Ready {
                ifindex,
                src_mac,
                dst_mac,
                ..
            } => (ifindex, src_mac, dst_mac),
            Resolution::Pending => return Err(SegmentError::Pending(addr)),
            Resolution::Unreachable => return Err(SegmentError::Unreachable(addr)),
        };
        let ifname =
            crate::iface::ifname(ifindex).ok_or(SegmentError::InterfaceGone { ifindex, addr })?;
        let source = self.source_for(addr).ok_or(SegmentError::NoSource(addr))?;
        Ok(Segment {
            ifname,
            src_mac,
            next_mac,
            source,
        })
    }

    /// Bumps on any change, so workers can drop cached resolutions.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Every address configured on any interface (sorted, no duplicates).
    pub fn local_addrs(&self) -> Vec<IpAddr> {
        self.shared.read().local_addrs()
    }

    /// The MAC address of interface `ifindex`, if it has a 6-byte one.
    pub fn link_mac(&self, ifindex: u32) -> Option<[u8; 6]> {
        self.shared.read().link_mac(ifindex)
    }

    /// The index of the interface called `name`.
    pub fn ifindex_by_name(&self, name: &str) -> Option<u32> {
        self.shared.read().ifindex_by_name(name)
    }

    /// Whether interface `ifindex` is administratively up (`IFF_UP`); `None` when no interface
    /// has that index (it was removed, or never existed).
    pub fn link_is_up(&self, ifindex: u32) -> Option<bool> {
        self.shared.read().link_up(ifindex)
    }

    fn request_resolution(&self, ifindex: u32, next_hop: IpAddr) {
        let now = Instant::now();
        {
            let mut recent = self
                .recent_requests
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(last) = recent.get(&(ifindex, next_hop)) {
                if now.duration_since(*last) < REQUEST_INTERVAL {
                    return;
                }
            }
            if recent.len() >= 4096 {
                recent.retain(|_, t| now.duration_since(*t) < REQUEST_INTERVAL);
            }
            recent.insert((ifindex, next_hop), now);
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg = wire::neigh_resolve_request(ifindex, next_hop, seq);
        let sock = self.request.lock().unwrap_or_else(|e| e.into_inner());
        // Discard answers (errors) to earlier requests so the socket never fills up.
        let mut scratch = [0u8; 4096];
        while let Ok(Some(_)) = sock.recv(&mut scratch, true) {}
        // Best effort: a failed request is retried on a later miss.
        let _ = sock.send(&msg);
    }
}

impl Drop for NetState {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Dumps links, addresses, routes and neighbours into fresh tables.
fn full_dump(sock: &NlSocket, seq_base: u32) -> Result<Tables, IoError> {
    let mut tables = Tables::default();
    let mut buf = vec![0u8; RECV_BUF];
    let kinds = [
        wire::RTM_GETLINK,
        wire::RTM_GETADDR,
        wire::RTM_GETROUTE,
        wire::RTM_GETNEIGH,
    ];
    for (i, ty) in kinds.into_iter().enumerate() {
        let seq = seq_base.wrapping_add(i as u32);
        sock.dump(ty, seq, DUMP_TIMEOUT, &mut buf, |update| {
            tables.apply(update);
        })?;
    }
    Ok(tables)
}

/// The listener thread: applies notifications until the owning [`NetState`] is dropped; re-reads
/// everything after the kernel reports lost notifications.
fn listen(events: &NlSocket, dump: &NlSocket, shared: &Shared) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut need_resync = false;
    let mut seq_base: u32 = 100;
    while !shared.stop.load(Ordering::Relaxed) {
        if need_resync {
            seq_base = seq_base.wrapping_add(16);
            match full_dump(dump, seq_base) {
                Ok(t) => {
                    shared.replace(t);
                    need_resync = false;
                }
                Err(_) => std::thread::sleep(POLL_INTERVAL),
            }
            continue;
        }
        match events.recv(&mut buf, false) {
            Ok(Some(n)) => {
                let mut changed = false;
                {
                    let mut tables = shared.tables.write().unwrap_or_else(|e| e.into_inner());
                    for (ty, seq, payload) in wire::messages(&buf[..n]) {
                        match wire::decode(ty, seq, payload) {
                            Update::Overrun => need_resync = true,
                            update => changed |= tables.apply(update),
                        }
                    }
                }
                if changed {
                    shared.generation.fetch_add(1, Ordering::Release);
                }
            }
            Ok(None) => {}
            Err(IoError::Sys { source, .. }) if source.raw_os_error() == Some(libc::ENOBUFS) => {
                need_resync = true;
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}
