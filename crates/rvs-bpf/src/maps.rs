//! The maps' keys and values: `#[repr(C)]` twins of `bpf/rvs_lb.h`, byte for byte (a test
//! checks their sizes and the offsets the program reads).

use std::net::IpAddr;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Real servers one service may have in the program (`RVS_MAX_DESTS`).
pub const MAX_DESTS: usize = 64;
/// Local addresses a FULLNAT service may have in the program (`RVS_MAX_LADDRS`).
pub const MAX_LADDRS: usize = 8;
/// Length of a wrr sequence table (`RVS_WRR_SEQ`).
pub const WRR_SEQ: usize = 1024;
/// Entries of a service's sh/dh/mh table (`RVS_HASH_STRIDE`, IPVS's default mh size).
pub const HASH_STRIDE: usize = 4093;
/// Columns of the per-state tables (`RVS_STATE_SLOTS`).
pub const STATE_SLOTS: usize = 16;

/// Schedulers the program runs (`enum rvs_sched`); `User` leaves scheduling to rvsd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Sched {
    /// New connections are scheduled by rvsd.
    User = 0,
    /// Round robin.
    Rr = 1,
    /// Weighted round robin (a sequence table from rvsd).
    Wrr = 2,
    /// Least connections.
    Lc = 3,
    /// Weighted least connections.
    Wlc = 4,
    /// Shortest expected delay.
    Sed = 5,
    /// Never queue.
    Nq = 6,
    /// Weighted failover.
    Fo = 7,
    /// Weighted overflow.
    Ovf = 8,
    /// Source hashing (rvs-engine's table).
    Sh = 9,
    /// Destination hashing (rvs-engine's table).
    Dh = 10,
    /// Maglev hashing (rvs-engine's table).
    Mh = 11,
    /// Weighted random of two choices.
    Twos = 12,
    /// Locality-based least connections (a table per destination address).
    Lblc = 13,
    /// Locality-based least connections with replication (a set per destination address).
    Lblcr = 14,
}

/// Forwarding methods (`enum rvs_method`, IPVS's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Method {
    /// NAT (`-m`).
    Masq = 0,
    /// Local node.
    Local = 1,
    /// IP tunnel (`-i`).
    Tunnel = 2,
    /// Direct routing (`-g`).
    Route = 3,
    /// FULLNAT: source and destination translated.
    FullNat = 5,
}

/// Why the program passed a frame to rvsd (`enum rvs_punt`).
pub const PUNT_REASONS: [&str; 11] = [
    "ip_options",
    "fragment",
    "icmp",
    "service",
    "connection",
    "table_full",
    "other",
    "too_big",
    "tunnel",
    "frag_needed",
    "synproxy_ack",
];

/// [`PUNT_REASONS`] index of an IP fragment (of traffic to a virtual address or from a NAT
/// real server): rvsd reassembles it.
pub const PUNT_FRAGMENT: u16 = 1;
/// [`PUNT_REASONS`] index of a frame that, tunnelled, would exceed the path MTU: rvsd's
/// tunnel transmitter answers the client with ICMP.
pub const PUNT_TOO_BIG: u16 = 7;
/// [`PUNT_REASONS`] index of a frame to tunnel that the program cannot encapsulate exactly as
/// the engine does (a GSO frame with an outer checksum, remote checksum offload at tc, ...):
/// rvsd's tunnel transmitter sends it.
pub const PUNT_TUNNEL: u16 = 8;

/// [`PUNT_REASONS`] index of a frame the program would forward itself (NAT, FULLNAT, DR) that
/// exceeds its path's MTU and may not be fragmented; the punt header's `dest` holds the MTU,
/// and the frame is as it came: rvsd answers the sender with ICMP.
pub const PUNT_FRAG_NEEDED: u16 = 9;

/// [`PUNT_REASONS`] index of a TCP ACK to a SYN-proxied service whose cookie (the kernel's,
/// answered by the program) the program checked: rvsd opens the connection.
pub const PUNT_SYNPROXY_ACK: u16 = 10;

