//! The BPF program against the Rust engine, frame by frame: the engine's fixture frames
//! (built by etherparse, the engine's own test builders) run through rvs-engine and through
//! the loaded program with BPF_PROG_TEST_RUN, and must come out the same: the same verdict
//! (forward / drop / not ours), the same L3 bytes (addresses, ports, checksums, TTL), the
//! same real server chosen by each scheduler, and the same connection states.
//!
//! The program runs in a network namespace of the test's own (unshared by the test thread)
//! with a veth, routes and static neighbours, so its FIB lookups succeed and it redirects as
//! on a director. Needs root and a kernel with BPF (as CI has).

#[path = "../../rvs-engine/tests/common/mod.rs"]
mod common;
mod lab;
mod outcome;

use common::*;
use lab::{in_lab, neighbour, sh, NEIGH_MAC};
use outcome::*;
use rvs_bpf::maps::{Conn, ConnKey, Settings};
use rvs_bpf::{tc_action, Action, Datapath, Hook, Limits, Publisher};
use rvs_engine::*;
use std::net::IpAddr;
use std::process::Command;

/// The MAC the lab neighbour changes to in the next-hop tests.
const CHANGED_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x98];

/// The program loaded with `engine`'s configuration published.
fn program_for(engine: &Engine) -> Datapath {
    published_program(engine).0
}

/// The program loaded with `engine`'s configuration published, and the publisher (which
/// knows the ids it gave the services).
fn published_program(engine: &Engine) -> (Datapath, Publisher) {
    published_with(
        engine,
        &Settings::from_engine(Timeouts::default(), &Policy::default()),
    )
}

/// Runs `frames` through both and compares each outcome.
fn same(e: &Engine, dp: &Datapath, hook: Hook, ifindex: u32, frames: &[(&str, Vec<u8>)]) {
    for (name, frame) in frames {
        let want = engine_outcome(e, frame);
        let got = bpf_outcome(dp, hook, ifindex, frame);
        assert_eq!(got, want, "{hook:?}: {name}");
    }
}

fn nat_conversation_v4(proto_tcp: bool) -> Vec<(&'static str, Vec<u8>)> {
    if !proto_tcp {
        return vec![
            ("udp query", udp4(CLIENT4, CPORT, VIP4, VPORT, 64, b"query")),
            (
                "udp answer",
                udp4(RIP4, RPORT, CLIENT4, CPORT, 64, b"answer!"),
            ),
            ("udp again", udp4(CLIENT4, CPORT, VIP4, VPORT, 5, b"q2")),
        ];
    }
    vec![
        ("SYN", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
        (
            "SYN-ACK",
            tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, SYNACK, &[]),
        ),
        ("ACK", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
        (
            "data",
            tcp4(
                CLIENT4,
                CPORT,
                VIP4,
                VPORT,
                30,
                ACK,
                b"GET / HTTP/1.0\r\n\r\n",
            ),
        ),
        (
            "odd reply",
            tcp4(
                RIP4,
                RPORT,
                CLIENT4,
                CPORT,
                64,
                ACK,
                b"HTTP/1.0 200 OK\r\n\r\nhello",
            ),
        ),
        ("FIN in", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, FINACK, &[])),
        (
            "FIN out",
            tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, FINACK, &[]),
        ),
        ("last ACK", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
        ("TTL 1", tcp4(CLIENT4, CPORT, VIP4, VPORT, 1, ACK, &[])),
        (
            "ACK without a connection",
            tcp4(CLIENT4, CPORT + 1, VIP4, VPORT, 64, ACK, &[]),
        ),
        (
            "RST without a connection",
            tcp4(CLIENT4, CPORT + 2, VIP4, VPORT, 64, RST, &[]),
        ),
        (
            "not a service",
            tcp4(CLIENT4, CPORT, ROUTER4, 22, 64, SYN, &[]),
        ),
    ]
}

/// NAT, TCP and UDP over IPv4: every frame of a conversation the same on both sides.
#[test]
fn nat_ipv4_frames_match_the_engine() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let e = nat_engine();
            let dp = program_for(&e);
            same(&e, &dp, hook, ifindex, &nat_conversation_v4(true));
            same(&e, &dp, hook, ifindex, &nat_conversation_v4(false));
            assert_eq!(
                dp.stat("conn_created").expect("stats"),
                2,
                "two connections"
            );
        });
    }
}

/// NAT over IPv6 (hop limit, pseudo-header checksums over 16-byte addresses).
#[test]
fn nat_ipv6_frames_match_the_engine() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let e = nat_engine();
            let dp = program_for(&e);
            let (c, v, r) = (client6(), vip6(), rip6());
            let frames = vec![
                ("SYN", tcp6(c, CPORT, v, VPORT, 64, SYN, &[])),
                ("SYN-ACK", tcp6(r, RPORT, c, CPORT, 64, SYNACK, &[])),
                ("ACK data", tcp6(c, CPORT, v, VPORT, 64, ACK, b"hello")),
                ("reply", tcp6(r, RPORT, c, CPORT, 64, ACK, b"world!")),
                ("udp", udp6(c, CPORT, v, VPORT, 64, b"q")),
                ("udp reply", udp6(r, RPORT, c, CPORT, 64, b"a")),
                ("hop limit 1", tcp6(c, CPORT, v, VPORT, 1, ACK, &[])),
            ];
            same(&e, &dp, hook, ifindex, &frames);
        });
    }
}

/// The connection states the program keeps equal the engine's after a conversation.
#[test]
fn tcp_states_match_the_engine() {
    in_lab(|ifindex| {
        let e = nat_engine();
        let dp = program_for(&e);
        let steps = [
            (
                tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]),
                ConnState::SynRecv,
            ),
            (
                tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, SYNACK, &[]),
                ConnState::SynRecv,
            ),
            (
                tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[]),
                ConnState::Established,
            ),
            (
                tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, FINACK, &[]),
                ConnState::CloseWait,
            ),
            (
                tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, FINACK, &[]),
                ConnState::TimeWait,
            ),
        ];
        let key = ConnKey {
            src: IpAddr::from(std::net::Ipv4Addr::from(CLIENT4)).into(),
            dst: IpAddr::from(std::net::Ipv4Addr::from(VIP4)).into(),
            sport_be: CPORT.to_be(),
            dport_be: VPORT.to_be(),
            proto: 6,
            pad: [0; 3],
        };
        for (frame, want) in steps {
            let _ = engine_outcome(&e, &frame);
            let _ = bpf_outcome(&dp, Hook::Tc, ifindex, &frame);
            let engine_state = e.connections(Millis(1000))[0].state;
            let conns: Vec<(ConnKey, Conn)> = dp.connections().expect("conns");
            let bpf = conns
                .iter()
                .find(|(k, _)| *k == key)
                .expect("the connection");
            assert_eq!(engine_state, want);
            assert_eq!(bpf.1.state, want as u8, "program's state after {want:?}");
        }
    });
}

/// A real server's plain segments (ACK, data) take the program's short path, which reads the
/// connection's state from its reply entry: that copy follows every change, so the states stay
/// the engine's, also where a plain reply changes the state (SYN_RECV to ESTABLISHED) and after
/// the client moves it (a SYN reusing a TIME_WAIT connection, conn_reuse_mode 0). Replies are
/// translated alike, and counted for the service and server alike.
#[test]
fn plain_replies_keep_states_and_counts_as_the_engine() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let e = nat_engine();
            let policy = Policy {
                conn_reuse_mode: 0,
                ..Policy::default()
            };
            e.set_policy(policy);
            let (dp, publisher) =
                published_with(&e, &Settings::from_engine(Timeouts::default(), &policy));
            let client = |flags, data: &[u8]| tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, flags, data);
            let server = |flags, data: &[u8]| tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, flags, data);
            let steps = [
                ("SYN", client(SYN, &[]), ConnState::SynRecv),
                ("SYN-ACK", server(SYNACK, &[]), ConnState::SynRecv),
                (
                    "the server's data first",
                    server(ACK, b"hello"),
                    ConnState::Established,
                ),
                ("more data", server(ACK, b"world"), ConnState::Established),
                ("the client's ACK", client(ACK, &[]), ConnState::Established),
                (
                    "the client's FIN",
                    client(FINACK, &[]),
                    ConnState::CloseWait,
                ),
                ("data after it", server(ACK, b"late"), ConnState::CloseWait),
                ("the server's FIN", server(FINACK, &[]), ConnState::TimeWait),
                ("the last ACK", client(ACK, &[]), ConnState::TimeWait),
                ("a SYN again", client(SYN, &[]), ConnState::SynRecv),
                (
                    "a plain answer",
                    server(ACK, b"again"),
                    ConnState::Established,
                ),
                ("data", server(ACK, b"on"), ConnState::Established),
            ];
            for (what, frame, want) in steps {
                assert_eq!(
                    bpf_outcome(&dp, hook, ifindex, &frame),
                    engine_outcome(&e, &frame),
                    "{hook:?}: {what}"
                );
                let engine_state = e.connections(Millis(1000))[0].state;
                assert_eq!(engine_state, want, "the engine after {what}");
                let conns: Vec<(ConnKey, Conn)> = dp.connections().expect("conns");
                assert_eq!(conns.len(), 1);
                assert_eq!(
                    conns[0].1.state, want as u8,
                    "{hook:?}: the program's state after {what}"
                );
            }
            let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
            let listed = e
                .services(Millis(1000))
                .into_iter()
                .find(|s| s.spec.key == k)
                .expect("listed");
            let svc = dp
                .service_traffic(publisher.service_id(&k).expect("published"))
                .expect("service counters");
            let slot = publisher
                .servers()
                .find(|(_, (vip, port, proto), (rip, _))| {
                    (*vip, *port, *proto, *rip) == (ip4(VIP4), VPORT, 6, ip4(RIP4))
                })
                .expect("the server's slot")
                .0;
            let dest = dp.dest_traffic(slot).expect("server counters");
            assert_eq!(
                (svc.out_packets, svc.out_bytes),
                (listed.stats.out_pkts, listed.stats.out_bytes),
                "{hook:?}: the service's replies"
            );
            assert_eq!(
                (dest.out_packets, dest.out_bytes),
                (
                    listed.dests[0].stats.out_pkts,
                    listed.dests[0].stats.out_bytes
                ),
                "{hook:?}: the server's replies"
            );
        });
    }
}

