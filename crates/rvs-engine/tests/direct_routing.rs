//! Direct routing (`-g`): packets reach the real server byte for byte as they came, only the
//! client->virtual direction is tracked (IPVS's INPUT-ONLY TCP states), replies from the real
//! server are not ours, and ICMP errors about a connection go to its real server unchanged.

mod common;

use common::*;
use rvs_engine::*;
use std::net::IpAddr;

/// Runs each frame through the engine: it must be forwarded to `next_hop` and its IP packet
/// must come out identical.
fn assert_forwarded_unchanged(e: &Engine, now: u64, frame: &[u8], next_hop: IpAddr) {
    let mut f = frame.to_vec();
    assert_eq!(run(e, now, &mut f), fwd(next_hop), "verdict");
    assert_eq!(l3(&f), l3(frame), "IP packet must be byte-identical");
}

fn conn_state(e: &Engine, now: u64) -> Vec<(ConnState, u64)> {
    e.connections(Millis(now))
        .iter()
        .map(|c| (c.state, c.expires_in.0))
        .collect()
}

/// (ActiveConn, InActConn) of the first destination of the first service (TCP, VIP4).
fn counts(e: &Engine) -> (u32, u32) {
    let s = e.services(Millis(0));
    let d = &s[0].dests[0];
    (d.active_conns, d.inactive_conns)
}

fn tcp4_stats(e: &Engine) -> Stats {
    e.services(Millis(0))[0].stats
}

#[test]
fn dr_tcp_v4_sequence_is_forwarded_unchanged() {
    let e = dr_engine();
    let c = |f: Flags, payload: &[u8]| tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, f, payload);
    let frames = [
        c(SYN, &[]),
        c(ACK, &[]),
        c(ACK, b"GET / HTTP/1.0\r\n\r\n"),
        c(ACK, b"odd"),
        c(FINACK, &[]),
        c(ACK, &[]),
    ];
    for (i, f) in frames.iter().enumerate() {
        assert_forwarded_unchanged(&e, 100 * i as u64, f, ip4(RIP4));
    }
    // A TTL-2 packet keeps its TTL too.
    let low_ttl = tcp4(CLIENT4, CPORT, VIP4, VPORT, 2, ACK, b"z");
    assert_forwarded_unchanged(&e, 700, &low_ttl, ip4(RIP4));
    let conns = e.connections(Millis(700));
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].dest, "192.168.7.10:80".parse().expect("addr"));
    let st = tcp4_stats(&e);
    assert_eq!((st.conns, st.in_pkts, st.out_pkts), (1, 7, 0));
}

#[test]
fn dr_keeps_checksum_partial_and_vlan_frames_intact() {
    let e = dr_engine();
    let syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, b"x");
    let mut f = syn.clone();
    let v = e.handle(
        Millis(0),
        &mut PacketMeta {
            csum_partial: true,
            ..Default::default()
        },
        &mut f,
    );
    assert_eq!(v, fwd(ip4(RIP4)));
    assert_eq!(
        f, syn,
        "whole frame untouched (the data plane writes the MAC header)"
    );

    let mut tagged = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(etherparse::VlanId::try_new(100).expect("vlan"))
        .ipv4(CLIENT4, VIP4, 64)
        .tcp(CPORT + 1, VPORT, 1000, 65535)
        .syn()
        .write(&mut tagged, &[])
        .expect("build");
    let mut f = tagged.clone();
    assert_eq!(
        run(&e, 1, &mut f),
        Verdict::Forward {
            next_hop_ip: ip4(RIP4),
            l3_offset: 18
        }
    );
    assert_eq!(f, tagged);
}

#[test]
fn dr_ipv6_tcp_and_udp() {
    let e = dr_engine();
    let (c, v, r) = (client6(), vip6(), rip6());
    for (i, f) in [
        tcp6(c, CPORT, v, VPORT, 64, SYN, &[]),
        tcp6(c, CPORT, v, VPORT, 64, ACK, &[]),
        tcp6(c, CPORT, v, VPORT, 2, ACK, b"data"),
        udp6(c, 5000, v, VPORT, 64, b"query"),
        udp6(c, 5000, v, VPORT, 64, b"again"),
    ]
    .iter()
    .enumerate()
    {
        assert_forwarded_unchanged(&e, i as u64, f, ip6(r));
    }
    let mut states: Vec<ConnState> = e.connections(Millis(5)).iter().map(|c| c.state).collect();
    states.sort_by_key(|s| s.name());
    assert_eq!(states, vec![ConnState::Established, ConnState::Udp]);
    // The reply from the real server is not ours.
    let mut rep = tcp6(r, VPORT, c, CPORT, 64, ACK, b"resp");
    let orig = rep.clone();
    assert_eq!(run(&e, 6, &mut rep), Verdict::PassToKernel);
    assert_eq!(rep, orig);
}