/// The program's per-CPU counters (`enum rvs_stat`), by index.
pub const STAT_NAMES: [&str; 27] = [
    "rx",
    "forwarded",
    "passed",
    "drop_no_dest",
    "drop_non_syn",
    "drop_ttl",
    "drop_malformed",
    "conn_created",
    "fib_pass",
    "expired",
    "sync_lost",
    "drop_no_local_port",
    "synproxy_answered",
    "synproxy_no_route",
    "drop_defense",
    "defense_entries",
    "punt_ip_options",
    "punt_fragment",
    "punt_icmp",
    "punt_service",
    "punt_connection",
    "punt_table_full",
    "punt_other",
    "punt_too_big",
    "punt_tunnel",
    "punt_frag_needed",
    "punt_synproxy_ack",
];

/// A 16-byte address as the program keeps it (IPv4 as IPv4-mapped IPv6), network order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Addr {
    /// The 16 bytes.
    pub bytes: [u8; 16],
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        let v6 = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        Addr { bytes: v6.octets() }
    }
}

impl Addr {
    /// The address, IPv4 again when it is IPv4-mapped.
    pub fn ip(&self) -> IpAddr {
        std::net::Ipv6Addr::from(self.bytes).to_canonical()
    }
}

/// `services` key.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SvcKey {
    /// Virtual address.
    pub addr: Addr,
    /// Virtual port, network order (0: a port-0 service).
    pub port_be: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Zero.
    pub pad: u8,
}

/// `addrs` flag: a virtual address.
pub const ADDR_VIP: u32 = 0x01;
/// `addrs` flag: the address of a NAT real server.
pub const ADDR_NAT_DEST: u32 = 0x02;
/// `addrs` flag: a virtual address of services rvsd serves whole (firewall-mark, SCTP).
pub const ADDR_USER_VIP: u32 = 0x04;
/// `addrs` flag: a NAT real server of such services.
pub const ADDR_USER_DEST: u32 = 0x08;

/// Service flag: new connections are scheduled by rvsd.
pub const SVC_F_USER: u8 = 0x01;
/// Service flag: sh/mh skip unavailable servers by rehashing (`sh-fallback`, `mh-fallback`).
pub const SVC_F_FALLBACK: u8 = 0x02;
/// Service flag: sh/mh hash the source port too (`sh-port`, `mh-port`).
pub const SVC_F_PORT: u8 = 0x04;
/// Service flag: persistent (`-p`): clients keep their server through templates.
pub const SVC_F_PERSIST: u8 = 0x08;
/// Service flag (with [`SVC_F_USER`]): the SYN proxy's; the program answers SYNs with the
/// kernel's cookies.
pub const SVC_F_SYNPROXY: u8 = 0x10;

/// `services` value.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Svc {
    /// Index into `svc_dests` and `sched_cursor`.
    pub id: u32,
    /// [`Sched`] as a byte.
    pub sched: u8,
    /// `SVC_F_*`.
    pub flags: u8,
    /// Zero.
    pub pad: u16,
}

/// `svc_dests` value: a service's real servers (dest slots) in rvsd's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SvcDests {
    /// Entries of `slot` used.
    pub count: u32,
    /// Steps of the service's wrr sequence used.
    pub wrr_len: u32,
    /// wrr: the maximum weight less the gcd step plus one.
    pub wrr_mw: u32,
    /// wrr: the gcd step.
    pub wrr_di: u32,
    /// sh/dh/mh: entries of the service's table used (0: an empty table).
    pub hash_len: u32,
    /// Dest slots.
    pub slot: [u32; MAX_DESTS],
    /// A persistent service's timeout, milliseconds.
    pub persist_ms: u32,
    /// wrr, sh, dh, mh: the service's table, in strides of `wrr_seq` ([`WRR_SEQ`]) and
    /// `hash_tab` ([`HASH_STRIDE`]).
    pub table: u32,
    /// A persistent service's client address mask (`-M`; IPv4 as IPv4-mapped).
    pub persist_mask: Addr,
    /// FULLNAT: local addresses used.
    pub laddr_count: u32,
    /// Zero.
    pub pad2: u32,
    /// FULLNAT: the service's local addresses.
    pub laddr: [Addr; MAX_LADDRS],
}

