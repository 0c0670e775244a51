//! Byte-for-byte comparison of rvsadm's output with golden files.
//!
//! The golden files are produced by `tests/golden/generate.py`, which applies ipvsadm 1.31's own
//! printf formats (print_title, print_service_entry, print_largenum, list_conn/print_conn,
//! list_timeout, print_tunnel_rule) to `tests/golden/fixture.json`, independently of the Rust
//! renderer. The fixture's services are deliberately out of order to check ipvsadm's sorting.

use rvs_api::{
    ConnView, CounterView, DestConfig, DestView, ForwardMethod, Info, ServiceConfig, ServiceId,
};
use rvs_api::{RatesView, ServiceView, StatsView, Timeouts};
use rvsadm::{render, Format, StaticResolver};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// No names: the golden files are numeric (`-n`), as generate.py writes them.
static NO_NAMES: StaticResolver = StaticResolver::EMPTY;

struct Fixture {
    daemons: Vec<rvs_api::DaemonConfig>,
    info: Info,
    services: Vec<ServiceView>,
    connections: Vec<ConnView>,
    timeouts: Timeouts,
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(golden_dir().join("fixture.json")).expect("fixture");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    Fixture {
        daemons: serde_json::from_value(v["daemons"].clone()).expect("daemons"),
        info: serde_json::from_value(v["info"].clone()).expect("info"),
        services: serde_json::from_value(v["services"].clone()).expect("services"),
        connections: serde_json::from_value(v["connections"].clone()).expect("connections"),
        timeouts: serde_json::from_value(v["timeouts"].clone()).expect("timeouts"),
    }
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(golden_dir().join(name)).expect("golden file")
}

fn check(name: &str, actual: &str) {
    let expected = golden(name);
    if actual != expected {
        for (i, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
            if a != e {
                panic!(
                    "{name}: first difference at line {}:\n got: {a:?}\nwant: {e:?}",
                    i + 1
                );
            }
        }
        panic!(
            "{name}: differs (length {} vs {})",
            actual.len(),
            expected.len()
        );
    }
}

fn numeric() -> Format {
    Format {
        numeric: true,
        ..Format::default()
    }
}

#[test]
fn list_numeric() {
    let f = fixture();
    check(
        "list_numeric.txt",
        &render::list_all(&f.info, &f.services, &numeric(), &NO_NAMES),
    );
}

#[test]
fn stats_and_rates() {
    let f = fixture();
    let cases = [
        (
            "stats.txt",
            Format {
                stats: true,
                ..numeric()
            },
        ),
        (
            "stats_exact.txt",
            Format {
                stats: true,
                exact: true,
                ..numeric()
            },
        ),
        (
            "rate.txt",
            Format {
                rate: true,
                ..numeric()
            },
        ),
        (
            "rate_exact.txt",
            Format {
                rate: true,
                exact: true,
                ..numeric()
            },
        ),
    ];
    for (name, format) in cases {
        check(
            name,
            &render::list_all(&f.info, &f.services, &format, &NO_NAMES),
        );
    }
}

#[test]
fn thresholds_persistent_conn_and_tun_info() {
    let f = fixture();
    let cases = [
        (
            "thresholds.txt",
            Format {
                thresholds: true,
                ..numeric()
            },
        ),
        (
            "persistent_conn.txt",
            Format {
                persistent_conn: true,
                ..numeric()
            },
        ),
        (
            "tun_info.txt",
            Format {
                tun_info: true,
                ..numeric()
            },
        ),
    ];
    for (name, format) in cases {
        check(
            name,
            &render::list_all(&f.info, &f.services, &format, &NO_NAMES),
        );
    }
}

#[test]
fn save_numeric() {
    let f = fixture();
    check(
        "save.txt",
        &render::save(&f.services, &numeric(), &NO_NAMES),
    );
}

#[test]
fn one_service() {
    let f = fixture();
    let service = f
        .services
        .iter()
        .find(|s| s.config.id.socket_addr().map(|a| a.port()) == Some(80))
        .expect("tcp 80");
    check(
        "list_one_service.txt",
        &render::list_service(service, &numeric(), &NO_NAMES),
    );
}

#[test]
fn connections() {
    let f = fixture();
    check(
        "connections.txt",
        &render::connections(&f.connections, &numeric(), &NO_NAMES),
    );
    let pc = Format {
        persistent_conn: true,
        ..numeric()
    };
    check(
        "connections_persistent.txt",
        &render::connections(&f.connections, &pc, &NO_NAMES),
    );
}

