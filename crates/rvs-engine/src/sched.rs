//! Schedulers with IPVS's exact selection rules: rr (ip_vs_rr.c), wrr (ip_vs_wrr.c),
//! lc (ip_vs_lc.c), wlc (ip_vs_wlc.c), sed (ip_vs_sed.c), nq (ip_vs_nq.c), fo (ip_vs_fo.c),
//! ovf (ip_vs_ovf.c), twos (ip_vs_twos.c), and through [`crate::sched_hash`] and
//! [`crate::sched_locality`] sh, dh, mh, lblc and lblcr.
//!
//! They work on a destination list in configuration order through [`SchedTarget`], so the
//! same code serves the engine's live destinations and plain test tables. A [`SchedState`]
//! belongs to one destination list of one configuration snapshot: what costs something to
//! build (wrr's maximum weight and gcd step, the sh/dh/mh lookup tables) is built with it, on
//! the control path, and only read when scheduling. What scheduling changes is a cursor (rr's
//! and wrr's position, twos's random state) in one atomic word, moved by compare-and-swap, so
//! no lock is taken per connection; only lblc/lblcr, whose per-address table is state the data
//! plane writes, lock it.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::sched_core::{overhead, usable, weighted_least, SchedKey, SchedTarget};
use crate::sched_hash::{BucketTable, HashTable, MhTable};
use crate::sched_locality::Locality;
use crate::spec::{SchedFlags, SchedulerKind};

/// sed's and nq's overhead (`ip_vs_sed_dest_overhead`): `active + 1`.
fn sed_overhead<D: SchedTarget>(d: &D) -> i64 {
    d.active() as i64 + 1
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Two fields in one cursor word: `hi` (below 2^31) and an optional 32-bit `lo`.
fn pack(hi: u32, lo: Option<u32>) -> u64 {
    (u64::from(hi) << 33) | lo.map_or(0, |v| (1 << 32) | u64::from(v))
}

/// The fields [`pack`] put in a cursor word.
fn unpack(word: u64) -> (u32, Option<u32>) {
    let lo = (word & (1 << 32) != 0).then_some(word as u32);
    ((word >> 33) as u32, lo)
}

/// rr's cursor: where the next search starts and the id of the last pick (`None`: the list
/// head, IPVS's `sched_data` pointing at `svc->destinations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RrMark {
    start: u32,
    last: Option<u32>,
}

impl RrMark {
    fn load(word: u64) -> Self {
        let (start, last) = unpack(word);
        RrMark { start, last }
    }

    fn word(self) -> u64 {
        pack(self.start, self.last)
    }

    /// The mark over a changed list: after the last pick where it now stands, or, when it was
    /// removed, after its predecessor (`ip_vs_rr_del_dest`), which leaves the search at the
    /// removed server's old position.
    fn carry<D: SchedTarget>(self, dests: &[D]) -> Self {
        let Some(id) = self.last else {
            return RrMark {
                start: 0,
                last: None,
            };
        };
        if let Some(p) = dests.iter().position(|d| d.id() == id) {
            return RrMark {
                start: p as u32 + 1,
                last: Some(id),
            };
        }
        let pos = (self.start as usize).saturating_sub(1).min(dests.len());
        RrMark {
            start: pos as u32,
            last: pos.checked_sub(1).map(|p| dests[p].id()),
        }
    }
}

/// The wrr "mark": current list position (`None`: the list head) and current weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WrrMark {
    cl: Option<u32>,
    cw: i64,
}

impl WrrMark {
    fn load(word: u64) -> Self {
        let (cw, cl) = unpack(word);
        WrrMark {
            cl,
            cw: i64::from(cw),
        }
    }

    fn word(self) -> u64 {
        // 0 <= cw <= mw <= i32::MAX.
        pack(self.cw.clamp(0, i64::from(i32::MAX)) as u32, self.cl)
    }
}

fn gcd_weight<D: SchedTarget>(dests: &[D]) -> i64 {
    let g = dests
        .iter()
        .map(|d| d.weight() as i64)
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
    if g > 0 {
        g
    } else {
        1
    }
}

fn max_weight<D: SchedTarget>(dests: &[D]) -> i64 {
    dests.iter().map(|d| d.weight() as i64).max().unwrap_or(0)
}

