//! A small HTTP/1.x GET client, shared by HTTP_GET, SSL_GET and rvs-genhash.
//!
//! Like keepalived it sends one GET per connection, reads until the server closes (or
//! Content-Length bytes arrived), and digests the raw body bytes with MD5, limited to
//! Content-Length when the server sent one. Chunked bodies are not decoded (keepalived
//! hashes them raw as well).

use std::net::SocketAddr;
use std::time::Duration;

use md5::{Digest, Md5};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::net::{tcp_connect, within, NetError};
use crate::spec::{ConnectOpts, HttpProtocol, TlsClientSpec};
use crate::tls::{client_config, TlsError};

/// The User-Agent keepalived's HTTP checker sends.
pub const USER_AGENT: &str = "KeepAliveClient";

/// Largest response header accepted.
const MAX_HEADER: usize = 64 * 1024;
/// Largest body kept in memory when the caller asks for it (the digest covers all).
const MAX_CAPTURED_BODY: usize = 16 * 1024 * 1024;

/// Errors fetching a URL.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting, sending or receiving failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The SNI name is not a valid DNS name.
    #[error("invalid SNI name {0:?}")]
    BadSni(String),
    /// The server closed before a complete header arrived.
    #[error("connection closed before the response header was complete")]
    ShortHeader,
    /// The header exceeded the size limit.
    #[error("response header larger than {MAX_HEADER} bytes")]
    HeaderTooLarge,
    /// The status line is not `HTTP/x.y NNN ...`.
    #[error("malformed status line {0:?}")]
    BadStatusLine(String),
    /// The connection along the client's path (`client_path`) could not be opened.
    #[error("client path: {0}")]
    ClientPath(String),
}

/// TLS options for one request.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Server name sent as SNI (none: no SNI).
    pub sni: Option<String>,
    /// Client certificate material.
    pub client: TlsClientSpec,
}

/// One GET request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Where to connect.
    pub conn: ConnectOpts,
    /// Request target, e.g. `/index.html`.
    pub path: String,
    /// Host header value; `None` uses `ip:port` as keepalived does.
    pub virtualhost: Option<String>,
    /// Protocol version line and connection handling.
    pub protocol: HttpProtocol,
    /// `Some` for HTTPS.
    pub tls: Option<TlsOptions>,
}

/// A received response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The raw header bytes (status line and fields, including the blank line).
    pub header: Vec<u8>,
    /// The body bytes the digest covers (only filled when asked for, limited to Content-Length
    /// when present, and capped at 16 MiB).
    pub body: Vec<u8>,
    /// MD5 over the body (limited to Content-Length when present).
    pub digest: [u8; 16],
    /// The Content-Length header, if any.
    pub content_length: Option<u64>,
    /// Body bytes received.
    pub rx_bytes: u64,
}

