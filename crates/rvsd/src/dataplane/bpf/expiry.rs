//! When the BPF tables' expiry sweep runs next. A sweep walks every bucket of the connection
//! and template tables, empty or not (about 18 ms per million buckets on the lab machine), so
//! it runs only when an entry may have fallen due: when the earliest expiry the last sweep
//! left comes, or the earliest one the program has set since that sweep began (its expiry
//! floor, [`rvs_bpf::Datapath::expiry_floor`]). Never more often than once a second, so an
//! expired connection leaves its server's counts at most about a second late, as IPVS's
//! timers do; at least once a minute. A table of long-lived connections (keep-alive traffic
//! refreshing 900-second expiries) is then swept once a minute, not every few seconds.

use std::time::{Duration, Instant};

/// The shortest wait between two sweeps.
const MIN_GAP: Duration = Duration::from_secs(1);
/// The longest wait between two sweeps.
const MAX_GAP: Duration = Duration::from_secs(60);

/// The plan of the next expiry sweep.
#[derive(Debug)]
pub struct SweepSchedule {
    /// When the entries the last sweep left fall due (or MAX_GAP after it).
    next: Instant,
    /// When the last sweep began.
    began: Instant,
}

impl SweepSchedule {
    /// A schedule whose first sweep is due a second from `now`.
    pub fn new(now: Instant) -> SweepSchedule {
        SweepSchedule {
            next: now + MIN_GAP,
            began: now,
        }
    }

    /// Whether a sweep is due at `now`, given the program's expiry floor (`floor`: when the
    /// earliest expiry set since the last sweep began falls due, if one was set).
    pub fn due(&self, now: Instant, floor: Option<Instant>) -> bool {
        let at = match floor {
            Some(f) => self.next.min(f.max(self.began + MIN_GAP)),
            None => self.next,
        };
        now >= at
    }

    /// Plans the next sweep after one that began at `began` and found the earliest entry
    /// left due `next_due` after that (`None`: the tables were empty).
    pub fn swept(&mut self, began: Instant, next_due: Option<Duration>) {
        let wait = next_due.unwrap_or(MAX_GAP).clamp(MIN_GAP, MAX_GAP);
        self.began = began;
        self.next = began + wait;
    }
}

/// The program's expiry floor as an instant. One that cannot be read counts as due now: the
/// sweeps then come as often as [`MIN_GAP`] allows.
pub fn program_floor(dp: &rvs_bpf::Datapath) -> Option<Instant> {
    let now = Instant::now();
    match dp.expiry_floor() {
        Ok(floor) => floor.map(|ns| floor_instant(ns, super::listing::monotonic_ns(), now)),
        Err(e) => {
            tracing::debug!("reading the BPF expiry floor: {e}");
            Some(now)
        }
    }
}

/// The program's expiry floor as an instant: `floor_ns` and `now_ns` are CLOCK_MONOTONIC
/// nanoseconds, `now` the same moment.
pub fn floor_instant(floor_ns: u64, now_ns: u64, now: Instant) -> Instant {
    now + Duration::from_nanos(floor_ns.saturating_sub(now_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(next_due: Option<u64>) -> Duration {
        let t0 = Instant::now();
        let mut s = SweepSchedule::new(t0);
        s.swept(t0, next_due.map(Duration::from_millis));
        s.next - t0
    }

    #[test]
    fn the_next_sweep_comes_when_an_entry_left_is_due() {
        // One due in 3.5 s: then.
        assert_eq!(planned(Some(3_500)), Duration::from_millis(3_500));
        // Due at once: still a second apart.
        assert_eq!(planned(Some(0)), MIN_GAP);
        // Established connections due in 900 s, or empty tables: once a minute.
        assert_eq!(planned(Some(900_000)), MAX_GAP);
        assert_eq!(planned(None), MAX_GAP);
    }

    #[test]
    fn an_expiry_set_since_the_sweep_brings_the_next_one_forward() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut s = SweepSchedule::new(t0);
        assert!(!s.due(t0, None));
        assert!(s.due(t0 + MIN_GAP, None));
        s.swept(t0, Some(secs(900)));
        // Nothing set since: the minute's sweep.
        assert!(!s.due(t0 + secs(59), None));
        assert!(s.due(t0 + MAX_GAP, None));
        // A connection closed at t0 + 2 s, due 10 s later (CLOSE).
        let floor = Some(t0 + secs(12));
        assert!(!s.due(t0 + secs(11), floor));
        assert!(s.due(t0 + secs(12), floor));
        // One due at once: still a second after the last sweep.
        assert!(!s.due(t0 + Duration::from_millis(500), Some(t0)));
        assert!(s.due(t0 + MIN_GAP, Some(t0)));
    }

    #[test]
    fn a_floor_is_read_against_the_programs_clock() {
        let now = Instant::now();
        assert_eq!(
            floor_instant(5_000_000_000, 2_000_000_000, now),
            now + Duration::from_secs(3)
        );
        assert_eq!(floor_instant(1, 2, now), now);
    }
}
