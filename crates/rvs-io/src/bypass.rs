//! nftables netdev-ingress rules so the kernel does not also handle the traffic rvsd forwards.
//!
//! An `ETH_P_ALL` packet socket sees a frame before the netdev ingress hook, so rvsd still gets
//! every frame these rules drop; the kernel's own stack never sees them.
//!
//! Layout of one rvsd instance's `table netdev <name>`:
//! - fourteen named sets, one per kind of [`BypassRule`] and address family, keyed by nftables
//!   concatenations (see [`SETS`]): services `svc4`/`svc6` (`daddr . l4proto . dport`), port-0
//!   services `svcany4`/`svcany6` (`daddr . l4proto`), NAT replies `rs4`/`rs6`
//!   (`saddr . l4proto . sport`) and `rsany4`/`rsany6`, FULLNAT replies `fnat4`/`fnat6`
//!   (`saddr . daddr . l4proto . sport`) and `fnatany4`/`fnatany6`, and the fragments of NAT
//!   real servers' traffic `rsfrag4`/`rsfrag6` (`saddr . l4proto`: later fragments carry no
//!   ports);
//! - a regular chain `marked` holding one rule per [`BypassRule::MarkedService`] (a classifier's
//!   networks and port ranges may overlap, which an interval set refuses, and they are few);
//! - one ingress base chain per interface with a fixed list of sixteen rules: a `counter drop`
//!   per set lookup (two for `rsfrag6`) and a `jump marked`. A packet costs at most fifteen hash
//!   lookups whatever the number of services.
//!
//! Every change is one `nft -f -` script, which nftables commits as one atomic transaction:
//! [`KernelBypass::apply_diff`] adds and deletes set elements, [`KernelBypass::apply`] replaces
//! the whole rule set.
//!
//! Not covered: ICMP/ICMPv6 errors about forwarded flows (e.g. "fragmentation needed" from a
//! real server to the client) still reach the kernel, as do the non-first fragments of traffic
//! to a virtual or FULLNAT local address (they carry no ports; the kernel holds them until its
//! reassembly times out, as it never gets their first fragment). `rsfrag4/6` match by address
//! and protocol only, so they also take a NAT real server's other traffic the kernel routes
//! (not to a service's client): rvsd reassembles it and hands it to the kernel through its TUN
//! device.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

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

    /// Reads nft's name or number of the protocol.
    fn parse(word: &str) -> Option<L4Proto> {
        match word {
            "tcp" | "6" => Some(L4Proto::Tcp),
            "udp" | "17" => Some(L4Proto::Udp),
            "sctp" | "132" => Some(L4Proto::Sctp),
            _ => None,
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
    /// own connections from them to the real server port would lose their replies. A rule
    /// whose two addresses are of different families matches nothing and is not installed.
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
    /// Every fragment of a NAT real server's traffic of one protocol (the later ones carry no
    /// ports, so the reply rules miss them): drops IPv4 fragments (`ip frag-off & 0x3fff != 0`:
    /// more to come, or a non-zero offset) and IPv6 ones (`frag frag-off != 0`, `frag
    /// more-fragments 1`) from the real server's address and protocol, unless addressed to the
    /// director. rvsd reassembles them: a reply is translated, and any other datagram is handed
    /// to the kernel whole (cut again as it came), as the kernel's own reassembly would.
    RealServerFragments {
        /// Transport protocol.
        proto: L4Proto,
        /// Real server address.
        rip: IpAddr,
    },
}

/// One named set of the table: its name, key type, and the base-chain rules that look it up.
struct SetDef {
    name: &'static str,
    key: &'static str,
    rules: &'static [&'static str],
}

/// Kinds of set per address family: the IPv6 set of a kind is this many after the IPv4 one.
const KINDS: usize = 7;
/// Number of sets.
const SET_COUNT: usize = 2 * KINDS;

