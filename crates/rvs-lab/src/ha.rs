//! [`HaTopology`]: seed 002's two-director LVS-NAT network, in namespaces.
//!
//! ```text
//!                       outside segment (bridge br-out in ns "switch")
//!  client eth0 113.226.77.10/24 --+-- director1 d0 113.226.77.81/24 (+ VIP 113.226.77.88)
//!                                 +-- director2 d0 113.226.77.82/24
//!                       inside segment (bridge br-in in ns "switch")
//!  director1 d1 192.168.168.1/24 (+ inside VIP 192.168.168.11) --+-- rs1 eth0 192.168.168.238/24
//!  director2 d1 192.168.168.2/24                                 +-- rs2 eth0 192.168.168.239/24 ...
//! ```
//! The client is on the outside segment itself; the real servers route by default via the
//! inside VIP 192.168.168.11 (seed 002's `ip route add to 0.0.0.0/0 via 192.168.168.11`). The
//! VIPs belong to whichever director is active: [`HaTopology::move_vips_to`] places them by hand
//! (and announces them with gratuitous ARP) until VRRP does it. Each director gets its own
//! control socket; both forward (ip_forward=1) but run nothing until
//! [`HaTopology::start_rvsd_on`].

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use crate::harness::{self, rs_role, Rvsd, CLIENT, SWITCH};
use crate::{Lab, LabError};

/// Most real servers an HA topology can have (192.168.168.238 to .250).
pub const MAX_HA_REAL_SERVERS: usize = 13;

/// The namespace roles of the two directors.
pub const HA_DIRECTORS: [&str; 2] = ["director1", "director2"];

/// The two-director topology of seed 002.
#[derive(Debug)]
pub struct HaTopology {
    /// The namespaces; dropping the topology tears them down.
    pub lab: Lab,
    /// The outside (client-facing) VIP, 113.226.77.88/24 on `d0` of the active director.
    pub vip: Ipv4Addr,
    /// The inside VIP, the real servers' gateway, 192.168.168.11/24 on `d1` of the active one.
    pub inside_vip: Ipv4Addr,
    /// The client's address, 113.226.77.10.
    pub client: Ipv4Addr,
    /// The directors' own outside addresses, 113.226.77.81 and .82.
    pub outside_addrs: [Ipv4Addr; 2],
    /// The directors' own inside addresses (the sync segment), 192.168.168.1 and .2.
    pub inside_addrs: [Ipv4Addr; 2],
    /// The real servers' addresses, 192.168.168.238, .239, ...
    pub rips: Vec<Ipv4Addr>,
    /// Each director's control socket: `/run/rvs/<prefix>-director1.sock`, `...-director2.sock`.
    pub sockets: [PathBuf; 2],
}

impl HaTopology {
    /// Builds the topology with `real_servers` real servers (1 to [`MAX_HA_REAL_SERVERS`]); no
    /// director holds the VIPs yet.
    pub fn build(tag: &str, real_servers: usize) -> Result<HaTopology, LabError> {
        harness::check_rs_count(real_servers, MAX_HA_REAL_SERVERS)?;
        let lab = Lab::new(tag)?;
        let socket = |role: &str| crate::cleanup::role_socket_path_for(lab.prefix(), role);
        let sockets = [socket(HA_DIRECTORS[0]), socket(HA_DIRECTORS[1])];
        let topology = HaTopology {
            vip: Ipv4Addr::new(113, 226, 77, 88),
            inside_vip: Ipv4Addr::new(192, 168, 168, 11),
            client: Ipv4Addr::new(113, 226, 77, 10),
            outside_addrs: [
                Ipv4Addr::new(113, 226, 77, 81),
                Ipv4Addr::new(113, 226, 77, 82),
            ],
            inside_addrs: [
                Ipv4Addr::new(192, 168, 168, 1),
                Ipv4Addr::new(192, 168, 168, 2),
            ],
            rips: (0..real_servers)
                .map(|i| Ipv4Addr::new(192, 168, 168, 238 + i as u8))
                .collect(),
            sockets,
            lab,
        };
        topology.wire()?;
        Ok(topology)
    }

