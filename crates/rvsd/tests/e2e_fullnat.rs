//! End-to-end tests of FULLNAT (`--fullnat`, `--laddr`, `--proxy-protocol`) through the real rvsd
//! and rvsadm. The topology is seed 004's, but the real servers (10.10.10.2, .3) have no default
//! route: they can only answer the director's local addresses 10.10.10.101 / .102, which proves
//! both addresses are rewritten. Root needed; every topology is torn down by its guard.

mod common;

use common::*;
use rvs_lab::FullNatTopology;

const MB: usize = 1 << 20;

fn fullnat_director(tag: &str) -> FullNatTopology {
    fullnat_director_with(tag, &[])
}

fn fullnat_director_with(tag: &str, rvsd_args: &[String]) -> FullNatTopology {
    let topo = FullNatTopology::build(tag, 2).expect("build the FULLNAT topology");
    topo.nat
        .start_real_servers()
        .expect("start the real servers");
    let args: Vec<&str> = rvsd_args.iter().map(String::as_str).collect();
    topo.nat.start_rvsd(&args).expect("start rvsd");
    topo
}

/// `-A` with the local pool, then both real servers on port `rport` with `--fullnat`.
fn add_fullnat_service(topo: &FullNatTopology, vip: &str, v6: bool, rport: u16, extra: &[&str]) {
    let laddr = topo.laddr_arg(v6);
    let mut args = vec!["-A", "-t", vip, "-s", "rr", "--laddr", laddr.as_str()];
    args.extend_from_slice(extra);
    adm(topo, &args);
    let rips: Vec<String> = if v6 {
        topo.nat
            .rips6
            .iter()
            .map(|r| format!("[{r}]:{rport}"))
            .collect()
    } else {
        topo.nat
            .rips4
            .iter()
            .map(|r| format!("{r}:{rport}"))
            .collect()
    };
    for rip in &rips {
        adm(topo, &["-a", "-t", vip, "-r", rip, "--fullnat"]);
    }
}

fn whoami_ip(answer: &str) -> String {
    let (ip, _port) = answer.rsplit_once(':').unwrap_or((answer, ""));
    ip.trim_start_matches('[').trim_end_matches(']').to_owned()
}

#[test]
fn a_fullnat_v4_rr_snat_bulk_listing_and_save_restore() {
    let topo = fullnat_director("fnat4");
    // Without a pool a FULLNAT real server is refused, clearly.
    adm(&topo, &["-A", "-t", &format!("{VIP}:81"), "-s", "rr"]);
    let (_, err) = adm_err(
        &topo,
        &[
            "-a",
            "-t",
            &format!("{VIP}:81"),
            "-r",
            "10.10.10.2:80",
            "--fullnat",
        ],
    );
    assert!(err.contains("--laddr"), "{err}");
    adm(&topo, &["-D", "-t", &format!("{VIP}:81")]);
    // Mixing families is refused.
    let (_, err) = adm_err(
        &topo,
        &[
            "-A",
            "-t",
            &format!("{VIP}:82"),
            "--laddr",
            "2001:db8:10::101",
        ],
    );
    assert!(err.contains("family"), "{err}");

    let vip = format!("{VIP}:80");
    add_fullnat_service(&topo, &vip, false, 80, &[]);

    let texts: Vec<String> = (0..10)
        .map(|_| curl(&topo, &format!("http://{VIP}/")))
        .collect();
    let peers: Vec<String> = (0..4)
        .map(|_| whoami_ip(&curl(&topo, &format!("http://{VIP}/whoami"))))
        .collect();
    for p in &peers {
        assert!(
            topo.lips4.iter().any(|l| l.to_string() == *p),
            "the real server must see a local address, saw {p} ({peers:?})"
        );
    }
    let counts = tally(&texts);
    assert_eq!(counts.get("hello,10.10.10.2"), Some(&5), "{texts:?}");
    assert_eq!(counts.get("hello,10.10.10.3"), Some(&5), "{texts:?}");

    // 1 MB each way, intact.
    assert_download_intact(&topo, &format!("http://{VIP}"), MB);
    assert_upload_intact(&topo, &format!("http://{VIP}"));

    let listing = adm(&topo, &["-Ln"]);
    for rip in ["10.10.10.2:80", "10.10.10.3:80"] {
        let line = listing
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("-> {rip}")))
            .unwrap_or_else(|| panic!("{rip} not listed:\n{listing}"));
        assert_eq!(line.split_whitespace().nth(2), Some("FullNat"), "{listing}");
    }
    let conns = adm(&topo, &["-Lnc"]);
    assert!(
        conns.contains(&format!("{}", topo.nat.client4)) && conns.contains(&vip),
        "{conns}"
    );
    let stats = adm(&topo, &["-Ln", "--stats"]);
    assert!(stats.contains(&format!("TCP  {vip}")), "{stats}");

    // -S -> -C -> -R keeps method, pool and PROXY protocol.
    adm(
        &topo,
        &[
            "-E",
            "-t",
            &vip,
            "-s",
            "rr",
            "--laddr",
            &topo.laddr_arg(false),
            "--proxy-protocol",
            "v2",
        ],
    );
    let saved = adm(&topo, &["-Sn"]);
    assert!(
        saved.contains(&format!(
            "-A -t {vip} -s rr --laddr 10.10.10.101,10.10.10.102 --proxy-protocol v2"
        )),
        "{saved}"
    );
    assert!(
        saved.contains(&format!("-a -t {vip} -r 10.10.10.2:80 --fullnat -w 1")),
        "{saved}"
    );
    adm(&topo, &["-C"]);
    restore(&topo, &saved);
    assert_eq!(adm(&topo, &["-Sn"]), saved);
}

