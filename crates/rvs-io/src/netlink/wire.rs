//! rtnetlink message layout: building requests and decoding the link, address, route and
//! neighbour messages into typed updates. Pure code; every length is checked before use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) const NLMSG_HDR_LEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_DELADDR: u16 = 21;
pub(crate) const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;
pub(crate) const RTM_NEWNEIGH: u16 = 28;
pub(crate) const RTM_DELNEIGH: u16 = 29;
pub(crate) const RTM_GETNEIGH: u16 = 30;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_CREATE: u16 = 0x400;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
/// `ifi_flags` bit: the interface is administratively up.
pub(crate) const IFF_UP: u32 = 0x1;
pub(crate) const IFA_ADDRESS: u16 = 1;
pub(crate) const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_METRICS: u16 = 8;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTAX_MTU: u16 = 2;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NTF_USE: u8 = 0x01;
/// The main routing table.
pub(crate) const RT_TABLE_MAIN: u32 = 254;

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    /// Hardware address when it is a 6-byte (Ethernet-like) one.
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// `IFF_*` flags of its `ifinfomsg` (e.g. [`IFF_UP`]).
    pub flags: u32,
}

/// One interface address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addr {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix: u8,
}

/// One next hop of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NextHop {
    pub oif: u32,
    pub gateway: Option<IpAddr>,
}

/// One route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub dst: IpAddr,
    pub prefix: u8,
    pub tos: u8,
    /// `RTN_*` route type (1 unicast, 6 blackhole, 7 unreachable, 8 prohibit, ...).
    pub kind: u8,
    pub priority: u32,
    pub mtu: Option<u32>,
    /// Preferred source address (`src` of `ip route`).
    pub prefsrc: Option<IpAddr>,
    pub hops: Vec<NextHop>,
}

/// One neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Neigh {
    pub index: u32,
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
    /// `NUD_*` state bits.
    pub state: u16,
}

/// What one netlink message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Update {
    Link {
        add: bool,
        link: Link,
    },
    Addr {
        add: bool,
        addr: Addr,
    },
    Route {
        add: bool,
        route: Route,
    },
    Neigh {
        add: bool,
        neigh: Neigh,
    },
    /// End of a dump (with its sequence number).
    Done(u32),
    /// An error or acknowledgement (errno 0) for request `seq`.
    Error {
        seq: u32,
        errno: i32,
    },
    /// The kernel dropped messages: state must be re-read.
    Overrun,
    /// Anything else (other families, other tables, unknown types).
    Ignored,
}

/// Builds one netlink request.
pub(crate) struct Request {
    buf: Vec<u8>,
}

impl Request {
    pub(crate) fn new(ty: u16, flags: u16, seq: u32) -> Request {
        let mut buf = vec![0u8; NLMSG_HDR_LEN];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        Request { buf }
    }

    /// Appends a fixed family header (already laid out) and pads to 4 bytes.
    pub(crate) fn body(mut self, bytes: &[u8]) -> Request {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    /// Appends one attribute.
    pub(crate) fn attr(mut self, ty: u16, data: &[u8]) -> Request {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// A dump request for links, addresses, routes or neighbours of every family.
pub(crate) fn dump_request(ty: u16, seq: u32) -> Vec<u8> {
    let body_len = match ty {
        RTM_GETLINK => 16,
        RTM_GETADDR => 8,
        _ => 12,
    };
    Request::new(ty, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .body(&vec![0u8; body_len])
        .finish()
}

/// `RTM_NEWNEIGH` with `NTF_USE`: the kernel creates the entry if needed and starts resolving it
/// (ARP request / neighbour solicitation), like a packet sent to that next hop would.
pub(crate) fn neigh_resolve_request(ifindex: u32, ip: IpAddr, seq: u32) -> Vec<u8> {
    let mut ndm = [0u8; 12];
    ndm[0] = family_of(ip);
    ndm[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    ndm[10] = NTF_USE;
    let req = Request::new(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_CREATE, seq).body(&ndm);
    match ip {
        IpAddr::V4(a) => req.attr(NDA_DST, &a.octets()),
        IpAddr::V6(a) => req.attr(NDA_DST, &a.octets()),
    }
    .finish()
}

/// The address family (`AF_INET` / `AF_INET6`) of `ip`.
pub(crate) fn family_of(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// Iterates over the netlink messages in a datagram: `(type, seq, payload)`.
pub(crate) fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDR_LEN {
            return None;
        }
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDR_LEN || len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let payload = &buf[NLMSG_HDR_LEN..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((ty, seq, payload))
    })
}

/// Iterates over the attributes in `buf`: `(type without flag bits, data)`.
pub(crate) fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        if len < 4 || len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        let data = &buf[4..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((ty, data))
    })
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off + 4)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off + 2)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

fn ip_from(family: u8, data: &[u8]) -> Option<IpAddr> {
    match (family, data.len()) {
        (AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(
            data[0], data[1], data[2], data[3],
        ))),
        (AF_INET6, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(data);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

fn mac_from(data: &[u8]) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    if data.len() != 6 {
        return None;
    }
    m.copy_from_slice(data);
    Some(m)
}

fn unspecified(family: u8) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        _ => None,
    }
}

