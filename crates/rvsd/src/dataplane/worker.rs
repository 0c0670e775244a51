//! The data plane: worker threads that read frames from the packet sockets, run them through the
//! engine, write the next hop's Ethernet header and send them out.
//!
//! Every worker opens one receive socket per interface; the sockets of one interface form a
//! PACKET_FANOUT group so the kernel spreads that interface's frames over the workers. The engine
//! is shared, so a connection's packets may arrive on any worker.
//!
//! Batches: a worker takes up to [`BATCH`] frames per receive ring per wake-up (the ring is
//! mmap'ed, so no system call per frame), queues what it forwards on the egress interface's
//! [`TxQueue`] (one `sendmmsg` per batch, frames in order) and flushes every queue before it
//! polls again, so a frame never waits for traffic that may not come. Its egress counters are
//! its own (see [`super::counters`]); nothing it writes per packet is shared with another
//! worker, except the engine's connection-table shard of the packet's flow.
//!
//! Link faults: a socket whose interface goes down gets a pending error (`ENETDOWN`) that makes
//! `poll` report `POLLERR` until it is read; the worker reads (clears) it, counts it and logs at
//! most once per [`FAULT_LOG_INTERVAL`], and the kernel resumes delivery by itself when the link
//! comes back up. A socket whose interface was removed is closed; when an interface of the same
//! name appears again (a new index) and is up, every worker re-opens its sockets on it, the
//! first one after calling the data plane's `on_interface_back` callback (which re-installs the
//! kernel-bypass rules).

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use rvs_engine::tunnel::TunnelTx;
use rvs_engine::{Engine, PacketMeta, SnapshotCache, TunnelConfig, Verdict};
use rvs_io::{IoError, NetState, PacketSocket, Resolution, TunDevice, TxQueue, VnetHdr};
use rvs_wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6, HEADER_LEN as ETH_HLEN};

use super::counters::{bump, Counts, EgressCounters, WorkerCounts};
use super::mtu::{self, Fit, Quote};
use crate::clock::Clock;

/// Frames handled per socket per wake-up.
const BATCH: usize = 64;
/// How long a worker sleeps in poll before checking the stop flag.
const POLL_MS: u16 = 100;
/// How long a worker sleeps in poll while frames wait for a neighbour.
const PENDING_POLL_MS: u16 = 5;
/// Frames a worker holds while their next hop's MAC is being resolved.
const PENDING_MAX: usize = 256;
/// Frames a thread keeps deferred for the SYN proxy at most.
const DEFERRED_MAX: usize = 1024;
/// How long a deferred frame is offered again before it is dropped (the client sends it again).
const DEFERRED_TTL: Duration = Duration::from_secs(1);
/// How long a held frame may wait for its neighbour before it is dropped.
const PENDING_TTL: Duration = Duration::from_secs(3);
/// Destinations a worker's neighbour cache holds before it starts over (it is keyed by client
/// addresses too, so it must not grow without bound between two changes of the kernel's tables).
const NEIGHBOUR_CACHE_MAX: usize = 65_536;
/// Least time between two log lines about one interface's socket faults (per worker); the
/// faults in between are counted and summed up in the next line.
const FAULT_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How long a receive socket stays out of the poll set when `poll` reports a fault that reading
/// its pending error did not clear, so no condition can make a worker spin.
const PARK: Duration = Duration::from_secs(1);
/// How often a worker looks at its interfaces (removed, back) when the kernel's tables did not
/// change; also the pace at which a failed re-open is retried.
const LINK_RECHECK: Duration = Duration::from_secs(1);
/// How often the engine is asked for the datagrams whose reassembly timed out.
const TIMEOUT_CHECK: Duration = Duration::from_millis(100);

/// Called with an interface's name when it was re-created (a new index under a known name) and
/// the data plane is about to re-open its sockets on it; runs once per re-creation, on a worker
/// thread.
pub type OnInterfaceBack = Arc<dyn Fn(&str) + Send + Sync>;

/// The running workers.
pub struct DataPlane {
    workers: Vec<JoinHandle<()>>,
    /// The workers' egress counters, one set each (summed when read by the control server).
    pub counters: Arc<EgressCounters>,
}

impl DataPlane {
    /// Opens every worker's sockets (so a bad interface fails here, synchronously) and starts them.
    /// `on_interface_back` is called when an interface was re-created and its sockets are about
    /// to be re-opened (see [`OnInterfaceBack`]).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        engine: Arc<Engine>,
        net: Arc<NetState>,
        clock: Clock,
        interfaces: &[String],
        local: Arc<TunDevice>,
        workers: usize,
        stop: Arc<AtomicBool>,
        on_interface_back: OnInterfaceBack,
    ) -> anyhow::Result<DataPlane> {
        let counters = Arc::new(EgressCounters::new(workers));
        let group = fanout_group();
        let links = Arc::new(LinkWatch {
            announced: Mutex::new(HashMap::new()),
            on_back: on_interface_back,
        });
        let mut handles = Vec::with_capacity(workers);
        for id in 0..workers {
            let mut ports = Vec::new();
            let mut tx = HashMap::new();
            for name in interfaces {
                let (sock, out) = open_pair(name, group)?;
                links.known(name, sock.ifindex());
                tx.insert(out.ifindex(), TxQueue::new(out));
                ports.push(Port::new(name, sock));
            }
            let worker = Worker {
                id,
                net: net.clone(),
                clock,
                group,
                ports,
                links: links.clone(),
                seen_generation: net.generation(),
                next_recheck: Instant::now() + LINK_RECHECK,
                out: Outlet {
                    snapshot: engine.snapshot_cache(),
                    engine: engine.clone(),
                    net: net.clone(),
                    tx,
                    neighbours: NeighbourCache::default(),
                    held: Vec::new(),
                    counters: counters.writer(id),
                    tunnel: TunnelTx::default(),
                    quote: Quote::new(),
                    frag_ident: first_frag_ident(),
                    deferred: Vec::new(),
                    local: local.clone(),
                    kernel_missed: KernelMissed::NatFragments,
                    next_timeout_check: Instant::now(),
                },
            };
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("rvs-worker-{id}"))
                .spawn(move || worker.run(&stop))
                .context("spawning a worker thread")?;
            handles.push(handle);
        }
        Ok(DataPlane {
            workers: handles,
            counters,
        })
    }

    /// Waits for every worker to notice the stop flag and exit.
    pub fn join(self) {
        for handle in self.workers {
            let _ = handle.join();
        }
    }
}

/// Opens the receive socket (fanout group `group`) and the send socket of interface `name`.
fn open_pair(name: &str, group: u16) -> anyhow::Result<(PacketSocket, PacketSocket)> {
    let sock = PacketSocket::open(name, group)
        .with_context(|| format!("opening a packet socket on {name}"))?;
    let out =
        PacketSocket::open_tx(name).with_context(|| format!("opening a send socket on {name}"))?;
    Ok((sock, out))
}

/// What the workers share about their interfaces: which index of each name the
/// `on_interface_back` callback last ran for, so it runs once per re-creation.
struct LinkWatch {
    announced: Mutex<HashMap<String, u32>>,
    on_back: OnInterfaceBack,
}

impl LinkWatch {
    /// Records `ifindex` as the index of `name` the data plane started on.
    fn known(&self, name: &str, ifindex: u32) {
        self.lock().insert(name.to_owned(), ifindex);
    }

