//! Connection sync for the BPF plane: what the sync daemons exchange with the program's table.
//! The plane's thread moves the connections the program exports into [`ProgramSync`]'s
//! outgoing queue, for the master to send with the engine's; a backup hands every record it
//! receives to the incoming queue, and the plane's thread installs the program's (services it
//! schedules) in its maps and gives the others to the engine, once its configuration is
//! published (so no record arrives before its service does).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rvs_bpf::maps::SyncEvent;
use rvs_engine::{Engine, Millis};
use rvs_sync::SyncConn;

/// Records waiting in either queue at most (more are dropped and logged, as the engine's
/// export queue does).
const QUEUE_MAX: usize = 65_536;

/// The queues between the sync daemons and the plane's thread, and the pinned maps for a
/// resync.
#[derive(Debug)]
pub struct ProgramSync {
    outgoing: Mutex<Vec<SyncConn>>,
    incoming: Mutex<Vec<SyncConn>>,
    view: OnceLock<Arc<rvs_bpf::MapsView>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn push_bounded(queue: &Mutex<Vec<SyncConn>>, recs: impl IntoIterator<Item = SyncConn>) {
    let mut q = locked(queue);
    for r in recs {
        if q.len() >= QUEUE_MAX {
            tracing::warn!("connection sync queue full: records dropped");
            return;
        }
        q.push(r);
    }
}

impl ProgramSync {
    /// Empty queues; the pinned maps come with [`ProgramSync::set_view`].
    pub fn new() -> ProgramSync {
        ProgramSync {
            outgoing: Mutex::default(),
            incoming: Mutex::default(),
            view: OnceLock::new(),
        }
    }

    /// The plane's pinned maps, once attached (a resync reads the connections there).
    pub fn set_view(&self, view: Arc<rvs_bpf::MapsView>) {
        let _ = self.view.set(view);
    }

    /// The plane's thread: connections the program exported.
    pub fn exported(&self, events: impl IntoIterator<Item = SyncEvent>) {
        push_bounded(
            &self.outgoing,
            events.into_iter().filter_map(|e| e.record()),
        );
    }

    /// The master: the program's records since the last call.
    pub fn drain(&self) -> Vec<SyncConn> {
        std::mem::take(&mut *locked(&self.outgoing))
    }

    /// The master, for a resync: every connection of the program's table, with its state's
    /// timeout from `engine`'s table, then its persistence templates.
    pub fn snapshot(&self, engine: &Engine) -> Vec<SyncConn> {
        let timeouts = rvs_engine::state_timeouts_ms(engine.timeouts());
        let Some(view) = self.view.get() else {
            return Vec::new();
        };
        let (conns, templates) = match (view.connections(), view.templates()) {
            (Ok(c), Ok(t)) => (c, t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("reading the BPF connection table for a resync: {e}");
                return Vec::new();
            }
        };
        let template_records = templates.into_iter().filter_map(|t| {
            SyncEvent {
                key: rvs_bpf::maps::ConnKey {
                    src: t.client.into(),
                    dst: t.vaddr.into(),
                    sport_be: 0,
                    dport_be: t.vport.to_be(),
                    proto: t.proto,
                    pad: [0; 3],
                },
                daddr: t.daddr.into(),
                dport_be: t.dport.to_be(),
                state: 0,
                method: t.method,
                timeout_ms: t.timeout_ms,
                flags: rvs_bpf::maps::SYNC_EV_TEMPLATE,
                ..SyncEvent::default()
            }
            .record()
        });
        conns
            .into_iter()
            .filter_map(|(key, c)| {
                SyncEvent {
                    key,
                    daddr: c.daddr,
                    dport_be: c.dport_be,
                    state: c.state,
                    method: c.method,
                    timeout_ms: timeouts.get(usize::from(c.state)).copied().unwrap_or(0),
                    laddr: c.laddr,
                    lport_be: c.lport_be,
                    flags: if c.flags & rvs_bpf::maps::CONN_F_SEQ_SHIFT != 0 {
                        rvs_bpf::maps::SYNC_EV_SEQ_SHIFT
                    } else {
                        0
                    },
                    seq_delta: c.seq_delta,
                    ..SyncEvent::default()
                }
                .record()
            })
            .chain(template_records)
            .collect()
    }

    /// A backup: records received, for the plane's thread.
    pub fn received(&self, recs: Vec<SyncConn>) {
        push_bounded(&self.incoming, recs);
    }

    /// The plane's thread, once its configuration is published: installs the records the
    /// program takes ([`rvs_bpf::Datapath::sync_import`]: its services' connections and
    /// SYN-proxied ones with their shift), and gives the others to `engine`.
    pub fn install(&self, dp: &rvs_bpf::Datapath, engine: &Engine, now: Millis) {
        let recs = std::mem::take(&mut *locked(&self.incoming));
        for rec in &recs {
            match dp.sync_import(rec) {
                Ok(Some(rvs_bpf::Installed::TableFull)) => {
                    tracing::warn!("BPF connection table full: a synced connection was dropped")
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    if let Err(e) = engine.sync_import(now, rec) {
                        tracing::debug!("sync import: {e}");
                    }
                }
                Err(e) => tracing::warn!("installing a synced connection in BPF: {e}"),
            }
        }
    }
}

impl Default for ProgramSync {
    fn default() -> Self {
        ProgramSync::new()
    }
}
