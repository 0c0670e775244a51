//! Every checker against real peers on 127.0.0.1 started by the test.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_health::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const HELLO_MD5: &str = "5d41402abc4b2a76b9719d911017c592";

fn conn(port: u16) -> ConnectOpts {
    let mut c = ConnectOpts::new(LO, port);
    c.connect_timeout = Duration::from_secs(2);
    c
}

fn spec(port: u16, kind: CheckKind) -> CheckSpec {
    CheckSpec {
        conn: conn(port),
        kind,
    }
}

/// A port on 127.0.0.1 that was free a moment ago (for a client to bind as its source).
async fn free_port() -> u16 {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    l.local_addr().unwrap().port()
}

/// A TCP port on 127.0.0.1 that refuses connections while the socket returned is held: bound,
/// not listening, so the kernel answers a SYN with a RST, and no test running alongside can
/// take the port (one bound and freed at once can go to another test's server).
fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind(SocketAddr::from((LO, 0))).unwrap();
    let port = held.local_addr().unwrap().port();
    (held, port)
}

/// A file of this test process under the temporary directory, removed when dropped (so also
/// when the test fails).
struct TempFile(PathBuf);

impl TempFile {
    fn named(name: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!("rvs-health-{}-{name}", std::process::id())))
    }

    fn path(&self) -> PathBuf {
        self.0.clone()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Answer an HTTP request for `path` (keeps the request text for inspection).
fn http_answer(path: &str) -> Vec<u8> {
    match path {
        "/ok" => b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        "/nolen" => b"HTTP/1.0 200 OK\r\n\r\nhello".to_vec(),
        "/moved" => b"HTTP/1.0 302 Found\r\nLocation: /ok\r\n\r\n".to_vec(),
        _ => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
    }
}

async fn serve_http<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    seen.lock().unwrap().push(text);
    let _ = s.write_all(&http_answer(&path)).await;
    let _ = s.shutdown().await;
}

async fn http_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_http(s, seen2.clone()));
        }
    });
    (port, seen)
}

fn url(path: &str, digest: Option<&str>, status: Vec<StatusRange>) -> UrlSpec {
    UrlSpec {
        path: path.into(),
        digest: digest.map(str::to_string),
        status,
        virtualhost: None,
    }
}

fn http(urls: Vec<UrlSpec>) -> HttpSpec {
    HttpSpec {
        urls,
        ..HttpSpec::default()
    }
}

#[tokio::test]
async fn tcp_up_and_down() {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let r = check(&spec(port, CheckKind::Tcp)).await;
    assert!(r.ok, "{r:?}");
    let (_held, refusing) = refusing_port();
    let r = check(&spec(refusing, CheckKind::Tcp)).await;
    assert!(!r.ok);
    assert!(r.detail.contains("refused"), "{}", r.detail);
}

#[tokio::test]
async fn tcp_binds_source_address_and_port() {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let src_port = free_port().await;
    let mut s = spec(port, CheckKind::Tcp);
    s.conn.bindto = Some("127.0.0.2".parse().unwrap());
    s.conn.bind_port = Some(src_port);
    let (r, accepted) = tokio::join!(check(&s), l.accept());
    assert!(r.ok, "{r:?}");
    let peer = accepted.unwrap().1;
    assert_eq!(peer, SocketAddr::from(([127, 0, 0, 2], src_port)));
}