#[test]
fn daemon() {
    let f = fixture();
    // The fixture lists the backup first: ipvsadm prints the master first.
    let mut reversed = f.daemons.clone();
    reversed.reverse();
    check("daemon.txt", &render::daemons(&f.daemons));
    check("daemon.txt", &render::daemons(&reversed));
}

#[test]
fn timeout() {
    let f = fixture();
    check("timeout.txt", &render::timeouts(&f.timeouts));
}

/// The `ipvsadm -Ln` output of seed 000, with the trailing blanks that ipvsadm's
/// `"  -> %-28s %-7s %-6d %-10u %-10u\n"` prints (the blog post lost them).
#[test]
fn seed_000_list() {
    let v4 = |d| IpAddr::V4(Ipv4Addr::new(192, 168, 237, d));
    let dest = |d| DestView {
        config: DestConfig::new(v4(d), 80, 1, ForwardMethod::Masq),
        active_conns: 0,
        inactive_conns: 0,
        persist_conns: 0,
        stats: StatsView::default(),
        rates: RatesView::default(),
    };
    let service = ServiceView {
        config: ServiceConfig::new(
            ServiceId::Tcp {
                addr: IpAddr::V4(Ipv4Addr::new(192, 168, 2, 130)),
                port: 80,
            },
            "rr",
        ),
        stats: StatsView::default(),
        rates: RatesView::default(),
        dests: vec![dest(172), dest(171)],
    };
    let info = Info {
        version: "1.2.1".into(),
        conn_table_size: 4096,
        daemon: String::new(),
    };
    let expected = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  192.168.2.130:80 rr\n",
        "  -> 192.168.237.171:80           Masq    1      0          0         \n",
        "  -> 192.168.237.172:80           Masq    1      0          0         \n",
    );
    assert_eq!(
        render::list_all(&info, &[service], &numeric(), &NO_NAMES),
        expected
    );
}

#[test]
fn largenum_scaling() {
    assert_eq!(render::largenum(99_999_999, false), " 99999999");
    assert_eq!(render::largenum(100_000_000, false), "  100000K");
    assert_eq!(render::largenum(999_999_999_999, false), "     999G");
    assert_eq!(render::largenum(123, true), "      123");
    assert_eq!(render::largenum(1_234_567_890, true), " 1234567890");
}

/// `--counters` is rvs's own output (ipvsadm has none), so `counters.txt` is written by hand, not
/// by generate.py: names left-aligned, values right-aligned, two spaces between.
#[test]
fn counters() {
    let counters = [
        CounterView::new("connections", 12),
        CounterView::new("drop_malformed", 3),
        CounterView::new("drop_truncated", 0),
        CounterView::new("drop_no_connection_non_syn", 1_234_567),
        CounterView::new("tx_sent", 42),
    ];
    check("counters.txt", &render::counters(&counters));
    assert_eq!(render::counters(&[]), "");
}

/// FULLNAT is an rvs extension: its services and real servers are rendered with the same
/// ipvsadm formats (`FullNat` in the Forward column), and saved with the long options
/// `--laddr`, `--proxy-protocol` and `--fullnat`. Kept apart from `fixture.json`, so the
/// ipvsadm-derived golden files stay untouched.
fn fullnat_services() -> Vec<ServiceView> {
    let vip = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 253));
    let mut config = ServiceConfig::new(
        ServiceId::Tcp {
            addr: vip,
            port: 80,
        },
        "rr",
    );
    config.local_addrs = vec![
        IpAddr::V4(Ipv4Addr::new(10, 10, 10, 101)),
        IpAddr::V4(Ipv4Addr::new(10, 10, 10, 102)),
    ];
    config.proxy_protocol = Some(rvs_api::ProxyProtocol::V2);
    let dest = |last: u8, active: u32, inactive: u32| DestView {
        config: DestConfig::new(
            IpAddr::V4(Ipv4Addr::new(10, 10, 10, last)),
            8088,
            1,
            ForwardMethod::FullNat,
        ),
        active_conns: active,
        inactive_conns: inactive,
        persist_conns: 0,
        stats: StatsView::default(),
        rates: RatesView::default(),
    };
    vec![ServiceView {
        config,
        stats: StatsView::default(),
        rates: RatesView::default(),
        dests: vec![dest(2, 1, 4), dest(3, 0, 5)],
    }]
}

#[test]
fn fullnat_list_and_save() {
    let info = fixture().info;
    let services = fullnat_services();
    check(
        "list_fullnat.txt",
        &render::list_all(&info, &services, &numeric(), &NO_NAMES),
    );
    check(
        "save_fullnat.txt",
        &render::save(&services, &numeric(), &NO_NAMES),
    );
}

