//! A worker's hold on the engine's configuration snapshot, for [`Engine::handle_cached`].
//!
//! [`Engine::handle`] takes the current snapshot for each packet: two atomic
//! read-modify-writes (arc-swap's debt slot, taken and paid back), about a twentieth of an
//! established packet's cost. A worker that keeps a [`SnapshotCache`] checks instead that the
//! snapshot it holds is still the current one (one plain load) and takes the new one only
//! after the control plane published it.

use std::sync::Arc;

use arc_swap::cache::Cache;
use arc_swap::ArcSwap;

use crate::config::Snapshot;
use crate::engine::Engine;
use crate::verdict::{PacketMeta, Verdict};
use crate::Millis;

/// The configuration snapshot a worker handles packets under, kept from packet to packet
/// (see the module's text). It keeps the snapshot it holds alive, and with it what that
/// snapshot refers to (removed real servers among them), until it is used or refreshed again:
/// a worker refreshes it after each round of its loop ([`SnapshotCache::refresh`]), so for at
/// most one poll interval when idle (rvsd's: 100 ms). Holding a removed real server this way
/// does not bring it back when it is added again: only connections and templates do.
#[derive(Debug)]
pub struct SnapshotCache(Cache<Arc<ArcSwap<Snapshot>>, Arc<Snapshot>>);

impl SnapshotCache {
    /// Takes the engine's current snapshot if the one held is not it any more.
    pub fn refresh(&mut self) {
        self.0.load();
    }
}

impl Engine {
    /// A cache of this engine's configuration, for [`Engine::handle_cached`].
    pub fn snapshot_cache(&self) -> SnapshotCache {
        SnapshotCache(Cache::new(self.snapshot.clone()))
    }

    /// [`Engine::handle`] under the snapshot `cache` holds, the current one (a cache made by
    /// another engine is replaced by one of this engine's).
    pub fn handle_cached(
        &self,
        cache: &mut SnapshotCache,
        now: Millis,
        pkt: &mut PacketMeta,
        frame: &mut [u8],
    ) -> Verdict {
        if !std::ptr::eq(cache.0.arc_swap(), &*self.snapshot) {
            *cache = self.snapshot_cache();
        }
        let snap = cache.0.load();
        self.handle_under(snap, now, pkt, frame)
    }
}
