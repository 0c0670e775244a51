//! Writes the generated part of the seed corpora (engine, wire, vrrp, sync, api) from the
//! repository's fixtures: `cargo test -p rvs-fuzz --test seeds -- --ignored`. The keepalived
//! and rvsadm seeds are copies of files under crates/*/tests (see fuzz/corpus/README.md).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use etherparse::{Icmpv4Type, PacketBuilder};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLIENT: [u8; 4] = [203, 0, 113, 5];
const RIP: [u8; 4] = [192, 168, 7, 10];

fn vip(last: u8) -> [u8; 4] {
    [10, 99, 1, last]
}

fn v6(net: u16, last: u16) -> [u8; 16] {
    Ipv6Addr::new(0x2001, 0xdb8, net, 0, 0, 0, 0, last).octets()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed");
}

/// TCP flags: (syn, ack, fin).
fn tcp4(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, f: (bool, bool, bool), pl: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .tcp(sp, dp, 1000, 65535);
    if f.0 {
        b = b.syn();
    }
    if f.1 {
        b = b.ack(5000);
    }
    if f.2 {
        b = b.fin();
    }
    let mut out = Vec::new();
    b.write(&mut out, pl).expect("build");
    out
}

fn tcp6(
    src: [u8; 16],
    sp: u16,
    dst: [u8; 16],
    dp: u16,
    f: (bool, bool, bool),
    pl: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(src, dst, 64)
        .tcp(sp, dp, 1000, 65535);
    if f.0 {
        b = b.syn();
    }
    if f.1 {
        b = b.ack(5000);
    }
    let mut out = Vec::new();
    b.write(&mut out, pl).expect("build");
    out
}

fn udp4(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, pl: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .udp(sp, dp);
    b.write(&mut out, pl).expect("build");
    out
}

fn udp6(src: [u8; 16], sp: u16, dst: [u8; 16], dp: u16, pl: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(src, dst, 64)
        .udp(sp, dp);
    b.write(&mut out, pl).expect("build");
    out
}

fn sctp_init4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut s = vec![0x9c, 0x40, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0];
    s.extend_from_slice(&[
        1, 0, 0, 20, 0, 0, 0, 7, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1,
    ]);
    let mut p = rvs_wire::sctp::Packet::new_checked(&mut s[..]).expect("sctp");
    p.fill_checksum();
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, 64);
    b.write(&mut out, etherparse::IpNumber(132), &s)
        .expect("build");
    out
}

const SYN: (bool, bool, bool) = (true, false, false);
const SYNACK: (bool, bool, bool) = (true, true, false);
const ACK: (bool, bool, bool) = (false, true, false);
const FINACK: (bool, bool, bool) = (false, true, true);

/// The frame's IP packet cut into fragments of at most `max` bytes, as frames.
fn cut(frame: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    rvs_engine::fragment::split(&frame[14..], max, 0x5eed, |h, d| {
        out.push([&frame[..14], h, d].concat());
    })
    .expect("split");
    out
}

/// Frames of one engine input, each with its control byte.
type Frames = Vec<(u8, Vec<u8>)>;

