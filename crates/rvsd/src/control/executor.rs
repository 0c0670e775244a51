//! Carries out control commands: translates `rvs-api` requests into engine calls and engine state
//! into `rvs-api` views. The only place that knows both vocabularies.

use std::net::IpAddr;

use crate::dataplane::EgressCounters;
use rvs_api::{
    Command, ConnView, CounterView, DestConfig, DestView, ErrorKind, Info, RatesView, Reply,
    ServiceConfig, ServiceId, ServiceView, StatsView, Timeouts,
};
use rvs_engine::{
    ConnStatus, DestSpec, DestStatus, DropReason, Engine, EngineError, Millis, Persistence,
    PersistenceEngine, Protocol, Rates, SchedFlags, SchedulerKind, ServiceKey, ServiceSpec,
    ServiceStatus, Stats, TimeoutUpdate,
};

/// The IPVS version rvs emulates in ipvsadm's header line.
const IPVS_VERSION: &str = "1.2.1";
/// The connection hash table size ipvsadm's header reports (IPVS's default).
const CONN_TABLE_SIZE: u32 = 4096;

/// Runs one command against the engine alone (no data plane, e.g. `--restore`): `GetCounters`
/// then answers without the egress counters. `local_addrs` are the director's own addresses
/// (a real server at one of them is forwarded `Local`).
pub fn execute(engine: &Engine, local_addrs: &[IpAddr], now: Millis, cmd: Command) -> Reply {
    execute_with(engine, None, local_addrs, now, cmd)
}

/// Runs one command against the engine; `egress` is the running data plane's counters, if any,
/// and `local_addrs` the director's own addresses.
pub fn execute_with(
    engine: &Engine,
    egress: Option<&EgressCounters>,
    local_addrs: &[IpAddr],
    now: Millis,
    cmd: Command,
) -> Reply {
    match run(engine, egress, local_addrs, now, cmd) {
        Ok(reply) => reply,
        Err(err) => Reply::Error(err),
    }
}

/// The counters `rvsadm --counters` shows: the connection count, the engine's drops by reason
/// (`drop_<reason>`), IP reassembly (`reasm_<what>`), IPVS's defence (`defense_<what>`), the
/// SYN proxy (`synproxy_<what>`), connection sync (`sync_<what>`), then
/// the data plane's egress outcomes
/// (`tx_<outcome>`) when it runs.
pub fn counters(engine: &Engine, egress: Option<&EgressCounters>) -> Vec<CounterView> {
    let connections = u64::try_from(engine.connection_count()).unwrap_or(u64::MAX);
    let drops = engine.drop_counters();
    let mut out = vec![CounterView::new("connections", connections)];
    out.extend(
        DropReason::ALL
            .iter()
            .map(|&r| CounterView::new(format!("drop_{}", r.name()), drops.get(r))),
    );
    let (reasm, held) = engine.reassembly();
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    out.extend([
        CounterView::new("reasm_fragments", reasm.fragments),
        CounterView::new("reasm_reassembled", reasm.reassembled),
        CounterView::new("reasm_timeouts", reasm.timeouts),
        CounterView::new("reasm_invalid", reasm.invalid),
        CounterView::new("reasm_memory_full", reasm.memory_full),
        CounterView::new("reasm_held_datagrams", count(held.datagrams)),
        CounterView::new("reasm_held_bytes", count(held.bytes)),
    ]);
    let defense = engine.defense_status();
    out.extend([
        CounterView::new(
            "defense_short_of_memory",
            u64::from(defense.short_of_memory),
        ),
        CounterView::new("defense_drop_rate", u64::from(defense.drop_rate)),
        CounterView::new("defense_secure_tcp", u64::from(defense.secure_tcp)),
        CounterView::new("defense_entries_dropped", defense.entries_dropped),
    ]);
    let sp = engine.syn_proxy_counters();
    out.extend([
        CounterView::new("synproxy_answered", sp.answered),
        CounterView::new("synproxy_opened", sp.opened),
        CounterView::new("synproxy_bad_cookies", sp.bad_cookies),
        CounterView::new("synproxy_handed_over", sp.handed_over),
    ]);
    let sync = engine.sync_counters();
    out.extend([
        CounterView::new("sync_exported", sync.exported),
        CounterView::new("sync_queue_overflow", sync.queue_overflow),
        CounterView::new("sync_imported", sync.imported),
        CounterView::new("sync_no_service", sync.no_service),
        CounterView::new("sync_no_destination", sync.no_destination),
        CounterView::new("sync_refused", sync.refused),
    ]);
    if let Some(egress) = egress {
        out.extend(
            egress
                .snapshot()
                .iter()
                .map(|&(name, value)| CounterView::new(name, value)),
        );
    }
    out
}

