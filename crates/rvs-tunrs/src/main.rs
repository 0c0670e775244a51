//! `rvs-tunrs --ipip | --gue PORT | --gre [--dev rvstun0]`: see the library docs.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rvs_tunrs::decap::{self, DecapError, PROTO_GRE, PROTO_IPIP, PROTO_IPV6};
use socket2::{Domain, Protocol, Socket, Type};

const USAGE: &str = "usage: rvs-tunrs --ipip | --gue PORT | --gre [--dev NAME]";

#[derive(Clone, Copy)]
enum Mode {
    Ipip,
    Gue(u16),
    Gre,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    dropped: AtomicU64,
}

fn parse_args() -> Result<(Mode, String), String> {
    let mut mode = None;
    let mut dev = "rvstun0".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ipip" => mode = Some(Mode::Ipip),
            "--gre" => mode = Some(Mode::Gre),
            "--gue" => {
                let port = args
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p != 0)
                    .ok_or("--gue needs a port 1-65535")?;
                mode = Some(Mode::Gue(port));
            }
            "--dev" => dev = args.next().ok_or("--dev needs a name")?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok((mode.ok_or("choose --ipip, --gue PORT or --gre")?, dev))
}

fn sysctl(key: &str, value: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    if let Err(e) = std::fs::write(&path, value) {
        eprintln!("rvs-tunrs: cannot set {key}: {e}");
    }
}

fn main() {
    let (mode, dev) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("rvs-tunrs: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let tun = match rvs_io::tun::open(&dev, false) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rvs-tunrs: cannot create TUN device {dev}: {e}");
            std::process::exit(1);
        }
    };
    let up = Command::new("ip")
        .args(["link", "set", &dev, "up"])
        .status();
    if !up.is_ok_and(|s| s.success()) {
        eprintln!("rvs-tunrs: cannot bring {dev} up");
        std::process::exit(1);
    }
    sysctl("net.ipv4.conf.all.rp_filter", "0");
    sysctl(&format!("net.ipv4.conf.{dev}.rp_filter"), "0");
    // IPv6 has no reverse-path filter, but a device without IPv6 (a host whose `default`
    // disables it) drops every inner IPv6 packet: make sure the TUN device has it.
    sysctl(&format!("net.ipv6.conf.{dev}.disable_ipv6"), "0");
    let counters = Arc::new(Counters::default());
    let mut workers = Vec::new();
    let spawn = |name: &str, f: Box<dyn FnOnce() -> std::io::Result<()> + Send>| {
        let name = name.to_string();
        std::thread::spawn(move || {
            if let Err(e) = f() {
                eprintln!("rvs-tunrs: {name}: {e}");
            }
        })
    };
    let raw = |domain: Domain, proto: u8| -> std::io::Result<Socket> {
        Socket::new(domain, Type::RAW, Some(Protocol::from(i32::from(proto))))
    };
    let mut sockets: Vec<(String, Socket, bool, u8)> = Vec::new();
    let protos: &[u8] = match mode {
        Mode::Ipip => &[PROTO_IPIP, PROTO_IPV6],
        Mode::Gre => &[PROTO_GRE],
        Mode::Gue(_) => &[],
    };
    for &proto in protos {
        for (domain, v4) in [(Domain::IPV4, true), (Domain::IPV6, false)] {
            match raw(domain, proto) {
                Ok(s) => sockets.push((format!("raw {proto} v4={v4}"), s, v4, proto)),
                Err(e) => {
                    eprintln!("rvs-tunrs: raw socket for protocol {proto}: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    for (name, sock, v4, proto) in sockets {
        let tun = clone(&tun);
        let c = counters.clone();
        workers.push(spawn(
            &name,
            Box::new(move || raw_loop(&sock, v4, proto, tun, &c)),
        ));
    }
    if let Mode::Gue(port) = mode {
        let sock = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
            .or_else(|_| UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port))));
        let sock = match sock {
            Ok(s) => s,
            Err(e) => {
                eprintln!("rvs-tunrs: cannot bind UDP port {port}: {e}");
                std::process::exit(1);
            }
        };
        let tun = clone(&tun);
        let c = counters.clone();
        workers.push(spawn("gue", Box::new(move || gue_loop(&sock, tun, &c))));
    }
    eprintln!("rvs-tunrs: decapsulating into {dev}");
    for w in workers {
        let _ = w.join();
    }
}

fn clone(f: &File) -> File {
    match f.try_clone() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvs-tunrs: cannot duplicate the TUN descriptor: {e}");
            std::process::exit(1);
        }
    }
}

fn deliver(tun: &mut File, buf: &mut [u8], r: Result<decap::Inner, DecapError>, c: &Counters) {
    let inner = match r {
        Ok(i) => i,
        Err(e) => {
            let n = c.dropped.fetch_add(1, Ordering::Relaxed);
            if n < 10 || n.is_power_of_two() {
                let delivered = c.delivered.load(Ordering::Relaxed);
                eprintln!(
                    "rvs-tunrs: dropped ({} so far, {delivered} delivered): {e}",
                    n + 1
                );
            }
            return;
        }
    };
    let Some(packet) = buf.get_mut(inner.start..inner.end) else {
        c.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if let Some((start, field)) = inner.remote_csum {
        if decap::apply_remote_csum(packet, start, field).is_err() {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    decap::complete_partial(packet);
    // A TUN write takes the whole packet or fails.
    match tun.write(packet) {
        Ok(n) if n == packet.len() => {
            c.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Ok(_) | Err(_) => {
            c.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn raw_loop(
    sock: &Socket,
    v4: bool,
    proto: u8,
    mut tun: File,
    c: &Counters,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 65536];
    let mut reader = sock;
    loop {
        let n = reader.read(&mut buf)?;
        let data = &buf[..n];
        // IPv4 raw sockets deliver the outer header; IPv6 ones only the payload.
        let (start, end) = if v4 {
            match decap::outer_ipv4(data) {
                Ok((p, s, e)) if p == proto => (s, e),
                Ok(_) => continue,
                Err(e) => {
                    deliver(&mut tun, &mut buf, Err(e), c);
                    continue;
                }
            }
        } else {
            (0, n)
        };
        let r = if proto == PROTO_GRE {
            decap::gre(&buf[..end], start, end)
        } else {
            decap::ipip(&buf[..end], proto, start, end)
        };
        deliver(&mut tun, &mut buf, r, c);
    }
}

fn gue_loop(sock: &UdpSocket, mut tun: File, c: &Counters) -> std::io::Result<()> {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = sock.recv_from(&mut buf)?;
        let r = decap::gue(&buf[..n]);
        deliver(&mut tun, &mut buf[..n], r, c);
    }
}
