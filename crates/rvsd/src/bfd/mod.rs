//! keepalived's BFD process in rvsd: the `bfd_instance` sessions of keepalived.conf, run on a
//! thread of their own with [`rvs_bfd::Session`]s, so VRRP instances can track them
//! (`track_bfd`). Interoperates with keepalived's own BFD and any RFC 5880/5881 peer.
//!
//! Each session sends from its own socket ([`socket::sender`]); packets arrive on one socket per
//! family on UDP 3784 and go to the session named by Your Discriminator, or, while that is 0, to
//! the session of their source address. Packets below TTL 255 - `max_hops` are dropped (RFC
//! 5881's GTSM). Stopping sends AdminDown (diagnostic 7) so peers go down at once.

mod socket;

use std::collections::HashMap;
use std::net::{IpAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use rvs_bfd::{ControlPacket, Diag, Session, SessionConfig, State};
use rvs_keepalived::vrrp::BfdInstance;

/// Longest sleep of the BFD thread (it also looks at the stop flag this often).
const IDLE: Duration = Duration::from_millis(100);
/// How often the sessions' views are refreshed (and at every state change).
pub const VIEW_EVERY: Duration = Duration::from_millis(500);

/// Why the BFD sessions could not start.
#[derive(Debug, thiserror::Error)]
pub enum BfdError {
    /// UDP 3784 could not be bound (another BFD daemon on this host, most often).
    #[error("BFD: cannot listen on UDP port 3784 ({family})")]
    Listen {
        /// IPv4 or IPv6.
        family: &'static str,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The sessions' thread could not be started.
    #[error("BFD: cannot start its thread")]
    Thread(#[source] std::io::Error),
    /// A session's sending socket could not be set up.
    #[error("bfd_instance {name}: cannot open its socket to {neighbor}")]
    Sender {
        /// The instance.
        name: String,
        /// Its neighbour.
        neighbor: IpAddr,
        /// Why.
        #[source]
        error: std::io::Error,
    },
}

/// The sessions' states, shared with the VRRP instances that track them, and their views.
#[derive(Debug, Default)]
pub struct BfdStates {
    up: Mutex<HashMap<String, State>>,
    views: Mutex<Vec<rvs_api::BfdView>>,
    /// Woken at every change of a session's state (one per VRRP unit that tracks sessions).
    wakers: Mutex<Vec<Weak<BfdWaker>>>,
}

/// What a thread that tracks BFD sessions polls to hear of their changes at once (an
/// eventfd: readable after a change, until [`BfdWaker::clear`]).
#[derive(Debug)]
pub struct BfdWaker(EventFd);

impl BfdWaker {
    /// Takes the wake-up (after which the fd polls readable again only at the next change).
    pub fn clear(&self) {
        let _ = self.0.read();
    }

    fn wake(&self) {
        let _ = self.0.write(1);
    }
}

impl AsFd for BfdWaker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl BfdStates {
    /// Whether the `bfd_instance` named `name` is Up (an unknown name is not).
    pub fn is_up(&self, name: &str) -> bool {
        self.lock().get(name) == Some(&State::Up)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.up.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, name: &str, state: State) {
        let before = self.lock().insert(name.to_string(), state);
        if before != Some(state) {
            let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
            wakers.retain(|w| w.upgrade().inspect(|w| w.wake()).is_some());
        }
    }

    /// A waker told of every change of a session's state from now on (none if no eventfd
    /// could be made: the caller then looks at the states on its own schedule).
    pub fn waker(&self) -> Option<Arc<BfdWaker>> {
        let fd = match EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!("BFD: no eventfd for track_bfd ({e}); polling instead");
                return None;
            }
        };
        let waker = Arc::new(BfdWaker(fd));
        self.wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&waker));
        Some(waker)
    }

    /// Forgets every session but `names`.
    pub fn retain<'a>(&self, names: impl Iterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = names.collect();
        self.lock().retain(|k, _| keep.contains(k.as_str()));
        self.views
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|v| keep.contains(v.name.as_str()));
    }

    /// The sessions as `rvsadm --bfd` shows them (at most [`VIEW_EVERY`] old).
    pub fn views(&self) -> Vec<rvs_api::BfdView> {
        self.views
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn publish(&self, peers: &[Peer]) {
        let views = peers.iter().map(Peer::view).collect();
        *self.views.lock().unwrap_or_else(PoisonError::into_inner) = views;
    }
}

/// One configured session with its socket.
struct Peer {
    spec: BfdInstance,
    session: Session,
    tx: UdpSocket,
}

impl Peer {
    fn ends(&self) -> Ends {
        Ends {
            neighbor: self.spec.neighbor,
            source: self.spec.source,
            discriminator: self.session.local_discriminator(),
        }
    }

