//! ECMP scale-out end to end (issue 16): three rvsd directors, each announcing the VIP over BGP
//! from its own BIRD (`--bird-include`), behind a router whose BIRD merges the three routes into
//! one multipath route hashed on the 5-tuple; three nginx real servers answer the client
//! directly (DR). The directors share no state: they are configured independently (real servers
//! added in different orders), schedule with mh on the client's address and port, and pick up
//! the non-SYN packets of flows they never saw with mh too (`--sloppy-tcp 1`), so a flow reaches
//! the same real server whichever director the router hashes it to.
//!
//! 100 rate-limited downloads run through: one director is lost (its BIRD and rvsd killed, its
//! link down), comes back, and then a real server leaves. The test prints the counts of each
//! step and checks that only the lost director's flows move, that no flow changes real server
//! or breaks, and that only the departed real server's flows are cut.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Bpffs;
use rvs_lab::{ecmp_director_role, EcmpTopology, Rvsd};

const DIRECTORS: usize = 3;
const REAL_SERVERS: usize = 3;
const DOWNLOADS: usize = 100;
/// Each download: 3 MiB at 40 KiB/s, about 77 s, well beyond every step below together
/// (about 25 s here, 60 s at their bounds).
const LEN: usize = 3 << 20;
const RATE: &str = "40k";
/// The director that is lost and comes back. With the kernel's hash-threshold multipath (the
/// hash space cut in equal ranges, one per next hop in address order), losing the middle next
/// hop gives its range to its neighbours and moves no other flow; losing an outer one would
/// also shift flows between the survivors (they would still continue, through mh and
/// `--sloppy-tcp`).
const LOST: usize = 1;
/// The real server that leaves.
const LEAVING: usize = 2;

/// For each download (by its client port): the director forwarding it and the real server
/// holding it.
type Snapshot = BTreeMap<u16, (Option<usize>, usize)>;

/// The flows now: the real servers' established connections (`ss`), each with the running
/// director whose connection entry for it was refreshed last (`rvsadm -Lnc`'s expiry: a
/// director a flow has left keeps its entry, counting down). The router cannot be asked: the
/// kernel hashes a forwarded flow by the hash its sender's socket chose, not by its ports.
fn snapshot(topo: &EcmpTopology, running: &[usize]) -> Snapshot {
    let tables: Vec<(usize, BTreeMap<u16, u32>)> = running
        .iter()
        .map(|&d| (d, director_table(topo, d)))
        .collect();
    let mut flows = Snapshot::new();
    for rs in 0..REAL_SERVERS {
        for port in topo.flows_on_real_server(rs).expect("ss on a real server") {
            let director = tables
                .iter()
                .filter_map(|(d, t)| t.get(&port).map(|left| (*left, *d)))
                .max()
                .map(|(_, d)| d);
            flows.insert(port, (director, rs));
        }
    }
    flows
}

/// Flows per director and per real server, as text.
fn counts(flows: &Snapshot) -> String {
    let mut by_director = [0usize; DIRECTORS];
    let mut by_rs = [0usize; REAL_SERVERS];
    for (director, rs) in flows.values() {
        if let Some(d) = director {
            by_director[*d] += 1;
        }
        by_rs[*rs] += 1;
    }
    format!(
        "{} flows; per director {by_director:?}; per real server {by_rs:?}",
        flows.len()
    )
}

/// How the flows of `before` fared in `after`: (moved from the lost director, moved between
/// the others, changed real server, gone).
fn compare(
    before: &Snapshot,
    after: &Snapshot,
    lost: Option<usize>,
) -> (usize, usize, usize, usize) {
    let (mut from_lost, mut others, mut rs_changed, mut gone) = (0, 0, 0, 0);
    for (port, (director, rs)) in before {
        let Some((now_director, now_rs)) = after.get(port) else {
            gone += 1;
            continue;
        };
        if now_rs != rs {
            rs_changed += 1;
        }
        if now_director != director {
            if director.is_some() && *director == lost {
                from_lost += 1;
            } else {
                others += 1;
            }
        }
    }
    (from_lost, others, rs_changed, gone)
}

/// Director `index`'s TCP connections to the VIP (`rvsadm -Lnc`): client port -> seconds
/// left before the entry expires.
fn director_table(topo: &EcmpTopology, index: usize) -> BTreeMap<u16, u32> {
    let listing = topo.rvsadm_ok_on(index, &["-Lnc"]).expect("rvsadm -Lnc");
    let client = format!("{}:", topo.client);
    listing
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let [_, expire, _, source, ..] = words[..] else {
                return None;
            };
            let port = source.strip_prefix(&client)?.parse().ok()?;
            let (m, s) = expire.split_once(':')?;
            Some((port, m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?))
        })
        .collect()
}

