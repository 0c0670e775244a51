//! When the BPF tables' expiry sweep runs next. A sweep walks every bucket of the connection
//! and template tables, empty or not (about 18 ms per million buckets on the lab machine), so
//! it runs only when an entry may have fallen due: when the earliest expiry the last sweep
//! left comes, or, for an entry created or changed since, the shortest timeout after that
//! sweep began (a packet sets an expiry no sooner than that). Never more often than once a
//! second, so an expired connection leaves its server's counts at most about a second late,
//! as before; at least once a minute.

use std::time::{Duration, Instant};

use rvs_bpf::maps::Settings;
use rvs_engine::spec_walk::SpecWalk;

/// The shortest wait between two sweeps.
const MIN_GAP: Duration = Duration::from_secs(1);
/// The longest wait between two sweeps.
const MAX_GAP: Duration = Duration::from_secs(60);
/// Connection states the program keeps (rvs-engine's numbering: 1..=11, TCP and UDP; 0 is
/// the transient NONE).
const PROGRAM_STATES: std::ops::Range<usize> = 1..12;

/// The plan of the next expiry sweep.
#[derive(Debug)]
pub struct SweepSchedule {
    next: Instant,
    shortest_timeout: Duration,
}

impl SweepSchedule {
    /// A schedule whose first sweep is due a second from `now`.
    pub fn new(now: Instant) -> SweepSchedule {
        SweepSchedule {
            next: now + MIN_GAP,
            shortest_timeout: MIN_GAP,
        }
    }

    /// Takes the shortest timeout an entry can get from a packet under the published
    /// configuration (see [`shortest_timeout`]).
    pub fn set_shortest_timeout(&mut self, timeout: Duration) {
        self.shortest_timeout = timeout;
    }

    /// Whether a sweep is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Plans the next sweep after one that began at `began` and found the earliest entry
    /// left due `next_due` after that (`None`: the tables were empty).
    pub fn swept(&mut self, began: Instant, next_due: Option<Duration>) {
        let wait = next_due
            .unwrap_or(MAX_GAP)
            .min(self.shortest_timeout)
            .clamp(MIN_GAP, MAX_GAP);
        self.next = began + wait;
    }
}

/// The shortest timeout a packet can give a connection or template: the timeouts of the
/// states the program keeps, and the persistence timeouts of the services.
pub fn shortest_timeout(settings: &Settings, walk: &SpecWalk) -> Duration {
    let states = settings.timeout_ms[PROGRAM_STATES]
        .iter()
        .copied()
        .filter(|&ms| ms > 0)
        .map(u64::from);
    let persistence = walk.services().filter_map(|s| {
        s.spec()
            .persistence
            .as_ref()
            .map(|p| u64::from(p.timeout_s) * 1000)
    });
    states
        .chain(persistence)
        .min()
        .map_or(MAX_GAP, Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(shortest: u64, next_due: Option<u64>) -> Duration {
        let t0 = Instant::now();
        let mut s = SweepSchedule::new(t0);
        s.set_shortest_timeout(Duration::from_secs(shortest));
        s.swept(t0, next_due.map(Duration::from_millis));
        s.next - t0
    }

    #[test]
    fn the_next_sweep_comes_when_an_entry_may_be_due() {
        // Established connections due in 900 s: the shortest timeout (CLOSE's 10 s) bounds it.
        assert_eq!(planned(10, Some(900_000)), Duration::from_secs(10));
        // One due in 3.5 s: then.
        assert_eq!(planned(10, Some(3_500)), Duration::from_millis(3_500));
        // Due at once: still a second apart.
        assert_eq!(planned(10, Some(0)), MIN_GAP);
        // Empty tables and long timeouts: once a minute.
        assert_eq!(planned(900, None), MAX_GAP);
    }

    #[test]
    fn due_only_from_the_planned_time() {
        let t0 = Instant::now();
        let mut s = SweepSchedule::new(t0);
        assert!(!s.due(t0));
        assert!(s.due(t0 + MIN_GAP));
        s.set_shortest_timeout(Duration::from_secs(5));
        s.swept(t0, None);
        assert!(!s.due(t0 + Duration::from_secs(4)));
        assert!(s.due(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn the_shortest_timeout_is_the_defaults_close_state() {
        let settings = Settings::from_engine(
            rvs_engine::Timeouts::default(),
            &rvs_engine::Policy::default(),
        );
        let engine = rvs_engine::Engine::new(rvs_engine::EngineConfig::default());
        assert_eq!(
            shortest_timeout(&settings, &engine.spec_walk()),
            Duration::from_secs(10)
        );
    }
}
