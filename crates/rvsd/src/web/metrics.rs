//! `/metrics`: what rvsd knows, in the Prometheus text format, under the names existing
//! dashboards query:
//! - node_exporter's IPVS collector (`node_ipvs_*`), with its labels and label values as it
//!   reads them from /proc/net/ip_vs (a firewall-mark service: `proto="FWM"`, an empty
//!   `local_address`, port 0 and the mark in 8 upper-case hex digits as `local_mark`);
//! - the keepalived exporters' VRRP metrics (`keepalived_*`), for the instances rvsd runs;
//! - rvs's own (`rvs_*`): per-service and per-server traffic, drops by reason, egress outcomes,
//!   reassembly, SYN proxy and defence counters, health checks, sync daemons, the data plane.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use rvs_api::{
    CounterView, DaemonConfig, DaemonRole, HealthView, ServiceConfig, ServiceId, ServiceView,
    VrrpView,
};

/// Everything one scrape shows, as the control socket answered it.
#[derive(Debug, Default)]
pub struct Scrape {
    /// `rvsadm -L` with counters.
    pub services: Vec<ServiceView>,
    /// `rvsadm --counters`.
    pub counters: Vec<CounterView>,
    /// `rvsadm --vrrp` (empty without VRRP instances).
    pub vrrp: Vec<VrrpView>,
    /// `rvsadm --health` (empty without checkers).
    pub health: Vec<HealthView>,
    /// `rvsadm --list-daemon`.
    pub daemons: Vec<DaemonConfig>,
    /// `rvsadm --bfd` (empty without `bfd_instance`s).
    pub bfd: Vec<rvs_api::BfdView>,
    /// `packet`, `tc` or `xdp`.
    pub dataplane: &'static str,
    /// Whether rvsd runs a keepalived.conf (`keepalived_up` is shown then).
    pub keepalived: bool,
}

/// The Prometheus text format (0.0.4) of `scrape`.
pub fn render(scrape: Scrape) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// Labels of one series.
type Labels = Vec<(&'static str, String)>;

/// One metric family being written: its series, then the descriptor and all of them at once.
struct Family {
    name: &'static str,
    help: &'static str,
    counter: bool,
    series: Vec<(Labels, u64)>,
}

impl Family {
    fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            counter: true,
            series: Vec::new(),
        }
    }

    fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            counter: false,
            ..Family::counter(name, help)
        }
    }

    fn add(&mut self, labels: Labels, value: u64) {
        self.series.push((labels, value));
    }

    fn write(self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.series.is_empty() {
            return Ok(());
        }
        let kind = if self.counter {
            ConstCounter::new(0u64).metric_type()
        } else {
            ConstGauge::new(0i64).metric_type()
        };
        let mut family = encoder.encode_descriptor(self.name, self.help, None, kind)?;
        for (labels, value) in &self.series {
            let series = family.encode_family(labels)?;
            if self.counter {
                ConstCounter::new(*value).encode(series)?;
            } else {
                ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(series)?;
            }
        }
        Ok(())
    }
}

/// node_exporter's labels of a real server of `svc` at `addr:port`.
fn backend_labels(svc: &ServiceConfig, addr: std::net::IpAddr, port: u16) -> Labels {
    let (local_address, local_port, proto, mark) = match svc.id {
        ServiceId::Tcp { addr, port } => (addr.to_string(), port, "TCP", String::new()),
        ServiceId::Udp { addr, port } => (addr.to_string(), port, "UDP", String::new()),
        ServiceId::Sctp { addr, port } => (addr.to_string(), port, "SCTP", String::new()),
        ServiceId::Fwmark { mark, .. } => (String::new(), 0, "FWM", format!("{mark:08X}")),
    };
    vec![
        ("local_address", local_address),
        ("local_port", local_port.to_string()),
        ("remote_address", addr.to_string()),
        ("remote_port", port.to_string()),
        ("proto", proto.to_string()),
        ("local_mark", mark),
    ]
}

