//! End-to-end tests of NAT mode through the real rvsd and rvsadm, in the network namespaces of
//! seed 004's topology (client 192.168.1.2 -> director 192.168.1.253 / 10.10.10.1 -> real servers
//! 10.10.10.2, 10.10.10.3, ...). They need root; every topology is torn down by its guard, also when
//! an assertion fails.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_rr_alternates_over_two_real_servers() {
    let topo = director("rr", 2);
    add_rr_service(&topo, "rr");
    let answers: Vec<String> = (0..10)
        .map(|_| curl(&topo, &format!("http://{VIP}/")))
        .collect();
    let counts = tally(&answers);
    assert_eq!(counts.get("hello,10.10.10.2"), Some(&5), "{answers:?}");
    assert_eq!(counts.get("hello,10.10.10.3"), Some(&5), "{answers:?}");
    for pair in answers.windows(2) {
        assert_ne!(pair[0], pair[1], "rr must alternate: {answers:?}");
    }
    let listing = adm(&topo, &["-Ln"]);
    assert!(listing.contains(&format!("TCP  {VIP}:80 rr")), "{listing}");
    assert_eq!(conns_of(&listing, "10.10.10.2:80").1, 5, "{listing}");
}

#[test]
fn b_wrr_three_to_one_over_400_connections() {
    let topo = director("wrr", 2);
    adm(&topo, &["-A", "-t", &format!("{VIP}:80"), "-s", "wrr"]);
    adm(
        &topo,
        &[
            "-a",
            "-t",
            &format!("{VIP}:80"),
            "-r",
            "10.10.10.2:80",
            "-m",
            "-w",
            "3",
        ],
    );
    adm(
        &topo,
        &[
            "-a",
            "-t",
            &format!("{VIP}:80"),
            "-r",
            "10.10.10.3:80",
            "-m",
            "-w",
            "1",
        ],
    );
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 400);
    assert_eq!(answers.len(), 400);
    let counts = tally(&answers);
    let heavy = *counts.get("hello,10.10.10.2").unwrap_or(&0);
    let light = *counts.get("hello,10.10.10.3").unwrap_or(&0);
    assert!((285..=315).contains(&heavy), "weight 3 got {heavy} of 400");
    assert!((85..=115).contains(&light), "weight 1 got {light} of 400");
}

#[test]
fn c_lc_sends_new_connections_to_the_less_loaded_server() {
    prefers_idle_server("lc", 8);
}

#[test]
fn c_wlc_sends_new_connections_to_the_less_loaded_server() {
    prefers_idle_server("wlc", 8);
}

#[test]
fn d_weight_zero_quiesces_but_established_connection_continues() {
    let topo = director("quiesce", 2);
    add_rr_service(&topo, "rr");
    let held = hold_connection(&topo, 6);
    let (busy, other) = busy_and_other(&topo);
    adm(
        &topo,
        &[
            "-e",
            "-t",
            &format!("{VIP}:80"),
            "-r",
            &format!("{busy}:80"),
            "-m",
            "-w",
            "0",
        ],
    );
    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!("-> {busy}:80")),
        "quiesced server stays listed: {listing}"
    );
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 6);
    assert!(
        answers.iter().all(|a| *a == format!("hello,{other}")),
        "{answers:?}"
    );
    // The held download runs to its end and exits 0 (no reset).
    let status = topo
        .lab
        .wait_exit(held, Duration::from_secs(20))
        .expect("held connection did not finish");
    assert!(
        status.contains("exit status: 0"),
        "held curl ended with {status}"
    );
}

#[test]
fn e_delete_under_load_keeps_rvsd_and_other_service_up() {
    let topo = director("delload", 2);
    add_rr_service(&topo, "rr");
    adm(&topo, &["-A", "-t", &format!("{VIP}:8080"), "-s", "rr"]);
    for rip in &topo.rips4 {
        adm(
            &topo,
            &[
                "-a",
                "-t",
                &format!("{VIP}:8080"),
                "-r",
                &format!("{rip}:8080"),
                "-m",
            ],
        );
    }
    let wrk = topo
        .lab
        .spawn(
            "client",
            &[
                "wrk",
                "-t2",
                "-c20",
                "-d4s",
                "-H",
                "Connection: close",
                &format!("http://{VIP}/"),
            ],
        )
        .expect("spawn wrk");
    std::thread::sleep(Duration::from_millis(1500));
    adm(
        &topo,
        &["-d", "-t", &format!("{VIP}:80"), "-r", "10.10.10.2:80"],
    );
    std::thread::sleep(Duration::from_millis(500));
    adm(&topo, &["-D", "-t", &format!("{VIP}:80")]);
    // Deleting again is a clean ipvsadm error, not a crash.
    let (code, err) = adm_err(&topo, &["-D", "-t", &format!("{VIP}:80")]);
    assert_eq!(
        code, 255,
        "ipvsadm exits 255 (main returns -1) on a kernel error: {err}"
    );
    assert!(
        err.contains("No such service") || err.contains("Service not defined"),
        "{err}"
    );
    let answers = curl_many(&topo, &format!("http://{VIP}:8080/"), 4);
    assert_eq!(
        answers.len(),
        4,
        "the other service keeps answering: {answers:?}"
    );
    assert!(
        topo.lab.wait_exit(wrk, Duration::from_secs(15)).is_some(),
        "wrk did not finish"
    );
    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!("TCP  {VIP}:8080 rr")),
        "{listing}"
    );
    assert!(!listing.contains(&format!("TCP  {VIP}:80 rr")), "{listing}");
}

