//! A VRRP segment: two nodes (`n1`, `n2`) and a mail host on one bridge (in its own `sw`
//! namespace), each with `eth0` in 10.77.0.0/24 (and fd77::/64), for running rvsd and a real
//! keepalived (VRRP-only mode) as peers. Teardown stops the daemons and deletes the namespaces,
//! which also drops any VIP a killed daemon left behind.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::{harness, Lab, LabError};

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

    /// Writes `conf` as `<role>-rvsd.conf`, starts `rvsd --interface eth0 --socket <socket>
    /// -f <conf> --workers 1` on `role` and waits (up to 10 s) until its control socket answers;
    /// fails with [`LabError::DaemonExited`] if rvsd exits first (e.g. refuses the
    /// configuration). Returns its pid.
    pub fn start_rvsd(&self, role: &str, conf: &str) -> Result<u32, LabError> {
        let conf_path = self.lab.write_file(&format!("{role}-rvsd.conf"), conf)?;
        let socket = self.socket(role);
        self.lab.remove_at_teardown(&socket);
        let c = conf_path.display().to_string();
        let rvsd = harness::start_rvsd_in(
            &self.lab,
            role,
            &socket,
            &["eth0"],
            &["-f", &c, "--workers", "1"],
        )?;
        Ok(rvsd.pid)
    }

    /// The control socket of the rvsd on `role`.
    pub fn socket(&self, role: &str) -> PathBuf {
        self.lab.log_dir().join(format!("{role}-rvsd.sock"))
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
        crate::wait_for(Duration::from_secs(5), || {
            cap.text(self).contains("listening on")
        });
        Ok(cap)
    }

    /// Runs rvsadm with `args` against the rvsd on `role`; returns whether it succeeded and
    /// what it printed (stdout, then stderr).
    pub fn rvsadm(&self, role: &str, args: &[&str]) -> Result<(bool, String), LabError> {
        let out = harness::rvsadm(&self.socket(role), args)?;
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
