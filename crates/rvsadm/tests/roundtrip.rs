//! Save -> restore round trips through a fake daemon, and other executions of parsed actions.

use rvs_api::{
    ApiError, Command, ConnView, CounterView, DestConfig, DestView, ErrorKind, ForwardMethod, Info,
    MarkRuleView, PolicyView, RatesView, Reply, ServiceConfig, ServiceId, ServiceView, StatsView,
    Timeouts, TunnelChecksum, TunnelConfig, TunnelKind,
};
use rvsadm::{
    execute, execute_with, parse_args, parse_args_with, render, Control, Format, PortProto,
    StaticResolver,
};
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An in-memory stand-in for rvsd with IPVS's error semantics.
#[derive(Default)]
struct FakeDaemon {
    services: Vec<ServiceView>,
    timeouts: Timeouts,
    marks: Vec<MarkRuleView>,
    daemons: Vec<rvs_api::DaemonConfig>,
    /// `Command::Batch` exchanges received.
    batches: usize,
}

fn view(config: ServiceConfig) -> ServiceView {
    ServiceView {
        config,
        stats: StatsView::default(),
        rates: RatesView::default(),
        dests: Vec::new(),
    }
}

impl FakeDaemon {
    fn find(&mut self, id: &ServiceId) -> Option<&mut ServiceView> {
        self.services.iter_mut().find(|s| s.config.id == *id)
    }
}

