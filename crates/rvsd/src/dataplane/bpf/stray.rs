//! Packets the program saw coming from services' own addresses and ports (a direct-routing or
//! tunnel real server replying through the director), carried once a second into the
//! engine's per-service counts, which `rvsadm --doctor` reads (`dr-replies-via-director`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rvs_bpf::{Datapath, Publisher};
use rvs_engine::Engine;

/// The program's stray-reply counts, and how much of them the engine has been told.
pub(super) struct StrayReplies {
    next: Instant,
    /// Service id -> the program's count at the last report.
    told: HashMap<u32, u64>,
}

impl StrayReplies {
    const EVERY: Duration = Duration::from_secs(1);

    /// The first report a second from `now`.
    pub(super) fn new(now: Instant) -> StrayReplies {
        StrayReplies {
            next: now + Self::EVERY,
            told: HashMap::new(),
        }
    }

    /// Once a second: adds what each published service's count grew by to the engine's.
    pub(super) fn run(&mut self, dp: &Datapath, publisher: &Publisher, engine: &Engine) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + Self::EVERY;
        for (service, id) in publisher.service_ids() {
            let Ok(count) = dp.service_stray(id) else {
                continue;
            };
            let before = self.told.insert(id, count).unwrap_or(0);
            if count > before {
                engine.add_stray_replies(service, count - before);
            }
        }
    }
}