fn run(
    engine: &Engine,
    egress: Option<&EgressCounters>,
    local_addrs: &[IpAddr],
    now: Millis,
    cmd: Command,
) -> Result<Reply, rvs_api::ErrorReply> {
    check(engine, &cmd)?;
    let reply = match cmd {
        Command::AddService(cfg) => {
            engine
                .add_service(service_spec(&cfg, local_addrs)?)
                .map_err(engine_error)?;
            Reply::Ok
        }
        Command::EditService(cfg) => {
            engine
                .edit_service(service_spec(&cfg, local_addrs)?)
                .map_err(engine_error)?;
            Reply::Ok
        }
        Command::DelService(id) => {
            engine
                .del_service(&service_key(&id)?)
                .map_err(engine_error)?;
            Reply::Ok
        }
        Command::Clear => {
            engine.clear();
            Reply::Ok
        }
        Command::AddDest { service, dest } => {
            let key = service_key(&service)?;
            check_unicast(dest.addr, local_addrs)
                .map_err(|e| unless_no_service(engine, &key, e))?;
            engine
                .add_dest(&key, dest_spec(&dest, local_addrs))
                .map_err(engine_error)?;
            Reply::Ok
        }
        Command::EditDest { service, dest } => {
            let key = service_key(&service)?;
            engine
                .edit_dest(&key, dest_spec(&dest, local_addrs))
                .map_err(engine_error)?;
            Reply::Ok
        }
        Command::DelDest {
            service,
            addr,
            port,
        } => {
            engine
                .del_dest(&service_key(&service)?, addr, port)
                .map_err(engine_error)?;
            Reply::Ok
        }
        Command::Zero { service } => {
            let key = service.as_ref().map(service_key).transpose()?;
            engine.zero(key.as_ref()).map_err(engine_error)?;
            Reply::Ok
        }
        Command::SetTimeouts(t) => {
            engine.set_timeouts(TimeoutUpdate {
                tcp: t.tcp,
                tcpfin: t.tcp_fin,
                udp: t.udp,
            });
            Reply::Ok
        }
        Command::GetTimeouts => {
            let t = engine.timeouts();
            Reply::Timeouts(Timeouts {
                tcp: t.tcp,
                tcp_fin: t.tcpfin,
                udp: t.udp,
            })
        }
        Command::ListServices { service } => {
            let wanted = service.as_ref().map(service_key).transpose()?;
            let views: Vec<ServiceView> = engine
                .services(now)
                .into_iter()
                .filter(|s| wanted.as_ref().is_none_or(|k| *k == s.spec.key))
                .map(service_view)
                .collect();
            if wanted.is_some() && views.is_empty() {
                return Err(api_error(ErrorKind::NoService, ""));
            }
            Reply::Services(views)
        }
        Command::ListConnections => {
            Reply::Connections(engine.connections(now).into_iter().map(conn_view).collect())
        }
        Command::GetInfo => Reply::Info(Info {
            version: IPVS_VERSION.to_owned(),
            conn_table_size: CONN_TABLE_SIZE,
            daemon: format!("rvsd {}", env!("CARGO_PKG_VERSION")),
        }),
        Command::GetCounters => Reply::Counters(counters(engine, egress)),
        Command::AddMarkRule(v) => {
            engine.add_mark_rule(mark_rule(&v)).map_err(engine_error)?;
            Reply::Ok
        }
        Command::DelMarkRule(v) => {
            engine.del_mark_rule(&mark_rule(&v)).map_err(engine_error)?;
            Reply::Ok
        }
        Command::ListMarkRules => {
            Reply::MarkRules(engine.mark_rules().iter().map(mark_rule_view).collect())
        }
        Command::SetPolicy { name, value } => {
            let mut policy = engine.policy();
            policy
                .set(&name, value)
                .map_err(|e| api_error(ErrorKind::InvalidArgument, &e.to_string()))?;
            engine.set_policy(policy);
            Reply::Ok
        }
        Command::GetPolicy => Reply::Policy(
            engine
                .policy()
                .values()
                .iter()
                .map(|&(name, value)| rvs_api::PolicyView {
                    name: name.to_owned(),
                    value,
                })
                .collect(),
        ),
        Command::StartDaemon(_) | Command::StopDaemon(_) | Command::ListDaemons => {
            return Err(api_error(
                ErrorKind::Unsupported,
                "sync daemons are run by the control server",
            ))
        }
        Command::GetVrrp | Command::GetBfd => {
            return Err(api_error(
                ErrorKind::Unsupported,
                "VRRP and BFD are run by the control server",
            ))
        }
        Command::Doctor => {
            let services: Vec<_> = engine.services(now).into_iter().map(service_view).collect();
            let counters = counters(engine, egress);
            let stray = engine.stray_replies();
            let self_scheduled = engine.self_scheduled();
            Reply::Doctor(super::doctor::diagnose(&super::doctor::Evidence {
                services: &services,
                earlier: None,
                counters: &counters,
                stray: &stray,
                self_scheduled: &self_scheduled,
            }))
        }
        Command::Handover { .. } => {
            return Err(api_error(
                ErrorKind::Unsupported,
                "a handover is run by the control server",
            ))
        }
        Command::Reload | Command::GetHealth => {
            return Err(api_error(
                ErrorKind::Unsupported,
                "rvsd runs without a keepalived.conf (-f FILE)",
            ))
        }
        // One engine batch: the data plane sees the commands' result at once.
        Command::Batch(commands) => Reply::Batch(engine.batch(|| {
            commands
                .into_iter()
                .map(|cmd| {
                    if cmd.batchable() {
                        execute_with(engine, egress, local_addrs, now, cmd)
                    } else {
                        Reply::error(
                            ErrorKind::InvalidArgument,
                            "only configuration changes may be batched",
                        )
                    }
                })
                .collect()
        })),
    };
    Ok(reply)
}

/// The values of `cmd` checked as [`rvs_api::validate::command`] checks them, whichever client
/// sent it, before anything changes; a refusal is `InvalidArgument` with its message. A real
/// server refused for itself on a missing service is refused for the service, as IPVS looks
/// the service up first.
fn check(engine: &Engine, cmd: &Command) -> Result<(), rvs_api::ErrorReply> {
    let Err(invalid) = rvs_api::validate::command(cmd) else {
        return Ok(());
    };
    let refusal = api_error(ErrorKind::InvalidArgument, &invalid.to_string());
    Err(match cmd {
        Command::AddDest { service, .. } | Command::EditDest { service, .. } => {
            match service_key(service) {
                Ok(key) => unless_no_service(engine, &key, refusal),
                Err(_) => refusal,
            }
        }
        _ => refusal,
    })
}

fn api_error(kind: ErrorKind, message: &str) -> rvs_api::ErrorReply {
    rvs_api::ErrorReply::new(kind, message)
}

fn engine_error(err: EngineError) -> rvs_api::ErrorReply {
    let kind = match &err {
        EngineError::ServiceExists => ErrorKind::ServiceExists,
        EngineError::NoService => ErrorKind::NoService,
        EngineError::DestExists => ErrorKind::DestExists,
        EngineError::NoDest => ErrorKind::NoDest,
        EngineError::Unsupported(_) => ErrorKind::Unsupported,
        EngineError::Capacity(_) => ErrorKind::ResourceExhausted,
        _ => ErrorKind::InvalidArgument,
    };
    api_error(kind, &err.to_string())
}

