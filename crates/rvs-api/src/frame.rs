//! Newline-delimited JSON framing with a bounded line length.

use crate::command::Command;
use crate::error::ApiError;
use crate::reply::Reply;
use crate::MAX_LINE;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{BufRead, ErrorKind as IoErrorKind};

/// Encode a message as one line of compact JSON, newline included.
///
/// Fails with [`ApiError::LineTooLong`] if the JSON exceeds [`MAX_LINE`] bytes.
pub fn encode_line<T: Serialize>(message: &T) -> Result<Vec<u8>, ApiError> {
    let mut line = serde_json::to_vec(message).map_err(ApiError::Encode)?;
    if line.len() > MAX_LINE {
        return Err(ApiError::LineTooLong { limit: MAX_LINE });
    }
    line.push(b'\n');
    Ok(line)
}

/// Decode one line (with or without its trailing newline) into a message.
///
/// Fails with [`ApiError::LineTooLong`] beyond [`MAX_LINE`] bytes and [`ApiError::Decode`] for
/// anything that is not exactly one JSON value of type `T`.
pub fn decode_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, ApiError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.len() > MAX_LINE {
        return Err(ApiError::LineTooLong { limit: MAX_LINE });
    }
    serde_json::from_slice(line).map_err(ApiError::Decode)
}

/// Encode a command as a request line.
pub fn encode_command(command: &Command) -> Result<Vec<u8>, ApiError> {
    encode_line(command)
}

/// Decode a request line into a command.
pub fn decode_command(line: &[u8]) -> Result<Command, ApiError> {
    decode_line(line)
}

/// Encode a reply as a reply line.
pub fn encode_reply(reply: &Reply) -> Result<Vec<u8>, ApiError> {
    encode_line(reply)
}

/// Decode a reply line into a reply.
pub fn decode_reply(line: &[u8]) -> Result<Reply, ApiError> {
    decode_line(line)
}

/// Read one line (without its newline) from a buffered reader, holding at most [`MAX_LINE`] bytes.
///
/// Returns `Ok(None)` on a clean end of stream before any byte of a new line, and
/// [`ApiError::Closed`] if the stream ends in the middle of a line. An oversized line is read to
/// its newline and discarded, then reported as [`ApiError::LineTooLong`], so the caller can answer
/// with an error and keep using the connection.
pub fn read_frame<R: BufRead>(reader: &mut R) -> Result<Option<Vec<u8>>, ApiError> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
            Err(e) => return Err(ApiError::Io(e)),
        };
        if available.is_empty() {
            return if too_long {
                Err(ApiError::LineTooLong { limit: MAX_LINE })
            } else if line.is_empty() {
                Ok(None)
            } else {
                Err(ApiError::Closed)
            };
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(end) => {
                if !too_long {
                    line.extend_from_slice(&available[..end]);
                }
                reader.consume(end + 1);
                if too_long || line.len() > MAX_LINE {
                    return Err(ApiError::LineTooLong { limit: MAX_LINE });
                }
                return Ok(Some(line));
            }
            None => {
                let n = available.len();
                if !too_long {
                    line.extend_from_slice(available);
                }
                reader.consume(n);
                if line.len() > MAX_LINE {
                    too_long = true;
                    line = Vec::new();
                }
            }
        }
    }
}

/// A push-based line splitter for servers that read the socket themselves (e.g. with tokio).
///
/// Feed received bytes with [`FrameBuffer::push`], then take complete lines with
/// [`FrameBuffer::next_frame`] until it returns `None`. Memory stays bounded by the line limit
/// plus one pushed chunk: an oversized line yields one [`ApiError::LineTooLong`] and the rest of
/// it, up to its newline, is discarded.
#[derive(Debug, Clone)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    discarding: bool,
    limit: usize,
}

impl Default for FrameBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameBuffer {
    /// A buffer enforcing [`MAX_LINE`].
    pub fn new() -> Self {
        Self::with_limit(MAX_LINE)
    }

    /// A buffer enforcing a custom line limit (mainly for tests).
    pub fn with_limit(limit: usize) -> Self {
        FrameBuffer {
            buf: Vec::new(),
            discarding: false,
            limit,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.discarding {
            if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
                self.discarding = false;
                self.buf.extend_from_slice(&bytes[end + 1..]);
            }
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete line without its newline, an error for an oversized line, or `None`
    /// when no complete line is buffered yet.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, ApiError>> {
        let too_long = Err(ApiError::LineTooLong { limit: self.limit });
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.len() > self.limit {
                    Some(too_long)
                } else {
                    Some(Ok(line))
                }
            }
            None if self.buf.len() > self.limit => {
                self.buf.clear();
                self.discarding = true;
                Some(too_long)
            }
            None => None,
        }
    }

    /// Bytes of an incomplete line currently buffered.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}
