//! FULLNAT (`--fullnat`): both addresses rewritten, local ports allocated without collisions and
//! freed on expiry, ICMP errors translated back, and the PROXY protocol header inserted with the
//! sequence and acknowledgement numbers shifted to match. Frames built by etherparse.

mod common;

use common::*;
use etherparse::{PacketBuilder, TcpOptionElement};
use rvs_engine::*;

const LIP4: [u8; 4] = [192, 168, 7, 201];
const LIP4B: [u8; 4] = [192, 168, 7, 202];

fn lip6() -> [u8; 16] {
    v6("fd00:7::201")
}

fn fullnat_engine(v6: bool, proxy: Option<ProxyProtocolVersion>) -> Engine {
    let e = Engine::new(EngineConfig::default());
    let (vip, rip, lips) = if v6 {
        (ip6(vip6()), ip6(rip6()), vec![ip6(lip6())])
    } else {
        (ip4(VIP4), ip4(RIP4), vec![ip4(LIP4)])
    };
    let k = key(Protocol::Tcp, vip, VPORT);
    let mut spec = svc(k, SchedulerKind::Rr);
    spec.local_addrs = lips;
    spec.proxy_protocol = proxy;
    e.add_service(spec).expect("service");
    let mut d = dest(rip, RPORT, 1);
    d.method = ForwardMethod::FullNat;
    e.add_dest(&k, d).expect("dest");
    e
}

/// A TCP segment with explicit sequence and acknowledgement numbers and options.
#[allow(clippy::too_many_arguments)]
fn seg(
    src: &[u8],
    sp: u16,
    dst: &[u8],
    dp: u16,
    ttl: u8,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    opts: &[TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let base = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let ipb = if src.len() == 4 {
        let s: [u8; 4] = src.try_into().expect("v4");
        let d: [u8; 4] = dst.try_into().expect("v4");
        base.ipv4(s, d, ttl)
    } else {
        let s: [u8; 16] = src.try_into().expect("v6");
        let d: [u8; 16] = dst.try_into().expect("v6");
        base.ipv6(s, d, ttl)
    };
    let mut b = ipb.tcp(sp, dp, seq, 65535);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let b = b.options(opts).expect("options");
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build");
    out
}

/// Source address and port of a forwarded frame (IPv4 or IPv6).
fn src_of(frame: &[u8]) -> (Vec<u8>, u16) {
    if frame[12..14] == [0x08, 0x00] {
        (
            frame[26..30].to_vec(),
            u16::from_be_bytes([frame[34], frame[35]]),
        )
    } else {
        (
            frame[22..38].to_vec(),
            u16::from_be_bytes([frame[54], frame[55]]),
        )
    }
}

fn both_ways(v6: bool) {
    let e = fullnat_engine(v6, None);
    let (c, vip, rip, lip, hop): (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, u8) = if v6 {
        (
            client6().into(),
            vip6().into(),
            rip6().into(),
            lip6().into(),
            64,
        )
    } else {
        (CLIENT4.into(), VIP4.into(), RIP4.into(), LIP4.into(), 64)
    };
    let rip_ip = if v6 { ip6(rip6()) } else { ip4(RIP4) };
    let c_ip = if v6 { ip6(client6()) } else { ip4(CLIENT4) };
    let mut f = seg(&c, CPORT, &vip, VPORT, hop, 1000, None, true, &[], &[]);
    assert_eq!(run(&e, 0, &mut f), fwd(rip_ip));
    let (src, lport) = src_of(&f);
    assert_eq!(src, lip, "the source becomes the local address");
    assert!(lport >= 1024);
    assert_eq!(
        f,
        seg(
            &lip,
            lport,
            &rip,
            RPORT,
            hop - 1,
            1000,
            None,
            true,
            &[],
            &[]
        )
    );
    assert!(checksums_ok(&f));
    // The reply, to the local address and port, goes back to the client from the VIP.
    let mut r = seg(
        &rip,
        RPORT,
        &lip,
        lport,
        hop,
        7000,
        Some(1001),
        true,
        &[],
        &[],
    );
    assert_eq!(run(&e, 1, &mut r), fwd(c_ip));
    assert_eq!(
        r,
        seg(
            &vip,
            VPORT,
            &c,
            CPORT,
            hop - 1,
            7000,
            Some(1001),
            true,
            &[],
            &[]
        )
    );
    // Data both ways, odd length.
    let mut d = seg(
        &c,
        CPORT,
        &vip,
        VPORT,
        hop,
        1001,
        Some(7001),
        false,
        &[],
        b"GET /x",
    );
    assert_eq!(run(&e, 2, &mut d), fwd(rip_ip));
    assert_eq!(
        d,
        seg(
            &lip,
            lport,
            &rip,
            RPORT,
            hop - 1,
            1001,
            Some(7001),
            false,
            &[],
            b"GET /x"
        )
    );
    let mut a = seg(
        &rip,
        RPORT,
        &lip,
        lport,
        hop,
        7001,
        Some(1007),
        false,
        &[],
        b"hi!",
    );
    assert_eq!(run(&e, 3, &mut a), fwd(c_ip));
    assert_eq!(
        a,
        seg(
            &vip,
            VPORT,
            &c,
            CPORT,
            hop - 1,
            7001,
            Some(1007),
            false,
            &[],
            b"hi!"
        )
    );
    // A packet from the real server to another local port is not ours.
    let mut stray = seg(
        &rip,
        RPORT,
        &lip,
        lport ^ 1,
        hop,
        1,
        Some(1),
        false,
        &[],
        &[],
    );
    assert_eq!(run(&e, 4, &mut stray), Verdict::PassToKernel);
    let conns = e.connections(Millis(5));
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, ConnState::Established);
}

