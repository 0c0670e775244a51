//! Loading the BPF object (built into this crate by build.rs), sizing its maps, attaching the
//! tc program, and running it on a frame with BPF_PROG_TEST_RUN.

use std::path::{Path, PathBuf};

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder, TcHookBuilder, TC_INGRESS};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::Error;
use crate::maps::{Conn, ConnKey, Dest, DestConns, PuntHdr, Traffic, HASH_STRIDE, WRR_SEQ};

/// The object clang built from `bpf/rvs_lb.c` (empty when clang was missing).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rvs_lb.o"));

/// The tc program's name in the object.
const TC_PROGRAM: &str = "rvs_tc";
/// The XDP program's name in the object.
const XDP_PROGRAM: &str = "rvs_xdp";
/// The expiry sweep's name in the object.
const EXPIRE_PROGRAM: &str = "rvs_expire";
/// IPVS's drop_entry visit's name in the object.
const DROP_ENTRIES_PROGRAM: &str = "rvs_drop_entries";

/// tc's verdicts, as BPF_PROG_TEST_RUN returns them.
pub mod tc_action {
    /// `TC_ACT_OK`: the kernel carries on with the frame.
    pub const OK: u32 = 0;
    /// `TC_ACT_SHOT`: dropped (or punted to rvsd).
    pub const SHOT: u32 = 2;
    /// `TC_ACT_REDIRECT`: sent out of another interface.
    pub const REDIRECT: u32 = 7;
}

/// How big the maps are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The connection table's bound (each NAT connection takes one entry in `conns` and one in
    /// `conns_out`).
    pub connections: u32,
    /// Services.
    pub services: u32,
    /// Real servers, over all services.
    pub dests: u32,
    /// Scheduler tables: a wrr service's sequence or an sh, dh or mh service's lookup table
    /// (about 24 KB each).
    pub tables: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 1 << 20,
            services: 16384,
            dests: 16384,
            tables: 1024,
        }
    }
}

/// Runs `f` with every signal blocked on this thread, then restores the thread's mask.
fn without_signals<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let mut old = SigSet::empty();
    let blocked = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), Some(&mut old));
    let out = f();
    if blocked.is_ok() {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    out
}

/// The loaded program and its maps.
pub struct Datapath {
    object: Object,
    limits: Limits,
    /// Where the maps are pinned, if they are.
    pins: Option<PathBuf>,
    /// Whether the maps came from an earlier rvsd's pins.
    adopted: bool,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("limits", &self.limits)
            .field("pins", &self.pins)
            .field("adopted", &self.adopted)
            .finish()
    }
}

/// Where the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// tc ingress (`clsact`): any driver, GSO frames and partial checksums handled.
    Tc,
    /// XDP: before the stack allocates anything, where the driver supports it.
    Xdp,
}

/// What the program did with a frame, whichever the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Left to the kernel (TC_ACT_OK, XDP_PASS).
    Pass,
    /// Dropped, or punted to rvsd (TC_ACT_SHOT, XDP_DROP).
    Drop,
    /// Sent out of an interface (TC_ACT_REDIRECT, XDP_REDIRECT).
    Redirect,
    /// Another return value.
    Other(u32),
}

impl Action {
    fn of(hook: Hook, value: u32) -> Action {
        match (hook, value) {
            (Hook::Tc, tc_action::OK) | (Hook::Xdp, 2) => Action::Pass,
            (Hook::Tc, tc_action::SHOT) | (Hook::Xdp, 1) => Action::Drop,
            (Hook::Tc, tc_action::REDIRECT) | (Hook::Xdp, 4) => Action::Redirect,
            (_, other) => Action::Other(other),
        }
    }
}

/// What one expiry sweep ([`Datapath::expire`]) did and found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Connections it took out.
    pub expired: u64,
    /// How long after the sweep began the earliest connection or template left falls due;
    /// `None` when both tables are empty.
    pub next_due: Option<std::time::Duration>,
}

