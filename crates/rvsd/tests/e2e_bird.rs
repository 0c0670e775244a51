//! rvsd announcing its VIPs through a real BIRD 2 (`--bird-include`, `--bird-socket`): the route
//! follows what the services can serve: announced while a service of the VIP has a weighted
//! real server (rvsadm's services) or quorum (keepalived.conf's), withdrawn on removal, on weight
//! 0, on quorum loss and when rvsd stops; BIRD started later reads the file rvsd left. The
//! routes are read from BIRD itself (`birdc show route protocol rvs_vips4`), in seed 004's NAT
//! topology with BIRD in the director's namespace.

mod common;

use std::time::Duration;

use common::{adm, VIP};
use rvs_lab::{Bird, NatTopology, DIRECTOR};

/// How long a change may take to reach BIRD (rvsd looks every 250 ms).
const WITHIN: Duration = Duration::from_secs(10);

fn bird_conf(include: &str) -> String {
    format!(
        "log stderr all;\nrouter id 192.0.2.1;\nprotocol device {{}}\ninclude \"{include}*\";\n"
    )
}

/// Whether BIRD holds the VIP's route from rvsd's protocol.
fn announced(bird: &Bird) -> bool {
    bird.birdc(&["show", "route", "protocol", "rvs_vips4"])
        .map(|out| out.contains(&format!("{VIP}/32")))
        .unwrap_or(false)
}

/// Waits until BIRD's route is `want`; fails with `what` otherwise. Returns how long it took.
fn wait_route(bird: &Bird, want: bool, what: &str) -> Duration {
    rvs_lab::wait_for(WITHIN, || announced(bird) == want).unwrap_or_else(|| {
        panic!(
            "{what}: the VIP should be {} within {WITHIN:?}",
            if want { "announced" } else { "withdrawn" }
        )
    })
}

struct Setup {
    topo: NatTopology,
    include: String,
    socket: String,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let topo = NatTopology::build(tag, 2).expect("build the NAT topology");
        let include = topo.lab.log_dir().join("vips.conf").display().to_string();
        let socket = topo.lab.log_dir().join("bird.ctl").display().to_string();
        Setup {
            topo,
            include,
            socket,
        }
    }

    fn start_bird(&self) -> Bird {
        let bird = self
            .topo
            .lab
            .start_bird(DIRECTOR, "bird", &bird_conf(&self.include))
            .expect("start BIRD");
        assert_eq!(bird.socket.display().to_string(), self.socket);
        bird
    }

    fn start_rvsd(&self, extra: &[&str]) -> rvs_lab::Rvsd {
        let mut args = vec![
            "--bird-include",
            self.include.as_str(),
            "--bird-socket",
            self.socket.as_str(),
        ];
        args.extend_from_slice(extra);
        self.topo.start_rvsd(&args).expect("start rvsd")
    }
}

