//! Property tests: NAT then un-NAT restores the tuple, every emitted checksum verifies, and no
//! frame makes `handle` panic.

mod common;

use common::*;
use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use proptest::prelude::*;
use rvs_engine::*;

/// (src, sport, dst, dport) of a TCP/UDP frame, addresses as 16 bytes.
fn tuple(frame: &[u8]) -> ([u8; 16], u16, [u8; 16], u16) {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("parses");
    let (s, d) = match h.net.expect("ip") {
        NetHeaders::Ipv4(ip, _) => (
            std::net::Ipv4Addr::from(ip.source)
                .to_ipv6_mapped()
                .octets(),
            std::net::Ipv4Addr::from(ip.destination)
                .to_ipv6_mapped()
                .octets(),
        ),
        NetHeaders::Ipv6(ip, _) => (ip.source, ip.destination),
    };
    match h.transport.expect("l4") {
        TransportHeader::Tcp(t) => (s, t.source_port, d, t.destination_port),
        TransportHeader::Udp(u) => (s, u.source_port, d, u.destination_port),
        _ => panic!("not tcp/udp"),
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    v6: bool,
    tcp: bool,
    src: [u8; 16],
    sp: u16,
    dst: [u8; 16],
    dp: u16,
    ttl: u8,
    f: Flags,
    pl: &[u8],
) -> Vec<u8> {
    let a4 = |a: [u8; 16]| [a[12], a[13], a[14], a[15]];
    match (v6, tcp) {
        (false, true) => tcp4(a4(src), sp, a4(dst), dp, ttl, f, pl),
        (false, false) => udp4(a4(src), sp, a4(dst), dp, ttl, pl),
        (true, true) => tcp6(src, sp, dst, dp, ttl, f, pl),
        (true, false) => udp6(src, sp, dst, dp, ttl, pl),
    }
}

fn mapped(a: [u8; 4]) -> [u8; 16] {
    std::net::Ipv4Addr::from(a).to_ipv6_mapped().octets()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn nat_then_unnat_restores_tuple_and_checksums_verify(
        v6 in any::<bool>(),
        tcp in any::<bool>(),
        client_tail in any::<[u8; 4]>(),
        cport in 1u16..,
        ttl in 2u8..,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let e = nat_engine();
        let (client, vip, rip) = if v6 {
            let mut c = client6();
            c[12..].copy_from_slice(&client_tail);
            (c, vip6(), rip6())
        } else {
            (mapped([203, client_tail[1], client_tail[2], client_tail[3]]), mapped(VIP4), mapped(RIP4))
        };
        let flags = if tcp { SYN } else { Flags::default() };
        let original = build(v6, tcp, client, cport, vip, VPORT, ttl, flags, &payload);
        let mut f = original.clone();
        let v = run(&e, 0, &mut f);
        let rip_ip = if v6 { ip6(rip) } else { ip4([rip[12], rip[13], rip[14], rip[15]]) };
        prop_assert_eq!(v, fwd(rip_ip));
        prop_assert!(checksums_ok(&f), "forward checksums");
        prop_assert_eq!(tuple(&f), (client, cport, rip, RPORT));
        // The real server answers with the mirrored tuple.
        let (s, sp, d, dp) = tuple(&f);
        let rflags = if tcp { SYNACK } else { Flags::default() };
        let mut reply = build(v6, tcp, d, dp, s, sp, 64, rflags, &payload);
        let v = run(&e, 1, &mut reply);
        let client_ip = if v6 { ip6(client) } else { ip4([client[12], client[13], client[14], client[15]]) };
        prop_assert_eq!(v, fwd(client_ip));
        prop_assert!(checksums_ok(&reply), "reply checksums");
        let (os, osp, od, odp) = tuple(&original);
        prop_assert_eq!(tuple(&reply), (od, odp, os, osp));
    }

    #[test]
    fn random_frames_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        partial in any::<bool>(),
    ) {
        let e = nat_engine();
        let mut f = bytes;
        let _ = e.handle(Millis(0), &mut PacketMeta { csum_partial: partial, ..Default::default() }, &mut f);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0usize..6,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        partial in any::<bool>(),
    ) {
        let e = nat_engine();
        // Establish connections so mutated frames hit the connection paths too.
        let mut a = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
        run(&e, 0, &mut a);
        let mut b = udp6(client6(), CPORT, vip6(), VPORT, 64, b"x");
        run(&e, 0, &mut b);
        let mut icmp = Vec::new();
        etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(CLIENT4, VIP4, 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut icmp, &l3(&tcp4(VIP4, VPORT, CLIENT4, CPORT, 60, ACK, b"data")))
            .expect("build");
        let mut icmp6 = Vec::new();
        etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(rip6(), client6(), 64)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
            .write(&mut icmp6, &l3(&udp6(client6(), CPORT, rip6(), RPORT, 63, b"q")))
            .expect("build");
        let frames = [
            tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"abc"),
            tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, ACK, b"abc"),
            udp6(client6(), CPORT, vip6(), VPORT, 64, b"abc"),
            udp6(rip6(), RPORT, client6(), CPORT, 64, b"abc"),
            icmp,
            icmp6,
        ];
        let mut f = frames[which].clone();
        for (pos, val) in flips {
            let n = f.len();
            f[pos % n] = val;
        }
        f.truncate(cut % (f.len() + 1));
        let _ = e.handle(Millis(5), &mut PacketMeta { csum_partial: partial, ..Default::default() }, &mut f);
    }
}
