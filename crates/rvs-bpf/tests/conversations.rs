//! Generated conversations through the engine and the program side by side: proptest draws a
//! policy (conn_reuse_mode, expire_nodest_conn, sloppy_tcp), an address family and a sequence
//! of steps (a client's or a real server's segment with any of TCP's flag combinations or a
//! datagram, a server removed, given back or quiesced), and every step must leave both the
//! same: the frame's outcome (forwarded with the same bytes, dropped, left to the kernel), the
//! case's connections (state and real server), each server's ActiveConn/InActConn and each
//! service's counters.
//!
//! The fixture tests (`differential.rs`) check the conversations someone thought of; these
//! check the ones nobody did: a FIN before the handshake ends, a reply from the other server, a
//! SYN on a closing connection under each reuse mode, a server removed in mid-conversation.
//!
//! One engine and one program serve every case of a hook (loading the program takes the
//! verifier most of a second); each case takes client ports of its own, so the cases share
//! only the schedulers' positions and the counters, which both sides must keep alike anyway.
//! Needs root and a kernel with BPF (as CI has).

#[path = "../../rvs-engine/tests/common/mod.rs"]
mod common;
mod lab;
mod outcome;

use common::*;
use lab::{in_lab, neighbour, NEIGH_MAC};
use outcome::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use rvs_bpf::maps::{ConnKey, Settings};
use rvs_bpf::{Datapath, Hook, Publisher};
use rvs_engine::*;
use std::cell::RefCell;
use std::net::IpAddr;

/// Generated cases per hook.
const CASES: u32 = 512;
/// Steps in a case, at most.
const MAX_STEPS: usize = 30;
/// Client ports a case uses (from its own base).
const PORTS: u16 = 3;

/// The TCP services every family has: virtual port, scheduler, the real servers' port
/// (`None`: direct routing, the service's port), and whether it is persistent (`-p 300`;
/// every case's client is the same address, so its template outlives the cases).
const TCP_SERVICES: [(u16, SchedulerKind, Option<u16>, bool); 4] = [
    (80, SchedulerKind::Rr, Some(8080), false),
    (81, SchedulerKind::Wlc, Some(8081), false),
    (82, SchedulerKind::Rr, None, false),
    (83, SchedulerKind::Rr, Some(8083), true),
];
/// The UDP service's virtual port (its servers listen on 8080).
const UDP_PORT: u16 = 80;

/// One family's addresses.
#[derive(Debug, Clone, Copy)]
struct Family {
    client: IpAddr,
    vip: IpAddr,
    servers: [IpAddr; 2],
}

fn family(v6: bool) -> Family {
    if v6 {
        Family {
            client: ip6(client6()),
            vip: ip6(vip6()),
            servers: [ip6(rip6()), ip6(v6_second_server())],
        }
    } else {
        Family {
            client: ip4(CLIENT4),
            vip: ip4(VIP4),
            servers: [ip4(RIP4), ip4(RIP4B)],
        }
    }
}

/// The IPv6 family's second real server (the lab's route to fd00:7::/64 reaches it).
fn v6_second_server() -> [u8; 16] {
    v6("fd00:7::11")
}

/// A segment or datagram.
#[derive(Debug, Clone, Copy)]
enum Seg {
    Syn,
    SynAck,
    Ack,
    Data,
    FinAck,
    Rst,
    RstAck,
    Datagram,
    /// Data at its last hop (TTL or hop limit 1).
    LastHop,
}

/// One step of a case. `svc` indexes [`TCP_SERVICES`] (a datagram goes to the same port over
/// UDP, which only [`UDP_PORT`] serves); `port` is one of the case's client ports.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A client's segment.
    Client {
        svc: usize,
        port: u16,
        seg: Seg,
    },
    /// A segment from the real server the engine has the client's connection with (the first
    /// server when it has none), as a NAT server answers.
    Reply {
        svc: usize,
        port: u16,
        seg: Seg,
    },
    /// A segment from either server, whether or not it has the connection.
    Server {
        svc: usize,
        server: usize,
        port: u16,
        seg: Seg,
    },
    /// A handshake: the client's SYN, its server's SYN-ACK, the client's ACK.
    Open {
        svc: usize,
        port: u16,
    },
    Remove {
        svc: usize,
        server: usize,
    },
    Restore {
        svc: usize,
        server: usize,
    },
    Quiesce {
        svc: usize,
        server: usize,
    },
}

