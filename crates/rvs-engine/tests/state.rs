//! Time-driven tests with a simulated clock: TCP states, timeouts, ActiveConn/InActConn,
//! expiry, destination removal, counters and rates, scheduling through the engine.

mod common;

use common::*;
use rvs_engine::*;

fn conn_state(e: &Engine, now: u64) -> Vec<(ConnState, u64)> {
    e.connections(Millis(now))
        .iter()
        .map(|c| (c.state, c.expires_in.0))
        .collect()
}

fn counts(e: &Engine) -> (u32, u32) {
    let s = e.services(Millis(0));
    let d = &s[0].dests[0];
    (d.active_conns, d.inactive_conns)
}

#[test]
fn tcp_lifecycle_states_timeouts_and_counts() {
    let e = nat_engine();
    let c = |f: Flags| tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, f, &[]);
    let s = |f: Flags| tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, f, &[]);
    // (frame, state after, timeout after, (ActiveConn, InActConn) after)
    type Step = (Vec<u8>, ConnState, u64, (u32, u32));
    let steps: Vec<Step> = vec![
        (c(SYN), ConnState::SynRecv, 60_000, (0, 1)),
        (s(SYNACK), ConnState::SynRecv, 60_000, (0, 1)),
        (c(ACK), ConnState::Established, 900_000, (1, 0)),
        (s(ACK), ConnState::Established, 900_000, (1, 0)),
        (c(FINACK), ConnState::CloseWait, 60_000, (0, 1)),
        (s(FINACK), ConnState::TimeWait, 120_000, (0, 1)),
        (c(ACK), ConnState::TimeWait, 120_000, (0, 1)),
    ];
    let mut now = 0;
    for (i, (mut f, st, timeout, cnt)) in steps.into_iter().enumerate() {
        now += 100;
        assert!(
            matches!(run(&e, now, &mut f), Verdict::Forward { .. }),
            "step {i}"
        );
        assert_eq!(conn_state(&e, now), vec![(st, timeout)], "step {i}");
        assert_eq!(counts(&e), cnt, "counts at step {i}");
    }
    // Just before the TIME_WAIT timer runs out the connection is still there.
    e.expire(Millis(now + 119_999));
    assert_eq!(e.connection_count(), 1);
    assert_eq!(
        conn_state(&e, now + 119_000),
        vec![(ConnState::TimeWait, 1_000)]
    );
    e.expire(Millis(now + 120_000));
    assert_eq!(e.connection_count(), 0);
    assert_eq!(counts(&e), (0, 0));
}

#[test]
fn established_expiry_fixes_active_count_and_set_timeouts() {
    let e = nat_engine();
    e.set_timeouts(TimeoutUpdate {
        tcp: 30,
        tcpfin: 0,
        udp: 10,
    });
    assert_eq!(
        e.timeouts(),
        Timeouts {
            tcp: 30,
            tcpfin: 120,
            udp: 10
        }
    );
    for port in 1000..1010u16 {
        let mut f = tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[]);
        run(&e, 0, &mut f);
        let mut f = tcp4(CLIENT4, port, VIP4, VPORT, 64, ACK, &[]);
        run(&e, 0, &mut f);
    }
    let mut u = udp4(CLIENT4, 9, VIP4, VPORT, 64, b"x");
    run(&e, 0, &mut u);
    assert_eq!(counts(&e), (10, 0));
    let udp_dest = e
        .services(Millis(0))
        .into_iter()
        .find(|s| s.spec.key.proto == Protocol::Udp && s.spec.key.addr == ip4(VIP4))
        .expect("udp svc");
    assert_eq!(
        (
            udp_dest.dests[0].active_conns,
            udp_dest.dests[0].inactive_conns
        ),
        (0, 1)
    );
    assert!(conn_state(&e, 0).contains(&(ConnState::Udp, 10_000)));
    // A packet re-arms the timer.
    let mut f = tcp4(CLIENT4, 1000, VIP4, VPORT, 64, ACK, &[]);
    run(&e, 20_000, &mut f);
    e.expire(Millis(30_000));
    assert_eq!(e.connection_count(), 1);
    assert_eq!(counts(&e), (1, 0));
    e.expire(Millis(50_000));
    assert_eq!(e.connection_count(), 0);
    assert_eq!(counts(&e), (0, 0));
}

#[test]
fn expired_connection_is_not_used_before_expire_runs() {
    let e = nat_engine();
    let mut f = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    run(&e, 0, &mut f);
    // SYN_RECV lasts 60 s; at 61 s a data packet finds no connection.
    let mut f = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[]);
    assert_eq!(
        run(&e, 61_000, &mut f),
        Verdict::Drop(DropReason::NoConnectionNonSyn)
    );
    assert_eq!(e.connection_count(), 0);
    assert_eq!(counts(&e), (0, 0));
}

