//! `--pe sip` (IPVS's `ip_vs_pe_sip`): a persistent UDP service's templates are keyed by the
//! SIP Call-ID as well as by the masked client, listed and synced with it; a datagram without
//! a Call-ID is dropped, as IPVS drops it.

mod common;

use std::collections::HashSet;

use common::*;
use rvs_engine::*;

const RIP4C: [u8; 4] = [192, 168, 7, 12];
const SIP: u16 = 5060;

/// A persistent (`-p 300 -M 255.255.255.0 --pe sip`) rr UDP service on VIP4:5060 over three
/// real servers.
fn sip_engine() -> (Engine, ServiceKey) {
    let e = Engine::new(EngineConfig {
        expected_connections: 1024,
        shards: 8,
        ..EngineConfig::default()
    });
    let k = key(Protocol::Udp, ip4(VIP4), SIP);
    let mut spec = svc(k, SchedulerKind::Rr);
    spec.persistence = Some(Persistence {
        timeout_s: 300,
        netmask: ip4([255, 255, 255, 0]),
        pe: Some(PersistenceEngine::Sip),
    });
    e.add_service(spec).expect("add");
    for r in [RIP4, RIP4B, RIP4C] {
        e.add_dest(&k, dest(ip4(r), SIP, 1)).expect("dest");
    }
    (e, k)
}

fn invite(call_id: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 314159 INVITE\r\n\r\n"
    )
    .into_bytes()
}

fn send(e: &Engine, now: u64, client: [u8; 4], cport: u16, payload: &[u8]) -> Verdict {
    let mut f = udp4(client, cport, VIP4, SIP, 64, payload);
    run(e, now, &mut f)
}

fn next_hop(v: &Verdict) -> Option<std::net::IpAddr> {
    match v {
        Verdict::Forward { next_hop_ip, .. } => Some(*next_hop_ip),
        _ => None,
    }
}

#[test]
fn one_call_id_stays_on_one_server_across_clients() {
    let (e, _) = sip_engine();
    let first = next_hop(&send(
        &e,
        1,
        [203, 0, 113, 5],
        5060,
        &invite("a84b4c76e66710@pc33"),
    ));
    let first = first.expect("scheduled");
    // The same call from other ports and another client of the masked network (IPVS's
    // ct_match compares the masked client too).
    for (i, client) in [[203, 0, 113, 5], [203, 0, 113, 77], [203, 0, 113, 200]]
        .into_iter()
        .enumerate()
    {
        let v = send(
            &e,
            2,
            client,
            6000 + i as u16,
            &invite("a84b4c76e66710@pc33"),
        );
        assert_eq!(next_hop(&v), Some(first), "{client:?}");
    }
    assert_eq!(e.template_count(), 1);
    // The template is listed with the engine and its Call-ID.
    let tpl: Vec<_> = e
        .connections(Millis(2))
        .into_iter()
        .filter(|c| c.template)
        .collect();
    assert_eq!(tpl.len(), 1);
    assert_eq!(
        tpl[0].pe,
        Some((PersistenceEngine::Sip, b"a84b4c76e66710@pc33".to_vec()))
    );
    assert_eq!(tpl[0].client.ip(), ip4([203, 0, 113, 0]));
    assert_eq!(tpl[0].client.port(), 0);
}

#[test]
fn different_call_ids_of_one_client_spread() {
    let (e, _) = sip_engine();
    let servers: HashSet<_> = (0..3u16)
        .map(|i| {
            let v = send(&e, 1, CLIENT4, 5060 + i, &invite(&format!("call-{i}@host")));
            next_hop(&v).expect("scheduled")
        })
        .collect();
    // rr over three servers: three calls, three servers, three templates.
    assert_eq!(servers.len(), 3);
    assert_eq!(e.template_count(), 3);
}

#[test]
fn a_datagram_without_a_call_id_is_dropped_as_ipvs_drops_it() {
    let (e, _) = sip_engine();
    let before = e.drop_counters().counts[DropReason::Malformed.index()];
    let v = send(&e, 1, CLIENT4, 5060, b"not SIP at all\r\n");
    assert_eq!(v, Verdict::Drop(DropReason::Malformed));
    assert_eq!(
        e.drop_counters().counts[DropReason::Malformed.index()],
        before + 1
    );
    assert_eq!(e.template_count(), 0);
    // A SIP datagram of the same client is scheduled afterwards.
    let v = send(&e, 2, CLIENT4, 5060, &invite("x@y"));
    assert!(next_hop(&v).is_some());
}

#[test]
fn templates_sync_with_the_call_id() {
    let (master, _) = sip_engine();
    assert!(next_hop(&send(&master, 1, CLIENT4, 5060, &invite("sync-me@host"))).is_some());
    let records = master.sync_snapshot(Millis(1));
    let tpl = records
        .iter()
        .find(|r| r.flags & rvs_sync::F_TEMPLATE != 0)
        .expect("template record");
    assert_eq!(tpl.pe_name.as_deref(), Some(&b"sip"[..]));
    assert_eq!(tpl.pe_data.as_deref(), Some(&b"sync-me@host"[..]));
    // A backup installs it under the Call-ID: the same call from another client of the network
    // goes where the master sent it.
    let (backup, _) = sip_engine();
    for r in &records {
        backup.sync_import(Millis(1), r).expect("import");
    }
    assert_eq!(backup.template_count(), 1);
    let on_master = backup
        .connections(Millis(1))
        .into_iter()
        .find(|c| c.template)
        .expect("template")
        .dest
        .ip();
    let v = send(&backup, 2, [203, 0, 113, 99], 7000, &invite("sync-me@host"));
    assert_eq!(next_hop(&v), Some(on_master));
    // PE data under an unknown engine's name is refused.
    let mut odd = tpl.clone();
    odd.pe_name = Some(b"nope".to_vec());
    assert_eq!(
        backup.sync_import(Millis(1), &odd),
        Err(SyncImportError::Unsupported)
    );
}
