//! The SYN proxy's connections taken over from the engine (see rvs-engine's `handoff`): once a
//! proxied NAT connection's real server has answered, the program forwards it, shifting its
//! numbers, at the program's speed instead of through the engine.
//!
//! Each round of the plane's loop installs the connections the engine has ready. The engine
//! forgets them [`RELEASE_AFTER`] later (several rounds), after the frames punted before the
//! install went through it with the connection still there; a state the engine moved the
//! connection to meanwhile (a RST, a FIN) is given to the program then. A connection the
//! program cannot take (its table full, a service it no longer has) stays the engine's.

use std::time::{Duration, Instant};

use rvs_bpf::maps::DestConns;
use rvs_bpf::{Datapath, Installed, Publisher};
use rvs_engine::Engine;
use rvs_sync::SyncConn;

/// How long the engine keeps a connection the program took: frames a program instance on
/// another CPU had looked up before the install may still be on their way to the engine.
const RELEASE_AFTER: Duration = Duration::from_millis(20);

/// Per-server counts from the program at or above this are taken as 0: a count moved below
/// zero by a race of two CPUs (the program's state moves are not atomic as a pair) wraps.
const WRAPPED: u32 = 1 << 31;

/// What the plane has installed and the engine still holds.
pub(super) struct Handoff {
    /// Each with when it was installed.
    installed: Vec<(SyncConn, Instant)>,
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

    /// One round: the engine forgets what was installed [`RELEASE_AFTER`] ago or more (the
    /// program taking the state it last had), and what it has ready now is installed.
    pub(super) fn run(&mut self, dp: &Datapath, engine: &Engine) {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.installed)
            .into_iter()
            .partition(|(_, at)| now.duration_since(*at) >= RELEASE_AFTER);
        self.installed = waiting;
        for (rec, _) in due {
            let Some(last) = engine.release_handed_over(&rec) else {
                continue;
            };
            if last.state != rec.state {
                if let Err(e) = dp.sync_import(&last) {
                    tracing::warn!("updating a proxied connection in BPF: {e}");
                }
            }
        }
        for rec in engine.proxied_ready() {
            match dp.sync_import(&rec) {
                Ok(Some(Installed::Added | Installed::Refreshed)) => {
                    self.taken += 1;
                    self.installed.push((rec, now));
                }
                Ok(Some(Installed::TableFull)) => {
                    tracing::debug!("BPF connection table full: a proxied connection stays in rvsd")
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("handing a proxied connection to BPF: {e}"),
            }
        }
    }

    /// The plane stops: what the program took is the program's (its pinned maps outlive a
    /// handover to the next rvsd), and the engine keeps its other proxied connections.
    pub(super) fn stop(self, engine: &Engine) {
        for (rec, _) in &self.installed {
            engine.release_handed_over(rec);
        }
        engine.set_proxy_handoff(false);
        tracing::debug!(taken = self.taken, "proxied connections handed to BPF");
    }
}

/// Tells `engine` how many connections the program holds per real server (`counts` by dest
/// slot), so that its schedulers count the connections handed over.
pub(super) fn report_counts(engine: &Engine, publisher: &Publisher, counts: &[DestConns]) {
    for (slot, service, server) in publisher.servers() {
        if let Some(c) = counts.get(slot as usize) {
            let sane = |n: u32| if n >= WRAPPED { 0 } else { n };
            engine.set_handed_over_counts(service, server, sane(c.active), sane(c.inactive));
        }
    }
}
