//! A network namespace for running the program with BPF_PROG_TEST_RUN as on a director: a veth
//! whose routes and permanent neighbours reach the engine fixtures' addresses, so the
//! program's FIB lookups succeed. Shared by the differential tests and the benchmark.

use std::process::Command;

/// The neighbours' MAC (the program writes it as the destination).
pub const NEIGH_MAC: &str = "02:00:00:00:00:99";

/// Runs a command (`ip`, `sysctl`, `mount`), failing the test with its stderr if it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run ip/sysctl");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets `addr`'s permanent neighbour entry on rvs0 to `mac`.
pub fn neighbour(addr: &str, mac: &str) {
    sh(&[
        "ip",
        "neigh",
        "replace",
        addr,
        "lladdr",
        mac,
        "dev",
        "rvs0",
        "nud",
        "permanent",
    ]);
}

/// Moves this thread into a new network namespace with a veth `rvs0` that reaches the fixture
/// addresses (routes and permanent neighbours), forwarding on. Returns rvs0's ifindex. The
/// namespace goes away with the thread.
pub fn enter_lab() -> u32 {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns (root?)");
    sh(&["ip", "link", "set", "lo", "up"]);
    sh(&[
        "ip", "link", "add", "rvs0", "type", "veth", "peer", "name", "rvs1",
    ]);
    sh(&["ip", "link", "set", "rvs0", "up"]);
    sh(&["ip", "link", "set", "rvs1", "up"]);
    sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    sh(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    sh(&["ip", "addr", "add", "192.168.7.1/24", "dev", "rvs0"]);
    sh(&["ip", "route", "add", "203.0.113.0/24", "dev", "rvs0"]);
    sh(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd00:7::1/64",
        "dev",
        "rvs0",
        "nodad",
    ]);
    sh(&["ip", "-6", "route", "add", "2001:db8:c::/64", "dev", "rvs0"]);
    for n in [
        "192.168.7.10",
        "192.168.7.11",
        "203.0.113.5",
        "fd00:7::10",
        "2001:db8:c::5",
    ] {
        neighbour(n, NEIGH_MAC);
    }
    let index = std::fs::read_to_string("/sys/class/net/rvs0/ifindex")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    // /sys shows the namespace of whoever mounted it; ask ip instead when it disagrees.
    index.unwrap_or_else(|| {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "rvs0"])
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout)
            .split(':')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .expect("rvs0's ifindex")
    })
}

/// Runs `body` on a thread of its own inside the lab namespace.
pub fn in_lab(body: impl FnOnce(u32) + Send + 'static) {
    std::thread::spawn(move || {
        let ifindex = enter_lab();
        body(ifindex);
    })
    .join()
    .expect("lab thread");
}
