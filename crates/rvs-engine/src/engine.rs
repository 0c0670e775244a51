//! The engine and its data plane: `handle` parses a frame, finds or creates its connection,
//! rewrites it in place (NAT) or leaves it untouched (direct routing) and returns a verdict.
//! The control plane is in `control.rs`.

use core::net::IpAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, MutexGuard};
use rvs_wire::ip;
use rvs_wire::tcp::Flags;

use crate::config::{DestRt, ServiceRt, Snapshot, WireKey};
use crate::conn::{Conn, ConnExt, F_CONTROL, F_FNAT, F_INACTIVE, F_LOCAL, F_NO_OUTPUT, F_TUNNEL};
use crate::conn_table::Shard;
use crate::datapath::{self, Layout, Parsed};
use crate::estimator::Estimator;
use crate::flow::{flow_hash, mark_addr, to16, to_ip, Direction, Tuple};
use crate::fullnat::{FnatConn, PortAllocator, PortKey};
use crate::icmp::{self, ConnAddrs};
use crate::nat::{self, Side};
use crate::persist::{TemplateKey, Templates};
use crate::proxy::{self, Insertion, ProxyState};
use crate::reasm::{Collected, Reassembled, Reassembler};
use crate::sched_core::SchedKey;
use crate::sctp_state;
use crate::spec::*;
use crate::synproxy::{self, CookieKey, SynProxied, SynProxyStats};
use crate::tcp_state::{next_state, TimeoutTable};
use crate::verdict::*;
use crate::view::*;

/// A shard behind its lock, on cache lines of its own, and a pointer to the addresses it
/// publishes for [`Engine::prefetch`].
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Padded {
    /// Where the shard's next reads land, read without the lock. First, on a line of its
    /// own: the lock's line is written by every worker that takes it.
    pub(crate) hint: HintLine,
    /// The shard.
    pub(crate) shard: Mutex<Shard>,
}

/// A pointer to a shard's [`crate::table_hint::TableHint`], alone on its cache line.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct HintLine(Arc<crate::table_hint::TableHint>);

impl std::ops::Deref for HintLine {
    type Target = crate::table_hint::TableHint;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Control-plane state: serialises configuration changes.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) next_id: u32,
    pub(crate) timeouts: Timeouts,
    pub(crate) policy: crate::policy::Policy,
    pub(crate) mark_rules: Vec<MarkRule>,
    pub(crate) estimators: HashMap<u32, Estimator>,
    /// Open [`Engine::batch`] calls: while above 0, service and real-server additions are
    /// staged instead of published.
    pub(crate) batch_depth: u32,
    /// The services staged by a batch, not yet published.
    pub(crate) staged: Option<crate::config::Staged>,
    /// Removed real servers that connections still hold (IPVS's dest trash), by service and
    /// endpoint: adding the same real server again revives it, and its connections forward
    /// again.
    pub(crate) trash: HashMap<(ServiceKey, IpAddr, u16), std::sync::Weak<DestRt>>,
    /// Deleted services whose real servers connections or templates still hold
    /// ([`crate::retired`]): adding the service again gives it back its id.
    pub(crate) retired: HashMap<ServiceKey, crate::config::RetiredService>,
    /// The data plane's bounds on the configuration, if it has any.
    pub(crate) bounds: Option<crate::ConfigBounds>,
    /// What the open batch's staged configuration holds of what the bounds count (kept as it
    /// adds; `None`: count again).
    pub(crate) bound_counts: Option<crate::bounds::Counts>,
}

/// The director core. `Send + Sync`: share it between worker threads with `Arc<Engine>`.
#[derive(Debug)]
pub struct Engine {
    /// The configuration (shared with the workers' [`crate::SnapshotCache`]s).
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(crate) control: Mutex<Control>,
    pub(crate) shards: Box<[Padded]>,
    shard_mask: u64,
    pub(crate) hasher: foldhash::fast::RandomState,
    pub(crate) drops: [AtomicU64; DropReason::ALL.len()],
    /// The most connections one shard may hold (`max_connections` over the shards).
    pub(crate) shard_cap: usize,
    /// FULLNAT local ports in use.
    pub(crate) local_ports: Arc<PortAllocator>,
    /// mh lookup table size (a prime of [`MH_TABLE_SIZES`]).
    pub(crate) mh_table_size: u32,
    /// Persistence templates.
    pub(crate) templates: Templates,
    /// Connection synchronization: export queue and counters.
    pub(crate) sync: crate::sync_state::SyncState,
    /// Fragments of datagrams being reassembled (rare: one lock for all workers).
    pub(crate) reasm: Mutex<Reassembler>,
    /// The SYN proxy's cookie secret.
    cookies: CookieKey,
    /// The SYN proxy's counters.
    pub(crate) synproxy: SynProxyStats,
    /// IPVS's defence switches (drop_entry, drop_packet, secure_tcp) and their state.
    pub(crate) defense: crate::defense::Defense,
    /// SYN-proxied connections ready for another data plane.
    pub(crate) handoff: crate::synproxy::Handoff,
}

/// The largest of IPVS's mh table primes not above `size` (251 at least).
fn mh_table_size(size: u32) -> u32 {
    MH_TABLE_SIZES
        .iter()
        .rev()
        .copied()
        .find(|&p| p <= size)
        .unwrap_or(MH_TABLE_SIZES[0])
}

