//! `-s none`: a service without a scheduler takes no new connections and keeps its existing
//! ones, as IPVS's service with a NULL scheduler.

mod common;

use common::*;
use rvs_engine::{DropReason, Engine, EngineConfig, Protocol, SchedulerKind, Verdict};

#[test]
fn none_is_a_scheduler_name_that_schedules_nothing() {
    assert_eq!(SchedulerKind::from_name("none"), Some(SchedulerKind::None));
    assert_eq!(SchedulerKind::None.name(), "none");
    assert!(!SchedulerKind::ALL.contains(&SchedulerKind::None));

    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::None)).unwrap();
    e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).unwrap();
    let mut syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(
        run(&e, 0, &mut syn),
        Verdict::Drop(DropReason::NoDestination)
    );
    assert_eq!(e.connection_count(), 0);
}

#[test]
fn a_service_switched_to_none_keeps_its_connections_and_takes_no_new_ones() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).unwrap();
    e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).unwrap();
    let mut syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut syn), fwd(ip4(RIP4)));

    e.edit_service(svc(k, SchedulerKind::None)).unwrap();
    let mut ack = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"GET /");
    assert_eq!(
        run(&e, 10, &mut ack),
        fwd(ip4(RIP4)),
        "the existing connection goes on"
    );
    let mut other = tcp4(CLIENT4, CPORT + 1, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(
        run(&e, 20, &mut other),
        Verdict::Drop(DropReason::NoDestination)
    );
    assert_eq!(
        e.services(rvs_engine::Millis(0))[0].spec.scheduler,
        SchedulerKind::None
    );
}
