//! `virtual_server_group`, `virtual_server` and `real_server` blocks.

use crate::model::{
    GroupEntry, LvsMethod, Protocol, RealServer, SorryServer, VirtualServer, VirtualServerGroup,
    VsTarget,
};
use crate::parse_checker::{empty_kind, parse_checker};
use crate::parse_common::script;
use crate::tree::Statement;
use crate::values::Ctx;
use rvs_api::{netmask, sched_flags, TunnelChecksum, TunnelConfig, TunnelKind};
use std::net::IpAddr;
use std::time::Duration;

/// keepalived's default scheduler (`IPVS_DEF_SCHED`).
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// `persistence_timeout` given without a value (`IPVS_SVC_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSISTENCE: u32 = 360;
/// Highest weight keepalived 2.2 accepts (`IPVS_WEIGHT_LIMIT`, `INT32_MAX`).
pub const MAX_WEIGHT: u32 = i32::MAX as u32;
/// Highest `persistence_timeout` keepalived accepts (`LVS_MAX_TIMEOUT`, 31 days).
pub const MAX_PERSISTENCE: u32 = 2_678_400;
/// The schedulers keepalived 2.2 accepts in `lvs_sched`/`lb_algo` (`lvs_schedulers`).
pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos",
];

/// Which of the settings keepalived defaults (with an error) a `virtual_server` block gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VsGiven {
    /// A valid `protocol`.
    pub protocol: bool,
    /// A valid `lvs_sched`/`lb_algo`.
    pub scheduler: bool,
    /// A valid `lvs_method`/`lb_kind`.
    pub method: bool,
}

/// Parses `virtual_server_group NAME { }`.
pub fn parse_group(ctx: &mut Ctx<'_>, st: &Statement) -> Option<VirtualServerGroup> {
    let name = ctx.arg(st, 0, "a group name")?.to_string();
    let body = ctx.block(st)?;
    let mut entries = Vec::new();
    for item in body {
        if item.keyword == "fwmark" {
            if let Some(m) = ctx.u32(item, 0, 1, u32::MAX) {
                entries.push(GroupEntry::Fwmark(m));
            }
            continue;
        }
        let Some((first, last)) = parse_range(&item.keyword) else {
            ctx.error(
                &item.span,
                format!(
                    "virtual_server_group {name}: expected an address, a range like 10.0.0.1-10 or fwmark N, got '{}'",
                    item.keyword
                ),
            );
            continue;
        };
        let port = match item.args.first() {
            Some(_) => match ctx.port(item, 0) {
                Some(p) => p,
                None => continue,
            },
            None => 0,
        };
        entries.push(GroupEntry::Range { first, last, port });
    }
    if entries.is_empty() {
        // keepalived: "virtual server group %s has no entries - removing".
        ctx.error(
            &st.span,
            format!("virtual_server_group {name} has no entries - removing"),
        );
        return None;
    }
    Some(VirtualServerGroup {
        name,
        entries,
        span: st.span.clone(),
    })
}

/// `a.b.c.d` or `a.b.c.d-e` (IPv6: `x::y-z`, last group in hex).
fn parse_range(raw: &str) -> Option<(IpAddr, IpAddr)> {
    let (addr, end) = match raw.rsplit_once('-') {
        Some((a, e)) => (a, Some(e)),
        None => (raw, None),
    };
    let first: IpAddr = addr.parse().ok()?;
    let Some(end) = end else {
        return Some((first, first));
    };
    let last = match first {
        IpAddr::V4(v4) => {
            let e: u8 = end.parse().ok()?;
            let mut o = v4.octets();
            if e < o[3] {
                return None;
            }
            o[3] = e;
            IpAddr::from(o)
        }
        IpAddr::V6(v6) => {
            let e = u16::from_str_radix(end, 16).ok()?;
            let mut s = v6.segments();
            if e < s[7] {
                return None;
            }
            s[7] = e;
            IpAddr::from(s)
        }
    };
    Some((first, last))
}

