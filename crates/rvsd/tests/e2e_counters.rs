//! End-to-end test of `rvsadm --counters`: hostile frames injected from the client namespace with a
//! raw packet socket are dropped and counted by reason, rvsd keeps running and keeps serving the
//! VIP. Root required; the namespaces are torn down by the topology guard.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{add_rr_service, VIP};
use rvs_io::{PacketSocket, VnetHdr};
use rvs_lab::Director;
use rvs_lab::{NatTopology, CLIENT, DIRECTOR};
use rvs_wire::checksum::checksum;

/// The client's interface in [`NatTopology`] (its peer is the director's d0).
const CLIENT_IF: &str = "eth0";
/// How many copies of each bad frame are sent.
const COPIES: u64 = 4;
/// How long the counters may take to show the injected frames.
const SETTLE: Duration = Duration::from_secs(5);

/// `rvsadm --counters` as a map; also checks every line is `name value`.
fn counters(topo: &NatTopology) -> HashMap<String, u64> {
    let text = topo.rvsadm_ok(&["--counters"]).expect("rvsadm --counters");
    text.lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let (Some(name), Some(value), None) = (words.next(), words.next(), words.next()) else {
                panic!("not a `name value` line: {line:?}");
            };
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line:?}"));
            (name.to_owned(), value)
        })
        .collect()
}

fn get(map: &HashMap<String, u64>, name: &str) -> u64 {
    *map.get(name)
        .unwrap_or_else(|| panic!("no counter {name} in {map:?}"))
}

/// Polls the counters until `done` holds (bounded by [`SETTLE`]); returns the last reading.
fn wait_counters(
    topo: &NatTopology,
    done: impl Fn(&HashMap<String, u64>) -> bool,
) -> HashMap<String, u64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = counters(topo);
        if done(&now) || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Builds frames from the client to the director's d0.
struct FrameBuilder {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

impl FrameBuilder {
    fn ethernet(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(80);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        f
    }

    /// An IPv4 header (20 bytes) with the given version/IHL byte and total length, protocol TCP.
    fn ipv4(&self, ver_ihl: u8, total_len: u16) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = ver_ihl;
        h[2..4].copy_from_slice(&total_len.to_be_bytes());
        h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        h[6] = 0x40; // DF
        h[8] = 64;
        h[9] = 6;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let sum = checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h
    }

    /// A 20-byte TCP header from `sport` to port 80 with `flags`, checksummed.
    fn tcp(&self, sport: u16, flags: u8) -> [u8; 20] {
        let mut t = [0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[4..8].copy_from_slice(&1000u32.to_be_bytes());
        t[8..12].copy_from_slice(&2000u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&64240u16.to_be_bytes());
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&self.src.octets());
        pseudo[4..8].copy_from_slice(&self.dst.octets());
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&20u16.to_be_bytes());
        let sum = checksum(&[&pseudo[..], &t[..]].concat());
        t[16..18].copy_from_slice(&sum.to_be_bytes());
        t
    }

    /// IPv4 header length 12 bytes (IHL 3): malformed.
    fn bad_ihl(&self) -> Vec<u8> {
        let mut f = self.ethernet();
        f.extend_from_slice(&self.ipv4(0x43, 40));
        f.extend_from_slice(&self.tcp(40001, 0x02));
        f
    }

    /// A SYN to VIP:80 whose TCP header stops after 10 bytes: truncated.
    fn short_tcp(&self) -> Vec<u8> {
        let mut f = self.ethernet();
        f.extend_from_slice(&self.ipv4(0x45, 30));
        f.extend_from_slice(&self.tcp(40002, 0x02)[..10]);
        f
    }

    /// An IPv4 total length of 1000 in a 54-byte frame: truncated.
    fn long_total_length(&self) -> Vec<u8> {
        let mut f = self.ethernet();
        f.extend_from_slice(&self.ipv4(0x45, 1000));
        f.extend_from_slice(&self.tcp(40003, 0x02));
        f
    }

    /// A well-formed ACK to VIP:80 that belongs to no connection.
    fn stray_ack(&self) -> Vec<u8> {
        let mut f = self.ethernet();
        f.extend_from_slice(&self.ipv4(0x45, 40));
        f.extend_from_slice(&self.tcp(40004, 0x10));
        f
    }
}

