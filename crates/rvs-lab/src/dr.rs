//! [`DrTopology`]: the LVS-DR networks of seed 003 (单网段 and 多网段), in namespaces.
//!
//! ```text
//!  client                  router (ip_forward=1)        switch (bridge br0)
//!  eth0 172.30.0.100/24 -- r0 172.30.0.200/24
//!       2001:db8:172::100     2001:db8:172::200
//!                          r1 10.0.0.100/24    -------- p0  br0  p1 ---- d0 director 10.0.0.8/24
//!                             2001:db8:10::100/64                         2001:db8:10::8/64
//!                             (multi: 192.168.0.100/24,     p2 ---- eth0 rs1 10.0.0.7/24
//!                              2001:db8:192::100/64)        p3 ---- eth0 rs2 10.0.0.14/24 ...
//! ```
//! Everyone on the LAN routes by default via the router (10.0.0.100 / 2001:db8:10::100), the
//! client via 172.30.0.200 / 2001:db8:172::200.
//!
//! VIPs: [`DrLayout::SingleSubnet`] uses 10.0.0.200 (on the director's `lo`, /32, as the seed
//! does) and 2001:db8:10::200 (on `d0`, /128); [`DrLayout::MultiSubnet`] uses 192.168.0.200 and
//! 2001:db8:192::200, both on `d0` with their network's prefix. Every real server has the VIPs on
//! `lo` (/32, /128) and the seed's `arp_ignore=1`, `arp_announce=2` on `all` and `lo`, so only the
//! director answers ARP for the VIP; Linux answers IPv6 neighbour solicitations only for addresses
//! of the receiving interface, so a VIP on `lo` stays silent there too. Replies of the real
//! servers go from the VIP straight to the router, never through the director.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::cleanup::socket_path_for;
use crate::harness::{self, hex_like, rs_role, LinkCounters, Rvsd, CLIENT, DIRECTOR, SWITCH};
use crate::{Lab, LabError};

/// The router's namespace role (between the client and the LAN).
pub const ROUTER: &str = "router";
/// Most real servers a DR topology can have (addresses 10.0.0.7, .14, ... .252).
pub const MAX_DR_REAL_SERVERS: usize = 36;
/// The step between real servers' host numbers (10.0.0.7, .14, .21, ...), as in the seed.
const RS_STEP: u16 = 7;

/// Where the VIP lives relative to the real servers' network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrLayout {
    /// Seed 003 范例1: the VIP (10.0.0.200) is in the LAN's own network.
    SingleSubnet,
    /// Seed 003 多网段: the VIP (192.168.0.200) is in a second network on the same LAN.
    MultiSubnet,
}

/// The DR topology of seed 003 with a configurable number of real servers.
#[derive(Debug)]
pub struct DrTopology {
    /// The namespaces; dropping the topology tears them down.
    pub lab: Lab,
    /// Which of the seed's two layouts this is.
    pub layout: DrLayout,
    /// The virtual IPv4 address: 10.0.0.200 (single) or 192.168.0.200 (multi).
    pub vip4: Ipv4Addr,
    /// The virtual IPv6 address: 2001:db8:10::200 (single) or 2001:db8:192::200 (multi).
    pub vip6: Ipv6Addr,
    /// Real servers' IPv4 addresses, 10.0.0.7, .14, .21, ...
    pub rips4: Vec<Ipv4Addr>,
    /// Real servers' IPv6 addresses, 2001:db8:10::7, ::14, ::21, ...
    pub rips6: Vec<Ipv6Addr>,
    /// The client's IPv4 address, 172.30.0.100.
    pub client4: Ipv4Addr,
    /// The client's IPv6 address, 2001:db8:172::100.
    pub client6: Ipv6Addr,
    /// The router's LAN IPv4 address (everyone's gateway), 10.0.0.100.
    pub router4: Ipv4Addr,
    /// The router's LAN IPv6 address, 2001:db8:10::100.
    pub router6: Ipv6Addr,
    /// The director's own IPv4 address (DIP), 10.0.0.8.
    pub dip4: Ipv4Addr,
    /// The director's own IPv6 address, 2001:db8:10::8.
    pub dip6: Ipv6Addr,
    /// The control socket rvsd gets: `/run/rvs/<prefix>.sock`.
    pub socket: PathBuf,
}