/// Each scheduler the program runs picks the same real server as the engine, connection
/// after connection, with connections left open so the counts matter.
#[test]
fn schedulers_pick_as_the_engine() {
    use SchedulerKind::*;
    let both = SchedFlags::FALLBACK | SchedFlags::PORT;
    let kinds = [
        (Rr, 0),
        (Wrr, 0),
        (Lc, 0),
        (Wlc, 0),
        (Sed, 0),
        (Nq, 0),
        (Fo, 0),
        (Ovf, 0),
        (Twos, 0),
        (Sh, 0),
        (Sh, both),
        (Dh, 0),
        (Mh, 0),
        (Mh, both),
        (Lblc, 0),
        (Lblcr, 0),
    ];
    for ((kind, flags), hook) in kinds.into_iter().flat_map(|k| HOOKS.map(|h| (k, h))) {
        in_lab(move |ifindex| {
            let e = small_engine();
            let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
            let mut spec = svc(k, kind);
            spec.sched_flags = SchedFlags(flags);
            e.add_service(spec).expect("service");
            for (i, w) in [3u32, 1, 2].into_iter().enumerate() {
                let rip = [192, 168, 7, 10 + i as u8];
                e.add_dest(&k, dest(ip4(rip), RPORT, w)).expect("dest");
            }
            neighbour("192.168.7.12", NEIGH_MAC);
            let (dp, mut publisher) = published_program(&e);
            let settings = Settings::from_engine(Timeouts::default(), &Policy::default());
            let mut port = 41000u16;
            let mut open = |n: usize, what: &str| {
                for i in 0..n {
                    // Every third connection completes its handshake (active), the others
                    // stay in SYN_RECV (inactive).
                    port += 1;
                    let syn = tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[]);
                    let want = engine_outcome(&e, &syn);
                    let got = bpf_outcome(&dp, hook, ifindex, &syn);
                    assert_eq!(
                        got, want,
                        "{kind:?}/{flags} {hook:?} {what}: connection {i}"
                    );
                    if i % 3 == 0 {
                        let ack = tcp4(CLIENT4, port, VIP4, VPORT, 64, ACK, &[]);
                        assert_eq!(
                            bpf_outcome(&dp, hook, ifindex, &ack),
                            engine_outcome(&e, &ack),
                            "{kind:?} {hook:?} {what}: ACK {i}"
                        );
                    }
                }
            };
            open(12, "first servers");
            // The servers change mid-run: the cursors carry over as the engine's do.
            e.add_dest(&k, dest(ip4([192, 168, 7, 13]), RPORT, 4))
                .expect("added server");
            neighbour("192.168.7.13", NEIGH_MAC);
            publisher
                .publish(&dp, &e.spec_walk(), &settings)
                .expect("republish");
            open(9, "after an addition");
            e.del_dest(&k, ip4([192, 168, 7, 11]), RPORT)
                .expect("removed server");
            publisher
                .publish(&dp, &e.spec_walk(), &settings)
                .expect("republish");
            open(9, "after a removal");
            // A server at weight 0: quiesced, so hashing falls back (or finds none).
            e.edit_dest(&k, dest(ip4(RIP4), RPORT, 0))
                .expect("quiesced server");
            publisher
                .publish(&dp, &e.spec_walk(), &settings)
                .expect("republish");
            open(9, "with a quiesced server");
        });
    }
}

/// What the program leaves to rvsd goes up through the punt ring (counted by reason, dropped
/// here); what is not the director's goes to the kernel untouched.
#[test]
fn punted_and_passed_frames() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let e = nat_engine();
            // A service with a persistence engine: rvsd schedules its connections.
            let persistent = key(Protocol::Tcp, ip4(VIP4), 443);
            let mut spec = svc(persistent, SchedulerKind::Rr);
            spec.persistence = Some(Persistence {
                timeout_s: 300,
                netmask: "255.255.255.255".parse().unwrap(),
                pe: Some(PersistenceEngine::Sip),
            });
            e.add_service(spec).expect("persistent service");
            e.add_dest(&persistent, dest(ip4(RIP4), 443, 1))
                .expect("dest");
            let dp = program_for(&e);
            // A port unreachable (quoting the start of a packet) from the client to `dst`.
            let icmp = |dst: [u8; 4]| {
                let mut out = Vec::new();
                etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
                    .ipv4(CLIENT4, dst, 64)
                    .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                        etherparse::icmpv4::DestUnreachableHeader::Port,
                    ))
                    .write(&mut out, &[0x45; 28])
                    .expect("icmp");
                out
            };
            let echo = {
                let mut out = Vec::new();
                etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
                    .ipv4(CLIENT4, VIP4, 64)
                    .icmpv4_echo_request(1, 1)
                    .write(&mut out, b"ping")
                    .expect("echo");
                out
            };
            let names = rvs_bpf::maps::STAT_NAMES;
            let stat = |dp: &Datapath, name: &str| {
                dp.stats().expect("stats")[names.iter().position(|n| *n == name).unwrap()]
            };
            let r = dp.test_run_at(hook, &icmp(VIP4), ifindex).expect("run");
            assert_eq!(
                r.verdict,
                Action::Drop,
                "an ICMP error to a VIP goes to rvsd"
            );
            let r = dp.test_run_at(hook, &echo, ifindex).expect("run");
            assert_eq!(
                r.verdict,
                Action::Pass,
                "an echo request is the kernel's, as the engine passes it"
            );
            assert_eq!(engine_outcome(&e, &echo), Outcome::Kernel);
            assert_eq!(stat(&dp, "punt_icmp"), 1);
            let r = dp.test_run(&icmp(ROUTER4), ifindex).expect("run");
            assert_eq!(
                r.action,
                tc_action::OK,
                "ICMP to another address is the kernel's"
            );
            let syn = tcp4(CLIENT4, CPORT, VIP4, 443, 64, SYN, &[]);
            let r = dp.test_run_at(hook, &syn, ifindex).expect("run");
            assert_eq!(r.verdict, Action::Drop);
            assert_eq!(
                stat(&dp, "punt_service"),
                1,
                "a persistence engine is rvsd's"
            );
            assert_eq!(r.frame, syn, "a punted frame is not touched");
        });
    }
}

/// Direct routing: packets go to the real server's MAC byte for byte (TTL kept), tracked with
/// IPVS's INPUT-ONLY states; the real server's replies are not the director's.
#[test]
fn direct_routing_matches_the_engine() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let e = dr_engine();
            let dp = program_for(&e);
            let c = |f: Flags, payload: &[u8]| tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, f, payload);
            let frames = vec![
                ("SYN", c(SYN, &[])),
                ("ACK", c(ACK, &[])),
                ("data", c(ACK, b"GET / HTTP/1.0\r\n\r\n")),
                ("FIN", c(FINACK, &[])),
                (
                    "TTL 2 kept",
                    tcp4(CLIENT4, CPORT, VIP4, VPORT, 2, ACK, b"z"),
                ),
                (
                    "reply is not ours",
                    tcp4(RIP4, VPORT, CLIENT4, CPORT, 64, ACK, b"ok"),
                ),
                ("udp", udp4(CLIENT4, CPORT, VIP4, VPORT, 64, b"q")),
                ("ipv6", tcp6(client6(), CPORT, vip6(), VPORT, 64, SYN, &[])),
            ];
            same(&e, &dp, hook, ifindex, &frames);
            let conns = dp.connections().expect("conns");
            let engine = e.connections(Millis(1000));
            for status in &engine {
                let found = conns.iter().find(|(k, _)| {
                    k.src.ip() == status.client.ip()
                        && u16::from_be(k.sport_be) == status.client.port()
                        && k.proto == status.proto.number()
                });
                let (_, conn) = found.expect("the engine's connection in the program's table");
                assert_eq!(conn.state, status.state as u8, "{status:?}");
            }
        });
    }
}

/// Packets from the service's own address and port (a DR real server replying through the
/// director) go to the kernel on both sides and are counted for the service on both.
#[test]
fn stray_replies_are_counted_as_the_engine_counts_them() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let e = dr_engine();
            let (dp, publisher) = published_program(&e);
            let stray = tcp4(VIP4, VPORT, CLIENT4, CPORT, 64, ACK, b"ok");
            let frames = vec![
                ("a stray reply", stray.clone()),
                ("another", stray.clone()),
                ("a third", stray),
                (
                    "from the VIP, another port",
                    tcp4(VIP4, VPORT + 1, CLIENT4, CPORT, 64, ACK, b"ok"),
                ),
                (
                    "from the real server's address",
                    tcp4(RIP4, VPORT, CLIENT4, CPORT, 64, ACK, b"ok"),
                ),
            ];
            same(&e, &dp, hook, ifindex, &frames);
            let counted = e.stray_replies();
            assert_eq!(counted.len(), 1, "{counted:?}");
            let (key, n) = counted[0];
            assert_eq!(n, 3);
            let id = publisher.service_id(&key).expect("published");
            assert_eq!(dp.service_stray(id).expect("svc_stray"), 3, "{hook:?}");
        });
    }
}

/// The expiry sweep takes connections past their timeout out of both tables and out of their
/// server's counts, and clears the overload mark under IPVS's lower threshold.
#[test]
fn expiry_sweep_removes_connections_and_counts() {
    in_lab(|ifindex| {
        let e = small_engine();
        let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
        e.add_service(svc(k, SchedulerKind::Wlc)).expect("service");
        let mut d = dest(ip4(RIP4), RPORT, 1);
        d.u_threshold = 2;
        e.add_dest(&k, d).expect("dest");
        let dp = program_for(&e);
        // SYN_RECV connections time out at once; ESTABLISHED ones live on.
        let mut settings = Settings::from_engine(Timeouts::default(), &Policy::default());
        settings.timeout_ms[ConnState::SynRecv as usize] = 0;
        Publisher::new()
            .publish(&dp, &e.spec_walk(), &settings)
            .expect("publish");
        for port in [50000u16, 50001] {
            let syn = tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[]);
            assert_eq!(
                dp.test_run(&syn, ifindex).expect("run").action,
                tc_action::REDIRECT
            );
        }
        // At the upper threshold: the third is refused (no usable server).
        let third = tcp4(CLIENT4, 50002, VIP4, VPORT, 64, SYN, &[]);
        assert_eq!(
            dp.test_run(&third, ifindex).expect("run").action,
            tc_action::SHOT
        );
        assert_eq!(dp.connections().expect("conns").len(), 2);
        let sweep = dp.expire().expect("sweep");
        assert_eq!(
            (sweep.expired, sweep.next_due),
            (2, None),
            "both gone, none left"
        );
        assert!(dp.connections().expect("conns").is_empty());
        let counts = dp.dest_conns(0).expect("counts");
        assert_eq!(
            (counts.active, counts.inactive, counts.overloaded),
            (0, 0, 0)
        );
        // The reply direction went too: a late SYN-ACK is no longer translated.
        let late = tcp4(RIP4, RPORT, CLIENT4, 50000, 64, SYNACK, &[]);
        assert_eq!(
            dp.test_run(&late, ifindex).expect("run").action,
            tc_action::OK
        );
        // And the server takes connections again.
        assert_eq!(
            dp.test_run(&third, ifindex).expect("run").action,
            tc_action::REDIRECT
        );
    });
}

/// Runs `f` with the pin directory of a bpffs mounted for it alone (named after `tag` and the
/// process), unmounted and removed afterwards even when `f` panics (the panic goes on).
fn with_bpffs(tag: &str, f: impl FnOnce(&std::path::Path)) {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    sh(&["mount", "-t", "bpf", "bpf", dir.to_str().expect("path")]);
    let pins = dir.join("rvs");
    std::fs::create_dir_all(&pins).expect("mkdir pins");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&pins)));
    let _ = Command::new("umount").arg(&dir).status();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// Pinned maps outlive the process that loaded them: a second load adopts the connections
