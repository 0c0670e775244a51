//! Bounds a data plane sets on the configuration it can hold: rvsd's BPF program has maps of
//! a fixed size for services and real servers. A command that would pass them is refused, as
//! IPVS refuses one it has no memory for, and the running configuration stays as it was;
//! without the check the command would succeed and the data plane would fail to take it.

use std::sync::Arc;

use crate::config::ServiceRt;
use crate::error::EngineError;
use crate::spec::{Protocol, SchedulerKind, ServiceKey};

/// How many services and real servers the configuration may hold, and how the operator raises
/// each bound (for the error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigBounds {
    /// Who sets the bounds, e.g. "the BPF data plane".
    pub holder: String,
    /// Services counted by [`ConfigBounds::counts`], at most.
    pub services: usize,
    /// How to raise `services`, e.g. "--bpf-max-services".
    pub services_option: String,
    /// Real servers of those services, over all of them, at most.
    pub dests: usize,
    /// How to raise `dests`.
    pub dests_option: String,
    /// Counted services whose scheduler has a table ([`ConfigBounds::has_table`]), at most.
    pub tables: usize,
    /// How to raise `tables`.
    pub tables_option: String,
}

impl ConfigBounds {
    /// Whether service `key` counts: an address service of TCP or UDP (firewall-mark and SCTP
    /// services are rvsd's own on every data plane).
    pub fn counts(key: &ServiceKey) -> bool {
        key.fwmark == 0 && key.proto != Protocol::Sctp
    }

    /// Whether a service of `scheduler` needs a table: wrr's sequence, the lookup table of sh,
    /// dh and mh.
    pub fn has_table(scheduler: SchedulerKind) -> bool {
        matches!(
            scheduler,
            SchedulerKind::Wrr | SchedulerKind::Sh | SchedulerKind::Dh | SchedulerKind::Mh
        )
    }

    /// Refuses a service `key` of `scheduler` added to `services` when a bound is reached.
    pub(crate) fn check_service(
        &self,
        services: &[Arc<ServiceRt>],
        key: &ServiceKey,
        scheduler: SchedulerKind,
    ) -> Result<(), EngineError> {
        let held = counted(services).count();
        self.refuse_past(key, held, self.services, "services", &self.services_option)?;
        self.check_table(services, key, scheduler)
    }

    /// Refuses service `key` taking `scheduler` (added, or edited from a scheduler without a
    /// table) when the tables' bound is reached.
    pub(crate) fn check_table(
        &self,
        services: &[Arc<ServiceRt>],
        key: &ServiceKey,
        scheduler: SchedulerKind,
    ) -> Result<(), EngineError> {
        if !Self::has_table(scheduler) {
            return Ok(());
        }
        let held = counted(services)
            .filter(|s| Self::has_table(s.spec.scheduler))
            .count();
        self.refuse_past(
            key,
            held,
            self.tables,
            "wrr, sh, dh and mh services",
            &self.tables_option,
        )
    }

    /// Refuses a real server added to service `key` of `services` when the bound is reached.
    pub(crate) fn check_dest(
        &self,
        services: &[Arc<ServiceRt>],
        key: &ServiceKey,
    ) -> Result<(), EngineError> {
        let held = counted(services).map(|s| s.dests.len()).sum();
        self.refuse_past(key, held, self.dests, "real servers", &self.dests_option)
    }

    /// The error for one more of `what` (`held` of at most `bound`) for service `key`.
    fn refuse_past(
        &self,
        key: &ServiceKey,
        held: usize,
        bound: usize,
        what: &str,
        option: &str,
    ) -> Result<(), EngineError> {
        if !Self::counts(key) || held < bound {
            return Ok(());
        }
        Err(EngineError::Capacity(format!(
            "{} has no room for more {what} (at most {bound}): raise {option}",
            self.holder
        )))
    }
}

/// The services of `services` that count against the bounds.
fn counted(services: &[Arc<ServiceRt>]) -> impl Iterator<Item = &Arc<ServiceRt>> {
    services
        .iter()
        .filter(|s| ConfigBounds::counts(&s.spec.key))
}
