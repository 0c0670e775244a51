//! Keeps the nftables netdev-ingress rules in step with the configured services, so the kernel
//! neither answers nor forwards the traffic rvsd forwards itself.
//!
//! The rules live in nftables sets ([`rvs_io::KernelBypass`]); every configuration change is
//! turned into the elements to add and to delete, applied as one transaction. What the
//! configuration needs is kept per service, so a change costs one walk over the service specs
//! (no counters) plus work proportional to what changed, not a rebuild of every rule.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rvs_engine::spec_walk::{ServiceRef, SpecWalk};
use rvs_engine::{Engine, ForwardMethod, MarkRule, Protocol, ServiceKey};
use rvs_io::{BypassRule, IoError, KernelBypass, L4Proto};

/// Shared handle on this rvsd instance's nftables table.
#[derive(Clone)]
pub struct Bypass {
    inner: Arc<Mutex<Option<Installed>>>,
}

struct Installed {
    table: KernelBypass,
    /// What the kernel holds, as last committed.
    applied: BTreeSet<BypassRule>,
    /// What the configuration needs.
    wanted: Wanted,
    /// The kernel may not hold `applied` (a full re-sync failed): re-sync everything next time.
    dirty: bool,
}

impl Bypass {
    /// Installs the table for this instance (named after its control socket, so a restarted rvsd
    /// removes what a killed one left behind) with a chain per interface.
    pub fn install(
        socket: &Path,
        interfaces: &[String],
        engine: &Engine,
    ) -> Result<Bypass, IoError> {
        let mut wanted = Wanted::default();
        wanted.update(&engine.spec_walk());
        let rules = wanted.rules();
        let table = KernelBypass::install_with(&table_name(socket), interfaces, &rules)?;
        Ok(Bypass {
            inner: Arc::new(Mutex::new(Some(Installed {
                table,
                applied: rules.into_iter().collect(),
                wanted,
                dirty: false,
            }))),
        })
    }

    /// Leaves the rules in the kernel for a successor (after a handover), which replaces them
    /// in one transaction with its own.
    pub fn leave(&self) {
        if let Some(installed) = self.lock().take() {
            installed.table.leave();
        }
    }

    /// Brings the kernel's rules in line with the engine's current configuration: computes what
    /// it needs, applies the difference to what was applied before as one nft transaction, and
    /// falls back to one transaction replacing everything when that fails (logged).
    ///
    /// Atomic with respect to concurrent callers: the configuration is read, diffed, applied and
    /// recorded under one lock, so the last caller to get the lock applies the newest
    /// configuration and an older one is never applied after it.
    pub fn sync(&self, engine: &Engine) {
        let mut guard = self.lock();
        let Some(installed) = guard.as_mut() else {
            return;
        };
        installed.sync(&engine.spec_walk());
    }

    /// Re-creates the ingress chains (with their rules) of the interfaces rvsd runs on that the
    /// kernel dropped: kernels before 6.16 delete a netdev chain when its interface is deleted,
    /// and do not hook it again when an interface of that name comes back. The data plane calls
    /// this when it sees one of its interfaces (re)appear. Idempotent: chains in place are left
    /// alone, and an interface that does not exist now is skipped. If the whole table is gone
    /// (e.g. `nft flush ruleset`), it is rebuilt with every rule in one transaction. Returns the
    /// interfaces whose chains were (re)created.
    pub fn reattach(&self) -> Result<Vec<String>, IoError> {
        let mut guard = self.lock();
        let Some(installed) = guard.as_mut() else {
            return Ok(Vec::new());
        };
        let result = installed.reattach();
        match &result {
            Ok(ifs) if !ifs.is_empty() => {
                tracing::info!(interfaces = ?ifs, "kernel-bypass chains re-created")
            }
            Ok(_) => {}
            Err(e) => tracing::error!("re-creating kernel-bypass chains failed: {e}"),
        }
        result
    }

