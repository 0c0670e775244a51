//! End to end: an SCTP NAT service (`--sctp-service`) through the real rvsd and rvsadm, in seed
//! 004's NAT topology. The lab's kernel has no SCTP sockets, so both ends speak SCTP with scapy
//! (Debian's python3-scapy): the client sends INIT and COOKIE_ECHO to the VIP, the real server
//! answers INIT_ACK and COOKIE_ACK. Each side prints the packets it received; the test checks the
//! translated addresses and ports and that every CRC32c verifies (with a bitwise CRC32c of its
//! own, independent of rvs's crate and of scapy's), then the listings. Needs root; the topology
//! and the scripts are ended by the lab's guard, also on failure, and every script is bounded by
//! `timeout`.

mod common;

use std::time::Duration;

use common::*;
use rvs_lab::{rs_role, CLIENT};

/// Debian's Python, where python3-scapy installs (a `python3` earlier in PATH may lack it).
const PYTHON: &str = "/usr/bin/python3";
const VPORT: u16 = 36412;
const RPORT: u16 = 3868;
const CPORT: u16 = 5000;
const RIP: &str = "10.10.10.2";
const CLIENT_IP: &str = "192.168.1.2";

/// Shared by both scripts: a sniffer feeding a queue, started before anything is sent, and a
/// line per received SCTP packet: `RX <first chunk type> <crc=ok|bad by scapy> <IP packet hex>`.
const COMMON: &str = r#"
import queue, sys, threading
from scapy.all import (AsyncSniffer, ICMP, IP, SCTP, SCTPChunkCookieAck, SCTPChunkCookieEcho,
                       SCTPChunkInit, SCTPChunkInitAck, SCTPChunkParamStateCookie, conf, send)
from scapy.layers.sctp import crc32c
conf.verb = 0
got = queue.Queue()
def crc_ok(ipb):
    s = ipb[(ipb[0] & 15) * 4:]
    z = s[:8] + b"\0\0\0\0" + s[12:]
    return crc32c(z) == int.from_bytes(s[8:12], "big")
def sniff_for(match):
    ready = threading.Event()
    def keep(p):
        if IP in p and SCTP in p and ICMP not in p and match(p):
            ipb = bytes(p[IP])[:p[IP].len]
            first = bytes(p[SCTP])[12] if len(bytes(p[SCTP])) > 12 else -1
            print("RX %d crc=%s %s" % (first, "ok" if crc_ok(ipb) else "bad", ipb.hex()), flush=True)
            got.put(p)
    sn = AsyncSniffer(iface="eth0", prn=keep, store=False, started_callback=ready.set)
    sn.start()
    if not ready.wait(10):
        sys.exit("sniffer did not start")
    return sn
"#;

/// The real server: answers INIT with INIT_ACK and COOKIE_ECHO with COOKIE_ACK, then exits.
const REAL_SERVER: &str = r#"
rip, rport = sys.argv[1], int(sys.argv[2])
sn = sniff_for(lambda p: p[IP].dst == rip and p[SCTP].dport == rport)
print("ready", flush=True)
while True:
    try:
        p = got.get(timeout=30)
    except queue.Empty:
        sys.exit("no packet from the director")
    back = IP(src=rip, dst=p[IP].src) / SCTP(sport=rport, dport=p[SCTP].sport)
    if SCTPChunkInit in p:
        back[SCTP].tag = p[SCTPChunkInit].init_tag
        send(back / SCTPChunkInitAck(init_tag=0x55667788, a_rwnd=65535, n_out_streams=1,
                                     n_in_streams=1, init_tsn=7,
                                     params=[SCTPChunkParamStateCookie(cookie=b"rvs-cookie-1234")]))
    elif SCTPChunkCookieEcho in p:
        back[SCTP].tag = 0x1a2b3c4d
        send(back / SCTPChunkCookieAck())
        break
sn.stop()
"#;

/// The client: INIT to the VIP until an INIT_ACK comes back (the first may wait for a
/// neighbour), then COOKIE_ECHO until the COOKIE_ACK.
const CLIENT_SCRIPT: &str = r#"
vip, vport, cport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sn = sniff_for(lambda p: p[IP].src == vip and p[SCTP].sport == vport and p[SCTP].dport == cport)
out = IP(dst=vip) / SCTP(sport=cport, dport=vport)
def exchange(pkt, want):
    for _ in range(8):
        send(pkt)
        try:
            while True:
                p = got.get(timeout=2)
                if want in p:
                    return p
        except queue.Empty:
            pass
    sys.exit("no %s from the VIP" % want.__name__)