/// Every flow is in a running director's table: it was scheduled there, or picked up there
/// (with mh) when the router moved it.
fn assert_every_flow_has_a_director(flows: &Snapshot) {
    let orphans: Vec<u16> = flows
        .iter()
        .filter(|(_, (d, _))| d.is_none())
        .map(|(p, _)| *p)
        .collect();
    assert!(orphans.is_empty(), "flows no director holds: {orphans:?}");
}

/// The service on director `index`: mh on the client's address and port, real servers added
/// starting from a different one on each director.
fn configure(topo: &EcmpTopology, index: usize) {
    let vip = format!("{}:80", topo.vip);
    topo.rvsadm_ok_on(index, &["-A", "-t", &vip, "-s", "mh", "-b", "mh-port"])
        .expect("-A");
    for k in 0..REAL_SERVERS {
        let rip = topo.rips[(index + k) % REAL_SERVERS];
        topo.rvsadm_ok_on(index, &["-a", "-t", &vip, "-r", &format!("{rip}:80"), "-g"])
            .expect("-a");
    }
}

struct Director {
    rvsd: Rvsd,
    bird: rvs_lab::Bird,
}

fn start_director(topo: &EcmpTopology, fs: &Bpffs, index: usize) -> Director {
    let pins = fs
        .pins()
        .with_file_name(format!("rvs-{}", ecmp_director_role(index)));
    let pins = pins.display().to_string();
    let rvsd = topo
        .start_rvsd_on(
            index,
            &[
                "--dataplane",
                "tc",
                "--bpf-pin-dir",
                &pins,
                "--bpf-max-connections",
                "65536",
                "--sloppy-tcp",
                "1",
            ],
        )
        .expect("start rvsd");
    configure(topo, index);
    let bird = topo
        .start_director_bird(index)
        .expect("start the director's BIRD");
    Director { rvsd, bird }
}

/// The lost director goes as a host does: BIRD and rvsd killed (SIGKILL: rvsd withdraws
/// nothing, the program it left attached would go on forwarding), then its link down.
fn lose(topo: &EcmpTopology, director: &Director, index: usize) {
    for pid in [director.bird.pid, director.rvsd.pid] {
        rvs_lab::netns::signal(pid, nix::sys::signal::Signal::SIGKILL);
        topo.lab.kill(pid);
    }
    let _ = std::fs::remove_file(&director.rvsd.socket);
    topo.lab
        .ip(&ecmp_director_role(index), &["link set d0 down".into()])
        .expect("link down");
}