/// The longest wrr sequence built into a snapshot (8 bytes a step). Weights whose sum over
/// their gcd is larger get no sequence: wrr then walks the list as IPVS does.
const WRR_MAX_STEPS: u32 = 4096;

/// One step of wrr's sequence: the destination at `pos`, taken when the current weight is
/// `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WrrStep {
    level: u32,
    pos: u32,
}

/// wrr's table, fixed for a destination list: the maximum weight (less the gcd step plus one),
/// the gcd step and, when short enough, the whole sequence IPVS's walk goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WrrTable {
    mw: i64,
    di: i64,
    /// Every (current weight, destination) pair the walk may take, in its order: for each
    /// current weight from `mw` down by `di`, the destinations of at least that weight in list
    /// order. With it the cursor's `cl` is a step index instead of a list position.
    steps: Option<Box<[WrrStep]>>,
}

impl WrrTable {
    fn build<D: SchedTarget>(dests: &[D], max_steps: u32) -> Self {
        let di = gcd_weight(dests);
        let mw = max_weight(dests) - (di - 1);
        // Each weight w (a multiple of di) is at least mw - k * di for w / di values of k.
        let len: i64 = dests.iter().map(|d| d.weight() as i64 / di).sum();
        let steps = (len <= i64::from(max_steps)).then(|| wrr_steps(dests, mw, di));
        WrrTable { mw, di, steps }
    }

    /// The mark of a new service (`ip_vs_wrr_init_svc`): the head, at the maximum weight.
    fn first_mark(&self) -> WrrMark {
        WrrMark {
            cl: None,
            cw: self.mw,
        }
    }

    /// The mark over this (changed) list from the previous list's (`ip_vs_wrr_dest_changed`):
    /// back to the head, the current weight kept within the new steps.
    fn carry(&self, old: WrrMark) -> WrrMark {
        let cw = if old.cw > self.mw || old.cw == 0 {
            self.mw
        } else if self.di > 1 {
            (old.cw / self.di) * self.di + 1
        } else {
            old.cw
        };
        WrrMark { cl: None, cw }
    }

    /// `ip_vs_wrr_schedule` from `mark`: the pick and the mark to store.
    fn schedule<D: SchedTarget>(&self, mark: WrrMark, dests: &[D]) -> (Option<usize>, WrrMark) {
        if self.mw == 0 {
            return (None, mark);
        }
        match &self.steps {
            Some(steps) => self.follow(steps, mark, dests),
            None => self.walk(mark, dests),
        }
    }

    /// `ip_vs_wrr_schedule` over the precomputed sequence (`cl`: a step index): the first
    /// usable step after the mark. From the head or above the lowest weight the search ends
    /// with the sequence, and a miss goes back to the head; from a pick at the lowest weight
    /// it goes round once, back to that pick, and a miss keeps the mark.
    fn follow<D: SchedTarget>(
        &self,
        steps: &[WrrStep],
        mark: WrrMark,
        dests: &[D],
    ) -> (Option<usize>, WrrMark) {
        let usable_step = |q: usize| {
            let s = steps[q];
            dests
                .get(s.pos as usize)
                .is_some_and(|d| !d.overloaded() && d.weight() >= s.level)
        };
        let n = steps.len();
        let last = mark.cl.map(|p| p as usize).filter(|&p| p < n);
        let found = match last {
            Some(p) if mark.cw <= self.di => (1..=n).map(|k| (p + k) % n).find(|&q| usable_step(q)),
            _ => {
                let start = last.map_or_else(
                    || steps.partition_point(|s| i64::from(s.level) > mark.cw),
                    |p| p + 1,
                );
                (start..n).find(|&q| usable_step(q))
            }
        };
        match found {
            Some(q) => {
                let s = steps[q];
                let next = WrrMark {
                    cl: Some(q as u32),
                    cw: i64::from(s.level),
                };
                (Some(s.pos as usize), next)
            }
            None if last.is_some() && mark.cw <= self.di => (None, mark),
            None => (None, self.first_mark()),
        }
    }

