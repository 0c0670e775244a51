//! Seed 002's topology: two directors, each with a sync group of LVS_WAN and LVS_LAN.

mod sim;

use rvs_vrrp::codec::{Auth, Version};
use rvs_vrrp::config::InitialState;
use rvs_vrrp::{GroupState, Instance, InstanceConfig, State, SyncGroup};
use sim::Sim;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn director(t0: Instant, wan_src: &str, lan_src: &str, prio: u8, st: InitialState) -> SyncGroup {
    let mut wan = InstanceConfig::new(
        "LVS_WAN",
        Version::V2,
        100,
        ip(wan_src),
        vec![ip("113.226.77.88")],
    );
    wan.auth = Auth::pass("1c7f545a");
    let mut lan = InstanceConfig::new(
        "LVS_LAN",
        Version::V2,
        100,
        ip(lan_src),
        vec![ip("192.168.168.11")],
    );
    lan.auth = Auth::pass("9aa614f7");
    for c in [&mut wan, &mut lan] {
        c.priority = prio;
        c.initial_state = Some(st);
    }
    SyncGroup::new(
        "HK_GRP1",
        vec![
            Instance::new(wan, t0).unwrap(),
            Instance::new(lan, t0).unwrap(),
        ],
        t0,
    )
}

fn pair() -> Sim {
    let t0 = Instant::now();
    Sim::new(
        t0,
        vec![
            Box::new(director(
                t0,
                "113.226.77.1",
                "192.168.168.1",
                100,
                InitialState::Master,
            )),
            Box::new(director(
                t0,
                "113.226.77.2",
                "192.168.168.2",
                99,
                InitialState::Backup,
            )),
        ],
    )
}

fn states(s: &mut Sim, i: usize) -> Vec<State> {
    s.group(i).members().iter().map(Instance::state).collect()
}

#[test]
fn master_director_holds_both_vips() {
    let mut s = pair();
    s.run_until(Duration::from_secs(10));
    assert_eq!(states(&mut s, 0), vec![State::Master, State::Master]);
    assert_eq!(states(&mut s, 1), vec![State::Backup, State::Backup]);
    assert_eq!(s.group(0).state(), Some(GroupState::Master));
    assert_eq!(s.group(1).state(), Some(GroupState::Backup));
    assert_eq!(s.count(0, "group:master"), 1);
}

#[test]
fn one_interface_fault_moves_the_whole_group() {
    let mut s = pair();
    s.run_until(Duration::from_millis(5_500));
    // ifdown eth1 on the master: LVS_LAN faults, LVS_WAN follows into FAULT.
    let now = s.now;
    s.group(0).set_fault(now, 1, true);
    s.flush();
    assert_eq!(states(&mut s, 0), vec![State::Fault, State::Fault]);
    assert_eq!(s.group(0).state(), Some(GroupState::Fault));
    assert_eq!(s.last(0, "group:fault"), Some(Duration::from_millis(5_500)));
    // Both masters sent priority 0: the other director takes both after Skew_Time(99).
    s.run_until(Duration::from_secs(8));
    assert_eq!(states(&mut s, 1), vec![State::Master, State::Master]);
    assert_eq!(
        s.last(1, "group:master"),
        Some(Duration::from_millis(5_500) + us(613_281) + Duration::from_nanos(250))
    );
    // Link back: the group leaves FAULT as BACKUP and preempts both back (priority 100 > 99).
    let now = s.now;
    s.group(0).set_fault(now, 1, false);
    s.flush();
    assert_eq!(states(&mut s, 0), vec![State::Backup, State::Backup]);
    s.run_until(Duration::from_secs(20));
    assert_eq!(states(&mut s, 0), vec![State::Master, State::Master]);
    assert_eq!(states(&mut s, 1), vec![State::Backup, State::Backup]);
    assert_eq!(s.group(1).state(), Some(GroupState::Backup));
}

#[test]
fn killed_director_is_replaced_for_both_instances() {
    let mut s = pair();
    s.run_until(Duration::from_millis(10_500));
    s.kill(0);
    s.run_until(Duration::from_secs(20));
    assert_eq!(states(&mut s, 1), vec![State::Master, State::Master]);
    // Director 0 (`state MASTER`, 100) starts BACKUP like keepalived 2.x and is master after
    // 3 s + 156/256 s = 3.609375 s; its last adverts before the kill go out at 9.609375 s.
    // Director 1 (99) takes over 3 s + 157/256 s later.
    assert_eq!(s.last(0, "group:master"), Some(us(3_609_375)));
    assert_eq!(
        s.last(1, "0:master"),
        Some(us(9_609_375) + us(3_613_281) + Duration::from_nanos(250))
    );
    assert_eq!(s.last(1, "1:master"), s.last(1, "0:master"));
}

#[test]
fn one_member_losing_its_peer_does_not_split_the_group() {
    let mut s = pair();
    s.run_until(Duration::from_millis(10_500));
    // Only the LAN link goes silent: the backup's LAN member wants master, its WAN member
    // still hears the master, so the group stays BACKUP (keepalived prefers backup).
    s.cut_link = Some(1);
    s.run_until(Duration::from_secs(20));
    assert_eq!(states(&mut s, 1), vec![State::Backup, State::Backup]);
}

#[test]
fn one_member_yielding_takes_the_others_to_backup() {
    let t0 = Instant::now();
    let mut s = Sim::new(
        t0,
        vec![Box::new(director(
            t0,
            "113.226.77.1",
            "192.168.168.1",
            100,
            InitialState::Master,
        ))],
    );
    s.run_until(Duration::from_millis(3_500));
    // A standalone higher-priority router appears on the WAN segment only.
    let mut hi = InstanceConfig::new(
        "hi",
        Version::V2,
        100,
        ip("113.226.77.9"),
        vec![ip("113.226.77.88")],
    );
    hi.auth = Auth::pass("1c7f545a");
    hi.priority = 200;
    hi.initial_state = Some(InitialState::Master);
    let now = s.now;
    s.add(Box::new(Instance::new(hi, now).unwrap()));
    s.run_until(Duration::from_millis(3_600));
    assert_eq!(states(&mut s, 0), vec![State::Backup, State::Backup]);
    assert_eq!(s.group(0).state(), Some(GroupState::Backup));
}
