//! Tunnelling (`-i`): the verdict, outer headers (IPIP, GUE, GRE) byte for byte, the path-MTU
//! ICMP errors, and software segmentation of GSO frames.

mod common;

use std::net::IpAddr;

use common::*;
use rvs_engine::gso::{self, GsoKind};
use rvs_engine::tunnel::{self, PartialCsum};
use rvs_engine::*;

const DIP4: [u8; 4] = [10, 0, 0, 8];

fn tun_dest(addr: IpAddr, cfg: TunnelConfig) -> DestSpec {
    DestSpec {
        method: ForwardMethod::Tunnel,
        tunnel: cfg,
        ..dest(addr, 0, 1)
    }
}

fn gue(port: u16, checksum: TunnelChecksum) -> TunnelConfig {
    TunnelConfig {
        kind: TunnelKind::Gue,
        port,
        checksum,
    }
}

/// Ones-complement sum, folded (an independent implementation for the checks).
fn fold_sum(parts: &[&[u8]]) -> u16 {
    let mut acc: u64 = 0;
    let joined: Vec<u8> = parts.concat();
    for c in joined.chunks(2) {
        acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn pseudo4(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

#[test]
fn tunnel_dest_encapsulates_and_keeps_the_packet() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("svc");
    let cfg = gue(6080, TunnelConfig::default().checksum);
    e.add_dest(&k, tun_dest(ip4(RIP4), cfg)).expect("dest");
    let mut f = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    let before = f.clone();
    assert_eq!(
        run(&e, 0, &mut f),
        Verdict::Encapsulate {
            next_hop_ip: ip4(RIP4),
            l3_offset: 14,
            tunnel: cfg
        }
    );
    assert_eq!(f, before, "the inner packet is untouched");
    let mut ack = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[]);
    assert!(matches!(run(&e, 1, &mut ack), Verdict::Encapsulate { .. }));
    // A reply from the real server is not matched (input-only, as DR).
    let mut reply = tcp4(RIP4, VPORT, CLIENT4, CPORT, 64, SYNACK, &[]);
    assert_eq!(run(&e, 2, &mut reply), Verdict::PassToKernel);
    // The settings come back in the listing.
    let listed = e.services(Millis(3));
    assert_eq!(listed[0].dests[0].spec.tunnel, cfg);
    assert_eq!(listed[0].dests[0].spec.method, ForwardMethod::Tunnel);
}

#[test]
fn port_mapping_and_gue_without_port_are_refused() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("svc");
    let mapped = DestSpec {
        port: 8080,
        ..tun_dest(ip4(RIP4), TunnelConfig::default())
    };
    assert!(matches!(
        e.add_dest(&k, mapped),
        Err(EngineError::InvalidArgument(m)) if m.contains("port mapping")
    ));
    let no_port = tun_dest(ip4(RIP4), gue(0, TunnelChecksum::NoCsum));
    assert!(e.add_dest(&k, no_port).is_err());
}

#[test]
fn ipip_v4_in_v4_bytes() {
    let inner = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 63, SYN, &[]));
    let outer = tunnel::outer_header(
        &TunnelConfig::default(),
        ip4(DIP4),
        ip4(RIP4),
        &inner,
        7,
        None,
    )
    .expect("outer");
    let len = (20 + inner.len()) as u16;
    let mut want = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 63, 4, 0, 0];
    want[2..4].copy_from_slice(&len.to_be_bytes());
    // etherparse sets DF? it does not: id comes from `ident`, no DF.
    if inner[6] & 0x40 != 0 {
        want[6] = 0x40;
    } else {
        want[4..6].copy_from_slice(&7u16.to_be_bytes());
    }
    want.extend_from_slice(&DIP4);
    want.extend_from_slice(&RIP4);
    let c = !fold_sum(&[&want]);
    want[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(outer.as_bytes(), &want[..]);
}

#[test]
fn ipip_copies_df_tos_ecn_and_ttl() {
    let mut inner = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 50, ACK, b"x"));
    inner[1] = 0xbb; // DSCP 46, ECN CE
    inner[6] |= 0x40;
    let outer = tunnel::outer_header(
        &TunnelConfig::default(),
        ip4(DIP4),
        ip4(RIP4),
        &inner,
        7,
        None,
    )
    .expect("outer");
    let b = outer.as_bytes();
    assert_eq!(b[1], 0xba, "CE becomes ECT(0)");
    assert_eq!((b[4], b[5], b[6]), (0, 0, 0x40), "DF copied, id 0");
    assert_eq!(b[8], 50);
}

