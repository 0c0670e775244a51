//! PacketSocket over a veth pair between two namespaces.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{in_ns, parse_ip4, spawn_in_ns, udp_frame, Lab};
use rvs_io::{PacketSocket, VnetHdr};

fn pattern(i: usize) -> u8 {
    ((i * 7) ^ (i >> 9)) as u8
}

/// Sends `datagrams` over UDP from the lab's namespace `b` to `to`.
fn send_from_b(lab: &Lab, to: &str, datagrams: &[impl AsRef<[u8]>]) {
    let from = format!("{}:0", lab.ip_b());
    let to = to.to_owned();
    let datagrams: Vec<Vec<u8>> = datagrams.iter().map(|d| d.as_ref().to_vec()).collect();
    in_ns(&lab.b, move || {
        let s = UdpSocket::bind(from).expect("bind");
        for d in datagrams {
            s.send_to(&d, &to).expect("send");
        }
    });
}

#[test]
fn udp_frames_arrive_with_vnet_header() {
    let lab = Lab::new("udp");
    let ip_a = lab.ip_a();
    let (ready_tx, ready_rx) = mpsc::channel();
    let rx = spawn_in_ns(&lab.a, move || {
        let mut sock = PacketSocket::open("a0", 7).expect("open");
        assert!(sock.ifindex() > 0);
        ready_tx.send(()).expect("signal");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen: Vec<(VnetHdr, Vec<u8>)> = Vec::new();
        while Instant::now() < deadline && seen.len() < 3 {
            sock.recv_batch(Duration::from_millis(100), 64, |vnet, frame| {
                let is_ours = frame.len() >= 42
                    && frame[12..14] == [0x08, 0x00]
                    && frame[23] == 17
                    && frame[36..38] == 9999u16.to_be_bytes();
                if is_ours {
                    seen.push((*vnet, frame.to_vec()));
                }
            })
            .expect("recv_batch");
        }
        seen
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("socket open");
    send_from_b(&lab, &format!("{ip_a}:9999"), &[b"hello rvs"; 3]);
    let seen = rx.join().expect("rx thread");
    assert_eq!(seen.len(), 3, "three UDP frames captured");
    for (vnet, frame) in seen {
        assert_eq!(&frame[42..], b"hello rvs");
        assert!(!vnet.is_gso());
        if vnet.needs_csum() {
            assert_eq!((vnet.csum_start, vnet.csum_offset), (34, 6));
        }
    }
}

#[test]
fn tcp_bulk_transfer_yields_intact_gso_frames() {
    const TOTAL: usize = 1 << 20;
    let lab = Lab::new("gso");
    let ip_a = lab.ip_a();
    let a_addr = parse_ip4(&ip_a);
    let (ready_tx, ready_rx) = mpsc::channel();
    // Receiving side: the kernel's TCP listener in `a`, drained by a thread.
    let listen_addr = format!("{ip_a}:5001");
    let listener = in_ns(&lab.a, move || {
        TcpListener::bind(listen_addr).expect("listen")
    });
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read");
        got.len()
    });
    let capture = spawn_in_ns(&lab.a, move || {
        let mut sock = PacketSocket::open("a0", 9).expect("open");
        ready_tx.send(()).expect("signal");
        let mut isn: Option<u32> = None;
        let mut verified = vec![false; TOTAL];
        let mut gso_frames = 0usize;
        let mut mismatches = 0usize;
        let mut fin = false;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !fin {
            sock.recv_batch(Duration::from_millis(100), 256, |vnet, f| {
                if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
                    return;
                }
                if f[30..34] != a_addr || f[36..38] != 5001u16.to_be_bytes() {
                    return;
                }
                let ihl = usize::from(f[14] & 0x0f) * 4;
                let tcp = 14 + ihl;
                let doff = usize::from(f[tcp + 12] >> 4) * 4;
                let flags = f[tcp + 13];
                let seq = u32::from_be_bytes([f[tcp + 4], f[tcp + 5], f[tcp + 6], f[tcp + 7]]);
                if flags & 0x02 != 0 {
                    isn = Some(seq);
                }
                if flags & 0x01 != 0 {
                    fin = true;
                }
                let Some(isn) = isn else { return };
                let ip_total = usize::from(u16::from_be_bytes([f[16], f[17]]));
                let payload = &f[tcp + doff..];
                // GSO frames may carry an IP total length that is not the frame's.
                let payload_len = if vnet.is_gso() {
                    payload.len()
                } else {
                    ip_total.saturating_sub(ihl + doff).min(payload.len())
                };
                if vnet.is_gso() {
                    gso_frames += 1;
                    assert_eq!(vnet.gso_type & !VnetHdr::GSO_ECN, VnetHdr::GSO_TCPV4);
                    assert!(vnet.gso_size > 0 && usize::from(vnet.gso_size) < payload_len);
                    assert_eq!(usize::from(vnet.hdr_len), tcp + doff);
                    assert!(vnet.needs_csum());
                    assert_eq!(usize::from(vnet.csum_start), tcp);
                    assert_eq!(vnet.csum_offset, 16);
                }
                let offset = seq.wrapping_sub(isn).wrapping_sub(1) as usize;
                for (i, b) in payload[..payload_len].iter().enumerate() {
                    let at = offset + i;
                    if at < TOTAL {
                        if *b != pattern(at) {
                            mismatches += 1;
                        }
                        verified[at] = true;
                    }
                }
            })
            .expect("recv_batch");
        }
        let missing = verified.iter().filter(|v| !**v).count();
        (gso_frames, mismatches, missing, sock.stats())
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("socket open");
    let target = format!("{ip_a}:5001");
    in_ns(&lab.b, move || {
        let mut c = TcpStream::connect(target).expect("connect");
        let data: Vec<u8> = (0..TOTAL).map(pattern).collect();
        c.write_all(&data).expect("write");
    });
    assert_eq!(server.join().expect("server"), TOTAL);
    let (gso_frames, mismatches, missing, stats) = capture.join().expect("capture");
    assert_eq!(mismatches, 0, "payload bytes differ from what was sent");
    assert_eq!(missing, 0, "bytes never seen by the ring ({stats:?})");
    assert!(
        gso_frames > 0,
        "expected GSO frames above the MTU ({stats:?})"
    );
}

#[test]
fn send_delivers_plain_partial_and_gso_frames() {
    let lab = Lab::new("send");
    let mac_a = lab.mac(&lab.a, "a0");
    let mac_b = lab.mac(&lab.b, "b0");
    let (ip_a, ip_b) = (lab.ip_a(), lab.ip_b());
    let bind = format!("{ip_b}:7777");
    let receiver = in_ns(&lab.b, move || {
        let s = UdpSocket::bind(bind).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s
    });
    let (src, dst) = (parse_ip4(&ip_a), parse_ip4(&ip_b));
    let results = in_ns(&lab.a, move || {
        let mut sock = PacketSocket::open_tx("a0").expect("open_tx");
        let mut none = 0;
        assert_eq!(
            sock.recv_batch(Duration::from_secs(1), 8, |_, _| none += 1)
                .expect("recv"),
            0
        );
        let plain = udp_frame((mac_b, mac_a), (src, dst), 4000, 7777, b"plain", false);
        sock.send(&VnetHdr::default(), &plain).expect("send plain");
        let partial = udp_frame((mac_b, mac_a), (src, dst), 4000, 7777, b"partial", true);
        let csum = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6,
            ..VnetHdr::default()
        };
        sock.send(&csum, &partial).expect("send partial");
        let big: Vec<u8> = (0..3000).map(|i| b'a' + (i / 1000) as u8).collect();
        let gso = udp_frame((mac_b, mac_a), (src, dst), 4000, 7777, &big, true);
        let gso_hdr = VnetHdr {
            gso_type: VnetHdr::GSO_UDP_L4,
            gso_size: 1000,
            hdr_len: 42,
            ..csum
        };
        sock.send(&gso_hdr, &gso).expect("send gso");
        // Without GSO, a frame above the MTU is refused with a typed error.
        let too_big = sock.send(&VnetHdr::default(), &gso);
        matches!(too_big, Err(rvs_io::IoError::FrameTooLarge { .. }))
    });
    assert!(results, "oversized non-GSO frame must give FrameTooLarge");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..5 {
        let (n, _) = receiver.recv_from(&mut buf).expect("datagram");
        got.push(buf[..n].to_vec());
    }
    assert_eq!(got[0], b"plain");
    assert_eq!(got[1], b"partial");
    for (i, seg) in got[2..].iter().enumerate() {
        assert_eq!(seg.len(), 1000);
        assert!(seg.iter().all(|b| *b == b'a' + i as u8));
    }
}

