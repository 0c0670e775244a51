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
}