impl Control for FakeDaemon {
    fn call(&mut self, command: &Command) -> Result<Reply, ApiError> {
        let no_service = || Reply::error(ErrorKind::NoService, "");
        Ok(match command.clone() {
            Command::AddService(c) => {
                if self.find(&c.id).is_some() {
                    Reply::error(ErrorKind::ServiceExists, "")
                } else {
                    self.services.push(view(c));
                    Reply::Ok
                }
            }
            Command::EditService(c) => match self.find(&c.id) {
                Some(s) => {
                    s.config = c;
                    Reply::Ok
                }
                None => no_service(),
            },
            Command::DelService(id) => {
                let before = self.services.len();
                self.services.retain(|s| s.config.id != id);
                if before == self.services.len() {
                    no_service()
                } else {
                    Reply::Ok
                }
            }
            Command::Clear => {
                self.services.clear();
                self.marks.clear();
                Reply::Ok
            }
            Command::AddMarkRule(r) => {
                if self.marks.contains(&r) {
                    Reply::error(ErrorKind::InvalidArgument, "mark rule already exists")
                } else {
                    self.marks.push(r);
                    Reply::Ok
                }
            }
            Command::DelMarkRule(r) => {
                let before = self.marks.len();
                self.marks.retain(|m| *m != r);
                if before == self.marks.len() {
                    Reply::error(ErrorKind::InvalidArgument, "no such mark rule")
                } else {
                    Reply::Ok
                }
            }
            Command::ListMarkRules => Reply::MarkRules(self.marks.clone()),
            Command::SetPolicy { .. } => Reply::Ok,
            Command::Batch(commands) => {
                self.batches += 1;
                let mut replies = Vec::new();
                for c in &commands {
                    replies.push(self.call(c)?);
                }
                Reply::Batch(replies)
            }
            Command::StartDaemon(c) => {
                if self.daemons.iter().any(|d| d.role == c.role) {
                    Reply::error(
                        ErrorKind::InvalidArgument,
                        "Daemon has already run",
                    )
                } else {
                    self.daemons.push(c);
                    Reply::Ok
                }
            }
            Command::StopDaemon(role) => {
                let before = self.daemons.len();
                self.daemons.retain(|d| d.role != role);
                if self.daemons.len() == before {
                    Reply::error(
                        ErrorKind::InvalidArgument,
                        "No daemon is running",
                    )
                } else {
                    Reply::Ok
                }
            }
            Command::ListDaemons => Reply::Daemons(self.daemons.clone()),
            Command::GetVrrp => Reply::Vrrp(vec![rvs_api::VrrpView {
                name: "VI_1".into(),
                group: None,
                interface: "eth0".into(),
                vrid: 51,
                version: 2,
                state: "MASTER".into(),
                priority: 150,
                base_priority: 150,
                master: Some("10.0.0.1".parse().expect("addr")),
                vips: vec!["10.0.0.100".parse().expect("addr")],
                stats: rvs_api::VrrpStatsView::default(),
                vip_lines: Vec::new(),
                scripts: Vec::new(),
            }]),
            Command::GetBfd => Reply::Bfd(vec![rvs_api::BfdView {
                name: "UPSTREAM".into(),
                neighbor: "10.0.0.254".parse().expect("addr"),
                source: Some("10.0.0.1".parse().expect("addr")),
                state: "Up".into(),
                remote_state: "Up".into(),
                diag: "No Diagnostic".into(),
                local_discriminator: 7,
                remote_discriminator: 9,
                tx_interval_us: 50_000,
                detect_time_us: 250_000,
            }]),
            Command::Doctor => Reply::Doctor(vec![rvs_api::FindingView {
                check: "nat-no-replies".into(),
                subject: "TCP 10.0.0.1:80 -> 10.1.0.2:80".into(),
                detail: "no reply came back".into(),
            }]),
            Command::Handover { .. } => Reply::error(
                ErrorKind::Unsupported,
                "rvsadm never sends a handover",
            ),
            Command::Reload => Reply::error(
                ErrorKind::InvalidArgument,
                "/etc/keepalived/keepalived.conf is invalid, nothing changed:\nerror: /etc/keepalived/keepalived.conf:3: delay_loop: expected a number",
            ),
            Command::GetHealth => Reply::Health(vec![rvs_api::HealthView {
                service: ServiceId::Tcp {
                    addr: IpAddr::from([192, 168, 1, 253]),
                    port: 80,
                },
                dest: "10.10.10.2:80".parse().expect("address"),
                alive: false,
                configured_weight: 2,
                applied_weight: Some(0),
                state: "inhibited".into(),
                checkers: vec![rvs_api::CheckerView {
                    kind: "TCP_CHECK".into(),
                    target: "10.10.10.2:80".into(),
                    up: false,
                    last_ok: Some(false),
                    detail: "connection refused".into(),
                    since_ms: Some(1500),
                    consecutive_failures: 3,
                    runs: 7,
                    latency_us: None,
                }],
            }]),
            Command::GetPolicy => Reply::Policy(vec![PolicyView {
                name: "conn_reuse_mode".into(),
                value: 1,
            }]),
            Command::AddDest { service, dest } => match self.find(&service) {
                None => no_service(),
                // rvsd's refusals of what the kernel refuses (ERANGE, EINVAL).
                Some(_) if dest.l_threshold > dest.u_threshold => Reply::error(
                    ErrorKind::InvalidArgument,
                    "Numerical result out of range: the lower threshold ...",
                ),
                Some(_) if dest.addr.is_multicast() || dest.addr == IpAddr::from([255; 4]) => {
                    Reply::error(
                        ErrorKind::InvalidArgument,
                        "real server address is not a unicast address of a host",
                    )
                }
                Some(s)
                    if s.dests
                        .iter()
                        .any(|d| d.config.socket_addr() == dest.socket_addr()) =>
                {
                    Reply::error(ErrorKind::DestExists, "")
                }
                Some(s) => {
                    s.dests.push(DestView {
                        config: dest,
                        active_conns: 0,
                        inactive_conns: 0,
                        persist_conns: 0,
                        stats: StatsView::default(),
                        rates: RatesView::default(),
                    });
                    Reply::Ok
                }
            },
            Command::EditDest { service, dest } => match self.find(&service) {
                None => no_service(),
                Some(s) => match s
                    .dests
                    .iter_mut()
                    .find(|d| d.config.socket_addr() == dest.socket_addr())
                {
                    Some(d) => {
                        d.config = dest;
                        Reply::Ok
                    }
                    None => Reply::error(ErrorKind::NoDest, ""),
                },
            },
            Command::DelDest {
                service,
                addr,
                port,
            } => match self.find(&service) {
                None => no_service(),
                Some(s) => {
                    let before = s.dests.len();
                    s.dests
                        .retain(|d| (d.config.addr, d.config.port) != (addr, port));
                    if before == s.dests.len() {
                        Reply::error(ErrorKind::NoDest, "")
                    } else {
                        Reply::Ok
                    }
                }
            },
            Command::Zero { .. } => Reply::Ok,
            Command::SetTimeouts(t) => {
                self.timeouts = t;
                Reply::Ok
            }
            Command::GetTimeouts => Reply::Timeouts(self.timeouts),
            Command::ListServices { service: None } => Reply::Services(self.services.clone()),
            Command::ListServices { service: Some(id) } => match self.find(&id) {
                Some(s) => Reply::Services(vec![s.clone()]),
                None => no_service(),
            },
            Command::ListConnections => Reply::Connections(Vec::<ConnView>::new()),
            Command::GetInfo => Reply::Info(Info {
                version: "1.2.1".into(),
                conn_table_size: 4096,
                daemon: "fake".into(),
            }),
            Command::GetCounters => Reply::Counters(vec![
                CounterView::new("connections", self.services.len() as u64),
                CounterView::new("drop_malformed", 3),
            ]),
        })
    }
}

