//! Raw sockets for VRRP (IP protocol 112) on one interface: IPv4 joined to 224.0.0.18 and
//! IPv6 joined to ff02::12, TTL / hop limit 255, multicast loop off, bound to the device.
//! Sending picks the source address per packet (`IP_PKTINFO` / `IPV6_PKTINFO`); receiving
//! reports source, destination and TTL / hop limit so the caller can apply VRRP's checks.
//! An IPv4 socket for keepalived's `auth_type AH` ([`VrrpSocket::open_ah`]) receives IP
//! protocol 51 instead and sends whole datagrams built by the caller (`IP_HDRINCL`).
#![allow(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rvs_wire::ipv4;

use crate::error::IoError;
use crate::iface;
use crate::packet::setsockopt;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;
/// IP protocol number of IPsec AH.
const IPPROTO_AH: i32 = 51;
const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// What [`VrrpSocket::recv`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedAdvert {
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// IP protocol of the payload (112, or 51 when AH precedes it over IPv4).
    pub protocol: u8,
    /// Where the IP payload starts in the buffer (after the IPv4 header; 0 for IPv6).
    pub payload_offset: usize,
    /// Bytes in the buffer (for IPv4 the whole datagram, header included).
    pub len: usize,
}

/// A VRRP raw socket on one interface.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: OwnedFd,
    ifindex: u32,
    ipv6: bool,
}

impl AsRawFd for VrrpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for VrrpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl VrrpSocket {
    /// Opens a non-blocking socket on `ifname` for IPv4 (or IPv6), joined to the VRRP group.
    pub fn open(ifname: &str, ipv6: bool) -> Result<VrrpSocket, IoError> {
        VrrpSocket::open_protocol(ifname, ipv6, IPPROTO_VRRP)
    }

    /// Opens a non-blocking IPv4 socket on `ifname` for AH-authenticated VRRPv2: it receives
    /// IP protocol 51, joined to the VRRP group, and sends with
    /// [`VrrpSocket::send_datagram`].
    pub fn open_ah(ifname: &str) -> Result<VrrpSocket, IoError> {
        let s = VrrpSocket::open_protocol(ifname, false, IPPROTO_AH)?;
        let on: i32 = 1;
        setsockopt(
            s.fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_HDRINCL,
            &on,
            "setsockopt(IP_HDRINCL)",
        )?;
        Ok(s)
    }

