//! End-to-end tests of ICMP errors from the real-server side: a UDP service whose real server has
//! nothing listening on its port. The real server's kernel answers ICMP (v6) port unreachable to
//! the client (NAT) or to the director's local address (FULLNAT); rvsd must rewrite the outer
//! header and the quoted packet back to the VIP, so the client's *connected* UDP socket, which
//! only takes an error whose quoted packet matches it, reports ConnectionRefused. Needs root;
//! every topology is torn down by its guard.

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use rvs_lab::{FullNatTopology, NatTopology, CLIENT};

const VIP6: &str = "2001:db8:1::253";
/// The service port, and the real server's port where nothing listens.
const SERVICE_PORT: u16 = 54;
const DEAD_PORT: u16 = 5999;

/// From the client namespace: a connected UDP socket to `vip`; sends a datagram and waits for
/// its next receive to fail with ConnectionRefused (a few tries: the first datagram may wait
/// for a neighbour, and the real server rate-limits its ICMP errors). Returns the last outcome.
fn connection_refused(topo: &NatTopology, vip: SocketAddr) -> Result<(), String> {
    topo.lab.in_netns(CLIENT, move || {
        let bind: SocketAddr = if vip.is_ipv6() {
            "[::]:0".parse().map_err(|e| format!("{e}"))?
        } else {
            "0.0.0.0:0".parse().map_err(|e| format!("{e}"))?
        };
        let sock = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
        sock.connect(vip).map_err(|e| format!("connect: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .map_err(|e| format!("timeout: {e}"))?;
        let mut last = String::new();
        for _ in 0..4 {
            if let Err(e) = sock.send(b"anyone there?") {
                if e.kind() == ErrorKind::ConnectionRefused {
                    return Ok(());
                }
                last = format!("send: {e}");
                continue;
            }
            let mut buf = [0u8; 64];
            match sock.recv(&mut buf) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(()),
                Err(e) => last = format!("recv: {e}"),
                Ok(n) => last = format!("unexpected answer of {n} bytes"),
            }
        }
        Err(last)
    })
}

fn udp_service(topo: &NatTopology, vip: &str, rip: &str, method: &str, laddr: Option<&str>) {
    let service = format!("{vip}:{SERVICE_PORT}");
    let mut args = vec!["-A", "-u", service.as_str(), "-s", "rr"];
    if let Some(pool) = laddr {
        args.extend(["--laddr", pool]);
    }
    adm(topo, &args);
    let dest = format!("{rip}:{DEAD_PORT}");
    adm(topo, &["-a", "-u", &service, "-r", &dest, method]);
}

fn nat_director(tag: &str) -> NatTopology {
    let topo = NatTopology::build(tag, 1).expect("build the NAT topology");
    topo.start_rvsd(&[]).expect("start rvsd");
    topo
}

fn fullnat_director(tag: &str) -> FullNatTopology {
    let topo = FullNatTopology::build(tag, 1).expect("build the FULLNAT topology");
    topo.nat.start_rvsd(&[]).expect("start rvsd");
    topo
}

#[test]
fn a_nat_ipv4_port_unreachable_reaches_the_client_as_from_the_vip() {
    let topo = nat_director("icmp4");
    udp_service(&topo, VIP, "10.10.10.2", "-m", None);
    let vip: SocketAddr = format!("{VIP}:{SERVICE_PORT}").parse().expect("vip");
    connection_refused(&topo, vip).expect("the client's socket must see the port unreachable");
    // The error passed rvsd (counted as an outgoing packet of the connection), not the kernel.
    let stats = adm(&topo, &["-Ln", "--stats"]);
    let line = stats
        .lines()
        .find(|l| l.trim_start().starts_with("-> 10.10.10.2:5999"))
        .unwrap_or_else(|| panic!("no real server in:\n{stats}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert!(
        cols[4].parse::<u64>().is_ok_and(|n| n >= 1),
        "OutPkts must count the ICMP error: {stats}"
    );
}

#[test]
fn b_nat_ipv6_port_unreachable_reaches_the_client_as_from_the_vip() {
    let topo = nat_director("icmp6");
    udp_service(&topo, &format!("[{VIP6}]"), "[2001:db8:10::2]", "-m", None);
    let vip: SocketAddr = format!("[{VIP6}]:{SERVICE_PORT}").parse().expect("vip");
    connection_refused(&topo, vip).expect("the client's socket must see the port unreachable");
}

#[test]
fn c_fullnat_ipv4_port_unreachable_reaches_the_client_as_from_the_vip() {
    let topo = fullnat_director("icmpf4");
    let pool = topo.laddr_arg(false);
    udp_service(&topo.nat, VIP, "10.10.10.2", "--fullnat", Some(&pool));
    let vip: SocketAddr = format!("{VIP}:{SERVICE_PORT}").parse().expect("vip");
    connection_refused(&topo.nat, vip).expect("the client's socket must see the port unreachable");
}

#[test]
fn d_fullnat_ipv6_port_unreachable_reaches_the_client_as_from_the_vip() {
    let topo = fullnat_director("icmpf6");
    let pool = topo.laddr_arg(true);
    udp_service(
        &topo.nat,
        &format!("[{VIP6}]"),
        "[2001:db8:10::2]",
        "--fullnat",
        Some(&pool),
    );
    let vip: SocketAddr = format!("[{VIP6}]:{SERVICE_PORT}").parse().expect("vip");
    connection_refused(&topo.nat, vip).expect("the client's socket must see the port unreachable");
}
