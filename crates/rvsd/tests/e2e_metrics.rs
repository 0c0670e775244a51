//! rvsd's web side end to end, over veth (needs root, Debian's prometheus and chromium, curl, and the rvsd
//! and rvs-lab binaries built): rvsd runs a keepalived.conf with a NAT virtual_server (TCP_CHECK
//! real servers) and a VRRP instance, and `--web-listen`; after HTTP traffic through the VIP,
//! `/metrics` has node_exporter's IPVS series with its labels, the keepalived exporters' VRRP
//! series, health checks and rvs's own; the JSON API agrees with rvsadm; the dashboard, loaded
//! in headless Chromium, shows the real servers and the VRRP instance and redraws itself; and a
//! real Prometheus server scraping rvsd answers queries of them through its HTTP API. The BPF plane's counts
//! show the same way.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use rvs_lab::NatTopology;

/// Where rvsd serves, in the director's namespace.
const WEB: &str = "127.0.0.1:9180";
/// Where the Prometheus server listens, in the director's namespace.
const PROM: &str = "127.0.0.1:9190";
/// The VRRP instance's address (on the client side).
const VRRP_VIP: &str = "192.168.1.240";

fn conf() -> String {
    format!(
        "vrrp_script chk_true {{\n  script \"/bin/true\"\n  interval 1\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface d0\n  virtual_router_id 51\n  \
         priority 100\n  advert_int 1\n  virtual_ipaddress {{\n    {VRRP_VIP}/24 dev d0\n  }}\n  \
         track_script {{\n    chk_true\n  }}\n}}\n\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n\
         real_server 10.10.10.2 80 {{\n    weight 1\n    TCP_CHECK {{ connect_timeout 1 }}\n  }}\n\
         real_server 10.10.10.3 80 {{\n    weight 2\n    TCP_CHECK {{ connect_timeout 1 }}\n  }}\n}}\n"
    )
}

