//! nftables netdev-ingress rules so the kernel does not also handle the traffic rvsd forwards.
//!
//! An `ETH_P_ALL` packet socket sees a frame before the netdev ingress hook, so rvsd still gets
//! every frame these rules drop; the kernel's own stack never sees them. The rules are built as an
//! `nft` script and loaded with `nft -f -` (one script is one atomic transaction).
//!
//! Not covered: ICMP/ICMPv6 errors about forwarded flows (e.g. "fragmentation needed" from a
//! real server to the client) still reach the kernel, as do non-first IP fragments (they carry no
//! ports). Both are left to later work.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::error::IoError;

/// A transport protocol a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl L4Proto {
    fn nft_name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Sctp => "sctp",
        }
    }
}

/// One kind of traffic the kernel must not handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BypassRule {
    /// Traffic to a virtual service: drops `ip daddr VIP tcp|udp|sctp dport PORT` on every rvsd
    /// interface. Port 0 means every port of that protocol (a port-0 persistent service).
    Service {
        /// Transport protocol.
        proto: L4Proto,
        /// Virtual address.
        vip: IpAddr,
        /// Virtual port (0: all).
        port: u16,
    },
    /// Traffic a mark rule sends to a firewall-mark service: drops
    /// `ip daddr NET/LEN tcp|udp|sctp dport FIRST-LAST` on every rvsd interface.
    MarkedService {
        /// Transport protocol.
        proto: L4Proto,
        /// Destination network address.
        net: IpAddr,
        /// Destination prefix length.
        prefix_len: u8,
        /// First destination port.
        first_port: u16,
        /// Last destination port.
        last_port: u16,
    },
    /// NAT replies from a real server: drops `ip saddr RIP tcp|udp|sctp sport PORT` unless the
    /// packet is addressed to one of the director's own addresses (`fib daddr type != local`), so
    /// health checks from the director to the real server still reach the kernel. Port 0 means
    /// every port.
    RealServerReply {
        /// Transport protocol.
        proto: L4Proto,
        /// Real server address.
        rip: IpAddr,
        /// Real server port (0: all).
        port: u16,
    },
    /// FULLNAT replies: packets from a real server's address and port to one of the director's
    /// local (FULLNAT source) addresses. Use local addresses dedicated to FULLNAT: the kernel's
    /// own connections from them to the real server port would lose their replies.
    FullNatReply {
        /// Transport protocol.
        proto: L4Proto,
        /// Real server address.
        rip: IpAddr,
        /// Real server port (0: all).
        port: u16,
        /// The local address (same family as `rip`).
        laddr: IpAddr,
    },
}

impl BypassRule {
    /// The rule's match expression followed by `counter drop`.
    fn nft_expr(&self) -> String {
        let family = |ip: &IpAddr| if ip.is_ipv4() { "ip" } else { "ip6" };
        match self {
            BypassRule::Service { proto, vip, port } => {
                let l4 = l4_match(*proto, "dport", *port);
                format!("{} daddr {vip} {l4} counter drop", family(vip))
            }
            BypassRule::MarkedService {
                proto,
                net,
                prefix_len,
                first_port,
                last_port,
            } => {
                let ports = if first_port == last_port {
                    first_port.to_string()
                } else {
                    format!("{first_port}-{last_port}")
                };
                format!(
                    "{} daddr {net}/{prefix_len} {} dport {ports} counter drop",
                    family(net),
                    proto.nft_name()
                )
            }
            BypassRule::RealServerReply { proto, rip, port } => {
                let l4 = l4_match(*proto, "sport", *port);
                format!(
                    "{} saddr {rip} {l4} fib daddr type != local counter drop",
                    family(rip)
                )
            }
            BypassRule::FullNatReply {
                proto,
                rip,
                port,
                laddr,
            } => {
                let l4 = l4_match(*proto, "sport", *port);
                let fam = family(rip);
                format!("{fam} saddr {rip} {fam} daddr {laddr} {l4} counter drop")
            }
        }
    }
}

