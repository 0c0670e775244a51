//! rvs-wire: every header view built from the same arbitrary bytes, all getters of the views
//! that check, and for the headers with a `Repr`, parse, emit and parse again giving the same
//! fields. An Ethernet frame is also walked down to its transport header as the engine does.

use rvs_wire::*;

/// Runs the target.
pub fn target(data: &[u8]) {
    views(data);
    reprs(data);
    walk(data);
}

fn views(b: &[u8]) {
    if let Ok(f) = ethernet::Frame::new_checked(b) {
        let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.outer_vlan_id());
        assert!(f.l3_offset() <= b.len() && f.payload().len() == b.len() - f.l3_offset());
    }
    if let Ok(p) = arp::Packet::new_checked(b) {
        let _ = (p.hardware_type(), p.protocol_type(), p.operation());
        let _ = (p.sender_hardware_addr(), p.sender_protocol_addr());
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
    }
    if let Ok(p) = ipv4::Packet::new_checked(b) {
        let _ = (
            p.version(),
            p.dscp_ecn(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
        );
        let _ = (
            p.frag_offset(),
            p.ttl(),
            p.protocol(),
            p.checksum(),
            p.src_addr(),
        );
        let _ = (
            p.dst_addr(),
            p.options(),
            p.verify_checksum(),
            p.payload_len(),
        );
        assert!(p.header_len() + p.payload().len() <= b.len());
    }
    let _ = ipv4::Packet::new_checked_quoted(b).map(|p| (p.payload().len(), p.protocol()));
    ipv6_getters(ipv6::Packet::new_checked(b));
    ipv6_getters(ipv6::Packet::new_checked_quoted(b));
    if let Ok(t) = tcp::Packet::new_checked(b) {
        let _ = (
            t.src_port(),
            t.dst_port(),
            t.seq_number(),
            t.ack_number(),
            t.flags(),
        );
        let _ = (t.window(), t.checksum(), t.urgent(), t.header_len());
        assert!(t.header_len() + t.payload().len() <= b.len());
    }
    if let Ok(u) = udp::Packet::new_checked(b) {
        let _ = (
            u.src_port(),
            u.dst_port(),
            u.len(),
            u.checksum(),
            u.payload(),
        );
    }
    if let Ok(p) = ports::Ports::new_checked(b) {
        let _ = (p.src_port(), p.dst_port());
    }
    if let Ok(s) = sctp::Packet::new_checked(b) {
        let _ = (
            s.src_port(),
            s.dst_port(),
            s.verification_tag(),
            s.checksum(),
        );
        let _ = (s.verify_checksum(), s.payload(), s.first_chunk_header());
        for c in s.chunks().take(1000).flatten() {
            let _ = (c.chunk_type(), c.flags(), c.length(), c.value());
        }
        for off in [0, 1, 4, b.len(), usize::MAX] {
            let _ = s.chunk_header_at(off);
            let _ = sctp::Packet::<&[u8]>::next_chunk_offset(off, u16::MAX);
        }
    }
    let _ = sctp::compute_checksum(b);
    if let Ok(i) = icmpv4::Packet::new_checked(b) {
        let _ = (
            i.msg_type(),
            i.code(),
            i.checksum(),
            i.rest_of_header(),
            i.is_error(),
        );
        let _ = (i.payload(), i.verify_checksum(), i.next_hop_mtu());
    }
    if let Ok(i) = icmpv6::Packet::new_checked(b) {
        let _ = (
            i.msg_type(),
            i.code(),
            i.checksum(),
            i.rest_of_header(),
            i.is_error(),
        );
        let _ = (i.payload(), i.verify_checksum([0; 16], [1; 16]));
        let _ = ndisc::NeighborAdvert::parse(&i);
    }
    if let Ok(g) = gre::Packet::new_checked(b) {
        let _ = (
            g.flags(),
            g.protocol_type(),
            g.checksum(),
            g.key(),
            g.sequence(),
        );
        let _ = (g.verify_checksum(), g.payload().len() + g.header_len());
    }
    if let Ok(g) = gue::Packet::new_checked(b) {
        let _ = (
            g.version(),
            g.control(),
            g.protocol(),
            g.flags(),
            g.private_flags(),
        );
        let _ = (g.remote_checksum(), g.payload().len() + g.header_len());
    }
}