#[test]
fn three_directors_behind_ecmp_keep_every_flow() {
    let topo = EcmpTopology::build("ecmp", DIRECTORS, REAL_SERVERS).expect("build the topology");
    let fs = Bpffs::mount("ecmp");
    let nginx = topo.start_nginx(LEN, RATE).expect("start nginx");
    let _router = topo.start_router_bird().expect("start the router's BIRD");
    let mut directors: Vec<Director> = (0..DIRECTORS)
        .map(|i| start_director(&topo, &fs, i))
        .collect();
    let all: Vec<usize> = (0..DIRECTORS).collect();
    let took = topo
        .wait_next_hops(&all, Duration::from_secs(30))
        .expect("all three directors announce the VIP");
    eprintln!("ECMP route via all {DIRECTORS} directors after {took:?}");

    // 100 downloads from the client, each writing its outcome when it ends.
    let results = topo.lab.log_dir().join("downloads");
    std::fs::create_dir_all(&results).expect("mkdir");
    let started = topo.lab.sh(
        rvs_lab::CLIENT,
        &format!(
            "for i in $(seq 1 {DOWNLOADS}); do \
               (curl -s -o /dev/null --max-time 150 \
                 -w '%{{exitcode}} %{{size_download}} %{{local_port}} %header{{x-rs}}\\n' \
                 http://{vip}/big.bin > {dir}/r$i.tmp 2>&1; mv {dir}/r$i.tmp {dir}/r$i) \
                 >/dev/null 2>&1 & \
             done",
            vip = topo.vip,
            dir = results.display()
        ),
    );
    assert!(started.expect("start the downloads").status.success());
    let mut before = Snapshot::new();
    rvs_lab::wait_for(Duration::from_secs(20), || {
        // The tables are read before the real servers: a flow that connected in between
        // has no director yet.
        before = snapshot(&topo, &all);
        before.len() == DOWNLOADS && before.values().all(|(d, _)| d.is_some())
    })
    .unwrap_or_else(|| panic!("all {DOWNLOADS} downloads established: {}", counts(&before)));
    eprintln!("before: {}", counts(&before));
    for d in 0..DIRECTORS {
        assert!(
            before.values().any(|(x, _)| *x == Some(d)),
            "director {} carries flows: {}",
            d + 1,
            counts(&before)
        );
    }
    assert_every_flow_has_a_director(&before);

    // A director is lost.
    let lost_at = Instant::now();
    lose(&topo, &directors[LOST], LOST);
    let survivors: Vec<usize> = all.iter().copied().filter(|d| *d != LOST).collect();
    topo.wait_next_hops(&survivors, Duration::from_secs(10))
        .expect("the router drops the lost director");
    eprintln!(
        "director {} lost: the router's route changed after {:?}",
        LOST + 1,
        lost_at.elapsed()
    );
    std::thread::sleep(Duration::from_secs(3));
    let after_loss = snapshot(&topo, &survivors);
    let (from_lost, others, rs_changed, gone) = compare(&before, &after_loss, Some(LOST));
    let lost_flows = before.values().filter(|(d, _)| *d == Some(LOST)).count();
    eprintln!(
        "after the loss: {}; moved from the lost director {from_lost} of {lost_flows}, \
         moved between the others {others}, changed real server {rs_changed}, gone {gone}",
        counts(&after_loss)
    );
    assert_eq!(
        from_lost, lost_flows,
        "every flow of the lost director moved"
    );
    assert_eq!(others, 0, "only the lost director's flows moved");
    assert_eq!(
        (rs_changed, gone),
        (0, 0),
        "no flow changed real server or ended"
    );
    assert_every_flow_has_a_director(&after_loss);

    // It comes back.
    topo.lab
        .ip(&ecmp_director_role(LOST), &["link set d0 up".into()])
        .expect("link up");
    let back_at = Instant::now();
    directors[LOST] = start_director(&topo, &fs, LOST);
    topo.wait_next_hops(&all, Duration::from_secs(20))
        .expect("the director announces the VIP again");
    eprintln!(
        "director {} back: announced after {:?}",
        LOST + 1,
        back_at.elapsed()
    );
    std::thread::sleep(Duration::from_secs(3));
    let after_return = snapshot(&topo, &all);
    let (_, moved, rs_changed, gone) = compare(&after_loss, &after_return, None);
    let back_to_it = after_return
        .values()
        .filter(|(d, _)| *d == Some(LOST))
        .count();
    eprintln!(
        "after the return: {}; moved {moved} (to the returned director {back_to_it}), \
         changed real server {rs_changed}, gone {gone}",
        counts(&after_return)
    );
    assert!(back_to_it > 0, "the returned director takes flows back");
    assert_eq!(
        moved, back_to_it,
        "only flows going to the returned director moved"
    );
    assert_eq!(
        (rs_changed, gone),
        (0, 0),
        "no flow changed real server or ended"
    );
    assert_every_flow_has_a_director(&after_return);

    // A real server leaves: its nginx stops and every director removes it.
    topo.lab.kill(nginx[LEAVING]);
    let rip = format!("{}:80", topo.rips[LEAVING]);
    for d in 0..DIRECTORS {
        topo.rvsadm_ok_on(d, &["-d", "-t", &format!("{}:80", topo.vip), "-r", &rip])
            .expect("-d");
    }
    std::thread::sleep(Duration::from_secs(3));
    let after_leave = snapshot(&topo, &all);
    let (_, moved, rs_changed, gone) = compare(&after_return, &after_leave, None);
    let on_leaving = after_return
        .values()
        .filter(|(_, rs)| *rs == LEAVING)
        .count();
    eprintln!(
        "after real server {} left: {}; gone {gone} (it held {on_leaving}), \
         changed real server {rs_changed}, moved director {moved}",
        LEAVING + 1,
        counts(&after_leave)
    );
    assert!(on_leaving > 0, "the departing real server held flows");
    assert_eq!(
        gone, on_leaving,
        "only the departed real server's flows ended"
    );
    assert_eq!(
        (rs_changed, moved),
        (0, 0),
        "the other flows stayed where they were"
    );

    // Every download ends; only the departed real server's were cut.
    let mut outcomes = Vec::new();
    rvs_lab::wait_for(Duration::from_secs(120), || {
        outcomes = (1..=DOWNLOADS)
            .filter_map(|i| std::fs::read_to_string(results.join(format!("r{i}"))).ok())
            .collect();
        outcomes.len() == DOWNLOADS
    })
    .unwrap_or_else(|| panic!("only {} of {DOWNLOADS} downloads ended", outcomes.len()));
    let (mut complete, mut cut, mut broken) = (0, 0, Vec::new());
    for line in &outcomes {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [code, size, port, ..] = words[..] else {
            panic!("curl's outcome {line:?}");
        };
        let port: u16 = port.parse().expect("local port");
        let rs = after_return.get(&port).map(|(_, rs)| *rs);
        let whole = code == "0" && size == LEN.to_string();
        match (rs == Some(LEAVING), whole) {
            (false, true) => complete += 1,
            (true, false) => cut += 1,
            _ => broken.push(format!("{line:?} (real server {rs:?})")),
        }
    }
    eprintln!(
        "downloads: {complete} complete, {cut} cut with real server {}, {} other",
        LEAVING + 1,
        broken.len()
    );
    assert!(broken.is_empty(), "downloads that broke: {broken:#?}");
    assert_eq!(complete + cut, DOWNLOADS);
    assert_eq!(cut, on_leaving);
}