    fn wire(&self) -> Result<(), LabError> {
        let lab = &self.lab;
        lab.add_ns(CLIENT)?;
        lab.add_ns(SWITCH)?;
        for role in HA_DIRECTORS {
            lab.add_ns(role)?;
        }
        for socket in &self.sockets {
            lab.remove_at_teardown(socket);
        }
        let mut outside = vec!["o0".to_string()];
        let mut inside = Vec::new();
        harness::veth(lab, CLIENT, "eth0", SWITCH, "o0")?;
        for (i, role) in HA_DIRECTORS.iter().enumerate() {
            let (o, n) = (format!("o{}", i + 1), format!("i{}", i + 1));
            harness::veth(lab, role, "d0", SWITCH, &o)?;
            harness::veth(lab, role, "d1", SWITCH, &n)?;
            outside.push(o);
            inside.push(n);
        }
        inside.extend(harness::add_real_servers(lab, self.rips.len(), |i| {
            format!("r{}", i + 1)
        })?);
        harness::bridge(lab, "br-out", &outside)?;
        harness::bridge(lab, "br-in", &inside)?;

        for (i, role) in HA_DIRECTORS.iter().enumerate() {
            lab.sysctl(role, "net.ipv4.ip_forward", "1")?;
            lab.ip(
                role,
                &[
                    format!("addr add {}/24 dev d0", self.outside_addrs[i]),
                    format!("addr add {}/24 dev d1", self.inside_addrs[i]),
                    "link set d0 up".to_string(),
                    "link set d1 up".to_string(),
                    "link set lo up".to_string(),
                ],
            )?;
        }
        lab.ip(
            CLIENT,
            &[
                format!("addr add {}/24 dev eth0", self.client),
                "link set eth0 up".to_string(),
            ],
        )?;
        for (index, rip) in self.rips.iter().enumerate() {
            let role = rs_role(index);
            lab.sysctl(&role, "net.ipv4.conf.all.arp_ignore", "1")?;
            lab.sysctl(&role, "net.ipv4.conf.all.arp_announce", "2")?;
            lab.ip(
                &role,
                &[
                    format!("addr add {rip}/24 dev eth0"),
                    "link set eth0 up".to_string(),
                    format!("route add default via {}", self.inside_vip),
                ],
            )?;
        }
        Ok(())
    }

    /// The text real server `index` answers with: `hello,<its address>`.
    pub fn rs_text(&self, index: usize) -> String {
        harness::hello_text(&self.rips, index)
    }

    /// Starts the built-in server (`hello,<rip>` on ports 80 and 8080, `/hold/S`, ...) on every
    /// real server and waits (bounded) until each accepts connections.
    pub fn start_real_servers(&self) -> Result<(), LabError> {
        harness::start_hello_servers(&self.lab, &self.rips)
    }