    /// `ip_vs_wrr_schedule` walking the list (`cl`: a list position), for sequences too long
    /// to build.
    fn walk<D: SchedTarget>(&self, mut mark: WrrMark, dests: &[D]) -> (Option<usize>, WrrMark) {
        let last = mark.cl.map(|i| i as usize).filter(|&i| i < dests.len());
        let mut cur = last;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        // Bounded: each outer round lowers cw by di >= 1 or ends the search.
        loop {
            let start = cur.map_or(0, |i| i + 1);
            for (i, d) in dests.iter().enumerate().skip(start) {
                if !d.overloaded() && d.weight() as i64 >= mark.cw {
                    mark.cl = Some(i as u32);
                    return (Some(i), mark);
                }
                if stop == Some(i) {
                    mark.cl = Some(i as u32);
                    return (None, mark);
                }
            }
            cur = None;
            mark.cw -= self.di;
            if mark.cw <= 0 {
                mark.cw = self.mw;
                if last_pass || last.is_none() {
                    mark.cl = None;
                    return (None, mark);
                }
                restarted = true;
            }
            last_pass = mark.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

/// wrr's sequence (see [`WrrTable::steps`]).
fn wrr_steps<D: SchedTarget>(dests: &[D], mw: i64, di: i64) -> Box<[WrrStep]> {
    let levels = (0..).map(|k| mw - k * di).take_while(|&cw| cw > 0);
    levels
        .flat_map(|cw| {
            dests
                .iter()
                .enumerate()
                .filter(move |(_, d)| d.weight() as i64 >= cw)
                .map(move |(i, _)| WrrStep {
                    level: cw as u32,
                    pos: i as u32,
                })
        })
        .collect()
}

/// A small seeded generator (xorshift64*) for twos, so tests can replay its choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (made odd: the state must not be zero).
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next 32 random bits.
    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}

/// The immutable part of a service's scheduler, built for one destination list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Table {
    /// A scheduler without a table.
    Plain,
    Wrr(WrrTable),
    Sh(BucketTable),
    Dh(BucketTable),
    Mh(MhTable),
}

/// How large tables may be: mh's size and the longest wrr sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sizes {
    mh: u32,
    wrr_steps: u32,
}

impl Table {
    fn build<D: SchedTarget>(kind: SchedulerKind, sizes: Sizes, dests: &[D]) -> Self {
        match kind {
            SchedulerKind::Wrr => Table::Wrr(WrrTable::build(dests, sizes.wrr_steps)),
            SchedulerKind::Sh => Table::Sh(BucketTable::build_sh(dests)),
            SchedulerKind::Dh => Table::Dh(BucketTable::build_dh(dests)),
            SchedulerKind::Mh => Table::Mh(MhTable::build(dests, sizes.mh)),
            _ => Table::Plain,
        }
    }
}

/// wrr's sequence over one destination list: every (current weight, position) pair IPVS's walk
/// may take, in its order (current weight from `mw` down by `di`, then list order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrrSequence {
    /// The maximum weight less the gcd step plus one: where the walk restarts.
    pub mw: u32,
    /// The gcd of the weights: the step the current weight goes down by.
    pub di: u32,
    /// (current weight, destination position) per step.
    pub steps: Vec<(u32, u32)>,
}

/// A cursor word carried from an earlier destination list to `table`'s (`dests`).
fn carry_word<D: SchedTarget>(kind: SchedulerKind, table: &Table, old: u64, dests: &[D]) -> u64 {
    match table {
        Table::Wrr(t) => t.carry(WrrMark::load(old)).word(),
        _ if kind == SchedulerKind::Rr => RrMark::load(old).carry(dests).word(),
        _ => old,
    }
}

/// A cursor word on a cache line of its own: workers move it on every new connection, and the
/// read-only fields around it must not bounce with it.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Cursor(AtomicU64);

/// A service's scheduler over one destination list (the one of its configuration snapshot):
/// tables fixed when it is built, a cursor that moves without a lock, and for lblc/lblcr the
/// per-address table shared with the service's other snapshots.
#[derive(Debug)]
pub(crate) struct SchedState {
    kind: SchedulerKind,
    flags: SchedFlags,
    sizes: Sizes,
    table: Table,
    /// rr: an [`RrMark`]; wrr: a [`WrrMark`]; twos: the [`Rng`] state; otherwise unused.
    cursor: Cursor,
    /// lblc/lblcr's table, shared with the service's previous and next snapshots.
    locality: Option<Arc<Mutex<Locality>>>,
}

