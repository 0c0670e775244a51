//! The locality-based schedulers: lblc (ip_vs_lblc.c) and lblcr (ip_vs_lblcr.c). Both keep a
//! table keyed by the packet's destination address; entries age out as in IPVS: a check every
//! 60 s that, every 30th time (or when the table holds more than 16 entries per bucket), drops
//! entries unused for `expiration` (24 h by default) or, when over size, for 6 minutes.
//!
//! Time comes from the caller ([`SchedKey::now_ms`] and [`Locality::expire`]); nothing here has a
//! clock of its own.
//!
//! Unlike the other schedulers' tables, this one is state the data plane writes on every pick
//! (an entry's last use, new entries, lblcr's sets), so [`crate::sched::SchedState`] keeps it
//! behind a mutex shared by the service's snapshots; control takes that mutex only to age the
//! table and, for lblcr, to drop removed servers from the sets.

use std::collections::HashMap;

use crate::sched_core::{SchedKey, SchedTarget};

/// `DEFAULT_EXPIRATION`: 24 hours (the `lblc_expiration` / `lblcr_expiration` sysctls).
pub const DEFAULT_EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
/// `CHECK_EXPIRE_INTERVAL`: 60 s.
pub const CHECK_INTERVAL_MS: u64 = 60 * 1000;
/// `ENTRY_TIMEOUT`: 6 minutes.
const ENTRY_TIMEOUT_MS: u64 = 6 * 60 * 1000;
/// `COUNT_FOR_FULL_EXPIRATION`.
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;
/// `max_size`: 16 entries per bucket of a 1024-bucket table.
const MAX_SIZE: usize = 1024 * 16;

/// The wlc choice over all destinations used when the cache has no usable entry
/// (`__ip_vs_lblc_schedule`): least `overhead / weight`, overloaded skipped, ties to the first.
fn least_loaded<D: SchedTarget>(dests: &[D]) -> Option<usize> {
    crate::sched_core::weighted_least(dests.iter().enumerate(), crate::sched_core::overhead)
}

/// The locality `is_overloaded`: more active connections than weight while some server is under
/// half its weight.
fn overloaded_here<D: SchedTarget>(d: &D, dests: &[D]) -> bool {
    d.active() > d.weight() && dests.iter().any(|x| x.active() * 2 < x.weight())
}

/// A destination set of lblcr, most recently inserted first (IPVS's `list_add_rcu`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DestSet {
    ids: Vec<u32>,
    lastmod: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Lblc { dest: u32, lastuse: u64 },
    Lblcr { set: DestSet, lastuse: u64 },
}

impl Entry {
    fn lastuse(&self) -> u64 {
        match self {
            Entry::Lblc { lastuse, .. } | Entry::Lblcr { lastuse, .. } => *lastuse,
        }
    }
}

/// The per-service table of lblc or lblcr, with its expiry timer state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Locality {
    replicated: bool,
    entries: HashMap<[u8; 16], Entry>,
    /// When the next periodic check is due (set by the first [`Locality::expire`]).
    next_check: Option<u64>,
    counter: u32,
    expiration_ms: u64,
}

fn position<D: SchedTarget>(dests: &[D], id: u32) -> Option<usize> {
    dests.iter().position(|d| d.id() == id)
}

impl Locality {
    /// An empty table; `replicated` selects lblcr.
    pub(crate) fn new(replicated: bool) -> Self {
        Locality {
            replicated,
            entries: HashMap::new(),
            next_check: None,
            counter: 1,
            expiration_ms: DEFAULT_EXPIRATION_MS,
        }
    }

    /// Destinations went away: lblcr sets forget them (lblc entries just stop matching).
    pub(crate) fn dests_changed<D: SchedTarget>(&mut self, dests: &[D]) {
        for e in self.entries.values_mut() {
            if let Entry::Lblcr { set, .. } = e {
                set.ids.retain(|&id| position(dests, id).is_some());
            }
        }
    }

    /// Picks a destination for a packet to `key.dst`.
    pub(crate) fn schedule<D: SchedTarget>(
        &mut self,
        dests: &[D],
        key: &SchedKey,
    ) -> Option<usize> {
        if self.replicated {
            self.schedule_lblcr(dests, key)
        } else {
            self.schedule_lblc(dests, key)
        }
    }

    /// `ip_vs_lblc_schedule`.
    fn schedule_lblc<D: SchedTarget>(&mut self, dests: &[D], key: &SchedKey) -> Option<usize> {
        let now = key.now_ms;
        if let Some(Entry::Lblc { dest, lastuse }) = self.entries.get_mut(&key.dst) {
            *lastuse = now;
            if let Some(i) = position(dests, *dest) {
                let d = &dests[i];
                if d.weight() > 0 && !overloaded_here(d, dests) {
                    return Some(i);
                }
            }
        }
        let i = least_loaded(dests)?;
        self.entries.insert(
            key.dst,
            Entry::Lblc {
                dest: dests[i].id(),
                lastuse: now,
            },
        );
        Some(i)
    }