impl Default for SvcDests {
    fn default() -> Self {
        SvcDests {
            count: 0,
            wrr_len: 0,
            wrr_mw: 0,
            wrr_di: 0,
            hash_len: 0,
            slot: [0; MAX_DESTS],
            persist_ms: 0,
            table: 0,
            persist_mask: Addr::default(),
            laddr_count: 0,
            pad2: 0,
            laddr: [Addr::default(); MAX_LADDRS],
        }
    }
}

/// `templates` key: a persistence template (`struct rvs_tpl_key`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TplKey {
    /// The client's address, masked.
    pub client: Addr,
    /// The service's id.
    pub svc: u32,
    /// The virtual port, network order (0 for a port-0 service).
    pub vport_be: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Zero.
    pub pad: u8,
}

/// `templates` value (`struct rvs_tpl`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Tpl {
    /// Expiry, CLOCK_MONOTONIC nanoseconds.
    pub expires_ns: u64,
    /// The dest slot its clients go to.
    pub dest: u32,
    /// Live connections it controls.
    pub n_control: u32,
    /// The persistence timeout, milliseconds.
    pub timeout_ms: u32,
    /// The real server's port, network order (0 for a port-0 service).
    pub dport_be: u16,
    /// Tells this template from an earlier one of the same key.
    pub gen: u16,
}

/// `locality` key: one destination address in a service's lblc/lblcr table.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct LocKey {
    /// The packets' destination address.
    pub dst: Addr,
    /// Service id.
    pub svc: u32,
}

/// A server an lblc/lblcr entry names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct LocMember {
    /// Dest slot.
    pub slot: u32,
    /// rvs-engine's id of the server.
    pub id: u32,
}

/// `locality` value: lblc's server (`m[0]`) or lblcr's set, most recent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Loc {
    /// The last schedule for this destination, CLOCK_MONOTONIC nanoseconds (coarse).
    pub lastuse_ns: u64,
    /// lblcr: the set's last change.
    pub lastmod_ns: u64,
    /// Members.
    pub n: u32,
    /// The program's cursor while it compacts the set.
    pub kept: u32,
    /// The members.
    pub m: [LocMember; MAX_DESTS],
}

/// `wrr_seq` value: one step of a wrr sequence.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct WrrStep {
    /// The current weight at which the step is taken.
    pub level: u32,
    /// The index of its server in the service's dests.
    pub pos: u32,
}

/// `dests` value: a real server.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Dest {
    /// Address.
    pub addr: Addr,
    /// Port, network order (0: the packet's destination port).
    pub port_be: u16,
    /// [`Method`] as a byte.
    pub method: u8,
    /// 0 once removed from its service.
    pub available: u8,
    /// Weight.
    pub weight: u32,
    /// Upper connection threshold (0: none).
    pub u_threshold: u32,
    /// Lower connection threshold (0: 3/4 of the upper one).
    pub l_threshold: u32,
    /// rvs-engine's id of the server (rr's cursor names it).
    pub id: u32,
    /// A tunnel server's encapsulation: `TUN_IPIP`, `TUN_GUE` or `TUN_GRE`.
    pub tun_kind: u8,
    /// A tunnel server's checksum mode: `TUN_NOCSUM`, `TUN_CSUM` or `TUN_REMCSUM`.
    pub tun_csum: u8,
    /// GUE's UDP destination port, network order.
    pub tun_port_be: u16,
}

/// [`Dest::tun_kind`]: IP in IP.
pub const TUN_IPIP: u8 = 0;
/// [`Dest::tun_kind`]: Generic UDP Encapsulation.
pub const TUN_GUE: u8 = 1;
/// [`Dest::tun_kind`]: GRE.
pub const TUN_GRE: u8 = 2;
/// [`Dest::tun_csum`]: no outer checksum.
pub const TUN_NOCSUM: u8 = 0;
/// [`Dest::tun_csum`]: outer UDP (GUE) or GRE checksum.
pub const TUN_CSUM: u8 = 1;
/// [`Dest::tun_csum`]: GUE remote checksum offload.
pub const TUN_REMCSUM: u8 = 2;