    fn director(&self, index: usize) -> Result<&'static str, LabError> {
        HA_DIRECTORS.get(index).copied().ok_or(LabError::Invalid {
            what: "director index",
            detail: format!("{index} (use 0 or 1)"),
        })
    }

    /// Starts `rvsd --interface d0 --interface d1 --socket <its socket> <extra_args>` on director
    /// `index` (0 or 1) and waits (up to 10 s) until its control socket answers.
    pub fn start_rvsd_on(&self, index: usize, extra_args: &[&str]) -> Result<Rvsd, LabError> {
        let role = self.director(index)?;
        harness::start_rvsd_in(
            &self.lab,
            role,
            &self.sockets[index],
            &["d0", "d1"],
            extra_args,
        )
    }

    /// Kills `rvsd` with SIGKILL (a crash: no cleanup of its own) and reaps it.
    pub fn crash_rvsd(&self, rvsd: &Rvsd) -> Result<(), LabError> {
        crate::netns::signal(rvsd.pid, nix::sys::signal::Signal::SIGKILL);
        self.lab.kill(rvsd.pid);
        let _ = std::fs::remove_file(&rvsd.socket);
        Ok(())
    }

    /// Runs `rvsadm --socket <socket of director index> args...`; output whatever the status.
    pub fn rvsadm_on(&self, index: usize, args: &[&str]) -> Result<Output, LabError> {
        self.director(index)?;
        harness::rvsadm(&self.sockets[index], args)
    }

    /// Runs rvsadm on director `index` and returns its stdout; fails unless it succeeds.
    pub fn rvsadm_ok_on(&self, index: usize, args: &[&str]) -> Result<String, LabError> {
        self.director(index)?;
        harness::rvsadm_ok(&self.sockets[index], args)
    }

    /// Fetches `url` with curl from the client (5 s limit); fails on any error.
    pub fn curl(&self, url: &str) -> Result<String, LabError> {
        harness::curl_from(&self.lab, CLIENT, url)
    }

    /// Makes director `index` the active one by hand: removes both VIPs from the other
    /// director, adds them to this one (`d0` and `d1`), and announces them with gratuitous ARP
    /// on both segments so the client and the real servers send to the new MAC addresses.
    /// VRRP will do the same; this is its stand-in for tests.
    pub fn move_vips_to(&self, index: usize) -> Result<(), LabError> {
        let role = self.director(index)?;
        let other = self.director(1 - index)?;
        let vips = [("d0", self.vip), ("d1", self.inside_vip)];
        for (dev, vip) in vips {
            // Absent on the first placement: ignore the error.
            let _ = self.lab.exec(
                other,
                &["ip", "addr", "del", &format!("{vip}/24"), "dev", dev],
            );
        }
        let adds: Vec<String> = vips
            .iter()
            .map(|(dev, vip)| format!("addr add {vip}/24 dev {dev}"))
            .collect();
        self.lab.ip(role, &adds)?;
        self.announce(index)
    }

    /// Sends gratuitous ARP (request and reply forms) for both VIPs from director `index`, three
    /// rounds over about 1.2 s: a neighbour entry updated less than `locktime` (1 s) ago ignores
    /// one announcement, a later one gets through.
    pub fn announce(&self, index: usize) -> Result<(), LabError> {
        let role = self.director(index)?;
        let mut frames = Vec::new();
        for (dev, vip) in [("d0", self.vip), ("d1", self.inside_vip)] {
            let mac = self.lab.mac_bytes(role, dev)?;
            frames.push((dev, garp_frame(mac, vip, 1)));
            frames.push((dev, garp_frame(mac, vip, 2)));
        }
        for round in 0..3 {
            if round > 0 {
                std::thread::sleep(Duration::from_millis(600));
            }
            let frames = &frames;
            self.lab
                .try_in_netns(role, move || -> Result<(), LabError> {
                    for (dev, frame) in frames {
                        let socket =
                            rvs_io::PacketSocket::open_tx(dev).map_err(|e| LabError::Invalid {
                                what: "packet socket",
                                detail: format!("{dev}: {e}"),
                            })?;
                        socket
                            .send(&rvs_io::VnetHdr::default(), frame)
                            .map_err(|e| LabError::Invalid {
                                what: "gratuitous ARP",
                                detail: format!("{dev}: {e}"),
                            })?;
                    }
                    Ok(())
                })??;
        }
        Ok(())
    }
}

/// A broadcast gratuitous ARP frame for `ip` from `mac`: operation 1 (request) or 2 (reply),
/// sender and target protocol address both `ip`.
fn garp_frame(mac: [u8; 6], ip: Ipv4Addr, op: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]); // ARP
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, op]); // Ethernet/IPv4, op
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    let target_mac = if op == 2 { [0xff; 6] } else { [0; 6] };
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&ip.octets());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_arp_layout() {
        let mac = [2, 0, 0, 0, 0, 9];
        let f = garp_frame(mac, Ipv4Addr::new(192, 168, 168, 11), 1);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[192, 168, 168, 11]);
        assert_eq!(&f[38..42], &[192, 168, 168, 11]);
    }
}