impl HttpResponse {
    /// The digest as lowercase hex, as keepalived's `digest` keyword expects.
    pub fn digest_hex(&self) -> String {
        hex(&self.digest)
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The request bytes keepalived sends for `req`.
pub fn request_bytes(req: &HttpRequest) -> Vec<u8> {
    let host = match &req.virtualhost {
        Some(v) => v.clone(),
        None => SocketAddr::new(req.conn.connect_ip, req.conn.connect_port).to_string(),
    };
    let (version, close) = match req.protocol {
        HttpProtocol::Http10 => ("1.0", false),
        HttpProtocol::Http10Close => ("1.0", true),
        HttpProtocol::Http11 => ("1.1", true),
    };
    let mut s = format!(
        "GET {} HTTP/{version}\r\nUser-Agent: {USER_AGENT}\r\nHost: {host}\r\n",
        req.path
    );
    if close {
        s.push_str("Connection: close\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// Fetch `req`, hashing the body; keep the body bytes when `capture_body` is set.
pub async fn fetch(req: &HttpRequest, capture_body: bool) -> Result<HttpResponse, HttpError> {
    match &req.conn.via {
        None => {
            let stream = tcp_connect(&req.conn).await?;
            fetch_over(stream, req, capture_body).await
        }
        Some(path) => {
            let (port, limit) = (req.conn.connect_port, req.conn.connect_timeout);
            let stream = path
                .connect(port, limit)
                .await
                .map_err(HttpError::ClientPath)?;
            fetch_over(stream, req, capture_body).await
        }
    }
}

/// The exchange of [`fetch`] over a connected `stream` (TLS first for SSL_GET).
async fn fetch_over<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    req: &HttpRequest,
    capture_body: bool,
) -> Result<HttpResponse, HttpError> {
    let limit = req.conn.connect_timeout;
    let request = request_bytes(req);
    match &req.tls {
        None => exchange(stream, &request, limit, capture_body).await,
        Some(opts) => {
            let config = client_config(&opts.client)?;
            let name = match &opts.sni {
                Some(sni) => {
                    ServerName::try_from(sni.clone()).map_err(|_| HttpError::BadSni(sni.clone()))?
                }
                // An IP address name makes rustls send no SNI.
                None => ServerName::IpAddress(req.conn.connect_ip.into()),
            };
            let connector = tokio_rustls::TlsConnector::from(config);
            let tls = within(limit, "TLS handshake", connector.connect(name, stream)).await?;
            exchange(tls, &request, limit, capture_body).await
        }
    }
}

fn find_header_end(buf: &[u8]) -> Option<usize> {
    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some(p + 4);
    }
    buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2)
}

fn parse_status(header: &[u8]) -> Result<u16, HttpError> {
    let line_end = header
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(header.len());
    let line = String::from_utf8_lossy(&header[..line_end])
        .trim()
        .to_string();
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/") || code.len() != 3 {
        return Err(HttpError::BadStatusLine(line));
    }
    code.parse()
        .map_err(|_| HttpError::BadStatusLine(line.clone()))
}

fn parse_content_length(header: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(header);
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

struct BodySink {
    hasher: Md5,
    content_length: Option<u64>,
    rx_bytes: u64,
    capture: bool,
    body: Vec<u8>,
}

impl BodySink {
    fn feed(&mut self, data: &[u8]) {
        let hashed = match self.content_length {
            Some(len) => {
                let room = len.saturating_sub(self.rx_bytes);
                &data[..data.len().min(usize::try_from(room).unwrap_or(usize::MAX))]
            }
            None => data,
        };
        self.hasher.update(hashed);
        self.rx_bytes += data.len() as u64;
        if self.capture {
            let room = MAX_CAPTURED_BODY.saturating_sub(self.body.len());
            self.body
                .extend_from_slice(&hashed[..hashed.len().min(room)]);
        }
    }

    fn complete(&self) -> bool {
        self.content_length.is_some_and(|len| self.rx_bytes >= len)
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    limit: Duration,
    capture_body: bool,
) -> Result<HttpResponse, HttpError> {
    within(limit, "sending request", stream.write_all(request)).await?;
    within(limit, "flushing request", stream.flush()).await?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let header_end = loop {
        if let Some(end) = find_header_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEADER {
            return Err(HttpError::HeaderTooLarge);
        }
        let n = within(limit, "reading response", stream.read(&mut chunk)).await?;
        if n == 0 {
            return Err(HttpError::ShortHeader);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let header = buf[..header_end].to_vec();
    let status = parse_status(&header)?;
    let mut sink = BodySink {
        hasher: Md5::new(),
        content_length: parse_content_length(&header),
        rx_bytes: 0,
        capture: capture_body,
        body: Vec::new(),
    };
    sink.feed(&buf[header_end..]);
    while !sink.complete() {
        let n = match within(limit, "reading body", stream.read(&mut chunk)).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify ends the body too.
            Err(NetError::Io(e, _)) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        sink.feed(&chunk[..n]);
    }
    Ok(HttpResponse {
        status,
        header,
        body: sink.body,
        digest: sink.hasher.finalize().into(),
        content_length: sink.content_length,
        rx_bytes: sink.rx_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uses_ip_port_host_without_vhost() {
        let req = HttpRequest {
            conn: ConnectOpts::new("10.0.0.1".parse().unwrap(), 8080),
            path: "/a".into(),
            virtualhost: None,
            protocol: HttpProtocol::Http10,
            tls: None,
        };
        assert_eq!(
            request_bytes(&req),
            b"GET /a HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 10.0.0.1:8080\r\n\r\n"
        );
    }

    #[test]
    fn request_http11_uses_vhost_and_close() {
        let req = HttpRequest {
            conn: ConnectOpts::new("::1".parse().unwrap(), 80),
            path: "/".into(),
            virtualhost: Some("www.example.com".into()),
            protocol: HttpProtocol::Http11,
            tls: None,
        };
        let text = String::from_utf8(request_bytes(&req)).unwrap();
        assert!(text.starts_with("GET / HTTP/1.1\r\n"));
        assert!(text.contains("Host: www.example.com\r\n"));
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn status_and_length_parse() {
        let h = b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(parse_status(h).unwrap(), 404);
        assert_eq!(parse_content_length(h), Some(12));
        assert!(parse_status(b"FTP 200\r\n\r\n").is_err());
    }
}
