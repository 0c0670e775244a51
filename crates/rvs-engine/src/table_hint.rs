//! Where a shard's next reads will land, published for [`crate::Engine::prefetch`].
//!
//! A worker handling a batch of frames can start the cache misses of the next frame (its
//! index bucket; for a SYN, the slab slot the new connection will take) while it handles the
//! current one, without taking the next frame's shard lock. The shard publishes the addresses
//! here, in plain atomics, whenever they change; a reader may see them stale or half updated
//! (a base from after a rehash with a count from before), which costs a useless prefetch and
//! nothing else: a prefetch of any address is harmless (see `rvs_prefetch`).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::conn_index::home;

/// One shard's published addresses. Written under the shard's lock, read without it; on a
/// cache line of its own, so that one shard's writes do not disturb another's readers.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct TableHint {
    /// The address of the index's first bucket.
    buckets: AtomicUsize,
    /// The index's number of buckets.
    bucket_count: AtomicUsize,
    /// The address of the slab slot the next insert takes (0 when the slab must grow first).
    free_slot: AtomicUsize,
}

impl TableHint {
    /// Publishes the index's buckets: their address and count.
    pub(crate) fn set_index(&self, (base, count): (usize, usize)) {
        self.buckets.store(base, Ordering::Relaxed);
        self.bucket_count.store(count, Ordering::Relaxed);
    }

    /// Publishes the address of the slot the next insert takes (0: none known).
    pub(crate) fn set_free_slot(&self, addr: usize) {
        self.free_slot.store(addr, Ordering::Relaxed);
    }

    /// The address of the index bucket a lookup of `hash` reads first.
    pub(crate) fn bucket_of(&self, hash: u64) -> usize {
        let count = self.bucket_count.load(Ordering::Relaxed);
        let base = self.buckets.load(Ordering::Relaxed);
        base.wrapping_add(home(hash, count).wrapping_mul(crate::conn_index::BUCKET_BYTES))
    }

    /// The address of the slot the next insert takes, if one is known (none while the slab
    /// must grow first).
    pub(crate) fn free_slot(&self) -> Option<usize> {
        Some(self.free_slot.load(Ordering::Relaxed)).filter(|&a| a != 0)
    }

    /// Starts loading the index bucket a lookup of `hash` reads first.
    #[inline]
    pub(crate) fn prefetch_bucket(&self, hash: u64) {
        rvs_prefetch::prefetch(self.bucket_of(hash));
    }

    /// Starts loading the slot the next insert takes, if one is known.
    #[inline]
    pub(crate) fn prefetch_free_slot(&self) {
        if let Some(slot) = self.free_slot() {
            rvs_prefetch::prefetch(slot);
        }
    }
}
