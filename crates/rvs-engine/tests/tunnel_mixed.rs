//! Tunnelling across address families (`ipvsadm -a -t <v4 VIP> -r <v6 RIP> -i` and the
//! reverse): only tunnel servers may differ from the service's family; their packets go to the
//! real server's own address, IPv4-in-IPv6 (next header 4) or IPv6-in-IPv4 (protocol 41).

mod common;

use std::net::{IpAddr, SocketAddr};

use common::*;
use rvs_engine::tunnel;
use rvs_engine::*;

const DIP4: [u8; 4] = [10, 0, 0, 8];

fn dip6() -> [u8; 16] {
    v6("fd00:1::8")
}

fn with_method(addr: IpAddr, method: ForwardMethod) -> DestSpec {
    DestSpec {
        method,
        ..dest(addr, 0, 1)
    }
}

fn encap(next_hop_ip: IpAddr) -> Verdict {
    Verdict::Encapsulate {
        next_hop_ip,
        l3_offset: 14,
        tunnel: TunnelConfig::default(),
    }
}

/// Ones-complement sum of `data`, folded.
fn fold_sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    for c in data.chunks(2) {
        acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[test]
fn ipv4_service_tunnels_to_an_ipv6_real_server() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("svc");
    e.add_dest(&k, with_method(ip6(rip6()), ForwardMethod::Tunnel))
        .expect("a tunnel server of the other family is allowed");
    let mut syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    let before = syn.clone();
    assert_eq!(run(&e, 0, &mut syn), encap(ip6(rip6())));
    assert_eq!(syn, before, "the inner IPv4 packet is untouched");
    let mut ack = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"data");
    assert_eq!(run(&e, 1, &mut ack), encap(ip6(rip6())));
    let listed = e.services(Millis(2));
    assert_eq!(listed[0].dests[0].spec.addr, ip6(rip6()));
    let conns = e.connections(Millis(2));
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].dest, SocketAddr::new(ip6(rip6()), VPORT));
    assert_eq!(conns[0].client, SocketAddr::new(ip4(CLIENT4), CPORT));
}

#[test]
fn ipv6_service_tunnels_to_an_ipv4_real_server() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Udp, ip6(vip6()), 53);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("svc");
    e.add_dest(&k, with_method(ip4(RIP4), ForwardMethod::Tunnel))
        .expect("a tunnel server of the other family is allowed");
    for now in 0..3 {
        let mut q = udp6(client6(), 5000, vip6(), 53, 64, b"query");
        assert_eq!(run(&e, now, &mut q), encap(ip4(RIP4)));
    }
    let conns = e.connections(Millis(3));
    assert_eq!(conns[0].dest, SocketAddr::new(ip4(RIP4), 53));
}

#[test]
fn mixed_families_are_refused_for_other_methods() {
    let e = Engine::new(EngineConfig::default());
    let k4 = key(Protocol::Tcp, ip4(VIP4), VPORT);
    let mut spec = svc(k4, SchedulerKind::Rr);
    spec.local_addrs = vec![ip4(ROUTER4)];
    e.add_service(spec).expect("svc");
    for method in [
        ForwardMethod::Masq,
        ForwardMethod::Route,
        ForwardMethod::FullNat,
    ] {
        let err = e
            .add_dest(&k4, with_method(ip6(rip6()), method))
            .expect_err("mixed family without tunnelling");
        assert!(
            matches!(&err, EngineError::InvalidArgument(m) if m.contains("only for tunnelling")),
            "{method:?}: {err}"
        );
    }
    // A tunnel server may not be switched to another method while of the other family.
    e.add_dest(&k4, with_method(ip6(rip6()), ForwardMethod::Tunnel))
        .expect("tunnel");
    let err = e
        .edit_dest(&k4, with_method(ip6(rip6()), ForwardMethod::Route))
        .expect_err("edit to -g");
    assert!(err.to_string().contains("only for tunnelling"), "{err}");
    // The same family stays fine for every method.
    e.add_dest(&k4, with_method(ip4(RIP4), ForwardMethod::Route))
        .expect("same family");
}

