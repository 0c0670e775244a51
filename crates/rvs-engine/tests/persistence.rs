//! Persistence templates with a simulated clock: grouping by netmask, re-arming, control of
//! connections, PersistConn, port-0 services, expire_quiescent_template and conn_reuse_mode.

mod common;

use std::collections::HashSet;

use common::*;
use rvs_engine::*;

const RIP4C: [u8; 4] = [192, 168, 7, 12];

/// A persistent rr TCP service on VIP4:`port` over three real servers (port 0: the client's).
fn persistent_engine(port: u16, timeout_s: u32, prefix_mask: [u8; 4]) -> (Engine, ServiceKey) {
    let e = Engine::new(EngineConfig {
        expected_connections: 1024,
        shards: 8,
        ..EngineConfig::default()
    });
    let k = key(Protocol::Tcp, ip4(VIP4), port);
    let mut spec = svc(k, SchedulerKind::Rr);
    spec.persistence = Some(Persistence {
        timeout_s,
        netmask: ip4(prefix_mask),
        pe: None,
    });
    e.add_service(spec).expect("add");
    let rport = if port == 0 { 0 } else { RPORT };
    for r in [RIP4, RIP4B, RIP4C] {
        e.add_dest(&k, dest(ip4(r), rport, 1)).expect("dest");
    }
    (e, k)
}

fn syn_to(e: &Engine, now: u64, client: [u8; 4], cport: u16, vport: u16) -> Verdict {
    let mut f = tcp4(client, cport, VIP4, vport, 64, SYN, &[]);
    run(e, now, &mut f)
}

fn next_hop(v: &Verdict) -> Option<std::net::IpAddr> {
    match v {
        Verdict::Forward { next_hop_ip, .. } => Some(*next_hop_ip),
        _ => None,
    }
}

fn persist_conns(e: &Engine) -> Vec<u32> {
    e.services(Millis(0))[0]
        .dests
        .iter()
        .map(|d| d.persist_conns)
        .collect()
}

#[test]
fn clients_of_one_masked_network_stay_on_one_server() {
    let (e, _) = persistent_engine(VPORT, 300, [255, 255, 255, 0]);
    let first = next_hop(&syn_to(&e, 1, [203, 0, 113, 5], 40000, VPORT)).unwrap();
    for i in 0..10u16 {
        for client in [[203, 0, 113, 5], [203, 0, 113, 77]] {
            let v = syn_to(&e, 2 + u64::from(i), client, 41000 + i, VPORT);
            assert_eq!(next_hop(&v), Some(first), "connection {i} of {client:?}");
        }
    }
    // Another /24 gets the scheduler's next pick (rr: the second server).
    let other = next_hop(&syn_to(&e, 50, [198, 51, 100, 9], 40000, VPORT)).unwrap();
    assert_ne!(other, first);
    // One template per /24, counted as PersistConn, listed with the masked client and port 0.
    assert_eq!(e.template_count(), 2);
    assert_eq!(persist_conns(&e).iter().sum::<u32>(), 2);
    let tpl: Vec<_> = e
        .connections(Millis(50))
        .into_iter()
        .filter(|c| c.template)
        .collect();
    assert_eq!(tpl.len(), 2);
    let t = tpl
        .iter()
        .find(|c| c.client.ip() == ip4([203, 0, 113, 0]))
        .expect("template of 203.0.113.0/24");
    assert_eq!(t.client.port(), 0);
    assert_eq!(t.virtual_addr.port(), VPORT);
    assert_eq!(t.dest, std::net::SocketAddr::new(first, RPORT));
    assert_eq!(t.state, ConnState::None);
    // Re-armed by the last connection at 11 ms.
    assert_eq!(t.expires_in, Millis(300_000 - 39));
    // Active/inactive counts are the connections only.
    let s = &e.services(Millis(0))[0];
    let conns: u32 = s.dests.iter().map(|d| d.inactive_conns).sum();
    assert_eq!(conns, 22);
}