/// The engine key of a service id.
fn service_key(id: &ServiceId) -> Result<ServiceKey, rvs_api::ErrorReply> {
    match *id {
        ServiceId::Tcp { addr, port } => Ok(ServiceKey::new(Protocol::Tcp, addr, port)),
        ServiceId::Udp { addr, port } => Ok(ServiceKey::new(Protocol::Udp, addr, port)),
        ServiceId::Sctp { addr, port } => Ok(ServiceKey::new(Protocol::Sctp, addr, port)),
        ServiceId::Fwmark { mark: 0, .. } => Err(api_error(
            ErrorKind::InvalidArgument,
            &rvs_api::validate::Invalid::ZeroFwmark.to_string(),
        )),
        ServiceId::Fwmark { mark, ipv6 } => Ok(ServiceKey::fwmark(mark, ipv6)),
    }
}

fn mark_rule(v: &rvs_api::MarkRuleView) -> rvs_engine::MarkRule {
    rvs_engine::MarkRule {
        proto: match v.proto {
            rvs_api::MarkProto::Tcp => Protocol::Tcp,
            rvs_api::MarkProto::Udp => Protocol::Udp,
            rvs_api::MarkProto::Sctp => Protocol::Sctp,
        },
        addr: v.addr,
        prefix_len: v.prefix_len,
        ports: (v.first_port, v.last_port),
        mark: v.mark,
    }
}

fn mark_rule_view(r: &rvs_engine::MarkRule) -> rvs_api::MarkRuleView {
    rvs_api::MarkRuleView {
        proto: match r.proto {
            Protocol::Tcp => rvs_api::MarkProto::Tcp,
            Protocol::Udp => rvs_api::MarkProto::Udp,
            Protocol::Sctp => rvs_api::MarkProto::Sctp,
        },
        addr: r.addr,
        prefix_len: r.prefix_len,
        first_port: r.ports.0,
        last_port: r.ports.1,
        mark: r.mark,
    }
}

/// The control API's identity of an engine service key.
pub(crate) fn service_id(key: &ServiceKey) -> ServiceId {
    if key.fwmark != 0 {
        return ServiceId::Fwmark {
            mark: key.fwmark,
            ipv6: key.addr.is_ipv6(),
        };
    }
    match key.proto {
        Protocol::Tcp => ServiceId::Tcp {
            addr: key.addr,
            port: key.port,
        },
        Protocol::Udp => ServiceId::Udp {
            addr: key.addr,
            port: key.port,
        },
        Protocol::Sctp => ServiceId::Sctp {
            addr: key.addr,
            port: key.port,
        },
    }
}

/// IPVS's scheduler names; unknown ones get ipvsadm's "scheduler not found".
fn scheduler(name: &str) -> Result<SchedulerKind, rvs_api::ErrorReply> {
    SchedulerKind::from_name(name).ok_or_else(|| api_error(ErrorKind::NoScheduler, name))
}

fn scheduler_name(kind: SchedulerKind) -> &'static str {
    kind.name()
}

/// A service's settings as the engine takes them ([`check`] has checked them as ipvsadm and
/// the kernel do), with FULLNAT local addresses that are the director's own (`local_addrs`; not
/// checked when it is empty, as in a restore without a running director).
fn service_spec(
    cfg: &ServiceConfig,
    local_addrs: &[IpAddr],
) -> Result<ServiceSpec, rvs_api::ErrorReply> {
    let key = service_key(&cfg.id)?;
    if let Some(a) = cfg
        .local_addrs
        .iter()
        .find(|a| !local_addrs.is_empty() && !local_addrs.contains(a))
    {
        return Err(api_error(
            ErrorKind::InvalidArgument,
            &format!("local address {a} is not one of the director's addresses"),
        ));
    }
    // IPVS knows one persistence engine, sip (`ip_vs_pe_getbyname`); it only acts on
    // persistent services.
    let pe = match cfg.pe.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(name) => Some(PersistenceEngine::by_name(name).ok_or_else(|| {
            api_error(
                ErrorKind::Unsupported,
                &format!("persistence engine `{name}' not found (there is sip)"),
            )
        })?),
    };
    // No netmask is a single client address: all ones.
    let netmask = cfg
        .netmask
        .unwrap_or_else(|| rvs_api::netmask::prefix_mask(key.addr.is_ipv6(), u8::MAX));
    let persistence = cfg.persistence.map(|timeout_s| Persistence {
        timeout_s,
        netmask,
        pe,
    });
    Ok(ServiceSpec {
        key,
        scheduler: scheduler(&cfg.scheduler)?,
        sched_flags: SchedFlags(rvs_api::sched_flags::bits(&cfg.sched_flags)),
        persistence,
        one_packet: cfg.one_packet,
        local_addrs: cfg.local_addrs.clone(),
        proxy_protocol: cfg.proxy_protocol.map(|v| match v {
            rvs_api::ProxyProtocol::V1 => rvs_engine::ProxyProtocolVersion::V1,
            rvs_api::ProxyProtocol::V2 => rvs_engine::ProxyProtocolVersion::V2,
        }),
    })
}

fn method_to_engine(m: rvs_api::ForwardMethod) -> rvs_engine::ForwardMethod {
    match m {
        rvs_api::ForwardMethod::Masq => rvs_engine::ForwardMethod::Masq,
        rvs_api::ForwardMethod::Route => rvs_engine::ForwardMethod::Route,
        rvs_api::ForwardMethod::Tunnel => rvs_engine::ForwardMethod::Tunnel,
        rvs_api::ForwardMethod::Local => rvs_engine::ForwardMethod::Local,
        rvs_api::ForwardMethod::FullNat => rvs_engine::ForwardMethod::FullNat,
    }
}

fn method_to_api(m: rvs_engine::ForwardMethod) -> rvs_api::ForwardMethod {
    match m {
        rvs_engine::ForwardMethod::Masq => rvs_api::ForwardMethod::Masq,
        rvs_engine::ForwardMethod::Route => rvs_api::ForwardMethod::Route,
        rvs_engine::ForwardMethod::Tunnel => rvs_api::ForwardMethod::Tunnel,
        rvs_engine::ForwardMethod::Local => rvs_api::ForwardMethod::Local,
        rvs_engine::ForwardMethod::FullNat => rvs_api::ForwardMethod::FullNat,
    }
}

