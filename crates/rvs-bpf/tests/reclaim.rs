//! The publisher takes back removed servers' slots and deleted services' ids once nothing in
//! the maps names them, when the maps have no never-used one left: a pool of real servers
//! that come and go, or services added and deleted over time, keep working past the maps'
//! bounds, while a slot or id a connection still names stays its own. Checked against the
//! engine frame by frame, with maps of four server slots and two service ids.
//! Needs root and a kernel with BPF (as CI has).

#[path = "../../rvs-engine/tests/common/mod.rs"]
mod common;
mod lab;
mod outcome;

use common::*;
use lab::in_lab;
use outcome::*;
use rvs_bpf::maps::Settings;
use rvs_bpf::{Datapath, Limits, Publisher};
use rvs_engine::*;
use std::net::IpAddr;

/// Maps with room for four real servers and two services.
const SMALL: Limits = Limits {
    connections: 1024,
    services: 2,
    dests: 4,
    tables: 2,
};

/// A small program and its publisher, kept in step with `e`.
struct Small {
    dp: Datapath,
    publisher: Publisher,
    settings: Settings,
}

impl Small {
    /// The program (maps of [`SMALL`]) for `e`, whose policy is `policy`.
    fn new(e: &Engine, policy: &Policy) -> Small {
        Small::with(e, policy, SMALL)
    }

    /// The program with maps of `limits` for `e`, whose policy is `policy`.
    fn with(e: &Engine, policy: &Policy, limits: Limits) -> Small {
        let settings = Settings::from_engine(Timeouts::default(), policy);
        let (dp, publisher) = published_in(limits, e, &settings);
        Small {
            dp,
            publisher,
            settings,
        }
    }

    fn publish(&mut self, e: &Engine) -> Result<(), rvs_bpf::Error> {
        self.publisher
            .publish(&self.dp, &e.spec_walk(), &self.settings)
    }

    /// The slot of `rip` in service `k`.
    fn slot(&self, k: &ServiceKey, rip: IpAddr) -> u32 {
        self.publisher
            .servers()
            .find(|(_, (vip, port, _), (addr, _))| (*vip, *port, *addr) == (k.addr, k.port, rip))
            .expect("the server's slot")
            .0
    }
}

fn rip(n: u8) -> IpAddr {
    ip4([192, 168, 7, n])
}

/// The lab's neighbour entries for the servers past the fixtures' two (`rip(12)` on).
fn neighbours() {
    for n in 12..17 {
        lab::neighbour(&format!("192.168.7.{n}"), lab::NEIGH_MAC);
    }
}

/// A SYN from client port `port` to `VIP4:VPORT`.
fn syn(port: u16) -> Vec<u8> {
    tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[])
}