fn sort_fixture() -> Vec<ServiceView> {
    let text = std::fs::read_to_string(golden_dir().join("fixture_sort.json")).expect("fixture");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    serde_json::from_value(v["services"].clone()).expect("services")
}

/// ipvsadm's order: glibc's merge sort with libipvs's comparators, whose 32-bit differences wrap
/// around (192.168.1.1 before 10.0.0.1, fwmarks of 2^31 and more before every address service,
/// a cyclic triple 1.0.0.1 < 97.0.0.1 < 193.0.0.1 < 1.0.0.1). `fixture_sort.json` lists them in
/// another order; `--nosort` keeps the daemon's.
#[test]
fn sorting_matches_ipvsadm() {
    let f = fixture();
    let services = sort_fixture();
    let cases = [
        ("sort_list.txt", numeric()),
        (
            "sort_nosort.txt",
            Format {
                nosort: true,
                ..numeric()
            },
        ),
        (
            "sort_stats.txt",
            Format {
                stats: true,
                ..numeric()
            },
        ),
        (
            "sort_rate.txt",
            Format {
                rate: true,
                ..numeric()
            },
        ),
    ];
    for (name, format) in cases {
        check(
            name,
            &render::list_all(&f.info, &services, &format, &NO_NAMES),
        );
    }
    check(
        "sort_save.txt",
        &render::save(&services, &numeric(), &NO_NAMES),
    );
}

#[test]
fn comparators_wrap_around_like_libipvs() {
    use std::cmp::Ordering::{Greater, Less};
    let tcp = |a: [u8; 4], port| ServiceId::Tcp {
        addr: IpAddr::from(a),
        port,
    };
    // A naive comparison puts 10.0.0.1 first; 0x0a000001 - 0xc0a80101 wraps to a positive int.
    assert_eq!(
        render::cmp_services(&tcp([10, 0, 0, 1], 80), &tcp([192, 168, 1, 1], 80)),
        Greater
    );
    assert_eq!(
        render::cmp_services(&tcp([10, 0, 0, 1], 80), &tcp([10, 0, 0, 1], 443)),
        Less
    );
    let mark = |mark| ServiceId::Fwmark { mark, ipv6: false };
    assert_eq!(
        render::cmp_services(&mark(0x8000_0001), &tcp([1, 2, 3, 4], 80)),
        Less
    );
    assert_eq!(
        render::cmp_services(&mark(5), &tcp([1, 2, 3, 4], 80)),
        Greater
    );
    let dest = |a: [u8; 4]| DestConfig::new(IpAddr::from(a), 80, 1, ForwardMethod::Masq);
    let (a, b, c) = (
        dest([1, 0, 0, 1]),
        dest([97, 0, 0, 1]),
        dest([193, 0, 0, 1]),
    );
    assert_eq!(render::cmp_dests(&a, &b), Less);
    assert_eq!(render::cmp_dests(&b, &c), Less);
    assert_eq!(render::cmp_dests(&c, &a), Less, "the order is cyclic");
    let mut list = vec![&c, &a, &b];
    render::qsort(&mut list, &|x, y| render::cmp_dests(x, y));
    assert_eq!(
        list,
        vec![&c, &a, &b],
        "glibc's merge sort keeps [c] before [a, b]"
    );
}

