//! One shard of the connection table: a slab of connections and a hash index holding two
//! entries per NAT connection (the client->virtual tuple and the real-server->client tuple) and
//! one per direct-routing connection (its replies never pass the director, so a packet from the
//! real server must not match it: like IPVS's `ip_vs_out`, which ignores non-NAT connections).
//!
//! Both entries hash on the client's (protocol, address, port), so both directions of a
//! connection live in the same shard; the engine picks the shard from the same hash. A FULLNAT
//! connection's reply entry hashes on its (local address, local port) instead, and the engine
//! picks the local port so that this hash selects the same shard.

use std::sync::Arc;

use hashbrown::HashTable;

use crate::config::DestRt;
use crate::flow::{flow_hash, to16, Direction};
use crate::fullnat::FnatConn;
use crate::persist::Template;
use crate::view::{ConnState, Stats};

/// Connection flag: IPv6 addresses.
pub(crate) const F_V6: u8 = 1;
/// Connection flag: counted as inactive on its destination.
pub(crate) const F_INACTIVE: u8 = 2;
/// Connection flag: direct routing (IPVS's `IP_VS_CONN_F_NOOUTPUT`): packets are forwarded
/// unchanged, only the client->virtual direction is indexed, TCP uses the INPUT-ONLY states.
pub(crate) const F_NO_OUTPUT: u8 = 4;
/// The connection is tunnelled (`-i`): packets are encapsulated toward the real server
/// (always together with `F_NO_OUTPUT`).
pub(crate) const F_TUNNEL: u8 = 8;
/// The real server is the director itself (IPVS's `IP_VS_CONN_F_LOCALNODE`): packets are handed
/// to the director's own stack unchanged (always together with `F_NO_OUTPUT`).
pub(crate) const F_LOCAL: u8 = 16;
/// Installed by connection synchronization (IPVS's `IP_VS_CONN_F_SYNC`).
pub(crate) const F_SYNCED: u8 = 32;

/// `sync_state` of a connection never synced.
pub(crate) const NEVER_SYNCED: u8 = u8::MAX;

/// One connection. Addresses are 16 bytes; IPv4 ones are stored IPv4-mapped.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) client: [u8; 16],
    pub(crate) vaddr: [u8; 16],
    pub(crate) daddr: [u8; 16],
    pub(crate) cport: u16,
    pub(crate) vport: u16,
    pub(crate) dport: u16,
    pub(crate) proto: u8,
    pub(crate) state: u8,
    pub(crate) flags: u8,
    pub(crate) svc_id: u32,
    pub(crate) expires: u64,
    pub(crate) dest: Arc<DestRt>,
    /// FULLNAT: the local address and port toward the real server (the reply tuple is
    /// real server -> local address:port, and is indexed under that hash).
    pub(crate) fnat: Option<Box<FnatConn>>,
    /// The persistence template controlling this connection (IPVS's `cp->control`).
    pub(crate) control: Option<Arc<Template>>,
    /// Incoming packets, for the sync threshold/period rule (IPVS's `in_pkts`; wraps).
    pub(crate) sync_pkts: u16,
    /// The state last synced (IPVS's `old_state`).
    pub(crate) sync_state: u8,
}

/// A packet's addresses as seen on the wire (source first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tuple {
    pub(crate) proto: u8,
    pub(crate) v6: bool,
    pub(crate) src: [u8; 16],
    pub(crate) dst: [u8; 16],
    pub(crate) sport: u16,
    pub(crate) dport: u16,
}

impl Conn {
    /// A connection of tuple `t` (client -> virtual) of service `svc_id` toward `dest` at
    /// `dport`, in `state`, with `flags` (`F_V6` is added for an IPv6 tuple), expiring at
    /// `expires`; no FULLNAT part, no template, never synced.
    pub(crate) fn new(
        t: &Tuple,
        svc_id: u32,
        dest: Arc<DestRt>,
        dport: u16,
        state: ConnState,
        flags: u8,
        expires: u64,
    ) -> Conn {
        Conn {
            client: t.src,
            vaddr: t.dst,
            daddr: to16(dest.addr),
            cport: t.sport,
            vport: t.dport,
            dport,
            proto: t.proto,
            state: state as u8,
            flags: flags | if t.v6 { F_V6 } else { 0 },
            svc_id,
            expires,
            dest,
            fnat: None,
            control: None,
            sync_pkts: 0,
            sync_state: NEVER_SYNCED,
        }
    }

    /// Counts the connection as active (ESTABLISHED) or inactive on its destination, moving
    /// it between the two counters when that changes.
    pub(crate) fn set_active(&mut self, active: bool) {
        let inactive = self.flags & F_INACTIVE != 0;
        if inactive != active {
            return;
        }
        self.dest.set_active(active);
        if active {
            self.flags &= !F_INACTIVE;
        } else {
            self.flags |= F_INACTIVE;
        }
    }

    /// Gives back what the connection holds on its destination and template, as it goes away
    /// (`ip_vs_unbind_dest`, `ip_vs_control_del`).
    pub(crate) fn release(&self) {
        self.dest.unbind(self.flags & F_INACTIVE == 0);
        if let Some(t) = &self.control {
            t.control_del();
        }
    }

    fn matches(&self, dir: Direction, t: &Tuple) -> bool {
        if self.proto != t.proto || (self.flags & F_V6 != 0) != t.v6 {
            return false;
        }
        match dir {
            Direction::Input => {
                self.cport == t.sport
                    && self.vport == t.dport
                    && self.client == t.src
                    && self.vaddr == t.dst
            }
            Direction::Output => {
                let (laddr, lport) = self.reply_dst();
                self.flags & F_NO_OUTPUT == 0
                    && self.dport == t.sport
                    && lport == t.dport
                    && self.daddr == t.src
                    && *laddr == t.dst
            }
        }
    }