/// Parses `lvs_method`/`lb_kind NAT|DR|TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]`.
pub fn parse_method(ctx: &mut Ctx<'_>, st: &Statement) -> Option<LvsMethod> {
    let m = ctx.choice(st, 0, &["NAT", "DR", "TUN"], false)?;
    match m {
        "NAT" => Some(LvsMethod::Nat),
        "DR" => Some(LvsMethod::Dr),
        _ => {
            let mut t = TunnelConfig::default();
            let mut i = 1;
            while i < st.args.len() {
                match st.args[i].as_str() {
                    "type" => {
                        t.kind = match ctx.choice(st, i + 1, &["ipip", "gue", "gre"], false)? {
                            "gue" => TunnelKind::Gue,
                            "gre" => TunnelKind::Gre,
                            _ => TunnelKind::Ipip,
                        };
                        i += 2;
                    }
                    "port" => {
                        t.port = Some(ctx.int_as::<u16>(st, i + 1, 1, 65535)?);
                        i += 2;
                    }
                    "nocsum" => {
                        t.checksum = TunnelChecksum::NoCsum;
                        i += 1;
                    }
                    "csum" => {
                        t.checksum = TunnelChecksum::Csum;
                        i += 1;
                    }
                    "remcsum" => {
                        t.checksum = TunnelChecksum::RemCsum;
                        i += 1;
                    }
                    other => {
                        ctx.error(
                            &st.span,
                            format!(
                                "{}: expected type|port|nocsum|csum|remcsum, got '{other}'",
                                st.keyword
                            ),
                        );
                        return None;
                    }
                }
            }
            // keepalived's svr_forwarding_handler: each of these leaves the method unset.
            let problem = if t.kind == TunnelKind::Gue && t.port.is_none() {
                Some("TUN type gue needs a port")
            } else if t.kind != TunnelKind::Gue && t.port.is_some() {
                Some("only gue tunnels take a port")
            } else if t.kind == TunnelKind::Ipip && t.checksum != TunnelChecksum::NoCsum {
                Some("ipip tunnels do not support checksum option")
            } else if t.kind == TunnelKind::Gre && t.checksum == TunnelChecksum::RemCsum {
                Some("gre tunnels do not support remote checksum option")
            } else {
                None
            };
            if let Some(problem) = problem {
                ctx.error(&st.span, format!("{}: {problem}", st.keyword));
                return None;
            }
            Some(LvsMethod::Tun(t))
        }
    }
}

fn weight(ctx: &mut Ctx<'_>, st: &Statement) -> Option<u32> {
    ctx.u32(st, 0, 0, MAX_WEIGHT)
}

