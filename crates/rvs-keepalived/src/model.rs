//! The typed configuration: global definitions and LVS blocks.

use crate::checker::CheckerSpec;
use crate::diag::Span;
use crate::vrrp::{VrrpInstance, VrrpScript, VrrpSyncGroup};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A whole keepalived.conf, includes resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// `global_defs`.
    pub global: GlobalDefs,
    /// The top-level `SSL { }` block (client certificate for SSL_GET).
    pub ssl: Option<SslDefs>,
    /// `virtual_server_group` blocks.
    pub groups: Vec<VirtualServerGroup>,
    /// `virtual_server` blocks.
    pub virtual_servers: Vec<VirtualServer>,
    /// Top-level `track_file` blocks (used by FILE_CHECK and VRRP).
    pub track_files: Vec<TrackFile>,
    /// `vrrp_script` blocks.
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `vrrp_instance` blocks.
    pub vrrp_instances: Vec<VrrpInstance>,
    /// `vrrp_sync_group` blocks.
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
    /// `bfd_instance` blocks.
    pub bfd_instances: Vec<crate::vrrp::BfdInstance>,
    /// Every file read, top-level first.
    pub files: Vec<PathBuf>,
}

/// A keyword kept as written (known to keepalived, not interpreted by rvs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// The keyword.
    pub keyword: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where it is.
    pub span: Span,
}

/// `global_defs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalDefs {
    /// `router_id`.
    pub router_id: Option<String>,
    /// `notification_email { addr ... }`.
    pub notification_email: Vec<String>,
    /// `notification_email_from`.
    pub notification_email_from: Option<String>,
    /// `smtp_server HOST [PORT]` (port default 25).
    pub smtp_server: Option<SmtpServer>,
    /// `smtp_helo_name`.
    pub smtp_helo_name: Option<String>,
    /// `smtp_connect_timeout` (keepalived's default 30 s).
    pub smtp_connect_timeout: Option<Duration>,
    /// `lvs_sync_daemon IFACE [VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group IP]`.
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    /// `lvs_timeouts [tcp N] [tcpfin N] [udp N]`.
    pub lvs_timeouts: Option<LvsTimeouts>,
    /// `vrrp_version 2|3` (default 2).
    pub vrrp_version: Option<u8>,
    /// `script_user USER [GROUP]`.
    pub script_user: Option<(String, Option<String>)>,
    /// `enable_script_security`.
    pub enable_script_security: bool,
    /// `smtp_alert`: mail every checker and VRRP transition unless a block says otherwise.
    pub smtp_alert: Option<bool>,
    /// `smtp_alert_vrrp`: the same for VRRP only (overrides `smtp_alert`).
    pub smtp_alert_vrrp: Option<bool>,
    /// `smtp_alert_checker`: the same for checkers only (overrides `smtp_alert`).
    pub smtp_alert_checker: Option<bool>,
    /// `no_checker_emails`: mail a checker transition only when the real server's state changes.
    pub no_checker_emails: bool,
    /// Other keepalived global keywords (vrrp_*, checker_*, ...), kept as written.
    pub other: Vec<Setting>,
}

/// `smtp_server HOST [PORT]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpServer {
    /// Address or host name.
    pub host: String,
    /// Port (default 25).
    pub port: u16,
}

/// `lvs_sync_daemon` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvsSyncDaemon {
    /// Interface the sync traffic uses.
    pub interface: String,
    /// VRRP instance whose state drives master/backup (none: the daemon stays a backup).
    pub vrrp_instance: Option<String>,
    /// Sync id (`id N`, 0-255).
    pub sync_id: Option<u8>,
    /// `maxlen N`.
    pub maxlen: Option<u16>,
    /// `port N`.
    pub port: Option<u16>,
    /// `ttl N`.
    pub ttl: Option<u8>,
    /// `group IP`.
    pub group: Option<IpAddr>,
}

/// `lvs_timeouts` (seconds; `None` leaves the current value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvsTimeouts {
    /// `tcp N`.
    pub tcp: Option<u32>,
    /// `tcpfin N`.
    pub tcpfin: Option<u32>,
    /// `udp N`.
    pub udp: Option<u32>,
}

/// The top-level `SSL { password ca certificate key }` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SslDefs {
    /// Private key password.
    pub password: Option<String>,
    /// CA file.
    pub ca: Option<String>,
    /// Client certificate file.
    pub certificate: Option<String>,
    /// Client key file.
    pub key: Option<String>,
}

/// A top-level `track_file NAME { file PATH; weight N [reverse]; init_file [V] [overwrite] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackFile {
    /// Its name.
    pub name: String,
    /// The file to read.
    pub file: Option<String>,
    /// Default weight multiplier.
    pub weight: Option<i32>,
    /// `reverse`.
    pub reverse: bool,
    /// `init_file [VALUE] [overwrite]`: create the file with this value.
    pub init_file: Option<i64>,
    /// Where it is.
    pub span: Span,
}

/// Transport protocol of a virtual server (`protocol TCP|UDP|SCTP`, default TCP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// Forwarding method (`lvs_method`/`lb_kind NAT|DR|TUN`, keepalived's default NAT).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LvsMethod {
    /// NAT (ipvs masquerading).
    #[default]
    Nat,
    /// Direct routing.
    Dr,
    /// Tunnelling, with `type ipip|gue port N|gre` and `nocsum|csum|remcsum`.
    Tun(rvs_api::TunnelConfig),
}

/// What a `virtual_server` line names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VsTarget {
    /// `virtual_server IP PORT`.
    Addr {
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// `virtual_server fwmark N`.
    Fwmark(u32),
    /// `virtual_server group NAME`.
    Group(String),
}