#[test]
fn template_lives_while_it_controls_connections_and_is_rearmed_by_new_ones() {
    let (e, _) = persistent_engine(VPORT, 10, [255, 255, 255, 255]);
    let c = [203, 0, 113, 5];
    let first = next_hop(&syn_to(&e, 0, c, 40000, VPORT)).unwrap();
    // A second connection at 5 s re-arms the template to 15 s.
    assert_eq!(next_hop(&syn_to(&e, 5_000, c, 40001, VPORT)), Some(first));
    // Both connections stay (SYN_RECV timeout 60 s) well past the persistence timeout: the
    // template is re-armed instead of expiring.
    e.expire(Millis(30_000));
    assert_eq!(e.template_count(), 1);
    assert_eq!(persist_conns(&e).iter().sum::<u32>(), 1);
    // Re-armed at 30 s until 40 s; at 41 s the connections (60 s) still live: re-armed again.
    e.expire(Millis(41_000));
    assert_eq!(e.template_count(), 1);
    // Connections gone and the re-armed template's time over (51 s): the template goes.
    e.expire(Millis(65_001));
    assert_eq!(e.connection_count(), 0);
    assert_eq!(e.template_count(), 0);
    assert_eq!(persist_conns(&e), vec![0, 0, 0]);
    // A fresh template: rr moves on to the next server.
    let again = next_hop(&syn_to(&e, 200_001, c, 40002, VPORT)).unwrap();
    assert_ne!(again, first);
}

#[test]
fn a_deleted_services_template_sends_its_client_back_when_it_returns() {
    // IPVS keeps a deleted service's templates as its connections: a restore that adds the
    // service and its servers again (in another order here, so rr alone would pick another
    // server) sends the client where it went before.
    let (e, k) = persistent_engine(VPORT, 300, [255, 255, 255, 255]);
    let c = [203, 0, 113, 5];
    let first = next_hop(&syn_to(&e, 0, c, 40000, VPORT)).unwrap();
    e.clear();
    assert_eq!(e.template_count(), 1, "the template stays");
    let mut spec = svc(k, SchedulerKind::Rr);
    spec.persistence = Some(Persistence {
        timeout_s: 300,
        netmask: ip4([255, 255, 255, 255]),
        pe: None,
    });
    e.add_service(spec).expect("add again");
    // The server the client went to comes last.
    let mut order = vec![RIP4, RIP4B, RIP4C];
    order.sort_by_key(|r| ip4(*r) == first);
    for r in order {
        e.add_dest(&k, dest(ip4(r), RPORT, 1)).expect("dest");
    }
    assert_eq!(next_hop(&syn_to(&e, 1_000, c, 40001, VPORT)), Some(first));
    let other = [203, 0, 113, 6];
    assert_ne!(
        next_hop(&syn_to(&e, 1_000, other, 40000, VPORT)),
        Some(first)
    );
}

#[test]
fn template_without_connections_expires_after_the_timeout() {
    let (e, _) = persistent_engine(VPORT, 10, [255, 255, 255, 255]);
    let c = [203, 0, 113, 5];
    let first = next_hop(&syn_to(&e, 0, c, 40000, VPORT)).unwrap();
    let (e, _) = persistent_engine(VPORT, 10, [255, 255, 255, 255]);
    assert_eq!(next_hop(&syn_to(&e, 0, c, 40000, VPORT)), Some(first));
    e.set_timeouts(TimeoutUpdate::default());
    // The connection expires at 60 s; the template (armed to 10 s) is re-armed at each expiry
    // pass while the connection lives, then goes at its next run-out.
    e.expire(Millis(9_999));
    assert_eq!(e.template_count(), 1);
    e.expire(Millis(60_000));
    assert_eq!(e.connection_count(), 0);
    e.expire(Millis(70_000));
    assert_eq!(e.template_count(), 0);
}