#[test]
fn dr_udp_one_packet_scheduling() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Udp, ip4(VIP4), 53);
    let mut spec = svc(k, SchedulerKind::Rr);
    spec.one_packet = true;
    e.add_service(spec).expect("svc");
    e.add_dest(&k, dr_dest(ip4(RIP4), 53, 1)).expect("dest");
    assert_forwarded_unchanged(&e, 0, &udp4(CLIENT4, 999, VIP4, 53, 64, b"q"), ip4(RIP4));
    assert_eq!(e.connection_count(), 0);
}

#[test]
fn dr_input_only_states_timeouts_and_counts() {
    let e = dr_engine();
    let c = |f: Flags| tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, f, &[]);
    // (frame, state after, timeout after, (ActiveConn, InActConn) after)
    type Step = (Vec<u8>, ConnState, u64, (u32, u32));
    let steps: Vec<Step> = vec![
        (c(SYN), ConnState::SynRecv, 60_000, (0, 1)),
        // The client's ACK of the server's SYN-ACK (which we never see) establishes.
        (c(ACK), ConnState::Established, 900_000, (1, 0)),
        (c(ACK), ConnState::Established, 900_000, (1, 0)),
        // INPUT-ONLY: a FIN from the client goes to FIN_WAIT (not CLOSE_WAIT as with NAT).
        (c(FINACK), ConnState::FinWait, 120_000, (0, 1)),
        (c(ACK), ConnState::FinWait, 120_000, (0, 1)),
    ];
    let mut now = 0;
    for (i, (f, st, timeout, cnt)) in steps.into_iter().enumerate() {
        now += 100;
        assert_forwarded_unchanged(&e, now, &f, ip4(RIP4));
        assert_eq!(conn_state(&e, now), vec![(st, timeout)], "step {i}");
        assert_eq!(counts(&e), cnt, "counts at step {i}");
    }
    e.expire(Millis(now + 119_999));
    assert_eq!(e.connection_count(), 1);
    e.expire(Millis(now + 120_000));
    assert_eq!(e.connection_count(), 0);
    assert_eq!(counts(&e), (0, 0));

    // RST from the client closes; a SYN on the CLOSE connection starts afresh.
    assert_forwarded_unchanged(&e, 1_000_000, &c(SYN), ip4(RIP4));
    assert_forwarded_unchanged(&e, 1_000_100, &c(ACK), ip4(RIP4));
    assert_eq!(counts(&e), (1, 0));
    assert_forwarded_unchanged(&e, 1_000_200, &c(RST), ip4(RIP4));
    assert_eq!(conn_state(&e, 1_000_200), vec![(ConnState::Close, 10_000)]);
    assert_eq!(counts(&e), (0, 1));
    let mut f = c(SYN);
    assert_eq!(run(&e, 1_000_300, &mut f), fwd(ip4(RIP4)));
    assert_eq!(
        conn_state(&e, 1_000_300),
        vec![(ConnState::SynRecv, 60_000)]
    );
    assert_eq!(counts(&e), (0, 1));
    // Three connections scheduled: the first, the one after expiry, the one after CLOSE.
    assert_eq!(tcp4_stats(&e).conns, 3);
}

#[test]
fn dr_timeouts_follow_set_timeouts() {
    let e = dr_engine();
    e.set_timeouts(TimeoutUpdate {
        tcp: 30,
        tcpfin: 7,
        udp: 5,
    });
    for f in [SYN, ACK] {
        let p = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, f, &[]);
        assert_forwarded_unchanged(&e, 0, &p, ip4(RIP4));
    }
    assert_eq!(conn_state(&e, 0), vec![(ConnState::Established, 30_000)]);
    let p = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, FINACK, &[]);
    assert_forwarded_unchanged(&e, 0, &p, ip4(RIP4));
    assert_eq!(conn_state(&e, 0), vec![(ConnState::FinWait, 7_000)]);
}

