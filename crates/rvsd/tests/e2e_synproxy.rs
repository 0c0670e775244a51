//! The SYN proxy (`--syn-proxy 1`) end to end, over veth (needs root, hping3 and the rvsd and
//! rvs-lab binaries built): HTTP through a NAT service whose handshakes the director answers
//! with cookies, a 4 MiB download and a 1 MiB upload intact through the shifted sequence
//! numbers, on the packet path and with the BPF program at tc (which answers the SYNs with the
//! kernel's cookies, rvsd opens the connections, and hands each back to the program once its
//! real server has answered, which then shifts the numbers itself) and at XDP (the same, rvsd
//! answering the SYNs of a client whose MAC address the program does not know yet); during a
//! spoofed SYN flood the
//! director keeps no state for it and clients still get through.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use rvs_lab::NatTopology;

/// The NAT topology with rvsd's SYN proxy on and a NAT service on the VIP's port 80.
fn proxying_director(tag: &str, extra: &[&str]) -> NatTopology {
    let topo = NatTopology::build(tag, 2).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    if extra.contains(&"xdp") {
        prepare_xdp_veths(&topo);
    }
    let mut args = vec!["--syn-proxy", "1"];
    args.extend_from_slice(extra);
    topo.start_rvsd(&args).expect("start rvsd");
    add_rr_service(&topo, "rr");
    topo
}

/// What the proxy's counters grew by.
struct Grown {
    /// SYNs answered by rvsd's engine.
    answered: u64,
    /// Connections opened by rvsd.
    opened: u64,
    /// Connections handed over to the BPF program.
    handed_over: u64,
}

/// Drives HTTP through the proxy; returns what rvsd's counters grew by.
fn traffic_goes_through(topo: &NatTopology) -> Grown {
    let before = counters(topo);
    let answers = curl_many(topo, &format!("http://{VIP}/"), 6);
    let counts = tally(&answers);
    assert_eq!(counts.get("hello,10.10.10.2"), Some(&3), "{answers:?}");
    assert_eq!(counts.get("hello,10.10.10.3"), Some(&3), "{answers:?}");
    assert_download_intact(topo, &format!("http://{VIP}"), 4 << 20);
    assert_upload_intact(topo, &format!("http://{VIP}"));
    let after = counters(topo);
    let grew = |name: &str| after[name] - before[name];
    assert!(grew("synproxy_opened") >= 8, "{after:?}");
    assert_eq!(after["synproxy_bad_cookies"], 0, "{after:?}");
    Grown {
        answered: grew("synproxy_answered"),
        opened: grew("synproxy_opened"),
        handed_over: grew("synproxy_handed_over"),
    }
}

#[test]
fn a_connections_through_the_proxy_on_the_packet_path() {
    let topo = proxying_director("synproxy", &[]);
    assert!(adm(&topo, &["--list-policy"]).contains("\nsyn_proxy 1\n"));
    let grown = traffic_goes_through(&topo);
    assert!(grown.answered >= 8, "rvsd answered the SYNs");
    assert_eq!(grown.handed_over, 0, "nothing to hand over to");
}

#[test]
fn b_connections_through_the_proxy_with_the_bpf_plane() {
    let fs = Bpffs::mount("synproxy");
    let args = bpf_args(&fs.pins());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let topo = proxying_director("synproxybpf", &args);
    let grown = traffic_goes_through(&topo);
    // The program answered the SYNs with the kernel's cookies and checked the ACKs; rvsd
    // opened the connections and handed each over once its server had answered: the program
    // carried the downloads and uploads, shifting their numbers, and still holds them.
    let stats = program_stats(&fs.pins());
    assert!(stats["synproxy_answered"] >= 8, "{stats:?}");
    assert!(stats["punt_synproxy_ack"] >= grown.opened, "{stats:?}");
    assert_eq!(grown.answered, 0);
    assert_eq!(grown.handed_over, grown.opened);
    assert!(pinned_connections(&fs.pins()) as u64 >= grown.opened);
}

