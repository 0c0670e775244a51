//! The in-memory mirror of links, addresses, main-table routes and neighbours, and the route
//! lookup over it. Pure code: updates in, answers out.

use std::collections::HashMap;
use std::net::IpAddr;

use super::state::Resolution;
use super::wire::{Addr, Link, Neigh, Route, Update, IFF_UP};

const NUD_INCOMPLETE: u16 = 0x01;
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
const NUD_PROBE: u16 = 0x10;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;
/// States in which the entry's link-layer address may be used.
const NUD_USABLE: u16 =
    NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_NOARP | NUD_PERMANENT;
const RTN_UNICAST: u8 = 1;

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The answer as the caller gets it: ready, already being resolved by the kernel
    /// ([`Resolution::Pending`]), or unreachable.
    Known(Resolution),
    /// The next hop must be resolved: ask the kernel.
    NeedsResolution { ifindex: u32, next_hop: IpAddr },
}

/// Links, addresses, routes and neighbours of one network namespace.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tables {
    links: HashMap<u32, Link>,
    addrs: Vec<Addr>,
    routes: Vec<Route>,
    neighs: HashMap<(u32, IpAddr), Neigh>,
}

fn same_route(a: &Route, b: &Route) -> bool {
    a.dst == b.dst
        && a.prefix == b.prefix
        && a.tos == b.tos
        && a.priority == b.priority
        && (a.dst.is_ipv4() || a.hops.first() == b.hops.first())
}