fn ipv6_getters(p: Result<ipv6::Packet<&[u8]>>) {
    if let Ok(p) = p {
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
            p.fragment(),
            p.is_fragment(),
            p.upper_len(),
            p.upper_payload(),
        );
        assert!(p.upper_offset() <= p.total_len());
    }
}

/// `parse(emit(parse(b) ++ rest of b)) == parse(b)` for the headers with a `Repr`.
fn reprs(b: &[u8]) {
    if let Ok(f) = ethernet::Frame::new_checked(b) {
        let r = ethernet::Repr::parse(&f);
        let mut out = b[f.l3_offset()..].to_vec();
        out.splice(0..0, r.to_bytes());
        let back = ethernet::Frame::new_checked(&out[..]).map(|f| ethernet::Repr::parse(&f));
        assert_eq!(back, Ok(r), "ethernet");
    }
    if let Ok(r) = arp::Packet::new_checked(b).and_then(|p| arp::Repr::parse(&p)) {
        let mut out = b.to_vec();
        r.emit(&mut out).expect("arp emit");
        let back = arp::Packet::new_checked(&out[..]).and_then(|p| arp::Repr::parse(&p));
        assert_eq!(back, Ok(r), "arp");
    }
    if let Ok(p) = ipv4::Packet::new_checked(b) {
        let r = ipv4::Repr::parse(&p);
        let mut out = vec![0; r.header_len()];
        out.extend_from_slice(p.payload());
        r.emit(&mut out).expect("ipv4 emit");
        let back = ipv4::Packet::new_checked(&out[..]).map(|p| ipv4::Repr::parse(&p));
        assert_eq!(back, Ok(r), "ipv4");
    }
    if let Ok(p) = ipv6::Packet::new_checked(b) {
        let r = ipv6::Repr::parse(&p);
        let mut out = b.to_vec();
        r.emit(&mut out).expect("ipv6 emit");
        let back = ipv6::Packet::new_checked(&out[..]).map(|p| ipv6::Repr::parse(&p));
        assert_eq!(back, Ok(r), "ipv6");
    }
    if let Ok(r) = udp::Packet::new_checked(b).and_then(|p| udp::Repr::parse(&p)) {
        let mut out = b.to_vec();
        r.emit(&mut out).expect("udp emit");
        let back = udp::Packet::new_checked(&out[..]).and_then(|p| udp::Repr::parse(&p));
        assert_eq!(back, Ok(r), "udp");
    }
    if let Ok(p) = gre::Packet::new_checked(b) {
        if let Ok(r) = gre::Repr::parse(&p) {
            let mut out = vec![0; p.header_len()];
            out.extend_from_slice(p.payload());
            if r.emit(&mut out, p.payload()).is_ok() {
                let back = gre::Packet::new_checked(&out[..]).and_then(|p| gre::Repr::parse(&p));
                assert_eq!(back, Ok(r), "gre");
            }
        }
    }
    if let Ok(r) = gue::Packet::new_checked(b).and_then(|p| gue::Repr::parse(&p)) {
        let mut out = b.to_vec();
        if r.emit(&mut out).is_ok() {
            let back = gue::Packet::new_checked(&out[..]).and_then(|p| gue::Repr::parse(&p));
            assert_eq!(back, Ok(r), "gue");
        }
    }
    if let Ok(i) = icmpv4::Packet::new_checked(b) {
        let r = icmpv4::Repr::parse(&i);
        let mut out = b.to_vec();
        r.emit(&mut out, i.payload()).expect("icmpv4 emit");
        let back = icmpv4::Packet::new_checked(&out[..]).map(|p| icmpv4::Repr::parse(&p));
        assert_eq!(back, Ok(r), "icmpv4");
        assert!(icmpv4::Packet::new_checked(&out[..]).is_ok_and(|p| p.verify_checksum()));
    }
}

/// Ethernet -> IP -> transport, as the data path reads a frame.
fn walk(b: &[u8]) {
    let Ok(f) = ethernet::Frame::new_checked(b) else {
        return;
    };
    let l3 = f.payload();
    match f.ethertype() {
        ethernet::ETHERTYPE_IPV4 => {
            if let Ok(p) = ipv4::Packet::new_checked(l3) {
                views(p.payload());
            }
        }
        ethernet::ETHERTYPE_IPV6 => {
            if let Ok(p) = ipv6::Packet::new_checked(l3) {
                views(p.upper_payload());
            }
        }
        _ => {}
    }
}