/// The sets, in the order their rules appear in every base chain.
static SETS: [SetDef; SET_COUNT] = [
    SetDef {
        name: "svc4",
        key: "ipv4_addr . inet_proto . inet_service",
        rules: &["ip daddr . meta l4proto . th dport @svc4 counter drop"],
    },
    SetDef {
        name: "svcany4",
        key: "ipv4_addr . inet_proto",
        rules: &["ip daddr . meta l4proto @svcany4 counter drop"],
    },
    SetDef {
        name: "rs4",
        key: "ipv4_addr . inet_proto . inet_service",
        rules: &["ip saddr . meta l4proto . th sport @rs4 fib daddr type != local counter drop"],
    },
    SetDef {
        name: "rsany4",
        key: "ipv4_addr . inet_proto",
        rules: &["ip saddr . meta l4proto @rsany4 fib daddr type != local counter drop"],
    },
    SetDef {
        name: "fnat4",
        key: "ipv4_addr . ipv4_addr . inet_proto . inet_service",
        rules: &["ip saddr . ip daddr . meta l4proto . th sport @fnat4 counter drop"],
    },
    SetDef {
        name: "fnatany4",
        key: "ipv4_addr . ipv4_addr . inet_proto",
        rules: &["ip saddr . ip daddr . meta l4proto @fnatany4 counter drop"],
    },
    SetDef {
        name: "rsfrag4",
        key: "ipv4_addr . inet_proto",
        rules: &[
            "ip frag-off & 0x3fff != 0 ip saddr . meta l4proto @rsfrag4 \
               fib daddr type != local counter drop",
        ],
    },
    SetDef {
        name: "svc6",
        key: "ipv6_addr . inet_proto . inet_service",
        rules: &["ip6 daddr . meta l4proto . th dport @svc6 counter drop"],
    },
    SetDef {
        name: "svcany6",
        key: "ipv6_addr . inet_proto",
        rules: &["ip6 daddr . meta l4proto @svcany6 counter drop"],
    },
    SetDef {
        name: "rs6",
        key: "ipv6_addr . inet_proto . inet_service",
        rules: &["ip6 saddr . meta l4proto . th sport @rs6 fib daddr type != local counter drop"],
    },
    SetDef {
        name: "rsany6",
        key: "ipv6_addr . inet_proto",
        rules: &["ip6 saddr . meta l4proto @rsany6 fib daddr type != local counter drop"],
    },
    SetDef {
        name: "fnat6",
        key: "ipv6_addr . ipv6_addr . inet_proto . inet_service",
        rules: &["ip6 saddr . ip6 daddr . meta l4proto . th sport @fnat6 counter drop"],
    },
    SetDef {
        name: "fnatany6",
        key: "ipv6_addr . ipv6_addr . inet_proto",
        rules: &["ip6 saddr . ip6 daddr . meta l4proto @fnatany6 counter drop"],
    },
    SetDef {
        name: "rsfrag6",
        key: "ipv6_addr . inet_proto",
        rules: &[
            "frag frag-off != 0 ip6 saddr . meta l4proto @rsfrag6 \
             fib daddr type != local counter drop",
            "frag more-fragments 1 ip6 saddr . meta l4proto @rsfrag6 \
             fib daddr type != local counter drop",
        ],
    },
];

/// The regular chain holding the [`BypassRule::MarkedService`] rules.
const MARKED_CHAIN: &str = "marked";

/// Set elements per `add element` / `delete element` line: keeps nft's error messages (which
/// quote the line) short.
const ELEMENTS_PER_LINE: usize = 256;

/// Where a rule lives in the table.
#[derive(Debug, PartialEq, Eq)]
enum Slot {
    /// An element (as nft writes it) of set `SETS[index]`.
    Element(usize, String),
    /// A rule of the `marked` chain.
    Marked,
    /// Nowhere: the rule can match nothing.
    None,
}

impl BypassRule {
    fn slot(&self) -> Slot {
        // Index of the v4 set of a kind; the v6 set is KINDS further.
        let set = |base: usize, ip: &IpAddr| if ip.is_ipv4() { base } else { base + KINDS };
        match *self {
            BypassRule::Service { proto, vip, port } => {
                let p = proto.nft_name();
                if port == 0 {
                    Slot::Element(set(1, &vip), format!("{vip} . {p}"))
                } else {
                    Slot::Element(set(0, &vip), format!("{vip} . {p} . {port}"))
                }
            }
            BypassRule::RealServerReply { proto, rip, port } => {
                let p = proto.nft_name();
                if port == 0 {
                    Slot::Element(set(3, &rip), format!("{rip} . {p}"))
                } else {
                    Slot::Element(set(2, &rip), format!("{rip} . {p} . {port}"))
                }
            }
            BypassRule::FullNatReply {
                proto,
                rip,
                port,
                laddr,
            } => {
                if rip.is_ipv4() != laddr.is_ipv4() {
                    return Slot::None;
                }
                let p = proto.nft_name();
                if port == 0 {
                    Slot::Element(set(5, &rip), format!("{rip} . {laddr} . {p}"))
                } else {
                    Slot::Element(set(4, &rip), format!("{rip} . {laddr} . {p} . {port}"))
                }
            }
            BypassRule::RealServerFragments { proto, rip } => {
                Slot::Element(set(6, &rip), format!("{rip} . {}", proto.nft_name()))
            }
            BypassRule::MarkedService { .. } => Slot::Marked,
        }
    }

    /// The `marked` chain rule of a [`BypassRule::MarkedService`] (network bits only, ports in
    /// order), `None` for the other kinds.
    fn marked_expr(&self) -> Option<String> {
        let BypassRule::MarkedService {
            proto,
            net,
            prefix_len,
            first_port,
            last_port,
        } = *self
        else {
            return None;
        };
        let (net, len, family) = match net {
            IpAddr::V4(a) => {
                let len = prefix_len.min(32);
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                (IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)), len, "ip")
            }
            IpAddr::V6(a) => {
                let len = prefix_len.min(128);
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                (IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)), len, "ip6")
            }
        };
        let (lo, hi) = (first_port.min(last_port), first_port.max(last_port));
        let ports = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        };
        Some(format!(
            "{family} daddr {net}/{len} {} dport {ports} counter drop",
            proto.nft_name()
        ))
    }
}

