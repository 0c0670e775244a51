//! rvsd in keepalived's place (needs root and the rvsd and rvs-lab binaries built): started
//! under the name `keepalived` with the options keepalived's unit and init scripts pass
//! (`--dont-fork -D -l -p PIDFILE -f FILE`), it finds its interfaces itself, writes and removes
//! the pid file, and `-P` / `-C` run only the VRRP instances / only the virtual servers.

mod common;

use std::time::Duration;

use common::*;
use rvs_lab::{wait_for, Director, NatTopology};

fn conf() -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface d0\n  virtual_router_id 51\n  \
         priority 100\n  advert_int 1\n  virtual_ipaddress {{\n    192.168.1.240/24 dev d0\n  }}\n}}\n\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n\
         real_server 10.10.10.2 80 {{\n    weight 1\n  }}\n}}\n"
    )
}

/// Starts rvsd as `keepalived` with `only` (`-P` or `-C`); returns its pid and pid file.
fn start_as_keepalived(topo: &NatTopology, only: &str) -> (u32, std::path::PathBuf) {
    let link = topo.lab.log_dir().join("keepalived");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(rvs_lab::bin_path("rvsd"), &link).expect("symlink");
    let conf = topo
        .lab
        .write_file("keepalived.conf", &conf())
        .expect("conf");
    let pid_file = topo.lab.log_dir().join("keepalived.pid");
    let socket = topo.socket.display().to_string();
    let pid = topo
        .lab
        .spawn(
            "director",
            &[
                &link.display().to_string(),
                "--dont-fork",
                "-D",
                "-l",
                "-p",
                &pid_file.display().to_string(),
                "-f",
                &conf.display().to_string(),
                only,
                "--socket",
                &socket,
            ],
        )
        .expect("start rvsd as keepalived");
    wait_for(Duration::from_secs(15), || {
        topo.rvsadm(&["-L", "-n"]).is_ok_and(|o| o.status.success())
    })
    .expect("its control socket answers");
    (pid, pid_file)
}

#[test]
fn runs_in_keepalived_s_place() {
    let topo = NatTopology::build("askeepalived", 1).expect("build the NAT topology");
    // -P: VRRP alone, on the interfaces it found itself.
    let (pid, pid_file) = start_as_keepalived(&topo, "-P");
    let written = std::fs::read_to_string(&pid_file).expect("the pid file");
    assert_eq!(written.trim(), pid.to_string());
    assert!(
        !adm(&topo, &["-L", "-n"]).contains("TCP"),
        "-P runs no virtual server"
    );
    assert!(adm(&topo, &["--vrrp"]).contains("VI_1"));
    let logs: String = std::fs::read_dir(topo.lab.log_dir())
        .expect("log dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("-keepalived.log"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    assert!(
        logs.contains("every Ethernet interface that is up") && logs.contains("\"d0\""),
        "{logs}"
    );
    topo.lab.kill(pid);
    wait_for(Duration::from_secs(10), || !pid_file.exists()).expect("the pid file removed");
    // -C: the virtual servers alone.
    let (pid, _) = start_as_keepalived(&topo, "-C");
    assert!(adm(&topo, &["-L", "-n"]).contains(&format!("TCP  {VIP}:80")));
    assert!(!adm(&topo, &["--vrrp"]).contains("VI_1"), "-C runs no VRRP");
    topo.lab.kill(pid);
}
