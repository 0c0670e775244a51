//! One datagram: header and connection entries, parsed the way the kernel's
//! `ip_vs_process_message` and `ip_vs_proc_sync_conn` read them, emitted the way
//! `ip_vs_sync_conn` writes them. Never panics on any input.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::consts::*;

/// TCP sequence adjustment of one direction (`struct ip_vs_seq`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqData {
    /// Initial sequence number (`init_seq`).
    pub init_seq: u32,
    /// Delta since the initial sequence number (`delta`).
    pub delta: u32,
    /// Delta before the latest change (`previous_delta`).
    pub previous_delta: u32,
}

/// The sequence option (`struct ip_vs_sync_conn_options`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqOptions {
    /// Incoming direction.
    pub in_seq: SeqData,
    /// Outgoing direction.
    pub out_seq: SeqData,
}

/// The three addresses of an entry, all of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncAddrs {
    /// An IPv4 entry (`struct ip_vs_sync_v4`).
    V4 {
        /// Client address.
        caddr: Ipv4Addr,
        /// Virtual address.
        vaddr: Ipv4Addr,
        /// Real server address.
        daddr: Ipv4Addr,
    },
    /// An IPv6 entry (`struct ip_vs_sync_v6`).
    V6 {
        /// Client address.
        caddr: Ipv6Addr,
        /// Virtual address.
        vaddr: Ipv6Addr,
        /// Real server address.
        daddr: Ipv6Addr,
    },
}

impl SyncAddrs {
    /// Builds the addresses from three of one family; `None` when the families differ.
    pub fn new(caddr: IpAddr, vaddr: IpAddr, daddr: IpAddr) -> Option<SyncAddrs> {
        match (caddr, vaddr, daddr) {
            (IpAddr::V4(caddr), IpAddr::V4(vaddr), IpAddr::V4(daddr)) => Some(SyncAddrs::V4 {
                caddr,
                vaddr,
                daddr,
            }),
            (IpAddr::V6(caddr), IpAddr::V6(vaddr), IpAddr::V6(daddr)) => Some(SyncAddrs::V6 {
                caddr,
                vaddr,
                daddr,
            }),
            _ => None,
        }
    }

    /// Client, virtual and real server addresses.
    pub fn ips(&self) -> (IpAddr, IpAddr, IpAddr) {
        match *self {
            SyncAddrs::V4 {
                caddr,
                vaddr,
                daddr,
            } => (caddr.into(), vaddr.into(), daddr.into()),
            SyncAddrs::V6 {
                caddr,
                vaddr,
                daddr,
            } => (caddr.into(), vaddr.into(), daddr.into()),
        }
    }

    /// IPv6 entry?
    pub fn is_v6(&self) -> bool {
        matches!(self, SyncAddrs::V6 { .. })
    }
}

/// One synchronized connection or persistence template (`union ip_vs_sync_conn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConn {
    /// IP protocol number (0 for firewall-mark templates).
    pub protocol: u8,
    /// IPVS connection flags (`IP_VS_CONN_F_*`, see the `F_` constants).
    pub flags: u32,
    /// IPVS state number (TCP: 0 NONE, 1 ESTABLISHED, ... 10 SYNACK; UDP 0).
    pub state: u16,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Real server port.
    pub dport: u16,
    /// Firewall mark.
    pub fwmark: u32,
    /// Timeout in seconds.
    pub timeout: u32,
    /// Addresses.
    pub addrs: SyncAddrs,
    /// Sequence adjustment option.
    pub seq: Option<SeqOptions>,
    /// Persistence-engine data (1..=255 bytes).
    pub pe_data: Option<Vec<u8>>,
    /// Persistence-engine name (1..=16 bytes).
    pub pe_name: Option<Vec<u8>>,
    /// rvs extension: FULLNAT local address and port.
    pub fnat_local: Option<SocketAddr>,
}

/// A parsed datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A version-1 message with its connections.
    Conns {
        /// Sync id of the sender.
        syncid: u8,
        /// Entries the receiver takes.
        conns: Vec<SyncConn>,
        /// Entries a kernel would skip (an unknown mandatory option).
        skipped: usize,
    },
    /// The rvs resync request: the master answers with its whole table.
    ResyncRequest {
        /// Sync id of the asker.
        syncid: u8,
    },
}

impl Message {
    /// Sync id of the sender.
    pub fn syncid(&self) -> u8 {
        match self {
            Message::Conns { syncid, .. } | Message::ResyncRequest { syncid } => *syncid,
        }
    }
}

