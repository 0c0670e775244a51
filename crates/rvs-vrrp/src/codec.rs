//! VRRP advertisement wire format: v2 (RFC 3768, IPv4, with the 8-byte authentication field)
//! and v3 (RFC 5798, IPv4 and IPv6, centisecond intervals, pseudo-header checksum).
//!
//! The codec works on the VRRP message alone (what follows the IP header, or the AH header).
//! The IP source and destination are passed in as [`IpContext`] because v3 checksums cover
//! them and because they decide the address family of the address list.

use crate::error::{EmitError, ParseError};
use rvs_wire::checksum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// IP protocol number of IPsec AH (keepalived's `auth_type AH`).
pub const IPPROTO_AH: u8 = 51;
/// TTL / hop limit every VRRP advert is sent with and (for multicast) must arrive with.
pub const VRRP_TTL: u8 = 255;
/// IPv4 multicast group of VRRP (224.0.0.18).
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP (ff02::12).
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Length of the fixed VRRP header (both versions).
pub const HEADER_LEN: usize = 8;
/// Length of the v2 authentication data field.
pub const AUTH_LEN: usize = 8;
/// Most addresses one advert can carry (the count field is 8 bits).
pub const MAX_ADDRS: usize = 255;
/// Largest v2 advertisement interval, in seconds (8-bit field).
pub const MAX_INTERVAL_V2_SECS: u16 = 255;
/// Largest v3 advertisement interval, in centiseconds (12-bit field).
pub const MAX_INTERVAL_V3_CENTIS: u16 = 0x0fff;
/// The VRRP packet type of an advertisement.
pub const TYPE_ADVERTISEMENT: u8 = 1;

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// VRRP version 2 (RFC 3768).
    V2,
    /// VRRP version 3 (RFC 5798).
    V3,
}

impl Version {
    /// The number carried in the version nibble.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// The v2 authentication of an advert (always [`Auth::None`] in v3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0: no authentication (the data field is sent as zeros).
    None,
    /// Type 1: simple text password, 8 bytes zero padded.
    Pass([u8; AUTH_LEN]),
    /// Type 2: IP authentication header (keepalived's AH); the data field is zero and the
    /// authentication is in the AH header before the VRRP message.
    Ah,
}

impl Auth {
    /// The auth type number of RFC 2338/3768.
    pub fn type_number(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Pass(_) => 1,
            Auth::Ah => 2,
        }
    }

    /// A PASS authentication from a password as keepalived stores it: the first 8 bytes,
    /// zero padded.
    pub fn pass(password: &str) -> Auth {
        Auth::Pass(auth_key(password))
    }
}

/// A password as keepalived keeps it for PASS and AH: its first 8 bytes, zero padded.
pub(crate) fn auth_key(password: &str) -> [u8; AUTH_LEN] {
    let mut key = [0u8; AUTH_LEN];
    for (k, b) in key.iter_mut().zip(password.as_bytes()) {
        *k = *b;
    }
    key
}

/// The IP addresses around a VRRP message (needed for the v3 checksum and the address family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpContext {
    /// IP source address.
    pub src: IpAddr,
    /// IP destination address (the multicast group or a unicast peer).
    pub dst: IpAddr,
}

/// A decoded VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advert {
    /// Protocol version.
    pub version: Version,
    /// Virtual router identifier (1-255).
    pub vrid: u8,
    /// Sender priority (0 = stop, 255 = address owner).
    pub priority: u8,
    /// Advertisement interval: seconds in v2, centiseconds in v3.
    pub interval: u16,
    /// Authentication (v2 only).
    pub auth: Auth,
    /// The virtual addresses, all of the family of the IP header.
    pub addrs: Vec<IpAddr>,
}

impl Advert {
    /// The advertisement interval as a duration.
    pub fn interval_duration(&self) -> Duration {
        interval_to_duration(self.version, self.interval)
    }

    /// Length of the encoded message for addresses of the given family.
    pub fn encoded_len(&self, ipv6: bool) -> usize {
        encoded_len(self.version, self.addrs.len(), ipv6)
    }

