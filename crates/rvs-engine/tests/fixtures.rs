//! Fixture tables: input frame -> expected verdict -> expected output frame, all frames built by
//! etherparse.

mod common;

use common::*;
use rvs_engine::*;

struct Case {
    name: &'static str,
    input: Vec<u8>,
    verdict: Verdict,
    /// Expected L3 packet after the call (None: unchanged input).
    output: Option<Vec<u8>>,
}

fn check(e: &Engine, cases: Vec<Case>) {
    for (i, c) in cases.into_iter().enumerate() {
        let mut f = c.input.clone();
        let v = run(e, 1000 + i as u64, &mut f);
        assert_eq!(v, c.verdict, "verdict of {}", c.name);
        let want = c.output.unwrap_or_else(|| l3(&c.input));
        assert_eq!(l3(&f), want, "output frame of {}", c.name);
    }
}

#[test]
fn tcp_v4_nat_both_ways() {
    let e = nat_engine();
    let cases = vec![
        Case {
            name: "SYN client->VIP becomes client->RIP:8080",
            input: tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]),
            verdict: fwd(ip4(RIP4)),
            output: Some(l3(&tcp4(CLIENT4, CPORT, RIP4, RPORT, 63, SYN, &[]))),
        },
        Case {
            name: "SYN-ACK RIP->client becomes VIP:80->client",
            input: tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, SYNACK, &[]),
            verdict: fwd(ip4(CLIENT4)),
            output: Some(l3(&tcp4(VIP4, VPORT, CLIENT4, CPORT, 63, SYNACK, &[]))),
        },
        Case {
            name: "data client->VIP",
            input: tcp4(
                CLIENT4,
                CPORT,
                VIP4,
                VPORT,
                30,
                ACK,
                b"GET / HTTP/1.0\r\n\r\n",
            ),
            verdict: fwd(ip4(RIP4)),
            output: Some(l3(&tcp4(
                CLIENT4,
                CPORT,
                RIP4,
                RPORT,
                29,
                ACK,
                b"GET / HTTP/1.0\r\n\r\n",
            ))),
        },
        Case {
            name: "odd-length reply payload",
            input: tcp4(
                RIP4,
                RPORT,
                CLIENT4,
                CPORT,
                64,
                ACK,
                b"HTTP/1.0 200 OK\r\n\r\nhello",
            ),
            verdict: fwd(ip4(CLIENT4)),
            output: Some(l3(&tcp4(
                VIP4,
                VPORT,
                CLIENT4,
                CPORT,
                63,
                ACK,
                b"HTTP/1.0 200 OK\r\n\r\nhello",
            ))),
        },
        Case {
            name: "non-SYN from a new client port is dropped",
            input: tcp4(CLIENT4, CPORT + 1, VIP4, VPORT, 64, ACK, &[]),
            verdict: Verdict::Drop(DropReason::NoConnectionNonSyn),
            output: None,
        },
        Case {
            name: "RST without connection is dropped",
            input: tcp4(CLIENT4, CPORT + 2, VIP4, VPORT, 64, RST, &[]),
            verdict: Verdict::Drop(DropReason::NoConnectionNonSyn),
            output: None,
        },
        Case {
            name: "TTL 1 on an existing connection",
            input: tcp4(CLIENT4, CPORT, VIP4, VPORT, 1, ACK, &[]),
            verdict: Verdict::Drop(DropReason::TtlExceeded),
            output: None,
        },
        Case {
            name: "other port of the VIP is not ours",
            input: tcp4(CLIENT4, CPORT, VIP4, 22, 64, SYN, &[]),
            verdict: Verdict::PassToKernel,
            output: None,
        },
        Case {
            name: "unrelated traffic is not ours",
            input: tcp4(RIP4B, 5555, CLIENT4, CPORT, 64, ACK, &[]),
            verdict: Verdict::PassToKernel,
            output: None,
        },
    ];
    check(&e, cases);
    assert_eq!(e.drop_counters().get(DropReason::NoConnectionNonSyn), 2);
    assert_eq!(e.drop_counters().get(DropReason::TtlExceeded), 1);
}