/// Parses `virtual_server IP PORT | fwmark N | group NAME { }`, with what it set of the
/// settings keepalived defaults.
pub fn parse_virtual_server(ctx: &mut Ctx<'_>, st: &Statement) -> Option<(VirtualServer, VsGiven)> {
    let mut given = VsGiven::default();
    let target = match st.args.first().map(String::as_str) {
        Some("fwmark") => VsTarget::Fwmark(ctx.u32(st, 1, 1, u32::MAX)?),
        Some("group") => VsTarget::Group(ctx.arg(st, 1, "a group name")?.to_string()),
        Some(_) => {
            let addr = ctx.ip(st, 0)?;
            let port = if st.args.len() > 1 {
                ctx.port(st, 1)?
            } else {
                0
            };
            VsTarget::Addr { addr, port }
        }
        None => {
            ctx.fatal(
                &st.span,
                "virtual_server: expected IP PORT, fwmark N or group NAME",
            );
            return None;
        }
    };
    let body = ctx.block(st)?;
    let mut vs = VirtualServer {
        target,
        ipv6: None,
        scheduler: DEFAULT_SCHEDULER.to_string(),
        sched_flags: Default::default(),
        method: LvsMethod::Nat,
        persistence_timeout: None,
        persistence_granularity: None,
        persistence_engine: None,
        protocol: Protocol::Tcp,
        delay_loop: None,
        connect_timeout: None,
        retry: None,
        delay_before_retry: None,
        warmup: None,
        inhibit_on_failure: false,
        alpha: false,
        omega: false,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        ha_suspend: false,
        smtp_alert: None,
        virtualhost: None,
        weight: None,
        sorry_server: None,
        real_servers: Vec::new(),
        span: st.span.clone(),
    };
    // The service's address family as keepalived learns it (`vs->af`).
    let mut af: Option<bool> = match &vs.target {
        VsTarget::Addr { addr, .. } => Some(addr.is_ipv6()),
        _ => None,
    };
    let mut sorry_inhibit: Option<&Statement> = None;
    let mut sorry_method: Option<&Statement> = None;
    for item in body {
        match item.keyword.as_str() {
            "real_server" => {
                if let Some(rs) = parse_real_server(ctx, item) {
                    // keepalived (rs_end_handler): unless the server has its own TUN method,
                    // its family must be the virtual server's (the first such server sets it
                    // for a fwmark or group service).
                    let tunnelled = matches!(rs.method, Some(LvsMethod::Tun(_)));
                    match af {
                        _ if tunnelled => vs.real_servers.push(rs),
                        None => {
                            af = Some(rs.addr.is_ipv6());
                            vs.real_servers.push(rs);
                        }
                        Some(v6) if v6 == rs.addr.is_ipv6() => vs.real_servers.push(rs),
                        Some(_) => ctx.error(
                            &rs.span,
                            format!(
                                "real_server {}: address family of virtual server and real server don't match - skipping real server",
                                rs.addr
                            ),
                        ),
                    }
                }
                continue;
            }
            "ip_family" => {
                let want = ctx
                    .choice(item, 0, &["inet", "inet6"], false)
                    .map(|f| f == "inet6");
                match (af, want) {
                    (Some(have), Some(v6)) if have != v6 => ctx.error(
                        &item.span,
                        format!(
                            "ip_family {}: conflicts with the virtual server's address family - ignoring",
                            item.args[0]
                        ),
                    ),
                    (_, Some(v6)) => {
                        af = Some(v6);
                        vs.ipv6 = Some(v6);
                    }
                    _ => {}
                }
            }
            "lvs_sched" | "lb_algo" => {
                if let Some(s) = ctx.arg(item, 0, "a scheduler name") {
                    if SCHEDULERS.contains(&s) {
                        vs.scheduler = s.to_string();
                        given.scheduler = true;
                    } else {
                        ctx.error(
                            &item.span,
                            format!("{}: invalid scheduler '{s}' - ignoring", item.keyword),
                        );
                    }
                }
            }
            k if k == "hashed" || k == "ops" || sched_flags::flag(k).is_some() => {
                apply_flag(ctx, item, &mut vs, given.scheduler)
            }
            "lvs_method" | "lb_kind" => {
                if let Some(m) = parse_method(ctx, item) {
                    vs.method = m;
                    given.method = true;
                }
            }
            "persistence_timeout" => {
                if item.args.is_empty() {
                    vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
                } else if let Some(t) = ctx.u32(item, 0, 1, MAX_PERSISTENCE) {
                    vs.persistence_timeout = Some(t);
                }
            }
            "persistence_granularity" => {
                // keepalived (pgr_handler): a service of no family yet takes IPv4 when the
                // value has a '.', else IPv6.
                let v6 = af.unwrap_or_else(|| !item.args.first().is_some_and(|a| a.contains('.')));
                if let Some(mask) = granularity(ctx, item, v6) {
                    vs.persistence_granularity = Some(mask);
                    if af.is_none() {
                        af = Some(v6);
                        vs.ipv6 = Some(v6);
                    }
                }
            }
            "persistence_engine" => {
                vs.persistence_engine = ctx.arg(item, 0, "an engine name").map(str::to_string)
            }
            "protocol" => {
                if let Some(p) = ctx.choice(item, 0, &["TCP", "UDP", "SCTP"], true) {
                    given.protocol = true;
                    vs.protocol = match p {
                        "UDP" => Protocol::Udp,
                        "SCTP" => Protocol::Sctp,
                        _ => Protocol::Tcp,
                    };
                }
            }
            "delay_loop" => vs.delay_loop = ctx.positive_secs(item, 0),
            "connect_timeout" => {
                vs.connect_timeout = ctx.secs_in(
                    item,
                    0,
                    Duration::from_micros(1),
                    Duration::from_micros(u64::from(u32::MAX)),
                )
            }
            "retry" => {
                if let Some(r) = ctx.u32(item, 0, 1, u32::MAX) {
                    vs.retry = Some(r);
                }
            }
            "delay_before_retry" => vs.delay_before_retry = ctx.secs(item, 0),
            "warmup" => vs.warmup = ctx.secs(item, 0),
            // keepalived's virtual-server-level `inhibit_on_failure`, `alpha`, `omega` and
            // `ha_suspend` take no value: any argument is ignored and the option is on.
            "inhibit_on_failure" => vs.inhibit_on_failure = true,
            "alpha" => vs.alpha = true,
            "omega" => vs.omega = true,
            "quorum" => vs.quorum = ctx.u32(item, 0, 1, u32::MAX).unwrap_or(1),
            "hysteresis" => {
                if let Some(h) = ctx.u32(item, 0, 0, u32::MAX) {
                    vs.hysteresis = h;
                }
            }
            "quorum_up" => vs.quorum_up = script(ctx, item),
            "quorum_down" => vs.quorum_down = script(ctx, item),
            "ha_suspend" => vs.ha_suspend = true,
            "smtp_alert" => vs.smtp_alert = ctx.flag(item),
            "virtualhost" => {
                vs.virtualhost = ctx
                    .lenient_missing(|c| c.arg(item, 0, "a host name"))
                    .map(str::to_string)
            }
            "weight" => {
                if let Some(w) = ctx.u32(item, 0, 1, MAX_WEIGHT) {
                    vs.weight = Some(w);
                }
            }
            "sorry_server" => {
                if let (Some(addr), Some(port)) = (
                    ctx.ip(item, 0),
                    if item.args.len() > 1 {
                        ctx.port(item, 1)
                    } else {
                        Some(0)
                    },
                ) {
                    vs.sorry_server = Some(SorryServer {
                        addr,
                        port,
                        method: None,
                        inhibit: false,
                    });
                }
            }
            "sorry_server_inhibit" => sorry_inhibit = Some(item),
            "sorry_server_lvs_method" => sorry_method = Some(item),
            _ => {
                ctx.unknown(item, "virtual_server");
                continue;
            }
        }
        ctx.no_block(item);
    }
    if let Some(item) = sorry_inhibit {
        let on = ctx.flag(item).unwrap_or(true);
        match vs.sorry_server.as_mut() {
            Some(s) => s.inhibit = on,
            None => ctx.warn(&item.span, "sorry_server_inhibit without sorry_server"),
        }
    }
    if let Some(item) = sorry_method {
        let m = ctx.lenient_missing(|c| parse_method(c, item));
        match vs.sorry_server.as_mut() {
            Some(s) => s.method = m,
            None => ctx.warn(&item.span, "sorry_server_lvs_method without sorry_server"),
        }
    }
    // keepalived (vs_end_handler): a sorry server of the other family, unless tunnelled, is
    // skipped.
    let sorry_mismatch = vs.sorry_server.as_ref().is_some_and(|s| {
        !matches!(s.method, Some(LvsMethod::Tun(_))) && af.is_some_and(|v6| v6 != s.addr.is_ipv6())
    });
    if sorry_mismatch {
        if let Some(s) = vs.sorry_server.take() {
            ctx.error(
                &st.span,
                format!(
                    "sorry_server {}: address family of virtual server and sorry server don't match - skipping sorry server",
                    s.addr
                ),
            );
        }
    }
    if vs.persistence_granularity.is_some() && vs.persistence_timeout.is_none() {
        vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
    }
    Some((vs, given))
}

