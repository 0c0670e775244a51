//! Frame parsing for the data plane: Ethernet (VLAN tags skipped), IPv4/IPv6, and the L4 ports.

use rvs_wire::{ethernet, ip, ipv4, ipv6, sctp, tcp, udp, WireError};

use crate::flow::mapped;
use crate::nat::Layout;
use crate::verdict::DropReason;

/// The network-layer facts of a frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed {
    pub(crate) lay: Layout,
    pub(crate) src: [u8; 16],
    pub(crate) dst: [u8; 16],
    /// L3 length (IPv4 total length, IPv6 40 + payload length), as IPVS counts bytes.
    pub(crate) ip_len: u32,
    pub(crate) ttl: u8,
    pub(crate) fragment: bool,
}

/// Ports of a TCP, UDP or SCTP packet, and what its state machine needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    /// TCP: the flags byte. SCTP: IPVS's chunk event (`sctp_event::event`). UDP: 0.
    pub(crate) flags: u8,
}

fn reason(e: WireError) -> DropReason {
    match e {
        WireError::Truncated => DropReason::Truncated,
        WireError::Malformed => DropReason::Malformed,
    }
}

/// Parses the Ethernet and IP headers. `Ok(None)` for frames that are not IP.
pub(crate) fn parse(frame: &[u8]) -> Result<Option<Parsed>, DropReason> {
    let eth = ethernet::Frame::new_checked(frame).map_err(reason)?;
    let l3 = eth.l3_offset();
    let body = frame.get(l3..).ok_or(DropReason::Truncated)?;
    match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => {
            let p = ipv4::Packet::new_checked(body).map_err(reason)?;
            let total = p.total_len() as usize;
            Ok(Some(Parsed {
                lay: Layout {
                    v6: false,
                    l3,
                    l4: l3 + p.header_len(),
                    end: l3 + total,
                    proto: p.protocol(),
                },
                src: mapped(p.src_octets()),
                dst: mapped(p.dst_octets()),
                ip_len: total as u32,
                ttl: p.ttl(),
                fragment: p.is_fragment(),
            }))
        }
        ethernet::ETHERTYPE_IPV6 => {
            let p = ipv6::Packet::new_checked(body).map_err(reason)?;
            let total = p.total_len();
            Ok(Some(Parsed {
                lay: Layout {
                    v6: true,
                    l3,
                    l4: l3 + p.upper_offset(),
                    end: l3 + total,
                    proto: p.upper_protocol(),
                },
                src: p.src_octets(),
                dst: p.dst_octets(),
                ip_len: total as u32,
                ttl: p.hop_limit(),
                fragment: p.is_fragment(),
            }))
        }
        _ => Ok(None),
    }
}

/// Reads ports (and TCP flags, or the SCTP event) of a TCP, UDP or SCTP packet.
pub(crate) fn ports(frame: &[u8], p: &Parsed) -> Result<Ports, DropReason> {
    let b = frame
        .get(p.lay.l4..p.lay.end)
        .ok_or(DropReason::Truncated)?;
    match p.lay.proto {
        ip::TCP => {
            let t = tcp::Packet::new_checked(b).map_err(reason)?;
            Ok(Ports {
                sport: t.src_port(),
                dport: t.dst_port(),
                flags: t.flags().0,
            })
        }
        ip::SCTP => {
            let s = sctp::Packet::new_checked(b).map_err(reason)?;
            Ok(Ports {
                sport: s.src_port(),
                dport: s.dst_port(),
                flags: crate::sctp_event::event(&s),
            })
        }
        _ => {
            let u = udp::Packet::new_checked(b).map_err(reason)?;
            Ok(Ports {
                sport: u.src_port(),
                dport: u.dst_port(),
                flags: 0,
            })
        }
    }
}