#[test]
fn udp_v4_nat_both_ways_and_zero_checksum() {
    let e = nat_engine();
    let mut zero_in = udp4(CLIENT4, CPORT, VIP4, VPORT, 64, b"query");
    zero_in[14 + 20 + 6] = 0;
    zero_in[14 + 20 + 7] = 0;
    let mut zero_out = udp4(CLIENT4, CPORT, RIP4, RPORT, 63, b"query");
    zero_out[14 + 20 + 6] = 0;
    zero_out[14 + 20 + 7] = 0;
    let cases = vec![
        Case {
            name: "UDP client->VIP",
            input: udp4(CLIENT4, CPORT, VIP4, VPORT, 64, b"query"),
            verdict: fwd(ip4(RIP4)),
            output: Some(l3(&udp4(CLIENT4, CPORT, RIP4, RPORT, 63, b"query"))),
        },
        Case {
            name: "UDP reply",
            input: udp4(RIP4, RPORT, CLIENT4, CPORT, 64, b"answer!"),
            verdict: fwd(ip4(CLIENT4)),
            output: Some(l3(&udp4(VIP4, VPORT, CLIENT4, CPORT, 63, b"answer!"))),
        },
    ];
    check(&e, cases);
    for f in [&zero_in, &zero_out] {
        assert!(udp4_without_checksum(f), "fixture has no UDP checksum");
    }
    let mut f = zero_in;
    assert_eq!(
        run(&e, 1002, &mut f),
        fwd(ip4(RIP4)),
        "verdict of checksum 0"
    );
    assert_eq!(l3(&f), l3(&zero_out), "UDP checksum 0 stays 0");
    assert!(udp4_without_checksum(&f), "UDP checksum 0 stays 0");
}

#[test]
fn tcp_and_udp_v6_nat_both_ways() {
    let e = nat_engine();
    let (c, v, r) = (client6(), vip6(), rip6());
    let cases = vec![
        Case {
            name: "v6 SYN",
            input: tcp6(c, CPORT, v, VPORT, 64, SYN, &[]),
            verdict: fwd(ip6(r)),
            output: Some(l3(&tcp6(c, CPORT, r, RPORT, 63, SYN, &[]))),
        },
        Case {
            name: "v6 SYN-ACK",
            input: tcp6(r, RPORT, c, CPORT, 64, SYNACK, &[]),
            verdict: fwd(ip6(c)),
            output: Some(l3(&tcp6(v, VPORT, c, CPORT, 63, SYNACK, &[]))),
        },
        Case {
            name: "v6 UDP in",
            input: udp6(c, 5353, v, VPORT, 2, b"x"),
            verdict: fwd(ip6(r)),
            output: Some(l3(&udp6(c, 5353, r, RPORT, 1, b"x"))),
        },
        Case {
            name: "v6 UDP out",
            input: udp6(r, RPORT, c, 5353, 64, b"yz"),
            verdict: fwd(ip6(c)),
            output: Some(l3(&udp6(v, VPORT, c, 5353, 63, b"yz"))),
        },
        Case {
            name: "v6 hop limit 1",
            input: udp6(c, 5353, v, VPORT, 1, b"x"),
            verdict: Verdict::Drop(DropReason::TtlExceeded),
            output: None,
        },
    ];
    check(&e, cases);
}

#[test]
fn vlan_tagged_frame_reports_l3_offset() {
    let e = nat_engine();
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(etherparse::VlanId::try_new(100).expect("vlan"))
        .ipv4(CLIENT4, VIP4, 64)
        .tcp(CPORT, VPORT, 1000, 65535)
        .syn()
        .write(&mut f, &[])
        .expect("build");
    let v = run(&e, 0, &mut f);
    assert_eq!(
        v,
        Verdict::Forward {
            next_hop_ip: ip4(RIP4),
            l3_offset: 18
        }
    );
    assert_eq!(
        f[18..].to_vec(),
        l3(&tcp4(CLIENT4, CPORT, RIP4, RPORT, 63, SYN, &[]))
    );
}