/// The nftables table of one rvsd instance (`table netdev <name>`): the sets and chains
/// described in the [module documentation](self), one ingress base chain per interface
/// (`type filter hook ingress device "<if>" priority -500; policy accept`).
/// Removed by [`KernelBypass::remove`], or on Drop (best effort).
#[derive(Debug)]
pub struct KernelBypass {
    table: String,
    /// (chain name, interface name).
    chains: Vec<(String, String)>,
    /// The rules of the `marked` chain as last committed; held while a script runs, so changes
    /// are serialised.
    marked: Mutex<BTreeSet<BypassRule>>,
    removed: bool,
}

impl KernelBypass {
    /// Removes a stale table of that name (left by a killed rvsd), creates the table, its
    /// (empty) sets and one chain per interface, all in one transaction. Works in the calling
    /// thread's network namespace; every interface must exist there
    /// ([`IoError::NoSuchInterface`]).
    pub fn install(table: &str, ifnames: &[String]) -> Result<KernelBypass, IoError> {
        KernelBypass::install_with(table, ifnames, &[])
    }

    /// [`KernelBypass::install`] with `rules` in the same transaction: a table left by an rvsd
    /// that handed over is replaced by one already holding the successor's rules, so the kernel
    /// never sees the VIPs' traffic in between.
    pub fn install_with(
        table: &str,
        ifnames: &[String],
        rules: &[BypassRule],
    ) -> Result<KernelBypass, IoError> {
        validate_table(table)?;
        let mut chains: Vec<(String, String)> = Vec::new();
        for ifname in ifnames {
            validate_ifname(ifname)?;
            // A chain for a device that does not exist (yet) would silently leave the kernel
            // handling the traffic after a typo, so insist on the device.
            crate::iface::ifindex(ifname)?;
            if !chains.iter().any(|(_, i)| i == ifname) {
                chains.push((chain_name(chains.len(), ifname), ifname.clone()));
            }
        }
        let mut script = install_script(table, &chains);
        if !rules.is_empty() {
            script.push_str(&full_script(table, rules));
        }
        run_nft(&script)?;
        let marked = rules
            .iter()
            .filter(|r| matches!(r, BypassRule::MarkedService { .. }))
            .copied()
            .collect();
        Ok(KernelBypass {
            table: table.to_owned(),
            chains,
            marked: Mutex::new(marked),
            removed: false,
        })
    }

    /// Leaves the table in the kernel for a successor (an rvsd that handed over), which
    /// replaces it with [`KernelBypass::install_with`].
    pub fn leave(mut self) {
        self.removed = true;
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Atomically replaces the whole rule set: one transaction flushes every set and the
    /// `marked` chain and adds `rules`.
    pub fn apply(&self, rules: &[BypassRule]) -> Result<(), IoError> {
        let mut marked = self.lock_marked();
        let wanted: BTreeSet<BypassRule> = rules
            .iter()
            .filter(|r| matches!(r, BypassRule::MarkedService { .. }))
            .copied()
            .collect();
        run_nft(&full_script(&self.table, rules))?;
        *marked = wanted;
        Ok(())
    }

    /// Applies a change as one transaction: deletes the set elements of `delete`, then adds
    /// those of `add` (`add element` / `delete element` lines; the `marked` chain is rewritten
    /// only when a [`BypassRule::MarkedService`] comes or goes). Every rule of `delete` must be
    /// installed, or nft refuses the whole transaction and nothing changes; adding an installed
    /// rule is harmless.
    pub fn apply_diff<'a>(
        &self,
        add: impl IntoIterator<Item = &'a BypassRule>,
        delete: impl IntoIterator<Item = &'a BypassRule>,
    ) -> Result<(), IoError> {
        let mut marked = self.lock_marked();
        let (add, delete): (Vec<&BypassRule>, Vec<&BypassRule>) =
            (add.into_iter().collect(), delete.into_iter().collect());
        let mut marked_after = marked.clone();
        for r in &delete {
            marked_after.remove(r);
        }
        for r in &add {
            if matches!(r, BypassRule::MarkedService { .. }) {
                marked_after.insert(**r);
            }
        }
        let new_marked = (marked_after != *marked).then_some(&marked_after);
        run_nft(&diff_script(&self.table, &add, &delete, new_marked))?;
        *marked = marked_after;
        Ok(())
    }