/// (an rvsd restarted after `kill -9` finds its table), and a clean stop removes the pins.
#[test]
fn pinned_maps_are_adopted_by_the_next_load() {
    in_lab(|ifindex| {
        with_bpffs("rvs-bpffs", |pins| {
            let e = nat_engine();
            let limits = LIMITS;
            let settings = Settings::from_engine(Timeouts::default(), &Policy::default());
            let first = Datapath::load_pinned(limits, pins).expect("first load");
            assert!(!first.adopted());
            Publisher::new()
                .publish(&first, &e.spec_walk(), &settings)
                .expect("publish");
            let syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
            assert_eq!(
                first.test_run(&syn, ifindex).expect("run").action,
                tc_action::REDIRECT
            );
            drop(first);

            let mut second = Datapath::load_pinned(limits, pins).expect("second load");
            assert!(second.adopted());
            assert_eq!(second.connections().expect("conns").len(), 1);
            let reply = tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, SYNACK, &[]);
            let r = second.test_run(&reply, ifindex).expect("run");
            assert_eq!(
                r.action,
                tc_action::REDIRECT,
                "the adopted connection translates"
            );
            assert_eq!(&r.frame[26..30], &VIP4, "source back to the VIP");
            second.remove_pins().expect("clean stop");
            assert!(!pins.exists(), "pins removed");
        });
    });
}

/// Pins an earlier rvsd left are adopted with the size and flags they were made with (another
/// bound, or a table whose entries are allocated one by one, as builds before 568d75e made
/// it); a pinned map of another layout is refused with an error naming it, and the pins stay.
#[test]
fn pinned_maps_keep_their_shape_and_another_layout_is_refused() {
    with_bpffs("rvs-bpffs-shape", |pins| {
        let first = Datapath::load_pinned(LIMITS, pins).expect("first load");
        drop(first);
        let bigger = Limits {
            connections: LIMITS.connections * 2,
            ..LIMITS
        };
        let mut again = Datapath::load_pinned(bigger, pins).expect("another bound");
        assert!(again.adopted());
        assert_eq!(
            again.limits().connections,
            LIMITS.connections,
            "the pinned bound is kept"
        );
        again.remove_pins().expect("clean stop");

        let conns = pins.join("conns");
        let create_conns = |value: usize, flags: &str| {
            std::fs::create_dir_all(pins).expect("mkdir pins");
            let (key, value) = (
                std::mem::size_of::<ConnKey>().to_string(),
                value.to_string(),
            );
            sh(&[
                "bpftool",
                "map",
                "create",
                conns.to_str().expect("path"),
                "type",
                "hash",
                "key",
                &key,
                "value",
                &value,
                "entries",
                "4096",
                "name",
                "conns",
                "flags",
                flags,
            ]);
        };
        // An older build's table: its entries allocated one by one (BPF_F_NO_PREALLOC).
        create_conns(std::mem::size_of::<Conn>(), "1");
        let mut older = Datapath::load_pinned(LIMITS, pins).expect("an older build's table");
        assert!(older.adopted());
        let shown = Command::new("bpftool")
            .args(["map", "show", "pinned"])
            .arg(&conns)
            .output()
            .expect("bpftool");
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.contains("flags 0x1"), "kept as it was made: {shown}");
        older.remove_pins().expect("clean stop");

        // Another layout: refused, naming the map, and left in place.
        create_conns(8, "0");
        match Datapath::load_pinned(LIMITS, pins) {
            Err(e @ rvs_bpf::Error::PinsIncompatible { .. }) => {
                let text = e.to_string();
                assert!(text.contains("map conns pinned in"), "{text}");
                assert!(text.contains("8-byte values"), "{text}");
            }
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("a table of another layout was adopted"),
        }
        assert!(conns.exists(), "the pins are kept");
    });
}

/// A restarted rvsd adopts the pinned table and publishes its configuration from scratch: first
/// none (its connections see no server and are dropped, as IPVS drops a removed server's),
/// then the same services again, and the adopted connections forward to their servers again
/// (IPVS's dest trash), whatever order the servers come back in.
#[test]
fn adopted_connections_forward_again_once_their_servers_are_configured() {
    in_lab(|ifindex| {
        with_bpffs("rvs-bpffs-trash", |pins| {
            let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
            let configured = |order: [[u8; 4]; 2]| {
                let e = small_engine();
                e.add_service(svc(k, SchedulerKind::Rr)).expect("service");
                for rip in order {
                    e.add_dest(&k, dest(ip4(rip), RPORT, 1)).expect("dest");
                }
                e
            };
            let settings = Settings::from_engine(Timeouts::default(), &Policy::default());
            let first = Datapath::load_pinned(LIMITS, pins).expect("first load");
            Publisher::new()
                .publish(&first, &configured([RIP4, RIP4B]).spec_walk(), &settings)
                .expect("publish");
            let syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
            let r = first.test_run(&syn, ifindex).expect("run");
            assert_eq!(r.action, tc_action::REDIRECT);
            assert_eq!(&r.frame[30..34], &RIP4, "scheduled to the first server");
            drop(first);

            let mut second = Datapath::load_pinned(LIMITS, pins).expect("second load");
            assert!(second.adopted());
            let mut publisher = Publisher::adopt(&second).expect("adopt");
            publisher
                .publish(&second, &small_engine().spec_walk(), &settings)
                .expect("publish nothing");
            let ack = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"x");
            assert_eq!(
                second.test_run(&ack, ifindex).expect("run").action,
                tc_action::SHOT,
                "no server configured: dropped"
            );
            publisher
                .publish(&second, &configured([RIP4B, RIP4]).spec_walk(), &settings)
                .expect("publish again");
            let r = second.test_run(&ack, ifindex).expect("run");
            assert_eq!(r.action, tc_action::REDIRECT, "configured again: forwarded");
            assert_eq!(&r.frame[30..34], &RIP4, "to the connection's own server");
            second.remove_pins().expect("clean stop");
        });
    });
}

/// A server removed and added again takes its connections back in the program as in the
/// engine (IPVS's dest trash).
#[test]
fn a_removed_server_added_again_takes_its_connections_back() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let e = rr_engine(Policy::default(), &[ip4(RIP4), ip4(RIP4B)]);
            let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
            let settings = Settings::from_engine(Timeouts::default(), &Policy::default());
            let (dp, mut publisher) = published_with(&e, &settings);
            let mut republish = |e: &Engine| {
                publisher
                    .publish(&dp, &e.spec_walk(), &settings)
                    .expect("publish");
            };
            let syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
            let ack = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"x");
            same(&e, &dp, hook, ifindex, &[("SYN", syn)]);
            e.del_dest(&k, ip4(RIP4), RPORT).expect("remove");
            republish(&e);
            same(
                &e,
                &dp,
                hook,
                ifindex,
                &[("data, server removed", ack.clone())],
            );
            e.add_dest(&k, dest(ip4(RIP4), RPORT, 2))
                .expect("add again");
            republish(&e);
            same(&e, &dp, hook, ifindex, &[("data, server back", ack)]);
        });
    }
}

/// The per-CPU traffic counters of a service add up to the engine's (connections, packets and
/// IP bytes both ways).
#[test]
fn service_counters_match_the_engine() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let e = nat_engine();
            let (dp, publisher) = published_program(&e);
            for (_, frame) in nat_conversation_v4(true) {
                let _ = engine_outcome(&e, &frame);
                let _ = bpf_outcome(&dp, hook, ifindex, &frame);
            }
            let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
            let want = e
                .services(Millis(1000))
                .into_iter()
                .find(|s| s.spec.key == k)
                .expect("the service")
                .stats;
            let got = dp
                .service_traffic(publisher.service_id(&k).expect("published"))
                .expect("counters");
            assert_eq!(
                (
                    got.conns,
                    got.in_packets,
                    got.out_packets,
                    got.in_bytes,
                    got.out_bytes
                ),
                (
                    want.conns,
                    want.in_pkts,
                    want.out_pkts,
                    want.in_bytes,
                    want.out_bytes
                ),
                "{hook:?}"
            );
        });
    }
}

/// A deleted service whose connections rvsd keeps (it scheduled them: here a service with more
/// local addresses than the program holds) still has their packets sent up, both ways, until
/// they time out: the engine drops the client's and translates the server's, as IPVS does.
#[test]
fn a_deleted_service_rvsd_served_still_sends_its_connections_up() {
    for (clear, hook) in [false, true]
        .into_iter()
        .flat_map(|x| HOOKS.map(|h| (x, h)))
    {
        in_lab(move |ifindex| {
            let e = nat_engine();
            let k = key(Protocol::Tcp, ip4(VIP4), 443);
            let spec = ServiceSpec {
                local_addrs: (1..=9).map(|i| ip4([10, 99, 9, i])).collect(),
                ..svc(k, SchedulerKind::Rr)
            };
            e.add_service(spec).expect("service");
            e.add_dest(&k, dest(ip4(RIP4), 443, 1)).expect("dest");
            let (dp, mut publisher) = published_program(&e);
            let settings = Settings::from_engine(Timeouts::default(), &Policy::default());
            let stat = |name: &str| dp.stat(name).expect("stats");
            let syn = tcp4(CLIENT4, CPORT, VIP4, 443, 64, SYN, &[]);
            assert_eq!(bpf_outcome(&dp, hook, ifindex, &syn), Outcome::Drop);
            assert_eq!(stat("punt_service"), 1, "{hook:?}: rvsd schedules it");
            assert!(matches!(engine_outcome(&e, &syn), Outcome::Forward(_)));
            if clear {
                e.clear();
            } else {
                e.del_service(&k).expect("delete");
            }
            publisher
                .publish(&dp, &e.spec_walk(), &settings)
                .expect("republish");
            let ack = tcp4(CLIENT4, CPORT, VIP4, 443, 64, ACK, &[]);
            assert_eq!(bpf_outcome(&dp, hook, ifindex, &ack), Outcome::Drop);
            assert_eq!(
                stat("punt_service"),
                2,
                "{hook:?}: the client's packet went up"
            );
            let reply = tcp4(RIP4, 443, CLIENT4, CPORT, 64, ACK, &[]);
            assert_eq!(bpf_outcome(&dp, hook, ifindex, &reply), Outcome::Drop);
            assert_eq!(stat("punt_connection"), 1, "{hook:?}: the reply went up");
            // What rvsd's engine does with them.
            assert_eq!(
                engine_outcome(&e, &ack),
                Outcome::Drop,
                "the client's packet of a deleted service"
            );
            assert!(matches!(engine_outcome(&e, &reply), Outcome::Forward(_)));
        });
    }
}

/// A connection whose real server was removed: its client's packets are dropped as the engine
/// drops them (its server's replies still translated); with expire_nodest_conn the connection
/// goes at once, and the client's next SYN is scheduled afresh.
#[test]
fn removed_server_drops_like_the_engine() {
    for (expire, hook) in [false, true]
        .into_iter()
        .flat_map(|x| HOOKS.map(|h| (x, h)))
    {
        in_lab(move |ifindex| {
            let policy = Policy {
                expire_nodest_conn: expire,
                ..Policy::default()
            };
            let e = rr_engine(policy, &[ip4(RIP4), ip4(RIP4B)]);
            let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
            let settings = Settings::from_engine(Timeouts::default(), &policy);
            let (dp, mut publisher) = published_with(&e, &settings);
            let syn = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
            let ack = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"x");
            // rr: CPORT and CPORT + 2 to the first server, CPORT + 1 to the other.
            for port in [CPORT, CPORT + 1, CPORT + 2] {
                let syn = tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[]);
                assert_eq!(
                    bpf_outcome(&dp, hook, ifindex, &syn),
                    engine_outcome(&e, &syn)
                );
            }
            e.del_dest(&k, ip4(RIP4), RPORT).expect("remove the server");
            publisher
                .publish(&dp, &e.spec_walk(), &settings)
                .expect("republish");
            // A SYN again on a connection to the removed server: dropped, or with
            // expire_nodest_conn sent to the other server at once (ip_vs_in_hook since 5.9).
            let resyn = tcp4(CLIENT4, CPORT + 2, VIP4, VPORT, 64, SYN, &[]);
            let want = engine_outcome(&e, &resyn);
            assert_eq!(bpf_outcome(&dp, hook, ifindex, &resyn), want, "{hook:?}");
            assert_eq!(
                matches!(want, Outcome::Forward(_)),
                expire,
                "{hook:?} expire_nodest_conn {expire}: {want:?}"
            );
            let frames = vec![
                // IPVS translates a removed server's replies while the connection lives.
                (
                    "the removed server's reply",
                    tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, SYNACK, &[]),
                ),
                ("data to a removed server", ack.clone()),
                ("SYN again", syn.clone()),
                ("data after", ack),
            ];
            same(&e, &dp, hook, ifindex, &frames);
        });
    }
}