impl Engine {
    /// Creates an engine with no services.
    pub fn new(config: EngineConfig) -> Engine {
        // At most 2^24 shards: the shard field of a flow hash is 24 bits wide.
        let n = config.shards.clamp(1, 1 << 24).next_power_of_two();
        let per_shard = config.expected_connections.div_ceil(n);
        let shard_cap = match config.max_connections {
            0 => usize::MAX,
            max => max.div_ceil(n),
        };
        let shards = (0..n)
            .map(|_| {
                let shard = Shard::new(per_shard);
                Padded {
                    hint: HintLine(shard.hint()),
                    shard: Mutex::new(shard),
                }
            })
            .collect();
        let timeouts = Timeouts::default();
        Engine {
            snapshot: Arc::new(ArcSwap::from_pointee(Snapshot::new(
                Vec::new(),
                Vec::new(),
                TimeoutTable::new(timeouts),
                crate::policy::Policy::default(),
                Vec::new(),
            ))),
            control: Mutex::new(Control {
                next_id: 0,
                timeouts,
                policy: crate::policy::Policy::default(),
                mark_rules: Vec::new(),
                estimators: HashMap::new(),
                batch_depth: 0,
                staged: None,
                trash: HashMap::new(),
                retired: HashMap::new(),
                bounds: None,
                bound_counts: None,
            }),
            shards,
            shard_mask: (n - 1) as u64,
            hasher: foldhash::fast::RandomState::default(),
            drops: Default::default(),
            shard_cap,
            local_ports: Arc::default(),
            mh_table_size: mh_table_size(config.mh_table_size),
            templates: Templates::new(n),
            sync: crate::sync_state::SyncState::default(),
            reasm: Mutex::new(Reassembler::new(config.reassembly)),
            cookies: CookieKey::new(),
            synproxy: Default::default(),
            defense: crate::defense::Defense::new(
                &crate::policy::Policy::default(),
                std::hash::BuildHasher::hash_one(&foldhash::fast::RandomState::default(), n),
            ),
            handoff: Default::default(),
        }
    }

    pub(crate) fn shard(&self, hash: u64) -> &Mutex<Shard> {
        &self.shards[self.shard_index(hash)].shard
    }

    pub(crate) fn shard_index(&self, hash: u64) -> usize {
        // Bits 32.. are used neither by the index's bucket mask nor by its tag byte.
        ((hash >> 32) & self.shard_mask) as usize
    }

    /// FULLNAT: picks a local address of the service (by client hash, then the others) and a
    /// free local port on it toward the real server whose reply hash selects the same shard
    /// as the client's hash, so both entries of the connection live in one shard.
    fn fullnat_local(&self, svc: &ServiceRt, t: &Tuple, dest: &DestRt, h: u64) -> Option<FnatConn> {
        let pool = &svc.spec.local_addrs;
        if pool.is_empty() {
            return None;
        }
        let shard = self.shard_index(h);
        let first = (h as usize) % pool.len();
        for i in 0..pool.len() {
            let laddr = to16(pool[(first + i) % pool.len()]);
            let key = PortKey {
                proto: t.proto,
                laddr,
                raddr: to16(dest.addr),
                rport: dest.port,
            };
            let lease = self.local_ports.allocate(key, |port| {
                self.shard_index(flow_hash(&self.hasher, t.proto, &laddr, port)) == shard
            });
            if let Some(local) = lease {
                let proxy = match (svc.spec.proxy_protocol, t.proto) {
                    (Some(version), ip::TCP) => Some(ProxyState::new(proxy::header(
                        version,
                        core::net::SocketAddr::new(to_ip(&t.src, t.v6), t.sport),
                        core::net::SocketAddr::new(to_ip(&t.dst, t.v6), t.dport),
                    ))),
                    _ => None,
                };
                return Some(FnatConn { local, proxy });
            }
        }
        None
    }

    /// Persistent scheduling (`ip_vs_sched_persist`): the client's (masked) template picks
    /// the destination, or a new template is made with the scheduler's pick. Returns the
    /// destination, the port toward it and the template. `data` is the packet's UDP data with
    /// its offset in the IP packet (empty otherwise), where `--pe sip` finds the Call-ID that
    /// also keys the template; without one the packet is refused as malformed (IPVS drops it:
    /// `ip_vs_sip_fill_param` fails).
    #[allow(clippy::too_many_arguments)]
    fn schedule_persistent(
        &self,
        now: Millis,
        svc: &ServiceRt,
        pers: &Persistence,
        t: &Tuple,
        key: &SchedKey,
        snap: &Snapshot,
        data: (&[u8], usize),
    ) -> Result<(Arc<DestRt>, u16, Arc<crate::persist::Template>), DropReason> {
        let pe_data = match pers.pe {
            None => None,
            Some(PersistenceEngine::Sip) => {
                let id = (t.proto == ip::UDP)
                    .then(|| crate::sip::call_id(data.0, data.1))
                    .flatten()
                    .ok_or(DropReason::Malformed)?;
                Some(Arc::from(id))
            }
        };
        // A port-0 or firewall-mark service: the template and the real server keep the client's
        // port. A firewall-mark template is IPVS's <IPPROTO_IP, client, 0, mark, 0>.
        let fwmark = svc.spec.key.fwmark;
        let any_port = fwmark != 0 || t.dport != svc.spec.key.port;
        let tkey = TemplateKey {
            svc_id: svc.id,
            proto: if fwmark != 0 { 0 } else { t.proto },
            v6: t.v6,
            client: crate::persist::mask(&t.src, &to16(pers.netmask)),
            vaddr: if fwmark != 0 {
                mark_addr(fwmark, t.v6)
            } else {
                t.dst
            },
            vport: if any_port { 0 } else { t.dport },
            pe_data,
        };
        let quiescent = snap.policy.expire_quiescent_template;
        let tpl = self
            .templates
            .get_or_schedule(
                tkey,
                now.0,
                u64::from(pers.timeout_s).saturating_mul(1000),
                |d| {
                    d.available.load(Ordering::Relaxed)
                        && !(quiescent && d.weight.load(Ordering::Relaxed) == 0)
                },
                || {
                    let d = svc.schedule(key)?;
                    let dport = if any_port { 0 } else { d.port };
                    Some((d, dport))
                },
            )
            .ok_or(DropReason::NoDestination)?;
        let dest = tpl.dest.clone();
        let dport = if !any_port && dest.port != 0 {
            dest.port
        } else {
            t.dport
        };
        Ok((dest, dport, tpl))
    }

