#!/usr/bin/env bash
# A spoofed SYN flood against a NAT service, side by side in one run: rvsd on its packet path
#   unbounded  without a table bound (as rvsd before --max-connections),
#   bounded    with --max-connections 65536,
#   synproxy   with --max-connections 65536 and the SYN proxy (--syn-proxy 1),
#   synproxy-tc the same with the BPF program at tc (it answers the SYNs with the kernel's cookies,
#               rvsd opens the connections and hands each back to the program once its real
#               server has answered),
#   synproxy-xdp the same at XDP (the lab's veths prepared as XDP on veth needs).
# Each row gets a fresh lab (the demo's:
# client -- director -- switch -- two real servers). hping3 floods from the client namespace
# with random sources and SYNs to the VIP as fast as it can (the lab's line rate); replies go to
# addresses nobody has and stay in the namespaces. Per row: legitimate new connections per
# second (wrk, Connection: close) before and during the flood, keep-alive requests per second
# before and during (connections opened before the flood starts), rvsd's resident memory and the engine's table size at the end of the
# flood, the table_full drops, and the SYN proxy's answered SYNs.
#
#   cargo build --release && sudo bench/synflood.sh [seconds] [rows...]
#
# Installs hping3 when missing. Figures on a shared 2-core machine are noisy: compare within a run.
#
# BENCH_ISOLATE says where the attacker runs:
#   cpu  (default) hping3 on CPU 0, everything legitimate (wrk, the real servers, rvsd) on CPU 1,
#        before and during the flood alike. The flood's packets are then received, and answered or
#        dropped by the director's kernel side, on CPU 0, as on a director whose NIC spreads an
#        attack over other queues than a client's; what rvsd does in userspace runs on CPU 1.
#        So the ratios show what the flood costs the director's legitimate traffic, not what
#        hping3 itself costs a 2-vCPU machine.
#   none   nothing pinned: hping3 takes one of the two vCPUs from everything else.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
isolate=${BENCH_ISOLATE:-cpu}
case $isolate in cpu | none) ;; *) echo "BENCH_ISOLATE is cpu or none" >&2; exit 1 ;; esac
shift $(($# > 0 ? 1 : 0))
rows=("$@")
((${#rows[@]})) || rows=(unbounded bounded synproxy synproxy-tc synproxy-xdp)
bin=${BENCH_BIN:-$PWD/target/release}
[[ -x $bin/rvs-lab && -x $bin/rvsd && -x $bin/rvsadm ]] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in hping3 wrk ethtool; do
  command -v "$tool" >/dev/null || apt-get install -y -qq "$tool" >/dev/null || { echo "$tool missing" >&2; exit 1; }
done

prefix=
socket=
rvsd_pid=
flood_pid=
work=$(mktemp -d)
plane=packet
# The BPF rows' pins: a bpffs of the bench's own (`ip netns exec` hides the host's).
bpffs=$work/bpffs
mkdir -p "$bpffs"
adm() { "$bin/rvsadm" --socket "$socket" "$@"; }

teardown() {
  [[ -n $flood_pid ]] && kill "$flood_pid" 2>/dev/null || true
  flood_pid=
  [[ -n $prefix ]] && "$bin/rvs-lab" down "$prefix" >/dev/null 2>&1 || true
  prefix=
}
trap 'teardown; umount "$bpffs" 2>/dev/null; rm -rf "$work"' EXIT

# XDP on veth: the peers receiving redirected frames need NAPI (GRO on), the senders must send
# complete checksums (tx offload off).
xdp_veths() {
  local ns port
  for ns in client rs1 rs2; do ip netns exec "$prefix-$ns" ethtool -K eth0 tx off gro on >/dev/null; done
  for port in $(ip netns exec "$prefix-switch" ls /sys/class/net); do
    [[ $port == lo ]] && continue
    ip netns exec "$prefix-switch" ethtool -K "$port" tx off gro on >/dev/null 2>&1 || true
  done
}

# The demo's lab with its rvsd replaced by one started with `args`.
setup() { # rvsd args...
  local out pid
  out=$("$bin/rvs-lab" demo --keep)
  prefix=$(sed -n 's/^# lab prefix: //p' <<<"$out")
  socket=$(sed -n 's/^# rvsadm talks to rvsd with: rvsadm --socket \([^ ]*\) .*/\1/p' <<<"$out")
  [[ -n $prefix && -n $socket ]] || { echo "the demo did not say its lab" >&2; exit 1; }
  pid=$(pgrep -f -- "rvsd .*--socket $socket" | head -1 || true)
  [[ -n $pid ]] && kill "$pid"
  for _ in $(seq 50); do [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$socket"
  [[ $plane == xdp ]] && xdp_veths
  ip netns exec "$prefix-director" "$bin/rvsd" --interface d0 --interface d1 --socket "$socket" \
    --dataplane "$plane" "$@" >/dev/null 2>&1 &
  for _ in $(seq 100); do adm -Ln >/dev/null 2>&1 && break; sleep 0.1; done
  rvsd_pid=$(pgrep -f -- "rvsd .*--socket $socket" | head -1)
  adm -A -t 192.168.1.253:80 -s rr
  adm -a -t 192.168.1.253:80 -r 10.10.10.2:80 -m
  adm -a -t 192.168.1.253:80 -r 10.10.10.3:80 -m
  ip netns exec "$prefix-client" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
  if [[ $isolate == cpu ]]; then
    local ns p
    for ns in $(ip netns list | awk -v p="$prefix-" 'index($1, p) == 1 {print $1}'); do
      for p in $(ip netns pids "$ns"); do taskset -a -p -c 1 "$p" >/dev/null 2>&1 || true; done
    done
  fi
}

# Runs its arguments on the legitimate side's CPU (BENCH_ISOLATE=cpu) or anywhere.
legit() { if [[ $isolate == cpu ]]; then taskset -c 1 "$@"; else "$@"; fi; }
attacker() { if [[ $isolate == cpu ]]; then taskset -c 0 "$@"; else "$@"; fi; }
# Frames the director's client-side interface received so far.
rx_frames() { ip netns exec "$prefix-director" cat /sys/class/net/d0/statistics/rx_packets; }

# Requests per second of one wrk run from the client (extra wrk args...).
rate() {
  local out
  out=$(legit ip netns exec "$prefix-client" wrk -t2 -c20 -d"${secs}s" "$@" http://192.168.1.253/ 2>&1 || true)
  awk '/Requests\/sec/ {r = $2} END {print r + 0}' <<<"$out"
}

counter() { adm --counters | awk -v n="$1" '$1 == n {print $2}'; }
# A counter of the BPF program (index into its per-CPU `stats` map, rvs_lb.h's enum rvs_stat),
# summed over the CPUs; 0 on the packet path.
prog_stat() {
  [[ $plane == packet ]] && { echo 0; return; }
  bpftool -j map lookup pinned "$bpffs/rvs/stats" key "$1" 0 0 0 2>/dev/null |
    python3 -c 'import json,sys; v=json.load(sys.stdin); v=v.get("formatted",v); print(sum(x["value"] for x in v["values"]))' 2>/dev/null || echo 0
}
RVS_STAT_SYNPROXY_ANSWERED=12

declare -A res
for row in "${rows[@]}"; do
  plane=packet
  case $row in
    unbounded) setup ;;
    bounded) setup --max-connections 65536 ;;
    synproxy) setup --max-connections 65536 --syn-proxy 1 ;;
    synproxy-tc | synproxy-xdp)
      mountpoint -q "$bpffs" || mount -t bpf bpf "$bpffs"
      plane=${row#synproxy-}
      setup --max-connections 65536 --syn-proxy 1 --bpf-pin-dir "$bpffs/rvs" ;;
    *) echo "unknown row $row" >&2; exit 1 ;;
  esac
  res[$row,new0]=$(rate -H "Connection: close")
  res[$row,ka0]=$(rate)
  # Established connections: a keep-alive run whose connections open before the flood starts
  # and that then runs through it.
  rate >"$work/ka1" &
  ka_pid=$!
  sleep 1
  rx0=$(rx_frames)
  t0=$(date +%s.%N)
  attacker ip netns exec "$prefix-client" hping3 --flood --quiet -S --rand-source -p 80 192.168.1.253 >/dev/null 2>&1 &
  flood_pid=$!
  wait "$ka_pid" || true
  res[$row,ka1]=$(cat "$work/ka1")
  res[$row,new1]=$(rate -H "Connection: close")
  res[$row,pps]=$(awk -v a="$rx0" -v b="$(rx_frames)" -v t0="$t0" -v t1="$(date +%s.%N)" \
    'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }')
  res[$row,rss]=$(awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$rvsd_pid/status")
  res[$row,conns]=$(counter connections)
  res[$row,full]=$(counter drop_table_full)
  res[$row,cookies]=$(( $(counter synproxy_answered) + $(prog_stat $RVS_STAT_SYNPROXY_ANSWERED) ))
  res[$row,handed]=$(counter synproxy_handed_over)
  kill "$flood_pid" 2>/dev/null || true
  flood_pid=
  teardown
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "BENCH_ISOLATE=$isolate"
printf '%-12s | %-10s %-10s %-6s | %-10s %-10s %-6s | %-9s | %-7s %-9s %-10s %-9s %s\n' row "new/s" "flooded" "x" "ka req/s" "flooded" "x" "flood f/s" "RSS MiB" "table" "table_full" "cookies" "handed"
for row in "${rows[@]}"; do
  printf '%-12s | %-10s %-10s %-6s | %-10s %-10s %-6s | %-9s | %-7s %-9s %-10s %-9s %s\n' "$row" \
    "${res[$row,new0]}" "${res[$row,new1]}" "$(ratio "${res[$row,new1]}" "${res[$row,new0]}")" \
    "${res[$row,ka0]}" "${res[$row,ka1]}" "$(ratio "${res[$row,ka1]}" "${res[$row,ka0]}")" \
    "${res[$row,pps]}" "${res[$row,rss]}" "${res[$row,conns]}" "${res[$row,full]}" "${res[$row,cookies]}" "${res[$row,handed]}"
done
echo "(new/s: Connection: close requests per second; ka: keep-alive; flooded: during the SYN flood;"
echo " x: flooded over before; flooded ka: connections opened a second before the flood;"
echo " flood f/s: frames per second the director received from the client side during the flood;"
echo " RSS and table: rvsd's at the end of the flood; cookies: SYNs answered by rvsd and the program;"
echo " handed: proxied connections rvsd handed to the program)"