    /// Runs the callback for `name` unless it already ran for this `ifindex` (another worker got
    /// there first). The lock is held meanwhile, so no worker re-opens its sockets before the
    /// callback (re-installing the kernel-bypass rules) has finished.
    fn announce(&self, name: &str, ifindex: u32) {
        let mut announced = self.lock();
        if announced.get(name) != Some(&ifindex) {
            tracing::info!(interface = name, ifindex, "interface re-created");
            announced.insert(name.to_owned(), ifindex);
            (self.on_back)(name);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.announced.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One interface of a worker: its receive socket and what the worker knows of its faults.
struct Port {
    name: String,
    /// The index the sockets are (or were last) bound to.
    ifindex: u32,
    /// `None` while the interface is gone (or re-opening it failed).
    rx: Option<PacketSocket>,
    /// Set while the socket is out of the poll set (see [`PARK`]).
    parked_until: Option<Instant>,
    /// Faults counted since the last log line, and when that line was written.
    faults_unlogged: u64,
    last_fault_log: Option<Instant>,
}

impl Port {
    fn new(name: &str, rx: PacketSocket) -> Port {
        Port {
            name: name.to_owned(),
            ifindex: rx.ifindex(),
            rx: Some(rx),
            parked_until: None,
            faults_unlogged: 0,
            last_fault_log: None,
        }
    }

    /// Counts one fault; returns how many to report when a log line is due (the first fault, or
    /// [`FAULT_LOG_INTERVAL`] after the last line).
    fn note_fault(&mut self, now: Instant) -> Option<u64> {
        self.faults_unlogged += 1;
        let due = self
            .last_fault_log
            .is_none_or(|last| now.duration_since(last) >= FAULT_LOG_INTERVAL);
        if !due {
            return None;
        }
        self.last_fault_log = Some(now);
        Some(std::mem::take(&mut self.faults_unlogged))
    }
}

/// The fanout group id of this process: the same for every worker and interface
/// (`PacketSocket::open` combines it with the interface index, as the kernel ties a group to one
/// device) and (very likely) different between rvsd processes sharing a namespace.
fn fanout_group() -> u16 {
    let hash: u32 = std::process::id().wrapping_mul(0x9e37_79b1);
    (hash ^ (hash >> 16)) as u16
}

struct Worker {
    /// The worker's number (for log lines).
    id: usize,
    net: Arc<NetState>,
    clock: Clock,
    /// The fanout group the receive sockets join (again, when re-opened).
    group: u16,
    /// One per interface, in the order given.
    ports: Vec<Port>,
    links: Arc<LinkWatch>,
    /// `NetState::generation` when the interfaces were last looked at.
    seen_generation: u64,
    /// When the interfaces are looked at again even if nothing changed.
    next_recheck: Instant,
    /// Where the engine's frames go out.
    out: Outlet,
}

/// The sending side of a thread that hands frames to the engine: send sockets, the neighbour
/// cache, frames waiting for a neighbour, the tunnel state and the local stack. A worker has
/// one; so has the [`Injector`] that feeds the BPF program's punted frames to the engine.
struct Outlet {
    engine: Arc<Engine>,
    /// The engine's configuration as this thread last saw it, refreshed after each round.
    snapshot: SnapshotCache,
    net: Arc<NetState>,
    /// Send sockets, with their queues of frames to send, by interface index.
    tx: HashMap<u32, TxQueue>,
    neighbours: NeighbourCache,
    held: Vec<HeldFrame>,
    /// This thread's own egress counters.
    counters: Arc<WorkerCounts>,
    tunnel: TunnelTx,
    /// The director's own stack, for `Local` connections.
    local: Arc<TunDevice>,
    /// The start of the frame being handled as it came in, for an ICMP error about it.
    quote: Quote,
    /// The identification of the next IPv6 fragment series rvsd sends.
    frag_ident: u32,
    /// Frames the engine deferred (segments of SYN-proxied connections waiting for their real
    /// server), offered to it again after each batch.
    deferred: Vec<Deferred>,
    /// Which reassembled datagrams the kernel had no fragment of.
    kernel_missed: KernelMissed,
    /// When the engine is next asked for timed-out reassemblies.
    next_timeout_check: Instant,
}

/// Which reassembled datagrams the kernel saw none of the fragments of, so that one the engine
/// leaves to the kernel must be handed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelMissed {
    /// The packet path: the kernel bypass withholds every fragment of a NAT real server's
    /// traffic of its services' protocols, unless addressed to the director.
    NatFragments,
    /// The BPF plane: the program hands rvsd the fragments it punts and drops them.
    Punted,
}

/// A frame the engine deferred, as it came.
struct Deferred {
    since: Instant,
    vnet: VnetHdr,
    frame: Vec<u8>,
}

/// Whether [`Outlet::handle_frame`] is done with a frame.
enum Handled {
    /// Sent, dropped or passed on.
    Done,
    /// Left to the kernel.
    ToKernel,
    /// The engine deferred it: untouched, to be offered again.
    Deferred,
}

/// A rewritten frame waiting for its next hop's MAC (the kernel was asked to resolve it).
struct HeldFrame {
    since: std::time::Instant,
    route: Route,
    vnet: VnetHdr,
    frame: Vec<u8>,
}

/// Where a rewritten frame goes.
#[derive(Clone, Copy)]
struct Route {
    next_hop_ip: IpAddr,
    /// Offset of the L3 packet in the frame.
    l3_offset: usize,
    /// Set when the packet is to be tunnelled.
    tunnel: Option<TunnelConfig>,
    /// Set for a datagram rvsd reassembled: its largest fragment.
    max_fragment: Option<usize>,
}

impl Worker {
    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            // The poll set, rebuilt only when a socket leaves or joins it: `fds[i]` watches the
            // receive socket of port `slots[i]` through a duplicate descriptor, so `drain` can
            // borrow the sockets mutably meanwhile.
            let (watched, slots) = self.watch_set();
            let mut fds: Vec<PollFd<'_>> = watched
                .iter()
                .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                .collect();
            while !stop.load(Ordering::Relaxed) {
                // Blocks until a receive socket has frames (or a fault) or the interval passes.
                let wait = if self.out.held.is_empty() && self.out.deferred.is_empty() {
                    POLL_MS
                } else {
                    PENDING_POLL_MS
                };
                if let Err(e) = nix::poll::poll(&mut fds, PollTimeout::from(wait)) {
                    tracing::error!("worker poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(u64::from(POLL_MS)));
                    continue;
                }
                let mut changed = false;
                for (fd, &port) in fds.iter().zip(&slots) {
                    let Some(revents) = fd.revents() else {
                        continue;
                    };
                    let faults = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
                    if revents.intersects(faults) {
                        changed |= self.fault(port, revents);
                    }
                    if revents.contains(PollFlags::POLLIN) {
                        self.drain(port);
                    }
                }
                if !self.out.deferred.is_empty() {
                    self.out.retry_deferred(self.clock.now());
                }
                if !self.out.held.is_empty() {
                    self.out.retry_held();
                }
                self.out.answer_reassembly_timeouts();
                // An idle worker lets go of a configuration replaced meanwhile.
                self.out.snapshot.refresh();
                // The receive rings are drained (or gave a batch each): send what was queued
                // before anything can block.
                self.out.flush();
                changed |= self.maintain();
                if changed {
                    break;
                }
            }
        }
    }

    /// Duplicates of the receive sockets to poll (open and not parked), with their port indices.
    fn watch_set(&mut self) -> (Vec<OwnedFd>, Vec<usize>) {
        let mut watched = Vec::with_capacity(self.ports.len());
        let mut slots = Vec::with_capacity(self.ports.len());
        for (index, port) in self.ports.iter_mut().enumerate() {
            if port.parked_until.is_some() {
                continue;
            }
            let Some(rx) = &port.rx else {
                continue;
            };
            match rx.as_fd().try_clone_to_owned() {
                Ok(fd) => {
                    watched.push(fd);
                    slots.push(index);
                }
                Err(e) => {
                    tracing::error!(
                        worker = self.id,
                        interface = %port.name,
                        "cannot duplicate the packet socket for poll: {e}"
                    );
                    port.parked_until = Some(Instant::now() + PARK);
                }
            }
        }
        (watched, slots)
    }

    /// Handles a fault `poll` reported on port `index`'s receive socket: reads (and so clears)
    /// the pending error, counts it, logs at most once per [`FAULT_LOG_INTERVAL`]. When there
    /// was no error to clear (a hang-up, an invalid descriptor), parks the socket for [`PARK`]
    /// so the next poll does not return at once again. Returns whether the poll set changed.
    fn fault(&mut self, index: usize, revents: PollFlags) -> bool {
        let Some(port) = self.ports.get_mut(index) else {
            return false;
        };
        let Some(rx) = &port.rx else {
            return true;
        };
        bump(&self.out.counters.socket_errors, 1);
        let pending = rx.take_error();
        let cleared = matches!(pending, Ok(Some(_)))
            && !revents.intersects(PollFlags::POLLHUP | PollFlags::POLLNVAL);
        let now = Instant::now();
        if let Some(count) = port.note_fault(now) {
            let what = match &pending {
                Ok(Some(e)) => e.to_string(),
                Ok(None) => "no pending error".to_owned(),
                Err(e) => e.to_string(),
            };
            tracing::warn!(
                worker = self.id,
                interface = %port.name,
                faults = count,
                "packet socket fault ({revents:?}): {what}; {}",
                if cleared { "cleared" } else { "parked for a second" }
            );
        }
        if cleared {
            return false;
        }
        port.parked_until = Some(now + PARK);
        true
    }

    /// Looks at the interfaces when the kernel's tables changed or [`LINK_RECHECK`] passed, and
    /// brings parked sockets back once their time is up. Returns whether the poll set changed.
    fn maintain(&mut self) -> bool {
        let mut changed = false;
        if self.ports.iter().any(|p| p.parked_until.is_some()) {
            let now = Instant::now();
            for port in &mut self.ports {
                if port.parked_until.is_some_and(|until| now >= until) {
                    port.parked_until = None;
                    changed = true;
                }
            }
        }
        let generation = self.net.generation();
        if generation == self.seen_generation && Instant::now() < self.next_recheck {
            return changed;
        }
        self.seen_generation = generation;
        self.next_recheck = Instant::now() + LINK_RECHECK;
        for index in 0..self.ports.len() {
            changed |= self.check_port(index);
        }
        changed
    }

    /// Closes port `index`'s sockets when the interface they are bound to is gone (its index no
    /// longer names it), and re-opens them once an interface of that name is there and up.
    /// Returns whether the poll set changed.
    fn check_port(&mut self, index: usize) -> bool {
        let Some(port) = self.ports.get_mut(index) else {
            return false;
        };
        let current = self.net.ifindex_by_name(&port.name);
        let mut changed = false;
        if port.rx.is_some() && current != Some(port.ifindex) {
            tracing::info!(
                worker = self.id,
                interface = %port.name,
                ifindex = port.ifindex,
                "interface gone: its packet sockets are closed until it is back"
            );
            port.rx = None;
            port.parked_until = None;
            self.out.tx.remove(&port.ifindex);
            changed = true;
        }
        let Some(ifindex) = current else {
            return changed;
        };
        if port.rx.is_some() || self.net.link_is_up(ifindex) != Some(true) {
            return changed;
        }
        // The kernel-bypass rules first, so the kernel does not also act on the frames the new
        // sockets take.
        self.links.announce(&port.name, ifindex);
        match open_pair(&port.name, self.group) {
            Ok((rx, out)) => {
                tracing::info!(
                    worker = self.id,
                    interface = %port.name,
                    ifindex = rx.ifindex(),
                    "interface back: packet sockets re-opened"
                );
                bump(&self.out.counters.socket_reopens, 1);
                self.out.tx.remove(&port.ifindex);
                self.out.tx.insert(out.ifindex(), TxQueue::new(out));
                *port = Port {
                    last_fault_log: port.last_fault_log,
                    ..Port::new(&port.name, rx)
                };
                true
            }
            Err(e) => {
                // Retried at the next change of the kernel's tables or after LINK_RECHECK.
                if port.note_fault(Instant::now()).is_some() {
                    tracing::warn!(
                        worker = self.id,
                        interface = %port.name,
                        "re-opening the packet sockets failed (retrying): {e:#}"
                    );
                }
                changed
            }
        }
    }

    fn drain(&mut self, index: usize) {
        let now = self.clock.now();
        let Worker { ports, out, .. } = self;
        let Some(sock) = ports.get_mut(index).and_then(|p| p.rx.as_mut()) else {
            return;
        };
        let result = sock.recv_batch_ahead(Duration::ZERO, BATCH, |vnet, frame, ahead| {
            // The next frame's table lines load while this one is handled.
            out.engine.prefetch(ahead);
            out.handle(now, vnet, frame);
        });
        if let Err(e) = result {
            tracing::warn!("receive failed: {e}");
        }
    }
}

impl Outlet {
    /// Runs one received frame through the engine and sends it where the verdict says (or
    /// holds it while its next hop's MAC is resolved).
    fn handle(&mut self, now: rvs_engine::Millis, vnet: &VnetHdr, frame: &mut [u8]) {
        self.offer(now, vnet, frame, &mut |_| {}, false);
    }

