//! `rvsadm --doctor` on the seeds' classic misconfigurations, each built in the lab (needs root
//! and the rvsd, rvsadm and rvs-lab binaries built): a NAT real server whose default route does
//! not lead back through the director, and a direct-routing real server whose gateway is the
//! director. A healthy setup shows nothing.

mod common;

use std::net::SocketAddr;

use common::*;
use rvs_lab::{DrLayout, DrTopology, NatTopology};

/// Tries `n` short requests from the client (failures are expected here).
fn try_curls(lab: &rvs_lab::Lab, client: &str, url: &str, n: usize) {
    for _ in 0..n {
        let _ = lab.exec(
            client,
            &[
                "curl",
                "-s",
                "--max-time",
                "1",
                "-H",
                "Connection: close",
                url,
            ],
        );
    }
}

/// Runs `rvsadm --doctor` while the client keeps trying `url` (the doctor watches 2 s).
fn doctor_under_traffic(topo: &impl rvs_lab::Director, client: &str, url: &str) -> String {
    let lab = topo.lab();
    let loop_script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do curl -s --max-time 0.5 {url} >/dev/null; done"
    );
    let pid = lab
        .spawn(client, &["sh", "-c", &loop_script])
        .expect("client loop");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let report = adm(topo, &["--doctor"]);
    lab.kill(pid);
    report
}

#[test]
fn a_nat_real_server_not_routing_back() {
    let topo = NatTopology::build("doctornat", 2).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    topo.start_rvsd(&[]).expect("start rvsd");
    add_rr_service(&topo, "rr");
    // Healthy first: nothing to report.
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 4);
    assert_eq!(tally(&answers).values().sum::<usize>(), 4, "{answers:?}");
    assert_eq!(adm(&topo, &["--doctor"]), "No misconfiguration seen.\n");
    // rs1 now routes by default elsewhere (an address on its own segment that is not the
    // director): its replies never come back.
    topo.lab
        .ip(
            "rs1",
            &[
                "route del default".to_string(),
                "route add default via 10.10.10.99".to_string(),
            ],
        )
        .expect("misroute rs1");
    let report = doctor_under_traffic(&topo, "client", &format!("http://{VIP}/"));
    eprintln!("{report}");
    let rs1 = topo.rips4[0];
    assert!(
        report.contains(&format!("nat-no-replies: TCP {VIP}:80 -> {rs1}:80")),
        "{report}"
    );
    assert!(
        !report.contains(&format!("-> {}:80", topo.rips4[1])),
        "only rs1: {report}"
    );
    assert!(report.contains("default gateway"), "{report}");
}

#[test]
fn b_a_dr_real_server_replying_through_the_director() {
    dr_replies_through_the_director("doctordr", None);
}

/// The same on the BPF plane at tc: the program counts the stray replies it passes to the
/// kernel, and rvsd carries the counts to the doctor.
#[test]
fn e_a_dr_real_server_replying_through_the_director_on_the_bpf_plane() {
    let fs = Bpffs::mount("doctordrbpf");
    dr_replies_through_the_director("doctordrbpf", Some(&fs.pins()));
}

/// A direct-routing real server whose default gateway is the director, with rvsd on the
/// packet path, or on the BPF plane with its maps pinned at `pins`.
fn dr_replies_through_the_director(tag: &str, pins: Option<&std::path::Path>) {
    let topo = DrTopology::build(tag, 2, DrLayout::SingleSubnet).expect("build DR");
    topo.start_real_servers().expect("start the real servers");
    let args = pins.map(bpf_args).unwrap_or_default();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    topo.start_rvsd(&args).expect("start rvsd");
    let vip = topo.vip(false);
    let service = SocketAddr::new(vip, 80).to_string();
    adm(&topo, &["-A", "-t", &service, "-s", "rr"]);
    for index in 0..2 {
        let rip = topo.rip(index, false).expect("real server");
        let rs = SocketAddr::new(rip, 80).to_string();
        adm(&topo, &["-a", "-t", &service, "-r", &rs, "-g"]);
    }
    if let Some(pins) = pins {
        wait_published(pins, 1);
    }
    try_curls(&topo.lab, "client", &format!("http://{service}/"), 4);
    assert_eq!(adm(&topo, &["--doctor"]), "No misconfiguration seen.\n");
    // rs1's default gateway becomes the director (seed 003's mistake).
    topo.lab
        .ip(
            "rs1",
            &[
                "route del default".to_string(),
                format!("route add default via {}", topo.dip4),
            ],
        )
        .expect("rs1 via the director");
    let report = doctor_under_traffic(&topo, "client", &format!("http://{service}/"));
    eprintln!("{report}");
    assert!(
        report.contains(&format!("dr-replies-via-director: TCP {service}\n")),
        "{report}"
    );
    assert!(report.contains("must be the router"), "{report}");
    if let Some(pins) = pins {
        // The program forwarded the clients' packets itself and counted the strays.
        let stats = program_stats(pins);
        assert!(stats["forwarded"] > 0, "{stats:?}");
    }
}

