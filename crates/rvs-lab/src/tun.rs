//! [`TunTopology`]: LVS-TUN with the real servers behind a router, on another network than the
//! director (the issue's "the real server can sit behind a router"), in namespaces.
//!
//! ```text
//!  client                  router (ip_forward=1, IPv4 and IPv6)
//!  eth0 172.30.0.100/24 -- r0 172.30.0.200/24
//!       2001:db8:172::100     2001:db8:172::200/64
//!                          r1 10.0.0.100/24 ------------- d0 director 10.0.0.8/24, VIP 10.0.0.200 on lo
//!                             2001:db8:10::100/64            2001:db8:10::8/64, VIP6 2001:db8:10::200/128
//!                          r2 10.20.0.100/24 -- switch br0 -- eth0 rs1 10.20.0.7/24, 2001:db8:20::7/64
//!                             2001:db8:20::100/64          -- eth0 rs2 10.20.0.14/24, 2001:db8:20::14/64 ...
//! ```
//! The director tunnels the client's packets to the real servers (outer source 10.0.0.8, or
//! 2001:db8:10::8 toward a real server's IPv6 address). Every real server holds both VIPs on
//! `lo` (with seed 003's `arp_ignore=1` / `arp_announce=2`; Linux answers neighbour
//! solicitations only for addresses of the receiving interface, so the VIP6 on `lo` stays
//! silent), runs `rvs-tunrs` (this kernel has no ipip/gre/fou driver) to decapsulate into a TUN
//! device, and answers the client straight through the router. The director's VIP6 sits on `d0`
//! (/128) so that it answers the router's neighbour solicitations. All IPv6 addresses are added
//! `nodad`, so they are usable at once. Either family can travel inside either (`ipvsadm`
//! allows a real server of the other family for tunnelling only).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use crate::cleanup::socket_path_for;
use crate::harness::{self, hex_like, rs_role, Rvsd, CLIENT, DIRECTOR, SWITCH};
use crate::{find_bin, Director, Lab, LabError, ROUTER};

/// Most real servers a TUN topology can have.
pub const MAX_TUN_REAL_SERVERS: usize = 36;

/// The LVS-TUN topology.
#[derive(Debug)]
pub struct TunTopology {
    /// The namespaces; dropping the topology tears them down.
    pub lab: Lab,
    /// The VIP, 10.0.0.200 (on the director's `lo` and every real server's `lo`).
    pub vip4: Ipv4Addr,
    /// The IPv6 VIP, 2001:db8:10::200 (on the director's `d0` and every real server's `lo`).
    pub vip6: Ipv6Addr,
    /// Real servers' addresses, 10.20.0.7, .14, ...
    pub rips4: Vec<Ipv4Addr>,
    /// Real servers' IPv6 addresses, 2001:db8:20::7, ::14, ...
    pub rips6: Vec<Ipv6Addr>,
    /// The client's address, 172.30.0.100.
    pub client4: Ipv4Addr,
    /// The client's IPv6 address, 2001:db8:172::100.
    pub client6: Ipv6Addr,
    /// The director's own address (the tunnels' outer source), 10.0.0.8.
    pub dip4: Ipv4Addr,
    /// The director's own IPv6 address (the outer source toward IPv6 real servers),
    /// 2001:db8:10::8.
    pub dip6: Ipv6Addr,
    /// The control socket rvsd gets.
    pub socket: PathBuf,
}

impl TunTopology {
    /// Builds the topology with `real_servers` real servers (1 to [`MAX_TUN_REAL_SERVERS`]).
    pub fn build(tag: &str, real_servers: usize) -> Result<TunTopology, LabError> {
        harness::check_rs_count(real_servers, MAX_TUN_REAL_SERVERS)?;
        let lab = Lab::new(tag)?;
        let socket = socket_path_for(lab.prefix());
        let hosts: Vec<u16> = (1..=real_servers as u16).map(|k| k * 7).collect();
        let topology = TunTopology {
            vip4: Ipv4Addr::new(10, 0, 0, 200),
            vip6: net6(0x10, 0x200),
            rips4: hosts
                .iter()
                .map(|&h| Ipv4Addr::new(10, 20, 0, h as u8))
                .collect(),
            rips6: hosts.iter().map(|&h| net6(0x20, hex_like(h))).collect(),
            client4: Ipv4Addr::new(172, 30, 0, 100),
            client6: net6(0x172, 0x100),
            dip4: Ipv4Addr::new(10, 0, 0, 8),
            dip6: net6(0x10, 8),
            socket,
            lab,
        };
        topology.wire()?;
        Ok(topology)
    }

