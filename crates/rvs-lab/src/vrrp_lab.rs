//! A VRRP segment: two nodes (`n1`, `n2`) and a mail host on one bridge (in its own `sw`
//! namespace), each with `eth0` in 10.77.0.0/24 (and fd77::/64), for running rvsd and a real
//! keepalived (VRRP-only mode) as peers. Teardown stops the daemons and deletes the namespaces,
//! which also drops any VIP a killed daemon left behind.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::{find_bin, Lab, LabError};

/// The two VRRP nodes.
pub const VRRP_NODES: [&str; 2] = ["n1", "n2"];
/// The host that runs test servers (an SMTP sink) on the segment.
pub const MAIL_HOST: &str = "mail";
/// The mail host's address.
pub const MAIL_ADDR: &str = "10.77.0.9";

/// A running tcpdump (see [`VrrpSegment::capture`]).
#[derive(Debug, Clone, Copy)]
pub struct Capture {
    /// Its pid.
    pub pid: u32,
}

impl Capture {
    /// What tcpdump printed so far (one line per packet, plus its own messages).
    pub fn text(&self, seg: &VrrpSegment) -> String {
        seg.lab.log_of(self.pid)
    }

    /// The captured packet lines containing every one of `needles`.
    pub fn lines_with(&self, seg: &VrrpSegment, needles: &[&str]) -> Vec<String> {
        self.text(seg)
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }
}

/// The segment.
pub struct VrrpSegment {
    /// The namespaces and processes.
    pub lab: Lab,
}

impl VrrpSegment {
    /// Builds the bridge and the three hosts.
    pub fn build(tag: &str) -> Result<VrrpSegment, LabError> {
        let lab = Lab::new(tag)?;
        lab.add_ns("sw")?;
        lab.ip(
            "sw",
            &["link add br0 type bridge".into(), "link set br0 up".into()],
        )?;
        let hosts = [("n1", 1), ("n2", 2), (MAIL_HOST, 9)];
        for (role, n) in hosts {
            let ns = lab.add_ns(role)?;
            lab.ip(
                "sw",
                &[
                    format!("link add p{n} type veth peer name eth0 netns {ns}"),
                    format!("link set p{n} master br0"),
                    format!("link set p{n} up"),
                ],
            )?;
            lab.ip(
                role,
                &[
                    format!("addr add 10.77.0.{n}/24 dev eth0"),
                    format!("addr add fd77::{n}/64 dev eth0 nodad"),
                    "link set eth0 up".into(),
                ],
            )?;
        }
        Ok(VrrpSegment { lab })
    }

