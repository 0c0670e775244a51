//! What rvsadm's listings read of the BPF plane: the program's connections for `-Lnc`, and its
//! per-server counts, traffic counters and rates (IPVS's estimator over its counters, with the
//! zero point `-Z` moves) added to the engine's in `-Ln`, `--stats` and `--rate`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A service as the program keys it: virtual address, port, protocol number.
pub type ServiceKey = (std::net::IpAddr, u16, u8);
/// A real server of a service: address, port.
pub type ServerKey = (std::net::IpAddr, u16);

/// The BPF plane's per-service state as [`rvs_bpf::MapsView::services`] reads it.
pub type Held = std::collections::HashMap<
    ServiceKey,
    (
        rvs_bpf::maps::Traffic,
        std::collections::HashMap<ServerKey, rvs_bpf::DestState>,
    ),
>;

/// The program's traffic counters as listings show them: less what `rvsadm -Z` zeroed, with
/// IPVS's rate estimator run over them every 2 seconds (the engine's own counters and rates
/// are added to them, as rates of two parts of the traffic add up).
#[derive(Debug, Default)]
pub struct BpfCounters {
    services: std::sync::Mutex<std::collections::HashMap<ServiceKey, Counted>>,
    dests: std::sync::Mutex<std::collections::HashMap<(ServiceKey, ServerKey), Counted>>,
}

/// One service's or real server's counters: the zero point and the estimator.
#[derive(Debug, Default, Clone, Copy)]
struct Counted {
    base: rvs_engine::Stats,
    estimator: rvs_engine::RateEstimator,
}

fn stats_of(t: &rvs_bpf::maps::Traffic) -> rvs_engine::Stats {
    rvs_engine::Stats {
        conns: t.conns,
        in_pkts: t.in_packets,
        out_pkts: t.out_packets,
        in_bytes: t.in_bytes,
        out_bytes: t.out_bytes,
    }
}

fn since(now: rvs_engine::Stats, base: rvs_engine::Stats) -> rvs_engine::Stats {
    rvs_engine::Stats {
        conns: now.conns.saturating_sub(base.conns),
        in_pkts: now.in_pkts.saturating_sub(base.in_pkts),
        out_pkts: now.out_pkts.saturating_sub(base.out_pkts),
        in_bytes: now.in_bytes.saturating_sub(base.in_bytes),
        out_bytes: now.out_bytes.saturating_sub(base.out_bytes),
    }
}

impl BpfCounters {
    /// One estimator period: folds the counters `held` now into the rates.
    pub fn tick(&self, held: &Held) {
        let (Ok(mut services), Ok(mut dests)) = (self.services.lock(), self.dests.lock()) else {
            return;
        };
        for (key, (traffic, servers)) in held {
            let c = services.entry(*key).or_default();
            let now = since(stats_of(traffic), c.base);
            c.estimator.update(&now);
            for (server, state) in servers {
                let c = dests.entry((*key, *server)).or_default();
                let now = since(stats_of(&state.traffic), c.base);
                c.estimator.update(&now);
            }
        }
    }

    /// `rvsadm -Z [service]`: the counters of `held` start from zero again, rates too.
    pub fn zero(&self, held: &Held, only: Option<ServiceKey>) {
        let (Ok(mut services), Ok(mut dests)) = (self.services.lock(), self.dests.lock()) else {
            return;
        };
        for (key, (traffic, servers)) in held {
            if only.is_some_and(|o| o != *key) {
                continue;
            }
            let base = stats_of(traffic);
            let c = services.entry(*key).or_default();
            c.base = base;
            c.estimator.reset(&rvs_engine::Stats::default());
            for (server, state) in servers {
                let c = dests.entry((*key, *server)).or_default();
                c.base = stats_of(&state.traffic);
                c.estimator.reset(&rvs_engine::Stats::default());
            }
        }
    }

    /// Adds the program's part of a service to its listing: connections per real server
    /// (ActiveConn/InActConn), traffic counters and rates.
    pub fn apply(&self, view: &mut rvs_api::ServiceView, held: &Held) {
        let Some(key) = service_key(&view.config.id) else {
            return;
        };
        let Some((traffic, servers)) = held.get(&key) else {
            return;
        };
        let (Ok(services), Ok(dests)) = (self.services.lock(), self.dests.lock()) else {
            return;
        };
        let c = services.get(&key).copied().unwrap_or_default();
        add_stats(&mut view.stats, &since(stats_of(traffic), c.base));
        add_rates(&mut view.rates, &c.estimator.rates());
        for d in &mut view.dests {
            let server = (d.config.addr, d.config.port);
            if let Some(state) = servers.get(&server) {
                d.active_conns += state.conns.active;
                d.inactive_conns += state.conns.inactive;
                let c = dests.get(&(key, server)).copied().unwrap_or_default();
                add_stats(&mut d.stats, &since(stats_of(&state.traffic), c.base));
                add_rates(&mut d.rates, &c.estimator.rates());
            }
        }
    }
}

