//! End-to-end connection synchronization in seed 002's two-director topology ([`HaTopology`]):
//! both directors run rvsd with the same NAT service; director 1 runs the sync master and
//! director 2 the backup (`--mcast-interface d1`: the sync goes over the inside segment). The
//! VIPs are placed by hand (`move_vips_to`, with gratuitous ARP) until VRRP does it.
//!
//! * Failover: a long-lived `GET /hold/S` download and short connections go through director
//!   1; director 2 lists them; director 1's rvsd is killed (SIGKILL) and the VIPs move: the
//!   download continues without reset and completes intact, new connections succeed.
//! * Resync: a backup started after the connections exist asks for the table and gets it.
//! * Both with the BPF plane (`--dataplane tc`) on both directors: the master sends the
//!   connections the program opened, the backup installs them in its program's table.
//! * Both ways (issue 16's N-way sync): each director runs a master and a backup on one group;
//!   a download through director 1 continues through director 2 and one through director 2
//!   continues back through director 1, so either may take any flow over.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rvs_lab::{HaTopology, CLIENT};

mod common;
use common::{bpf_args, pinned_connections, Bpffs};

/// How long the slow download lasts (one byte per second).
const HOLD_SECS: usize = 14;
/// How soon director 2 must list director 1's connections (the master flushes every 100 ms).
const SYNC_BOUND: Duration = Duration::from_secs(3);

