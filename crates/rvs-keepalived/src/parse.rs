//! The top level: dispatches blocks to their parsers, then checks cross references and applies
//! keepalived's fix-ups (check_data.c `validate_check_config`, vrrp.c `vrrp_complete_init`).

use crate::checker::CheckerKind;
use crate::model::{
    Config, GroupEntry, LvsMethod, LvsSyncDaemon, Protocol, VirtualServer, VsTarget,
};
use crate::parse_global::{parse_global_defs, parse_ssl, parse_track_file};
use crate::parse_lvs::{parse_group, parse_virtual_server, VsGiven, DEFAULT_PERSISTENCE};
use crate::parse_other::{check_bfd_instance, check_static_routes, check_static_rules};
use crate::parse_vrrp::{
    parse_static_ipaddress, parse_vrrp_instance, parse_vrrp_script, parse_vrrp_sync_group,
};
use crate::tree::Statement;
use crate::values::Ctx;
use crate::vrrp::{VrrpInstance, VrrpState};
use std::collections::HashSet;

/// Top-level keywords of keepalived 2.2 that rvs parses but does not act on (process-wide
/// options, ...). `static_ipaddress`, `static_routes`, `static_rules` and `bfd_instance` are
/// checked as keepalived checks them, then ignored too.
const OTHER_TOP: &[&str] = &[
    "track_group",
    "garp_group",
    "linkbeat_interfaces",
    "vrrp_track_process",
    "interface_up_down_delays",
    "linkbeat_use_polling",
    "net_namespace",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "use_pid_dir",
    "instance",
    "child_wait_time",
];

/// Turns the statement tree into a [`Config`], recording problems in `ctx`.
pub fn parse_config(ctx: &mut Ctx<'_>, statements: &[Statement], config: &mut Config) {
    let mut vs_given = Vec::new();
    let mut bfd_seen = HashSet::new();
    for st in statements {
        match st.keyword.as_str() {
            "global_defs" => parse_global_defs(ctx, st, &mut config.global),
            "SSL" => config.ssl = parse_ssl(ctx, st),
            "track_file" | "vrrp_track_file" => {
                config.track_files.extend(parse_track_file(ctx, st))
            }
            "virtual_server_group" => config.groups.extend(parse_group(ctx, st)),
            "virtual_server" => {
                if let Some((vs, given)) = parse_virtual_server(ctx, st) {
                    config.virtual_servers.push(vs);
                    vs_given.push(given);
                }
            }
            "vrrp_script" => config.vrrp_scripts.extend(parse_vrrp_script(ctx, st)),
            "vrrp_instance" => config.vrrp_instances.extend(parse_vrrp_instance(ctx, st)),
            "vrrp_sync_group" => config
                .vrrp_sync_groups
                .extend(parse_vrrp_sync_group(ctx, st)),
            "static_ipaddress" => {
                parse_static_ipaddress(ctx, st);
                ctx.ignored(st);
            }
            "static_routes" => {
                check_static_routes(ctx, st);
                ctx.ignored(st);
            }
            "static_rules" => {
                check_static_rules(ctx, st);
                ctx.ignored(st);
            }
            "bfd_instance" => {
                config
                    .bfd_instances
                    .extend(check_bfd_instance(ctx, st, &mut bfd_seen))
            }
            k if OTHER_TOP.contains(&k) => ctx.ignored(st),
            _ => ctx.unknown(st, "the top level"),
        }
    }
    validate_lvs(ctx, config, &vs_given);
    validate_vrrp(ctx, config);
}

fn vs_name(vs: &VirtualServer) -> String {
    match &vs.target {
        VsTarget::Addr { addr, port } => format!("{addr} {port}"),
        VsTarget::Fwmark(m) => format!("fwmark {m}"),
        VsTarget::Group(g) => format!("group {g}"),
    }
}

/// The address family a virtual server serves, for telling apart fwmark services of IPv4 and
/// IPv6 (keepalived: `ip_family`, else the first real server's family).
fn vs_ipv6(vs: &VirtualServer) -> bool {
    match &vs.target {
        VsTarget::Addr { addr, .. } => addr.is_ipv6(),
        _ => vs
            .ipv6
            .unwrap_or_else(|| vs.real_servers.first().is_some_and(|r| r.addr.is_ipv6())),
    }
}

