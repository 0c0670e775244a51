//! `global_defs`, the top-level `SSL` block and `track_file` blocks.

use crate::model::{
    GlobalDefs, LvsSyncDaemon, LvsTimeouts, Setting, SmtpServer, SslDefs, TrackFile,
};
use crate::parse_common::name_list;
use crate::tree::Statement;
use crate::values::{parse_secs, Ctx};

/// global_defs keywords keepalived 2.2.7 accepts (global_parser.c `init_global_keywords`) that
/// rvs keeps without interpreting.
const OTHER_GLOBALS: &[&str] = &[
    "bfd_cpu_affinity",
    "bfd_no_swap",
    "bfd_priority",
    "bfd_process_name",
    "bfd_rlimit_rtime",
    "bfd_rlimit_rttime",
    "bfd_rt_priority",
    "checker_cpu_affinity",
    "checker_log_all_failures",
    "checker_no_swap",
    "checker_priority",
    "checker_process_name",
    "checker_rlimit_rtime",
    "checker_rlimit_rttime",
    "checker_rt_priority",
    "config_save_dir",
    "data_use_instance",
    "dbus_service_name",
    "default_interface",
    "disable_local_igmp",
    "dynamic_interfaces",
    "enable_dbus",
    "enable_snmp_checker",
    "enable_snmp_keepalived",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_snmp_vrrp",
    "enable_traps",
    "fifo_write_vrrp_states_on_reload",
    "include_check",
    "log_unknown_vrids",
    "lvs_flush",
    "lvs_flush_on_stop",
    "lvs_flush_onstop",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "lvs_notify_fifo",
    "lvs_notify_fifo_script",
    "lvs_process_name",
    "max_auto_priority",
    "min_auto_priority_delay",
    "nftables",
    "nftables_counters",
    "nftables_ifindex",
    "nftables_ipvs",
    "nftables_ipvs_priority",
    "nftables_ipvs_start_fwmark",
    "nftables_priority",
    "no_email_faults",
    "notify_fifo",
    "notify_fifo_script",
    "process_monitor_rcv_bufs",
    "process_monitor_rcv_bufs_force",
    "process_name",
    "process_names",
    "random_seed",
    "reload_check_config",
    "reload_file",
    "reload_repeat",
    "reload_time_file",
    "rs_init_notifies",
    "shutdown_script",
    "shutdown_script_timeout",
    "snmp_socket",
    "startup_script",
    "startup_script_timeout",
    "tmp_config_directory",
    "umask",
    "vmac_addr_prefix",
    "vmac_prefix",
    "vrrp_check_unicast_src",
    "vrrp_cpu_affinity",
    "vrrp_down_timer_adverts",
    "vrrp_garp_extra_if",
    "vrrp_garp_interval",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_refresh",
    "vrrp_garp_master_refresh_repeat",
    "vrrp_garp_master_repeat",
    "vrrp_gna_interval",
    "vrrp_higher_prio_send_advert",
    "vrrp_ipsets",
    "vrrp_iptables",
    "vrrp_lower_prio_no_advert",
    "vrrp_mcast_group4",
    "vrrp_mcast_group6",
    "vrrp_min_garp",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "vrrp_no_swap",
    "vrrp_notify_fifo",
    "vrrp_notify_fifo_script",
    "vrrp_notify_priority_changes",
    "vrrp_priority",
    "vrrp_process_name",
    "vrrp_rlimit_rtime",
    "vrrp_rlimit_rttime",
    "vrrp_rt_priority",
    "vrrp_rx_bufs_multiplier",
    "vrrp_rx_bufs_policy",
    "vrrp_skip_check_adv_addr",
    "vrrp_startup_delay",
    "vrrp_strict",
    "vrrp_vmac_garp_intvl",
];

/// Of [`OTHER_GLOBALS`], those for what rvs does not have (SNMP traps, the RFC VRRP MIBs,
/// D-Bus): a warning says so. (KEEPALIVED-MIB's tables are served: `enable_snmp_vrrp`,
/// `enable_snmp_checker`, `enable_snmp_keepalived`, `snmp_socket`.)
const IGNORED_GLOBALS: &[&str] = &[
    "enable_traps",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_dbus",
    "dbus_service_name",
];