fn run(daemon: &mut FakeDaemon, line: &str, stdin: &str) -> rvsadm::Outcome {
    run_with(daemon, line, stdin, &StaticResolver::new())
}

/// Parses and executes `line` with the names of `names` (none: no lookups, numeric output).
fn run_with(
    daemon: &mut FakeDaemon,
    line: &str,
    stdin: &str,
    names: &StaticResolver,
) -> rvsadm::Outcome {
    let words: Vec<&str> = line.split_whitespace().collect();
    let action = parse_args_with(&words, names).unwrap_or_else(|e| panic!("{line}: {e}"));
    execute_with(
        &action,
        daemon,
        &mut Cursor::new(stdin.as_bytes().to_vec()),
        names,
    )
}

/// A small deterministic generator (xorshift64*), so the property test needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self) -> bool {
        self.below(2) == 0
    }
}

fn random_addr(rng: &mut Rng, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            rng.below(4) as u16,
            rng.below(65536) as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | rng.below(1 << 24) as u32))
    }
}

/// A random table ipvsadm-save can represent exactly (no thresholds, no `Local`).
fn random_table(rng: &mut Rng) -> Vec<ServiceView> {
    let mut services: Vec<ServiceView> = Vec::new();
    for _ in 0..rng.below(5) {
        let v6 = rng.below(3) == 0;
        let persistent = rng.chance();
        let port = if persistent && rng.below(4) == 0 {
            0
        } else {
            1 + rng.below(65535) as u16
        };
        let addr = random_addr(rng, v6);
        let id = match rng.below(4) {
            0 => ServiceId::Udp { addr, port },
            1 => ServiceId::Fwmark {
                mark: 1 + rng.below(1000) as u32,
                ipv6: v6,
            },
            2 => ServiceId::Sctp { addr, port },
            _ => ServiceId::Tcp { addr, port },
        };
        if services.iter().any(|s| s.config.id == id) {
            continue;
        }
        let scheduler = ["rr", "wrr", "lc", "wlc", "sh", "mh"][rng.below(6) as usize];
        let mut config = ServiceConfig::new(id, scheduler);
        if persistent {
            config.persistence = Some(1 + rng.below(86400) as u32);
            if rng.chance() {
                // ipvsadm takes any IPv4 mask (contiguous or not) and an IPv6 prefix.
                config.netmask = Some(if v6 {
                    rvs_api::netmask::prefix_mask(true, 1 + rng.below(127) as u8)
                } else {
                    IpAddr::V4(Ipv4Addr::from(rng.below(u32::MAX as u64) as u32))
                });
            }
        }
        config.one_packet =
            matches!(id, ServiceId::Udp { .. } | ServiceId::Fwmark { .. }) && rng.chance();
        if rng.below(4) == 0 {
            let mut bits = 1 + rng.below(7);
            // Like ipvsadm, save prints sh's and mh's flag-3 alone as an empty `-b`, which -R
            // refuses; give those a flag of their own as well.
            if matches!(scheduler, "sh" | "mh") && bits & 3 == 0 {
                bits |= 1 + rng.below(3);
            }
            config.sched_flags = flag_names(scheduler, bits);
        }
        if rng.below(5) == 0 {
            config.pe = Some("sip".into());
        }
        // rvs extensions: a FULLNAT local pool and the PROXY protocol (TCP-like services).
        if rng.below(3) == 0 {
            for _ in 0..1 + rng.below(3) {
                let a = random_addr(rng, id.is_ipv6());
                if !config.local_addrs.contains(&a) {
                    config.local_addrs.push(a);
                }
            }
            if matches!(id, ServiceId::Tcp { .. } | ServiceId::Fwmark { .. }) && rng.chance() {
                config.proxy_protocol = Some(if rng.chance() {
                    rvs_api::ProxyProtocol::V1
                } else {
                    rvs_api::ProxyProtocol::V2
                });
            }
        }
        let fullnat_ok = !config.local_addrs.is_empty();
        let mut service = view(config);
        for _ in 0..rng.below(4) {
            let mut method = [
                ForwardMethod::Masq,
                ForwardMethod::Route,
                ForwardMethod::Tunnel,
            ][rng.below(3) as usize];
            if fullnat_ok && rng.chance() {
                method = ForwardMethod::FullNat;
            }
            let dest_v6 = if method == ForwardMethod::Tunnel {
                rng.chance()
            } else {
                v6
            };
            let dest_addr = random_addr(rng, dest_v6);
            let dest_port = match (id, method) {
                (ServiceId::Fwmark { .. }, _)
                | (_, ForwardMethod::Masq)
                | (_, ForwardMethod::FullNat) => rng.below(65536) as u16,
                _ => port,
            };
            let mut dest = DestConfig::new(dest_addr, dest_port, rng.below(65536) as u32, method);
            if method == ForwardMethod::Tunnel {
                dest.tunnel = Some(match rng.below(3) {
                    0 => TunnelConfig::default(),
                    1 => TunnelConfig {
                        kind: TunnelKind::Gue,
                        port: Some(1 + rng.below(65535) as u16),
                        checksum: [
                            TunnelChecksum::NoCsum,
                            TunnelChecksum::Csum,
                            TunnelChecksum::RemCsum,
                        ][rng.below(3) as usize],
                    },
                    _ => TunnelConfig {
                        kind: TunnelKind::Gre,
                        port: None,
                        checksum: [TunnelChecksum::NoCsum, TunnelChecksum::Csum]
                            [rng.below(2) as usize],
                    },
                });
            }
            if service
                .dests
                .iter()
                .any(|d| d.config.socket_addr() == dest.socket_addr())
            {
                continue;
            }
            service.dests.push(DestView {
                config: dest,
                active_conns: 0,
                inactive_conns: 0,
                persist_conns: 0,
                stats: StatsView::default(),
                rates: RatesView::default(),
            });
        }
        services.push(service);
    }
    services
}