#[test]
fn open_rejects_unknown_interface() {
    let lab = Lab::new("noif");
    let err = in_ns(&lab.a, || PacketSocket::open("nope0", 1).err());
    assert!(matches!(err, Some(rvs_io::IoError::NoSuchInterface(_))));
}

#[test]
fn fanout_spreads_one_group_over_two_interfaces() {
    let lab = Lab::new("fan");
    lab.ip(
        &lab.a,
        &["link", "add", "c0", "type", "veth", "peer", "name", "c1"],
    );
    let ok = in_ns(&lab.a, || {
        let s1 = PacketSocket::open("a0", 3)?;
        let s2 = PacketSocket::open("a0", 3)?;
        let s3 = PacketSocket::open("c0", 3)?;
        Ok::<_, rvs_io::IoError>((s1.ifindex(), s2.ifindex(), s3.ifindex()))
    });
    let (i1, i2, i3) = ok.expect("same group on two interfaces");
    assert_eq!(i1, i2);
    assert_ne!(i1, i3);
}

#[test]
fn fanout_group_shares_flows_between_sockets() {
    const FLOWS: u16 = 64;
    let lab = Lab::new("spread");
    let (ip_a, ip_b) = (lab.ip_a(), lab.ip_b());
    let (ready_tx, ready_rx) = mpsc::channel();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let ready = ready_tx.clone();
            spawn_in_ns(&lab.a, move || {
                let mut sock = PacketSocket::open("a0", 21).expect("open");
                ready.send(()).expect("signal");
                let mut ports = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline {
                    sock.recv_batch(Duration::from_millis(50), 64, |_, f| {
                        if f.len() >= 42 && f[23] == 17 && f[36..38] == 9998u16.to_be_bytes() {
                            ports.push(u16::from_be_bytes([f[34], f[35]]));
                        }
                    })
                    .expect("recv_batch");
                }
                ports
            })
        })
        .collect();
    for _ in 0..2 {
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("socket open");
    }
    in_ns(&lab.b, move || {
        for i in 0..FLOWS {
            let s = UdpSocket::bind(format!("{ip_b}:{}", 20000 + i)).expect("bind");
            s.send_to(b"flow", format!("{ip_a}:9998")).expect("send");
        }
    });
    let got: Vec<Vec<u16>> = workers
        .into_iter()
        .map(|w| w.join().expect("worker"))
        .collect();
    assert!(
        got.iter().all(|p| !p.is_empty()),
        "both members get flows: {got:?}"
    );
    let mut all: Vec<u16> = got.concat();
    all.sort_unstable();
    assert_eq!(
        all,
        (20000..20000 + FLOWS).collect::<Vec<_>>(),
        "each frame exactly once"
    );
}

