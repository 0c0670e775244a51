//! Packing entries into datagrams of at most `maxlen` bytes and 255 entries, with the
//! kernel's 4-byte alignment padding between entries.

use crate::codec::{emit_conn, SyncConn};
use crate::consts::*;

/// Builds datagrams one entry at a time.
#[derive(Debug)]
pub struct Packer {
    syncid: u8,
    maxlen: usize,
    cur: Vec<u8>,
    nr: u8,
}

impl Packer {
    /// A packer for sync id `syncid` and datagrams of at most `maxlen` bytes (at least the
    /// header and one IPv4 entry; an entry longer than that still goes alone).
    pub fn new(syncid: u8, maxlen: usize) -> Packer {
        Packer {
            syncid,
            maxlen: maxlen.clamp(HEADER_LEN + CONN_V4_LEN, usize::from(u16::MAX)),
            cur: Vec::new(),
            nr: 0,
        }
    }

    fn header(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.maxlen);
        v.extend_from_slice(&[0, self.syncid, 0, 0, 0, SYNC_PROTO_VER, 0, 0]);
        v
    }

    /// Adds an entry; returns the finished previous datagram when the entry did not fit in it.
    pub fn push(&mut self, c: &SyncConn) -> Option<Vec<u8>> {
        let len = c.encoded_len();
        let pad = self.cur.len().wrapping_neg() & 3;
        let mut done = None;
        if !self.cur.is_empty() && (self.cur.len() + pad + len > self.maxlen || self.nr == 255) {
            done = self.finish();
        }
        if self.cur.is_empty() {
            self.cur = self.header();
        } else {
            self.cur.resize(self.cur.len() + pad, 0);
        }
        emit_conn(c, &mut self.cur);
        self.nr += 1;
        done
    }

    /// The datagram being built, if it holds any entry.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.nr == 0 {
            return None;
        }
        let mut m = core::mem::take(&mut self.cur);
        let size = (m.len() as u16).to_be_bytes();
        m[2] = size[0];
        m[3] = size[1];
        m[4] = self.nr;
        self.nr = 0;
        Some(m)
    }
}

/// Packs `conns` into datagrams for sync id `syncid`, each at most `maxlen` bytes.
pub fn pack<'a>(
    conns: impl IntoIterator<Item = &'a SyncConn>,
    syncid: u8,
    maxlen: usize,
) -> Vec<Vec<u8>> {
    let mut p = Packer::new(syncid, maxlen);
    let mut out: Vec<Vec<u8>> = conns.into_iter().filter_map(|c| p.push(c)).collect();
    out.extend(p.finish());
    out
}

/// The rvs resync request of sync id `syncid`.
pub fn resync_request(syncid: u8) -> Vec<u8> {
    let len = (HEADER_LEN + RVS_RESYNC_MAGIC.len()) as u16;
    let l = len.to_be_bytes();
    let mut v = vec![0, syncid, l[0], l[1], 0, RVS_RESYNC_VERSION, 0, 0];
    v.extend_from_slice(&RVS_RESYNC_MAGIC);
    v
}
