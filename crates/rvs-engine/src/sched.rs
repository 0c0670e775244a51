//! Schedulers with IPVS's exact selection rules: rr (ip_vs_rr.c), wrr (ip_vs_wrr.c),
//! lc (ip_vs_lc.c), wlc (ip_vs_wlc.c).
//!
//! They work on a destination list in configuration order through [`SchedTarget`], so the
//! same code serves the engine's live destinations and plain test tables.

use crate::types::SchedulerKind;

/// What a scheduler needs to know about a destination.
pub(crate) trait SchedTarget {
    /// Stable identity (survives configuration snapshots).
    fn id(&self) -> u32;
    /// Current weight.
    fn weight(&self) -> u32;
    /// Over its upper connection threshold.
    fn overloaded(&self) -> bool;
    /// Active connections.
    fn active(&self) -> u32;
    /// Inactive connections.
    fn inactive(&self) -> u32;
}

/// IPVS's connection overhead: `active * 256 + inactive`.
fn overhead<D: SchedTarget>(d: &D) -> i64 {
    ((d.active() as i64) << 8) + d.inactive() as i64
}

fn usable<D: SchedTarget>(d: &D) -> bool {
    !d.overloaded() && d.weight() > 0
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

/// Per-service scheduler state, shared by all workers behind a mutex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchedState {
    kind: SchedulerKind,
    /// rr: position and id of the last pick.
    rr_last: Option<(usize, u32)>,
    wrr: WrrMark,
}

impl SchedState {
    /// Fresh state for a service (`init_service`).
    pub(crate) fn new<D: SchedTarget>(kind: SchedulerKind, dests: &[D]) -> Self {
        SchedState {
            kind,
            rr_last: None,
            wrr: WrrMark::new(dests),
        }
    }

    /// The scheduler this state belongs to.
    pub(crate) fn kind(&self) -> SchedulerKind {
        self.kind
    }

    /// Destinations were added, removed or re-weighted.
    pub(crate) fn dests_changed<D: SchedTarget>(&mut self, dests: &[D]) {
        if self.kind == SchedulerKind::Wrr {
            self.wrr.dests_changed(dests);
        }
    }

