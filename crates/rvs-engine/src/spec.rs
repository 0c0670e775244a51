//! The engine's configuration vocabulary: virtual services and their keys, real servers,
//! schedulers and their flags, persistence, forwarding methods and tunnels, timeouts, the
//! engine's sizing, and time ([`Millis`]).

use core::net::IpAddr;

/// Monotonic time in milliseconds, supplied by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// Name as ipvsadm prints it ("TCP", "UDP", "SCTP").
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// The [`Protocol`] of an IP protocol number, if the engine balances it.
pub(crate) fn protocol_of(n: u8) -> Option<Protocol> {
    match n {
        rvs_wire::ip::TCP => Some(Protocol::Tcp),
        rvs_wire::ip::UDP => Some(Protocol::Udp),
        rvs_wire::ip::SCTP => Some(Protocol::Sctp),
        _ => None,
    }
}

/// Identity of a virtual service: protocol, virtual IP, port; or a firewall mark (`-f`) and an
/// address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// TCP, UDP or SCTP (TCP, unused, for a firewall-mark service).
    pub proto: Protocol,
    /// Virtual IP (the family's unspecified address for a firewall-mark service).
    pub addr: IpAddr,
    /// Virtual port (0 for a firewall-mark service).
    pub port: u16,
    /// The firewall mark of a `-f` service; 0 for a (protocol, address, port) service.
    pub fwmark: u32,
}

impl ServiceKey {
    /// A (protocol, address, port) service.
    pub fn new(proto: Protocol, addr: IpAddr, port: u16) -> ServiceKey {
        ServiceKey {
            proto,
            addr,
            port,
            fwmark: 0,
        }
    }

    /// Whether this is a TCP or UDP service of an address and port (not a firewall-mark or
    /// an SCTP one): the services a data plane keyed by address and port serves itself.
    pub fn is_tcp_udp_address(&self) -> bool {
        self.fwmark == 0 && self.proto != Protocol::Sctp
    }

    /// A firewall-mark service (`-f mark`, `-6` for IPv6).
    pub fn fwmark(mark: u32, v6: bool) -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            addr: if v6 {
                IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED)
            },
            port: 0,
            fwmark: mark,
        }
    }
}

/// A classifier rule: packets of `proto` to an address in `addr/prefix_len` and a destination
/// port in `ports` carry `mark` (rvs's stand-in for the kernel's packet marks, which it cannot
/// see). A marked packet goes to the firewall-mark service of its mark and family, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkRule {
    /// Transport protocol.
    pub proto: Protocol,
    /// Destination network address.
    pub addr: IpAddr,
    /// Destination prefix length (32 or 128 for one address).
    pub prefix_len: u8,
    /// First and last destination port (inclusive).
    pub ports: (u16, u16),
    /// The mark.
    pub mark: u32,
}

impl MarkRule {
    /// Whether the rule classifies traffic for the firewall-mark service `key`: it gives the
    /// service's mark, in the service's address family.
    pub fn marks_for(&self, key: &ServiceKey) -> bool {
        self.mark == key.fwmark && self.addr.is_ipv6() == key.addr.is_ipv6()
    }

    /// Whether a packet of protocol number `proto` to `addr`:`port` matches.
    pub fn matches(&self, proto: u8, addr: IpAddr, port: u16) -> bool {
        if self.proto.number() != proto || port < self.ports.0 || port > self.ports.1 {
            return false;
        }
        self.covers(addr)
    }

    /// Whether `addr` lies in the rule's destination network (whatever the protocol and port).
    pub fn covers(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Scheduling algorithm of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Shortest expected delay: least `(active + 1) / weight`.
    Sed,
    /// Never queue: an idle server first, else as sed.
    Nq,
    /// Source hashing (256-bucket table, weight-proportional buckets).
    Sh,
    /// Destination hashing (256-bucket table).
    Dh,
    /// Locality-based least connections (per destination IP).
    Lblc,
    /// Locality-based least connections with replication (per destination IP server sets).
    Lblcr,
    /// Weighted failover: the highest weight not overloaded.
    Fo,
    /// Overflow: the highest weight whose active connections do not exceed its weight.
    Ovf,
    /// Maglev hashing.
    Mh,
    /// Weighted power of two choices.
    Twos,
    /// No scheduler (`-s none`): the service takes no new connections; its existing ones
    /// (synchronized from a peer, or made before a `-E -s none`) carry on.
    None,
}

impl SchedulerKind {
    /// Name as ipvsadm prints it.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Twos => "twos",
            SchedulerKind::None => "none",
        }
    }

    /// Every scheduler, in the order IPVS's documentation lists them (`none` is not one).
    pub const ALL: [SchedulerKind; 14] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Dh,
        SchedulerKind::Sh,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
        SchedulerKind::Mh,
        SchedulerKind::Twos,
    ];

    /// The scheduler of an ipvsadm name (`-s`): one of [`SchedulerKind::ALL`], or `none`.
    pub fn from_name(name: &str) -> Option<SchedulerKind> {
        if name == SchedulerKind::None.name() {
            return Some(SchedulerKind::None);
        }
        SchedulerKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Scheduler flags (`-b`): IPVS's `IP_VS_SVC_F_SCHED1..3` bits. sh and mh read the first as
/// "fallback" and the second as "port"; the other schedulers ignore them, as in IPVS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SchedFlags(pub u8);

impl SchedFlags {
    /// `sh-fallback` / `mh-fallback` (`IP_VS_SVC_F_SCHED1`): skip unavailable servers by
    /// rehashing.
    pub const FALLBACK: u8 = 1;
    /// `sh-port` / `mh-port` (`IP_VS_SVC_F_SCHED2`): hash the source port too.
    pub const PORT: u8 = 2;
    /// `flag-3` (`IP_VS_SVC_F_SCHED3`): unused by every scheduler.
    pub const FLAG3: u8 = 4;

    /// The fallback bit is set.
    pub fn fallback(self) -> bool {
        self.0 & Self::FALLBACK != 0
    }

    /// The port bit is set.
    pub fn port(self) -> bool {
        self.0 & Self::PORT != 0
    }
}

/// Persistence (`-p timeout -M netmask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Persistence {
    /// Template timeout in seconds.
    pub timeout_s: u32,
    /// Client netmask grouping connections to one template.
    pub netmask: IpAddr,
    /// Persistence engine (`--pe`), keying templates by more than the client.
    pub pe: Option<PersistenceEngine>,
}

