//! The I/O of one VRRP instance: its raw socket, the VIPs it puts on and takes off the
//! interfaces (remembering which it added, so exactly those go when rvsd stops), and its
//! gratuitous ARP / unsolicited neighbour advertisement bursts.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_io::gratuitous::{garp_frame, unsolicited_na_frame};
use rvs_io::{AddrScope, InterfaceAddress, PacketSocket, ReceivedAdvert, VnetHdr, VrrpSocket};
use rvs_keepalived::vrrp::{VirtualIp, VrrpInstance};
use rvs_vrrp::codec::{validate_ip_fields, IPPROTO_AH, IPPROTO_VRRP};
use rvs_vrrp::{Advert, AhSession, IpContext, IpFields, Transmit};

use super::VrrpError;

/// One instance's sockets and addresses.
pub struct MemberIo {
    /// The instance's interface.
    pub ifname: String,
    socket: VrrpSocket,
    /// Send-only packet socket for the gratuitous bursts (shared with their helper threads).
    frames: Arc<Mutex<PacketSocket>>,
    mac: [u8; 6],
    link_local: Option<Ipv6Addr>,
    specs: Vec<VirtualIp>,
    owned: Vec<InterfaceAddress>,
    unicast: bool,
    vrid: u8,
    /// `auth_type AH`: the session sealing and checking every advert.
    ah: Option<AhSession>,
}

impl MemberIo {
    /// Opens the instance's socket; also returns the interface's own address for the VIPs'
    /// family (the link-local one for IPv6), the advert source when none is configured.
    pub fn open(vi: &VrrpInstance) -> Result<(MemberIo, Option<IpAddr>), VrrpError> {
        let ipv6 = vi
            .virtual_ipaddress
            .first()
            .map(|v| v.addr.is_ipv6())
            .unwrap_or(false);
        let socket = VrrpSocket::open(&vi.interface, ipv6)
            .map_err(VrrpError::io("VRRP socket on", &vi.interface))?;
        let frames = Arc::new(Mutex::new(
            PacketSocket::open_tx(&vi.interface)
                .map_err(VrrpError::io("packet socket on", &vi.interface))?,
        ));
        let addrs = rvs_io::interface_addresses(socket.ifindex())
            .map_err(VrrpError::io("addresses of", &vi.interface))?;
        let link_local = addrs.iter().find_map(|(a, _)| match a {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(*v6),
            _ => None,
        });
        let primary = if ipv6 {
            link_local.map(IpAddr::V6)
        } else {
            addrs.iter().map(|(a, _)| *a).find(IpAddr::is_ipv4)
        };
        let specs = vi
            .virtual_ipaddress
            .iter()
            .chain(&vi.virtual_ipaddress_excluded)
            .cloned()
            .collect();
        let io = MemberIo {
            ifname: vi.interface.clone(),
            socket,
            frames,
            mac: rvs_io::iface::mac_address(&vi.interface)
                .ok()
                .flatten()
                .unwrap_or([0; 6]),
            link_local,
            specs,
            owned: Vec::new(),
            unicast: !vi.unicast_peer.is_empty(),
            vrid: vi.virtual_router_id,
            ah: None,
        };
        Ok((io, primary))
    }

    /// Switches the instance to `auth_type AH` (VRRPv2 over IPv4): adverts go out sealed by
    /// `session` through a protocol-51 socket, and only AH adverts it accepts come in.
    pub fn use_ah(&mut self, session: AhSession) -> Result<(), VrrpError> {
        self.socket = VrrpSocket::open_ah(&self.ifname)
            .map_err(VrrpError::io("VRRP AH socket on", &self.ifname))?;
        self.ah = Some(session);
        Ok(())
    }

    /// The raw socket (for polling).
    pub fn socket(&self) -> &VrrpSocket {
        &self.socket
    }

