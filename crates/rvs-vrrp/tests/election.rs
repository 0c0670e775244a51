//! Two (or three) instances on a simulated link, with a simulated clock.

mod sim;

use rvs_vrrp::codec::{Auth, Version};
use rvs_vrrp::config::InitialState;
use rvs_vrrp::instance::DropReason;
use rvs_vrrp::timing::{master_down_interval, skew_time};
use rvs_vrrp::{AdvertOutcome, Instance, InstanceConfig, State, TrackEffect, TrackScript};
use sim::Sim;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn cfg(name: &str, src: &str, prio: u8, state: Option<InitialState>) -> InstanceConfig {
    let mut c = InstanceConfig::new(name, Version::V2, 51, ip(src), vec![ip("10.0.0.100")]);
    c.priority = prio;
    c.initial_state = state;
    c.auth = Auth::pass("1c7f545a");
    c
}

/// Master_Down_Interval at priority 150, `advert_int 1`: 3 s + (256 - 150) / 256 s.
fn mdi_150() -> Duration {
    us(3_414_062) + Duration::from_nanos(500)
}

/// Master_Down_Interval at priority 100, `advert_int 1`: 3 s + (256 - 100) / 256 s.
fn mdi_100() -> Duration {
    us(3_609_375)
}

fn node(c: InstanceConfig, now: Instant) -> Box<dyn sim::Node> {
    Box::new(Instance::new(c, now).unwrap())
}

/// a (10.0.0.1, priority 150, `state` as given) and b (10.0.0.2, 100, BACKUP), started now.
fn pair(a_state: Option<InitialState>) -> Sim {
    let t0 = Instant::now();
    Sim::new(
        t0,
        vec![
            node(cfg("a", "10.0.0.1", 150, a_state), t0),
            node(cfg("b", "10.0.0.2", 100, Some(InitialState::Backup)), t0),
        ],
    )
}

#[test]
fn timer_formulas() {
    assert_eq!(skew_time(100, Duration::from_secs(1)), us(609_375));
    assert_eq!(
        master_down_interval(100, Duration::from_secs(1)),
        us(3_609_375)
    );
    assert_eq!(
        skew_time(255, Duration::from_secs(1)),
        Duration::from_nanos(3_906_250)
    );
    assert_eq!(master_down_interval(200, ms(500)), us(1_609_375));
}

#[test]
fn higher_priority_is_elected() {
    let t0 = Instant::now();
    let mut s = Sim::new(
        t0,
        vec![
            node(cfg("a", "10.0.0.1", 150, Some(InitialState::Backup)), t0),
            node(cfg("b", "10.0.0.2", 100, Some(InitialState::Backup)), t0),
        ],
    );
    s.run_until(Duration::from_secs(20));
    // Both start BACKUP; a's master-down interval (3 + 106/256 s) runs out first.
    assert_eq!(
        s.last(0, "master"),
        Some(us(3_414_062) + Duration::from_nanos(500))
    );
    assert_eq!(s.count(1, "master"), 0);
    assert_eq!(s.inst(0).state(), State::Master);
    assert_eq!(s.inst(1).state(), State::Backup);
    assert_eq!(s.inst(1).master_address(), Some(ip("10.0.0.1")));
    // The master advertises every second.
    let from_a = s.seen.iter().filter(|x| x.from == 0).count();
    assert!((16..=18).contains(&from_a), "{from_a}");
}

#[test]
fn equal_priority_goes_to_the_higher_address() {
    let t0 = Instant::now();
    let mut s = Sim::new(
        t0,
        vec![
            node(cfg("a", "10.0.0.1", 100, None), t0),
            node(cfg("b", "10.0.0.2", 100, None), t0),
        ],
    );
    s.run_until(Duration::from_secs(10));
    // Both time out together, both become master, the lower address yields.
    assert_eq!(s.inst(0).state(), State::Backup);
    assert_eq!(s.inst(1).state(), State::Master);
    assert_eq!(s.count(0, "master"), 1);
    assert_eq!(s.last(0, "remove_vips"), Some(us(3_609_375)));
}

