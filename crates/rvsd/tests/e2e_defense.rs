//! IPVS's defence switches end to end, over veth (needs root, hping3 and the rvsd and rvs-lab
//! binaries built): a spoofed SYN flood fills a bounded connection table, the memory left (the
//! table's room) falls under `--amemthresh`, and the automatic `drop_entry` and `drop_packet`
//! turn on (`--list-policy` reads 2, as the kernel's sysctls do), drop new connections and
//! remove half-open ones, on the packet path and in the BPF program at tc; once the flood
//! stops and drop_entry has made room again they turn off (read 1) and clients connect.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use rvs_lab::NatTopology;

/// `--max-connections 4096` at 128 bytes a connection is 128 pages of room when empty:
/// `--amemthresh 100` turns the automatic switches on once the table holds about 900.
const DEFENSE: [&str; 10] = [
    "--max-connections",
    "4096",
    "--bpf-max-connections",
    "4096",
    "--drop-entry",
    "1",
    "--drop-packet",
    "1",
    "--amemthresh",
    "100",
];

fn policy(topo: &NatTopology) -> HashMap<String, u32> {
    adm(topo, &["--list-policy"])
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn defended_director(tag: &str, extra: &[String]) -> NatTopology {
    let topo = NatTopology::build(tag, 2).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    let mut args: Vec<&str> = DEFENSE.to_vec();
    args.extend(extra.iter().map(String::as_str));
    topo.start_rvsd(&args).expect("start rvsd");
    add_rr_service(&topo, "rr");
    let p = policy(&topo);
    assert_eq!((p["drop_entry"], p["drop_packet"]), (1, 1), "{p:?}");
    assert_eq!(p["amemthresh"], 100, "{p:?}");
    topo
}

/// Polls `ok` on rvsd's counters and policy for up to `secs` seconds; returns the last
/// counters.
fn wait_for(
    topo: &NatTopology,
    what: &str,
    secs: u64,
    ok: impl Fn(&HashMap<String, u64>, &HashMap<String, u32>) -> bool,
) -> HashMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (c, p) = (counters(topo), policy(topo));
        if ok(&c, &p) {
            return c;
        }
        assert!(Instant::now() < deadline, "{what}: {c:?} {p:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Floods the VIP with spoofed SYNs until the defence is on, checks what it did, stops the
/// flood and checks the defence goes off and clients connect.
/// `acted` says whether the defence has done its work yet (dropped and removed something).
fn flood_turns_the_defence_on_and_off(
    topo: &NatTopology,
    acted: impl Fn(&HashMap<String, u64>) -> bool,
) -> HashMap<String, u64> {
    let answers = curl_many(topo, &format!("http://{VIP}/"), 2);
    assert_eq!(tally(&answers).values().sum::<usize>(), 2, "{answers:?}");
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
    let on = wait_for(topo, "defence on", 15, |c, p| {
        c["defense_short_of_memory"] == 1
            && c["defense_drop_rate"] >= 1
            && p["drop_entry"] == 2
            && p["drop_packet"] == 2
            && acted(c)
    });
    let _ = topo.lab.exec("client", &["kill", &flood.to_string()]);
    // The flood stops. drop_entry goes on taking half-open connections out (a 32nd of the
    // table a second, picked at random as IPVS's) until the memory is back and the switches
    // turn off: at the latest when the flood's last connections time out (SYN_RECV's 60 s).
    // An `ipvsadm -C` would not help: IPVS leaves deleted services' connections to their
    // timers, and so does rvs.
    wait_for(topo, "defence off", 75, |c, p| {
        c["defense_short_of_memory"] == 0
            && c["defense_drop_rate"] == 0
            && p["drop_entry"] == 1
            && p["drop_packet"] == 1
    });
    let answers = curl_many(topo, &format!("http://{VIP}/"), 4);
    assert_eq!(tally(&answers).values().sum::<usize>(), 4, "{answers:?}");
    on
}

#[test]
fn a_spoofed_flood_turns_the_defence_on_the_packet_path() {
    let topo = defended_director("defense", &[]);
    // New connections were dropped at the rate, half-open ones removed from the table.
    let on = flood_turns_the_defence_on_and_off(&topo, |c| {
        c["drop_defense_drop_packet"] > 0 && c["defense_entries_dropped"] > 0
    });
    assert!(on["connections"] <= 4096, "{on:?}");
}

#[test]
fn b_spoofed_flood_turns_the_defence_on_in_the_bpf_program() {
    let fs = Bpffs::mount("defense");
    let topo = defended_director("defensebpf", &bpf_args(&fs.pins()));
    // The program dropped new connections and removed half-open ones itself.
    let pins = fs.pins();
    flood_turns_the_defence_on_and_off(&topo, |_| {
        let stats = program_stats(&pins);
        stats["drop_defense"] > 0 && stats["defense_entries"] > 0
    });
}