    fn interface_address(&self, ip: IpAddr) -> Option<InterfaceAddress> {
        let spec = self.specs.iter().find(|s| s.addr == ip);
        let dev = spec
            .and_then(|s| s.dev.clone())
            .unwrap_or_else(|| self.ifname.clone());
        let index = match rvs_io::iface::ifindex(&dev) {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!(vip = %ip, dev, "VRRP: no interface for the VIP: {e}");
                return None;
            }
        };
        let mut a = InterfaceAddress::host(index, ip);
        if let Some(s) = spec {
            a.prefix = s.prefix;
            a.broadcast = s.broadcast;
            a.label = s.label.clone();
            if let Some(scope) = s.scope.as_deref() {
                a.scope = AddrScope::parse(scope).unwrap_or_default();
            }
        }
        Some(a)
    }

    /// Puts `ips` on their interfaces.
    pub fn add_vips(&mut self, ips: &[IpAddr]) {
        for ip in ips {
            let Some(a) = self.interface_address(*ip) else {
                continue;
            };
            match rvs_io::add_address(&a) {
                Ok(true) => {
                    tracing::info!(vip = %ip, "VRRP: VIP added");
                    self.owned.push(a);
                }
                Ok(false) => tracing::debug!(vip = %ip, "VRRP: VIP already present"),
                Err(e) => tracing::warn!(vip = %ip, "VRRP: adding the VIP failed: {e}"),
            }
        }
    }

    /// Takes `ips` off their interfaces.
    pub fn remove_vips(&mut self, ips: &[IpAddr]) {
        for ip in ips {
            let Some(a) = self.interface_address(*ip) else {
                continue;
            };
            match rvs_io::remove_address(&a) {
                Ok(_) => tracing::info!(vip = %ip, "VRRP: VIP removed"),
                Err(e) => tracing::warn!(vip = %ip, "VRRP: removing the VIP failed: {e}"),
            }
            self.owned.retain(|o| o.addr != *ip);
        }
    }

    /// Gives up the VIPs this instance added, leaving them on their interfaces (for the
    /// successor of a reload).
    pub fn take_owned(&mut self) -> Vec<InterfaceAddress> {
        std::mem::take(&mut self.owned)
    }

    /// Takes over VIPs a predecessor added: those this instance also lists become its own,
    /// the others are removed.
    pub fn adopt(&mut self, vips: Vec<InterfaceAddress>) {
        for a in vips {
            if self.specs.iter().any(|s| s.addr == a.addr) {
                self.owned.push(a);
            } else if let Err(e) = rvs_io::remove_address(&a) {
                tracing::warn!(vip = %a.addr, "VRRP: removing the VIP failed: {e}");
            }
        }
    }

    /// Removes every VIP this instance added and still holds.
    pub fn release_all(&mut self) {
        for a in std::mem::take(&mut self.owned) {
            if let Err(e) = rvs_io::remove_address(&a) {
                tracing::warn!(vip = %a.addr, "VRRP: removing the VIP failed: {e}");
            }
        }
    }

    /// Sends `count` gratuitous messages per VIP, `delay` apart, from a helper thread.
    pub fn gratuitous(&self, count: u32, delay: Duration) {
        let frames: Vec<Vec<u8>> = self
            .specs
            .iter()
            .filter_map(|s| match s.addr {
                IpAddr::V4(a) => Some(garp_frame(self.mac, a)),
                IpAddr::V6(a) => self
                    .link_local
                    .map(|src| unsolicited_na_frame(self.mac, src, a)),
            })
            .collect();
        if frames.is_empty() || count == 0 {
            return;
        }
        let sender = self.frames.clone();
        let spawned = std::thread::Builder::new()
            .name("rvsd-garp".into())
            .spawn(move || {
                for i in 0..count {
                    if i > 0 && !delay.is_zero() {
                        std::thread::sleep(delay);
                    }
                    for f in &frames {
                        let sent = sender
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .send(&VnetHdr::default(), f);
                        if let Err(e) = sent {
                            tracing::debug!("VRRP: gratuitous send: {e}");
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("VRRP: cannot start a gratuitous burst: {e}");
        }
    }

    /// Sends one advert.
    pub fn send(&mut self, t: &Transmit) {
        let sent = match (&mut self.ah, t.src, t.dst) {
            (Some(ah), IpAddr::V4(src), IpAddr::V4(dst)) => {
                let datagram = ah.seal(src, dst, &t.payload, self.unicast);
                self.socket.send_datagram(dst, &datagram)
            }
            _ => self.socket.send(t.src, t.dst, &t.payload),
        };
        if let Err(e) = sent {
            tracing::debug!(ifname = %self.ifname, "VRRP: advert send failed: {e}");
        }
    }

    /// Reads every queued packet; calls `f` with the source of each acceptable advert for this
    /// instance's VRID (IP header checked as the RFCs say, checksum verified).
    pub fn drain(&mut self, buf: &mut [u8], mut f: impl FnMut(IpAddr, Advert)) {
        loop {
            let got = match self.socket.recv(buf) {
                Ok(Some(got)) => got,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(ifname = %self.ifname, "VRRP: receive failed: {e}");
                    return;
                }
            };
            if let Some(advert) = self.accept(&buf[..got.len], &got) {
                f(got.src, advert);
            }
        }
    }

    fn accept(&mut self, data: &[u8], got: &ReceivedAdvert) -> Option<Advert> {
        let offset = match (got.protocol, &mut self.ah) {
            (IPPROTO_VRRP, None) => got.payload_offset,
            (IPPROTO_AH, Some(ah)) => {
                // Only this VRID's adverts may move the shared sequence counter.
                let vrid_at = got.payload_offset + rvs_vrrp::ah::AH_LEN + 1;
                if data.get(vrid_at) != Some(&self.vrid) {
                    return None;
                }
                match ah.open(data, self.unicast) {
                    Ok(offset) => offset,
                    Err(e) => {
                        tracing::info!(ifname = %self.ifname, src = %got.src, "VRRP: AH advert rejected: {e}");
                        return None;
                    }
                }
            }
            _ => return None, // the other authentication scheme: not for this socket
        };
        let payload = data.get(offset..)?;
        if payload.get(1) != Some(&self.vrid) {
            return None;
        }
        let fields = IpFields {
            src: got.src,
            dst: got.dst,
            ttl: got.ttl,
            protocol: got.protocol,
        };
        if let Err(e) = validate_ip_fields(&fields, self.unicast) {
            tracing::debug!(src = %got.src, "VRRP: advert dropped: {e}");
            return None;
        }
        let ctx = IpContext {
            src: got.src,
            dst: got.dst,
        };
        match Advert::parse(payload, &ctx) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::debug!(src = %got.src, "VRRP: malformed advert: {e}");
                None
            }
        }
    }
}

impl Drop for MemberIo {
    fn drop(&mut self) {
        self.release_all();
    }
}