/// The program's key of a service (virtual address, port, protocol number), for TCP and UDP
/// services (the ones it serves).
pub fn service_key(id: &rvs_api::ServiceId) -> Option<ServiceKey> {
    match *id {
        rvs_api::ServiceId::Tcp { addr, port } => Some((addr, port, 6)),
        rvs_api::ServiceId::Udp { addr, port } => Some((addr, port, 17)),
        _ => None,
    }
}

fn add_stats(stats: &mut rvs_api::StatsView, t: &rvs_engine::Stats) {
    stats.conns += t.conns;
    stats.in_pkts += t.in_pkts;
    stats.out_pkts += t.out_pkts;
    stats.in_bytes += t.in_bytes;
    stats.out_bytes += t.out_bytes;
}

fn add_rates(rates: &mut rvs_api::RatesView, r: &rvs_engine::Rates) {
    rates.cps += r.cps;
    rates.in_pps += r.in_pps;
    rates.out_pps += r.out_pps;
    rates.in_bps += r.in_bps;
    rates.out_bps += r.out_bps;
}

/// What the control server reads of the BPF plane.
#[derive(Debug)]
pub struct BpfHandles {
    /// The pinned maps.
    pub view: Arc<rvs_bpf::MapsView>,
    /// Counters as listings show them.
    pub counters: Arc<BpfCounters>,
    /// The connection table's count and room, measured each second by the plane.
    pub room: Arc<crate::dataplane::defense::TableRoom>,
}

impl BpfHandles {
    /// The program's per-service state now, or `None` (logged) when the maps cannot be read.
    pub fn held(&self) -> Option<Held> {
        match self.view.services() {
            Ok(held) => Some(held),
            Err(e) => {
                tracing::warn!("reading the BPF maps: {e}");
                None
            }
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds, the clock the program stamps expiry times with.
pub(super) fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// The program's connections as `-Lnc` lines, then its persistence templates.
pub fn connection_views(view: &rvs_bpf::MapsView) -> Vec<rvs_api::ConnView> {
    let (conns, templates) = match (view.connections(), view.templates()) {
        (Ok(c), Ok(t)) => (c, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("reading the BPF connection table: {e}");
            return Vec::new();
        }
    };
    let now = monotonic_ns();
    let proto_name = |p: u8| if p == 17 { "UDP" } else { "TCP" }.to_owned();
    let template_views = templates.into_iter().map(|t| rvs_api::ConnView {
        proto: proto_name(t.proto),
        client: std::net::SocketAddr::new(t.client, 0),
        virtual_addr: std::net::SocketAddr::new(t.vaddr, t.vport),
        dest: std::net::SocketAddr::new(t.daddr, t.dport),
        state: rvs_engine::ConnState::None.name().to_owned(),
        expires_ms: t.expires_ns.saturating_sub(now) / 1_000_000,
        pe: None,
    });
    conns
        .into_iter()
        .map(|(key, conn)| rvs_api::ConnView {
            proto: proto_name(key.proto),
            client: std::net::SocketAddr::new(key.src.ip(), u16::from_be(key.sport_be)),
            virtual_addr: std::net::SocketAddr::new(key.dst.ip(), u16::from_be(key.dport_be)),
            dest: std::net::SocketAddr::new(conn.daddr.ip(), u16::from_be(conn.dport_be)),
            state: rvs_engine::ConnState::from_u8(conn.state).name().to_owned(),
            expires_ms: conn.expires_ns.saturating_sub(now) / 1_000_000,
            pe: None,
        })
        .chain(template_views)
        .collect()
}

/// IPVS's estimator period.
const ESTIMATE_EVERY: Duration = Duration::from_secs(2);

/// The rate estimator's thread: every 2 seconds, the program's counters into the rates.
pub(super) fn estimate(handles: &BpfHandles, halt: &AtomicBool) {
    let mut next = Instant::now() + ESTIMATE_EVERY;
    while !halt.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() < next {
            continue;
        }
        next += ESTIMATE_EVERY;
        if let Some(held) = handles.held() {
            handles.counters.tick(&held);
        }
    }
}
