//! `vrrp_sync_group`: instances that change state together, as keepalived does.
//!
//! - If any member faults, every other member is forced into FAULT too (a master among them
//!   sends a priority-0 advert, so the peer group takes over after Skew_Time); when no member
//!   faults any more, all leave FAULT together.
//! - A member whose master-down timer expires does not take over alone: it waits until every
//!   member wants to (keepalived: "prefer backup state to avoid thrashing").
//! - Once any member is MASTER, the others are made MASTER too; once a master member yields
//!   to a higher-priority advert, the other masters go to BACKUP.
//!
//! Group-level transitions are reported for the group's notify scripts and smtp_alert.

use crate::codec::Advert;
use crate::instance::{AdvertOutcome, DropReason, Event, Instance, State, Transmit};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Instant;

/// The group's collective state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// All members are backups.
    Backup,
    /// All members are masters.
    Master,
    /// The group is in fault.
    Fault,
}

/// What a sync group reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// A member's own event.
    Member {
        /// Index of the member (order given to [`SyncGroup::new`]).
        index: usize,
        /// The event.
        event: Event,
    },
    /// The whole group became MASTER (group notify_master, smtp_alert).
    BecameMaster,
    /// The whole group became BACKUP.
    BecameBackup,
    /// The group entered FAULT.
    BecameFault,
}

/// A sync group owning its member instances.
#[derive(Debug)]
pub struct SyncGroup {
    name: String,
    members: Vec<Instance>,
    state: Option<GroupState>,
    events: VecDeque<GroupEvent>,
}

impl SyncGroup {
    /// Builds a group from its members (created with [`Instance::new`] at the same `now`).
    pub fn new(name: &str, members: Vec<Instance>, now: Instant) -> SyncGroup {
        let mut g = SyncGroup {
            name: name.to_string(),
            members,
            state: None,
            events: VecDeque::new(),
        };
        for m in &mut g.members {
            m.set_sync_gated(true);
        }
        let before = g.states();
        g.reconcile(now, &before);
        g
    }

    /// Group name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Collective state, once all members agree (or any faults).
    pub fn state(&self) -> Option<GroupState> {
        self.state
    }

    /// The members.
    pub fn members(&self) -> &[Instance] {
        &self.members
    }

    /// Index of the member called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name() == name)
    }

    /// Earliest timer of any member.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.members.iter().filter_map(Instance::poll_timeout).min()
    }

    /// The next advert to send, with the index of the member sending it.
    pub fn poll_transmit(&mut self) -> Option<(usize, Transmit)> {
        self.members
            .iter_mut()
            .enumerate()
            .find_map(|(i, m)| m.poll_transmit().map(|t| (i, t)))
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        self.events.pop_front()
    }

    /// Runs the timers due at `now` on every member.
    pub fn handle_timeout(&mut self, now: Instant) {
        let before = self.states();
        for m in &mut self.members {
            m.handle_timeout(now);
        }
        self.reconcile(now, &before);
    }

    /// Hands a received advert to member `index`.
    pub fn handle_advert(
        &mut self,
        now: Instant,
        index: usize,
        src: IpAddr,
        advert: &Advert,
    ) -> AdvertOutcome {
        let before = self.states();
        let Some(m) = self.members.get_mut(index) else {
            return AdvertOutcome::Dropped(DropReason::Vrid);
        };
        let out = m.handle_advert(now, src, advert);
        self.reconcile(now, &before);
        out
    }

    /// Sets or clears member `index`'s own fault.
    pub fn set_fault(&mut self, now: Instant, index: usize, fault: bool) {
        let before = self.states();
        if let Some(m) = self.members.get_mut(index) {
            m.set_fault(now, fault);
        }
        self.reconcile(now, &before);
    }

    /// Adjusts member `index`'s tracking weight sum.
    pub fn adjust_priority(&mut self, now: Instant, index: usize, delta: i32) {
        let before = self.states();
        if let Some(m) = self.members.get_mut(index) {
            m.adjust_priority(now, delta);
        }
        self.reconcile(now, &before);
    }

    /// Shuts every member down.
    pub fn shutdown(&mut self, now: Instant) {
        for m in &mut self.members {
            m.shutdown(now);
        }
        self.drain();
    }

    fn states(&self) -> Vec<State> {
        self.members.iter().map(Instance::state).collect()
    }

    fn reconcile(&mut self, now: Instant, before: &[State]) {
        let any_fault = self.members.iter().any(Instance::is_faulted);
        for m in &mut self.members {
            if any_fault && !m.is_faulted() {
                m.set_group_fault(now, true);
            } else if !any_fault && m.is_faulted_any() {
                m.set_group_fault(now, false);
            }
        }
        if !any_fault {
            let yielded = self
                .members
                .iter()
                .zip(before)
                .any(|(m, b)| *b == State::Master && m.state() == State::Backup);
            let any_master = self.members.iter().any(|m| m.state() == State::Master);
            let all_want = self
                .members
                .iter()
                .all(|m| m.state() == State::Master || m.wants_master());
            if yielded {
                for m in &mut self.members {
                    m.force_backup(now);
                }
            } else if any_master || all_want {
                for m in &mut self.members {
                    m.force_master(now);
                }
            }
        }
        self.drain();
        let states = self.states();
        let new = if states.contains(&State::Fault) {
            Some(GroupState::Fault)
        } else if states.iter().all(|s| *s == State::Master) {
            Some(GroupState::Master)
        } else if states.iter().all(|s| *s == State::Backup) {
            Some(GroupState::Backup)
        } else {
            self.state
        };
        if new != self.state {
            self.state = new;
            let ev = match new {
                Some(GroupState::Master) => Some(GroupEvent::BecameMaster),
                Some(GroupState::Backup) => Some(GroupEvent::BecameBackup),
                Some(GroupState::Fault) => Some(GroupEvent::BecameFault),
                None => None,
            };
            self.events.extend(ev);
        }
    }

    fn drain(&mut self) {
        for (index, m) in self.members.iter_mut().enumerate() {
            while let Some(event) = m.poll_event() {
                self.events.push_back(GroupEvent::Member { index, event });
            }
        }
    }
}