    fn open_protocol(ifname: &str, ipv6: bool, protocol: i32) -> Result<VrrpSocket, IoError> {
        let ifindex = iface::ifindex(ifname)?;
        let family = if ipv6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                family,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                protocol,
            )
        };
        if raw < 0 {
            return Err(IoError::last_os("socket(SOCK_RAW, VRRP)"));
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut name = [0u8; libc::IFNAMSIZ];
        name[..ifname.len()].copy_from_slice(ifname.as_bytes());
        setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            &name,
            "setsockopt(SO_BINDTODEVICE)",
        )?;
        let ttl: i32 = 255;
        let off: i32 = 0;
        let on: i32 = 1;
        if ipv6 {
            let mreq = libc::ipv6_mreq {
                ipv6mr_multiaddr: libc::in6_addr {
                    s6_addr: VRRP_GROUP_V6.octets(),
                },
                ipv6mr_interface: ifindex,
            };
            let sol = libc::IPPROTO_IPV6;
            setsockopt(
                raw,
                sol,
                libc::IPV6_ADD_MEMBERSHIP,
                &mreq,
                "IPV6_JOIN_GROUP",
            )?;
            setsockopt(
                raw,
                sol,
                libc::IPV6_MULTICAST_HOPS,
                &ttl,
                "IPV6_MULTICAST_HOPS",
            )?;
            setsockopt(raw, sol, libc::IPV6_UNICAST_HOPS, &ttl, "IPV6_UNICAST_HOPS")?;
            setsockopt(
                raw,
                sol,
                libc::IPV6_MULTICAST_LOOP,
                &off,
                "IPV6_MULTICAST_LOOP",
            )?;
            let idx = ifindex as i32;
            setsockopt(raw, sol, libc::IPV6_MULTICAST_IF, &idx, "IPV6_MULTICAST_IF")?;
            setsockopt(raw, sol, libc::IPV6_RECVHOPLIMIT, &on, "IPV6_RECVHOPLIMIT")?;
            setsockopt(raw, sol, libc::IPV6_RECVPKTINFO, &on, "IPV6_RECVPKTINFO")?;
        } else {
            let mreq = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr {
                    s_addr: u32::from(VRRP_GROUP_V4).to_be(),
                },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: ifindex as i32,
            };
            let sol = libc::IPPROTO_IP;
            setsockopt(
                raw,
                sol,
                libc::IP_ADD_MEMBERSHIP,
                &mreq,
                "IP_ADD_MEMBERSHIP",
            )?;
            setsockopt(raw, sol, libc::IP_MULTICAST_IF, &mreq, "IP_MULTICAST_IF")?;
            setsockopt(raw, sol, libc::IP_MULTICAST_TTL, &ttl, "IP_MULTICAST_TTL")?;
            setsockopt(raw, sol, libc::IP_TTL, &ttl, "IP_TTL")?;
            setsockopt(raw, sol, libc::IP_MULTICAST_LOOP, &off, "IP_MULTICAST_LOOP")?;
        }
        Ok(VrrpSocket { fd, ifindex, ipv6 })
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Receives one packet into `buf` without waiting; `Ok(None)` when nothing is queued (or
    /// the packet is malformed).
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<ReceivedAdvert>, IoError> {
        // SAFETY: all-zero sockaddr_storage, iovec and msghdr are valid initial values.
        let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut ctrl = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&ctrl);
        // SAFETY: every pointer in `msg` refers to a live buffer of the stated length.
        let rc = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            return match err.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
                _ => Err(IoError::io("recvmsg(VRRP)", err)),
            };
        }
        let len = rc as usize;
        if self.ipv6 {
            Ok(self.v6_meta(&from, &msg, len))
        } else {
            Ok(v4_meta(&buf[..len]))
        }
    }

    fn v6_meta(
        &self,
        from: &libc::sockaddr_storage,
        msg: &libc::msghdr,
        len: usize,
    ) -> Option<ReceivedAdvert> {
        if i32::from(from.ss_family) != libc::AF_INET6 {
            return None;
        }
        // SAFETY: the family says the storage holds a sockaddr_in6, which fits in it.
        let sin6 =
            unsafe { &*(from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
        let src = IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr));
        let (mut dst, mut ttl) = (None, None);
        // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk its control buffer within
        // msg_controllen, and each payload is read unaligned with the type its header names.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(msg);
            while !c.is_null() {
                let h = &*c;
                if h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_HOPLIMIT {
                    let v: i32 = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    ttl = u8::try_from(v).ok();
                } else if h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_PKTINFO {
                    let p: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    dst = Some(IpAddr::V6(Ipv6Addr::from(p.ipi6_addr.s6_addr)));
                }
                c = libc::CMSG_NXTHDR(msg, c);
            }
        }
        Some(ReceivedAdvert {
            src,
            dst: dst?,
            ttl: ttl?,
            protocol: IPPROTO_VRRP as u8,
            payload_offset: 0,
            len,
        })
    }

    /// Sends a whole IPv4 `datagram` (header included; the kernel fills in the header
    /// checksum) to `dst` out of the socket's interface. For sockets from
    /// [`VrrpSocket::open_ah`].
    pub fn send_datagram(&self, dst: Ipv4Addr, datagram: &[u8]) -> Result<(), IoError> {
        // SAFETY: an all-zero sockaddr_in is a valid initial value.
        let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from(dst).to_be();
        let flags = if dst.is_multicast() {
            libc::MSG_DONTWAIT | libc::MSG_DONTROUTE
        } else {
            libc::MSG_DONTWAIT
        };
        // SAFETY: `datagram` and `sin` are live for the call and their lengths are given.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                datagram.as_ptr().cast(),
                datagram.len(),
                flags,
                (&sin as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(IoError::last_os("sendto(VRRP AH)"));
        }
        Ok(())
    }

    /// Sends `payload` (a VRRP message) from `src` to `dst` (the group or a unicast peer) out
    /// of the socket's interface, with TTL / hop limit 255.
    pub fn send(&self, src: IpAddr, dst: IpAddr, payload: &[u8]) -> Result<(), IoError> {
        let mut ctrl = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        };
        // SAFETY: all-zero sockaddrs and msghdr are valid initial values.
        let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        match (src, dst, self.ipv6) {
            (IpAddr::V4(_), IpAddr::V4(d), false) => {
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_addr.s_addr = u32::from(d).to_be();
                msg.msg_name = (&mut sin as *mut libc::sockaddr_in).cast();
                msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            (IpAddr::V6(_), IpAddr::V6(d), true) => {
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_addr.s6_addr = d.octets();
                sin6.sin6_scope_id = self.ifindex;
                msg.msg_name = (&mut sin6 as *mut libc::sockaddr_in6).cast();
                msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
            _ => {
                return Err(IoError::Sys {
                    call: "sendmsg(VRRP)",
                    source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
                })
            }
        }
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&ctrl);
        // SAFETY: the control buffer is large enough for one pktinfo message; CMSG_FIRSTHDR
        // points into it and CMSG_DATA leaves room for the payload written unaligned.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            if c.is_null() {
                return Err(IoError::io(
                    "sendmsg(VRRP)",
                    std::io::Error::other("no room for a control message"),
                ));
            }
            match src {
                IpAddr::V4(s) => {
                    (*c).cmsg_level = libc::IPPROTO_IP;
                    (*c).cmsg_type = libc::IP_PKTINFO;
                    let n = std::mem::size_of::<libc::in_pktinfo>() as u32;
                    (*c).cmsg_len = libc::CMSG_LEN(n) as _;
                    let info = libc::in_pktinfo {
                        ipi_ifindex: self.ifindex as i32,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from(s).to_be(),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
                    msg.msg_controllen = libc::CMSG_SPACE(n) as _;
                }
                IpAddr::V6(s) => {
                    (*c).cmsg_level = libc::IPPROTO_IPV6;
                    (*c).cmsg_type = libc::IPV6_PKTINFO;
                    let n = std::mem::size_of::<libc::in6_pktinfo>() as u32;
                    (*c).cmsg_len = libc::CMSG_LEN(n) as _;
                    let info = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: s.octets(),
                        },
                        ipi6_ifindex: self.ifindex,
                    };
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
                    msg.msg_controllen = libc::CMSG_SPACE(n) as _;
                }
            }
        }
        // SAFETY: every pointer in `msg` refers to a live buffer of the stated length.
        let rc = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        if rc < 0 {
            return Err(IoError::last_os("sendmsg(VRRP)"));
        }
        Ok(())
    }
}