impl Dest {
    /// The engine's tunnel settings of a server, as this entry carries them.
    pub fn tunnel(&self) -> rvs_engine::TunnelConfig {
        use rvs_engine::{TunnelChecksum, TunnelKind};
        rvs_engine::TunnelConfig {
            kind: match self.tun_kind {
                TUN_GUE => TunnelKind::Gue,
                TUN_GRE => TunnelKind::Gre,
                _ => TunnelKind::Ipip,
            },
            checksum: match self.tun_csum {
                TUN_CSUM => TunnelChecksum::Csum,
                TUN_REMCSUM => TunnelChecksum::RemCsum,
                _ => TunnelChecksum::NoCsum,
            },
            port: u16::from_be(self.tun_port_be),
        }
    }

    /// The fields of an entry that say how to tunnel to the server: (kind, checksum mode,
    /// port in network order), the inverse of [`Dest::tunnel`].
    pub fn tunnel_fields(cfg: &rvs_engine::TunnelConfig) -> (u8, u8, u16) {
        use rvs_engine::{TunnelChecksum, TunnelKind};
        let kind = match cfg.kind {
            TunnelKind::Ipip => TUN_IPIP,
            TunnelKind::Gue => TUN_GUE,
            TunnelKind::Gre => TUN_GRE,
        };
        let csum = match cfg.checksum {
            TunnelChecksum::NoCsum => TUN_NOCSUM,
            TunnelChecksum::Csum => TUN_CSUM,
            TunnelChecksum::RemCsum => TUN_REMCSUM,
        };
        (kind, csum, cfg.port.to_be())
    }
}

/// `svc_stats` / `dest_stats` value: IPVS's traffic counters (one CPU's share, or summed).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Traffic {
    /// Connections opened.
    pub conns: u64,
    /// Packets from clients.
    pub in_packets: u64,
    /// Packets from real servers.
    pub out_packets: u64,
    /// IP bytes from clients.
    pub in_bytes: u64,
    /// IP bytes from real servers.
    pub out_bytes: u64,
}

impl Traffic {
    /// The field-wise sum.
    pub fn plus(&self, other: &Traffic) -> Traffic {
        Traffic {
            conns: self.conns + other.conns,
            in_packets: self.in_packets + other.in_packets,
            out_packets: self.out_packets + other.out_packets,
            in_bytes: self.in_bytes + other.in_bytes,
            out_bytes: self.out_bytes + other.out_bytes,
        }
    }
}

/// `dest_conns` value: a real server's connection counts, kept by the program.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DestConns {
    /// Active (ESTABLISHED) connections.
    pub active: u32,
    /// Other connections.
    pub inactive: u32,
    /// Over the upper threshold.
    pub overloaded: u32,
    /// Zero.
    pub pad: u32,
}

/// `conns` and `conns_out` key: a packet's tuple.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ConnKey {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port, network order.
    pub sport_be: u16,
    /// Destination port, network order.
    pub dport_be: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Zero.
    pub pad: [u8; 3],
}

/// Connection flag: replies bypass the director (DR, TUN).
pub const CONN_F_NOOUTPUT: u8 = 0x01;
/// Connection flag: controlled by a persistence template.
pub const CONN_F_TEMPLATE: u8 = 0x02;
/// Connection flag: ... of a port-0 service (the template's virtual port is 0).
pub const CONN_F_ANY_PORT: u8 = 0x04;
/// Connection flag: a SYN-proxied connection rvsd handed over; its numbers are shifted by
/// [`Conn::seq_delta`].
pub const CONN_F_SEQ_SHIFT: u8 = 0x08;

/// A cached next hop of one direction of a connection (`struct rvs_hop`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Hop {
    /// The settings' `fib_gen` when it was filled; 0: empty.
    pub gen: u32,
    /// Egress interface.
    pub ifindex: u32,
    /// Packets longer than this (not GSO) look the route up again.
    pub mtu: u16,
    /// The next hop's MAC.
    pub dmac: [u8; 6],
    /// The egress interface's MAC.
    pub smac: [u8; 6],
    /// Zero.
    pub pad: [u8; 2],
}

