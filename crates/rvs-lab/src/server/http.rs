//! The HTTP/1.1 side of the real server, one thread per connection.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /` | 200, the text and a newline |
//! | `GET /bytes/N` | 200, N bytes of [`pattern_byte`] |
//! | `POST /upload` | reads Content-Length bytes, answers `<len> <sha256 hex>\n` |
//! | `GET /hold/S` | headers at once, then one byte per second for S seconds |
//! | `GET /whoami` | the client's address as this server sees it, `ip:port\n` |
//!
//! Keep-alive is the HTTP/1.1 default; `Connection: close` (or HTTP/1.0 without keep-alive)
//! closes after the answer. `Expect: 100-continue` is honoured.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How long an idle keep-alive connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest `/hold/S` accepted, in seconds.
const MAX_HOLD_SECS: u64 = 3600;
/// The characters of the `/bytes/N` pattern.
const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Byte `i` (from 0) of every `/bytes/N` body.
pub fn pattern_byte(i: u64) -> u8 {
    ALPHABET[(i % ALPHABET.len() as u64) as usize]
}

/// The first `len` bytes of the `/bytes/N` pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64).map(pattern_byte).collect()
}

/// Hex SHA-256 of `pattern(len)`: what a correct download of `GET /bytes/<len>` hashes to.
pub fn pattern_sha256(len: usize) -> String {
    sha256_hex(&pattern(len))
}

/// Hex SHA-256 of `data` (lowercase, as `sha256sum` prints it).
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Accepts connections forever, each on its own thread.
pub fn accept_loop(listener: TcpListener, text: Arc<String>) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let text = Arc::clone(&text);
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, peer, &text);
                });
            }
            // Out of file descriptors or a connection reset before accept: back off a little.
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// One parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, e.g. `/bytes/100`.
    pub path: String,
    /// Whether the version is HTTP/1.1 (or later) rather than 1.0.
    pub http11: bool,
    /// The Content-Length header.
    pub content_length: Option<u64>,
    /// The Connection header, lowercased.
    pub connection: Option<String>,
    /// Whether the client sent `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl RequestHead {
    /// Whether the connection stays open after the answer.
    pub fn keep_alive(&self) -> bool {
        match &self.connection {
            Some(value) if value.contains("close") => false,
            Some(value) if value.contains("keep-alive") => true,
            _ => self.http11,
        }
    }
}

/// Why a request head could not be read.
#[derive(Debug)]
pub enum HeadError {
    /// The peer closed the connection cleanly before a new request.
    Closed,
    /// The bytes are not an acceptable HTTP/1.x request head.
    Malformed(&'static str),
    /// Reading failed.
    Io(io::Error),
}

/// Reads one request head (request line and headers up to the empty line).
pub fn read_head(reader: &mut impl BufRead) -> Result<RequestHead, HeadError> {
    let mut line = String::new();
    let mut total = 0usize;
    let mut next_line = |line: &mut String| -> Result<usize, HeadError> {
        line.clear();
        let n = reader
            .by_ref()
            .take((MAX_HEAD - total.min(MAX_HEAD)) as u64 + 1)
            .read_line(line)
            .map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData => HeadError::Malformed("not UTF-8"),
                _ => HeadError::Io(e),
            })?;
        total += n;
        if total > MAX_HEAD {
            return Err(HeadError::Malformed("head too long"));
        }
        Ok(n)
    };
    // Tolerate empty lines before the request line (RFC 9112 section 2.2).
    loop {
        if next_line(&mut line)? == 0 {
            return Err(HeadError::Closed);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed("bad request line"));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HeadError::Malformed("unsupported version")),
    };
    let mut head = RequestHead {
        method: method.to_string(),
        path: path.to_string(),
        http11,
        content_length: None,
        connection: None,
        expect_continue: false,
    };
    loop {
        if next_line(&mut line)? == 0 {
            return Err(HeadError::Malformed("connection closed inside the head"));
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            return Ok(head);
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(HeadError::Malformed("header without colon"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse()
                .map_err(|_| HeadError::Malformed("bad content-length"))?;
            head.content_length = Some(length);
        } else if name.eq_ignore_ascii_case("connection") {
            head.connection = Some(value.to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HeadError::Malformed("transfer-encoding is not supported"));
        }
    }
}

/// Serves requests on one connection until it closes or asks to.
fn serve_connection(stream: TcpStream, peer: SocketAddr, text: &str) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let head = match read_head(&mut reader) {
            Ok(head) => head,
            Err(HeadError::Closed) => return Ok(()),
            Err(HeadError::Io(e)) => return Err(e),
            Err(HeadError::Malformed(why)) => {
                respond(&mut writer, "400 Bad Request", &format!("{why}\n"), false)?;
                return Ok(());
            }
        };
        let keep = head.keep_alive();
        answer(&head, &mut reader, &mut writer, peer, text, keep)?;
        if !keep {
            return Ok(());
        }
    }
}

