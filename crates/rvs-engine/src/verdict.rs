//! What the engine tells the I/O layer about a frame: the per-frame metadata that comes in
//! ([`PacketMeta`]), the [`Verdict`] that goes out (with a PROXY protocol [`Insertion`]) and
//! the reasons and counters of drops.

use core::net::IpAddr;

use crate::spec::TunnelConfig;

/// Per-frame metadata from the I/O layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketMeta {
    /// The frame came with virtio-net `NEEDS_CSUM` (CHECKSUM_PARTIAL): the L4 checksum field holds
    /// only the non-complemented pseudo-header sum, to be completed later by the kernel.
    pub csum_partial: bool,
    /// A TCP ACK whose SYN cookie the BPF program checked (the kernel's cookie, answered
    /// there): the SYN proxy opens its connection without checking it again.
    pub cookie_checked: bool,
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
        insert: Insertion,
    },
    /// Local forwarding (the real server is the director itself, IPVS's `ip_vs_null_xmit`):
    /// the L3 packet at `frame[l3_offset..]` is left untouched and must be handed to the
    /// director's own IP stack (the data plane writes it to its TUN device).
    Deliver {
        /// Offset of the L3 header in the frame.
        l3_offset: usize,
    },
    /// An IP fragment of traffic the engine handles (to a virtual or FULLNAT local address, or
    /// from a real server): the I/O layer gives the frame to `Engine::reassemble` and, once that
    /// returns the whole datagram, runs it through `Engine::handle` and sends it cut again to no
    /// more than its largest fragment ([`crate::fragment`]).
    Reassemble,
    /// Not yet: a segment of a connection the SYN proxy opened, which waits for its real
    /// server's answer. The I/O layer keeps the frame (untouched) and gives it to
    /// `Engine::handle` again shortly (a second or so at most, then drops it).
    Defer,
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
    /// An IP fragment the reassembly refused: invalid (overlapping, too long, a bad size) or
    /// over the memory bound; counted in detail by `Engine::reassembly`.
    Fragmented,
    /// A protocol or forwarding method the engine does not handle yet.
    UnsupportedProtocol,
    /// FULLNAT: no free local port on any local address toward the real server.
    NoLocalPort,
    /// A new connection when the connection table holds its bound (`max_connections`).
    TableFull,
    /// A new connection dropped by IPVS's `drop_packet` defence while memory is short.
    DefenseDropPacket,
}

impl DropReason {
    /// All reasons, in counter order.
    pub const ALL: [DropReason; 10] = [
        DropReason::Malformed,
        DropReason::Truncated,
        DropReason::NoConnectionNonSyn,
        DropReason::NoDestination,
        DropReason::TtlExceeded,
        DropReason::Fragmented,
        DropReason::UnsupportedProtocol,
        DropReason::NoLocalPort,
        DropReason::TableFull,
        DropReason::DefenseDropPacket,
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
            DropReason::TableFull => "table_full",
            DropReason::DefenseDropPacket => "defense_drop_packet",
        }
    }
}

/// Dropped-frame counters, one per [`DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounters {
    /// Counts indexed by `DropReason::index`.
    pub counts: [u64; DropReason::ALL.len()],
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

/// The PROXY protocol header to insert in front of a segment's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insertion {
    /// Header bytes (`len` of them are used).
    pub bytes: [u8; MAX_HEADER],
    /// Number of bytes.
    pub len: u16,
}

impl Insertion {
    /// The bytes to insert.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(MAX_HEADER)]
    }
}

/// Longest header: a version 1 TCP6 line is at most 104 bytes; version 2 is 52.
pub const MAX_HEADER: usize = 108;