impl SchedState {
    /// Fresh state for a service (`init_service`), its tables built for `dests`.
    pub(crate) fn new<D: SchedTarget>(
        kind: SchedulerKind,
        flags: SchedFlags,
        mh_size: u32,
        seed: u64,
        dests: &[D],
    ) -> Self {
        let sizes = Sizes {
            mh: mh_size,
            wrr_steps: WRR_MAX_STEPS,
        };
        let table = Table::build(kind, sizes, dests);
        let cursor = match &table {
            Table::Wrr(t) => t.first_mark().word(),
            _ if kind == SchedulerKind::Twos => Rng::new(seed).0,
            _ => RrMark {
                start: 0,
                last: None,
            }
            .word(),
        };
        SchedState {
            kind,
            flags,
            sizes,
            table,
            cursor: Cursor(AtomicU64::new(cursor)),
            locality: match kind {
                SchedulerKind::Lblc => Some(Arc::new(Mutex::new(Locality::new(false)))),
                SchedulerKind::Lblcr => Some(Arc::new(Mutex::new(Locality::new(true)))),
                _ => None,
            },
        }
    }

    /// The scheduler this state belongs to.
    pub(crate) fn kind(&self) -> SchedulerKind {
        self.kind
    }

    /// The cursor word as it stands: rr's and wrr's marks, twos's generator (others: unused).
    /// Its layout: bits 33.. rr's next start / wrr's current weight, bit 32 set when the low 32
    /// bits hold rr's last pick (a destination id) / wrr's step index.
    pub(crate) fn cursor_word(&self) -> u64 {
        self.cursor.0.load(Ordering::Relaxed)
    }

    /// `old`, this scheduler's cursor word over an earlier destination list, carried over to
    /// this state's list as IPVS's hooks carry it (what [`SchedState::rebuilt`] does), for a
    /// data plane that ran the scheduler meanwhile.
    pub(crate) fn carry_cursor<D: SchedTarget>(&self, old: u64, dests: &[D]) -> u64 {
        carry_word(self.kind, &self.table, old, dests)
    }

    /// The sh, dh or mh lookup table; `None` for other schedulers.
    pub(crate) fn hash_table(&self) -> Option<HashTable> {
        let entries = match &self.table {
            Table::Sh(b) | Table::Dh(b) => b.entries(),
            Table::Mh(m) => m.entries(),
            _ => return None,
        };
        Some(HashTable { entries })
    }

    /// wrr's sequence; `None` for other schedulers and for sequences too long to build.
    pub(crate) fn wrr_sequence(&self) -> Option<WrrSequence> {
        match &self.table {
            Table::Wrr(t) => t.steps.as_ref().map(|steps| WrrSequence {
                mw: u32::try_from(t.mw.max(0)).unwrap_or(u32::MAX),
                di: u32::try_from(t.di.max(1)).unwrap_or(u32::MAX),
                steps: steps.iter().map(|s| (s.level, s.pos)).collect(),
            }),
            _ => None,
        }
    }

    /// The same scheduler with other flags (`-E -b`): the tables and the cursor as they are.
    pub(crate) fn with_flags(&self, flags: SchedFlags) -> Self {
        SchedState {
            kind: self.kind,
            flags,
            sizes: self.sizes,
            table: self.table.clone(),
            cursor: Cursor(AtomicU64::new(self.cursor_word())),
            locality: self.locality.clone(),
        }
    }

    /// The scheduler for `dests`, the service's changed destination list (added, removed or
    /// re-weighted servers): tables built for it, the cursor carried over as IPVS's
    /// `add_dest` / `del_dest` / `upd_dest` hooks carry it.
    pub(crate) fn rebuilt<D: SchedTarget>(&self, dests: &[D]) -> Self {
        let table = Table::build(self.kind, self.sizes, dests);
        let cursor = carry_word(self.kind, &table, self.cursor_word(), dests);
        if self.kind == SchedulerKind::Lblcr {
            if let Some(l) = &self.locality {
                // The sets forget removed servers: a short walk under the table's lock.
                l.lock().dests_changed(dests);
            }
        }
        SchedState {
            kind: self.kind,
            flags: self.flags,
            sizes: self.sizes,
            table,
            cursor: Cursor(AtomicU64::new(cursor)),
            locality: self.locality.clone(),
        }
    }