/// Scheduler flags (`hashed`, `ops`, `flag-1..3`, `sh-port`, `sh-fallback`, `mh-port`,
/// `mh-fallback` keywords inside `virtual_server`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedFlags {
    /// `hashed`: keepalived 2.2 sets no flag for it, so this stays false (kept for the API).
    pub hashed: bool,
    /// One-packet scheduling (`ops`).
    pub ops: bool,
    /// The flag names given, as rvs-api spells them (`flag-1`, `sh-port`, ...).
    pub names: Vec<String>,
}

/// A notify script: the command split into words, as keepalived runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Where the script keyword is.
    pub span: Span,
}

/// `sorry_server IP PORT` and its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SorryServer {
    /// Address.
    pub addr: IpAddr,
    /// Port (0 for fwmark services).
    pub port: u16,
    /// `sorry_server_lvs_method`.
    pub method: Option<LvsMethod>,
    /// `sorry_server_inhibit`: keep it in the table with weight 0 while unused.
    pub inhibit: bool,
}

/// `virtual_server_group NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualServerGroup {
    /// Its name.
    pub name: String,
    /// Entries.
    pub entries: Vec<GroupEntry>,
    /// Where it is.
    pub span: Span,
}

/// One entry of a virtual server group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupEntry {
    /// `IP [PORT]` or a range `a.b.c.d-e [PORT]` (first..=last on the last byte/group).
    Range {
        /// First address.
        first: IpAddr,
        /// Last address (equal to `first` for a single address).
        last: IpAddr,
        /// Port (0 if omitted).
        port: u16,
    },
    /// `fwmark N`.
    Fwmark(u32),
}

/// `virtual_server ... { }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualServer {
    /// What it serves.
    pub target: VsTarget,
    /// `ip_family inet|inet6` (for fwmark services).
    pub ipv6: Option<bool>,
    /// Scheduler (`lvs_sched`/`lb_algo`), keepalived's default `wlc`.
    pub scheduler: String,
    /// Scheduler flags.
    pub sched_flags: SchedFlags,
    /// Forwarding method for real servers without their own (default NAT).
    pub method: LvsMethod,
    /// `persistence_timeout [N]` (360 when given without a value).
    pub persistence_timeout: Option<u32>,
    /// `persistence_granularity MASK`: the mask (an IPv6 prefix length as its mask).
    pub persistence_granularity: Option<IpAddr>,
    /// `persistence_engine NAME`.
    pub persistence_engine: Option<String>,
    /// `protocol` (default TCP).
    pub protocol: Protocol,
    /// `delay_loop` for checkers that set none.
    pub delay_loop: Option<Duration>,
    /// `connect_timeout` default for checkers.
    pub connect_timeout: Option<Duration>,
    /// `retry` default for checkers.
    pub retry: Option<u32>,
    /// `delay_before_retry` default for checkers.
    pub delay_before_retry: Option<Duration>,
    /// `warmup` default for checkers.
    pub warmup: Option<Duration>,
    /// `inhibit_on_failure` default for real servers.
    pub inhibit_on_failure: bool,
    /// `alpha`: real servers start failed until a check passes.
    pub alpha: bool,
    /// `omega`: run notify_down / quorum_down scripts when the service is removed.
    pub omega: bool,
    /// `quorum` (default 1): minimum total weight of alive servers.
    pub quorum: u32,
    /// `hysteresis` (default 0).
    pub hysteresis: u32,
    /// `quorum_up` script.
    pub quorum_up: Option<Script>,
    /// `quorum_down` script.
    pub quorum_down: Option<Script>,
    /// `ha_suspend`: only while the VIP is present.
    pub ha_suspend: bool,
    /// `smtp_alert`.
    pub smtp_alert: Option<bool>,
    /// `virtualhost` default for HTTP checks.
    pub virtualhost: Option<String>,
    /// `weight`: default weight of real servers that set none.
    pub weight: Option<u32>,
    /// `sorry_server`.
    pub sorry_server: Option<SorryServer>,
    /// `real_server` blocks.
    pub real_servers: Vec<RealServer>,
    /// Where it is.
    pub span: Span,
}

/// `real_server IP [PORT] { }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServer {
    /// Address.
    pub addr: IpAddr,
    /// Port (0 if omitted, e.g. for fwmark services).
    pub port: u16,
    /// `weight` (default: the virtual server's, else 1).
    pub weight: Option<u32>,
    /// `lvs_method` for this server.
    pub method: Option<LvsMethod>,
    /// `uthreshold`.
    pub uthreshold: u32,
    /// `lthreshold`.
    pub lthreshold: u32,
    /// `inhibit_on_failure [true|false]`.
    pub inhibit_on_failure: Option<bool>,
    /// `notify_up` script.
    pub notify_up: Option<Script>,
    /// `notify_down` script.
    pub notify_down: Option<Script>,
    /// `alpha [true|false]`.
    pub alpha: Option<bool>,
    /// `connect_timeout` default for its checkers.
    pub connect_timeout: Option<Duration>,
    /// `retry` default for its checkers.
    pub retry: Option<u32>,
    /// `delay_before_retry` default for its checkers.
    pub delay_before_retry: Option<Duration>,
    /// `warmup` default for its checkers.
    pub warmup: Option<Duration>,
    /// `delay_loop` default for its checkers.
    pub delay_loop: Option<Duration>,
    /// `smtp_alert`.
    pub smtp_alert: Option<bool>,
    /// `virtualhost` default for its HTTP checks.
    pub virtualhost: Option<String>,
    /// Checker blocks.
    pub checkers: Vec<CheckerSpec>,
    /// Where it is.
    pub span: Span,
}