    fn drop_packet(&self, reason: DropReason) -> Verdict {
        self.drops[reason.index()].fetch_add(1, Ordering::Relaxed);
        Verdict::Drop(reason)
    }

    // ------------------------------------------------------------------ data plane

    /// Handles one Ethernet frame: parses it, finds or creates its connection, rewrites it in
    /// place and says what to do with it. Never panics.
    ///
    /// A worker handling many packets saves the snapshot's load with
    /// [`Engine::handle_cached`].
    pub fn handle(&self, now: Millis, pkt: &mut PacketMeta, frame: &mut [u8]) -> Verdict {
        self.handle_under(&self.snapshot.load(), now, pkt, frame)
    }

    /// [`Engine::handle`] under the configuration `snap`.
    #[inline(always)]
    pub(crate) fn handle_under(
        &self,
        snap: &Snapshot,
        now: Millis,
        pkt: &mut PacketMeta,
        frame: &mut [u8],
    ) -> Verdict {
        let p = match datapath::parse(frame, pkt) {
            Ok(Some(p)) => p,
            Ok(None) => return Verdict::PassToKernel,
            Err(r) => return self.drop_packet(r),
        };
        if p.fragment {
            return if snap.takes_fragment(&p.flow.src, &p.flow.dst, p.lay.v6) {
                Verdict::Reassemble
            } else {
                Verdict::PassToKernel
            };
        }
        let mut cx = Cx {
            now,
            frame,
            p: &p,
            snap,
            meta: pkt,
        };
        match p.lay.proto {
            ip::TCP | ip::UDP | ip::SCTP => self.handle_l4(&mut cx),
            ip::ICMP if !p.lay.v6 => self.handle_icmp(&mut cx),
            ip::ICMPV6 if p.lay.v6 => self.handle_icmp(&mut cx),
            _ => Verdict::PassToKernel,
        }
    }

    /// Takes a fragment [`Engine::handle`] answered [`Verdict::Reassemble`] for, and returns
    /// its whole datagram once every fragment is in (then run it through `handle`). A fragment
    /// refused (invalid, or over the memory bound) is counted under
    /// [`DropReason::Fragmented`]; [`Engine::reassembly`] says more.
    pub fn reassemble(&self, now: Millis, frame: &[u8]) -> Option<Reassembled> {
        match self.reasm.lock().collect(now.0, frame) {
            Collected::Held => None,
            Collected::Complete(whole) => Some(whole),
            Collected::Refused(_) => {
                self.drop_packet(DropReason::Fragmented);
                None
            }
        }
    }

    fn handle_l4(&self, cx: &mut Cx<'_>) -> Verdict {
        let p = cx.p;
        let t = &p.flow;
        let key = WireKey {
            addr: &t.dst,
            port: t.dport,
            proto: t.proto,
        };
        if let Some(svc) = cx.snap.lookup(&key, t.v6) {
            return self.handle_to_service(cx, t, svc);
        }
        if cx.snap.retires(&key, t.v6) {
            if let Some(v) = self.to_retired(cx, t) {
                return v;
            }
        }
        // A reply from a real server?
        let h = flow_hash(&self.hasher, t.proto, &t.dst, t.dport);
        let mut shard = self.shard(h).lock();
        let Some(slot) = shard.find(h, Direction::Output, t) else {
            drop(shard);
            // From a service's own address and port: a real server replying through the
            // director that should not (counted for `rvsadm --doctor`; the kernel decides).
            let from = WireKey {
                addr: &t.src,
                port: t.sport,
                proto: t.proto,
            };
            if let Some(svc) = cx.snap.lookup(&from, t.v6) {
                svc.stray_replies.fetch_add(1, Ordering::Relaxed);
            }
            return Verdict::PassToKernel;
        };
        if shard.get(slot).is_some_and(|c| c.expires <= cx.now.0) {
            unlink(&mut shard, slot, &self.hasher);
            return Verdict::PassToKernel;
        }
        if p.ttl <= 1 {
            return self.drop_packet(DropReason::TtlExceeded);
        }
        self.deliver(shard, slot, Direction::Output, cx)
    }

    /// A client's packet to a deleted service ([`crate::retired`]): a connection of it still
    /// in the table has its real server unavailable, so the packet is dropped, as IPVS does
    /// (with expire_nodest_conn the connection goes, and the packet, no service taking it, is
    /// nobody's). None without a live connection: the packet is nobody's.
    fn to_retired(&self, cx: &mut Cx<'_>, t: &Tuple) -> Option<Verdict> {
        let h = flow_hash(&self.hasher, t.proto, &t.src, t.sport);
        let mut shard = self.shard(h).lock();
        let slot = shard.find(h, Direction::Input, t)?;
        let (expired, reusable, dest_gone) = shard
            .get(slot)
            .map(|c| found_conn(c, t, cx.p.flags, cx.now, cx.snap))?;
        // Past its time, a SYN IPVS takes for a new connection, or with expire_nodest_conn any
        // packet: the old one goes, and the packet, no service taking it, is the kernel's.
        if expired || reusable || (dest_gone && cx.snap.policy.expire_nodest_conn) {
            unlink(&mut shard, slot, &self.hasher);
            return None;
        }
        if !dest_gone {
            // Its server came back with its service since this snapshot was taken.
            if cx.p.ttl <= 1 {
                return Some(self.drop_packet(DropReason::TtlExceeded));
            }
            return Some(self.deliver(shard, slot, Direction::Input, cx));
        }
        Some(self.drop_packet(DropReason::NoDestination))
    }

