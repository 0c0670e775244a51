//! NetState against real kernel tables in a namespace pair.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{in_ns, Lab};
use rvs_io::{NetState, Resolution};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// Polls `resolve(dst)` until it is Ready (or 5 s pass).
fn wait_ready(state: &NetState, dst: IpAddr) -> Resolution {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = state.resolve(dst);
        if matches!(r, Resolution::Ready { .. }) || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(state: &NetState, dst: IpAddr, want: fn(&Resolution) -> bool) -> Resolution {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = state.resolve(dst);
        if want(&r) || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn links_addresses_and_on_link_neighbour() {
    let lab = Lab::new("ns1");
    let mac_a = lab.mac(&lab.a, "a0");
    let mac_b = lab.mac(&lab.b, "b0");
    let (a4, b4) = (ip(&lab.ip_a()), ip(&lab.ip_b()));
    let a6 = ip(&format!("fd77:{}::1", lab.net));
    let b6 = ip(&format!("fd77:{}::2", lab.net));
    in_ns(&lab.a, move || {
        let state = NetState::start().expect("start");
        let ifindex = state.ifindex_by_name("a0").expect("a0 known");
        assert_eq!(state.link_mac(ifindex), Some(mac_a));
        let locals = state.local_addrs();
        assert!(locals.contains(&a4) && locals.contains(&a6), "{locals:?}");
        assert_eq!(state.resolve(a4), Resolution::Unreachable, "own address");
        let g0 = state.generation();
        assert_eq!(state.resolve(b4), Resolution::Pending, "not yet resolved");
        let expected = Resolution::Ready {
            ifindex,
            src_mac: mac_a,
            dst_mac: mac_b,
            mtu: 1500,
        };
        assert_eq!(wait_ready(&state, b4), expected);
        assert!(state.generation() > g0);
        assert_eq!(
            wait_ready(&state, b6),
            expected,
            "IPv6 via neighbour discovery"
        );
    });
}

#[test]
fn gatewayed_routes_follow_changes() {
    let lab = Lab::new("ns2");
    let mac_b = lab.mac(&lab.b, "b0");
    let gw4 = lab.ip_b();
    let gw6 = format!("fd77:{}::2", lab.net);
    let ns_a = lab.a.clone();
    in_ns(&lab.a, move || {
        let state = NetState::start().expect("start");
        let dst4 = ip("198.51.100.7");
        let dst6 = ip("2001:db8:5::7");
        assert_eq!(state.resolve(dst4), Resolution::Unreachable, "no route yet");
        common::run(&[
            "ip",
            "-n",
            &ns_a,
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            &gw4,
        ]);
        common::run(&[
            "ip",
            "-n",
            &ns_a,
            "-6",
            "route",
            "add",
            "2001:db8:5::/64",
            "via",
            &gw6,
        ]);
        for dst in [dst4, dst6] {
            match wait_ready(&state, dst) {
                Resolution::Ready { dst_mac, .. } => assert_eq!(dst_mac, mac_b),
                other => panic!("{dst}: {other:?}"),
            }
        }
        // A more specific blackhole wins; deleting it restores the gateway route.
        common::run(&[
            "ip",
            "-n",
            &ns_a,
            "route",
            "add",
            "blackhole",
            "198.51.100.0/25",
        ]);
        let r = wait_for(&state, dst4, |r| *r == Resolution::Unreachable);
        assert_eq!(r, Resolution::Unreachable);
        common::run(&[
            "ip",
            "-n",
            &ns_a,
            "route",
            "del",
            "blackhole",
            "198.51.100.0/25",
        ]);
        let r = wait_for(&state, dst4, |r| matches!(r, Resolution::Ready { .. }));
        assert!(matches!(r, Resolution::Ready { .. }), "{r:?}");
        // A route MTU is reported.
        common::run(&[
            "ip",
            "-n",
            &ns_a,
            "route",
            "replace",
            "198.51.100.0/24",
            "via",
            &gw4,
            "mtu",
            "1400",
        ]);
        let r = wait_for(&state, dst4, |r| {
            matches!(r, Resolution::Ready { mtu: 1400, .. })
        });
        assert!(matches!(r, Resolution::Ready { mtu: 1400, .. }), "{r:?}");
        common::run(&["ip", "-n", &ns_a, "route", "del", "198.51.100.0/24"]);
        let r = wait_for(&state, dst4, |r| *r == Resolution::Unreachable);
        assert_eq!(r, Resolution::Unreachable);
    });
}

#[test]
fn unknown_neighbour_triggers_a_kernel_resolution() {
    let lab = Lab::new("ns3");
    let silent = format!("10.77.{}.99", lab.net);
    let ns_a = lab.a.clone();
    let target = ip(&silent);
    in_ns(&lab.a, move || {
        let state = NetState::start().expect("start");
        assert_eq!(state.resolve(target), Resolution::Pending);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let out = common::run(&["ip", "-n", &ns_a, "neigh", "show", &silent]);
            if !out.trim().is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kernel never created the neighbour entry"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(state.resolve(target), Resolution::Pending);
    });
}