#[test]
fn tcp_v4_fullnat_both_ways() {
    both_ways(false);
}

#[test]
fn tcp_v6_fullnat_both_ways() {
    both_ways(true);
}

#[test]
fn local_ports_are_unique_per_real_server_and_freed_on_expiry() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    let mut spec = svc(k, SchedulerKind::Rr);
    spec.local_addrs = vec![ip4(LIP4), ip4(LIP4B)];
    e.add_service(spec).expect("service");
    let mut d = dest(ip4(RIP4), RPORT, 1);
    d.method = ForwardMethod::FullNat;
    e.add_dest(&k, d).expect("dest");
    let mut seen = std::collections::HashSet::new();
    for i in 0..2000u16 {
        let mut f = tcp4(CLIENT4, 10_000 + i, VIP4, VPORT, 64, SYN, &[]);
        assert_eq!(run(&e, 0, &mut f), fwd(ip4(RIP4)));
        let (src, port) = src_of(&f);
        assert!(src == LIP4 || src == LIP4B, "{src:?}");
        assert!(
            seen.insert((src, port)),
            "local address and port handed out twice"
        );
    }
    assert!(seen.iter().any(|(s, _)| s == &LIP4) && seen.iter().any(|(s, _)| s == &LIP4B));
    assert_eq!(e.local_ports_in_use(), 2000);
    e.expire(Millis(10_000_000));
    assert_eq!(e.connection_count(), 0);
    assert_eq!(e.local_ports_in_use(), 0);
    let mut f = tcp4(CLIENT4, 9, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut f), fwd(ip4(RIP4)));
    assert_eq!(e.local_ports_in_use(), 1);
    // A flush leaves connections to their timers, as IPVS: the port is freed with it.
    e.clear();
    assert_eq!(e.local_ports_in_use(), 1);
    e.expire(Millis(10_000_000));
    assert_eq!(e.local_ports_in_use(), 0);
}

#[test]
fn fullnat_needs_a_pool_and_one_family() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("service");
    let mut d = dest(ip4(RIP4), RPORT, 1);
    d.method = ForwardMethod::FullNat;
    let err = e.add_dest(&k, d).expect_err("no pool");
    assert!(err.to_string().contains("--laddr"), "{err}");
    let mut spec = svc(key(Protocol::Tcp, ip4(VIP4), 81), SchedulerKind::Rr);
    spec.local_addrs = vec![ip6(lip6())];
    assert!(e.add_service(spec).is_err());
    let mut spec = svc(key(Protocol::Udp, ip4(VIP4), 82), SchedulerKind::Rr);
    spec.proxy_protocol = Some(ProxyProtocolVersion::V1);
    assert!(e.add_service(spec).is_err());
}

