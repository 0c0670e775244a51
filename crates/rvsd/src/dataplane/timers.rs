//! The engine's periodic work: connection expiry and IPVS's defence every second and the rate
//! estimator every two seconds (as IPVS's estimator), on a thread of its own so none stalls the
//! control socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_engine::{DefenseStatus, Engine};

use super::bypass::Bypass;
use super::defense::{self, TableRoom};
use crate::clock::Clock;

const EXPIRE_EVERY_MS: u64 = 1000;
const ESTIMATE_EVERY_MS: u64 = 2000;
const TICK: Duration = Duration::from_millis(100);

/// Starts the timer thread; it exits when `stop` is set. `bpf_room` is the BPF plane's table
/// room, for the defence; `bypass` is brought up to date when an expiry lets a deleted
/// service go for good (its last connection gone).
pub fn start(
    engine: Arc<Engine>,
    clock: Clock,
    bpf_room: Arc<TableRoom>,
    bypass: Bypass,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rvs-timers".into())
        .spawn(move || {
            let mut next_expire = clock.now().0 + EXPIRE_EVERY_MS;
            let mut next_estimate = clock.now().0 + ESTIMATE_EVERY_MS;
            let mut defending = DefenseStatus::default();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                let now = clock.now();
                if now.0 >= next_expire {
                    if engine.expire(now) {
                        bypass.sync(&engine);
                    }
                    let available = defense::available_pages(
                        defense::host_pages_now(),
                        engine.table_room(),
                        bpf_room.get(),
                    );
                    let status = engine.update_defense(now, available);
                    log_change(&defending, &status, available);
                    defending = status;
                    next_expire = now.0 + EXPIRE_EVERY_MS;
                }
                if now.0 >= next_estimate {
                    engine.estimate_rates(now);
                    next_estimate += ESTIMATE_EVERY_MS;
                }
            }
        })
}

/// Logs the defence turning on or off.
fn log_change(before: &DefenseStatus, now: &DefenseStatus, available: u64) {
    let on = |s: &DefenseStatus| (s.dropping_entries, s.drop_rate, s.secure_tcp);
    if on(before) == on(now) {
        return;
    }
    if on(now) == (false, 0, false) {
        tracing::info!(available_pages = available, "IPVS defence off");
    } else {
        tracing::warn!(
            available_pages = available,
            drop_entry = now.dropping_entries,
            drop_rate = now.drop_rate,
            secure_tcp = now.secure_tcp,
            "IPVS defence on (memory short, or a switch set to 3)"
        );
    }
}