/// `vrrp_mcast_group4` / `vrrp_mcast_group6`: a multicast address of that family (keepalived
/// skips anything else).
fn mcast_group(ctx: &mut Ctx<'_>, st: &Statement) {
    let Some(raw) = ctx.arg(st, 0, "a multicast address") else {
        return;
    };
    let v6 = st.keyword.ends_with('6');
    let ok = raw
        .parse::<std::net::IpAddr>()
        .is_ok_and(|a| a.is_ipv6() == v6 && a.is_multicast());
    if !ok {
        ctx.error(
            &st.span,
            format!("{} [{raw}] is not multicast - skipping", st.keyword),
        );
    }
}

/// `vrrp_garp_interval` / `vrrp_gna_interval`: keepalived reads a time of at least 1 us (and
/// at most 4294.967295 s); anything else is reported and ignored.
fn garp_interval(ctx: &mut Ctx<'_>, st: &Statement) {
    if ctx.arg(st, 0, "a time in seconds").is_none() {
        return;
    }
    let ok = st
        .args
        .first()
        .and_then(|a| parse_secs(a))
        .is_some_and(|d| !d.is_zero() && d.as_micros() <= u128::from(u32::MAX));
    if !ok {
        ctx.error(
            &st.span,
            format!(
                "{} '{}' is invalid (expected 0.000001-4294.967295 s) - ignoring",
                st.keyword,
                st.args.first().map(String::as_str).unwrap_or("")
            ),
        );
    }
}

/// Parses `global_defs { }` into `g`.
pub fn parse_global_defs(ctx: &mut Ctx<'_>, st: &Statement, g: &mut GlobalDefs) {
    let Some(body) = ctx.block(st) else {
        return;
    };
    for item in body {
        match item.keyword.as_str() {
            // keepalived's handlers of these check for their parameter (an error, not an exit).
            "router_id" => {
                g.router_id = ctx
                    .lenient_missing(|c| c.arg(item, 0, "a router id"))
                    .map(str::to_string)
            }
            "notification_email" => {
                let list = name_list(ctx, item);
                if list.is_empty() && item.block.is_some() {
                    ctx.error(&item.span, "notification_email: empty block");
                }
                g.notification_email.extend(list)
            }
            "notification_email_from" => {
                g.notification_email_from = ctx
                    .lenient_missing(|c| c.arg(item, 0, "an email address"))
                    .map(str::to_string)
            }
            "smtp_server" => {
                if let Some(host) = ctx.arg(item, 0, "a host [port]") {
                    let host = host.to_string();
                    let port = if item.args.len() > 1 {
                        ctx.port(item, 1)
                    } else {
                        Some(25)
                    };
                    if let Some(port) = port {
                        g.smtp_server = Some(SmtpServer { host, port });
                    }
                }
            }
            "smtp_helo_name" => {
                // Without a name keepalived silently keeps its default.
                g.smtp_helo_name = item.args.first().cloned()
            }
            "smtp_connect_timeout" => g.smtp_connect_timeout = ctx.secs(item, 0),
            "lvs_sync_daemon" => g.lvs_sync_daemon = sync_daemon(ctx, item),
            "lvs_timeouts" => g.lvs_timeouts = lvs_timeouts(ctx, item),
            "vrrp_version" => g.vrrp_version = ctx.int_as::<u8>(item, 0, 2, 3),
            "script_user" => {
                if let Some(u) = ctx.lenient_missing(|c| c.arg(item, 0, "a user name")) {
                    g.script_user = Some((u.to_string(), item.args.get(1).cloned()));
                }
            }
            // keepalived's handler takes no value: `enable_script_security 1` is on, too.
            "enable_script_security" => g.enable_script_security = true,
            "smtp_alert" => g.smtp_alert = ctx.flag(item),
            "smtp_alert_vrrp" => g.smtp_alert_vrrp = ctx.flag(item),
            "smtp_alert_checker" => g.smtp_alert_checker = ctx.flag(item),
            "no_checker_emails" => g.no_checker_emails = ctx.flag(item).unwrap_or(true),
            k if OTHER_GLOBALS.contains(&k) => {
                if IGNORED_GLOBALS.contains(&k) {
                    ctx.ignored(item);
                }
                if matches!(k, "vrrp_garp_interval" | "vrrp_gna_interval") {
                    garp_interval(ctx, item);
                }
                if matches!(k, "vrrp_mcast_group4" | "vrrp_mcast_group6") {
                    mcast_group(ctx, item);
                }
                g.other.push(Setting {
                    keyword: item.keyword.clone(),
                    args: item.args.clone(),
                    span: item.span.clone(),
                })
            }
            _ => ctx.unknown(item, "global_defs"),
        }
    }
}