/// Decodes one message.
pub(crate) fn decode(ty: u16, seq: u32, p: &[u8]) -> Update {
    let decoded = match ty {
        NLMSG_DONE => Some(Update::Done(seq)),
        NLMSG_OVERRUN => Some(Update::Overrun),
        NLMSG_ERROR => u32_at(p, 0).map(|e| Update::Error {
            seq,
            errno: -(e as i32),
        }),
        RTM_NEWLINK | RTM_DELLINK => decode_link(p).map(|link| Update::Link {
            add: ty == RTM_NEWLINK,
            link,
        }),
        RTM_NEWADDR | RTM_DELADDR => decode_addr(p).map(|addr| Update::Addr {
            add: ty == RTM_NEWADDR,
            addr,
        }),
        RTM_NEWROUTE | RTM_DELROUTE => decode_route(p).map(|route| Update::Route {
            add: ty == RTM_NEWROUTE,
            route,
        }),
        RTM_NEWNEIGH | RTM_DELNEIGH => decode_neigh(p).map(|neigh| Update::Neigh {
            add: ty == RTM_NEWNEIGH,
            neigh,
        }),
        _ => None,
    };
    decoded.unwrap_or(Update::Ignored)
}

fn decode_link(p: &[u8]) -> Option<Link> {
    let index = u32_at(p, 4)?;
    let mut link = Link {
        index,
        name: String::new(),
        mac: None,
        mtu: 1500,
        flags: u32_at(p, 8)?,
    };
    for (ty, data) in attrs(p.get(16..)?) {
        match ty {
            IFLA_IFNAME => {
                let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                link.name = String::from_utf8_lossy(&data[..end]).into_owned();
            }
            IFLA_ADDRESS => link.mac = mac_from(data),
            IFLA_MTU => link.mtu = u32_at(data, 0)?,
            _ => {}
        }
    }
    Some(link)
}

fn decode_addr(p: &[u8]) -> Option<Addr> {
    let family = *p.first()?;
    let prefix = *p.get(1)?;
    let index = u32_at(p, 4)?;
    let (mut local, mut address) = (None, None);
    for (ty, data) in attrs(p.get(8..)?) {
        match ty {
            IFA_LOCAL => local = ip_from(family, data),
            IFA_ADDRESS => address = ip_from(family, data),
            _ => {}
        }
    }
    Some(Addr {
        index,
        ip: local.or(address)?,
        prefix,
    })
}