#[test]
fn port_zero_service_takes_every_port_and_keeps_it() {
    let (e, _) = persistent_engine(0, 300, [255, 255, 255, 255]);
    let c = [203, 0, 113, 5];
    let mut f = tcp4(c, 40000, VIP4, 443, 64, SYN, &[]);
    let v = run(&e, 1, &mut f);
    let rs = next_hop(&v).expect("scheduled");
    // The real server gets the client's destination port.
    let ip = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
    let Some(etherparse::TransportSlice::Tcp(tcp)) = ip.transport else {
        panic!("tcp");
    };
    assert_eq!(tcp.destination_port(), 443);
    assert_eq!(next_hop(&syn_to(&e, 2, c, 40001, 80)), Some(rs));
    let t: Vec<_> = e
        .connections(Millis(2))
        .into_iter()
        .filter(|c| c.template)
        .collect();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].virtual_addr.port(), 0);
    assert_eq!(t[0].dest.port(), 0);
    // Without persistence a port-0 service is refused, as by ipvsadm.
    let mut spec = svc(key(Protocol::Tcp, ip4(VIP4), 0), SchedulerKind::Rr);
    spec.key.addr = ip4([10, 99, 1, 101]);
    assert!(e.add_service(spec).is_err());
}

#[test]
fn quiescent_template_kept_unless_the_switch_is_on_and_removed_dest_reschedules() {
    let (e, k) = persistent_engine(VPORT, 300, [255, 255, 255, 255]);
    let c = [203, 0, 113, 5];
    let first = next_hop(&syn_to(&e, 0, c, 40000, VPORT)).unwrap();
    let std::net::IpAddr::V4(f4) = first else {
        panic!("v4")
    };
    e.edit_dest(&k, dest(first, RPORT, 0)).unwrap();
    // Weight 0 (quiescent): the template still sends the client there.
    assert_eq!(next_hop(&syn_to(&e, 1, c, 40001, VPORT)), Some(first));
    let mut p = e.policy();
    p.expire_quiescent_template = true;
    e.set_policy(p);
    let moved = next_hop(&syn_to(&e, 2, c, 40002, VPORT)).unwrap();
    assert_ne!(moved, first);
    assert_ne!(moved, std::net::IpAddr::V4(f4));
    // Removing the template's server reschedules too.
    e.del_dest(&k, moved, RPORT).unwrap();
    let third = next_hop(&syn_to(&e, 3, c, 40003, VPORT)).unwrap();
    assert!(third != moved && third != first);
    assert_eq!(e.template_count(), 1);
}

#[test]
fn conn_reuse_mode_decides_whether_a_syn_on_time_wait_reschedules() {
    for (mode, expect_new) in [(1u8, true), (0, false)] {
        let e = Engine::new(EngineConfig::default());
        let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
        e.add_service(svc(k, SchedulerKind::Rr)).unwrap();
        e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).unwrap();
        e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).unwrap();
        let mut p = e.policy();
        p.conn_reuse_mode = mode;
        e.set_policy(p);
        let c = |f: Flags| tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, f, &[]);
        let s = |from: [u8; 4], f: Flags| tcp4(from, RPORT, CLIENT4, CPORT, 64, f, &[]);
        let first = next_hop(&run(&e, 1, &mut c(SYN))).unwrap();
        let std::net::IpAddr::V4(r) = first else {
            panic!("v4")
        };
        run(&e, 2, &mut s(r.octets(), SYNACK));
        run(&e, 3, &mut c(ACK));
        run(&e, 4, &mut c(FINACK));
        run(&e, 5, &mut s(r.octets(), FINACK));
        assert_eq!(e.connections(Millis(5))[0].state, ConnState::TimeWait);
        let again = next_hop(&run(&e, 6, &mut c(SYN))).unwrap();
        assert_eq!(again != first, expect_new, "conn_reuse_mode {mode}");
    }
}

