//! The BPF program's own cost per packet, measured by the kernel (BPF_PROG_TEST_RUN): a
//! client's packet of a known connection, a real server's reply, a new connection (SYN,
//! scheduled and opened) and a frame that is not ours, at tc and at XDP, on the engine
//! fixtures' NAT service; then the same three with 200,000 connections in the table, the
//! packets taken in turn from 4096 of them (cache misses on the table, as a director with many
//! flows sees, and as Connection: close leaves it full of TIME_WAIT entries). Every run gets a fresh copy of its frame (a repeated run would see
//! the frame the previous one rewrote), so each figure is the kernel's timing of single runs,
//! averaged, and includes its clock reads (the last row, a program that only parses what is
//! not ours, bounds that). Root required (it loads the program in a namespace of its own);
//! prints nanoseconds per run. `cargo bench -p rvs-bpf --bench program`
//!
//! At tc a test run's skb is the program's alone, so the figures leave out what a clone costs
//! on a real interface (making the head writable); `bench/dataplane.sh` measures that too.

#[path = "../../rvs-engine/tests/common/mod.rs"]
mod common;
#[path = "../tests/lab/mod.rs"]
mod lab;

use common::*;
use rvs_bpf::maps::Settings;
use rvs_bpf::{Datapath, Hook, Limits, Publisher};
use rvs_engine::{Policy, Timeouts};

/// Runs per measured frame.
const RUNS: u32 = 20_000;
/// New connections measured (every SYN needs a key of its own).
const NEW_CONNS: u16 = 5_000;
/// Connections in the table for the last rows.
const FILLED: u32 = 200_000;
/// Of which this many take turns (spread over the table).
const TURNS: u32 = 4096;

/// The client address of filled connection `i` (port CPORT).
fn filled_client(i: u32) -> [u8; 4] {
    [100, 64 + (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

/// A client's request on connection `client`:`port`.
fn request(client: [u8; 4], port: u16) -> Vec<u8> {
    tcp4(
        client,
        port,
        VIP4,
        VPORT,
        64,
        ACK,
        b"GET / HTTP/1.1\r\n\r\n",
    )
}

/// The real server's reply on connection `client`:`port`.
fn reply(client: [u8; 4], port: u16) -> Vec<u8> {
    tcp4(
        RIP4,
        RPORT,
        client,
        port,
        64,
        ACK,
        b"HTTP/1.1 200 OK\r\n\r\n",
    )
}

/// A SYN opening connection `client`:`port`.
fn syn(client: [u8; 4], port: u16) -> Vec<u8> {
    tcp4(client, port, VIP4, VPORT, 64, SYN, &[])
}

fn program(hook: Hook, ifindex: u32) -> Vec<(String, f64)> {
    let engine = nat_engine();
    let dp = Datapath::load(Limits {
        connections: 1 << 19,
        services: 64,
        dests: 256,
        tables: 64,
    })
    .expect("load the BPF program");
    let mut settings = Settings::from_engine(Timeouts::default(), &Policy::default());
    // As rvsd runs the program: next hops cached (rvsd changes the value when routes or
    // neighbours change).
    settings.fib_gen = 1;
    Publisher::new()
        .publish(&dp, &engine.spec_walk(), &settings)
        .expect("publish");
    // Nanoseconds per single run over `runs` runs, taking `frames` in turn.
    let mean_ns = |frames: &[Vec<u8>], runs: usize| {
        let total: u128 = (0..runs)
            .map(|n| {
                dp.time_runs(hook, &frames[n % frames.len()], ifindex, 1)
                    .expect("test run")
                    .as_nanos()
            })
            .sum();
        total as f64 / runs as f64
    };
    let runs = RUNS as usize;
    let mut rows = Vec::new();
    dp.test_run_at(hook, &syn(CLIENT4, CPORT), ifindex)
        .expect("open");
    let row = |what: &str, ns| (what.to_owned(), ns);
    rows.push(row(
        "client packet of a connection",
        mean_ns(&[request(CLIENT4, CPORT)], runs),
    ));
    rows.push(row(
        "real server's reply",
        mean_ns(&[reply(CLIENT4, CPORT)], runs),
    ));
    let syns: Vec<Vec<u8>> = (0..NEW_CONNS)
        .map(|i| syn(CLIENT4, CPORT + 1 + i))
        .collect();
    rows.push(row("new connection (SYN)", mean_ns(&syns, syns.len())));
    let other = tcp4(CLIENT4, CPORT, ROUTER4, 22, 64, ACK, &[]);
    rows.push(row("not ours (to the kernel)", mean_ns(&[other], runs)));

    for i in 0..FILLED {
        dp.test_run_at(hook, &syn(filled_client(i), CPORT), ifindex)
            .expect("fill");
    }
    let turns: Vec<u32> = (0..TURNS)
        .map(|j| j.wrapping_mul(2_654_435_761) % FILLED)
        .collect();
    let acks: Vec<Vec<u8>> = turns
        .iter()
        .map(|&i| request(filled_client(i), CPORT))
        .collect();
    for ack in &acks {
        // Each connection on to ESTABLISHED, so the timed runs change no state.
        dp.test_run_at(hook, ack, ifindex).expect("establish");
    }
    rows.push(row(
        "client packets, 4096 of 200k conns",
        mean_ns(&acks, runs),
    ));
    let replies: Vec<Vec<u8>> = turns
        .iter()
        .map(|&i| reply(filled_client(i), CPORT))
        .collect();
    rows.push(row("replies, 4096 of 200k conns", mean_ns(&replies, runs)));
    let syns: Vec<Vec<u8>> = (0..u32::from(NEW_CONNS))
        .map(|i| syn(filled_client(FILLED + i), CPORT))
        .collect();
    rows.push(row(
        "new connection, 200k conns",
        mean_ns(&syns, syns.len()),
    ));
    rows
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the program benchmark needs root (it loads BPF): skipped");
        return;
    }
    for hook in [Hook::Tc, Hook::Xdp] {
        lab::in_lab(move |ifindex| {
            for (what, ns) in program(hook, ifindex) {
                println!("{hook:?} {what:<32} {ns:>7.0} ns/run");
            }
        });
    }
}
