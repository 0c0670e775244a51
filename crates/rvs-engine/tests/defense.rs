//! IPVS's defence switches through `Engine::handle` and `Engine::update_defense`:
//! `drop_packet` drops new connections at a rate, `drop_entry` removes half-open and idle
//! connections, `secure_tcp` keeps a spoofed handshake out of ESTABLISHED, and the automatic
//! modes follow the memory left.

mod common;

use common::*;
use rvs_engine::*;

fn engine(policy: &[(&str, u32)]) -> Engine {
    let e = nat_engine();
    let mut p = e.policy();
    for (name, value) in policy {
        p.set(name, *value).expect("policy");
    }
    e.set_policy(p);
    e
}

fn syn(port: u16) -> Vec<u8> {
    tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[])
}

fn states(e: &Engine, now: u64) -> Vec<ConnState> {
    e.connections(Millis(now)).iter().map(|c| c.state).collect()
}

fn active_inactive(e: &Engine) -> (u32, u32) {
    let s = e.services(Millis(0));
    let d = &s[0].dests[0];
    (d.active_conns, d.inactive_conns)
}

#[test]
fn drop_packet_always_drops_one_new_connection_in_am_droprate() {
    let e = engine(&[("drop_packet", 3), ("am_droprate", 4)]);
    e.update_defense(Millis(0), u64::MAX);
    let forwarded: Vec<u16> = (40_000..40_040u16)
        .filter(|&p| run(&e, 0, &mut syn(p)) == fwd(ip4(RIP4)))
        .collect();
    assert_eq!(forwarded.len(), 30);
    assert_eq!(e.drop_counters().get(DropReason::DefenseDropPacket), 10);
    assert_eq!(e.defense_status().packets_dropped, 10);
    // Packets of open connections are never dropped by it.
    let data = tcp4(CLIENT4, forwarded[0], VIP4, VPORT, 64, ACK, b"x");
    let kept = (0..8)
        .filter(|_| run(&e, 1, &mut data.clone()) == fwd(ip4(RIP4)))
        .count();
    assert_eq!(kept, 8);
}

#[test]
fn automatic_drop_packet_follows_the_memory_left() {
    let e = engine(&[("drop_packet", 1)]);
    // Plenty of memory: nothing dropped, the switch reads 1.
    e.update_defense(Millis(0), 1 << 20);
    assert!((40_000..40_010u16).all(|p| run(&e, 0, &mut syn(p)) == fwd(ip4(RIP4))));
    assert_eq!(e.policy().drop_packet, 1);
    // 512 of amemthresh's 1024 pages left: one in 1024 / 512 = 2 goes, the switch reads 2.
    let status = e.update_defense(Millis(1000), 512);
    assert!(status.short_of_memory);
    assert_eq!(status.drop_rate, 2);
    assert_eq!(e.policy().drop_packet, 2);
    let forwarded = (41_000..41_010u16)
        .filter(|&p| run(&e, 1000, &mut syn(p)) == fwd(ip4(RIP4)))
        .count();
    assert_eq!(forwarded, 5);
    // Memory back: off again.
    assert_eq!(e.update_defense(Millis(2000), 4096).drop_rate, 0);
    assert_eq!(e.policy().drop_packet, 1);
    assert!((42_000..42_010u16).all(|p| run(&e, 2000, &mut syn(p)) == fwd(ip4(RIP4))));
}