/// A NAT program with next hops cached, as rvsd runs it (`fib_gen` set), and what republishes
/// it when rvsd says the kernel's tables changed.
struct CachingProgram {
    engine: Engine,
    dp: Datapath,
    publisher: Publisher,
    settings: Settings,
}

impl CachingProgram {
    fn new() -> CachingProgram {
        let mut p = CachingProgram {
            engine: nat_engine(),
            dp: load_program(),
            publisher: Publisher::new(),
            settings: Settings::from_engine(Timeouts::default(), &Policy::default()),
        };
        p.settings.fib_gen = 7;
        p.publish();
        p
    }

    fn publish(&mut self) {
        self.publisher
            .publish(&self.dp, &self.engine.spec_walk(), &self.settings)
            .expect("publish");
    }

    /// rvsd's word that routes or neighbours changed: every cached next hop is stale.
    fn tables_changed(&mut self) {
        self.settings.fib_gen += 1;
        self.publish();
    }
}

/// Cached next hops: with `fib_gen` set, a connection's packets after the first lookup take
/// the cached route and MACs (the same bytes as the engine's), until rvsd changes `fib_gen`.
#[test]
fn next_hops_are_cached_until_the_tables_change() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let mut p = CachingProgram::new();
            let c = |f: Flags, payload: &[u8]| tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, f, payload);
            let frames = vec![
                ("SYN", c(SYN, &[])),
                ("ACK (looked up, cached)", c(ACK, &[])),
                ("data (from the cache)", c(ACK, b"GET / HTTP/1.0\r\n\r\n")),
            ];
            same(&p.engine, &p.dp, hook, ifindex, &frames);
            // The neighbour's MAC changes: the cache still has the old one...
            neighbour("192.168.7.10", "02:00:00:00:00:98");
            let r = p.dp.test_run_at(hook, &c(ACK, b"x"), ifindex).expect("run");
            assert_eq!(
                r.frame[..6],
                NEIGH_MAC_BYTES,
                "{hook:?}: served from the cache"
            );
            // ...until rvsd says the tables changed.
            p.tables_changed();
            let r = p.dp.test_run_at(hook, &c(ACK, b"y"), ifindex).expect("run");
            assert_eq!(r.frame[..6], CHANGED_MAC, "{hook:?}: looked up again");
        });
    }
}

/// A real server's next hop is cached for it, as IPVS caches a route per destination: once one
/// connection's SYN has looked it up, the next connection's SYN goes through it, and that
/// connection's own packets start from a copy, with no lookup of their own (the neighbour's
/// MAC changed meanwhile and they still carry the cached one), until rvsd changes `fib_gen`.
#[test]
fn a_new_connection_takes_its_servers_next_hop() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let mut p = CachingProgram::new();
            let c = |port: u16, f: Flags| tcp4(CLIENT4, port, VIP4, VPORT, 64, f, &[]);
            let mac_of = |dp: &Datapath, frame: &[u8]| {
                let r = dp.test_run_at(hook, frame, ifindex).expect("run");
                assert_eq!(r.verdict, Action::Redirect, "{hook:?}: forwarded");
                <[u8; 6]>::try_from(&r.frame[..6]).expect("a frame")
            };
            assert_eq!(
                mac_of(&p.dp, &c(CPORT, SYN)),
                NEIGH_MAC_BYTES,
                "{hook:?}: the first SYN"
            );
            neighbour("192.168.7.10", "02:00:00:00:00:98");
            for (what, f) in [("SYN", SYN), ("ACK", ACK)] {
                assert_eq!(
                    mac_of(&p.dp, &c(CPORT + 1, f)),
                    NEIGH_MAC_BYTES,
                    "{hook:?}: the second connection's {what}, through the server's next hop"
                );
            }
            p.tables_changed();
            assert_eq!(
                mac_of(&p.dp, &c(CPORT + 2, SYN)),
                CHANGED_MAC,
                "{hook:?}: a new SYN after the tables changed, looked up again"
            );
        });
    }
}

/// `engine` exporting connection changes as a sync master does, and a program with its
/// configuration exporting them too.
fn exporting_program(engine: &Engine) -> Datapath {
    engine.set_sync_export(true);
    let dp = load_program();
    let mut settings = Settings::from_engine(Timeouts::default(), &Policy::default());
    settings.sync_export = 1;
    Publisher::new()
        .publish(&dp, &engine.spec_walk(), &settings)
        .expect("publish");
    dp
}

/// Connection sync, program side: with a sync master running, the program exports the records
/// the engine exports for the same packets (IPVS's sync rule: TCP at the threshold packet and
/// on closing states, UDP by count); a second program given those records (a backup) forwards
/// a mid-connection packet as the engine given them does, counting the connection as its
/// server's active one.
#[test]
fn sync_records_match_the_engine_and_install_on_a_backup() {
    use std::cell::RefCell;
    use std::rc::Rc;
    in_lab(|ifindex| {
        let e = nat_engine();
        let dp = exporting_program(&e);
        let events: Rc<RefCell<Vec<rvs_bpf::maps::SyncEvent>>> = Rc::default();
        let ring = {
            let events = events.clone();
            dp.sync_reader(move |ev| events.borrow_mut().push(*ev))
                .expect("sync ring")
        };
        let data = |n: usize| tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[b'x'; 8][..n % 8]);
        let mut frames: Vec<(&str, Vec<u8>)> = vec![
            ("SYN", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
            (
                "SYN-ACK",
                tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, SYNACK, &[]),
            ),
            ("ACK", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
        ];
        for n in 0..55 {
            frames.push(("data", data(n)));
        }
        frames.extend([
            ("FIN in", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, FINACK, &[])),
            (
                "FIN out",
                tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, FINACK, &[]),
            ),
            ("last ACK", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
        ]);
        for n in 0..4 {
            frames.push((
                "udp",
                udp4(CLIENT4, CPORT, VIP4, VPORT, 64, &[b'q'; 4][..n]),
            ));
        }
        same(&e, &dp, Hook::Tc, ifindex, &frames);
        ring.consume().expect("read the sync ring");
        let got: Vec<rvs_sync::SyncConn> = events
            .borrow()
            .iter()
            .filter_map(|ev| ev.record())
            .collect();
        let want = e.sync_drain();
        assert!(want.len() >= 4, "the engine synced {want:?}");
        assert_eq!(got, want, "the program's sync records");
        assert_eq!(dp.stat("sync_lost").expect("stats"), 0);

        // A backup: the first record (ESTABLISHED, at the threshold packet) installed.
        let established = want.first().expect("a record").clone();
        assert_eq!(established.state, ConnState::Established as u16);
        let backup_engine = nat_engine();
        backup_engine
            .sync_import(Millis(1000), &established)
            .expect("the engine installs it");
        let backup = program_for(&nat_engine());
        assert_eq!(
            backup.sync_import(&established).expect("install"),
            Some(rvs_bpf::Installed::Added)
        );
        assert_eq!(
            backup.sync_import(&established).expect("install again"),
            Some(rvs_bpf::Installed::Refreshed)
        );
        let mid = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"more");
        same(
            &backup_engine,
            &backup,
            Hook::Tc,
            ifindex,
            &[("mid-connection", mid)],
        );
        let (_, vaddr, daddr) = established.addrs.ips();
        let at = backup
            .locate(6, vaddr, VPORT, daddr, established.dport, false)
            .expect("maps")
            .expect("the program's service and server");
        let counts = backup.dest_conns(at.dest).expect("counts");
        assert_eq!((counts.active, counts.inactive), (1, 0));

        // Records the program does not carry are left to the engine.
        let mut template = established.clone();
        template.flags |= rvs_sync::F_TEMPLATE;
        assert_eq!(backup.sync_import(&template).expect("template"), None);
        let mut elsewhere = established;
        elsewhere.vport = 81;
        assert_eq!(backup.sync_import(&elsewhere).expect("no service"), None);
    });
}

/// IPVS's conn_reuse_mode as the engine has it: a SYN that finds its connection in TIME_WAIT
/// starts a new one, scheduled afresh (rr: the other server), with the default mode 1, and
/// stays on the old connection with mode 0; the old one leaves its server's counts.
#[test]
fn closing_connections_are_reused_as_the_engine() {
    for (mode, hook) in [0u32, 1].into_iter().flat_map(|m| HOOKS.map(|h| (m, h))) {
        in_lab(move |ifindex| {
            let e = nat_engine();
            e.add_dest(
                &key(Protocol::Tcp, ip4(VIP4), VPORT),
                dest(ip4(RIP4B), RPORT, 1),
            )
            .expect("a second server");
            let dp = program_with_policy(&e, "conn_reuse_mode", mode);
            let frames = vec![
                ("SYN", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
                (
                    "SYN-ACK",
                    tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, SYNACK, &[]),
                ),
                ("ACK", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
                ("FIN in", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, FINACK, &[])),
                (
                    "FIN out",
                    tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, FINACK, &[]),
                ),
                ("last ACK", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[])),
                ("SYN again", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
                (
                    "ACK again",
                    tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"x"),
                ),
            ];
            same(&e, &dp, hook, ifindex, &frames);
            let conns = dp.connections().expect("conns");
            assert_eq!(conns.len(), 1, "mode {mode}: one connection");
            let want = if mode == 1 { RIP4B } else { RIP4 };
            assert_eq!(
                conns[0].1.daddr.ip(),
                ip4(want),
                "mode {mode}: the second SYN's server"
            );
        });
    }
}

/// A connection past its timeout is gone for its next packet, before the sweep runs (as the
/// engine's lookup treats it): a UDP datagram then opens a new connection, counted as one.
#[test]
fn expired_connections_are_gone_before_the_sweep() {
    in_lab(|ifindex| {
        let e = nat_engine();
        let timeouts = Timeouts {
            udp: 1,
            ..Timeouts::default()
        };
        let (dp, _) = published_with(&e, &Settings::from_engine(timeouts, &Policy::default()));
        let query = udp4(CLIENT4, CPORT, VIP4, VPORT, 64, b"q");
        let _ = bpf_outcome(&dp, Hook::Tc, ifindex, &query);
        assert_eq!(dp.stat("conn_created").expect("stats"), 1);
        std::thread::sleep(std::time::Duration::from_millis(1300));
        let _ = bpf_outcome(&dp, Hook::Tc, ifindex, &query);
        assert_eq!(
            dp.stat("conn_created").expect("stats"),
            2,
            "the expired connection was replaced"
        );
        assert_eq!(dp.connections().expect("conns").len(), 1);
        assert_eq!(dp.stat("expired").expect("stats"), 0, "no sweep ran");
        // The sweep leaves the new one and says when it falls due (its 1 s timeout).
        let sweep = dp.expire().expect("sweep");
        assert_eq!(sweep.expired, 0);
        let due = sweep.next_due.expect("a connection left");
        assert!(
            due > std::time::Duration::from_millis(500) && due <= std::time::Duration::from_secs(1),
            "{due:?}"
        );
    });
}

