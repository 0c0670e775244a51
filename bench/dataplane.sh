#!/usr/bin/env bash
# The data planes side by side, in one run and one topology (the lab's NAT demo: client --
# director -- switch -- two real servers, nginx on :8081 in each): wrk from the client through
#   kernel   the director's kernel forwarding to one real server (no load balancing; a floor),
#   nft      nftables DNAT (numgen over the two servers) on a second VIP,
#   haproxy  haproxy 'mode tcp' on a third VIP,
#   packet   rvsd's AF_PACKET path (--dataplane packet),
#   tc       rvsd's BPF program at tc ingress (--dataplane tc),
#   xdp      rvsd's BPF program at XDP (--dataplane xdp; the veth peers get GRO, the senders
#            tx checksum offload off, as XDP on veth needs),
# keep-alive and Connection: close, and prints req/s, CPU per request (all of the machine's
# busy time from /proc/stat over the run, divided by the requests: client and real servers
# cost the same in every row, so differences are the director's) and both as ratios against
# nft DNAT, measured in the same run. Every row gets a fresh lab, so none inherits another's
# kernel state (conntrack entries, offload settings).
#
#   cargo build --release && sudo bench/dataplane.sh [seconds] [connections] [rows...]
#
# BENCH_BIN=DIR takes rvsd, rvsadm and rvs-lab from DIR (to compare builds). Installs haproxy and
# ethtool when missing. Figures on a shared 2-core machine are noisy: compare ratios from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-50}
shift $(($# > 2 ? 2 : $#))
rows=("$@")
((${#rows[@]})) || rows=(kernel nft haproxy packet tc xdp)
bin=${BENCH_BIN:-$PWD/target/release}
[[ -x $bin/rvs-lab && -x $bin/rvsd && -x $bin/rvsadm ]] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in haproxy ethtool nginx wrk; do
  command -v "$tool" >/dev/null || apt-get install -y -qq "$tool" >/dev/null || { echo "$tool missing" >&2; exit 1; }
done

work=$(mktemp -d)
bpffs=$work/bpffs
mkdir -p "$bpffs"
mount -t bpf bpf "$bpffs"
prefix=
socket=

in_dir() { ip netns exec "$prefix-director" "$@"; }
adm() { "$bin/rvsadm" --socket "$socket" "$@"; }

stop_rvsd() {
  local pid
  [[ -n $socket ]] || return 0
  pid=$(pgrep -f -- "rvsd .*--socket $socket" | head -1 || true)
  [[ -n $pid ]] || return 0
  kill "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

start_rvsd() { # extra args...
  rm -f "$socket"
  in_dir "$bin/rvsd" --interface d0 --interface d1 --socket "$socket" "$@" >"$work/rvsd.log" 2>&1 &
  for _ in $(seq 100); do adm -Ln >/dev/null 2>&1 && break; sleep 0.1; done
  adm -A -t 192.168.1.253:80 -s rr
  adm -a -t 192.168.1.253:80 -r 10.10.10.2:8081 -m
  adm -a -t 192.168.1.253:80 -r 10.10.10.3:8081 -m
}

nginx_conf() { # real server name
  cat <<CONF
worker_processes 1;
pid $work/nginx-$1/nginx.pid;
error_log /dev/null;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 8081 reuseport backlog=4096; location / { return 200 "hello,$1\n"; } }
}
CONF
}

# The demo's topology, its rvsd stopped, nginx on :8081 in each real server.
setup_lab() {
  local out
  out=$("$bin/rvs-lab" demo --keep)
  prefix=$(sed -n 's/^# lab prefix: //p' <<<"$out")
  [[ -n $prefix ]] || { echo "demo did not report its lab prefix" >&2; echo "$out" >&2; exit 1; }
  socket=$(sed -n 's/^# rvsadm talks to rvsd with: rvsadm --socket \([^ ]*\) .*/\1/p' <<<"$out")
  stop_rvsd
  for ns in rs1 rs2; do
    mkdir -p "$work/nginx-$ns"
    nginx_conf "$ns" >"$work/nginx-$ns/nginx.conf"
    ip netns exec "$prefix-$ns" nginx -c "$work/nginx-$ns/nginx.conf" -p "$work/nginx-$ns"
  done
  # The client may reuse TIME_WAIT ports quickly (Connection: close runs).
  ip netns exec "$prefix-client" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
}

teardown_lab() {
  [[ -n $prefix ]] || return 0
  stop_rvsd || true
  for ns in rs1 rs2; do
    [[ -f $work/nginx-$ns/nginx.pid ]] && kill "$(cat "$work/nginx-$ns/nginx.pid")" 2>/dev/null || true
  done
  [[ -f $work/haproxy.pid ]] && kill "$(cat "$work/haproxy.pid")" 2>/dev/null || true
  rm -f "$work/haproxy.pid"
  "$bin/rvs-lab" down "$prefix" >/dev/null 2>&1 || true
  prefix=
  socket=
}

cleanup() {
  teardown_lab
  umount "$bpffs" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

busy_jiffies() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9}' /proc/stat; }
hz=$(getconf CLK_TCK)

# One wrk run: prints "req/s requests busy_ms".
measure() { # url, extra wrk args...
  local url=$1 b0 b1 report
  shift
  b0=$(busy_jiffies)
  report=$(ip netns exec "$prefix-client" wrk -t2 -c"$conns" -d"${secs}s" "$@" "$url")
  b1=$(busy_jiffies)
  awk -v busy=$(((b1 - b0) * 1000 / hz)) '
    /Requests\/sec/ {rps=$2}
    /requests in/ {n=$1}
    END {print rps, n, busy}' <<<"$report"
}

nft_dnat() {
  in_dir nft -f - <<'NFT'
table ip rvsbench {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 192.168.1.250 tcp dport 80 dnat to numgen inc mod 2 map { 0 : 10.10.10.2, 1 : 10.10.10.3 } : 8081
  }
}
NFT
}

haproxy_conf() {
  cat <<CONF
global
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
listen web
  bind 192.168.1.251:80
  balance roundrobin
  server rs1 10.10.10.2:8081
  server rs2 10.10.10.3:8081
CONF
}

declare -A rps cpu
run_row() { # name
  local name=$1 url mode r rate n busy
  setup_lab
  case $name in
    kernel) url=http://10.10.10.2:8081/ ;;
    nft)
      in_dir ip addr add 192.168.1.250/24 dev d0
      nft_dnat
      url=http://192.168.1.250/
      ;;
    haproxy)
      in_dir ip addr add 192.168.1.251/24 dev d0
      haproxy_conf >"$work/haproxy.cfg"
      in_dir haproxy -D -p "$work/haproxy.pid" -f "$work/haproxy.cfg"
      sleep 0.5
      url=http://192.168.1.251/
      ;;
    packet) start_rvsd --dataplane packet; url=http://192.168.1.253/ ;;
    tc) start_rvsd --dataplane tc --bpf-pin-dir "$bpffs/rvs"; url=http://192.168.1.253/ ;;
    xdp)
      # XDP on veth: the peers receiving redirected frames need NAPI (GRO on), the senders
      # must send complete checksums (tx offload off).
      ip netns exec "$prefix-client" ethtool -K eth0 tx off gro on >/dev/null
      for ns in rs1 rs2; do ip netns exec "$prefix-$ns" ethtool -K eth0 tx off gro on >/dev/null; done
      for port in $(ip netns exec "$prefix-switch" ls /sys/class/net); do
        [[ $port == lo ]] && continue
        ip netns exec "$prefix-switch" ethtool -K "$port" tx off gro on >/dev/null 2>&1 || true
      done
      start_rvsd --dataplane xdp --bpf-pin-dir "$bpffs/rvs"
      url=http://192.168.1.253/
      ;;
    *) echo "unknown row $name" >&2; return 1 ;;
  esac
  # A warm-up, then keep-alive and close.
  ip netns exec "$prefix-client" wrk -t2 -c"$conns" -d2s "$url" >/dev/null
  for mode in keepalive close; do
    local extra=()
    [[ $mode == close ]] && extra=(-H "Connection: close")
    r=$(measure "$url" "${extra[@]}")
    read -r rate n busy <<<"$r"
    rps[$name,$mode]=$rate
    cpu[$name,$mode]=$(awk -v b="$busy" -v n="$n" 'BEGIN { if (n > 0) printf "%.1f", b * 1000 / n; else print "n/a" }')
  done
  teardown_lab
}