/// True when `ip` lies in `net/prefix` (same family).
pub(crate) fn in_prefix(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let p = u32::from(prefix.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let p = u32::from(prefix.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Tables {
    /// Applies one update; returns whether anything changed.
    pub(crate) fn apply(&mut self, update: Update) -> bool {
        match update {
            Update::Link { add: true, link } => {
                let changed = self.links.get(&link.index) != Some(&link);
                self.links.insert(link.index, link);
                changed
            }
            Update::Link { add: false, link } => {
                let removed = self.links.remove(&link.index).is_some();
                self.addrs.retain(|a| a.index != link.index);
                self.neighs.retain(|(i, _), _| *i != link.index);
                removed
            }
            Update::Addr { add, addr } => {
                let before = self.addrs.len();
                self.addrs.retain(|a| a != &addr);
                let removed = self.addrs.len() != before;
                if add {
                    self.addrs.push(addr);
                    !removed
                } else {
                    removed
                }
            }
            Update::Route { add, route } => {
                let before = self.routes.len();
                let existing = self.routes.iter().position(|r| same_route(r, &route));
                if let Some(i) = existing {
                    if add && self.routes[i] == route {
                        return false;
                    }
                    self.routes.swap_remove(i);
                }
                if add {
                    self.routes.push(route);
                }
                add || self.routes.len() != before
            }
            Update::Neigh { add, neigh } => {
                let key = (neigh.index, neigh.ip);
                if add {
                    let changed = self.neighs.get(&key) != Some(&neigh);
                    self.neighs.insert(key, neigh);
                    changed
                } else {
                    self.neighs.remove(&key).is_some()
                }
            }
            Update::Done(_) | Update::Error { .. } | Update::Overrun | Update::Ignored => false,
        }
    }

    /// All addresses configured on any interface.
    pub(crate) fn local_addrs(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.addrs.iter().map(|a| a.ip).collect();
        v.sort();
        v.dedup();
        v
    }

    pub(crate) fn link_mac(&self, ifindex: u32) -> Option<[u8; 6]> {
        self.links.get(&ifindex).and_then(|l| l.mac)
    }

    /// Whether interface `ifindex` is administratively up; `None` when there is no such link.
    pub(crate) fn link_up(&self, ifindex: u32) -> Option<bool> {
        self.links.get(&ifindex).map(|l| l.flags & IFF_UP != 0)
    }

    pub(crate) fn ifindex_by_name(&self, name: &str) -> Option<u32> {
        self.links
            .values()
            .find(|l| l.name == name)
            .map(|l| l.index)
    }

    /// The source address this host uses toward `dst`: the preferred source of the route,
    /// else the address of the egress interface (same family) whose network holds the next hop,
    /// else its first address of that family.
    pub(crate) fn source_for(&self, dst: IpAddr) -> Option<IpAddr> {
        let route = self.best_route(dst)?;
        if let Some(src) = route.prefsrc {
            return Some(src);
        }
        let hop = route.hops.first()?;
        let next_hop = hop.gateway.unwrap_or(dst);
        let mut candidates = self
            .addrs
            .iter()
            .filter(|a| a.index == hop.oif && a.ip.is_ipv4() == dst.is_ipv4())
            .filter(|a| match a.ip {
                IpAddr::V6(v6) => !v6.is_unicast_link_local(),
                IpAddr::V4(_) => true,
            });
        let first = candidates.clone().next().map(|a| a.ip);
        candidates
            .find(|a| in_prefix(next_hop, a.ip, a.prefix))
            .map(|a| a.ip)
            .or(first)
    }

    fn best_route(&self, dst: IpAddr) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| in_prefix(dst, r.dst, r.prefix))
            .max_by(|a, b| {
                a.prefix
                    .cmp(&b.prefix)
                    .then_with(|| b.priority.cmp(&a.priority))
            })
    }

    /// Longest-prefix match in the main table (lowest metric among equal prefixes), then the
    /// neighbour entry of the route's first next hop.
    pub(crate) fn lookup(&self, dst: IpAddr) -> Lookup {
        if self.addrs.iter().any(|a| a.ip == dst) {
            return Lookup::Known(Resolution::Unreachable);
        }
        let Some(route) = self.best_route(dst) else {
            return Lookup::Known(Resolution::Unreachable);
        };
        if route.kind != RTN_UNICAST {
            return Lookup::Known(Resolution::Unreachable);
        }
        let Some(hop) = route.hops.first() else {
            return Lookup::Known(Resolution::Unreachable);
        };
        let Some(link) = self.links.get(&hop.oif) else {
            return Lookup::Known(Resolution::Unreachable);
        };
        let Some(src_mac) = link.mac else {
            return Lookup::Known(Resolution::Unreachable);
        };
        let next_hop = hop.gateway.unwrap_or(dst);
        let mtu = route.mtu.unwrap_or(link.mtu);
        match self.neighs.get(&(hop.oif, next_hop)) {
            Some(n) if n.state & NUD_USABLE != 0 => match n.mac {
                Some(dst_mac) => Lookup::Known(Resolution::Ready {
                    ifindex: hop.oif,
                    src_mac,
                    dst_mac,
                    mtu,
                }),
                None => Lookup::Known(Resolution::Unreachable),
            },
            Some(n) if n.state & NUD_INCOMPLETE != 0 => Lookup::Known(Resolution::Pending),
            _ => Lookup::NeedsResolution {
                ifindex: hop.oif,
                next_hop,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::NextHop;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn route(dst: &str, prefix: u8, oif: u32, gw: Option<&str>, priority: u32) -> Update {
        Update::Route {
            add: true,
            route: Route {
                dst: ip(dst),
                prefix,
                tos: 0,
                kind: RTN_UNICAST,
                priority,
                mtu: None,
                prefsrc: None,
                hops: vec![NextHop {
                    oif,
                    gateway: gw.map(ip),
                }],
            },
        }
    }

    fn tables() -> Tables {
        let mut t = Tables::default();
        for (index, mac) in [(2, [2, 0, 0, 0, 0, 2]), (3, [2, 0, 0, 0, 0, 3])] {
            t.apply(Update::Link {
                add: true,
                link: Link {
                    index,
                    name: format!("eth{index}"),
                    mac: Some(mac),
                    mtu: 1500,
                    flags: IFF_UP,
                },
            });
        }
        t.apply(Update::Addr {
            add: true,
            addr: Addr {
                index: 2,
                ip: ip("10.0.0.1"),
                prefix: 24,
            },
        });
        t.apply(route("10.0.0.0", 24, 2, None, 0));
        t.apply(route("0.0.0.0", 0, 3, Some("192.168.1.1"), 100));
        t.apply(route("0.0.0.0", 0, 2, Some("10.0.0.254"), 50));
        t.apply(route("172.16.0.0", 16, 3, Some("192.168.1.1"), 0));
        t
    }

    #[test]
    fn longest_prefix_then_lowest_metric() {
        let t = tables();
        assert_eq!(
            t.lookup(ip("10.0.0.7")),
            Lookup::NeedsResolution {
                ifindex: 2,
                next_hop: ip("10.0.0.7")
            }
        );
        assert_eq!(
            t.lookup(ip("8.8.8.8")),
            Lookup::NeedsResolution {
                ifindex: 2,
                next_hop: ip("10.0.0.254")
            }
        );
        assert_eq!(
            t.lookup(ip("172.16.9.9")),
            Lookup::NeedsResolution {
                ifindex: 3,
                next_hop: ip("192.168.1.1")
            }
        );
        assert_eq!(
            t.lookup(ip("10.0.0.1")),
            Lookup::Known(Resolution::Unreachable),
            "local address"
        );
        assert_eq!(
            t.lookup(ip("fd00::1")),
            Lookup::Known(Resolution::Unreachable),
            "no v6 route"
        );
    }

    #[test]
    fn neighbour_states_drive_the_answer() {
        let mut t = tables();
        let neigh = |state, mac| Update::Neigh {
            add: true,
            neigh: Neigh {
                index: 2,
                ip: ip("10.0.0.7"),
                mac,
                state,
            },
        };
        t.apply(neigh(NUD_INCOMPLETE, None));
        assert_eq!(t.lookup(ip("10.0.0.7")), Lookup::Known(Resolution::Pending));
        t.apply(neigh(NUD_REACHABLE, Some([9; 6])));
        assert_eq!(
            t.lookup(ip("10.0.0.7")),
            Lookup::Known(Resolution::Ready {
                ifindex: 2,
                src_mac: [2, 0, 0, 0, 0, 2],
                dst_mac: [9; 6],
                mtu: 1500
            })
        );
        t.apply(neigh(0x20, Some([9; 6])));
        assert!(matches!(
            t.lookup(ip("10.0.0.7")),
            Lookup::NeedsResolution { .. }
        ));
    }

    #[test]
    fn source_for_prefers_the_next_hops_network() {
        let mut t = tables();
        t.apply(Update::Addr {
            add: true,
            addr: Addr {
                index: 3,
                ip: ip("192.168.1.5"),
                prefix: 24,
            },
        });
        assert_eq!(t.source_for(ip("10.0.0.7")), Some(ip("10.0.0.1")));
        assert_eq!(t.source_for(ip("172.16.9.9")), Some(ip("192.168.1.5")));
        assert_eq!(t.source_for(ip("fd00::1")), None);
    }

    #[test]
    fn links_come_and_go_by_name_and_state() {
        let mut t = tables();
        let link = |index, flags| Link {
            index,
            name: "eth2".into(),
            mac: Some([2, 0, 0, 0, 0, 2]),
            mtu: 1500,
            flags,
        };
        assert_eq!(
            (t.ifindex_by_name("eth2"), t.link_up(2)),
            (Some(2), Some(true))
        );
        assert!(t.apply(Update::Link {
            add: true,
            link: link(2, 0)
        }));
        assert_eq!(t.link_up(2), Some(false), "down is a change");
        assert!(t.apply(Update::Link {
            add: false,
            link: link(2, 0)
        }));
        assert_eq!((t.ifindex_by_name("eth2"), t.link_up(2)), (None, None));
        t.apply(Update::Link {
            add: true,
            link: link(17, IFF_UP),
        });
        assert_eq!(
            (t.ifindex_by_name("eth2"), t.link_up(17)),
            (Some(17), Some(true))
        );
    }

    #[test]
    fn route_removal_and_prefix_math() {
        let mut t = tables();
        let Update::Route { route: r, .. } = route("172.16.0.0", 16, 3, Some("192.168.1.1"), 0)
        else {
            unreachable!()
        };
        assert!(t.apply(Update::Route {
            add: false,
            route: r
        }));
        assert!(matches!(
            t.lookup(ip("172.16.9.9")),
            Lookup::NeedsResolution { ifindex: 2, .. }
        ));
        assert!(in_prefix(ip("fd00::5"), ip("fd00::"), 64));
        assert!(!in_prefix(ip("fd01::5"), ip("fd00::"), 64));
        assert!(in_prefix(ip("1.2.3.4"), ip("0.0.0.0"), 0));
    }
}
