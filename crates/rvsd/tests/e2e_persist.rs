//! End-to-end tests of persistence (`-p`, `-M`), templates in `-Lnc` and `--persistent-conn`,
//! and connection thresholds (`-x`/`-y`), through the real rvsd and rvsadm in seed 004's NAT
//! topology (client 192.168.1.2 -> VIP 192.168.1.253 -> real servers 10.10.10.2, .3, ...).
//! They need root; topologies are torn down by their guards.

mod common;

use std::collections::HashSet;

use common::*;
use rvs_lab::NatTopology;

/// The client's second address, in the same /24 as its first.
const CLIENT2: &str = "192.168.1.3";

/// `n` fetches of `url` from the client namespace, each on a new connection, from `source`.
fn curl_from(topo: &NatTopology, source: &str, url: &str, n: usize) -> Vec<String> {
    curl_many_with(topo, &["--interface", source], url, n)
}

fn add_second_client_address(topo: &NatTopology) {
    client_sh(topo, &format!("ip addr add {CLIENT2}/24 dev eth0"));
}

#[test]
fn persistence_with_netmask_keeps_two_clients_of_one_network_together() {
    let topo = director("persist", 3);
    add_second_client_address(&topo);
    let vip = format!("{VIP}:80");
    adm(
        &topo,
        &[
            "-A",
            "-t",
            &vip,
            "-s",
            "rr",
            "-p",
            "120",
            "-M",
            "255.255.255.0",
        ],
    );
    for rip in &topo.rips4 {
        adm(&topo, &["-a", "-t", &vip, "-r", &format!("{rip}:80"), "-m"]);
    }
    let url = format!("http://{VIP}/");
    let mut answers = curl_from(&topo, "192.168.1.2", &url, 10);
    answers.extend(curl_from(&topo, CLIENT2, &url, 10));
    assert_eq!(answers.len(), 20, "{answers:?}");
    let distinct: HashSet<&String> = answers.iter().collect();
    assert_eq!(distinct.len(), 1, "one /24, one real server: {answers:?}");
    let rs = answers[0].trim_start_matches("hello,").to_owned();

    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!(
            "TCP  {vip} rr persistent 120 mask 255.255.255.0\n"
        )),
        "{listing}"
    );
    // The template: the masked client with port 0, state NONE, as ipvsadm shows it.
    let conns = adm(&topo, &["-Lnc"]);
    let template = conns
        .lines()
        .find(|l| l.contains("192.168.1.0:0"))
        .unwrap_or_else(|| panic!("no template in:\n{conns}"));
    let cols: Vec<&str> = template.split_whitespace().collect();
    assert_eq!(cols[0], "TCP", "{template}");
    assert_eq!(cols[2], "NONE", "{template}");
    assert_eq!(cols[4], vip, "{template}");
    assert_eq!(cols[5], format!("{rs}:80"), "{template}");
    assert!(
        cols[1].starts_with("01:") || cols[1].starts_with("02:"),
        "{template}"
    );
    // PersistConn 1 on that server, 0 on the others.
    let pc = adm(&topo, &["-Ln", "--persistent-conn"]);
    for rip in &topo.rips4 {
        let line = pc
            .lines()
            .find(|l| l.contains(&format!("-> {rip}:80")))
            .unwrap_or_else(|| panic!("{rip} not in:\n{pc}"));
        let want = if rip.to_string() == rs { "1" } else { "0" };
        assert_eq!(line.split_whitespace().nth(3), Some(want), "{pc}");
    }
    // A saved -p round-trips.
    let saved = adm(&topo, &["-Sn"]);
    assert!(
        saved.contains(&format!("-A -t {vip} -s rr -p 120 -M 255.255.255.0")),
        "{saved}"
    );
}

#[test]
fn persistence_without_value_is_360_seconds_and_port_zero_needs_it() {
    let topo = director("persist0", 2);
    let (code, err) = adm_err(&topo, &["-A", "-t", &format!("{VIP}:0"), "-s", "rr"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("Zero port specified for non-persistent service"),
        "{err}"
    );
    adm(&topo, &["-A", "-t", &format!("{VIP}:0"), "-s", "rr", "-p"]);
    for rip in &topo.rips4 {
        adm(
            &topo,
            &[
                "-a",
                "-t",
                &format!("{VIP}:0"),
                "-r",
                &rip.to_string(),
                "-m",
            ],
        );
    }
    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!("TCP  {VIP}:0 rr persistent 360\n")),
        "{listing}"
    );
    // Every port of the VIP goes through, both ports to one server.
    let a = curl(&topo, &format!("http://{VIP}/"));
    let b = curl(&topo, &format!("http://{VIP}:8080/"));
    assert!(a.starts_with("hello,"), "{a}");
    assert_eq!(a, b);
    let conns = adm(&topo, &["-Lnc"]);
    assert!(
        conns.contains(&format!("192.168.1.2:0      {VIP}:0")),
        "{conns}"
    );
}

/// A firewall-mark service's connection through `-C` (which clears the mark rules too) and a
/// restore of the saved rules, marks included.
#[test]
fn fwmark_service_keeps_its_connection_through_clear_and_restore() {
    let topo = director("fwmclear", 2);
    clear_then_restore_keeps_a_download(&topo, "fwmclear", |t| {
        adm(
            t,
            &["--add-mark", "-t", &format!("{VIP}:80"), "--mark", "1"],
        );
        adm(t, &["-A", "-f", "1", "-s", "rr"]);
        for rip in &t.rips4 {
            adm(t, &["-a", "-f", "1", "-r", &rip.to_string(), "-m"]);
        }
    });
}

