//! The AgentX protocol (RFC 2741) as a subagent needs it: the PDU header, object identifiers,
//! values and variable bindings, the Open, Register and Response PDUs it sends, and the Get,
//! GetNext and GetBulk requests it answers. Everything is written in network byte order (the
//! header says so); received PDUs are read in the byte order their header names.

/// PDU types (RFC 2741 6.1).
pub mod pdu {
    /// Open-PDU.
    pub const OPEN: u8 = 1;
    /// Close-PDU.
    pub const CLOSE: u8 = 2;
    /// Register-PDU.
    pub const REGISTER: u8 = 3;
    /// Get-PDU.
    pub const GET: u8 = 5;
    /// GetNext-PDU.
    pub const GET_NEXT: u8 = 6;
    /// GetBulk-PDU.
    pub const GET_BULK: u8 = 7;
    /// TestSet-PDU (refused: the tables are read-only).
    pub const TEST_SET: u8 = 8;
    /// Response-PDU.
    pub const RESPONSE: u8 = 18;
}

/// Header flag: the PDU's numbers are big-endian.
const NETWORK_BYTE_ORDER: u8 = 0x10;
/// Header flag: a context octet string precedes the payload.
const NON_DEFAULT_CONTEXT: u8 = 0x08;
/// Header length.
pub const HEADER_LEN: usize = 20;

/// Response errors (RFC 2741 6.2.16).
pub mod error {
    /// Success.
    pub const NONE: u16 = 0;
    /// A set on a read-only object.
    pub const NOT_WRITABLE: u16 = 17;
}

/// A value of a variable binding (the SNMP types the tables use, and the exceptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// INTEGER / Integer32.
    Integer(i32),
    /// OCTET STRING (DisplayString, InetAddress).
    Octets(Vec<u8>),
    /// Counter32.
    Counter32(u32),
    /// Gauge32 / Unsigned32.
    Gauge32(u32),
    /// Counter64.
    Counter64(u64),
    /// No such object here.
    NoSuchObject,
    /// Past the end of the subagent's view.
    EndOfMibView,
}

impl Value {
    fn type_code(&self) -> u16 {
        match self {
            Value::Integer(_) => 2,
            Value::Octets(_) => 4,
            Value::Counter32(_) => 65,
            Value::Gauge32(_) => 66,
            Value::Counter64(_) => 70,
            Value::NoSuchObject => 128,
            Value::EndOfMibView => 130,
        }
    }
}

/// Why a received PDU cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentxError {
    /// It ends inside a field.
    #[error("AgentX PDU truncated")]
    Truncated,
    /// The version is not 1.
    #[error("AgentX version {0} (only 1 is known)")]
    Version(u8),
}

/// A received PDU: its header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// [`pdu`] type.
    pub kind: u8,
    /// Header flags.
    pub flags: u8,
    /// Session.
    pub session: u32,
    /// Transaction.
    pub transaction: u32,
    /// Packet.
    pub packet: u32,
    /// The payload (after the context, if any).
    pub payload: Vec<u8>,
}

impl Pdu {
    /// Whether the payload's numbers are big-endian.
    pub fn big_endian(&self) -> bool {
        self.flags & NETWORK_BYTE_ORDER != 0
    }
}

/// Reads a u32 of the byte order `be`.
fn u32_at(b: &[u8], at: usize, be: bool) -> Result<u32, AgentxError> {
    let bytes: [u8; 4] = b
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or(AgentxError::Truncated)?;
    Ok(if be {
        u32::from_be_bytes(bytes)
    } else {
        u32::from_le_bytes(bytes)
    })
}

fn u16_at(b: &[u8], at: usize, be: bool) -> Result<u16, AgentxError> {
    let bytes: [u8; 2] = b
        .get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .ok_or(AgentxError::Truncated)?;
    Ok(if be {
        u16::from_be_bytes(bytes)
    } else {
        u16::from_le_bytes(bytes)
    })
}

/// The payload length a header announces (to know how much more to read).
pub fn payload_len(header: &[u8; HEADER_LEN]) -> usize {
    let be = header[2] & NETWORK_BYTE_ORDER != 0;
    u32_at(header, 16, be).unwrap_or(0) as usize
}