    /// Re-creates, in one transaction, the base chain (with its rules) of every configured
    /// interface that exists now but whose chain is gone or hooked to another device: kernels
    /// before 6.16 delete a netdev base chain when its device is unregistered, and keep nothing
    /// for a device re-created under the same name (newer ones keep the chain and re-hook it by
    /// name). Idempotent: chains in place are left alone (their counters too). Returns the
    /// interfaces whose chains were re-created; a missing table is an error
    /// ([`KernelBypass::install`] it again).
    pub fn reattach(&self) -> Result<Vec<String>, IoError> {
        let _serialised = self.lock_marked();
        let listing = nft_output(&["list", "chains", "netdev"])?;
        let Some(present) = base_chains(&listing, &self.table) else {
            return Err(IoError::Nft(format!(
                "table netdev {} is missing",
                self.table
            )));
        };
        let mut redo: Vec<(&str, &str, bool)> = Vec::new();
        for (chain, ifname) in &self.chains {
            if crate::iface::ifindex(ifname).is_err() {
                continue;
            }
            match present.iter().find(|(c, _)| c == chain) {
                Some((_, dev)) if dev.as_deref() == Some(ifname.as_str()) => {}
                Some(_) => redo.push((chain, ifname, true)),
                None => redo.push((chain, ifname, false)),
            }
        }
        run_nft(&reattach_script(&self.table, &redo))?;
        Ok(redo.iter().map(|(_, i, _)| (*i).to_owned()).collect())
    }

    /// Whether the table exists (in the calling thread's network namespace).
    pub fn is_present(&self) -> Result<bool, IoError> {
        let listing = nft_output(&["list", "tables", "netdev"])?;
        let line = format!("table netdev {}", self.table);
        Ok(listing.lines().any(|l| l.trim() == line))
    }

    /// Deletes and re-creates the whole table holding `rules`, in one transaction: the sets, the
    /// `marked` chain and the base chains of the configured interfaces that exist now (the
    /// others are left to [`KernelBypass::reattach`]). Returns the interfaces hooked.
    pub fn rebuild(&self, rules: &[BypassRule]) -> Result<Vec<String>, IoError> {
        let mut marked = self.lock_marked();
        let present: Vec<(String, String)> = self
            .chains
            .iter()
            .filter(|(_, ifname)| crate::iface::ifindex(ifname).is_ok())
            .cloned()
            .collect();
        let mut script = install_script(&self.table, &present);
        script.push_str(&full_script(&self.table, rules));
        run_nft(&script)?;
        *marked = rules
            .iter()
            .filter(|r| matches!(r, BypassRule::MarkedService { .. }))
            .copied()
            .collect();
        Ok(present.into_iter().map(|(_, ifname)| ifname).collect())
    }

    /// The rules the kernel holds in table `table` (of the calling thread's network namespace):
    /// the elements of its sets and the rules of its `marked` chain, read back with
    /// `nft list table`.
    pub fn rules_in(table: &str) -> Result<BTreeSet<BypassRule>, IoError> {
        validate_table(table)?;
        let listing = nft_output(&["list", "table", "netdev", table])?;
        parse_listing(&listing)
    }

    /// Deletes the table and everything in it.
    pub fn remove(mut self) -> Result<(), IoError> {
        self.removed = true;
        run_nft(&remove_script(&self.table))
    }

    fn lock_marked(&self) -> MutexGuard<'_, BTreeSet<BypassRule>> {
        self.marked.lock().unwrap_or_else(|p| p.into_inner())
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

/// The base chain's declaration (inside braces).
fn hook_spec(ifname: &str) -> String {
    format!("type filter hook ingress device \"{ifname}\" priority -500; policy accept;")
}

/// The fixed rules of every base chain.
fn base_rules() -> impl Iterator<Item = &'static str> {
    SETS.iter()
        .flat_map(|s| s.rules.iter().copied())
        .chain(std::iter::once("jump marked"))
}