/// The engine's tunnel settings for the API's (defaults for none).
pub(crate) fn tunnel_to_engine(t: Option<rvs_api::TunnelConfig>) -> rvs_engine::TunnelConfig {
    let t = t.unwrap_or_default();
    rvs_engine::TunnelConfig {
        kind: match t.kind {
            rvs_api::TunnelKind::Ipip => rvs_engine::TunnelKind::Ipip,
            rvs_api::TunnelKind::Gue => rvs_engine::TunnelKind::Gue,
            rvs_api::TunnelKind::Gre => rvs_engine::TunnelKind::Gre,
        },
        port: t.port.unwrap_or(0),
        checksum: match t.checksum {
            rvs_api::TunnelChecksum::NoCsum => rvs_engine::TunnelChecksum::NoCsum,
            rvs_api::TunnelChecksum::Csum => rvs_engine::TunnelChecksum::Csum,
            rvs_api::TunnelChecksum::RemCsum => rvs_engine::TunnelChecksum::RemCsum,
        },
    }
}

/// The API view of a destination's tunnel settings: `Some` only for tunnelling destinations.
fn tunnel_to_api(
    method: rvs_engine::ForwardMethod,
    t: rvs_engine::TunnelConfig,
) -> Option<rvs_api::TunnelConfig> {
    (method == rvs_engine::ForwardMethod::Tunnel).then(|| rvs_api::TunnelConfig {
        kind: match t.kind {
            rvs_engine::TunnelKind::Ipip => rvs_api::TunnelKind::Ipip,
            rvs_engine::TunnelKind::Gue => rvs_api::TunnelKind::Gue,
            rvs_engine::TunnelKind::Gre => rvs_api::TunnelKind::Gre,
        },
        port: (t.kind == rvs_engine::TunnelKind::Gue).then_some(t.port),
        checksum: match t.checksum {
            rvs_engine::TunnelChecksum::NoCsum => rvs_api::TunnelChecksum::NoCsum,
            rvs_engine::TunnelChecksum::Csum => rvs_api::TunnelChecksum::Csum,
            rvs_engine::TunnelChecksum::RemCsum => rvs_api::TunnelChecksum::RemCsum,
        },
    })
}

/// The forwarding method a destination really gets: a real server at one of the director's own
/// addresses (or on the loopback network) is `Local` whatever was asked, as IPVS turns it into
/// `IP_VS_CONN_F_LOCALNODE` (`ipvsadm -Ln` then shows `Local`).
fn effective_method(cfg: &DestConfig, local_addrs: &[IpAddr]) -> rvs_engine::ForwardMethod {
    if cfg.addr.is_loopback() || local_addrs.contains(&cfg.addr) {
        rvs_engine::ForwardMethod::Local
    } else {
        method_to_engine(cfg.method)
    }
}

/// IPVS looks the service up before it checks the real server (`ESRCH`, "Service not defined",
/// comes first): a real server refused for itself on a missing service is refused for the
/// service. Looked up only on that error path.
fn unless_no_service(
    engine: &Engine,
    key: &ServiceKey,
    refusal: rvs_api::ErrorReply,
) -> rvs_api::ErrorReply {
    if engine.spec_walk().services().any(|s| s.spec().key == *key) {
        refusal
    } else {
        engine_error(EngineError::NoService)
    }
}

/// Whether IPVS refuses `addr` as a new real server (`ip_vs_new_dest`, EINVAL): an IPv4
/// address whose type (`inet_addr_type`) is neither unicast nor local: 0.0.0.0/8, the limited
/// broadcast 255.255.255.255, multicast 224.0.0.0/4, and the loopback network's broadcast
/// 127.255.255.255 (a `broadcast` route of the local table); an IPv6 address that is not
/// unicast (`ipv6_addr_type`: `::`, multicast ff00::/8, IPv4-mapped ::ffff:0:0/96) or is
/// link-local (fe80::/10), unless it is one of the director's own (`__ip_vs_addr_is_local_v6`).
/// The directed broadcasts of the director's other networks are not known here and pass.
pub(crate) fn refused_as_real_server(addr: IpAddr, local_addrs: &[IpAddr]) -> bool {
    match addr {
        IpAddr::V4(a) => {
            a.octets()[0] == 0
                || a.is_broadcast()
                || a.is_multicast()
                || a == std::net::Ipv4Addr::new(127, 255, 255, 255)
        }
        IpAddr::V6(a) => {
            let mapped = a.segments()[..6] == [0, 0, 0, 0, 0, 0xffff];
            let link_local = a.segments()[0] & 0xffc0 == 0xfe80;
            let not_unicast = a.is_unspecified() || a.is_multicast() || mapped;
            (not_unicast || link_local) && !local_addrs.contains(&addr)
        }
    }
}

/// [`refused_as_real_server`] as the kernel's EINVAL (ipvsadm: "Invalid operation. Possibly
/// wrong module version, address not unicast, ...").
fn check_unicast(addr: IpAddr, local_addrs: &[IpAddr]) -> Result<(), rvs_api::ErrorReply> {
    if refused_as_real_server(addr, local_addrs) {
        return Err(api_error(
            ErrorKind::InvalidArgument,
            &format!(
                "real server address {addr} is not a unicast address of a host (IPVS refuses \
                 it: address not unicast)"
            ),
        ));
    }
    Ok(())
}

/// A real server's settings as the engine takes them ([`check`] has checked them).
fn dest_spec(cfg: &DestConfig, local_addrs: &[IpAddr]) -> DestSpec {
    DestSpec {
        addr: cfg.addr,
        port: cfg.port,
        weight: cfg.weight,
        method: effective_method(cfg, local_addrs),
        u_threshold: cfg.u_threshold,
        l_threshold: cfg.l_threshold,
        tunnel: tunnel_to_engine(cfg.tunnel),
    }
}

fn stats_view(s: &Stats) -> StatsView {
    StatsView {
        conns: s.conns,
        in_pkts: s.in_pkts,
        out_pkts: s.out_pkts,
        in_bytes: s.in_bytes,
        out_bytes: s.out_bytes,
    }
}

fn rates_view(r: &Rates) -> RatesView {
    RatesView {
        cps: r.cps,
        in_pps: r.in_pps,
        out_pps: r.out_pps,
        in_bps: r.in_bps,
        out_bps: r.out_bps,
    }
}

