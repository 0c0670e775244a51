//! The demo's whole flow against stand-ins for rvsd and rvsadm: the fake rvsd balances with an
//! nftables DNAT round robin (numgen) in the director namespace, the fake rvsadm only echoes.
//! This checks the lab side (topology, real servers, readiness wait, curl, alternation check,
//! teardown) until the real daemon exists.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const FAKE_RVSD: &str = r#"#!/bin/sh
# Stand-in for rvsd: take the socket path, balance 192.168.1.253:80 round robin with nftables.
while [ $# -gt 0 ]; do
  if [ "$1" = "--socket" ]; then SOCKET="$2"; shift; fi
  shift
done
nft -f - <<'NFT' || exit 1
table ip fakervs {
  chain pre {
    type nat hook prerouting priority -100;
    ip daddr 192.168.1.253 tcp dport 80 dnat to numgen inc mod 2 map { 0 : 10.10.10.2, 1 : 10.10.10.3 }
  }
}
NFT
touch "$SOCKET"
trap 'rm -f "$SOCKET"; exit 0' TERM
while true; do sleep 1; done
"#;

const FAKE_RVSADM: &str = r#"#!/bin/sh
# Stand-in for rvsadm: ready when the socket exists; prints its arguments.
[ "$1" = "--socket" ] && [ -e "$2" ] || exit 1
shift 2
echo "fake rvsadm $*"
"#;

fn write_script(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn demo_flow_with_stand_ins() {
    let dir = std::env::temp_dir().join(format!("rvs-lab-fakes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    write_script(&dir, "rvsd", FAKE_RVSD);
    write_script(&dir, "rvsadm", FAKE_RVSADM);
    // The only test in this binary, so no other thread reads the environment meanwhile.
    std::env::set_var("RVS_BIN_DIR", &dir);

    let mut out = Vec::new();
    let result = rvs_lab::demo::run(false, &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(result, Ok(true)), "{result:?}\n{text}");
    assert!(
        text.contains("[root@director ~]# rvsadm -A -t 192.168.1.253:80 -s rr"),
        "{text}"
    );
    assert_eq!(text.matches("hello,10.10.10.2").count(), 3, "{text}");
    assert_eq!(text.matches("hello,10.10.10.3").count(), 3, "{text}");
    assert!(text.contains("# Torn down."), "{text}");
}
