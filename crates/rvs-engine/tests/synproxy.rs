//! The SYN proxy (`syn_proxy` policy) through `Engine::handle`: a SYN is answered with a cookie
//! and leaves nothing behind; the client's ACK with that cookie opens the connection and
//! reaches the real server as its SYN; the client's data waits until the real server answers;
//! the server's SYN-ACK is turned into the client's ACK; afterwards the numbers are shifted both
//! ways with valid checksums. Bad and stale cookies are dropped; direct-routing services are not
//! proxied.

mod common;

use common::*;
use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TcpOptionElement, TransportHeader};
use rvs_engine::{DropReason, Engine, Millis, PacketMeta, Policy, Verdict};

const CLIENT_ISN: u32 = 1_000_000;
const SERVER_ISN: u32 = 7_777_777;

/// A TCP frame with explicit numbers, flags (SYN, ACK, PSH) and options.
#[allow(clippy::too_many_arguments)]
fn seg(
    src: [u8; 16],
    sp: u16,
    dst: [u8; 16],
    dp: u16,
    v6: bool,
    (seq, ack): (u32, Option<u32>),
    syn: bool,
    options: &[TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let b = if v6 {
        b.ipv6(src, dst, 64)
    } else {
        b.ipv4(
            [src[12], src[13], src[14], src[15]],
            [dst[12], dst[13], dst[14], dst[15]],
            64,
        )
    };
    let mut b = b.tcp(sp, dp, seq, 29_200);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    if !payload.is_empty() {
        b = b.psh();
    }
    let b = b.options(options).expect("options");
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build");
    out
}

/// A segment from the client to the virtual service (see [`seg`]).
fn from_client(
    x: &Ends,
    v6: bool,
    numbers: (u32, Option<u32>),
    syn: bool,
    options: &[TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    seg(
        x.client, CPORT, x.vip, VPORT, v6, numbers, syn, options, payload,
    )
}

/// A segment from the real server to the client (see [`seg`]).
fn from_server(
    x: &Ends,
    v6: bool,
    numbers: (u32, Option<u32>),
    syn: bool,
    options: &[TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    seg(
        x.rip, RPORT, x.client, CPORT, v6, numbers, syn, options, payload,
    )
}

/// An IPv4 client's segment after its handshake with the director: the ACK of `cookie`,
/// carrying `payload`.
fn client_ack(x: &Ends, cookie: u32, payload: &[u8]) -> Vec<u8> {
    from_client(
        x,
        false,
        (CLIENT_ISN + 1, Some(cookie + 1)),
        false,
        &[],
        payload,
    )
}

/// The cookie `e` answers an IPv4 client's SYN (MSS 1460) with at `at` ms.
fn cookie_for(e: &Engine, x: &Ends, at: u64) -> u32 {
    let mss = [TcpOptionElement::MaximumSegmentSize(1460)];
    let mut syn = from_client(x, false, (CLIENT_ISN, None), true, &mss, &[]);
    let v = e.handle(Millis(at), &mut PacketMeta::default(), &mut syn);
    out(&syn, &v).tcp.sequence_number
}

/// What a verdict sends, trimmed to its IP length, its checksums checked.
fn out(frame: &[u8], v: &Verdict) -> Seen {
    let packet = trimmed(&sent(frame, v));
    assert!(checksums_ok(&packet), "checksums of what {v:?} sends");
    seen(&packet)
}

fn m(a: [u8; 4]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[10] = 0xff;
    o[11] = 0xff;
    o[12..].copy_from_slice(&a);
    o
}

/// Addresses of one family: client, VIP, real server.
struct Ends {
    client: [u8; 16],
    vip: [u8; 16],
    rip: [u8; 16],
}

fn ends(v6: bool) -> Ends {
    if v6 {
        Ends {
            client: client6(),
            vip: vip6(),
            rip: rip6(),
        }
    } else {
        Ends {
            client: m(CLIENT4),
            vip: m(VIP4),
            rip: m(RIP4),
        }
    }
}

fn proxying(e: Engine) -> Engine {
    let mut p = Policy::default();
    p.set("syn_proxy", 1).expect("known switch");
    e.set_policy(p);
    e
}

/// What a verdict sends: the IP packet with any insertion in place, as a frame.
fn sent(frame: &[u8], v: &Verdict) -> Vec<u8> {
    match v {
        Verdict::Forward { l3_offset, .. } => {
            let mut f = frame[..14].to_vec();
            f.extend_from_slice(&frame[*l3_offset..]);
            f
        }
        Verdict::ForwardInsert {
            l3_offset,
            payload_offset,
            end,
            insert,
            ..
        } => {
            let mut f = frame[..14].to_vec();
            f.extend_from_slice(&frame[*l3_offset..*payload_offset]);
            f.extend_from_slice(insert.as_bytes());
            f.extend_from_slice(&frame[*payload_offset..*end]);
            f
        }
        other => panic!("nothing sent: {other:?}"),
    }
}

fn next_hop(v: &Verdict) -> std::net::IpAddr {
    match v {
        Verdict::Forward { next_hop_ip, .. } | Verdict::ForwardInsert { next_hop_ip, .. } => {
            *next_hop_ip
        }
        other => panic!("nothing sent: {other:?}"),
    }
}

/// The TCP header and addresses of a sent frame (padding after the IP length left out).
struct Seen {
    src: Vec<u8>,
    dst: Vec<u8>,
    tcp: etherparse::TcpHeader,
    payload: Vec<u8>,
}

fn seen(frame: &[u8]) -> Seen {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("an IP packet");
    let (src, dst) = match &h.net {
        Some(NetHeaders::Ipv4(ip, _)) => (ip.source.to_vec(), ip.destination.to_vec()),
        Some(NetHeaders::Ipv6(ip, _)) => (ip.source.to_vec(), ip.destination.to_vec()),
        _ => panic!("not IP"),
    };
    let Some(TransportHeader::Tcp(tcp)) = h.transport else {
        panic!("not TCP")
    };
    Seen {
        src,
        dst,
        tcp,
        payload: h.payload.slice().to_vec(),
    }
}

fn addr(a: &[u8; 16], v6: bool) -> Vec<u8> {
    if v6 {
        a.to_vec()
    } else {
        a[12..].to_vec()
    }
}

/// Trims a frame to its IP length (what a receiver keeps).
fn trimmed(frame: &[u8]) -> Vec<u8> {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("IP");
    let len = match &h.net {
        Some(NetHeaders::Ipv4(ip, _)) => usize::from(ip.total_len),
        Some(NetHeaders::Ipv6(ip, _)) => 40 + usize::from(ip.payload_length),
        _ => frame.len() - 14,
    };
    frame[..14 + len].to_vec()
}

fn handshake_and_data(v6: bool) {
    let e = proxying(nat_engine());
    let x = ends(v6);
    let meta = &mut PacketMeta::default();
    let opts = [
        TcpOptionElement::MaximumSegmentSize(1460),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::WindowScale(7),
        TcpOptionElement::Noop,
    ];
    // 1. The SYN is answered by the director; nothing is kept.
    let mut syn = from_client(&x, v6, (CLIENT_ISN, None), true, &opts, &[]);
    let v = e.handle(Millis(1000), meta, &mut syn);
    assert_eq!(next_hop(&v), to_ip(x.client, v6));
    assert!(!meta.csum_partial);
    let synack = trimmed(&sent(&syn, &v));
    assert!(checksums_ok(&synack), "SYN-ACK checksums");
    let s = seen(&synack);
    assert_eq!((s.src, s.dst), (addr(&x.vip, v6), addr(&x.client, v6)));
    assert!(s.tcp.syn && s.tcp.ack && !s.tcp.rst);
    assert_eq!((s.tcp.source_port, s.tcp.destination_port), (VPORT, CPORT));
    assert_eq!(s.tcp.acknowledgment_number, CLIENT_ISN + 1);
    let cookie = s.tcp.sequence_number;
    let offered: Vec<_> = s.tcp.options_iterator().filter_map(Result::ok).collect();
    assert_eq!(
        offered.first(),
        Some(&TcpOptionElement::MaximumSegmentSize(1460))
    );
    assert!(
        offered[1..].iter().all(|o| *o == TcpOptionElement::Noop),
        "an MSS and nothing else: {offered:?}"
    );
    assert_eq!(e.connection_count(), 0);

    // 2. The ACK with the cookie opens the connection: the real server gets a SYN.
    let mut ack = from_client(&x, v6, (CLIENT_ISN + 1, Some(cookie + 1)), false, &[], &[]);
    let meta = &mut PacketMeta::default();
    let v = e.handle(Millis(1010), meta, &mut ack);
    assert_eq!(next_hop(&v), to_ip(x.rip, v6));
    let syn_out = trimmed(&sent(&ack, &v));
    assert!(checksums_ok(&syn_out), "SYN checksums");
    let s = seen(&syn_out);
    assert_eq!((s.src, s.dst), (addr(&x.client, v6), addr(&x.rip, v6)));
    assert!(s.tcp.syn && !s.tcp.ack);
    assert_eq!(s.tcp.sequence_number, CLIENT_ISN);
    assert_eq!(s.tcp.destination_port, RPORT);
    assert!(s
        .tcp
        .options_iterator()
        .any(|o| o == Ok(TcpOptionElement::MaximumSegmentSize(1460))));
    assert_eq!(e.connection_count(), 1);

    // 3. The client's request waits for the real server.
    let request = b"GET / HTTP/1.0\r\n\r\n";
    let mut data = from_client(
        &x,
        v6,
        (CLIENT_ISN + 1, Some(cookie + 1)),
        false,
        &[],
        request,
    );
    let before = data.clone();
    assert_eq!(
        e.handle(Millis(1011), &mut PacketMeta::default(), &mut data),
        Verdict::Defer
    );
    assert_eq!(data, before, "a deferred frame is left as it came");

    // 4. The real server's SYN-ACK goes back to it as the client's ACK.
    let mut rs_synack = from_server(
        &x,
        v6,
        (SERVER_ISN, Some(CLIENT_ISN + 1)),
        true,
        &[TcpOptionElement::MaximumSegmentSize(1400)],
        &[],
    );
    let v = e.handle(Millis(1012), &mut PacketMeta::default(), &mut rs_synack);
    assert_eq!(next_hop(&v), to_ip(x.rip, v6));
    let ack_out = trimmed(&sent(&rs_synack, &v));
    assert!(checksums_ok(&ack_out), "ACK checksums");
    let s = seen(&ack_out);
    assert_eq!((s.src, s.dst), (addr(&x.client, v6), addr(&x.rip, v6)));
    assert!(s.tcp.ack && !s.tcp.syn);
    assert_eq!((s.tcp.source_port, s.tcp.destination_port), (CPORT, RPORT));
    assert_eq!(s.tcp.sequence_number, CLIENT_ISN + 1);
    assert_eq!(s.tcp.acknowledgment_number, SERVER_ISN + 1);

    // 5. The request goes now, acknowledging the server's ISN.
    let v = e.handle(Millis(1013), &mut PacketMeta::default(), &mut data);
    let out = trimmed(&sent(&data, &v));
    assert!(checksums_ok(&out));
    let s = seen(&out);
    assert_eq!(s.tcp.acknowledgment_number, SERVER_ISN + 1);
    assert_eq!(s.tcp.sequence_number, CLIENT_ISN + 1);
    assert_eq!(s.payload, request);

    // 6. The answer reaches the client in the cookie's sequence space, from the VIP.
    let answer = b"HTTP/1.0 200 OK\r\n\r\nhello";
    let mut reply = from_server(
        &x,
        v6,
        (SERVER_ISN + 1, Some(CLIENT_ISN + 1 + request.len() as u32)),
        false,
        &[],
        answer,
    );
    let v = e.handle(Millis(1014), &mut PacketMeta::default(), &mut reply);
    assert_eq!(next_hop(&v), to_ip(x.client, v6));
    let out = trimmed(&sent(&reply, &v));
    assert!(checksums_ok(&out));
    let s = seen(&out);
    assert_eq!((s.src, s.dst), (addr(&x.vip, v6), addr(&x.client, v6)));
    assert_eq!(s.tcp.sequence_number, cookie + 1);
    assert_eq!(s.payload, answer);

    let c = e.syn_proxy_counters();
    assert_eq!((c.answered, c.opened, c.bad_cookies), (1, 1, 0));
    let listing = e.connections(Millis(1015));
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].state, rvs_engine::ConnState::Established);
}

fn to_ip(a: [u8; 16], v6: bool) -> std::net::IpAddr {
    if v6 {
        std::net::IpAddr::from(a)
    } else {
        std::net::IpAddr::from([a[12], a[13], a[14], a[15]])
    }
}

#[test]
fn a_proxied_connection_v4() {
    handshake_and_data(false);
}

#[test]
fn a_proxied_connection_v6() {
    handshake_and_data(true);
}

#[test]
fn bad_and_stale_cookies_are_dropped() {
    let e = proxying(nat_engine());
    let x = ends(false);
    let cookie = cookie_for(&e, &x, 0);
    let ack = |cookie: u32| client_ack(&x, cookie, &[]);
    // A forged cookie, a cookie for another ISN, and the right one three minutes late.
    assert_eq!(
        e.handle(
            Millis(10),
            &mut PacketMeta::default(),
            &mut ack(cookie ^ 0x10)
        ),
        Verdict::Drop(DropReason::NoConnectionNonSyn)
    );
    let mut other_isn = from_client(
        &x,
        false,
        (CLIENT_ISN + 2, Some(cookie + 1)),
        false,
        &[],
        &[],
    );
    assert_eq!(
        e.handle(Millis(10), &mut PacketMeta::default(), &mut other_isn),
        Verdict::Drop(DropReason::NoConnectionNonSyn)
    );
    assert_eq!(
        e.handle(
            Millis(180_000),
            &mut PacketMeta::default(),
            &mut ack(cookie)
        ),
        Verdict::Drop(DropReason::NoConnectionNonSyn)
    );
    assert_eq!(e.syn_proxy_counters().bad_cookies, 3);
    assert_eq!(e.connection_count(), 0);
    // Within its age (a minute later, on a fresh engine's clock that only goes forward) it
    // holds: the real server gets the SYN.
    let fresh = proxying(nat_engine());
    let cookie = cookie_for(&fresh, &x, 0);
    let mut late = ack(cookie);
    let v = fresh.handle(Millis(60_000), &mut PacketMeta::default(), &mut late);
    assert_eq!(next_hop(&v), to_ip(x.rip, false));
    assert!(out(&late, &v).tcp.syn);
    assert_eq!(fresh.connection_count(), 1);
}

#[test]
fn direct_routing_services_are_not_proxied() {
    let e = proxying(dr_engine());
    let x = ends(false);
    let mut syn = from_client(&x, false, (CLIENT_ISN, None), true, &[], &[]);
    let v = e.handle(Millis(0), &mut PacketMeta::default(), &mut syn);
    assert_eq!(next_hop(&v), to_ip(x.rip, false));
    assert_eq!(e.connection_count(), 1);
    assert_eq!(e.syn_proxy_counters().answered, 0);
}

#[test]
fn a_silent_server_gets_the_syn_again() {
    let e = proxying(nat_engine());
    let x = ends(false);
    let mss = [TcpOptionElement::MaximumSegmentSize(1460)];
    let mut syn = from_client(&x, false, (CLIENT_ISN, None), true, &mss, &[]);
    let v = e.handle(Millis(0), &mut PacketMeta::default(), &mut syn);
    let cookie = out(&syn, &v).tcp.sequence_number;
    let mut ack = client_ack(&x, cookie, &[]);
    let v = e.handle(Millis(10), &mut PacketMeta::default(), &mut ack);
    assert!(out(&ack, &v).tcp.syn);
    let data = || client_ack(&x, cookie, b"hello");
    // Soon after: the data waits.
    assert_eq!(
        e.handle(Millis(500), &mut PacketMeta::default(), &mut data()),
        Verdict::Defer
    );
    // A second on, the server still silent: the segment goes as the SYN again, without data.
    let mut late = data();
    let v = e.handle(Millis(1_100), &mut PacketMeta::default(), &mut late);
    assert_eq!(next_hop(&v), to_ip(x.rip, false));
    let out = trimmed(&sent(&late, &v));
    assert!(checksums_ok(&out));
    let s = seen(&out);
    assert!(s.tcp.syn && !s.tcp.ack);
    assert_eq!(s.tcp.sequence_number, CLIENT_ISN);
    assert!(s.payload.is_empty());
    // And the timer starts again.
    assert_eq!(
        e.handle(Millis(1_200), &mut PacketMeta::default(), &mut data()),
        Verdict::Defer
    );
}

#[test]
fn a_checked_ack_replaces_a_left_over_connection_of_its_tuple() {
    let e = proxying(nat_engine());
    let x = ends(false);
    let checked = || PacketMeta {
        cookie_checked: true,
        ..Default::default()
    };
    let ack = |isn: u32, cookie: u32, data: &[u8]| {
        from_client(&x, false, (isn + 1, Some(cookie + 1)), false, &[], data)
    };
    // The program checked the cookie: the connection opens without the engine's check.
    let mut first = ack(CLIENT_ISN, 111, &[]);
    let v = e.handle(Millis(0), &mut checked(), &mut first);
    assert!(out(&first, &v).tcp.syn);
    // Its data (acknowledging the same cookie) waits: the same connection.
    let mut data = ack(CLIENT_ISN, 111, b"x");
    assert_eq!(
        e.handle(Millis(1), &mut checked(), &mut data),
        Verdict::Defer
    );
    // A new handshake on the same tuple (another cookie) replaces it.
    let mut again = ack(CLIENT_ISN + 500, 222, &[]);
    let v = e.handle(Millis(2), &mut checked(), &mut again);
    let s = out(&again, &v);
    assert!(s.tcp.syn);
    assert_eq!(s.tcp.sequence_number, CLIENT_ISN + 500);
    assert_eq!(e.connection_count(), 1);
    assert_eq!(e.syn_proxy_counters().opened, 2);
}

#[test]
fn a_backup_shifts_a_synced_proxied_connection() {
    let master = proxying(nat_engine());
    let backup = proxying(nat_engine());
    let x = ends(false);
    let mss = [TcpOptionElement::MaximumSegmentSize(1460)];
    let mut syn = from_client(&x, false, (CLIENT_ISN, None), true, &mss, &[]);
    let v = master.handle(Millis(0), &mut PacketMeta::default(), &mut syn);
    let cookie = out(&syn, &v).tcp.sequence_number;
    let mut ack = client_ack(&x, cookie, &[]);
    let v = master.handle(Millis(1), &mut PacketMeta::default(), &mut ack);
    assert!(out(&ack, &v).tcp.syn, "the real server got the SYN");
    let mut synack = from_server(
        &x,
        false,
        (SERVER_ISN, Some(CLIENT_ISN + 1)),
        true,
        &mss,
        &[],
    );
    let v = master.handle(Millis(2), &mut PacketMeta::default(), &mut synack);
    let s = out(&synack, &v);
    assert!(
        s.tcp.ack && !s.tcp.syn,
        "the real server got the client's ACK"
    );
    // The master's records carry the shift; the backup takes them.
    let records = master.sync_snapshot(Millis(3));
    assert_eq!(records.len(), 1);
    let seq = records[0].seq.expect("the sequence option");
    assert_eq!(seq.out_seq.init_seq, cookie);
    assert_eq!(seq.out_seq.delta, cookie.wrapping_sub(SERVER_ISN));
    backup.sync_import(Millis(3), &records[0]).expect("import");
    // After a failover the backup shifts the server's data into the client's sequence space.
    let mut reply = from_server(
        &x,
        false,
        (SERVER_ISN + 1, Some(CLIENT_ISN + 1)),
        false,
        &[],
        b"data",
    );
    let v = backup.handle(Millis(4), &mut PacketMeta::default(), &mut reply);
    let s = out(&reply, &v);
    assert_eq!(s.tcp.sequence_number, cookie + 1);
    assert!(checksums_ok(&trimmed(&sent(&reply, &v))));
    // And the client's acknowledgements back into the server's.
    let mut data = from_client(
        &x,
        false,
        (CLIENT_ISN + 1, Some(cookie + 5)),
        false,
        &[],
        b"more",
    );
    let v = backup.handle(Millis(5), &mut PacketMeta::default(), &mut data);
    assert_eq!(out(&data, &v).tcp.acknowledgment_number, SERVER_ISN + 5);
}

/// An engine with a TCP service on VIP4:80 scheduled by `sched` to RIP4 (upper threshold
/// `threshold`, 0: none) and RIP4B.
fn two_servers(sched: rvs_engine::SchedulerKind, threshold: u32) -> Engine {
    let e = Engine::new(rvs_engine::EngineConfig::default());
    let k = key(rvs_engine::Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, sched)).expect("service");
    let mut first = dest(ip4(RIP4), RPORT, 1);
    first.u_threshold = threshold;
    e.add_dest(&k, first).expect("first");
    e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).expect("second");
    e
}

