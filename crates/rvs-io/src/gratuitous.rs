//! Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) for addresses a VRRP
//! master takes over, built as whole Ethernet frames for a send-only
//! [`PacketSocket`](crate::PacketSocket) (`PacketSocket::open_tx`).

use std::net::{Ipv4Addr, Ipv6Addr};

use rvs_wire::{arp, ethernet, icmpv6, ip, ipv6};

const BROADCAST: [u8; 6] = [0xff; 6];
/// Ethernet address of ff02::1 (all nodes).
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const MIN_FRAME: usize = 60;
/// ARP hardware type of Ethernet.
const ARPHRD_ETHER: u16 = 1;
/// ICMPv6 neighbour advertisement (RFC 4861).
const TYPE_NEIGHBOR_ADVERT: u8 = 136;
/// Neighbour advertisement flags: override.
const NA_FLAG_OVERRIDE: u8 = 0x20;
/// Neighbour discovery option: target link-layer address, 1 unit of 8 bytes.
const OPT_TARGET_LLADDR: [u8; 2] = [2, 1];
/// Neighbour advertisement: ICMPv6 header, target address, link-layer address option.
const NA_LEN: usize = icmpv6::HEADER_LEN + 16 + 8;

/// Writes the Ethernet header at the start of `f` (at least 14 bytes long).
fn put_ethernet(f: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) -> rvs_wire::Result<()> {
    f[12..ethernet::HEADER_LEN].copy_from_slice(&ethertype.to_be_bytes());
    let mut eth = ethernet::Frame::new_checked(f)?;
    eth.set_dst_addr(dst);
    eth.set_src_addr(src);
    Ok(())
}

fn build_garp(mac: [u8; 6], ip: Ipv4Addr) -> rvs_wire::Result<Vec<u8>> {
    let mut f = vec![0u8; MIN_FRAME];
    put_ethernet(&mut f, BROADCAST, mac, ethernet::ETHERTYPE_ARP)?;
    let a = &mut f[ethernet::HEADER_LEN..ethernet::HEADER_LEN + arp::PACKET_LEN];
    a[0..2].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
    a[2..4].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
    a[4] = 6;
    a[5] = 4;
    let mut p = arp::Packet::new_checked(a)?;
    p.set_operation(arp::OP_REQUEST);
    p.set_sender(mac, ip.octets());
    p.set_target(BROADCAST, ip.octets());
    Ok(f)
}

fn build_na(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> rvs_wire::Result<Vec<u8>> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN + NA_LEN];
    put_ethernet(&mut f, ALL_NODES_MAC, mac, ethernet::ETHERTYPE_IPV6)?;
    let (h, icmp) = f[ethernet::HEADER_LEN..].split_at_mut(ipv6::HEADER_LEN);
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(NA_LEN as u16).to_be_bytes());
    h[6] = ip::ICMPV6;
    h[7] = 255;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&ALL_NODES.octets());
    icmp[0] = TYPE_NEIGHBOR_ADVERT;
    icmp[4] = NA_FLAG_OVERRIDE;
    let body = &mut icmp[icmpv6::HEADER_LEN..];
    body[..16].copy_from_slice(&target.octets());
    body[16..18].copy_from_slice(&OPT_TARGET_LLADDR);
    body[18..24].copy_from_slice(&mac);
    icmpv6::Packet::new_checked(icmp)?.fill_checksum(src.octets(), ALL_NODES.octets());
    Ok(f)
}

/// A gratuitous ARP request for `ip` from `mac` (sender and target protocol address both
/// `ip`, to the broadcast address), padded to the Ethernet minimum.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    // The buffer is laid out for the views above, so building cannot fail.
    build_garp(mac, ip).unwrap_or_default()
}

/// An unsolicited neighbour advertisement (override flag set) for `target` from `src` (the
/// interface's link-local address) to all nodes, with the target link-layer address option.
pub fn unsolicited_na_frame(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    // The buffer is laid out for the views above, so building cannot fail.
    build_na(mac, src, target).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