    /// [`Outlet::handle`], with `reassembled` seeing each datagram the frame completes (see
    /// [`Outlet::handle_frame`]) and `cookie_checked` for an ACK whose SYN cookie the BPF program
    /// checked; a frame the engine defers is kept for [`Outlet::retry_deferred`].
    fn offer(
        &mut self,
        now: rvs_engine::Millis,
        vnet: &VnetHdr,
        frame: &mut [u8],
        reassembled: &mut dyn FnMut(&[u8]),
        cookie_checked: bool,
    ) {
        let handled = self.handle_frame(now, vnet, frame, None, reassembled, cookie_checked);
        if let Handled::Deferred = handled {
            self.defer(vnet, frame);
        }
    }

    /// Keeps a frame the engine deferred (bounded; overflow is counted) for
    /// [`Outlet::retry_deferred`].
    fn defer(&mut self, vnet: &VnetHdr, frame: &[u8]) {
        if self.deferred.len() >= DEFERRED_MAX {
            bump(&self.counters.deferred_expired, 1);
            return;
        }
        bump(&self.counters.deferred, 1);
        self.deferred.push(Deferred {
            since: Instant::now(),
            vnet: *vnet,
            frame: frame.to_vec(),
        });
    }

    /// Offers the deferred frames to the engine again; keeps the ones it defers again until
    /// [`DEFERRED_TTL`], then drops them.
    fn retry_deferred(&mut self, now: rvs_engine::Millis) {
        let waiting = std::mem::take(&mut self.deferred);
        for mut d in waiting {
            match self.handle_frame(now, &d.vnet, &mut d.frame, None, &mut |_| {}, false) {
                Handled::Deferred if d.since.elapsed() < DEFERRED_TTL => self.deferred.push(d),
                Handled::Deferred => bump(&self.counters.deferred_expired, 1),
                Handled::Done | Handled::ToKernel => {}
            }
        }
    }