#[test]
fn not_ours_and_malformed() {
    let e = nat_engine();
    // ARP request.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[0u8; 20]);
    assert_eq!(run(&e, 0, &mut arp), Verdict::PassToKernel);
    // Ping to the VIP goes to the kernel.
    let mut ping = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(CLIENT4, VIP4, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut ping, b"abc")
        .expect("build");
    assert_eq!(run(&e, 0, &mut ping), Verdict::PassToKernel);
    // Truncated IPv4.
    let mut t = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    t.truncate(30);
    assert_eq!(run(&e, 0, &mut t), Verdict::Drop(DropReason::Truncated));
    // Bad version.
    let mut m = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    m[14] = 0x35;
    assert_eq!(run(&e, 0, &mut m), Verdict::Drop(DropReason::Malformed));
    // Fragment to the VIP.
    let mut fr = udp4(CLIENT4, CPORT, VIP4, VPORT, 64, &[0u8; 16]);
    fr[14 + 6] |= 0x20; // more fragments
    fr[14 + 10] = 0;
    fr[14 + 11] = 0;
    assert_eq!(run(&e, 0, &mut fr), Verdict::Reassemble);
    // Short frame.
    let mut s = vec![0u8; 10];
    assert_eq!(run(&e, 0, &mut s), Verdict::Drop(DropReason::Truncated));
    assert_eq!(e.drop_counters().total(), 3);
}

#[test]
fn no_usable_destination() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Wlc)).expect("svc");
    let mut f = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut f), Verdict::Drop(DropReason::NoDestination));
    e.add_dest(&k, dest(ip4(RIP4), RPORT, 0)).expect("dest");
    let mut f = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut f), Verdict::Drop(DropReason::NoDestination));
    assert_eq!(e.drop_counters().get(DropReason::NoDestination), 2);
}

/// Pseudo-header sum as a CHECKSUM_PARTIAL field holds it (not complemented).
fn partial_field(src: &[u8], dst: &[u8], proto: u8, len: u32) -> [u8; 2] {
    let mut acc: u32 = 0;
    for c in src.chunks(2).chain(dst.chunks(2)) {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    acc += proto as u32 + (len >> 16) + (len & 0xffff);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    (acc as u16).to_be_bytes()
}

#[test]
fn checksum_partial_updates_pseudo_sum_only() {
    let e = nat_engine();
    let payload = b"0123456789";
    // v4 TCP: field = pseudo(src, dst); after NAT = pseudo(src, RIP); port change untouched.
    let mut f = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, payload);
    let tl = (f.len() - 34) as u32;
    f[34 + 16..34 + 18].copy_from_slice(&partial_field(&CLIENT4, &VIP4, 6, tl));
    let mut meta = PacketMeta {
        csum_partial: true,
        ..Default::default()
    };
    assert_eq!(e.handle(Millis(0), &mut meta, &mut f), fwd(ip4(RIP4)));
    let mut want = tcp4(CLIENT4, CPORT, RIP4, RPORT, 63, SYN, payload);
    want[34 + 16..34 + 18].copy_from_slice(&partial_field(&CLIENT4, &RIP4, 6, tl));
    assert_eq!(f, want);
    // Reply direction, UDP v4 with a partial field.
    let mut u = udp4(RIP4, RPORT, CLIENT4, 7, 64, payload);
    let mut first = udp4(CLIENT4, 7, VIP4, VPORT, 64, payload);
    assert_eq!(run(&e, 0, &mut first), fwd(ip4(RIP4)));
    let ul = (u.len() - 34) as u32;
    u[34 + 6..34 + 8].copy_from_slice(&partial_field(&RIP4, &CLIENT4, 17, ul));
    assert_eq!(e.handle(Millis(0), &mut meta, &mut u), fwd(ip4(CLIENT4)));
    let mut want = udp4(VIP4, VPORT, CLIENT4, 7, 63, payload);
    want[34 + 6..34 + 8].copy_from_slice(&partial_field(&VIP4, &CLIENT4, 17, ul));
    assert_eq!(u, want);
    // v6 TCP.
    let (c, v, r) = (client6(), vip6(), rip6());
    let mut f = tcp6(c, CPORT, v, VPORT, 64, SYN, payload);
    let tl = (f.len() - 54) as u32;
    f[54 + 16..54 + 18].copy_from_slice(&partial_field(&c, &v, 6, tl));
    assert_eq!(e.handle(Millis(0), &mut meta, &mut f), fwd(ip6(r)));
    let mut want = tcp6(c, CPORT, r, RPORT, 63, SYN, payload);
    want[54 + 16..54 + 18].copy_from_slice(&partial_field(&c, &r, 6, tl));
    assert_eq!(f, want);
}

