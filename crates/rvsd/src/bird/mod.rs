//! ECMP scale-out through BIRD: rvsd announces the VIPs of its services that are up through the
//! BIRD routing daemon running beside it (`--bird-include FILE`, `--bird-socket SOCKET`).
//!
//! rvsd writes FILE, two static protocols of blackhole routes (`rvs_vips4`, `rvs_vips6`, see
//! [`routes`]), and asks BIRD to `configure` over its control socket ([`control`]) whenever the
//! set changes: a service added or removed (rvsadm, a restore, a keepalived.conf reload), its
//! last weighted real server gone or back, a keepalived quorum lost or gained. At shutdown the
//! file is emptied first, so the routers stop sending before rvsd stops forwarding (not after a
//! `--takeover`, whose successor keeps announcing). BIRD's own configuration includes FILE and
//! exports those protocols to its BGP peers; the README shows one.
//!
//! If BIRD is not running or refuses the file, rvsd logs it and asks again every
//! [`RETRY`]; BIRD reads the file at its own start anyway.

pub mod control;
pub mod routes;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rvs_engine::Engine;
use tokio::runtime::Handle;

use crate::control::executor::service_id;
use crate::keepalived::health::Health;
use routes::ServiceState;

/// How often the services are looked at for changes.
const POLL: Duration = Duration::from_millis(250);
/// How soon a failed `configure` is tried again.
pub const RETRY: Duration = Duration::from_secs(2);
/// Bound on each read and write of BIRD's control socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);

/// Where rvsd announces its VIPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdSettings {
    /// The include file rvsd writes (`--bird-include`).
    pub include: PathBuf,
    /// BIRD's control socket (`--bird-socket`).
    pub socket: PathBuf,
}

/// What has reached the file and BIRD.
#[derive(Debug, Default)]
struct Progress {
    /// The set in the file, once written.
    written: Option<BTreeSet<IpAddr>>,
    /// Whether BIRD has not yet read the file as written.
    pending: bool,
    /// No `configure` before this (after a failure).
    retry_at: Option<Instant>,
    /// Whether the last attempt failed (a failure is logged once per run of failures).
    failing: bool,
    /// Set at shutdown: a reconcile still in flight announces nothing again.
    closed: bool,
}

/// Follows the services and keeps BIRD's announcements in step with them.
pub struct Announcer {
    settings: BirdSettings,
    engine: Arc<Engine>,
    health: Option<Arc<Health>>,
    progress: Mutex<Progress>,
}

impl Announcer {
    /// An announcer for `engine`'s services (with `health`'s quorum states when keepalived.conf
    /// is served); nothing is written until [`Announcer::reconcile`] or [`Announcer::spawn`].
    pub fn new(
        settings: BirdSettings,
        engine: Arc<Engine>,
        health: Option<Arc<Health>>,
    ) -> Arc<Announcer> {
        Arc::new(Announcer {
            settings,
            engine,
            health,
            progress: Mutex::new(Progress::default()),
        })
    }

    /// The VIPs that should be announced now.
    pub fn desired(&self) -> BTreeSet<IpAddr> {
        let walk = self.engine.spec_walk();
        let services: Vec<ServiceState> = walk
            .services()
            .map(|s| ServiceState {
                id: service_id(&s.spec().key),
                has_weight: s.dests().any(|d| d.spec().weight > 0),
            })
            .collect();
        let quorum = self
            .health
            .as_ref()
            .map(|h| h.quorums())
            .unwrap_or_default();
        routes::announced(&services, &quorum)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One step: writes the file when the wanted set changed, and asks BIRD to read it when it
    /// has not yet (at most every [`RETRY`] after a failure). Blocking. Does nothing once
    /// [`Announcer::withdraw_all`] has run.
    pub fn reconcile(&self) {
        let mut p = self.lock();
        if p.closed {
            return;
        }
        let wanted = self.desired();
        self.apply(&mut p, wanted, false);
    }

    /// Withdraws every VIP now and for good (the shutdown step); waits for BIRD's answer.
    pub fn withdraw_all(&self) {
        let mut p = self.lock();
        p.closed = true;
        self.apply(&mut p, BTreeSet::new(), true);
    }

    fn apply(&self, p: &mut Progress, wanted: BTreeSet<IpAddr>, now: bool) {
        if p.written.as_ref() != Some(&wanted) {
            match write_atomically(&self.settings.include, &routes::render(&wanted)) {
                Ok(()) => {
                    tracing::info!(vips = ?wanted, file = %self.settings.include.display(),
                        "BIRD: announcing {} VIP(s)", wanted.len());
                    p.written = Some(wanted);
                    p.pending = true;
                    p.retry_at = None;
                }
                Err(e) => {
                    if !p.failing {
                        tracing::warn!(file = %self.settings.include.display(),
                            "BIRD: cannot write the include file: {e}");
                    }
                    p.failing = true;
                    return;
                }
            }
        }
        if !p.pending || (!now && p.retry_at.is_some_and(|t| Instant::now() < t)) {
            return;
        }
        match control::request(&self.settings.socket, "configure", SOCKET_TIMEOUT) {
            Ok(reply) => {
                if p.failing {
                    tracing::info!("BIRD: configured again");
                }
                tracing::debug!(code = reply.code, "BIRD: {}", reply.lines.join(" / "));
                p.pending = false;
                p.failing = false;
                p.retry_at = None;
            }
            Err(e) => {
                if !p.failing {
                    tracing::warn!("BIRD: configure failed, retrying every {RETRY:?}: {e}");
                }
                p.failing = true;
                p.retry_at = Some(Instant::now() + RETRY);
            }
        }
    }

    /// Runs [`Announcer::reconcile`] every [`POLL`] on `handle`'s runtime (on its blocking
    /// pool: the file and BIRD's socket are blocking calls).
    pub fn spawn(self: &Arc<Self>, handle: &Handle) {
        let me = self.clone();
        handle.spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let me = me.clone();
                let _ = tokio::task::spawn_blocking(move || me.reconcile()).await;
            }
        });
    }
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so BIRD
/// never reads half a file; creates the directory if needed. The temporary file's name starts
/// with a dot, so an `include "/run/rvsd/*.conf"` in BIRD's configuration never matches it.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".rvsd-tmp");
    let tmp = dir.join(name);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("rvs-bird-write-{}", std::process::id()));
        let path = dir.join("sub").join("vips.conf");
        write_atomically(&path, "one\n").unwrap();
        write_atomically(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["vips.conf"], "no temporary file left");
        let _ = std::fs::remove_dir_all(dir);
    }
}
