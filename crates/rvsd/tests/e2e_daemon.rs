//! End-to-end tests of the daemon itself: a hostile control socket, clean shutdown and restart after
//! a kill (nftables rules), starting from an ipvsadm-save file. Root required; namespaces are torn
//! down by the topology guard.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{add_rr_service, VIP};
use nix::sys::signal::Signal;
use rvs_lab::Director;
use rvs_lab::{netns, NatTopology, DIRECTOR};

fn nft_tables(topo: &NatTopology) -> Vec<String> {
    let out = topo
        .lab
        .exec(DIRECTOR, &["nft", "list", "tables"])
        .expect("nft list tables");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("rvsd_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn garbage_and_dropped_clients_on_the_control_socket_do_not_hurt_rvsd() {
    let topo = NatTopology::build("ctlgarbage", 2).unwrap();
    topo.start_real_servers().unwrap();
    let rvsd = topo.start_rvsd(&[]).unwrap();
    add_rr_service(&topo, "rr");

    // A line that is not JSON gets an error reply and the connection stays usable.
    let mut s = UnixStream::connect(&rvsd.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"this is not json\n").unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("\"error\""), "{line}");
    s.write_all(b"{\"cmd\":\"get_info\"}\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("1.2.1"), "{line}");
    // What rvsadm would never send is checked by the daemon too (rvs_api::validate, the checks
    // rvsadm makes with the same texts, and what needs the daemon's state): each is refused as
    // an invalid argument, and nothing changes.
    let configuration = || {
        ["-Ln", "-L --timeout", "-L --daemon", "-S -n"].map(|args| {
            topo.rvsadm_ok(&args.split(' ').collect::<Vec<_>>())
                .unwrap()
        })
    };
    let before = configuration();
    let svc = r#"{"proto":"tcp","addr":"192.168.1.253","port":80}"#;
    let edit = |extra: &str| {
        format!(r#"{{"cmd":"edit_service","args":{{"id":{svc},"scheduler":"rr"{extra}}}}}"#)
    };
    let dest = |cmd: &str, extra: &str| {
        format!(
            r#"{{"cmd":"{cmd}","args":{{"service":{svc},"dest":{{"addr":"10.10.10.2","port":80,"method":"masq"{extra}}}}}}}"#
        )
    };
    let tunnel = |t: &str| {
        format!(
            r#"{{"cmd":"add_dest","args":{{"service":{svc},"dest":{{"addr":"10.10.10.9","port":80,"weight":1,"method":"tunnel","tunnel":{t}}}}}}}"#
        )
    };
    let start = |interface: &str, extra: &str| {
        format!(
            r#"{{"cmd":"start_daemon","args":{{"role":"master","mcast_interface":"{interface}","syncid":1,"port":0,"ttl":0{extra}}}}}"#
        )
    };
    let requests = [
        (
            r#"{"cmd":"set_timeouts","args":{"tcp":4294967295,"tcp_fin":0,"udp":0}}"#.to_string(),
            "tcp timeout 4294967295 s is out of range",
        ),
        (
            r#"{"cmd":"set_timeouts","args":{"tcp":0,"tcp_fin":2678401,"udp":0}}"#.to_string(),
            "tcpfin timeout 2678401 s is out of range",
        ),
        (
            edit(r#","local_addrs":["203.0.113.9"]"#),
            "local address 203.0.113.9 is not one of the director's addresses",
        ),
        (
            r#"{"cmd":"del_service","args":{"proto":"fwmark","mark":0,"ipv6":false}}"#.to_string(),
            "invalid fwmark value `0' specified",
        ),
        (
            r#"{"cmd":"add_service","args":{"id":{"proto":"tcp","addr":"192.168.1.253","port":0},"scheduler":"rr"}}"#.to_string(),
            "Zero port specified for non-persistent service",
        ),
        (
            edit(r#","one_packet":true"#),
            "One-Packet Scheduling is only for UDP virtual services",
        ),
        (
            edit(r#","persistence":0"#),
            "persistence timeout 0 s is out of range",
        ),
        (
            edit(r#","persistence":2678401"#),
            "persistence timeout 2678401 s is out of range",
        ),
        (
            edit(r#","persistence":60,"netmask":"ffff::""#),
            "persistence netmask ffff:: is not of the service's address family",
        ),
        (
            edit(r#","sched_flags":["sh-port"]"#),
            "incompatible scheduler flag `sh-port'",
        ),
        (
            edit(r#","sched_flags":["bogus"]"#),
            "invalid scheduler flag `bogus'",
        ),
        (
            edit(r#","local_addrs":["2001:db8::1"]"#),
            "Local addresses (--laddr) must be of the service's address family",
        ),
        (
            edit(r#","local_addrs":["0.0.0.0"]"#),
            "illegal local address `0.0.0.0' specified",
        ),
        (
            dest("edit_dest", r#","weight":4294967295"#),
            "weight 4294967295 is out of range",
        ),
        (
            dest("edit_dest", r#","weight":1,"u_threshold":5,"l_threshold":10"#),
            "Numerical result out of range",
        ),
        (
            dest("add_dest", r#","weight":1"#).replace("10.10.10.2", "2001:db8::2"),
            "Different address family is allowed only for tunneling servers",
        ),
        (
            dest("edit_dest", r#","weight":1,"tunnel":{"kind":"ipip"}"#),
            "Tunnel options conflict with forward method",
        ),
        (
            tunnel(r#"{"kind":"ipip","port":4789}"#),
            "Illegal 'tun-port' option with the 'ipip' tunnel type",
        ),
        (
            tunnel(r#"{"kind":"ipip","checksum":"csum"}"#),
            "Illegal 'tun-csum' option with the 'ipip' tunnel type",
        ),
        (
            tunnel(r#"{"kind":"gre","checksum":"remcsum"}"#),
            "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
        ),
        (
            tunnel(r#"{"kind":"gue"}"#),
            "You need to supply the 'tun-port' option for the 'gue' tunnel type",
        ),
        (
            tunnel(r#"{"kind":"gue","port":0}"#),
            "illegal tunnel port 0 specified",
        ),
        (
            start("", r#","maxlen":0,"group":null"#),
            "illegal mcast-interface `' specified",
        ),
        (
            start("lo", r#","maxlen":0,"group":"10.0.0.1""#),
            "invalid IPv4 mcast-group `10.0.0.1'",
        ),
        (
            start("lo", r#","maxlen":65535,"group":null"#),
            "illegal sync-maxlen 65535 specified",
        ),
        (
            start("lo", r#","maxlen":0,"group":null"#).replace(r#""syncid":1"#, r#""syncid":256"#),
            "malformed",
        ),
    ];
    for (request, refusal) in &requests {
        s.write_all(format!("{request}\n").as_bytes()).unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(
            line.contains(r#""kind":"invalid_argument""#) && line.contains(refusal),
            "{request}: {line}"
        );
        assert_eq!(
            configuration(),
            before,
            "{request} changed the configuration"
        );
    }
    // In one batch, as `rvsadm -R` sends commands: each refused, nothing changed.
    let batchable: Vec<&str> = requests
        .iter()
        .map(|(r, _)| r.as_str())
        .filter(|r| !r.contains("start_daemon"))
        .collect();
    let batch = format!("{{\"cmd\":\"batch\",\"args\":[{}]}}\n", batchable.join(","));
    s.write_all(batch.as_bytes()).unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(
        line.matches(r#""kind":"invalid_argument""#).count(),
        batchable.len(),
        "{line}"
    );
    assert_eq!(
        configuration(),
        before,
        "the batch changed the configuration"
    );

    // Binary junk, an oversized line, and clients that vanish mid-request.
    let mut junk = UnixStream::connect(&rvsd.socket).unwrap();
    junk.write_all(&[0xff, 0x00, 0x13, 0x37, b'\n']).unwrap();
    drop(junk);
    let mut big = UnixStream::connect(&rvsd.socket).unwrap();
    let blob = vec![b'a'; 3 << 20];
    let _ = big.write_all(&blob);
    drop(big);
    for _ in 0..20 {
        let mut half = UnixStream::connect(&rvsd.socket).unwrap();
        let _ = half.write_all(b"{\"cmd\":\"add_serv");
    }

    assert!(topo.lab.exit_status(rvsd.pid).is_none(), "rvsd died");
    let listing = topo.rvsadm_ok(&["-Ln"]).unwrap();
    assert!(listing.contains(&format!("TCP  {VIP}:80 rr")), "{listing}");
    assert_eq!(
        topo.curl(&format!("http://{VIP}/")).unwrap().trim(),
        "hello,10.10.10.2"
    );
}

#[test]
fn sigterm_removes_the_kernel_rules_and_a_killed_rvsd_is_replaced_cleanly() {
    let topo = NatTopology::build("lifecycle", 2).unwrap();
    topo.start_real_servers().unwrap();
    let first = topo.start_rvsd(&[]).unwrap();
    add_rr_service(&topo, "rr");
    assert_eq!(nft_tables(&topo).len(), 1, "one rvsd table while running");

    // SIGTERM, and the lab waits for the exit (SIGKILL only after a 3 s grace, which would leave
    // the table behind and fail the next assertion).
    topo.lab.kill(first.pid);
    assert!(
        nft_tables(&topo).is_empty(),
        "table left after SIGTERM: {:?}",
        nft_tables(&topo)
    );
    assert!(!first.socket.exists(), "socket left after SIGTERM");

    let second = topo.start_rvsd(&[]).unwrap();
    add_rr_service(&topo, "rr");
    assert!(netns::pid_alive(second.pid), "the second rvsd runs");
    netns::signal(second.pid, Signal::SIGKILL);
    assert!(
        topo.lab
            .wait_exit(second.pid, Duration::from_secs(10))
            .is_some(),
        "rvsd did not exit"
    );
    assert_eq!(
        nft_tables(&topo).len(),
        1,
        "a SIGKILLed rvsd leaves its table behind"
    );

    let _third = topo.start_rvsd(&[]).unwrap();
    assert_eq!(
        nft_tables(&topo).len(),
        1,
        "the stale table was replaced, not duplicated"
    );
    add_rr_service(&topo, "rr");
    assert!(topo
        .curl(&format!("http://{VIP}/"))
        .unwrap()
        .starts_with("hello,"));
}

#[test]
fn rvsd_starts_from_an_ipvsadm_save_file() {
    let topo = NatTopology::build("restorefile", 2).unwrap();
    topo.start_real_servers().unwrap();
    let rules = format!(
        "-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r 10.10.10.2:80 -m -w 1\n-a -t {VIP}:80 -r 10.10.10.3:80 -m -w 1\n"
    );
    let file = topo.lab.log_dir().join("rules.save");
    std::fs::write(&file, &rules).unwrap();
    let file = file.to_string_lossy().into_owned();
    topo.start_rvsd(&["--restore", &file]).unwrap();
    assert_eq!(topo.rvsadm_ok(&["-S", "-n"]).unwrap(), rules);
    let a = topo.curl(&format!("http://{VIP}/")).unwrap();
    let b = topo.curl(&format!("http://{VIP}/")).unwrap();
    assert_ne!(a, b, "rr over the restored servers");

    // A broken file is refused with its line number, and rvsd does not start.
    let bad = topo.lab.log_dir().join("bad.save");
    std::fs::write(
        &bad,
        format!("-A -t {VIP}:81 -s rr\n-a -t {VIP}:81 -r nonsense -m\n"),
    )
    .unwrap();
    let rvsd = rvs_lab::find_bin("rvsd").unwrap();
    let out = topo
        .lab
        .exec(
            DIRECTOR,
            &[
                &rvsd.to_string_lossy(),
                "-i",
                "d0",
                "--socket",
                "/run/rvs/never.sock",
                "--restore",
                &bad.to_string_lossy(),
            ],
        )
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.save:2"), "error names file:line: {err}");
    assert!(
        !std::path::Path::new("/run/rvs/never.sock").exists(),
        "a failed start leaves no socket file behind"
    );
}

#[test]
fn a_second_rvsd_on_a_busy_socket_names_the_running_one_and_leaves_it_alone() {
    let topo = NatTopology::build("second", 1).unwrap();
    topo.start_real_servers().unwrap();
    let first = topo.start_rvsd(&[]).unwrap();
    add_rr_service(&topo, "rr");
    let tables = nft_tables(&topo);

    let rvsd = rvs_lab::find_bin("rvsd").unwrap();
    let socket = first.socket.to_string_lossy().into_owned();
    let rvsd = rvsd.to_string_lossy();
    let args = [rvsd.as_ref(), "-i", "d0", "-i", "d1", "--socket", &socket];
    let second = topo.lab.spawn(DIRECTOR, &args).unwrap();
    let status = topo
        .lab
        .wait_exit(second, Duration::from_secs(10))
        .expect("the second rvsd exits");
    assert!(!status.contains("exit status: 0"), "{status}");
    let log = topo.lab.log_of(second);
    assert!(
        log.contains(&format!(
            "another rvsd (pid {}) is already serving",
            first.pid
        )),
        "{log}"
    );
    assert!(
        !log.contains("TUN"),
        "it stopped before touching devices: {log}"
    );

    // The running one keeps its rules, its table and its traffic.
    assert!(
        topo.lab.exit_status(first.pid).is_none(),
        "the first rvsd died"
    );
    assert_eq!(nft_tables(&topo), tables);
    let listing = topo.rvsadm_ok(&["-Ln"]).unwrap();
    assert!(listing.contains(&format!("TCP  {VIP}:80 rr")), "{listing}");
    assert_eq!(
        topo.curl(&format!("http://{VIP}/")).unwrap().trim(),
        "hello,10.10.10.2"
    );
}

/// Descriptors rvsd holds now.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Sets the soft descriptor limit of `pid` (the hard one stays, so it can be raised again).
fn set_nofile(pid: u32, limit: usize) {
    let status = std::process::Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={limit}:")])
        .status()
        .expect("prlimit");
    assert!(status.success(), "prlimit failed");
}

fn get_info(stream: &mut UnixStream) -> String {
    stream.write_all(b"{\"cmd\":\"get_info\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

#[test]
fn out_of_descriptors_the_control_socket_backs_off_and_keeps_serving_its_clients() {
    let topo = NatTopology::build("nofile", 1).unwrap();
    let rvsd = topo.start_rvsd(&[]).unwrap();
    let mut old_client = UnixStream::connect(&rvsd.socket).unwrap();
    old_client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(get_info(&mut old_client).contains("1.2.1"));

    // Room for two more descriptors, then a crowd of clients: accept fails with EMFILE.
    let used = open_fds(rvsd.pid);
    let soft_limit = std::fs::read_to_string(format!("/proc/{}/limits", rvsd.pid))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        .expect("rvsd's descriptor limit");
    set_nofile(rvsd.pid, used + 2);
    let crowd: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&rvsd.socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(3));

    let log = topo.lab.log_of(rvsd.pid);
    let complaints = log
        .lines()
        .filter(|l| l.contains("accept on the control socket failed"))
        .count();
    assert!(
        (1..=2).contains(&complaints),
        "one line per 10 s while accept fails, not one per attempt: {complaints} lines"
    );
    assert!(topo.lab.exit_status(rvsd.pid).is_none(), "rvsd died");
    assert!(
        get_info(&mut old_client).contains("1.2.1"),
        "a connected client is still served"
    );

    // Descriptors back: the waiting clients are served and new ones too.
    set_nofile(rvsd.pid, soft_limit);
    drop(crowd);
    let listing = topo.rvsadm_ok(&["-Ln"]).unwrap();
    assert!(
        listing.starts_with("IP Virtual Server version"),
        "{listing}"
    );
}