#[test]
fn killed_master_is_replaced_after_master_down_interval() {
    let mut s = pair(Some(InitialState::Master));
    s.run_until(ms(10_500));
    // `state MASTER` below 255 starts as backup: a is master after its own master-down
    // interval, then advertises every second (last at 3.414 s + 7 s = 10.414 s).
    assert_eq!(s.last(0, "master"), Some(mdi_150()));
    assert_eq!(s.inst(1).state(), State::Backup);
    s.kill(0);
    s.run_until(Duration::from_secs(20));
    // Last advert at 10.414 s; b's 3 * 1 s + (256 - 100) / 256 s later.
    let last_advert = mdi_150() + Duration::from_secs(7);
    assert_eq!(s.last(1, "master"), Some(last_advert + mdi_100()));
    assert!(s.last(1, "master").unwrap() - ms(10_500) < Duration::from_secs(4));
}

#[test]
fn priority_zero_advert_hands_over_after_skew_time() {
    let t0 = Instant::now();
    let mut s = Sim::new(
        t0,
        vec![
            node(cfg("a", "10.0.0.1", 150, Some(InitialState::Master)), t0),
            node(cfg("b", "10.0.0.2", 100, Some(InitialState::Backup)), t0),
        ],
    );
    s.run_until(ms(10_500));
    let now = s.now;
    s.inst(0).shutdown(now);
    s.flush();
    assert_eq!(s.inst(0).state(), State::Stopped);
    assert_eq!(s.last(0, "remove_vips"), Some(ms(10_500)));
    assert_eq!(s.last(0, "stopped"), Some(ms(10_500)));
    assert!(s.seen.iter().any(|x| x.from == 0 && x.priority == 0));
    assert_eq!(s.inst(0).stats().pri_zero_sent, 1);
    s.run_until(Duration::from_secs(20));
    assert_eq!(s.last(1, "master"), Some(ms(10_500) + us(609_375)));
    assert_eq!(s.inst(1).stats().pri_zero_rcvd, 1);
}

fn late_joiner(nopreempt: bool, preempt_delay: Duration) -> Sim {
    let t0 = Instant::now();
    let mut s = Sim::new(
        t0,
        vec![node(
            cfg("b", "10.0.0.2", 100, Some(InitialState::Master)),
            t0,
        )],
    );
    s.run_until(ms(10_500));
    let mut a = cfg("a", "10.0.0.1", 150, Some(InitialState::Backup));
    a.nopreempt = nopreempt;
    a.preempt_delay = preempt_delay;
    let now = s.now;
    s.add(node(a, now));
    s.run_until(Duration::from_secs(30));
    s
}

#[test]
fn higher_priority_preempts() {
    let mut s = late_joiner(false, Duration::ZERO);
    // The joiner ignores the lower-priority adverts and its master-down timer runs out.
    assert_eq!(
        s.last(1, "master"),
        Some(ms(10_500) + us(3_414_062) + Duration::from_nanos(500))
    );
    assert_eq!(s.inst(0).state(), State::Backup);
    assert_eq!(s.inst(1).state(), State::Master);
}

#[test]
fn nopreempt_keeps_the_current_master() {
    let mut s = late_joiner(true, Duration::ZERO);
    assert_eq!(s.count(1, "master"), 0);
    assert_eq!(s.inst(0).state(), State::Master);
    assert_eq!(s.inst(1).state(), State::Backup);
}

#[test]
fn preempt_delay_postpones_preemption() {
    let mut s = late_joiner(false, Duration::from_secs(5));
    // b (state MASTER, 100) is master from 3.609375 s and advertises every second. The first
    // lower advert after the join (10.5 s) comes at 10.609375 s and starts the 5 s delay;
    // adverts until 14.609375 s still reset the timer; from 15.609375 s they are ignored:
    // master at 14.609375 s + 3 + 106/256 s.
    assert_eq!(
        s.last(1, "master"),
        Some(mdi_100() + Duration::from_secs(11) + mdi_150())
    );
    assert_eq!(s.inst(0).state(), State::Backup);
}

#[test]
fn owner_takes_over_at_once() {
    let t0 = Instant::now();
    let mut s = Sim::new(
        t0,
        vec![node(
            cfg("b", "10.0.0.2", 200, Some(InitialState::Master)),
            t0,
        )],
    );
    s.run_until(ms(5_500));
    let now = s.now;
    // Priority 255 without a `state` wants MASTER: the address owner is master immediately.
    s.add(node(cfg("owner", "10.0.0.1", 255, None), now));
    s.run_until(ms(5_500));
    assert_eq!(s.last(1, "master"), Some(ms(5_500)));
    assert_eq!(s.inst(0).state(), State::Backup);
    assert_eq!(s.inst(1).effective_priority(), 255);
    s.run_until(Duration::from_secs(15));
    assert_eq!(s.inst(1).state(), State::Master);
}

