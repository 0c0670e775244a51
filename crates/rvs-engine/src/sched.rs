//! Schedulers with IPVS's exact selection rules: rr (ip_vs_rr.c), wrr (ip_vs_wrr.c),
//! lc (ip_vs_lc.c), wlc (ip_vs_wlc.c), sed (ip_vs_sed.c), nq (ip_vs_nq.c), fo (ip_vs_fo.c),
//! ovf (ip_vs_ovf.c), twos (ip_vs_twos.c), and through [`crate::sched_hash`] and
//! [`crate::sched_locality`] sh, dh, mh, lblc and lblcr.
//!
//! They work on a destination list in configuration order through [`SchedTarget`], so the
//! same code serves the engine's live destinations and plain test tables. Tables that cost
//! something to build (wrr's mark, sh/dh/mh lookup tables) are built in [`SchedState::new`] and
//! [`SchedState::dests_changed`], on the control path, never while scheduling.

use crate::sched_core::{overhead, usable, weighted_least, SchedKey, SchedTarget};
use crate::sched_hash::{BucketTable, MhTable};
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

/// The wrr "mark": current list position, current weight, max weight and gcd step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WrrMark {
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
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

impl WrrMark {
    fn new<D: SchedTarget>(dests: &[D]) -> Self {
        let di = gcd_weight(dests);
        let mw = max_weight(dests) - (di - 1);
        WrrMark {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }

    /// `ip_vs_wrr_dest_changed`.
    fn dests_changed<D: SchedTarget>(&mut self, dests: &[D]) {
        self.cl = None;
        self.di = gcd_weight(dests);
        self.mw = max_weight(dests) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// `ip_vs_wrr_schedule`.
    fn schedule<D: SchedTarget>(&mut self, dests: &[D]) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let last = self.cl.filter(|&i| i < dests.len());
        let mut cur = last;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        // Bounded: each outer round lowers cw by di >= 1 or ends the search.
        loop {
            let start = cur.map_or(0, |i| i + 1);
            for (i, d) in dests.iter().enumerate().skip(start) {
                if !d.overloaded() && d.weight() as i64 >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            cur = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

/// A small seeded generator (xorshift64*) for twos, so tests can replay its choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}

/// Per-service scheduler state, shared by all workers behind a mutex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchedState {
    kind: SchedulerKind,
    flags: SchedFlags,
    /// rr: position and id of the last pick.
    rr_last: Option<(usize, u32)>,
    wrr: WrrMark,
    /// sh or dh buckets.
    buckets: BucketTable,
    mh: MhTable,
    mh_size: u32,
    locality: Option<Locality>,
    rng: Rng,
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
        let mut s = SchedState {
            kind,
            flags,
            rr_last: None,
            wrr: WrrMark::new(dests),
            buckets: BucketTable::default(),
            mh: MhTable::default(),
            mh_size,
            locality: match kind {
                SchedulerKind::Lblc => Some(Locality::new(false)),
                SchedulerKind::Lblcr => Some(Locality::new(true)),
                _ => None,
            },
            rng: Rng::new(seed),
        };
        s.build_tables(dests);
        s
    }

    fn build_tables<D: SchedTarget>(&mut self, dests: &[D]) {
        match self.kind {
            SchedulerKind::Sh => self.buckets = BucketTable::build_sh(dests),
            SchedulerKind::Dh => self.buckets = BucketTable::build_dh(dests),
            SchedulerKind::Mh => self.mh = MhTable::build(dests, self.mh_size),
            _ => {}
        }
    }

    /// The scheduler this state belongs to.
    pub(crate) fn kind(&self) -> SchedulerKind {
        self.kind
    }

    /// Sets the scheduler flags (`-E -b`), keeping the tables.
    pub(crate) fn set_flags(&mut self, flags: SchedFlags) {
        self.flags = flags;
    }

    /// Destinations were added, removed or re-weighted: the tables are rebuilt here.
    pub(crate) fn dests_changed<D: SchedTarget>(&mut self, dests: &[D]) {
        if self.kind == SchedulerKind::Wrr {
            self.wrr.dests_changed(dests);
        }
        if let Some(l) = self.locality.as_mut() {
            l.dests_changed(dests);
        }
        self.build_tables(dests);
    }

    /// The lblc/lblcr table (tests).
    #[cfg(test)]
    pub(crate) fn locality_mut(&mut self) -> Option<&mut Locality> {
        self.locality.as_mut()
    }

    /// The mh table (tests).
    #[cfg(test)]
    pub(crate) fn mh_table(&self) -> &MhTable {
        &self.mh
    }

    /// Periodic ageing of lblc/lblcr tables.
    pub(crate) fn expire(&mut self, now_ms: u64) {
        if let Some(l) = self.locality.as_mut() {
            l.expire(now_ms);
        }
    }

    /// Picks a destination index, or `None` when none is usable.
    pub(crate) fn schedule<D: SchedTarget>(
        &mut self,
        dests: &[D],
        key: &SchedKey,
    ) -> Option<usize> {
        let (port, fallback) = (self.flags.port(), self.flags.fallback());
        match self.kind {
            SchedulerKind::Rr => self.schedule_rr(dests),
            SchedulerKind::Wrr => self.wrr.schedule(dests),
            SchedulerKind::Lc => schedule_lc(dests),
            SchedulerKind::Wlc => weighted_least(dests.iter().enumerate(), overhead),
            SchedulerKind::Sed => weighted_least(dests.iter().enumerate(), sed_overhead),
            SchedulerKind::Nq => schedule_nq(dests),
            SchedulerKind::Fo => schedule_fo(dests),
            SchedulerKind::Ovf => schedule_ovf(dests),
            SchedulerKind::Twos => schedule_twos(dests, &mut self.rng),
            SchedulerKind::Sh => self.buckets.schedule_sh(dests, key, port, fallback),
            SchedulerKind::Dh => self.buckets.schedule_dh(dests, key),
            SchedulerKind::Mh => self.mh.schedule(dests, key, port, fallback),
            SchedulerKind::Lblc | SchedulerKind::Lblcr => {
                self.locality.as_mut()?.schedule(dests, key)
            }
            SchedulerKind::None => None,
        }
    }

    fn schedule_rr<D: SchedTarget>(&mut self, dests: &[D]) -> Option<usize> {
        let n = dests.len();
        if n == 0 {
            return None;
        }
        // Start after the last pick; when it was removed, IPVS moved the mark to its
        // predecessor, so the next candidate is whatever now sits at its old position.
        let start = match self.rr_last {
            None => 0,
            Some((pos, id)) => {
                if dests.get(pos).is_some_and(|d| d.id() == id) {
                    pos + 1
                } else if let Some(p) = dests.iter().position(|d| d.id() == id) {
                    p + 1
                } else {
                    pos
                }
            }
        };
        for k in 0..n {
            let i = (start + k) % n;
            if usable(&dests[i]) {
                self.rr_last = Some((i, dests[i].id()));
                return Some(i);
            }
        }
        None
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

/// `ip_vs_twos_schedule`: two weighted random picks in `[0, total weight]`, the one with the
/// smaller `overhead / weight` wins (the first on ties).
fn schedule_twos<D: SchedTarget>(dests: &[D], rng: &mut Rng) -> Option<usize> {
    let mut total: i64 = 0;
    let mut last = None;
    for (i, d) in dests.iter().enumerate() {
        if usable(d) {
            total += d.weight() as i64;
            last = Some(i);
        }
    }
    let mut choice1 = last?;
    total += 1;
    let mut r1 = rng.next_u32() as i64 % total;
    let mut r2 = rng.next_u32() as i64 % total;
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
    Some(choice1)
}
