//! The connection table's bound through the real rvsd (`--max-connections`): new connections
//! beyond it are dropped and counted (`drop_table_full` in `rvsadm --counters`), the table never
//! holds more, and a connection already in it carries on. Root required; the topology guard
//! tears the namespaces and rvsd down.

mod common;

use common::*;
use rvs_lab::NatTopology;

/// The bound asked for; rvsd's engine spreads it over its 64 shards (one connection each).
const MAX: u64 = 64;

#[test]
fn max_connections_bounds_the_table() {
    let topo = NatTopology::build("limits", 1).expect("topology");
    topo.start_real_servers().expect("real servers");
    topo.start_rvsd(&[
        "--dataplane",
        "packet",
        "--max-connections",
        &MAX.to_string(),
    ])
    .expect("rvsd");
    add_rr_service(&topo, "rr");
    let held = HeldDownload::start(&topo, VIP, 6, "limits");
    // Each finished connection stays in the table in TIME_WAIT (2 minutes): the table fills.
    let codes = client_sh(
        &topo,
        &format!(
            "for i in $(seq 120); do curl -s -o /dev/null -w '%{{http_code}}\\n' \
             --connect-timeout 0.3 http://{VIP}/; done"
        ),
    );
    let ok = codes.iter().filter(|c| *c == "200").count() as u64;
    assert!(ok > 0 && ok < MAX, "{ok} of {} answered", codes.len());
    assert!(counter(&topo, "connections") <= MAX);
    assert!(counter(&topo, "drop_table_full") > 0);
    held.assert_intact("the download that was in the table first");
}
