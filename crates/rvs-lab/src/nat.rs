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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::cleanup::socket_path_for;
use crate::{cmd, find_bin, Lab, LabError};

/// The client's namespace role.
pub const CLIENT: &str = "client";
/// The director's namespace role.
pub const DIRECTOR: &str = "director";
/// The role of the namespace holding the bridge.
pub const SWITCH: &str = "switch";
/// Ports every real server listens on over HTTP (see [`NatTopology::start_real_servers`]).
pub const RS_HTTP_PORTS: [u16; 2] = [80, 8080];
/// The UDP port every real server answers on.
pub const RS_UDP_PORT: u16 = 5353;
/// How long [`NatTopology::start_rvsd`] waits for the control socket.
const RVSD_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most real servers one topology can have (addresses .2 to .201).
pub const MAX_REAL_SERVERS: usize = 200;

/// A running rvsd started by [`NatTopology::start_rvsd`]; stopped at teardown.
#[derive(Debug, Clone)]
pub struct Rvsd {
    /// Its pid (in the director namespace; pids are global).
    pub pid: u32,
    /// Its control socket.
    pub socket: PathBuf,
}

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

/// The namespace role of real server `index` (from 0): `rs1`, `rs2`, ...
pub fn rs_role(index: usize) -> String {
    format!("rs{}", index + 1)
}