fn sync_daemon(ctx: &mut Ctx<'_>, st: &Statement) -> Option<LvsSyncDaemon> {
    let interface = ctx
        .lenient_missing(|c| c.arg(st, 0, "an interface"))?
        .to_string();
    // The instance name is optional: the word after the interface is one unless it is an option.
    let vrrp_instance = st
        .args
        .get(1)
        .filter(|w| !matches!(w.as_str(), "id" | "maxlen" | "port" | "ttl" | "group"))
        .cloned();
    let first_option = if vrrp_instance.is_some() { 2 } else { 1 };
    let mut d = LvsSyncDaemon {
        interface,
        vrrp_instance,
        sync_id: None,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
    };
    let mut i = first_option;
    while i < st.args.len() {
        let opt = st.args[i].as_str();
        let next = i + 1;
        match opt {
            "id" => d.sync_id = ctx.int_as::<u8>(st, next, 0, 255),
            "maxlen" => d.maxlen = ctx.int_as::<u16>(st, next, 1, 65535 - 20 - 8),
            "port" => d.port = ctx.int_as::<u16>(st, next, 1, 65535),
            "ttl" => d.ttl = ctx.int_as::<u8>(st, next, 1, 255),
            "group" => d.group = ctx.ip(st, next),
            other => {
                ctx.error(
                    &st.span,
                    format!("lvs_sync_daemon: expected id|maxlen|port|ttl|group, got '{other}'"),
                );
                return None;
            }
        }
        i += 2;
    }
    Some(d)
}

fn lvs_timeouts(ctx: &mut Ctx<'_>, st: &Statement) -> Option<LvsTimeouts> {
    if st.args.is_empty() {
        ctx.error(&st.span, "lvs_timeouts: requires at least one option");
        return None;
    }
    let mut t = LvsTimeouts::default();
    let mut i = 0;
    while i < st.args.len() {
        let v = ctx.u32(st, i + 1, 0, 86400 * 365);
        match st.args[i].as_str() {
            "tcp" => t.tcp = v,
            "tcpfin" => t.tcpfin = v,
            "udp" => t.udp = v,
            other => {
                ctx.error(
                    &st.span,
                    format!("lvs_timeouts: expected tcp|tcpfin|udp, got '{other}'"),
                );
                return None;
            }
        }
        i += 2;
    }
    Some(t)
}

/// Parses the top-level `SSL { }` block.
pub fn parse_ssl(ctx: &mut Ctx<'_>, st: &Statement) -> Option<SslDefs> {
    let body = ctx.block(st)?;
    let mut s = SslDefs::default();
    for item in body {
        let v = || item.args.first().cloned();
        match item.keyword.as_str() {
            "password" => s.password = v(),
            "ca" => s.ca = v(),
            "certificate" => s.certificate = v(),
            "key" => s.key = v(),
            _ => ctx.unknown(item, "SSL"),
        }
    }
    Some(s)
}

/// Parses a top-level `track_file NAME { }` block.
pub fn parse_track_file(ctx: &mut Ctx<'_>, st: &Statement) -> Option<TrackFile> {
    let name = ctx.arg(st, 0, "a name")?.to_string();
    let body = ctx.block(st)?;
    let mut t = TrackFile {
        name,
        file: None,
        weight: None,
        reverse: false,
        init_file: None,
        span: st.span.clone(),
    };
    for item in body {
        match item.keyword.as_str() {
            "file" => {
                t.file = ctx
                    .lenient_missing(|c| c.arg(item, 0, "a file path"))
                    .map(str::to_string)
            }
            "weight" => {
                t.weight = ctx.lenient_missing(|c| c.int_as::<i32>(item, 0, -254, 254));
                t.reverse = item.args.get(1).is_some_and(|a| a == "reverse");
            }
            "init_file" => {
                t.init_file = Some(match item.args.first().filter(|a| *a != "overwrite") {
                    Some(_) => ctx
                        .int_as(item, 0, i64::from(i32::MIN), i64::from(i32::MAX))
                        .unwrap_or(0),
                    None => 0,
                })
            }
            _ => ctx.unknown(item, "track_file"),
        }
    }
    if t.file.is_none() {
        ctx.error(&st.span, format!("track_file {}: expected a file", t.name));
        return None;
    }
    Some(t)
}
