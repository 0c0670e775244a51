//! Parsing every command form the seeds use, ipvsadm's option combinations, and its errors.

use rvs_api::{Command, DaemonRole, DestConfig, ForwardMethod, ServiceConfig, ServiceId, Timeouts};
use rvsadm::{parse_args, parse_restore_args, Action, Format, ListRequest, ListTarget, ParseError};
use std::net::{IpAddr, Ipv4Addr};

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn parse(line: &str) -> Result<Action, ParseError> {
    parse_args(&words(line))
}

fn ok(line: &str) -> Action {
    parse(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn err(line: &str) -> (String, i32) {
    match parse(line) {
        Ok(a) => panic!("{line}: accepted as {a:?}"),
        Err(e) => (e.to_string(), e.exit_code()),
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn tcp(addr: IpAddr, port: u16) -> ServiceId {
    ServiceId::Tcp { addr, port }
}

fn list(target: ListTarget, format: Format) -> Action {
    Action::List(ListRequest { target, format })
}

#[test]
fn seed_service_and_server_commands() {
    let vip = tcp(v4(192, 168, 1, 253), 80);
    assert_eq!(
        ok("-A -t 192.168.1.253:80 -s rr"),
        Action::Apply(Command::AddService(ServiceConfig::new(vip, "rr")))
    );
    assert_eq!(
        ok("-a -t 192.168.1.253:80 -r 10.10.10.2:80 -m"),
        Action::Apply(Command::AddDest {
            service: vip,
            dest: DestConfig::new(v4(10, 10, 10, 2), 80, 1, ForwardMethod::Masq),
        })
    );
    let vip = tcp(v4(10, 0, 0, 200), 80);
    assert_eq!(
        ok("-A -t 10.0.0.200:80 -s wrr"),
        Action::Apply(Command::AddService(ServiceConfig::new(vip, "wrr")))
    );
    assert_eq!(
        ok("-a -t 10.0.0.200:80 -r 10.0.0.7:80 -g"),
        Action::Apply(Command::AddDest {
            service: vip,
            dest: DestConfig::new(v4(10, 0, 0, 7), 80, 1, ForwardMethod::Route),
        })
    );
    assert_eq!(ok("-C"), Action::Apply(Command::Clear));
    assert_eq!(ok("-Z"), Action::Apply(Command::Zero { service: None }));
    assert_eq!(
        ok("-Z -t 10.0.0.200:80"),
        Action::Apply(Command::Zero { service: Some(vip) })
    );
    assert_eq!(
        ok("-D -t 10.0.0.200:80"),
        Action::Apply(Command::DelService(vip))
    );
    assert_eq!(
        ok("-d -t 10.0.0.200:80 -r 10.0.0.7"),
        Action::Apply(Command::DelDest {
            service: vip,
            addr: v4(10, 0, 0, 7),
            port: 80
        })
    );
}

#[test]
fn seed_list_and_save_commands() {
    let n = Format {
        numeric: true,
        ..Format::default()
    };
    assert_eq!(ok("-Ln"), list(ListTarget::All, n));
    assert_eq!(ok("-ln"), list(ListTarget::All, n));
    assert_eq!(ok("-L -n"), list(ListTarget::All, n));
    assert_eq!(ok("--list --numeric"), list(ListTarget::All, n));
    assert_eq!(ok("-Lnc"), list(ListTarget::Connections, n));
    assert_eq!(ok("-L"), list(ListTarget::All, Format::default()));
    assert_eq!(
        parse_args::<&str>(&[]),
        Ok(list(ListTarget::All, Format::default()))
    );
    assert_eq!(ok("-S"), Action::Save(Format::default()));
    assert_eq!(ok("-S -n"), Action::Save(n));
    assert_eq!(ok("-Sn"), Action::Save(n));
    assert_eq!(ok("-R"), Action::Restore);
    assert_eq!(
        ok("-L --timeout"),
        list(ListTarget::Timeouts, Format::default())
    );
    assert_eq!(
        ok("-Ln --stats --exact --nosort --sort"),
        list(
            ListTarget::All,
            Format {
                stats: true,
                exact: true,
                nosort: true,
                ..n
            }
        )
    );
    assert_eq!(
        ok("-Ln -t 10.0.0.200:80 --thresholds"),
        list(
            ListTarget::Service(tcp(v4(10, 0, 0, 200), 80)),
            Format {
                thresholds: true,
                ..n
            }
        )
    );
    assert_eq!(ok("-h"), Action::Help);
    assert_eq!(ok("--version"), Action::Version);
}

#[test]
fn persistence_netmask_and_options() {
    let Action::Apply(Command::AddService(c)) =
        ok("-A -t 10.0.0.1:0 -s sh -p -M 255.255.255.0 -b sh-port")
    else {
        panic!("add");
    };
    assert_eq!(
        c.persistence,
        Some(360),
        "ipvsadm's IPVS_SVC_PERSISTENT_TIMEOUT"
    );
    assert_eq!(c.netmask, Some("255.255.255.0".parse().unwrap()));
    // ipvsadm's parse_netmask is inet_aton: any mask, contiguous or not, which the kernel
    // takes for IPv4.
    let Action::Apply(Command::AddService(odd)) = ok("-A -t 10.0.0.1:80 -p -M 255.0.255.0") else {
        panic!("add");
    };
    assert_eq!(odd.netmask, Some("255.0.255.0".parse().unwrap()));
    assert_eq!(c.sched_flags, vec!["sh-port".to_string()]);
    let Action::Apply(Command::AddService(c)) = ok("-A -t 10.0.0.1:80 -p 600") else {
        panic!("add");
    };
    assert_eq!((c.persistence, c.scheduler.as_str()), (Some(600), "wlc"));
    let Action::Apply(Command::EditService(c)) = ok("-E -u 10.0.0.1:53 -s rr -o --pe sip") else {
        panic!("edit");
    };
    assert!(c.one_packet);
    assert_eq!(c.pe.as_deref(), Some("sip"));
    let Action::Apply(Command::AddService(c)) = ok("-A -f 7 -6 -s rr -p 60 -M 64") else {
        panic!("fwmark");
    };
    assert_eq!(
        c.id,
        ServiceId::Fwmark {
            mark: 7,
            ipv6: true
        }
    );
    assert_eq!(c.netmask, Some("ffff:ffff:ffff:ffff::".parse().unwrap()));
    let Action::Apply(Command::AddDest { dest, .. }) =
        ok("-a -t [2001:db8::1]:443 -r [2001:db8::2]:8443 -m -w 0 -x 100 -y 10")
    else {
        panic!("dest");
    };
    assert_eq!(
        (dest.port, dest.weight, dest.u_threshold, dest.l_threshold),
        (8443, 0, 100, 10)
    );
    // As ipvsadm.c's process_options, a -g/-i server gets the service's port whatever port it
    // was given (the real server receives the packet unchanged); -m and fwmark services keep it.
    let port_of = |line: &str| match ok(line) {
        Action::Apply(Command::AddDest { dest, .. } | Command::EditDest { dest, .. }) => {
            (dest.port, dest.method)
        }
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(
        port_of("-e -t 1.2.3.4:80 -r 10.0.0.2:8080 -w 3"),
        (80, ForwardMethod::Route)
    );
    assert_eq!(
        port_of("-a -t 1.2.3.4:80 -r 10.0.0.2:8080 -g"),
        (80, ForwardMethod::Route)
    );
    assert_eq!(
        port_of("-a -u 1.2.3.4:53 -r 10.0.0.2:5353 -i"),
        (53, ForwardMethod::Tunnel)
    );
    assert_eq!(
        port_of("-a -t 1.2.3.4:80 -r 10.0.0.2:8080 -m"),
        (8080, ForwardMethod::Masq)
    );
    assert_eq!(
        port_of("-a -f 7 -r 10.0.0.2:8080 -g"),
        (8080, ForwardMethod::Route)
    );
    // Without a port, the server gets the service's port.
    let Action::Apply(Command::AddDest { dest, .. }) = ok("-a -t 1.2.3.4:80 -r 10.0.0.2 -g") else {
        panic!("add dest");
    };
    assert_eq!((dest.port, dest.method), (80, ForwardMethod::Route));
    let Action::Apply(Command::AddDest { dest, .. }) =
        ok("-a -t 1.2.3.4:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080 --tun-remcsum")
    else {
        panic!("tunnel");
    };
    let t = dest.tunnel.expect("tunnel config");
    assert_eq!(t.port, Some(6080));
    assert_eq!(
        ok("--set 900 120 300"),
        Action::Apply(Command::SetTimeouts(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        }))
    );
}

#[test]
fn sync_daemon_commands() {
    let cfg = |role, ifname: &str, syncid| rvs_api::DaemonConfig {
        role,
        mcast_interface: ifname.to_string(),
        syncid,
        maxlen: 0,
        group: None,
        port: 0,
        ttl: 0,
    };
    assert_eq!(
        ok("--start-daemon master --mcast-interface eth0 --syncid 5"),
        Action::Apply(Command::StartDaemon(cfg(DaemonRole::Master, "eth0", 5)))
    );
    let mut full = cfg(DaemonRole::Backup, "d1", 0);
    full.maxlen = 1400;
    full.group = Some("239.0.0.9".parse().unwrap());
    full.port = 8849;
    full.ttl = 3;
    assert_eq!(
        ok("--start-daemon=backup --mcast-interface=d1 --sync-maxlen 1400 --mcast-group 239.0.0.9 --mcast-port 8849 --mcast-ttl 3"),
        Action::Apply(Command::StartDaemon(full))
    );
    assert_eq!(
        ok("--stop-daemon backup"),
        Action::Apply(Command::StopDaemon(DaemonRole::Backup))
    );
    for line in ["-L --daemon", "-l --daemon", "-Ln --daemon"] {
        assert_eq!(
            ok(line),
            Action::List(ListRequest {
                target: ListTarget::Daemons,
                format: Format {
                    numeric: line.starts_with("-Ln"),
                    ..Format::default()
                },
            }),
            "{line}"
        );
    }
}

#[test]
fn counters_extension() {
    assert_eq!(ok("--counters"), Action::Counters);
    let cases: &[(&str, &str, i32)] = &[
        (
            "--counters -n",
            "Illegal 'numeric' option with the 'counters' command",
            2,
        ),
        (
            "--counters -t 1.2.3.4:80",
            "Illegal 'service-address' option with the 'counters' command",
            2,
        ),
        (
            "--counters --stats",
            "Illegal 'stats' option with the 'counters' command",
            2,
        ),
        ("--counters extra", "unexpected argument extra", 2),
        ("--counters -L", "invalid option `-L'", 2),
        ("-L --counters", "invalid option `--counters'", 2),
        (
            "--counters=1",
            "Try `rvsadm -h' or 'rvsadm --help' for more information.",
            255,
        ),
    ];
    for &(line, message, code) in cases {
        assert_eq!(err(line), (message.to_string(), code), "{line}");
    }
}

#[test]
fn errors_match_ipvsadm() {
    let cases: &[(&str, &str, i32)] = &[
        (
            "-n -L",
            "Try `rvsadm -h' or 'rvsadm --help' for more information.",
            255,
        ),
        (
            "-t 1.2.3.4:80",
            "Try `rvsadm -h' or 'rvsadm --help' for more information.",
            255,
        ),
        ("-L --bogus", "--bogus: unknown option", 255),
        ("-A -t", "-t: missing argument", 255),
        (
            "-A -t 1.2.3.4",
            "Zero port specified for non-persistent service",
            2,
        ),
        (
            "-A -t bad:80",
            "illegal virtual server address[:port] specified",
            2,
        ),
        (
            "-a -t 1.2.3.4:80 -r nowhere",
            "illegal real server address[:port] specified",
            2,
        ),
        (
            "-A -s rr",
            "You need to supply the 'service-address' option for the 'add-service' command",
            2,
        ),
        (
            "-a -t 1.2.3.4:80",
            "You need to supply the 'real-server' option for the 'add-server' command",
            2,
        ),
        (
            "-D -t 1.2.3.4:80 -s rr",
            "Illegal 'scheduler' option with the 'delete-service' command",
            2,
        ),
        (
            "-C -n",
            "Illegal 'numeric' option with the 'flush' command",
            2,
        ),
        (
            "-L -c --timeout",
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
            2,
        ),
        ("-L -c --stats", "options conflicts in the list command", 2),
        (
            "-A -t 1.2.3.4:80 -s rr -s wlc",
            "multiple 'scheduler' options specified",
            2,
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -m -g",
            "multiple 'forwarding-method' options specified",
            2,
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -w 65536",
            "illegal weight specified",
            2,
        ),
        (
            "-A -t 1.2.3.4:80 -p 0",
            "invalid timeout value `0' specified",
            2,
        ),
        ("-A -f 0", "invalid fwmark value `0' specified", 2),
        ("-A -t 1.2.3.4:80 -6", "-6 used before -f\n", 2),
        (
            "-A -t 1.2.3.4:80 -p -M 255.0.foo",
            "illegal virtual server persistent mask specified",
            2,
        ),
        (
            "-A -t 1.2.3.4:80 -o",
            "One-Packet Scheduling is only for UDP virtual services",
            2,
        ),
        (
            "-A -t 1.2.3.4:80 -b sh-port",
            "incompatible scheduler flag `sh-port'",
            2,
        ),
        (
            "-A -t 1.2.3.4:80 -b bogus",
            "invalid scheduler flag `bogus'",
            2,
        ),
        (
            "-a -t 1.2.3.4:80 -r [::1]:80 -m",
            "Different address family is allowed only for tunneling servers",
            2,
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -m --tun-type gre",
            "Tunnel options conflict with forward method",
            2,
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue",
            "You need to supply the 'tun-port' option for the 'gue' tunnel type",
            2,
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-port 5",
            "Illegal 'tun-port' option with the 'ipip' tunnel type",
            2,
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gre --tun-nocsum --tun-csum",
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type",
            2,
        ),
        ("--set 1 2", "--set option requires 3 timeout values", 2),
        ("--set 1 2 x", "invalid timeout value `x' specified", 2),
        ("-L extra", "unexpected argument extra", 2),
        ("-L -A", "invalid option `-A'", 2),
        (
            "--start-daemon primary",
            "illegal start-daemon parameter specified",
            2,
        ),
    ];
    for &(line, message, code) in cases {
        assert_eq!(err(line), (message.to_string(), code), "{line}");
    }
}

#[test]
fn restore_lines() {
    assert_eq!(parse_restore_args(&["-R"]), Err(ParseError::TryHelp));
    assert_eq!(
        parse_restore_args(&["-A", "-t", "1.2.3.4:80", "-s", "rr"]),
        Ok(Action::Apply(Command::AddService(ServiceConfig::new(
            tcp(v4(1, 2, 3, 4), 80),
            "rr"
        ))))
    );
}

#[test]
fn fullnat_extensions_parse() {
    let Action::Apply(Command::AddService(c)) =
        ok("-A -t 10.0.0.1:80 -s rr --laddr 10.10.10.101,10.10.10.102 --proxy-protocol v2")
    else {
        panic!("add");
    };
    assert_eq!(
        c.local_addrs,
        vec![v4(10, 10, 10, 101), v4(10, 10, 10, 102)]
    );
    assert_eq!(c.proxy_protocol, Some(rvs_api::ProxyProtocol::V2));
    let Action::Apply(Command::EditService(c)) =
        ok("-E -t [2001:db8::1]:443 --laddr [2001:db8::101],2001:db8::102 --proxy-protocol v1")
    else {
        panic!("edit");
    };
    assert_eq!(c.local_addrs.len(), 2);
    assert_eq!(c.proxy_protocol, Some(rvs_api::ProxyProtocol::V1));
    let Action::Apply(Command::AddDest { dest, .. }) =
        ok("-a -t 10.0.0.1:80 -r 10.10.10.2:8080 --fullnat -w 2")
    else {
        panic!("add dest");
    };
    assert_eq!(dest.method, ForwardMethod::FullNat);
    assert_eq!((dest.port, dest.weight), (8080, 2));
    // Without the extensions nothing changes.
    let Action::Apply(Command::AddService(c)) = ok("-A -t 10.0.0.1:80 -s rr") else {
        panic!("add");
    };
    assert!(c.local_addrs.is_empty() && c.proxy_protocol.is_none());
}

#[test]
fn fullnat_extension_errors() {
    let cases = [
        (
            "-a -t 10.0.0.1:80 -r 10.10.10.2 --fullnat -m",
            "multiple 'forwarding-method' options specified",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.10.10.2 --laddr 10.0.0.2",
            "Illegal 'laddr' option with the 'add-server' command",
        ),
        (
            "-L -n --proxy-protocol v2",
            "Illegal 'proxy-protocol' option with the 'list' command",
        ),
        (
            "-A -t 10.0.0.1:80 --proxy-protocol v3",
            "illegal PROXY protocol version `v3' (v1 or v2)",
        ),
        (
            "-A -u 10.0.0.1:53 --proxy-protocol v1",
            "The PROXY protocol (--proxy-protocol) is only for TCP virtual services",
        ),
        (
            "-A -t 10.0.0.1:80 --laddr 2001:db8::1",
            "Local addresses (--laddr) must be of the service's address family",
        ),
        (
            "-A -t 10.0.0.1:80 --laddr 10.0.0.300",
            "illegal local address `10.0.0.300' specified",
        ),
        (
            "-a -t 10.0.0.1:80 -r [2001:db8::2]:80 --fullnat",
            "Different address family is allowed only for tunneling servers",
        ),
    ];
    for (line, want) in cases {
        let (msg, code) = err(line);
        assert!(msg.contains(want), "{line}: {msg}");
        assert_eq!(code, 2, "{line}");
    }
}

/// Names from the system's own files, as ipvsadm reads them: `localhost` from /etc/hosts, the
/// service names of /etc/services for the service's protocol (https/tcp, domain/udp).
#[test]
fn system_host_and_service_names() {
    let lo = v4(127, 0, 0, 1);
    assert_eq!(
        ok("-A -t localhost:https -s rr"),
        Action::Apply(Command::AddService(ServiceConfig::new(tcp(lo, 443), "rr")))
    );
    assert_eq!(
        ok("-a -u localhost:domain -r localhost -m"),
        Action::Apply(Command::AddDest {
            service: ServiceId::Udp { addr: lo, port: 53 },
            dest: DestConfig::new(lo, 53, 1, ForwardMethod::Masq),
        })
    );
    assert_eq!(
        ok("-a -t 10.1:https -r localhost:http -m"),
        Action::Apply(Command::AddDest {
            service: tcp(v4(10, 0, 0, 1), 443),
            dest: DestConfig::new(lo, 80, 1, ForwardMethod::Masq),
        })
    );
    assert_eq!(
        err("-A -t localhost:no-such-service-name"),
        (
            "illegal virtual server address[:port] specified".to_string(),
            2
        )
    );
}

/// popt 1.19's `=` after a short option, `--start-daemon` without `--mcast-interface` (eth0,
/// ipvsadm's `DEF_MCAST_IFN`), and popt's errors naming the whole word.
#[test]
fn popt_details() {
    assert_eq!(
        ok("-A -t=1.2.3.4:80 -s=rr"),
        Action::Apply(Command::AddService(ServiceConfig::new(
            tcp(v4(1, 2, 3, 4), 80),
            "rr"
        )))
    );
    let Action::Apply(Command::StartDaemon(c)) = ok("--start-daemon master") else {
        panic!("not a start");
    };
    assert_eq!(c.mcast_interface, "eth0");
    let cases: &[(&str, &str, i32)] = &[
        (
            "-L=n",
            "Try `rvsadm -h' or 'rvsadm --help' for more information.",
            255,
        ),
        ("-L -n=c", "-n=c: option does not take an argument", 255),
        (
            "-L --numeric=1",
            "--numeric=1: option does not take an argument",
            255,
        ),
        ("-L -nQ", "-nQ: unknown option", 255),
        ("-L --bogus=5", "--bogus=5: unknown option", 255),
        ("-A -nt", "-nt: missing argument", 255),
        // poptBadOption names the word popt read last.
        ("-A -t 1.2.3.4:80 -Lt x", "invalid option `-Lt'", 2),
        ("-L --start-daemon master", "invalid option `master'", 2),
        (
            "-A -t 1.2.3.4:80 -p=",
            "invalid timeout value `' specified",
            2,
        ),
    ];
    for &(line, message, code) in cases {
        assert_eq!(err(line), (message.to_string(), code), "{line}");
    }
}
