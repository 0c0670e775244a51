//! A worker's snapshot cache: packets handled through it see every configuration change as
//! `Engine::handle` does, and a cache of another engine is never used.

mod common;

use common::*;
use rvs_engine::*;

const VIP2: [u8; 4] = [10, 99, 1, 200];

fn syn_to(vip: [u8; 4], sport: u16) -> Vec<u8> {
    tcp4(CLIENT4, sport, vip, VPORT, 64, SYN, &[])
}

fn handle(e: &Engine, cache: &mut SnapshotCache, frame: &mut [u8]) -> Verdict {
    e.handle_cached(cache, Millis(0), &mut PacketMeta::default(), frame)
}

#[test]
fn a_cached_snapshot_follows_every_change() {
    let e = nat_engine();
    let mut cache = e.snapshot_cache();
    // No service on VIP2 yet: the kernel's.
    assert_eq!(
        handle(&e, &mut cache, &mut syn_to(VIP2, 1000)),
        Verdict::PassToKernel
    );
    let k = key(Protocol::Tcp, ip4(VIP2), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("service");
    e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).expect("dest");
    // The cache held the snapshot before the service: the next packet sees the new one.
    let mut f = syn_to(VIP2, 1001);
    assert_eq!(handle(&e, &mut cache, &mut f), fwd(ip4(RIP4B)));
    // And its removal.
    e.del_service(&k).expect("removed");
    assert_eq!(
        handle(&e, &mut cache, &mut syn_to(VIP2, 1002)),
        Verdict::PassToKernel
    );
    // `handle` agrees with the cache at each step.
    assert_eq!(run(&e, 0, &mut syn_to(VIP2, 1003)), Verdict::PassToKernel);
}

#[test]
fn a_cache_of_another_engine_is_not_used() {
    let with_vip2 = nat_engine();
    let k = key(Protocol::Tcp, ip4(VIP2), VPORT);
    with_vip2
        .add_service(svc(k, SchedulerKind::Rr))
        .expect("service");
    with_vip2
        .add_dest(&k, dest(ip4(RIP4B), RPORT, 1))
        .expect("dest");
    let mut cache = with_vip2.snapshot_cache();
    assert_eq!(
        handle(&with_vip2, &mut cache, &mut syn_to(VIP2, 1000)),
        fwd(ip4(RIP4B))
    );
    // Another engine, without the service, given the first one's cache.
    let without = nat_engine();
    assert_eq!(
        handle(&without, &mut cache, &mut syn_to(VIP2, 1001)),
        Verdict::PassToKernel
    );
    assert_eq!(without.connection_count(), 0);
    // The cache now follows the engine it was last used with.
    assert_eq!(
        handle(&without, &mut cache, &mut syn_to(VIP4, 1002)),
        fwd(ip4(RIP4))
    );
}
