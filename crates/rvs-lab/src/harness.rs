//! What every topology offers on top of its wiring: the built-in real servers, rvsd on the
//! director, rvsadm against its control socket, curl from the client, and link counters.
//! [`crate::NatTopology`] and [`crate::DrTopology`] both delegate here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::server::ServeConfig;
use crate::{cmd, find_bin, Lab, LabError};

/// The client's namespace role.
pub const CLIENT: &str = "client";
/// The director's namespace role.
pub const DIRECTOR: &str = "director";
/// The role of the namespace holding the bridge.
pub const SWITCH: &str = "switch";
/// Ports every real server listens on over HTTP (see [`start_real_servers`]).
pub const RS_HTTP_PORTS: [u16; 2] = [80, 8080];
/// The UDP port every real server answers on.
pub const RS_UDP_PORT: u16 = 5353;
/// How long [`start_rvsd`] waits for the control socket.
const RVSD_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`start_real_servers`] waits for each real server's ports.
const RS_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running rvsd started by a topology's `start_rvsd`; stopped at teardown.
#[derive(Debug, Clone)]
pub struct Rvsd {
    /// Its pid (in the director namespace; pids are global).
    pub pid: u32,
    /// Its control socket.
    pub socket: PathBuf,
}

/// The byte and packet counters of one interface, as `ip -s link` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkCounters {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

impl LinkCounters {
    /// How much each counter grew from `earlier` to `self` (saturating at 0).
    pub fn since(&self, earlier: &LinkCounters) -> LinkCounters {
        LinkCounters {
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
        }
    }
}

/// The namespace role of real server `index` (from 0): `rs1`, `rs2`, ...
pub fn rs_role(index: usize) -> String {
    format!("rs{}", index + 1)
}

/// Creates a veth pair from inside the namespace of `role` (named `dev` there) with its peer
/// placed straight into the namespace of `peer_role` (named `peer_dev`), so no name ever appears
/// in (or collides in) the root namespace. Both ends stay down.
pub(crate) fn veth(
    lab: &Lab,
    role: &str,
    dev: &str,
    peer_role: &str,
    peer_dev: &str,
) -> Result<(), LabError> {
    lab.ip(
        role,
        &[format!(
            "link add {dev} type veth peer name {peer_dev} netns {}",
            lab.ns(peer_role)
        )],
    )
}

/// Makes the namespace [`SWITCH`] a plain learning switch: bridge `name` (no STP, no multicast
/// snooping, no IPv6 of its own) with `ports` as members, everything up.
pub(crate) fn bridge(lab: &Lab, name: &str, ports: &[String]) -> Result<(), LabError> {
    let mut lines = vec![
        format!("link add {name} type bridge stp_state 0 mcast_snooping 0"),
        format!("link set {name} up"),
    ];
    for port in ports {
        lines.push(format!("link set {port} master {name}"));
        lines.push(format!("link set {port} up"));
    }
    lab.sysctl(SWITCH, "net.ipv6.conf.all.disable_ipv6", "1")?;
    lab.ip(SWITCH, &lines)
}

/// Fails unless `count` real servers is 1 to `max`.
pub(crate) fn check_rs_count(count: usize, max: usize) -> Result<(), LabError> {
    if count == 0 || count > max {
        return Err(LabError::Invalid {
            what: "real server count",
            detail: format!("{count} (use 1 to {max})"),
        });
    }
    Ok(())
}

/// Creates the namespaces of `count` real servers ([`rs_role`]), each with `eth0` linked to a
/// port `port_name(index)` in [`SWITCH`]; returns the port names, in order.
pub(crate) fn add_real_servers(
    lab: &Lab,
    count: usize,
    port_name: impl Fn(usize) -> String,
) -> Result<Vec<String>, LabError> {
    let mut ports = Vec::with_capacity(count);
    for index in 0..count {
        let role = rs_role(index);
        lab.add_ns(&role)?;
        let port = port_name(index);
        veth(lab, &role, "eth0", SWITCH, &port)?;
        ports.push(port);
    }
    Ok(ports)
}