/// An IPVS persistence engine (`ipvsadm --pe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersistenceEngine {
    /// `sip` (`ip_vs_pe_sip`): a UDP service's templates are keyed by the SIP Call-ID of the
    /// datagram as well; a datagram without one is dropped, as IPVS drops it.
    Sip,
}

impl PersistenceEngine {
    /// The engine's name, as ipvsadm gives and shows it.
    pub fn name(self) -> &'static str {
        match self {
            PersistenceEngine::Sip => "sip",
        }
    }

    /// The engine named `name` (IPVS's `ip_vs_pe_getbyname`), if there is one.
    pub fn by_name(name: &str) -> Option<Self> {
        (name == "sip").then_some(PersistenceEngine::Sip)
    }
}

/// Configuration of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Identity.
    pub key: ServiceKey,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags (`-b`).
    pub sched_flags: SchedFlags,
    /// Persistence, if any: connections of one client (masked by the netmask) go to the
    /// same real server while its template lives.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`-o`): each UDP datagram is scheduled on its own and no
    /// connection is kept (ignored for TCP, as in IPVS).
    pub one_packet: bool,
    /// FULLNAT local addresses (director addresses, the service's family): the source of
    /// packets toward [`ForwardMethod::FullNat`] real servers.
    pub local_addrs: Vec<IpAddr>,
    /// PROXY protocol header inserted at the start of FULLNAT TCP streams.
    pub proxy_protocol: Option<ProxyProtocolVersion>,
}

impl ServiceSpec {
    /// A service `key` scheduled by `scheduler`, with no persistence, flags, local addresses
    /// or PROXY protocol (`ipvsadm -A -t|-u|-f ... -s scheduler`).
    pub fn new(key: ServiceKey, scheduler: SchedulerKind) -> ServiceSpec {
        ServiceSpec {
            key,
            scheduler,
            sched_flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            local_addrs: Vec::new(),
            proxy_protocol: None,
        }
    }
}

/// PROXY protocol version inserted toward FULLNAT real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyProtocolVersion {
    /// Text header.
    V1,
    /// Binary header.
    V2,
}

/// Packet forwarding method of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMethod {
    /// NAT (`-m`).
    Masq,
    /// Direct routing (`-g`).
    Route,
    /// IP-in-IP tunnelling (`-i`).
    Tunnel,
    /// Local delivery: the real server is one of the director's own addresses (IPVS's
    /// `IP_VS_CONN_F_LOCALNODE`); packets reach the director's stack unchanged.
    Local,
    /// FULLNAT: client->virtual becomes local address:local port -> real server, and back.
    FullNat,
}

impl ForwardMethod {
    /// Name as ipvsadm prints it in the Forward column.
    pub fn name(self) -> &'static str {
        match self {
            ForwardMethod::Masq => "Masq",
            ForwardMethod::Route => "Route",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::Local => "Local",
            ForwardMethod::FullNat => "FullNat",
        }
    }
}

/// Encapsulation of the `Tunnel` forwarding method (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelKind {
    /// IP-in-IP (IPv4 protocol 4, or 41 for an IPv6 inner packet).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation (outer UDP to `--tun-port`, a 4-byte GUE header).
    Gue,
    /// Generic Routing Encapsulation (RFC 2784).
    Gre,
}

/// Outer checksum mode (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelChecksum {
    /// No outer checksum.
    #[default]
    NoCsum,
    /// Outer UDP (GUE) or GRE checksum.
    Csum,
    /// GUE remote checksum offload.
    RemCsum,
}

