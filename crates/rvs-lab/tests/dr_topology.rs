//! DrTopology against the real kernel, without a director that forwards: routing through the
//! router, who answers ARP / neighbour solicitations for the VIP, and real servers answering on
//! the VIP with replies going straight back to the router.

use rvs_lab::Director;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use rvs_lab::{netns, DrLayout, DrTopology, CLIENT, DIRECTOR, MAX_DR_REAL_SERVERS, ROUTER};

fn run_ok(topo: &DrTopology, role: &str, args: &[&str]) {
    let out = topo.lab.exec(role, args).expect("run");
    assert!(
        out.status.success(),
        "{role}: {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything that works with the VIP owned by the director's kernel (no rvsd running).
fn check_layout(layout: DrLayout, tag: &str) {
    let topo = DrTopology::build(tag, 2, layout).expect("build");
    let prefix = topo.lab.prefix().to_string();
    // client, router, switch, director, rs1, rs2
    assert_eq!(topo.lab.namespaces().len(), 6);
    topo.start_real_servers().expect("real servers");

    // The router forwards both ways between the client and every LAN host.
    for (to, ip) in [
        (DIRECTOR, IpAddr::V4(topo.dip4)),
        (DIRECTOR, IpAddr::V6(topo.dip6)),
        ("rs1", IpAddr::V4(topo.rips4[0])),
        ("rs2", IpAddr::V6(topo.rips6[1])),
    ] {
        topo.lab
            .probe_tcp(CLIENT, to, ip)
            .unwrap_or_else(|e| panic!("client -> {to} {ip}: {e}"));
    }

    // Only the director answers ARP / neighbour solicitations for the VIP.
    let director_mac = topo.lab.mac_of(DIRECTOR, "d0").expect("director mac");
    for v6 in [false, true] {
        let vip = topo.vip(v6);
        topo.lab
            .probe_tcp(CLIENT, DIRECTOR, vip)
            .unwrap_or_else(|e| panic!("client -> director {vip}: {e}"));
        assert_eq!(
            topo.router_neighbour(vip).expect("neigh").as_deref(),
            Some(director_mac.as_str()),
            "the router must resolve {vip} to the director"
        );
    }

    // A perfect DR director emulated by the router itself: frames for the VIP go to rs1's MAC
    // unchanged; rs1 accepts them (VIP on lo) and answers from the VIP via the router.
    let director_before = topo.director_counters().expect("counters");
    for v6 in [false, true] {
        let (vip, rip) = (topo.vip(v6), topo.rip(0, v6).expect("rip"));
        let (vip_net, url) = if v6 {
            (format!("{vip}/128"), format!("http://[{vip}]/"))
        } else {
            (format!("{vip}/32"), format!("http://{vip}/"))
        };
        run_ok(
            &topo,
            ROUTER,
            &["ip", "route", "add", &vip_net, "via", &rip.to_string()],
        );
        assert_eq!(topo.curl(&url).expect("curl").trim(), topo.rs_text(0));
        let whoami = topo.curl(&format!("{url}whoami")).expect("whoami");
        let peer: SocketAddr = whoami.trim().parse().expect("whoami is an address");
        let client = if v6 {
            IpAddr::V6(topo.client6)
        } else {
            IpAddr::V4(topo.client4)
        };
        assert_eq!(
            peer.ip(),
            client,
            "the real server sees the client's own address"
        );
        run_ok(&topo, ROUTER, &["ip", "route", "del", &vip_net]);
    }
    let director_delta = topo
        .director_counters()
        .expect("counters")
        .since(&director_before);
    assert!(
        director_delta.rx_packets < 20,
        "emulated DR traffic must not reach the director: {director_delta:?}"
    );

    // Without the director's VIP nobody answers for it: the real servers stay silent.
    let vip_lines: Vec<String> = match layout {
        DrLayout::SingleSubnet => vec![
            format!("addr del {}/32 dev lo", topo.vip4),
            format!("addr del {}/128 dev d0", topo.vip6),
        ],
        DrLayout::MultiSubnet => vec![
            format!("addr del {}/24 dev d0", topo.vip4),
            format!("addr del {}/64 dev d0", topo.vip6),
        ],
    };
    topo.lab.ip(DIRECTOR, &vip_lines).expect("remove the VIPs");
    run_ok(&topo, ROUTER, &["ip", "neigh", "flush", "dev", "r1"]);
    for v6 in [false, true] {
        let vip = topo.vip(v6);
        let addr = SocketAddr::new(vip, 80);
        let connected = topo.lab.in_netns(ROUTER, || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
        });
        assert!(
            !connected,
            "nobody may answer for {vip} once the director lost it"
        );
        assert_eq!(
            topo.router_neighbour(vip).expect("neigh"),
            None,
            "a real server answered ARP/ND for {vip}"
        );
    }
    drop(topo);
    assert!(netns::list()
        .expect("list")
        .iter()
        .all(|n| !n.starts_with(&format!("{prefix}-"))));
}

#[test]
fn dr_single_subnet_topology() {
    check_layout(DrLayout::SingleSubnet, "drsingle");
}

#[test]
fn dr_multi_subnet_topology() {
    check_layout(DrLayout::MultiSubnet, "drmulti");
}

#[test]
fn dr_rejects_bad_real_server_counts() {
    assert!(DrTopology::build("drbad", 0, DrLayout::SingleSubnet).is_err());
    assert!(DrTopology::build("drbad", MAX_DR_REAL_SERVERS + 1, DrLayout::MultiSubnet).is_err());
}