/// A generated case.
#[derive(Debug, Clone)]
struct Case {
    v6: bool,
    conn_reuse_mode: u8,
    expire_nodest_conn: bool,
    sloppy_tcp: bool,
    steps: Vec<Step>,
}

fn seg() -> impl Strategy<Value = Seg> {
    prop_oneof![
        3 => Just(Seg::Syn),
        2 => Just(Seg::SynAck),
        3 => Just(Seg::Ack),
        3 => Just(Seg::Data),
        2 => Just(Seg::FinAck),
        1 => Just(Seg::Rst),
        1 => Just(Seg::RstAck),
        2 => Just(Seg::Datagram),
        1 => Just(Seg::LastHop),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let svc = 0..TCP_SERVICES.len();
    let server = 0..2usize;
    prop_oneof![
        8 => (svc.clone(), 0..PORTS, seg()).prop_map(|(svc, port, seg)| Step::Client { svc, port, seg }),
        5 => (svc.clone(), 0..PORTS, seg()).prop_map(|(svc, port, seg)| Step::Reply { svc, port, seg }),
        3 => (svc.clone(), 0..PORTS).prop_map(|(svc, port)| Step::Open { svc, port }),
        2 => (svc.clone(), server.clone(), 0..PORTS, seg())
            .prop_map(|(svc, server, port, seg)| Step::Server { svc, server, port, seg }),
        1 => (svc.clone(), server.clone()).prop_map(|(svc, server)| Step::Remove { svc, server }),
        1 => (svc.clone(), server.clone()).prop_map(|(svc, server)| Step::Restore { svc, server }),
        1 => (svc, server).prop_map(|(svc, server)| Step::Quiesce { svc, server }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        0..=3u8,
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(step(), 1..=MAX_STEPS),
    )
        .prop_map(
            |(v6, conn_reuse_mode, expire_nodest_conn, sloppy_tcp, steps)| Case {
                v6,
                conn_reuse_mode,
                expire_nodest_conn,
                sloppy_tcp,
                steps,
            },
        )
}

/// The engine and the program with the same configuration, and where the next case's client
/// ports start.
struct World {
    hook: Hook,
    ifindex: u32,
    engine: Engine,
    dp: Datapath,
    publisher: Publisher,
    settings: Settings,
    next_port: u16,
    /// Outcomes seen: forwarded, dropped, left to the kernel (the cases must reach each).
    seen: [u32; 3],
}

fn tcp_key(f: &Family, svc: usize) -> ServiceKey {
    key(Protocol::Tcp, f.vip, TCP_SERVICES[svc].0)
}

fn udp_key(f: &Family) -> ServiceKey {
    key(Protocol::Udp, f.vip, UDP_PORT)
}

/// The real server `server` of TCP service `svc` as it is configured when present.
fn tcp_dest(f: &Family, svc: usize, server: usize, weight: u32) -> DestSpec {
    match TCP_SERVICES[svc].2 {
        Some(port) => dest(f.servers[server], port, weight),
        None => dr_dest(f.servers[server], 0, weight),
    }
}

impl World {
    /// Both families' services, each with both servers.
    fn new(hook: Hook, ifindex: u32) -> World {
        let engine = small_engine();
        for v6 in [false, true] {
            let f = family(v6);
            for (svc, (_, sched, _, persistent)) in TCP_SERVICES.iter().enumerate() {
                let k = tcp_key(&f, svc);
                let mut spec = common::svc(k, *sched);
                if *persistent {
                    spec.persistence = Some(Persistence {
                        timeout_s: 300,
                        netmask: if v6 {
                            IpAddr::from([0xff; 16])
                        } else {
                            IpAddr::from([0xff; 4])
                        },
                        pe: None,
                    });
                }
                engine.add_service(spec).expect("service");
                for server in 0..2 {
                    engine
                        .add_dest(&k, tcp_dest(&f, svc, server, 1))
                        .expect("server");
                }
            }
            let k = udp_key(&f);
            engine
                .add_service(common::svc(k, SchedulerKind::Rr))
                .expect("udp service");
            for server in f.servers {
                engine.add_dest(&k, dest(server, 8080, 1)).expect("server");
            }
        }
        let settings = Settings::from_engine(Timeouts::default(), &Policy::default());
        let (dp, publisher) = published_with(&engine, &settings);
        World {
            hook,
            ifindex,
            engine,
            dp,
            publisher,
            settings,
            next_port: 1024,
            seen: [0; 3],
        }
    }

    fn republish(&mut self) {
        self.publisher
            .publish(&self.dp, &self.engine.spec_walk(), &self.settings)
            .expect("publish");
    }

    fn has_dest(&self, k: &ServiceKey, addr: IpAddr) -> bool {
        self.engine
            .services(Millis(1000))
            .iter()
            .find(|s| s.spec.key == *k)
            .is_some_and(|s| s.dests.iter().any(|d| d.spec.addr == addr))
    }

    /// Server `server` of TCP service `svc` present with `weight`.
    fn set_dest(&mut self, f: &Family, svc: usize, server: usize, weight: u32) {
        let k = tcp_key(f, svc);
        let spec = tcp_dest(f, svc, server, weight);
        if self.has_dest(&k, f.servers[server]) {
            self.engine.edit_dest(&k, spec).expect("edit");
        } else {
            self.engine.add_dest(&k, spec).expect("add back");
        }
    }

    /// Runs one case; the first difference fails it.
    fn run(&mut self, case: &Case) -> Result<(), TestCaseError> {
        let f = family(case.v6);
        let base = self.next_port;
        self.next_port = if base > 60_000 { 1024 } else { base + PORTS };
        let policy = Policy {
            conn_reuse_mode: case.conn_reuse_mode,
            expire_nodest_conn: case.expire_nodest_conn,
            sloppy_tcp: case.sloppy_tcp,
            ..Policy::default()
        };
        self.engine.set_policy(policy);
        self.settings = Settings::from_engine(Timeouts::default(), &policy);
        for svc in 0..TCP_SERVICES.len() {
            for server in 0..2 {
                self.set_dest(&f, svc, server, 1);
            }
        }
        self.republish();
        for (n, step) in case.steps.iter().enumerate() {
            let at = format!("{:?}, step {n} ({step:?})", self.hook);
            match *step {
                Step::Client { svc, port, seg } => {
                    let frame = client_frame(&f, svc, base + port, seg);
                    self.same_outcome(&frame, &at)?;
                }
                Step::Reply { svc, port, seg } => {
                    let server = self.server_of(&f, svc, base + port);
                    let frame = server_frame(&f, svc, server, base + port, seg);
                    self.same_outcome(&frame, &at)?;
                }
                Step::Open { svc, port } => {
                    self.same_outcome(&client_frame(&f, svc, base + port, Seg::Syn), &at)?;
                    let server = self.server_of(&f, svc, base + port);
                    let answer = server_frame(&f, svc, server, base + port, Seg::SynAck);
                    self.same_outcome(&answer, &at)?;
                    self.same_outcome(&client_frame(&f, svc, base + port, Seg::Ack), &at)?;
                }
                Step::Server {
                    svc,
                    server,
                    port,
                    seg,
                } => {
                    let frame = server_frame(&f, svc, server, base + port, seg);
                    self.same_outcome(&frame, &at)?;
                }
                Step::Remove { svc, server } => {
                    let k = tcp_key(&f, svc);
                    if self.has_dest(&k, f.servers[server]) {
                        let port = tcp_dest(&f, svc, server, 1).port;
                        self.engine
                            .del_dest(&k, f.servers[server], port)
                            .expect("remove");
                        self.republish();
                    }
                }
                Step::Restore { svc, server } => {
                    self.set_dest(&f, svc, server, 1);
                    self.republish();
                }
                Step::Quiesce { svc, server } => {
                    if self.has_dest(&tcp_key(&f, svc), f.servers[server]) {
                        self.set_dest(&f, svc, server, 0);
                        self.republish();
                    }
                }
            }
            self.same_connections(&f, base, &at)?;
            self.same_counts(&f, &at)?;
        }
        Ok(())
    }

    /// Which of the family's servers has the engine's TCP connection from client port `port`
    /// to service `svc` (the first when none does).
    fn server_of(&self, f: &Family, svc: usize, port: u16) -> usize {
        let vport = TCP_SERVICES[svc].0;
        self.engine
            .connections(Millis(1000))
            .into_iter()
            .find(|c| {
                !c.template
                    && c.proto == Protocol::Tcp
                    && c.client == (f.client, port).into()
                    && c.virtual_addr.port() == vport
            })
            .and_then(|c| f.servers.iter().position(|&s| s == c.dest.ip()))
            .unwrap_or(0)
    }

    fn same_outcome(&mut self, frame: &[u8], at: &str) -> Result<(), TestCaseError> {
        let want = engine_outcome(&self.engine, frame);
        let got = bpf_outcome(&self.dp, self.hook, self.ifindex, frame);
        prop_assert_eq!(&got, &want, "outcome at {}", at);
        self.seen[match want {
            Outcome::Forward(_) => 0,
            Outcome::Drop => 1,
            Outcome::Kernel => 2,
        }] += 1;
        Ok(())
    }

    /// The case's connections: (protocol, client port, virtual port, state, server, its port).
    fn same_connections(&self, f: &Family, base: u16, at: &str) -> Result<(), TestCaseError> {
        let ours =
            |client: IpAddr, port: u16| client == f.client && (base..base + PORTS).contains(&port);
        let mut engine: Vec<_> = self
            .engine
            .connections(Millis(1000))
            .into_iter()
            .filter(|c| !c.template && ours(c.client.ip(), c.client.port()))
            .map(|c| {
                (
                    c.proto.number(),
                    c.client.port(),
                    c.virtual_addr.port(),
                    c.state as u8,
                    c.dest.ip(),
                    c.dest.port(),
                )
            })
            .collect();
        let mut program = Vec::new();
        let services = TCP_SERVICES
            .iter()
            .map(|s| (6u8, s.0))
            .chain([(17u8, UDP_PORT)]);
        for (proto, vport) in services {
            for port in base..base + PORTS {
                let key = ConnKey {
                    src: f.client.into(),
                    dst: f.vip.into(),
                    sport_be: port.to_be(),
                    dport_be: vport.to_be(),
                    proto,
                    pad: [0; 3],
                };
                if let Some((_, c)) = self.dp.connection_for(&key).expect("conns") {
                    program.push((
                        proto,
                        port,
                        vport,
                        c.state,
                        c.daddr.ip(),
                        u16::from_be(c.dport_be),
                    ));
                }
            }
        }
        engine.sort();
        program.sort();
        prop_assert_eq!(program, engine, "connections after {}", at);
        Ok(())
    }

    /// Each listed server's ActiveConn/InActConn and each service's counters.
    fn same_counts(&self, f: &Family, at: &str) -> Result<(), TestCaseError> {
        for s in self.engine.services(Millis(1000)) {
            let k = s.spec.key;
            if k.addr != f.vip {
                continue;
            }
            let id = self.publisher.service_id(&k).expect("published");
            let t = self.dp.service_traffic(id).expect("service counters");
            prop_assert_eq!(
                (
                    t.conns,
                    t.in_packets,
                    t.out_packets,
                    t.in_bytes,
                    t.out_bytes
                ),
                (
                    s.stats.conns,
                    s.stats.in_pkts,
                    s.stats.out_pkts,
                    s.stats.in_bytes,
                    s.stats.out_bytes
                ),
                "{:?}'s counters after {}",
                k,
                at
            );
            for d in &s.dests {
                let slot = self
                    .publisher
                    .servers()
                    .find(|(_, (vip, port, proto), (rip, _))| {
                        (*vip, *port, *proto, *rip)
                            == (k.addr, k.port, k.proto.number(), d.spec.addr)
                    })
                    .expect("the server's slot")
                    .0;
                let c = self.dp.dest_conns(slot).expect("server counts");
                prop_assert_eq!(
                    (c.active, c.inactive),
                    (d.active_conns, d.inactive_conns),
                    "{:?} {}'s ActiveConn/InActConn after {}",
                    k,
                    d.spec.addr,
                    at
                );
            }
        }
        Ok(())
    }
}

fn flags(seg: Seg) -> Flags {
    let f = Flags::default();
    match seg {
        Seg::Syn => SYN,
        Seg::SynAck => SYNACK,
        Seg::Ack | Seg::Data | Seg::Datagram | Seg::LastHop => ACK,
        Seg::FinAck => FINACK,
        Seg::Rst => RST,
        Seg::RstAck => Flags {
            rst: true,
            ack: true,
            ..f
        },
    }
}

fn payload(seg: Seg) -> &'static [u8] {
    match seg {
        Seg::Data | Seg::LastHop => b"some data",
        Seg::Datagram => b"a datagram",
        _ => &[],
    }
}

/// A frame between `src` and `dst` (one family).
fn frame(src: (IpAddr, u16), dst: (IpAddr, u16), seg: Seg) -> Vec<u8> {
    let ttl = if matches!(seg, Seg::LastHop) { 1 } else { 64 };
    let (sp, dp, fl, data) = (src.1, dst.1, flags(seg), payload(seg));
    let datagram = matches!(seg, Seg::Datagram);
    match (src.0, dst.0, datagram) {
        (IpAddr::V4(s), IpAddr::V4(d), true) => udp4(s.octets(), sp, d.octets(), dp, ttl, data),
        (IpAddr::V4(s), IpAddr::V4(d), false) => {
            tcp4(s.octets(), sp, d.octets(), dp, ttl, fl, data)
        }
        (IpAddr::V6(s), IpAddr::V6(d), true) => udp6(s.octets(), sp, d.octets(), dp, ttl, data),
        (IpAddr::V6(s), IpAddr::V6(d), false) => {
            tcp6(s.octets(), sp, d.octets(), dp, ttl, fl, data)
        }
        _ => unreachable!("one family"),
    }
}

fn client_frame(f: &Family, svc: usize, port: u16, seg: Seg) -> Vec<u8> {
    frame((f.client, port), (f.vip, TCP_SERVICES[svc].0), seg)
}

/// A real server's frame to a client port: from the port the service's servers listen on.
fn server_frame(f: &Family, svc: usize, server: usize, port: u16, seg: Seg) -> Vec<u8> {
    let (vport, _, rport, _) = TCP_SERVICES[svc];
    let from = if matches!(seg, Seg::Datagram) {
        8080
    } else {
        rport.unwrap_or(vport)
    };
    frame((f.servers[server], from), (f.client, port), seg)
}

/// Runs the generated cases at `hook` (deterministically: the same cases every run).
fn conversations_at(hook: Hook) {
    in_lab(move |ifindex| {
        neighbour("fd00:7::11", NEIGH_MAC);
        let world = RefCell::new(World::new(hook, ifindex));
        // No shrinking: a smaller case run after the failing one would meet the state the
        // failure left (the world is shared), so the case reported is the one that failed.
        let config = Config {
            cases: CASES,
            failure_persistence: None,
            max_shrink_iters: 0,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        let result = runner.run(&case(), |case| world.borrow_mut().run(&case));
        if let Err(e) = result {
            panic!("{hook:?}: {e}");
        }
        let seen = world.borrow().seen;
        eprintln!("{hook:?}: forwarded, dropped, left to the kernel: {seen:?}");
        assert!(
            seen.iter().all(|&n| n >= 20),
            "the cases reach every outcome often: {seen:?}"
        );
    });
}

#[test]
fn generated_conversations_match_the_engine_at_tc() {
    conversations_at(Hook::Tc);
}

#[test]
fn generated_conversations_match_the_engine_at_xdp() {
    conversations_at(Hook::Xdp);
}
