//! Connection synchronization: the master's export and the backup's import.

mod common;

use common::*;
use rvs_engine::*;
use rvs_sync::{SyncAddrs, SyncConn};

fn established_on(e: &Engine) {
    for (f, payload) in [(SYN, &b""[..]), (ACK, &b""[..]), (ACK, &b"GET /"[..])] {
        let mut p = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, f, payload);
        run(e, 1000, &mut p);
    }
}

fn record(flags: u32, state: u16, dport: u16) -> SyncConn {
    SyncConn {
        protocol: 6,
        flags,
        state,
        cport: CPORT,
        vport: VPORT,
        dport,
        fwmark: 0,
        timeout: 900,
        addrs: SyncAddrs::V4 {
            caddr: CLIENT4.into(),
            vaddr: VIP4.into(),
            daddr: RIP4.into(),
        },
        seq: None,
        pe_data: None,
        pe_name: None,
        fnat_local: None,
    }
}

#[test]
fn master_exports_at_the_third_incoming_packet() {
    let e = nat_engine();
    e.set_sync_export(true);
    established_on(&e);
    let recs = e.sync_drain();
    assert_eq!(recs, vec![record(rvs_sync::F_MASQ, 1, RPORT)]);
    // A FIN from the client (CLOSE_WAIT in IPVS's table): synced at once.
    let mut fin = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, FINACK, &[]);
    run(&e, 1100, &mut fin);
    let recs = e.sync_drain();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].state, ConnState::CloseWait as u16);
    // The whole table for a resync.
    assert_eq!(e.sync_snapshot(Millis(1200)).len(), 1);
}

#[test]
fn imported_nat_connection_translates_replies() {
    let backup = nat_engine();
    backup
        .sync_import(Millis(5000), &record(rvs_sync::F_MASQ, 1, RPORT))
        .expect("import");
    let conns = backup.connections(Millis(5000));
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, ConnState::Established);
    assert_eq!(conns[0].expires_in, Millis(900_000));
    assert_eq!(backup.services(Millis(0))[0].dests[0].active_conns, 1);
    // The real server's reply goes back to the client from the VIP.
    let mut reply = tcp4(RIP4, RPORT, CLIENT4, CPORT, 64, ACK, b"HTTP/1.0 200");
    assert_eq!(run(&backup, 5001, &mut reply), fwd(ip4(CLIENT4)));
    let expect = tcp4(VIP4, VPORT, CLIENT4, CPORT, 64, ACK, b"HTTP/1.0 200");
    assert_eq!(l3(&reply)[12..20], l3(&expect)[12..20]);
    assert!(checksums_ok(&reply));
    // And the client's next segment (no SYN) continues to the same real server.
    let mut more = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"more");
    assert_eq!(run(&backup, 5002, &mut more), fwd(ip4(RIP4)));
    // A second import refreshes, not duplicates.
    backup
        .sync_import(Millis(6000), &record(rvs_sync::F_MASQ, 4, RPORT))
        .expect("refresh");
    let conns = backup.connections(Millis(6000));
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, ConnState::FinWait);
    assert_eq!(backup.sync_counters().imported, 2);
}

#[test]
fn imported_dr_connection_forwards_unchanged() {
    let backup = dr_engine();
    backup
        .sync_import(
            Millis(0),
            &record(rvs_sync::F_DROUTE | rvs_sync::F_NOOUTPUT, 1, VPORT),
        )
        .expect("import");
    let mut ack = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, ACK, b"data");
    let before = ack.clone();
    assert_eq!(run(&backup, 1, &mut ack), fwd(ip4(RIP4)));
    assert_eq!(ack, before);
}

#[test]
fn imported_template_keeps_the_client_on_its_server() {
    let backup = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    let mut spec = svc(k, SchedulerKind::Rr);
    spec.persistence = Some(Persistence {
        timeout_s: 300,
        netmask: ip4([255, 255, 255, 255]),
        pe: None,
    });
    backup.add_service(spec).expect("svc");
    backup.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).expect("d1");
    backup.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).expect("d2");
    let mut tpl = record(rvs_sync::F_TEMPLATE, 0, RPORT);
    tpl.cport = 0;
    tpl.timeout = 300;
    backup.sync_import(Millis(0), &tpl).expect("template");
    assert_eq!(backup.template_count(), 1);
    // Every new connection of the client goes to RIP4 (rr alone would alternate).
    for cport in [1000, 1001, 1002] {
        let mut syn = tcp4(CLIENT4, cport, VIP4, VPORT, 64, SYN, &[]);
        assert_eq!(run(&backup, 10, &mut syn), fwd(ip4(RIP4)));
    }
}