/// The `-b` names of flag bits 1..=7 for `scheduler`, in bit order, as ipvsadm spells them.
fn flag_names(scheduler: &str, bits: u64) -> Vec<String> {
    let all: [&str; 3] = match scheduler {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    (0..3)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| all[i].to_string())
        .collect()
}

/// The table as `-R` of its save rebuilds it: ipvsadm's save shows only sh's and mh's own two
/// flags, so their flag-3 is lost.
fn after_restore(mut services: Vec<ServiceView>) -> Vec<ServiceView> {
    for s in &mut services {
        if matches!(s.config.scheduler.as_str(), "sh" | "mh") {
            s.config.sched_flags.retain(|f| f != "flag-3");
        }
    }
    services
}

/// The table in one canonical order, to compare tables whatever their insertion order (a total
/// order: ipvsadm's own comparators wrap around and are not one).
fn sorted(mut services: Vec<ServiceView>) -> Vec<ServiceView> {
    services.sort_by_key(|s| format!("{:?}", s.config.id));
    for s in &mut services {
        s.dests.sort_by_key(|d| (d.config.addr, d.config.port));
    }
    services
}

#[test]
fn save_then_restore_reproduces_the_table() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let numeric = Format {
        numeric: true,
        ..Format::default()
    };
    for round in 0..300 {
        let table = random_table(&mut rng);
        let saved = render::save(&table, &numeric, &StaticResolver::new());
        let mut daemon = FakeDaemon::default();
        let outcome = run(&mut daemon, "-R", &saved);
        assert_eq!(
            outcome.status, 0,
            "round {round}: {}\n{saved}",
            outcome.stderr
        );
        assert_eq!(
            sorted(daemon.services.clone()),
            sorted(after_restore(table)),
            "round {round}:\n{saved}"
        );
        assert_eq!(
            render::save(&daemon.services, &numeric, &StaticResolver::new()),
            saved,
            "round {round}"
        );
    }
}