/// The text real server `index` answers with: `hello,<its IPv4 address>` (empty if there is no
/// such server).
pub(crate) fn hello_text(rips: &[Ipv4Addr], index: usize) -> String {
    rips.get(index)
        .map(|ip| format!("hello,{ip}"))
        .unwrap_or_default()
}

/// [`start_real_servers`] on every real server `rs1`, `rs2`, ... of `rips`, each answering
/// [`hello_text`].
pub(crate) fn start_hello_servers(lab: &Lab, rips: &[Ipv4Addr]) -> Result<(), LabError> {
    let servers: Vec<(String, String)> = (0..rips.len())
        .map(|index| (rs_role(index), hello_text(rips, index)))
        .collect();
    start_real_servers(lab, &servers)
}

/// Turns on IPv4 and IPv6 forwarding in the namespace of `role`.
pub(crate) fn enable_forwarding(lab: &Lab, role: &str) -> Result<(), LabError> {
    lab.sysctl(role, "net.ipv4.ip_forward", "1")?;
    lab.sysctl(role, "net.ipv6.conf.all.forwarding", "1")
}

/// Starts `rvs-lab serve --text <text> --http 80 --http 8080 --udp 5353` in each `(role, text)`
/// namespace and waits (bounded) until each accepts connections on every HTTP port.
pub(crate) fn start_real_servers(lab: &Lab, servers: &[(String, String)]) -> Result<(), LabError> {
    let lab_bin = find_bin("rvs-lab")?;
    let lab_bin = lab_bin.to_string_lossy();
    for (role, text) in servers {
        let config = ServeConfig {
            text: text.clone(),
            http_ports: RS_HTTP_PORTS.to_vec(),
            udp_ports: vec![RS_UDP_PORT],
        };
        let serve_args = config.to_args();
        let mut args = vec![lab_bin.as_ref(), "serve"];
        args.extend(serve_args.iter().map(String::as_str));
        lab.spawn(role, &args)?;
    }
    for (role, _) in servers {
        for port in RS_HTTP_PORTS {
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            lab.wait_tcp(role, addr, RS_READY_TIMEOUT)?;
        }
    }
    Ok(())
}

/// Starts `rvsd --interface <each> --socket <socket> <extra_args>` in the director namespace and
/// waits (up to 10 s) until `rvsadm --socket <socket> -Ln` succeeds.
pub(crate) fn start_rvsd(
    lab: &Lab,
    socket: &Path,
    interfaces: &[&str],
    extra_args: &[&str],
) -> Result<Rvsd, LabError> {
    start_rvsd_in(lab, DIRECTOR, socket, interfaces, extra_args)
}

