//! Network-namespace lab for the integration tests: two namespaces joined by a veth pair,
//! deleted again on Drop (also when a test fails).
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Two namespaces `a` and `b`; `a0` (10.77.N.1/24, fd77:N::1/64) in `a` is joined to `b0`
/// (10.77.N.2/24, fd77:N::2/64) in `b`.
pub struct Lab {
    pub a: String,
    pub b: String,
    pub net: u32,
    created: Vec<String>,
}

pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn try_run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let net = (pid.wrapping_mul(7).wrapping_add(n)) % 200 + 20;
        let mut lab = Lab {
            a: format!("rvsio-{tag}-{pid}-{n}-a"),
            b: format!("rvsio-{tag}-{pid}-{n}-b"),
            net,
            created: Vec::new(),
        };
        for ns in [lab.a.clone(), lab.b.clone()] {
            run(&["ip", "netns", "add", &ns]);
            lab.created.push(ns.clone());
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        run(&[
            "ip", "-n", &lab.a, "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns",
            &lab.b,
        ]);
        for (ns, dev, host) in [(&lab.a, "a0", 1), (&lab.b, "b0", 2)] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.77.{net}.{host}/24"),
                "dev",
                dev,
            ]);
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("fd77:{net}::{host}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    pub fn ip_a(&self) -> String {
        format!("10.77.{}.1", self.net)
    }

    pub fn ip_b(&self) -> String {
        format!("10.77.{}.2", self.net)
    }

    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", ns];
        v.extend_from_slice(args);
        run(&v)
    }

    /// MAC address of `dev` in `ns`.
    pub fn mac(&self, ns: &str, dev: &str) -> [u8; 6] {
        let text = self.ip(ns, &["link", "show", dev]);
        let word = text
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .expect("link/ether in ip link output");
        let mut mac = [0u8; 6];
        for (i, part) in word.split(':').enumerate() {
            mac[i] = u8::from_str_radix(part, 16).expect("hex");
        }
        mac
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.created {
            let _ = try_run(&["ip", "netns", "del", ns]);
        }
    }
}

/// Runs `f` on a new thread inside namespace `ns` and returns its result.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        rvs_io::netns::enter_thread(&ns).expect("enter netns");
        f()
    })
    .join()
    .expect("thread in netns panicked")
}

/// Spawns `f` on a thread inside namespace `ns`.
pub fn spawn_in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        rvs_io::netns::enter_thread(&ns).expect("enter netns");
        f()
    })
}

/// Internet checksum of `data` folded and complemented, starting from `sum`.
pub fn checksum(mut sum: u32, data: &[u8]) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn parse_ip4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().expect("ipv4").octets()
}

/// Ethernet + IPv4 + UDP frame; UDP checksum 0 (none) unless `partial` (then the pseudo-header
/// sum, for the kernel to finish).
pub fn udp_frame(
    (dst_mac, src_mac): ([u8; 6], [u8; 6]),
    (src, dst): ([u8; 4], [u8; 4]),
    sport: u16,
    dport: u16,
    payload: &[u8],
    partial: bool,
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + total);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total.min(0xffff) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = checksum(0, &ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(udp_len.min(0xffff) as u16).to_be_bytes());
    if partial {
        let mut sum = 0u32;
        for pair in [&src[0..2], &src[2..4], &dst[0..2], &dst[2..4]] {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        sum += 17 + udp_len as u32;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f.extend_from_slice(&(sum as u16).to_be_bytes());
    } else {
        f.extend_from_slice(&[0, 0]);
    }
    f.extend_from_slice(payload);
    f
}
