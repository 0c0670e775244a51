//! The engine's periodic work: connection expiry every second and the rate estimator every two
//! seconds (as IPVS's estimator), on a thread of its own so neither stalls the control socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_engine::Engine;

use crate::clock::Clock;

const EXPIRE_EVERY_MS: u64 = 1000;
const ESTIMATE_EVERY_MS: u64 = 2000;
const TICK: Duration = Duration::from_millis(100);

/// Starts the timer thread; it exits when `stop` is set.
pub fn start(
    engine: Arc<Engine>,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rvs-timers".into())
        .spawn(move || {
            let mut next_expire = clock.now().0 + EXPIRE_EVERY_MS;
            let mut next_estimate = clock.now().0 + ESTIMATE_EVERY_MS;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                let now = clock.now();
                if now.0 >= next_expire {
                    engine.expire(now);
                    next_expire = now.0 + EXPIRE_EVERY_MS;
                }
                if now.0 >= next_estimate {
                    engine.estimate_rates(now);
                    next_estimate += ESTIMATE_EVERY_MS;
                }
            }
        })
}