fn l4_match(proto: L4Proto, field: &str, port: u16) -> String {
    if port == 0 {
        format!("meta l4proto {}", proto.nft_name())
    } else {
        format!("{} {field} {port}", proto.nft_name())
    }
}

/// The nftables table of one rvsd instance (`table netdev <name>`) with one ingress base chain
/// per interface (`type filter hook ingress device "<if>" priority -500; policy accept`).
/// Removed by [`KernelBypass::remove`], or on Drop (best effort).
#[derive(Debug)]
pub struct KernelBypass {
    table: String,
    /// (chain name, interface name).
    chains: Vec<(String, String)>,
    removed: bool,
}

impl KernelBypass {
    /// Removes a stale table of that name (left by a killed rvsd), creates the table and one
    /// chain per interface, all in one transaction. Works in the calling thread's network
    /// namespace; every interface must exist there ([`IoError::NoSuchInterface`]).
    pub fn install(table: &str, ifnames: &[String]) -> Result<KernelBypass, IoError> {
        validate_table(table)?;
        let mut chains: Vec<(String, String)> = Vec::new();
        for ifname in ifnames {
            validate_ifname(ifname)?;
            // The kernel accepts a chain for a device that does not exist (yet); a typo would
            // then silently leave the kernel handling the traffic, so insist on the device.
            crate::iface::ifindex(ifname)?;
            if !chains.iter().any(|(_, i)| i == ifname) {
                chains.push((chain_name(chains.len(), ifname), ifname.clone()));
            }
        }
        run_nft(&install_script(table, &chains))?;
        Ok(KernelBypass {
            table: table.to_owned(),
            chains,
            removed: false,
        })
    }

    /// Atomically replaces the rule set (one nft transaction: flush the chains, add the rules to
    /// every chain).
    pub fn apply(&self, rules: &[BypassRule]) -> Result<(), IoError> {
        run_nft(&apply_script(&self.table, &self.chains, rules))
    }

    /// Deletes the table and everything in it.
    pub fn remove(mut self) -> Result<(), IoError> {
        self.removed = true;
        run_nft(&remove_script(&self.table))
    }
}

impl Drop for KernelBypass {
    fn drop(&mut self) {
        if !self.removed {
            let _ = run_nft(&remove_script(&self.table));
        }
    }
}

fn validate_table(table: &str) -> Result<(), IoError> {
    let mut chars = table.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || table.len() > 64 || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(IoError::InvalidName {
            name: table.to_owned(),
            reason: "table names are 1-64 of [A-Za-z0-9_], not starting with a digit",
        });
    }
    Ok(())
}

fn validate_ifname(ifname: &str) -> Result<(), IoError> {
    let ok = !ifname.is_empty()
        && ifname.len() < 16
        && ifname
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'/');
    if !ok {
        return Err(IoError::InvalidName {
            name: ifname.to_owned(),
            reason: "interface names have 1-15 printable ASCII bytes without quotes or slashes",
        });
    }
    Ok(())
}

/// `in<N>_<ifname with anything but [A-Za-z0-9_] replaced by '_'>`.
fn chain_name(index: usize, ifname: &str) -> String {
    let clean: String = ifname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("in{index}_{clean}")
}

fn install_script(table: &str, chains: &[(String, String)]) -> String {
    // "add" then "delete" removes a stale table whether or not one exists.
    let mut s =
        format!("table netdev {table}\ndelete table netdev {table}\ntable netdev {table} {{\n");
    for (chain, ifname) in chains {
        let _ = writeln!(
            s,
            "  chain {chain} {{ type filter hook ingress device \"{ifname}\" priority -500; policy accept; }}"
        );
    }
    s.push_str("}\n");
    s
}

