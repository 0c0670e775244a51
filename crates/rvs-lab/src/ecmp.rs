//! [`EcmpTopology`]: N active directors behind one router that spreads the VIP over them by ECMP,
//! each director announcing the VIP over BGP from its own BIRD (rvsd's `--bird-include`), the
//! real servers answering the client directly (DR).
//!
//! ```text
//!  client eth0 172.31.0.10/24 -- c0 172.31.0.1/24  router (BIRD AS 65000, ECMP, L4 hash)
//!                                l0 10.77.0.1/24 -- br-lan (ns switch)
//!                                      +-- d0 director1 10.77.0.11/24 (BIRD AS 65001, rvsd)
//!                                      +-- d0 director2 10.77.0.12/24 ...
//!                                      +-- eth0 rs1 10.77.0.21/24 (VIP on lo, nginx) ...
//!  VIP 10.77.100.1 (in no subnet: only the BGP routes lead to it)
//! ```
//! The router runs BIRD with one eBGP session per director (hold time 3 s) and installs the
//! VIP's route with one next hop per announcing director (`merge paths`), hashed on the 5-tuple
//! (`fib_multipath_hash_policy=1`). The real servers hold the VIP on `lo` with
//! `arp_ignore=1`/`arp_announce=2` and route by default via the router.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::bird::Bird;
use crate::harness::{self, rs_role, Rvsd, CLIENT, SWITCH};
use crate::{Lab, LabError};

/// The router's namespace role.
pub const ECMP_ROUTER: &str = "router";
/// Most directors (10.77.0.11 to .19).
pub const MAX_ECMP_DIRECTORS: usize = 9;
/// Most real servers (10.77.0.21 to .29).
pub const MAX_ECMP_REAL_SERVERS: usize = 9;
/// The router's AS number.
pub const ROUTER_AS: u32 = 65000;
/// The directors' AS number (all the same, so their paths are equal and merge).
pub const DIRECTOR_AS: u32 = 65001;
/// The HTTP port nginx serves on the real servers.
pub const ECMP_HTTP_PORT: u16 = 80;

/// The ECMP topology.
#[derive(Debug)]
pub struct EcmpTopology {
    /// The namespaces; dropping the topology tears them down.
    pub lab: Lab,
    /// The VIP, 10.77.100.1.
    pub vip: Ipv4Addr,
    /// The client, 172.31.0.10.
    pub client: Ipv4Addr,
    /// The router's LAN address (the directors' BGP peer, the real servers' gateway).
    pub router_lan: Ipv4Addr,
    /// The directors' addresses, 10.77.0.11, .12, ...
    pub directors: Vec<Ipv4Addr>,
    /// The real servers' addresses, 10.77.0.21, .22, ...
    pub rips: Vec<Ipv4Addr>,
    /// Each director's control socket, `/run/rvs/<prefix>-director<i>.sock`.
    pub sockets: Vec<PathBuf>,
}

/// The namespace role of director `index` (0-based): `director1`, ...
pub fn ecmp_director_role(index: usize) -> String {
    format!("director{}", index + 1)
}

impl EcmpTopology {
    /// Builds the topology with `directors` directors and `real_servers` real servers; nothing
    /// runs yet.
    pub fn build(
        tag: &str,
        directors: usize,
        real_servers: usize,
    ) -> Result<EcmpTopology, LabError> {
        harness::check_rs_count(real_servers, MAX_ECMP_REAL_SERVERS)?;
        if directors == 0 || directors > MAX_ECMP_DIRECTORS {
            return Err(LabError::Invalid {
                what: "director count",
                detail: format!("{directors} (use 1 to {MAX_ECMP_DIRECTORS})"),
            });
        }
        let lab = Lab::new(tag)?;
        let sockets = (0..directors)
            .map(|i| crate::cleanup::role_socket_path_for(lab.prefix(), &ecmp_director_role(i)))
            .collect();
        let topo = EcmpTopology {
            vip: Ipv4Addr::new(10, 77, 100, 1),
            client: Ipv4Addr::new(172, 31, 0, 10),
            router_lan: Ipv4Addr::new(10, 77, 0, 1),
            directors: (0..directors)
                .map(|i| Ipv4Addr::new(10, 77, 0, 11 + i as u8))
                .collect(),
            rips: (0..real_servers)
                .map(|i| Ipv4Addr::new(10, 77, 0, 21 + i as u8))
                .collect(),
            sockets,
            lab,
        };
        topo.wire()?;
        Ok(topo)
    }

