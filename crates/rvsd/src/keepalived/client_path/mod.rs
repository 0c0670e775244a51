//! The prober behind `client_path` checks: packets to the VIP sent the way the data plane
//! delivers clients' packets, from the director's own address toward the real server: to a
//! direct-routing server's MAC address, or in the tunnel a tunnelled server is configured with
//! (ipip, gue, gre, as the engine writes outer headers), to the next hop toward it. The server
//! answers the director directly. TCP_CHECK sends one SYN (`rvs_io::probe::syn_probe`);
//! HTTP_GET and SSL_GET get a whole connection from a TCP stack of its own ([`stream`]). IPv4
//! only.

mod stream;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use rvs_engine::TunnelConfig;
use rvs_health::PathProber;
use rvs_io::probe::SynAnswer;
use rvs_io::NetState;
use tokio::sync::oneshot;

/// The TTL of a probe's outer (tunnel) header.
const OUTER_TTL: u8 = 64;

/// Probes one real server through the interfaces and neighbours rvsd knows: directly (DR) or
/// in `tunnel`, the tunnel its configuration names (kept with the plan, so a server the checks
/// removed from the table is still probed the way clients would reach it).
#[derive(Debug, Clone)]
pub struct NetProber {
    net: Arc<NetState>,
    tunnel: Option<TunnelConfig>,
}

impl NetProber {
    /// A prober over `net`, sending in `tunnel` when given.
    pub fn new(net: Arc<NetState>, tunnel: Option<TunnelConfig>) -> Arc<NetProber> {
        Arc::new(NetProber { net, tunnel })
    }
}

/// Where a probe's frames go.
#[derive(Debug, Clone)]
struct Route {
    ifname: String,
    src_mac: [u8; 6],
    /// The real server's MAC (DR) or the next hop's toward it (tunnels).
    next_mac: [u8; 6],
    /// The director's own address toward the real server.
    dip: Ipv4Addr,
    tunnel: Option<TunnelConfig>,
    rip: IpAddr,
}

impl Route {
    /// `inner` as it leaves: itself (DR), or behind its tunnel's outer header.
    fn wrap(&self, inner: &[u8]) -> Option<Vec<u8>> {
        let Some(cfg) = &self.tunnel else {
            return Some(inner.to_vec());
        };
        let outer =
            rvs_engine::tunnel::outer_header(cfg, IpAddr::V4(self.dip), self.rip, inner, 0, None)
                .ok()?;
        let mut packet = outer.as_bytes().to_vec();
        packet.extend_from_slice(inner);
        // The outer header copies the inner TTL, as IPVS does; the probe's inner TTL is 1
        // (see rvs_io::probe::tcp_packet), and the outer one must cross the routers to the
        // real server.
        if let Ok(mut ip) = rvs_wire::ipv4::Packet::new_checked(&mut packet[..]) {
            ip.set_ttl_update_checksum(OUTER_TTL);
        }
        Some(packet)
    }
}

impl NetProber {
    /// The interface, addresses and tunnel toward `rip`.
    fn route(&self, rip: IpAddr, vip: IpAddr) -> Result<(Route, Ipv4Addr), String> {
        let (IpAddr::V4(_), IpAddr::V4(vip4)) = (rip, vip) else {
            return Err("client_path checks are IPv4 only".into());
        };
        let segment = self.net.segment_to(rip).map_err(|e| e.to_string())?;
        let IpAddr::V4(dip) = segment.source else {
            return Err(format!("no IPv4 address of this director toward {rip}"));
        };
        let route = Route {
            ifname: segment.ifname,
            src_mac: segment.src_mac,
            next_mac: segment.next_mac,
            dip,
            tunnel: self.tunnel,
            rip,
        };
        Ok((route, vip4))
    }
}

impl PathProber for NetProber {
    fn syn_probe(
        &self,
        rip: IpAddr,
        vip: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> Result<Result<(), String>, String> {
        let (route, vip4) = self.route(rip, vip)?;
        // Route::wrap passes the packet on as it is without a tunnel.
        let wrap = |inner: &[u8]| route.wrap(inner);
        let sent = rvs_io::probe::syn_probe(
            &route.ifname,
            route.src_mac,
            route.next_mac,
            route.dip,
            (vip4, port),
            timeout,
            Some(&wrap),
        );
        match sent {
            Ok(SynAnswer::Accepted) => Ok(Ok(())),
            Ok(SynAnswer::Refused) => Ok(Err("refused (RST)".into())),
            Ok(SynAnswer::Silent) => Ok(Err(format!("no answer within {timeout:?}"))),
            Err(e) => Err(e.to_string()),
        }
    }

    fn connect(
        &self,
        rip: IpAddr,
        vip: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> oneshot::Receiver<Result<tokio::io::DuplexStream, String>> {
        let (done, pending) = oneshot::channel();
        let prober = self.clone();
        stream::start(move || prober.route(rip, vip), port, timeout, done);
        pending
    }

    fn describe(&self) -> String {
        match &self.tunnel {
            None => "direct".into(),
            Some(t) => format!("{:?} port {} {:?}", t.kind, t.port, t.checksum),
        }
    }
}