fn dest_view(d: DestStatus) -> DestView {
    DestView {
        config: DestConfig {
            addr: d.spec.addr,
            port: d.spec.port,
            weight: d.spec.weight,
            method: method_to_api(d.spec.method),
            u_threshold: d.spec.u_threshold,
            l_threshold: d.spec.l_threshold,
            tunnel: tunnel_to_api(d.spec.method, d.spec.tunnel),
        },
        active_conns: d.active_conns,
        inactive_conns: d.inactive_conns,
        persist_conns: d.persist_conns,
        stats: stats_view(&d.stats),
        rates: rates_view(&d.rates),
    }
}

pub(crate) fn service_view(s: ServiceStatus) -> ServiceView {
    let mut config = ServiceConfig::new(service_id(&s.spec.key), scheduler_name(s.spec.scheduler));
    config.one_packet = s.spec.one_packet;
    config.sched_flags = rvs_api::sched_flags::names(s.spec.scheduler.name(), s.spec.sched_flags.0);
    config.local_addrs = s.spec.local_addrs.clone();
    config.proxy_protocol = s.spec.proxy_protocol.map(|v| match v {
        rvs_engine::ProxyProtocolVersion::V1 => rvs_api::ProxyProtocol::V1,
        rvs_engine::ProxyProtocolVersion::V2 => rvs_api::ProxyProtocol::V2,
    });
    if let Some(p) = &s.spec.persistence {
        config.persistence = Some(p.timeout_s);
        let host = rvs_api::netmask::prefix_mask(p.netmask.is_ipv6(), u8::MAX);
        config.netmask = (p.netmask != host).then_some(p.netmask);
        config.pe = p.pe.map(|pe| pe.name().to_owned());
    }
    ServiceView {
        config,
        stats: stats_view(&s.stats),
        rates: rates_view(&s.rates),
        dests: s.dests.into_iter().map(dest_view).collect(),
    }
}