#[test]
fn seed_session_lists_like_ipvsadm() {
    let mut d = FakeDaemon::default();
    for line in [
        "-C",
        "-A -t 192.168.1.253:80 -s rr",
        "-a -t 192.168.1.253:80 -r 10.10.10.2:80 -m",
        "-a -t 192.168.1.253:80 -r 10.10.10.3:80 -m",
    ] {
        let out = run(&mut d, line, "");
        assert_eq!((out.status, out.stderr.as_str()), (0, ""), "{line}");
    }
    let out = run(&mut d, "-Ln", "");
    assert_eq!(
        out.stdout,
        concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  192.168.1.253:80 rr\n",
            "  -> 10.10.10.2:80                Masq    1      0          0         \n",
            "  -> 10.10.10.3:80                Masq    1      0          0         \n",
        )
    );
    let out = run(&mut d, "-S -n", "");
    assert_eq!(
        out.stdout,
        concat!(
            "-A -t 192.168.1.253:80 -s rr\n",
            "-a -t 192.168.1.253:80 -r 10.10.10.2:80 -m -w 1\n",
            "-a -t 192.168.1.253:80 -r 10.10.10.3:80 -m -w 1\n",
        )
    );
}

#[test]
fn daemon_errors_use_ipvsadm_words_and_status() {
    let mut d = FakeDaemon::default();
    let cases = [
        ("-A -t 1.2.3.4:80", 0, ""),
        ("-A -t 1.2.3.4:80", 255, "Service already exists\n"),
        ("-E -t 1.2.3.5:80", 255, "No such service\n"),
        ("-a -t 1.2.3.5:80 -r 10.0.0.1", 255, "Service not defined\n"),
        ("-a -t 1.2.3.4:80 -r 10.0.0.1", 0, ""),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1",
            255,
            "Destination already exists\n",
        ),
        ("-d -t 1.2.3.4:80 -r 10.0.0.9", 255, "No such destination\n"),
        (
            "-a -t 1.2.3.4:80 -r 255.255.255.255 -m",
            255,
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 224.0.0.1",
            255,
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -y 5",
            255,
            "Numerical result out of range\n",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -x 5 -y 6",
            255,
            "Numerical result out of range\n",
        ),
        ("-L -t 1.2.3.5:80", 1, "No such service\n"),
        ("--start-daemon master --mcast-interface eth0", 0, ""),
        (
            "--start-daemon master --mcast-interface eth1",
            255,
            "Daemon has already run\n",
        ),
        ("--stop-daemon backup", 255, "No daemon is running\n"),
    ];
    for (line, status, stderr) in cases {
        let out = run(&mut d, line, "");
        assert_eq!(
            (out.status, out.stderr.as_str()),
            (status, stderr),
            "{line}"
        );
    }
    let out = run(&mut d, "--set 900 120 300", "");
    assert_eq!(out.status, 0);
    assert_eq!(
        run(&mut d, "-L --timeout", "").stdout,
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
}

#[test]
fn restore_stops_at_a_bad_line_and_reports_refusals() {
    let mut d = FakeDaemon::default();
    let input = "# saved\n-A -t 1.2.3.4:80 -s rr\n-A -t 1.2.3.4:80 -s rr\nipvsadm -a -t 1.2.3.4:80 -r 10.0.0.1 -m\n-A -t bad\n-C\n";
    let out = run(&mut d, "-R", input);
    assert_eq!(
        out.stderr,
        "Service already exists\nillegal virtual server address[:port] specified\n"
    );
    // ipvsadm's fail(2, ...) ends the restore with status 2.
    assert_eq!(out.status, 2);
    assert_eq!(
        d.services.len(),
        1,
        "the -C after the bad line must not run"
    );
    assert_eq!(d.services[0].dests.len(), 1);
}

