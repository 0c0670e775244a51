//! `-h` and `-v` texts.
//!
//! Run under the name `ipvsadm` (a link or the `ipvsadm` binary), rvsadm prints ipvsadm 1.31's
//! own texts: its `-v` line and its usage with the program name as invoked (`argv[0]`, as
//! ipvsadm's `usage_exit` prints it). Under any other name it prints rvsadm's version and the
//! usage with rvs's extensions.

use std::path::Path;

/// The line ipvsadm 1.31's `-v` prints (`version()`: version, date, option parser and the IPVS
/// version it was compiled with), which scripts read.
pub const IPVSADM_VERSION_LINE: &str =
    "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n";

/// Whether `program` (`argv[0]`) names ipvsadm: its file name is `ipvsadm`.
pub fn is_ipvsadm(program: &str) -> bool {
    Path::new(program).file_name().and_then(|n| n.to_str()) == Some("ipvsadm")
}

/// `rvsadm -v`.
pub fn version() -> String {
    version_as("rvsadm")
}

/// `-v` as `program`: ipvsadm's line under the name ipvsadm, else rvsadm's version.
pub fn version_as(program: &str) -> String {
    if is_ipvsadm(program) {
        return IPVSADM_VERSION_LINE.to_string();
    }
    format!(
        "rvsadm {} (ipvsadm 1.31 compatible)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `rvsadm -h`: ipvsadm 1.31's usage text for rvsadm, plus the `--socket` option and rvs's
/// extension commands.
pub fn usage() -> String {
    usage_as("rvsadm")
}

/// `-h` as `program`: ipvsadm 1.31's usage text with `program` in its usage lines; under a
/// name other than ipvsadm also rvs's extension commands and options.
pub fn usage_as(program: &str) -> String {
    let p = program;
    let ipvsadm = is_ipvsadm(program);
    let mut out = version_as(program);
    out.push_str("Usage:\n");
    let extensions: &[&str] = if ipvsadm {
        &[]
    } else {
        &[
            "--counters",
            "--add-mark|--del-mark -t|-u addr[/prefix]:port[-port] --mark N",
            "--list-marks",
            "--set-policy name=value",
            "--list-policy",
            "--reload",
            "--health",
            "--vrrp",
            "--bfd",
        ]
    };
    let base = [
        "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]",
        "-D virtual-service",
        "-C",
        "-R",
        "-S [-n]",
        "-a|e virtual-service -r server-address [options]",
        "-d virtual-service -r server-address",
        "-L|l [virtual-service] [options]",
        "-Z [virtual-service]",
        "--set tcp tcpfin udp",
        "--start-daemon {master|backup} [daemon-options]",
        "--stop-daemon {master|backup}",
    ];
    for line in base.iter().chain(extensions).chain(&["-h"]) {
        out.push_str(&format!("  {p} {line}\n"));
    }
    out.push('\n');
    out.push_str(concat!(
        "Commands:\n",
        "Either long or short options are allowed.\n",
        "  --add-service     -A        add virtual service with options\n",
        "  --edit-service    -E        edit virtual service with options\n",
        "  --delete-service  -D        delete virtual service\n",
        "  --clear           -C        clear the whole table\n",
        "  --restore         -R        restore rules from stdin\n",
        "  --save            -S        save rules to stdout\n",
        "  --add-server      -a        add real server with options\n",
        "  --edit-server     -e        edit real server with options\n",
        "  --delete-server   -d        delete real server\n",
        "  --list            -L|-l     list the table\n",
        "  --zero            -Z        zero counters in a service or all services\n",
        "  --set tcp tcpfin udp        set connection timeout values\n",
        "  --start-daemon              start connection sync daemon\n",
        "  --stop-daemon               stop connection sync daemon\n",
        "  --help            -h        display this help message\n\n",
        "virtual-service:\n",
        "  --tcp-service|-t  service-address   service-address is host[:port]\n",
        "  --udp-service|-u  service-address   service-address is host[:port]\n",
        "  --sctp-service    service-address   service-address is host[:port]\n",
        "  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n",
        "\n",
        "Options:\n",
        "  --ipv6         -6                   fwmark entry uses IPv6\n",
        "  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,\n",
        "                                      the default scheduler is wlc.\n",
        "  --pe            engine              alternate persistence engine may be sip,\n",
        "                                      not set by default.\n",
        "  --persistent   -p [timeout]         persistent service\n",
        "  --netmask      -M netmask           persistent granularity mask\n",
        "  --real-server  -r server-address    server-address is host (and port)\n",
        "  --gatewaying   -g                   gatewaying (direct routing) (default)\n",
        "  --ipip         -i                   ipip encapsulation (tunneling)\n",
        "  --masquerading -m                   masquerading (NAT)\n",
        "  --tun-type      type                one of ipip|gue|gre,\n",
        "                                      the default tunnel type is ipip.\n",
        "  --tun-port      port                tunnel destination port\n",
        "  --tun-nocsum                        tunnel encapsulation without checksum\n",
        "  --tun-csum                          tunnel encapsulation with checksum\n",
        "  --tun-remcsum                       tunnel encapsulation with remote checksum\n",
        "  --weight       -w weight            capacity of real server\n",
        "  --u-threshold  -x uthreshold        upper threshold of connections\n",
        "  --l-threshold  -y lthreshold        lower threshold of connections\n",
        "  --connection   -c                   output of current IPVS connections\n",
        "  --timeout                           output of timeout (tcp tcpfin udp)\n",
        "  --daemon                            output of daemon information\n",
        "  --stats                             output of statistics information\n",
        "  --rate                              output of rate information\n",
        "  --exact                             expand numbers (display exact values)\n",
        "  --thresholds                        output of thresholds information\n",
        "  --persistent-conn                   output of persistent connection info\n",
        "  --tun-info                          output of tunnel information\n",
        "  --nosort                            disable sorting output of service/server entries\n",
        "  --sort                              does nothing, for backwards compatibility\n",
        "  --ops          -o                   one-packet scheduling\n",
        "  --numeric      -n                   numeric output of addresses and ports\n",
        "  --sched-flags  -b flags             scheduler flags (comma-separated)\n",
        "Daemon Options:\n",
        "  --syncid sid                        syncid for connection sync (default=255)\n",
        "  --sync-maxlen length                Max sync message length (default=1472)\n",
        "  --mcast-interface interface         multicast interface for connection sync\n",
        "  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n",
        "  --mcast-port port                   UDP port (default=8848)\n",
        "  --mcast-ttl ttl                     Multicast TTL (default=1)\n",
    ));
    if ipvsadm {
        return out;
    }
    out.push_str(concat!(
        "rvsadm Options:\n",
        "  --socket PATH                       rvsd control socket (default $RVS_SOCKET,\n",
        "                                      else /run/rvs/rvsd.sock)\n",
        "rvs extensions (not in ipvsadm; long options only):\n",
        "  --reload                            re-read rvsd's keepalived.conf (rvsd -f); a\n",
        "                                      broken file changes nothing and fails\n",
        "  --health                            real servers' health checks: state, applied\n",
        "                                      weight, each checker's last result, age, failures\n",
        "  --vrrp                              VRRP instances: state, priority, master, VIPs\n",
        "  --bfd                               BFD sessions (bfd_instance): state, neighbour,\n",
        "                                      discriminators, timers in force\n",
        "  --counters                          print rvsd's packet counters (connections,\n",
        "                                      drops by reason, egress outcomes)\n",
        "  --fullnat                           FULLNAT forwarding (-a/-e): client->VIP becomes\n",
        "                                      LIP:lport->RIP:rport, shown as FullNat\n",
        "  --laddr addr[,addr...]              FULLNAT local address pool (-A/-E), director\n",
        "                                      addresses of the service's family\n",
        "  --proxy-protocol v1|v2              send the client address to FULLNAT real\n",
        "                                      servers as a PROXY protocol header (-A/-E, TCP)\n",
        "  --add-mark -t|-u|--sctp-service addr[/prefix]:port[-port] --mark N\n",
        "                                      classifier rule (rvs cannot see kernel marks):\n",
        "                                      such packets go to the -f N service; IPv6\n",
        "                                      addresses in brackets; first match wins\n",
        "  --del-mark -t|-u ... --mark N       remove a classifier rule\n",
        "  --list-marks                        the rules as --add-mark lines (-S saves them\n",
        "                                      first, -R restores them)\n",
        "  --set-policy name=value             IPVS switch: conn_reuse_mode (0-3, default 1),\n",
        "                                      expire_nodest_conn, expire_quiescent_template,\n",
        "                                      sloppy_tcp, schedule_icmp, sloppy_sctp,\n",
        "                                      the defence drop_entry, drop_packet, secure_tcp\n",
        "                                      (0-3), amemthresh (pages, default 1024),\n",
        "                                      am_droprate (default 10), and rvs's syn_proxy\n",
        "                                      (0|1, default 0)\n",
        "  --list-policy                       the switches, one \"name value\" per line\n",
        "  --doctor                            the classic misconfigurations rvsd sees signs of\n",
    ));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_names_the_rvs_extensions() {
        let text = super::usage();
        assert!(text.contains("  rvsadm --counters\n"));
        assert!(text.contains("rvs extensions"));
        assert!(text.contains("  --counters  "));
        assert!(text.contains("  rvsadm --list-marks\n"));
        assert!(text.contains("  --set-policy name=value  "));
    }

    #[test]
    fn as_ipvsadm_ipvsadms_own_texts() {
        assert_eq!(
            super::version_as("/sbin/ipvsadm"),
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
        );
        let text = super::usage_as("/sbin/ipvsadm");
        assert!(text.starts_with(
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  /sbin/ipvsadm -A|E virtual-service"
        ));
        assert!(
            text.contains("  /sbin/ipvsadm --stop-daemon {master|backup}\n  /sbin/ipvsadm -h\n\n")
        );
        assert!(text.ends_with("  --mcast-ttl ttl                     Multicast TTL (default=1)\n"));
        assert!(!text.contains("rvs"));
        assert!(super::version_as("rvsadm").starts_with("rvsadm "));
    }
}
