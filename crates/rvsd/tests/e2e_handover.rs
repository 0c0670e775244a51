//! End-to-end graceful restart (`rvsd --takeover`) in seed 004's NAT topology: downloads that
//! last several seconds run through the director while a second rvsd takes the first one's
//! place. The first hands over its configuration (set with rvsadm only, so the successor has
//! no other source) and its connection table, and exits; the downloads complete byte for byte
//! through the successor, which lists the services and the connections. Once with the packet
//! path, once with the BPF plane (the program keeps forwarding; a persistent firewall-mark
//! service, whose connections rvsd's engine holds, goes through the file). Needs root.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rvs_lab::{Director, NatTopology};

/// How long each download lasts (one byte a second).
const SECS: usize = 8;

/// Waits (bounded) until rvsd `pid` has exited.
fn wait_exited(topo: &NatTopology, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while topo.lab.exit_status(pid).is_none() {
        assert!(Instant::now() < deadline, "rvsd {pid} did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until the rvsd on the topology's socket answers.
fn wait_serving(topo: &NatTopology) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !topo.rvsadm(&["-Ln"]).expect("run rvsadm").status.success() {
        assert!(Instant::now() < deadline, "the successor does not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the restart with `args` for both rvsds; `persistent` adds a persistent firewall-mark
/// service for port 8080 (rvsd's engine classifies and schedules those, also with the BPF
/// plane) whose download must survive too.
fn restart_keeps_connections(tag: &str, args: &[String], persistent: bool) {
    let topo = NatTopology::build(tag, 2).expect("topology");
    topo.start_real_servers().expect("real servers");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = topo.start_rvsd(&args).expect("the first rvsd");
    add_rr_service(&topo, "rr");
    let vip8080 = format!("{VIP}:8080");
    if persistent {
        adm(&topo, &["--add-mark", "-t", &vip8080, "--mark", "1"]);
        adm(&topo, &["-A", "-f", "1", "-s", "rr", "-p", "60"]);
        for rip in ["10.10.10.2", "10.10.10.3"] {
            adm(&topo, &["-a", "-f", "1", "-r", rip, "-m"]);
        }
    }
    let before = adm(&topo, &["-S", "-n"]);
    let download = HeldDownload::start(&topo, VIP, SECS, &format!("{tag}80"));
    let sticky =
        persistent.then(|| HeldDownload::start(&topo, &vip8080, SECS, &format!("{tag}8080")));
    std::thread::sleep(Duration::from_secs(2));

    let mut successor_args = args.clone();
    successor_args.push("--takeover");
    let successor = topo.start_rvsd(&successor_args).expect("the successor");
    wait_exited(&topo, first.pid);
    wait_serving(&topo);
    let log = topo.lab.log_of(successor.pid);
    assert!(log.contains("the running rvsd handed over"), "{log}");

    // The configuration came over with the state.
    assert_eq!(adm(&topo, &["-S", "-n"]), before);
    let conns = adm(&topo, &["-Lnc"]);
    let held = conns.lines().filter(|l| l.contains("ESTABLISHED")).count();
    assert!(held > usize::from(persistent), "{conns}");
    assert!(!download.ended(), "the download is still running");

    download.assert_intact("port 80, across the takeover");
    if let Some(sticky) = sticky {
        sticky.assert_intact("the persistent service, across the takeover");
    }
    for _ in 0..4 {
        assert!(curl(&topo, &format!("http://{VIP}/")).starts_with("hello,10.10.10."));
    }
}

#[test]
fn packet_path_takeover_keeps_connections() {
    let args = vec!["--dataplane".into(), "packet".into()];
    restart_keeps_connections("hopacket", &args, true);
}

#[test]
fn bpf_plane_takeover_keeps_connections() {
    let fs = Bpffs::mount("handover");
    restart_keeps_connections("hobpf", &bpf_args(&fs.pins()), true);
}

/// `--takeover` with nothing running starts afresh.
#[test]
fn takeover_without_a_running_rvsd_starts_afresh() {
    let topo = NatTopology::build("hofresh", 2).expect("topology");
    topo.start_real_servers().expect("real servers");
    let rvsd = topo
        .start_rvsd(&["--dataplane", "packet", "--takeover"])
        .expect("rvsd");
    add_rr_service(&topo, "rr");
    assert!(curl(&topo, &format!("http://{VIP}/")).starts_with("hello,10.10.10."));
    assert!(topo.lab.log_of(rvsd.pid).contains("starting afresh"));
}
