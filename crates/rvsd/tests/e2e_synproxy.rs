//! The SYN proxy (`--syn-proxy 1`) end to end, over veth (needs root, hping3 and the rvsd and
//! rvs-lab binaries built): HTTP through a NAT service whose handshakes the director answers
//! with cookies, a 4 MiB download and a 1 MiB upload intact through the shifted sequence
//! numbers, on the packet path and with the BPF program at tc (which hands the service to
//! rvsd); during a spoofed SYN flood the director keeps no state for it and clients still get
//! through.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rvs_lab::NatTopology;

/// The NAT topology with rvsd's SYN proxy on and a NAT service on the VIP's port 80.
fn proxying_director(tag: &str, extra: &[&str]) -> NatTopology {
    let topo = NatTopology::build(tag, 2).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    let mut args = vec!["--syn-proxy", "1"];
    args.extend_from_slice(extra);
    topo.start_rvsd(&args).expect("start rvsd");
    add_rr_service(&topo, "rr");
    topo
}

fn traffic_goes_through(topo: &NatTopology) {
    let before = counters(topo);
    let answers = curl_many(topo, &format!("http://{VIP}/"), 6);
    let counts = tally(&answers);
    assert_eq!(counts.get("hello,10.10.10.2"), Some(&3), "{answers:?}");
    assert_eq!(counts.get("hello,10.10.10.3"), Some(&3), "{answers:?}");
    assert_download_intact(topo, &format!("http://{VIP}"), 4 << 20);
    assert_upload_intact(topo, &format!("http://{VIP}"));
    let after = counters(topo);
    let grew = |name: &str| after[name] - before[name];
    assert!(grew("synproxy_answered") >= 8, "{after:?}");
    assert!(grew("synproxy_opened") >= 8, "{after:?}");
    assert_eq!(after["synproxy_bad_cookies"], 0, "{after:?}");
}

#[test]
fn a_connections_through_the_proxy_on_the_packet_path() {
    let topo = proxying_director("synproxy", &[]);
    assert_eq!(
        adm(&topo, &["--list-policy"]).lines().last(),
        Some("syn_proxy 1")
    );
    traffic_goes_through(&topo);
}

#[test]
fn b_connections_through_the_proxy_with_the_bpf_plane() {
    let fs = Bpffs::mount("synproxy");
    let args = bpf_args(&fs.pins());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let topo = proxying_director("synproxybpf", &args);
    traffic_goes_through(&topo);
    // The program left the proxied service to rvsd.
    assert_eq!(pinned_connections(&fs.pins()), 0);
}

#[test]
fn c_a_spoofed_syn_flood_leaves_no_state_and_clients_get_through() {
    let topo = proxying_director("synflood", &[]);
    let flood = topo
        .lab
        .spawn(
            "client",
            &[
                "hping3",
                "--flood",
                "--quiet",
                "-S",
                "--rand-source",
                "-p",
                "80",
                VIP,
            ],
        )
        .expect("start hping3");
    let started = Instant::now();
    // Let the flood run, then connect through it.
    std::thread::sleep(Duration::from_secs(2));
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 4);
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.starts_with("hello,")),
        "{answers:?}"
    );
    let c = counters(&topo);
    let _ = topo.lab.exec("client", &["kill", &flood.to_string()]);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        c["synproxy_answered"] > 1000,
        "the flood was answered: {c:?}"
    );
    // Only the clients' connections were made (TIME_WAIT ones included).
    assert!(c["connections"] <= 4, "{c:?}");
}
