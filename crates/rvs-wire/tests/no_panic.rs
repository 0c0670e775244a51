//! Property test: no view panics on any input, and getters of checked views never panic.

use proptest::prelude::*;
use rvs_wire::*;

fn exercise(bytes: &[u8]) {
    if let Ok(f) = ethernet::Frame::new_checked(bytes) {
        let _ = (
            f.dst_addr(),
            f.src_addr(),
            f.ethertype(),
            f.l3_offset(),
            f.outer_vlan_id(),
        );
        let _ = f.payload().len();
    }
    if let Ok(a) = arp::Packet::new_checked(bytes) {
        let _ = (a.hardware_type(), a.protocol_type(), a.operation());
        let _ = (a.sender_hardware_addr(), a.sender_protocol_addr());
        let _ = (a.target_hardware_addr(), a.target_protocol_addr());
    }
    if let Ok(p) = ipv4::Packet::new_checked(bytes) {
        let _ = (
            p.version(),
            p.header_len(),
            p.dscp_ecn(),
            p.total_len(),
            p.ident(),
        );
        let _ = (
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.ttl(),
            p.protocol(),
        );
        let _ = (p.checksum(), p.src_addr(), p.dst_addr(), p.options().len());
        let _ = (p.verify_checksum(), p.payload().len(), p.payload_len());
    }
    if let Ok(p) = ipv6::Packet::new_checked(bytes) {
        let _ = (
            p.traffic_class(),
            p.flow_label(),
            p.payload_len(),
            p.next_header(),
        );
        let _ = (
            p.hop_limit(),
            p.src_addr(),
            p.dst_addr(),
            p.upper_protocol(),
        );
        let _ = (
            p.upper_offset(),
            p.fragment(),
            p.upper_len(),
            p.upper_payload().len(),
        );
    }
    if let Ok(t) = tcp::Packet::new_checked(bytes) {
        let _ = (
            t.src_port(),
            t.dst_port(),
            t.seq_number(),
            t.ack_number(),
            t.flags(),
        );
        let _ = (t.window(), t.checksum(), t.urgent(), t.payload().len());
    }
    if let Ok(u) = udp::Packet::new_checked(bytes) {
        let _ = (
            u.src_port(),
            u.dst_port(),
            u.len(),
            u.checksum(),
            u.payload().len(),
        );
    }
    if let Ok(p) = ports::Ports::new_checked(bytes) {
        let _ = (p.src_port(), p.dst_port());
    }
    if let Ok(s) = sctp::Packet::new_checked(bytes) {
        let _ = (
            s.src_port(),
            s.dst_port(),
            s.verification_tag(),
            s.checksum(),
        );
        let _ = (
            s.verify_checksum(),
            s.payload().len(),
            s.first_chunk_header(),
        );
        for c in s.chunks().flatten() {
            let _ = (c.chunk_type(), c.flags(), c.length(), c.value().len());
        }
        for off in [0, 1, 4, usize::MAX] {
            let _ = s.chunk_header_at(off);
            let _ = sctp::Packet::<&[u8]>::next_chunk_offset(off, u16::MAX);
        }
    }
    let _ = sctp::compute_checksum(bytes);
    if let Ok(i) = icmpv4::Packet::new_checked(bytes) {
        let _ = (
            i.msg_type(),
            i.code(),
            i.checksum(),
            i.rest_of_header(),
            i.is_error(),
        );
        let _ = (i.payload().len(), i.verify_checksum(), i.next_hop_mtu());
    }
    if let Ok(i) = icmpv6::Packet::new_checked(bytes) {
        let _ = (
            i.msg_type(),
            i.code(),
            i.checksum(),
            i.rest_of_header(),
            i.is_error(),
        );
        let _ = (i.payload().len(), i.verify_checksum([0; 16], [0; 16]));
        let _ = (icmpv6::Repr::parse(&i), ndisc::NeighborAdvert::parse(&i));
    }
    if let Ok(g) = gre::Packet::new_checked(bytes) {
        let _ = (g.flags(), g.protocol_type(), g.header_len(), g.checksum());
        let _ = (
            g.key(),
            g.sequence(),
            g.verify_checksum(),
            g.payload().len(),
        );
        let _ = gre::Repr::parse(&g);
    }
    if let Ok(g) = gue::Packet::new_checked(bytes) {
        let _ = (g.version(), g.control(), g.header_len(), g.protocol());
        let _ = (g.flags(), g.private_flags(), g.remote_checksum());
        let _ = (g.payload().len(), gue::Repr::parse(&g));
    }
    // Unchecked constructors never panic themselves.
    let _ = ipv4::Packet::new_unchecked(bytes);
    let _ = ipv6::Packet::new_unchecked(bytes);
}

fn exercise_mut(mut bytes: Vec<u8>) {
    if let Ok(mut p) = ipv4::Packet::new_checked(&mut bytes[..]) {
        p.set_ttl_update_checksum(1);
        p.set_dst_update_checksum([1, 2, 3, 4]);
        p.fill_checksum();
        let _ = p.payload_mut().len();
    }
    if let Ok(mut p) = ipv6::Packet::new_checked(&mut bytes[..]) {
        p.set_hop_limit(1);
        p.set_src_addr([1; 16]);
        let _ = p.upper_payload_mut().len();
    }
    if let Ok(mut t) = tcp::Packet::new_checked(&mut bytes[..]) {
        t.set_dst_port(1);
        t.set_checksum(2);
    }
    if let Ok(mut i) = icmpv6::Packet::new_checked(&mut bytes[..]) {
        i.fill_checksum([1; 16], [2; 16]);
    }
    if let Ok(mut s) = sctp::Packet::new_checked(&mut bytes[..]) {
        s.set_src_port(1);
        s.set_dst_port(2);
        s.set_verification_tag(3);
        s.fill_checksum();
        assert!(s.verify_checksum());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        exercise(&bytes);
        exercise_mut(bytes);
    }

    #[test]
    fn plausible_headers_never_panic(
        first in prop_oneof![Just(0x45u8), Just(0x4fu8), Just(0x60u8), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut bytes = vec![first];
        bytes.extend_from_slice(&rest);
        exercise(&bytes);
        exercise_mut(bytes);
    }
}