    fn view(&self) -> rvs_api::BfdView {
        let s = &self.session;
        rvs_api::BfdView {
            name: self.spec.name.clone(),
            neighbor: self.spec.neighbor,
            source: self.spec.source,
            state: s.state().name().into(),
            remote_state: s.remote_state().name().into(),
            diag: s.diag().name().into(),
            local_discriminator: s.local_discriminator(),
            remote_discriminator: s.remote_discriminator(),
            tx_interval_us: s.tx_interval_us().unwrap_or(0),
            detect_time_us: s.detect_time_us(),
        }
    }
}

/// The running BFD sessions.
pub struct BfdRuntime {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    changes: mpsc::Sender<Change>,
    states: Arc<BfdStates>,
    /// The instances the thread runs (once it has taken the last change).
    specs: Vec<BfdInstance>,
    /// Sessions started so far: each new one gets a different discriminator.
    started: usize,
}

/// A reload handed to the sessions' thread, everything that could fail already done.
struct Change {
    /// The instances to run, in order.
    specs: Vec<BfdInstance>,
    /// Sessions for the instances that are new or changed.
    fresh: Vec<Peer>,
    /// Receiving sockets for families that had none, by family (`true`: IPv6).
    receivers: Vec<(bool, UdpSocket)>,
    /// Told once the thread runs the new list.
    taken: mpsc::Sender<()>,
}

/// A discriminator for session `index`: non-zero, and different each start, so a peer that
/// still holds the previous incarnation's value does not take this one for it.
fn discriminator(index: usize) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed =
        nanos ^ std::process::id().rotate_left(16) ^ (index as u32).wrapping_mul(0x9e37_79b9);
    mixed.max(1)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl BfdRuntime {
    /// Opens the sockets and starts the sessions of `specs` on a thread, reporting their
    /// states in `states`.
    pub fn start(specs: &[BfdInstance], states: Arc<BfdStates>) -> Result<BfdRuntime, BfdError> {
        let (changes, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, states) = (stop.clone(), states.clone());
            std::thread::Builder::new()
                .name("bfd".into())
                .spawn(move || run(rx, &states, &stop))
                .map_err(BfdError::Thread)?
        };
        let mut rt = BfdRuntime {
            stop,
            thread: Some(thread),
            changes,
            states,
            specs: Vec::new(),
            started: 0,
        };
        rt.reload(specs)?;
        Ok(rt)
    }

    /// Runs the sessions `specs` asks for, as keepalived's reload does: a session whose
    /// instance is unchanged goes on as it is (its peers see nothing); a new or changed
    /// instance starts a session; one the list no longer has (or had changed) sends AdminDown
    /// and stops. On an error (a socket that cannot be opened) nothing has changed.
    pub fn reload(&mut self, specs: &[BfdInstance]) -> Result<(), BfdError> {
        let kept = |spec: &BfdInstance| {
            self.specs
                .iter()
                .any(|old| old.placeless() == spec.placeless())
        };
        let mut receivers = Vec::new();
        for (v6, family) in [(false, "IPv4"), (true, "IPv6")] {
            let wanted = specs.iter().any(|s| s.neighbor.is_ipv6() == v6);
            // The thread has a receiving socket for every family the running list has.
            let listening = self.specs.iter().any(|s| s.neighbor.is_ipv6() == v6);
            if wanted && !listening {
                let rx =
                    socket::receiver(v6).map_err(|error| BfdError::Listen { family, error })?;
                receivers.push((v6, rx));
            }
        }
        let mut fresh = Vec::new();
        for spec in specs.iter().filter(|s| !kept(s)) {
            fresh.push(self.peer(spec, self.started + fresh.len())?);
        }
        for peer in &fresh {
            self.states.set(&peer.spec.name, State::Down);
            tracing::info!(instance = peer.spec.name, neighbor = %peer.spec.neighbor,
                "BFD_Instance({}) Starting", peer.spec.name);
        }
        self.started += fresh.len();
        let (taken, told) = mpsc::channel();
        let change = Change {
            specs: specs.to_vec(),
            fresh,
            receivers,
            taken,
        };
        if self.changes.send(change).is_ok() {
            // The thread looks for changes at least every IDLE.
            let _ = told.recv_timeout(IDLE * 10);
        }
        self.specs = specs.to_vec();
        Ok(())
    }

    /// A session for `spec` with its sending socket; `index` picks its discriminator.
    fn peer(&self, spec: &BfdInstance, index: usize) -> Result<Peer, BfdError> {
        let disc = discriminator(index);
        let tx = socket::sender(spec.neighbor, spec.source, spec.ttl, disc).map_err(|error| {
            BfdError::Sender {
                name: spec.name.clone(),
                neighbor: spec.neighbor,
                error,
            }
        })?;
        let cfg = SessionConfig {
            desired_min_tx_us: micros(spec.min_tx),
            required_min_rx_us: micros(spec.min_rx),
            idle_tx_us: micros(spec.idle_tx),
            detect_mult: spec.multiplier,
            passive: spec.passive,
        };
        Ok(Peer {
            spec: spec.clone(),
            session: Session::new(cfg, disc, 0),
            tx,
        })
    }

    /// Stops the sessions: each sends AdminDown once, then the thread ends.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BfdRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What tells a session's packets from another's: its neighbour, its source address (if the