/// keepalived's checks and fix-ups of virtual and real servers, in its order.
fn validate_lvs(ctx: &mut Ctx<'_>, c: &mut Config, vs_given: &[VsGiven]) {
    let groups: HashSet<&str> = c.groups.iter().map(|g| g.name.as_str()).collect();
    let files: HashSet<&str> = c.track_files.iter().map(|t| t.name.as_str()).collect();
    let mut kept: Vec<VirtualServer> = Vec::new();
    for (i, mut vs) in std::mem::take(&mut c.virtual_servers)
        .into_iter()
        .enumerate()
    {
        let name = vs_name(&vs);
        let group = match &vs.target {
            VsTarget::Group(g) => {
                if !groups.contains(g.as_str()) {
                    ctx.error(
                        &vs.span,
                        format!("virtual_server group {g}: no virtual_server_group named '{g}' - ignoring"),
                    );
                    continue;
                }
                c.groups.iter().find(|x| &x.name == g)
            }
            _ => None,
        };
        if vs.real_servers.is_empty() {
            ctx.error(
                &vs.span,
                format!("virtual_server {name} has no real servers - ignoring"),
            );
            continue;
        }
        let fwmarks = matches!(vs.target, VsTarget::Fwmark(_))
            || group.is_some_and(|g| g.entries.iter().any(|e| matches!(e, GroupEntry::Fwmark(_))));
        if vs.ha_suspend && fwmarks {
            ctx.error(
                &vs.span,
                format!("virtual_server {name}: cannot use ha_suspend with fwmarks - clearing ha_suspend"),
            );
            vs.ha_suspend = false;
        }
        let has_ranges = group.is_some_and(|g| {
            g.entries
                .iter()
                .any(|e| matches!(e, GroupEntry::Range { .. }))
        });
        let by_addr = has_ranges || matches!(vs.target, VsTarget::Addr { .. });
        let given = vs_given.get(i).copied().unwrap_or(VsGiven {
            protocol: true,
            scheduler: true,
            method: true,
        });
        if by_addr {
            if !given.protocol {
                // keepalived: "If the protocol is 0, the kernel defaults to UDP".
                ctx.error(
                    &vs.span,
                    format!("virtual_server {name}: no protocol set - defaulting to UDP"),
                );
                vs.protocol = Protocol::Udp;
            }
            if vs.sched_flags.ops && vs.protocol != Protocol::Udp {
                ctx.error(
                    &vs.span,
                    format!(
                        "virtual_server {name}: one packet scheduling requires UDP - resetting"
                    ),
                );
                vs.sched_flags.ops = false;
            }
            let zero_port = match (&vs.target, group) {
                (VsTarget::Addr { port, .. }, _) => *port == 0,
                (_, Some(g)) => g
                    .entries
                    .iter()
                    .any(|e| matches!(e, GroupEntry::Range { port: 0, .. })),
                _ => false,
            };
            if vs.persistence_timeout.is_none() && zero_port {
                ctx.error(
                    &vs.span,
                    format!("virtual_server {name}: zero port only valid for persistent services - setting"),
                );
                vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
            }
        } else if given.protocol {
            ctx.error(
                &vs.span,
                format!("virtual_server {name}: protocol specified for fwmark - protocol will be ignored"),
            );
        }
        if !given.scheduler {
            ctx.error(
                &vs.span,
                format!(
                    "virtual_server {name}: no scheduler set, setting default '{}'",
                    vs.scheduler
                ),
            );
        }
        // Duplicated real servers: the second is removed.
        let mut seen = HashSet::new();
        vs.real_servers.retain(|rs| {
            if seen.insert((rs.addr, rs.port)) {
                true
            } else {
                ctx.error(
                    &rs.span,
                    format!(
                        "real_server {} {}: duplicated in virtual_server {name} - removing second rs",
                        rs.addr, rs.port
                    ),
                );
                false
            }
        });
        let unset_method = vs.real_servers.iter().any(|rs| rs.method.is_none())
            || vs.sorry_server.as_ref().is_some_and(|s| s.method.is_none());
        if !given.method && unset_method {
            ctx.error(
                &vs.span,
                format!("virtual_server {name}: no forwarding method set, setting default NAT"),
            );
        }
        // The quorum can never be reached above the total weight.
        let weight_sum: u64 = vs
            .real_servers
            .iter()
            .map(|rs| u64::from(rs.weight.or(vs.weight).unwrap_or(1)))
            .sum();
        if u64::from(vs.quorum) > weight_sum {
            let lowered = u32::try_from(weight_sum).unwrap_or(u32::MAX);
            ctx.error(
                &vs.span,
                format!(
                    "virtual_server {name}: quorum {} exceeds total weight of real servers {weight_sum}, reducing quorum to {lowered}",
                    vs.quorum
                ),
            );
            vs.quorum = lowered;
        }
        // (With quorum 0 keepalived's quorum - 1 wraps round; rvs keeps 0.)
        if vs.hysteresis >= vs.quorum {
            let h = vs.quorum.saturating_sub(1);
            ctx.error(
                &vs.span,
                format!(
                    "virtual_server {name}: hysteresis {} >= quorum {}; setting hysteresis to {h}",
                    vs.hysteresis, vs.quorum
                ),
            );
            vs.hysteresis = h;
        }
        fix_ports(ctx, &mut vs, &name);
        if let Some(g) = group {
            check_group_ports(ctx, &vs, g, &name);
        }
        for rs in &mut vs.real_servers {
            rs.checkers.retain(|ck| match &ck.kind {
                CheckerKind::File(f) if !files.contains(f.track_file.as_str()) => {
                    ctx.error(
                        &ck.span,
                        format!(
                            "FILE_CHECK: no track_file named '{}' - ignoring",
                            f.track_file
                        ),
                    );
                    false
                }
                _ => true,
            });
        }
        // keepalived does not notice a virtual server defined twice: both drive the one IPVS
        // service, so the second's real servers join the first's.
        let key = (vs.target.clone(), vs.protocol, vs_ipv6(&vs));
        if let Some(first) = kept
            .iter_mut()
            .find(|k| (k.target.clone(), k.protocol, vs_ipv6(k)) == key)
        {
            ctx.warn(
                &vs.span,
                format!("virtual_server {name}: defined twice - its real servers are added to the first definition"),
            );
            for rs in vs.real_servers {
                if !first
                    .real_servers
                    .iter()
                    .any(|r| (r.addr, r.port) == (rs.addr, rs.port))
                {
                    first.real_servers.push(rs);
                }
            }
            continue;
        }
        kept.push(vs);
    }
    c.virtual_servers = kept;
}