/// Why a datagram was dropped (the kernel's "BACKUP, ..." debug messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the version-0 header.
    #[error("message header too short")]
    TooShort,
    /// The header's size is not the datagram's length.
    #[error("bogus message size")]
    BadSize,
    /// The sync id is not ours (and ours is not 0).
    #[error("ignoring syncid {0}")]
    OtherSyncId(u8),
    /// Not version 1 (nor an rvs request): version 0 is not supported.
    #[error("unsupported message version {0}")]
    Version(u8),
    /// An entry runs past the end of the datagram.
    #[error("dropping buffer, entry beyond the message")]
    Truncated,
    /// An entry's version nibble is not 0.
    #[error("dropping buffer, unknown entry version {0}")]
    EntryVersion(u16),
    /// An entry's type is neither IPv4 nor IPv6.
    #[error("dropping buffer, unknown entry type {0}")]
    EntryType(u8),
    /// An option is malformed (zero or overlong length, repeated).
    #[error("dropping buffer, bad option {0}")]
    BadOption(u8),
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, c, d, e]) => u32::from_be_bytes([a, c, d, e]),
        _ => 0,
    }
}

fn v4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from(be32(b, at))
}

fn v6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    if let Some(s) = b.get(at..at + 16) {
        o.copy_from_slice(s);
    }
    Ipv6Addr::from(o)
}

/// Parses a datagram received by a daemon configured with sync id `syncid` (0 takes every
/// sync id, as in the kernel).
pub fn parse(buf: &[u8], syncid: u8) -> Result<Message, ParseError> {
    if buf.len() < 4 {
        return Err(ParseError::TooShort);
    }
    if usize::from(be16(buf, 2)) != buf.len() {
        return Err(ParseError::BadSize);
    }
    let got = buf[1];
    if syncid != 0 && got != syncid {
        return Err(ParseError::OtherSyncId(got));
    }
    if buf.len() < HEADER_LEN {
        return Err(ParseError::Version(0));
    }
    let (reserved, nr_conns, version, spare) = (buf[0], buf[4], buf[5], be16(buf, 6));
    if reserved == 0 && spare == 0 && version == SYNC_PROTO_VER {
        return parse_conns(buf, got, nr_conns);
    }
    if reserved == 0
        && nr_conns == 0
        && version == RVS_RESYNC_VERSION
        && buf.get(HEADER_LEN..) == Some(&RVS_RESYNC_MAGIC[..])
    {
        return Ok(Message::ResyncRequest { syncid: got });
    }
    Err(ParseError::Version(version))
}

fn parse_conns(buf: &[u8], syncid: u8, nr_conns: u8) -> Result<Message, ParseError> {
    let mut conns = Vec::with_capacity(usize::from(nr_conns));
    let mut skipped = 0;
    let mut next = HEADER_LEN;
    for _ in 0..nr_conns {
        let p = next;
        if p + CONN_V4_LEN > buf.len() {
            return Err(ParseError::Truncated);
        }
        let ver_size = be16(buf, p + 2);
        let size = usize::from(ver_size & SVER_MASK);
        let end = p + size;
        if end > buf.len() {
            return Err(ParseError::Truncated);
        }
        if ver_size >> 12 != 0 {
            return Err(ParseError::EntryVersion(ver_size >> 12));
        }
        match parse_entry(buf.get(p..end).unwrap_or(&[]))? {
            Some(c) => conns.push(c),
            None => skipped += 1,
        }
        next = p + ((size + 3) & !3);
    }
    Ok(Message::Conns {
        syncid,
        conns,
        skipped,
    })
}

/// Parses one entry (exactly its `size` bytes). `Ok(None)`: skipped (unknown mandatory option).
fn parse_entry(e: &[u8]) -> Result<Option<SyncConn>, ParseError> {
    let ty = e.first().copied().unwrap_or(0);
    let (addrs, base) = if ty & STYPE_F_INET6 != 0 {
        (
            SyncAddrs::V6 {
                caddr: v6_at(e, 24),
                vaddr: v6_at(e, 40),
                daddr: v6_at(e, 56),
            },
            CONN_V6_LEN,
        )
    } else if ty == 0 {
        (
            SyncAddrs::V4 {
                caddr: v4_at(e, 24),
                vaddr: v4_at(e, 28),
                daddr: v4_at(e, 32),
            },
            CONN_V4_LEN,
        )
    } else {
        return Err(ParseError::EntryType(ty));
    };
    if base > e.len() {
        return Err(ParseError::Truncated);
    }
    let mut conn = SyncConn {
        protocol: e.get(1).copied().unwrap_or(0),
        flags: be32(e, 4),
        state: be16(e, 8),
        cport: be16(e, 10),
        vport: be16(e, 12),
        dport: be16(e, 14),
        fwmark: be32(e, 16),
        timeout: be32(e, 20),
        addrs,
        seq: None,
        pe_data: None,
        pe_name: None,
        fnat_local: None,
    };
    let mut p = base;
    while p < e.len() {
        let (Some(&ptype), Some(&plen)) = (e.get(p), e.get(p + 1)) else {
            return Err(ParseError::Truncated);
        };
        let plen = usize::from(plen);
        let Some(val) = e.get(p + 2..p + 2 + plen).filter(|_| plen != 0) else {
            return Err(ParseError::BadOption(ptype));
        };
        match ptype & !OPT_F_PARAM {
            OPT_SEQ_DATA => {
                if plen != SEQ_OPTIONS_LEN || conn.seq.is_some() {
                    return Err(ParseError::BadOption(ptype));
                }
                let d = |i: usize| SeqData {
                    init_seq: be32(val, i),
                    delta: be32(val, i + 4),
                    previous_delta: be32(val, i + 8),
                };
                conn.seq = Some(SeqOptions {
                    in_seq: d(0),
                    out_seq: d(12),
                });
            }
            OPT_PE_DATA => {
                if conn.pe_data.is_some() {
                    return Err(ParseError::BadOption(ptype));
                }
                conn.pe_data = Some(val.to_vec());
            }
            OPT_PE_NAME => {
                if plen > PENAME_MAXLEN || conn.pe_name.is_some() {
                    return Err(ParseError::BadOption(ptype));
                }
                conn.pe_name = Some(val.to_vec());
            }
            _ if ptype == OPT_RVS_FNAT_LOCAL => {
                conn.fnat_local = match plen {
                    6 => Some(SocketAddr::new(v4_at(val, 0).into(), be16(val, 4))),
                    18 => Some(SocketAddr::new(v6_at(val, 0).into(), be16(val, 16))),
                    _ => None,
                };
            }
            // An unknown mandatory option: the whole connection is skipped.
            _ if ptype & OPT_F_PARAM == 0 => return Ok(None),
            _ => {}
        }
        p += 2 + plen;
    }
    Ok(Some(conn))
}

