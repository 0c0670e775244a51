//! [`NatTopology`]: the LVS-NAT network of seed 004, in namespaces.
//!
//! ```text
//!  client                    director                 switch (bridge br0)      rs1, rs2, ...
//!  eth0 192.168.1.2/24 ---- d0 192.168.1.253/24
//!       2001:db8:1::2/64       2001:db8:1::253/64
//!                            d1 10.10.10.1/24   ---- p0   br0   p1 ---- eth0 10.10.10.2/24
//!                               2001:db8:10::1/64               p2 ---- eth0 10.10.10.3/24 ...
//! ```
//! Real servers route by default via 10.10.10.1 / 2001:db8:10::1, the client via the director's
//! outside addresses. The director forwards (ip_forward=1) but runs nothing until
//! [`NatTopology::start_rvsd`].

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::cleanup::socket_path_for;
use crate::harness::{self, hex_like, rs_role, Rvsd, CLIENT, DIRECTOR, SWITCH};
use crate::{Lab, LabError};

/// Most real servers one topology can have (addresses .2 to .201).
pub const MAX_REAL_SERVERS: usize = 200;

/// The NAT topology of seed 004 with a configurable number of real servers.
#[derive(Debug)]
pub struct NatTopology {
    /// The namespaces; dropping the topology tears them down.
    pub lab: Lab,
    /// The virtual IPv4 address (the director's outside address), 192.168.1.253.
    pub vip4: Ipv4Addr,
    /// The virtual IPv6 address, 2001:db8:1::253.
    pub vip6: Ipv6Addr,
    /// Real servers' IPv4 addresses, 10.10.10.2, .3, ...
    pub rips4: Vec<Ipv4Addr>,
    /// Real servers' IPv6 addresses, 2001:db8:10::2, ::3, ...
    pub rips6: Vec<Ipv6Addr>,
    /// The client's IPv4 address, 192.168.1.2.
    pub client4: Ipv4Addr,
    /// The client's IPv6 address, 2001:db8:1::2.
    pub client6: Ipv6Addr,
    /// The director's inside IPv4 address (the real servers' gateway), 10.10.10.1.
    pub dip4: Ipv4Addr,
    /// The director's inside IPv6 address, 2001:db8:10::1.
    pub dip6: Ipv6Addr,
    /// The control socket rvsd gets: `/run/rvs/<prefix>.sock`.
    pub socket: PathBuf,
}

impl NatTopology {
    /// Builds the topology with `real_servers` real servers (1 to [`MAX_REAL_SERVERS`]).
    pub fn build(tag: &str, real_servers: usize) -> Result<NatTopology, LabError> {
        harness::check_rs_count(real_servers, MAX_REAL_SERVERS)?;
        let lab = Lab::new(tag)?;
        let socket = socket_path_for(lab.prefix());
        let hosts = 2..(2 + real_servers as u16);
        let topology = NatTopology {
            vip4: Ipv4Addr::new(192, 168, 1, 253),
            vip6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x253),
            rips4: hosts
                .clone()
                .map(|h| Ipv4Addr::new(10, 10, 10, h as u8))
                .collect(),
            rips6: hosts
                .map(|h| Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, hex_like(h)))
                .collect(),
            client4: Ipv4Addr::new(192, 168, 1, 2),
            client6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2),
            dip4: Ipv4Addr::new(10, 10, 10, 1),
            dip6: Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 1),
            socket,
            lab,
        };
        topology.wire()?;
        Ok(topology)
    }

    /// Creates the namespaces, links, addresses and routes.
    fn wire(&self) -> Result<(), LabError> {
        let lab = &self.lab;
        lab.add_ns(CLIENT)?;
        lab.add_ns(DIRECTOR)?;
        lab.add_ns(SWITCH)?;
        lab.remove_at_teardown(&self.socket);

        harness::veth(lab, CLIENT, "eth0", DIRECTOR, "d0")?;
        harness::veth(lab, DIRECTOR, "d1", SWITCH, "p0")?;
        let mut ports = vec!["p0".to_string()];
        ports.extend(harness::add_real_servers(lab, self.rips4.len(), |i| {
            format!("p{}", i + 1)
        })?);
        harness::bridge(lab, "br0", &ports)?;

        harness::enable_forwarding(lab, DIRECTOR)?;
        lab.ip(
            DIRECTOR,
            &[
                format!("addr add {}/24 dev d0", self.vip4),
                format!("addr add {}/64 dev d0 nodad", self.vip6),
                format!("addr add {}/24 dev d1", self.dip4),
                format!("addr add {}/64 dev d1 nodad", self.dip6),
                "link set d0 up".to_string(),
                "link set d1 up".to_string(),
            ],
        )?;
        lab.ip(
            CLIENT,
            &[
                format!("addr add {}/24 dev eth0", self.client4),
                format!("addr add {}/64 dev eth0 nodad", self.client6),
                "link set eth0 up".to_string(),
                format!("route add default via {}", self.vip4),
                format!("route add default via {}", self.vip6),
            ],
        )?;
        for (index, (rip4, rip6)) in self.rips4.iter().zip(&self.rips6).enumerate() {
            let role = rs_role(index);
            // As in the seeds' real-server scripts: answer ARP only for local addresses.
            lab.sysctl(&role, "net.ipv4.conf.all.arp_ignore", "1")?;
            lab.sysctl(&role, "net.ipv4.conf.all.arp_announce", "2")?;
            lab.ip(
                &role,
                &[
                    format!("addr add {rip4}/24 dev eth0"),
                    format!("addr add {rip6}/64 dev eth0 nodad"),
                    "link set eth0 up".to_string(),
                    format!("route add default via {}", self.dip4),
                    format!("route add default via {}", self.dip6),
                ],
            )?;
        }
        Ok(())
    }

    /// The text real server `index` answers with: `hello,<its IPv4 address>`.
    pub fn rs_text(&self, index: usize) -> String {
        harness::hello_text(&self.rips4, index)
    }

    /// Starts `rvs-lab serve --text hello,<rip4> --http 80 --http 8080 --udp 5353` on every real
    /// server and waits (bounded) until each accepts connections.
    pub fn start_real_servers(&self) -> Result<(), LabError> {
        harness::start_hello_servers(&self.lab, &self.rips4)
    }

    /// Starts `rvsd --interface d0 --interface d1 --socket <socket> <extra_args>` in the director
    /// namespace and waits (up to 10 s) until `rvsadm --socket <socket> -Ln` succeeds.
    pub fn start_rvsd(&self, extra_args: &[&str]) -> Result<Rvsd, LabError> {
        harness::start_rvsd(&self.lab, &self.socket, &["d0", "d1"], extra_args)
    }
}
