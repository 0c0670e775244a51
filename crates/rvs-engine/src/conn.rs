//! One connection's record: a compact part every connection has (one cache line: addresses,
//! ports, state, flags, timer, destination) and a side part ([`ConnExt`]: the FULLNAT local
//! address and PROXY protocol state, the persistence template) that only the connections
//! needing it have, kept out of line by the connection table.

use std::sync::Arc;

use crate::config::DestRt;
use crate::flow::{Direction, Tuple};
use crate::fullnat::FnatConn;
use crate::persist::Template;
use crate::view::ConnState;

/// Connection flag: IPv6 addresses.
pub(crate) const F_V6: u8 = 1;
/// Connection flag: counted as inactive on its destination.
pub(crate) const F_INACTIVE: u8 = 2;
/// Connection flag: direct routing (IPVS's `IP_VS_CONN_F_NOOUTPUT`): packets are forwarded
/// unchanged, only the client->virtual direction is indexed, TCP uses the INPUT-ONLY states.
pub(crate) const F_NO_OUTPUT: u8 = 4;
/// The connection is tunnelled (`-i`): packets are encapsulated toward the real server
/// (always together with `F_NO_OUTPUT`).
pub(crate) const F_TUNNEL: u8 = 8;
/// The real server is the director itself (IPVS's `IP_VS_CONN_F_LOCALNODE`): packets are handed
/// to the director's own stack unchanged (always together with `F_NO_OUTPUT`).
pub(crate) const F_LOCAL: u8 = 16;
/// Installed by connection synchronization (IPVS's `IP_VS_CONN_F_SYNC`).
pub(crate) const F_SYNCED: u8 = 32;
/// The connection has a FULLNAT part in its side record ([`ConnExt`]). Set by the table on
/// insert.
pub(crate) const F_FNAT: u8 = 64;
/// The connection is controlled by a persistence template, kept in its side record. Set by
/// the table on insert; the data path asks the flag, not the side record, whether there is one.
pub(crate) const F_CONTROL: u8 = 128;
/// The flags saying that a connection has a side record.
pub(crate) const F_EXT: u8 = F_FNAT | F_CONTROL;

/// `sync_state` of a connection never synced.
pub(crate) const NEVER_SYNCED: u8 = u8::MAX;

/// One connection: exactly one cache line. Addresses are 16 bytes; IPv4 ones are stored
/// IPv4-mapped. The real server's address is its destination's ([`Conn::daddr`]).
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Conn {
    pub(crate) client: [u8; 16],
    pub(crate) vaddr: [u8; 16],
    pub(crate) expires: u64,
    pub(crate) dest: Arc<DestRt>,
    pub(crate) svc_id: u32,
    pub(crate) cport: u16,
    pub(crate) vport: u16,
    pub(crate) dport: u16,
    /// Incoming packets, for the sync threshold/period rule (IPVS's `in_pkts`; wraps).
    pub(crate) sync_pkts: u16,
    pub(crate) proto: u8,
    pub(crate) state: u8,
    pub(crate) flags: u8,
    /// The state last synced (IPVS's `old_state`).
    pub(crate) sync_state: u8,
}

/// The part of a connection only some connections have, kept beside the table.
#[derive(Debug, Default)]
pub(crate) struct ConnExt {
    /// FULLNAT: the local address and port toward the real server (the reply tuple is
    /// real server -> local address:port, and is indexed under that hash).
    pub(crate) fnat: Option<FnatConn>,
    /// The persistence template controlling this connection (IPVS's `cp->control`).
    pub(crate) control: Option<Arc<Template>>,
}

impl ConnExt {
    /// The side record for these parts, if there is anything to keep.
    pub(crate) fn of(fnat: Option<FnatConn>, control: Option<Arc<Template>>) -> Option<ConnExt> {
        (fnat.is_some() || control.is_some()).then_some(ConnExt { fnat, control })
    }

    /// The flags saying what the record holds.
    pub(crate) fn flags(&self) -> u8 {
        (if self.fnat.is_some() { F_FNAT } else { 0 })
            | if self.control.is_some() { F_CONTROL } else { 0 }
    }
}