/// The result of one BPF_PROG_TEST_RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// The hook's raw verdict (for tc see [`tc_action`]).
    pub action: u32,
    /// The verdict, the same words for both hooks.
    pub verdict: Action,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// tc: the skb's GSO segment size after the run (0: not GSO); XDP: 0.
    pub gso_size: u32,
}

/// What an adopted map keeps of the map pinned before: its size and flags.
#[derive(Debug, Clone, Copy)]
struct PinnedShape {
    max_entries: u32,
    map_flags: u32,
}

/// The shape of the map `name` pinned in `dir`, checked against this build's definition of
/// it (`map`): its type, key and value must be the same for the program to use it; its size
/// and flags are the pinned map's to keep.
fn pinned_shape(
    dir: &Path,
    name: &str,
    map: &libbpf_rs::OpenMapMut<'_>,
) -> Result<PinnedShape, Error> {
    let incompatible = |why: String| Error::PinsIncompatible {
        dir: dir.to_path_buf(),
        map: name.to_owned(),
        why,
    };
    let held = libbpf_rs::MapHandle::from_pinned_path(dir.join(name))
        .and_then(|m| m.info())
        .map_err(|e| incompatible(format!("cannot read it: {e}")))?;
    let held_type = held.map_type();
    let held = held.info;
    if held_type != map.map_type() {
        return Err(incompatible(format!(
            "type {held_type:?}, this build's {:?}",
            map.map_type()
        )));
    }
    if (held.key_size, held.value_size) != (map.key_size(), map.value_size()) {
        return Err(incompatible(format!(
            "{}-byte keys and {}-byte values, this build's {} and {}",
            held.key_size,
            held.value_size,
            map.key_size(),
            map.value_size()
        )));
    }
    Ok(PinnedShape {
        max_entries: held.max_entries,
        map_flags: held.map_flags,
    })
}

impl Datapath {
    /// Loads the program with maps of `limits`; the kernel's verifier checks it here. The maps
    /// live as long as this value (and the tc attachments holding the program).
    pub fn load(limits: Limits) -> Result<Datapath, Error> {
        Datapath::open(limits, None)
    }

    /// Loads the program with its maps pinned in `dir` (a bpffs directory): maps already pinned
    /// there by an earlier rvsd are adopted with their connections and counts (the program
    /// attached by that rvsd kept forwarding with them meanwhile), keeping the sizes and flags
    /// they were made with ([`Datapath::limits`] then tells the sizes); missing ones are created
    /// and pinned. [`Datapath::adopted`] tells which happened. A pinned map whose type, key or
    /// value differs from this build's is [`Error::PinsIncompatible`].
    pub fn load_pinned(limits: Limits, dir: &Path) -> Result<Datapath, Error> {
        Datapath::open(limits, Some(dir))
    }

