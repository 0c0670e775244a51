//! `vrrp_script`, `vrrp_instance` and `vrrp_sync_group` blocks.

use crate::model::Setting;
use crate::parse_common::{name_list, script, script_argv};
use crate::tree::Statement;
use crate::values::Ctx;
use crate::vrrp::{
    Tracked, VirtualIp, VrrpAuth, VrrpInstance, VrrpNotify, VrrpScript, VrrpState, VrrpSyncGroup,
};
use std::net::IpAddr;
use std::time::Duration;

/// vrrp_instance keywords keepalived 2.2 accepts that rvs keeps without interpreting.
const OTHER_INSTANCE: &[&str] = &[
    "use_vmac",
    "use_vmac_addr",
    "vmac_xmit_base",
    "use_ipvlan",
    "unicast_fault_no_peer",
    "check_unicast_src",
    "old_unicast_checksum",
    "native_ipv6",
    "vrf",
    "dont_track_primary",
    "track_file",
    "track_process",
    "mcast_dst_ip",
    "track_src_ip",
    "unicast_ttl",
    "promote_secondaries",
    "linkbeat_use_polling",
    "virtual_routes",
    "virtual_rules",
    "accept",
    "no_accept",
    "skip_check_adv_addr",
    "strict_mode",
    "debug",
    "notify_deleted",
    "notify_master_rx_lower_pri",
    "notify_priority_changes",
    "lvs_sync_daemon_interface",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "down_timer_adverts",
    "garp_extra_if",
    "vmac_garp_intvl",
    "lower_prio_no_advert",
    "higher_prio_send_advert",
    "kernel_rx_buf_size",
];

fn notify(ctx: &mut Ctx<'_>, st: &Statement, n: &mut VrrpNotify) -> bool {
    let slot = match st.keyword.as_str() {
        "notify_master" => &mut n.master,
        "notify_backup" => &mut n.backup,
        "notify_fault" => &mut n.fault,
        "notify_stop" => &mut n.stop,
        "notify" => &mut n.any,
        _ => return false,
    };
    *slot = script(ctx, st);
    true
}

fn tracked(ctx: &mut Ctx<'_>, st: &Statement) -> Vec<Tracked> {
    let Some(body) = ctx.block(st) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in body {
        let mut t = Tracked {
            name: item.keyword.clone(),
            weight: None,
            reverse: false,
        };
        match item.args.first().map(String::as_str) {
            None => {}
            Some("weight") => {
                // keepalived ignores the entry when its weight is invalid.
                t.weight = ctx.int_as::<i32>(item, 1, -254, 254);
                if t.weight.is_none() {
                    continue;
                }
                t.reverse = item.args.get(2).is_some_and(|a| a == "reverse");
            }
            Some(other) => ctx.error(
                &item.span,
                format!("{}: expected 'weight N', got '{other}'", item.keyword),
            ),
        }
        if out.iter().any(|o: &Tracked| o.name == t.name) {
            ctx.error(
                &item.span,
                format!("{}: duplicate {} - ignoring", st.keyword, t.name),
            );
            continue;
        }
        out.push(t);
    }
    out
}

/// A vrrp_script `interval`/`timeout` of 0 is 1 s in keepalived (reported).
fn at_least_one_second(ctx: &mut Ctx<'_>, st: &Statement, d: Duration) -> Duration {
    if d.is_zero() {
        ctx.error(
            &st.span,
            format!("{}: must be greater than 0, setting to 1", st.keyword),
        );
        Duration::from_secs(1)
    } else {
        d
    }
}

/// `garp_master_repeat` / `garp_master_refresh_repeat`: 0 is 1 in keepalived (reported).
fn repeat(ctx: &mut Ctx<'_>, st: &Statement) -> Option<u32> {
    let n = ctx.u32(st, 0, 0, u32::MAX)?;
    if n == 0 {
        ctx.error(
            &st.span,
            format!("{}: must be greater than 0, setting to 1", st.keyword),
        );
        return Some(1);
    }
    Some(n)
}

