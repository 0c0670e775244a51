//! Turns keepalived checker blocks (as `rvs-keepalived` resolves them) into `rvs-health` jobs.

use std::path::PathBuf;
use std::sync::Arc;

use rvs_health::{
    CheckKind, CheckSpec, ClientPath, ConnectOpts, DnsSpec, DnsType, FileSpec, HttpProtocol,
    HttpSpec, MiscSpec, PathProber, Schedule, SmtpSpec, StatusRange, TlsClientSpec, UdpSpec,
    UrlSpec,
};
use rvs_io::NetState;
use rvs_keepalived::{CheckerKind, Lowered, RealServerChecks, ResolvedChecker};

use super::client_path::NetProber;

/// What and when one checker checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCheck {
    /// What to check.
    pub spec: CheckSpec,
    /// When.
    pub schedule: Schedule,
    /// keepalived's block name.
    pub kind: &'static str,
}

/// The checks of one real server; `net` is what `client_path` TCP checks probe through.
pub fn plan(lowered: &Lowered, rs: &RealServerChecks, net: &Arc<NetState>) -> Vec<PlannedCheck> {
    rs.checkers
        .iter()
        .map(|c| PlannedCheck {
            spec: spec(lowered, rs, c, net),
            schedule: Schedule {
                delay_loop: c.delay_loop,
                retry: c.retry,
                delay_before_retry: c.delay_before_retry,
                warmup: c.warmup,
                alpha: c.spec.common.alpha.unwrap_or(rs.policy.alpha),
            },
            kind: c.spec.kind.keyword(),
        })
        .collect()
}

/// The client's path for a checker with `client_path`: for a direct-routing or tunnelled real
/// server of an address service; `None` otherwise (a NAT server's clients reach it at its own
/// address).
fn client_path(
    rs: &RealServerChecks,
    c: &ResolvedChecker,
    net: &Arc<NetState>,
) -> Option<ClientPath> {
    if c.spec.common.client_path != Some(true) {
        return None;
    }
    if !matches!(
        c.spec.kind,
        CheckerKind::Tcp | CheckerKind::Http(_) | CheckerKind::Ssl(_)
    ) {
        tracing::warn!(real_server = %rs.dest, checker = c.spec.kind.keyword(),
            "client_path is for TCP_CHECK, HTTP_GET and SSL_GET: this checker connects to the server's own address");
        return None;
    }
    let tunnel = match rs.method {
        rvs_api::ForwardMethod::Route => None,
        rvs_api::ForwardMethod::Tunnel => {
            Some(crate::control::executor::tunnel_to_engine(rs.tunnel))
        }
        method => {
            tracing::warn!(real_server = %rs.dest, ?method,
                "client_path applies to direct-routing and tunnelled real servers: checked at its own address");
            return None;
        }
    };
    let Some(vip) = rs.service.socket_addr().map(|a| a.ip()) else {
        tracing::warn!(real_server = %rs.dest,
            "client_path applies to address services, not firewall marks: checked at its own address");
        return None;
    };
    let prober: Arc<dyn PathProber> = NetProber::new(net.clone(), tunnel);
    Some(ClientPath {
        rip: rs.dest.ip(),
        vip,
        prober,
    })
}

fn spec(
    lowered: &Lowered,
    rs: &RealServerChecks,
    c: &ResolvedChecker,
    net: &Arc<NetState>,
) -> CheckSpec {
    let common = &c.spec.common;
    let conn = ConnectOpts {
        connect_ip: c.connect_ip,
        connect_port: c.connect_port,
        bindto: common.bindto,
        bind_port: common.bind_port,
        connect_timeout: c.connect_timeout,
        via: client_path(rs, c, net),
    };
    let kind = match &c.spec.kind {
        CheckerKind::Tcp => CheckKind::Tcp,
        CheckerKind::Http(h) => CheckKind::Http(http(lowered, c, h)),
        CheckerKind::Ssl(h) => CheckKind::Ssl(http(lowered, c, h)),
        CheckerKind::Misc(m) => CheckKind::Misc(MiscSpec {
            misc_path: m.command.clone(),
            misc_timeout: m.timeout.unwrap_or(c.delay_loop),
            misc_dynamic: m.dynamic,
        }),
        CheckerKind::Dns(d) => CheckKind::Dns(DnsSpec {
            name: d.name.clone(),
            qtype: dns_type(&d.query_type),
        }),
        CheckerKind::Smtp(s) => CheckKind::Smtp(SmtpSpec {
            helo_name: s
                .helo_name
                .clone()
                .or_else(|| lowered.global.smtp_helo_name.clone())
                .unwrap_or_else(|| "localhost".to_owned()),
        }),
        CheckerKind::Udp(u) => CheckKind::Udp(UdpSpec {
            payload: u.payload.clone(),
            require_reply: u.require_reply,
            reply_prefix: (!u.reply_prefix.is_empty()).then(|| u.reply_prefix.clone()),
            min_reply_length: u.min_reply_length.map(|n| n as usize),
            max_reply_length: u.max_reply_length.map(|n| n as usize),
        }),
        CheckerKind::Ping => CheckKind::Ping,
        CheckerKind::File(f) => {
            let track = lowered.track_files.iter().find(|t| t.name == f.track_file);
            CheckKind::File(FileSpec {
                path: PathBuf::from(track.and_then(|t| t.file.clone()).unwrap_or_default()),
                weight: f.weight.or(track.and_then(|t| t.weight)).unwrap_or(1),
                reverse: f.reverse || track.is_some_and(|t| t.reverse),
                base_weight: rs.weight,
            })
        }
    };
    CheckSpec { conn, kind }
}

