//! Serde round trips, exact encodings, framing limits and a client/server exchange.

use rvs_api::*;
use std::io::{BufReader, Cursor, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn tcp80() -> ServiceId {
    ServiceId::Tcp {
        addr: v4(192, 168, 2, 130),
        port: 80,
    }
}

fn sample_commands() -> Vec<Command> {
    let mut full = ServiceConfig::new(
        ServiceId::Fwmark {
            mark: 7,
            ipv6: true,
        },
        "sh",
    );
    full.persistence = Some(300);
    full.netmask = Some(rvs_api::netmask::prefix_mask(true, 64));
    full.one_packet = true;
    full.sched_flags = vec!["sh-port".into()];
    full.pe = Some("sip".into());
    let mut tun = DestConfig::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0, 3, ForwardMethod::Tunnel);
    tun.u_threshold = 100;
    tun.l_threshold = 10;
    tun.tunnel = Some(TunnelConfig {
        kind: TunnelKind::Gue,
        port: Some(6080),
        checksum: TunnelChecksum::RemCsum,
    });
    vec![
        Command::AddService(ServiceConfig::new(tcp80(), "rr")),
        Command::EditService(full),
        Command::DelService(ServiceId::Udp {
            addr: v4(10, 0, 0, 1),
            port: 53,
        }),
        Command::Clear,
        Command::AddDest {
            service: tcp80(),
            dest: DestConfig::new(v4(10, 10, 10, 2), 80, 1, ForwardMethod::Masq),
        },
        Command::EditDest {
            service: tcp80(),
            dest: tun,
        },
        Command::DelDest {
            service: tcp80(),
            addr: v4(10, 10, 10, 3),
            port: 80,
        },
        Command::Zero { service: None },
        Command::Zero {
            service: Some(ServiceId::Sctp {
                addr: v4(1, 2, 3, 4),
                port: 9,
            }),
        },
        Command::SetTimeouts(Timeouts {
            tcp: 900,
            tcp_fin: 0,
            udp: 300,
        }),
        Command::GetTimeouts,
        Command::ListServices { service: None },
        Command::ListServices {
            service: Some(tcp80()),
        },
        Command::ListConnections,
        Command::GetInfo,
        Command::GetCounters,
    ]
}

fn sample_replies() -> Vec<Reply> {
    let dest = DestView {
        config: DestConfig::new(v4(192, 168, 237, 171), 80, 1, ForwardMethod::Masq),
        active_conns: 2,
        inactive_conns: 5,
        persist_conns: 1,
        stats: StatsView {
            conns: 1,
            in_pkts: 2,
            out_pkts: 3,
            in_bytes: 4,
            out_bytes: u64::MAX,
        },
        rates: RatesView {
            cps: 1,
            in_pps: 2,
            out_pps: 3,
            in_bps: 4,
            out_bps: 5,
        },
    };
    vec![
        Reply::Ok,
        Reply::error(ErrorKind::NoService, "TCP 1.2.3.4:80"),
        Reply::Services(vec![ServiceView {
            config: ServiceConfig::new(tcp80(), "rr"),
            stats: StatsView::default(),
            rates: RatesView::default(),
            dests: vec![dest],
        }]),
        Reply::Connections(vec![ConnView {
            proto: "TCP".into(),
            client: SocketAddr::new(v4(10, 0, 0, 9), 40000),
            virtual_addr: SocketAddr::new(v4(192, 168, 2, 130), 80),
            dest: "[2001:db8::1]:8080".parse().expect("socket address"),
            state: "ESTABLISHED".into(),
            expires_ms: 899_000,
            pe: None,
        }]),
        Reply::Timeouts(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }),
        Reply::Info(Info {
            version: "1.2.1".into(),
            conn_table_size: 4096,
            daemon: "rvsd 0.1.0".into(),
        }),
        Reply::Counters(vec![
            CounterView::new("connections", 12),
            CounterView::new("drop_malformed", 0),
            CounterView::new("tx_sent", u64::MAX),
        ]),
        Reply::Counters(Vec::new()),
    ]
}

#[test]
fn commands_round_trip() {
    for command in sample_commands() {
        let line = encode_command(&command).expect("encode");
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(decode_command(&line).expect("decode"), command);
    }
}

