//! What the Rust engine and the loaded program each do with a frame, in terms both can be
//! compared in: shared by the differential tests (fixture frames, and generated
//! conversations).
#![allow(dead_code)]

use crate::common::{dest, ip4, key, l3, run, svc, RPORT, VIP4, VPORT};
use rvs_bpf::maps::Settings;
use rvs_bpf::{Action, Datapath, Hook, Limits, Publisher};
use rvs_engine::*;

/// The tests' map sizes.
pub const LIMITS: Limits = Limits {
    connections: 4096,
    services: 64,
    dests: 256,
    tables: 64,
};

/// Both hooks: each test runs once per hook, with a fresh engine and program.
pub const HOOKS: [Hook; 2] = [Hook::Tc, Hook::Xdp];

/// The lab neighbours' MAC (`lab::NEIGH_MAC`).
pub const NEIGH_MAC_BYTES: [u8; 6] = [2, 0, 0, 0, 0, 0x99];

/// An empty engine sized for a test's few connections.
pub fn small_engine() -> Engine {
    Engine::new(EngineConfig {
        expected_connections: 1024,
        shards: 8,
        ..EngineConfig::default()
    })
}

/// An engine with `policy` and one TCP rr service on `VIP4:VPORT` whose NAT real servers are
/// `rips` (port `RPORT`, weight 1), in that order.
pub fn rr_engine(policy: Policy, rips: &[std::net::IpAddr]) -> Engine {
    let e = small_engine();
    e.set_policy(policy);
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("service");
    for &rip in rips {
        e.add_dest(&k, dest(rip, RPORT, 1)).expect("server");
    }
    e
}

/// The program loaded, its maps empty.
pub fn load_program() -> Datapath {
    Datapath::load(LIMITS).expect("load the BPF program")
}

/// The program loaded with `engine`'s configuration and `settings` published, and the
/// publisher (which knows the ids it gave the services).
pub fn published_with(engine: &Engine, settings: &Settings) -> (Datapath, Publisher) {
    published_in(LIMITS, engine, settings)
}

/// [`published_with`] into maps of `limits`.
pub fn published_in(limits: Limits, engine: &Engine, settings: &Settings) -> (Datapath, Publisher) {
    let dp = Datapath::load(limits).expect("load the BPF program");
    let mut publisher = Publisher::new();
    publisher
        .publish(&dp, &engine.spec_walk(), settings)
        .expect("publish");
    (dp, publisher)
}

/// What one side did with one frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded with this L3 packet.
    Forward(Vec<u8>),
    /// Dropped.
    Drop,
    /// Left to the kernel.
    Kernel,
}

/// The engine's outcome for `frame` (its clock at 1 s).
pub fn engine_outcome(e: &Engine, frame: &[u8]) -> Outcome {
    let mut f = frame.to_vec();
    match run(e, 1000, &mut f) {
        Verdict::Forward { .. } => Outcome::Forward(l3(&f)),
        Verdict::Drop(_) => Outcome::Drop,
        _ => Outcome::Kernel,
    }
}

/// The program's outcome for `frame` at `hook`, run as received on `ifindex`; a forwarded
/// frame must carry the lab neighbour's MAC.
pub fn bpf_outcome(dp: &Datapath, hook: Hook, ifindex: u32, frame: &[u8]) -> Outcome {
    let r = dp.test_run_at(hook, frame, ifindex).expect("test run");
    match r.verdict {
        Action::Redirect => {
            assert_eq!(
                r.frame[..6],
                NEIGH_MAC_BYTES,
                "the neighbour's MAC as destination"
            );
            Outcome::Forward(l3(&r.frame))
        }
        Action::Drop => Outcome::Drop,
        Action::Pass => Outcome::Kernel,
        Action::Other(v) => panic!("unexpected {hook:?} verdict {v}"),
    }
}
