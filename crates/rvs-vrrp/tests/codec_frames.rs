//! Byte-exact adverts: keepalived's documented v2 layout (PASS auth, 224.0.0.18, TTL 255) and
//! the RFC 5798 v3 formats, checksums computed independently.

use rvs_vrrp::codec::{
    validate_ip_fields, Advert, Auth, IpContext, IpFieldError, IpFields, Version, IPPROTO_VRRP,
    MCAST_V4, MCAST_V6,
};
use rvs_vrrp::{AhError, AhSession, EmitError, ParseError};
use rvs_wire::ipv4::Packet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4ctx(src: &str) -> IpContext {
    IpContext {
        src: ip(src),
        dst: MCAST_V4.into(),
    }
}

/// Seed 002's LVS_WAN instance: vrid 100, priority 100, advert_int 1, PASS 1c7f545a.
const V2_PASS: [u8; 20] = [
    0x21, 0x64, 0x64, 0x01, 0x01, 0x01, 0xe6, 0xff, 0x71, 0xe2, 0x4d, 0x58, 0x31, 0x63, 0x37, 0x66,
    0x35, 0x34, 0x35, 0x61,
];

fn v2_pass_advert() -> Advert {
    Advert {
        version: Version::V2,
        vrid: 100,
        priority: 100,
        interval: 1,
        auth: Auth::pass("1c7f545a"),
        addrs: vec![ip("113.226.77.88")],
    }
}

#[test]
fn v2_pass_emits_keepalived_layout() {
    let bytes = v2_pass_advert().emit(&v4ctx("113.226.77.10")).unwrap();
    assert_eq!(bytes, V2_PASS);
}

#[test]
fn v2_pass_parses() {
    let a = Advert::parse(&V2_PASS, &v4ctx("113.226.77.10")).unwrap();
    assert_eq!(a, v2_pass_advert());
    assert_eq!(a.interval_duration(), Duration::from_secs(1));
}

#[test]
fn v2_checksum_does_not_depend_on_ip_addresses() {
    let other = IpContext {
        src: ip("10.1.1.1"),
        dst: ip("10.1.1.2"),
    };
    assert!(Advert::parse(&V2_PASS, &other).is_ok());
}

#[test]
fn long_password_is_cut_to_eight_bytes() {
    assert_eq!(Auth::pass("1c7f545aXYZ"), Auth::pass("1c7f545a"));
    assert_eq!(Auth::pass("ab"), Auth::Pass(*b"ab\0\0\0\0\0\0"));
}

#[test]
fn corrupted_v2_is_rejected() {
    let mut b = V2_PASS;
    b[2] = 101;
    assert_eq!(
        Advert::parse(&b, &v4ctx("1.1.1.1")),
        Err(ParseError::Checksum)
    );
    assert!(matches!(
        Advert::parse(&V2_PASS[..19], &v4ctx("1.1.1.1")),
        Err(ParseError::Length { .. })
    ));
    let mut t = V2_PASS;
    t[0] = 0x22;
    assert_eq!(
        Advert::parse(&t, &v4ctx("1.1.1.1")),
        Err(ParseError::Type(2))
    );
}

const V3_V4: [u8; 12] = [
    0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x06, 0x19, 0xc0, 0xa8, 0x01, 0x64,
];

fn v3_v4_advert() -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority: 100,
        interval: 100,
        auth: Auth::None,
        addrs: vec![ip("192.168.1.100")],
    }
}

#[test]
fn v3_ipv4_pseudo_header_checksum() {
    let ctx = v4ctx("192.168.1.10");
    assert_eq!(v3_v4_advert().emit(&ctx).unwrap(), V3_V4);
    assert_eq!(Advert::parse(&V3_V4, &ctx).unwrap(), v3_v4_advert());
    // The pseudo-header covers the source address.
    assert_eq!(
        Advert::parse(&V3_V4, &v4ctx("192.168.1.11")),
        Err(ParseError::Checksum)
    );
}

#[test]
fn v3_ipv4_unicast_checksum_uses_the_peer_address() {
    let ctx = IpContext {
        src: ip("192.168.1.10"),
        dst: ip("192.168.1.11"),
    };
    let b = v3_v4_advert().emit(&ctx).unwrap();
    assert_eq!(&b[6..8], &[0x24, 0x78]);
    assert!(Advert::parse(&b, &ctx).is_ok());
    // keepalived's old unicast checksum (computed with the group) is still accepted.
    assert!(Advert::parse(&V3_V4, &ctx).is_ok());
}

#[test]
fn v3_ipv6_frame() {
    let expected: [u8; 40] = [
        0x31, 0x01, 0xff, 0x02, 0x00, 0x64, 0xa3, 0x2e, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    ];
    let a = Advert {
        version: Version::V3,
        vrid: 1,
        priority: 255,
        interval: 100,
        auth: Auth::None,
        addrs: vec![ip("fe80::100"), ip("2001:db8::100")],
    };
    let ctx = IpContext {
        src: ip("fe80::1"),
        dst: MCAST_V6.into(),
    };
    assert_eq!(a.emit(&ctx).unwrap(), expected);
    assert_eq!(Advert::parse(&expected, &ctx).unwrap(), a);
}

#[test]
fn v3_centisecond_interval_and_reserved_bits() {
    let mut a = v3_v4_advert();
    a.interval = 0x0fff;
    assert_eq!(a.interval_duration(), Duration::from_millis(40_950));
    let ctx = v4ctx("192.168.1.10");
    assert!(a.emit(&ctx).is_ok());
    a.interval = 0x1000;
    assert!(a.emit(&ctx).is_err());
}