/// keepalived's `lbflags_handler`: `ops` and `flag-1..3` always; `sh-*` only after
/// `lvs_sched sh`, `mh-*` only after `lvs_sched mh` (other flags then silently ignored); with
/// any other (or no) scheduler so far, every other flag is an error and ignored. (`hashed` sets
/// nothing in keepalived 2.2.)
fn apply_flag(ctx: &mut Ctx<'_>, item: &Statement, vs: &mut VirtualServer, sched_set: bool) {
    let k = item.keyword.as_str();
    let sched = if sched_set { vs.scheduler.as_str() } else { "" };
    match k {
        // Checked against the protocol once keepalived's defaults are known.
        "ops" => vs.sched_flags.ops = true,
        "flag-1" | "flag-2" | "flag-3" => vs.sched_flags.names.push(k.to_string()),
        _ if sched == "sh" || sched == "mh" => {
            if k.starts_with(sched) && sched_flags::flag(k).is_some() {
                vs.sched_flags.names.push(k.to_string());
            }
        }
        _ => ctx.error(
            &item.span,
            format!("{k} only applies to sh scheduler - ignoring"),
        ),
    }
}

/// `persistence_granularity`, as keepalived 2.2.7 reads it for a service of the family `v6`: an
/// IPv6 prefix length 1-128 (as its mask), or an IPv4 mask in any of `inet_aton`'s forms,
/// contiguous or not (`24` is 0.0.0.24, as for ipvsadm's `-M`; the kernel takes any mask).
fn granularity(ctx: &mut Ctx<'_>, st: &Statement, v6: bool) -> Option<IpAddr> {
    let raw = ctx.arg(st, 0, "a netmask or prefix length")?;
    if v6 {
        if let Some(p) = raw.parse::<u8>().ok().filter(|p| (1..=128).contains(p)) {
            return Some(netmask::prefix_mask(true, p));
        }
        ctx.error(
            &st.span,
            format!("Invalid IPv6 persistence_granularity specified - {raw}"),
        );
        return None;
    }
    // getaddrinfo(AI_NUMERICHOST) takes inet_aton's forms with nothing after them.
    match netmask::inet_aton(raw).filter(|_| !raw.contains(char::is_whitespace)) {
        Some(mask) => Some(IpAddr::V4(mask)),
        None => {
            ctx.error(
                &st.span,
                format!("Invalid IPv4 persistence_granularity specified - {raw}"),
            );
            None
        }
    }
}

