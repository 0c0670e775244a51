//! The data plane: worker threads that read frames from the packet sockets, run them through the
//! engine, write the next hop's Ethernet header and send them out.
//!
//! Every worker opens one receive socket per interface; the sockets of one interface form a
//! PACKET_FANOUT group so the kernel spreads that interface's frames over the workers. The engine
//! is shared, so a connection's packets may arrive on any worker.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use rvs_engine::{Engine, PacketMeta, Verdict};
use rvs_io::{NetState, PacketSocket, Resolution, VnetHdr};

use crate::clock::Clock;

/// Frames handled per socket per wake-up.
const BATCH: usize = 64;
/// How long a worker sleeps in poll before checking the stop flag.
const POLL_MS: u16 = 100;
/// Length of the Ethernet header the data plane writes in front of a forwarded packet.
const ETH_HLEN: usize = 14;

/// Counters of what happened after the engine's verdict (the engine counts its own drops).
#[derive(Debug, Default)]
pub struct EgressCounters {
    /// Frames sent.
    pub sent: AtomicU64,
    /// Forwarded frames dropped because the next hop's MAC was still being resolved.
    pub neighbour_pending: AtomicU64,
    /// Forwarded frames dropped because no route led to the next hop.
    pub unreachable: AtomicU64,
    /// Forwarded frames whose route leaves through an interface rvsd does not run on.
    pub unmanaged_egress: AtomicU64,
    /// Frames the kernel refused to send.
    pub send_errors: AtomicU64,
}

/// The running workers.
pub struct DataPlane {
    workers: Vec<JoinHandle<()>>,
    /// Shared egress counters of all workers.
    #[allow(dead_code)]
    pub counters: Arc<EgressCounters>,
}

impl DataPlane {
    /// Opens every worker's sockets (so a bad interface fails here, synchronously) and starts them.
    pub fn start(
        engine: Arc<Engine>,
        net: Arc<NetState>,
        clock: Clock,
        interfaces: &[String],
        workers: usize,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<DataPlane> {
        let counters = Arc::new(EgressCounters::default());
        let mut handles = Vec::with_capacity(workers);
        for id in 0..workers {
            let mut rx = Vec::new();
            let mut tx = HashMap::new();
            for name in interfaces {
                let group = fanout_group(name);
                let sock = PacketSocket::open(name, group)
                    .with_context(|| format!("opening a packet socket on {name}"))?;
                let out = PacketSocket::open_tx(name)
                    .with_context(|| format!("opening a send socket on {name}"))?;
                tx.insert(out.ifindex(), out);
                rx.push(sock);
            }
            let worker = Worker {
                engine: engine.clone(),
                net: net.clone(),
                clock,
                rx,
                tx,
                neighbours: NeighbourCache::default(),
                counters: counters.clone(),
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

/// The fanout group id for an interface: the same for every worker of this process, different
/// between interfaces and (very likely) between rvsd processes sharing a namespace.
fn fanout_group(ifname: &str) -> u16 {
    let mut hash: u32 = std::process::id().wrapping_mul(0x9e37_79b1);
    for b in ifname.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (hash ^ (hash >> 16)) as u16
}

struct Worker {
    engine: Arc<Engine>,
    net: Arc<NetState>,
    clock: Clock,
    rx: Vec<PacketSocket>,
    tx: HashMap<u32, PacketSocket>,
    neighbours: NeighbourCache,
    counters: Arc<EgressCounters>,
}

impl Worker {
    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let ready = match self.wait() {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::error!("worker poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(u64::from(POLL_MS)));
                    continue;
                }
            };
            for index in ready {
                self.drain(index);
            }
        }
    }

    /// Blocks until at least one receive socket has frames (or the poll interval passes) and
    /// returns the indexes of the ready sockets.
    fn wait(&self) -> nix::Result<Vec<usize>> {
        let mut fds: Vec<PollFd<'_>> = self
            .rx
            .iter()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        nix::poll::poll(&mut fds, PollTimeout::from(POLL_MS))?;
        Ok(fds
            .iter()
            .enumerate()
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(i, _)| i)
            .collect())
    }

    fn drain(&mut self, index: usize) {
        let now = self.clock.now();
        let Worker {
            engine,
            net,
            rx,
            tx,
            neighbours,
            counters,
            ..
        } = self;
        let Some(sock) = rx.get_mut(index) else {
            return;
        };
        let result = sock.recv_batch(Duration::ZERO, BATCH, |vnet, frame| {
            let mut meta = PacketMeta {
                csum_partial: vnet.needs_csum(),
            };
            if let Verdict::Forward {
                next_hop_ip,
                l3_offset,
            } = engine.handle(now, &mut meta, frame)
            {
                transmit(
                    net,
                    tx,
                    neighbours,
                    counters,
                    next_hop_ip,
                    l3_offset,
                    vnet,
                    frame,
                );
            }
        });
        if let Err(e) = result {
            tracing::warn!("receive failed: {e}");
        }
    }
}

/// Writes the next hop's Ethernet header in front of the rewritten L3 packet and sends it on the
/// egress interface's socket.
#[allow(clippy::too_many_arguments)]
fn transmit(
    net: &NetState,
    tx: &HashMap<u32, PacketSocket>,
    neighbours: &mut NeighbourCache,
    counters: &EgressCounters,
    next_hop_ip: IpAddr,
    l3_offset: usize,
    vnet: &mut VnetHdr,
    frame: &mut [u8],
) {
    let (ifindex, src_mac, dst_mac) = match neighbours.resolve(net, next_hop_ip) {
        Resolution::Ready {
            ifindex,
            src_mac,
            dst_mac,
            ..
        } => (ifindex, src_mac, dst_mac),
        Resolution::Pending => {
            counters.neighbour_pending.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Resolution::Unreachable => {
            counters.unreachable.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let Some(sock) = tx.get(&ifindex) else {
        counters.unmanaged_egress.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let Some(start) = l3_offset.checked_sub(ETH_HLEN) else {
        return;
    };
    let Some(header) = frame.get_mut(start..l3_offset) else {
        return;
    };
    let ethertype: u16 = if next_hop_ip.is_ipv4() {
        0x0800
    } else {
        0x86dd
    };
    header[0..6].copy_from_slice(&dst_mac);
    header[6..12].copy_from_slice(&src_mac);
    header[12..14].copy_from_slice(&ethertype.to_be_bytes());
    if start > 0 {
        // A VLAN tag was dropped: the offsets in the virtio-net header are from the frame start.
        let shift = u16::try_from(start).unwrap_or(u16::MAX);
        vnet.csum_start = vnet.csum_start.saturating_sub(shift);
        vnet.hdr_len = vnet.hdr_len.saturating_sub(shift);
    }
    match sock.send(vnet, &frame[start..]) {
        Ok(()) => {
            counters.sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            counters.send_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("send failed: {e}");
        }
    }
}

/// Per-worker cache of next-hop resolutions, dropped whenever the kernel's tables change.
#[derive(Default)]
struct NeighbourCache {
    generation: u64,
    entries: HashMap<IpAddr, Resolution>,
}

impl NeighbourCache {
    fn resolve(&mut self, net: &NetState, dst: IpAddr) -> Resolution {
        let generation = net.generation();
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
        }
        if let Some(hit) = self.entries.get(&dst) {
            return hit.clone();
        }
        let fresh = net.resolve(dst);
        if matches!(fresh, Resolution::Ready { .. }) {
            self.entries.insert(dst, fresh.clone());
        }
        fresh
    }
}