/// rvs's labels of a service: protocol, address and port, or the mark.
fn service_labels(svc: &ServiceConfig) -> Labels {
    let (proto, addr, port) = match svc.id {
        ServiceId::Tcp { addr, port } => ("TCP", addr.to_string(), port.to_string()),
        ServiceId::Udp { addr, port } => ("UDP", addr.to_string(), port.to_string()),
        ServiceId::Sctp { addr, port } => ("SCTP", addr.to_string(), port.to_string()),
        ServiceId::Fwmark { mark, .. } => ("FWM", mark.to_string(), String::new()),
    };
    vec![("proto", proto.into()), ("vip", addr), ("port", port)]
}

/// keepalived's number of a VRRP state (its `VRRP_STATE_*`, which the exporters show).
fn vrrp_state_number(state: &str) -> u64 {
    match state {
        "BACKUP" => 1,
        "MASTER" => 2,
        "FAULT" => 3,
        "STOP" => 98,
        _ => 0,
    }
}

/// The counter families of `rvsadm --counters`, by name prefix: (prefix, metric, help, label).
const COUNTER_GROUPS: [(&str, &str, &str, &str); 6] = [
    (
        "drop_",
        "rvs_dropped_packets",
        "Packets the engine dropped, by reason.",
        "reason",
    ),
    (
        "tx_",
        "rvs_egress_packets",
        "What became of the packets the engine forwarded, by outcome.",
        "outcome",
    ),
    (
        "rx_",
        "rvs_receive_socket_events",
        "Receive socket faults and re-opens.",
        "event",
    ),
    (
        "reasm_",
        "rvs_reassembly",
        "IP reassembly: fragments and datagrams, by what happened.",
        "event",
    ),
    (
        "synproxy_",
        "rvs_synproxy",
        "The SYN proxy: SYNs answered, connections opened, bad cookies, connections handed over to the BPF program.",
        "event",
    ),
    (
        "sync_",
        "rvs_sync_records",
        "Connection sync: records exported, imported, and refused by reason.",
        "event",
    ),
];

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_ipvs(&mut encoder)?;
        self.encode_rvs_traffic(&mut encoder)?;
        self.encode_counters(&mut encoder)?;
        self.encode_health(&mut encoder)?;
        self.encode_vrrp(&mut encoder)?;
        let mut daemons = Family::gauge(
            "rvs_sync_daemon",
            "Connection-sync daemons running (1), by role and sync id.",
        );
        for d in &self.daemons {
            let role = match d.role {
                DaemonRole::Master => "master",
                DaemonRole::Backup => "backup",
            };
            daemons.add(
                vec![
                    ("role", role.into()),
                    ("interface", d.mcast_interface.clone()),
                    ("syncid", d.syncid.to_string()),
                ],
                1,
            );
        }
        daemons.write(&mut encoder)?;
        let mut bfd = Family::gauge(
            "rvs_bfd_session_up",
            "BFD sessions (bfd_instance): 1 while Up, 0 otherwise.",
        );
        for b in &self.bfd {
            bfd.add(
                vec![
                    ("instance", b.name.clone()),
                    ("neighbor", b.neighbor.to_string()),
                ],
                u64::from(b.state == "Up"),
            );
        }
        bfd.write(&mut encoder)?;
        let mut plane = Family::gauge(
            "rvs_dataplane",
            "The data plane forwarding: packet (AF_PACKET), tc or xdp (BPF).",
        );
        plane.add(vec![("mode", self.dataplane.into())], 1);
        plane.write(&mut encoder)
    }
}

impl Scrape {
    /// node_exporter's IPVS metrics.
    fn encode_ipvs(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = |f: fn(&rvs_api::StatsView) -> u64| {
            self.services.iter().map(|s| f(&s.stats)).sum::<u64>()
        };
        for (name, help, value) in [
            (
                "node_ipvs_connections",
                "The total number of connections made.",
                totals(|s| s.conns),
            ),
            (
                "node_ipvs_incoming_packets",
                "The total number of incoming packets.",
                totals(|s| s.in_pkts),
            ),
            (
                "node_ipvs_outgoing_packets",
                "The total number of outgoing packets.",
                totals(|s| s.out_pkts),
            ),
            (
                "node_ipvs_incoming_bytes",
                "The total amount of incoming data.",
                totals(|s| s.in_bytes),
            ),
            (
                "node_ipvs_outgoing_bytes",
                "The total amount of outgoing data.",
                totals(|s| s.out_bytes),
            ),
        ] {
            let mut f = Family::counter(name, help);
            f.add(Vec::new(), value);
            f.write(encoder)?;
        }
        let mut active = Family::gauge(
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
        );
        let mut inactive = Family::gauge(
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
        );
        let mut weight = Family::gauge(
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
        );
        for s in &self.services {
            for d in &s.dests {
                let labels = backend_labels(&s.config, d.config.addr, d.config.port);
                active.add(labels.clone(), u64::from(d.active_conns));
                inactive.add(labels.clone(), u64::from(d.inactive_conns));
                weight.add(labels, u64::from(d.config.weight));
            }
        }
        active.write(encoder)?;
        inactive.write(encoder)?;
        weight.write(encoder)
    }

