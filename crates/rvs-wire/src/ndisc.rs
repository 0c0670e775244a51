//! Neighbour advertisements of IPv6 neighbour discovery (RFC 4861 section 4.4), with the target
//! link-layer address option (section 4.6.1): an ICMPv6 message of type 136.

use crate::checksum;
use crate::field::{read_array, room, write_u16};
use crate::icmpv6;
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Field = 2..4;
    /// Router, solicited and override flags (high bits), then 29 reserved bits.
    pub(super) const FLAGS: usize = 4;
    pub(super) const TARGET: Field = 8..24;
    pub(super) const OPTIONS: usize = 24;
    /// Within an option: type, length in units of 8 bytes, link-layer address.
    pub(super) const OPT_TYPE: usize = 0;
    pub(super) const OPT_LEN: usize = 1;
    pub(super) const OPT_LLADDR: Field = 2..8;
}

/// ICMPv6 type of a neighbour advertisement.
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
/// Router flag.
pub const FLAG_ROUTER: u8 = 0x80;
/// Solicited flag.
pub const FLAG_SOLICITED: u8 = 0x40;
/// Override flag.
pub const FLAG_OVERRIDE: u8 = 0x20;
/// Option type of the target link-layer address.
pub const OPT_TARGET_LLADDR: u8 = 2;
/// Length of an advertisement without options.
pub const NA_LEN: usize = field::OPTIONS;
/// Length of an Ethernet link-layer address option.
const LLADDR_OPT_LEN: usize = field::OPT_LLADDR.end;

/// A neighbour advertisement's fields, to parse from a checked ICMPv6 message and to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvert {
    /// Flag bits ([`FLAG_ROUTER`], [`FLAG_SOLICITED`], [`FLAG_OVERRIDE`]).
    pub flags: u8,
    /// Target address.
    pub target_addr: [u8; 16],
    /// The target link-layer (Ethernet) address option, if any.
    pub target_lladdr: Option<[u8; 6]>,
}

impl NeighborAdvert {
    /// The fields of a neighbour advertisement; `Malformed` for another message type, a
    /// non-zero code or an option of length 0, `Truncated` when the message or an option is
    /// cut short. The first Ethernet-sized target link-layer address option is taken.
    pub fn parse<T: AsRef<[u8]>>(p: &icmpv6::Packet<T>) -> Result<NeighborAdvert> {
        if p.msg_type() != TYPE_NEIGHBOR_ADVERT || p.code() != 0 {
            return Err(WireError::Malformed);
        }
        // The payload starts right after the 8-byte ICMPv6 header, where the target starts.
        let body = p.payload();
        let at = field::TARGET.start - icmpv6::HEADER_LEN;
        let target = body
            .get(at..at + field::TARGET.len())
            .ok_or(WireError::Truncated)?;
        let mut out = NeighborAdvert {
            flags: (p.rest_of_header() >> 24) as u8,
            target_addr: read_array(target, 0),
            target_lladdr: None,
        };
        let mut opts = &body[field::OPTIONS - icmpv6::HEADER_LEN..];
        while !opts.is_empty() {
            let len = usize::from(*opts.get(field::OPT_LEN).ok_or(WireError::Truncated)?) * 8;
            if len == 0 {
                return Err(WireError::Malformed);
            }
            let opt = opts.get(..len).ok_or(WireError::Truncated)?;
            if opt[field::OPT_TYPE] == OPT_TARGET_LLADDR
                && len == LLADDR_OPT_LEN
                && out.target_lladdr.is_none()
            {
                out.target_lladdr = Some(read_array(opt, field::OPT_LLADDR.start));
            }
            opts = &opts[len..];
        }
        Ok(out)
    }

    /// Length of the message `emit` writes: 24, or 32 with the link-layer address option.
    pub const fn buffer_len(&self) -> usize {
        if self.target_lladdr.is_some() {
            NA_LEN + LLADDR_OPT_LEN
        } else {
            NA_LEN
        }
    }

    /// Writes the whole ICMPv6 message at the start of `buf`, its checksum computed with the
    /// pseudo header of `src` -> `dst`. `Truncated` when `buf` is shorter than
    /// [`NeighborAdvert::buffer_len`].
    pub fn emit(&self, buf: &mut [u8], src: [u8; 16], dst: [u8; 16]) -> Result<()> {
        let len = self.buffer_len();
        let b = room(buf, len)?;
        b.fill(0);
        b[field::TYPE] = TYPE_NEIGHBOR_ADVERT;
        b[field::CODE] = 0;
        b[field::FLAGS] = self.flags;
        b[field::TARGET].copy_from_slice(&self.target_addr);
        if let Some(mac) = self.target_lladdr {
            let opt = &mut b[field::OPTIONS..];
            opt[field::OPT_TYPE] = OPT_TARGET_LLADDR;
            opt[field::OPT_LEN] = (LLADDR_OPT_LEN / 8) as u8;
            opt[field::OPT_LLADDR].copy_from_slice(&mac);
        }
        let acc = checksum::pseudo_header_v6(src, dst, crate::ip::ICMPV6, len as u32);
        let c = !checksum::fold(checksum::add_bytes(acc, b));
        write_u16(b, field::CHECKSUM.start, c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const TARGET: [u8; 16] = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

    #[test]
    fn unsolicited_override_advert() {
        let na = NeighborAdvert {
            flags: FLAG_OVERRIDE,
            target_addr: TARGET,
            target_lladdr: Some([2, 0, 0, 0, 0, 1]),
        };
        let mut b = [0u8; 32];
        na.emit(&mut b, SRC, ALL_NODES).unwrap();
        // fe80::1 -> ff02::1 for 2001:db8::100 at 02:00:00:00:00:01 (checksum 0x2764).
        assert_eq!(
            b,
            [
                136, 0, 0x27, 0x64, 0x20, 0, 0, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 1, 0, 2, 1, 2, 0, 0, 0, 0, 1,
            ]
        );
        let p = icmpv6::Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(SRC, ALL_NODES));
        assert_eq!(NeighborAdvert::parse(&p), Ok(na));
        assert_eq!(
            na.emit(&mut b[..31], SRC, ALL_NODES),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn without_option_and_rejects() {
        let na = NeighborAdvert {
            flags: FLAG_SOLICITED | FLAG_ROUTER,
            target_addr: TARGET,
            target_lladdr: None,
        };
        let mut b = [0u8; 40];
        na.emit(&mut b, SRC, ALL_NODES).unwrap();
        let p = icmpv6::Packet::new_checked(&b[..24]).unwrap();
        assert_eq!(NeighborAdvert::parse(&p), Ok(na));
        // An option of length 0, then one cut short.
        let p = icmpv6::Packet::new_checked(&b[..26]).unwrap();
        assert_eq!(NeighborAdvert::parse(&p), Err(WireError::Malformed));
        b[25] = 2;
        let p = icmpv6::Packet::new_checked(&b[..32]).unwrap();
        assert_eq!(NeighborAdvert::parse(&p), Err(WireError::Truncated));
        let p = icmpv6::Packet::new_checked(&b[..20]).unwrap();
        assert_eq!(NeighborAdvert::parse(&p), Err(WireError::Truncated));
        b[0] = 135;
        let p = icmpv6::Packet::new_checked(&b[..24]).unwrap();
        assert_eq!(NeighborAdvert::parse(&p), Err(WireError::Malformed));
    }
}
