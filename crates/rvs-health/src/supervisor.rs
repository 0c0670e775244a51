//! Runs many checkers on one tokio runtime with bounded concurrency.
//!
//! Each checker is a task (not a thread) that sleeps until its next due time, takes a
//! permit from a shared semaphore (at most `max_concurrent` checks run at once), runs
//! the check, feeds [`RiseFall`] and sends the resulting events over a channel. A
//! status snapshot of every checker is kept for a status view.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use tokio::runtime::Handle;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::checkers::check;
use crate::result::CheckResult;
use crate::risefall::{HealthEvent, RiseFall, Schedule};
use crate::spec::CheckSpec;

/// Identifies one checker (the caller maps it to its real server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckId(pub u64);

/// A checker to supervise.
#[derive(Debug, Clone)]
pub struct CheckJob {
    /// Its id, echoed in events and status.
    pub id: CheckId,
    /// What to check.
    pub spec: CheckSpec,
    /// When and how often.
    pub schedule: Schedule,
}

/// An event of one checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorEvent {
    /// Which checker.
    pub id: CheckId,
    /// What changed.
    pub event: HealthEvent,
    /// The detail of the check result that caused it.
    pub detail: String,
}

/// Status of one checker for a status view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStatus {
    /// Which checker.
    pub id: CheckId,
    /// Whether it counts as up.
    pub up: bool,
    /// The last result, if it ran yet.
    pub last_result: Option<CheckResult>,
    /// Wall-clock time the last result arrived.
    pub last_time: Option<SystemTime>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Runs so far.
    pub runs: u64,
    /// The last weight the checker asked for.
    pub weight: Option<u32>,
}

struct Shared {
    status: Mutex<Vec<CheckStatus>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Shared {
    fn update(&self, index: usize, f: impl FnOnce(&mut CheckStatus)) {
        let mut all = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = all.get_mut(index) {
            f(s);
        }
    }
}

/// Supervises a set of checkers; dropping it (or [`Supervisor::stop`]) stops them.
pub struct Supervisor {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("checkers", &self.tasks.len())
            .finish()
    }
}

/// A random fraction in `[0, 1)` for the warmup of checker `id`.
fn warmup_fraction(id: CheckId) -> f64 {
    let h = RandomState::new().hash_one(id.0);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl Supervisor {
    /// Start supervising `jobs` on `handle`, running at most `max_concurrent` checks at
    /// a time (at least 1). Returns at once; events arrive on the receiver.
    pub fn start(
        handle: &Handle,
        max_concurrent: usize,
        jobs: Vec<CheckJob>,
    ) -> (Supervisor, mpsc::UnboundedReceiver<SupervisorEvent>) {
        let semaphore = Arc::new(Semaphore::new(max_concurrent.max(1)));
        Self::start_shared(handle, semaphore, jobs)
    }

    /// Like [`Supervisor::start`], with the concurrency bound shared with other supervisors:
    /// every check of every supervisor holding a clone of `semaphore` takes one permit.
    /// This lets a caller restart the checkers of one real server without touching others.
    pub fn start_shared(
        handle: &Handle,
        semaphore: Arc<Semaphore>,
        jobs: Vec<CheckJob>,
    ) -> (Supervisor, mpsc::UnboundedReceiver<SupervisorEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        let shared = Arc::new(Shared {
            status: Mutex::new(
                jobs.iter()
                    .map(|j| CheckStatus {
                        id: j.id,
                        up: !j.schedule.alpha,
                        last_result: None,
                        last_time: None,
                        consecutive_failures: 0,
                        runs: 0,
                        weight: None,
                    })
                    .collect(),
            ),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let tasks = jobs
            .into_iter()
            .enumerate()
            .map(|(index, job)| {
                let rf = RiseFall::new(job.schedule, start, warmup_fraction(job.id));
                handle.spawn(run_checker(
                    index,
                    job,
                    rf,
                    semaphore.clone(),
                    shared.clone(),
                    tx.clone(),
                ))
            })
            .collect();
        (Supervisor { shared, tasks }, rx)
    }

    /// A snapshot of every checker's status, in the order the jobs were given.
    pub fn status(&self) -> Vec<CheckStatus> {
        self.shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The most checks that ran at the same time so far.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::Relaxed)
    }

    /// Stop every checker (running MISC_CHECK programs are killed).
    pub fn stop(mut self) {
        self.abort_all();
    }

    fn abort_all(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.abort_all();
    }
}

async fn run_checker(
    index: usize,
    job: CheckJob,
    mut rf: RiseFall,
    semaphore: Arc<Semaphore>,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<SupervisorEvent>,
) {
    loop {
        tokio::time::sleep_until(tokio::time::Instant::from_std(rf.next_due())).await;
        let Ok(permit) = semaphore.acquire().await else {
            return;
        };
        let now_running = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared
            .max_in_flight
            .fetch_max(now_running, Ordering::SeqCst);
        let result = check(&job.spec).await;
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        drop(permit);
        let events = rf.on_result(Instant::now(), result.ok, result.weight);
        let (up, failures, weight) = (rf.is_up(), rf.consecutive_failures(), rf.weight());
        let detail = result.detail.clone();
        shared.update(index, |s| {
            s.up = up;
            s.consecutive_failures = failures;
            s.weight = weight;
            s.runs += 1;
            s.last_time = Some(SystemTime::now());
            s.last_result = Some(result);
        });
        for event in events {
            // A dropped receiver just means nobody listens any more.
            let _ = tx.send(SupervisorEvent {
                id: job.id,
                event,
                detail: detail.clone(),
            });
        }
    }
}