    /// [`Outlet::handle`] for a frame, or for a datagram reassembled from fragments whose
    /// largest was `max_fragment` bytes. `reassembled` sees each datagram the fragments make
    /// before the engine does.
    fn handle_frame(
        &mut self,
        now: rvs_engine::Millis,
        vnet: &VnetHdr,
        frame: &mut [u8],
        max_fragment: Option<usize>,
        reassembled: &mut dyn FnMut(&[u8]),
        cookie_checked: bool,
    ) -> Handled {
        self.quote.keep(frame);
        let Outlet {
            engine,
            snapshot,
            counters,
            local,
            ..
        } = self;
        let mut meta = PacketMeta {
            csum_partial: vnet.needs_csum(),
            cookie_checked,
        };
        let verdict = engine.handle_cached(snapshot, now, &mut meta, frame);
        // The engine wrote complete checksums (the SYN proxy's segments): none is left to the
        // kernel to finish.
        let completed = VnetHdr::default();
        let vnet = if vnet.needs_csum() && !meta.csum_partial {
            &completed
        } else {
            vnet
        };
        let (next_hop_ip, l3_offset, tunnel, insertion) = match verdict {
            Verdict::Forward {
                next_hop_ip,
                l3_offset,
            } => (next_hop_ip, l3_offset, None, None),
            Verdict::ForwardInsert {
                next_hop_ip,
                l3_offset,
                payload_offset,
                end,
                insert,
            } => (
                next_hop_ip,
                l3_offset,
                None,
                Some((payload_offset, end, insert)),
            ),
            Verdict::Encapsulate {
                next_hop_ip,
                l3_offset,
                tunnel,
            } => (next_hop_ip, l3_offset, Some(tunnel), None),
            Verdict::Deliver { l3_offset } => {
                deliver_local(local, counters, l3_offset, vnet, frame);
                return Handled::Done;
            }
            Verdict::Reassemble => {
                // A fragment of a reassembled datagram cannot be one again.
                if max_fragment.is_none() {
                    if let Some(mut whole) = engine.reassemble(now, frame) {
                        reassembled(&whole.frame);
                        let plain = VnetHdr::default();
                        let largest = Some(whole.max_fragment);
                        // A datagram is not deferred (only TCP segments are): it goes or not.
                        let frame = &mut whole.frame;
                        let handled =
                            self.handle_frame(now, &plain, frame, largest, reassembled, false);
                        if let Handled::ToKernel = handled {
                            self.hand_to_kernel(&whole);
                        }
                    }
                }
                return Handled::Done;
            }
            Verdict::Defer => return Handled::Deferred,
            Verdict::PassToKernel => return Handled::ToKernel,
            Verdict::Drop(_) => return Handled::Done,
        };
        let route = Route {
            next_hop_ip,
            l3_offset,
            tunnel,
            max_fragment,
        };
        let inserted = insertion
            .as_ref()
            .map(|(payload_offset, end, insert)| Inserted {
                payload_offset: *payload_offset,
                end: *end,
                bytes: insert.as_bytes(),
            });
        let vnet = &sctp_crc_complete(vnet, frame, l3_offset);
        self.send(route, inserted.as_ref(), vnet, frame);
        Handled::Done
    }

    /// Hands a reassembled datagram the engine left to the kernel to it, when the kernel had
    /// none of its fragments: cut again into pieces no larger than its largest fragment (as
    /// the kernel's own reassembly forwards a datagram) and written to the TUN device, so the
    /// kernel delivers or routes it as it would have the fragments.
    fn hand_to_kernel(&mut self, whole: &rvs_engine::reasm::Reassembled) {
        let l3 = ethernet::Frame::new_checked(&whole.frame[..]).map_or(ETH_HLEN, |f| f.l3_offset());
        let Some(packet) = whole.frame.get(l3..) else {
            return;
        };
        if self.kernel_missed == KernelMissed::NatFragments && !self.kernel_missed_it(packet) {
            return;
        }
        let plain = VnetHdr::default();
        self.frag_ident = self.frag_ident.wrapping_add(1);
        let (local, counters) = (&self.local, &self.counters);
        let mut piece = Vec::with_capacity(whole.max_fragment);
        let cut = if packet.len() <= whole.max_fragment {
            local.send(&plain, packet).map(|()| 1)
        } else {
            let mut sent = Ok(0);
            let split =
                rvs_engine::fragment::split(packet, whole.max_fragment, self.frag_ident, |h, d| {
                    piece.clear();
                    piece.extend_from_slice(h);
                    piece.extend_from_slice(d);
                    if sent.is_ok() {
                        sent = local.send(&plain, &piece).map(|()| 1);
                    }
                });
            match split {
                Ok(_) => sent,
                Err(e) => {
                    tracing::debug!("cannot cut a datagram for the kernel: {e}");
                    bump(&counters.send_errors, 1);
                    return;
                }
            }
        };
        match cut {
            Ok(_) => bump(&counters.to_kernel, 1),
            Err(e) => count_error(counters, "handing a datagram to the kernel", &e),
        }
    }

    /// Whether the kernel bypass kept every fragment of `packet`'s datagram from the kernel:
    /// it comes from a NAT real server of one of its services' protocols and is not addressed
    /// to the director (the `rsfrag4`/`rsfrag6` rules).
    fn kernel_missed_it(&self, packet: &[u8]) -> bool {
        let Some((src, dst, proto)) = addresses_of(packet) else {
            return false;
        };
        self.engine.is_nat_source(src, proto) && !self.net.local_addrs().contains(&dst)
    }

    /// Sends the packet of `frame` where `route` says, with `insert`'s bytes inside it, holding
    /// it while the next hop's MAC is resolved.
    fn send(
        &mut self,
        route: Route,
        insert: Option<&Inserted<'_>>,
        vnet: &VnetHdr,
        frame: &mut [u8],
    ) {
        let Outlet {
            net,
            tx,
            neighbours,
            held,
            counters,
            tunnel: scratch,
            quote,
            frag_ident,
            ..
        } = self;
        let out = Egress {
            net,
            tx,
            neighbours,
            counters,
            frag_ident,
        };
        if let Sent::Held = out.forward(scratch, &route, insert, quote.get(), vnet, frame) {
            match insert {
                None => hold(held, counters, route, vnet, frame),
                // Held whole, the inserted bytes in place (the SYN proxy's first SYN to a real
                // server whose neighbour is not known yet, say).
                Some(i) => {
                    if let Some(whole) = i.materialize(frame, 0) {
                        hold(held, counters, route, vnet, &whole);
                    }
                }
            }
        }
    }
}

/// The virtio-net header a punted frame would have come with from a packet socket. The BPF
/// program cannot see the skb's checksum state, so it is read from the bytes: a GSO frame's
/// L4 checksum is partial (the pseudo-header sum); another frame's is complete when it
/// verifies, partial when the field holds just the pseudo-header sum (veth's default offload).
fn punted_vnet(frame: &[u8], gso_size: u16) -> VnetHdr {
    use rvs_wire::checksum;
    let mut vnet = VnetHdr::default();
    let ethertype = frame.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let l3 = ETH_HLEN;
    let (v6, proto, l4, pseudo) = match ethertype {
        Some(ETHERTYPE_IPV4) => {
            let Some(ip) = frame.get(l3..l3 + 20) else {
                return vnet;
            };
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let l4_len = total.saturating_sub(ihl) as u32;
            let src = [ip[12], ip[13], ip[14], ip[15]];
            let dst = [ip[16], ip[17], ip[18], ip[19]];
            let pseudo = checksum::pseudo_header_v4(src, dst, ip[9], l4_len);
            (false, ip[9], l3 + ihl, (pseudo, l4_len))
        }
        Some(ETHERTYPE_IPV6) => {
            let Some(ip) = frame.get(l3..l3 + 40) else {
                return vnet;
            };
            let l4_len = u32::from(u16::from_be_bytes([ip[4], ip[5]]));
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&ip[8..24]);
            dst.copy_from_slice(&ip[24..40]);
            let pseudo = checksum::pseudo_header_v6(src, dst, ip[6], l4_len);
            (true, ip[6], l3 + 40, (pseudo, l4_len))
        }
        _ => return vnet,
    };
    let csum_offset: u16 = match proto {
        6 => 16,
        17 => 6,
        _ => return vnet,
    };
    let field_at = l4 + usize::from(csum_offset);
    let Some(field) = frame.get(field_at..field_at + 2) else {
        return vnet;
    };
    let field = u16::from_be_bytes([field[0], field[1]]);
    let partial = |vnet: &mut VnetHdr| {
        vnet.flags = VnetHdr::F_NEEDS_CSUM;
        vnet.csum_start = l4 as u16;
        vnet.csum_offset = csum_offset;
    };
    if gso_size > 0 {
        partial(&mut vnet);
        let l4_hdr = match proto {
            6 => frame.get(l4 + 12).map_or(20, |b| usize::from(b >> 4) * 4),
            _ => 8,
        };
        vnet.hdr_len = (l4 + l4_hdr) as u16;
        vnet.gso_size = gso_size;
        vnet.gso_type = match (proto, v6) {
            (6, false) => VnetHdr::GSO_TCPV4,
            (6, true) => VnetHdr::GSO_TCPV6,
            _ => VnetHdr::GSO_UDP_L4,
        };
        return vnet;
    }
    let (pseudo, l4_len) = pseudo;
    let end = (l4 + l4_len as usize).min(frame.len());
    let complete = frame
        .get(l4..end)
        .is_some_and(|seg| checksum::fold(checksum::add_bytes(pseudo, seg)) == 0xffff);
    if !complete && field == checksum::fold(pseudo) {
        partial(&mut vnet);
    }
    vnet
}

