//! The SYN proxy's connections taken over from the engine (see rvs-engine's `handoff`): once a
//! proxied NAT connection's real server has answered, the program forwards it, shifting its
//! numbers, at the program's speed instead of through the engine.
//!
//! Each round of the plane's loop installs the connections the engine has ready. The engine
//! forgets them one round later, after the frames punted before the install (already in the
//! ring) went through it with the connection still there. A connection the program cannot take
//! (its table full, a service it no longer has) stays the engine's.

use rvs_bpf::maps::DestConns;
use rvs_bpf::{Datapath, Installed, Publisher};
use rvs_engine::Engine;
use rvs_sync::SyncConn;

/// What the plane has installed and the engine still holds.
pub(super) struct Handoff {
    installed: Vec<SyncConn>,
    taken: u64,
}

impl Handoff {
    /// Asks `engine` to queue its proxied connections for the plane.
    pub(super) fn start(engine: &Engine) -> Handoff {
        engine.set_proxy_handoff(true);
        Handoff {
            installed: Vec::new(),
            taken: 0,
        }
    }

    /// Whether connections wait to be released by the engine (the loop should come back soon).
    pub(super) fn releasing(&self) -> bool {
        !self.installed.is_empty()
    }

    /// One round: the engine forgets what was installed last round, and what it has ready now
    /// is installed.
    pub(super) fn run(&mut self, dp: &Datapath, engine: &Engine) {
        for rec in self.installed.drain(..) {
            engine.release_handed_over(&rec);
        }
        for rec in engine.proxied_ready() {
            match dp.take_over_proxied(&rec) {
                Ok(Some(Installed::Added | Installed::Refreshed)) => {
                    self.taken += 1;
                    self.installed.push(rec);
                }
                Ok(Some(Installed::TableFull)) => {
                    tracing::debug!("BPF connection table full: a proxied connection stays in rvsd")
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("handing a proxied connection to BPF: {e}"),
            }
        }
    }

    /// The plane stops: the engine keeps its proxied connections from now on.
    pub(super) fn stop(self, engine: &Engine) {
        engine.set_proxy_handoff(false);
        tracing::debug!(taken = self.taken, "proxied connections handed to BPF");
    }
}

/// Tells `engine` how many connections the program holds per real server (`counts` by dest
/// slot), so that its schedulers count the connections handed over.
pub(super) fn report_counts(engine: &Engine, publisher: &Publisher, counts: &[DestConns]) {
    for (slot, service, server) in publisher.servers() {
        if let Some(c) = counts.get(slot as usize) {
            engine.set_handed_over_counts(service, server, c.active, c.inactive);
        }
    }
}