/// configuration sets one) and its local discriminator.
#[derive(Debug, Clone, Copy)]
struct Ends {
    neighbor: IpAddr,
    source: Option<IpAddr>,
    discriminator: u32,
}

/// The index of the session a packet from `from` to `to` belongs to, among `sessions`. The
/// sender must be the session's neighbour. A packet naming a session (Your Discriminator) is
/// that session's. One that does not yet (0) is the session's whose source address it was sent
/// to (RFC 5881 section 3: a session is its pair of addresses), else the neighbour's session
/// without a source address; when the kernel did not say where it was sent, the neighbour's
/// first session.
fn owner<I>(sessions: I, your_discriminator: u32, from: IpAddr, to: Option<IpAddr>) -> Option<usize>
where
    I: Iterator<Item = Ends> + Clone,
{
    let mut of_neighbor = sessions
        .enumerate()
        .filter(move |(_, s)| s.neighbor == from);
    let found = if your_discriminator != 0 {
        of_neighbor.find(|(_, s)| s.discriminator == your_discriminator)
    } else {
        of_neighbor
            .clone()
            .find(|(_, s)| s.source.is_some() && s.source == to)
            .or_else(|| of_neighbor.clone().find(|(_, s)| s.source.is_none()))
            .or_else(|| to.is_none().then(|| of_neighbor.next()).flatten())
    };
    found.map(|(i, _)| i)
}

fn send(peer: &Peer, p: &ControlPacket) {
    if let Err(e) = peer.tx.send(&p.emit()) {
        tracing::debug!(instance = peer.spec.name, "BFD send failed: {e}");
    }
}

/// Section 6.8.16: AdminDown tells the neighbour this end stops the session on purpose.
fn stop_session(peer: &mut Peer) {
    if let Some((_, told)) = peer.session.admin_down() {
        tracing::info!(
            instance = peer.spec.name,
            "BFD_Instance({}) Stopping",
            peer.spec.name
        );
        if let Some(p) = told {
            send(peer, &p);
        }
    }
}

/// Takes a reload: the sessions of unchanged instances go on, the fresh ones join, the others
/// stop; receivers of families no instance uses any more close.
fn apply(change: Change, peers: &mut Vec<Peer>, receivers: &mut Vec<(bool, UdpSocket)>) {
    let Change {
        specs,
        mut fresh,
        receivers: opened,
        taken,
    } = change;
    let mut old = std::mem::take(peers);
    for spec in &specs {
        let same = spec.placeless();
        if let Some(i) = old.iter().position(|p| p.spec.placeless() == same) {
            let mut peer = old.swap_remove(i);
            // The new file's place, for what is logged and shown.
            peer.spec = spec.clone();
            peers.push(peer);
        } else if let Some(i) = fresh.iter().position(|p| p.spec.name == spec.name) {
            peers.push(fresh.swap_remove(i));
        }
    }
    for gone in &mut old {
        stop_session(gone);
    }
    receivers.retain(|(v6, _)| specs.iter().any(|s| s.neighbor.is_ipv6() == *v6));
    receivers.extend(opened);
    let _ = taken.send(());
}