    /// Per-service and per-server traffic (what `rvsadm -L --stats` shows).
    fn encode_rvs_traffic(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        type Field = fn(&rvs_api::StatsView) -> u64;
        let fields: [(&'static str, &'static str, Field); 5] = [
            ("connections", "Connections scheduled.", |s| s.conns),
            ("incoming_packets", "Packets from clients.", |s| s.in_pkts),
            ("outgoing_packets", "Packets to clients.", |s| s.out_pkts),
            ("incoming_bytes", "Bytes from clients.", |s| s.in_bytes),
            ("outgoing_bytes", "Bytes to clients.", |s| s.out_bytes),
        ];
        for (field, help, get) in fields {
            let mut svc = Family::counter(service_name(field), help);
            let mut dest = Family::counter(server_name(field), help);
            for s in &self.services {
                svc.add(service_labels(&s.config), get(&s.stats));
                for d in &s.dests {
                    let mut labels = service_labels(&s.config);
                    labels.push(("real_server", d.config.addr.to_string()));
                    labels.push(("real_port", d.config.port.to_string()));
                    dest.add(labels, get(&d.stats));
                }
            }
            svc.write(encoder)?;
            dest.write(encoder)?;
        }
        Ok(())
    }

    /// `rvsadm --counters`, grouped into families by prefix; the rest one gauge each.
    fn encode_counters(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut groups: Vec<Family> = COUNTER_GROUPS
            .iter()
            .map(|(_, name, help, _)| Family::counter(name, help))
            .collect();
        let mut other = Family::gauge(
            "rvs_counter",
            "Other figures of rvsadm --counters (connections in the table, defence state, ...).",
        );
        for c in &self.counters {
            let group = COUNTER_GROUPS
                .iter()
                .position(|(prefix, ..)| c.name.starts_with(prefix));
            match group {
                Some(i) => {
                    let (prefix, _, _, label) = COUNTER_GROUPS[i];
                    let key = c.name[prefix.len()..].to_string();
                    groups[i].add(vec![(label, key)], c.value);
                }
                None => other.add(vec![("name", c.name.clone())], c.value),
            }
        }
        for g in groups {
            g.write(encoder)?;
        }
        other.write(encoder)
    }

    /// Health checks: each real server's state and each checker's last result.
    fn encode_health(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut alive = Family::gauge(
            "rvs_real_server_alive",
            "Whether the health checks hold the real server up (1) or down (0).",
        );
        let mut up = Family::gauge(
            "rvs_healthcheck_up",
            "Whether the checker's last verdict was up (1) or down (0).",
        );
        let mut runs = Family::counter("rvs_healthcheck_runs", "Checks the checker ran.");
        let mut failures = Family::gauge(
            "rvs_healthcheck_consecutive_failures",
            "Failed checks in a row.",
        );
        let mut latency = Family::gauge(
            "rvs_healthcheck_latency_microseconds",
            "How long the checker's last check took.",
        );
        for h in &self.health {
            let base = vec![
                ("service", service_id_text(&h.service)),
                ("real_server", h.dest.to_string()),
            ];
            alive.add(base.clone(), u64::from(h.alive));
            for c in &h.checkers {
                let mut labels = base.clone();
                labels.push(("checker", c.kind.clone()));
                labels.push(("target", c.target.clone()));
                up.add(labels.clone(), u64::from(c.up));
                runs.add(labels.clone(), c.runs);
                if let Some(us) = c.latency_us {
                    latency.add(labels.clone(), us);
                }
                failures.add(labels, u64::from(c.consecutive_failures));
            }
        }
        alive.write(encoder)?;
        up.write(encoder)?;
        runs.write(encoder)?;
        latency.write(encoder)?;
        failures.write(encoder)
    }

