//! Hot-path benchmarks with 1,000,000 connections in the table: an established NAT TCP flow
//! (client to real server, and the real server's reply), established packets cycling over
//! 4096 and over 262,144 flows, and a new connection (SYN: schedule + insert). Also prints
//! bytes of table memory per connection, computed from the table's capacities.
//!
//! Packets go in as rvsd's workers hand them over ([`Engine::handle_cached`]: the configuration
//! snapshot kept from packet to packet). The rows marked "next prefetched" also call
//! [`Engine::prefetch`] for the next frame before handling the current one, as a packet
//! worker does when it holds more than one frame. Each routine returns nothing and hands a reference to
//! its verdict to `std::hint::black_box`: Criterion's own black box reads a returned value back
//! one byte at a time (for a verdict, about 12 ns that are not the engine's).

#![allow(missing_docs)] // criterion_group! generates an undocumented function
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rvs_engine::*;

const CONNS: u32 = 1_000_000;
const VIP: [u8; 4] = [10, 99, 1, 100];
/// Base connections are created at this time (ESTABLISHED: 900 s timeout).
const T_BASE: u64 = 1_000_000;

fn frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 65535);
    let b = if flags & 2 != 0 { b.syn() } else { b.ack(1) };
    b.write(&mut out, &[0u8; 64]).expect("build");
    out
}

/// Client address and port of connection number `i`.
fn client(i: u32) -> ([u8; 4], u16) {
    let host = i / 50_000;
    let port = 10_000 + (i % 50_000) as u16;
    ([100, 64 + (host >> 8) as u8, host as u8, 7], port)
}

fn set_client(f: &mut [u8], (addr, port): ([u8; 4], u16)) {
    f[26..30].copy_from_slice(&addr);
    f[34..36].copy_from_slice(&port.to_be_bytes());
}

fn setup() -> Engine {
    let e = Engine::new(EngineConfig {
        expected_connections: CONNS as usize,
        shards: 64,
        ..EngineConfig::default()
    });
    let k = ServiceKey::new(Protocol::Tcp, IpAddr::V4(Ipv4Addr::from(VIP)), 80);
    e.add_service(ServiceSpec::new(k, SchedulerKind::Wlc))
        .expect("svc");
    for i in 1..=4u8 {
        let rip = IpAddr::V4(Ipv4Addr::new(192, 168, 7, i));
        let d = DestSpec::new(rip, 8080, 1, ForwardMethod::Masq);
        e.add_dest(&k, d).expect("dest");
    }
    let syn = frame([0; 4], 0, VIP, 80, 2);
    let ack = frame([0; 4], 0, VIP, 80, 0x10);
    let mut buf = syn.clone();
    let mut meta = PacketMeta::default();
    for i in 0..CONNS {
        buf.copy_from_slice(&syn);
        set_client(&mut buf, client(i));
        e.handle(Millis(T_BASE), &mut meta, &mut buf);
        buf.copy_from_slice(&ack);
        set_client(&mut buf, client(i));
        e.handle(Millis(T_BASE), &mut meta, &mut buf);
    }
    assert_eq!(e.connection_count(), CONNS as usize);
    e
}

/// Runs one frame through the engine as a worker does. The verdict is left where the engine
/// wrote it (given to `black_box` by value, its ~150 bytes were copied on every call).
#[inline(always)]
fn run(e: &Engine, snap: &mut SnapshotCache, now: u64, meta: &mut PacketMeta, buf: &mut [u8]) {
    let verdict = e.handle_cached(snap, Millis(now), meta, black_box(buf));
    black_box(&verdict);
}

