//! Connection synchronization with the program's table: the master's side reads the
//! connections the program exports (`sync_ring`, IPVS's sync rule applied in the program), the
//! backup's side resolves a synced connection to the program's service and server and installs
//! it with `rvs_sync_in` (run by BPF_PROG_TEST_RUN, so the server's counts move atomically, as
//! the program's own do).

use std::net::IpAddr;

use rvs_sync::{SyncAddrs, SyncConn};
use zerocopy::{FromBytes, IntoBytes};

use crate::error::Error;
use crate::maps::{
    Addr, Conn, ConnKey, Dest, Method, Svc, SvcDests, SvcKey, SyncEvent, SyncIn, CONN_F_SEQ_SHIFT,
    MAX_DESTS, SVC_F_PERSIST, SVC_F_SYNPROXY, SVC_F_USER, SYNC_EV_SEQ_SHIFT, SYNC_EV_TEMPLATE,
};
use crate::program::Datapath;

/// The sync backup's install program's name in the object.
const SYNC_IN_PROGRAM: &str = "rvs_sync_in";

/// Where a synced connection belongs in the program's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The service's id.
    pub svc: u32,
    /// The real server's dest slot.
    pub dest: u32,
    /// The real server's forwarding method.
    pub method: Method,
    /// The service is persistent in the program (it keeps templates).
    pub persistent: bool,
}

/// What `rvs_sync_in` did with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// A new connection in the table.
    Added,
    /// The connection was there: its state and timer were refreshed.
    Refreshed,
    /// The connection table is at its bound.
    TableFull,
}

fn method_of(byte: u8) -> Option<Method> {
    [
        Method::Masq,
        Method::Local,
        Method::Tunnel,
        Method::Route,
        Method::FullNat,
    ]
    .into_iter()
    .find(|m| *m as u8 == byte)
}

/// IPVS's sequence option for a connection whose numbers are shifted by `delta` (the SYN
/// proxy's, as rvs-engine sends it; the director's ISN, which it also carries, is not kept by
/// the program and goes as 0).
fn shift_option(delta: u32) -> rvs_sync::SeqOptions {
    rvs_sync::SeqOptions {
        in_seq: rvs_sync::SeqData::default(),
        out_seq: rvs_sync::SeqData {
            init_seq: 0,
            delta,
            previous_delta: delta,
        },
    }
}

/// The shift a record's sequence option carries, if any.
fn shift_of(rec: &SyncConn) -> Option<u32> {
    rec.seq
        .as_ref()
        .filter(|s| s.out_seq != rvs_sync::SeqData::default())
        .map(|s| s.out_seq.delta)
}

/// The program's TCP ESTABLISHED (rvs-engine's `ConnState` numbering, IPVS's too).
const ESTABLISHED: u8 = 1;
/// The program's UDP state.
const UDP_STATE: u8 = 11;

impl SyncEvent {
    /// The record IPVS's sync protocol carries for this connection (the program's services
    /// are never firewall-mark ones); `None` for a real server of the other family, which
    /// version 1 of the protocol cannot carry.
    pub fn record(&self) -> Option<SyncConn> {
        let method = method_of(self.method)?;
        let addrs = SyncAddrs::new(self.key.src.ip(), self.key.dst.ip(), self.daddr.ip())?;
        let template = self.flags & SYNC_EV_TEMPLATE != 0;
        // A template carries no state and no client port; its flags are TEMPLATE and the
        // method alone (IPVS's template_record), a connection's say no-output and inactive.
        let flags = match (method, template) {
            (Method::Masq, _) => rvs_sync::F_MASQ,
            (Method::FullNat, _) => rvs_sync::F_FULLNAT,
            (Method::Local, true) => rvs_sync::F_LOCALNODE,
            (Method::Tunnel, true) => rvs_sync::F_TUNNEL,
            (Method::Route, true) => rvs_sync::F_DROUTE,
            (Method::Local, false) => rvs_sync::F_LOCALNODE | rvs_sync::F_NOOUTPUT,
            (Method::Tunnel, false) => rvs_sync::F_TUNNEL | rvs_sync::F_NOOUTPUT,
            (Method::Route, false) => rvs_sync::F_DROUTE | rvs_sync::F_NOOUTPUT,
        } | if template {
            rvs_sync::F_TEMPLATE
        } else if self.state != ESTABLISHED {
            rvs_sync::F_INACTIVE
        } else {
            0
        };
        Some(SyncConn {
            protocol: self.key.proto,
            flags,
            state: if self.key.proto == 6 && !template {
                u16::from(self.state)
            } else {
                0
            },
            cport: u16::from_be(self.key.sport_be),
            vport: u16::from_be(self.key.dport_be),
            dport: u16::from_be(self.dport_be),
            fwmark: 0,
            timeout: self.timeout_ms / 1000,
            addrs,
            seq: (self.flags & SYNC_EV_SEQ_SHIFT != 0).then(|| shift_option(self.seq_delta)),
            pe_data: None,
            pe_name: None,
            fnat_local: (method == Method::FullNat && !template)
                .then(|| std::net::SocketAddr::new(self.laddr.ip(), u16::from_be(self.lport_be))),
        })
    }
}

