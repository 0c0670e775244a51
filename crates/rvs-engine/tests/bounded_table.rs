//! The connection table's bound (`EngineConfig::max_connections`): new connections beyond it
//! are dropped and counted (`table_full`) before any scheduling, established ones carry on,
//! and room comes back as connections expire.

mod common;

use common::*;
use rvs_engine::*;

fn bounded(max: usize) -> Engine {
    let e = Engine::new(EngineConfig {
        expected_connections: 64,
        shards: 2,
        max_connections: max,
        ..EngineConfig::default()
    });
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("service");
    e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).expect("dest");
    e
}

fn syn(port: u16) -> Vec<u8> {
    tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[])
}

#[test]
fn new_connections_beyond_the_bound_are_dropped_and_counted() {
    let e = bounded(8);
    let mut opened = Vec::new();
    for port in 40_000..40_100u16 {
        if run(&e, 0, &mut syn(port)) == fwd(ip4(RIP4)) {
            opened.push(port);
        }
    }
    // Each of the two shards holds at most half the bound; a hundred SYNs fill both.
    assert_eq!(opened.len(), 8, "{opened:?}");
    assert_eq!(e.connection_count(), 8);
    assert_eq!(e.drop_counters().get(DropReason::TableFull), 92);
    assert_eq!(e.drop_counters().get(DropReason::NoDestination), 0);
    // The connections in the table carry on.
    let mut ack = tcp4(CLIENT4, opened[0], VIP4, VPORT, 64, ACK, b"GET /");
    assert_eq!(run(&e, 10, &mut ack), fwd(ip4(RIP4)));
    // Room comes back as the others expire (SYN_RECV's 60 s; the established one stays).
    e.expire(Millis(61_000));
    assert_eq!(e.connection_count(), 1);
    assert_eq!(run(&e, 61_000, &mut syn(41_000)), fwd(ip4(RIP4)));
}

#[test]
fn no_bound_by_default() {
    let e = bounded(0);
    for port in 40_000..40_200u16 {
        assert_eq!(run(&e, 0, &mut syn(port)), fwd(ip4(RIP4)));
    }
    assert_eq!(e.connection_count(), 200);
    assert_eq!(e.drop_counters().get(DropReason::TableFull), 0);
}
