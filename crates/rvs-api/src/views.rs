//! Configuration values and read-only views exchanged by commands and replies.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Identifies a virtual service, as ipvsadm's `-t`, `-u`, `--sctp-service` and `-f` do.
///
/// JSON: `{"proto":"tcp","addr":"10.0.0.1","port":80}` or `{"proto":"fwmark","mark":1,"ipv6":false}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "proto", rename_all = "lowercase")]
pub enum ServiceId {
    /// A TCP service on a virtual address and port (`-t addr:port`).
    Tcp {
        /// Virtual IP address.
        addr: IpAddr,
        /// Virtual port (0 with persistence means "all ports").
        port: u16,
    },
    /// A UDP service on a virtual address and port (`-u addr:port`).
    Udp {
        /// Virtual IP address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// An SCTP service on a virtual address and port (`--sctp-service addr:port`).
    Sctp {
        /// Virtual IP address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// A service matching packets by firewall mark (`-f mark`).
    Fwmark {
        /// The firewall mark (non-zero).
        mark: u32,
        /// `true` for an IPv6 fwmark service (`-f mark -6`).
        ipv6: bool,
    },
}

impl ServiceId {
    /// ipvsadm's protocol column: `TCP`, `UDP`, `SCTP` or `FWM`.
    pub fn proto_name(&self) -> &'static str {
        match self {
            ServiceId::Tcp { .. } => "TCP",
            ServiceId::Udp { .. } => "UDP",
            ServiceId::Sctp { .. } => "SCTP",
            ServiceId::Fwmark { .. } => "FWM",
        }
    }

    /// The virtual address and port, or `None` for a fwmark service.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match *self {
            ServiceId::Tcp { addr, port }
            | ServiceId::Udp { addr, port }
            | ServiceId::Sctp { addr, port } => Some(SocketAddr::new(addr, port)),
            ServiceId::Fwmark { .. } => None,
        }
    }

    /// `true` if the service is IPv6 (by address, or by the `ipv6` flag of a fwmark service).
    pub fn is_ipv6(&self) -> bool {
        match *self {
            ServiceId::Tcp { addr, .. }
            | ServiceId::Udp { addr, .. }
            | ServiceId::Sctp { addr, .. } => addr.is_ipv6(),
            ServiceId::Fwmark { ipv6, .. } => ipv6,
        }
    }
}

impl fmt::Display for ServiceId {
    /// Formats as ipvsadm prints it numerically: `TCP 10.0.0.1:80`, `UDP [::1]:53`, `FWM 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.socket_addr() {
            Some(sa) => write!(f, "{} {}", self.proto_name(), sa),
            None => match self {
                ServiceId::Fwmark { mark, .. } => write!(f, "FWM {mark}"),
                _ => Ok(()),
            },
        }
    }
}

/// Everything ipvsadm sets on a virtual service with `-A`/`-E`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// Which service.
    pub id: ServiceId,
    /// Scheduler name (`-s`), e.g. `rr`, `wrr`, `lc`, `wlc`, `sh`, `mh`. ipvsadm's default is `wlc`.
    pub scheduler: String,
    /// Persistence timeout in seconds (`-p [timeout]`); `None` means not persistent.
    #[serde(default)]
    pub persistence: Option<u32>,
    /// Persistence granularity (`-M netmask`) as the mask itself: any IPv4 mask, contiguous or
    /// not, as ipvsadm and the kernel take it; an IPv6 prefix length as its mask. `None` means
    /// a single client address (all ones). Only meaningful with `persistence`.
    #[serde(default)]
    pub netmask: Option<IpAddr>,
    /// One-packet scheduling (`-o`, `--ops`), UDP only.
    #[serde(default)]
    pub one_packet: bool,
    /// Scheduler flags (`-b flag-1,flag-2` or names like `sh-fallback`, `sh-port`, `mh-port`).
    #[serde(default)]
    pub sched_flags: Vec<String>,
    /// Persistence engine name (`--pe sip`).
    #[serde(default)]
    pub pe: Option<String>,
    /// FULLNAT local address pool (rvs extension `--laddr ADDR[,ADDR...]`): director addresses
    /// used as the source toward real servers of [`ForwardMethod::FullNat`] destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_addrs: Vec<IpAddr>,
    /// PROXY protocol header sent to FULLNAT real servers (rvs extension
    /// `--proxy-protocol v1|v2`), TCP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
}

/// PROXY protocol version (haproxy's PROXY protocol specification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// The text header (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary header.
    V2,
}

impl ProxyProtocol {
    /// The word rvsadm uses: `v1` or `v2`.
    pub fn name(self) -> &'static str {
        match self {
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
        }
    }
}

