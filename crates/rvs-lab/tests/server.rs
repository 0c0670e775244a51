//! The built-in real server, run in-process inside a namespace of its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use rvs_lab::server::{self, http::pattern, ServeConfig};
use rvs_lab::Lab;
use sha2::{Digest, Sha256};

/// Reads one response: status line, headers, and a Content-Length body.
fn read_response(reader: &mut BufReader<TcpStream>) -> (String, Vec<String>, Vec<u8>) {
    let mut status = String::new();
    reader.read_line(&mut status).expect("status line");
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = value.parse().expect("length");
        }
        headers.push(line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    (status.trim_end().to_string(), headers, body)
}

fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    (stream, reader)
}

#[test]
fn http_and_udp_answers() {
    let lab = Lab::new("srv").expect("lab");
    lab.add_ns("srv").expect("namespace");
    let config = ServeConfig {
        text: "hello,test".into(),
        http_ports: vec![0],
        udp_ports: vec![0],
    };
    let running = lab
        .in_netns("srv", || server::start(&config))
        .expect("server");
    let http_port = running.http[0].port();
    let udp_port = running.udp[0].port();

    lab.in_netns("srv", || {
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, http_port));
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, http_port));

        // Keep-alive: two requests on one connection, over IPv4 (dual-stack socket).
        let (mut stream, mut reader) = connect(v4);
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let (status, headers, body) = read_response(&mut reader);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(headers.contains(&"Connection: keep-alive".to_string()));
        assert_eq!(body, b"hello,test\n");
        let (_, _, body) = read_response(&mut reader);
        let whoami = String::from_utf8(body).expect("utf8");
        assert!(whoami.starts_with("127.0.0.1:"), "{whoami}");

        // Connection: close is honoured.
        stream
            .write_all(b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
            .expect("write");
        let (status, headers, _) = read_response(&mut reader);
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        assert!(headers.contains(&"Connection: close".to_string()));
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).expect("eof"), 0);

        // A megabyte of pattern over IPv6.
        let (mut stream, mut reader) = connect(v6);
        stream
            .write_all(b"GET /bytes/1000000 HTTP/1.1\r\n\r\n")
            .expect("write");
        let (status, _, body) = read_response(&mut reader);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, pattern(1_000_000));

        // Upload with Expect: 100-continue, as curl sends it.
        let data = pattern(300_000);
        let expected = format!("{} {:x}\n", data.len(), Sha256::digest(&data));
        let head = format!(
            "POST /upload HTTP/1.1\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            data.len()
        );
        stream.write_all(head.as_bytes()).expect("write");
        let mut line = String::new();
        reader.read_line(&mut line).expect("100");
        assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
        reader.read_line(&mut line).expect("blank");
        stream.write_all(&data).expect("body");
        let (status, _, body) = read_response(&mut reader);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(String::from_utf8_lossy(&body), expected);

        // A malformed request gets a 400 and a close.
        let (mut stream, mut reader) = connect(v4);
        stream.write_all(b"BROKEN\r\n\r\n").expect("write");
        let (status, _, _) = read_response(&mut reader);
        assert_eq!(status, "HTTP/1.1 400 Bad Request");

        // /hold/2 sends headers at once and the body over about two seconds.
        let (mut stream, mut reader) = connect(v4);
        let start = Instant::now();
        stream
            .write_all(b"GET /hold/2 HTTP/1.1\r\n\r\n")
            .expect("write");
        let (status, _, body) = read_response(&mut reader);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body.len(), 2);
        assert!(start.elapsed() >= Duration::from_millis(1900));

        // UDP: each datagram gets the text back.
        let socket = UdpSocket::bind("[::1]:0").expect("udp");
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        socket.send_to(b"ping", ("::1", udp_port)).expect("send");
        let mut buf = [0u8; 64];
        let (n, _) = socket.recv_from(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"hello,test\n");
    });
}
