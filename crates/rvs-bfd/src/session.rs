//! One asynchronous-mode BFD session (RFC 5880 section 6.8): its state machine on received
//! packets, its detection timer, and when and what it transmits.
//!
//! Times are microseconds from an origin the caller chooses (a monotonic clock). The caller
//! feeds received packets to [`Session::receive`], calls [`Session::expire`] and
//! [`Session::transmit`] when [`Session::next_wakeup`] comes, and sends what `transmit` returns.

use crate::packet::{ControlPacket, Diag, State};

/// The least transmit interval while the session is not Up (section 6.8.3: at least 1 s).
pub const SLOW_TX_US: u32 = 1_000_000;

/// A session's settings (keepalived's `bfd_instance` keywords in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Desired Min TX Interval once Up, microseconds (`min_tx`).
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds (`min_rx`).
    pub required_min_rx_us: u32,
    /// Transmit interval while not Up, microseconds, at least 1 s (`idle_tx`).
    pub idle_tx_us: u32,
    /// Detection time multiplier (`multiplier`).
    pub detect_mult: u8,
    /// Send nothing until the neighbour has been heard (`passive`).
    pub passive: bool,
}

impl Default for SessionConfig {
    /// keepalived's defaults: 10 ms, 10 ms, 1 s idle, multiplier 5, active.
    fn default() -> SessionConfig {
        SessionConfig {
            desired_min_tx_us: 10_000,
            required_min_rx_us: 10_000,
            idle_tx_us: SLOW_TX_US,
            detect_mult: 5,
            passive: false,
        }
    }
}

/// A change of the session's state, with the diagnostic it was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state now.
    pub to: State,
    /// Why (for a change to Down: expired, or the neighbour signalled it).
    pub diag: Diag,
}

/// One BFD session.
#[derive(Debug, Clone)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    diag: Diag,
    local_disc: u32,
    remote_disc: u32,
    remote_state: State,
    remote_min_rx_us: u32,
    remote_min_tx_us: u32,
    remote_detect_mult: u8,
    /// A Poll Sequence of ours is running: packets carry P until an F arrives.
    polling: bool,
    /// A received Poll is to be answered with F at once.
    owe_final: bool,
    next_tx: Option<u64>,
    detect_at: Option<u64>,
    jitter: u32,
}