impl ServiceConfig {
    /// A plain service with the given scheduler and no options.
    pub fn new(id: ServiceId, scheduler: impl Into<String>) -> Self {
        ServiceConfig {
            id,
            scheduler: scheduler.into(),
            persistence: None,
            netmask: None,
            one_packet: false,
            sched_flags: Vec::new(),
            pe: None,
            local_addrs: Vec::new(),
            proxy_protocol: None,
        }
    }
}

/// How packets reach a real server (ipvsadm's `Forward` column words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMethod {
    /// NAT (`-m`, `--masquerading`).
    Masq,
    /// Direct routing (`-g`, `--gatewaying`); ipvsadm's default.
    Route,
    /// IP tunnelling (`-i`, `--ipip`).
    Tunnel,
    /// The real server is the director itself.
    Local,
    /// FULLNAT (rvs extension `--fullnat`): source and destination rewritten; the source
    /// becomes one of the service's local addresses. ipvsadm has no word for it; rvs prints
    /// `FullNat`.
    FullNat,
}

impl ForwardMethod {
    /// The word ipvsadm prints: `Masq`, `Route`, `Tunnel` or `Local` (`FullNat` for
    /// the rvs extension).
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            ForwardMethod::Masq => "Masq",
            ForwardMethod::Route => "Route",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::Local => "Local",
            ForwardMethod::FullNat => "FullNat",
        }
    }
}

/// Encapsulation used by the `Tunnel` forwarding method (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    /// IP-in-IP (the default).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation.
    Gue,
    /// Generic Routing Encapsulation.
    Gre,
}

/// Tunnel checksum mode (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelChecksum {
    /// No checksum (the default).
    #[default]
    NoCsum,
    /// Checksum the outer header.
    Csum,
    /// Remote checksum offload.
    RemCsum,
}

/// Tunnel parameters of a destination using [`ForwardMethod::Tunnel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct TunnelConfig {
    /// Encapsulation.
    #[serde(default)]
    pub kind: TunnelKind,
    /// Destination UDP port for GUE (`--tun-port`).
    #[serde(default)]
    pub port: Option<u16>,
    /// Checksum mode.
    #[serde(default)]
    pub checksum: TunnelChecksum,
}

/// Everything ipvsadm sets on a real server with `-a`/`-e`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestConfig {
    /// Real server address (`-r addr[:port]`).
    pub addr: IpAddr,
    /// Real server port (ipvsadm uses the service port when `-r` has none; 0 for fwmark services).
    pub port: u16,
    /// Weight (`-w`, 0..=65535; 0 quiesces the server). ipvsadm's default is 1.
    pub weight: u32,
    /// Forwarding method (`-g`/`-i`/`-m`).
    pub method: ForwardMethod,
    /// Upper connection threshold (`-x`); 0 means no limit.
    #[serde(default)]
    pub u_threshold: u32,
    /// Lower connection threshold (`-y`); 0 means not set.
    #[serde(default)]
    pub l_threshold: u32,
    /// Tunnel parameters, only meaningful with [`ForwardMethod::Tunnel`].
    #[serde(default)]
    pub tunnel: Option<TunnelConfig>,
}

impl DestConfig {
    /// A destination with the given method and weight and no thresholds.
    pub fn new(addr: IpAddr, port: u16, weight: u32, method: ForwardMethod) -> Self {
        DestConfig {
            addr,
            port,
            weight,
            method,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: None,
        }
    }

    /// The real server's address and port.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

/// Cumulative counters, as in `ipvsadm --stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatsView {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets from clients.
    pub in_pkts: u64,
    /// Packets to clients.
    pub out_pkts: u64,
    /// Bytes from clients.
    pub in_bytes: u64,
    /// Bytes to clients.
    pub out_bytes: u64,
}

/// Estimated rates per second, as in `ipvsadm --rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RatesView {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second from clients.
    pub in_pps: u64,
    /// Packets per second to clients.
    pub out_pps: u64,
    /// Bytes per second from clients.
    pub in_bps: u64,
    /// Bytes per second to clients.
    pub out_bps: u64,
}

/// A real server with its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestView {
    /// Its configuration.
    pub config: DestConfig,
    /// Connections in ESTABLISHED state (TCP) or, as IPVS counts them, active.
    pub active_conns: u32,
    /// Other connections (e.g. FIN_WAIT, TIME_WAIT, UDP).
    pub inactive_conns: u32,
    /// Persistence templates pointing at this server.
    pub persist_conns: u32,
    /// Cumulative counters.
    pub stats: StatsView,
    /// Estimated rates.
    pub rates: RatesView,
}

