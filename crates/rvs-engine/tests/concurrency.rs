//! Several threads share one engine: connection counts and counters stay exact.

mod common;

use std::sync::Arc;

use common::*;
use rvs_engine::*;

#[test]
fn threads_share_connections_and_counters() {
    let e = Arc::new(nat_engine());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).expect("dest");
    const FLOWS: u16 = 2000;
    // Every thread sends the SYN and ACK of every flow: one connection per flow must result.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || {
                for port in 0..FLOWS {
                    let mut f = tcp4(CLIENT4, 10_000 + port, VIP4, VPORT, 64, SYN, &[]);
                    assert!(matches!(run(&e, 0, &mut f), Verdict::Forward { .. }));
                    let mut f = tcp4(CLIENT4, 10_000 + port, VIP4, VPORT, 64, ACK, &[]);
                    assert!(matches!(run(&e, 0, &mut f), Verdict::Forward { .. }));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(e.connection_count(), FLOWS as usize);
    let s = e
        .services(Millis(0))
        .into_iter()
        .find(|s| s.spec.key == k)
        .expect("svc");
    // Reused SYNs (SYN on SYN_RECV/ESTABLISHED) do not create connections.
    assert_eq!(s.stats.conns, FLOWS as u64);
    assert_eq!(s.stats.in_pkts, 4 * 2 * FLOWS as u64);
    let active: u32 = s.dests.iter().map(|d| d.active_conns).sum();
    let inactive: u32 = s.dests.iter().map(|d| d.inactive_conns).sum();
    assert_eq!(active + inactive, FLOWS as u32);
    // rr alternates between the two servers.
    assert_eq!(
        s.dests[0].stats.conns + s.dests[1].stats.conns,
        FLOWS as u64
    );
    assert!(s.dests[0].stats.conns > 0 && s.dests[1].stats.conns > 0);
    e.expire(Millis(10_000_000));
    assert_eq!(e.connection_count(), 0);
    let s = e
        .services(Millis(0))
        .into_iter()
        .find(|s| s.spec.key == k)
        .expect("svc");
    assert!(s
        .dests
        .iter()
        .all(|d| d.active_conns == 0 && d.inactive_conns == 0));
}
