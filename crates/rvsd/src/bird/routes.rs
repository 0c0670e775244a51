//! Which VIPs a director announces, and the BIRD include file that announces them.
//!
//! A virtual address is announced while at least one of its services is up:
//! - a service of keepalived.conf is up while it has quorum (keepalived's `quorum`, 1 live real
//!   server by default);
//! - any other service (rvsadm's, a restore's) is up while one of its real servers has a
//!   weight above 0.
//!
//! Firewall-mark services have no address of their own and announce nothing.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

use rvs_api::ServiceId;

/// The protocol names the include file defines, one static protocol per family: filter on them
/// in BIRD's export rules (`export where proto = "rvs_vips4";`).
pub const PROTOCOL_V4: &str = "rvs_vips4";
/// The IPv6 protocol's name (see [`PROTOCOL_V4`]).
pub const PROTOCOL_V6: &str = "rvs_vips6";

/// What decides one service: its identity, whether a real server has weight, and, for a
/// keepalived.conf service, its quorum state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceState {
    /// The service.
    pub id: ServiceId,
    /// Whether one of its real servers has a weight above 0.
    pub has_weight: bool,
}

/// The VIPs to announce: the addresses of services that are up. `quorum` holds the quorum
/// state of the services keepalived.conf manages; the others are up while they have weight.
pub fn announced(services: &[ServiceState], quorum: &HashMap<ServiceId, bool>) -> BTreeSet<IpAddr> {
    services
        .iter()
        .filter(|s| quorum.get(&s.id).copied().unwrap_or(s.has_weight))
        .filter_map(|s| s.id.socket_addr().map(|a| a.ip()))
        .collect()
}

/// The include file for `vips`: two static protocols (IPv4 and IPv6) of blackhole routes, one
/// per VIP, /32 or /128. BIRD reads the file where its configuration includes it.
pub fn render(vips: &BTreeSet<IpAddr>) -> String {
    let mut out = String::from(
        "# Written by rvsd (--bird-include): the VIPs of its services that are up.\n\
         # rvsd rewrites this file and asks BIRD to `configure` on every change.\n",
    );
    for (name, channel, v6) in [(PROTOCOL_V4, "ipv4", false), (PROTOCOL_V6, "ipv6", true)] {
        let _ = writeln!(out, "protocol static {name} {{\n\t{channel};");
        for vip in vips.iter().filter(|v| v.is_ipv6() == v6) {
            let len = if v6 { 128 } else { 32 };
            let _ = writeln!(out, "\troute {vip}/{len} blackhole;");
        }
        out.push_str("}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(addr: &str, port: u16, has_weight: bool) -> ServiceState {
        ServiceState {
            id: ServiceId::Tcp {
                addr: addr.parse().unwrap(),
                port,
            },
            has_weight,
        }
    }

    #[test]
    fn a_vip_is_announced_while_one_of_its_services_is_up() {
        let services = [
            tcp("10.0.0.1", 80, false),
            tcp("10.0.0.1", 443, true),
            tcp("10.0.0.2", 80, false),
            tcp("2001:db8::1", 80, true),
            ServiceState {
                id: ServiceId::Fwmark {
                    mark: 1,
                    ipv6: false,
                },
                has_weight: true,
            },
        ];
        let got: Vec<String> = announced(&services, &HashMap::new())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.0.0.1", "2001:db8::1"]);
    }

    #[test]
    fn keepalived_services_follow_their_quorum_not_their_weights() {
        let services = [tcp("10.0.0.1", 80, true), tcp("10.0.0.2", 80, false)];
        let quorum = HashMap::from([(services[0].id, false), (services[1].id, true)]);
        let got: Vec<String> = announced(&services, &quorum)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            ["10.0.0.2"],
            "quorum lost withdraws, quorum up announces"
        );
    }

    #[test]
    fn the_include_file_has_one_static_protocol_per_family() {
        let vips: BTreeSet<IpAddr> = ["10.0.0.1", "10.0.0.2", "2001:db8::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let text = render(&vips);
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "protocol static rvs_vips4 {",
                "\tipv4;",
                "\troute 10.0.0.1/32 blackhole;",
                "\troute 10.0.0.2/32 blackhole;",
                "}",
                "protocol static rvs_vips6 {",
                "\tipv6;",
                "\troute 2001:db8::1/128 blackhole;",
                "}",
            ]
        );
        let empty = render(&BTreeSet::new());
        assert!(
            empty.contains("protocol static rvs_vips4 {\n\tipv4;\n}\n"),
            "{empty}"
        );
    }
}