#[test]
fn e_connections_through_the_proxy_at_xdp() {
    let fs = Bpffs::mount("synproxyxdp");
    let mut args = bpf_args(&fs.pins());
    args[1] = "xdp".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let topo = proxying_director("synproxyxdp", &args);
    // At XDP the program answers the SYNs too once it knows the client's MAC address (rvsd
    // answers while it does not); the connections come back to the program once their servers
    // have answered.
    let grown = traffic_goes_through(&topo);
    let stats = program_stats(&fs.pins());
    assert!(stats["synproxy_answered"] >= 6, "{stats:?}");
    assert!(
        grown.answered + stats["synproxy_answered"] >= 8,
        "{stats:?}"
    );
    assert_eq!(grown.handed_over, grown.opened);
    assert!(pinned_connections(&fs.pins()) as u64 >= grown.opened);
}

#[test]
fn d_a_spoofed_syn_flood_is_answered_by_the_bpf_program() {
    flood_answered_by_the_program(false);
}

#[test]
fn f_a_spoofed_syn_flood_is_answered_by_the_program_at_xdp() {
    flood_answered_by_the_program(true);
}

/// A spoofed SYN flood against the BPF plane at tc or XDP: the program drops it, rvsd sees
/// none of it, and clients get through.
fn flood_answered_by_the_program(xdp: bool) {
    let fs = Bpffs::mount(if xdp { "synfloodxdp" } else { "synflood" });
    let mut args = bpf_args(&fs.pins());
    if xdp {
        args[1] = "xdp".into();
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let topo = proxying_director(if xdp { "synfloodxdp" } else { "synfloodbpf" }, &args);
    let (answers, c) = curl_through_a_flood(&topo);
    let stats = program_stats(&fs.pins());
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.starts_with("hello,")),
        "{answers:?}"
    );
    // The program dropped the flood's SYNs (their spoofed sources have no route back) and
    // answered the clients'. rvsd saw next to none of the flood: only a SYN the program could
    // not answer for want of a MAC address reaches it, which happens when hping3 picks a
    // source inside one of the director's own subnets (rvsd resolves it, as the kernel would).
    assert!(stats["synproxy_no_route"] > 1000, "{stats:?}");
    assert!(stats["synproxy_answered"] >= 4, "{stats:?}");
    assert!(
        c["synproxy_answered"] <= stats["punt_service"],
        "{c:?}\n{stats:?}"
    );
    assert!(
        c["synproxy_answered"] * 1000 < stats["synproxy_no_route"],
        "{c:?}\n{stats:?}"
    );
    // Only the clients' connections were opened, each then handed over to the program.
    assert_eq!(c["synproxy_opened"], 4, "{c:?}\n{stats:?}");
    assert_eq!(
        c["connections"] + c["synproxy_handed_over"],
        4,
        "{c:?}\n{stats:?}"
    );
}

#[test]
fn c_a_spoofed_syn_flood_leaves_no_state_and_clients_get_through() {
    let topo = proxying_director("synflood", &[]);
    let (answers, c) = curl_through_a_flood(&topo);
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.starts_with("hello,")),
        "{answers:?}"
    );
    assert!(
        c["synproxy_answered"] > 1000,
        "the flood was answered: {c:?}"
    );
    // Only the clients' connections were made (TIME_WAIT ones included).
    assert_eq!(c["connections"], 4, "{c:?}");
}

/// Floods the VIP with spoofed SYNs (hping3, as fast as it goes), connects 4 times through the
/// flood after 2 s, and returns the answers with rvsd's counters before the flood stops.
fn curl_through_a_flood(topo: &NatTopology) -> (Vec<String>, HashMap<String, u64>) {
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
    std::thread::sleep(Duration::from_secs(2));
    let answers = curl_many(topo, &format!("http://{VIP}/"), 4);
    let c = counters(topo);
    let _ = topo.lab.exec("client", &["kill", &flood.to_string()]);
    (answers, c)
}
