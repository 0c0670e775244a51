//! Shared fixtures: an engine with one NAT service per family and frame builders (etherparse).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{PacketBuilder, PacketBuilderStep, TcpHeader};
use rvs_engine::*;

pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

pub const CLIENT4: [u8; 4] = [203, 0, 113, 5];
pub const VIP4: [u8; 4] = [10, 99, 1, 100];
pub const RIP4: [u8; 4] = [192, 168, 7, 10];
pub const RIP4B: [u8; 4] = [192, 168, 7, 11];
pub const ROUTER4: [u8; 4] = [10, 99, 1, 1];

pub fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().expect("literal").octets()
}

pub fn client6() -> [u8; 16] {
    v6("2001:db8:c::5")
}
pub fn vip6() -> [u8; 16] {
    v6("2001:db8:1::100")
}
pub fn rip6() -> [u8; 16] {
    v6("fd00:7::10")
}

pub const VPORT: u16 = 80;
pub const RPORT: u16 = 8080;
pub const CPORT: u16 = 40000;

pub fn ip4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}
pub fn ip6(a: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

pub fn key(proto: Protocol, addr: IpAddr, port: u16) -> ServiceKey {
    ServiceKey::new(proto, addr, port)
}

pub fn svc(k: ServiceKey, scheduler: SchedulerKind) -> ServiceSpec {
    ServiceSpec::new(k, scheduler)
}

pub fn dest(addr: IpAddr, port: u16, weight: u32) -> DestSpec {
    DestSpec::new(addr, port, weight, ForwardMethod::Masq)
}

/// Engine with TCP+UDP services on VIP4:80 and VIP6:80, each to one real server made by
/// `make_dest(address, port, weight)` with port `port` and weight 1.
fn engine_with(make_dest: fn(IpAddr, u16, u32) -> DestSpec, port: u16) -> Engine {
    let e = Engine::new(EngineConfig {
        expected_connections: 1024,
        shards: 8,
        ..EngineConfig::default()
    });
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let k4 = key(proto, ip4(VIP4), VPORT);
        e.add_service(svc(k4, SchedulerKind::Rr)).expect("add v4");
        e.add_dest(&k4, make_dest(ip4(RIP4), port, 1))
            .expect("dest v4");
        let k6 = key(proto, ip6(vip6()), VPORT);
        e.add_service(svc(k6, SchedulerKind::Rr)).expect("add v6");
        e.add_dest(&k6, make_dest(ip6(rip6()), port, 1))
            .expect("dest v6");
    }
    e
}

/// Engine with TCP+UDP services on VIP4:80 and VIP6:80, each to one real server on port 8080.
pub fn nat_engine() -> Engine {
    engine_with(dest, RPORT)
}

/// A direct-routing destination (`-g`).
pub fn dr_dest(addr: IpAddr, port: u16, weight: u32) -> DestSpec {
    DestSpec {
        method: ForwardMethod::Route,
        ..dest(addr, port, weight)
    }
}

/// Engine with TCP+UDP services on VIP4:80 and VIP6:80, each to one direct-routing real server
/// (added with port 0, i.e. the service's port).
pub fn dr_engine() -> Engine {
    engine_with(dr_dest, 0)
}

/// TCP flags for the builders.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

pub const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
};
pub const SYNACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
};
pub const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
};
pub const FINACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
};
pub const RST: Flags = Flags {
    syn: false,
    ack: false,
    fin: false,
    rst: true,
};

fn tcp_step<T>(b: PacketBuilderStep<T>, sp: u16, dp: u16, f: Flags) -> PacketBuilderStep<TcpHeader>
where
    PacketBuilderStep<T>: TcpStep,
{
    let mut s = b.tcp_step(sp, dp, 1000, 65535);
    if f.syn {
        s = s.syn();
    }
    if f.ack {
        s = s.ack(5000);
    }
    if f.fin {
        s = s.fin();
    }
    if f.rst {
        s = s.rst();
    }
    s
}