#[test]
fn syn_on_time_wait_reschedules() {
    let e = nat_engine();
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).expect("dest");
    for f in [SYN, ACK, FINACK] {
        let mut p = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, f, &[]);
        assert_eq!(run(&e, 0, &mut p), fwd(ip4(RIP4)));
    }
    let mut p = tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, FINACK, &[]);
    run(&e, 0, &mut p);
    assert_eq!(conn_state(&e, 0)[0].0, ConnState::TimeWait);
    let mut p = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(
        run(&e, 10, &mut p),
        fwd(ip4(RIP4B)),
        "rr moves on to the second server"
    );
    assert_eq!(e.connection_count(), 1);
    assert_eq!(e.services(Millis(0))[0].stats.conns, 2);
}

#[test]
fn quiesced_and_deleted_destinations_keep_their_connections() {
    let e = nat_engine();
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    let mut p = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut p), fwd(ip4(RIP4)));
    e.edit_dest(&k, dest(ip4(RIP4), RPORT, 0)).expect("quiesce");
    let mut p = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[]);
    assert_eq!(
        run(&e, 1, &mut p),
        fwd(ip4(RIP4)),
        "existing flow continues at weight 0"
    );
    let mut p = tcp4(CLIENT4, CPORT + 1, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 1, &mut p), Verdict::Drop(DropReason::NoDestination));
    e.del_dest(&k, ip4(RIP4), RPORT).expect("del");
    let mut p = tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, ACK, &[]);
    assert_eq!(
        run(&e, 2, &mut p),
        fwd(ip4(CLIENT4)),
        "replies still translated"
    );
    assert_eq!(e.connection_count(), 1);
    // As IPVS, deleting the service leaves the connection to its timer (policy.rs), also when
    // its server was removed before: the client's packets are still found and dropped.
    e.del_service(&k).expect("del svc");
    assert_eq!(e.connection_count(), 1);
    assert_eq!(
        run(&e, 3, &mut tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, ACK, &[])),
        fwd(ip4(CLIENT4)),
        "replies still translated"
    );
    assert_eq!(
        run(&e, 4, &mut tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
        Verdict::Drop(DropReason::NoDestination)
    );
}

#[test]
fn counters_rates_and_zero() {
    let e = nat_engine();
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    let mut total_in = 0u64;
    let mut total_out = 0u64;
    // 10 s of traffic: each 2 s, 4 new connections with 1 request and 1 reply each.
    let mut port = 2000;
    for tick in 1..=5u64 {
        for _ in 0..4 {
            port += 1;
            let mut a = tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[]);
            total_in += (a.len() - 14) as u64;
            run(&e, tick * 2000 - 1000, &mut a);
            let mut b = tcp4(RIP4, RPORT, CLIENT4, port, 64, SYNACK, b"xy");
            total_out += (b.len() - 14) as u64;
            run(&e, tick * 2000 - 1000, &mut b);
        }
        e.estimate_rates(Millis(tick * 2000));
    }
    let s = &e.services(Millis(10_000))[0];
    assert_eq!(s.spec.key, k);
    let want = Stats {
        conns: 20,
        in_pkts: 20,
        out_pkts: 20,
        in_bytes: total_in,
        out_bytes: total_out,
    };
    assert_eq!(s.stats, want);
    assert_eq!(s.dests[0].stats, want);
    // EWMA after 5 periods of 2 conn/s: 2 * (1 - 0.75^5) = 1.53 -> rounds to 2 (kernel rounding).
    assert_eq!(s.rates.cps, 2);
    assert_eq!(s.rates.in_pps, 2);
    assert!(s.rates.in_bps > 0 && s.rates.out_bps > s.rates.in_bps);
    e.zero(Some(&k)).expect("zero");
    let s = &e.services(Millis(10_000))[0];
    assert_eq!(s.stats, Stats::default());
    assert_eq!(s.rates, Rates::default());
    assert_eq!(s.dests[0].stats, Stats::default());
    assert_eq!(
        e.zero(Some(&key(Protocol::Tcp, ip4(VIP4), 1))),
        Err(EngineError::NoService)
    );
}

