//! Fragments through the engine: a fragmented UDP datagram to a NAT service is reassembled,
//! scheduled and rewritten as one, and so is a fragmented reply from the real server;
//! fragments of traffic the engine does not handle go to the kernel; refused fragments count.

mod common;

use common::*;
use rvs_engine::fragment::split;
use rvs_engine::reasm::Reassembled;
use rvs_engine::{DropReason, Engine, Millis, PacketMeta, Verdict};

/// The frame's IP packet cut into fragments of at most `max` bytes, as frames.
fn cut(frame: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    split(&frame[14..], max, 77, |h, d| {
        let mut f = frame[..14].to_vec();
        f.extend_from_slice(h);
        f.extend_from_slice(d);
        out.push(f);
    })
    .expect("split");
    out
}

/// Runs the fragments through `handle` and `reassemble` as a data plane does; returns the
/// whole datagram after the last.
fn gather(e: &Engine, frags: &mut [Vec<u8>]) -> Option<Reassembled> {
    let mut whole = None;
    for f in frags.iter_mut() {
        assert_eq!(run(e, 5, f), Verdict::Reassemble);
        assert!(whole.is_none(), "completed before the last fragment");
        whole = e.reassemble(Millis(5), f);
    }
    whole
}

#[test]
fn nat_udp_datagrams_are_reassembled_both_ways_v4() {
    let e = nat_engine();
    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let request = udp4(CLIENT4, CPORT, VIP4, VPORT, 64, &payload);
    let mut frags = cut(&request, 1500);
    assert_eq!(frags.len(), 3);
    let mut whole = gather(&e, &mut frags).expect("whole");
    assert_eq!(whole.frame, request);
    assert_eq!(whole.max_fragment, 1500);
    let meta = &mut PacketMeta::default();
    assert_eq!(e.handle(Millis(5), meta, &mut whole.frame), fwd(ip4(RIP4)));
    assert_eq!(
        l3(&whole.frame),
        l3(&udp4(CLIENT4, CPORT, RIP4, RPORT, 63, &payload))
    );
    assert!(checksums_ok(&whole.frame));

    let reply = udp4(RIP4, RPORT, CLIENT4, CPORT, 64, &payload);
    let mut frags = cut(&reply, 1400);
    let mut whole = gather(&e, &mut frags).expect("whole reply");
    assert_eq!(whole.max_fragment, 1396);
    assert_eq!(
        e.handle(Millis(5), meta, &mut whole.frame),
        fwd(ip4(CLIENT4))
    );
    assert_eq!(
        l3(&whole.frame),
        l3(&udp4(VIP4, VPORT, CLIENT4, CPORT, 63, &payload))
    );
    let (stats, held) = e.reassembly();
    assert_eq!(stats.reassembled, 2);
    assert_eq!(stats.fragments, 6);
    assert_eq!(held.datagrams, 0);
}

#[test]
fn nat_udp_datagrams_are_reassembled_both_ways_v6() {
    let e = nat_engine();
    let payload: Vec<u8> = (0..4000u32).map(|i| (i * 3) as u8).collect();
    let request = udp6(client6(), CPORT, vip6(), VPORT, 64, &payload);
    let mut frags = cut(&request, 1280);
    // Out of order.
    frags.reverse();
    let mut whole = gather(&e, &mut frags).expect("whole");
    assert_eq!(whole.frame, request);
    let meta = &mut PacketMeta::default();
    assert_eq!(
        e.handle(Millis(5), meta, &mut whole.frame),
        fwd(ip6(rip6()))
    );
    assert_eq!(
        l3(&whole.frame),
        l3(&udp6(client6(), CPORT, rip6(), RPORT, 63, &payload))
    );
    let reply = udp6(rip6(), RPORT, client6(), CPORT, 64, &payload);
    let mut frags = cut(&reply, 1500);
    let mut whole = gather(&e, &mut frags).expect("whole reply");
    assert_eq!(
        e.handle(Millis(5), meta, &mut whole.frame),
        fwd(ip6(client6()))
    );
    assert_eq!(
        l3(&whole.frame),
        l3(&udp6(vip6(), VPORT, client6(), CPORT, 63, &payload))
    );
}

#[test]
fn fragments_of_other_traffic_go_to_the_kernel() {
    let e = nat_engine();
    let other = udp4(CLIENT4, CPORT, ROUTER4, 53, 64, &[7u8; 3000]);
    let frags = cut(&other, 1500);
    assert_eq!(frags.len(), 3);
    for mut f in frags {
        assert_eq!(run(&e, 0, &mut f), Verdict::PassToKernel);
    }
}

#[test]
fn refused_fragments_are_counted() {
    let e = nat_engine();
    let request = udp4(CLIENT4, CPORT, VIP4, VPORT, 64, &[1u8; 3000]);
    let frags = cut(&request, 1500);
    let mut first = frags[0].clone();
    assert_eq!(run(&e, 0, &mut first), Verdict::Reassemble);
    assert!(e.reassemble(Millis(0), &first).is_none());
    // The same first fragment with different data length: overlaps itself.
    let mut shorter = cut(&request, 1000)[0].clone();
    assert_eq!(run(&e, 0, &mut shorter), Verdict::Reassemble);
    assert!(e.reassemble(Millis(0), &shorter).is_none());
    assert_eq!(e.drop_counters().get(DropReason::Fragmented), 1);
    assert_eq!(e.reassembly().0.invalid, 1);
}