fn decode_route(p: &[u8]) -> Option<Route> {
    let family = *p.first()?;
    let prefix = *p.get(1)?;
    let tos = *p.get(3)?;
    let mut table = u32::from(*p.get(4)?);
    let kind = *p.get(7)?;
    let mut route = Route {
        dst: unspecified(family)?,
        prefix,
        tos,
        kind,
        priority: 0,
        mtu: None,
        prefsrc: None,
        hops: Vec::new(),
    };
    let (mut oif, mut gateway) = (None, None);
    for (ty, data) in attrs(p.get(12..)?) {
        match ty {
            RTA_DST => route.dst = ip_from(family, data)?,
            RTA_OIF => oif = u32_at(data, 0),
            RTA_GATEWAY => gateway = ip_from(family, data),
            RTA_PRIORITY => route.priority = u32_at(data, 0)?,
            RTA_PREFSRC => route.prefsrc = ip_from(family, data),
            RTA_TABLE => table = u32_at(data, 0)?,
            RTA_METRICS => {
                for (mty, mdata) in attrs(data) {
                    if mty == RTAX_MTU {
                        route.mtu = u32_at(mdata, 0).filter(|m| *m > 0);
                    }
                }
            }
            RTA_MULTIPATH => route.hops = decode_multipath(family, data),
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN {
        return None;
    }
    if route.hops.is_empty() {
        if let Some(oif) = oif {
            route.hops.push(NextHop { oif, gateway });
        }
    }
    Some(route)
}

/// A sequence of `struct rtnexthop` (len u16, flags u8, hops u8, ifindex i32) each followed by
/// its own attributes.
fn decode_multipath(family: u8, mut data: &[u8]) -> Vec<NextHop> {
    let mut hops = Vec::new();
    while data.len() >= 8 {
        let Some(len) = u16_at(data, 0).map(usize::from) else {
            break;
        };
        if len < 8 || len > data.len() {
            break;
        }
        let Some(oif) = u32_at(data, 4) else { break };
        let gateway = attrs(&data[8..len])
            .find(|(ty, _)| *ty == RTA_GATEWAY)
            .and_then(|(_, d)| ip_from(family, d));
        hops.push(NextHop { oif, gateway });
        data = &data[align4(len).min(data.len())..];
    }
    hops
}

fn decode_neigh(p: &[u8]) -> Option<Neigh> {
    let family = *p.first()?;
    if family != AF_INET && family != AF_INET6 {
        return None;
    }
    let index = u32_at(p, 4)?;
    let state = u16_at(p, 8)?;
    let (mut ip, mut mac) = (None, None);
    for (ty, data) in attrs(p.get(12..)?) {
        match ty {
            NDA_DST => ip = ip_from(family, data),
            NDA_LLADDR => mac = mac_from(data),
            _ => {}
        }
    }
    Some(Neigh {
        index,
        ip: ip?,
        mac,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_msg(table: u8, attrs_: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let rtm = [AF_INET, 24, 0, 0, table, 3, 0, 1, 0, 0, 0, 0];
        let mut r = Request::new(RTM_NEWROUTE, 0, 5).body(&rtm);
        for (t, d) in attrs_ {
            r = r.attr(*t, d);
        }
        r.finish()
    }

    #[test]
    fn decodes_a_main_table_route_with_gateway() {
        let msg = route_msg(
            254,
            &[
                (RTA_DST, vec![10, 1, 2, 0]),
                (RTA_OIF, 7u32.to_ne_bytes().to_vec()),
                (RTA_GATEWAY, vec![10, 0, 0, 1]),
                (RTA_PRIORITY, 100u32.to_ne_bytes().to_vec()),
            ],
        );
        let all: Vec<_> = messages(&msg).map(|(t, s, p)| decode(t, s, p)).collect();
        let expected = Route {
            dst: "10.1.2.0"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            prefix: 24,
            tos: 0,
            kind: 1,
            priority: 100,
            mtu: None,
            prefsrc: None,
            hops: vec![NextHop {
                oif: 7,
                gateway: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            }],
        };
        assert_eq!(
            all,
            vec![Update::Route {
                add: true,
                route: expected
            }]
        );
    }

    #[test]
    fn decodes_a_link_with_its_flags() {
        let mut ifi = [0u8; 16];
        ifi[4..8].copy_from_slice(&9u32.to_ne_bytes());
        ifi[8..12].copy_from_slice(&(IFF_UP | 0x40).to_ne_bytes());
        let msg = Request::new(RTM_NEWLINK, 0, 3)
            .body(&ifi)
            .attr(IFLA_IFNAME, b"d1\0")
            .attr(IFLA_MTU, &9000u32.to_ne_bytes())
            .finish();
        let all: Vec<_> = messages(&msg).map(|(t, s, p)| decode(t, s, p)).collect();
        let link = Link {
            index: 9,
            name: "d1".into(),
            mac: None,
            mtu: 9000,
            flags: IFF_UP | 0x40,
        };
        assert_eq!(all, vec![Update::Link { add: true, link }]);
    }

    #[test]
    fn other_tables_and_garbage_are_ignored() {
        let msg = route_msg(255, &[(RTA_DST, vec![10, 1, 2, 0])]);
        let all: Vec<_> = messages(&msg).map(|(t, s, p)| decode(t, s, p)).collect();
        assert_eq!(all, vec![Update::Ignored]);
        // Truncated and nonsense inputs never panic.
        for cut in 0..msg.len() {
            for (t, s, p) in messages(&msg[..cut]) {
                let _ = decode(t, s, p);
            }
            let _ = decode(RTM_NEWROUTE, 0, &msg[NLMSG_HDR_LEN.min(cut)..cut]);
            let _ = decode(RTM_NEWLINK, 0, &msg[..cut]);
            let _ = decode(RTM_NEWADDR, 0, &msg[..cut]);
            let _ = decode(RTM_NEWNEIGH, 0, &msg[..cut]);
        }
    }

    #[test]
    fn neighbour_request_has_ntf_use() {
        let msg = neigh_resolve_request(3, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 1);
        let (ty, seq, p) = messages(&msg).next().expect("one message");
        assert_eq!((ty, seq), (RTM_NEWNEIGH, 1));
        assert_eq!(p[10], NTF_USE);
        let n = decode_neigh(p).expect("decodes");
        assert_eq!(n.index, 3);
        assert_eq!(n.ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)));
    }
}