    fn open(limits: Limits, pins: Option<&Path>) -> Result<Datapath, Error> {
        if OBJECT.is_empty() {
            return Err(Error::NotBuilt);
        }
        let mut open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .map_err(Error::Load)?;
        let adopted = pins.is_some_and(|dir| dir.join("conns").exists());
        for mut map in open.maps_mut() {
            let Some(name) = map.name().to_str().map(str::to_owned) else {
                continue;
            };
            let mut pinned = None;
            if let Some(dir) = pins {
                // Per-CPU scratch space and read-only data stay private to one load.
                if !name.ends_with("_scratch") && name != "tun_ident" && !name.starts_with('.') {
                    let path = dir.join(&name);
                    if adopted && path.exists() {
                        pinned = Some(pinned_shape(dir, &name, &map)?);
                    }
                    map.set_pin_path(path).map_err(Error::Load)?;
                }
            }
            if let Some(held) = pinned {
                // An adopted map keeps the size and flags it was made with (another bound, or
                // the entries allocated one by one as builds before 568d75e made them).
                map.set_max_entries(held.max_entries).map_err(Error::Load)?;
                map.set_map_flags(held.map_flags).map_err(Error::Load)?;
                continue;
            }
            let size = match name.as_str() {
                "conns" | "conns_out" | "templates" => limits.connections,
                "services" | "svc_dests" | "sched_cursor" | "svc_stats" | "svc_stray" => {
                    limits.services
                }
                // Firewall-mark services' addresses and ports count here too (not against
                // the services' bound): room for twice the rest.
                "addrs" | "user_dests" => limits
                    .services
                    .saturating_add(limits.dests)
                    .saturating_mul(2)
                    .saturating_add(4096),
                "wrr_seq" => limits.tables.saturating_mul(WRR_SEQ as u32),
                "hash_tab" => limits.tables.saturating_mul(HASH_STRIDE as u32),
                "dests" | "dest_conns" | "dest_hops" | "dest_stats" | "tun_src" => limits.dests,
                _ => continue,
            };
            map.set_max_entries(size.max(1)).map_err(Error::Load)?;
        }
        // The verifier gives up with EAGAIN when a signal arrives while it works (a child's
        // SIGCHLD, most often), and takes long enough on this program for that to happen:
        // keep signals off this thread meanwhile (they go to another thread, or wait).
        let object = without_signals(|| open.load()).map_err(Error::Load)?;
        let mut dp = Datapath {
            object,
            limits,
            pins: pins.map(Path::to_path_buf),
            adopted,
        };
        // The sizes the maps have, adopted ones' included.
        dp.limits = Limits {
            connections: dp.map("conns")?.max_entries(),
            services: dp.map("services")?.max_entries(),
            dests: dp.map("dests")?.max_entries(),
            tables: dp.map("hash_tab")?.max_entries() / HASH_STRIDE as u32,
        };
        Ok(dp)
    }

    /// Whether the maps were adopted from an earlier rvsd's pins.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Removes the pins (a clean stop): the maps go once the program is detached everywhere.
    pub fn remove_pins(&mut self) -> Result<(), Error> {
        let Some(dir) = self.pins.take() else {
            return Ok(());
        };
        for mut map in self.object.maps_mut() {
            if let Some(path) = map.get_pin_path().map(std::path::PathBuf::from) {
                map.unpin(&path).map_err(|source| Error::Map {
                    map: "pinned map",
                    source,
                })?;
            }
        }
        let _ = std::fs::remove_dir(dir);
        Ok(())
    }