#[test]
fn reloaded_master_resumes_at_once_and_still_yields_to_a_higher_priority() {
    let mut s = pair(Some(InitialState::Backup));
    s.run_until(ms(5_200));
    assert_eq!(s.inst(0).state(), State::Master);
    // A reload replaces a's instance: the new one is master at once, so b never takes over.
    s.kill(0);
    let now = s.now;
    let resumed = Instance::resume_master(cfg("a", "10.0.0.1", 150, None), now).unwrap();
    let a2 = s.add(Box::new(resumed));
    s.run_until(Duration::from_secs(15));
    assert_eq!(s.last(a2, "master"), Some(ms(5_200)));
    assert_eq!(s.inst(a2).state(), State::Master);
    assert_eq!(s.count(1, "master"), 0);

    // A reload that lowered a's priority below b's: resumed master, then b preempts it.
    s.kill(a2);
    let now = s.now;
    let lowered = Instance::resume_master(cfg("a", "10.0.0.1", 50, None), now).unwrap();
    let a3 = s.add(Box::new(lowered));
    s.run_until(Duration::from_secs(25));
    assert_eq!(s.last(a3, "master"), Some(Duration::from_secs(15)));
    assert_eq!(s.inst(a3).state(), State::Backup);
    assert_eq!(s.inst(1).state(), State::Master);
}

#[test]
fn v3_learns_the_masters_centisecond_interval() {
    let t0 = Instant::now();
    let v3 = |name: &str, src: &str, prio: u8, int_ms: u64, st| {
        let mut c = InstanceConfig::new(
            name,
            Version::V3,
            7,
            ip(src),
            vec![ip("fe80::7"), ip("2001:db8::7")],
        );
        c.priority = prio;
        c.initial_state = Some(st);
        c.advert_interval = ms(int_ms);
        c
    };
    let mut s = Sim::new(
        t0,
        vec![
            node(v3("a", "fe80::1", 200, 500, InitialState::Master), t0),
            node(v3("b", "fe80::2", 100, 1000, InitialState::Backup), t0),
        ],
    );
    s.run_until(ms(5_250));
    // a (state MASTER, 200) is master after its own 3 * 0.5 s + (56 * 0.5 s) / 256.
    let a_master = us(1_609_375);
    assert_eq!(s.last(0, "master"), Some(a_master));
    assert_eq!(s.inst(1).master_adver_interval(), ms(500));
    s.kill(0);
    s.run_until(Duration::from_secs(10));
    // Last advert at 1.609375 s + 7 * 0.5 s = 5.109375 s; b then waits its master-down
    // interval at the learnt interval: 3 * 0.5 s + (156 * 0.5 s) / 256.
    assert_eq!(
        s.last(1, "master"),
        Some(a_master + ms(3_500) + us(1_804_687) + Duration::from_nanos(500))
    );
    // As master it advertises its own interval.
    assert_eq!(s.inst(1).master_adver_interval(), Duration::from_secs(1));
    let tx: Vec<_> = s.seen.iter().filter(|x| x.from == 1).collect();
    assert!(tx.len() >= 3);
}

#[test]
fn v3_ipv4_ten_millisecond_interval() {
    let t0 = Instant::now();
    let mut c = InstanceConfig::new("a", Version::V3, 9, ip("10.0.0.1"), vec![ip("10.0.0.9")]);
    c.advert_interval = ms(10);
    c.initial_state = Some(InitialState::Master);
    let mut s = Sim::new(t0, vec![node(c, t0)]);
    // Master after 3 * 10 ms + (156 * 10 ms) / 256 = 36.09375 ms, then one advert per 10 ms.
    let first = Duration::from_nanos(36_093_750);
    s.run_until(first + ms(995));
    assert_eq!(s.last(0, "master"), Some(first));
    assert_eq!(s.seen.len(), 100);
    assert_eq!(s.seen[0].at, first);
    assert_eq!(s.seen[99].at, first + ms(990));
    let mut bad = InstanceConfig::new("a", Version::V3, 9, ip("10.0.0.1"), vec![ip("10.0.0.9")]);
    bad.advert_interval = ms(15) + us(1);
    assert!(Instance::new(bad, t0).is_err());
}