#[test]
fn icmp_v4_errors_both_ways() {
    use etherparse::icmpv4::DestUnreachableHeader;
    use etherparse::Icmpv4Type;
    let e = nat_engine();
    let mut syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut syn), fwd(ip4(RIP4)));
    let frag = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: 1400,
    });
    // From the real server: "fragmentation needed" about client->RIP data (quoted in full).
    let quoted_req = l3(&tcp4(CLIENT4, CPORT, RIP4, RPORT, 63, ACK, b"hello"));
    let quoted_req_nat = l3(&tcp4(CLIENT4, CPORT, VIP4, VPORT, 63, ACK, b"hello"));
    // From the client: "port unreachable" about a VIP->client reply (quoted header + 8 bytes).
    let port = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let quoted_rep = l3(&tcp4(VIP4, VPORT, CLIENT4, CPORT, 60, ACK, b"data"))[..28].to_vec();
    let quoted_rep_nat = l3(&tcp4(RIP4, RPORT, CLIENT4, CPORT, 60, ACK, b"data"))[..28].to_vec();
    let cases = vec![
        Case {
            name: "ICMP from the RS about a request: outer src and quoted dst become the VIP",
            input: icmp4_error(RIP4, CLIENT4, 64, frag.clone(), &quoted_req),
            verdict: fwd(ip4(CLIENT4)),
            output: Some(l3(&icmp4_error(
                VIP4,
                CLIENT4,
                63,
                frag.clone(),
                &quoted_req_nat,
            ))),
        },
        Case {
            name: "ICMP from a router on the RS side keeps its source",
            input: icmp4_error(ROUTER4, CLIENT4, 64, frag.clone(), &quoted_req),
            verdict: fwd(ip4(CLIENT4)),
            output: Some(l3(&icmp4_error(
                ROUTER4,
                CLIENT4,
                63,
                frag,
                &quoted_req_nat,
            ))),
        },
        Case {
            name: "ICMP from the client about a reply: outer dst and quoted src become the RIP",
            input: icmp4_error(CLIENT4, VIP4, 64, port.clone(), &quoted_rep),
            verdict: fwd(ip4(RIP4)),
            output: Some(l3(&icmp4_error(
                CLIENT4,
                RIP4,
                63,
                port.clone(),
                &quoted_rep_nat,
            ))),
        },
        Case {
            name: "ICMP about an unknown connection goes to the kernel",
            input: icmp4_error(
                CLIENT4,
                VIP4,
                64,
                port,
                &l3(&tcp4(VIP4, VPORT, CLIENT4, 1, 60, ACK, b""))[..28],
            ),
            verdict: Verdict::PassToKernel,
            output: None,
        },
    ];
    check(&e, cases);
}