    fn wire(&self) -> Result<(), LabError> {
        let lab = &self.lab;
        for role in [CLIENT, ECMP_ROUTER, SWITCH] {
            lab.add_ns(role)?;
        }
        for socket in &self.sockets {
            lab.remove_at_teardown(socket);
        }
        harness::veth(lab, CLIENT, "eth0", ECMP_ROUTER, "c0")?;
        harness::veth(lab, ECMP_ROUTER, "l0", SWITCH, "p0")?;
        let mut ports = vec!["p0".to_string()];
        for index in 0..self.directors.len() {
            let role = ecmp_director_role(index);
            lab.add_ns(&role)?;
            let port = format!("d{}", index + 1);
            harness::veth(lab, &role, "d0", SWITCH, &port)?;
            ports.push(port);
        }
        ports.extend(harness::add_real_servers(lab, self.rips.len(), |i| {
            format!("r{}", i + 1)
        })?);
        harness::bridge(lab, "br-lan", &ports)?;

        lab.ip(
            CLIENT,
            &[
                format!("addr add {}/24 dev eth0", self.client),
                "link set eth0 up".into(),
                "route add default via 172.31.0.1".into(),
            ],
        )?;
        lab.sysctl(ECMP_ROUTER, "net.ipv4.ip_forward", "1")?;
        lab.sysctl(ECMP_ROUTER, "net.ipv4.fib_multipath_hash_policy", "1")?;
        lab.sysctl(ECMP_ROUTER, "net.ipv4.conf.all.rp_filter", "0")?;
        lab.ip(
            ECMP_ROUTER,
            &[
                "addr add 172.31.0.1/24 dev c0".into(),
                format!("addr add {}/24 dev l0", self.router_lan),
                "link set c0 up".into(),
                "link set l0 up".into(),
            ],
        )?;
        for (index, dip) in self.directors.iter().enumerate() {
            lab.ip(
                &ecmp_director_role(index),
                &[
                    format!("addr add {dip}/24 dev d0"),
                    "link set d0 up".into(),
                    format!("route add default via {}", self.router_lan),
                ],
            )?;
        }
        for (index, rip) in self.rips.iter().enumerate() {
            let role = rs_role(index);
            for key in ["all", "lo"] {
                lab.sysctl(&role, &format!("net.ipv4.conf.{key}.arp_ignore"), "1")?;
                lab.sysctl(&role, &format!("net.ipv4.conf.{key}.arp_announce"), "2")?;
            }
            lab.ip(
                &role,
                &[
                    format!("addr add {rip}/24 dev eth0"),
                    format!("addr add {}/32 dev lo", self.vip),
                    "link set eth0 up".into(),
                    format!("route add default via {}", self.router_lan),
                ],
            )?;
        }
        Ok(())
    }

    /// The router's BIRD configuration: a BGP session to every director, routes merged into
    /// one multipath kernel route.
    pub fn router_bird_conf(&self) -> String {
        let mut conf = format!(
            "log stderr all;\n\
             router id {router};\n\
             protocol device {{ scan time 1; }}\n\
             protocol kernel {{\n\
             \tipv4 {{ import none; export all; }};\n\
             \tmerge paths on;\n\
             }}\n\
             template bgp director {{\n\
             \tlocal {router} as {ROUTER_AS};\n\
             \thold time 3; keepalive time 1;\n\
             \tconnect delay time 1; connect retry time 1; error wait time 1, 2;\n\
             \tipv4 {{ import all; export none; }};\n\
             }}\n",
            router = self.router_lan
        );
        for (index, dip) in self.directors.iter().enumerate() {
            conf.push_str(&format!(
                "protocol bgp {} from director {{ neighbor {dip} as {DIRECTOR_AS}; }}\n",
                ecmp_director_role(index)
            ));
        }
        conf
    }

    /// Director `index`'s BIRD configuration: rvsd's include file (by a wildcard, so BIRD
    /// starts before rvsd has written it) and one BGP session to the router exporting only
    /// rvsd's protocol.
    pub fn director_bird_conf(&self, index: usize) -> String {
        format!(
            "log stderr all;\n\
             router id {dip};\n\
             protocol device {{ scan time 1; }}\n\
             include \"{include}*\";\n\
             protocol bgp upstream {{\n\
             \tlocal {dip} as {DIRECTOR_AS};\n\
             \tneighbor {router} as {ROUTER_AS};\n\
             \thold time 3; keepalive time 1;\n\
             \tconnect delay time 1; connect retry time 1; error wait time 1, 2;\n\
             \tipv4 {{ import none; export where proto = \"rvs_vips4\"; }};\n\
             }}\n",
            dip = self.directors[index],
            include = self.bird_include(index).display(),
            router = self.router_lan,
        )
    }

    /// Where director `index`'s rvsd writes its BIRD include file.
    pub fn bird_include(&self, index: usize) -> PathBuf {
        self.lab
            .log_dir()
            .join(format!("{}-vips.conf", ecmp_director_role(index)))
    }

    /// Starts the router's BIRD.
    pub fn start_router_bird(&self) -> Result<Bird, LabError> {
        self.lab
            .start_bird(ECMP_ROUTER, "router-bird", &self.router_bird_conf())
    }