#[test]
fn password_mismatch_is_dropped_and_counted() {
    let t0 = Instant::now();
    let mut b = cfg("b", "10.0.0.2", 100, Some(InitialState::Backup));
    b.auth = Auth::pass("other");
    let mut s = Sim::new(
        t0,
        vec![
            node(cfg("a", "10.0.0.1", 150, Some(InitialState::Master)), t0),
            node(b, t0),
        ],
    );
    s.run_until(Duration::from_secs(10));
    // b never hears a valid master: it becomes master too (as keepalived would).
    assert_eq!(s.last(1, "master"), Some(us(3_609_375)));
    let st = *s.inst(1).stats();
    assert!(st.auth_failure >= 3, "{st:?}");
    assert_eq!(st.advert_rcvd, 0);
}

#[test]
fn advert_checks_follow_keepalived() {
    let t0 = Instant::now();
    let mut vr = Instance::new(cfg("a", "10.0.0.1", 100, Some(InitialState::Backup)), t0).unwrap();
    let good = rvs_vrrp::Advert {
        version: Version::V2,
        vrid: 51,
        priority: 100,
        interval: 1,
        auth: Auth::pass("1c7f545a"),
        addrs: vec![ip("10.0.0.100")],
    };
    let src = ip("10.0.0.2");
    assert_eq!(vr.handle_advert(t0, src, &good), AdvertOutcome::Accepted);
    let cases = [
        (
            rvs_vrrp::Advert {
                vrid: 52,
                ..good.clone()
            },
            DropReason::Vrid,
        ),
        (
            rvs_vrrp::Advert {
                interval: 2,
                ..good.clone()
            },
            DropReason::Interval,
        ),
        (
            rvs_vrrp::Advert {
                auth: Auth::None,
                ..good.clone()
            },
            DropReason::AuthType,
        ),
        (
            rvs_vrrp::Advert {
                addrs: vec![ip("10.0.0.101")],
                ..good.clone()
            },
            DropReason::AddressList,
        ),
        (
            rvs_vrrp::Advert {
                addrs: vec![],
                ..good.clone()
            },
            DropReason::AddressList,
        ),
        (
            rvs_vrrp::Advert {
                version: Version::V3,
                auth: Auth::None,
                ..good.clone()
            },
            DropReason::Version,
        ),
    ];
    for (a, why) in cases {
        assert_eq!(
            vr.handle_advert(t0, src, &a),
            AdvertOutcome::Dropped(why),
            "{a:?}"
        );
    }
    assert_eq!(
        vr.handle_advert(t0, ip("10.0.0.1"), &good),
        AdvertOutcome::Dropped(DropReason::OwnAdvert)
    );
    let st = vr.stats();
    assert_eq!(
        (
            st.vrid_err,
            st.interval_mismatch,
            st.authtype_mismatch,
            st.addr_list_err,
            st.version_err
        ),
        (1, 1, 1, 2, 1)
    );
}

#[test]
fn unicast_peers_send_to_each_and_accept_only_them() {
    let t0 = Instant::now();
    let mut a = cfg("a", "10.0.0.1", 150, Some(InitialState::Master));
    a.unicast_peers = vec![ip("10.0.0.2"), ip("10.0.0.3")];
    let mut vr = Instance::new(a, t0).unwrap();
    assert_eq!(vr.poll_timeout(), Some(t0 + mdi_150()));
    vr.handle_timeout(t0 + mdi_150());
    assert_eq!(vr.state(), State::Master);
    let dsts: Vec<_> = std::iter::from_fn(|| vr.poll_transmit())
        .map(|t| t.dst)
        .collect();
    assert_eq!(dsts, vec![ip("10.0.0.2"), ip("10.0.0.3")]);

    let mut b = cfg("b", "10.0.0.2", 100, Some(InitialState::Backup));
    b.unicast_peers = vec![ip("10.0.0.1")];
    let mut vb = Instance::new(b, t0).unwrap();
    let adv = rvs_vrrp::Advert {
        version: Version::V2,
        vrid: 51,
        priority: 200,
        interval: 1,
        auth: Auth::pass("1c7f545a"),
        addrs: vec![ip("10.0.0.100")],
    };
    assert_eq!(
        vb.handle_advert(t0, ip("10.0.0.9"), &adv),
        AdvertOutcome::Dropped(DropReason::NotAPeer)
    );
    assert_eq!(
        vb.handle_advert(t0, ip("10.0.0.1"), &adv),
        AdvertOutcome::Accepted
    );
}