/// Reads a whole PDU (header and payload).
pub fn decode(bytes: &[u8]) -> Result<Pdu, AgentxError> {
    let header = bytes.get(..HEADER_LEN).ok_or(AgentxError::Truncated)?;
    if header[0] != 1 {
        return Err(AgentxError::Version(header[0]));
    }
    let flags = header[2];
    let be = flags & NETWORK_BYTE_ORDER != 0;
    let len = u32_at(header, 16, be)? as usize;
    let mut payload = bytes
        .get(HEADER_LEN..HEADER_LEN + len)
        .ok_or(AgentxError::Truncated)?
        .to_vec();
    if flags & NON_DEFAULT_CONTEXT != 0 {
        let (_, used) = octets(&payload, 0, be)?;
        payload.drain(..used);
    }
    Ok(Pdu {
        kind: header[1],
        flags,
        session: u32_at(header, 4, be)?,
        transaction: u32_at(header, 8, be)?,
        packet: u32_at(header, 12, be)?,
        payload,
    })
}

/// An OctetString at `at`: its bytes and the length it takes with padding.
fn octets(b: &[u8], at: usize, be: bool) -> Result<(Vec<u8>, usize), AgentxError> {
    let n = u32_at(b, at, be)? as usize;
    let data = b.get(at + 4..at + 4 + n).ok_or(AgentxError::Truncated)?;
    Ok((data.to_vec(), 4 + n.div_ceil(4) * 4))
}

/// An object identifier at `at`: its sub-identifiers, its include flag, and its length.
pub fn read_oid(b: &[u8], at: usize, be: bool) -> Result<(Vec<u32>, bool, usize), AgentxError> {
    let head = b.get(at..at + 4).ok_or(AgentxError::Truncated)?;
    let (n, prefix, include) = (head[0] as usize, head[1], head[2] != 0);
    let mut oid = Vec::with_capacity(n + 5);
    if prefix != 0 {
        oid.extend([1, 3, 6, 1, u32::from(prefix)]);
    }
    for i in 0..n {
        oid.push(u32_at(b, at + 4 + 4 * i, be)?);
    }
    Ok((oid, include, 4 + 4 * n))
}

/// Writes an object identifier (with the 1.3.6.1.x prefix compressed when it applies).
pub fn write_oid(out: &mut Vec<u8>, oid: &[u32], include: bool) {
    let compress = oid.len() > 4 && oid[..4] == [1, 3, 6, 1] && oid[4] > 0 && oid[4] < 256;
    let (prefix, rest) = if compress {
        (oid[4] as u8, &oid[5..])
    } else {
        (0, oid)
    };
    out.extend([rest.len() as u8, prefix, u8::from(include), 0]);
    for s in rest {
        out.extend(s.to_be_bytes());
    }
}

fn write_octets(out: &mut Vec<u8>, data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    out.extend(data);
    out.extend(std::iter::repeat_n(
        0,
        data.len().div_ceil(4) * 4 - data.len(),
    ));
}

/// Writes a variable binding.
pub fn write_varbind(out: &mut Vec<u8>, oid: &[u32], value: &Value) {
    out.extend(value.type_code().to_be_bytes());
    out.extend([0, 0]);
    write_oid(out, oid, false);
    match value {
        Value::Integer(v) => out.extend(v.to_be_bytes()),
        Value::Octets(d) => write_octets(out, d),
        Value::Counter32(v) | Value::Gauge32(v) => out.extend(v.to_be_bytes()),
        Value::Counter64(v) => out.extend(v.to_be_bytes()),
        Value::NoSuchObject | Value::EndOfMibView => {}
    }
}

/// A whole PDU to send: header (big-endian) and `payload`.
pub fn encode(kind: u8, session: u32, transaction: u32, packet: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend([1, kind, NETWORK_BYTE_ORDER, 0]);
    out.extend(session.to_be_bytes());
    out.extend(transaction.to_be_bytes());
    out.extend(packet.to_be_bytes());
    out.extend((payload.len() as u32).to_be_bytes());
    out.extend(payload);
    out
}

/// The Open-PDU's payload: a timeout, no object id, and `description`.
pub fn open_payload(timeout_s: u8, description: &str) -> Vec<u8> {
    let mut p = vec![timeout_s, 0, 0, 0];
    write_oid(&mut p, &[], false);
    write_octets(&mut p, description.as_bytes());
    p
}