/// Parses `vrrp_script NAME { }`.
pub fn parse_vrrp_script(ctx: &mut Ctx<'_>, st: &Statement) -> Option<VrrpScript> {
    let name = ctx.arg(st, 0, "a script name")?.to_string();
    let body = ctx.block(st)?;
    let mut s = VrrpScript {
        name,
        script: Vec::new(),
        interval: Duration::from_secs(1),
        timeout: None,
        weight: 0,
        reverse: false,
        rise: 1,
        fall: 1,
        user: None,
        init_fail: false,
        span: st.span.clone(),
    };
    for item in body {
        match item.keyword.as_str() {
            "script" => {
                if ctx.lenient_missing(|c| c.text(item, "a command")).is_some() {
                    s.script = script_argv(&item.args);
                }
            }
            // keepalived: 0 "must be greater than 0, setting to 1".
            "interval" => {
                if let Some(d) = ctx.secs(item, 0) {
                    s.interval = at_least_one_second(ctx, item, d);
                }
            }
            "timeout" => {
                if let Some(d) = ctx.secs(item, 0) {
                    s.timeout = Some(at_least_one_second(ctx, item, d));
                }
            }
            "weight" => {
                s.weight = ctx.int_as::<i32>(item, 0, -253, 253).unwrap_or(0);
                s.reverse = item.args.get(1).is_some_and(|a| a == "reverse");
            }
            "rise" => s.rise = ctx.u32(item, 0, 1, u32::MAX).unwrap_or(1),
            "fall" => s.fall = ctx.u32(item, 0, 1, u32::MAX).unwrap_or(1),
            "user" => s.user = ctx.arg(item, 0, "a user name").map(str::to_string),
            "init_fail" => s.init_fail = true,
            _ => ctx.unknown(item, "vrrp_script"),
        }
    }
    if s.script.is_empty() {
        ctx.error(
            &st.span,
            format!("vrrp_script {}: expected a script", s.name),
        );
        return None;
    }
    Some(s)
}

fn prefix_ok(addr: &IpAddr, p: u8) -> bool {
    match addr {
        IpAddr::V4(_) => p <= 32,
        IpAddr::V6(_) => p <= 128,
    }
}

fn virtual_ips(ctx: &mut Ctx<'_>, st: &Statement) -> Vec<VirtualIp> {
    let Some(body) = ctx.block(st) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in body {
        let (a, p) = match item.keyword.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item.keyword.as_str(), None),
        };
        let Ok(addr) = a.parse::<IpAddr>() else {
            ctx.error(
                &item.span,
                format!(
                    "{}: expected an address[/prefix], got '{}'",
                    st.keyword, item.keyword
                ),
            );
            continue;
        };
        let default_prefix = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p.map(|p| p.parse::<u8>().ok().filter(|p| prefix_ok(&addr, *p))) {
            None => default_prefix,
            Some(Some(p)) => p,
            Some(None) => {
                // keepalived: "Invalid address prefix len ... - using 32" (128 for IPv6).
                ctx.error(
                    &item.span,
                    format!(
                        "{}: bad prefix length in '{}' - using {default_prefix}",
                        st.keyword, item.keyword
                    ),
                );
                default_prefix
            }
        };
        let mut vip = VirtualIp {
            addr,
            prefix,
            broadcast: None,
            dev: None,
            scope: None,
            label: None,
            options: Vec::new(),
            span: item.span.clone(),
        };
        let mut i = 0;
        while i < item.args.len() {
            let key = item.args[i].as_str();
            let val = item.args.get(i + 1).cloned();
            let takes_value = matches!(
                key,
                "brd" | "dev" | "scope" | "label" | "preferred_lft" | "track_group"
            );
            if takes_value && val.is_none() {
                ctx.error(&item.span, format!("{}: '{key}' needs a value", st.keyword));
                break;
            }
            match key {
                "brd" => match broadcast(addr, prefix, val.as_deref()) {
                    Some(b) => vip.broadcast = Some(b),
                    None => ctx.error(
                        &item.span,
                        format!("{}: brd: expected an IP address, + or -", st.keyword),
                    ),
                },
                "dev" => vip.dev = val,
                "scope" => vip.scope = val,
                "label" => vip.label = val,
                "preferred_lft" | "track_group" => {
                    vip.options.push(key.to_string());
                    vip.options.extend(val);
                }
                "no_track" | "home" | "-nodad" | "nodad" | "noprefixroute" | "autojoin" => {
                    vip.options.push(key.to_string());
                    i += 1;
                    continue;
                }
                other => {
                    ctx.warn(
                        &item.span,
                        format!("{}: unknown option '{other}'", st.keyword),
                    );
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        out.push(vip);
    }
    out
}

/// `brd ADDR`, or `brd +` / `brd -`: the IPv4 address with its host bits set / cleared (as
/// keepalived's `parse_ipaddress`).
fn broadcast(addr: IpAddr, prefix: u8, val: Option<&str>) -> Option<IpAddr> {
    let host_bits = |set: bool| match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            let v = u32::from(a);
            Some(IpAddr::V4(std::net::Ipv4Addr::from(if set {
                v | mask
            } else {
                v & !mask
            })))
        }
        IpAddr::V6(_) => None,
    };
    match val? {
        "+" => host_bits(true),
        "-" => host_bits(false),
        v => v.parse().ok(),
    }
}

