//! Addresses and flows, the bottom layer of the engine: every address is 16 bytes (IPv4 ones
//! IPv4-mapped), and these functions convert to and from that form ([`to16`], [`to_ip`],
//! [`mapped`], [`v4_part`], [`mark_addr`]), hash a flow's (protocol, address, port)
//! ([`flow_hash`], [`shard_bits`]) and name a packet's [`Direction`]. Nothing here imports
//! another module of the crate.

use core::hash::BuildHasher;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which way a packet travels relative to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Client -> server.
    Input,
    /// Server -> client.
    Output,
}

/// A packet's protocol, family, addresses and ports as seen on the wire (source first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tuple {
    pub(crate) proto: u8,
    pub(crate) v6: bool,
    pub(crate) src: [u8; 16],
    pub(crate) dst: [u8; 16],
    pub(crate) sport: u16,
    pub(crate) dport: u16,
}

/// Bits 32..56 of a flow hash: where `Engine::shard_index` reads the shard.
const SHARD_FIELD: u64 = 0x00FF_FFFF << 32;

/// The connection-table shard bits of a flow, the same on every director: a fixed, unkeyed
/// mix (SplitMix64's finalizer over the address, protocol and port, big-endian) that does not
/// depend on the process or on a library's hash algorithm.
///
/// Why unkeyed: a backup director installs a synced FULLNAT connection under the master's
/// local port, and that port was chosen so that the reply's (local address, port) lands in the
/// client's shard. With a per-process seed the two directors disagree on shards and the backup
/// would have to refuse the connection. The trade-off: someone who knows this function can
/// steer many flows into one shard (uneven shard sizes, more contention on that shard's
/// lock), but not into one bucket: the index inside a shard still uses the keyed, random
/// per-engine hash (the bits outside [`SHARD_FIELD`]), so hash flooding cannot make lookups
/// degrade into long probe chains. Directors that sync must run the same shard count.
pub(crate) fn shard_bits(proto: u8, addr: &[u8; 16], port: u16) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&addr[..8]);
    b.copy_from_slice(&addr[8..]);
    let mut x: u64 = 0x7276_735f_7368_6172; // "rvs_shar"
    for word in [
        u64::from_be_bytes(a),
        u64::from_be_bytes(b),
        (u64::from(proto) << 16) | u64::from(port),
    ] {
        x = mix(x.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ word);
    }
    x
}

/// The hash of a flow's (protocol, address, port): keyed by the engine's random state, except
/// for the shard field, which comes from [`shard_bits`] so that every director picks the same
/// shard for a flow. The index inside a shard uses the low bits and the top 7 bits (hashbrown's
/// bucket index and tag), never the shard field.
pub(crate) fn flow_hash(
    state: &foldhash::fast::RandomState,
    proto: u8,
    addr: &[u8; 16],
    port: u16,
) -> u64 {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&addr[..8]);
    b.copy_from_slice(&addr[8..]);
    let keyed = state.hash_one((
        u64::from_ne_bytes(a),
        u64::from_ne_bytes(b),
        ((proto as u32) << 16) | port as u32,
    ));
    (keyed & !SHARD_FIELD) | ((shard_bits(proto, addr, port) << 32) & SHARD_FIELD)
}

/// A 16-byte address (IPv4-mapped for IPv4) as an [`IpAddr`] of the given family.
pub(crate) fn to_ip(a: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*a))
    } else {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    }
}

/// An address as 16 bytes, IPv4 ones IPv4-mapped.
pub(crate) fn to16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The IPv4-mapped IPv6 form of an IPv4 address (built as one 16-byte value).
#[inline]
pub(crate) fn mapped(a: [u8; 4]) -> [u8; 16] {
    ((0xffff_u128 << 32) | u32::from_be_bytes(a) as u128).to_be_bytes()
}

/// The IPv4 part of an IPv4-mapped address.
pub(crate) fn v4_part(a: &[u8; 16]) -> [u8; 4] {
    [a[12], a[13], a[14], a[15]]
}

/// A firewall mark as a template's virtual address (IPVS stores it in the address's first
/// 32 bits; IPv4 addresses here are IPv4-mapped).
pub(crate) fn mark_addr(mark: u32, v6: bool) -> [u8; 16] {
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::from(u128::from(mark) << 96))
    } else {
        IpAddr::V4(Ipv4Addr::from(mark))
    };
    to16(ip)
}