/// A real server's plain segment on a connection past its timeout (no sweep yet) is left to
/// the kernel as the engine leaves it, though such segments otherwise need only the reply
/// entry: the entry keeps the connection's expiry.
#[test]
fn a_plain_reply_of_an_expired_connection_is_not_translated() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let e = nat_engine();
            e.set_timeouts(TimeoutUpdate {
                tcp: 1,
                ..TimeoutUpdate::default()
            });
            let timeouts = Timeouts {
                tcp: 1,
                ..Timeouts::default()
            };
            let (dp, _) = published_with(&e, &Settings::from_engine(timeouts, &Policy::default()));
            let reply = tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, ACK, b"data");
            for frame in [
                tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]),
                tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, SYNACK, &[]),
                tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[]),
            ] {
                let _ = bpf_outcome(&dp, hook, ifindex, &frame);
                run(&e, 0, &mut frame.clone());
            }
            assert!(
                matches!(bpf_outcome(&dp, hook, ifindex, &reply), Outcome::Forward(_)),
                "{hook:?}: established, the reply is translated"
            );
            std::thread::sleep(std::time::Duration::from_millis(1300));
            assert_eq!(
                bpf_outcome(&dp, hook, ifindex, &reply),
                Outcome::Kernel,
                "{hook:?}: past ESTABLISHED's 1 s"
            );
            assert_eq!(
                run(&e, 1_300, &mut reply.clone()),
                Verdict::PassToKernel,
                "the engine's, 1.3 s on"
            );
            assert!(dp.connections().expect("conns").is_empty(), "{hook:?}");
        });
    }
}

/// The program notes every expiry it sets sooner than its floor, and the sweep clears the
/// floor: between sweeps it holds the earliest expiry the last one could not have seen, which
/// is what rvsd schedules its next sweep by. A packet that leaves the expiry where it was
/// (within the program's 100 ms slack) writes nothing.
#[test]
fn the_expiry_floor_holds_what_no_sweep_has_seen() {
    in_lab(|ifindex| {
        let dp = program_for(&nat_engine());
        let expires = || {
            let conns = dp.connections().expect("conns");
            assert_eq!(conns.len(), 1);
            conns[0].1.expires_ns
        };
        assert_eq!(dp.expiry_floor().expect("floor"), None, "nothing set yet");
        let _ = bpf_outcome(
            &dp,
            Hook::Tc,
            ifindex,
            &tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]),
        );
        assert_eq!(
            dp.expiry_floor().expect("floor"),
            Some(expires()),
            "the SYN's"
        );
        dp.expire().expect("sweep");
        assert_eq!(
            dp.expiry_floor().expect("floor"),
            None,
            "cleared by the sweep"
        );
        let ack = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &[]);
        let _ = bpf_outcome(&dp, Hook::Tc, ifindex, &ack);
        let established = expires();
        assert_eq!(
            dp.expiry_floor().expect("floor"),
            Some(established),
            "ESTABLISHED's"
        );
        dp.expire().expect("sweep");
        let _ = bpf_outcome(&dp, Hook::Tc, ifindex, &ack);
        assert_eq!(expires(), established, "within the slack");
        assert_eq!(dp.expiry_floor().expect("floor"), None, "nothing written");
        let fin = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, FINACK, &[]);
        let _ = bpf_outcome(&dp, Hook::Tc, ifindex, &fin);
        assert!(expires() < established, "FIN_WAIT's timeout is shorter");
        assert_eq!(
            dp.expiry_floor().expect("floor"),
            Some(expires()),
            "FIN_WAIT's"
        );
    });
}

/// A persistent NAT service of two real servers (rr) on `port` (0: a port-0 service, whose
/// servers have no port either) with clients grouped by `netmask`.
fn persistent_engine(port: u16, netmask: &str) -> Engine {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), port);
    e.add_service(ServiceSpec {
        persistence: Some(Persistence {
            timeout_s: 300,
            netmask: netmask.parse().expect("mask"),
            pe: None,
        }),
        ..svc(k, SchedulerKind::Rr)
    })
    .expect("service");
    let rport = if port == 0 { 0 } else { RPORT };
    for rip in [RIP4, RIP4B] {
        e.add_dest(&k, dest(ip4(rip), rport, 1)).expect("server");
    }
    e
}

/// Persistence (`-p`, `-M`) in the program as in the engine: a client's new connections keep
/// its template's server while rr would move on, a client of another group is scheduled, a
/// port-0 service keeps the client's port; templates are listed, synced with their
/// connections (the same records as the engine's), and installed on a backup, where a new
/// connection of that client goes to the template's server.
#[test]
fn persistence_templates_match_the_engine() {
    use std::cell::RefCell;
    use std::rc::Rc;
    const OTHER: [u8; 4] = [203, 0, 113, 77];
    for (port, mask, hook) in [
        (VPORT, "255.255.255.255"),
        (VPORT, "255.255.255.0"),
        (0, "255.255.255.255"),
    ]
    .into_iter()
    .flat_map(|(p, m)| HOOKS.map(|h| (p, m, h)))
    {
        in_lab(move |ifindex| {
            let e = persistent_engine(port, mask);
            let dp = exporting_program(&e);
            let events: Rc<RefCell<Vec<rvs_bpf::maps::SyncEvent>>> = Rc::default();
            let ring = {
                let events = events.clone();
                dp.sync_reader(move |ev| events.borrow_mut().push(*ev))
                    .expect("sync ring")
            };
            let mut frames: Vec<(&str, Vec<u8>)> = Vec::new();
            for (i, (client, dport)) in [
                (CLIENT4, VPORT),
                (CLIENT4, VPORT),
                (OTHER, VPORT),
                (CLIENT4, 443),
                (OTHER, VPORT),
            ]
            .into_iter()
            .enumerate()
            {
                if port != 0 && dport != VPORT {
                    continue;
                }
                let cport = CPORT + i as u16;
                frames.push(("SYN", tcp4(client, cport, VIP4, dport, 64, SYN, &[])));
                frames.push(("ACK", tcp4(client, cport, VIP4, dport, 64, ACK, &[])));
                frames.push(("data", tcp4(client, cport, VIP4, dport, 64, ACK, b"a")));
            }
            same(&e, &dp, hook, ifindex, &frames);
            let templates = dp.templates().expect("templates");
            let engine_templates = e
                .connections(Millis(1000))
                .iter()
                .filter(|c| c.template)
                .count();
            assert_eq!(
                templates.len(),
                engine_templates,
                "{port} {mask}: templates"
            );
            ring.consume().expect("sync ring");
            let got: Vec<rvs_sync::SyncConn> = events
                .borrow()
                .iter()
                .filter_map(|ev| ev.record())
                .collect();
            assert_eq!(got, e.sync_drain(), "{port} {mask}: sync records");

            // A backup given the records sends the client's next connection to the same
            // server as the master would.
            let backup_engine = persistent_engine(port, mask);
            let backup = program_for(&backup_engine);
            for rec in &got {
                backup_engine
                    .sync_import(Millis(1000), rec)
                    .expect("engine import");
                assert!(
                    backup.sync_import(rec).expect("import").is_some(),
                    "the program takes {rec:?}"
                );
            }
            let next = tcp4(CLIENT4, CPORT + 50, VIP4, VPORT, 64, SYN, &[]);
            same(
                &backup_engine,
                &backup,
                hook,
                ifindex,
                &[("next SYN on the backup", next)],
            );
        });
    }
}

/// The director's address toward the real servers in the lab: the FULLNAT local address.
const LADDR4: [u8; 4] = [192, 168, 7, 1];

/// A FULLNAT service (`local_addrs` = the director's inside address) on VIP4:80 (and VIP6:80)
/// to one real server on port 8080.
fn fullnat_engine() -> Engine {
    let e = Engine::new(EngineConfig::default());
    for (vip, rip, laddr) in [
        (ip4(VIP4), ip4(RIP4), ip4(LADDR4)),
        (
            ip6(vip6()),
            ip6(rip6()),
            "fd00:7::1".parse().expect("laddr"),
        ),
    ] {
        for proto in [Protocol::Tcp, Protocol::Udp] {
            let k = key(proto, vip, VPORT);
            e.add_service(ServiceSpec {
                local_addrs: vec![laddr],
                ..svc(k, SchedulerKind::Rr)
            })
            .expect("service");
            e.add_dest(
                &k,
                DestSpec {
                    method: ForwardMethod::FullNat,
                    ..dest(rip, RPORT, 1)
                },
            )
            .expect("server");
        }
    }
    e
}

/// The source port of an IP packet's TCP/UDP header.
fn src_port(l3: &[u8]) -> u16 {
    let at = if l3[0] >> 4 == 6 {
        40
    } else {
        usize::from(l3[0] & 0xf) * 4
    };
    u16::from_be_bytes([l3[at], l3[at + 1]])
}

/// `l3` with its L4 source port set to `port`, the checksum fixed (RFC 1624).
fn with_src_port(l3: &[u8], port: u16) -> Vec<u8> {
    let mut out = l3.to_vec();
    let v6 = l3[0] >> 4 == 6;
    let at = if v6 { 40 } else { usize::from(l3[0] & 0xf) * 4 };
    let proto = if v6 { l3[6] } else { l3[9] };
    let csum_at = at + if proto == 6 { 16 } else { 6 };
    let old = u16::from_be_bytes([out[at], out[at + 1]]);
    out[at..at + 2].copy_from_slice(&port.to_be_bytes());
    let check = u16::from_be_bytes([out[csum_at], out[csum_at + 1]]);
    if check != 0 || proto == 6 {
        let mut sum = u32::from(!check) + u32::from(!old) + u32::from(port);
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let mut new = !(sum as u16);
        if proto == 17 && new == 0 {
            new = 0xffff;
        }
        out[csum_at..csum_at + 2].copy_from_slice(&new.to_be_bytes());
    }
    out
}

/// One FULLNAT conversation on both sides: `first` from the client, the real server's `reply`
/// to a given local port, `more` from the client. Returns the program's local port.
#[allow(clippy::too_many_arguments)]
fn fullnat_case(
    e: &Engine,
    dp: &Datapath,
    hook: Hook,
    ifindex: u32,
    name: &str,
    first: &[u8],
    reply: impl Fn(u16) -> Vec<u8>,
    more: &[u8],
) -> u16 {
    // The first packet: from the local address to the real server.
    let (Outcome::Forward(want), Outcome::Forward(got)) = (
        engine_outcome(e, first),
        bpf_outcome(dp, hook, ifindex, first),
    ) else {
        panic!("{hook:?} {name}: both forward the first packet");
    };
    let (eport, pport) = (src_port(&want), src_port(&got));
    assert!(pport >= 1024, "{name}: local port {pport}");
    assert_eq!(
        got,
        with_src_port(&want, pport),
        "{hook:?} {name}: first packet"
    );
    // The real server's reply, to each side's own local port, comes out the same.
    let want = engine_outcome(e, &reply(eport));
    let got = bpf_outcome(dp, hook, ifindex, &reply(pport));
    assert!(
        matches!(got, Outcome::Forward(_)),
        "{hook:?} {name}: reply forwarded"
    );
    assert_eq!(got, want, "{hook:?} {name}: reply");
    // More from the client keeps the local port.
    let (Outcome::Forward(want), Outcome::Forward(got)) = (
        engine_outcome(e, more),
        bpf_outcome(dp, hook, ifindex, more),
    ) else {
        panic!("{hook:?} {name}: both forward more data");
    };
    assert_eq!(
        got,
        with_src_port(&want, pport),
        "{hook:?} {name}: more data"
    );
    pport
}