fn install_script(table: &str, chains: &[(String, String)]) -> String {
    // "add" then "delete" removes a stale table whether or not one exists.
    let mut s =
        format!("table netdev {table}\ndelete table netdev {table}\ntable netdev {table} {{\n");
    for set in &SETS {
        let _ = writeln!(s, "  set {} {{ type {}; }}", set.name, set.key);
    }
    let _ = writeln!(s, "  chain {MARKED_CHAIN} {{\n  }}");
    for (chain, ifname) in chains {
        let _ = writeln!(s, "  chain {chain} {{\n    {}", hook_spec(ifname));
        for rule in base_rules() {
            let _ = writeln!(s, "    {rule}");
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

/// Writes `verb element` lines for `elements` grouped by set (in [`SETS`] order).
fn element_lines<'a>(
    s: &mut String,
    table: &str,
    verb: &str,
    rules: impl IntoIterator<Item = &'a BypassRule>,
) {
    let mut per_set: [Vec<String>; SET_COUNT] = Default::default();
    for rule in rules {
        if let Slot::Element(set, element) = rule.slot() {
            per_set[set].push(element);
        }
    }
    for (def, elements) in SETS.iter().zip(&per_set) {
        for chunk in elements.chunks(ELEMENTS_PER_LINE) {
            let _ = writeln!(
                s,
                "{verb} element netdev {table} {} {{ {} }}",
                def.name,
                chunk.join(", ")
            );
        }
    }
}

/// Flushes the `marked` chain and adds `rules`' marked-service rules to it.
fn marked_lines<'a>(s: &mut String, table: &str, rules: impl IntoIterator<Item = &'a BypassRule>) {
    let _ = writeln!(s, "flush chain netdev {table} {MARKED_CHAIN}");
    for expr in rules.into_iter().filter_map(BypassRule::marked_expr) {
        let _ = writeln!(s, "add rule netdev {table} {MARKED_CHAIN} {expr}");
    }
}

/// Replaces everything: flushes the sets and the `marked` chain, adds `rules`.
fn full_script(table: &str, rules: &[BypassRule]) -> String {
    let mut s = String::new();
    for set in &SETS {
        let _ = writeln!(s, "flush set netdev {table} {}", set.name);
    }
    marked_lines(&mut s, table, rules);
    element_lines(&mut s, table, "add", rules);
    s
}

/// Deletes the elements of `delete`, adds those of `add`; rewrites the `marked` chain with
/// `marked` when given.
fn diff_script(
    table: &str,
    add: &[&BypassRule],
    delete: &[&BypassRule],
    marked: Option<&BTreeSet<BypassRule>>,
) -> String {
    let mut s = String::new();
    element_lines(&mut s, table, "delete", delete.iter().copied());
    element_lines(&mut s, table, "add", add.iter().copied());
    if let Some(marked) = marked {
        marked_lines(&mut s, table, marked);
    }
    s
}

/// (Re-)creates base chains: `(chain, interface, delete the existing one first)`.
fn reattach_script(table: &str, chains: &[(&str, &str, bool)]) -> String {
    let mut s = String::new();
    for &(chain, ifname, replace) in chains {
        if replace {
            let _ = writeln!(s, "delete chain netdev {table} {chain}");
        }
        let _ = writeln!(
            s,
            "add chain netdev {table} {chain} {{ {} }}",
            hook_spec(ifname)
        );
        for rule in base_rules() {
            let _ = writeln!(s, "add rule netdev {table} {chain} {rule}");
        }
    }
    s
}

fn remove_script(table: &str) -> String {
    format!("delete table netdev {table}\n")
}

/// The chains of `table` in `nft list chains netdev` output with the device each is hooked to
/// (`None`: no single device named); `None` when the table is not listed.
fn base_chains(listing: &str, table: &str) -> Option<Vec<(String, Option<String>)>> {
    let header = format!("table netdev {table} {{");
    let mut in_table = false;
    let mut found = false;
    let mut chains: Vec<(String, Option<String>)> = Vec::new();
    for line in listing.lines().map(str::trim) {
        if line.starts_with("table ") {
            in_table = line == header;
            found |= in_table;
            continue;
        }
        if !in_table {
            continue;
        }
        if let Some(name) = line
            .strip_prefix("chain ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            chains.push((name.to_owned(), None));
        } else if let Some(rest) = line.split_once(" device \"").map(|(_, r)| r) {
            if let (Some(last), Some((dev, _))) = (chains.last_mut(), rest.split_once('"')) {
                last.1 = Some(dev.to_owned());
            }
        }
    }
    found.then_some(chains)
}

/// The rules in `nft list table netdev T` output: set elements and `marked` chain rules.
fn parse_listing(listing: &str) -> Result<BTreeSet<BypassRule>, IoError> {
    let bad = |what: &str| IoError::Nft(format!("cannot read the listed {what}"));
    let mut rules = BTreeSet::new();
    // The set or chain being read.
    let mut set: Option<usize> = None;
    let mut in_marked = false;
    let mut elements: Option<String> = None;
    for line in listing.lines().map(str::trim) {
        if let Some(text) = elements.as_mut() {
            text.push(' ');
            text.push_str(line);
        } else if let Some(name) = line.strip_prefix("set ").and_then(|l| l.strip_suffix(" {")) {
            set = SETS.iter().position(|d| d.name == name);
            in_marked = false;
        } else if let Some(name) = line
            .strip_prefix("chain ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            set = None;
            in_marked = name == MARKED_CHAIN;
        } else if let Some(rest) = line.strip_prefix("elements = {") {
            elements = Some(rest.to_owned());
        } else if in_marked && (line.starts_with("ip ") || line.starts_with("ip6 ")) {
            rules.insert(parse_marked(line).ok_or_else(|| bad("marked-service rule"))?);
        }
        let closed = elements.as_ref().and_then(|t| t.split_once('}'));
        if let Some((body, _)) = closed {
            if let Some(index) = set {
                for element in body.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                    rules.insert(parse_element(index, element).ok_or_else(|| bad("element"))?);
                }
            }
            elements = None;
        }
    }
    Ok(rules)
}