/// Lets `tcp_step` work on both IPv4 and IPv6 builder steps.
pub trait TcpStep {
    fn tcp_step(self, sp: u16, dp: u16, seq: u32, win: u16) -> PacketBuilderStep<TcpHeader>;
}

impl TcpStep for PacketBuilderStep<etherparse::IpHeaders> {
    fn tcp_step(self, sp: u16, dp: u16, seq: u32, win: u16) -> PacketBuilderStep<TcpHeader> {
        self.tcp(sp, dp, seq, win)
    }
}

pub fn tcp4(
    src: [u8; 4],
    sp: u16,
    dst: [u8; 4],
    dp: u16,
    ttl: u8,
    f: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let b = tcp_step(
        PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, ttl),
        sp,
        dp,
        f,
    );
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build");
    out
}

pub fn tcp6(
    src: [u8; 16],
    sp: u16,
    dst: [u8; 16],
    dp: u16,
    hl: u8,
    f: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let b = tcp_step(
        PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(src, dst, hl),
        sp,
        dp,
        f,
    );
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build");
    out
}

pub fn udp4(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, ttl)
        .udp(sp, dp);
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build");
    out
}

pub fn udp6(src: [u8; 16], sp: u16, dst: [u8; 16], dp: u16, hl: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(src, dst, hl)
        .udp(sp, dp);
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build");
    out
}

/// An ICMPv4 error frame from `src` to `dst` with TTL `ttl`, quoting `quoted` (an IP packet,
/// possibly cut short).
pub fn icmp4_error(
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    t: etherparse::Icmpv4Type,
    quoted: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, ttl)
        .icmpv4(t)
        .write(&mut out, quoted)
        .expect("build");
    out
}

/// An ICMPv6 error frame from `src` to `dst` with hop limit `hl`, quoting `quoted`.
pub fn icmp6_error(
    src: [u8; 16],
    dst: [u8; 16],
    hl: u8,
    t: etherparse::Icmpv6Type,
    quoted: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(src, dst, hl)
        .icmpv6(t)
        .write(&mut out, quoted)
        .expect("build");
    out
}

/// The IP packet of a frame (no Ethernet header).
pub fn l3(frame: &[u8]) -> Vec<u8> {
    frame[14..].to_vec()
}

pub fn run(e: &Engine, now: u64, frame: &mut [u8]) -> Verdict {
    e.handle(Millis(now), &mut PacketMeta::default(), frame)
}

pub fn fwd(next_hop: IpAddr) -> Verdict {
    Verdict::Forward {
        next_hop_ip: next_hop,
        l3_offset: 14,
    }
}

/// Checks every checksum of a TCP/UDP/IP frame (IPv4 header, L4 with pseudo header). A zero
/// (absent) IPv4 UDP checksum fails: frames that carry one are checked with
/// [`udp4_without_checksum`].
pub fn checksums_ok(frame: &[u8]) -> bool {
    use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
    let Ok(h) = PacketHeaders::from_ethernet_slice(frame) else {
        return false;
    };
    let payload = h.payload.slice();
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Tcp(t))) => {
            ip.calc_header_checksum() == ip.header_checksum
                && t.calc_checksum_ipv4(ip, payload).ok() == Some(t.checksum)
        }
        (Some(NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Udp(u))) => {
            ip.calc_header_checksum() == ip.header_checksum
                && u.checksum != 0
                && u.calc_checksum_ipv4(ip, payload).ok() == Some(u.checksum)
        }
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Tcp(t))) => {
            t.calc_checksum_ipv6(ip, payload).ok() == Some(t.checksum)
        }
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Udp(u))) => {
            u.calc_checksum_ipv6(ip, payload).ok() == Some(u.checksum)
        }
        _ => false,
    }
}

/// True for an IPv4 UDP frame with a right IPv4 header checksum and no UDP checksum (0).
pub fn udp4_without_checksum(frame: &[u8]) -> bool {
    use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
    let Ok(h) = PacketHeaders::from_ethernet_slice(frame) else {
        return false;
    };
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Udp(u))) => {
            ip.calc_header_checksum() == ip.header_checksum && u.checksum == 0
        }
        _ => false,
    }
}
