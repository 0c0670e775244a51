//! The data plane's bounds on the configuration ([`ConfigBounds`]): additions past them are
//! refused with an error naming the option that raises them, and what is configured stays.

use rvs_engine::{
    ConfigBounds, DestSpec, Engine, EngineConfig, EngineError, ForwardMethod, Millis, Protocol,
    SchedulerKind, ServiceKey, ServiceSpec,
};
use std::net::{IpAddr, Ipv4Addr};

fn tcp(port: u16) -> ServiceKey {
    ServiceKey::new(Protocol::Tcp, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port)
}

fn server(n: u8) -> DestSpec {
    DestSpec::new(
        IpAddr::V4(Ipv4Addr::new(192, 168, 0, n)),
        80,
        1,
        ForwardMethod::Masq,
    )
}

fn bounded(services: usize, dests: usize) -> Engine {
    bounded_tables(services, dests, services)
}

fn bounded_tables(services: usize, dests: usize, tables: usize) -> Engine {
    let e = Engine::new(EngineConfig::default());
    e.set_config_bounds(Some(ConfigBounds {
        holder: "the BPF data plane".into(),
        services,
        services_option: "--bpf-max-services".into(),
        dests,
        dests_option: "--bpf-max-dests".into(),
        tables,
        tables_option: "--bpf-max-tables".into(),
    }));
    e
}

#[test]
fn services_past_the_bound_are_refused_and_the_configuration_stays() {
    let e = bounded(2, 16);
    for port in [80, 81] {
        e.add_service(ServiceSpec::new(tcp(port), SchedulerKind::Rr))
            .expect("within the bound");
    }
    let err = e
        .add_service(ServiceSpec::new(tcp(82), SchedulerKind::Rr))
        .expect_err("a third");
    assert_eq!(
        err.to_string(),
        "the BPF data plane has no room for more services (at most 2): raise --bpf-max-services"
    );
    assert_eq!(e.services(Millis(0)).len(), 2);
    // Firewall-mark and SCTP services are rvsd's own: they do not count.
    e.add_service(ServiceSpec::new(
        ServiceKey::fwmark(7, false),
        SchedulerKind::Rr,
    ))
    .expect("a firewall-mark service");
    let sctp = ServiceKey::new(Protocol::Sctp, IpAddr::V4(Ipv4Addr::LOCALHOST), 9);
    e.add_service(ServiceSpec::new(sctp, SchedulerKind::Rr))
        .expect("an SCTP service");
    // One deleted makes room again; in a batch, what it staged counts.
    e.del_service(&tcp(80)).expect("delete");
    let third = e.batch(|| {
        e.add_service(ServiceSpec::new(tcp(82), SchedulerKind::Rr))
            .expect("room for one");
        e.add_service(ServiceSpec::new(tcp(83), SchedulerKind::Rr))
    });
    assert!(matches!(third, Err(EngineError::Capacity(_))), "{third:?}");
    // Unbounded again.
    e.set_config_bounds(None);
    e.add_service(ServiceSpec::new(tcp(83), SchedulerKind::Rr))
        .expect("no bound");
}

#[test]
fn real_servers_past_the_bound_are_refused() {
    let e = bounded(4, 3);
    for port in [80, 81] {
        e.add_service(ServiceSpec::new(tcp(port), SchedulerKind::Rr))
            .expect("service");
    }
    e.add_dest(&tcp(80), server(1)).expect("1");
    e.add_dest(&tcp(80), server(2)).expect("2");
    e.add_dest(&tcp(81), server(1)).expect("3");
    let err = e.add_dest(&tcp(81), server(2)).expect_err("a fourth");
    assert_eq!(
        err.to_string(),
        "the BPF data plane has no room for more real servers (at most 3): raise \
         --bpf-max-dests"
    );
    e.del_dest(&tcp(80), server(2).addr, 80)
        .expect("remove one");
    e.add_dest(&tcp(81), server(2)).expect("room again");
}

#[test]
fn services_with_scheduler_tables_past_their_bound_are_refused() {
    let e = bounded_tables(8, 16, 1);
    e.add_service(ServiceSpec::new(tcp(80), SchedulerKind::Mh))
        .expect("one table");
    e.add_service(ServiceSpec::new(tcp(81), SchedulerKind::Wlc))
        .expect("no table");
    let err = e
        .add_service(ServiceSpec::new(tcp(82), SchedulerKind::Wrr))
        .expect_err("a second table");
    assert_eq!(
        err.to_string(),
        "the BPF data plane has no room for more wrr, sh, dh and mh services (at most 1): \
         raise --bpf-max-tables"
    );
    // -E to a scheduler with a table counts too; the service keeps its scheduler.
    let edited = e.edit_service(ServiceSpec::new(tcp(81), SchedulerKind::Sh));
    assert!(
        matches!(edited, Err(EngineError::Capacity(_))),
        "{edited:?}"
    );
    let listed = e.services(Millis(0));
    assert_eq!(listed[1].spec.scheduler, SchedulerKind::Wlc);
    // A service with a table may change to another scheduler with one.
    e.edit_service(ServiceSpec::new(tcp(80), SchedulerKind::Sh))
        .expect("sh in mh's table");
}

/// A batch (a restore) counts as it adds, and counts again after a removal; a real server that
/// exists already is told so before any bound.
#[test]
fn batches_count_what_they_add_and_remove() {
    let e = bounded(4, 3);
    e.batch(|| {
        e.add_service(ServiceSpec::new(tcp(80), SchedulerKind::Rr))
            .expect("service");
        for n in 1..=3 {
            e.add_dest(&tcp(80), server(n)).expect("within the bound");
        }
        assert!(matches!(
            e.add_dest(&tcp(80), server(4)),
            Err(EngineError::Capacity(_))
        ));
        assert!(matches!(
            e.add_dest(&tcp(80), server(3)),
            Err(EngineError::DestExists)
        ));
        e.del_dest(&tcp(80), server(3).addr, 80).expect("remove");
        e.add_dest(&tcp(80), server(4)).expect("room again");
        assert!(matches!(
            e.add_dest(&tcp(80), server(5)),
            Err(EngineError::Capacity(_))
        ));
    });
    assert_eq!(e.services(Millis(0))[0].dests.len(), 3);
}