#[test]
fn replies_round_trip() {
    for reply in sample_replies() {
        let line = encode_reply(&reply).expect("encode");
        assert_eq!(decode_reply(&line).expect("decode"), reply);
    }
}

#[test]
fn exact_encodings() {
    let add = Command::AddService(ServiceConfig::new(tcp80(), "rr"));
    assert_eq!(
        String::from_utf8(encode_command(&add).expect("encode")).expect("utf8"),
        concat!(
            r#"{"cmd":"add_service","args":{"id":{"proto":"tcp","addr":"192.168.2.130","port":80},"#,
            r#""scheduler":"rr","persistence":null,"netmask":null,"one_packet":false,"#,
            r#""sched_flags":[],"pe":null}}"#,
            "\n"
        )
    );
    assert_eq!(
        encode_command(&Command::Clear).expect("encode"),
        b"{\"cmd\":\"clear\"}\n"
    );
    assert_eq!(
        encode_reply(&Reply::Ok).expect("encode"),
        b"{\"reply\":\"ok\"}\n"
    );
}

#[test]
fn counters_exact_encodings() {
    assert_eq!(
        encode_command(&Command::GetCounters).expect("encode"),
        b"{\"cmd\":\"get_counters\"}\n"
    );
    let reply = Reply::Counters(vec![
        CounterView::new("connections", 2),
        CounterView::new("drop_truncated", 7),
    ]);
    let line = br#"{"reply":"counters","data":[{"name":"connections","value":2},{"name":"drop_truncated","value":7}]}"#;
    let mut expected = line.to_vec();
    expected.push(b'\n');
    assert_eq!(encode_reply(&reply).expect("encode"), expected);
    assert_eq!(decode_reply(line).expect("decode"), reply);
}

#[test]
fn optional_fields_may_be_omitted() {
    let line = br#"{"cmd":"add_service","args":{"id":{"proto":"udp","addr":"::1","port":53},"scheduler":"wlc"}}"#;
    let expected = Command::AddService(ServiceConfig::new(
        ServiceId::Udp {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            port: 53,
        },
        "wlc",
    ));
    assert_eq!(decode_command(line).expect("decode"), expected);
    let dest = br#"{"cmd":"add_dest","args":{"service":{"proto":"fwmark","mark":1,"ipv6":false},"dest":{"addr":"10.0.0.2","port":0,"weight":1,"method":"route"}}}"#;
    assert!(matches!(
        decode_command(dest).expect("decode"),
        Command::AddDest { dest, .. } if dest.method == ForwardMethod::Route && dest.tunnel.is_none()
    ));
}