/// A random first IPv6 fragment identification, so two rvsd threads (or runs) do not start
/// their series at the same value.
fn first_frag_ident() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    std::hash::RandomState::new().build_hasher().finish() as u32
}

/// Feeds the frames the BPF data plane passes up (its `punt` ring) to the engine and sends what
/// the engine says, through send sockets of its own: the packet path's per-frame work without
/// receive sockets, since the program decides which frames come here.
pub struct Injector {
    clock: Clock,
    out: Outlet,
}

impl Injector {
    /// Opens a send socket on each of `interfaces`; counts into `counters`' first writer (the
    /// BPF plane's counters have this one writer).
    pub fn open(
        engine: Arc<Engine>,
        net: Arc<NetState>,
        clock: Clock,
        interfaces: &[String],
        counters: Arc<EgressCounters>,
        local: Arc<TunDevice>,
    ) -> anyhow::Result<Injector> {
        let mut tx = HashMap::new();
        for name in interfaces {
            let out = PacketSocket::open_tx(name)
                .with_context(|| format!("opening a send socket on {name}"))?;
            tx.insert(out.ifindex(), TxQueue::new(out));
        }
        Ok(Injector {
            clock,
            out: Outlet {
                snapshot: engine.snapshot_cache(),
                engine,
                net,
                tx,
                neighbours: NeighbourCache::default(),
                held: Vec::new(),
                counters: counters.writer(0),
                tunnel: TunnelTx::default(),
                quote: Quote::new(),
                frag_ident: first_frag_ident(),
                deferred: Vec::new(),
                local,
                kernel_missed: KernelMissed::Punted,
                next_timeout_check: Instant::now(),
            },
        })
    }

    /// Handles one punted frame, copied as the kernel held it: `gso_size` non-zero for a GSO
    /// frame, and its checksum maybe partial (see [`punted_vnet`]).
    pub fn inject(&mut self, frame: &mut [u8], gso_size: u16) {
        let now = self.clock.now();
        let vnet = punted_vnet(frame, gso_size);
        self.out.handle(now, &vnet, frame);
    }

    /// [`Injector::inject`] for an ACK whose SYN cookie the program checked (the proxy's
    /// connection is opened without checking it again; a client's data segment acknowledges
    /// the cookie too, and waits for the server).
    pub fn inject_checked_ack(&mut self, frame: &mut [u8]) {
        let now = self.clock.now();
        let vnet = punted_vnet(frame, 0);
        self.out.offer(now, &vnet, frame, &mut |_| {}, true);
    }

    /// [`Injector::inject`] for a fragment: `reassembled` sees the datagram its fragments make,
    /// before the engine does (to give the engine the program's connection of it).
    pub fn inject_fragment(&mut self, frame: &mut [u8], reassembled: &mut dyn FnMut(&[u8])) {
        let now = self.clock.now();
        let vnet = punted_vnet(frame, 0);
        self.out.offer(now, &vnet, frame, reassembled, false);
    }

    /// Sends the frames queued by [`Injector::inject`] and [`Injector::retry_held`]: call it
    /// before waiting for more punted frames.
    pub fn flush(&mut self) {
        self.out.flush();
    }

    /// Tunnels one punted frame of a connection the BPF program keeps to the real server `rip`
    /// with `cfg`: the engine's transmitter checks the path MTU (answering the client with
    /// ICMP), completes checksums and segments GSO frames, as for the engine's own connections.
    pub fn tunnel(&mut self, frame: &mut [u8], gso_size: u16, rip: IpAddr, cfg: &TunnelConfig) {
        let vnet = punted_vnet(frame, gso_size);
        let route = Route {
            next_hop_ip: rip,
            l3_offset: ETH_HLEN,
            tunnel: Some(*cfg),
            max_fragment: None,
        };
        self.out.send(route, None, &vnet, frame);
    }

    /// Answers a punted frame the program found too long for its path (and not to be
    /// fragmented) with ICMP "fragmentation needed" / "packet too big" announcing `mtu`.
    pub fn refuse(&mut self, frame: &[u8], mtu: u32) {
        let mut out = self.out.egress();
        let l3 = ethernet::Frame::new_checked(frame).map_or(ETH_HLEN, |f| f.l3_offset());
        out.refuse(frame.get(l3..), mtu);
    }

    /// Answers the datagrams whose reassembly timed out, now and then (call it each round).
    pub fn answer_reassembly_timeouts(&mut self) {
        self.out.answer_reassembly_timeouts();
    }

    /// Lets go of a configuration replaced since the last frame (call it each round).
    pub fn refresh_config(&mut self) {
        self.out.snapshot.refresh();
    }

    /// Offers the frames the engine deferred to it again (call it after each round of punted
    /// frames while [`Injector::deferring`]).
    pub fn retry_deferred(&mut self) {
        let now = self.clock.now();
        self.out.retry_deferred(now);
    }

    /// Whether frames wait to be offered to the engine again.
    pub fn deferring(&self) -> bool {
        !self.out.deferred.is_empty()
    }

    /// Sends the held frames whose neighbour is now known (call it now and then).
    pub fn retry_held(&mut self) {
        self.out.retry_held();
    }

    /// Whether frames wait for a neighbour.
    pub fn holding(&self) -> bool {
        !self.out.held.is_empty()
    }
}

/// Hands the untouched L3 packet at `frame[l3_offset..]` to the director's own stack (IPVS's
/// `ip_vs_null_xmit`), with its virtio-net header (so GSO frames and partial checksums pass),
/// the header's offsets counted from the L3 header.
fn deliver_local(
    local: &TunDevice,
    counters: &Counts,
    l3_offset: usize,
    vnet: &VnetHdr,
    frame: &[u8],
) {
    let Some(packet) = frame.get(l3_offset..) else {
        return;
    };
    match local.send(&vnet_from(vnet, l3_offset), packet) {
        Ok(()) => bump(&counters.local_delivered, 1),
        Err(e) => count_error(counters, "local delivery", &e),
    }
}

/// The virtio-net header to send an SCTP packet with that came `NEEDS_CSUM` (CHECKSUM_PARTIAL):
/// its CRC32c is completed here (the engine already did so for a rewritten packet, IPVS's
/// `sctp_dnat_handler`) and the flag cleared, since the kernel or NIC would otherwise complete
/// it as an Internet checksum (the virtio-net header cannot say `csum_not_inet`) and overwrite
/// the CRC. Other frames keep their header.
fn sctp_crc_complete(vnet: &VnetHdr, frame: &mut [u8], l3_offset: usize) -> VnetHdr {
    let mut out = *vnet;
    if !vnet.needs_csum() || vnet.is_gso() {
        return out;
    }
    let Some(l3) = frame.get(l3_offset..) else {
        return out;
    };
    let l4 = match l3.first().map(|b| b >> 4) {
        Some(4) => match rvs_wire::ipv4::Packet::new_checked(l3) {
            Ok(p) if p.protocol() == rvs_wire::ip::SCTP && !p.is_fragment() => {
                p.header_len()..usize::from(p.total_len())
            }
            _ => return out,
        },
        Some(6) => match rvs_wire::ipv6::Packet::new_checked(l3) {
            Ok(p) if p.upper_protocol() == rvs_wire::ip::SCTP && !p.is_fragment() => {
                p.upper_offset()..p.total_len()
            }
            _ => return out,
        },
        _ => return out,
    };
    let Some(b) = frame.get_mut(l3_offset + l4.start..l3_offset + l4.end) else {
        return out;
    };
    if let Ok(mut p) = rvs_wire::sctp::Packet::new_checked(b) {
        p.fill_checksum();
        out.flags &= !VnetHdr::F_NEEDS_CSUM;
    }
    out
}

