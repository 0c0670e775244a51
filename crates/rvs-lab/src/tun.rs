//! [`TunTopology`]: LVS-TUN with the real servers behind a router, on another network than the
//! director (the issue's "the real server can sit behind a router"), in namespaces.
//!
//! ```text
//!  client                  router (ip_forward=1)
//!  eth0 172.30.0.100/24 -- r0 172.30.0.200/24
//!                          r1 10.0.0.100/24 ------------- d0 director 10.0.0.8/24, VIP 10.0.0.200 on lo
//!                          r2 10.20.0.100/24 -- switch br0 -- eth0 rs1 10.20.0.7/24
//!                                                          -- eth0 rs2 10.20.0.14/24 ...
//! ```
//! The director tunnels the client's packets to the real servers (outer source 10.0.0.8). Every
//! real server holds the VIP on `lo` (with seed 003's `arp_ignore=1` / `arp_announce=2`), runs
//! `rvs-tunrs` (this kernel has no ipip/gre/fou driver) to decapsulate into a TUN device, and
//! answers the client straight through the router.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::cleanup::socket_path_for;
use crate::harness::{self, rs_role, Rvsd, CLIENT, DIRECTOR, SWITCH};
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
    /// Real servers' addresses, 10.20.0.7, .14, ...
    pub rips4: Vec<Ipv4Addr>,
    /// The client's address, 172.30.0.100.
    pub client4: Ipv4Addr,
    /// The director's own address (the tunnels' outer source), 10.0.0.8.
    pub dip4: Ipv4Addr,
    /// The control socket rvsd gets.
    pub socket: PathBuf,
}

impl TunTopology {
    /// Builds the topology with `real_servers` real servers (1 to [`MAX_TUN_REAL_SERVERS`]).
    pub fn build(tag: &str, real_servers: usize) -> Result<TunTopology, LabError> {
        if real_servers == 0 || real_servers > MAX_TUN_REAL_SERVERS {
            return Err(LabError::Invalid {
                what: "real server count",
                detail: format!("{real_servers} (use 1 to {MAX_TUN_REAL_SERVERS})"),
            });
        }
        let lab = Lab::new(tag)?;
        let socket = socket_path_for(lab.prefix());
        let topology = TunTopology {
            vip4: Ipv4Addr::new(10, 0, 0, 200),
            rips4: (1..=real_servers as u8)
                .map(|k| Ipv4Addr::new(10, 20, 0, k * 7))
                .collect(),
            client4: Ipv4Addr::new(172, 30, 0, 100),
            dip4: Ipv4Addr::new(10, 0, 0, 8),
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
        for index in 0..self.rips4.len() {
            let role = rs_role(index);
            lab.add_ns(&role)?;
            let port = format!("p{}", index + 1);
            harness::veth(lab, &role, "eth0", SWITCH, &port)?;
            ports.push(port);
        }
        harness::bridge(lab, &ports)?;
        lab.ip(
            CLIENT,
            &[
                format!("addr add {}/24 dev eth0", self.client4),
                "link set eth0 up".to_string(),
                "route add default via 172.30.0.200".to_string(),
            ],
        )?;
        harness::enable_forwarding(lab, ROUTER)?;
        lab.ip(
            ROUTER,
            &[
                "addr add 172.30.0.200/24 dev r0".to_string(),
                "addr add 10.0.0.100/24 dev r1".to_string(),
                "addr add 10.20.0.100/24 dev r2".to_string(),
                "link set r0 up".to_string(),
                "link set r1 up".to_string(),
                "link set r2 up".to_string(),
            ],
        )?;
        lab.ip(
            DIRECTOR,
            &[
                format!("addr add {}/24 dev d0", self.dip4),
                format!("addr add {}/32 dev lo", self.vip4),
                "link set lo up".to_string(),
                "link set d0 up".to_string(),
                "route add default via 10.0.0.100".to_string(),
            ],
        )?;
        for (index, rip) in self.rips4.iter().enumerate() {
            let role = rs_role(index);
            for scope in ["all", "lo"] {
                lab.sysctl(&role, &format!("net.ipv4.conf.{scope}.arp_ignore"), "1")?;
                lab.sysctl(&role, &format!("net.ipv4.conf.{scope}.arp_announce"), "2")?;
            }
            lab.ip(
                &role,
                &[
                    format!("addr add {}/32 dev lo", self.vip4),
                    format!("addr add {rip}/24 dev eth0"),
                    "link set lo up".to_string(),
                    "link set eth0 up".to_string(),
                    "route add default via 10.20.0.100".to_string(),
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
        self.rips4
            .get(index)
            .map(|ip| format!("hello,{ip}"))
            .unwrap_or_default()
    }

    /// The address of real server `index`.
    pub fn rip(&self, index: usize) -> Option<IpAddr> {
        self.rips4.get(index).map(|ip| IpAddr::V4(*ip))
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
        let servers: Vec<(String, String)> = (0..self.rips4.len())
            .map(|index| (rs_role(index), self.rs_text(index)))
            .collect();
        harness::start_real_servers(&self.lab, &servers)
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
