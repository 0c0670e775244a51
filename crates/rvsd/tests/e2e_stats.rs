//! Counters, rates, zeroing, timeouts and service edits through real traffic, the real rvsd and
//! the real rvsadm (seed 004's topology; root required).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn stats_count_connections_packets_and_bytes_both_ways_then_zero() {
    let topo = director("stats", 2);
    add_rr_service(&topo, "rr");
    for _ in 0..10 {
        assert!(curl(&topo, &format!("http://{VIP}/")).starts_with("hello,"));
    }
    let stats = adm(&topo, &["-Ln", "--stats", "--exact"]);
    // TCP  VIP:80   Conns InPkts OutPkts InBytes OutBytes
    let svc = columns(&stats, &format!("TCP  {VIP}:80"));
    assert_eq!(svc[0], 10, "10 connections: {stats}");
    assert!(
        svc[1] >= 50,
        "at least SYN, ACK, request, ACK, FIN per connection in: {stats}"
    );
    assert!(svc[2] >= 40, "replies counted out: {stats}");
    assert!(svc[3] > svc[1] * 40, "in bytes are IP lengths: {stats}");
    assert!(svc[4] > svc[2] * 40, "out bytes are IP lengths: {stats}");
    let rs1 = columns(&stats, "-> 10.10.10.2:80");
    let rs2 = columns(&stats, "-> 10.10.10.3:80");
    assert_eq!((rs1[0], rs2[0]), (5, 5), "{stats}");
    for i in 1..5 {
        assert_eq!(
            rs1[i] + rs2[i],
            svc[i],
            "per-server columns add up to the service: {stats}"
        );
    }

    adm(&topo, &["-Z"]);
    let zeroed = adm(&topo, &["-Ln", "--stats", "--exact"]);
    assert_eq!(
        columns(&zeroed, &format!("TCP  {VIP}:80")),
        vec![0, 0, 0, 0, 0],
        "{zeroed}"
    );
}

#[test]
fn rates_follow_traffic() {
    let topo = director("rates", 2);
    add_rr_service(&topo, "rr");
    let wrk = topo
        .lab
        .spawn(
            "client",
            &[
                "wrk",
                "-t1",
                "-c4",
                "-d5s",
                "-H",
                "Connection: close",
                &format!("http://{VIP}/"),
            ],
        )
        .expect("spawn wrk");
    // The estimator runs every 2 s; after two runs under load the rates are non-zero.
    std::thread::sleep(Duration::from_millis(4500));
    let rates = adm(&topo, &["-Ln", "--rate", "--exact"]);
    let svc = columns(&rates, &format!("TCP  {VIP}:80"));
    assert!(
        svc.iter().all(|&r| r > 0),
        "CPS InPPS OutPPS InBPS OutBPS all > 0: {rates}"
    );
    assert!(
        topo.lab.wait_exit(wrk, Duration::from_secs(15)).is_some(),
        "wrk did not finish"
    );
}

#[test]
fn set_timeouts_apply_to_connections_and_edit_changes_the_scheduler() {
    let topo = director("timeouts", 2);
    add_rr_service(&topo, "rr");
    assert_eq!(
        adm(&topo, &["-L", "--timeout"]).trim_end(),
        "Timeout (tcp tcpfin udp): 900 120 300"
    );
    adm(&topo, &["--set", "100", "20", "50"]);
    assert_eq!(
        adm(&topo, &["-L", "--timeout"]).trim_end(),
        "Timeout (tcp tcpfin udp): 100 20 50"
    );
    let _held = hold_connection(&topo, 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    let est = loop {
        let listing = adm(&topo, &["-Lnc"]);
        if let Some(line) = listing.lines().find(|l| l.contains("ESTABLISHED")) {
            break line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no ESTABLISHED connection: {listing}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        est.starts_with("TCP 01:3") || est.starts_with("TCP 01:40"),
        "tcp timeout 100 s: {est}"
    );

    adm(&topo, &["-E", "-t", &format!("{VIP}:80"), "-s", "wlc"]);
    let listing = adm(&topo, &["-Ln"]);
    assert!(listing.contains(&format!("TCP  {VIP}:80 wlc")), "{listing}");
    assert!(
        listing.contains("-> 10.10.10.2:80"),
        "edit keeps the real servers: {listing}"
    );
    // A rejected command leaves the configuration exactly as it was.
    let before = adm(&topo, &["-S", "-n"]);
    let (code, err) = adm_err(
        &topo,
        &[
            "-a",
            "-t",
            &format!("{VIP}:80"),
            "-r",
            "10.10.10.2:80",
            "-m",
        ],
    );
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("Destination already exists"), "{err}");
    let (_, err) = adm_err(&topo, &["-A", "-t", &format!("{VIP}:80"), "-s", "nosuch"]);
    assert!(!err.is_empty());
    assert_eq!(adm(&topo, &["-S", "-n"]), before);
}
