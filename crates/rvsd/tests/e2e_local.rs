//! End-to-end tests of `Local` forwarding (IPVS's LOCALNODE): a real server at one of the
//! director's own addresses. rvsd keeps the kernel off the wire for VIP:port (nftables), so the
//! packets of a Local connection reach the director's stack through rvsd's TUN device, unchanged;
//! replies leave through the kernel's normal routing. Seed 004's NAT topology, with the built-in
//! real server also running in the director namespace. Needs root.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use rvs_lab::{NatTopology, DIRECTOR};

const VIP6: &str = "2001:db8:1::253";

/// The NAT topology with one remote real server, the built-in server in the director namespace
/// answering `hello,local`, and rvsd running; returns the topology and rvsd's pid.
fn director_with_local_server(tag: &str) -> (NatTopology, u32) {
    let topo = NatTopology::build(tag, 1).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    let lab_bin = rvs_lab::find_bin("rvs-lab").expect("find rvs-lab");
    let lab_bin = lab_bin.to_string_lossy();
    topo.lab
        .spawn(
            DIRECTOR,
            &[&lab_bin, "serve", "--text", "hello,local", "--http", "80"],
        )
        .expect("start the director's own server");
    topo.lab
        .wait_tcp(
            DIRECTOR,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 80),
            Duration::from_secs(10),
        )
        .expect("the director's own server listens");
    // Strict reverse-path filtering, as hardened hosts run it (systemd's default is loose):
    // Local delivery must not depend on it being off.
    topo.lab
        .sysctl(DIRECTOR, "net.ipv4.conf.all.rp_filter", "1")
        .expect("set rp_filter");
    let rvsd = topo.start_rvsd(&[]).expect("start rvsd");
    (topo, rvsd.pid)
}

/// The director's links whose name starts with `rvs` (rvsd's TUN device).
fn rvs_links(topo: &NatTopology) -> Vec<String> {
    let out = topo
        .lab
        .exec_ok(DIRECTOR, &["ip", "-o", "link", "show"])
        .expect("list the director's links");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .filter(|name| name.starts_with("rvs"))
        .collect()
}

fn local_service(topo: &NatTopology, vip: &str, remote: &str) {
    let service = format!("{vip}:80");
    adm(topo, &["-A", "-t", &service, "-s", "rr"]);
    adm(topo, &["-a", "-t", &service, "-r", remote, "-m"]);
    // Asked for masquerading, but the address is the director's own: IPVS makes it LOCALNODE.
    adm(topo, &["-a", "-t", &service, "-r", &service, "-m"]);
    let listing = adm(topo, &["-Ln"]);
    let local_line = listing
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("-> {service}")))
        .unwrap_or_else(|| panic!("the local real server is not listed:\n{listing}"));
    assert!(local_line.contains("Local"), "{listing}");
    let remote_line = listing
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("-> {remote}")))
        .unwrap_or_else(|| panic!("{remote} is not listed:\n{listing}"));
    assert!(remote_line.contains("Masq"), "{listing}");
}

fn alternates_and_downloads(topo: &NatTopology, url_host: &str, vip: &str, remote: &str) {
    let answers: Vec<String> = (0..10)
        .map(|_| curl(topo, &format!("http://{url_host}/")))
        .collect();
    let counts = tally(&answers);
    assert_eq!(counts.get("hello,local"), Some(&5), "{answers:?}");
    assert_eq!(counts.get("hello,10.10.10.2"), Some(&5), "{answers:?}");
    for pair in answers.windows(2) {
        assert_ne!(pair[0], pair[1], "rr must alternate: {answers:?}");
    }
    let conns = adm(topo, &["-Lnc"]);
    assert!(conns.contains(&format!("{vip}:80")), "{conns}");
    // Only the local server is left: a 1 MB download through the TUN device (GSO and partial
    // checksums from the client's veth pass with their virtio-net header).
    adm(topo, &["-d", "-t", &format!("{vip}:80"), "-r", remote]);
    const MB: usize = 1 << 20;
    for _ in 0..2 {
        assert_download_intact(topo, &format!("http://{url_host}"), MB);
    }
    assert_upload_intact(topo, &format!("http://{url_host}"));
    // The local real server's counters: 5 + 2 connections at least, packets in, none out
    // (replies leave through the kernel's routing, as with direct routing).
    let listing = adm(topo, &["-Ln", "--stats"]);
    let line = listing
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("-> {vip}:80")))
        .unwrap_or_else(|| panic!("no local real server in:\n{listing}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert!(cols[2].parse::<u64>().is_ok_and(|c| c >= 7), "{listing}");
    assert_eq!(cols[4], "0", "no outgoing packets pass rvs: {listing}");
}

#[test]
fn a_local_real_server_alternates_with_a_remote_one_and_the_device_goes_with_rvsd() {
    let (topo, rvsd) = director_with_local_server("local4");
    assert_eq!(rvs_links(&topo).len(), 1, "rvsd's TUN device must exist");
    local_service(&topo, VIP, "10.10.10.2:80");
    alternates_and_downloads(&topo, VIP, VIP, "10.10.10.2:80");
    let counters = adm(&topo, &["--counters"]);
    assert!(
        counters
            .lines()
            .any(|l| l.contains("tx_local_delivered") && !l.trim_end().ends_with(" 0")),
        "{counters}"
    );
    topo.lab.kill(rvsd);
    assert!(
        rvs_links(&topo).is_empty(),
        "rvsd's exit must remove its TUN device"
    );
}

#[test]
fn b_local_real_server_over_ipv6() {
    let (topo, _rvsd) = director_with_local_server("local6");
    let vip = format!("[{VIP6}]");
    local_service(&topo, &vip, "[2001:db8:10::2]:80");
    alternates_and_downloads(&topo, &vip, &vip, "[2001:db8:10::2]:80");
}

#[test]
fn c_a_local_real_server_cannot_map_the_port() {
    let (topo, _rvsd) = director_with_local_server("localport");
    adm(&topo, &["-A", "-t", &format!("{VIP}:80"), "-s", "rr"]);
    let (_, err) = adm_err(
        &topo,
        &[
            "-a",
            "-t",
            &format!("{VIP}:80"),
            "-r",
            &format!("{VIP}:8080"),
            "-m",
        ],
    );
    assert!(err.contains("port mapping"), "{err}");
}
