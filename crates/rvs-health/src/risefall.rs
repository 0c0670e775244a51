//! keepalived's up/down logic for one checker, sans-I/O: time comes in as an argument.
//!
//! - A checker starts up, or down with `alpha`.
//! - The first check runs after a random part of `warmup` (the caller passes the
//!   random fraction), later ones every `delay_loop`.
//! - While up, a failure is retried `retry` times, `delay_before_retry` apart; when the
//!   last retry fails too (retry + 1 consecutive failures) the checker goes down.
//! - While down, checks continue every `delay_loop`; one success brings it up.
//! - A requested weight (MISC_CHECK `misc_dynamic`, FILE_CHECK) that differs from the
//!   last one is reported as a weight change.

use std::time::{Duration, Instant};

/// Scheduling and retry options of one checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// `delay_loop`: interval between checks.
    pub delay_loop: Duration,
    /// `retry` (`nb_get_retry`): retries before a failing checker goes down.
    pub retry: u32,
    /// `delay_before_retry`: interval between retries.
    pub delay_before_retry: Duration,
    /// `warmup`: the first check runs after a random delay up to this.
    pub warmup: Duration,
    /// `alpha`: start down until the first success.
    pub alpha: bool,
}

impl Default for Schedule {
    /// keepalived's defaults: delay_loop 60 s, retry 1, delay_before_retry 1 s, no
    /// warmup, no alpha.
    fn default() -> Self {
        Schedule {
            delay_loop: Duration::from_secs(60),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: Duration::ZERO,
            alpha: false,
        }
    }
}

/// A state change of a checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthEvent {
    /// The checker passes again.
    Up,
    /// The checker failed retry + 1 times in a row.
    Down,
    /// The checker asked for a new weight.
    WeightChanged(u32),
}

/// The per-checker state machine.
#[derive(Debug, Clone)]
pub struct RiseFall {
    schedule: Schedule,
    up: bool,
    retries_used: u32,
    consecutive_failures: u32,
    weight: Option<u32>,
    next_due: Instant,
}

impl RiseFall {
    /// A new checker created at `start`; `warmup_fraction` in `[0, 1)` picks the point
    /// inside `warmup` where the first check runs.
    pub fn new(schedule: Schedule, start: Instant, warmup_fraction: f64) -> Self {
        let f = if warmup_fraction.is_finite() {
            warmup_fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        RiseFall {
            schedule,
            up: !schedule.alpha,
            retries_used: 0,
            consecutive_failures: 0,
            weight: None,
            next_due: start + schedule.warmup.mul_f64(f),
        }
    }

    /// When the next check should run.
    pub fn next_due(&self) -> Instant {
        self.next_due
    }

    /// Whether the checker currently counts as up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Failures in a row so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The last weight the checker asked for, if any.
    pub fn weight(&self) -> Option<u32> {
        self.weight
    }

    /// Feed the result of a check finished at `now`; returns the events it causes and
    /// schedules the next check.
    pub fn on_result(&mut self, now: Instant, ok: bool, weight: Option<u32>) -> Vec<HealthEvent> {
        let mut events = Vec::new();
        if ok {
            self.consecutive_failures = 0;
            self.retries_used = 0;
            if !self.up {
                self.up = true;
                events.push(HealthEvent::Up);
            }
            if let Some(w) = weight {
                if self.weight != Some(w) {
                    self.weight = Some(w);
                    events.push(HealthEvent::WeightChanged(w));
                }
            }
            self.next_due = now + self.schedule.delay_loop;
            return events;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.up && self.retries_used < self.schedule.retry {
            self.retries_used += 1;
            self.next_due = now + self.schedule.delay_before_retry;
            return events;
        }
        if self.up {
            self.up = false;
            events.push(HealthEvent::Down);
        }
        self.retries_used = 0;
        self.next_due = now + self.schedule.delay_loop;
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(retry: u32, alpha: bool) -> Schedule {
        Schedule {
            delay_loop: Duration::from_secs(10),
            retry,
            delay_before_retry: Duration::from_secs(2),
            warmup: Duration::from_secs(4),
            alpha,
        }
    }

    #[test]
    fn warmup_delays_first_check() {
        let t0 = Instant::now();
        let rf = RiseFall::new(sched(1, false), t0, 0.5);
        assert_eq!(rf.next_due(), t0 + Duration::from_secs(2));
        let rf = RiseFall::new(sched(1, false), t0, f64::NAN);
        assert_eq!(rf.next_due(), t0);
    }

    #[test]
    fn goes_down_after_retry_plus_one_failures_and_up_on_one_success() {
        let t0 = Instant::now();
        let mut rf = RiseFall::new(sched(2, false), t0, 0.0);
        assert!(rf.is_up());
        let mut now = t0;
        // First failure: retry 1 of 2 after delay_before_retry.
        assert_eq!(rf.on_result(now, false, None), vec![]);
        assert_eq!(rf.next_due(), now + Duration::from_secs(2));
        now = rf.next_due();
        assert_eq!(rf.on_result(now, false, None), vec![]);
        now = rf.next_due();
        assert_eq!(rf.on_result(now, false, None), vec![HealthEvent::Down]);
        assert_eq!(rf.consecutive_failures(), 3);
        assert_eq!(rf.next_due(), now + Duration::from_secs(10));
        // Down: further failures are quiet and spaced by delay_loop.
        now = rf.next_due();
        assert_eq!(rf.on_result(now, false, None), vec![]);
        assert_eq!(rf.next_due(), now + Duration::from_secs(10));
        now = rf.next_due();
        assert_eq!(rf.on_result(now, true, None), vec![HealthEvent::Up]);
        assert_eq!(rf.consecutive_failures(), 0);
        // A success in between resets the retry budget.
        assert_eq!(rf.on_result(now, false, None), vec![]);
        assert_eq!(rf.on_result(now, true, None), vec![]);
        assert_eq!(rf.on_result(now, false, None), vec![]);
        assert_eq!(rf.on_result(now, false, None), vec![]);
        assert_eq!(rf.on_result(now, false, None), vec![HealthEvent::Down]);
    }

    #[test]
    fn retry_zero_fails_at_once() {
        let t0 = Instant::now();
        let mut rf = RiseFall::new(sched(0, false), t0, 0.0);
        assert_eq!(rf.on_result(t0, false, None), vec![HealthEvent::Down]);
    }

    #[test]
    fn alpha_starts_down() {
        let t0 = Instant::now();
        let mut rf = RiseFall::new(sched(1, true), t0, 0.0);
        assert!(!rf.is_up());
        assert_eq!(rf.on_result(t0, false, None), vec![]);
        assert_eq!(rf.next_due(), t0 + Duration::from_secs(10));
        assert_eq!(rf.on_result(t0, true, None), vec![HealthEvent::Up]);
    }

    #[test]
    fn weight_changes_are_reported_once() {
        let t0 = Instant::now();
        let mut rf = RiseFall::new(sched(0, true), t0, 0.0);
        assert_eq!(
            rf.on_result(t0, true, Some(5)),
            vec![HealthEvent::Up, HealthEvent::WeightChanged(5)]
        );
        assert_eq!(rf.on_result(t0, true, Some(5)), vec![]);
        assert_eq!(rf.on_result(t0, true, None), vec![]);
        assert_eq!(
            rf.on_result(t0, true, Some(7)),
            vec![HealthEvent::WeightChanged(7)]
        );
        assert_eq!(rf.weight(), Some(7));
    }
}
