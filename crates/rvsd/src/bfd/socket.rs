//! BFD's sockets (RFC 5881): one receiving socket per family on UDP 3784 that reports each
//! packet's TTL (hop limit) and destination address, and one sending socket per session, bound to the session's source
//! address and a source port in 49152-65535, connected to the neighbour, sending with TTL 255.

use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{self as nsock, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use rvs_bfd::BFD_CONTROL_PORT;
use socket2::{Domain, Protocol, Socket, Type};

/// The first source port RFC 5881 allows.
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// A received datagram: its payload length, source, destination and TTL (hop limit).
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes of payload.
    pub len: usize,
    /// Who sent it.
    pub from: IpAddr,
    /// The address it was sent to (`None` when the kernel did not say).
    pub to: Option<IpAddr>,
    /// The TTL or hop limit it arrived with (0 when the kernel did not say).
    pub ttl: u8,
}

/// The receiving socket of one family, bound to the wildcard address on UDP 3784.
pub fn receiver(v6: bool) -> std::io::Result<UdpSocket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    // No SO_REUSEADDR: a second BFD daemon on this host (keepalived's) must be an error here,
    // not a silent split of the packets.
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    let any = if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    if v6 {
        s.set_only_v6(true)?;
    }
    s.bind(&SocketAddr::new(any, BFD_CONTROL_PORT).into())?;
    s.set_nonblocking(true)?;
    let udp: UdpSocket = s.into();
    if v6 {
        nsock::setsockopt(&udp, sockopt::Ipv6RecvHopLimit, &true)?;
        nsock::setsockopt(&udp, sockopt::Ipv6RecvPacketInfo, &true)?;
    } else {
        nsock::setsockopt(&udp, sockopt::Ipv4RecvTtl, &true)?;
        nsock::setsockopt(&udp, sockopt::Ipv4PacketInfo, &true)?;
    }
    Ok(udp)
}

/// Reads one datagram into `buf` without blocking; `None` when there is none.
pub fn receive(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Option<Received>> {
    let mut cmsg = nix::cmsg_space!(i32, nix::libc::in6_pktinfo);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = match nsock::recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(m) => m,
        Err(nix::errno::Errno::EAGAIN) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut ttl = 0u8;
    let mut to = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                    ttl = u8::try_from(t).unwrap_or(0);
                }
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    to = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        info.ipi_addr.s_addr,
                    ))));
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    to = Some(canonical(IpAddr::V6(Ipv6Addr::from(
                        info.ipi6_addr.s6_addr,
                    ))));
                }
                _ => {}
            }
        }
    }
    let from = msg.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|s| IpAddr::V4(s.ip()))
            .or_else(|| a.as_sockaddr_in6().map(|s| canonical(IpAddr::V6(s.ip()))))
    });
    let len = msg.bytes;
    Ok(from.map(|from| Received { len, from, to, ttl }))
}

/// An IPv4-mapped IPv6 address as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A session's sending socket: from `source` (or the kernel's choice) and a port in
/// 49152-65535 picked from `seed`, to `neighbor`:3784, with TTL `ttl`.
pub fn sender(
    neighbor: IpAddr,
    source: Option<IpAddr>,
    ttl: u8,
    seed: u32,
) -> std::io::Result<UdpSocket> {
    let v6 = neighbor.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if v6 {
        s.set_unicast_hops_v6(u32::from(ttl))?;
    } else {
        s.set_ttl_v4(u32::from(ttl))?;
    }
    let local = source.unwrap_or(if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let mut last = None;
    for k in 0..64u32 {
        let port =
            *SOURCE_PORTS.start() + ((seed.wrapping_add(k.wrapping_mul(7919))) % span) as u16;
        match s.bind(&SocketAddr::new(local, port).into()) {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    s.connect(&SocketAddr::new(neighbor, BFD_CONTROL_PORT).into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}