#[test]
fn removed_servers_slots_are_taken_back_unless_a_connection_holds_them() {
    for hook in HOOKS {
        in_lab(move |ifindex| {
            neighbours();
            // A removed server's connection goes with its next packet: B's slot is then free,
            // with B's counters in it.
            let policy = Policy {
                expire_nodest_conn: true,
                ..Policy::default()
            };
            let e = rr_engine(policy, &[rip(10), rip(11)]);
            let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
            let mut p = Small::new(&e, &policy);
            // A connection to A and one to B (rr), then A and B out, C and D in: all four
            // slots. B's connection goes with its next packet.
            for port in [CPORT, CPORT + 1] {
                let out = bpf_outcome(&p.dp, hook, ifindex, &syn(port));
                assert_eq!(out, engine_outcome(&e, &syn(port)), "{hook:?}: {port}");
            }
            let a_slot = p.slot(&k, rip(10));
            e.del_dest(&k, rip(10), RPORT).expect("A out");
            e.del_dest(&k, rip(11), RPORT).expect("B out");
            e.add_dest(&k, dest(rip(12), RPORT, 1)).expect("C");
            e.add_dest(&k, dest(rip(13), RPORT, 1)).expect("D");
            p.publish(&e).expect("C and D fit");
            let to_b = tcp4(CLIENT4, CPORT + 1, VIP4, VPORT, 64, ACK, b"x");
            assert_eq!(bpf_outcome(&p.dp, hook, ifindex, &to_b), Outcome::Drop);
            assert_eq!(engine_outcome(&e, &to_b), Outcome::Drop);
            // C out, E and F in: they take back B's and C's slots; A's connection keeps A's.
            e.del_dest(&k, rip(12), RPORT).expect("C out");
            e.add_dest(&k, dest(rip(14), RPORT, 1)).expect("E");
            e.add_dest(&k, dest(rip(15), RPORT, 1)).expect("F");
            p.publish(&e).expect("E and F take back free slots");
            let (e_slot, f_slot) = (p.slot(&k, rip(14)), p.slot(&k, rip(15)));
            assert!(
                ![a_slot, p.slot(&k, rip(13))].contains(&e_slot)
                    && ![a_slot, p.slot(&k, rip(13)), e_slot].contains(&f_slot),
                "{hook:?}: E and F in slots of their own, A's kept"
            );
            // New connections reach D, E and F as the engine sends them, each server counted
            // from zero.
            for port in CPORT + 2..CPORT + 8 {
                assert_eq!(
                    bpf_outcome(&p.dp, hook, ifindex, &syn(port)),
                    engine_outcome(&e, &syn(port)),
                    "{hook:?}: SYN from {port}"
                );
            }
            let listed = e.services(Millis(1000));
            for d in &listed[0].dests {
                let t =
                    p.dp.dest_traffic(p.slot(&k, d.spec.addr))
                        .expect("counters");
                assert_eq!(
                    (t.conns, t.in_packets),
                    (d.stats.conns, d.stats.in_pkts),
                    "{hook:?}: {}'s counters",
                    d.spec.addr
                );
            }
            let data = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"x");
            // A back: its own slot (the trash kept it for its connection), and its connection
            // forwards again.
            e.add_dest(&k, dest(rip(10), RPORT, 1)).expect("A back");
            p.publish(&e).expect("A back in its slot");
            assert_eq!(p.slot(&k, rip(10)), a_slot, "{hook:?}: A's own slot");
            let out = bpf_outcome(&p.dp, hook, ifindex, &data);
            assert!(matches!(out, Outcome::Forward(_)), "{hook:?}: {out:?}");
            assert_eq!(out, engine_outcome(&e, &data), "{hook:?}: to A again");
            // A fifth server with four configured has no room; nor once F is out, whose slot
            // its connections still name.
            e.add_dest(&k, dest(rip(16), RPORT, 1)).expect("G");
            for what in ["G with four configured", "G with F's connections left"] {
                let err = p.publish(&e).expect_err(what);
                assert!(
                    err.to_string().contains("--bpf-max-dests"),
                    "{hook:?}: {what}: the error names the bound: {err}"
                );
                e.del_dest(&k, rip(15), RPORT).ok();
            }
        });
    }
}

#[test]
fn deleted_services_ids_are_taken_back_unless_a_connection_names_them() {
    in_lab(move |ifindex| {
        let hook = rvs_bpf::Hook::Tc;
        let e = small_engine();
        let ports = [80u16, 81, 82, 83];
        let k = |n: usize| key(Protocol::Tcp, ip4(VIP4), ports[n]);
        let add = |n: usize| {
            e.add_service(svc(k(n), SchedulerKind::Rr))
                .expect("service");
            e.add_dest(&k(n), dest(rip(10), RPORT, 1)).expect("server");
        };
        let syn_to = |port: u16, vport: u16| tcp4(CLIENT4, port, VIP4, vport, 64, SYN, &[]);
        add(0);
        add(1);
        let mut p = Small::new(&e, &Policy::default());
        // A connection on the first service; on the second, a stray reply (counted for it,
        // no connection).
        assert_eq!(
            bpf_outcome(&p.dp, hook, ifindex, &syn_to(CPORT, 80)),
            engine_outcome(&e, &syn_to(CPORT, 80))
        );
        let stray = tcp4(VIP4, 81, CLIENT4, CPORT + 1, 64, ACK, b"late");
        assert_eq!(bpf_outcome(&p.dp, hook, ifindex, &stray), Outcome::Kernel);
        let first = p.publisher.service_id(&k(0)).expect("id");
        let second = p.publisher.service_id(&k(1)).expect("id");
        assert_eq!(p.dp.service_stray(second).expect("stray"), 1);
        e.del_service(&k(0)).expect("delete");
        e.del_service(&k(1)).expect("delete");
        add(2);
        p.publish(&e).expect("the second service's id is free");
        let third = p.publisher.service_id(&k(2)).expect("id");
        assert_ne!(third, first, "the first service's connection names its id");
        assert_eq!(third, second, "the second service's id taken back");
        assert_eq!(
            p.dp.service_stray(third).expect("stray"),
            0,
            "a taken-back id counts from zero"
        );
        add(3);
        let err = p.publish(&e).expect_err("no id left");
        assert!(
            err.to_string().contains("--bpf-max-services"),
            "the error names the bound: {err}"
        );
        // The service that fitted still forwards as the engine does.
        assert_eq!(
            bpf_outcome(&p.dp, hook, ifindex, &syn_to(CPORT + 2, 82)),
            engine_outcome(&e, &syn_to(CPORT + 2, 82))
        );
    });
}