init_ack = exchange(out / SCTPChunkInit(init_tag=0x1a2b3c4d, a_rwnd=65535, n_out_streams=1,
                                        n_in_streams=1, init_tsn=1), SCTPChunkInitAck)
cookie = init_ack[SCTPChunkParamStateCookie].cookie
echo = IP(dst=vip) / SCTP(sport=cport, dport=vport, tag=init_ack[SCTPChunkInitAck].init_tag)
exchange(echo / SCTPChunkCookieEcho(cookie=cookie), SCTPChunkCookieAck)
sn.stop()
"#;

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), bit by bit.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One received packet: first chunk type, scapy's checksum verdict, the IPv4 packet.
struct Rx {
    chunk: u8,
    scapy_crc_ok: bool,
    ip: Vec<u8>,
}

impl Rx {
    fn sctp(&self) -> &[u8] {
        &self.ip[usize::from(self.ip[0] & 15) * 4..]
    }
    fn src(&self) -> String {
        std::net::Ipv4Addr::new(self.ip[12], self.ip[13], self.ip[14], self.ip[15]).to_string()
    }
    fn dst(&self) -> String {
        std::net::Ipv4Addr::new(self.ip[16], self.ip[17], self.ip[18], self.ip[19]).to_string()
    }
    fn ports(&self) -> (u16, u16) {
        let s = self.sctp();
        (
            u16::from_be_bytes([s[0], s[1]]),
            u16::from_be_bytes([s[2], s[3]]),
        )
    }
    /// The CRC32c over the SCTP packet with the checksum field as zero, stored least
    /// significant byte first (RFC 9260 appendix A).
    fn crc_ok(&self) -> bool {
        let mut s = self.sctp().to_vec();
        let stored = [s[8], s[9], s[10], s[11]];
        s[8..12].fill(0);
        crc32c(&s).to_le_bytes() == stored
    }
}

fn received(log: &str) -> Vec<Rx> {
    log.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            if w.next()? != "RX" {
                return None;
            }
            let chunk = w.next()?.parse().ok()?;
            let scapy_crc_ok = w.next()? == "crc=ok";
            let hex = w.next()?;
            let ip = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Some(Rx {
                chunk,
                scapy_crc_ok,
                ip,
            })
        })
        .collect()
}

fn scapy_present() {
    let out = std::process::Command::new(PYTHON)
        .args(["-c", "import scapy.all"])
        .output();
    assert!(
        out.is_ok_and(|o| o.status.success()),
        "{PYTHON} cannot import scapy: install python3-scapy (scripts/install-deps)"
    );
}

#[test]
fn sctp_nat_association_through_rvsd_with_crc32c_verified_both_ways() {
    sctp_association("sctp", &[]);
}

/// The same with the BPF data plane: the program does not serve SCTP, so it sends the VIP's
/// SCTP packets and the real server's up to rvsd's engine.
#[test]
fn sctp_nat_association_with_the_bpf_plane() {
    let fs = common::Bpffs::mount("sctp");
    let pins = fs.pins().display().to_string();
    sctp_association("sctpbpf", &["--dataplane", "tc", "--bpf-pin-dir", &pins]);
}

