//! `rvsadm --doctor`: the classic LVS misconfigurations (the seeds' troubleshooting sections),
//! recognised in what rvsd counts. Each check reads the services' per-real-server counters and
//! the data plane's counters, as `rvsadm -L --stats` and `--counters` show them:
//!
//! - `nat-no-replies`: a NAT real server got connections and packets but rvsd saw no reply,
//!   ever or while the doctor watched (2 s): its default route does not lead back through the
//!   director;
//! - `dr-replies-via-director`: packets from a direct-routing or tunnel service's VIP and port
//!   reach the director (a real server's replies leave from the VIP straight to the client):
//!   a real server's gateway is the director (the packet path counts them; so does the BPF
//!   program, which leaves them to the kernel, and rvsd adds its counts to the engine's);
//! - `dr-arp`: (probe) a host other than the director answers ARP for a DR service's VIP:
//!   a real server without `arp_ignore=1`/`arp_announce=2` steals the VIP's traffic;
//! - `dr-vip-not-on-lo`: (probe) a DR real server does not answer an ICMP echo to the VIP sent
//!   to its MAC address, as DR delivers packets: it lacks the VIP on `lo`;
//! - `tunnel-mtu`: tunnelled packets were refused for the path MTU toward the real servers;
//! - `unreachable`: forwarded packets found no route or no neighbour.

use rvs_api::{CounterView, FindingView, ForwardMethod, ServiceId, ServiceView};

/// Connections a NAT real server must have had before no reply counts as a problem (a new
/// server's first SYN may still be on its way).
const MIN_CONNECTIONS: u64 = 3;

fn service_text(id: &ServiceId) -> String {
    match id {
        ServiceId::Tcp { addr, port } => format!("TCP {}", std::net::SocketAddr::new(*addr, *port)),
        ServiceId::Udp { addr, port } => format!("UDP {}", std::net::SocketAddr::new(*addr, *port)),
        ServiceId::Sctp { addr, port } => {
            format!("SCTP {}", std::net::SocketAddr::new(*addr, *port))
        }
        ServiceId::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

/// Whether the API's service id names the engine's service key.
fn service_matches(id: &ServiceId, key: &rvs_engine::ServiceKey) -> bool {
    match *id {
        ServiceId::Fwmark { mark, .. } => key.fwmark == mark,
        ServiceId::Tcp { addr, port }
        | ServiceId::Udp { addr, port }
        | ServiceId::Sctp { addr, port } => {
            key.fwmark == 0
                && key.addr == addr
                && key.port == port
                && id.proto_name() == key.proto.name()
        }
    }
}

fn counter(counters: &[CounterView], name: &str) -> u64 {
    counters
        .iter()
        .find(|c| c.name == name)
        .map_or(0, |c| c.value)
}

/// What the doctor looks at.
#[derive(Debug, Default)]
pub struct Evidence<'a> {
    /// The services with their counters now.
    pub services: &'a [ServiceView],
    /// The same a moment earlier, if the doctor watched for a while.
    pub earlier: Option<&'a [ServiceView]>,
    /// `rvsadm --counters`.
    pub counters: &'a [CounterView],
    /// Packets seen from each service's own address and port ([`rvs_engine::Engine::stray_replies`]).
    pub stray: &'a [(rvs_engine::ServiceKey, u64)],
    /// NAT real servers scheduled connections from themselves
    /// ([`rvs_engine::Engine::self_scheduled`]).
    pub self_scheduled: &'a [(rvs_engine::ServiceKey, std::net::IpAddr, u16, u64)],
}

/// A real server's counters before `now`, in `earlier`.
fn earlier_stats<'a>(
    earlier: Option<&'a [ServiceView]>,
    svc: &ServiceId,
    d: &rvs_api::DestView,
) -> Option<&'a rvs_api::StatsView> {
    earlier?
        .iter()
        .find(|s| s.config.id == *svc)?
        .dests
        .iter()
        .find(|e| e.config.addr == d.config.addr && e.config.port == d.config.port)
        .map(|e| &e.stats)
}