/// Checks a top-level `static_ipaddress { }` block as keepalived does (each line an address
/// as in `virtual_ipaddress`); rvs does not add them.
pub fn parse_static_ipaddress(ctx: &mut Ctx<'_>, st: &Statement) {
    virtual_ips(ctx, st);
}

fn auth(ctx: &mut Ctx<'_>, st: &Statement) -> Option<VrrpAuth> {
    let body = ctx.block(st)?;
    let mut kind = None;
    let mut saw_type = false;
    let mut pass = None;
    for item in body {
        match item.keyword.as_str() {
            "auth_type" => {
                saw_type = true;
                kind = ctx
                    .choice(item, 0, &["PASS", "AH"], false)
                    .map(str::to_string)
            }
            "auth_pass" => {
                pass = ctx.arg(item, 0, "a password").map(|p| {
                    // keepalived keeps 8 bytes (the VRRPv2 authentication data).
                    if p.len() > 8 {
                        ctx.error(
                            &item.span,
                            "auth_pass: truncating auth_pass to 8 characters",
                        );
                        if p.is_char_boundary(8) {
                            return p[..8].to_string();
                        }
                    }
                    p.to_string()
                })
            }
            _ => ctx.unknown(item, "authentication"),
        }
    }
    match (kind, pass) {
        (Some(auth_type), Some(auth_pass)) => Some(VrrpAuth {
            auth_type,
            auth_pass,
        }),
        (Some(_), None) => {
            ctx.error(&st.span, "authentication: expected auth_pass");
            None
        }
        (None, _) => {
            if !saw_type {
                ctx.error(&st.span, "authentication: expected auth_type PASS|AH");
            }
            None
        }
    }
}