/// `conns` value: a connection.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Conn {
    /// The real server's address.
    pub daddr: Addr,
    /// The real server's port, network order.
    pub dport_be: u16,
    /// State (rvs-engine's `ConnState` numbering).
    pub state: u8,
    /// `CONN_F_*`.
    pub flags: u8,
    /// Dest slot.
    pub dest: u32,
    /// Service id.
    pub svc: u32,
    /// [`Method`] as a byte.
    pub method: u8,
    /// The state last sent to sync backups.
    pub sync_state: u8,
    /// Incoming packets, for IPVS's sync threshold (wraps).
    pub sync_pkts: u16,
    /// Expiry, CLOCK_MONOTONIC nanoseconds.
    pub expires_ns: u64,
    /// Packets: the client's, and the real server's that need the connection (a plain reply is
    /// counted for its service and server only).
    pub packets: u64,
    /// Bytes, as `packets`.
    pub bytes: u64,
    /// The next hop toward the real server.
    pub hop: Hop,
    /// FULLNAT: the local address toward the real server.
    pub laddr: Addr,
    /// FULLNAT: the local port, network order.
    pub lport_be: u16,
    /// A template's connection: the generation of its template.
    pub tpl_gen: u16,
    /// [`CONN_F_SEQ_SHIFT`]: the director's ISN less the real server's.
    pub seq_delta: u32,
}

/// `conns_out` value: the client-side key of a NAT connection, found by its reply tuple, with
/// what the program needs to translate and count a plain reply without the connection.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ConnOut {
    /// The connection's key in `conns`.
    pub inner: ConnKey,
    /// The next hop toward the client.
    pub hop: Hop,
    /// The connection's expiry, CLOCK_MONOTONIC nanoseconds, as of its last state change or
    /// full-path reply (a plain reply after it takes the full path).
    pub expires_ns: u64,
    /// The connection's service id.
    pub svc: u32,
    /// The connection's dest slot.
    pub dest: u32,
    /// The connection's state, written with it (0: not known).
    pub state: u8,
    /// The connection's [`Method`] as a byte (NAT or FULLNAT).
    pub method: u8,
    /// [`OUT_F_FULL_PATH`].
    pub flags: u8,
    /// Padding.
    pub pad: [u8; 5],
}

/// [`ConnOut::flags`]: every reply needs the connection (a sequence shift).
pub const OUT_F_FULL_PATH: u8 = 0x01;

/// `settings` value (index 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Settings {
    /// IPVS's TCP state table: `[INPUT, OUTPUT, INPUT-ONLY][syn, fin, ack, rst][state]`.
    pub tcp_next: [[[u8; STATE_SLOTS]; 4]; 3],
    /// Timeout per state, milliseconds.
    pub timeout_ms: [u32; STATE_SLOTS],
    /// IPVS's sloppy_tcp: a non-SYN segment may open a connection.
    pub sloppy_tcp: u8,
    /// IPVS's expire_nodest_conn: a packet of a connection whose server was removed expires it.
    pub expire_nodest_conn: u8,
    /// A sync master runs: connection changes go to the `sync_ring`.
    pub sync_export: u8,
    /// IPVS's conn_reuse_mode: a SYN finding a closing connection starts a new one.
    pub conn_reuse_mode: u8,
    /// The version of the kernel's routes and neighbours the cached next hops belong to; rvsd
    /// changes it when they change. 0 turns caching off.
    pub fib_gen: u32,
    /// IPVS's sync_threshold.
    pub sync_threshold: u32,
    /// IPVS's sync_period.
    pub sync_period: u32,
    /// IPVS's expire_quiescent_template: a template whose server has weight 0 is not used.
    pub expire_quiescent_template: u8,
    /// rvs's syn_proxy: the services the SYN proxy serves are published for rvsd to serve
    /// whole (the program does not read it).
    pub syn_proxy: u8,
    /// Zero.
    pub pad2: [u8; 2],
    /// IPVS's drop_packet: one new connection in this many is dropped (0: none).
    pub drop_rate: u32,
}