/// Bytes to insert at the start of a frame's TCP payload.
struct Inserted<'a> {
    payload_offset: usize,
    end: usize,
    bytes: &'a [u8],
}

impl Inserted<'_> {
    /// `frame` from `from` to the packet's end with the bytes in place, as one buffer (for the
    /// rare paths that need it whole: fragmenting, holding).
    fn materialize(&self, frame: &[u8], from: usize) -> Option<Vec<u8>> {
        let head = frame.get(from..self.payload_offset)?;
        let tail = frame.get(self.payload_offset..self.end)?;
        Some([head, self.bytes, tail].concat())
    }
}

/// What became of a forwarded frame.
enum Sent {
    /// Sent, or dropped and counted.
    Done,
    /// The next hop's MAC is being resolved: the caller may hold the frame and retry.
    Held,
}

/// The pieces of a worker that sending needs, borrowed together.
struct Egress<'a> {
    net: &'a NetState,
    tx: &'a mut HashMap<u32, TxQueue>,
    neighbours: &'a mut NeighbourCache,
    counters: &'a Counts,
    /// The identification of the next IPv6 fragment series.
    frag_ident: &'a mut u32,
}

/// Counts a frame the kernel refused to send, with a debug line naming `what` was sent.
fn count_error(counters: &Counts, what: &str, e: &IoError) {
    bump(&counters.send_errors, 1);
    tracing::debug!("{what} failed: {e}");
}

fn eth_header(dst_mac: [u8; 6], src_mac: [u8; 6], v6: bool) -> [u8; ETH_HLEN] {
    ethernet::Repr {
        dst: dst_mac,
        src: src_mac,
        ethertype: if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 },
    }
    .to_bytes()
}

/// A resolved way out toward a next hop: the egress interface (one of the send queues) and
/// the MACs.
#[derive(Clone, Copy)]
struct Path {
    ifindex: u32,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    mtu: u32,
}

/// The virtio-net header of a frame sent from `start` bytes after where it was received (a VLAN
/// tag was dropped): its offsets count from the frame start.
fn vnet_from(vnet: &VnetHdr, start: usize) -> VnetHdr {
    let mut out = *vnet;
    if start > 0 {
        let shift = u16::try_from(start).unwrap_or(u16::MAX);
        out.csum_start = out.csum_start.saturating_sub(shift);
        out.hdr_len = out.hdr_len.saturating_sub(shift);
    }
    out
}

impl<'a> Egress<'a> {
    /// The egress socket and MACs toward `next_hop_ip`; when there are none yet, counts it and
    /// says what became of the frame (held while the kernel resolves the neighbour, else done).
    fn path(&mut self, next_hop_ip: IpAddr) -> Result<Path, Sent> {
        match self.neighbours.resolve(self.net, next_hop_ip) {
            Resolution::Ready {
                ifindex,
                src_mac,
                dst_mac,
                mtu,
            } if self.tx.contains_key(&ifindex) => Ok(Path {
                ifindex,
                src_mac,
                dst_mac,
                mtu,
            }),
            Resolution::Ready { .. } => {
                bump(&self.counters.unmanaged_egress, 1);
                Err(Sent::Done)
            }
            Resolution::Pending => Err(Sent::Held),
            Resolution::Unreachable => {
                bump(&self.counters.unreachable, 1);
                Err(Sent::Done)
            }
        }
    }

    /// Tunnels the inner packet at `frame[l3_offset..]` to the real server `rip`: resolves the
    /// path and the source address, lets `rvs_engine::tunnel::TunnelTx::encapsulate` decide
    /// (path-MTU check with ICMP back to the client, checksum completion, software segmentation
    /// of GSO frames, outer headers), then queues each packet (Ethernet header, outer header and
    /// untouched inner packet as pieces) on the egress interface's send queue, and counts.
    fn encapsulate(
        mut self,
        tx: &mut TunnelTx,
        rip: IpAddr,
        l3_offset: usize,
        cfg: &TunnelConfig,
        vnet: &VnetHdr,
        frame: &mut [u8],
    ) -> Sent {
        use rvs_engine::tunnel::{FrameCsum, Offload, Segmentation, TunnelRoute, TunnelSent};
        let counters = self.counters;
        let Path {
            ifindex,
            src_mac,
            dst_mac,
            mtu,
        } = match self.path(rip) {
            Ok(path) => path,
            Err(sent) => return sent,
        };
        let Some(src) = self.neighbours.source_for(self.net, rip) else {
            bump(&counters.tunnel_errors, 1);
            return Sent::Done;
        };
        let segmentation = if vnet.is_gso() {
            match vnet.gso_type & !VnetHdr::GSO_ECN {
                VnetHdr::GSO_TCPV4 | VnetHdr::GSO_TCPV6 => Segmentation::Gso {
                    kind: rvs_engine::gso::GsoKind::Tcp,
                    size: vnet.gso_size,
                },
                VnetHdr::GSO_UDP_L4 => Segmentation::Gso {
                    kind: rvs_engine::gso::GsoKind::UdpL4,
                    size: vnet.gso_size,
                },
                _ => Segmentation::Unsupported,
            }
        } else {
            Segmentation::None
        };
        let offload = Offload {
            segmentation,
            csum: vnet.needs_csum().then_some(FrameCsum {
                start: vnet.csum_start,
                offset: vnet.csum_offset,
            }),
        };
        let route = TunnelRoute {
            cfg,
            src,
            dst: rip,
            mtu,
        };
        let eth = eth_header(dst_mac, src_mac, rip.is_ipv6());
        let Some(queue) = self.tx.get_mut(&ifindex) else {
            return Sent::Done;
        };
        let frag_ident = &mut *self.frag_ident;
        let sent = tx.encapsulate(&route, frame, l3_offset, offload, |packet| match packet {
            Ok((outer, inner)) if outer.as_bytes().len() + inner.len() <= mtu as usize => {
                queue.send(&VnetHdr::default(), &[&eth, outer.as_bytes(), inner]);
            }
            Ok((outer, inner)) => {
                // The transmitter let it go (an inner IPv4 packet without DF): the outer
                // packet is cut, as the kernel's tunnel driver would.
                let packet = [outer.as_bytes(), inner].concat();
                *frag_ident = frag_ident.wrapping_add(1);
                let cut =
                    rvs_engine::fragment::split(&packet, mtu as usize, *frag_ident, |h, d| {
                        queue.send(&VnetHdr::default(), &[&eth, h, d]);
                    });
                match cut {
                    Ok(_) => bump(&counters.fragmented, 1),
                    Err(e) => {
                        tracing::debug!("cannot fragment a tunnelled packet: {e}");
                        bump(&counters.tunnel_errors, 1);
                    }
                }
            }
            Err(e) => {
                tracing::debug!("cannot encapsulate: {e}");
                bump(&counters.tunnel_errors, 1);
            }
        });
        match sent {
            Ok(TunnelSent::Sent { segments }) => match segments {
                None => {}
                Some(cut) => {
                    bump(&counters.tunnel_segmented, 1);
                    if cut.is_err() {
                        bump(&counters.tunnel_errors, 1);
                    }
                }
            },
            Ok(TunnelSent::TooBig { reply }) => {
                bump(&counters.tunnel_too_big, 1);
                if let Some((client, icmp)) = reply {
                    self.send_l3(client, icmp);
                }
            }
            Err(_) => {
                bump(&counters.tunnel_errors, 1);
            }
        }
        Sent::Done
    }

    /// Sends an IP packet the director generated (an ICMP error) toward `dst` when its next hop
    /// is already known; otherwise drops it (the sender retransmits and gets another).
    fn send_l3(&mut self, dst: IpAddr, packet: &[u8]) {
        let Ok(path) = self.path(dst) else {
            return;
        };
        let Some(queue) = self.tx.get_mut(&path.ifindex) else {
            return;
        };
        let eth = eth_header(path.dst_mac, path.src_mac, dst.is_ipv6());
        if let Err(e) = queue.send_now(&VnetHdr::default(), &[&eth, packet]) {
            count_error(self.counters, "sending an ICMP error", &e);
        }
    }