/// Parses `vrrp_instance NAME { }`.
pub fn parse_vrrp_instance(ctx: &mut Ctx<'_>, st: &Statement) -> Option<VrrpInstance> {
    let name = ctx
        .lenient_missing(|c| c.arg(st, 0, "an instance name"))?
        .to_string();
    let body = ctx.block(st)?;
    let mut interface = None;
    let mut vrid = None;
    let mut v = VrrpInstance {
        name,
        state: None,
        interface: String::new(),
        virtual_router_id: 0,
        priority: 100,
        advert_int: Duration::from_secs(1),
        nopreempt: false,
        preempt_delay: None,
        authentication: None,
        virtual_ipaddress: Vec::new(),
        virtual_ipaddress_excluded: Vec::new(),
        unicast_src_ip: None,
        unicast_peer: Vec::new(),
        mcast_src_ip: None,
        track_interface: Vec::new(),
        track_script: Vec::new(),
        track_bfd: Vec::new(),
        garp_master_delay: None,
        garp_master_repeat: None,
        garp_master_refresh: None,
        garp_master_refresh_repeat: None,
        notify: VrrpNotify::default(),
        smtp_alert: false,
        version: None,
        other: Vec::new(),
        span: st.span.clone(),
    };
    for item in body {
        if notify(ctx, item, &mut v.notify) {
            continue;
        }
        match item.keyword.as_str() {
            "state" => {
                v.state = match item.args.first().map(String::as_str) {
                    Some("MASTER") => Some(VrrpState::Master),
                    Some("BACKUP") => Some(VrrpState::Backup),
                    Some(other) => {
                        // keepalived: "unknown state '%s', defaulting to BACKUP".
                        ctx.error(
                            &item.span,
                            format!("state: unknown state '{other}', defaulting to BACKUP"),
                        );
                        Some(VrrpState::Backup)
                    }
                    None => {
                        ctx.error(&item.span, "state: expected MASTER|BACKUP");
                        None
                    }
                }
            }
            "interface" => {
                interface = ctx.arg(item, 0, "an interface name").map(str::to_string);
                // keepalived refuses the loopback interface (by its IFF_LOOPBACK flag; `lo` is
                // the loopback's name on Linux); the instance then has none.
                if interface.as_deref() == Some("lo") {
                    ctx.error(
                        &item.span,
                        "interface: cannot use a loopback interface (lo) for vrrp - ignoring",
                    );
                    interface = None;
                }
            }
            "virtual_router_id" => vrid = ctx.int_as::<u8>(item, 0, 1, 255),
            "priority" => {
                if let Some(p) = ctx.int_as::<u8>(item, 0, 1, 255) {
                    v.priority = p;
                }
            }
            "advert_int" => {
                if let Some(a) = ctx.secs(item, 0) {
                    if a.is_zero() || a > Duration::from_secs(255) {
                        ctx.error(
                            &item.span,
                            format!(
                                "advert_int: expected a time 0.01-255 s, got '{}'",
                                item.args[0]
                            ),
                        );
                    } else {
                        v.advert_int = a;
                    }
                }
            }
            "nopreempt" => v.nopreempt = true,
            "preempt" => v.nopreempt = false,
            "preempt_delay" => {
                v.preempt_delay = ctx.secs_in(item, 0, Duration::ZERO, Duration::from_secs(1000))
            }
            "authentication" => v.authentication = auth(ctx, item),
            "virtual_ipaddress" => v.virtual_ipaddress.extend(virtual_ips(ctx, item)),
            "virtual_ipaddress_excluded" => {
                v.virtual_ipaddress_excluded.extend(virtual_ips(ctx, item))
            }
            "unicast_src_ip" => v.unicast_src_ip = ctx.ip(item, 0),
            "mcast_src_ip" => v.mcast_src_ip = ctx.ip(item, 0),
            "unicast_peer" => {
                if let Some(body) = ctx.block(item) {
                    for peer in body {
                        match peer.keyword.parse::<IpAddr>() {
                            Ok(a) => v.unicast_peer.push(a),
                            Err(_) => ctx.error(
                                &peer.span,
                                format!(
                                    "unicast_peer: expected an IP address, got '{}'",
                                    peer.keyword
                                ),
                            ),
                        }
                    }
                }
            }
            "track_interface" => v.track_interface.extend(tracked(ctx, item)),
            "track_script" => v.track_script.extend(tracked(ctx, item)),
            "track_bfd" => v.track_bfd.extend(tracked(ctx, item)),
            "garp_master_delay" => v.garp_master_delay = ctx.secs(item, 0),
            "garp_master_repeat" => v.garp_master_repeat = repeat(ctx, item),
            "garp_master_refresh" => v.garp_master_refresh = ctx.secs(item, 0),
            "garp_master_refresh_repeat" => v.garp_master_refresh_repeat = repeat(ctx, item),
            "smtp_alert" => v.smtp_alert = ctx.flag(item).unwrap_or(true),
            "version" => v.version = ctx.int_as::<u8>(item, 0, 2, 3),
            // Checked as keepalived checks them (rvs does not add routes or rules).
            "virtual_routes" => {
                crate::parse_other::check_static_routes(ctx, item);
                ctx.ignored(item);
            }
            "virtual_rules" => {
                crate::parse_other::check_static_rules(ctx, item);
                ctx.ignored(item);
            }
            k if OTHER_INSTANCE.contains(&k) => v.other.push(Setting {
                keyword: item.keyword.clone(),
                args: item.args.clone(),
                span: item.span.clone(),
            }),
            _ => ctx.unknown(item, "vrrp_instance"),
        }
    }
    // The VIPs must all be of the first one's family (keepalived: "address family must match
    // VRRP instance ... - ignoring").
    // keepalived: a unicast keyword without any unicast peer means multicast (deprecated usage).
    let unicast_keyword = body.iter().any(|i| {
        matches!(
            i.keyword.as_str(),
            "unicast_peer" | "unicast_src_ip" | "check_unicast_src" | "old_unicast_checksum"
        )
    });
    if unicast_keyword
        && v.unicast_peer.is_empty()
        && !body.iter().any(|i| i.keyword == "unicast_fault_no_peer")
    {
        ctx.error(
            &st.span,
            format!("vrrp_instance {}: a unicast keyword has been specified without any unicast peers - defaulting to multicast", v.name),
        );
    }
    // (`virtual_ipaddress_excluded` may mix families.)
    let ipv6 = v.virtual_ipaddress.first().map(|a| a.addr.is_ipv6());
    if let Some(ipv6) = ipv6 {
        let name = v.name.clone();
        {
            v.virtual_ipaddress.retain(|a| {
                let same = a.addr.is_ipv6() == ipv6;
                if !same {
                    ctx.error(
                        &a.span,
                        format!(
                            "vrrp_instance {name}: address family must match VRRP instance [{}] - ignoring",
                            a.addr
                        ),
                    );
                }
                same
            });
        }
    }
    // keepalived: without a priority, a MASTER is the address owner (255), others 100; without
    // a state, the address owner is MASTER, others BACKUP.
    if !body.iter().any(|i| i.keyword == "priority") {
        v.priority = if v.state == Some(VrrpState::Master) {
            255
        } else {
            100
        };
    }
    if v.state.is_none() {
        v.state = Some(if v.priority == 255 {
            VrrpState::Master
        } else {
            VrrpState::Backup
        });
    }
    // Without a router id or an interface keepalived's VRRP process stops, and keepalived
    // with it.
    let mut ok = true;
    match interface {
        Some(i) => v.interface = i,
        None => {
            ctx.fatal(
                &st.span,
                format!("vrrp_instance {}: expected interface", v.name),
            );
            ok = false;
        }
    }
    match vrid {
        Some(id) => v.virtual_router_id = id,
        None => {
            // Invalid (already reported) or missing, the router id stays 0 and keepalived's
            // VRRP process stops ("the virtual router id must be set").
            let message = if body.iter().any(|i| i.keyword == "virtual_router_id") {
                format!(
                    "vrrp_instance {}: the virtual router id must be set",
                    v.name
                )
            } else {
                format!("vrrp_instance {}: expected virtual_router_id", v.name)
            };
            ctx.fatal(&st.span, message);
            ok = false;
        }
    }
    ok.then_some(v)
}