/// Scheduler tables (wrr sequences, sh/dh/mh lookup tables) belong to the services that have
/// one, not to every service: with room for one, a deleted mh service's table goes to a wrr
/// service, and from it, edited to wlc, to an sh service; each schedules as the engine does.
#[test]
fn scheduler_tables_go_to_the_services_that_have_one() {
    in_lab(move |ifindex| {
        let hook = rvs_bpf::Hook::Tc;
        let e = small_engine();
        let limits = Limits {
            services: 8,
            dests: 16,
            tables: 1,
            ..SMALL
        };
        let mut p = Small::with(&e, &Policy::default(), limits);
        let k = |port: u16| key(Protocol::Tcp, ip4(VIP4), port);
        let add = |port: u16, sched: SchedulerKind| {
            e.add_service(svc(k(port), sched)).expect("service");
            e.add_dest(&k(port), dest(rip(10), RPORT, 1))
                .expect("server");
            e.add_dest(&k(port), dest(rip(11), RPORT, 3))
                .expect("server");
        };
        let same_picks = |p: &Small, vport: u16, first: u16| {
            for port in first..first + 8 {
                let syn = tcp4(CLIENT4, port, VIP4, vport, 64, SYN, &[]);
                let want = engine_outcome(&e, &syn);
                assert!(matches!(want, Outcome::Forward(_)), "{want:?}");
                assert_eq!(
                    bpf_outcome(&p.dp, hook, ifindex, &syn),
                    want,
                    "{vport} {port}"
                );
            }
        };
        add(80, SchedulerKind::Mh);
        p.publish(&e).expect("mh");
        same_picks(&p, 80, 1000);
        e.del_service(&k(80)).expect("delete mh");
        add(81, SchedulerKind::Wrr);
        p.publish(&e).expect("wrr takes the table back");
        same_picks(&p, 81, 2000);
        e.edit_service(svc(k(81), SchedulerKind::Wlc))
            .expect("wrr to wlc");
        add(82, SchedulerKind::Sh);
        p.publish(&e).expect("sh takes the table wlc does not need");
        same_picks(&p, 82, 3000);
        same_picks(&p, 81, 4000);
        add(83, SchedulerKind::Dh);
        let err = p.publish(&e).expect_err("a second table");
        assert!(err.to_string().contains("--bpf-max-tables"), "{err}");
    });
}

/// One publication that removes a server from one service and adds one to another (a batch,
/// or two commands within 100 ms) fits the maps whichever service comes first: removals are
/// applied before anything is handed out. What still does not fit is left out and reported,
/// and the rest of the publication lands.
#[test]
fn a_publication_frees_before_it_allocates_and_lands_what_fits() {
    in_lab(move |ifindex| {
        neighbours();
        let hook = rvs_bpf::Hook::Tc;
        let e = small_engine();
        let (b, a) = (
            key(Protocol::Tcp, ip4(VIP4), 80),
            key(Protocol::Tcp, ip4(VIP4), 81),
        );
        for k in [b, a] {
            e.add_service(svc(k, SchedulerKind::Rr)).expect("service");
        }
        e.add_dest(&b, dest(rip(10), RPORT, 1)).expect("B's first");
        e.add_dest(&b, dest(rip(11), RPORT, 1)).expect("B's second");
        e.add_dest(&a, dest(rip(12), RPORT, 1)).expect("A's first");
        e.add_dest(&a, dest(rip(13), RPORT, 1)).expect("A's second");
        let mut p = Small::new(&e, &Policy::default());
        // -d from A (its server has no connection), -a to B, published at once.
        e.del_dest(&a, rip(13), RPORT).expect("out of A");
        e.add_dest(&b, dest(rip(14), RPORT, 1)).expect("into B");
        p.publish(&e)
            .expect("B's new server takes A's removed one's slot");
        let to = |vport: u16, port: u16| tcp4(CLIENT4, port, VIP4, vport, 64, SYN, &[]);
        for port in CPORT..CPORT + 3 {
            let syn = to(80, port);
            assert_eq!(
                bpf_outcome(&p.dp, hook, ifindex, &syn),
                engine_outcome(&e, &syn)
            );
        }
        // A connection to A's server holds its slot; one more server for B has no room, but
        // the same publication's quiescing of B's first server lands.
        let held = to(81, CPORT + 10);
        assert_eq!(
            bpf_outcome(&p.dp, hook, ifindex, &held),
            engine_outcome(&e, &held)
        );
        e.edit_dest(&b, dest(rip(10), RPORT, 0)).expect("quiesce");
        e.add_dest(&b, dest(rip(15), RPORT, 1))
            .expect("one too many");
        let err = p.publish(&e).expect_err("no room for the fifth");
        assert!(err.to_string().contains("--bpf-max-dests"), "{err}");
        let slot = p.slot(&b, rip(10));
        assert_eq!(p.dp.dest(slot).expect("dest").expect("there").weight, 0);
    });
}
