//! Error types of the codec and the configuration.

use std::net::IpAddr;

/// Why bytes are not a valid VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the fixed header.
    #[error("message too short ({0} bytes)")]
    Truncated(usize),
    /// Version nibble other than 2 or 3.
    #[error("unsupported VRRP version {0}")]
    Version(u8),
    /// Type nibble other than 1 (advertisement).
    #[error("unsupported VRRP packet type {0}")]
    Type(u8),
    /// Length does not match the address count.
    #[error("length {got} does not match the address count (expected {expected})")]
    Length {
        /// Bytes received.
        got: usize,
        /// Bytes the header announces.
        expected: usize,
    },
    /// Bad checksum.
    #[error("bad VRRP checksum")]
    Checksum,
    /// v2 authentication type other than 0, 1, 2.
    #[error("unknown authentication type {0}")]
    AuthType(u8),
    /// VRRPv2 over IPv6 is not supported.
    #[error("VRRPv2 over IPv6 is not supported")]
    V2OverIpv6,
    /// IP source and destination of different families.
    #[error("IP source and destination address families differ")]
    AddressFamily,
}

/// Why an advert cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// More than 255 addresses.
    #[error("{0} addresses do not fit the 8-bit count")]
    TooManyAddresses(usize),
    /// An address of another family than the IP header.
    #[error("address family mismatch")]
    AddressFamily,
    /// Interval beyond the field (255 s in v2, 4095 cs in v3).
    #[error("advertisement interval {0} out of range")]
    IntervalOutOfRange(u16),
    /// v3 has no authentication.
    #[error("VRRPv3 carries no authentication")]
    AuthInV3,
    /// VRRPv2 over IPv6 is not supported.
    #[error("VRRPv2 over IPv6 is not supported")]
    V2OverIpv6,
}

/// Why an instance configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `virtual_router_id` 0.
    #[error("virtual_router_id must be 1-255")]
    Vrid,
    /// `priority` 0.
    #[error("priority must be 1-255")]
    Priority,
    /// Interval zero or beyond what the version can carry.
    #[error("advert_int {0:?} out of range for this VRRP version")]
    Interval(std::time::Duration),
    /// More than 255 advertised addresses.
    #[error("{0} virtual addresses do not fit one advert (255 at most)")]
    TooManyAddresses(usize),
    /// An address of another family than the instance.
    #[error("address {0} is not of the instance's address family")]
    Family(IpAddr),
    /// VRRPv2 over IPv6.
    #[error("VRRPv2 over IPv6 is not supported; use version 3")]
    V2OverIpv6,
    /// Authentication configured with v3.
    #[error("VRRPv3 has no authentication")]
    AuthInV3,
    /// Unknown `auth_type`.
    #[error("unknown auth_type {0}")]
    AuthType(String),
    /// No source address known (no `unicast_src_ip`/`mcast_src_ip` and none given).
    #[error("no source address for the instance")]
    NoSource,
    /// No virtual address with v3 (keepalived requires one).
    #[error("VRRPv3 requires at least one virtual address")]
    NoVip,
}
