//! Lowering a [`Config`] to rvs-api service/destination settings plus checker and VRRP specs.

use crate::checker::{CheckerKind, CheckerSpec};
use crate::diag::Span;
use crate::model::{
    Config, GlobalDefs, GroupEntry, LvsMethod, Protocol, RealServer, Script, SslDefs, TrackFile,
    VirtualServer, VsTarget,
};
use crate::vrrp::{VrrpInstance, VrrpScript, VrrpSyncGroup};
use rvs_api::{netmask, DestConfig, ForwardMethod, ServiceConfig, ServiceId, TunnelConfig};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// keepalived's default `delay_loop`.
pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's default `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// keepalived's default `retry` (of most checkers; see [`default_retry`]).
pub const DEFAULT_RETRY: u32 = 1;
/// keepalived's default `delay_before_retry` (of most checkers; see
/// [`default_delay_before_retry`]).
pub const DEFAULT_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);

/// keepalived's `retry` for a checker when neither it, its real server nor its virtual server
/// sets one (`default_retry`): MISC_CHECK 0 (check_misc.c), DNS_CHECK 3 (`DNS_DEFAULT_RETRY`),
/// the others 1.
pub fn default_retry(kind: &CheckerKind) -> u32 {
    match kind {
        CheckerKind::Misc(_) => 0,
        CheckerKind::Dns(_) => 3,
        _ => DEFAULT_RETRY,
    }
}

/// keepalived's `delay_before_retry` for a checker that inherits none
/// (`default_delay_before_retry`): HTTP_GET/SSL_GET 3 s (check_http.c), DNS_CHECK its
/// `delay_loop` (check_dns.c sets 0), the others 1 s.
pub fn default_delay_before_retry(kind: &CheckerKind, delay_loop: Duration) -> Duration {
    match kind {
        CheckerKind::Http(_) | CheckerKind::Ssl(_) => Duration::from_secs(3),
        CheckerKind::Dns(_) => delay_loop,
        _ => DEFAULT_DELAY_BEFORE_RETRY,
    }
}

/// Everything rvsd needs from a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lowered {
    /// Virtual services with their real servers (a group expands to one per address/fwmark).
    pub services: Vec<LoweredService>,
    /// Health checking, one entry per real server of each service.
    pub checkers: Vec<RealServerChecks>,
    /// VRRP specifications.
    pub vrrp: VrrpSpecs,
    /// `global_defs`.
    pub global: GlobalDefs,
    /// The top-level `SSL` block.
    pub ssl: Option<SslDefs>,
    /// `track_file` blocks.
    pub track_files: Vec<TrackFile>,
}

/// One virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoweredService {
    /// The `ipvsadm -A` settings.
    pub config: ServiceConfig,
    /// The `ipvsadm -a` settings of each real server, with their configured weights.
    pub dests: Vec<DestConfig>,
    /// Pool policy of the service.
    pub policy: ServicePolicy,
    /// The `virtual_server` block it comes from.
    pub span: Span,
}

/// Service-level health policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePolicy {
    /// `alpha`.
    pub alpha: bool,
    /// `omega`.
    pub omega: bool,
    /// `quorum`.
    pub quorum: u32,
    /// `hysteresis`.
    pub hysteresis: u32,
    /// `quorum_up` script.
    pub quorum_up: Option<Script>,
    /// `quorum_down` script.
    pub quorum_down: Option<Script>,
    /// The sorry server, used when quorum is lost.
    pub sorry_server: Option<DestConfig>,
    /// `sorry_server_inhibit`: keep it in the table with weight 0 while not needed.
    pub sorry_server_inhibit: bool,
    /// `ha_suspend`.
    pub ha_suspend: bool,
    /// `smtp_alert`.
    pub smtp_alert: Option<bool>,
}

/// Health checking of one real server of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerChecks {
    /// The service.
    pub service: ServiceId,
    /// The real server.
    pub dest: SocketAddr,
    /// Its configured weight (restored when it comes back).
    pub weight: u32,
    /// How the service forwards to it (what a `client_path` check probes through).
    pub method: rvs_api::ForwardMethod,
    /// Its tunnel's settings, for a tunnelled server.
    pub tunnel: Option<rvs_api::TunnelConfig>,
    /// Checkers, their common options resolved.
    pub checkers: Vec<ResolvedChecker>,
    /// What to do on failure.
    pub policy: RealServerPolicy,
    /// The `real_server` block.
    pub span: Span,
}

