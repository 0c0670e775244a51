//! One VRRP instance as a sans-I/O state machine (quinn's style): the caller feeds received
//! adverts and timeouts in, and drains transmits and events out.
//!
//! ```text
//! let mut vr = Instance::new(cfg, now)?;
//! loop {
//!     while let Some(t) = vr.poll_transmit() { send(t) }
//!     while let Some(e) = vr.poll_event() { act(e) }
//!     wait until vr.poll_timeout() or a packet; then
//!     vr.handle_timeout(now) or vr.handle_advert(now, src, &advert)
//! }
//! ```

use crate::codec::{Advert, Auth, IpContext, Version, MCAST_V4, MCAST_V6, VRRP_TTL};
use crate::config::{InitialState, InstanceConfig, PRIORITY_OWNER, PRIORITY_STOP};
use crate::error::ConfigError;
use crate::timing::{master_down_interval, skew_time};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created with MASTER wanted, before the first timeout.
    Init,
    /// Backup: listening, waiting for the master-down timer.
    Backup,
    /// Master: holds the VIPs and advertises.
    Master,
    /// Fault: a tracked interface or script failed.
    Fault,
    /// Shut down.
    Stopped,
}

/// An advert to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Source address to send from (the instance's primary address).
    pub src: IpAddr,
    /// Destination: the VRRP group (224.0.0.18 / ff02::12) or a unicast peer.
    pub dst: IpAddr,
    /// TTL / hop limit (always 255).
    pub ttl: u8,
    /// The VRRP message (no IP header), checksummed for `src` and `dst`.
    pub payload: Vec<u8>,
}

/// Something the caller must do or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Entered MASTER (run notify_master).
    BecameMaster,
    /// Entered BACKUP (run notify_backup).
    BecameBackup,
    /// Entered FAULT (run notify_fault).
    BecameFault,
    /// Shut down (run notify_stop).
    Stopped,
    /// Add these addresses (`virtual_ipaddress` and `_excluded`) to the interface.
    AddVips(Vec<IpAddr>),
    /// Remove these addresses from the interface.
    RemoveVips(Vec<IpAddr>),
    /// Send `count` gratuitous ARPs / unsolicited neighbour adverts for every VIP, `delay`
    /// apart (`vrrp_garp_interval`). The delayed and periodic bursts of `garp_master_delay`
    /// and `garp_master_refresh` are timed by the instance and arrive as further events.
    SendGratuitous {
        /// Messages per VIP.
        count: u32,
        /// Spacing between them.
        delay: Duration,
    },
    /// The effective priority changed (track script / interface weights).
    PriorityChanged {
        /// Before.
        from: u8,
        /// After.
        to: u8,
    },
}

/// Why a received advert was dropped (each is counted in [`Stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The instance is stopped or in fault.
    NotListening,
    /// Source of another family than the instance.
    Family,
    /// Our own advert (multicast loop).
    OwnAdvert,
    /// Other VRRP version.
    Version,
    /// Other virtual router id.
    Vrid,
    /// Authentication type differs.
    AuthType,
    /// PASS password differs.
    AuthFailure,
    /// v2 advert interval differs from ours (keepalived drops these).
    Interval,
    /// Address count or list differs from our `virtual_ipaddress`.
    AddressList,
    /// Unicast mode and the source is not a configured peer.
    NotAPeer,
}

/// What happened to a received advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvertOutcome {
    /// Passed the checks and was processed.
    Accepted,
    /// Failed a check.
    Dropped(DropReason),
}

/// Counters (keepalived's `vrrp_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Adverts accepted.
    pub advert_rcvd: u64,
    /// Adverts sent (one per send, not per peer).
    pub advert_sent: u64,
    /// Times MASTER was entered.
    pub become_master: u64,
    /// Times MASTER was left.
    pub release_master: u64,
    /// Priority-0 adverts received.
    pub pri_zero_rcvd: u64,
    /// Priority-0 adverts sent.
    pub pri_zero_sent: u64,
    /// Auth type mismatches.
    pub authtype_mismatch: u64,
    /// Password mismatches.
    pub auth_failure: u64,
    /// Advert interval mismatches.
    pub interval_mismatch: u64,
    /// VRID mismatches.
    pub vrid_err: u64,
    /// Version mismatches.
    pub version_err: u64,
    /// Address list mismatches.
    pub addr_list_err: u64,
    /// Adverts from non-peers in unicast mode, or of the wrong family.
    pub source_err: u64,
}