    fn handle_to_service(&self, cx: &mut Cx<'_>, t: &Tuple, svc: &ServiceRt) -> Verdict {
        let (now, snap, flags) = (cx.now, cx.snap, cx.p.flags);
        let h = flow_hash(&self.hasher, t.proto, &t.src, t.sport);
        let mut shard = self.shard(h).lock();
        // A SYN (an INIT) usually opens a connection: the slot it will take is read while the
        // index is probed. Other packets usually find theirs, and would only wait for it.
        if is_new_conn(t.proto, flags) {
            shard.prepare_insert();
        }
        if let Some(slot) = shard.find(h, Direction::Input, t) {
            let (expired, reusable, dest_gone) = shard
                .get(slot)
                .map_or((true, false, false), |c| found_conn(c, t, flags, now, snap));
            // An ACK whose cookie the BPF program checked opens a new connection: one of the
            // same tuple left over (in TIME_WAIT, the client's port used again) is replaced,
            // as a SYN replaces it (the program answered that SYN without asking).
            let reusable =
                reusable || (cx.meta.cookie_checked && stale_for_cookie(&shard, slot, cx));
            if !expired && !reusable {
                if !dest_gone {
                    if cx.p.ttl <= 1 {
                        return self.drop_packet(DropReason::TtlExceeded);
                    }
                    return self.deliver(shard, slot, Direction::Input, cx);
                }
                // The real server was removed: IPVS drops the packet; with expire_nodest_conn
                // it expires the connection and handles the packet as a new one (ip_vs_in_hook
                // since 5.9): a SYN goes to a server still there.
                if !snap.policy.expire_nodest_conn {
                    return self.drop_packet(DropReason::NoDestination);
                }
            }
            unlink(&mut shard, slot, &self.hasher);
        }
        if t.proto == ip::TCP && snap.policy.syn_proxy && proxied_service(svc) {
            match flags & (Flags::SYN | Flags::ACK | Flags::RST) {
                Flags::SYN => {
                    drop(shard);
                    if self.defense.drops_new_connection() {
                        return self.drop_packet(DropReason::DefenseDropPacket);
                    }
                    return self.answer_syn(cx, t);
                }
                Flags::ACK => return self.proxied_ack(shard, h, cx, t, svc),
                _ => {}
            }
        }
        // A RST never creates a connection; another non-SYN only with sloppy_tcp. SCTP: an
        // INIT, or with sloppy_sctp any chunk but an ABORT (`sctp_conn_schedule`).
        match t.proto {
            ip::TCP
                if flags & Flags::RST != 0
                    || (flags & Flags::SYN == 0 && !snap.policy.sloppy_tcp) =>
            {
                return self.drop_packet(DropReason::NoConnectionNonSyn);
            }
            ip::SCTP if !sctp_state::may_schedule(flags, snap.policy.sloppy_sctp) => {
                return self.drop_packet(DropReason::NoConnectionNonSyn);
            }
            _ => {}
        }
        if cx.p.ttl <= 1 {
            return self.drop_packet(DropReason::TtlExceeded);
        }
        // IPVS's drop_packet: while memory is short, one new connection in `rate` goes.
        if self.defense.drops_new_connection() {
            return self.drop_packet(DropReason::DefenseDropPacket);
        }
        let lay = &cx.p.lay;
        // A UDP datagram's data and its offset in the IP packet (for `--pe sip`).
        let data = match (t.proto, cx.frame.get(lay.l3..lay.end)) {
            (ip::UDP, Some(l3)) => {
                let off = lay.l4 - lay.l3 + 8;
                (l3.get(off..).unwrap_or_default(), off)
            }
            _ => (&[][..], 0),
        };
        let slot = match self.new_conn(&mut shard, h, now, t, svc, snap, data) {
            NewConn::Created(slot) => slot,
            NewConn::Refused(reason) => return self.drop_packet(reason),
            NewConn::OnePacket {
                dest,
                dport,
                method_flag,
            } => return self.one_packet(shard, svc, (&dest, dport, method_flag), cx),
        };
        self.deliver(shard, slot, Direction::Input, cx)
    }

    /// The SYN proxy's answer to a client's SYN: the frame turned into a SYN-ACK with a cookie,
    /// back to the client; nothing kept.
    fn answer_syn(&self, cx: &mut Cx<'_>, t: &Tuple) -> Verdict {
        let lay = cx.p.lay;
        let Some(seg) = synproxy::segment(cx.frame, &lay) else {
            return self.drop_packet(DropReason::Malformed);
        };
        let mss = synproxy::client_mss(cx.frame, &seg);
        let (cookie, mss) = self.cookies.make(t, seg.seq, cx.now.0, mss);
        synproxy::answer_syn(cx.frame, &lay, &seg, cookie, mss);
        cx.meta.csum_partial = false;
        self.synproxy.answered.fetch_add(1, Ordering::Relaxed);
        Verdict::Forward {
            next_hop_ip: to_ip(&t.src, t.v6),
            l3_offset: lay.l3,
        }
    }

    /// A client's ACK without a connection, to a service the SYN proxy serves: with a valid
    /// cookie, the connection is scheduled and the ACK goes on to the real server turned into
    /// the SYN it would have had; otherwise it is dropped.
    fn proxied_ack(
        &self,
        mut shard: MutexGuard<'_, Shard>,
        h: u64,
        cx: &mut Cx<'_>,
        t: &Tuple,
        svc: &ServiceRt,
    ) -> Verdict {
        let p = cx.p;
        let Some(seg) = synproxy::segment(cx.frame, &p.lay) else {
            return self.drop_packet(DropReason::Malformed);
        };
        let isn = seg.seq.wrapping_sub(1);
        let cookie = seg.ack.wrapping_sub(1);
        let checked = cx.meta.cookie_checked.then_some(if t.v6 {
            synproxy::DEFAULT_MSS_V6
        } else {
            synproxy::DEFAULT_MSS_V4
        });
        let Some(mss) = checked.or_else(|| self.cookies.check(t, isn, cx.now.0, cookie)) else {
            self.synproxy.bad_cookies.fetch_add(1, Ordering::Relaxed);
            return self.drop_packet(DropReason::NoConnectionNonSyn);
        };
        if p.ttl <= 1 {
            return self.drop_packet(DropReason::TtlExceeded);
        }
        let slot = match self.new_conn(&mut shard, h, cx.now, t, svc, cx.snap, (&[], 0)) {
            NewConn::Created(slot) => slot,
            NewConn::Refused(reason) => return self.drop_packet(reason),
            NewConn::OnePacket { .. } => return self.drop_packet(DropReason::UnsupportedProtocol),
        };
        let sp = SynProxied {
            cookie,
            client_isn: isn,
            window: seg.window,
            mss,
            syn_sent_ms: cx.now.0,
            delta: None,
        };
        self.synproxy.opened.fetch_add(1, Ordering::Relaxed);
        self.send_syn(shard, slot, sp, cx, &seg)
    }