/// The sync record of the program's connection `conn` at `key` (its client-side key), as its
/// export would carry it with `timeout_ms` left; `None` as for [`SyncEvent::record`].
pub fn conn_record(key: &ConnKey, conn: &Conn, timeout_ms: u32) -> Option<SyncConn> {
    SyncEvent {
        key: *key,
        daddr: conn.daddr,
        dport_be: conn.dport_be,
        state: conn.state,
        method: conn.method,
        timeout_ms,
        flags: if conn.flags & CONN_F_SEQ_SHIFT != 0 {
            SYNC_EV_SEQ_SHIFT
        } else {
            0
        },
        pad: 0,
        laddr: conn.laddr,
        lport_be: conn.lport_be,
        pad2: 0,
        seq_delta: conn.seq_delta,
    }
    .record()
}

/// What a backup installs of `rec` in the program's tables at `at`, or `None` when the
/// program does not carry such a connection (a firewall-mark service, a template of a service
/// the program does not make templates for, a FULLNAT connection without its local address
/// or to a server that is not FULLNAT here, a protocol or state it does not track).
pub fn sync_in(rec: &SyncConn, at: &Located) -> Option<SyncIn> {
    let template = rec.flags & rvs_sync::F_TEMPLATE != 0;
    let fnat = at.method == Method::FullNat && !template;
    if rec.fwmark != 0 || (template && !at.persistent) || fnat != rec.fnat_local.is_some() {
        return None;
    }
    let local = rec.fnat_local;
    let state = match rec.protocol {
        _ if template => 0,
        6 if rec.state <= 10 => rec.state as u8,
        17 => UDP_STATE,
        _ => return None,
    };
    let (caddr, vaddr, daddr) = rec.addrs.ips();
    let shift = shift_of(rec).filter(|_| !template);
    Some(SyncIn {
        key: crate::maps::ConnKey {
            src: Addr::from(caddr),
            dst: Addr::from(vaddr),
            sport_be: rec.cport.to_be(),
            dport_be: rec.vport.to_be(),
            proto: rec.protocol,
            pad: [0; 3],
        },
        daddr: Addr::from(daddr),
        dport_be: rec.dport.to_be(),
        state,
        method: at.method as u8,
        dest: at.dest,
        svc: at.svc,
        timeout_ms: rec.timeout.saturating_mul(1000),
        flags: if template { SYNC_EV_TEMPLATE } else { 0 }
            | if shift.is_some() {
                SYNC_EV_SEQ_SHIFT
            } else {
                0
            },
        laddr: local.map(|l| Addr::from(l.ip())).unwrap_or_default(),
        lport_be: local.map_or(0, |l| l.port().to_be()),
        pad2: 0,
        seq_delta: shift.unwrap_or(0),
        pad3: 0,
    })
}