/// The rule of element `text` (`a . b . c`) of set `SETS[index]`.
fn parse_element(index: usize, text: &str) -> Option<BypassRule> {
    let parts: Vec<&str> = text.split(" . ").map(str::trim).collect();
    let ip = |i: usize| parts.get(i)?.parse::<IpAddr>().ok();
    let proto = |i: usize| L4Proto::parse(parts.get(i)?);
    let port = |i: usize| parts.get(i)?.parse::<u16>().ok();
    let rule = match (index % KINDS, parts.len()) {
        (0, 3) => BypassRule::Service {
            vip: ip(0)?,
            proto: proto(1)?,
            port: port(2)?,
        },
        (1, 2) => BypassRule::Service {
            vip: ip(0)?,
            proto: proto(1)?,
            port: 0,
        },
        (2, 3) => BypassRule::RealServerReply {
            rip: ip(0)?,
            proto: proto(1)?,
            port: port(2)?,
        },
        (3, 2) => BypassRule::RealServerReply {
            rip: ip(0)?,
            proto: proto(1)?,
            port: 0,
        },
        (4, 4) => BypassRule::FullNatReply {
            rip: ip(0)?,
            laddr: ip(1)?,
            proto: proto(2)?,
            port: port(3)?,
        },
        (5, 3) => BypassRule::FullNatReply {
            rip: ip(0)?,
            laddr: ip(1)?,
            proto: proto(2)?,
            port: 0,
        },
        (6, 2) => BypassRule::RealServerFragments {
            rip: ip(0)?,
            proto: proto(1)?,
        },
        _ => return None,
    };
    Some(rule)
}

/// The rule of a listed `marked` chain line, `ip daddr NET[/LEN] PROTO dport A[-B] counter ...`.
fn parse_marked(line: &str) -> Option<BypassRule> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [family, "daddr", net, proto, "dport", ports, ..] = words.as_slice() else {
        return None;
    };
    let (net, len) = match net.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let a = net.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    if (*family == "ip") != net.is_ipv4() {
        return None;
    }
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let p = ports.parse().ok()?;
            (p, p)
        }
    };
    Some(BypassRule::MarkedService {
        proto: L4Proto::parse(proto)?,
        net,
        prefix_len: len,
        first_port: first,
        last_port: last,
    })
}

/// Longest error text kept from nft's stderr (it quotes the failing line).
const MAX_ERROR: usize = 2000;

fn nft_failure(stderr: &[u8]) -> IoError {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let mut end = text.len().min(MAX_ERROR);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    IoError::Nft(text[..end].to_owned())
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
        return Err(nft_failure(&out.stderr));
    }
    Ok(())
}