/// Sends every frame `COPIES` times from the client's interface with a raw packet socket.
fn inject(topo: &NatTopology, frames: &[Vec<u8>]) {
    topo.lab
        .in_netns(CLIENT, || -> Result<(), rvs_io::IoError> {
            let sock = PacketSocket::open_tx(CLIENT_IF)?;
            for frame in frames {
                for _ in 0..COPIES {
                    sock.send(&VnetHdr::default(), frame)?;
                }
            }
            Ok(())
        })
        .expect("inject frames from the client namespace");
}

#[test]
fn bad_frames_are_counted_by_reason_and_service_goes_on() {
    let topo = NatTopology::build("counters", 2).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    let rvsd = topo.start_rvsd(&[]).expect("start rvsd");
    add_rr_service(&topo, "rr");

    let before = counters(&topo);
    for name in [
        "connections",
        "drop_malformed",
        "drop_truncated",
        "drop_no_connection_non_syn",
        "tx_sent",
        "tx_neighbour_held",
        "tx_neighbour_failed",
        "tx_unreachable",
        "tx_unmanaged_egress",
        "tx_send_errors",
    ] {
        get(&before, name);
    }

    let frames = FrameBuilder {
        dst_mac: topo.lab.mac_bytes(DIRECTOR, "d0").expect("director MAC"),
        src_mac: topo.lab.mac_bytes(CLIENT, CLIENT_IF).expect("client MAC"),
        src: topo.client4,
        dst: topo.vip4,
    };
    let bad = [
        frames.bad_ihl(),
        frames.short_tcp(),
        frames.long_total_length(),
    ];
    inject(&topo, &bad);
    let sent = COPIES * bad.len() as u64;
    let bad_sum = |m: &HashMap<String, u64>| get(m, "drop_malformed") + get(m, "drop_truncated");
    let after = wait_counters(&topo, |m| bad_sum(m) >= bad_sum(&before) + sent);
    assert_eq!(
        bad_sum(&after),
        bad_sum(&before) + sent,
        "before {before:?}\nafter {after:?}"
    );
    assert_eq!(
        get(&after, "drop_malformed"),
        get(&before, "drop_malformed") + COPIES,
        "IHL 3 is malformed: {after:?}"
    );
    assert_eq!(
        get(&after, "drop_truncated"),
        get(&before, "drop_truncated") + 2 * COPIES,
        "short TCP header and long total length are truncated: {after:?}"
    );

    let base = get(&after, "drop_no_connection_non_syn");
    inject(&topo, &[frames.stray_ack()]);
    let acked = wait_counters(&topo, |m| {
        get(m, "drop_no_connection_non_syn") >= base + COPIES
    });
    assert_eq!(
        get(&acked, "drop_no_connection_non_syn"),
        base + COPIES,
        "{acked:?}"
    );

    assert_eq!(
        topo.lab.exit_status(rvsd.pid),
        None,
        "rvsd died; log:\n{}",
        topo.lab.log_of(rvsd.pid)
    );
    let answer = topo
        .curl(&format!("http://{VIP}/"))
        .expect("curl through the VIP");
    assert!(answer.trim().starts_with("hello,"), "{answer:?}");

    let served = counters(&topo);
    assert!(
        get(&served, "tx_sent") > get(&acked, "tx_sent"),
        "{served:?}"
    );
    assert!(get(&served, "connections") >= 1, "{served:?}");
    assert_eq!(
        get(&served, "drop_malformed"),
        get(&acked, "drop_malformed"),
        "a good connection drops nothing: {served:?}"
    );
}