/// Every problem the evidence shows.
pub fn diagnose(e: &Evidence<'_>) -> Vec<FindingView> {
    let mut out = Vec::new();
    for s in e.services {
        let svc = service_text(&s.config.id);
        for d in &s.dests {
            if d.config.method != ForwardMethod::Masq {
                continue;
            }
            let st = &d.stats;
            let never = st.conns >= MIN_CONNECTIONS && st.out_pkts == 0;
            let lately = earlier_stats(e.earlier, &s.config.id, d).is_some_and(|before| {
                st.conns.saturating_sub(before.conns) >= MIN_CONNECTIONS
                    && st.out_pkts == before.out_pkts
            });
            if never || lately {
                let rs = std::net::SocketAddr::new(d.config.addr, d.config.port);
                out.push(FindingView {
                    check: "nat-no-replies".into(),
                    subject: format!("{svc} -> {rs}"),
                    detail: format!(
                        "connections went to {} ({} in all) and no reply came back through the \
                         director{}: with NAT the real server must route its replies through \
                         the director (its default gateway the director's inside address, DIP), \
                         and no firewall may drop them",
                        d.config.addr,
                        st.conns,
                        if never {
                            ""
                        } else {
                            " while the doctor watched"
                        }
                    ),
                });
            }
        }
    }
    for (key, packets) in e.stray {
        let Some(s) = e
            .services
            .iter()
            .find(|s| service_matches(&s.config.id, key))
        else {
            continue;
        };
        let direct = s.dests.iter().any(|d| {
            matches!(
                d.config.method,
                ForwardMethod::Route | ForwardMethod::Tunnel
            )
        });
        if !direct {
            continue;
        }
        out.push(FindingView {
            check: "dr-replies-via-director".into(),
            subject: service_text(&s.config.id),
            detail: format!(
                "{packets} packets from the virtual address and port itself reached the \
                 director: a real server replies through it. With direct routing or tunnelling \
                 a real server answers from the VIP straight to the client, so its default \
                 gateway must be the router, not the director"
            ),
        });
    }
    for (key, addr, port, n) in e.self_scheduled {
        let Some(s) = e
            .services
            .iter()
            .find(|s| service_matches(&s.config.id, key))
        else {
            continue;
        };
        let rs = std::net::SocketAddr::new(*addr, *port);
        out.push(FindingView {
            check: "rs-self-loop".into(),
            subject: format!("{} -> {rs}", service_text(&s.config.id)),
            detail: format!(
                "{n} connections from {addr} itself to the VIP were scheduled back to it: it \
                 receives them from its own address and answers itself directly, never through \
                 the director, so they hang. Let the real server reach the service another way \
                 (a route to the VIP through the director with another source address, or the \
                 service by its own address), or use FULLNAT"
            ),
        });
    }
    let counters = e.counters;
    let too_big = counter(counters, "tx_tunnel_too_big");
    if too_big > 0 {
        out.push(FindingView {
            check: "tunnel-mtu".into(),
            subject: "director".into(),
            detail: format!(
                "{too_big} packets were too big to tunnel to a real server (the outer header \
                 does not fit the path MTU): raise the MTU toward the real servers, or lower the \
                 clients' MSS (the real servers' or the path's MTU minus the tunnel's overhead)"
            ),
        });
    }
    let unreachable =
        counter(counters, "tx_unreachable") + counter(counters, "tx_neighbour_failed");
    if unreachable > 0 {
        out.push(FindingView {
            check: "unreachable".into(),
            subject: "director".into(),
            detail: format!(
                "{unreachable} forwarded packets found no route or no neighbour answering ARP/ND: \
                 check the routes toward the real servers and that they are up"
            ),
        });
    }
    out
}