    /// Picks a destination index, or `None` when none is usable.
    pub(crate) fn schedule<D: SchedTarget>(&mut self, dests: &[D]) -> Option<usize> {
        match self.kind {
            SchedulerKind::Rr => self.schedule_rr(dests),
            SchedulerKind::Wrr => self.wrr.schedule(dests),
            SchedulerKind::Lc => schedule_lc(dests),
            SchedulerKind::Wlc => schedule_wlc(dests),
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

fn schedule_wlc<D: SchedTarget>(dests: &[D]) -> Option<usize> {
    let first = dests.iter().position(usable)?;
    let mut least = first;
    let mut loh = overhead(&dests[first]);
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.overloaded() {
            continue;
        }
        let doh = overhead(d);
        if (loh as i128) * (d.weight() as i128) > (doh as i128) * (dests[least].weight() as i128) {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    struct D {
        id: u32,
        w: u32,
        over: bool,
        act: u32,
        inact: u32,
    }

    impl SchedTarget for D {
        fn id(&self) -> u32 {
            self.id
        }
        fn weight(&self) -> u32 {
            self.w
        }
        fn overloaded(&self) -> bool {
            self.over
        }
        fn active(&self) -> u32 {
            self.act
        }
        fn inactive(&self) -> u32 {
            self.inact
        }
    }

    fn ds(weights: &[u32]) -> Vec<D> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| D {
                id: i as u32 + 100,
                w,
                over: false,
                act: 0,
                inact: 0,
            })
            .collect()
    }

    fn seq(kind: SchedulerKind, dests: &[D], n: usize) -> String {
        let mut st = SchedState::new(kind, dests);
        (0..n)
            .map(|_| st.schedule(dests).map_or('-', |i| (b'A' + i as u8) as char))
            .collect()
    }

    #[test]
    fn wrr_sequences() {
        let table: &[(&[u32], &str)] = &[
            (&[4, 3, 2], "AABABCABCAABABCABC"),
            (&[1, 1, 1], "ABCABC"),
            (&[2, 1], "AABAAB"),
            (&[4, 2], "AABAAB"),
            (&[5, 1, 1], "AAAAABCAAAAABC"),
            (&[0, 2, 0], "BBBB"),
            (&[0, 0], "----"),
            (&[3, 0, 3], "ACACAC"),
            (&[1, 3], "BBABBBAB"),
        ];
        for (w, expect) in table {
            assert_eq!(
                seq(SchedulerKind::Wrr, &ds(w), expect.len()),
                *expect,
                "weights {w:?}"
            );
        }
    }

    #[test]
    fn rr_sequences() {
        let table: &[(&[u32], &str)] = &[
            (&[1, 1, 1], "ABCABCA"),
            (&[5, 1], "ABAB"),
            (&[1, 0, 1], "ACAC"),
            (&[0, 0], "---"),
        ];
        for (w, expect) in table {
            assert_eq!(
                seq(SchedulerKind::Rr, &ds(w), expect.len()),
                *expect,
                "weights {w:?}"
            );
        }
    }

    #[test]
    fn rr_survives_removal_of_last_pick() {
        let mut d = ds(&[1, 1, 1]);
        let mut st = SchedState::new(SchedulerKind::Rr, &d);
        assert_eq!(st.schedule(&d), Some(0));
        assert_eq!(st.schedule(&d), Some(1));
        d.remove(1); // B goes; the next pick is C (now at index 1)
        assert_eq!(st.schedule(&d).map(|i| d[i].id), Some(102));
        assert_eq!(st.schedule(&d).map(|i| d[i].id), Some(100));
    }

    #[test]
    fn overloaded_skipped() {
        let mut d = ds(&[1, 1, 1]);
        d[0].over = true;
        assert_eq!(seq(SchedulerKind::Rr, &d, 4), "BCBC");
        assert_eq!(seq(SchedulerKind::Wrr, &d, 4), "BCBC");
        assert_eq!(seq(SchedulerKind::Lc, &d, 1), "B");
        assert_eq!(seq(SchedulerKind::Wlc, &d, 1), "B");
    }

    #[test]
    fn lc_table() {
        // (weight, active, inactive) -> pick
        let table: &[LoadCase] = &[
            (&[(1, 0, 0), (1, 0, 0)], 'A'),
            (&[(1, 1, 0), (1, 0, 5)], 'B'),
            (&[(1, 0, 256), (1, 1, 0)], 'A'),
            (&[(1, 1, 1), (1, 1, 0)], 'B'),
            (&[(0, 0, 0), (1, 9, 9)], 'B'),
            (&[(5, 2, 0), (1, 1, 0)], 'B'),
        ];
        for (rows, expect) in table {
            let d = rows_to_dests(rows);
            assert_eq!(
                seq(SchedulerKind::Lc, &d, 1),
                expect.to_string(),
                "{rows:?}"
            );
        }
    }

    #[test]
    fn wlc_table() {
        let table: &[LoadCase] = &[
            (&[(1, 0, 0), (1, 0, 0)], 'A'),
            // overhead/weight: A 256/1, B 512/3 -> B
            (&[(1, 1, 0), (3, 2, 0)], 'B'),
            // equal ratios: first wins
            (&[(1, 1, 0), (2, 2, 0)], 'A'),
            (&[(0, 0, 0), (2, 2, 0), (1, 0, 3)], 'C'),
            (&[(2, 3, 10), (3, 4, 0), (1, 1, 100)], 'B'),
            (&[(0, 0, 0), (0, 0, 0)], '-'),
        ];
        for (rows, expect) in table {
            let d = rows_to_dests(rows);
            assert_eq!(
                seq(SchedulerKind::Wlc, &d, 1),
                expect.to_string(),
                "{rows:?}"
            );
        }
    }

    #[test]
    fn wlc_matches_formula_exhaustively() {
        // Against the definition: minimal overhead/weight, ties to the earliest.
        for a in 0..4u32 {
            for b in 0..4u32 {
                for wa in 0..3u32 {
                    for wb in 1..3u32 {
                        let d = rows_to_dests(&[(wa, a, b), (wb, b, a)]);
                        let got = seq(SchedulerKind::Wlc, &d, 1);
                        let oh = |x: &D| ((x.act as u64) << 8) + x.inact as u64;
                        let want = if wa == 0 {
                            'B'
                        } else if oh(&d[0]) * wb as u64 <= oh(&d[1]) * wa as u64 {
                            'A'
                        } else {
                            'B'
                        };
                        assert_eq!(got, want.to_string());
                    }
                }
            }
        }
    }

    #[test]
    fn wrr_weight_change_resets_position() {
        let mut d = ds(&[4, 3, 2]);
        let mut st = SchedState::new(SchedulerKind::Wrr, &d);
        assert_eq!(st.schedule(&d), Some(0));
        d[0].w = 1;
        st.dests_changed(&d);
        // mw = 3, cw (4) > mw -> cw = 3, from the head: B first.
        let picks: String = (0..6)
            .map(|_| st.schedule(&d).map_or('-', |i| (b'A' + i as u8) as char))
            .collect();
        assert_eq!(picks, "BBCABC");
    }

    /// (weight, active, inactive) per destination -> expected pick.
    type LoadCase = (&'static [(u32, u32, u32)], char);

    fn rows_to_dests(rows: &[(u32, u32, u32)]) -> Vec<D> {
        rows.iter()
            .enumerate()
            .map(|(i, &(w, act, inact))| D {
                id: i as u32,
                w,
                over: false,
                act,
                inact,
            })
            .collect()
    }
}