impl SyncConn {
    fn pe_data_bytes(&self) -> Option<&[u8]> {
        self.pe_data
            .as_deref()
            .filter(|d| !d.is_empty() && d.len() <= PEDATA_MAXLEN)
    }

    fn pe_name_bytes(&self) -> Option<&[u8]> {
        self.pe_name
            .as_deref()
            .filter(|d| !d.is_empty() && d.len() <= PENAME_MAXLEN)
    }

    /// Bytes the entry takes, options included, padding excluded.
    pub fn encoded_len(&self) -> usize {
        let base = if self.addrs.is_v6() {
            CONN_V6_LEN
        } else {
            CONN_V4_LEN
        };
        base + self.seq.map_or(0, |_| 2 + SEQ_OPTIONS_LEN)
            + self.pe_data_bytes().map_or(0, |d| 2 + d.len())
            + self.pe_name_bytes().map_or(0, |d| 2 + d.len())
            + self.fnat_local.map_or(0, |l| match l {
                SocketAddr::V4(_) => 2 + 6,
                SocketAddr::V6(_) => 2 + 18,
            })
    }
}

/// Appends one entry to `out` (no padding): the fixed part, then the sequence, PE data,
/// PE name and rvs FULLNAT options, in the kernel's order. Empty or overlong PE data or
/// names are left out (the kernel never sends them).
pub fn emit_conn(c: &SyncConn, out: &mut Vec<u8>) {
    let len = c.encoded_len();
    out.push(if c.addrs.is_v6() { STYPE_F_INET6 } else { 0 });
    out.push(c.protocol);
    out.extend_from_slice(&((len as u16) & SVER_MASK).to_be_bytes());
    out.extend_from_slice(&(c.flags & !F_HASHED).to_be_bytes());
    out.extend_from_slice(&c.state.to_be_bytes());
    out.extend_from_slice(&c.cport.to_be_bytes());
    out.extend_from_slice(&c.vport.to_be_bytes());
    out.extend_from_slice(&c.dport.to_be_bytes());
    out.extend_from_slice(&c.fwmark.to_be_bytes());
    out.extend_from_slice(&c.timeout.to_be_bytes());
    match c.addrs {
        SyncAddrs::V4 {
            caddr,
            vaddr,
            daddr,
        } => {
            for a in [caddr, vaddr, daddr] {
                out.extend_from_slice(&a.octets());
            }
        }
        SyncAddrs::V6 {
            caddr,
            vaddr,
            daddr,
        } => {
            for a in [caddr, vaddr, daddr] {
                out.extend_from_slice(&a.octets());
            }
        }
    }
    if let Some(s) = c.seq {
        out.extend_from_slice(&[OPT_SEQ_DATA, SEQ_OPTIONS_LEN as u8]);
        for d in [s.in_seq, s.out_seq] {
            for v in [d.init_seq, d.delta, d.previous_delta] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    if let Some(d) = c.pe_data_bytes() {
        out.extend_from_slice(&[OPT_PE_DATA, d.len() as u8]);
        out.extend_from_slice(d);
    }
    if let Some(d) = c.pe_name_bytes() {
        out.extend_from_slice(&[OPT_PE_NAME, d.len() as u8]);
        out.extend_from_slice(d);
    }
    match c.fnat_local {
        Some(SocketAddr::V4(l)) => {
            out.extend_from_slice(&[OPT_RVS_FNAT_LOCAL, 6]);
            out.extend_from_slice(&l.ip().octets());
            out.extend_from_slice(&l.port().to_be_bytes());
        }
        Some(SocketAddr::V6(l)) => {
            out.extend_from_slice(&[OPT_RVS_FNAT_LOCAL, 18]);
            out.extend_from_slice(&l.ip().octets());
            out.extend_from_slice(&l.port().to_be_bytes());
        }
        None => {}
    }
}