impl DrTopology {
    /// Builds the topology with `real_servers` real servers (1 to [`MAX_DR_REAL_SERVERS`]).
    pub fn build(tag: &str, real_servers: usize, layout: DrLayout) -> Result<DrTopology, LabError> {
        harness::check_rs_count(real_servers, MAX_DR_REAL_SERVERS)?;
        let lab = Lab::new(tag)?;
        let socket = socket_path_for(lab.prefix());
        let hosts: Vec<u16> = (1..=real_servers as u16).map(|k| k * RS_STEP).collect();
        let (vip4, vip6) = match layout {
            DrLayout::SingleSubnet => (
                Ipv4Addr::new(10, 0, 0, 200),
                Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x200),
            ),
            DrLayout::MultiSubnet => (
                Ipv4Addr::new(192, 168, 0, 200),
                Ipv6Addr::new(0x2001, 0xdb8, 0x192, 0, 0, 0, 0, 0x200),
            ),
        };
        let topology = DrTopology {
            layout,
            vip4,
            vip6,
            rips4: hosts
                .iter()
                .map(|&h| Ipv4Addr::new(10, 0, 0, h as u8))
                .collect(),
            rips6: hosts
                .iter()
                .map(|&h| Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, hex_like(h)))
                .collect(),
            client4: Ipv4Addr::new(172, 30, 0, 100),
            client6: Ipv6Addr::new(0x2001, 0xdb8, 0x172, 0, 0, 0, 0, 0x100),
            router4: Ipv4Addr::new(10, 0, 0, 100),
            router6: Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x100),
            dip4: Ipv4Addr::new(10, 0, 0, 8),
            dip6: Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 8),
            socket,
            lab,
        };
        topology.wire()?;
        Ok(topology)
    }

    /// Creates the namespaces, links, addresses and routes.
    fn wire(&self) -> Result<(), LabError> {
        let lab = &self.lab;
        for role in [CLIENT, ROUTER, SWITCH, DIRECTOR] {
            lab.add_ns(role)?;
        }
        lab.remove_at_teardown(&self.socket);

        harness::veth(lab, CLIENT, "eth0", ROUTER, "r0")?;
        harness::veth(lab, ROUTER, "r1", SWITCH, "p0")?;
        harness::veth(lab, DIRECTOR, "d0", SWITCH, "p1")?;
        let mut ports = vec!["p0".to_string(), "p1".to_string()];
        ports.extend(harness::add_real_servers(lab, self.rips4.len(), |i| {
            format!("p{}", i + 2)
        })?);
        harness::bridge(lab, "br0", &ports)?;

        let gateway4 = Ipv4Addr::new(172, 30, 0, 200);
        let gateway6 = Ipv6Addr::new(0x2001, 0xdb8, 0x172, 0, 0, 0, 0, 0x200);
        lab.ip(
            CLIENT,
            &[
                format!("addr add {}/24 dev eth0", self.client4),
                format!("addr add {}/64 dev eth0 nodad", self.client6),
                "link set eth0 up".to_string(),
                format!("route add default via {gateway4}"),
                format!("route add default via {gateway6}"),
            ],
        )?;

        harness::enable_forwarding(lab, ROUTER)?;
        let mut router = vec![
            format!("addr add {gateway4}/24 dev r0"),
            format!("addr add {gateway6}/64 dev r0 nodad"),
            format!("addr add {}/24 dev r1", self.router4),
            format!("addr add {}/64 dev r1 nodad", self.router6),
        ];
        let mut director = vec![
            format!("addr add {}/24 dev d0", self.dip4),
            format!("addr add {}/64 dev d0 nodad", self.dip6),
        ];
        match self.layout {
            DrLayout::SingleSubnet => {
                director.push(format!("addr add {}/32 dev lo", self.vip4));
                director.push(format!("addr add {}/128 dev d0 nodad", self.vip6));
            }
            DrLayout::MultiSubnet => {
                // The router gets an address in the VIP's network so it reaches the VIP on-link.
                router.push(format!(
                    "addr add {}/24 dev r1",
                    Ipv4Addr::new(192, 168, 0, 100)
                ));
                router.push(format!(
                    "addr add {}/64 dev r1 nodad",
                    Ipv6Addr::new(0x2001, 0xdb8, 0x192, 0, 0, 0, 0, 0x100)
                ));
                director.push(format!("addr add {}/24 dev d0", self.vip4));
                director.push(format!("addr add {}/64 dev d0 nodad", self.vip6));
            }
        }
        router.extend(["link set r0 up".to_string(), "link set r1 up".to_string()]);
        lab.ip(ROUTER, &router)?;
        director.extend(self.lan_tail("d0"));
        lab.ip(DIRECTOR, &director)?;

        for (index, (rip4, rip6)) in self.rips4.iter().zip(&self.rips6).enumerate() {
            let role = rs_role(index);
            // Exactly the seed's sysctls: answer ARP only for addresses of the receiving
            // interface, and announce only addresses of the outgoing one.
            for scope in ["all", "lo"] {
                lab.sysctl(&role, &format!("net.ipv4.conf.{scope}.arp_ignore"), "1")?;
                lab.sysctl(&role, &format!("net.ipv4.conf.{scope}.arp_announce"), "2")?;
            }
            let mut lines = vec![
                format!("addr add {}/32 dev lo", self.vip4),
                format!("addr add {}/128 dev lo nodad", self.vip6),
                format!("addr add {rip4}/24 dev eth0"),
                format!("addr add {rip6}/64 dev eth0 nodad"),
            ];
            lines.extend(self.lan_tail("eth0"));
            lab.ip(&role, &lines)?;
        }
        Ok(())
    }

    /// Bringing a LAN host's interface up and routing by default via the router.
    fn lan_tail(&self, dev: &str) -> Vec<String> {
        vec![
            format!("link set {dev} up"),
            format!("route add default via {}", self.router4),
            format!("route add default via {}", self.router6),
        ]
    }

    /// The text real server `index` answers with: `hello,<its IPv4 address>`.
    pub fn rs_text(&self, index: usize) -> String {
        harness::hello_text(&self.rips4, index)
    }

    /// The VIP of one family: [`DrTopology::vip4`] or [`DrTopology::vip6`].
    pub fn vip(&self, v6: bool) -> IpAddr {
        harness::of_family(v6, self.vip4, self.vip6)
    }

    /// The address of real server `index` in one family, if it exists.
    pub fn rip(&self, index: usize, v6: bool) -> Option<IpAddr> {
        harness::nth_of_family(v6, &self.rips4, &self.rips6, index)
    }

    /// Starts `rvs-lab serve --text hello,<rip4> --http 80 --http 8080 --udp 5353` on every real
    /// server (listening on `[::]`, so also on the VIPs) and waits until each accepts connections.
    pub fn start_real_servers(&self) -> Result<(), LabError> {
        harness::start_hello_servers(&self.lab, &self.rips4)
    }

    /// Starts `rvsd --interface d0 --socket <socket> <extra_args>` in the director namespace and
    /// waits (up to 10 s) until `rvsadm --socket <socket> -Ln` succeeds.
    pub fn start_rvsd(&self, extra_args: &[&str]) -> Result<Rvsd, LabError> {
        harness::start_rvsd(&self.lab, &self.socket, &["d0"], extra_args)
    }

    /// The counters of the director's only interface `d0`: its `tx_bytes` barely grows while a
    /// real server sends a large reply, because DR replies bypass the director.
    pub fn director_counters(&self) -> Result<LinkCounters, LabError> {
        harness::link_counters(&self.lab, DIRECTOR, "d0")
    }

    /// The link-layer address the router's neighbour table holds for `ip` (after traffic to it),
    /// or `None` when it has no usable entry (never resolved, `FAILED`, `INCOMPLETE`).
    pub fn router_neighbour(&self, ip: IpAddr) -> Result<Option<String>, LabError> {
        let ip = ip.to_string();
        let out = self
            .lab
            .exec_ok(ROUTER, &["ip", "neigh", "show", "to", &ip, "dev", "r1"])?;
        Ok(neighbour_lladdr(&String::from_utf8_lossy(&out.stdout)))
    }
}

/// The `lladdr` of the first line of `ip neigh show` output, if it has one.
fn neighbour_lladdr(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let mut words = line.split_whitespace();
    words.by_ref().find(|&w| w == "lladdr")?;
    words.next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lladdr_of_a_neighbour_line() {
        assert_eq!(
            neighbour_lladdr("10.0.0.200 lladdr 02:aa:bb:cc:dd:ee REACHABLE\n"),
            Some("02:aa:bb:cc:dd:ee".to_string())
        );
        assert_eq!(neighbour_lladdr("10.0.0.200 FAILED\n"), None);
        assert_eq!(neighbour_lladdr("10.0.0.200  INCOMPLETE\n"), None);
        assert_eq!(neighbour_lladdr(""), None);
    }

    #[test]
    fn real_server_addresses_follow_the_seed() {
        let hosts: Vec<u16> = (1..=3).map(|k| k * RS_STEP).collect();
        assert_eq!(hosts, [7, 14, 21]);
        assert_eq!(
            Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, hex_like(14)).to_string(),
            "2001:db8:10::14"
        );
        assert_eq!(MAX_DR_REAL_SERVERS as u16 * RS_STEP, 252);
    }
}
