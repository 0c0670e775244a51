//! Keeps the nftables netdev-ingress rules in step with the configured services, so the kernel
//! neither answers nor forwards the traffic rvsd forwards itself.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rvs_engine::{Engine, ForwardMethod, Protocol};
use rvs_io::{BypassRule, KernelBypass, L4Proto, NetState};

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
    pub fn install(
        socket: &Path,
        interfaces: &[String],
        _net: Arc<NetState>,
    ) -> Result<Bypass, rvs_io::IoError> {
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
    for svc in engine.services(rvs_engine::Millis(0)) {
        let proto = l4(svc.spec.key.proto);
        rules.insert(RuleKey::Service(
            proto,
            svc.spec.key.addr,
            svc.spec.key.port,
        ));
        for dest in &svc.dests {
            if dest.spec.method == ForwardMethod::Masq {
                rules.insert(RuleKey::Reply(proto, dest.spec.addr, dest.spec.port));
            }
            if dest.spec.method == ForwardMethod::FullNat {
                for laddr in &svc.spec.local_addrs {
                    rules.insert(RuleKey::FullNatReply(
                        proto,
                        dest.spec.addr,
                        dest.spec.port,
                        *laddr,
                    ));
                }
            }
        }
    }
    rules.into_iter().map(RuleKey::into_rule).collect()
}

/// Orderable mirror of [`BypassRule`] so the rule list is deduplicated and stable.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum RuleKey {
    Service(L4Proto, IpAddr, u16),
    Reply(L4Proto, IpAddr, u16),
    FullNatReply(L4Proto, IpAddr, u16, IpAddr),
}

impl RuleKey {
    fn into_rule(self) -> BypassRule {
        match self {
            RuleKey::Service(proto, vip, port) => BypassRule::Service { proto, vip, port },
            RuleKey::Reply(proto, rip, port) => BypassRule::RealServerReply { proto, rip, port },
            RuleKey::FullNatReply(proto, rip, port, laddr) => BypassRule::FullNatReply {
                proto,
                rip,
                port,
                laddr,
            },
        }
    }
}

fn l4(proto: Protocol) -> L4Proto {
    match proto {
        Protocol::Tcp => L4Proto::Tcp,
        Protocol::Udp => L4Proto::Udp,
    }
}
