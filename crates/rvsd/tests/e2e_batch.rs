//! End-to-end test of the packet path's batching: bursts of UDP datagrams larger than one send
//! batch, on several flows spread over two workers, arrive at the real server complete and in
//! order per flow, and the counters the workers keep apart add up to what the client sent
//! (`rvsadm --counters`' `tx_sent`, the service's InPkts). Root required; the namespaces are
//! torn down by the topology guard.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{adm, columns, counter, VIP};
use rvs_io::TX_BATCH;
use rvs_lab::{NatTopology, CLIENT};

/// The UDP port of the service and of the real server's sink.
const PORT: u16 = 9000;
/// Client flows (source ports), so the kernel's fanout spreads them over the workers.
const FLOWS: usize = 8;
/// Datagrams per flow in one burst: more than a send batch, fewer than a receive ring's slots.
const BURST: usize = TX_BATCH + TX_BATCH / 2;
/// Bursts per flow.
const ROUNDS: usize = 3;
/// Bound on waiting for a burst to arrive (a hang guard, not a timing assertion).
const ARRIVAL: Duration = Duration::from_secs(20);

/// Receives datagrams `flow seq` on `sink` and passes them on, until the channel is closed.
fn sink_thread(sink: UdpSocket, out: mpsc::Sender<(usize, usize)>) {
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("sink read timeout");
    let mut buf = [0u8; 2048];
    loop {
        match sink.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                let mut words = text.split_whitespace().map(|w| w.parse::<usize>());
                let (Some(Ok(flow)), Some(Ok(seq))) = (words.next(), words.next()) else {
                    panic!("unexpected datagram {text:?}");
                };
                if out.send((flow, seq)).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // Nothing this time: go on while the test still listens.
                if out.send((usize::MAX, 0)).is_err() {
                    return;
                }
            }
            Err(e) => panic!("sink recv: {e}"),
        }
    }
}

/// Takes `n` datagrams from `rx` (ignoring idle ticks) or fails after [`ARRIVAL`].
fn take(rx: &mpsc::Receiver<(usize, usize)>, n: usize, got: &mut Vec<(usize, usize)>) {
    let deadline = Instant::now() + ARRIVAL;
    let mut taken = 0;
    while taken < n {
        assert!(
            Instant::now() < deadline,
            "only {taken} of {n} datagrams arrived; so far: {got:?}"
        );
        let (flow, seq) = rx.recv().expect("sink thread alive");
        if flow != usize::MAX {
            got.push((flow, seq));
            taken += 1;
        }
    }
}

#[test]
fn bursts_larger_than_a_batch_arrive_whole_and_in_order_and_counters_add_up() {
    let topo = NatTopology::build("batch", 1).expect("build the NAT topology");
    let rvsd = topo.start_rvsd(&["--workers", "2"]).expect("start rvsd");
    let rip = topo.rips4[0];
    adm(&topo, &["-A", "-u", &format!("{VIP}:{PORT}"), "-s", "rr"]);
    adm(
        &topo,
        &[
            "-a",
            "-u",
            &format!("{VIP}:{PORT}"),
            "-r",
            &format!("{rip}:{PORT}"),
            "-m",
        ],
    );

    let sink = topo
        .lab
        .in_netns("rs1", || UdpSocket::bind(("0.0.0.0", PORT)))
        .expect("bind the sink in rs1");
    let (tx, rx) = mpsc::channel();
    let sink = std::thread::spawn(move || sink_thread(sink, tx));

    let vip: SocketAddr = format!("{VIP}:{PORT}").parse().expect("VIP address");
    let clients: Vec<UdpSocket> = topo.lab.in_netns(CLIENT, || {
        (0..=FLOWS)
            .map(|_| {
                let s = UdpSocket::bind(("0.0.0.0", 0)).expect("bind a client socket");
                s.connect(vip).expect("connect to the VIP");
                s
            })
            .collect()
    });
    let mut got = Vec::new();

    // One datagram on a flow of its own first, so the real server's neighbour is known and no
    // datagram of the bursts waits for it.
    clients[FLOWS]
        .send(format!("{FLOWS} 0").as_bytes())
        .expect("send the warm-up datagram");
    take(&rx, 1, &mut got);
    got.clear();
    let sent_before = counter(&topo, "tx_sent");
    let stats_before = columns(
        &adm(&topo, &["-Ln", "--stats", "--exact"]),
        &format!("UDP  {VIP}:{PORT}"),
    );

    for round in 0..ROUNDS {
        for (flow, client) in clients.iter().take(FLOWS).enumerate() {
            for i in 0..BURST {
                let seq = round * BURST + i;
                client
                    .send(format!("{flow} {seq}").as_bytes())
                    .expect("send a datagram");
            }
            // One flow's burst at a time, so the receive ring (135 slots) never overflows.
            take(&rx, BURST, &mut got);
        }
    }

    let mut by_flow: HashMap<usize, Vec<usize>> = HashMap::new();
    for (flow, seq) in &got {
        by_flow.entry(*flow).or_default().push(*seq);
    }
    assert_eq!(by_flow.len(), FLOWS, "{by_flow:?}");
    for (flow, seqs) in &by_flow {
        let expected: Vec<usize> = (0..ROUNDS * BURST).collect();
        assert_eq!(
            seqs, &expected,
            "flow {flow} arrived incomplete or reordered"
        );
    }

    let total = (FLOWS * ROUNDS * BURST) as u64;
    assert_eq!(
        counter(&topo, "tx_sent") - sent_before,
        total,
        "the workers' tx_sent adds up to the datagrams sent"
    );
    let stats = adm(&topo, &["-Ln", "--stats", "--exact"]);
    let svc = columns(&stats, &format!("UDP  {VIP}:{PORT}"));
    assert_eq!(svc[1] - stats_before[1], total, "InPkts: {stats}");

    assert_eq!(
        topo.lab.exit_status(rvsd.pid),
        None,
        "rvsd died; log:\n{}",
        topo.lab.log_of(rvsd.pid)
    );
    drop(rx);
    sink.join().expect("sink thread");
}
