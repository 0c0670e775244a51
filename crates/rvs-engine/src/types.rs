//! The engine's public vocabulary: services, destinations, verdicts, statistics, errors.

use core::net::{IpAddr, SocketAddr};

/// Monotonic time in milliseconds, supplied by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

/// Per-frame metadata from the I/O layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketMeta {
    /// The frame came with virtio-net `NEEDS_CSUM` (CHECKSUM_PARTIAL): the L4 checksum field holds
    /// only the non-complemented pseudo-header sum, to be completed later by the kernel.
    pub csum_partial: bool,
}

/// What the I/O layer must do with a frame after `Engine::handle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten in place. The L3 packet starts at `frame[l3_offset..]`; the I/O layer writes a
    /// fresh 14-byte Ethernet header at `frame[l3_offset - 14..l3_offset]` (dropping any VLAN tag)
    /// after routing `next_hop_ip`.
    Forward {
        /// The address to route (real server for client->server, client for replies).
        next_hop_ip: IpAddr,
        /// Offset of the L3 header in the frame (always >= 14).
        l3_offset: usize,
    },
    /// Not ours (ARP, traffic to the director itself, no matching service or connection).
    PassToKernel,
    /// Tunnelling (`-i`): the L3 packet at `frame[l3_offset..]` is left untouched and must be
    /// sent to `next_hop_ip` (the real server) inside the outer header(s) `tunnel` describes.
    /// The data plane knows the outer source (its address toward the real server) and the egress
    /// MTU, so it builds the outer header with [`crate::tunnel::outer_header`] per packet (per
    /// segment for GSO frames) and checks the path MTU with [`crate::tunnel::too_big`].
    Encapsulate {
        /// The real server (outer destination).
        next_hop_ip: IpAddr,
        /// Offset of the inner L3 header in the frame.
        l3_offset: usize,
        /// Encapsulation of the destination.
        tunnel: TunnelConfig,
    },
    /// FULLNAT with the PROXY protocol, the client's first data segment: rewritten in place
    /// like [`Verdict::Forward`], and `insert` must be sent between `frame[..payload_offset]`
    /// and `frame[payload_offset..end]` (IP lengths and the TCP checksum already count it;
    /// a virtio-net header's offsets and GSO size stay valid, as the bytes go after the headers).
    ForwardInsert {
        /// The real server.
        next_hop_ip: IpAddr,
        /// Offset of the L3 header in the frame.
        l3_offset: usize,
        /// Offset of the TCP payload in the frame.
        payload_offset: usize,
        /// End of the IP packet in the frame (frames may carry Ethernet padding after it).
        end: usize,
        /// The bytes to insert.
        insert: crate::proxy::Insertion,
    },
    /// Local forwarding (the real server is the director itself, IPVS's `ip_vs_null_xmit`):
    /// the L3 packet at `frame[l3_offset..]` is left untouched and must be handed to the
    /// director's own IP stack (the data plane writes it to its TUN device).
    Deliver {
        /// Offset of the L3 header in the frame.
        l3_offset: usize,
    },
    /// Dropped and counted under the reason.
    Drop(DropReason),
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A header field is impossible (bad version, header length, ...).
    Malformed,
    /// The frame ends inside a header.
    Truncated,
    /// A TCP segment without SYN (or with RST), or an SCTP packet whose first chunk is not an
    /// INIT (or is an ABORT), for a service, and no connection.
    NoConnectionNonSyn,
    /// A new connection found no usable destination (none, all weight 0 or overloaded).
    NoDestination,
    /// TTL / hop limit would reach 0.
    TtlExceeded,
    /// An IP fragment addressed to a virtual service (reassembly is not done).
    Fragmented,
    /// A protocol or forwarding method the engine does not handle yet.
    UnsupportedProtocol,
    /// FULLNAT: no free local port on any local address toward the real server.
    NoLocalPort,
}

impl DropReason {
    /// All reasons, in counter order.
    pub const ALL: [DropReason; 8] = [
        DropReason::Malformed,
        DropReason::Truncated,
        DropReason::NoConnectionNonSyn,
        DropReason::NoDestination,
        DropReason::TtlExceeded,
        DropReason::Fragmented,
        DropReason::UnsupportedProtocol,
        DropReason::NoLocalPort,
    ];

    /// Index into counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short snake_case name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Truncated => "truncated",
            DropReason::NoConnectionNonSyn => "no_connection_non_syn",
            DropReason::NoDestination => "no_destination",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::Fragmented => "fragmented",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::NoLocalPort => "no_local_port",
        }
    }
}