/// Runs `nft ARGS` and returns its standard output.
fn nft_output(args: &[&str]) -> Result<String, IoError> {
    let out = Command::new("nft")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| IoError::Nft(format!("cannot run nft: {e}")))?;
    if !out.status.success() {
        return Err(nft_failure(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn sample() -> Vec<BypassRule> {
        vec![
            BypassRule::Service {
                proto: L4Proto::Tcp,
                vip: ip("10.0.0.100"),
                port: 80,
            },
            BypassRule::Service {
                proto: L4Proto::Udp,
                vip: ip("fd00::100"),
                port: 0,
            },
            BypassRule::MarkedService {
                proto: L4Proto::Tcp,
                net: ip("10.0.0.7"),
                prefix_len: 24,
                first_port: 88,
                last_port: 80,
            },
            BypassRule::MarkedService {
                proto: L4Proto::Sctp,
                net: ip("fd00::"),
                prefix_len: 128,
                first_port: 9,
                last_port: 9,
            },
            BypassRule::RealServerReply {
                proto: L4Proto::Sctp,
                rip: ip("192.168.1.2"),
                port: 9,
            },
            BypassRule::RealServerReply {
                proto: L4Proto::Udp,
                rip: ip("fd00::2"),
                port: 0,
            },
            BypassRule::FullNatReply {
                proto: L4Proto::Tcp,
                rip: ip("fd00::2"),
                port: 80,
                laddr: ip("fd00::101"),
            },
            BypassRule::FullNatReply {
                proto: L4Proto::Udp,
                rip: ip("10.1.1.2"),
                port: 0,
                laddr: ip("10.1.1.101"),
            },
            BypassRule::RealServerFragments {
                proto: L4Proto::Udp,
                rip: ip("fd00::2"),
            },
            BypassRule::RealServerFragments {
                proto: L4Proto::Tcp,
                rip: ip("192.168.1.2"),
            },
        ]
    }

    #[test]
    fn rules_map_to_set_elements_or_marked_rules() {
        let slots: Vec<Slot> = sample().iter().map(BypassRule::slot).collect();
        let element = |set: &str, text: &str| {
            let index = SETS.iter().position(|d| d.name == set).unwrap_or(99);
            Slot::Element(index, text.to_owned())
        };
        assert_eq!(
            slots,
            vec![
                element("svc4", "10.0.0.100 . tcp . 80"),
                element("svcany6", "fd00::100 . udp"),
                Slot::Marked,
                Slot::Marked,
                element("rs4", "192.168.1.2 . sctp . 9"),
                element("rsany6", "fd00::2 . udp"),
                element("fnat6", "fd00::2 . fd00::101 . tcp . 80"),
                element("fnatany4", "10.1.1.2 . 10.1.1.101 . udp"),
                element("rsfrag6", "fd00::2 . udp"),
                element("rsfrag4", "192.168.1.2 . tcp"),
            ]
        );
        let mixed = BypassRule::FullNatReply {
            proto: L4Proto::Tcp,
            rip: ip("10.1.1.2"),
            port: 80,
            laddr: ip("fd00::1"),
        };
        assert_eq!(mixed.slot(), Slot::None);
        let exprs: Vec<String> = sample()
            .iter()
            .filter_map(BypassRule::marked_expr)
            .collect();
        assert_eq!(
            exprs,
            [
                "ip daddr 10.0.0.0/24 tcp dport 80-88 counter drop",
                "ip6 daddr fd00::/128 sctp dport 9 counter drop"
            ]
        );
    }

    #[test]
    fn install_script_declares_sets_and_fixed_chains() {
        let chains = vec![
            (chain_name(0, "eth0"), "eth0".to_owned()),
            (chain_name(1, "v-1.2"), "v-1.2".to_owned()),
        ];
        assert_eq!(chains[1].0, "in1_v_1_2");
        let s = install_script("rvs", &chains);
        assert!(s.starts_with("table netdev rvs\ndelete table netdev rvs\ntable netdev rvs {\n"));
        assert!(s.contains("  set svc4 { type ipv4_addr . inet_proto . inet_service; }\n"));
        assert!(
            s.contains("  set rsfrag6 { type ipv6_addr . inet_proto; }\n  chain marked {\n  }\n")
        );
        assert!(s.contains(
            "  chain in1_v_1_2 {\n    type filter hook ingress device \"v-1.2\" priority -500; policy accept;\n    ip daddr . meta l4proto . th dport @svc4 counter drop\n"
        ));
        // Every base chain: one lookup per set, then the marked rules.
        assert_eq!(s.matches("counter drop").count(), 2 * (SETS.len() + 1));
        assert_eq!(s.matches("fib daddr type != local").count(), 2 * 7);
        assert_eq!(s.matches("    jump marked\n  }\n").count(), 2);
        assert!(s.ends_with("}\n"));
    }

    #[test]
    fn full_script_flushes_and_adds_everything() {
        let s = full_script("rvs", &sample());
        let expected = "flush set netdev rvs svc4\n\
            flush set netdev rvs svcany4\n\
            flush set netdev rvs rs4\n\
            flush set netdev rvs rsany4\n\
            flush set netdev rvs fnat4\n\
            flush set netdev rvs fnatany4\n\
            flush set netdev rvs rsfrag4\n\
            flush set netdev rvs svc6\n\
            flush set netdev rvs svcany6\n\
            flush set netdev rvs rs6\n\
            flush set netdev rvs rsany6\n\
            flush set netdev rvs fnat6\n\
            flush set netdev rvs fnatany6\n\
            flush set netdev rvs rsfrag6\n\
            flush chain netdev rvs marked\n\
            add rule netdev rvs marked ip daddr 10.0.0.0/24 tcp dport 80-88 counter drop\n\
            add rule netdev rvs marked ip6 daddr fd00::/128 sctp dport 9 counter drop\n\
            add element netdev rvs svc4 { 10.0.0.100 . tcp . 80 }\n\
            add element netdev rvs rs4 { 192.168.1.2 . sctp . 9 }\n\
            add element netdev rvs fnatany4 { 10.1.1.2 . 10.1.1.101 . udp }\n\
            add element netdev rvs rsfrag4 { 192.168.1.2 . tcp }\n\
            add element netdev rvs svcany6 { fd00::100 . udp }\n\
            add element netdev rvs rsany6 { fd00::2 . udp }\n\
            add element netdev rvs fnat6 { fd00::2 . fd00::101 . tcp . 80 }\n\
            add element netdev rvs rsfrag6 { fd00::2 . udp }\n";
        assert_eq!(s, expected);
        assert_eq!(
            full_script("rvs", &[]),
            expected.split("add rule").next().unwrap_or("")
        );
    }

    #[test]
    fn diff_script_deletes_then_adds_in_one_go() {
        let svc = |port: u16| BypassRule::Service {
            proto: L4Proto::Tcp,
            vip: ip("10.0.0.1"),
            port,
        };
        let (a, b, c) = (svc(1), svc(2), svc(3));
        let rs = BypassRule::RealServerReply {
            proto: L4Proto::Tcp,
            rip: ip("10.1.0.2"),
            port: 8080,
        };
        let s = diff_script("rvs", &[&a, &b, &rs], &[&c], None);
        assert_eq!(
            s,
            "delete element netdev rvs svc4 { 10.0.0.1 . tcp . 3 }\n\
             add element netdev rvs svc4 { 10.0.0.1 . tcp . 1, 10.0.0.1 . tcp . 2 }\n\
             add element netdev rvs rs4 { 10.1.0.2 . tcp . 8080 }\n"
        );
        assert_eq!(diff_script("rvs", &[], &[], None), "");
        // A marked-service change rewrites the marked chain with the rules given.
        let marked: BTreeSet<BypassRule> = sample()
            .into_iter()
            .filter(|r| matches!(r, BypassRule::MarkedService { .. }))
            .take(1)
            .collect();
        let s = diff_script("rvs", &[], &[], Some(&marked));
        assert_eq!(
            s,
            "flush chain netdev rvs marked\n\
             add rule netdev rvs marked ip daddr 10.0.0.0/24 tcp dport 80-88 counter drop\n"
        );
        // Long element lists are split over lines.
        let many: Vec<BypassRule> = (1..=600).map(svc).collect();
        let refs: Vec<&BypassRule> = many.iter().collect();
        let s = diff_script("rvs", &refs, &[], None);
        assert_eq!(s.lines().count(), 3);
        assert_eq!(s.matches(" . tcp . ").count(), 600);
    }

    #[test]
    fn reattach_script_recreates_chains_with_their_rules() {
        let s = reattach_script("rvs", &[("in0_eth0", "eth0", false), ("in1_x", "x", true)]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "add chain netdev rvs in0_eth0 { type filter hook ingress device \"eth0\" priority -500; policy accept; }"
        );
        assert_eq!(
            lines[1],
            "add rule netdev rvs in0_eth0 ip daddr . meta l4proto . th dport @svc4 counter drop"
        );
        assert_eq!(lines[16], "add rule netdev rvs in0_eth0 jump marked");
        assert_eq!(lines[17], "delete chain netdev rvs in1_x");
        assert_eq!(lines.len(), 2 * 17 + 1);
        assert_eq!(reattach_script("rvs", &[]), "");
    }

    #[test]
    fn listings_are_read_back() {
        let chains = "table netdev other {\n\tchain in0_a {\n\t\ttype filter hook ingress device \"a\" priority -500; policy accept;\n\t}\n}\n\
            table netdev rvs {\n\tchain marked {\n\t}\n\tchain in0_eth0 {\n\t\ttype filter hook ingress device \"eth0\" priority -500; policy accept;\n\t}\n}\n";
        assert_eq!(
            base_chains(chains, "rvs"),
            Some(vec![
                ("marked".to_owned(), None),
                ("in0_eth0".to_owned(), Some("eth0".to_owned()))
            ])
        );
        assert_eq!(base_chains(chains, "nope"), None);

        let listing = "table netdev rvs {\n\
            \tset svc4 {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\
            \t\telements = { 10.0.0.100 . tcp . 80,\n\t\t\t     10.0.0.101 . 17 . 53 }\n\t}\n\
            \tset svcany6 {\n\t\ttype ipv6_addr . inet_proto\n\t\telements = { fd00::100 . udp }\n\t}\n\
            \tset rs4 {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t}\n\
            \tset fnat6 {\n\t\ttype ipv6_addr . ipv6_addr . inet_proto . inet_service\n\
            \t\telements = { fd00::2 . fd00::101 . tcp . 80 }\n\t}\n\
            \tset rsfrag4 {\n\t\ttype ipv4_addr . inet_proto\n\t\telements = { 192.168.1.2 . tcp }\n\t}\n\
            \tset rsfrag6 {\n\t\ttype ipv6_addr . inet_proto\n\t\telements = { fd00::2 . udp }\n\t}\n\
            \tchain marked {\n\
            \t\tip daddr 10.0.0.0/24 tcp dport 80-88 counter packets 0 bytes 0 drop\n\
            \t\tip6 daddr fd00:: sctp dport 9 counter packets 3 bytes 9 drop\n\t}\n\
            \tchain in0_eth0 {\n\t\ttype filter hook ingress device \"eth0\" priority -500; policy accept;\n\
            \t\tip daddr . meta l4proto . th dport @svc4 counter packets 0 bytes 0 drop\n\t}\n}\n";
        let rules = parse_listing(listing).unwrap_or_default();
        let mut expected: BTreeSet<BypassRule> = sample()
            .into_iter()
            .filter(|r| {
                !matches!(
                    r,
                    BypassRule::RealServerReply { .. }
                        | BypassRule::FullNatReply {
                            proto: L4Proto::Udp,
                            ..
                        }
                )
            })
            .collect();
        // Read back normalised: the network address and the ports in order.
        expected.retain(|r| {
            !matches!(
                r,
                BypassRule::MarkedService {
                    proto: L4Proto::Tcp,
                    ..
                }
            )
        });
        expected.insert(BypassRule::MarkedService {
            proto: L4Proto::Tcp,
            net: ip("10.0.0.0"),
            prefix_len: 24,
            first_port: 80,
            last_port: 88,
        });
        expected.insert(BypassRule::Service {
            proto: L4Proto::Udp,
            vip: ip("10.0.0.101"),
            port: 53,
        });
        assert_eq!(rules, expected);
        assert!(
            parse_listing("table netdev rvs {\n\tset svc4 {\n\t\telements = { nonsense }\n")
                .is_err()
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

    #[test]
    fn long_nft_errors_are_cut() {
        let long = "é".repeat(MAX_ERROR);
        let IoError::Nft(text) = nft_failure(long.as_bytes()) else {
            unreachable!("nft_failure gives IoError::Nft");
        };
        assert!(text.len() <= MAX_ERROR && !text.is_empty());
    }
}