/// One engine input: frames with their control bytes.
fn records(frames: &Frames) -> Vec<u8> {
    let mut out = Vec::new();
    for (ctl, f) in frames {
        out.push(*ctl);
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

#[test]
#[ignore = "writes the seed corpora"]
fn write_seeds() {
    let c6 = v6(0xc, 5);
    let sip = b"INVITE sip:a@b SIP/2.0\r\nCall-ID: abc123@client\r\n\r\n";
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 99, 1, 1], RIP, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(
            &mut icmp,
            &tcp4(CLIENT, 40000, vip(100), 80, ACK, b"")[14..42],
        )
        .expect("icmp");
    let mut vlan = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(7.try_into().expect("vlan"))
        .ipv4(CLIENT, vip(100), 64)
        .udp(40001, 80)
        .write(&mut vlan, b"hello")
        .expect("vlan");
    let scenarios: Vec<(&str, Frames)> = vec![
        (
            "nat_tcp4",
            vec![
                (0, tcp4(CLIENT, 40000, vip(100), 80, SYN, b"")),
                (0, tcp4(RIP, 8080, CLIENT, 40000, SYNACK, b"")),
                (
                    0,
                    tcp4(CLIENT, 40000, vip(100), 80, ACK, b"GET / HTTP/1.0\r\n\r\n"),
                ),
                (0, icmp.clone()),
                (0x0c, tcp4(CLIENT, 40000, vip(100), 80, FINACK, b"")),
            ],
        ),
        (
            "nat_udp4_vlan",
            vec![(0, vlan.clone()), (0, udp4(RIP, 8080, CLIENT, 40001, b"x"))],
        ),
        (
            "nat_tcp6",
            vec![
                (0, tcp6(c6, 40000, v6(1, 0x100), 80, SYN, b"")),
                (0, tcp6(v6(7, 0x10), 8080, c6, 40000, SYNACK, b"")),
                (0, udp6(c6, 40002, v6(1, 0x100), 80, b"q")),
            ],
        ),
        (
            "partial_tcp4",
            vec![
                (3, tcp4(CLIENT, 40003, vip(100), 80, SYN, b"")),
                (3, tcp4(CLIENT, 40003, vip(100), 80, ACK, b"data")),
                (3, tcp4(RIP, 8080, CLIENT, 40003, ACK, b"data")),
            ],
        ),
        (
            "dr_tcp4",
            vec![(0, tcp4(CLIENT, 40004, vip(101), 80, SYN, b""))],
        ),
        (
            "tunnels",
            vec![
                (0, tcp4(CLIENT, 40005, vip(102), 80, SYN, b"")),
                (0, tcp4(CLIENT, 40006, vip(102), 80, SYN, b"")),
                (0, udp4(CLIENT, 40007, vip(102), 80, b"u")),
            ],
        ),
        (
            "fullnat4",
            vec![
                (0, tcp4(CLIENT, 40008, vip(103), 80, SYN, b"")),
                (
                    0,
                    tcp4(CLIENT, 40008, vip(103), 80, ACK, b"GET / HTTP/1.0\r\n\r\n"),
                ),
            ],
        ),
        (
            "fullnat6",
            vec![
                (0, tcp6(c6, 40009, v6(1, 0x103), 80, SYN, b"")),
                (0, tcp6(c6, 40009, v6(1, 0x103), 80, ACK, b"hello")),
            ],
        ),
        ("sip", vec![(0, udp4(CLIENT, 5060, vip(104), 5060, sip))]),
        (
            "local",
            vec![(0, tcp4(CLIENT, 40010, vip(105), 80, SYN, b""))],
        ),
        (
            "port0",
            vec![
                (0, tcp4(CLIENT, 40011, vip(106), 443, SYN, b"")),
                (0x18, tcp4(CLIENT, 40012, vip(106), 22, SYN, b"")),
            ],
        ),
        (
            "fwmark",
            vec![(0, tcp4(CLIENT, 40013, [10, 99, 3, 5], 22, SYN, b""))],
        ),
        ("sctp", vec![(2, sctp_init4(CLIENT, vip(100)))]),
        (
            "synproxy",
            vec![
                (0x20, tcp4(CLIENT, 40017, vip(100), 80, SYN, b"")),
                (0x40, tcp4(CLIENT, 40017, vip(100), 80, ACK, b"")),
                (
                    0,
                    tcp4(CLIENT, 40017, vip(100), 80, ACK, b"GET / HTTP/1.0\r\n\r\n"),
                ),
                (0, tcp4(RIP, 8080, CLIENT, 40017, SYNACK, b"")),
                (
                    0,
                    tcp4(CLIENT, 40017, vip(100), 80, ACK, b"GET / HTTP/1.0\r\n\r\n"),
                ),
                (
                    0,
                    tcp4(RIP, 8080, CLIENT, 40017, ACK, b"HTTP/1.0 200 OK\r\n\r\n"),
                ),
            ],
        ),
        (
            "fragments4",
            cut(&udp4(CLIENT, 40014, vip(100), 80, &[0x5a; 1200]), 576)
                .into_iter()
                .chain(
                    cut(&udp4(RIP, 8080, CLIENT, 40014, &[0xa5; 1500]), 576)
                        .into_iter()
                        .rev(),
                )
                .chain(cut(&udp4(CLIENT, 40015, vip(102), 80, &[7; 900]), 576))
                .map(|f| (0, f))
                .collect(),
        ),
        (
            "fragments6",
            cut(&udp6(c6, 40016, v6(1, 0x100), 80, &[0x33; 1400]), 600)
                .into_iter()
                .chain(cut(&udp6(v6(7, 0x10), 8080, c6, 40016, &[0x44; 1400]), 700))
                .map(|f| (0, f))
                .collect(),
        ),
    ];
    for (name, frames) in &scenarios {
        write("engine", name, &records(frames));
        for (i, (_, f)) in frames.iter().enumerate() {
            write("wire", &format!("{name}_{i}"), f);
        }
    }
    write(
        "wire",
        "l3_ipv4_tcp",
        &tcp4(CLIENT, 1, vip(1), 2, SYN, b"x")[14..],
    );
    write("wire", "l3_ipv6_udp", &udp6(c6, 1, v6(1, 1), 2, b"x")[14..]);

    use rvs_vrrp::{Advert, AhSession, Auth, IpContext, Version};
    let ctx4 = |dst: [u8; 4]| IpContext {
        src: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)),
        dst: IpAddr::V4(dst.into()),
    };
    let a4 = |last| IpAddr::V4(Ipv4Addr::new(10, 0, 0, last));
    let v2 = Advert {
        version: Version::V2,
        vrid: 51,
        priority: 100,
        interval: 1,
        auth: Auth::pass("secret"),
        addrs: vec![a4(1), a4(2)],
    };
    let mut seed = vec![0];
    seed.extend(v2.emit(&ctx4([224, 0, 0, 18])).expect("v2"));
    write("vrrp", "v2_pass", &seed);
    let v3 = Advert {
        version: Version::V3,
        auth: Auth::None,
        interval: 100,
        ..v2.clone()
    };
    let mut seed = vec![1];
    seed.extend(v3.emit(&ctx4([192, 168, 1, 3])).expect("v3"));
    write("vrrp", "v3_unicast", &seed);
    let ctx6 = IpContext {
        src: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)),
        dst: IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)),
    };
    let v3_6 = Advert {
        addrs: vec![IpAddr::V6(v6(1, 1).into())],
        ..v3.clone()
    };
    let mut seed = vec![2];
    seed.extend(v3_6.emit(&ctx6).expect("v3 v6"));
    write("vrrp", "v3_ipv6", &seed);
    let ah = Advert {
        auth: Auth::Ah,
        ..v2.clone()
    };
    let msg = ah.emit(&ctx4([224, 0, 0, 18])).expect("ah");
    let mut seed = vec![0];
    seed.extend(AhSession::new("secret").seal(
        [192, 168, 1, 2].into(),
        [224, 0, 0, 18].into(),
        &msg,
        false,
    ));
    write("vrrp", "v2_ah_datagram", &seed);

    use rvs_sync::*;
    let conn = SyncConn {
        protocol: 6,
        flags: F_MASQ,
        state: 1,
        cport: 40000,
        vport: 80,
        dport: 8080,
        fwmark: 0,
        timeout: 900,
        addrs: SyncAddrs::V4 {
            caddr: Ipv4Addr::new(10, 0, 0, 2),
            vaddr: Ipv4Addr::new(10, 0, 0, 100),
            daddr: Ipv4Addr::new(192, 168, 1, 11),
        },
        seq: None,
        pe_data: None,
        pe_name: None,
        fnat_local: None,
    };
    let rich = SyncConn {
        protocol: 17,
        addrs: SyncAddrs::V6 {
            caddr: v6(0xc, 5).into(),
            vaddr: v6(1, 0x100).into(),
            daddr: v6(7, 0x10).into(),
        },
        seq: Some(SeqOptions::default()),
        pe_data: Some(b"abc123@client".to_vec()),
        pe_name: Some(b"sip".to_vec()),
        fnat_local: Some(SocketAddr::new(IpAddr::V6(v6(2, 1).into()), 1025)),
        ..conn.clone()
    };
    for (name, conns) in [("v4", vec![conn.clone()]), ("v6_options", vec![rich, conn])] {
        let mut seed = vec![0];
        seed.extend(pack(&conns, 7, 1472).remove(0));
        write("sync", name, &seed);
    }
    let mut seed = vec![7];
    seed.extend(resync_request(7));
    write("sync", "resync_request", &seed);

    let mut lines = String::new();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/rvsadm/tests/golden");
    for f in [
        "save.txt",
        "save_fullnat.txt",
        "sctp_save.txt",
        "sip_save.txt",
    ] {
        let text = std::fs::read_to_string(golden.join(f)).expect("golden");
        for line in text.lines() {
            let words = rvsadm::restore::restore_words(line);
            if let Ok(rvsadm::Action::Apply(c)) = rvsadm::parse_restore_args(&words) {
                lines.push_str(
                    std::str::from_utf8(&rvs_api::encode_command(&c).expect("encode"))
                        .expect("utf8"),
                );
            }
        }
    }
    let mut seed = vec![64];
    seed.extend_from_slice(lines.as_bytes());
    write("api", "commands_from_save", &seed);
    let literal = [
        r#"{"cmd":"add_dest","args":{"service":{"proto":"fwmark","mark":1,"ipv6":false},"dest":{"addr":"10.0.0.2","port":0,"weight":1,"method":"route"}}}"#,
        r#"{"cmd":"add_service","args":{"id":{"proto":"udp","addr":"::1","port":53},"scheduler":"wlc"}}"#,
        r#"{"cmd":"edit_service","args":{"id":{"proto":"tcp","addr":"192.168.1.253","port":80},"scheduler":"rr","local_addrs":["203.0.113.9"]}}"#,
        r#"{"cmd":"set_timeouts","args":{"tcp":4294967295,"tcp_fin":0,"udp":0}}"#,
        r#"{"reply":"counters","data":[{"name":"connections","value":2},{"name":"drop_truncated","value":7}]}"#,
        r#"{"reply":"ok"}"#,
        r#"{"cmd":"list_services","args":{"service":null}}"#,
    ];
    let mut seed = vec![7];
    seed.extend_from_slice((literal.join("\n") + "\n").as_bytes());
    write("api", "protocol_examples", &seed);
}
