//! Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) for addresses a VRRP
//! master takes over, built as whole Ethernet frames for a send-only
//! [`PacketSocket`](crate::PacketSocket) (`PacketSocket::open_tx`).

use std::net::{Ipv4Addr, Ipv6Addr};

use rvs_wire::{arp, ethernet, ip, ipv6, ndisc};

const BROADCAST: [u8; 6] = [0xff; 6];
/// Ethernet address of ff02::1 (all nodes).
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const MIN_FRAME: usize = 60;

fn build_garp(mac: [u8; 6], ip: Ipv4Addr) -> rvs_wire::Result<Vec<u8>> {
    let mut f = vec![0u8; MIN_FRAME];
    let (eth, body) = f.split_at_mut(ethernet::HEADER_LEN);
    ethernet::Repr {
        dst: BROADCAST,
        src: mac,
        ethertype: ethernet::ETHERTYPE_ARP,
    }
    .emit(eth)?;
    arp::Repr {
        operation: arp::OP_REQUEST,
        sender_hardware_addr: mac,
        sender_protocol_addr: ip.octets(),
        target_hardware_addr: BROADCAST,
        target_protocol_addr: ip.octets(),
    }
    .emit(body)?;
    Ok(f)
}

fn build_na(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> rvs_wire::Result<Vec<u8>> {
    let na = ndisc::NeighborAdvert {
        flags: ndisc::FLAG_OVERRIDE,
        target_addr: target.octets(),
        target_lladdr: Some(mac),
    };
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN + na.buffer_len()];
    let (eth, rest) = f.split_at_mut(ethernet::HEADER_LEN);
    let (l3, icmp) = rest.split_at_mut(ipv6::HEADER_LEN);
    ethernet::Repr {
        dst: ALL_NODES_MAC,
        src: mac,
        ethertype: ethernet::ETHERTYPE_IPV6,
    }
    .emit(eth)?;
    ipv6::Repr {
        src_addr: src.octets(),
        dst_addr: ALL_NODES.octets(),
        next_header: ip::ICMPV6,
        payload_len: na.buffer_len() as u16,
        // RFC 4861 section 7.1.2: neighbour discovery messages carry hop limit 255.
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(l3)?;
    na.emit(icmp, src.octets(), ALL_NODES.octets())?;
    Ok(f)
}

/// A gratuitous ARP request for `ip` from `mac` (sender and target protocol address both
/// `ip`, to the broadcast address), padded to the Ethernet minimum.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    // The buffer is sized for the headers, so emitting cannot fail.
    build_garp(mac, ip).unwrap_or_default()
}

/// An unsolicited neighbour advertisement (override flag set) for `target` from `src` (the
/// interface's link-local address) to all nodes, with the target link-layer address option.
pub fn unsolicited_na_frame(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    // The buffer is sized for the headers, so emitting cannot fail.
    build_na(mac, src, target).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_wire::icmpv6;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    #[test]
    fn garp_is_a_broadcast_request_for_itself() {
        let f = garp_frame(MAC, Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(f.len(), 60);
        let eth = ethernet::Frame::new_checked(&f[..]).expect("ethernet");
        assert_eq!(eth.dst_addr(), BROADCAST);
        assert_eq!(eth.src_addr(), MAC);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        let a = arp::Packet::new_checked(eth.payload()).expect("arp");
        assert_eq!(a.hardware_type(), 1);
        assert_eq!(a.protocol_type(), 0x0800);
        assert_eq!(a.operation(), 1, "request");
        assert_eq!(&f[20..22], &[0, 1], "request on the wire");
        assert_eq!(a.sender_hardware_addr(), MAC);
        assert_eq!(&f[22..28], &MAC, "sender MAC on the wire");
        assert_eq!(&f[28..32], &[10, 0, 0, 100]);
        assert_eq!(&f[38..42], &[10, 0, 0, 100]);
        assert_eq!(a.sender_protocol_addr(), [10, 0, 0, 100]);
        assert_eq!(a.target_protocol_addr(), [10, 0, 0, 100]);
    }

    #[test]
    fn na_checksum_verifies() {
        let src: Ipv6Addr = "fe80::1".parse().expect("addr");
        let f = unsolicited_na_frame(MAC, src, "2001:db8::100".parse().expect("a"));
        let icmp = icmpv6::Packet::new_checked(&f[54..]).expect("icmpv6");
        assert_eq!(icmp.msg_type(), 136);
        assert!(icmp.verify_checksum(src.octets(), ALL_NODES.octets()));
        let other: Ipv6Addr = "fe80::2".parse().expect("addr");
        assert!(!icmp.verify_checksum(other.octets(), ALL_NODES.octets()));
    }

    /// The bytes the hand-written builders produced before rvs-wire built the frames.
    #[test]
    fn frames_are_byte_for_byte_unchanged() {
        let garp = garp_frame(MAC, Ipv4Addr::new(10, 0, 0, 100));
        let mut want = vec![
            255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 1, 8, 6, 0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0,
            0, 0, 1, 10, 0, 0, 100, 255, 255, 255, 255, 255, 255, 10, 0, 0, 100,
        ];
        want.resize(60, 0);
        assert_eq!(garp, want);
        let na = unsolicited_na_frame(
            MAC,
            "fe80::1".parse().expect("addr"),
            "2001:db8::100".parse().expect("addr"),
        );
        let want: [u8; 86] = [
            51, 51, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 134, 221, 96, 0, 0, 0, 0, 32, 58, 255, 254, 128,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 255, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 1, 136, 0, 39, 100, 32, 0, 0, 0, 32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
            2, 1, 2, 0, 0, 0, 0, 1,
        ];
        assert_eq!(na, want);
    }
}
