//! End-to-end tests of rvsd's BPF data plane (`--dataplane tc`) in the NAT topology of seed 004:
//! the program forwards (rvsd runs no packet workers then), rvsd publishes rvsadm's changes
//! into it, and a `kill -9` of rvsd loses no established connection: the program keeps
//! forwarding, and rvsd started again adopts the pinned maps. Needs root and BPF.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use rvs_lab::{Director, NatTopology};

/// A NAT topology of two real servers with rvsd on the BPF plane (tc, pins in `fs`).
fn nat_with_bpf(fs: &Bpffs, tag: &str) -> (NatTopology, rvs_lab::Rvsd) {
    let topo = NatTopology::build(tag, 2).expect("topology");
    topo.start_real_servers().expect("real servers");
    let rvsd = start(&topo, &bpf_args(&fs.pins()));
    (topo, rvsd)
}

fn start(topo: &NatTopology, args: &[String]) -> rvs_lab::Rvsd {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    topo.start_rvsd(&args)
        .expect("start rvsd with the BPF data plane")
}

#[test]
fn a_tc_plane_forwards_nat_and_follows_rvsadm() {
    let fs = Bpffs::mount("nat");
    let (topo, _rvsd) = nat_with_bpf(&fs, "bpfnat");
    add_rr_service(&topo, "rr");
    let answers: Vec<String> = (0..10)
        .map(|_| curl(&topo, &format!("http://{VIP}/")))
        .collect();
    let counts = tally(&answers);
    assert_eq!(counts.get("hello,10.10.10.2"), Some(&5), "{answers:?}");
    assert_eq!(counts.get("hello,10.10.10.3"), Some(&5), "{answers:?}");
    assert!(
        pinned_connections(&fs.pins()) >= 10,
        "the connections are in the program's table"
    );
    // --counters counts the program's connections (measured by the plane once a second).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counter(&topo, "bpf_connections") < 10 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        counter(&topo, "bpf_connections") >= 10,
        "{:?}",
        counters(&topo)
    );
    // rvsadm sees them: -Lnc lists the program's connections, -Ln counts them per server.
    let conns = adm(&topo, &["-Lnc"]);
    let listed = conns
        .lines()
        .filter(|l| l.contains("192.168.1.253:80"))
        .count();
    assert!(listed >= 10, "{conns}");
    let listing = adm(&topo, &["-Ln"]);
    assert_eq!(conns_of(&listing, "10.10.10.2:80"), (0, 5), "{listing}");
    assert_eq!(conns_of(&listing, "10.10.10.3:80"), (0, 5), "{listing}");
    let stats = adm(&topo, &["-Ln", "--stats", "--exact"]);
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("TCP") && l.split_whitespace().nth(2) == Some("10")),
        "ten connections counted: {stats}"
    );
    // Rates come from IPVS's estimator over the program's counters (every 2 s).
    std::thread::sleep(Duration::from_millis(4500));
    let rates = adm(&topo, &["-Ln", "--rate"]);
    let service_rates: Vec<u64> = rates
        .lines()
        .find(|l| l.starts_with("TCP"))
        .map(|l| {
            l.split_whitespace()
                .skip(2)
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        service_rates.iter().any(|&r| r > 0),
        "packets per second seen: {rates}"
    );
    // -Z zeroes the program's counters as it does the engine's.
    adm(&topo, &["-Z"]);
    let zeroed = adm(&topo, &["-Ln", "--stats", "--exact"]);
    assert!(
        zeroed
            .lines()
            .any(|l| l.starts_with("TCP") && l.split_whitespace().nth(2) == Some("0")),
        "zeroed: {zeroed}"
    );
    // A change through rvsadm reaches the program: the second server leaves.
    adm(
        &topo,
        &["-d", "-t", &format!("{VIP}:80"), "-r", "10.10.10.3:80"],
    );
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..4 {
        assert_eq!(curl(&topo, &format!("http://{VIP}/")), "hello,10.10.10.2");
    }
    assert_download_intact(&topo, &format!("http://{VIP}"), 1 << 20);
}