#[test]
fn icmp_from_the_real_server_reaches_the_client_translated() {
    use etherparse::icmpv4::DestUnreachableHeader;
    use etherparse::Icmpv4Type;
    let e = fullnat_engine(false, None);
    let mut syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut syn), fwd(ip4(RIP4)));
    let (_, lport) = src_of(&syn);
    let frag = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: 1400,
    });
    let quoted = l3(&tcp4(LIP4, lport, RIP4, RPORT, 63, ACK, b"hello"));
    let quoted_back = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 63, ACK, b"hello"));
    let build = |src, dst, ttl, q: &[u8]| icmp4_error(src, dst, ttl, frag.clone(), q);
    let mut f = build(RIP4, LIP4, 64, &quoted);
    assert_eq!(run(&e, 1, &mut f), fwd(ip4(CLIENT4)));
    assert_eq!(l3(&f), l3(&build(VIP4, CLIENT4, 63, &quoted_back)));
    // From a router between the director and the real server: its own source stays.
    let mut f = build(ROUTER4, LIP4, 64, &quoted);
    assert_eq!(run(&e, 2, &mut f), fwd(ip4(CLIENT4)));
    assert_eq!(l3(&f), l3(&build(ROUTER4, CLIENT4, 63, &quoted_back)));
}

/// The segment a real server receives for a `ForwardInsert` verdict.
fn assembled(frame: &[u8], v: &Verdict) -> Vec<u8> {
    let Verdict::ForwardInsert {
        payload_offset,
        end,
        insert,
        ..
    } = v
    else {
        panic!("expected an insertion, got {v:?}");
    };
    let mut out = frame[..*payload_offset].to_vec();
    out.extend_from_slice(insert.as_bytes());
    out.extend_from_slice(&frame[*payload_offset..*end]);
    out
}

