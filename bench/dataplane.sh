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
# keep-alive and Connection: close, and prints req/s, the director's CPU per request and both as
# ratios against nft DNAT, measured in the same run. Every row gets a fresh lab, so none
# inherits another's kernel state (conntrack entries, offload settings).
#
# The director's CPU is isolated on the last CPU. Every veth receives through NAPI (GRO on,
# and TSO off on the sending side, which veth needs to use it) polled by a kernel thread of its
# own (threaded NAPI): the director's interfaces' threads are
# pinned to its CPU, every other namespace's to the other CPUs, so all the director's receive
# work (the kernel stack, nftables, the BPF program at tc or XDP) runs on its CPU and the next
# hop's on another, as with a NIC's queues. The director's processes (rvsd, haproxy) are pinned
# to it and the client's and real servers' (wrk, nginx) to the others. Its busy time from
# /proc/stat over a run, divided by the requests, is the director's CPU per request: its kernel
# work and its processes'. The whole machine's busy time per request is printed too. With one
# CPU nothing is isolated and both columns are the machine's.
#
# BENCH_ISOLATE=rps isolates as earlier runs did instead: no NAPI threads, Receive Packet
# Steering sends every packet the director's interfaces receive to its CPU. Each steered batch
# costs an inter-processor interrupt (a VM exit in a virtual machine) charged to the sending
# CPU, which a NIC's own queues do not have; the NAPI threads are woken instead, at most once a
# poll.
#
#   cargo build --release && sudo bench/dataplane.sh [seconds] [connections] [rows...]
#
# BENCH_PERF=1 adds the director's receive-path time per request, sampled by perf (see measure);
# BENCH_PERF_KEEP=DIR keeps each run's perf.data there, in the order the runs were made, and
# BENCH_PERF_CPUS=LIST samples those CPUs instead of the director's alone (perf -C LIST).
# BENCH_RUNS=N runs every row N times, in rounds (each row once per round, so drift over time
# reaches every row alike), prints each round's table and then the median of each ratio.
# BENCH_BIN=DIR takes rvsd, rvsadm and rvs-lab from DIR (to compare builds). Installs haproxy and
# ethtool when missing. Figures on a shared 2-core machine are noisy: compare ratios from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-50}
runs=${BENCH_RUNS:-1}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_RUNS is a count of rounds" >&2; exit 1; }
shift $(($# > 2 ? 2 : $#))
rows=("$@")
((${#rows[@]})) || rows=(kernel nft haproxy packet tc xdp)
bin=${BENCH_BIN:-$PWD/target/release}
[[ -x $bin/rvs-lab && -x $bin/rvsd && -x $bin/rvsadm ]] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in haproxy ethtool nginx wrk; do
  command -v "$tool" >/dev/null || apt-get install -y -qq "$tool" >/dev/null || { echo "$tool missing" >&2; exit 1; }
done

work=$(mktemp -d)
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
# The programs' run-time statistics cost two clock reads per run: on only for a separate short
# run after the measured ones (see run_row), so the measured rows do not pay for them.
sysctl -qw kernel.bpf_stats_enabled=0
bpffs=$work/bpffs
mkdir -p "$bpffs"
mount -t bpf bpf "$bpffs"
prefix=
socket=

ncpu=$(nproc)
dcpu=$((ncpu - 1))                      # the director's CPU
others=$(( (1 << dcpu) - 1 ))           # everyone else's CPUs, as a mask
((ncpu > 1)) || others=1
in_dir() { ip netns exec "$prefix-director" "$@"; }
on_director_cpu() { if ((ncpu > 1)); then taskset -c "$dcpu" "$@"; else "$@"; fi; }
on_other_cpus() { if ((ncpu > 1)); then taskset -c "0-$((dcpu - 1))" "$@"; else "$@"; fi; }

isolation=${BENCH_ISOLATE:-napi}
# Receive Packet Steering: the director's interfaces to its CPU, every other namespace's to the
# other CPUs (a packet the director forwards is then received by its next hop elsewhere).
isolate_rps() {
  local ns mask
  for ns in client switch rs1 rs2 director; do
    mask=$(printf %x "$others")
    [[ $ns == director ]] && mask=$(printf %x $((1 << dcpu)))
    ip netns exec "$prefix-$ns" sh -c "for q in /sys/class/net/*/queues/rx-*; do case \$q in */lo/*) ;; *) echo $mask > \$q/rps_cpus ;; esac; done"
  done
}
# Threaded NAPI: every veth's receive polled by a kernel thread, the director's (d0, d1) on its
# CPU, the others' elsewhere.
isolate_napi() {
  local ns dev tid name
  for ns in client switch rs1 rs2 director; do
    for dev in $(ip netns exec "$prefix-$ns" ls /sys/class/net); do
      # veths only (not the switch's bridge).
      ip netns exec "$prefix-$ns" ethtool -i "$dev" 2>/dev/null | grep -q '^driver: veth' || continue
      # A veth hands a frame to its peer's NAPI only when the sender does no TSO (veth_xmit),
      # else to the sending CPU's backlog.
      ip netns exec "$prefix-$ns" ethtool -K "$dev" gro on tso off >/dev/null
      ip netns exec "$prefix-$ns" sh -c "echo 1 > /sys/class/net/$dev/threaded"
    done
  done
  pin_napi_threads
}
pin_napi_threads() {
  local tid name
  while read -r tid name; do
    case $name in
      napi/d0-*|napi/d1-*) taskset -pc "$dcpu" "$tid" >/dev/null ;;
      napi/*) taskset -pc "0-$((dcpu - 1))" "$tid" >/dev/null ;;
    esac
  done < <(ps -eLo tid=,comm=)
}
isolate() {
  ((ncpu > 1)) || return 0
  case $isolation in
    rps) isolate_rps ;;
    napi) isolate_napi ;;
    *) echo "BENCH_ISOLATE: rps or napi" >&2; exit 1 ;;
  esac
}
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
  in_dir taskset -c "$dcpu" "$bin/rvsd" --interface d0 --interface d1 --socket "$socket" "$@" >"$work/rvsd.log" 2>&1 &
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
    ip netns exec "$prefix-$ns" taskset -c "0-$((dcpu > 0 ? dcpu - 1 : 0))" nginx -c "$work/nginx-$ns/nginx.conf" -p "$work/nginx-$ns"
  done
  isolate
  # The client may reuse TIME_WAIT ports quickly (Connection: close runs).
  ip netns exec "$prefix-client" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
}

teardown_lab() {
  [[ -n $prefix ]] || return 0
  stop_rvsd || true
  # A clean stop removes the pins; a killed rvsd leaves them, and the next row's rvsd would
  # adopt its maps and connections.
  if [[ -e $bpffs/rvs ]]; then
    echo "note: rvsd left its BPF pins; removed" >&2
    rm -rf "$bpffs/rvs"
  fi
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
  sysctl -qw kernel.bpf_stats_enabled="$stats_before"
  teardown_lab
  umount "$bpffs" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# "busy steal" jiffies of one /proc/stat line ("cpu " for the machine, "cpuN " for CPU N): busy
# is user, nice, system, irq and softirq. Steal (the hypervisor running something else) is not
# the director's work and is left out of busy; it is read to flag runs it disturbed.
cpu_jiffies() { awk -v l="$1" '$1 == l {print $2+$3+$4+$7+$8, $9}' /proc/stat; }
hz=$(getconf CLK_TCK)
dline=cpu
((ncpu > 1)) && dline=cpu$dcpu

# The BPF program's run time and runs so far (kernel.bpf_stats_enabled), summed over the
# programs named `$1` (rvs_tc or rvs_xdp) the director's namespace has loaded: "ns runs".
prog_stats() {
  bpftool -j prog show 2>/dev/null | python3 -c '
import json, sys
ns = runs = 0
for p in json.load(sys.stdin):
    if p.get("name") == sys.argv[1]:
        ns += p.get("run_time_ns", 0)
        runs += p.get("run_cnt", 0)
print(ns, runs)' "$1"
}

# With BENCH_PERF=1, perf samples the director's CPU during each run; "path us" is then its
# time polling its receive queues (__napi_poll: everything from a frame's arrival to its
# transmission, the kernel stack or the BPF program alike, under either isolation: a veth's
# NAPI thread or, with RPS, the backlog) per request. It leaves out what the director spends
# going idle and waking up again (the scheduler, the NAPI wake-ups, a VM exit each in a
# virtual machine), which grows with the number of wake-ups rather than with the work done,
# and the processes' own time (rvsd's packet path, haproxy): compare it between the kernel
# paths (nft, tc, xdp) only.
perf_hz=1000
path_ms() { # perf data file: milliseconds in __napi_poll on the director's CPU
  local total pb
  total=$(perf report -i "$1" --no-children --sort cpu --stdio -n -g none 2>/dev/null | awk '$1 ~ /%$/ {n += $2} END {print n + 0}')
  pb=$(perf report -i "$1" --children --sort sym --stdio -g none 2>/dev/null | awk '$NF == "__napi_poll" {sub("%", "", $1); print $1; exit}')
  awk -v t="$total" -v p="${pb:-0}" -v hz="$perf_hz" 'BEGIN { printf "%.0f", t * p / 100 * 1000 / hz }'
}

# One wrk run: prints "req/s requests machine_busy_ms director_busy_ms director_path_ms
# director_steal_ms".
measure() { # url, extra wrk args...
  local url=$1 b0 b1 d0 d1 s0 s1 report perf_pid= path=n/a
  shift
  if [[ ${BENCH_PERF:-0} == 1 ]] && ((ncpu > 1)); then
    perf record -F "$perf_hz" -C "${BENCH_PERF_CPUS:-$dcpu}" -g -o "$work/perf.data" -- sleep "$secs" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  read -r b0 _ < <(cpu_jiffies cpu)
  read -r d0 s0 < <(cpu_jiffies "$dline")
  report=$(ip netns exec "$prefix-client" taskset -c "0-$((dcpu > 0 ? dcpu - 1 : 0))" wrk -t2 -c"$conns" -d"${secs}s" "$@" "$url")
  read -r b1 _ < <(cpu_jiffies cpu)
  read -r d1 s1 < <(cpu_jiffies "$dline")
  if [[ -n $perf_pid ]]; then
    wait "$perf_pid" || true
    path=$(path_ms "$work/perf.data")
    [[ -n ${BENCH_PERF_KEEP:-} ]] && cp "$work/perf.data" "$BENCH_PERF_KEEP/$(date +%s%N).perf.data"
  fi
  awk -v busy=$(((b1 - b0) * 1000 / hz)) -v dir=$(((d1 - d0) * 1000 / hz)) -v path="$path" \
    -v steal=$(((s1 - s0) * 1000 / hz)) '
    /Requests\/sec/ {rps=$2}
    /requests in/ {n=$1}
    END {print rps, n, busy, dir, path, steal}' <<<"$report"
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

declare -A rps cpu dcpu_us prog_ns path_us
run_row() { # name
  local name=$1 url mode r rate n busy dir path steal prog s0 s1
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
      in_dir taskset -c "$dcpu" haproxy -D -p "$work/haproxy.pid" -f "$work/haproxy.cfg"
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
  # Attaching XDP or changing offloads may have made new NAPI threads.
  [[ $isolation == napi ]] && ((ncpu > 1)) && pin_napi_threads
  # A warm-up, then keep-alive and close.
  ip netns exec "$prefix-client" wrk -t2 -c"$conns" -d2s "$url" >/dev/null
  prog=
  [[ $name == tc ]] && prog=rvs_tc
  [[ $name == xdp ]] && prog=rvs_xdp
  for mode in keepalive close; do
    local extra=()
    [[ $mode == close ]] && extra=(-H "Connection: close")
    r=$(measure "$url" "${extra[@]}")
    if [[ -n $prog ]]; then
      # The program's own time per packet, from a short run with its statistics on.
      sysctl -qw kernel.bpf_stats_enabled=1
      s0=$(prog_stats "$prog")
      ip netns exec "$prefix-client" taskset -c "0-$((dcpu > 0 ? dcpu - 1 : 0))" wrk -t2 -c"$conns" -d3s "${extra[@]}" "$url" >/dev/null
      s1=$(prog_stats "$prog")
      sysctl -qw kernel.bpf_stats_enabled=0
      prog_ns[$name,$mode]=$(awk -v a="$s0" -v b="$s1" 'BEGIN { split(a, x, " "); split(b, y, " "); r = y[2] - x[2]; if (r > 0) printf "%.0f", (y[1] - x[1]) / r; else print "n/a" }')
    fi
    read -r rate n busy dir path steal <<<"$r"
    # More than 2% of the run stolen from the director's CPU: say so next to the figures.
    if ((steal * 50 > secs * 1000)); then
      echo "note: $name $mode: the hypervisor took ${steal} ms of the director's CPU (steal) in this run" >&2
    fi
    path_us[$name,$mode]=$(awk -v b="$path" -v n="$n" 'BEGIN { if (n > 0 && b != "n/a") printf "%.2f", b * 1000 / n; else print "n/a" }')
    rps[$name,$mode]=$rate
    cpu[$name,$mode]=$(awk -v b="$busy" -v n="$n" 'BEGIN { if (n > 0) printf "%.1f", b * 1000 / n; else print "n/a" }')
    dcpu_us[$name,$mode]=$(awk -v b="$dir" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", b * 1000 / n; else print "n/a" }')
  done
  teardown_lab
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "n/a") printf "%.2f", a / b; else print "n/a" }'; }
# Ratios of every round, space-separated, by "row,mode,what" (what: rps, dir or path).
declare -A ratios

# Prints the table of the round just run and keeps its ratios.
print_round() {
printf '%-8s | %-9s %-6s %-8s %-6s %-8s | %-9s %-6s %-8s %-6s %-8s\n' row "ka req/s" "x nft" "dir us" "x nft" "all us" "cl req/s" "x nft" "dir us" "x nft" "all us"
for row in "${rows[@]}"; do
  line=$(printf '%-8s |' "$row")
  for mode in keepalive close; do
    r=${rps[$row,$mode]:-0}
    d=${dcpu_us[$row,$mode]:-n/a}
    c=${cpu[$row,$mode]:-n/a}
    line+=$(printf ' %-9s %-6s %-8s %-6s %-8s |' "$r" "$(ratio "$r" "${rps[nft,$mode]:-0}")" "$d" "$(ratio "$d" "${dcpu_us[nft,$mode]:-0}")" "$c")
    ratios[$row,$mode,rps]+="$(ratio "$r" "${rps[nft,$mode]:-0}") "
    ratios[$row,$mode,dir]+="$(ratio "$d" "${dcpu_us[nft,$mode]:-0}") "
  done
  echo "${line% |}"
done
echo "(ka: keep-alive, cl: Connection: close; dir us: the director's CPU per request, microseconds,"
echo " on its isolated CPU $dcpu of $ncpu ($isolation); all us: the whole machine's; x nft: ratio against nftables DNAT in this run)"
for row in tc xdp; do
  [[ -n ${prog_ns[$row,keepalive]:-} ]] || continue
  echo "rvs_$row: ${prog_ns[$row,keepalive]} ns per packet (keep-alive), ${prog_ns[$row,close]} ns (close), the program's own run time (bpf_stats)"
done
if [[ ${BENCH_PERF:-0} == 1 ]]; then
  echo "the director's receive path per request (perf: __napi_poll, no idle or wake-ups), microseconds:"
  for row in "${rows[@]}"; do
    ka=${path_us[$row,keepalive]:-n/a}
    cl=${path_us[$row,close]:-n/a}
    printf '  %-8s keep-alive %-7s (x nft %s)   close %-7s (x nft %s)\n' "$row" "$ka" "$(ratio "$ka" "${path_us[nft,keepalive]:-0}")" "$cl" "$(ratio "$cl" "${path_us[nft,close]:-0}")"
    ratios[$row,keepalive,path]+="$(ratio "$ka" "${path_us[nft,keepalive]:-0}") "
    ratios[$row,close,path]+="$(ratio "$cl" "${path_us[nft,close]:-0}") "
  done
fi
}

# The median of numbers (n/a left out).
median() { tr ' ' '\n' <<<"$1" | grep -E '^[0-9.]+$' | sort -n | awk '{v[NR] = $1} END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for ((round = 1; round <= runs; round++)); do
  ((runs > 1)) && echo "round $round of $runs"
  for row in "${rows[@]}"; do run_row "$row"; done
  print_round
done
if ((runs > 1)); then
  echo "medians over $runs rounds, each round's ratios against its own nftables row:"
  printf '%-8s | %-14s %-14s | %-14s %-14s\n' row "ka req/s x nft" "ka dir x nft" "cl req/s x nft" "cl dir x nft"
  for row in "${rows[@]}"; do
    printf '%-8s | %-14s %-14s | %-14s %-14s\n' "$row" \
      "$(median "${ratios[$row,keepalive,rps]}")" "$(median "${ratios[$row,keepalive,dir]}")" \
      "$(median "${ratios[$row,close,rps]}")" "$(median "${ratios[$row,close,dir]}")"
    printf '%-8s   (%s| %s| %s| %s)\n' "" "${ratios[$row,keepalive,rps]}" "${ratios[$row,keepalive,dir]}" "${ratios[$row,close,rps]}" "${ratios[$row,close,dir]}"
  done
  if [[ ${BENCH_PERF:-0} == 1 ]]; then
    echo "medians of the receive path per request x nft (keep-alive, close):"
    for row in "${rows[@]}"; do
      printf '%-8s | %-14s %-14s (%s| %s)\n' "$row" "$(median "${ratios[$row,keepalive,path]:-}")" \
        "$(median "${ratios[$row,close,path]:-}")" "${ratios[$row,keepalive,path]:-}" "${ratios[$row,close,path]:-}"
    done
  fi
fi