/// Source, destination, TTL and protocol from the IPv4 header of a whole datagram.
fn v4_meta(d: &[u8]) -> Option<ReceivedAdvert> {
    let p = ipv4::Packet::new_checked(d).ok()?;
    Some(ReceivedAdvert {
        src: IpAddr::V4(p.src_addr()),
        dst: IpAddr::V4(p.dst_addr()),
        ttl: p.ttl(),
        protocol: p.protocol(),
        payload_offset: p.header_len(),
        len: d.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_fields_are_read() {
        let mut d = vec![0u8; 28];
        d[0] = 0x45;
        d[2..4].copy_from_slice(&28u16.to_be_bytes());
        d[8] = 255;
        d[9] = 112;
        d[12..16].copy_from_slice(&[10, 0, 0, 1]);
        d[16..20].copy_from_slice(&[224, 0, 0, 18]);
        let m = v4_meta(&d).expect("valid header");
        assert_eq!(m.ttl, 255);
        assert_eq!(m.payload_offset, 20);
        assert_eq!(m.dst, IpAddr::V4(VRRP_GROUP_V4));
        assert_eq!(m.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(m.protocol, 112);
        assert_eq!(m.len, 28);
        assert!(v4_meta(&d[..10]).is_none());
        assert!(v4_meta(&d[..24]).is_none(), "shorter than its total length");
        d[0] = 0x65;
        assert!(v4_meta(&d).is_none(), "not IPv4");
    }
}