    fn wire(&self) -> Result<(), LabError> {
        let lab = &self.lab;
        for role in [CLIENT, ROUTER, SWITCH, DIRECTOR] {
            lab.add_ns(role)?;
        }
        lab.remove_at_teardown(&self.socket);
        harness::veth(lab, CLIENT, "eth0", ROUTER, "r0")?;
        harness::veth(lab, ROUTER, "r1", DIRECTOR, "d0")?;
        harness::veth(lab, ROUTER, "r2", SWITCH, "p0")?;
        let mut ports = vec!["p0".to_string()];
        ports.extend(harness::add_real_servers(lab, self.rips4.len(), |i| {
            format!("p{}", i + 1)
        })?);
        harness::bridge(lab, "br0", &ports)?;
        lab.ip(
            CLIENT,
            &[
                format!("addr add {}/24 dev eth0", self.client4),
                format!("addr add {}/64 dev eth0 nodad", self.client6),
                "link set eth0 up".to_string(),
                "route add default via 172.30.0.200".to_string(),
                format!("route add default via {}", net6(0x172, 0x200)),
            ],
        )?;
        harness::enable_forwarding(lab, ROUTER)?;
        lab.ip(
            ROUTER,
            &[
                "addr add 172.30.0.200/24 dev r0".to_string(),
                "addr add 10.0.0.100/24 dev r1".to_string(),
                "addr add 10.20.0.100/24 dev r2".to_string(),
                format!("addr add {}/64 dev r0 nodad", net6(0x172, 0x200)),
                format!("addr add {}/64 dev r1 nodad", net6(0x10, 0x100)),
                format!("addr add {}/64 dev r2 nodad", net6(0x20, 0x100)),
                "link set r0 up".to_string(),
                "link set r1 up".to_string(),
                "link set r2 up".to_string(),
            ],
        )?;
        lab.ip(
            DIRECTOR,
            &[
                format!("addr add {}/24 dev d0", self.dip4),
                format!("addr add {}/64 dev d0 nodad", self.dip6),
                format!("addr add {}/32 dev lo", self.vip4),
                format!("addr add {}/128 dev d0 nodad", self.vip6),
                "link set lo up".to_string(),
                "link set d0 up".to_string(),
                "route add default via 10.0.0.100".to_string(),
                format!("route add default via {}", net6(0x10, 0x100)),
            ],
        )?;
        for (index, (rip, rip6)) in self.rips4.iter().zip(&self.rips6).enumerate() {
            let role = rs_role(index);
            for scope in ["all", "lo"] {
                lab.sysctl(&role, &format!("net.ipv4.conf.{scope}.arp_ignore"), "1")?;
                lab.sysctl(&role, &format!("net.ipv4.conf.{scope}.arp_announce"), "2")?;
            }
            lab.ip(
                &role,
                &[
                    format!("addr add {}/32 dev lo", self.vip4),
                    format!("addr add {}/128 dev lo nodad", self.vip6),
                    format!("addr add {rip}/24 dev eth0"),
                    format!("addr add {rip6}/64 dev eth0 nodad"),
                    "link set lo up".to_string(),
                    "link set eth0 up".to_string(),
                    "route add default via 10.20.0.100".to_string(),
                    format!("route add default via {}", net6(0x20, 0x100)),
                ],
            )?;
        }
        Ok(())
    }

    /// The namespace roles of the real servers, `rs1`, `rs2`, ...
    pub fn rs_roles(&self) -> Vec<String> {
        (0..self.rips4.len()).map(rs_role).collect()
    }

    /// The text real server `index` answers with: `hello,<its address>`.
    pub fn rs_text(&self, index: usize) -> String {
        harness::hello_text(&self.rips4, index)
    }

    /// The VIP of one family: [`TunTopology::vip4`] or [`TunTopology::vip6`].
    pub fn vip(&self, v6: bool) -> IpAddr {
        harness::of_family(v6, self.vip4, self.vip6)
    }

    /// The address of real server `index` in one family, if it exists.
    pub fn rip(&self, index: usize, v6: bool) -> Option<IpAddr> {
        harness::nth_of_family(v6, &self.rips4, &self.rips6, index)
    }

    /// The client's address of one family.
    pub fn client(&self, v6: bool) -> IpAddr {
        harness::of_family(v6, self.client4, self.client6)
    }

    /// The director's own address of one family (the tunnels' outer source).
    pub fn dip(&self, v6: bool) -> IpAddr {
        harness::of_family(v6, self.dip4, self.dip6)
    }

    /// Starts `rvs-tunrs <mode_args>` (e.g. `["--ipip"]`, `["--gue", "6080"]`) and the built-in
    /// server on every real server, and waits until the servers accept connections.
    pub fn start_real_servers(&self, mode_args: &[&str]) -> Result<(), LabError> {
        let tunrs = find_bin("rvs-tunrs")?;
        let tunrs = tunrs.to_string_lossy();
        for role in self.rs_roles() {
            let mut args = vec![tunrs.as_ref()];
            args.extend_from_slice(mode_args);
            self.lab.spawn(&role, &args)?;
        }
        harness::start_hello_servers(&self.lab, &self.rips4)
    }

    /// Starts rvsd on `d0` and waits until its control socket answers.
    pub fn start_rvsd(&self, extra_args: &[&str]) -> Result<Rvsd, LabError> {
        harness::start_rvsd(&self.lab, &self.socket, &["d0"], extra_args)
    }
}

impl Director for TunTopology {
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn socket(&self) -> &Path {
        &self.socket
    }
}

/// `2001:db8:<net>::<host>`, the topology's IPv6 addressing.
fn net6(net: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, net, 0, 0, 0, 0, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_mirror_the_ipv4_ones() {
        assert_eq!(net6(0x10, 0x200).to_string(), "2001:db8:10::200");
        assert_eq!(net6(0x20, hex_like(14)).to_string(), "2001:db8:20::14");
        assert_eq!(net6(0x172, 0x100).to_string(), "2001:db8:172::100");
    }
}