    /// Sends the client's segment `seg` on to the real server of the proxied connection in
    /// `slot` turned into its SYN (the first time from the client's ACK, again when the server
    /// has not answered for a while).
    fn send_syn(
        &self,
        mut shard: MutexGuard<'_, Shard>,
        slot: u32,
        sp: SynProxied,
        cx: &mut Cx<'_>,
        seg: &synproxy::Segment,
    ) -> Verdict {
        let p = cx.p;
        let sp = SynProxied {
            syn_sent_ms: cx.now.0,
            ..sp
        };
        shard.set_synproxied(slot, sp);
        let inserted = synproxy::ack_to_syn(cx.frame, &p.lay, seg, &sp);
        cx.meta.csum_partial = false;
        let syn = Parsed {
            flags: Flags::SYN,
            csum_partial: false,
            lay: Layout {
                end: synproxy::syn_end(seg, inserted.is_some()),
                ..p.lay
            },
            ..*p
        };
        let mut cx = Cx {
            now: cx.now,
            frame: &mut *cx.frame,
            p: &syn,
            snap: cx.snap,
            meta: &mut *cx.meta,
        };
        match (
            self.deliver(shard, slot, Direction::Input, &mut cx),
            inserted,
        ) {
            (
                Verdict::Forward {
                    next_hop_ip,
                    l3_offset,
                },
                Some(option),
            ) => {
                let mut insert = Insertion {
                    bytes: [0; proxy::MAX_HEADER],
                    len: option.len() as u16,
                };
                insert.bytes[..option.len()].copy_from_slice(&option);
                Verdict::ForwardInsert {
                    next_hop_ip,
                    l3_offset,
                    payload_offset: syn.lay.end,
                    end: syn.lay.end,
                    insert,
                }
            }
            (verdict, _) => verdict,
        }
    }

    /// The real server's SYN-ACK on a connection the SYN proxy opened: the shift of the
    /// connection's numbers is known from it, the connection is established (the client
    /// finished its handshake already), and the frame goes back to the real server turned
    /// into the client's ACK. A SYN-ACK sent again gets the ACK again.
    fn server_answered(
        &self,
        mut shard: MutexGuard<'_, Shard>,
        slot: u32,
        sp: SynProxied,
        cx: &mut Cx<'_>,
    ) -> Verdict {
        let (p, now) = (cx.p, cx.now);
        let Some(seg) = synproxy::segment(cx.frame, &p.lay) else {
            return self.drop_packet(DropReason::Malformed);
        };
        let sp = SynProxied {
            delta: Some(sp.cookie.wrapping_sub(seg.seq)),
            ..sp
        };
        shard.set_synproxied(slot, sp);
        let Some(c) = shard.get_mut(slot) else {
            return Verdict::PassToKernel;
        };
        c.set_active(true);
        c.state = ConnState::Established as u8;
        c.expires = now
            .0
            .saturating_add(cx.snap.timeouts.of(ConnState::Established));
        let (ids, server) = ([c.svc_id, c.dest.id], *c.daddr());
        self.handoff.offer(c);
        shard.count(ids, Direction::Output, u64::from(p.ip_len));
        drop(shard);
        synproxy::synack_to_ack(cx.frame, &p.lay, &seg, &sp);
        cx.meta.csum_partial = false;
        Verdict::Forward {
            next_hop_ip: to_ip(&server, p.lay.v6),
            l3_offset: p.lay.l3,
        }
    }

    /// Schedules a new connection for tuple `t` of `svc` (`ip_vs_schedule`) and inserts it
    /// into `shard` (whose hash is `h`); `data` as for [`Self::schedule_persistent`].
    #[allow(clippy::too_many_arguments)]
    fn new_conn(
        &self,
        shard: &mut Shard,
        h: u64,
        now: Millis,
        t: &Tuple,
        svc: &ServiceRt,
        snap: &Snapshot,
        data: (&[u8], usize),
    ) -> NewConn {
        // At the bound: refused before any scheduling, so a flood costs no scheduler work.
        if shard.len() >= self.shard_cap {
            return NewConn::Refused(DropReason::TableFull);
        }
        let key = SchedKey {
            src: t.src,
            dst: t.dst,
            sport: t.sport,
            v6: t.v6,
            now_ms: now.0,
        };
        let (dest, dport, control) = match &svc.spec.persistence {
            None => match svc.schedule(&key) {
                Some(dest) => {
                    // A destination without a port (of a firewall-mark service) keeps the
                    // client's (`ip_vs_schedule`: `dest->port ? dest->port : vport`).
                    let dport = if dest.port == 0 { t.dport } else { dest.port };
                    (dest, dport, None)
                }
                None => return NewConn::Refused(DropReason::NoDestination),
            },
            Some(pers) => match self.schedule_persistent(now, svc, pers, t, &key, snap, data) {
                Ok((dest, dport, tpl)) => (dest, dport, Some(tpl)),
                Err(reason) => return NewConn::Refused(reason),
            },
        };
        // A NAT real server that is its own client: the director sends it a packet from
        // itself, which it answers directly (seed 002). Counted for `rvsadm --doctor`.
        if dest.method() == ForwardMethod::Masq && dest.addr16 == t.src {
            dest.self_scheduled.fetch_add(1, Ordering::Relaxed);
        }
        let method_flag = match dest.method() {
            ForwardMethod::Masq | ForwardMethod::FullNat => 0,
            ForwardMethod::Route => F_NO_OUTPUT,
            ForwardMethod::Tunnel => F_NO_OUTPUT | F_TUNNEL,
            ForwardMethod::Local => F_NO_OUTPUT | F_LOCAL,
        };
        let fnat = if dest.method() == ForwardMethod::FullNat {
            match self.fullnat_local(svc, t, &dest, h) {
                Some(f) => Some(f),
                None => return NewConn::Refused(DropReason::NoLocalPort),
            }
        } else {
            None
        };
        // One-packet scheduling (UDP only, as IPVS) keeps no connection, so a FULLNAT reply
        // could not find its way back: FULLNAT datagrams always get a connection.
        if t.proto == ip::UDP && svc.spec.one_packet && fnat.is_none() {
            return NewConn::OnePacket {
                dest,
                dport,
                method_flag,
            };
        }
        let state = match t.proto {
            ip::TCP => ConnState::None,
            ip::SCTP => ConnState::SctpNone,
            _ => ConnState::Udp,
        };
        dest.bind(false);
        if let Some(tpl) = &control {
            tpl.control_add();
        }
        let dest_id = dest.id;
        let conn = Conn::new(
            t,
            svc.id,
            dest,
            dport,
            state,
            F_INACTIVE | method_flag,
            now.0.saturating_add(snap.timeouts.of(state)),
        );
        let slot = shard.insert(h, &self.hasher, conn, ConnExt::of(fnat, control));
        shard.stats_mut(svc.id).conns += 1;
        shard.stats_mut(dest_id).conns += 1;
        NewConn::Created(slot)
    }