#[test]
fn gratuitous_bursts_follow_garp_settings() {
    let t0 = Instant::now();
    let mut a = cfg("a", "10.0.0.1", 150, Some(InitialState::Master));
    a.garp_master_refresh = Some(Duration::from_secs(10));
    a.excluded_vips = vec![ip("10.0.1.100")];
    let mut s = Sim::new(t0, vec![node(a, t0)]);
    s.run_until(ms(25_500));
    let garps: Vec<_> = s
        .log
        .iter()
        .filter(|(_, _, e)| e.starts_with("garp"))
        .map(|(t, _, e)| (*t, e.clone()))
        .collect();
    // Master at its master-down interval m: a burst then, another after garp_master_delay
    // (5 s), refreshes every 10 s from m.
    let m = mdi_150();
    assert_eq!(
        garps,
        vec![
            (m, "garp5".into()),
            (m + Duration::from_secs(5), "garp5".into()),
            (m + Duration::from_secs(10), "garp1".into()),
            (m + Duration::from_secs(20), "garp1".into())
        ]
    );
    let mut vr = Instance::new(cfg("x", "10.0.0.1", 150, Some(InitialState::Master)), t0).unwrap();
    let start: Vec<_> = std::iter::from_fn(|| vr.poll_event()).collect();
    assert_eq!(
        start,
        vec![
            rvs_vrrp::Event::RemoveVips(vec![ip("10.0.0.100")]),
            rvs_vrrp::Event::BecameBackup
        ]
    );
    vr.handle_timeout(t0 + mdi_150());
    let evs: Vec<_> = std::iter::from_fn(|| vr.poll_event()).collect();
    assert_eq!(evs[0], rvs_vrrp::Event::AddVips(vec![ip("10.0.0.100")]));
    assert_eq!(evs.last(), Some(&rvs_vrrp::Event::BecameMaster));
}

#[test]
fn fault_releases_and_recovery_waits_as_backup() {
    let t0 = Instant::now();
    let mut s = Sim::new(
        t0,
        vec![
            node(cfg("a", "10.0.0.1", 150, Some(InitialState::Master)), t0),
            node(cfg("b", "10.0.0.2", 100, Some(InitialState::Backup)), t0),
        ],
    );
    s.run_until(ms(5_500));
    let now = s.now;
    s.inst(0).set_fault(now, true);
    s.flush();
    assert_eq!(s.inst(0).state(), State::Fault);
    assert_eq!(s.last(0, "fault"), Some(ms(5_500)));
    s.run_until(ms(8_000));
    assert_eq!(s.last(1, "master"), Some(ms(5_500) + us(609_375)));
    let now = s.now;
    s.inst(0).set_fault(now, false);
    s.flush();
    assert_eq!(s.inst(0).state(), State::Backup);
    s.run_until(ms(20_000));
    // Back as backup, it preempts the lower-priority master after its master-down interval.
    assert_eq!(s.inst(0).state(), State::Master);
    assert_eq!(s.inst(1).state(), State::Backup);
}

#[test]
fn track_script_weight_triggers_preemption() {
    let t0 = Instant::now();
    let mut s = Sim::new(
        t0,
        vec![
            node(cfg("a", "10.0.0.1", 100, Some(InitialState::Master)), t0),
            node(cfg("b", "10.0.0.2", 90, Some(InitialState::Backup)), t0),
        ],
    );
    s.run_until(ms(10_500));
    let mut chk = TrackScript::new("chk_nginx", Duration::from_secs(2), -20, 2, 2);
    assert_eq!(chk.record(false), None);
    let eff = chk.record(false);
    assert_eq!(eff, Some(TrackEffect::Priority(-20)));
    let now = s.now;
    s.inst(0).adjust_priority(now, -20);
    s.flush();
    assert_eq!(s.inst(0).effective_priority(), 80);
    assert!(s.log.iter().any(|(_, n, e)| *n == 0 && e == "prio100->80"));
    s.run_until(Duration::from_secs(20));
    // a (state MASTER, 100) advertises from 3.609375 s on; b's timer was last reset by the
    // priority-100 advert at 9.609375 s (the 10.609375 s one carries 80): master 3 + 166/256 s
    // later.
    assert_eq!(
        s.last(1, "master"),
        Some(mdi_100() + Duration::from_secs(6) + us(3_648_437) + Duration::from_nanos(500))
    );
    assert_eq!(s.inst(0).state(), State::Backup);
    // The script recovers: a (100 again) preempts b (90) back.
    assert_eq!(chk.record(true), None);
    assert_eq!(chk.record(true), Some(TrackEffect::Priority(0)));
    let now = s.now;
    s.inst(0).adjust_priority(now, 20);
    s.run_until(Duration::from_secs(30));
    assert_eq!(s.inst(0).state(), State::Master);
}

