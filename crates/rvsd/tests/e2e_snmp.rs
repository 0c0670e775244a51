//! KEEPALIVED-MIB through net-snmp (needs root, Debian's snmpd and snmp, and the rvsd and
//! rvs-lab binaries built): snmpd runs as AgentX master in the director's namespace, rvsd serves
//! a keepalived.conf with `enable_snmp_keepalived` and `snmp_socket` (a VRRP instance and a NAT
//! virtual_server with TCP_CHECK real servers), and `snmpwalk` reads the VRRP instance, virtual
//! server and real server tables as keepalived's subagent would show them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rvs_lab::NatTopology;

/// KEEPALIVED-MIB's root, numerically (the IETF MIBs it imports are not on a Debian host).
const KEEPALIVED: &str = ".1.3.6.1.4.1.9586.100.5";

fn walk(topo: &NatTopology, subtree: &str) -> String {
    let out = topo
        .lab
        .exec(
            "director",
            &[
                "snmpwalk",
                "-v2c",
                "-c",
                "public",
                "-On",
                "-t",
                "1",
                "-r",
                "1",
                "127.0.0.1:16161",
                subtree,
            ],
        )
        .expect("snmpwalk");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn keepalived_mib_through_snmpd() {
    let topo = NatTopology::build("snmp", 2).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    let dir = topo.lab.log_dir();
    let agentx = dir.join("agentx.sock");
    let snmpd_conf = format!(
        "master agentx\nagentXSocket {}\nagentaddress udp:127.0.0.1:16161\nrocommunity public 127.0.0.1\n",
        agentx.display()
    );
    let snmpd_conf = topo
        .lab
        .write_file("snmpd.conf", &snmpd_conf)
        .expect("conf");
    topo.lab
        .spawn(
            "director",
            &[
                "snmpd",
                "-f",
                "-Lo",
                "-C",
                "-c",
                &snmpd_conf.display().to_string(),
            ],
        )
        .expect("start snmpd");
    let conf = format!(
        "global_defs {{\n  enable_snmp_keepalived\n  snmp_socket unix:{}\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface d0\n  virtual_router_id 51\n  \
         priority 100\n  advert_int 1\n  virtual_ipaddress {{\n    192.168.1.240/24 dev d0\n  }}\n}}\n\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n\
         real_server 10.10.10.2 80 {{\n    weight 1\n    TCP_CHECK {{ connect_timeout 1 }}\n  }}\n\
         real_server 10.10.10.3 80 {{\n    weight 2\n    TCP_CHECK {{ connect_timeout 1 }}\n  }}\n}}\n",
        agentx.display()
    );
    let conf = topo.lab.write_file("rvsd.conf", &conf).expect("conf");
    topo.start_rvsd(&["-f", &conf.display().to_string()])
        .expect("start rvsd");
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 3);
    assert_eq!(tally(&answers).values().sum::<usize>(), 3, "{answers:?}");
    // The subagent registers once snmpd listens (it retries every 5 s); VRRP becomes MASTER.
    let vrrp_state = format!("{KEEPALIVED}.2.3.1.4.1 = INTEGER: 2");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut vrrp = String::new();
    while Instant::now() < deadline {
        vrrp = walk(&topo, &format!("{KEEPALIVED}.2"));
        if vrrp.contains(&vrrp_state) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(vrrp.contains(&vrrp_state), "{vrrp}");
    assert!(
        vrrp.contains(&format!("{KEEPALIVED}.2.3.1.2.1 = STRING: \"VI_1\"")),
        "{vrrp}"
    );
    assert!(
        vrrp.contains(&format!("{KEEPALIVED}.2.3.1.3.1 = Gauge32: 51")),
        "{vrrp}"
    );
    let vs = walk(&topo, &format!("{KEEPALIVED}.3.3"));
    for line in [
        // The virtual server: ip(2), 192.168.1.253:80, tcp(1), rr(1), nat(1), alive(1), 2 servers.
        format!("{KEEPALIVED}.3.3.1.2.1 = INTEGER: 2"),
        format!("{KEEPALIVED}.3.3.1.6.1 = Hex-STRING: C0 A8 01 FD"),
        format!("{KEEPALIVED}.3.3.1.7.1 = Gauge32: 80"),
        format!("{KEEPALIVED}.3.3.1.8.1 = INTEGER: 1"),
        format!("{KEEPALIVED}.3.3.1.9.1 = INTEGER: 1"),
        format!("{KEEPALIVED}.3.3.1.11.1 = INTEGER: 1"),
        format!("{KEEPALIVED}.3.3.1.20.1 = Gauge32: 2"),
    ] {
        assert!(vs.contains(&line), "{line} missing:\n{vs}");
    }
    let conns: u64 = vs
        .lines()
        .find(|l| l.starts_with(&format!("{KEEPALIVED}.3.3.1.38.1 = ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("virtualServerStatsConns64");
    assert!(conns >= 3, "{vs}");
    let rs = walk(&topo, &format!("{KEEPALIVED}.3.4"));
    for line in [
        format!("{KEEPALIVED}.3.4.1.4.1.1 = Hex-STRING: 0A 0A 0A 02"),
        format!("{KEEPALIVED}.3.4.1.4.1.2 = Hex-STRING: 0A 0A 0A 03"),
        format!("{KEEPALIVED}.3.4.1.6.1.1 = INTEGER: 1"),
        format!("{KEEPALIVED}.3.4.1.7.1.2 = INTEGER: 2"),
    ] {
        assert!(rs.contains(&line), "{line} missing:\n{rs}");
    }
}