/// A virtual service with its real servers and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Its configuration.
    pub config: ServiceConfig,
    /// Cumulative counters.
    pub stats: StatsView,
    /// Estimated rates.
    pub rates: RatesView,
    /// Its real servers, in the daemon's order (rvsadm sorts them as ipvsadm does).
    pub dests: Vec<DestView>,
}

/// One entry of the connection table (`ipvsadm -Lnc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnView {
    /// Protocol name as ipvsadm prints it: `TCP`, `UDP`, `SCTP`, or `IP` for persistence templates.
    pub proto: String,
    /// Client address and port.
    pub client: SocketAddr,
    /// Virtual address and port.
    pub virtual_addr: SocketAddr,
    /// Real server address and port.
    pub dest: SocketAddr,
    /// State name as IPVS prints it, e.g. `ESTABLISHED`, `SYN_RECV`, `FIN_WAIT`, `TIME_WAIT`,
    /// `CLOSE`, `NONE` (templates), `UDP`.
    pub state: String,
    /// Time left until the entry expires, in milliseconds.
    pub expires_ms: u64,
    /// A persistence engine's template: the engine's name and its data (`sip` and the
    /// Call-ID), the last two columns of `/proc/net/ip_vs_conn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pe: Option<(String, String)>,
}

/// Connection timeouts in seconds (`ipvsadm --set tcp tcpfin udp`).
///
/// In [`crate::Command::SetTimeouts`] a value of 0 leaves that timeout unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timeouts {
    /// Established TCP sessions.
    pub tcp: u32,
    /// TCP sessions after receiving a FIN.
    pub tcp_fin: u32,
    /// UDP.
    pub udp: u32,
}

/// One named daemon counter (`rvsadm --counters`), e.g. `drop_malformed` or `tx_sent`.
///
/// Names are snake_case and stable; the daemon answers them in a fixed order (connection count,
/// then the engine's drop counters, then the data plane's egress counters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterView {
    /// The counter's name.
    pub name: String,
    /// Its current value (cumulative since the daemon started, except gauges like `connections`).
    pub value: u64,
}

impl CounterView {
    /// A counter named `name` with `value`.
    pub fn new(name: impl Into<String>, value: u64) -> Self {
        CounterView {
            name: name.into(),
            value,
        }
    }
}

/// Transport protocol of a [`MarkRuleView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkProto {
    /// TCP (`-t`).
    Tcp,
    /// UDP (`-u`).
    Udp,
    /// SCTP (`--sctp-service`).
    Sctp,
}

/// One rule of rvs's packet classifier, its stand-in for the kernel's firewall marks: packets
/// of `proto` to `addr/prefix_len` with a destination port in `first_port..=last_port` carry
/// `mark`, and go to the firewall-mark service (`-f mark`) of that mark, if there is one.
///
/// JSON: `{"proto":"tcp","addr":"10.0.0.1","prefix_len":32,"first_port":80,"last_port":80,"mark":1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MarkRuleView {
    /// Transport protocol.
    pub proto: MarkProto,
    /// Destination network address.
    pub addr: IpAddr,
    /// Destination prefix length (32 or 128 for one address).
    pub prefix_len: u8,
    /// First destination port.
    pub first_port: u16,
    /// Last destination port (equal to `first_port` for one port).
    pub last_port: u16,
    /// The mark (non-zero).
    pub mark: u32,
}

/// One IPVS policy switch and its value (`rvsadm --list-policy`), e.g. `conn_reuse_mode` 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    /// The switch's name, as the kernel's sysctl.
    pub name: String,
    /// Its value.
    pub value: u32,
}

/// Health of one real server of one service (`rvsadm --health`, an rvs extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    /// The service.
    pub service: ServiceId,
    /// The real server.
    pub dest: SocketAddr,
    /// Whether every checker of the server passes.
    pub alive: bool,
    /// The weight the configuration gives it.
    pub configured_weight: u32,
    /// The weight applied in the table, `None` when the server is not in the table.
    pub applied_weight: Option<u32>,
    /// What rvsd did with it: `active`, `removed`, `inhibited` (weight 0), `draining`,
    /// `sorry` (the sorry server in use) or `sorry-inhibited`.
    pub state: String,
    /// Its checkers.
    pub checkers: Vec<CheckerView>,
}

/// One checker of a real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckerView {
    /// keepalived's block name, e.g. `HTTP_GET`.
    pub kind: String,
    /// What it checks, e.g. `10.0.0.2:80`.
    pub target: String,
    /// Whether it counts as up.
    pub up: bool,
    /// The last result: `Some(true)` passed, `Some(false)` failed, `None` not run yet.
    pub last_ok: Option<bool>,
    /// The last result's detail.
    pub detail: String,
    /// Milliseconds since the last result.
    pub since_ms: Option<u64>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Checks run so far.
    pub runs: u64,
    /// How long the last check took, in microseconds.
    #[serde(default)]
    pub latency_us: Option<u64>,
}

