//! UDP_CHECK: send `payload` on a connected UDP socket. With `require_reply` a reply
//! must arrive within `connect_timeout` (and match the prefix / length bounds);
//! otherwise the check passes unless an ICMP error (seen as ECONNREFUSED) arrives.

use std::io::ErrorKind;

use crate::net::{udp_connect, NetError};
use crate::result::CheckResult;
use crate::spec::{ConnectOpts, UdpSpec};

/// Why a reply does not pass.
#[derive(Debug, thiserror::Error)]
enum BadReply {
    /// Fewer bytes than `min_reply_length`.
    #[error("reply of {len} bytes shorter than {min}")]
    Short { len: usize, min: usize },
    /// More bytes than `max_reply_length`.
    #[error("reply of {len} bytes longer than {max}")]
    Long { len: usize, max: usize },
    /// Not starting with the `require_reply` bytes.
    #[error("reply does not match require_reply")]
    Mismatch,
}

fn reply_ok(spec: &UdpSpec, reply: &[u8]) -> Result<(), BadReply> {
    let len = reply.len();
    if let Some(min) = spec.min_reply_length {
        if len < min {
            return Err(BadReply::Short { len, min });
        }
    }
    if let Some(max) = spec.max_reply_length {
        if len > max {
            return Err(BadReply::Long { len, max });
        }
    }
    if let Some(prefix) = &spec.reply_prefix {
        if !reply.starts_with(prefix) {
            return Err(BadReply::Mismatch);
        }
    }
    Ok(())
}

pub(super) async fn run(conn: &ConnectOpts, spec: &UdpSpec) -> CheckResult {
    let target = conn.target();
    let fail = |what: String| CheckResult::fail(format!("UDP {target}: {what}"));
    let sock = match udp_connect(conn).await {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    if let Err(e) = sock.send(&spec.payload).await {
        return fail(format!("sending: {e}"));
    }
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(conn.connect_timeout, sock.recv(&mut buf)).await {
        Ok(Ok(n)) => match reply_ok(spec, &buf[..n]) {
            Ok(()) => CheckResult::pass(format!("UDP {target}: reply of {n} bytes")),
            Err(e) => fail(e.to_string()),
        },
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
            fail("port unreachable (ICMP error)".into())
        }
        Ok(Err(e)) => fail(NetError::Io(e, "receiving").to_string()),
        Err(_) if spec.require_reply => fail(format!("no reply within {:?}", conn.connect_timeout)),
        Err(_) => CheckResult::pass(format!(
            "UDP {target}: no ICMP error within {:?}",
            conn.connect_timeout
        )),
    }
}