/// One VRRP instance.
#[derive(Debug)]
pub struct Instance {
    cfg: InstanceConfig,
    state: State,
    base_priority: u8,
    priority_delta: i32,
    own_fault: bool,
    group_fault: bool,
    master_adver_int: Duration,
    /// Master: next advert; Backup/Init: master down.
    timer: Option<Instant>,
    preempt_at: Option<Instant>,
    garp_delay_at: Option<Instant>,
    garp_refresh_at: Option<Instant>,
    sync_gated: bool,
    wants_master: bool,
    master_addr: Option<IpAddr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Instance {
    /// Creates an instance at `now`. The address owner (priority 255) wanting MASTER (its
    /// default when no `state` is given) becomes master at the first timeout, due at `now`
    /// (keepalived's 1 µs master-down timer); every other instance, `state MASTER` below 255
    /// and an owner configured `state BACKUP` included, enters BACKUP (reported, with VIP
    /// removal to clear leftovers) and waits Master_Down_Interval, as keepalived 2.x does
    /// (vrrp_scheduler.c `vrrp_init_state` takes the 1 µs path only for an owner wanting
    /// MASTER or a master being reloaded). keepalived's corrections apply ([`Instance::config`]
    /// shows the result): an owner or a `state MASTER` instance drops `nopreempt` and
    /// `preempt_delay`, and `nopreempt` drops `preempt_delay`.
    pub fn new(cfg: InstanceConfig, now: Instant) -> Result<Instance, ConfigError> {
        Instance::create(cfg, now, false)
    }

    /// Creates an instance that replaces, on a configuration reload, one that was MASTER:
    /// like keepalived's reload of a master, it takes the 1 µs path whatever its priority and
    /// state, so it is master again at the first timeout (due at `now`) and yields only to a
    /// higher-priority advert, without the master-down wait that would let a peer take over.
    pub fn resume_master(cfg: InstanceConfig, now: Instant) -> Result<Instance, ConfigError> {
        Instance::create(cfg, now, true)
    }

    fn create(
        mut cfg: InstanceConfig,
        now: Instant,
        resume_master: bool,
    ) -> Result<Instance, ConfigError> {
        cfg.validate()?;
        // keepalived's start-up corrections: nopreempt / preempt_delay do not apply to an
        // owner or to state MASTER, and nopreempt makes preempt_delay moot.
        if cfg.is_owner() || cfg.wanted_initial_state() == InitialState::Master {
            cfg.nopreempt = false;
            cfg.preempt_delay = Duration::ZERO;
        }
        if cfg.nopreempt {
            cfg.preempt_delay = Duration::ZERO;
        }
        let base_priority = cfg.priority;
        let master_adver_int = cfg.advert_interval;
        let mut vr = Instance {
            cfg,
            state: State::Init,
            base_priority,
            priority_delta: 0,
            own_fault: false,
            group_fault: false,
            master_adver_int,
            timer: Some(now),
            preempt_at: None,
            garp_delay_at: None,
            garp_refresh_at: None,
            sync_gated: false,
            wants_master: false,
            master_addr: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        };
        let fast = vr.cfg.is_owner() && vr.cfg.wanted_initial_state() == InitialState::Master;
        if !(fast || resume_master) {
            vr.enter_backup(now);
        }
        Ok(vr)
    }

    /// The configuration in use.
    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    /// Instance name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The priority advertised now: base plus tracking weights, kept within 1..=254 unless
    /// the instance is the address owner (whose priority weights never change).
    pub fn effective_priority(&self) -> u8 {
        if self.base_priority == PRIORITY_OWNER {
            return PRIORITY_OWNER;
        }
        (i32::from(self.base_priority) + self.priority_delta).clamp(1, 254) as u8
    }

    /// The advert interval of the current master (v3 learns it from the master's adverts).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_int
    }

    /// Address of the master last heard, if any.
    pub fn master_address(&self) -> Option<IpAddr> {
        self.master_addr
    }

    /// Whether `set_fault(true)` is in force.
    pub fn is_faulted(&self) -> bool {
        self.own_fault
    }