/// A real server's own datagram (to a client, from a port no service has): reassembled, then
/// left to the kernel; the engine says its source is a NAT real server of UDP services, whose
/// fragments the data plane kept from the kernel and must hand back.
#[test]
fn a_real_servers_own_datagram_is_left_to_the_kernel_and_its_source_known() {
    let e = nat_engine();
    let own = udp4(RIP4, 7000, CLIENT4, 7777, 64, &[9u8; 3000]);
    let mut frags = cut(&own, 1000);
    let whole = gather(&e, &mut frags).expect("whole");
    let mut frame = whole.frame.clone();
    assert_eq!(run(&e, 0, &mut frame), Verdict::PassToKernel);
    for proto in [6, 17] {
        assert!(e.is_nat_source(ip4(RIP4), proto), "protocol {proto}");
    }
    assert!(!e.is_nat_source(ip4(RIP4), 132));
    assert!(!e.is_nat_source(ip4(CLIENT4), 17));
    // Direct-routing real servers' traffic never comes back through the director.
    assert!(!dr_engine().is_nat_source(ip4(RIP4), 17));
    // A firewall-mark service's real servers: the protocols of its mark's rules.
    let f = nat_engine();
    let marked = rvs_engine::ServiceKey::fwmark(9, false);
    f.add_service(svc(marked, rvs_engine::SchedulerKind::Rr))
        .expect("service");
    f.add_dest(&marked, dest(ip4(RIP4B), 0, 1)).expect("dest");
    f.add_mark_rule(rvs_engine::MarkRule {
        proto: rvs_engine::Protocol::Sctp,
        addr: ip4([10, 99, 2, 0]),
        prefix_len: 24,
        ports: (1, 65535),
        mark: 9,
    })
    .expect("mark rule");
    assert!(f.is_nat_source(ip4(RIP4B), 132));
    assert!(!f.is_nat_source(ip4(RIP4B), 17));
}

/// A datagram whose other fragments never come: at its timeout (the engine's default, 30 s)
/// the first fragment is given back once, as it came (IPv6 with its fragment header), for the
/// ICMP "fragment reassembly time exceeded" the director sends its sender: from the VIP it was
/// sent to, quoting it. A reply's datagram (to a client, not a VIP) says so; a datagram whose
/// first fragment never came gives nothing.
#[test]
fn timed_out_datagrams_give_their_first_fragment_for_icmp() {
    for v6 in [false, true] {
        let e = nat_engine();
        let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let (request, reply) = if v6 {
            (
                udp6(client6(), CPORT, vip6(), VPORT, 64, &payload),
                udp6(rip6(), RPORT, client6(), CPORT, 64, &payload),
            )
        } else {
            (
                udp4(CLIENT4, CPORT, VIP4, VPORT, 64, &payload),
                udp4(RIP4, RPORT, CLIENT4, CPORT, 64, &payload),
            )
        };
        let mut frags = cut(&request, 1280);
        let first = frags[0].clone();
        assert_eq!(run(&e, 5, &mut frags[0]), Verdict::Reassemble);
        assert!(e.reassemble(Millis(5), &frags[0]).is_none());
        // Of the reply, only a later fragment came.
        let mut reply_frags = cut(&reply, 1280);
        assert_eq!(run(&e, 5, &mut reply_frags[1]), Verdict::Reassemble);
        assert!(e.reassemble(Millis(5), &reply_frags[1]).is_none());
        e.expire(Millis(29_000));
        assert!(e.reassembly_timeouts().is_empty(), "not before its time");
        e.expire(Millis(30_010));
        let timed_out = e.reassembly_timeouts();
        assert_eq!(
            timed_out.len(),
            1,
            "{v6}: only the datagram whose first fragment came"
        );
        let t = &timed_out[0];
        assert!(t.to_virtual);
        // The first fragment as it came, cut short.
        assert_eq!(t.packet[..], first[14..14 + t.packet.len()], "{v6}");
        assert!(t.packet.len() > 512);
        assert_eq!(e.reassembly().0.timeouts, 2);
        assert!(e.reassembly_timeouts().is_empty(), "given once");

        let mut icmp = Vec::new();
        let to = rvs_engine::tunnel::reassembly_timeout_from(&t.packet, None, 7, &mut icmp)
            .expect("an error");
        let frame = [&first[..14], &icmp[..]].concat();
        assert!(checksums_ok_icmp(&frame), "{v6}: the error's checksums");
        if v6 {
            assert_eq!(to, ip6(client6()));
            assert_eq!(icmp[8..24], vip6(), "from the VIP");
            assert_eq!(
                (icmp[40], icmp[41]),
                (3, 1),
                "ICMPv6 time exceeded, reassembly"
            );
            assert_eq!(icmp[48..], t.packet[..icmp.len() - 48]);
        } else {
            assert_eq!(to, ip4(CLIENT4));
            assert_eq!(icmp[12..16], VIP4, "from the VIP");
            assert_eq!(
                (icmp[20], icmp[21]),
                (11, 1),
                "ICMP time exceeded, reassembly"
            );
            assert_eq!(icmp[28..], t.packet[..icmp.len() - 28]);
        }
    }
}

/// The IPv4 header and ICMP/ICMPv6 checksums of an Ethernet frame holding an ICMP message.
fn checksums_ok_icmp(frame: &[u8]) -> bool {
    use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
    let Ok(h) = PacketHeaders::from_ethernet_slice(frame) else {
        return false;
    };
    let payload = h.payload.slice();
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Icmpv4(i))) => {
            ip.calc_header_checksum() == ip.header_checksum
                && i.icmp_type.calc_checksum(payload) == i.checksum
        }
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Icmpv6(i))) => {
            i.icmp_type
                .calc_checksum(ip.source, ip.destination, payload)
                .ok()
                == Some(i.checksum)
        }
        _ => false,
    }
}