/// FULLNAT in the program as in the engine, for TCP and UDP over IPv4 and TCP over IPv6: the
/// packet toward the real server comes from the local address (each side picks its own free
/// local port, so the engine's frame is compared with the program's port put in), replies go
/// back from the virtual service to the client byte for byte the same, and states match. The
/// connection is synced with its local address and port, and a backup given the record
/// translates the real server's next reply.
#[test]
fn fullnat_matches_the_engine() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let e = fullnat_engine();
            let dp = exporting_program(&e);
            let laddr6 = v6("fd00:7::1");
            let pport = fullnat_case(
                &e,
                &dp,
                hook,
                ifindex,
                "tcp4",
                &tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]),
                |lp| tcp4(RIP4, RPORT, LADDR4, lp, 64, SYNACK, &[]),
                &tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"hello"),
            );
            fullnat_case(
                &e,
                &dp,
                hook,
                ifindex,
                "udp4",
                &udp4(CLIENT4, CPORT, VIP4, VPORT, 64, b"query"),
                |lp| udp4(RIP4, RPORT, LADDR4, lp, 64, b"answer"),
                &udp4(CLIENT4, CPORT, VIP4, VPORT, 64, b"again"),
            );
            fullnat_case(
                &e,
                &dp,
                hook,
                ifindex,
                "tcp6",
                &tcp6(client6(), CPORT, vip6(), VPORT, 64, SYN, &[]),
                |lp| tcp6(rip6(), RPORT, laddr6, lp, 64, SYNACK, &[]),
                &tcp6(client6(), CPORT, vip6(), VPORT, 64, ACK, b"hello"),
            );
            assert_eq!(dp.stat("conn_created").expect("stats"), 3);
            let engine_conns = e.connections(Millis(1000));
            for (k, c) in dp.connections().expect("conns") {
                let client = std::net::SocketAddr::new(k.src.ip(), u16::from_be(k.sport_be));
                let proto = if k.proto == 17 {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                };
                let twin = engine_conns
                    .iter()
                    .find(|x| x.client == client && x.proto == proto)
                    .expect("the engine's connection");
                assert_eq!(c.state, twin.state as u8, "states");
            }

            // A backup installs the TCP connection's record (the engine's and the program's
            // carry the local address and port) and translates the real server's next packet.
            let data = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"x");
            let _ = engine_outcome(&e, &data);
            let _ = bpf_outcome(&dp, hook, ifindex, &data);
            let rec = dp_sync_records(&dp)
                .into_iter()
                .find(|r| r.protocol == 6 && r.cport == CPORT && !r.addrs.is_v6())
                .expect("the TCP connection synced");
            assert_eq!(
                rec.fnat_local,
                Some(std::net::SocketAddr::new(ip4(LADDR4), pport))
            );
            let backup = program_for(&fullnat_engine());
            assert_eq!(
                backup.sync_import(&rec).expect("install"),
                Some(rvs_bpf::Installed::Added)
            );
            let reply = tcp4(RIP4, RPORT, LADDR4, pport, 64, ACK, b"late");
            let Outcome::Forward(out) = bpf_outcome(&backup, hook, ifindex, &reply) else {
                panic!("{hook:?}: the backup translates the reply");
            };
            assert_eq!(&out[12..20], &[VIP4, CLIENT4].concat()[..], "VIP to client");
        });
    }
}

/// The sync records a program exporting them has queued.
fn dp_sync_records(dp: &Datapath) -> Vec<rvs_sync::SyncConn> {
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let ring = {
        let got = got.clone();
        dp.sync_reader(move |ev| got.borrow_mut().extend(ev.record()))
            .expect("sync ring")
    };
    ring.consume().expect("sync ring");
    drop(ring);
    let out = got.borrow().clone();
    out
}

/// Keeps the test thread on one CPU: the program's outer IPv4 identification is a per-CPU
/// counter, the engine's a per-transmitter one; on one CPU they count alike.
fn pin_to_one_cpu() {
    let mut set = nix::sched::CpuSet::new();
    set.set(0).expect("cpu 0");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("pin the thread");
}

/// The director's address toward the fixture real servers (the lab's rvs0), the outer source.
fn director_addr(v6: bool) -> IpAddr {
    if v6 {
        ip6(v6_lit("fd00:7::1"))
    } else {
        ip4([192, 168, 7, 1])
    }
}

fn v6_lit(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().expect("literal").octets()
}

/// Engine with TCP and UDP services on the VIP of the inner family, each with one tunnel real
/// server (`cfg`) at RIP4 or rip6() (the outer family).
fn tun_engine(cfg: TunnelConfig, inner_v6: bool, outer_v6: bool) -> Engine {
    let e = small_engine();
    let vip = if inner_v6 { ip6(vip6()) } else { ip4(VIP4) };
    let rip = if outer_v6 { ip6(rip6()) } else { ip4(RIP4) };
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let k = key(proto, vip, VPORT);
        e.add_service(svc(k, SchedulerKind::Rr)).expect("service");
        let d = DestSpec {
            method: ForwardMethod::Tunnel,
            tunnel: cfg,
            ..dest(rip, 0, 1)
        };
        e.add_dest(&k, d).expect("tunnel server");
    }
    e
}

/// What became of a frame to tunnel.
#[derive(Debug, PartialEq, Eq)]
enum Tunnelled {
    /// Sent as this L3 packet (outer header and inner packet).
    Sent(Vec<u8>),
    /// Refused for the path MTU (the engine answers with ICMP; the program punts for that).
    TooBig,
    /// Punted to rvsd to be tunnelled there (the program only).
    Punted,
    /// Another verdict.
    Other(String),
}

/// The engine's packet path for one frame: the verdict, then its tunnel transmitter toward the
/// lab's real servers (MTU 1500) with the frame's offload state.
fn engine_tunnel(
    e: &Engine,
    tx: &mut tunnel::TunnelTx,
    frame: &[u8],
    offload: tunnel::Offload,
) -> Tunnelled {
    let mut f = frame.to_vec();
    let (rip, l3, cfg) = match run(e, 1000, &mut f) {
        Verdict::Encapsulate {
            next_hop_ip,
            l3_offset,
            tunnel,
        } => (next_hop_ip, l3_offset, tunnel),
        other => return Tunnelled::Other(format!("{other:?}")),
    };
    let route = tunnel::TunnelRoute {
        cfg: &cfg,
        src: director_addr(rip.is_ipv6()),
        dst: rip,
        mtu: 1500,
    };
    let mut packets = Vec::new();
    let sent = tx
        .encapsulate(&route, &mut f, l3, offload, |p| {
            let (outer, inner) = p.expect("outer header");
            packets.push([outer.as_bytes(), inner].concat());
        })
        .expect("encapsulate");
    match sent {
        tunnel::TunnelSent::TooBig { .. } => Tunnelled::TooBig,
        tunnel::TunnelSent::Sent { .. } => {
            assert_eq!(packets.len(), 1, "one packet for a frame sent whole");
            Tunnelled::Sent(packets.remove(0))
        }
    }
}

/// The program's run on one frame, in the same terms.
fn bpf_tunnel(dp: &Datapath, hook: Hook, ifindex: u32, frame: &[u8]) -> Tunnelled {
    let stat = |name: &str| dp.stat(name).expect("stats");
    let (too_big, punted) = (stat("punt_too_big"), stat("punt_tunnel"));
    let r = dp.test_run_at(hook, frame, ifindex).expect("test run");
    bpf_tunnelled(dp, &r, too_big, punted)
}

/// Reads a test run's outcome; `too_big` and `punted` are the punt counters before it.
fn bpf_tunnelled(dp: &Datapath, r: &rvs_bpf::TestRun, too_big: u64, punted: u64) -> Tunnelled {
    let stat = |name: &str| dp.stat(name).expect("stats");
    match r.verdict {
        Action::Redirect => {
            assert_eq!(r.frame[..6], NEIGH_MAC_BYTES, "the neighbour's MAC");
            let v6 = r.frame[14] >> 4 == 6;
            let ethertype: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
            assert_eq!(r.frame[12..14], ethertype, "the outer family's ethertype");
            Tunnelled::Sent(l3(&r.frame))
        }
        Action::Drop if stat("punt_too_big") == too_big + 1 => Tunnelled::TooBig,
        Action::Drop if stat("punt_tunnel") == punted + 1 => Tunnelled::Punted,
        other => Tunnelled::Other(format!("{other:?}")),
    }
}

/// A conversation's frames from the client, of the inner family: SYN, data (odd length),
/// a UDP datagram, FIN.
fn client_frames(inner_v6: bool) -> Vec<(&'static str, Vec<u8>)> {
    let text: &[u8] = b"GET / HTTP/1.0\r\n\r\nodd";
    if inner_v6 {
        let (c, v) = (client6(), vip6());
        vec![
            ("SYN", tcp6(c, CPORT, v, VPORT, 64, SYN, &[])),
            ("data", tcp6(c, CPORT, v, VPORT, 33, ACK, text)),
            ("udp", udp6(c, CPORT, v, VPORT, 64, b"query")),
            ("FIN", tcp6(c, CPORT, v, VPORT, 64, FINACK, &[])),
        ]
    } else {
        vec![
            ("SYN", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[])),
            ("data", tcp4(CLIENT4, CPORT, VIP4, VPORT, 33, ACK, text)),
            ("udp", udp4(CLIENT4, CPORT, VIP4, VPORT, 64, b"query")),
            ("FIN", tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, FINACK, &[])),
        ]
    }
}

/// `frame` with its DS field (IPv4 TOS / IPv6 traffic class) set to `ds` and, for IPv4, DF
/// cleared (the outer header then takes an identification), the IPv4 checksum fixed.
fn with_ds_without_df(mut frame: Vec<u8>, ds: u8) -> Vec<u8> {
    let ip = &mut frame[14..];
    if ip[0] >> 4 == 6 {
        ip[0] = (ip[0] & 0xf0) | (ds >> 4);
        ip[1] = (ip[1] & 0x0f) | (ds << 4);
        return frame;
    }
    ip[1] = ds;
    ip[6] &= !0x40;
    ip[10..12].copy_from_slice(&[0, 0]);
    let mut sum: u32 = ip[..20]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    frame
}

/// A client's TCP frame carrying `payload` bytes, of the inner family.
fn big_frame(inner_v6: bool, payload: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..payload).map(|i| (i * 7) as u8).collect();
    if inner_v6 {
        tcp6(client6(), CPORT, vip6(), VPORT, 64, ACK, &data)
    } else {
        tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, &data)
    }
}