    /// Sends the packet where `route` says: tunnelled ([`Egress::encapsulate`]) or as it is
    /// ([`Egress::transmit`]). `quote` is the packet's start as it came in (for an ICMP error
    /// about it), if kept.
    fn forward(
        self,
        scratch: &mut TunnelTx,
        route: &Route,
        insert: Option<&Inserted<'_>>,
        quote: Option<&[u8]>,
        vnet: &VnetHdr,
        frame: &mut [u8],
    ) -> Sent {
        match route.tunnel {
            None => self.transmit(route, insert, quote, vnet, frame),
            Some(cfg) => self.encapsulate(
                scratch,
                route.next_hop_ip,
                route.l3_offset,
                &cfg,
                vnet,
                frame,
            ),
        }
    }

    /// Sends the rewritten L3 packet at `frame[route.l3_offset..]` behind the next hop's
    /// Ethernet header on the egress interface's send queue, given as pieces; `insert` adds
    /// bytes at the start of the TCP payload (the PROXY protocol header of a FULLNAT connection,
    /// the SYN proxy's MSS option). A packet too long for the path is cut or refused
    /// ([`mtu::fit`]).
    fn transmit(
        mut self,
        route: &Route,
        insert: Option<&Inserted<'_>>,
        quote: Option<&[u8]>,
        vnet: &VnetHdr,
        frame: &[u8],
    ) -> Sent {
        let Route {
            next_hop_ip,
            l3_offset,
            max_fragment,
            ..
        } = *route;
        let path = match self.path(next_hop_ip) {
            Ok(path) => path,
            Err(sent) => return sent,
        };
        let Some(start) = l3_offset.checked_sub(ETH_HLEN) else {
            return Sent::Done;
        };
        let eth = eth_header(path.dst_mac, path.src_mac, next_hop_ip.is_ipv6());
        let Some(packet) = frame.get(l3_offset..) else {
            return Sent::Done;
        };
        let extra = insert.map_or(0, |i| i.bytes.len());
        let len = ip_len(packet) + extra;
        let segment = gso_segment(vnet, frame, l3_offset);
        match mtu::fit(packet, len, segment, path.mtu, max_fragment) {
            Fit::Whole => {}
            Fit::Cut(max) => {
                let whole = Whole {
                    l3_offset,
                    end: l3_offset + len - extra,
                    insert,
                    vnet,
                };
                self.cut(&path, &eth, max, &whole, frame);
                return Sent::Done;
            }
            Fit::Refuse(mtu) => {
                self.refuse(quote, mtu);
                return Sent::Done;
            }
        }
        // A dropped VLAN tag moves the frame start; the vnet offsets count from it.
        let vnet_out = vnet_from(vnet, start);
        let Some(queue) = self.tx.get_mut(&path.ifindex) else {
            return Sent::Done;
        };
        match insert {
            None => {
                let Some(packet) = frame.get(l3_offset..) else {
                    return Sent::Done;
                };
                queue.send(&vnet_out, &[&eth, packet]);
            }
            Some(insert) => {
                let (Some(head), Some(tail)) = (
                    frame.get(l3_offset..insert.payload_offset),
                    frame.get(insert.payload_offset..insert.end),
                ) else {
                    return Sent::Done;
                };
                queue.send(&vnet_out, &[&eth, head, insert.bytes, tail]);
            }
        }
        Sent::Done
    }
}

impl Egress<'_> {
    /// Sends the packet `whole` describes cut into fragments of at most `max` bytes (its
    /// checksum completed first: fragments cannot carry a partial one).
    fn cut(&mut self, path: &Path, eth: &[u8], max: usize, whole: &Whole<'_>, frame: &[u8]) {
        let Some(mut packet) = whole.bytes(frame) else {
            return;
        };
        if whole.vnet.needs_csum() {
            let start = usize::from(whole.vnet.csum_start).saturating_sub(whole.l3_offset);
            let offset = usize::from(whole.vnet.csum_offset);
            if !rvs_engine::tunnel::complete_checksum(&mut packet, start, offset) {
                bump(&self.counters.send_errors, 1);
                return;
            }
        }
        *self.frag_ident = self.frag_ident.wrapping_add(1);
        let Some(queue) = self.tx.get_mut(&path.ifindex) else {
            return;
        };
        let plain = VnetHdr::default();
        let cut = rvs_engine::fragment::split(&packet, max, *self.frag_ident, |h, d| {
            queue.send(&plain, &[eth, h, d]);
        });
        match cut {
            Ok(_) => bump(&self.counters.fragmented, 1),
            Err(e) => {
                tracing::debug!("cannot fragment a forwarded packet: {e}");
                bump(&self.counters.send_errors, 1);
            }
        }
    }

    /// Drops a packet too long for its path and, when its start as it came in was kept,
    /// sends its sender ICMP "fragmentation needed" / "packet too big" announcing `mtu`, from
    /// the director's address toward the sender.
    fn refuse(&mut self, quote: Option<&[u8]>, mtu: u32) {
        bump(&self.counters.too_big, 1);
        let Some(quote) = quote else {
            return;
        };
        self.icmp_error(quote, true, |quote, from, ident, icmp| {
            rvs_engine::tunnel::too_big_from(quote, from, mtu, ident, icmp)
        });
    }

    /// Answers the sender of a datagram whose reassembly timed out (its first fragment) with
    /// ICMP "fragment reassembly time exceeded".
    fn reassembly_timed_out(&mut self, first: &rvs_engine::reasm::TimedOut) {
        self.icmp_error(
            &first.packet,
            !first.to_virtual,
            rvs_engine::tunnel::reassembly_timeout_from,
        );
    }

    /// Sends the ICMP error `build` makes about `quote` (an IP packet) to its sender: from the
    /// director's own address toward the sender when `own_source`, else from the address the
    /// packet was sent to.
    fn icmp_error(
        &mut self,
        quote: &[u8],
        own_source: bool,
        build: impl FnOnce(&[u8], Option<IpAddr>, u16, &mut Vec<u8>) -> Option<IpAddr>,
    ) {
        let from = if own_source {
            sender_of(quote).and_then(|sender| self.net.source_for(sender))
        } else {
            None
        };
        let mut icmp = Vec::new();
        *self.frag_ident = self.frag_ident.wrapping_add(1);
        let ident = *self.frag_ident as u16;
        if let Some(sender) = build(quote, from, ident, &mut icmp) {
            self.send_l3(sender, &icmp);
        }
    }
}

/// A forwarded packet in its frame, to be cut into fragments.
struct Whole<'a> {
    l3_offset: usize,
    /// End of the IP packet in the frame (without the inserted bytes).
    end: usize,
    insert: Option<&'a Inserted<'a>>,
    vnet: &'a VnetHdr,
}

impl Whole<'_> {
    /// The IP packet's bytes, inserted bytes included.
    fn bytes(&self, frame: &[u8]) -> Option<Vec<u8>> {
        match self.insert {
            None => frame.get(self.l3_offset..self.end).map(<[u8]>::to_vec),
            Some(i) => i.materialize(frame, self.l3_offset),
        }
    }
}

/// The IP length of `packet` (its total length field; all of it when unreadable), so Ethernet
/// padding does not count.
fn ip_len(packet: &[u8]) -> usize {
    let field = match packet.first().map(|b| b >> 4) {
        Some(4) => packet
            .get(2..4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))),
        Some(6) => packet
            .get(4..6)
            .map(|b| 40 + usize::from(u16::from_be_bytes([b[0], b[1]]))),
        _ => None,
    };
    field.map_or(packet.len(), |n| n.min(packet.len()))
}

/// The IP length of each segment of a GSO frame (headers and one segment's payload); `None`
/// for a frame that is not GSO.
fn gso_segment(vnet: &VnetHdr, frame: &[u8], l3_offset: usize) -> Option<usize> {
    if !vnet.is_gso() {
        return None;
    }
    let l4 = usize::from(vnet.csum_start);
    let l4_header = match vnet.gso_type & !VnetHdr::GSO_ECN {
        VnetHdr::GSO_TCPV4 | VnetHdr::GSO_TCPV6 => {
            frame.get(l4 + 12).map_or(20, |b| usize::from(b >> 4) * 4)
        }
        _ => 8,
    };
    Some(l4.saturating_sub(l3_offset) + l4_header + usize::from(vnet.gso_size))
}