    /// Destinations changed (tests): `self` becomes [`SchedState::rebuilt`] for `dests`.
    #[cfg(test)]
    pub(crate) fn dests_changed<D: SchedTarget>(&mut self, dests: &[D]) {
        *self = self.rebuilt(dests);
    }

    /// This state with wrr sequences of at most `max` steps, its table rebuilt for `dests`
    /// (tests: `0` makes wrr walk the list).
    #[cfg(test)]
    pub(crate) fn with_wrr_max_steps<D: SchedTarget>(mut self, max: u32, dests: &[D]) -> Self {
        self.sizes.wrr_steps = max;
        self.table = Table::build(self.kind, self.sizes, dests);
        self
    }

    /// The lblc/lblcr table (tests; `None` too while another state shares it).
    #[cfg(test)]
    pub(crate) fn locality_mut(&mut self) -> Option<&mut Locality> {
        Arc::get_mut(self.locality.as_mut()?).map(Mutex::get_mut)
    }

    /// The mh table (tests; panics for another scheduler).
    #[cfg(test)]
    pub(crate) fn mh_table(&self) -> &MhTable {
        match &self.table {
            Table::Mh(t) => t,
            _ => panic!("{} has no mh table", self.kind.name()),
        }
    }

    /// Periodic ageing of lblc/lblcr tables.
    pub(crate) fn expire(&self, now_ms: u64) {
        if let Some(l) = &self.locality {
            l.lock().expire(now_ms);
        }
    }

    /// Picks a destination index in `dests` (the list this state was built for), or `None`
    /// when none is usable.
    pub(crate) fn schedule<D: SchedTarget>(&self, dests: &[D], key: &SchedKey) -> Option<usize> {
        let (port, fallback) = (self.flags.port(), self.flags.fallback());
        match &self.table {
            Table::Wrr(t) => self.schedule_wrr(t, dests),
            Table::Sh(b) => b.schedule_sh(dests, key, port, fallback),
            Table::Dh(b) => b.schedule_dh(dests, key),
            Table::Mh(m) => m.schedule(dests, key, port, fallback),
            Table::Plain => self.schedule_plain(dests, key),
        }
    }

    /// The schedulers without a table.
    fn schedule_plain<D: SchedTarget>(&self, dests: &[D], key: &SchedKey) -> Option<usize> {
        match self.kind {
            SchedulerKind::Rr => self.schedule_rr(dests),
            SchedulerKind::Lc => schedule_lc(dests),
            SchedulerKind::Wlc => weighted_least(dests.iter().enumerate(), overhead),
            SchedulerKind::Sed => weighted_least(dests.iter().enumerate(), sed_overhead),
            SchedulerKind::Nq => schedule_nq(dests),
            SchedulerKind::Fo => schedule_fo(dests),
            SchedulerKind::Ovf => schedule_ovf(dests),
            SchedulerKind::Twos => self.schedule_twos(dests),
            SchedulerKind::Lblc | SchedulerKind::Lblcr => {
                self.locality.as_ref()?.lock().schedule(dests, key)
            }
            SchedulerKind::Wrr
            | SchedulerKind::Sh
            | SchedulerKind::Dh
            | SchedulerKind::Mh
            | SchedulerKind::None => None,
        }
    }

    /// Moves the cursor from the word it holds to `step`'s, retrying when another worker moved
    /// it first, so concurrent picks follow the sequence one lock would give. Returns the pick.
    fn advance(&self, step: impl Fn(u64) -> (Option<usize>, u64)) -> Option<usize> {
        let mut cur = self.cursor_word();
        loop {
            let (pick, next) = step(cur);
            if next == cur {
                return pick;
            }
            match self.cursor.0.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return pick,
                Err(now) => cur = now,
            }
        }
    }

    fn schedule_wrr<D: SchedTarget>(&self, t: &WrrTable, dests: &[D]) -> Option<usize> {
        self.advance(|word| {
            let (pick, mark) = t.schedule(WrrMark::load(word), dests);
            (pick, mark.word())
        })
    }

    /// `ip_vs_rr_schedule`: the first usable server from the mark on, cyclically.
    fn schedule_rr<D: SchedTarget>(&self, dests: &[D]) -> Option<usize> {
        let n = dests.len();
        self.advance(|word| {
            let start = RrMark::load(word).start as usize;
            let Some(i) = (0..n).map(|k| (start + k) % n).find(|&i| usable(&dests[i])) else {
                return (None, word);
            };
            let next = RrMark {
                start: i as u32 + 1,
                last: Some(dests[i].id()),
            };
            (Some(i), next.word())
        })
    }

    /// `ip_vs_twos_schedule`, its two random draws taken from the cursor.
    fn schedule_twos<D: SchedTarget>(&self, dests: &[D]) -> Option<usize> {
        let (total, last) = twos_total(dests)?;
        let draw = |s: u64| {
            let mut r = Rng(s);
            (r.next_u32(), r.next_u32(), r.0)
        };
        let before = self
            .cursor
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| Some(draw(s).2))
            .unwrap_or_else(|s| s);
        let (r1, r2, _) = draw(before);
        Some(twos_pick(dests, total, last, r1, r2))
    }
}