    /// Removes the table (on shutdown).
    pub fn remove(&self) {
        if let Some(installed) = self.lock().take() {
            if let Err(e) = installed.table.remove() {
                tracing::warn!("removing kernel-bypass rules failed: {e}");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Installed>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Installed {
    fn sync(&mut self, walk: &SpecWalk) {
        let touched = self.wanted.update(walk);
        if self.dirty {
            self.resync();
            return;
        }
        let mut add = Vec::new();
        let mut delete = Vec::new();
        for rule in touched {
            match (self.wanted.contains(&rule), self.applied.contains(&rule)) {
                (true, false) => add.push(rule),
                (false, true) => delete.push(rule),
                _ => {}
            }
        }
        if add.is_empty() && delete.is_empty() {
            return;
        }
        match self.table.apply_diff(&add, &delete) {
            Ok(()) => {
                tracing::debug!(
                    added = add.len(),
                    deleted = delete.len(),
                    "kernel-bypass rules updated"
                );
                for rule in &delete {
                    self.applied.remove(rule);
                }
                self.applied.extend(add);
            }
            Err(e) => {
                tracing::warn!("updating kernel-bypass rules failed ({e}); re-syncing them all");
                self.resync();
            }
        }
    }

    /// Replaces every rule in the kernel with the wanted ones, in one transaction.
    fn resync(&mut self) {
        let all = self.wanted.rules();
        match self.table.apply(&all) {
            Ok(()) => {
                tracing::info!(rules = all.len(), "kernel-bypass rules re-synced");
                self.applied = all.into_iter().collect();
                self.dirty = false;
            }
            Err(e) => {
                tracing::error!("re-syncing kernel-bypass rules failed: {e}");
                self.dirty = true;
            }
        }
    }

    fn reattach(&mut self) -> Result<Vec<String>, IoError> {
        if self.table.is_present()? {
            return self.table.reattach();
        }
        let all = self.wanted.rules();
        let hooked = self.table.rebuild(&all)?;
        self.applied = all.into_iter().collect();
        self.dirty = false;
        Ok(hooked)
    }
}

/// The rules the configuration needs, kept per service with a count of the services needing
/// each rule (real servers and local addresses are shared between services).
#[derive(Default)]
struct Wanted {
    services: HashMap<ServiceKey, ServiceRules>,
    counts: HashMap<BypassRule, u32>,
    generation: u64,
    scratch: Vec<BypassRule>,
}

struct ServiceRules {
    /// The last [`Wanted::update`] that saw the service.
    generation: u64,
    rules: Vec<BypassRule>,
}

impl Wanted {
    /// Brings the model up to `walk`'s configuration; returns (sorted, once each) the rules
    /// whose count changed, the only ones that may have come or gone.
    fn update(&mut self, walk: &SpecWalk) -> Vec<BypassRule> {
        self.generation += 1;
        let generation = self.generation;
        let mut touched = Vec::new();
        // A deleted service's connections stay until they time out (IPVS's): the kernel keeps
        // away from its traffic until then too, a firewall-mark one's found by the rules that
        // classified it (`-C` clears the live ones).
        let live = walk.services().map(|svc| (svc, walk.mark_rules()));
        let retired = walk
            .retired_services()
            .map(|svc| (svc, walk.retired_mark_rules()));
        for (svc, marks) in live.chain(retired) {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            service_rules(&svc, marks, &mut scratch);
            let key = svc.spec().key;
            match self.services.get_mut(&key) {
                Some(entry) => {
                    entry.generation = generation;
                    if entry.rules != scratch {
                        release(&mut self.counts, &entry.rules, &mut touched);
                        acquire(&mut self.counts, &scratch, &mut touched);
                        std::mem::swap(&mut entry.rules, &mut scratch);
                    }
                }
                None => {
                    acquire(&mut self.counts, &scratch, &mut touched);
                    let rules = scratch.clone();
                    self.services
                        .insert(key, ServiceRules { generation, rules });
                }
            }
            self.scratch = scratch;
        }
        let counts = &mut self.counts;
        self.services.retain(|_, entry| {
            let seen = entry.generation == generation;
            if !seen {
                release(counts, &entry.rules, &mut touched);
            }
            seen
        });
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    fn contains(&self, rule: &BypassRule) -> bool {
        self.counts.contains_key(rule)
    }

    /// Every wanted rule, sorted.
    fn rules(&self) -> Vec<BypassRule> {
        let mut all: Vec<BypassRule> = self.counts.keys().copied().collect();
        all.sort_unstable();
        all
    }
}

fn acquire(
    counts: &mut HashMap<BypassRule, u32>,
    rules: &[BypassRule],
    touched: &mut Vec<BypassRule>,
) {
    for rule in rules {
        *counts.entry(*rule).or_insert(0) += 1;
        touched.push(*rule);
    }
}

fn release(
    counts: &mut HashMap<BypassRule, u32>,
    rules: &[BypassRule],
    touched: &mut Vec<BypassRule>,
) {
    for rule in rules {
        if let Some(n) = counts.get_mut(rule) {
            *n -= 1;
            if *n == 0 {
                counts.remove(rule);
            }
        }
        touched.push(*rule);
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

/// The drop rules one service needs, appended to `out` in a deterministic order: its VIP:port
/// (or, for a firewall-mark service, the traffic of the mark rules of its mark and family), the
/// replies of its masqueraded real servers (and all their fragments), and its FULLNAT
/// replies to its local addresses.
fn service_rules(svc: &ServiceRef<'_>, marks: &[MarkRule], out: &mut Vec<BypassRule>) {
    let spec = svc.spec();
    let key = spec.key;
    // A firewall-mark service gets its real servers' replies in its mark rules' protocols.
    let mut protos = [false; 3];
    if key.fwmark != 0 {
        for r in marks.iter().filter(|r| r.marks_for(&key)) {
            out.push(BypassRule::MarkedService {
                proto: l4(r.proto),
                net: r.addr,
                prefix_len: r.prefix_len,
                first_port: r.ports.0,
                last_port: r.ports.1,
            });
            protos[proto_index(r.proto)] = true;
        }
    } else {
        out.push(BypassRule::Service {
            proto: l4(key.proto),
            vip: key.addr,
            port: key.port,
        });
        protos[proto_index(key.proto)] = true;
    }
    for (proto, _) in [L4Proto::Tcp, L4Proto::Udp, L4Proto::Sctp]
        .into_iter()
        .zip(protos)
        .filter(|(_, on)| *on)
    {
        for dest in svc.dests() {
            let (rip, port) = (dest.addr(), dest.port());
            match dest.method() {
                ForwardMethod::Masq => {
                    out.push(BypassRule::RealServerReply { proto, rip, port });
                    out.push(BypassRule::RealServerFragments { proto, rip });
                }
                ForwardMethod::FullNat => {
                    out.extend(
                        spec.local_addrs
                            .iter()
                            .map(|laddr| BypassRule::FullNatReply {
                                proto,
                                rip,
                                port,
                                laddr: *laddr,
                            }),
                    )
                }
                _ => {}
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

/// The position of `proto` in `[Tcp, Udp, Sctp]`.
fn proto_index(proto: Protocol) -> usize {
    match proto {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Sctp => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_engine::{DestSpec, EngineConfig, SchedFlags, SchedulerKind, ServiceSpec};
    use std::net::IpAddr;

    /// Every rule the configuration needs, computed from scratch.
    fn from_scratch(engine: &Engine) -> BTreeSet<BypassRule> {
        let walk = engine.spec_walk();
        let mut out = Vec::new();
        for svc in walk.services() {
            service_rules(&svc, walk.mark_rules(), &mut out);
        }
        for svc in walk.retired_services() {
            service_rules(&svc, walk.retired_mark_rules(), &mut out);
        }
        out.into_iter().collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address literal")
    }

    fn service(key: ServiceKey, laddrs: &[&str]) -> ServiceSpec {
        ServiceSpec {
            key,
            scheduler: SchedulerKind::Rr,
            sched_flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            local_addrs: laddrs.iter().map(|a| ip(a)).collect(),
            proxy_protocol: None,
        }
    }

    fn dest(addr: &str, port: u16, method: ForwardMethod) -> DestSpec {
        DestSpec {
            addr: ip(addr),
            port,
            weight: 1,
            method,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Default::default(),
        }
    }

    #[test]
    fn rules_of_each_kind_of_service() {
        let engine = Engine::new(EngineConfig::default());
        let web = ServiceKey::new(Protocol::Tcp, ip("10.0.0.1"), 80);
        engine.add_service(service(web, &[])).expect("add");
        engine
            .add_dest(&web, dest("10.1.0.2", 8080, ForwardMethod::Masq))
            .expect("add dest");
        engine
            .add_dest(&web, dest("10.1.0.3", 80, ForwardMethod::Route))
            .expect("add dest");
        let fnat = ServiceKey::new(Protocol::Udp, ip("fd00::1"), 53);
        engine
            .add_service(service(fnat, &["fd00::a", "fd00::b"]))
            .expect("add");
        engine
            .add_dest(&fnat, dest("fd01::2", 53, ForwardMethod::FullNat))
            .expect("add dest");
        let marked = ServiceKey::fwmark(7, false);
        engine.add_service(service(marked, &[])).expect("add");
        engine
            .add_dest(&marked, dest("10.1.0.4", 0, ForwardMethod::Masq))
            .expect("add dest");
        for proto in [Protocol::Tcp, Protocol::Udp] {
            engine
                .add_mark_rule(MarkRule {
                    proto,
                    addr: ip("10.0.9.0"),
                    prefix_len: 24,
                    ports: (1000, 2000),
                    mark: 7,
                })
                .expect("mark rule");
        }
        let mut wanted = Wanted::default();
        wanted.update(&engine.spec_walk());
        let rules: BTreeSet<BypassRule> = wanted.rules().into_iter().collect();
        let marked_rule = |proto| BypassRule::MarkedService {
            proto,
            net: ip("10.0.9.0"),
            prefix_len: 24,
            first_port: 1000,
            last_port: 2000,
        };
        let marked_port = engine
            .spec_walk()
            .services()
            .find(|s| s.spec().key == marked)
            .and_then(|s| s.dests().next())
            .map_or(0, |d| d.port());
        let expected: BTreeSet<BypassRule> = [
            BypassRule::Service {
                proto: L4Proto::Tcp,
                vip: ip("10.0.0.1"),
                port: 80,
            },
            BypassRule::RealServerReply {
                proto: L4Proto::Tcp,
                rip: ip("10.1.0.2"),
                port: 8080,
            },
            BypassRule::Service {
                proto: L4Proto::Udp,
                vip: ip("fd00::1"),
                port: 53,
            },
            BypassRule::FullNatReply {
                proto: L4Proto::Udp,
                rip: ip("fd01::2"),
                port: 53,
                laddr: ip("fd00::a"),
            },
            BypassRule::FullNatReply {
                proto: L4Proto::Udp,
                rip: ip("fd01::2"),
                port: 53,
                laddr: ip("fd00::b"),
            },
            marked_rule(L4Proto::Tcp),
            marked_rule(L4Proto::Udp),
            BypassRule::RealServerReply {
                proto: L4Proto::Tcp,
                rip: ip("10.1.0.4"),
                port: marked_port,
            },
            BypassRule::RealServerReply {
                proto: L4Proto::Udp,
                rip: ip("10.1.0.4"),
                port: marked_port,
            },
            BypassRule::RealServerFragments {
                proto: L4Proto::Tcp,
                rip: ip("10.1.0.2"),
            },
            BypassRule::RealServerFragments {
                proto: L4Proto::Tcp,
                rip: ip("10.1.0.4"),
            },
            BypassRule::RealServerFragments {
                proto: L4Proto::Udp,
                rip: ip("10.1.0.4"),
            },
        ]
        .into_iter()
        .collect();
        assert_eq!(rules, expected);
    }

    /// A deterministic pseudo-random sequence (no extra dependency).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    #[test]
    fn incremental_model_equals_a_recomputation_after_every_change() {
        let engine = Engine::new(EngineConfig::default());
        let mut wanted = Wanted::default();
        // The "kernel": what the diffs, applied in order, make of an empty set.
        let mut applied: BTreeSet<BypassRule> = BTreeSet::new();
        let mut rng = Lcg(42);
        let methods = [
            ForwardMethod::Masq,
            ForwardMethod::Route,
            ForwardMethod::FullNat,
        ];
        let mut largest = 0;
        for step in 0..1500 {
            let v = rng.below(6);
            let key = if rng.below(8) == 0 {
                ServiceKey::fwmark(1 + rng.below(2) as u32, false)
            } else {
                let proto = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][rng.below(3) as usize];
                ServiceKey::new(proto, ip(&format!("10.0.0.{v}")), 80)
            };
            // Real servers shared between services, so counts above one happen.
            let rip = format!("10.1.0.{}", rng.below(4));
            let method = methods[rng.below(3) as usize];
            // Outcomes are irrelevant (many fail: no such service, already there...).
            let _ = match rng.below(7) {
                0 | 1 => engine.add_service(service(key, &["10.9.0.1", "10.9.0.2"])),
                2 => engine.del_service(&key),
                3 | 4 => engine.add_dest(&key, dest(&rip, 8080, method)),
                5 => engine.edit_dest(&key, dest(&rip, 8080, method)),
                _ => {
                    let rule = MarkRule {
                        proto: Protocol::Tcp,
                        addr: ip("10.0.5.0"),
                        prefix_len: 24,
                        ports: (10, 20 + rng.below(2) as u16),
                        mark: 1 + rng.below(2) as u32,
                    };
                    if rng.below(2) == 0 {
                        engine.add_mark_rule(rule)
                    } else {
                        engine.del_mark_rule(&rule)
                    }
                }
            };
            if step % 97 == 0 {
                engine.clear();
            }
            for rule in wanted.update(&engine.spec_walk()) {
                if wanted.contains(&rule) {
                    applied.insert(rule);
                } else {
                    applied.remove(&rule);
                }
            }
            let expected = from_scratch(&engine);
            largest = largest.max(expected.len());
            assert_eq!(applied, expected, "step {step}");
            assert_eq!(
                wanted.rules().into_iter().collect::<BTreeSet<_>>(),
                expected
            );
        }
        assert!(
            largest >= 10,
            "sizeable configurations were built: {largest}"
        );
    }

    #[test]
    fn names_are_stable_and_valid() {
        let a = table_name(Path::new("/run/rvs/rvsd.sock"));
        assert_eq!(a, table_name(Path::new("/run/rvs/rvsd.sock")));
        assert_ne!(a, table_name(Path::new("/run/rvs/other.sock")));
        assert!(a.starts_with("rvsd_") && a.len() == 13);
        assert_eq!(tun_name(Path::new("/x")).len(), 11);
    }

    /// A network namespace with a veth pair, deleted on drop (also when the test fails).
    struct Netns(String);

    impl Netns {
        fn new(tag: &str) -> Netns {
            let name = format!("rvsd-{tag}-{}", std::process::id());
            let ns = Netns(name.clone());
            sh(&["ip", "netns", "add", &name]);
            sh(&[
                "ip", "-n", &name, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
            ]);
            sh(&["ip", "-n", &name, "link", "set", "v0", "up"]);
            ns
        }

        /// Runs `f` on a thread inside the namespace.
        fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
            let name = self.0.clone();
            std::thread::spawn(move || {
                rvs_io::netns::enter_thread(&name).expect("enter the namespace");
                f()
            })
            .join()
            .expect("test thread in the namespace panicked")
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .output();
        }
    }

    fn sh(args: &[&str]) -> String {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("run a command");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn sync_and_reattach_in_a_namespace() {
        let ns = Netns::new("bypass");
        let name = ns.0.clone();
        ns.run(move || {
            let socket = Path::new("/run/rvs/bypass-unit-test.sock");
            let table = table_name(socket);
            let engine = Engine::new(EngineConfig::default());
            let bypass = Bypass::install(socket, &["v0".to_owned()], &engine).expect("install");
            let web = ServiceKey::new(Protocol::Tcp, ip("10.0.0.1"), 80);
            engine.add_service(service(web, &[])).expect("add");
            engine
                .add_dest(&web, dest("10.1.0.2", 80, ForwardMethod::Masq))
                .expect("add dest");
            bypass.sync(&engine);
            let in_kernel = || KernelBypass::rules_in(&table).expect("read the rules back");
            assert_eq!(in_kernel(), from_scratch(&engine));
            let chain = "in0_v0".to_owned();
            let listed = || {
                sh(&[
                    "ip", "netns", "exec", &name, "nft", "list", "chains", "netdev",
                ])
            };

            // Nothing missing: nothing done.
            assert!(bypass.reattach().expect("reattach").is_empty());
            // An old kernel drops the chain with its interface; reattach brings it back.
            sh(&["nft", "delete", "chain", "netdev", &table, &chain]);
            assert!(!listed().contains(&chain));
            assert_eq!(bypass.reattach().expect("reattach"), ["v0"]);
            let chain_text = sh(&["nft", "list", "chain", "netdev", &table, &chain]);
            assert!(chain_text.contains("device \"v0\""), "{chain_text}");
            assert_eq!(
                chain_text.matches("counter packets").count(),
                15,
                "{chain_text}"
            );
            assert!(chain_text.contains("jump marked"), "{chain_text}");
            assert!(bypass.reattach().expect("idempotent").is_empty());

            // The interface deleted and created again.
            sh(&["ip", "link", "del", "v0"]);
            assert!(bypass.reattach().expect("interface absent").is_empty());
            sh(&[
                "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1",
            ]);
            bypass.reattach().expect("reattach");
            assert_eq!(listed().matches(&format!("chain {chain} {{")).count(), 1);

            // The whole table flushed away: rebuilt with every rule.
            sh(&["nft", "delete", "table", "netdev", &table]);
            assert_eq!(bypass.reattach().expect("rebuild"), ["v0"]);
            assert_eq!(in_kernel(), from_scratch(&engine));

            // Someone deletes an element behind rvsd's back: the next diff fails and the
            // re-sync repairs everything.
            sh(&[
                "nft",
                "delete",
                "element",
                "netdev",
                &table,
                "svc4",
                "{ 10.0.0.1 . tcp . 80 }",
            ]);
            engine.del_service(&web).expect("del");
            bypass.sync(&engine);
            assert!(in_kernel().is_empty());
            engine.add_service(service(web, &[])).expect("add");
            bypass.sync(&engine);
            assert_eq!(in_kernel(), from_scratch(&engine));

            // A handover leaves the table; the successor's install replaces it with one that
            // holds its rules from the first moment (no sync needed).
            bypass.leave();
            assert!(listed().contains(&table));
            let successor =
                Bypass::install(socket, &["v0".to_owned()], &engine).expect("install again");
            assert_eq!(in_kernel(), from_scratch(&engine));

            successor.remove();
            assert!(!listed().contains(&table));
        });
    }
}
