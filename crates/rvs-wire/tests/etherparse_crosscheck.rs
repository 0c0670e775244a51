//! The views agree with an independent parser (etherparse) on generated packets, and the
//! quoted-packet constructors never panic.

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
