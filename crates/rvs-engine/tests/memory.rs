//! Memory per connection, computed from the table's capacities (issue 13's target: at most
//! 128 bytes).

mod common;

use common::*;
use rvs_engine::*;

#[test]
fn at_most_128_bytes_per_connection() {
    const N: u32 = 100_000;
    let e = Engine::new(EngineConfig {
        expected_connections: N as usize,
        shards: 64,
        ..EngineConfig::default()
    });
    let k = key(Protocol::Udp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("svc");
    e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).expect("dest");
    let template = udp4([0; 4], 0, VIP4, VPORT, 64, b"");
    let mut f = template.clone();
    for i in 0..N {
        f.copy_from_slice(&template);
        f[26..30].copy_from_slice(&[100, 64, (i >> 8) as u8, i as u8]);
        f[34..36].copy_from_slice(&((i >> 16) as u16 + 1000).to_be_bytes());
        assert!(matches!(run(&e, 0, &mut f), Verdict::Forward { .. }));
    }
    assert_eq!(e.connection_count(), N as usize);
    let per = e.table_memory_bytes() as f64 / N as f64;
    println!("{per:.1} bytes per connection");
    assert!(per <= 128.0, "{per} bytes per connection");
}