#[test]
fn ipip_v6_in_v6_bytes() {
    let inner = l3(&tcp6(client6(), CPORT, vip6(), VPORT, 61, SYN, &[]));
    let dip6 = v6("fd00:1::8");
    let outer = tunnel::outer_header(
        &TunnelConfig::default(),
        ip6(dip6),
        ip6(rip6()),
        &inner,
        7,
        None,
    )
    .expect("outer");
    let mut want = vec![0x60, 0, 0, 0];
    want.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    want.extend_from_slice(&[41, 61]);
    want.extend_from_slice(&dip6);
    want.extend_from_slice(&rip6());
    assert_eq!(outer.as_bytes(), &want[..]);
    // v4 inside v6 is protocol 4.
    let inner4 = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 63, SYN, &[]));
    let o = tunnel::outer_header(
        &TunnelConfig::default(),
        ip6(dip6),
        ip6(rip6()),
        &inner4,
        7,
        None,
    )
    .expect("outer");
    assert_eq!(o.as_bytes()[6], 4);
    assert_eq!(
        tunnel::outer_header(
            &TunnelConfig::default(),
            ip4(DIP4),
            ip6(rip6()),
            &inner4,
            7,
            None
        ),
        Err(tunnel::TunnelError::FamilyMismatch)
    );
}

#[test]
fn gue_without_and_with_checksum() {
    let inner = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 63, ACK, b"hello"));
    for mode in [TunnelChecksum::NoCsum, TunnelChecksum::Csum] {
        let outer = tunnel::outer_header(&gue(6080, mode), ip4(DIP4), ip4(RIP4), &inner, 7, None)
            .expect("outer");
        let b = outer.as_bytes();
        assert_eq!(b.len(), 32);
        assert_eq!(b[9], 17);
        let sport = u16::from_be_bytes([b[20], b[21]]);
        assert!((32768..61000).contains(&sport), "{sport}");
        assert_eq!(&b[22..24], &6080u16.to_be_bytes());
        let udp_len = 8 + 4 + inner.len();
        assert_eq!(&b[24..26], &(udp_len as u16).to_be_bytes());
        assert_eq!(&b[28..32], &[0, 4, 0, 0], "GUE v0, hlen 0, proto IPIP");
        let check = u16::from_be_bytes([b[26], b[27]]);
        match mode {
            TunnelChecksum::NoCsum => assert_eq!(check, 0),
            _ => assert_eq!(
                fold_sum(&[&pseudo4(DIP4, RIP4, 17, udp_len), &b[20..], &inner]),
                0xffff
            ),
        }
        assert_eq!(fold_sum(&[&b[..20]]), 0xffff, "outer IPv4 checksum");
    }
    // The same flow always gets the same source port.
    let a = tunnel::outer_header(
        &gue(6080, TunnelChecksum::NoCsum),
        ip4(DIP4),
        ip4(RIP4),
        &inner,
        1,
        None,
    )
    .expect("a");
    let b = tunnel::outer_header(
        &gue(6080, TunnelChecksum::NoCsum),
        ip4(DIP4),
        ip4(RIP4),
        &inner,
        2,
        None,
    )
    .expect("b");
    assert_eq!(a.as_bytes()[20..22], b.as_bytes()[20..22]);
}

#[test]
fn gue_remote_checksum_option() {
    let inner = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 63, ACK, b"hello"));
    let partial = PartialCsum {
        start: 20,
        offset: 16,
    };
    let outer = tunnel::outer_header(
        &gue(6080, TunnelChecksum::RemCsum),
        ip4(DIP4),
        ip4(RIP4),
        &inner,
        7,
        Some(partial),
    )
    .expect("outer");
    let b = outer.as_bytes();
    assert_eq!(b.len(), 40);
    assert_eq!(&b[28..40], &[2, 4, 0, 1, 0x80, 0, 0, 0, 0, 20, 0, 36]);
    assert_eq!(
        tunnel::overhead(&gue(6080, TunnelChecksum::RemCsum), false, true),
        40
    );
}

#[test]
fn gre_plain_and_with_checksum() {
    let inner = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 63, ACK, b"hello"));
    let plain = TunnelConfig {
        kind: TunnelKind::Gre,
        port: 0,
        checksum: TunnelChecksum::NoCsum,
    };
    let o = tunnel::outer_header(&plain, ip4(DIP4), ip4(RIP4), &inner, 7, None).expect("plain");
    assert_eq!(o.as_bytes()[9], 47);
    assert_eq!(&o.as_bytes()[20..], &[0, 0, 0x08, 0x00]);
    let csum = TunnelConfig {
        checksum: TunnelChecksum::Csum,
        ..plain
    };
    let o = tunnel::outer_header(&csum, ip4(DIP4), ip4(RIP4), &inner, 7, None).expect("csum");
    let b = o.as_bytes();
    assert_eq!(b.len(), 28);
    assert_eq!(&b[20..22], &[0x80, 0]);
    assert_eq!(&b[22..24], &[0x08, 0x00]);
    assert_eq!(fold_sum(&[&b[20..], &inner]), 0xffff);
    let inner6 = l3(&tcp6(client6(), CPORT, vip6(), VPORT, 61, SYN, &[]));
    let o = tunnel::outer_header(&plain, ip6(v6("fd00::8")), ip6(rip6()), &inner6, 7, None)
        .expect("v6");
    assert_eq!(&o.as_bytes()[40..], &[0, 0, 0x86, 0xdd]);
    assert_eq!(o.as_bytes()[6], 47);
}