#[test]
fn advert_before_the_first_timeout_still_starts_master() {
    let t0 = Instant::now();
    let mut vr = Instance::new(cfg("a", "10.0.0.1", 150, Some(InitialState::Master)), t0).unwrap();
    assert_eq!(vr.state(), State::Backup);
    let lower = rvs_vrrp::Advert {
        version: Version::V2,
        vrid: 51,
        priority: 100,
        interval: 1,
        auth: Auth::pass("1c7f545a"),
        addrs: vec![ip("10.0.0.100")],
    };
    // A lower-priority advert is ignored (preemption): the start-up timer keeps running.
    assert_eq!(
        vr.handle_advert(t0 + ms(1_000), ip("10.0.0.2"), &lower),
        AdvertOutcome::Accepted
    );
    assert_eq!(vr.state(), State::Backup);
    assert_eq!(vr.poll_timeout(), Some(t0 + mdi_150()));
    vr.handle_timeout(t0 + mdi_150());
    assert_eq!(vr.state(), State::Master);
    // A higher-priority advert restarts the master-down timer: still backup at the time the
    // start-up timer would have run out.
    let higher = rvs_vrrp::Advert {
        priority: 200,
        ..lower
    };
    let mut vb = Instance::new(cfg("b", "10.0.0.1", 150, Some(InitialState::Master)), t0).unwrap();
    vb.handle_advert(t0 + ms(1_000), ip("10.0.0.2"), &higher);
    assert_eq!(vb.poll_timeout(), Some(t0 + ms(1_000) + mdi_150()));
    vb.handle_timeout(t0 + mdi_150());
    assert_eq!(vb.state(), State::Backup);
    assert_eq!(vb.master_address(), Some(ip("10.0.0.2")));
}

#[test]
fn state_master_waits_master_down_interval_only_owner_starts_at_once() {
    // keepalived 2.x vrrp_init_state: the 1 µs master-down timer is only for an owner (255)
    // wanting MASTER; `state MASTER` below 255 starts BACKUP with 3 * advert_int + skew.
    let t0 = Instant::now();
    let mut s = Sim::new(
        t0,
        vec![node(
            cfg("a", "10.0.0.1", 150, Some(InitialState::Master)),
            t0,
        )],
    );
    assert_eq!(s.inst(0).state(), State::Backup);
    assert_eq!(s.last(0, "backup"), Some(Duration::ZERO));
    assert_eq!(
        s.inst(0).poll_timeout(),
        Some(t0 + master_down_interval(150, Duration::from_secs(1)))
    );
    s.run_until(mdi_150() - Duration::from_nanos(1));
    assert_eq!(s.inst(0).state(), State::Backup);
    assert_eq!(s.count(0, "master"), 0);
    assert!(s.seen.is_empty());
    s.run_until(Duration::from_secs(10));
    // Exactly 3 * 1 s + (256 - 150) / 256 s, the same as with `state BACKUP`.
    assert_eq!(
        s.last(0, "master"),
        Some(us(3_414_062) + Duration::from_nanos(500))
    );
    assert_eq!(s.count(0, "master"), 1);
    assert_eq!(s.seen[0].at, mdi_150());

    // The owner (priority 255, `state MASTER` or no state) is master at once.
    for state in [Some(InitialState::Master), None] {
        let mut s = Sim::new(t0, vec![node(cfg("o", "10.0.0.1", 255, state), t0)]);
        assert_eq!(s.inst(0).poll_timeout(), Some(t0));
        s.run_until(Duration::ZERO);
        assert_eq!(s.last(0, "master"), Some(Duration::ZERO), "{state:?}");
        assert_eq!(s.count(0, "backup"), 0);
        assert_eq!(s.seen[0].at, Duration::ZERO);
    }

    // An owner configured `state BACKUP` (no vrrp_strict) waits like any backup:
    // 3 * 1 s + 1/256 s.
    let mut s = Sim::new(
        t0,
        vec![node(
            cfg("o", "10.0.0.1", 255, Some(InitialState::Backup)),
            t0,
        )],
    );
    s.run_until(Duration::from_secs(10));
    assert_eq!(
        s.last(0, "master"),
        Some(us(3_003_906) + Duration::from_nanos(250))
    );
}