fn sctp_association(tag: &str, rvsd_args: &[&str]) {
    scapy_present();
    let topo = rvs_lab::NatTopology::build(tag, 1).expect("build the NAT topology");
    topo.start_rvsd(rvsd_args).expect("start rvsd");
    let service = format!("{VIP}:{VPORT}");
    adm(&topo, &["-A", "--sctp-service", &service, "-s", "rr"]);
    let rs = format!("{RIP}:{RPORT}");
    adm(&topo, &["-a", "--sctp-service", &service, "-r", &rs, "-m"]);

    let rs_role = rs_role(0);
    let server = topo
        .lab
        .spawn(
            &rs_role,
            &[
                "timeout",
                "60",
                PYTHON,
                "-c",
                &format!("{COMMON}{REAL_SERVER}"),
                RIP,
                &RPORT.to_string(),
            ],
        )
        .expect("start the scapy real server");
    let ready = rvs_lab::wait_for(Duration::from_secs(30), || {
        topo.lab.log_of(server).contains("ready") || topo.lab.exit_status(server).is_some()
    });
    assert!(
        ready.is_some() && topo.lab.exit_status(server).is_none(),
        "the real server's sniffer did not start: {}",
        topo.lab.log_of(server)
    );

    let out = topo
        .lab
        .exec(
            CLIENT,
            &[
                "timeout",
                "60",
                PYTHON,
                "-c",
                &format!("{COMMON}{CLIENT_SCRIPT}"),
                VIP,
                &VPORT.to_string(),
                &CPORT.to_string(),
            ],
        )
        .expect("run the scapy client");
    let client_log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let server_status = topo.lab.wait_exit(server, Duration::from_secs(20));
    let server_log = topo.lab.log_of(server);
    assert!(
        out.status.success(),
        "client: {client_log}\nreal server: {server_log}"
    );
    assert!(
        server_status
            .as_deref()
            .is_some_and(|s| s.contains("exit status: 0")),
        "real server ended with {server_status:?}: {server_log}"
    );

    // What the real server received: the client's INIT and COOKIE_ECHO, to RIP:RPORT.
    let at_rs = received(&server_log);
    let init = at_rs
        .iter()
        .find(|r| r.chunk == 1)
        .unwrap_or_else(|| panic!("no INIT at the real server: {server_log}"));
    assert!(at_rs.iter().any(|r| r.chunk == 10), "{server_log}");
    for r in &at_rs {
        assert_eq!((r.src(), r.dst()), (CLIENT_IP.to_string(), RIP.to_string()));
        assert_eq!(r.ports(), (CPORT, RPORT));
        assert!(r.crc_ok() && r.scapy_crc_ok, "CRC32c of {:02x?}", r.sctp());
    }
    assert_eq!(&init.sctp()[4..8], &[0, 0, 0, 0], "an INIT's tag is 0");

    // What the client received: INIT_ACK and COOKIE_ACK from VIP:VPORT.
    let at_client = received(&client_log);
    assert!(at_client.iter().any(|r| r.chunk == 2), "{client_log}");
    assert!(at_client.iter().any(|r| r.chunk == 11), "{client_log}");
    for r in &at_client {
        assert_eq!((r.src(), r.dst()), (VIP.to_string(), CLIENT_IP.to_string()));
        assert_eq!(r.ports(), (VPORT, CPORT));
        assert!(r.crc_ok() && r.scapy_crc_ok, "CRC32c of {:02x?}", r.sctp());
    }

    // The listings: the association ESTABLISHED, counted as active, the service saved as
    // ipvsadm saves it.
    let conns = adm(&topo, &["-Lnc"]);
    let line = conns
        .lines()
        .find(|l| l.starts_with("SCTP"))
        .unwrap_or_else(|| panic!("no SCTP connection in:\n{conns}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cols[2..],
        [
            "ESTABLISHED",
            &format!("{CLIENT_IP}:{CPORT}"),
            &service,
            &rs
        ],
        "{conns}"
    );
    assert!(cols[1].starts_with("14:") || cols[1] == "15:00", "{conns}");
    let listing = adm(&topo, &["-Ln"]);
    assert!(
        listing.contains(&format!("SCTP {service} rr\n")),
        "{listing}"
    );
    assert_eq!(conns_of(&listing, &rs), (1, 0), "{listing}");
    let saved = adm(&topo, &["-S", "-n"]);
    assert!(
        saved.contains(&format!("-A --sctp-service {service} -s rr\n")),
        "{saved}"
    );
    assert!(
        saved.contains(&format!("-a --sctp-service {service} -r {rs} -m -w 1\n")),
        "{saved}"
    );
    let stats = adm(&topo, &["-Ln", "--stats", "--exact"]);
    let svc_line = stats
        .lines()
        .find(|l| l.starts_with("SCTP"))
        .unwrap_or_else(|| panic!("{stats}"));
    let nums: Vec<u64> = svc_line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums[0], 1, "one connection: {stats}");
    assert!(nums[1] >= 2 && nums[2] >= 2, "packets both ways: {stats}");
}