/// Parses `vrrp_sync_group NAME { }`.
pub fn parse_vrrp_sync_group(ctx: &mut Ctx<'_>, st: &Statement) -> Option<VrrpSyncGroup> {
    let name = ctx
        .lenient_missing(|c| c.arg(st, 0, "a group name"))?
        .to_string();
    let body = ctx.block(st)?;
    let mut g = VrrpSyncGroup {
        name,
        group: Vec::new(),
        notify: VrrpNotify::default(),
        smtp_alert: false,
        track_script: Vec::new(),
        track_bfd: Vec::new(),
        track_interface: Vec::new(),
        span: st.span.clone(),
    };
    for item in body {
        if notify(ctx, item, &mut g.notify) {
            continue;
        }
        match item.keyword.as_str() {
            "group" => g.group.extend(name_list(ctx, item)),
            "smtp_alert" => g.smtp_alert = ctx.flag(item).unwrap_or(true),
            "track_script" => g.track_script.extend(tracked(ctx, item)),
            "track_interface" => g.track_interface.extend(tracked(ctx, item)),
            "track_bfd" => g.track_bfd.extend(tracked(ctx, item)),
            "global_tracking"
            | "sync_group_tracking_weight"
            | "notify_priority_changes"
            | "track_file"
            | "track_process" => {}
            _ => ctx.unknown(item, "vrrp_sync_group"),
        }
    }
    if g.group.is_empty() {
        ctx.error(
            &st.span,
            format!(
                "vrrp_sync_group {}: expected a group {{ }} of instances",
                g.name
            ),
        );
        return None;
    }
    Some(g)
}