fn benches(c: &mut Criterion) {
    let t = Instant::now();
    let e = setup();
    let bytes = e.table_memory_bytes();
    println!(
        "setup: {} connections in {:.1?}; table memory {} MiB = {:.1} bytes/connection",
        e.connection_count(),
        t.elapsed(),
        bytes >> 20,
        bytes as f64 / e.connection_count() as f64
    );

    let ack = frame([0; 4], 0, VIP, 80, 0x10);
    // One established flow, its packets back to back (table entries hot in cache).
    let mut hot = ack.clone();
    set_client(&mut hot, client(123_457));
    let mut buf = ack.clone();
    let mut meta = PacketMeta::default();
    // The workers' way in: the snapshot is kept from packet to packet.
    let mut snap = e.snapshot_cache();
    c.bench_function("established NAT TCP packet, one flow (1M conns)", |b| {
        b.iter(|| {
            buf.copy_from_slice(&hot);
            run(&e, &mut snap, T_BASE + 1, &mut meta, &mut buf);
        })
    });

    // The same, with a prefetch of the next frame (the same flow's) before each: what the
    // prefetch costs when every line it names is already in cache.
    c.bench_function(
        "established NAT TCP packet, one flow, next prefetched (1M conns)",
        |b| {
            b.iter(|| {
                buf.copy_from_slice(&hot);
                e.prefetch(&hot);
                run(&e, &mut snap, T_BASE + 1, &mut meta, &mut buf);
            })
        },
    );

    // The same flow's reply from its real server (found through the reply direction).
    buf.copy_from_slice(&hot);
    e.handle(Millis(T_BASE + 1), &mut meta, &mut buf);
    let (rip, rport) = (
        [buf[30], buf[31], buf[32], buf[33]],
        u16::from_be_bytes([buf[36], buf[37]]),
    );
    let (caddr, cport) = client(123_457);
    let reply = frame(rip, rport, caddr, cport, 0x10);
    c.bench_function("established NAT TCP reply, one flow (1M conns)", |b| {
        b.iter(|| {
            buf.copy_from_slice(&reply);
            run(&e, &mut snap, T_BASE + 1, &mut meta, &mut buf);
        })
    });

    // Established flows: cycle over 4096 connections spread across the table (cache and TLB
    // misses on the index and the slab, as a director with many active flows sees).
    let templates: Vec<Vec<u8>> = (0..4096u32)
        .map(|j| {
            let mut f = ack.clone();
            set_client(&mut f, client(j.wrapping_mul(2_654_435_761) % CONNS));
            f
        })
        .collect();
    let mut n = 0usize;
    c.bench_function("established NAT TCP packets, 4096 flows (1M conns)", |b| {
        b.iter(|| {
            n = (n + 1) & 4095;
            buf.copy_from_slice(&templates[n]);
            run(&e, &mut snap, T_BASE + 1, &mut meta, &mut buf);
        })
    });
    c.bench_function(
        "established NAT TCP packets, 4096 flows, next prefetched (1M conns)",
        |b| {
            b.iter(|| {
                n = (n + 1) & 4095;
                buf.copy_from_slice(&templates[n]);
                e.prefetch(&templates[(n + 1) & 4095]);
                run(&e, &mut snap, T_BASE + 1, &mut meta, &mut buf);
            })
        },
    );

    // Established flows beyond the caches: 262,144 connections spread across the table (a
    // busy director's case: every packet's index bucket and slot come from memory). Each frame
    // is made in place, as no template array would stay cached either.
    let flow = |f: &mut [u8], j: u32| {
        f.copy_from_slice(&ack);
        set_client(f, client(j.wrapping_mul(2_654_435_761) % CONNS));
    };
    let mut ahead = ack.clone();
    let mut m = 0u32;
    for (name, prefetched) in [
        (
            "established NAT TCP packets, 262144 flows (1M conns)",
            false,
        ),
        (
            "established NAT TCP packets, 262144 flows, next prefetched (1M conns)",
            true,
        ),
    ] {
        c.bench_function(name, |b| {
            flow(&mut ahead, m);
            b.iter(|| {
                buf.copy_from_slice(&ahead);
                m = (m + 1) & 262_143;
                flow(&mut ahead, m);
                if prefetched {
                    e.prefetch(&ahead);
                }
                run(&e, &mut snap, T_BASE + 1, &mut meta, &mut buf);
            })
        });
    }

    // New connection: SYN from a fresh tuple (client number `next`: no two alike); the new
    // connections are removed (untimed) after each batch so the table stays at about 1M.
    let syn = frame([0; 4], 0, VIP, 80, 2);
    let new_syn = |f: &mut [u8], next: u32| {
        f.copy_from_slice(&syn);
        f[26..30].copy_from_slice(&[
            172,
            16 + (next >> 24) as u8,
            (next >> 16) as u8,
            (next >> 8) as u8,
        ]);
        f[34..36].copy_from_slice(&(1024 + (next & 0xff) as u16).to_be_bytes());
    };
    let mut next = 0u32;
    for (name, prefetched) in [
        ("new connection SYN: schedule + insert (1M conns)", false),
        (
            "new connection SYN: schedule + insert, next prefetched (1M conns)",
            true,
        ),
    ] {
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(100_000);
                    next = next.wrapping_add(1);
                    new_syn(&mut ahead, next);
                    let start = Instant::now();
                    for _ in 0..batch {
                        buf.copy_from_slice(&ahead);
                        next = next.wrapping_add(1);
                        new_syn(&mut ahead, next);
                        if prefetched {
                            e.prefetch(&ahead);
                        }
                        run(&e, &mut snap, 0, &mut meta, &mut buf);
                    }
                    total += start.elapsed();
                    // SYN_RECV connections made at t=0 expire at 60 s; the base ones live on.
                    e.expire(Millis(60_000));
                    left -= batch;
                }
                total
            })
        });
    }
    println!("after benches: {} connections", e.connection_count());
}

criterion_group!(engine, benches);
criterion_main!(engine);