/// How long each probe waits for answers.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The probes of direct-routing real servers (IPv4): who answers ARP for each DR service's VIP
/// on the real servers' segment, and whether each real server answers for the VIP at its MAC.
/// Blocking (half a second a probe).
pub fn probe_direct_routing(services: &[ServiceView], net: &rvs_io::NetState) -> Vec<FindingView> {
    use std::net::IpAddr;
    let mut out = Vec::new();
    for s in services {
        let vip = match s.config.id {
            ServiceId::Tcp {
                addr: IpAddr::V4(a),
                ..
            }
            | ServiceId::Udp {
                addr: IpAddr::V4(a),
                ..
            }
            | ServiceId::Sctp {
                addr: IpAddr::V4(a),
                ..
            } => a,
            _ => continue,
        };
        let svc = service_text(&s.config.id);
        // Each real server's segment: interface, our MAC and address there, its MAC.
        let mut servers = Vec::new();
        for d in s
            .dests
            .iter()
            .filter(|d| d.config.method == ForwardMethod::Route)
        {
            let IpAddr::V4(rip) = d.config.addr else {
                continue;
            };
            let Ok(segment) = net.segment_to(d.config.addr) else {
                continue;
            };
            let IpAddr::V4(dip) = segment.source else {
                continue;
            };
            servers.push((rip, segment.ifname, segment.src_mac, segment.next_mac, dip));
        }
        let mut asked = Vec::new();
        for (_, ifname, src_mac, _, dip) in &servers {
            if asked.contains(ifname) {
                continue;
            }
            asked.push(ifname.clone());
            let answerers = rvs_io::probe::arp_answerers(ifname, *src_mac, *dip, vip, PROBE_WAIT)
                .unwrap_or_default();
            for mac in answerers {
                let who = servers.iter().find(|x| x.3 == mac).map_or_else(
                    || format!("a host at {}", mac_text(&mac)),
                    |x| format!("real server {} ({})", x.0, mac_text(&mac)),
                );
                out.push(FindingView {
                    check: "dr-arp".into(),
                    subject: svc.clone(),
                    detail: format!(
                        "{who} answers ARP for the VIP {vip} on {ifname}: with direct routing \
                         only the director may, or clients' traffic bypasses it. On the real \
                         server: sysctl net.ipv4.conf.all.arp_ignore=1 and arp_announce=2 (and on \
                         its interface), the VIP on lo only"
                    ),
                });
            }
        }
        for (rip, ifname, src_mac, rs_mac, dip) in &servers {
            let answered =
                rvs_io::probe::echo_answered(ifname, *src_mac, *rs_mac, *dip, vip, PROBE_WAIT)
                    .unwrap_or(true);
            if !answered {
                out.push(FindingView {
                    check: "dr-vip-not-on-lo".into(),
                    subject: format!("{svc} -> {rip}"),
                    detail: format!(
                        "{rip} does not answer for the VIP {vip} when packets reach its MAC \
                         address (as direct routing delivers them): add the VIP on its lo \
                         (ip addr add {vip}/32 dev lo), or let ICMP echo through its firewall"
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_api::{DestConfig, DestView, ServiceConfig, StatsView};

    fn service(method: ForwardMethod, conns: u64, in_pkts: u64, out_pkts: u64) -> ServiceView {
        let stats = StatsView {
            conns,
            in_pkts,
            out_pkts,
            in_bytes: 0,
            out_bytes: 0,
        };
        ServiceView {
            config: ServiceConfig {
                id: ServiceId::Tcp {
                    addr: "10.0.0.1".parse().expect("vip"),
                    port: 80,
                },
                scheduler: "rr".into(),
                persistence: None,
                netmask: None,
                one_packet: false,
                sched_flags: Vec::new(),
                pe: None,
                local_addrs: Vec::new(),
                proxy_protocol: None,
            },
            stats,
            rates: Default::default(),
            dests: vec![DestView {
                config: DestConfig::new("10.1.0.2".parse().expect("rip"), 80, 1, method),
                active_conns: 0,
                inactive_conns: 0,
                persist_conns: 0,
                stats,
                rates: Default::default(),
            }],
        }
    }

    fn services(s: ServiceView) -> Vec<ServiceView> {
        vec![s]
    }

    #[test]
    fn each_check_fires_on_its_own_evidence() {
        let nat = services(service(ForwardMethod::Masq, 5, 12, 0));
        let found = diagnose(&Evidence {
            services: &nat,
            ..Evidence::default()
        });
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].check, "nat-no-replies");
        assert_eq!(found[0].subject, "TCP 10.0.0.1:80 -> 10.1.0.2:80");
        // Healthy, or too new: nothing.
        for quiet in [
            service(ForwardMethod::Masq, 5, 12, 10),
            service(ForwardMethod::Masq, 1, 1, 0),
        ] {
            let list = services(quiet);
            assert!(diagnose(&Evidence {
                services: &list,
                ..Evidence::default()
            })
            .is_empty());
        }
        // Replies came once, then stopped while the doctor watched.
        let before = services(service(ForwardMethod::Masq, 5, 12, 10));
        let after = services(service(ForwardMethod::Masq, 9, 20, 10));
        let lately = diagnose(&Evidence {
            services: &after,
            earlier: Some(&before),
            ..Evidence::default()
        });
        assert_eq!(lately[0].check, "nat-no-replies");
        assert!(lately[0].detail.contains("while the doctor watched"));
        // Packets from a DR service's own address: a real server routes through us.
        let dr = services(service(ForwardMethod::Route, 5, 12, 0));
        let key = rvs_engine::ServiceKey::new(
            rvs_engine::Protocol::Tcp,
            "10.0.0.1".parse().expect("vip"),
            80,
        );
        let found = diagnose(&Evidence {
            services: &dr,
            stray: &[(key, 7)],
            ..Evidence::default()
        });
        assert_eq!(found[0].check, "dr-replies-via-director");
        assert_eq!(found[0].subject, "TCP 10.0.0.1:80");
        let counters = [
            CounterView::new("tx_tunnel_too_big", 2),
            CounterView::new("tx_unreachable", 0),
        ];
        let mtu = diagnose(&Evidence {
            counters: &counters,
            ..Evidence::default()
        });
        assert_eq!(mtu.len(), 1);
        assert_eq!(mtu[0].check, "tunnel-mtu");
    }
}