fn apply_script(table: &str, chains: &[(String, String)], rules: &[BypassRule]) -> String {
    let mut s = String::new();
    for (chain, _) in chains {
        let _ = writeln!(s, "flush chain netdev {table} {chain}");
    }
    for (chain, _) in chains {
        for rule in rules {
            let _ = writeln!(s, "add rule netdev {table} {chain} {}", rule.nft_expr());
        }
    }
    s
}

fn remove_script(table: &str) -> String {
    format!("delete table netdev {table}\n")
}

/// Runs `nft -f -` with `script` on stdin.
fn run_nft(script: &str) -> Result<(), IoError> {
    if script.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| IoError::Nft(format!("cannot run nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| IoError::Nft(format!("writing the script to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| IoError::Nft(format!("waiting for nft: {e}")))?;
    if !out.status.success() {
        return Err(IoError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn rule_expressions() {
        let svc = BypassRule::Service {
            proto: L4Proto::Tcp,
            vip: ip("10.0.0.100"),
            port: 80,
        };
        assert_eq!(
            svc.nft_expr(),
            "ip daddr 10.0.0.100 tcp dport 80 counter drop"
        );
        let marked = BypassRule::MarkedService {
            proto: L4Proto::Tcp,
            net: ip("10.0.0.0"),
            prefix_len: 24,
            first_port: 80,
            last_port: 88,
        };
        assert_eq!(
            marked.nft_expr(),
            "ip daddr 10.0.0.0/24 tcp dport 80-88 counter drop"
        );
        let any = BypassRule::Service {
            proto: L4Proto::Udp,
            vip: ip("fd00::100"),
            port: 0,
        };
        assert_eq!(
            any.nft_expr(),
            "ip6 daddr fd00::100 meta l4proto udp counter drop"
        );
        let rs = BypassRule::RealServerReply {
            proto: L4Proto::Sctp,
            rip: ip("192.168.1.2"),
            port: 9,
        };
        assert_eq!(
            rs.nft_expr(),
            "ip saddr 192.168.1.2 sctp sport 9 fib daddr type != local counter drop"
        );
        let fnat = BypassRule::FullNatReply {
            proto: L4Proto::Tcp,
            rip: ip("fd00::2"),
            port: 80,
            laddr: ip("fd00::101"),
        };
        assert_eq!(
            fnat.nft_expr(),
            "ip6 saddr fd00::2 ip6 daddr fd00::101 tcp sport 80 counter drop"
        );
    }

    #[test]
    fn scripts() {
        let chains = vec![
            (chain_name(0, "eth0"), "eth0".to_owned()),
            (chain_name(1, "v-1.2"), "v-1.2".to_owned()),
        ];
        assert_eq!(chains[1].0, "in1_v_1_2");
        let s = install_script("rvs", &chains);
        assert!(s.starts_with("table netdev rvs\ndelete table netdev rvs\n"));
        assert!(s.contains("chain in1_v_1_2 { type filter hook ingress device \"v-1.2\" priority -500; policy accept; }"));
        let rule = BypassRule::Service {
            proto: L4Proto::Tcp,
            vip: ip("10.0.0.1"),
            port: 443,
        };
        let a = apply_script("rvs", &chains, &[rule]);
        assert_eq!(
            a,
            "flush chain netdev rvs in0_eth0\nflush chain netdev rvs in1_v_1_2\n\
             add rule netdev rvs in0_eth0 ip daddr 10.0.0.1 tcp dport 443 counter drop\n\
             add rule netdev rvs in1_v_1_2 ip daddr 10.0.0.1 tcp dport 443 counter drop\n"
        );
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_table("rvs_1").is_ok());
        for bad in ["", "1rvs", "a b", "x;y", "t\"", &"a".repeat(65)] {
            assert!(validate_table(bad).is_err(), "{bad:?}");
        }
        assert!(validate_ifname("eth0.100").is_ok());
        for bad in ["", "a\"b", "a b", "0123456789abcdef", "a\\b"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }
}
