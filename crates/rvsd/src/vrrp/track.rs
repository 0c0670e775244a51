//! What a VRRP instance tracks: `vrrp_script`s run periodically with a timeout (their argv as
//! `rvs_keepalived` split it, executed without a shell, as keepalived does), `track_interface`
//! link states read from sysfs, and `track_bfd` sessions' states from rvsd's BFD thread.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_keepalived::vrrp::{Tracked, VrrpScript};
use rvs_vrrp::track::{combine, TrackEffect};
use rvs_vrrp::{TrackInterface, TrackScript};

/// One tracked script with its runner.
pub struct ScriptRunner {
    state: TrackScript,
    argv: Vec<String>,
    timeout: Duration,
    next_at: Instant,
    running: Option<(Child, Instant)>,
}

impl ScriptRunner {
    /// A runner for `spec` as tracked by `tracked` (whose weight overrides the script's).
    pub fn new(spec: &VrrpScript, tracked: &Tracked, now: Instant) -> ScriptRunner {
        let weight = tracked.weight.unwrap_or(spec.weight);
        let mut state = TrackScript::new(&spec.name, spec.interval, weight, spec.rise, spec.fall)
            .reversed(spec.reverse || tracked.reverse);
        if spec.init_fail {
            state = state.init_fail();
        }
        ScriptRunner {
            state,
            argv: spec.script.clone(),
            timeout: spec
                .timeout
                .unwrap_or(spec.interval)
                .max(Duration::from_millis(100)),
            next_at: now,
            running: None,
        }
    }

    /// When the runner next needs attention.
    pub fn next_due(&self) -> Instant {
        match &self.running {
            Some((_, started)) => (*started + self.timeout).min(Instant::now() + POLL),
            None => self.next_at,
        }
    }

    /// Starts a due run, collects a finished one. True when the script's effect changed.
    pub fn poll(&mut self, now: Instant) -> bool {
        if let Some((child, started)) = &mut self.running {
            let result = match child.try_wait() {
                Ok(Some(status)) => Some(status.success()),
                Ok(None) if now >= *started + self.timeout => {
                    tracing::warn!(script = self.state.name, "vrrp_script timed out, killed");
                    let _ = child.kill();
                    let _ = child.wait();
                    Some(false)
                }
                Ok(None) => None,
                Err(_) => Some(false),
            };
            let Some(ok) = result else {
                return false;
            };
            self.running = None;
            return self.state.record(ok).is_some();
        }
        if now < self.next_at {
            return false;
        }
        self.next_at = now + self.state.interval;
        let Some((program, args)) = self.argv.split_first() else {
            tracing::warn!(script = self.state.name, "vrrp_script has an empty command");
            return self.state.record(false).is_some();
        };
        let spawned = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => self.running = Some((child, now)),
            Err(e) => {
                tracing::warn!(script = self.state.name, "cannot run vrrp_script: {e}");
                return self.state.record(false).is_some();
            }
        }
        false
    }

    /// The script's current effect.
    pub fn effect(&self) -> TrackEffect {
        self.state.effect()
    }

    /// The script as keepalived reports it: name, `GOOD`/`BAD`, `idle`/`running`.
    pub fn view(&self) -> rvs_api::VrrpScriptView {
        rvs_api::VrrpScriptView {
            name: self.state.name.clone(),
            status: if self.state.is_up() { "GOOD" } else { "BAD" }.into(),
            state: if self.running.is_some() {
                "running"
            } else {
                "idle"
            }
            .into(),
        }
    }
}