/// The real server a new connection from `sport` is sent to.
fn first_pick(e: &Engine, sport: u16) -> [u8; 4] {
    let mut syn = tcp4(CLIENT4, sport, VIP4, VPORT, 64, SYN, &[]);
    assert!(matches!(run(e, 1000, &mut syn), Verdict::Forward { .. }));
    [syn[30], syn[31], syn[32], syn[33]]
}

/// Connections another data plane forwards (handed over) count for the schedulers with the
/// engine's own: lc sends a new connection to the server with fewer of both together.
#[test]
fn handed_over_connections_count_for_least_connection() {
    let e = two_servers(rvs_engine::SchedulerKind::Lc, 0);
    // The first server holds 5 connections elsewhere: the second gets the next two.
    e.set_handed_over_counts((ip4(VIP4), VPORT, 6), (ip4(RIP4), RPORT), 5, 0);
    assert_eq!(first_pick(&e, 40_001), RIP4B);
    assert_eq!(first_pick(&e, 40_002), RIP4B);
    // Handed over elsewhere, the second server now has more.
    e.set_handed_over_counts((ip4(VIP4), VPORT, 6), (ip4(RIP4B), RPORT), 9, 0);
    assert_eq!(first_pick(&e, 40_003), RIP4);
}

/// The hand-over of a proxied connection, engine side: queued once its server answered (and,
/// turning the hand-over on later, from the table); released with the state it moved to
/// meanwhile (a client RST), counted on its server as handed over at once.
#[test]
fn a_proxied_connection_is_handed_over_with_its_last_state() {
    let e = proxying(nat_engine());
    let x = ends(false);
    let cookie = cookie_for(&e, &x, 1000);
    let mut ack = client_ack(&x, cookie, &[]);
    e.handle(Millis(1010), &mut PacketMeta::default(), &mut ack);
    let mut synack = from_server(
        &x,
        false,
        (SERVER_ISN, Some(CLIENT_ISN + 1)),
        true,
        &[],
        &[],
    );
    e.handle(Millis(1012), &mut PacketMeta::default(), &mut synack);
    // The hand-over was off: nothing queued, until it is turned on.
    assert!(e.proxied_ready().is_empty());
    e.set_proxy_handoff(true);
    let ready = e.proxied_ready();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].state, rvs_engine::ConnState::Established as u16);
    assert!(e.proxied_ready().is_empty(), "taken once");
    // A RST from the client before the release: the release says so.
    let mut rst = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(CLIENT4, VIP4, 64)
        .tcp(CPORT, VPORT, CLIENT_ISN + 1, 0)
        .rst()
        .ack(cookie + 1)
        .write(&mut rst, &[])
        .expect("build");
    e.handle(Millis(1013), &mut PacketMeta::default(), &mut rst);
    let last = e.release_handed_over(&ready[0]).expect("released");
    assert_eq!(last.state, rvs_engine::ConnState::Close as u16);
    assert!(last.seq.is_some());
    assert_eq!(e.connection_count(), 0);
}

/// A server marked overloaded by connections handed over (its upper threshold reached with
/// them) is left out by rr, and taken again once the other plane reports fewer.
#[test]
fn handed_over_connections_set_and_clear_the_overload() {
    let e = two_servers(rvs_engine::SchedulerKind::Rr, 4);
    let pick = first_pick;
    e.set_handed_over_counts((ip4(VIP4), VPORT, 6), (ip4(RIP4), RPORT), 4, 0);
    let picks: Vec<_> = (0..4).map(|i| pick(&e, 41_000 + i)).collect();
    assert!(picks.iter().all(|p| *p == RIP4B), "{picks:?}");
    // Fewer than 3/4 of the threshold with the engine's own: the flag clears.
    e.set_handed_over_counts((ip4(VIP4), VPORT, 6), (ip4(RIP4), RPORT), 0, 0);
    let picks: Vec<_> = (0..4).map(|i| pick(&e, 42_000 + i)).collect();
    assert!(picks.contains(&RIP4), "{picks:?}");
}