#[test]
fn b_fullnat_v6() {
    let topo = fullnat_director("fnat6");
    let vip = format!("[{}]:80", topo.nat.vip6);
    add_fullnat_service(&topo, &vip, true, 80, &[]);
    let mut peers = Vec::new();
    for _ in 0..4 {
        peers.push(whoami_ip(&curl(&topo, &format!("http://{vip}/whoami"))));
    }
    for p in &peers {
        assert!(
            topo.lips6.iter().any(|l| l.to_string() == *p),
            "the real server must see a local address, saw {p} ({peers:?})"
        );
    }
    assert_download_intact(&topo, &format!("http://{vip}"), MB);
    assert_upload_intact(&topo, &format!("http://{vip}"));
}

/// FULLNAT in the BPF program (`--dataplane tc`), IPv4 and IPv6: the real servers see the
/// local addresses, bulk transfers both ways are intact, and the program (not rvsd's engine)
/// holds the connections.
#[test]
fn b_fullnat_with_the_bpf_plane() {
    let fs = Bpffs::mount("fnat");
    let topo = fullnat_director_with("fnatbpf", &bpf_args(&fs.pins()));
    for v6 in [false, true] {
        let vip = if v6 {
            format!("[{}]:80", topo.nat.vip6)
        } else {
            format!("{VIP}:80")
        };
        add_fullnat_service(&topo, &vip, v6, 80, &[]);
        std::thread::sleep(std::time::Duration::from_millis(300));
        for _ in 0..4 {
            let peer = whoami_ip(&curl(&topo, &format!("http://{vip}/whoami")));
            let local = if v6 {
                topo.lips6.iter().any(|l| l.to_string() == peer)
            } else {
                topo.lips4.iter().any(|l| l.to_string() == peer)
            };
            assert!(
                local,
                "the real server must see a local address, saw {peer}"
            );
        }
        assert_download_intact(&topo, &format!("http://{vip}"), MB);
        assert_upload_intact(&topo, &format!("http://{vip}"));
    }
    assert!(
        pinned_connections(&fs.pins()) >= 12,
        "the program holds the connections"
    );
}

/// nginx behind a `--proxy-protocol` FULLNAT service: it learns the client's address from the
/// header while the TCP peer is a local address, and bulk transfers both ways stay intact
/// (the sequence and acknowledgement shifting is right).
fn proxy_protocol_with_nginx(tag: &str, version: &str, v6: bool) {
    let topo = FullNatTopology::build(tag, 2).expect("build the FULLNAT topology");
    topo.start_nginx().expect("start nginx");
    topo.nat.start_rvsd(&[]).expect("start rvsd");
    let port = rvs_lab::NGINX_PORT;
    let (vip, client, lips): (String, String, Vec<String>) = if v6 {
        (
            format!("[{}]:{port}", topo.nat.vip6),
            topo.nat.client6.to_string(),
            topo.lips6.iter().map(|l| l.to_string()).collect(),
        )
    } else {
        (
            format!("{VIP}:{port}"),
            topo.nat.client4.to_string(),
            topo.lips4.iter().map(|l| l.to_string()).collect(),
        )
    };
    add_fullnat_service(&topo, &vip, v6, port, &["--proxy-protocol", version]);
    for _ in 0..4 {
        let answer = curl(&topo, &format!("http://{vip}/addr"));
        let mut words = answer.split_whitespace();
        assert_eq!(words.next(), Some(client.as_str()), "{answer}");
        let remote = words.next().unwrap_or_default().to_owned();
        assert!(
            lips.contains(&remote),
            "TCP peer {remote} is not a local address"
        );
    }
    let got = client_sh(
        &topo,
        &format!("curl -s --max-time 30 http://{vip}/big | sha256sum | cut -d' ' -f1"),
    );
    assert_eq!(
        got.first().map(String::as_str),
        Some(rvs_lab::pattern_sha256(rvs_lab::NGINX_BIG_LEN).as_str()),
        "downloaded bytes differ"
    );
    let sent = client_sh(
        &topo,
        &format!(
            "f=$(mktemp) && head -c {MB} /dev/urandom > $f && sha256sum $f | cut -d' ' -f1 && \
             curl -s --max-time 30 -o /dev/null -w '%{{http_code}}\\n' -T $f http://{vip}/up/blob; rm -f $f"
        ),
    );
    assert!(
        sent.get(1).is_some_and(|c| c.starts_with('2')),
        "PUT failed: {sent:?}"
    );
    let stored: Vec<String> = (0..2)
        .filter_map(|i| std::fs::read(topo.nginx_root(i).join("up/blob")).ok())
        .map(|b| rvs_lab::sha256_hex(&b))
        .collect();
    assert_eq!(stored, vec![sent[0].clone()], "uploaded bytes differ");
}

#[test]
fn c_proxy_protocol_v2_nginx() {
    proxy_protocol_with_nginx("fnpp2", "v2", false);
}

#[test]
fn c_proxy_protocol_v1_nginx() {
    proxy_protocol_with_nginx("fnpp1", "v1", false);
}

#[test]
fn c_proxy_protocol_v2_nginx_v6() {
    proxy_protocol_with_nginx("fnpp6", "v2", true);
}