impl Settings {
    /// The engine's tables: its TCP transitions, its timeouts for `timeouts`, and the policy
    /// switches the program follows (sloppy_tcp, expire_nodest_conn, conn_reuse_mode).
    pub fn from_engine(timeouts: rvs_engine::Timeouts, policy: &rvs_engine::Policy) -> Settings {
        let mut tcp_next = [[[0u8; STATE_SLOTS]; 4]; 3];
        for (dir, rows) in rvs_engine::tcp_transitions().iter().enumerate() {
            for (event, row) in rows.iter().enumerate() {
                tcp_next[dir][event][..row.len()].copy_from_slice(row);
            }
        }
        let mut timeout_ms = [0u32; STATE_SLOTS];
        for (slot, ms) in timeout_ms
            .iter_mut()
            .zip(rvs_engine::state_timeouts_ms(timeouts))
        {
            *slot = ms;
        }
        Settings {
            tcp_next,
            timeout_ms,
            sloppy_tcp: u8::from(policy.sloppy_tcp),
            expire_nodest_conn: u8::from(policy.expire_nodest_conn),
            sync_export: 0,
            conn_reuse_mode: policy.conn_reuse_mode,
            fib_gen: 0,
            sync_threshold: 3,
            sync_period: 50,
            expire_quiescent_template: u8::from(policy.expire_quiescent_template),
            syn_proxy: u8::from(policy.syn_proxy),
            pad2: [0; 2],
            drop_rate: 0,
        }
    }

    /// The engine's defence as it stands: `secure_tcp`'s transition table while that is on,
    /// and `drop_packet`'s rate.
    pub fn with_defense(mut self, defense: &rvs_engine::DefenseStatus) -> Settings {
        let table = if defense.secure_tcp {
            rvs_engine::tcp_transitions_secure()
        } else {
            rvs_engine::tcp_transitions()
        };
        for (dir, rows) in table.iter().enumerate() {
            for (event, row) in rows.iter().enumerate() {
                self.tcp_next[dir][event][..row.len()].copy_from_slice(row);
            }
        }
        self.drop_rate = defense.drop_rate;
        self
    }
}

/// The header of a punted frame in the `punt` ring buffer (`struct punt_hdr`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct PuntHdr {
    /// Interface the frame came in on.
    pub ifindex: u32,
    /// Bytes of the frame that follow.
    pub len: u32,
    /// The frame's length on the wire.
    pub wire: u32,
    /// Index into [`PUNT_REASONS`].
    pub reason: u16,
    /// A GSO frame's segment payload size (tc); 0: not GSO.
    pub gso_size: u16,
    /// [`PUNT_TOO_BIG`], [`PUNT_TUNNEL`]: the slot (`dests` index) of the real server to
    /// tunnel the frame to.
    pub dest: u32,
}

/// A connection the sync master sends (`sync_ring` record, `struct rvs_sync_event`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SyncEvent {
    /// The connection's key (the client's tuple).
    pub key: ConnKey,
    /// The real server's address.
    pub daddr: Addr,
    /// The real server's port, network order.
    pub dport_be: u16,
    /// State (rvs-engine's `ConnState` numbering).
    pub state: u8,
    /// [`Method`] as a byte.
    pub method: u8,
    /// The state's timeout, milliseconds (a template's: the persistence timeout).
    pub timeout_ms: u32,
    /// `SYNC_EV_*`.
    pub flags: u32,
    /// Zero.
    pub pad: u32,
    /// FULLNAT: the local address.
    pub laddr: Addr,
    /// FULLNAT: the local port, network order.
    pub lport_be: u16,
    /// Zero.
    pub pad2: u16,
    /// [`SYNC_EV_SEQ_SHIFT`]: the connection's shift.
    pub seq_delta: u32,
}

/// Sync event flag: a persistence template (`key.src` the masked client, `key.dport` the
/// virtual port, 0 for a port-0 service; `daddr`/`dport_be` its server).
pub const SYNC_EV_TEMPLATE: u32 = 0x01;
/// Sync event (and [`SyncIn`]) flag: a SYN-proxied connection whose numbers are shifted by
/// `seq_delta`.
pub const SYNC_EV_SEQ_SHIFT: u32 = 0x02;

