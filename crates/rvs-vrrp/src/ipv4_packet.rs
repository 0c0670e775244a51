//! Whole IPv4 datagrams as a raw IPv4 socket delivers them: the IP header, keepalived's IPsec
//! AH header when `auth_type AH` is used, then the VRRP message.
//!
//! AH is parsed and reported (SPI, sequence number, ICV); [`crate::ah::AhSession::open`]
//! verifies it.

use crate::codec::{Advert, IpContext, IpFields, IPPROTO_AH, IPPROTO_VRRP};
use crate::error::ParseError;
use std::net::{IpAddr, Ipv4Addr};

pub use crate::ah::AH_LEN;

/// The IPsec AH header keepalived puts before a v2 advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AhHeader {
    /// Next header (112).
    pub next_header: u8,
    /// Payload length field (4 for a 96-bit ICV).
    pub payload_len: u8,
    /// Security parameter index (keepalived puts the sender's address there).
    pub spi: u32,
    /// Sequence number (anti-replay).
    pub seq: u32,
    /// Integrity check value: HMAC-MD5 truncated to 96 bits.
    pub icv: [u8; 12],
}

/// A received IPv4 VRRP datagram, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Advert {
    /// IP header fields (for [`crate::codec::validate_ip_fields`]).
    pub ip: IpFields,
    /// The AH header, if the datagram carried one.
    pub ah: Option<AhHeader>,
    /// The advert.
    pub advert: Advert,
}

/// Decodes an IPv4 datagram carrying a VRRP advert, directly or behind an AH header.
pub fn parse_ipv4_datagram(bytes: &[u8]) -> Result<Ipv4Advert, ParseError> {
    if bytes.len() < 20 {
        return Err(ParseError::Ipv4("shorter than an IPv4 header"));
    }
    if bytes[0] >> 4 != 4 {
        return Err(ParseError::Ipv4("not IPv4"));
    }
    let ihl = usize::from(bytes[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    if ihl < 20 || total < ihl || total > bytes.len() {
        return Err(ParseError::Ipv4("bad header or total length"));
    }
    let src = Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]);
    let dst = Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]);
    let ip = IpFields {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        ttl: bytes[8],
        protocol: bytes[9],
    };
    let payload = &bytes[ihl..total];
    let (ah, msg) = match ip.protocol {
        IPPROTO_VRRP => (None, payload),
        IPPROTO_AH => {
            if payload.len() < AH_LEN {
                return Err(ParseError::Ipv4("truncated AH header"));
            }
            let mut icv = [0u8; 12];
            icv.copy_from_slice(&payload[12..24]);
            let ah = AhHeader {
                next_header: payload[0],
                payload_len: payload[1],
                spi: u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
                seq: u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]),
                icv,
            };
            if ah.next_header != IPPROTO_VRRP {
                return Err(ParseError::Ipv4("AH does not carry VRRP"));
            }
            (Some(ah), &payload[AH_LEN..])
        }
        _ => return Err(ParseError::Ipv4("protocol is neither VRRP nor AH")),
    };
    let advert = Advert::parse(
        msg,
        &IpContext {
            src: ip.src,
            dst: ip.dst,
        },
    )?;
    Ok(Ipv4Advert { ip, ah, advert })
}