/// Every encapsulation and checksum mode `--tun-type`/`--tun-flags` give.
fn tunnel_configs() -> Vec<TunnelConfig> {
    let gue = |checksum| TunnelConfig {
        kind: TunnelKind::Gue,
        port: 6080,
        checksum,
    };
    let gre = |checksum| TunnelConfig {
        kind: TunnelKind::Gre,
        port: 0,
        checksum,
    };
    vec![
        TunnelConfig::default(),
        gue(TunnelChecksum::NoCsum),
        gue(TunnelChecksum::Csum),
        gue(TunnelChecksum::RemCsum),
        gre(TunnelChecksum::NoCsum),
        gre(TunnelChecksum::Csum),
    ]
}

/// Families (inner, outer): IPv4 and IPv6 in their own family and across (4in6, 6in4).
const FAMILIES: [(bool, bool); 4] = [(false, false), (true, true), (false, true), (true, false)];

/// Tunnelling (IPIP, GUE, GRE, every checksum mode, both families and across them): each
/// frame leaves the program with the engine's exact outer header and inner packet (outer
/// source, TTL, DS field, identification, UDP source port and checksums), and a packet over
/// the path MTU goes to rvsd, which the engine answers with ICMP. At tc, remote checksum
/// offload is rvsd's (it depends on the skb's checksum state).
#[test]
fn tunnelled_frames_match_the_engine() {
    for hook in HOOKS {
        for cfg in tunnel_configs() {
            for (inner_v6, outer_v6) in FAMILIES {
                in_lab(move |ifindex| {
                    pin_to_one_cpu();
                    let what = format!("{hook:?} {cfg:?} inner v6 {inner_v6} outer v6 {outer_v6}");
                    let e = tun_engine(cfg, inner_v6, outer_v6);
                    let dp = program_for(&e);
                    let mut tx = tunnel::TunnelTx::default();
                    let rvsd_tunnels = hook == Hook::Tc && cfg.checksum == TunnelChecksum::RemCsum;
                    let mut frames = client_frames(inner_v6);
                    frames.push(("1000 bytes", big_frame(inner_v6, 1000)));
                    frames.push(("1001 bytes", big_frame(inner_v6, 1001)));
                    frames.push(("1400 bytes", big_frame(inner_v6, 1400)));
                    frames.push(("3000 bytes", big_frame(inner_v6, 3000)));
                    // CE becomes ECT(0) outside, the DSCP is copied; no DF: identifications.
                    for (name, ds) in [("DS CE, no DF", 0xb3), ("DS ECT(1), no DF", 0x29)] {
                        let udp = client_frames(inner_v6).remove(2).1;
                        frames.push((name, with_ds_without_df(udp, ds)));
                    }
                    // Inner 1500 bytes: with any outer header over the lab's MTU of 1500.
                    frames.push((
                        "over the MTU",
                        big_frame(inner_v6, if inner_v6 { 1440 } else { 1460 }),
                    ));
                    for (name, frame) in frames {
                        let want = engine_tunnel(&e, &mut tx, &frame, tunnel::Offload::default());
                        let got = bpf_tunnel(&dp, hook, ifindex, &frame);
                        if rvsd_tunnels {
                            assert_eq!(got, Tunnelled::Punted, "{what}: {name}");
                        } else {
                            assert_eq!(got, want, "{what}: {name}");
                        }
                    }
                    assert_eq!(
                        dp.connections().expect("conns").len(),
                        2,
                        "{what}: TCP and UDP"
                    );
                });
            }
        }
    }
}

/// A GSO frame at tc (a TCP super-frame as veth delivers them, here 3000 bytes of payload:
/// BPF_PROG_TEST_RUN takes at most a page): refused like the engine when its segments do not
/// fit the path (checked on the largest segment, not the frame); left to rvsd when the outer
/// checksum would need computing per segment. One that fits is tunnelled whole by
/// bpf_skb_adjust_room for the kernel to segment, but a test run cannot give the skb a GSO
/// type (only a size), so the kernel refuses it and the program hands it to rvsd, which is
/// what this checks for it; e2e_tun's uploads run real GSO frames through the program.
#[test]
fn gso_frames_tunnel_at_tc_as_the_engine_cuts_them() {
    for cfg in tunnel_configs() {
        for (inner_v6, outer_v6) in FAMILIES {
            in_lab(move |ifindex| {
                pin_to_one_cpu();
                let what = format!("{cfg:?} inner v6 {inner_v6} outer v6 {outer_v6}");
                let e = tun_engine(cfg, inner_v6, outer_v6);
                let dp = program_for(&e);
                let syn = client_frames(inner_v6).remove(0).1;
                let mut tx = tunnel::TunnelTx::default();
                let _ = engine_tunnel(&e, &mut tx, &syn, tunnel::Offload::default());
                let _ = bpf_tunnel(&dp, Hook::Tc, ifindex, &syn);
                let frame = big_frame(inner_v6, 3000);
                let l4 = if inner_v6 { 14 + 40 } else { 14 + 20 };
                for (gso, fits) in [(1200u16, true), (1480, false)] {
                    let offload = tunnel::Offload {
                        segmentation: tunnel::Segmentation::Gso {
                            kind: rvs_engine::gso::GsoKind::Tcp,
                            size: gso,
                        },
                        csum: Some(tunnel::FrameCsum {
                            start: l4 as u16,
                            offset: 16,
                        }),
                    };
                    let mut segments = 0;
                    let mut f = frame.clone();
                    let rip = if outer_v6 { ip6(rip6()) } else { ip4(RIP4) };
                    let route = tunnel::TunnelRoute {
                        cfg: &cfg,
                        src: director_addr(outer_v6),
                        dst: rip,
                        mtu: 1500,
                    };
                    let sent = tx
                        .encapsulate(&route, &mut f, 14, offload, |_| segments += 1)
                        .expect("engine");
                    let (too_big, punted) = (
                        dp.stat("punt_too_big").expect("stats"),
                        dp.stat("punt_tunnel").expect("stats"),
                    );
                    let r = dp
                        .test_run_gso(&frame, ifindex, u32::from(gso))
                        .expect("test run");
                    let got = bpf_tunnelled(&dp, &r, too_big, punted);
                    if fits {
                        assert_eq!(segments, 3000usize.div_ceil(usize::from(gso)), "{what}");
                    } else {
                        assert!(matches!(sent, tunnel::TunnelSent::TooBig { .. }), "{what}");
                    }
                    if cfg.kind != TunnelKind::Ipip && cfg.checksum != TunnelChecksum::NoCsum {
                        // rvsd computes each segment's checksum (or answers with ICMP).
                        assert_eq!(got, Tunnelled::Punted, "{what}: gso {gso}");
                        continue;
                    }
                    if !fits {
                        assert_eq!(got, Tunnelled::TooBig, "{what}: gso {gso}");
                        continue;
                    }
                    assert_eq!(got, Tunnelled::Punted, "{what}: no GSO type in a test run");
                }
            });
        }
    }
}

/// A template replaced (its server removed) is not the old connections': when one of them goes
/// (expire_nodest_conn), the new template keeps counting its own connection.
#[test]
fn replaced_templates_keep_their_own_connection_counts() {
    in_lab(|ifindex| {
        let e = persistent_engine(VPORT, "255.255.255.255");
        let mut policy = Policy::default();
        policy.set("expire_nodest_conn", 1).expect("policy");
        e.set_policy(policy);
        let dp = load_program();
        let mut publisher = Publisher::new();
        let settings = Settings::from_engine(Timeouts::default(), &policy);
        publisher
            .publish(&dp, &e.spec_walk(), &settings)
            .expect("publish");
        let first = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
        let Outcome::Forward(out) = bpf_outcome(&dp, Hook::Tc, ifindex, &first) else {
            panic!("the first connection");
        };
        let old_server: [u8; 4] = out[16..20].try_into().expect("daddr");
        // The template's server leaves; the client's next connection makes a new template.
        e.del_dest(
            &key(Protocol::Tcp, ip4(VIP4), VPORT),
            ip4(old_server),
            RPORT,
        )
        .expect("remove the server");
        publisher
            .publish(&dp, &e.spec_walk(), &settings)
            .expect("publish");
        let second = tcp4(CLIENT4, CPORT + 1, VIP4, VPORT, 64, SYN, &[]);
        assert!(matches!(
            bpf_outcome(&dp, Hook::Tc, ifindex, &second),
            Outcome::Forward(_)
        ));
        let n_control = |dp: &Datapath| {
            let t = dp.templates().expect("templates");
            assert_eq!(t.len(), 1, "one template");
            t[0].1.n_control
        };
        assert_eq!(n_control(&dp), 1);
        // The first connection's next packet: its server is gone, so it goes.
        let again = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"x");
        assert_eq!(bpf_outcome(&dp, Hook::Tc, ifindex, &again), Outcome::Drop);
        assert_eq!(dp.connections().expect("conns").len(), 1);
        assert_eq!(
            n_control(&dp),
            1,
            "the new template still controls its connection"
        );
    });
}

/// The lblc table the program keeps: one entry for the destination address, naming the
/// server its connections went to (by slot and the engine's id), which rvsd can drop.
#[test]
fn locality_entries_name_the_server_picked() {
    in_lab(|ifindex| {
        let e = small_engine();
        let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
        e.add_service(svc(k, SchedulerKind::Lblc)).expect("service");
        for rip in [RIP4, RIP4B] {
            e.add_dest(&k, dest(ip4(rip), RPORT, 1)).expect("dest");
        }
        let dp = program_for(&e);
        let mut went_to = Vec::new();
        for port in 50000u16..50004 {
            let syn = tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[]);
            let want = engine_outcome(&e, &syn);
            assert_eq!(bpf_outcome(&dp, Hook::Tc, ifindex, &syn), want);
            if let Outcome::Forward(l3) = want {
                went_to.push(l3[16..20].to_vec());
            }
        }
        assert_eq!(went_to.len(), 4);
        assert!(went_to.iter().all(|d| *d == went_to[0]), "{went_to:?}");
        let entries = dp.locality_entries().expect("locality");
        assert_eq!(entries.len(), 1, "{entries:?}");
        let (lk, loc) = &entries[0];
        assert_eq!(lk.dst.ip(), ip4(VIP4));
        assert_eq!(loc.n, 1);
        let server = dp.dest(loc.m[0].slot).expect("dest").expect("a server");
        assert_eq!(server.addr.ip().to_string(), {
            let d = &went_to[0];
            format!("{}.{}.{}.{}", d[0], d[1], d[2], d[3])
        });
        assert_eq!(server.id, loc.m[0].id);
        dp.forget_locality(lk).expect("forget");
        assert!(dp.locality_entries().expect("locality").is_empty());
    });
}

