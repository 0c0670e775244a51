//! One shard of the connection table: a slab of connections, a hash index and the side
//! records of the connections that have one.
//!
//! The index holds one entry per connection, under the hash of the client's (protocol,
//! address, port): a packet from the client and a NAT reply from the real server (addressed to
//! the client) both hash there, and [`Conn::matches`] tells the directions apart (a
//! direct-routing connection never matches a reply: like IPVS's `ip_vs_out`, which ignores
//! non-NAT connections). A FULLNAT connection's replies are addressed to its local address and
//! port, so it has a second entry under that hash (marked as a reply entry); the engine picks
//! the local port so that this hash selects the same shard.

use std::sync::Arc;

use hashbrown::HashMap;

use crate::conn::{reply_dst, Conn, ConnExt, Removed, F_EXT};
use crate::conn_index::Index;
use crate::flow::{flow_hash, Direction, Tuple};
use crate::synproxy::SynProxied;
use crate::table_hint::TableHint;
use crate::view::Stats;

/// The index hash of a connection's client side (its entry) or, for a FULLNAT connection, of
/// its reply side.
fn hash_of(
    c: &Conn,
    ext: Option<&ConnExt>,
    reply: bool,
    state: &foldhash::fast::RandomState,
) -> u64 {
    let fnat = ext.and_then(|x| x.fnat.as_ref()).filter(|_| reply);
    let (a, p) = reply_dst(c, fnat);
    flow_hash(state, c.proto, a, p)
}

/// An index entry: the slot, and whether it is a FULLNAT connection's reply entry. Slots stay
/// below 2^31 - 1 (a shard of that many connections would take 128 GiB), so entries fit the
/// index's values.
fn entry(slot: u32, reply: bool) -> u32 {
    (slot << 1) | reply as u32
}

/// Slots a full slab grows by at least (it grows by an eighth of its size, so a shard that
/// gets more than its share wastes little).
const MIN_GROWTH: usize = 16;

/// A shard: its own index, slab, free list, side records and per-id traffic counters.
#[derive(Debug)]
pub(crate) struct Shard {
    index: Index,
    slab: Vec<Option<Conn>>,
    free: Vec<u32>,
    /// Side records by slot, for the connections flagged `F_FNAT` or `F_CONTROL`.
    ext: HashMap<u32, ConnExt, foldhash::fast::FixedState>,
    /// The SYN proxy's records by slot, for the connections it opened (looked up only while
    /// there are any, so a director without the proxy pays nothing for it).
    synproxied: HashMap<u32, SynProxied, foldhash::fast::FixedState>,
    /// Counters indexed by service/destination id.
    pub(crate) stats: Vec<Stats>,
    len: usize,
    /// Where the next lookups and insert read, kept up to date for readers without the lock.
    hint: Arc<TableHint>,
}

impl Shard {
    /// A shard sized for `capacity` connections.
    pub(crate) fn new(capacity: usize) -> Self {
        let shard = Shard {
            index: Index::with_capacity(capacity),
            slab: Vec::with_capacity(capacity),
            free: Vec::new(),
            ext: HashMap::default(),
            synproxied: HashMap::default(),
            stats: Vec::new(),
            len: 0,
            hint: Arc::default(),
        };
        shard.hint.set_index(shard.index.layout());
        shard.publish_free_slot();
        shard
    }

    /// The addresses this shard publishes for [`crate::Engine::prefetch`].
    pub(crate) fn hint(&self) -> Arc<TableHint> {
        Arc::clone(&self.hint)
    }

    /// The address of the slot the next insert takes: the free list's last, else the slab's
    /// end while it has room (0 when it must grow).
    pub(crate) fn next_slot_addr(&self) -> usize {
        let slot = match self.free.last() {
            Some(&s) => s as usize,
            None if self.slab.len() < self.slab.capacity() => self.slab.len(),
            None => return 0,
        };
        self.slab.as_ptr().wrapping_add(slot) as usize
    }

    /// The index's layout (see [`Index::layout`]), for tests of the hint.
    #[cfg(test)]
    pub(crate) fn index_layout(&self) -> (usize, usize) {
        self.index.layout()
    }

