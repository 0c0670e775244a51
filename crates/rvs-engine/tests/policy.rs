//! The IPVS policy switches' effects: sloppy_tcp, expire_nodest_conn, schedule_icmp
//! (conn_reuse_mode and expire_quiescent_template are in `persistence.rs`).

mod common;

use common::*;
use rvs_engine::*;

/// The only service's real server at `addr`, as `-L` lists it.
fn listed_dest(e: &Engine, now: Millis, addr: std::net::IpAddr) -> DestStatus {
    let listing = e.services(now);
    listing[0]
        .dests
        .iter()
        .find(|d| d.spec.addr == addr)
        .cloned()
        .expect("listed")
}

fn set(e: &Engine, name: &str, value: u32) {
    let mut p = e.policy();
    p.set(name, value).expect("known switch");
    e.set_policy(p);
}

#[test]
fn sloppy_tcp_lets_a_non_syn_packet_create_a_connection() {
    let e = nat_engine();
    let mut ack = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[]);
    assert_eq!(
        run(&e, 0, &mut ack.clone()),
        Verdict::Drop(DropReason::NoConnectionNonSyn)
    );
    set(&e, "sloppy_tcp", 1);
    assert_eq!(run(&e, 1, &mut ack), fwd(ip4(RIP4)));
    assert_eq!(e.connection_count(), 1);
    // A RST never creates one.
    let mut rst = tcp4(CLIENT4, CPORT + 1, VIP4, VPORT, 64, RST, &[]);
    assert_eq!(
        run(&e, 2, &mut rst),
        Verdict::Drop(DropReason::NoConnectionNonSyn)
    );
}

#[test]
fn with_the_switch_a_syn_on_a_removed_servers_connection_goes_to_another_at_once() {
    // ip_vs_in_hook since 5.9: expire_nodest_conn expires the connection and schedules the
    // packet that found it (a client reusing its port, a SYN retransmitted).
    for expire in [false, true] {
        let e = nat_engine();
        let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
        e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).unwrap();
        set(&e, "expire_nodest_conn", u32::from(expire));
        let syn = || tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
        assert_eq!(run(&e, 0, &mut syn()), fwd(ip4(RIP4)));
        e.del_dest(&k, ip4(RIP4), RPORT).unwrap();
        let want = if expire {
            fwd(ip4(RIP4B))
        } else {
            Verdict::Drop(DropReason::NoDestination)
        };
        assert_eq!(run(&e, 1, &mut syn()), want, "expire {expire}");
    }
}

#[test]
fn packets_of_a_removed_servers_connection_are_dropped_and_expired_with_the_switch() {
    for expire in [false, true] {
        let e = nat_engine();
        let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
        e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).unwrap();
        set(&e, "expire_nodest_conn", u32::from(expire));
        assert_eq!(
            run(&e, 0, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
            fwd(ip4(RIP4))
        );
        e.del_dest(&k, ip4(RIP4), RPORT).unwrap();
        // Without the switch the packet is dropped. With it (IPVS since 5.9) the connection
        // expires and the packet is taken for a new one: a segment without SYN opens none.
        assert_eq!(
            run(&e, 1, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
            Verdict::Drop(if expire {
                DropReason::NoConnectionNonSyn
            } else {
                DropReason::NoDestination
            })
        );
        assert_eq!(
            e.connection_count(),
            usize::from(!expire),
            "expire {expire}"
        );
        // Replies from the removed server are still translated while the connection lives.
        if !expire {
            assert_eq!(
                run(
                    &e,
                    2,
                    &mut tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, SYNACK, &[])
                ),
                fwd(ip4(CLIENT4))
            );
        }
    }
}