/// ipvsadm's `addrport_to_anyname` without `-n`: names where there are some, each part numeric
/// otherwise; the service name for the connection's protocol (none for `IP` templates);
/// 33-byte service and 28-byte real server columns cut long names as ipvsadm's buffers do.
#[test]
fn names_without_numeric() {
    use rvsadm::PortProto;
    let long = "a-very-long-host-name-for-the-real-server.example";
    let names = StaticResolver::new()
        .host("vip.example", IpAddr::from([192, 168, 2, 130]))
        .host(long, IpAddr::from([192, 168, 237, 171]))
        .host("client.example", IpAddr::from([192, 168, 2, 1]))
        .service("http", 80, PortProto::Tcp)
        .service("www-udp", 80, PortProto::Udp);
    let dest = |d| DestView {
        config: DestConfig::new(IpAddr::from([192, 168, 237, d]), 80, 1, ForwardMethod::Masq),
        active_conns: 0,
        inactive_conns: 0,
        persist_conns: 0,
        stats: StatsView::default(),
        rates: RatesView::default(),
    };
    let service = ServiceView {
        config: ServiceConfig::new(
            ServiceId::Tcp {
                addr: IpAddr::from([192, 168, 2, 130]),
                port: 80,
            },
            "rr",
        ),
        stats: StatsView::default(),
        rates: RatesView::default(),
        dests: vec![dest(172), dest(171)],
    };
    assert_eq!(
        render::list_service(&service, &Format::default(), &names),
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  vip.example:http rr\n",
            "  -> a-very-long-host-name-for-th Masq    1      0          0         \n",
            "  -> 192.168.237.172:http         Masq    1      0          0         \n",
        )
    );
    assert_eq!(
        render::save(&[service], &Format::default(), &names),
        format!(
            "-A -t vip.example:http -s rr\n\
             -a -t vip.example:http -r {long}:http -m -w 1\n\
             -a -t vip.example:http -r 192.168.237.172:http -m -w 1\n"
        )
    );
    let conn = |proto: &str| ConnView {
        proto: proto.into(),
        client: "192.168.2.1:80".parse().expect("client"),
        virtual_addr: "192.168.2.130:80".parse().expect("vip"),
        dest: "192.168.237.172:80".parse().expect("dest"),
        state: "NONE".into(),
        expires_ms: 60_000,
        pe: None,
    };
    assert_eq!(
        render::connections(&[conn("UDP"), conn("IP")], &Format::default(), &names),
        concat!(
            "IPVS connection entries\n",
            "pro expire state       source             virtual            destination\n",
            "UDP 01:00  NONE        client.example:www-udp vip.example:www-udp 192.168.237.172:www-udp\n",
            "IP  01:00  NONE        client.example:80  vip.example:80     192.168.237.172:80\n",
        )
    );
}

/// `--sctp-service` services among TCP and UDP ones at the same address and port (ipvsadm sorts
/// by protocol number: TCP, UDP, SCTP), saved as `-A --sctp-service ...`, and SCTP connections
/// in IPVS's state names (`C-SENT`, `S-ACK-SENT`, ...), from `fixture_sctp.json`.
#[test]
fn sctp_listings_match_ipvsadm() {
    let info = fixture().info;
    let text = std::fs::read_to_string(golden_dir().join("fixture_sctp.json")).expect("fixture");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let services: Vec<ServiceView> =
        serde_json::from_value(v["services"].clone()).expect("services");
    let conns: Vec<ConnView> =
        serde_json::from_value(v["connections"].clone()).expect("connections");
    check(
        "sctp_list.txt",
        &render::list_all(&info, &services, &numeric(), &NO_NAMES),
    );
    let stats = Format {
        stats: true,
        ..numeric()
    };
    check(
        "sctp_stats.txt",
        &render::list_all(&info, &services, &stats, &NO_NAMES),
    );
    check(
        "sctp_save.txt",
        &render::save(&services, &numeric(), &NO_NAMES),
    );
    check(
        "sctp_connections.txt",
        &render::connections(&conns, &numeric(), &NO_NAMES),
    );
}

/// `--pe sip` services as ipvsadm lists (` pe sip`) and saves (` --pe sip`) them, and their
/// Call-ID templates, whose engine name and data `-Lnc --persistent-conn` shows.
#[test]
fn pe_sip_listings_match_ipvsadm() {
    let info = fixture().info;
    let text = std::fs::read_to_string(golden_dir().join("fixture_sip.json")).expect("fixture");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let services: Vec<ServiceView> =
        serde_json::from_value(v["services"].clone()).expect("services");
    let conns: Vec<ConnView> =
        serde_json::from_value(v["connections"].clone()).expect("connections");
    check(
        "sip_list.txt",
        &render::list_all(&info, &services, &numeric(), &NO_NAMES),
    );
    check(
        "sip_save.txt",
        &render::save(&services, &numeric(), &NO_NAMES),
    );
    check(
        "sip_connections.txt",
        &render::connections(&conns, &numeric(), &NO_NAMES),
    );
    let pc = Format {
        persistent_conn: true,
        ..numeric()
    };
    check(
        "sip_connections_persistent.txt",
        &render::connections(&conns, &pc, &NO_NAMES),
    );
}

/// Under the name ipvsadm, `-h` is ipvsadm 1.31's `usage_exit` text with `argv[0]`
/// (`usage_ipvsadm.txt` is the output of that function, compiled from ipvsadm.c with its
/// SCHEDULERS and PE_LIST, for `/sbin/ipvsadm`), and `-v` its `version` line.
#[test]
fn usage_and_version_as_ipvsadm() {
    check(
        "usage_ipvsadm.txt",
        &rvsadm::help::usage_as("/sbin/ipvsadm"),
    );
    assert_eq!(
        rvsadm::help::version_as("ipvsadm"),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
    );
}
