//! The views agree with an independent parser (etherparse) on generated packets, the `Repr`s
//! emit the bytes etherparse builds, and the quoted-packet constructors never panic.

use etherparse::PacketBuilder;
use proptest::prelude::*;
use rvs_wire::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn ipv4_tcp_fields_match(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ttl in any::<u8>(),
        sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), win in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, ttl).tcp(sp, dp, seq, win).syn()
            .write(&mut f, &payload).expect("build");
        let eth = ethernet::Frame::new_checked(&f[..]).expect("eth");
        prop_assert_eq!(eth.ethertype(), ethernet::ETHERTYPE_IPV4);
        let ip = ipv4::Packet::new_checked(eth.payload()).expect("ip");
        prop_assert_eq!((ip.src_octets(), ip.dst_octets(), ip.ttl(), ip.protocol()), (src, dst, ttl, 6));
        prop_assert!(ip.verify_checksum());
        let t = tcp::Packet::new_checked(ip.payload()).expect("tcp");
        prop_assert_eq!((t.src_port(), t.dst_port(), t.seq_number(), t.window()), (sp, dp, seq, win));
        prop_assert!(t.flags().syn());
        prop_assert_eq!(t.payload(), &payload[..]);
        // Our pseudo-header + data sum verifies etherparse's checksum.
        let acc = checksum::pseudo_header_v4(src, dst, 6, ip.payload_len() as u32);
        prop_assert_eq!(checksum::fold(checksum::add_bytes(acc, ip.payload())), 0xffff);
    }

    #[test]
    fn ipv6_udp_fields_match(
        src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), hl in any::<u8>(),
        sp in any::<u16>(), dp in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6]).ipv6(src, dst, hl).udp(sp, dp)
            .write(&mut f, &payload).expect("build");
        let eth = ethernet::Frame::new_checked(&f[..]).expect("eth");
        let ip = ipv6::Packet::new_checked(eth.payload()).expect("ip");
        prop_assert_eq!((ip.src_octets(), ip.dst_octets(), ip.hop_limit()), (src, dst, hl));
        prop_assert_eq!((ip.upper_protocol(), ip.upper_offset()), (17, 40));
        let u = udp::Packet::new_checked(ip.upper_payload()).expect("udp");
        prop_assert_eq!((u.src_port(), u.dst_port(), u.len() as usize), (sp, dp, 8 + payload.len()));
        let acc = checksum::pseudo_header_v6(src, dst, 17, ip.upper_len() as u32);
        prop_assert_eq!(checksum::fold(checksum::add_bytes(acc, ip.upper_payload())), 0xffff);
    }

    #[test]
    fn reprs_emit_what_etherparse_builds(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ttl in any::<u8>(),
        src6 in any::<[u8; 16]>(), dst6 in any::<[u8; 16]>(),
        sp in any::<u16>(), dp in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        for v6 in [false, true] {
            let mut f = Vec::new();
            let b = PacketBuilder::ethernet2([1; 6], [2; 6]);
            let b = if v6 { b.ipv6(src6, dst6, ttl) } else { b.ipv4(src, dst, ttl) };
            b.udp(sp, dp).write(&mut f, &payload).expect("build");
            // Parse etherparse's frame with the views, emit it again with the Reprs.
            let eth = ethernet::Frame::new_checked(&f[..]).expect("eth");
            let mut out = vec![0u8; f.len()];
            ethernet::Repr::parse(&eth).emit(&mut out).expect("eth emit");
            let l3 = eth.l3_offset();
            let (l4, pseudo) = if v6 {
                let ip = ipv6::Packet::new_checked(eth.payload()).expect("ip6");
                ipv6::Repr::parse(&ip).emit(&mut out[l3..]).expect("ip6 emit");
                let len = ip.upper_len() as u32;
                (l3 + 40, checksum::pseudo_header_v6(src6, dst6, ip::UDP, len))
            } else {
                let ip = ipv4::Packet::new_checked(eth.payload()).expect("ip4");
                ipv4::Repr::parse(&ip).emit(&mut out[l3..]).expect("ip4 emit");
                let len = u32::from(ip.payload_len());
                (l3 + 20, checksum::pseudo_header_v4(src, dst, ip::UDP, len))
            };
            let u = udp::Packet::new_checked(&f[l4..]).expect("udp");
            let r = udp::Repr::parse(&u).expect("udp repr");
            udp::Repr { checksum: 0, ..r }.emit(&mut out[l4..]).expect("udp emit");
            out[l4 + 8..].copy_from_slice(&payload);
            let c = udp::checksum(pseudo, &[&out[l4..]]);
            prop_assert_eq!(c, r.checksum);
            udp::Packet::new_checked(&mut out[l4..]).expect("udp").set_checksum(c);
            prop_assert_eq!(&out, &f);
        }
    }

    #[test]
    fn quoted_views_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(mut p) = ipv4::Packet::new_checked_quoted(bytes.clone()) {
            let _ = (p.payload().len(), p.payload_len(), p.options().len(), p.verify_checksum());
            p.set_src_update_checksum([1, 2, 3, 4]);
            let _ = p.payload_mut().len();
        }
        if let Ok(mut p) = ipv6::Packet::new_checked_quoted(bytes) {
            let _ = (p.upper_payload().len(), p.upper_len(), p.upper_protocol(), p.fragment());
            p.set_dst_addr([9; 16]);
            let _ = p.upper_payload_mut().len();
        }
    }
}