/// Real-server health policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerPolicy {
    /// `inhibit_on_failure`: weight 0 instead of removal.
    pub inhibit_on_failure: bool,
    /// Start failed until the checkers pass (`alpha`).
    pub alpha: bool,
    /// `notify_up` script.
    pub notify_up: Option<Script>,
    /// `notify_down` script.
    pub notify_down: Option<Script>,
    /// `smtp_alert`.
    pub smtp_alert: Option<bool>,
}

/// A checker with every common option resolved (checker, real server, virtual server, default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedChecker {
    /// The checker as parsed (its own options).
    pub spec: CheckerSpec,
    /// Address checked.
    pub connect_ip: IpAddr,
    /// Port checked (0 for PING_CHECK/FILE_CHECK/MISC_CHECK without one).
    pub connect_port: u16,
    /// Timeout per attempt.
    pub connect_timeout: Duration,
    /// Retries before failure.
    pub retry: u32,
    /// Pause between retries.
    pub delay_before_retry: Duration,
    /// Check interval.
    pub delay_loop: Duration,
    /// Random initial delay bound.
    pub warmup: Duration,
    /// `Host:` for HTTP checks without a per-URL one (checker, real server, virtual server).
    pub virtualhost: Option<String>,
}

/// The VRRP part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpSpecs {
    /// `vrrp_script` blocks.
    pub scripts: Vec<VrrpScript>,
    /// `vrrp_instance` blocks, `version` filled from `vrrp_version` (default 2).
    pub instances: Vec<VrrpInstance>,
    /// `vrrp_sync_group` blocks.
    pub sync_groups: Vec<VrrpSyncGroup>,
    /// `bfd_instance` blocks (the BFD sessions `track_bfd` names).
    pub bfd: Vec<crate::vrrp::BfdInstance>,
}

fn forward(method: &LvsMethod) -> (ForwardMethod, Option<TunnelConfig>) {
    match method {
        LvsMethod::Nat => (ForwardMethod::Masq, None),
        LvsMethod::Dr => (ForwardMethod::Route, None),
        LvsMethod::Tun(t) => (ForwardMethod::Tunnel, Some(*t)),
    }
}

fn service_ids(vs: &VirtualServer, config: &Config) -> Vec<ServiceId> {
    let ipv6 = vs
        .ipv6
        .unwrap_or_else(|| vs.real_servers.first().is_some_and(|r| r.addr.is_ipv6()));
    let by_addr = |addr: IpAddr, port: u16| match vs.protocol {
        Protocol::Tcp => ServiceId::Tcp { addr, port },
        Protocol::Udp => ServiceId::Udp { addr, port },
        Protocol::Sctp => ServiceId::Sctp { addr, port },
    };
    match &vs.target {
        VsTarget::Addr { addr, port } => vec![by_addr(*addr, *port)],
        VsTarget::Fwmark(mark) => vec![ServiceId::Fwmark { mark: *mark, ipv6 }],
        VsTarget::Group(name) => {
            let Some(group) = config.groups.iter().find(|g| &g.name == name) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            for e in &group.entries {
                match e {
                    GroupEntry::Fwmark(mark) => out.push(ServiceId::Fwmark { mark: *mark, ipv6 }),
                    GroupEntry::Range { first, last, port } => {
                        for addr in range_addrs(*first, *last) {
                            out.push(by_addr(addr, *port));
                        }
                    }
                }
            }
            out
        }
    }
}

fn range_addrs(first: IpAddr, last: IpAddr) -> Vec<IpAddr> {
    match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a)..=u32::from(b))
            .map(|v| IpAddr::from(v.to_be_bytes()))
            .collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a)..=u128::from(b))
            .map(|v| IpAddr::from(v.to_be_bytes()))
            .collect(),
        _ => vec![first],
    }
}

fn dest_for(vs: &VirtualServer, rs: &RealServer) -> DestConfig {
    let (method, tunnel) = forward(rs.method.as_ref().unwrap_or(&vs.method));
    DestConfig {
        addr: rs.addr,
        port: rs.port,
        weight: rs.weight.or(vs.weight).unwrap_or(1),
        method,
        u_threshold: rs.uthreshold,
        l_threshold: rs.lthreshold,
        tunnel,
    }
}