/// Tunnel parameters of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TunnelConfig {
    /// Encapsulation.
    pub kind: TunnelKind,
    /// GUE destination port (0 for the other kinds).
    pub port: u16,
    /// Checksum mode.
    pub checksum: TunnelChecksum,
}

impl TunnelConfig {
    /// Packs the configuration into 32 bits (kind, checksum, port) for an atomic.
    pub(crate) fn pack(self) -> u32 {
        let kind = match self.kind {
            TunnelKind::Ipip => 0,
            TunnelKind::Gue => 1,
            TunnelKind::Gre => 2,
        };
        let csum = match self.checksum {
            TunnelChecksum::NoCsum => 0,
            TunnelChecksum::Csum => 1,
            TunnelChecksum::RemCsum => 2,
        };
        kind | (csum << 2) | (u32::from(self.port) << 16)
    }

    /// The inverse of [`TunnelConfig::pack`].
    pub(crate) fn unpack(v: u32) -> TunnelConfig {
        TunnelConfig {
            kind: match v & 3 {
                1 => TunnelKind::Gue,
                2 => TunnelKind::Gre,
                _ => TunnelKind::Ipip,
            },
            checksum: match (v >> 2) & 3 {
                1 => TunnelChecksum::Csum,
                2 => TunnelChecksum::RemCsum,
                _ => TunnelChecksum::NoCsum,
            },
            port: (v >> 16) as u16,
        }
    }
}

/// Configuration of a real server under a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestSpec {
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port (0 = the service's port, as ipvsadm does).
    pub port: u16,
    /// Weight; 0 quiesces (no new connections).
    pub weight: u32,
    /// Forwarding method.
    pub method: ForwardMethod,
    /// Upper connection threshold (0 = none).
    pub u_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub l_threshold: u32,
    /// Tunnel parameters (used with [`ForwardMethod::Tunnel`] only).
    pub tunnel: TunnelConfig,
}

impl DestSpec {
    /// A real server `addr:port` of `weight`, forwarded to by `method`, with no thresholds
    /// (`ipvsadm -a ... -r addr:port -w weight -m|-g|-i`).
    pub fn new(addr: IpAddr, port: u16, weight: u32, method: ForwardMethod) -> DestSpec {
        DestSpec {
            addr,
            port,
            weight,
            method,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: TunnelConfig::default(),
        }
    }
}

/// Protocol timeouts in seconds (`ipvsadm --set tcp tcpfin udp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP ESTABLISHED timeout.
    pub tcp: u32,
    /// TCP FIN_WAIT timeout.
    pub tcpfin: u32,
    /// UDP timeout.
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300,
        }
    }
}

/// A `--set` request: 0 leaves a value unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeoutUpdate {
    /// New TCP ESTABLISHED timeout, seconds (0 = unchanged).
    pub tcp: u32,
    /// New TCP FIN_WAIT timeout, seconds (0 = unchanged).
    pub tcpfin: u32,
    /// New UDP timeout, seconds (0 = unchanged).
    pub udp: u32,
}

/// Engine construction parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Connections to pre-allocate room for.
    pub expected_connections: usize,
    /// Number of connection-table shards (rounded up to a power of two, at least 1).
    pub shards: usize,
    /// The connection table's bound (0: none): each shard holds at most this over the number
    /// of shards, and a new connection beyond it is dropped (`table_full`), so a flood of new
    /// connections cannot grow the table's memory without end.
    pub max_connections: usize,
    /// Size of the mh (Maglev) lookup table: one of IPVS's primes ([`MH_TABLE_SIZES`]); IPVS's
    /// default is 4093 (`CONFIG_IP_VS_MH_TAB_INDEX` 12). Other values are rounded down to the
    /// nearest of those primes (251 at least).
    pub mh_table_size: u32,
    /// Bounds of IP fragment reassembly (memory and time).
    pub reassembly: ReasmLimits,
}

/// Bounds of the engine's IP reassembly ([`crate::reasm::Reassembler`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasmLimits {
    /// Most bytes held in incomplete datagrams (fragment data and headers, plus a per-fragment
    /// overhead); fragments of new datagrams are refused above it.
    pub max_bytes: usize,
    /// How long an incomplete datagram is kept from its first fragment, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for ReasmLimits {
    /// Linux's defaults: `ipfrag_high_thresh` 4 MiB and `ipfrag_time` 30 s.
    fn default() -> Self {
        ReasmLimits {
            max_bytes: 4 << 20,
            timeout_ms: 30_000,
        }
    }
}

/// The mh table sizes IPVS can be built with (`CONFIG_IP_VS_MH_TAB_INDEX` 8..=17).
pub const MH_TABLE_SIZES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];

/// IPVS's default mh table size.
pub const MH_DEFAULT_TABLE_SIZE: u32 = 4093;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            expected_connections: 65_536,
            shards: 64,
            max_connections: 0,
            mh_table_size: MH_DEFAULT_TABLE_SIZE,
            reassembly: ReasmLimits::default(),
        }
    }
}
