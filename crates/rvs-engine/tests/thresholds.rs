//! Connection thresholds (`-x`/`-y`): a real server is overloaded when its active + inactive
//! connections reach the upper threshold, and takes new connections again below the lower one
//! (or below 3/4 of the upper when no lower threshold is set), as IPVS's bind/unbind rules.

mod common;

use common::*;
use rvs_engine::*;

/// rr over RIP4 (with thresholds `u`/`l`) and RIP4B (none).
fn engine(u: u32, l: u32) -> (Engine, ServiceKey) {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).unwrap();
    let mut limited = dest(ip4(RIP4), RPORT, 1);
    limited.u_threshold = u;
    limited.l_threshold = l;
    e.add_dest(&k, limited).unwrap();
    e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).unwrap();
    (e, k)
}

fn syn(e: &Engine, now: u64, cport: u16) -> std::net::IpAddr {
    let mut f = tcp4(CLIENT4, cport, VIP4, VPORT, 64, SYN, &[]);
    match run(e, now, &mut f) {
        Verdict::Forward { next_hop_ip, .. } => next_hop_ip,
        v => panic!("{v:?}"),
    }
}

fn total_on_limited(e: &Engine) -> u32 {
    let s = e.services(Millis(0));
    let d = &s[0].dests[0];
    d.active_conns + d.inactive_conns
}

#[test]
fn overloaded_at_the_upper_threshold_resumes_below_the_lower() {
    let (e, _) = engine(2, 1);
    // rr: RIP4, RIP4B, RIP4 -> RIP4 reaches 2 and is overloaded.
    assert_eq!(syn(&e, 0, 1), ip4(RIP4));
    assert_eq!(syn(&e, 0, 2), ip4(RIP4B));
    assert_eq!(syn(&e, 1_000, 3), ip4(RIP4));
    assert_eq!(total_on_limited(&e), 2);
    for p in 4..8 {
        assert_eq!(syn(&e, 2_000, p), ip4(RIP4B), "overloaded: connection {p}");
    }
    // The first connection expires (SYN_RECV, 60 s): 1 left, not below the lower threshold 1.
    e.expire(Millis(60_000));
    assert_eq!(total_on_limited(&e), 1);
    assert_eq!(syn(&e, 60_001, 8), ip4(RIP4B));
    // The second goes: 0 < 1, RIP4 takes connections again.
    e.expire(Millis(61_000));
    assert_eq!(total_on_limited(&e), 0);
    let picks: Vec<_> = (9..11).map(|p| syn(&e, 61_001, p)).collect();
    assert!(picks.contains(&ip4(RIP4)), "{picks:?}");
}

#[test]
fn without_a_lower_threshold_resumes_below_three_quarters_of_the_upper() {
    let (e, k) = engine(4, 0);
    // Fill RIP4 to 4 (every other rr pick), at times 0..3 s.
    let mut on_limited = 0;
    let mut p = 1;
    while on_limited < 4 {
        if syn(&e, u64::from(p) * 100, p) == ip4(RIP4) {
            on_limited += 1;
        }
        p += 1;
    }
    assert_eq!(syn(&e, 5_000, 100), ip4(RIP4B));
    assert_eq!(syn(&e, 5_000, 101), ip4(RIP4B));
    // Expire the oldest: 3 left, 3*4 = 12 is not below 3*4 = 12: still overloaded.
    e.expire(Millis(60_100));
    assert_eq!(total_on_limited(&e), 3);
    assert_eq!(syn(&e, 60_101, 102), ip4(RIP4B));
    // 2 left: 8 < 12: resumed.
    e.expire(Millis(60_300));
    assert_eq!(total_on_limited(&e), 2);
    let picks: Vec<_> = (103..105).map(|p| syn(&e, 60_301, p)).collect();
    assert!(picks.contains(&ip4(RIP4)), "{picks:?}");
    // Raising the threshold with -e clears the flag at once; a lower above the upper is refused.
    let mut d = dest(ip4(RIP4), RPORT, 1);
    d.u_threshold = 2;
    d.l_threshold = 3;
    assert!(e.edit_dest(&k, d).is_err());
}
