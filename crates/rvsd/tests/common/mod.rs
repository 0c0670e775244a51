//! Helpers shared by the end-to-end tests: a running director in seed 004's topology, rvsadm
//! and curl wrappers that fail the test with the tool's own output.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
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

/// `rvsadm --counters` as a map of name to value.
pub fn counters(topo: &impl Director) -> HashMap<String, u64> {
    adm(topo, &["--counters"])
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(char::is_whitespace)?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// One counter of `rvsadm --counters`; fails the test when rvsd has no such counter.
pub fn counter(topo: &impl Director, name: &str) -> u64 {
    *counters(topo)
        .get(name)
        .unwrap_or_else(|| panic!("no counter {name} in rvsadm --counters"))
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

/// Polls `rvsadm -Ln` until `pred` holds and returns that listing; fails the test if it does
/// not hold within 10 s.
pub fn wait_listing(topo: &NatTopology, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listing = adm(topo, &["-Ln"]);
        if pred(&listing) {
            return listing;
        }
        assert!(
            Instant::now() <= deadline,
            "rvsadm -Ln did not reach the expected state within 10 s:\n{listing}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until one of the two real servers (10.10.10.2, 10.10.10.3 on port 80) shows a held
/// connection as ActiveConn 1 and the other 0; returns (that server, the other one).
pub fn busy_and_other(topo: &NatTopology) -> (&'static str, &'static str) {
    let listing = wait_listing(topo, |l| {
        l.lines()
            .any(|x| x.contains("Masq") && x.split_whitespace().nth(4) == Some("1"))
    });
    let (a, b) = ("10.10.10.2", "10.10.10.3");
    let pair = if conns_of(&listing, &format!("{a}:80")).0 == 1 {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(
        conns_of(&listing, &format!("{}:80", pair.0)).0,
        1,
        "{listing}"
    );
    assert_eq!(
        conns_of(&listing, &format!("{}:80", pair.1)).0,
        0,
        "{listing}"
    );
    pair
}

/// Two real servers behind `VIP:80` with scheduler `sched`, one of them holding a long-lived
/// connection: each of `rounds` new connections must go to the other, idle one. Between
/// rounds it waits until the short connection has left ESTABLISHED (its FIN passed the
/// director): until then it weighs as much as the held one, and IPVS breaks that tie by list
/// order. The listing names the scheduler.
pub fn prefers_idle_server(sched: &str, rounds: usize) {
    let topo = director(sched, 2);
    add_rr_service(&topo, sched);
    let _held = hold_connection(&topo, 20);
    let (_busy, idle) = busy_and_other(&topo);
    for _ in 0..rounds {
        assert_eq!(
            curl(&topo, &format!("http://{VIP}/")),
            format!("hello,{idle}"),
            "{sched}: a new connection must go to the server without the long-lived one"
        );
        let listing = wait_listing(&topo, |l| {
            l.lines()
                .find(|x| x.contains(&format!("-> {idle}:80")))
                .is_some_and(|x| x.split_whitespace().nth(4) == Some("0"))
        });
        assert_eq!(conns_of(&listing, &format!("{idle}:80")).0, 0, "{listing}");
    }
    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!("TCP  {VIP}:80 {sched}\n")),
        "{listing}"
    );
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

/// Downloads `len` bytes of the built-in server's pattern (`base_url`/bytes/`len`) from the
/// client and checks they arrived intact (their SHA-256).
pub fn assert_download_intact(topo: &impl Director, base_url: &str, len: usize) {
    let got = client_sh(
        topo,
        &format!("curl -s --max-time 30 {base_url}/bytes/{len} | sha256sum | cut -d' ' -f1"),
    );
    assert_eq!(
        got.first().map(String::as_str),
        Some(rvs_lab::pattern_sha256(len).as_str()),
        "downloaded bytes from {base_url}/bytes/{len} differ"
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

/// A bpf filesystem of the test's own, mounted on the host so that every `ip netns exec` (which
/// remounts /sys) sees it; unmounted when dropped.
pub struct Bpffs {
    dir: PathBuf,
}

impl Bpffs {
    /// Mounts a fresh bpffs for the test `tag`: a directory of its own even when tests running
    /// at once give the same tag (two sharing one would adopt each other's maps, and the first
    /// to end would unmount the other's).
    pub fn mount(tag: &str) -> Bpffs {
        static MOUNTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MOUNTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("rvs-e2e-bpffs-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let ok = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mounting a bpffs at {}", dir.display());
        Bpffs { dir }
    }

    /// The pin directory to give rvsd (`--bpf-pin-dir`).
    pub fn pins(&self) -> PathBuf {
        self.dir.join("rvs")
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Readies the NAT topology's veths for the program at XDP: the peers that receive redirected
/// frames run NAPI (GRO on) and the senders send complete checksums (tx offload off).
pub fn prepare_xdp_veths(topo: &NatTopology) {
    let lab = &topo.lab;
    let ethtool = |role: &str, iface: &str| {
        let out = lab
            .exec(role, &["ethtool", "-K", iface, "tx", "off", "gro", "on"])
            .expect("ethtool");
        assert!(
            out.status.success(),
            "ethtool -K {iface} in {role}: {out:?}"
        );
    };
    ethtool(rvs_lab::CLIENT, "eth0");
    for index in 0..topo.rips4.len() {
        ethtool(&format!("rs{}", index + 1), "eth0");
    }
    let ports = lab
        .exec("switch", &["ls", "/sys/class/net"])
        .expect("switch ports");
    for port in String::from_utf8_lossy(&ports.stdout).split_whitespace() {
        if port != "lo" {
            let _ = lab.exec("switch", &["ethtool", "-K", port, "tx", "off", "gro", "on"]);
        }
    }
}

/// rvsd's arguments for the BPF plane at tc with its maps pinned under `pins`.
pub fn bpf_args(pins: &Path) -> Vec<String> {
    vec![
        "--dataplane".into(),
        "tc".into(),
        "--bpf-pin-dir".into(),
        pins.display().to_string(),
    ]
}

/// Connections the program holds, read from its pinned `conns` map with bpftool.
pub fn pinned_connections(pins: &Path) -> usize {
    pinned_entries(pins, "conns")
}

/// Entries of the program's pinned map `map`, read with bpftool.
fn pinned_entries(pins: &Path, map: &str) -> usize {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(pins.join(map))
        .output()
        .expect("bpftool");
    let text = String::from_utf8_lossy(&out.stdout);
    text.matches("\"key\"").count()
}

/// Waits (5 s at most) until the BPF plane has published `services` services into its
/// pinned maps: rvsd publishes a change within 100 ms, and a packet that comes before is not
/// the program's yet.
pub fn wait_published(pins: &Path, services: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pinned_entries(pins, "services") < services {
        assert!(
            Instant::now() < deadline,
            "the BPF plane did not publish {services} services"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `GET /hold/S` download (the real server sends one byte a second for S seconds) running
/// in the background from the client; its body lands in a file when curl ends.
pub struct HeldDownload {
    result: std::path::PathBuf,
    secs: usize,
}

impl HeldDownload {
    /// Starts `curl http://ADDR/hold/SECS` in the client namespace (`tag` names the file).
    pub fn start(topo: &impl Director, addr: &str, secs: usize, tag: &str) -> HeldDownload {
        let result =
            std::env::temp_dir().join(format!("rvs-e2e-hold-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&result);
        client_sh(
            topo,
            &format!(
                "(curl -s --max-time 40 http://{addr}/hold/{secs} > {r}.tmp; mv {r}.tmp {r}) >/dev/null 2>&1 &",
                r = result.display()
            ),
        );
        HeldDownload { result, secs }
    }

    /// Whether curl has ended.
    pub fn ended(&self) -> bool {
        self.result.exists()
    }

    /// Waits (bounded) for curl to end and checks that every byte arrived.
    pub fn assert_intact(self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !self.ended() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        let got = std::fs::read(&self.result).unwrap_or_default();
        let want: Vec<u8> = (0..self.secs as u64).map(rvs_lab::pattern_byte).collect();
        assert_eq!(got, want, "every byte of the download arrived ({what})");
    }
}

impl Drop for HeldDownload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.result);
    }
}

/// IPVS leaves a flushed service's connections in its table (their real servers in the
/// trash): an `ipvsadm -C` then `ipvsadm -R` of the saved rules, as a reload does, loses no
/// connection. Checks that on `topo`'s director (any data plane), its services set up by
/// `setup` (port 80 of the VIP served): the client's packets in between are dropped (the
/// kernel answers none of them), the server's still reach it, and a held download ends intact
/// (`tag` names its file).
pub fn clear_then_restore_keeps_a_download(
    topo: &NatTopology,
    tag: &str,
    setup: impl Fn(&NatTopology),
) {
    setup(topo);
    let saved = adm(topo, &["-S", "-n"]);
    let held = HeldDownload::start(topo, VIP, 6, tag);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !adm(topo, &["-Lnc"]).contains("ESTABLISHED") {
        assert!(Instant::now() < deadline, "the download did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    adm(topo, &["-C"]);
    assert_eq!(adm(topo, &["-S", "-n"]), "");
    let listing = adm(topo, &["-Lnc"]);
    // One line: the client's connection, established, to a real server.
    assert!(
        listing.lines().any(|l| l.contains("ESTABLISHED")
            && l.contains("192.168.1.2:")
            && l.contains("10.10.10.")),
        "the connection outlives its service: {listing}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !held.ended(),
        "the download ended while its service was gone"
    );
    restore(topo, &saved);
    held.assert_intact("through -C and -R");
}

/// Runs `rvsadm -R` with `rules` on its standard input; it must succeed.
pub fn restore(topo: &impl Director, rules: &str) {
    let out = topo
        .rvsadm_stdin(&["-R"], rules.as_bytes())
        .expect("run rvsadm -R");
    assert!(
        out.status.success(),
        "rvsadm -R: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The numeric columns of the line of `rvsadm -Ln --stats|--rate --exact` that starts with `key`.
pub fn columns(listing: &str, key: &str) -> Vec<u64> {
    let line = listing
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no line for {key} in:\n{listing}"));
    line.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// The program's counters (`rvs_bpf::maps::STAT_NAMES`), summed over CPUs, read from its
/// pinned `stats` map with bpftool.
pub fn program_stats(pins: &Path) -> HashMap<&'static str, u64> {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(pins.join("stats"))
        .output()
        .expect("bpftool");
    let text = String::from_utf8_lossy(&out.stdout);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text).expect("bpftool's JSON");
    let mut stats = HashMap::new();
    for entry in entries {
        // With BTF, bpftool adds the decoded entry under "formatted".
        let entry = entry.get("formatted").cloned().unwrap_or(entry);
        let index = entry["key"].as_u64().expect("key") as usize;
        let sum = entry["values"]
            .as_array()
            .expect("per-CPU values")
            .iter()
            .filter_map(|v| v["value"].as_u64())
            .sum();
        if let Some(name) = rvs_bpf::maps::STAT_NAMES.get(index) {
            stats.insert(*name, sum);
        }
    }
    stats
}

/// Health checks on the client's path (issue 16, rvs's `client_path`) against two real servers
/// `rips` of `lb_kind` (DR or TUN) behind `vip`: port 80 is checked on the client's path (a
/// TCP_CHECK and an HTTP_GET with each server's page digest, over rvsd's own TCP), port 8080
/// with plain TCP_CHECKs. Real server 2 then loses the VIP from its
/// `lo` but still listens on its own address: the client-path check removes it from port 80
/// (clients only reach real server 1, which answers `rs1_text`), the plain one keeps it on
/// 8080; with the VIP back it returns. `start` starts rvsd with the given arguments.
pub fn assert_client_path_checks(
    topo: &impl Director,
    lb_kind: &str,
    vip: std::net::IpAddr,
    rips: &[std::net::IpAddr],
    rs1_text: &str,
    start: impl FnOnce(&[&str]),
) {
    use std::net::SocketAddr;
    // Each server's page digest, as HTTP_GET's `digest` wants it (MD5 of the body).
    let digest = |rip: std::net::IpAddr| {
        let out = client_sh(
            topo,
            &format!("curl -s http://{rip}/ | md5sum | cut -d' ' -f1"),
        );
        out.first().cloned().unwrap_or_default()
    };
    let real_server = |rip: std::net::IpAddr, port: u16, client_path: bool| {
        // On the client's path: a TCP_CHECK and an HTTP_GET of the server's own page (so a
        // page from another server would fail it). Otherwise a plain TCP_CHECK.
        let checks = if client_path {
            format!(
                "        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            \
                 client_path\n        }}\n        HTTP_GET {{\n            url {{\n                \
                 path /\n                digest {}\n            }}\n            connect_timeout 1\n            \
                 retry 1\n            client_path\n        }}\n",
                digest(rip)
            )
        } else {
            "        TCP_CHECK {\n            connect_timeout 1\n            retry 1\n        }\n"
                .into()
        };
        format!("    real_server {rip} {port} {{\n        weight 1\n{checks}    }}\n")
    };
    let service = |port: u16, client_path: bool| {
        format!(
            "virtual_server {vip} {port} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind {lb_kind}\n    \
             protocol TCP\n{}{}}}\n",
            real_server(rips[0], port, client_path),
            real_server(rips[1], port, client_path)
        )
    };
    let conf = service(80, true) + &service(8080, false);
    let path = topo
        .lab()
        .write_file("keepalived.conf", &conf)
        .expect("conf");
    let path = path.display().to_string();
    start(&["-f", &path]);
    // "-> RIP:80 " (with the space: RIP:8080 starts the same).
    let listed = |port: u16, rip: std::net::IpAddr| {
        adm(topo, &["-Ln"]).contains(&format!("-> {} ", SocketAddr::new(rip, port)))
    };
    let wait = |what: &str, pred: &dyn Fn() -> bool| {
        let took = rvs_lab::wait_for(Duration::from_secs(20), pred)
            .unwrap_or_else(|| panic!("{what}:\n{}", adm(topo, &["-Ln"])));
        eprintln!("{lb_kind}: {what}: {took:?}");
    };
    wait("both servers listed", &|| {
        listed(80, rips[0]) && listed(80, rips[1])
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        listed(80, rips[0]) && listed(80, rips[1]),
        "{lb_kind}: client-path checks keep passing:\n{}",
        adm(topo, &["-Ln"])
    );

    // Real server 2 loses the VIP from lo: it still listens on its own address.
    let rs2 = rvs_lab::rs_role(1);
    let lo = |op: &str| {
        let out = topo
            .lab()
            .exec(&rs2, &["ip", "addr", op, &format!("{vip}/32"), "dev", "lo"])
            .expect("ip addr");
        assert!(out.status.success(), "{out:?}");
    };
    lo("del");
    wait("the client-path check removes real server 2", &|| {
        !listed(80, rips[1])
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        listed(8080, rips[1]),
        "{lb_kind}: the plain TCP_CHECK still passes real server 2 on its own address:\n{}",
        adm(topo, &["-Ln"])
    );
    assert!(listed(80, rips[0]), "{lb_kind}: real server 1 stays");
    // Both of real server 2's client-path checkers fail, the HTTP_GET on the path itself (a
    // connection to the server's own address would still get its page).
    let health = adm(topo, &["--health"]);
    let rs2_checks: Vec<&str> = health
        .lines()
        .skip_while(|l| !l.contains(&format!("{} ", SocketAddr::new(rips[1], 80))))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("->"))
        .collect();
    for kind in ["TCP_CHECK", "HTTP_GET"] {
        assert!(
            rs2_checks
                .iter()
                .any(|l| l.contains(kind) && l.contains(" fail ")),
            "{lb_kind}: {kind} fails on real server 2:\n{health}"
        );
    }
    assert!(
        rs2_checks
            .iter()
            .any(|l| l.contains("HTTP_GET") && l.contains("client path")),
        "{lb_kind}: HTTP_GET failed on the client's path:\n{health}"
    );
    let url = format!("http://{}/", SocketAddr::new(vip, 80));
    for _ in 0..6 {
        assert_eq!(
            curl(topo, &url),
            rs1_text,
            "only real server 1 serves port 80"
        );
    }
    lo("add");
    wait("real server 2 comes back", &|| listed(80, rips[1]));
}