fn resolve(vs: &VirtualServer, rs: &RealServer, ck: &CheckerSpec) -> ResolvedChecker {
    let c = &ck.common;
    let delay_loop = c
        .delay_loop
        .or(rs.delay_loop)
        .or(vs.delay_loop)
        .unwrap_or(DEFAULT_DELAY_LOOP);
    let http_vhost = match &ck.kind {
        CheckerKind::Http(h) | CheckerKind::Ssl(h) => h.virtualhost.clone(),
        _ => None,
    };
    ResolvedChecker {
        connect_ip: c.connect_ip.unwrap_or(rs.addr),
        connect_port: c.connect_port.unwrap_or(rs.port),
        connect_timeout: c
            .connect_timeout
            .or(rs.connect_timeout)
            .or(vs.connect_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        retry: c
            .retry
            .or(rs.retry)
            .or(vs.retry)
            .unwrap_or_else(|| default_retry(&ck.kind)),
        delay_before_retry: c
            .delay_before_retry
            .or(rs.delay_before_retry)
            .or(vs.delay_before_retry)
            .unwrap_or_else(|| default_delay_before_retry(&ck.kind, delay_loop)),
        delay_loop,
        // keepalived (check_data.c): a checker without warmup takes its real server's (itself
        // inherited from the virtual server), else its own delay_loop, so first checks spread
        // over one interval.
        warmup: c.warmup.or(rs.warmup).or(vs.warmup).unwrap_or(delay_loop),
        virtualhost: http_vhost
            .or_else(|| rs.virtualhost.clone())
            .or_else(|| vs.virtualhost.clone()),
        spec: ck.clone(),
    }
}

/// Lowers a validated configuration. Infallible: every reference was checked by the parser.
pub fn lower(config: &Config) -> Lowered {
    let mut services = Vec::new();
    let mut checkers = Vec::new();
    for vs in &config.virtual_servers {
        let dests: Vec<DestConfig> = vs.real_servers.iter().map(|rs| dest_for(vs, rs)).collect();
        let sorry_server = vs.sorry_server.as_ref().map(|s| {
            let (method, tunnel) = forward(s.method.as_ref().unwrap_or(&vs.method));
            DestConfig {
                addr: s.addr,
                port: s.port,
                weight: 1,
                method,
                u_threshold: 0,
                l_threshold: 0,
                tunnel,
            }
        });
        let policy = ServicePolicy {
            alpha: vs.alpha,
            omega: vs.omega,
            quorum: vs.quorum,
            hysteresis: vs.hysteresis,
            quorum_up: vs.quorum_up.clone(),
            quorum_down: vs.quorum_down.clone(),
            sorry_server,
            sorry_server_inhibit: vs.sorry_server.as_ref().is_some_and(|s| s.inhibit),
            ha_suspend: vs.ha_suspend,
            smtp_alert: vs.smtp_alert,
        };
        for id in service_ids(vs, config) {
            let mut sc = ServiceConfig::new(id, vs.scheduler.clone());
            sc.persistence = vs.persistence_timeout;
            // A mask of the service's family that is not all ones (keepalived sends
            // 0xffffffff as "none").
            sc.netmask = vs.persistence_granularity.filter(|m| {
                m.is_ipv6() == id.is_ipv6() && *m != netmask::prefix_mask(m.is_ipv6(), u8::MAX)
            });
            sc.one_packet = vs.sched_flags.ops;
            sc.sched_flags = vs.sched_flags.names.clone();
            sc.pe = vs.persistence_engine.clone();
            for (rs, dest) in vs.real_servers.iter().zip(&dests) {
                checkers.push(RealServerChecks {
                    service: id,
                    dest: dest.socket_addr(),
                    weight: dest.weight,
                    method: dest.method,
                    tunnel: dest.tunnel,
                    checkers: rs.checkers.iter().map(|ck| resolve(vs, rs, ck)).collect(),
                    policy: RealServerPolicy {
                        inhibit_on_failure: rs.inhibit_on_failure.unwrap_or(vs.inhibit_on_failure),
                        alpha: rs.alpha.unwrap_or(vs.alpha),
                        notify_up: rs.notify_up.clone(),
                        notify_down: rs.notify_down.clone(),
                        smtp_alert: rs.smtp_alert.or(vs.smtp_alert),
                    },
                    span: rs.span.clone(),
                });
            }
            services.push(LoweredService {
                config: sc,
                dests: dests.clone(),
                policy: policy.clone(),
                span: vs.span.clone(),
            });
        }
    }
    let version = config.global.vrrp_version.unwrap_or(2);
    let instances = config
        .vrrp_instances
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i.version = Some(i.version.unwrap_or(version));
            i
        })
        .collect();
    Lowered {
        services,
        checkers,
        vrrp: VrrpSpecs {
            scripts: config.vrrp_scripts.clone(),
            instances,
            sync_groups: config.vrrp_sync_groups.clone(),
            bfd: config.bfd_instances.clone(),
        },
        global: config.global.clone(),
        ssl: config.ssl.clone(),
        track_files: config.track_files.clone(),
    }
}