#[test]
fn reply_from_real_server_is_not_ours() {
    let e = dr_engine();
    let syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_forwarded_unchanged(&e, 0, &syn, ip4(RIP4));
    let before = conn_state(&e, 50);
    // What a DR real server would send if its reply came our way: from RIP:80 (or VIP:80).
    for src in [RIP4, VIP4] {
        let mut rep = tcp4(src, VPORT, CLIENT4, CPORT, 64, SYNACK, &[]);
        let orig = rep.clone();
        assert_eq!(run(&e, 50, &mut rep), Verdict::PassToKernel);
        assert_eq!(rep, orig);
    }
    assert_eq!(conn_state(&e, 50), before, "state and timer untouched");
    assert_eq!(counts(&e), (0, 1));
    assert_eq!(tcp4_stats(&e).out_pkts, 0);
}

#[test]
fn icmp_about_a_dr_connection_goes_to_the_real_server_unchanged() {
    use etherparse::icmpv4::DestUnreachableHeader;
    use etherparse::Icmpv4Type;
    let e = dr_engine();
    let syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_forwarded_unchanged(&e, 0, &syn, ip4(RIP4));
    let frag = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: 1400,
    });
    // A router on the client's side quotes the reply the real server sent as VIP:80 -> client.
    let quoted = l3(&tcp4(VIP4, VPORT, CLIENT4, CPORT, 60, ACK, &[0x55; 1400]))[..548].to_vec();
    assert_forwarded_unchanged(
        &e,
        1,
        &icmp4_error(ROUTER4, VIP4, 64, frag, &quoted),
        ip4(RIP4),
    );
    // About some other client port: not ours.
    let other = l3(&tcp4(VIP4, VPORT, CLIENT4, 1, 60, ACK, b""))[..28].to_vec();
    let port = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let mut f = icmp4_error(CLIENT4, VIP4, 64, port, &other);
    assert_eq!(run(&e, 2, &mut f), Verdict::PassToKernel);
    assert_eq!(conn_state(&e, 0), vec![(ConnState::SynRecv, 60_000)]);

    // ICMPv6 packet-too-big about a UDP reply.
    let (c, v, r) = (client6(), vip6(), rip6());
    let first = udp6(c, 5000, v, VPORT, 64, b"q");
    assert_forwarded_unchanged(&e, 3, &first, ip6(r));
    let big = etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 };
    let rep = l3(&udp6(v, VPORT, c, 5000, 60, b"reply"));
    let router6 = v6("2001:db8:c::1");
    assert_forwarded_unchanged(&e, 4, &icmp6_error(router6, v, 64, big, &rep), ip6(r));
}

#[test]
fn port_mapping_is_refused_for_direct_routing() {
    let e = dr_engine();
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    let err = e.add_dest(&k, dr_dest(ip4(RIP4B), RPORT, 1));
    assert!(
        matches!(&err, Err(EngineError::InvalidArgument(m)) if m.starts_with("port mapping is not possible with direct routing (-g)")),
        "{err:?}"
    );
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err(
            "Invalid argument: port mapping is not possible with direct routing (-g): the real \
             server receives the packet unchanged, so it must listen on the virtual service's \
             port"
                .to_string()
        )
    );
    // The service's own port is fine, port 0 was stored as the service port.
    e.add_dest(&k, dr_dest(ip4(RIP4B), VPORT, 1))
        .expect("same port");
    let s = e.services(Millis(0));
    let ports: Vec<(u16, ForwardMethod)> = s[0]
        .dests
        .iter()
        .map(|d| (d.spec.port, d.spec.method))
        .collect();
    assert_eq!(
        ports,
        vec![(VPORT, ForwardMethod::Route), (VPORT, ForwardMethod::Route)]
    );
    // Editing a DR destination towards another port is refused the same way (it is a lookup
    // of a destination that cannot exist).
    assert!(matches!(
        e.edit_dest(&k, dr_dest(ip4(RIP4B), RPORT, 1)),
        Err(EngineError::InvalidArgument(_))
    ));
    // Mixed families are still refused.
    assert!(matches!(
        e.add_dest(&k, dr_dest(ip6(rip6()), 0, 1)),
        Err(EngineError::InvalidArgument(m)) if m.contains("family")
    ));
    // A NAT destination whose port differs stays legal.
    e.add_dest(&k, dest(ip4([192, 168, 7, 12]), RPORT, 1))
        .expect("masq port mapping");
}

