//! `vrrp_script` / `track_script` and `track_interface` logic as pure state: results go in,
//! a priority delta or a fault comes out. Running the script is the caller's job.

use std::time::Duration;

/// What a tracked object currently does to the instance tracking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackEffect {
    /// Adds this (possibly negative or zero) amount to the base priority.
    Priority(i32),
    /// Puts the instance into FAULT (an unweighted object that is down).
    Fault,
}

/// A tracked script with keepalived's rise/fall hysteresis.
///
/// Semantics as keepalived: with weight 0 a down script faults the instance; a positive weight
/// is added while the script is up, a negative weight while it is down; `reverse` inverts the
/// script's result for weighted scripts. The script starts up, or down with `init_fail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackScript {
    /// Name (`vrrp_script NAME`).
    pub name: String,
    /// How often the caller runs it.
    pub interval: Duration,
    /// `weight` (-253..=253).
    pub weight: i32,
    /// `reverse`.
    pub reverse: bool,
    /// Consecutive successes needed to go up.
    pub rise: u32,
    /// Consecutive failures needed to go down.
    pub fall: u32,
    up: bool,
    streak: u32,
}

impl TrackScript {
    /// A script in its initial state (up, or down with `init_fail`).
    pub fn new(name: &str, interval: Duration, weight: i32, rise: u32, fall: u32) -> Self {
        TrackScript {
            name: name.to_string(),
            interval,
            weight: weight.clamp(-253, 253),
            reverse: false,
            rise: rise.max(1),
            fall: fall.max(1),
            up: true,
            streak: 0,
        }
    }

    /// Sets `reverse`.
    pub fn reversed(mut self, reverse: bool) -> Self {
        self.reverse = reverse;
        self
    }

    /// Starts down (`init_fail`).
    pub fn init_fail(mut self) -> Self {
        self.up = false;
        self
    }

    /// Whether the script counts as up now.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Records one run's result (exit status 0 = success). Returns the new effect when the
    /// up/down state changed.
    pub fn record(&mut self, success: bool) -> Option<TrackEffect> {
        if success == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if success { self.rise } else { self.fall };
        if self.streak >= needed {
            self.up = success;
            self.streak = 0;
            Some(self.effect())
        } else {
            None
        }
    }

    /// The effect of the script's current state.
    pub fn effect(&self) -> TrackEffect {
        tracked_effect(self.weight, self.reverse, self.up)
    }
}

/// A tracked interface (`track_interface IF [weight N [reverse]]`): link up or down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInterface {
    /// Interface name.
    pub name: String,
    /// Weight (0 = fault when down).
    pub weight: i32,
    /// `reverse`.
    pub reverse: bool,
    /// Link state.
    pub up: bool,
}

impl TrackInterface {
    /// A tracked interface, assumed up.
    pub fn new(name: &str, weight: i32, reverse: bool) -> Self {
        TrackInterface {
            name: name.to_string(),
            weight: weight.clamp(-254, 254),
            reverse,
            up: true,
        }
    }

    /// Records a link change; returns the new effect when it changed.
    pub fn set_up(&mut self, up: bool) -> Option<TrackEffect> {
        if up == self.up {
            return None;
        }
        self.up = up;
        Some(self.effect())
    }

    /// The effect of the interface's current state.
    pub fn effect(&self) -> TrackEffect {
        tracked_effect(self.weight, self.reverse, self.up)
    }
}

fn tracked_effect(weight: i32, reverse: bool, up: bool) -> TrackEffect {
    if weight == 0 {
        return if up {
            TrackEffect::Priority(0)
        } else {
            TrackEffect::Fault
        };
    }
    let ok = up != reverse;
    match (weight > 0, ok) {
        (true, true) | (false, false) => TrackEffect::Priority(weight),
        _ => TrackEffect::Priority(0),
    }
}

/// Combines effects: the summed priority delta, and whether any object faults the instance.
pub fn combine<I: IntoIterator<Item = TrackEffect>>(effects: I) -> (i32, bool) {
    effects
        .into_iter()
        .fold((0, false), |(sum, fault), e| match e {
            TrackEffect::Priority(d) => (sum + d, fault),
            TrackEffect::Fault => (sum, true),
        })
}