#[test]
fn emit_refuses_what_the_wire_cannot_carry() {
    let ctx6 = IpContext {
        src: ip("fe80::1"),
        dst: MCAST_V6.into(),
    };
    assert_eq!(v2_pass_advert().emit(&ctx6), Err(EmitError::V2OverIpv6));
    let mut a = v2_pass_advert();
    a.addrs = (0..256u32)
        .map(|i| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
        .collect();
    assert!(a.emit(&v4ctx("10.0.0.1")).is_err());
    let mut b = v3_v4_advert();
    b.auth = Auth::pass("x");
    assert!(b.emit(&v4ctx("10.0.0.1")).is_err());
}

/// The IP header fields and the VRRP message of a whole IPv4 datagram, as a raw socket
/// delivers it (the receive path takes the same fields from the kernel).
fn split_ipv4(bytes: &[u8]) -> (IpFields, &[u8], usize) {
    let p = Packet::new_checked(bytes).expect("IPv4 header");
    assert!(p.verify_checksum(), "IP header checksum");
    let ip = IpFields {
        src: p.src_addr().into(),
        dst: p.dst_addr().into(),
        ttl: p.ttl(),
        protocol: p.protocol(),
    };
    let at = p.header_len();
    (ip, &bytes[at..usize::from(p.total_len())], at)
}

#[test]
fn ipv4_datagram_with_header_rules() {
    let bytes: [u8; 40] = [
        0x45, 0xc0, 0x00, 0x28, 0x00, 0x00, 0x00, 0x00, 0xff, 0x70, 0xd0, 0x92, 0x0a, 0x00, 0x00,
        0x01, 0xe0, 0x00, 0x00, 0x12, 0x21, 0x07, 0x96, 0x01, 0x00, 0x01, 0x3e, 0x92, 0x0a, 0x00,
        0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let (fields, msg, _) = split_ipv4(&bytes);
    assert_eq!(fields.ttl, 255);
    assert_eq!(fields.protocol, IPPROTO_VRRP);
    let advert = Advert::parse(
        msg,
        &IpContext {
            src: fields.src,
            dst: fields.dst,
        },
    )
    .unwrap();
    assert_eq!(advert.vrid, 7);
    assert_eq!(advert.priority, 150);
    assert_eq!(advert.auth, Auth::None);
    assert_eq!(validate_ip_fields(&fields, false), Ok(()));
    let mut low = fields;
    low.ttl = 64;
    assert_eq!(validate_ip_fields(&low, false), Err(IpFieldError::Ttl(64)));
    assert_eq!(validate_ip_fields(&low, true), Ok(()));
    let wrong_dst = IpFields {
        dst: ip("10.0.0.2"),
        ..fields
    };
    assert!(validate_ip_fields(&wrong_dst, false).is_err());
}

#[test]
fn ipv4_datagram_with_keepalived_ah_header() {
    // IP header (proto 51) + AH (next 112, len 4, spi = source, seq 1, ICV) + v2 advert type 2.
    let advert = Advert {
        version: Version::V2,
        vrid: 9,
        priority: 100,
        interval: 1,
        auth: Auth::Ah,
        addrs: vec![ip("10.0.0.100")],
    };
    let msg = advert.emit(&v4ctx("10.0.0.1")).unwrap();
    let mut pkt = vec![0x45, 0xc0];
    pkt.extend_from_slice(&((20 + 24 + msg.len()) as u16).to_be_bytes());
    pkt.extend_from_slice(&[0, 1, 0, 0, 255, 51, 0, 0, 10, 0, 0, 1, 224, 0, 0, 18]);
    pkt.extend_from_slice(&[112, 4, 0, 0, 10, 0, 0, 1, 0, 0, 0, 1]);
    pkt.extend_from_slice(&[0xaa; 12]);
    pkt.extend_from_slice(&msg);
    // keepalived's layout, byte for byte outside the ICV and the IP header checksum.
    let src = Ipv4Addr::new(10, 0, 0, 1);
    let sealed = AhSession::new("pw").seal(src, MCAST_V4, &msg, false);
    assert_eq!(sealed.len(), pkt.len());
    assert_eq!(sealed[..10], pkt[..10]);
    assert_eq!(sealed[12..32], pkt[12..32]);
    assert_eq!(sealed[44..], pkt[44..]);
    // Opening finds the advert behind the AH header; the IP fields pass the header rules.
    let mut rx = AhSession::new("pw");
    let (fields, _, ihl) = split_ipv4(&sealed);
    assert_eq!(rx.open(&sealed, false), Ok(ihl + 24));
    assert_eq!(rx.sequence(), 1);
    assert_eq!(
        Advert::parse(&sealed[ihl + 24..], &v4ctx("10.0.0.1")).unwrap(),
        advert
    );
    assert_eq!(validate_ip_fields(&fields, false), Ok(()));
    // The hand-made datagram has a made-up ICV.
    assert_eq!(AhSession::new("pw").open(&pkt, false), Err(AhError::Icv));
}

#[test]
fn max_addresses_per_mtu() {
    use rvs_vrrp::codec::max_addrs_for_mtu;
    assert_eq!(max_addrs_for_mtu(1500, Version::V2, false, false), 255);
    assert_eq!(
        max_addrs_for_mtu(1500, Version::V3, true, false),
        (1500 - 48) / 16
    );
    assert_eq!(
        max_addrs_for_mtu(100, Version::V2, false, true),
        (100 - 20 - 24 - 16) / 4
    );
}