#[tokio::test]
async fn http_status_and_digest() {
    let (port, seen) = http_server().await;
    let ok = check(&spec(
        port,
        CheckKind::Http(http(vec![url("/ok", Some(HELLO_MD5), vec![])])),
    ))
    .await;
    assert!(ok.ok, "{ok:?}");
    let req = seen.lock().unwrap()[0].clone();
    assert!(req.starts_with("GET /ok HTTP/1.0\r\n"), "{req}");
    assert!(
        req.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{req}"
    );

    // Uppercase digest is accepted; a body without Content-Length hashes to EOF.
    let upper = HELLO_MD5.to_uppercase();
    let r = check(&spec(
        port,
        CheckKind::Http(http(vec![url("/nolen", Some(&upper), vec![])])),
    ))
    .await;
    assert!(r.ok, "{r:?}");

    let bad = check(&spec(
        port,
        CheckKind::Http(http(vec![url(
            "/ok",
            Some("00112233445566778899aabbccddeeff"),
            vec![],
        )])),
    ))
    .await;
    assert!(!bad.ok && bad.detail.contains("digest"), "{bad:?}");

    // Default 2xx rejects 404 and 302; explicit codes and ranges accept them.
    let r = check(&spec(
        port,
        CheckKind::Http(http(vec![url("/missing", None, vec![])])),
    ))
    .await;
    assert!(!r.ok && r.detail.contains("404"), "{r:?}");
    let r = check(&spec(
        port,
        CheckKind::Http(http(vec![url("/moved", None, vec![])])),
    ))
    .await;
    assert!(!r.ok);
    let r = check(&spec(
        port,
        CheckKind::Http(http(vec![url(
            "/moved",
            None,
            vec![StatusRange::single(302)],
        )])),
    ))
    .await;
    assert!(r.ok, "{r:?}");
    let r = check(&spec(
        port,
        CheckKind::Http(http(vec![url(
            "/missing",
            None,
            vec![StatusRange { lo: 400, hi: 499 }],
        )])),
    ))
    .await;
    assert!(r.ok, "{r:?}");

    // All urls must pass.
    let r = check(&spec(
        port,
        CheckKind::Http(http(vec![
            url("/ok", None, vec![]),
            url("/missing", None, vec![]),
        ])),
    ))
    .await;
    assert!(!r.ok);

    // Virtual host: url-level wins over checker-level.
    seen.lock().unwrap().clear();
    let mut h = http(vec![url("/ok", None, vec![]), url("/ok", None, vec![])]);
    h.virtualhost = Some("www.example.com".into());
    h.urls[1].virtualhost = Some("other.example.com".into());
    assert!(check(&spec(port, CheckKind::Http(h))).await.ok);
    let reqs = seen.lock().unwrap().clone();
    assert!(reqs[0].contains("Host: www.example.com\r\n"));
    assert!(reqs[1].contains("Host: other.example.com\r\n"));

    let (_held, refusing) = refusing_port();
    let r = check(&spec(
        refusing,
        CheckKind::Http(http(vec![url("/ok", None, vec![])])),
    ))
    .await;
    assert!(!r.ok);
}

#[tokio::test]
async fn http_times_out_on_silent_server() {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let mut s = spec(port, CheckKind::Http(http(vec![url("/ok", None, vec![])])));
    s.conn.connect_timeout = Duration::from_millis(300);
    let r = check(&s).await;
    assert!(!r.ok && r.detail.contains("timed out"), "{r:?}");
    assert!(r.elapsed < Duration::from_secs(2));
}

fn write_pem(name: &str, text: &str) -> TempFile {
    let f = TempFile::named(name);
    std::fs::write(&f.0, text).unwrap();
    f
}

