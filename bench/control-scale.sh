#!/usr/bin/env bash
# Control plane at operator scale, on the lab's NAT demo topology (one run, one rvsd):
#   1. `rvsadm -R` of N services x 10 real servers (default 10,000 x 10), then `-Ln`, `-S -n`,
#      `--stats` and `--rate` of that table, and one `-A` / `-D` with the table present;
#   2. a connection table of M entries (default 1,000,000) loaded through the IPVS sync protocol
#      (a backup sync daemon in rvsd, datagrams from the client namespace), then `-Lnc`: its time,
#      its line count, and how much rvsd's resident memory grows while it runs;
#   3. forwarded traffic (wrk, keep-alive, through the VIP) alone and while a loop of `-Lnc` runs,
#      and their ratio.
# Targets (issue 10): 1. each listing < 1 s, -R of 1,000 x 10 < 3 s, one -A < 20 ms;
# 2. -Lnc of 1 M < 5 s with RSS growth < 64 MB; 3. ratio >= 0.90.
#
#   cargo build --release && sudo bench/control-scale.sh [services] [connections] [wrk seconds]
#
# BENCH_PLANE=tc|xdp runs rvsd on the BPF program (a bpffs of the bench's own for its pins, which
# `ip netns exec` would hide at /sys/fs/bpf, and room in its maps for the rules restored);
# without it rvsd picks its plane as it does by default (in this lab, the packet path).
#
# Figures on this shared 2-core machine are noisy; the ratio in 3 is measured in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
services=${1:-10000}
conns=${2:-1000000}
secs=${3:-10}
bin=$PWD/target/release
[[ -x $bin/rvs-lab && -x $bin/rvsd && -x $bin/rvsadm ]] || { echo "build first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
prefix=
bpffs=
cleanup() {
  [[ -z $prefix ]] || $bin/rvs-lab down "$prefix" >/dev/null 2>&1 || true
  [[ -z $bpffs ]] || umount "$bpffs" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# On the BPF plane, room in the program's maps for the rules restored (and the 20 -A timed).
rvsd_args=(--bpf-max-services $((services + 64)) --bpf-max-dests $((services * 10 + 64)))
case ${BENCH_PLANE:-} in
  '') ;;
  tc|xdp)
    bpffs=$work/bpffs
    mkdir -p "$bpffs"
    mount -t bpf bpf "$bpffs"
    rvsd_args+=(--dataplane "$BENCH_PLANE" --bpf-pin-dir "$bpffs/rvs") ;;
  *) echo "BENCH_PLANE is tc or xdp" >&2; exit 1 ;;
esac
out=$($bin/rvs-lab demo --keep -- "${rvsd_args[@]}")
prefix=$(sed -n 's/^# lab prefix: //p' <<<"$out")
[[ -n $prefix ]] || prefix=$(sed -n 's/^# Tear it down with: rvs-lab down //p' <<<"$out")
[[ -n $prefix ]] || { echo "demo did not report its lab prefix" >&2; echo "$out" >&2; exit 1; }
client="${prefix}-client"
director="${prefix}-director"
socket=$(sed -n 's/^# rvsadm talks to rvsd with: rvsadm --socket \([^ ]*\) .*/\1/p' <<<"$out")
adm() { "$bin/rvsadm" --socket "$socket" "$@"; }
rvsd_pid=$(pgrep -f -- "rvsd .*--socket $socket" | head -1)
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$rvsd_pid/status"; }
now_ms() { date +%s%3N; }
# Milliseconds taken by a command (its output discarded).
timed() { local t0; t0=$(now_ms); "$@" >/dev/null; echo $(($(now_ms) - t0)); }

printf '%-52s %10s\n' "measurement" "value"
row() { printf '%-52s %10s\n' "$1" "$2"; }

# 1. The service table, restored from an ipvsadm-save file.
python3 - "$services" >"$work/rules" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(n):
    vip = f"172.{16 + i // 65536}.{i // 256 % 256}.{i % 256}"
    print(f"-A -t {vip}:80 -s wlc")
    for r in range(10):
        print(f"-a -t {vip}:80 -r 10.10.{20 + r}.{i % 250 + 1}:8080 -m -w 1")
EOF
row "rvsadm -R, $services services x 10 (ms)" "$(timed adm -R <"$work/rules")"
lines=$(adm -Ln | wc -l)
row "  -Ln lines" "$lines"
for args in "-Ln" "-S -n" "-Ln --stats" "-Ln --rate"; do
  # shellcheck disable=SC2086
  row "rvsadm $args (ms)" "$(timed adm $args)"
done
adm -S -n >"$work/saved"
row "  -S -n lines (rules restored: $(wc -l <"$work/rules"))" "$(wc -l <"$work/saved")"
add_ms=0
for i in $(seq 1 20); do
  add_ms=$((add_ms + $(timed adm -A -t "172.31.255.$i:80" -s rr)))
