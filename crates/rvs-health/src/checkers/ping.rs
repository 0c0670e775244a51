//! PING_CHECK: one ICMP echo request; an echo reply with our sequence number and
//! payload must arrive within `connect_timeout`. Uses an unprivileged ICMP datagram
//! socket when the kernel allows it (`net.ipv4.ping_group_range`), else a raw socket.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

use rvs_wire::checksum::checksum;
use rvs_wire::ipv4::Packet;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;

use crate::net::within;
use crate::result::CheckResult;
use crate::spec::ConnectOpts;

const PAYLOAD: &[u8; 16] = b"rvs-health-ping!";

fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(PAYLOAD);
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Whether `pkt` (ICMP, possibly behind an IPv4 header) is our echo reply.
fn is_our_reply(pkt: &[u8], v6: bool, seq: u16) -> bool {
    let icmp = if !v6 && pkt.first().is_some_and(|b| b >> 4 == 4) {
        match Packet::new_checked(pkt) {
            Ok(ip) => &pkt[ip.header_len()..usize::from(ip.total_len())],
            Err(_) => return false,
        }
    } else {
        pkt
    };
    let reply_type = if v6 { 129 } else { 0 };
    icmp.len() >= 8 + PAYLOAD.len()
        && icmp[0] == reply_type
        && icmp[1] == 0
        && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
        && &icmp[8..8 + PAYLOAD.len()] == PAYLOAD
}

fn open_socket(v6: bool) -> io::Result<Socket> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => Ok(s),
        Err(_) => Socket::new(domain, Type::RAW, Some(proto)),
    }
}

fn connected_socket(conn: &ConnectOpts) -> io::Result<UdpSocket> {
    let v6 = conn.connect_ip.is_ipv6();
    let sock = open_socket(v6)?;
    if let Some(ip) = conn.bindto {
        sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    sock.connect(&SockAddr::from(SocketAddr::new(conn.connect_ip, 0)))?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(std::net::UdpSocket::from(sock))
}

pub(super) async fn run(conn: &ConnectOpts) -> CheckResult {
    static SEQ: AtomicU16 = AtomicU16::new(1);
    let target: IpAddr = conn.connect_ip;
    let fail = |what: String| CheckResult::fail(format!("PING {target}: {what}"));
    let v6 = target.is_ipv6();
    let sock = match connected_socket(conn) {
        Ok(s) => s,
        Err(e) => return fail(format!("opening ICMP socket: {e}")),
    };
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let id = (std::process::id() as u16) ^ 0x5256;
    let request = echo_request(v6, id, seq);
    if let Err(e) = within(conn.connect_timeout, "sending echo", sock.send(&request)).await {
        return fail(e.to_string());
    }
    let deadline = tokio::time::Instant::now() + conn.connect_timeout;
    let mut buf = vec![0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match within(left, "waiting for echo reply", sock.recv(&mut buf)).await {
            Ok(n) if is_our_reply(&buf[..n], v6, seq) => {
                return CheckResult::pass(format!("PING {target}: echo reply"))
            }
            Ok(_) => continue,
            Err(e) => return fail(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checksum_verifies() {
        let p = echo_request(false, 7, 9);
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn reply_matching() {
        let mut reply = echo_request(false, 7, 9);
        reply[0] = 0;
        assert!(is_our_reply(&reply, false, 9));
        assert!(!is_our_reply(&reply, false, 10));
        let mut with_ip = vec![0x45, 0];
        with_ip.extend_from_slice(&((20 + reply.len()) as u16).to_be_bytes());
        with_ip.extend_from_slice(&[0; 16]);
        with_ip.extend_from_slice(&reply);
        assert!(is_our_reply(&with_ip, false, 9));
        // A header whose length runs past the packet hides no reply.
        assert!(!is_our_reply(&with_ip[..30], false, 9));
        assert!(!is_our_reply(&echo_request(false, 7, 9), false, 9));
    }
}