fn adm(topo: &HaTopology, director: usize, args: &[&str]) -> String {
    let out = topo.rvsadm_on(director, args).expect("run rvsadm");
    assert!(
        out.status.success(),
        "rvsadm on director {} {args:?} failed: {}{}",
        director + 1,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Both real servers behind `VIP:80` (NAT, rr) on director `director`.
fn services(topo: &HaTopology, director: usize) {
    let vip = format!("{}:80", topo.vip);
    adm(topo, director, &["-A", "-t", &vip, "-s", "rr"]);
    for rip in &topo.rips {
        adm(
            topo,
            director,
            &["-a", "-t", &vip, "-r", &format!("{rip}:80"), "-m"],
        );
    }
}

fn setup(tag: &str) -> HaTopology {
    let topo = HaTopology::build(tag, 2).expect("build the HA topology");
    topo.start_real_servers().expect("start the real servers");
    topo
}

/// Starts `curl http://VIP/hold/HOLD_SECS` in the client namespace, body to a file in the lab's
/// log directory; returns the process and the file.
fn start_download(topo: &HaTopology) -> (Child, std::path::PathBuf) {
    start_download_to(topo, "hold.body")
}

/// [`start_download`] with the body in the file `name` of the lab's log directory.
fn start_download_to(topo: &HaTopology, name: &str) -> (Child, std::path::PathBuf) {
    let body = topo.lab.log_dir().join(name);
    let url = format!("http://{}/hold/{HOLD_SECS}", topo.vip);
    let child = topo
        .lab
        .command(
            CLIENT,
            &[
                "curl",
                "-sS",
                "--max-time",
                "60",
                "-o",
                &body.display().to_string(),
                "-w",
                "%{http_code} %{size_download}",
                &url,
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start curl");
    (child, body)
}

/// Waits for the download and checks it: exit status 0, HTTP 200, every byte of the pattern.
fn finish_download(child: Child, body: &std::path::Path) {
    let out = child.wait_with_output().expect("wait for curl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the long download failed: {:?} {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("200 {HOLD_SECS}"));
    let got = std::fs::read(body).expect("read the downloaded body");
    assert_eq!(got, rvs_lab::server::http::pattern(HOLD_SECS));
}

/// Polls director `director`'s `-Lnc` until every client port in `ports` is listed; returns
/// the listing and how long it took.
fn wait_listed(topo: &HaTopology, director: usize, ports: &[u16]) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let l = adm(topo, director, &["-Lnc"]);
        let listed = ports
            .iter()
            .all(|p| l.contains(&format!("{}:{p} ", topo.client)));
        if listed {
            return (l, start.elapsed());
        }
        assert!(
            start.elapsed() < SYNC_BOUND,
            "director {} did not list client ports {ports:?} within {SYNC_BOUND:?}:\n{l}",
            director + 1
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The client ports of the connections director `director` lists.
fn client_ports(topo: &HaTopology, director: usize) -> Vec<u16> {
    let prefix = format!("{}:", topo.client);
    adm(topo, director, &["-Lnc"])
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3))
        .filter_map(|client| client.strip_prefix(&prefix))
        .filter_map(|port| port.parse().ok())
        .collect()
}

/// `curl -s URL` from the client succeeding within `within` (retrying while the VIPs move).
fn curl_within(topo: &HaTopology, url: &str, within: Duration) -> (String, Duration) {
    let start = Instant::now();
    loop {
        match topo.curl(url) {
            Ok(body) => return (body, start.elapsed()),
            Err(e) => assert!(
                start.elapsed() < within,
                "no answer from {url} within {within:?}: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn daemon_line(role: &str) -> String {
    // The effective settings: veth MTU 1500 less 28, the default group, port and TTL.
    format!("{role} sync daemon (mcast=d1, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n")
}

/// Each director's rvsd arguments for the BPF plane, with pins of its own.
fn bpf_planes() -> ([Bpffs; 2], [Vec<String>; 2]) {
    let fs = [Bpffs::mount("sync1"), Bpffs::mount("sync2")];
    let args = [bpf_args(&fs[0].pins()), bpf_args(&fs[1].pins())];
    (fs, args)
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn failover_keeps_established_connections() {
    failover("sync", [&[], &[]], None);
}

#[test]
fn failover_keeps_established_connections_with_the_bpf_plane() {
    let (fs, args) = bpf_planes();
    let backup_pins = fs[1].pins();
    failover(
        "syncbpf",
        [&strs(&args[0]), &strs(&args[1])],
        Some(&backup_pins),
    );
}

/// With the SYN proxy on both BPF planes: the master's program holds the proxied connections
/// the engine handed over and exports them with their shift; the backup's program takes them
/// with it, so after the failover the download goes on through the backup's program, its
/// numbers shifted as the master shifted them.
#[test]
fn failover_keeps_proxied_connections_with_the_bpf_plane() {
    let (fs, args) = bpf_planes();
    let backup_pins = fs[1].pins();
    let [mut master, mut backup] = args;
    for a in [&mut master, &mut backup] {
        a.extend(["--syn-proxy".to_string(), "1".to_string()]);
    }
    failover(
        "syncproxy",
        [&strs(&master), &strs(&backup)],
        Some(&backup_pins),
    );
}

/// `backup_pins`: the backup's BPF pins, whose program (not its engine) must hold the synced
/// connections.
fn failover(tag: &str, rvsd_args: [&[&str]; 2], backup_pins: Option<&std::path::Path>) {
    let topo = setup(tag);
    let rvsd1 = topo
        .start_rvsd_on(0, rvsd_args[0])
        .expect("rvsd on director 1");
    topo.start_rvsd_on(1, rvsd_args[1])
        .expect("rvsd on director 2");
    services(&topo, 0);
    services(&topo, 1);
    adm(
        &topo,
        0,
        &["--start-daemon", "master", "--mcast-interface", "d1"],
    );
    adm(
        &topo,
        1,
        &["--start-daemon", "backup", "--mcast-interface", "d1"],
    );
    assert_eq!(adm(&topo, 0, &["-L", "--daemon"]), daemon_line("master"));
    assert_eq!(adm(&topo, 1, &["-l", "--daemon"]), daemon_line("backup"));
    topo.move_vips_to(0).expect("VIPs to director 1");

    let (download, body) = start_download(&topo);
    let url = format!("http://{}/", topo.vip);
    for _ in 0..4 {
        let (text, _) = curl_within(&topo, &url, Duration::from_secs(5));
        assert!(text.starts_with("hello,192.168.168."), "{text}");
    }
    // Director 1's connections, as director 2 must learn them.
    let start = Instant::now();
    let ports = loop {
        let p = client_ports(&topo, 0);
        if p.len() >= 5 || start.elapsed() > Duration::from_secs(5) {
            break p;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ports.len() >= 5, "director 1 lists {ports:?}");
    let (listing, took) = wait_listed(&topo, 1, &ports);
    eprintln!(
        "director 2 listed {} connections after {took:?}:\n{listing}",
        ports.len()
    );
    if let Some(pins) = backup_pins {
        let held = pinned_connections(pins);
        assert!(held >= ports.len(), "the backup's program holds {held}");
    }

    // Director 1 fails; its VIPs go to director 2.
    std::thread::sleep(Duration::from_secs(2));
    topo.crash_rvsd(&rvsd1).expect("kill director 1's rvsd");
    topo.move_vips_to(1).expect("VIPs to director 2");
    let (text, took) = curl_within(&topo, &url, Duration::from_secs(5));
    assert!(text.starts_with("hello,192.168.168."), "{text}");
    eprintln!("first new connection through director 2 after {took:?}");
    for _ in 0..3 {
        let (text, _) = curl_within(&topo, &url, Duration::from_secs(2));
        assert!(text.starts_with("hello,192.168.168."), "{text}");
    }
    finish_download(download, &body);
    assert_eq!(adm(&topo, 1, &["-L", "--daemon"]), daemon_line("backup"));
}

#[test]
fn backup_started_late_resyncs_the_table() {
    resync("resync", [&[], &[]]);
}

#[test]
fn backup_started_late_resyncs_the_table_with_the_bpf_plane() {
    let (_fs, args) = bpf_planes();
    resync("resyncbpf", [&strs(&args[0]), &strs(&args[1])]);
}

fn resync(tag: &str, rvsd_args: [&[&str]; 2]) {
    let topo = setup(tag);
    topo.start_rvsd_on(0, rvsd_args[0])
        .expect("rvsd on director 1");
    topo.start_rvsd_on(1, rvsd_args[1])
        .expect("rvsd on director 2");
    services(&topo, 0);
    services(&topo, 1);
    adm(
        &topo,
        0,
        &["--start-daemon", "master", "--mcast-interface", "d1"],
    );
    topo.move_vips_to(0).expect("VIPs to director 1");

    let (download, body) = start_download(&topo);
    let url = format!("http://{}/", topo.vip);
    for _ in 0..3 {
        curl_within(&topo, &url, Duration::from_secs(5));
    }
    let start = Instant::now();
    let ports = loop {
        let p = client_ports(&topo, 0);
        if p.len() >= 4 || start.elapsed() > Duration::from_secs(5) {
            break p;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ports.len() >= 4, "director 1 lists {ports:?}");
    // Nothing was sent to a backup yet: director 2 knows none of them.
    assert!(client_ports(&topo, 1).is_empty());

    adm(
        &topo,
        1,
        &["--start-daemon", "backup", "--mcast-interface", "d1"],
    );
    let (listing, took) = wait_listed(&topo, 1, &ports);
    eprintln!("resync: director 2 listed the table after {took:?}:\n{listing}");
    assert_eq!(adm(&topo, 1, &["-L", "--daemon"]), daemon_line("backup"));
    adm(&topo, 1, &["--stop-daemon", "backup"]);
    assert_eq!(adm(&topo, 1, &["-L", "--daemon"]), "");
    finish_download(download, &body);
}

/// `rvsd -f` with keepalived's `lvs_sync_daemon` starts the backup daemon at load.
#[test]
fn lvs_sync_daemon_starts_a_backup() {
    let topo = HaTopology::build("lvssync", 1).expect("build the HA topology");
    let conf = topo.lab.log_dir().join("keepalived.conf");
    std::fs::write(
        &conf,
        "global_defs {\n    lvs_sync_daemon d1 LVS_LAN id 7 port 8850\n}\n",
    )
    .expect("write keepalived.conf");
    let path = conf.display().to_string();
    topo.start_rvsd_on(1, &["-f", &path]).expect("rvsd -f");
    assert_eq!(
        adm(&topo, 1, &["-L", "--daemon"]),
        "backup sync daemon (mcast=d1, syncid=7, maxlen=1472, group=224.0.0.81, port=8850, ttl=1)\n"
    );
}

/// Each director runs a master and a backup (as IPVS allows): the connections of each reach
/// the other, so flows move either way without breaking.
#[test]
fn both_directors_sync_each_other() {
    let topo = setup("syncboth");
    for d in 0..2 {
        topo.start_rvsd_on(d, &[]).expect("rvsd");
        services(&topo, d);
        for role in ["master", "backup"] {
            adm(
                &topo,
                d,
                &["--start-daemon", role, "--mcast-interface", "d1"],
            );
        }
    }
    let listed = adm(&topo, 0, &["-L", "--daemon"]);
    assert!(
        listed.contains(&daemon_line("master")) && listed.contains(&daemon_line("backup")),
        "{listed}"
    );
    // A download through director 1, learnt by director 2.
    topo.move_vips_to(0).expect("VIPs to director 1");
    let (first, first_body) = start_download_to(&topo, "first.body");
    std::thread::sleep(Duration::from_secs(2));
    let ports = client_ports(&topo, 0);
    assert!(!ports.is_empty(), "director 1 holds the download");
    wait_listed(&topo, 1, &ports);
    // Director 2 takes over (no crash: both keep running); a second download starts there and
    // director 1 learns it.
    topo.move_vips_to(1).expect("VIPs to director 2");
    std::thread::sleep(Duration::from_secs(2));
    let (second, second_body) = start_download_to(&topo, "second.body");
    std::thread::sleep(Duration::from_secs(2));
    let before: Vec<u16> = client_ports(&topo, 1)
        .into_iter()
        .filter(|p| !ports.contains(p))
        .collect();
    assert!(!before.is_empty(), "director 2 holds the second download");
    let (_, took) = wait_listed(&topo, 0, &before);
    eprintln!("director 1 learnt director 2's connections after {took:?}");
    // And back: both downloads finish through director 1, intact.
    topo.move_vips_to(0).expect("VIPs back to director 1");
    finish_download(first, &first_body);
    finish_download(second, &second_body);
}