#[test]
fn f_port_mapping_vip_80_to_rip_8080() {
    let topo = director("portmap", 2);
    adm(&topo, &["-A", "-t", &format!("{VIP}:80"), "-s", "rr"]);
    adm(
        &topo,
        &[
            "-a",
            "-t",
            &format!("{VIP}:80"),
            "-r",
            "10.10.10.2:8080",
            "-m",
        ],
    );
    assert_eq!(curl(&topo, &format!("http://{VIP}/")), "hello,10.10.10.2");
    let listing = adm(&topo, &["-Ln"]);
    assert!(listing.contains("-> 10.10.10.2:8080"), "{listing}");
    let conns = adm(&topo, &["-Lnc"]);
    assert!(conns.contains("10.10.10.2:8080"), "{conns}");
}

#[test]
fn g_udp_service_spreads_rr() {
    let topo = director("udp", 2);
    adm(&topo, &["-A", "-u", &format!("{VIP}:53"), "-s", "rr"]);
    for rip in &topo.rips4 {
        adm(
            &topo,
            &[
                "-a",
                "-u",
                &format!("{VIP}:53"),
                "-r",
                &format!("{rip}:5353"),
                "-m",
            ],
        );
    }
    let answers: Vec<String> = topo.lab.in_netns("client", || {
        (0..4)
            .map(|_| {
                // A new socket is a new source port, so a new connection each time.
                let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
                sock.set_read_timeout(Some(Duration::from_secs(3)))
                    .expect("timeout");
                sock.send_to(b"ping", format!("{VIP}:53")).expect("send");
                let mut buf = [0u8; 256];
                let n = sock.recv(&mut buf).expect("UDP answer through the VIP");
                String::from_utf8_lossy(&buf[..n]).trim().to_owned()
            })
            .collect()
    });
    let counts = tally(&answers);
    assert_eq!(counts.get("hello,10.10.10.2"), Some(&2), "{answers:?}");
    assert_eq!(counts.get("hello,10.10.10.3"), Some(&2), "{answers:?}");
    let conns = adm(&topo, &["-Lnc"]);
    assert!(
        conns.lines().filter(|l| l.starts_with("UDP")).count() >= 4,
        "{conns}"
    );
}

#[test]
fn h_ipv6_service_with_ipv6_real_servers() {
    let topo = director("v6", 2);
    let vip6 = format!("[{}]:80", topo.vip6);
    adm(&topo, &["-A", "-t", &vip6, "-s", "rr"]);
    for rip in &topo.rips6 {
        adm(
            &topo,
            &["-a", "-t", &vip6, "-r", &format!("[{rip}]:80"), "-m"],
        );
    }
    let url = format!("http://{vip6}/");
    let answers: Vec<String> = (0..4).map(|_| curl(&topo, &url)).collect();
    let counts = tally(&answers);
    assert_eq!(
        counts.len(),
        2,
        "both IPv6 real servers answer: {answers:?}"
    );
    assert!(counts.values().all(|&n| n == 2), "{answers:?}");
    let listing = adm(&topo, &["-Ln"]);
    assert!(listing.contains(&format!("TCP  {vip6} rr")), "{listing}");
}

#[test]
fn i_save_clear_restore_round_trip() {
    let topo = director("saverest", 2);
    add_rr_service(&topo, "wlc");
    adm(&topo, &["-A", "-u", &format!("{VIP}:53"), "-s", "rr"]);
    adm(
        &topo,
        &[
            "-a",
            "-u",
            &format!("{VIP}:53"),
            "-r",
            "10.10.10.3:5353",
            "-m",
            "-w",
            "7",
        ],
    );
    let saved = adm(&topo, &["-S", "-n"]);
    assert!(saved.contains(&format!("-A -t {VIP}:80 -s wlc")), "{saved}");
    adm(&topo, &["-C"]);
    assert_eq!(adm(&topo, &["-S", "-n"]), "");
    restore(&topo, &saved);
    assert_eq!(adm(&topo, &["-S", "-n"]), saved);
}

#[test]
fn i_clear_then_restore_keeps_an_established_download() {
    let topo = director("clearrest", 2);
    clear_then_restore_keeps_a_download(&topo, "clearrest", |t| add_rr_service(t, "wlc"));
}

#[test]
fn j_connection_listing_shows_states_and_expiry() {
    let topo = director("lnc", 2);
    add_rr_service(&topo, "rr");
    let _held = hold_connection(&topo, 15);
    curl(&topo, &format!("http://{VIP}/"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let listing = loop {
        let l = adm(&topo, &["-Lnc"]);
        if (l.contains("ESTABLISHED") && l.contains("TIME_WAIT")) || Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut lines = listing.lines();
    assert_eq!(lines.next(), Some("IPVS connection entries"));
    assert_eq!(
        lines.next().map(str::trim_end),
        Some("pro expire state       source             virtual            destination")
    );
    let est = listing
        .lines()
        .find(|l| l.contains("ESTABLISHED"))
        .expect(&listing);
    let tw = listing
        .lines()
        .find(|l| l.contains("TIME_WAIT"))
        .expect(&listing);
    // ESTABLISHED re-arms 15:00, TIME_WAIT 2:00; both count down.
    assert!(
        est.starts_with("TCP 14:") || est.starts_with("TCP 15:00"),
        "{est}"
    );
    assert!(
        tw.starts_with("TCP 01:") || tw.starts_with("TCP 02:00"),
        "{tw}"
    );
    assert!(
        est.contains("192.168.1.2:") && est.contains(&format!("{VIP}:80")),
        "{est}"
    );
}

#[test]
fn k_one_megabyte_upload_and_download_intact() {
    let topo = director("bulk", 2);
    add_rr_service(&topo, "rr");
    const MB: usize = 1 << 20;
    for _ in 0..2 {
        assert_download_intact(&topo, &format!("http://{VIP}"), MB);
    }
    assert_upload_intact(&topo, &format!("http://{VIP}"));
}