/// Real-server (and sorry-server) ports: NAT servers without a port take the service's; DR and
/// TUN servers must use the service's port (reset), or none for fwmark services (cleared).
fn fix_ports(ctx: &mut Ctx<'_>, vs: &mut VirtualServer, name: &str) {
    let vs_method = vs.method;
    match vs.target.clone() {
        VsTarget::Addr { port, .. } => {
            for rs in &mut vs.real_servers {
                let method = rs.method.unwrap_or(vs_method);
                if rs.port == 0 {
                    rs.port = port;
                } else if method != LvsMethod::Nat && rs.port != port {
                    ctx.error(
                        &rs.span,
                        format!("virtual_server {name} and real_server {} {} ports don't match - resetting", rs.addr, rs.port),
                    );
                    rs.port = port;
                }
            }
            if let Some(s) = vs.sorry_server.as_mut() {
                let method = s.method.unwrap_or(vs_method);
                if s.port == 0 {
                    s.port = port;
                } else if method != LvsMethod::Nat && s.port != port {
                    ctx.error(
                        &vs.span,
                        format!(
                            "virtual_server {name} and sorry server ports don't match - resetting"
                        ),
                    );
                    s.port = port;
                }
            }
        }
        VsTarget::Fwmark(_) => {
            for rs in &mut vs.real_servers {
                if rs.method.unwrap_or(vs_method) != LvsMethod::Nat && rs.port != 0 {
                    ctx.error(
                        &rs.span,
                        format!("fwmark virtual_server {name}, real_server {} {} has port specified - clearing", rs.addr, rs.port),
                    );
                    rs.port = 0;
                }
            }
            if let Some(s) = vs.sorry_server.as_mut() {
                if s.method.unwrap_or(vs_method) != LvsMethod::Nat && s.port != 0 {
                    ctx.error(
                        &vs.span,
                        format!(
                            "virtual_server {name}, sorry server has port specified - clearing"
                        ),
                    );
                    s.port = 0;
                }
            }
        }
        // Groups: reported only, as keepalived (nothing is reset).
        VsTarget::Group(_) => {}
    }
}

