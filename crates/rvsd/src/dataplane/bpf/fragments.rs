//! Datagrams rvsd reassembles from the fragments the program passes up. The program may hold
//! their connection: a NAT real server's fragmented reply to a request the program scheduled,
//! or a fragmented datagram of a flow whose other datagrams it forwards. Before the engine sees
//! such a datagram it is given that connection, as a sync backup is given its master's, so it
//! rewrites the datagram as the program rewrites the rest of the flow.

use std::net::IpAddr;

use rvs_bpf::maps::{Addr, ConnKey};
use rvs_bpf::Datapath;
use rvs_engine::{Engine, Millis};
use rvs_wire::{ethernet, ip, ipv4, ipv6};

use super::listing::monotonic_ns;

/// Least time a connection taken from the program keeps in the engine.
const MIN_TIMEOUT_MS: u64 = 1_000;

/// Gives `engine` the program's connection of the reassembled datagram `frame`, if there is one.
pub(super) fn adopt_connection(dp: &Datapath, engine: &Engine, now: Millis, frame: &[u8]) {
    let Some(key) = tuple_of(frame) else {
        return;
    };
    let (key, conn) = match dp.connection_for(&key) {
        Ok(Some(found)) => found,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!("looking up a reassembled datagram's connection: {e}");
            return;
        }
    };
    let left_ms = (conn.expires_ns.saturating_sub(monotonic_ns()) / 1_000_000)
        .clamp(MIN_TIMEOUT_MS, u64::from(u32::MAX)) as u32;
    let Some(rec) = rvs_bpf::conn_record(&key, &conn, left_ms) else {
        return;
    };
    if let Err(e) = engine.sync_import(now, &rec) {
        tracing::debug!("taking the program's connection of a reassembled datagram: {e}");
    }
}

/// The TCP or UDP tuple of a whole (not fragmented) packet, as the program keys connections.
fn tuple_of(frame: &[u8]) -> Option<ConnKey> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let body = frame.get(eth.l3_offset()..)?;
    let (src, dst, proto, l4): (IpAddr, IpAddr, u8, usize) = match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => {
            let p = ipv4::Packet::new_checked(body).ok()?;
            let (src, dst) = (p.src_addr().into(), p.dst_addr().into());
            (src, dst, p.protocol(), p.header_len())
        }
        ethernet::ETHERTYPE_IPV6 => {
            let p = ipv6::Packet::new_checked(body).ok()?;
            let (src, dst) = (p.src_addr().into(), p.dst_addr().into());
            (src, dst, p.upper_protocol(), p.upper_offset())
        }
        _ => return None,
    };
    if proto != ip::TCP && proto != ip::UDP {
        return None;
    }
    let ports = body.get(l4..l4 + 4)?;
    Some(ConnKey {
        src: Addr::from(src),
        dst: Addr::from(dst),
        sport_be: u16::from_be_bytes([ports[0], ports[1]]).to_be(),
        dport_be: u16::from_be_bytes([ports[2], ports[3]]).to_be(),
        proto,
        pad: [0; 3],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_are_read_as_the_program_keys_them() {
        let mut frame = vec![0u8; 14 + 28];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut frame[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&28u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 2]);
        ip[16..20].copy_from_slice(&[192, 168, 1, 2]);
        ip[20..24].copy_from_slice(&[0x14, 0xe9, 0xa4, 0x10]);
        let c = rvs_wire::checksum::checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let key = tuple_of(&frame).expect("a UDP tuple");
        assert_eq!(key.src.ip(), "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(key.dst.ip(), "192.168.1.2".parse::<IpAddr>().unwrap());
        assert_eq!(u16::from_be(key.sport_be), 5353);
        assert_eq!(u16::from_be(key.dport_be), 42000);
        assert_eq!(key.proto, 17);
    }
}