    /// The keepalived exporters' VRRP metrics.
    fn encode_vrrp(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.keepalived {
            let mut up = Family::gauge("keepalived_up", "Status");
            up.add(Vec::new(), 1);
            up.write(encoder)?;
        }
        let mut state = Family::gauge("keepalived_vrrp_state", "State of vrrp");
        type Stat = fn(&rvs_api::VrrpStatsView) -> u64;
        let stats: [(&'static str, &'static str, Stat); 6] = [
            (
                "keepalived_advertisements_received",
                "Advertisements received",
                |s| s.advert_rcvd,
            ),
            (
                "keepalived_advertisements_sent",
                "Advertisements sent",
                |s| s.advert_sent,
            ),
            ("keepalived_become_master", "Became master", |s| {
                s.become_master
            }),
            ("keepalived_release_master", "Released master", |s| {
                s.release_master
            }),
            (
                "keepalived_priority_zero_received",
                "Priority zero received",
                |s| s.pri_zero_rcvd,
            ),
            ("keepalived_priority_zero_sent", "Priority zero sent", |s| {
                s.pri_zero_sent
            }),
        ];
        let mut families: Vec<Family> = stats
            .iter()
            .map(|(name, help, _)| Family::counter(name, help))
            .collect();
        for v in &self.vrrp {
            // As the exporters read keepalived's VIP lines (`ADDR/PREFIX dev IF ...`): the
            // address with its prefix, and the VIP's own interface.
            for line in &v.vip_lines {
                let words: Vec<&str> = line.split(' ').collect();
                let (Some(addr), Some(dev)) = (words.first(), words.get(2)) else {
                    continue;
                };
                state.add(
                    vec![
                        ("iname", v.name.clone()),
                        ("intf", (*dev).to_string()),
                        ("vrid", v.vrid.to_string()),
                        ("ip_address", (*addr).to_string()),
                    ],
                    vrrp_state_number(&v.state),
                );
            }
            let labels: Labels = vec![
                ("iname", v.name.clone()),
                ("intf", v.interface.clone()),
                ("vrid", v.vrid.to_string()),
                ("state", v.state.clone()),
            ];
            for (f, (_, _, get)) in families.iter_mut().zip(&stats) {
                f.add(labels.clone(), get(&v.stats));
            }
        }
        state.write(encoder)?;
        for f in families {
            f.write(encoder)?;
        }
        // Tracked scripts, once each (keepalived's status: 0 BAD, 1 GOOD; state: 0 idle,
        // 1 running).
        let mut status = Family::gauge("keepalived_script_status", "Tracker Script Status");
        let mut running = Family::gauge("keepalived_script_state", "Tracker Script State");
        let mut seen = std::collections::BTreeSet::new();
        for s in self.vrrp.iter().flat_map(|v| &v.scripts) {
            if seen.insert(s.name.clone()) {
                status.add(
                    vec![("name", s.name.clone())],
                    u64::from(s.status == "GOOD"),
                );
                running.add(
                    vec![("name", s.name.clone())],
                    u64::from(s.state == "running"),
                );
            }
        }
        status.write(encoder)?;
        running.write(encoder)
    }
}

/// `rvs_service_<field>` (a fixed set of names).
fn service_name(field: &str) -> &'static str {
    match field {
        "connections" => "rvs_service_connections",
        "incoming_packets" => "rvs_service_incoming_packets",
        "outgoing_packets" => "rvs_service_outgoing_packets",
        "incoming_bytes" => "rvs_service_incoming_bytes",
        _ => "rvs_service_outgoing_bytes",
    }
}

/// `rvs_real_server_<field>` (a fixed set of names).
fn server_name(field: &str) -> &'static str {
    match field {
        "connections" => "rvs_real_server_connections",
        "incoming_packets" => "rvs_real_server_incoming_packets",
        "outgoing_packets" => "rvs_real_server_outgoing_packets",
        "incoming_bytes" => "rvs_real_server_incoming_bytes",
        _ => "rvs_real_server_outgoing_bytes",
    }
}