    fn publish_free_slot(&self) {
        self.hint.set_free_slot(self.next_slot_addr());
    }

    /// Number of connections.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Finds the connection a packet belongs to; `hash` is the hash of the packet's client
    /// side (its source for `Input`, its destination for `Output`).
    pub(crate) fn find(&self, hash: u64, dir: Direction, t: &Tuple) -> Option<u32> {
        let input = matches!(dir, Direction::Input);
        let Shard {
            index, slab, ext, ..
        } = self;
        index
            .find(hash, |e| {
                // A reply entry is never the client side.
                !(input && e & 1 == 1)
                    && slab
                        .get((e >> 1) as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|c| c.matches(dir, t, || ext.get(&(e >> 1))))
            })
            .map(|e| e >> 1)
    }

    /// Starts loading the slot the next new connection will take, so that its cache miss
    /// overlaps the index probe's instead of following it. For packets that may open a
    /// connection.
    #[inline]
    pub(crate) fn prepare_insert(&self) {
        self.hint.prefetch_free_slot();
    }

    /// The connection in `slot`.
    pub(crate) fn get(&self, slot: u32) -> Option<&Conn> {
        self.slab.get(slot as usize).and_then(Option::as_ref)
    }

    /// The connection in `slot`, to change.
    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        self.slab.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// The SYN proxy's record of the connection in `slot`, if the proxy opened it.
    #[inline]
    pub(crate) fn synproxied(&self, slot: u32) -> Option<SynProxied> {
        if self.synproxied.is_empty() {
            return None;
        }
        self.synproxied.get(&slot).copied()
    }

    /// Records (or updates) what the SYN proxy keeps of the connection in `slot`.
    pub(crate) fn set_synproxied(&mut self, slot: u32, sp: SynProxied) {
        self.synproxied.insert(slot, sp);
    }

    /// The connection in `slot` with its side record (if it has one).
    pub(crate) fn get_full(&self, slot: u32) -> Option<(&Conn, Option<&ConnExt>)> {
        let c = self.get(slot)?;
        let ext = if c.has_ext() {
            self.ext.get(&slot)
        } else {
            None
        };
        Some((c, ext))
    }

    /// The connection in `slot`, to change, with its side record if it has one and any of
    /// `wanted` (connection flags: what the caller needs of it) is among its flags.
    pub(crate) fn get_full_mut(
        &mut self,
        slot: u32,
        wanted: u8,
    ) -> Option<(&mut Conn, Option<&mut ConnExt>)> {
        let c = self.slab.get_mut(slot as usize).and_then(Option::as_mut)?;
        let ext = if c.flags & wanted != 0 {
            self.ext.get_mut(&slot)
        } else {
            None
        };
        Some((c, ext))
    }

