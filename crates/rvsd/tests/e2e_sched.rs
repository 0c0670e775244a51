//! End-to-end tests of the hashing and expected-delay schedulers through the real rvsd and
//! rvsadm, in seed 004's NAT topology (client 192.168.1.2 -> VIP 192.168.1.253 -> real servers
//! 10.10.10.2, 10.10.10.3, ...). They need root; topologies are torn down by their guards.

mod common;

use std::collections::HashSet;

use common::*;
use rvs_lab::NatTopology;

fn add_service(topo: &NatTopology, args: &[&str]) {
    let vip = format!("{VIP}:80");
    let mut a = vec!["-A", "-t", vip.as_str()];
    a.extend_from_slice(args);
    adm(topo, &a);
    for rip in &topo.rips4 {
        adm(topo, &["-a", "-t", &vip, "-r", &format!("{rip}:80"), "-m"]);
    }
}

#[test]
fn sh_keeps_one_client_on_one_server_across_20_connections() {
    let topo = director("sh", 3);
    add_service(&topo, &["-s", "sh"]);
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 20);
    assert_eq!(answers.len(), 20);
    let distinct: HashSet<&String> = answers.iter().collect();
    assert_eq!(
        distinct.len(),
        1,
        "sh must keep the client together: {answers:?}"
    );
    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!("TCP  {VIP}:80 sh\n")),
        "{listing}"
    );
}

#[test]
fn mh_with_mh_port_spreads_one_clients_connections() {
    let topo = director("mhport", 3);
    add_service(&topo, &["-s", "mh", "-b", "mh-port"]);
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 20);
    assert_eq!(answers.len(), 20);
    let distinct: HashSet<&String> = answers.iter().collect();
    assert!(
        distinct.len() > 1,
        "mh-port must spread source ports: {answers:?}"
    );
    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!("TCP  {VIP}:80 mh (mh-port)\n")),
        "{listing}"
    );
    // Without the port flag, the same client stays on one server.
    adm(&topo, &["-E", "-t", &format!("{VIP}:80"), "-s", "mh"]);
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 10);
    let distinct: HashSet<&String> = answers.iter().collect();
    assert_eq!(distinct.len(), 1, "{answers:?}");
}

#[test]
fn sched_flags_listed_saved_and_refused_like_ipvsadm() {
    let topo = director("schedflags", 2);
    add_service(&topo, &["-s", "sh", "-b", "sh-port,sh-fallback"]);
    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!("TCP  {VIP}:80 sh (sh-fallback,sh-port)\n")),
        "{listing}"
    );
    let saved = adm(&topo, &["-Sn"]);
    assert!(
        saved.contains(&format!("-A -t {VIP}:80 -s sh -b sh-fallback,sh-port")),
        "{saved}"
    );
    let (code, err) = adm_err(
        &topo,
        &[
            "-A",
            "-t",
            &format!("{VIP}:81"),
            "-s",
            "rr",
            "-b",
            "sh-port",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("incompatible scheduler flag `sh-port'"),
        "{err}"
    );
    // Answers keep flowing through a fallback sh service.
    assert!(curl(&topo, &format!("http://{VIP}/")).starts_with("hello,"));
}

#[test]
fn sed_sends_new_connections_to_the_idle_server() {
    prefers_idle_server("sed", 6);
}

#[test]
fn nq_sends_new_connections_to_the_idle_server() {
    prefers_idle_server("nq", 6);
}

#[test]
fn ops_schedules_each_udp_datagram_on_its_own() {
    let topo = director("ops", 2);
    let vip = format!("{VIP}:53");
    adm(&topo, &["-A", "-u", &vip, "-s", "rr", "--ops"]);
    for rip in &topo.rips4 {
        adm(
            &topo,
            &["-a", "-u", &vip, "-r", &format!("{rip}:5353"), "-m"],
        );
    }
    topo.lab.in_netns("client", || {
        // One socket, one source port: without --ops this would be one connection.
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        for _ in 0..4 {
            sock.send_to(b"ping", &vip).expect("send");
        }
    });
    let per_server = |listing: &str, rip: &str| -> u64 {
        listing
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("-> {rip}:5353")))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stats = loop {
        let s = adm(&topo, &["-Ln", "--stats"]);
        let total: u64 = topo
            .rips4
            .iter()
            .map(|r| per_server(&s, &r.to_string()))
            .sum();
        if total >= 4 || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    for rip in &topo.rips4 {
        assert_eq!(per_server(&stats, &rip.to_string()), 2, "{stats}");
    }
    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!("UDP  {vip} rr ops\n")),
        "{listing}"
    );
    let conns = adm(&topo, &["-Lnc"]);
    assert!(!conns.lines().any(|l| l.starts_with("UDP")), "{conns}");
}