/// A service as ipvsadm writes it: `TCP 10.0.0.1:80`, `FWM 7`.
fn service_id_text(id: &ServiceId) -> String {
    match id {
        ServiceId::Tcp { addr, port } => format!("TCP {}", std::net::SocketAddr::new(*addr, *port)),
        ServiceId::Udp { addr, port } => format!("UDP {}", std::net::SocketAddr::new(*addr, *port)),
        ServiceId::Sctp { addr, port } => {
            format!("SCTP {}", std::net::SocketAddr::new(*addr, *port))
        }
        ServiceId::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_api::{DestConfig, DestView, ForwardMethod, StatsView};

    fn service(id: ServiceId, dests: &[(&str, u16, u32, u32, u32)]) -> ServiceView {
        ServiceView {
            config: ServiceConfig {
                id,
                scheduler: "wlc".into(),
                persistence: None,
                netmask: None,
                one_packet: false,
                sched_flags: Vec::new(),
                pe: None,
                local_addrs: Vec::new(),
                proxy_protocol: None,
            },
            stats: StatsView {
                conns: 7,
                in_pkts: 70,
                out_pkts: 60,
                in_bytes: 7000,
                out_bytes: 6000,
            },
            rates: Default::default(),
            dests: dests
                .iter()
                .map(|&(addr, port, weight, active, inactive)| DestView {
                    config: DestConfig::new(
                        addr.parse().expect("addr"),
                        port,
                        weight,
                        ForwardMethod::Masq,
                    ),
                    active_conns: active,
                    inactive_conns: inactive,
                    persist_conns: 0,
                    stats: StatsView::default(),
                    rates: Default::default(),
                })
                .collect(),
        }
    }

    /// node_exporter's labels as it reads /proc/net/ip_vs: a firewall-mark service has proto
    /// FWM, no local address, port 0 and its mark in 8 upper-case hex digits.
    #[test]
    fn ipvs_series_carry_node_exporters_labels() {
        let scrape = Scrape {
            services: vec![
                service(
                    ServiceId::Tcp {
                        addr: "10.0.0.1".parse().expect("vip"),
                        port: 80,
                    },
                    &[("10.1.0.2", 8080, 3, 5, 9)],
                ),
                service(
                    ServiceId::Fwmark {
                        mark: 10,
                        ipv6: false,
                    },
                    &[("10.1.0.3", 0, 1, 0, 2)],
                ),
            ],
            dataplane: "tc",
            bfd: vec![rvs_api::BfdView {
                name: "UPSTREAM".into(),
                neighbor: "10.0.0.254".parse().expect("addr"),
                source: None,
                state: "Up".into(),
                remote_state: "Up".into(),
                diag: "No Diagnostic".into(),
                local_discriminator: 1,
                remote_discriminator: 2,
                tx_interval_us: 50_000,
                detect_time_us: 250_000,
            }],
            ..Scrape::default()
        };
        let text = render(scrape);
        for line in [
            "# TYPE node_ipvs_connections_total counter",
            "node_ipvs_connections_total 14",
            "node_ipvs_incoming_bytes_total 14000",
            "node_ipvs_backend_connections_active{local_address=\"10.0.0.1\",local_port=\"80\",\
             remote_address=\"10.1.0.2\",remote_port=\"8080\",proto=\"TCP\",local_mark=\"\"} 5",
            "node_ipvs_backend_connections_inactive{local_address=\"\",local_port=\"0\",\
             remote_address=\"10.1.0.3\",remote_port=\"0\",proto=\"FWM\",local_mark=\"0000000A\"} 2",
            "node_ipvs_backend_weight{local_address=\"10.0.0.1\",local_port=\"80\",\
             remote_address=\"10.1.0.2\",remote_port=\"8080\",proto=\"TCP\",local_mark=\"\"} 3",
            "rvs_service_connections_total{proto=\"FWM\",vip=\"10\",port=\"\"} 7",
            "rvs_dataplane{mode=\"tc\"} 1",
            "rvs_bfd_session_up{instance=\"UPSTREAM\",neighbor=\"10.0.0.254\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // No VRRP, no keepalived.conf: no keepalived series.
        assert!(!text.contains("keepalived_"), "{text}");
    }
}