#[test]
fn a_deleted_services_connection_is_still_refreshed_not_made() {
    // IPVS's ip_vs_proc_conn updates an existing connection whatever became of its service
    // (a deleted service's connections live on); only a new one needs the service.
    let backup = nat_engine();
    backup
        .sync_import(Millis(0), &record(rvs_sync::F_MASQ, 1, RPORT))
        .expect("import");
    backup
        .del_service(&key(Protocol::Tcp, ip4(VIP4), VPORT))
        .expect("delete");
    backup
        .sync_import(Millis(1000), &record(rvs_sync::F_MASQ, 4, RPORT))
        .expect("refresh");
    let conns = backup.connections(Millis(1000));
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, ConnState::FinWait);
    let mut other = record(rvs_sync::F_MASQ, 1, RPORT);
    other.cport = CPORT + 1;
    assert_eq!(
        backup.sync_import(Millis(1000), &other),
        Err(SyncImportError::NoService)
    );
}

#[test]
fn records_for_unknown_services_are_dropped_and_counted() {
    let backup = nat_engine();
    let mut r = record(rvs_sync::F_MASQ, 1, RPORT);
    r.vport = 443;
    assert_eq!(
        backup.sync_import(Millis(0), &r),
        Err(SyncImportError::NoService)
    );
    let mut r = record(rvs_sync::F_MASQ, 1, RPORT);
    r.addrs = SyncAddrs::V4 {
        caddr: CLIENT4.into(),
        vaddr: VIP4.into(),
        daddr: [192, 168, 99, 99].into(),
    };
    assert_eq!(
        backup.sync_import(Millis(0), &r),
        Err(SyncImportError::NoDestination)
    );
    let c = backup.sync_counters();
    assert_eq!((c.no_service, c.no_destination, c.imported), (1, 1, 0));
    assert!(backup.connections(Millis(0)).is_empty());
}

#[test]
fn export_then_import_round_trip() {
    let master = nat_engine();
    master.set_sync_export(true);
    established_on(&master);
    let backup = nat_engine();
    for m in rvs_sync::pack(&master.sync_snapshot(Millis(1000)), 1, 1472) {
        let Ok(rvs_sync::Message::Conns { conns, .. }) = rvs_sync::parse(&m, 1) else {
            panic!("parse")
        };
        for c in conns {
            backup.sync_import(Millis(1000), &c).expect("import");
        }
    }
    let a = master.connections(Millis(1000));
    let b = backup.connections(Millis(1000));
    assert_eq!(a.len(), b.len());
    assert_eq!(
        (a[0].client, a[0].dest, a[0].state),
        (b[0].client, b[0].dest, b[0].state)
    );
}

const LIP4: [u8; 4] = [192, 168, 7, 201];

fn fullnat_engine() -> Engine {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    let mut spec = svc(k, SchedulerKind::Rr);
    spec.local_addrs = vec![ip4(LIP4)];
    e.add_service(spec).expect("service");
    let mut d = dest(ip4(RIP4), RPORT, 1);
    d.method = ForwardMethod::FullNat;
    e.add_dest(&k, d).expect("dest");
    e
}

/// Two engines (two directors, each with its own random hash seed) agree on the shard of every
/// flow, so every FULLNAT connection the master made imports on the backup, and the real
/// server's replies to the local address and port reach the client through the backup.
#[test]
fn imported_fullnat_connections_fit_the_backups_shards() {
    let master = fullnat_engine();
    master.set_sync_export(true);
    for cport in 40_000..40_064 {
        for (f, payload) in [(SYN, &b""[..]), (ACK, &b""[..]), (ACK, &b"GET /"[..])] {
            let mut p = tcp4(CLIENT4, cport, VIP4, VPORT, 64, f, payload);
            run(&master, 1000, &mut p);
        }
    }
    let table = master.sync_snapshot(Millis(1000));
    assert_eq!(table.len(), 64);
    let backup = fullnat_engine();
    for m in rvs_sync::pack(&table, 1, 1472) {
        let Ok(rvs_sync::Message::Conns { conns, .. }) = rvs_sync::parse(&m, 1) else {
            panic!("parse")
        };
        for c in conns {
            assert!(c.fnat_local.is_some(), "{c:?}");
            backup.sync_import(Millis(1000), &c).expect("import");
        }
    }
    assert_eq!(backup.sync_counters().imported, 64);
    assert_eq!(backup.connections(Millis(1000)).len(), 64);
    for rec in &table {
        let local = rec.fnat_local.expect("local address");
        let mut reply = tcp4(RIP4, RPORT, LIP4, local.port(), 64, ACK, b"HTTP/1.0 200");
        assert_eq!(run(&backup, 1001, &mut reply), fwd(ip4(CLIENT4)), "{rec:?}");
        let expect = tcp4(VIP4, VPORT, CLIENT4, rec.cport, 64, ACK, b"HTTP/1.0 200");
        assert_eq!(l3(&reply)[12..24], l3(&expect)[12..24]);
        assert!(checksums_ok(&reply));
    }
}