#[test]
fn a_routes_follow_rvsadm_and_rvsd_s_life() {
    let s = Setup::new("birdadm");
    let bird = s.start_bird();
    let rvsd = s.start_rvsd(&[]);
    let topo = &s.topo;
    let service = format!("{VIP}:80");
    let rs = format!("{}:80", topo.rips4[0]);
    std::thread::sleep(Duration::from_millis(600));
    assert!(!announced(&bird), "no service, no route");
    let file = std::fs::read_to_string(&s.include).expect("rvsd wrote the include file");
    assert!(file.contains("protocol static rvs_vips4"), "{file}");

    adm(topo, &["-A", "-t", &service, "-s", "rr"]);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !announced(&bird),
        "a service without real servers is not up"
    );
    adm(topo, &["-a", "-t", &service, "-r", &rs, "-m"]);
    let took = wait_route(&bird, true, "a real server added");
    eprintln!("announced {took:?} after the real server was added");
    adm(topo, &["-e", "-t", &service, "-r", &rs, "-m", "-w", "0"]);
    wait_route(&bird, false, "its only real server at weight 0");
    adm(topo, &["-e", "-t", &service, "-r", &rs, "-m", "-w", "2"]);
    wait_route(&bird, true, "weight back");
    // Another service of the VIP keeps it announced while the first goes.
    let other = format!("{VIP}:443");
    adm(topo, &["-A", "-t", &other, "-s", "rr"]);
    adm(
        topo,
        &[
            "-a",
            "-t",
            &other,
            "-r",
            &format!("{}:443", topo.rips4[1]),
            "-m",
        ],
    );
    adm(topo, &["-D", "-t", &service]);
    std::thread::sleep(Duration::from_millis(600));
    assert!(announced(&bird), "the VIP's other service is up");
    adm(topo, &["-D", "-t", &other]);
    wait_route(&bird, false, "its last service removed");

    // BIRD down while the configuration changes: it reads rvsd's file when it starts again.
    adm(topo, &["-A", "-t", &service, "-s", "rr"]);
    adm(topo, &["-a", "-t", &service, "-r", &rs, "-m"]);
    wait_route(&bird, true, "added again");
    topo.lab.kill(bird.pid);
    adm(topo, &["-d", "-t", &service, "-r", &rs]);
    std::thread::sleep(Duration::from_millis(600));
    let bird = s.start_bird();
    // Once BIRD runs rvsd's protocol (read from the file at its start), it holds no route.
    let up = rvs_lab::wait_for(WITHIN, || {
        bird.birdc(&["show", "protocols", "rvs_vips4"])
            .is_ok_and(|o| o.contains("rvs_vips4") && o.contains(" up "))
    });
    assert!(
        up.is_some(),
        "BIRD runs rvsd's static protocol after its restart"
    );
    assert!(
        !announced(&bird),
        "BIRD started later reads the withdrawal from the file"
    );
    adm(topo, &["-a", "-t", &service, "-r", &rs, "-m"]);
    wait_route(&bird, true, "a real server added after BIRD's restart");

    // rvsd stops: the route goes before it does.
    topo.lab.kill(rvsd.pid);
    assert!(!announced(&bird), "withdrawn when rvsd stops");
    let file = std::fs::read_to_string(&s.include).expect("the include file");
    assert!(
        !file.contains(VIP),
        "the file rvsd left announces nothing:\n{file}"
    );
}

#[test]
fn b_keepalived_quorum_decides_the_route() {
    let s = Setup::new("birdka");
    let bird = s.start_bird();
    // Two real servers, quorum 2: one failing its check loses the quorum while the other still
    // has its weight, so only the quorum can withdraw the route.
    let flag = s.topo.lab.log_dir().join("rs-up");
    std::fs::write(&flag, "").expect("flag");
    let server = |rip: &std::net::Ipv4Addr, check: &str| {
        format!(
            "\treal_server {rip} 80 {{\n\t\tweight 1\n\t\tMISC_CHECK {{\n\t\t\tmisc_path \"{check}\"\n\t\t\tmisc_timeout 2\n\t\t}}\n\t}}\n"
        )
    };
    let conf = format!(
        "virtual_server {VIP} 80 {{\n\
         \tdelay_loop 1\n\
         \tlb_algo rr\n\
         \tlb_kind NAT\n\
         \tprotocol TCP\n\
         \tquorum 2\n\
         {first}{second}\
         }}\n",
        first = server(
            &s.topo.rips4[0],
            &format!("/usr/bin/test -e {}", flag.display())
        ),
        second = server(&s.topo.rips4[1], "/bin/true"),
    );
    let path = s
        .topo
        .lab
        .write_file("keepalived.conf", &conf)
        .expect("conf");
    let path = path.display().to_string();
    let _rvsd = s.start_rvsd(&["-f", &path]);
    wait_route(&bird, true, "quorum at start");
    std::fs::remove_file(&flag).expect("rm flag");
    let took = wait_route(
        &bird,
        false,
        "one of two real servers failed its check: quorum 2 lost",
    );
    eprintln!("withdrawn {took:?} after the check began failing");
    std::fs::write(&flag, "").expect("flag");
    wait_route(&bird, true, "the real server back: quorum gained");
}