#[test]
fn c_dr_real_servers_answering_arp_or_missing_the_vip_on_lo() {
    let topo = DrTopology::build("doctorarp", 2, DrLayout::SingleSubnet).expect("build DR");
    topo.start_real_servers().expect("start the real servers");
    topo.start_rvsd(&[]).expect("start rvsd");
    let vip = topo.vip(false);
    let service = SocketAddr::new(vip, 80).to_string();
    adm(&topo, &["-A", "-t", &service, "-s", "rr"]);
    for index in 0..2 {
        let rip = topo.rip(index, false).expect("real server");
        let rs = SocketAddr::new(rip, 80).to_string();
        adm(&topo, &["-a", "-t", &service, "-r", &rs, "-g"]);
    }
    // The director must know the real servers' MACs to probe them.
    try_curls(&topo.lab, "client", &format!("http://{service}/"), 4);
    assert_eq!(adm(&topo, &["--doctor"]), "No misconfiguration seen.\n");
    // rs1 answers ARP for every local address again; rs2 loses the VIP on lo.
    topo.lab
        .sysctl("rs1", "net.ipv4.conf.all.arp_ignore", "0")
        .expect("arp_ignore");
    topo.lab
        .sysctl("rs1", "net.ipv4.conf.lo.arp_ignore", "0")
        .expect("arp_ignore");
    topo.lab
        .ip("rs2", &[format!("addr del {vip}/32 dev lo")])
        .expect("remove the VIP");
    let report = adm(&topo, &["--doctor"]);
    eprintln!("{report}");
    let (rs1, rs2) = (
        topo.rip(0, false).expect("rs1"),
        topo.rip(1, false).expect("rs2"),
    );
    assert!(
        report.contains(&format!("dr-arp: TCP {service}\n")),
        "{report}"
    );
    assert!(
        report.contains(&format!("real server {rs1} (")) && report.contains("arp_ignore=1"),
        "{report}"
    );
    assert!(
        report.contains(&format!("dr-vip-not-on-lo: TCP {service} -> {rs2}\n")),
        "{report}"
    );
    assert!(
        !report.contains(&format!("dr-vip-not-on-lo: TCP {service} -> {rs1}")),
        "rs1 still holds the VIP: {report}"
    );
}

/// Seed 002: a NAT real server that connects to the VIP itself and is scheduled to itself
/// answers its own address directly, so the connection hangs.
#[test]
fn d_a_nat_real_server_calling_the_vip_loops_back_to_itself() {
    let topo = NatTopology::build("doctorloop", 2).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    topo.start_rvsd(&[]).expect("start rvsd");
    add_rr_service(&topo, "rr");
    try_curls(&topo.lab, "rs1", &format!("http://{VIP}/"), 4);
    let report = adm(&topo, &["--doctor"]);
    eprintln!("{report}");
    let rs1 = topo.rips4[0];
    assert!(
        report.contains(&format!("rs-self-loop: TCP {VIP}:80 -> {rs1}:80\n")),
        "{report}"
    );
    assert!(
        !report.contains(&format!("-> {}:80", topo.rips4[1])),
        "{report}"
    );
}
