//! End-to-end tests of link faults on the director's data-plane interfaces (issue 10), in seed
//! 004's NAT topology (client -> director d0 / d1 -> real servers): a link taken down and up
//! again, and an interface removed and re-created under the same name, each under a stream of
//! requests through the VIP. rvsd must stay idle while a link is down or gone (a socket error
//! left pending once made every worker spin at 100% CPU) and forward again by itself once the
//! link is back. They need root; every topology is torn down by its guard, also when an
//! assertion fails.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rvs_lab::{rs_role, Director, NatTopology, Rvsd, CLIENT, DIRECTOR, SWITCH};

/// CPU time rvsd may use over [`WINDOW`] while a link is down or gone. A spinning worker burns
/// about a whole window, an idle rvsd next to nothing: a bug check with a wide margin.
const IDLE_CPU_LIMIT: f64 = 0.3;
/// The window over which rvsd's CPU time is measured.
const WINDOW: Duration = Duration::from_secs(1);
/// How long forwarding may take to resume once the link is back.
const RECOVERY: Duration = Duration::from_secs(30);
/// How long the background request loop runs at most (it is also stopped at teardown).
const TRAFFIC_SECS: u32 = 120;

/// The NAT topology with two real servers behind `VIP:80` (rr, masquerading), rvsd running and
/// forwarding, and a bounded loop of requests through the VIP running in the client.
fn setup(tag: &str) -> (NatTopology, Rvsd) {
    let topo = NatTopology::build(tag, 2).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    let rvsd = topo.start_rvsd(&[]).expect("start rvsd");
    add_rr_service(&topo, "rr");
    wait_forwarding(&topo, "at start");
    let script = format!(
        "end=$(( $(date +%s) + {TRAFFIC_SECS} )); \
         while [ $(date +%s) -lt $end ]; do \
           curl -s -o /dev/null --max-time 1 http://{VIP}/; sleep 0.02; \
         done"
    );
    topo.lab
        .spawn(CLIENT, &["sh", "-c", &script])
        .expect("start the request loop");
    (topo, rvsd)
}

/// Clock ticks per second of /proc's CPU times.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU time process `pid` has used so far, in seconds (all its threads).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/stat (rvsd died?): {e}"));
    // The fields after the command name, which is in parentheses and may hold spaces: the
    // first one is field 3 (state), so utime (field 14) and stime (15) are at 11 and 12.
    let rest = &stat[stat.rfind(')').expect("a /proc stat line") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> u64 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("field {i} of /proc/{pid}/stat: {stat}"))
    };
    (ticks(11) + ticks(12)) as f64 / clock_ticks()
}

/// Fails unless rvsd uses less than [`IDLE_CPU_LIMIT`] of CPU over the next [`WINDOW`].
fn assert_idle(rvsd: &Rvsd, what: &str) {
    let before = cpu_seconds(rvsd.pid);
    std::thread::sleep(WINDOW);
    let used = cpu_seconds(rvsd.pid) - before;
    eprintln!("{what}: rvsd used {used:.2} s of CPU in {WINDOW:?}");
    assert!(
        used < IDLE_CPU_LIMIT,
        "{what}: rvsd used {used:.2} s of CPU in {WINDOW:?} (a worker spins)"
    );
}

/// Waits (bounded by [`RECOVERY`]) until a request through the VIP gets a real server's answer.
fn wait_forwarding(topo: &NatTopology, what: &str) {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let last = topo.curl(&format!("http://{VIP}/"));
        if last.as_deref().is_ok_and(|body| body.starts_with("hello,")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no answer through the VIP within {RECOVERY:?}; last: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A burst of new connections through the VIP all get a real server's answer.
fn assert_steady(topo: &NatTopology, what: &str) {
    let answers = curl_many(topo, &format!("http://{VIP}/"), 20);
    assert_eq!(answers.len(), 20, "{what}: {answers:?}");
    assert!(
        answers.iter().all(|a| a.starts_with("hello,")),
        "{what}: {answers:?}"
    );
}

#[test]
fn a_link_down_leaves_rvsd_idle_and_up_resumes_forwarding() {
    let (topo, rvsd) = setup("lnkdown");
    for dev in ["d1", "d0"] {
        let errors_before = counters(&topo)
            .get("rx_socket_errors")
            .copied()
            .unwrap_or(0);
        topo.lab
            .ip(DIRECTOR, &[format!("link set {dev} down")])
            .expect("link down");
        assert_idle(&rvsd, &format!("{dev} down"));
        let errors = counters(&topo)
            .get("rx_socket_errors")
            .copied()
            .unwrap_or(0);
        assert!(
            errors > errors_before,
            "{dev} down: the sockets' pending errors were not counted ({errors_before} -> {errors})"
        );
        topo.lab
            .ip(DIRECTOR, &[format!("link set {dev} up")])
            .expect("link up");
        wait_forwarding(&topo, &format!("{dev} back up"));
        assert_steady(&topo, &format!("{dev} back up"));
        assert!(
            topo.lab.exit_status(rvsd.pid).is_none(),
            "rvsd exited: {}",
            topo.lab.log_of(rvsd.pid)
        );
    }
}

#[test]
fn b_removed_and_recreated_interface_is_picked_up_again() {
    let (topo, rvsd) = setup("lnkdel");
    let reopens_before = counters(&topo)
        .get("rx_socket_reopens")
        .copied()
        .unwrap_or(0);
    // Deleting d1 deletes its peer p0 (the switch's port) too.
    topo.lab
        .ip(DIRECTOR, &["link del d1".to_string()])
        .expect("delete d1");
    assert_idle(&rvsd, "d1 deleted");

    // Re-created as the lab builds it: the veth pair, p0 back on the bridge, d1's addresses
    // (their connected routes come with them). d1 gets a new index and a new MAC.
    topo.lab
        .ip(
            DIRECTOR,
            &[format!(
                "link add d1 type veth peer name p0 netns {}",
                topo.lab.ns(SWITCH)
            )],
        )
        .expect("re-create d1");
    topo.lab
        .ip(
            SWITCH,
            &[
                "link set p0 master br0".to_string(),
                "link set p0 up".to_string(),
            ],
        )
        .expect("p0 back on the bridge");
    assert_idle(&rvsd, "d1 re-created, still down");
    topo.lab
        .ip(
            DIRECTOR,
            &[
                format!("addr add {}/24 dev d1", topo.dip4),
                format!("addr add {}/64 dev d1 nodad", topo.dip6),
                "link set d1 up".to_string(),
            ],
        )
        .expect("d1 addresses and up");
    // The real servers still map the director's inside address to the old d1's MAC (as after
    // a real NIC swap, until gratuitous ARP or NUD probing corrects it); forget it rather than
    // wait for their neighbour timers.
    for index in 0..topo.rips4.len() {
        topo.lab
            .ip(&rs_role(index), &["neigh flush dev eth0".to_string()])
            .expect("flush a real server's neighbours");
    }
    wait_forwarding(&topo, "d1 re-created");
    assert_steady(&topo, "d1 re-created");
    let reopens = counters(&topo)
        .get("rx_socket_reopens")
        .copied()
        .unwrap_or(0);
    assert!(
        reopens > reopens_before,
        "the sockets on the new d1 were not counted as re-opened ({reopens_before} -> {reopens})"
    );
    assert!(
        topo.lab.exit_status(rvsd.pid).is_none(),
        "rvsd exited: {}",
        topo.lab.log_of(rvsd.pid)
    );
}
