//! The connection table's hash index: open addressing over buckets of one cache line, each
//! holding [`WIDTH`] entries of 32 bits of the hash beside a 32-bit value. A lookup reads one
//! line (usually) and an insert writes the line its probe just read: a general-purpose table
//! keeping control bytes and values apart touches two lines, and on the new-connection path
//! both are cache misses.
//!
//! Probing is linear, bucket by bucket, and stops at a bucket with an empty entry. A removed
//! entry becomes empty only in a bucket that already had an empty one (so no probe has ever
//! passed it), else a tombstone; tombstones are reused by inserts and cleared by rehashing.
//! The stored hash bits say where an entry belongs, so rehashing needs nothing but the index.

/// Entries per bucket (one 64-byte line of `u64`s).
const WIDTH: usize = 8;
/// Bytes per bucket: one cache line.
pub(crate) const BUCKET_BYTES: usize = core::mem::size_of::<Bucket>();
/// A never-used entry.
const EMPTY: u64 = 0;
/// A removed entry in a bucket some probe may have passed.
const TOMBSTONE: u64 = 1 << 32;
/// The largest value the index stores (one less than `u32::MAX`: values are kept plus one).
pub(crate) const MAX_VALUE: u32 = u32::MAX - 1;

/// One cache line of entries: `(low 32 bits of the hash) << 32 | (value + 1)`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Bucket([u64; WIDTH]);

/// A multimap from 64-bit hashes (of which the low 32 bits are used) to `u32` values; the
/// caller tells equal keys apart through the values.
#[derive(Debug)]
pub(crate) struct Index {
    buckets: Vec<Bucket>,
    /// Live entries.
    items: usize,
    /// Tombstones.
    tombstones: usize,
}

fn pack(hash: u64, value: u32) -> u64 {
    ((hash as u32 as u64) << 32) | (u64::from(value) + 1)
}

/// Buckets for `capacity` entries at a load of 3/4 (the index stays small, so more of it
/// stays in cache; it is cleaned or grown at 7/8).
fn buckets_for(capacity: usize) -> usize {
    (capacity.saturating_mul(4) / 3).div_ceil(WIDTH).max(1)
}

/// The home bucket of a hash among `n` (by multiplication: `n` need not be a power of two).
#[inline]
pub(crate) fn home(hash: u64, n: usize) -> usize {
    ((u64::from(hash as u32) * n as u64) >> 32) as usize
}

impl Index {
    /// An index sized for `capacity` entries.
    pub(crate) fn with_capacity(capacity: usize) -> Index {
        Index {
            buckets: vec![Bucket::default(); buckets_for(capacity)],
            items: 0,
            tombstones: 0,
        }
    }

    /// Entries that fit before the index grows or is cleaned.
    fn limit(&self) -> usize {
        self.buckets.len() * WIDTH / 8 * 7
    }

    /// Where the buckets are: the first one's address and their count (for
    /// [`crate::table_hint::TableHint`]).
    pub(crate) fn layout(&self) -> (usize, usize) {
        (self.buckets.as_ptr() as usize, self.buckets.len())
    }

    /// Bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.buckets.capacity() * core::mem::size_of::<Bucket>()
    }

    /// The first value stored under `hash` for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = u64::from(hash as u32);
        let n = self.buckets.len();
        let mut b = home(hash, n);
        for _ in 0..n {
            let mut has_empty = false;
            for &v in &self.buckets[b].0 {
                if v >> 32 == tag && v as u32 != 0 && eq(v as u32 - 1) {
                    return Some(v as u32 - 1);
                }
                has_empty |= v == EMPTY;
            }
            if has_empty {
                return None;
            }
            b = next(b, n);
        }
        None
    }

    /// Stores `value` (at most [`MAX_VALUE`]) under `hash`; whether the buckets moved (the
    /// index was rebuilt to make room: see [`Index::layout`]).
    pub(crate) fn insert(&mut self, hash: u64, value: u32) -> bool {
        debug_assert!(value <= MAX_VALUE);
        let moved = self.items + self.tombstones >= self.limit();
        if moved {
            self.rehash();
        }
        let reused = place(&mut self.buckets, pack(hash, value));
        if reused {
            self.tombstones -= 1;
        }
        self.items += 1;
        moved
    }

    /// Removes the entry `value` stored under `hash`; whether there was one.
    pub(crate) fn remove(&mut self, hash: u64, value: u32) -> bool {
        let want = pack(hash, value);
        let n = self.buckets.len();
        let mut b = home(hash, n);
        for _ in 0..n {
            let bucket = &mut self.buckets[b].0;
            let has_empty = bucket.contains(&EMPTY);
            if let Some(e) = bucket.iter_mut().find(|v| **v == want) {
                if has_empty {
                    *e = EMPTY;
                } else {
                    *e = TOMBSTONE;
                    self.tombstones += 1;
                }
                self.items -= 1;
                return true;
            }
            if has_empty {
                return false;
            }
            b = next(b, n);
        }
        false
    }

    /// Makes room: rebuilds at twice the size when more than half full of live entries,
    /// else at the same size (dropping the tombstones).
    fn rehash(&mut self) {
        let size = if self.items >= self.limit() / 2 {
            self.buckets.len() * 2
        } else {
            self.buckets.len()
        };
        let old = core::mem::replace(&mut self.buckets, vec![Bucket::default(); size]);
        for v in old.iter().flat_map(|b| b.0) {
            if v as u32 != 0 {
                place(&mut self.buckets, v);
            }
        }
        self.tombstones = 0;
    }
}