    /// Encodes the message, with its checksum, for the IP header `ctx`.
    pub fn emit(&self, ctx: &IpContext) -> Result<Vec<u8>, EmitError> {
        let ipv6 = check_family(ctx)?;
        if self.version == Version::V2 && ipv6 {
            return Err(EmitError::V2OverIpv6);
        }
        if self.addrs.len() > MAX_ADDRS {
            return Err(EmitError::TooManyAddresses(self.addrs.len()));
        }
        if self.addrs.iter().any(|a| a.is_ipv6() != ipv6) {
            return Err(EmitError::AddressFamily);
        }
        let max = match self.version {
            Version::V2 => MAX_INTERVAL_V2_SECS,
            Version::V3 => MAX_INTERVAL_V3_CENTIS,
        };
        if self.interval > max {
            return Err(EmitError::IntervalOutOfRange(self.interval));
        }
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(EmitError::AuthInV3);
        }
        let mut out = Vec::with_capacity(self.encoded_len(ipv6));
        out.push((self.version.number() << 4) | TYPE_ADVERTISEMENT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(self.addrs.len() as u8);
        match self.version {
            Version::V2 => {
                out.push(self.auth.type_number());
                out.push(self.interval as u8);
            }
            Version::V3 => out.extend_from_slice(&(self.interval & 0x0fff).to_be_bytes()),
        }
        out.extend_from_slice(&[0, 0]);
        for a in &self.addrs {
            match a {
                IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
                IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
            }
        }
        if self.version == Version::V2 {
            match self.auth {
                Auth::Pass(data) => out.extend_from_slice(&data),
                Auth::None | Auth::Ah => out.extend_from_slice(&[0; AUTH_LEN]),
            }
        }
        let sum = message_checksum(self.version, &out, ctx.src, ctx.dst);
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(out)
    }

    /// Decodes and checks a message received in the IP header `ctx`: version, type, exact
    /// length, address family and checksum. A v3 IPv4 message whose checksum only matches
    /// with the multicast group as destination is accepted too (keepalived's pre-2.0.x unicast
    /// checksum, which it still accepts for compatibility).
    pub fn parse(bytes: &[u8], ctx: &IpContext) -> Result<Advert, ParseError> {
        let ipv6 = check_family(ctx).map_err(|_| ParseError::AddressFamily)?;
        if bytes.len() < HEADER_LEN {
            return Err(ParseError::Truncated(bytes.len()));
        }
        let version = match bytes[0] >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            other => return Err(ParseError::Version(other)),
        };
        let kind = bytes[0] & 0x0f;
        if kind != TYPE_ADVERTISEMENT {
            return Err(ParseError::Type(kind));
        }
        if version == Version::V2 && ipv6 {
            return Err(ParseError::V2OverIpv6);
        }
        let count = bytes[3] as usize;
        let expected = encoded_len(version, count, ipv6);
        if bytes.len() != expected {
            return Err(ParseError::Length {
                got: bytes.len(),
                expected,
            });
        }
        if !checksum_ok(version, bytes, ctx, ipv6) {
            return Err(ParseError::Checksum);
        }
        let (interval, auth) = match version {
            Version::V2 => {
                let data_at = HEADER_LEN + count * 4;
                let mut data = [0u8; AUTH_LEN];
                data.copy_from_slice(&bytes[data_at..data_at + AUTH_LEN]);
                let auth = match bytes[4] {
                    0 => Auth::None,
                    1 => Auth::Pass(data),
                    2 => Auth::Ah,
                    other => return Err(ParseError::AuthType(other)),
                };
                (u16::from(bytes[5]), auth)
            }
            Version::V3 => (
                u16::from_be_bytes([bytes[4], bytes[5]]) & 0x0fff,
                Auth::None,
            ),
        };
        let alen = if ipv6 { 16 } else { 4 };
        let addrs = bytes[HEADER_LEN..HEADER_LEN + count * alen]
            .chunks_exact(alen)
            .map(|c| {
                if ipv6 {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(c);
                    IpAddr::V6(Ipv6Addr::from(o))
                } else {
                    IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                }
            })
            .collect();
        Ok(Advert {
            version,
            vrid: bytes[1],
            priority: bytes[2],
            interval,
            auth,
            addrs,
        })
    }
}

/// An interval field value as a duration (seconds in v2, centiseconds in v3).
pub fn interval_to_duration(version: Version, interval: u16) -> Duration {
    match version {
        Version::V2 => Duration::from_secs(u64::from(interval)),
        Version::V3 => Duration::from_millis(u64::from(interval) * 10),
    }
}

/// Length of a message of `version` carrying `count` addresses.
pub fn encoded_len(version: Version, count: usize, ipv6: bool) -> usize {
    let alen = if ipv6 { 16 } else { 4 };
    let auth = if version == Version::V2 { AUTH_LEN } else { 0 };
    HEADER_LEN + count * alen + auth
}