/// The source address of the IP packet `quote` starts with.
/// The source, destination and transport protocol of an unfragmented IPv4 or IPv6 packet
/// (IPv6's hop-by-hop, routing and destination options headers skipped).
fn addresses_of(packet: &[u8]) -> Option<(IpAddr, IpAddr, u8)> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            Some((src.into(), dst.into(), *packet.get(9)?))
        }
        Some(6) => {
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            let (mut next, mut at) = (*packet.get(6)?, 40usize);
            for _ in 0..8 {
                if !matches!(next, 0 | 43 | 60) {
                    break;
                }
                let ext = packet.get(at..at + 2)?;
                next = ext[0];
                at += (usize::from(ext[1]) + 1) * 8;
            }
            Some((src.into(), dst.into(), next))
        }
        _ => None,
    }
}

fn sender_of(quote: &[u8]) -> Option<IpAddr> {
    match quote.first().map(|b| b >> 4) {
        Some(4) => {
            let a: [u8; 4] = quote.get(12..16)?.try_into().ok()?;
            Some(IpAddr::from(a))
        }
        Some(6) => {
            let a: [u8; 16] = quote.get(8..24)?.try_into().ok()?;
            Some(IpAddr::from(a))
        }
        _ => None,
    }
}

/// Keeps a copy of a frame whose next hop is being resolved (bounded; overflow is counted).
fn hold(held: &mut Vec<HeldFrame>, counters: &Counts, route: Route, vnet: &VnetHdr, frame: &[u8]) {
    if held.len() >= PENDING_MAX {
        bump(&counters.neighbour_failed, 1);
        return;
    }
    bump(&counters.neighbour_held, 1);
    held.push(HeldFrame {
        since: std::time::Instant::now(),
        route,
        vnet: *vnet,
        frame: frame.to_vec(),
    });
}

impl Outlet {
    /// The sending side of this outlet.
    fn egress(&mut self) -> Egress<'_> {
        let Outlet {
            net,
            tx,
            neighbours,
            counters,
            frag_ident,
            ..
        } = self;
        Egress {
            net,
            tx,
            neighbours,
            counters,
            frag_ident,
        }
    }

    /// Every [`TIMEOUT_CHECK`]: answers the datagrams whose reassembly the engine gave up
    /// (ICMP "fragment reassembly time exceeded" to the sender of each first fragment).
    fn answer_reassembly_timeouts(&mut self) {
        let now = Instant::now();
        if now < self.next_timeout_check {
            return;
        }
        self.next_timeout_check = now + TIMEOUT_CHECK;
        let firsts = self.engine.reassembly_timeouts();
        if firsts.is_empty() {
            return;
        }
        let mut out = self.egress();
        for first in &firsts {
            out.reassembly_timed_out(first);
        }
    }

    /// Sends what the send queues hold and counts the outcome: call it before the thread blocks,
    /// so a queued frame never waits for the next one.
    fn flush(&mut self) {
        for queue in self.tx.values_mut() {
            queue.flush();
            let report = queue.take_report();
            if report.sent > 0 {
                bump(&self.counters.sent, report.sent);
            }
            if report.failed > 0 {
                bump(&self.counters.send_errors, report.failed);
                if let Some(e) = report.last_error {
                    tracing::debug!(failed = report.failed, "send failed: {e}");
                }
            }
        }
    }

    /// Sends the held frames whose neighbour has been resolved; drops the ones that waited too long.
    fn retry_held(&mut self) {
        let mut waiting = std::mem::take(&mut self.held);
        waiting.retain_mut(|h| {
            let out = Egress {
                net: &self.net,
                tx: &mut self.tx,
                neighbours: &mut self.neighbours,
                counters: &self.counters,
                frag_ident: &mut self.frag_ident,
            };
            // The frame as it came in is gone: too long now, it is dropped without an error.
            let sent = out.forward(
                &mut self.tunnel,
                &h.route,
                None,
                None,
                &h.vnet,
                &mut h.frame,
            );
            match sent {
                Sent::Done => false,
                Sent::Held if h.since.elapsed() < PENDING_TTL => true,
                Sent::Held => {
                    bump(&self.counters.neighbour_failed, 1);
                    false
                }
            }
        });
        self.held = waiting;
    }
}

/// A cached next-hop resolution, with the tunnel source address toward the destination once a
/// tunnelled packet asked for it.
#[derive(Clone, Copy)]
struct CachedHop {
    resolution: Resolution,
    /// `NetState::source_for` of the destination, filled on first use.
    source: Option<Option<IpAddr>>,
}

/// Per-worker cache of next-hop resolutions (ready or unreachable; pending ones are asked again
/// every time), dropped whenever the kernel's tables change.
#[derive(Default)]
struct NeighbourCache {
    generation: u64,
    entries: HashMap<IpAddr, CachedHop>,
}

impl NeighbourCache {
    fn resolve(&mut self, net: &NetState, dst: IpAddr) -> Resolution {
        let generation = net.generation();
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
        }
        if let Some(hit) = self.entries.get(&dst) {
            return hit.resolution;
        }
        let fresh = net.resolve(dst);
        // Ready and unreachable only change with the tables (which bump the generation); a
        // pending neighbour is asked again so the kernel's answer is seen.
        if !matches!(fresh, Resolution::Pending) {
            if self.entries.len() >= NEIGHBOUR_CACHE_MAX {
                self.entries.clear();
            }
            self.entries.insert(
                dst,
                CachedHop {
                    resolution: fresh,
                    source: None,
                },
            );
        }
        fresh
    }

    /// The address this host sends from toward `dst` (the outer source of a tunnel), cached with
    /// `dst`'s resolution, which [`NeighbourCache::resolve`] looked up just before.
    fn source_for(&mut self, net: &NetState, dst: IpAddr) -> Option<IpAddr> {
        match self.entries.get_mut(&dst) {
            Some(hop) => *hop.source.get_or_insert_with(|| net.source_for(dst)),
            None => net.source_for(dst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 SCTP packet (one DATA chunk) behind an Ethernet header, its CRC32c left empty.
    fn sctp_frame() -> Vec<u8> {
        let mut f = vec![0u8; ETH_HLEN];
        let sctp: Vec<u8> = [
            &[0x13, 0x88, 0x00, 0x50][..],
            &[0, 0, 0, 1],
            &[0, 0, 0, 0],
            &[
                0, 3, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c', b'd',
            ],
        ]
        .concat();
        let total = u16::try_from(20 + sctp.len()).unwrap();
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 132, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&sctp);
        f
    }

    fn partial(csum_offset: u16) -> VnetHdr {
        VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset,
            ..VnetHdr::default()
        }
    }

    #[test]
    fn sctp_partial_checksum_is_completed_and_the_flag_cleared() {
        let mut frame = sctp_frame();
        let out = sctp_crc_complete(&partial(8), &mut frame, ETH_HLEN);
        assert!(!out.needs_csum());
        let p = rvs_wire::sctp::Packet::new_checked(&frame[34..]).unwrap();
        assert!(p.verify_checksum());
        assert_ne!(p.checksum(), 0);
    }

    #[test]
    fn other_frames_keep_their_vnet_header() {
        // Not partial: untouched.
        let mut frame = sctp_frame();
        let none = VnetHdr::default();
        assert_eq!(sctp_crc_complete(&none, &mut frame, ETH_HLEN), none);
        assert_eq!(frame, sctp_frame());
        // Partial UDP: left to the kernel.
        let mut udp = sctp_frame();
        udp[ETH_HLEN + 9] = rvs_wire::ip::UDP;
        let hdr = partial(6);
        assert_eq!(sctp_crc_complete(&hdr, &mut udp, ETH_HLEN), hdr);
    }
}