/// `GET http://WEB{path}` from the director's namespace.
fn get(topo: &NatTopology, url: &str) -> String {
    let out = topo
        .lab
        .exec_ok("director", &["curl", "-s", "--max-time", "5", url])
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The samples of `/metrics`: `name{labels}` to value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Polls `ok` on the samples of `/metrics` for up to `limit`; returns the last samples.
fn wait_metrics(
    topo: &NatTopology,
    limit: Duration,
    ok: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + limit;
    loop {
        let s = samples(&get(topo, &format!("http://{WEB}/metrics")));
        if ok(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn backend(name: &str, rip: &str) -> String {
    format!(
        "{name}{{local_address=\"{VIP}\",local_port=\"80\",remote_address=\"{rip}\",\
         remote_port=\"80\",proto=\"TCP\",local_mark=\"\"}}"
    )
}

#[test]
fn a_metrics_json_and_a_real_prometheus() {
    let topo = NatTopology::build("metrics", 2).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    let conf = topo.lab.write_file("rvsd.conf", &conf()).expect("conf");
    let conf = conf.display().to_string();
    topo.start_rvsd(&["-f", &conf, "--web-listen", WEB])
        .expect("start rvsd");
    // The checkers bring the real servers in; then traffic.
    let s = wait_metrics(&topo, Duration::from_secs(20), |s| {
        s.get(&backend("node_ipvs_backend_weight", "10.10.10.3")) == Some(&2.0)
            && s.get("keepalived_vrrp_state{iname=\"VI_1\",intf=\"d0\",vrid=\"51\",ip_address=\"192.168.1.240/24\"}")
                == Some(&2.0)
    });
    assert_eq!(
        s.get(&backend("node_ipvs_backend_weight", "10.10.10.2")),
        Some(&1.0),
        "{s:?}"
    );
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 6);
    assert_eq!(tally(&answers).values().sum::<usize>(), 6, "{answers:?}");
    let s = wait_metrics(&topo, Duration::from_secs(5), |s| {
        s.get("node_ipvs_connections_total") >= Some(&6.0)
    });
    assert!(s["node_ipvs_connections_total"] >= 6.0, "{s:?}");
    assert!(s["node_ipvs_incoming_packets_total"] > 6.0, "{s:?}");
    assert!(s["node_ipvs_outgoing_bytes_total"] > 0.0, "{s:?}");
    let inactive: f64 = ["10.10.10.2", "10.10.10.3"]
        .iter()
        .map(|rip| s[&backend("node_ipvs_backend_connections_inactive", rip)])
        .sum();
    assert!(
        inactive >= 1.0,
        "closed connections wait in TIME_WAIT: {s:?}"
    );
    // The keepalived exporters' names for the VRRP instance, which became master once.
    let vrrp = "{iname=\"VI_1\",intf=\"d0\",vrid=\"51\",state=\"MASTER\"}";
    assert_eq!(
        s[&format!("keepalived_become_master_total{vrrp}")],
        1.0,
        "{s:?}"
    );
    assert!(s[&format!("keepalived_advertisements_sent_total{vrrp}")] >= 1.0);
    assert_eq!(s["keepalived_up"], 1.0);
    assert_eq!(
        s["keepalived_script_status{name=\"chk_true\"}"], 1.0,
        "{s:?}"
    );
    // Health checks and rvs's own.
    let alive =
        "rvs_real_server_alive{service=\"TCP 192.168.1.253:80\",real_server=\"10.10.10.3:80\"}";
    assert_eq!(s[alive], 1.0, "{s:?}");
    let latency = s
        .iter()
        .find(|(k, _)| {
            k.starts_with("rvs_healthcheck_latency_microseconds{") && k.contains("10.10.10.3:80")
        })
        .map(|(_, v)| *v);
    assert!(
        latency.is_some_and(|v| v > 0.0),
        "a TCP_CHECK takes time: {s:?}"
    );
    assert_eq!(s["rvs_dataplane{mode=\"packet\"}"], 1.0);
    assert_eq!(s["rvs_dropped_packets_total{reason=\"malformed\"}"], 0.0);
    assert!(
        s["rvs_egress_packets_total{outcome=\"sent\"}"] > 0.0,
        "{s:?}"
    );
    // The JSON API shows what rvsadm shows.
    let services: serde_json::Value =
        serde_json::from_str(&get(&topo, &format!("http://{WEB}/api/v1/services"))).expect("JSON");
    let conns: u64 = services[0]["dests"]
        .as_array()
        .expect("dests")
        .iter()
        .map(|d| d["stats"]["conns"].as_u64().expect("conns"))
        .sum();
    let listing = adm(&topo, &["-L", "-n", "--stats"]);
    let line = listing
        .lines()
        .find(|l| l.starts_with("TCP"))
        .expect("the service line");
    let listed: u64 = line
        .split_whitespace()
        .nth(2)
        .expect("Conns")
        .parse()
        .expect("a number");
    assert_eq!(conns, listed, "{listing}");
    let counters: serde_json::Value =
        serde_json::from_str(&get(&topo, &format!("http://{WEB}/api/v1/counters"))).expect("JSON");
    assert!(counters
        .as_array()
        .expect("counters")
        .iter()
        .any(|c| c["name"] == "drop_malformed"));
    let vrrp: serde_json::Value =
        serde_json::from_str(&get(&topo, &format!("http://{WEB}/api/v1/vrrp"))).expect("JSON");
    assert_eq!(vrrp[0]["state"], "MASTER", "{vrrp}");
    // The dashboard, in headless Chromium: the page fetches the JSON API and draws the real
    // servers with weight, health and counts, and the VRRP instance; it redraws every second
    // without a reload (its update count rises within the virtual time given).
    let dom = topo
        .lab
        .exec_ok(
            "director",
            &[
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=4000",
                "--dump-dom",
                &format!("http://{WEB}/"),
            ],
        )
        .expect("chromium");
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    for shown in [
        "<b id=\"dataplane\">packet</b>",
        "TCP 192.168.1.253:80",
        "-&gt; 10.10.10.2:80",
        "-&gt; 10.10.10.3:80",
        "<td class=\"up\">up</td>",
        "VI_1",
        "<td class=\"up\">MASTER</td>",
        "192.168.1.240",
    ] {
        assert!(
            dom.contains(shown),
            "the dashboard does not show {shown:?}:\n{dom}"
        );
    }
    let updates: u32 = dom
        .split("<span id=\"updates\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|n| n.parse().ok())
        .expect("the update count");
    assert!(
        updates >= 2,
        "the page redraws itself: {updates} updates\n{dom}"
    );
    // A real Prometheus scrapes rvsd and answers a query.
    let prom_conf = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rvsd\n    \
         static_configs:\n      - targets: ['{WEB}']\n"
    );
    let prom_conf = topo
        .lab
        .write_file("prometheus.yml", &prom_conf)
        .expect("conf");
    let data = topo.lab.log_dir().join("prometheus-data");
    topo.lab
        .spawn(
            "director",
            &[
                "prometheus",
                &format!("--config.file={}", prom_conf.display()),
                &format!("--storage.tsdb.path={}", data.display()),
                &format!("--web.listen-address={PROM}"),
            ],
        )
        .expect("start prometheus");
    // Until Prometheus listens, curl fails: that is "no answer yet".
    let query = |q: &str| -> Option<f64> {
        let url = format!("http://{PROM}/api/v1/query?query={q}");
        let out = topo
            .lab
            .exec("director", &["curl", "-s", "--max-time", "5", &url])
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = query("node_ipvs_connections_total");
        if seen.is_some_and(|v| v >= 6.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(seen.is_some_and(|v| v >= 6.0), "Prometheus saw {seen:?}");
    let weights = query("sum(node_ipvs_backend_weight)");
    assert_eq!(weights, Some(3.0));
    let state = query("keepalived_vrrp_state");
    assert_eq!(state, Some(2.0));
}

#[test]
fn b_the_bpf_planes_counts_in_metrics() {
    let fs = Bpffs::mount("metrics");
    let mut args = bpf_args(&fs.pins());
    args.extend(["--web-listen".to_string(), WEB.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let topo = NatTopology::build("metricsbpf", 2).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    topo.start_rvsd(&args).expect("start rvsd");
    add_rr_service(&topo, "rr");
    let answers = curl_many(&topo, &format!("http://{VIP}/"), 4);
    assert_eq!(tally(&answers).values().sum::<usize>(), 4, "{answers:?}");
    let s = wait_metrics(&topo, Duration::from_secs(10), |s| {
        s.get("node_ipvs_connections_total") >= Some(&4.0)
    });
    assert_eq!(s["rvs_dataplane{mode=\"tc\"}"], 1.0, "{s:?}");
    assert!(s["node_ipvs_connections_total"] >= 4.0, "{s:?}");
    let held: f64 = ["10.10.10.2", "10.10.10.3"]
        .iter()
        .map(|rip| {
            s[&backend("node_ipvs_backend_connections_active", rip)]
                + s[&backend("node_ipvs_backend_connections_inactive", rip)]
        })
        .sum();
    assert!(held >= 1.0, "the program's connections are counted: {s:?}");
}