#[test]
fn fwmark_service_keeps_http_and_http_alt_of_one_client_together() {
    let topo = director("fwmark", 3);
    for port in ["80", "8080"] {
        adm(
            &topo,
            &["--add-mark", "-t", &format!("{VIP}:{port}"), "--mark", "1"],
        );
    }
    adm(&topo, &["-A", "-f", "1", "-s", "rr", "-p", "60"]);
    for rip in &topo.rips4 {
        adm(&topo, &["-a", "-f", "1", "-r", &rip.to_string(), "-m"]);
    }
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.extend(curl_many(&topo, &format!("http://{VIP}/"), 2));
        answers.extend(curl_many(&topo, &format!("http://{VIP}:8080/"), 2));
    }
    assert_eq!(answers.len(), 12, "{answers:?}");
    let distinct: HashSet<&String> = answers.iter().collect();
    assert_eq!(distinct.len(), 1, "port affinity: {answers:?}");
    let listing = adm(&topo, &["-Ln"]);
    assert!(listing.contains("FWM  1 rr persistent 60\n"), "{listing}");
    // One template of protocol IP for the mark (virtual address 0.0.0.1:0).
    let conns = adm(&topo, &["-Lnc"]);
    let template = conns
        .lines()
        .find(|l| l.contains("0.0.0.1:0"))
        .unwrap_or_else(|| panic!("no template in:\n{conns}"));
    assert!(template.starts_with("IP "), "{template}");
    assert!(template.contains("192.168.1.2:0"), "{template}");
    // The rules are saved before the service and listed.
    let saved = adm(&topo, &["-Sn"]);
    assert!(
        saved.starts_with(&format!(
            "--add-mark -t {VIP}/32:80 --mark 1\n--add-mark -t {VIP}/32:8080 --mark 1\n-A -f 1 -s rr -p 60\n"
        )),
        "{saved}"
    );
    // Without the rules the VIP's ports are the kernel's again (nothing listens there).
    adm(&topo, &["-C"]);
    assert_eq!(adm(&topo, &["--list-marks"]), "");
}

/// Polls `rvsadm -Ln` until `pred` holds, up to `secs` seconds.
fn wait_for(topo: &NatTopology, secs: u64, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let listing = adm(topo, &["-Ln"]);
        if pred(&listing) || std::time::Instant::now() > deadline {
            return listing;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn upper_threshold_overload_sends_connections_elsewhere_until_below_the_lower() {
    let topo = director("thresh", 2);
    let vip = format!("{VIP}:80");
    let (a, b) = (topo.rips4[0].to_string(), topo.rips4[1].to_string());
    adm(&topo, &["-A", "-t", &vip, "-s", "rr"]);
    adm(
        &topo,
        &[
            "-a",
            "-t",
            &vip,
            "-r",
            &format!("{a}:80"),
            "-m",
            "-x",
            "2",
            "-y",
            "1",
        ],
    );
    // Two long-lived connections to A (the only server yet). curl gives up after 5 s; the
    // server's next byte then meets a closed socket and the client resets: CLOSE, 10 s.
    for _ in 0..2 {
        topo.lab
            .spawn(
                "client",
                &[
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "5",
                    &format!("http://{VIP}/hold/30"),
                ],
            )
            .expect("spawn a long-lived curl");
    }
    let listing = wait_for(&topo, 10, |l| conns_of(l, &format!("{a}:80")) == (2, 0));
    assert_eq!(conns_of(&listing, &format!("{a}:80")), (2, 0), "{listing}");
    adm(&topo, &["-a", "-t", &vip, "-r", &format!("{b}:80"), "-m"]);
    let th = adm(&topo, &["-Ln", "--thresholds"]);
    let line = th
        .lines()
        .find(|l| l.contains(&format!("-> {a}:80")))
        .unwrap_or_else(|| panic!("{th}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[2..6], ["2", "1", "2", "0"], "{th}");
    // A is overloaded: every new connection goes to B.
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 4);
    assert_eq!(
        answers,
        vec![format!("hello,{b}"); 4],
        "overloaded A got one"
    );
    // Once A's connections are gone (0 < lower threshold 1), A takes connections again.
    let listing = wait_for(&topo, 40, |l| conns_of(l, &format!("{a}:80")) == (0, 0));
    assert_eq!(conns_of(&listing, &format!("{a}:80")), (0, 0), "{listing}");
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 4);
    assert!(
        answers.contains(&format!("hello,{a}")),
        "A must resume: {answers:?}"
    );
}

#[test]
fn policy_switches_set_at_start_and_at_run_time() {
    let topo = NatTopology::build("policy", 1).expect("build the NAT topology");
    topo.start_rvsd(&["--sloppy-tcp", "1", "--conn-reuse-mode", "2"])
        .expect("start rvsd");
    assert_eq!(
        adm(&topo, &["--list-policy"]),
        "conn_reuse_mode 2\nexpire_nodest_conn 0\nexpire_quiescent_template 0\nsloppy_tcp 1\nschedule_icmp 0\nsloppy_sctp 0\nsyn_proxy 0\n\
         drop_entry 0\ndrop_packet 0\nsecure_tcp 0\namemthresh 1024\nam_droprate 10\n"
    );
    adm(&topo, &["--set-policy", "expire_quiescent_template=1"]);
    assert!(adm(&topo, &["--list-policy"]).contains("expire_quiescent_template 1\n"));
    let (code, err) = adm_err(&topo, &["--set-policy", "conn_reuse_mode=9"]);
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("conn_reuse_mode"), "{err}");
}