    /// Where replies from the real server are addressed: the client (NAT) or the local
    /// address and port (FULLNAT).
    pub(crate) fn reply_dst(&self) -> (&[u8; 16], u16) {
        match &self.fnat {
            Some(f) => (f.local.addr(), f.local.port()),
            None => (&self.client, self.cport),
        }
    }

    /// The index hash of one of the connection's entries.
    fn hash_of(&self, dir: Direction, state: &foldhash::fast::RandomState) -> u64 {
        match dir {
            Direction::Input => flow_hash(state, self.proto, &self.client, self.cport),
            Direction::Output => {
                let (a, p) = self.reply_dst();
                flow_hash(state, self.proto, a, p)
            }
        }
    }
}

fn entry(slot: u32, dir: Direction) -> u32 {
    (slot << 1) | matches!(dir, Direction::Output) as u32
}

/// A shard: its own index, slab, free list and per-id traffic counters.
#[derive(Debug)]
pub(crate) struct Shard {
    table: HashTable<u32>,
    slab: Vec<Option<Conn>>,
    free: Vec<u32>,
    /// Counters indexed by service/destination id.
    pub(crate) stats: Vec<Stats>,
    len: usize,
}

impl Shard {
    pub(crate) fn new(capacity: usize) -> Self {
        Shard {
            table: HashTable::with_capacity(capacity * 2),
            slab: Vec::with_capacity(capacity),
            free: Vec::new(),
            stats: Vec::new(),
            len: 0,
        }
    }

    /// Number of connections.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Finds the connection a packet belongs to; `hash` is the client-side hash.
    pub(crate) fn find(&self, hash: u64, dir: Direction, t: &Tuple) -> Option<u32> {
        let want_out = matches!(dir, Direction::Output) as u32;
        let slab = &self.slab;
        self.table
            .find(hash, |&e| {
                e & 1 == want_out
                    && slab
                        .get((e >> 1) as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|c| c.matches(dir, t))
            })
            .map(|&e| e >> 1)
    }

    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        self.slab.get_mut(slot as usize).and_then(Option::as_mut)
    }

    pub(crate) fn get(&self, slot: u32) -> Option<&Conn> {
        self.slab.get(slot as usize).and_then(Option::as_ref)
    }

    /// Inserts a connection under its tuples (the reply tuple only without `F_NO_OUTPUT`).
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        state: &foldhash::fast::RandomState,
        conn: Conn,
    ) -> u32 {
        let with_output = conn.flags & F_NO_OUTPUT == 0;
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(place) = self.slab.get_mut(s as usize) {
                    *place = Some(conn);
                }
                s
            }
            None => {
                self.slab.push(Some(conn));
                (self.slab.len() - 1) as u32
            }
        };
        let Shard { table, slab, .. } = self;
        let rehash = |e: &u32| {
            let dir = if e & 1 == 1 {
                Direction::Output
            } else {
                Direction::Input
            };
            slab.get((e >> 1) as usize)
                .and_then(Option::as_ref)
                .map_or(0, |c| c.hash_of(dir, state))
        };
        table.insert_unique(hash, entry(slot, Direction::Input), rehash);
        if with_output {
            let out_hash = slab
                .get(slot as usize)
                .and_then(Option::as_ref)
                .map_or(hash, |c| c.hash_of(Direction::Output, state));
            table.insert_unique(out_hash, entry(slot, Direction::Output), rehash);
        }
        self.len += 1;
        slot
    }

    /// Removes a connection, returning it.
    pub(crate) fn remove(
        &mut self,
        slot: u32,
        state: &foldhash::fast::RandomState,
    ) -> Option<Conn> {
        let conn = self.slab.get_mut(slot as usize)?.take()?;
        // A direct-routing connection has no reply entry (see `insert`; `F_NO_OUTPUT` is fixed
        // at creation).
        let dirs: &[Direction] = if conn.flags & F_NO_OUTPUT == 0 {
            &[Direction::Input, Direction::Output]
        } else {
            &[Direction::Input]
        };
        for &dir in dirs {
            let hash = conn.hash_of(dir, state);
            let want = entry(slot, dir);
            if let Ok(e) = self.table.find_entry(hash, |&e| e == want) {
                e.remove();
            }
        }
        self.free.push(slot);
        self.len -= 1;
        Some(conn)
    }

    /// Removes every connection matching `pred`, returning them.
    pub(crate) fn remove_where(
        &mut self,
        state: &foldhash::fast::RandomState,
        mut pred: impl FnMut(&Conn) -> bool,
    ) -> Vec<Conn> {
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

    /// Iterates over live connections.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slab.iter().filter_map(Option::as_ref)
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
        let buckets = if self.table.capacity() == 0 {
            0
        } else {
            (self.table.capacity() * 8 / 7).next_power_of_two()
        };
        self.slab.capacity() * core::mem::size_of::<Option<Conn>>()
            + buckets * (core::mem::size_of::<u32>() + 1)
            + self.free.capacity() * core::mem::size_of::<u32>()
            + self.stats.capacity() * core::mem::size_of::<Stats>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_is_compact() {
        // 3 addresses + ports + state + timer + destination, FULLNAT and template pointers;
        // Option uses the Arc niche.
        assert!(core::mem::size_of::<Option<Conn>>() <= 96);
    }
}