/// [`start_rvsd`] in the namespace of `role` (e.g. one of two directors).
pub(crate) fn start_rvsd_in(
    lab: &Lab,
    role: &str,
    socket: &Path,
    interfaces: &[&str],
    extra_args: &[&str],
) -> Result<Rvsd, LabError> {
    let rvsd = find_bin("rvsd")?;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
    }
    let rvsd = rvsd.to_string_lossy();
    let socket_text = socket.to_string_lossy();
    let mut args = vec![rvsd.as_ref()];
    for interface in interfaces {
        args.extend(["--interface", interface]);
    }
    args.extend(["--socket", socket_text.as_ref()]);
    args.extend_from_slice(extra_args);
    let pid = lab.spawn(role, &args)?;
    let deadline = Instant::now() + RVSD_READY_TIMEOUT;
    loop {
        if let Some(status) = lab.exit_status(pid) {
            return Err(LabError::DaemonExited {
                name: "rvsd".into(),
                status,
                log: tail(&lab.log_of(pid), 40),
            });
        }
        if socket.exists() && rvsadm(socket, &["-Ln"])?.status.success() {
            return Ok(Rvsd {
                pid,
                socket: socket.to_path_buf(),
            });
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!(
                    "rvsd's control socket {}; rvsd log:\n{}",
                    socket.display(),
                    tail(&lab.log_of(pid), 40)
                ),
                after: RVSD_READY_TIMEOUT,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The command `rvsadm --socket <socket> args...`.
fn rvsadm_command(socket: &Path, args: &[&str]) -> Result<Command, LabError> {
    let mut command = Command::new(find_bin("rvsadm")?);
    command.arg("--socket").arg(socket).args(args);
    Ok(command)
}

/// Runs rvsadm (from the root namespace: the socket is a file); output whatever the exit status.
pub(crate) fn rvsadm(socket: &Path, args: &[&str]) -> Result<Output, LabError> {
    cmd::output(&mut rvsadm_command(socket, args)?)
}

/// Runs rvsadm with `input` on its standard input; output whatever the exit status.
pub(crate) fn rvsadm_stdin(socket: &Path, args: &[&str], input: &[u8]) -> Result<Output, LabError> {
    use std::io::Write;
    let mut command = rvsadm_command(socket, args)?;
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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

/// Runs rvsadm and returns its stdout; fails unless it succeeds.
pub(crate) fn rvsadm_ok(socket: &Path, args: &[&str]) -> Result<String, LabError> {
    let out = cmd::run(&mut rvsadm_command(socket, args)?)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fetches `url` with curl from the namespace `role` (5 s limit) and returns the body; fails on a
/// connection error or an HTTP error status.
pub(crate) fn curl_from(lab: &Lab, role: &str, url: &str) -> Result<String, LabError> {
    let out = lab.exec_ok(
        role,
        &["curl", "-sS", "--fail", "--max-time", "5", "--", url],
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads the counters of interface `dev` in the namespace of `role` (from its sysfs, which
/// `ip netns exec` mounts for that namespace).
pub(crate) fn link_counters(lab: &Lab, role: &str, dev: &str) -> Result<LinkCounters, LabError> {
    let base = format!("/sys/class/net/{dev}/statistics");
    let files = ["rx_bytes", "rx_packets", "tx_bytes", "tx_packets"].map(|f| format!("{base}/{f}"));
    let mut args = vec!["cat"];
    args.extend(files.iter().map(String::as_str));
    let out = lab.exec_ok(role, &args)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<u64> = text
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    match values.as_slice() {
        [rx_bytes, rx_packets, tx_bytes, tx_packets] => Ok(LinkCounters {
            rx_bytes: *rx_bytes,
            rx_packets: *rx_packets,
            tx_bytes: *tx_bytes,
            tx_packets: *tx_packets,
        }),
        _ => Err(LabError::Invalid {
            what: "link statistics",
            detail: format!("{dev} in {}: {text:?}", lab.ns(role)),
        }),
    }
}

/// `h` written so that its hex form reads like the decimal number: 2 -> 0x2, 10 -> 0x10.
pub(crate) fn hex_like(h: u16) -> u16 {
    u16::from_str_radix(&h.to_string(), 16).unwrap_or(h)
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The address of one family out of a topology's IPv4/IPv6 pair.
pub(crate) fn of_family(v6: bool, v4_addr: Ipv4Addr, v6_addr: Ipv6Addr) -> IpAddr {
    if v6 {
        IpAddr::V6(v6_addr)
    } else {
        IpAddr::V4(v4_addr)
    }
}

/// Entry `index` of one family out of a topology's IPv4/IPv6 address lists.
pub(crate) fn nth_of_family(
    v6: bool,
    v4_addrs: &[Ipv4Addr],
    v6_addrs: &[Ipv6Addr],
    index: usize,
) -> Option<IpAddr> {
    if v6 {
        v6_addrs.get(index).map(|ip| IpAddr::V6(*ip))
    } else {
        v4_addrs.get(index).map(|ip| IpAddr::V4(*ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

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

    #[test]
    fn counters_subtract() {
        let a = LinkCounters {
            rx_bytes: 10,
            rx_packets: 1,
            tx_bytes: 5,
            tx_packets: 1,
        };
        let b = LinkCounters {
            rx_bytes: 30,
            rx_packets: 3,
            tx_bytes: 5,
            tx_packets: 2,
        };
        assert_eq!(
            b.since(&a),
            LinkCounters {
                rx_bytes: 20,
                rx_packets: 2,
                tx_bytes: 0,
                tx_packets: 1,
            }
        );
        assert_eq!(a.since(&b).rx_bytes, 0);
    }
}
