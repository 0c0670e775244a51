//! NatTopology and Lab against the real kernel: reachability, the real servers, teardown.

use rvs_lab::Director;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::Duration;

use rvs_lab::{netns, Lab, NatTopology, CLIENT, DIRECTOR};

fn assert_ok(output: std::process::Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn namespaces_with(prefix: &str) -> Vec<String> {
    netns::list()
        .expect("list")
        .into_iter()
        .filter(|name| name.starts_with(&format!("{prefix}-")))
        .collect()
}

#[test]
fn nat_topology_reaches_everything() {
    let topo = NatTopology::build("nat", 2).expect("build");
    let lab = &topo.lab;
    let prefix = lab.prefix().to_string();
    assert_eq!(namespaces_with(&prefix).len(), 5);

    for (from, to, ip) in [
        (CLIENT, DIRECTOR, IpAddr::V4(topo.vip4)),
        (CLIENT, DIRECTOR, IpAddr::V6(topo.vip6)),
        (DIRECTOR, "rs1", IpAddr::V4(topo.rips4[0])),
        (DIRECTOR, "rs2", IpAddr::V4(topo.rips4[1])),
        (DIRECTOR, "rs2", IpAddr::V6(topo.rips6[1])),
        ("rs1", DIRECTOR, IpAddr::V6(topo.dip6)),
        // Through the director by plain forwarding (ip_forward=1, default routes).
        (CLIENT, "rs1", IpAddr::V4(topo.rips4[0])),
        (CLIENT, "rs2", IpAddr::V6(topo.rips6[1])),
    ] {
        lab.probe_tcp(from, to, ip)
            .unwrap_or_else(|e| panic!("{from} -> {to} {ip}: {e}"));
    }

    topo.start_real_servers().expect("real servers");
    let out = lab
        .exec(
            DIRECTOR,
            &["curl", "-sS", "--max-time", "5", "http://10.10.10.2/"],
        )
        .expect("curl");
    assert_eq!(assert_ok(out, "curl rs1"), "hello,10.10.10.2\n");
    let out = lab
        .exec(
            DIRECTOR,
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "http://[2001:db8:10::3]:8080/",
            ],
        )
        .expect("curl");
    assert_eq!(assert_ok(out, "curl rs2 over IPv6"), "hello,10.10.10.3\n");

    // Plain routing through the director (no rvsd yet) keeps the client's address.
    assert_eq!(
        topo.curl("http://10.10.10.3/whoami")
            .expect("routed curl")
            .split(':')
            .next(),
        Some("192.168.1.2")
    );
    let upload = lab
        .sh(
            CLIENT,
            "head -c 100000 /dev/zero | curl -sS --max-time 5 --data-binary @- http://10.10.10.2/upload",
        )
        .expect("upload");
    let expected = Command::new("sh")
        .args(["-c", "head -c 100000 /dev/zero | sha256sum"])
        .output()
        .expect("sha256sum");
    let expected = String::from_utf8_lossy(&expected.stdout);
    let digest = expected.split_whitespace().next().unwrap_or_default();
    assert_eq!(assert_ok(upload, "upload"), format!("100000 {digest}\n"));

    // UDP from the director through a socket made inside its namespace.
    let rip = topo.rips4[0];
    let answer = lab.in_netns(DIRECTOR, move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        socket.send_to(b"x", (rip, 5353)).expect("send");
        let mut buf = [0u8; 64];
        let (n, _) = socket.recv_from(&mut buf).expect("recv");
        buf[..n].to_vec()
    });
    assert_eq!(answer, b"hello,10.10.10.2\n");

    drop(topo);
    assert!(namespaces_with(&prefix).is_empty());
}

#[test]
fn teardown_happens_when_a_test_panics() {
    let mut seen = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new("panic").expect("lab");
        lab.add_ns("a").expect("ns");
        let pid = lab.spawn("a", &["sleep", "300"]).expect("spawn");
        seen = Some((lab.prefix().to_string(), pid));
        panic!("deliberate");
    }));
    assert!(result.is_err());
    let (prefix, pid) = seen.expect("ran");
    assert!(namespaces_with(&prefix).is_empty());
    // The kill is delivered asynchronously: give the process a moment to die.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while netns::pid_alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!netns::pid_alive(pid));
}

#[test]
fn spawn_kill_and_in_netns() {
    let mut lab = Lab::new("misc").expect("lab");
    let name = lab.add_ns("box").expect("ns");
    assert!(netns::exists(&name));
    assert!(lab.add_ns("Bad-Role").is_err());

    let pid = lab.spawn("box", &["sleep", "300"]).expect("spawn");
    assert!(netns::pid_alive(pid));
    // `ip netns exec` enters the namespace just after the spawn returns.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while netns::pids(&name) != vec![pid] && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(netns::pids(&name), vec![pid]);
    lab.kill(pid);
    assert!(!netns::pid_alive(pid));

    // A listener made inside the namespace is not reachable from the root namespace.
    let port = lab.in_netns("box", || {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::mem::forget(listener);
        port
    });
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    lab.wait_tcp("box", addr, Duration::from_secs(2))
        .expect("reachable inside");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
    assert!(lab.try_in_netns("absent", || ()).is_err());

    let out = lab.sh("box", "echo $((6*7))").expect("sh");
    assert_eq!(assert_ok(out, "sh"), "42\n");

    lab.teardown();
    lab.teardown();
    assert!(!netns::exists(&name));
    assert!(lab.spawn("box", &["true"]).is_err());
}

#[test]
fn down_and_sweep_remove_labs() {
    // `down` removes a kept lab and the processes in it.
    let mut lab = Lab::new("down").expect("lab");
    lab.add_ns("x").expect("ns");
    let pid = lab.spawn("x", &["sleep", "300"]).expect("spawn");
    let prefix = lab.prefix().to_string();
    lab.keep();
    drop(lab);
    assert_eq!(namespaces_with(&prefix).len(), 1);
    // Its control sockets (plain files stand in for them) go too; another lab's stay.
    std::fs::create_dir_all("/run/rvs").expect("/run/rvs");
    let ours = [
        rvs_lab::socket_path_for(&prefix),
        rvs_lab::role_socket_path_for(&prefix, "director2"),
    ];
    let theirs = rvs_lab::role_socket_path_for(&format!("{prefix}0"), "director2");
    for path in ours.iter().chain([&theirs]) {
        std::fs::write(path, b"").expect("a stand-in socket");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rvs-lab"))
        .args(["down", &prefix])
        .output()
        .expect("rvs-lab down");
    assert_ok(out, "rvs-lab down");
    assert!(namespaces_with(&prefix).is_empty());
    assert!(ours.iter().all(|p| !p.exists()), "{ours:?}");
    assert!(theirs.exists(), "another lab's socket stays");
    let _ = std::fs::remove_file(&theirs);
    // The kill is delivered asynchronously: give the process a moment to die.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while netns::pid_alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!netns::pid_alive(pid));

    // `sweep` removes a lab whose owner is gone (a pid that does not exist).
    let dead = (100_000u32..4_000_000)
        .step_by(7919)
        .find(|&pid| !netns::pid_alive(pid))
        .expect("a free pid");
    let name = format!("rvssweep-{dead}-0-x");
    let out = Command::new("ip")
        .args(["netns", "add", &name])
        .output()
        .expect("ip");
    assert_ok(out, "ip netns add");
    let swept = rvs_lab::sweep().expect("sweep");
    assert!(swept.contains(&format!("rvssweep-{dead}-0")), "{swept:?}");
    assert!(!netns::exists(&name));
    assert!(rvs_lab::down("not-a-prefix").is_err());
}