/// Two mark rules (ports 80 and 443 of the VIP) to one persistent firewall-mark service.
fn fwmark_engine(persistent: bool) -> Engine {
    let e = Engine::new(EngineConfig::default());
    let k = ServiceKey::fwmark(1, false);
    let mut spec = svc(k, SchedulerKind::Rr);
    if persistent {
        spec.persistence = Some(Persistence {
            timeout_s: 300,
            netmask: ip4([255, 255, 255, 255]),
            pe: None,
        });
    }
    e.add_service(spec).unwrap();
    for r in [RIP4, RIP4B, RIP4C] {
        e.add_dest(&k, dest(ip4(r), 0, 1)).unwrap();
    }
    for port in [80, 443] {
        e.add_mark_rule(MarkRule {
            proto: Protocol::Tcp,
            addr: ip4([10, 99, 1, 0]),
            prefix_len: 24,
            ports: (port, port),
            mark: 1,
        })
        .unwrap();
    }
    e
}

#[test]
fn mark_rules_classify_into_the_firewall_mark_service() {
    let e = fwmark_engine(false);
    assert_eq!(e.mark_rules().len(), 2);
    let c = [203, 0, 113, 5];
    // Both marked ports are scheduled by the mark's service (rr over three servers), and the
    // real server gets the client's destination port.
    let mut hops = Vec::new();
    for (i, port) in [80u16, 443, 80].into_iter().enumerate() {
        let mut f = tcp4(c, 40000 + i as u16, VIP4, port, 64, SYN, &[]);
        hops.push(next_hop(&run(&e, 1, &mut f)).expect("scheduled"));
        let ip = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::TransportSlice::Tcp(tcp)) = ip.transport else {
            panic!("tcp");
        };
        assert_eq!(tcp.destination_port(), port);
    }
    assert_eq!(
        hops,
        vec![ip4(RIP4), ip4(RIP4B), ip4(RIP4C)],
        "rr across both ports"
    );
    // Unmarked traffic (another port, UDP, another network) is not the service's.
    let mut f = tcp4(c, 40010, VIP4, 22, 64, SYN, &[]);
    assert_eq!(run(&e, 2, &mut f), Verdict::PassToKernel);
    let mut f = udp4(c, 40011, VIP4, 80, 64, b"x");
    assert_eq!(run(&e, 2, &mut f), Verdict::PassToKernel);
    let mut f = tcp4(c, 40012, [10, 99, 2, 1], 80, 64, SYN, &[]);
    assert_eq!(run(&e, 2, &mut f), Verdict::PassToKernel);
    // Deleting a rule unmarks its port; -C clears the rules too.
    let r443 = e.mark_rules()[1];
    e.del_mark_rule(&r443).unwrap();
    let mut f = tcp4(c, 40013, VIP4, 443, 64, SYN, &[]);
    assert_eq!(run(&e, 3, &mut f), Verdict::PassToKernel);
    assert!(e.del_mark_rule(&r443).is_err());
    e.clear();
    assert!(e.mark_rules().is_empty());
}

#[test]
fn persistent_firewall_mark_service_keeps_http_and_https_together() {
    let e = fwmark_engine(true);
    let c = [203, 0, 113, 5];
    let mut hops = HashSet::new();
    for i in 0..6u16 {
        let port = if i % 2 == 0 { 80 } else { 443 };
        let mut f = tcp4(c, 40000 + i, VIP4, port, 64, SYN, &[]);
        hops.insert(next_hop(&run(&e, 1, &mut f)).expect("scheduled"));
    }
    assert_eq!(hops.len(), 1, "port affinity: {hops:?}");
    // One template, protocol IP (any), virtual address = the mark, port 0.
    let t: Vec<_> = e
        .connections(Millis(1))
        .into_iter()
        .filter(|c| c.template)
        .collect();
    assert_eq!(t.len(), 1);
    assert!(t[0].fwmark_template);
    assert_eq!(t[0].virtual_addr, "0.0.0.1:0".parse().unwrap());
    assert_eq!(t[0].dest.port(), 0);
}