#[test]
fn garbage_is_a_typed_decode_error() {
    for line in [
        &b""[..],
        b"hello",
        b"{}",
        b"{\"cmd\":\"explode\"}",
        b"{\"cmd\":\"clear\"} {\"cmd\":\"clear\"}",
        b"\xff\xfe",
        b"{\"cmd\":\"del_dest\",\"args\":{\"service\":{\"proto\":\"tcp\",\"addr\":\"1.2.3.4\",\"port\":70000},\"addr\":\"1.1.1.1\",\"port\":1}}",
    ] {
        assert!(
            matches!(decode_command(line), Err(ApiError::Decode(_))),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn oversized_lines_are_rejected() {
    let huge = vec![b' '; MAX_LINE + 1];
    assert!(matches!(
        decode_command(&huge),
        Err(ApiError::LineTooLong { limit: MAX_LINE })
    ));
    let mut service = ServiceConfig::new(tcp80(), "rr");
    service.scheduler = "x".repeat(MAX_LINE);
    assert!(matches!(
        encode_command(&Command::AddService(service)),
        Err(ApiError::LineTooLong { .. })
    ));
}

#[test]
fn read_frame_splits_limits_and_recovers() {
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"cmd\":\"clear\"}\n");
    input.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
    input.extend_from_slice(b"\n{\"cmd\":\"get_info\"}\npartial");
    // A small buffer makes the reader see the long line in many pieces.
    let mut reader = BufReader::with_capacity(4096, Cursor::new(input));
    let first = read_frame(&mut reader).expect("first").expect("line");
    assert_eq!(decode_command(&first).expect("decode"), Command::Clear);
    assert!(matches!(
        read_frame(&mut reader),
        Err(ApiError::LineTooLong { .. })
    ));
    let third = read_frame(&mut reader).expect("third").expect("line");
    assert_eq!(decode_command(&third).expect("decode"), Command::GetInfo);
    assert!(matches!(read_frame(&mut reader), Err(ApiError::Closed)));
    let mut empty = Cursor::new(Vec::new());
    assert!(read_frame(&mut empty).expect("eof").is_none());
}

#[test]
fn read_frame_accepts_exactly_max_line() {
    let mut input = vec![b'x'; MAX_LINE];
    input.push(b'\n');
    let mut reader = BufReader::new(Cursor::new(input));
    assert_eq!(
        read_frame(&mut reader).expect("ok").expect("line").len(),
        MAX_LINE
    );
}

#[test]
fn frame_buffer_splits_limits_and_recovers() {
    let mut frames = FrameBuffer::with_limit(8);
    frames.push(b"abc\nde");
    assert_eq!(frames.next_frame().expect("frame").expect("ok"), b"abc");
    assert!(frames.next_frame().is_none());
    frames.push(b"f\n12345678\n123456789");
    assert_eq!(frames.next_frame().expect("frame").expect("ok"), b"def");
    assert_eq!(
        frames.next_frame().expect("frame").expect("ok"),
        b"12345678"
    );
    assert!(matches!(
        frames.next_frame(),
        Some(Err(ApiError::LineTooLong { limit: 8 }))
    ));
    assert_eq!(frames.pending(), 0);
    frames.push(b"still the long line");
    assert!(frames.next_frame().is_none());
    frames.push(b" ends\nok\n");
    assert_eq!(frames.next_frame().expect("frame").expect("ok"), b"ok");
    frames.push(b"0123456789\n");
    assert!(matches!(
        frames.next_frame(),
        Some(Err(ApiError::LineTooLong { .. }))
    ));
    assert!(frames.next_frame().is_none());
}

#[test]
fn client_talks_to_a_server() {
    let dir = std::env::temp_dir().join(format!("rvs-api-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let path = dir.join("rvsd.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut writer = stream;
        let mut seen = Vec::new();
        while let Some(line) = read_frame(&mut reader).expect("read") {
            let command = decode_command(&line).expect("decode");
            let reply = match &command {
                Command::GetTimeouts => Reply::Timeouts(Timeouts {
                    tcp: 900,
                    tcp_fin: 120,
                    udp: 300,
                }),
                _ => Reply::error(ErrorKind::Unsupported, "later"),
            };
            seen.push(command);
            writer
                .write_all(&encode_reply(&reply).expect("encode"))
                .expect("write");
        }
        seen
    });
    let mut client = Client::connect(&path).expect("connect");
    assert_eq!(
        client.call(&Command::GetTimeouts).expect("call"),
        Reply::Timeouts(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        })
    );
    assert_eq!(
        client.call(&Command::Clear).expect("call"),
        Reply::error(ErrorKind::Unsupported, "later")
    );
    drop(client);
    let seen = server.join().expect("server thread");
    assert_eq!(seen, vec![Command::GetTimeouts, Command::Clear]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn connect_failure_names_the_path() {
    let err = Client::connect("/nonexistent/rvs/rvsd.sock").expect_err("no daemon");
    assert!(matches!(err, ApiError::Connect { .. }));
    assert!(err.to_string().contains("/nonexistent/rvs/rvsd.sock"));
}

fn counter(n: u64) -> CounterView {
    CounterView::new(format!("c{n}"), n)
}

#[test]
fn streamed_parts_encode_as_more_and_join_in_order() {
    let part = Reply::More(Box::new(Reply::Counters(vec![counter(1)])));
    assert_eq!(
        String::from_utf8(encode_reply(&part).expect("encode")).expect("utf8"),
        "{\"reply\":\"more\",\"data\":{\"reply\":\"counters\",\"data\":[{\"name\":\"c1\",\"value\":1}]}}\n"
    );
    assert_eq!(
        decode_reply(&encode_reply(&part).expect("encode")).expect("decode"),
        part
    );

    let mut whole = Reply::Counters(vec![counter(1)]);
    whole
        .append(Reply::Counters(vec![counter(2), counter(3)]))
        .expect("same kind");
    assert_eq!(
        whole,
        Reply::Counters(vec![counter(1), counter(2), counter(3)])
    );
    let odd = Reply::Timeouts(Timeouts::default());
    assert_eq!(
        whole.append(odd.clone()),
        Err(odd),
        "parts of another kind are refused"
    );

    let batch = Command::Batch(vec![Command::Clear, Command::GetTimeouts]);
    assert!(Command::Clear.batchable());
    assert!(!Command::GetTimeouts.batchable() && !batch.batchable());
    assert!(Command::SetPolicy {
        name: "sloppy_tcp".into(),
        value: 1
    }
    .batchable());
    assert!(
        batch.changes_services(),
        "a batch with -C changes the services"
    );
    assert!(!Command::Batch(vec![Command::GetTimeouts]).changes_services());
    assert!(!Command::Zero { service: None }.changes_services());
    assert_eq!(
        decode_command(&encode_command(&batch).expect("encode")).expect("decode"),
        batch
    );
}

/// A server answering every request with `parts` as `More` lines and then `last`.
fn streaming_server(
    path: std::path::PathBuf,
    parts: Vec<Reply>,
    last: Reply,
) -> std::thread::JoinHandle<usize> {
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut writer = stream;
        let mut requests = 0;
        while let Some(line) = read_frame(&mut reader).expect("read") {
            decode_command(&line).expect("decode");
            requests += 1;
            for p in &parts {
                let more = Reply::More(Box::new(p.clone()));
                writer
                    .write_all(&encode_reply(&more).expect("encode"))
                    .expect("write");
            }
            writer
                .write_all(&encode_reply(&last).expect("encode"))
                .expect("write");
        }
        requests
    })
}

#[test]
fn client_joins_streamed_parts_or_hands_them_over_one_by_one() {
    let dir = std::env::temp_dir().join(format!("rvs-api-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let path = dir.join("rvsd.sock");
    let _ = std::fs::remove_file(&path);
    let parts: Vec<Reply> = (0..3)
        .map(|i| Reply::Counters((i * 10..i * 10 + 10).map(counter).collect()))
        .collect();
    let server = streaming_server(path.clone(), parts, Reply::Counters(vec![counter(99)]));
    let mut client = Client::connect(&path).expect("connect");

    let Reply::Counters(all) = client.call(&Command::GetCounters).expect("call") else {
        panic!("not counters");
    };
    let values: Vec<u64> = all.iter().map(|c| c.value).collect();
    let expected: Vec<u64> = (0..30).chain([99]).collect();
    assert_eq!(values, expected);

    let mut sizes = Vec::new();
    client
        .call_each(&Command::GetCounters, |part| match part {
            Reply::Counters(c) => {
                sizes.push(c.len());
                Ok(())
            }
            _ => Err(ApiError::UnexpectedPart),
        })
        .expect("call_each");
    assert_eq!(sizes, vec![10, 10, 10, 1]);

    // A callback that gives up still leaves the connection in step for the next request.
    let stopped = client.call_each(&Command::GetCounters, |_| Err(ApiError::Closed));
    assert!(matches!(stopped, Err(ApiError::Closed)));
    assert!(matches!(client.call(&Command::GetCounters), Ok(Reply::Counters(c)) if c.len() == 31));
    drop(client);
    assert_eq!(server.join().expect("server"), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_listing_that_fails_part_way_answers_with_the_daemons_error() {
    let dir = std::env::temp_dir().join(format!("rvs-api-stream-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let path = dir.join("rvsd.sock");
    let _ = std::fs::remove_file(&path);
    let broken = Reply::error(ErrorKind::Internal, "the listing ended early");
    let server = streaming_server(
        path.clone(),
        vec![Reply::Counters(vec![counter(1)])],
        broken.clone(),
    );
    let mut client = Client::connect(&path).expect("connect");
    assert_eq!(client.call(&Command::GetCounters).expect("call"), broken);
    drop(client);
    assert_eq!(server.join().expect("server"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
