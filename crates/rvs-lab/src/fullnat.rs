//! [`FullNatTopology`]: seed 004's network where the real servers have no route back to the
//! client, so only FULLNAT (both addresses rewritten) reaches them.
//!
//! ```text
//!  client                    director                        switch        rs1, rs2, ...
//!  eth0 192.168.1.2/24 ---- d0 192.168.1.253/24 (VIP)
//!                            d1 10.10.10.1/24 (DIP)    ---- br0 ---- eth0 10.10.10.2/24 (no default route)
//!                               10.10.10.101, .102 (LIPs)         eth0 10.10.10.3/24 ...
//!                               2001:db8:10::101, ::102
//! ```
//! The same namespaces as [`NatTopology`], plus the local addresses on the director's inside
//! interface and without the real servers' default routes.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::harness::{rs_role, DIRECTOR};
use crate::lab::Lab;
use crate::nat::NatTopology;
use crate::LabError;

/// The FULLNAT topology.
#[derive(Debug)]
pub struct FullNatTopology {
    /// The underlying NAT topology (namespaces, addresses, helpers).
    pub nat: NatTopology,
    /// The director's IPv4 local addresses, 10.10.10.101 and 10.10.10.102.
    pub lips4: Vec<Ipv4Addr>,
    /// The director's IPv6 local addresses, 2001:db8:10::101 and ::102.
    pub lips6: Vec<Ipv6Addr>,
}

impl FullNatTopology {
    /// Builds the topology with `real_servers` real servers.
    pub fn build(tag: &str, real_servers: usize) -> Result<FullNatTopology, LabError> {
        let nat = NatTopology::build(tag, real_servers)?;
        let topology = FullNatTopology {
            nat,
            lips4: vec![
                Ipv4Addr::new(10, 10, 10, 101),
                Ipv4Addr::new(10, 10, 10, 102),
            ],
            lips6: vec![
                Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x101),
                Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x102),
            ],
        };
        topology.rewire()?;
        Ok(topology)
    }

    fn rewire(&self) -> Result<(), LabError> {
        let lab = &self.nat.lab;
        let mut lines = Vec::new();
        for lip in &self.lips4 {
            lines.push(format!("addr add {lip}/24 dev d1"));
        }
        for lip in &self.lips6 {
            lines.push(format!("addr add {lip}/64 dev d1 nodad"));
        }
        lab.ip(DIRECTOR, &lines)?;
        for index in 0..self.nat.rips4.len() {
            // The real servers reach only their own network: no way back to the client.
            lab.ip(
                &rs_role(index),
                &[
                    "route del default".to_string(),
                    "route del ::/0".to_string(),
                ],
            )?;
        }
        Ok(())
    }

    /// The local addresses as rvsadm's `--laddr` value, one family.
    pub fn laddr_arg(&self, v6: bool) -> String {
        let list: Vec<String> = if v6 {
            self.lips6.iter().map(|a| a.to_string()).collect()
        } else {
            self.lips4.iter().map(|a| a.to_string()).collect()
        };
        list.join(",")
    }
}

/// Port nginx listens on (with `proxy_protocol`) in [`FullNatTopology::start_nginx`].
pub const NGINX_PORT: u16 = 8088;

/// Size of the file nginx serves as `/big` (the `/bytes/N` pattern of the built-in server).
pub const NGINX_BIG_LEN: usize = 1 << 20;

impl FullNatTopology {
    /// Starts nginx (one worker) on every real server, listening on [`NGINX_PORT`] with the
    /// PROXY protocol required, IPv4 and IPv6: `GET /addr` answers
    /// `$proxy_protocol_addr $remote_addr`, `GET /big` serves [`NGINX_BIG_LEN`] bytes of the
    /// built-in server's pattern, `PUT /up/NAME` stores the body under [`Self::nginx_root`].
    /// Waits (bounded) until each accepts connections.
    pub fn start_nginx(&self) -> Result<(), LabError> {
        let lab = &self.nat.lab;
        for (index, rip) in self.nat.rips4.iter().enumerate() {
            let role = rs_role(index);
            let prefix = lab.log_dir().join(format!("nginx-{role}"));
            let root = self.nginx_root(index);
            let io = |what: &str, e| LabError::io(format!("{what} for nginx in {role}"), e);
            std::fs::create_dir_all(root.join("up")).map_err(|e| io("creating the root", e))?;
            std::fs::write(
                root.join("big"),
                crate::server::http::pattern(NGINX_BIG_LEN),
            )
            .map_err(|e| io("writing /big", e))?;
            let r = root.display();
            let server = format!(
                "     listen {NGINX_PORT} proxy_protocol;\n\
                      listen [::]:{NGINX_PORT} proxy_protocol;\n\
                      root {r};\n\
                      location = /addr {{ return 200 \"$proxy_protocol_addr $remote_addr\\n\"; }}\n\
                      location /up/ {{ dav_methods PUT; create_full_put_path on; }}\n"
            );
            crate::nginx::spawn_nginx(
                lab,
                &role,
                &prefix,
                &server,
                std::net::SocketAddr::new((*rip).into(), NGINX_PORT),
            )?;
        }
        Ok(())
    }

    /// The directory nginx on real server `index` serves (and stores `PUT /up/` bodies in).
    pub fn nginx_root(&self, index: usize) -> std::path::PathBuf {
        self.nat
            .lab
            .log_dir()
            .join(format!("nginx-{}", rs_role(index)))
            .join("root")
    }
}

impl crate::Director for FullNatTopology {
    fn lab(&self) -> &Lab {
        &self.nat.lab
    }
    fn socket(&self) -> &Path {
        &self.nat.socket
    }
}
