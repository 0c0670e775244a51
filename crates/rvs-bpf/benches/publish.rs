//! What publishing the configuration to the program costs at an operator's scale: 1,000
//! services of 10 real servers each (700 wlc, 100 wrr with unequal weights, 100 sh, 100 mh,
//! the last two with their lookup tables), published to a freshly loaded program, then again
//! with nothing changed (rvsd publishes again when the kernel's routes or neighbours change),
//! then after one server's weight changed (an `ipvsadm -e`). Root required (it loads the
//! program); prints milliseconds per publication, each the median of a few.
//! `cargo bench -p rvs-bpf --bench publish`

use rvs_bpf::maps::Settings;
use rvs_bpf::{Datapath, Limits, Publisher};
use rvs_engine::{
    DestSpec, Engine, EngineConfig, ForwardMethod, Policy, Protocol, SchedulerKind, ServiceKey,
    ServiceSpec, Timeouts,
};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

const SERVICES: u32 = 1000;
const SERVERS: u32 = 10;
/// Publications timed per row (the median is printed).
const ROUNDS: usize = 5;

fn service_key(n: u32) -> ServiceKey {
    let vip = Ipv4Addr::from(0x0a63_0000 + n);
    ServiceKey::new(Protocol::Tcp, IpAddr::V4(vip), 80)
}

fn scheduler(n: u32) -> SchedulerKind {
    match n % 10 {
        0 => SchedulerKind::Wrr,
        1 => SchedulerKind::Sh,
        2 => SchedulerKind::Mh,
        _ => SchedulerKind::Wlc,
    }
}

fn server(n: u32, s: u32, weight: u32) -> DestSpec {
    let rip = Ipv4Addr::from(0xc0a8_0000 + n * SERVERS + s);
    DestSpec::new(IpAddr::V4(rip), 8080, weight, ForwardMethod::Masq)
}

fn engine() -> Engine {
    let e = Engine::new(EngineConfig::default());
    e.batch(|| {
        for n in 0..SERVICES {
            let k = service_key(n);
            e.add_service(ServiceSpec::new(k, scheduler(n)))
                .expect("service");
            for s in 0..SERVERS {
                e.add_dest(&k, server(n, s, 1 + s % 3)).expect("server");
            }
        }
    });
    e
}

/// Milliseconds of one publication.
fn publish_ms(p: &mut Publisher, dp: &Datapath, e: &Engine, settings: &Settings) -> f64 {
    let walk = e.spec_walk();
    let t = Instant::now();
    p.publish(dp, &walk, settings).expect("publish");
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the publication benchmark needs root (it loads BPF): skipped");
        return;
    }
    let e = engine();
    let settings = Settings::from_engine(Timeouts::default(), &Policy::default());
    let limits = Limits {
        connections: 1 << 12,
        services: SERVICES + 16,
        dests: SERVICES * SERVERS + 16,
        tables: SERVICES / 4,
    };
    let mut first = Vec::new();
    let mut again = Vec::new();
    let mut edited = Vec::new();
    for round in 0..ROUNDS {
        let dp = Datapath::load(limits).expect("load the BPF program");
        let mut p = Publisher::new();
        first.push(publish_ms(&mut p, &dp, &e, &settings));
        again.push(publish_ms(&mut p, &dp, &e, &settings));
        let n = round as u32 * 7 % SERVICES;
        e.edit_dest(&service_key(n), server(n, 0, 5 + round as u32))
            .expect("edit");
        edited.push(publish_ms(&mut p, &dp, &e, &settings));
    }
    println!(
        "{SERVICES} services x {SERVERS} real servers, ms per publication (median of {ROUNDS}):"
    );
    println!("first publication                {:>9.2}", median(first));
    println!("again, nothing changed           {:>9.2}", median(again));
    println!("after one server's weight change {:>9.2}", median(edited));
}
