#!/usr/bin/env bash
# The order-system's HTTP command path under load, beside the raw baseline (run.sh): `serve
# --http` on a fresh embedded store, 200 draft orders, then wrk POSTing add-item to random ones
# (add_item.lua), 3 runs of DURATION_S per point, medians. The server runs its commands through
# execute_async; with JETSOURCE_HTTP_PIPELINED=0 through execute (a measurement switch).
#
#   bench/http-baseline/run-orders.sh BIN_DIR [DURATION_S=5] [CONNECTIONS=16]
set -euo pipefail
bin=${1:?usage: run-orders.sh BIN_DIR [DURATION_S] [CONNECTIONS]}
duration=${2:-5}
conns=${3:-16}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
port=18090
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

"$bin/order-system" --data-dir "$dir" serve --http "127.0.0.1:$port" 2> "$dir/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
for i in $(seq 0 199); do
  curl -fs -X POST "http://127.0.0.1:$port/orders" -H 'Content-Type: application/json' \
       -d "{\"customer_id\":\"c-$i\",\"order_id\":\"o-$i\"}" > /dev/null
done
rps=()
for _ in 1 2 3; do
  out=$(wrk -t2 -c"$conns" -d"${duration}s" --latency -s "$here/add_item.lua" "http://127.0.0.1:$port")
  if grep -q unexpected <<< "$out"; then grep -m3 unexpected <<< "$out" >&2; exit 1; fi
  rps+=("$(awk '/Requests\/sec/ {print $2}' <<< "$out")")
  p99=$(awk '$1 == "99%" {print $2}' <<< "$out")
done
printf 'http-orders route=add-item pipelined=%s connections=%s rps_median=%s rps_runs=%s p99_last=%s\n' \
  "${JETSOURCE_HTTP_PIPELINED:-1}" "$conns" "$(printf '%s\n' "${rps[@]}" | median)" \
  "$(IFS=,; echo "${rps[*]}")" "$p99"
