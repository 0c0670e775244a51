//! A cheap read of the configuration: the service and real-server specs of one snapshot, without
//! the counters, rates and connection counts that [`Engine::services`] gathers. For callers that
//! follow the configuration after every change (rvsd's kernel-bypass rules) at tens of thousands
//! of services.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{DestRt, ServiceRt, Snapshot};
use crate::engine::Engine;
use crate::spec::{DestSpec, ForwardMethod, MarkRule, ServiceSpec};

pub use crate::sched::WrrSequence;
pub use crate::sched_hash::HashTable;

/// One published configuration version, held: what [`Engine::spec_walk`] returns. Later changes
/// publish new versions and leave this one as it is.
#[derive(Debug, Clone)]
pub struct SpecWalk {
    snap: Arc<Snapshot>,
}

/// A service of a [`SpecWalk`].
#[derive(Debug, Clone, Copy)]
pub struct ServiceRef<'a> {
    rt: &'a ServiceRt,
}

/// A real server of a [`ServiceRef`].
#[derive(Debug, Clone, Copy)]
pub struct DestRef<'a> {
    rt: &'a DestRt,
}

impl Engine {
    /// The current configuration, for reading specs only: no lock is taken and nothing is
    /// copied or summed (compare [`Engine::services`]).
    pub fn spec_walk(&self) -> SpecWalk {
        SpecWalk {
            snap: self.snapshot.load_full(),
        }
    }
}

impl SpecWalk {
    /// The services, in creation order.
    pub fn services(&self) -> impl ExactSizeIterator<Item = ServiceRef<'_>> + '_ {
        self.snap.services.iter().map(|s| ServiceRef { rt: s })
    }

    /// The services deleted while connections still hold their real servers (IPVS keeps those
    /// connections until they time out): their clients' packets and their real servers' replies
    /// are still the data plane's.
    pub fn retired_services(&self) -> impl ExactSizeIterator<Item = ServiceRef<'_>> + '_ {
        self.snap.retired.iter().map(|s| ServiceRef { rt: s })
    }

    /// The classifier of the retired services' traffic: the live mark rules, then those the
    /// retired firewall-mark services had when they went (`-C` clears the live ones).
    pub fn retired_mark_rules(&self) -> &[MarkRule] {
        &self.snap.retired_marks
    }

    /// The firewall-mark classifier of this version, in evaluation order.
    pub fn mark_rules(&self) -> &[MarkRule] {
        &self.snap.mark_rules
    }

    /// Whether `other` is the same configuration version.
    pub fn same_version(&self, other: &SpecWalk) -> bool {
        Arc::ptr_eq(&self.snap, &other.snap)
    }
}

impl<'a> ServiceRef<'a> {
    /// The service's spec.
    pub fn spec(&self) -> &'a ServiceSpec {
        &self.rt.spec
    }

    /// Its real servers, in the order they were added.
    pub fn dests(&self) -> impl ExactSizeIterator<Item = DestRef<'a>> + 'a {
        self.rt.dests.iter().map(|d| DestRef { rt: d })
    }

    /// The scheduler's cursor word as it stands (rr's and wrr's marks; see
    /// [`WrrSequence`] and [`DestRef::id`] for what it refers to), for a data plane that runs
    /// the same scheduler (rvs-bpf). Layout: bits 33 and up hold rr's next start position or
    /// wrr's current weight; bit 32 is set when the low 32 bits hold rr's last pick (a
    /// destination id) or wrr's step index.
    pub fn sched_cursor(&self) -> u64 {
        self.rt.sched.cursor_word()
    }

    /// `old`, a cursor word of this service's scheduler over its previous destination list
    /// (as another data plane left it), carried over to this list as IPVS's hooks do.
    pub fn carry_sched_cursor(&self, old: u64) -> u64 {
        self.rt.sched.carry_cursor(old, &self.rt.dests)
    }

    /// The sh, dh or mh lookup table for this destination list (positions in [`Self::dests`]),
    /// when the service uses one of them.
    pub fn hash_table(&self) -> Option<HashTable> {
        self.rt.sched.hash_table()
    }

    /// wrr's pick sequence for this destination list, when the service is wrr and the
    /// sequence is short enough to build.
    pub fn wrr_sequence(&self) -> Option<WrrSequence> {
        self.rt.sched.wrr_sequence()
    }
}

impl DestRef<'_> {
    /// The real server's id, stable across configuration versions (what rr's cursor names).
    pub fn id(&self) -> u32 {
        self.rt.id
    }

    /// Real server address.
    pub fn addr(&self) -> IpAddr {
        self.rt.addr
    }

    /// Real server port.
    pub fn port(&self) -> u16 {
        self.rt.port
    }

    /// The forwarding method new connections get.
    pub fn method(&self) -> ForwardMethod {
        self.rt.method()
    }

    /// The full spec (weight, thresholds, tunnel parameters as they are now).
    pub fn spec(&self) -> DestSpec {
        self.rt.spec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EngineConfig, Protocol, SchedulerKind, ServiceKey};

    fn spec(port: u16) -> ServiceSpec {
        let key = ServiceKey::new(Protocol::Tcp, "10.0.0.1".parse().unwrap(), port);
        ServiceSpec::new(key, SchedulerKind::Rr)
    }

    #[test]
    fn walks_the_specs_of_one_version() {
        let engine = Engine::new(EngineConfig::default());
        engine.add_service(spec(80)).unwrap();
        engine
            .add_dest(
                &spec(80).key,
                DestSpec {
                    addr: "10.1.0.2".parse().unwrap(),
                    port: 8080,
                    weight: 1,
                    method: ForwardMethod::Masq,
                    u_threshold: 0,
                    l_threshold: 0,
                    tunnel: Default::default(),
                },
            )
            .unwrap();
        let walk = engine.spec_walk();
        assert!(walk.same_version(&engine.spec_walk()));
        engine.add_service(spec(81)).unwrap();
        // The held version does not change.
        assert_eq!(walk.services().len(), 1);
        assert!(!walk.same_version(&engine.spec_walk()));
        let svc = walk.services().next().unwrap();
        assert_eq!(svc.spec().key.port, 80);
        let dests: Vec<(IpAddr, u16, ForwardMethod)> = svc
            .dests()
            .map(|d| (d.addr(), d.port(), d.method()))
            .collect();
        assert_eq!(
            dests,
            [("10.1.0.2".parse().unwrap(), 8080, ForwardMethod::Masq)]
        );
        assert_eq!(svc.dests().next().unwrap().spec().weight, 1);
        let ports: Vec<u16> = engine
            .spec_walk()
            .services()
            .map(|s| s.spec().key.port)
            .collect();
        assert_eq!(ports, [80, 81]);
        assert!(walk.mark_rules().is_empty());
    }
}
