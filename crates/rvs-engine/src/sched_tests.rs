//! Scripted-load tests of the schedulers added after the foundation: each pick checked against
//! the IPVS formula, hash stability and disruption, locality expiry on a simulated clock.

use crate::sched::{Rng, SchedState};
use crate::sched_core::{SchedKey, SchedTarget};
use crate::sched_locality::{CHECK_INTERVAL_MS, DEFAULT_EXPIRATION_MS};
use crate::spec::{SchedFlags, SchedulerKind};

#[derive(Debug, Clone)]
struct D {
    id: u32,
    w: u32,
    lw: u32,
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
    fn last_weight(&self) -> u32 {
        self.lw
    }
    fn addr_fold(&self) -> u32 {
        0x0a00_0000 + self.id
    }
    fn port(&self) -> u16 {
        80
    }
}

/// (weight, active, inactive) per destination.
fn rows(r: &[(u32, u32, u32)]) -> Vec<D> {
    r.iter()
        .enumerate()
        .map(|(i, &(w, act, inact))| D {
            id: i as u32 + 1,
            w,
            lw: w,
            over: false,
            act,
            inact,
        })
        .collect()
}

fn state(kind: SchedulerKind, flags: u8, dests: &[D]) -> SchedState {
    SchedState::new(kind, SchedFlags(flags), 4093, 42, dests)
}

fn pick(kind: SchedulerKind, dests: &[D]) -> char {
    state(kind, 0, dests)
        .schedule(dests, &SchedKey::default())
        .map_or('-', |i| (b'A' + i as u8) as char)
}