    /// The sizes of the maps (an adopted table's own).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn program(&self) -> Result<libbpf_rs::ProgramMut<'_>, Error> {
        self.program_named(TC_PROGRAM)
    }

    pub(crate) fn program_named(
        &self,
        name: &'static str,
    ) -> Result<libbpf_rs::ProgramMut<'_>, Error> {
        self.object
            .progs_mut()
            .find(|p| p.name() == name)
            .ok_or(Error::Missing(name))
    }

    /// Expires every connection past its timeout (the program's own clock), as IPVS's timers
    /// do: out of both tables and out of its server's counts; then templates past theirs.
    /// Returns how many connections went and when the earliest entry left falls due. Clears
    /// the [`Datapath::expiry_floor`] first, so that it then holds what the sweep may not see.
    pub fn expire(&self) -> Result<Sweep, Error> {
        self.clear_expiry_floor()?;
        let before = self.stat("expired")?;
        let prog = self.program_named(EXPIRE_PROGRAM)?;
        // A minimal Ethernet frame: the sweep writes its answer over its first bytes.
        let frame = [0u8; 64];
        let mut out = [0u8; 64];
        let input = libbpf_rs::ProgramInput {
            data_in: Some(&frame),
            data_out: Some(&mut out),
            ..Default::default()
        };
        prog.test_run(input).map_err(Error::TestRun)?;
        let next_due = out
            .first_chunk::<8>()
            .map_or(u64::MAX, |b| u64::from_ne_bytes(*b));
        Ok(Sweep {
            expired: self.stat("expired")?.saturating_sub(before),
            next_due: (next_due != u64::MAX).then(|| std::time::Duration::from_nanos(next_due)),
        })
    }

    /// IPVS's drop_entry for one second: visits the connections whose key falls in the
    /// `part`-th 32nd of the table (0-31) and removes the half-open TCP ones, and established
    /// or UDP ones idle for 60 s after 1-8 client packets (one in that many). Returns how many
    /// went.
    pub fn drop_entries(&self, part: u32) -> Result<u64, Error> {
        let before = self.stat("defense_entries")?;
        let prog = self.program_named(DROP_ENTRIES_PROGRAM)?;
        let mut frame = [0u8; 64];
        frame[14..18].copy_from_slice(&(part % 32).to_ne_bytes());
        let input = libbpf_rs::ProgramInput {
            data_in: Some(&frame),
            ..Default::default()
        };
        prog.test_run(input).map_err(Error::TestRun)?;
        Ok(self.stat("defense_entries")?.saturating_sub(before))
    }

    /// One of the program's counters by name ([`crate::maps::STAT_NAMES`]).
    pub fn stat(&self, name: &str) -> Result<u64, Error> {
        let index = crate::maps::STAT_NAMES
            .iter()
            .position(|n| *n == name)
            .ok_or(Error::Missing("such a counter"))?;
        Ok(self.stats()?[index])
    }

    /// A map by name.
    pub(crate) fn map(&self, name: &'static str) -> Result<libbpf_rs::Map<'_>, Error> {
        self.object
            .maps()
            .find(|m| m.name() == name)
            .ok_or(Error::Missing(name))
    }

    /// Writes `value` at `key` of the map `name`.
    pub(crate) fn put<K, V>(&self, name: &'static str, key: &K, value: &V) -> Result<(), Error>
    where
        K: IntoBytes + Immutable + ?Sized,
        V: IntoBytes + Immutable + ?Sized,
    {
        self.map(name)?
            .update(key.as_bytes(), value.as_bytes(), MapFlags::ANY)
            .map_err(|source| Error::Map { map: name, source })
    }

    /// Removes `key` from the hash map `name` (absent keys are not an error).
    pub(crate) fn remove<K>(&self, name: &'static str, key: &K) -> Result<(), Error>
    where
        K: IntoBytes + Immutable + ?Sized,
    {
        match self.map(name)?.delete(key.as_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Map { map: name, source }),
        }
    }

    /// Reads `key` of the map `name`.
    pub(crate) fn get<K, V>(&self, name: &'static str, key: &K) -> Result<Option<V>, Error>
    where
        K: IntoBytes + Immutable + ?Sized,
        V: FromBytes,
    {
        let bytes = self
            .map(name)?
            .lookup(key.as_bytes(), MapFlags::ANY)
            .map_err(|source| Error::Map { map: name, source })?;
        Ok(bytes.and_then(|b| V::read_from_bytes(&b).ok()))
    }

    /// The keys of the hash map `name`.
    pub(crate) fn keys<K: FromBytes>(&self, name: &'static str) -> Result<Vec<K>, Error> {
        Ok(self
            .map(name)?
            .keys()
            .filter_map(|k| K::read_from_bytes(&k).ok())
            .collect())
    }

    /// Every connection of the `conns` map with its key (the client's tuple).
    pub fn connections(&self) -> Result<Vec<(ConnKey, Conn)>, Error> {
        let mut out = Vec::new();
        for key in self.keys::<ConnKey>("conns")? {
            if let Some(conn) = self.get::<ConnKey, Conn>("conns", &key)? {
                out.push((key, conn));
            }
        }
        Ok(out)
    }

    /// The connection a packet with tuple `key` belongs to, either way: `conns` at the key (a
    /// client's packet), else `conns_out` at it (a NAT real server's reply) and `conns` at the
    /// client-side key found there. Returns the client-side key with the connection.
    pub fn connection_for(&self, key: &ConnKey) -> Result<Option<(ConnKey, Conn)>, Error> {
        if let Some(conn) = self.get::<ConnKey, Conn>("conns", key)? {
            return Ok(Some((*key, conn)));
        }
        let Some(out) = self.get::<ConnKey, crate::maps::ConnOut>("conns_out", key)? else {
            return Ok(None);
        };
        Ok(self
            .get::<ConnKey, Conn>("conns", &out.inner)?
            .map(|conn| (out.inner, conn)))
    }

    /// Every persistence template of the `templates` map with its key.
    pub fn templates(&self) -> Result<Vec<(crate::maps::TplKey, crate::maps::Tpl)>, Error> {
        let mut out = Vec::new();
        for key in self.keys::<crate::maps::TplKey>("templates")? {
            if let Some(t) = self.get::<crate::maps::TplKey, crate::maps::Tpl>("templates", &key)? {
                out.push((key, t));
            }
        }
        Ok(out)
    }

    /// Every entry of the lblc/lblcr tables (`locality`) with its key.
    pub fn locality_entries(&self) -> Result<Vec<(crate::maps::LocKey, crate::maps::Loc)>, Error> {
        let mut out = Vec::new();
        for key in self.keys::<crate::maps::LocKey>("locality")? {
            if let Some(entry) =
                self.get::<crate::maps::LocKey, crate::maps::Loc>("locality", &key)?
            {
                out.push((key, entry));
            }
        }
        Ok(out)
    }

    /// Removes an lblc/lblcr entry (one rvsd's ageing dropped).
    pub fn forget_locality(&self, key: &crate::maps::LocKey) -> Result<(), Error> {
        self.remove("locality", key)
    }

    /// A reader of the frames the program passes up: each `poll` of the returned ring calls
    /// `on_frame` with the frame's header and bytes (whole frames, GSO ones up to 64 KiB).
    pub fn punt_reader<'a, F>(&'a self, mut on_frame: F) -> Result<libbpf_rs::RingBuffer<'a>, Error>
    where
        F: FnMut(&PuntHdr, &[u8]) + 'a,
    {
        let map = self.map("punt")?;
        let mut builder = libbpf_rs::RingBufferBuilder::new();
        let ring_error = |source| Error::Map {
            map: "punt",
            source,
        };
        builder
            .add(&map, move |data: &[u8]| {
                let hdr_len = std::mem::size_of::<PuntHdr>();
                if let (Some(head), Some(rest)) = (data.get(..hdr_len), data.get(hdr_len..)) {
                    if let Ok(hdr) = PuntHdr::read_from_bytes(head) {
                        let len = (hdr.len as usize).min(rest.len());
                        on_frame(&hdr, &rest[..len]);
                    }
                }
                0
            })
            .map_err(ring_error)?;
        builder.build().map_err(ring_error)
    }

    /// The real server at `slot` (`dests` entry), as rvsd last published it.
    pub fn dest(&self, slot: u32) -> Result<Option<Dest>, Error> {
        self.get("dests", &slot)
    }

    /// A real server's connection counts by its slot.
    pub fn dest_conns(&self, slot: u32) -> Result<DestConns, Error> {
        Ok(self.get("dest_conns", &slot)?.unwrap_or_default())
    }

    /// A service's traffic counters (by its id), summed over CPUs.
    pub fn service_traffic(&self, id: u32) -> Result<Traffic, Error> {
        self.traffic("svc_stats", id)
    }

    /// A real server's traffic counters (by its slot), summed over CPUs.
    pub fn dest_traffic(&self, slot: u32) -> Result<Traffic, Error> {
        self.traffic("dest_stats", slot)
    }

    fn traffic(&self, name: &'static str, index: u32) -> Result<Traffic, Error> {
        Ok(self
            .per_cpu::<Traffic>(name, index)?
            .iter()
            .fold(Traffic::default(), |sum, t| sum.plus(t)))
    }

    /// The program's counters ([`crate::maps::STAT_NAMES`] order), summed over CPUs.
    pub fn stats(&self) -> Result<Vec<u64>, Error> {
        (0..crate::maps::STAT_NAMES.len() as u32)
            .map(|i| self.per_cpu_count("stats", i))
            .collect()
    }

    /// Packets the program saw from service `id`'s own address and port (a real server
    /// replying through the director; it passes them to the kernel), summed over CPUs.
    pub fn service_stray(&self, id: u32) -> Result<u64, Error> {
        self.per_cpu_count("svc_stray", id)
    }

    /// The earliest expiry (CLOCK_MONOTONIC nanoseconds) a packet or an install set in a
    /// connection or template since the last [`Datapath::expire`] began; `None` when none was.
    /// With the sweep's own `next_due`, it says when an entry may next fall due.
    pub fn expiry_floor(&self) -> Result<Option<u64>, Error> {
        Ok(self
            .per_cpu::<u64>("expiry_floor", 0)?
            .into_iter()
            .filter(|&ns| ns != 0)
            .min())
    }

    /// Sets every CPU's expiry floor to none.
    fn clear_expiry_floor(&self) -> Result<(), Error> {
        self.zero_per_cpu::<u64>("expiry_floor", 0)
    }

    /// Sets entry `index` of the per-CPU array `name` (of `T` values) to zeros on every CPU.
    pub(crate) fn zero_per_cpu<T>(&self, name: &'static str, index: u32) -> Result<(), Error> {
        let map = self.map(name)?;
        let cpus =
            libbpf_rs::num_possible_cpus().map_err(|source| Error::Map { map: name, source })?;
        let zeros = vec![vec![0u8; std::mem::size_of::<T>()]; cpus];
        map.update_percpu(&index.to_ne_bytes(), &zeros, MapFlags::ANY)
            .map_err(|source| Error::Map { map: name, source })
    }

    /// Entry `index` of the per-CPU `u64` array `name`, summed over CPUs.
    fn per_cpu_count(&self, name: &'static str, index: u32) -> Result<u64, Error> {
        Ok(self.per_cpu::<u64>(name, index)?.iter().sum())
    }

    /// Entry `index` of the per-CPU array `name`: each CPU's value.
    fn per_cpu<T: FromBytes>(&self, name: &'static str, index: u32) -> Result<Vec<T>, Error> {
        let per_cpu = self
            .map(name)?
            .lookup_percpu(&index.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| Error::Map { map: name, source })?
            .unwrap_or_default();
        Ok(per_cpu
            .iter()
            .filter_map(|v| T::read_from_bytes(v).ok())
            .collect())
    }

    /// Attaches the program at tc ingress of `ifindex` (creating the clsact qdisc).
    pub fn attach_tc(&self, ifindex: u32) -> Result<(), Error> {
        let prog = self.program()?;
        let attach = |source| Error::Attach { ifindex, source };
        let index = i32::try_from(ifindex).map_err(|_| Error::Capacity("ifindex".into()))?;
        let mut hook = TcHookBuilder::new(prog.as_fd())
            .ifindex(index)
            .replace(true)
            .handle(1)
            .priority(1)
            .hook(TC_INGRESS);
        hook.create().map_err(attach)?;
        hook.attach().map_err(attach)?;
        Ok(())
    }

    /// Detaches the program from tc ingress of `ifindex`.
    pub fn detach_tc(&self, ifindex: u32) -> Result<(), Error> {
        let prog = self.program()?;
        let index = i32::try_from(ifindex).map_err(|_| Error::Capacity("ifindex".into()))?;
        TcHookBuilder::new(prog.as_fd())
            .ifindex(index)
            .handle(1)
            .priority(1)
            .hook(TC_INGRESS)
            .detach()
            .map_err(|source| Error::Attach { ifindex, source })
    }

    /// Runs the tc program once on `frame` as if it came in on `ifindex` (BPF_PROG_TEST_RUN).
    pub fn test_run(&self, frame: &[u8], ifindex: u32) -> Result<TestRun, Error> {
        self.test_run_at(Hook::Tc, frame, ifindex)
    }

    /// Runs the program of `hook` once on `frame` as if it came in on `ifindex`.
    pub fn test_run_at(&self, hook: Hook, frame: &[u8], ifindex: u32) -> Result<TestRun, Error> {
        self.run_once(hook, frame, ifindex, 0)
    }

    /// Runs the tc program once on `frame` as a GSO frame of `gso_size` payload bytes per
    /// segment (as veth hands the program a TCP super-frame), come in on `ifindex`.
    pub fn test_run_gso(
        &self,
        frame: &[u8],
        ifindex: u32,
        gso_size: u32,
    ) -> Result<TestRun, Error> {
        self.run_once(Hook::Tc, frame, ifindex, gso_size)
    }

    /// Runs the program of `hook` `repeat` times on `frame` (the same input each time, as if
    /// come in on `ifindex`) and returns the kernel's average run time: a benchmark of the
    /// program's path for that frame.
    pub fn time_runs(
        &self,
        hook: Hook,
        frame: &[u8],
        ifindex: u32,
        repeat: u32,
    ) -> Result<std::time::Duration, Error> {
        let (prog, mut ctx) = self.run_context(hook, frame, ifindex, 0)?;
        let mut out = vec![0u8; frame.len() + 256];
        let input = libbpf_rs::ProgramInput {
            context_in: Some(&mut ctx),
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..Default::default()
        };
        let output = prog.test_run(input).map_err(Error::TestRun)?;
        Ok(output.duration)
    }

    /// The program of `hook` and its context for one test run.
    fn run_context(
        &self,
        hook: Hook,
        frame: &[u8],
        ifindex: u32,
        gso_size: u32,
    ) -> Result<(libbpf_rs::ProgramMut<'_>, Vec<u8>), Error> {
        Ok(match hook {
            Hook::Tc => {
                // struct __sk_buff: ingress_ifindex at 36, ifindex at 40, gso_size at 176
                // (192 bytes).
                let mut ctx = vec![0u8; 192];
                ctx[36..40].copy_from_slice(&ifindex.to_ne_bytes());
                ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
                ctx[176..180].copy_from_slice(&gso_size.to_ne_bytes());
                (self.program_named(TC_PROGRAM)?, ctx)
            }
            Hook::Xdp => {
                // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
                // egress_ifindex (u32 each).
                let mut ctx = vec![0u8; 24];
                let len =
                    u32::try_from(frame.len()).map_err(|_| Error::Capacity("frame".into()))?;
                ctx[4..8].copy_from_slice(&len.to_ne_bytes());
                ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
                (self.program_named(XDP_PROGRAM)?, ctx)
            }
        })
    }

    fn run_once(
        &self,
        hook: Hook,
        frame: &[u8],
        ifindex: u32,
        gso_size: u32,
    ) -> Result<TestRun, Error> {
        let (prog, mut ctx) = self.run_context(hook, frame, ifindex, gso_size)?;
        let mut out = vec![0u8; frame.len() + 256];
        let mut ctx_out = vec![0u8; ctx.len()];
        let input = libbpf_rs::ProgramInput {
            context_in: Some(&mut ctx),
            context_out: Some(&mut ctx_out),
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        };
        let output = prog.test_run(input).map_err(Error::TestRun)?;
        let action = output.return_value;
        let len = output.data.map_or(0, |d| d.len());
        out.truncate(len);
        let gso_size = match hook {
            Hook::Tc => ctx_out
                .get(176..180)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_ne_bytes),
            Hook::Xdp => 0,
        };
        Ok(TestRun {
            action,
            verdict: Action::of(hook, action),
            frame: out,
            gso_size,
        })
    }

    /// Attaches the XDP program to `ifindex` (native mode when the driver has it, else generic).
    pub fn attach_xdp(&self, ifindex: u32) -> Result<(), Error> {
        let prog = self.program_named(XDP_PROGRAM)?;
        let index = i32::try_from(ifindex).map_err(|_| Error::Capacity("ifindex".into()))?;
        libbpf_rs::Xdp::new(prog.as_fd())
            .attach(index, libbpf_rs::XdpFlags::REPLACE)
            .map_err(|source| Error::Attach { ifindex, source })
    }

    /// Detaches whatever XDP program `ifindex` has.
    pub fn detach_xdp(&self, ifindex: u32) -> Result<(), Error> {
        let prog = self.program_named(XDP_PROGRAM)?;
        let index = i32::try_from(ifindex).map_err(|_| Error::Capacity("ifindex".into()))?;
        libbpf_rs::Xdp::new(prog.as_fd())
            .detach(index, libbpf_rs::XdpFlags::empty())
            .map_err(|source| Error::Attach { ifindex, source })
    }
}

use std::os::fd::AsFd as _;