    /// The IPv4 address of node `role`.
    pub fn addr_of(role: &str) -> &'static str {
        match role {
            "n1" => "10.77.0.1",
            "n2" => "10.77.0.2",
            _ => MAIL_ADDR,
        }
    }

    /// Writes `text` as a file in the lab's directory and returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> Result<PathBuf, LabError> {
        let path = self.lab.log_dir().join(name);
        std::fs::write(&path, text)
            .map_err(|e| LabError::io(format!("writing {}", path.display()), e))?;
        Ok(path)
    }

    /// Starts keepalived in VRRP-only mode on `role` with configuration `conf`; returns its pid.
    pub fn start_keepalived(&self, role: &str, conf: &str) -> Result<u32, LabError> {
        let n = self.lab.log_dir().join(format!("{role}-keepalived"));
        let conf_path = self.write_file(&format!("{role}-keepalived.conf"), conf)?;
        let pid = n.with_extension("pid").display().to_string();
        let vpid = n.with_extension("vrrp.pid").display().to_string();
        let c = conf_path.display().to_string();
        let args = [
            "keepalived",
            "-n",
            "-l",
            "-D",
            "-P",
            "-f",
            &c,
            "-p",
            &pid,
            "-r",
            &vpid,
        ];
        self.lab.spawn(role, &args)
    }

    /// Starts rvsd on `role` with `-f conf --interface eth0`; returns its pid.
    pub fn start_rvsd(&self, role: &str, conf: &str) -> Result<u32, LabError> {
        let conf_path = self.write_file(&format!("{role}-rvsd.conf"), conf)?;
        let socket = self.socket(role);
        self.lab.remove_at_teardown(&socket);
        let bin = find_bin("rvsd")?.display().to_string();
        let c = conf_path.display().to_string();
        let s = socket.display().to_string();
        let args = [
            bin.as_str(),
            "-f",
            &c,
            "--interface",
            "eth0",
            "--socket",
            &s,
            "--workers",
            "1",
        ];
        self.lab.spawn(role, &args)
    }

    /// The control socket of the rvsd on `role`.
    pub fn socket(&self, role: &str) -> PathBuf {
        self.lab.log_dir().join(format!("{role}-rvsd.sock"))
    }

    /// Whether `ip` is configured on any interface of `role` (`ip -j addr show`).
    pub fn has_addr(&self, role: &str, ip: IpAddr) -> bool {
        self.lab
            .exec(role, &["ip", "-j", "addr", "show"])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("\"local\":\"{ip}\"")))
            .unwrap_or(false)
    }

    /// Polls (every 50 ms, at most `limit`) until `pred` holds; returns the time it took.
    pub fn wait_for(&self, limit: Duration, mut pred: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() <= limit {
            if pred() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Adds a veth pair `name` / `name`p inside `role` (both ends up), an extra link for
    /// `track_interface` (this kernel has no dummy interfaces).
    pub fn add_link(&self, role: &str, name: &str) -> Result<(), LabError> {
        self.lab.ip(
            role,
            &[
                format!("link add {name} type veth peer name {name}p"),
                format!("link set {name}p up"),
                format!("link set {name} up"),
            ],
        )
    }

    /// Sets link `name` of `role` up or down.
    pub fn set_link(&self, role: &str, name: &str, up: bool) -> Result<(), LabError> {
        let state = if up { "up" } else { "down" };
        self.lab.ip(role, &[format!("link set {name} {state}")])
    }

    /// The MAC address of `ifname` in `role`, as `ip` prints it (lowercase, colon-separated).
    pub fn mac_of(&self, role: &str, ifname: &str) -> Result<String, LabError> {
        let path = format!("/sys/class/net/{ifname}/address");
        let out = self.lab.exec_ok(role, &["cat", &path])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Starts tcpdump on `ifname` of `role` (`-n -e -l`, link-level headers shown) with the
    /// capture `filter`; it ends by itself after `limit` and at teardown. Returns once tcpdump
    /// is listening (or after 5 s).
    pub fn capture(
        &self,
        role: &str,
        ifname: &str,
        filter: &str,
        limit: Duration,
    ) -> Result<Capture, LabError> {
        let secs = limit.as_secs().max(1).to_string();
        let mut args = vec!["timeout", &secs, "tcpdump", "-i", ifname, "-n", "-e", "-l"];
        args.extend(filter.split_whitespace());
        let pid = self.lab.spawn(role, &args)?;
        let cap = Capture { pid };
        self.wait_for(Duration::from_secs(5), || {
            cap.text(self).contains("listening on")
        });
        Ok(cap)
    }

    /// Runs rvsadm with `args` against the rvsd on `role`; returns whether it succeeded and
    /// what it printed (stdout, then stderr).
    pub fn rvsadm(&self, role: &str, args: &[&str]) -> Result<(bool, String), LabError> {
        let adm = find_bin("rvsadm")?;
        let sock = self.socket(role);
        let mut command = std::process::Command::new(adm);
        command.args(["--socket", &sock.display().to_string()]);
        command.args(args);
        let out = crate::cmd::output(&mut command)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }

    /// The `rvsadm --vrrp` listing of the rvsd on `role` (stdout and stderr).
    pub fn rvsadm_vrrp(&self, role: &str) -> Result<String, LabError> {
        self.rvsadm(role, &["--vrrp"]).map(|(_, text)| text)
    }

    /// Removes `ip` from `role`'s eth0 if present (a SIGKILLed daemon leaves its VIP).
    pub fn remove_vip(&self, role: &str, ip: IpAddr, prefix: u8) {
        let _ = self.lab.exec(
            role,
            &[
                "ip",
                "addr",
                "del",
                &format!("{ip}/{prefix}"),
                "dev",
                "eth0",
            ],
        );
    }
}