#[test]
fn path_mtu_rules() {
    // DF IPv4 and IPv6 are refused with the room left; non-DF IPv4 may go.
    assert_eq!(
        tunnel::path_mtu_exceeded(false, true, 1500, 1500, 20),
        Some(1480)
    );
    assert_eq!(
        tunnel::path_mtu_exceeded(false, false, 1500, 1500, 20),
        None
    );
    assert_eq!(
        tunnel::path_mtu_exceeded(true, false, 1500, 1500, 40),
        Some(1460)
    );
    assert_eq!(tunnel::path_mtu_exceeded(false, true, 1480, 1500, 20), None);
}

#[test]
fn frag_needed_reply_bytes() {
    let mut inner = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 63, ACK, &[7u8; 1000]));
    inner[6] |= 0x40;
    let mut out = Vec::new();
    let to = tunnel::too_big(&inner, 1480, 9, &mut out).expect("reply");
    assert_eq!(to, ip4(CLIENT4));
    assert_eq!(out.len(), 576);
    assert_eq!(&out[..2], &[0x45, 0xc0]);
    assert_eq!(&out[2..4], &576u16.to_be_bytes());
    assert_eq!((out[8], out[9]), (64, 1));
    assert_eq!(
        &out[12..16],
        &VIP4,
        "from the VIP, as icmp_send picks a local address"
    );
    assert_eq!(&out[16..20], &CLIENT4);
    assert_eq!(fold_sum(&[&out[..20]]), 0xffff);
    assert_eq!(&out[20..22], &[3, 4]);
    assert_eq!(&out[24..28], &[0, 0, 0x05, 0xc8]);
    assert_eq!(fold_sum(&[&out[20..]]), 0xffff);
    assert_eq!(&out[28..], &inner[..548]);

    let inner6 = l3(&tcp6(
        client6(),
        CPORT,
        vip6(),
        VPORT,
        61,
        ACK,
        &[7u8; 1400],
    ));
    let to = tunnel::too_big(&inner6, 1460, 9, &mut out).expect("reply6");
    assert_eq!(to, ip6(client6()));
    assert_eq!(out.len(), 1280);
    assert_eq!((out[6], out[7]), (58, 64));
    assert_eq!(&out[8..24], &vip6());
    assert_eq!(&out[40..48], &[2, 0, out[42], out[43], 0, 0, 0x05, 0xb4]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&vip6());
    pseudo.extend_from_slice(&client6());
    pseudo.extend_from_slice(&(1240u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    assert_eq!(fold_sum(&[&pseudo, &out[40..]]), 0xffff);
    // Never about ICMP itself.
    let mut icmp = inner.clone();
    icmp[9] = 1;
    assert_eq!(tunnel::too_big(&icmp, 1480, 9, &mut out), None);
}

#[test]
fn complete_checksum_finishes_a_partial_tcp_checksum() {
    let mut f = tcp4(CLIENT4, CPORT, VIP4, VPORT, 63, ACK, b"partial checksum");
    let mut ip = l3(&f);
    // Put the pseudo-header sum in the field, as CHECKSUM_PARTIAL frames carry it.
    let tcp_len = ip.len() - 20;
    let pseudo = fold_sum(&[&pseudo4(CLIENT4, VIP4, 6, tcp_len)]);
    ip[36..38].copy_from_slice(&pseudo.to_be_bytes());
    assert!(tunnel::complete_checksum(&mut ip, 20, 16));
    f[14..].copy_from_slice(&ip);
    assert!(checksums_ok(&f));
    assert!(!tunnel::complete_checksum(&mut ip, 20, 1000));
}

fn with_eth(seg: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(if seg[0] >> 4 == 6 {
        &[0x86, 0xdd]
    } else {
        &[0x08, 0x00]
    });
    f.extend_from_slice(seg);
    f
}

#[test]
fn tcp_gso_frames_are_cut_into_valid_segments() {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    for v6 in [false, true] {
        let mut frame = if v6 {
            tcp6(client6(), CPORT, vip6(), VPORT, 64, FINACK, &payload)
        } else {
            tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, FINACK, &payload)
        };
        // PSH and CWR too.
        let tcp_at = if v6 { 14 + 40 } else { 14 + 20 };
        frame[tcp_at + 13] |= 0x08 | 0x80;
        let ip = l3(&frame);
        let mut segs: Vec<Vec<u8>> = Vec::new();
        let n = gso::segment(&ip, GsoKind::Tcp, 1448, |s| segs.push(s.to_vec())).expect("cut");
        assert_eq!(n, 4);
        assert_eq!(
            gso::largest_segment(&ip, GsoKind::Tcp, 1448),
            Some(tcp_at - 14 + 20 + 1448)
        );
        let mut joined = Vec::new();
        let l4 = tcp_at - 14;
        let seq0 = u32::from_be_bytes([ip[l4 + 4], ip[l4 + 5], ip[l4 + 6], ip[l4 + 7]]);
        for (i, s) in segs.iter().enumerate() {
            assert!(
                checksums_ok(&with_eth(s)),
                "segment {i} checksums (v6 {v6})"
            );
            let seq = u32::from_be_bytes([s[l4 + 4], s[l4 + 5], s[l4 + 6], s[l4 + 7]]);
            assert_eq!(seq, seq0.wrapping_add(1448 * i as u32));
            let flags = s[l4 + 13];
            let last = i == segs.len() - 1;
            assert_eq!(flags & 0x09 != 0, last, "FIN/PSH only on the last");
            assert_eq!(flags & 0x80 != 0, i == 0, "CWR only on the first");
            if !v6 {
                assert_eq!(
                    u16::from_be_bytes([s[4], s[5]]),
                    u16::from_be_bytes([ip[4], ip[5]]).wrapping_add(i as u16)
                );
            }
            joined.extend_from_slice(&s[l4 + 20..]);
        }
        assert_eq!(joined, payload);
    }
}