/// Writes the packed entry `v` in the first empty or tombstone entry of its probe; whether
/// that was a tombstone. The caller keeps the index below its limit, so there is room.
fn place(buckets: &mut [Bucket], v: u64) -> bool {
    let n = buckets.len();
    let mut b = home(v >> 32, n);
    loop {
        if let Some(e) = buckets[b]
            .0
            .iter_mut()
            .find(|e| **e == EMPTY || **e == TOMBSTONE)
        {
            let reused = *e == TOMBSTONE;
            *e = v;
            return reused;
        }
        b = next(b, n);
    }
}

/// The bucket after `b` of `n`, wrapping.
#[inline]
fn next(b: usize, n: usize) -> usize {
    if b + 1 == n {
        0
    } else {
        b + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes that all land in bucket 0, told apart by their upper bits.
    fn colliding(i: u32) -> u64 {
        u64::from(i) << 40
    }

    #[test]
    fn bucket_is_a_cache_line() {
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
        assert_eq!(core::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn finds_what_was_inserted_through_overflow_and_removal() {
        let mut ix = Index::with_capacity(16);
        // 20 entries under hash 0: they overflow bucket 0 into the next ones.
        for v in 0..20 {
            ix.insert(colliding(v), v);
        }
        for v in 0..20 {
            assert_eq!(ix.find(colliding(v), |x| x == v), Some(v));
        }
        // Removing from the full first bucket leaves tombstones: the overflowed entries are
        // still found.
        for v in 0..4 {
            assert!(ix.remove(colliding(v), v));
            assert!(!ix.remove(colliding(v), v));
        }
        for v in 4..20 {
            assert_eq!(ix.find(colliding(v), |x| x == v), Some(v));
        }
        assert_eq!(ix.find(colliding(0), |x| x == 0), None);
        // Tombstones are reused.
        ix.insert(colliding(0), 100);
        assert_eq!(ix.find(colliding(0), |x| x == 100), Some(100));
    }

    #[test]
    fn grows_and_cleans_keeping_every_entry() {
        let mut ix = Index::with_capacity(4);
        let hash = |v: u32| u64::from(v.wrapping_mul(2_654_435_761));
        for round in 0..5u32 {
            for v in 0..1000 {
                ix.insert(hash(v), v + round * 1000);
            }
            for v in 0..1000 {
                let want = v + round * 1000;
                assert_eq!(ix.find(hash(v), |x| x == want), Some(want));
                assert!(ix.remove(hash(v), want));
            }
            assert_eq!(ix.items, 0);
        }
        assert!(ix.buckets.len() <= 2 * buckets_for(2000));
    }

    #[test]
    fn values_under_one_hash_are_told_apart_by_the_caller() {
        let mut ix = Index::with_capacity(8);
        ix.insert(7, 1);
        ix.insert(7, 2);
        assert_eq!(ix.find(7, |x| x == 2), Some(2));
        assert_eq!(ix.find(7, |_| true), Some(1));
        assert_eq!(ix.find(8, |_| true), None);
        assert_eq!(ix.find(7, |x| x == 3), None);
    }
}