impl Conn {
    /// A connection of tuple `t` (client -> virtual) of service `svc_id` toward `dest` at
    /// `dport`, in `state`, with `flags` (`F_V6` is added for an IPv6 tuple), expiring at
    /// `expires`; never synced.
    pub(crate) fn new(
        t: &Tuple,
        svc_id: u32,
        dest: Arc<DestRt>,
        dport: u16,
        state: ConnState,
        flags: u8,
        expires: u64,
    ) -> Conn {
        Conn {
            client: t.src,
            vaddr: t.dst,
            expires,
            dest,
            svc_id,
            cport: t.sport,
            vport: t.dport,
            dport,
            sync_pkts: 0,
            proto: t.proto,
            state: state as u8,
            flags: (flags & !F_EXT) | if t.v6 { F_V6 } else { 0 },
            sync_state: NEVER_SYNCED,
        }
    }

    /// The real server's address (IPv4-mapped for IPv4).
    #[inline]
    pub(crate) fn daddr(&self) -> &[u8; 16] {
        &self.dest.addr16
    }

    /// Whether the connection has a side record.
    #[inline]
    pub(crate) fn has_ext(&self) -> bool {
        self.flags & F_EXT != 0
    }

    /// Whether a persistence template controls the connection.
    #[inline]
    pub(crate) fn controlled(&self) -> bool {
        self.flags & F_CONTROL != 0
    }

    /// Counts the connection as active (ESTABLISHED) or inactive on its destination, moving
    /// it between the two counters when that changes.
    pub(crate) fn set_active(&mut self, active: bool) {
        let inactive = self.flags & F_INACTIVE != 0;
        if inactive != active {
            return;
        }
        self.dest.set_active(active);
        if active {
            self.flags &= !F_INACTIVE;
        } else {
            self.flags |= F_INACTIVE;
        }
    }

    /// Whether a packet with tuple `t` travelling `dir` belongs to this connection; `ext` gives
    /// its side record, called only when a FULLNAT reply tuple has to be compared.
    #[inline]
    pub(crate) fn matches<'a>(
        &'a self,
        dir: Direction,
        t: &Tuple,
        ext: impl FnOnce() -> Option<&'a ConnExt>,
    ) -> bool {
        if self.proto != t.proto || (self.flags & F_V6 != 0) != t.v6 {
            return false;
        }
        match dir {
            Direction::Input => {
                self.cport == t.sport
                    && self.vport == t.dport
                    && self.client == t.src
                    && self.vaddr == t.dst
            }
            Direction::Output => {
                if self.flags & F_NO_OUTPUT != 0 || self.dport != t.sport {
                    return false;
                }
                let fnat = if self.flags & F_FNAT != 0 {
                    ext().and_then(|x| x.fnat.as_ref())
                } else {
                    None
                };
                let (laddr, lport) = reply_dst(self, fnat);
                lport == t.dport && *self.daddr() == t.src && *laddr == t.dst
            }
        }
    }
}

/// Where replies from the real server are addressed: the client (NAT) or the local address
/// and port (FULLNAT, `fnat` being the connection's FULLNAT part).
pub(crate) fn reply_dst<'a>(c: &'a Conn, fnat: Option<&'a FnatConn>) -> (&'a [u8; 16], u16) {
    match fnat {
        Some(f) => (f.local.addr(), f.local.port()),
        None => (&c.client, c.cport),
    }
}

/// A connection taken out of the table, with its side record.
#[derive(Debug)]
pub(crate) struct Removed {
    pub(crate) conn: Conn,
    pub(crate) ext: Option<ConnExt>,
}

impl Removed {
    /// Gives back what the connection holds on its destination and template, as it goes away
    /// (`ip_vs_unbind_dest`, `ip_vs_control_del`). Its FULLNAT local port is given back when
    /// it is dropped.
    pub(crate) fn release(&self) {
        self.conn.dest.unbind(self.conn.flags & F_INACTIVE == 0);
        if let Some(t) = self.ext.as_ref().and_then(|x| x.control.as_ref()) {
            t.control_del();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_is_one_cache_line() {
        // 2 addresses + ports + state + timer + destination; the FULLNAT part and the template
        // live beside the table. Option uses the Arc niche.
        assert_eq!(core::mem::size_of::<Option<Conn>>(), 64);
        assert_eq!(core::mem::align_of::<Conn>(), 64);
    }
}