    /// One-packet scheduling (`-o`, UDP only): the datagram is scheduled and forwarded, and its
    /// connection is gone at once (IPVS never hashes it), so replies are not translated back.
    /// `pick` is the destination, the port toward it and the forwarding method's flag.
    fn one_packet(
        &self,
        mut shard: MutexGuard<'_, Shard>,
        svc: &ServiceRt,
        (dest, dport, method_flag): (&DestRt, u16, u8),
        cx: &mut Cx<'_>,
    ) -> Verdict {
        let p = cx.p;
        shard.stats_mut(svc.id).conns += 1;
        shard.stats_mut(dest.id).conns += 1;
        shard.count([svc.id, dest.id], Direction::Input, p.ip_len as u64);
        drop(shard);
        let daddr = to16(dest.addr);
        if method_flag & F_NO_OUTPUT == 0 && !nat::rewrite(cx.frame, p, Side::Dst, (&daddr, dport))
        {
            return self.drop_packet(DropReason::Malformed);
        }
        out_verdict(
            p.lay.l3,
            method_flag & F_LOCAL != 0,
            (method_flag & F_TUNNEL != 0).then(|| dest.tunnel()),
            dest.addr,
            dest.addr,
        )
    }

    /// Updates state, timer and counters of a connection, then rewrites the packet (NAT) or
    /// leaves it byte for byte as it came (direct routing: the real server owns the VIP too).
    fn deliver(
        &self,
        mut shard: MutexGuard<'_, Shard>,
        slot: u32,
        dir: Direction,
        cx: &mut Cx<'_>,
    ) -> Verdict {
        let synproxied = shard.synproxied(slot);
        if let Some(sp) = synproxied {
            let flags = cx.p.flags;
            match (dir, sp.delta) {
                // The client's segments wait until the real server has answered (the SYN made
                // of the client's ACK goes, and so does a RST). One that finds the server silent
                // for a while goes as the SYN again (the client sends its data again).
                (Direction::Input, None)
                    if flags & (Flags::SYN | Flags::ACK) != Flags::SYN
                        && flags & Flags::RST == 0 =>
                {
                    if cx.now.0.saturating_sub(sp.syn_sent_ms) < synproxy::SYN_RESEND_MS {
                        return Verdict::Defer;
                    }
                    let Some(seg) = synproxy::segment(cx.frame, &cx.p.lay) else {
                        return self.drop_packet(DropReason::Malformed);
                    };
                    return self.send_syn(shard, slot, sp, cx, &seg);
                }
                (Direction::Output, _) if synproxy::is_syn_ack(flags) => {
                    return self.server_answered(shard, slot, sp, cx);
                }
                _ => {}
            }
        }
        let (p, now, frame) = (cx.p, cx.now, &mut *cx.frame);
        // The side record is looked up only for what needs it: FULLNAT's addresses and PROXY
        // state, and the template for a sync record.
        let exporting = matches!(dir, Direction::Input) && self.sync.exporting();
        let wanted = F_FNAT | if exporting { F_CONTROL } else { 0 };
        let Some((c, mut ext)) = shard.get_full_mut(slot, wanted) else {
            return Verdict::PassToKernel;
        };
        let mut state = ConnState::from_u8(c.state);
        let no_output = c.flags & F_NO_OUTPUT != 0;
        let tunnel = (c.flags & F_TUNNEL != 0).then(|| c.dest.tunnel());
        let local = c.flags & F_LOCAL != 0;
        let new = match c.proto {
            ip::TCP => next_state(state, dir, no_output, p.flags, self.defense.secure_tcp()),
            ip::SCTP => sctp_state::next_state(state, dir, no_output, p.flags),
            _ => state,
        };
        if new != state {
            c.set_active(new.is_active());
            c.state = new as u8;
            state = new;
        }
        c.expires = now.0.saturating_add(cx.snap.timeouts.of(state));
        // The records are made under the lock and queued once it is released.
        let synced = if exporting {
            self.sync
                .on_input(c, ext.as_deref(), synproxied.as_ref(), cx.snap)
        } else {
            None
        };
        let (svc_id, dest_id, dest_addr) = (c.svc_id, c.dest.id, c.dest.addr);
        let (addr, port, next_hop, side) = match dir {
            Direction::Input => (*c.daddr(), c.dport, *c.daddr(), Side::Dst),
            Direction::Output => (c.vaddr, c.vport, c.client, Side::Src),
        };
        // PROXY protocol: sequence/acknowledgement shifting, and the header on the first data.
        let mut insert = None;
        let fnat = ext.as_mut().and_then(|x| x.fnat.as_mut());
        if let Some(px) = fnat.and_then(|f| f.proxy.as_mut()) {
            if let Some(tcp) = frame.get_mut(p.lay.l4..p.lay.end) {
                match dir {
                    Direction::Input => {
                        if proxy::on_input(px, tcp, p.csum_partial) {
                            let mut bytes = [0u8; proxy::MAX_HEADER];
                            let n = px.header.len().min(proxy::MAX_HEADER);
                            bytes[..n].copy_from_slice(&px.header[..n]);
                            insert = Some(Insertion {
                                bytes,
                                len: n as u16,
                            });
                        }
                    }
                    Direction::Output => proxy::on_output(px, tcp, p.csum_partial),
                }
            }
        }
        // FULLNAT: the other end is rewritten too (client <-> local address).
        let fnat = ext.as_ref().and_then(|x| x.fnat.as_ref());
        let other = fnat.map(|f| match dir {
            Direction::Input => (*f.local.addr(), f.local.port()),
            Direction::Output => (c.client, c.cport),
        });
        shard.count([svc_id, dest_id], dir, p.ip_len as u64);
        drop(shard);
        if let Some(records) = synced {
            self.sync.queue(records);
        }
        let rewritten = match (other, side) {
            _ if no_output => true,
            (None, _) => nat::rewrite(frame, p, side, (&addr, port)),
            (Some(src), Side::Dst) => nat::rewrite_both(frame, p, (&src.0, src.1), (&addr, port)),
            (Some(dst), Side::Src) => nat::rewrite_both(frame, p, (&addr, port), (&dst.0, dst.1)),
        };
        if !rewritten {
            return self.drop_packet(DropReason::Malformed);
        }
        if let Some(sp) = synproxied {
            if let Some(seg) = synproxy::segment(frame, &p.lay) {
                // Before the server answered, only its RST comes back: moved into the client's
                // window (the cookie's sequence space).
                let delta = match (dir, sp.delta) {
                    (_, Some(delta)) => Some(delta),
                    (Direction::Output, None) => {
                        Some(sp.cookie.wrapping_add(1).wrapping_sub(seg.seq))
                    }
                    (Direction::Input, None) => None,
                };
                if let Some(delta) = delta {
                    synproxy::shift(frame, &seg, dir, delta, p.csum_partial);
                }
            }
        }
        if let Some(insert) = insert {
            let Some(payload_offset) =
                proxy::grow(frame, &p.lay, insert.as_bytes(), p.csum_partial)
            else {
                return self.drop_packet(DropReason::Malformed);
            };
            return Verdict::ForwardInsert {
                next_hop_ip: to_ip(&next_hop, p.lay.v6),
                l3_offset: p.lay.l3,
                payload_offset,
                end: p.lay.end,
                insert,
            };
        }
        out_verdict(
            p.lay.l3,
            local,
            tunnel,
            dest_addr,
            to_ip(&next_hop, p.lay.v6),
        )
    }