/// Dropped-frame counters, one per [`DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounters {
    /// Counts indexed by `DropReason::index`.
    pub counts: [u64; 8],
}

impl DropCounters {
    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

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
    /// Whether a packet of protocol number `proto` to `addr`:`port` matches.
    pub fn matches(&self, proto: u8, addr: IpAddr, port: u16) -> bool {
        if self.proto.number() != proto || port < self.ports.0 || port > self.ports.1 {
            return false;
        }
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

/// Traffic counters (as `ipvsadm --stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client -> server.
    pub in_pkts: u64,
    /// Packets server -> client.
    pub out_pkts: u64,
    /// L3 bytes client -> server.
    pub in_bytes: u64,
    /// L3 bytes server -> client.
    pub out_bytes: u64,
}

impl Stats {
    pub(crate) fn add(&mut self, o: &Stats) {
        self.conns += o.conns;
        self.in_pkts += o.in_pkts;
        self.out_pkts += o.out_pkts;
        self.in_bytes += o.in_bytes;
        self.out_bytes += o.out_bytes;
    }
}

/// Estimated rates (as `ipvsadm --rate`), per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub in_pps: u64,
    /// Outgoing packets per second.
    pub out_pps: u64,
    /// Incoming bytes per second.
    pub in_bps: u64,
    /// Outgoing bytes per second.
    pub out_bps: u64,
}

/// A service with its live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// Configuration.
    pub spec: ServiceSpec,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
    /// Destinations in list order.
    pub dests: Vec<DestStatus>,
}

/// A destination with its live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestStatus {
    /// Configuration.
    pub spec: DestSpec,
    /// ActiveConn (TCP and SCTP connections in ESTABLISHED).
    pub active_conns: u32,
    /// InActConn (all other connections).
    pub inactive_conns: u32,
    /// PersistConn (persistence templates).
    pub persist_conns: u32,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
}

/// Connection state as IPVS names it: TCP's states, UDP's one, and SCTP's (IPVS's
/// `IP_VS_SCTP_S_*` in the kernel's order, so `SctpNone as u8 + n` is the kernel's state `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnState {
    /// TCP NONE.
    None = 0,
    /// TCP ESTABLISHED.
    Established = 1,
    /// TCP SYN_SENT.
    SynSent = 2,
    /// TCP SYN_RECV.
    SynRecv = 3,
    /// TCP FIN_WAIT.
    FinWait = 4,
    /// TCP TIME_WAIT.
    TimeWait = 5,
    /// TCP CLOSE.
    Close = 6,
    /// TCP CLOSE_WAIT.
    CloseWait = 7,
    /// TCP LAST_ACK.
    LastAck = 8,
    /// TCP LISTEN.
    Listen = 9,
    /// TCP SYNACK.
    SynAck = 10,
    /// A UDP connection.
    Udp = 11,
    /// SCTP NONE: created, no packet seen yet.
    SctpNone = 12,
    /// SCTP INIT1: the client's first INIT seen, waiting for the server's INIT_ACK.
    SctpInit1 = 13,
    /// SCTP INIT: a repeated INIT.
    SctpInit = 14,
    /// SCTP COOKIE_SENT: the server's INIT_ACK seen, waiting for the client's COOKIE_ECHO.
    SctpCookieSent = 15,
    /// SCTP COOKIE_REPLIED: the client's COOKIE_ECHO seen, waiting for the server's COOKIE_ACK.
    SctpCookieReplied = 16,
    /// SCTP COOKIE_WAIT: the server sent an INIT, waiting for the client's INIT_ACK.
    SctpCookieWait = 17,
    /// SCTP COOKIE: the client's INIT_ACK seen, waiting for the server's COOKIE_ECHO.
    SctpCookie = 18,
    /// SCTP COOKIE_ECHOED: the server's COOKIE_ECHO seen, waiting for the client's COOKIE_ACK.
    SctpCookieEchoed = 19,
    /// SCTP ESTABLISHED (counted as an active connection).
    SctpEstablished = 20,
    /// SCTP SHUTDOWN_SENT: the server sent SHUTDOWN.
    SctpShutdownSent = 21,
    /// SCTP SHUTDOWN_RECEIVED: the client sent SHUTDOWN.
    SctpShutdownReceived = 22,
    /// SCTP SHUTDOWN_ACK_SENT: the server answered the client's SHUTDOWN.
    SctpShutdownAckSent = 23,
    /// SCTP REJECTED: an INIT answered with ABORT.
    SctpRejected = 24,
    /// SCTP CLOSED.
    SctpClosed = 25,
}

