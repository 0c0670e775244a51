//! The daemon's monotonic clock: the engine gets time only from here.

use std::time::Instant;

use rvs_engine::Millis;

/// Milliseconds since the daemon started, monotonic; cheap to clone and share between threads.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Current time for the engine.
    pub fn now(&self) -> Millis {
        Millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}
