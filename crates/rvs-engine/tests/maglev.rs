//! Maglev across directors (issue 16): mh tables built from a canonical order of the real
//! servers, so independently configured directors, given the same servers in any order, send a
//! flow to the same server; with `sloppy_tcp`, a director that never saw a flow's SYN (ECMP
//! moved it there) schedules its next packet with mh to the server the first director chose,
//! and a removed server moves only (about) its own flows.

mod common;

use common::*;
use rvs_engine::*;

const SERVERS: [[u8; 4]; 4] = [
    [192, 168, 7, 10],
    [192, 168, 7, 11],
    [192, 168, 7, 12],
    [192, 168, 7, 13],
];

/// A director with an mh service (source port hashed too) over `order`, and sloppy_tcp.
fn director(order: &[usize]) -> Engine {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    let mut spec = svc(k, SchedulerKind::Mh);
    spec.sched_flags = SchedFlags(SchedFlags::PORT);
    e.add_service(spec).expect("service");
    for &i in order {
        // Unequal weights make the table's contested entries many.
        let weight = [1, 2, 3, 1][i];
        e.add_dest(&k, dest(ip4(SERVERS[i]), RPORT, weight))
            .expect("dest");
    }
    let mut p = e.policy();
    p.sloppy_tcp = true;
    e.set_policy(p);
    e
}

/// Where `frame` went: the real server's address, or `None` when not forwarded.
fn server_of(e: &Engine, frame: &mut [u8]) -> Option<std::net::IpAddr> {
    match run(e, 0, frame) {
        Verdict::Forward { next_hop_ip, .. } => Some(next_hop_ip),
        _ => None,
    }
}

#[test]
fn flows_find_their_server_on_any_director() {
    let a = director(&[0, 1, 2, 3]);
    let b = director(&[3, 1, 0, 2]);
    let mut picked = Vec::new();
    for port in 20_000..22_000u16 {
        let mut syn = tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[]);
        let on_a = server_of(&a, &mut syn).expect("A forwards the SYN");
        // The flow's next packet reaches B, which has no connection for it.
        let mut ack = tcp4(CLIENT4, port, VIP4, VPORT, 64, ACK, b"GET /");
        let on_b = server_of(&b, &mut ack).expect("B forwards the ACK (sloppy_tcp, mh)");
        assert_eq!(on_a, on_b, "flow from port {port}");
        picked.push(on_a);
    }
    // Every server takes a share.
    for s in SERVERS {
        let n = picked.iter().filter(|p| **p == ip4(s)).count();
        assert!(n > 150, "{s:?} took {n} of 2000");
    }
    // A director without sloppy_tcp drops the unknown flow's packet, as IPVS does.
    let strict = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    strict
        .add_service(svc(k, SchedulerKind::Mh))
        .expect("service");
    strict
        .add_dest(&k, dest(ip4(SERVERS[0]), RPORT, 1))
        .expect("dest");
    let mut ack = tcp4(CLIENT4, 20_000, VIP4, VPORT, 64, ACK, b"x");
    assert_eq!(server_of(&strict, &mut ack), None);
}

#[test]
fn a_removed_server_moves_mostly_its_own_flows() {
    let before = director(&[0, 1, 2, 3]);
    let after = director(&[2, 0, 3]);
    let (mut kept, mut others) = (0, 0);
    for port in 30_000..31_000u16 {
        let mut syn = tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[]);
        let was = server_of(&before, &mut syn).expect("forwarded");
        let mut syn = tcp4(CLIENT4, port, VIP4, VPORT, 64, SYN, &[]);
        let now = server_of(&after, &mut syn).expect("forwarded");
        if was != ip4(SERVERS[1]) {
            others += 1;
            kept += usize::from(was == now);
        }
    }
    // Maglev's tables move few entries besides the removed server's.
    assert!(
        kept * 100 >= others * 90,
        "{kept} of {others} kept their server"
    );
}