pub(crate) fn conn_view(c: ConnStatus) -> ConnView {
    ConnView {
        proto: match c.proto {
            // IPVS's firewall-mark templates are IPPROTO_IP.
            _ if c.fwmark_template => "IP",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
        .to_owned(),
        client: c.client,
        virtual_addr: c.virtual_addr,
        dest: c.dest,
        state: c.state.name().to_owned(),
        expires_ms: c.expires_in.0,
        pe: c.pe.map(|(pe, data)| {
            (
                pe.name().to_owned(),
                data.into_iter().map(char::from).collect(),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn add_service(engine: &Engine, id: ServiceId) {
        let reply = execute(
            engine,
            &[],
            Millis(0),
            Command::AddService(ServiceConfig::new(id, "rr")),
        );
        assert_eq!(reply, Reply::Ok);
    }

    fn add_dest(engine: &Engine, service: ServiceId, dest: DestConfig) -> Reply {
        execute(engine, &[], Millis(0), Command::AddDest { service, dest })
    }

    /// What rvsadm refuses, the daemon refuses too, whichever client sends it: timeouts over
    /// 31 days, a persistence timeout of 0, a FULLNAT local address that is not the
    /// director's. Nothing changes on a refusal.
    #[test]
    fn the_daemon_checks_what_any_client_sends() {
        let engine = Engine::new(rvs_engine::EngineConfig::default());
        let before = engine.timeouts();
        let too_long = Command::SetTimeouts(Timeouts {
            tcp: u32::MAX,
            tcp_fin: 0,
            udp: 0,
        });
        let Reply::Error(e) = execute(&engine, &[], Millis(0), too_long) else {
            panic!("a 136-year timeout accepted");
        };
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(
            e.message
                .contains("tcp timeout 4294967295 s is out of range"),
            "{e:?}"
        );
        assert_eq!(engine.timeouts(), before);
        let ok = Command::SetTimeouts(Timeouts {
            tcp: rvs_api::MAX_TIMEOUT_S,
            tcp_fin: 0,
            udp: 0,
        });
        assert_eq!(execute(&engine, &[], Millis(0), ok), Reply::Ok);

        let vip = ServiceId::Tcp {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 80,
        };
        let mut cfg = ServiceConfig::new(vip, "rr");
        cfg.persistence = Some(0);
        let Reply::Error(e) = execute(&engine, &[], Millis(0), Command::AddService(cfg)) else {
            panic!("persistence 0 accepted");
        };
        assert!(e.message.contains("persistence timeout 0 s"), "{e:?}");

        let own = IpAddr::V4(Ipv4Addr::new(10, 10, 10, 101));
        let other = IpAddr::V4(Ipv4Addr::new(10, 10, 10, 199));
        let mut cfg = ServiceConfig::new(vip, "rr");
        cfg.local_addrs = vec![own, other];
        let Reply::Error(e) = execute(&engine, &[own], Millis(0), Command::AddService(cfg.clone()))
        else {
            panic!("a foreign local address accepted");
        };
        assert_eq!(
            e.message,
            "local address 10.10.10.199 is not one of the director's addresses"
        );
        assert!(engine.spec_walk().services().next().is_none());
        cfg.local_addrs = vec![own];
        assert_eq!(
            execute(&engine, &[own], Millis(0), Command::AddService(cfg)),
            Reply::Ok
        );
    }

    #[test]
    fn thresholds_are_refused_as_the_kernel_refuses_them() {
        let engine = Engine::new(rvs_engine::EngineConfig::default());
        let vip = ServiceId::Tcp {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 80,
        };
        let rip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let dest = |u, l| {
            let mut d = DestConfig::new(rip, 80, 1, rvs_api::ForwardMethod::Masq);
            (d.u_threshold, d.l_threshold) = (u, l);
            d
        };
        // No service: ESRCH comes before ERANGE.
        let Reply::Error(e) = add_dest(&engine, vip, dest(5, 10)) else {
            panic!("accepted");
        };
        assert_eq!(e.kind, ErrorKind::NoService);
        add_service(&engine, vip);
        for (u, l) in [(5, 10), (0, 1)] {
            let Reply::Error(e) = add_dest(&engine, vip, dest(u, l)) else {
                panic!("-x {u} -y {l} accepted");
            };
            assert_eq!(e.kind, ErrorKind::InvalidArgument);
            assert!(
                e.message.starts_with("Numerical result out of range"),
                "{}",
                e.message
            );
        }
        assert_eq!(add_dest(&engine, vip, dest(10, 10)), Reply::Ok);
        let edit = execute(
            &engine,
            &[],
            Millis(0),
            Command::EditDest {
                service: vip,
                dest: dest(0, 3),
            },
        );
        assert!(
            matches!(&edit, Reply::Error(e) if e.kind == ErrorKind::InvalidArgument),
            "{edit:?}"
        );
    }

    #[test]
    fn non_unicast_real_servers_are_refused_as_the_kernel_refuses_them() {
        let engine = Engine::new(rvs_engine::EngineConfig::default());
        let vip4 = ServiceId::Tcp {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 80,
        };
        let vip6 = ServiceId::Tcp {
            addr: "2001:db8::1".parse().unwrap(),
            port: 80,
        };
        let own_link_local: IpAddr = "fe80::1".parse().unwrap();
        let local = [own_link_local];
        let add = |service, addr: &str, method| {
            let dest = DestConfig::new(addr.parse().unwrap(), 80, 1, method);
            execute(
                &engine,
                &local,
                Millis(0),
                Command::AddDest { service, dest },
            )
        };
        use rvs_api::ForwardMethod::{Masq, Route, Tunnel};
        // No service: ESRCH first.
        let Reply::Error(e) = add(vip4, "255.255.255.255", Masq) else {
            panic!("accepted");
        };
        assert_eq!(e.kind, ErrorKind::NoService);
        add_service(&engine, vip4);
        add_service(&engine, vip6);
        for (service, addr, method) in [
            (vip4, "0.0.0.0", Masq),
            (vip4, "0.1.2.3", Route),
            (vip4, "255.255.255.255", Masq),
            (vip4, "224.0.0.1", Masq),
            (vip4, "239.255.255.250", Route),
            (vip4, "127.255.255.255", Masq),
            (vip6, "::", Masq),
            (vip6, "ff02::1", Masq),
            (vip6, "::ffff:10.0.0.1", Masq),
            (vip6, "fe80::2", Masq),
            (vip4, "ff05::2", Tunnel),
        ] {
            let Reply::Error(e) = add(service, addr, method) else {
                panic!("{addr} accepted");
            };
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{addr}");
            assert!(e.message.contains("not a unicast address"), "{addr}: {e:?}");
        }
        for (service, addr, method) in [
            (vip4, "10.0.0.2", Masq),
            (vip4, "127.0.0.1", Masq),
            (vip4, "240.0.0.1", Route),
            (vip4, "1.0.0.0", Route),
            (vip6, "::1", Masq),
            (vip6, "fe80::1", Masq),
            (vip6, "fd00::2", Masq),
            (vip6, "fec0::2", Masq),
            (vip4, "2001:db8::2", Tunnel),
        ] {
            assert_eq!(add(service, addr, method), Reply::Ok, "{addr}");
        }
    }

    /// rvsadm sends a -g/-i server with the service's port, as ipvsadm; another client asking
    /// for a port mapping the real server could not see is refused with the reason.
    #[test]
    fn port_mapping_without_nat_is_refused_with_its_reason() {
        let engine = Engine::new(rvs_engine::EngineConfig::default());
        let vip = ServiceId::Tcp {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 80,
        };
        add_service(&engine, vip);
        let rip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let Reply::Error(e) = add_dest(
            &engine,
            vip,
            DestConfig::new(rip, 8080, 1, rvs_api::ForwardMethod::Route),
        ) else {
            panic!("port mapping with -g accepted");
        };
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(
            e.message
                .contains("port mapping is not possible with direct routing (-g)")
                && e.message
                    .contains("must listen on the virtual service's port"),
            "{}",
            e.message
        );
        let same_port = DestConfig::new(rip, 80, 1, rvs_api::ForwardMethod::Route);
        assert_eq!(add_dest(&engine, vip, same_port), Reply::Ok);
    }

    /// The configuration a refused command must leave as it was: services with their real
    /// servers, and the timeouts.
    fn configuration(engine: &Engine) -> (Reply, Reply) {
        let ask = |cmd| execute(engine, &[], Millis(0), cmd);
        (
            ask(Command::ListServices { service: None }),
            ask(Command::GetTimeouts),
        )
    }

    /// The persistence netmask a service is listed with after `-A` with `mask`, or the refusal.
    fn listed_netmask(id: ServiceId, mask: &str) -> Result<Option<IpAddr>, String> {
        let engine = Engine::new(rvs_engine::EngineConfig::default());
        let mut cfg = ServiceConfig::new(id, "rr");
        (cfg.persistence, cfg.netmask) = (Some(60), Some(mask.parse().unwrap()));
        match execute(&engine, &[], Millis(0), Command::AddService(cfg)) {
            Reply::Ok => {}
            Reply::Error(e) => return Err(e.message),
            other => panic!("{other:?}"),
        }
        let Reply::Services(v) = execute(
            &engine,
            &[],
            Millis(0),
            Command::ListServices { service: None },
        ) else {
            panic!("no listing");
        };
        Ok(v[0].config.netmask)
    }

    #[test]
    fn netmask_takes_any_mask_of_the_service_family() {
        let v4 = ServiceId::Tcp {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 80,
        };
        let v6 = ServiceId::Tcp {
            addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            port: 80,
        };
        let ip = |t: &str| Some(t.parse::<IpAddr>().unwrap());
        assert_eq!(listed_netmask(v4, "255.0.255.0"), Ok(ip("255.0.255.0")));
        assert_eq!(listed_netmask(v4, "255.255.255.255"), Ok(None));
        assert_eq!(listed_netmask(v6, "ffff::"), Ok(ip("ffff::")));
        assert_eq!(
            listed_netmask(v6, "255.255.255.0"),
            Err("persistence netmask 255.255.255.0 is not of the service's address family".into())
        );
        assert!(listed_netmask(v4, "ffff::").is_err());
        assert_eq!(
            listed_netmask(v6, "ffff::1"),
            Err("illegal ipv6 netmask ffff::1 specified (a prefix of 1 to 128 bits)".into())
        );
    }

    /// Every check of [`rvs_api::validate`] made by the daemon, whichever client sends the
    /// command: refused as `InvalidArgument` with the check's message, and the configuration
    /// as it was.
    #[test]
    fn the_daemon_refuses_what_rvsadm_refuses_and_changes_nothing() {
        use rvs_api::validate::Invalid;
        use rvs_api::{ForwardMethod as M, TunnelChecksum, TunnelConfig, TunnelKind};
        let engine = Engine::new(rvs_engine::EngineConfig::default());
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let tcp = ServiceId::Tcp {
            addr: ip("192.0.2.1"),
            port: 80,
        };
        let udp = ServiceId::Udp {
            addr: ip("192.0.2.1"),
            port: 53,
        };
        add_service(&engine, tcp);
        add_service(&engine, udp);
        let rip = ip("10.0.0.2");
        assert_eq!(
            add_dest(&engine, tcp, DestConfig::new(rip, 80, 1, M::Masq)),
            Reply::Ok
        );
        let before = configuration(&engine);
        let service = |id, change: fn(&mut ServiceConfig)| {
            let mut cfg = ServiceConfig::new(id, "rr");
            change(&mut cfg);
            cfg
        };
        let real = |change: fn(&mut DestConfig)| {
            let mut d = DestConfig::new(rip, 80, 1, M::Masq);
            change(&mut d);
            d
        };
        let tunnel = |kind, port, checksum| {
            Some(TunnelConfig {
                kind,
                port,
                checksum,
            })
        };
        let fwm0 = ServiceId::Fwmark {
            mark: 0,
            ipv6: false,
        };
        let edit = |cfg| Command::EditService(cfg);
        let edit_dest = |dest| Command::EditDest { service: tcp, dest };
        let mut cases = vec![
            (Command::DelService(fwm0), Invalid::ZeroFwmark),
            (
                Command::Zero {
                    service: Some(fwm0),
                },
                Invalid::ZeroFwmark,
            ),
            (
                edit(service(
                    ServiceId::Tcp {
                        addr: ip("192.0.2.1"),
                        port: 0,
                    },
                    |_| {},
                )),
                Invalid::ZeroPort,
            ),
            (
                edit(service(tcp, |c| c.one_packet = true)),
                Invalid::OnePacketNotUdp,
            ),
            (
                edit(service(tcp, |c| c.persistence = Some(0))),
                Invalid::ZeroPersistence,
            ),
            (
                edit(service(tcp, |c| {
                    c.persistence = Some(rvs_api::MAX_TIMEOUT_S + 1)
                })),
                Invalid::TimeoutTooLong {
                    what: "persistence",
                    value: rvs_api::MAX_TIMEOUT_S + 1,
                },
            ),
            (
                edit(service(tcp, |c| {
                    c.netmask = Some("ffff::".parse().unwrap())
                })),
                Invalid::NetmaskFamily("ffff::".parse().unwrap()),
            ),
            (
                edit(service(tcp, |c| c.sched_flags = vec!["sh-port".into()])),
                Invalid::SchedFlag("incompatible scheduler flag `sh-port'".into()),
            ),
            (
                edit(service(tcp, |c| {
                    c.scheduler = "sh".into();
                    c.sched_flags = vec!["mh-fallback".into()];
                })),
                Invalid::SchedFlag("incompatible scheduler flag `mh-fallback'".into()),
            ),
            (
                edit(service(tcp, |c| c.sched_flags = vec!["flag-9".into()])),
                Invalid::SchedFlag("invalid scheduler flag `flag-9'".into()),
            ),
            (
                edit(service(tcp, |c| {
                    c.local_addrs = vec!["2001:db8::9".parse().unwrap()]
                })),
                Invalid::LocalAddressFamily,
            ),
            (
                edit(service(tcp, |c| {
                    c.local_addrs = vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
                })),
                Invalid::UnspecifiedLocalAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            ),
            (
                edit(service(tcp, |c| {
                    c.local_addrs = vec!["10.9.9.9".parse().unwrap(), "10.9.9.9".parse().unwrap()]
                })),
                Invalid::DuplicateLocalAddress("10.9.9.9".parse().unwrap()),
            ),
            (
                edit(service(udp, |c| {
                    c.proxy_protocol = Some(rvs_api::ProxyProtocol::V1)
                })),
                Invalid::ProxyProtocolNotTcp,
            ),
            (
                edit_dest(real(|d| d.weight = u32::MAX)),
                Invalid::WeightTooLarge(u32::MAX),
            ),
            (
                edit_dest(real(|d| d.l_threshold = 1)),
                Invalid::Thresholds { upper: 0, lower: 1 },
            ),
            (
                edit_dest(real(|d| d.addr = "2001:db8::2".parse().unwrap())),
                Invalid::MixedFamily,
            ),
            (
                edit_dest(real(|d| d.tunnel = Some(TunnelConfig::default()))),
                Invalid::TunnelWithoutTunnelling,
            ),
            (
                Command::SetTimeouts(Timeouts {
                    tcp: 0,
                    tcp_fin: 0,
                    udp: rvs_api::MAX_TIMEOUT_S + 1,
                }),
                Invalid::TimeoutTooLong {
                    what: "udp",
                    value: rvs_api::MAX_TIMEOUT_S + 1,
                },
            ),
        ];
        for (t, refusal) in [
            (
                tunnel(TunnelKind::Ipip, Some(4789), TunnelChecksum::NoCsum),
                Invalid::TunnelOption {
                    option: "tun-port",
                    kind: "ipip",
                },
            ),
            (
                tunnel(TunnelKind::Ipip, None, TunnelChecksum::Csum),
                Invalid::TunnelOption {
                    option: "tun-csum",
                    kind: "ipip",
                },
            ),
            (
                tunnel(TunnelKind::Gre, None, TunnelChecksum::RemCsum),
                Invalid::TunnelOption {
                    option: "tun-remcsum",
                    kind: "gre",
                },
            ),
            (
                tunnel(TunnelKind::Gue, None, TunnelChecksum::NoCsum),
                Invalid::GueWithoutPort,
            ),
            (
                tunnel(TunnelKind::Gue, Some(0), TunnelChecksum::NoCsum),
                Invalid::ZeroTunnelPort,
            ),
        ] {
            let mut d = DestConfig::new(rip, 80, 1, M::Tunnel);
            d.tunnel = t;
            cases.push((
                Command::AddDest {
                    service: tcp,
                    dest: d,
                },
                refusal,
            ));
        }
        for (cmd, refusal) in cases {
            let Reply::Error(e) = execute(&engine, &[], Millis(0), cmd.clone()) else {
                panic!("{cmd:?} accepted");
            };
            assert_eq!(
                (e.kind, e.message.as_str()),
                (ErrorKind::InvalidArgument, refusal.to_string().as_str()),
                "{cmd:?}"
            );
            assert_eq!(
                configuration(&engine),
                before,
                "{cmd:?} changed the configuration"
            );
            // In a batch the refused command changes nothing either; the others run.
            let Reply::Batch(replies) =
                execute(&engine, &[], Millis(0), Command::Batch(vec![cmd.clone()]))
            else {
                panic!("no batch reply");
            };
            assert_eq!(replies, [Reply::Error(e)], "{cmd:?}");
            assert_eq!(
                configuration(&engine),
                before,
                "{cmd:?} changed the configuration"
            );
        }
        // A real server refused for itself on a missing service is refused for the service.
        let missing = ServiceId::Tcp {
            addr: ip("192.0.2.9"),
            port: 80,
        };
        let Reply::Error(e) = add_dest(&engine, missing, real(|d| d.weight = u32::MAX)) else {
            panic!("accepted");
        };
        assert_eq!(e.kind, ErrorKind::NoService);
        // The kernel's bounds, not ipvsadm's command line: keepalived sends weights above
        // 65535 and thresholds above INT_MAX.
        let big = real(|d| {
            d.weight = i32::MAX as u32;
            (d.u_threshold, d.l_threshold) = (u32::MAX, u32::MAX);
        });
        assert_eq!(execute(&engine, &[], Millis(0), edit_dest(big)), Reply::Ok);
    }

    #[test]
    fn scheduler_flags_map_to_the_engine() {
        let engine = Engine::new(rvs_engine::EngineConfig::default());
        let mut port = 80;
        let mut flags_of = |scheduler: &str, names: &[&str]| {
            port += 1;
            let id = ServiceId::Tcp {
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                port,
            };
            let mut cfg = ServiceConfig::new(id, scheduler);
            cfg.sched_flags = names.iter().map(|n| n.to_string()).collect();
            assert_eq!(
                execute(&engine, &[], Millis(0), Command::AddService(cfg)),
                Reply::Ok
            );
            engine
                .spec_walk()
                .services()
                .find(|s| s.spec().key.port == port)
                .map(|s| s.spec().sched_flags)
        };
        assert_eq!(
            flags_of("sh", &["sh-port", "sh-fallback"]),
            Some(SchedFlags(3))
        );
        assert_eq!(flags_of("mh", &["mh-port"]), Some(SchedFlags(2)));
        assert_eq!(flags_of("rr", &["flag-3"]), Some(SchedFlags(4)));
    }

    #[test]
    fn counters_list_connections_drops_and_egress() {
        let engine = Engine::new(rvs_engine::EngineConfig::default());
        let names = |v: &[CounterView]| v.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        let Reply::Counters(alone) = execute(&engine, &[], Millis(0), Command::GetCounters) else {
            panic!("GetCounters answered something else");
        };
        assert_eq!(
            names(&alone),
            [
                "connections",
                "drop_malformed",
                "drop_truncated",
                "drop_no_connection_non_syn",
                "drop_no_destination",
                "drop_ttl_exceeded",
                "drop_fragmented",
                "drop_unsupported_protocol",
                "drop_no_local_port",
                "drop_table_full",
                "drop_defense_drop_packet",
                "reasm_fragments",
                "reasm_reassembled",
                "reasm_timeouts",
                "reasm_invalid",
                "reasm_memory_full",
                "reasm_held_datagrams",
                "reasm_held_bytes",
                "defense_short_of_memory",
                "defense_drop_rate",
                "defense_secure_tcp",
                "defense_entries_dropped",
                "synproxy_answered",
                "synproxy_opened",
                "synproxy_bad_cookies",
                "synproxy_handed_over",
                "sync_exported",
                "sync_queue_overflow",
                "sync_imported",
                "sync_no_service",
                "sync_no_destination",
                "sync_refused",
            ]
        );
        assert!(alone.iter().all(|c| c.value == 0));

        let egress = EgressCounters::new(2);
        crate::dataplane::counters::bump(&egress.writer(0).sent, 4);
        crate::dataplane::counters::bump(&egress.writer(1).sent, 5);
        let Reply::Counters(all) =
            execute_with(&engine, Some(&egress), &[], Millis(0), Command::GetCounters)
        else {
            panic!("GetCounters answered something else");
        };
        assert_eq!(all.len(), alone.len() + egress.snapshot().len());
        assert!(all.contains(&CounterView::new("tx_sent", 9)));
        assert!(all.contains(&CounterView::new("tx_unmanaged_egress", 0)));
    }

    #[test]
    fn service_ids_and_schedulers_map_to_the_engine() {
        let fw = ServiceId::Fwmark {
            mark: 1,
            ipv6: true,
        };
        assert_eq!(service_id(&service_key(&fw).unwrap()), fw);
        let zero = ServiceId::Fwmark {
            mark: 0,
            ipv6: false,
        };
        assert_eq!(
            service_key(&zero).unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        for k in SchedulerKind::ALL {
            assert_eq!(scheduler(k.name()).ok(), Some(k));
        }
        // ipvsadm -s none: a service without a scheduler, listed as `none`.
        assert_eq!(scheduler("none").ok(), Some(SchedulerKind::None));
        assert_eq!(
            scheduler("nonesuch").unwrap_err().kind,
            ErrorKind::NoScheduler
        );
        assert_eq!(scheduler("bogus").unwrap_err().kind, ErrorKind::NoScheduler);
    }
}