/// A TLS server-side verifier that asks for a client certificate, accepts any (or none), and
/// still checks the handshake signature against the presented one.
#[derive(Debug)]
struct AnyClientCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test]
async fn ssl_get_self_signed_with_sni_and_client_cert() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["www.example.com".into()]).unwrap();
    let chain = vec![CertificateDer::from(ck.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(Arc::new(AnyClientCert(provider)))
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let snis = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    // The client certificate chain each connection presented.
    let peers = Arc::new(Mutex::new(Vec::<Option<Vec<Vec<u8>>>>::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (snis2, peers2, seen2) = (snis.clone(), peers.clone(), seen.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let (snis, peers, seen) = (snis2.clone(), peers2.clone(), seen2.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    let conn = tls.get_ref().1;
                    snis.lock()
                        .unwrap()
                        .push(conn.server_name().map(str::to_string));
                    peers.lock().unwrap().push(
                        conn.peer_certificates()
                            .map(|c| c.iter().map(|d| d.to_vec()).collect()),
                    );
                    serve_http(tls, seen).await;
                }
            });
        }
    });

    let r = check(&spec(
        port,
        CheckKind::Ssl(http(vec![url("/ok", Some(HELLO_MD5), vec![])])),
    ))
    .await;
    assert!(r.ok, "{r:?}");
    let mut h = http(vec![url("/ok", Some(HELLO_MD5), vec![])]);
    h.virtualhost = Some("www.example.com".into());
    h.enable_sni = true;
    // A client certificate is loaded and presented when the server asks for one.
    let client = rcgen::generate_simple_self_signed(vec!["client".into()]).unwrap();
    let cert = write_pem("client.crt", &client.cert.pem());
    let key = write_pem("client.key", &client.key_pair.serialize_pem());
    h.tls.certificate = Some(cert.path());
    h.tls.key = Some(key.path());
    let r = check(&spec(port, CheckKind::Ssl(h.clone()))).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        *snis.lock().unwrap(),
        vec![None, Some("www.example.com".to_string())]
    );
    assert_eq!(
        *peers.lock().unwrap(),
        vec![None, Some(vec![client.cert.der().to_vec()])]
    );
    let r = check(&spec(
        port,
        CheckKind::Ssl(http(vec![url("/missing", None, vec![])])),
    ))
    .await;
    assert!(!r.ok);
    // A key file that is not PEM fails the check with a clear reason.
    let bad_key = write_pem("bad.key", "nonsense");
    h.tls.key = Some(bad_key.path());
    let r = check(&spec(port, CheckKind::Ssl(h))).await;
    assert!(!r.ok && r.detail.contains("key"), "{r:?}");
    // TLS against a plain HTTP server fails.
    let (plain, _) = http_server().await;
    let r = check(&spec(
        plain,
        CheckKind::Ssl(http(vec![url("/ok", None, vec![])])),
    ))
    .await;
    assert!(!r.ok);
}

fn misc(path: &str, dynamic: bool, timeout: Duration) -> CheckSpec {
    spec(
        0,
        CheckKind::Misc(MiscSpec {
            misc_path: vec!["sh".into(), "-c".into(), path.into()],
            misc_timeout: timeout,
            misc_dynamic: dynamic,
        }),
    )
}

#[tokio::test]
async fn misc_exit_codes_and_dynamic_weight() {
    let t = Duration::from_secs(5);
    assert!(check(&misc("exit 0", false, t)).await.ok);
    assert!(!check(&misc("exit 1", false, t)).await.ok);
    assert!(!check(&misc("exit 7", false, t)).await.ok);
    let r = check(&misc("exit 7", true, t)).await;
    assert!(r.ok && r.weight == Some(5), "{r:?}");
    let r = check(&misc("exit 0", true, t)).await;
    assert!(r.ok && r.weight.is_none());
    assert!(!check(&misc("exit 1", true, t)).await.ok);
    let r = check(&misc("sleep 10", false, Duration::from_millis(200))).await;
    assert!(!r.ok && r.detail.contains("timed out"), "{r:?}");
    assert!(r.elapsed < Duration::from_secs(3));
}

/// A DNS responder answering every query with `rcode` and one (empty) answer count.
async fn dns_server(rcode: u8) -> u16 {
    let sock = UdpSocket::bind((LO, 0)).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let mut reply = buf[..n].to_vec();
            if reply.len() < 12 {
                continue;
            }
            reply[2] |= 0x80;
            reply[3] = 0x80 | rcode;
            reply[7] = 1;
            let _ = sock.send_to(&reply, peer).await;
        }
    });
    port
}

#[tokio::test]
async fn dns_check() {
    let d = |name: &str| {
        CheckKind::Dns(DnsSpec {
            name: name.into(),
            qtype: DnsType::A,
        })
    };
    let port = dns_server(0).await;
    let r = check(&spec(port, d("www.example.com"))).await;
    assert!(r.ok, "{r:?}");
    let port = dns_server(3).await;
    let r = check(&spec(port, d("www.example.com"))).await;
    assert!(!r.ok && r.detail.contains("rcode 3"), "{r:?}");
    let closed = free_port().await;
    assert!(!check(&spec(closed, d("."))).await.ok);
}