type Case = (&'static [(u32, u32, u32)], char);

fn check(kind: SchedulerKind, table: &[Case]) {
    for (r, want) in table {
        assert_eq!(pick(kind, &rows(r)), *want, "{} {r:?}", kind.name());
    }
}

#[test]
fn sed_table() {
    // (active + 1) / weight, inactive ignored, ties to the first.
    check(
        SchedulerKind::Sed,
        &[
            (&[(1, 0, 0), (1, 0, 0)], 'A'),
            (&[(1, 1, 0), (1, 0, 99)], 'B'),
            // A: 2/1, B: 4/3 -> B
            (&[(1, 1, 0), (3, 3, 0)], 'B'),
            // A: 3/2, B: 3/2 -> tie, A
            (&[(2, 2, 0), (2, 2, 0)], 'A'),
            // A: 1/1, B: 2/3 -> B (sed sends to the heavier server while A is idle)
            (&[(1, 0, 0), (3, 1, 0)], 'B'),
            (&[(0, 0, 0), (1, 5, 0)], 'B'),
            (&[(0, 0, 0), (0, 0, 0)], '-'),
        ],
    );
}

#[test]
fn nq_table() {
    check(
        SchedulerKind::Nq,
        &[
            // An idle server wins at once, even against a better sed ratio.
            (&[(1, 0, 0), (3, 1, 0)], 'A'),
            (&[(3, 1, 0), (1, 0, 50)], 'B'),
            // No idle server: sed.
            (&[(1, 1, 0), (3, 3, 0)], 'B'),
            (&[(2, 2, 0), (2, 2, 0)], 'A'),
            // Weight 0 is never picked, even idle.
            (&[(0, 0, 0), (1, 3, 0)], 'B'),
        ],
    );
}

#[test]
fn fo_table() {
    check(
        SchedulerKind::Fo,
        &[
            (&[(1, 0, 0), (3, 9, 9), (2, 0, 0)], 'B'),
            (&[(3, 0, 0), (3, 0, 0)], 'A'),
            (&[(0, 0, 0), (1, 0, 0)], 'B'),
        ],
    );
    let mut d = rows(&[(1, 0, 0), (3, 0, 0), (2, 0, 0)]);
    d[1].over = true;
    assert_eq!(pick(SchedulerKind::Fo, &d), 'C');
}

#[test]
fn ovf_table() {
    check(
        SchedulerKind::Ovf,
        &[
            (&[(1, 0, 0), (3, 2, 0)], 'B'),
            // active == weight still takes connections; active > weight overflows.
            (&[(1, 0, 0), (3, 3, 0)], 'B'),
            (&[(1, 0, 0), (3, 4, 0)], 'A'),
            (&[(2, 3, 0), (3, 4, 0)], '-'),
            (&[(3, 0, 0), (3, 0, 0)], 'A'),
        ],
    );
}

#[test]
fn twos_matches_formula_with_seeded_rng() {
    let d = rows(&[(1, 3, 0), (2, 1, 5), (0, 0, 0), (3, 4, 1)]);
    let st = state(SchedulerKind::Twos, 0, &d);
    let mut rng = Rng::new(42);
    let total: i64 = 1 + 2 + 3 + 1;
    let oh = |x: &D| ((x.act as i64) << 8) + x.inact as i64;
    let usable: Vec<usize> = vec![0, 1, 3];
    let mut counts = [0usize; 4];
    for _ in 0..500 {
        let r1 = rng.next_u32() as i64 % total;
        let r2 = rng.next_u32() as i64 % total;
        let at = |r: i64| {
            let mut acc = 0;
            *usable
                .iter()
                .find(|&&i| {
                    acc += d[i].w as i64;
                    r - acc <= 0
                })
                .expect("within total")
        };
        let (a, b) = (at(r1), at(r2));
        let want = if (d[b].w as i64) * oh(&d[a]) > (d[a].w as i64) * oh(&d[b]) {
            b
        } else {
            a
        };
        let got = st.schedule(&d, &SchedKey::default()).expect("pick");
        assert_eq!(got, want);
        counts[got] += 1;
    }
    assert_eq!(counts[2], 0, "weight 0 never picked");
}

fn key_from(src: u32, sport: u16) -> SchedKey {
    let mut k = SchedKey::default();
    k.src[10] = 0xff;
    k.src[11] = 0xff;
    k.src[12..].copy_from_slice(&src.to_be_bytes());
    k.dst = k.src;
    k.sport = sport;
    k
}

#[test]
fn sh_buckets_follow_weights_and_are_stable() {
    let d = rows(&[(1, 0, 0), (2, 0, 0), (1, 0, 0)]);
    let mut st = state(SchedulerKind::Sh, 0, &d);
    let mut counts = [0usize; 3];
    let picks: Vec<Option<usize>> = (0..4000u32)
        .map(|i| st.schedule(&d, &key_from(0x0a00_0000 + i, 1000)))
        .collect();
    for p in picks.iter().flatten() {
        counts[*p] += 1;
    }
    // 256 buckets cycled A, B, B, C: 64/128/64 buckets; keys spread accordingly.
    assert!(counts[1] > counts[0] + counts[0] / 2, "{counts:?}");
    assert!(counts[1] > counts[2] + counts[2] / 2, "{counts:?}");
    // A rebuild over the same destinations gives the same answers.
    st.dests_changed(&d);
    let fresh = state(SchedulerKind::Sh, 0, &d);
    for (i, p) in picks.iter().enumerate() {
        let k = key_from(0x0a00_0000 + i as u32, 1000);
        assert_eq!(st.schedule(&d, &k), *p);
        assert_eq!(fresh.schedule(&d, &k), *p);
    }
    // Without sh-port the source port does not matter; with it, ports spread.
    let k = |port| key_from(0x0a01_0203, port);
    let one: Vec<_> = (0..20).map(|p| st.schedule(&d, &k(40000 + p))).collect();
    assert!(one.iter().all(|x| *x == one[0]));
    let with_port = state(SchedulerKind::Sh, SchedFlags::PORT, &d);
    let spread: std::collections::HashSet<_> = (0..20)
        .map(|p| with_port.schedule(&d, &k(40000 + p)))
        .collect();
    assert!(spread.len() > 1);
}

#[test]
fn sh_weight_zero_gets_one_bucket_and_fallback_moves_only_its_keys() {
    let mut d = rows(&[(1, 0, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0)]);
    let plain = state(SchedulerKind::Sh, 0, &d);
    let fb = state(SchedulerKind::Sh, SchedFlags::FALLBACK, &d);
    let keys: Vec<SchedKey> = (0..2000u32).map(|i| key_from(0xc0a8_0000 + i, 1)).collect();
    let before: Vec<_> = keys.iter().map(|k| plain.schedule(&d, k)).collect();
    // C becomes overloaded (no reassign: overload is not a configuration change).
    d[2].over = true;
    for (k, b) in keys.iter().zip(&before) {
        let p = plain.schedule(&d, k);
        let f = fb.schedule(&d, k);
        if *b == Some(2) {
            assert_eq!(p, None, "without fallback: no destination");
            assert!(f.is_some_and(|i| i != 2), "fallback finds another");
        } else {
            assert_eq!(p, *b);
            assert_eq!(f, *b, "fallback leaves other keys alone");
        }
    }
}

#[test]
fn dh_hashes_the_destination_and_is_stable() {
    let d = rows(&[(1, 0, 0), (5, 0, 0), (1, 0, 0)]);
    let st = state(SchedulerKind::Dh, 0, &d);
    let mut counts = [0usize; 3];
    for i in 0..3000u32 {
        let k = key_from(0x0a00_0000 + i * 7, 1);
        let p = st.schedule(&d, &k).expect("pick");
        counts[p] += 1;
        // Source and port do not matter, only the destination.
        let mut k2 = k;
        k2.src = [9; 16];
        k2.sport = 9;
        assert_eq!(st.schedule(&d, &k2), Some(p));
    }
    // Buckets are dealt one per server whatever the weight: roughly even.
    assert!(counts.iter().all(|&c| c > 700), "{counts:?}");
    let again = state(SchedulerKind::Dh, 0, &d);
    for i in 0..100u32 {
        let k = key_from(0x0a00_0000 + i * 7, 1);
        assert_eq!(again.schedule(&d, &k), st.schedule(&d, &k));
    }
}

#[test]
fn mh_shares_follow_weights() {
    let d = rows(&[(1, 0, 0), (2, 0, 0), (1, 0, 0)]);
    let st = state(SchedulerKind::Mh, 0, &d);
    let shares = st.mh_table().shares(3);
    assert_eq!(shares.iter().sum::<usize>(), 4093);
    // 1:2:1 of 4093 (each turn hands out weight/gcd entries).
    assert!(shares[1].abs_diff(2046) <= 2, "{shares:?}");
    assert!(shares[0].abs_diff(1023) <= 2, "{shares:?}");
}

/// Directors given the same servers in different orders build the same mh table (by
/// server, not by position): the fill takes turns in a canonical order.
#[test]
fn mh_tables_do_not_depend_on_the_order_servers_were_added() {
    let d = rows(&[(1, 0, 0), (2, 0, 0), (1, 0, 0), (3, 0, 0), (1, 0, 0)]);
    let by_id = |dests: &[D]| -> Vec<u32> {
        crate::sched_hash::MhTable::build(dests, 251)
            .entries()
            .iter()
            .map(|&i| dests[i as usize].id)
            .collect()
    };
    let mut reordered = rows(&[(1, 0, 0), (2, 0, 0), (1, 0, 0), (3, 0, 0), (1, 0, 0)]);
    reordered.reverse();
    reordered.swap(0, 2);
    assert_ne!(
        d.iter().map(|x| x.id).collect::<Vec<_>>(),
        reordered.iter().map(|x| x.id).collect::<Vec<_>>()
    );
    assert_eq!(by_id(&d), by_id(&reordered));
}

#[test]
fn mh_disruption_near_maglev_bound() {
    const N: usize = 10;
    let d = rows(&[(1, 0, 0); N]);
    let mut st = state(SchedulerKind::Mh, 0, &d);
    let keys: Vec<SchedKey> = (0..20_000u32)
        .map(|i| key_from(0x6400_0000 + i * 13, 1))
        .collect();
    let before: Vec<u32> = keys
        .iter()
        .map(|k| d[st.schedule(&d, k).expect("pick")].id)
        .collect();
    let mut fewer = d.clone();
    let gone = fewer.remove(4).id;
    st.dests_changed(&fewer);
    let mut moved = 0usize;
    let mut moved_other = 0usize;
    for (k, b) in keys.iter().zip(&before) {
        let a = fewer[st.schedule(&fewer, k).expect("pick")].id;
        if a != *b {
            moved += 1;
            if *b != gone {
                moved_other += 1;
            }
        }
    }
    let frac = moved as f64 / keys.len() as f64;
    // The removed server's 1/N must move; Maglev moves little else.
    assert!((0.08..0.15).contains(&frac), "moved {frac}");
    assert!(
        (moved_other as f64 / keys.len() as f64) < 0.04,
        "{moved_other}"
    );
}

#[test]
fn mh_port_and_fallback() {
    let mut d = rows(&[(1, 0, 0), (1, 0, 0), (1, 0, 0)]);
    let mut plain = state(SchedulerKind::Mh, 0, &d);
    let port = state(SchedulerKind::Mh, SchedFlags::PORT, &d);
    let k = |p| key_from(0x0a09_0807, p);
    let a: Vec<_> = (0..20).map(|p| plain.schedule(&d, &k(30000 + p))).collect();
    assert!(a.iter().all(|x| *x == a[0]));
    let b: std::collections::HashSet<_> =
        (0..20).map(|p| port.schedule(&d, &k(30000 + p))).collect();
    assert!(b.len() > 1);
    // Weight 0 keeps its entries (built from last_weight) but is unavailable.
    let mut fb = state(SchedulerKind::Mh, SchedFlags::FALLBACK, &d);
    let first = plain.schedule(&d, &k(1)).expect("pick");
    d[first].w = 0;
    plain.dests_changed(&d);
    fb.dests_changed(&d);
    assert_eq!(plain.schedule(&d, &k(1)), None);
    assert!(fb.schedule(&d, &k(1)).is_some_and(|i| i != first));
}

fn dst_key(dst: u8, now_ms: u64) -> SchedKey {
    let mut k = SchedKey::default();
    k.dst[15] = dst;
    k.now_ms = now_ms;
    k
}

#[test]
fn lblc_sticks_to_its_server_until_overloaded_and_expires() {
    let mut d = rows(&[(2, 0, 0), (2, 0, 0)]);
    let mut st = state(SchedulerKind::Lblc, 0, &d);
    assert_eq!(st.schedule(&d, &dst_key(1, 0)), Some(0));
    d[0].act = 2; // wlc would now pick B, but the cache keeps A (active <= weight)
    assert_eq!(st.schedule(&d, &dst_key(1, 1)), Some(0));
    d[0].act = 3; // active > weight and B is under half its weight: rescheduled
    assert_eq!(st.schedule(&d, &dst_key(1, 2)), Some(1));
    d[1].act = 1; // the entry now names B, which is within its weight
    assert_eq!(st.schedule(&d, &dst_key(1, 3)), Some(1));
    // Expiry: the full check runs every 30th minute, dropping entries idle for 24 h.
    let l = st.locality_mut().expect("locality");
    l.expire(0);
    assert_eq!(l.len(), 1);
    l.expire(DEFAULT_EXPIRATION_MS);
    assert_eq!(
        l.len(),
        1,
        "used at 3 ms: not idle for 24 h at the 24 h check"
    );
    l.expire(DEFAULT_EXPIRATION_MS + 30 * CHECK_INTERVAL_MS);
    assert_eq!(l.len(), 0);
}

#[test]
fn lblc_expiry_respects_the_configured_expiration() {
    let d = rows(&[(1, 0, 0)]);
    let mut st = state(SchedulerKind::Lblc, 0, &d);
    let l = st.locality_mut().expect("locality");
    l.set_expiration(60_000);
    l.expire(0);
    st.schedule(&d, &dst_key(7, 0));
    st.schedule(&d, &dst_key(8, 29 * CHECK_INTERVAL_MS + 30_000));
    let l = st.locality_mut().expect("locality");
    // First check at 60 s, full check at the 30th: 30 min.
    l.expire(29 * CHECK_INTERVAL_MS);
    assert_eq!(l.len(), 2);
    l.expire(30 * CHECK_INTERVAL_MS);
    assert_eq!(
        l.len(),
        1,
        "dst 7 idle 30 min > 60 s; dst 8 idle 30 s is kept"
    );
}

#[test]
fn lblcr_grows_its_set_under_load_and_shrinks_after_expiration() {
    let mut d = rows(&[(2, 0, 0), (2, 0, 0), (2, 0, 0)]);
    let mut st = state(SchedulerKind::Lblcr, 0, &d);
    let dst = dst_key(9, 0).dst;
    assert_eq!(st.schedule(&d, &dst_key(9, 0)), Some(0));
    d[0].act = 3; // over weight, others idle: B joins the set
    assert_eq!(st.schedule(&d, &dst_key(9, 1)), Some(1));
    assert_eq!(
        st.locality_mut().and_then(|l| l.set_of(&dst)),
        Some(vec![2, 1])
    );
    // Least loaded member serves.
    d[0].act = 0;
    d[1].act = 1;
    assert_eq!(st.schedule(&d, &dst_key(9, 2)), Some(0));
    // After the expiration without set changes, the most loaded member is dropped.
    d[1].act = 2;
    let later = 1 + DEFAULT_EXPIRATION_MS + 1;
    assert_eq!(st.schedule(&d, &dst_key(9, later)), Some(0));
    assert_eq!(
        st.locality_mut().and_then(|l| l.set_of(&dst)),
        Some(vec![1])
    );
    // A removed server leaves the sets.
    d.remove(0);
    st.dests_changed(&d);
    assert_eq!(st.locality_mut().and_then(|l| l.set_of(&dst)), Some(vec![]));
    assert!(st.schedule(&d, &dst_key(9, later + 1)).is_some());
}

/// rr, wrr, lc and wlc: pick sequences and loads against the IPVS formulas.
mod basic {
    use super::*;

    fn ds(weights: &[u32]) -> Vec<D> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| D {
                id: i as u32 + 100,
                w,
                lw: w,
                over: false,
                act: 0,
                inact: 0,
            })
            .collect()
    }

    fn seq(kind: SchedulerKind, dests: &[D], n: usize) -> String {
        let st = SchedState::new(kind, SchedFlags::default(), 4093, 1, dests);
        (0..n)
            .map(|_| {
                st.schedule(dests, &SchedKey::default())
                    .map_or('-', |i| (b'A' + i as u8) as char)
            })
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
        let mut st = SchedState::new(SchedulerKind::Rr, SchedFlags::default(), 4093, 1, &d);
        assert_eq!(st.schedule(&d, &SchedKey::default()), Some(0));
        assert_eq!(st.schedule(&d, &SchedKey::default()), Some(1));
        d.remove(1); // B goes; the next pick is C (now at index 1)
        st.dests_changed(&d); // as the engine's del_dest does (IPVS's `ip_vs_rr_del_dest`)
        assert_eq!(
            st.schedule(&d, &SchedKey::default()).map(|i| d[i].id),
            Some(102)
        );
        assert_eq!(
            st.schedule(&d, &SchedKey::default()).map(|i| d[i].id),
            Some(100)
        );
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

    /// wrr over its precomputed sequence picks what IPVS's walk of the list picks, whatever
    /// the weights (zero, with a common divisor), overloads and weight changes.
    #[test]
    fn wrr_sequence_matches_the_walk() {
        let mut rng = Rng::new(7);
        let mut r = |n: u32| rng.next_u32() % n;
        for case in 0..300 {
            let (n, unit) = (1 + r(6) as usize, 1 + r(3));
            let mut d = ds(&vec![0; n]);
            for x in d.iter_mut() {
                x.w = r(7) * unit;
            }
            let mut fast = SchedState::new(SchedulerKind::Wrr, SchedFlags::default(), 4093, 1, &d);
            let mut walk = SchedState::new(SchedulerKind::Wrr, SchedFlags::default(), 4093, 1, &d)
                .with_wrr_max_steps(0, &d);
            for step in 0..200 {
                let i = r(n as u32) as usize;
                match r(10) {
                    0..=2 => d[i].over = !d[i].over,
                    3 => {
                        d[i].w = r(7) * unit;
                        fast.dests_changed(&d);
                        walk.dests_changed(&d);
                    }
                    _ => {}
                }
                let k = SchedKey::default();
                let w: Vec<_> = d.iter().map(|x| (x.w, x.over)).collect();
                assert_eq!(
                    fast.schedule(&d, &k),
                    walk.schedule(&d, &k),
                    "case {case} step {step}: {w:?}"
                );
            }
        }
    }

    /// Workers picking at once move the cursor one step each: the counts are exactly those of
    /// one worker picking as many times.
    #[test]
    fn concurrent_picks_follow_one_sequence() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cases: &[(SchedulerKind, &[u32], &[usize])] = &[
            (SchedulerKind::Rr, &[1, 1, 1, 1], &[6000, 6000, 6000, 6000]),
            (SchedulerKind::Wrr, &[3, 2, 1], &[12000, 8000, 4000]),
        ];
        for &(kind, weights, want) in cases {
            let d = ds(weights);
            let st = SchedState::new(kind, SchedFlags::default(), 4093, 1, &d);
            let counts: Vec<AtomicUsize> = d.iter().map(|_| AtomicUsize::new(0)).collect();
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..6000 {
                            let i = st.schedule(&d, &SchedKey::default()).expect("pick");
                            counts[i].fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            let got: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            assert_eq!(got, want, "{}", kind.name());
        }
    }

    #[test]
    fn wrr_weight_change_resets_position() {
        let mut d = ds(&[4, 3, 2]);
        let mut st = SchedState::new(SchedulerKind::Wrr, SchedFlags::default(), 4093, 1, &d);
        assert_eq!(st.schedule(&d, &SchedKey::default()), Some(0));
        d[0].w = 1;
        st.dests_changed(&d);
        // mw = 3, cw (4) > mw -> cw = 3, from the head: B first.
        let picks: String = (0..6)
            .map(|_| {
                st.schedule(&d, &SchedKey::default())
                    .map_or('-', |i| (b'A' + i as u8) as char)
            })
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
                lw: w,
                over: false,
                act,
                inact,
            })
            .collect()
    }
}