fn run(changes: mpsc::Receiver<Change>, states: &BfdStates, stop: &AtomicBool) {
    let epoch = Instant::now();
    let now_us = || u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut peers: Vec<Peer> = Vec::new();
    let mut receivers: Vec<(bool, UdpSocket)> = Vec::new();
    let mut buf = [0u8; 512];
    let mut published: Option<Instant> = None;
    let note = |peer: &Peer, t: rvs_bfd::Transition| {
        states.set(&peer.spec.name, t.to);
        let level_up = t.to == State::Up;
        let diag = if t.diag == Diag::NONE {
            String::new()
        } else {
            format!(" ({})", t.diag.name())
        };
        if level_up {
            tracing::info!(
                instance = peer.spec.name,
                "BFD_Instance({}) Entering UP state",
                peer.spec.name
            );
        } else {
            tracing::warn!(
                instance = peer.spec.name,
                "BFD_Instance({}) Entering {} state{diag}",
                peer.spec.name,
                t.to.name().to_uppercase()
            );
        }
    };
    while !stop.load(Ordering::SeqCst) {
        while let Ok(change) = changes.try_recv() {
            apply(change, &mut peers, &mut receivers);
            published = None;
        }
        if published.is_none_or(|t| t.elapsed() >= VIEW_EVERY) {
            states.publish(&peers);
            published = Some(Instant::now());
        }
        let now = now_us();
        for peer in &mut peers {
            if let Some(t) = peer.session.expire(now) {
                note(peer, t);
                published = None;
            }
            while let Some(p) = peer.session.transmit(now) {
                send(peer, &p);
            }
        }
        let next = peers
            .iter()
            .filter_map(|p| p.session.next_wakeup())
            .min()
            .map_or(IDLE, |at| {
                Duration::from_micros(at.saturating_sub(now_us()))
            })
            .min(IDLE);
        // Sub-millisecond waits round up to 1 ms rather than spin.
        let ms = u16::try_from(next.as_millis().max(u128::from(!next.is_zero()))).unwrap_or(100);
        let mut fds: Vec<PollFd> = receivers
            .iter()
            .map(|(_, r)| PollFd::new(r.as_fd(), PollFlags::POLLIN))
            .collect();
        let _ = nix::poll::poll(&mut fds, PollTimeout::from(ms));
        for (_, rx) in &receivers {
            loop {
                let got = match socket::receive(rx, &mut buf) {
                    Ok(Some(g)) => g,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!("BFD receive failed: {e}");
                        break;
                    }
                };
                let packet = match ControlPacket::parse(&buf[..got.len]) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(from = %got.from, "BFD packet discarded: {e}");
                        continue;
                    }
                };
                let sessions = peers.iter().map(Peer::ends);
                let Some(i) = owner(sessions, packet.your_discriminator, got.from, got.to) else {
                    tracing::debug!(from = %got.from, "BFD packet for no session");
                    continue;
                };
                let peer = &mut peers[i];
                let least = 255u8.saturating_sub(peer.spec.max_hops);
                if got.ttl != 0 && got.ttl < least {
                    tracing::debug!(
                        instance = peer.spec.name,
                        ttl = got.ttl,
                        "BFD packet below the TTL bound discarded"
                    );
                    continue;
                }
                if let Some(t) = peer.session.receive(&packet, now_us()) {
                    note(peer, t);
                    published = None;
                }
                while let Some(p) = peer.session.transmit(now_us()) {
                    send(peer, &p);
                }
            }
        }
    }
    for peer in &mut peers {
        stop_session(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(w: &BfdWaker) -> bool {
        let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
        nix::poll::poll(&mut fds, PollTimeout::ZERO).expect("poll") == 1
    }

    #[test]
    fn a_packet_goes_to_the_session_of_its_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("address");
        let (n, m) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let sessions = [
            Ends {
                neighbor: n,
                source: Some(ip("10.0.0.10")),
                discriminator: 1,
            },
            Ends {
                neighbor: n,
                source: Some(ip("10.0.0.11")),
                discriminator: 2,
            },
            Ends {
                neighbor: m,
                source: None,
                discriminator: 3,
            },
        ];
        let find =
            |yd, from, to: Option<&str>| owner(sessions.iter().copied(), yd, from, to.map(ip));
        // Not named yet: by the address it was sent to.
        assert_eq!(find(0, n, Some("10.0.0.11")), Some(1));
        assert_eq!(find(0, n, Some("10.0.0.10")), Some(0));
        assert_eq!(
            find(0, n, Some("10.0.0.12")),
            None,
            "no session of that address"
        );
        assert_eq!(find(0, n, None), Some(0), "the kernel did not say");
        assert_eq!(
            find(0, m, Some("10.0.0.12")),
            Some(2),
            "a session without a source"
        );
        // Named: by discriminator, from the session's neighbour only.
        assert_eq!(find(2, n, Some("10.0.0.10")), Some(1));
        assert_eq!(find(2, m, None), None);
        assert_eq!(find(9, n, None), None);
    }

    #[test]
    fn a_waker_hears_each_change_of_state_once() {
        let states = BfdStates::default();
        let w = states.waker().expect("an eventfd");
        assert!(!readable(&w));
        states.set("UPSTREAM", State::Down);
        assert!(readable(&w), "a new session");
        w.clear();
        assert!(!readable(&w));
        states.set("UPSTREAM", State::Down);
        assert!(!readable(&w), "no change, no wake-up");
        states.set("UPSTREAM", State::Up);
        assert!(readable(&w) && states.is_up("UPSTREAM"));
        w.clear();
        // A dropped waker is forgotten at the next change.
        drop(w);
        states.set("UPSTREAM", State::Down);
        assert_eq!(states.wakers.lock().expect("wakers").len(), 0);
    }
}