fn schedule_lc<D: SchedTarget>(dests: &[D]) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !usable(d) {
            continue;
        }
        let doh = overhead(d);
        if least.is_none_or(|(_, loh)| doh < loh) {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

/// `ip_vs_nq_schedule`: the first idle (no active connection) usable server, else the least
/// `(active + 1) / weight`.
fn schedule_nq<D: SchedTarget>(dests: &[D]) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !usable(d) {
            continue;
        }
        let doh = sed_overhead(d);
        if d.active() == 0 {
            return Some(i);
        }
        let better = least.is_none_or(|(l, loh)| {
            (loh as i128) * (d.weight() as i128) > (doh as i128) * (dests[l].weight() as i128)
        });
        if better {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

/// `ip_vs_fo_schedule`: the first of the highest weight among usable servers.
fn schedule_fo<D: SchedTarget>(dests: &[D]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, d) in dests.iter().enumerate() {
        if usable(d) && best.is_none_or(|b| d.weight() > dests[b].weight()) {
            best = Some(i);
        }
    }
    best
}

/// `ip_vs_ovf_schedule`: the first of the highest weight among servers whose active
/// connections do not exceed their weight.
fn schedule_ovf<D: SchedTarget>(dests: &[D]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, d) in dests.iter().enumerate() {
        if !usable(d) || d.active() > d.weight() {
            continue;
        }
        if best.is_none_or(|b| d.weight() > dests[b].weight()) {
            best = Some(i);
        }
    }
    best
}

/// twos's total weight of usable servers plus one, and the last usable one (`None`: no
/// usable server, and no random draw).
fn twos_total<D: SchedTarget>(dests: &[D]) -> Option<(i64, usize)> {
    let mut total: i64 = 0;
    let mut last = None;
    for (i, d) in dests.iter().enumerate() {
        if usable(d) {
            total += d.weight() as i64;
            last = Some(i);
        }
    }
    Some((total + 1, last?))
}

/// `ip_vs_twos_schedule`'s choice: two weighted random picks in `[0, total weight]` (from the
/// draws `r1`, `r2`), the one with the smaller `overhead / weight` wins (the first on ties);
/// `last` when no pick lands.
fn twos_pick<D: SchedTarget>(dests: &[D], total: i64, last: usize, r1: u32, r2: u32) -> usize {
    let mut choice1 = last;
    let mut r1 = r1 as i64 % total;
    let mut r2 = r2 as i64 % total;
    let mut c1: Option<(usize, i64, i64)> = None;
    let mut c2: Option<(usize, i64, i64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !usable(d) {
            continue;
        }
        let w = d.weight() as i64;
        r1 -= w;
        r2 -= w;
        if r1 <= 0 && c1.is_none() {
            c1 = Some((i, w, overhead(d)));
        }
        if r2 <= 0 && c2.is_none() {
            c2 = Some((i, w, overhead(d)));
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    // Unset picks keep IPVS's initial values: weight -1, overhead 0.
    let (w1, oh1) = c1.map_or((-1, 0), |(i, w, oh)| {
        choice1 = i;
        (w, oh)
    });
    if let Some((i, w2, oh2)) = c2 {
        if (w2 as i128) * (oh1 as i128) > (w1 as i128) * (oh2 as i128) {
            choice1 = i;
        }
    }
    choice1
}