fn proxy_exchange(version: ProxyProtocolVersion, v6: bool) {
    let e = fullnat_engine(v6, Some(version));
    let (c, vip, rip, lip): (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) = if v6 {
        (
            client6().into(),
            vip6().into(),
            rip6().into(),
            lip6().into(),
        )
    } else {
        (CLIENT4.into(), VIP4.into(), RIP4.into(), LIP4.into())
    };
    let (c_sock, v_sock) = if v6 {
        (
            std::net::SocketAddr::new(ip6(client6()), CPORT),
            std::net::SocketAddr::new(ip6(vip6()), VPORT),
        )
    } else {
        (
            std::net::SocketAddr::new(ip4(CLIENT4), CPORT),
            std::net::SocketAddr::new(ip4(VIP4), VPORT),
        )
    };
    let header = proxy::header(version, c_sock, v_sock);
    let n = header.len() as u32;
    // Where the verdicts send the client's and the server's segments.
    let (to_server, to_client) = if v6 {
        (fwd(ip6(rip6())), fwd(ip6(client6())))
    } else {
        (fwd(ip4(RIP4)), fwd(ip4(CLIENT4)))
    };
    use TcpOptionElement::{
        MaximumSegmentSize as Mss, Noop, SelectiveAcknowledgementPermitted as Sp,
    };
    // SYN: SACK-permitted becomes two NOPs.
    let mut f = seg(
        &c,
        CPORT,
        &vip,
        VPORT,
        64,
        1000,
        None,
        true,
        &[Mss(1460), Sp],
        &[],
    );
    assert_eq!(run(&e, 0, &mut f), to_server);
    let (_, lp) = src_of(&f);
    assert_eq!(
        f,
        seg(
            &lip,
            lp,
            &rip,
            RPORT,
            63,
            1000,
            None,
            true,
            &[Mss(1460), Noop, Noop],
            &[]
        )
    );
    // SYN-ACK: the MSS the client sees leaves room for the header.
    let mut f = seg(
        &rip,
        RPORT,
        &lip,
        lp,
        64,
        7000,
        Some(1001),
        true,
        &[Mss(1460)],
        &[],
    );
    assert_eq!(run(&e, 1, &mut f), to_client);
    let mss = 1460 - n as u16;
    assert_eq!(
        f,
        seg(
            &vip,
            VPORT,
            &c,
            CPORT,
            63,
            7000,
            Some(1001),
            true,
            &[Mss(mss)],
            &[]
        )
    );
    // The handshake's ACK passes unshifted.
    let mut f = seg(
        &c,
        CPORT,
        &vip,
        VPORT,
        64,
        1001,
        Some(7001),
        false,
        &[],
        &[],
    );
    assert_eq!(run(&e, 2, &mut f), to_server);
    assert_eq!(
        f,
        seg(&lip, lp, &rip, RPORT, 63, 1001, Some(7001), false, &[], &[])
    );
    // First data: the header goes in front, same sequence number.
    let mut want_payload = header.clone();
    want_payload.extend_from_slice(b"GET /");
    let want = seg(
        &lip,
        lp,
        &rip,
        RPORT,
        63,
        1001,
        Some(7001),
        false,
        &[],
        &want_payload,
    );
    for attempt in 0..2 {
        // The second time: a retransmission gets the header again.
        let mut f = seg(
            &c,
            CPORT,
            &vip,
            VPORT,
            64,
            1001,
            Some(7001),
            false,
            &[],
            b"GET /",
        );
        let v = e.handle(Millis(3 + attempt), &mut PacketMeta::default(), &mut f);
        let Verdict::Forward { next_hop_ip, .. } = to_server else {
            unreachable!("a forward verdict");
        };
        assert!(
            matches!(v, Verdict::ForwardInsert { next_hop_ip: hop, l3_offset: 14, .. } if hop == next_hop_ip),
            "attempt {attempt}: {v:?}"
        );
        let got = assembled(&f, &v);
        assert_eq!(got, want, "attempt {attempt}");
        assert!(checksums_ok(&got));
    }
    // The server acknowledges header + data; the client sees only its own bytes acknowledged.
    let mut f = seg(
        &rip,
        RPORT,
        &lip,
        lp,
        64,
        7001,
        Some(1006 + n),
        false,
        &[],
        b"OK",
    );
    assert_eq!(run(&e, 5, &mut f), to_client);
    assert_eq!(
        f,
        seg(
            &vip,
            VPORT,
            &c,
            CPORT,
            63,
            7001,
            Some(1006),
            false,
            &[],
            b"OK"
        )
    );
    // A partial acknowledgement (inside the header) maps to the first data byte.
    let mut f = seg(
        &rip,
        RPORT,
        &lip,
        lp,
        64,
        7003,
        Some(1001 + n / 2),
        false,
        &[],
        &[],
    );
    assert_eq!(run(&e, 6, &mut f), to_client);
    assert_eq!(
        f,
        seg(
            &vip,
            VPORT,
            &c,
            CPORT,
            63,
            7003,
            Some(1001),
            false,
            &[],
            &[]
        )
    );
    // Later client data is shifted by the header length.
    let mut f = seg(
        &c,
        CPORT,
        &vip,
        VPORT,
        64,
        1006,
        Some(7003),
        false,
        &[],
        b"more",
    );
    assert_eq!(run(&e, 7, &mut f), to_server);
    assert_eq!(
        f,
        seg(
            &lip,
            lp,
            &rip,
            RPORT,
            63,
            1006 + n,
            Some(7003),
            false,
            &[],
            b"more"
        )
    );
}

#[test]
fn proxy_v1_v4_header_and_shifting() {
    proxy_exchange(ProxyProtocolVersion::V1, false);
}

#[test]
fn proxy_v2_v4_header_and_shifting() {
    proxy_exchange(ProxyProtocolVersion::V2, false);
}

#[test]
fn proxy_v1_v6_header_and_shifting() {
    proxy_exchange(ProxyProtocolVersion::V1, true);
}

#[test]
fn proxy_v2_v6_header_and_shifting() {
    proxy_exchange(ProxyProtocolVersion::V2, true);
}

#[test]
fn proxy_header_bytes() {
    let c: std::net::SocketAddr = "192.168.1.2:40000".parse().expect("addr");
    let v: std::net::SocketAddr = "192.168.1.253:80".parse().expect("addr");
    assert_eq!(
        proxy::header(ProxyProtocolVersion::V1, c, v),
        b"PROXY TCP4 192.168.1.2 192.168.1.253 40000 80\r\n"
    );
    let v2 = proxy::header(ProxyProtocolVersion::V2, c, v);
    assert_eq!(&v2[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(&v2[12..16], &[0x21, 0x11, 0, 12]);
    assert_eq!(
        &v2[16..],
        &[192, 168, 1, 2, 192, 168, 1, 253, 0x9c, 0x40, 0, 80]
    );
}