#[test]
fn gso_scratch_buffer_is_reused_without_leftovers() {
    let tcp = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[9u8; 4000]));
    let udp = l3(&udp4(CLIENT4, CPORT, VIP4, VPORT, 64, &[3u8; 2500]));
    // A buffer left dirty (and larger) by an earlier super-frame.
    let mut scratch = vec![0xee; 9000];
    for (ip, kind, size) in [(&tcp, GsoKind::Tcp, 1448), (&udp, GsoKind::UdpL4, 1000)] {
        let mut fresh: Vec<Vec<u8>> = Vec::new();
        let n = gso::segment(ip, kind, size, |s| fresh.push(s.to_vec())).expect("cut");
        let mut reused: Vec<Vec<u8>> = Vec::new();
        let m = gso::segment_with(ip, kind, size, &mut scratch, |s| reused.push(s.to_vec()))
            .expect("cut");
        assert_eq!((m, &reused), (n, &fresh), "{kind:?}");
    }
}

#[test]
fn udp_gso_frames_are_cut_into_datagrams() {
    let payload = vec![3u8; 3000];
    let ip = l3(&udp4(CLIENT4, CPORT, VIP4, VPORT, 64, &payload));
    let mut segs: Vec<Vec<u8>> = Vec::new();
    gso::segment(&ip, GsoKind::UdpL4, 1200, |s| segs.push(s.to_vec())).expect("cut");
    assert_eq!(segs.len(), 3);
    let total: usize = segs.iter().map(|s| s.len() - 28).sum();
    assert_eq!(total, 3000);
    for s in &segs {
        assert!(checksums_ok(&with_eth(s)));
    }
    assert!(gso::segment(&ip, GsoKind::Tcp, 1200, |_| {}).is_err());
    assert!(gso::segment(&ip[..10], GsoKind::UdpL4, 1200, |_| {}).is_err());
    assert!(gso::segment(&ip, GsoKind::UdpL4, 0, |_| {}).is_err());
}

/// Headers too short for what segmenting reads and writes are refused, not indexed past.
#[test]
fn gso_refuses_short_transport_headers() {
    // TCP with a data offset of 2 words (8 bytes), 5 bytes of padding after the packet.
    let mut ip = vec![
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    ip.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x20]);
    assert_eq!(
        gso::segment(&ip, GsoKind::Tcp, 100, |_| {}),
        Err(gso::GsoError::Malformed)
    );
    assert_eq!(gso::largest_segment(&ip, GsoKind::Tcp, 100), None);
    // A UDP datagram with no data and no padding: nothing past its 8 bytes is read.
    let mut udp = vec![
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    udp.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
    let mut n = 0;
    assert_eq!(
        gso::segment(&udp, GsoKind::UdpL4, 100, |s| {
            n += 1;
            assert_eq!(s.len(), 28);
        }),
        Ok(1)
    );
    assert_eq!(n, 1);
}