/// Parses `real_server IP [PORT] { }`.
pub fn parse_real_server(ctx: &mut Ctx<'_>, st: &Statement) -> Option<RealServer> {
    let addr = ctx.ip(st, 0)?;
    let port = if st.args.len() > 1 {
        ctx.port(st, 1)?
    } else {
        0
    };
    let mut rs = RealServer {
        addr,
        port,
        weight: None,
        method: None,
        uthreshold: 0,
        lthreshold: 0,
        inhibit_on_failure: None,
        notify_up: None,
        notify_down: None,
        alpha: None,
        connect_timeout: None,
        retry: None,
        delay_before_retry: None,
        warmup: None,
        delay_loop: None,
        smtp_alert: None,
        virtualhost: None,
        checkers: Vec::new(),
        span: st.span.clone(),
    };
    let Some(body) = &st.block else {
        // keepalived needs the block ("Missing '{' at beginning of configuration block"); the
        // server is kept without checkers (always up).
        ctx.error(&st.span, "real_server: expected a '{' block");
        return Some(rs);
    };
    for item in body {
        if let Some(kind) = empty_kind(&item.keyword) {
            if let Some(c) = parse_checker(ctx, item, kind) {
                rs.checkers.push(c);
            }
            continue;
        }
        match item.keyword.as_str() {
            "weight" => rs.weight = weight(ctx, item),
            "lvs_method" => rs.method = parse_method(ctx, item),
            "uthreshold" => rs.uthreshold = ctx.u32(item, 0, 0, u32::MAX).unwrap_or(0),
            "lthreshold" => rs.lthreshold = ctx.u32(item, 0, 0, u32::MAX).unwrap_or(0),
            "inhibit_on_failure" => rs.inhibit_on_failure = ctx.flag(item),
            "notify_up" => rs.notify_up = script(ctx, item),
            "notify_down" => rs.notify_down = script(ctx, item),
            "alpha" => rs.alpha = ctx.flag(item),
            "connect_timeout" => {
                rs.connect_timeout = ctx.secs_in(
                    item,
                    0,
                    Duration::from_micros(1),
                    Duration::from_micros(u64::from(u32::MAX)),
                )
            }
            "retry" => {
                if let Some(r) = ctx.u32(item, 0, 1, u32::MAX) {
                    rs.retry = Some(r);
                }
            }
            "delay_before_retry" => rs.delay_before_retry = ctx.secs(item, 0),
            "warmup" => rs.warmup = ctx.secs(item, 0),
            "delay_loop" => rs.delay_loop = ctx.positive_secs(item, 0),
            "smtp_alert" => rs.smtp_alert = ctx.flag(item),
            "virtualhost" => {
                rs.virtualhost = ctx
                    .lenient_missing(|c| c.arg(item, 0, "a host name"))
                    .map(str::to_string)
            }
            "BFD_CHECK" => {
                ctx.warn(&item.span, "BFD_CHECK is not supported by rvs - ignoring");
                continue;
            }
            _ => {
                ctx.unknown(item, "real_server");
                continue;
            }
        }
        ctx.no_block(item);
    }
    if rs.lthreshold > 0 && rs.uthreshold > 0 && rs.lthreshold > rs.uthreshold {
        // keepalived does not check it; IPVS (and rvs) refuse such a server when it is added.
        ctx.warn(
            &st.span,
            "real_server: lthreshold is above uthreshold: IPVS (and rvs) refuse this server",
        );
    }
    Some(rs)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        let (a, b) = parse_range("192.168.1.10-20").unwrap();
        assert_eq!(a.to_string(), "192.168.1.10");
        assert_eq!(b.to_string(), "192.168.1.20");
        assert!(parse_range("192.168.1.10-5").is_none());
        assert!(parse_range("192.168.1.10-300").is_none());
        let (a, b) = parse_range("2001:db8::1-a").unwrap();
        assert_eq!(
            (a.to_string().as_str(), b.to_string().as_str()),
            ("2001:db8::1", "2001:db8::a")
        );
    }
}