impl ConnState {
    /// The state name as `ipvsadm -Lnc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
            ConnState::SctpNone => "NONE",
            ConnState::SctpInit1 => "INIT1",
            ConnState::SctpInit => "INIT",
            ConnState::SctpCookieSent => "C-SENT",
            ConnState::SctpCookieReplied => "C-REPLIED",
            ConnState::SctpCookieWait => "C-WAIT",
            ConnState::SctpCookie => "COOKIE",
            ConnState::SctpCookieEchoed => "C-ECHOED",
            ConnState::SctpEstablished => "ESTABLISHED",
            ConnState::SctpShutdownSent => "S-SENT",
            ConnState::SctpShutdownReceived => "S-RECEIVED",
            ConnState::SctpShutdownAckSent => "S-ACK-SENT",
            ConnState::SctpRejected => "REJECTED",
            ConnState::SctpClosed => "CLOSED",
        }
    }

    /// Counted as an active connection (ActiveConn): TCP's or SCTP's ESTABLISHED.
    pub fn is_established(self) -> bool {
        matches!(self, ConnState::Established | ConnState::SctpEstablished)
    }

    /// IPVS's number of an SCTP state (`IP_VS_SCTP_S_*`), `None` for TCP and UDP states.
    pub(crate) fn sctp_index(self) -> Option<u8> {
        (self as u8).checked_sub(ConnState::SctpNone as u8)
    }

    pub(crate) fn from_u8(v: u8) -> ConnState {
        match v {
            1 => ConnState::Established,
            2 => ConnState::SynSent,
            3 => ConnState::SynRecv,
            4 => ConnState::FinWait,
            5 => ConnState::TimeWait,
            6 => ConnState::Close,
            7 => ConnState::CloseWait,
            8 => ConnState::LastAck,
            9 => ConnState::Listen,
            10 => ConnState::SynAck,
            11 => ConnState::Udp,
            12 => ConnState::SctpNone,
            13 => ConnState::SctpInit1,
            14 => ConnState::SctpInit,
            15 => ConnState::SctpCookieSent,
            16 => ConnState::SctpCookieReplied,
            17 => ConnState::SctpCookieWait,
            18 => ConnState::SctpCookie,
            19 => ConnState::SctpCookieEchoed,
            20 => ConnState::SctpEstablished,
            21 => ConnState::SctpShutdownSent,
            22 => ConnState::SctpShutdownReceived,
            23 => ConnState::SctpShutdownAckSent,
            24 => ConnState::SctpRejected,
            25 => ConnState::SctpClosed,
            _ => ConnState::None,
        }
    }
}

/// One connection, for `ipvsadm -Lnc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnStatus {
    /// Protocol.
    pub proto: Protocol,
    /// Client address and port.
    pub client: SocketAddr,
    /// Virtual address and port.
    pub virtual_addr: SocketAddr,
    /// Real server address and port.
    pub dest: SocketAddr,
    /// State.
    pub state: ConnState,
    /// Time left before the connection expires.
    pub expires_in: Millis,
    /// A persistence template (client masked, port 0), not a connection.
    pub template: bool,
    /// A firewall-mark service's template: IPVS shows its protocol as `IP` and its virtual
    /// address as the mark.
    pub fwmark_template: bool,
    /// A template made by a persistence engine: its name and data (the SIP Call-ID), which
    /// IPVS appends to the template's line of `/proc/net/ip_vs_conn`.
    pub pe: Option<(PersistenceEngine, Vec<u8>)>,
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
    /// Size of the mh (Maglev) lookup table: one of IPVS's primes ([`MH_TABLE_SIZES`]); IPVS's
    /// default is 4093 (`CONFIG_IP_VS_MH_TAB_INDEX` 12). Other values are rounded down to the
    /// nearest of those primes (251 at least).
    pub mh_table_size: u32,
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
            mh_table_size: MH_DEFAULT_TABLE_SIZE,
        }
    }
}

/// Control-plane errors, worded like ipvsadm's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// `-A` on an existing service.
    #[error("Service already exists")]
    ServiceExists,
    /// The service named does not exist.
    #[error("Service not defined")]
    NoService,
    /// `-a` on an existing destination.
    #[error("Destination already exists")]
    DestExists,
    /// The destination named does not exist.
    #[error("No such destination")]
    NoDest,
    /// A feature of a later milestone.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A malformed request.
    #[error("Invalid argument: {0}")]
    InvalidArgument(String),
}