impl Session {
    /// A session in Down with discriminator `local_disc` (non-zero, unique on this system).
    /// An active session transmits at once.
    pub fn new(cfg: SessionConfig, local_disc: u32, now: u64) -> Session {
        Session {
            cfg,
            state: State::Down,
            diag: Diag::NONE,
            local_disc: local_disc.max(1),
            remote_disc: 0,
            remote_state: State::Down,
            // Section 6.8.1: initialised to 1 (microsecond), so the first packets go out at
            // the local rate.
            remote_min_rx_us: 1,
            remote_min_tx_us: 0,
            remote_detect_mult: 0,
            polling: false,
            owe_final: false,
            next_tx: (!cfg.passive).then_some(now),
            detect_at: None,
            jitter: local_disc | 1,
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The last diagnostic.
    pub fn diag(&self) -> Diag {
        self.diag
    }

    /// The local discriminator.
    pub fn local_discriminator(&self) -> u32 {
        self.local_disc
    }

    /// The neighbour's discriminator (0 until heard, and again after the detection time).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_disc
    }

    /// The neighbour's last state.
    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    /// The transmit interval in force before jitter, microseconds (`None`: the neighbour asks
    /// for no periodic packets).
    pub fn tx_interval_us(&self) -> Option<u32> {
        self.tx_interval()
    }

    /// The detection time in force, microseconds (0 until the neighbour is heard).
    pub fn detect_time_us(&self) -> u64 {
        self.detect_time()
    }

    /// The Desired Min TX Interval advertised now (the idle rate while not Up).
    fn local_min_tx(&self) -> u32 {
        if self.state == State::Up {
            self.cfg.desired_min_tx_us
        } else {
            self.cfg.idle_tx_us.max(SLOW_TX_US)
        }
    }

    /// The transmit interval before jitter (section 6.8.7); `None` when the neighbour asks for
    /// no periodic packets (Required Min RX 0).
    fn tx_interval(&self) -> Option<u32> {
        (self.remote_min_rx_us != 0).then(|| self.local_min_tx().max(self.remote_min_rx_us))
    }

    /// The detection time (section 6.8.4, asynchronous mode).
    fn detect_time(&self) -> u64 {
        u64::from(self.remote_detect_mult)
            * u64::from(self.cfg.required_min_rx_us.max(self.remote_min_tx_us))
    }

    /// The interval to the next periodic packet, jittered down by 0 to 25% (10 to 25% with a
    /// multiplier of 1), as section 6.8.7 requires.
    fn jittered(&mut self, interval: u32) -> u64 {
        // xorshift32: the jitter only needs to decorrelate, not to be secret.
        let mut x = self.jitter;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.jitter = x;
        let (lo, span) = if self.cfg.detect_mult == 1 {
            (75, 15)
        } else {
            (75, 25)
        };
        let pct = lo + u64::from(x % span);
        u64::from(interval) * pct / 100
    }

    fn set_state(&mut self, to: State, diag: Diag, now: u64) -> Option<Transition> {
        if to == self.state {
            return None;
        }
        let from = self.state;
        self.state = to;
        self.diag = diag;
        // The advertised Desired Min TX changes with Up (idle rate <-> configured rate): a
        // Poll Sequence announces it (section 6.8.3), and a packet goes out at once to tell
        // the neighbour of the new state (section 6.8.7).
        self.polling = true;
        if !self.cfg.passive || self.remote_disc != 0 {
            self.next_tx = Some(now);
        }
        Some(Transition { from, to, diag })
    }

    /// Takes a received packet that belongs to this session (the caller matched Your
    /// Discriminator, or the source address when it is 0). Returns the state change it caused.
    pub fn receive(&mut self, p: &ControlPacket, now: u64) -> Option<Transition> {
        self.remote_disc = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_min_rx_us = p.required_min_rx_us;
        self.remote_min_tx_us = p.desired_min_tx_us;
        self.remote_detect_mult = p.detect_mult;
        if p.final_ {
            self.polling = false;
        }
        if p.poll {
            self.owe_final = true;
        }
        if self.cfg.passive && self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
        if self.state == State::AdminDown {
            return None;
        }
        self.detect_at = Some(now + self.detect_time());
        // A shorter interval the neighbour now accepts takes effect at once; periodic packets
        // the neighbour stopped (Required Min RX 0) start again once it asks for them.
        match (self.next_tx, self.tx_interval()) {
            (Some(at), Some(interval)) => self.next_tx = Some(at.min(now + u64::from(interval))),
            (None, Some(_)) => self.next_tx = Some(now),
            _ => {}
        }
        let next = match (self.state, p.state) {
            (State::Down | State::Init | State::Up, State::AdminDown) => {
                (self.state != State::Down).then_some((State::Down, Diag::NEIGHBOR_DOWN))
            }
            (State::Down, State::Down) => Some((State::Init, Diag::NONE)),
            (State::Down, State::Init) => Some((State::Up, Diag::NONE)),
            (State::Init, State::Init | State::Up) => Some((State::Up, Diag::NONE)),
            (State::Up, State::Down) => Some((State::Down, Diag::NEIGHBOR_DOWN)),
            _ => None,
        };
        next.and_then(|(to, diag)| self.set_state(to, diag, now))
    }

    /// Runs the detection timer: past the detection time without a packet, an Init or Up
    /// session goes Down (diagnostic 1) and forgets the neighbour's discriminator.
    pub fn expire(&mut self, now: u64) -> Option<Transition> {
        let at = self.detect_at?;
        if now < at {
            return None;
        }
        self.detect_at = None;
        self.remote_disc = 0;
        self.remote_state = State::Down;
        match self.state {
            State::Init | State::Up => self.set_state(State::Down, Diag::EXPIRED, now),
            _ => None,
        }
    }

    /// The packet to send now, if one is due: a Final owed to a Poll (sent whatever the
    /// timer), or the periodic packet. Schedules the next one.
    pub fn transmit(&mut self, now: u64) -> Option<ControlPacket> {
        let due = self.next_tx.is_some_and(|t| t <= now);
        if !due && !self.owe_final {
            return None;
        }
        if self.cfg.passive && self.remote_disc == 0 {
            self.next_tx = None;
            self.owe_final = false;
            return None;
        }
        let final_ = std::mem::take(&mut self.owe_final);
        if due {
            self.next_tx = self
                .tx_interval()
                .map(|interval| now + self.jittered(interval).max(1));
        }
        // P and F are never set together (section 6.8.7).
        let poll = self.polling && !final_;
        Some(self.packet(poll, final_, self.cfg.required_min_rx_us))
    }

    /// The packet that tells the neighbour this session's state now.
    fn packet(&self, poll: bool, final_: bool, required_min_rx_us: u32) -> ControlPacket {
        ControlPacket {
            diag: self.diag,
            state: self.state,
            poll,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.cfg.detect_mult,
            my_discriminator: self.local_disc,
            your_discriminator: self.remote_disc,
            desired_min_tx_us: self.local_min_tx(),
            required_min_rx_us,
            required_min_echo_rx_us: 0,
        }
    }

    /// Takes the session down on purpose (section 6.8.16): it goes to AdminDown with
    /// diagnostic 7 and stops, and returns the packet that tells the neighbour so (none while
    /// the neighbour's discriminator is unknown: it would not know the session).
    pub fn admin_down(&mut self) -> Option<(Transition, Option<ControlPacket>)> {
        if self.state == State::AdminDown {
            return None;
        }
        let from = self.state;
        self.state = State::AdminDown;
        self.diag = Diag::ADMIN_DOWN;
        self.next_tx = None;
        self.detect_at = None;
        self.owe_final = false;
        self.polling = false;
        // Nothing more is wanted from the neighbour: Required Min RX 0.
        let told = (self.remote_disc != 0).then(|| self.packet(false, false, 0));
        let t = Transition {
            from,
            to: State::AdminDown,
            diag: Diag::ADMIN_DOWN,
        };
        Some((t, told))
    }

    /// When the session next needs [`Session::expire`] or [`Session::transmit`].
    pub fn next_wakeup(&self) -> Option<u64> {
        let fin = self.owe_final.then_some(0);
        [self.next_tx, self.detect_at, fin]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ms: u32) -> SessionConfig {
        SessionConfig {
            desired_min_tx_us: ms * 1000,
            required_min_rx_us: ms * 1000,
            idle_tx_us: SLOW_TX_US,
            detect_mult: 3,
            passive: false,
        }
    }

    /// Runs two sessions against each other (lossless, instant) until `until`, 1 ms steps;
    /// returns every transition of each.
    fn run(
        a: &mut Session,
        b: &mut Session,
        from: u64,
        until: u64,
        link: bool,
    ) -> (Vec<Transition>, Vec<Transition>) {
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        let mut now = from;
        while now <= until {
            ta.extend(a.expire(now));
            tb.extend(b.expire(now));
            while let Some(p) = a.transmit(now) {
                let p = crate::ControlPacket::parse(&p.emit()).expect("valid");
                if link {
                    tb.extend(b.receive(&p, now));
                }
            }
            while let Some(p) = b.transmit(now) {
                let p = crate::ControlPacket::parse(&p.emit()).expect("valid");
                if link {
                    ta.extend(a.receive(&p, now));
                }
            }
            now += 1000;
        }
        (ta, tb)
    }

    #[test]
    fn two_sessions_come_up_through_the_three_way_handshake() {
        let mut a = Session::new(cfg(50), 11, 0);
        let mut b = Session::new(cfg(50), 22, 0);
        let (ta, tb) = run(&mut a, &mut b, 0, 100_000, true);
        assert_eq!((a.state(), b.state()), (State::Up, State::Up));
        // The first to hear Down goes to Init; the other hears Init and goes straight to Up.
        let seq = |t: &[Transition]| t.iter().map(|t| t.to).collect::<Vec<_>>();
        let (sa, sb) = (seq(&ta), seq(&tb));
        assert!(
            (sa == [State::Init, State::Up] && sb == [State::Up])
                || (sb == [State::Init, State::Up] && sa == [State::Up]),
            "{sa:?} {sb:?}"
        );
        assert_eq!(a.remote_discriminator(), 22);
    }

    #[test]
    fn silence_takes_an_up_session_down_after_the_detection_time() {
        let mut a = Session::new(cfg(50), 11, 0);
        let mut b = Session::new(cfg(50), 22, 0);
        run(&mut a, &mut b, 0, 3_000_000, true);
        assert_eq!(a.state(), State::Up);
        // Up and polled: both now advertise 50 ms, so detection is 3 x 50 ms.
        let (ta, _) = run(&mut a, &mut b, 3_001_000, 3_300_000, false);
        assert_eq!(ta.len(), 1, "{ta:?}");
        assert_eq!((ta[0].to, ta[0].diag), (State::Down, Diag::EXPIRED));
        assert_eq!(a.remote_discriminator(), 0);
    }

    #[test]
    fn periodic_packets_follow_the_slower_of_both_sides_with_jitter() {
        let mut a = Session::new(cfg(50), 11, 0);
        let mut b = Session::new(cfg(200), 22, 0);
        run(&mut a, &mut b, 0, 3_000_000, true);
        assert_eq!(a.state(), State::Up);
        let mut sent = Vec::new();
        for now in (3_000_000..5_000_000).step_by(1000) {
            if let Some(p) = a.transmit(now) {
                sent.push(now);
                b.receive(&p, now);
            }
            if let Some(p) = b.transmit(now) {
                a.receive(&p, now);
            }
        }
        let gaps: Vec<u64> = sent.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(!gaps.is_empty());
        for g in &gaps {
            assert!(
                (150_000..=201_000).contains(g),
                "gap {g} us: b asks for 200 ms: {gaps:?}"
            );
        }
        assert!(gaps.iter().min() != gaps.iter().max(), "jittered: {gaps:?}");
    }

    #[test]
    fn a_poll_is_answered_with_a_final_at_once() {
        let mut a = Session::new(cfg(50), 11, 0);
        let _ = a.transmit(0);
        let poll = ControlPacket {
            diag: Diag::NONE,
            state: State::Down,
            poll: true,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 99,
            your_discriminator: 0,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 50_000,
            required_min_echo_rx_us: 0,
        };
        a.receive(&poll, 10);
        assert_eq!(a.next_wakeup(), Some(0), "due now");
        let f = a.transmit(11).expect("a Final at once");
        assert!(f.final_ && !f.poll, "{f:?}");
        assert_eq!(f.your_discriminator, 99);
    }

    #[test]
    fn admin_down_and_down_from_the_neighbour_take_the_session_down() {
        let mut a = Session::new(cfg(50), 11, 0);
        let mut b = Session::new(cfg(50), 22, 0);
        run(&mut a, &mut b, 0, 3_000_000, true);
        let mut p = b.transmit(3_100_000).unwrap_or_else(|| {
            let mut s = b.clone();
            s.next_tx = Some(0);
            s.transmit(0).expect("packet")
        });
        p.state = State::AdminDown;
        let t = a.receive(&p, 3_100_000).expect("down");
        assert_eq!((t.to, t.diag), (State::Down, Diag::NEIGHBOR_DOWN));
        // Down stays Down on AdminDown; Down from the neighbour restarts the handshake.
        assert_eq!(a.receive(&p, 3_100_001), None);
        p.state = State::Down;
        assert_eq!(a.receive(&p, 3_100_002).map(|t| t.to), Some(State::Init));
    }

    #[test]
    fn admin_down_tells_a_known_neighbour_and_stops() {
        let (mut a, mut b) = (Session::new(cfg(10), 1, 0), Session::new(cfg(10), 2, 0));
        run(&mut a, &mut b, 0, 100_000, true);
        assert_eq!(b.state(), State::Up);
        let (t, told) = a.admin_down().expect("a transition");
        assert_eq!(
            (t.from, t.to, t.diag),
            (State::Up, State::AdminDown, Diag::ADMIN_DOWN)
        );
        let p = told.expect("the neighbour is known");
        assert_eq!(
            (p.state, p.diag, p.your_discriminator),
            (State::AdminDown, Diag::ADMIN_DOWN, 2)
        );
        assert_eq!(p.required_min_rx_us, 0);
        assert_eq!(a.next_wakeup(), None, "nothing more is sent");
        let t = b.receive(&p, 101_000).expect("b goes down");
        assert_eq!((t.to, t.diag), (State::Down, Diag::NEIGHBOR_DOWN));
        assert!(a.admin_down().is_none(), "once");
        let mut lone = Session::new(cfg(10), 3, 0);
        assert!(
            lone.admin_down().expect("a transition").1.is_none(),
            "no neighbour heard"
        );
    }

    #[test]
    fn a_passive_session_waits_to_be_heard() {
        let mut passive = Session::new(
            SessionConfig {
                passive: true,
                ..cfg(50)
            },
            11,
            0,
        );
        assert!(passive.transmit(0).is_none());
        assert_eq!(passive.next_wakeup(), None);
        let mut b = Session::new(cfg(50), 22, 0);
        let p = b.transmit(0).expect("active sends");
        passive.receive(&p, 5);
        assert!(passive.transmit(5).is_some(), "heard: it answers");
    }

    #[test]
    fn periodic_packets_stop_and_resume_as_the_neighbour_asks() {
        let mut a = Session::new(cfg(50), 11, 0);
        let mut p = a.transmit(0).expect("first packet");
        p.my_discriminator = 22;
        p.your_discriminator = 11;
        p.required_min_rx_us = 0;
        a.receive(&p, 10);
        let _ = a.transmit(10);
        assert_eq!(
            a.transmit(5_000_000),
            None,
            "no periodic packets while asked for none"
        );
        p.required_min_rx_us = 50_000;
        a.receive(&p, 5_000_001);
        assert!(a.transmit(5_000_001).is_some(), "they resume");
    }

    #[test]
    fn not_up_the_session_advertises_the_idle_rate() {
        let mut a = Session::new(cfg(10), 11, 0);
        let p = a.transmit(0).expect("first packet");
        assert_eq!(p.desired_min_tx_us, SLOW_TX_US);
        assert_eq!(p.required_min_rx_us, 10_000);
        assert_eq!(p.state, State::Down);
    }
}