async fn smtp_server(greeting: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let lines2 = lines.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let lines = lines2.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = s.into_split();
                let mut rd = BufReader::new(rd);
                let _ = wr.write_all(greeting.as_bytes()).await;
                let mut line = String::new();
                while rd.read_line(&mut line).await.unwrap_or(0) > 0 {
                    lines.lock().unwrap().push(line.clone());
                    let answer: &[u8] = if line.starts_with("HELO") {
                        b"250-smtp.example\r\n250 pleased\r\n"
                    } else {
                        b"221 bye\r\n"
                    };
                    let _ = wr.write_all(answer).await;
                    line.clear();
                }
            });
        }
    });
    (port, lines)
}

#[tokio::test]
async fn smtp_check() {
    let kind = CheckKind::Smtp(SmtpSpec {
        helo_name: "director.example".into(),
    });
    let (port, lines) = smtp_server("220-smtp.example ESMTP\r\n220 ready\r\n").await;
    let r = check(&spec(port, kind.clone())).await;
    assert!(r.ok, "{r:?}");
    let got = lines.lock().unwrap().clone();
    assert_eq!(got, vec!["HELO director.example\r\n", "QUIT\r\n"]);
    let (port, _) = smtp_server("554 go away\r\n").await;
    let r = check(&spec(port, kind.clone())).await;
    assert!(!r.ok && r.detail.contains("554"), "{r:?}");
    let (_held, refusing) = refusing_port();
    assert!(!check(&spec(refusing, kind)).await.ok);
}

#[tokio::test]
async fn udp_check() {
    let echo = UdpSocket::bind((LO, 0)).await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = echo.recv_from(&mut buf).await {
            let mut reply = b"PONG:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = echo.send_to(&reply, peer).await;
        }
    });
    let silent = UdpSocket::bind((LO, 0)).await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let closed = {
        let s = UdpSocket::bind((LO, 0)).await.unwrap();
        s.local_addr().unwrap().port()
    };
    let u = |require_reply: bool, prefix: Option<&[u8]>| {
        CheckKind::Udp(UdpSpec {
            payload: b"ping".to_vec(),
            require_reply,
            reply_prefix: prefix.map(<[u8]>::to_vec),
            ..UdpSpec::default()
        })
    };
    let short = |port: u16, kind: CheckKind| {
        let mut s = spec(port, kind);
        s.conn.connect_timeout = Duration::from_millis(300);
        s
    };
    assert!(check(&short(echo_port, u(true, Some(b"PONG")))).await.ok);
    assert!(!check(&short(echo_port, u(true, Some(b"NOPE")))).await.ok);
    assert!(check(&short(silent_port, u(false, None))).await.ok);
    assert!(!check(&short(silent_port, u(true, None))).await.ok);
    let r = check(&short(closed, u(false, None))).await;
    assert!(!r.ok && r.detail.contains("unreachable"), "{r:?}");
    drop(silent);
}

#[tokio::test]
async fn ping_loopback() {
    let r = check(&spec(0, CheckKind::Ping)).await;
    assert!(r.ok, "{r:?}");
}

#[tokio::test]
async fn file_check() {
    let track = TempFile::named("track");
    let path = track.path();
    let f = |weight: i32| {
        spec(
            0,
            CheckKind::File(FileSpec {
                path: path.clone(),
                weight,
                reverse: false,
                base_weight: 10,
            }),
        )
    };
    std::fs::write(&path, "0\n").unwrap();
    let r = check(&f(0)).await;
    assert!(r.ok && r.weight.is_none(), "{r:?}");
    std::fs::write(&path, "1\n").unwrap();
    assert!(!check(&f(0)).await.ok);
    std::fs::write(&path, "3\n").unwrap();
    let r = check(&f(2)).await;
    assert!(r.ok && r.weight == Some(16), "{r:?}");
    std::fs::remove_file(&path).unwrap();
    let r = check(&f(0)).await;
    assert!(r.ok && r.detail.contains("unreadable"), "{r:?}");
}
