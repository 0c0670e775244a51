//! IP protocol numbers shared by IPv4 and IPv6.

/// IPv6 hop-by-hop options extension header.
pub const HOP_BY_HOP: u8 = 0;
/// ICMP for IPv4.
pub const ICMP: u8 = 1;
/// TCP.
pub const TCP: u8 = 6;
/// UDP.
pub const UDP: u8 = 17;
/// IPv6 routing extension header.
pub const IPV6_ROUTING: u8 = 43;
/// IPv6 fragment extension header.
pub const IPV6_FRAGMENT: u8 = 44;
/// Authentication header.
pub const AH: u8 = 51;
/// ICMP for IPv6.
pub const ICMPV6: u8 = 58;
/// IPv6 "no next header".
pub const IPV6_NO_NEXT: u8 = 59;
/// IPv6 destination options extension header.
pub const IPV6_DEST_OPTS: u8 = 60;
/// SCTP.
pub const SCTP: u8 = 132;
