//! SMTP_CHECK: read the 220 greeting, send `HELO helo_name`, expect 250, send QUIT.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::net::{tcp_connect, within, NetError};
use crate::result::CheckResult;
use crate::spec::{ConnectOpts, SmtpSpec};

/// Longest reply line accepted.
const MAX_LINE: usize = 4096;

/// Why an SMTP reply could not be read.
#[derive(Debug, thiserror::Error)]
enum ReplyError {
    /// Reading failed or timed out.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The server closed the connection.
    #[error("connection closed")]
    Closed,
    /// A line longer than [`MAX_LINE`].
    #[error("reply line too long")]
    TooLong,
    /// A line without a three-digit code.
    #[error("malformed reply {0:?}")]
    Malformed(String),
}

/// Read one (possibly multi-line) SMTP reply and return its code.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: Duration,
) -> Result<u16, ReplyError> {
    loop {
        let mut line = String::new();
        let n = within(limit, "reading SMTP reply", reader.read_line(&mut line)).await?;
        if n == 0 {
            return Err(ReplyError::Closed);
        }
        if line.len() > MAX_LINE {
            return Err(ReplyError::TooLong);
        }
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| ReplyError::Malformed(line.trim_end().to_owned()))?;
        // "250-..." continues, "250 ..." (or a bare "250") ends the reply.
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
}

pub(super) async fn run(conn: &ConnectOpts, spec: &SmtpSpec) -> CheckResult {
    let target = conn.target();
    let limit = conn.connect_timeout;
    let stream = match tcp_connect(conn).await {
        Ok(s) => s,
        Err(e) => return CheckResult::fail(format!("SMTP {target}: {e}")),
    };
    let (rd, mut wr) = stream.into_split();
    let mut reader = BufReader::new(rd);
    let fail = |what: String| CheckResult::fail(format!("SMTP {target}: {what}"));
    match read_reply(&mut reader, limit).await {
        Ok(220) => {}
        Ok(code) => return fail(format!("greeting code {code}, expected 220")),
        Err(e) => return fail(format!("greeting: {e}")),
    }
    let helo = format!("HELO {}\r\n", spec.helo_name);
    if let Err(e) = within(limit, "sending HELO", wr.write_all(helo.as_bytes())).await {
        return fail(e.to_string());
    }
    match read_reply(&mut reader, limit).await {
        Ok(250) => {}
        Ok(code) => return fail(format!("HELO answered {code}, expected 250")),
        Err(e) => return fail(format!("HELO: {e}")),
    }
    // QUIT politely; the check already passed, so its answer does not matter.
    let _ = within(limit, "sending QUIT", wr.write_all(b"QUIT\r\n")).await;
    let _ = read_reply(&mut reader, limit).await;
    CheckResult::pass(format!("SMTP {target}: 220/250"))
}