#[test]
fn icmp_v6_errors_both_ways() {
    use etherparse::icmpv6::DestUnreachableCode;
    use etherparse::Icmpv6Type;
    let e = nat_engine();
    let (c, v, r) = (client6(), vip6(), rip6());
    let mut first = udp6(c, 5000, v, VPORT, 64, b"q");
    assert_eq!(run(&e, 0, &mut first), fwd(ip6(r)));
    let big = Icmpv6Type::PacketTooBig { mtu: 1280 };
    let unreach = Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port);
    let req = l3(&udp6(c, 5000, r, RPORT, 63, b"request"));
    let req_nat = l3(&udp6(c, 5000, v, VPORT, 63, b"request"));
    let rep = l3(&udp6(v, VPORT, c, 5000, 60, b"reply"));
    let rep_nat = l3(&udp6(r, RPORT, c, 5000, 60, b"reply"));
    let cases = vec![
        Case {
            name: "ICMPv6 packet-too-big from the RS",
            input: icmp6_error(r, c, 64, big, &req),
            verdict: fwd(ip6(c)),
            output: Some(l3(&icmp6_error(v, c, 63, big, &req_nat))),
        },
        Case {
            name: "ICMPv6 port unreachable from the client",
            input: icmp6_error(c, v, 64, unreach, &rep),
            verdict: fwd(ip6(r)),
            output: Some(l3(&icmp6_error(c, r, 63, unreach, &rep_nat))),
        },
    ];
    check(&e, cases);
}

#[test]
fn control_plane_errors() {
    let e = nat_engine();
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    assert_eq!(
        e.add_service(svc(k, SchedulerKind::Rr)),
        Err(EngineError::ServiceExists)
    );
    let missing = key(Protocol::Tcp, ip4(VIP4), 81);
    assert_eq!(e.del_service(&missing), Err(EngineError::NoService));
    assert_eq!(
        e.add_dest(&missing, dest(ip4(RIP4), 1, 1)),
        Err(EngineError::NoService)
    );
    assert_eq!(
        e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)),
        Err(EngineError::DestExists)
    );
    assert_eq!(e.del_dest(&k, ip4(RIP4B), RPORT), Err(EngineError::NoDest));
    assert_eq!(
        e.edit_dest(&k, dest(ip4(RIP4B), RPORT, 1)),
        Err(EngineError::NoDest)
    );
    // Tunnelling is supported, but like DR it cannot map ports.
    let mut tun = dest(ip4(RIP4B), RPORT, 1);
    tun.method = ForwardMethod::Tunnel;
    assert!(matches!(
        e.add_dest(&k, tun),
        Err(EngineError::InvalidArgument(_))
    ));
    assert!(matches!(
        e.add_dest(&k, dest(ip6(rip6()), RPORT, 1)),
        Err(EngineError::InvalidArgument(_))
    ));
    // A persistence netmask of the other family is refused.
    let mut p = svc(missing, SchedulerKind::Rr);
    p.persistence = Some(Persistence {
        timeout_s: 300,
        netmask: ip6(rip6()),
        pe: None,
    });
    assert!(matches!(
        e.add_service(p),
        Err(EngineError::InvalidArgument(_))
    ));
    assert_eq!(
        EngineError::ServiceExists.to_string(),
        "Service already exists"
    );
    assert_eq!(EngineError::NoService.to_string(), "Service not defined");
    assert_eq!(
        EngineError::DestExists.to_string(),
        "Destination already exists"
    );
    assert_eq!(EngineError::NoDest.to_string(), "No such destination");
    // Port 0 means the service port.
    e.add_dest(&k, dest(ip4(RIP4B), 0, 2)).expect("port 0");
    let s = e.services(Millis(0));
    let d = &s[0].dests[1];
    assert_eq!((d.spec.port, d.spec.weight), (VPORT, 2));
    e.edit_dest(&k, dest(ip4(RIP4B), VPORT, 5)).expect("edit");
    assert_eq!(e.services(Millis(0))[0].dests[1].spec.weight, 5);
    e.edit_service(svc(k, SchedulerKind::Wlc))
        .expect("edit svc");
    assert_eq!(e.services(Millis(0))[0].spec.scheduler, SchedulerKind::Wlc);
    e.del_dest(&k, ip4(RIP4B), VPORT).expect("del");
    assert_eq!(e.services(Millis(0))[0].dests.len(), 1);
    e.clear();
    assert!(e.services(Millis(0)).is_empty());
}
