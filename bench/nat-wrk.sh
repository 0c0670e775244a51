#!/usr/bin/env bash
# Whole-system NAT benchmark: wrk from the lab's client through rvsd (VIP, rr over two real
# servers) against a baseline measured in the same run: the director's kernel forwarding the
# client straight to one real server's port 8080 (no load balancing). Prints both and the ratio.
#
#   cargo build --release && sudo bench/nat-wrk.sh [seconds] [connections]
#
# Figures on this shared 2-core machine are noisy: compare ratios from one run, not absolute
# numbers across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-50}
bin=target/release
[[ -x $bin/rvs-lab && -x $bin/rvsd && -x $bin/rvsadm ]] || { echo "build first: cargo build --release" >&2; exit 1; }

out=$($bin/rvs-lab demo --keep)
prefix=$(sed -n 's/^# lab prefix: //p' <<<"$out")
[[ -n $prefix ]] || { echo "demo did not report its lab prefix" >&2; echo "$out" >&2; exit 1; }
trap '$bin/rvs-lab down "$prefix" >/dev/null 2>&1 || true' EXIT
client="${prefix}-client"

rps() { # url, extra wrk args...
  local url=$1; shift
  ip netns exec "$client" wrk -t2 -c"$conns" -d"${secs}s" "$@" "$url" | awk '/Requests\/sec/ {print $2}'
}

printf '%-34s %12s %12s %8s\n' "workload" "kernel fwd" "rvs NAT" "ratio"
for mode in keepalive close; do
  extra=()
  [[ $mode == close ]] && extra=(-H "Connection: close")
  base=$(rps "http://10.10.10.2:8080/" "${extra[@]}")
  rvs=$(rps "http://192.168.1.253/" "${extra[@]}")
  ratio=$(awk -v a="$rvs" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  printf '%-34s %12s %12s %8s\n' "req/s, $mode, $conns conns, ${secs}s" "$base" "$rvs" "$ratio"
done