done
row "one -A with $services services present (ms, mean of 20)" "$((add_ms / 20))"
del_ms=0
for i in $(seq 1 20); do
  del_ms=$((del_ms + $(timed adm -D -t "172.31.255.$i:80")))
done
row "one -D with $services services present (ms, mean of 20)" "$((del_ms / 20))"
row "rvsadm -C (ms)" "$(timed adm -C)"

# 2. A million connections through the sync protocol, then -Lnc.
ip netns exec "$director" "$bin/rvsadm" --socket "$socket" -A -t 192.168.1.253:80 -s rr
ip netns exec "$director" "$bin/rvsadm" --socket "$socket" -a -t 192.168.1.253:80 -r 10.10.10.2:80 -m
ip netns exec "$director" "$bin/rvsadm" --socket "$socket" -a -t 192.168.1.253:80 -r 10.10.10.3:80 -m
ip netns exec "$director" "$bin/rvsadm" --socket "$socket" --start-daemon backup --mcast-interface d0
sleep 0.5
cat >"$work/sync-load.py" <<'EOF'
import socket, struct, sys, time
# IPVS sync protocol v1: an 8-byte header, then 36-byte IPv4 entries (ESTABLISHED, NAT,
# 900 s) from distinct made-up clients (entry k: 100.64.0.0 + k / 50000, port 1024 + k % 50000)
# to the demo's VIP and real servers. Arguments: first entry, number of entries.
first, total = int(sys.argv[1]), int(sys.argv[2])
per = (1472 - 8) // 36
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("192.168.1.2"))
vip = socket.inet_aton("192.168.1.253")
rips = [socket.inet_aton("10.10.10.2"), socket.inet_aton("10.10.10.3")]
k, end, datagrams = first, first + total, 0
while k < end:
    n = min(per, end - k)
    body = bytearray()
    for j in range(k, k + n):
        client = struct.pack("!I", (100 << 24) | (64 << 16) | (j // 50000))
        body += struct.pack("!BBHIHHHHII", 0, 6, 36, 0, 1, 1024 + j % 50000, 80, 80, 0, 900)
        body += client + vip + rips[j % 2]
    s.sendto(struct.pack("!BBHBBH", 0, 0, 8 + len(body), n, 1, 0) + body, ("224.0.0.81", 8848))
    k += n
    datagrams += 1
    if datagrams % 16 == 0:
        time.sleep(0.002)  # the receiver's socket buffer holds a few hundred datagrams
EOF
t0=$(now_ms)
# The engine's connections and, on the BPF plane, the program's.
loaded() { adm --counters | awk '$1 == "connections" || $1 == "bpf_connections" {n += $2} END {print n}'; }
have=0
next=0
for _ in 1 2 3 4 5; do
  missing=$((conns - have))
  ((missing > 0)) || break
  ip netns exec "$client" python3 "$work/sync-load.py" "$next" "$missing"
  next=$((next + missing))
  sleep 1
  have=$(loaded)
done
row "connections loaded through sync (in $(( $(now_ms) - t0 )) ms)" "$have"
base_rss=$(rss_kb)
peak_file=$work/peak
( peak=0; while :; do r=$(rss_kb); ((r > peak)) && peak=$r && echo "$peak" >"$peak_file"; sleep 0.05; done ) &
sampler=$!
lnc_ms=$(timed adm -Lnc)
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
peak=$(cat "$peak_file" 2>/dev/null || echo "$base_rss")
row "rvsadm -Lnc of $have connections (ms)" "$lnc_ms"
row "  -Lnc lines" "$(adm -Lnc | wc -l)"
row "  rvsd RSS before (MB)" "$((base_rss / 1024))"
row "  rvsd RSS growth during -Lnc (MB)" "$(((peak - base_rss) / 1024))"

# 3. Forwarding while -Lnc runs in a loop: alone and during, alternated three times (the
#    machine's noise hits both), medians compared.
rps() { ip netns exec "$client" wrk -t2 -c50 -d"${secs}s" "http://192.168.1.253/" | awk '/Requests\/sec/ {print $2}'; }
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
alone=()
during=()
for _ in 1 2 3; do
  alone+=("$(rps)")
  ( end=$(($(date +%s) + secs + 2)); while (($(date +%s) < end)); do adm -Lnc >/dev/null; done ) &
  looper=$!
  during+=("$(rps)")
  wait "$looper" 2>/dev/null || true
done
a=$(median "${alone[@]}")
d=$(median "${during[@]}")
row "req/s keep-alive, alone (median of: ${alone[*]})" "$a"
row "req/s keep-alive, during a -Lnc loop (median of: ${during[*]})" "$d"
row "  ratio" "$(awk -v a="$d" -v b="$a" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
