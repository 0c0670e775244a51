//! Bounds a data plane sets on the configuration it can hold: rvsd's BPF program has maps of
//! a fixed size for services and real servers. A command that would pass them is refused, as
//! IPVS refuses one it has no memory for, and the running configuration stays as it was;
//! without the check the command would succeed and the data plane would fail to take it.

use std::sync::Arc;

use crate::config::ServiceRt;
use crate::error::EngineError;
use crate::spec::{SchedulerKind, ServiceKey};

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
        key.is_tcp_udp_address()
    }

    /// Whether a service of `scheduler` needs a table: wrr's sequence, the lookup table of sh,
    /// dh and mh.
    pub fn has_table(scheduler: SchedulerKind) -> bool {
        matches!(
            scheduler,
            SchedulerKind::Wrr | SchedulerKind::Sh | SchedulerKind::Dh | SchedulerKind::Mh
        )
    }

    /// Refuses a service `key` of `scheduler` added to a configuration holding `held`.
    pub(crate) fn check_service(
        &self,
        held: &Counts,
        key: &ServiceKey,
        scheduler: SchedulerKind,
    ) -> Result<(), EngineError> {
        self.refuse_past(
            key,
            held.services,
            self.services,
            "services",
            &self.services_option,
        )?;
        self.check_table(held, key, scheduler)
    }

    /// Refuses service `key` taking `scheduler` (added, or edited from a scheduler without a
    /// table) in a configuration holding `held`.
    pub(crate) fn check_table(
        &self,
        held: &Counts,
        key: &ServiceKey,
        scheduler: SchedulerKind,
    ) -> Result<(), EngineError> {
        if !Self::has_table(scheduler) {
            return Ok(());
        }
        self.refuse_past(
            key,
            held.tables,
            self.tables,
            "wrr, sh, dh and mh services",
            &self.tables_option,
        )
    }

    /// Refuses a real server added to service `key` in a configuration holding `held`.
    pub(crate) fn check_dest(&self, held: &Counts, key: &ServiceKey) -> Result<(), EngineError> {
        self.refuse_past(
            key,
            held.dests,
            self.dests,
            "real servers",
            &self.dests_option,
        )
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

/// What a configuration holds of what the bounds count. A batch keeps it up to date as it
/// adds (counting every service for every addition would make a large restore quadratic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    services: usize,
    dests: usize,
    tables: usize,
}

impl Counts {
    /// The counts of `services`.
    pub(crate) fn of(services: &[Arc<ServiceRt>]) -> Counts {
        let mut c = Counts::default();
        for s in services
            .iter()
            .filter(|s| ConfigBounds::counts(&s.spec.key))
        {
            c.services += 1;
            c.dests += s.dests.len();
            c.tables += usize::from(ConfigBounds::has_table(s.spec.scheduler));
        }
        c
    }

    /// Service `key` of `scheduler` added.
    pub(crate) fn add_service(&mut self, key: &ServiceKey, scheduler: SchedulerKind) {
        if ConfigBounds::counts(key) {
            self.services += 1;
            self.tables += usize::from(ConfigBounds::has_table(scheduler));
        }
    }

    /// A real server added to service `key`.
    pub(crate) fn add_dest(&mut self, key: &ServiceKey) {
        if ConfigBounds::counts(key) {
            self.dests += 1;
        }
    }
}
