//! A table of broken files with the diagnostic and line each gets.

use rvs_keepalived::{load_str, load_str_lenient, parse_str};
use std::path::Path;

/// The start of a VRRP instance missing its router id.
const VRRP_HEAD: &str = "vrrp_instance VI_1 {\n    interface eth0\n";

#[test]
fn broken_files_report_exact_errors() {
    let vrid_abc = format!("{VRRP_HEAD}    virtual_router_id abc\n}}\n");
    let prio_0 = format!("{VRRP_HEAD}    virtual_router_id 5\n    priority 0\n}}\n");
    let cases: Vec<(&str, String)> = vec![
        ("keepalived.conf:3: virtual_router_id: expected a number 1-255, got 'abc'", vrid_abc),
        ("keepalived.conf:4: priority: expected a number 1-255, got '0'", prio_0),
        ("keepalived.conf:1: vrrp_instance VI_1: expected virtual_router_id", format!("{VRRP_HEAD}}}\n")),
        ("keepalived.conf:1: vrrp_instance VI_1: expected interface", "vrrp_instance VI_1 {\n virtual_router_id 1\n}\n".into()),
        ("keepalived.conf:2: virtual_server: expected an IP address, got '10.0.0'", "\nvirtual_server 10.0.0 80 {\n}\n".into()),
        ("keepalived.conf:1: virtual_server: expected a number 0-65535, got '99999'", "virtual_server 192.168.1.253 99999 {\n}\n".into()),
        ("keepalived.conf:2: lb_kind: expected NAT|DR|TUN, got 'FULLNAT'", "virtual_server 192.168.1.253 80 {\n lb_kind FULLNAT\n}\n".into()),
        ("keepalived.conf:2: protocol: expected TCP|UDP|SCTP, got 'ICMP'", "virtual_server 192.168.1.253 80 {\n protocol ICMP\n}\n".into()),
        ("keepalived.conf:2: delay_loop: expected a time in seconds above 0, got 'soon'", "virtual_server 192.168.1.253 80 {\n delay_loop soon\n}\n".into()),
        ("keepalived.conf:3: weight: expected a number 0-2147483647, got '-1'", "virtual_server 192.168.1.253 80 {\n real_server 10.10.10.11 80 {\n  weight -1\n }\n}\n".into()),
        ("keepalived.conf:4: connect_port: expected a number 0-65535, got 'http'", "virtual_server 192.168.1.253 80 {\n real_server 10.10.10.11 80 {\n  TCP_CHECK {\n   connect_port http\n  }\n }\n}\n".into()),
        ("keepalived.conf:3: HTTP_GET: expected at least one url block", "virtual_server 192.168.1.253 80 {\n real_server 10.10.10.11 80 {\n  HTTP_GET {\n  }\n }\n}\n".into()),
        ("keepalived.conf:5: status_code: expected a code 100-999 or a range like 200-299, got '299-200'", "virtual_server 192.168.1.253 80 {\n real_server 10.10.10.11 80 {\n  HTTP_GET {\n   url {\n    status_code 299-200\n    path /\n   }\n  }\n }\n}\n".into()),
        ("keepalived.conf:5: digest: expected an MD5 digest (32 hex digits), got 'xyz'", "virtual_server 192.168.1.253 80 {\n real_server 10.10.10.11 80 {\n  HTTP_GET {\n   url {\n    digest xyz\n    path /\n   }\n  }\n }\n}\n".into()),
        ("keepalived.conf:1: virtual_server group NOPE: no virtual_server_group named 'NOPE' - ignoring", "virtual_server group NOPE {\n}\n".into()),
        ("keepalived.conf:2: virtual_server_group G: expected an address, a range like 10.0.0.1-10 or fwmark N, got '10.0.0.9-3'", "virtual_server_group G {\n 10.0.0.9-3 80\n}\n".into()),
        ("keepalived.conf:1: virtual_server: expected a '{' block", "virtual_server 192.168.1.253 80\n".into()),
        ("keepalived.conf:3: unexpected '}'", "global_defs {\n}\n}\n".into()),
        ("keepalived.conf:1: global_defs: missing '}' for this block", "global_defs {\n router_id X\n".into()),
        ("keepalived.conf:2: unterminated quoted string", "global_defs {\n router_id \"X\n}\n".into()),
        ("keepalived.conf:5: auth_type: expected PASS|AH, got 'MD5'", "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n authentication {\n  auth_type MD5\n  auth_pass x\n }\n}\n".into()),
        ("keepalived.conf:1: vrrp_sync_group G: no vrrp_instance named 'VI_9' - ignoring", "vrrp_sync_group G {\n group {\n  VI_9\n }\n}\n".into()),
        ("keepalived.conf:2: lvs_method: TUN type gue needs a port", "virtual_server 192.168.1.253 80 {\n lvs_method TUN type gue\n}\n".into()),
        ("keepalived.conf:4: real_server 10.10.10.11 80: duplicated in virtual_server 192.168.1.253 80 - removing second rs", "virtual_server 192.168.1.253 80 {\n real_server 10.10.10.11 80 {\n }\n real_server 10.10.10.11 80 {\n }\n}\n".into()),
    ];
    for (expected, text) in cases {
        let (_, report) = parse_str(&text, Path::new("keepalived.conf"));
        let got: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        assert!(
            got.iter().any(|g| g == expected),
            "for file:\n{text}\n{got:?}"
        );
        assert!(load_str(&text, Path::new("keepalived.conf")).is_err());
    }
}

/// keepalived -t fails on an unknown keyword ("Unknown keyword"); at run time it is skipped.
/// Its block is not skipped whole: keepalived ignores the `{` and reads what follows at the
/// same level, so the block's `}` is one too many at the top level (as keepalived 2.2.7 says).
#[test]
fn unknown_keywords_are_lenient_errors() {
    let text = "global_defs {\n    router_id A\n    bogus_option 1\n}\nfrobnicate {\n}\n";
    assert!(load_str(text, Path::new("keepalived.conf")).is_err());
    let loaded = load_str_lenient(text, Path::new("keepalived.conf")).unwrap();
    assert_eq!(loaded.config.global.router_id.as_deref(), Some("A"));
    let got: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "keepalived.conf:3: unknown keyword 'bogus_option' in global_defs",
            "keepalived.conf:5: unknown keyword 'frobnicate' in the top level",
            "keepalived.conf:5: Unexpected '{' - ignoring",
            "keepalived.conf:5: unexpected '}' (keepalived: Unknown keyword '}')",
        ]
    );
}

/// keepalived's lbflags_handler: a scheduler flag needs `lvs_sched sh` (or `mh`) before it;
/// otherwise it is an error and ignored.
#[test]
fn sh_flags_need_the_sh_scheduler() {
    let text = "virtual_server 192.168.1.253 80 {\n lvs_sched rr\n sh-port\n protocol TCP\n lb_kind NAT\n real_server 10.0.0.2 80 {\n }\n}\n";
    let loaded = load_str_lenient(text, Path::new("keepalived.conf")).unwrap();
    assert_eq!(
        loaded.errors[0].to_string(),
        "keepalived.conf:3: sh-port only applies to sh scheduler - ignoring"
    );
    assert!(loaded.config.virtual_servers[0]
        .sched_flags
        .names
        .is_empty());
    let text = text.replace("lvs_sched rr", "lvs_sched sh");
    let loaded = load_str(&text, Path::new("keepalived.conf")).unwrap();
    assert_eq!(
        loaded.config.virtual_servers[0].sched_flags.names,
        ["sh-port"]
    );
}
