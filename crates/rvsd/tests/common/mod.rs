//! Helpers shared by the end-to-end tests: a running director in seed 004's topology, rvsadm
//! and curl wrappers that fail the test with the tool's own output.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rvs_lab::{Director, NatTopology};

/// The VIP of seed 004 (the director's outside address).
pub const VIP: &str = "192.168.1.253";

/// A topology with real servers and a running rvsd.
pub fn director(tag: &str, real_servers: usize) -> NatTopology {
    let topo = NatTopology::build(tag, real_servers).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    topo.start_rvsd(&[]).expect("start rvsd");
    topo
}

/// Runs rvsadm and returns stdout, failing the test on a non-zero exit.
pub fn adm(topo: &impl Director, args: &[&str]) -> String {
    let out = topo.rvsadm(args).expect("run rvsadm");
    assert!(
        out.status.success(),
        "rvsadm {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs rvsadm expecting failure; returns (exit code, stderr).
pub fn adm_err(topo: &impl Director, args: &[&str]) -> (i32, String) {
    let out = topo.rvsadm(args).expect("run rvsadm");
    assert!(
        !out.status.success(),
        "rvsadm {args:?} unexpectedly succeeded"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `curl URL` from the client namespace, trimmed.
pub fn curl(topo: &impl Director, url: &str) -> String {
    topo.curl(url)
        .expect("curl through the VIP")
        .trim()
        .to_owned()
}

/// One curl process fetching `url` `n` times, each on a new connection; the answers in order.
pub fn curl_many(topo: &NatTopology, url: &str, n: usize) -> Vec<String> {
    curl_many_with(topo, &[], url, n)
}

/// Like [`curl_many`], with extra curl options (e.g. `--interface ADDR` for another source).
pub fn curl_many_with(topo: &NatTopology, extra: &[&str], url: &str, n: usize) -> Vec<String> {
    let mut args = vec!["curl", "-s", "--max-time", "60", "-H", "Connection: close"];
    args.extend_from_slice(extra);
    for _ in 0..n {
        args.push(url);
    }
    let out = topo.lab.exec("client", &args).expect("run curl");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn tally(answers: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for a in answers {
        *counts.entry(a.clone()).or_insert(0) += 1;
    }
    counts
}

/// Polls `rvsadm -Ln` until `pred` holds (bounded).
pub fn wait_listing(topo: &NatTopology, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listing = adm(topo, &["-Ln"]);
        if pred(&listing) || Instant::now() > deadline {
            return listing;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The (ActiveConn, InActConn) of a real server in `rvsadm -Ln` output.
pub fn conns_of(listing: &str, rs: &str) -> (u32, u32) {
    let line = listing
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("-> {rs}")))
        .unwrap_or_else(|| panic!("{rs} not listed in:\n{listing}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    (cols[4].parse().unwrap(), cols[5].parse().unwrap())
}

pub fn add_rr_service(topo: &NatTopology, sched: &str) {
    adm(topo, &["-A", "-t", &format!("{VIP}:80"), "-s", sched]);
    for rip in &topo.rips4 {
        adm(
            topo,
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
}

/// Opens a long-lived connection through the VIP (`GET /hold/SECS`); returns its curl pid.
pub fn hold_connection(topo: &NatTopology, secs: u32) -> u32 {
    topo.lab
        .spawn(
            "client",
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                &format!("http://{VIP}/hold/{secs}"),
            ],
        )
        .expect("spawn a long-lived curl")
}

/// Runs `script` with sh in the client namespace; its stdout lines, trimmed.
pub fn client_sh(topo: &impl Director, script: &str) -> Vec<String> {
    let out = topo
        .lab()
        .sh(rvs_lab::CLIENT, script)
        .expect("run a client script");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

/// Uploads 1 MB of random bytes from the client to `base_url`/upload (the built-in real server
/// answers `<len> <sha256>`) and checks the server received exactly what was sent.
pub fn assert_upload_intact(topo: &impl Director, base_url: &str) {
    const MB: usize = 1 << 20;
    let lines = client_sh(
        topo,
        &format!(
            "f=$(mktemp) && head -c {MB} /dev/urandom > $f && sha256sum $f | cut -d' ' -f1 && \
             curl -s --max-time 30 --data-binary @$f {base_url}/upload; rm -f $f"
        ),
    );
    let sent = lines.first().cloned().unwrap_or_default();
    let answer = lines.get(1).cloned().unwrap_or_default();
    assert!(!sent.is_empty(), "no checksum of the upload: {lines:?}");
    assert_eq!(
        answer,
        format!("{MB} {sent}"),
        "server received different bytes"
    );
}

/// Checks `rvsadm -Ln --stats --exact` for a method whose replies bypass the director (DR, TUN):
/// the service counted `conns` connections and their inbound packets and bytes, and nothing
/// outbound.
pub fn assert_inbound_only_stats(topo: &impl Director, service: &str, conns: u64) {
    let stats = adm(topo, &["-Ln", "--stats", "--exact"]);
    let line = stats
        .lines()
        .find(|l| l.starts_with("TCP") && l.contains(service))
        .unwrap_or_else(|| panic!("no line for {service} in:\n{stats}"));
    let cols: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    // Conns InPkts OutPkts InBytes OutBytes
    assert_eq!(cols.len(), 5, "{line}");
    assert_eq!(cols[0], conns, "connections counted: {stats}");
    assert!(cols[1] >= 4 * conns, "inbound packets counted: {stats}");
    assert!(
        cols[3] > cols[1] * 40,
        "inbound bytes are IP lengths: {stats}"
    );
    assert_eq!(
        (cols[2], cols[4]),
        (0, 0),
        "replies bypass the director: {stats}"
    );
}
