//! Ageing of the BPF program's lblc/lblcr tables, as IPVS ages its own (and rvs-engine its):
//! a check per service every minute by [`rvs_engine::locality_check`]'s rule (entries unused
//! for a day go every 30th check; over-full tables shed entries unused for six minutes), and
//! the entries of services that are gone, or no longer lblc/lblcr, go at once.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rvs_bpf::maps::LocKey;
use rvs_bpf::Datapath;
use rvs_engine::spec_walk::SpecWalk;
use rvs_engine::SchedulerKind;

/// How often the tables are checked (IPVS's CHECK_EXPIRE_INTERVAL).
const CHECK_EVERY: Duration = Duration::from_millis(rvs_engine::LOCALITY_CHECK_INTERVAL_MS);

/// The ageing state: when the next check runs and each table's check counter.
#[derive(Debug)]
pub struct LocalityAging {
    next: Instant,
    counters: HashMap<u32, u32>,
}

/// The program's ids of the services `walk` schedules by lblc or lblcr.
pub fn locality_services(
    walk: &SpecWalk,
    id_of: impl Fn(&rvs_engine::ServiceKey) -> Option<u32>,
) -> HashSet<u32> {
    walk.services()
        .filter(|s| {
            matches!(
                s.spec().scheduler,
                SchedulerKind::Lblc | SchedulerKind::Lblcr
            )
        })
        .filter_map(|s| id_of(&s.spec().key))
        .collect()
}

impl LocalityAging {
    /// Ageing whose first check is a minute from `now`.
    pub fn new(now: Instant) -> LocalityAging {
        LocalityAging {
            next: now + CHECK_EVERY,
            counters: HashMap::new(),
        }
    }

    /// Runs the check if it is due at `now`: `live` are the services that keep tables.
    pub fn run(&mut self, dp: &Datapath, live: &HashSet<u32>, now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + CHECK_EVERY;
        let entries = match dp.locality_entries() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("reading the lblc/lblcr tables: {e}");
                return;
            }
        };
        let now_ms = super::listing::monotonic_ns() / 1_000_000;
        let mut tables: HashMap<u32, Vec<(LocKey, u64)>> = HashMap::new();
        for (key, entry) in entries {
            tables
                .entry(key.svc)
                .or_default()
                .push((key, entry.lastuse_ns / 1_000_000));
        }
        self.counters.retain(|svc, _| live.contains(svc));
        for (svc, rows) in tables {
            let gone: Vec<bool> = if live.contains(&svc) {
                let counter = self.counters.entry(svc).or_insert(1);
                let lastuses: Vec<u64> = rows.iter().map(|(_, l)| *l).collect();
                rvs_engine::locality_check(
                    counter,
                    &lastuses,
                    now_ms,
                    rvs_engine::LOCALITY_EXPIRATION_MS,
                )
            } else {
                vec![true; rows.len()]
            };
            for ((key, _), drop) in rows.iter().zip(gone) {
                if drop {
                    if let Err(e) = dp.forget_locality(key) {
                        tracing::warn!("ageing the lblc/lblcr tables: {e}");
                        return;
                    }
                }
            }
        }
    }
}