impl Drop for ScriptRunner {
    fn drop(&mut self) {
        if let Some((child, _)) = &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How often link states and running scripts are looked at.
pub const POLL: Duration = Duration::from_millis(200);

/// Whether `ifname`'s link is up (operstate `up`, or `unknown` for devices that do not report
/// one); a missing interface is down.
pub fn link_up(ifname: &str) -> bool {
    match std::fs::read_to_string(format!("/sys/class/net/{ifname}/operstate")) {
        Ok(s) => matches!(s.trim(), "up" | "unknown"),
        Err(_) => false,
    }
}

/// How soon a change of a tracked BFD session is acted on when no waker could be made
/// ([`crate::bfd::BfdStates::waker`]; with one, a change wakes the instance at once).
const BFD_POLL: Duration = Duration::from_millis(10);

/// Everything one instance tracks.
pub struct Tracking {
    /// Scripts.
    pub scripts: Vec<ScriptRunner>,
    /// Interfaces (the instance's own interface first, unweighted: down = fault).
    pub interfaces: Vec<TrackInterface>,
    /// BFD sessions (`track_bfd`): up or down, with weights as interfaces have.
    pub bfds: Vec<TrackInterface>,
    bfd_states: Option<std::sync::Arc<crate::bfd::BfdStates>>,
    /// Readable once a BFD session changed state (while `bfds` has any).
    bfd_waker: Option<std::sync::Arc<crate::bfd::BfdWaker>>,
}

impl Tracking {
    /// Builds the tracking of one instance (its own plus its sync group's objects).
    pub fn new(
        own_interface: &str,
        interfaces: &[&Tracked],
        scripts: &[&Tracked],
        defs: &[VrrpScript],
        now: Instant,
    ) -> Tracking {
        let mut ifs = vec![TrackInterface::new(own_interface, 0, false)];
        ifs.extend(
            interfaces
                .iter()
                .map(|t| TrackInterface::new(&t.name, t.weight.unwrap_or(0), t.reverse)),
        );
        let scripts = scripts
            .iter()
            .filter_map(|t| match defs.iter().find(|d| d.name == t.name) {
                Some(d) => Some(ScriptRunner::new(d, t, now)),
                None => {
                    tracing::warn!(script = t.name, "track_script names no vrrp_script");
                    None
                }
            })
            .collect();
        Tracking {
            scripts,
            interfaces: ifs,
            bfds: Vec::new(),
            bfd_states: None,
            bfd_waker: None,
        }
    }

    /// Adds the `track_bfd` entries `tracked` (weights default to their `bfd_instance`'s, in
    /// `defs`), read from `states`. A name no `bfd_instance` has is ignored with a warning, as
    /// keepalived does.
    pub fn track_bfd(
        &mut self,
        tracked: &[&Tracked],
        defs: &[rvs_keepalived::vrrp::BfdInstance],
        states: std::sync::Arc<crate::bfd::BfdStates>,
    ) {
        for t in tracked {
            match defs.iter().find(|d| d.name == t.name) {
                Some(d) => {
                    let weight = t.weight.unwrap_or(d.weight);
                    let mut track = TrackInterface::new(&t.name, weight, t.reverse);
                    track.set_up(states.is_up(&t.name));
                    self.bfds.push(track);
                }
                None => tracing::warn!(bfd = t.name, "track_bfd names no bfd_instance, ignoring"),
            }
        }
        if !self.bfds.is_empty() {
            self.bfd_waker = states.waker();
        }
        self.bfd_states = Some(states);
    }

    /// What to poll to hear at once that a tracked BFD session changed state.
    pub fn bfd_waker(&self) -> Option<&crate::bfd::BfdWaker> {
        self.bfd_waker.as_deref()
    }

    /// Runs scripts and reads links; true when anything changed.
    pub fn poll(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for s in &mut self.scripts {
            changed |= s.poll(now);
        }
        for i in &mut self.interfaces {
            changed |= i.set_up(link_up(&i.name)).is_some();
        }
        if let Some(states) = &self.bfd_states {
            for b in &mut self.bfds {
                changed |= b.set_up(states.is_up(&b.name)).is_some();
            }
        }
        changed
    }

    /// The summed priority delta and whether the instance must be in FAULT.
    pub fn verdict(&self) -> (i32, bool) {
        combine(
            self.scripts
                .iter()
                .map(ScriptRunner::effect)
                .chain(self.interfaces.iter().map(TrackInterface::effect))
                .chain(self.bfds.iter().map(TrackInterface::effect)),
        )
    }

    /// When the scripts next need attention (and tracked BFD sessions, looked at every
    /// [`BFD_POLL`] when there is no waker).
    pub fn next_due(&self) -> Option<Instant> {
        let bfd =
            (!self.bfds.is_empty() && self.bfd_waker.is_none()).then(|| Instant::now() + BFD_POLL);
        self.scripts
            .iter()
            .map(ScriptRunner::next_due)
            .chain(bfd)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_keepalived::Span;

    /// Runs `argv` once as an `init_fail` script; true when it succeeded.
    fn runs_ok(argv: &[&str]) -> bool {
        let spec = VrrpScript {
            name: "t".into(),
            script: argv.iter().map(|a| a.to_string()).collect(),
            interval: Duration::from_secs(3600),
            timeout: Some(Duration::from_secs(5)),
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            user: None,
            init_fail: true,
            span: Span {
                file: "t.conf".into(),
                line: 1,
            },
        };
        let tracked = Tracked {
            name: "t".into(),
            weight: None,
            reverse: false,
        };
        let mut r = ScriptRunner::new(&spec, &tracked, Instant::now());
        assert_eq!(r.effect(), TrackEffect::Fault);
        let changed = r.poll(Instant::now());
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut changed = changed;
        while r.running.is_some() {
            assert!(Instant::now() < deadline, "script did not finish");
            std::thread::sleep(Duration::from_millis(10));
            changed |= r.poll(Instant::now());
        }
        assert_eq!(changed, r.effect() == TrackEffect::Priority(0));
        changed
    }

    #[test]
    fn script_arguments_arrive_unsplit_and_uninterpreted() {
        // One argument holding a space stays one argument.
        let one = ["sh", "-c", "[ $# = 1 ] && [ \"$1\" = 'a b' ]", "sh", "a b"];
        assert!(runs_ok(&one));
        assert!(runs_ok(&["test", "a b", "=", "a b"]));
        // Shell metacharacters in an argument are passed through, not interpreted.
        assert!(!runs_ok(&["test", "x; exit 0", "=", "y"]));
        assert!(!runs_ok(&["test", "$(echo a)", "=", "a"]));
        assert!(!runs_ok(&[]));
    }
}