    /// When [`Instance::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timer, self.garp_delay_at, self.garp_refresh_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next advert to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Stopped {
            return;
        }
        if let Some(t) = self.garp_delay_at {
            if t <= now {
                self.garp_delay_at = None;
                self.gratuitous(self.cfg.garp_master_repeat);
            }
        }
        if let (Some(t), Some(every)) = (self.garp_refresh_at, self.cfg.garp_master_refresh) {
            if t <= now {
                self.garp_refresh_at = Some(now + every);
                self.gratuitous(self.cfg.garp_master_refresh_repeat);
            }
        }
        let Some(t) = self.timer else { return };
        if t > now {
            return;
        }
        match self.state {
            State::Master => {
                self.send_advert(self.effective_priority());
                self.timer = Some(now + self.cfg.advert_interval);
            }
            State::Init | State::Backup => {
                if self.sync_gated {
                    self.wants_master = true;
                    self.timer = None;
                } else {
                    self.become_master(now);
                }
            }
            State::Fault | State::Stopped => self.timer = None,
        }
    }

    /// Processes a received advert from `src` (already parsed, checksum verified, IP header
    /// checked with [`crate::codec::validate_ip_fields`]).
    pub fn handle_advert(&mut self, now: Instant, src: IpAddr, advert: &Advert) -> AdvertOutcome {
        if let Err(reason) = self.check(src, advert) {
            return AdvertOutcome::Dropped(reason);
        }
        self.stats.advert_rcvd += 1;
        if advert.priority == PRIORITY_STOP {
            self.stats.pri_zero_rcvd += 1;
        }
        match self.state {
            State::Init => {
                // The start-up timer is due at creation: run it first, as keepalived's 1 µs
                // master-down timer would have fired before any advert is read.
                self.handle_timeout(now);
                if self.state == State::Init {
                    let wanted = self.wants_master;
                    self.enter_backup(now);
                    self.wants_master = wanted;
                    self.backup_rx(now, src, advert);
                } else if self.state == State::Master {
                    self.master_rx(now, src, advert);
                }
            }
            State::Backup => self.backup_rx(now, src, advert),
            State::Master => self.master_rx(now, src, advert),
            State::Fault | State::Stopped => {}
        }
        AdvertOutcome::Accepted
    }

    /// Sets or clears the instance's own fault (a `track_interface` down, an unweighted
    /// `track_script` failing). Entering FAULT from MASTER sends a priority-0 advert and
    /// removes the VIPs; leaving it goes to BACKUP (an owner goes straight to MASTER).
    pub fn set_fault(&mut self, now: Instant, fault: bool) {
        self.own_fault = fault;
        self.apply_fault(now);
    }

    /// Adds `delta` to the tracking weight sum (a `track_script` weight applied or removed).
    pub fn adjust_priority(&mut self, now: Instant, delta: i32) {
        self.set_priority_delta(now, self.priority_delta.saturating_add(delta));
    }

    /// Sets the tracking weight sum. In BACKUP the master-down timer is moved by the change of
    /// Skew_Time, as keepalived does; a new priority is advertised from the next advert on.
    pub fn set_priority_delta(&mut self, now: Instant, delta: i32) {
        let before = self.effective_priority();
        self.priority_delta = delta;
        let after = self.effective_priority();
        if before == after {
            return;
        }
        self.events.push_back(Event::PriorityChanged {
            from: before,
            to: after,
        });
        if self.state == State::Backup {
            if let Some(t) = self.timer {
                let old = skew_time(before, self.master_adver_int);
                let new = skew_time(after, self.master_adver_int);
                let moved = if new >= old {
                    t + (new - old)
                } else {
                    t.checked_sub(old - new).unwrap_or(t)
                };
                self.timer = Some(moved.max(now));
            }
        }
    }

    /// Shuts the instance down: a master sends a priority-0 advert (so a backup takes over
    /// after Skew_Time) and releases its VIPs.
    pub fn shutdown(&mut self, _now: Instant) {
        if self.state == State::Stopped {
            return;
        }
        if self.state == State::Master {
            self.release_master(true);
        }
        self.state = State::Stopped;
        self.clear_timers();
        self.wants_master = false;
        self.events.push_back(Event::Stopped);
    }

    // ----- sync group hooks -----

    pub(crate) fn set_sync_gated(&mut self, gated: bool) {
        self.sync_gated = gated;
    }

    pub(crate) fn wants_master(&self) -> bool {
        self.wants_master
    }

    pub(crate) fn is_faulted_any(&self) -> bool {
        self.own_fault || self.group_fault
    }

    pub(crate) fn set_group_fault(&mut self, now: Instant, fault: bool) {
        self.group_fault = fault;
        self.apply_fault(now);
    }

    pub(crate) fn force_master(&mut self, now: Instant) {
        if matches!(self.state, State::Init | State::Backup) {
            self.become_master(now);
        }
    }

    pub(crate) fn force_backup(&mut self, now: Instant) {
        if self.state == State::Master {
            self.release_master(false);
            self.stats.release_master += 1;
            self.enter_backup(now);
        }
    }

    // ----- internals -----

    fn check(&mut self, src: IpAddr, advert: &Advert) -> Result<(), DropReason> {
        if matches!(self.state, State::Stopped | State::Fault) {
            return Err(DropReason::NotListening);
        }
        if src.is_ipv6() != self.cfg.src_ip.is_ipv6() {
            self.stats.source_err += 1;
            return Err(DropReason::Family);
        }
        if src == self.cfg.src_ip {
            return Err(DropReason::OwnAdvert);
        }
        if advert.version != self.cfg.version {
            self.stats.version_err += 1;
            return Err(DropReason::Version);
        }
        if advert.vrid != self.cfg.vrid {
            self.stats.vrid_err += 1;
            return Err(DropReason::Vrid);
        }
        if self.cfg.version == Version::V2 {
            if advert.auth.type_number() != self.cfg.auth.type_number() {
                self.stats.authtype_mismatch += 1;
                return Err(DropReason::AuthType);
            }
            if let (Auth::Pass(got), Auth::Pass(want)) = (advert.auth, self.cfg.auth) {
                if got != want {
                    self.stats.auth_failure += 1;
                    return Err(DropReason::AuthFailure);
                }
            }
            if advert.interval != self.cfg.interval_field() {
                self.stats.interval_mismatch += 1;
                return Err(DropReason::Interval);
            }
        }
        if advert.addrs.len() != self.cfg.vips.len()
            || self.cfg.vips.iter().any(|v| !advert.addrs.contains(v))
        {
            self.stats.addr_list_err += 1;
            return Err(DropReason::AddressList);
        }
        if !self.cfg.unicast_peers.is_empty() && !self.cfg.unicast_peers.contains(&src) {
            self.stats.source_err += 1;
            return Err(DropReason::NotAPeer);
        }
        Ok(())
    }

    fn backup_rx(&mut self, now: Instant, src: IpAddr, advert: &Advert) {
        let prio = self.effective_priority();
        if advert.priority == PRIORITY_STOP {
            // The master is leaving: take over after Skew_Time only.
            self.timer = Some(now + skew_time(prio, self.master_adver_int));
            return;
        }
        let preempt_held =
            !self.cfg.preempt_delay.is_zero() && self.preempt_at.is_none_or(|at| at > now);
        if self.cfg.nopreempt || advert.priority >= prio || preempt_held {
            if self.cfg.version == Version::V3 && advert.interval > 0 {
                self.master_adver_int = advert.interval_duration();
            }
            self.timer = Some(now + master_down_interval(prio, self.master_adver_int));
            self.master_addr = Some(src);
            self.wants_master = false;
            if !self.cfg.preempt_delay.is_zero() {
                if advert.priority >= prio {
                    self.preempt_at = None;
                } else if self.preempt_at.is_none() {
                    self.preempt_at = Some(now + self.cfg.preempt_delay);
                }
            }
        } else {
            // Preempting a lower-priority master: ignore its adverts so the master-down
            // timer runs out (RFC 3768 6.4.2, keepalived).
            self.master_addr = Some(src);
        }
    }

    fn master_rx(&mut self, now: Instant, src: IpAddr, advert: &Advert) {
        let prio = self.effective_priority();
        if advert.priority == PRIORITY_STOP {
            self.send_advert(prio);
            self.timer = Some(now + self.cfg.advert_interval);
            return;
        }
        let ours = self.cfg.src_ip;
        if advert.priority == prio && prio == PRIORITY_OWNER && src != ours {
            // keepalived: two owners is a configuration error; it lowers its own priority.
            self.base_priority = PRIORITY_OWNER - 1;
        }
        let prio = self.effective_priority();
        let higher = advert.priority > prio || (advert.priority == prio && src > ours);
        if !higher {
            if !self.cfg.lower_prio_no_advert {
                self.send_advert(prio);
            }
            let rep = self
                .cfg
                .garp_lower_prio_repeat
                .unwrap_or(self.cfg.garp_master_repeat);
            if rep > 0 {
                self.gratuitous(rep);
            }
            return;
        }
        if self.cfg.version == Version::V3 && advert.interval > 0 {
            self.master_adver_int = advert.interval_duration();
        }
        self.release_master(false);
        self.stats.release_master += 1;
        self.master_addr = Some(src);
        self.state = State::Backup;
        self.preempt_at = None;
        self.events.push_back(Event::BecameBackup);
        self.timer = Some(now + master_down_interval(prio, self.master_adver_int));
    }

    fn become_master(&mut self, now: Instant) {
        self.state = State::Master;
        self.wants_master = false;
        self.preempt_at = None;
        self.master_adver_int = self.cfg.advert_interval;
        self.master_addr = Some(self.cfg.src_ip);
        self.stats.become_master += 1;
        self.events.push_back(Event::AddVips(self.all_vips()));
        self.gratuitous(self.cfg.garp_master_repeat);
        self.events.push_back(Event::BecameMaster);
        self.send_advert(self.effective_priority());
        self.timer = Some(now + self.cfg.advert_interval);
        self.garp_delay_at =
            (!self.cfg.garp_master_delay.is_zero()).then(|| now + self.cfg.garp_master_delay);
        self.garp_refresh_at = self.cfg.garp_master_refresh.map(|every| now + every);
    }

    /// Leaves MASTER: optional priority-0 advert, VIP removal, GARP timers off.
    fn release_master(&mut self, send_stop: bool) {
        if send_stop {
            self.send_advert(PRIORITY_STOP);
            self.stats.pri_zero_sent += 1;
        }
        self.events.push_back(Event::RemoveVips(self.all_vips()));
        self.garp_delay_at = None;
        self.garp_refresh_at = None;
    }

    fn enter_backup(&mut self, now: Instant) {
        if self.state == State::Init {
            self.events.push_back(Event::RemoveVips(self.all_vips()));
        }
        self.state = State::Backup;
        self.master_adver_int = self.cfg.advert_interval;
        self.preempt_at = None;
        self.wants_master = false;
        self.events.push_back(Event::BecameBackup);
        self.timer =
            Some(now + master_down_interval(self.effective_priority(), self.master_adver_int));
    }

    fn apply_fault(&mut self, now: Instant) {
        let faulty = self.own_fault || self.group_fault;
        match (faulty, self.state) {
            (_, State::Stopped) => {}
            (true, State::Fault) | (false, State::Init | State::Backup | State::Master) => {}
            (true, prev) => {
                if prev == State::Master {
                    self.release_master(true);
                    self.stats.release_master += 1;
                }
                self.state = State::Fault;
                self.clear_timers();
                self.wants_master = false;
                self.events.push_back(Event::BecameFault);
            }
            (false, State::Fault) => {
                if self.base_priority == PRIORITY_OWNER {
                    self.become_master(now);
                } else {
                    self.enter_backup(now);
                }
            }
        }
    }

    fn clear_timers(&mut self) {
        self.timer = None;
        self.preempt_at = None;
        self.garp_delay_at = None;
        self.garp_refresh_at = None;
    }

    fn all_vips(&self) -> Vec<IpAddr> {
        self.cfg
            .vips
            .iter()
            .chain(&self.cfg.excluded_vips)
            .copied()
            .collect()
    }

    fn gratuitous(&mut self, count: u32) {
        if count > 0 && !(self.cfg.vips.is_empty() && self.cfg.excluded_vips.is_empty()) {
            self.events.push_back(Event::SendGratuitous {
                count,
                delay: self.cfg.garp_interval,
            });
        }
    }

    fn send_advert(&mut self, priority: u8) {
        let advert = Advert {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority,
            interval: self.cfg.interval_field(),
            auth: match self.cfg.version {
                Version::V2 => self.cfg.auth,
                Version::V3 => Auth::None,
            },
            addrs: self.cfg.vips.clone(),
        };
        let src = self.cfg.src_ip;
        let dsts: Vec<IpAddr> = if self.cfg.unicast_peers.is_empty() {
            vec![if src.is_ipv6() {
                MCAST_V6.into()
            } else {
                MCAST_V4.into()
            }]
        } else {
            self.cfg.unicast_peers.clone()
        };
        for dst in dsts {
            // The configuration was validated, so encoding cannot fail; skip if it does.
            if let Ok(payload) = advert.emit(&IpContext { src, dst }) {
                self.transmits.push_back(Transmit {
                    src,
                    dst,
                    ttl: VRRP_TTL,
                    payload,
                });
            }
        }
        self.stats.advert_sent += 1;
    }
}