impl Datapath {
    /// A reader of the connections the program exports while a sync master runs
    /// ([`crate::maps::Settings::sync_export`]): each `poll` of the returned ring calls
    /// `on_event` for each.
    pub fn sync_reader<'a, F>(&'a self, mut on_event: F) -> Result<libbpf_rs::RingBuffer<'a>, Error>
    where
        F: FnMut(&SyncEvent) + 'a,
    {
        let map = self.map("sync_ring")?;
        let ring_error = |source| Error::Map {
            map: "sync_ring",
            source,
        };
        let mut builder = libbpf_rs::RingBufferBuilder::new();
        builder
            .add(&map, move |data: &[u8]| {
                if let Ok((event, _)) = SyncEvent::read_from_prefix(data) {
                    on_event(&event);
                }
                0
            })
            .map_err(ring_error)?;
        builder.build().map_err(ring_error)
    }

    /// The program's service `vaddr:vport` (or the port-0 service of `vaddr`) of protocol
    /// `proto` with its real server `daddr:dport`, when the program schedules that service
    /// itself; `None` when the service is rvsd's or unknown, or has no such server. A
    /// `template`'s port 0 matches any server port (a port-0 service's template).
    pub fn locate(
        &self,
        proto: u8,
        vaddr: IpAddr,
        vport: u16,
        daddr: IpAddr,
        dport: u16,
        template: bool,
    ) -> Result<Option<Located>, Error> {
        self.locate_in(proto, (vaddr, vport), (daddr, dport), template, false)
    }

    /// [`Datapath::locate`], also finding the SYN proxy's services when `proxied` (their NAT
    /// servers only: a FULLNAT connection's local port belongs to the engine there).
    fn locate_in(
        &self,
        proto: u8,
        (vaddr, vport): (IpAddr, u16),
        (daddr, dport): (IpAddr, u16),
        template: bool,
        proxied: bool,
    ) -> Result<Option<Located>, Error> {
        let mut key = SvcKey {
            addr: Addr::from(vaddr),
            port_be: vport.to_be(),
            proto,
            pad: 0,
        };
        let mut svc: Option<Svc> = self.get("services", &key)?;
        if svc.is_none() {
            key.port_be = 0;
            svc = self.get("services", &key)?;
        }
        let ours =
            |s: &Svc| s.flags & SVC_F_USER == 0 || (proxied && s.flags & SVC_F_SYNPROXY != 0);
        let Some(svc) = svc.filter(ours) else {
            return Ok(None);
        };
        let Some(list) = self.get::<u32, SvcDests>("svc_dests", &svc.id)? else {
            return Ok(None);
        };
        let want = Addr::from(daddr);
        for &slot in &list.slot[..(list.count as usize).min(MAX_DESTS)] {
            let Some(d) = self.get::<u32, Dest>("dests", &slot)? else {
                continue;
            };
            let port = u16::from_be(d.port_be);
            if d.addr == want && (port == dport || port == 0 || (template && dport == 0)) {
                if svc.flags & SVC_F_USER != 0 && d.method != Method::Masq as u8 {
                    return Ok(None);
                }
                return Ok(method_of(d.method).map(|method| Located {
                    svc: svc.id,
                    dest: slot,
                    method,
                    persistent: svc.flags & SVC_F_PERSIST != 0,
                }));
            }
        }
        Ok(None)
    }

    /// Installs (or refreshes) a synced record when it is a connection of a service the
    /// program schedules, or a SYN-proxied NAT connection whose shift the record carries (the
    /// program forwards it shifting its numbers: a backup's synced record, or the engine's own
    /// once the real server answered); `None` when it is not (the engine's, then).
    pub fn sync_import(&self, rec: &SyncConn) -> Result<Option<Installed>, Error> {
        if rec.fwmark != 0 {
            return Ok(None);
        }
        let template = rec.flags & rvs_sync::F_TEMPLATE != 0;
        let proxied = !template && shift_of(rec).is_some();
        let (_, vaddr, daddr) = rec.addrs.ips();
        let located = self.locate_in(
            rec.protocol,
            (vaddr, rec.vport),
            (daddr, rec.dport),
            template,
            proxied,
        )?;
        match located.and_then(|at| sync_in(rec, &at)) {
            Some(conn) => self.sync_install(&conn).map(Some),
            None => Ok(None),
        }
    }

    /// Installs (or refreshes) a synced connection as the program's own.
    pub fn sync_install(&self, conn: &SyncIn) -> Result<Installed, Error> {
        // A zeroed Ethernet header first: BPF_PROG_TEST_RUN hands tc programs a frame.
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(conn.as_bytes());
        let prog = self.program_named(SYNC_IN_PROGRAM)?;
        let input = libbpf_rs::ProgramInput {
            data_in: Some(&frame),
            ..Default::default()
        };
        let out = prog.test_run(input).map_err(Error::TestRun)?;
        match out.return_value {
            0 => Ok(Installed::Added),
            1 => Ok(Installed::Refreshed),
            2 => Ok(Installed::TableFull),
            _ => Err(Error::Missing("a well-formed sync record")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handed-over SYN-proxied connection keeps its shift through the sync record: the
    /// master's record carries it in IPVS's sequence option, and a backup's install takes it.
    #[test]
    fn a_proxied_connection_s_shift_travels_in_its_record() {
        let ip = |s: &str| Addr::from(s.parse::<IpAddr>().unwrap());
        let key = ConnKey {
            src: ip("203.0.113.5"),
            dst: ip("10.99.1.100"),
            sport_be: 40_000u16.to_be(),
            dport_be: 80u16.to_be(),
            proto: 6,
            pad: [0; 3],
        };
        let conn = Conn {
            daddr: ip("192.168.7.10"),
            dport_be: 8080u16.to_be(),
            state: ESTABLISHED,
            flags: CONN_F_SEQ_SHIFT,
            method: Method::Masq as u8,
            seq_delta: 0xdead_beef,
            ..Conn::default()
        };
        let rec = conn_record(&key, &conn, 900_000).expect("a record");
        assert_eq!(shift_of(&rec), Some(0xdead_beef));
        let at = Located {
            svc: 3,
            dest: 7,
            method: Method::Masq,
            persistent: false,
        };
        let installed = sync_in(&rec, &at).expect("installable");
        assert_eq!(installed.flags, SYNC_EV_SEQ_SHIFT);
        assert_eq!(installed.seq_delta, 0xdead_beef);
        // Without the flag, no option and no shift.
        let plain = conn_record(&key, &Conn { flags: 0, ..conn }, 900_000).expect("a record");
        assert!(plain.seq.is_none());
        assert_eq!(sync_in(&plain, &at).expect("installable").flags, 0);
    }
}
