//! Interface addresses as VRRP needs them: add and remove one address (`RTM_NEWADDR` /
//! `RTM_DELADDR` with prefix, scope and label, acknowledged) and list an interface's addresses.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::socket::NlSocket;
use super::wire::{self, Request, Update, IFA_ADDRESS, IFA_LOCAL};
use crate::error::IoError;

const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_F_NODAD: u8 = 0x02;
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
const EEXIST: i32 = 17;
const EADDRNOTAVAIL: i32 = 99;

/// Address scope (`scope` of `ip addr add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddrScope {
    /// `global` (0, the default).
    #[default]
    Global,
    /// `site` (200).
    Site,
    /// `link` (253).
    Link,
    /// `host` (254).
    Host,
    /// A numeric scope.
    Other(u8),
}

impl AddrScope {
    /// Parses `global|site|link|host|nowhere` or a number, as `ip` does.
    pub fn parse(s: &str) -> Option<AddrScope> {
        match s {
            "global" | "universe" => Some(AddrScope::Global),
            "site" => Some(AddrScope::Site),
            "link" => Some(AddrScope::Link),
            "host" => Some(AddrScope::Host),
            "nowhere" => Some(AddrScope::Other(255)),
            n => n.parse().ok().map(AddrScope::Other),
        }
    }

    fn number(self) -> u8 {
        match self {
            AddrScope::Global => 0,
            AddrScope::Site => 200,
            AddrScope::Link => 253,
            AddrScope::Host => 254,
            AddrScope::Other(n) => n,
        }
    }
}

/// One address to put on (or take off) an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// Interface index.
    pub ifindex: u32,
    /// The address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// IPv4 broadcast address (`brd`).
    pub broadcast: Option<IpAddr>,
    /// Scope.
    pub scope: AddrScope,
    /// IPv4 label (`eth0:1`); at most 15 bytes.
    pub label: Option<String>,
}

impl InterfaceAddress {
    /// A global address with the full prefix (/32 or /128) and no label.
    pub fn host(ifindex: u32, addr: IpAddr) -> InterfaceAddress {
        InterfaceAddress {
            ifindex,
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
            broadcast: None,
            scope: AddrScope::Global,
            label: None,
        }
    }

    fn request(&self, ty: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut ifa = [0u8; 8];
        ifa[0] = wire::family_of(self.addr);
        ifa[1] = self.prefix;
        ifa[2] = if self.addr.is_ipv6() { IFA_F_NODAD } else { 0 };
        ifa[3] = self.scope.number();
        ifa[4..8].copy_from_slice(&self.ifindex.to_ne_bytes());
        let octets = ip_octets(self.addr);
        let mut req = Request::new(ty, flags, seq)
            .body(&ifa)
            .attr(IFA_LOCAL, &octets)
            .attr(IFA_ADDRESS, &octets);
        if let Some(b @ IpAddr::V4(_)) = self.broadcast {
            req = req.attr(IFA_BROADCAST, &ip_octets(b));
        }
        if let (Some(label), true) = (&self.label, self.addr.is_ipv4()) {
            let mut bytes: Vec<u8> = label.bytes().take(15).collect();
            bytes.push(0);
            req = req.attr(IFA_LABEL, &bytes);
        }
        req.finish()
    }
}

fn ip_octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Adds `a` to its interface. Returns `Ok(false)` when the address was already there (so the
/// caller knows it is not its own to remove).
pub fn add_address(a: &InterfaceAddress) -> Result<bool, IoError> {
    let flags = wire::NLM_F_REQUEST | NLM_F_ACK | wire::NLM_F_CREATE | NLM_F_EXCL;
    match transact(&a.request(wire::RTM_NEWADDR, flags, 1))? {
        0 => Ok(true),
        EEXIST => Ok(false),
        errno => Err(errno_error("RTM_NEWADDR", errno)),
    }
}

/// Removes `a` from its interface. Returns `Ok(false)` when it was not there.
pub fn remove_address(a: &InterfaceAddress) -> Result<bool, IoError> {
    let flags = wire::NLM_F_REQUEST | NLM_F_ACK;
    match transact(&a.request(wire::RTM_DELADDR, flags, 1))? {
        0 => Ok(true),
        EADDRNOTAVAIL => Ok(false),
        errno => Err(errno_error("RTM_DELADDR", errno)),
    }
}

/// The addresses (with prefix lengths) on interface `ifindex`, in the kernel's order (the
/// primary address of each family first).
pub fn interface_addresses(ifindex: u32) -> Result<Vec<(IpAddr, u8)>, IoError> {
    let sock = NlSocket::open(0)?;
    sock.set_recv_timeout(ACK_TIMEOUT)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    sock.dump(wire::RTM_GETADDR, 7, ACK_TIMEOUT, &mut buf, |update| {
        if let Update::Addr { addr, .. } = update {
            if addr.index == ifindex {
                out.push((addr.ip, addr.prefix));
            }
        }
    })?;
    Ok(out)
}

/// Sends one request and waits for its acknowledgement; returns the errno (0 = success).
fn transact(msg: &[u8]) -> Result<i32, IoError> {
    let sock = NlSocket::open(0)?;
    sock.set_recv_timeout(ACK_TIMEOUT)?;
    sock.send(msg)?;
    let mut buf = vec![0u8; 8192];
    let deadline = Instant::now() + ACK_TIMEOUT;
    while Instant::now() < deadline {
        let Some(n) = sock.recv(&mut buf, false)? else {
            continue;
        };
        for (ty, seq, payload) in wire::messages(&buf[..n]) {
            if let Update::Error { errno, .. } = wire::decode(ty, seq, payload) {
                return Ok(errno);
            }
        }
    }
    Err(IoError::Netlink(
        "no acknowledgement from the kernel".into(),
    ))
}

fn errno_error(what: &str, errno: i32) -> IoError {
    IoError::Netlink(format!(
        "{what}: {}",
        std::io::Error::from_raw_os_error(errno)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn add_request_carries_label_scope_and_prefix() {
        let a = InterfaceAddress {
            ifindex: 3,
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
            prefix: 24,
            broadcast: None,
            scope: AddrScope::Link,
            label: Some("eth0:vip".into()),
        };
        let msg = a.request(wire::RTM_NEWADDR, wire::NLM_F_REQUEST, 1);
        let (ty, _, payload) = wire::messages(&msg).next().expect("one message");
        assert_eq!(ty, wire::RTM_NEWADDR);
        assert_eq!(&payload[..4], &[2, 24, 0, 253]);
        let labels: Vec<_> = wire::attrs(&payload[8..])
            .filter(|(t, _)| *t == IFA_LABEL)
            .map(|(_, d)| d.to_vec())
            .collect();
        assert_eq!(labels, vec![b"eth0:vip\0".to_vec()]);
        assert_eq!(AddrScope::parse("host"), Some(AddrScope::Host));
    }
}