    /// Inserts a connection and its side record (if any) under its client-side `hash`, and a
    /// FULLNAT connection under its reply hash too.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        state: &foldhash::fast::RandomState,
        mut conn: Conn,
        ext: Option<ConnExt>,
    ) -> u32 {
        conn.flags = (conn.flags & !F_EXT) | ext.as_ref().map_or(0, ConnExt::flags);
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(place) = self.slab.get_mut(s as usize) {
                    // A free slot holds `None`: nothing to drop, so the old value is not read
                    // (a plain assignment would load the cold line only to test it).
                    core::mem::forget(place.replace(conn));
                }
                s
            }
            None => {
                if self.slab.len() == self.slab.capacity() {
                    self.slab
                        .reserve_exact((self.slab.len() / 8).max(MIN_GROWTH));
                }
                self.slab.push(Some(conn));
                (self.slab.len() - 1) as u32
            }
        };
        let reply_hash = ext
            .as_ref()
            .and_then(|x| x.fnat.as_ref())
            .and_then(|_| self.get(slot))
            .map(|c| hash_of(c, ext.as_ref(), true, state));
        if let Some(x) = ext {
            self.ext.insert(slot, x);
        }
        let mut moved = self.index.insert(hash, entry(slot, false));
        if let Some(h) = reply_hash {
            moved |= self.index.insert(h, entry(slot, true));
        }
        if moved {
            self.hint.set_index(self.index.layout());
        }
        self.publish_free_slot();
        self.len += 1;
        slot
    }

    /// Removes a connection, returning it with its side record.
    pub(crate) fn remove(
        &mut self,
        slot: u32,
        state: &foldhash::fast::RandomState,
    ) -> Option<Removed> {
        let conn = self.slab.get_mut(slot as usize)?.take()?;
        let ext = if conn.has_ext() {
            self.ext.remove(&slot)
        } else {
            None
        };
        if !self.synproxied.is_empty() {
            self.synproxied.remove(&slot);
        }
        let fullnat = ext.as_ref().is_some_and(|x| x.fnat.is_some());
        for reply in [false, true] {
            if reply && !fullnat {
                break;
            }
            let hash = hash_of(&conn, ext.as_ref(), reply, state);
            self.index.remove(hash, entry(slot, reply));
        }
        self.free.push(slot);
        self.publish_free_slot();
        self.len -= 1;
        Some(Removed { conn, ext })
    }

    /// Removes every connection matching `pred`, returning them.
    pub(crate) fn remove_where(
        &mut self,
        state: &foldhash::fast::RandomState,
        mut pred: impl FnMut(&Conn) -> bool,
    ) -> Vec<Removed> {
        let doomed: Vec<u32> = self
            .slab
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().filter(|c| pred(c)).map(|_| i as u32))
            .collect();
        doomed
            .into_iter()
            .filter_map(|s| self.remove(s, state))
            .collect()
    }

    /// Iterates over live connections, with their side records and the SYN proxy's records.
    pub(crate) fn iter_with_proxy(
        &self,
    ) -> impl Iterator<Item = (&Conn, Option<&ConnExt>, Option<SynProxied>)> {
        self.slab.iter().enumerate().filter_map(|(i, c)| {
            let c = c.as_ref()?;
            let slot = i as u32;
            let ext = if c.has_ext() {
                self.ext.get(&slot)
            } else {
                None
            };
            Some((c, ext, self.synproxied(slot)))
        })
    }

    /// Number of slots (live or free): the bound of a slot index.
    pub(crate) fn slots(&self) -> usize {
        self.slab.len()
    }

    /// Live connections in the slots `range` (clamped to the slab).
    pub(crate) fn iter_slots(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &Conn> {
        let end = range.end.min(self.slab.len());
        let start = range.start.min(end);
        self.slab[start..end].iter().filter_map(Option::as_ref)
    }

    /// Counts one packet of `bytes` bytes travelling `dir` on the counters of `ids` (a service
    /// and its destination).
    pub(crate) fn count(&mut self, ids: [u32; 2], dir: Direction, bytes: u64) {
        for id in ids {
            let s = self.stats_mut(id);
            match dir {
                Direction::Input => {
                    s.in_pkts += 1;
                    s.in_bytes += bytes;
                }
                Direction::Output => {
                    s.out_pkts += 1;
                    s.out_bytes += bytes;
                }
            }
        }
    }

    /// Counter slot for a service or destination id, grown on demand.
    pub(crate) fn stats_mut(&mut self, id: u32) -> &mut Stats {
        let i = id as usize;
        if i >= self.stats.len() {
            self.stats.resize(i + 1, Stats::default());
        }
        &mut self.stats[i]
    }

    /// Bytes held by this shard's structures.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slab.capacity() * core::mem::size_of::<Option<Conn>>()
            + self.index.memory_bytes()
            + self.free.capacity() * core::mem::size_of::<u32>()
            + self.stats.capacity() * core::mem::size_of::<Stats>()
            + buckets_of(self.ext.capacity()) * (core::mem::size_of::<(u32, ConnExt)>() + 1)
            + buckets_of(self.synproxied.capacity())
                * (core::mem::size_of::<(u32, SynProxied)>() + 1)
    }
}

/// Buckets of a hashbrown map of `capacity` (7/8 of its buckets are usable).
fn buckets_of(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        (capacity * 8 / 7).next_power_of_two()
    }
}