#[test]
#[ignore = "needs the 8021q module (CONFIG_VLAN_8021Q), not in this lab's kernel"]
fn vlan_tag_stripped_by_the_device_is_put_back() {
    let lab = Lab::new("vlan");
    assert!(
        common::try_run(&[
            "ip", "-n", &lab.b, "link", "add", "link", "b0", "name", "b0.10", "type", "vlan", "id",
            "10",
        ]),
        "cannot create a VLAN device (no 802.1Q support in this kernel?)"
    );
    let net = lab.net;
    lab.ip(
        &lab.b,
        &["addr", "add", &format!("10.78.{net}.2/24"), "dev", "b0.10"],
    );
    lab.ip(&lab.b, &["link", "set", "b0.10", "up"]);
    let (ready_tx, ready_rx) = mpsc::channel();
    let rx = spawn_in_ns(&lab.a, move || {
        let mut sock = PacketSocket::open("a0", 5).expect("open");
        ready_tx.send(()).expect("signal");
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut found = None;
        while Instant::now() < deadline && found.is_none() {
            sock.recv_batch(Duration::from_millis(50), 64, |_, f| {
                if f.len() >= 18 && f[12..14] == [0x81, 0x00] {
                    found = Some(f.to_vec());
                }
            })
            .expect("recv_batch");
        }
        found
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("socket open");
    // Any frame from the VLAN interface will do: an ARP request for a neighbour on it.
    let _ = common::try_run(&[
        "ip",
        "netns",
        "exec",
        &lab.b,
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        &format!("10.78.{net}.1"),
    ]);
    let frame = rx.join().expect("rx").expect("a tagged frame");
    assert_eq!(
        u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff,
        10,
        "VLAN id"
    );
    assert_eq!(frame[16..18], [0x08, 0x06], "ARP inside the tag");
}

/// With frames already queued, each frame comes with the one queued after it as its
/// look-ahead.
#[test]
fn queued_frames_show_the_next_one_ahead() {
    let lab = Lab::new("ahead");
    let ip_a = lab.ip_a();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let listen_ip = ip_a.clone();
    let rx = spawn_in_ns(&lab.a, move || {
        let ip_a = listen_ip;
        let mut sock = PacketSocket::open("a0", 11).expect("open");
        // A listener, so that no port-unreachable answer lands between the datagrams.
        let _sink = UdpSocket::bind(format!("{ip_a}:9998")).expect("bind");
        ready_tx.send(()).expect("signal");
        sent_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("datagrams sent");
        // Every frame the ring holds, each with what it showed ahead.
        let mut seen: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let ours = |f: &[u8]| f.len() >= 42 && f[23] == 17 && f[36..38] == 9998u16.to_be_bytes();
        while Instant::now() < deadline && seen.iter().filter(|(f, _)| ours(f)).count() < 8 {
            sock.recv_batch_ahead(Duration::from_millis(100), 64, |_, frame, ahead| {
                seen.push((frame.to_vec(), ahead.to_vec()));
            })
            .expect("recv_batch_ahead");
        }
        seen
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("socket open");
    let datagrams: Vec<[u8; 32]> = (0..8u8).map(|i| [i; 32]).collect();
    send_from_b(&lab, &format!("{ip_a}:9998"), &datagrams);
    // Let the eight frames reach the ring before it is read.
    std::thread::sleep(Duration::from_millis(200));
    sent_tx.send(()).expect("go");
    let seen = rx.join().expect("rx thread");
    let ours = |f: &[u8]| f.len() >= 42 && f[23] == 17 && f[36..38] == 9998u16.to_be_bytes();
    let payloads: Vec<u8> = seen
        .iter()
        .filter(|(f, _)| ours(f))
        .map(|(f, _)| f[42])
        .collect();
    assert_eq!(
        payloads,
        (0..8).collect::<Vec<u8>>(),
        "the eight datagrams in order"
    );
    // The ring's next slot may hold a frame that is then skipped (one not addressed to
    // this host), so each datagram after the first is looked for among the frames shown
    // ahead before it was delivered.
    for (at, (frame, _)) in seen
        .iter()
        .enumerate()
        .filter(|(_, (f, _))| ours(f))
        .skip(1)
    {
        let shown = seen[..at].iter().any(|(_, ahead)| ahead == frame);
        assert!(
            shown,
            "datagram {} was shown ahead before it came",
            frame[42]
        );
    }
}