/// keepalived's port checks of a group's real servers (errors, nothing changed).
fn check_group_ports(
    ctx: &mut Ctx<'_>,
    vs: &VirtualServer,
    group: &crate::model::VirtualServerGroup,
    name: &str,
) {
    let routed = |m: Option<LvsMethod>| m.unwrap_or(vs.method) != LvsMethod::Nat;
    if group
        .entries
        .iter()
        .any(|e| matches!(e, GroupEntry::Fwmark(_)))
    {
        for rs in &vs.real_servers {
            if routed(rs.method) && rs.port != 0 {
                ctx.error(
                    &rs.span,
                    format!("fwmark virtual_server {name}, real_server {} {} has port specified - port will be ignored", rs.addr, rs.port),
                );
            }
        }
    }
    for e in &group.entries {
        if let GroupEntry::Range { port, .. } = e {
            for rs in &vs.real_servers {
                if routed(rs.method) && rs.port != 0 && rs.port != *port {
                    ctx.error(
                        &rs.span,
                        format!("virtual_server {name} (port {port}) and real_server {} {} ports don't match", rs.addr, rs.port),
                    );
                }
            }
        }
    }
}

/// The address family of an instance: its first VIP's (IPv4 without VIPs).
pub fn instance_ipv6(inst: &VrrpInstance) -> bool {
    inst.virtual_ipaddress
        .first()
        .is_some_and(|v| v.addr.is_ipv6())
}

/// keepalived's advert_int rounding: whole seconds for VRRPv2, 10 ms units for VRRPv3 (each
/// an error, half rounded up, never below one unit).
fn round_advert_int(ctx: &mut Ctx<'_>, inst: &mut VrrpInstance, version: u8) {
    let (unit, what) = if version == 2 {
        (
            1_000_000u128,
            "VRRPv2 advertisement interval must be an integer - rounding",
        )
    } else {
        (
            10_000u128,
            "VRRPv3 advertisement interval must be in units of 10ms - rounding",
        )
    };
    let us = inst.advert_int.as_micros();
    if us % unit != 0 {
        ctx.error(&inst.span, format!("vrrp_instance {}: {what}", inst.name));
        let rounded = ((us + unit / 2) / unit * unit).max(unit);
        inst.advert_int =
            std::time::Duration::from_micros(u64::try_from(rounded).unwrap_or(u64::MAX));
    }
    if version == 3 && inst.advert_int >= std::time::Duration::from_millis(40_960) {
        ctx.error(
            &inst.span,
            format!(
                "vrrp_instance {}: VRRPv3 advertisement interval is out of range - setting 40.95s",
                inst.name
            ),
        );
        inst.advert_int = std::time::Duration::from_millis(40_950);
    }
}