/// Role of a connection-synchronization daemon (`--start-daemon master|backup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonRole {
    /// Sends the connection table's changes.
    Master,
    /// Receives and installs them.
    Backup,
}

/// A connection-synchronization daemon, as `--start-daemon` sets it up and `-L --daemon`
/// shows it (IPVS's sync protocol version 1 over UDP multicast).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonConfig {
    /// Master or backup.
    pub role: DaemonRole,
    /// Interface the multicast goes out of / is received on (`--mcast-interface`).
    pub mcast_interface: String,
    /// Sync id (`--syncid`, 0 = any on a backup).
    pub syncid: u8,
    /// Largest datagram payload (`--sync-maxlen`); 0: the interface MTU less 28.
    pub maxlen: u16,
    /// Multicast group (`--mcast-group`); `None`: 224.0.0.81.
    pub group: Option<IpAddr>,
    /// UDP port (`--mcast-port`); 0: 8848.
    pub port: u16,
    /// Multicast TTL (`--mcast-ttl`); 0: 1.
    pub ttl: u8,
}

/// One BFD session as `rvsadm --bfd` shows it (an rvs extension): keepalived's
/// `bfd_instance`, its state and the timers in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfdView {
    /// The `bfd_instance` name.
    pub name: String,
    /// The neighbour.
    pub neighbor: IpAddr,
    /// The source address, when configured.
    pub source: Option<IpAddr>,
    /// This end's state: `AdminDown`, `Down`, `Init` or `Up`.
    pub state: String,
    /// The neighbour's last state.
    pub remote_state: String,
    /// The last diagnostic, e.g. `Control Detection Time Expired`.
    pub diag: String,
    /// This end's discriminator.
    pub local_discriminator: u32,
    /// The neighbour's (0 until heard).
    pub remote_discriminator: u32,
    /// The transmit interval in force, microseconds (0: none, the neighbour asks for none).
    pub tx_interval_us: u32,
    /// The detection time in force, microseconds (0 until the neighbour is heard).
    pub detect_time_us: u64,
}

/// One VRRP instance as `rvsadm --vrrp` shows it (an rvs extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpView {
    /// `vrrp_instance` name.
    pub name: String,
    /// Its `vrrp_sync_group`, if any.
    pub group: Option<String>,
    /// Interface.
    pub interface: String,
    /// Virtual router id.
    pub vrid: u8,
    /// VRRP version (2 or 3).
    pub version: u8,
    /// `INIT`, `BACKUP`, `MASTER`, `FAULT` or `STOP`.
    pub state: String,
    /// Effective priority (base plus tracking weights).
    pub priority: u8,
    /// Configured priority.
    pub base_priority: u8,
    /// The current master's address (ours when MASTER), if known.
    pub master: Option<IpAddr>,
    /// `virtual_ipaddress`.
    pub vips: Vec<IpAddr>,
    /// What the instance counted since it started (keepalived's per-instance statistics).
    #[serde(default)]
    pub stats: VrrpStatsView,
    /// `virtual_ipaddress` as keepalived prints it in its data dump (`ADDR/PREFIX dev IF scope
    /// S`, then ` set` while the master holds it).
    #[serde(default)]
    pub vip_lines: Vec<String>,
    /// The instance's tracked `vrrp_script`s.
    #[serde(default)]
    pub scripts: Vec<VrrpScriptView>,
}

/// A tracked `vrrp_script` as keepalived reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VrrpScriptView {
    /// `vrrp_script` name.
    pub name: String,
    /// `GOOD` (the script succeeds, with rise/fall) or `BAD`.
    pub status: String,
    /// `idle`, or `running` while a run is under way.
    pub state: String,
}

/// A VRRP instance's counts, named as keepalived's statistics (its stats dump and its
/// exporters' `keepalived_*_total` metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VrrpStatsView {
    /// Adverts received.
    pub advert_rcvd: u64,
    /// Adverts sent.
    pub advert_sent: u64,
    /// Transitions to MASTER.
    pub become_master: u64,
    /// Transitions out of MASTER.
    pub release_master: u64,
    /// Adverts received with priority 0 (a master leaving).
    pub pri_zero_rcvd: u64,
    /// Adverts sent with priority 0 (leaving as master).
    pub pri_zero_sent: u64,
}

/// One problem `rvsadm --doctor` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingView {
    /// Which check found it, e.g. `nat-no-replies`.
    pub check: String,
    /// What it concerns: a service and real server, or `director`.
    pub subject: String,
    /// What was seen and what to do.
    pub detail: String,
}
