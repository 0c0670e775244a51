//! Keeps the nftables netdev-ingress rules in step with the configured services, so the kernel
//! neither answers nor forwards the traffic rvsd forwards itself.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rvs_engine::{Engine, ForwardMethod, Protocol};
use rvs_io::{BypassRule, KernelBypass, L4Proto};

/// Shared handle on this rvsd instance's nftables table.
#[derive(Clone)]
pub struct Bypass {
    inner: Arc<Mutex<Option<Installed>>>,
}

struct Installed {
    table: KernelBypass,
    applied: Vec<BypassRule>,
}

impl Bypass {
    /// Installs the table for this instance (named after its control socket, so a restarted rvsd
    /// removes what a killed one left behind) with a chain per interface.
    pub fn install(socket: &Path, interfaces: &[String]) -> Result<Bypass, rvs_io::IoError> {
        let table = KernelBypass::install(&table_name(socket), interfaces)?;
        Ok(Bypass {
            inner: Arc::new(Mutex::new(Some(Installed {
                table,
                applied: Vec::new(),
            }))),
        })
    }

    /// Recomputes the rules from the engine's services and applies them if they changed.
    pub fn sync(&self, engine: &Engine) {
        let wanted = rules_for(engine);
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(installed) = guard.as_mut() else {
            return;
        };
        if installed.applied == wanted {
            return;
        }
        match installed.table.apply(&wanted) {
            Ok(()) => {
                tracing::debug!(rules = wanted.len(), "kernel-bypass rules applied");
                installed.applied = wanted;
            }
            Err(e) => tracing::error!("applying kernel-bypass rules failed: {e}"),
        }
    }

    /// Removes the table (on shutdown).
    pub fn remove(&self) {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(installed) = guard.take() {
            if let Err(e) = installed.table.remove() {
                tracing::warn!("removing kernel-bypass rules failed: {e}");
            }
        }
    }
}

/// The nftables table name for the instance serving `socket`: stable across restarts, distinct
/// for distinct sockets, and a valid nft identifier.
pub fn table_name(socket: &Path) -> String {
    format!("rvsd_{:08x}", instance_hash(socket))
}

/// The TUN device name (local delivery) for the instance serving `socket`: like
/// [`table_name`], distinct per instance, and short enough for an interface (11 bytes).
pub fn tun_name(socket: &Path) -> String {
    format!("rvs{:08x}", instance_hash(socket))
}

/// FNV-1a over the socket path bytes: short, deterministic, no extra dependency.
fn instance_hash(socket: &Path) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in socket.as_os_str().as_encoded_bytes() {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The drop rules the current configuration needs: every service's VIP:port, and the replies of
/// every masqueraded real server, and the FULLNAT replies to every local address.
fn rules_for(engine: &Engine) -> Vec<BypassRule> {
    let mut rules = BTreeSet::new();
    let marks = engine.mark_rules();
    for svc in engine.services(rvs_engine::Millis(0)) {
        let key = svc.spec.key;
        // A firewall-mark service gets the traffic of the mark rules of its mark and family,
        // and its real servers' replies in those rules' protocols.
        let protos: Vec<L4Proto> = if key.fwmark != 0 {
            let mine: Vec<_> = marks
                .iter()
                .filter(|r| r.mark == key.fwmark && r.addr.is_ipv6() == key.addr.is_ipv6())
                .collect();
            for r in &mine {
                rules.insert(BypassRule::MarkedService {
                    proto: l4(r.proto),
                    net: r.addr,
                    prefix_len: r.prefix_len,
                    first_port: r.ports.0,
                    last_port: r.ports.1,
                });
            }
            let set: BTreeSet<L4Proto> = mine.iter().map(|r| l4(r.proto)).collect();
            set.into_iter().collect()
        } else {
            rules.insert(BypassRule::Service {
                proto: l4(key.proto),
                vip: key.addr,
                port: key.port,
            });
            vec![l4(key.proto)]
        };
        for proto in protos {
            dest_rules(&mut rules, &svc, proto);
        }
    }
    rules.into_iter().collect()
}

/// The replies of a service's real servers that come back through the director: masqueraded
/// servers' to anyone, FULLNAT servers' to the local addresses.
fn dest_rules(rules: &mut BTreeSet<BypassRule>, svc: &rvs_engine::ServiceStatus, proto: L4Proto) {
    for dest in &svc.dests {
        let (rip, port) = (dest.spec.addr, dest.spec.port);
        if dest.spec.method == ForwardMethod::Masq {
            rules.insert(BypassRule::RealServerReply { proto, rip, port });
        }
        if dest.spec.method == ForwardMethod::FullNat {
            for laddr in &svc.spec.local_addrs {
                rules.insert(BypassRule::FullNatReply {
                    proto,
                    rip,
                    port,
                    laddr: *laddr,
                });
            }
        }
    }
}

fn l4(proto: Protocol) -> L4Proto {
    match proto {
        Protocol::Tcp => L4Proto::Tcp,
        Protocol::Udp => L4Proto::Udp,
        Protocol::Sctp => L4Proto::Sctp,
    }
}