#[test]
fn b_kill_9_loses_no_established_connection() {
    let fs = Bpffs::mount("kill");
    let (topo, rvsd) = nat_with_bpf(&fs, "bpfkill");
    add_rr_service(&topo, "rr");
    let rules = std::env::temp_dir().join(format!("rvs-e2e-bpf-rules-{}", std::process::id()));
    std::fs::write(&rules, adm(&topo, &["-S", "-n"])).expect("save rules");

    // A connection that lasts 8 s, the real server sending a byte a second, in the background.
    let download = HeldDownload::start(&topo, VIP, 8, "bpfkill");
    std::thread::sleep(Duration::from_secs(2));
    // rvsd dies; the program keeps forwarding the download.
    let killed = Command::new("kill")
        .args(["-9", &rvsd.pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !download.ended(),
        "the connection should still be open while rvsd is down"
    );
    // rvsd comes back with its rules and adopts the pinned maps.
    let _ = std::fs::remove_file(&topo.socket);
    let mut args = bpf_args(&fs.pins());
    args.extend(["--restore".into(), rules.display().to_string()]);
    let _again = start(&topo, &args);
    download.assert_intact("across the kill -9 and the restart");
    let _ = std::fs::remove_file(&rules);
    // New connections after the restart.
    let answers: Vec<String> = (0..4)
        .map(|_| curl(&topo, &format!("http://{VIP}/")))
        .collect();
    assert!(
        answers.iter().all(|a| a.starts_with("hello,10.10.10.")),
        "{answers:?}"
    );
}

/// `-C` then `-R` through the program: its connections stay, as IPVS's and the engine's do.
#[test]
fn b_tc_plane_keeps_connections_through_clear_and_restore() {
    let fs = Bpffs::mount("clear");
    let (topo, _rvsd) = nat_with_bpf(&fs, "bpfclear");
    clear_then_restore_keeps_a_download(&topo, "bpfclear", |t| add_rr_service(t, "wlc"));
}

/// Direct routing through the program (seed 003's single-subnet lab, IPv4 and IPv6): the
/// packet goes back out of d0 to the real server's MAC unchanged, replies bypass the director.
#[test]
fn c_tc_plane_forwards_direct_routing() {
    use rvs_lab::{DrLayout, DrTopology};
    for v6 in [false, true] {
        let fs = Bpffs::mount(if v6 { "dr6" } else { "dr4" });
        let topo = DrTopology::build(
            if v6 { "bpfdr6" } else { "bpfdr4" },
            2,
            DrLayout::SingleSubnet,
        )
        .expect("topology");
        topo.start_real_servers().expect("real servers");
        let args = bpf_args(&fs.pins());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        topo.start_rvsd(&args).expect("rvsd");
        let service = std::net::SocketAddr::new(topo.vip(v6), 80).to_string();
        adm(&topo, &["-A", "-t", &service, "-s", "rr"]);
        for index in 0..2 {
            let rip = topo.rip(index, v6).expect("real server");
            adm(
                &topo,
                &[
                    "-a",
                    "-t",
                    &service,
                    "-r",
                    &std::net::SocketAddr::new(rip, 80).to_string(),
                    "-g",
                ],
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        let answers: Vec<String> = (0..10)
            .map(|_| {
                topo.curl(&format!("http://{service}/"))
                    .expect("curl the VIP")
                    .trim()
                    .to_owned()
            })
            .collect();
        let counts = tally(&answers);
        for index in 0..2 {
            assert_eq!(
                counts.get(&topo.rs_text(index)),
                Some(&5),
                "{v6}: {answers:?}"
            );
        }
        assert_download_intact(&topo, &format!("http://{service}"), 1 << 20);
        let listing = adm(&topo, &["-Ln"]);
        assert!(listing.contains("Route"), "{listing}");
    }
}

/// NAT through the program at XDP. XDP on veth needs the peers that receive redirected frames
/// to run NAPI (GRO on) and the senders to send complete checksums (tx offload off).
#[test]
fn d_xdp_plane_forwards_nat() {
    let fs = Bpffs::mount("xdp");
    let topo = NatTopology::build("bpfxdp", 2).expect("topology");
    topo.start_real_servers().expect("real servers");
    prepare_xdp_veths(&topo);
    let mut args = bpf_args(&fs.pins());
    args[1] = "xdp".into();
    let _rvsd = start(&topo, &args);
    add_rr_service(&topo, "rr");
    let answers: Vec<String> = (0..10)
        .map(|_| curl(&topo, &format!("http://{VIP}/")))
        .collect();
    let counts = tally(&answers);
    assert_eq!(counts.get("hello,10.10.10.2"), Some(&5), "{answers:?}");
    assert_eq!(counts.get("hello,10.10.10.3"), Some(&5), "{answers:?}");
    assert_download_intact(&topo, &format!("http://{VIP}"), 1 << 20);
    let listing = adm(&topo, &["-Ln"]);
    assert!(conns_of(&listing, "10.10.10.2:80").1 >= 5, "{listing}");
}

/// A persistent service (`-p 300`) in the program: one client's connections keep their
/// server while rr would alternate, the template is in the program's table and listed by
/// `-Lnc` (masked client, port 0, state NONE).
#[test]
fn e_tc_plane_keeps_persistent_clients_on_their_server() {
    let fs = Bpffs::mount("persist");
    let (topo, _rvsd) = nat_with_bpf(&fs, "bpfpers");
    adm(
        &topo,
        &["-A", "-t", &format!("{VIP}:80"), "-s", "rr", "-p", "300"],
    );
    for rip in &topo.rips4 {
        adm(
            &topo,
            &[
                "-a",
                "-t",
                &format!("{VIP}:80"),
                "-r",
                &format!("{rip}:80"),
                "-m",
            ],
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let answers: Vec<String> = (0..6)
        .map(|_| curl(&topo, &format!("http://{VIP}/")))
        .collect();
    assert!(
        answers.iter().all(|a| a == &answers[0]) && answers[0].starts_with("hello,"),
        "one client, one real server: {answers:?}"
    );
    assert_download_intact(&topo, &format!("http://{VIP}"), 1 << 20);
    assert!(
        pinned_connections(&fs.pins()) >= 7,
        "the program forwarded the connections"
    );
    let rip = answers[0].trim_start_matches("hello,");
    let conns = adm(&topo, &["-Lnc"]);
    assert!(
        conns.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() >= 6
                && w[0] == "TCP"
                && w[2] == "NONE"
                && w[3].ends_with(":0")
                && w[4] == format!("{VIP}:80")
                && w[5] == format!("{rip}:80")
        }),
        "the template: {conns}"
    );
}

/// A firewall-mark service with the BPF plane: the program sends the marked addresses'
/// packets and the real servers' replies up, and rvsd's engine classifies and forwards them.
#[test]
fn f_tc_plane_leaves_fwmark_services_to_the_engine() {
    let fs = Bpffs::mount("fwmark");
    let (topo, _rvsd) = nat_with_bpf(&fs, "bpffwm");
    for port in ["80", "8080"] {
        adm(
            &topo,
            &["--add-mark", "-t", &format!("{VIP}:{port}"), "--mark", "1"],
        );
    }
    adm(&topo, &["-A", "-f", "1", "-s", "rr"]);
    for rip in &topo.rips4 {
        adm(&topo, &["-a", "-f", "1", "-r", &rip.to_string(), "-m"]);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(curl(&topo, &format!("http://{VIP}/")));
        answers.push(curl(&topo, &format!("http://{VIP}:8080/")));
    }
    let counts = tally(&answers);
    assert_eq!(counts.get("hello,10.10.10.2"), Some(&2), "{answers:?}");
    assert_eq!(counts.get("hello,10.10.10.3"), Some(&2), "{answers:?}");
}

/// Without `--dataplane`, rvsd picks the fastest plane that works: here (veth, a bpffs for the
/// pins) the program at tc, as its log says, and the program forwards.
#[test]
fn g_default_plane_is_the_program_where_it_loads() {
    let fs = Bpffs::mount("auto");
    let topo = NatTopology::build("bpfauto", 2).expect("topology");
    topo.start_real_servers().expect("real servers");
    let pins = fs.pins().display().to_string();
    let rvsd = start(&topo, &["--bpf-pin-dir".into(), pins]);
    add_rr_service(&topo, "rr");
    for _ in 0..4 {
        assert!(curl(&topo, &format!("http://{VIP}/")).starts_with("hello,10.10.10."));
    }
    let log = topo.lab.log_of(rvsd.pid);
    assert!(
        log.contains("data plane: BPF at Tc (--dataplane auto: no native XDP with redirect on d0 (virtual), d1 (virtual))"),
        "{log}"
    );
    assert!(pinned_connections(&fs.pins()) >= 4, "the program forwarded");
}

/// Where the program cannot start (no bpf filesystem for its pins), the default falls back to
/// the AF_PACKET workers, says why, and forwards all the same.
#[test]
fn h_default_plane_falls_back_to_the_packet_path() {
    let topo = NatTopology::build("bpfback", 2).expect("topology");
    topo.start_real_servers().expect("real servers");
    let not_bpffs = topo.lab.log_dir().join("pins");
    let rvsd = start(
        &topo,
        &["--bpf-pin-dir".into(), not_bpffs.display().to_string()],
    );
    add_rr_service(&topo, "rr");
    let answers: Vec<String> = (0..4)
        .map(|_| curl(&topo, &format!("http://{VIP}/")))
        .collect();
    let counts = tally(&answers);
    assert_eq!(counts.get("hello,10.10.10.2"), Some(&2), "{answers:?}");
    let log = topo.lab.log_of(rvsd.pid);
    assert!(
        log.contains("data plane: packet (--dataplane auto: the BPF plane did not start:")
            && log.contains("is not on a bpf filesystem"),
        "{log}"
    );
}

/// lblc and lblcr are scheduled in the program: every new connection to the VIP goes to the
/// server its destination address went to (the one table entry, while that server is not
/// overloaded), counted by the program as its own, none passed up to rvsd.
#[test]
fn i_tc_plane_schedules_locality_services_itself() {
    let fs = Bpffs::mount("locality");
    let (topo, _rvsd) = nat_with_bpf(&fs, "bpfloc");
    for (port, sched) in [("80", "lblc"), ("8080", "lblcr")] {
        let vip = format!("{VIP}:{port}");
        adm(&topo, &["-A", "-t", &vip, "-s", sched]);
        for rip in &topo.rips4 {
            adm(
                &topo,
                &["-a", "-t", &vip, "-r", &format!("{rip}:{port}"), "-m"],
            );
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = program_stats(&fs.pins());
    for port in ["80", "8080"] {
        let answers: Vec<String> = (0..6)
            .map(|_| curl(&topo, &format!("http://{VIP}:{port}/")))
            .collect();
        let counts = tally(&answers);
        assert_eq!(
            counts.len(),
            1,
            "one server for the one destination: {answers:?}"
        );
    }
    let after = program_stats(&fs.pins());
    assert_eq!(
        after["conn_created"] - before["conn_created"],
        12,
        "{after:?}"
    );
    let punted: u64 = after
        .iter()
        .filter(|(k, _)| k.starts_with("punt_"))
        .map(|(k, v)| v - before.get(k).copied().unwrap_or(0))
        .sum();
    assert_eq!(punted, 0, "nothing passed up: {after:?}");
}

/// The program's maps hold `--bpf-max-services` services and `--bpf-max-dests` real servers: a
/// command past them is refused (ipvsadm's ENOMEM text, and what ran out), the configuration
/// stays as it was and keeps forwarding; firewall-mark services, rvsd's own, do not count.
#[test]
fn j_tc_plane_refuses_services_past_its_maps() {
    let fs = Bpffs::mount("bounds");
    let topo = NatTopology::build("bpfbound", 2).expect("topology");
    topo.start_real_servers().expect("real servers");
    let mut args = bpf_args(&fs.pins());
    args.extend(["--bpf-max-services", "1", "--bpf-max-dests", "2"].map(String::from));
    let _rvsd = start(&topo, &args);
    add_rr_service(&topo, "rr");
    let (_, text) = adm_err(&topo, &["-A", "-t", &format!("{VIP}:8080"), "-s", "rr"]);
    assert_eq!(
        text.trim(),
        "Memory allocation problem: the BPF data plane has no room for more services (at most \
         1): raise --bpf-max-services"
    );
    let (_, text) = adm_err(
        &topo,
        &[
            "-a",
            "-t",
            &format!("{VIP}:80"),
            "-r",
            "10.10.10.9:80",
            "-m",
        ],
    );
    assert!(text.contains("raise --bpf-max-dests"), "{text}");
    adm(&topo, &["-A", "-f", "1", "-s", "rr"]);
    let listing = adm(&topo, &["-Ln"]);
    assert!(!listing.contains(":8080"), "{listing}");
    assert!(!listing.contains("10.10.10.9"), "{listing}");
    let answers: Vec<String> = (0..4)
        .map(|_| curl(&topo, &format!("http://{VIP}/")))
        .collect();
    assert_eq!(tally(&answers).len(), 2, "{answers:?}");
}