/// A synced connection to install (`struct rvs_sync_in`): the record resolved to the
/// program's service id and dest slot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SyncIn {
    /// The connection's key (the client's tuple).
    pub key: ConnKey,
    /// The real server's address.
    pub daddr: Addr,
    /// The real server's port, network order.
    pub dport_be: u16,
    /// State (rvs-engine's `ConnState` numbering).
    pub state: u8,
    /// [`Method`] as a byte.
    pub method: u8,
    /// Dest slot.
    pub dest: u32,
    /// Service id.
    pub svc: u32,
    /// Timeout from now, milliseconds.
    pub timeout_ms: u32,
    /// `SYNC_EV_TEMPLATE` for a template, `SYNC_EV_SEQ_SHIFT` for a SYN-proxied connection.
    pub flags: u32,
    /// FULLNAT: the local address.
    pub laddr: Addr,
    /// FULLNAT: the local port, network order.
    pub lport_be: u16,
    /// Zero.
    pub pad2: u16,
    /// `SYNC_EV_SEQ_SHIFT`: the connection's shift.
    pub seq_delta: u32,
    /// Zero.
    pub pad3: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Sizes and offsets as clang lays out rvs_lb.h (x86_64 and aarch64 alike).
    #[test]
    fn layouts_match_the_c_header() {
        assert_eq!(size_of::<SvcKey>(), 20);
        assert_eq!(size_of::<Svc>(), 8);
        assert_eq!(
            size_of::<SvcDests>(),
            20 + 4 * MAX_DESTS + 8 + 16 + 8 + 16 * MAX_LADDRS
        );
        assert_eq!(size_of::<TplKey>(), 24);
        assert_eq!(size_of::<Tpl>(), 24);
        assert_eq!(size_of::<WrrStep>(), 8);
        assert_eq!(size_of::<LocKey>(), 20);
        assert_eq!(size_of::<Loc>(), 24 + 8 * MAX_DESTS);
        assert_eq!(size_of::<Dest>(), 40);
        assert_eq!(offset_of!(Dest, tun_kind), 36);
        assert_eq!(offset_of!(Dest, tun_port_be), 38);
        assert_eq!(offset_of!(Dest, id), 32);
        assert_eq!(offset_of!(Dest, weight), 20);
        assert_eq!(size_of::<DestConns>(), 16);
        assert_eq!(size_of::<ConnKey>(), 40);
        assert_eq!(offset_of!(ConnKey, proto), 36);
        assert_eq!(size_of::<Hop>(), 24);
        assert_eq!(size_of::<Conn>(), 104);
        assert_eq!(offset_of!(Conn, lport_be), 96);
        assert_eq!(offset_of!(Conn, expires_ns), 32);
        assert_eq!(offset_of!(Conn, hop), 56);
        assert_eq!(size_of::<ConnOut>(), 88);
        assert_eq!(offset_of!(ConnOut, state), 80);
        assert_eq!(
            size_of::<Settings>(),
            3 * 4 * STATE_SLOTS + 4 * STATE_SLOTS + 24
        );
        assert_eq!(
            offset_of!(Settings, drop_rate),
            3 * 4 * STATE_SLOTS + 4 * STATE_SLOTS + 20
        );
        assert_eq!(size_of::<PuntHdr>(), 20);
        assert_eq!(offset_of!(PuntHdr, dest), 16);
        assert_eq!(offset_of!(Conn, sync_pkts), 30);
        assert_eq!(size_of::<SyncEvent>(), 96);
        assert_eq!(size_of::<SyncIn>(), 104);
        assert_eq!(offset_of!(SyncIn, seq_delta), 96);
        assert_eq!(offset_of!(Conn, seq_delta), 100);
        assert_eq!(offset_of!(SyncEvent, seq_delta), 92);
        assert_eq!(size_of::<Traffic>(), 40);
    }

    #[test]
    fn addresses_are_ipv4_mapped() {
        let a = Addr::from("10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(&a.bytes[10..], &[0xff, 0xff, 10, 1, 2, 3]);
        assert_eq!(a.ip(), "10.1.2.3".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn settings_carry_the_engine_tables() {
        let s = Settings::from_engine(
            rvs_engine::Timeouts::default(),
            &rvs_engine::Policy::default(),
        );
        // INPUT, SYN, NONE -> SYN_RECV (3); ESTABLISHED's timeout is 900 s.
        assert_eq!(s.tcp_next[0][0][0], 3);
        assert_eq!(s.timeout_ms[1], 900_000);
    }
}
