//! End-to-end tests of direct routing (`-g`) through the real rvsd and rvsadm, in the network
//! namespaces of seed 003's LVS-DR labs: client 172.30.0.100 -> router -> LAN with the director
//! (10.0.0.8, `d0`) and real servers 10.0.0.7, 10.0.0.14, all holding the VIP (10.0.0.200 on one
//! subnet, 192.168.0.200 in a second one; 2001:db8:10::200 / 2001:db8:192::200 for IPv6). The
//! director only rewrites the destination MAC; replies go from the real servers straight to the
//! router. They need root; every topology is torn down by its guard, also when an assertion
//! fails.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::tally;
use common::{adm, assert_download_intact, assert_inbound_only_stats, assert_upload_intact};
use rvs_lab::Director;
use rvs_lab::{DrLayout, DrTopology};

const MB: usize = 1 << 20;

/// Most bytes the director's `d0` may send while a real server sends 1 MB to the client: only
/// the client's requests and ACKs pass it.
const DIRECTOR_TX_LIMIT: u64 = 256 * 1024;

/// A DR topology with two real servers serving and rvsd running on the director's `d0`.
fn dr_director(tag: &str, layout: DrLayout) -> DrTopology {
    let topo = DrTopology::build(tag, 2, layout).expect("build the DR topology");
    topo.start_real_servers().expect("start the real servers");
    topo.start_rvsd(&[]).expect("start rvsd");
    topo
}

/// `addr:port` as rvsadm and curl write it (`[v6]:port` for IPv6).
fn endpoint(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// `-A -t VIP:80 -s rr` and `-a -t VIP:80 -r RIP:80 -g` for both real servers; returns VIP:80.
fn add_dr_service(topo: &DrTopology, v6: bool) -> String {
    let service = endpoint(topo.vip(v6), 80);
    adm(topo, &["-A", "-t", &service, "-s", "rr"]);
    for index in 0..2 {
        let rip = topo.rip(index, v6).expect("real server");
        adm(
            topo,
            &["-a", "-t", &service, "-r", &endpoint(rip, 80), "-g"],
        );
    }
    let listing = adm(topo, &["-Ln"]);
    assert_eq!(
        listing.lines().filter(|l| l.contains("Route")).count(),
        2,
        "both real servers listed as Route:\n{listing}"
    );
    service
}

fn dr_case(tag: &str, layout: DrLayout, v6: bool) {
    let topo = dr_director(tag, layout);
    let service = add_dr_service(&topo, v6);
    let url = format!("http://{service}");

    // Round robin over two real servers, as in the seed's curl loop.
    let answers: Vec<String> = (0..10)
        .map(|_| {
            topo.curl(&format!("{url}/"))
                .expect("curl the VIP")
                .trim()
                .to_owned()
        })
        .collect();
    let counts = tally(&answers);
    for index in 0..2 {
        assert_eq!(counts.get(&topo.rs_text(index)), Some(&5), "{answers:?}");
    }
    for pair in answers.windows(2) {
        assert_ne!(pair[0], pair[1], "rr must alternate: {answers:?}");
    }

    // 1 MB download intact, and its bytes never cross the director.
    let before = topo.director_counters().expect("director counters");
    assert_download_intact(&topo, &url, MB);
    let delta = topo
        .director_counters()
        .expect("director counters")
        .since(&before);
    eprintln!("{tag}: director d0 during a 1 MB download: {delta:?}");
    assert!(
        delta.tx_bytes < DIRECTOR_TX_LIMIT,
        "the reply passed the director: d0 sent {} bytes during a 1 MB download ({delta:?})",
        delta.tx_bytes
    );
    assert!(
        delta.rx_bytes < DIRECTOR_TX_LIMIT,
        "the reply reached the director: d0 received {} bytes during a 1 MB download ({delta:?})",
        delta.rx_bytes
    );

    // 1 MB upload intact (this one does pass the director, as requests do).
    assert_upload_intact(&topo, &url);

    // 10 curls, the download and the upload, counted inbound only.
    assert_inbound_only_stats(&topo, &service, 12);

    // The connection table shows the client's connections to the VIP and both real servers.
    let conns = adm(&topo, &["-Lnc"]);
    eprintln!("{tag}: -Lnc\n{conns}");
    let client = if v6 {
        IpAddr::V6(topo.client6)
    } else {
        IpAddr::V4(topo.client4)
    };
    let client_text = endpoint(client, 1);
    let client_prefix = client_text.trim_end_matches(":1");
    assert!(conns.contains(&format!("{client_prefix}:")), "{conns}");
    assert!(conns.contains(&service), "{conns}");
    for index in 0..2 {
        let rip = endpoint(topo.rip(index, v6).expect("real server"), 80);
        assert!(conns.contains(&rip), "{rip} missing:\n{conns}");
    }
}

#[test]
fn a_single_subnet_ipv4() {
    dr_case("drs4", DrLayout::SingleSubnet, false);
}

#[test]
fn b_single_subnet_ipv6() {
    dr_case("drs6", DrLayout::SingleSubnet, true);
}

#[test]
fn c_multi_subnet_ipv4() {
    dr_case("drm4", DrLayout::MultiSubnet, false);
}

#[test]
fn d_multi_subnet_ipv6() {
    dr_case("drm6", DrLayout::MultiSubnet, true);
}

/// Port mapping with `-g` is impossible (the real server receives the packet unchanged), so
/// rvsadm, as ipvsadm, adds the server at the service's port; the server then serves. (rvsd
/// itself refuses such a destination from other API clients, with the reason.)
#[test]
fn e_a_direct_routing_server_takes_the_service_port_as_with_ipvsadm() {
    let topo = dr_director("drport", DrLayout::SingleSubnet);
    let service = endpoint(topo.vip(false), 80);
    adm(&topo, &["-A", "-t", &service, "-s", "rr"]);
    let rip = topo.rip(0, false).expect("real server");
    // ipvsadm.c replaces a -g server's port with the service's before asking the kernel:
    // RIP:8080 is added as RIP:80, silently.
    let out = topo
        .rvsadm(&["-a", "-t", &service, "-r", &endpoint(rip, 8080), "-g"])
        .expect("run rvsadm");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), err.as_ref()), (Some(0), ""));
    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!("-> {}", endpoint(rip, 80))),
        "{listing}"
    );
    let body = topo
        .curl(&format!("http://{service}/"))
        .expect("curl the VIP");
    assert_eq!(body.trim(), topo.rs_text(0));
}

/// Health checks on the client's path (issue 16, rvs's `client_path` in a TCP_CHECK): the
/// checker's SYN goes to the VIP at the real server's MAC address, as direct routing delivers
/// clients' packets (see [`common::assert_client_path_checks`]).
#[test]
fn f_client_path_checks_find_a_server_without_the_vip() {
    let topo = DrTopology::build("drpath", 2, DrLayout::SingleSubnet).expect("DR topology");
    topo.start_real_servers().expect("real servers");
    let rips: Vec<IpAddr> = (0..2).map(|i| topo.rip(i, false).expect("rip")).collect();
    common::assert_client_path_checks(
        &topo,
        "DR",
        topo.vip(false),
        &rips,
        &topo.rs_text(0),
        |args| {
            topo.start_rvsd(args).expect("rvsd -f");
        },
    );
}