#[test]
fn restore_reports_unknown_options_goes_on_and_exits_with_the_last_lines_status() {
    let mut d = FakeDaemon::default();
    let input = "-A -t 1.2.3.4:80 -s rr\n-A -t 1.2.3.4:80 -s rr\n-A -t 1.2.3.5:80 --bogus\n-a -t 1.2.3.4:80 -r 10.0.0.1 -m\n";
    let out = run(&mut d, "-R", input);
    assert_eq!(
        out.stderr, "Service already exists\n--bogus: unknown option\n",
        "refusals and popt errors are reported in line order"
    );
    assert_eq!(out.status, 0, "the last line succeeded");
    assert_eq!(d.services.len(), 1);
    assert_eq!(
        d.services[0].dests.len(),
        1,
        "lines after the bad option ran"
    );

    let mut d = FakeDaemon::default();
    let out = run(&mut d, "-R", "-A -t 1.2.3.4:80\n-D -t 9.9.9.9:80\n");
    assert_eq!(out.stderr, "No such service\n");
    assert_eq!(out.status, 255, "the last line was refused");
}

#[test]
fn restore_sends_configuration_lines_in_batches() {
    let mut d = FakeDaemon::default();
    let mut input = String::new();
    for i in 0..600 {
        input.push_str(&format!(
            "-A -t 10.0.{}.{}:80 -s rr\n",
            i / 250,
            i % 250 + 1
        ));
    }
    let out = run(&mut d, "-R", &input);
    assert_eq!((out.status, out.stderr.as_str()), (0, ""));
    assert_eq!(d.services.len(), 600);
    assert_eq!(d.batches, 3, "600 lines in batches of 256");
}

#[test]
fn no_daemon_is_reported_like_ipvsadm() {
    let mut client = rvsadm::LazyClient::new("/nonexistent/rvsd.sock");
    let action = parse_args(&["-Ln"]).expect("parse");
    let out = execute(&action, &mut client, &mut Cursor::new(Vec::new()));
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.starts_with("Can't initialize ipvs: "),
        "{}",
        out.stderr
    );
    let help = execute(
        &parse_args(&["-h"]).expect("parse"),
        &mut client,
        &mut Cursor::new(Vec::new()),
    );
    assert_eq!(help.status, 0);
    assert!(help
        .stdout
        .starts_with("rvsadm 0.1.0 (ipvsadm 1.31 compatible)\nUsage:\n"));
}

#[test]
fn socket_option_and_environment() {
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (path, rest) =
        rvsadm::take_socket_option(args(&["-Ln", "--socket", "/tmp/x.sock"]), None).expect("split");
    assert_eq!((path.to_str(), rest), (Some("/tmp/x.sock"), args(&["-Ln"])));
    let (path, _) =
        rvsadm::take_socket_option(args(&["-Ln"]), Some("/tmp/env.sock".into())).expect("split");
    assert_eq!(path.to_str(), Some("/tmp/env.sock"));
    let (path, _) =
        rvsadm::take_socket_option(args(&["--socket=/a", "-C"]), Some("/b".into())).expect("split");
    assert_eq!(path.to_str(), Some("/a"));
    let (path, _) = rvsadm::take_socket_option(args(&["-C"]), None).expect("split");
    assert_eq!(path.to_str(), Some(rvs_api::DEFAULT_SOCKET));
    assert!(rvsadm::take_socket_option(args(&["-C", "--socket"]), None).is_err());
}

#[test]
fn counters_are_fetched_and_printed() {
    let mut d = FakeDaemon::default();
    assert_eq!(run(&mut d, "-A -t 1.2.3.4:80 -s rr", "").status, 0);
    let out = run(&mut d, "--counters", "");
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "connections     1\ndrop_malformed  3\n");
    let mut client = rvsadm::LazyClient::new("/nonexistent/rvsd.sock");
    let action = parse_args(&["--counters"]).expect("parse");
    let out = execute(&action, &mut client, &mut Cursor::new(Vec::new()));
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.starts_with("Can't initialize ipvs"),
        "{}",
        out.stderr
    );
}

#[test]
fn reload_errors_and_health_view() {
    let mut d = FakeDaemon::default();
    let out = run(&mut d, "--reload", "");
    // A refused command exits like ipvsadm's `return -1` from main.
    assert_eq!(out.status, 255, "{}", out.stderr);
    assert!(out.stderr.contains("keepalived.conf:3"), "{}", out.stderr);
    let out = run(&mut d, "--health", "");
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("TCP 192.168.1.253:80 10.10.10.2:80 inhibited 0/2\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  -> TCP_CHECK 10.10.10.2:80 fail 1.5s 3 connection refused\n"),
        "{}",
        out.stdout
    );
    assert!(parse_args(&["--health", "x"]).is_err());
}