/// How many addresses fit into one advert on a link of `mtu` bytes (at most 255), counting the
/// IP header (and the AH header for v2 with AH) as keepalived does.
pub fn max_addrs_for_mtu(mtu: usize, version: Version, ipv6: bool, ah: bool) -> usize {
    let ip = if ipv6 { 40 } else { 20 };
    let ah_len = if ah && !ipv6 { crate::ah::AH_LEN } else { 0 };
    let fixed = ip + ah_len + encoded_len(version, 0, ipv6);
    let alen = if ipv6 { 16 } else { 4 };
    (mtu.saturating_sub(fixed) / alen).min(MAX_ADDRS)
}

/// Whether `src` and `dst` are IPv6 (`None`: of different families).
fn is_ipv6(src: IpAddr, dst: IpAddr) -> Option<bool> {
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Some(false),
        (IpAddr::V6(_), IpAddr::V6(_)) => Some(true),
        _ => None,
    }
}

fn check_family(ctx: &IpContext) -> Result<bool, EmitError> {
    is_ipv6(ctx.src, ctx.dst).ok_or(EmitError::AddressFamily)
}

/// The checksum field value for `msg` (whose checksum field is zero or is skipped): v2 over the
/// message alone, v3 over the pseudo-header and the message.
fn message_checksum(version: Version, msg: &[u8], src: IpAddr, dst: IpAddr) -> u16 {
    let mut acc = match version {
        Version::V2 => 0,
        Version::V3 => pseudo_sum(src, dst, msg.len()),
    };
    acc = checksum::add_bytes(acc, &msg[..6]);
    acc = checksum::add_bytes(acc, &msg[8..]);
    !checksum::fold(acc)
}

fn pseudo_sum(src: IpAddr, dst: IpAddr, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            checksum::pseudo_header_v4(s.octets(), d.octets(), IPPROTO_VRRP, len as u32)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            checksum::pseudo_header_v6(s.octets(), d.octets(), IPPROTO_VRRP, len as u32)
        }
        _ => 0,
    }
}

fn checksum_ok(version: Version, bytes: &[u8], ctx: &IpContext, ipv6: bool) -> bool {
    let verify = |dst: IpAddr| {
        let acc = match version {
            Version::V2 => 0,
            Version::V3 => pseudo_sum(ctx.src, dst, bytes.len()),
        };
        checksum::fold(checksum::add_bytes(acc, bytes)) == 0xffff
    };
    if verify(ctx.dst) {
        return true;
    }
    version == Version::V3 && !ipv6 && ctx.dst != IpAddr::V4(MCAST_V4) && verify(MCAST_V4.into())
}

/// The IP header fields of a received advert that VRRP rules constrain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpFields {
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// IP protocol / next header carrying the message (112, or 51 for AH).
    pub protocol: u8,
}

/// Why the IP header of a received advert is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpFieldError {
    /// The TTL / hop limit is not 255 (the sender is not on the link).
    #[error("ttl/hop limit {0}, expected 255")]
    Ttl(u8),
    /// The protocol is not VRRP (or AH over IPv4).
    #[error("ip protocol {0} is not VRRP")]
    Protocol(u8),
    /// Source and destination are of different families.
    #[error("source and destination address families differ")]
    Family,
    /// A multicast advert not sent to the VRRP group.
    #[error("destination {0} is not the VRRP multicast group")]
    Destination(IpAddr),
}

/// Checks the IP header fields of a received advert as RFC 3768 7.1 / RFC 5798 7.1 and
/// keepalived do: TTL/hop limit 255 (skipped for unicast peers, as keepalived does, since a
/// routed unicast peer arrives with a lower TTL), protocol 112 (or AH over IPv4), and for
/// multicast operation the destination is the VRRP group.
pub fn validate_ip_fields(fields: &IpFields, unicast: bool) -> Result<(), IpFieldError> {
    let ipv6 = is_ipv6(fields.src, fields.dst).ok_or(IpFieldError::Family)?;
    let proto_ok = fields.protocol == IPPROTO_VRRP || (!ipv6 && fields.protocol == IPPROTO_AH);
    if !proto_ok {
        return Err(IpFieldError::Protocol(fields.protocol));
    }
    if !unicast {
        if fields.ttl != VRRP_TTL {
            return Err(IpFieldError::Ttl(fields.ttl));
        }
        let group: IpAddr = if ipv6 {
            MCAST_V6.into()
        } else {
            MCAST_V4.into()
        };
        if fields.dst != group {
            return Err(IpFieldError::Destination(fields.dst));
        }
    }
    Ok(())
}