/// The Register-PDU's payload for `subtree` at default priority.
pub fn register_payload(subtree: &[u32]) -> Vec<u8> {
    let mut p = vec![0, 127, 0, 0];
    write_oid(&mut p, subtree, false);
    p
}

/// A Response-PDU's payload: no uptime, `error` at `index`, and the variable bindings.
pub fn response_payload(error: u16, index: u16, varbinds: &[(Vec<u32>, Value)]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(0u32.to_be_bytes());
    p.extend(error.to_be_bytes());
    p.extend(index.to_be_bytes());
    for (oid, value) in varbinds {
        write_varbind(&mut p, oid, value);
    }
    p
}

/// A search range of a Get, GetNext or GetBulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRange {
    /// Where the search starts.
    pub start: Vec<u32>,
    /// Whether `start` itself may be returned.
    pub include: bool,
    /// Where it ends (exclusive; empty: no end).
    pub end: Vec<u32>,
}

/// A Get or GetNext request's ranges, or a GetBulk's with its non-repeaters and
/// max-repetitions.
pub fn read_ranges(pdu: &Pdu) -> Result<(u16, u16, Vec<SearchRange>), AgentxError> {
    let be = pdu.big_endian();
    let b = &pdu.payload;
    let (mut at, non_rep, max_rep) = if pdu.kind == pdu::GET_BULK {
        (4, u16_at(b, 0, be)?, u16_at(b, 2, be)?)
    } else {
        (0, 0, 0)
    };
    let mut ranges = Vec::new();
    while at < b.len() {
        let (start, include, used) = read_oid(b, at, be)?;
        at += used;
        let (end, _, used) = read_oid(b, at, be)?;
        at += used;
        ranges.push(SearchRange {
            start,
            include,
            end,
        });
    }
    Ok((non_rep, max_rep, ranges))
}

/// The session id in a Response-PDU the master sent (to the Open).
pub fn response_error(pdu: &Pdu) -> Result<u16, AgentxError> {
    u16_at(&pdu.payload, 4, pdu.big_endian())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_compress_their_internet_prefix_and_read_back() {
        let oid = [1, 3, 6, 1, 4, 1, 9586, 100, 5, 3, 3, 1, 2, 1];
        let mut b = Vec::new();
        write_oid(&mut b, &oid, true);
        assert_eq!(&b[..4], &[9, 4, 1, 0]);
        assert_eq!(read_oid(&b, 0, true).unwrap(), (oid.to_vec(), true, 4 + 36));
        // Little-endian as a master may send it.
        let le: Vec<u8> = [2u8, 0, 0, 0]
            .into_iter()
            .chain(7u32.to_le_bytes())
            .chain(9u32.to_le_bytes())
            .collect();
        assert_eq!(read_oid(&le, 0, false).unwrap().0, vec![7, 9]);
    }

    #[test]
    fn a_getnext_round_trips_through_the_codec() {
        let mut payload = Vec::new();
        write_oid(&mut payload, &[1, 3, 6, 1, 4, 1, 9586], true);
        write_oid(&mut payload, &[], false);
        let bytes = encode(pdu::GET_NEXT, 7, 8, 9, &payload);
        let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().unwrap();
        assert_eq!(payload_len(&header), payload.len());
        let pdu = decode(&bytes).unwrap();
        assert_eq!((pdu.kind, pdu.session, pdu.packet), (pdu::GET_NEXT, 7, 9));
        let (_, _, ranges) = read_ranges(&pdu).unwrap();
        assert_eq!(ranges.len(), 1);
        assert!(ranges[0].include && ranges[0].end.is_empty());
        assert_eq!(decode(&bytes[..10]), Err(AgentxError::Truncated));
    }

    #[test]
    fn values_take_their_wire_form() {
        let mut b = Vec::new();
        write_varbind(&mut b, &[1, 2], &Value::Octets(b"abcde".to_vec()));
        // type 4, reserved, OID of 2, then length 5 and 8 bytes of padded data.
        assert_eq!(&b[..2], &[0, 4]);
        assert_eq!(b.len(), 4 + 4 + 8 + 4 + 8);
        let mut c = Vec::new();
        write_varbind(&mut c, &[1], &Value::Counter64(1 << 40));
        assert_eq!(&c[c.len() - 8..], &(1u64 << 40).to_be_bytes());
    }
}
