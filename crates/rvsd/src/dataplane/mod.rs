//! The forwarding side of rvsd: the worker threads that run packets through the engine, the
//! engine's timer thread, and the kernel-bypass rules that keep the kernel off the traffic rvsd
//! forwards.

pub mod bpf;
pub mod bypass;
pub mod counters;
pub mod defense;
mod mtu;
pub mod timers;
mod worker;

pub use counters::EgressCounters;
pub use worker::{DataPlane, Injector};

/// Attempts [`reattach_in_background`] makes before giving up (one second apart).
const REATTACH_ATTEMPTS: u32 = 5;

/// Re-attaches the kernel-bypass rules after `interface` came back, off the calling (data
/// plane) thread.
pub fn reattach_in_background(bypass: bypass::Bypass, interface: &str) {
    let interface = interface.to_owned();
    let spawned = std::thread::Builder::new()
        .name("rvsd-reattach".into())
        .spawn(move || {
            for attempt in 1..=REATTACH_ATTEMPTS {
                match bypass.reattach() {
                    Ok(_) => return,
                    Err(e) => tracing::warn!(
                        interface,
                        attempt,
                        "re-attaching the kernel-bypass rules failed: {e}"
                    ),
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            tracing::error!(
                interface,
                "kernel-bypass rules not re-attached: the kernel may answer forwarded traffic \
                 on it until rvsd restarts"
            );
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the thread re-attaching the kernel-bypass rules: {e}");
    }
}
