//! The prober behind `client_path` TCP checks: a SYN to the VIP sent to a direct-routing real
//! server's MAC address from the director's own address on the interface toward it, as the
//! data plane delivers clients' packets (`rvs_io::probe::syn_probe`). IPv4 only.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rvs_health::PathProber;
use rvs_io::probe::SynAnswer;
use rvs_io::{NetState, Resolution};

/// Probes through the interfaces and neighbours rvsd knows.
#[derive(Debug)]
pub struct NetProber {
    net: Arc<NetState>,
}

impl NetProber {
    /// A prober over `net`.
    pub fn new(net: Arc<NetState>) -> Arc<NetProber> {
        Arc::new(NetProber { net })
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
        let (IpAddr::V4(_), IpAddr::V4(vip4)) = (rip, vip) else {
            return Err("client_path checks are IPv4 only".into());
        };
        let (ifindex, src_mac, rs_mac) = match self.net.resolve(rip) {
            Resolution::Ready {
                ifindex,
                src_mac,
                dst_mac,
                ..
            } => (ifindex, src_mac, dst_mac),
            Resolution::Pending => return Err(format!("{rip}'s MAC address is not known yet")),
            Resolution::Unreachable => return Err(format!("no route to {rip}")),
        };
        let ifname = rvs_io::iface::ifname(ifindex)
            .ok_or_else(|| format!("interface {ifindex} toward {rip} is gone"))?;
        let Some(IpAddr::V4(dip)) = self.net.source_for(rip) else {
            return Err(format!("no IPv4 address of this director toward {rip}"));
        };
        match rvs_io::probe::syn_probe(&ifname, src_mac, rs_mac, dip, (vip4, port), timeout) {
            Ok(SynAnswer::Accepted) => Ok(Ok(())),
            Ok(SynAnswer::Refused) => Ok(Err("refused (RST)".into())),
            Ok(SynAnswer::Silent) => Ok(Err(format!("no answer within {timeout:?}"))),
            Err(e) => Err(e.to_string()),
        }
    }
}