/// Writes the answer to one request (reading its body, if any).
fn answer(
    head: &RequestHead,
    reader: &mut impl BufRead,
    writer: &mut TcpStream,
    peer: SocketAddr,
    text: &str,
    keep: bool,
) -> io::Result<()> {
    if head.expect_continue && head.http11 {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body_len = head.content_length.unwrap_or(0);
    if head.method == "POST" && head.path == "/upload" {
        let Some(len) = head.content_length else {
            return respond(
                writer,
                "411 Length Required",
                "need Content-Length\n",
                false,
            );
        };
        let digest = hash_body(reader, len)?;
        return respond(writer, "200 OK", &format!("{len} {digest}\n"), keep);
    }
    // Other requests' bodies are read and dropped so the next request starts in the right place.
    io::copy(&mut reader.by_ref().take(body_len), &mut io::sink())?;
    if head.method != "GET" {
        return respond(
            writer,
            "405 Method Not Allowed",
            "only GET and POST /upload\n",
            keep,
        );
    }
    let path = head.path.as_str();
    if path == "/" {
        respond(writer, "200 OK", &format!("{text}\n"), keep)
    } else if path == "/whoami" {
        let ip = peer.ip().to_canonical();
        respond(
            writer,
            "200 OK",
            &format!("{}\n", SocketAddr::new(ip, peer.port())),
            keep,
        )
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        match n.parse::<u64>() {
            Ok(len) => send_pattern(writer, len, keep),
            Err(_) => respond(writer, "400 Bad Request", "bad byte count\n", false),
        }
    } else if let Some(s) = path.strip_prefix("/hold/") {
        match s.parse::<u64>() {
            Ok(secs) if secs <= MAX_HOLD_SECS => hold(writer, secs, keep),
            _ => respond(writer, "400 Bad Request", "bad hold seconds\n", false),
        }
    } else {
        respond(writer, "404 Not Found", "not found\n", keep)
    }
}

fn header(status: &str, len: u64, keep: bool) -> String {
    let connection = if keep { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {status}\r\nServer: rvs-lab\r\nContent-Type: text/plain\r\n\
         Content-Length: {len}\r\nConnection: {connection}\r\n\r\n"
    )
}

/// Writes a whole small answer in one write.
fn respond(writer: &mut TcpStream, status: &str, body: &str, keep: bool) -> io::Result<()> {
    let mut message = header(status, body.len() as u64, keep).into_bytes();
    message.extend_from_slice(body.as_bytes());
    writer.write_all(&message)
}

/// Reads exactly `len` body bytes and returns their SHA-256 in hex.
fn hash_body(reader: &mut impl BufRead, len: u64) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut left = len;
    while left > 0 {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "body cut short",
            ));
        }
        let take = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        hasher.update(&chunk[..take]);
        reader.consume(take);
        left -= take as u64;
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Sends `len` bytes of the pattern.
fn send_pattern(writer: &mut TcpStream, len: u64, keep: bool) -> io::Result<()> {
    // A whole number of pattern periods, so every full chunk continues the pattern.
    let block = pattern(ALPHABET.len() * 1024);
    writer.write_all(header("200 OK", len, keep).as_bytes())?;
    let mut left = len;
    while left > 0 {
        let take = block.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        writer.write_all(&block[..take])?;
        left -= take as u64;
    }
    Ok(())
}

/// Sends the headers, then one byte per second for `secs` seconds.
fn hold(writer: &mut TcpStream, secs: u64, keep: bool) -> io::Result<()> {
    writer.write_all(header("200 OK", secs, keep).as_bytes())?;
    for i in 0..secs {
        std::thread::sleep(Duration::from_secs(1));
        writer.write_all(&[pattern_byte(i)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<RequestHead, HeadError> {
        read_head(&mut text.as_bytes())
    }

    #[test]
    fn parses_a_request_head() {
        let parsed = head(
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n",
        )
        .expect("valid head");
        assert_eq!(parsed.method, "POST");
        assert_eq!(parsed.path, "/upload");
        assert_eq!(parsed.content_length, Some(12));
        assert!(parsed.expect_continue);
        assert!(parsed.keep_alive());
    }

    #[test]
    fn connection_rules() {
        let close = head("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").expect("valid");
        assert!(!close.keep_alive());
        let old = head("GET / HTTP/1.0\r\n\r\n").expect("valid");
        assert!(!old.keep_alive());
        let old_keep = head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").expect("valid");
        assert!(old_keep.keep_alive());
    }

    #[test]
    fn rejects_bad_heads() {
        assert!(matches!(head(""), Err(HeadError::Closed)));
        assert!(matches!(
            head("GET /\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            head("GET / HTTP/2\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            head("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            head("GET / HTTP/1.1\r\nHost"),
            Err(HeadError::Malformed(_))
        ));
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(head(&long), Err(HeadError::Malformed(_))));
    }

    #[test]
    fn pattern_is_periodic() {
        let p = pattern(200);
        assert_eq!(&p[..3], b"012");
        assert_eq!(p[62], b'0');
        assert_eq!(p[61], b'Z');
    }
}