for row in "${rows[@]}"; do run_row "$row"; done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "n/a") printf "%.2f", a / b; else print "n/a" }'; }
printf '%-8s | %-10s %-10s %-8s %-8s | %-10s %-10s %-8s %-8s\n' row "ka req/s" "ka us/req" "ka x nft" "cpu x" "cl req/s" "cl us/req" "cl x nft" "cpu x"
for row in "${rows[@]}"; do
  line=$(printf '%-8s |' "$row")
  for mode in keepalive close; do
    r=${rps[$row,$mode]:-0}
    c=${cpu[$row,$mode]:-n/a}
    line+=$(printf ' %-10s %-10s %-8s %-8s |' "$r" "$c" "$(ratio "$r" "${rps[nft,$mode]:-0}")" "$(ratio "$c" "${cpu[nft,$mode]:-0}")")
  done
  echo "${line% |}"
done
echo "(us/req: the whole machine's busy CPU time per request; x nft: ratio against nftables DNAT in this run)"
if [[ -n ${cpu[kernel,keepalive]:-} && -n ${cpu[nft,keepalive]:-} ]]; then
  echo
  echo "The director's share, estimated as the CPU per request above plain kernel forwarding (same"
  echo "client, same real servers), and its ratio against nft DNAT's:"
  printf '%-8s | %-12s %-8s | %-12s %-8s\n' row "ka extra us" "x nft" "cl extra us" "x nft"
  for row in "${rows[@]}"; do
    [[ $row == kernel ]] && continue
    line=$(printf '%-8s |' "$row")
    for mode in keepalive close; do
      e=$(awk -v a="${cpu[$row,$mode]}" -v k="${cpu[kernel,$mode]}" 'BEGIN { printf "%.1f", a - k }')
      n=$(awk -v a="${cpu[nft,$mode]}" -v k="${cpu[kernel,$mode]}" 'BEGIN { printf "%.1f", a - k }')
      line+=$(printf ' %-12s %-8s |' "$e" "$(ratio "$e" "$n")")
    done
    echo "${line% |}"
  done
fi