/// A unicast VRRP instance, as keepalived's VRID conflict check compares them.
struct UnicastSeen {
    interface: String,
    vrid: u8,
    ipv6: bool,
    /// `unicast_src_ip`; `None`: the interface's own address.
    src: Option<std::net::IpAddr>,
    peers: Vec<std::net::IpAddr>,
    name: String,
}
/// keepalived's instance checks (vrrp.c `vrrp_complete_instance`, `check_vrid_conflicts`).
fn validate_vrrp(ctx: &mut Ctx<'_>, c: &mut Config) {
    let strict = c.global.other.iter().any(|s| s.keyword == "vrrp_strict");
    let global_version = c.global.vrrp_version.unwrap_or(2);
    let scripts: HashSet<String> = c.vrrp_scripts.iter().map(|s| s.name.clone()).collect();
    let mut names = HashSet::new();
    // keepalived skips a second vrrp_instance (or vrrp_sync_group) of a name ("already
    // defined").
    c.vrrp_instances.retain(|inst| {
        let first = names.insert(inst.name.clone());
        if !first {
            ctx.error(
                &inst.span,
                format!("vrrp_instance {}: already defined - ignoring", inst.name),
            );
        }
        first
    });
    let mut group_names = HashSet::new();
    c.vrrp_sync_groups.retain(|g| {
        let first = group_names.insert(g.name.clone());
        if !first {
            ctx.error(
                &g.span,
                format!("vrrp_sync_group {}: already defined - ignoring", g.name),
            );
        }
        first
    });
    let mut vrids = HashSet::new();
    let mut unicast_seen: Vec<UnicastSeen> = Vec::new();
    for inst in &mut c.vrrp_instances {
        let ipv6 = instance_ipv6(inst);
        let version = if ipv6 {
            3
        } else {
            inst.version.unwrap_or(global_version)
        };
        let name = inst.name.clone();
        if ipv6 {
            if inst.version == Some(2) && strict {
                ctx.error(
                    &inst.span,
                    format!("vrrp_instance {name}: cannot use IPv6 with VRRP version 2; setting version 3"),
                );
                inst.version = Some(3);
            }
            inst.version.get_or_insert(3);
        }
        round_advert_int(ctx, inst, version);
        if inst.virtual_ipaddress.is_empty() {
            if version == 3 || strict {
                ctx.fatal(
                    &inst.span,
                    format!("vrrp_instance {name}: no VIP specified; at least one is required"),
                );
            } else {
                ctx.error(
                    &inst.span,
                    format!("vrrp_instance {name}: no VIP specified; at least one is sensible"),
                );
            }
        }
        let owner = inst.priority == 255;
        if strict && inst.state.is_some() && (inst.state == Some(VrrpState::Master)) != owner {
            ctx.error(
                &inst.span,
                format!("vrrp_instance {name}: state MASTER must match being address owner"),
            );
            inst.state = Some(if owner {
                VrrpState::Master
            } else {
                VrrpState::Backup
            });
        }
        if inst.authentication.is_some() {
            let why = if strict {
                Some("strict mode does not support authentication")
            } else if version == 3 {
                Some("VRRP version 3 does not support authentication")
            } else {
                None
            };
            if let Some(why) = why {
                ctx.error(
                    &inst.span,
                    format!("vrrp_instance {name}: {why} - ignoring"),
                );
                inst.authentication = None;
            }
        }
        // An AH master must first hear an advert for the sequence number (vrrp.c).
        if inst
            .authentication
            .as_ref()
            .is_some_and(|a| a.auth_type == "AH")
            && inst.state == Some(VrrpState::Master)
            && !owner
        {
            ctx.error(
                &inst.span,
                format!("vrrp_instance {name}: initial state MASTER is incompatible with AH authentication - clearing"),
            );
            inst.state = Some(VrrpState::Backup);
        }
        if owner && inst.nopreempt {
            ctx.error(
                &inst.span,
                format!("vrrp_instance {name}: nopreempt is incompatible with priority 255 - resetting nopreempt"),
            );
            inst.nopreempt = false;
        }
        if inst.state == Some(VrrpState::Master) {
            if inst.nopreempt {
                ctx.error(
                    &inst.span,
                    format!("vrrp_instance {name}: nopreempt will not work with initial state MASTER - clearing"),
                );
                inst.nopreempt = false;
            }
            if inst.preempt_delay.is_some_and(|d| !d.is_zero()) {
                ctx.error(
                    &inst.span,
                    format!("vrrp_instance {name}: preempt delay will not work with initial state MASTER - clearing"),
                );
                inst.preempt_delay = None;
            }
        }
        let unicast = !inst.unicast_peer.is_empty();
        if unicast {
            // keepalived (check_vrid_conflicts): unicast instances clash only with the same
            // interface, VRID, family and source address (unicast_src_ip, else the
            // interface's own) and a peer in common; it reports and runs both.
            let src = inst.unicast_src_ip;
            let clash = unicast_seen.iter().find(|u| {
                u.interface == inst.interface
                    && u.vrid == inst.virtual_router_id
                    && u.ipv6 == ipv6
                    && (u.src.is_none() || src.is_none() || u.src == src)
                    && u.peers.iter().any(|p| inst.unicast_peer.contains(p))
            });
            if let Some(UnicastSeen { name: other, .. }) = clash {
                ctx.error(
                    &inst.span,
                    format!(
                        "({name}) duplicate VRID conflict with {other} VRID {}",
                        inst.virtual_router_id
                    ),
                );
            }
            unicast_seen.push(UnicastSeen {
                interface: inst.interface.clone(),
                vrid: inst.virtual_router_id,
                ipv6,
                src,
                peers: inst.unicast_peer.clone(),
                name: name.clone(),
            });
        } else if !vrids.insert((inst.interface.clone(), inst.virtual_router_id, ipv6)) {
            ctx.fatal(
                &inst.span,
                format!(
                    "vrrp_instance {name}: VRID {} with IPv{} is already used on interface {}",
                    inst.virtual_router_id,
                    if ipv6 { 6 } else { 4 },
                    inst.interface
                ),
            );
        }
        // keepalived tracks the instance's own interface anyway (a weight on it is ignored).
        let own = inst.interface.clone();
        inst.track_interface.retain(|t| {
            let is_own = t.name == own;
            if is_own {
                ctx.error(
                    &inst.span,
                    format!(
                        "vrrp_instance {name}: ignoring track_interface {own} since own interface"
                    ),
                );
            }
            !is_own
        });
        // keepalived: "(%s) unknown track_script %s", the entry skipped.
        inst.track_script.retain(|t| {
            let known = scripts.contains(&t.name);
            if !known {
                ctx.error(
                    &inst.span,
                    format!(
                        "vrrp_instance {name}: unknown track_script '{}' - ignoring",
                        t.name
                    ),
                );
            }
            known
        });
    }
    // The deprecated per-instance `lvs_sync_daemon_interface` (vrrp_parser.c): reported; it sets
    // the global `lvs_sync_daemon` (driven by this instance) unless that is already set.
    for inst in &c.vrrp_instances {
        for st in inst
            .other
            .iter()
            .filter(|s| s.keyword == "lvs_sync_daemon_interface")
        {
            ctx.error(
                &st.span,
                format!("vrrp_instance {}: lvs_sync_daemon_interface is deprecated, use global_defs' lvs_sync_daemon", inst.name),
            );
            match (&c.global.lvs_sync_daemon, st.args.first()) {
                (Some(d), _) => ctx.error(
                    &st.span,
                    format!("vrrp_instance {}: lvs_sync_daemon_interface has already been specified as {} - ignoring", inst.name, d.interface),
                ),
                (None, Some(ifname)) => {
                    c.global.lvs_sync_daemon = Some(LvsSyncDaemon {
                        interface: ifname.clone(),
                        vrrp_instance: Some(inst.name.clone()),
                        sync_id: None,
                        maxlen: None,
                        port: None,
                        ttl: None,
                        group: None,
                    })
                }
                (None, None) => {}
            }
        }
    }
    let mut kept = Vec::new();
    for mut g in std::mem::take(&mut c.vrrp_sync_groups) {
        let gname = g.name.clone();
        g.track_script.retain(|t| {
            let known = scripts.contains(&t.name);
            if !known {
                ctx.error(
                    &g.span,
                    format!(
                        "vrrp_sync_group {gname}: unknown track_script '{}' - ignoring",
                        t.name
                    ),
                );
            }
            known
        });
        g.group.retain(|m| {
            let known = names.contains(m);
            if !known {
                ctx.error(
                    &g.span,
                    format!(
                        "vrrp_sync_group {}: no vrrp_instance named '{m}' - ignoring",
                        g.name
                    ),
                );
            }
            known
        });
        if g.group.len() == 1 {
            ctx.error(
                &g.span,
                format!(
                    "vrrp_sync_group {}: has only 1 virtual router - this probably isn't what you want",
                    g.name
                ),
            );
        }
        if g.group.is_empty() {
            ctx.error(
                &g.span,
                format!(
                    "vrrp_sync_group {}: no matching vrrp_instance - removing",
                    g.name
                ),
            );
            continue;
        }
        kept.push(g);
    }
    c.vrrp_sync_groups = kept;
}
