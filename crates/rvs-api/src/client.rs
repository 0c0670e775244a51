//! A small blocking client for rvsd's control socket.

use crate::command::Command;
use crate::error::ApiError;
use crate::frame::{decode_reply, encode_command, read_frame};
use crate::reply::Reply;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Read/write timeout a new [`Client`] starts with.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A blocking connection to rvsd; send commands one at a time with [`Client::call`].
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connect to the daemon's socket at `path` (usually [`crate::DEFAULT_SOCKET`]).
    ///
    /// Reads and writes time out after 30 seconds; see [`Client::set_timeout`].
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, ApiError> {
        let path = path.as_ref();
        let connect_error = |source| ApiError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let writer = UnixStream::connect(path).map_err(connect_error)?;
        let reader = writer.try_clone().map_err(connect_error)?;
        let client = Client {
            reader: BufReader::new(reader),
            writer,
        };
        client.set_timeout(Some(DEFAULT_TIMEOUT))?;
        Ok(client)
    }

    /// Set the read and write timeout (`None` waits forever).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ApiError> {
        self.writer.set_read_timeout(timeout)?;
        self.writer.set_write_timeout(timeout)?;
        Ok(())
    }

    /// Send one command and wait for its reply.
    ///
    /// A daemon-side failure is a successful call returning [`Reply::Error`]; `Err` means the
    /// exchange itself failed.
    ///
    /// A streamed answer ([`Reply::More`] parts) is joined into one reply; use
    /// [`Client::call_each`] to handle the parts as they arrive instead.
    pub fn call(&mut self, command: &Command) -> Result<Reply, ApiError> {
        let mut whole: Option<Reply> = None;
        self.call_each(command, |part| {
            // A listing that fails part-way ends with the daemon's error: that is the answer.
            if let (Some(w), false) = (&mut whole, matches!(part, Reply::Error(_))) {
                return w.append(part).map_err(|_| ApiError::UnexpectedPart);
            }
            whole = Some(part);
            Ok(())
        })?;
        whole.ok_or(ApiError::Closed)
    }

    /// Send one command and hand its answer to `each` part by part, as it arrives: the payload
    /// of every [`Reply::More`] line, then the final reply. Memory stays bounded by one part,
    /// whatever the size of the listing. An error returned by `each` ends the call (the rest of
    /// the answer is read and discarded first, so the connection stays usable).
    pub fn call_each(
        &mut self,
        command: &Command,
        mut each: impl FnMut(Reply) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        let line = encode_command(command)?;
        self.writer.write_all(&line)?;
        self.writer.flush()?;
        let mut failed = None;
        loop {
            let reply = match read_frame(&mut self.reader)? {
                Some(line) => decode_reply(&line)?,
                None => return Err(ApiError::Closed),
            };
            let (part, last) = match reply {
                Reply::More(part) => (*part, false),
                other => (other, true),
            };
            if failed.is_none() {
                if let Err(e) = each(part) {
                    failed = Some(e);
                }
            }
            if last {
                return failed.map_or(Ok(()), Err);
            }
        }
    }
}