#[test]
fn mark_rules_are_saved_before_the_services_and_restored() {
    let mut daemon = FakeDaemon::default();
    for line in [
        "--add-mark -t 192.168.1.253:80 --mark 1",
        "--add-mark -t 192.168.1.253/32:8080 --mark 1",
        "--add-mark -u [2001:db8::]/64:5000-5010 --mark 2",
        "-A -f 1 -s rr -p 60",
        "-a -f 1 -r 10.10.10.2 -m",
    ] {
        let out = run(&mut daemon, line, "");
        assert_eq!(out.status, 0, "{line}: {}", out.stderr);
    }
    let saved = run(&mut daemon, "-Sn", "").stdout;
    assert_eq!(
        saved,
        "--add-mark -t 192.168.1.253/32:80 --mark 1\n\
         --add-mark -t 192.168.1.253/32:8080 --mark 1\n\
         --add-mark -u [2001:db8::]/64:5000-5010 --mark 2\n\
         -A -f 1 -s rr -p 60\n\
         -a -f 1 -r 10.10.10.2:0 -m -w 1\n"
    );
    assert_eq!(
        run(&mut daemon, "--list-marks", "").stdout,
        saved
            .lines()
            .take(3)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let mut fresh = FakeDaemon::default();
    let out = run(&mut fresh, "-R", &saved);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(fresh.marks, daemon.marks);
    assert_eq!(run(&mut fresh, "-Sn", "").stdout, saved);
    // A duplicate is refused; --del-mark removes.
    let out = run(&mut fresh, "--add-mark -t 192.168.1.253:80 --mark 1", "");
    assert_eq!(out.status, 255, "{}", out.stderr);
    let out = run(&mut fresh, "--del-mark -t 192.168.1.253:80 --mark 1", "");
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(fresh.marks.len(), 2);
    assert_eq!(
        run(&mut fresh, "--list-policy", "").stdout,
        "conn_reuse_mode 1\n"
    );
}

#[test]
fn sync_daemons_start_list_and_stop() {
    let mut d = FakeDaemon::default();
    let start = "--start-daemon backup --mcast-interface d1 --syncid 9 --sync-maxlen 1400 \
                 --mcast-group 239.1.2.3 --mcast-port 9000 --mcast-ttl 2";
    assert_eq!(run(&mut d, start, "").status, 0);
    assert_eq!(
        run(&mut d, "--start-daemon master --mcast-interface d0", "").status,
        0
    );
    let want = "master sync daemon (mcast=d0, syncid=0)\n\
                backup sync daemon (mcast=d1, syncid=9, maxlen=1400, group=239.1.2.3, port=9000, ttl=2)\n";
    assert_eq!(run(&mut d, "-L --daemon", "").stdout, want);
    assert_eq!(run(&mut d, "-l --daemon", "").stdout, want);
    assert_eq!(run(&mut d, "--stop-daemon master", "").status, 0);
    assert_eq!(
        run(&mut d, "-L --daemon", "").stdout,
        "backup sync daemon (mcast=d1, syncid=9, maxlen=1400, group=239.1.2.3, port=9000, ttl=2)\n"
    );
}

#[test]
fn bfd_lists_sessions() {
    let mut d = FakeDaemon::default();
    let outcome = run(&mut d, "--bfd", "");
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    assert_eq!(
        outcome.stdout,
        "Instance Neighbor Source State Remote Diagnostic Discriminators(local/remote) TxInterval(ms) DetectTime(ms)\n\
         UPSTREAM 10.0.0.254 10.0.0.1 Up Up \"No Diagnostic\" 7/9 50.0 250.0\n"
    );
    assert!(
        parse_args_with(&["--bfd", "extra"], &StaticResolver::new()).is_err(),
        "--bfd takes no argument"
    );
}

#[test]
fn vrrp_lists_instances() {
    let mut d = FakeDaemon::default();
    let outcome = run(&mut d, "--vrrp", "");
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    let out = outcome.stdout;
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("Instance Group Interface VRID Version State Priority(effective/configured) Master VIPs"),
        "{out}"
    );
    assert!(
        out.contains("VI_1 - eth0 51 v2 MASTER 150/150 10.0.0.1 10.0.0.100"),
        "{out}"
    );
}