/// IPVS's defence in the program as in the engine: secure_tcp's state table (a client's
/// handshake alone stays SYN_RECV, the server's SYN-ACK makes it SYNACK, which counts as
/// active), drop_packet's rate, and drop_entry removing half-open connections.
#[test]
fn defense_matches_the_engine() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            pin_to_one_cpu();
            let e = nat_engine();
            let mut policy = e.policy();
            policy.secure_tcp = 3;
            policy.drop_packet = 3;
            policy.am_droprate = 3;
            e.set_policy(policy);
            let status = e.update_defense(Millis(0), u64::MAX);
            assert!(status.secure_tcp && status.drop_rate == 3, "{status:?}");
            let dp = load_program();
            let settings =
                Settings::from_engine(Timeouts::default(), &policy).with_defense(&status);
            Publisher::new()
                .publish(&dp, &e.spec_walk(), &settings)
                .expect("publish");
            let conn_state = |port: u16| {
                dp.connections()
                    .expect("conns")
                    .into_iter()
                    .find(|(k, _)| u16::from_be(k.sport_be) == port)
                    .map(|(_, c)| c.state)
            };
            // drop_packet: the first SYN of each three goes (both count down from 0).
            let syns: Vec<(&str, Vec<u8>)> = (0..6u16)
                .map(|i| ("SYN", tcp4(CLIENT4, 41_000 + i, VIP4, VPORT, 64, SYN, &[])))
                .collect();
            same(&e, &dp, hook, ifindex, &syns);
            assert_eq!(dp.stat("drop_defense").expect("stat"), 2, "{hook:?}");
            assert_eq!(e.drop_counters().get(DropReason::DefenseDropPacket), 2);
            // secure_tcp on a connection that got through.
            let port = 41_001;
            let c = |f: Flags| tcp4(CLIENT4, port, VIP4, VPORT, 64, f, &[]);
            let s = |f: Flags| tcp4(RIP4, RPORT, CLIENT4, port, 64, f, &[]);
            for (name, frame, want) in [
                ("client ACK", c(ACK), ConnState::SynRecv),
                ("server SYN-ACK", s(SYNACK), ConnState::SynAck),
                ("client ACK again", c(ACK), ConnState::SynAck),
                ("server ACK", s(ACK), ConnState::Established),
            ] {
                same(&e, &dp, hook, ifindex, &[(name, frame)]);
                let engine_state = e
                    .connections(Millis(1000))
                    .into_iter()
                    .find(|x| x.client.port() == port)
                    .map(|x| x.state);
                assert_eq!(engine_state, Some(want), "{hook:?}: engine after {name}");
                assert_eq!(
                    conn_state(port),
                    Some(want as u8),
                    "{hook:?}: program after {name}"
                );
            }
            // drop_entry: every 32nd visited once removes the half-open connections (the
            // other three SYNs) and keeps the established one.
            let gone: u64 = (0..32)
                .map(|part| dp.drop_entries(part).expect("visit"))
                .sum();
            assert_eq!(gone, 3, "{hook:?}");
            let left: Vec<u16> = dp
                .connections()
                .expect("conns")
                .iter()
                .map(|(k, _)| u16::from_be(k.sport_be))
                .collect();
            assert_eq!(left, [port], "{hook:?}");
            let counts = dp.dest_conns(0).expect("counts");
            assert_eq!((counts.active, counts.inactive), (1, 0), "{hook:?}");
        });
    }
}

/// The NAT engine with the SYN proxy on, and the program with its configuration.
fn proxying() -> (Engine, Datapath) {
    let e = nat_engine();
    let dp = program_with_policy(&e, "syn_proxy", 1);
    (e, dp)
}

/// Sets policy switch `name` to `value` in `e` (the others at their defaults) and returns the
/// program with `e`'s configuration and policy published.
fn program_with_policy(e: &Engine, name: &str, value: u32) -> Datapath {
    let mut policy = Policy::default();
    policy.set(name, value).expect("known switch");
    e.set_policy(policy);
    let dp = load_program();
    Publisher::new()
        .publish(
            &dp,
            &e.spec_walk(),
            &Settings::from_engine(Timeouts::default(), &e.policy()),
        )
        .expect("publish");
    dp
}

/// A TCP segment over IPv4 with explicit numbers (an ACK when `ack` is given).
fn numbered4(
    (src, sp): ([u8; 4], u16),
    (dst, dp): ([u8; 4], u16),
    (seq, ack): (u32, Option<u32>),
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 29_200);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build");
    out
}

/// The TCP sequence number of an Ethernet + IPv4 frame.
fn seq_of(frame: &[u8]) -> u32 {
    let l4 = 14 + usize::from(frame[14] & 0x0f) * 4;
    u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]])
}

/// A SYN-proxied connection handed over by the engine once its real server answered: the
/// program takes the engine's record and forwards the rest of the connection as the engine
/// does, every client segment's acknowledgement number and every server segment's sequence
/// number shifted, checksums right; the engine then forgets it, and the program counts it as
/// its server's active connection.
#[test]
fn proxied_connections_handed_over_forward_as_the_engine() {
    const CLIENT_ISN: u32 = 1_000_000;
    const SERVER_ISN: u32 = 7_777_777;
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let (e, dp) = proxying();
            e.set_proxy_handoff(true);
            let client = (CLIENT4, CPORT);
            let (vip, rip) = ((VIP4, VPORT), (RIP4, RPORT));
            // The handshake, through the engine: its cookie, the server's SYN-ACK.
            let mut syn = numbered4(client, vip, (CLIENT_ISN, None), true, &[]);
            assert!(matches!(run(&e, 1000, &mut syn), Verdict::Forward { .. }));
            let cookie = seq_of(&syn);
            let mut ack = numbered4(client, vip, (CLIENT_ISN + 1, Some(cookie + 1)), false, &[]);
            // Turned into the server's SYN (its MSS option inserted after the header).
            assert!(matches!(
                run(&e, 1000, &mut ack),
                Verdict::ForwardInsert { .. }
            ));
            assert!(
                e.proxied_ready().is_empty(),
                "not before the server answered"
            );
            let mut synack = numbered4(rip, client, (SERVER_ISN, Some(CLIENT_ISN + 1)), true, &[]);
            assert!(matches!(
                run(&e, 1000, &mut synack),
                Verdict::Forward { .. }
            ));
            let ready = e.proxied_ready();
            assert_eq!(ready.len(), 1, "{ready:?}");
            assert!(ready[0].seq.is_some(), "the shift travels in the record");
            assert_eq!(
                dp.sync_import(&ready[0]).expect("install"),
                Some(rvs_bpf::Installed::Added)
            );
            let (c, s) = (CLIENT_ISN + 1, SERVER_ISN + 1);
            let a = cookie + 1;
            let frames = vec![
                (
                    "request",
                    numbered4(client, vip, (c, Some(a)), false, b"GET / HTTP/1.0\r\n\r\n"),
                ),
                (
                    "answer",
                    numbered4(rip, client, (s, Some(c + 18)), false, b"hello, proxied"),
                ),
                (
                    "client ACK",
                    numbered4(client, vip, (c + 18, Some(a + 14)), false, &[]),
                ),
                (
                    "more",
                    numbered4(rip, client, (s + 14, Some(c + 18)), false, b"bye"),
                ),
            ];
            same(&e, &dp, hook, ifindex, &frames);
            // The engine lets go (its server counts no connection of its own any more); the
            // program holds the connection on its server.
            let last = e.release_handed_over(&ready[0]).expect("released");
            assert_eq!(last.state, ready[0].state, "still ESTABLISHED");
            assert!(e.release_handed_over(&ready[0]).is_none(), "once");
            assert_eq!(e.connection_count(), 0);
            assert_eq!(e.syn_proxy_counters().handed_over, 1);
            let own: Vec<(u32, u32)> = e
                .services(Millis(1000))
                .iter()
                .filter(|s| s.spec.key.proto == Protocol::Tcp && s.spec.key.addr == ip4(VIP4))
                .flat_map(|s| s.dests.iter().map(|d| (d.active_conns, d.inactive_conns)))
                .collect();
            assert_eq!(own, [(0, 0)]);
            let at = dp
                .locate(6, ip4(VIP4), VPORT, ip4(RIP4), RPORT, false)
                .expect("maps");
            assert!(
                at.is_none(),
                "the proxy's service is not the program's to schedule"
            );
            let held = dp.connections().expect("connections");
            assert_eq!(held.len(), 1, "{held:?}");
            let counts = dp.dest_conns(held[0].1.dest).expect("counts");
            assert_eq!((counts.active, counts.inactive), (1, 0));
            // Its segments still come out shifted: the client's ACK of the last data.
            let last = numbered4(client, vip, (c + 18, Some(a + 17)), false, &[]);
            match bpf_outcome(&dp, hook, ifindex, &last) {
                Outcome::Forward(l3) => {
                    let ack_at = 20 + 8;
                    let got = u32::from_be_bytes(l3[ack_at..ack_at + 4].try_into().unwrap());
                    assert_eq!(got, s + 17, "the server's numbers");
                }
                other => panic!("{hook:?}: {other:?}"),
            }
        });
    }
}

/// The program's own SYN proxy answer, at tc and at XDP: a SYN to a proxied service comes back
/// as a SYN-ACK toward the client (addresses and ports swapped, the client's ISN acknowledged,
/// an MSS offered, checksums right, the kernel's cookie as ISN), nothing is kept, and the
/// client's ACK of that cookie goes to rvsd marked checked while a wrong one does not.
#[test]
fn the_program_answers_syns_with_cookies_at_both_hooks() {
    const CLIENT_ISN: u32 = 4_242_424;
    for hook in HOOKS {
        in_lab(move |ifindex| {
            let (_, dp) = proxying();
            let (client, vip) = ((CLIENT4, CPORT), (VIP4, VPORT));
            // With an MSS option, so the answer has room for its own.
            let syn = {
                let b = etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
                    .ipv4(CLIENT4, VIP4, 64)
                    .tcp(CPORT, VPORT, CLIENT_ISN, 29_200)
                    .syn()
                    .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
                    .expect("options");
                let mut out = Vec::new();
                b.write(&mut out, &[]).expect("build");
                out
            };
            let r = dp.test_run_at(hook, &syn, ifindex).expect("test run");
            assert_eq!(r.verdict, Action::Redirect, "{hook:?}");
            let answer = &r.frame;
            assert!(checksums_ok(answer), "{hook:?}: SYN-ACK checksums");
            let h = etherparse::PacketHeaders::from_ethernet_slice(answer).expect("parse");
            let Some(etherparse::NetHeaders::Ipv4(ip, _)) = &h.net else {
                panic!("IPv4")
            };
            assert_eq!((ip.source, ip.destination), (VIP4, CLIENT4));
            let Some(etherparse::TransportHeader::Tcp(t)) = &h.transport else {
                panic!("TCP")
            };
            assert!(t.syn && t.ack && !t.rst, "{t:?}");
            assert_eq!((t.source_port, t.destination_port), (VPORT, CPORT));
            assert_eq!(t.acknowledgment_number, CLIENT_ISN + 1);
            let mss: Vec<_> = t.options_iterator().filter_map(Result::ok).collect();
            assert!(
                matches!(
                    mss.first(),
                    Some(etherparse::TcpOptionElement::MaximumSegmentSize(_))
                ),
                "{mss:?}"
            );
            assert_eq!(dp.stat("synproxy_answered").expect("stats"), 1);
            assert!(dp.connections().expect("connections").is_empty());
            let cookie = t.sequence_number;
            let checked = |ack: u32| {
                let before = dp.stat("punt_synproxy_ack").expect("stats");
                let frame = numbered4(client, vip, (CLIENT_ISN + 1, Some(ack)), false, &[]);
                let r = dp.test_run_at(hook, &frame, ifindex).expect("test run");
                assert_eq!(r.verdict, Action::Drop, "{hook:?}: punted");
                dp.stat("punt_synproxy_ack").expect("stats") > before
            };
            assert!(
                checked(cookie.wrapping_add(1)),
                "{hook:?}: the cookie holds"
            );
            assert!(
                !checked(cookie.wrapping_add(2)),
                "{hook:?}: a wrong one does not"
            );
        });
    }
}