#[test]
fn ipv4_in_ipv6_outer_headers() {
    let inner = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 63, ACK, b"hello"));
    let ipip = tunnel::outer_header(
        &TunnelConfig::default(),
        ip6(dip6()),
        ip6(rip6()),
        &inner,
        7,
        None,
    )
    .expect("ipip");
    let mut want = vec![0x60, 0, 0, 0];
    want.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    want.extend_from_slice(&[4, 63]);
    want.extend_from_slice(&dip6());
    want.extend_from_slice(&rip6());
    assert_eq!(ipip.as_bytes(), &want[..]);

    // GUE over IPv6 carrying IPv4: protocol 4 in the GUE header, the UDP checksum over the
    // IPv6 pseudo-header (mandatory for UDP over IPv6).
    let cfg = TunnelConfig {
        kind: TunnelKind::Gue,
        port: 6080,
        checksum: TunnelChecksum::Csum,
    };
    let gue = tunnel::outer_header(&cfg, ip6(dip6()), ip6(rip6()), &inner, 7, None).expect("gue");
    let b = gue.as_bytes();
    assert_eq!(b.len(), 40 + 8 + 4);
    assert_eq!(b[6], 17);
    assert_eq!(&b[42..44], &6080u16.to_be_bytes());
    assert_eq!(b[49], 4, "GUE protocol: IPv4");
    let udp_len = 8 + 4 + inner.len();
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&dip6());
    pseudo.extend_from_slice(&rip6());
    pseudo.extend_from_slice(&(udp_len as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 17]);
    pseudo.extend_from_slice(&b[40..]);
    pseudo.extend_from_slice(&inner);
    assert_eq!(fold_sum(&pseudo), 0xffff, "UDP checksum verifies");

    // GRE over IPv6 carrying IPv4: ethertype 0x0800.
    let cfg = TunnelConfig {
        kind: TunnelKind::Gre,
        port: 0,
        checksum: TunnelChecksum::NoCsum,
    };
    let gre = tunnel::outer_header(&cfg, ip6(dip6()), ip6(rip6()), &inner, 7, None).expect("gre");
    assert_eq!(gre.as_bytes()[6], 47);
    assert_eq!(&gre.as_bytes()[40..44], &[0, 0, 0x08, 0x00]);
}

#[test]
fn ipv6_in_ipv4_outer_header() {
    let mut inner = l3(&tcp6(client6(), CPORT, vip6(), VPORT, 62, ACK, b"hello"));
    inner[0] = 0x6b; // traffic class 0xb8 (DSCP 46)
    inner[1] = 0x80;
    let outer = tunnel::outer_header(
        &TunnelConfig::default(),
        ip4(DIP4),
        ip4(RIP4),
        &inner,
        0x1234,
        None,
    )
    .expect("outer");
    let b = outer.as_bytes();
    assert_eq!(b.len(), 20);
    assert_eq!(b[0], 0x45);
    assert_eq!(b[1], 0xb8, "the traffic class is copied");
    assert_eq!(u16::from_be_bytes([b[2], b[3]]) as usize, 20 + inner.len());
    assert_eq!(&b[4..6], &0x1234u16.to_be_bytes(), "IPv6 never sets DF");
    assert_eq!(b[6], 0);
    assert_eq!(b[8], 62, "TTL from the hop limit");
    assert_eq!(b[9], 41, "protocol 41: IPv6");
    assert_eq!(&b[12..16], &DIP4);
    assert_eq!(&b[16..20], &RIP4);
    assert_eq!(fold_sum(b), 0xffff, "header checksum verifies");
}

#[test]
fn path_mtu_errors_follow_the_inner_family() {
    // IPv4 (DF) inside IPv6: the IPv6 outer header costs 40; the client gets ICMPv4 3/4.
    let mut inner = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[0u8; 1460]));
    inner[6] |= 0x40;
    let overhead = tunnel::overhead(&TunnelConfig::default(), true, false);
    assert_eq!(overhead, 40);
    let room = tunnel::path_mtu_exceeded(false, true, inner.len(), 1500, overhead);
    assert_eq!(room, Some(1460));
    let mut out = Vec::new();
    let to = tunnel::too_big(&inner, 1460, 1, &mut out).expect("icmp");
    assert_eq!(to, ip4(CLIENT4));
    assert_eq!((out[0] >> 4, out[9], out[20], out[21]), (4, 1, 3, 4));
    assert_eq!(&out[26..28], &1460u16.to_be_bytes());

    // IPv6 inside IPv4: the IPv4 outer header costs 20; the client gets ICMPv6 packet too big.
    let inner6 = l3(&tcp6(
        client6(),
        CPORT,
        vip6(),
        VPORT,
        64,
        ACK,
        &[0u8; 1440],
    ));
    let overhead = tunnel::overhead(&TunnelConfig::default(), false, false);
    let room = tunnel::path_mtu_exceeded(true, false, inner6.len(), 1500, overhead);
    assert_eq!(room, Some(1480));
    let to = tunnel::too_big(&inner6, 1480, 1, &mut out).expect("icmp6");
    assert_eq!(to, ip6(client6()));
    assert_eq!((out[0] >> 4, out[6], out[40]), (6, 58, 2));
    assert_eq!(&out[44..48], &1480u32.to_be_bytes());
}
