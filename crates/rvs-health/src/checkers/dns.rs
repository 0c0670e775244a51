//! DNS_CHECK: send one UDP query for `name`/`type`; the reply must carry the same id,
//! have QR set and RCODE 0 (NOERROR).

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::net::{udp_connect, within};
use crate::result::CheckResult;
use crate::spec::{ConnectOpts, DnsSpec, DnsType};

/// Problems building a query or reading a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// A label is empty or longer than 63 bytes, or the name exceeds 255 bytes.
    #[error("invalid query name {0:?}")]
    BadName(String),
    /// The reply is shorter than a DNS header.
    #[error("reply too short ({0} bytes)")]
    Short(usize),
    /// The reply id differs from the query's.
    #[error("reply id {got:#06x} does not match query id {want:#06x}")]
    IdMismatch {
        /// Id sent.
        want: u16,
        /// Id received.
        got: u16,
    },
    /// The QR bit is clear (it is a query, not a response).
    #[error("reply is not a response")]
    NotResponse,
    /// A non-zero RCODE.
    #[error("reply rcode {0}")]
    Rcode(u8),
}

/// Build a recursive query for `name` of type `qtype`, class IN.
pub fn build_query(id: u16, name: &str, qtype: DnsType) -> Result<Vec<u8>, DnsError> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    let trimmed = name.trim_end_matches('.');
    if trimmed.len() > 253 {
        return Err(DnsError::BadName(name.into()));
    }
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(DnsError::BadName(name.into()));
            }
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
    }
    q.push(0);
    q.extend_from_slice(&qtype.code().to_be_bytes());
    q.extend_from_slice(&[0, 1]); // IN
    Ok(q)
}

/// Check a reply against query id `id`; returns the answer count.
pub fn parse_response(id: u16, reply: &[u8]) -> Result<u16, DnsError> {
    if reply.len() < 12 {
        return Err(DnsError::Short(reply.len()));
    }
    let got = u16::from_be_bytes([reply[0], reply[1]]);
    if got != id {
        return Err(DnsError::IdMismatch { want: id, got });
    }
    if reply[2] & 0x80 == 0 {
        return Err(DnsError::NotResponse);
    }
    let rcode = reply[3] & 0x0f;
    if rcode != 0 {
        return Err(DnsError::Rcode(rcode));
    }
    Ok(u16::from_be_bytes([reply[6], reply[7]]))
}

fn next_id() -> u16 {
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos as u16) ^ COUNTER.fetch_add(0x9e37, Ordering::Relaxed)
}

pub(super) async fn run(conn: &ConnectOpts, spec: &DnsSpec) -> CheckResult {
    let target = conn.target();
    let fail = |what: String| CheckResult::fail(format!("DNS {target}: {what}"));
    let id = next_id();
    let query = match build_query(id, &spec.name, spec.qtype) {
        Ok(q) => q,
        Err(e) => return fail(e.to_string()),
    };
    let sock = match udp_connect(conn).await {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    if let Err(e) = within(conn.connect_timeout, "sending query", sock.send(&query)).await {
        return fail(e.to_string());
    }
    let deadline = tokio::time::Instant::now() + conn.connect_timeout;
    let mut buf = vec![0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let n = match within(left, "waiting for reply", sock.recv(&mut buf)).await {
            Ok(n) => n,
            Err(e) => return fail(e.to_string()),
        };
        match parse_response(id, &buf[..n]) {
            Ok(answers) => {
                return CheckResult::pass(format!("DNS {target}: NOERROR, {answers} answer(s)"))
            }
            // A stray datagram (an old reply): keep waiting for ours.
            Err(DnsError::IdMismatch { .. }) => continue,
            Err(e) => return fail(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_layout() {
        let q = build_query(0x1234, "a.bc", DnsType::Aaaa).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], &[1, b'a', 2, b'b', b'c', 0, 0, 28, 0, 1]);
        let root = build_query(1, ".", DnsType::A).unwrap();
        assert_eq!(&root[12..], &[0, 0, 1, 0, 1]);
        assert!(build_query(1, "a..b", DnsType::A).is_err());
    }

    #[test]
    fn reply_checks() {
        let mut r = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        assert_eq!(parse_response(0x1234, &r), Ok(2));
        assert!(matches!(
            parse_response(0x1235, &r),
            Err(DnsError::IdMismatch { .. })
        ));
        r[3] = 0x83;
        assert_eq!(parse_response(0x1234, &r), Err(DnsError::Rcode(3)));
        assert_eq!(parse_response(0x1234, &r[..5]), Err(DnsError::Short(5)));
    }
}