    fn handle_icmp(&self, cx: &mut Cx<'_>) -> Verdict {
        let (now, snap, p, frame) = (cx.now, cx.snap, cx.p, &mut *cx.frame);
        if !icmp::is_error(frame, &p.lay) {
            return Verdict::PassToKernel;
        }
        let Some(q) = icmp::parse_quoted(frame, &p.lay) else {
            return Verdict::PassToKernel;
        };
        // The connection tuple is the quoted packet reversed.
        let inv = Tuple {
            proto: q.proto,
            v6: p.lay.v6,
            src: q.dst,
            dst: q.src,
            sport: q.dport,
            dport: q.sport,
        };
        let quoted_from_vip = WireKey {
            addr: &q.src,
            port: q.sport,
            proto: q.proto,
        };
        let svc = snap.lookup(&quoted_from_vip, p.lay.v6);
        // An error about a deleted service's connection is found as a live one's.
        let (dir, h) = if svc.is_some() || snap.retires(&quoted_from_vip, p.lay.v6) {
            (
                Direction::Input,
                flow_hash(&self.hasher, inv.proto, &inv.src, inv.sport),
            )
        } else {
            (
                Direction::Output,
                flow_hash(&self.hasher, inv.proto, &inv.dst, inv.dport),
            )
        };
        let mut shard = self.shard(h).lock();
        let slot = match (shard.find(h, dir, &inv), svc) {
            (Some(slot), _) => slot,
            // schedule_icmp: an error about a service's packet without a connection (its flow
            // was scheduled by another director, say) is scheduled like the client's packet.
            (None, Some(svc)) if snap.policy.schedule_icmp => {
                match self.new_conn(&mut shard, h, now, &inv, svc, snap, (&[], 0)) {
                    NewConn::Created(slot) => slot,
                    _ => return Verdict::PassToKernel,
                }
            }
            (None, _) => return Verdict::PassToKernel,
        };
        if p.ttl <= 1 {
            return self.drop_packet(DropReason::TtlExceeded);
        }
        let Some((c, ext)) = shard.get_full(slot) else {
            return Verdict::PassToKernel;
        };
        let addrs = ConnAddrs {
            vaddr: c.vaddr,
            vport: c.vport,
            daddr: *c.daddr(),
            dport: c.dport,
            fullnat: ext
                .and_then(|x| x.fnat.as_ref())
                .map(|f| icmp::FullNatAddrs {
                    client: c.client,
                    cport: c.cport,
                    laddr: *f.local.addr(),
                    lport: f.local.port(),
                }),
        };
        let (svc_id, dest_id, dest_addr) = (c.svc_id, c.dest.id, c.dest.addr);
        // Direct routing: the error goes to the real server as it came (`ip_vs_icmp_xmit` hands
        // non-NAT connections to their own transmitter); only the input direction is indexed.
        let no_output = c.flags & F_NO_OUTPUT != 0;
        let tunnel = (c.flags & F_TUNNEL != 0).then(|| c.dest.tunnel());
        let local = c.flags & F_LOCAL != 0;
        shard.count([svc_id, dest_id], dir, p.ip_len as u64);
        drop(shard);
        if !no_output && !icmp::translate(frame, &p.lay, &q, dir, &addrs) {
            return self.drop_packet(DropReason::Malformed);
        }
        let next_hop = match (dir, &addrs.fullnat) {
            (Direction::Input, _) => addrs.daddr,
            (Direction::Output, Some(f)) => f.client,
            (Direction::Output, None) => p.flow.dst,
        };
        // Toward the real server, `ip_vs_icmp_xmit` hands an error about a local connection to
        // `ip_vs_null_xmit` (the director's stack gets it) and one about a tunnelled connection
        // to the tunnel transmitter (it reaches the real server encapsulated, like the
        // connection's packets).
        let input = dir == Direction::Input;
        out_verdict(
            p.lay.l3,
            local && input,
            tunnel.filter(|_| input),
            dest_addr,
            to_ip(&next_hop, p.lay.v6),
        )
    }
}

