//! A simulated clock and links for driving instances and sync groups without sockets.

#![allow(dead_code)]

use rvs_vrrp::codec::{Advert, IpContext};
use rvs_vrrp::{Event, GroupEvent, Instance, SyncGroup, Transmit};
use std::any::Any;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Anything the simulator can drive: a lone instance (link 0) or a sync group (link = member).
pub trait Node: Any {
    fn as_any(&mut self) -> &mut dyn Any;
    fn next_timeout(&self) -> Option<Instant>;
    fn timeout(&mut self, now: Instant);
    fn transmits(&mut self) -> Vec<(usize, Transmit)>;
    fn deliver(&mut self, now: Instant, link: usize, src: IpAddr, advert: &Advert);
    fn events(&mut self) -> Vec<String>;
}

impl Node for Instance {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn timeout(&mut self, now: Instant) {
        self.handle_timeout(now)
    }
    fn transmits(&mut self) -> Vec<(usize, Transmit)> {
        std::iter::from_fn(|| self.poll_transmit())
            .map(|t| (0, t))
            .collect()
    }
    fn deliver(&mut self, now: Instant, _link: usize, src: IpAddr, advert: &Advert) {
        self.handle_advert(now, src, advert);
    }
    fn events(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.poll_event())
            .map(|e| event_name(&e))
            .collect()
    }
}

impl Node for SyncGroup {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn timeout(&mut self, now: Instant) {
        self.handle_timeout(now)
    }
    fn transmits(&mut self) -> Vec<(usize, Transmit)> {
        std::iter::from_fn(|| self.poll_transmit()).collect()
    }
    fn deliver(&mut self, now: Instant, link: usize, src: IpAddr, advert: &Advert) {
        self.handle_advert(now, link, src, advert);
    }
    fn events(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.poll_event())
            .map(|e| match e {
                GroupEvent::Member { index, event } => format!("{index}:{}", event_name(&event)),
                GroupEvent::BecameMaster => "group:master".into(),
                GroupEvent::BecameBackup => "group:backup".into(),
                GroupEvent::BecameFault => "group:fault".into(),
            })
            .collect()
    }
}

pub fn event_name(e: &Event) -> String {
    match e {
        Event::BecameMaster => "master".into(),
        Event::BecameBackup => "backup".into(),
        Event::BecameFault => "fault".into(),
        Event::Stopped => "stopped".into(),
        Event::AddVips(_) => "add_vips".into(),
        Event::RemoveVips(_) => "remove_vips".into(),
        Event::SendGratuitous { count, .. } => format!("garp{count}"),
        Event::PriorityChanged { from, to } => format!("prio{from}->{to}"),
    }
}

/// One received advert, for assertions.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Duration,
    pub from: usize,
    pub link: usize,
    pub priority: u8,
}

pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub nodes: Vec<Box<dyn Node>>,
    pub alive: Vec<bool>,
    /// (time since start, node, event)
    pub log: Vec<(Duration, usize, String)>,
    pub seen: Vec<Seen>,
    /// Drop adverts on this link (None = deliver all).
    pub cut_link: Option<usize>,
}

impl Sim {
    pub fn new(start: Instant, nodes: Vec<Box<dyn Node>>) -> Sim {
        let n = nodes.len();
        let mut s = Sim {
            start,
            now: start,
            nodes,
            alive: vec![true; n],
            log: Vec::new(),
            seen: Vec::new(),
            cut_link: None,
        };
        s.flush();
        s
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Delivers every pending transmit (zero latency) until quiet, collecting events.
    pub fn flush(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                let evs = self.nodes[i].events();
                for e in evs {
                    self.log.push((self.now - self.start, i, e));
                }
                let txs = self.nodes[i].transmits();
                if !self.alive[i] {
                    continue;
                }
                for (link, t) in txs {
                    any = true;
                    if self.cut_link == Some(link) {
                        continue;
                    }
                    let ctx = IpContext {
                        src: t.src,
                        dst: t.dst,
                    };
                    let advert = Advert::parse(&t.payload, &ctx).expect("valid advert");
                    assert_eq!(t.ttl, 255);
                    self.seen.push(Seen {
                        at: self.now - self.start,
                        from: i,
                        link,
                        priority: advert.priority,
                    });
                    for j in 0..self.nodes.len() {
                        if j != i && self.alive[j] {
                            self.nodes[j].deliver(self.now, link, t.src, &advert);
                        }
                    }
                }
            }
            if !any {
                // One more pass to collect events raised by deliveries.
                let mut more = false;
                for i in 0..self.nodes.len() {
                    let evs = self.nodes[i].events();
                    more |= !evs.is_empty();
                    for e in evs {
                        self.log.push((self.now - self.start, i, e));
                    }
                }
                if !more {
                    return;
                }
            }
        }
    }

    /// Runs until `until` (time since start).
    pub fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        loop {
            let next = (0..self.nodes.len())
                .filter(|i| self.alive[*i])
                .filter_map(|i| self.nodes[i].next_timeout())
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for i in 0..self.nodes.len() {
                        if self.alive[i]
                            && self.nodes[i].next_timeout().is_some_and(|x| x <= self.now)
                        {
                            self.nodes[i].timeout(self.now);
                        }
                    }
                    self.flush();
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.elapsed() + d;
        self.run_until(until);
    }

    /// Adds a node started now.
    pub fn add(&mut self, node: Box<dyn Node>) -> usize {
        self.nodes.push(node);
        self.alive.push(true);
        self.flush();
        self.nodes.len() - 1
    }

    /// The node silently disappears (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.alive[i] = false;
    }

    /// When node `i` last logged `event` (time since start).
    pub fn last(&self, i: usize, event: &str) -> Option<Duration> {
        self.log
            .iter()
            .rev()
            .find(|(_, n, e)| *n == i && e == event)
            .map(|(t, _, _)| *t)
    }

    pub fn count(&self, i: usize, event: &str) -> usize {
        self.log
            .iter()
            .filter(|(_, n, e)| *n == i && e == event)
            .count()
    }

    /// The lone instance at `i`; call [`Sim::flush`] after poking it.
    pub fn inst(&mut self, i: usize) -> &mut Instance {
        self.nodes[i]
            .as_any()
            .downcast_mut::<Instance>()
            .expect("an Instance")
    }

    /// The sync group at `i`.
    pub fn group(&mut self, i: usize) -> &mut SyncGroup {
        self.nodes[i]
            .as_any()
            .downcast_mut::<SyncGroup>()
            .expect("a SyncGroup")
    }
}