    /// Starts director `index`'s BIRD.
    pub fn start_director_bird(&self, index: usize) -> Result<Bird, LabError> {
        let role = ecmp_director_role(index);
        self.lab.start_bird(
            &role,
            &format!("{role}-bird"),
            &self.director_bird_conf(index),
        )
    }

    /// The control socket director `index`'s BIRD has once started.
    pub fn director_bird_socket(&self, index: usize) -> PathBuf {
        self.lab
            .log_dir()
            .join(format!("{}-bird.ctl", ecmp_director_role(index)))
    }

    /// Starts rvsd on director `index`'s `d0`, announcing through its BIRD, with `extra_args`.
    pub fn start_rvsd_on(&self, index: usize, extra_args: &[&str]) -> Result<Rvsd, LabError> {
        let include = self.bird_include(index).display().to_string();
        let bird_socket = self.director_bird_socket(index).display().to_string();
        let mut args = vec![
            "--bird-include",
            include.as_str(),
            "--bird-socket",
            bird_socket.as_str(),
        ];
        args.extend_from_slice(extra_args);
        harness::start_rvsd_in(
            &self.lab,
            &ecmp_director_role(index),
            &self.sockets[index],
            &["d0"],
            &args,
        )
    }

    /// Runs rvsadm against director `index`'s rvsd; its stdout, failing unless it succeeds.
    pub fn rvsadm_ok_on(&self, index: usize, args: &[&str]) -> Result<String, LabError> {
        harness::rvsadm_ok(&self.sockets[index], args)
    }

    /// Starts nginx on every real server: port 80 on every address (the VIP included), serving
    /// `big.bin` (`len` bytes) at `rate` per connection (nginx's `limit_rate`, e.g. `40k`) with
    /// an `X-RS: rs<i>` header; returns the pids in real-server order.
    pub fn start_nginx(&self, len: usize, rate: &str) -> Result<Vec<u32>, LabError> {
        let mut pids = Vec::new();
        for (index, rip) in self.rips.iter().enumerate() {
            let role = rs_role(index);
            let prefix = self.lab.log_dir().join(format!("{role}-nginx"));
            let www = prefix.join("www");
            std::fs::create_dir_all(&www)
                .map_err(|e| LabError::io(format!("creating {}", www.display()), e))?;
            let body: Vec<u8> = (0..len as u64).map(crate::pattern_byte).collect();
            std::fs::write(www.join("big.bin"), body)
                .map_err(|e| LabError::io("writing big.bin", e))?;
            let server = format!(
                "      listen {ECMP_HTTP_PORT};\n\
                       root {www};\n\
                       location / {{ limit_rate {rate}; add_header X-RS {role}; }}\n",
                www = www.display()
            );
            let addr = SocketAddr::new(IpAddr::V4(*rip), ECMP_HTTP_PORT);
            pids.push(crate::spawn_nginx(
                &self.lab, &role, &prefix, &server, addr,
            )?);
        }
        Ok(pids)
    }

    /// The next hops of the VIP's route on the router (`ip route show`), as director indexes,
    /// sorted; empty when no director announces it.
    pub fn router_next_hops(&self) -> Result<Vec<usize>, LabError> {
        let out = self.lab.exec_ok(
            ECMP_ROUTER,
            &["ip", "-4", "route", "show", &format!("{}/32", self.vip)],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut hops: Vec<usize> = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .filter_map(|w| w[1].parse::<Ipv4Addr>().ok())
            .filter_map(|ip| self.directors.iter().position(|d| *d == ip))
            .collect();
        hops.sort_unstable();
        hops.dedup();
        Ok(hops)
    }

    /// Waits (at most `limit`) until the router's route to the VIP has exactly the directors
    /// `want` (sorted) as next hops; returns how long that took.
    pub fn wait_next_hops(&self, want: &[usize], limit: Duration) -> Result<Duration, LabError> {
        let mut last = Vec::new();
        let took = crate::wait_for(limit, || {
            last = self.router_next_hops().unwrap_or_default();
            last == want
        });
        took.ok_or_else(|| LabError::Timeout {
            what: format!(
                "the router's ECMP route to the VIP via directors {want:?} (last: {last:?})"
            ),
            after: limit,
        })
    }

    /// The client ports of the established HTTP connections real server `index` holds for the
    /// VIP (`ss` in its namespace).
    pub fn flows_on_real_server(&self, index: usize) -> Result<Vec<u16>, LabError> {
        let out = self.lab.exec_ok(
            &rs_role(index),
            &[
                "ss",
                "-Htn",
                "state",
                "established",
                "src",
                &format!("{}:{ECMP_HTTP_PORT}", self.vip),
            ],
        )?;
        let client = self.client.to_string();
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .filter_map(|peer| peer.rsplit_once(':'))
            .filter(|(ip, _)| *ip == client)
            .filter_map(|(_, port)| port.parse().ok())
            .collect())
    }
}