impl NatTopology {
    /// Builds the topology with `real_servers` real servers (1 to [`MAX_REAL_SERVERS`]).
    pub fn build(tag: &str, real_servers: usize) -> Result<NatTopology, LabError> {
        if real_servers == 0 || real_servers > MAX_REAL_SERVERS {
            return Err(LabError::Invalid {
                what: "real server count",
                detail: format!("{real_servers} (use 1 to {MAX_REAL_SERVERS})"),
            });
        }
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
        let director = lab.add_ns(DIRECTOR)?;
        let switch = lab.add_ns(SWITCH)?;
        lab.remove_at_teardown(&self.socket);

        // Links are created inside a namespace with the peer placed straight into another, so
        // no name ever appears in (or collides in) the root namespace.
        lab.ip(
            CLIENT,
            &[format!(
                "link add eth0 type veth peer name d0 netns {director}"
            )],
        )?;
        lab.ip(
            DIRECTOR,
            &[format!("link add d1 type veth peer name p0 netns {switch}")],
        )?;
        let mut switch_lines = vec![
            "link add br0 type bridge stp_state 0 mcast_snooping 0".to_string(),
            "link set br0 up".to_string(),
            "link set p0 master br0".to_string(),
            "link set p0 up".to_string(),
        ];
        for index in 0..self.rips4.len() {
            let role = rs_role(index);
            lab.add_ns(&role)?;
            let port = format!("p{}", index + 1);
            lab.ip(
                &role,
                &[format!(
                    "link add eth0 type veth peer name {port} netns {switch}"
                )],
            )?;
            switch_lines.push(format!("link set {port} master br0"));
            switch_lines.push(format!("link set {port} up"));
        }
        lab.sysctl(SWITCH, "net.ipv6.conf.all.disable_ipv6", "1")?;
        lab.ip(SWITCH, &switch_lines)?;

        lab.sysctl(DIRECTOR, "net.ipv4.ip_forward", "1")?;
        lab.sysctl(DIRECTOR, "net.ipv6.conf.all.forwarding", "1")?;
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

    /// The namespace roles of the real servers, `rs1`, `rs2`, ...
    pub fn rs_roles(&self) -> Vec<String> {
        (0..self.rips4.len()).map(rs_role).collect()
    }

    /// The text real server `index` answers with: `hello,<its IPv4 address>`.
    pub fn rs_text(&self, index: usize) -> String {
        match self.rips4.get(index) {
            Some(ip) => format!("hello,{ip}"),
            None => String::new(),
        }
    }

    /// Starts `rvs-lab serve --text hello,<rip4> --http 80 --http 8080 --udp 5353` on every real
    /// server and waits (bounded) until each accepts connections.
    pub fn start_real_servers(&self) -> Result<(), LabError> {
        let lab_bin = find_bin("rvs-lab")?;
        let lab_bin = lab_bin.to_string_lossy();
        for index in 0..self.rips4.len() {
            let text = self.rs_text(index);
            let mut args = vec![lab_bin.as_ref(), "serve", "--text", text.as_str()];
            let ports: Vec<String> = RS_HTTP_PORTS.iter().map(u16::to_string).collect();
            for port in &ports {
                args.extend(["--http", port.as_str()]);
            }
            let udp = RS_UDP_PORT.to_string();
            args.extend(["--udp", udp.as_str()]);
            self.lab.spawn(&rs_role(index), &args)?;
        }
        for index in 0..self.rips4.len() {
            for port in RS_HTTP_PORTS {
                let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
                self.lab
                    .wait_tcp(&rs_role(index), addr, Duration::from_secs(10))?;
            }
        }
        Ok(())
    }

    /// Starts `rvsd --interface d0 --interface d1 --socket <socket> <extra_args>` in the director
    /// namespace and waits (up to 10 s) until `rvsadm --socket <socket> -Ln` succeeds.
    pub fn start_rvsd(&self, extra_args: &[&str]) -> Result<Rvsd, LabError> {
        let rvsd = find_bin("rvsd")?;
        if let Some(dir) = self.socket.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
        }
        let rvsd = rvsd.to_string_lossy();
        let socket = self.socket.to_string_lossy();
        let mut args = vec![
            rvsd.as_ref(),
            "--interface",
            "d0",
            "--interface",
            "d1",
            "--socket",
            socket.as_ref(),
        ];
        args.extend_from_slice(extra_args);
        let pid = self.lab.spawn(DIRECTOR, &args)?;
        let deadline = Instant::now() + RVSD_READY_TIMEOUT;
        loop {
            if let Some(status) = self.lab.exit_status(pid) {
                return Err(LabError::DaemonExited {
                    name: "rvsd".into(),
                    status,
                    log: tail(&self.lab.log_of(pid), 40),
                });
            }
            if self.socket.exists() && self.rvsadm(&["-Ln"])?.status.success() {
                return Ok(Rvsd {
                    pid,
                    socket: self.socket.clone(),
                });
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!(
                        "rvsd's control socket {}; rvsd log:\n{}",
                        self.socket.display(),
                        tail(&self.lab.log_of(pid), 40)
                    ),
                    after: RVSD_READY_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `rvsadm --socket <socket> args...` (from the root namespace: the socket is a file) and
    /// returns its output whatever the exit status.
    pub fn rvsadm(&self, args: &[&str]) -> Result<Output, LabError> {
        let mut command = Command::new(find_bin("rvsadm")?);
        command.arg("--socket").arg(&self.socket).args(args);
        cmd::output(&mut command)
    }

    /// Runs `rvsadm --socket <socket> args...` with `input` on its standard input (for `-R`) and
    /// returns its output whatever the exit status.
    pub fn rvsadm_stdin(&self, args: &[&str], input: &[u8]) -> Result<Output, LabError> {
        use std::io::Write;
        let mut command = Command::new(find_bin("rvsadm")?);
        command
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| LabError::io("starting rvsadm", e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input)
                .map_err(|e| LabError::io("writing rvsadm's input", e))?;
        }
        child
            .wait_with_output()
            .map_err(|e| LabError::io("waiting for rvsadm", e))
    }

    /// Runs rvsadm like [`NatTopology::rvsadm`] and returns its stdout; fails unless it succeeds.
    pub fn rvsadm_ok(&self, args: &[&str]) -> Result<String, LabError> {
        let mut command = Command::new(find_bin("rvsadm")?);
        command.arg("--socket").arg(&self.socket).args(args);
        let out = cmd::run(&mut command)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Fetches `url` with curl from the client namespace (5 s limit) and returns the body; fails
    /// on a connection error or an HTTP error status.
    pub fn curl(&self, url: &str) -> Result<String, LabError> {
        let out = self.lab.exec_ok(
            CLIENT,
            &["curl", "-sS", "--fail", "--max-time", "5", "--", url],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// `h` written so that its hex form reads like the decimal number: 2 -> 0x2, 10 -> 0x10.
fn hex_like(h: u16) -> u16 {
    u16::from_str_radix(&h.to_string(), 16).unwrap_or(h)
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_host_parts_read_like_the_ipv4_ones() {
        assert_eq!(hex_like(2), 0x2);
        assert_eq!(hex_like(10), 0x10);
        assert_eq!(hex_like(201), 0x201);
        assert_eq!(
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, hex_like(253)).to_string(),
            "2001:db8:1::253"
        );
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