/// One frame on its way through the data path: its bytes, what the one parse of it found,
/// the time and the configuration snapshot it is handled under. The packet-handling functions
/// take it instead of long argument lists.
struct Cx<'a> {
    now: Millis,
    frame: &'a mut [u8],
    p: &'a Parsed,
    snap: &'a Snapshot,
    /// The frame's metadata: the SYN proxy clears `csum_partial` when it writes complete
    /// checksums.
    meta: &'a mut PacketMeta,
}

/// Whether the connection in `slot` is not the one the cookie an ACK acknowledges opened (the
/// SYN proxy's record of it holds that cookie): the tuple was used again by a new handshake.
fn stale_for_cookie(shard: &Shard, slot: u32, cx: &Cx<'_>) -> bool {
    let Some(seg) = synproxy::segment(cx.frame, &cx.p.lay) else {
        return false;
    };
    shard
        .synproxied(slot)
        .is_none_or(|sp| sp.cookie != seg.ack.wrapping_sub(1))
}

/// Whether the SYN proxy may open the service's connections: it has real servers, and all of
/// them see both directions (NAT, FULLNAT), so the numbers can be shifted.
fn proxied_service(svc: &ServiceRt) -> bool {
    !svc.dests.is_empty()
        && svc
            .dests
            .iter()
            .all(|d| matches!(d.method(), ForwardMethod::Masq | ForwardMethod::FullNat))
}

/// Where a packet of a connection goes once rewritten: to the director's own stack (`local`),
/// encapsulated toward the real server `dest_addr` (`tunnel`; it may be of the other family:
/// IPv4-in-IPv6, IPv6-in-IPv4), or routed to `next_hop`.
fn out_verdict(
    l3_offset: usize,
    local: bool,
    tunnel: Option<TunnelConfig>,
    dest_addr: IpAddr,
    next_hop: IpAddr,
) -> Verdict {
    if local {
        return Verdict::Deliver { l3_offset };
    }
    if let Some(tunnel) = tunnel {
        return Verdict::Encapsulate {
            next_hop_ip: dest_addr,
            l3_offset,
            tunnel,
        };
    }
    Verdict::Forward {
        next_hop_ip: next_hop,
        l3_offset,
    }
}

/// The outcome of scheduling a new connection.
enum NewConn {
    /// Inserted at this slot.
    Created(u32),
    /// Scheduled for one-packet forwarding (`-o`): no connection kept.
    OnePacket {
        dest: Arc<DestRt>,
        dport: u16,
        method_flag: u8,
    },
    /// Not scheduled.
    Refused(DropReason),
}

/// Whether a packet opens a connection (`is_new_conn`): a TCP SYN, an SCTP INIT.
#[inline]
fn is_new_conn(proto: u8, flags: u8) -> bool {
    match proto {
        ip::TCP => flags & Flags::SYN != 0,
        ip::SCTP => flags == crate::sctp_event::EV_INIT,
        _ => false,
    }
}

/// What a client's packet with `flags` finds in connection `c`: whether it is past its time,
/// whether IPVS takes the packet for a new connection instead (`conn_reuse_mode`), and whether
/// its real server was removed.
fn found_conn(c: &Conn, t: &Tuple, flags: u8, now: Millis, snap: &Snapshot) -> (bool, bool, bool) {
    let st = ConnState::from_u8(c.state);
    (
        c.expires <= now.0,
        is_new_conn(t.proto, flags) && new_conn_expected(c, st, snap.policy.conn_reuse_mode),
        !c.dest.available.load(Ordering::Relaxed),
    )
}

/// Whether a SYN (an INIT) finding connection `c` in state `st` starts a new connection
/// (`is_new_conn_expected` under `conn_reuse_mode`): never for a connection controlled by a
/// persistence template, else TCP's TIME_WAIT or CLOSE (bit 0), or FIN_WAIT of a direct-routing
/// or tunnel connection (bit 1); SCTP's CLOSED.
fn new_conn_expected(c: &Conn, st: ConnState, mode: u8) -> bool {
    if mode == 0 || c.controlled() {
        return false;
    }
    matches!(
        st,
        ConnState::TimeWait | ConnState::Close | ConnState::SctpClosed
    ) || (mode & 2 != 0 && st == ConnState::FinWait && c.flags & F_NO_OUTPUT != 0)
}

fn unlink(shard: &mut Shard, slot: u32, hasher: &foldhash::fast::RandomState) {
    if let Some(gone) = shard.remove(slot, hasher) {
        gone.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn engine_is_send_sync() {
        assert_send_sync::<Engine>();
    }
}