    /// `ip_vs_lblcr_schedule`.
    fn schedule_lblcr<D: SchedTarget>(&mut self, dests: &[D], key: &SchedKey) -> Option<usize> {
        let now = key.now_ms;
        let expiration = self.expiration_ms;
        if let Some(Entry::Lblcr { set, lastuse }) = self.entries.get_mut(&key.dst) {
            *lastuse = now;
            let min = set_min(set, dests);
            if set.ids.len() > 1 && now > set.lastmod.saturating_add(expiration) {
                if let Some(m) = set_max(set, dests) {
                    set.ids.retain(|&id| id != m);
                    set.lastmod = now;
                }
            }
            if let Some(i) = min {
                if !overloaded_here(&dests[i], dests) {
                    return Some(i);
                }
            }
            let i = least_loaded(dests)?;
            let id = dests[i].id();
            if !set.ids.contains(&id) {
                set.ids.insert(0, id);
                set.lastmod = now;
            }
            return Some(i);
        }
        let i = least_loaded(dests)?;
        self.entries.insert(
            key.dst,
            Entry::Lblcr {
                set: DestSet {
                    ids: vec![dests[i].id()],
                    lastmod: now,
                },
                lastuse: now,
            },
        );
        Some(i)
    }

    /// Runs every periodic check due by `now` (`ip_vs_lblc_check_expire`).
    pub(crate) fn expire(&mut self, now: u64) {
        let mut due = *self.next_check.get_or_insert(now + CHECK_INTERVAL_MS);
        // A clock that jumped far ahead: the checks it skipped would find the same entries.
        if now.saturating_sub(due) > 100 * 24 * 60 * CHECK_INTERVAL_MS {
            due = now;
        }
        while due <= now {
            self.check(due);
            due += CHECK_INTERVAL_MS;
        }
        self.next_check = Some(due);
    }

    fn check(&mut self, now: u64) {
        let keys: Vec<[u8; 16]> = self.entries.keys().copied().collect();
        let lastuses: Vec<u64> = keys.iter().map(|k| self.entries[k].lastuse()).collect();
        let drop = locality_check(&mut self.counter, &lastuses, now, self.expiration_ms);
        for (key, gone) in keys.iter().zip(drop) {
            if gone {
                self.entries.remove(key);
            }
        }
    }
}

/// One periodic check of an lblc/lblcr table (`ip_vs_lblc_check_expire`), every
/// [`CHECK_INTERVAL_MS`]: which of the entries (given by their last use, ms) go at `now`.
/// Every 30th check drops those unused for `expiration_ms`; the others, when the table holds
/// more than its maximum size, drop up to a third more than the excess of those unused for six
/// minutes. `counter` is the table's check counter (1 for a new table). The engine's tables
/// and the BPF program's (aged by rvsd) follow this one rule.
pub fn locality_check(
    counter: &mut u32,
    lastuse_ms: &[u64],
    now: u64,
    expiration_ms: u64,
) -> Vec<bool> {
    if *counter % COUNT_FOR_FULL_EXPIRATION == 0 {
        *counter = 1;
        return lastuse_ms
            .iter()
            .map(|&l| l.saturating_add(expiration_ms) <= now)
            .collect();
    }
    if lastuse_ms.len() <= MAX_SIZE {
        *counter += 1;
        return vec![false; lastuse_ms.len()];
    }
    let mut goal = ((lastuse_ms.len() - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2);
    lastuse_ms
        .iter()
        .map(|&l| {
            if goal == 0 || now < l.saturating_add(ENTRY_TIMEOUT_MS) {
                return false;
            }
            goal -= 1;
            true
        })
        .collect()
}

/// `ip_vs_dest_set_min`: the weighted least-loaded usable member.
fn set_min<D: SchedTarget>(set: &DestSet, dests: &[D]) -> Option<usize> {
    let members = set
        .ids
        .iter()
        .filter_map(|&id| position(dests, id).map(|i| (i, &dests[i])));
    crate::sched_core::weighted_least(members, crate::sched_core::overhead)
}

/// `ip_vs_dest_set_max`: the weighted most-loaded member (weight > 0).
fn set_max<D: SchedTarget>(set: &DestSet, dests: &[D]) -> Option<u32> {
    let mut most: Option<(&D, i64)> = None;
    for d in set
        .ids
        .iter()
        .filter_map(|&id| position(dests, id).map(|i| &dests[i]))
    {
        if d.weight() == 0 {
            continue;
        }
        let doh = crate::sched_core::overhead(d);
        match most {
            None => most = Some((d, doh)),
            Some((m, moh)) => {
                if (moh as i128) * (d.weight() as i128) < (doh as i128) * (m.weight() as i128) {
                    most = Some((d, doh));
                }
            }
        }
    }
    most.map(|(d, _)| d.id())
}

#[cfg(test)]
impl Locality {
    /// Entries in the table.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sets the expiration (the `lblc_expiration` sysctl) for tests.
    pub(crate) fn set_expiration(&mut self, ms: u64) {
        self.expiration_ms = ms;
    }

    /// The lblcr set of `dst`, as destination ids (most recent first).
    pub(crate) fn set_of(&self, dst: &[u8; 16]) -> Option<Vec<u32>> {
        match self.entries.get(dst)? {
            Entry::Lblcr { set, .. } => Some(set.ids.clone()),
            Entry::Lblc { dest, .. } => Some(vec![*dest]),
        }
    }
}