#[test]
fn edit_dest_switches_method_for_new_connections_only() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("svc");
    e.add_dest(&k, dest(ip4(RIP4), 0, 1)).expect("masq dest");
    // Connection A: NAT.
    let a = |f: Flags| tcp4(CLIENT4, 1001, VIP4, VPORT, 64, f, &[]);
    let mut f = a(SYN);
    assert_eq!(run(&e, 0, &mut f), fwd(ip4(RIP4)));
    assert_eq!(l3(&f), l3(&tcp4(CLIENT4, 1001, RIP4, VPORT, 63, SYN, &[])));

    e.edit_dest(&k, dr_dest(ip4(RIP4), VPORT, 1))
        .expect("to DR");
    assert_eq!(
        e.services(Millis(0))[0].dests[0].spec.method,
        ForwardMethod::Route
    );
    // A keeps NAT both ways.
    let mut f = a(ACK);
    assert_eq!(run(&e, 1, &mut f), fwd(ip4(RIP4)));
    assert_eq!(l3(&f), l3(&tcp4(CLIENT4, 1001, RIP4, VPORT, 63, ACK, &[])));
    let mut r = tcp4(RIP4, VPORT, CLIENT4, 1001, 64, ACK, b"r");
    assert_eq!(run(&e, 1, &mut r), fwd(ip4(CLIENT4)));
    assert_eq!(l3(&r), l3(&tcp4(VIP4, VPORT, CLIENT4, 1001, 63, ACK, b"r")));
    // Connection B: direct routing, INPUT-ONLY states.
    let b = |f: Flags| tcp4(CLIENT4, 1002, VIP4, VPORT, 64, f, &[]);
    assert_forwarded_unchanged(&e, 2, &b(SYN), ip4(RIP4));

    e.edit_dest(&k, dest(ip4(RIP4), VPORT, 1))
        .expect("back to NAT");
    // B stays DR: unchanged, and its FIN uses the INPUT-ONLY row.
    assert_forwarded_unchanged(&e, 3, &b(ACK), ip4(RIP4));
    assert_forwarded_unchanged(&e, 4, &b(FINACK), ip4(RIP4));
    let mut states: Vec<(u16, ConnState)> = e
        .connections(Millis(4))
        .iter()
        .map(|c| (c.client.port(), c.state))
        .collect();
    states.sort_by_key(|x| x.0);
    assert_eq!(
        states,
        vec![(1001, ConnState::Established), (1002, ConnState::FinWait)]
    );
    // Connection C: NAT again.
    let mut f = tcp4(CLIENT4, 1003, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 5, &mut f), fwd(ip4(RIP4)));
    assert_eq!(l3(&f), l3(&tcp4(CLIENT4, 1003, RIP4, VPORT, 63, SYN, &[])));
    let d = &e.services(Millis(0))[0].dests[0];
    assert_eq!((d.active_conns, d.inactive_conns), (1, 2));
}

/// Local forwarding (the real server is the director itself): every packet of the connection
/// is delivered unchanged, tracked with the input-only states like direct routing, and a port
/// mapping is refused with the reason.
#[test]
fn local_dest_delivers_unchanged_and_refuses_port_mapping() {
    let e = Engine::new(EngineConfig {
        expected_connections: 64,
        shards: 2,
        ..EngineConfig::default()
    });
    let k4 = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k4, SchedulerKind::Rr)).expect("add v4");
    let local = |port| DestSpec {
        method: ForwardMethod::Local,
        ..dest(ip4(VIP4), port, 1)
    };
    let err = e.add_dest(&k4, local(VPORT + 1)).expect_err("port mapping");
    assert!(err.to_string().contains("port mapping"), "{err}");
    e.add_dest(&k4, local(0)).expect("local dest");
    let c = |f: Flags| tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, f, &[]);
    for (i, frame) in [c(SYN), c(ACK), c(FINACK)].iter().enumerate() {
        let mut f = frame.clone();
        let verdict = run(&e, 10 * i as u64, &mut f);
        assert_eq!(verdict, Verdict::Deliver { l3_offset: 14 });
        assert_eq!(l3(&f), l3(frame), "IP packet must be byte-identical");
    }
    let conns = e.connections(Millis(30));
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, ConnState::FinWait);
    let st = e.services(Millis(0))[0].dests[0].stats;
    assert_eq!((st.conns, st.in_pkts, st.out_pkts), (1, 3, 0));
}
