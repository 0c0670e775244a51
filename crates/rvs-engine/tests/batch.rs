//! `Engine::batch`: configuration changes staged and published once, with the same result and
//! the same errors as the changes made one by one.

mod common;

use common::*;
use rvs_engine::{
    Engine, EngineConfig, EngineError, Protocol, SchedulerKind, ServiceStatus, Verdict,
};

fn vip(i: u8) -> std::net::IpAddr {
    ip4([10, 99, 2, i])
}

/// Services and real servers without counters, for comparing configurations.
fn layout(e: &Engine) -> Vec<(rvs_engine::ServiceSpec, Vec<rvs_engine::DestSpec>)> {
    e.services(rvs_engine::Millis(0))
        .into_iter()
        .map(|s: ServiceStatus| (s.spec, s.dests.into_iter().map(|d| d.spec).collect()))
        .collect()
}

/// A table of 20 services with 3 real servers each, one weight edited and one server removed.
fn build(e: &Engine) -> Vec<Result<(), EngineError>> {
    let mut results = Vec::new();
    for i in 1..=20 {
        let k = key(Protocol::Tcp, vip(i), 80);
        results.push(e.add_service(svc(k, SchedulerKind::Wrr)));
        for r in 1..=3 {
            results.push(e.add_dest(&k, dest(ip4([192, 168, 9, r]), 8080, u32::from(r))));
        }
    }
    let k5 = key(Protocol::Tcp, vip(5), 80);
    results.push(e.edit_dest(&k5, dest(ip4([192, 168, 9, 1]), 8080, 7)));
    results.push(e.del_dest(&k5, ip4([192, 168, 9, 2]), 8080));
    // Refusals: a duplicate service, a real server of a missing service, a duplicate server.
    results.push(e.add_service(svc(k5, SchedulerKind::Rr)));
    results.push(e.add_dest(
        &key(Protocol::Tcp, vip(99), 80),
        dest(ip4([192, 168, 9, 1]), 8080, 1),
    ));
    results.push(e.add_dest(&k5, dest(ip4([192, 168, 9, 1]), 8080, 1)));
    results
}

#[test]
fn a_batch_gives_the_same_table_and_errors_as_single_changes() {
    let single = Engine::new(EngineConfig::default());
    let one_by_one = build(&single);
    let batched = Engine::new(EngineConfig::default());
    let in_batch = batched.batch(|| build(&batched));
    assert_eq!(in_batch, one_by_one);
    assert!(matches!(
        in_batch[in_batch.len() - 3],
        Err(EngineError::ServiceExists)
    ));
    assert!(matches!(
        in_batch[in_batch.len() - 2],
        Err(EngineError::NoService)
    ));
    assert!(matches!(
        in_batch[in_batch.len() - 1],
        Err(EngineError::DestExists)
    ));
    assert_eq!(layout(&batched), layout(&single));
    assert_eq!(layout(&batched).len(), 20);
}

#[test]
fn the_data_plane_sees_a_batch_only_when_it_ends() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    let syn = || tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    e.batch(|| {
        e.add_service(svc(k, SchedulerKind::Rr)).unwrap();
        e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).unwrap();
        assert!(layout(&e).is_empty(), "nothing published inside the batch");
        assert!(
            !matches!(run(&e, 0, &mut syn()), Verdict::Forward { .. }),
            "packets do not reach a half-built service"
        );
    });
    assert_eq!(layout(&e).len(), 1);
    assert_eq!(run(&e, 0, &mut syn()), fwd(ip4(RIP4)));
}

#[test]
fn other_changes_inside_a_batch_publish_what_was_staged_first() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.batch(|| {
        e.add_service(svc(k, SchedulerKind::Rr)).unwrap();
        // -E needs the service: the staged table is published, then edited.
        e.edit_service(svc(k, SchedulerKind::Wlc)).unwrap();
        assert_eq!(layout(&e).len(), 1);
        e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).unwrap();
        // Nested batches publish when the outermost ends.
        e.batch(|| e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).unwrap());
        assert_eq!(
            layout(&e)[0].1.len(),
            0,
            "the servers wait for the batch's end"
        );
    });
    let table = layout(&e);
    assert_eq!(table[0].0.scheduler, SchedulerKind::Wlc);
    assert_eq!(table[0].1.len(), 2);

    // -C inside a batch drops what was staged.
    e.batch(|| {
        e.add_service(svc(key(Protocol::Udp, ip4(VIP4), 53), SchedulerKind::Rr))
            .unwrap();
        e.clear();
    });
    assert!(layout(&e).is_empty());
}

#[test]
fn real_servers_changed_in_a_batch_reach_the_scheduler_only_when_it_ends() {
    // A published sh service with one server. Inside a batch a second server is added: until
    // the batch ends the data plane schedules over the published one-server list, so the
    // (shared) bucket table must not point at the second server yet, or its packets would be
    // dropped as having no destination.
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Sh)).unwrap();
    e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).unwrap();
    let syn = |i: u8| tcp4([203, 0, 113, i], CPORT, VIP4, VPORT, 64, SYN, &[]);
    e.batch(|| {
        e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).unwrap();
        for i in 1..=64 {
            assert_eq!(run(&e, 0, &mut syn(i)), fwd(ip4(RIP4)), "client {i}");
        }
    });
    let after: Vec<Verdict> = (101..=164).map(|i| run(&e, 0, &mut syn(i))).collect();
    assert!(
        after.contains(&fwd(ip4(RIP4B))),
        "after it, the new server is scheduled"
    );
    assert!(after
        .iter()
        .all(|v| *v == fwd(ip4(RIP4)) || *v == fwd(ip4(RIP4B))));
}