fn http(lowered: &Lowered, c: &ResolvedChecker, h: &rvs_keepalived::HttpCheck) -> HttpSpec {
    HttpSpec {
        urls: h
            .urls
            .iter()
            .map(|u| UrlSpec {
                path: u.path.clone(),
                digest: u.digest.clone(),
                status: u
                    .status_codes
                    .iter()
                    .map(|&(lo, hi)| StatusRange { lo, hi })
                    .collect(),
                virtualhost: u.virtualhost.clone(),
            })
            .collect(),
        virtualhost: c.virtualhost.clone(),
        enable_sni: h.enable_sni,
        protocol: match h.http_protocol.as_deref() {
            Some("1.0C") => HttpProtocol::Http10Close,
            Some("1.1") => HttpProtocol::Http11,
            _ => HttpProtocol::Http10,
        },
        tls: TlsClientSpec {
            certificate: lowered
                .ssl
                .as_ref()
                .and_then(|s| s.certificate.as_ref().map(PathBuf::from)),
            key: lowered
                .ssl
                .as_ref()
                .and_then(|s| s.key.as_ref().map(PathBuf::from)),
            ca: lowered
                .ssl
                .as_ref()
                .and_then(|s| s.ca.as_ref().map(PathBuf::from)),
        },
    }
}

fn dns_type(name: &str) -> DnsType {
    match name.to_ascii_uppercase().as_str() {
        "NS" => DnsType::Ns,
        "CNAME" => DnsType::Cname,
        "SOA" => DnsType::Soa,
        "MX" => DnsType::Mx,
        "TXT" => DnsType::Txt,
        "AAAA" => DnsType::Aaaa,
        _ => DnsType::A,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MISC_CHECK spec planned for `misc_path` (written inside double quotes).
    fn misc_spec(misc_path: &str) -> CheckSpec {
        let text = format!(
            "virtual_server 10.0.0.1 80 {{\n protocol TCP\n real_server 10.0.0.2 80 {{\n  \
             MISC_CHECK {{\n   misc_path \"{misc_path}\"\n  }}\n }}\n}}\n"
        );
        // Loaded as rvsd loads (lenient: the defaulted scheduler and method are reported).
        let loaded = rvs_keepalived::load_str_lenient(&text, std::path::Path::new("t.conf"))
            .expect("a configuration rvsd runs");
        let lowered = rvs_keepalived::lower(&loaded.config);
        let planned = plan(&lowered, &lowered.checkers[0], &net());
        assert_eq!(planned.len(), 1);
        planned[0].spec.clone()
    }

    /// The host's network state (the plans here never probe through it).
    fn net() -> Arc<NetState> {
        NetState::start().expect("netlink")
    }

    #[test]
    fn client_path_probes_direct_routing_and_tunnelled_servers_only() {
        let path = |lb_kind: &str, checker: &str| {
            let text =
                format!(
                "virtual_server 10.0.0.1 80 {{\n protocol TCP\n lb_algo rr\n lb_kind {lb_kind}\n \
                 real_server 10.0.0.2 80 {{\n  {checker} {{\n   client_path\n{}  }}\n }}\n}}\n",
                if checker == "HTTP_GET" { "   url {\n    path /\n   }\n" } else { "" }
            );
            let loaded = rvs_keepalived::load_str_lenient(&text, std::path::Path::new("t.conf"))
                .expect("loads");
            let lowered = rvs_keepalived::lower(&loaded.config);
            plan(&lowered, &lowered.checkers[0], &net())[0]
                .spec
                .conn
                .via
                .clone()
        };
        for (lb_kind, via) in [("DR", "direct"), ("TUN", "Ipip port 0 NoCsum")] {
            for checker in ["TCP_CHECK", "HTTP_GET"] {
                let p = path(lb_kind, checker).unwrap_or_else(|| panic!("{lb_kind} {checker}"));
                assert_eq!(p.vip, "10.0.0.1".parse::<std::net::IpAddr>().unwrap());
                assert_eq!(p.rip, "10.0.0.2".parse::<std::net::IpAddr>().unwrap());
                assert_eq!(p.prober.describe(), via);
            }
        }
        assert!(
            path("NAT", "TCP_CHECK").is_none(),
            "a NAT server is reached at its address"
        );
    }

    fn passes(spec: &CheckSpec) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(rvs_health::check(spec)).ok
    }

    #[test]
    fn misc_path_keeps_its_quoted_arguments() {
        let spec = misc_spec("test 'a b' = 'a b'");
        let CheckKind::Misc(m) = &spec.kind else {
            panic!("not MISC: {spec:?}");
        };
        assert_eq!(m.misc_path, ["test", "a b", "=", "a b"]);
        assert!(passes(&spec));
        // Shell metacharacters inside an argument reach the program as they are.
        let spec = misc_spec("test 'x; exit 0' = y");
        let CheckKind::Misc(m) = &spec.kind else {
            panic!("not MISC: {spec:?}");
        };
        assert_eq!(m.misc_path, ["test", "x; exit 0", "=", "y"]);
        assert!(!passes(&spec));
    }
}