#[test]
fn doctor_prints_each_finding_with_its_detail() {
    let mut d = FakeDaemon::default();
    let outcome = run(&mut d, "--doctor", "");
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    assert_eq!(
        outcome.stdout,
        "nat-no-replies: TCP 10.0.0.1:80 -> 10.1.0.2:80\n    no reply came back\n"
    );
}

/// Names on input (`gethostbyname`, `getservbyname` of the service's protocol) and, without
/// `-n`, on output (`addrport_to_anyname`: `host:service`, `[host]:service` for IPv6, numbers
/// where there is no name, no port names for firewall-mark services), as ipvsadm.
#[test]
fn host_and_service_names_in_and_out() {
    let names = StaticResolver::new()
        .host("www.example", IpAddr::from([192, 0, 2, 10]))
        .host("rs1.example", IpAddr::from([10, 0, 0, 1]))
        .host("v6.example", "2001:db8::10".parse().expect("v6"))
        .service("http", 80, PortProto::Tcp)
        .service("https", 443, PortProto::Tcp)
        .service("domain", 53, PortProto::Udp);
    let mut d = FakeDaemon::default();
    for line in [
        "-A -t www.example:https -s rr",
        "-a -t www.example:https -r rs1.example:https -m",
        "-A -u www.example:domain",
        "-a -u www.example:domain -r rs1.example -m",
        "-A -t [2001:db8::10]:http",
        "-a -t [2001:db8::10]:http -r [2001:db8::20]:8080 -m",
        "-A -f 5 -p",
        "-a -f 5 -r rs1.example:http -m",
    ] {
        let out = run_with(&mut d, line, "", &names);
        assert_eq!((out.status, out.stderr.as_str()), (0, ""), "{line}");
    }
    let refused = parse_args_with(
        &["-a", "-t", "www.example:https", "-r", "rs1.example:domain"],
        &names,
    );
    assert_eq!(
        refused.map_err(|e| (e.to_string(), e.exit_code())),
        Err(("illegal real server address[:port] specified".into(), 2)),
        "domain is a UDP service only"
    );
    assert_eq!(
        run_with(&mut d, "-S", "", &names).stdout,
        "-A -t www.example:https -s rr\n\
         -a -t www.example:https -r rs1.example:https -m -w 1\n\
         -A -u www.example:domain -s wlc\n\
         -a -u www.example:domain -r rs1.example:domain -m -w 1\n\
         -A -t [v6.example]:http -s wlc\n\
         -a -t [v6.example]:http -r [2001:db8::20]:8080 -m -w 1\n\
         -A -f 5 -s wlc -p 360\n\
         -a -f 5 -r rs1.example:80 -m -w 1\n"
    );
    assert_eq!(
        run_with(&mut d, "-S -n", "", &names).stdout,
        "-A -t 192.0.2.10:443 -s rr\n\
         -a -t 192.0.2.10:443 -r 10.0.0.1:443 -m -w 1\n\
         -A -u 192.0.2.10:53 -s wlc\n\
         -a -u 192.0.2.10:53 -r 10.0.0.1:53 -m -w 1\n\
         -A -t [2001:db8::10]:80 -s wlc\n\
         -a -t [2001:db8::10]:80 -r [2001:db8::20]:8080 -m -w 1\n\
         -A -f 5 -s wlc -p 360\n\
         -a -f 5 -r 10.0.0.1:80 -m -w 1\n"
    );
    let listed = run_with(&mut d, "-L", "", &names).stdout;
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines[3], "TCP  www.example:https rr");
    assert_eq!(
        lines[4],
        "  -> rs1.example:https            Masq    1      0          0         "
    );
    assert_eq!(lines[7], "TCP  [v6.example]:http wlc");
    assert_eq!(
        lines[8],
        "  -> [2001:db8::20]:8080          Masq    1      0          0         "
    );
    assert_eq!(lines[9], "FWM  5 wlc persistent 360");
    let one = run_with(&mut d, "-L -u www.example:domain", "", &names).stdout;
    assert_eq!(
        one.lines().nth(2),
        Some("UDP  www.example:domain wlc"),
        "{one}"
    );
}