#[test]
fn drop_entry_removes_half_open_connections_and_keeps_fresh_established_ones() {
    let e = engine(&[("drop_entry", 1)]);
    for p in 40_000..40_064u16 {
        assert_eq!(run(&e, 0, &mut syn(p)), fwd(ip4(RIP4)));
    }
    // Two established connections: one busy (its last packet now), one idle for 60 s that has
    // seen two client packets.
    for (port, at) in [(50_000u16, 0u64), (50_001, 0)] {
        assert_eq!(run(&e, at, &mut syn(port)), fwd(ip4(RIP4)));
        let mut ack = tcp4(CLIENT4, port, VIP4, VPORT, 64, ACK, &[]);
        assert_eq!(run(&e, at, &mut ack), fwd(ip4(RIP4)));
    }
    let now = 61_000 - 1;
    let mut busy = tcp4(CLIENT4, 50_000, VIP4, VPORT, 64, ACK, b"x");
    assert_eq!(run(&e, now, &mut busy), fwd(ip4(RIP4)));
    assert_eq!(e.connection_count(), 66);
    // Plenty of memory: nothing goes.
    e.update_defense(Millis(now), 1 << 20);
    assert_eq!(e.connection_count(), 66);
    assert_eq!(e.policy().drop_entry, 1);
    // Short of memory: each second visits 1/32 of the table from a random place, so about
    // 32 seconds cover it; the half-open ones all go within a bounded number of seconds.
    let half_open = |e: &Engine| {
        e.connections(Millis(now))
            .iter()
            .filter(|c| c.state == ConnState::SynRecv)
            .count()
    };
    let mut seconds = 0;
    while half_open(&e) > 0 && seconds < 2000 {
        e.update_defense(Millis(now), 0);
        seconds += 1;
    }
    assert_eq!(half_open(&e), 0, "after {seconds} s");
    assert!(seconds > 1, "a part of the table a second: {seconds} s");
    assert_eq!(e.policy().drop_entry, 2);
    let left: Vec<ConnStatus> = e.connections(Millis(now));
    let ports: Vec<u16> = left.iter().map(|c| c.client.port()).collect();
    // The busy established connection stays; the idle one (two packets: every second
    // candidate) may go; every SYN_RECV one went.
    assert!(ports.contains(&50_000), "{ports:?}");
    assert!(
        left.iter().all(|c| c.state == ConnState::Established),
        "{left:?}"
    );
    let status = e.defense_status();
    assert!(status.entries_dropped >= 64, "{status:?}");
    assert_eq!(status.entries_dropped as usize + left.len(), 66);
    // ActiveConn/InActConn follow the removals.
    assert_eq!(active_inactive(&e), (left.len() as u32, 0));
    // Memory back: the switch reads 1 and nothing more goes.
    e.update_defense(Millis(now), 1 << 20);
    assert_eq!(e.policy().drop_entry, 1);
}

#[test]
fn secure_tcp_keeps_a_handshake_without_the_server_out_of_established() {
    let e = engine(&[("secure_tcp", 3)]);
    e.update_defense(Millis(0), u64::MAX);
    assert!(e.defense_status().secure_tcp);
    // A client's SYN and ACK alone (the real server never answered): SYN_RECV, inactive.
    assert_eq!(run(&e, 0, &mut syn(40_000)), fwd(ip4(RIP4)));
    let mut ack = tcp4(CLIENT4, 40_000, VIP4, VPORT, 64, ACK, &[]);
    assert_eq!(run(&e, 0, &mut ack), fwd(ip4(RIP4)));
    assert_eq!(states(&e, 0), [ConnState::SynRecv]);
    assert_eq!(active_inactive(&e), (0, 1));
    // The real server's SYN-ACK: SYNACK, which counts as active; its next segment:
    // ESTABLISHED.
    let mut synack = tcp4(RIP4, RPORT, CLIENT4, 40_000, 64, SYNACK, &[]);
    assert_ne!(run(&e, 1, &mut synack), Verdict::PassToKernel);
    assert_eq!(states(&e, 1), [ConnState::SynAck]);
    assert_eq!(active_inactive(&e), (1, 0));
    let mut reply = tcp4(RIP4, RPORT, CLIENT4, 40_000, 64, ACK, b"HTTP/1.1 200");
    assert_ne!(run(&e, 2, &mut reply), Verdict::PassToKernel);
    assert_eq!(states(&e, 2), [ConnState::Established]);
    // Off: the usual table, where the client's ACK establishes.
    e.set_policy(Policy {
        secure_tcp: 0,
        ..e.policy()
    });
    assert!(!e.defense_status().secure_tcp);
    assert_eq!(run(&e, 3, &mut syn(40_001)), fwd(ip4(RIP4)));
    let mut ack = tcp4(CLIENT4, 40_001, VIP4, VPORT, 64, ACK, &[]);
    assert_eq!(run(&e, 3, &mut ack), fwd(ip4(RIP4)));
    assert!(states(&e, 3).contains(&ConnState::Established));
}

#[test]
fn table_room_counts_down_to_the_bound() {
    let e = Engine::new(EngineConfig {
        shards: 2,
        max_connections: 8,
        ..EngineConfig::default()
    });
    assert_eq!(e.table_room(), Some(8));
    assert_eq!(nat_engine().table_room(), None);
}