#[test]
fn schedulers_through_the_engine() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Wrr)).expect("svc");
    e.add_dest(&k, dest(ip4([192, 168, 7, 1]), RPORT, 4))
        .expect("a");
    e.add_dest(&k, dest(ip4([192, 168, 7, 2]), RPORT, 3))
        .expect("b");
    e.add_dest(&k, dest(ip4([192, 168, 7, 3]), RPORT, 2))
        .expect("c");
    let mut picks = String::new();
    for port in 0..9u16 {
        let mut f = tcp4(CLIENT4, 3000 + port, VIP4, VPORT, 64, SYN, &[]);
        match run(&e, 0, &mut f) {
            Verdict::Forward {
                next_hop_ip: std::net::IpAddr::V4(a),
                ..
            } => picks.push((b'A' + a.octets()[3] - 1) as char),
            v => panic!("unexpected {v:?}"),
        }
    }
    // As in the kernel: -A leaves cw = 0, the first -a sets cw = mw = 4 - (4 - 1) = 1 and the
    // later ones keep it, so the first round is at weight 1 before the 4,3,2 interleaving.
    assert_eq!(picks, "ABCAABABC");
    // wlc: A has 4 inactive (weight 4), B 3 (w 3), C 2 (w 2): all 1.0 per weight -> A first.
    e.edit_service(svc(k, SchedulerKind::Wlc)).expect("wlc");
    let mut f = tcp4(CLIENT4, 4000, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut f), fwd(ip4([192, 168, 7, 1])));
    // Now A has 5/4 > B 3/3 -> B.
    let mut f = tcp4(CLIENT4, 4001, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut f), fwd(ip4([192, 168, 7, 2])));
    // Upper threshold: C with 2 conns and u_threshold 2 is overloaded only once it reaches 2.
    let mut c = dest(ip4([192, 168, 7, 3]), RPORT, 100);
    c.u_threshold = 3;
    e.edit_dest(&k, c).expect("thresh");
    let mut f = tcp4(CLIENT4, 4002, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut f), fwd(ip4([192, 168, 7, 3])));
    let mut f = tcp4(CLIENT4, 4003, VIP4, VPORT, 64, SYN, &[]);
    assert_ne!(
        run(&e, 0, &mut f),
        fwd(ip4([192, 168, 7, 3])),
        "C is overloaded at 3 conns"
    );
}

#[test]
fn rr_keeps_its_place_across_real_server_changes() {
    // IPVS's rr goes on after its last pick whatever the edits; when that server is removed,
    // after its predecessor (`ip_vs_rr_del_dest`). A batch picks up where the data plane got to
    // while it was open.
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("svc");
    let rs = |i: u8| ip4([192, 168, 7, i]);
    for i in 1..=3 {
        e.add_dest(&k, dest(rs(i), RPORT, 1)).expect("dest");
    }
    let mut port = 3000;
    let mut picks = |n: usize| -> String {
        (0..n)
            .map(|_| {
                port += 1;
                let mut f = tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[]);
                match run(&e, 0, &mut f) {
                    Verdict::Forward {
                        next_hop_ip: std::net::IpAddr::V4(a),
                        ..
                    } => (b'0' + a.octets()[3]) as char,
                    v => panic!("unexpected {v:?}"),
                }
            })
            .collect()
    };
    assert_eq!(picks(2), "12");
    e.add_dest(&k, dest(rs(4), RPORT, 1)).expect("add 4");
    assert_eq!(picks(3), "341");
    e.del_dest(&k, rs(2), RPORT).expect("del 2");
    assert_eq!(picks(1), "3");
    e.del_dest(&k, rs(3), RPORT).expect("del 3, the last pick");
    assert_eq!(picks(1), "4");
    e.batch(|| {
        e.add_dest(&k, dest(rs(5), RPORT, 1)).expect("add 5");
        assert_eq!(picks(1), "1", "the published list until the batch ends");
    });
    assert_eq!(picks(3), "451");
}

#[test]
fn one_packet_scheduling_keeps_no_connection() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Udp, ip4(VIP4), 53);
    let mut s = svc(k, SchedulerKind::Rr);
    s.one_packet = true;
    e.add_service(s).expect("svc");
    e.add_dest(&k, dest(ip4(RIP4), 53, 1)).expect("a");
    e.add_dest(&k, dest(ip4(RIP4B), 53, 1)).expect("b");
    let mut hops = Vec::new();
    for i in 0..4 {
        let mut f = udp4(CLIENT4, 5353, VIP4, 53, 64, b"q");
        hops.push(run(&e, 0, &mut f));
        let want = if i % 2 == 0 { RIP4 } else { RIP4B };
        assert_eq!(f[14 + 16..14 + 20], want, "destination rewritten");
    }
    assert_eq!(
        hops,
        vec![
            fwd(ip4(RIP4)),
            fwd(ip4(RIP4B)),
            fwd(ip4(RIP4)),
            fwd(ip4(RIP4B))
        ]
    );
    assert_eq!(e.connection_count(), 0);
    let st = &e.services(Millis(0))[0];
    assert_eq!((st.stats.conns, st.stats.in_pkts), (4, 4));
    assert!(st
        .dests
        .iter()
        .all(|d| d.inactive_conns == 0 && d.active_conns == 0));
}