#[test]
fn a_removed_server_added_again_takes_its_connections_back() {
    // IPVS's dest trash: a server removed while connections hold it (keepalived removing it
    // on a failed check, a director re-reading its configuration) comes back as it was when
    // added again, and those connections forward again; another server does not take them.
    let e = nat_engine();
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    assert_eq!(
        run(&e, 0, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
        fwd(ip4(RIP4))
    );
    e.del_dest(&k, ip4(RIP4), RPORT).unwrap();
    assert_eq!(
        run(&e, 1, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
        Verdict::Drop(DropReason::NoDestination)
    );
    e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).unwrap();
    assert_eq!(
        run(&e, 2, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
        Verdict::Drop(DropReason::NoDestination),
        "another server does not revive the connection"
    );
    e.add_dest(&k, dest(ip4(RIP4), RPORT, 3)).unwrap();
    assert_eq!(
        run(&e, 3, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
        fwd(ip4(RIP4))
    );
    let revived = listed_dest(&e, Millis(3), ip4(RIP4));
    assert_eq!(revived.spec.weight, 3, "with the weight it was added with");
    assert_eq!(
        revived.active_conns + revived.inactive_conns,
        1,
        "counting the connection it took back"
    );
}

/// The TCP service on VIP4, as `-L` lists it.
fn listed_service(e: &Engine, now: Millis) -> ServiceStatus {
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.services(now)
        .into_iter()
        .find(|s| s.spec.key == k)
        .expect("listed")
}

#[test]
fn a_deleted_services_connections_stay_and_forward_again_when_it_comes_back() {
    // IPVS's ip_vs_del_service and ip_vs_flush: the service goes, its connections stay (their
    // real servers in the trash, unavailable) until they time out, and an `ipvsadm -C` then
    // `-R` (a restore, a keepalived reload) brings them back. Both ways of deleting, with and
    // without expire_nodest_conn.
    for (clear, expire) in [(false, false), (true, false), (false, true)] {
        let e = nat_engine();
        let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
        set(&e, "expire_nodest_conn", u32::from(expire));
        let ack = || tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[]);
        let case = format!("clear {clear}, expire_nodest_conn {expire}");
        assert_eq!(
            run(&e, 0, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
            fwd(ip4(RIP4))
        );
        assert_eq!(run(&e, 1, &mut ack()), fwd(ip4(RIP4)));
        assert_eq!(listed_service(&e, Millis(1)).stats.in_pkts, 2);
        if clear {
            e.clear();
        } else {
            e.del_service(&k).unwrap();
        }
        assert!(e.services(Millis(2)).iter().all(|s| s.spec.key != k));
        assert_eq!(e.connections(Millis(2)).len(), 1, "{case}: still listed");
        // The client's packets are dropped; with the switch the connection goes, and the
        // packet, no service taking it, is the kernel's.
        assert_eq!(
            run(&e, 2, &mut ack()),
            if expire {
                Verdict::PassToKernel
            } else {
                Verdict::Drop(DropReason::NoDestination)
            },
            "{case}"
        );
        if expire {
            assert_eq!(e.connection_count(), 0, "{case}");
            continue;
        }
        // The real server's replies are still translated.
        assert_eq!(
            run(&e, 3, &mut tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, ACK, &[])),
            fwd(ip4(CLIENT4)),
            "{case}"
        );
        // Another client's SYN is nobody's: no service takes it.
        assert_eq!(
            run(
                &e,
                4,
                &mut tcp4(CLIENT4, CPORT + 1, VIP4, VPORT, 64, SYN, &[])
            ),
            Verdict::PassToKernel,
            "{case}"
        );
        // The service comes back: still without its server, the packet is dropped.
        e.add_service(svc(k, SchedulerKind::Wlc)).unwrap();
        assert_eq!(
            run(&e, 5, &mut ack()),
            Verdict::Drop(DropReason::NoDestination),
            "{case}"
        );
        // With it, the connection forwards again, counted for the service, whose counters
        // started from zero.
        e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).unwrap();
        assert_eq!(run(&e, 6, &mut ack()), fwd(ip4(RIP4)), "{case}");
        let back = listed_service(&e, Millis(6));
        assert_eq!((back.stats.conns, back.stats.in_pkts), (0, 1), "{case}");
        assert_eq!(
            back.dests[0].active_conns, 1,
            "{case}: the server counts the connection it took back"
        );
    }
}

#[test]
fn a_syn_reusing_a_deleted_services_closing_connection_is_the_kernels() {
    // conn_reuse_mode (1, the default): a SYN finding TIME_WAIT expires the connection and is
    // scheduled afresh; no service left to take it, it is the kernel's (as IPVS and the BPF
    // plane leave it).
    let e = nat_engine();
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    for (t, frame) in [
        (0, tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
        (1, tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, SYNACK, &[])),
        (2, tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
        (3, tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, FINACK, &[])),
        (4, tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, FINACK, &[])),
    ] {
        run(&e, t, &mut frame.clone());
    }
    assert_eq!(e.connections(Millis(4))[0].state, ConnState::TimeWait);
    e.del_service(&k).unwrap();
    assert_eq!(
        run(&e, 5, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
        Verdict::PassToKernel
    );
    assert_eq!(e.connection_count(), 0);
}

#[test]
fn a_flushed_firewall_mark_services_connections_are_found_by_its_old_rules() {
    // -C clears the mark rules with the services; the connections of a firewall-mark service
    // are still found (by the rules that classified them) and dropped, an ICMP error about
    // one still reaches its server, and the restored rules, service and server take them back.
    let e = Engine::new(EngineConfig::default());
    let k = ServiceKey::fwmark(1, false);
    let rule = MarkRule {
        proto: Protocol::Tcp,
        addr: ip4(VIP4),
        prefix_len: 32,
        ports: (VPORT, VPORT),
        mark: 1,
    };
    let restore = |e: &Engine| {
        e.add_mark_rule(rule).unwrap();
        e.add_service(svc(k, SchedulerKind::Rr)).unwrap();
        e.add_dest(&k, dest(ip4(RIP4), 0, 1)).unwrap();
    };
    restore(&e);
    let ack = || tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[]);
    assert_eq!(
        run(&e, 0, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
        fwd(ip4(RIP4))
    );
    e.clear();
    assert!(e.mark_rules().is_empty());
    assert_eq!(
        run(&e, 1, &mut ack()),
        Verdict::Drop(DropReason::NoDestination)
    );
    let quoted = l3(&tcp4(VIP4, VPORT, CLIENT4, CPORT, 60, ACK, &[]))[..28].to_vec();
    let port = etherparse::Icmpv4Type::DestinationUnreachable(
        etherparse::icmpv4::DestUnreachableHeader::Port,
    );
    assert_eq!(
        run(&e, 2, &mut icmp4_error(CLIENT4, VIP4, 64, port, &quoted)),
        fwd(ip4(RIP4)),
        "the client's ICMP error goes to the connection's server"
    );
    restore(&e);
    assert_eq!(run(&e, 3, &mut ack()), fwd(ip4(RIP4)));
}

#[test]
fn a_deleted_service_goes_for_good_with_its_last_connection() {
    let e = nat_engine();
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    assert_eq!(
        run(&e, 0, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
        fwd(ip4(RIP4))
    );
    e.del_service(&k).unwrap();
    assert_eq!(e.spec_walk().retired_services().len(), 1);
    assert!(!e.expire(Millis(30_000)), "SYN_RECV lasts 60 s");
    assert!(
        e.expire(Millis(60_000)),
        "the configuration changed with the last connection"
    );
    assert_eq!(e.spec_walk().retired_services().len(), 0);
    assert!(!e.expire(Millis(61_000)));
    // Added again, the server is a new one: nothing of the old connection.
    e.add_service(svc(k, SchedulerKind::Wlc)).unwrap();
    e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).unwrap();
    let again = listed_service(&e, Millis(61_000));
    assert_eq!((again.stats.conns, again.dests[0].inactive_conns), (0, 0));
    // A service deleted without connections is not kept at all.
    let u = key(Protocol::Udp, ip4(VIP4), VPORT);
    e.del_service(&u).unwrap();
    assert_eq!(e.spec_walk().retired_services().len(), 0);
}

#[test]
fn a_removed_server_without_connections_comes_back_new_though_a_worker_held_it() {
    // A worker's snapshot cache still holds the removed server (it has seen no packet since),
    // but no connection does: added again, it is a new server, its counters from zero.
    let e = nat_engine();
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    let mut cache = e.snapshot_cache();
    let mut syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    let v = e.handle_cached(&mut cache, Millis(0), &mut PacketMeta::default(), &mut syn);
    assert_eq!(v, fwd(ip4(RIP4)));
    // The connection ends (SYN_RECV's 60 s): the server has counted it, and holds none.
    e.expire(Millis(61_000));
    assert_eq!(e.connection_count(), 0);
    e.del_dest(&k, ip4(RIP4), RPORT).unwrap();
    e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).unwrap();
    let again = listed_dest(&e, Millis(61_000), ip4(RIP4));
    assert_eq!(again.stats.conns, 0, "a new server's counters");
    drop(cache);
}

#[test]
fn schedule_icmp_schedules_an_error_without_a_connection() {
    use etherparse::icmpv4::DestUnreachableHeader;
    use etherparse::Icmpv4Type;
    let e = nat_engine();
    // A "fragmentation needed" from a router about VIP -> client data of a flow this director
    // never saw (another director of an ECMP group scheduled it).
    let quoted = l3(&tcp4(VIP4, VPORT, CLIENT4, CPORT, 64, ACK, &[0u8; 64]));
    let frag = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: 1400,
    });
    let build = || {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(ROUTER4, VIP4, 64)
            .icmpv4(frag.clone())
            .write(&mut out, &quoted)
            .expect("build");
        out
    };
    assert_eq!(run(&e, 0, &mut build()), Verdict::PassToKernel);
    assert_eq!(e.connection_count(), 0);
    set(&e, "schedule_icmp", 1);
    assert_eq!(run(&e, 1, &mut build()), fwd(ip4(RIP4)));
    assert_eq!(e.connection_count(), 1);
    let c = &e.connections(Millis(1))[0];
    assert_eq!(
        c.client,
        format!("{}:{CPORT}", ip4(CLIENT4)).parse().unwrap()
    );
}
